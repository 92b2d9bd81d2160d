/* SPDX-License-Identifier: MIT */
/*
 * Integration tests of named regions (src/client/region_meta.c over the
 * REGION_* operations of farpoold) against a real daemon on loopback.
 *
 * Covered: create, then open from a connection of another client key, which
 * reads and writes the region's slabs (bytes checked with the pattern
 * detector, keyed by region id and region offset); refusal of connections
 * that did not open the region, even with the creator's key, and of
 * SLAB_FREE on a region's slab; a region surviving every client; duplicate
 * names; invalid names, sizes and granules; a region too large for the free
 * space (nothing leaks); delete (the name, the id and the slabs all go, the
 * memory is returned, a re-created region is not reachable through the old
 * id); 100 slabs and a slab list of 1100 ids (three REGION_SLABS pages); the
 * per-connection limit of open regions; the node's limit of 4096 regions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <farpool/farpool.h>

#include "client/node.h"
#include "client/region_meta.h"
#include "common/daemon.h"
#include "common/pattern.h"
#include "proto/proto.h"

#define KiB            (1ull << 10)
#define SLAB           (64 * KiB)
#define CAPACITY       (8ull << 20) /* the group daemon's */
#define API_TIMEOUT_MS 5000
#define CONN_REGIONS   64   /* regions one connection may have open (server.c) */
#define TABLE_MAX      4096 /* regions one node holds (region.h) */

/* Client keys: exactly 16 bytes each (the literal's NUL is not copied). */
#define KEY_A "region-key-A0001"
#define KEY_B "region-key-B0002"
#define KEY_C "region-key-C0003"

typedef struct env {
    fp_test_daemon_t d;
} env_t;

/* ---- helpers ---- */

static farpool_node_t *connect_key(const fp_test_daemon_t *d, const char *key)
{
    farpool_node_params_t p;
    farpool_node_t *node = NULL;
    fp_status_t status;

    memset(&p, 0, sizeof(p));
    p.field_mask = FARPOOL_NODE_PARAM_TIMEOUT;
    p.timeout_ms = API_TIMEOUT_MS;
    if (key != NULL) {
        p.field_mask |= FARPOOL_NODE_PARAM_CLIENT_KEY;
        memcpy(p.client_key, key, sizeof(p.client_key));
    }
    status = farpool_node_connect(d->addr, &p, &node);
    if (status != FP_OK)
        fail_msg("cannot connect to %s: %s", d->addr, fp_status_string(status));
    return node;
}

static farpool_node_stats_t stats_of(farpool_node_t *node)
{
    farpool_node_stats_t st;
    fp_status_t status = farpool_node_stats(node, &st, sizeof(st));

    if (status != FP_OK)
        fail_msg("STATS: %s", fp_status_string(status));
    return st;
}

#define EXPECT_STATUS(call, want)                                                                  \
    do {                                                                                           \
        fp_status_t got_ = (call);                                                                 \
        if (got_ != (want))                                                                        \
            fail_msg("%s: got %d (%s), expected %d (%s)", #call, (int)got_,                        \
                     fp_status_string(got_), (int)(want), fp_status_string(want));                 \
    } while (0)

static void create_ok(farpool_node_t *node, const char *name, uint64_t size, uint32_t granule,
                      uint32_t flags, fp_region_info_t *info)
{
    EXPECT_STATUS(fp_region_meta_create(node, name, size, granule, flags, info), FP_OK);
    assert_int_not_equal(info->id, 0);
    assert_int_equal(info->size, size);
    assert_int_equal(info->granule, granule);
    assert_int_equal(info->flags, flags);
    assert_int_equal(info->slab_size, SLAB);
    assert_int_equal(info->nslabs, (size + SLAB - 1) / SLAB);
    assert_non_null(info->slabs);
    for (uint32_t i = 0; i < info->nslabs; i++) {
        assert_int_not_equal(info->slabs[i], 0);
        for (uint32_t j = 0; j < i; j++)
            assert_int_not_equal(info->slabs[i], info->slabs[j]);
    }
}

