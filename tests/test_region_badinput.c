/* SPDX-License-Identifier: MIT */
/*
 * farpoold against bad REGION_* requests (REGION_CREATE, REGION_OPEN,
 * REGION_SLABS, REGION_DELETE of docs/protocol.md), on a real daemon over
 * loopback, in the manner of test_server_badinput.c.
 *
 * Each test speaks raw bytes on connections of its own, while a "victim", a
 * public-API connection opened by the group setup, has created a region and
 * allocated a private slab and filled both with a known pattern
 * (tests/common/pattern.h). After every attack a test asserts that:
 *   1. the attacker got the documented reply (the exact FP_ERR_* code, echoing
 *      its op and id), and that the connection is still usable (a PING after
 *      it is answered) or, for a request before the handshake, closed;
 *   2. the daemon is alive and a NEW client connects and gets STATS within
 *      2 s;
 *   3. the victim's region and slab read back identical, and no slab was
 *      allocated or freed by the attack (STATS);
 *   4. the daemon's log gained exactly one warn line per rejected request
 *      ("PEER: OP #ID rejected: STATUS", as server.c's reply_error() writes
 *      it) or dropped connection, and no error line.
 *
 * DESIGN
 * The log check, the watchdog and the raw-frame helpers are shared with
 * test_server_badinput.c (tests/common/attack.h): log lines are matched by
 * needles that cannot occur elsewhere (peer address and a request id unique
 * per daemon); after the last expected line has appeared the test waits
 * FP_TEST_ATTACK_LOG_SETTLE_MS more and then requires exact counts, so a
 * second line for one event is caught. Raw sockets time out after 5 s
 * (daemon.h), the public API after API_TIMEOUT_MS, and a SIGALRM watchdog
 * fails a test that still runs after FP_TEST_ATTACK_WATCHDOG_S.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <farpool/farpool.h>

#include "client/region_meta.h"
#include "common/attack.h"
#include "common/daemon.h"
#include "common/parse.h"
#include "common/pattern.h"
#include "proto/proto.h"

#define API_TIMEOUT_MS 5000
#define CLOSE_WAIT_MS  3000

#define SLAB           (64ull << 10)
#define CAPACITY       (8ull << 20)
#define VICTIM_REGION  "victim.region"
#define VICTIM_SIZE    (3 * SLAB + 777)
#define VICTIM_VERSION 1u

/* Client keys: exactly 16 bytes each (the literal's NUL is not copied). */
#define KEY_VICTIM   "victim-key-00001"
#define KEY_ATTACKER "attacker-key-001"
#define KEY_OTHER    "other-key-000001"

typedef struct env {
    fp_test_daemon_t d;
    farpool_node_t *victim;
    fp_region_info_t region; /* the victim's region */
    uint64_t vslab;          /* the victim's private slab */
    uint8_t *buf;            /* SLAB bytes of scratch */
    uint64_t next_id;
} env_t;

/* ---- small utilities ---- */

static uint64_t next_id(env_t *e)
{
    return e->next_id++;
}

/* ---- public-API clients ---- */

static fp_status_t api_connect(const env_t *e, const char *key, int timeout_ms,
                               farpool_node_t **node_p)
{
    farpool_node_params_t p;

    memset(&p, 0, sizeof(p));
    p.field_mask = FARPOOL_NODE_PARAM_TIMEOUT;
    p.timeout_ms = timeout_ms;
    if (key != NULL) {
        p.field_mask |= FARPOOL_NODE_PARAM_CLIENT_KEY;
        memcpy(p.client_key, key, sizeof(p.client_key));
    }
    return farpool_node_connect(e->d.addr, &p, node_p);
}

/* A new client connects and gets STATS within FP_TEST_ATTACK_STATS_DEADLINE_MS. */
static farpool_node_stats_t new_client_stats(env_t *e)
{
    farpool_node_stats_t stats = {0};

    fp_test_attack_new_client_stats(&e->d, NULL, &stats);
    return stats;
}

