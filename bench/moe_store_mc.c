/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench moe`: the memcached store, what an application that is
 * rewritten around a key-value store gets; see moe_store.h.
 *
 * The server is a real memcached, started here on 127.0.0.1 with a port that
 * was free a moment ago (retried with another if it loses the race):
 *   memcached -l 127.0.0.1 -p PORT -U 0 -m MB -I 2m -t 2 -c 64 -M -L [-u root]
 * -m holds every expert with room to spare (1 MiB items cost 0.6% more than
 * their values, measured), -I 2m lets 1 MiB items in (an item is its value
 * plus a header), -M makes a full cache refuse a store instead of evicting
 * silently, -L reserves the memory with huge pages (still touched lazily; the
 * fill runs 2.7x faster than with 4 KiB pages), -u root only when running as
 * root (memcached refuses root otherwise). It is stopped (SIGTERM, then SIGKILL) when the
 * store is destroyed and on any exit of the benchmark.
 *
 * Expert e is stored as 1 MiB items with keys "e<e>.<chunk>". A load fetches
 * them with libmemcached's multi-get (memcached_mget, then memcached_fetch_result
 * until the end), MGET_KEYS keys per request, and copies each value into the
 * expert's slot; every chunk is checked (key, length, none missing or twice).
 */
#include "moe_store.h"

#include <inttypes.h>
#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"
#include "moe_proc.h"
#include "moe_slots.h"
#include "moe_trace.h"

#define ITEM_SIZE      MIB  /* bytes per memcached item */
#define MGET_KEYS      256u /* keys per multi-get */
#define KEY_MAX        32
#define START_TRIES    5
#define START_MS       10000
#define IO_TIMEOUT_MS  10000
#define SERVER_SPARE   (64 * MIB) /* memcached's -m beyond the experts' bytes... */
#define SERVER_PERCENT 2          /* ...and this much per hundred (measured: 0.6%) */

typedef struct mc_store {
    moe_store_t base;
    memcached_st *mc;
    memcached_st *fill[MOE_FILL_THREADS]; /* one connection per fill thread ([0] is mc) */
    memcached_result_st result;
    bool result_ok;
    moe_slots_t slots;
    uint64_t moved; /* value bytes fetched this run */
    char keys[MGET_KEYS][KEY_MAX];
    const char *key_ptr[MGET_KEYS];
    size_t key_len[MGET_KEYS];
    uint8_t got[MGET_KEYS];
} mc_store_t;

uint64_t moe_store_mc_server_bytes(uint64_t bytes)
{
    return bytes + bytes / 100 * SERVER_PERCENT + SERVER_SPARE;
}

/* Start memcached; its port in *@port_p. */
static fp_status_t mc_server_start(const char *path, uint64_t bytes, pid_t *pid_p, uint16_t *port_p)
{
    char port_s[16], mb_s[32];
    char *argv[] = {(char *)path, "-l", "127.0.0.1", "-p", port_s, "-U", "0",  "-m", mb_s, "-I",
                    "2m",         "-t", "2",         "-c", "64",   "-M", "-L", NULL, NULL, NULL};
    fp_status_t status = FP_ERR_IO;

    if (geteuid() == 0) {
        argv[17] = "-u";
        argv[18] = "root";
    }
    snprintf(mb_s, sizeof(mb_s), "%" PRIu64, (uint64_t)(moe_store_mc_server_bytes(bytes) / MIB));
    for (unsigned attempt = 0; attempt < START_TRIES; attempt++) {
        uint16_t port;
        pid_t pid;

        status = moe_free_port(&port);
        if (status != FP_OK)
            return status;
        snprintf(port_s, sizeof(port_s), "%u", port);
        status = moe_child_spawn(argv, &pid);
        if (status != FP_OK)
            return status;
        status = moe_wait_listening(port, pid, START_MS);
        if (status == FP_OK) {
            *pid_p = pid;
            *port_p = port;
            return FP_OK;
        }
        moe_child_stop(pid);
        if (status == FP_ERR_TIMED_OUT) {
            moe_err("memcached (%s) did not listen on 127.0.0.1:%u within %d ms", path, port,
                    START_MS);
            return status;
        }
        /* It exited: the port was taken meanwhile, or memcached cannot run at all. */
    }
    moe_err("memcached (%s -m %s -I 2m) exited at start %d times; is it installed "
            "(use --memcached PATH)?",
            path, mb_s, START_TRIES);
    return status;
}

static size_t mc_key(char *buf, unsigned e, uint64_t chunk)
{
    return (size_t)snprintf(buf, KEY_MAX, "e%u.%" PRIu64, e, chunk);
}

/* Store expert @e as 1 MiB items, on fill connection @thread. */
static fp_status_t mc_fill_one(void *arg, unsigned thread, moe_pattern_t *pat, uint8_t *scratch,
                               unsigned e)
{
    mc_store_t *m = arg;
    memcached_st *mc = m->fill[thread];

    for (uint64_t c = 0; c < m->base.size / ITEM_SIZE; c++) {
        char key[KEY_MAX];
        size_t klen = mc_key(key, e, c);
        memcached_return_t rc;

        moe_pattern_fill(pat, e, c * ITEM_SIZE, scratch, ITEM_SIZE);
        rc = memcached_set(mc, key, klen, (const char *)scratch, ITEM_SIZE, 0, 0);
        if (rc != MEMCACHED_SUCCESS) {
            moe_err("memcached refused to store %s (1 MiB): %s", key,
                    memcached_last_error_message(mc));
            return FP_ERR_IO;
        }
    }
    return FP_OK;
}

/* Store every expert, on MOE_FILL_THREADS connections at once. */
static fp_status_t mc_fill(mc_store_t *m)
{
    fp_status_t status = FP_OK;

    m->fill[0] = m->mc;
    for (unsigned i = 1; i < MOE_FILL_THREADS; i++) {
        m->fill[i] = memcached_clone(NULL, m->mc);
        if (m->fill[i] == NULL) {
            moe_err("out of memory (libmemcached)");
            status = FP_ERR_NO_MEMORY;
        }
    }
    if (status == FP_OK)
        status = moe_fill_experts(m->base.experts, ITEM_SIZE, mc_fill_one, m);
    for (unsigned i = 1; i < MOE_FILL_THREADS; i++) {
        if (m->fill[i] != NULL)
            memcached_free(m->fill[i]);
        m->fill[i] = NULL;
    }
    return status;
}

static fp_status_t mc_run_begin(moe_store_t *s)
{
    mc_store_t *m = (mc_store_t *)s;

    moe_slots_reset(&m->slots);
    m->moved = 0;
    return FP_OK;
}

/* Fetch chunks [@c0, @c0 + @n) of expert @e into @buf with one multi-get. */
static fp_status_t mc_mget(mc_store_t *m, unsigned e, uint64_t c0, unsigned n, uint8_t *buf)
{
    memcached_return_t rc;
    unsigned got = 0;

    for (unsigned i = 0; i < n; i++) {
        m->key_len[i] = mc_key(m->keys[i], e, c0 + i);
        m->key_ptr[i] = m->keys[i];
        m->got[i] = 0;
    }
    rc = memcached_mget(m->mc, m->key_ptr, m->key_len, n);
    if (rc != MEMCACHED_SUCCESS) {
        moe_err("memcached multi-get of expert %u: %s", e, memcached_last_error_message(m->mc));
        return FP_ERR_IO;
    }
    for (;;) {
        memcached_result_st *r = memcached_fetch_result(m->mc, &m->result, &rc);
        char key[KEY_MAX];
        size_t klen;
        unsigned ke;
        uint64_t kc;

        if (r == NULL)
            break;
        klen = memcached_result_key_length(r);
        if (klen >= KEY_MAX) {
            moe_err("memcached returned an unexpected key while loading expert %u", e);
            return FP_ERR_PROTOCOL;
        }
        memcpy(key, memcached_result_key_value(r), klen);
        key[klen] = '\0';
        if (sscanf(key, "e%u.%" SCNu64, &ke, &kc) != 2 || ke != e || kc < c0 || kc >= c0 + n ||
            m->got[kc - c0] || memcached_result_length(r) != ITEM_SIZE) {
            moe_err("memcached returned %s (%zu bytes) while loading expert %u, chunks %" PRIu64
                    "-%" PRIu64,
                    key, memcached_result_length(r), e, c0, c0 + n - 1);
            return FP_ERR_PROTOCOL;
        }
        memcpy(buf + (kc - c0) * ITEM_SIZE, memcached_result_value(r), ITEM_SIZE);
        m->got[kc - c0] = 1;
        got++;
    }
    if (rc != MEMCACHED_END && rc != MEMCACHED_SUCCESS && rc != MEMCACHED_NOTFOUND) {
        moe_err("memcached multi-get of expert %u: %s", e, memcached_strerror(m->mc, rc));
        return FP_ERR_IO;
    }
    if (got != n) {
        moe_err("memcached lost %u of the %u chunks asked for of expert %u (evicted?)", n - got, n,
                e);
        return FP_ERR_IO;
    }
    m->moved += (uint64_t)n * ITEM_SIZE;
    return FP_OK;
}

static fp_status_t mc_load(moe_store_t *s, unsigned e)
{
    mc_store_t *m = (mc_store_t *)s;
    uint8_t *buf = moe_slots_take(&m->slots, e);
    uint64_t chunks = s->size / ITEM_SIZE;

    if (buf == NULL)
        return FP_ERR_NO_SPACE;
    for (uint64_t c0 = 0; c0 < chunks; c0 += MGET_KEYS) {
        unsigned n = chunks - c0 < MGET_KEYS ? (unsigned)(chunks - c0) : MGET_KEYS;
        fp_status_t status = mc_mget(m, e, c0, n, buf + c0 * ITEM_SIZE);

        if (status != FP_OK)
            return status;
    }
    return FP_OK;
}

static fp_status_t mc_unload(moe_store_t *s, unsigned e)
{
    moe_slots_give(&((mc_store_t *)s)->slots, e);
    return FP_OK;
}

static const void *mc_expert(moe_store_t *s, unsigned e)
{
    return moe_slots_get(&((mc_store_t *)s)->slots, e);
}

static void mc_sample(moe_store_t *s, moe_io_t *io_p)
{
    memset(io_p, 0, sizeof(*io_p));
    io_p->bytes_moved = ((mc_store_t *)s)->moved;
}

static fp_status_t mc_run_end(moe_store_t *s, moe_io_t *io_p)
{
    mc_sample(s, io_p);
    return FP_OK;
}

static void mc_destroy(moe_store_t *s)
{
    mc_store_t *m = (mc_store_t *)s;

    if (m->result_ok)
        memcached_result_free(&m->result);
    if (m->mc != NULL)
        memcached_free(m->mc);
    moe_child_stop(s->server);
    moe_slots_cleanup(&m->slots);
    free(m);
}

static const moe_store_ops_t mc_ops = {
    .run_begin = mc_run_begin,
    .load = mc_load,
    .unload = mc_unload,
    .hint = NULL,
    .expert = mc_expert,
    .sample = mc_sample,
    .run_end = mc_run_end,
    .destroy = mc_destroy,
};

fp_status_t moe_store_mc_create(const char *path, unsigned experts, uint64_t size, unsigned slots,
                                moe_store_t **s_p)
{
    mc_store_t *m = calloc(1, sizeof(*m));
    fp_status_t status;
    uint16_t port;
    pid_t pid;

    if (m == NULL) {
        moe_err("out of memory");
        return FP_ERR_NO_MEMORY;
    }
    m->base = (moe_store_t){&mc_ops, experts, slots, size, -1};
    if (size % ITEM_SIZE != 0) {
        moe_err("internal: expert size %" PRIu64 " is not a multiple of 1 MiB", size);
        free(m);
        return FP_ERR_INVALID_PARAM;
    }
    status = mc_server_start(path, (uint64_t)experts * size, &pid, &port);
    if (status != FP_OK) {
        free(m);
        return status;
    }
    m->base.server = pid;
    m->mc = memcached_create(NULL);
    if (m->mc == NULL || memcached_result_create(m->mc, &m->result) == NULL) {
        moe_err("out of memory (libmemcached)");
        mc_destroy(&m->base);
        return FP_ERR_NO_MEMORY;
    }
    m->result_ok = true;
    memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_TCP_NODELAY, 1);
    memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, IO_TIMEOUT_MS);
    memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_POLL_TIMEOUT, IO_TIMEOUT_MS);
    memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_RCV_TIMEOUT, IO_TIMEOUT_MS * 1000ull);
    memcached_behavior_set(m->mc, MEMCACHED_BEHAVIOR_SND_TIMEOUT, IO_TIMEOUT_MS * 1000ull);
    if (memcached_server_add(m->mc, "127.0.0.1", port) != MEMCACHED_SUCCESS) {
        moe_err("libmemcached: cannot add server 127.0.0.1:%u: %s", port,
                memcached_last_error_message(m->mc));
        mc_destroy(&m->base);
        return FP_ERR_IO;
    }
    status = mc_fill(m);
    if (status == FP_OK)
        status = moe_slots_init(&m->slots, experts, slots, size);
    if (status != FP_OK) {
        mc_destroy(&m->base);
        return status;
    }
    *s_p = &m->base;
    return FP_OK;
}
