/* SPDX-License-Identifier: MIT */
/*
 * bench_prefetch: what prefetching buys, against baselines of the same run.
 *
 * 1. Sequential read of a region (1 GiB by default) at 2 MiB granule with the
 *    automatic prefetcher, against the raw loopback one-way TCP stream.
 *    Target: >= 0.8x. As in the stream, the client side (the application and
 *    its region's engine thread) runs on one CPU and the node on the other;
 *    -F lets the engine run on either.
 * 2. "Expert swap": two experts of 512 MiB in one region. Loading an expert
 *    is touching each of its pages once (what makes its bytes usable); using
 *    it is a pass over all its bytes. Cold: B is loaded with nothing cached and
 *    no hint. Hinted: farpool_prefetch(B) is called when work on expert A
 *    starts, A is used, then B is loaded. A hint can only hide a load behind
 *    that much work, and while A is used the fetch has one CPU of the two
 *    (the cold load has both), so A is used (passes over it) for twice as
 *    long as B's cold load took in the same run; further rows show A used for
 *    as long as the cold load, and for a single pass. Reported: the time the
 *    application spends loading B. Target: hinted <= 0.1x cold.
 * Mappings are read-only (the page-moving cache) with their cache memory taken
 * at map time (FARPOOL_CONTEXT_PARAM_PREFAULT), before any clock starts.
 * Medians of --runs N (default 3); also each run's own ratios (its stream and
 * its scan are measured back to back), which on a noisy machine say more than
 * a ratio of medians. Also how many CPUs the stream and the scan kept busy
 * (/proc/stat) and how fast the application's pass is over resident bytes:
 * what the scan's own reading costs. Not a test: it prints figures and never
 * fails on a time.
 */
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <farpool/farpool.h>

#include "bench_common.h"

