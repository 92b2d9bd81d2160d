/* SPDX-License-Identifier: MIT */
/*
 * The metadata service of a pool: what `farpoold --meta-dir DIR` runs beside
 * its memory node. It answers the POOL_* requests (proto/pool.h) that the
 * node's loop hands it, keeps members and their liveness, places regions'
 * slabs on members, holds writer leases, and repairs and drains in the
 * background. Its state lives in memory and is written through a metadata
 * store (meta.h) before each answer, so a restart loses nothing.
 *
 * DESIGN
 * One thread runs the service: requests queue up (fp_meta_service_submit,
 * from the node's loop), and between them the thread does its periodic
 * work: declaring silent members dead, dropping abandoned unpublished
 * regions, and one step of repair or drain at a time, throttled. Placing a
 * region means allocating slabs on members, which the service does as a
 * client of each member, with the region's key as its client key: the slabs
 * belong to that key on every member, and clients present the same key.
 * Blocking calls to members happen on this thread only, never on the node's
 * loop, so the metadata node keeps serving data while it places or repairs.
 *
 * Thread safety: submit and metrics may be called from any thread; the rest
 * from the thread that started the service.
 */
#ifndef FP_META_SERVICE_H
#define FP_META_SERVICE_H

#include <stdint.h>

#include <farpool/farpool.h>

#include "common/log.h"

typedef struct fp_meta_service fp_meta_service_t;

/* Where an answer goes (the node's fp_server_post_reply). */
typedef void (*fp_meta_reply_t)(void *arg, uint64_t token, uint8_t op, uint64_t id,
                                fp_status_t status, const void *payload, uint32_t len);

typedef struct fp_meta_service_params {
    const char *dir;                 /* where the store keeps its files, or an etcd:// URL */
    const char *self_addr;           /* etcd: this node's "HOST:PORT", registered as the service */
    uint64_t slab_size;              /* the pool's: members must have this slab size */
    const farpool_node_params_t *np; /* how to reach members (secret, timeout); copied */
    int dead_after_ms;               /* a member silent this long is dead */
    int lease_ttl_ms;                /* writer leases last this long unless renewed */
    uint32_t replicas;               /* default copies per slab; 0: 2 with 2+ members, else 1 */
    uint64_t repair_rate;            /* bytes per second that repair and drain copy at most */
    fp_meta_reply_t reply;
    void *reply_arg;
    const fp_log_t *log;
} fp_meta_service_params_t;

/* Open the store, load the pool and start the thread. Logs why on failure. */
fp_status_t fp_meta_service_start(const fp_meta_service_params_t *params,
                                  fp_meta_service_t **svc_p);

/*
 * Queue a POOL_* request from the connection @token whose client key is
 * @key; @payload is copied. The answer goes to params.reply. Thread-safe.
 */
void fp_meta_service_submit(fp_meta_service_t *svc, uint64_t token, const uint8_t *key, uint8_t op,
                            uint64_t id, const uint8_t *payload, uint32_t len);

/* The pool as its metrics show it (farpoold --metrics). */
typedef struct fp_meta_metrics {
    uint64_t members[4];                 /* by FP_POOL_NODE_*: live, dead, draining, gone */
    uint64_t regions[4];                 /* published regions by fp_pool_health_t */
    uint64_t copied_bytes, copied_slabs; /* by repair and drain, since the start */
} fp_meta_metrics_t;

/*
 * Copy the pool's view into *@metrics_p: what the service's thread last
 * published, at most META_METRICS_MS old (or older while a request or a
 * repair step is slow). Thread-safe.
 */
void fp_meta_service_metrics(fp_meta_service_t *svc, fp_meta_metrics_t *metrics_p);

/* Stop the thread (requests not yet handled are dropped) and close the store. NULL: no-op. */
void fp_meta_service_stop(fp_meta_service_t *svc);

#endif /* FP_META_SERVICE_H */
