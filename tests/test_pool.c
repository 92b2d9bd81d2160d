/* SPDX-License-Identifier: MIT */
/*
 * The pool, end to end, with real daemons on loopback: a metadata node
 * (farpoold --meta-dir, also the first member) and members joining it
 * (farpoold --pool). Through the public API and the metadata calls of
 * src/client/pool.h:
 *
 * - members join and are listed live; regions are placed with r copies on
 *   distinct members; bytes written and synced read back from a new context;
 * - 4 threads reading at random (every byte checked) while a member is
 *   killed (SIGKILL), stopped (SIGSTOP) or restarted empty: zero wrong bytes,
 *   no SIGBUS; then repair restores every slab's copies, checked in the
 *   metadata and by reading every copy directly from its member;
 * - the same while a member's network link goes down (a member in a network
 *   namespace of the test's, its veth set down);
 * - every copy of a slab gone while mapped: the access gets SIGBUS and the
 *   log says why, never zeros;
 * - the metadata node killed and restarted on its directory: regions, slab
 *   maps and writer leases survive;
 * - four processes mapping one region read-only at once, every byte checked;
 * - a copy that misses a write (its node alive) is dropped by the pool at the
 *   writer's word and made again; pread/pwrite without a mapping;
 * - one writer at a time (FP_ERR_IN_USE), unpublished regions invisible and
 *   dropped when their creator dies, drain, FIXED addresses;
 * - bad joins: another pool's secret, another slab size, an address that is
 *   another member's; a region bigger than the pool; more copies than members.
 *
 * Every wait is on a condition with a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <farpool/farpool.h>

#include "client/node.h"
#include "client/pool.h"
#include "common/daemon.h"
#include "common/etcd.h"
#include "common/etcd_server.h"
#include "common/pattern.h"
#include "common/time.h"

#define SLAB      "2M"
#define SLAB_SIZE (2ull << 20)
#define NODE_CAP  "64M"
#define MEMBERS   2 /* besides the metadata node */
#define WAIT_MS   20000
#define REGION    ((uint64_t)24 << 20)
/* Members declared dead after this (s); writer leases last this (s). Long
 * enough for a member's heartbeat (a tenth of it) to get through with the
 * other CPU busy; a sanitized build runs several times slower. */
#ifdef FP_SANITIZED
#define DEAD_AFTER   "3"
#define LEASE_TTL    "4"
#define LEASE_TTL_MS 4000
#else
#define DEAD_AFTER   "2"
#define LEASE_TTL    "3"
#define LEASE_TTL_MS 3000
#endif

typedef struct pool {
    fp_test_daemon_t meta, mem[MEMBERS];
    bool mem_up[MEMBERS];
    char dir[FP_TEST_PATH_MAX]; /* the metadata directory, outlives the meta daemon */
    char url[FP_TEST_ADDR_MAX + 16];
    char secret[FP_TEST_PATH_MAX];              /* the secret file; "": none (loopback) */
    char listen[FP_TEST_ADDR_MAX];              /* where the metadata node and members listen */
    char mem_listen[MEMBERS][FP_TEST_ADDR_MAX]; /* per member, if set */
    char mem_netns[MEMBERS][64]; /* a network namespace (/run/netns/NAME) to run a member in */
} pool_t;

/* The pool on loopback most tests use, and the one whose member sits in a namespace. */
static pool_t loop_pool, ns_pool, etcd_pool;
static pool_t *P = &loop_pool;

/* Node parameters for the pool's nodes: its secret. */
static farpool_node_params_t pool_np(void)
{
    farpool_node_params_t np = {0};

    if (P->secret[0] != '\0') {
        np.field_mask |= FARPOOL_NODE_PARAM_SECRET_FILE;
        np.secret_file = P->secret;
    }
    return np;
}

