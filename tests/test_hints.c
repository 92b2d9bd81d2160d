/* SPDX-License-Identifier: MIT */
/*
 * Tests of prefetching: the automatic prefetcher on sequential, strided and
 * random scans, and the hints API (farpool_prefetch, farpool_prefetch_wait,
 * farpool_release), against a real farpoold on loopback.
 *
 * Coverage counts the blocks of a scan that a prefetch had asked for before
 * the scan touched them (landed, or still in flight: then the access waits
 * for that fetch instead of issuing its own); accuracy, the prefetched blocks
 * that were used before being evicted.
 *
 * The scans and hints run twice: on writable mappings (the shmem cache) and on
 * read-only ones (the page-moving cache, where the kernel has UFFDIO_MOVE),
 * whose prefetched blocks stay parked until their first touch. A hint over
 * blocks read ahead already maps them: touching them then costs no fault.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <farpool/farpool.h>

#include "client/context_int.h"
#include "client/uffd.h"
#include "common/daemon.h"
#include "common/pattern.h"

static fp_test_daemon_t daemon_;
static bool readonly_; /* the group running: mappings read-only */

static int group_setup(void **state)
{
    const char *const args[] = {"--capacity", "512M", "--slab-size", "16M", NULL};

    (void)state;
    return fp_test_daemon_start(args, &daemon_) == FP_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return fp_test_daemon_stop(&daemon_) == 0 ? 0 : -1;
}

static farpool_context_t *context_new(uint64_t cache_bytes)
{
    const char *nodes[] = {daemon_.addr};
    farpool_context_params_t p;
    farpool_context_t *ctx = NULL;

    memset(&p, 0, sizeof(p));
    p.field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_CACHE_BYTES;
    p.nodes = nodes;
    p.nnodes = 1;
    p.cache_bytes = cache_bytes;
    assert_int_equal(farpool_context_create(&p, &ctx), FP_OK);
    return ctx;
}

/*
 * Create region @name and map it: writable, or read-only in the read-only
 * group (then its bytes are zeros, as a new region's are).
 */
static void *map_new(farpool_context_t *ctx, const char *name, uint64_t size, uint32_t granule,
                     farpool_region_t **region_p)
{
    void *addr;

    assert_int_equal(farpool_region_create(ctx, name, size, granule, region_p), FP_OK);
    if (readonly_) {
        farpool_region_close(*region_p);
        assert_int_equal(farpool_region_open(ctx, name, FARPOOL_REGION_READONLY, region_p), FP_OK);
    }
    assert_int_equal(farpool_map(*region_p, &addr), FP_OK);
    return addr;
}

/* Read every word of block @b: a scan that really uses the bytes. */
static uint64_t use_block(const uint64_t *mem, uint64_t b, uint32_t granule)
{
    uint64_t sum = 0;

    for (size_t i = 0; i < granule / 8; i++)
        sum += mem[b * (granule / 8) + i];
    return sum;
}

static void print_stats(const char *what, const farpool_stats_t *st)
{
    fprintf(stderr,
            "%s: faults %llu fetched %llu prefetch issued %llu used %llu late %llu wasted %llu\n",
            what, (unsigned long long)st->faults, (unsigned long long)st->blocks_fetched,
            (unsigned long long)st->prefetch_issued, (unsigned long long)st->prefetch_used,
            (unsigned long long)st->prefetch_late, (unsigned long long)st->prefetch_wasted);
}

/* Scan every @stride-th block of a region 4x the cache; check coverage and accuracy. */
static void scan(uint64_t stride, const char *name)
{
    const uint32_t granule = 64 << 10;
    const uint64_t nblocks = 1024, budget = nblocks * granule / 4, warmup = 16;
    farpool_context_t *ctx = context_new(budget);
    farpool_region_t *region;
    farpool_stats_t st;
    volatile uint64_t sink = 0;
    uint64_t touched = 0, covered;
    void *addr;

    addr = map_new(ctx, name, nblocks * granule, granule, &region);
    for (uint64_t b = 0; b < nblocks; b += stride) {
        sink += use_block(addr, b, granule);
        touched++;
    }
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    print_stats(name, &st);
    covered = st.prefetch_used + st.prefetch_late;
    /* After the warm-up accesses that teach the trend, >= 90% were asked for ahead. */
    assert_true(covered >= (touched - warmup) * 9 / 10);
    /* At most 10% of what was prefetched went unused (the last window may overshoot). */
    assert_true(st.prefetch_wasted * 10 <= st.prefetch_issued);
    (void)sink;
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, name), FP_OK);
    farpool_context_destroy(ctx);
}

