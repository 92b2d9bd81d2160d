/* SPDX-License-Identifier: MIT */
/*
 * The client's connection to one memory node: handshake, authentication and
 * blocking slab operations (the public farpool_node_* and farpool_slab_* API).
 *
 * DESIGN
 * Each call submits xfers on the node's transport and drives progress until
 * they complete or the deadline passes. Large reads and writes are cut into
 * CHUNK-byte requests with up to DEPTH in flight, so one call streams at the
 * wire's bandwidth instead of paying a round trip per chunk. The xfers live on
 * the caller's stack; a call never returns while one of them is in flight: on a
 * timeout the connection is closed (which completes every xfer) and the handle
 * reports FP_ERR_NOT_CONNECTED from then on, since replies that might still
 * arrive could no longer be matched safely.
 */
#include <farpool/farpool.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

#include "common/abi.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/time.h"
#include "proto/proto.h"
#include "transport/transport.h"

#define CHUNK              (1u << 20)
#define DEPTH              16
#define DEFAULT_TIMEOUT_MS 10000

struct farpool_node {
    fp_log_t log;       /* from the parameters; the transport's too */
    fp_transport_t *tp; /* NULL once broken */
    char addr[96];
    uint8_t key[FP_PROTO_KEY_SIZE];
    uint64_t node_id;
    uint64_t slab_size;
    uint32_t max_data;
    int timeout_ms;
};

/* Requests of one multi-chunk transfer, counted down by their callbacks. */
typedef struct node_batch {
    unsigned inflight;
    fp_status_t first_error;
} node_batch_t;

typedef struct node_req {
    fp_xfer_t xfer;
    bool done;
    fp_status_t status;
    struct iovec req_iov, rsp_iov;
    fp_proto_range_t range;
    node_batch_t *batch; /* NULL for a single call */
} node_req_t;

static void node_req_done(fp_xfer_t *xfer, fp_status_t status)
{
    node_req_t *req = xfer->arg;

    req->done = true;
    req->status = status;
    if (req->batch != NULL) {
        req->batch->inflight--;
        if (status != FP_OK && req->batch->first_error == FP_OK)
            req->batch->first_error = status;
    }
}

static void node_req_init(node_req_t *req, uint8_t op, const void *payload, size_t len, void *rsp,
                          size_t rsp_cap)
{
    memset(req, 0, sizeof(*req));
    req->xfer.op = op;
    req->xfer.done = node_req_done;
    req->xfer.arg = req;
    req->req_iov.iov_base = (void *)payload;
    req->req_iov.iov_len = len;
    req->xfer.req_iov = &req->req_iov;
    req->xfer.req_iovcnt = len > 0 ? 1 : 0;
    req->rsp_iov.iov_base = rsp;
    req->rsp_iov.iov_len = rsp_cap;
    req->xfer.rsp_iov = &req->rsp_iov;
    req->xfer.rsp_iovcnt = rsp_cap > 0 ? 1 : 0;
}

/* The connection is no longer trustworthy: close it, completing every xfer. */
static void node_break(farpool_node_t *node)
{
    fp_transport_close(node->tp);
    node->tp = NULL;
}

/*
 * Run the transport until something completes or @deadline passes. Any
 * failure closes the connection, which completes every xfer, so a caller that
 * gets an error has nothing left in flight.
 */
static fp_status_t node_progress(farpool_node_t *node, uint64_t deadline)
{
    uint64_t now = fp_time_ns();
    fp_status_t status;

    if (now >= deadline) {
        fp_error(&node->log, "node %s: no reply within %d ms; closing the connection", node->addr,
                 node->timeout_ms);
        node_break(node);
        return FP_ERR_TIMED_OUT;
    }
    status = fp_transport_progress(node->tp,
                                   (int)((deadline - now + FP_NS_PER_MS - 1) / FP_NS_PER_MS), NULL);
    if (status == FP_OK || status == FP_ERR_TIMED_OUT)
        return FP_OK; /* the caller re-checks its condition and the deadline */
    node_break(node);
    return status;
}

/* Drive progress until *@done or the deadline. */
static fp_status_t node_wait(farpool_node_t *node, const bool *done, uint64_t deadline)
{
    while (!*done) {
        fp_status_t status = node_progress(node, deadline);
        if (status != FP_OK)
            return status;
    }
    return FP_OK;
}

uint64_t fp_node_id(const farpool_node_t *node)
{
    return node->node_id;
}

uint64_t fp_node_slab_size(const farpool_node_t *node)
{
    return node->slab_size;
}