static uint64_t now_ms(void)
{
    return fp_time_ns() / FP_NS_PER_MS;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static farpool_node_t *meta_connect(void)
{
    farpool_node_params_t np = pool_np();
    farpool_node_t *m = NULL;

    assert_int_equal(farpool_node_connect(P->meta.addr, &np, &m), FP_OK);
    return m;
}

/* Live members the pool lists now. */
static size_t live_members(void)
{
    farpool_node_params_t np = pool_np();
    fp_pool_node_entry_t *nodes;
    farpool_node_t *m;
    size_t n = 0, live = 0;

    if (farpool_node_connect(P->meta.addr, &np, &m) != FP_OK)
        return 0;
    if (fp_pool_nodes(m, &nodes, &n) == FP_OK) {
        for (size_t i = 0; i < n; i++)
            live += nodes[i].state == FP_POOL_NODE_LIVE;
        free(nodes);
    }
    farpool_node_close(m);
    return live;
}

/* True if the pool lists @addr as a live member. */
static bool member_live(const char *addr)
{
    farpool_node_params_t np = pool_np();
    fp_pool_node_entry_t *nodes;
    farpool_node_t *m;
    size_t n = 0;
    bool live = false;

    if (farpool_node_connect(P->meta.addr, &np, &m) != FP_OK)
        return false;
    if (fp_pool_nodes(m, &nodes, &n) == FP_OK) {
        for (size_t i = 0; i < n; i++)
            live =
                live || (nodes[i].state == FP_POOL_NODE_LIVE && strcmp(nodes[i].addr, addr) == 0);
        free(nodes);
    }
    farpool_node_close(m);
    return live;
}

/* Wait until the pool no longer lists @addr as live (declared dead). */
static bool wait_not_live(const char *addr)
{
    uint64_t end = now_ms() + WAIT_MS;

    while (now_ms() < end) {
        if (!member_live(addr))
            return true;
        pause_ms(50);
    }
    return false;
}

static bool wait_live(size_t want)
{
    uint64_t end = now_ms() + WAIT_MS;

    while (now_ms() < end) {
        if (live_members() == want)
            return true;
        pause_ms(50);
    }
    return false;
}

/* The options every daemon of the pool gets: slab size, capacity, secret. */
static int common_args(const char **args, int n)
{
    args[n++] = "--slab-size";
    args[n++] = SLAB;
    args[n++] = "--capacity";
    args[n++] = NODE_CAP;
    if (P->secret[0] != '\0') {
        args[n++] = "--secret-file";
        args[n++] = P->secret;
    }
    return n;
}

/* @listen: the address to take (a restart); NULL: a free port on P->listen. */
static fp_status_t start_meta(const char *listen)
{
    const char *args[24] = {"--meta-dir",  P->dir,    "--dead-after",  DEAD_AFTER,
                            "--lease-ttl", LEASE_TTL, "--repair-rate", "1G"};
    int n = common_args(args, 8);

    if (listen != NULL || P->listen[0] != '\0') {
        args[n++] = "--listen";
        args[n++] = listen != NULL ? listen : P->listen;
    }
    args[n] = NULL;
    return fp_test_daemon_start(args, &P->meta);
}

/* Runs in the member's child before exec: enter its network namespace. */
static void enter_netns(void *arg)
{
    int fd = open(arg, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
        _exit(126);
}

static fp_status_t start_member(int i, const char *listen)
{
    const char *args[24] = {"--pool", P->url};
    int n = common_args(args, 2);
    fp_status_t status;

    if (listen == NULL && P->mem_listen[i][0] != '\0')
        listen = P->mem_listen[i];
    else if (listen == NULL && P->listen[0] != '\0')
        listen = P->listen;
    if (listen != NULL) {
        args[n++] = "--listen";
        args[n++] = listen;
    }
    args[n] = NULL;
    status = fp_test_daemon_start_setup(args, P->mem_netns[i][0] != '\0' ? enter_netns : NULL,
                                        P->mem_netns[i], &P->mem[i]);
    P->mem_up[i] = status == FP_OK;
    return status;
}

static int pool_start(void)
{
    if (start_meta(NULL) != FP_OK)
        return -1;
    snprintf(P->url, sizeof(P->url), "farpool://%.*s", FP_TEST_ADDR_MAX - 1, P->meta.addr);
    for (int i = 0; i < MEMBERS; i++)
        if (start_member(i, NULL) != FP_OK)
            return -1;
    return wait_live(MEMBERS + 1) ? 0 : -1;
}

/* Stop every daemon; -1 if one did not exit cleanly (a crash, a sanitizer's report). */
static int pool_stop(void)
{
    int rc = 0;

    for (int i = 0; i < MEMBERS; i++)
        if (P->mem_up[i] && fp_test_daemon_stop(&P->mem[i]) != 0)
            rc = -1;
    if (fp_test_daemon_stop(&P->meta) != 0)
        rc = -1;
    return rc;
}

static int group_setup(void **state)
{
    (void)state;
    unsetenv("FARPOOL_POOL");
    snprintf(P->dir, sizeof(P->dir), "%s/meta", fp_test_scratch_dir());
    return pool_start();
}

static int group_teardown(void **state)
{
    (void)state;
    return pool_stop();
}

/* Bring killed members back (empty, on new ports) and wait until all are live. */
static void heal_pool(void)
{
    for (int i = 0; i < MEMBERS; i++) {
        if (P->mem_up[i] && fp_test_daemon_alive(&P->mem[i]))
            continue;
        if (P->mem_up[i])
            fp_test_daemon_stop(&P->mem[i]);
        assert_int_equal(start_member(i, NULL), FP_OK);
    }
    /* The new ones joined, and the dead ones are declared so (not merely silent). */
    for (int i = 0; i < MEMBERS; i++) {
        uint64_t end = now_ms() + WAIT_MS;

        while (!member_live(P->mem[i].addr) && now_ms() < end)
            pause_ms(50);
    }
    assert_true(wait_live(MEMBERS + 1));
}

static farpool_context_t *pool_context(uint64_t cache, int timeout_ms)
{
    farpool_context_params_t p = {0};
    farpool_context_t *ctx = NULL;

    p.field_mask = FARPOOL_CONTEXT_PARAM_POOL | FARPOOL_CONTEXT_PARAM_CACHE_BYTES;
    p.pool = P->url;
    p.cache_bytes = cache;
    if (P->secret[0] != '\0') {
        p.field_mask |= FARPOOL_CONTEXT_PARAM_SECRET_FILE;
        p.secret_file = P->secret;
    }
    if (timeout_ms > 0) {
        p.field_mask |= FARPOOL_CONTEXT_PARAM_TIMEOUT;
        p.timeout_ms = timeout_ms;
    }
    assert_int_equal(farpool_context_create(&p, &ctx), FP_OK);
    return ctx;
}

/* Create @name with @replicas copies, fill it with the pattern of @tag, sync, close. */
static void make_region(const char *name, uint64_t size, uint32_t replicas, uint64_t tag)
{
    farpool_context_t *ctx = pool_context(64ull << 20, 0);
    farpool_region_params_t rp = {.field_mask =
                                      FARPOOL_REGION_PARAM_REPLICAS | FARPOOL_REGION_PARAM_GRANULE,
                                  .replicas = replicas,
                                  .granule = 64u << 10};
    farpool_region_t *r;
    void *addr;

    assert_int_equal(farpool_region_create_ex(ctx, name, size, &rp, &r), FP_OK);
    assert_int_equal(farpool_map(r, &addr), FP_OK);
    fp_pattern_fill(addr, size, tag, 0, 1);
    assert_int_equal(farpool_sync(r), FP_OK);
    farpool_region_close(r);
    farpool_context_destroy(ctx);
}

/* The region's map as the metadata has it now. */
static void region_map(const char *name, fp_pool_region_desc_t *desc, fp_region_map_t *map)
{
    farpool_node_t *m = meta_connect();

    assert_int_equal(fp_pool_open(m, name, 0, desc), FP_OK);
    assert_int_equal(fp_pool_region_map(m, desc, map), FP_OK);
    farpool_node_close(m);
}

/* Every slab has @least to @most copies, on distinct nodes. */
static bool copies_between(const char *name, uint32_t least, uint32_t most)
{
    fp_pool_region_desc_t desc;
    fp_region_map_t map;
    bool ok = true;

    region_map(name, &desc, &map);
    for (uint32_t i = 0; i < map.nslabs && ok; i++) {
        uint32_t n = 0;

        for (uint32_t k = 0; k < map.replicas; k++) {
            const fp_map_replica_t *a = fp_region_map_at(&map, i, k);

            if (a->node == FP_MAP_NO_NODE)
                continue;
            n++;
            for (uint32_t j = 0; j < k; j++)
                ok = ok && fp_region_map_at(&map, i, j)->node != a->node;
        }
        ok = ok && n >= least && n <= most;
    }
    fp_region_map_cleanup(&map);
    return ok;
}

static bool copies_complete(const char *name, uint32_t want)
{
    return copies_between(name, want, want);
}

static bool wait_copies(const char *name, uint32_t want)
{
    uint64_t end = now_ms() + WAIT_MS;

    while (now_ms() < end) {
        if (copies_complete(name, want))
            return true;
        pause_ms(100);
    }
    return false;
}

/* Print the pool's members, for a failure's post-mortem. */
static void dump_pool(void)
{
    farpool_node_params_t np = pool_np();
    fp_pool_node_entry_t *nodes;
    farpool_node_t *m;
    size_t n = 0;

    if (farpool_node_connect(P->meta.addr, &np, &m) != FP_OK)
        return;
    if (fp_pool_nodes(m, &nodes, &n) == FP_OK) {
        for (size_t i = 0; i < n; i++)
            print_message("member %llu %s: %s, %llu used, seen %u ms ago\n",
                          (unsigned long long)nodes[i].member, nodes[i].addr,
                          fp_pool_node_state_name(nodes[i].state),
                          (unsigned long long)nodes[i].used, nodes[i].seen_ms);
        free(nodes);
    }
    farpool_node_close(m);
}

/* Read every copy of every slab straight from its member and check it. */
/* True if the metadata lists slab id @slab on @addr as a copy of @name now. */
static bool copy_listed(const char *name, const char *addr, uint64_t slab)
{
    fp_pool_region_desc_t desc;
    fp_region_map_t map;
    bool listed = false;

    region_map(name, &desc, &map);
    for (uint64_t e = 0; e < (uint64_t)map.nslabs * map.replicas; e++)
        listed = listed || (map.replica[e].node != FP_MAP_NO_NODE && map.replica[e].slab == slab &&
                            strcmp(map.nodes[map.replica[e].node], addr) == 0);
    fp_region_map_cleanup(&map);
    return listed;
}

/*
 * Read every copy of every slab of @name straight from its member and check
 * it. False if a copy that cannot be read is no longer in the metadata (the
 * map changed under the check: a member declared dead, for a late heartbeat
 * on a loaded machine); a copy missing while the metadata lists it fails the
 * test.
 */
static bool copies_read(const char *name, uint64_t tag, uint32_t *replicas_p)
{
    fp_pool_region_desc_t desc;
    fp_region_map_t map;
    uint8_t *buf = malloc(SLAB_SIZE);
    bool done = true;

    assert_non_null(buf);
    region_map(name, &desc, &map);
    *replicas_p = desc.replicas;
    for (uint32_t n = 0; n < map.nnodes && done; n++) {
        farpool_node_params_t np = pool_np();
        farpool_node_t *conn;

        np.field_mask |= FARPOOL_NODE_PARAM_CLIENT_KEY;
        memcpy(np.client_key, desc.key, sizeof(np.client_key));
        assert_int_equal(farpool_node_connect(map.nodes[n], &np, &conn), FP_OK);
        for (uint32_t i = 0; i < map.nslabs && done; i++) {
            for (uint32_t k = 0; k < map.replicas && done; k++) {
                const fp_map_replica_t *a = fp_region_map_at(&map, i, k);
                uint64_t off = (uint64_t)i * SLAB_SIZE;
                uint64_t len = desc.size - off < SLAB_SIZE ? desc.size - off : SLAB_SIZE;
                fp_status_t status;

                if (a->node != n)
                    continue;
                status = farpool_slab_read(conn, a->slab, 0, buf, len);
                if (status != FP_OK) {
                    print_message("copy %u of slab %u (id %llx) on %s: %s\n", k, i,
                                  (unsigned long long)a->slab, map.nodes[n],
                                  fp_status_string(status));
                    dump_pool();
                    if (!copy_listed(name, map.nodes[n], a->slab)) {
                        done = false; /* the pool changed its map: check the new one */
                        break;
                    }
                }
                assert_int_equal(status, FP_OK);
                FP_PATTERN_ASSERT(buf, len, tag, off, 1);
            }
        }
        farpool_node_close(conn);
    }
    fp_region_map_cleanup(&map);
    free(buf);
    return done;
}

static void check_every_copy(const char *name, uint64_t tag)
{
    uint32_t replicas = 0;

    for (int attempt = 0; attempt < 3; attempt++) {
        if (copies_read(name, tag, &replicas))
            return;
        assert_true(wait_copies(name, replicas));
    }
    fail_msg("region %s: the pool kept changing its members while every copy was read", name);
}

/* ---- readers ---- */

typedef struct readers {
    uint8_t *base;
    uint64_t size, tag;
    atomic_bool stop;
    atomic_ulong reads, bad;
    unsigned seed;
} readers_t;

static void *reader_main(void *arg)
{
    readers_t *rd = arg;
    unsigned seed = atomic_fetch_add(&rd->reads, 1) * 7919u + rd->seed;

    while (!atomic_load(&rd->stop)) {
        uint64_t off =
            ((uint64_t)rand_r(&seed) << 16 ^ (uint64_t)rand_r(&seed)) % (rd->size - 4096);

        off &= ~7ull;
        if (!fp_pattern_check(rd->base + off, 4096, rd->tag, off, 1, NULL))
            atomic_fetch_add(&rd->bad, 1);
        atomic_fetch_add(&rd->reads, 1);
    }
    return NULL;
}

/*
 * Map @name read-only with a small cache, run 4 verifying readers, call
 * @fault(@arg) once they have read a while, keep reading until @after_ms
 * passed and at least as many reads again were done; assert no wrong byte.
 */
static void read_through(const char *name, uint64_t tag, void (*fault)(void *), void *arg,
                         int after_ms)
{
    farpool_context_t *ctx = pool_context(4ull << 20, 1000);
    pthread_t th[4];
    readers_t rd = {.tag = tag, .seed = (unsigned)getpid()};
    farpool_region_t *r;
    unsigned long before;
    uint64_t end;
    void *addr;

    assert_int_equal(farpool_region_open(ctx, name, FARPOOL_REGION_READONLY, &r), FP_OK);
    assert_int_equal(farpool_map(r, &addr), FP_OK);
    rd.base = addr;
    rd.size = farpool_region_size(r);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd), 0);
    end = now_ms() + WAIT_MS;
    while (atomic_load(&rd.reads) < 2000 && now_ms() < end)
        pause_ms(10);
    before = atomic_load(&rd.reads);
    fault(arg);
    end = now_ms() + (uint64_t)after_ms;
    while (now_ms() < end || (atomic_load(&rd.reads) < 2 * before && now_ms() < end + WAIT_MS))
        pause_ms(10);
    atomic_store(&rd.stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_true(atomic_load(&rd.reads) >= 2 * before);
    assert_int_equal(atomic_load(&rd.bad), 0);
    farpool_region_close(r);
    farpool_context_destroy(ctx);
}

/* ---- other processes: this program run again (no fork without exec: TSan) ---- */

static const char *self_path;

/*
 * Run this test program as child @role with @args (NULL-terminated), its
 * stderr to @log if not NULL. Descriptors the caller left open without
 * close-on-exec are inherited.
 */
static pid_t spawn_child(const char *role, const char *const args[], const char *log)
{
    const char *argv[16] = {self_path, "--child", role};
    int n = 3;
    pid_t pid;

    for (int i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (log != NULL) {
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

            if (fd >= 0)
                dup2(fd, 2);
        }
        execv(self_path, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static bool file_contains(const char *path, const char *needle)
{
    char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL)
        return false;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static farpool_context_t *child_context(const char *url, int timeout_ms)
{
    farpool_context_params_t p = {.field_mask = FARPOOL_CONTEXT_PARAM_POOL, .pool = url};
    farpool_context_t *ctx;

    if (timeout_ms > 0) {
        p.field_mask |= FARPOOL_CONTEXT_PARAM_TIMEOUT | FARPOOL_CONTEXT_PARAM_CACHE_BYTES;
        p.timeout_ms = timeout_ms;
        p.cache_bytes = 4ull << 20;
    }
    if (farpool_context_create(&p, &ctx) != FP_OK)
        _exit(3);
    return ctx;
}

#define CHILD_SIGBUS 86 /* child_gone's exit code when its read got SIGBUS */

static void on_sigbus(int sig)
{
    (void)sig;
    _exit(CHILD_SIGBUS);
}

/*
 * gone URL IN OUT OFFSET: map "gone", say so on OUT, wait on IN, read OFFSET,
 * which must raise SIGBUS (seen by a handler: the sanitizers catch the
 * default action and exit otherwise).
 */
static int child_gone(char **argv)
{
    farpool_context_t *ctx = child_context(argv[0], 1000);
    int in = atoi(argv[1]), out = atoi(argv[2]);
    uint64_t off = strtoull(argv[3], NULL, 10);
    farpool_region_t *r;
    volatile uint8_t *addr;
    void *a;
    char c;

    if (farpool_region_open(ctx, "gone", FARPOOL_REGION_READONLY, &r) != FP_OK ||
        farpool_map(r, &a) != FP_OK)
        return 3;
    addr = a;
    signal(SIGBUS, on_sigbus);
    (void)!write(out, "m", 1);
    (void)!read(in, &c, 1);
    /* Its only copy is gone: this must not read zeros. */
    c = addr[off];
    return c == 0 ? 4 : 5;
}

/* orphan URL: create "orphan" unpublished, and exit without closing it. */
static int child_orphan(char **argv)
{
    farpool_context_t *ctx = child_context(argv[0], 0);
    farpool_region_params_t rp = {.field_mask = FARPOOL_REGION_PARAM_FLAGS,
                                  .flags = FARPOOL_REGION_UNPUBLISHED};
    farpool_region_t *h;

    if (farpool_region_create_ex(ctx, "orphan", 4u << 20, &rp, &h) != FP_OK)
        return 3;
    _exit(0); /* no close, no release */
}

/* writer URL: create "etcdw" (its writer lease held), and exit without closing it. */
static int child_writer(char **argv)
{
    farpool_context_t *ctx = child_context(argv[0], 0);
    farpool_region_t *h;

    if (farpool_region_create(ctx, "etcdw", 4u << 20, 0, &h) != FP_OK)
        return 3;
    _exit(0); /* no close, no release */
}

/* fixed URL ADDR: "fixed" maps at ADDR; a pointer inside it leads inside; a taken range fails. */
static int child_fixed(char **argv)
{
    farpool_context_t *ctx = child_context(argv[0], 0);
    uintptr_t want = (uintptr_t)strtoull(argv[1], NULL, 10);
    farpool_region_t *f;
    void *a, *taken;

    if (farpool_region_open(ctx, "fixed", FARPOOL_REGION_READONLY, &f) != FP_OK ||
        farpool_map(f, &a) != FP_OK)
        return 3;
    if ((uintptr_t)a != want || *((uint8_t **)a)[0] != 0x5a)
        return 4;
    farpool_unmap(f);
    /* The range taken: a clear error, not another address. */
    taken = mmap(a, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (taken != a)
        return 5;
    if (farpool_map(f, &a) != FP_ERR_IN_USE)
        return 6;
    return 0;
}

/* reader URL NAME TAG: map NAME read-only and check every byte (0: all right). */
static int child_reader(char **argv)
{
    farpool_context_t *ctx = child_context(argv[0], 0);
    uint64_t tag = strtoull(argv[2], NULL, 10);
    farpool_region_t *r;
    void *a;

    if (farpool_region_open(ctx, argv[1], FARPOOL_REGION_READONLY, &r) != FP_OK ||
        farpool_map(r, &a) != FP_OK)
        return 3;
    if (!fp_pattern_check(a, farpool_region_size(r), tag, 0, 1, NULL))
        return 4;
    farpool_context_destroy(ctx);
    return 0;
}

static int child_main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[2], "reader") == 0)
        return child_reader(argv + 3);
    if (argc >= 4 && strcmp(argv[2], "gone") == 0 && argc == 7)
        return child_gone(argv + 3);
    if (argc == 4 && strcmp(argv[2], "orphan") == 0)
        return child_orphan(argv + 3);
    if (argc == 4 && strcmp(argv[2], "writer") == 0)
        return child_writer(argv + 3);
    if (argc == 5 && strcmp(argv[2], "fixed") == 0)
        return child_fixed(argv + 3);
    fprintf(stderr, "test_pool: unknown child role\n");
    return 2;
}

/* ---- tests ---- */

static void test_members_and_placement(void **state)
{
    fp_pool_node_entry_t *nodes;
    farpool_node_t *m = meta_connect();
    size_t n = 0;

    (void)state;
    assert_int_equal(fp_pool_nodes(m, &nodes, &n), FP_OK);
    assert_int_equal(n, MEMBERS + 1);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(nodes[i].state, FP_POOL_NODE_LIVE);
        assert_int_equal(nodes[i].capacity, 64ull << 20);
        assert_int_equal(nodes[i].slab_size, SLAB_SIZE);
    }
    free(nodes);
    farpool_node_close(m);

    make_region("placed", REGION, 2, 11);
    assert_true(copies_complete("placed", 2));
    check_every_copy("placed", 11);
    {
        farpool_context_t *ctx = pool_context(64ull << 20, 0);
        farpool_region_info_t info;
        farpool_region_t *r;
        void *addr;

        assert_int_equal(farpool_region_open(ctx, "placed", FARPOOL_REGION_READONLY, &r), FP_OK);
        assert_int_equal(farpool_region_info(r, &info, sizeof(info)), FP_OK);
        assert_int_equal(info.replicas, 2);
        assert_int_equal(info.size, REGION);
        assert_int_equal(farpool_map(r, &addr), FP_OK);
        FP_PATTERN_ASSERT(addr, REGION, 11, 0, 1);
        farpool_region_close(r);
        assert_int_equal(farpool_region_delete(ctx, "placed"), FP_OK);
        assert_int_equal(farpool_region_open(ctx, "placed", FARPOOL_REGION_READONLY, &r),
                         FP_ERR_NO_ENTRY);
        farpool_context_destroy(ctx);
    }
}

static void kill_member0(void *arg)
{
    (void)arg;
    fp_test_daemon_kill(&P->mem[0]);
}

static void test_kill_member_while_reading(void **state)
{
    (void)state;
    make_region("killed", REGION, 2, 12);
    read_through("killed", 12, kill_member0, NULL, 1500);
    /* The member is declared dead; repair puts the copies back on the survivors. */
    assert_true(wait_not_live(P->mem[0].addr));
    assert_true(wait_copies("killed", 2));
    check_every_copy("killed", 12);
    heal_pool();
    {
        farpool_context_t *ctx = pool_context(64ull << 20, 0);

        assert_int_equal(farpool_region_delete(ctx, "killed"), FP_OK);
        farpool_context_destroy(ctx);
    }
}

static void stop_member1(void *arg)
{
    (void)arg;
    kill(P->mem[1].pid, SIGSTOP);
}

static void test_stopped_member_while_reading(void **state)
{
    (void)state;
    make_region("stopped", REGION, 2, 13);
    read_through("stopped", 13, stop_member1, NULL, 2500);
    assert_true(wait_not_live(P->mem[1].addr));
    kill(P->mem[1].pid, SIGCONT);
    /* It was declared dead while stopped: it rejoins as a new member and frees its stale slabs. */
    assert_true(fp_test_daemon_log_wait(&P->mem[1], "stale slabs", WAIT_MS));
    assert_true(wait_live(MEMBERS + 1));
    assert_true(wait_copies("stopped", 2));
    check_every_copy("stopped", 13);
    {
        farpool_context_t *ctx = pool_context(64ull << 20, 0);

        assert_int_equal(farpool_region_delete(ctx, "stopped"), FP_OK);
        farpool_context_destroy(ctx);
    }
}

static void restart_member0_empty(void *arg)
{
    char addr[FP_TEST_ADDR_MAX];

    (void)arg;
    snprintf(addr, sizeof(addr), "%.*s", (int)sizeof(addr) - 1, P->mem[0].addr);
    fp_test_daemon_kill(&P->mem[0]);
    fp_test_daemon_stop(&P->mem[0]);
    P->mem_up[0] = false;
    assert_int_equal(start_member(0, addr), FP_OK);
}

static void test_member_restarted_empty(void **state)
{
    (void)state;
    make_region("restarted", REGION, 2, 14);
    read_through("restarted", 14, restart_member0_empty, NULL, 1500);
    assert_true(wait_live(MEMBERS + 1));
    assert_true(wait_copies("restarted", 2));
    check_every_copy("restarted", 14);
    {
        farpool_context_t *ctx = pool_context(64ull << 20, 0);

        assert_int_equal(farpool_region_delete(ctx, "restarted"), FP_OK);
        farpool_context_destroy(ctx);
    }
}

/* The index of the member daemon at @addr, -1 for the metadata node. */
static int member_at(const char *addr)
{
    for (int i = 0; i < MEMBERS; i++)
        if (strcmp(P->mem[i].addr, addr) == 0)
            return i;
    return -1;
}

static void test_every_copy_gone(void **state)
{
    fp_pool_region_desc_t desc;
    fp_region_map_t map;
    int to_child[2], from_child[2], wst;
    uint32_t victim = UINT32_MAX;
    char gone_log[FP_TEST_PATH_MAX];
    pid_t pid;
    char c;

    (void)state;
    snprintf(gone_log, sizeof(gone_log), "%s/gone.log", fp_test_scratch_dir());
    make_region("gone", REGION, 1, 15);
    region_map("gone", &desc, &map);
    /* A slab whose one copy is on a member (not the metadata node). */
    for (uint32_t i = 0; i < map.nslabs && victim == UINT32_MAX; i++)
        if (member_at(map.nodes[fp_region_map_at(&map, i, 0)->node]) >= 0)
            victim = i;
    assert_int_not_equal(victim, UINT32_MAX);
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(from_child), 0);
    {
        char in[16], out[16], off[32];
        const char *args[] = {P->url, in, out, off, NULL};

        snprintf(in, sizeof(in), "%d", to_child[0]);
        snprintf(out, sizeof(out), "%d", from_child[1]);
        snprintf(off, sizeof(off), "%" PRIu64, (uint64_t)(victim * SLAB_SIZE + 8));
        pid = spawn_child("gone", args, gone_log);
    }
    assert_int_equal(read(from_child[0], &c, 1), 1);
    fp_test_daemon_kill(&P->mem[member_at(map.nodes[fp_region_map_at(&map, victim, 0)->node])]);
    assert_int_equal(write(to_child[1], "k", 1), 1);
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst));
    assert_int_equal(WEXITSTATUS(wst), CHILD_SIGBUS);
    assert_true(file_contains(gone_log, "accesses to it get SIGBUS"));
    fp_region_map_cleanup(&map);
    close(to_child[0]);
    close(to_child[1]);
    close(from_child[0]);
    close(from_child[1]);
    heal_pool();
    {
        farpool_context_t *ctx = pool_context(64ull << 20, 0);

        assert_int_equal(farpool_region_delete(ctx, "gone"), FP_OK);
        farpool_context_destroy(ctx);
    }
}