static void test_sequential_scan(void **state)
{
    (void)state;
    scan(1, "seq");
}

static void test_strided_scans(void **state)
{
    char name[32];

    (void)state;
    for (uint64_t k = 2; k <= 16; k *= 2) {
        snprintf(name, sizeof(name), "stride%llu", (unsigned long long)k);
        scan(k, name);
    }
}

/* With readahead off, a sequential scan fetches only what it touches. */
static void test_readahead_off(void **state)
{
    const char *nodes[] = {daemon_.addr};
    const uint32_t granule = 64 << 10;
    const uint64_t nblocks = 256;
    farpool_context_params_t p;
    farpool_context_t *ctx = NULL;
    farpool_region_t *region;
    farpool_stats_t st;
    volatile uint64_t sink = 0;
    void *addr;

    (void)state;
    memset(&p, 0, sizeof(p));
    p.field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_READAHEAD;
    p.nodes = nodes;
    p.nnodes = 1;
    p.readahead = 0;
    assert_int_equal(farpool_context_create(&p, &ctx), FP_OK);
    addr = map_new(ctx, "noreadahead", nblocks * granule, granule, &region);
    for (uint64_t b = 0; b < nblocks; b++)
        sink += use_block(addr, b, granule);
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    print_stats("noreadahead", &st);
    assert_int_equal(st.prefetch_issued, 0);
    assert_int_equal(st.blocks_fetched, nblocks);
    (void)sink;
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "noreadahead"), FP_OK);
    farpool_context_destroy(ctx);
}

static void test_random_stays_quiet(void **state)
{
    const uint32_t granule = 64 << 10;
    const uint64_t nblocks = 4096, budget = nblocks * granule / 4;
    farpool_context_t *ctx = context_new(budget);
    farpool_region_t *region;
    farpool_stats_t st;
    volatile uint8_t *mem;
    uint64_t seed = 99;

    (void)state;
    mem = map_new(ctx, "random", nblocks * granule, granule, &region);
    for (int i = 0; i < 4000; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        (void)mem[((seed >> 20) % nblocks) * granule + (seed & 4095)];
    }
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    print_stats("random", &st);
    /* Wasted prefetch bytes at most 10% of the bytes fetched. */
    assert_true(st.prefetch_wasted * granule * 10 <= st.bytes_in);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "random"), FP_OK);
    farpool_context_destroy(ctx);
}

/*
 * Region @name of @size at @granule, filled with pattern @seed and synced,
 * then opened again (read-only in the read-only group) and mapped afresh:
 * nothing of it cached. Its mapping.
 */
static void *filled_fresh(farpool_context_t *ctx, const char *name, uint64_t size, uint32_t granule,
                          uint64_t seed, farpool_region_t **region_p)
{
    void *addr;

    assert_int_equal(farpool_region_create(ctx, name, size, granule, region_p), FP_OK);
    assert_int_equal(farpool_map(*region_p, &addr), FP_OK);
    fp_pattern_fill(addr, size, seed, 0, 1);
    assert_int_equal(farpool_sync(*region_p), FP_OK);
    farpool_region_close(*region_p);
    assert_int_equal(
        farpool_region_open(ctx, name, readonly_ ? FARPOOL_REGION_READONLY : 0, region_p), FP_OK);
    assert_int_equal(farpool_map(*region_p, &addr), FP_OK);
    return addr;
}

