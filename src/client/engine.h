/* SPDX-License-Identifier: MIT */
/*
 * The fault engine of one mapped region: the userfaultfd reader, the fillers
 * that fetch blocks from the memory nodes (any live copy of a block), the evictor that keeps the
 * local cache within its budget, the write-back of dirty blocks, and prefetching. engine.c's DESIGN
 * section says how they fit together; engine_int.h lists the parts, one file each.
 *
 * Thread safety: fp_engine_start/sync/stop/stats may be called from any one
 * thread at a time (the context serialises them); the mapped memory may be
 * used by any number of threads.
 */
#ifndef FP_CLIENT_ENGINE_H
#define FP_CLIENT_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <farpool/farpool.h>

#include "budget.h"
#include "common/log.h"
#include "region_map.h"

typedef struct fp_engine fp_engine_t;

typedef struct fp_engine_params {
    /*
     * Where the region's bytes live; the engine keeps a copy. by_key false:
     * the engine connects to nodes[0] (the map's only node) and opens the
     * region by name there; true: it connects to every node of the map
     * presenting map->key as its client key, and opens nothing.
     */
    const fp_region_map_t *map;
    const farpool_node_params_t *np; /* how to connect (secret, timeout); copied */
    /*
     * Optional (NULL: never called). When a fetch finds no live copy of its
     * block left, the engine thread calls remap(remap_arg, &map) for a fresh
     * map (from the pool's metadata, after repair), at most once a second:
     * on FP_OK it fills *map_p, which the engine frees;
     * the engine adopts it if its geometry is the same, connects to the nodes
     * it has not, and retries the fetch. It may block (the failure path), and
     * must not call into this engine.
     */
    fp_status_t (*remap)(void *arg, fp_region_map_t *map_p);
    void *remap_arg;
    /*
     * Optional (NULL: never called). A write-back that went to some copies of
     * a block but not to the copy of slab @slab on node @addr left that copy
     * stale: the engine thread calls stale(remap_arg, slab, addr) from its
     * loop (it may block) so that the pool's metadata drops it, and no other
     * reader reads it. Called again later while it does not return FP_OK.
     */
    fp_status_t (*stale)(void *arg, uint32_t slab, const char *addr);
    bool readonly;
    fp_budget_t *budget; /* the context's, shared by its regions; outlives the engine */
    bool readahead;      /* run the automatic prefetcher */
    bool prefault;       /* take the cache's memory at start (where it is recycled) */
    fp_log_t *log;       /* the context's; outlives the engine */
} fp_engine_params_t;

/*
 * Map the region and start its engine thread; *@addr_p is the mapping.
 * FP_ERR_UNSUPPORTED when the kernel lacks a needed userfaultfd feature.
 */
fp_status_t fp_engine_start(const fp_engine_params_t *params, fp_engine_t **engine_p,
                            void **addr_p);

/* Write back every dirty block. */
fp_status_t fp_engine_sync(fp_engine_t *engine);

/*
 * Write back, stop the thread, unmap, release the cache. If a write-back fails
 * the engine keeps running and everything stays mapped (FP_ERR_* returned),
 * unless @force: then the mapping goes anyway and the lost writes are logged.
 * NULL is a no-op.
 */
fp_status_t fp_engine_stop(fp_engine_t *engine, bool force);

/* Queue region bytes [off, off+len) for fetching in the background; returns at once. */
fp_status_t fp_engine_prefetch(fp_engine_t *engine, uint64_t off, uint64_t len);

/* Wait until every queued prefetch has landed (or cannot be issued for want of room). */
fp_status_t fp_engine_prefetch_wait(fp_engine_t *engine);

/* Drop region bytes [off, off+len) from the cache, writing dirty blocks back first. */
fp_status_t fp_engine_release(fp_engine_t *engine, uint64_t off, uint64_t len);

/*
 * Fence the blocks that region bytes [off, off+len) touch (@fenced), or open
 * them again (engine.c's Fences). Fencing drops them from the cache (dirty
 * ones written back first), waits for their fetches in flight, which are
 * dropped as they land, and then makes them inaccessible (PROT_NONE): no
 * block of the range is fetched again, by a fault, a hint or the
 * read-ahead, until it is opened. Opening makes them accessible again (the
 * view's own protection), then fetchable. FP_ERR_OUT_OF_RANGE outside the
 * region; FP_ERR_IO if a write-back failed (the range is fenced all the same).
 */
fp_status_t fp_engine_fence(fp_engine_t *engine, uint64_t off, uint64_t len, bool fenced);

/* Counters (see farpool_stats_t). */
void fp_engine_stats(fp_engine_t *engine, farpool_stats_t *stats_p);

#endif /* FP_CLIENT_ENGINE_H */