static void test_many_readers(void **state)
{
    const char *args[] = {P->url, "shared", "19", NULL};
    pid_t pids[4];

    (void)state;
    make_region("shared", REGION, 2, 19);
    /* Four processes map it read-only at once, each reading every byte. */
    for (int i = 0; i < 4; i++)
        pids[i] = spawn_child("reader", args, NULL);
    for (int i = 0; i < 4; i++) {
        int wst;

        assert_int_equal(waitpid(pids[i], &wst, 0), pids[i]);
        assert_true(WIFEXITED(wst));
        assert_int_equal(WEXITSTATUS(wst), 0);
    }
    {
        farpool_context_t *ctx = pool_context(64ull << 20, 0);

        assert_int_equal(farpool_region_delete(ctx, "shared"), FP_OK);
        farpool_context_destroy(ctx);
    }
}

static void test_pread_pwrite(void **state)
{
    farpool_context_t *ctx = pool_context(64ull << 20, 0);
    farpool_region_params_t rp = {.field_mask = FARPOOL_REGION_PARAM_REPLICAS, .replicas = 2};
    uint8_t *buf = malloc(REGION), *back = malloc(REGION);
    farpool_region_t *r, *ro;
    void *addr;

    (void)state;
    assert_non_null(buf);
    assert_non_null(back);
    fp_pattern_fill(buf, REGION, 20, 0, 1);
    assert_int_equal(farpool_region_create_ex(ctx, "direct", REGION, &rp, &r), FP_OK);
    /* Uneven pieces across slab bounds. */
    assert_int_equal(farpool_region_pwrite(r, buf, 3 * SLAB_SIZE + 12345, 0), FP_OK);
    assert_int_equal(farpool_region_pwrite(r, buf + 3 * SLAB_SIZE + 12345,
                                           REGION - 3 * SLAB_SIZE - 12345, 3 * SLAB_SIZE + 12345),
                     FP_OK);
    assert_int_equal(farpool_region_pwrite(r, buf, 2, REGION - 1), FP_ERR_OUT_OF_RANGE);
    assert_int_equal(farpool_region_pread(r, back, REGION, 0), FP_OK);
    assert_memory_equal(back, buf, REGION);
    farpool_region_close(r);
    /* Every copy has them, and a mapping sees them. */
    check_every_copy("direct", 20);
    assert_int_equal(farpool_region_open(ctx, "direct", FARPOOL_REGION_READONLY, &ro), FP_OK);
    assert_int_equal(farpool_region_pwrite(ro, buf, 1, 0), FP_ERR_PERMISSION);
    memset(back, 0, REGION);
    assert_int_equal(farpool_region_pread(ro, back + 1, REGION - 1, 1), FP_OK);
    assert_memory_equal(back + 1, buf + 1, REGION - 1);
    assert_int_equal(farpool_map(ro, &addr), FP_OK);
    FP_PATTERN_ASSERT(addr, REGION, 20, 0, 1);
    farpool_region_close(ro);
    assert_int_equal(farpool_region_delete(ctx, "direct"), FP_OK);
    farpool_context_destroy(ctx);
    free(buf);
    free(back);
}

