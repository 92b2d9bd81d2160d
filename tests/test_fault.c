/* SPDX-License-Identifier: MIT */
/*
 * Tests of transparent remote mapping: the userfaultfd fault engine and its
 * local cache (src/client/engine.c), against a real farpoold on loopback.
 *
 * - concurrent random reads and writes from 4 threads over a region 4x the
 *   cache budget, checked word by word against a reference copy, at granules
 *   4 KiB, 64 KiB and 2 MiB; the cache (its memfd's allocated size, sampled
 *   every 2 ms) never holds more than the budget plus one block per thread;
 * - bytes written, synced and unmapped read back equal in a new process;
 * - eviction quality: a Zipf(0.99) block trace with the cache at 25% of the
 *   working set hits at least 0.9x as often as exact LRU, and more than FIFO,
 *   on a writable mapping and on a read-only one (the page-moving cache);
 * - a memory node killed mid-run: the next access that needs it gets SIGBUS,
 *   never wrong bytes; a node stopped (alive, silent): SIGBUS after the
 *   context's timeout, not a wait for ever;
 * - a forked child has no mapping of the region; a read-only region rejects
 *   writes.
 *
 * Needs userfaultfd with shmem minor faults, write-protect and poison (Linux
 * 6.6+): where the kernel lacks them the program exits 77 (skip) and says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <farpool/farpool.h>

#include "client/uffd.h"
#include "common/daemon.h"
#include "common/pattern.h"

#ifdef FP_SANITIZED
#define SCALE 4 /* sanitizers slow everything down: fewer operations, same checks */
#else
#define SCALE 1
#endif

#define THREADS 4

static fp_test_daemon_t daemon_;

static int group_setup(void **state)
{
    const char *const args[] = {"--capacity", "1G", "--slab-size", "16M", NULL};

    (void)state;
    return fp_test_daemon_start(args, &daemon_) == FP_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return fp_test_daemon_stop(&daemon_) == 0 ? 0 : -1;
}

static farpool_context_t *context_new(const char *addr, uint64_t cache_bytes)
{
    const char *nodes[] = {addr};
    farpool_context_params_t p;
    farpool_context_t *ctx = NULL;

    memset(&p, 0, sizeof(p));
    p.field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_CACHE_BYTES |
                   FARPOOL_CONTEXT_PARAM_TIMEOUT;
    p.nodes = nodes;
    p.nnodes = 1;
    p.cache_bytes = cache_bytes;
    p.timeout_ms = 3000;
    assert_int_equal(farpool_context_create(&p, &ctx), FP_OK);
    return ctx;
}

/*
 * Bytes of memory the region's cache holds now: the allocated size of its
 * memfd, found through /proc/self/fd. Unlike an smaps walk, which is not a
 * snapshot (it can count a block about to be evicted and the block fetched in
 * its place), the inode's block count is one atomic figure.
 */
static uint64_t region_cache_bytes(const char *name)
{
    char path[300], target[512], needle[300];
    uint64_t bytes = 0;
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *de;

    if (dir == NULL)
        return 0;
    snprintf(needle, sizeof(needle), "/memfd:%s (deleted)", name);
    while ((de = readdir(dir)) != NULL) {
        struct stat st;
        ssize_t n;
        snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
        n = readlink(path, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, needle) == 0 && stat(path, &st) == 0) {
            bytes = (uint64_t)st.st_blocks * 512;
            break;
        }
    }
    closedir(dir);
    return bytes;
}

/* ---- concurrent random reads and writes against a reference copy ---------- */

typedef struct rw_run {
    uint64_t *region;    /* the mapping */
    uint64_t *reference; /* what it must hold */
    uint64_t words;
    unsigned ops;
    _Atomic uint64_t mismatches;
    _Atomic bool sampling;
    const char *name;
    _Atomic uint64_t rss_max;
} rw_run_t;

typedef struct rw_thread {
    rw_run_t *run;
    unsigned id;
} rw_thread_t;

/* Thread @id owns the words i with i % THREADS == id: threads share every block, no word. */
static void *rw_worker(void *arg)
{
    rw_thread_t *t = arg;
    rw_run_t *r = t->run;
    uint64_t seed = 0x9E3779B97F4A7C15ull * (t->id + 1);

    for (unsigned n = 0; n < r->ops; n++) {
        uint64_t i;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        i = (seed % (r->words / THREADS)) * THREADS + t->id;
        if (seed & (1ull << 40)) {
            uint64_t v = seed ^ (i * 0xD1B54A32D192ED03ull);
            r->region[i] = v;
            r->reference[i] = v;
        } else if (r->region[i] != r->reference[i]) {
            if (atomic_fetch_add(&r->mismatches, 1) < 5)
                fprintf(stderr, "word %llu (offset %llu): %#llx, expected %#llx\n",
                        (unsigned long long)i, (unsigned long long)i * 8,
                        (unsigned long long)r->region[i], (unsigned long long)r->reference[i]);
        }
    }
    return NULL;
}

