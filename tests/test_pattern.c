/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the wrong-bytes detector (tests/common/pattern.c), which every
 * data-path test relies on: fill and check agree at any offset, length and
 * buffer alignment, slices of a filled region check on their own, and each
 * kind of corruption (zeros, a stale or newer version, a block copied from
 * another offset, garbage, one flipped byte) is caught at the right byte and
 * given the right guess.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/pattern.h"

#define BUF_SIZE (256u << 10)

static uint8_t *alloc_buf(size_t len)
{
    uint8_t *buf = malloc(len + 16);

    assert_non_null(buf);
    return buf;
}

/* A deterministic junk generator (xorshift64*), independent of the pattern. */
static void fill_junk(uint8_t *p, size_t len, uint64_t seed)
{
    uint64_t x = seed | 1;

    for (size_t i = 0; i < len; i++) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        p[i] = (uint8_t)((x * 0x2545F4914F6CDD1Dull) >> 56);
    }
}

static void test_fill_check_odd_offsets_and_lengths(void **state)
{
    static const uint64_t offsets[] = {
        0, 1, 3, 7, 8, 9, 4095, 4097, (1ull << 40) + 5, UINT64_MAX - 20000};
    static const size_t lens[] = {0, 1, 2, 7, 8, 9, 15, 17, 4096, 4099, 10001};
    uint8_t *base = alloc_buf(16384);

    (void)state;
    for (size_t a = 0; a < 8; a++) { /* the buffer's own alignment */
        for (size_t o = 0; o < sizeof(offsets) / sizeof(offsets[0]); o++) {
            for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
                fp_pattern_fill(base + a, lens[l], 42, offsets[o], 3);
                FP_PATTERN_ASSERT(base + a, lens[l], 42, offsets[o], 3);
            }
        }
    }
    free(base);
}

static void test_slices_agree(void **state)
{
    const size_t len = 10000;
    uint8_t *whole = alloc_buf(len), *pieces = alloc_buf(len);
    const uint64_t off = 12345;

    (void)state;
    fp_pattern_fill(whole, len, 7, off, 1);
    /* Any slice of the filled range checks with its own offset. */
    for (size_t a = 0; a < len; a += 997) {
        for (size_t b = a; b <= len; b += 1231)
            FP_PATTERN_ASSERT(whole + a, b - a, 7, off + a, 1);
    }
    /* Filling piece by piece at odd split points gives the same bytes. */
    for (size_t a = 0, step = 1; a < len; a += step, step = step * 3 % 113 + 1) {
        size_t n = a + step <= len ? step : len - a;

        fp_pattern_fill(pieces + a, n, 7, off + a, 1);
    }
    assert_memory_equal(whole, pieces, len);
    free(whole);
    free(pieces);
}

static void test_wrong_identity_fails(void **state)
{
    uint8_t buf[4096];
    fp_pattern_mismatch_t mm;

    (void)state;
    fp_pattern_fill(buf, sizeof(buf), 1, 0, 1);
    assert_true(fp_pattern_check(buf, sizeof(buf), 1, 0, 1, NULL));
    assert_false(fp_pattern_check(buf, sizeof(buf), 2, 0, 1, NULL));
    assert_false(fp_pattern_check(buf, sizeof(buf), 1, 8, 1, NULL));
    assert_false(fp_pattern_check(buf, sizeof(buf), 1, 1, 1, NULL));
    assert_false(fp_pattern_check(buf, sizeof(buf), 1, 0, 2, NULL));
    /* Checking against a version-shifted window names the stale version. */
    assert_false(fp_pattern_check(buf, sizeof(buf), 1, 0, 4, &mm));
    assert_int_equal(mm.cause, FP_PATTERN_OTHER_VERSION);
    assert_int_equal(mm.other_version, 1);
    assert_int_equal(mm.index, 0);
}

static void test_zeros(void **state)
{
    uint8_t *buf = alloc_buf(BUF_SIZE);
    const uint64_t off = 1ull << 30;
    size_t first = 5000;
    fp_pattern_mismatch_t mm;

    (void)state;
    fp_pattern_fill(buf, BUF_SIZE, 9, off, 2);
    while (buf[first] == 0) /* an expected zero byte is not wrong */
        first++;
    memset(buf + 5000, 0, 4096);
    assert_false(fp_pattern_check(buf, BUF_SIZE, 9, off, 2, &mm));
    assert_ptr_equal(mm.addr, buf + first);
    assert_int_equal(mm.index, first);
    assert_int_equal(mm.offset, off + first);
    assert_int_equal(mm.region, 9);
    assert_int_equal(mm.version, 2);
    assert_int_equal(mm.cause, FP_PATTERN_ZEROS);
    assert_string_equal(mm.why, "zeros");
    assert_int_equal(mm.shown, FP_PATTERN_SHOW);
    assert_int_equal(mm.found[0], 0);
    assert_int_not_equal(mm.expected[0], 0);
    assert_in_range(mm.bad_bytes, 4000, 4096);
    assert_in_range(mm.last_offset, off + 9000, off + 5000 + 4095);
    free(buf);
}

