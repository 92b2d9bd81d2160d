/* SPDX-License-Identifier: MIT */
/*
 * Tests of the block table (src/client/block.c): the per-block state machine
 * the fault engine coordinates through, and its CLOCK eviction.
 *
 * The concurrent tests are written for ThreadSanitizer as much as for their
 * asserts: each block carries a payload that the fetching thread writes before
 * fp_block_fill_done() and other threads read after fp_block_claim() returned
 * PRESENT. Any missing happens-before edge in the table shows up as a TSan
 * data race on that payload or on the state itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/block.h"

#define THREADS 4

/* A prefetch takes only a block that is cold already, and clears no access bit. */
static void test_pick_cold(void **state)
{
    fp_block_table_t *t;
    fp_block_state_t was;
    uint64_t idx;

    (void)state;
    assert_int_equal(fp_block_table_create(4, &t), FP_OK);
    for (uint64_t i = 0; i < 4; i++) {
        assert_int_equal(fp_block_claim(t, i), FP_BLOCK_CLAIM_FETCH);
        fp_block_fill_done(t, i, true); /* fetched on a fault: used */
    }
    /* All in use: nothing for a guess to take, however often it looks. */
    for (int k = 0; k < 3; k++)
        assert_false(fp_block_evict_pick_cold(t, NULL, NULL, &idx, &was));
    fp_block_cool(t, 2);
    assert_true(fp_block_evict_pick_cold(t, NULL, NULL, &idx, &was));
    assert_int_equal(idx, 2);
    assert_int_equal(was, FP_BLOCK_RESIDENT);
    assert_int_equal(fp_block_state(t, 2), FP_BLOCK_EVICTING);
    fp_block_evict_done(t, 2);
    assert_false(fp_block_evict_pick_cold(t, NULL, NULL, &idx, &was));
    /* The bits it passed over are intact: a full CLOCK turn still spares each once. */
    assert_true(fp_block_evict_pick(t, NULL, NULL, NULL, &idx, &was));
    fp_block_table_destroy(t);
}

static void test_transitions(void **state)
{
    fp_block_table_t *t;
    uint64_t idx;
    fp_block_state_t was;

    (void)state;
    assert_int_equal(fp_block_table_create(0, &t), FP_ERR_INVALID_PARAM);
    assert_int_equal(fp_block_table_create(4, &t), FP_OK);
    assert_int_equal(fp_block_state(t, 2), FP_BLOCK_ABSENT);
    assert_false(fp_block_mark_dirty(t, 2));
    assert_int_equal(fp_block_claim(t, 2), FP_BLOCK_CLAIM_FETCH);
    assert_int_equal(fp_block_state(t, 2), FP_BLOCK_FETCHING);
    fp_block_fill_done(t, 2, false);
    assert_int_equal(fp_block_state(t, 2), FP_BLOCK_ABSENT);
    assert_int_equal(fp_block_claim(t, 2), FP_BLOCK_CLAIM_FETCH);
    fp_block_fill_done(t, 2, true);
    assert_int_equal(fp_block_state(t, 2), FP_BLOCK_RESIDENT);
    assert_int_equal(fp_block_claim(t, 2), FP_BLOCK_CLAIM_PRESENT);
    assert_true(fp_block_mark_dirty(t, 2));
    assert_int_equal(fp_block_state(t, 2), FP_BLOCK_DIRTY);

    /* Only block 2 is resident; it was just accessed, so CLOCK spares it once. */
    assert_true(fp_block_evict_pick(t, NULL, NULL, NULL, &idx, &was));
    assert_int_equal(idx, 2);
    assert_int_equal(was, FP_BLOCK_DIRTY);
    assert_int_equal(fp_block_state(t, 2), FP_BLOCK_WRITEBACK);
    assert_false(fp_block_evict_pick(t, NULL, NULL, NULL, &idx, &was)); /* nothing else to take */
    fp_block_writeback_done(t, 2, FP_BLOCK_WB_FAILED);
    assert_int_equal(fp_block_state(t, 2), FP_BLOCK_DIRTY);
    assert_true(fp_block_evict_pick(t, NULL, NULL, NULL, &idx, &was));
    fp_block_writeback_done(t, 2, FP_BLOCK_WB_EVICT);
    assert_int_equal(fp_block_state(t, 2), FP_BLOCK_EVICTING);
    fp_block_evict_done(t, 2);
    assert_int_equal(fp_block_state(t, 2), FP_BLOCK_ABSENT);

    /* A sync: DIRTY -> WRITEBACK -> RESIDENT. */
    assert_int_equal(fp_block_claim(t, 3), FP_BLOCK_CLAIM_FETCH);
    fp_block_fill_done(t, 3, true);
    assert_false(fp_block_writeback_begin(t, 3));
    assert_true(fp_block_mark_dirty(t, 3));
    assert_true(fp_block_writeback_begin(t, 3));
    assert_int_equal(fp_block_state(t, 3), FP_BLOCK_WRITEBACK);
    fp_block_writeback_done(t, 3, FP_BLOCK_WB_KEEP);
    assert_int_equal(fp_block_state(t, 3), FP_BLOCK_RESIDENT);
    fp_block_table_destroy(t);
    fp_block_table_destroy(NULL);
}

