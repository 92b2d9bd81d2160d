/* SPDX-License-Identifier: MIT */
/*
 * The wrong-bytes detector: a splitmix64 stream per (region, version), laid
 * over the region's bytes; see pattern.h for the layout and the guesses.
 */
#include "pattern.h"

#include <inttypes.h>
#include <string.h>

#define GAMMA        0x9E3779B97F4A7C15ull /* splitmix64 increment (odd) */
#define MUL1         0xBF58476D1CE4E5B9ull
#define MUL2         0x94D049BB133111EBull
#define REGION_SALT  0x6A09E667F3BCC909ull
#define VERSION_SALT 0xBB67AE8584CAA73Bull

/* Expected bytes are generated this many at a time to compare with memcmp. */
#define CHUNK 4096u

static inline uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * MUL1;
    z = (z ^ (z >> 27)) * MUL2;
    return z ^ (z >> 31);
}

/* Multiplicative inverse of odd @a modulo 2^64 (Newton: each step doubles the bits). */
static uint64_t inverse64(uint64_t a)
{
    uint64_t x = a; /* a * a == 1 mod 8: three bits right */

    for (int i = 0; i < 5; i++)
        x *= 2 - a * x;
    return x;
}

/* Inverse of mix(): undo each xorshift and multiply, last first. */
static uint64_t unmix(uint64_t z)
{
    z ^= (z >> 31) ^ (z >> 62);
    z *= inverse64(MUL2);
    z ^= (z >> 27) ^ (z >> 54);
    z *= inverse64(MUL1);
    z ^= (z >> 30) ^ (z >> 60);
    return z;
}

static uint64_t stream_seed(uint64_t region, uint32_t version)
{
    return mix(mix(region ^ REGION_SALT) ^ mix((uint64_t)version + VERSION_SALT));
}