/* The victim reads back its region and its slab. */
static void victim_check(env_t *e)
{
    const fp_region_info_t *r = &e->region;
    fp_status_t status;

    for (uint32_t i = 0; i < r->nslabs; i++) {
        uint64_t off = (uint64_t)i * r->slab_size;
        uint64_t len = r->size - off < r->slab_size ? r->size - off : r->slab_size;

        memset(e->buf, 0, len);
        status = farpool_slab_read(e->victim, r->slabs[i], 0, e->buf, len);
        if (status != FP_OK)
            fail_msg("the victim cannot read slab %u of its region: %s", i,
                     fp_status_string(status));
        FP_PATTERN_ASSERT(e->buf, len, r->id, off, VICTIM_VERSION);
    }
    memset(e->buf, 0, SLAB);
    status = farpool_slab_read(e->victim, e->vslab, 0, e->buf, SLAB);
    if (status != FP_OK)
        fail_msg("the victim cannot read its slab: %s", fp_status_string(status));
    FP_PATTERN_ASSERT(e->buf, SLAB, e->vslab, 0, VICTIM_VERSION);
}

/* Assertions 2 and 3: alive, serving, nothing lost, and @slabs slabs in use. */
static void check_healthy(env_t *e, uint64_t slabs)
{
    farpool_node_stats_t st;

    fp_test_attack_check_alive(&e->d);
    st = new_client_stats(e);
    if (st.slabs != slabs)
        fail_msg("STATS shows %llu slabs, expected %llu", (unsigned long long)st.slabs,
                 (unsigned long long)slabs);
    victim_check(e);
}

/* ---- raw connections ---- */

static int raw_connect(const env_t *e)
{
    int fd = fp_test_connect_raw(e->d.addr);

    if (fd < 0)
        fail_msg("cannot connect to %s", e->d.addr);
    return fd;
}

static void raw_ping(env_t *e, int fd)
{
    uint8_t out[29];
    uint64_t id = next_id(e);

    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(id + i * 5);
    fp_test_attack_ping(fd, id, out, sizeof(out));
}

static int raw_open(env_t *e, const char *key)
{
    uint8_t buf[FP_PROTO_HELLO_REP_SIZE];
    fp_proto_hello_req_t req = {1, 1, {0}};
    fp_proto_hello_rep_t rep;
    uint64_t id = next_id(e);
    fp_proto_hdr_t h;
    int fd = raw_connect(e);

    memcpy(req.client_key, key, FP_PROTO_KEY_SIZE);
    fp_proto_hello_req_encode(&req, buf);
    fp_test_attack_send_frame(fd, FP_OP_HELLO, id, buf, FP_PROTO_HELLO_REQ_SIZE);
    h = fp_test_attack_recv_reply(fd, FP_OP_HELLO, id, buf, sizeof(buf));
    if (h.status != FP_OK || fp_proto_hello_rep_decode(buf, h.length, &rep) != FP_OK)
        fail_msg("HELLO failed: status %d, %u bytes", (int)h.status, h.length);
    return fd;
}

/*
 * The request #@id just sent on @fd must be rejected with @want and logged
 * once; then the connection is closed by the node (@closes) or still usable.
 */
static void expect_rejected(env_t *e, fp_test_attack_logcheck_t *lc, int fd, uint8_t op,
                            uint64_t id, fp_status_t want, bool closes)
{
    char peer[FP_TEST_ADDR_MAX];

    fp_test_attack_peer(fd, peer, sizeof(peer));
    fp_test_attack_log_expect_rejection(lc, peer, op, id, want);
    fp_test_attack_expect_reply(fd, op, id, want, NULL, 0);
    if (closes) {
        if (!fp_test_wait_closed(fd, CLOSE_WAIT_MS))
            fail_msg("%s #%llu: the node kept the connection open", fp_proto_op_name(op),
                     (unsigned long long)id);
    } else {
        raw_ping(e, fd);
    }
}

/* Send @op with @payload on @fd; it must be rejected with @want, the connection kept. */
static void reject(env_t *e, fp_test_attack_logcheck_t *lc, int fd, uint8_t op, const void *payload,
                   uint32_t len, fp_status_t want)
{
    uint64_t id = next_id(e);

    fp_test_attack_send_frame(fd, op, id, payload, len);
    expect_rejected(e, lc, fd, op, id, want, false);
}

/* ---- region payloads ---- */

