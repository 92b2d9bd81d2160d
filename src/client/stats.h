/* SPDX-License-Identifier: MIT */
/*
 * The counters of a mapped region, kept in a small POSIX shared-memory object
 * so that `farpool status --clients` can show a running program's faults,
 * cache and prefetch accuracy without its help. Each mapping has its own
 * object, /dev/shm/farpool.PID.TAG (TAG: 16 random hex digits; the region's
 * name and node are inside), created exclusively with mode 0600: only its
 * owner (and root) can read it, and two mappings never share or clobber one.
 * It is removed when the region is unmapped; one a crashed process left is
 * removed by the next `farpool status --clients` that finds its pid gone.
 * The fault engine updates the counters in place with relaxed atomics;
 * readers copy what they need. If shared memory is unavailable the counters
 * live on the heap and the region is simply not listed.
 *
 * Thread safety: the counters are atomics; publish/unpublish are called once
 * each, by the thread that maps and unmaps the region.
 */
#ifndef FP_CLIENT_STATS_H
#define FP_CLIENT_STATS_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include <farpool/farpool.h>

#include "common/log.h"

#define FP_STATS_MAGIC       0x54535046u /* "FPST" */
#define FP_STATS_VERSION     2u
#define FP_STATS_LAT_BUCKETS 256 /* quarter-octaves of nanoseconds */
#define FP_STATS_PREFIX      "farpool."
#define FP_STATS_HEAP        1u

typedef struct fp_stats_shared {
    uint32_t magic, version;
    int32_t pid;
    uint32_t flags; /* FP_STATS_HEAP: private counters, not a shared object */
    uint64_t tag;   /* the TAG of its name */
    char region[256];
    char node[96];
    uint64_t size, granule, cache_budget, mapped_at_ms;
    _Atomic uint64_t faults, minor, wp, fetched, bytes_in, bytes_out;
    _Atomic uint64_t evictions, writebacks, fetch_errors, cache, cache_peak;
    _Atomic uint64_t pf_issued, pf_used, pf_wasted, pf_late, pf_hinted;
    _Atomic uint64_t lat_hist[FP_STATS_LAT_BUCKETS];
    _Atomic uint64_t lat_max;
} fp_stats_shared_t;

/* Create the counters of region @name (shared memory if possible); zeroed. */
fp_status_t fp_stats_publish(fp_log_t *log, const char *name, const char *node, uint64_t size,
                             uint64_t granule, uint64_t cache_budget, fp_stats_shared_t **st_p);

/* Remove and free them. NULL is a no-op. */
void fp_stats_unpublish(fp_stats_shared_t *st);

/* Record one fetch latency / read the percentiles back. */
void fp_stats_latency_add(fp_stats_shared_t *st, uint64_t ns);
uint64_t fp_stats_latency_percentile(const fp_stats_shared_t *st, double p);

/* Fill the public struct from the counters. */
void fp_stats_read(const fp_stats_shared_t *st, farpool_stats_t *out);

#endif /* FP_CLIENT_STATS_H */