static void *rss_sampler(void *arg)
{
    rw_run_t *r = arg;

    while (atomic_load(&r->sampling)) {
        uint64_t rss = region_cache_bytes(r->name);
        if (rss > atomic_load(&r->rss_max))
            atomic_store(&r->rss_max, rss);
        usleep(2000);
    }
    return NULL;
}

static void run_random_rw(uint32_t granule, const char *name)
{
    const uint64_t budget = 8ull << 20, size = 4 * budget;
    farpool_context_t *ctx = context_new(daemon_.addr, budget);
    farpool_region_t *region;
    farpool_stats_t st;
    pthread_t th[THREADS], sampler;
    rw_thread_t targs[THREADS];
    rw_run_t r;
    void *addr;

    memset(&r, 0, sizeof(r));
    assert_int_equal(farpool_region_create(ctx, name, size, granule, &region), FP_OK);
    assert_int_equal(farpool_map(region, &addr), FP_OK);
    r.region = addr;
    r.words = size / 8;
    r.reference = calloc(r.words, 8); /* a new region reads as zeros */
    assert_non_null(r.reference);
    /* Random access to 2 MiB blocks moves 2-4 MiB per miss: fewer operations. */
    r.ops = (granule >= (2u << 20) ? 300 : 20000) / SCALE;
    r.name = name;
    atomic_store(&r.sampling, true);
    assert_int_equal(pthread_create(&sampler, NULL, rss_sampler, &r), 0);
    for (unsigned i = 0; i < THREADS; i++) {
        targs[i].run = &r;
        targs[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, rw_worker, &targs[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&r.sampling, false);
    pthread_join(sampler, NULL);
    assert_int_equal(atomic_load(&r.mismatches), 0);

    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    fprintf(stderr,
            "granule %u: faults %llu minor %llu fetched %llu evictions %llu writebacks %llu "
            "cache peak %llu sampled max %llu\n",
            granule, (unsigned long long)st.faults, (unsigned long long)st.minor_faults,
            (unsigned long long)st.blocks_fetched, (unsigned long long)st.evictions,
            (unsigned long long)st.writebacks, (unsigned long long)st.cache_peak,
            (unsigned long long)atomic_load(&r.rss_max));
    assert_true(st.evictions > 0);  /* the region did not fit */
    assert_true(st.writebacks > 0); /* dirty blocks were written back before being dropped */
    /* The budget holds, give or take one block per faulting thread: the block it
     * is waiting for (and, once its faulting part has been mapped early, the next
     * one it touches while the rest of the first is still on the wire). */
    assert_true(st.cache_peak <= budget + THREADS * (uint64_t)granule);
    assert_true(atomic_load(&r.rss_max) <= budget + THREADS * (uint64_t)granule);

    /* Everything, cached or not, after a sync, an unmap and a new mapping. */
    assert_int_equal(farpool_sync(region), FP_OK);
    assert_int_equal(farpool_unmap(region), FP_OK);
    assert_int_equal(farpool_map(region, &addr), FP_OK);
    assert_memory_equal(addr, r.reference, size);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, name), FP_OK);
    farpool_context_destroy(ctx);
    free(r.reference);
}

static void test_random_rw_4k(void **state)
{
    (void)state;
    run_random_rw(4096, "rw4k");
}

static void test_random_rw_64k(void **state)
{
    (void)state;
    run_random_rw(64 << 10, "rw64k");
}

static void test_random_rw_2m(void **state)
{
    (void)state;
    run_random_rw(2 << 20, "rw2m");
}

/* ---- persistence across processes -------------------------------------------- */