static uint32_t create_payload(uint8_t *buf, uint64_t size, uint32_t granule, const char *name)
{
    fp_proto_region_create_req_t req;

    memset(&req, 0, sizeof(req));
    req.size = size;
    req.granule = granule;
    req.name.len = (uint16_t)strlen(name);
    memcpy(req.name.text, name, req.name.len);
    return fp_proto_region_create_req_encode(&req, buf);
}

static uint32_t name_payload(uint8_t *buf, const char *name)
{
    fp_proto_region_name_t n;

    n.len = (uint16_t)strlen(name);
    memcpy(n.text, name, n.len);
    return fp_proto_region_name_req_encode(&n, buf);
}

static uint32_t slabs_payload(uint8_t *buf, uint64_t region, uint32_t first, uint32_t count)
{
    fp_proto_region_slabs_req_t req = {region, first, count};

    fp_proto_region_slabs_req_encode(&req, buf);
    return FP_PROTO_REGION_SLABS_REQ_SIZE;
}

/* A successful REGION_CREATE or REGION_OPEN on @fd; the reply decoded. */
static fp_proto_region_rep_t region_ok(env_t *e, int fd, uint8_t op, const uint8_t *payload,
                                       uint32_t len)
{
    uint8_t buf[FP_PROTO_REGION_REP_SIZE];
    fp_proto_region_rep_t rep;
    uint64_t id = next_id(e);
    fp_proto_hdr_t h;

    fp_test_attack_send_frame(fd, op, id, payload, len);
    h = fp_test_attack_expect_reply(fd, op, id, FP_OK, buf, sizeof(buf));
    if (fp_proto_region_rep_decode(buf, h.length, &rep) != FP_OK)
        fail_msg("%s #%llu: the reply does not decode", fp_proto_op_name(op),
                 (unsigned long long)id);
    return rep;
}

static void simple_ok(env_t *e, int fd, uint8_t op, const uint8_t *payload, uint32_t len)
{
    uint64_t id = next_id(e);

    fp_test_attack_send_frame(fd, op, id, payload, len);
    fp_test_attack_expect_reply(fd, op, id, FP_OK, NULL, 0);
}

static uint64_t slabs_in_use(env_t *e)
{
    return new_client_stats(e).slabs;
}

/* ---- the attacks ---- */

/* REGION_CREATE: every malformed or invalid request, one after another on one connection. */
static void test_create_bad(void **state)
{
    env_t *e = *state;
    uint8_t p[FP_PROTO_MAX_CONTROL];
    uint64_t slabs0 = slabs_in_use(e);
    char name[300];
    fp_test_attack_logcheck_t lc;
    uint32_t len;
    int fd;

    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_ATTACKER);
    memset(p, 0, sizeof(p));
    /* Malformed: FP_ERR_PROTOCOL. */
    reject(e, &lc, fd, FP_OP_REGION_CREATE, p, 0, FP_ERR_PROTOCOL);
    len = create_payload(p, SLAB, 4096, "fine.name");
    reject(e, &lc, fd, FP_OP_REGION_CREATE, p, FP_PROTO_REGION_CREATE_HDR - 1, FP_ERR_PROTOCOL);
    reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len - 1, FP_ERR_PROTOCOL); /* name cut short */
    p[len] = 'x';
    reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len + 1, FP_ERR_PROTOCOL); /* a byte too many */
    fp_proto_put_u16(p + 18, 1);
    reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len, FP_ERR_PROTOCOL); /* reserved */
    fp_proto_put_u16(p + 18, 0x8000);
    reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len, FP_ERR_PROTOCOL);
    fp_proto_put_u16(p + 18, 0);
    fp_proto_put_u16(p + 16, 0xffff); /* name_len far beyond the frame */
    reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len, FP_ERR_PROTOCOL);

    /* Well formed, invalid: FP_ERR_INVALID_PARAM. */
    len = create_payload(p, SLAB, 4096, "");
    reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len, FP_ERR_INVALID_PARAM);
    memset(name, 'a', 256);
    name[256] = '\0';
    len = create_payload(p, SLAB, 4096, name); /* 256 bytes */
    reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len, FP_ERR_INVALID_PARAM);
    name[255] = '\0'; /* 255 bytes: valid, but its size is wrong below */
    len = create_payload(p, 0, 4096, name);
    reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len, FP_ERR_INVALID_PARAM);
    {
        static const char *const bad[] = {"a/b", "a b", "..\\x", "caf\xc3\xa9", "x\n", "\xff"};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            len = create_payload(p, SLAB, 4096, bad[i]);
            reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len, FP_ERR_INVALID_PARAM);
        }
    }
    len = create_payload(p, SLAB, 4096, "nul.x");
    p[FP_PROTO_REGION_CREATE_HDR + 3] = '\0'; /* a NUL inside the name */
    reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len, FP_ERR_INVALID_PARAM);
    {
        static const uint64_t sizes[] = {0, CAPACITY + 1, UINT64_MAX};
        static const uint32_t granules[] = {0, 2048, 4095, 12288, 4u << 20, UINT32_MAX};

        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            len = create_payload(p, sizes[i], 4096, "attacker.r");
            reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len, FP_ERR_INVALID_PARAM);
        }
        for (size_t i = 0; i < sizeof(granules) / sizeof(granules[0]); i++) {
            len = create_payload(p, SLAB, granules[i], "attacker.r");
            reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len, FP_ERR_INVALID_PARAM);
        }
    }
    /* The victim's name: FP_ERR_EXISTS. The whole capacity: FP_ERR_NO_SPACE, rolled back. */
    len = create_payload(p, SLAB, 4096, VICTIM_REGION);
    reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len, FP_ERR_EXISTS);
    len = create_payload(p, CAPACITY, 4096, "attacker.all");
    reject(e, &lc, fd, FP_OP_REGION_CREATE, p, len, FP_ERR_NO_SPACE);
    len = name_payload(p, "attacker.all");
    reject(e, &lc, fd, FP_OP_REGION_OPEN, p, len, FP_ERR_NO_ENTRY);
    close(fd);
    check_healthy(e, slabs0);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* REGION_OPEN and REGION_DELETE: malformed, invalid, unknown names. */
