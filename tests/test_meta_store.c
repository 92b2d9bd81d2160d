/* SPDX-License-Identifier: MIT */
/*
 * Tests of the pool's metadata store: the SQLite backend
 * (src/meta/meta_sqlite.c), on a fresh directory under $TMPDIR per test, and
 * the etcd backend (src/meta/meta_etcd.c), on a real etcd started for the
 * test program (tests/common/etcd_server.h), under a fresh prefix per test.
 * The tests of the ops' semantics run against both backends (two cmocka
 * groups, "sqlite" and "etcd"); those of the file run on SQLite only, and
 * those of the service key, fencing and endpoints on etcd only.
 *
 * Covered: every op round-trips every field (64-bit values past 2^63, keys,
 * checksums, leases, a region without checksum); the data survives close and
 * reopen, and a process killed without closing (the restart case); ids are
 * never given again after a delete, across a reopen too; a duplicate region
 * name is FP_ERR_EXISTS, as is a rename onto a taken name, and a failed
 * region_add (a taken name, a replica twice) leaves nothing; replica_put is
 * an upsert and a replica of a missing region is refused; region_delete takes
 * its replicas; replica_list is ordered by (region, index, node); an unset
 * counter reads 0; missing ids are FP_ERR_NO_ENTRY; DIR is made 0700 and
 * pool.db 0600 whatever the umask, and a pool.db open to others is narrowed;
 * a garbage, a damaged, a foreign and a newer pool.db, an unwritable DIR and
 * a DIR that is a file are refused at open with a log line that says so; a
 * second open of the same DIR is FP_ERR_IN_USE.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/etcd.h"
#include "common/etcd_server.h"
#include "common/log.h"
#include "common/time.h"
#include "meta/meta.h"

#define PATH_LEN     512   /* of the store's DIR; its base and files get less and more */
#define NOBODY       65534 /* uid and gid for the unprivileged open, when run as root */
#define LOG_KEEP_MAX 4096
#define ETCD_TTL_MS  2000 /* the service lease of the etcd tests: etcd's least, by default */
#define ETCD_ADDR    "127.0.0.1:7000" /* the address the etcd stores register */

typedef enum backend { BACKEND_SQLITE, BACKEND_ETCD } backend_t;

static fp_test_etcd_t etcd;    /* the etcd group's server */
static unsigned etcd_prefixes; /* prefixes given so far: one per test */

typedef struct env {
    backend_t backend;
    char url[256];            /* etcd: etcd://ENDPOINT/PREFIX, a fresh prefix */
    char base[PATH_LEN - 64]; /* mkdtemp'd, removed at teardown */
    char dir[PATH_LEN];       /* base/meta: the store's DIR, missing at first */
    char db[PATH_LEN + 16];   /* dir/pool.db */
    fp_log_t log;
    pthread_mutex_t said_lock; /* an etcd store's keeper thread may log too */
    char said[LOG_KEEP_MAX];   /* the log lines so far, for checks on error text */
} env_t;

/* ---- helpers ---- */

static void log_keep(void *arg, farpool_log_level_t level, const char *line)
{
    env_t *env = arg;
    size_t used;

    (void)level;
    pthread_mutex_lock(&env->said_lock);
    used = strlen(env->said);
    snprintf(env->said + used, sizeof(env->said) - used, "%s\n", line);
    pthread_mutex_unlock(&env->said_lock);
}

static void said_clear(env_t *env)
{
    pthread_mutex_lock(&env->said_lock);
    env->said[0] = '\0';
    pthread_mutex_unlock(&env->said_lock);
}

/* The log has a line containing @text. */
static void assert_said(env_t *env, const char *text)
{
    bool found;

    pthread_mutex_lock(&env->said_lock);
    found = strstr(env->said, text) != NULL;
    pthread_mutex_unlock(&env->said_lock);
    if (!found)
        fail_msg("expected a log line with \"%s\"; the log has:\n%s", text, env->said);
}

static int tree_remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP)
        chmod(path, 0700); /* a test may leave it read-only */
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static int env_setup_backend(void **state, backend_t backend)
{
    const char *tmp = getenv("TMPDIR");
    env_t *env = calloc(1, sizeof(*env));

    if (env == NULL)
        return -1;
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    snprintf(env->base, sizeof(env->base), "%s/farpool-meta-XXXXXX", tmp);
    if (mkdtemp(env->base) == NULL) {
        fprintf(stderr, "mkdtemp %s: %s\n", env->base, strerror(errno));
        free(env);
        return -1;
    }
    snprintf(env->dir, sizeof(env->dir), "%s/meta", env->base);
    snprintf(env->db, sizeof(env->db), "%s/pool.db", env->dir);
    env->backend = backend;
    if (backend == BACKEND_ETCD) {
        char prefix[64];

        snprintf(prefix, sizeof(prefix), "farpool-test-%ld-%u", (long)getpid(), ++etcd_prefixes);
        fp_test_etcd_url(&etcd, prefix, env->url, sizeof(env->url));
    }
    pthread_mutex_init(&env->said_lock, NULL);
    fp_log_init(&env->log, "test", FP_LOG_DEBUG, log_keep, env);
    *state = env;
    return 0;
}

static int env_setup(void **state)
{
    return env_setup_backend(state, BACKEND_SQLITE);
}

static int env_setup_etcd(void **state)
{
    return env_setup_backend(state, BACKEND_ETCD);
}

static int env_teardown(void **state)
{
    env_t *env = *state;

    /* A test may have left these read-only; the walk removes children first. */
    chmod(env->base, 0700);
    chmod(env->dir, 0700);
    nftw(env->base, tree_remove_one, 16, FTW_DEPTH | FTW_PHYS);
    pthread_mutex_destroy(&env->said_lock);
    free(env);
    return 0;
}

/* Open @env's store, of its backend, with @log; no asserts (a forked child calls it). */
static fp_status_t store_open_status(env_t *env, const fp_log_t *log, fp_meta_store_t **store_p)
{
    if (env->backend == BACKEND_ETCD)
        return fp_meta_etcd_open(env->url, ETCD_ADDR, ETCD_TTL_MS, log, store_p);
    return fp_meta_sqlite_open(env->dir, log, store_p);
}

static fp_meta_store_t *store_open(env_t *env)
{
    fp_meta_store_t *store = NULL;
    fp_status_t status = store_open_status(env, &env->log, &store);

    if (status != FP_OK)
        fail_msg("open %s: %s; log:\n%s", env->backend == BACKEND_ETCD ? env->url : env->dir,
                 fp_status_string(status), env->said);
    assert_non_null(store);
    assert_string_equal(store->ops->name, env->backend == BACKEND_ETCD ? "etcd" : "sqlite");
    return store;
}

/*
 * Open @env's store once it is free: an etcd store whose holder was killed is
 * FP_ERR_IN_USE until that holder's lease expires (its TTL, and etcd's
 * rounding), so it is retried until then.
 */
static fp_meta_store_t *store_open_free(env_t *env)
{
    uint64_t deadline = fp_time_ns() + (ETCD_TTL_MS + 8000) * 1000000ull;
    fp_meta_store_t *store = NULL;
    fp_status_t status;

    while ((status = store_open_status(env, &env->log, &store)) == FP_ERR_IN_USE &&
           env->backend == BACKEND_ETCD && fp_time_ns() < deadline)
        usleep(50 * 1000);
    if (status != FP_OK)
        fail_msg("open %s: %s; log:\n%s", env->backend == BACKEND_ETCD ? env->url : env->dir,
                 fp_status_string(status), env->said);
    return store;
}

static void store_close(fp_meta_store_t *store)
{
    store->ops->close(store);
}

static fp_meta_node_t node_make(uint64_t seed)
{
    fp_meta_node_t n;

    memset(&n, 0, sizeof(n));
    n.node_id = 0xfeedface00000000ull | seed; /* past 2^63 */
    snprintf(n.addr, sizeof(n.addr), "10.0.0.%u:%u", (unsigned)(seed % 250), 7000 + (unsigned)seed);
    n.capacity = (64ull << 30) + seed;
    n.used = (1ull << 30) + seed;
    n.slab_size = 1ull << 30;
    n.state = (uint32_t)(seed % 4);
    n.joined_ms = 1700000000000ull + seed;
    n.seen_ms = UINT64_MAX - seed;
    return n;
}

static fp_meta_region_t region_make(const char *name, uint64_t seed, bool checksum)
{
    fp_meta_region_t r;

    memset(&r, 0, sizeof(r));
    snprintf(r.name, sizeof(r.name), "%s", name);
    r.size = (3ull << 30) + seed;
    r.granule = 65536;
    r.flags = 1;
    r.replicas = 2;
    r.state = FP_META_REGION_READY;
    r.slab_size = 1ull << 30;
    r.nslabs = 3;
    for (size_t i = 0; i < sizeof(r.key); i++)
        r.key[i] = (uint8_t)(seed + i * 7);
    r.key[3] = 0; /* a NUL inside the blob */
    r.fixed_addr = 0x7f0000000000ull + (seed << 30);
    r.has_checksum = checksum;
    if (checksum) {
        for (size_t i = 0; i < sizeof(r.checksum); i++)
            r.checksum[i] = (uint8_t)(0xa0 + seed + i);
    }
    r.created_ms = 1700000000000ull + seed;
    r.lease_id = 0x8000000000000000ull | seed;
    for (size_t i = 0; i < sizeof(r.lease_holder); i++)
        r.lease_holder[i] = (uint8_t)(0xff - i - seed);
    r.lease_expires_ms = 1700000060000ull + seed;
    return r;
}