static void open_ok(farpool_node_t *node, const char *name, const fp_region_info_t *want,
                    fp_region_info_t *info)
{
    EXPECT_STATUS(fp_region_meta_open(node, name, info), FP_OK);
    assert_int_equal(info->id, want->id);
    assert_int_equal(info->size, want->size);
    assert_int_equal(info->granule, want->granule);
    assert_int_equal(info->flags, want->flags);
    assert_int_equal(info->slab_size, want->slab_size);
    assert_int_equal(info->nslabs, want->nslabs);
    assert_memory_equal(info->slabs, want->slabs, want->nslabs * sizeof(uint64_t));
}

/* Bytes of the region held by slab @i. */
static uint64_t slab_bytes(const fp_region_info_t *info, uint32_t i)
{
    uint64_t off = (uint64_t)i * info->slab_size;

    return info->size - off < info->slab_size ? info->size - off : info->slab_size;
}

/* Write the whole region with the pattern of @version, slab by slab. */
static void region_fill(farpool_node_t *node, const fp_region_info_t *info, uint32_t version)
{
    uint8_t *buf = malloc(info->slab_size);

    assert_non_null(buf);
    for (uint32_t i = 0; i < info->nslabs; i++) {
        uint64_t len = slab_bytes(info, i);

        fp_pattern_fill(buf, len, info->id, (uint64_t)i * info->slab_size, version);
        EXPECT_STATUS(farpool_slab_write(node, info->slabs[i], 0, buf, len), FP_OK);
    }
    free(buf);
}

/* Read the whole region back and check the pattern of @version. */
static void region_check(farpool_node_t *node, const fp_region_info_t *info, uint32_t version)
{
    uint8_t *buf = malloc(info->slab_size);

    assert_non_null(buf);
    for (uint32_t i = 0; i < info->nslabs; i++) {
        uint64_t len = slab_bytes(info, i);

        memset(buf, 0, len);
        EXPECT_STATUS(farpool_slab_read(node, info->slabs[i], 0, buf, len), FP_OK);
        FP_PATTERN_ASSERT(buf, len, info->id, (uint64_t)i * info->slab_size, version);
    }
    free(buf);
}

/* Every access by @node to the region's slabs is refused with @want. */
static void region_refused(farpool_node_t *node, const fp_region_info_t *info, fp_status_t want)
{
    uint8_t buf[64];

    memset(buf, 0x5a, sizeof(buf));
    for (uint32_t i = 0; i < info->nslabs; i++) {
        EXPECT_STATUS(farpool_slab_read(node, info->slabs[i], 0, buf, sizeof(buf)), want);
        EXPECT_STATUS(farpool_slab_write(node, info->slabs[i], 8, buf, sizeof(buf)), want);
    }
}

/* REGION_SLABS by hand: @count ids from @first of region @id. */
static fp_status_t raw_slabs(farpool_node_t *node, uint64_t id, uint32_t first, uint32_t count,
                             uint64_t *ids)
{
    uint8_t req[FP_PROTO_REGION_SLABS_REQ_SIZE], rsp[FP_PROTO_REGION_SLABS_MAX * 8];
    fp_proto_region_slabs_req_t r = {id, first, count};
    uint32_t len = 0;
    fp_status_t status;

    fp_proto_region_slabs_req_encode(&r, req);
    status = fp_node_call(node, FP_OP_REGION_SLABS, req, sizeof(req), rsp, sizeof(rsp), &len);
    if (status == FP_OK)
        status = fp_proto_region_slabs_rep_decode(rsp, len, count, ids);
    return status;
}

/* ---- tests on the group's daemon (64 KiB slabs, 8 MiB) ---- */

