/* SPDX-License-Identifier: MIT */
/*
 * Tests of slab placement (src/meta/meta_place.c): fp_meta_place and
 * fp_meta_place_one, pure functions on a candidate array.
 *
 * Covered: the copies of a slab land on distinct members (also when two
 * candidates name the same member); no candidate gets more than its free
 * bytes, and free is reduced by what was placed; FP_ERR_NO_SPACE leaves the
 * candidates as they were; FP_ERR_INVALID_PARAM for no copies or more copies
 * than eligible candidates; with three equal members the spread is within
 * 10%, with one and two copies; a member with more free bytes gets more; an
 * ineligible member never gets a slab; a copy with a single candidate that
 * qualifies takes it; fp_meta_place_one honours its exclusions, prefers the
 * freer of two, says -1 when nothing qualifies; the same seed gives the same
 * placement and another seed another.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "meta/meta.h"

#define SLAB (1ull << 20)

/* @n candidates, member ids 100, 101, ..., each eligible with @slabs slabs free. */
static void cand_fill(fp_meta_candidate_t *cand, size_t n, uint64_t slabs)
{
    memset(cand, 0, n * sizeof(*cand)); /* padding too: tests compare whole arrays */
    for (size_t i = 0; i < n; i++) {
        cand[i].node = 100 + i;
        cand[i].free = slabs * SLAB;
        cand[i].eligible = true;
    }
}

/* How many copies of @out (@ncopies) each candidate got, into @count (@ncand). */
static void count_copies(const uint32_t *out, size_t ncopies, size_t ncand, size_t *count)
{
    memset(count, 0, ncand * sizeof(*count));
    for (size_t i = 0; i < ncopies; i++) {
        assert_true(out[i] < ncand);
        count[out[i]]++;
    }
}

static uint32_t *out_alloc(size_t ncopies)
{
    uint32_t *out = calloc(ncopies, sizeof(*out));

    assert_non_null(out);
    return out;
}

/* ---- tests ---- */

static void test_distinct_members_per_slab(void **state)
{
    fp_meta_candidate_t cand[5];
    const uint32_t nslabs = 400, replicas = 3;
    uint32_t *out = out_alloc((size_t)nslabs * replicas);

    (void)state;
    cand_fill(cand, 5, 1000);
    cand[4].node = cand[0].node; /* two entries of one member: still distinct members */
    assert_int_equal(fp_meta_place(cand, 5, nslabs, replicas, SLAB, 7, out), FP_OK);
    for (uint32_t s = 0; s < nslabs; s++) {
        const uint32_t *copy = out + (size_t)s * replicas;

        for (uint32_t a = 0; a < replicas; a++)
            for (uint32_t b = a + 1; b < replicas; b++)
                assert_int_not_equal(cand[copy[a]].node, cand[copy[b]].node);
    }
    free(out);
}

static void test_capacity_respected(void **state)
{
    fp_meta_candidate_t cand[3];
    const uint64_t slabs[3] = {3, 5, 10};
    size_t count[3];
    uint32_t out[18];

    (void)state;
    cand_fill(cand, 3, 0);
    for (size_t i = 0; i < 3; i++)
        cand[i].free = slabs[i] * SLAB;
    cand[0].free += SLAB / 2; /* half a slab more is no room for one */
    assert_int_equal(fp_meta_place(cand, 3, 18, 1, SLAB, 1, out), FP_OK);
    count_copies(out, 18, 3, count);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(count[i], slabs[i]);
    assert_int_equal(cand[0].free, SLAB / 2);
    assert_int_equal(cand[1].free, 0);
    assert_int_equal(cand[2].free, 0);

    /* One more does not fit anywhere. */
    assert_int_equal(fp_meta_place(cand, 3, 1, 1, SLAB, 1, out), FP_ERR_NO_SPACE);
}

static void test_no_space_changes_nothing(void **state)
{
    fp_meta_candidate_t cand[3], before[3];
    uint32_t out[8];

    (void)state;
    cand_fill(cand, 3, 2);
    memcpy(before, cand, sizeof(cand));
    /* 8 copies, room for 6: fails after placing some. */
    assert_int_equal(fp_meta_place(cand, 3, 4, 2, SLAB, 3, out), FP_ERR_NO_SPACE);
    assert_memory_equal(cand, before, sizeof(cand));

    /* Three eligible members, but one is full: 3 copies of a slab cannot be placed. */
    cand[2].free = SLAB - 1;
    memcpy(before, cand, sizeof(cand));
    assert_int_equal(fp_meta_place(cand, 3, 1, 3, SLAB, 3, out), FP_ERR_NO_SPACE);
    assert_memory_equal(cand, before, sizeof(cand));
    /* ...while 2 copies can. */
    assert_int_equal(fp_meta_place(cand, 3, 2, 2, SLAB, 3, out), FP_OK);
    for (size_t i = 0; i < 4; i++)
        assert_int_not_equal(out[i], 2);
}