static void test_prefetch_then_touch(void **state)
{
    const uint32_t granule = 2 << 20;
    const uint64_t size = 64ull << 20;
    farpool_context_t *ctx = context_new(256ull << 20);
    farpool_region_t *region;
    farpool_stats_t st;
    void *addr;

    (void)state;
    /* A fresh mapping: nothing cached. Hint the second half, then touch it at once:
     * every access is a hit or waits for the fetch the hint started. */
    addr = filled_fresh(ctx, "hinted", size, granule, 11, &region);
    assert_int_equal(farpool_prefetch(region, (uint8_t *)addr + size / 2, size / 2), FP_OK);
    FP_PATTERN_ASSERT((uint8_t *)addr + size / 2, size / 2, 11, size / 2, 1);
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    print_stats("hinted", &st);
    /* One fetch per block, every one of them the hint's: no access fetched on demand. */
    assert_int_equal(st.blocks_fetched, (size / 2) / granule);
    assert_int_equal(st.prefetch_issued, (size / 2) / granule);
    assert_int_equal(st.prefetch_wasted, 0);

    /* The first half, hinted and waited for, then touched: hits only. */
    assert_int_equal(farpool_prefetch(region, addr, size / 2), FP_OK);
    assert_int_equal(farpool_prefetch_wait(region), FP_OK);
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    assert_int_equal(st.blocks_fetched, size / granule);
    FP_PATTERN_ASSERT(addr, size / 2, 11, 0, 1);
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    assert_int_equal(st.blocks_fetched, size / granule); /* nothing fetched on demand */

    /* Out of range is refused. */
    assert_int_equal(farpool_prefetch(region, (uint8_t *)addr + size, 1), FP_ERR_OUT_OF_RANGE);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "hinted"), FP_OK);
    farpool_context_destroy(ctx);
}

/*
 * A hinted range used at once, in order, faster than it lands: the faults on
 * its blocks (late) are a sequential stream, but the application said what
 * it needs, so the read-ahead reads nothing past the range (it did: the MoE
 * program fetched 2.6x what it used). The range is used again after it was
 * pushed out, hinted once more, with the same result.
 */
static void test_hinted_faults_read_no_further(void **state)
{
    const uint32_t granule = 64 << 10;
    const uint64_t nblocks = 1024, hinted = 256, size = nblocks * granule;
    farpool_context_t *ctx = context_new(hinted * granule * 2);
    farpool_region_t *region;
    farpool_stats_t st;
    void *addr;

    (void)state;
    addr = filled_fresh(ctx, "hintonly", size, granule, 13, &region);
    assert_int_equal(farpool_prefetch(region, addr, hinted * granule), FP_OK);
    FP_PATTERN_ASSERT(addr, hinted * granule, 13, 0, 1);
    assert_int_equal(farpool_prefetch_wait(region), FP_OK);
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    print_stats("hinted, used at once", &st);
    assert_int_equal(st.blocks_fetched, hinted);
    assert_int_equal(st.prefetch_issued, hinted);

    /* Pushed out, then used again on demand (no hint this time): its faults
     * are a stream of blocks the application hinted once, and read no further. */
    assert_int_equal(farpool_release(region, addr, hinted * granule), FP_OK);
    FP_PATTERN_ASSERT(addr, hinted * granule, 13, 0, 1);
    assert_int_equal(farpool_prefetch_wait(region), FP_OK);
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    print_stats("released, used again", &st);
    assert_int_equal(st.blocks_fetched, 2 * hinted);
    assert_int_equal(st.prefetch_issued, hinted);

    /* The blocks never hinted keep their read-ahead. */
    FP_PATTERN_ASSERT((uint8_t *)addr + hinted * granule, hinted * granule, 13, hinted * granule,
                      1);
    assert_int_equal(farpool_prefetch_wait(region), FP_OK);
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    print_stats("never hinted", &st);
    assert_true(st.prefetch_issued > hinted);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "hintonly"), FP_OK);
    farpool_context_destroy(ctx);
}

/*
 * A hint over a block cached already, which CLOCK judges cold: the next
 * hint's fetch, which may take room only from cold blocks, must not push it
 * out before its use (it did: an MoE program's hinted experts that were
 * cached from an earlier token were fetched again on demand).
 */
