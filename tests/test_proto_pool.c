/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the POOL_* payloads (src/proto/pool.c): the byte layout of a
 * few messages against docs/protocol.md, the round trip of every message with
 * every field set to a distinctive value, and every way a decoder must refuse
 * untrusted bytes: each truncation of each message, one trailing byte, strings
 * over their limits, bad names, granules, flags, replica counts, lease
 * operations and map counts, and list counts over their limits. Failed
 * decodes must leave their outputs untouched. Encoders must return 0 when
 * @cap is short, and list encoders fill what fits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/pool.h"

#define SENTINEL 0xA5
#define BUF_MAX  (2 * FP_PROTO_MAX_CONTROL)

static uint8_t buf[BUF_MAX];

static fp_proto_region_name_t mkname(const char *s)
{
    fp_proto_region_name_t name;

    memset(&name, 0, sizeof(name));
    name.len = (uint16_t)strlen(s);
    memcpy(name.text, s, name.len + 1u);
    return name;
}

/* ---- distinctive samples: each field its own value, each byte of it different ---- */

static fp_pool_join_req_t sample_join_req(void)
{
    fp_pool_join_req_t m = {.node_id = 0x0102030405060708ull,
                            .capacity = 0x1112131415161718ull,
                            .slab_size = 0x2122232425262728ull};

    strcpy(m.addr, "node-7.example:7070");
    return m;
}

static fp_pool_join_rep_t sample_join_rep(void)
{
    return (fp_pool_join_rep_t){
        .member = 0x3132333435363738ull, .flags = FP_POOL_JOIN_RESET, .heartbeat_ms = 0x41424344u};
}

static fp_pool_heartbeat_req_t sample_heartbeat(void)
{
    return (fp_pool_heartbeat_req_t){.member = 0x0102030405060708ull,
                                     .node_id = 0x1112131415161718ull,
                                     .capacity = 0x2122232425262728ull,
                                     .used = 0x3132333435363738ull};
}

static fp_pool_create_req_t sample_create(void)
{
    return (fp_pool_create_req_t){.size = 0x0102030405060708ull,
                                  .granule = 65536,
                                  .flags = FP_POOL_REGION_FIXED | FP_POOL_REGION_PENDING,
                                  .replicas = 3,
                                  .name = mkname("model.w-1_0")};
}

static fp_pool_open_req_t sample_open(void)
{
    return (fp_pool_open_req_t){.flags = FP_POOL_OPEN_WRITE, .name = mkname("Z-9_x.y")};
}

static fp_pool_region_desc_t sample_desc(uint32_t seed)
{
    fp_pool_region_desc_t m;
    char name[32];

    memset(&m, 0, sizeof(m));
    m.id = 0x0102030405060708ull + seed;
    m.size = 0x1112131415161718ull + seed;
    m.granule = 2u << 20;
    m.flags = FP_POOL_REGION_FIXED + seed;
    m.replicas = 0x21222324u + seed;
    m.state = 0x31323334u + seed;
    m.health = 0x41424344u + seed;
    m.slab_size = 0x5152535455565758ull + seed;
    m.nslabs = 0x61626364u + seed;
    for (uint32_t i = 0; i < FP_PROTO_KEY_SIZE; i++)
        m.key[i] = (uint8_t)(0x70 + i + seed);
    m.fixed_addr = 0x8182838485868788ull + seed;
    m.has_checksum = 1;
    for (uint32_t i = 0; i < FP_POOL_HASH_SIZE; i++)
        m.checksum[i] = (uint8_t)(0x90 + i + seed);
    m.created_ms = 0xa1a2a3a4a5a6a7a8ull + seed;
    m.lease_id = 0xb1b2b3b4b5b6b7b8ull + seed;
    m.lease_ttl_ms = 0xc1c2c3c4u + seed;
    snprintf(name, sizeof(name), "region-%u.v%u", seed, seed * 7);
    m.name = mkname(name);
    return m;
}

static fp_pool_node_entry_t sample_node(uint32_t seed)
{
    fp_pool_node_entry_t m;

    memset(&m, 0, sizeof(m));
    m.member = 0x0102030405060708ull + seed;
    m.node_id = 0x1112131415161718ull + seed;
    m.capacity = 0x2122232425262728ull + seed;
    m.used = 0x3132333435363738ull + seed;
    m.slab_size = 0x4142434445464748ull + seed;
    m.state = 0x51525354u + seed;
    m.seen_ms = 0x61626364u + seed;
    snprintf(m.addr, sizeof(m.addr), "[fe80::%x]:%u", seed + 1, 7000 + seed);
    return m;
}

static fp_pool_map_entry_t sample_map_entry(uint32_t seed)
{
    return (fp_pool_map_entry_t){.member = seed % 3 == 2 ? 0 : 0x0102030405060708ull + seed,
                                 .slab = 0x1112131415161718ull * (seed + 1)};
}

/* ---- field-by-field comparisons ---- */

static void assert_name_equal(const fp_proto_region_name_t *a, const fp_proto_region_name_t *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->text, b->text, a->len + 1u);
}

static void assert_desc_equal(const fp_pool_region_desc_t *a, const fp_pool_region_desc_t *b)
{
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->size, b->size);
    assert_int_equal(a->granule, b->granule);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->replicas, b->replicas);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->health, b->health);
    assert_int_equal(a->slab_size, b->slab_size);
    assert_int_equal(a->nslabs, b->nslabs);
    assert_memory_equal(a->key, b->key, FP_PROTO_KEY_SIZE);
    assert_int_equal(a->fixed_addr, b->fixed_addr);
    assert_int_equal(a->has_checksum, b->has_checksum);
    assert_memory_equal(a->checksum, b->checksum, FP_POOL_HASH_SIZE);
    assert_int_equal(a->created_ms, b->created_ms);
    assert_int_equal(a->lease_id, b->lease_id);
    assert_int_equal(a->lease_ttl_ms, b->lease_ttl_ms);
    assert_name_equal(&a->name, &b->name);
}

static void assert_node_equal(const fp_pool_node_entry_t *a, const fp_pool_node_entry_t *b)
{
    assert_int_equal(a->member, b->member);
    assert_int_equal(a->node_id, b->node_id);
    assert_int_equal(a->capacity, b->capacity);
    assert_int_equal(a->used, b->used);
    assert_int_equal(a->slab_size, b->slab_size);
    assert_int_equal(a->state, b->state);
    assert_int_equal(a->seen_ms, b->seen_ms);
    assert_string_equal(a->addr, b->addr);
}

/* ---- one table of every message, for the checks they share ---- */

#define LIST_SAMPLE 3u /* entries in the sample list replies */

typedef struct nodes_out {
    uint32_t total, count;
    fp_pool_node_entry_t entries[LIST_SAMPLE];
} nodes_out_t;

