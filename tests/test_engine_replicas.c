/* SPDX-License-Identifier: MIT */
/*
 * Tests of the fault engine over replicas (src/client/engine_nodes.c,
 * engine_fetch.c, engine_writeback.c), driven directly with fp_engine_start()
 * against three real farpoold on loopback. Each test starts its nodes, makes
 * a region of 12 slabs of 2 MiB, two copies of each on distinct nodes (slab
 * i on nodes i % 3 and (i + 1) % 3), owned by one client key, and fills
 * every copy with the same position-dependent pattern (common/pattern.h):
 *
 * - 4 threads read random pages while a node is killed (SIGKILL): no wrong
 *   byte, no SIGBUS;
 * - a node stopped (SIGSTOP): once its silence passes the timeout (1 s) the
 *   reads go on from the other copies, no wrong byte;
 * - both holders of some slabs killed: an access there gets SIGBUS (in a
 *   forked child) and one log line naming the block, its offset and each
 *   copy with its error; never zeros; the other slabs are still served;
 * - a writable mapping written and synced: every copy of every slab, read
 *   with farpool_slab_read(), holds what was written;
 * - a write-back with one copy's node dead succeeds on the survivors, and
 *   what it wrote is read back (by this engine after a release, and by a new
 *   one);
 * - a node restarted empty at the same address answers with errors: its
 *   copies are skipped and the bytes come from the others;
 * - both holders of some slabs killed and the remap callback giving a map
 *   with new copies: the reads go on from them;
 * - a copy that missed a write (its node stopped during the write-back)
 *   is never read again, even when the node is back and named by a new map:
 *   with the other copies gone, an access gets SIGBUS, not stale bytes.
 *
 * Every wait is bounded (a condition polled with a deadline); every daemon
 * started is stopped (and killed at exit by common/daemon.c otherwise).
 *
 * Needs userfaultfd as test_fault does: where the kernel lacks it the
 * program exits 77 (skip) and says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <farpool/farpool.h>

#include "client/budget.h"
#include "client/engine.h"
#include "client/node.h"
#include "client/region_map.h"
#include "client/uffd.h"
#include "common/daemon.h"
#include "common/log.h"
#include "common/pattern.h"
#include "proto/proto.h"

#ifdef FP_SANITIZED
#define SCALE 4 /* sanitizers slow everything down: fewer operations, same checks */
#else
#define SCALE 1
#endif

#define NODES      3
#define SLAB       (2ull << 20)
#define NSLABS     12
#define SIZE       (NSLABS * SLAB)
#define GRANULE    (256u << 10) /* a head part and a rest per fetch */
#define CACHE      (8ull << 20) /* a third of the region: blocks are fetched again */
#define TIMEOUT_MS 1000
#define SEED       77 /* the pattern's region */
#define WAIT_MS    60000
#define THREADS    4

/* ---- what the engine logs ------------------------------------------------- */

typedef struct log_sink {
    pthread_mutex_t lock;
    char *text; /* every line, each ending in '\n' */
    size_t len, cap;
    int fd; /* >= 0: lines are written there instead (a forked child) */
} log_sink_t;

static log_sink_t sink_ = {PTHREAD_MUTEX_INITIALIZER, NULL, 0, 0, -1};

static void log_keep(void *arg, farpool_log_level_t level, const char *line)
{
    log_sink_t *s = arg;
    size_t n = strlen(line);

    (void)level;
    if (s->fd >= 0) {
        char buf[2048];
        int w = snprintf(buf, sizeof(buf), "%s\n", line);

        (void)!write(s->fd, buf, w > 0 && (size_t)w < sizeof(buf) ? (size_t)w : 0);
        return;
    }
    fprintf(stderr, "log| %s\n", line);
    pthread_mutex_lock(&s->lock);
    if (s->len + n + 2 > s->cap) {
        size_t cap = (s->cap + n + 2) * 2;
        char *t = realloc(s->text, cap);

        if (t != NULL) {
            s->text = t;
            s->cap = cap;
        }
    }
    if (s->len + n + 2 <= s->cap) {
        memcpy(s->text + s->len, line, n);
        s->len += n;
        s->text[s->len++] = '\n';
        s->text[s->len] = '\0';
    }
    pthread_mutex_unlock(&s->lock);
}

static void log_clear(void)
{
    pthread_mutex_lock(&sink_.lock);
    sink_.len = 0;
    if (sink_.text != NULL)
        sink_.text[0] = '\0';
    pthread_mutex_unlock(&sink_.lock);
}