static void test_open_delete_bad(void **state)
{
    static const uint8_t ops[] = {FP_OP_REGION_OPEN, FP_OP_REGION_DELETE};
    env_t *e = *state;
    uint8_t p[FP_PROTO_MAX_CONTROL];
    uint64_t slabs0 = slabs_in_use(e);
    fp_test_attack_logcheck_t lc;
    uint32_t len;
    int fd;

    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_ATTACKER);
    for (size_t i = 0; i < sizeof(ops); i++) {
        uint8_t op = ops[i];

        memset(p, 0, sizeof(p));
        reject(e, &lc, fd, op, p, 0, FP_ERR_PROTOCOL);
        reject(e, &lc, fd, op, p, FP_PROTO_REGION_NAME_HDR - 1, FP_ERR_PROTOCOL);
        /* The victim's name, framed wrongly: nothing may happen to its region. */
        len = name_payload(p, VICTIM_REGION);
        reject(e, &lc, fd, op, p, len - 1, FP_ERR_PROTOCOL);
        p[len] = 'y';
        reject(e, &lc, fd, op, p, len + 1, FP_ERR_PROTOCOL);
        fp_proto_put_u16(p + 2, 1);
        reject(e, &lc, fd, op, p, len, FP_ERR_PROTOCOL);
        fp_proto_put_u16(p + 2, 0);
        fp_proto_put_u16(p, (uint16_t)(len - FP_PROTO_REGION_NAME_HDR + 1));
        reject(e, &lc, fd, op, p, len, FP_ERR_PROTOCOL);
        /* Bad names. */
        len = name_payload(p, "");
        reject(e, &lc, fd, op, p, len, FP_ERR_INVALID_PARAM);
        len = name_payload(p, "victim/region");
        reject(e, &lc, fd, op, p, len, FP_ERR_INVALID_PARAM);
        memset(p + FP_PROTO_REGION_NAME_HDR, 'v', 300);
        fp_proto_put_u16(p, 300);
        reject(e, &lc, fd, op, p, FP_PROTO_REGION_NAME_HDR + 300, FP_ERR_INVALID_PARAM);
        /* Unknown, and a different case of the victim's. */
        len = name_payload(p, "no.such.region");
        reject(e, &lc, fd, op, p, len, FP_ERR_NO_ENTRY);
        len = name_payload(p, "VICTIM.REGION");
        reject(e, &lc, fd, op, p, len, FP_ERR_NO_ENTRY);
    }
    close(fd);
    check_healthy(e, slabs0);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* REGION_SLABS: without opening, forged ids, bad sizes and counts, past the end. */
