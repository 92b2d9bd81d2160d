/* SPDX-License-Identifier: MIT */
/*
 * The fault engine of one mapped region: the userfaultfd reader, the fillers
 * that fetch blocks from the memory node, the evictor that keeps the local
 * cache within its budget, the write-back of dirty blocks, and prefetching.
 * engine.c's DESIGN section says how they fit together; engine_int.h lists
 * the parts, one file each.
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

typedef struct fp_engine fp_engine_t;

typedef struct fp_engine_params {
    const char *node_addr;           /* the node holding the region */
    const farpool_node_params_t *np; /* how to connect (secret, timeout) */
    const char *region_name;         /* opened on the engine's own connection */
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

/* Counters (see farpool_stats_t). */
void fp_engine_stats(fp_engine_t *engine, farpool_stats_t *stats_p);

#endif /* FP_CLIENT_ENGINE_H */