/* Lines that contain @a and (if not NULL) @b. */
static size_t count_lines(const char *text, const char *a, const char *b)
{
    size_t count = 0;

    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *end = strchr(p, '\n');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        char line[2048];

        snprintf(line, sizeof(line), "%.*s", (int)len, p);
        if (strstr(line, a) != NULL && (b == NULL || strstr(line, b) != NULL))
            count++;
        p = end != NULL ? end + 1 : NULL;
    }
    return count;
}

static size_t log_count(const char *a, const char *b)
{
    size_t count;

    pthread_mutex_lock(&sink_.lock);
    count = count_lines(sink_.text, a, b);
    pthread_mutex_unlock(&sink_.lock);
    return count;
}

/* ---- bounded waits ------------------------------------------------------ */

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_ms(unsigned ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};

    nanosleep(&ts, NULL);
}

/* Wait until *@counter >= @want, for @timeout_ms at most. */
static bool wait_counter(_Atomic uint64_t *counter, uint64_t want, unsigned timeout_ms)
{
    uint64_t deadline = now_ms() + timeout_ms;

    while (atomic_load(counter) < want) {
        if (now_ms() >= deadline)
            return false;
        pause_ms(2);
    }
    return true;
}

/* ---- the nodes, the region's copies, the map -------------------------------- */

typedef struct env {
    fp_test_daemon_t d[NODES];
    bool running[NODES];         /* started and not stopped yet */
    farpool_node_t *conn[NODES]; /* the test's own connections, with the region's key */
    farpool_node_params_t np;
    fp_region_map_t map;
    fp_log_t log;
    fp_budget_t budget;
    uint8_t *buf; /* one slab */
} env_t;

static env_t env_;

static fp_status_t daemon_start(unsigned n, const char *listen)
{
    const char *const fresh[] = {"--slab-size", "2M", "--capacity", "256M", NULL};
    const char *const same[] = {"--slab-size", "2M",   "--capacity", "256M",
                                "--listen",    listen, NULL};
    fp_status_t status = fp_test_daemon_start(listen != NULL ? same : fresh, &env_.d[n]);

    env_.running[n] = status == FP_OK;
    return status;
}

static void node_connect(unsigned n)
{
    assert_int_equal(farpool_node_connect(env_.d[n].addr, &env_.np, &env_.conn[n]), FP_OK);
}

/* Fill every copy of slab @i with version @version of the pattern. */
static void fill_slab(uint32_t i, uint32_t version)
{
    fp_pattern_fill(env_.buf, SLAB, SEED, (uint64_t)i * SLAB, version);
    for (uint32_t k = 0; k < env_.map.replicas; k++) {
        const fp_map_replica_t *r = fp_region_map_at(&env_.map, i, k);

        if (r->node != FP_MAP_NO_NODE)
            assert_int_equal(farpool_slab_write(env_.conn[r->node], r->slab, 0, env_.buf, SLAB),
                             FP_OK);
    }
}

static int setup(void **state)
{
    (void)state;
    memset(&env_, 0, sizeof(env_));
    log_clear();
    fp_log_init(&env_.log, "test", FP_LOG_INFO, log_keep, &sink_);
    env_.np.field_mask =
        FARPOOL_NODE_PARAM_CLIENT_KEY | FARPOOL_NODE_PARAM_TIMEOUT | FARPOOL_NODE_PARAM_LOG;
    env_.np.timeout_ms = TIMEOUT_MS;
    env_.np.log_level = FARPOOL_LOG_INFO;
    env_.np.log_func = log_keep;
    env_.np.log_arg = &sink_;
    if (fp_proto_random(env_.np.client_key, sizeof(env_.np.client_key)) != FP_OK)
        return -1;
    env_.buf = malloc(SLAB);
    if (env_.buf == NULL)
        return -1;
    for (unsigned n = 0; n < NODES; n++)
        if (daemon_start(n, NULL) != FP_OK)
            return -1;
    for (unsigned n = 0; n < NODES; n++)
        node_connect(n);

    /* The map: slab i on nodes i % 3 and (i + 1) % 3, owned by the key. */
    assert_int_equal(fp_region_map_alloc(&env_.map, NODES, NSLABS, 2), FP_OK);
    snprintf(env_.map.name, sizeof(env_.map.name), "replicated");
    env_.map.size = SIZE;
    env_.map.granule = GRANULE;
    env_.map.slab_size = SLAB;
    env_.map.by_key = true;
    memcpy(env_.map.key, env_.np.client_key, sizeof(env_.map.key));
    for (unsigned n = 0; n < NODES; n++)
        snprintf(env_.map.nodes[n], sizeof(env_.map.nodes[n]), "%s", env_.d[n].addr);
    for (uint32_t i = 0; i < NSLABS; i++) {
        for (uint32_t k = 0; k < 2; k++) {
            fp_map_replica_t *r = &env_.map.replica[i * 2 + k];
            uint64_t slab_size = 0;

            r->node = (i + k) % NODES;
            assert_int_equal(farpool_slab_alloc(env_.conn[r->node], &r->slab, &slab_size), FP_OK);
            assert_int_equal(slab_size, SLAB);
        }
        fill_slab(i, 1);
    }
    assert_int_equal(fp_region_map_check(&env_.map), FP_OK);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (unsigned n = 0; n < NODES; n++) {
        farpool_node_close(env_.conn[n]);
        if (env_.running[n]) {
            kill(env_.d[n].pid, SIGCONT); /* a stopped one must be able to exit */
            fp_test_daemon_stop(&env_.d[n]);
        }
    }
    fp_region_map_cleanup(&env_.map);
    free(env_.buf);
    return 0;
}