/* Create, open with another key, read and write from both; others are refused. */
static void test_share_between_keys(void **state)
{
    env_t *e = *state;
    farpool_node_t *a = connect_key(&e->d, KEY_A), *b = connect_key(&e->d, KEY_B);
    farpool_node_t *c = connect_key(&e->d, KEY_C), *a2 = connect_key(&e->d, KEY_A);
    fp_region_info_t ia, ib, ia2;
    uint64_t used0 = stats_of(a).used;
    const uint64_t size = 3 * SLAB + 1000;
    uint8_t part[5000];
    uint64_t ids[1];

    create_ok(a, "share.test_1", size, 4096, 0x5, &ia);
    assert_int_equal(stats_of(a).used, used0 + 4 * SLAB);
    region_fill(a, &ia, 1);

    open_ok(b, "share.test_1", &ia, &ib);
    region_check(b, &ib, 1);
    /* B writes across a slab boundary's neighbourhood; A sees it. */
    fp_pattern_fill(part, sizeof(part), ia.id, SLAB + 100, 2);
    EXPECT_STATUS(farpool_slab_write(b, ib.slabs[1], 100, part, sizeof(part)), FP_OK);
    memset(part, 0, sizeof(part));
    EXPECT_STATUS(farpool_slab_read(a, ia.slabs[1], 100, part, sizeof(part)), FP_OK);
    FP_PATTERN_ASSERT(part, sizeof(part), ia.id, SLAB + 100, 2);
    fp_pattern_fill(part, sizeof(part), ia.id, SLAB + 100, 1);
    EXPECT_STATUS(farpool_slab_write(a, ia.slabs[1], 100, part, sizeof(part)), FP_OK);

    /* C never opened it; A2 has the creator's key but did not open it either. */
    region_refused(c, &ia, FP_ERR_PERMISSION);
    region_refused(a2, &ia, FP_ERR_PERMISSION);
    /* A region's slab cannot be freed on its own, not even by its creator. */
    EXPECT_STATUS(farpool_slab_free(a, ia.slabs[0]), FP_ERR_PERMISSION);
    EXPECT_STATUS(farpool_slab_free(c, ia.slabs[0]), FP_ERR_PERMISSION);
    /* REGION_SLABS needs the region open. */
    EXPECT_STATUS(raw_slabs(c, ia.id, 0, 1, ids), FP_ERR_PERMISSION);
    region_check(b, &ib, 1); /* nothing changed */

    /* Once A2 opens it, the same key can. */
    open_ok(a2, "share.test_1", &ia, &ia2);
    region_check(a2, &ia2, 1);

    EXPECT_STATUS(fp_region_meta_delete(a, "share.test_1"), FP_OK);
    assert_int_equal(stats_of(a).used, used0);
    fp_region_info_cleanup(&ia);
    fp_region_info_cleanup(&ib);
    fp_region_info_cleanup(&ia2);
    assert_null(ia.slabs);
    fp_region_info_cleanup(NULL);
    farpool_node_close(a);
    farpool_node_close(b);
    farpool_node_close(c);
    farpool_node_close(a2);
}

/* A region outlives every client; a fresh connection finds its bytes by name. */
static void test_survives_disconnect(void **state)
{
    env_t *e = *state;
    farpool_node_t *a = connect_key(&e->d, KEY_A), *b = connect_key(&e->d, KEY_B), *d;
    fp_region_info_t ia, ib, id;
    uint64_t used;

    create_ok(a, "survivor", 5 * SLAB, 65536, 0, &ia);
    region_fill(a, &ia, 7);
    open_ok(b, "survivor", &ia, &ib);
    used = stats_of(a).used;
    farpool_node_close(a);
    farpool_node_close(b);

    d = connect_key(&e->d, NULL); /* a fresh random key */
    for (int i = 0; i < 200 && stats_of(d).clients != 1; i++)
        usleep(10000); /* until the node has seen the others go */
    assert_int_equal(stats_of(d).clients, 1);
    assert_int_equal(stats_of(d).used, used);
    open_ok(d, "survivor", &ia, &id);
    region_check(d, &id, 7);
    EXPECT_STATUS(fp_region_meta_delete(d, "survivor"), FP_OK);
    fp_region_info_cleanup(&ia);
    fp_region_info_cleanup(&ib);
    fp_region_info_cleanup(&id);
    farpool_node_close(d);
}