static void test_hint_keeps_cached_block(void **state)
{
    const char *nodes[] = {daemon_.addr};
    const uint32_t granule = 64 << 10;
    const uint64_t nblocks = 64, cached = 4, size = nblocks * granule;
    farpool_context_params_t p;
    farpool_context_t *ctx = NULL;
    farpool_region_t *region;
    farpool_stats_t before, after;
    volatile uint64_t sink = 0;
    const uint64_t *mem;

    (void)state;
    memset(&p, 0, sizeof(p));
    p.field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_READAHEAD |
                   FARPOOL_CONTEXT_PARAM_CACHE_BYTES;
    p.nodes = nodes;
    p.nnodes = 1;
    p.readahead = 0;
    p.cache_bytes = cached * granule;
    assert_int_equal(farpool_context_create(&p, &ctx), FP_OK);
    mem = filled_fresh(ctx, "keep", size, granule, 14, &region);
    /* A full cache, then one block more: CLOCK passes over the others,
     * which are cold from then on. */
    for (uint64_t b = 0; b <= cached; b++)
        sink += use_block(mem, b, granule);
    /* Block 1 is hinted (cached: nothing to fetch), then blocks never cached. */
    assert_int_equal(farpool_prefetch(region, mem + granule / 8, granule), FP_OK);
    assert_int_equal(farpool_prefetch(region, mem + 16 * granule / 8, 2 * granule), FP_OK);
    assert_int_equal(farpool_prefetch_wait(region), FP_OK);
    assert_int_equal(farpool_region_stats(region, &before, sizeof(before)), FP_OK);
    print_stats("hinted", &before);
    FP_PATTERN_ASSERT((const uint8_t *)mem + granule, granule, 14, granule, 1);
    assert_int_equal(farpool_region_stats(region, &after, sizeof(after)), FP_OK);
    print_stats("used", &after);
    assert_int_equal(after.faults, before.faults); /* still cached: no fetch */
    assert_int_equal(after.blocks_fetched, before.blocks_fetched);
    (void)sink;
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "keep"), FP_OK);
    farpool_context_destroy(ctx);
}

/*
 * Blocks the automatic prefetcher brought (parked, or all mapped but a first
 * page), then hinted: the hint maps them, so that using them costs no fault
 * at all, as for the blocks the hint fetched itself.
 */
static void test_hint_maps_readahead(void **state)
{
    const uint32_t granule = 2 << 20;
    const uint64_t size = 128ull << 20, head = 16;
    farpool_context_t *ctx = context_new(256ull << 20);
    farpool_region_t *region;
    farpool_stats_t before, after;
    volatile uint64_t sink = 0;
    void *addr;

    (void)state;
    addr = filled_fresh(ctx, "ahead", size, granule, 12, &region);
    /* A sequential start: the prefetcher reads ahead of it. */
    for (uint64_t b = 0; b < head; b++)
        sink += use_block(addr, b, granule);
    (void)sink;
    assert_int_equal(farpool_prefetch_wait(region), FP_OK);
    assert_int_equal(farpool_region_stats(region, &before, sizeof(before)), FP_OK);
    print_stats("read ahead", &before);
    assert_true(before.prefetch_issued > 0);
    assert_int_equal(before.prefetch_hinted, 0);

    /* The rest hinted: what was read ahead is mapped, the others fetched. */
    assert_int_equal(
        farpool_prefetch(region, (uint8_t *)addr + head * granule, size - head * granule), FP_OK);
    assert_int_equal(farpool_prefetch_wait(region), FP_OK);
    assert_int_equal(farpool_region_stats(region, &before, sizeof(before)), FP_OK);
    FP_PATTERN_ASSERT((uint8_t *)addr + head * granule, size - head * granule, 12, head * granule,
                      1);
    assert_int_equal(farpool_region_stats(region, &after, sizeof(after)), FP_OK);
    print_stats("hinted", &after);
    assert_int_equal(after.faults, before.faults);
    assert_int_equal(after.minor_faults, before.minor_faults);
    assert_int_equal(after.blocks_fetched, size / granule); /* each block once */
    assert_int_equal(after.prefetch_wasted, 0);
    /* Every block fetched ahead is accounted for: used (touched or hinted after
     * it landed), late, or the hint's own. */
    assert_int_equal(after.prefetch_used + after.prefetch_late + after.prefetch_hinted,
                     after.prefetch_issued);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "ahead"), FP_OK);
    farpool_context_destroy(ctx);
}

