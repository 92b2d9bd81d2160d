/* SPDX-License-Identifier: MIT */
/*
 * Tests of the etcd client's watches (src/common/etcd.c), on a real etcd
 * started for the test program (tests/common/etcd_server.h), under a fresh
 * prefix per test: a change made while a watch waits ends it, one made
 * before it (since its start revision) ends it at once, a delete is a
 * change, and a wait with no change runs out; the pool's service key is
 * waited for as it goes and as it comes; an etcd that is not there, or that
 * goes away during a watch, is FP_ERR_IO, and the client works after it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/etcd.h"
#include "common/etcd_server.h"
#include "common/time.h"

#define LONG_WAIT_MS  30000 /* a watch that must end by a change long before */
#define SHORT_WAIT_MS 300   /* a watch that must run out */

static fp_test_etcd_t etcd;
static unsigned prefixes;

typedef struct env {
    char url[256];
    char key[FP_ETCD_PREFIX_MAX + 64];
    char service[FP_ETCD_PREFIX_MAX + 64];
    fp_etcd_t *client;
} env_t;

static int group_setup(void **state)
{
    (void)state;
    if (!fp_test_etcd_available()) {
        print_message("skipped: no %s (Debian's etcd-server)\n", FP_TEST_ETCD_BIN);
        exit(77);
    }
    return fp_test_etcd_start("etcd-watch", &etcd) == FP_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    fp_test_etcd_stop(&etcd);
    return 0;
}

static int env_setup(void **state)
{
    env_t *env = calloc(1, sizeof(*env));
    char prefix[32];

    if (env == NULL)
        return -1;
    snprintf(prefix, sizeof(prefix), "w%u", prefixes++);
    fp_test_etcd_url(&etcd, prefix, env->url, sizeof(env->url));
    snprintf(env->key, sizeof(env->key), "/%s/k", prefix);
    snprintf(env->service, sizeof(env->service), "/%s/%s", prefix, FP_ETCD_SERVICE_KEY);
    if (fp_etcd_open(env->url, 0, NULL, &env->client) != FP_OK) {
        free(env);
        return -1;
    }
    *state = env;
    return 0;
}

static int env_teardown(void **state)
{
    env_t *env = *state;

    fp_etcd_close(env->client);
    free(env);
    return 0;
}

/* Put (or delete) @key with a client of its own. */
static void change(const char *url, const char *key, bool put)
{
    fp_etcd_op_t op = {.type = put ? FP_ETCD_PUT : FP_ETCD_DELETE,
                       .key = key,
                       .value = "127.0.0.1:7000",
                       .value_len = put ? 14 : 0};
    fp_etcd_t *other = NULL;
    bool ok = false;

    assert_int_equal(fp_etcd_open(url, 0, NULL, &other), FP_OK);
    assert_int_equal(fp_etcd_txn(other, NULL, 0, &op, 1, &ok), FP_OK);
    assert_true(ok);
    fp_etcd_close(other);
}

/* The cluster's revision now (a read of @key, there or not). */
static int64_t revision_now(env_t *env, const char *key)
{
    fp_etcd_kv_t kv = {0};
    fp_status_t status = fp_etcd_get(env->client, key, &kv);

    assert_true(status == FP_OK || status == FP_ERR_NO_ENTRY);
    fp_etcd_kv_clear(&kv);
    return fp_etcd_revision(env->client);
}

typedef struct changer {
    const char *url, *key;
    bool put;
    int delay_ms;
} changer_t;

static void *changer_main(void *arg)
{
    changer_t *c = arg;

    usleep((useconds_t)c->delay_ms * 1000);
    change(c->url, c->key, c->put);
    return NULL;
}

/* A change made while the watch waits ends it, long before its wait runs out. */
static void test_watch_sees_a_put(void **state)
{
    env_t *env = *state;
    changer_t c = {.url = env->url, .key = env->key, .put = true, .delay_ms = 200};
    int64_t rev = revision_now(env, env->key);
    uint64_t t0 = fp_time_ns();
    pthread_t th;
    bool changed = false;

    assert_int_equal(pthread_create(&th, NULL, changer_main, &c), 0);
    assert_int_equal(fp_etcd_watch(env->client, env->key, rev + 1, LONG_WAIT_MS, &changed), FP_OK);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(changed);
    print_message("the watch ended %.0f ms after it began (the put came after 200 ms)\n",
                  (double)(fp_time_ns() - t0) / 1e6);
    /* The client still answers after the transfer it cut. */
    assert_true(revision_now(env, env->key) > rev);
}

/* A change since the start revision, made before the watch: seen at once; a delete too. */
static void test_watch_sees_past_changes(void **state)
{
    env_t *env = *state;
    int64_t rev = revision_now(env, env->key);
    bool changed = false;

    change(env->url, env->key, true);
    assert_int_equal(fp_etcd_watch(env->client, env->key, rev + 1, LONG_WAIT_MS, &changed), FP_OK);
    assert_true(changed);
    rev = revision_now(env, env->key);
    change(env->url, env->key, false);
    changed = false;
    assert_int_equal(fp_etcd_watch(env->client, env->key, rev + 1, LONG_WAIT_MS, &changed), FP_OK);
    assert_true(changed);
}

