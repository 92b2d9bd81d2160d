/* SPDX-License-Identifier: MIT */
/*
 * bench_sync: writing dirty blocks back, against the raw loopback write
 * stream of the same run.
 *
 * A writable region (512 MiB by default) is mapped with a cache that holds
 * all of it, and a byte of every 4 KiB page is written: every block is dirty.
 * farpool_sync() is timed: the node then has every byte; then every block is
 * dirtied again and a second sync timed. Before the runs an untimed warm-up
 * writes as many bytes through the node API, so that the node's memory is
 * resident (memory new to a process costs its page faults, whoever writes it,
 * and the baseline's sink writes into a buffer it has touched). Its rate is set
 * against the raw one-way stream from this process to a sink server on
 * loopback (what writing the bytes to a node costs at best), measured right
 * before it in the same run, and against farpool_slab_write() of as many
 * bytes (the node API's pipelined writes). At 2 MiB granule; also 64 KiB.
 * Target: sync at 2 MiB granule >= 0.8x the raw stream. As in the stream,
 * this process and its region's fault thread run on one CPU and the servers
 * on the other. Medians of --runs N (default 3). Not a test: it prints
 * figures and never fails on a time.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <farpool/farpool.h>

#include "bench_common.h"
#include "common/parse.h"
#include "common/time.h"

#define MAX_RUNS 32

typedef struct cfg {
    unsigned runs;
    uint64_t size;
    char farpoold[4096];
    bench_cpu_mode_t cpu;
} cfg_t;

typedef struct run {
    double raw, api;          /* GB/s */
    double sync_2m, first_2m; /* ...a second sync of every block, the first one */
    double sync_64k, first_64k;
    uint64_t writebacks_2m;
} run_t;

static void usage(FILE *out)
{
    fprintf(out, "Usage: bench_sync [OPTIONS]\n"
                 "Time farpool_sync() of a region whose every block is dirty against the raw\n"
                 "loopback write stream of the same run; prints a table of ratios, never fails\n"
                 "on a figure.\n\n"
                 "  --size SIZE        bytes written back per sync (default 512M)\n"
                 "  --runs N           repeat N times, report medians (default 3)\n"
                 "  --farpoold PATH    the daemon to run (default: beside this program, or PATH)\n"
                 "  --cpu MODE         auto (default, the same as split), split, same or none\n"
                 "  -h, --help         show this help\n");
}