/* A taken name: FP_ERR_EXISTS, nothing allocated, the first region untouched. */
static void test_duplicate_name(void **state)
{
    env_t *e = *state;
    farpool_node_t *a = connect_key(&e->d, KEY_A), *b = connect_key(&e->d, KEY_B);
    fp_region_info_t ia, ib, ix;
    farpool_node_stats_t st;

    create_ok(a, "dup-name", 2 * SLAB, 4096, 1, &ia);
    region_fill(a, &ia, 3);
    st = stats_of(a);
    memset(&ix, 0x77, sizeof(ix));
    EXPECT_STATUS(fp_region_meta_create(b, "dup-name", 4 * SLAB, 8192, 0, &ix), FP_ERR_EXISTS);
    EXPECT_STATUS(fp_region_meta_create(a, "dup-name", 2 * SLAB, 4096, 1, &ix), FP_ERR_EXISTS);
    assert_int_equal(ix.nslabs, 0x77777777u); /* not written on failure */
    assert_int_equal(stats_of(a).used, st.used);
    assert_int_equal(stats_of(a).slabs, st.slabs);
    open_ok(b, "dup-name", &ia, &ib);
    region_check(b, &ib, 3);
    /* Names are case-sensitive: another name. */
    create_ok(b, "DUP-name", 1, 4096, 0, &ix);
    EXPECT_STATUS(fp_region_meta_delete(b, "DUP-name"), FP_OK);
    EXPECT_STATUS(fp_region_meta_delete(b, "dup-name"), FP_OK);
    fp_region_info_cleanup(&ia);
    fp_region_info_cleanup(&ib);
    fp_region_info_cleanup(&ix);
    farpool_node_close(a);
    farpool_node_close(b);
}

/* Invalid names, sizes and granules: FP_ERR_INVALID_PARAM, nothing created. */
static void test_bad_arguments(void **state)
{
    static const char *const bad_names[] = {
        "", "a/b", "a b", "caf\xc3\xa9", "tab\t", "new\nline", "semi;colon", "star*", "../up",
    };
    static const uint32_t bad_granules[] = {
        0, 1, 2048, 4095, 4097, 12288, 3u << 20, 4u << 20, 0x80000000u, UINT32_MAX,
    };
    env_t *e = *state;
    farpool_node_t *a = connect_key(&e->d, KEY_A);
    char longname[FP_REGION_NAME_MAX + 2];
    farpool_node_stats_t st = stats_of(a);
    fp_region_info_t info;

    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        EXPECT_STATUS(fp_region_meta_create(a, bad_names[i], SLAB, 4096, 0, &info),
                      FP_ERR_INVALID_PARAM);
        EXPECT_STATUS(fp_region_meta_open(a, bad_names[i], &info), FP_ERR_INVALID_PARAM);
        EXPECT_STATUS(fp_region_meta_delete(a, bad_names[i]), FP_ERR_INVALID_PARAM);
    }
    EXPECT_STATUS(fp_region_meta_create(a, NULL, SLAB, 4096, 0, &info), FP_ERR_INVALID_PARAM);
    EXPECT_STATUS(fp_region_meta_open(a, NULL, &info), FP_ERR_INVALID_PARAM);
    EXPECT_STATUS(fp_region_meta_create(a, "ok", SLAB, 4096, 0, NULL), FP_ERR_INVALID_PARAM);
    memset(longname, 'n', sizeof(longname));
    longname[FP_REGION_NAME_MAX + 1] = '\0'; /* 256 bytes */
    EXPECT_STATUS(fp_region_meta_create(a, longname, SLAB, 4096, 0, &info), FP_ERR_INVALID_PARAM);
    EXPECT_STATUS(fp_region_meta_open(a, longname, &info), FP_ERR_INVALID_PARAM);
    for (size_t i = 0; i < sizeof(bad_granules) / sizeof(bad_granules[0]); i++)
        EXPECT_STATUS(fp_region_meta_create(a, "granule", SLAB, bad_granules[i], 0, &info),
                      FP_ERR_INVALID_PARAM);
    EXPECT_STATUS(fp_region_meta_create(a, "size0", 0, 4096, 0, &info), FP_ERR_INVALID_PARAM);
    /* Checked by the node: more than its capacity. */
    EXPECT_STATUS(fp_region_meta_create(a, "huge", CAPACITY + 1, 4096, 0, &info),
                  FP_ERR_INVALID_PARAM);
    EXPECT_STATUS(fp_region_meta_create(a, "huge", UINT64_MAX, 4096, 0, &info),
                  FP_ERR_INVALID_PARAM);
    assert_int_equal(stats_of(a).slabs, st.slabs);
    assert_int_equal(stats_of(a).used, st.used);
    EXPECT_STATUS(fp_region_meta_open(a, "huge", &info), FP_ERR_NO_ENTRY);

    /* The edges that are valid: a 255-byte name, granules of 4 KiB and 2 MiB. */
    longname[FP_REGION_NAME_MAX] = '\0';
    longname[0] = '.';
    longname[1] = '_';
    longname[2] = '-';
    longname[3] = 'Z';
    longname[4] = '9';
    create_ok(a, longname, 1, 4096, 0, &info);
    fp_region_info_cleanup(&info);
    EXPECT_STATUS(fp_region_meta_delete(a, longname), FP_OK);
    create_ok(a, "granule-2M", 1, 2u << 20, 0, &info);
    fp_region_info_cleanup(&info);
    EXPECT_STATUS(fp_region_meta_delete(a, "granule-2M"), FP_OK);
    assert_int_equal(stats_of(a).used, st.used);
    farpool_node_close(a);
}