static inline void store_le64(uint8_t *p, uint64_t v)
{
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    memcpy(p, &v, sizeof(v));
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* Write the bytes at region offsets [offset, offset + len) of stream @seed. */
static void fill_seeded(uint8_t *p, size_t len, uint64_t seed, uint64_t offset)
{
    uint64_t state = seed + (offset >> 3) * GAMMA;
    unsigned skip = (unsigned)(offset & 7);
    uint8_t word[8];
    size_t done = 0;

    if (len == 0)
        return;
    if (skip != 0) {
        done = 8 - skip < len ? 8 - skip : len;
        store_le64(word, mix(state));
        memcpy(p, word + skip, done);
        state += GAMMA;
    }
    for (; len - done >= 8; done += 8, state += GAMMA)
        store_le64(p + done, mix(state));
    if (done < len) {
        store_le64(word, mix(state));
        memcpy(p + done, word, len - done);
    }
}

void fp_pattern_fill(void *buf, size_t len, uint64_t region, uint64_t offset, uint32_t version)
{
    fill_seeded(buf, len, stream_seed(region, version), offset);
}

/* True if @p[0..len) equals the bytes of stream @seed at @offset (@len <= CHUNK). */
static bool matches_seeded(const uint8_t *p, size_t len, uint64_t seed, uint64_t offset)
{
    uint8_t expected[CHUNK];

    fill_seeded(expected, len, seed, offset);
    return memcmp(p, expected, len) == 0;
}

/* Index of the first byte of @p that differs from the stream, or @len. */
static size_t first_wrong(const uint8_t *p, size_t len, uint64_t seed, uint64_t offset)
{
    uint8_t expected[CHUNK];

    for (size_t i = 0; i < len; i += CHUNK) {
        size_t n = len - i < CHUNK ? len - i : CHUNK;

        fill_seeded(expected, n, seed, offset + i);
        if (memcmp(p + i, expected, n) == 0)
            continue;
        for (size_t j = 0; j < n; j++) {
            if (p[i + j] != expected[j])
                return i + j;
        }
    }
    return len;
}

/* Count the wrong bytes of @p from @start on and find the last one. */
static void count_wrong(const uint8_t *p, size_t len, size_t start, uint64_t seed, uint64_t offset,
                        size_t *count_p, size_t *last_p)
{
    uint8_t expected[CHUNK];
    size_t count = 0, last = start;

    for (size_t i = start; i < len; i += CHUNK) {
        size_t n = len - i < CHUNK ? len - i : CHUNK;

        fill_seeded(expected, n, seed, offset + i);
        if (memcmp(p + i, expected, n) == 0)
            continue;
        for (size_t j = 0; j < n; j++) {
            if (p[i + j] != expected[j]) {
                count++;
                last = i + j;
            }
        }
    }
    *count_p = count;
    *last_p = last;
}

/* The i-th candidate of the "other version" guess: version-1, version+1, version-2, ... */
static bool nearby_version(uint32_t version, unsigned i, uint32_t *v_p)
{
    uint32_t d = i / 2 + 1;

    if (i % 2 == 0) {
        if (version < d)
            return false;
        *v_p = version - d;
    } else {
        if (version > UINT32_MAX - d)
            return false;
        *v_p = version + d;
    }
    return true;
}

/*
 * Trace the word of @p at buffer index @bi back to the index it has in the
 * stream of (@region, @v). True if that index is within the misplacement range
 * of the word's own index; *@delta_p is the distance in words.
 */
static bool trace_word(const uint8_t *p, size_t bi, uint64_t region, uint64_t offset, uint32_t v,
                       int64_t *delta_p)
{
    const int64_t range = (int64_t)(FP_PATTERN_MISPLACED_RANGE / 8);
    uint64_t own = (offset + bi) >> 3;
    uint64_t index = (unmix(load_le64(p + bi)) - stream_seed(region, v)) * inverse64(GAMMA);
    int64_t delta = (int64_t)(index - own);

    if (delta < -range || delta > range)
        return false;
    *delta_p = delta;
    return true;
}

static void guess_cause(const uint8_t *p, size_t len, uint64_t region, uint64_t offset,
                        uint32_t version, fp_pattern_mismatch_t *mm)
{
    size_t idx = mm->index;
    uint64_t at = mm->offset;
    size_t n = len - idx < FP_PATTERN_SHOW ? len - idx : FP_PATTERN_SHOW;
    size_t phase = (size_t)(at & 7);
    size_t bi;
    uint32_t v;
    int64_t delta;
    bool zeros = true;

    for (size_t i = 0; i < n; i++)
        zeros = zeros && p[idx + i] == 0;
    if (zeros) {
        mm->cause = FP_PATTERN_ZEROS;
        snprintf(mm->why, sizeof(mm->why), "zeros");
        return;
    }

    for (unsigned i = 0; i < 2 * FP_PATTERN_VERSION_RANGE; i++) {
        if (nearby_version(version, i, &v) &&
            matches_seeded(p + idx, n, stream_seed(region, v), at)) {
            mm->cause = FP_PATTERN_OTHER_VERSION;
            mm->other_version = v;
            snprintf(mm->why, sizeof(mm->why), "other version %" PRIu32, v);
            return;
        }
    }

    /* A whole word: the one holding the wrong byte, or else the next one. */
    bi = idx - phase;
    if (idx < phase || bi + 8 > len)
        bi = idx - phase + 8;
    if (bi + 8 <= len) {
        for (unsigned i = 0; i <= 2 * FP_PATTERN_VERSION_RANGE; i++) {
            v = version;
            if (i > 0 && !nearby_version(version, i - 1, &v))
                continue;
            if (!trace_word(p, bi, region, offset, v, &delta) || (v == version && delta == 0))
                continue;
            mm->other_version = v;
            if (delta == 0) {
                mm->cause = FP_PATTERN_OTHER_VERSION;
                snprintf(mm->why, sizeof(mm->why), "other version %" PRIu32, v);
                return;
            }
            mm->cause = FP_PATTERN_MISPLACED;
            mm->source_offset = at + (uint64_t)delta * 8;
            if (v == version)
                snprintf(mm->why, sizeof(mm->why), "misplaced (looks like offset %" PRIu64 ")",
                         mm->source_offset);
            else
                snprintf(mm->why, sizeof(mm->why),
                         "misplaced (looks like offset %" PRIu64 " of version %" PRIu32 ")",
                         mm->source_offset, v);
            return;
        }
    }

    mm->cause = FP_PATTERN_GARBAGE;
    snprintf(mm->why, sizeof(mm->why), "garbage");
}

bool fp_pattern_check(const void *buf, size_t len, uint64_t region, uint64_t offset,
                      uint32_t version, fp_pattern_mismatch_t *mm_p)
{
    const uint8_t *p = buf;
    uint64_t seed = stream_seed(region, version);
    fp_pattern_mismatch_t mm;
    size_t idx, last;

    idx = first_wrong(p, len, seed, offset);
    if (idx == len)
        return true;
    if (mm_p == NULL)
        return false;

    memset(&mm, 0, sizeof(mm));
    mm.addr = p + idx;
    mm.index = idx;
    mm.region = region;
    mm.offset = offset + idx;
    mm.version = version;
    mm.shown = len - idx < FP_PATTERN_SHOW ? len - idx : FP_PATTERN_SHOW;
    fill_seeded(mm.expected, mm.shown, seed, mm.offset);
    memcpy(mm.found, p + idx, mm.shown);
    count_wrong(p, len, idx, seed, offset, &mm.bad_bytes, &last);
    mm.last_offset = offset + last;
    guess_cause(p, len, region, offset, version, &mm);
    *mm_p = mm;
    return false;
}

static void print_bytes(FILE *out, const char *label, const uint8_t *bytes, size_t n)
{
    fprintf(out, "  %-9s", label);
    for (size_t i = 0; i < n; i++)
        fprintf(out, " %02x", bytes[i]);
    fputc('\n', out);
}

void fp_pattern_mismatch_print(const fp_pattern_mismatch_t *mm, FILE *out)
{
    fprintf(out, "pattern mismatch: region %" PRIu64 ", version %" PRIu32 "\n", mm->region,
            mm->version);
    fprintf(out,
            "  first wrong byte at %p (buffer index %zu), region offset %" PRIu64 " (0x%" PRIx64
            ")\n",
            mm->addr, mm->index, mm->offset, mm->offset);
    print_bytes(out, "expected:", mm->expected, mm->shown);
    print_bytes(out, "found:", mm->found, mm->shown);
    fprintf(out, "  %zu wrong bytes, the last at region offset %" PRIu64 " (0x%" PRIx64 ")\n",
            mm->bad_bytes, mm->last_offset, mm->last_offset);
    fprintf(out, "  guess: %s\n", mm->why);
}