static void test_invalid_params(void **state)
{
    fp_meta_candidate_t cand[4], before[4];
    uint32_t out[16];

    (void)state;
    cand_fill(cand, 4, 100);
    cand[1].eligible = false;
    cand[3].eligible = false;
    memcpy(before, cand, sizeof(cand));
    assert_int_equal(fp_meta_place(cand, 4, 1, 0, SLAB, 1, out), FP_ERR_INVALID_PARAM);
    assert_int_equal(fp_meta_place(cand, 4, 1, 3, SLAB, 1, out), FP_ERR_INVALID_PARAM);
    assert_int_equal(fp_meta_place(cand, 4, 1, 1, 0, 1, out), FP_ERR_INVALID_PARAM);
    assert_int_equal(fp_meta_place(cand, 4, 1, 1, SLAB, 1, NULL), FP_ERR_INVALID_PARAM);
    assert_int_equal(fp_meta_place(NULL, 0, 1, 1, SLAB, 1, out), FP_ERR_INVALID_PARAM);
    assert_memory_equal(cand, before, sizeof(cand));
    /* As many copies as eligible members is fine; no slabs is nothing to do. */
    assert_int_equal(fp_meta_place(cand, 4, 1, 2, SLAB, 1, out), FP_OK);
    assert_int_equal(fp_meta_place(cand, 4, 0, 2, SLAB, 1, NULL), FP_OK);
}

/* Every candidate's count is within 10% of @mean. */
static void assert_balanced(const size_t *count, size_t n, double mean)
{
    for (size_t i = 0; i < n; i++) {
        if (count[i] < mean * 0.9 || count[i] > mean * 1.1)
            fail_msg("candidate %zu got %zu copies, mean %.0f", i, count[i], mean);
    }
}

static void test_equal_members_balanced(void **state)
{
    fp_meta_candidate_t cand[3];
    const uint32_t nslabs = 3000;
    uint32_t *out = out_alloc((size_t)nslabs * 2);
    size_t count[3];

    (void)state;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        cand_fill(cand, 3, 10000);
        assert_int_equal(fp_meta_place(cand, 3, nslabs, 1, SLAB, seed, out), FP_OK);
        count_copies(out, nslabs, 3, count);
        assert_balanced(count, 3, nslabs / 3.0);

        cand_fill(cand, 3, 10000);
        assert_int_equal(fp_meta_place(cand, 3, nslabs, 2, SLAB, seed, out), FP_OK);
        count_copies(out, (size_t)nslabs * 2, 3, count);
        assert_balanced(count, 3, nslabs * 2 / 3.0);
    }
    free(out);
}

static void test_more_free_gets_more(void **state)
{
    fp_meta_candidate_t cand[3];
    const uint32_t nslabs = 1200;
    uint32_t *out = out_alloc(nslabs);
    size_t count[3];

    (void)state;
    cand_fill(cand, 3, 1000);
    cand[0].free = 4000 * SLAB;
    assert_int_equal(fp_meta_place(cand, 3, nslabs, 1, SLAB, 11, out), FP_OK);
    count_copies(out, nslabs, 3, count);
    /* It is in two draws of three, and wins each: about 800 against 200 and 200. */
    assert_true(count[0] > 2 * count[1]);
    assert_true(count[0] > 2 * count[2]);
    /* Placement fills the emptier ones until they are level, no further. */
    cand_fill(cand, 3, 1000);
    cand[0].free = 1300 * SLAB;
    assert_int_equal(fp_meta_place(cand, 3, nslabs, 1, SLAB, 12, out), FP_OK);
    for (size_t i = 1; i < 3; i++) {
        uint64_t gap =
            cand[0].free > cand[i].free ? cand[0].free - cand[i].free : cand[i].free - cand[0].free;

        assert_true(gap <= 30 * SLAB);
    }
    free(out);
}

static void test_ineligible_never_chosen(void **state)
{
    fp_meta_candidate_t cand[6];
    const uint32_t nslabs = 300;
    uint32_t *out = out_alloc((size_t)nslabs * 2);
    size_t count[6];

    (void)state;
    cand_fill(cand, 6, 1000);
    for (size_t i = 0; i < 6; i += 2) {
        cand[i].eligible = false; /* dead or draining */
        cand[i].free = 1000000 * SLAB;
    }
    assert_int_equal(fp_meta_place(cand, 6, nslabs, 2, SLAB, 5, out), FP_OK);
    count_copies(out, (size_t)nslabs * 2, 6, count);
    for (size_t i = 0; i < 6; i += 2) {
        assert_int_equal(count[i], 0);
        assert_int_equal(cand[i].free, 1000000 * SLAB);
    }
    free(out);
}

