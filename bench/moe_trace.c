/* SPDX-License-Identifier: MIT */
/* `farpool-bench moe`, the workload: router, plan, bytes, compute; see moe_trace.h. */
#include "moe_trace.h"

#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GOLDEN         0x9e3779b97f4a7c15ull
#define TILE_SALT      0x7f4a7c159e3779b9ull /* tile words and page tags hash apart */
#define TAG_SALT       0xd1b54a32d192ed03ull
#define WORDS_PER_PAGE (MOE_PAGE / 4u)
#define PAGES_PER_TILE (MOE_TILE_WORDS / WORDS_PER_PAGE)

/* splitmix64's finaliser: a good 64-bit mix. */
static uint64_t mix64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void moe_rng_seed(moe_rng_t *rng, uint64_t seed)
{
    rng->state = seed;
}

uint64_t moe_rng_next(moe_rng_t *rng)
{
    rng->state += GOLDEN;
    return mix64(rng->state);
}

double moe_rng_unit(moe_rng_t *rng)
{
    return (double)(moe_rng_next(rng) >> 11) / 9007199254740992.0; /* 2^53 */
}

/* ------------------------------------------------------------------------ */
/* The router                                                               */
/* ------------------------------------------------------------------------ */

fp_status_t moe_trace_init(moe_trace_t *trace, unsigned experts, unsigned top_k, unsigned batches,
                           double skew, uint64_t seed)
{
    double *weight = malloc(experts * sizeof(*weight));
    unsigned *rank = malloc(experts * sizeof(*rank));
    bool *taken = malloc(experts * sizeof(*taken));
    moe_rng_t rng;

    memset(trace, 0, sizeof(*trace));
    trace->pick = malloc((size_t)batches * top_k * sizeof(*trace->pick));
    if (weight == NULL || rank == NULL || taken == NULL || trace->pick == NULL) {
        free(weight);
        free(rank);
        free(taken);
        free(trace->pick);
        trace->pick = NULL;
        return FP_ERR_NO_MEMORY;
    }
    trace->experts = experts;
    trace->top_k = top_k;
    trace->batches = batches;
    trace->skew = skew;
    trace->seed = seed;

    /* Which expert has which popularity: a seeded shuffle of the ranks. */
    moe_rng_seed(&rng, seed);
    for (unsigned e = 0; e < experts; e++)
        rank[e] = e;
    for (unsigned e = experts - 1; e > 0; e--) {
        unsigned j = (unsigned)(moe_rng_next(&rng) % (e + 1));
        unsigned tmp = rank[e];

        rank[e] = rank[j];
        rank[j] = tmp;
    }
    for (unsigned e = 0; e < experts; e++)
        weight[e] = 1.0 / pow((double)rank[e] + 1.0, skew);

    for (unsigned t = 0; t < batches; t++) {
        uint16_t *pick = trace->pick + (size_t)t * top_k;

        memset(taken, 0, experts * sizeof(*taken));
        for (unsigned j = 0; j < top_k; j++) {
            double total = 0, u;
            unsigned chosen = experts;

            /* Drawn without replacement: this batch's picks so far are out. */
            for (unsigned e = 0; e < experts; e++)
                if (!taken[e])
                    total += weight[e];
            u = moe_rng_unit(&rng) * total;
            for (unsigned e = 0; e < experts; e++) {
                if (taken[e])
                    continue;
                chosen = e; /* the last one left if rounding runs u past the end */
                if (u < weight[e])
                    break;
                u -= weight[e];
            }
            taken[chosen] = true;
            pick[j] = (uint16_t)chosen;
        }
    }
    free(weight);
    free(rank);
    free(taken);
    return FP_OK;
}

void moe_trace_cleanup(moe_trace_t *trace)
{
    free(trace->pick);
    trace->pick = NULL;
}

