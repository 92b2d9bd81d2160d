/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench moe`: the MoE expert-loading experiment (RMAI, EuroMLSys'25,
 * reproduced and answered side by side in one run). See bench/README.md,
 * "farpool-bench moe", for how to read its output.
 *
 * A synthetic MoE serving loop. E experts of S bytes (for each S of --sizes);
 * a router picks the top-k distinct experts of each batch from a Zipf-like
 * skew with a seed (moe_trace.h); a resident set of at most `slots` experts,
 * LRU, is what the local memory budget holds. Each batch loads the experts it
 * picked that are not resident, unloading the least recently used ones the
 * budget requires, then computes on each picked expert (a small GEMV over all
 * its bytes, --tokens vectors, checked against the same expert's result in every other strategy
 * and folded into a checksum). The plan of loads and unloads is computed once
 * per size, so every strategy does the same work on the same trace.
 *
 * Strategies (moe_store.h), one after another, everything freed in between:
 *   dram       all experts in local memory: the upper bound, nothing to load
 *   mmap       the experts' file on local disk, cold (page cache dropped before
 *              each run: drop_caches as root, else POSIX_FADV_DONTNEED); load =
 *              mmap the range and touch every page; unload = munmap +
 *              POSIX_FADV_DONTNEED so the next load is cold again
 *   direct     the same file, read() with O_DIRECT into a preallocated buffer
 *   memcached  a memcached started here on loopback, experts as 1 MiB items,
 *              loaded with multi-get into a preallocated buffer
 *   fp4k       farpool, a region at 4 KiB granule, read-ahead off (no prefetch)
 *   fp2m       farpool, 2 MiB granule, read-ahead on (farpool's default)
 *   fp2m-hint  fp2m, plus the router's choice as a hint one batch ahead: after
 *              batch t's loads, batch t+1's unloads are done and its loads are
 *              farpool_prefetch()ed, then batch t computes; batch t+1's load is
 *              then the touch pass, which waits for whatever is still on the
 *              wire (so the load time includes all the waiting there is)
 * farpool's cache budget is exactly `slots` experts. A farpoold is started per
 * expert size with room for all experts, and stopped after the farpool
 * strategies of that size; the regions are filled through the node API.
 *
 * Budget. --budget N experts, or bytes with a unit; the default is 2 x top-k
 * experts, which leaves room for the batch being computed and the next one's
 * hinted experts (the LRU never has to evict an expert of the current batch
 * to make room for the next: the hinted and unhinted runs do the same loads).
 * With a smaller budget, hints stop at the first unload that would evict an
 * expert of the current batch and the rest load on demand.
 *
 * Measured per load: wall time, getrusage() minor + major faults of this
 * thread (what the application trapped) and of the process (farpool's engine
 * thread included), farpool's faults + minor_faults. Per unload: wall time.
 * Per run: bytes moved (disk: /proc/self/io read_bytes; memcached: values
 * fetched; farpool: bytes_in), CPU time of this process and of the server
 * (memcached or farpoold, from /proc), wall time. Reported: medians over every
 * load and unload of every run (--runs), medians of the per-run figures.
 *
 * Memory. Before each strategy the memory it needs (E x S for the data in
 * DRAM, in memcached or on the node, plus the budget) is checked against
 * MemAvailable; a strategy that cannot fit is skipped with a message, not
 * OOM-killed. The disk file is written once per size for both disk strategies
 * after checking the free space, and removed after them.
 *
 * Bounds. A run stops before a load that would end past --time-limit seconds,
 * judged by its slowest load so far (the table says so); every
 * network operation has a 10 s deadline; children (farpoold, memcached,
 * gnuplot) are always stopped and reaped, also on SIGINT/SIGTERM/SIGHUP
 * (moe_proc.h); temporary files and directories are removed.
 *
 * Output: Markdown tables on stdout (one per size, as soon as it is done),
 * then the targets of the issue, met or not; PREFIX.csv; PREFIX.png drawn by
 * gnuplot (said and skipped if gnuplot is missing); progress on stderr.
 * Exit status: 0 done; 1 a strategy failed or computed a different result
 * from the others (a wrong byte); 2 bad usage. A strategy skipped for want of
 * memory, disk, O_DIRECT support or a program is not a failure.
 */
#include "moe.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_common.h"
#include "common/parse.h"
#include "moe_proc.h"
#include "moe_report.h"
#include "moe_store.h"
#include "moe_trace.h"

#define EXIT_OK    0
#define EXIT_FAIL  1
#define EXIT_USAGE 2

#define DEFAULT_EXPERTS    16
#define DEFAULT_SIZES      "128M,512M,1G"
#define DEFAULT_TOP_K      2
#define DEFAULT_TOKENS     4 /* a batch of 32 tokens over 16 experts, top-2 */
#define DEFAULT_BATCHES    12
#define DEFAULT_SEED       1
#define DEFAULT_SKEW       1.0
#define DEFAULT_RUNS       1
#define DEFAULT_TIME_LIMIT 60 /* seconds per run: bounds the 4 KiB mode at 1G */
#define DEFAULT_OUT        "moe"
#define DEFAULT_DIR_PARENT "/var/tmp"
#define QUICK_EXPERTS      8
#define QUICK_SIZES        "4M,8M"
#define QUICK_BATCHES      10

#define SIZE_ALIGN  (2 * MIB) /* farpool's largest granule; memcached's items divide it */
#define SIZE_LIMIT  (8 * GIB)
#define BATCHES_MAX 100000u
#define RUNS_MAX    20u
#define SKEW_MAX    4.0
#define TIME_MAX    86400u
#define MEM_MARGIN  (512 * MIB) /* MemAvailable left over after a strategy's needs */
#define NODE_SLAB   (64 * MIB)  /* farpoold's default slab size */
#define BLOCK_META  16u         /* bytes of engine bookkeeping per block (fp_block_t + flags) */
#define WRONG_SAY   3           /* wrong results described per strategy and size */

typedef struct moe_config {
    unsigned experts, top_k, batches, runs, time_limit, tokens;
    unsigned nsizes;
    uint64_t size[MOE_SIZES_MAX];
    bool budget_is_bytes;
    uint64_t budget; /* experts, or bytes */
    bool budget_set;
    uint64_t cache_slack; /* farpool's cache beyond the budget */
    uint64_t seed;
    double skew;
    bool want[MOE_NSTRATEGIES];
    const char *dir, *out, *out_dir, *farpoold, *memcached;
    bool drop_global;
    bool is_default;
} moe_config_t;

/* The state of one benchmark. */
typedef struct moe_bench {
    moe_config_t cfg;
    moe_trace_t trace;
    moe_report_info_t info;
    moe_result_t (*result)[MOE_NSTRATEGIES];
    char farpoold[PATH_MAX], memcached[PATH_MAX];
    bool have_farpoold, have_memcached;
    char disk_dir[PATH_MAX]; /* where the experts' file goes */
    char tmp_dir[PATH_MAX];  /* port files */
    /* Per size: the first result computed for each expert, to check the others against. */
    bool *ref_have;
    uint64_t *ref_bits;
    bool failed;
} moe_bench_t;

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: farpool-bench moe [OPTIONS]\n"
            "The MoE expert-loading experiment: a synthetic serving loop that loads the\n"
            "experts a router picks, computes on them and unloads what the memory budget\n"
            "requires, with each strategy on the same trace: local DRAM, cold disk (mmap and\n"
            "O_DIRECT), memcached, farpool at 4 KiB, at 2 MiB, and at 2 MiB with hints.\n"
            "\n"
            "Workload:\n"
            "  --experts E         number of experts (default %u)\n"
            "  --sizes LIST        expert sizes, multiples of 2M up to 8G (default %s)\n"
            "  --top-k K           experts per batch (default %u)\n"
            "  --tokens T          tokens each picked expert computes on per batch: each weight\n"
            "                      is used T times (1-%u, default %u)\n"
            "  --batches N         batches in the router's trace (default %u)\n"
            "  --budget N|SIZE     local memory: N experts, or bytes with a unit such as 4G\n"
            "                      (default 2 x top-k experts)\n"
            "  --skew S            Zipf exponent of expert popularity, 0 = uniform (default %.1f)\n"
            "  --seed N            the router's seed (default %u)\n"
            "  --runs N            repeat every strategy N times, report medians (default %u)\n"
            "  --strategies LIST   some of dram,mmap,direct,memcached,fp4k,fp2m,fp2m-hint\n"
            "                      (default: all)\n"
            "  --time-limit SEC    stop a run after SEC seconds (default %u)\n"
            "  --cache-slack SIZE  give farpool's cache SIZE beyond the budget (default 0)\n"
            "  --quick             smoke test: %u experts of %s, %u batches\n"
            "\n"
            "Files and programs:\n"
            "  --dir DIR           where the experts' disk file goes (default: a new directory\n"
            "                      in %s, removed at the end); must support O_DIRECT\n"
            "  --out PREFIX        write PREFIX.csv and PREFIX.png (default %s)\n"
            "  --out-dir DIR       put them in DIR (default: the current directory)\n"
            "  --no-drop-caches    make the disk file cold with POSIX_FADV_DONTNEED on it alone,\n"
            "                      not by dropping the whole page cache (the default as root)\n"
            "  --farpoold PATH     the memory node daemon (default: the one beside this\n"
            "                      program, in the directory above it, or in PATH)\n"
            "  --memcached PATH    memcached (default: memcached in PATH)\n"
            "  -h, --help          show this help\n"
            "\n"
            "Output: a Markdown table per expert size and the targets on stdout, PREFIX.csv,\n"
            "and PREFIX.png (with gnuplot). Exit status: 0 done, 1 a strategy failed or\n"
            "computed different bytes, 2 bad usage. See farpool-bench(1) and bench/README.md.\n",
            DEFAULT_EXPERTS, DEFAULT_SIZES, DEFAULT_TOP_K, MOE_TOKENS_MAX, DEFAULT_TOKENS,
            DEFAULT_BATCHES, DEFAULT_SKEW, DEFAULT_SEED, DEFAULT_RUNS, DEFAULT_TIME_LIMIT,
            QUICK_EXPERTS, QUICK_SIZES, QUICK_BATCHES, DEFAULT_DIR_PARENT, DEFAULT_OUT);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", MOE_PROG);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'farpool-bench moe --help'.\n");
    return EXIT_USAGE;
}

static int cmp_u64(const void *a, const void *b)
{
    return bench_cmp_u64(a, b);
}

/* "128M,512M,1G": sorted, without duplicates. */
static int parse_sizes(const char *text, moe_config_t *cfg)
{
    char buf[512], *save = NULL, *tok;
    unsigned n = 0;

    if (strlen(text) >= sizeof(buf) || text[0] == '\0')
        return usage_error("--sizes: '%s' is not a list of sizes (e.g. 128M,512M,1G)", text);
    snprintf(buf, sizeof(buf), "%s", text);
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        uint64_t v;

        if (fp_parse_size(tok, &v) != FP_OK)
            return usage_error("--sizes: '%s' is not a size (e.g. 128M, 1G)", tok);
        if (v < SIZE_ALIGN || v % SIZE_ALIGN != 0 || v > SIZE_LIMIT)
            return usage_error("--sizes: %s: an expert size must be a multiple of 2M from 2M "
                               "to 8G",
                               tok);
        if (n == MOE_SIZES_MAX)
            return usage_error("--sizes: at most %d sizes", MOE_SIZES_MAX);
        cfg->size[n++] = v;
    }
    if (n == 0 || text[strlen(text) - 1] == ',' || strstr(text, ",,") != NULL || text[0] == ',')
        return usage_error("--sizes: '%s' is not a list of sizes (e.g. 128M,512M,1G)", text);
    qsort(cfg->size, n, sizeof(cfg->size[0]), cmp_u64);
    cfg->nsizes = 0;
    for (unsigned i = 0; i < n; i++)
        if (cfg->nsizes == 0 || cfg->size[cfg->nsizes - 1] != cfg->size[i])
            cfg->size[cfg->nsizes++] = cfg->size[i];
    return EXIT_OK;
}

static int parse_strategies(const char *text, moe_config_t *cfg)
{
    char buf[256], *save = NULL, *tok;
    bool any = false;

    if (strlen(text) >= sizeof(buf))
        return usage_error("--strategies: list too long");
    snprintf(buf, sizeof(buf), "%s", text);
    memset(cfg->want, 0, sizeof(cfg->want));
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        bool found = false;

        if (strcmp(tok, "all") == 0) {
            for (unsigned s = 0; s < MOE_NSTRATEGIES; s++)
                cfg->want[s] = true;
            any = true;
            continue;
        }
        for (unsigned s = 0; s < MOE_NSTRATEGIES; s++) {
            if (strcmp(tok, moe_strategy_name[s]) == 0) {
                cfg->want[s] = found = any = true;
                break;
            }
        }
        if (!found)
            return usage_error("--strategies: unknown strategy '%s' (known: dram, mmap, direct, "
                               "memcached, fp4k, fp2m, fp2m-hint, all)",
                               tok);
    }
    if (!any)
        return usage_error("--strategies: '%s' names no strategy", text);
    return EXIT_OK;
}

/* A number of experts ("4") or bytes with a unit ("4G"). */
static int parse_budget(const char *text, moe_config_t *cfg)
{
    size_t len = strlen(text);
    uint64_t v;

    if (len > 0 && strspn(text, "0123456789") == len) {
        unsigned n;

        if (bench_parse_uint(text, 1, MOE_EXPERTS_MAX, &n) != 0)
            return usage_error("--budget: '%s' experts is out of range (1-%u)", text,
                               MOE_EXPERTS_MAX);
        cfg->budget_is_bytes = false;
        cfg->budget = n;
    } else {
        if (fp_parse_size(text, &v) != FP_OK || v == 0)
            return usage_error("--budget: '%s' is neither a number of experts (4) nor a size "
                               "(4G)",
                               text);
        cfg->budget_is_bytes = true;
        cfg->budget = v;
    }
    cfg->budget_set = true;
    return EXIT_OK;
}

static int parse_uint_opt(const char *name, const char *text, unsigned min, unsigned max,
                          unsigned *v_p)
{
    if (bench_parse_uint(text, min, max, v_p) != 0)
        return usage_error("--%s: '%s' is not a whole number from %u to %u", name, text, min, max);
    return EXIT_OK;
}

enum {
    OPT_EXPERTS = 256,
    OPT_SIZES,
    OPT_TOP_K,
    OPT_TOKENS,
    OPT_BATCHES,
    OPT_BUDGET,
    OPT_SKEW,
    OPT_SEED,
    OPT_RUNS,
    OPT_STRATEGIES,
    OPT_TIME_LIMIT,
    OPT_CACHE_SLACK,
    OPT_QUICK,
    OPT_DIR,
    OPT_OUT,
    OPT_OUT_DIR,
    OPT_NO_DROP,
    OPT_FARPOOLD,
    OPT_MEMCACHED,
};

/* Parse @argv into @cfg; EXIT_OK, EXIT_USAGE, or -1 for --help (printed). */
static int parse_options(int argc, char **argv, moe_config_t *cfg)
{
    static const struct option opts[] = {
        {"experts", required_argument, NULL, OPT_EXPERTS},
        {"sizes", required_argument, NULL, OPT_SIZES},
        {"top-k", required_argument, NULL, OPT_TOP_K},
        {"tokens", required_argument, NULL, OPT_TOKENS},
        {"batches", required_argument, NULL, OPT_BATCHES},
        {"budget", required_argument, NULL, OPT_BUDGET},
        {"skew", required_argument, NULL, OPT_SKEW},
        {"seed", required_argument, NULL, OPT_SEED},
        {"runs", required_argument, NULL, OPT_RUNS},
        {"strategies", required_argument, NULL, OPT_STRATEGIES},
        {"time-limit", required_argument, NULL, OPT_TIME_LIMIT},
        {"cache-slack", required_argument, NULL, OPT_CACHE_SLACK},
        {"quick", no_argument, NULL, OPT_QUICK},
        {"dir", required_argument, NULL, OPT_DIR},
        {"out", required_argument, NULL, OPT_OUT},
        {"out-dir", required_argument, NULL, OPT_OUT_DIR},
        {"no-drop-caches", no_argument, NULL, OPT_NO_DROP},
        {"farpoold", required_argument, NULL, OPT_FARPOOLD},
        {"memcached", required_argument, NULL, OPT_MEMCACHED},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool quick = false, set_experts = false, set_sizes = false, set_batches = false;
    int opt, rc = EXIT_OK;

    memset(cfg, 0, sizeof(*cfg));
    cfg->experts = DEFAULT_EXPERTS;
    cfg->top_k = DEFAULT_TOP_K;
    cfg->tokens = DEFAULT_TOKENS;
    cfg->batches = DEFAULT_BATCHES;
    cfg->runs = DEFAULT_RUNS;
    cfg->time_limit = DEFAULT_TIME_LIMIT;
    cfg->seed = DEFAULT_SEED;
    cfg->skew = DEFAULT_SKEW;
    cfg->out = DEFAULT_OUT;
    cfg->drop_global = geteuid() == 0;
    cfg->is_default = true;
    for (unsigned s = 0; s < MOE_NSTRATEGIES; s++)
        cfg->want[s] = true;

    optind = 1;
    opterr = 0;
    while (rc == EXIT_OK && (opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_EXPERTS:
            rc = parse_uint_opt("experts", optarg, 2, MOE_EXPERTS_MAX, &cfg->experts);
            set_experts = true;
            break;
        case OPT_SIZES:
            rc = parse_sizes(optarg, cfg);
            set_sizes = true;
            break;
        case OPT_TOP_K:
            rc = parse_uint_opt("top-k", optarg, 1, MOE_TOPK_MAX, &cfg->top_k);
            break;
        case OPT_TOKENS:
            rc = parse_uint_opt("tokens", optarg, 1, MOE_TOKENS_MAX, &cfg->tokens);
            break;
        case OPT_BATCHES:
            rc = parse_uint_opt("batches", optarg, 1, BATCHES_MAX, &cfg->batches);
            set_batches = true;
            break;
        case OPT_BUDGET:
            rc = parse_budget(optarg, cfg);
            break;
        case OPT_SKEW: {
            char *end;

            errno = 0;
            cfg->skew = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != '\0' || !(cfg->skew >= 0) ||
                cfg->skew > SKEW_MAX)
                rc = usage_error("--skew: '%s' is not a number from 0 to %.0f", optarg, SKEW_MAX);
            break;
        }
        case OPT_SEED: {
            char *end;

            errno = 0;
            cfg->seed = strtoull(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-')
                rc = usage_error("--seed: '%s' is not a whole number", optarg);
            break;
        }
        case OPT_RUNS:
            rc = parse_uint_opt("runs", optarg, 1, RUNS_MAX, &cfg->runs);
            break;
        case OPT_STRATEGIES:
            rc = parse_strategies(optarg, cfg);
            break;
        case OPT_TIME_LIMIT:
            rc = parse_uint_opt("time-limit", optarg, 1, TIME_MAX, &cfg->time_limit);
            break;
        case OPT_CACHE_SLACK:
            if (fp_parse_size(optarg, &cfg->cache_slack) != FP_OK || cfg->cache_slack > SIZE_LIMIT)
                rc = usage_error("--cache-slack: '%s' is not a size up to 8G (e.g. 256M)", optarg);
            break;
        case OPT_QUICK:
            quick = true;
            break;
        case OPT_DIR:
            cfg->dir = optarg;
            break;
        case OPT_OUT:
            if (optarg[0] == '\0')
                rc = usage_error("--out: empty prefix");
            cfg->out = optarg;
            break;
        case OPT_OUT_DIR:
            cfg->out_dir = optarg;
            break;
        case OPT_NO_DROP:
            cfg->drop_global = false;
            break;
        case OPT_FARPOOLD:
            cfg->farpoold = optarg;
            break;
        case OPT_MEMCACHED:
            cfg->memcached = optarg;
            break;
        case 'h':
            usage(stdout);
            return -1;
        case ':':
            return usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
        /* Options that change what is measured make this not the default run. */
        if (opt != OPT_DIR && opt != OPT_OUT && opt != OPT_OUT_DIR && opt != OPT_FARPOOLD &&
            opt != OPT_MEMCACHED)
            cfg->is_default = false;
    }
    if (rc != EXIT_OK)
        return rc;
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!set_sizes)
        parse_sizes(quick ? QUICK_SIZES : DEFAULT_SIZES, cfg);
    if (quick && !set_experts)
        cfg->experts = QUICK_EXPERTS;
    if (quick && !set_batches)
        cfg->batches = QUICK_BATCHES;
    if (cfg->top_k > cfg->experts)
        return usage_error("--top-k %u: more than the %u experts", cfg->top_k, cfg->experts);
    if (!cfg->budget_set) {
        cfg->budget = 2 * cfg->top_k;
        if (cfg->budget > cfg->experts)
            cfg->budget = cfg->experts;
    }
    if (!cfg->budget_is_bytes && cfg->budget < cfg->top_k)
        return usage_error("--budget %" PRIu64 ": a batch uses %u experts at once (--top-k); "
                           "the budget must hold at least that many",
                           cfg->budget, cfg->top_k);
    if (!cfg->budget_is_bytes && cfg->budget > cfg->experts)
        return usage_error("--budget %" PRIu64 ": more than the %u experts", cfg->budget,
                           cfg->experts);
    return EXIT_OK;
}

/* ------------------------------------------------------------------------ */
/* One run of one strategy                                                  */
/* ------------------------------------------------------------------------ */

/* Every sample of one strategy at one size, over its runs. */
typedef struct samples {
    unsigned nload, nunload, nrun;
    double *load_ms, *unload_ms, *f_app, *f_proc, *f_fp;
    double *run_total, *run_cpu, *run_srv, *run_bytes, *run_lu, *run_lu_load, *run_gbs;
    double *run_f_app, *run_f_proc, *run_f_fp;
} samples_t;

static void samples_free(samples_t *sm)
{
    free(sm->load_ms);
    free(sm->unload_ms);
    free(sm->f_app);
    free(sm->f_proc);
    free(sm->f_fp);
    free(sm->run_total);
    free(sm->run_cpu);
    free(sm->run_srv);
    free(sm->run_bytes);
    free(sm->run_lu);
    free(sm->run_lu_load);
    free(sm->run_gbs);
    free(sm->run_f_app);
    free(sm->run_f_proc);
    free(sm->run_f_fp);
}

static bool samples_alloc(samples_t *sm, const moe_plan_t *plan, unsigned runs)
{
    size_t l = (size_t)plan->loads * runs + 1, u = (size_t)plan->unloads * runs + 1;

    memset(sm, 0, sizeof(*sm));
    sm->load_ms = calloc(l, sizeof(double));
    sm->f_app = calloc(l, sizeof(double));
    sm->f_proc = calloc(l, sizeof(double));
    sm->f_fp = calloc(l, sizeof(double));
    sm->unload_ms = calloc(u, sizeof(double));
    sm->run_total = calloc(runs, sizeof(double));
    sm->run_cpu = calloc(runs, sizeof(double));
    sm->run_srv = calloc(runs, sizeof(double));
    sm->run_bytes = calloc(runs, sizeof(double));
    sm->run_lu = calloc(runs, sizeof(double));
    sm->run_lu_load = calloc(runs, sizeof(double));
    sm->run_gbs = calloc(runs, sizeof(double));
    sm->run_f_app = calloc(runs, sizeof(double));
    sm->run_f_proc = calloc(runs, sizeof(double));
    sm->run_f_fp = calloc(runs, sizeof(double));
    if (sm->load_ms && sm->f_app && sm->f_proc && sm->f_fp && sm->unload_ms && sm->run_total &&
        sm->run_cpu && sm->run_srv && sm->run_bytes && sm->run_lu && sm->run_lu_load &&
        sm->run_gbs && sm->run_f_app && sm->run_f_proc && sm->run_f_fp)
        return true;
    samples_free(sm);
    return false;
}

static double tv_s(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static double ru_cpu(const struct rusage *ru)
{
    return tv_s(&ru->ru_utime) + tv_s(&ru->ru_stime);
}

static uint64_t ru_faults(const struct rusage *ru)
{
    return (uint64_t)ru->ru_minflt + (uint64_t)ru->ru_majflt;
}

/* Compute on expert @e of batch @t and check the result; false if it is wrong. */
static bool compute_check(moe_bench_t *b, moe_store_t *s, moe_strategy_t strat, unsigned t,
                          unsigned e, uint64_t *sum_p, unsigned *said_p)
{
    const void *p = s->ops->expert(s, e);
    double r;
    uint64_t bits;

    if (p == NULL) {
        moe_err("internal: expert %u is not loaded at batch %u (%s)", e, t,
                moe_strategy_name[strat]);
        return false;
    }
    r = moe_compute(p, s->size, b->cfg.tokens);
    memcpy(&bits, &r, sizeof(bits));
    *sum_p = moe_checksum_fold(*sum_p, t, e, r);
    if (!b->ref_have[e]) {
        b->ref_have[e] = true;
        b->ref_bits[e] = bits;
        return true;
    }
    if (b->ref_bits[e] == bits)
        return true;
    if ((*said_p)++ < WRONG_SAY) {
        uint64_t page = moe_pattern_first_bad_page(e, p, s->size);
        char sz[32];

        moe_size_str(s->size, sz, sizeof(sz));
        if (page != UINT64_MAX)
            moe_err("%s, %s experts: WRONG DATA: expert %u at batch %u: page %" PRIu64
                    " (byte %" PRIu64 ") does not hold its bytes",
                    moe_strategy_label[strat], sz, e, t, page, page * MOE_PAGE);
        else {
            double want;

            memcpy(&want, &b->ref_bits[e], sizeof(want));
            moe_err("%s, %s experts: WRONG DATA: expert %u at batch %u computes %.9g, other "
                    "strategies %.9g",
                    moe_strategy_label[strat], sz, e, t, r, want);
        }
    }
    return false;
}

/* One run of the plan on @s; samples appended to @sm. */
static fp_status_t serve_run(moe_bench_t *b, moe_strategy_t strat, const moe_plan_t *plan,
                             moe_store_t *s, samples_t *sm, moe_result_t *res)
{
    const moe_trace_t *tr = plan->trace;
    uint8_t *early = calloc((size_t)plan->first[tr->batches] + 1, 1); /* ops done ahead */
    struct rusage ru0, ru1;
    double t0, srv0, lu = 0, compute_s = 0, compute_bytes = 0, f_app = 0, f_fp = 0;
    double slowest = 0; /* the longest load of this run so far, seconds */
    uint64_t sum = 0;
    unsigned said = 0, run = sm->nrun, loads = 0;
    fp_status_t status;
    moe_io_t io;

    if (early == NULL) {
        moe_err("out of memory");
        return FP_ERR_NO_MEMORY;
    }
    status = s->ops->run_begin(s);
    if (status != FP_OK) {
        free(early);
        return status;
    }
    srv0 = moe_child_cpu_s(s->server);
    getrusage(RUSAGE_SELF, &ru0);
    t0 = moe_now();
    for (unsigned t = 0; t < tr->batches && status == FP_OK && !res->truncated; t++) {
        for (unsigned i = plan->first[t]; i < plan->first[t + 1] && status == FP_OK; i++) {
            moe_op_t op = plan->ops[i];
            double a;

            if (early[i])
                continue;
            /* No load that would end past the limit, judging by the slowest so far. */
            if (op.kind == MOE_OP_LOAD && moe_now() - t0 + slowest > b->cfg.time_limit) {
                res->truncated = true;
                moe_err("%s: run %u stopped in batch %u of %u: --time-limit %u s",
                        moe_strategy_label[strat], run + 1, t + 1, tr->batches, b->cfg.time_limit);
                break;
            }
            if (op.kind == MOE_OP_UNLOAD) {
                a = moe_now();
                status = s->ops->unload(s, op.expert);
                a = moe_now() - a;
                sm->unload_ms[sm->nunload++] = a * 1e3;
                lu += a;
            } else {
                struct rusage th0, th1, pr0, pr1;
                moe_io_t io0, io1;

                s->ops->sample(s, &io0);
                getrusage(RUSAGE_SELF, &pr0);
                getrusage(RUSAGE_THREAD, &th0);
                a = moe_now();
                status = s->ops->load(s, op.expert);
                a = moe_now() - a;
                getrusage(RUSAGE_THREAD, &th1);
                getrusage(RUSAGE_SELF, &pr1);
                s->ops->sample(s, &io1);
                sm->load_ms[sm->nload] = a * 1e3;
                sm->f_app[sm->nload] = (double)(ru_faults(&th1) - ru_faults(&th0));
                sm->f_proc[sm->nload] = (double)(ru_faults(&pr1) - ru_faults(&pr0));
                sm->f_fp[sm->nload] = (double)(io1.fp_faults - io0.fp_faults);
                f_app += sm->f_app[sm->nload];
                f_fp += sm->f_fp[sm->nload];
                sm->nload++;
                loads++;
                lu += a;
                if (a > slowest)
                    slowest = a;
            }
        }
        if (res->truncated)
            break; /* this batch's experts are not all loaded: no compute */
        /* The router's choice for the next batch, as a hint: its unloads now, its loads prefetched.
         */
        if (s->ops->hint != NULL && t + 1 < tr->batches) {
            for (unsigned i = plan->first[t + 1]; i < plan->first[t + 2] && status == FP_OK; i++) {
                moe_op_t op = plan->ops[i];

                if (op.kind == MOE_OP_UNLOAD) {
                    double a;

                    if (moe_trace_uses(tr, t, op.expert))
                        break; /* the budget has no room for the rest: they load on demand */
                    a = moe_now();
                    status = s->ops->unload(s, op.expert);
                    a = moe_now() - a;
                    sm->unload_ms[sm->nunload++] = a * 1e3;
                    lu += a;
                    early[i] = 1;
                } else {
                    status = s->ops->hint(s, op.expert);
                }
            }
        }
        for (unsigned j = 0; j < tr->top_k && status == FP_OK; j++) {
            unsigned e = tr->pick[(size_t)t * tr->top_k + j];
            double a = moe_now();

            if (!compute_check(b, s, strat, t, e, &sum, &said))
                res->wrong = true;
            compute_s += moe_now() - a;
            compute_bytes += (double)s->size;
        }
    }
    sm->run_total[run] = moe_now() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    sm->run_srv[run] = moe_child_cpu_s(s->server) - srv0;
    sm->run_cpu[run] = ru_cpu(&ru1) - ru_cpu(&ru0);
    sm->run_f_proc[run] = (double)(ru_faults(&ru1) - ru_faults(&ru0));
    sm->run_lu[run] = lu;
    sm->run_lu_load[run] = loads > 0 ? lu * 1e3 / loads : 0;
    sm->run_gbs[run] = compute_s > 0 ? compute_bytes / compute_s / 1e9 : 0;
    {
        fp_status_t end = s->ops->run_end(s, &io);

        if (status == FP_OK)
            status = end;
    }
    sm->run_bytes[run] = (double)io.bytes_moved;
    sm->run_f_app[run] = f_app;
    sm->run_f_fp[run] = io.has_fp ? (double)io.fp_faults : f_fp;
    if (io.has_fp) {
        res->has_prefetch = true;
        res->pf_issued = io.fp.prefetch_issued;
        res->pf_used = io.fp.prefetch_used;
        res->pf_late = io.fp.prefetch_late;
        res->pf_wasted = io.fp.prefetch_wasted;
        res->pf_hinted = io.fp.prefetch_hinted;
        res->evictions = io.fp.evictions;
    }
    if (status == FP_OK && !res->truncated) {
        if (sm->nrun == 0 || res->checksum == 0)
            res->checksum = sum;
        else if (res->checksum != sum) {
            moe_err("%s: run %u's checksum %016" PRIx64 " differs from run 1's %016" PRIx64,
                    moe_strategy_label[strat], run + 1, sum, res->checksum);
            res->wrong = true;
        }
    }
    sm->nrun++;
    free(early);
    return status;
}

/* Run strategy @strat at size @si on @s, --runs times; fills its result. */
static void run_strategy(moe_bench_t *b, unsigned si, moe_strategy_t strat, const moe_plan_t *plan,
                         moe_store_t *s)
{
    moe_result_t *res = &b->result[si][strat];
    char sz[32];
    samples_t sm;
    fp_status_t status = FP_OK;

    moe_size_str(b->cfg.size[si], sz, sizeof(sz));
    if (!samples_alloc(&sm, plan, b->cfg.runs)) {
        moe_err("out of memory");
        res->outcome = MOE_FAILED;
        snprintf(res->note, sizeof(res->note), "out of memory");
        b->failed = true;
        return;
    }
    for (unsigned run = 0; run < b->cfg.runs && status == FP_OK; run++) {
        unsigned l0 = sm.nload, u0 = sm.nunload;

        status = serve_run(b, strat, plan, s, &sm, res);
        if (status == FP_OK) {
            double lm = bench_median(sm.load_ms + l0, sm.nload - l0 > 0 ? sm.nload - l0 : 1);

            fprintf(stderr,
                    "%s: [%s] %s, run %u/%u: %u loads (median %.1f ms), %u unloads, %.1f s%s\n",
                    MOE_PROG, sz, moe_strategy_label[strat], run + 1, b->cfg.runs, sm.nload - l0,
                    sm.nload > l0 ? lm : 0.0, sm.nunload - u0, sm.run_total[run],
                    res->wrong ? " WRONG DATA" : "");
        }
    }
    if (status != FP_OK) {
        res->outcome = MOE_FAILED;
        snprintf(res->note, sizeof(res->note), "%s (see the messages above)",
                 fp_status_string(status));
        b->failed = true;
        samples_free(&sm);
        return;
    }
    res->outcome = MOE_MEASURED;
    res->runs = sm.nrun;
    res->loads = plan->loads;
    res->unloads = plan->unloads;
    res->loads_done = (sm.nload + sm.nrun / 2) / sm.nrun;
    res->unloads_done = (sm.nunload + sm.nrun / 2) / sm.nrun;
    if (sm.nload > 0) {
        res->faults_app = bench_median(sm.f_app, sm.nload);
        res->faults_proc = bench_median(sm.f_proc, sm.nload);
        res->faults_fp = bench_median(sm.f_fp, sm.nload);
        res->load_ms = bench_median(sm.load_ms, sm.nload); /* sorts: p90 after */
        res->load_p90_ms = sm.load_ms[(sm.nload * 9 + 9) / 10 - 1];
    }
    if (sm.nunload > 0)
        res->unload_ms = bench_median(sm.unload_ms, sm.nunload);
    res->total_s = bench_median(sm.run_total, sm.nrun);
    res->cpu_s = bench_median(sm.run_cpu, sm.nrun);
    res->server_cpu_s = bench_median(sm.run_srv, sm.nrun);
    res->bytes_moved = bench_median(sm.run_bytes, sm.nrun);
    res->load_unload_s = bench_median(sm.run_lu, sm.nrun);
    res->load_unload_per_load_ms = bench_median(sm.run_lu_load, sm.nrun);
    res->compute_gbs = bench_median(sm.run_gbs, sm.nrun);
    res->run_faults_app = bench_median(sm.run_f_app, sm.nrun);
    res->run_faults_proc = bench_median(sm.run_f_proc, sm.nrun);
    res->run_faults_fp = bench_median(sm.run_f_fp, sm.nrun);
    if (res->wrong)
        b->failed = true;
    samples_free(&sm);
}

/* ------------------------------------------------------------------------ */
/* One expert size                                                          */
/* ------------------------------------------------------------------------ */

static void mark(moe_bench_t *b, unsigned si, moe_strategy_t s, moe_outcome_t outcome,
                 const char *note)
{
    moe_result_t *r = &b->result[si][s];

    if (!b->cfg.want[s])
        return;
    r->outcome = outcome;
    snprintf(r->note, sizeof(r->note), "%s", note);
    if (outcome == MOE_FAILED)
        b->failed = true;
}

/* True if @need bytes (+ the margin) are available; else @note says why not. */
static bool mem_fits(uint64_t need, const char *what, const char *sz, char *note, size_t len)
{
    uint64_t avail = moe_mem_available();

    if (avail == 0 || avail >= need + MEM_MARGIN)
        return true;
    snprintf(note, len, "needs about %.1f GiB of memory, %.1f GiB available", (double)need / GIB,
             (double)avail / GIB);
    moe_err("[%s] %s skipped: it %s (MemAvailable, keeping %" PRIu64 " MiB spare)", sz, what, note,
            (uint64_t)(MEM_MARGIN / MIB));
    return false;
}

static bool wanted_any(const moe_bench_t *b, moe_strategy_t first, moe_strategy_t last)
{
    for (unsigned s = first; s <= last; s++)
        if (b->cfg.want[s])
            return true;
    return false;
}

static void size_dram(moe_bench_t *b, unsigned si, const moe_plan_t *plan, const char *sz)
{
    uint64_t size = b->cfg.size[si], all = (uint64_t)b->cfg.experts * size;
    moe_store_t *s = NULL;
    char note[160];
    double t;

    if (!b->cfg.want[MOE_DRAM])
        return;
    if (!mem_fits(all, "local DRAM", sz, note, sizeof(note))) {
        mark(b, si, MOE_DRAM, MOE_SKIPPED, note);
        return;
    }
    t = moe_now();
    if (moe_store_dram_create(b->cfg.experts, size, &s) != FP_OK) {
        mark(b, si, MOE_DRAM, MOE_FAILED, "cannot allocate the experts");
        return;
    }
    fprintf(stderr, "%s: [%s] experts written to local memory in %.1f s\n", MOE_PROG, sz,
            moe_now() - t);
    run_strategy(b, si, MOE_DRAM, plan, s);
    moe_store_destroy(s);
}

static void size_disk(moe_bench_t *b, unsigned si, const moe_plan_t *plan, const char *sz)
{
    uint64_t size = b->cfg.size[si];
    moe_disk_file_t *file = NULL;
    moe_store_t *s = NULL;
    fp_status_t status;
    char note[160];
    double t;

    if (!wanted_any(b, MOE_MMAP, MOE_DIRECT))
        return;
    if (!mem_fits((uint64_t)plan->slots * size, "the disk strategies", sz, note, sizeof(note))) {
        mark(b, si, MOE_MMAP, MOE_SKIPPED, note);
        mark(b, si, MOE_DIRECT, MOE_SKIPPED, note);
        return;
    }
    t = moe_now();
    status = moe_disk_file_create(b->disk_dir, b->cfg.experts, size, b->cfg.drop_global, &file);
    if (status != FP_OK) {
        bool space = status == FP_ERR_NO_SPACE;

        snprintf(note, sizeof(note), "%s",
                 space ? "not enough disk space (use --dir)" : "cannot write the experts' file");
        mark(b, si, MOE_MMAP, space ? MOE_SKIPPED : MOE_FAILED, note);
        mark(b, si, MOE_DIRECT, space ? MOE_SKIPPED : MOE_FAILED, note);
        return;
    }
    fprintf(stderr, "%s: [%s] experts' file written (%s) in %.1f s\n", MOE_PROG, sz, file->path,
            moe_now() - t);
    if (b->cfg.want[MOE_MMAP]) {
        if (moe_store_mmap_create(file, plan->slots, &s) == FP_OK) {
            run_strategy(b, si, MOE_MMAP, plan, s);
            moe_store_destroy(s);
        } else {
            mark(b, si, MOE_MMAP, MOE_FAILED, "out of memory");
        }
    }
    if (b->cfg.want[MOE_DIRECT]) {
        status = moe_store_direct_create(file, plan->slots, &s);
        if (status == FP_OK) {
            run_strategy(b, si, MOE_DIRECT, plan, s);
            moe_store_destroy(s);
        } else if (status == FP_ERR_UNSUPPORTED) {
            mark(b, si, MOE_DIRECT, MOE_SKIPPED,
                 "the file system of --dir does not support O_DIRECT");
        } else {
            mark(b, si, MOE_DIRECT, MOE_FAILED, "cannot set up O_DIRECT reads");
        }
    }
    moe_disk_file_destroy(file);
}

static void size_memcached(moe_bench_t *b, unsigned si, const moe_plan_t *plan, const char *sz)
{
    uint64_t size = b->cfg.size[si], all = (uint64_t)b->cfg.experts * size;
    moe_store_t *s = NULL;
    char note[160];
    double t;

    if (!b->cfg.want[MOE_MEMCACHED])
        return;
    if (!b->have_memcached) {
        mark(b, si, MOE_MEMCACHED, MOE_SKIPPED, "memcached not found (use --memcached PATH)");
        return;
    }
    if (!mem_fits(moe_store_mc_server_bytes(all) + (uint64_t)plan->slots * size, "memcached", sz,
                  note, sizeof(note))) {
        mark(b, si, MOE_MEMCACHED, MOE_SKIPPED, note);
        return;
    }
    t = moe_now();
    if (moe_store_mc_create(b->memcached, b->cfg.experts, size, plan->slots, &s) != FP_OK) {
        mark(b, si, MOE_MEMCACHED, MOE_FAILED, "cannot start or fill memcached");
        return;
    }
    fprintf(stderr, "%s: [%s] memcached started and filled in %.1f s\n", MOE_PROG, sz,
            moe_now() - t);
    run_strategy(b, si, MOE_MEMCACHED, plan, s);
    moe_store_destroy(s);
}

/* One farpool region (granule @granule) and the strategies that use it. */
static void size_fp_region(moe_bench_t *b, unsigned si, const moe_plan_t *plan, const char *sz,
                           const char *addr, pid_t node, uint32_t granule)
{
    moe_strategy_t first = granule == 4096 ? MOE_FP4K : MOE_FP2M;
    moe_strategy_t last = granule == 4096 ? MOE_FP4K : MOE_FP2M_HINT;
    moe_fp_data_t *data = NULL;
    char name[64];
    double t;

    if (!wanted_any(b, first, last))
        return;
    snprintf(name, sizeof(name), "moe-%s-%s", sz, granule == 4096 ? "4k" : "2m");
    t = moe_now();
    if (moe_fp_data_create(addr, node, name, granule, b->cfg.experts, b->cfg.size[si], &data) !=
        FP_OK) {
        for (unsigned s = first; s <= last; s++)
            mark(b, si, (moe_strategy_t)s, MOE_FAILED, "cannot create or fill the region");
        return;
    }
    fprintf(stderr, "%s: [%s] farpool region %s written in %.1f s\n", MOE_PROG, sz, name,
            moe_now() - t);
    for (unsigned s = first; s <= last; s++) {
        moe_store_t *store = NULL;

        if (!b->cfg.want[s])
            continue;
        /* 4 KiB is "no prefetch": read-ahead off. 2 MiB runs with farpool's default, on. */
        if (moe_store_fp_create(data, plan->slots, b->cfg.cache_slack, s != MOE_FP4K,
                                s == MOE_FP2M_HINT, &store) != FP_OK) {
            mark(b, si, (moe_strategy_t)s, MOE_FAILED, "out of memory");
            continue;
        }
        run_strategy(b, si, (moe_strategy_t)s, plan, store);
        moe_store_destroy(store);
    }
    moe_fp_data_destroy(data);
}

static void size_farpool(moe_bench_t *b, unsigned si, const moe_plan_t *plan, const char *sz)
{
    uint64_t size = b->cfg.size[si], all = (uint64_t)b->cfg.experts * size;
    uint64_t capacity = (all + NODE_SLAB - 1) / NODE_SLAB * NODE_SLAB + NODE_SLAB;
    uint64_t meta = all / 4096 * BLOCK_META;
    char note[160], addr[96];
    pid_t node = -1;

    if (!wanted_any(b, MOE_FP4K, MOE_FP2M_HINT))
        return;
    if (!b->have_farpoold) {
        for (unsigned s = MOE_FP4K; s <= MOE_FP2M_HINT; s++)
            mark(b, si, (moe_strategy_t)s, MOE_SKIPPED, "farpoold not found (use --farpoold)");
        return;
    }
    if (!mem_fits(all + (uint64_t)plan->slots * size + b->cfg.cache_slack + meta, "farpool", sz,
                  note, sizeof(note))) {
        for (unsigned s = MOE_FP4K; s <= MOE_FP2M_HINT; s++)
            mark(b, si, (moe_strategy_t)s, MOE_SKIPPED, note);
        return;
    }
    if (moe_node_start(b->farpoold, capacity, b->tmp_dir, addr, sizeof(addr), &node) != FP_OK) {
        for (unsigned s = MOE_FP4K; s <= MOE_FP2M_HINT; s++)
            mark(b, si, (moe_strategy_t)s, MOE_FAILED, "cannot start farpoold");
        return;
    }
    size_fp_region(b, si, plan, sz, addr, node, 4096);
    size_fp_region(b, si, plan, sz, addr, node, 2u << 20);
    moe_child_stop(node);
}

/* Every strategy that agrees on every expert must agree on the run's checksum too. */
static void size_checksums(moe_bench_t *b, unsigned si, const char *sz)
{
    const moe_result_t *first = NULL;
    bool agree = true;

    for (unsigned s = 0; s < MOE_NSTRATEGIES; s++) {
        moe_result_t *r = &b->result[si][s];

        if (r->outcome != MOE_MEASURED || r->truncated)
            continue;
        if (first == NULL) {
            first = r;
        } else if (r->checksum != first->checksum) {
            moe_err("[%s] %s: checksum %016" PRIx64 " differs from %016" PRIx64, sz,
                    moe_strategy_label[s], r->checksum, first->checksum);
            r->wrong = true;
            b->failed = true;
            agree = false;
        }
        agree = agree && !r->wrong;
    }
    if (first != NULL)
        printf("Checksum of the runs at %s: %016" PRIx64 "%s.\n", sz, first->checksum,
               agree ? " (all strategies agree)" : " (**strategies DISAGREE**: wrong data above)");
}

static void run_size(moe_bench_t *b, unsigned si)
{
    uint64_t size = b->cfg.size[si];
    unsigned slots;
    moe_plan_t plan;
    char sz[32];

    moe_size_str(size, sz, sizeof(sz));
    if (b->cfg.budget_is_bytes) {
        uint64_t n = b->cfg.budget / size;

        slots = n > b->cfg.experts ? b->cfg.experts : (unsigned)n;
    } else {
        slots = (unsigned)b->cfg.budget;
    }
    if (slots < b->cfg.top_k) {
        snprintf(b->info.size_note[si], sizeof(b->info.size_note[si]),
                 "the budget holds %u experts of %s, a batch needs %u", slots, sz, b->cfg.top_k);
        moe_err("[%s] skipped: %s", sz, b->info.size_note[si]);
        b->info.slots[si] = 0;
        return;
    }
    b->info.slots[si] = slots;
    if (slots >= b->cfg.experts)
        moe_err("[%s] note: the budget holds all %u experts: after the first loads nothing is "
                "unloaded",
                sz, b->cfg.experts);
    if (moe_plan_init(&plan, &b->trace, slots) != FP_OK) {
        moe_err("out of memory");
        b->failed = true;
        return;
    }
    fprintf(stderr, "%s: [%s] %u experts, budget %u, %u batches: %u loads and %u unloads per run\n",
            MOE_PROG, sz, b->cfg.experts, slots, b->cfg.batches, plan.loads, plan.unloads);
    memset(b->ref_have, 0, b->cfg.experts * sizeof(*b->ref_have));
    size_dram(b, si, &plan, sz);
    size_disk(b, si, &plan, sz);
    size_memcached(b, si, &plan, sz);
    size_farpool(b, si, &plan, sz);
    moe_plan_cleanup(&plan);
}

/* ------------------------------------------------------------------------ */
/* Setup and main                                                           */
/* ------------------------------------------------------------------------ */

/* farpoold: --farpoold, else next to this program, the directory above it, PATH. */
static void find_farpoold(moe_bench_t *b)
{
    if (b->cfg.farpoold != NULL)
        b->have_farpoold = bench_find_program(b->cfg.farpoold, b->farpoold, sizeof(b->farpoold));
    else
        b->have_farpoold = bench_farpoold_find(b->farpoold, sizeof(b->farpoold));
}

static int setup(moe_bench_t *b)
{
    const moe_config_t *cfg = &b->cfg;
    struct stat st;

    if (cfg->farpoold != NULL &&
        !bench_find_program(cfg->farpoold, b->farpoold, sizeof(b->farpoold)))
        return usage_error("--farpoold %s: not an executable program", cfg->farpoold);
    if (cfg->memcached != NULL &&
        !bench_find_program(cfg->memcached, b->memcached, sizeof(b->memcached)))
        return usage_error("--memcached %s: not an executable program", cfg->memcached);
    if (cfg->dir != NULL && (stat(cfg->dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        return usage_error("--dir %s: not a directory", cfg->dir);
    if (cfg->out_dir != NULL && (stat(cfg->out_dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        return usage_error("--out-dir %s: not a directory", cfg->out_dir);
    find_farpoold(b);
    if (!b->have_farpoold && wanted_any(b, MOE_FP4K, MOE_FP2M_HINT))
        moe_err("farpoold not found (use --farpoold PATH): the farpool strategies are skipped");
    b->have_memcached = bench_find_program(cfg->memcached ? cfg->memcached : "memcached",
                                           b->memcached, sizeof(b->memcached));
    if (!b->have_memcached && cfg->want[MOE_MEMCACHED])
        moe_err("memcached not found (install it or use --memcached PATH): that strategy is "
                "skipped");

    snprintf(b->tmp_dir, sizeof(b->tmp_dir), "/tmp/farpool-moe.XXXXXX");
    if (mkdtemp(b->tmp_dir) == NULL) {
        moe_err("mkdtemp %s: %s", b->tmp_dir, strerror(errno));
        return EXIT_FAIL;
    }
    moe_dir_register(b->tmp_dir);
    if (cfg->dir != NULL) {
        snprintf(b->disk_dir, sizeof(b->disk_dir), "%s", cfg->dir);
    } else if (wanted_any(b, MOE_MMAP, MOE_DIRECT)) {
        snprintf(b->disk_dir, sizeof(b->disk_dir), "%s/farpool-moe.XXXXXX", DEFAULT_DIR_PARENT);
        if (mkdtemp(b->disk_dir) == NULL) {
            moe_err("cannot create a directory in %s for the experts' file: %s (use --dir)",
                    DEFAULT_DIR_PARENT, strerror(errno));
            return EXIT_FAIL;
        }
        moe_dir_register(b->disk_dir);
    }
    if (moe_trace_init(&b->trace, cfg->experts, cfg->top_k, cfg->batches, cfg->skew, cfg->seed) !=
        FP_OK) {
        moe_err("out of memory");
        return EXIT_FAIL;
    }
    b->result = calloc(cfg->nsizes, sizeof(*b->result));
    b->ref_have = calloc(cfg->experts, sizeof(*b->ref_have));
    b->ref_bits = calloc(cfg->experts, sizeof(*b->ref_bits));
    if (b->result == NULL || b->ref_have == NULL || b->ref_bits == NULL) {
        moe_err("out of memory");
        return EXIT_FAIL;
    }
    b->info.experts = cfg->experts;
    b->info.top_k = cfg->top_k;
    b->info.batches = cfg->batches;
    b->info.runs = cfg->runs;
    b->info.skew = cfg->skew;
    b->info.seed = cfg->seed;
    b->info.nsizes = cfg->nsizes;
    memcpy(b->info.size, cfg->size, sizeof(cfg->size));
    b->info.result = b->result;
    b->info.is_default = cfg->is_default;
    return EXIT_OK;
}

static void print_header(const moe_bench_t *b)
{
    const moe_config_t *cfg = &b->cfg;
    char budget[32];

    if (cfg->budget_is_bytes)
        moe_size_str(cfg->budget, budget, sizeof(budget));
    else
        snprintf(budget, sizeof(budget), "%" PRIu64 " experts", cfg->budget);
    printf("## farpool-bench moe\n\n");
    printf("%u experts, sizes", cfg->experts);
    for (unsigned i = 0; i < cfg->nsizes; i++) {
        char sz[32];

        moe_size_str(cfg->size[i], sz, sizeof(sz));
        printf("%s %s", i ? "," : "", sz);
    }
    printf("; top-%u of a Zipf(%.2f) router, seed %" PRIu64 ", %u batches, %u tokens per "
           "expert; budget %s; %u run%s; page cache %s; %.1f GiB available at start.\n",
           cfg->top_k, cfg->skew, cfg->seed, cfg->batches, cfg->tokens, budget, cfg->runs,
           cfg->runs == 1 ? "" : "s",
           cfg->drop_global ? "dropped before each disk run"
                            : "of the file evicted before each "
                              "disk run",
           (double)moe_mem_available() / GIB);
    fflush(stdout);
}

int bench_moe_main(int argc, char **argv)
{
    moe_bench_t *b = calloc(1, sizeof(*b));
    char csv[PATH_MAX + 8], png[PATH_MAX + 8], prefix[PATH_MAX];
    double t0 = moe_now();
    int rc;

    if (b == NULL) {
        moe_err("out of memory");
        return EXIT_FAIL;
    }
    rc = parse_options(argc, argv, &b->cfg);
    if (rc != EXIT_OK) {
        free(b);
        return rc < 0 ? EXIT_OK : rc;
    }
    bench_init(MOE_PROG);
    moe_proc_init();
    rc = setup(b);
    if (rc != EXIT_OK)
        goto out;
    if (b->cfg.out_dir != NULL)
        snprintf(prefix, sizeof(prefix), "%s/%s", b->cfg.out_dir, b->cfg.out);
    else
        snprintf(prefix, sizeof(prefix), "%s", b->cfg.out);
    snprintf(csv, sizeof(csv), "%s.csv", prefix);
    snprintf(png, sizeof(png), "%s.png", prefix);

    print_header(b);
    for (unsigned si = 0; si < b->cfg.nsizes; si++) {
        char sz[32];

        run_size(b, si);
        moe_size_str(b->cfg.size[si], sz, sizeof(sz));
        moe_report_table(stdout, &b->info, si);
        size_checksums(b, si, sz);
        fflush(stdout);
    }
    b->info.wall_s = moe_now() - t0;
    moe_report_targets(stdout, &b->info);
    if (moe_report_csv(csv, &b->info))
        printf("\nCSV: %s\n", csv);
    else
        b->failed = true;
    if (moe_report_plot(png, &b->info) == 0)
        printf("Plot: %s\n", png);
    printf("Wall time: %.1f s.\n", moe_now() - t0);
    rc = b->failed ? EXIT_FAIL : EXIT_OK;
    if (b->failed)
        moe_err("some strategies failed or computed wrong results: see above");

out:
    moe_proc_cleanup();
    moe_trace_cleanup(&b->trace);
    free(b->result);
    free(b->ref_have);
    free(b->ref_bits);
    free(b);
    return rc;
}