static void test_copy_missing_a_write(void **state)
{
    farpool_context_t *ctx = pool_context(64ull << 20, 0);
    farpool_region_params_t rp = {.field_mask = FARPOOL_REGION_PARAM_REPLICAS, .replicas = 2};
    farpool_node_params_t np = pool_np();
    fp_pool_region_desc_t desc;
    fp_region_map_t map;
    farpool_node_t *conn;
    farpool_region_t *r;
    uint64_t end;
    void *addr;

    (void)state;
    assert_int_equal(farpool_region_create_ex(ctx, "stale", REGION, &rp, &r), FP_OK);
    assert_int_equal(farpool_map(r, &addr), FP_OK);
    fp_pattern_fill(addr, REGION, 21, 0, 1);
    assert_int_equal(farpool_sync(r), FP_OK);
    /* One copy of slab 0 vanishes from its (live) node: write-backs to it fail there. */
    region_map("stale", &desc, &map);
    np.field_mask |= FARPOOL_NODE_PARAM_CLIENT_KEY;
    memcpy(np.client_key, desc.key, sizeof(np.client_key));
    assert_int_equal(
        farpool_node_connect(map.nodes[fp_region_map_at(&map, 0, 0)->node], &np, &conn), FP_OK);
    assert_int_equal(farpool_slab_free(conn, fp_region_map_at(&map, 0, 0)->slab), FP_OK);
    farpool_node_close(conn);
    fp_region_map_cleanup(&map);
    fp_pattern_fill(addr, REGION, 22, 0, 1);
    assert_int_equal(farpool_sync(r), FP_OK); /* the other copy took it */
    /* The writer tells the pool, which drops that copy: no reader gets it. */
    end = now_ms() + WAIT_MS;
    while (!copies_between("stale", 1, 2) || copies_complete("stale", 2)) {
        assert_true(now_ms() < end);
        pause_ms(50);
    }
    farpool_region_close(r);
    /* The writer gone, repair makes the copy again, from the one with the new bytes. */
    assert_true(wait_copies("stale", 2));
    check_every_copy("stale", 22);
    assert_int_equal(farpool_region_delete(ctx, "stale"), FP_OK);
    farpool_context_destroy(ctx);
}

