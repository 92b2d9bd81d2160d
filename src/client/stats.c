/* SPDX-License-Identifier: MIT */
/* Published region counters; see stats.h. */
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"

static void shm_name(int pid, uint64_t tag, char *buf, size_t len)
{
    snprintf(buf, len, "/" FP_STATS_PREFIX "%d.%016" PRIx64, pid, tag);
}

/*
 * Create this mapping's own object: a fresh random name, O_EXCL so that it
 * is never one that exists, mode 0600. -1 (logged at debug level: the
 * counters then stay private) if shared memory cannot be had.
 */
static int shm_create(fp_log_t *log, uint64_t *tag_p, char *path, size_t len)
{
    for (int tries = 0; tries < 8; tries++) {
        uint64_t tag;
        int fd;

        if (fp_proto_random(&tag, sizeof(tag)) != FP_OK)
            return -1;
        shm_name((int)getpid(), tag, path, len);
        fd = shm_open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            *tag_p = tag;
            return fd;
        }
        if (errno != EEXIST) {
            fp_debug(log, "shm_open %s: %s; the region's counters are not published", path,
                     strerror(errno));
            return -1;
        }
    }
    return -1;
}

fp_status_t fp_stats_publish(fp_log_t *log, const char *name, const char *node, uint64_t size,
                             uint64_t granule, uint64_t cache_budget, fp_stats_shared_t **st_p)
{
    fp_stats_shared_t *st = NULL;
    char path[64];
    struct timespec ts;
    uint64_t tag = 0;
    int fd;

    fd = shm_create(log, &tag, path, sizeof(path));
    if (fd >= 0) {
        if (ftruncate(fd, sizeof(*st)) == 0) {
            st = mmap(NULL, sizeof(*st), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            if (st == MAP_FAILED)
                st = NULL;
        }
        close(fd);
        if (st == NULL)
            shm_unlink(path);
    }
    if (st == NULL) {
        st = calloc(1, sizeof(*st)); /* private counters: not listed */
        if (st == NULL)
            return FP_ERR_NO_MEMORY;
        st->flags = FP_STATS_HEAP;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    st->pid = (int32_t)getpid();
    st->tag = tag;
    snprintf(st->region, sizeof(st->region), "%s", name);
    snprintf(st->node, sizeof(st->node), "%s", node);
    st->size = size;
    st->granule = granule;
    st->cache_budget = cache_budget;
    st->mapped_at_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    st->version = FP_STATS_VERSION;
    atomic_thread_fence(memory_order_release);
    st->magic = FP_STATS_MAGIC;
    *st_p = st;
    return FP_OK;
}

void fp_stats_unpublish(fp_stats_shared_t *st)
{
    char path[64];

    if (st == NULL)
        return;
    if (st->flags & FP_STATS_HEAP) {
        free(st);
        return;
    }
    shm_name((int)st->pid, st->tag, path, sizeof(path));
    shm_unlink(path);
    munmap(st, sizeof(*st));
}

void fp_stats_latency_add(fp_stats_shared_t *st, uint64_t ns)
{
    unsigned bucket = 0;
    uint64_t max;

    /* bucket = 4 * log2(ns), to a quarter octave. */
    if (ns > 0) {
        unsigned lg = 63u - (unsigned)__builtin_clzll(ns);
        unsigned frac = lg >= 2 ? (unsigned)((ns >> (lg - 2)) & 3) : 0;
        bucket = 4 * lg + frac;
    }
    if (bucket >= FP_STATS_LAT_BUCKETS)
        bucket = FP_STATS_LAT_BUCKETS - 1;
    atomic_fetch_add_explicit(&st->lat_hist[bucket], 1, memory_order_relaxed);
    max = atomic_load_explicit(&st->lat_max, memory_order_relaxed);
    while (ns > max && !atomic_compare_exchange_weak(&st->lat_max, &max, ns))
        ;
}

uint64_t fp_stats_latency_percentile(const fp_stats_shared_t *st, double p)
{
    uint64_t total = 0, seen = 0, hist[FP_STATS_LAT_BUCKETS];

    for (unsigned i = 0; i < FP_STATS_LAT_BUCKETS; i++) {
        hist[i] = atomic_load_explicit(&st->lat_hist[i], memory_order_relaxed);
        total += hist[i];
    }
    if (total == 0)
        return 0;
    for (unsigned i = 0; i < FP_STATS_LAT_BUCKETS; i++) {
        seen += hist[i];
        if ((double)seen >= p * (double)total) {
            /* The upper bound of the bucket. */
            unsigned lg = i / 4, frac = i % 4;
            return lg >= 2 ? ((uint64_t)(4 + frac + 1) << (lg - 2)) : (uint64_t)1 << lg;
        }
    }
    return atomic_load_explicit(&st->lat_max, memory_order_relaxed);
}

void fp_stats_read(const fp_stats_shared_t *st, farpool_stats_t *s)
{
    memset(s, 0, sizeof(*s));
    s->faults = atomic_load(&st->faults);
    s->minor_faults = atomic_load(&st->minor);
    s->wp_faults = atomic_load(&st->wp);
    s->blocks_fetched = atomic_load(&st->fetched);
    s->bytes_in = atomic_load(&st->bytes_in);
    s->bytes_out = atomic_load(&st->bytes_out);
    s->evictions = atomic_load(&st->evictions);
    s->writebacks = atomic_load(&st->writebacks);
    s->fetch_errors = atomic_load(&st->fetch_errors);
    s->cache_bytes = atomic_load(&st->cache);
    s->cache_peak = atomic_load(&st->cache_peak);
    s->fetch_p50_ns = fp_stats_latency_percentile(st, 0.50);
    s->fetch_p99_ns = fp_stats_latency_percentile(st, 0.99);
    s->fetch_max_ns = atomic_load(&st->lat_max);
    s->prefetch_issued = atomic_load(&st->pf_issued);
    s->prefetch_used = atomic_load(&st->pf_used);
    s->prefetch_wasted = atomic_load(&st->pf_wasted);
    s->prefetch_late = atomic_load(&st->pf_late);
    s->prefetch_hinted = atomic_load(&st->pf_hinted);
}
