/* SPDX-License-Identifier: MIT */
/*
 * bench_prefetch: what prefetching buys, against baselines of the same run.
 *
 * 1. Sequential read of a region (1 GiB by default) at 2 MiB granule with the
 *    automatic prefetcher, against the raw loopback one-way TCP stream.
 *    Target: >= 0.8x.
 * 2. "Expert swap": two experts of 512 MiB in one region. Cold: expert B is
 *    read with nothing cached and no hint. Hinted: farpool_prefetch(B) is called
 *    when work on expert A starts, A is used (one pass over its bytes), then B
 *    is read. Reported: the time the application spends reading B, both ways.
 *    Target: hinted <= 0.1x cold.
 * Medians of --runs N (default 3). Not a test: it prints figures and never fails
 * on a time.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    p.field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_CACHE_BYTES;
    p.nodes = nodes;
    p.nnodes = 1;
    p.cache_bytes = cache;
    if (farpool_context_create(&p, &ctx) != FP_OK) {
        fprintf(stderr, "bench_prefetch: cannot connect to %s\n", addr);
        exit(1);
    }
    return ctx;
}

/* Read the whole region sequentially through a fresh mapping; GB/s. */
static double seq_read(farpool_context_t *ctx, const char *name, uint64_t size,
                       volatile uint64_t *sink)
{
    farpool_region_t *r;
    void *a;
    double t;

    if (farpool_region_open(ctx, name, FARPOOL_REGION_READONLY, &r) != FP_OK ||
        farpool_map(r, &a) != FP_OK)
        exit(1);
    t = now_s();
    *sink += pass(a, size);
    t = now_s() - t;
    farpool_region_close(r);
    return (double)size / t / 1e9;
}

/* Seconds the application spends reading expert B, cold or hinted while A is used. */
static double swap(farpool_context_t *ctx, const char *name, uint64_t expert, bool hinted,
                   volatile uint64_t *sink)
{
    farpool_region_t *r;
    uint8_t *a;
    double t;

    if (farpool_region_open(ctx, name, FARPOOL_REGION_READONLY, &r) != FP_OK ||
        farpool_map(r, (void **)&a) != FP_OK)
        exit(1);
    *sink += pass((uint64_t *)a, expert); /* expert A loaded and used once */
    if (hinted) {
        /* The router picked B: hint it, then go on using A. */
        farpool_prefetch(r, a + expert, expert);
        *sink += pass((uint64_t *)a, expert);
    }
    t = now_s();
    *sink += pass((uint64_t *)(a + expert), expert);
    t = now_s() - t;
    farpool_region_close(r);
    return t;
}

int main(int argc, char **argv)
{
    unsigned runs = 3;
    uint64_t size = GIB, expert = 512 * MIB;
    bench_cpus_t cpus;
    char addr[96];
    uint16_t port;
    uint8_t *buf;
    volatile uint64_t sink = 0;
    double *stream, *seq, *cold, *hint;
    farpool_context_t *ctx;
    farpool_region_t *r;
    void *m;
    int opt;

    while ((opt = getopt(argc, argv, "qr:h")) != -1) {
        if (opt == 'q') {
            size = 256 * MIB;
            expert = 128 * MIB;
            runs = 1;
        } else if (opt == 'r' && bench_parse_uint(optarg, 1, 20, &runs) == 0) {
        } else {
            fprintf(stderr, "usage: bench_prefetch [-q (quick)] [-r RUNS]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    bench_init("bench_prefetch");
    bench_cpus_find(BENCH_CPU_AUTO, &cpus);
    if (bench_raw_start(&port) != FP_OK ||
        bench_node_start(FP_BENCH_FARPOOLD, "3G", addr, sizeof(addr)) != FP_OK) {
        bench_cleanup();
        return 1;
    }
    bench_cpus_place(&cpus, BENCH_PHASE_STREAM);
    buf = malloc(STREAM_SLOT * BENCH_RAW_STREAM_IO);
    stream = calloc(runs, sizeof(double));
    seq = calloc(runs, sizeof(double));
    cold = calloc(runs, sizeof(double));
    hint = calloc(runs, sizeof(double));

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
        bench_raw_oneway(port, STREAM_SLOT, 64 * MIB, size, 10ull * 1000000000, buf, &acc);
        stream[i] = bench_acc_gbs(&acc);
        seq[i] = seq_read(ctx, "bp-seq", size, &sink);
        cold[i] = swap(ctx, "bp-experts", expert, false, &sink);
        hint[i] = swap(ctx, "bp-experts", expert, true, &sink);
        fprintf(stderr, "run %u: stream %.2f GB/s, seq %.2f GB/s, B cold %.3f s, hinted %.3f s\n",
                i + 1, stream[i], seq[i], cold[i], hint[i]);
    }
    {
        double s = bench_median(stream, runs), q = bench_median(seq, runs);
        double c = bench_median(cold, runs), h = bench_median(hint, runs);
        printf("\n| metric | farpool | baseline | ratio | target | met "
               "|\n|---|---|---|---|---|---|\n");
        printf("| sequential read, %" PRIu64 " MiB at 2 MiB granule, prefetching (GB/s) | %.2f | "
               "%.2f (loopback one-way stream) | %.2fx | >= 0.8x | %s |\n",
               (uint64_t)(size / MIB), q, s, q / s, q / s >= 0.8 ? "yes" : "no");
        printf("| expert swap: reading a %" PRIu64 " MiB expert (s) | %.3f hinted | %.3f cold, "
               "no hint | %.2fx | <= 0.1x | %s |\n",
               (uint64_t)(expert / MIB), h, c, h / c, h / c <= 0.1 ? "yes" : "no");
        printf("\nMedians of %u runs; hinted: farpool_prefetch(B) when work on A starts, one "
               "pass over A, then B is read.\n",
               runs);
    }
    farpool_region_delete(ctx, "bp-seq");
    farpool_region_delete(ctx, "bp-experts");
    farpool_context_destroy(ctx);
    bench_cleanup();
    free(buf);
    return sink == 42 ? 3 : 0;
}
