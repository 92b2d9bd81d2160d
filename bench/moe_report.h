/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench moe`, the results and their reports: the Markdown tables on
 * stdout, the targets of the issue (met or not, with the ratio), the CSV file
 * and the PNG plot drawn by gnuplot (load time by expert size, one line per
 * strategy, log axes).
 *
 * Thread safety: none; called from the benchmark's main thread.
 */
#ifndef FP_BENCH_MOE_REPORT_H
#define FP_BENCH_MOE_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define MOE_SIZES_MAX 8

/* The strategies, in the order they run and are reported. */
typedef enum moe_strategy {
    MOE_DRAM,
    MOE_MMAP,
    MOE_DIRECT,
    MOE_MEMCACHED,
    MOE_FP4K,
    MOE_FP2M,
    MOE_FP2M_HINT,
    MOE_NSTRATEGIES
} moe_strategy_t;

/* --strategies name ("fp2m-hint") and table label ("farpool 2 MiB + hints"). */
extern const char *const moe_strategy_name[MOE_NSTRATEGIES];
extern const char *const moe_strategy_label[MOE_NSTRATEGIES];

typedef enum moe_outcome {
    MOE_NOT_WANTED = 0, /* not in --strategies */
    MOE_SKIPPED,        /* could not run here (memory, disk, O_DIRECT, missing program) */
    MOE_FAILED,         /* started and failed (note says why) */
    MOE_MEASURED,
} moe_outcome_t;

/* One strategy at one expert size: medians over every event of every run. */
typedef struct moe_result {
    moe_outcome_t outcome;
    char note[200];                    /* why skipped or failed; "" otherwise */
    bool wrong;                        /* a compute result or checksum differed from the others */
    bool truncated;                    /* a run hit --time-limit before its last batch */
    unsigned runs;                     /* runs measured */
    unsigned loads;                    /* per run */
    unsigned unloads;                  /* per run */
    unsigned loads_done, unloads_done; /* per run, done (fewer if truncated) */
    double load_ms;                    /* median time to load one expert */
    double load_p90_ms;                /* 90th percentile */
    double unload_ms;                  /* median time to unload one */
    double faults_app;                 /* median per load: getrusage(RUSAGE_THREAD) minor + major */
    double faults_proc;                /* median per load: getrusage(RUSAGE_SELF) minor + major */
    double faults_fp;                  /* median per load: farpool faults + minor_faults */
    double run_faults_app, run_faults_proc, run_faults_fp; /* per run, whole run, median */
    double bytes_moved;                                    /* per run, median */
    double cpu_s;         /* per run: this process, user + system (farpool's engine included) */
    double server_cpu_s;  /* per run: farpoold or memcached, user + system */
    double total_s;       /* per run: wall time of all batches */
    double load_unload_s; /* per run: time spent loading and unloading */
    double load_unload_per_load_ms; /* per run: that time over the loads done */
    double compute_gbs;             /* compute pass speed over the loaded experts, GB/s */
    uint64_t checksum;              /* of the first complete run */
    bool has_prefetch;              /* farpool: the counters below (of the last run) */
    uint64_t pf_issued, pf_used, pf_late, pf_wasted, pf_hinted, evictions;
} moe_result_t;

/* What the reports need to know about the run. */
typedef struct moe_report_info {
    unsigned experts, top_k, batches, runs;
    double skew;
    uint64_t seed;
    unsigned nsizes;
    uint64_t size[MOE_SIZES_MAX];            /* bytes per expert */
    unsigned slots[MOE_SIZES_MAX];           /* budget in experts at that size; 0: size skipped */
    char size_note[MOE_SIZES_MAX][160];      /* why a size was skipped */
    moe_result_t (*result)[MOE_NSTRATEGIES]; /* [nsizes][MOE_NSTRATEGIES] */
    double wall_s;                           /* whole benchmark */
    bool is_default;                         /* the default run (the 10-minute target applies) */
} moe_report_info_t;

/* "128M", "1G", "1536M". */
void moe_size_str(uint64_t size, char *buf, size_t len);

/* The Markdown table of expert size @si. */
void moe_report_table(FILE *out, const moe_report_info_t *info, unsigned si);

/* The Markdown tables, one per expert size. */
void moe_report_tables(FILE *out, const moe_report_info_t *info);

/* The targets of the issue, met or not. */
void moe_report_targets(FILE *out, const moe_report_info_t *info);

/* Write the CSV; false (said on stderr) on failure. */
bool moe_report_csv(const char *path, const moe_report_info_t *info);

/*
 * Draw the PNG with gnuplot (its script written next to it, then removed).
 * Returns 0 when drawn, 1 when gnuplot is missing (said), -1 on failure (said).
 */
int moe_report_plot(const char *png, const moe_report_info_t *info);

#endif /* FP_BENCH_MOE_REPORT_H */
