/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench tiers`: the figures of one run, their medians over runs, and
 * the report (Markdown tables on stdout, a CSV file, PNG plots through
 * gnuplot). See tiers.c for what is measured and how.
 *
 * A figure that was not measured (a tier not selected or skipped) is NAN
 * everywhere, and printed as "-" (empty in the CSV).
 *
 * Thread safety: none needed; the benchmark reports from its main thread.
 */
#ifndef FP_BENCH_TIERS_REPORT_H
#define FP_BENCH_TIERS_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Block sizes of the sequential bandwidth figures: 4 KiB to 8 MiB. */
#define TIERS_NBLOCKS 8
extern const uint64_t tiers_blocks[TIERS_NBLOCKS];
extern const char *const tiers_block_names[TIERS_NBLOCKS]; /* "4K" ... "8M" */

/* The lines of the tables: one per tier, two per pool tier (mapped and node API). */
typedef enum tiers_series {
    TIERS_DRAM = 0, /* local DRAM: memcpy from a touched buffer */
    TIERS_LO_MAP,   /* pool over loopback, through a farpool_map() mapping */
    TIERS_LO_API,   /* pool over loopback, farpool_slab_read() */
    TIERS_NS_MAP,   /* pool across a veth pair into a network namespace, mapped */
    TIERS_NS_API,   /* the same, farpool_slab_read() */
    TIERS_DISK,     /* local disk, cold, O_DIRECT pread() */
    TIERS_NSERIES
} tiers_series_t;

extern const char *const tiers_series_ids[TIERS_NSERIES];    /* CSV: "dram", "loopback", ... */
extern const char *const tiers_series_labels[TIERS_NSERIES]; /* tables and plots */

/* The figures of one run; NAN where not measured. */
typedef struct tiers_run {
    double lat_med[TIERS_NSERIES]; /* random 4 KiB access, median, microseconds */
    double lat_p99[TIERS_NSERIES];
    double lat_n[TIERS_NSERIES];                    /* accesses timed */
    double gbs[TIERS_NSERIES][TIERS_NBLOCKS];       /* sequential, GB/s (1e9 bytes/s) */
    double gbs_bytes[TIERS_NSERIES][TIERS_NBLOCKS]; /* bytes behind each figure */
} tiers_run_t;

/* Set every figure of @run to NAN. */
void tiers_run_clear(tiers_run_t *run);

/* A median over runs, and the medians of its per-run ratios to the baselines. */
typedef struct tiers_figure {
    double v;
    double vs_dram; /* v / local DRAM's figure of the same run */
    double vs_disk; /* v / the disk's figure of the same run */
} tiers_figure_t;

typedef struct tiers_summary {
    unsigned runs;
    tiers_figure_t lat_med[TIERS_NSERIES];
    tiers_figure_t lat_p99[TIERS_NSERIES];
    double lat_n[TIERS_NSERIES]; /* median of accesses timed */
    tiers_figure_t gbs[TIERS_NSERIES][TIERS_NBLOCKS];
    bool present[TIERS_NSERIES]; /* measured in at least one run */
} tiers_summary_t;

/* Medians over @n >= 1 runs. */
void tiers_summarize(const tiers_run_t *runs, unsigned n, tiers_summary_t *sum_p);

/* One line per measured series of @run on @out, to judge the noise. */
void tiers_print_run(FILE *out, unsigned idx, unsigned n, const tiers_run_t *run);

/* The latency and bandwidth tables, in Markdown, on stdout. */
void tiers_print_tables(const tiers_summary_t *sum);

/* Write @path (tiers.csv). -1 with a message on stderr on failure. */
int tiers_write_csv(const char *path, const tiers_summary_t *sum);

/*
 * Plot into @dir/tiers_bandwidth.png and @dir/tiers_latency.png with gnuplot.
 * 0 on success; 1 when gnuplot is not installed (said on stderr); -1 when it
 * failed (said on stderr).
 */
int tiers_plot(const char *dir, const tiers_summary_t *sum);

#endif /* FP_BENCH_TIERS_REPORT_H */