/* No change: the wait runs out, and says so; other keys' changes do not count. */
static void test_watch_runs_out(void **state)
{
    env_t *env = *state;
    char other[sizeof(env->key) + 8];
    int64_t rev;
    bool changed = true;

    snprintf(other, sizeof(other), "%s2", env->key);
    change(env->url, other, true);
    rev = revision_now(env, env->key);
    change(env->url, other, false);
    assert_int_equal(fp_etcd_watch(env->client, env->key, rev + 1, SHORT_WAIT_MS, &changed), FP_OK);
    assert_false(changed);
    assert_int_equal(fp_etcd_watch(env->client, NULL, rev, SHORT_WAIT_MS, &changed),
                     FP_ERR_INVALID_PARAM);
    assert_int_equal(fp_etcd_watch(env->client, env->key, rev, 0, &changed), FP_ERR_INVALID_PARAM);
}

/* The service key awaited as it comes, and as it goes; each at once where it is so already. */
static void test_service_wait(void **state)
{
    env_t *env = *state;
    changer_t c = {.url = env->url, .key = env->service, .put = true, .delay_ms = 200};
    pthread_t th;

    assert_int_equal(fp_etcd_service_wait(env->url, NULL, true, SHORT_WAIT_MS), FP_OK); /* none */
    assert_int_equal(fp_etcd_service_wait(env->url, NULL, false, SHORT_WAIT_MS), FP_ERR_TIMED_OUT);
    assert_int_equal(pthread_create(&th, NULL, changer_main, &c), 0);
    assert_int_equal(fp_etcd_service_wait(env->url, NULL, false, LONG_WAIT_MS), FP_OK);
    assert_int_equal(pthread_join(th, NULL), 0);

    assert_int_equal(fp_etcd_service_wait(env->url, NULL, false, SHORT_WAIT_MS), FP_OK); /* held */
    assert_int_equal(fp_etcd_service_wait(env->url, NULL, true, SHORT_WAIT_MS), FP_ERR_TIMED_OUT);
    c.put = false;
    assert_int_equal(pthread_create(&th, NULL, changer_main, &c), 0);
    assert_int_equal(fp_etcd_service_wait(env->url, NULL, true, LONG_WAIT_MS), FP_OK);
    assert_int_equal(pthread_join(th, NULL), 0);
}

/* Nobody at the endpoint: FP_ERR_IO at once, not a wait. */
static void test_watch_unreachable(void **state)
{
    char url[128];
    fp_etcd_t *client = NULL;
    uint64_t t0;
    bool changed = true;

    (void)state;
    snprintf(url, sizeof(url), "etcd://127.0.0.1:%d/w", fp_test_free_port());
    assert_int_equal(fp_etcd_open(url, 0, NULL, &client), FP_OK);
    t0 = fp_time_ns();
    assert_int_equal(fp_etcd_watch(client, "/w/k", 1, LONG_WAIT_MS, &changed), FP_ERR_IO);
    assert_false(changed);
    assert_true(fp_time_ns() - t0 < (uint64_t)LONG_WAIT_MS * FP_NS_PER_MS / 2);
    assert_int_equal(fp_etcd_service_wait(url, NULL, false, LONG_WAIT_MS), FP_ERR_IO);
    fp_etcd_close(client);
}

typedef struct killer {
    int delay_ms;
} killer_t;

static void *killer_main(void *arg)
{
    killer_t *k = arg;

    usleep((useconds_t)k->delay_ms * 1000);
    fp_test_etcd_kill(&etcd);
    return NULL;
}

/* etcd killed during a watch: FP_ERR_IO, not a wait to the end; after its restart the client works.
 */
static void test_watch_etcd_killed(void **state)
{
    env_t *env = *state;
    killer_t k = {.delay_ms = 300};
    int64_t rev = revision_now(env, env->key);
    uint64_t t0 = fp_time_ns();
    pthread_t th;
    bool changed = true;

    assert_int_equal(pthread_create(&th, NULL, killer_main, &k), 0);
    assert_int_equal(fp_etcd_watch(env->client, env->key, rev + 1, LONG_WAIT_MS, &changed),
                     FP_ERR_IO);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_false(changed);
    assert_true(fp_time_ns() - t0 < (uint64_t)LONG_WAIT_MS * FP_NS_PER_MS / 2);
    assert_int_equal(fp_test_etcd_restart("etcd-watch", &etcd), FP_OK);
    change(env->url, env->key, true);
    changed = false;
    assert_int_equal(fp_etcd_watch(env->client, env->key, rev + 1, LONG_WAIT_MS, &changed), FP_OK);
    assert_true(changed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_watch_sees_a_put, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_watch_sees_past_changes, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_watch_runs_out, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_service_wait, env_setup, env_teardown),
        cmocka_unit_test(test_watch_unreachable),
        cmocka_unit_test_setup_teardown(test_watch_etcd_killed, env_setup, env_teardown),
    };

    return cmocka_run_group_tests_name("etcd", tests, group_setup, group_teardown);
}