/* More than the free space: FP_ERR_NO_SPACE, every slab taken meanwhile given back. */
static void test_too_big(void **state)
{
    env_t *e = *state;
    farpool_node_t *a = connect_key(&e->d, KEY_A);
    farpool_node_stats_t before, after;
    fp_region_info_t info;
    uint64_t priv, size, free_bytes, extra;

    EXPECT_STATUS(farpool_slab_alloc(a, &priv, NULL), FP_OK); /* so that used > 0 */
    before = stats_of(a);
    free_bytes = before.capacity - before.used;
    assert_true(free_bytes + 1 <= CAPACITY);
    EXPECT_STATUS(fp_region_meta_create(a, "too.big", free_bytes + 1, 4096, 0, &info),
                  FP_ERR_NO_SPACE);
    after = stats_of(a);
    assert_int_equal(after.used, before.used);
    assert_int_equal(after.slabs, before.slabs);
    EXPECT_STATUS(fp_region_meta_open(a, "too.big", &info), FP_ERR_NO_ENTRY);

    /* Exactly the free space fits, and then the node is full. */
    size = free_bytes;
    create_ok(a, "too.big", size, 4096, 0, &info);
    assert_int_equal(stats_of(a).used, CAPACITY);
    EXPECT_STATUS(farpool_slab_alloc(a, &extra, NULL), FP_ERR_NO_SPACE);
    EXPECT_STATUS(fp_region_meta_create(a, "one.more", 1, 4096, 0, &info), FP_ERR_NO_SPACE);
    EXPECT_STATUS(fp_region_meta_delete(a, "too.big"), FP_OK);
    fp_region_info_cleanup(&info);
    assert_int_equal(stats_of(a).used, before.used);
    EXPECT_STATUS(farpool_slab_free(a, priv), FP_OK);
    farpool_node_close(a);
}

