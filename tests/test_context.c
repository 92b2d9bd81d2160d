/* SPDX-License-Identifier: MIT */
/*
 * Tests of the context's side effects and of the ABI's growth points
 * (src/client/context.c, stats.c, version.c), against a real farpoold:
 *
 * - log lines go to the context's log callback at its level, and nowhere
 *   else: two contexts with different levels do not change each other, and
 *   $FARPOOL_LOG_LEVEL sets only the contexts created while it is set;
 * - a node connection takes the same parameters;
 * - the library's version is the headers';
 * - statistics fill exactly the size the caller passes (an older, smaller
 *   struct is not overrun; a newer, larger one is zeroed past what we know);
 * - each mapping publishes its counters in a shared-memory object of its own,
 *   mode 0600, removed at unmap; two mappings of one region name have two;
 * - an idle mapped region's fault thread never wakes (0 context switches in 5 s).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <farpool/farpool.h>

#include "client/stats.h"
#include "common/daemon.h"

static fp_test_daemon_t daemon_;

static int group_setup(void **state)
{
    const char *const args[] = {"--capacity", "256M", "--slab-size", "16M", NULL};

    (void)state;
    unsetenv("FARPOOL_LOG_LEVEL");
    return fp_test_daemon_start(args, &daemon_) == FP_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return fp_test_daemon_stop(&daemon_) == 0 ? 0 : -1;
}

/* What a log callback saw. */
typedef struct lines {
    pthread_mutex_t lock;
    unsigned n, by_level[5];
    char last[512];
} lines_t;

static void collect(void *arg, farpool_log_level_t level, const char *line)
{
    lines_t *l = arg;

    pthread_mutex_lock(&l->lock);
    l->n++;
    if ((unsigned)level < 5)
        l->by_level[level]++;
    snprintf(l->last, sizeof(l->last), "%s", line);
    pthread_mutex_unlock(&l->lock);
}

static void lines_init(lines_t *l)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->lock, NULL);
}

/* A context on @node (NULL: a port nothing listens on) logging to @l (NULL: defaults). */
static fp_status_t context_new(const char *node, farpool_log_level_t level, lines_t *l,
                               farpool_context_t **ctx_p)
{
    const char *nodes[] = {node != NULL ? node : "127.0.0.1:1"};
    farpool_context_params_t p;

    memset(&p, 0, sizeof(p));
    p.field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_CACHE_BYTES |
                   FARPOOL_CONTEXT_PARAM_TIMEOUT;
    p.nodes = nodes;
    p.nnodes = 1;
    p.cache_bytes = 16 << 20;
    p.timeout_ms = 5000;
    if (l != NULL) {
        p.field_mask |= FARPOOL_CONTEXT_PARAM_LOG;
        p.log_level = level;
        p.log_func = collect;
        p.log_arg = l;
    }
    return farpool_context_create(&p, ctx_p);
}

/* A failed connect is said at error level, to the callback, with the reason. */
static void test_log_callback_gets_errors(void **state)
{
    farpool_context_t *ctx = NULL;
    lines_t l;

    (void)state;
    lines_init(&l);
    assert_int_equal(context_new(NULL, FARPOOL_LOG_WARN, &l, &ctx), FP_ERR_NOT_CONNECTED);
    assert_null(ctx);
    assert_true(l.by_level[FARPOOL_LOG_ERROR] >= 1);
    assert_non_null(strstr(l.last, "127.0.0.1:1"));
    /* The callback gets the message alone: no time, program or newline. */
    assert_null(strchr(l.last, '\n'));
    assert_null(strstr(l.last, "farpool["));
}

/* Below the context's level nothing is said; another context's level changes nothing. */
static void test_log_levels_are_per_context(void **state)
{
    farpool_context_t *quiet = NULL, *loud = NULL;
    lines_t lq, ll;

    (void)state;
    lines_init(&lq);
    lines_init(&ll);
    /* A trace-level context first: if levels were process-wide, it would make the next loud. */
    assert_int_equal(context_new(daemon_.addr, FARPOOL_LOG_TRACE, &ll, &loud), FP_OK);
    assert_int_equal(context_new(NULL, FARPOOL_LOG_ERROR, &lq, &quiet), FP_ERR_NOT_CONNECTED);
    assert_true(lq.n >= 1); /* errors pass at level error */
    lines_init(&lq);
    {
        /* A region that does not exist: said at debug level or below, if at all. */
        farpool_region_t *r = NULL;
        const char *nodes[] = {daemon_.addr};
        farpool_context_params_t p;

        memset(&p, 0, sizeof(p));
        p.field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_LOG;
        p.nodes = nodes;
        p.nnodes = 1;
        p.log_level = FARPOOL_LOG_ERROR;
        p.log_func = collect;
        p.log_arg = &lq;
        assert_int_equal(farpool_context_create(&p, &quiet), FP_OK);
        assert_int_equal(farpool_region_open(quiet, "no-such-region", 0, &r), FP_ERR_NO_ENTRY);
        /* Nothing above error was passed on, whatever the loud context allows. */
        assert_int_equal(lq.by_level[FARPOOL_LOG_WARN] + lq.by_level[FARPOOL_LOG_INFO] +
                             lq.by_level[FARPOOL_LOG_DEBUG] + lq.by_level[FARPOOL_LOG_TRACE],
                         0);
        farpool_context_destroy(quiet);
    }
    farpool_context_destroy(loud);
}

