/* SPDX-License-Identifier: MIT */
/*
 * A small client of etcd's v3 API through its JSON gateway (etcd 3.4:
 * POST http://HOST:PORT/v3/kv/range and friends), over libcurl, with json-c
 * for the JSON and libsodium for the base64 of keys and values.
 *
 * An etcd URL names the cluster and a key prefix:
 * etcd://HOST:PORT[,HOST:PORT...]/PREFIX (HOST a name, an IPv4 address or
 * [IPv6]; PREFIX non-empty). The prefix keeps the leading '/': the URL
 * etcd://127.0.0.1:2379/farpool puts its keys under "/farpool/".
 *
 * Endpoints. A request goes to the endpoint that last answered; one that
 * cannot be reached (no connection) is left for the next, in turn, so a
 * cluster survives the loss of one member. A read or a lease keepalive is
 * tried on the next endpoint after any transport failure; a write only when
 * it surely was not sent (no connection made), for a write that timed out
 * may have been applied. When no endpoint answers the request fails with
 * FP_ERR_IO and a log line naming them. Every request has a deadline
 * (fp_etcd_open's @timeout_ms).
 *
 * Errors: FP_ERR_IO when etcd cannot be reached or refuses a request (logged
 * with etcd's message); FP_ERR_NO_ENTRY for a missing key or lease;
 * FP_ERR_ADDRESS for a URL that does not parse (logged, saying why).
 *
 * Thread safety: a client (fp_etcd_t) is used by one thread at a time; two
 * threads each open their own. fp_etcd_url_parse and fp_etcd_service_addr
 * may be called from any thread.
 */
#ifndef FP_COMMON_ETCD_H
#define FP_COMMON_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <farpool/status.h>

#include "common/log.h"

#define FP_ETCD_SCHEME        "etcd://"
#define FP_ETCD_ENDPOINTS_MAX 8
#define FP_ETCD_HOSTPORT_MAX  272  /* "HOST:PORT" or "[V6]:PORT", NUL included */
#define FP_ETCD_PREFIX_MAX    256  /* "/PREFIX", NUL included */
#define FP_ETCD_TIMEOUT_MS    5000 /* a request's deadline when the caller gives none */

/*
 * The key, under the prefix, that names the pool's metadata service: its
 * "HOST:PORT", put by the service under its lease (src/meta/meta_etcd.c).
 */
#define FP_ETCD_SERVICE_KEY "service"

/*
 * The folder, under the prefix, of the members' lease keys: MEMBERS/<node id
 * %016x> = the member's "HOST:PORT", each under that member's own lease.
 */
#define FP_ETCD_MEMBERS_DIR "members"

/** A parsed etcd URL. */
typedef struct fp_etcd_url {
    size_t nendpoints;
    char endpoints[FP_ETCD_ENDPOINTS_MAX][FP_ETCD_HOSTPORT_MAX]; /* "HOST:PORT" */
    char prefix[FP_ETCD_PREFIX_MAX];                             /* "/PREFIX", no trailing '/' */
} fp_etcd_url_t;

/* True if @url starts with "etcd://" (it may still fail to parse). */
bool fp_etcd_url_is(const char *url);

/*
 * Parse @url into *@out. FP_ERR_ADDRESS, with a log line on @log (may be
 * NULL) that says what is wrong, for anything but the syntax above.
 */
fp_status_t fp_etcd_url_parse(const char *url, const fp_log_t *log, fp_etcd_url_t *out);

typedef struct fp_etcd fp_etcd_t;

/*
 * A client of the cluster of @url (parsed as fp_etcd_url_parse); each
 * request given @timeout_ms (<= 0: FP_ETCD_TIMEOUT_MS). Connects lazily: an
 * unreachable cluster is found by the first request. Freed by fp_etcd_close.
 */
fp_status_t fp_etcd_open(const char *url, int timeout_ms, const fp_log_t *log, fp_etcd_t **etcd_p);
/* Accepts NULL. */
void fp_etcd_close(fp_etcd_t *etcd);
/* The URL's prefix ("/PREFIX"). */
const char *fp_etcd_prefix(const fp_etcd_t *etcd);
/* The cluster's revision as of the last answer (0 before any). */
int64_t fp_etcd_revision(const fp_etcd_t *etcd);

/** A key and its value, as etcd keeps them. */
typedef struct fp_etcd_kv {
    char *key;      /* malloc'd, NUL-terminated */
    uint8_t *value; /* malloc'd, value_len bytes and a NUL after them */
    size_t value_len;
    int64_t create_revision; /* 0: the key does not exist */
    int64_t mod_revision;
    int64_t version;
    int64_t lease; /* 0: none */
} fp_etcd_kv_t;

/* Free what @kv holds (not @kv itself); accepts a zeroed one. */
void fp_etcd_kv_clear(fp_etcd_kv_t *kv);
/* Free @count kvs of the array @kvs, and the array. */
void fp_etcd_kvs_free(fp_etcd_kv_t *kvs, size_t count);

/* Key @key into *@kv_p (the caller clears it); FP_ERR_NO_ENTRY if it does not exist. */
fp_status_t fp_etcd_get(fp_etcd_t *etcd, const char *key, fp_etcd_kv_t *kv_p);