static void test_other_version(void **state)
{
    uint8_t *buf = alloc_buf(BUF_SIZE);
    fp_pattern_mismatch_t mm;

    (void)state;
    /* Older: a block still holds version 5 where 7 was written. */
    fp_pattern_fill(buf, BUF_SIZE, 3, 4096, 7);
    fp_pattern_fill(buf + 8192, 4096, 3, 4096 + 8192, 5);
    assert_false(fp_pattern_check(buf, BUF_SIZE, 3, 4096, 7, &mm));
    assert_in_range(mm.index, 8192, 8193); /* unless byte 8192 matches by chance */
    assert_int_equal(mm.cause, FP_PATTERN_OTHER_VERSION);
    assert_int_equal(mm.other_version, 5);
    assert_string_equal(mm.why, "other version 5");
    assert_in_range(mm.bad_bytes, 4000, 4096);

    /* Newer, at an unaligned place and offset. */
    fp_pattern_fill(buf, BUF_SIZE, 3, 4099, 7);
    fp_pattern_fill(buf + 1001, 333, 3, 4099 + 1001, 15);
    assert_false(fp_pattern_check(buf, BUF_SIZE, 3, 4099, 7, &mm));
    assert_in_range(mm.index, 1001, 1002);
    assert_int_equal(mm.cause, FP_PATTERN_OTHER_VERSION);
    assert_int_equal(mm.other_version, 15);

    /* Near zero, versions below 0 are not tried and do not wrap. */
    fp_pattern_fill(buf, 4096, 3, 0, 2);
    fp_pattern_fill(buf + 64, 64, 3, 64, 0);
    assert_false(fp_pattern_check(buf, 4096, 3, 0, 2, &mm));
    assert_int_equal(mm.cause, FP_PATTERN_OTHER_VERSION);
    assert_int_equal(mm.other_version, 0);

    /* Too far away to be guessed. */
    fp_pattern_fill(buf, 4096, 3, 0, 100);
    fp_pattern_fill(buf + 64, 64, 3, 64, 80);
    assert_false(fp_pattern_check(buf, 4096, 3, 0, 100, &mm));
    assert_int_equal(mm.cause, FP_PATTERN_GARBAGE);
    assert_string_equal(mm.why, "garbage");
    free(buf);
}

static void test_misplaced(void **state)
{
    uint8_t *buf = alloc_buf(BUF_SIZE);
    const uint64_t off = 1ull << 20;
    fp_pattern_mismatch_t mm;
    char why[96];

    (void)state;
    /* Block 10 holds a copy of block 3. */
    fp_pattern_fill(buf, BUF_SIZE, 5, off, 1);
    memcpy(buf + 10 * 4096, buf + 3 * 4096, 4096);
    assert_false(fp_pattern_check(buf, BUF_SIZE, 5, off, 1, &mm));
    assert_in_range(mm.index, 40960, 40961);
    assert_ptr_equal(mm.addr, buf + mm.index);
    assert_int_equal(mm.offset, off + mm.index);
    assert_int_equal(mm.cause, FP_PATTERN_MISPLACED);
    assert_int_equal(mm.other_version, 1);
    assert_int_equal(mm.source_offset, off + 3 * 4096 + (mm.index - 40960));
    snprintf(why, sizeof(why), "misplaced (looks like offset %llu)",
             (unsigned long long)mm.source_offset);
    assert_string_equal(mm.why, why);

    /* The data of a later offset, the buffer starting in the middle of a word. */
    fp_pattern_fill(buf, BUF_SIZE, 5, off + 5, 1);
    fp_pattern_fill(buf + 4093, 8192, 5, off + 5 + 4093 + 65536, 1);
    assert_false(fp_pattern_check(buf + 4093, 8192, 5, off + 5 + 4093, 1, &mm));
    assert_in_range(mm.index, 0, 1);
    assert_int_equal(mm.cause, FP_PATTERN_MISPLACED);
    assert_int_equal(mm.source_offset, off + 5 + 4093 + 65536 + mm.index);

    /* Wrong place and an older version at once. */
    fp_pattern_fill(buf, BUF_SIZE, 5, 0, 9);
    fp_pattern_fill(buf + 65536, 4096, 5, 4096, 8);
    assert_false(fp_pattern_check(buf, BUF_SIZE, 5, 0, 9, &mm));
    assert_int_equal(mm.cause, FP_PATTERN_MISPLACED);
    assert_int_equal(mm.other_version, 8);
    assert_int_equal(mm.source_offset, 4096 + (mm.index - 65536));
    snprintf(why, sizeof(why), "misplaced (looks like offset %llu of version 8)",
             (unsigned long long)mm.source_offset);
    assert_string_equal(mm.why, why);

    /* 4 MiB away is still traced; farther is garbage. */
    fp_pattern_fill(buf, 4096, 5, 0, 1);
    fp_pattern_fill(buf + 1024, 8, 5, 1024 + FP_PATTERN_MISPLACED_RANGE, 1);
    assert_false(fp_pattern_check(buf, 4096, 5, 0, 1, &mm));
    assert_int_equal(mm.cause, FP_PATTERN_MISPLACED);
    assert_int_equal(mm.source_offset, 1024 + FP_PATTERN_MISPLACED_RANGE + (mm.index - 1024));
    fp_pattern_fill(buf, 4096, 5, 0, 1);
    fp_pattern_fill(buf + 1024, 8, 5, 1024 + FP_PATTERN_MISPLACED_RANGE + 8, 1);
    assert_false(fp_pattern_check(buf, 4096, 5, 0, 1, &mm));
    assert_int_equal(mm.cause, FP_PATTERN_GARBAGE);

    /* Another region's data is garbage to this one. */
    fp_pattern_fill(buf, 4096, 5, 0, 1);
    fp_pattern_fill(buf + 512, 512, 6, 512, 1);
    assert_false(fp_pattern_check(buf, 4096, 5, 0, 1, &mm));
    assert_int_equal(mm.cause, FP_PATTERN_GARBAGE);
    free(buf);
}