/*
 * Hints racing faults on the same blocks: in each round the main thread
 * hints a range while touchers read words of it (a block may go from absent
 * to hinted while a fault on it is being handled), then releases it. The
 * engine must make progress every round, and every word read must be right.
 * Bounded in rounds and time; a round that does not end in ROUND_LIMIT_S is
 * a hang, reported as such.
 */
#define RACE_TOUCHERS 3
#define RACE_ROUNDS   20000
#define RACE_S        8  /* rounds stop after this long */
#define ROUND_LIMIT_S 20 /* a round that takes longer has hung */

typedef struct race {
    const uint8_t *mem;
    uint64_t size, granule;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int round;       /* guarded by lock: the round being run, -1: stop */
    uint64_t lo, hi; /* guarded by lock: its range */
    int done;        /* guarded by lock: touchers done with the round */
    _Atomic uint64_t bad, reads;
} race_t;

static void *race_toucher(void *arg)
{
    race_t *r = arg;
    uint64_t seed = (uint64_t)(uintptr_t)&seed;
    int seen = 0;

    for (;;) {
        uint64_t lo, hi;

        pthread_mutex_lock(&r->lock);
        while (r->round == seen)
            pthread_cond_wait(&r->cond, &r->lock);
        seen = r->round;
        lo = r->lo;
        hi = r->hi;
        pthread_mutex_unlock(&r->lock);
        if (seen < 0)
            return NULL;
        /* Each block's first word, from each toucher in another order: the
         * faults come while the hint moves the same blocks to HINTED. */
        for (uint64_t i = 0, n = (hi - lo) / r->granule; i < n; i++) {
            uint64_t off;

            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            off = lo + ((i + (seed >> 33)) % n) * r->granule;
            if (!fp_pattern_check(r->mem + off, 8, 21, off, 1, NULL))
                atomic_fetch_add(&r->bad, 1);
            atomic_fetch_add(&r->reads, 1);
        }
        pthread_mutex_lock(&r->lock);
        r->done++;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
    }
}

static void test_hints_race_faults(void **state)
{
    const uint32_t granule = 4 << 10;
    const uint64_t size = 4ull << 20;
    farpool_context_t *ctx = context_new(size / 2);
    farpool_region_t *region;
    pthread_t th[RACE_TOUCHERS];
    struct timespec t0, now;
    uint64_t seed = 5;
    race_t r;
    int round;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.mem = filled_fresh(ctx, "race", size, granule, 21, &region);
    r.size = size;
    r.granule = granule;
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.cond, NULL);
    for (int i = 0; i < RACE_TOUCHERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_toucher, &r), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (round = 1; round <= RACE_ROUNDS; round++) {
        struct timespec limit;
        uint64_t first, nblocks;

        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= RACE_S)
            break;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        nblocks = 1 + (seed >> 40) % 8;
        first = (seed >> 20) % (size / granule - nblocks);
        pthread_mutex_lock(&r.lock);
        r.lo = first * granule;
        r.hi = (first + nblocks) * granule;
        r.done = 0;
        r.round = round;
        pthread_cond_broadcast(&r.cond);
        pthread_mutex_unlock(&r.lock);
        /* The hint, while the touchers fault on the same blocks. */
        assert_int_equal(farpool_prefetch(region, r.mem + r.lo, r.hi - r.lo), FP_OK);
        clock_gettime(CLOCK_REALTIME, &limit);
        limit.tv_sec += ROUND_LIMIT_S;
        pthread_mutex_lock(&r.lock);
        while (r.done < RACE_TOUCHERS) {
            if (pthread_cond_timedwait(&r.cond, &r.lock, &limit) != 0) {
                fprintf(stderr,
                        "round %d: the touchers of blocks %llu-%llu are stuck after %d s: "
                        "the engine hangs\n",
                        round, (unsigned long long)first, (unsigned long long)(first + nblocks - 1),
                        ROUND_LIMIT_S);
                fail(); /* the stuck threads end with the process */
            }
        }
        pthread_mutex_unlock(&r.lock);
        assert_int_equal(farpool_prefetch_wait(region), FP_OK);
        assert_int_equal(farpool_release(region, r.mem + r.lo, r.hi - r.lo), FP_OK);
    }
    pthread_mutex_lock(&r.lock);
    r.round = -1;
    pthread_cond_broadcast(&r.cond);
    pthread_mutex_unlock(&r.lock);
    for (int i = 0; i < RACE_TOUCHERS; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "hint race: %d rounds, %llu reads, %llu wrong\n", round - 1,
            (unsigned long long)atomic_load(&r.reads), (unsigned long long)atomic_load(&r.bad));
    assert_true(round > 20); /* enough rounds ran to mean something */
    assert_int_equal(atomic_load(&r.bad), 0);
    pthread_cond_destroy(&r.cond);
    pthread_mutex_destroy(&r.lock);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "race"), FP_OK);
    farpool_context_destroy(ctx);
}

