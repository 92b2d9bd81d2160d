/* SPDX-License-Identifier: MIT */
/*
 * The pool's metadata, as records, and the store that keeps them: members
 * (memory nodes) with their capacity and liveness, regions with their
 * geometry, key, checksum and writer lease, and the replicas that place each
 * slab of a region on a member.
 *
 * The metadata service (meta_service.c) keeps the live view in memory and
 * writes every change through a store before it answers; a store is an ops
 * table, so the embedded SQLite backend (meta_sqlite.c) can be replaced by
 * another (etcd) without touching the service or the data path.
 *
 * Thread safety: a store is used by one thread at a time (the service's).
 */
#ifndef FP_META_META_H
#define FP_META_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <farpool/status.h>

#include "common/log.h"
#include "proto/proto.h"

#define FP_META_ADDR_MAX 96 /* "HOST:PORT", NUL included */

typedef enum fp_meta_node_state {
    FP_META_NODE_LIVE = 0,     /* heartbeating */
    FP_META_NODE_DEAD = 1,     /* silent for --dead-after: its replicas are lost */
    FP_META_NODE_DRAINING = 2, /* live, gets no new slabs; its slabs move away */
    FP_META_NODE_GONE = 3,     /* drained or replaced: kept for the record */
} fp_meta_node_state_t;

/** A member of the pool. */
typedef struct fp_meta_node {
    uint64_t id;      /* member id, given by the store (1, 2, ...), never reused */
    uint64_t node_id; /* the farpoold instance's random id (its HELLO): a restart is a new one */
    char addr[FP_META_ADDR_MAX];
    uint64_t capacity;  /* bytes it donates */
    uint64_t used;      /* bytes in its slabs, as it last said */
    uint64_t slab_size; /* bytes per slab */
    uint32_t state;     /* fp_meta_node_state_t */
    uint64_t joined_ms; /* wall clock (ms since the epoch) */
    uint64_t seen_ms;   /* its last heartbeat, wall clock */
} fp_meta_node_t;

typedef enum fp_meta_region_state {
    FP_META_REGION_PENDING = 0, /* being filled (a put): not visible under its name */
    FP_META_REGION_READY = 1,
} fp_meta_region_state_t;

/** A region of the pool. */
typedef struct fp_meta_region {
    uint64_t id; /* given by the store, never reused */
    char name[FP_PROTO_REGION_NAME_MAX + 1];
    uint64_t size;
    uint32_t granule;
    uint32_t flags;    /* FARPOOL_REGION_* given at creation (FIXED) */
    uint32_t replicas; /* copies wanted of each slab */
    uint32_t state;    /* fp_meta_region_state_t */
    uint64_t slab_size;
    uint32_t nslabs;
    uint8_t key[FP_PROTO_KEY_SIZE]; /* the client key owning its slabs on every node */
    uint64_t fixed_addr;            /* FARPOOL_REGION_FIXED: its address everywhere; else 0 */
    bool has_checksum;
    uint8_t checksum[32]; /* BLAKE2b-256 of the content, set by a put */
    uint64_t created_ms;
    /* The writer's lease; lease_id 0: no writer. */
    uint64_t lease_id;
    uint8_t lease_holder[FP_PROTO_KEY_SIZE]; /* the holder's client key */
    uint64_t lease_expires_ms;               /* wall clock */
} fp_meta_region_t;

typedef enum fp_meta_replica_state {
    FP_META_REPLICA_OK = 0,      /* holds the slab's bytes */
    FP_META_REPLICA_COPYING = 1, /* being filled by a repair: not to be read yet */
} fp_meta_replica_state_t;

/** One copy of one slab of a region. (region, index, node) is unique. */
typedef struct fp_meta_replica {
    uint64_t region;
    uint32_t index; /* the slab's index in the region */
    uint32_t state; /* fp_meta_replica_state_t */
    uint64_t node;  /* member id */
    uint64_t slab;  /* the slab's id on that node */
} fp_meta_replica_t;

typedef struct fp_meta_store fp_meta_store_t;

/*
 * A backend. Every call is one transaction: it happens whole or not at all.
 * Lists are malloc'd arrays the caller frees (free()). FP_ERR_IO when the
 * backend fails (logged); FP_ERR_NO_ENTRY for a missing id or name.
 */