/* One request, one reply. */
fp_status_t fp_node_call(farpool_node_t *node, uint8_t op, const void *payload, size_t len,
                         void *rsp, size_t rsp_cap, uint32_t *rsp_len_p)
{
    node_req_t req;
    fp_status_t status;

    if (node->tp == NULL)
        return FP_ERR_NOT_CONNECTED;
    node_req_init(&req, op, payload, len, rsp, rsp_cap);
    status = fp_transport_submit(node->tp, &req.xfer);
    if (status != FP_OK)
        return status;
    status = node_wait(node, &req.done, fp_time_ns() + (uint64_t)node->timeout_ms * FP_NS_PER_MS);
    /* A timeout or a broken connection cancels the request: report why, not "canceled". */
    if (status != FP_OK && (!req.done || req.status == FP_ERR_CANCELED))
        return status;
    if (req.status == FP_OK && rsp_len_p != NULL)
        *rsp_len_p = req.xfer.rsp_len;
    return req.status;
}

static fp_status_t node_handshake(farpool_node_t *node, const uint8_t *secret, size_t secret_len)
{
    uint8_t buf[FP_PROTO_HELLO_REP_SIZE], auth[FP_PROTO_AUTH_REQ_SIZE], mac[FP_PROTO_MAC_SIZE];
    fp_proto_hello_req_t req = {FP_PROTO_VERSION, FP_PROTO_VERSION, {0}};
    fp_proto_hello_rep_t rep;
    uint32_t len = 0;
    fp_status_t status;

    memcpy(req.client_key, node->key, sizeof(req.client_key));
    fp_proto_hello_req_encode(&req, buf);
    status = fp_node_call(node, FP_OP_HELLO, buf, FP_PROTO_HELLO_REQ_SIZE, buf, sizeof(buf), &len);
    if (status == FP_OK)
        status = fp_proto_hello_rep_decode(buf, len, &rep);
    if (status != FP_OK) {
        fp_error(&node->log, "node %s: HELLO failed: %s", node->addr, fp_status_string(status));
        return status;
    }
    node->node_id = rep.node_id;
    node->slab_size = rep.slab_size;
    node->max_data = rep.max_data < FP_PROTO_MAX_DATA ? rep.max_data : FP_PROTO_MAX_DATA;
    if (!(rep.flags & FP_PROTO_HELLO_AUTH_REQUIRED))
        return FP_OK;
    if (secret == NULL) {
        fp_error(&node->log, "node %s requires a secret (--secret-file or FARPOOL_SECRET_FILE)",
                 node->addr);
        return FP_ERR_AUTH;
    }
    status = fp_proto_random(auth, FP_PROTO_NONCE_SIZE);
    if (status != FP_OK)
        return status;
    fp_proto_auth_mac(FP_PROTO_AUTH_CLIENT, secret, secret_len, rep.nonce, auth, node->key,
                      auth + FP_PROTO_NONCE_SIZE);
    status = fp_node_call(node, FP_OP_AUTH, auth, sizeof(auth), mac, sizeof(mac), &len);
    if (status != FP_OK) {
        fp_error(&node->log, "node %s: authentication failed: %s", node->addr,
                 status == FP_ERR_AUTH ? "wrong secret" : fp_status_string(status));
        return status;
    }
    if (len != sizeof(mac) || fp_proto_auth_verify(FP_PROTO_AUTH_NODE, secret, secret_len,
                                                   rep.nonce, auth, node->key, mac) != FP_OK) {
        fp_error(&node->log, "node %s did not prove it knows the secret", node->addr);
        return FP_ERR_AUTH;
    }
    return FP_OK;
}

