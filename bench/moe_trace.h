/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench moe`, the workload: the router's trace, the plan of loads and
 * unloads that a resident set bounded by the budget makes of it, the bytes of
 * every expert, and the compute done on a loaded expert.
 *
 * Router. Per batch, top-k distinct experts drawn from a Zipf-like skew:
 * expert of rank r (0 = hottest) has weight 1 / (r + 1)^skew, the rank of each
 * expert is a seeded permutation, and the k picks are drawn one after another
 * without replacement. The trace depends only on (experts, top-k, batches,
 * skew, seed): every strategy and every expert size replays the same one.
 *
 * Plan. A resident set of at most `slots` experts, LRU: an expert already
 * resident costs no load; loading one that is not evicts the least recently
 * used experts that the current batch does not use (the unloads), then loads
 * it. The plan is that sequence of UNLOAD and LOAD operations per batch,
 * computed once, so every strategy does exactly the same work.
 *
 * Bytes. Expert e is a run of float32 weights in [-1, 1): a 64 KiB tile of
 * hashed values of its own, repeated, with word 0 of every 4 KiB page replaced
 * by a tag that hashes (e, page). So every page of every expert differs, and a
 * page that lands in the wrong place changes the compute's result.
 *
 * Compute. A small GEMV: the expert's weights times the vectors of the
 * batch's tokens routed to it (--tokens; each a fixed 16-float vector, a
 * rotation of one), in 16 float accumulators per token (one per lane, in a
 * fixed order, so the result is bit-for-bit the same whoever loaded the bytes).
 * Each weight is used once per token: the compute an expert does is what
 * prefetching the next experts can hide behind. Its bits are
 * compared with the first result seen for that expert and folded into the
 * run's checksum.
 *
 * Thread safety: none needed; the benchmark runs all of this on one thread.
 */
#ifndef FP_BENCH_MOE_TRACE_H
#define FP_BENCH_MOE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <farpool/status.h>

#define MOE_PAGE        4096u  /* the unit a load touches and a tag marks */
#define MOE_TILE_WORDS  16384u /* 64 KiB of float32 per expert, repeated */
#define MOE_LANES       16u    /* compute vector length, floats */
#define MOE_TOKENS_MAX  16u    /* tokens routed to an expert per batch, at most */
#define MOE_EXPERTS_MAX 1024u  /* experts are uint16_t in the plan */
#define MOE_TOPK_MAX    16u

/* A seeded generator (splitmix64): small, fast, the same everywhere. */
typedef struct moe_rng {
    uint64_t state;
} moe_rng_t;

void moe_rng_seed(moe_rng_t *rng, uint64_t seed);
uint64_t moe_rng_next(moe_rng_t *rng);
/* Uniform in [0, 1). */
double moe_rng_unit(moe_rng_t *rng);

/* The router's picks: batches x top_k distinct experts. */
typedef struct moe_trace {
    unsigned experts, top_k, batches;
    double skew;
    uint64_t seed;
    uint16_t *pick; /* pick[t * top_k + j]: j-th expert of batch t; owned */
} moe_trace_t;

/* Draw the trace; FP_ERR_NO_MEMORY or FP_OK. Free with moe_trace_cleanup(). */
fp_status_t moe_trace_init(moe_trace_t *trace, unsigned experts, unsigned top_k, unsigned batches,
                           double skew, uint64_t seed);
void moe_trace_cleanup(moe_trace_t *trace);

/* True if expert @e is one of batch @t's picks. */
bool moe_trace_uses(const moe_trace_t *trace, unsigned t, unsigned e);

typedef enum moe_op_kind { MOE_OP_UNLOAD = 0, MOE_OP_LOAD = 1 } moe_op_kind_t;

typedef struct moe_op {
    uint16_t kind; /* moe_op_kind_t */
    uint16_t expert;
} moe_op_t;

/* What the LRU resident set makes of a trace with room for @slots experts. */
typedef struct moe_plan {
    const moe_trace_t *trace; /* not owned */
    unsigned slots;
    moe_op_t *ops;       /* all operations in order; owned */
    unsigned *first;     /* batch t's ops are ops[first[t] .. first[t+1]); owned */
    unsigned loads;      /* LOAD ops in the plan */
    unsigned unloads;    /* UNLOAD ops */
    unsigned max_loaded; /* most experts resident at once */
} moe_plan_t;

/* @slots >= trace->top_k. FP_ERR_NO_MEMORY or FP_OK; free with moe_plan_cleanup(). */
fp_status_t moe_plan_init(moe_plan_t *plan, const moe_trace_t *trace, unsigned slots);
void moe_plan_cleanup(moe_plan_t *plan);

/* The bytes of the experts. Holds the tile of the last expert asked for. */
typedef struct moe_pattern {
    uint32_t expert; /* whose tile is in tile[]; UINT32_MAX: none */
    float tile[MOE_TILE_WORDS];
} moe_pattern_t;

void moe_pattern_init(moe_pattern_t *pat);

/*
 * Write bytes [@off, @off + @len) of expert @e into @buf. @off and @len are
 * multiples of MOE_PAGE.
 */
void moe_pattern_fill(moe_pattern_t *pat, uint32_t e, uint64_t off, void *buf, size_t len);

/* The tag word 0 of page @page of expert @e holds. */
float moe_pattern_tag(uint32_t e, uint64_t page);

/*
 * First page of expert @e (its @len bytes at @p) whose tag is wrong, for the
 * diagnosis of a wrong result; UINT64_MAX if every tag is right.
 */
uint64_t moe_pattern_first_bad_page(uint32_t e, const void *p, uint64_t len);

/*
 * Setting the experts up (untimed): @fn(@arg, thread, pat, scratch, e) is
 * called once for every expert e, on up to MOE_FILL_THREADS threads (expert e
 * on thread e % threads), each with its own pattern and @scratch_len bytes of
 * scratch memory. The first error stops the others at their next expert and
 * is returned (@fn says what it was). Filling is bound by first touches of
 * new memory, here and in the servers: two threads halve the DRAM fill and
 * help memcached and farpoold a little (measured on a 2-vCPU guest).
 */
#define MOE_FILL_THREADS 2u

typedef fp_status_t (*moe_fill_func_t)(void *arg, unsigned thread, moe_pattern_t *pat,
                                       uint8_t *scratch, unsigned e);

fp_status_t moe_fill_experts(unsigned experts, size_t scratch_len, moe_fill_func_t fn, void *arg);

/* The compute: the @len bytes at @w (float32, @len % 64 == 0) times @tokens vectors. */
double moe_compute(const void *w, uint64_t len, unsigned tokens);

/*
 * The load's "touch": read one word of every 4 KiB page of [@p, @p + @len),
 * in order, so every page is present afterwards; returns their sum (fold it
 * into something visible so the reads stay).
 */
uint64_t moe_touch(const void *p, uint64_t len);

/* Fold a batch's result for one expert into a running checksum. */
uint64_t moe_checksum_fold(uint64_t sum, unsigned batch, unsigned expert, double result);

#endif /* FP_BENCH_MOE_TRACE_H */
