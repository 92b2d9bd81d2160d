/* SPDX-License-Identifier: MIT */
/*
 * `farpoold --metrics ADDR:PORT`: the node's counters in Prometheus' text
 * exposition format over HTTP (libmicrohttpd). metrics.h says what is
 * counted and why reading needs no lock.
 *
 * The listening socket is made here (socket, bind, listen) and handed to
 * libmicrohttpd (MHD_OPTION_LISTEN_SOCKET): a taken port is then reported as
 * this node's error, with the address and errno, and the port the kernel
 * chose for port 0 is known before the daemon starts. Everything after the
 * accept, HTTP included, is libmicrohttpd's.
 */
#include "metrics.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "proto/proto.h"

#define CONTENT_TYPE    "text/plain; version=0.0.4; charset=utf-8"
#define MAX_CONNECTIONS 16 /* scrapers at once; more are refused by libmicrohttpd */
#define CONN_TIMEOUT_S  10 /* a scraper silent this long is dropped */

/* The names of the error kinds, by -fp_status_t: FP_ERR_* without the prefix, in lower case. */
static const char *const kind_names[FP_METRICS_KINDS] = {
    [-FP_ERR_NO_MEMORY] = "no_memory",
    [-FP_ERR_INVALID_PARAM] = "invalid_param",
    [-FP_ERR_IO] = "io",
    [-FP_ERR_TIMED_OUT] = "timed_out",
    [-FP_ERR_NOT_CONNECTED] = "not_connected",
    [-FP_ERR_PROTOCOL] = "protocol",
    [-FP_ERR_VERSION] = "version",
    [-FP_ERR_AUTH] = "auth",
    [-FP_ERR_NO_SPACE] = "no_space",
    [-FP_ERR_NO_ENTRY] = "no_entry",
    [-FP_ERR_PERMISSION] = "permission",
    [-FP_ERR_OUT_OF_RANGE] = "out_of_range",
    [-FP_ERR_UNSUPPORTED] = "unsupported",
    [-FP_ERR_BUSY] = "busy",
    [-FP_ERR_ADDRESS] = "address",
    [-FP_ERR_TOO_LARGE] = "too_large",
    [-FP_ERR_CANCELED] = "canceled",
    [-FP_ERR_EXISTS] = "exists",
    [-FP_ERR_IN_USE] = "in_use",
};

_Static_assert(FP_ERR_LAST == -20, "a new fp_status_t needs its name in kind_names");

static const char *const member_states[4] = {"live", "dead", "draining", "gone"};
static const char *const health_names[4] = {"healthy", "degraded", "repairing", "lost"};
static const char *const lat_ops[FP_METRICS_LAT_COUNT] = {"read", "write"};

struct fp_metrics {
    fp_metrics_params_t params;
    struct MHD_Daemon *daemon;
    fp_addr_t local;
};

/* ---- the text ---- */

/* A growing text; on failure of an append, failed is set and the rest is ignored. */
typedef struct text {
    char *buf;
    size_t len, cap;
    bool failed;
} text_t;