typedef struct fp_meta_ops {
    const char *name; /* "sqlite", "etcd" */
    void (*close)(fp_meta_store_t *store);

    /* Insert (@node->id == 0: the store gives the next id and writes it back) or update by id. */
    fp_status_t (*node_put)(fp_meta_store_t *store, fp_meta_node_t *node);
    fp_status_t (*node_list)(fp_meta_store_t *store, fp_meta_node_t **nodes_p, size_t *count_p);

    /*
     * Insert a region (the store gives its id and writes it back) together with
     * its @nreplicas replicas (their .region is set from the new id).
     * FP_ERR_EXISTS if it is published (READY) and a published region has
     * that name; unpublished regions may share a name.
     */
    fp_status_t (*region_add)(fp_meta_store_t *store, fp_meta_region_t *region,
                              fp_meta_replica_t *replicas, size_t nreplicas);
    /* Update a region's fields (name, state, checksum, lease...) by id; FP_ERR_EXISTS as add. */
    fp_status_t (*region_update)(fp_meta_store_t *store, const fp_meta_region_t *region);
    /* Delete a region and its replicas. */
    fp_status_t (*region_delete)(fp_meta_store_t *store, uint64_t id);
    fp_status_t (*region_list)(fp_meta_store_t *store, fp_meta_region_t **regions_p,
                               size_t *count_p);

    /* Every replica of every region, ordered by (region, index, node). */
    fp_status_t (*replica_list)(fp_meta_store_t *store, fp_meta_replica_t **replicas_p,
                                size_t *count_p);
    /* Insert or update the replica (region, index, node). */
    fp_status_t (*replica_put)(fp_meta_store_t *store, const fp_meta_replica_t *replica);
    fp_status_t (*replica_delete)(fp_meta_store_t *store, uint64_t region, uint32_t index,
                                  uint64_t node);

    /* Small named counters of the pool (the next fixed address, its secret's tag): 0 if unset. */
    fp_status_t (*value_get)(fp_meta_store_t *store, const char *key, uint64_t *value_p);
    fp_status_t (*value_put)(fp_meta_store_t *store, const char *key, uint64_t value);

    /*
     * Optional (NULL: the store knows nothing of liveness, and the service
     * goes by heartbeats alone, as with SQLite). Which of the @count members
     * named by their farpoold node ids @node_ids hold a live lease key now
     * (fp_meta_etcd_member_start): @live_p[i], @count entries, written only
     * on success. FP_ERR_IO (logged) when the store cannot tell now (etcd
     * away): the caller then declares nobody dead by the lease.
     */
    fp_status_t (*member_live)(fp_meta_store_t *store, const uint64_t *node_ids, size_t count,
                               bool *live_p);

    /*
     * Optional, all four or none (NULL: a writer lease lives in its region's
     * record, renewed by region_update, as with SQLite). The store holds
     * writer leases itself (etcd: P/writers/<region>, under an etcd lease),
     * and its answer is the truth on who holds one. Each FP_ERR_IO (logged)
     * when the store cannot tell now (etcd away): nothing is judged over then.
     *
     * writer_take: give @holder the writer lease of region @region for
     * @ttl_ms: the one it holds already, renewed, or a new one if nobody holds
     * it; *@lease_p its id (never 0) and *@ttl_ms_p the TTL it was given.
     * FP_ERR_IN_USE if another key holds it.
     * writer_renew: renew lease @lease of region @region (*@ttl_ms_p as
     * take); FP_ERR_NO_ENTRY if it is over.
     * writer_release: end it now; FP_OK if it was over already.
     * writer_get: who holds region @region's lease: *@holder_p
     * (FP_PROTO_KEY_SIZE bytes) and *@lease_p; FP_ERR_NO_ENTRY if nobody.
     */
    fp_status_t (*writer_take)(fp_meta_store_t *store, uint64_t region, const uint8_t *holder,
                               int ttl_ms, uint64_t *lease_p, int *ttl_ms_p);
    fp_status_t (*writer_renew)(fp_meta_store_t *store, uint64_t region, uint64_t lease,
                                int *ttl_ms_p);
    fp_status_t (*writer_release)(fp_meta_store_t *store, uint64_t region, uint64_t lease);
    fp_status_t (*writer_get)(fp_meta_store_t *store, uint64_t region, uint8_t *holder_p,
                              uint64_t *lease_p);
} fp_meta_ops_t;