static int parse_args(int argc, char **argv, cfg_t *cfg)
{
    static const struct option options[] = {
        {"size", required_argument, NULL, 's'},     {"runs", required_argument, NULL, 'r'},
        {"farpoold", required_argument, NULL, 'f'}, {"cpu", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int opt;

    cfg->runs = 3;
    cfg->size = 512 * MIB;
    cfg->farpoold[0] = '\0';
    cfg->cpu = BENCH_CPU_AUTO;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 's':
            if (fp_parse_size(optarg, &cfg->size) != FP_OK || cfg->size < 64 * MIB ||
                cfg->size > 4 * GIB || cfg->size % (2 * MIB) != 0) {
                fprintf(stderr, "bench_sync: --size must be 64M to 4G, a multiple of 2M\n");
                return 2;
            }
            break;
        case 'r':
            if (bench_parse_uint(optarg, 1, MAX_RUNS, &cfg->runs) != 0) {
                fprintf(stderr, "bench_sync: --runs must be 1 to %d\n", MAX_RUNS);
                return 2;
            }
            break;
        case 'f':
            snprintf(cfg->farpoold, sizeof(cfg->farpoold), "%s", optarg);
            break;
        case 'c':
            if (bench_cpu_mode_parse(optarg, &cfg->cpu) != 0) {
                fprintf(stderr, "bench_sync: --cpu is auto, split, same or none\n");
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bench_sync: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    return 0;
}

/* farpool_slab_write() of @size bytes into slabs of the node: GB/s, or 0 on failure. */
static double api_write(const char *addr, uint64_t size, const uint8_t *src)
{
    farpool_node_t *node;
    uint64_t slabs[64], slab_size = 0, t0, ns;
    unsigned n = 0;
    fp_status_t status;
    double gbs = 0;

    if (farpool_node_connect(addr, NULL, &node) != FP_OK)
        return 0;
    status = farpool_slab_alloc(node, &slabs[n++], &slab_size);
    while (status == FP_OK && (uint64_t)n * slab_size < size && n < 64)
        status = farpool_slab_alloc(node, &slabs[n++], NULL);
    if (status == FP_OK) {
        t0 = fp_time_ns();
        for (uint64_t done = 0; status == FP_OK && done < size; done += slab_size)
            status = farpool_slab_write(node, slabs[done / slab_size], 0, src + done % (64 * MIB),
                                        size - done < slab_size ? size - done : slab_size);
        ns = fp_time_ns() - t0;
        if (status == FP_OK)
            gbs = (double)size / (double)ns;
    }
    if (status != FP_OK)
        fprintf(stderr, "bench_sync: farpool_slab_write: %s\n", fp_status_string(status));
    for (unsigned i = 0; i < n; i++)
        (void)farpool_slab_free(node, slabs[i]);
    farpool_node_close(node);
    return gbs;
}

/* Write a byte of every page of @mem: every block dirty. */
static void dirty_all(uint8_t *mem, uint64_t size, uint8_t v)
{
    for (uint64_t off = 0; off < size; off += 4096)
        mem[off] = (uint8_t)(v + (off >> 12));
}

/*
 * A region of @size at @granule, every block dirtied, then synced: the first
 * sync's GB/s in *@first_p, and the rate of a second sync of every block,
 * dirtied again, returned.
 */
static double sync_rate(const char *addr, uint64_t size, uint32_t granule, double *first_p,
                        uint64_t *wb_p)
{
    const char *nodes[] = {addr};
    farpool_context_params_t p;
    farpool_context_t *ctx;
    farpool_region_t *region;
    farpool_stats_t st;
    uint8_t *mem;
    uint64_t t0, ns;
    fp_status_t status;
    double gbs = 0;

    memset(&p, 0, sizeof(p));
    p.field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_CACHE_BYTES |
                   FARPOOL_CONTEXT_PARAM_READAHEAD;
    p.nodes = nodes;
    p.nnodes = 1;
    p.cache_bytes = size + 64 * MIB; /* all of it fits: nothing is written back before the sync */
    p.readahead = 1;
    status = farpool_context_create(&p, &ctx);
    if (status != FP_OK)
        goto out;
    status = farpool_region_create(ctx, "bench-sync", size, granule, &region);
    if (status == FP_OK)
        status = farpool_map(region, (void **)&mem);
    if (status == FP_OK) {
        dirty_all(mem, size, 1);
        t0 = fp_time_ns();
        status = farpool_sync(region);
        ns = fp_time_ns() - t0;
        *first_p = status == FP_OK ? (double)size / (double)ns : 0;
    }
    if (status == FP_OK) {
        dirty_all(mem, size, 2);
        t0 = fp_time_ns();
        status = farpool_sync(region);
        ns = fp_time_ns() - t0;
        if (status == FP_OK && farpool_region_stats(region, &st, sizeof(st)) == FP_OK) {
            gbs = (double)size / (double)ns;
            *wb_p = st.writebacks;
        }
    }
    farpool_region_close(region);
    (void)farpool_region_delete(ctx, "bench-sync");
    farpool_context_destroy(ctx);
out:
    if (status != FP_OK)
        fprintf(stderr, "bench_sync: %u KiB granule: %s\n", granule >> 10,
                fp_status_string(status));
    return gbs;
}

static double median_of(const run_t *runs, unsigned n, size_t field)
{
    double v[MAX_RUNS];

    for (unsigned i = 0; i < n; i++)
        v[i] = *(const double *)(const void *)((const char *)&runs[i] + field);
    return bench_median(v, n);
}

int main(int argc, char **argv)
{
    char addr[64], size_text[32];
    bench_cpus_t cpus;
    run_t runs[MAX_RUNS];
    uint8_t *src;
    uint16_t port;
    cfg_t cfg;
    double raw, api, s2, s64, f2, f64;
    int rc;

    rc = parse_args(argc, argv, &cfg);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    bench_init("bench_sync");
    if (cfg.farpoold[0] == '\0' && !bench_farpoold_find(cfg.farpoold, sizeof(cfg.farpoold))) {
        fprintf(stderr, "bench_sync: farpoold not found; give --farpoold PATH\n");
        return 1;
    }
    bench_cpus_find(cfg.cpu, &cpus);
    src = bench_buf_alloc(64 * MIB);
    if (src == NULL || bench_raw_start(&port) != FP_OK ||
        bench_node_start(cfg.farpoold, "3G", addr, sizeof(addr)) != FP_OK) {
        bench_cleanup();
        return 1;
    }
    memset(src, 0x5a, 64 * MIB);
    bench_cpus_place(&cpus, BENCH_PHASE_STREAM);
    /* Warm-up, untimed: the node's memory made resident (a first write into
     * memory new to the node pays its page faults, in any case), the raw
     * path's buffers too. */
    {
        bench_acc_t warm = {0, 0};

        if (api_write(addr, cfg.size, src) == 0 ||
            bench_raw_sink(port, cfg.size, src, 64 * MIB, &warm) != FP_OK) {
            bench_cleanup();
            return 1;
        }
    }
    for (unsigned r = 0; r < cfg.runs; r++) {
        bench_acc_t acc = {0, 0};

        if (bench_raw_sink(port, cfg.size, src, 64 * MIB, &acc) != FP_OK) {
            bench_cleanup();
            return 1;
        }
        runs[r].raw = bench_acc_gbs(&acc);
        runs[r].api = api_write(addr, cfg.size, src);
        runs[r].sync_2m =
            sync_rate(addr, cfg.size, 2 << 20, &runs[r].first_2m, &runs[r].writebacks_2m);
        runs[r].sync_64k = sync_rate(addr, cfg.size, 64 << 10, &runs[r].first_64k, &(uint64_t){0});
        fprintf(stderr,
                "run %u/%u: raw write stream %.2f GB/s, farpool_slab_write %.2f, sync 2 MiB "
                "%.2f (first %.2f; %" PRIu64 " blocks written), 64 KiB %.2f (first %.2f)\n",
                r + 1, cfg.runs, runs[r].raw, runs[r].api, runs[r].sync_2m, runs[r].first_2m,
                runs[r].writebacks_2m, runs[r].sync_64k, runs[r].first_64k);
    }
    raw = median_of(runs, cfg.runs, offsetof(run_t, raw));
    api = median_of(runs, cfg.runs, offsetof(run_t, api));
    s2 = median_of(runs, cfg.runs, offsetof(run_t, sync_2m));
    s64 = median_of(runs, cfg.runs, offsetof(run_t, sync_64k));
    f2 = median_of(runs, cfg.runs, offsetof(run_t, first_2m));
    f64 = median_of(runs, cfg.runs, offsetof(run_t, first_64k));
    fp_format_size(cfg.size, size_text, sizeof(size_text));
    printf("bench_sync: write-back vs the raw loopback write stream; median of %u runs; %s\n\n",
           cfg.runs, bench_phase_placement(&cpus, BENCH_PHASE_STREAM));
    printf("| metric | farpool | raw write stream | ratio | target | met |\n");
    printf("|---|---|---|---|---|---|\n");
    printf("| farpool_sync of %s, every block dirty, 2 MiB granule (GB/s) | %.2f | %.2f | %.2fx "
           "| >= 0.8x | %s |\n",
           size_text, s2, raw, raw > 0 ? s2 / raw : 0, raw > 0 && s2 >= 0.8 * raw ? "yes" : "no");
    printf("| same, 64 KiB granule (GB/s) | %.2f | %.2f | %.2fx | - | - |\n", s64, raw,
           raw > 0 ? s64 / raw : 0);
    printf("| first sync of a new region (its blocks fetched, dirtied), 2 MiB granule (GB/s) | "
           "%.2f | %.2f | %.2fx | - | - |\n",
           f2, raw, raw > 0 ? f2 / raw : 0);
    printf("| same, 64 KiB granule (GB/s) | %.2f | %.2f | %.2fx | - | - |\n", f64, raw,
           raw > 0 ? f64 / raw : 0);
    printf("| farpool_slab_write of %s (node API) (GB/s) | %.2f | %.2f | %.2fx | - | - |\n",
           size_text, api, raw, raw > 0 ? api / raw : 0);
    bench_cleanup();
    return 0;
}