static void test_release_writes_back(void **state)
{
    const uint32_t granule = 64 << 10;
    const uint64_t size = 16ull << 20, part = 4ull << 20;
    farpool_context_t *ctx = context_new(64ull << 20), *other;
    farpool_region_t *region, *view;
    farpool_stats_t before, after;
    void *addr, *other_addr;

    (void)state;
    assert_int_equal(farpool_region_create(ctx, "released", size, granule, &region), FP_OK);
    assert_int_equal(farpool_map(region, &addr), FP_OK);
    fp_pattern_fill(addr, size, 13, 0, 2); /* all dirty, all cached */
    assert_int_equal(farpool_region_stats(region, &before, sizeof(before)), FP_OK);
    assert_int_equal(farpool_release(region, (uint8_t *)addr + part, part), FP_OK);
    assert_int_equal(farpool_region_stats(region, &after, sizeof(after)), FP_OK);
    /* The cache shrank by exactly the released amount, after writing it back. */
    assert_int_equal(before.cache_bytes - after.cache_bytes, part);
    assert_int_equal(after.writebacks - before.writebacks, part / granule);

    /* The released bytes are on the node: another context sees them. */
    other = context_new(8ull << 20);
    assert_int_equal(farpool_region_open(other, "released", FARPOOL_REGION_READONLY, &view), FP_OK);
    assert_int_equal(farpool_map(view, &other_addr), FP_OK);
    FP_PATTERN_ASSERT((uint8_t *)other_addr + part, part, 13, part, 2);
    farpool_region_close(view);
    farpool_context_destroy(other);

    /* And the released range reads back right here too, fetched again. */
    FP_PATTERN_ASSERT((uint8_t *)addr + part, part, 13, part, 2);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "released"), FP_OK);
    farpool_context_destroy(ctx);
}

/* A reader checking random words of a region while another thread rewrites it. */
typedef struct verifier {
    const uint64_t *mem;
    uint64_t words;
    _Atomic int version; /* every word holds (index, version) or (index, version - 1) */
    _Atomic bool stop;
    _Atomic uint64_t bad, checked;
} verifier_t;

static uint64_t word_value(uint64_t i, int version)
{
    return (i * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)version << 56);
}

static void *verify_words(void *arg)
{
    verifier_t *v = arg;
    uint64_t seed = 7;

    while (!atomic_load(&v->stop)) {
        uint64_t i, w;
        int ver;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        i = (seed >> 17) % v->words;
        ver = atomic_load(&v->version);
        /* Racing with the writer on purpose: relaxed atomics make that defined. */
        w = __atomic_load_n(&v->mem[i], __ATOMIC_RELAXED);
        if (w != word_value(i, ver) && w != word_value(i, ver - 1) && w != word_value(i, ver + 1))
            atomic_fetch_add(&v->bad, 1);
        atomic_fetch_add(&v->checked, 1);
    }
    return NULL;
}

/*
 * Prefetching, eviction and write-back at once: sequential read-modify-write
 * passes over a region 4x the cache (the prefetcher reads ahead, dirty blocks
 * are written back as they are evicted) while another thread checks random
 * words; then everything is checked through a new mapping.
 */
