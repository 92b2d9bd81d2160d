/* SPDX-License-Identifier: MIT */
/*
 * The memory node's metrics: the counters its loop keeps (requests and
 * errors, bytes, the service time of READs and WRITEs, the gauges of its
 * store), and `farpoold --metrics ADDR:PORT`, an HTTP endpoint that serves
 * them, with the pool's view on a metadata node, in Prometheus' text
 * exposition format (version 0.0.4) at GET /metrics.
 *
 * DESIGN
 * One writer, many readers, no lock on the data path. Every counter is an
 * atomic written only by the server's loop thread; fp_metrics_add() is a
 * relaxed load and store (a plain add on x86, no locked instruction), which
 * is right because nobody else writes. The exporter's thread reads them with
 * relaxed loads: each value is one the loop stored, and each counter only
 * grows, so every scrape is monotonic against the one before. A histogram
 * keeps its buckets apart (not cumulative); the exporter adds them up and
 * writes the sum as both the +Inf bucket and _count, so a scrape is always
 * self-consistent even while the loop is counting.
 *
 * The HTTP side is libmicrohttpd with its own polling thread
 * (MHD_USE_INTERNAL_POLLING_THREAD): a slow or stuck scraper costs that
 * thread, never the loop. It answers GET (and HEAD) /metrics, 404 for another
 * path, 405 for another method, and keeps at most a few connections.
 *
 * The counting half is inline, here, so that the server's code needs no
 * HTTP library; the exporter (metrics.c) is linked into farpoold only.
 *
 * Thread safety: fp_metrics_add/set/observe on the loop thread only; fp_metrics_get
 * on any thread; the exporter's start and stop on the thread that owns it.
 */
#ifndef FP_SERVER_METRICS_H
#define FP_SERVER_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include <farpool/status.h>

#include "common/log.h"
#include "common/parse.h"
#include "meta/service.h"

#define FP_METRICS_OPS     64                 /* opcodes counted by number; others as "unknown" */
#define FP_METRICS_KINDS   (-FP_ERR_LAST + 1) /* errors by -status; [0] unused */
#define FP_METRICS_BUCKETS 16                 /* latency buckets, 10 us to 1 s, then +Inf */

/* The service time histograms. */
typedef enum fp_metrics_lat {
    FP_METRICS_LAT_READ = 0, /* READ, READV */
    FP_METRICS_LAT_WRITE,    /* WRITE, WRITEV */
    FP_METRICS_LAT_COUNT,
} fp_metrics_lat_t;

typedef struct fp_metrics_hist {
    _Atomic uint64_t
        bucket[FP_METRICS_BUCKETS + 1]; /* [i]: at most fp_metrics_bucket_ns[i]; last: more */
    _Atomic uint64_t sum_ns;
} fp_metrics_hist_t;

/* What the loop counts. Written by the loop thread only (see DESIGN). */
typedef struct fp_server_counters {
    _Atomic uint64_t requests[FP_METRICS_OPS]; /* replies sent, by opcode; [0]: unknown opcodes */
    _Atomic uint64_t errors[FP_METRICS_KINDS]; /* by -fp_status_t */
    _Atomic uint64_t bytes_read, bytes_written;
    /* Gauges, published by the loop after each round of events. */
    _Atomic uint64_t clients, used, slabs;
    fp_metrics_hist_t latency[FP_METRICS_LAT_COUNT];
} fp_server_counters_t;

/* The upper bound of latency bucket @i (< FP_METRICS_BUCKETS), in nanoseconds. */
static inline uint64_t fp_metrics_bucket_ns(unsigned i)
{
    static const uint64_t bound[FP_METRICS_BUCKETS] = {
        10000,   25000,    50000,    100000,   250000,    500000,    1000000,   2500000,
        5000000, 10000000, 25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
    };

    return bound[i];
}

/* Add @n to @c: the loop thread only. */
static inline void fp_metrics_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Set the gauge @c to @v: the loop thread only. */
static inline void fp_metrics_set(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}

/* Read @c: any thread. */
static inline uint64_t fp_metrics_get(const _Atomic uint64_t *c)
{
    return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

/* Count a @status error (FP_ERR_*; anything else is counted as FP_ERR_IO). */
static inline void fp_metrics_error(fp_server_counters_t *m, fp_status_t status)
{
    int kind = -(int)status;

    fp_metrics_add(&m->errors[kind > 0 && kind < FP_METRICS_KINDS ? kind : -FP_ERR_IO], 1);
}

/* Count one request of @op's reply. */
static inline void fp_metrics_request(fp_server_counters_t *m, uint8_t op)
{
    fp_metrics_add(&m->requests[op < FP_METRICS_OPS ? op : 0], 1);
}

/* Put a service time of @ns into histogram @h: the loop thread only. */
static inline void fp_metrics_observe(fp_metrics_hist_t *h, uint64_t ns)
{
    unsigned i = 0;

    while (i < FP_METRICS_BUCKETS && ns > fp_metrics_bucket_ns(i))
        i++;
    fp_metrics_add(&h->bucket[i], 1);
    fp_metrics_add(&h->sum_ns, ns);
}

/* Fill @pool_p with the pool's view (fp_meta_service_metrics); called on the exporter's thread. */
typedef void (*fp_metrics_pool_func_t)(void *arg, fp_meta_metrics_t *pool_p);

typedef struct fp_metrics_params {
    fp_addr_t listen;                     /* where to serve; port 0 picks a free one */
    const fp_server_counters_t *counters; /* the loop's; outlives the exporter */
    uint64_t capacity, slab_size;         /* the node's, fixed */
    fp_metrics_pool_func_t pool;          /* NULL: not a metadata node */
    void *pool_arg;
    const fp_log_t *log;
} fp_metrics_params_t;

typedef struct fp_metrics fp_metrics_t;

/*
 * Bind @params->listen and start serving on a thread of its own. Logs why
 * on failure (FP_ERR_IO: the address cannot be bound, e.g. taken).
 */
fp_status_t fp_metrics_start(const fp_metrics_params_t *params, fp_metrics_t **metrics_p);

/* The address actually bound (with the port the kernel chose). */
void fp_metrics_local_addr(const fp_metrics_t *metrics, fp_addr_t *addr_p);

/*
 * Write the text exposition of the counters, gauges and @pool (NULL: none)
 * into a malloc'd, NUL-terminated buffer, *@text_p (the caller frees it),
 * of *@len_p bytes. FP_ERR_NO_MEMORY if it cannot.
 */
fp_status_t fp_metrics_render(const fp_metrics_params_t *params, const fp_meta_metrics_t *pool,
                              char **text_p, size_t *len_p);

/* Stop serving and free @metrics. NULL is a no-op. */
void fp_metrics_stop(fp_metrics_t *metrics);

#endif /* FP_SERVER_METRICS_H */