/*
 * Every key that starts with @prefix, sorted by key, into a malloc'd array
 * (*@kvs_p, NULL when empty; freed with fp_etcd_kvs_free) of *@count_p.
 * Read in pages, all at one revision, so the whole is one snapshot.
 * @keys_only: values are not fetched (value_len 0).
 */
fp_status_t fp_etcd_range_prefix(fp_etcd_t *etcd, const char *prefix, bool keys_only,
                                 fp_etcd_kv_t **kvs_p, size_t *count_p);

typedef enum fp_etcd_target {
    FP_ETCD_CREATE = 0, /* the key's create_revision (0: missing) */
    FP_ETCD_MOD = 1,    /* its mod_revision */
    FP_ETCD_VALUE = 2,  /* its value */
    FP_ETCD_VERSION = 3,
} fp_etcd_target_t;

typedef enum fp_etcd_result {
    FP_ETCD_EQUAL = 0,
    FP_ETCD_GREATER = 1,
    FP_ETCD_LESS = 2,
    FP_ETCD_NOT_EQUAL = 3,
} fp_etcd_result_t;

/** A condition of a transaction: @target of @key compared with @revision or @value. */
typedef struct fp_etcd_cmp {
    const char *key;
    fp_etcd_target_t target;
    fp_etcd_result_t result;
    int64_t revision;  /* CREATE, MOD, VERSION */
    const void *value; /* VALUE: value_len bytes */
    size_t value_len;
} fp_etcd_cmp_t;

typedef enum fp_etcd_op_type {
    FP_ETCD_PUT = 0,
    FP_ETCD_DELETE = 1,        /* the key */
    FP_ETCD_DELETE_PREFIX = 2, /* every key that starts with it */
} fp_etcd_op_type_t;

/** A write of a transaction. */
typedef struct fp_etcd_op {
    fp_etcd_op_type_t type;
    const char *key;
    const void *value; /* PUT: value_len bytes */
    size_t value_len;
    int64_t lease; /* PUT: attach it to this lease (0: none) */
} fp_etcd_op_t;

/*
 * One transaction: if every one of @cmps holds, apply @ops (all or none) and
 * set *@succeeded_p; else apply nothing and clear it. FP_OK either way; a
 * failure of the request (or a refused op, such as one of an unknown lease)
 * is FP_ERR_IO. etcd limits a transaction's ops (--max-txn-ops, 128 by
 * default).
 */
fp_status_t fp_etcd_txn(fp_etcd_t *etcd, const fp_etcd_cmp_t *cmps, size_t ncmps,
                        const fp_etcd_op_t *ops, size_t nops, bool *succeeded_p);

/* A lease of @ttl_s seconds (etcd may raise it to its minimum); its id and granted TTL. */
fp_status_t fp_etcd_lease_grant(fp_etcd_t *etcd, int64_t ttl_s, int64_t *id_p, int64_t *ttl_p);
/* Renew lease @id once; its TTL again in *@ttl_p (may be NULL). FP_ERR_NO_ENTRY: it is gone. */
fp_status_t fp_etcd_lease_keepalive(fp_etcd_t *etcd, int64_t id, int64_t *ttl_p);
/* Revoke lease @id: the keys attached to it are deleted. FP_ERR_NO_ENTRY: no such lease. */
fp_status_t fp_etcd_lease_revoke(fp_etcd_t *etcd, int64_t id);

/*
 * The address ("HOST:PORT") of the pool's metadata service registered in the
 * cluster of @url (the value of PREFIX/service) into @addr (@cap bytes).
 * FP_ERR_NO_ENTRY: no service holds it; FP_ERR_IO: etcd cannot be reached;
 * FP_ERR_ADDRESS: @url does not parse; FP_ERR_TOO_LARGE: @cap is too small.
 */
fp_status_t fp_etcd_service_addr(const char *url, const fp_log_t *log, char *addr, size_t cap);

/*
 * Wait up to @wait_ms for key @key to change (be put or deleted) at revision
 * @from_rev or later: a change made already, since @from_rev, ends the wait
 * at once. *@changed_p is set when it changed, cleared when the wait ran out.
 * FP_ERR_IO: etcd cannot be reached or refused the watch (look again later).
 * A watch that etcd cancels (@from_rev compacted away) counts as a change:
 * the caller reads the key again either way. One watch at a time per client.
 */
fp_status_t fp_etcd_watch(fp_etcd_t *etcd, const char *key, int64_t from_rev, int wait_ms,
                          bool *changed_p);

/*
 * Wait up to @wait_ms for the pool's PREFIX/service (see
 * fp_etcd_service_addr) to be deleted (@held: a service holds it now) or put
 * (!@held). FP_OK once it has (at once if it is so already), FP_ERR_TIMED_OUT
 * when the wait ran out, FP_ERR_IO when etcd cannot be reached.
 */
fp_status_t fp_etcd_service_wait(const char *url, const fp_log_t *log, bool held, int wait_ms);

#endif /* FP_COMMON_ETCD_H */