typedef struct regions_out {
    uint32_t total, count;
    fp_pool_region_desc_t entries[LIST_SAMPLE];
} regions_out_t;

typedef struct map_out {
    uint32_t count;
    fp_pool_map_entry_t entries[LIST_SAMPLE * 4];
} map_out_t;

typedef struct msg_case {
    const char *name;
    bool list; /* a list encoder: fills what fits rather than returning 0 */
    size_t out_size;
    uint32_t (*encode)(uint8_t *b, size_t cap);
    fp_status_t (*decode)(const uint8_t *b, uint32_t len, void *out);
} msg_case_t;

static uint32_t enc_join_req(uint8_t *b, size_t cap)
{
    fp_pool_join_req_t m = sample_join_req();

    return fp_pool_join_req_encode(&m, b, cap);
}
static fp_status_t dec_join_req(const uint8_t *b, uint32_t len, void *out)
{
    return fp_pool_join_req_decode(b, len, out);
}
static uint32_t enc_join_rep(uint8_t *b, size_t cap)
{
    fp_pool_join_rep_t m = sample_join_rep();

    return fp_pool_join_rep_encode(&m, b, cap);
}
static fp_status_t dec_join_rep(const uint8_t *b, uint32_t len, void *out)
{
    return fp_pool_join_rep_decode(b, len, out);
}
static uint32_t enc_heartbeat(uint8_t *b, size_t cap)
{
    fp_pool_heartbeat_req_t m = sample_heartbeat();

    return fp_pool_heartbeat_req_encode(&m, b, cap);
}
static fp_status_t dec_heartbeat(const uint8_t *b, uint32_t len, void *out)
{
    return fp_pool_heartbeat_req_decode(b, len, out);
}
static uint32_t enc_create(uint8_t *b, size_t cap)
{
    fp_pool_create_req_t m = sample_create();

    return fp_pool_create_req_encode(&m, b, cap);
}
static fp_status_t dec_create(const uint8_t *b, uint32_t len, void *out)
{
    return fp_pool_create_req_decode(b, len, out);
}
static uint32_t enc_open(uint8_t *b, size_t cap)
{
    fp_pool_open_req_t m = sample_open();

    return fp_pool_open_req_encode(&m, b, cap);
}
static fp_status_t dec_open(const uint8_t *b, uint32_t len, void *out)
{
    return fp_pool_open_req_decode(b, len, out);
}
static uint32_t enc_name(uint8_t *b, size_t cap)
{
    fp_proto_region_name_t m = mkname("to-delete.1");

    return fp_pool_name_req_encode(&m, b, cap);
}
static fp_status_t dec_name(const uint8_t *b, uint32_t len, void *out)
{
    return fp_pool_name_req_decode(b, len, out);
}
static uint32_t enc_addr(uint8_t *b, size_t cap)
{
    return fp_pool_addr_req_encode("10.1.2.3:7070", b, cap);
}
static fp_status_t dec_addr(const uint8_t *b, uint32_t len, void *out)
{
    return fp_pool_addr_req_decode(b, len, out);
}
static uint32_t enc_desc(uint8_t *b, size_t cap)
{
    fp_pool_region_desc_t m = sample_desc(0);

    return fp_pool_desc_encode(&m, b, cap);
}
static fp_status_t dec_desc(const uint8_t *b, uint32_t len, void *out)
{
    return fp_pool_desc_decode(b, len, out);
}
static uint32_t enc_map_req(uint8_t *b, size_t cap)
{
    fp_pool_map_req_t m = {.region = 0x0102030405060708ull, .first = 0x11121314u, .count = 200};

    return fp_pool_map_req_encode(&m, b, cap);
}
static fp_status_t dec_map_req(const uint8_t *b, uint32_t len, void *out)
{
    return fp_pool_map_req_decode(b, len, out);
}
static fp_pool_commit_req_t sample_commit(void)
{
    fp_pool_commit_req_t m = {
        .region = 0x0102030405060708ull, .lease = 0x1112131415161718ull, .has_checksum = 1};

    for (uint32_t i = 0; i < FP_POOL_HASH_SIZE; i++)
        m.checksum[i] = (uint8_t)(0xe0 - i);
    return m;
}
static uint32_t enc_commit(uint8_t *b, size_t cap)
{
    fp_pool_commit_req_t m = sample_commit();

    return fp_pool_commit_req_encode(&m, b, cap);
}
static fp_status_t dec_commit(const uint8_t *b, uint32_t len, void *out)
{
    return fp_pool_commit_req_decode(b, len, out);
}
static uint32_t enc_lease(uint8_t *b, size_t cap)
{
    fp_pool_lease_req_t m = {.region = 0x0102030405060708ull,
                             .lease = 0x1112131415161718ull,
                             .op = FP_POOL_LEASE_RELEASE};

    return fp_pool_lease_req_encode(&m, b, cap);
}
static fp_status_t dec_lease(const uint8_t *b, uint32_t len, void *out)
{
    return fp_pool_lease_req_decode(b, len, out);
}
static uint32_t enc_list_req(uint8_t *b, size_t cap)
{
    fp_pool_list_req_t m = {.first = 0x01020304u};

    return fp_pool_list_req_encode(&m, b, cap);
}
static fp_status_t dec_list_req(const uint8_t *b, uint32_t len, void *out)
{
    return fp_pool_list_req_decode(b, len, out);
}
static uint32_t enc_nodes(uint8_t *b, size_t cap)
{
    fp_pool_node_entry_t e[LIST_SAMPLE];
    uint32_t written;

    for (uint32_t i = 0; i < LIST_SAMPLE; i++)
        e[i] = sample_node(i);
    return fp_pool_nodes_rep_encode(40, e, LIST_SAMPLE, b, cap, &written);
}
static fp_status_t dec_nodes(const uint8_t *b, uint32_t len, void *out)
{
    nodes_out_t *o = out;

    return fp_pool_nodes_rep_decode(b, len, &o->total, o->entries, LIST_SAMPLE, &o->count);
}
static uint32_t enc_regions(uint8_t *b, size_t cap)
{
    fp_pool_region_desc_t e[LIST_SAMPLE];
    uint32_t written;

    for (uint32_t i = 0; i < LIST_SAMPLE; i++)
        e[i] = sample_desc(i);
    return fp_pool_regions_rep_encode(LIST_SAMPLE, e, LIST_SAMPLE, b, cap, &written);
}
static fp_status_t dec_regions(const uint8_t *b, uint32_t len, void *out)
{
    regions_out_t *o = out;

    return fp_pool_regions_rep_decode(b, len, &o->total, o->entries, LIST_SAMPLE, &o->count);
}
static uint32_t enc_map_rep(uint8_t *b, size_t cap)
{
    fp_pool_map_entry_t e[LIST_SAMPLE * 4];

    for (uint32_t i = 0; i < LIST_SAMPLE * 4; i++)
        e[i] = sample_map_entry(i);
    return fp_pool_map_rep_encode(e, LIST_SAMPLE * 4, b, cap);
}
static fp_status_t dec_map_rep(const uint8_t *b, uint32_t len, void *out)
{
    map_out_t *o = out;

    return fp_pool_map_rep_decode(b, len, o->entries, LIST_SAMPLE * 4, &o->count);
}

