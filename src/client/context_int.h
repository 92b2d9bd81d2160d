/* SPDX-License-Identifier: MIT */
/*
 * What context.c (contexts and regions) and context_pool.c (their pool side:
 * metadata calls, writer leases, maps) share. A context either uses memory
 * nodes directly (regions on the first, as farpool_context_params_t.nodes
 * says) or a pool (its metadata node; regions spread over the members).
 *
 * Thread safety: as the public API says: calls on one context are serialised
 * by the caller. The lease keeper's thread touches only its own connection
 * and its list, under its lock.
 */
#ifndef FP_CLIENT_CONTEXT_INT_H
#define FP_CLIENT_CONTEXT_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <farpool/farpool.h>

#include "budget.h"
#include "common/log.h"
#include "engine.h"
#include "proto/pool.h"
#include "region_map.h"
#include "region_meta.h"

#define FP_CONTEXT_MAX_NODES 64

typedef struct fp_lease_keeper fp_lease_keeper_t;

struct farpool_context {
    fp_log_t log; /* from the parameters; shared by the context's connections and engines */
    char *nodes[FP_CONTEXT_MAX_NODES];
    size_t nnodes;
    bool pool;      /* regions are a pool's: ctl is its metadata node */
    char *pool_url; /* pool: its URL (malloc'd), looked up again at each connection */
    char secret_file[PATH_MAX];
    farpool_node_params_t np;
    farpool_node_t *ctl;       /* control connection: nodes[0], or the metadata node */
    fp_lease_keeper_t *keeper; /* pool: renews the writer leases of its regions */
    fp_budget_t budget;        /* the cache budget its regions share */
    bool readahead;
    bool prefault;
    farpool_region_t *regions;
};

/* A pool region's way back to the metadata (the engine's remap callback). */
typedef struct fp_pool_remap {
    farpool_context_t *ctx;
    uint64_t region_id;
    fp_pool_region_desc_t desc;
    farpool_node_t *meta; /* the engine thread's own connection, made on first use */
} fp_pool_remap_t;

struct farpool_region {
    farpool_context_t *ctx;
    farpool_region_t *next;
    char name[FP_REGION_NAME_MAX + 1];
    uint64_t size;
    uint32_t granule;
    uint32_t flags;
    fp_engine_t *engine; /* NULL while not mapped */
    void *addr;
    /* Pool regions. */
    fp_pool_region_desc_t desc; /* as the metadata said at create or open */
    uint64_t lease;             /* the writer lease held; 0: none */
    fp_pool_remap_t *remap;     /* while mapped */
    struct fp_region_io *io;    /* farpool_region_pread/pwrite's map and connections */
};

/*
 * Fence the whole blocks of mapped @r that [addr, addr+len) touches
 * (@fenced), or open them again: fp_engine_fence() (engine.c's Fences says
 * what the engine guarantees). Fenced blocks are out of the cache, never
 * fetched (read-ahead, hints, faults) and PROT_NONE; opened, they are
 * accessible and fetched as usual again. For the LD_PRELOAD shim's partial
 * mappings of a file; not public API. Serialised with the region's other
 * calls, as they are.
 */
fp_status_t fp_region_fence(farpool_region_t *r, const void *addr, size_t len, bool fenced);

/* The map of a region of one node (context.c). */
fp_status_t fp_ctx_node_region_map(farpool_region_t *region, fp_region_map_t *map_p);

/* ---- reads and writes without a mapping (region_io.c) ---- */

/* Fetch @r's map for reads and writes, if not yet done (connections are made on use). */
fp_status_t fp_region_io_open(farpool_region_t *r);

/* Drop @r's io state (its connections). */
void fp_region_io_close(farpool_region_t *r);

/* ---- the pool side (context_pool.c) ---- */

/* Connect the context to the pool @url: ctl to its metadata node, the lease keeper. */
fp_status_t fp_ctx_pool_connect(farpool_context_t *ctx, const char *url);

/*
 * A pool context's control connection to the metadata service, ctx->ctl,
 * made again if a call found it broken (the metadata node restarted, or an
 * etcd pool's service moved: it is looked up again).
 * FP_CTX_CTL_CALL(ctx, status, call) sets @status to @call (an expression
 * using ctx->ctl), tried a second time on a fresh connection when the first
 * found the old one broken: a request on a connection to a metadata node
 * that has gone was never handled by the one that replaced it.
 */
fp_status_t fp_ctx_pool_ctl(farpool_context_t *ctx);
bool fp_ctx_pool_ctl_broken(farpool_context_t *ctx, fp_status_t status);
#define FP_CTX_CTL_CALL(ctx, status, call)                                                         \
    do {                                                                                           \
        for (int ctl_try_ = 0; ctl_try_ < 2; ctl_try_++) {                                         \
            (status) = fp_ctx_pool_ctl(ctx);                                                       \
            if ((status) == FP_OK)                                                                 \
                (status) = (call);                                                                 \
            if (!fp_ctx_pool_ctl_broken((ctx), (status)))                                          \
                break;                                                                             \
        }                                                                                          \
    } while (0)
void fp_ctx_pool_disconnect(farpool_context_t *ctx);

/* Create / open @name in the pool; fills @r's desc and lease (kept renewed). */
fp_status_t fp_ctx_pool_create(farpool_context_t *ctx, const char *name, uint64_t size,
                               uint32_t granule, uint32_t replicas, uint32_t flags,
                               farpool_region_t *r);
fp_status_t fp_ctx_pool_open(farpool_context_t *ctx, const char *name, uint32_t flags,
                             farpool_region_t *r);

/* Publish an unpublished region under its name. */
fp_status_t fp_ctx_pool_publish(farpool_region_t *r, const uint8_t *checksum);

/* The map of @r for its engine, and the remap callback's state (r->remap). */
fp_status_t fp_ctx_pool_map(farpool_region_t *r, fp_region_map_t *map_p);

/* The engine's remap callback (fp_engine_params_t.remap), arg: an fp_pool_remap_t. */
fp_status_t fp_ctx_pool_remap(void *arg, fp_region_map_t *map_p);

/* The engine's stale callback (fp_engine_params_t.stale), arg: an fp_pool_remap_t. */
fp_status_t fp_ctx_pool_stale(void *arg, uint32_t slab, const char *addr);

/* The region is unmapped: drop the remap state. */
void fp_ctx_pool_unmapped(farpool_region_t *r);

/* The region is closed: give its lease back (an unpublished region goes with it). */
void fp_ctx_pool_close(farpool_region_t *r);

#endif /* FP_CLIENT_CONTEXT_INT_H */
