/* SPDX-License-Identifier: MIT */
/*
 * Tests of the page-moving cache (src/client/cache_move.c): read-only
 * mappings whose pages are received into a pool and moved into the region,
 * then recycled. Against a real farpoold on loopback:
 *
 * - read-only mappings use it (no memfd appears), and 4 threads reading at
 *   random over a region 4x the budget get the right bytes at granules 4 KiB,
 *   64 KiB (blocks copied into place) and 2 MiB (huge pages moved), while the cache's resident
 * memory (sampled every 2 ms) grows by no more than the budget plus one block per thread;
 * - prefault takes the budget's memory at map time, and a scan of twice the
 *   budget then runs in it without taking more;
 * - an expert unloaded with farpool_release() leaves its pages for the next
 *   one: loading it takes no new memory;
 * - two regions of one context share the budget: the spare pages of one go
 *   back to the system when the other needs room;
 * - a write to a read-only mapping is SIGSEGV in the writing thread, from any
 *   thread, at any granule, and changes nothing;
 * - a memory node killed: SIGBUS, never wrong bytes; a forked child has no
 *   mapping.
 *
 * Needs userfaultfd with UFFDIO_MOVE (Linux 6.8+): where the kernel lacks it
 * the program exits 77 (skip) and says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
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
#define MIB     (1ull << 20)
/* Slack for the checks of resident memory (see cache_rss_bytes()). */
#define RSS_NOISE (2 * MIB)

static fp_test_daemon_t daemon_;

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

static farpool_context_t *context_new(const char *addr, uint64_t cache_bytes, bool prefault)
{
    const char *nodes[] = {addr};
    farpool_context_params_t p;
    farpool_context_t *ctx = NULL;

    memset(&p, 0, sizeof(p));
    p.field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_CACHE_BYTES |
                   FARPOOL_CONTEXT_PARAM_PREFAULT | FARPOOL_CONTEXT_PARAM_TIMEOUT;
    p.nodes = nodes;
    p.nnodes = 1;
    p.cache_bytes = cache_bytes;
    p.prefault = prefault;
    p.timeout_ms = 2000;
    assert_int_equal(farpool_context_create(&p, &ctx), FP_OK);
    return ctx;
}

/* Create region @name of @size bytes filled with pattern (@id, version 1), through a writable
 * mapping. */
static void region_fill(farpool_context_t *ctx, const char *name, uint64_t size, uint32_t granule,
                        uint64_t id)
{
    farpool_region_t *region;
    void *addr;

    assert_int_equal(farpool_region_create(ctx, name, size, granule, &region), FP_OK);
    assert_int_equal(farpool_map(region, &addr), FP_OK);
    fp_pattern_fill(addr, size, id, 0, 1);
    assert_int_equal(farpool_sync(region), FP_OK);
    farpool_region_close(region);
}

static uint8_t *map_readonly(farpool_context_t *ctx, const char *name, farpool_region_t **region_p)
{
    void *addr;

    assert_int_equal(farpool_region_open(ctx, name, FARPOOL_REGION_READONLY, region_p), FP_OK);
    assert_int_equal(farpool_map(*region_p, &addr), FP_OK);
    return addr;
}

/*
 * Resident bytes of the farpool caches in this process: the mappings marked
 * MADV_DONTFORK ("dc" in smaps), which the region and its pool are and
 * nothing else here is (not the test's heap, nor a sanitizer's shadow of the
 * memory the test reads). smaps only names them: its own Rss figures are
 * taken one mapping at a time over a walk that lasts 0.5-5 ms, longer when
 * the test is preempted, and a block that lands in the region meanwhile can
 * count twice, in its slot and in the region (up to 0.6 MB more than
 * mincore() at 64 KiB granule, with both CPUs loaded). mincore() over the
 * named ranges right after one another is a near-snapshot; the checks allow
 * for one block per thread moving between the two calls.
 */