static const msg_case_t cases[] = {
    {"join_req", false, sizeof(fp_pool_join_req_t), enc_join_req, dec_join_req},
    {"join_rep", false, sizeof(fp_pool_join_rep_t), enc_join_rep, dec_join_rep},
    {"heartbeat", false, sizeof(fp_pool_heartbeat_req_t), enc_heartbeat, dec_heartbeat},
    {"create", false, sizeof(fp_pool_create_req_t), enc_create, dec_create},
    {"open", false, sizeof(fp_pool_open_req_t), enc_open, dec_open},
    {"name", false, sizeof(fp_proto_region_name_t), enc_name, dec_name},
    {"addr", false, FP_POOL_ADDR_MAX + 1, enc_addr, dec_addr},
    {"desc", false, sizeof(fp_pool_region_desc_t), enc_desc, dec_desc},
    {"map_req", false, sizeof(fp_pool_map_req_t), enc_map_req, dec_map_req},
    {"commit", false, sizeof(fp_pool_commit_req_t), enc_commit, dec_commit},
    {"lease", false, sizeof(fp_pool_lease_req_t), enc_lease, dec_lease},
    {"list_req", false, sizeof(fp_pool_list_req_t), enc_list_req, dec_list_req},
    {"nodes_rep", true, sizeof(nodes_out_t), enc_nodes, dec_nodes},
    {"regions_rep", true, sizeof(regions_out_t), enc_regions, dec_regions},
    {"map_rep", false, sizeof(map_out_t), enc_map_rep, dec_map_rep},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* Decode @len bytes of @wire from an exact-size heap copy; on failure the output must be untouched.
 */
static fp_status_t decode_exact(const msg_case_t *c, const uint8_t *wire, uint32_t len)
{
    uint8_t *copy = malloc(len != 0 ? len : 1);
    uint8_t *out = malloc(c->out_size);
    fp_status_t status;

    assert_non_null(copy);
    assert_non_null(out);
    memcpy(copy, wire, len);
    memset(out, SENTINEL, c->out_size);
    status = c->decode(copy, len, out);
    if (status != FP_OK) {
        for (size_t i = 0; i < c->out_size; i++) {
            if (out[i] != SENTINEL)
                fail_msg("%s: output written by a failed decode (byte %zu)", c->name, i);
        }
    }
    free(out);
    free(copy);
    return status;
}

static void test_every_message_frames(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const msg_case_t *c = &cases[i];
        uint32_t len = c->encode(buf, sizeof(buf));

        assert_true(len > 0);
        assert_int_equal(decode_exact(c, buf, len), FP_OK);
        /* Every truncation, from empty to one byte short. */
        for (uint32_t k = 0; k < len; k++) {
            if (decode_exact(c, buf, k) != FP_ERR_PROTOCOL)
                fail_msg("%s: truncated to %u of %u bytes not refused", c->name, k, len);
        }
        /* One trailing byte, whatever its value. */
        buf[len] = 0;
        assert_int_equal(decode_exact(c, buf, len + 1), FP_ERR_PROTOCOL);
        buf[len] = 0xff;
        assert_int_equal(decode_exact(c, buf, len + 1), FP_ERR_PROTOCOL);
    }
}

static void test_every_message_short_cap(void **state)
{
    uint8_t other[BUF_MAX];

    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        const msg_case_t *c = &cases[i];
        uint32_t len = c->encode(buf, sizeof(buf));

        /* Exactly enough room: the same bytes. */
        memset(other, SENTINEL, sizeof(other));
        assert_int_equal(c->encode(other, len), len);
        assert_memory_equal(other, buf, len);
        for (uint32_t cap = 0; cap < len; cap++) {
            uint32_t got;

            memset(other, SENTINEL, sizeof(other));
            got = c->encode(other, cap);
            if (c->list && cap >= 8) {
                /* Fills what fits: shorter, and decodable only with its own count. */
                if (got == 0 || got > cap || got >= len)
                    fail_msg("%s: cap %u gave %u", c->name, cap, got);
            } else if (got != 0) {
                fail_msg("%s: cap %u of %u gave %u, not 0", c->name, cap, len, got);
            }
            /* Nothing written past @cap. */
            for (size_t j = cap; j < sizeof(other); j++) {
                if (other[j] != SENTINEL)
                    fail_msg("%s: cap %u: byte %zu written", c->name, cap, j);
            }
        }
    }
}

/* ---- per message: layout, round trip, invalid values ---- */

static void test_join(void **state)
{
    static const uint8_t expected[] = {
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* node_id */
        0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, /* capacity */
        0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21, /* slab_size */
        0x06, 0x00, 'h',  ':',  '7',  '0',  '7',  '0'}; /* addr_len 6, "h:7070" */
    fp_pool_join_req_t in = sample_join_req(), out;
    fp_pool_join_rep_t rin = sample_join_rep(), rout;
    uint32_t len;

    (void)state;
    strcpy(in.addr, "h:7070");
    len = fp_pool_join_req_encode(&in, buf, sizeof(buf));
    assert_int_equal(len, sizeof(expected));
    assert_memory_equal(buf, expected, sizeof(expected));

    in = sample_join_req();
    len = fp_pool_join_req_encode(&in, buf, sizeof(buf));
    assert_int_equal(len, 24 + 2 + strlen(in.addr));
    memset(&out, SENTINEL, sizeof(out));
    assert_int_equal(fp_pool_join_req_decode(buf, len, &out), FP_OK);
    assert_int_equal(out.node_id, in.node_id);
    assert_int_equal(out.capacity, in.capacity);
    assert_int_equal(out.slab_size, in.slab_size);
    assert_string_equal(out.addr, in.addr);

    len = fp_pool_join_rep_encode(&rin, buf, sizeof(buf));
    assert_int_equal(len, 16);
    assert_int_equal(fp_proto_get_u64(buf), rin.member);
    assert_int_equal(fp_proto_get_u32(buf + 8), FP_POOL_JOIN_RESET);
    assert_int_equal(fp_proto_get_u32(buf + 12), rin.heartbeat_ms);
    memset(&rout, SENTINEL, sizeof(rout));
    assert_int_equal(fp_pool_join_rep_decode(buf, len, &rout), FP_OK);
    assert_int_equal(rout.member, rin.member);
    assert_int_equal(rout.flags, rin.flags);
    assert_int_equal(rout.heartbeat_ms, rin.heartbeat_ms);
    rin.flags = 0;
    len = fp_pool_join_rep_encode(&rin, buf, sizeof(buf));
    assert_int_equal(fp_pool_join_rep_decode(buf, len, &rout), FP_OK);
    assert_int_equal(rout.flags, 0);
    /* An unassigned flag bit is malformed, like HELLO's. */
    for (int bit = 1; bit < 32; bit++) {
        rin.flags = FP_POOL_JOIN_RESET | (1u << bit);
        len = fp_pool_join_rep_encode(&rin, buf, sizeof(buf));
        memset(&rout, SENTINEL, sizeof(rout));
        assert_int_equal(fp_pool_join_rep_decode(buf, len, &rout), FP_ERR_PROTOCOL);
        assert_int_equal(rout.member, 0xa5a5a5a5a5a5a5a5ull);
    }
}