static void test_slabs_bad(void **state)
{
    env_t *e = *state;
    const uint64_t rid = e->region.id;
    const uint64_t forged[] = {0,
                               UINT64_MAX,
                               rid ^ (1ull << 32), /* another generation of its index */
                               rid + 1,            /* the next index */
                               rid - 1,
                               rid + (1ull << 40), /* a later generation */
                               0x123456789abcdef0ull};
    uint8_t p[FP_PROTO_MAX_CONTROL], ids[FP_PROTO_REGION_SLABS_MAX * 8];
    uint64_t slabs0 = slabs_in_use(e), got[FP_PROTO_REGION_SLABS_MAX];
    uint32_t n = e->region.nslabs, len;
    fp_proto_region_rep_t rep;
    fp_proto_hdr_t h;
    fp_test_attack_logcheck_t lc;
    uint64_t id;
    int fd;

    fp_test_attack_log_begin(&e->d, &lc);
    /* The victim's own key does not help: the region is not open here. */
    fd = raw_open(e, KEY_VICTIM);
    len = slabs_payload(p, rid, 0, 1);
    reject(e, &lc, fd, FP_OP_REGION_SLABS, p, len, FP_ERR_PERMISSION);
    for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
        len = slabs_payload(p, forged[i], 0, 1);
        reject(e, &lc, fd, FP_OP_REGION_SLABS, p, len, FP_ERR_PERMISSION);
    }
    len = slabs_payload(p, rid, 0, 1);
    reject(e, &lc, fd, FP_OP_REGION_SLABS, p, 0, FP_ERR_PROTOCOL);
    reject(e, &lc, fd, FP_OP_REGION_SLABS, p, len - 1, FP_ERR_PROTOCOL);
    reject(e, &lc, fd, FP_OP_REGION_SLABS, p, len + 1, FP_ERR_PROTOCOL);

    /* Now open it: the counts and bounds are checked. */
    len = name_payload(p, VICTIM_REGION);
    rep = region_ok(e, fd, FP_OP_REGION_OPEN, p, len);
    assert_int_equal(rep.region_id, rid);
    assert_int_equal(rep.nslabs, n);
    len = slabs_payload(p, rid, 0, 0);
    reject(e, &lc, fd, FP_OP_REGION_SLABS, p, len, FP_ERR_PROTOCOL);
    len = slabs_payload(p, rid, 0, FP_PROTO_REGION_SLABS_MAX + 1);
    reject(e, &lc, fd, FP_OP_REGION_SLABS, p, len, FP_ERR_PROTOCOL);
    len = slabs_payload(p, rid, 0, UINT32_MAX);
    reject(e, &lc, fd, FP_OP_REGION_SLABS, p, len, FP_ERR_PROTOCOL);
    len = slabs_payload(p, rid, 0, FP_PROTO_REGION_SLABS_MAX);
    reject(e, &lc, fd, FP_OP_REGION_SLABS, p, len, FP_ERR_OUT_OF_RANGE);
    len = slabs_payload(p, rid, 0, n + 1);
    reject(e, &lc, fd, FP_OP_REGION_SLABS, p, len, FP_ERR_OUT_OF_RANGE);
    len = slabs_payload(p, rid, n, 1);
    reject(e, &lc, fd, FP_OP_REGION_SLABS, p, len, FP_ERR_OUT_OF_RANGE);
    len = slabs_payload(p, rid, UINT32_MAX, 1); /* first + count overflows 32 bits */
    reject(e, &lc, fd, FP_OP_REGION_SLABS, p, len, FP_ERR_OUT_OF_RANGE);
    len = slabs_payload(p, rid, UINT32_MAX - 10, FP_PROTO_REGION_SLABS_MAX);
    reject(e, &lc, fd, FP_OP_REGION_SLABS, p, len, FP_ERR_OUT_OF_RANGE);
    /* Forged ids stay refused with the real one open. */
    for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
        len = slabs_payload(p, forged[i], 0, 1);
        reject(e, &lc, fd, FP_OP_REGION_SLABS, p, len, FP_ERR_PERMISSION);
    }
    /* And the right request works: the whole list, then its tail. */
    len = slabs_payload(p, rid, 0, n);
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_REGION_SLABS, id, p, len);
    h = fp_test_attack_expect_reply(fd, FP_OP_REGION_SLABS, id, FP_OK, ids, sizeof(ids));
    assert_int_equal(fp_proto_region_slabs_rep_decode(ids, h.length, n, got), FP_OK);
    assert_memory_equal(got, e->region.slabs, n * sizeof(uint64_t));
    len = slabs_payload(p, rid, n - 1, 1);
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_REGION_SLABS, id, p, len);
    h = fp_test_attack_expect_reply(fd, FP_OP_REGION_SLABS, id, FP_OK, ids, sizeof(ids));
    assert_int_equal(h.length, 8);
    assert_int_equal(fp_proto_get_u64(ids), e->region.slabs[n - 1]);
    close(fd);
    check_healthy(e, slabs0);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* Data requests and SLAB_FREE on a region's slabs from a connection that did not open it. */