static void test_two_writers(void **state)
{
    farpool_context_t *a = pool_context(64ull << 20, 0), *b = pool_context(64ull << 20, 0);
    farpool_region_t *ra, *rb;

    (void)state;
    assert_int_equal(farpool_region_create(a, "writers", 8u << 20, 0, &ra), FP_OK);
    assert_int_equal(farpool_region_open(b, "writers", 0, &rb), FP_ERR_IN_USE);
    assert_int_equal(farpool_region_open(b, "writers", FARPOOL_REGION_READONLY, &rb), FP_OK);
    farpool_region_close(rb);
    /* The lease is renewed while held: still refused past its TTL. */
    pause_ms(LEASE_TTL_MS + 1000);
    assert_int_equal(farpool_region_open(b, "writers", 0, &rb), FP_ERR_IN_USE);
    assert_int_equal(farpool_region_delete(b, "writers"), FP_ERR_IN_USE);
    /* The writer's context opening it again shares its lease: closing one keeps it. */
    {
        farpool_region_t *again;

        assert_int_equal(farpool_region_open(a, "writers", 0, &again), FP_OK);
        farpool_region_close(again);
        pause_ms(LEASE_TTL_MS + 1000);
        assert_int_equal(farpool_region_open(b, "writers", 0, &rb), FP_ERR_IN_USE);
    }
    farpool_region_close(ra);
    assert_int_equal(farpool_region_open(b, "writers", 0, &rb), FP_OK);
    farpool_region_close(rb);
    assert_int_equal(farpool_region_delete(b, "writers"), FP_OK);
    farpool_context_destroy(a);
    farpool_context_destroy(b);
}

static bool region_listed(const char *name)
{
    fp_pool_region_desc_t *list;
    farpool_node_t *m = meta_connect();
    size_t n = 0;
    bool found = false;

    assert_int_equal(fp_pool_regions(m, &list, &n), FP_OK);
    for (size_t i = 0; i < n; i++)
        found = found || strcmp(list[i].name.text, name) == 0;
    free(list);
    farpool_node_close(m);
    return found;
}

static void test_unpublished(void **state)
{
    farpool_context_t *ctx = pool_context(64ull << 20, 0);
    farpool_region_params_t rp = {.field_mask = FARPOOL_REGION_PARAM_FLAGS,
                                  .flags = FARPOOL_REGION_UNPUBLISHED};
    uint8_t sum[32] = {1, 2, 3};
    farpool_region_info_t info;
    farpool_region_t *r, *o;
    uint64_t end;
    pid_t pid;
    int wst;

    (void)state;
    assert_int_equal(farpool_region_create_ex(ctx, "half", 4u << 20, &rp, &r), FP_OK);
    assert_int_equal(farpool_region_open(ctx, "half", FARPOOL_REGION_READONLY, &o),
                     FP_ERR_NO_ENTRY);
    assert_int_equal(farpool_region_publish(r, sum), FP_OK);
    assert_int_equal(farpool_region_open(ctx, "half", FARPOOL_REGION_READONLY, &o), FP_OK);
    assert_int_equal(farpool_region_info(o, &info, sizeof(info)), FP_OK);
    assert_int_equal(info.has_checksum, 1);
    assert_memory_equal(info.checksum, sum, 32);
    farpool_region_close(o);
    farpool_region_close(r);
    assert_int_equal(farpool_region_delete(ctx, "half"), FP_OK);
    farpool_context_destroy(ctx);

    /* A creator that dies before publishing: its region goes once the lease runs out. */
    {
        const char *args[] = {P->url, NULL};

        pid = spawn_child("orphan", args, NULL);
    }
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    assert_true(region_listed("orphan"));
    end = now_ms() + WAIT_MS;
    while (region_listed("orphan") && now_ms() < end)
        pause_ms(100);
    assert_false(region_listed("orphan"));
}