static void test_heartbeat(void **state)
{
    fp_pool_heartbeat_req_t in = sample_heartbeat(), out;
    uint32_t len;

    (void)state;
    len = fp_pool_heartbeat_req_encode(&in, buf, sizeof(buf));
    assert_int_equal(len, 32);
    assert_int_equal(fp_proto_get_u64(buf + 24), in.used);
    memset(&out, SENTINEL, sizeof(out));
    assert_int_equal(fp_pool_heartbeat_req_decode(buf, len, &out), FP_OK);
    assert_int_equal(out.member, in.member);
    assert_int_equal(out.node_id, in.node_id);
    assert_int_equal(out.capacity, in.capacity);
    assert_int_equal(out.used, in.used);
}

/* Strings: addresses of 1..FP_POOL_ADDR_MAX printable bytes, wherever they appear. */
static void test_addr_limits(void **state)
{
    char addr[FP_POOL_ADDR_MAX + 2], out[FP_POOL_ADDR_MAX + 1];
    fp_pool_join_req_t join = sample_join_req(), jout;
    uint32_t len;

    (void)state;
    /* The longest address, in DRAIN and in JOIN. */
    memset(addr, 'a', FP_POOL_ADDR_MAX);
    addr[FP_POOL_ADDR_MAX] = '\0';
    len = fp_pool_addr_req_encode(addr, buf, sizeof(buf));
    assert_int_equal(len, 2 + FP_POOL_ADDR_MAX);
    assert_int_equal(fp_pool_addr_req_decode(buf, len, out), FP_OK);
    assert_string_equal(out, addr);
    memcpy(join.addr, addr, sizeof(join.addr));
    len = fp_pool_join_req_encode(&join, buf, sizeof(buf));
    assert_int_equal(fp_pool_join_req_decode(buf, len, &jout), FP_OK);
    assert_string_equal(jout.addr, addr);

    /* One byte more: the encoder refuses it, and so does the decoder. */
    memset(addr, 'a', FP_POOL_ADDR_MAX + 1);
    addr[FP_POOL_ADDR_MAX + 1] = '\0';
    assert_int_equal(fp_pool_addr_req_encode(addr, buf, sizeof(buf)), 0);
    fp_proto_put_u16(buf, FP_POOL_ADDR_MAX + 1);
    memset(buf + 2, 'a', FP_POOL_ADDR_MAX + 1);
    memset(out, SENTINEL, sizeof(out));
    assert_int_equal(fp_pool_addr_req_decode(buf, 2 + FP_POOL_ADDR_MAX + 1, out), FP_ERR_PROTOCOL);
    assert_int_equal((uint8_t)out[0], SENTINEL);
    fp_proto_put_u16(buf, 0xffff);
    assert_int_equal(fp_pool_addr_req_decode(buf, 2 + FP_POOL_ADDR_MAX + 1, out), FP_ERR_PROTOCOL);

    /* Empty: refused both ways. */
    assert_int_equal(fp_pool_addr_req_encode("", buf, sizeof(buf)), 0);
    fp_proto_put_u16(buf, 0);
    assert_int_equal(fp_pool_addr_req_decode(buf, 2, out), FP_ERR_PROTOCOL);
    join.addr[0] = '\0';
    assert_int_equal(fp_pool_join_req_encode(&join, buf, sizeof(buf)), 0);
    fp_proto_put_u16(buf + 24, 0);
    assert_int_equal(fp_pool_join_req_decode(buf, 26, &jout), FP_ERR_PROTOCOL);

    /* A NUL, a control byte, a space, a non-ASCII byte: well-formed but invalid. */
    {
        static const char bad[] = {'\0', '\n', ' ', '\x7f', '\x80'};

        for (size_t i = 0; i < sizeof(bad); i++) {
            len = fp_pool_addr_req_encode("h:7070", buf, sizeof(buf));
            buf[3] = (uint8_t)bad[i];
            assert_int_equal(fp_pool_addr_req_decode(buf, len, out), FP_ERR_INVALID_PARAM);
        }
    }
}