static uint64_t cache_rss_bytes(void)
{
    struct {
        uintptr_t start, end;
    } ranges[8];
    unsigned nranges = 0;
    char line[512];
    uint64_t total = 0;
    uintptr_t start = 0, end = 0;
    long page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/smaps", "re");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        uintptr_t s, e;

        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &s, &e) == 2) {
            start = s;
            end = e;
            continue;
        }
        if (strncmp(line, "VmFlags:", 8) == 0 && strstr(line, " dc") != NULL) {
            assert_true(nranges < sizeof(ranges) / sizeof(ranges[0])); /* never miss one */
            ranges[nranges].start = start;
            ranges[nranges].end = end;
            nranges++;
        }
    }
    fclose(f);
    for (unsigned i = 0; i < nranges; i++) {
        size_t npages = (ranges[i].end - ranges[i].start) / (size_t)page;
        unsigned char *vec = malloc(npages);

        assert_non_null(vec);
        assert_int_equal(mincore((void *)ranges[i].start, npages * (size_t)page, vec), 0);
        for (size_t k = 0; k < npages; k++)
            total += vec[k] & 1 ? (uint64_t)page : 0;
        free(vec);
    }
    return total;
}

/* True if a memfd named after region @name is open: the shmem cache's, not this one's. */
static bool has_memfd(const char *name)
{
    char path[300], target[512], needle[300];
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *de;
    bool found = false;

    if (dir == NULL)
        return false;
    snprintf(needle, sizeof(needle), "/memfd:%s (deleted)", name);
    while (!found && (de = readdir(dir)) != NULL) {
        ssize_t n;
        snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
        n = readlink(path, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = '\0';
            found = strcmp(target, needle) == 0;
        }
    }
    closedir(dir);
    return found;
}

/* ---- random reads from several threads, the budget held ------------------------ */

typedef struct read_run {
    const uint8_t *mem;
    uint64_t size, id;
    unsigned ops;
    _Atomic uint64_t mismatches;
    _Atomic bool sampling;
    uint64_t rss_base;
    _Atomic uint64_t rss_max;
} read_run_t;

typedef struct read_thread {
    read_run_t *run;
    unsigned id;
} read_thread_t;

static void *read_worker(void *arg)
{
    read_thread_t *t = arg;
    read_run_t *r = t->run;
    uint64_t seed = 0x9E3779B97F4A7C15ull * (t->id + 1);

    for (unsigned n = 0; n < r->ops; n++) {
        fp_pattern_mismatch_t mm;
        uint64_t off;

        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        off = (seed % (r->size / 64)) * 64;
        if (!fp_pattern_check(r->mem + off, 64, r->id, off, 1, &mm) &&
            atomic_fetch_add(&r->mismatches, 1) < 5)
            fprintf(stderr, "offset %llu: %s\n", (unsigned long long)mm.offset, mm.why);
    }
    return NULL;
}

static void *rss_sampler(void *arg)
{
    read_run_t *r = arg;

    while (atomic_load(&r->sampling)) {
        uint64_t rss = cache_rss_bytes();
        if (rss > atomic_load(&r->rss_max))
            atomic_store(&r->rss_max, rss);
        usleep(2000);
    }
    return NULL;
}

static void run_random_reads(uint32_t granule, const char *name)
{
    const uint64_t budget = 8 * MIB, size = 4 * budget;
    farpool_context_t *ctx = context_new(daemon_.addr, budget, false);
    farpool_region_t *region;
    farpool_stats_t st;
    pthread_t th[THREADS], sampler;
    read_thread_t targs[THREADS];
    read_run_t r;
    uint64_t grew;

    memset(&r, 0, sizeof(r));
    region_fill(ctx, name, size, granule, granule);
    r.mem = map_readonly(ctx, name, &region);
    assert_false(has_memfd(name)); /* the page-moving cache, not the shmem one */
    r.size = size;
    r.id = granule;
    r.ops = (granule >= 2 * MIB ? 1000 : 12000) / SCALE;
    r.rss_base = cache_rss_bytes();
    atomic_store(&r.rss_max, r.rss_base);
    atomic_store(&r.sampling, true);
    assert_int_equal(pthread_create(&sampler, NULL, rss_sampler, &r), 0);
    for (unsigned i = 0; i < THREADS; i++) {
        targs[i].run = &r;
        targs[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, read_worker, &targs[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&r.sampling, false);
    pthread_join(sampler, NULL);
    assert_int_equal(atomic_load(&r.mismatches), 0);

    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    grew = atomic_load(&r.rss_max) - r.rss_base;
    fprintf(stderr,
            "granule %u: faults %llu minor %llu fetched %llu evictions %llu cache peak %llu, "
            "resident memory grew by %llu at most\n",
            granule, (unsigned long long)st.faults, (unsigned long long)st.minor_faults,
            (unsigned long long)st.blocks_fetched, (unsigned long long)st.evictions,
            (unsigned long long)st.cache_peak, (unsigned long long)grew);
    assert_true(st.evictions > 0); /* the region did not fit: pages were recycled */
    assert_int_equal(st.writebacks, 0);
    assert_true(st.cache_peak <= budget + THREADS * (uint64_t)granule);
    assert_true(grew <= budget + THREADS * (uint64_t)granule + RSS_NOISE);
    /* Everything once more, in order, after the random phase. */
    FP_PATTERN_ASSERT(r.mem, size, granule, 0, 1);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, name), FP_OK);
    farpool_context_destroy(ctx);
}