/* The slab's copy on node @n, if it has one there. */
static const fp_map_replica_t *copy_on(const fp_region_map_t *m, uint32_t i, uint32_t n)
{
    for (uint32_t k = 0; k < m->replicas; k++)
        if (fp_region_map_at(m, i, k)->node == n)
            return fp_region_map_at(m, i, k);
    return NULL;
}

/* Kill node @n (a crash) and close the test's connection to it. */
static void node_kill(unsigned n)
{
    fp_test_daemon_kill(&env_.d[n]);
    farpool_node_close(env_.conn[n]);
    env_.conn[n] = NULL;
}

/* ---- the engine ---------------------------------------------------------- */

static fp_engine_t *engine_start(const fp_region_map_t *map, bool readonly,
                                 fp_status_t (*remap)(void *, fp_region_map_t *), void *arg,
                                 uint8_t **mem_p)
{
    fp_engine_params_t ep;
    fp_engine_t *e = NULL;
    void *addr = NULL;

    fp_budget_init(&env_.budget, CACHE);
    memset(&ep, 0, sizeof(ep));
    ep.map = map;
    ep.np = &env_.np;
    ep.remap = remap;
    ep.remap_arg = arg;
    ep.readonly = readonly;
    ep.budget = &env_.budget;
    ep.readahead = true;
    ep.log = &env_.log;
    assert_int_equal(fp_engine_start(&ep, &e, &addr), FP_OK);
    *mem_p = addr;
    return e;
}

static void engine_stop(fp_engine_t *e)
{
    assert_int_equal(fp_engine_stop(e, true), FP_OK);
    fp_budget_cleanup(&env_.budget);
}

/* Wrong bytes in region bytes [off, off+len) of @mem against @version. */
static uint64_t wrong_bytes(const uint8_t *mem, uint64_t off, uint64_t len, uint32_t version)
{
    fp_pattern_mismatch_t mm;

    if (fp_pattern_check(mem + off, len, SEED, off, version, &mm))
        return 0;
    fp_pattern_mismatch_print(&mm, stderr);
    return mm.bad_bytes;
}

/* Wrong bytes in @buf, slab @i's bytes as read from a copy, against @version. */
static uint64_t wrong_slab(const uint8_t *buf, uint32_t i, uint32_t version)
{
    fp_pattern_mismatch_t mm;

    if (fp_pattern_check(buf, SLAB, SEED, (uint64_t)i * SLAB, version, &mm))
        return 0;
    fp_pattern_mismatch_print(&mm, stderr);
    return mm.bad_bytes;
}

/* ---- random readers --------------------------------------------------------- */

typedef struct readers {
    const uint8_t *mem;
    unsigned per_thread;
    _Atomic uint64_t done;
    _Atomic uint64_t bad;
} readers_t;

typedef struct reader {
    readers_t *r;
    uint64_t seed;
    pthread_t thread;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *t = arg;
    readers_t *r = t->r;
    uint64_t x = t->seed;

    for (unsigned i = 0; i < r->per_thread; i++) {
        uint64_t page;

        x = x * 6364136223846793005ull + 1442695040888963407ull;
        page = (x >> 33) % (SIZE / 4096);
        atomic_fetch_add(&r->bad, wrong_bytes(r->mem, page * 4096, 4096, 1));
        atomic_fetch_add(&r->done, 1);
    }
    return NULL;
}

static void readers_start(readers_t *r, reader_t *t, unsigned n, const uint8_t *mem,
                          unsigned per_thread)
{
    r->mem = mem;
    r->per_thread = per_thread;
    atomic_init(&r->done, 0);
    atomic_init(&r->bad, 0);
    for (unsigned i = 0; i < n; i++) {
        t[i].r = r;
        t[i].seed = 0x9E3779B97F4A7C15ull * (i + 1);
        assert_int_equal(pthread_create(&t[i].thread, NULL, reader_main, &t[i]), 0);
    }
}