/* CLOCK keeps a block that is touched between sweeps; FIFO would not. */
static void test_clock_spares_used_blocks(void **state)
{
    fp_block_table_t *t;
    uint64_t idx;
    fp_block_state_t was;

    (void)state;
    assert_int_equal(fp_block_table_create(8, &t), FP_OK);
    for (uint64_t i = 0; i < 8; i++) {
        assert_int_equal(fp_block_claim(t, i), FP_BLOCK_CLAIM_FETCH);
        fp_block_fill_done(t, i, true);
    }
    /* Every block was just used: the first sweep clears all bits and takes 0. */
    assert_true(fp_block_evict_pick(t, NULL, NULL, NULL, &idx, &was));
    assert_int_equal(idx, 0);
    fp_block_evict_done(t, idx);
    /* Block 1, now the oldest (FIFO's next victim), stays hot while 2..7 go. */
    for (int round = 0; round < 6; round++) {
        fp_block_touch(t, 1);
        assert_true(fp_block_evict_pick(t, NULL, NULL, NULL, &idx, &was));
        assert_int_not_equal(idx, 1);
        assert_int_equal(was, FP_BLOCK_RESIDENT);
        assert_int_equal(idx, (uint64_t)round + 2);
        fp_block_evict_done(t, idx);
    }
    assert_int_equal(fp_block_state(t, 1), FP_BLOCK_RESIDENT);
    fp_block_table_destroy(t);
}

/* Shared state of the concurrent tests. */
typedef struct race {
    fp_block_table_t *table;
    uint64_t nblocks;
    uint64_t *payload;         /* per block: written by its fetcher only */
    _Atomic uint64_t *fetches; /* per block: fetches performed */
    pthread_barrier_t start;
    int rounds;
    int fail_every;       /* make every n-th fetch fail (0: never) */
    _Atomic uint64_t bad; /* readers that saw a wrong payload */
} race_t;

static uint64_t expected_payload(uint64_t block, uint64_t fetch)
{
    return (block << 32) | fetch;
}

/* Many threads fault on one block per round: exactly one fetches it. */
static void *one_block_worker(void *arg)
{
    race_t *r = arg;

    for (int round = 0; round < r->rounds; round++) {
        uint64_t b = (uint64_t)round % r->nblocks;

        pthread_barrier_wait(&r->start);
        for (;;) {
            if (fp_block_claim(r->table, b) == FP_BLOCK_CLAIM_FETCH) {
                uint64_t n = atomic_fetch_add(&r->fetches[b], 1) + 1;
                bool ok = r->fail_every == 0 || n % (uint64_t)r->fail_every != 0;
                if (ok)
                    r->payload[b] = expected_payload(b, n);
                fp_block_fill_done(r->table, b, ok);
                if (!ok)
                    continue; /* a failed fetch: try again like any waiter */
            }
            if (r->payload[b] != expected_payload(b, atomic_load(&r->fetches[b])))
                atomic_fetch_add(&r->bad, 1);
            break;
        }
    }
    return NULL;
}

