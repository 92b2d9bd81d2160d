/* SPDX-License-Identifier: MIT */
/*
 * Tests of the prefetcher's trend detection and window (src/client/prefetch.c):
 * sequential and strided streams are found, a few out-of-order accesses do not
 * hide them, random streams give no trend, and the window follows use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "client/prefetch.h"

static void test_sequential_and_strided(void **state)
{
    (void)state;
    for (int64_t stride = -16; stride <= 16; stride++) {
        fp_prefetch_t p;
        int64_t trend = 0;
        if (stride == 0)
            continue;
        fp_prefetch_init(&p, 64);
        for (int i = 0; i < 12; i++)
            trend = fp_prefetch_record(&p, (uint64_t)(100000 + stride * i));
        assert_int_equal(trend, stride);
    }
}

static void test_out_of_order_tolerated(void **state)
{
    /* Four threads scanning one region: mostly +1, a few swaps. */
    const uint64_t order[] = {0, 1, 2, 4, 3, 5, 6, 7, 9, 8, 10, 11, 12, 13, 15, 14, 16};
    fp_prefetch_t p;
    int64_t trend = 0;

    (void)state;
    fp_prefetch_init(&p, 64);
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        trend = fp_prefetch_record(&p, order[i]);
    assert_int_equal(trend, 1);
}

static void test_random_has_no_trend(void **state)
{
    fp_prefetch_t p;
    uint64_t seed = 12345;
    unsigned trends = 0;

    (void)state;
    fp_prefetch_init(&p, 64);
    for (int i = 0; i < 10000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        trends += fp_prefetch_record(&p, (seed >> 33) % 100000) != 0;
    }
    assert_true(trends < 10); /* a chance repeat of a delta, rarely */
}

static void test_plan_and_window(void **state)
{
    fp_prefetch_t p;
    uint64_t out[64];
    unsigned n;

    (void)state;
    fp_prefetch_init(&p, 16);
    assert_int_equal(fp_prefetch_plan(&p, 10, 0, 100, 0, out, 64), 0); /* no trend, no plan */
    n = fp_prefetch_plan(&p, 10, 3, 100, 0, out, 64);
    assert_int_equal(n, 2); /* the starting window */
    assert_int_equal(out[0], 13);
    assert_int_equal(out[1], 16);
    for (int i = 0; i < 10; i++)
        fp_prefetch_used(&p);
    assert_int_equal(fp_prefetch_plan(&p, 10, 1, 100, 0, out, 64), 16); /* capped at max */
    assert_int_equal(fp_prefetch_plan(&p, 95, 1, 100, 0, out, 64), 4);  /* the region ends */
    assert_int_equal(fp_prefetch_plan(&p, 3, -2, 100, 0, out, 64), 1);  /* and begins */
    assert_int_equal(out[0], 1);
    for (int i = 0; i < 10; i++)
        fp_prefetch_wasted(&p);
    assert_int_equal(fp_prefetch_plan(&p, 10, 1, 100, 0, out, 64), 1); /* never below one */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sequential_and_strided),
        cmocka_unit_test(test_out_of_order_tolerated),
        cmocka_unit_test(test_random_has_no_trend),
        cmocka_unit_test(test_plan_and_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