bool moe_trace_uses(const moe_trace_t *trace, unsigned t, unsigned e)
{
    const uint16_t *pick = trace->pick + (size_t)t * trace->top_k;

    for (unsigned j = 0; j < trace->top_k; j++)
        if (pick[j] == e)
            return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* The plan: an LRU resident set of `slots` experts                         */
/* ------------------------------------------------------------------------ */

fp_status_t moe_plan_init(moe_plan_t *plan, const moe_trace_t *trace, unsigned slots)
{
    unsigned experts = trace->experts, k = trace->top_k, nres = 0, n = 0;
    /* At most one LOAD and one UNLOAD per pick. */
    size_t max_ops = (size_t)trace->batches * k * 2;
    uint64_t *last_use = calloc(experts, sizeof(*last_use)); /* 0: not resident */
    uint64_t clock = 0;

    memset(plan, 0, sizeof(*plan));
    plan->ops = malloc(max_ops * sizeof(*plan->ops));
    plan->first = malloc(((size_t)trace->batches + 1) * sizeof(*plan->first));
    if (last_use == NULL || plan->ops == NULL || plan->first == NULL) {
        free(last_use);
        moe_plan_cleanup(plan);
        return FP_ERR_NO_MEMORY;
    }
    plan->trace = trace;
    plan->slots = slots;
    for (unsigned t = 0; t < trace->batches; t++) {
        const uint16_t *pick = trace->pick + (size_t)t * k;

        plan->first[t] = n;
        for (unsigned j = 0; j < k; j++) {
            unsigned e = pick[j];

            if (last_use[e] != 0) {
                last_use[e] = ++clock;
                continue;
            }
            while (nres >= slots) {
                /* The least recently used expert this batch does not use. */
                unsigned victim = experts;

                for (unsigned v = 0; v < experts; v++) {
                    if (last_use[v] == 0 || moe_trace_uses(trace, t, v))
                        continue;
                    if (victim == experts || last_use[v] < last_use[victim])
                        victim = v;
                }
                /* slots >= k: someone outside this batch is always resident here. */
                plan->ops[n++] = (moe_op_t){MOE_OP_UNLOAD, (uint16_t)victim};
                plan->unloads++;
                last_use[victim] = 0;
                nres--;
            }
            plan->ops[n++] = (moe_op_t){MOE_OP_LOAD, (uint16_t)e};
            plan->loads++;
            last_use[e] = ++clock;
            nres++;
            if (nres > plan->max_loaded)
                plan->max_loaded = nres;
        }
    }
    plan->first[trace->batches] = n;
    free(last_use);
    return FP_OK;
}

void moe_plan_cleanup(moe_plan_t *plan)
{
    free(plan->ops);
    free(plan->first);
    plan->ops = NULL;
    plan->first = NULL;
}

/* ------------------------------------------------------------------------ */
/* The bytes of the experts                                                 */
/* ------------------------------------------------------------------------ */

/* A float in [-1, 1) with 24 significant bits, from a hash: exactly representable. */
static float hash_weight(uint64_t h)
{
    int32_t k = (int32_t)((h >> 40) & 0xffffff) - (1 << 23);

    return (float)k / 8388608.0f;
}

void moe_pattern_init(moe_pattern_t *pat)
{
    pat->expert = UINT32_MAX;
}

float moe_pattern_tag(uint32_t e, uint64_t page)
{
    return hash_weight(mix64(TAG_SALT ^ ((uint64_t)e << 40) ^ page));
}

void moe_pattern_fill(moe_pattern_t *pat, uint32_t e, uint64_t off, void *buf, size_t len)
{
    uint8_t *out = buf;
    uint64_t page = off / MOE_PAGE;

    if (pat->expert != e) {
        for (uint32_t i = 0; i < MOE_TILE_WORDS; i++)
            pat->tile[i] = hash_weight(mix64(TILE_SALT ^ ((uint64_t)e << 32) ^ i));
        pat->expert = e;
    }
    for (size_t done = 0; done < len; done += MOE_PAGE, page++) {
        float tag = moe_pattern_tag(e, page);

        memcpy(out + done, pat->tile + (page % PAGES_PER_TILE) * WORDS_PER_PAGE, MOE_PAGE);
        memcpy(out + done, &tag, sizeof(tag));
    }
}

uint64_t moe_pattern_first_bad_page(uint32_t e, const void *p, uint64_t len)
{
    const uint8_t *bytes = p;

    for (uint64_t page = 0; page < len / MOE_PAGE; page++) {
        float tag = moe_pattern_tag(e, page), got;

        memcpy(&got, bytes + page * MOE_PAGE, sizeof(got));
        if (memcmp(&tag, &got, sizeof(got)) != 0)
            return page;
    }
    return UINT64_MAX;
}

/* ------------------------------------------------------------------------ */
/* Filling, on a few threads                                                */
/* ------------------------------------------------------------------------ */

typedef struct fill_shared {
    unsigned experts, threads; /* expert e belongs to thread e % threads */
    size_t scratch_len;
    moe_fill_func_t fn;
    void *arg;
    atomic_int failed; /* an fp_status_t; FP_OK while none failed */
    sem_t done;        /* posted by each started thread as its very last step */
} fill_shared_t;

typedef struct fill_thread {
    fill_shared_t *sh;
    unsigned first, last; /* the residues (thread indices) this thread does */
    pthread_t tid;
} fill_thread_t;

static void fill_fail(fill_shared_t *sh, fp_status_t status)
{
    int ok = FP_OK;

    atomic_compare_exchange_strong(&sh->failed, &ok, status);
}

static void *fill_main(void *p)
{
    fill_thread_t *th = p;
    fill_shared_t *sh = th->sh;
    moe_pattern_t *pat = malloc(sizeof(*pat));
    uint8_t *scratch = sh->scratch_len > 0 ? malloc(sh->scratch_len) : NULL;

    if (pat == NULL || (sh->scratch_len > 0 && scratch == NULL)) {
        fill_fail(sh, FP_ERR_NO_MEMORY);
        goto out;
    }
    moe_pattern_init(pat);
    for (unsigned r = th->first; r <= th->last; r++) {
        for (unsigned e = r; e < sh->experts && atomic_load(&sh->failed) == FP_OK;
             e += sh->threads) {
            fp_status_t status = sh->fn(sh->arg, r, pat, scratch, e);

            if (status != FP_OK)
                fill_fail(sh, status);
        }
    }
out:
    free(pat);
    free(scratch);
    return NULL;
}

/*
 * A started fill thread. Detached, so that an exit from a signal handler
 * while it runs leaves no thread behind to join (ThreadSanitizer says so).
 */
static void *fill_thread_main(void *p)
{
    fill_thread_t *th = p;

    fill_main(th);
    sem_post(&th->sh->done); /* the last touch of anything shared */
    return NULL;
}

fp_status_t moe_fill_experts(unsigned experts, size_t scratch_len, moe_fill_func_t fn, void *arg)
{
    fill_thread_t th[MOE_FILL_THREADS];
    fill_shared_t sh;
    pthread_attr_t attr;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = MOE_FILL_THREADS, started = 1;

    if (cpus > 0 && (unsigned long)cpus < n)
        n = (unsigned)cpus;
    if (n > experts)
        n = experts;
    if (n == 0 || (n > 1 && sem_init(&sh.done, 0, 0) != 0))
        n = 1;
    sh.experts = experts;
    sh.threads = n;
    sh.scratch_len = scratch_len;
    sh.fn = fn;
    sh.arg = arg;
    atomic_init(&sh.failed, FP_OK);
    /* Threads 1.. are started; this one is thread 0 and does the part of any that did not start. */
    if (n > 1) {
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        for (; started < n; started++) {
            th[started] = (fill_thread_t){&sh, started, started, 0};
            if (pthread_create(&th[started].tid, &attr, fill_thread_main, &th[started]) != 0)
                break;
        }
        pthread_attr_destroy(&attr);
    }
    th[0] = (fill_thread_t){&sh, 0, 0, 0};
    fill_main(&th[0]);
    if (started < n) {
        th[0] = (fill_thread_t){&sh, started, n - 1, 0};
        fill_main(&th[0]);
    }
    if (n > 1) {
        for (unsigned i = 1; i < started; i++)
            while (sem_wait(&sh.done) != 0)
                ; /* EINTR */
        sem_destroy(&sh.done);
    }
    return (fp_status_t)atomic_load(&sh.failed);
}

/* ------------------------------------------------------------------------ */
/* Compute, touch, checksum                                                 */
/* ------------------------------------------------------------------------ */

double moe_compute(const void *w, uint64_t len, unsigned tokens)
{
    /* A token: fixed, small, not all ones so every weight matters differently;
     * token t is this vector rotated by t lanes. */
    static const float v[MOE_LANES] = {0.5f,   -0.25f,  0.75f,  1.0f,   -0.5f, 0.125f,
                                       -1.0f,  0.625f,  0.375f, -0.75f, 0.25f, -0.125f,
                                       0.875f, -0.375f, 1.5f,   -0.625f};
    float x[MOE_TOKENS_MAX][MOE_LANES], acc[MOE_TOKENS_MAX][MOE_LANES];
    const float *f = w;
    double sum = 0;

    if (tokens < 1)
        tokens = 1;
    if (tokens > MOE_TOKENS_MAX)
        tokens = MOE_TOKENS_MAX;
    for (unsigned t = 0; t < tokens; t++) {
        for (unsigned l = 0; l < MOE_LANES; l++) {
            x[t][l] = v[(l + t) % MOE_LANES];
            acc[t][l] = 0;
        }
    }
    for (uint64_t i = 0; i < len / sizeof(float); i += MOE_LANES)
        for (unsigned t = 0; t < tokens; t++)
            for (unsigned l = 0; l < MOE_LANES; l++)
                acc[t][l] += f[i + l] * x[t][l];
    for (unsigned t = 0; t < tokens; t++)
        for (unsigned l = 0; l < MOE_LANES; l++)
            sum += acc[t][l];
    return sum;
}

uint64_t moe_touch(const void *p, uint64_t len)
{
    const volatile uint8_t *bytes = p;
    uint64_t sum = 0;

    for (uint64_t off = 0; off < len; off += MOE_PAGE)
        sum += *(const volatile uint64_t *)(bytes + off);
    return sum;
}

uint64_t moe_checksum_fold(uint64_t sum, unsigned batch, unsigned expert, double result)
{
    uint64_t bits;

    memcpy(&bits, &result, sizeof(bits));
    return mix64(sum * GOLDEN + (bits ^ ((uint64_t)batch << 20 | expert)));
}