static fp_meta_replica_t replica_make(uint64_t region, uint32_t index, uint64_t node,
                                      uint32_t state, uint64_t slab)
{
    fp_meta_replica_t rep = {
        .region = region, .index = index, .state = state, .node = node, .slab = slab};
    return rep;
}

static void assert_node_equal(const fp_meta_node_t *a, const fp_meta_node_t *b)
{
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->node_id, b->node_id);
    assert_string_equal(a->addr, b->addr);
    assert_int_equal(a->capacity, b->capacity);
    assert_int_equal(a->used, b->used);
    assert_int_equal(a->slab_size, b->slab_size);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->joined_ms, b->joined_ms);
    assert_int_equal(a->seen_ms, b->seen_ms);
}

static void assert_region_equal(const fp_meta_region_t *a, const fp_meta_region_t *b)
{
    assert_int_equal(a->id, b->id);
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->size, b->size);
    assert_int_equal(a->granule, b->granule);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->replicas, b->replicas);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->slab_size, b->slab_size);
    assert_int_equal(a->nslabs, b->nslabs);
    assert_memory_equal(a->key, b->key, sizeof(a->key));
    assert_int_equal(a->fixed_addr, b->fixed_addr);
    assert_int_equal(a->has_checksum, b->has_checksum);
    if (a->has_checksum)
        assert_memory_equal(a->checksum, b->checksum, sizeof(a->checksum));
    assert_int_equal(a->created_ms, b->created_ms);
    assert_int_equal(a->lease_id, b->lease_id);
    assert_memory_equal(a->lease_holder, b->lease_holder, sizeof(a->lease_holder));
    assert_int_equal(a->lease_expires_ms, b->lease_expires_ms);
}

static void assert_replica_equal(const fp_meta_replica_t *a, const fp_meta_replica_t *b)
{
    assert_int_equal(a->region, b->region);
    assert_int_equal(a->index, b->index);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->node, b->node);
    assert_int_equal(a->slab, b->slab);
}

static size_t node_count(fp_meta_store_t *store)
{
    fp_meta_node_t *nodes = NULL;
    size_t n = 0;

    assert_int_equal(store->ops->node_list(store, &nodes, &n), FP_OK);
    free(nodes);
    return n;
}

static size_t region_count(fp_meta_store_t *store)
{
    fp_meta_region_t *regions = NULL;
    size_t n = 0;

    assert_int_equal(store->ops->region_list(store, &regions, &n), FP_OK);
    free(regions);
    return n;
}

static size_t replica_count(fp_meta_store_t *store)
{
    fp_meta_replica_t *reps = NULL;
    size_t n = 0;

    assert_int_equal(store->ops->replica_list(store, &reps, &n), FP_OK);
    free(reps);
    return n;
}

/* Open @env's store expecting @want; returns nothing opened. */
static void assert_open_fails(env_t *env, fp_status_t want)
{
    fp_meta_store_t *store = NULL;
    fp_status_t status = fp_meta_sqlite_open(env->dir, &env->log, &store);

    if (status == FP_OK)
        store_close(store);
    assert_int_equal(status, want);
    assert_null(store);
}

static void file_write(const char *path, const void *data, size_t len, off_t at, int flags)
{
    int fd = open(path, O_WRONLY | O_CREAT | flags, 0600);

    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, data, len, at), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

/* ---- tests ---- */