/* Delete: the name, the id and the slabs go; the memory comes back. */
static void test_delete(void **state)
{
    env_t *e = *state;
    farpool_node_t *a = connect_key(&e->d, KEY_A), *b = connect_key(&e->d, KEY_B);
    fp_region_info_t ia, ib, inew;
    uint64_t used, ids[4];
    uint8_t *buf;

    create_ok(a, "doomed", 3 * SLAB, 4096, 0, &ia);
    region_fill(a, &ia, 4);
    open_ok(b, "doomed", &ia, &ib);
    EXPECT_STATUS(raw_slabs(b, ib.id, 0, 3, ids), FP_OK);
    assert_memory_equal(ids, ia.slabs, 3 * sizeof(uint64_t));
    used = stats_of(a).used;

    EXPECT_STATUS(fp_region_meta_delete(a, "doomed"), FP_OK);
    assert_int_equal(stats_of(a).used, used - 3 * SLAB);
    EXPECT_STATUS(fp_region_meta_open(a, "doomed", &inew), FP_ERR_NO_ENTRY);
    EXPECT_STATUS(fp_region_meta_open(b, "doomed", &inew), FP_ERR_NO_ENTRY);
    EXPECT_STATUS(fp_region_meta_delete(b, "doomed"), FP_ERR_NO_ENTRY);
    /* B had it open: its slab ids and region id are dead. */
    region_refused(b, &ib, FP_ERR_NO_ENTRY);
    EXPECT_STATUS(raw_slabs(b, ib.id, 0, 1, ids), FP_ERR_NO_ENTRY);

    /* A new region of the same name is another region: the old id does not reach it. */
    create_ok(a, "doomed", 3 * SLAB, 4096, 0, &inew);
    assert_int_not_equal(inew.id, ia.id);
    region_refused(b, &inew, FP_ERR_PERMISSION);
    EXPECT_STATUS(raw_slabs(b, inew.id, 0, 1, ids), FP_ERR_PERMISSION);
    /* Its bytes are zeros, not the old region's. */
    buf = calloc(1, SLAB);
    assert_non_null(buf);
    for (uint32_t i = 0; i < inew.nslabs; i++) {
        uint8_t *got = malloc(SLAB);

        assert_non_null(got);
        EXPECT_STATUS(farpool_slab_read(a, inew.slabs[i], 0, got, SLAB), FP_OK);
        assert_memory_equal(got, buf, SLAB);
        free(got);
    }
    free(buf);
    EXPECT_STATUS(fp_region_meta_delete(b, "doomed"), FP_OK);
    assert_int_equal(stats_of(a).used, used - 3 * SLAB);
    fp_region_info_cleanup(&ia);
    fp_region_info_cleanup(&ib);
    fp_region_info_cleanup(&inew);
    farpool_node_close(a);
    farpool_node_close(b);
}

/* 100 slabs written through one connection, read through another. */
static void test_hundred_slabs(void **state)
{
    env_t *e = *state;
    farpool_node_t *a = connect_key(&e->d, KEY_A), *b = connect_key(&e->d, KEY_B);
    fp_region_info_t ia, ib;
    uint64_t used = stats_of(a).used, ids[FP_PROTO_REGION_SLABS_MAX];

    create_ok(a, "hundred", 100 * SLAB - 3, 16384, 0, &ia);
    assert_int_equal(ia.nslabs, 100);
    region_fill(a, &ia, 5);
    open_ok(b, "hundred", &ia, &ib);
    region_check(b, &ib, 5);
    /* Pages of the list at any offset; past the end is out of range. */
    EXPECT_STATUS(raw_slabs(b, ib.id, 37, 63, ids), FP_OK);
    assert_memory_equal(ids, ia.slabs + 37, 63 * sizeof(uint64_t));
    EXPECT_STATUS(raw_slabs(b, ib.id, 99, 1, ids), FP_OK);
    assert_int_equal(ids[0], ia.slabs[99]);
    EXPECT_STATUS(raw_slabs(b, ib.id, 37, 64, ids), FP_ERR_OUT_OF_RANGE);
    EXPECT_STATUS(raw_slabs(b, ib.id, 100, 1, ids), FP_ERR_OUT_OF_RANGE);
    EXPECT_STATUS(raw_slabs(b, ib.id, UINT32_MAX, FP_PROTO_REGION_SLABS_MAX, ids),
                  FP_ERR_OUT_OF_RANGE);
    EXPECT_STATUS(fp_region_meta_delete(b, "hundred"), FP_OK);
    assert_int_equal(stats_of(a).used, used);
    fp_region_info_cleanup(&ia);
    fp_region_info_cleanup(&ib);
    farpool_node_close(a);
    farpool_node_close(b);
}