/* Every backend's handle starts with this. */
struct fp_meta_store {
    const fp_meta_ops_t *ops;
    const fp_log_t *log;
};

/*
 * The embedded backend: SQLite database DIR/pool.db (created, with DIR, if
 * missing; mode 0600). Durable: a change is on disk when its call returns.
 */
fp_status_t fp_meta_sqlite_open(const char *dir, const fp_log_t *log, fp_meta_store_t **store_p);

/*
 * The etcd backend (meta_etcd.c): the keys under the prefix of @url
 * (etcd://HOST:PORT[,HOST:PORT...]/PREFIX, common/etcd.h), every op one etcd
 * transaction. Opening makes the caller the pool's one metadata service: it
 * puts PREFIX/service = @service_addr ("HOST:PORT") under an etcd lease of
 * @ttl_ms (<= 0: 10 s), which a thread of the store renews every @ttl_ms / 3
 * and close revokes. FP_ERR_IN_USE (logged, naming the holder's address) if
 * another live service holds it; FP_ERR_IO if etcd cannot be reached;
 * FP_ERR_ADDRESS for a bad @url. Once the lease is lost (not renewed in
 * time, or another service took the key), an error is logged and every later
 * op fails with FP_ERR_IO: a service that lost its lease cannot write.
 */
fp_status_t fp_meta_etcd_open(const char *url, const char *service_addr, int ttl_ms,
                              const fp_log_t *log, fp_meta_store_t **store_p);

/*
 * A member's registration in an etcd pool (meta_etcd.c): a thread with its
 * own etcd client grants a lease of @ttl_ms (rounded up to whole seconds;
 * etcd may raise it to its minimum), puts PREFIX/members/<@node_id %016x> =
 * @addr ("HOST:PORT") under it, and renews it every TTL/3. When etcd is
 * away it keeps trying (saying so once); when the lease is found gone (etcd
 * lost it, or it expired while this process was stopped) it grants a new one
 * and puts the key again; a key deleted behind its back is put again. The
 * metadata service takes a member's liveness from that key (member_live).
 * FP_ERR_ADDRESS for a bad @url (logged); FP_ERR_NO_MEMORY. Connects lazily:
 * an unreachable etcd is not an error here.
 *
 * Thread safety: start and stop from one thread; the member thread is its own.
 */
typedef struct fp_meta_etcd_member fp_meta_etcd_member_t;

fp_status_t fp_meta_etcd_member_start(const char *url, uint64_t node_id, const char *addr,
                                      int ttl_ms, const fp_log_t *log,
                                      fp_meta_etcd_member_t **member_p);

/* Stop renewing and revoke the lease, so the key goes at once. NULL: no-op. */
void fp_meta_etcd_member_stop(fp_meta_etcd_member_t *member);

/* ---- placement (meta_place.c) ---- */

/** What placement knows of a candidate member. */
typedef struct fp_meta_candidate {
    uint64_t node; /* member id */
    uint64_t free; /* bytes it can still take; placement subtracts what it places */
    bool eligible; /* live and not draining */
} fp_meta_candidate_t;

/*
 * Place @nslabs slabs of @slab_size bytes with @replicas copies each on
 * distinct eligible candidates, by the power of two choices (Infiniswap):
 * for each copy, two distinct random candidates not holding that slab yet
 * and with room for it, of which the one with more free bytes wins.
 * @out[i * replicas + k] is the index into @cand of slab i's copy k.
 * @seed makes it reproducible. FP_ERR_NO_SPACE when it does not fit (nothing
 * is changed then); FP_ERR_INVALID_PARAM if @replicas exceeds the eligible
 * candidates.
 */
fp_status_t fp_meta_place(fp_meta_candidate_t *cand, size_t ncand, uint32_t nslabs,
                          uint32_t replicas, uint64_t slab_size, uint64_t seed, uint32_t *out);

/*
 * One more copy of a slab (repair, drain): the best of two random eligible
 * candidates with room that are not in @exclude (@nexclude member ids).
 * Its index into @cand, or -1 if none.
 */
long fp_meta_place_one(fp_meta_candidate_t *cand, size_t ncand, const uint64_t *exclude,
                       size_t nexclude, uint64_t slab_size, uint64_t *seed);

#endif /* FP_META_META_H */