static void test_meta_restart(void **state)
{
    farpool_context_t *w = pool_context(64ull << 20, 0), *other;
    char addr[FP_TEST_ADDR_MAX];
    farpool_region_t *r, *o;
    void *base;

    (void)state;
    assert_int_equal(farpool_region_create(w, "durable", 8u << 20, 0, &r), FP_OK);
    assert_int_equal(farpool_map(r, &base), FP_OK);
    fp_pattern_fill(base, 8u << 20, 16, 0, 1);
    assert_int_equal(farpool_sync(r), FP_OK);

    /* A handle opened before the metadata node goes reads without it: its
     * map came as it opened (every slab has a copy on a member left). */
    other = pool_context(64ull << 20, 0);
    assert_int_equal(farpool_region_open(other, "durable", FARPOOL_REGION_READONLY, &o), FP_OK);

    snprintf(addr, sizeof(addr), "%.*s", (int)sizeof(addr) - 1, P->meta.addr);
    fp_test_daemon_kill(&P->meta);
    fp_test_daemon_stop(&P->meta);
    {
        uint8_t *back = malloc(8u << 20);

        assert_non_null(back);
        assert_int_equal(farpool_region_pread(o, back, 8u << 20, 0), FP_OK);
        FP_PATTERN_ASSERT(back, 8u << 20, 16, 0, 1);
        free(back);
    }
    farpool_region_close(o);
    farpool_context_destroy(other);
    assert_int_equal(start_meta(addr), FP_OK);
    assert_true(wait_live(MEMBERS + 1));

    /* The region, its map and its writer's lease survived; the writer renews it. */
    pause_ms(LEASE_TTL_MS + 1000);
    other = pool_context(64ull << 20, 0);
    assert_int_equal(farpool_region_open(other, "durable", 0, &o), FP_ERR_IN_USE);
    assert_int_equal(farpool_region_open(other, "durable", FARPOOL_REGION_READONLY, &o), FP_OK);
    /* The metadata node is a member too, and its memory went with it: its copies
     * are lost, the others hold the bytes; repair waits for the writer to close. */
    assert_true(copies_between("durable", 1, 2));
    farpool_region_close(o);
    farpool_region_close(r);
    farpool_context_destroy(w);
    assert_true(wait_copies("durable", 2));
    check_every_copy("durable", 16);
    {
        void *a;

        assert_int_equal(farpool_region_open(other, "durable", FARPOOL_REGION_READONLY, &o), FP_OK);
        assert_int_equal(farpool_map(o, &a), FP_OK);
        FP_PATTERN_ASSERT(a, 8u << 20, 16, 0, 1);
        farpool_region_close(o);
    }
    assert_int_equal(farpool_region_delete(other, "durable"), FP_OK);
    farpool_context_destroy(other);
}

static void test_too_big_and_too_many_copies(void **state)
{
    farpool_context_t *ctx = pool_context(64ull << 20, 0);
    farpool_region_params_t rp = {.field_mask = FARPOOL_REGION_PARAM_REPLICAS, .replicas = 4};
    farpool_region_t *r;

    (void)state;
    /* 3 x 64 MiB in all. */
    assert_int_equal(farpool_region_create(ctx, "huge", 1ull << 30, 0, &r), FP_ERR_NO_SPACE);
    assert_int_equal(farpool_region_create_ex(ctx, "many", 4u << 20, &rp, &r),
                     FP_ERR_INVALID_PARAM);
    assert_false(region_listed("huge"));
    farpool_context_destroy(ctx);
}

static void test_bad_joins(void **state)
{
    char secret_path[FP_TEST_PATH_MAX];
    fp_test_daemon_t d;
    uint64_t end;

    (void)state;
    /* A slab size unlike the pool's. */
    {
        const char *args[] = {"--pool", P->url, "--slab-size", "4M", "--capacity", NODE_CAP, NULL};

        assert_int_equal(fp_test_daemon_start(args, &d), FP_OK);
        end = now_ms() + WAIT_MS;
        while (fp_test_daemon_alive(&d) && now_ms() < end)
            pause_ms(20);
        assert_false(fp_test_daemon_alive(&d));
        assert_true(fp_test_daemon_log_contains(&d, "slab size"));
        assert_int_equal(fp_test_daemon_stop(&d), 1);
    }
    {
        const char *args[] = {"--pool", P->url,        "--slab-size",  SLAB, "--capacity",
                              NODE_CAP, "--advertise", P->mem[0].addr, NULL};

        assert_int_equal(fp_test_daemon_start(args, &d), FP_OK);
        end = now_ms() + WAIT_MS;
        while (fp_test_daemon_alive(&d) && now_ms() < end)
            pause_ms(20);
        assert_false(fp_test_daemon_alive(&d));
        assert_true(fp_test_daemon_log_contains(&d, "another member"));
        assert_int_equal(fp_test_daemon_stop(&d), 1);
    }
    assert_int_equal(live_members(), MEMBERS + 1);
    /* A pool with a secret refuses a member with another. */
    {
        char dir[FP_TEST_PATH_MAX], other_path[FP_TEST_PATH_MAX], url[FP_TEST_ADDR_MAX + 16];
        fp_test_daemon_t m;

        snprintf(dir, sizeof(dir), "%s/secret-meta", fp_test_scratch_dir());
        assert_int_equal(fp_test_write_secret(NULL, "the-first-pool-secret", 21, secret_path),
                         FP_OK);
        {
            const char *args[] = {"--meta-dir", dir,      "--slab-size",   SLAB,
                                  "--capacity", NODE_CAP, "--secret-file", secret_path,
                                  NULL};

            assert_int_equal(fp_test_daemon_start(args, &m), FP_OK);
        }
        snprintf(url, sizeof(url), "farpool://%s", m.addr);
        snprintf(other_path, sizeof(other_path), "%s/other-secret", fp_test_scratch_dir());
        {
            FILE *f = fopen(other_path, "w");

            assert_non_null(f);
            fputs("the-other-pool-secret", f);
            fclose(f);
            chmod(other_path, 0600);
        }
        {
            const char *args[] = {"--pool",     url,      "--slab-size",   SLAB,
                                  "--capacity", NODE_CAP, "--secret-file", other_path,
                                  NULL};

            assert_int_equal(fp_test_daemon_start(args, &d), FP_OK);
            end = now_ms() + WAIT_MS;
            while (fp_test_daemon_alive(&d) && now_ms() < end)
                pause_ms(20);
            assert_false(fp_test_daemon_alive(&d));
            assert_true(fp_test_daemon_log_contains(&d, "wrong secret"));
            assert_int_equal(fp_test_daemon_stop(&d), 1);
        }
        assert_int_equal(fp_test_daemon_stop(&m), 0);
    }
}