/* At most 64 regions open per connection; deleted ones free their place. */
static void test_open_limit(void **state)
{
    env_t *e = *state;
    farpool_node_t *a = connect_key(&e->d, KEY_A), *b = connect_key(&e->d, KEY_B);
    fp_region_info_t info;
    farpool_node_stats_t st;
    char name[32];

    for (int i = 0; i < CONN_REGIONS; i++) {
        snprintf(name, sizeof(name), "limit.%d", i);
        create_ok(a, name, 1, 4096, 0, &info);
        fp_region_info_cleanup(&info);
    }
    /* Opening one it has open already takes no new place. */
    EXPECT_STATUS(fp_region_meta_open(a, "limit.3", &info), FP_OK);
    fp_region_info_cleanup(&info);
    st = stats_of(a);
    EXPECT_STATUS(fp_region_meta_create(a, "limit.64", 1, 4096, 0, &info), FP_ERR_NO_SPACE);
    assert_int_equal(stats_of(a).slabs, st.slabs);
    EXPECT_STATUS(fp_region_meta_open(b, "limit.64", &info), FP_ERR_NO_ENTRY);
    /* B creates it; A cannot open it, until one of A's is deleted. */
    create_ok(b, "limit.64", 1, 4096, 0, &info);
    fp_region_info_cleanup(&info);
    EXPECT_STATUS(fp_region_meta_open(a, "limit.64", &info), FP_ERR_NO_SPACE);
    EXPECT_STATUS(fp_region_meta_delete(b, "limit.0"), FP_OK);
    EXPECT_STATUS(fp_region_meta_open(a, "limit.64", &info), FP_OK);
    fp_region_info_cleanup(&info);
    for (int i = 1; i <= CONN_REGIONS; i++) {
        snprintf(name, sizeof(name), "limit.%d", i);
        EXPECT_STATUS(fp_region_meta_delete(a, name), FP_OK);
    }
    assert_int_equal(stats_of(a).slabs, st.slabs - CONN_REGIONS);
    farpool_node_close(a);
    farpool_node_close(b);
}

/* ---- tests with a daemon of their own ---- */

/* 1100 slabs: the list comes in three REGION_SLABS pages. */
static void test_multi_page(void **state)
{
    static const char *const args[] = {"--slab-size", "64K", "--capacity", "80M", NULL};
    fp_test_daemon_t d;
    farpool_node_t *a, *b;
    fp_region_info_t ia, ib;
    uint64_t ids[FP_PROTO_REGION_SLABS_MAX];
    uint8_t head[32], tail[32];

    (void)state;
    assert_int_equal(fp_test_daemon_start(args, &d), FP_OK);
    a = connect_key(&d, KEY_A);
    b = connect_key(&d, KEY_B);
    create_ok(a, "pages", 1100 * SLAB - 5, 4096, 0, &ia);
    assert_int_equal(ia.nslabs, 1100);
    open_ok(b, "pages", &ia, &ib);
    EXPECT_STATUS(raw_slabs(b, ib.id, 600, FP_PROTO_REGION_SLABS_MAX, ids), FP_OK);
    assert_memory_equal(ids, ia.slabs + 600, FP_PROTO_REGION_SLABS_MAX * sizeof(uint64_t));
    EXPECT_STATUS(raw_slabs(b, ib.id, 601, FP_PROTO_REGION_SLABS_MAX, ids), FP_ERR_OUT_OF_RANGE);
    /* The first and last bytes of every slab, in the right slab. */
    for (uint32_t i = 0; i < ia.nslabs; i++) {
        uint64_t off = (uint64_t)i * SLAB, len = slab_bytes(&ia, i);

        fp_pattern_fill(head, sizeof(head), ia.id, off, 1);
        fp_pattern_fill(tail, sizeof(tail), ia.id, off + len - sizeof(tail), 1);
        EXPECT_STATUS(farpool_slab_write(a, ia.slabs[i], 0, head, sizeof(head)), FP_OK);
        EXPECT_STATUS(farpool_slab_write(a, ia.slabs[i], len - sizeof(tail), tail, sizeof(tail)),
                      FP_OK);
    }
    for (uint32_t i = 0; i < ib.nslabs; i++) {
        uint64_t off = (uint64_t)i * SLAB, len = slab_bytes(&ib, i);

        EXPECT_STATUS(farpool_slab_read(b, ib.slabs[i], 0, head, sizeof(head)), FP_OK);
        FP_PATTERN_ASSERT(head, sizeof(head), ib.id, off, 1);
        EXPECT_STATUS(farpool_slab_read(b, ib.slabs[i], len - sizeof(tail), tail, sizeof(tail)),
                      FP_OK);
        FP_PATTERN_ASSERT(tail, sizeof(tail), ib.id, off + len - sizeof(tail), 1);
    }
    EXPECT_STATUS(fp_region_meta_delete(b, "pages"), FP_OK);
    assert_int_equal(stats_of(a).used, 0);
    fp_region_info_cleanup(&ia);
    fp_region_info_cleanup(&ib);
    farpool_node_close(a);
    farpool_node_close(b);
    assert_int_equal(fp_test_daemon_stop(&d), 0);
}