/* $FARPOOL_LOG_LEVEL is read when a context is made, into that context only. */
static void test_env_level_is_read_per_context(void **state)
{
    farpool_context_t *ctx = NULL;
    farpool_node_t *node = NULL;
    lines_t l;
    farpool_node_params_t np;

    (void)state;
    lines_init(&l);
    setenv("FARPOOL_LOG_LEVEL", "error", 1);
    /* Explicit parameters win over the environment. */
    assert_int_equal(context_new(NULL, FARPOOL_LOG_TRACE, &l, &ctx), FP_ERR_NOT_CONNECTED);
    assert_true(l.n >= 1);
    unsetenv("FARPOOL_LOG_LEVEL");
    /* A node connection takes the same parameters. */
    lines_init(&l);
    memset(&np, 0, sizeof(np));
    np.field_mask = FARPOOL_NODE_PARAM_LOG;
    np.log_level = FARPOOL_LOG_WARN;
    np.log_func = collect;
    np.log_arg = &l;
    assert_int_equal(farpool_node_connect("127.0.0.1:1", &np, &node), FP_ERR_NOT_CONNECTED);
    assert_true(l.by_level[FARPOOL_LOG_ERROR] >= 1);
    assert_int_equal(farpool_node_connect("no-port", &np, &node), FP_ERR_ADDRESS);
    assert_non_null(strstr(l.last, "no-port"));
}

static void test_version(void **state)
{
    char expect[32];

    (void)state;
    assert_int_equal(farpool_version(), FARPOOL_VERSION);
    snprintf(expect, sizeof(expect), "%d.%d.%d", FARPOOL_VERSION / 10000,
             FARPOOL_VERSION / 100 % 100, FARPOOL_VERSION % 100);
    assert_string_equal(farpool_version_string(), expect);
    assert_string_equal(farpool_status_string(FP_ERR_IN_USE), "in use");
    assert_string_equal(fp_status_string(FP_ERR_LAST), "unknown status");
}

/* Count /dev/shm/farpool.PID.* objects; the mode of the last one in *@mode_p. */
static unsigned stats_objects(mode_t *mode_p)
{
    char prefix[64];
    unsigned n = 0;
    struct dirent *de;
    DIR *dir = opendir("/dev/shm");

    assert_non_null(dir);
    snprintf(prefix, sizeof(prefix), FP_STATS_PREFIX "%d.", (int)getpid());
    while ((de = readdir(dir)) != NULL) {
        char path[300];
        struct stat st;

        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
            continue;
        snprintf(path, sizeof(path), "/dev/shm/%s", de->d_name);
        assert_int_equal(stat(path, &st), 0);
        if (mode_p != NULL)
            *mode_p = st.st_mode & 07777;
        n++;
    }
    closedir(dir);
    return n;
}

/* Stats fill what the caller's struct holds, no more; each mapping has its own 0600 object. */
static void test_stats_size_and_objects(void **state)
{
    farpool_context_t *a, *b;
    farpool_region_t *ra, *rb;
    farpool_stats_t st;
    uint8_t big[sizeof(farpool_stats_t) + 64];
    uint8_t *p;
    mode_t mode = 0;
    size_t small = offsetof(farpool_stats_t, blocks_fetched);

    (void)state;
    assert_int_equal(context_new(daemon_.addr, FARPOOL_LOG_WARN, NULL, &a), FP_OK);
    assert_int_equal(context_new(daemon_.addr, FARPOOL_LOG_WARN, NULL, &b), FP_OK);
    assert_int_equal(farpool_region_create(a, "ctx-stats", 4 << 20, 64 << 10, &ra), FP_OK);
    assert_int_equal(farpool_region_open(b, "ctx-stats", FARPOOL_REGION_READONLY, &rb), FP_OK);
    assert_int_equal(stats_objects(NULL), 0);
    assert_int_equal(farpool_map(ra, (void **)&p), FP_OK);
    p[100] = 1; /* one fault, one block fetched */
    assert_int_equal(farpool_map(rb, (void **)&p), FP_OK);
    assert_int_equal(stats_objects(&mode), 2); /* one region name, two objects */
    assert_int_equal(mode, 0600);

    /* An older caller's smaller struct: the bytes after it are not touched. */
    memset(big, 0xee, sizeof(big));
    assert_int_equal(farpool_region_stats(ra, (farpool_stats_t *)(void *)big, small), FP_OK);
    assert_int_equal(((farpool_stats_t *)(void *)big)->faults, 1);
    for (size_t i = small; i < sizeof(big); i++)
        assert_int_equal(big[i], 0xee);
    /* A newer caller's larger struct: zeros past what this library knows. */
    assert_int_equal(farpool_region_stats(ra, (farpool_stats_t *)(void *)big, sizeof(big)), FP_OK);
    assert_int_equal(((farpool_stats_t *)(void *)big)->blocks_fetched, 1);
    for (size_t i = sizeof(farpool_stats_t); i < sizeof(big); i++)
        assert_int_equal(big[i], 0);
    assert_int_equal(farpool_region_stats(ra, &st, 0), FP_ERR_INVALID_PARAM);
    assert_int_equal(farpool_region_stats(ra, NULL, sizeof(st)), FP_ERR_INVALID_PARAM);

    assert_int_equal(farpool_unmap(ra), FP_OK);
    assert_int_equal(stats_objects(NULL), 1);
    farpool_region_close(rb);
    assert_int_equal(stats_objects(NULL), 0);
    /* Still open elsewhere in this context: a clear "in use". */
    assert_int_equal(farpool_region_delete(a, "ctx-stats"), FP_ERR_IN_USE);
    farpool_region_close(ra);
    assert_int_equal(farpool_region_delete(a, "ctx-stats"), FP_OK);
    farpool_context_destroy(b);
    farpool_context_destroy(a);
}

