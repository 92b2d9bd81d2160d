/* SPDX-License-Identifier: MIT */
/*
 * A client of etcd's v3 API through its JSON gateway (see etcd.h).
 *
 * DESIGN
 * Requests. Each call is one POST of a JSON body (json-c builds it) to
 * http://ENDPOINT/v3/..., sent by the client's one libcurl easy handle (so the
 * connection is kept between requests), with a connect deadline and a whole
 * request deadline, no proxy and no signals. The answer is read into a
 * growing buffer and parsed by json-c. Keys and values travel as base64
 * (libsodium's original variant, with padding); the gateway writes 64-bit
 * integers as strings ("revision": "12") and leaves out fields of default
 * value (a false "succeeded", an empty "kvs"), so every field is optional
 * here.
 *
 * Endpoints. The client remembers the endpoint that last answered and starts
 * there; failover is described in etcd.h.
 *
 * Watches. The gateway streams a watch's answers as JSON objects one after
 * another on one long POST; they are parsed as they come (json-c's
 * incremental tokener), and the transfer is cut (the write callback refuses
 * the rest) at the first change, or ended by the request deadline, which is
 * the wait. A watch answers "created" first, then its events.
 *
 * Errors. etcd's refusals come back as {"error": ..., "message": ...,
 * "code": GRPC_CODE} (or, for the streamed keepalive, an "error" object);
 * code 5 (not found) is FP_ERR_NO_ENTRY and not logged here, anything else is
 * logged with etcd's message and is FP_ERR_IO.
 */
#include "etcd.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <sodium.h>

#define CONNECT_TIMEOUT_MS 2000 /* at most; less when the request's deadline is less */
#define RANGE_PAGE         1000 /* keys per page of a prefix range */
#define GRPC_NOT_FOUND     5
#define GRPC_UNAVAILABLE   14
#define B64_VARIANT        sodium_base64_VARIANT_ORIGINAL

struct fp_etcd {
    fp_etcd_url_t url;
    const fp_log_t *log;
    CURL *curl;
    struct curl_slist *headers;
    int timeout_ms;
    size_t current; /* the endpoint to try first */
    int64_t revision;
    char *buf; /* the answer being read */
    size_t len, cap;
    bool oom; /* the answer did not fit in memory */
};

/* ---- URLs ---- */

bool fp_etcd_url_is(const char *url)
{
    return url != NULL && strncmp(url, FP_ETCD_SCHEME, strlen(FP_ETCD_SCHEME)) == 0;
}

static bool host_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

/* Check one "HOST:PORT" (@len bytes at @s); NULL if fine, else what is wrong. */
static const char *endpoint_check(const char *s, size_t len)
{
    const char *colon, *p;
    unsigned long port = 0;

    if (len == 0)
        return "an empty endpoint";
    if (s[0] == '[') {
        const char *close = memchr(s, ']', len);

        if (close == NULL || close == s + 1)
            return "an IPv6 address without its closing ']'";
        for (p = s + 1; p < close; p++) {
            if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
                  (*p >= 'A' && *p <= 'F') || *p == ':' || *p == '.'))
                return "a bad character in an IPv6 address";
        }
        colon = close + 1;
        if (colon >= s + len || *colon != ':')
            return "an endpoint without its :PORT";
    } else {
        colon = NULL;
        for (p = s; p < s + len; p++) {
            if (*p == ':') {
                colon = p;
                break;
            }
            if (!host_char_ok(*p))
                return "a bad character in a host name";
        }
        if (colon == NULL)
            return "an endpoint without its :PORT";
        if (colon == s)
            return "an endpoint without its HOST";
    }
    if (colon + 1 >= s + len)
        return "an endpoint without its PORT";
    for (p = colon + 1; p < s + len; p++) {
        if (*p < '0' || *p > '9')
            return "a port that is not a number";
        port = port * 10 + (unsigned long)(*p - '0');
        if (port > 65535)
            return "a port past 65535";
    }
    if (port == 0)
        return "port 0";
    return NULL;
}

static fp_status_t url_fail(const fp_log_t *log, const char *url, const char *why)
{
    if (log != NULL)
        fp_error(log,
                 "etcd URL \"%.300s\": %s (the syntax is etcd://HOST:PORT[,HOST:PORT...]/PREFIX)",
                 url, why);
    return FP_ERR_ADDRESS;
}

