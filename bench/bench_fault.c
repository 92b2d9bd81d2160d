/* SPDX-License-Identifier: MIT */
/*
 * bench_fault: the fault engine (src/client/engine.c) against raw loopback
 * TCP, measured in one run.
 *
 * The question it answers: how close does memory mapped with farpool_map()
 * come to the wire it is fetched over? It forks its own farpoold and the raw
 * TCP baseline server of bench_net (bench_common.c), creates named regions on
 * the node, fills each once through a first mapping (one 8-byte word per
 * 4 KiB page, then farpool_sync() and farpool_unmap()), and then measures
 * fresh contexts and mappings of them, so that every block is fetched from
 * the node. The cache budget of a measured mapping is at least the region, so
 * nothing is evicted. Mappings are read-only (model weights: the page-moving
 * cache, src/client/cache_move.c) unless a row says writable (the shmem
 * cache). Figures:
 *
 * 1. sequential first touch: one thread reads one word per 4 KiB page, in
 *    order, of a 1 GiB region at 2 MiB and at 64 KiB granules and of a
 *    256 MiB region at 4 KiB; GB/s against the raw one-way stream, measured
 *    in slices between the passes (and, for reference, against the same
 *    stream received into new memfd pages, which is what any first touch of
 *    new memory pays on top of the wire). At 2 MiB also: with the cache's
 *    memory taken at map time (FARPOOL_CONTEXT_PARAM_PREFAULT), with the
 *    guest's memory made resident just before, and writable;
 * 2. random 4 KiB faults at 4 KiB granule: 20000 distinct random pages of a
 *    256 MiB region, each access timed with clock_gettime(); median and p99
 *    against raw 4 KiB request/response, the two alternating in blocks of
 *    100 (read-only with prefault, the steady state of a long-running
 *    program, and writable); plus the engine's own fetch latency from
 *    farpool_region_stats(), and the floor of any userfaultfd fault on this
 *    machine: a page served by a handler thread with no network at all;
 * 3. fault counts of the sequential passes at 2 MiB and at 4 KiB granules
 *    (the 4 KiB figure measured on 256 MiB and scaled to 1 GiB):
 *    farpool_region_stats() faults and minor_faults, and getrusage() minor +
 *    major faults of the process and of the touching thread;
 * 4. a granule sweep, 4 KiB to 2 MiB on 256 MiB regions: sequential GB/s and
 *    the latency of a 4 KiB access that misses (each in a distinct block),
 *    back to back and with the engine idle before each access.
 *
 * Every read is checked against the word written by the fill, so a figure is
 * never that of wrong bytes. Each pass is bounded in count and time; the
 * whole set is repeated --runs times and the median of each figure reported.
 * Ratios are taken between figures of the same run, never against a stored
 * number: the machines are shared and noisy.
 *
 * This is a benchmark, not a test: it prints tables and gates on nothing. Its
 * exit status says only whether it could measure. It deletes the regions it
 * created (farpool_region_delete) and stops its children on every exit path
 * (bench_common.c).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h> /* NAN, isnan */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <farpool/farpool.h>

#include "bench_common.h"
#include "client/uffd.h"
#include "common/log.h"
#include "common/time.h"

#define PAGE        (4 * KIB)
#define MAX_RUNS    64
#define LAT_BLOCK   100 /* raw and farpool take turns in blocks of this many accesses */
#define LAT_WARM    100 /* warm-up accesses before a latency measurement */
#define STREAM_SLOT 8   /* receive buffers of the one-way stream, BENCH_RAW_STREAM_IO each */
#define NODE_CAP    "4G"

/* The sweep's granules; measurement 1 uses three of them. */
#define NSWEEP 6
static const uint32_t sweep_granules[NSWEEP] = {4 << 10,   16 << 10, 64 << 10,
                                                256 << 10, 1 << 20,  2 << 20};
static const char *const sweep_names[NSWEEP] = {"4 KiB",   "16 KiB", "64 KiB",
                                                "256 KiB", "1 MiB",  "2 MiB"};
#define SWEEP_4K 0 /* its random misses back to back are measurement 2 */

/* Measurement 1: the regions of its rows. */
enum { SEQ_2M = 0, SEQ_64K = 1, SEQ_4K = 2, NSEQ = 3 };
static const char *const seq_names[NSEQ] = {"2 MiB", "64 KiB", "4 KiB"};

/* Regions: the two large ones of measurement 1, then one per sweep granule. */
enum { REG_BIG_2M = 0, REG_BIG_64K = 1, REG_SWEEP = 2, NREGIONS = REG_SWEEP + NSWEEP };

/* Targets of the issue. */
#define TARGET_SEQ        0.7   /* 2 MiB first touch >= 0.7x the loopback stream */
#define TARGET_LAT_ADD_US 10.0  /* random 4 KiB fault median <= raw + 10 us */
#define TARGET_FAULTS     400.0 /* 2 MiB fault count <= 1/400 of the 4 KiB count */
#define TARGET_FLOOR      1.2   /* a fault's median <= 1.2x (floor + raw round trip), same size */

/* Measurement 5: the fault path against its floor, at these granules. */
#define NFLOOR 2
static const uint32_t floor_granules[NFLOOR] = {4 << 10, 64 << 10};
static const unsigned floor_sweep[NFLOOR] = {0, 2}; /* their sweep regions */

/* Counters of measurement 3, in this order. */
enum { CNT_FP = 0, CNT_FP_MINOR, CNT_FP_ALL, CNT_RU_PROC, CNT_RU_THREAD, NCNT };
static const char *const cnt_names[NCNT] = {
    "farpool_region_stats() faults (missing pages)",
    "farpool_region_stats() minor_faults",
    "farpool_region_stats() faults + minor_faults (every fault served)",
    "getrusage(RUSAGE_SELF) minor+major (process)",
    "getrusage(RUSAGE_THREAD) minor+major (touching thread)",
};

typedef enum out_format { OUT_MARKDOWN, OUT_JSON, OUT_CSV } out_format_t;

/* How a measured region is mapped. */
typedef enum map_mode {
    MAP_RO,          /* read-only: the page-moving cache */
    MAP_RO_PREFAULT, /* the same, its memory taken at map time */
    MAP_RW,          /* writable: the shmem cache */
} map_mode_t;

typedef struct bench_cfg {
    unsigned runs;
    bool quick;
    out_format_t format;
    const char *farpoold;
    bench_cpus_t cpus;
    uint64_t big_size;      /* measurement 1 at 2 MiB and 64 KiB; 3 at 2 MiB */
    uint64_t small_size;    /* 4 KiB granule, random faults, the sweep */
    unsigned rand_count;    /* measurement 2: random pages */
    unsigned sweep_count;   /* measurement 4: random misses per granule and kind */
    uint64_t rand_limit_ns; /* time limit of one random measurement */
    uint64_t stream_bytes;  /* bytes of one slice of the one-way stream at most */
    uint64_t stream_warm;   /* warm-up bytes of a slice */
    uint64_t stream_limit_ns;
} bench_cfg_t;

typedef struct bench_region {
    char name[64];
    uint64_t size;
    uint32_t granule;
    uint64_t seed; /* of the words written by the fill */
    bool created;
} bench_region_t;

typedef struct bench {
    bench_cfg_t cfg;
    char node_addr[96];
    uint16_t raw_port;
    farpool_context_t *ctl; /* creates and deletes the regions */
    bench_region_t regions[NREGIONS];
    uint8_t *stream_buf;
    uint64_t *fp_samples, *raw_samples;
    uint8_t *raw_buf; /* where raw ping-pongs land: a block's worth, page-aligned */
    uint64_t *pages;  /* pages to touch, in a random order */
    uint64_t rng;
} bench_t;