static void test_new_process_reads_back(void **state)
{
    const uint64_t size = 24ull << 20;
    farpool_context_t *ctx = context_new(daemon_.addr, 64ull << 20);
    farpool_region_t *region;
    void *addr;
    pid_t pid;
    int wstatus;

    (void)state;
    assert_int_equal(farpool_region_create(ctx, "persist", size, 64 << 10, &region), FP_OK);
    assert_int_equal(farpool_map(region, &addr), FP_OK);
    fp_pattern_fill(addr, size, 7, 0, 1);
    assert_int_equal(farpool_sync(region), FP_OK);
    assert_int_equal(farpool_unmap(region), FP_OK);
    farpool_region_close(region);
    farpool_context_destroy(ctx);

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A new process: a new context, the region found by name. */
        fp_pattern_mismatch_t mm;
        ctx = context_new(daemon_.addr, 4ull << 20);
        if (farpool_region_open(ctx, "persist", FARPOOL_REGION_READONLY, &region) != FP_OK ||
            farpool_map(region, &addr) != FP_OK)
            _exit(2);
        if (!fp_pattern_check(addr, size, 7, 0, 1, &mm)) {
            fp_pattern_mismatch_print(&mm, stderr);
            _exit(3);
        }
        farpool_context_destroy(ctx);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_true(WIFEXITED(wstatus));
    assert_int_equal(WEXITSTATUS(wstatus), 0);

    ctx = context_new(daemon_.addr, 64ull << 20);
    assert_int_equal(farpool_region_delete(ctx, "persist"), FP_OK);
    farpool_context_destroy(ctx);
}

/* ---- eviction quality on a skewed trace --------------------------------------- */

/* Blocks of a Zipf(s) distribution over n ranks, shuffled so rank is not address. */
static void zipf_trace(uint32_t *trace, size_t len, uint32_t n, double s, uint64_t seed)
{
    double *cdf = malloc(n * sizeof(*cdf)), total = 0;
    uint32_t *perm = malloc(n * sizeof(*perm));

    for (uint32_t i = 0; i < n; i++) {
        total += 1.0 / pow((double)(i + 1), s);
        cdf[i] = total;
        perm[i] = i;
    }
    for (uint32_t i = n - 1; i > 0; i--) {
        uint32_t j;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        j = (uint32_t)((seed >> 33) % (i + 1));
        uint32_t tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    for (size_t k = 0; k < len; k++) {
        double u;
        uint32_t lo = 0, hi = n - 1;
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        u = (double)(seed >> 11) / 9007199254740992.0 * total;
        while (lo < hi) {
            uint32_t mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        trace[k] = perm[lo];
    }
    free(cdf);
    free(perm);
}

/* Hits of an exact LRU (fifo = false) or FIFO cache of @cap blocks on @trace. */
static uint64_t simulate(const uint32_t *trace, size_t len, uint32_t n, uint32_t cap, bool fifo)
{
    uint64_t *stamp = calloc(n, sizeof(*stamp)), hits = 0, clock = 0;
    bool *in = calloc(n, sizeof(*in));
    uint32_t *queue = malloc(len * sizeof(*queue)), used = 0;
    size_t qhead = 0, qtail = 0;

    for (size_t k = 0; k < len; k++) {
        uint32_t b = trace[k];
        clock++;
        if (in[b]) {
            hits++;
            if (!fifo)
                stamp[b] = clock;
            continue;
        }
        if (used == cap) {
            uint32_t victim = 0;
            if (fifo) {
                victim = queue[qhead++];
            } else {
                uint64_t best = UINT64_MAX;
                for (uint32_t i = 0; i < n; i++)
                    if (in[i] && stamp[i] < best) {
                        best = stamp[i];
                        victim = i;
                    }
            }
            in[victim] = false;
            used--;
        }
        in[b] = true;
        stamp[b] = clock;
        queue[qtail++] = b;
        used++;
    }
    free(stamp);
    free(in);
    free(queue);
    return hits;
}

/* On a writable mapping (shmem cache) or a read-only one (page-moving cache). */
static void check_eviction_quality(bool readonly)
{
    const uint32_t nblocks = 2048, cap = nblocks / 4;
    const size_t len = 60000 / SCALE;
    farpool_context_t *ctx = context_new(daemon_.addr, (uint64_t)cap * 4096);
    farpool_region_t *region;
    farpool_stats_t st;
    uint32_t *trace = malloc(len * sizeof(*trace));
    volatile uint8_t *mem;
    uint64_t lru, fifo, ours;
    void *addr;

    zipf_trace(trace, len, nblocks, 0.99, 42);
    lru = simulate(trace, len, nblocks, cap, false);
    fifo = simulate(trace, len, nblocks, cap, true);
    assert_int_equal(farpool_region_create(ctx, "zipf", (uint64_t)nblocks * 4096, 4096, &region),
                     FP_OK);
    if (readonly) {
        farpool_region_close(region);
        assert_int_equal(farpool_region_open(ctx, "zipf", FARPOOL_REGION_READONLY, &region), FP_OK);
    }
    assert_int_equal(farpool_map(region, &addr), FP_OK);
    mem = addr;
    for (size_t k = 0; k < len; k++)
        (void)mem[(uint64_t)trace[k] * 4096 + (k % 4096)];
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    ours = len - st.blocks_fetched;
    fprintf(stderr, "%s: hit ratio: farpool %.3f, exact LRU %.3f, FIFO %.3f (%zu accesses)\n",
            readonly ? "read-only" : "writable", (double)ours / (double)len,
            (double)lru / (double)len, (double)fifo / (double)len, len);
    assert_true((double)ours >= 0.9 * (double)lru);
    assert_true(ours > fifo);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "zipf"), FP_OK);
    farpool_context_destroy(ctx);
    free(trace);
}