/* The voluntary + involuntary context switches of this process's thread named @name; -1 if none. */
static long thread_switches(const char *name)
{
    char path[300], line[256];
    struct dirent *de;
    long total = -1;
    DIR *dir = opendir("/proc/self/task");

    assert_non_null(dir);
    while (total < 0 && (de = readdir(dir)) != NULL) {
        FILE *f;
        bool match = false;
        long v;

        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/status", de->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof(line), f) != NULL) {
            if (strncmp(line, "Name:", 5) == 0) {
                line[strcspn(line, "\n")] = '\0';
                match = strcmp(line + 5 + strspn(line + 5, " \t"), name) == 0;
            } else if (match && sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1) {
                total = total < 0 ? v : total + v;
            } else if (match && sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1) {
                total = total < 0 ? v : total + v;
            }
        }
        fclose(f);
    }
    closedir(dir);
    return total;
}

/*
 * An idle mapped region costs nothing: its fault thread sleeps without a
 * timeout (no polling for prefetch waits, spare pages or other regions'
 * needs), here with a writable and a read-only region of one context mapped,
 * blocks cached and a prefetch waited for, over 5 s without any access.
 */
static void test_idle_region_never_wakes(void **state)
{
    farpool_context_t *ctx;
    farpool_region_t *rw, *ro;
    volatile uint8_t *a, *b;
    long before_rw, before_ro, after_rw, after_ro;

    (void)state;
    assert_int_equal(context_new(daemon_.addr, FARPOOL_LOG_WARN, NULL, &ctx), FP_OK);
    assert_int_equal(farpool_region_create(ctx, "idle-rw", 8 << 20, 2 << 20, &rw), FP_OK);
    assert_int_equal(farpool_region_create(ctx, "idle-ro", 8 << 20, 2 << 20, &ro), FP_OK);
    farpool_region_close(ro);
    assert_int_equal(farpool_region_open(ctx, "idle-ro", FARPOOL_REGION_READONLY, &ro), FP_OK);
    assert_int_equal(farpool_map(rw, (void **)&a), FP_OK);
    assert_int_equal(farpool_map(ro, (void **)&b), FP_OK);
    a[0] = 1; /* a dirty block */
    (void)b[3 << 20];
    assert_int_equal(farpool_prefetch(ro, (const void *)b, 4 << 20), FP_OK);
    assert_int_equal(farpool_prefetch_wait(ro), FP_OK);
    assert_int_equal(farpool_release(ro, (const void *)b, 2 << 20), FP_OK); /* a spare page */
    /* Once both have settled (the last command's answer is not the end of its
     * turn of the loop): the same counts 100 ms apart, at most 5 s. */
    before_rw = before_ro = -2;
    for (int i = 0; i < 50; i++) {
        long rw_now = thread_switches("fp:idle-rw"), ro_now = thread_switches("fp:idle-ro");

        if (rw_now == before_rw && ro_now == before_ro)
            break;
        before_rw = rw_now;
        before_ro = ro_now;
        usleep(100 * 1000);
    }
    assert_true(before_rw >= 0 && before_ro >= 0);
    sleep(5);
    after_rw = thread_switches("fp:idle-rw");
    after_ro = thread_switches("fp:idle-ro");
    fprintf(stderr, "idle 5 s: fault threads switched %ld and %ld times\n", after_rw - before_rw,
            after_ro - before_ro);
    assert_int_equal(after_rw - before_rw, 0);
    assert_int_equal(after_ro - before_ro, 0);
    assert_int_equal(a[0], 1);
    farpool_region_close(rw);
    farpool_region_close(ro);
    assert_int_equal(farpool_region_delete(ctx, "idle-rw"), FP_OK);
    assert_int_equal(farpool_region_delete(ctx, "idle-ro"), FP_OK);
    farpool_context_destroy(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_callback_gets_errors),
        cmocka_unit_test(test_log_levels_are_per_context),
        cmocka_unit_test(test_env_level_is_read_per_context),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_stats_size_and_objects),
        cmocka_unit_test(test_idle_region_never_wakes),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