/* The node holds at most 4096 regions. */
static void test_table_full(void **state)
{
    static const char *const args[] = {"--slab-size", "64K",  "--capacity", "512M",
                                       "--log-level", "warn", NULL};
    enum { NCONN = TABLE_MAX / CONN_REGIONS + 1 };
    farpool_node_t *conns[NCONN];
    fp_test_daemon_t d;
    fp_region_info_t info;
    char name[32];

    (void)state;
    assert_int_equal(fp_test_daemon_start(args, &d), FP_OK);
    for (int i = 0; i < NCONN; i++)
        conns[i] = connect_key(&d, KEY_A);
    for (int i = 0; i < TABLE_MAX; i++) {
        snprintf(name, sizeof(name), "r%d", i);
        EXPECT_STATUS(fp_region_meta_create(conns[i / CONN_REGIONS], name, 1, 4096, 0, &info),
                      FP_OK);
        fp_region_info_cleanup(&info);
    }
    assert_int_equal(stats_of(conns[0]).slabs, TABLE_MAX);
    EXPECT_STATUS(fp_region_meta_create(conns[NCONN - 1], "one-too-many", 1, 4096, 0, &info),
                  FP_ERR_NO_SPACE);
    assert_int_equal(stats_of(conns[0]).slabs, TABLE_MAX);
    EXPECT_STATUS(fp_region_meta_delete(conns[NCONN - 1], "r77"), FP_OK);
    EXPECT_STATUS(fp_region_meta_create(conns[NCONN - 1], "one-too-many", 1, 4096, 0, &info),
                  FP_OK);
    fp_region_info_cleanup(&info);
    for (int i = 0; i < NCONN; i++)
        farpool_node_close(conns[i]);
    assert_int_equal(fp_test_daemon_stop(&d), 0);
}

/* ---- group ---- */

static int group_setup(void **state)
{
    static const char *const args[] = {"--slab-size", "64K", "--capacity", "8M", NULL};
    static env_t env;

    if (fp_test_daemon_start(args, &env.d) != FP_OK) {
        fprintf(stderr, "cannot start farpoold\n");
        return -1;
    }
    *state = &env;
    return 0;
}

static int group_teardown(void **state)
{
    env_t *e = *state;
    int code;

    if (e == NULL)
        return 0;
    code = fp_test_daemon_stop(&e->d);
    if (code != 0) {
        fprintf(stderr, "farpoold exited with code %d after SIGTERM, expected 0\n", code);
        return -1;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share_between_keys),
        cmocka_unit_test(test_survives_disconnect),
        cmocka_unit_test(test_duplicate_name),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_hundred_slabs),
        cmocka_unit_test(test_open_limit),
        cmocka_unit_test(test_multi_page),
        cmocka_unit_test(test_table_full),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