#define STREAM_SLOT 8

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double tv_s(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

/* One pass over @len bytes, a word per 64 bytes: touches every cache line's page. */
static uint64_t pass(const uint64_t *p, uint64_t len)
{
    uint64_t sum = 0;

    for (uint64_t i = 0; i < len / 8; i += 8)
        sum += p[i];
    return sum;
}

static farpool_context_t *context(const char *addr, uint64_t cache)
{
    const char *nodes[] = {addr};
    farpool_context_params_t p;
    farpool_context_t *ctx = NULL;

    memset(&p, 0, sizeof(p));
    /* The cache's memory is taken when a region is mapped, before any clock
     * starts: what a serving process's cache looks like after its first load. */
    p.field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_CACHE_BYTES |
                   FARPOOL_CONTEXT_PARAM_PREFAULT;
    p.nodes = nodes;
    p.nnodes = 1;
    p.cache_bytes = cache;
    p.prefault = 1;
    if (farpool_context_create(&p, &ctx) != FP_OK) {
        fprintf(stderr, "bench_prefetch: cannot connect to %s\n", addr);
        exit(1);
    }
    return ctx;
}

/*
 * Open and map region @name. The engine's thread takes the CPUs of the thread
 * that maps the region. With @engine_free it may run on any: the application's
 * thread stays where it was placed, but the engine is a second thread that a
 * hint means to run beside it, not to steal its CPU. Without, it shares the
 * application's CPU, and the node has the other: the client side and the
 * server side on a CPU each, as in the stream it is measured against (where
 * the node is another machine, it takes no CPU of the client's).
 */
static void map_region(farpool_context_t *ctx, const char *name, bool engine_free,
                       farpool_region_t **r, void **a)
{
    cpu_set_t mine, all;

    sched_getaffinity(0, sizeof(mine), &mine);
    CPU_ZERO(&all);
    for (int c = 0; c < CPU_SETSIZE; c++)
        CPU_SET(c, &all);
    if (engine_free)
        sched_setaffinity(0, sizeof(all), &all);
    if (farpool_region_open(ctx, name, FARPOOL_REGION_READONLY, r) != FP_OK ||
        farpool_map(*r, a) != FP_OK)
        exit(1);
    sched_setaffinity(0, sizeof(mine), &mine);
}

/*
 * Read the whole region sequentially through a fresh mapping; GB/s. Also the
 * CPUs kept busy meanwhile (*@cpus_p) and the speed of a second pass, over
 * the same bytes now resident (*@resident_p, GB/s).
 */
static double seq_read(farpool_context_t *ctx, const char *name, uint64_t size, bool engine_free,
                       volatile uint64_t *sink, double *cpus_p, double *resident_p)
{
    bench_cpu_time_t c0, c1;
    struct rusage u0, u1;
    farpool_region_t *r;
    void *a;
    double t, t2;

    bench_warm_memory(size + 64 * MIB);
    map_region(ctx, name, engine_free, &r, &a);
    bench_cpu_time(&c0);
    getrusage(RUSAGE_THREAD, &u0);
    t = now_s();
    *sink += pass(a, size);
    t = now_s() - t;
    getrusage(RUSAGE_THREAD, &u1);
    bench_cpu_time(&c1);
    *cpus_p = bench_cpu_busy(&c0, &c1);
    {
        farpool_stats_t st;
        farpool_region_stats(r, &st, sizeof(st));
        fprintf(
            stderr,
            "  seq: %.3f s, the application's thread on a CPU %.3f s (user %.3f s); faults "
            "%" PRIu64 ", minor %" PRIu64 ", prefetch issued %" PRIu64 ", used %" PRIu64
            ", late %" PRIu64 "; fetch p50 %.2f ms, p99 %.2f ms\n",
            t, tv_s(&u1.ru_utime) - tv_s(&u0.ru_utime) + tv_s(&u1.ru_stime) - tv_s(&u0.ru_stime),
            tv_s(&u1.ru_utime) - tv_s(&u0.ru_utime), st.faults, st.minor_faults, st.prefetch_issued,
            st.prefetch_used, st.prefetch_late, st.fetch_p50_ns / 1e6, st.fetch_p99_ns / 1e6);
    }
    t2 = now_s();
    *sink += pass(a, size);
    *resident_p = (double)size / (now_s() - t2) / 1e9;
    farpool_region_close(r);
    return (double)size / t / 1e9;
}

/* Load: touch one word of each 4 KiB page. */
static uint64_t load(const uint8_t *p, uint64_t len)
{
    uint64_t sum = 0;

    for (uint64_t off = 0; off < len; off += 4096)
        sum += *(const volatile uint64_t *)(p + off);
    return sum;
}

/* A thread that waits for a hint to complete: when it did, from the hint. */
typedef struct hint_watch {
    farpool_region_t *r;
    double start, done;
} hint_watch_t;

static void *hint_watch_thread(void *arg)
{
    hint_watch_t *w = arg;

    farpool_prefetch_wait(w->r);
    w->done = now_s() - w->start;
    return NULL;
}

/*
 * Seconds the application spends loading expert B: cold (@use_s < 0: no
 * hint), or hinted when work on A starts, A then being used for at least
 * @use_s seconds (at least one pass, at most 100). B is then used once.
 * When hinted, *@used_p is how long A was used after the hint and *@in_p
 * when B was all in (both from the hint; -1 if not known).
 */
static double swap(farpool_context_t *ctx, const char *name, uint64_t expert, double use_s,
                   volatile uint64_t *sink, double *used_p, double *in_p)
{
    farpool_region_t *r;
    uint8_t *a;
    double t, used = -1;
    hint_watch_t watch = {NULL, 0, -1};
    pthread_t watcher;
    bool watching = false;

    /* Both ways start from resident guest memory, as a serving process's
     * recycled memory would be (bench_common.h, bench_warm_memory()). */
    bench_warm_memory(2 * expert + 64 * MIB);
    map_region(ctx, name, true, &r, (void **)&a);
    *sink += pass((uint64_t *)a, expert); /* expert A loaded and used once */
    if (use_s >= 0) {
        /* The router picked B: hint it, then go on using A. */
        double until = now_s() + use_s;
        farpool_prefetch(r, a + expert, expert);
        /* When did B arrive, against how long A was used? Said below. */
        watch = (hint_watch_t){r, now_s(), -1};
        watching = pthread_create(&watcher, NULL, hint_watch_thread, &watch) == 0;
        for (int n = 0; n < 100 && (n == 0 || now_s() < until); n++)
            *sink += pass((uint64_t *)a, expert);
    }
    t = now_s();
    if (watching)
        used = t - watch.start;
    *sink += load(a + expert, expert);
    t = now_s() - t;
    if (watching)
        pthread_join(watcher, NULL);
    {
        farpool_stats_t st;
        farpool_region_stats(r, &st, sizeof(st));
        fprintf(stderr,
                "  %s: load %.4f s; faults %" PRIu64 ", minor %" PRIu64 ", fetched %" PRIu64
                ", prefetch issued %" PRIu64 " (hinted %" PRIu64 "), late %" PRIu64
                ", evictions %" PRIu64 "\n",
                use_s < 0 ? "cold" : "hinted", t, st.faults, st.minor_faults, st.blocks_fetched,
                st.prefetch_issued, st.prefetch_hinted, st.prefetch_late, st.evictions);
        if (watching)
            fprintf(stderr, "    A used %.3f s after the hint; B all in at %.3f s\n", used,
                    watch.done);
    }
    if (used_p != NULL)
        *used_p = used;
    if (in_p != NULL)
        *in_p = watch.done; /* -1 unless a hint was watched */
    *sink += pass((uint64_t *)(a + expert), expert);
    farpool_region_close(r);
    return t;
}

int main(int argc, char **argv)
{
    unsigned runs = 3;
    bool seq_engine_free = false;
    uint64_t size = GIB, expert = 512 * MIB;
    bench_cpus_t cpus;
    char addr[96], farpoold[PATH_MAX];
    uint16_t port;
    uint8_t *buf;
    volatile uint64_t sink = 0;
    double *stream, *seq, *cold, *hint, *hint1, *short_hint, *hint_used, *hint_in;
    double *stream_cpus, *seq_cpus, *resident;
    unsigned ncpu = 0;
    farpool_context_t *ctx;
    farpool_region_t *r;
    void *m;
    int opt;

    while ((opt = getopt(argc, argv, "qr:Fh")) != -1) {
        if (opt == 'q') {
            size = 256 * MIB;
            expert = 128 * MIB;
            runs = 1;
        } else if (opt == 'r' && bench_parse_uint(optarg, 1, 20, &runs) == 0) {
        } else if (opt == 'F') {
            seq_engine_free = true;
        } else {
            fprintf(stderr, "usage: bench_prefetch [-q (quick)] [-r RUNS] [-F (the sequential "
                            "read's engine free to run on either CPU)]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    bench_init("bench_prefetch");
    if (!bench_farpoold_find(farpoold, sizeof(farpoold))) {
        fprintf(stderr, "bench_prefetch: farpoold not found beside this program, in the directory "
                        "above it or in PATH\n");
        return 1;
    }
    bench_cpus_find(BENCH_CPU_AUTO, &cpus);
    if (bench_raw_start(&port) != FP_OK ||
        bench_node_start(farpoold, "3G", addr, sizeof(addr)) != FP_OK) {
        bench_cleanup();
        return 1;
    }
    bench_cpus_place(&cpus, BENCH_PHASE_STREAM);
    buf = bench_buf_alloc(STREAM_SLOT * BENCH_RAW_STREAM_IO);
    stream = calloc(runs, sizeof(double));
    seq = calloc(runs, sizeof(double));
    cold = calloc(runs, sizeof(double));
    hint = calloc(runs, sizeof(double));
    short_hint = calloc(runs, sizeof(double));
    hint1 = calloc(runs, sizeof(double));
    hint_used = calloc(runs, sizeof(double));
    hint_in = calloc(runs, sizeof(double));
    stream_cpus = calloc(runs, sizeof(double));
    seq_cpus = calloc(runs, sizeof(double));
    resident = calloc(runs, sizeof(double));

    /* The data: a region for the scan and one holding two experts, written once. */
    ctx = context(addr, size + 2 * expert);
    farpool_region_delete(ctx, "bp-seq");
    farpool_region_delete(ctx, "bp-experts");
    if (farpool_region_create(ctx, "bp-seq", size, 2 * MIB, &r) != FP_OK || farpool_map(r, &m))
        return 1;
    memset(m, 0x5a, size);
    farpool_region_close(r);
    if (farpool_region_create(ctx, "bp-experts", 2 * expert, 2 * MIB, &r) != FP_OK ||
        farpool_map(r, &m))
        return 1;
    memset(m, 0xa5, 2 * expert);
    farpool_region_close(r);

    for (unsigned i = 0; i < runs; i++) {
        bench_acc_t acc = {0, 0};
        bench_cpu_time_t c0, c1;
        bench_cpu_time(&c0);
        bench_raw_oneway(port, STREAM_SLOT, 64 * MIB, size, 10ull * 1000000000, buf, &acc);
        bench_cpu_time(&c1);
        stream[i] = bench_acc_gbs(&acc);
        stream_cpus[i] = bench_cpu_busy(&c0, &c1);
        ncpu = c1.ncpu;
        seq[i] = seq_read(ctx, "bp-seq", size, seq_engine_free, &sink, &seq_cpus[i], &resident[i]);
        fprintf(stderr, "run %u: CPUs busy: stream %.2f, seq %.2f; resident pass %.2f GB/s\n",
                i + 1, stream_cpus[i], seq_cpus[i], resident[i]);
        cold[i] = swap(ctx, "bp-experts", expert, -1, &sink, NULL, NULL);
        hint[i] = swap(ctx, "bp-experts", expert, 2 * cold[i], &sink, &hint_used[i], &hint_in[i]);
        hint1[i] = swap(ctx, "bp-experts", expert, cold[i], &sink, NULL, NULL);
        short_hint[i] = swap(ctx, "bp-experts", expert, 0, &sink, NULL, NULL);
        fprintf(stderr,
                "run %u: stream %.2f GB/s, seq %.2f GB/s, load B cold %.4f s, hinted %.4f s "
                "(A used 1x cold: %.4f s, one pass: %.4f s)\n",
                i + 1, stream[i], seq[i], cold[i], hint[i], hint1[i], short_hint[i]);
    }
    {
        /* The same runs paired: each run's ratio, before the medians sort the arrays. */
        double *seq_ratio = calloc(runs, sizeof(double)),
               *swap_ratio = calloc(runs, sizeof(double));
        unsigned covered = 0;     /* runs where A's use outlasted B's fetch... */
        double covered_worst = 0; /* ...and their highest swap ratio */
        for (unsigned i = 0; i < runs; i++) {
            seq_ratio[i] = seq[i] / stream[i];
            swap_ratio[i] = hint[i] / cold[i];
            if (hint_in[i] >= 0 && hint_used[i] >= hint_in[i]) {
                covered++;
                covered_worst = swap_ratio[i] > covered_worst ? swap_ratio[i] : covered_worst;
            }
        }
        double s = bench_median(stream, runs), q = bench_median(seq, runs);
        double c = bench_median(cold, runs), h = bench_median(hint, runs);
        double sh = bench_median(short_hint, runs), h1 = bench_median(hint1, runs);
        printf("\n| metric | farpool | baseline | ratio | target | met "
               "|\n|---|---|---|---|---|---|\n");
        printf("| sequential read, %" PRIu64 " MiB at 2 MiB granule, prefetching (GB/s) | %.2f | "
               "%.2f (loopback one-way stream) | %.2fx | >= 0.8x | %s |\n",
               (uint64_t)(size / MIB), q, s, q / s, q / s >= 0.8 ? "yes" : "no");
        printf("| expert swap: loading a %" PRIu64 " MiB expert (s) | %.4f hinted | %.4f cold, "
               "no hint | %.3fx | <= 0.1x | %s |\n",
               (uint64_t)(expert / MIB), h, c, h / c, h / c <= 0.1 ? "yes" : "no");
        printf("| same, A used as long as B's cold load (s) | %.4f hinted | %.4f cold, no hint | "
               "%.3fx | - | - |\n",
               h1, c, h1 / c);
        printf("| same, A used for one pass only (s) | %.4f hinted | %.4f cold, no hint | %.3fx | "
               "- | - |\n",
               sh, c, sh / c);
        printf(
            "\nMedians of %u runs. Sequential read: the engine %s. Loading = touching each 4 KiB "
            "page once. Hinted: "
            "farpool_prefetch(B) when work on A starts, A used (passes over it) for twice as long "
            "as B's cold load took, then B loaded. Every pass starts from resident guest memory "
            "(bench_warm_memory(): this VM's host takes back memory left free for seconds; "
            "bench_fault shows the difference).\n",
            runs,
            seq_engine_free ? "free to run on either CPU (-F)"
                            : "on the application's CPU, the node on the other");
        printf("Each run's own ratios, in run order: sequential read");
        for (unsigned i = 0; i < runs; i++)
            printf(" %.2fx", seq_ratio[i]);
        printf("; expert swap");
        for (unsigned i = 0; i < runs; i++)
            printf(" %.3fx", swap_ratio[i]);
        printf(". Their medians: %.2fx and %.3fx.\n", bench_median(seq_ratio, runs),
               bench_median(swap_ratio, runs));
        printf("Expert swap, hinted: B all in %.3f s after the hint, A used %.3f s (medians); "
               "A's use outlasted B's fetch in %u of %u runs",
               bench_median(hint_in, runs), bench_median(hint_used, runs), covered, runs);
        if (covered > 0)
            printf(", whose ratios were at most %.3fx", covered_worst);
        printf(".\n");
        if (ncpu > 0)
            printf(
                "CPUs busy, of the machine's %u (medians): %.2f during the stream, %.2f during the "
                "sequential read; a pass over the same bytes once resident: %.1f GB/s.\n",
                ncpu, bench_median(stream_cpus, runs), bench_median(seq_cpus, runs),
                bench_median(resident, runs));
        free(seq_ratio);
        free(swap_ratio);
    }
    farpool_region_delete(ctx, "bp-seq");
    farpool_region_delete(ctx, "bp-experts");
    farpool_context_destroy(ctx);
    bench_cleanup();
    free(buf);
    free(stream);
    free(seq);
    free(cold);
    free(hint);
    free(short_hint);
    free(hint1);
    free(hint_used);
    free(hint_in);
    free(stream_cpus);
    free(seq_cpus);
    free(resident);
    return sink == 42 ? 3 : 0;
}