static void test_region_slab_access(void **state)
{
    env_t *e = *state;
    const fp_region_info_t *r = &e->region;
    uint64_t slabs0 = slabs_in_use(e);
    uint8_t p[FP_PROTO_MAX_CONTROL];
    uint8_t frame[FP_PROTO_HDR_SIZE + FP_PROTO_VEC_HDR + 2 * FP_PROTO_RANGE_SIZE + 64];
    fp_proto_range_t two[2] = {{e->vslab, 0, 32}, {r->slabs[1], 0, 32}};
    fp_test_attack_logcheck_t lc;
    uint32_t args, len;
    uint64_t id;
    int fd;

    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_VICTIM); /* the creator's key, but not opened here */
    for (uint32_t i = 0; i < r->nslabs; i++) {
        fp_proto_range_t one = {r->slabs[i], 0, 64};

        id = next_id(e);
        args = fp_proto_ranges_encode(FP_OP_READ, &one, 1, frame + FP_PROTO_HDR_SIZE);
        fp_test_attack_encode_request(frame, FP_OP_READ, id, args);
        fp_test_attack_send(fd, frame, FP_PROTO_HDR_SIZE + args);
        expect_rejected(e, &lc, fd, FP_OP_READ, id, FP_ERR_PERMISSION, false);

        id = next_id(e);
        args = fp_proto_ranges_encode(FP_OP_WRITE, &one, 1, frame + FP_PROTO_HDR_SIZE);
        memset(frame + FP_PROTO_HDR_SIZE + args, 0xee, 64);
        fp_test_attack_encode_request(frame, FP_OP_WRITE, id, args + 64);
        fp_test_attack_send(fd, frame, FP_PROTO_HDR_SIZE + args + 64);
        expect_rejected(e, &lc, fd, FP_OP_WRITE, id, FP_ERR_PERMISSION, false);

        fp_proto_put_u64(p, r->slabs[i]);
        reject(e, &lc, fd, FP_OP_SLAB_FREE, p, 8, FP_ERR_PERMISSION);
    }
    /* A WRITEV whose first range is the key's own slab: nothing is written at all. */
    id = next_id(e);
    args = fp_proto_ranges_encode(FP_OP_WRITEV, two, 2, frame + FP_PROTO_HDR_SIZE);
    memset(frame + FP_PROTO_HDR_SIZE + args, 0xdd, 64);
    fp_test_attack_encode_request(frame, FP_OP_WRITEV, id, args + 64);
    fp_test_attack_send(fd, frame, FP_PROTO_HDR_SIZE + args + 64);
    expect_rejected(e, &lc, fd, FP_OP_WRITEV, id, FP_ERR_PERMISSION, false);

    /* Opened, the slabs are readable here, but still not freeable. */
    len = name_payload(p, VICTIM_REGION);
    region_ok(e, fd, FP_OP_REGION_OPEN, p, len);
    fp_proto_put_u64(p, r->slabs[0]);
    reject(e, &lc, fd, FP_OP_SLAB_FREE, p, 8, FP_ERR_PERMISSION);
    close(fd);
    check_healthy(e, slabs0);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* REGION_* before HELLO: FP_ERR_AUTH, and the node closes the connection. */