static void text_add(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_add(text_t *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (int tries = 0; !t->failed && tries < 2; tries++) {
        size_t room = t->cap - t->len;

        va_start(ap, fmt);
        n = vsnprintf(t->buf + t->len, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if ((size_t)n < room) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2 > t->len + (size_t)n + 1 ? t->cap * 2 : t->len + (size_t)n + 1;
        char *buf = realloc(t->buf, cap);

        if (buf == NULL) {
            t->failed = true;
            return;
        }
        t->buf = buf;
        t->cap = cap;
    }
}

static void text_head(text_t *t, const char *name, const char *type, const char *help)
{
    text_add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void text_value(text_t *t, const char *name, uint64_t v)
{
    text_add(t, "%s %llu\n", name, (unsigned long long)v);
}

/* "REGION_CREATE" as "region_create". */
static void lower_name(const char *name, char *out, size_t cap)
{
    size_t i;

    for (i = 0; name[i] != '\0' && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)name[i]);
    out[i] = '\0';
}

static void render_node(text_t *t, const fp_metrics_params_t *p)
{
    const fp_server_counters_t *m = p->counters;
    char name[32];

    text_head(t, "farpool_capacity_bytes", "gauge", "Memory this node may donate, in bytes.");
    text_value(t, "farpool_capacity_bytes", p->capacity);
    text_head(t, "farpool_used_bytes", "gauge",
              "Memory in slabs now, in bytes (freed slabs still being sent count).");
    text_value(t, "farpool_used_bytes", fp_metrics_get(&m->used));
    text_head(t, "farpool_slab_size_bytes", "gauge", "The unit of allocation, in bytes.");
    text_value(t, "farpool_slab_size_bytes", p->slab_size);
    text_head(t, "farpool_slabs", "gauge", "Slabs allocated now.");
    text_value(t, "farpool_slabs", fp_metrics_get(&m->slabs));
    text_head(t, "farpool_clients", "gauge", "Client connections open now.");
    text_value(t, "farpool_clients", fp_metrics_get(&m->clients));

    text_head(t, "farpool_bytes_total", "counter",
              "Bytes of data served: read from and written to slabs.");
    text_add(t, "farpool_bytes_total{op=\"read\"} %llu\n",
             (unsigned long long)fp_metrics_get(&m->bytes_read));
    text_add(t, "farpool_bytes_total{op=\"write\"} %llu\n",
             (unsigned long long)fp_metrics_get(&m->bytes_written));

    text_head(t, "farpool_requests_total", "counter",
              "Requests answered, by operation (errors included).");
    for (unsigned op = 1; op < FP_METRICS_OPS; op++) {
        const char *n = fp_proto_op_name((uint8_t)op);

        if (strcmp(n, "?") == 0)
            continue;
        lower_name(n, name, sizeof(name));
        text_add(t, "farpool_requests_total{op=\"%s\"} %llu\n", name,
                 (unsigned long long)fp_metrics_get(&m->requests[op]));
    }
    text_add(t, "farpool_requests_total{op=\"unknown\"} %llu\n",
             (unsigned long long)fp_metrics_get(&m->requests[0]));

    text_head(t, "farpool_errors_total", "counter",
              "Requests rejected and connections dropped, by kind (the error's name).");
    for (unsigned k = 1; k < FP_METRICS_KINDS; k++)
        text_add(t, "farpool_errors_total{kind=\"%s\"} %llu\n", kind_names[k],
                 (unsigned long long)fp_metrics_get(&m->errors[k]));

    text_head(t, "farpool_request_duration_seconds", "histogram",
              "Service time of successful READs and WRITEs: from their header read to the "
              "last byte of the reply sent.");
    for (unsigned o = 0; o < FP_METRICS_LAT_COUNT; o++) {
        const fp_metrics_hist_t *h = &m->latency[o];
        uint64_t cum = 0;

        for (unsigned i = 0; i <= FP_METRICS_BUCKETS; i++) {
            cum += fp_metrics_get(&h->bucket[i]);
            if (i == FP_METRICS_BUCKETS)
                text_add(t, "farpool_request_duration_seconds_bucket{op=\"%s\",le=\"+Inf\"} %llu\n",
                         lat_ops[o], (unsigned long long)cum);
            else
                text_add(t, "farpool_request_duration_seconds_bucket{op=\"%s\",le=\"%g\"} %llu\n",
                         lat_ops[o], (double)fp_metrics_bucket_ns(i) / 1e9,
                         (unsigned long long)cum);
        }
        text_add(t, "farpool_request_duration_seconds_sum{op=\"%s\"} %.9f\n", lat_ops[o],
                 (double)fp_metrics_get(&h->sum_ns) / 1e9);
        text_add(t, "farpool_request_duration_seconds_count{op=\"%s\"} %llu\n", lat_ops[o],
                 (unsigned long long)cum);
    }
}

static void render_pool(text_t *t, const fp_meta_metrics_t *pool)
{
    text_head(t, "farpool_pool_members", "gauge", "Members of the pool, by state.");
    for (unsigned i = 0; i < 4; i++)
        text_add(t, "farpool_pool_members{state=\"%s\"} %llu\n", member_states[i],
                 (unsigned long long)pool->members[i]);
    text_head(t, "farpool_pool_regions", "gauge", "Regions of the pool (published), by health.");
    for (unsigned i = 0; i < 4; i++)
        text_add(t, "farpool_pool_regions{health=\"%s\"} %llu\n", health_names[i],
                 (unsigned long long)pool->regions[i]);
    text_head(t, "farpool_pool_repair_copied_bytes_total", "counter",
              "Bytes copied by repair and drain since this metadata node started.");
    text_value(t, "farpool_pool_repair_copied_bytes_total", pool->copied_bytes);
    text_head(t, "farpool_pool_repair_copied_slabs_total", "counter",
              "Slab copies made by repair and drain since this metadata node started.");
    text_value(t, "farpool_pool_repair_copied_slabs_total", pool->copied_slabs);
}

fp_status_t fp_metrics_render(const fp_metrics_params_t *params, const fp_meta_metrics_t *pool,
                              char **text_p, size_t *len_p)
{
    text_t t = {.cap = 16384};

    t.buf = malloc(t.cap);
    if (t.buf == NULL)
        return FP_ERR_NO_MEMORY;
    t.buf[0] = '\0';
    render_node(&t, params);
    if (pool != NULL)
        render_pool(&t, pool);
    if (t.failed) {
        free(t.buf);
        return FP_ERR_NO_MEMORY;
    }
    *text_p = t.buf;
    *len_p = t.len;
    return FP_OK;
}

/* ---- HTTP ---- */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, char *body, size_t len,
                             const char *type, bool allow)
{
    struct MHD_Response *rsp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result rc;

    if (rsp == NULL) {
        free(body);
        return MHD_NO;
    }
    if (MHD_add_response_header(rsp, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES ||
        (allow && MHD_add_response_header(rsp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES)) {
        MHD_destroy_response(rsp);
        return MHD_NO;
    }
    rc = MHD_queue_response(conn, code, rsp);
    MHD_destroy_response(rsp);
    return rc;
}

static enum MHD_Result reply_plain(struct MHD_Connection *conn, unsigned code, const char *msg,
                                   bool allow)
{
    char *body = strdup(msg);

    if (body == NULL)
        return MHD_NO;
    return reply(conn, code, body, strlen(body), "text/plain; charset=utf-8", allow);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    fp_metrics_t *mx = cls;
    fp_meta_metrics_t pool;
    char *text;
    size_t len;

    (void)version;
    (void)upload_data;
    (void)upload_data_size;
    (void)con_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply_plain(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                           "farpoold: only GET /metrics is served here\n", true);
    if (strcmp(url, "/metrics") != 0)
        return reply_plain(conn, MHD_HTTP_NOT_FOUND,
                           "farpoold: not found; the metrics are at /metrics\n", false);
    if (mx->params.pool != NULL)
        mx->params.pool(mx->params.pool_arg, &pool);
    if (fp_metrics_render(&mx->params, mx->params.pool != NULL ? &pool : NULL, &text, &len) !=
        FP_OK)
        return reply_plain(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "farpoold: out of memory\n",
                           false);
    return reply(conn, MHD_HTTP_OK, text, len, CONTENT_TYPE, false);
}

/* libmicrohttpd's complaints (a malformed request, ...) go to the node's log at debug level. */
static void on_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void on_log(void *cls, const char *fmt, va_list ap)
{
    const fp_metrics_t *mx = cls;
    char line[512];
    size_t n;

    if (!fp_log_enabled(mx->params.log, FP_LOG_DEBUG))
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    fp_debug(mx->params.log, "metrics: %s", line);
}

fp_status_t fp_metrics_start(const fp_metrics_params_t *params, fp_metrics_t **metrics_p)
{
    fp_metrics_t *mx;
    char addr[80];
    int fd, one = 1;

    fp_addr_format(&params->listen, addr, sizeof(addr));
    mx = calloc(1, sizeof(*mx));
    if (mx == NULL)
        return FP_ERR_NO_MEMORY;
    mx->params = *params;
    fd = socket(params->listen.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fp_error(params->log, "metrics: socket: %s", strerror(errno));
        goto err_free;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)&params->listen.ss, params->listen.len) < 0 ||
        listen(fd, 64) < 0) {
        fp_error(params->log, "cannot serve metrics on %s: %s", addr, strerror(errno));
        goto err_close;
    }
    mx->local.len = sizeof(mx->local.ss);
    getsockname(fd, (struct sockaddr *)&mx->local.ss, &mx->local.len);
    /* The logger first, so that what the daemon says while starting goes there too. */
    mx->daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL,
                                  NULL, on_request, mx, MHD_OPTION_EXTERNAL_LOGGER, on_log, mx,
                                  MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
                                  (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
                                  (unsigned)CONN_TIMEOUT_S, MHD_OPTION_END);
    if (mx->daemon == NULL) {
        fp_error(params->log, "metrics: libmicrohttpd would not start on %s", addr);
        goto err_close;
    }
    *metrics_p = mx;
    return FP_OK;

err_close:
    close(fd);
err_free:
    free(mx);
    return FP_ERR_IO;
}

void fp_metrics_local_addr(const fp_metrics_t *metrics, fp_addr_t *addr_p)
{
    *addr_p = metrics->local;
}

void fp_metrics_stop(fp_metrics_t *metrics)
{
    if (metrics == NULL)
        return;
    MHD_stop_daemon(metrics->daemon); /* closes the listening socket too */
    free(metrics);
}