static void test_random_reads_4k(void **state)
{
    (void)state;
    run_random_reads(4096, "mv4k");
}

static void test_random_reads_64k(void **state)
{
    (void)state;
    run_random_reads(64 << 10, "mv64k");
}

static void test_random_reads_2m(void **state)
{
    (void)state;
    run_random_reads(2 << 20, "mv2m");
}

/* ---- prefault and recycling ------------------------------------------------------ */

static void test_prefault_takes_the_budget_once(void **state)
{
    const uint64_t budget = 16 * MIB, size = 2 * budget;
    farpool_context_t *ctx = context_new(daemon_.addr, budget, true);
    farpool_region_t *region;
    farpool_stats_t st;
    uint64_t before, mapped, after;
    const uint8_t *mem;

    (void)state;
    region_fill(ctx, "prefault", size, 2 << 20, 77);
    before = cache_rss_bytes();
    mem = map_readonly(ctx, "prefault", &region);
    mapped = cache_rss_bytes();
    fprintf(stderr, "prefault: resident memory +%llu at map\n",
            (unsigned long long)(mapped - before));
    assert_true(mapped - before >= budget - RSS_NOISE);
    assert_true(mapped - before <= budget + RSS_NOISE);
    FP_PATTERN_ASSERT(mem, size, 77, 0, 1);
    after = cache_rss_bytes();
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    assert_true(st.evictions > 0);
    assert_true(after <= mapped + RSS_NOISE); /* the scan ran in the memory taken at map */
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "prefault"), FP_OK);
    farpool_context_destroy(ctx);
}

static void test_released_expert_pages_are_reused(void **state)
{
    const uint64_t expert = 16 * MIB;
    farpool_context_t *ctx = context_new(daemon_.addr, expert, false);
    farpool_region_t *region;
    farpool_stats_t st;
    const uint8_t *mem;
    uint64_t loaded, reloaded;

    (void)state;
    region_fill(ctx, "experts", 2 * expert, 2 << 20, 5);
    mem = map_readonly(ctx, "experts", &region);
    /* Expert 0: hinted, waited for, used without a single demand fetch. */
    assert_int_equal(farpool_prefetch(region, mem, expert), FP_OK);
    assert_int_equal(farpool_prefetch_wait(region), FP_OK);
    FP_PATTERN_ASSERT(mem, expert, 5, 0, 1);
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    assert_int_equal(st.blocks_fetched, expert >> 21);
    assert_int_equal(st.prefetch_hinted, expert >> 21);
    loaded = cache_rss_bytes();
    /* Unloaded: the cache is empty, its pages wait for the next expert. */
    assert_int_equal(farpool_release(region, mem, expert), FP_OK);
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    assert_int_equal(st.cache_bytes, 0);
    /* Expert 1 lands in them: no new memory. */
    assert_int_equal(farpool_prefetch(region, mem + expert, expert), FP_OK);
    assert_int_equal(farpool_prefetch_wait(region), FP_OK);
    FP_PATTERN_ASSERT(mem + expert, expert, 5, expert, 1);
    reloaded = cache_rss_bytes();
    fprintf(stderr, "expert 0 loaded: rss %llu; expert 1 loaded after release: rss %llu\n",
            (unsigned long long)loaded, (unsigned long long)reloaded);
    assert_true(reloaded <= loaded + RSS_NOISE);
    assert_int_equal(farpool_region_stats(region, &st, sizeof(st)), FP_OK);
    assert_int_equal(st.blocks_fetched, 2 * (expert >> 21));
    assert_int_equal(st.cache_bytes, expert);
    /* And expert 0 again, fetched anew after its release: the right bytes. */
    assert_int_equal(farpool_release(region, mem + expert, expert), FP_OK);
    FP_PATTERN_ASSERT(mem, expert, 5, 0, 1);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "experts"), FP_OK);
    farpool_context_destroy(ctx);
}