static void test_create(void **state)
{
    static const uint8_t expected[] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* size */
                                       0x00, 0x00, 0x01, 0x00, /* granule 64 KiB */
                                       0x02, 0x01, 0x00, 0x00, /* flags FIXED | PENDING */
                                       0x03, 0x00, 0x00, 0x00, /* replicas 3 */
                                       0x0b, 0x00, 'm',  'o',  'd',  'e',  'l',  '.',
                                       'w',  '-',  '1',  '_',  '0'};
    fp_pool_create_req_t in = sample_create(), out, bad;
    uint32_t len;

    (void)state;
    len = fp_pool_create_req_encode(&in, buf, sizeof(buf));
    assert_int_equal(len, sizeof(expected));
    assert_memory_equal(buf, expected, sizeof(expected));
    memset(&out, SENTINEL, sizeof(out));
    assert_int_equal(fp_pool_create_req_decode(buf, len, &out), FP_OK);
    assert_int_equal(out.size, in.size);
    assert_int_equal(out.granule, in.granule);
    assert_int_equal(out.flags, in.flags);
    assert_int_equal(out.replicas, in.replicas);
    assert_name_equal(&out.name, &in.name);

    /* Limits that are still valid. */
    for (uint32_t r = 0; r <= 4; r++) {
        bad = in;
        bad.replicas = r;
        bad.flags = r & 1 ? 0 : FP_POOL_REGION_PENDING;
        bad.granule = r & 1 ? FP_PROTO_REGION_GRANULE_MIN : FP_PROTO_REGION_GRANULE_MAX;
        bad.size = r == 0 ? 1 : UINT64_MAX;
        len = fp_pool_create_req_encode(&bad, buf, sizeof(buf));
        assert_int_equal(fp_pool_create_req_decode(buf, len, &out), FP_OK);
        assert_int_equal(out.replicas, r);
    }

    /* Well-formed but invalid: FP_ERR_INVALID_PARAM, output untouched. */
    {
        static const char *names[] = {"", "a/b", "a b", "caf\xc3\xa9", "nul\0x", ".."};
        static const uint32_t granules[] = {0,     1,        2048,     4095,      4097,
                                            65535, 3u << 20, 4u << 20, UINT32_MAX};
        static const uint32_t flags[] = {0x1, 0x4, 0x200, 0x80000000u, UINT32_MAX};
        static const uint32_t replicas[] = {5, 255, UINT32_MAX};

        for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            bad = in;
            bad.name = mkname(names[i]);
            if (i == 4)
                bad.name.len = 5; /* "nul\0x": a NUL inside */
            len = fp_pool_create_req_encode(&bad, buf, sizeof(buf));
            memset(&out, SENTINEL, sizeof(out));
            assert_int_equal(fp_pool_create_req_decode(buf, len, &out),
                             i == 5 ? FP_OK : FP_ERR_INVALID_PARAM);
            if (i != 5)
                assert_int_equal(out.size, 0xa5a5a5a5a5a5a5a5ull);
        }
        for (size_t i = 0; i < sizeof(granules) / sizeof(granules[0]); i++) {
            bad = in;
            bad.granule = granules[i];
            len = fp_pool_create_req_encode(&bad, buf, sizeof(buf));
            assert_int_equal(fp_pool_create_req_decode(buf, len, &out), FP_ERR_INVALID_PARAM);
        }
        for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
            bad = in;
            bad.flags = flags[i];
            len = fp_pool_create_req_encode(&bad, buf, sizeof(buf));
            assert_int_equal(fp_pool_create_req_decode(buf, len, &out), FP_ERR_INVALID_PARAM);
        }
        for (size_t i = 0; i < sizeof(replicas) / sizeof(replicas[0]); i++) {
            bad = in;
            bad.replicas = replicas[i];
            len = fp_pool_create_req_encode(&bad, buf, sizeof(buf));
            assert_int_equal(fp_pool_create_req_decode(buf, len, &out), FP_ERR_INVALID_PARAM);
        }
        bad = in;
        bad.size = 0;
        len = fp_pool_create_req_encode(&bad, buf, sizeof(buf));
        assert_int_equal(fp_pool_create_req_decode(buf, len, &out), FP_ERR_INVALID_PARAM);
    }

    /* A malformed payload is FP_ERR_PROTOCOL even when its values are invalid too. */
    bad = in;
    bad.granule = 3;
    len = fp_pool_create_req_encode(&bad, buf, sizeof(buf));
    assert_int_equal(fp_pool_create_req_decode(buf, len + 1, &out), FP_ERR_PROTOCOL);
}

/* Names: 1..255 bytes; 256 is over the limit (FP_ERR_PROTOCOL) in every message that has one. */
static void test_name_limits(void **state)
{
    fp_proto_region_name_t name, out;
    fp_pool_open_req_t open = sample_open(), oout;
    fp_pool_create_req_t create = sample_create(), cout;
    fp_pool_region_desc_t desc = sample_desc(5), dout;
    const size_t big_size = 130 + 0xffff;
    uint8_t *big;
    uint32_t len;

    (void)state;
    memset(&name, 0, sizeof(name));
    name.len = FP_PROTO_REGION_NAME_MAX;
    memset(name.text, 'n', FP_PROTO_REGION_NAME_MAX);
    len = fp_pool_name_req_encode(&name, buf, sizeof(buf));
    assert_int_equal(len, 2 + FP_PROTO_REGION_NAME_MAX);
    assert_int_equal(fp_pool_name_req_decode(buf, len, &out), FP_OK);
    assert_name_equal(&out, &name);
    open.name = name;
    len = fp_pool_open_req_encode(&open, buf, sizeof(buf));
    assert_int_equal(fp_pool_open_req_decode(buf, len, &oout), FP_OK);
    assert_name_equal(&oout.name, &name);
    create.name = name;
    len = fp_pool_create_req_encode(&create, buf, sizeof(buf));
    assert_int_equal(fp_pool_create_req_decode(buf, len, &cout), FP_OK);
    desc.name = name;
    len = fp_pool_desc_encode(&desc, buf, sizeof(buf));
    assert_int_equal(len, 128 + 2 + FP_PROTO_REGION_NAME_MAX);
    assert_int_equal(fp_pool_desc_decode(buf, len, &dout), FP_OK);
    assert_desc_equal(&dout, &desc);

    /* The encoders refuse a longer name. */
    name.len = FP_PROTO_REGION_NAME_MAX + 1;
    assert_int_equal(fp_pool_name_req_encode(&name, buf, sizeof(buf)), 0);
    open.name.len = FP_PROTO_REGION_NAME_MAX + 1;
    assert_int_equal(fp_pool_open_req_encode(&open, buf, sizeof(buf)), 0);
    create.name.len = FP_PROTO_REGION_NAME_MAX + 1;
    assert_int_equal(fp_pool_create_req_encode(&create, buf, sizeof(buf)), 0);
    desc.name.len = FP_PROTO_REGION_NAME_MAX + 1;
    assert_int_equal(fp_pool_desc_encode(&desc, buf, sizeof(buf)), 0);

    /* The decoders refuse one: a u16 length of 256 (and 65535) with its bytes there. */
    big = malloc(big_size);
    assert_non_null(big);
    memset(big, 'n', big_size);
    for (int i = 0; i < 2; i++) {
        uint16_t over = i == 0 ? FP_PROTO_REGION_NAME_MAX + 1 : 0xffff;

        fp_proto_put_u16(big, over);
        assert_int_equal(fp_pool_name_req_decode(big, 2u + over, &out), FP_ERR_PROTOCOL);
        fp_proto_put_u32(big, FP_POOL_OPEN_WRITE);
        fp_proto_put_u16(big + 4, over);
        assert_int_equal(fp_pool_open_req_decode(big, 6u + over, &oout), FP_ERR_PROTOCOL);
        create = sample_create();
        len = fp_pool_create_req_encode(&create, big, big_size);
        fp_proto_put_u16(big + 20, over);
        memset(big + 22, 'n', over);
        assert_int_equal(fp_pool_create_req_decode(big, 22u + over, &cout), FP_ERR_PROTOCOL);
        desc = sample_desc(5);
        len = fp_pool_desc_encode(&desc, big, big_size);
        fp_proto_put_u16(big + 128, over);
        memset(big + 130, 'n', over);
        assert_int_equal(fp_pool_desc_decode(big, 130u + over, &dout), FP_ERR_PROTOCOL);
    }
    free(big);
    (void)len;
}

