/* SPDX-License-Identifier: MIT */
/*
 * The wrong-bytes detector of the data-path tests.
 *
 * A test fills what it writes with fp_pattern_fill() and checks what it reads
 * back with fp_pattern_check(). The pattern is a function of (region, byte
 * offset, version), so a byte that comes back stale (an older version), zeroed,
 * from another place of the region, or simply wrong is caught, and on the first
 * wrong byte the check says where it is and guesses why.
 *
 * DESIGN
 * The region is cut into 8-byte words at offsets that are multiples of 8. Word
 * number i (region offset 8*i) holds, little-endian,
 *
 *     word(i) = splitmix64_mix(seed(region, version) + i * GOLDEN_GAMMA)
 *
 * which is the i-th output of a splitmix64 generator seeded by the region and
 * the version. A buffer may start and end anywhere: byte b of the region is
 * byte (b % 8) of word(b / 8), so fill and check are byte-granular and any
 * slice of a filled region checks against the same (region, offset, version).
 *
 * Within one (region, version) every word is distinct (the state is a bijection
 * of i, the mix a bijection of the state), and the mix can be inverted, so a
 * wrong word can be traced back in O(1) to the index it would have had: this
 * is how a misplaced block is recognised without searching. Different versions
 * and regions give unrelated streams.
 *
 * Cost: one multiply-xorshift mix per 8 bytes; a check compares whole words
 * and only looks at bytes and guesses causes once something is wrong.
 *
 * Thread safety: all functions are reentrant; they touch only their arguments.
 */
#ifndef FP_TESTS_COMMON_PATTERN_H
#define FP_TESTS_COMMON_PATTERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* How far (bytes, either way) a misplaced word is traced back. */
#define FP_PATTERN_MISPLACED_RANGE (4ull << 20)
/* Versions version-N .. version+N are tried when guessing a stale version. */
#define FP_PATTERN_VERSION_RANGE 8u
/* Bytes of expected and found data kept in a mismatch report. */
#define FP_PATTERN_SHOW 16u

/** The guess of why the data is wrong. */
typedef enum fp_pattern_cause {
    FP_PATTERN_ZEROS,         /* the bytes from the first wrong one on are zero */
    FP_PATTERN_OTHER_VERSION, /* right place, version other_version */
    FP_PATTERN_MISPLACED,     /* data of offset source_offset (of other_version) */
    FP_PATTERN_GARBAGE,       /* none of the above */
} fp_pattern_cause_t;

/** What fp_pattern_check() found at the first wrong byte. */
typedef struct fp_pattern_mismatch {
    const void *addr;                  /* address of the first wrong byte in the checked buffer */
    size_t index;                      /* its index in the buffer */
    uint64_t region;                   /* as passed to fp_pattern_check() */
    uint64_t offset;                   /* region offset of the first wrong byte */
    uint32_t version;                  /* the version that was expected */
    size_t shown;                      /* bytes valid in expected[] and found[] */
    uint8_t expected[FP_PATTERN_SHOW]; /* expected bytes from addr on */
    uint8_t found[FP_PATTERN_SHOW];    /* found bytes from addr on */
    size_t bad_bytes;                  /* wrong bytes in the whole buffer */
    uint64_t last_offset;              /* region offset of the last wrong byte */
    fp_pattern_cause_t cause;
    uint32_t other_version; /* FP_PATTERN_OTHER_VERSION, FP_PATTERN_MISPLACED */
    uint64_t source_offset; /* FP_PATTERN_MISPLACED: where the byte at offset belongs */
    char why[96];           /* the guess in words, e.g. "other version 6" */
} fp_pattern_mismatch_t;

/*
 * Fill @buf (@len bytes, any alignment) with the pattern of @region and
 * @version, @buf[0] being the byte at region offset @offset; @offset + @len
 * must not exceed 2^64. A zero @len is a no-op.
 */
void fp_pattern_fill(void *buf, size_t len, uint64_t region, uint64_t offset, uint32_t version);

/*
 * Check that @buf (@len bytes) holds the pattern fp_pattern_fill() would write
 * for the same (@region, @offset, @version). True if every byte matches.
 *
 * On the first wrong byte, false is returned and, if @mm_p is not NULL, *@mm_p
 * describes it: its address and region offset, expected and found bytes, the
 * number of wrong bytes in the whole buffer, and a guess of the cause, tried in
 * this order:
 *   - "zeros": the found bytes from the wrong one on (up to 16) are all zero;
 *   - "other version N": they are the pattern of version N at the same place,
 *     N within version-8 .. version+8 (no wrap-around below 0 or above 2^32-1);
 *   - "misplaced (looks like offset X)": an 8-byte word there is the pattern of
 *     the same version at another word-aligned offset at most 4 MiB away, X
 *     being where the first wrong byte belongs ("... of version N" when that
 *     word is of a nearby other version);
 *   - "garbage" otherwise.
 * The guess needs one whole word inside the buffer for "misplaced"; for fewer
 * than 8 bytes after the wrong one, "zeros" and "other version" may be chance.
 * *@mm_p is not written when true is returned.
 */
bool fp_pattern_check(const void *buf, size_t len, uint64_t region, uint64_t offset,
                      uint32_t version, fp_pattern_mismatch_t *mm_p);

/* Print @mm as a few indented lines of text to @out. */
void fp_pattern_mismatch_print(const fp_pattern_mismatch_t *mm, FILE *out);

/*
 * In a cmocka test: fp_pattern_check(b, l, r, o, v) and, on a mismatch, print the report to
 * stderr and fail the test (cmocka's fail_msg, so <cmocka.h> must be included
 * where the macro is used).
 */
#define FP_PATTERN_ASSERT(b, l, r, o, v)                                                           \
    do {                                                                                           \
        fp_pattern_mismatch_t fp_pattern_mm;                                                       \
        if (!fp_pattern_check((b), (l), (r), (o), (v), &fp_pattern_mm)) {                          \
            fp_pattern_mismatch_print(&fp_pattern_mm, stderr);                                     \
            fail_msg("pattern mismatch at region %llu offset %llu: %s",                            \
                     (unsigned long long)fp_pattern_mm.region,                                     \
                     (unsigned long long)fp_pattern_mm.offset, fp_pattern_mm.why);                 \
        }                                                                                          \
    } while (0)

#endif /* FP_TESTS_COMMON_PATTERN_H */