static void test_open_makes_dir_and_file_private(void **state)
{
    env_t *env = *state;
    mode_t old = umask(0); /* the modes must not depend on the umask */
    fp_meta_store_t *store = store_open(env);
    struct stat st;
    char wal[PATH_LEN + 32];

    umask(old);
    assert_int_equal(stat(env->dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    assert_int_equal(stat(env->db, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(store->ops->value_put(store, "k", 1), FP_OK);
    snprintf(wal, sizeof(wal), "%s-wal", env->db);
    if (stat(wal, &st) == 0)
        assert_int_equal(st.st_mode & 07777, 0600);
    store_close(store);

    /* A pool.db others may read is narrowed, and said so. */
    assert_int_equal(chmod(env->db, 0644), 0);
    said_clear(env);
    store = store_open(env);
    assert_said(env, "narrowing it to 0600");
    assert_int_equal(stat(env->db, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    store_close(store);
}

static void test_node_round_trip(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_node_t a = node_make(1), b = node_make(2), *nodes = NULL;
    size_t n = 99;

    assert_int_equal(store->ops->node_list(store, &nodes, &n), FP_OK);
    assert_int_equal(n, 0);
    free(nodes);

    assert_int_equal(store->ops->node_put(store, &a), FP_OK);
    assert_int_equal(store->ops->node_put(store, &b), FP_OK);
    assert_int_equal(a.id, 1);
    assert_int_equal(b.id, 2);
    assert_int_equal(store->ops->node_list(store, &nodes, &n), FP_OK);
    assert_int_equal(n, 2);
    assert_node_equal(&nodes[0], &a);
    assert_node_equal(&nodes[1], &b);
    free(nodes);

    /* Update by id: every field but the id changes. */
    a = node_make(40);
    a.id = 1;
    a.capacity = UINT64_MAX;
    a.state = FP_META_NODE_DRAINING;
    snprintf(a.addr, sizeof(a.addr), "%s", "[fd00::1]:7777");
    assert_int_equal(store->ops->node_put(store, &a), FP_OK);
    assert_int_equal(a.id, 1);
    assert_int_equal(store->ops->node_list(store, &nodes, &n), FP_OK);
    assert_int_equal(n, 2);
    assert_node_equal(&nodes[0], &a);
    assert_node_equal(&nodes[1], &b);
    free(nodes);

    /* A missing id is not inserted. */
    b.id = 77;
    assert_int_equal(store->ops->node_put(store, &b), FP_ERR_NO_ENTRY);
    assert_int_equal(node_count(store), 2);
    store_close(store);
}

static void test_region_round_trip(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_region_t a = region_make("alpha", 1, true), b = region_make("beta", 2, false);
    fp_meta_region_t *regions = NULL;
    size_t n = 0;

    assert_int_equal(store->ops->region_add(store, &a, NULL, 0), FP_OK);
    assert_int_equal(store->ops->region_add(store, &b, NULL, 0), FP_OK);
    assert_int_equal(a.id, 1);
    assert_int_equal(b.id, 2);
    assert_int_equal(store->ops->region_list(store, &regions, &n), FP_OK);
    assert_int_equal(n, 2);
    assert_region_equal(&regions[0], &a);
    assert_region_equal(&regions[1], &b);
    assert_false(regions[1].has_checksum);
    free(regions);

    /* A put: pending under a temporary name, then renamed, checksummed, lease dropped. */
    b.state = FP_META_REGION_PENDING;
    snprintf(b.name, sizeof(b.name), "%s", ".pending.beta");
    assert_int_equal(store->ops->region_update(store, &b), FP_OK);
    b.state = FP_META_REGION_READY;
    snprintf(b.name, sizeof(b.name), "%s", "beta.v2");
    b.has_checksum = true;
    memset(b.checksum, 0x5c, sizeof(b.checksum));
    b.lease_id = 0;
    memset(b.lease_holder, 0, sizeof(b.lease_holder));
    b.lease_expires_ms = 0;
    b.size = UINT64_MAX;
    b.nslabs = UINT32_MAX;
    assert_int_equal(store->ops->region_update(store, &b), FP_OK);
    /* and a checksum can be dropped again */
    a.has_checksum = false;
    assert_int_equal(store->ops->region_update(store, &a), FP_OK);
    assert_int_equal(store->ops->region_list(store, &regions, &n), FP_OK);
    assert_int_equal(n, 2);
    assert_region_equal(&regions[0], &a);
    assert_region_equal(&regions[1], &b);
    free(regions);

    /* A rename onto a taken name, and a missing id. */
    snprintf(b.name, sizeof(b.name), "%s", "alpha");
    assert_int_equal(store->ops->region_update(store, &b), FP_ERR_EXISTS);
    snprintf(b.name, sizeof(b.name), "%s", "gamma");
    b.id = 99;
    assert_int_equal(store->ops->region_update(store, &b), FP_ERR_NO_ENTRY);
    assert_int_equal(store->ops->region_list(store, &regions, &n), FP_OK);
    assert_string_equal(regions[1].name, "beta.v2");
    free(regions);
    store_close(store);
}

static void test_region_add_with_replicas(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_region_t r = region_make("r", 3, true);
    fp_meta_replica_t reps[6], *list = NULL;
    size_t n = 0;

    for (uint32_t i = 0; i < 6; i++)
        reps[i] = replica_make(12345 /* overwritten */, i / 2, 1 + i % 2, i % 2,
                               0xabcd000000000000ull + i);
    assert_int_equal(store->ops->region_add(store, &r, reps, 6), FP_OK);
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(reps[i].region, r.id);
    assert_int_equal(store->ops->replica_list(store, &list, &n), FP_OK);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < 6; i++)
        assert_replica_equal(&list[i], &reps[i]);
    free(list);
    store_close(store);
}

/* Unpublished regions (a put in progress) may share a name; publishing takes it. */
static void test_unpublished_share_names(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_region_t ready = region_make("name", 1, true), p1 = region_make("name", 2, false);
    fp_meta_region_t p2 = region_make("name", 3, false);

    p1.state = p2.state = FP_META_REGION_PENDING;
    assert_int_equal(store->ops->region_add(store, &ready, NULL, 0), FP_OK);
    assert_int_equal(store->ops->region_add(store, &p1, NULL, 0), FP_OK);
    assert_int_equal(store->ops->region_add(store, &p2, NULL, 0), FP_OK);
    assert_int_equal(region_count(store), 3);
    /* Published while the name is taken: refused; once it is free, the first wins. */
    p1.state = FP_META_REGION_READY;
    assert_int_equal(store->ops->region_update(store, &p1), FP_ERR_EXISTS);
    assert_int_equal(store->ops->region_delete(store, ready.id), FP_OK);
    assert_int_equal(store->ops->region_update(store, &p1), FP_OK);
    p2.state = FP_META_REGION_READY;
    assert_int_equal(store->ops->region_update(store, &p2), FP_ERR_EXISTS);
    store_close(store);
}

static void test_duplicate_name_leaves_nothing(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_region_t a = region_make("same", 1, true), b = region_make("same", 2, false);
    fp_meta_region_t c = region_make("other", 3, false), *regions = NULL;
    fp_meta_replica_t ra[2] = {replica_make(0, 0, 1, 0, 10), replica_make(0, 0, 2, 0, 11)};
    fp_meta_replica_t rb[2] = {replica_make(0, 0, 3, 0, 20), replica_make(0, 1, 3, 0, 21)};
    fp_meta_replica_t rc[2] = {replica_make(0, 0, 1, 0, 30), replica_make(0, 0, 1, 1, 31)};
    size_t n = 0;

    assert_int_equal(store->ops->region_add(store, &a, ra, 2), FP_OK);
    said_clear(env);
    assert_int_equal(store->ops->region_add(store, &b, rb, 2), FP_ERR_EXISTS);
    assert_null(strstr(env->said, "error")); /* a name clash is no failure of the store */
    assert_int_equal(b.id, 0);               /* output written only on success */
    assert_int_equal(rb[0].region, 0);
    assert_int_equal(region_count(store), 1);
    assert_int_equal(replica_count(store), 2);

    /* The same replica twice: the region is not left behind either. */
    assert_int_equal(store->ops->region_add(store, &c, rc, 2), FP_ERR_INVALID_PARAM);
    assert_int_equal(c.id, 0);
    assert_int_equal(region_count(store), 1);
    assert_int_equal(replica_count(store), 2);

    /* Both names and the store are fine afterwards. */
    rc[1].node = 2;
    assert_int_equal(store->ops->region_add(store, &c, rc, 2), FP_OK);
    assert_int_equal(store->ops->region_list(store, &regions, &n), FP_OK);
    assert_int_equal(n, 2);
    assert_region_equal(&regions[0], &a);
    assert_region_equal(&regions[1], &c);
    free(regions);
    assert_int_equal(replica_count(store), 4);

    /* An empty name or NULL replicas are refused before anything is written. */
    b.name[0] = '\0';
    assert_int_equal(store->ops->region_add(store, &b, NULL, 0), FP_ERR_INVALID_PARAM);
    snprintf(b.name, sizeof(b.name), "%s", "fresh");
    assert_int_equal(store->ops->region_add(store, &b, NULL, 1), FP_ERR_INVALID_PARAM);
    assert_int_equal(region_count(store), 2);
    store_close(store);
}

static void test_ids_never_reused(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_region_t a = region_make("a", 1, false), b = region_make("b", 2, false);
    fp_meta_region_t c = region_make("a", 3, false);

    assert_int_equal(store->ops->region_add(store, &a, NULL, 0), FP_OK);
    assert_int_equal(store->ops->region_add(store, &b, NULL, 0), FP_OK);
    assert_int_equal(b.id, 2);
    assert_int_equal(store->ops->region_delete(store, b.id), FP_OK);
    assert_int_equal(store->ops->region_delete(store, b.id), FP_ERR_NO_ENTRY);
    assert_int_equal(store->ops->region_delete(store, a.id), FP_OK);
    assert_int_equal(region_count(store), 0);
    /* the highest id is gone, and a name is free again: still a new id */
    assert_int_equal(store->ops->region_add(store, &c, NULL, 0), FP_OK);
    assert_int_equal(c.id, 3);
    assert_int_equal(store->ops->region_delete(store, c.id), FP_OK);
    store_close(store);

    store = store_open(env);
    c.id = 0;
    assert_int_equal(store->ops->region_add(store, &c, NULL, 0), FP_OK);
    assert_int_equal(c.id, 4);
    store_close(store);
}

static void test_replica_put_delete_order(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_region_t r1 = region_make("r1", 1, false), r2 = region_make("r2", 2, false);
    fp_meta_replica_t want[5], *list = NULL, rep;
    size_t n = 0;

    assert_int_equal(store->ops->region_add(store, &r1, NULL, 0), FP_OK);
    assert_int_equal(store->ops->region_add(store, &r2, NULL, 0), FP_OK);
    /* In sorted order... */
    want[0] = replica_make(r1.id, 0, 2, FP_META_REPLICA_OK, 100);
    want[1] = replica_make(r1.id, 0, 5, FP_META_REPLICA_OK, 101);
    want[2] = replica_make(r1.id, 7, 1, FP_META_REPLICA_COPYING, 102);
    want[3] = replica_make(r2.id, 0, 1, FP_META_REPLICA_OK, 103);
    want[4] = replica_make(r2.id, 3, 9, FP_META_REPLICA_OK, UINT64_MAX);
    /* ...put in another. */
    const int order[5] = {4, 2, 0, 3, 1};
    for (int i = 0; i < 5; i++)
        assert_int_equal(store->ops->replica_put(store, &want[order[i]]), FP_OK);
    assert_int_equal(store->ops->replica_list(store, &list, &n), FP_OK);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_replica_equal(&list[i], &want[i]);
    free(list);

    /* An upsert: a repair's copy becomes OK on a new slab; no second row. */
    want[2].state = FP_META_REPLICA_OK;
    want[2].slab = 555;
    assert_int_equal(store->ops->replica_put(store, &want[2]), FP_OK);
    assert_int_equal(store->ops->replica_list(store, &list, &n), FP_OK);
    assert_int_equal(n, 5);
    assert_replica_equal(&list[2], &want[2]);
    free(list);

    /* A replica of no region is refused. */
    rep = replica_make(999, 0, 1, 0, 1);
    assert_int_equal(store->ops->replica_put(store, &rep), FP_ERR_NO_ENTRY);

    assert_int_equal(store->ops->replica_delete(store, r1.id, 0, 5), FP_OK);
    assert_int_equal(store->ops->replica_delete(store, r1.id, 0, 5), FP_ERR_NO_ENTRY);
    assert_int_equal(store->ops->replica_list(store, &list, &n), FP_OK);
    assert_int_equal(n, 4);
    assert_replica_equal(&list[0], &want[0]);
    assert_replica_equal(&list[1], &want[2]);
    free(list);
    store_close(store);
}

static void test_region_delete_takes_replicas(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_region_t r1 = region_make("r1", 1, false), r2 = region_make("r2", 2, false);
    fp_meta_replica_t a[2] = {replica_make(0, 0, 1, 0, 1), replica_make(0, 1, 1, 0, 2)};
    fp_meta_replica_t b[1] = {replica_make(0, 0, 2, 0, 3)};
    fp_meta_replica_t *list = NULL;
    fp_meta_region_t *regions = NULL;
    size_t n = 0;

    assert_int_equal(store->ops->region_add(store, &r1, a, 2), FP_OK);
    assert_int_equal(store->ops->region_add(store, &r2, b, 1), FP_OK);
    assert_int_equal(store->ops->region_delete(store, r1.id), FP_OK);
    assert_int_equal(store->ops->replica_list(store, &list, &n), FP_OK);
    assert_int_equal(n, 1);
    assert_replica_equal(&list[0], &b[0]);
    free(list);
    assert_int_equal(store->ops->region_list(store, &regions, &n), FP_OK);
    assert_int_equal(n, 1);
    assert_region_equal(&regions[0], &r2);
    free(regions);
    assert_int_equal(store->ops->region_delete(store, 12345), FP_ERR_NO_ENTRY);
    assert_int_equal(replica_count(store), 1);
    store_close(store);
}

static void test_values(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    uint64_t v = 42;

    assert_int_equal(store->ops->value_get(store, "next_fixed_addr", &v), FP_OK);
    assert_int_equal(v, 0);
    assert_int_equal(store->ops->value_put(store, "next_fixed_addr", 0x7f0000000000ull), FP_OK);
    assert_int_equal(store->ops->value_put(store, "secret_tag", UINT64_MAX), FP_OK);
    assert_int_equal(store->ops->value_put(store, "next_fixed_addr", 0x7f0040000000ull), FP_OK);
    assert_int_equal(store->ops->value_get(store, "next_fixed_addr", &v), FP_OK);
    assert_int_equal(v, 0x7f0040000000ull);
    assert_int_equal(store->ops->value_get(store, "secret_tag", &v), FP_OK);
    assert_int_equal(v, UINT64_MAX);
    assert_int_equal(store->ops->value_get(store, "Secret_tag", &v), FP_OK);
    assert_int_equal(v, 0);
    assert_int_equal(store->ops->value_get(store, NULL, &v), FP_ERR_INVALID_PARAM);
    store_close(store);
}

/*
 * Fill a store with one of everything; the expected contents in the
 * arguments. No asserts: a forked child runs it too. The first failure.
 */
static fp_status_t store_fill(fp_meta_store_t *store, fp_meta_node_t nodes[2],
                              fp_meta_region_t regions[2], fp_meta_replica_t reps[3])
{
    fp_status_t status;

    nodes[0] = node_make(1);
    nodes[1] = node_make(2);
    regions[0] = region_make("one", 1, true);
    regions[1] = region_make("two", 2, false);
    reps[0] = replica_make(0, 0, 1, FP_META_REPLICA_OK, 11);
    reps[1] = replica_make(0, 0, 2, FP_META_REPLICA_COPYING, 12);
    reps[2] = replica_make(0, 0, 2, FP_META_REPLICA_OK, 13);
    status = store->ops->node_put(store, &nodes[0]);
    if (status == FP_OK)
        status = store->ops->node_put(store, &nodes[1]);
    if (status == FP_OK)
        status = store->ops->region_add(store, &regions[0], reps, 2);
    if (status == FP_OK)
        status = store->ops->region_add(store, &regions[1], reps + 2, 1);
    if (status == FP_OK)
        status = store->ops->value_put(store, "tag", 0x1234);
    return status;
}

/* @store holds exactly what store_fill() put. */
static void store_check(fp_meta_store_t *store, const fp_meta_node_t nodes[2],
                        const fp_meta_region_t regions[2], const fp_meta_replica_t reps[3])
{
    fp_meta_node_t *nl = NULL;
    fp_meta_region_t *rl = NULL;
    fp_meta_replica_t *pl = NULL;
    uint64_t v = 0;
    size_t n = 0;

    assert_int_equal(store->ops->node_list(store, &nl, &n), FP_OK);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_node_equal(&nl[i], &nodes[i]);
    free(nl);
    assert_int_equal(store->ops->region_list(store, &rl, &n), FP_OK);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        assert_region_equal(&rl[i], &regions[i]);
    free(rl);
    assert_int_equal(store->ops->replica_list(store, &pl, &n), FP_OK);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_replica_equal(&pl[i], &reps[i]);
    free(pl);
    assert_int_equal(store->ops->value_get(store, "tag", &v), FP_OK);
    assert_int_equal(v, 0x1234);
}

static void test_survives_reopen(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_node_t nodes[2], more = node_make(3);
    fp_meta_region_t regions[2];
    fp_meta_replica_t reps[3];

    assert_int_equal(store_fill(store, nodes, regions, reps), FP_OK);
    store_close(store);
    store = store_open(env);
    store_check(store, nodes, regions, reps);
    /* and the ids go on from where they were */
    assert_int_equal(store->ops->node_put(store, &more), FP_OK);
    assert_int_equal(more.id, 3);
    store_close(store);
}

/* A process that writes and is killed without closing: every acknowledged change is there. */
static void test_survives_kill(void **state)
{
    env_t *env = *state;
    fp_meta_node_t nodes[2];
    fp_meta_region_t regions[2];
    fp_meta_replica_t reps[3];
    fp_meta_store_t *store;
    int wstatus = 0;
    pid_t pid;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (store_open_status(env, NULL, &store) != FP_OK ||
            store_fill(store, nodes, regions, reps) != FP_OK)
            _exit(1);
        kill(getpid(), SIGKILL);
        _exit(2);
    }
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_true(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL);

    /* What store_fill() put, computed here: ids 1, 2 and their replicas. */
    nodes[0] = node_make(1);
    nodes[0].id = 1;
    nodes[1] = node_make(2);
    nodes[1].id = 2;
    regions[0] = region_make("one", 1, true);
    regions[0].id = 1;
    regions[1] = region_make("two", 2, false);
    regions[1].id = 2;
    reps[0] = replica_make(1, 0, 1, FP_META_REPLICA_OK, 11);
    reps[1] = replica_make(1, 0, 2, FP_META_REPLICA_COPYING, 12);
    reps[2] = replica_make(2, 0, 2, FP_META_REPLICA_OK, 13);
    store = store_open_free(env);
    store_check(store, nodes, regions, reps);
    store_close(store);
}

static void test_second_open_in_use(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);

    said_clear(env);
    assert_open_fails(env, FP_ERR_IN_USE);
    assert_said(env, "in use by another process");
    assert_int_equal(store->ops->value_put(store, "k", 7), FP_OK);
    store_close(store);
    store = store_open(env); /* free again */
    store_close(store);
}

static void test_garbage_file(void **state)
{
    env_t *env = *state;
    uint8_t junk[8192];

    assert_int_equal(mkdir(env->dir, 0700), 0);
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 2654435761u >> 13);
    file_write(env->db, junk, sizeof(junk), 0, O_TRUNC);
    said_clear(env);
    assert_open_fails(env, FP_ERR_IO);
    assert_said(env, "not a SQLite database");

    /* A text file. */
    file_write(env->db, "hello, world\n", 13, 0, O_TRUNC);
    said_clear(env);
    assert_open_fails(env, FP_ERR_IO);
    assert_said(env, "not a SQLite database");

    /* The file is left as it was, for the operator to look at. */
    struct stat st;
    assert_int_equal(stat(env->db, &st), 0);
    assert_int_equal(st.st_size, 13);
}

static void test_damaged_file(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_region_t r;
    uint8_t junk[4096];
    char name[32];
    struct stat st;

    for (int i = 0; i < 200; i++) { /* a few pages of data */
        snprintf(name, sizeof(name), "region-%d", i);
        r = region_make(name, (uint64_t)i, true);
        assert_int_equal(store->ops->region_add(store, &r, NULL, 0), FP_OK);
    }
    store_close(store);
    assert_int_equal(stat(env->db, &st), 0);
    assert_true(st.st_size >= 3 * 4096);
    /* Every page past the first (the header and the schema) is overwritten. */
    memset(junk, 0xa5, sizeof(junk));
    for (off_t at = 4096; at < st.st_size; at += 4096)
        file_write(env->db, junk, sizeof(junk), at, 0);
    said_clear(env);
    assert_open_fails(env, FP_ERR_IO);
    assert_said(env, "corrupt");
}

static void test_foreign_or_newer_database(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store;
    sqlite3 *db = NULL;

    /* Another program's SQLite database. */
    assert_int_equal(mkdir(env->dir, 0700), 0);
    assert_int_equal(sqlite3_open(env->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t (x INTEGER)", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    said_clear(env);
    assert_open_fails(env, FP_ERR_IO);
    assert_said(env, "not farpool's");

    /* farpool's, from a later schema version. */
    assert_int_equal(unlink(env->db), 0);
    store = store_open(env);
    store_close(store);
    assert_int_equal(sqlite3_open(env->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 2", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    said_clear(env);
    assert_open_fails(env, FP_ERR_VERSION);
    assert_said(env, "schema version 2");
}

static void test_dir_is_a_file(void **state)
{
    env_t *env = *state;

    file_write(env->dir, "x", 1, 0, 0);
    said_clear(env);
    assert_open_fails(env, FP_ERR_IO);
    assert_said(env, "is not a directory");
    assert_int_equal(fp_meta_sqlite_open("", &env->log, &(fp_meta_store_t *){NULL}),
                     FP_ERR_INVALID_PARAM);
}

/*
 * Open @dir as somebody who may not write it: the caller's uid when not root
 * (the modes stop it), nobody in a child when root (root passes every mode
 * check). The status, and the log's text in @said.
 */
static fp_status_t open_unprivileged(const char *dir, char *said, size_t size)
{
    env_t scratch;
    fp_meta_store_t *store = NULL;
    fp_status_t status;
    int pipefd[2], wstatus = 0;
    ssize_t got;
    pid_t pid;

    memset(&scratch, 0, sizeof(scratch));
    fp_log_init(&scratch.log, "test", FP_LOG_DEBUG, log_keep, &scratch);
    if (geteuid() != 0) {
        status = fp_meta_sqlite_open(dir, &scratch.log, &store);
        if (status == FP_OK)
            store->ops->close(store);
        snprintf(said, size, "%s", scratch.said);
        return status;
    }
    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        if (setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
            _exit(100);
        status = fp_meta_sqlite_open(dir, &scratch.log, &store);
        if (status == FP_OK)
            store->ops->close(store);
        if (write(pipefd[1], scratch.said, strlen(scratch.said)) < 0)
            _exit(101);
        _exit(-status);
    }
    close(pipefd[1]);
    got = read(pipefd[0], said, size - 1);
    said[got > 0 ? got : 0] = '\0';
    close(pipefd[0]);
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_true(WIFEXITED(wstatus));
    assert_true(WEXITSTATUS(wstatus) < 100);
    return (fp_status_t)-WEXITSTATUS(wstatus);
}

static void test_unwritable_dir(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store;
    char said[LOG_KEEP_MAX];

    /* The parent may be entered but not written: DIR cannot be made. */
    assert_int_equal(chmod(env->base, 0555), 0);
    assert_int_equal(open_unprivileged(env->dir, said, sizeof(said)), FP_ERR_IO);
    if (strstr(said, "cannot create the directory") == NULL)
        fail_msg("log: %s", said);
    assert_int_equal(chmod(env->base, 0700), 0);

    /* DIR exists, read-only: pool.db cannot be made. */
    assert_int_equal(mkdir(env->dir, 0555), 0);
    assert_int_equal(chmod(env->base, 0755), 0);
    assert_int_equal(open_unprivileged(env->dir, said, sizeof(said)), FP_ERR_IO);
    if (strstr(said, "cannot create") == NULL || strstr(said, "pool.db") == NULL)
        fail_msg("log: %s", said);

    /* pool.db exists and may be written, but DIR may not: no room for the WAL. */
    assert_int_equal(chmod(env->dir, 0700), 0);
    store = store_open(env);
    store_close(store);
    if (geteuid() == 0) /* the unprivileged opener owns it */
        assert_int_equal(chown(env->db, NOBODY, NOBODY), 0);
    assert_int_equal(chmod(env->dir, 0555), 0);
    assert_int_equal(open_unprivileged(env->dir, said, sizeof(said)), FP_ERR_IO);
    if (strstr(said, "pool.db") == NULL || strstr(said, "must both be writable") == NULL)
        fail_msg("log: %s", said);
    assert_int_equal(chmod(env->dir, 0700), 0);
    assert_int_equal(chmod(env->base, 0700), 0);
}

/* A region with more replicas than one etcd transaction holds (128 ops): whole, or nothing. */
static void test_region_many_replicas(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_region_t big = region_make("big", 1, true), clash = region_make("big", 2, false);
    fp_meta_region_t *regions = NULL;
    enum { NREPS = 300 };
    fp_meta_replica_t *reps = calloc(NREPS, sizeof(*reps)), *list = NULL;
    size_t n = 0;

    assert_non_null(reps);
    for (uint32_t i = 0; i < NREPS; i++)
        reps[i] = replica_make(0, i / 3, 1 + i % 3, i % 2, 0x9000000000000000ull + i);
    assert_int_equal(store->ops->region_add(store, &big, reps, NREPS), FP_OK);
    assert_int_equal(store->ops->replica_list(store, &list, &n), FP_OK);
    assert_int_equal(n, NREPS);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(reps[i].region, big.id);
        assert_replica_equal(&list[i], &reps[i]);
    }
    free(list);

    /* The same name again: refused, and none of its replicas is left. */
    for (uint32_t i = 0; i < NREPS; i++)
        reps[i] = replica_make(0, i, 4, 0, i);
    assert_int_equal(store->ops->region_add(store, &clash, reps, NREPS), FP_ERR_EXISTS);
    assert_int_equal(clash.id, 0);
    assert_int_equal(replica_count(store), NREPS);
    assert_int_equal(store->ops->region_list(store, &regions, &n), FP_OK);
    assert_int_equal(n, 1);
    assert_region_equal(&regions[0], &big);
    free(regions);

    /* Deleted whole. */
    assert_int_equal(store->ops->region_delete(store, big.id), FP_OK);
    assert_int_equal(replica_count(store), 0);
    free(reps);
    store_close(store);
}

/* ---- etcd only ---- */

static fp_status_t etcd_open_as(env_t *env, const char *url, const char *addr,
                                fp_meta_store_t **store_p)
{
    return fp_meta_etcd_open(url, addr, ETCD_TTL_MS, &env->log, store_p);
}

/* The service key: one holder at a time, named to the next; gone at close. */
static void test_etcd_service_key(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *a = NULL, *b = NULL;
    char addr[FP_META_ADDR_MAX];

    assert_int_equal(fp_etcd_service_addr(env->url, &env->log, addr, sizeof(addr)),
                     FP_ERR_NO_ENTRY);
    assert_int_equal(etcd_open_as(env, env->url, "10.1.1.1:7001", &a), FP_OK);
    assert_int_equal(fp_etcd_service_addr(env->url, &env->log, addr, sizeof(addr)), FP_OK);
    assert_string_equal(addr, "10.1.1.1:7001");
    assert_int_equal(fp_etcd_service_addr(env->url, &env->log, addr, 4), FP_ERR_TOO_LARGE);

    said_clear(env);
    assert_int_equal(etcd_open_as(env, env->url, "10.2.2.2:7002", &b), FP_ERR_IN_USE);
    assert_null(b);
    assert_said(env, "10.1.1.1:7001 holds");
    assert_int_equal(a->ops->value_put(a, "k", 7), FP_OK); /* the holder goes on */

    a->ops->close(a); /* the lease is revoked: the key goes at once */
    assert_int_equal(fp_etcd_service_addr(env->url, &env->log, addr, sizeof(addr)),
                     FP_ERR_NO_ENTRY);
    assert_int_equal(etcd_open_as(env, env->url, "10.2.2.2:7002", &b), FP_OK);
    assert_int_equal(fp_etcd_service_addr(env->url, &env->log, addr, sizeof(addr)), FP_OK);
    assert_string_equal(addr, "10.2.2.2:7002");
    b->ops->close(b);
}

/* A holder killed without close: the key is free once its lease expires, not before. */
static void test_etcd_service_key_after_kill(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = NULL;
    int pipefd[2], wstatus = 0;
    char byte = 0, addr[FP_META_ADDR_MAX];
    uint64_t killed;
    pid_t pid;

    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pipefd[0]);
        if (fp_meta_etcd_open(env->url, "10.3.3.3:7003", ETCD_TTL_MS, NULL, &store) != FP_OK)
            _exit(1);
        if (write(pipefd[1], "k", 1) != 1)
            _exit(2);
        pause(); /* until killed */
        _exit(3);
    }
    close(pipefd[1]);
    assert_int_equal(read(pipefd[0], &byte, 1), 1);
    close(pipefd[0]);
    /* Longer than a TTL alive: its keeper renews the lease. */
    usleep((ETCD_TTL_MS + 500) * 1000);
    assert_int_equal(fp_etcd_service_addr(env->url, &env->log, addr, sizeof(addr)), FP_OK);
    assert_string_equal(addr, "10.3.3.3:7003");
    assert_int_equal(etcd_open_as(env, env->url, ETCD_ADDR, &store), FP_ERR_IN_USE);

    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_true(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL);
    killed = fp_time_ns();
    store = store_open_free(env); /* within the TTL and a margin */
    print_message("the killed holder's key was free %.1f s after the kill (TTL %.1f s)\n",
                  (double)(fp_time_ns() - killed) / 1e9, ETCD_TTL_MS / 1000.0);
    store->ops->close(store);
}

typedef struct racer {
    const char *url;
    char name[64];
    int delay_us; /* after the start, so that either side may come first */
    pthread_barrier_t *go;
    bool won;
    fp_status_t status;
} racer_t;

/* Another writer under the prefix that publishes a name as the store does: on its key. */
static void *racer_main(void *arg)
{
    racer_t *r = arg;
    char key[FP_ETCD_PREFIX_MAX + 128];
    fp_etcd_url_t url;
    fp_etcd_t *client = NULL;
    fp_etcd_cmp_t cmp = {.key = key, .target = FP_ETCD_CREATE, .result = FP_ETCD_EQUAL};
    fp_etcd_op_t op = {.type = FP_ETCD_PUT, .key = key, .value = "999", .value_len = 3};

    r->status = fp_etcd_url_parse(r->url, NULL, &url);
    if (r->status == FP_OK)
        r->status = fp_etcd_open(r->url, 0, NULL, &client);
    snprintf(key, sizeof(key), "%s/names/%s", url.prefix, r->name);
    pthread_barrier_wait(r->go);
    usleep((useconds_t)r->delay_us);
    if (r->status == FP_OK)
        r->status = fp_etcd_txn(client, &cmp, 1, &op, 1, &r->won);
    fp_etcd_close(client);
    return NULL;
}

/* Two writers publishing one name at the same moment: exactly one wins, every time. */
static void test_etcd_name_race(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    pthread_barrier_t go;
    int store_wins = 0, racer_wins = 0;

    assert_int_equal(pthread_barrier_init(&go, NULL, 2), 0);
    for (int round = 0; round < 20; round++) {
        racer_t r = {.url = env->url, .go = &go, .delay_us = round % 5 * 400};
        fp_meta_region_t reg;
        pthread_t thread;
        fp_status_t status;

        snprintf(r.name, sizeof(r.name), "race-%d", round);
        reg = region_make(r.name, (uint64_t)round, false);
        assert_int_equal(pthread_create(&thread, NULL, racer_main, &r), 0);
        pthread_barrier_wait(&go);
        status = store->ops->region_add(store, &reg, NULL, 0);
        assert_int_equal(pthread_join(thread, NULL), 0);
        assert_int_equal(r.status, FP_OK);
        if (status == FP_OK) {
            assert_false(r.won);
            store_wins++;
        } else {
            assert_int_equal(status, FP_ERR_EXISTS);
            assert_true(r.won);
            racer_wins++;
        }
    }
    print_message("store won %d rounds, the other writer %d\n", store_wins, racer_wins);
    assert_int_equal(region_count(store), (size_t)store_wins);
    pthread_barrier_destroy(&go);
    store_close(store);
}

/* value_put of @v until it succeeds, for @ms at most; its last status. */
static fp_status_t put_until_ok(fp_meta_store_t *store, uint64_t v, int ms)
{
    uint64_t deadline = fp_time_ns() + (uint64_t)ms * 1000000ull;
    fp_status_t status;

    while ((status = store->ops->value_put(store, "k", v)) != FP_OK && fp_time_ns() < deadline)
        usleep(50 * 1000);
    return status;
}

/*
 * The service's lease revoked behind its back: the change under way is
 * refused, and, nobody else having written meanwhile, the store takes the
 * service back (a new lease) and goes on with what it had. Revoked again,
 * and another service opened and wrote meanwhile: the first stays out for
 * good, and nothing it tries lands.
 */
static void test_etcd_lease_lost(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env), *other;
    char key[FP_ETCD_PREFIX_MAX + 32];
    fp_etcd_url_t url;
    fp_etcd_t *client = NULL;
    fp_etcd_kv_t kv = {0};
    fp_meta_node_t node = node_make(1);
    uint64_t v = 1;

    assert_int_equal(store->ops->value_put(store, "k", 5), FP_OK);
    assert_int_equal(fp_etcd_url_parse(env->url, NULL, &url), FP_OK);
    assert_int_equal(fp_etcd_open(env->url, 0, NULL, &client), FP_OK);
    snprintf(key, sizeof(key), "%s/%s", url.prefix, FP_ETCD_SERVICE_KEY);
    assert_int_equal(fp_etcd_get(client, key, &kv), FP_OK);
    assert_true(kv.lease != 0);
    assert_int_equal(fp_etcd_lease_revoke(client, kv.lease), FP_OK);
    fp_etcd_kv_clear(&kv);
    assert_int_equal(fp_etcd_get(client, key, &kv), FP_ERR_NO_ENTRY);

    /* The next change is refused, or (the keeper saw the loss first) made
     * once the key is taken back: it is there again, under a new lease. */
    said_clear(env);
    if (store->ops->node_put(store, &node) != FP_OK) {
        assert_int_equal(node.id, 0);
        assert_said(env, "lost its lease");
    }
    assert_int_equal(put_until_ok(store, 6, 10000), FP_OK);
    assert_said(env, "metadata service again");
    assert_int_equal(store->ops->value_get(store, "k", &v), FP_OK);
    assert_int_equal(v, 6);
    assert_int_equal(fp_etcd_get(client, key, &kv), FP_OK);
    assert_true(kv.lease != 0);

    /* Again, and this time another service comes and writes. */
    assert_int_equal(fp_etcd_lease_revoke(client, kv.lease), FP_OK);
    fp_etcd_kv_clear(&kv);
    other = store_open_free(env);
    assert_int_equal(other->ops->value_put(other, "k", 7), FP_OK);
    said_clear(env);
    assert_int_equal(put_until_ok(store, 8, 2500), FP_ERR_IO);
    assert_said(env, "another metadata service wrote");
    store_close(other);
    assert_int_equal(put_until_ok(store, 9, 1500), FP_ERR_IO); /* for good, even once it left */
    store_close(store);

    store = store_open_free(env);
    assert_int_equal(store->ops->value_get(store, "k", &v), FP_OK);
    assert_int_equal(v, 7);
    store_close(store);
    fp_etcd_close(client);
}

/*
 * etcd killed and started again on its data, past the service's TTL: the
 * store refuses changes meanwhile, then goes on as the service (its lease
 * kept by etcd's restart, or taken again), with what was stored before.
 */
static void test_etcd_restarted(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    uint64_t v = 0;

    assert_int_equal(store->ops->value_put(store, "k", 3), FP_OK);
    fp_test_etcd_kill(&etcd);
    assert_int_equal(store->ops->value_put(store, "k", 4), FP_ERR_IO);
    usleep((ETCD_TTL_MS + 500) * 1000); /* past the TTL: the keeper gives the lease up */
    assert_int_equal(fp_test_etcd_restart("meta-store", &etcd), FP_OK);
    assert_int_equal(put_until_ok(store, 5, 15000), FP_OK);
    assert_int_equal(store->ops->value_get(store, "k", &v), FP_OK);
    assert_int_equal(v, 5);
    store_close(store);
}

/* Wait until the log has a line containing @text, @ms at most; whether it has. */
static bool said_until(env_t *env, const char *text, int ms)
{
    uint64_t deadline = fp_time_ns() + (uint64_t)ms * 1000000ull;

    for (;;) {
        bool found;

        pthread_mutex_lock(&env->said_lock);
        found = strstr(env->said, text) != NULL;
        pthread_mutex_unlock(&env->said_lock);
        if (found || fp_time_ns() >= deadline)
            return found;
        usleep(50 * 1000);
    }
}

/* member_live's answer for @id until it is @want, @ms at most; whether it came. */
static bool live_until(fp_meta_store_t *store, uint64_t id, bool want, int ms)
{
    uint64_t deadline = fp_time_ns() + (uint64_t)ms * 1000000ull;

    for (;;) {
        bool live = !want;

        if (store->ops->member_live(store, &id, 1, &live) == FP_OK && live == want)
            return true;
        if (fp_time_ns() >= deadline)
            return false;
        usleep(50 * 1000);
    }
}

/* Key @key until it exists under a lease other than @not_lease, @ms at most, into *@kv. */
static fp_status_t key_until(fp_etcd_t *client, const char *key, int64_t not_lease, int ms,
                             fp_etcd_kv_t *kv)
{
    uint64_t deadline = fp_time_ns() + (uint64_t)ms * 1000000ull;

    for (;;) {
        fp_status_t status = fp_etcd_get(client, key, kv);

        if (status == FP_OK && kv->lease != 0 && kv->lease != not_lease)
            return FP_OK;
        fp_etcd_kv_clear(kv);
        if (fp_time_ns() >= deadline)
            return status == FP_OK ? FP_ERR_TIMED_OUT : status;
        usleep(50 * 1000);
    }
}

/* writer_renew on @lease of @region until it is not FP_OK, @ms at most: that status. */
static fp_status_t renew_until_over(fp_meta_store_t *store, uint64_t region, uint64_t lease, int ms)
{
    uint64_t deadline = fp_time_ns() + (uint64_t)ms * 1000000ull;

    for (;;) {
        int ttl_ms = 0;
        fp_status_t status = store->ops->writer_renew(store, region, lease, &ttl_ms);

        if (status != FP_OK || fp_time_ns() >= deadline)
            return status;
        usleep(50 * 1000);
    }
}

/*
 * writer_take for @holder until it is neither FP_ERR_IN_USE nor FP_ERR_IO
 * (etcd just started again), @ms at most: that status.
 */
static fp_status_t take_until_free(fp_meta_store_t *store, uint64_t region, const uint8_t *holder,
                                   int ms, uint64_t *lease_p)
{
    uint64_t deadline = fp_time_ns() + (uint64_t)ms * 1000000ull;

    for (;;) {
        int ttl_ms = 0;
        fp_status_t status =
            store->ops->writer_take(store, region, holder, ETCD_TTL_MS, lease_p, &ttl_ms);

        if ((status != FP_ERR_IN_USE && status != FP_ERR_IO) || fp_time_ns() >= deadline)
            return status;
        usleep(50 * 1000);
    }
}

/*
 * Writer leases are etcd leases: P/writers/<region> = the holder's key (hex)
 * under the lease; a second key refused while it is held, even by another
 * store (a restarted service), which finds it; renewals keep it past its
 * TTL; not renewed it goes within its TTL, and the next writer gets it; a
 * release frees it at once; etcd away, a renewal is FP_ERR_IO, and the lease
 * is not over for that; a deleted region takes its key.
 */
static void test_etcd_writer_lease(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_region_t reg = region_make("leased", 5, false);
    uint8_t a[FP_PROTO_KEY_SIZE], b[FP_PROTO_KEY_SIZE], held[FP_PROTO_KEY_SIZE];
    char key[FP_ETCD_PREFIX_MAX + 64], hex[2 * FP_PROTO_KEY_SIZE + 1];
    uint64_t lease = 0, again = 0, got = 0, start;
    fp_etcd_t *client = NULL;
    fp_etcd_kv_t kv = {0};
    int ttl_ms = 0;

    memset(a, 0xa1, sizeof(a));
    memset(b, 0xb2, sizeof(b));
    reg.lease_id = 0;
    assert_int_equal(store->ops->region_add(store, &reg, NULL, 0), FP_OK);
    assert_int_equal(fp_etcd_open(env->url, 0, NULL, &client), FP_OK);
    snprintf(key, sizeof(key), "%s/writers/%016" PRIx64, fp_etcd_prefix(client), reg.id);
    assert_int_equal(store->ops->writer_get(store, reg.id, held, &got), FP_ERR_NO_ENTRY);

    /* Taken: the key is there, under the lease, naming the holder. */
    assert_int_equal(store->ops->writer_take(store, reg.id, a, ETCD_TTL_MS, &lease, &ttl_ms),
                     FP_OK);
    assert_true(lease != 0);
    assert_true(ttl_ms >= ETCD_TTL_MS);
    assert_int_equal(fp_etcd_get(client, key, &kv), FP_OK);
    assert_int_equal(kv.lease, (int64_t)lease);
    for (size_t i = 0; i < sizeof(a); i++)
        snprintf(hex + 2 * i, 3, "%02x", a[i]);
    assert_int_equal(kv.value_len, strlen(hex));
    assert_memory_equal(kv.value, hex, kv.value_len);
    fp_etcd_kv_clear(&kv);

    /* A second writer refused; the holder taking it again keeps its lease. */
    assert_int_equal(store->ops->writer_take(store, reg.id, b, ETCD_TTL_MS, &again, &ttl_ms),
                     FP_ERR_IN_USE);
    assert_int_equal(store->ops->writer_take(store, reg.id, a, ETCD_TTL_MS, &again, &ttl_ms),
                     FP_OK);
    assert_int_equal(again, lease);

    /* A restarted service finds it, and refuses another writer too. */
    store_close(store);
    store = store_open(env);
    assert_int_equal(store->ops->writer_get(store, reg.id, held, &got), FP_OK);
    assert_int_equal(got, lease);
    assert_memory_equal(held, a, sizeof(a));
    assert_int_equal(store->ops->writer_take(store, reg.id, b, ETCD_TTL_MS, &again, &ttl_ms),
                     FP_ERR_IN_USE);

    /* Renewed, it lasts past its TTL. */
    start = fp_time_ns();
    assert_int_equal(renew_until_over(store, reg.id, lease, ETCD_TTL_MS + 1500), FP_OK);
    assert_true(fp_time_ns() - start >= (ETCD_TTL_MS + 1500) * 1000000ull);
    assert_int_equal(fp_etcd_get(client, key, &kv), FP_OK);
    fp_etcd_kv_clear(&kv);

    /* etcd away: FP_ERR_IO, and the lease is not over for that. */
    fp_test_etcd_kill(&etcd);
    assert_int_equal(store->ops->writer_renew(store, reg.id, lease, &ttl_ms), FP_ERR_IO);
    assert_int_equal(fp_test_etcd_restart("meta-store", &etcd), FP_OK);
    assert_int_equal(store->ops->writer_get(store, reg.id, held, &got), FP_OK);
    assert_int_equal(got, lease);

    /* Not renewed: gone within its TTL (and etcd's rounding); then another key takes it. */
    start = fp_time_ns();
    assert_int_equal(store->ops->writer_renew(store, reg.id, 1, &ttl_ms), FP_ERR_NO_ENTRY);
    assert_int_equal(take_until_free(store, reg.id, b, ETCD_TTL_MS + 8000, &again), FP_OK);
    print_message("the unrenewed writer lease was free %.1f s later (TTL %.1f s)\n",
                  (double)(fp_time_ns() - start) / 1e9, ETCD_TTL_MS / 1000.0);
    assert_true(again != lease);
    assert_int_equal(store->ops->writer_renew(store, reg.id, lease, &ttl_ms), FP_ERR_NO_ENTRY);

    /* Released: free at once. */
    assert_int_equal(store->ops->writer_release(store, reg.id, again), FP_OK);
    assert_int_equal(fp_etcd_get(client, key, &kv), FP_ERR_NO_ENTRY);
    assert_int_equal(store->ops->writer_renew(store, reg.id, again, &ttl_ms), FP_ERR_NO_ENTRY);
    assert_int_equal(store->ops->writer_release(store, reg.id, again), FP_OK); /* over already */
    assert_int_equal(store->ops->writer_take(store, reg.id, a, ETCD_TTL_MS, &lease, &ttl_ms),
                     FP_OK);

    /* The region deleted: its writer's key goes with it. */
    assert_int_equal(store->ops->region_delete(store, reg.id), FP_OK);
    assert_int_equal(fp_etcd_get(client, key, &kv), FP_ERR_NO_ENTRY);
    fp_etcd_close(client);
    store_close(store);
}

#define MEMBER_ID   UINT64_C(0x8234abcd5678ef01)
#define MEMBER_ADDR "10.1.1.1:7001"

/*
 * A member's lease key: held while its thread runs (its address, under a
 * lease), seen by member_live (and no other id); deleted behind its back,
 * put again; its lease revoked behind its back, granted again and the key
 * put again; the stop revokes it, so the key is gone at once.
 */
static void test_etcd_member_lease(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    uint64_t ids[2] = {MEMBER_ID, 0x42};
    bool live[2] = {true, true};
    char key[FP_ETCD_PREFIX_MAX + 64];
    fp_meta_etcd_member_t *member = NULL;
    fp_etcd_op_t del = {.type = FP_ETCD_DELETE, .key = key};
    fp_etcd_t *client = NULL;
    fp_etcd_kv_t kv = {0};
    fp_etcd_url_t url;
    int64_t lease;
    bool ok = false;

    assert_non_null(store->ops->member_live);
    assert_int_equal(store->ops->member_live(store, ids, 2, live), FP_OK);
    assert_false(live[0]);
    assert_false(live[1]);
    assert_int_equal(fp_etcd_url_parse(env->url, NULL, &url), FP_OK);
    snprintf(key, sizeof(key), "%s/%s/%016" PRIx64, url.prefix, FP_ETCD_MEMBERS_DIR, MEMBER_ID);
    assert_int_equal(fp_etcd_open(env->url, 0, NULL, &client), FP_OK);

    said_clear(env);
    assert_int_equal(fp_meta_etcd_member_start(env->url, MEMBER_ID, MEMBER_ADDR, ETCD_TTL_MS,
                                               &env->log, &member),
                     FP_OK);
    assert_true(live_until(store, MEMBER_ID, true, 10000));
    assert_int_equal(store->ops->member_live(store, ids, 2, live), FP_OK);
    assert_true(live[0]);
    assert_false(live[1]);
    assert_int_equal(fp_etcd_get(client, key, &kv), FP_OK);
    assert_string_equal((const char *)kv.value, MEMBER_ADDR);
    assert_true(kv.lease != 0);
    lease = kv.lease;
    fp_etcd_kv_clear(&kv);
    assert_said(env, "registered");

    /* Deleted behind its back: put again, under the same lease, at its next renewal. */
    assert_int_equal(fp_etcd_txn(client, NULL, 0, &del, 1, &ok), FP_OK);
    assert_true(ok);
    assert_int_equal(key_until(client, key, 0, 10000, &kv), FP_OK);
    assert_int_equal(kv.lease, lease);
    fp_etcd_kv_clear(&kv);
    assert_said(env, "deleted behind");

    /* Its lease revoked: a new one, and the key under it. */
    assert_int_equal(fp_etcd_lease_revoke(client, lease), FP_OK);
    assert_int_equal(key_until(client, key, lease, 10000, &kv), FP_OK);
    assert_string_equal((const char *)kv.value, MEMBER_ADDR);
    fp_etcd_kv_clear(&kv);
    assert_said(env, "is gone");
    assert_true(live_until(store, MEMBER_ID, true, 10000));

    /* A stop revokes it: the key is gone as it returns. */
    fp_meta_etcd_member_stop(member);
    assert_int_equal(fp_etcd_get(client, key, &kv), FP_ERR_NO_ENTRY);
    assert_int_equal(store->ops->member_live(store, ids, 1, live), FP_OK);
    assert_false(live[0]);
    fp_meta_etcd_member_stop(NULL);
    fp_etcd_close(client);
    store_close(store);
}

/*
 * etcd away: member_live cannot tell (FP_ERR_IO, said once), and the
 * member's thread says it cannot renew; etcd back on its data: the key is
 * held again and live.
 */
static void test_etcd_member_lease_etcd_restarted(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_etcd_member_t *member = NULL;
    uint64_t id = MEMBER_ID;
    bool live = false;

    assert_int_equal(fp_meta_etcd_member_start(env->url, MEMBER_ID, MEMBER_ADDR, ETCD_TTL_MS,
                                               &env->log, &member),
                     FP_OK);
    assert_true(live_until(store, MEMBER_ID, true, 10000));
    said_clear(env);
    fp_test_etcd_kill(&etcd);
    assert_int_equal(store->ops->member_live(store, &id, 1, &live), FP_ERR_IO);
    assert_said(env, "cannot read the members' lease keys");
    assert_true(said_until(env, "cannot renew this node's lease key", 10000));
    assert_int_equal(fp_test_etcd_restart("meta-store", &etcd), FP_OK);
    assert_true(live_until(store, MEMBER_ID, true, 15000));
    assert_said(env, "lease keys can be read again");
    assert_true(said_until(env, "held again", 15000));
    fp_meta_etcd_member_stop(member);
    store_close(store);
}

/*
 * The service's lease lost while members' keys come and go (a member
 * registers, another's lease is revoked): those are no other service's
 * writes, and the store takes the service back.
 */
static void test_etcd_lease_lost_member_churn(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);
    fp_meta_etcd_member_t *member = NULL, *second = NULL;
    char key[FP_ETCD_PREFIX_MAX + 32];
    fp_etcd_t *client = NULL;
    fp_etcd_kv_t kv = {0};
    fp_etcd_url_t url;
    uint64_t v = 0;

    assert_int_equal(fp_meta_etcd_member_start(env->url, MEMBER_ID, MEMBER_ADDR, ETCD_TTL_MS,
                                               &env->log, &member),
                     FP_OK);
    assert_true(live_until(store, MEMBER_ID, true, 10000));
    assert_int_equal(store->ops->value_put(store, "k", 1), FP_OK);
    assert_int_equal(fp_etcd_url_parse(env->url, NULL, &url), FP_OK);
    assert_int_equal(fp_etcd_open(env->url, 0, NULL, &client), FP_OK);
    snprintf(key, sizeof(key), "%s/%s", url.prefix, FP_ETCD_SERVICE_KEY);
    assert_int_equal(fp_etcd_get(client, key, &kv), FP_OK);
    said_clear(env);
    assert_int_equal(fp_etcd_lease_revoke(client, kv.lease), FP_OK);
    fp_etcd_kv_clear(&kv);
    /* The keeper finds it first (not a change, which would read the cluster's revision anew). */
    assert_true(said_until(env, "no longer the pool's metadata service", 10000));
    said_clear(env);

    /* Meanwhile one member goes (revoked) and another comes (a new key). */
    fp_meta_etcd_member_stop(member);
    assert_int_equal(fp_meta_etcd_member_start(env->url, MEMBER_ID + 1, "10.1.1.2:7002",
                                               ETCD_TTL_MS, &env->log, &second),
                     FP_OK);
    /* Taken back at a read of the lease keys, or at this change. */
    assert_true(live_until(store, MEMBER_ID + 1, true, 10000));
    assert_int_equal(put_until_ok(store, 2, 10000), FP_OK);
    assert_said(env, "metadata service again");
    assert_int_equal(store->ops->value_get(store, "k", &v), FP_OK);
    assert_int_equal(v, 2);
    fp_meta_etcd_member_stop(second);
    fp_etcd_close(client);
    store_close(store);
}

/* SQLite knows nothing of liveness: the service goes by heartbeats. */
static void test_no_member_live(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = store_open(env);

    assert_null(store->ops->member_live);
    assert_null(store->ops->writer_take); /* writer leases live in the records */
    assert_null(store->ops->writer_renew);
    assert_null(store->ops->writer_release);
    assert_null(store->ops->writer_get);
    store_close(store);
}

/* No etcd at the URL: FP_ERR_IO, with a line that names the endpoint. */
static void test_etcd_unreachable(void **state)
{
    env_t *env = *state;
    fp_meta_store_t *store = NULL;
    char url[128], addr[FP_META_ADDR_MAX], ep[32];
    int port = fp_test_free_port();

    assert_true(port > 0);
    snprintf(ep, sizeof(ep), "127.0.0.1:%d", port);
    snprintf(url, sizeof(url), "etcd://%s/farpool", ep);
    said_clear(env);
    assert_int_equal(etcd_open_as(env, url, ETCD_ADDR, &store), FP_ERR_IO);
    assert_null(store);
    assert_said(env, "no endpoint of");
    assert_said(env, ep);
    said_clear(env);
    assert_int_equal(fp_etcd_service_addr(url, &env->log, addr, sizeof(addr)), FP_ERR_IO);
    assert_said(env, "no endpoint of");
}

/* Two endpoints, the first (or the second) dead: the live one serves. */
static void test_etcd_failover(void **state)
{
    env_t *env = *state;
    char url[256], dead[32];
    const char *prefix = strrchr(env->url, '/');
    fp_meta_store_t *store;
    fp_meta_node_t node = node_make(1);
    uint64_t v = 0;

    snprintf(dead, sizeof(dead), "127.0.0.1:%d", fp_test_free_port());
    snprintf(url, sizeof(url), "etcd://%s,%s%s", dead, etcd.endpoint, prefix);
    assert_int_equal(etcd_open_as(env, url, ETCD_ADDR, &store), FP_OK);
    assert_int_equal(store->ops->node_put(store, &node), FP_OK);
    assert_int_equal(store->ops->value_put(store, "k", 9), FP_OK);
    store->ops->close(store);

    snprintf(url, sizeof(url), "etcd://%s,%s%s", etcd.endpoint, dead, prefix);
    assert_int_equal(etcd_open_as(env, url, ETCD_ADDR, &store), FP_OK);
    assert_int_equal(store->ops->value_get(store, "k", &v), FP_OK);
    assert_int_equal(v, 9);
    assert_int_equal(node_count(store), 1);
    store->ops->close(store);
}

static void test_etcd_url_parse(void **state)
{
    env_t *env = *state;
    static const char *const bad[][2] = {
        {"", "does not start with etcd://"},
        {"http://127.0.0.1:2379/x", "does not start with etcd://"},
        {"etcd://127.0.0.1:2379", "no /PREFIX"},
        {"etcd://127.0.0.1:2379/", "an empty PREFIX"},
        {"etcd://127.0.0.1:2379///", "an empty PREFIX"},
        {"etcd://127.0.0.1/x", "without its :PORT"},
        {"etcd://:2379/x", "without its HOST"},
        {"etcd://127.0.0.1:/x", "without its PORT"},
        {"etcd://127.0.0.1:99999/x", "past 65535"},
        {"etcd://127.0.0.1:0/x", "port 0"},
        {"etcd://127.0.0.1:23a/x", "not a number"},
        {"etcd://127.0.0.1:2379,/x", "an empty endpoint"},
        {"etcd://[::1/x", "closing ']'"},
        {"etcd://ho st:1/x", "a bad character in a host name"},
        {"etcd://a:1/x y", "a bad character in the PREFIX"},
        {"etcd://a:1,a:2,a:3,a:4,a:5,a:6,a:7,a:8,a:9/x", "more than 8 endpoints"},
    };
    fp_etcd_url_t url;
    fp_meta_store_t *store = NULL;
    char addr[FP_META_ADDR_MAX];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        said_clear(env);
        assert_int_equal(fp_etcd_url_parse(bad[i][0], &env->log, &url), FP_ERR_ADDRESS);
        assert_said(env, bad[i][1]);
    }
    said_clear(env);
    assert_int_equal(etcd_open_as(env, "etcd://nowhere", ETCD_ADDR, &store), FP_ERR_ADDRESS);
    assert_null(store);
    assert_said(env, "no /PREFIX");
    assert_int_equal(fp_etcd_service_addr("etcd:/x", &env->log, addr, sizeof(addr)),
                     FP_ERR_ADDRESS);

    assert_int_equal(fp_etcd_url_parse("etcd://10.0.0.1:2379,[fd00::1]:2380,etcd-2.lan:2381"
                                       "/pools/a/",
                                       &env->log, &url),
                     FP_OK);
    assert_int_equal(url.nendpoints, 3);
    assert_string_equal(url.endpoints[0], "10.0.0.1:2379");
    assert_string_equal(url.endpoints[1], "[fd00::1]:2380");
    assert_string_equal(url.endpoints[2], "etcd-2.lan:2381");
    assert_string_equal(url.prefix, "/pools/a");
    assert_true(fp_etcd_url_is("etcd://x"));
    assert_false(fp_etcd_url_is("farpool://x"));
}