static void test_open_delete_drain(void **state)
{
    fp_pool_open_req_t in = sample_open(), out;
    fp_proto_region_name_t name = mkname("to-delete.1"), nout;
    char addr[FP_POOL_ADDR_MAX + 1];
    uint32_t len;

    (void)state;
    len = fp_pool_open_req_encode(&in, buf, sizeof(buf));
    assert_int_equal(len, 4 + 2 + in.name.len);
    assert_int_equal(fp_proto_get_u32(buf), FP_POOL_OPEN_WRITE);
    assert_int_equal(fp_proto_get_u16(buf + 4), in.name.len);
    memset(&out, SENTINEL, sizeof(out));
    assert_int_equal(fp_pool_open_req_decode(buf, len, &out), FP_OK);
    assert_int_equal(out.flags, in.flags);
    assert_name_equal(&out.name, &in.name);
    in.flags = 0;
    len = fp_pool_open_req_encode(&in, buf, sizeof(buf));
    assert_int_equal(fp_pool_open_req_decode(buf, len, &out), FP_OK);
    assert_int_equal(out.flags, 0);
    /* An unknown open flag, a bad name. */
    in.flags = 0x2;
    len = fp_pool_open_req_encode(&in, buf, sizeof(buf));
    assert_int_equal(fp_pool_open_req_decode(buf, len, &out), FP_ERR_INVALID_PARAM);
    in = sample_open();
    in.name = mkname("x*y");
    len = fp_pool_open_req_encode(&in, buf, sizeof(buf));
    assert_int_equal(fp_pool_open_req_decode(buf, len, &out), FP_ERR_INVALID_PARAM);

    /* POOL_DELETE: one name. */
    len = fp_pool_name_req_encode(&name, buf, sizeof(buf));
    assert_int_equal(len, 2 + name.len);
    assert_int_equal(fp_pool_name_req_decode(buf, len, &nout), FP_OK);
    assert_name_equal(&nout, &name);
    name = mkname("");
    len = fp_pool_name_req_encode(&name, buf, sizeof(buf));
    assert_int_equal(len, 2);
    assert_int_equal(fp_pool_name_req_decode(buf, len, &nout), FP_ERR_INVALID_PARAM);
    name = mkname("a:b");
    len = fp_pool_name_req_encode(&name, buf, sizeof(buf));
    assert_int_equal(fp_pool_name_req_decode(buf, len, &nout), FP_ERR_INVALID_PARAM);

    /* POOL_DRAIN: one address. */
    len = fp_pool_addr_req_encode("[::1]:7071", buf, sizeof(buf));
    assert_int_equal(len, 2 + 10);
    assert_int_equal(fp_pool_addr_req_decode(buf, len, addr), FP_OK);
    assert_string_equal(addr, "[::1]:7071");
}

static void test_desc(void **state)
{
    fp_pool_region_desc_t in = sample_desc(9), out;
    uint32_t len;

    (void)state;
    len = fp_pool_desc_encode(&in, buf, sizeof(buf));
    assert_int_equal(len, 128 + 2 + in.name.len);
    /* Spot checks of the layout (docs/protocol.md). */
    assert_int_equal(fp_proto_get_u64(buf), in.id);
    assert_int_equal(fp_proto_get_u32(buf + 32), in.health);
    assert_int_equal(fp_proto_get_u64(buf + 36), in.slab_size);
    assert_memory_equal(buf + 48, in.key, FP_PROTO_KEY_SIZE);
    assert_int_equal(fp_proto_get_u64(buf + 64), in.fixed_addr);
    assert_memory_equal(buf + 76, in.checksum, FP_POOL_HASH_SIZE);
    assert_int_equal(fp_proto_get_u32(buf + 124), in.lease_ttl_ms);
    assert_int_equal(fp_proto_get_u16(buf + 128), in.name.len);
    memset(&out, SENTINEL, sizeof(out));
    assert_int_equal(fp_pool_desc_decode(buf, len, &out), FP_OK);
    assert_desc_equal(&out, &in);

    in.name = mkname("bad name");
    len = fp_pool_desc_encode(&in, buf, sizeof(buf));
    memset(&out, SENTINEL, sizeof(out));
    assert_int_equal(fp_pool_desc_decode(buf, len, &out), FP_ERR_INVALID_PARAM);
    assert_int_equal(out.id, 0xa5a5a5a5a5a5a5a5ull);
}

static void test_map_commit_lease_list(void **state)
{
    fp_pool_map_req_t map = {.region = 0x0102030405060708ull, .first = 0x11121314u, .count = 1};
    fp_pool_map_req_t mout;
    fp_pool_commit_req_t commit = sample_commit(), cout;
    fp_pool_lease_req_t lease = {.region = 9, .lease = 0x1112131415161718ull}, lout;
    fp_pool_list_req_t list = {.first = 0xfedcba98u}, listout;
    uint32_t len;

    (void)state;
    /* POOL_MAP request: count 1 .. FP_POOL_LIST_MAX. */
    for (uint32_t count = 0; count <= FP_POOL_LIST_MAX + 1; count++) {
        map.count = count;
        len = fp_pool_map_req_encode(&map, buf, sizeof(buf));
        assert_int_equal(len, 16);
        memset(&mout, SENTINEL, sizeof(mout));
        if (count == 0 || count > FP_POOL_LIST_MAX) {
            assert_int_equal(fp_pool_map_req_decode(buf, len, &mout), FP_ERR_INVALID_PARAM);
            assert_int_equal(mout.region, 0xa5a5a5a5a5a5a5a5ull);
        } else {
            assert_int_equal(fp_pool_map_req_decode(buf, len, &mout), FP_OK);
            assert_int_equal(mout.region, map.region);
            assert_int_equal(mout.first, map.first);
            assert_int_equal(mout.count, count);
        }
    }
    map.count = UINT32_MAX;
    len = fp_pool_map_req_encode(&map, buf, sizeof(buf));
    assert_int_equal(fp_pool_map_req_decode(buf, len, &mout), FP_ERR_INVALID_PARAM);

    /* POOL_COMMIT: the checksum is always there, has_checksum says whether it counts. */
    len = fp_pool_commit_req_encode(&commit, buf, sizeof(buf));
    assert_int_equal(len, 8 + 8 + 4 + FP_POOL_HASH_SIZE);
    assert_memory_equal(buf + 20, commit.checksum, FP_POOL_HASH_SIZE);
    memset(&cout, SENTINEL, sizeof(cout));
    assert_int_equal(fp_pool_commit_req_decode(buf, len, &cout), FP_OK);
    assert_int_equal(cout.region, commit.region);
    assert_int_equal(cout.lease, commit.lease);
    assert_int_equal(cout.has_checksum, 1);
    assert_memory_equal(cout.checksum, commit.checksum, FP_POOL_HASH_SIZE);

    /* POOL_LEASE: RENEW and RELEASE only. */
    for (uint32_t op = 0; op < 8; op++) {
        lease.op = op;
        len = fp_pool_lease_req_encode(&lease, buf, sizeof(buf));
        assert_int_equal(len, 20);
        memset(&lout, SENTINEL, sizeof(lout));
        if (op == FP_POOL_LEASE_RENEW || op == FP_POOL_LEASE_RELEASE) {
            assert_int_equal(fp_pool_lease_req_decode(buf, len, &lout), FP_OK);
            assert_int_equal(lout.region, lease.region);
            assert_int_equal(lout.lease, lease.lease);
            assert_int_equal(lout.op, op);
        } else {
            assert_int_equal(fp_pool_lease_req_decode(buf, len, &lout), FP_ERR_INVALID_PARAM);
            assert_int_equal(lout.op, 0xa5a5a5a5u);
        }
    }

    /* POOL_NODES and POOL_REGIONS requests. */
    len = fp_pool_list_req_encode(&list, buf, sizeof(buf));
    assert_int_equal(len, 4);
    assert_int_equal(fp_pool_list_req_decode(buf, len, &listout), FP_OK);
    assert_int_equal(listout.first, list.first);
}