fp_status_t farpool_node_connect(const char *addr_text, const farpool_node_params_t *params,
                                 farpool_node_t **node_p)
{
    uint8_t secret[FP_SECRET_MAX];
    const uint8_t *secret_ptr = NULL;
    size_t secret_len = 0;
    uint64_t mask = params != NULL ? params->field_mask : 0;
    fp_transport_params_t tparams;
    farpool_node_t *node;
    fp_addr_t addr;
    fp_log_t log;
    fp_status_t status;

    if (addr_text == NULL || node_p == NULL)
        return FP_ERR_INVALID_PARAM;
    fp_log_init_params(&log, "farpool", (mask & FARPOOL_NODE_PARAM_LOG) != 0,
                       (mask & FARPOOL_NODE_PARAM_LOG) ? params->log_level : FARPOOL_LOG_WARN,
                       (mask & FARPOOL_NODE_PARAM_LOG) ? params->log_func : NULL,
                       (mask & FARPOOL_NODE_PARAM_LOG) ? params->log_arg : NULL);
    status = fp_addr_parse(addr_text, &addr);
    if (status != FP_OK) {
        fp_error(&log, "bad node address '%s' (expected HOST:PORT or [IPV6]:PORT)", addr_text);
        return status;
    }
    if (mask & FARPOOL_NODE_PARAM_SECRET) {
        if (params->secret == NULL || params->secret_len == 0 || params->secret_len > FP_SECRET_MAX)
            return FP_ERR_INVALID_PARAM;
        secret_ptr = params->secret;
        secret_len = params->secret_len;
    } else {
        /* The parameter's file, else the environment's (docs/environment.md). */
        const char *file = (mask & FARPOOL_NODE_PARAM_SECRET_FILE) ? params->secret_file : NULL;

        if (file == NULL && getenv("FARPOOL_SECRET_FILE") != NULL &&
            getenv("FARPOOL_SECRET_FILE")[0] != '\0')
            file = getenv("FARPOOL_SECRET_FILE");
        if (file != NULL) {
            status = fp_secret_load(&log, file, secret, &secret_len);
            if (status != FP_OK)
                return status;
            secret_ptr = secret;
        }
    }

    node = calloc(1, sizeof(*node));
    if (node == NULL)
        return FP_ERR_NO_MEMORY;
    node->log = log;
    snprintf(node->addr, sizeof(node->addr), "%s", addr_text);
    node->timeout_ms = DEFAULT_TIMEOUT_MS;
    if ((mask & FARPOOL_NODE_PARAM_TIMEOUT) && params->timeout_ms > 0)
        node->timeout_ms = params->timeout_ms;
    if (mask & FARPOOL_NODE_PARAM_CLIENT_KEY)
        memcpy(node->key, params->client_key, sizeof(node->key));
    else if ((status = fp_proto_random(node->key, sizeof(node->key))) != FP_OK)
        goto err_free;

    fp_transport_params_default(&tparams);
    tparams.connect_timeout_ms = node->timeout_ms;
    tparams.log = &node->log;
    status = fp_transport_connect(&fp_transport_tcp_ops, &addr, &tparams, &node->tp);
    if (status != FP_OK)
        goto err_free;
    status = node_handshake(node, secret_ptr, secret_len);
    if (status != FP_OK)
        goto err_close;
    memset(secret, 0, sizeof(secret));
    *node_p = node;
    return FP_OK;

err_close:
    fp_transport_close(node->tp);
err_free:
    memset(secret, 0, sizeof(secret));
    free(node);
    return status;
}

void farpool_node_close(farpool_node_t *node)
{
    if (node == NULL)
        return;
    fp_transport_close(node->tp);
    free(node);
}

fp_status_t farpool_slab_alloc(farpool_node_t *node, uint64_t *slab_id_p, uint64_t *slab_size_p)
{
    uint8_t buf[FP_PROTO_ALLOC_REP_SIZE];
    uint32_t len = 0;
    fp_status_t status;

    status = fp_node_call(node, FP_OP_SLAB_ALLOC, NULL, 0, buf, sizeof(buf), &len);
    if (status != FP_OK)
        return status;
    if (len != sizeof(buf))
        return FP_ERR_PROTOCOL;
    *slab_id_p = fp_proto_get_u64(buf);
    if (slab_size_p != NULL)
        *slab_size_p = fp_proto_get_u64(buf + 8);
    return FP_OK;
}

fp_status_t farpool_slab_free(farpool_node_t *node, uint64_t slab_id)
{
    uint8_t buf[FP_PROTO_FREE_REQ_SIZE];

    fp_proto_put_u64(buf, slab_id);
    return fp_node_call(node, FP_OP_SLAB_FREE, buf, sizeof(buf), NULL, 0, NULL);
}

/*
 * Move @len bytes between @buf and the slab in CHUNK-sized requests, DEPTH in
 * flight. The first error is returned after every request has completed. The
 * deadline is per completion: a transfer that keeps moving never times out.
 */