/* The figures of one run. */
typedef struct run_result {
    double stream;               /* GB/s, raw one-way stream into reused buffers */
    double stream_new;           /* GB/s, the same into new memfd pages */
    double seq[NSEQ];            /* GB/s, measurement 1 */
    double seq_warm;             /* GB/s, 2 MiB granule, guest memory warmed first */
    double seq_prefault;         /* GB/s, 2 MiB granule, cache memory taken at map */
    double seq_rw;               /* GB/s, 2 MiB granule, writable mapping */
    double rand_med, rand_p99;   /* us, measurement 2, farpool */
    double rw_med, rw_p99;       /* us, the same on a writable mapping */
    double floor_med, floor_p99; /* us, a userfaultfd fault served without network */
    double raw_med, raw_p99;     /* us, raw 4 KiB ping-pong */
    double path_fp[NFLOOR];      /* us, measurement 5: farpool's median miss at each granule */
    double path_floor[NFLOOR];   /* us, the floor: a fault served by UFFDIO_COPY of a block */
    double path_raw[NFLOOR];     /* us, a raw ping-pong of a block, alternating with farpool */
    double fetch_p50, fetch_p99; /* us, farpool_region_stats() of measurement 2 */
    double rand_n;               /* random accesses measured */
    double cnt_2m[NCNT];         /* measurement 3, 2 MiB granule over big_size */
    double cnt_4k[NCNT];         /* 4 KiB granule, scaled to big_size */
    double sweep_seq[NSWEEP];    /* GB/s */
    double sweep_med[NSWEEP];    /* us */
    double sweep_p99[NSWEEP];
    double sweep_n[NSWEEP];
    double sweep_iso_med[NSWEEP]; /* us, isolated misses */
    double sweep_iso_p99[NSWEEP];
} run_result_t;

/* What a sequential pass saw. */
typedef struct seq_result {
    double gbs;
    uint64_t cnt[NCNT];
} seq_result_t;

/* ------------------------------------------------------------------------ */
/* Regions and mappings                                                     */
/* ------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static fp_status_t context_new(const bench_t *b, uint64_t cache_bytes, bool prefault,
                               farpool_context_t **ctx_p)
{
    const char *nodes[1] = {b->node_addr};
    farpool_context_params_t p;
    fp_status_t status;

    memset(&p, 0, sizeof(p));
    p.field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_CACHE_BYTES |
                   FARPOOL_CONTEXT_PARAM_TIMEOUT | FARPOOL_CONTEXT_PARAM_PREFAULT;
    p.nodes = nodes;
    p.nnodes = 1;
    p.cache_bytes = cache_bytes;
    p.timeout_ms = BENCH_IO_TIMEOUT_MS;
    p.prefault = prefault;
    status = farpool_context_create(&p, ctx_p);
    if (status != FP_OK)
        fprintf(stderr, "%s: context on %s: %s\n", bench_prog, b->node_addr,
                farpool_status_string(status));
    return status;
}

/* A mapping of one region in a context of its own. */
typedef struct mapping {
    farpool_context_t *ctx;
    farpool_region_t *region;
    uint8_t *addr;
} mapping_t;

/* Cache budget of a mapping of @r: the region and room to spare, at least 1 GiB. */
static uint64_t mapping_budget(const bench_region_t *r)
{
    uint64_t want = r->size + 64 * MIB;

    return want < GIB ? GIB : want;
}

static fp_status_t mapping_open(const bench_t *b, const bench_region_t *r, map_mode_t mode,
                                mapping_t *m)
{
    void *addr;
    fp_status_t status;

    memset(m, 0, sizeof(*m));
    status = context_new(b, mapping_budget(r), mode == MAP_RO_PREFAULT, &m->ctx);
    if (status != FP_OK)
        return status;
    status = farpool_region_open(m->ctx, r->name, mode == MAP_RW ? 0 : FARPOOL_REGION_READONLY,
                                 &m->region);
    if (status == FP_OK)
        status = farpool_map(m->region, &addr);
    if (status != FP_OK) {
        fprintf(stderr, "%s: open and map region %s: %s\n", bench_prog, r->name,
                farpool_status_string(status));
        farpool_context_destroy(m->ctx);
        m->ctx = NULL;
        return status;
    }
    m->addr = addr;
    return FP_OK;
}

/* Unmap, close, disconnect. */
static void mapping_close(mapping_t *m)
{
    farpool_region_close(m->region);
    farpool_context_destroy(m->ctx);
    memset(m, 0, sizeof(*m));
}

/*
 * Create region @r and write one word per 4 KiB page through a mapping, then
 * sync and unmap: its bytes then live on the node only.
 */
static fp_status_t region_fill(bench_t *b, bench_region_t *r)
{
    farpool_region_t *region;
    mapping_t m;
    uint64_t t0, t1, t2, pages = r->size / PAGE;
    fp_status_t status;

    status = farpool_region_create(b->ctl, r->name, r->size, r->granule, &region);
    if (status != FP_OK) {
        fprintf(stderr, "%s: create region %s (%llu bytes, granule %u): %s\n", bench_prog, r->name,
                (unsigned long long)r->size, r->granule, farpool_status_string(status));
        return status;
    }
    r->created = true;
    farpool_region_close(region);
    r->seed = rng_next(&b->rng) | 1;

    status = mapping_open(b, r, MAP_RW, &m);
    if (status != FP_OK)
        return status;
    t0 = fp_time_ns();
    for (uint64_t p = 0; p < pages; p++)
        *(volatile uint64_t *)(m.addr + p * PAGE) = bench_page_word(r->seed, p);
    t1 = fp_time_ns();
    status = farpool_sync(m.region);
    t2 = fp_time_ns();
    if (status == FP_OK)
        status = farpool_unmap(m.region);
    if (status != FP_OK)
        fprintf(stderr, "%s: write back region %s: %s\n", bench_prog, r->name,
                farpool_status_string(status));
    mapping_close(&m);
    if (status == FP_OK)
        fprintf(stderr, "%s: filled %s: %llu MiB at granule %u KiB: writes %.2f s, sync %.2f s\n",
                bench_prog, r->name, (unsigned long long)(r->size / MIB), r->granule >> 10,
                (double)(t1 - t0) / 1e9, (double)(t2 - t1) / 1e9);
    return status;
}

static fp_status_t regions_setup(bench_t *b)
{
    for (unsigned i = 0; i < NREGIONS; i++) {
        bench_region_t *r = &b->regions[i];
        fp_status_t status;

        if (i == REG_BIG_2M || i == REG_BIG_64K) {
            r->size = b->cfg.big_size;
            r->granule = i == REG_BIG_2M ? 2u << 20 : 64u << 10;
        } else {
            r->size = b->cfg.small_size;
            r->granule = sweep_granules[i - REG_SWEEP];
        }
        snprintf(r->name, sizeof(r->name), "bench_fault.%d.%u.%llum", (int)getpid(), r->granule,
                 (unsigned long long)(r->size / MIB));
        status = region_fill(b, r);
        if (status != FP_OK)
            return status;
    }
    return FP_OK;
}

static void regions_delete(bench_t *b)
{
    for (unsigned i = 0; i < NREGIONS; i++) {
        bench_region_t *r = &b->regions[i];
        fp_status_t status;

        if (!r->created)
            continue;
        status = farpool_region_delete(b->ctl, r->name);
        if (status != FP_OK)
            fprintf(stderr, "%s: delete region %s: %s\n", bench_prog, r->name,
                    farpool_status_string(status));
        r->created = false;
    }
}

static fp_status_t check_word(const bench_region_t *r, uint64_t page, uint64_t got)
{
    if (got == bench_page_word(r->seed, page))
        return FP_OK;
    fprintf(stderr, "%s: region %s page %llu reads %#llx, the fill wrote %#llx\n", bench_prog,
            r->name, (unsigned long long)page, (unsigned long long)got,
            (unsigned long long)bench_page_word(r->seed, page));
    return FP_ERR_PROTOCOL;
}

static void check_stats(const bench_region_t *r, const farpool_stats_t *st)
{
    if (st->evictions != 0 || st->fetch_errors != 0)
        fprintf(stderr, "%s: region %s: %llu evictions, %llu fetch errors during a pass\n",
                bench_prog, r->name, (unsigned long long)st->evictions,
                (unsigned long long)st->fetch_errors);
}