static void test_nodes_rep(void **state)
{
    static fp_pool_node_entry_t in[FP_POOL_LIST_MAX + 8], out[FP_POOL_LIST_MAX + 8];
    uint32_t len, written, total, count, one, len2;

    (void)state;
    for (uint32_t i = 0; i < FP_POOL_LIST_MAX + 8; i++)
        in[i] = sample_node(i);

    /* Round trip; the header is total, count. */
    written = 99;
    len = fp_pool_nodes_rep_encode(10, in, 3, buf, sizeof(buf), &written);
    assert_int_equal(written, 3);
    assert_int_equal(fp_proto_get_u32(buf), 10);
    assert_int_equal(fp_proto_get_u32(buf + 4), 3);
    assert_int_equal(fp_pool_nodes_rep_decode(buf, len, &total, out, 3, &count), FP_OK);
    assert_int_equal(total, 10);
    assert_int_equal(count, 3);
    for (uint32_t i = 0; i < 3; i++)
        assert_node_equal(&out[i], &in[i]);
    /* More room than needed is fine; less than the count is not. */
    assert_int_equal(fp_pool_nodes_rep_decode(buf, len, &total, out, 100, &count), FP_OK);
    total = count = 77;
    assert_int_equal(fp_pool_nodes_rep_decode(buf, len, &total, out, 2, &count), FP_ERR_PROTOCOL);
    assert_int_equal(total, 77);
    assert_int_equal(count, 77);

    /* An empty list, total 0 or not. */
    len = fp_pool_nodes_rep_encode(0, in, 0, buf, sizeof(buf), &written);
    assert_int_equal(len, 8);
    assert_int_equal(written, 0);
    assert_int_equal(fp_pool_nodes_rep_decode(buf, len, &total, NULL, 0, &count), FP_OK);
    assert_int_equal(total, 0);
    assert_int_equal(count, 0);

    /* count over total: refused both ways. */
    assert_int_equal(fp_pool_nodes_rep_encode(2, in, 3, buf, sizeof(buf), &written), 0);
    len = fp_pool_nodes_rep_encode(3, in, 3, buf, sizeof(buf), &written);
    fp_proto_put_u32(buf, 2);
    assert_int_equal(fp_pool_nodes_rep_decode(buf, len, &total, out, 3, &count), FP_ERR_PROTOCOL);

    /* Partial fill: as many whole entries as fit (the sample entries have one size). */
    len = fp_pool_nodes_rep_encode(3, in, 1, buf, sizeof(buf), &written);
    one = len - 8;
    for (uint32_t fit = 0; fit <= 3; fit++) {
        const uint32_t extras[] = {0, 1, one - 1};

        for (size_t e = 0; e < (fit < 3 ? 3u : 1u); e++) {
            written = 99;
            len2 = fp_pool_nodes_rep_encode(50, in, 3, buf, 8 + fit * one + extras[e], &written);
            assert_int_equal(written, fit);
            assert_int_equal(len2, 8 + fit * one);
            assert_int_equal(fp_proto_get_u32(buf + 4), fit);
            assert_int_equal(fp_pool_nodes_rep_decode(buf, len2, &total, out, 3, &count), FP_OK);
            assert_int_equal(total, 50);
            assert_int_equal(count, fit);
        }
    }
    /* Not even the header. */
    for (size_t cap = 0; cap < 8; cap++)
        assert_int_equal(fp_pool_nodes_rep_encode(3, in, 3, buf, cap, &written), 0);

    /* At most FP_POOL_LIST_MAX entries are written, and decoded. */
    {
        size_t cap = 8 + (size_t)(FP_POOL_LIST_MAX + 8) * (one + 4);
        uint8_t *big = malloc(cap);

        assert_non_null(big);
        len = fp_pool_nodes_rep_encode(1000, in, FP_POOL_LIST_MAX + 8, big, cap, &written);
        assert_int_equal(written, FP_POOL_LIST_MAX);
        assert_int_equal(
            fp_pool_nodes_rep_decode(big, len, &total, out, FP_POOL_LIST_MAX + 8, &count), FP_OK);
        assert_int_equal(count, FP_POOL_LIST_MAX);
        assert_node_equal(&out[FP_POOL_LIST_MAX - 1], &in[FP_POOL_LIST_MAX - 1]);
        /* A count of 257 is refused before any entry is read. */
        fp_proto_put_u32(big + 4, FP_POOL_LIST_MAX + 1);
        assert_int_equal(
            fp_pool_nodes_rep_decode(big, len, &total, out, FP_POOL_LIST_MAX + 8, &count),
            FP_ERR_PROTOCOL);
        fp_proto_put_u32(big + 4, UINT32_MAX);
        fp_proto_put_u32(big, UINT32_MAX);
        assert_int_equal(fp_pool_nodes_rep_decode(big, len, &total, out, UINT32_MAX, &count),
                         FP_ERR_PROTOCOL);
        free(big);
    }

    /* A bad address in the second entry: the first is not written either. */
    len = fp_pool_nodes_rep_encode(3, in, 3, buf, sizeof(buf), &written);
    buf[8 + one + 52] = '\n';
    memset(out, SENTINEL, sizeof(out[0]));
    assert_int_equal(fp_pool_nodes_rep_decode(buf, len, &total, out, 3, &count),
                     FP_ERR_INVALID_PARAM);
    assert_int_equal(out[0].member, 0xa5a5a5a5a5a5a5a5ull);
    /* And an empty one is malformed. */
    len = fp_pool_nodes_rep_encode(1, in, 1, buf, sizeof(buf), &written);
    fp_proto_put_u16(buf + 8 + 48, 0);
    assert_int_equal(fp_pool_nodes_rep_decode(buf, 8 + 50, &total, out, 3, &count),
                     FP_ERR_PROTOCOL);
}