/* Wait for the readers (bounded: they must be done by @timeout_ms), then join them. */
static void readers_join(readers_t *r, reader_t *t, unsigned n, unsigned timeout_ms)
{
    bool done = wait_counter(&r->done, (uint64_t)n * r->per_thread, timeout_ms);

    if (!done)
        fail_msg("the readers did %llu of %llu reads in %u ms",
                 (unsigned long long)atomic_load(&r->done), (unsigned long long)n * r->per_thread,
                 timeout_ms);
    for (unsigned i = 0; i < n; i++)
        pthread_join(t[i].thread, NULL);
}

/* ---- the tests ------------------------------------------------------------ */

static void test_node_killed_while_reading(void **state)
{
    const unsigned per_thread = 3000 / SCALE;
    reader_t t[THREADS];
    readers_t r;
    uint8_t *mem;
    fp_engine_t *e;

    (void)state;
    e = engine_start(&env_.map, true, NULL, NULL, &mem);
    readers_start(&r, t, THREADS, mem, per_thread);
    assert_true(wait_counter(&r.done, THREADS * per_thread / 4, WAIT_MS));
    node_kill(1);
    readers_join(&r, t, THREADS, WAIT_MS);
    print_message("%llu reads, node 1 killed after a quarter: %llu wrong bytes\n",
                  (unsigned long long)atomic_load(&r.done),
                  (unsigned long long)atomic_load(&r.bad));
    assert_int_equal(atomic_load(&r.bad), 0);
    /* Every byte still comes from a surviving copy. */
    assert_int_equal(wrong_bytes(mem, 0, SIZE, 1), 0);
    assert_int_equal(log_count("cannot fetch", NULL), 0);
    engine_stop(e);
}

static void test_node_stopped_while_reading(void **state)
{
    const unsigned per_thread = 1500 / SCALE;
    char node[FP_TEST_ADDR_MAX + 8];
    reader_t t[2];
    readers_t r;
    uint8_t *mem;
    fp_engine_t *e;
    uint64_t t0;

    (void)state;
    e = engine_start(&env_.map, false, NULL, NULL, &mem);
    readers_start(&r, t, 2, mem, per_thread);
    assert_true(wait_counter(&r.done, 2 * per_thread / 4, WAIT_MS));
    assert_int_equal(kill(env_.d[0].pid, SIGSTOP), 0);
    t0 = now_ms();
    readers_join(&r, t, 2, WAIT_MS);
    print_message("node 0 stopped: the reads went on, done %llu ms later, %llu wrong bytes\n",
                  (unsigned long long)(now_ms() - t0), (unsigned long long)atomic_load(&r.bad));
    assert_int_equal(atomic_load(&r.bad), 0);
    assert_int_equal(wrong_bytes(mem, 0, SIZE, 1), 0);
    /* Given up for its silence, and nothing poisoned. */
    snprintf(node, sizeof(node), "node %s ", env_.d[0].addr);
    assert_int_equal(log_count("completed none of", node), 1);
    assert_int_equal(log_count("cannot fetch", NULL), 0);
    engine_stop(e);
    assert_int_equal(kill(env_.d[0].pid, SIGCONT), 0);
}

/*
 * In a forked child (its own engine; SIGBUS ends it): serve slab @good, tell
 * the parent (@ready), wait for its word (@go), serve @good again, then read
 * slab @lost, which must raise SIGBUS. Lines logged go to @log_fd. Exit
 * codes: 3 no engine, 6/7 @good wrong, 4 zeros read, 5 other bytes read.
 */
static void child_reads(int ready, int go, int log_fd, uint32_t good, uint32_t lost,
                        fp_status_t (*remap)(void *, fp_region_map_t *), void *arg)
{
    fp_engine_params_t ep;
    fp_engine_t *e;
    volatile uint8_t *mem;
    void *addr;
    char c;

    signal(SIGBUS, SIG_DFL); /* cmocka's handler would go on with the tests in this copy */
    sink_.fd = log_fd;
    fp_budget_init(&env_.budget, CACHE);
    memset(&ep, 0, sizeof(ep));
    ep.map = &env_.map;
    ep.np = &env_.np;
    ep.remap = remap;
    ep.remap_arg = arg;
    ep.readonly = true;
    ep.budget = &env_.budget;
    ep.log = &env_.log;
    if (fp_engine_start(&ep, &e, &addr) != FP_OK)
        _exit(3);
    mem = addr;
    if (wrong_bytes((const uint8_t *)mem, good * SLAB, SLAB, 1) != 0)
        _exit(6);
    (void)!write(ready, "r", 1);
    if (read(go, &c, 1) != 1)
        _exit(8); /* the parent is gone */
    if (wrong_bytes((const uint8_t *)mem, good * SLAB, SLAB, 1) != 0)
        _exit(7);
    c = mem[(uint64_t)lost * SLAB + 8];
    _exit(c == 0 ? 4 : 5);
}