static void run_one_block(int fail_every)
{
    pthread_t th[THREADS];
    race_t r;

    memset(&r, 0, sizeof(r));
    r.rounds = 400;
    r.nblocks = (uint64_t)r.rounds; /* a fresh block each round */
    r.fail_every = fail_every;
    assert_int_equal(fp_block_table_create(r.nblocks, &r.table), FP_OK);
    r.payload = calloc(r.nblocks, sizeof(*r.payload));
    r.fetches = calloc(r.nblocks, sizeof(*r.fetches));
    assert_non_null(r.payload);
    assert_non_null(r.fetches);
    pthread_barrier_init(&r.start, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, one_block_worker, &r), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (uint64_t b = 0; b < r.nblocks; b++) {
        uint64_t n = atomic_load(&r.fetches[b]);
        /* One successful fetch per block, plus one per injected failure. */
        if (fail_every == 0)
            assert_int_equal(n, 1);
        else
            assert_true(n >= 1 && n % (uint64_t)fail_every != 0);
        assert_int_equal(fp_block_state(r.table, b), FP_BLOCK_RESIDENT);
    }
    assert_int_equal(atomic_load(&r.bad), 0);
    pthread_barrier_destroy(&r.start);
    free(r.payload);
    free(r.fetches);
    fp_block_table_destroy(r.table);
}

static void test_concurrent_faults_share_one_fetch(void **state)
{
    (void)state;
    run_one_block(0);
}

static void test_failed_fetch_is_retried_once(void **state)
{
    (void)state;
    run_one_block(2); /* every second fetch fails: waiters retry, one at a time */
}

/*
 * Faulters and an evictor at once: eviction never takes a block that is being
 * fetched (the evictor always finds its victim in EVICTING), and successive
 * fetchers of one block, separated by evictions, write its payload in order
 * (TSan checks the happens-before chain fetch -> evict -> fetch).
 */
typedef struct stress {
    race_t r;
    _Atomic bool stop;
    _Atomic uint64_t evictions;
    _Atomic uint64_t violations; /* victims not found in EVICTING */
} stress_t;

/* The stress test gives up waiting for the evictor after this long. */
#define STRESS_LIMIT_NS (60ull * 1000 * 1000 * 1000)

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *stress_faulter(void *arg)
{
    stress_t *s = arg;
    unsigned seed = (unsigned)(uintptr_t)pthread_self();

    /* 20000 claims at least, and on until the evictor has evicted 100 times:
     * a condition, not a count reached by luck (a busy machine may give the
     * evictor no turn during the first 20000). Bounded in time. */
    uint64_t deadline = now_ns() + STRESS_LIMIT_NS;

    for (int i = 0; i < 20000 || (atomic_load(&s->evictions) < 100 && now_ns() < deadline); i++) {
        uint64_t b = (uint64_t)rand_r(&seed) % s->r.nblocks;
        if (fp_block_claim(s->r.table, b) == FP_BLOCK_CLAIM_FETCH) {
            uint64_t n = atomic_fetch_add(&s->r.fetches[b], 1) + 1;
            s->r.payload[b] = expected_payload(b, n);
            fp_block_fill_done(s->r.table, b, true);
        } else {
            fp_block_touch(s->r.table, b);
        }
    }
    return NULL;
}

static void *stress_evictor(void *arg)
{
    stress_t *s = arg;

    while (!atomic_load(&s->stop)) {
        uint64_t b;
        fp_block_state_t was;
        if (!fp_block_evict_pick(s->r.table, NULL, NULL, NULL, &b, &was))
            continue;
        if (was == FP_BLOCK_DIRTY)
            fp_block_writeback_done(s->r.table, b, FP_BLOCK_WB_EVICT);
        if (fp_block_state(s->r.table, b) != FP_BLOCK_EVICTING)
            atomic_fetch_add(&s->violations, 1);
        fp_block_evict_done(s->r.table, b);
        atomic_fetch_add(&s->evictions, 1);
    }
    return NULL;
}