fp_status_t fp_etcd_url_parse(const char *url, const fp_log_t *log, fp_etcd_url_t *out)
{
    fp_etcd_url_t parsed;
    const char *auth, *slash, *s, *why;
    size_t plen;

    if (url == NULL || out == NULL)
        return FP_ERR_INVALID_PARAM;
    if (!fp_etcd_url_is(url))
        return url_fail(log, url, "it does not start with etcd://");
    memset(&parsed, 0, sizeof(parsed));
    auth = url + strlen(FP_ETCD_SCHEME);
    slash = strchr(auth, '/');
    if (slash == NULL)
        return url_fail(log, url, "no /PREFIX");
    for (s = auth; s <= slash;) {
        const char *end = memchr(s, ',', (size_t)(slash - s));

        if (end == NULL)
            end = slash;
        why = endpoint_check(s, (size_t)(end - s));
        if (why != NULL)
            return url_fail(log, url, why);
        if (parsed.nendpoints == FP_ETCD_ENDPOINTS_MAX)
            return url_fail(log, url, "more than 8 endpoints");
        if ((size_t)(end - s) >= FP_ETCD_HOSTPORT_MAX)
            return url_fail(log, url, "an endpoint too long");
        memcpy(parsed.endpoints[parsed.nendpoints], s, (size_t)(end - s));
        parsed.nendpoints++;
        s = end + 1;
    }
    plen = strlen(slash);
    while (plen > 1 && slash[plen - 1] == '/')
        plen--;
    if (plen <= 1)
        return url_fail(log, url, "an empty PREFIX");
    if (plen >= FP_ETCD_PREFIX_MAX)
        return url_fail(log, url, "a PREFIX too long");
    for (size_t i = 0; i < plen; i++) {
        unsigned char c = (unsigned char)slash[i];

        if (c <= 0x20 || c >= 0x7f || c == '?' || c == '#' || c == '%' || c == '\\')
            return url_fail(log, url, "a bad character in the PREFIX");
    }
    memcpy(parsed.prefix, slash, plen);
    *out = parsed;
    return FP_OK;
}

/* ---- base64 and JSON ---- */

/* @len bytes at @data as a new JSON string of their base64; NULL on OOM. */
static json_object *json_b64(const void *data, size_t len)
{
    size_t cap = sodium_base64_ENCODED_LEN(len, B64_VARIANT);
    char *text = malloc(cap);
    json_object *obj;

    if (text == NULL)
        return NULL;
    sodium_bin2base64(text, cap, data, len, B64_VARIANT);
    obj = json_object_new_string(text);
    free(text);
    return obj;
}

/*
 * The base64 string field @name of @obj, decoded into a malloc'd buffer
 * (*@out_p, with a NUL after its *@len_p bytes). A missing field is empty.
 * False if it is not base64 or memory ran out.
 */
static bool json_get_b64(json_object *obj, const char *name, uint8_t **out_p, size_t *len_p)
{
    json_object *field = NULL;
    const char *text = "";
    size_t tlen, len = 0;
    uint8_t *out;

    if (json_object_object_get_ex(obj, name, &field)) {
        if (!json_object_is_type(field, json_type_string))
            return false;
        text = json_object_get_string(field);
    }
    tlen = strlen(text);
    out = malloc(tlen / 4 * 3 + 4);
    if (out == NULL)
        return false;
    if (tlen > 0 &&
        sodium_base642bin(out, tlen / 4 * 3 + 3, text, tlen, NULL, &len, NULL, B64_VARIANT) != 0) {
        free(out);
        return false;
    }
    out[len] = '\0';
    *out_p = out;
    *len_p = len;
    return true;
}

/* The integer field @name of @obj (a string or a number); 0 if missing or junk. */
static int64_t json_get_i64(json_object *obj, const char *name)
{
    json_object *field = NULL;
    const char *text;
    char *end;
    long long v;

    if (obj == NULL || !json_object_object_get_ex(obj, name, &field))
        return 0;
    if (json_object_is_type(field, json_type_int))
        return json_object_get_int64(field);
    if (!json_object_is_type(field, json_type_string))
        return 0;
    text = json_object_get_string(field);
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return 0;
    return (int64_t)v;
}

static json_object *json_i64(int64_t v)
{
    char text[32];

    snprintf(text, sizeof(text), "%" PRId64, v);
    return json_object_new_string(text);
}

/* Add @val to @obj under @name; false (and @val freed) on failure. */
static bool json_put(json_object *obj, const char *name, json_object *val)
{
    if (val == NULL)
        return false;
    if (json_object_object_add(obj, name, val) != 0) {
        json_object_put(val);
        return false;
    }
    return true;
}

static bool json_append(json_object *arr, json_object *val)
{
    if (val == NULL)
        return false;
    if (json_object_array_add(arr, val) != 0) {
        json_object_put(val);
        return false;
    }
    return true;
}

/* ---- requests ---- */

static size_t body_write(char *data, size_t size, size_t n, void *arg)
{
    fp_etcd_t *etcd = arg;
    size_t len = size * n;

    if (etcd->len + len + 1 > etcd->cap) {
        size_t ncap = etcd->cap == 0 ? 4096 : etcd->cap;
        char *grown;

        while (ncap < etcd->len + len + 1)
            ncap *= 2;
        grown = realloc(etcd->buf, ncap);
        if (grown == NULL) {
            etcd->oom = true;
            return 0; /* curl fails the transfer */
        }
        etcd->buf = grown;
        etcd->cap = ncap;
    }
    memcpy(etcd->buf + etcd->len, data, len);
    etcd->len += len;
    etcd->buf[etcd->len] = '\0';
    return len;
}