/* ------------------------------------------------------------------------ */
/* Sequential first touch                                                   */
/* ------------------------------------------------------------------------ */

static uint64_t rusage_faults(int who)
{
    struct rusage ru;

    if (getrusage(who, &ru) != 0)
        return 0;
    return (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
}

/* Touch one word per 4 KiB page of a fresh mapping of @r, in order, on this thread. */
static fp_status_t seq_pass(const bench_t *b, const bench_region_t *r, map_mode_t mode,
                            seq_result_t *res)
{
    uint64_t pages = r->size / PAGE, bad_page = UINT64_MAX, bad_word = 0;
    uint64_t t0, t1, proc0, proc1, thr0, thr1;
    farpool_stats_t st;
    mapping_t m;
    fp_status_t status;

    status = mapping_open(b, r, mode, &m);
    if (status != FP_OK)
        return status;
    proc0 = rusage_faults(RUSAGE_SELF);
    thr0 = rusage_faults(RUSAGE_THREAD);
    t0 = fp_time_ns();
    for (uint64_t p = 0; p < pages; p++) {
        uint64_t v = *(const volatile uint64_t *)(m.addr + p * PAGE);
        if (v != bench_page_word(r->seed, p) && bad_page == UINT64_MAX) {
            bad_page = p;
            bad_word = v;
        }
    }
    t1 = fp_time_ns();
    thr1 = rusage_faults(RUSAGE_THREAD);
    proc1 = rusage_faults(RUSAGE_SELF);
    farpool_region_stats(m.region, &st, sizeof(st));
    mapping_close(&m);
    check_stats(r, &st);
    if (bad_page != UINT64_MAX)
        return check_word(r, bad_page, bad_word);
    res->gbs = (double)r->size / (double)(t1 - t0);
    res->cnt[CNT_FP] = st.faults;
    res->cnt[CNT_FP_MINOR] = st.minor_faults;
    res->cnt[CNT_FP_ALL] = st.faults + st.minor_faults;
    res->cnt[CNT_RU_PROC] = proc1 - proc0;
    res->cnt[CNT_RU_THREAD] = thr1 - thr0;
    return FP_OK;
}

/* A slice of the raw one-way stream, the ceiling of the sequential figures. */
static fp_status_t stream_slice(const bench_t *b, bench_acc_t *acc)
{
    return bench_raw_oneway(b->raw_port, STREAM_SLOT, b->cfg.stream_warm, b->cfg.stream_bytes,
                            b->cfg.stream_limit_ns, b->stream_buf, acc);
}

/*
 * A slice of the raw one-way stream received into new page-cache pages: a
 * fresh memfd of stream_bytes, filled in order by recv() and then dropped.
 * Every first touch, of a mapping or of anything else, pays for its new
 * pages; on these guests that is ~3 us per 4 KiB page of shmem, which the
 * plain stream, received into reused buffers, never pays.
 */
static fp_status_t stream_new_slice(const bench_t *b, bench_acc_t *acc)
{
    uint64_t bytes = b->cfg.stream_bytes, got = 0, t0, deadline;
    uint8_t req[BENCH_RAW_REQ_SIZE];
    fp_status_t status = FP_OK;
    uint8_t *buf;
    int mfd, fd;

    mfd = memfd_create("bench_fault_stream", MFD_CLOEXEC);
    if (mfd < 0 || ftruncate(mfd, (off_t)bytes) < 0) {
        fprintf(stderr, "%s: memfd: %s\n", bench_prog, strerror(errno));
        if (mfd >= 0)
            close(mfd);
        return FP_ERR_IO;
    }
    buf = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    close(mfd);
    if (buf == MAP_FAILED) {
        fprintf(stderr, "%s: mmap: %s\n", bench_prog, strerror(errno));
        return FP_ERR_IO;
    }
    fd = bench_raw_connect(b->raw_port);
    if (fd < 0) {
        munmap(buf, bytes);
        return FP_ERR_NOT_CONNECTED;
    }
    bench_raw_req_encode(req, BENCH_RAW_OP_STREAM, 0, 0);
    if (bench_write_full(fd, req, sizeof(req)) != 0)
        goto err;
    /* Warm-up into the reused buffers, then time the fresh pages. */
    for (uint64_t warm = 0; warm < b->cfg.stream_warm;) {
        ssize_t n = recv(fd, b->stream_buf, BENCH_RAW_STREAM_IO, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto err;
        warm += (uint64_t)n;
    }
    t0 = fp_time_ns();
    deadline = t0 + b->cfg.stream_limit_ns;
    while (got < bytes && fp_time_ns() < deadline) {
        uint64_t want = bytes - got < BENCH_RAW_STREAM_IO ? bytes - got : BENCH_RAW_STREAM_IO;
        ssize_t n = recv(fd, buf + got, want, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto err;
        got += (uint64_t)n;
    }
    acc->bytes += got;
    acc->ns += fp_time_ns() - t0;
    goto out;

err:
    fprintf(stderr, "%s: baseline one-way stream into new pages: %s\n", bench_prog,
            strerror(errno));
    status = FP_ERR_NOT_CONNECTED;
out:
    close(fd);
    munmap(buf, bytes);
    return status;
}

/*
 * Measurements 1, 3 and the sweep's sequential column: every sequential pass,
 * each preceded by a slice of the one-way stream (and one after the last).
 */
static fp_status_t seq_measure(bench_t *b, run_result_t *r)
{
    static const unsigned regs[] = {REG_BIG_2M, REG_BIG_64K};
    bench_acc_t acc, acc_new;
    seq_result_t res;
    fp_status_t status;

    memset(&acc, 0, sizeof(acc));
    memset(&acc_new, 0, sizeof(acc_new));
    bench_cpus_place(&b->cfg.cpus, BENCH_PHASE_STREAM);
    for (unsigned i = 0; i < 2 + NSWEEP; i++) {
        const bench_region_t *reg = &b->regions[i < 2 ? regs[i] : REG_SWEEP + i - 2];

        status = stream_slice(b, &acc);
        if (status == FP_OK)
            status = stream_new_slice(b, &acc_new);
        if (status != FP_OK)
            return status;
        memset(&res, 0, sizeof(res));
        status = seq_pass(b, reg, MAP_RO, &res);
        if (status != FP_OK)
            return status;
        if (i == 0) {
            /* The same pass with the cache's memory taken at map time; right
             * after the guest's memory was made resident again (what the engine
             * costs, without the host); and on a writable mapping. */
            seq_result_t other;

            memset(&other, 0, sizeof(other));
            status = seq_pass(b, reg, MAP_RO_PREFAULT, &other);
            r->seq_prefault = other.gbs;
            bench_warm_memory(reg->size + 64 * MIB);
            if (status == FP_OK)
                status = seq_pass(b, reg, MAP_RO, &other);
            r->seq_warm = other.gbs;
            if (status == FP_OK)
                status = seq_pass(b, reg, MAP_RW, &other);
            r->seq_rw = other.gbs;
            if (status != FP_OK)
                return status;
        }
        if (i < 2) {
            r->seq[i == 0 ? SEQ_2M : SEQ_64K] = res.gbs;
            if (i == 0) {
                for (unsigned c = 0; c < NCNT; c++)
                    r->cnt_2m[c] = (double)res.cnt[c];
            }
            continue;
        }
        r->sweep_seq[i - 2] = res.gbs;
        if (i - 2 == SWEEP_4K) {
            double scale = (double)b->cfg.big_size / (double)reg->size;

            r->seq[SEQ_4K] = res.gbs;
            for (unsigned c = 0; c < NCNT; c++)
                r->cnt_4k[c] = (double)res.cnt[c] * scale;
        }
    }
    status = stream_slice(b, &acc);
    if (status == FP_OK)
        status = stream_new_slice(b, &acc_new);
    if (status != FP_OK)
        return status;
    r->stream = bench_acc_gbs(&acc);
    r->stream_new = bench_acc_gbs(&acc_new);
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* Random 4 KiB accesses                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Wait until the engine of @m has fetched @blocks blocks in all (or failed
 * to): nothing of an earlier access is still on the wire or being mapped.
 */
static void engine_settle(const mapping_t *m, uint64_t blocks)
{
    uint64_t deadline = fp_time_ns() + BENCH_IO_TIMEOUT_MS * FP_NS_PER_MS;
    farpool_stats_t st;

    while (farpool_region_stats(m->region, &st, sizeof(st)) == FP_OK &&
           st.blocks_fetched + st.fetch_errors < blocks && fp_time_ns() < deadline)
        bench_sleep_us(20);
}

/*
 * Timed first touches of @pages[0..@count), into @samples (ns) unless NULL.
 * With @isolated, each access waits first until the fetches of the earlier
 * ones are complete; *@blocks_p counts the blocks touched in this mapping.
 */
static fp_status_t rand_touch(const bench_region_t *r, const mapping_t *m, const uint64_t *pages,
                              unsigned count, bool isolated, uint64_t *blocks_p, uint64_t *samples)
{
    for (unsigned i = 0; i < count; i++) {
        uint64_t t0, t1, v;
        fp_status_t status;

        if (isolated)
            engine_settle(m, *blocks_p);
        (*blocks_p)++;
        t0 = fp_time_ns();
        v = *(const volatile uint64_t *)(m->addr + pages[i] * PAGE);
        t1 = fp_time_ns();
        status = check_word(r, pages[i], v);
        if (status != FP_OK)
            return status;
        if (samples != NULL)
            samples[i] = t1 - t0;
    }
    return FP_OK;
}

/*
 * @count raw ping-pongs of @size bytes on @fd, at offsets rotating from
 * *@off_p, into @buf and @samples (ns).
 */
static fp_status_t raw_touch(int fd, unsigned count, uint64_t size, uint8_t *buf, uint64_t *off_p,
                             uint64_t *samples)
{
    for (unsigned i = 0; i < count; i++) {
        uint64_t t0 = fp_time_ns();
        fp_status_t status = bench_raw_pingpong(fd, size, *off_p, buf);

        if (status != FP_OK)
            return status;
        if (samples != NULL)
            samples[i] = fp_time_ns() - t0;
        *off_p = (*off_p + size) % BENCH_SPAN;
    }
    return FP_OK;
}

/*
 * Up to @count timed first touches of @r, each a random 4 KiB page of a
 * distinct random block, so each one misses. When @raw_fd >= 0 they take turns
 * with raw ping-pongs of a block in blocks of LAT_BLOCK (which goes first
 * alternates), so both see the same machine. A region with fewer blocks than
 * @count is mapped afresh as often as needed. Bounded by rand_limit_ns, after
 * a warm-up of LAT_WARM untimed accesses of each kind; mapped as @mode. With @isolated, each
 * access waits until the engine is idle (see rand_touch()). Samples (ns) land in
 * b->fp_samples and b->raw_samples; *@n_p says how many; *@st_p gets the
 * region statistics of the first mapping (the warm-up's fetches included).
 */
static fp_status_t rand_measure(bench_t *b, const bench_region_t *r, map_mode_t mode,
                                unsigned count, int raw_fd, bool isolated, unsigned *n_p,
                                farpool_stats_t *st_p)
{
    uint64_t nblocks = r->size / r->granule, pages_per_block = r->granule / PAGE;
    uint64_t deadline = fp_time_ns() + b->cfg.rand_limit_ns, raw_off = 0;
    uint64_t *pages = b->pages;
    unsigned n = 0, turn = 0;
    fp_status_t status;
    bool first = true;

    if (raw_fd >= 0) {
        status = raw_touch(raw_fd, LAT_WARM, r->granule, b->raw_buf, &raw_off, NULL);
        if (status != FP_OK)
            return status;
    }
    while (n < count && fp_time_ns() < deadline) {
        uint64_t warm = first ? (nblocks / 8 < LAT_WARM ? nblocks / 8 : LAT_WARM) : 0;
        uint64_t take = nblocks - warm < count - n ? nblocks - warm : count - n;
        uint64_t blocks = 0;
        unsigned done = 0;
        mapping_t m;

        /* A random page in each of warm + take distinct random blocks (Fisher-Yates). */
        for (uint64_t i = 0; i < nblocks; i++)
            pages[i] = i;
        for (uint64_t i = 0; i < warm + take; i++) {
            uint64_t j = i + rng_next(&b->rng) % (nblocks - i), t = pages[i];
            pages[i] = pages[j];
            pages[j] = t;
            pages[i] = pages[i] * pages_per_block + rng_next(&b->rng) % pages_per_block;
        }
        status = mapping_open(b, r, mode, &m);
        if (status != FP_OK)
            return status;
        status = rand_touch(r, &m, pages, (unsigned)warm, isolated, &blocks, NULL);
        while (status == FP_OK && done < take && fp_time_ns() < deadline) {
            unsigned chunk = take - done < LAT_BLOCK ? (unsigned)(take - done) : LAT_BLOCK;

            for (unsigned k = 0; k < 2 && status == FP_OK; k++) {
                if ((turn + k) % 2 == 0)
                    status = rand_touch(r, &m, pages + warm + done, chunk, isolated, &blocks,
                                        b->fp_samples + n + done);
                else if (raw_fd >= 0)
                    status = raw_touch(raw_fd, chunk, r->granule, b->raw_buf, &raw_off,
                                       b->raw_samples + n + done);
            }
            done += chunk;
            turn++;
        }
        if (first)
            farpool_region_stats(m.region, st_p, sizeof(*st_p));
        mapping_close(&m);
        if (status != FP_OK)
            return status;
        n += done;
        first = false;
    }
    *n_p = n;
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* The floor of a userfaultfd fault                                         */
/* ------------------------------------------------------------------------ */

/*
 * What any userfaultfd fault costs on this machine before a byte is fetched:
 * a thread touches pages of a registered anonymous range, another thread,
 * woken by poll(), reads the fault and answers it with UFFDIO_COPY of a page
 * it has ready. No network, no farpool code: the trap, two context switches,
 * the message and the copy.
 */
typedef struct floor_server {
    fp_uffd_t uffd;
    int stop; /* an eventfd, written when the measurement is over */
    const uint8_t *page;
    uint64_t size;  /* bytes copied per fault: a block */
    uintptr_t area; /* the registered range's start: blocks are counted from it */
} floor_server_t;

static void *floor_serve(void *arg)
{
    floor_server_t *f = arg;

    for (;;) {
        struct pollfd pfd[2] = {{f->uffd.fd, POLLIN, 0}, {f->stop, POLLIN, 0}};
        struct uffdio_copy copy;
        struct uffd_msg msg;

        if (poll(pfd, 2, -1) < 0 && errno != EINTR)
            return NULL;
        if (pfd[1].revents != 0 || (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL)))
            return NULL;
        if (read(f->uffd.fd, &msg, sizeof(msg)) != (ssize_t)sizeof(msg))
            continue;
        if (msg.event != UFFD_EVENT_PAGEFAULT)
            continue;
        memset(&copy, 0, sizeof(copy));
        copy.dst = f->area + (msg.arg.pagefault.address - f->area) / f->size * f->size;
        copy.src = (uintptr_t)f->page;
        copy.len = f->size;
        ioctl(f->uffd.fd, UFFDIO_COPY, &copy);
    }
}

/* The floor for blocks of @size bytes: each fault copies a whole block. */
static fp_status_t floor_measure(bench_t *b, unsigned count, uint64_t size, double *med_p,
                                 double *p99_p)
{
    uint64_t len = (uint64_t)count * size;
    floor_server_t f;
    pthread_t th;
    uint8_t *area, *page;
    bool umo;
    fp_status_t status;

    page = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    area = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED || area == MAP_FAILED) {
        fprintf(stderr, "%s: mmap: %s\n", bench_prog, strerror(errno));
        return FP_ERR_NO_MEMORY;
    }
    memset(page, 0x5a, size);
    (void)madvise(area, len, MADV_NOHUGEPAGE); /* advice: blocks are copied as small pages */
    status = fp_uffd_open(NULL, &f.uffd, &umo, NULL);
    if (status == FP_OK) {
        status = fp_uffd_register(&f.uffd, area, len, FP_UFFD_MISSING);
        if (status != FP_OK)
            fp_uffd_close(&f.uffd);
    }
    if (status != FP_OK) {
        munmap(page, size);
        munmap(area, len);
        return status;
    }
    f.page = page;
    f.size = size;
    f.area = (uintptr_t)area;
    f.stop = eventfd(0, EFD_CLOEXEC);
    if (f.stop < 0 || pthread_create(&th, NULL, floor_serve, &f) != 0) {
        if (f.stop >= 0)
            close(f.stop);
        fp_uffd_close(&f.uffd);
        munmap(page, size);
        munmap(area, len);
        return FP_ERR_NO_MEMORY;
    }
    for (unsigned i = 0; i < count; i++) {
        uint64_t p = rng_next(&b->rng) % count, t0 = fp_time_ns();

        /* A random page of a random block; a block touched twice is a hit. */
        (void)*(volatile uint8_t *)(area + p * size + (rng_next(&b->rng) % (size / PAGE)) * PAGE);
        b->fp_samples[i] = fp_time_ns() - t0;
    }
    bench_lat_summary(b->fp_samples, count, med_p, p99_p);
    (void)!write(f.stop, &(uint64_t){1}, sizeof(uint64_t));
    pthread_join(th, NULL);
    close(f.stop);
    fp_uffd_unregister(&f.uffd, area, len);
    fp_uffd_close(&f.uffd);
    munmap(page, size);
    munmap(area, len);
    return FP_OK;
}

static fp_status_t lat_measure(bench_t *b, run_result_t *r)
{
    const bench_region_t *reg4k = &b->regions[REG_SWEEP + SWEEP_4K];
    farpool_stats_t st;
    unsigned n;
    fp_status_t status;
    int fd;

    bench_cpus_place(&b->cfg.cpus, BENCH_PHASE_LATENCY);
    fd = bench_raw_connect(b->raw_port);
    if (fd < 0)
        return FP_ERR_NOT_CONNECTED;
    memset(&st, 0, sizeof(st));
    status = rand_measure(b, reg4k, MAP_RW, b->cfg.rand_count, fd, false, &n, &st);
    if (status == FP_OK && n > 0)
        bench_lat_summary(b->fp_samples, n, &r->rw_med, &r->rw_p99);
    if (status == FP_OK)
        status = rand_measure(b, reg4k, MAP_RO_PREFAULT, b->cfg.rand_count, fd, false, &n, &st);
    close(fd);
    if (status != FP_OK)
        return status;
    if (n == 0) {
        fprintf(stderr, "%s: no random access measured within the time limit\n", bench_prog);
        return FP_ERR_TIMED_OUT;
    }
    check_stats(reg4k, &st);
    bench_lat_summary(b->fp_samples, n, &r->rand_med, &r->rand_p99);
    bench_lat_summary(b->raw_samples, n, &r->raw_med, &r->raw_p99);
    r->rand_n = n;
    r->fetch_p50 = (double)st.fetch_p50_ns / 1e3;
    r->fetch_p99 = (double)st.fetch_p99_ns / 1e3;
    r->sweep_med[SWEEP_4K] = r->rand_med;
    r->sweep_p99[SWEEP_4K] = r->rand_p99;
    r->sweep_n[SWEEP_4K] = n;
    status = floor_measure(b, b->cfg.rand_count, PAGE, &r->floor_med, &r->floor_p99);
    if (status != FP_OK)
        return status;
    /* 5. The fault path against its floor: farpool's miss, alternating with a
     * raw round trip of a block, and the floor for a block, at each granule. */
    r->path_fp[0] = r->rand_med;
    r->path_raw[0] = r->raw_med;
    r->path_floor[0] = r->floor_med;
    for (unsigned i = 1; i < NFLOOR; i++) {
        const bench_region_t *reg = &b->regions[REG_SWEEP + floor_sweep[i]];
        double p99;

        fd = bench_raw_connect(b->raw_port);
        if (fd < 0)
            return FP_ERR_NOT_CONNECTED;
        status = rand_measure(b, reg, MAP_RO_PREFAULT, b->cfg.rand_count / 4, fd, false, &n, &st);
        close(fd);
        if (status != FP_OK)
            return status;
        r->path_fp[i] = r->path_raw[i] = NAN;
        if (n > 0) {
            bench_lat_summary(b->fp_samples, n, &r->path_fp[i], &p99);
            bench_lat_summary(b->raw_samples, n, &r->path_raw[i], &p99);
        }
        status =
            floor_measure(b, b->cfg.rand_count / 4, floor_granules[i], &r->path_floor[i], &p99);
        if (status != FP_OK)
            return status;
    }

    for (unsigned i = 0; i < NSWEEP; i++) {
        const bench_region_t *reg = &b->regions[REG_SWEEP + i];

        if (i != SWEEP_4K) {
            status = rand_measure(b, reg, MAP_RO_PREFAULT, b->cfg.sweep_count, -1, false, &n, &st);
            if (status != FP_OK)
                return status;
            r->sweep_med[i] = r->sweep_p99[i] = NAN;
            if (n > 0)
                bench_lat_summary(b->fp_samples, n, &r->sweep_med[i], &r->sweep_p99[i]);
            r->sweep_n[i] = n;
        }
        status = rand_measure(b, reg, MAP_RO_PREFAULT, b->cfg.sweep_count, -1, true, &n, &st);
        if (status != FP_OK)
            return status;
        r->sweep_iso_med[i] = r->sweep_iso_p99[i] = NAN;
        if (n > 0)
            bench_lat_summary(b->fp_samples, n, &r->sweep_iso_med[i], &r->sweep_iso_p99[i]);
    }
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* One run                                                                  */
/* ------------------------------------------------------------------------ */

static fp_status_t run_once(bench_t *b, run_result_t *r)
{
    fp_status_t status;

    memset(r, 0, sizeof(*r));
    status = seq_measure(b, r);
    if (status == FP_OK)
        status = lat_measure(b, r);
    return status;
}

/* One line per run on stderr, to judge the noise. */
static void print_run_line(unsigned i, unsigned n, const run_result_t *r)
{
    fprintf(
        stderr,
        "run %u/%u: stream %.2f (new pages %.2f) GB/s; first touch 2M/64K/4K %.2f/%.2f/%.2f GB/s "
        "(2M prefault %.2f, memory warmed %.2f, writable %.2f); random 4 KiB median "
        "farpool/writable/raw/floor %.1f/%.1f/%.1f/%.1f us; faults 2M/4K %.0f/%.0f; sweep",
        i + 1, n, r->stream, r->stream_new, r->seq[SEQ_2M], r->seq[SEQ_64K], r->seq[SEQ_4K],
        r->seq_prefault, r->seq_warm, r->seq_rw, r->rand_med, r->rw_med, r->raw_med, r->floor_med,
        r->cnt_2m[CNT_FP_ALL], r->cnt_4k[CNT_FP_ALL]);
    for (unsigned k = 0; k < NSWEEP; k++)
        fprintf(stderr, " %s %.2f GB/s %.1f us", sweep_names[k], r->sweep_seq[k], r->sweep_med[k]);
    for (unsigned k = 0; k < NFLOOR; k++)
        fprintf(stderr, "; %s miss %.1f us, floor %.1f + raw %.1f (%.2fx)",
                sweep_names[floor_sweep[k]], r->path_fp[k], r->path_floor[k], r->path_raw[k],
                r->path_fp[k] / (r->path_floor[k] + r->path_raw[k]));
    fprintf(stderr, "\n");
}

/* ------------------------------------------------------------------------ */
/* Report                                                                   */
/* ------------------------------------------------------------------------ */

/* Median over runs of the double at @offset in each run_result_t. */
static double median_of(const run_result_t *runs, unsigned n, size_t offset)
{
    double v[MAX_RUNS];

    for (unsigned i = 0; i < n; i++)
        v[i] = *(const double *)((const char *)&runs[i] + offset);
    return bench_median(v, n);
}

#define MED(field)       median_of(runs, n, offsetof(run_result_t, field))
#define MED_AT(field, i) median_of(runs, n, offsetof(run_result_t, field) + (i) * sizeof(double))

typedef struct report_row {
    unsigned table; /* 1-5: the measurement (5 is printed as 2b) */
    char metric[96];
    const char *unit;
    double fp;    /* farpool's figure */
    double base;  /* the baseline, NAN if none */
    double cmp;   /* ratio (tables 1, 3, 4) or difference (table 2); NAN if none */
    double base2; /* table 1: the stream into new pages; else NAN */
    double cmp2;  /* fp / base2 */
    char target[32];
    int met; /* 1 yes, 0 no, -1 no target */
} report_row_t;

#define MAX_ROWS 64

static report_row_t *row_add(report_row_t *rows, unsigned *k, unsigned table, const char *unit)
{
    report_row_t *row = &rows[(*k)++];

    memset(row, 0, sizeof(*row));
    row->table = table;
    row->unit = unit;
    row->base = row->cmp = row->base2 = row->cmp2 = NAN;
    snprintf(row->target, sizeof(row->target), "-");
    row->met = -1;
    return row;
}

/* Fill the figures of a table-1 row: @gbs against both streams, with the target if @target. */
static void seq_row(report_row_t *row, double gbs, double stream, double stream_new, bool target)
{
    row->fp = gbs;
    row->base = stream;
    row->cmp = gbs / stream;
    row->base2 = stream_new;
    row->cmp2 = gbs / stream_new;
    if (target) {
        snprintf(row->target, sizeof(row->target), ">= %.1fx", TARGET_SEQ);
        row->met = row->cmp >= TARGET_SEQ;
    }
}

static unsigned build_rows(const bench_cfg_t *cfg, const run_result_t *runs, unsigned n,
                           report_row_t *rows)
{
    double stream = MED(stream);
    unsigned k = 0;

    /* 1. Sequential first touch. */
    for (unsigned i = 0; i < NSEQ; i++) {
        report_row_t *row = row_add(rows, &k, 1, "GB/s");
        uint64_t size = i == SEQ_4K ? cfg->small_size : cfg->big_size;

        snprintf(row->metric, sizeof(row->metric), "first touch, %s granule, %llu MiB (GB/s)",
                 seq_names[i], (unsigned long long)(size / MIB));
        seq_row(row, MED_AT(seq, i), stream, MED(stream_new), i == SEQ_2M);
        if (i == SEQ_2M) {
            row = row_add(rows, &k, 1, "GB/s");
            snprintf(row->metric, sizeof(row->metric),
                     "same, cache memory taken at map (prefault) (GB/s)");
            seq_row(row, MED(seq_prefault), stream, MED(stream_new), true);
            row = row_add(rows, &k, 1, "GB/s");
            snprintf(row->metric, sizeof(row->metric),
                     "same, guest memory made resident just before (GB/s)");
            seq_row(row, MED(seq_warm), stream, MED(stream_new), true);
            row = row_add(rows, &k, 1, "GB/s");
            snprintf(row->metric, sizeof(row->metric), "same, writable mapping (GB/s)");
            seq_row(row, MED(seq_rw), stream, MED(stream_new), false);
        }
    }

    /* 2. Random 4 KiB faults. */
    {
        report_row_t *row = row_add(rows, &k, 2, "us");
        snprintf(row->metric, sizeof(row->metric), "random 4 KiB fault, median (us)");
        row->fp = MED(rand_med);
        row->base = MED(raw_med);
        row->cmp = row->fp - row->base;
        snprintf(row->target, sizeof(row->target), "<= raw + %.0f us", TARGET_LAT_ADD_US);
        row->met = row->cmp <= TARGET_LAT_ADD_US;

        row = row_add(rows, &k, 2, "us");
        snprintf(row->metric, sizeof(row->metric), "random 4 KiB fault, p99 (us)");
        row->fp = MED(rand_p99);
        row->base = MED(raw_p99);
        row->cmp = row->fp - row->base;

        row = row_add(rows, &k, 2, "us");
        snprintf(row->metric, sizeof(row->metric), "same, writable mapping, median (us)");
        row->fp = MED(rw_med);
        row->base = MED(raw_med);
        row->cmp = row->fp - row->base;

        row = row_add(rows, &k, 2, "us");
        snprintf(row->metric, sizeof(row->metric),
                 "any userfaultfd fault, no network (floor), median (us)");
        row->fp = MED(floor_med);
        row = row_add(rows, &k, 2, "us");
        snprintf(row->metric, sizeof(row->metric),
                 "any userfaultfd fault, no network (floor), p99 (us)");
        row->fp = MED(floor_p99);

        row = row_add(rows, &k, 2, "us");
        snprintf(row->metric, sizeof(row->metric), "engine fetch latency p50, region stats (us)");
        row->fp = MED(fetch_p50);
        row = row_add(rows, &k, 2, "us");
        snprintf(row->metric, sizeof(row->metric), "engine fetch latency p99, region stats (us)");
        row->fp = MED(fetch_p99);
        row = row_add(rows, &k, 2, "count");
        snprintf(row->metric, sizeof(row->metric), "accesses timed (each)");
        row->fp = MED(rand_n);
    }

    /* 5. The fault path against its floor. */
    for (unsigned i = 0; i < NFLOOR; i++) {
        report_row_t *row = row_add(rows, &k, 5, "us");

        snprintf(row->metric, sizeof(row->metric), "%s", sweep_names[floor_sweep[i]]);
        row->fp = MED_AT(path_fp, i);
        row->base2 = MED_AT(path_floor, i);
        row->cmp2 = MED_AT(path_raw, i);
        row->base = row->base2 + row->cmp2;
        row->cmp = row->fp / row->base;
        snprintf(row->target, sizeof(row->target), "<= %.1fx", TARGET_FLOOR);
        row->met = row->cmp <= TARGET_FLOOR;
    }

    /* 3. Fault counts. */
    for (unsigned c = 0; c < NCNT; c++) {
        report_row_t *row = row_add(rows, &k, 3, "count");

        snprintf(row->metric, sizeof(row->metric), "%s", cnt_names[c]);
        row->fp = MED_AT(cnt_2m, c);
        row->base = MED_AT(cnt_4k, c);
        row->cmp = row->base > 0 ? row->fp / row->base : NAN;
        if (c != CNT_FP_MINOR) {
            snprintf(row->target, sizeof(row->target), "<= 1/%.0f", TARGET_FAULTS);
            row->met = row->fp * TARGET_FAULTS <= row->base;
        }
    }

    /* 4. Granule sweep. */
    for (unsigned i = 0; i < NSWEEP; i++) {
        report_row_t *row = row_add(rows, &k, 4, "GB/s");

        snprintf(row->metric, sizeof(row->metric), "sweep %s: first touch, %llu MiB (GB/s)",
                 sweep_names[i], (unsigned long long)(cfg->small_size / MIB));
        row->fp = MED_AT(sweep_seq, i);
        row->base = stream;
        row->cmp = row->fp / row->base;
        row = row_add(rows, &k, 4, "us");
        snprintf(row->metric, sizeof(row->metric),
                 "sweep %s: random 4 KiB miss back to back, median (us)", sweep_names[i]);
        row->fp = MED_AT(sweep_med, i);
        row = row_add(rows, &k, 4, "us");
        snprintf(row->metric, sizeof(row->metric),
                 "sweep %s: random 4 KiB miss back to back, p99 (us)", sweep_names[i]);
        row->fp = MED_AT(sweep_p99, i);
        row = row_add(rows, &k, 4, "us");
        snprintf(row->metric, sizeof(row->metric),
                 "sweep %s: random 4 KiB miss, engine idle, median (us)", sweep_names[i]);
        row->fp = MED_AT(sweep_iso_med, i);
        row = row_add(rows, &k, 4, "us");
        snprintf(row->metric, sizeof(row->metric),
                 "sweep %s: random 4 KiB miss, engine idle, p99 (us)", sweep_names[i]);
        row->fp = MED_AT(sweep_iso_p99, i);
        row = row_add(rows, &k, 4, "count");
        snprintf(row->metric, sizeof(row->metric), "sweep %s: random misses timed (each kind)",
                 sweep_names[i]);
        row->fp = MED_AT(sweep_n, i);
    }
    return k;
}

static const char *met_text(int met)
{
    return met < 0 ? "-" : met ? "yes" : "no";
}

/* The rows of @table, in order; NULL past the last. */
static const report_row_t *table_row(const report_row_t *rows, unsigned nrows, unsigned table,
                                     unsigned idx)
{
    for (unsigned i = 0; i < nrows; i++) {
        if (rows[i].table == table && idx-- == 0)
            return &rows[i];
    }
    return NULL;
}

static void print_markdown(const bench_cfg_t *cfg, const report_row_t *rows, unsigned nrows,
                           const char *node_addr)
{
    const report_row_t *row;
    double scale = (double)cfg->big_size / (double)cfg->small_size;

    printf("bench_fault: the fault engine vs raw loopback TCP; median of %u run%s%s; farpoold "
           "at %s\nsequential passes: %s; random accesses: %s\n",
           cfg->runs, cfg->runs == 1 ? "" : "s", cfg->quick ? " (--quick)" : "", node_addr,
           bench_phase_placement(&cfg->cpus, BENCH_PHASE_STREAM),
           bench_phase_placement(&cfg->cpus, BENCH_PHASE_LATENCY));

    printf("\n1. Sequential first touch: one thread reads one word per 4 KiB page, in order, "
           "of a fresh read-only mapping (unless said)\n\n");
    printf("| metric | farpool | loopback one-way stream | ratio | target | met | "
           "stream into new memfd pages | ratio to it |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (unsigned i = 0; (row = table_row(rows, nrows, 1, i)) != NULL; i++)
        printf("| %s | %.2f | %.2f | %.2fx | %s | %s | %.2f | %.2fx |\n", row->metric, row->fp,
               row->base, row->cmp, row->target, met_text(row->met), row->base2, row->cmp2);

    printf("\n2. Random 4 KiB faults at 4 KiB granule (%llu MiB region, each page once, "
           "read-only with its cache memory taken at map unless said), alternating with raw "
           "4 KiB ping-pong\n\n",
           (unsigned long long)(cfg->small_size / MIB));
    printf("| metric | farpool | raw TCP ping-pong | difference | target | met |\n");
    printf("|---|---|---|---|---|---|\n");
    for (unsigned i = 0; (row = table_row(rows, nrows, 2, i)) != NULL; i++) {
        if (isnan(row->base))
            printf("| %s | %.*f | - | - | %s | %s |\n", row->metric,
                   strcmp(row->unit, "count") == 0 ? 0 : 1, row->fp, row->target,
                   met_text(row->met));
        else
            printf("| %s | %.1f | %.1f | %+.1f us | %s | %s |\n", row->metric, row->fp, row->base,
                   row->cmp, row->target, met_text(row->met));
    }

    printf("\n2b. The fault path against its floor: the median random miss (a 4 KiB access, "
           "its block fetched) against the floor of any userfaultfd fault that copies a block "
           "with no network, plus a raw round trip of a block, alternating with it\n\n");
    printf("| granule | farpool (us) | floor (us) | raw round trip (us) | floor + raw (us) | "
           "ratio | target | met |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (unsigned i = 0; (row = table_row(rows, nrows, 5, i)) != NULL; i++)
        printf("| %s | %.1f | %.1f | %.1f | %.1f | %.2fx | %s | %s |\n", row->metric, row->fp,
               row->base2, row->cmp2, row->base, row->cmp, row->target, met_text(row->met));

    printf("\n3. Page faults to load %llu MiB sequentially: 2 MiB granule vs 4 KiB granule "
           "(4 KiB measured on %llu MiB, counts x%.0f)\n\n",
           (unsigned long long)(cfg->big_size / MIB), (unsigned long long)(cfg->small_size / MIB),
           scale);
    printf("| counter | 2 MiB granule | 4 KiB granule | ratio | target | met |\n");
    printf("|---|---|---|---|---|---|\n");
    for (unsigned i = 0; (row = table_row(rows, nrows, 3, i)) != NULL; i++) {
        char ratio[32];

        if (row->fp > 0 && row->base > 0)
            snprintf(ratio, sizeof(ratio), "1/%.0f", row->base / row->fp);
        else
            snprintf(ratio, sizeof(ratio), "-");
        printf("| %s | %.0f | %.0f | %s | %s | %s |\n", row->metric, row->fp, row->base, ratio,
               row->target, met_text(row->met));
    }

    printf("\n4. Granule sweep (%llu MiB regions): sequential first touch, and a 4 KiB access "
           "that misses (a random page of a distinct random block), either right after the "
           "previous one or once the engine is idle\n\n",
           (unsigned long long)(cfg->small_size / MIB));
    printf("| granule | first touch (GB/s) | vs stream | random miss, back to back: median "
           "(us) | p99 (us) | random miss, engine idle: median (us) | p99 (us) | misses | "
           "target | met |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (unsigned g = 0; g < NSWEEP; g++) {
        const report_row_t *v[6];

        for (unsigned j = 0; j < 6; j++)
            v[j] = table_row(rows, nrows, 4, 6 * g + j);
        printf("| %s%s | %.2f | %.2fx | %.1f | %.1f | %.1f | %.1f | %.0f | - | - |\n",
               sweep_names[g], sweep_granules[g] == FARPOOL_GRANULE_DEFAULT ? " (default)" : "",
               v[0]->fp, v[0]->cmp, v[1]->fp, v[2]->fp, v[3]->fp, v[4]->fp, v[5]->fp);
    }
    printf("\nRatios are against the raw one-way loopback stream measured between the passes "
           "(%.2f GB/s; into new memfd pages: %.2f GB/s).\nA random miss fetches the whole "
           "granule; the engine maps the 64 KiB around the fault first.\n",
           table_row(rows, nrows, 1, 0)->base, table_row(rows, nrows, 1, 0)->base2);
}

static void print_number(double v, int decimals)
{
    if (isnan(v) || isinf(v))
        printf("null");
    else
        printf("%.*f", decimals, v);
}

static void print_json(const bench_cfg_t *cfg, const report_row_t *rows, unsigned nrows)
{
    printf("{\"bench\":\"bench_fault\",\"runs\":%u,\"quick\":%s,\"big_size\":%llu,"
           "\"small_size\":%llu,\"placement_latency\":\"%s\",\"placement_streams\":\"%s\","
           "\"rows\":[\n",
           cfg->runs, cfg->quick ? "true" : "false", (unsigned long long)cfg->big_size,
           (unsigned long long)cfg->small_size,
           bench_phase_placement(&cfg->cpus, BENCH_PHASE_LATENCY),
           bench_phase_placement(&cfg->cpus, BENCH_PHASE_STREAM));
    for (unsigned i = 0; i < nrows; i++) {
        const report_row_t *row = &rows[i];

        printf("  {\"table\":%u,\"metric\":\"%s\",\"unit\":\"%s\",\"farpool\":", row->table,
               row->metric, row->unit);
        print_number(row->fp, 3);
        printf(",\"baseline\":");
        print_number(row->base, 3);
        printf(",\"compare\":");
        print_number(row->cmp, 4);
        printf(",\"baseline2\":");
        print_number(row->base2, 3);
        printf(",\"compare2\":");
        print_number(row->cmp2, 4);
        if (row->met < 0)
            printf(",\"target\":null,\"met\":null}");
        else
            printf(",\"target\":\"%s\",\"met\":%s}", row->target, row->met ? "true" : "false");
        printf("%s\n", i + 1 < nrows ? "," : "");
    }
    printf("]}\n");
}

static void print_csv(const report_row_t *rows, unsigned nrows)
{
    printf("table,metric,unit,farpool,baseline,compare,target,met,baseline2,compare2\n");
    for (unsigned i = 0; i < nrows; i++) {
        const report_row_t *row = &rows[i];

        printf("%u,\"%s\",%s,%.3f,", row->table, row->metric, row->unit, row->fp);
        if (!isnan(row->base))
            printf("%.3f", row->base);
        printf(",");
        if (!isnan(row->cmp))
            printf("%.4f", row->cmp);
        printf(",\"%s\",%s,", row->target, met_text(row->met));
        if (!isnan(row->base2))
            printf("%.3f,%.4f", row->base2, row->cmp2);
        else
            printf(",");
        printf("\n");
    }
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out, "Usage: bench_fault [OPTIONS]\n"
                 "Measure mapped regions (the userfaultfd fault engine) against raw loopback TCP\n"
                 "in one run: sequential first touch at 2 MiB, 64 KiB and 4 KiB granules, random\n"
                 "4 KiB faults, page-fault counts, and a granule sweep. Prints tables of ratios;\n"
                 "never fails on a figure.\n\n"
                 "  --quick            small regions and counts, for a smoke run (under 30 s)\n"
                 "  --runs N           repeat everything N times, report medians (default 3)\n"
                 "  --farpoold PATH    the daemon to run (default: the one beside this program,\n"
                 "                     in the directory above it, or in PATH)\n"
                 "  --cpu MODE         where processes run: auto (default): random accesses all\n"
                 "                     on one CPU, sequential passes this program on one CPU and\n"
                 "                     the servers on another; split: always two; same: always\n"
                 "                     one; none: no pinning\n"
                 "  --json, --csv      print JSON or CSV instead of Markdown tables\n"
                 "  -h, --help         show this help\n");
}

static void cfg_defaults(bench_cfg_t *cfg, bool quick)
{
    cfg->quick = quick;
    if (quick) {
        cfg->big_size = 128 * MIB;
        cfg->small_size = 32 * MIB;
        cfg->rand_count = 2000;
        cfg->sweep_count = 100;
        cfg->rand_limit_ns = 2000 * FP_NS_PER_MS;
        cfg->stream_bytes = 128 * MIB;
        cfg->stream_warm = 16 * MIB;
        cfg->stream_limit_ns = 100 * FP_NS_PER_MS;
    } else {
        cfg->big_size = GIB;
        cfg->small_size = 256 * MIB;
        cfg->rand_count = 20000;
        cfg->sweep_count = 1000;
        cfg->rand_limit_ns = 10000 * FP_NS_PER_MS;
        cfg->stream_bytes = 512 * MIB;
        cfg->stream_warm = 32 * MIB;
        cfg->stream_limit_ns = 250 * FP_NS_PER_MS;
    }
}

int main(int argc, char **argv)
{
    enum { OPT_QUICK = 256, OPT_RUNS, OPT_FARPOOLD, OPT_JSON, OPT_CSV, OPT_CPU };
    static const struct option options[] = {
        {"quick", no_argument, NULL, OPT_QUICK},
        {"runs", required_argument, NULL, OPT_RUNS},
        {"farpoold", required_argument, NULL, OPT_FARPOOLD},
        {"json", no_argument, NULL, OPT_JSON},
        {"csv", no_argument, NULL, OPT_CSV},
        {"cpu", required_argument, NULL, OPT_CPU},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static bench_t b;
    static run_result_t runs[MAX_RUNS];
    report_row_t rows[MAX_ROWS];
    unsigned runs_n = 3, nrows;
    bool quick = false;
    out_format_t format = OUT_MARKDOWN;
    bench_cpu_mode_t cpu_mode = BENCH_CPU_AUTO;
    const char *farpoold = NULL; /* --farpoold, else farpoold_found */
    char farpoold_found[PATH_MAX];
    fp_status_t status;
    int opt, rc = 1;

    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_QUICK:
            quick = true;
            break;
        case OPT_RUNS:
            if (bench_parse_uint(optarg, 1, MAX_RUNS, &runs_n) != 0) {
                fprintf(stderr, "bench_fault: invalid --runs '%s' (1-%d)\n", optarg, MAX_RUNS);
                return 2;
            }
            break;
        case OPT_FARPOOLD:
            farpoold = optarg;
            break;
        case OPT_JSON:
            format = OUT_JSON;
            break;
        case OPT_CSV:
            format = OUT_CSV;
            break;
        case OPT_CPU:
            if (bench_cpu_mode_parse(optarg, &cpu_mode) != 0) {
                fprintf(stderr, "bench_fault: invalid --cpu '%s' (auto, split, same or none)\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bench_fault: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (farpoold == NULL) {
        if (!bench_farpoold_find(farpoold_found, sizeof(farpoold_found))) {
            fprintf(stderr,
                    "%s: farpoold not found beside this program, in the directory above "
                    "it or in PATH (use --farpoold PATH)\n",
                    "bench_fault");
            return 1;
        }
        farpoold = farpoold_found;
    }
    cfg_defaults(&b.cfg, quick);
    b.cfg.runs = runs_n;
    b.cfg.format = format;
    b.cfg.farpoold = farpoold;
    b.rng = fp_time_ns() | 1;
    bench_init("bench_fault");

    /* Children first, before this process holds large buffers. */
    bench_cpus_find(cpu_mode, &b.cfg.cpus);
    status = bench_raw_start(&b.raw_port);
    if (status != FP_OK)
        goto out;
    status = bench_node_start(b.cfg.farpoold, NODE_CAP, b.node_addr, sizeof(b.node_addr));
    if (status != FP_OK)
        goto out;

    b.stream_buf = bench_buf_alloc(STREAM_SLOT * BENCH_RAW_STREAM_IO);
    b.fp_samples = malloc(b.cfg.rand_count * sizeof(*b.fp_samples));
    b.raw_samples = malloc(b.cfg.rand_count * sizeof(*b.raw_samples));
    b.raw_buf = bench_buf_alloc(2 * MIB);
    b.pages = malloc(b.cfg.small_size / PAGE * sizeof(*b.pages));
    if (b.stream_buf == NULL || b.fp_samples == NULL || b.raw_samples == NULL || b.pages == NULL ||
        b.raw_buf == NULL) {
        fprintf(stderr, "bench_fault: out of memory\n");
        goto out;
    }
    memset(b.stream_buf, 0, STREAM_SLOT * BENCH_RAW_STREAM_IO);

    status = context_new(&b, GIB, false, &b.ctl);
    if (status != FP_OK)
        goto out;
    status = regions_setup(&b);
    if (status != FP_OK)
        goto out;

    for (unsigned i = 0; i < b.cfg.runs; i++) {
        status = run_once(&b, &runs[i]);
        if (status != FP_OK)
            goto out;
        print_run_line(i, b.cfg.runs, &runs[i]);
    }
    nrows = build_rows(&b.cfg, runs, b.cfg.runs, rows);
    if (b.cfg.format == OUT_JSON)
        print_json(&b.cfg, rows, nrows);
    else if (b.cfg.format == OUT_CSV)
        print_csv(rows, nrows);
    else
        print_markdown(&b.cfg, rows, nrows, b.node_addr);
    fflush(stdout);
    rc = 0;

out:
    if (b.ctl != NULL)
        regions_delete(&b);
    farpool_context_destroy(b.ctl);
    free(b.stream_buf);
    free(b.fp_samples);
    free(b.raw_samples);
    free(b.raw_buf);
    free(b.pages);
    bench_cleanup();
    return rc;
}