static void test_regions_share_the_budget(void **state)
{
    const uint64_t budget = 8 * MIB, size = 2 * budget;
    farpool_context_t *ctx = context_new(daemon_.addr, budget, false);
    farpool_region_t *a, *b;
    const uint8_t *ma, *mb;
    uint64_t base, peak = 0;

    (void)state;
    region_fill(ctx, "share-a", size, 2 << 20, 11);
    region_fill(ctx, "share-b", size, 2 << 20, 12);
    base = cache_rss_bytes();
    ma = map_readonly(ctx, "share-a", &a);
    mb = map_readonly(ctx, "share-b", &b);
    /* A fills the budget, then gives its blocks up: its pages stay, as spares. */
    FP_PATTERN_ASSERT(ma, size, 11, 0, 1);
    assert_int_equal(farpool_release(a, ma, size), FP_OK);
    /* B needs the budget: A's spares must go back to the system. */
    for (uint64_t off = 0; off < size; off += 2 * MIB) {
        uint64_t rss;
        FP_PATTERN_ASSERT(mb + off, 2 * MIB, 12, off, 1);
        rss = cache_rss_bytes();
        peak = rss > peak ? rss : peak;
    }
    fprintf(stderr, "two regions, budget %llu: resident memory grew by %llu at most\n",
            (unsigned long long)budget, (unsigned long long)(peak - base));
    assert_true(peak - base <= budget + 2 * MIB + RSS_NOISE);
    farpool_region_close(a);
    farpool_region_close(b);
    assert_int_equal(farpool_region_delete(ctx, "share-a"), FP_OK);
    assert_int_equal(farpool_region_delete(ctx, "share-b"), FP_OK);
    farpool_context_destroy(ctx);
}

/* ---- read-only enforced, failures loud ----------------------------------------- */

static sigjmp_buf jump;
static _Thread_local sigjmp_buf thread_jump;
static _Thread_local bool in_thread;
static volatile sig_atomic_t signals;

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)si;
    (void)uc;
    signals++;
    if (in_thread)
        siglongjmp(thread_jump, 1);
    siglongjmp(jump, 1);
}

typedef struct writer {
    uint8_t *addr;
    bool got_signal;
} writer_t;

static void *write_in_thread(void *arg)
{
    writer_t *w = arg;

    in_thread = true;
    if (sigsetjmp(thread_jump, 1) == 0) {
        *(volatile uint8_t *)w->addr = 1;
        w->got_signal = false;
    } else {
        w->got_signal = true;
    }
    return NULL;
}

static void check_writes_rejected(uint32_t granule, const char *name)
{
    const uint64_t size = 8 * MIB;
    farpool_context_t *ctx = context_new(daemon_.addr, 4 * MIB, false);
    farpool_region_t *region;
    struct sigaction sa, old;
    volatile uint8_t *mem;
    pthread_t th;
    writer_t w;

    region_fill(ctx, name, size, granule, 3);
    mem = map_readonly(ctx, name, &region);
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, &old);
    /* A block never touched, then one read first: both refuse the write. */
    signals = 0;
    if (sigsetjmp(jump, 1) == 0)
        mem[10] = 1;
    assert_int_equal(signals, 1);
    (void)mem[size - 100];
    if (sigsetjmp(jump, 1) == 0)
        mem[size - 99] = 1;
    assert_int_equal(signals, 2);
    /* Another thread's write: the signal goes to that thread. */
    w.addr = (uint8_t *)mem + size / 2;
    assert_int_equal(pthread_create(&th, NULL, write_in_thread, &w), 0);
    pthread_join(th, NULL);
    assert_true(w.got_signal);
    assert_int_equal(signals, 3);
    sigaction(SIGSEGV, &old, NULL);
    FP_PATTERN_ASSERT((const void *)mem, size, 3, 0, 1);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, name), FP_OK);
    farpool_context_destroy(ctx);
}