static void test_eviction_quality(void **state)
{
    (void)state;
    check_eviction_quality(false);
    check_eviction_quality(true);
}

/* ---- a node killed mid-run ---------------------------------------------------- */

static sigjmp_buf bus_jump;
static volatile sig_atomic_t bus_count;

static void on_fault_signal(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
    bus_count++;
    siglongjmp(bus_jump, 1);
}

/* Read (or, if @write, write) the byte at @p; true if that raised @sig (the handler is restored).
 */
static bool access_raises(int sig, volatile uint8_t *p, bool write)
{
    struct sigaction sa, old;

    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fault_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(sig, &sa, &old);
    bus_count = 0;
    if (sigsetjmp(bus_jump, 1) == 0) {
        if (write)
            *p = 1;
        else
            (void)*p;
    }
    sigaction(sig, &old, NULL);
    return bus_count == 1;
}

static bool touch_gets_sigbus(volatile uint8_t *p)
{
    return access_raises(SIGBUS, p, false);
}

/*
 * Region @name of @size at 64 KiB granule, filled with pattern @seed and
 * synced, then mapped afresh: nothing of it cached. Its mapping.
 */
static uint8_t *written_region(farpool_context_t *ctx, const char *name, uint64_t size,
                               uint64_t seed, farpool_region_t **region_p)
{
    void *addr;

    assert_int_equal(farpool_region_create(ctx, name, size, 64 << 10, region_p), FP_OK);
    assert_int_equal(farpool_map(*region_p, &addr), FP_OK);
    fp_pattern_fill(addr, size, seed, 0, 1);
    assert_int_equal(farpool_sync(*region_p), FP_OK);
    assert_int_equal(farpool_unmap(*region_p), FP_OK);
    assert_int_equal(farpool_map(*region_p, &addr), FP_OK);
    return addr;
}

static void test_node_killed_gives_sigbus(void **state)
{
    const char *const args[] = {"--capacity", "256M", NULL};
    const uint64_t size = 16ull << 20;
    fp_test_daemon_t victim;
    farpool_context_t *ctx;
    farpool_region_t *region;
    uint8_t *mem;
    fp_pattern_mismatch_t mm;

    (void)state;
    assert_int_equal(fp_test_daemon_start(args, &victim), FP_OK);
    ctx = context_new(victim.addr, 4ull << 20);
    mem = written_region(ctx, "doomed", size, 9, &region);
    /* The first half is served... */
    assert_true(fp_pattern_check(mem, 1 << 20, 9, 0, 1, &mm));

    /* ...then the node dies. */
    fp_test_daemon_kill(&victim);
    if (!touch_gets_sigbus(mem + size - 4096))
        fail_msg("an access that needed a dead node was served instead of SIGBUS");
    /* Still loud on a second try, and the cached half is still right. */
    assert_true(touch_gets_sigbus(mem + size - 4096));
    assert_true(fp_pattern_check(mem, 1 << 20, 9, 0, 1, &mm));

    farpool_region_close(region);
    farpool_context_destroy(ctx);
    fp_test_daemon_stop(&victim);
}

static double seconds_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * A node that stops answering without the connection breaking (SIGSTOP here;
 * a hung host or a network that drops everything alike): after the context's
 * timeout (3 s) the fault gets SIGBUS and the log says why, rather than
 * waiting for ever; a hinted prefetch's wait returns an error.
 */