static void test_before_hello(void **state)
{
    env_t *e = *state;
    uint8_t p[FP_PROTO_MAX_CONTROL];
    uint64_t slabs0 = slabs_in_use(e);
    fp_test_attack_logcheck_t lc;
    uint32_t len;
    uint64_t id;
    int fd;

    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_connect(e);
    len = create_payload(p, SLAB, 4096, "early.bird");
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_REGION_CREATE, id, p, len);
    expect_rejected(e, &lc, fd, FP_OP_REGION_CREATE, id, FP_ERR_AUTH, true);
    close(fd);
    fd = raw_connect(e);
    len = name_payload(p, VICTIM_REGION);
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_REGION_DELETE, id, p, len);
    expect_rejected(e, &lc, fd, FP_OP_REGION_DELETE, id, FP_ERR_AUTH, true);
    close(fd);
    check_healthy(e, slabs0);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* A REGION_CREATE cut short, then the client goes: no region, one line. */
static void test_truncated_create(void **state)
{
    env_t *e = *state;
    uint8_t f[FP_PROTO_HDR_SIZE + FP_PROTO_REGION_CREATE_REQ_MAX];
    uint64_t slabs0 = slabs_in_use(e);
    char peer[FP_TEST_ADDR_MAX];
    fp_test_attack_logcheck_t lc;
    uint32_t len;
    int fd;

    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_ATTACKER);
    fp_test_attack_peer(fd, peer, sizeof(peer));
    fp_test_attack_log_expect_event(&e->d, &lc, "%s: connection lost mid-request", peer);
    len = create_payload(f + FP_PROTO_HDR_SIZE, SLAB, 4096, "half.made");
    fp_test_attack_encode_request(f, FP_OP_REGION_CREATE, next_id(e), len);
    fp_test_attack_send(fd, f, FP_PROTO_HDR_SIZE + len - 3);
    shutdown(fd, SHUT_WR);
    if (!fp_test_wait_closed(fd, CLOSE_WAIT_MS))
        fail_msg("the node kept a connection open after its client's end");
    close(fd);
    check_healthy(e, slabs0);
    fp_test_attack_log_verify(&e->d, &lc);
    fd = raw_open(e, KEY_ATTACKER);
    fp_test_attack_log_begin(&e->d, &lc);
    len = name_payload(f, "half.made");
    reject(e, &lc, fd, FP_OP_REGION_OPEN, f, len, FP_ERR_NO_ENTRY);
    close(fd);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* After REGION_DELETE, the connections that had it open get FP_ERR_NO_ENTRY. */