static void test_faults_and_evictions(void **state)
{
    pthread_t th[THREADS], ev;
    stress_t s;

    (void)state;
    memset(&s, 0, sizeof(s));
    s.r.nblocks = 32;
    assert_int_equal(fp_block_table_create(s.r.nblocks, &s.r.table), FP_OK);
    s.r.payload = calloc(s.r.nblocks, sizeof(*s.r.payload));
    s.r.fetches = calloc(s.r.nblocks, sizeof(*s.r.fetches));
    assert_int_equal(pthread_create(&ev, NULL, stress_evictor, &s), 0);
    for (int i = 0; i < THREADS - 1; i++)
        assert_int_equal(pthread_create(&th[i], NULL, stress_faulter, &s), 0);
    for (int i = 0; i < THREADS - 1; i++)
        pthread_join(th[i], NULL);
    atomic_store(&s.stop, true);
    pthread_join(ev, NULL);
    assert_true(atomic_load(&s.evictions) >= 100);
    assert_int_equal(atomic_load(&s.violations), 0);
    free(s.r.payload);
    free(s.r.fetches);
    fp_block_table_destroy(s.r.table);
}

/* What a claiming thread found, and whether it returned at all. */
typedef struct claimer {
    fp_block_table_t *table;
    uint64_t index;
    _Atomic int result; /* -1 until fp_block_claim() returned */
} claimer_t;

static void *claim_one(void *arg)
{
    claimer_t *c = arg;

    atomic_store(&c->result, (int)fp_block_claim(c->table, c->index));
    return NULL;
}

/*
 * A hint is not a fetch: a block a hint moved to HINTED is claimed at once by
 * whoever needs it, by the blocking claim too, which must not wait for a
 * fetch nobody has started (the engine's thread once did, and hung). The
 * non-blocking claim takes it as well, and says it was hinted.
 */
static void test_hinted_block_claimed_at_once(void **state)
{
    fp_block_table_t *t;
    fp_block_state_t was;
    claimer_t c;
    pthread_t th;

    (void)state;
    assert_int_equal(fp_block_table_create(4, &t), FP_OK);
    assert_true(fp_block_hint(t, 1));
    assert_int_equal(fp_block_state(t, 1), FP_BLOCK_HINTED);
    assert_false(fp_block_hint(t, 1)); /* hinted already */
    c.table = t;
    c.index = 1;
    atomic_init(&c.result, -1);
    assert_int_equal(pthread_create(&th, NULL, claim_one, &c), 0);
    /* Bounded: 10 s is an eternity for a claim that does not wait. */
    for (int i = 0; i < 10000 && atomic_load(&c.result) < 0; i++)
        usleep(1000);
    if (atomic_load(&c.result) < 0) {
        fprintf(stderr, "fp_block_claim() of a hinted block waits for a fetch never started\n");
        fail(); /* the stuck thread ends with the process */
    }
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&c.result), FP_BLOCK_CLAIM_FETCH);
    assert_int_equal(fp_block_state(t, 1), FP_BLOCK_FETCHING);
    fp_block_fill_done(t, 1, true);

    assert_true(fp_block_hint(t, 2));
    assert_true(fp_block_try_claim(t, 2, &was));
    assert_int_equal(was, FP_BLOCK_HINTED);
    assert_true(fp_block_try_claim(t, 3, &was));
    assert_int_equal(was, FP_BLOCK_ABSENT);
    assert_false(fp_block_try_claim(t, 3, &was)); /* fetching: not twice */
    /* A hint given up leaves the block absent; only a hinted block can be. */
    assert_true(fp_block_hint(t, 0));
    assert_true(fp_block_unhint(t, 0));
    assert_int_equal(fp_block_state(t, 0), FP_BLOCK_ABSENT);
    assert_false(fp_block_unhint(t, 0));
    /* Eviction never takes a hinted block. */
    assert_true(fp_block_hint(t, 0));
    fp_block_fill_done(t, 2, true);
    fp_block_fill_done(t, 3, true);
    for (int k = 0; k < 8; k++) {
        uint64_t idx;

        if (fp_block_evict_pick(t, NULL, NULL, NULL, &idx, &was)) {
            assert_int_not_equal(idx, 0);
            fp_block_evict_done(t, idx);
        }
    }
    assert_int_equal(fp_block_state(t, 0), FP_BLOCK_HINTED);
    fp_block_table_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_cold),
        cmocka_unit_test(test_transitions),
        cmocka_unit_test(test_hinted_block_claimed_at_once),
        cmocka_unit_test(test_clock_spares_used_blocks),
        cmocka_unit_test(test_concurrent_faults_share_one_fetch),
        cmocka_unit_test(test_failed_fetch_is_retried_once),
        cmocka_unit_test(test_faults_and_evictions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
