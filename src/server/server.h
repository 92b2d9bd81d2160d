/* SPDX-License-Identifier: MIT */
/*
 * The memory node: an event loop serving the farpool protocol over TCP from a
 * slab store. farpoold's main() parses the command line into
 * fp_server_params_t and runs one of these.
 *
 * Thread safety: fp_server_run() runs the loop on the calling thread and owns
 * all server state; fp_server_stop() may be called from any thread or a
 * signal handler.
 */
#ifndef FP_SERVER_SERVER_H
#define FP_SERVER_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <farpool/status.h>

#include "common/log.h"
#include "common/parse.h"
#include "metrics.h"

typedef struct fp_server fp_server_t;

/*
 * Where POOL_* requests go on the metadata node: called on the loop's thread
 * with a complete request (@payload valid during the call only) and the
 * connection's @token and client @key; the answer comes back, from any
 * thread, through fp_server_post_reply() with the same token, op and id.
 */
typedef void (*fp_server_pool_op_t)(void *arg, uint64_t token, const uint8_t *key, uint8_t op,
                                    uint64_t id, const uint8_t *payload, uint32_t len);

typedef struct fp_server_params {
    fp_addr_t listen;      /* where to listen; port 0 picks a free port */
    uint64_t capacity;     /* bytes to donate at most */
    uint64_t slab_size;    /* bytes per slab */
    const uint8_t *secret; /* NULL: no authentication (loopback only) */
    size_t secret_len;
    int handshake_timeout_ms;    /* HELLO (and AUTH) must complete within this */
    int idle_timeout_ms;         /* a connection stuck mid-frame is closed after this */
    fp_log_t *log;               /* where the node logs; owned by the caller, outlives the server */
    fp_server_pool_op_t pool_op; /* NULL: not a metadata node (POOL_* are FP_ERR_UNSUPPORTED) */
    void *pool_arg;
} fp_server_params_t;

/*
 * Create the store and the listening socket. Refuses a non-loopback address
 * without a secret (FP_ERR_INVALID_PARAM). Logs why on failure.
 */
fp_status_t fp_server_create(const fp_server_params_t *params, fp_server_t **server_p);

/* The address actually bound (with the port the kernel chose). */
void fp_server_local_addr(const fp_server_t *server, fp_addr_t *addr_p);

/* The random id this node drew at start (its HELLO's node_id). */
uint64_t fp_server_node_id(const fp_server_t *server);

/*
 * The counters the loop keeps (metrics.h): valid until fp_server_destroy();
 * any thread may read them with fp_metrics_get().
 */
const fp_server_counters_t *fp_server_counters(const fp_server_t *server);

/* Serve until fp_server_stop(); FP_OK after a requested stop. */
fp_status_t fp_server_run(fp_server_t *server);

/* Ask the loop to stop; async-signal-safe. */
void fp_server_stop(fp_server_t *server);

/*
 * Answer a POOL_* request handed to params.pool_op: queued for the loop,
 * which sends it if the connection @token still exists. Thread-safe.
 */
void fp_server_post_reply(fp_server_t *server, uint64_t token, uint8_t op, uint64_t id,
                          fp_status_t status, const void *payload, uint32_t len);

/*
 * Free every slab (a member the pool had declared dead: what it holds is
 * stale). Done by the loop, which then calls @done(@arg) on its thread (NULL:
 * nothing); thread-safe.
 */
void fp_server_post_reset(fp_server_t *server, void (*done)(void *arg), void *arg);

/* Close every connection and free the memory. NULL is a no-op. */
void fp_server_destroy(fp_server_t *server);

#endif /* FP_SERVER_SERVER_H */