static void test_single_qualifier_taken(void **state)
{
    fp_meta_candidate_t cand[3];
    uint32_t out[4];

    (void)state;
    cand_fill(cand, 3, 0);
    cand[1].free = 2 * SLAB;
    assert_int_equal(fp_meta_place(cand, 3, 2, 1, SLAB, 9, out), FP_OK);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 1);
    assert_int_equal(cand[1].free, 0);

    /* Two copies, two members with room: each slab on both. */
    cand_fill(cand, 3, 2);
    cand[0].eligible = false;
    assert_int_equal(fp_meta_place(cand, 3, 2, 2, SLAB, 9, out), FP_OK);
    for (size_t s = 0; s < 2; s++) {
        assert_true(out[s * 2] != 0 && out[s * 2 + 1] != 0);
        assert_int_not_equal(out[s * 2], out[s * 2 + 1]);
    }
}

static void test_place_one(void **state)
{
    fp_meta_candidate_t cand[5], before[5];
    const uint64_t exclude[3] = {100, 102, 104};
    uint64_t seed = 77;
    long i;

    (void)state;
    cand_fill(cand, 5, 100);
    for (int k = 0; k < 100; k++) {
        i = fp_meta_place_one(cand, 5, exclude, 3, SLAB, &seed);
        assert_true(i == 1 || i == 3);
    }
    assert_int_equal(cand[1].free + cand[3].free, 100 * SLAB);
    assert_int_equal(cand[0].free, 100 * SLAB);
    /* Two qualify, so both are drawn: the freer one wins, every time. */
    cand_fill(cand, 5, 100);
    cand[3].free = 10 * SLAB;
    cand[1].free = 5 * SLAB;
    i = fp_meta_place_one(cand, 5, exclude, 3, SLAB, &seed);
    assert_int_equal(i, 3);
    assert_int_equal(cand[3].free, 9 * SLAB);
    /* Nothing qualifies: -1, and nothing changes. */
    cand[1].eligible = false;
    cand[3].free = SLAB - 1;
    memcpy(before, cand, sizeof(cand));
    assert_int_equal(fp_meta_place_one(cand, 5, exclude, 3, SLAB, &seed), -1);
    assert_memory_equal(cand, before, sizeof(cand));
    /* No exclusions: any eligible member with room. */
    cand_fill(cand, 5, 1);
    for (int k = 0; k < 5; k++)
        assert_true(fp_meta_place_one(cand, 5, NULL, 0, SLAB, &seed) >= 0);
    assert_int_equal(fp_meta_place_one(cand, 5, NULL, 0, SLAB, &seed), -1);
    assert_int_equal(fp_meta_place_one(cand, 5, NULL, 0, SLAB, NULL), -1);
}

static void test_deterministic_per_seed(void **state)
{
    fp_meta_candidate_t a[10], b[10];
    const uint32_t nslabs = 500, replicas = 2;
    uint32_t *oa = out_alloc((size_t)nslabs * replicas);
    uint32_t *ob = out_alloc((size_t)nslabs * replicas);
    uint64_t sa = 5, sb = 5;

    (void)state;
    cand_fill(a, 10, 1000);
    cand_fill(b, 10, 1000);
    assert_int_equal(fp_meta_place(a, 10, nslabs, replicas, SLAB, 42, oa), FP_OK);
    assert_int_equal(fp_meta_place(b, 10, nslabs, replicas, SLAB, 42, ob), FP_OK);
    assert_memory_equal(oa, ob, (size_t)nslabs * replicas * sizeof(*oa));
    assert_memory_equal(a, b, sizeof(a));

    cand_fill(b, 10, 1000);
    assert_int_equal(fp_meta_place(b, 10, nslabs, replicas, SLAB, 43, ob), FP_OK);
    assert_memory_not_equal(oa, ob, (size_t)nslabs * replicas * sizeof(*oa));

    /* place_one: the same state gives the same choices, and advances. */
    cand_fill(a, 10, 1000);
    cand_fill(b, 10, 1000);
    for (int k = 0; k < 50; k++)
        assert_int_equal(fp_meta_place_one(a, 10, NULL, 0, SLAB, &sa),
                         fp_meta_place_one(b, 10, NULL, 0, SLAB, &sb));
    assert_int_equal(sa, sb);
    assert_int_not_equal(sa, 5);
    free(oa);
    free(ob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distinct_members_per_slab),
        cmocka_unit_test(test_capacity_respected),
        cmocka_unit_test(test_no_space_changes_nothing),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_equal_members_balanced),
        cmocka_unit_test(test_more_free_gets_more),
        cmocka_unit_test(test_ineligible_never_chosen),
        cmocka_unit_test(test_single_qualifier_taken),
        cmocka_unit_test(test_place_one),
        cmocka_unit_test(test_deterministic_per_seed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