static void test_drain(void **state)
{
    fp_pool_node_entry_t *nodes;
    farpool_node_t *m;
    uint64_t end;
    size_t n;
    uint64_t member = 0;
    bool gone = false;

    (void)state;
    make_region("drained", REGION, 2, 17);
    m = meta_connect();
    /* The member at that address now (an earlier test left gone ones there). */
    assert_int_equal(fp_pool_nodes(m, &nodes, &n), FP_OK);
    for (size_t i = 0; i < n; i++)
        if (strcmp(nodes[i].addr, P->mem[1].addr) == 0 && nodes[i].state == FP_POOL_NODE_LIVE)
            member = nodes[i].member;
    free(nodes);
    assert_int_not_equal(member, 0);
    assert_int_equal(fp_pool_drain(m, P->mem[1].addr), FP_OK);
    assert_int_equal(fp_pool_drain(m, "127.0.0.1:1"), FP_ERR_NO_ENTRY);
    end = now_ms() + WAIT_MS;
    while (!gone && now_ms() < end) {
        assert_int_equal(fp_pool_nodes(m, &nodes, &n), FP_OK);
        for (size_t i = 0; i < n; i++)
            if (nodes[i].member == member && nodes[i].state == FP_POOL_NODE_GONE)
                gone = true;
        free(nodes);
        if (!gone)
            pause_ms(100);
    }
    farpool_node_close(m);
    assert_true(gone);
    assert_true(copies_complete("drained", 2));
    check_every_copy("drained", 17);
    {
        fp_pool_region_desc_t desc;
        fp_region_map_t map;

        region_map("drained", &desc, &map);
        for (uint32_t i = 0; i < map.nnodes; i++)
            assert_string_not_equal(map.nodes[i], P->mem[1].addr);
        fp_region_map_cleanup(&map);
    }
    /* Still running, it does not come back until restarted. */
    assert_true(fp_test_daemon_log_wait(&P->mem[1], "drained this node", WAIT_MS));
    assert_false(member_live(P->mem[1].addr));
    /* The drained node is stopped and comes back as a new member. */
    fp_test_daemon_stop(&P->mem[1]);
    P->mem_up[1] = false;
    heal_pool();
    {
        farpool_context_t *ctx = pool_context(64ull << 20, 0);

        assert_int_equal(farpool_region_delete(ctx, "drained"), FP_OK);
        farpool_context_destroy(ctx);
    }
}

static void test_fixed_address(void **state)
{
    farpool_context_t *ctx = pool_context(64ull << 20, 0);
    farpool_region_params_t rp = {.field_mask = FARPOOL_REGION_PARAM_FLAGS,
                                  .flags = FARPOOL_REGION_FIXED};
    farpool_region_info_t info;
    farpool_region_t *r;
    void *addr;
    pid_t pid;
    int wst;

    (void)state;
#if defined(__SANITIZE_THREAD__)
    /* TSan keeps its shadow where the pool's fixed addresses start (64 TiB):
     * a mapping there aborts the program. Tested in the other builds. */
    farpool_context_destroy(ctx);
    skip();
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
    farpool_context_destroy(ctx);
    skip();
#endif
#endif
    assert_int_equal(farpool_region_create_ex(ctx, "fixed", 4u << 20, &rp, &r), FP_OK);
    assert_int_equal(farpool_region_info(r, &info, sizeof(info)), FP_OK);
    assert_int_not_equal(info.fixed_addr, 0);
    assert_int_equal(farpool_map(r, &addr), FP_OK);
    assert_ptr_equal(addr, (void *)(uintptr_t)info.fixed_addr);
    /* A pointer stored inside points inside, in every process. */
    ((uint8_t **)addr)[0] = (uint8_t *)addr + 4096;
    ((uint8_t *)addr)[4096] = 0x5a;
    assert_int_equal(farpool_sync(r), FP_OK);
    assert_int_equal(farpool_unmap(r), FP_OK);
    farpool_region_close(r);
    farpool_context_destroy(ctx);

    {
        char fixed[32];
        const char *args[] = {P->url, fixed, NULL};

        snprintf(fixed, sizeof(fixed), "%" PRIu64, info.fixed_addr);
        pid = spawn_child("fixed", args, NULL);
    }
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst));
    assert_int_equal(WEXITSTATUS(wst), 0);
    ctx = pool_context(64ull << 20, 0);
    assert_int_equal(farpool_region_delete(ctx, "fixed"), FP_OK);
    farpool_context_destroy(ctx);
}

/* ---- a member behind a link that goes down ---- */

/*
 * The addresses, per process (a subnet of 10.213.0.0/16 from the pid, so that
 * runs at once do not meet): this side of the veth, the namespace's side, and
 * an address on lo here where the other nodes listen, off the veth.
 */
static char ns_name[32], ns_veth[32], ns_root_ip[32], ns_node_ip[32], ns_pool_ip[32];

static int run(const char *cmd)
{
    int rc = system(cmd);

    if (rc != 0)
        fprintf(stderr, "test_pool: '%s' failed (%d)\n", cmd, rc);
    return rc;
}

static void netns_cleanup(void)
{
    char cmd[128];

    if (ns_veth[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "ip link del %s 2>/dev/null", ns_veth);
        (void)!system(cmd);
        snprintf(cmd, sizeof(cmd), "ip addr del %s/32 dev lo 2>/dev/null", ns_pool_ip);
        (void)!system(cmd);
        ns_veth[0] = '\0';
    }
    if (ns_name[0] != '\0') {
        snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", ns_name);
        (void)!system(cmd);
        ns_name[0] = '\0';
    }
}

/* What an earlier run killed before its cleanup (a CTest timeout) left: fptPID of dead PIDs. */
static void netns_sweep_stale(void)
{
    char cmd[160];
    DIR *d = opendir("/run/netns");
    struct dirent *de;

    if (d == NULL)
        return;
    while ((de = readdir(d)) != NULL) {
        int pid;
        char end;

        if (sscanf(de->d_name, "fpt%d%c", &pid, &end) != 1 || pid <= 0 || kill(pid, 0) == 0 ||
            errno != ESRCH)
            continue;
        snprintf(cmd, sizeof(cmd), "ip link del fpa%d 2>/dev/null; ip netns del fpt%d 2>/dev/null",
                 pid, pid);
        (void)!system(cmd);
    }
    closedir(d);
}

/*
 * A network namespace holding one member, joined to this one by a veth pair:
 * ns_root_ip here, ns_node_ip there. The metadata node and the other member
 * listen on ns_pool_ip, an address of this side's lo that the namespace
 * reaches through the veth, so setting the veth down cuts the one member off
 * and nothing else. With a secret, as any pool off 127.0.0.0/8.
 */
static int ns_group_setup(void **state)
{
    int pid = (int)getpid(), net = 1 + pid % 120;
    char cmd[1024];

    (void)state;
    if (geteuid() != 0 || system("ip netns list >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_pool: network namespaces need root and iproute2; skipped\n");
        return 0;
    }
    netns_sweep_stale();
    snprintf(ns_name, sizeof(ns_name), "fpt%d", pid);
    snprintf(ns_veth, sizeof(ns_veth), "fpa%d", pid);
    snprintf(ns_root_ip, sizeof(ns_root_ip), "10.213.%d.1", 2 * net);
    snprintf(ns_node_ip, sizeof(ns_node_ip), "10.213.%d.2", 2 * net);
    snprintf(ns_pool_ip, sizeof(ns_pool_ip), "10.213.%d.1", 2 * net + 1);
    atexit(netns_cleanup);
    snprintf(cmd, sizeof(cmd),
             "ip netns add %s && ip link add %s type veth peer name fpb%d netns %s && "
             "ip addr add %s/24 dev %s && ip link set %s up && "
             "ip -n %s addr add %s/24 dev fpb%d && ip -n %s link set fpb%d up && "
             "ip -n %s link set lo up && ip addr add %s/32 dev lo && "
             "ip -n %s route add %s/32 via %s",
             ns_name, ns_veth, pid, ns_name, ns_root_ip, ns_veth, ns_veth, ns_name, ns_node_ip, pid,
             ns_name, pid, ns_name, ns_pool_ip, ns_name, ns_pool_ip, ns_root_ip);
    if (run(cmd) != 0)
        return -1;
    P = &ns_pool;
    snprintf(P->dir, sizeof(P->dir), "%s/ns-meta", fp_test_scratch_dir());
    if (fp_test_write_secret(NULL, "a-secret-for-the-namespaced-pool", 32, P->secret) != FP_OK)
        return -1;
    snprintf(P->listen, sizeof(P->listen), "%s:0", ns_pool_ip);
    snprintf(P->mem_listen[1], sizeof(P->mem_listen[1]), "%s:0", ns_node_ip);
    snprintf(P->mem_netns[1], sizeof(P->mem_netns[1]), "/run/netns/%s", ns_name);
    return pool_start();
}

static int ns_group_teardown(void **state)
{
    int rc = 0;

    (void)state;
    if (P == &ns_pool)
        rc = pool_stop();
    netns_cleanup();
    P = &loop_pool;
    return rc;
}