/* etcd's refusal in @resp, if any: its gRPC code (-1 when none) and message. */
static int answer_error(json_object *resp, const char **msg_p)
{
    json_object *err = NULL, *field = NULL;

    *msg_p = "";
    if (!json_object_object_get_ex(resp, "error", &err))
        return -1;
    if (json_object_is_type(err, json_type_object)) { /* a streamed call's error */
        if (json_object_object_get_ex(err, "message", &field))
            *msg_p = json_object_get_string(field);
        return (int)json_get_i64(err, "grpc_code");
    }
    if (json_object_object_get_ex(resp, "message", &field))
        *msg_p = json_object_get_string(field);
    else
        *msg_p = json_object_get_string(err);
    return (int)json_get_i64(resp, "code");
}

/* Whether a transfer that failed with @rc surely did not reach the server. */
static bool not_sent(CURL *curl, CURLcode rc)
{
    curl_off_t connect_us = 0;

    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
        return true;
    if (rc == CURLE_OPERATION_TIMEDOUT &&
        curl_easy_getinfo(curl, CURLINFO_CONNECT_TIME_T, &connect_us) == CURLE_OK &&
        connect_us == 0)
        return true;
    return false;
}

/* One POST of @body to @path at endpoint @ep; curl's code. */
static CURLcode post_one(fp_etcd_t *etcd, size_t ep, const char *path, const char *body)
{
    char url[FP_ETCD_HOSTPORT_MAX + 64];
    CURL *c = etcd->curl;
    long connect_ms = etcd->timeout_ms < CONNECT_TIMEOUT_MS ? etcd->timeout_ms : CONNECT_TIMEOUT_MS;

    snprintf(url, sizeof(url), "http://%s%s", etcd->url.endpoints[ep], path);
    etcd->len = 0;
    etcd->oom = false;
    if (etcd->buf != NULL)
        etcd->buf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)etcd->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    return curl_easy_perform(c);
}