static void test_deleted_region(void **state)
{
    env_t *e = *state;
    uint8_t p[FP_PROTO_MAX_CONTROL], f[FP_PROTO_HDR_SIZE + FP_PROTO_RANGE_SIZE];
    uint8_t ids[2 * 8];
    uint64_t slabs0 = slabs_in_use(e), s0;
    fp_proto_region_rep_t rep, rep2;
    fp_proto_range_t one;
    fp_proto_hdr_t h;
    fp_test_attack_logcheck_t lc;
    uint32_t len, args;
    uint64_t id;
    int a, b;

    fp_test_attack_log_begin(&e->d, &lc);
    a = raw_open(e, KEY_ATTACKER);
    b = raw_open(e, KEY_OTHER);
    len = create_payload(p, 2 * SLAB, 8192, "short.lived");
    rep = region_ok(e, a, FP_OP_REGION_CREATE, p, len);
    assert_int_equal(rep.nslabs, 2);
    assert_int_equal(rep.granule, 8192);
    assert_int_equal(rep.slab_size, SLAB);
    len = name_payload(p, "short.lived");
    rep2 = region_ok(e, b, FP_OP_REGION_OPEN, p, len);
    assert_int_equal(rep2.region_id, rep.region_id);
    len = slabs_payload(p, rep.region_id, 0, 2);
    id = next_id(e);
    fp_test_attack_send_frame(b, FP_OP_REGION_SLABS, id, p, len);
    h = fp_test_attack_expect_reply(b, FP_OP_REGION_SLABS, id, FP_OK, ids, sizeof(ids));
    assert_int_equal(h.length, 16);
    s0 = fp_proto_get_u64(ids);
    assert_int_equal(new_client_stats(e).slabs, slabs0 + 2);

    len = name_payload(p, "short.lived");
    simple_ok(e, a, FP_OP_REGION_DELETE, p, len);
    assert_int_equal(new_client_stats(e).slabs, slabs0);
    reject(e, &lc, a, FP_OP_REGION_DELETE, p, len, FP_ERR_NO_ENTRY);
    reject(e, &lc, b, FP_OP_REGION_OPEN, p, len, FP_ERR_NO_ENTRY);
    len = slabs_payload(p, rep.region_id, 0, 1);
    reject(e, &lc, b, FP_OP_REGION_SLABS, p, len, FP_ERR_NO_ENTRY);
    reject(e, &lc, a, FP_OP_REGION_SLABS, p, len, FP_ERR_NO_ENTRY);
    one = (fp_proto_range_t){s0, 0, 16};
    id = next_id(e);
    args = fp_proto_ranges_encode(FP_OP_READ, &one, 1, f + FP_PROTO_HDR_SIZE);
    fp_test_attack_encode_request(f, FP_OP_READ, id, args);
    fp_test_attack_send(b, f, FP_PROTO_HDR_SIZE + args);
    expect_rejected(e, &lc, b, FP_OP_READ, id, FP_ERR_NO_ENTRY, false);
    close(a);
    close(b);
    check_healthy(e, slabs0);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* ---- group ---- */

static int group_setup(void **state)
{
    static const char *const args[] = {"--slab-size", "64K", "--capacity", "8M", NULL};
    static env_t env;
    fp_status_t status;

    fp_test_attack_watchdog_install();

    env.next_id = 0x1000;
    status = fp_test_daemon_start(args, &env.d);
    if (status != FP_OK) {
        fprintf(stderr, "cannot start farpoold: %s\n", fp_status_string(status));
        return -1;
    }
    status = api_connect(&env, KEY_VICTIM, API_TIMEOUT_MS, &env.victim);
    if (status == FP_OK)
        status =
            fp_region_meta_create(env.victim, VICTIM_REGION, VICTIM_SIZE, 4096, 0, &env.region);
    if (status == FP_OK)
        status = farpool_slab_alloc(env.victim, &env.vslab, NULL);
    env.buf = malloc(SLAB);
    if (status != FP_OK || env.buf == NULL) {
        fprintf(stderr, "victim: cannot set up: %s\n", fp_status_string(status));
        return -1;
    }
    for (uint32_t i = 0; i < env.region.nslabs && status == FP_OK; i++) {
        uint64_t off = (uint64_t)i * SLAB;
        uint64_t len = VICTIM_SIZE - off < SLAB ? VICTIM_SIZE - off : SLAB;

        fp_pattern_fill(env.buf, len, env.region.id, off, VICTIM_VERSION);
        status = farpool_slab_write(env.victim, env.region.slabs[i], 0, env.buf, len);
    }
    fp_pattern_fill(env.buf, SLAB, env.vslab, 0, VICTIM_VERSION);
    if (status == FP_OK)
        status = farpool_slab_write(env.victim, env.vslab, 0, env.buf, SLAB);
    if (status != FP_OK) {
        fprintf(stderr, "victim: cannot write: %s\n", fp_status_string(status));
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
    farpool_node_close(e->victim);
    fp_region_info_cleanup(&e->region);
    free(e->buf);
    code = fp_test_daemon_stop(&e->d);
    if (code != 0) {
        fprintf(stderr, "farpoold exited with code %d after SIGTERM, expected 0\n", code);
        return -1;
    }
    return 0;
}

#define BADINPUT_TEST(f)                                                                           \
    cmocka_unit_test_setup_teardown(f, fp_test_attack_watchdog_arm, fp_test_attack_watchdog_disarm)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BADINPUT_TEST(test_create_bad),     BADINPUT_TEST(test_open_delete_bad),
        BADINPUT_TEST(test_slabs_bad),      BADINPUT_TEST(test_region_slab_access),
        BADINPUT_TEST(test_before_hello),   BADINPUT_TEST(test_truncated_create),
        BADINPUT_TEST(test_deleted_region),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