static void cut_link(void *arg)
{
    char cmd[64];

    (void)arg;
    snprintf(cmd, sizeof(cmd), "ip link set %s down", ns_veth);
    assert_int_equal(run(cmd), 0);
}

static void test_link_cut_while_reading(void **state)
{
    (void)state;
    if (P != &ns_pool)
        skip();
    make_region("cut", REGION, 2, 18);
    /* The member behind the veth goes silent: reads move to the other copies
     * after the context's timeout (1 s), and it is declared dead. */
    read_through("cut", 18, cut_link, NULL, 3000);
    assert_true(wait_not_live(P->mem[1].addr));
    assert_true(wait_live(MEMBERS));
    assert_true(wait_copies("cut", 2));
    check_every_copy("cut", 18);
}

/* ---- the pool with its metadata in etcd ---- */

static fp_test_etcd_t etcd_srv;

/* The writers keys (P/writers/...) in the etcd pool: how many, and the first one's lease. */
static size_t writer_keys(int64_t *lease_p)
{
    char prefix[FP_TEST_PATH_MAX + 16];
    fp_etcd_kv_t *kvs = NULL;
    fp_etcd_t *client = NULL;
    size_t n = 0;

    assert_int_equal(fp_etcd_open(P->dir, 0, NULL, &client), FP_OK);
    snprintf(prefix, sizeof(prefix), "%s/writers/", fp_etcd_prefix(client));
    assert_int_equal(fp_etcd_range_prefix(client, prefix, false, &kvs, &n), FP_OK);
    if (lease_p != NULL)
        *lease_p = n > 0 ? kvs[0].lease : 0;
    fp_etcd_kvs_free(kvs, n);
    fp_etcd_close(client);
    return n;
}

/* Open "etcdw" for writing with @ctx until it is not FP_ERR_IN_USE, @ms at most. */
static fp_status_t open_until_free(farpool_context_t *ctx, int ms, farpool_region_t **r_p)
{
    uint64_t end = now_ms() + (uint64_t)ms;

    for (;;) {
        fp_status_t status = farpool_region_open(ctx, "etcdw", 0, r_p);

        if (status != FP_ERR_IN_USE || now_ms() >= end)
            return status;
        pause_ms(250); /* each refusal is logged: look a few times a second */
    }
}

/*
 * Writer leases in an etcd pool are etcd leases (P/writers/<region>): a
 * second writer refused while it is held, renewed past its TTL; kept across
 * a restart of the metadata node; a close frees it at once; a writer killed
 * without closing loses it by etcd's TTL, and another writer gets it then.
 */
static void test_etcd_writer_leases(void **state)
{
    farpool_context_t *a = pool_context(64ull << 20, 0), *b = pool_context(64ull << 20, 0);
    char addr[FP_TEST_ADDR_MAX];
    farpool_region_t *ra, *rb;
    int64_t lease = 0, second = 0;
    uint64_t killed;
    pid_t pid;
    int wst;

    (void)state;
    if (P != &etcd_pool)
        skip(); /* no etcd here (said by the group's setup) */
    assert_int_equal(writer_keys(NULL), 0);
    assert_int_equal(farpool_region_create(a, "etcdw", 4u << 20, 0, &ra), FP_OK);
    assert_int_equal(writer_keys(&lease), 1);
    assert_true(lease != 0);
    assert_int_equal(farpool_region_open(b, "etcdw", 0, &rb), FP_ERR_IN_USE);
    /* Renewed (keepalives): still held, under the same lease, past its TTL. */
    pause_ms(LEASE_TTL_MS + 1000);
    assert_int_equal(farpool_region_open(b, "etcdw", 0, &rb), FP_ERR_IN_USE);
    assert_int_equal(writer_keys(&second), 1);
    assert_int_equal(second, lease);

    /* The metadata node restarted: the new one finds the lease in etcd. */
    snprintf(addr, sizeof(addr), "%.*s", (int)sizeof(addr) - 1, P->meta.addr);
    assert_int_equal(fp_test_daemon_stop(&P->meta), 0);
    assert_int_equal(start_meta(addr), FP_OK);
    assert_true(wait_live(MEMBERS + 1));
    assert_int_equal(farpool_region_open(b, "etcdw", 0, &rb), FP_ERR_IN_USE);
    pause_ms(LEASE_TTL_MS + 1000); /* and the writer renews it with the new service */
    assert_int_equal(farpool_region_open(b, "etcdw", 0, &rb), FP_ERR_IN_USE);
    assert_int_equal(writer_keys(&second), 1);
    assert_int_equal(second, lease);

    /* Closed: released (revoked) at once. */
    farpool_region_close(ra);
    assert_int_equal(writer_keys(NULL), 0);
    assert_int_equal(farpool_region_open(b, "etcdw", 0, &rb), FP_OK);
    farpool_region_close(rb);
    assert_int_equal(farpool_region_delete(b, "etcdw"), FP_OK);

    /* A writer killed without closing: its lease runs out in etcd, not before. */
    {
        const char *args[] = {P->url, NULL};

        pid = spawn_child("writer", args, NULL);
    }
    assert_int_equal(waitpid(pid, &wst, 0), pid);
    assert_true(WIFEXITED(wst) && WEXITSTATUS(wst) == 0);
    killed = now_ms();
    assert_int_equal(writer_keys(NULL), 1);
    assert_int_equal(open_until_free(b, WAIT_MS, &rb), FP_OK);
    print_message("the killed writer's lease was free %.1f s later (TTL %.1f s)\n",
                  (double)(now_ms() - killed) / 1e3, LEASE_TTL_MS / 1000.0);
    assert_true(now_ms() - killed >= LEASE_TTL_MS - 1000);
    assert_int_equal(writer_keys(NULL), 1);
    farpool_region_close(rb);
    assert_int_equal(farpool_region_delete(b, "etcdw"), FP_OK);
    assert_int_equal(writer_keys(NULL), 0);
    farpool_context_destroy(a);
    farpool_context_destroy(b);
}

static int etcd_group_setup(void **state)
{
    (void)state;
    if (!fp_test_etcd_available()) {
        fprintf(stderr, "test_pool: no etcd at %s; the etcd group is skipped\n", FP_TEST_ETCD_BIN);
        return 0;
    }
    if (fp_test_etcd_start("pool", &etcd_srv) != FP_OK)
        return -1;
    P = &etcd_pool;
    snprintf(P->dir, sizeof(P->dir), "etcd://%s/farpool-test-pool", etcd_srv.endpoint);
    return pool_start();
}

static int etcd_group_teardown(void **state)
{
    int rc = 0;

    (void)state;
    if (P == &etcd_pool)
        rc = pool_stop();
    fp_test_etcd_stop(&etcd_srv);
    P = &loop_pool;
    return rc;
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_and_placement),
        cmocka_unit_test(test_many_readers),
        cmocka_unit_test(test_pread_pwrite),
        cmocka_unit_test(test_copy_missing_a_write),
        cmocka_unit_test(test_two_writers),
        cmocka_unit_test(test_unpublished),
        cmocka_unit_test(test_too_big_and_too_many_copies),
        cmocka_unit_test(test_fixed_address),
        cmocka_unit_test(test_kill_member_while_reading),
        cmocka_unit_test(test_stopped_member_while_reading),
        cmocka_unit_test(test_member_restarted_empty),
        cmocka_unit_test(test_every_copy_gone),
        cmocka_unit_test(test_meta_restart),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_bad_joins),
    };

    const struct CMUnitTest etcd_tests[] = {
        cmocka_unit_test(test_etcd_writer_leases),
    };
    const struct CMUnitTest ns_tests[] = {
        cmocka_unit_test(test_link_cut_while_reading),
    };
    int failed;

    self_path = "/proc/self/exe";
    if (argc > 1 && strcmp(argv[1], "--child") == 0)
        return child_main(argc, argv);
    failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    failed +=
        cmocka_run_group_tests_name("etcd", etcd_tests, etcd_group_setup, etcd_group_teardown);

    return failed +
           cmocka_run_group_tests_name("netns", ns_tests, ns_group_setup, ns_group_teardown);
}