static int etcd_group_setup(void **state)
{
    (void)state;
    if (!fp_test_etcd_available()) {
        fprintf(stderr, "no %s: install etcd-server (scripts/install-deps.sh)\n", FP_TEST_ETCD_BIN);
        return -1;
    }
    return fp_test_etcd_start("meta-store", &etcd) == FP_OK ? 0 : -1;
}

static int etcd_group_teardown(void **state)
{
    (void)state;
    fp_test_etcd_stop(&etcd);
    return 0;
}

/* The tests of the ops' semantics, on the backend that @setup sets up. */
#define SHARED_TESTS(setup)                                                                        \
    cmocka_unit_test_setup_teardown(test_node_round_trip, setup, env_teardown),                    \
        cmocka_unit_test_setup_teardown(test_region_round_trip, setup, env_teardown),              \
        cmocka_unit_test_setup_teardown(test_region_add_with_replicas, setup, env_teardown),       \
        cmocka_unit_test_setup_teardown(test_duplicate_name_leaves_nothing, setup, env_teardown),  \
        cmocka_unit_test_setup_teardown(test_unpublished_share_names, setup, env_teardown),        \
        cmocka_unit_test_setup_teardown(test_ids_never_reused, setup, env_teardown),               \
        cmocka_unit_test_setup_teardown(test_replica_put_delete_order, setup, env_teardown),       \
        cmocka_unit_test_setup_teardown(test_region_delete_takes_replicas, setup, env_teardown),   \
        cmocka_unit_test_setup_teardown(test_region_many_replicas, setup, env_teardown),           \
        cmocka_unit_test_setup_teardown(test_values, setup, env_teardown),                         \
        cmocka_unit_test_setup_teardown(test_survives_reopen, setup, env_teardown),                \
        cmocka_unit_test_setup_teardown(test_survives_kill, setup, env_teardown)

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {
        SHARED_TESTS(env_setup),
        cmocka_unit_test_setup_teardown(test_open_makes_dir_and_file_private, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_second_open_in_use, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_garbage_file, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_file, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_foreign_or_newer_database, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_dir_is_a_file, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_dir, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_no_member_live, env_setup, env_teardown),
    };
    const struct CMUnitTest etcd_tests[] = {
        SHARED_TESTS(env_setup_etcd),
        cmocka_unit_test_setup_teardown(test_etcd_service_key, env_setup_etcd, env_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_service_key_after_kill, env_setup_etcd,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_name_race, env_setup_etcd, env_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_lease_lost, env_setup_etcd, env_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_restarted, env_setup_etcd, env_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_writer_lease, env_setup_etcd, env_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_member_lease, env_setup_etcd, env_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_lease_lost_member_churn, env_setup_etcd,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_member_lease_etcd_restarted, env_setup_etcd,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_unreachable, env_setup_etcd, env_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_failover, env_setup_etcd, env_teardown),
        cmocka_unit_test_setup_teardown(test_etcd_url_parse, env_setup_etcd, env_teardown),
    };
    int failed = cmocka_run_group_tests_name("sqlite", sqlite_tests, NULL, NULL);

    failed +=
        cmocka_run_group_tests_name("etcd", etcd_tests, etcd_group_setup, etcd_group_teardown);
    return failed;
}