/* Wait for child @pid, for WAIT_MS at most (then kill it: SIGKILL): its wait status. */
static int child_wait(pid_t pid)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    int wst = 0;

    while (waitpid(pid, &wst, WNOHANG) == 0) {
        if (now_ms() >= deadline) {
            fprintf(stderr, "the child did not end within %d ms: killed\n", WAIT_MS);
            kill(pid, SIGKILL);
            waitpid(pid, &wst, 0);
            break;
        }
        pause_ms(5);
    }
    return wst;
}

/* A temporary file for a child's log; its descriptor (unlinked: read it through @fd). */
static int log_file(void)
{
    char path[FP_TEST_PATH_MAX];
    int fd;

    snprintf(path, sizeof(path), "%s/log-XXXXXX", fp_test_scratch_dir());
    fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

static char *file_text(int fd)
{
    off_t len = lseek(fd, 0, SEEK_END);
    char *text = calloc(1, (size_t)len + 1);

    assert_non_null(text);
    assert_int_equal(pread(fd, text, (size_t)len, 0), len);
    return text;
}

static void test_every_copy_lost_gives_sigbus(void **state)
{
    /* Nodes 0 and 1 hold both copies of the slabs i % 3 == 0; slab 1 keeps one on node 2. */
    const uint32_t good = 1, lost = 3;
    const uint64_t block = lost * SLAB / GRANULE;
    int ready[2], go[2], fd = log_file(), wst;
    char c, needle[128], node[FP_TEST_ADDR_MAX + 8], *text;
    pid_t pid;

    (void)state;
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(go), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child_reads(ready[1], go[0], fd, good, lost, NULL, NULL);
    assert_int_equal(read(ready[0], &c, 1), 1);
    node_kill(0);
    node_kill(1);
    assert_int_equal(write(go[1], "g", 1), 1);
    wst = child_wait(pid);
    text = file_text(fd);
    fprintf(stderr, "child's log:\n%s", text);
    if (!WIFSIGNALED(wst))
        fail_msg("the child exited with %d instead of getting SIGBUS", WEXITSTATUS(wst));
    assert_int_equal(WTERMSIG(wst), SIGBUS);
    /* One line: the block, its offset, each copy and why. */
    snprintf(needle, sizeof(needle), "cannot fetch block %llu (offset %llu) from any copy",
             (unsigned long long)block, (unsigned long long)(block * GRANULE));
    assert_int_equal(count_lines(text, needle, NULL), 1);
    for (unsigned n = 0; n < 2; n++) {
        snprintf(node, sizeof(node), "node %s: ", env_.d[n].addr);
        assert_int_equal(count_lines(text, needle, node), 1);
    }
    free(text);
    close(fd);
    close(ready[0]);
    close(ready[1]);
    close(go[0]);
    close(go[1]);
}

static void test_writes_reach_every_copy(void **state)
{
    uint8_t *mem;
    fp_engine_t *e;

    (void)state;
    e = engine_start(&env_.map, false, NULL, NULL, &mem);
    assert_int_equal(wrong_bytes(mem, 0, SIZE, 1), 0);
    /* Three times the cache: dirty victims are written back along the way too. */
    fp_pattern_fill(mem, SIZE, SEED, 0, 2);
    assert_int_equal(fp_engine_sync(e), FP_OK);
    for (uint32_t i = 0; i < NSLABS; i++) {
        for (uint32_t k = 0; k < env_.map.replicas; k++) {
            const fp_map_replica_t *r = fp_region_map_at(&env_.map, i, k);

            memset(env_.buf, 0, SLAB);
            assert_int_equal(farpool_slab_read(env_.conn[r->node], r->slab, 0, env_.buf, SLAB),
                             FP_OK);
            if (wrong_slab(env_.buf, i, 2) != 0)
                fail_msg("slab %u, copy %u on node %u: not what was written", i, k, r->node);
        }
    }
    assert_int_equal(wrong_bytes(mem, 0, SIZE, 2), 0);
    assert_int_equal(log_count("not written back", NULL), 0);
    engine_stop(e);
}

static void test_writeback_with_a_node_dead(void **state)
{
    uint8_t *mem;
    fp_engine_t *e;

    (void)state;
    e = engine_start(&env_.map, false, NULL, NULL, &mem);
    assert_int_equal(wrong_bytes(mem, 0, 4 * SLAB, 1), 0);
    node_kill(2);
    fp_pattern_fill(mem, SIZE, SEED, 0, 3);
    assert_int_equal(fp_engine_sync(e), FP_OK);
    assert_int_equal(log_count("cannot write block", NULL), 0);
    /* The survivors have it... */
    for (uint32_t i = 0; i < NSLABS; i++) {
        for (uint32_t n = 0; n < 2; n++) {
            const fp_map_replica_t *r = copy_on(&env_.map, i, n);

            if (r == NULL)
                continue;
            assert_int_equal(farpool_slab_read(env_.conn[n], r->slab, 0, env_.buf, SLAB), FP_OK);
            if (wrong_slab(env_.buf, i, 3) != 0)
                fail_msg("slab %u on node %u: not what was written", i, n);
        }
    }
    /* ...this engine reads it back once its cache is gone... */
    assert_int_equal(fp_engine_release(e, 0, SIZE), FP_OK);
    assert_int_equal(wrong_bytes(mem, 0, SIZE, 3), 0);
    engine_stop(e);
    /* ...and so does a new one, with the node still dead. */
    e = engine_start(&env_.map, true, NULL, NULL, &mem);
    assert_int_equal(wrong_bytes(mem, 0, SIZE, 3), 0);
    engine_stop(e);
    assert_int_equal(log_count("cannot fetch", NULL), 0);
}

static void test_node_restarted_empty(void **state)
{
    char addr[FP_TEST_ADDR_MAX];
    uint8_t *mem;
    fp_engine_t *e;

    (void)state;
    snprintf(addr, sizeof(addr), "%s", env_.d[0].addr);
    node_kill(0);
    assert_int_equal(fp_test_daemon_stop(&env_.d[0]), 128 + SIGKILL);
    env_.running[0] = false;
    assert_int_equal(daemon_start(0, addr), FP_OK);
    assert_string_equal(env_.d[0].addr, addr);
    node_connect(0);

    e = engine_start(&env_.map, true, NULL, NULL, &mem);
    assert_int_equal(wrong_bytes(mem, 0, SIZE, 1), 0);
    engine_stop(e);
    /* Its error replies were seen, and only skipped its copies: it stayed up. */
    assert_true(log_count("answers", addr) >= 1);
    assert_int_equal(log_count("disconnecting", NULL), 0);
    assert_int_equal(log_count("cannot fetch", NULL), 0);
}

/*
 * Node 0 restarted on its address, and its slab ids handed out again to the
 * region's key, holding other bytes (a repair of other slabs there, say):
 * a map that names the farpoold each address was (its HELLO node id) never
 * reads those slabs. The copies on the other nodes serve, and the engine
 * says why it skipped node 0.
 */
static void test_node_restarted_slabs_reused(void **state)
{
    char addr[FP_TEST_ADDR_MAX];
    uint64_t old_id;
    uint8_t *mem;
    fp_engine_t *e;

    (void)state;
    for (unsigned n = 0; n < NODES; n++)
        env_.map.node_ids[n] = fp_node_id(env_.conn[n]);
    old_id = env_.map.node_ids[0];
    assert_true(old_id != 0);
    snprintf(addr, sizeof(addr), "%s", env_.d[0].addr);
    node_kill(0);
    assert_int_equal(fp_test_daemon_stop(&env_.d[0]), 128 + SIGKILL);
    env_.running[0] = false;
    assert_int_equal(daemon_start(0, addr), FP_OK);
    node_connect(0);
    assert_true(fp_node_id(env_.conn[0]) != old_id);
    /* The same slab ids, for the same key, with other bytes. */
    memset(env_.buf, 0xee, SLAB);
    for (uint32_t i = 0; i < NSLABS; i++) {
        for (uint32_t k = 0; k < 2; k++) {
            const fp_map_replica_t *r = fp_region_map_at(&env_.map, i, k);
            uint64_t slab = 0, slab_size = 0;

            if (r->node != 0)
                continue;
            while (slab < r->slab)
                assert_int_equal(farpool_slab_alloc(env_.conn[0], &slab, &slab_size), FP_OK);
            assert_int_equal(slab, r->slab);
            assert_int_equal(farpool_slab_write(env_.conn[0], slab, 0, env_.buf, SLAB), FP_OK);
        }
    }

    e = engine_start(&env_.map, true, NULL, NULL, &mem);
    assert_int_equal(wrong_bytes(mem, 0, SIZE, 1), 0);
    engine_stop(e);
    assert_true(log_count("is another farpoold now", addr) >= 1);
    assert_int_equal(log_count("cannot fetch", NULL), 0);
}

/* The remap callback of the test: the map with new copies on node 2 of the slabs lost. */
typedef struct remapper {
    fp_region_map_t map;
    _Atomic unsigned calls;
} remapper_t;

static fp_status_t remap_to(void *arg, fp_region_map_t *map_p)
{
    remapper_t *r = arg;

    atomic_fetch_add(&r->calls, 1);
    return fp_region_map_copy(map_p, &r->map);
}

static void test_remap_after_every_copy_lost(void **state)
{
    remapper_t rm;
    uint8_t *mem;
    fp_engine_t *e;

    (void)state;
    /* The repaired map: the slabs of nodes 0 and 1 get one copy, on node 2. */
    assert_int_equal(fp_region_map_copy(&rm.map, &env_.map), FP_OK);
    atomic_init(&rm.calls, 0);
    for (uint32_t i = 0; i < NSLABS; i += 3) {
        fp_map_replica_t *r = &rm.map.replica[i * 2];

        r[0].node = 2;
        assert_int_equal(farpool_slab_alloc(env_.conn[2], &r[0].slab, NULL), FP_OK);
        fp_pattern_fill(env_.buf, SLAB, SEED, (uint64_t)i * SLAB, 1);
        assert_int_equal(farpool_slab_write(env_.conn[2], r[0].slab, 0, env_.buf, SLAB), FP_OK);
        r[1].node = FP_MAP_NO_NODE;
    }
    assert_int_equal(fp_region_map_check(&rm.map), FP_OK);

    e = engine_start(&env_.map, true, remap_to, &rm, &mem);
    assert_int_equal(wrong_bytes(mem, SLAB, SLAB, 1), 0);
    node_kill(0);
    node_kill(1);
    assert_int_equal(wrong_bytes(mem, 0, SIZE, 1), 0);
    engine_stop(e);
    print_message("remap called %u times\n", atomic_load(&rm.calls));
    assert_true(atomic_load(&rm.calls) >= 1);
    assert_int_equal(log_count("new map adopted", NULL), atomic_load(&rm.calls));
    assert_int_equal(log_count("cannot fetch", NULL), 0);
    fp_region_map_cleanup(&rm.map);
}

/* The remap callback that hands the region's own map back (a pool that repaired nothing). */
static fp_status_t remap_same(void *arg, fp_region_map_t *map_p)
{
    (void)arg;
    return fp_region_map_copy(map_p, &env_.map);
}

/*
 * In a forked child: a writable engine. The region is written (version 4)
 * and synced to every copy; slab 1 is written again (version 5) and node 2,
 * which holds one of its copies, stopped before the sync: the write-backs to
 * it time out, the sync succeeds on node 1. Then node 2 resumes and nodes 0
 * and 1 are killed: what is left of slab 1 is node 2's stale copy (version
 * 4). The remap callback names it again and node 2 is connected again, but a
 * read of slab 1 must raise SIGBUS. Exit codes as child_reads', and 9: a
 * sync failed, 10: a node would not die.
 */
static void child_stale(int log_fd)
{
    fp_engine_params_t ep;
    fp_engine_t *e;
    volatile uint8_t *mem;
    uint8_t *m;
    void *addr;
    char c;

    signal(SIGBUS, SIG_DFL);
    sink_.fd = log_fd;
    fp_budget_init(&env_.budget, CACHE);
    memset(&ep, 0, sizeof(ep));
    ep.map = &env_.map;
    ep.np = &env_.np;
    ep.remap = remap_same;
    ep.budget = &env_.budget;
    ep.log = &env_.log;
    if (fp_engine_start(&ep, &e, &addr) != FP_OK)
        _exit(3);
    m = addr;
    mem = m;
    fp_pattern_fill(m, SIZE, SEED, 0, 4);
    if (fp_engine_sync(e) != FP_OK)
        _exit(9);
    /* Slab 1 (8 blocks: in the cache, dirty) written again; node 2 stopped first. */
    if (fp_engine_release(e, 0, SIZE) != FP_OK)
        _exit(9);
    fp_pattern_fill(m + SLAB, SLAB, SEED, SLAB, 5);
    kill(env_.d[2].pid, SIGSTOP);
    if (fp_engine_sync(e) != FP_OK)
        _exit(9);
    if (fp_engine_release(e, 0, SIZE) != FP_OK || wrong_bytes(m, SLAB, SLAB, 5) != 0)
        _exit(7);
    if (fp_engine_release(e, 0, SIZE) != FP_OK) /* nothing cached: read from a node */
        _exit(9);
    kill(env_.d[2].pid, SIGCONT);
    for (unsigned n = 0; n < 2; n++) {
        uint64_t deadline = now_ms() + WAIT_MS;
        int fd;

        kill(env_.d[n].pid, SIGKILL);
        /* Dead once its port refuses (this child cannot reap it). */
        while ((fd = fp_test_connect_raw(env_.d[n].addr)) >= 0) {
            close(fd);
            if (now_ms() >= deadline)
                _exit(10);
            pause_ms(2);
        }
    }
    /* Slab 1's copies are on nodes 1 and 2: only node 2's, stale, is left. */
    c = mem[SLAB + 8];
    _exit(c == 0 ? 4 : 5);
}

static void test_stale_copy_never_read(void **state)
{
    char node[FP_TEST_ADDR_MAX + 8], *text;
    int fd = log_file(), wst;
    pid_t pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        child_stale(fd);
    wst = child_wait(pid);
    /* The child killed them: reap them here. */
    fp_test_daemon_kill(&env_.d[0]);
    fp_test_daemon_kill(&env_.d[1]);
    text = file_text(fd);
    fprintf(stderr, "child's log:\n%s", text);
    if (!WIFSIGNALED(wst))
        fail_msg("the child exited with %d instead of getting SIGBUS", WEXITSTATUS(wst));
    assert_int_equal(WTERMSIG(wst), SIGBUS);
    /* Node 2 timed out during the write-backs, which went on without it... */
    snprintf(node, sizeof(node), "node %s: ", env_.d[2].addr);
    assert_true(count_lines(text, "not written back to", node) >= 1);
    assert_int_equal(count_lines(text, "cannot write block", NULL), 0);
    /* ...and the read found no copy it could trust. */
    assert_int_equal(
        count_lines(text, "cannot fetch block 8 (offset 2097152) from any copy", "missed a write"),
        1);
    free(text);
    close(fd);
}

/* ---- maps ------------------------------------------------------------------ */

static void test_map_check(void **state)
{
    fp_region_map_t m, c;

    (void)state;
    assert_int_equal(fp_region_map_copy(&m, &env_.map), FP_OK);
    assert_int_equal(fp_region_map_check(&m), FP_OK);
    /* Two copies of a slab on one node. */
    m.replica[1].node = m.replica[0].node;
    assert_int_equal(fp_region_map_check(&m), FP_ERR_INVALID_PARAM);
    /* A slab with no copy left: bytes lost. */
    m.replica[0].node = m.replica[1].node = FP_MAP_NO_NODE;
    assert_int_equal(fp_region_map_check(&m), FP_ERR_NO_ENTRY);
    m.replica[0] = env_.map.replica[0];
    m.replica[1] = env_.map.replica[1];
    /* A node index out of range, a slab count that does not fit the size. */
    m.replica[2].node = NODES;
    assert_int_equal(fp_region_map_check(&m), FP_ERR_INVALID_PARAM);
    m.replica[2] = env_.map.replica[2];
    m.size += SLAB;
    assert_int_equal(fp_region_map_check(&m), FP_ERR_INVALID_PARAM);
    m.size -= SLAB;
    /* A block across two slabs of different nodes. */
    m.granule = 4u << 20;
    assert_int_equal(fp_region_map_check(&m), FP_ERR_INVALID_PARAM);
    m.granule = GRANULE;
    /* The same node named twice. */
    memcpy(m.nodes[1], m.nodes[0], sizeof(m.nodes[1]));
    assert_int_equal(fp_region_map_check(&m), FP_ERR_INVALID_PARAM);
    /* A deep copy: the arrays are its own. */
    assert_int_equal(fp_region_map_copy(&c, &env_.map), FP_OK);
    assert_ptr_not_equal(c.replica, env_.map.replica);
    assert_memory_equal(c.replica, env_.map.replica, NSLABS * 2 * sizeof(fp_map_replica_t));
    fp_region_map_cleanup(&c);
    fp_region_map_cleanup(&m);
    assert_null(m.replica);
    fp_region_map_cleanup(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_map_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_killed_while_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_stopped_while_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_copy_lost_gives_sigbus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_reach_every_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writeback_with_a_node_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_restarted_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_restarted_slabs_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remap_after_every_copy_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_copy_never_read, setup, teardown),
    };
    fp_uffd_t uffd;
    bool user_mode_only;

    /* Skip only where the kernel cannot do what the engine needs. */
    if (fp_uffd_open(NULL, &uffd, &user_mode_only, NULL) == FP_ERR_UNSUPPORTED) {
        fprintf(stderr, "test_engine_replicas: SKIP: this kernel lacks userfaultfd shmem minor "
                        "faults, write-protect or poison (Linux 6.6+ needed)\n");
        return 77;
    }
    fp_uffd_close(&uffd);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