static void test_prefetch_with_writes(void **state)
{
    const uint32_t granule = 64 << 10;
    const uint64_t size = 32ull << 20, words = size / 8;
    farpool_context_t *ctx = context_new(size / 4);
    farpool_region_t *region;
    farpool_stats_t st;
    pthread_t th;
    verifier_t v;
    uint64_t *mem;
    void *addr;

    (void)state;
    memset(&v, 0, sizeof(v));
    assert_int_equal(farpool_region_create(ctx, "rmw", size, granule, &region), FP_OK);
    assert_int_equal(farpool_map(region, &addr), FP_OK);
    mem = addr;
    for (uint64_t i = 0; i < words; i++)
        __atomic_store_n(&mem[i], word_value(i, 1), __ATOMIC_RELAXED);
    v.mem = mem;
    v.words = words;
    atomic_store(&v.version, 1);
    assert_int_equal(pthread_create(&th, NULL, verify_words, &v), 0);
    for (int version = 2; version <= 4; version++) {
        atomic_store(&v.version, version);
        for (uint64_t i = 0; i < words; i++) {
            if (__atomic_load_n(&mem[i], __ATOMIC_RELAXED) != word_value(i, version - 1))
                atomic_fetch_add(&v.bad, 1);
            __atomic_store_n(&mem[i], word_value(i, version), __ATOMIC_RELAXED);
        }
    }
    atomic_store(&v.stop, true);
    pthread_join(th, NULL);
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    print_stats("rmw", &st);
    assert_true(st.prefetch_used > 0);
    assert_true(st.writebacks > 0);
    assert_int_equal(atomic_load(&v.bad), 0);
    assert_true(atomic_load(&v.checked) > 0);
    assert_int_equal(farpool_unmap(region), FP_OK);
    assert_int_equal(farpool_map(region, &addr), FP_OK);
    mem = addr;
    for (uint64_t i = 0; i < words; i++) {
        if (mem[i] != word_value(i, 4))
            fail_msg("word %llu: %#llx after remap", (unsigned long long)i,
                     (unsigned long long)mem[i]);
    }
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "rmw"), FP_OK);
    farpool_context_destroy(ctx);
}

/* `farpool status --clients` shows this process's region and its prefetch counters. */
static void test_status_shows_running_client(void **state)
{
    const uint32_t granule = 64 << 10;
    farpool_context_t *ctx = context_new(8ull << 20);
    farpool_region_t *region;
    char cmd[512], out[8192], needle[64];
    volatile uint64_t sink = 0;
    size_t n;
    FILE *f;
    void *addr;

    (void)state;
    addr = map_new(ctx, "watched", 16 << 20, granule, &region);
    for (uint64_t b = 0; b < 256; b++)
        sink += use_block(addr, b, granule);
    snprintf(cmd, sizeof(cmd), "%s status --clients --json", FP_TEST_FARPOOL_CLI);
    f = popen(cmd, "r");
    assert_non_null(f);
    n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    assert_int_equal(pclose(f), 0);
    snprintf(needle, sizeof(needle), "\"pid\":%d,\"region\":\"watched\"", (int)getpid());
    assert_non_null(strstr(out, needle));
    assert_non_null(strstr(out, "\"prefetch_accuracy\":"));
    assert_non_null(strstr(out, "\"prefetch_coverage\":"));
    (void)sink;
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "watched"), FP_OK);
    farpool_context_destroy(ctx);

    /* Gone once unmapped. */
    f = popen(cmd, "r");
    assert_non_null(f);
    n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    pclose(f);
    assert_null(strstr(out, needle));
}

static sigjmp_buf fence_jump;
static volatile sig_atomic_t fence_sig;

static void fence_on_signal(int sig)
{
    fence_sig = sig;
    siglongjmp(fence_jump, 1);
}

/* Read the byte at @p: 0 if it reads, else the signal it got. */
static int read_signal(const volatile uint8_t *p)
{
    struct sigaction sa, old_segv, old_bus;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fence_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
    fence_sig = 0;
    if (sigsetjmp(fence_jump, 1) == 0)
        (void)*p;
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    return (int)fence_sig;
}

/*
 * The shim's fence (fp_region_fence, internal): the fenced blocks leave the
 * cache and are never fetched, not by the read-ahead nor by a hint, and are
 * PROT_NONE (SIGSEGV); a fault on one made accessible behind the fence's
 * back gets SIGBUS; opened again, they read as the node has them (no stale
 * poison).
 */