static void test_garbage_and_flips(void **state)
{
    uint8_t *buf = alloc_buf(BUF_SIZE);
    fp_pattern_mismatch_t mm;

    (void)state;
    fp_pattern_fill(buf, BUF_SIZE, 11, 77, 4);
    fill_junk(buf + 100000, 3000, 12345);
    assert_false(fp_pattern_check(buf, BUF_SIZE, 11, 77, 4, &mm));
    assert_in_range(mm.index, 100000, 100003);
    assert_int_equal(mm.cause, FP_PATTERN_GARBAGE);
    assert_string_equal(mm.why, "garbage");
    assert_in_range(mm.bad_bytes, 2900, 3000);
    assert_in_range(mm.last_offset, 77 + 100000 + 2900, 77 + 100000 + 2999);

    /* One flipped bit, in the middle, first and last byte. */
    static const size_t at[] = {123457, 0, BUF_SIZE - 1};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        fp_pattern_fill(buf, BUF_SIZE, 11, 77, 4);
        buf[at[i]] ^= 0x10;
        assert_false(fp_pattern_check(buf, BUF_SIZE, 11, 77, 4, &mm));
        assert_int_equal(mm.index, at[i]);
        assert_ptr_equal(mm.addr, buf + at[i]);
        assert_int_equal(mm.offset, 77 + at[i]);
        assert_int_equal(mm.bad_bytes, 1);
        assert_int_equal(mm.last_offset, 77 + at[i]);
        assert_int_equal(mm.found[0], mm.expected[0] ^ 0x10);
        assert_int_equal(mm.shown,
                         BUF_SIZE - at[i] < FP_PATTERN_SHOW ? BUF_SIZE - at[i] : FP_PATTERN_SHOW);
        if (at[i] != BUF_SIZE - 1) /* one byte is too little to be sure */
            assert_int_equal(mm.cause, FP_PATTERN_GARBAGE);
    }
    free(buf);
}

static void test_print(void **state)
{
    uint8_t buf[4096];
    fp_pattern_mismatch_t mm;
    char *text = NULL;
    size_t size = 0;
    FILE *out;

    (void)state;
    fp_pattern_fill(buf, sizeof(buf), 1, 8192, 3);
    memset(buf + 2048, 0, 100);
    assert_false(fp_pattern_check(buf, sizeof(buf), 1, 8192, 3, &mm));
    out = open_memstream(&text, &size);
    assert_non_null(out);
    fp_pattern_mismatch_print(&mm, out);
    fclose(out);
    assert_non_null(strstr(text, "region 1, version 3"));
    assert_non_null(strstr(text, "region offset 10240 (0x2800)"));
    assert_non_null(strstr(text, "found:    00 00 00"));
    assert_non_null(strstr(text, "guess: zeros"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fill_check_odd_offsets_and_lengths),
        cmocka_unit_test(test_slices_agree),
        cmocka_unit_test(test_wrong_identity_fails),
        cmocka_unit_test(test_zeros),
        cmocka_unit_test(test_other_version),
        cmocka_unit_test(test_misplaced),
        cmocka_unit_test(test_garbage_and_flips),
        cmocka_unit_test(test_print),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