static fp_status_t node_transfer(farpool_node_t *node, uint8_t op, uint64_t slab_id,
                                 uint64_t offset, uint8_t *buf, size_t len)
{
    node_req_t reqs[DEPTH];
    node_batch_t batch = {0, FP_OK};
    uint64_t timeout_ns = (uint64_t)node->timeout_ms * FP_NS_PER_MS;
    size_t next = 0;

    if (node->tp == NULL)
        return FP_ERR_NOT_CONNECTED;
    if (buf == NULL && len > 0)
        return FP_ERR_INVALID_PARAM;
    /* Checked here too, before any chunk leaves: a failed call moves no byte. */
    if (offset > node->slab_size || len > node->slab_size - offset)
        return FP_ERR_OUT_OF_RANGE;
    for (unsigned i = 0; i < DEPTH; i++)
        reqs[i].done = true;
    while ((next < len && batch.first_error == FP_OK) || batch.inflight > 0) {
        unsigned before;
        uint64_t deadline;
        fp_status_t status;

        for (unsigned i = 0; i < DEPTH && next < len && batch.first_error == FP_OK; i++) {
            node_req_t *req = &reqs[i];
            size_t n = len - next < CHUNK ? len - next : CHUNK;

            if (!req->done)
                continue;
            if (op == FP_OP_WRITE)
                node_req_init(req, op, buf + next, n, NULL, 0);
            else
                node_req_init(req, op, NULL, 0, buf + next, n);
            req->batch = &batch;
            req->range.slab = slab_id;
            req->range.offset = offset + next;
            req->range.length = (uint32_t)n;
            req->xfer.ranges = &req->range;
            req->xfer.nranges = 1;
            status = fp_transport_submit(node->tp, &req->xfer);
            if (status != FP_OK) {
                req->done = true;
                batch.first_error = status;
                break;
            }
            batch.inflight++;
            next += n;
        }
        if (batch.inflight == 0)
            break;
        before = batch.inflight;
        deadline = fp_time_ns() + timeout_ns;
        while (batch.inflight == before) {
            status = node_progress(node, deadline);
            if (status != FP_OK) /* the transport is closed: nothing is in flight */
                return batch.first_error == FP_OK || batch.first_error == FP_ERR_CANCELED
                           ? status
                           : batch.first_error;
        }
    }
    return batch.first_error;
}

fp_status_t farpool_slab_read(farpool_node_t *node, uint64_t slab_id, uint64_t offset, void *buf,
                              size_t len)
{
    return node_transfer(node, FP_OP_READ, slab_id, offset, buf, len);
}

fp_status_t farpool_slab_write(farpool_node_t *node, uint64_t slab_id, uint64_t offset,
                               const void *buf, size_t len)
{
    return node_transfer(node, FP_OP_WRITE, slab_id, offset, (uint8_t *)buf, len);
}

fp_status_t farpool_node_stats(farpool_node_t *node, farpool_node_stats_t *stats_p,
                               size_t stats_size)
{
    uint8_t buf[FP_PROTO_STATS_REP_SIZE];
    uint64_t v[FP_PROTO_STATS_FIELDS];
    farpool_node_stats_t st;
    uint32_t len = 0;
    fp_status_t status;

    if (node == NULL || stats_p == NULL || stats_size == 0)
        return FP_ERR_INVALID_PARAM;
    status = fp_node_call(node, FP_OP_STATS, NULL, 0, buf, sizeof(buf), &len);
    if (status != FP_OK)
        return status;
    if (len != sizeof(buf))
        return FP_ERR_PROTOCOL;
    for (unsigned i = 0; i < FP_PROTO_STATS_FIELDS; i++)
        v[i] = fp_proto_get_u64(buf + 8 * i);
    memset(&st, 0, sizeof(st));
    st.capacity = v[0];
    st.used = v[1];
    st.slab_size = v[2];
    st.slabs = v[3];
    st.clients = v[4];
    st.bytes_read = v[5];
    st.bytes_written = v[6];
    st.requests = v[7];
    st.errors = v[8];
    st.uptime_ms = v[9];
    fp_copy_out(stats_p, stats_size, &st, sizeof(st));
    return FP_OK;
}

fp_status_t farpool_node_ping(farpool_node_t *node, uint64_t *rtt_ns_p)
{
    uint8_t buf[8] = {0};
    uint64_t start = fp_time_ns();
    fp_status_t status;

    status = fp_node_call(node, FP_OP_PING, buf, sizeof(buf), buf, sizeof(buf), NULL);
    if (status == FP_OK && rtt_ns_p != NULL)
        *rtt_ns_p = fp_time_ns() - start;
    return status;
}

fp_transport_t *fp_node_transport(farpool_node_t *node)
{
    return node->tp;
}

const char *fp_node_addr(const farpool_node_t *node)
{
    return node->addr;
}

void fp_node_disconnect(farpool_node_t *node)
{
    node_break(node);
}

int fp_node_timeout_ms(const farpool_node_t *node)
{
    return node->timeout_ms;
}