static void test_fence(void **state)
{
    const uint32_t granule = 64 << 10;
    const uint64_t nblocks = 64, size = nblocks * granule, part = 16;
    farpool_context_t *ctx = context_new(size / 4);
    farpool_region_t *region;
    farpool_stats_t st;
    uint64_t fetched;
    uint8_t *addr;

    (void)state;
    addr = filled_fresh(ctx, "fenced", size, granule, 21, &region);
    /* The first blocks read, then everything after them fenced, resident blocks included. */
    FP_PATTERN_ASSERT(addr, part * granule, 21, 0, 1);
    assert_int_equal(
        fp_region_fence(region, addr + (part / 2) * granule, size - (part / 2) * granule, true),
        FP_OK);
    assert_int_equal(read_signal(addr + part * granule), SIGSEGV);
    assert_int_equal(read_signal(addr + (part / 2) * granule), SIGSEGV); /* was resident */
    /* Hints and the read-ahead of a stream up to the fence fetch nothing behind it. */
    FP_PATTERN_ASSERT(addr, (part / 2) * granule, 21, 0, 1);
    assert_int_equal(farpool_prefetch(region, addr, size), FP_OK);
    assert_int_equal(farpool_prefetch_wait(region), FP_OK);
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    fetched = st.blocks_fetched;
    assert_true(fetched <= part + 32); /* the first part (and what it read ahead) only */
    /* Made accessible behind the fence's back: SIGBUS, never zeros; also for
     * a block that was mapped (write-protected) before the fence, whose page
     * table entries may keep uffd-wp markers. */
    assert_int_equal(mprotect(addr + part * granule, granule, PROT_READ | PROT_WRITE), 0);
    assert_int_equal(read_signal(addr + part * granule), SIGBUS);
    assert_int_equal(mprotect(addr + (part / 2) * granule, granule, PROT_READ | PROT_WRITE), 0);
    assert_int_equal(read_signal(addr + (part / 2) * granule), SIGBUS);
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    assert_int_equal(st.blocks_fetched, fetched);
    /* Opened: every byte as the node has it (the poisoned block's too). */
    assert_int_equal(fp_region_fence(region, addr, size, false), FP_OK);
    FP_PATTERN_ASSERT(addr, size, 21, 0, 1);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "fenced"), FP_OK);
    farpool_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest writable[] = {
        cmocka_unit_test(test_sequential_scan),
        cmocka_unit_test(test_strided_scans),
        cmocka_unit_test(test_readahead_off),
        cmocka_unit_test(test_random_stays_quiet),
        cmocka_unit_test(test_prefetch_then_touch),
        cmocka_unit_test(test_hinted_faults_read_no_further),
        cmocka_unit_test(test_hint_keeps_cached_block),
        cmocka_unit_test(test_hint_maps_readahead),
        cmocka_unit_test(test_hints_race_faults),
        cmocka_unit_test(test_release_writes_back),
        cmocka_unit_test(test_status_shows_running_client),
        cmocka_unit_test(test_prefetch_with_writes),
        cmocka_unit_test(test_fence),
    };
    const struct CMUnitTest readonly[] = {
        cmocka_unit_test(test_sequential_scan),
        cmocka_unit_test(test_strided_scans),
        cmocka_unit_test(test_readahead_off),
        cmocka_unit_test(test_random_stays_quiet),
        cmocka_unit_test(test_prefetch_then_touch),
        cmocka_unit_test(test_hinted_faults_read_no_further),
        cmocka_unit_test(test_hint_keeps_cached_block),
        cmocka_unit_test(test_hint_maps_readahead),
        cmocka_unit_test(test_hints_race_faults),
        cmocka_unit_test(test_status_shows_running_client),
        cmocka_unit_test(test_fence),
    };
    fp_uffd_t uffd;
    int failed;
    bool user_mode_only;

    if (fp_uffd_open(NULL, &uffd, &user_mode_only, NULL) == FP_ERR_UNSUPPORTED) {
        fprintf(stderr, "test_hints: SKIP: this kernel lacks userfaultfd shmem minor faults, "
                        "write-protect or poison (Linux 6.6+ needed)\n");
        return 77;
    }
    fp_uffd_close(&uffd);
    failed =
        cmocka_run_group_tests_name("writable mappings", writable, group_setup, group_teardown);
    readonly_ = true;
    failed +=
        cmocka_run_group_tests_name("read-only mappings", readonly, group_setup, group_teardown);
    return failed;
}
