/* SPDX-License-Identifier: MIT */
/*
 * What the parts of the metadata service share; service.h is its interface
 * and says how the parts fit. One file per role:
 *
 *   service.c   the thread, the request queue, loading the pool, members
 *               (JOIN, HEARTBEAT, NODES, DRAIN) and the periodic work
 *   regions.c   regions: CREATE, OPEN, MAP, DELETE, COMMIT, LEASE, REGIONS
 *   repair.c    dead members, repair and drain, abandoned unpublished regions
 *
 * Who owns what: everything here belongs to the service's thread, except the
 * request queue (head, tail, under worker.lock), shared with submitters, and
 * the published metrics (under worker.lock), read by the metrics thread.
 * The in-memory view is the store's content plus what is not persisted: when
 * each member was last heard from (seen_ns) and what is placed on it.
 */
#ifndef FP_META_SERVICE_INT_H
#define FP_META_SERVICE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/worker.h"
#include "meta.h"
#include "proto/pool.h"
#include "service.h"

typedef struct meta_req {
    struct meta_req *next;
    uint64_t arrived_ns; /* when the node's loop handed it over: a heartbeat's time */
    uint64_t token, id;
    uint8_t key[FP_PROTO_KEY_SIZE];
    uint8_t op;
    uint32_t len;
    uint8_t payload[];
} meta_req_t;

typedef struct meta_node {
    fp_meta_node_t rec;
    uint64_t seen_ns; /* monotonic: the last heartbeat (or the service's start) */
    uint64_t placed;  /* bytes of copies (ok or being made) placed on it */
    bool drained;     /* gone by a drain (not replaced): refused until it restarts */
    bool leased;      /* its lease key was seen (store's member_live): the key, not
                         heartbeats, says whether it lives */
} meta_node_t;

typedef struct meta_region {
    fp_meta_region_t rec;
    fp_meta_replica_t *reps; /* its copies, any order */
    size_t nreps, capreps;
} meta_region_t;

struct fp_meta_service {
    fp_meta_service_params_t params;
    farpool_node_params_t np; /* params.np, copied */
    char dir[4096];
    const fp_log_t *log;
    fp_meta_store_t *store;
    uint64_t rng;

    meta_node_t *nodes;
    size_t nnodes, capnodes;
    meta_region_t **regions;
    size_t nregions, capregions;

    /* Repair and drain: when the next copy may start, and what they did. */
    uint64_t checked_ns;     /* when deaths were last judged */
    uint64_t live_ns;        /* when the members' lease keys were last read (member_live) */
    bool live_failed;        /* ... and that read failed */
    uint64_t lease_grace_ns; /* until then a gone lease key kills nobody (this thread was away) */
    uint64_t copy_next_ns;
    bool copy_pending; /* the last step copied: there may be more to do */
    uint64_t copied_bytes;
    uint64_t copied_slabs;

    fp_worker_t worker;        /* the service's thread; its lock guards the queue */
    meta_req_t *head, *tail;   /* guarded by worker.lock */
    fp_meta_metrics_t metrics; /* guarded by worker.lock: the view last published */
    uint64_t metrics_ns;       /* the thread's: when it last published */
};

/* The request being handled, and how to answer it. */
typedef struct meta_call {
    fp_meta_service_t *svc;
    const meta_req_t *req;
} meta_call_t;

void meta_reply(const meta_call_t *call, fp_status_t status, const void *payload, uint32_t len);

uint64_t meta_random(fp_meta_service_t *svc);

/* ---- members (service.c) ---- */

meta_node_t *meta_node_by_id(fp_meta_service_t *svc, uint64_t id);
bool meta_node_usable(const meta_node_t *n); /* live or draining: its copies can be read */

/*
 * Connect to member @n as the owner @key of a region's slabs. Logs why not.
 * The caller closes it (farpool_node_close).
 */
fp_status_t meta_connect(fp_meta_service_t *svc, const meta_node_t *n, const uint8_t *key,
                         farpool_node_t **conn_p);

/* Candidates for placement: live, not draining, with room (capacity - placed). */
fp_meta_candidate_t *meta_candidates(fp_meta_service_t *svc, size_t *count_p);

/* ---- regions (regions.c) ---- */

void meta_handle_region(const meta_call_t *call);

meta_region_t *meta_region_by_id(fp_meta_service_t *svc, uint64_t id);

/* Add @rep to @r in memory (the caller persisted it) and count it on its member. */
fp_status_t meta_region_add_rep(fp_meta_service_t *svc, meta_region_t *r,
                                const fp_meta_replica_t *rep);

/* Remove copy @i of @r in memory (the caller persisted that) and uncount it. */
void meta_region_drop_rep(fp_meta_service_t *svc, meta_region_t *r, size_t i);

/* Copies of slab @index of @r that can be read now (ok, on a usable member). */
uint32_t meta_region_good_copies(fp_meta_service_t *svc, const meta_region_t *r, uint32_t index);

/* healthy, degraded, repairing, lost (fp_pool_health_t). */
uint32_t meta_region_health(fp_meta_service_t *svc, const meta_region_t *r);

/* True while somebody holds @r's writer lease. */
bool meta_region_leased(const meta_region_t *r, uint64_t now_ms);
/* No writer lease in @rec (its id, holder and expiry cleared). */
void meta_region_lease_clear(fp_meta_region_t *rec);

/* Free @r's slabs on its members (best effort), delete it from the store and memory. */
fp_status_t meta_region_destroy(fp_meta_service_t *svc, meta_region_t *r);

/* ---- background work (repair.c) ---- */

/*
 * Declare silent members dead, drop abandoned unpublished regions, one repair
 * or drain step. Run only with no request waiting (so every heartbeat that
 * arrived has been counted). Returns how long the thread may wait for
 * requests before it is due again, in ms (0: more copying is due now).
 */
int meta_periodic(fp_meta_service_t *svc);

/* Member @n is dead: forget its copies (they are lost) and say so. */
void meta_node_declare_dead(fp_meta_service_t *svc, meta_node_t *n, const char *why);

#endif /* FP_META_SERVICE_INT_H */