static void test_node_stopped_gives_sigbus(void **state)
{
    const char *const args[] = {"--capacity", "256M", NULL};
    const uint64_t size = 16ull << 20;
    fp_test_daemon_t victim;
    farpool_context_t *ctx;
    farpool_region_t *region;
    uint8_t *mem;
    double t;
    fp_pattern_mismatch_t mm;

    (void)state;
    assert_int_equal(fp_test_daemon_start(args, &victim), FP_OK);
    ctx = context_new(victim.addr, 4ull << 20);
    mem = written_region(ctx, "frozen", size, 10, &region);
    assert_true(fp_pattern_check(mem, 1 << 20, 10, 0, 1, &mm));

    assert_int_equal(kill(victim.pid, SIGSTOP), 0);
    t = seconds_now();
    assert_true(touch_gets_sigbus(mem + size - 4096));
    t = seconds_now() - t;
    print_message("fault on a stopped node: SIGBUS after %.2f s\n", t);
    assert_true(t >= 2.5 && t < 30);
    /* The connection is given up: a hint fails too, at once, and says so. */
    assert_int_equal(farpool_prefetch(region, mem + (8 << 20), 1 << 20), FP_OK);
    assert_int_not_equal(farpool_prefetch_wait(region), FP_OK);
    assert_true(touch_gets_sigbus(mem + (8 << 20)));
    /* What was cached is still right. */
    assert_true(fp_pattern_check(mem, 1 << 20, 10, 0, 1, &mm));
    assert_int_equal(kill(victim.pid, SIGCONT), 0);

    farpool_region_close(region);
    farpool_context_destroy(ctx);
    assert_int_equal(fp_test_daemon_stop(&victim), 0);
}

/* ---- fork and read-only ------------------------------------------------------ */

static void test_fork_child_has_no_mapping(void **state)
{
    farpool_context_t *ctx = context_new(daemon_.addr, 8ull << 20);
    farpool_region_t *region;
    volatile uint8_t *mem;
    void *addr;
    pid_t pid;
    int wstatus;

    (void)state;
    assert_int_equal(farpool_region_create(ctx, "forked", 1 << 20, 4096, &region), FP_OK);
    assert_int_equal(farpool_map(region, &addr), FP_OK);
    mem = addr;
    mem[0] = 42;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        (void)mem[0];
        _exit(0); /* reaching this is the failure */
    }
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_true(WIFSIGNALED(wstatus));
    assert_int_equal(WTERMSIG(wstatus), SIGSEGV);
    assert_int_equal(mem[0], 42);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "forked"), FP_OK);
    farpool_context_destroy(ctx);
}

static void test_readonly_rejects_writes(void **state)
{
    farpool_context_t *ctx = context_new(daemon_.addr, 8ull << 20);
    farpool_region_t *region;
    volatile uint8_t *mem;
    void *addr;

    (void)state;
    assert_int_equal(farpool_region_create(ctx, "ro", 1 << 20, 4096, &region), FP_OK);
    assert_int_equal(farpool_map(region, &addr), FP_OK);
    fp_pattern_fill(addr, 1 << 20, 3, 0, 1);
    farpool_region_close(region);
    assert_int_equal(farpool_region_open(ctx, "ro", FARPOOL_REGION_READONLY, &region), FP_OK);
    assert_int_equal(farpool_map(region, &addr), FP_OK);
    mem = addr;
    FP_PATTERN_ASSERT(addr, 1 << 20, 3, 0, 1);
    /* A write to a read-only mapping is SIGSEGV, and changes nothing. */
    assert_true(access_raises(SIGSEGV, mem + 10, true));
    FP_PATTERN_ASSERT(addr, 1 << 20, 3, 0, 1);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "ro"), FP_OK);
    farpool_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_rw_4k),
        cmocka_unit_test(test_random_rw_64k),
        cmocka_unit_test(test_random_rw_2m),
        cmocka_unit_test(test_new_process_reads_back),
        cmocka_unit_test(test_eviction_quality),
        cmocka_unit_test(test_node_killed_gives_sigbus),
        cmocka_unit_test(test_node_stopped_gives_sigbus),
        cmocka_unit_test(test_fork_child_has_no_mapping),
        cmocka_unit_test(test_readonly_rejects_writes),
    };
    fp_uffd_t uffd;
    bool user_mode_only;

    /* Skip only where the kernel cannot do what the engine needs. */
    if (fp_uffd_open(NULL, &uffd, &user_mode_only, NULL) == FP_ERR_UNSUPPORTED) {
        fprintf(stderr, "test_fault: SKIP: this kernel lacks userfaultfd shmem minor faults, "
                        "write-protect or poison (Linux 6.6+ needed)\n");
        return 77;
    }
    fp_uffd_close(&uffd);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