/* The endpoints, "A, B, C", into @out. */
static void endpoints_text(const fp_etcd_t *etcd, char *out, size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < etcd->url.nendpoints && used < size; i++) {
        int n =
            snprintf(out + used, size - used, "%s%s", i == 0 ? "" : ", ", etcd->url.endpoints[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/*
 * POST @req (consumed) to @path and parse the answer into *@resp_p (the
 * caller puts it). @idempotent: it may be sent again to the next endpoint
 * after any failure. FP_ERR_NO_ENTRY (not logged) for etcd's "not found".
 */
static fp_status_t request(fp_etcd_t *etcd, const char *path, json_object *req, bool idempotent,
                           json_object **resp_p)
{
    const char *body, *msg;
    char eps[FP_ETCD_ENDPOINTS_MAX * FP_ETCD_HOSTPORT_MAX];
    char last[FP_ETCD_HOSTPORT_MAX + 512] = "";
    size_t n = etcd->url.nendpoints;
    json_object *resp = NULL, *header = NULL;
    fp_status_t status = FP_ERR_IO;
    int code;

    if (req == NULL)
        return FP_ERR_NO_MEMORY;
    body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    if (body == NULL) {
        json_object_put(req);
        return FP_ERR_NO_MEMORY;
    }
    for (size_t tries = 0; tries < n; tries++) {
        size_t ep = (etcd->current + tries) % n;
        CURLcode rc = post_one(etcd, ep, path, body);
        long http = 0;

        if (rc != CURLE_OK) {
            snprintf(last, sizeof(last), "%s: %s", etcd->url.endpoints[ep],
                     etcd->oom ? "out of memory" : curl_easy_strerror(rc));
            if (etcd->oom) {
                status = FP_ERR_NO_MEMORY;
                break;
            }
            if (!idempotent && !not_sent(etcd->curl, rc)) {
                /* It may have been applied: not sent again. */
                etcd->current = (ep + 1) % n;
                fp_error(etcd->log, "etcd: %s%s failed, its outcome unknown: %s",
                         etcd->url.endpoints[ep], path, curl_easy_strerror(rc));
                json_object_put(req);
                return FP_ERR_IO;
            }
            fp_debug(etcd->log, "etcd: %s: %s", etcd->url.endpoints[ep], curl_easy_strerror(rc));
            continue;
        }
        curl_easy_getinfo(etcd->curl, CURLINFO_RESPONSE_CODE, &http);
        resp = json_tokener_parse(etcd->buf != NULL ? etcd->buf : "");
        if (resp == NULL || !json_object_is_type(resp, json_type_object)) {
            snprintf(last, sizeof(last), "%s: HTTP %ld, an answer that is not JSON: %.100s",
                     etcd->url.endpoints[ep], http, etcd->buf != NULL ? etcd->buf : "");
            json_object_put(resp);
            resp = NULL;
            if (!idempotent)
                break;
            continue;
        }
        code = answer_error(resp, &msg);
        if (code == GRPC_UNAVAILABLE && idempotent) {
            snprintf(last, sizeof(last), "%s: %s", etcd->url.endpoints[ep], msg);
            json_object_put(resp);
            resp = NULL;
            continue;
        }
        etcd->current = ep;
        if (code == GRPC_NOT_FOUND) {
            fp_debug(etcd->log, "etcd: %s%s: %s", etcd->url.endpoints[ep], path, msg);
            json_object_put(resp);
            json_object_put(req);
            return FP_ERR_NO_ENTRY;
        }
        if (code >= 0 || http != 200) {
            fp_error(etcd->log, "etcd: %s%s refused (HTTP %ld, code %d): %s",
                     etcd->url.endpoints[ep], path, http, code, msg);
            json_object_put(resp);
            json_object_put(req);
            return FP_ERR_IO;
        }
        if (json_object_object_get_ex(resp, "header", &header) ||
            (json_object_object_get_ex(resp, "result", &header) &&
             json_object_object_get_ex(header, "header", &header))) {
            int64_t rev = json_get_i64(header, "revision");

            if (rev > etcd->revision)
                etcd->revision = rev;
        }
        json_object_put(req);
        *resp_p = resp;
        return FP_OK;
    }
    json_object_put(req);
    if (status == FP_ERR_NO_MEMORY) {
        fp_error(etcd->log, "etcd: %s: out of memory for an answer", path);
        return status;
    }
    endpoints_text(etcd, eps, sizeof(eps));
    fp_error(etcd->log, "etcd: no endpoint of %s answers %s (last: %s)", eps, path, last);
    etcd->current = (etcd->current + 1) % n;
    return FP_ERR_IO;
}

/* ---- open and close ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;

static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

fp_status_t fp_etcd_open(const char *url, int timeout_ms, const fp_log_t *log, fp_etcd_t **etcd_p)
{
    fp_etcd_t *etcd;
    fp_status_t status;

    if (url == NULL || etcd_p == NULL)
        return FP_ERR_INVALID_PARAM;
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        fp_error(log, "etcd: cannot set libcurl up: %s", curl_easy_strerror(curl_init_rc));
        return FP_ERR_IO;
    }
    etcd = calloc(1, sizeof(*etcd));
    if (etcd == NULL)
        return FP_ERR_NO_MEMORY;
    status = fp_etcd_url_parse(url, log, &etcd->url);
    if (status != FP_OK)
        goto err_free;
    etcd->log = log;
    etcd->timeout_ms = timeout_ms > 0 ? timeout_ms : FP_ETCD_TIMEOUT_MS;
    etcd->curl = curl_easy_init();
    etcd->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (etcd->curl == NULL || etcd->headers == NULL) {
        status = FP_ERR_NO_MEMORY;
        goto err_free;
    }
    curl_easy_setopt(etcd->curl, CURLOPT_HTTPHEADER, etcd->headers);
    curl_easy_setopt(etcd->curl, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(etcd->curl, CURLOPT_WRITEDATA, etcd);
    curl_easy_setopt(etcd->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(etcd->curl, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(etcd->curl, CURLOPT_PROTOCOLS_STR, "http");
    *etcd_p = etcd;
    return FP_OK;

err_free:
    fp_etcd_close(etcd);
    return status;
}

void fp_etcd_close(fp_etcd_t *etcd)
{
    if (etcd == NULL)
        return;
    if (etcd->curl != NULL)
        curl_easy_cleanup(etcd->curl);
    curl_slist_free_all(etcd->headers);
    free(etcd->buf);
    free(etcd);
}

const char *fp_etcd_prefix(const fp_etcd_t *etcd)
{
    return etcd->url.prefix;
}

int64_t fp_etcd_revision(const fp_etcd_t *etcd)
{
    return etcd->revision;
}

/* ---- keys ---- */

void fp_etcd_kv_clear(fp_etcd_kv_t *kv)
{
    if (kv == NULL)
        return;
    free(kv->key);
    free(kv->value);
    memset(kv, 0, sizeof(*kv));
}

void fp_etcd_kvs_free(fp_etcd_kv_t *kvs, size_t count)
{
    for (size_t i = 0; i < count && kvs != NULL; i++)
        fp_etcd_kv_clear(&kvs[i]);
    free(kvs);
}

/* A kv object of an answer into *@kv; false if it is malformed. */
static bool kv_read(json_object *obj, fp_etcd_kv_t *kv)
{
    size_t key_len;

    memset(kv, 0, sizeof(*kv));
    if (!json_get_b64(obj, "key", (uint8_t **)&kv->key, &key_len))
        return false;
    if (!json_get_b64(obj, "value", &kv->value, &kv->value_len)) {
        fp_etcd_kv_clear(kv);
        return false;
    }
    kv->create_revision = json_get_i64(obj, "create_revision");
    kv->mod_revision = json_get_i64(obj, "mod_revision");
    kv->version = json_get_i64(obj, "version");
    kv->lease = json_get_i64(obj, "lease");
    return true;
}

/*
 * One range request: [@key, @end) (@end NULL: the key alone), at most
 * @limit keys (0: no limit), at @revision (0: the latest; *@revision_p gets
 * the answer's). The kvs are appended to *@kvs_p (*@count_p, *@cap_p).
 */
static fp_status_t range_once(fp_etcd_t *etcd, const uint8_t *key, size_t key_len,
                              const uint8_t *end, size_t end_len, int64_t limit, bool keys_only,
                              int64_t *revision_p, bool *more_p, fp_etcd_kv_t **kvs_p,
                              size_t *count_p, size_t *cap_p)
{
    json_object *req = json_object_new_object(), *resp = NULL, *kvs = NULL, *field = NULL;
    fp_status_t status;
    bool ok = req != NULL && json_put(req, "key", json_b64(key, key_len));
    size_t n;

    if (ok && end != NULL)
        ok = json_put(req, "range_end", json_b64(end, end_len));
    if (ok && limit > 0)
        ok = json_put(req, "limit", json_i64(limit));
    if (ok && *revision_p > 0)
        ok = json_put(req, "revision", json_i64(*revision_p));
    if (ok && keys_only)
        ok = json_put(req, "keys_only", json_object_new_boolean(1));
    if (!ok) {
        json_object_put(req);
        return FP_ERR_NO_MEMORY;
    }
    status = request(etcd, "/v3/kv/range", req, true, &resp);
    if (status != FP_OK)
        return status;
    if (json_object_object_get_ex(resp, "header", &field))
        *revision_p = json_get_i64(field, "revision");
    *more_p = json_object_object_get_ex(resp, "more", &field) && json_object_get_boolean(field);
    if (!json_object_object_get_ex(resp, "kvs", &kvs) ||
        !json_object_is_type(kvs, json_type_array)) {
        json_object_put(resp);
        return FP_OK;
    }
    n = json_object_array_length(kvs);
    if (*count_p + n > *cap_p) {
        size_t ncap = *cap_p == 0 ? 16 : *cap_p;
        fp_etcd_kv_t *grown;

        while (ncap < *count_p + n)
            ncap *= 2;
        grown = realloc(*kvs_p, ncap * sizeof(*grown));
        if (grown == NULL) {
            json_object_put(resp);
            return FP_ERR_NO_MEMORY;
        }
        *kvs_p = grown;
        *cap_p = ncap;
    }
    for (size_t i = 0; i < n; i++) {
        if (!kv_read(json_object_array_get_idx(kvs, i), &(*kvs_p)[*count_p])) {
            fp_error(etcd->log, "etcd: a malformed key in an answer of /v3/kv/range");
            json_object_put(resp);
            return FP_ERR_IO;
        }
        (*count_p)++;
    }
    json_object_put(resp);
    return FP_OK;
}

fp_status_t fp_etcd_get(fp_etcd_t *etcd, const char *key, fp_etcd_kv_t *kv_p)
{
    fp_etcd_kv_t *kvs = NULL;
    size_t count = 0, cap = 0;
    int64_t revision = 0;
    bool more = false;
    fp_status_t status;

    if (etcd == NULL || key == NULL || kv_p == NULL)
        return FP_ERR_INVALID_PARAM;
    status = range_once(etcd, (const uint8_t *)key, strlen(key), NULL, 0, 0, false, &revision,
                        &more, &kvs, &count, &cap);
    if (status == FP_OK && count == 0)
        status = FP_ERR_NO_ENTRY;
    if (status == FP_OK) {
        *kv_p = kvs[0];
        memset(&kvs[0], 0, sizeof(kvs[0]));
    }
    fp_etcd_kvs_free(kvs, count);
    return status;
}

fp_status_t fp_etcd_range_prefix(fp_etcd_t *etcd, const char *prefix, bool keys_only,
                                 fp_etcd_kv_t **kvs_p, size_t *count_p)
{
    size_t plen, count = 0, cap = 0, from_len;
    uint8_t *end, *from = NULL;
    fp_etcd_kv_t *kvs = NULL;
    int64_t revision = 0;
    fp_status_t status;
    bool more = true;

    if (etcd == NULL || prefix == NULL || prefix[0] == '\0' || kvs_p == NULL || count_p == NULL)
        return FP_ERR_INVALID_PARAM;
    plen = strlen(prefix);
    end = malloc(plen);
    if (end == NULL)
        return FP_ERR_NO_MEMORY;
    /* The first key past every key with the prefix: its last byte (below 0xff) plus one. */
    memcpy(end, prefix, plen);
    while (plen > 0 && end[plen - 1] == 0xff)
        plen--;
    if (plen == 0) {
        free(end);
        return FP_ERR_INVALID_PARAM;
    }
    end[plen - 1]++;
    from_len = strlen(prefix);
    from = malloc(from_len + 1);
    if (from == NULL) {
        free(end);
        return FP_ERR_NO_MEMORY;
    }
    memcpy(from, prefix, from_len);
    status = FP_OK;
    while (more && status == FP_OK) {
        status = range_once(etcd, from, from_len, end, plen, RANGE_PAGE, keys_only, &revision,
                            &more, &kvs, &count, &cap);
        if (status == FP_OK && more && count > 0) {
            /* The next page starts just past the last key: that key and a NUL. */
            size_t klen = strlen(kvs[count - 1].key);
            uint8_t *next = realloc(from, klen + 1);

            if (next == NULL) {
                status = FP_ERR_NO_MEMORY;
                break;
            }
            from = next;
            memcpy(from, kvs[count - 1].key, klen);
            from[klen] = '\0';
            from_len = klen + 1;
        } else if (count == 0) {
            more = false;
        }
    }
    free(end);
    free(from);
    if (status != FP_OK) {
        fp_etcd_kvs_free(kvs, count);
        return status;
    }
    *kvs_p = kvs;
    *count_p = count;
    return FP_OK;
}

/* ---- transactions ---- */

static const char *const target_names[] = {"CREATE", "MOD", "VALUE", "VERSION"};
static const char *const target_fields[] = {"create_revision", "mod_revision", "value", "version"};
static const char *const result_names[] = {"EQUAL", "GREATER", "LESS", "NOT_EQUAL"};

static json_object *cmp_json(const fp_etcd_cmp_t *cmp)
{
    json_object *obj = json_object_new_object();
    bool ok = obj != NULL && (unsigned)cmp->target <= FP_ETCD_VERSION &&
              (unsigned)cmp->result <= FP_ETCD_NOT_EQUAL && cmp->key != NULL;

    ok = ok && json_put(obj, "key", json_b64(cmp->key, strlen(cmp->key))) &&
         json_put(obj, "target", json_object_new_string(target_names[cmp->target])) &&
         json_put(obj, "result", json_object_new_string(result_names[cmp->result]));
    if (ok && cmp->target == FP_ETCD_VALUE)
        ok = json_put(obj, "value", json_b64(cmp->value != NULL ? cmp->value : "", cmp->value_len));
    else if (ok)
        ok = json_put(obj, target_fields[cmp->target], json_i64(cmp->revision));
    if (!ok) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

static json_object *op_json(const fp_etcd_op_t *op)
{
    json_object *obj = json_object_new_object(), *wrap;
    size_t klen = op->key != NULL ? strlen(op->key) : 0;
    bool ok = obj != NULL && klen > 0 && json_put(obj, "key", json_b64(op->key, klen));
    const char *name = "request_delete_range";

    if (ok && op->type == FP_ETCD_PUT) {
        name = "request_put";
        ok = json_put(obj, "value", json_b64(op->value != NULL ? op->value : "", op->value_len));
        if (ok && op->lease != 0)
            ok = json_put(obj, "lease", json_i64(op->lease));
    } else if (ok && op->type == FP_ETCD_DELETE_PREFIX) {
        uint8_t *end = (uint8_t)op->key[klen - 1] != 0xff ? malloc(klen) : NULL;

        ok = end != NULL;
        if (ok) {
            memcpy(end, op->key, klen);
            end[klen - 1]++;
            ok = json_put(obj, "range_end", json_b64(end, klen));
        }
        free(end);
    } else if (ok && op->type != FP_ETCD_DELETE) {
        ok = false;
    }
    if (!ok) {
        json_object_put(obj);
        return NULL;
    }
    wrap = json_object_new_object();
    if (wrap == NULL) {
        json_object_put(obj);
        return NULL;
    }
    if (!json_put(wrap, name, obj)) {
        json_object_put(wrap);
        return NULL;
    }
    return wrap;
}

fp_status_t fp_etcd_txn(fp_etcd_t *etcd, const fp_etcd_cmp_t *cmps, size_t ncmps,
                        const fp_etcd_op_t *ops, size_t nops, bool *succeeded_p)
{
    json_object *req, *carr, *oarr, *resp = NULL, *field = NULL;
    fp_status_t status;
    bool ok;

    if (etcd == NULL || succeeded_p == NULL || (ncmps > 0 && cmps == NULL) ||
        (nops > 0 && ops == NULL))
        return FP_ERR_INVALID_PARAM;
    req = json_object_new_object();
    if (req == NULL)
        return FP_ERR_NO_MEMORY;
    carr = json_object_new_array();
    ok = json_put(req, "compare", carr);
    oarr = ok ? json_object_new_array() : NULL;
    ok = ok && json_put(req, "success", oarr);
    if (!ok) {
        json_object_put(req);
        return FP_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < ncmps && ok; i++)
        ok = json_append(carr, cmp_json(&cmps[i]));
    for (size_t i = 0; i < nops && ok; i++)
        ok = json_append(oarr, op_json(&ops[i]));
    if (!ok) {
        json_object_put(req);
        return FP_ERR_INVALID_PARAM;
    }
    status = request(etcd, "/v3/kv/txn", req, false, &resp);
    if (status == FP_ERR_NO_ENTRY) {
        fp_error(etcd->log, "etcd: a transaction refused: a lease it names is gone");
        return FP_ERR_IO;
    }
    if (status != FP_OK)
        return status;
    *succeeded_p =
        json_object_object_get_ex(resp, "succeeded", &field) && json_object_get_boolean(field);
    json_object_put(resp);
    return FP_OK;
}

/* ---- leases ---- */

fp_status_t fp_etcd_lease_grant(fp_etcd_t *etcd, int64_t ttl_s, int64_t *id_p, int64_t *ttl_p)
{
    json_object *req, *resp = NULL;
    fp_status_t status;
    int64_t id, ttl;

    if (etcd == NULL || ttl_s <= 0 || id_p == NULL)
        return FP_ERR_INVALID_PARAM;
    req = json_object_new_object();
    if (req == NULL || !json_put(req, "TTL", json_i64(ttl_s))) {
        json_object_put(req);
        return FP_ERR_NO_MEMORY;
    }
    status = request(etcd, "/v3/lease/grant", req, false, &resp);
    if (status == FP_ERR_NO_ENTRY)
        status = FP_ERR_IO;
    if (status != FP_OK)
        return status;
    id = json_get_i64(resp, "ID");
    ttl = json_get_i64(resp, "TTL");
    json_object_put(resp);
    if (id == 0 || ttl <= 0) {
        fp_error(etcd->log, "etcd: a lease grant answered without a lease");
        return FP_ERR_IO;
    }
    *id_p = id;
    if (ttl_p != NULL)
        *ttl_p = ttl;
    return FP_OK;
}

/* The body {"ID": "@id"}; NULL on OOM. */
static json_object *lease_req(int64_t id)
{
    json_object *req = json_object_new_object();

    if (req == NULL || !json_put(req, "ID", json_i64(id))) {
        json_object_put(req);
        return NULL;
    }
    return req;
}

fp_status_t fp_etcd_lease_keepalive(fp_etcd_t *etcd, int64_t id, int64_t *ttl_p)
{
    json_object *resp = NULL, *result = NULL;
    fp_status_t status;
    int64_t ttl;

    if (etcd == NULL || id == 0)
        return FP_ERR_INVALID_PARAM;
    status = request(etcd, "/v3/lease/keepalive", lease_req(id), true, &resp);
    if (status != FP_OK)
        return status;
    /* A stream of one answer; a lease that is gone answers a TTL of 0 (left out). */
    ttl = json_object_object_get_ex(resp, "result", &result) ? json_get_i64(result, "TTL") : 0;
    json_object_put(resp);
    if (ttl <= 0)
        return FP_ERR_NO_ENTRY;
    if (ttl_p != NULL)
        *ttl_p = ttl;
    return FP_OK;
}

fp_status_t fp_etcd_lease_revoke(fp_etcd_t *etcd, int64_t id)
{
    json_object *resp = NULL;
    fp_status_t status;

    if (etcd == NULL || id == 0)
        return FP_ERR_INVALID_PARAM;
    status = request(etcd, "/v3/lease/revoke", lease_req(id), true, &resp);
    if (status == FP_OK)
        json_object_put(resp);
    return status;
}

/* ---- the metadata service's address ---- */

fp_status_t fp_etcd_service_addr(const char *url, const fp_log_t *log, char *addr, size_t cap)
{
    char key[FP_ETCD_PREFIX_MAX + sizeof(FP_ETCD_SERVICE_KEY) + 1];
    fp_etcd_kv_t kv = {0};
    fp_etcd_t *etcd = NULL;
    fp_status_t status;

    if (url == NULL || addr == NULL || cap == 0)
        return FP_ERR_INVALID_PARAM;
    status = fp_etcd_open(url, 0, log, &etcd);
    if (status != FP_OK)
        return status;
    snprintf(key, sizeof(key), "%s/%s", etcd->url.prefix, FP_ETCD_SERVICE_KEY);
    status = fp_etcd_get(etcd, key, &kv);
    if (status == FP_ERR_NO_ENTRY) {
        fp_debug(log, "etcd: no metadata service holds %s", key);
    } else if (status == FP_OK) {
        if (kv.value_len == 0 || memchr(kv.value, '\0', kv.value_len) != NULL) {
            fp_error(log, "etcd: %s holds no address", key);
            status = FP_ERR_IO;
        } else if (kv.value_len >= cap) {
            status = FP_ERR_TOO_LARGE;
        } else {
            memcpy(addr, kv.value, kv.value_len + 1);
        }
    }
    fp_etcd_kv_clear(&kv);
    fp_etcd_close(etcd);
    return status;
}

/* ---- watches ---- */

typedef struct watch_read {
    fp_etcd_t *etcd;
    json_tokener *tok;
    bool created, changed, refused;
} watch_read_t;

/* One answer of a watch's stream. */
static void watch_answer(watch_read_t *w, json_object *obj)
{
    json_object *result = NULL, *field = NULL;
    const char *msg;

    if (answer_error(obj, &msg) >= 0 || !json_object_object_get_ex(obj, "result", &result)) {
        fp_debug(w->etcd->log, "etcd: a watch refused: %s", msg);
        w->refused = true;
        return;
    }
    if (json_object_object_get_ex(result, "created", &field) && json_object_get_boolean(field))
        w->created = true;
    /* Events, or the watch cancelled (its start compacted away): read again. */
    if ((json_object_object_get_ex(result, "events", &field) &&
         json_object_is_type(field, json_type_array) && json_object_array_length(field) > 0) ||
        (json_object_object_get_ex(result, "canceled", &field) && json_object_get_boolean(field)))
        w->changed = true;
}

static size_t watch_write(char *data, size_t size, size_t n, void *arg)
{
    watch_read_t *w = arg;
    size_t len = size * n, off = 0;

    while (off < len && !w->changed && !w->refused) {
        size_t chunk = len - off < INT_MAX ? len - off : INT_MAX;
        json_object *obj = json_tokener_parse_ex(w->tok, data + off, (int)chunk);

        if (obj == NULL) {
            if (json_tokener_get_error(w->tok) == json_tokener_continue)
                return len;    /* the rest of the answer comes in the next piece */
            w->refused = true; /* not JSON */
            break;
        }
        off += json_tokener_get_parse_end(w->tok);
        json_tokener_reset(w->tok);
        watch_answer(w, obj);
        json_object_put(obj);
    }
    return w->changed || w->refused ? 0 : len; /* 0 cuts the transfer */
}

fp_status_t fp_etcd_watch(fp_etcd_t *etcd, const char *key, int64_t from_rev, int wait_ms,
                          bool *changed_p)
{
    json_object *req, *create;
    watch_read_t w = {.etcd = etcd};
    const char *body;
    fp_status_t status = FP_ERR_IO;
    size_t n;

    if (etcd == NULL || key == NULL || wait_ms <= 0 || changed_p == NULL)
        return FP_ERR_INVALID_PARAM;
    *changed_p = false;
    req = json_object_new_object();
    create = json_object_new_object();
    if (req == NULL || create == NULL || !json_put(create, "key", json_b64(key, strlen(key))) ||
        (from_rev > 0 && !json_put(create, "start_revision", json_i64(from_rev)))) {
        json_object_put(create);
        json_object_put(req);
        return FP_ERR_NO_MEMORY;
    }
    if (!json_put(req, "create_request", create) ||
        (body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN)) == NULL ||
        (w.tok = json_tokener_new()) == NULL) {
        json_object_put(req);
        return FP_ERR_NO_MEMORY;
    }
    curl_easy_setopt(etcd->curl, CURLOPT_WRITEFUNCTION, watch_write);
    curl_easy_setopt(etcd->curl, CURLOPT_WRITEDATA, &w);
    n = etcd->url.nendpoints;
    for (size_t tries = 0; tries < n; tries++) {
        size_t ep = (etcd->current + tries) % n;
        int saved = etcd->timeout_ms;
        CURLcode rc;

        etcd->timeout_ms = wait_ms;
        rc = post_one(etcd, ep, "/v3/watch", body);
        etcd->timeout_ms = saved;
        if (w.changed || (w.created && rc == CURLE_OPERATION_TIMEDOUT)) {
            etcd->current = ep;
            status = FP_OK; /* changed, or waited it out */
            break;
        }
        if (w.refused)
            break;
        fp_debug(etcd->log, "etcd: %s: a watch ended: %s", etcd->url.endpoints[ep],
                 curl_easy_strerror(rc));
        if (!not_sent(etcd->curl, rc))
            break; /* it answered, then went: say so rather than wait again */
        json_tokener_reset(w.tok);
    }
    curl_easy_setopt(etcd->curl, CURLOPT_WRITEFUNCTION, body_write);
    curl_easy_setopt(etcd->curl, CURLOPT_WRITEDATA, etcd);
    json_tokener_free(w.tok);
    json_object_put(req);
    *changed_p = w.changed;
    return status;
}

fp_status_t fp_etcd_service_wait(const char *url, const fp_log_t *log, bool held, int wait_ms)
{
    char key[FP_ETCD_PREFIX_MAX + sizeof(FP_ETCD_SERVICE_KEY) + 1];
    fp_etcd_kv_t kv = {0};
    fp_etcd_t *etcd = NULL;
    fp_status_t status;
    bool changed = false;

    if (url == NULL || wait_ms <= 0)
        return FP_ERR_INVALID_PARAM;
    status = fp_etcd_open(url, 0, log, &etcd);
    if (status != FP_OK)
        return status;
    snprintf(key, sizeof(key), "%s/%s", etcd->url.prefix, FP_ETCD_SERVICE_KEY);
    status = fp_etcd_get(etcd, key, &kv);
    fp_etcd_kv_clear(&kv);
    if (status == FP_OK || status == FP_ERR_NO_ENTRY) {
        if ((status == FP_OK) != held) {
            status = FP_OK; /* so already */
        } else {
            /* From the revision just read: a change since is seen at once. */
            status = fp_etcd_watch(etcd, key, fp_etcd_revision(etcd) + 1, wait_ms, &changed);
            if (status == FP_OK && !changed)
                status = FP_ERR_TIMED_OUT;
        }
    }
    fp_etcd_close(etcd);
    return status;
}