static void test_writes_rejected(void **state)
{
    (void)state;
    check_writes_rejected(4096, "ro4k");
    check_writes_rejected(2 << 20, "ro2m");
}

static void test_node_killed_gives_sigbus(void **state)
{
    const char *const args[] = {"--capacity", "64M", NULL};
    const uint64_t size = 8 * MIB;
    fp_test_daemon_t victim;
    farpool_context_t *ctx;
    farpool_region_t *region;
    struct sigaction sa, old;
    volatile uint8_t *mem;

    (void)state;
    assert_int_equal(fp_test_daemon_start(args, &victim), FP_OK);
    ctx = context_new(victim.addr, 4 * MIB, false);
    region_fill(ctx, "doomed", size, 2 << 20, 9);
    mem = map_readonly(ctx, "doomed", &region);
    FP_PATTERN_ASSERT((const void *)mem, 2 * MIB, 9, 0, 1);
    fp_test_daemon_kill(&victim);
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &sa, &old);
    signals = 0;
    if (sigsetjmp(jump, 1) == 0) {
        uint8_t v = mem[size - 4096];
        sigaction(SIGBUS, &old, NULL);
        fail_msg("read %u from a dead node instead of SIGBUS", v);
    }
    assert_int_equal(signals, 1);
    if (sigsetjmp(jump, 1) == 0)
        (void)mem[size - 4096];
    sigaction(SIGBUS, &old, NULL);
    assert_int_equal(signals, 2);
    FP_PATTERN_ASSERT((const void *)mem, 2 * MIB, 9, 0, 1); /* still cached, still right */
    farpool_region_close(region);
    farpool_context_destroy(ctx);
    fp_test_daemon_stop(&victim);
}

static void test_fork_child_has_no_mapping(void **state)
{
    farpool_context_t *ctx = context_new(daemon_.addr, 4 * MIB, false);
    farpool_region_t *region;
    volatile uint8_t *mem;
    pid_t pid;
    int wstatus;

    (void)state;
    region_fill(ctx, "forked", 4 * MIB, 64 << 10, 4);
    mem = map_readonly(ctx, "forked", &region);
    FP_PATTERN_ASSERT((const void *)mem, 4 * MIB, 4, 0, 1);
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
    FP_PATTERN_ASSERT((const void *)mem, 4 * MIB, 4, 0, 1);
    farpool_region_close(region);
    assert_int_equal(farpool_region_delete(ctx, "forked"), FP_OK);
    farpool_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_reads_4k),
        cmocka_unit_test(test_random_reads_64k),
        cmocka_unit_test(test_random_reads_2m),
        cmocka_unit_test(test_prefault_takes_the_budget_once),
        cmocka_unit_test(test_released_expert_pages_are_reused),
        cmocka_unit_test(test_regions_share_the_budget),
        cmocka_unit_test(test_writes_rejected),
        cmocka_unit_test(test_node_killed_gives_sigbus),
        cmocka_unit_test(test_fork_child_has_no_mapping),
    };
    uint64_t features = 0;
    bool user_mode_only;
    fp_uffd_t uffd;

    /* Skip only where the kernel cannot move pages. */
    if (fp_uffd_open(NULL, &uffd, &user_mode_only, &features) == FP_ERR_UNSUPPORTED ||
        !(features & UFFD_FEATURE_MOVE)) {
        fprintf(stderr, "test_cache_move: SKIP: this kernel's userfaultfd cannot move pages "
                        "(UFFDIO_MOVE, Linux 6.8+); read-only mappings use the shmem cache\n");
        return 77;
    }
    fp_uffd_close(&uffd);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