static void test_regions_rep(void **state)
{
    static fp_pool_region_desc_t in[FP_POOL_LIST_MAX + 2], out[FP_POOL_LIST_MAX + 2];
    uint32_t len, written, total, count;

    (void)state;
    for (uint32_t i = 0; i < FP_POOL_LIST_MAX + 2; i++)
        in[i] = sample_desc(i);

    len = fp_pool_regions_rep_encode(4, in, 4, buf, sizeof(buf), &written);
    assert_int_equal(written, 4);
    assert_int_equal(fp_pool_regions_rep_decode(buf, len, &total, out, 4, &count), FP_OK);
    assert_int_equal(total, 4);
    assert_int_equal(count, 4);
    for (uint32_t i = 0; i < 4; i++)
        assert_desc_equal(&out[i], &in[i]);
    assert_int_equal(fp_pool_regions_rep_decode(buf, len, &total, out, 3, &count), FP_ERR_PROTOCOL);

    /* Partial fill into one control frame: entries of different sizes, whole ones only. */
    len = fp_pool_regions_rep_encode(FP_POOL_LIST_MAX + 2, in, FP_POOL_LIST_MAX + 2, buf,
                                     FP_PROTO_MAX_CONTROL, &written);
    assert_true(written > 4 && written < FP_POOL_LIST_MAX);
    assert_true(len <= FP_PROTO_MAX_CONTROL);
    assert_true(len + 128 + 2 + in[written].name.len > FP_PROTO_MAX_CONTROL);
    assert_int_equal(fp_pool_regions_rep_decode(buf, len, &total, out, FP_POOL_LIST_MAX, &count),
                     FP_OK);
    assert_int_equal(total, FP_POOL_LIST_MAX + 2);
    assert_int_equal(count, written);
    assert_desc_equal(&out[written - 1], &in[written - 1]);

    /* Over FP_POOL_LIST_MAX: the encoder stops at the limit. */
    {
        size_t cap = 8 + (size_t)(FP_POOL_LIST_MAX + 2) * (128 + 2 + 32);
        uint8_t *big = malloc(cap);

        assert_non_null(big);
        len = fp_pool_regions_rep_encode(FP_POOL_LIST_MAX + 2, in, FP_POOL_LIST_MAX + 2, big, cap,
                                         &written);
        assert_int_equal(written, FP_POOL_LIST_MAX);
        assert_int_equal(
            fp_pool_regions_rep_decode(big, len, &total, out, FP_POOL_LIST_MAX + 2, &count), FP_OK);
        assert_int_equal(count, FP_POOL_LIST_MAX);
        free(big);
    }

    /* A bad name in an entry. */
    in[1].name = mkname("no/slash");
    len = fp_pool_regions_rep_encode(2, in, 2, buf, sizeof(buf), &written);
    assert_int_equal(written, 2);
    assert_int_equal(fp_pool_regions_rep_decode(buf, len, &total, out, 2, &count),
                     FP_ERR_INVALID_PARAM);
}

static void test_map_rep(void **state)
{
    static const uint8_t expected[] = {
        0x02, 0x00, 0x00, 0x00,                         /* count 2 */
        0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* member 7 */
        0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, /* slab (1 << 32) | 10 */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* member 0: no copy */
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    static fp_pool_map_entry_t in[FP_POOL_LIST_MAX + 1], out[FP_POOL_LIST_MAX + 1];
    fp_pool_map_entry_t two[2] = {{.member = 7, .slab = (1ull << 32) | 10}, {0, 0}};
    uint32_t len, count;

    (void)state;
    len = fp_pool_map_rep_encode(two, 2, buf, sizeof(buf));
    assert_int_equal(len, sizeof(expected));
    assert_memory_equal(buf, expected, sizeof(expected));

    for (uint32_t i = 0; i < FP_POOL_LIST_MAX + 1; i++)
        in[i] = sample_map_entry(i);
    for (uint32_t n = 0; n <= FP_POOL_LIST_MAX; n += 51) {
        len = fp_pool_map_rep_encode(in, n, buf, sizeof(buf));
        assert_int_equal(len, 4 + 16 * n);
        count = 9999;
        assert_int_equal(fp_pool_map_rep_decode(buf, len, out, n, &count), FP_OK);
        assert_int_equal(count, n);
        for (uint32_t i = 0; i < n; i++) {
            assert_int_equal(out[i].member, in[i].member);
            assert_int_equal(out[i].slab, in[i].slab);
        }
        if (n > 0) {
            assert_int_equal(fp_pool_map_rep_decode(buf, len, out, n - 1, &count), FP_ERR_PROTOCOL);
            assert_int_equal(count, n);
        }
    }
    /* The most entries: FP_POOL_LIST_MAX. */
    len = fp_pool_map_rep_encode(in, FP_POOL_LIST_MAX, buf, sizeof(buf));
    assert_int_equal(len, 4 + 16 * FP_POOL_LIST_MAX);
    assert_int_equal(fp_pool_map_rep_decode(buf, len, out, FP_POOL_LIST_MAX, &count), FP_OK);
    assert_int_equal(fp_pool_map_rep_encode(in, FP_POOL_LIST_MAX + 1, buf, sizeof(buf)), 0);
    len = 4 + 16 * (FP_POOL_LIST_MAX + 1);
    fp_proto_put_u32(buf, FP_POOL_LIST_MAX + 1);
    assert_int_equal(fp_pool_map_rep_decode(buf, len, out, FP_POOL_LIST_MAX + 1, &count),
                     FP_ERR_PROTOCOL);
    /* All or nothing: no partial fill. */
    assert_int_equal(fp_pool_map_rep_encode(in, 10, buf, 4 + 16 * 10 - 1), 0);
    assert_int_equal(fp_pool_map_rep_encode(in, 0, buf, 4), 4);
    assert_int_equal(fp_pool_map_rep_encode(in, 0, buf, 3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_message_frames),
        cmocka_unit_test(test_every_message_short_cap),
        cmocka_unit_test(test_join),
        cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_addr_limits),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_name_limits),
        cmocka_unit_test(test_open_delete_drain),
        cmocka_unit_test(test_desc),
        cmocka_unit_test(test_map_commit_lease_list),
        cmocka_unit_test(test_nodes_rep),
        cmocka_unit_test(test_regions_rep),
        cmocka_unit_test(test_map_rep),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
