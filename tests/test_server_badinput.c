/* SPDX-License-Identifier: MIT */
/*
 * farpoold against bad input: every kind of malformed, hostile or broken
 * client of the issue, one by one, on a real daemon over loopback.
 *
 * Each test speaks raw bytes (frames built with proto.h's encoders, or
 * deliberately not) on connections of its own, while a "victim" client, a
 * public-API connection (farpool_node_connect) opened by the group setup, has
 * filled slabs of its own with a known pattern (tests/common/pattern.h). After
 * every attack a test asserts that:
 *   1. the attacker got the documented reply (the exact FP_ERR_* code of
 *      docs/protocol.md, echoing its op and id) and then the documented
 *      connection state: closed by the node (header errors, handshake
 *      failures) or still usable (request errors: a PING after it is answered);
 *      or, where the spec says the node just closes, EOF;
 *   2. the daemon is alive and a NEW client connects and gets STATS within
 *      2 s;
 *   3. the victim's slabs read back identical, through its old connection;
 *   4. the daemon's log gained exactly one warn line per rejected request or
 *      dropped connection, naming it (the peer address and, for a request, its
 *      op, id and status, as server_conn.c's fp_server_conn_reply_error()
 *      writes them), and no error line.
 *
 * DESIGN
 * Log lines are matched by needles that cannot occur elsewhere: a rejected
 * request by "PEER: OP #ID rejected: STATUS" (ids are unique per daemon), a
 * dropped connection by "PEER: what" counted from before the attack. After
 * the last expected line has appeared the test waits
 * FP_TEST_ATTACK_LOG_SETTLE_MS more and then requires the exact counts, so a
 * second line for the same event is caught. Every test is bounded: raw
 * sockets time out after 5 s (daemon.h), the public API after API_TIMEOUT_MS,
 * and a SIGALRM watchdog fails a test that still runs after
 * FP_TEST_ATTACK_WATCHDOG_S. The log check, the watchdog and the raw-frame
 * helpers shared with test_region_badinput.c are in tests/common/attack.h.
 *
 * Tests that need other daemon options (a secret, a small capacity, short
 * timeouts) start a daemon of their own with its own victim.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <farpool/farpool.h>

#include "common/attack.h"
#include "common/daemon.h"
#include "common/parse.h"
#include "common/pattern.h"
#include "proto/proto.h"

#define API_TIMEOUT_MS 5000
#define CLOSE_WAIT_MS  3000 /* the node must close a connection within this */

#define MAIN_SLAB_SIZE (16ull << 20)
#define VICTIM_SLABS   2
#define VICTIM_VERSION 1u /* pattern version the victim wrote */
#define ATTACK_VERSION 2u /* pattern version of data an attacker sends */

#define GARBAGE_ROUNDS  24
#define GARBAGE_MAX     2048
#define NEVER_READ_REQS 64
#define MANY_CONNS      1000

#define SECRET       "0123456789abcdef0123456789abcdef"
#define WRONG_SECRET "0123456789abcdef0123456789abcdeX"

/* Client keys: exactly 16 bytes each (the literal's NUL is not copied). */
#define KEY_VICTIM   "victim-key-00001"
#define KEY_ATTACKER "attacker-key-001"
#define KEY_OTHER    "other-key-000001"

/* A daemon with its victim client. */
typedef struct env {
    fp_test_daemon_t d;
    const char *secret; /* NULL: the daemon has no secret */
    farpool_node_t *victim;
    uint64_t slab_size;
    uint64_t vslab[VICTIM_SLABS];
    unsigned nvslabs;
    uint8_t *buf; /* slab_size bytes of scratch */
    uint64_t next_id;
} env_t;

/* ---- small utilities ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void key_set(uint8_t *key, const char *text)
{
    memcpy(key, text, FP_PROTO_KEY_SIZE);
}

static uint64_t next_id(env_t *e)
{
    return e->next_id++;
}

static int private_stop(void);

static bool private_running;

/* Per-test teardown: stop the watchdog, and a test's own daemon left by a failure. */
static int watchdog_disarm(void **state)
{
    fp_test_attack_watchdog_disarm(state);
    if (private_running)
        private_stop();
    return 0;
}

/* ---- public-API clients ---- */

static void node_params(const env_t *e, const char *key, farpool_node_params_t *p)
{
    memset(p, 0, sizeof(*p));
    p->field_mask = FARPOOL_NODE_PARAM_TIMEOUT;
    p->timeout_ms = API_TIMEOUT_MS;
    if (e->secret != NULL) {
        p->field_mask |= FARPOOL_NODE_PARAM_SECRET;
        p->secret = e->secret;
        p->secret_len = strlen(e->secret);
    }
    if (key != NULL) {
        p->field_mask |= FARPOOL_NODE_PARAM_CLIENT_KEY;
        key_set(p->client_key, key);
    }
}

/* The victim reads back every slab it wrote. */
static void victim_check(env_t *e)
{
    for (unsigned i = 0; i < e->nvslabs; i++) {
        fp_status_t status;

        memset(e->buf, 0, e->slab_size);
        status = farpool_slab_read(e->victim, e->vslab[i], 0, e->buf, e->slab_size);
        if (status != FP_OK)
            fail_msg("the victim cannot read its slab %#llx any more: %s",
                     (unsigned long long)e->vslab[i], fp_status_string(status));
        FP_PATTERN_ASSERT(e->buf, e->slab_size, e->vslab[i], 0, VICTIM_VERSION);
    }
}

/* Assertions 2 and 3: the daemon runs, serves a new client, and lost nothing. */
static void check_healthy(env_t *e)
{
    fp_test_attack_check_alive(&e->d);
    fp_test_attack_new_client_stats(&e->d, e->secret, NULL);
    victim_check(e);
}

/* Wait until STATS shows @used bytes in slabs (references released asynchronously). */
static void wait_used(env_t *e, uint64_t used)
{
    uint64_t deadline = fp_test_attack_now_ms() + 2000;
    farpool_node_stats_t stats;

    for (;;) {
        fp_test_attack_new_client_stats(&e->d, e->secret, &stats);
        if (stats.used == used)
            return;
        if (fp_test_attack_now_ms() >= deadline)
            fail_msg("STATS shows %llu bytes used, expected %llu: slab memory was not released",
                     (unsigned long long)stats.used, (unsigned long long)used);
        fp_test_attack_sleep_ms(20);
    }
}

/*
 * Start farpoold with @args and a victim that allocates @nslabs slabs and
 * fills them with its pattern. 0, or -1 after saying why on stderr (usable
 * from a group setup, where cmocka's asserts are not).
 */
static int env_start(env_t *e, const char *const args[], const char *secret, unsigned nslabs)
{
    farpool_node_params_t p;
    fp_status_t status;
    uint64_t size = 0;

    memset(e, 0, sizeof(*e));
    e->secret = secret;
    e->next_id = 0x1000;
    status = fp_test_daemon_start(args, &e->d);
    if (status != FP_OK) {
        fprintf(stderr, "cannot start farpoold: %s\n", fp_status_string(status));
        return -1;
    }
    node_params(e, KEY_VICTIM, &p);
    status = farpool_node_connect(e->d.addr, &p, &e->victim);
    if (status != FP_OK) {
        fprintf(stderr, "victim: cannot connect: %s\n", fp_status_string(status));
        return -1;
    }
    for (unsigned i = 0; i < nslabs; i++) {
        status = farpool_slab_alloc(e->victim, &e->vslab[i], &size);
        if (status != FP_OK) {
            fprintf(stderr, "victim: cannot allocate: %s\n", fp_status_string(status));
            return -1;
        }
        e->nvslabs++;
    }
    e->slab_size = size;
    e->buf = malloc(size > 0 ? size : 1);
    if (e->buf == NULL) {
        fprintf(stderr, "out of memory\n");
        return -1;
    }
    for (unsigned i = 0; i < nslabs; i++) {
        fp_pattern_fill(e->buf, size, e->vslab[i], 0, VICTIM_VERSION);
        status = farpool_slab_write(e->victim, e->vslab[i], 0, e->buf, size);
        if (status != FP_OK) {
            fprintf(stderr, "victim: cannot write: %s\n", fp_status_string(status));
            return -1;
        }
    }
    return 0;
}

/* Close the victim and stop the daemon with SIGTERM; its exit code. */
static int env_stop(env_t *e)
{
    farpool_node_close(e->victim);
    e->victim = NULL;
    free(e->buf);
    e->buf = NULL;
    return fp_test_daemon_stop(&e->d);
}

/*
 * The daemon of a test that needs options of its own. If the test fails
 * before private_stop(), its teardown stops it.
 */
static env_t private_env;

static env_t *private_start(const char *const args[], const char *secret, unsigned nslabs)
{
    private_running = true;
    if (env_start(&private_env, args, secret, nslabs) != 0)
        fail_msg("cannot start farpoold for this test");
    return &private_env;
}

static int private_stop(void)
{
    private_running = false;
    return env_stop(&private_env);
}

static env_t *group_env; /* the group's daemon, set by group_setup() */

/* For a failure message: " (farpoold is dead: ...)" if the test's daemon died, else "". */
static const char *daemon_note(void)
{
    static char note[80];
    env_t *e = private_running ? &private_env : group_env;

    uint64_t deadline =
        fp_test_attack_now_ms() + 300; /* a crash closes sockets before the exit is reaped */

    if (e == NULL || e->d.dir[0] == '\0')
        return "";
    while (fp_test_daemon_alive(&e->d)) {
        if (fp_test_attack_now_ms() >= deadline)
            return "";
        fp_test_attack_sleep_ms(10);
    }
    snprintf(note, sizeof(note), " (farpoold is dead: exit code %d)", e->d.exit_code);
    return note;
}

/* ---- raw connections ---- */

static int raw_connect(const env_t *e)
{
    int fd = fp_test_connect_raw(e->d.addr);

    if (fd < 0)
        fail_msg("cannot connect to %s%s", e->d.addr, daemon_note());
    return fd;
}

/* Any header, valid or not, field by field. */
static void put_header(uint8_t *buf, uint16_t magic, uint8_t version, uint8_t op, uint16_t flags,
                       uint16_t reserved, uint64_t id, int32_t status, uint32_t length)
{
    fp_proto_put_u16(buf, magic);
    buf[2] = version;
    buf[3] = op;
    fp_proto_put_u16(buf + 4, flags);
    fp_proto_put_u16(buf + 6, reserved);
    fp_proto_put_u64(buf + 8, id);
    fp_proto_put_u32(buf + 16, (uint32_t)status);
    fp_proto_put_u32(buf + 20, length);
}

/* A data request: header, args (@n ranges, any n), @data_len bytes of data. */
typedef struct frame {
    uint8_t *buf;
    size_t len;
} frame_t;

static frame_t frame_data(uint8_t op, uint64_t id, const fp_proto_range_t *ranges, uint32_t n,
                          const void *data, size_t data_len)
{
    size_t args_max = FP_PROTO_VEC_HDR + (size_t)n * FP_PROTO_RANGE_SIZE;
    frame_t f;
    uint32_t args;

    f.buf = malloc(FP_PROTO_HDR_SIZE + args_max + data_len);
    if (f.buf == NULL)
        fail_msg("out of memory");
    args = fp_proto_ranges_encode(op, ranges, n, f.buf + FP_PROTO_HDR_SIZE);
    if (data_len > 0)
        memcpy(f.buf + FP_PROTO_HDR_SIZE + args, data, data_len);
    f.len = FP_PROTO_HDR_SIZE + args + data_len;
    fp_test_attack_encode_request(f.buf, op, id, (uint32_t)(args + data_len));
    return f;
}

static void send_data(int fd, uint8_t op, uint64_t id, const fp_proto_range_t *ranges, uint32_t n,
                      const void *data, size_t data_len)
{
    frame_t f = frame_data(op, id, ranges, n, data, data_len);

    fp_test_attack_send(fd, f.buf, f.len);
    free(f.buf);
}

static void send_range(int fd, uint8_t op, uint64_t id, uint64_t slab, uint64_t offset,
                       uint32_t length, const void *data, size_t data_len)
{
    fp_proto_range_t r = {slab, offset, length};

    send_data(fd, op, id, &r, 1, data, data_len);
}

static void expect_closed(int fd, const char *what)
{
    if (!fp_test_wait_closed(fd, CLOSE_WAIT_MS))
        fail_msg("%s: the node kept the connection open for %d ms%s", what, CLOSE_WAIT_MS,
                 daemon_note());
}

/* PING with a payload; the connection is usable and in step. */
static void raw_ping(env_t *e, int fd)
{
    uint8_t out[37];
    uint64_t id = next_id(e);

    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(id + i * 7);
    fp_test_attack_ping(fd, id, out, sizeof(out));
}

/* HELLO (and AUTH when the node asks for it) on @fd with client key @key. */
static void raw_handshake(env_t *e, int fd, const char *key_text, fp_proto_hello_rep_t *rep_p)
{
    uint8_t key[FP_PROTO_KEY_SIZE], buf[FP_PROTO_HELLO_REP_SIZE];
    uint8_t auth[FP_PROTO_AUTH_REQ_SIZE], node_mac[FP_PROTO_MAC_SIZE];
    fp_proto_hello_req_t req = {1, 1, {0}};
    fp_proto_hello_rep_t rep;
    uint64_t id = next_id(e);
    fp_proto_hdr_t h;

    key_set(key, key_text);
    memcpy(req.client_key, key, sizeof(key));
    fp_proto_hello_req_encode(&req, buf);
    fp_test_attack_send_frame(fd, FP_OP_HELLO, id, buf, FP_PROTO_HELLO_REQ_SIZE);
    h = fp_test_attack_recv_reply(fd, FP_OP_HELLO, id, buf, sizeof(buf));
    if (h.status != FP_OK || h.id != id || fp_proto_hello_rep_decode(buf, h.length, &rep) != FP_OK)
        fail_msg("HELLO failed: status %d, %u bytes", (int)h.status, h.length);
    if (rep.flags & FP_PROTO_HELLO_AUTH_REQUIRED) {
        if (e->secret == NULL)
            fail_msg("the node asks for AUTH but the test has no secret");
        fp_proto_random(auth, FP_PROTO_NONCE_SIZE);
        fp_proto_auth_mac(FP_PROTO_AUTH_CLIENT, (const uint8_t *)e->secret, strlen(e->secret),
                          rep.nonce, auth, key, auth + FP_PROTO_NONCE_SIZE);
        id = next_id(e);
        fp_test_attack_send_frame(fd, FP_OP_AUTH, id, auth, sizeof(auth));
        h = fp_test_attack_recv_reply(fd, FP_OP_AUTH, id, node_mac, sizeof(node_mac));
        if (h.status != FP_OK || h.length != FP_PROTO_MAC_SIZE)
            fail_msg("AUTH with the right secret failed: status %d, %u bytes", (int)h.status,
                     h.length);
        if (fp_proto_auth_verify(FP_PROTO_AUTH_NODE, (const uint8_t *)e->secret, strlen(e->secret),
                                 rep.nonce, auth, key, node_mac) != FP_OK)
            fail_msg("the node's AUTH reply does not prove it knows the secret");
    }
    if (rep_p != NULL)
        *rep_p = rep;
}

static int raw_open(env_t *e, const char *key)
{
    int fd = raw_connect(e);

    raw_handshake(e, fd, key, NULL);
    return fd;
}

static uint64_t raw_alloc(env_t *e, int fd)
{
    uint8_t buf[FP_PROTO_ALLOC_REP_SIZE];
    uint64_t id = next_id(e);
    fp_proto_hdr_t h;

    fp_test_attack_send_frame(fd, FP_OP_SLAB_ALLOC, id, NULL, 0);
    h = fp_test_attack_recv_reply(fd, FP_OP_SLAB_ALLOC, id, buf, sizeof(buf));
    if (h.status != FP_OK || h.length != sizeof(buf))
        fail_msg("SLAB_ALLOC #%llu failed: %d (%s)", (unsigned long long)id, (int)h.status,
                 fp_status_string((fp_status_t)h.status));
    return fp_proto_get_u64(buf);
}

static void raw_free(env_t *e, int fd, uint64_t slab)
{
    uint8_t buf[8];
    uint64_t id = next_id(e);

    fp_proto_put_u64(buf, slab);
    fp_test_attack_send_frame(fd, FP_OP_SLAB_FREE, id, buf, sizeof(buf));
    fp_test_attack_expect_status(fd, FP_OP_SLAB_FREE, id, FP_OK);
}

static void raw_stats(env_t *e, int fd, uint64_t v[FP_PROTO_STATS_FIELDS])
{
    uint8_t buf[FP_PROTO_STATS_REP_SIZE];
    uint64_t id = next_id(e);
    fp_proto_hdr_t h;

    fp_test_attack_send_frame(fd, FP_OP_STATS, id, NULL, 0);
    h = fp_test_attack_recv_reply(fd, FP_OP_STATS, id, buf, sizeof(buf));
    if (h.status != FP_OK || h.length != sizeof(buf))
        fail_msg("STATS #%llu failed: %d", (unsigned long long)id, (int)h.status);
    for (unsigned i = 0; i < FP_PROTO_STATS_FIELDS; i++)
        v[i] = fp_proto_get_u64(buf + 8 * i);
}

/*
 * The request #@id just sent on @fd must be rejected with @want and logged
 * once; then the connection is closed by the node (@closes) or still usable.
 */
static void expect_rejected(env_t *e, fp_test_attack_logcheck_t *lc, int fd, uint8_t op,
                            uint64_t id, fp_status_t want, bool closes)
{
    char peer[FP_TEST_ADDR_MAX], what[96];

    fp_test_attack_peer(fd, peer, sizeof(peer));
    fp_test_attack_log_expect_rejection(lc, peer, op, id, want);
    fp_test_attack_expect_status(fd, op, id, want);
    snprintf(what, sizeof(what), "after rejecting %s #%llu", fp_proto_op_name(op),
             (unsigned long long)id);
    if (closes)
        expect_closed(fd, what);
    else
        raw_ping(e, fd);
}

/* Send a request on a fresh connection (after HELLO if @hello) that must close it. */
static void reject_and_close(env_t *e, fp_test_attack_logcheck_t *lc, bool hello, uint8_t op,
                             const void *payload, uint32_t len, fp_status_t want)
{
    int fd = hello ? raw_open(e, KEY_ATTACKER) : raw_connect(e);
    uint64_t id = next_id(e);

    fp_test_attack_send_frame(fd, op, id, payload, len);
    expect_rejected(e, lc, fd, op, id, want, true);
    close(fd);
}

/* A header (24 bytes, nothing after) that must be rejected with @want and close. */
static void bad_header(env_t *e, fp_test_attack_logcheck_t *lc, bool hello, uint16_t magic,
                       uint8_t version, uint8_t op, uint16_t flags, uint16_t reserved,
                       int32_t status, uint32_t length, fp_status_t want)
{
    int fd = hello ? raw_open(e, KEY_ATTACKER) : raw_connect(e);
    uint64_t id = next_id(e);
    uint8_t hb[FP_PROTO_HDR_SIZE];

    put_header(hb, magic, version, op, flags, reserved, id, status, length);
    fp_test_attack_send(fd, hb, sizeof(hb));
    expect_rejected(e, lc, fd, op, id, want, true);
    close(fd);
}

/* A data request on @fd that must be rejected with @want, keeping the connection. */
static void reject_data(env_t *e, fp_test_attack_logcheck_t *lc, int fd, uint8_t op,
                        const fp_proto_range_t *ranges, uint32_t n, const void *data,
                        size_t data_len, fp_status_t want)
{
    uint64_t id = next_id(e);

    send_data(fd, op, id, ranges, n, data, data_len);
    expect_rejected(e, lc, fd, op, id, want, false);
}

static void reject_range(env_t *e, fp_test_attack_logcheck_t *lc, int fd, uint8_t op, uint64_t slab,
                         uint64_t offset, uint32_t length, const void *data, size_t data_len,
                         fp_status_t want)
{
    fp_proto_range_t r = {slab, offset, length};

    reject_data(e, lc, fd, op, &r, 1, data, data_len, want);
}

/* Attack data: the victim's pattern at another version, so a stray byte is recognised. */
static uint8_t *attack_data(size_t len, uint64_t region, uint64_t offset)
{
    uint8_t *data = malloc(len > 0 ? len : 1);

    if (data == NULL)
        fail_msg("out of memory");
    fp_pattern_fill(data, len, region, offset, ATTACK_VERSION);
    return data;
}

/* ---- the attacks ---- */

/* Random bytes as the first bytes of a connection (or right after HELLO). */
static void test_garbage(void **state)
{
    env_t *e = *state;
    uint64_t seed = 0x67617262616765ull;
    uint8_t g[GARBAGE_MAX];
    fp_test_attack_logcheck_t lc;

    fp_test_attack_log_begin(&e->d, &lc);
    for (int round = 0; round < GARBAGE_ROUNDS; round++) {
        bool after_hello = round % 2 == 1;
        bool short_frame = round % 4 >= 2; /* fewer bytes than a header */
        bool hang_up = round % 3 == 0;     /* close at once, read nothing */
        size_t len = short_frame ? 1 + splitmix64(&seed) % (FP_PROTO_HDR_SIZE - 1)
                                 : FP_PROTO_HDR_SIZE +
                                       splitmix64(&seed) % (GARBAGE_MAX - FP_PROTO_HDR_SIZE + 1);
        char peer[FP_TEST_ADDR_MAX], what[64];
        int fd;

        for (size_t i = 0; i < len; i++)
            g[i] = (uint8_t)splitmix64(&seed);
        if (g[0] == 0x46 && (len < 2 || g[1] == 0x50))
            g[0] = 0; /* never the magic by chance */
        fd = after_hello ? raw_open(e, KEY_ATTACKER) : raw_connect(e);
        fp_test_attack_peer(fd, peer, sizeof(peer));
        snprintf(what, sizeof(what), "garbage round %d (%zu bytes)", round, len);
        if (short_frame) {
            /* No full header: the node just closes, once it sees the end. */
            fp_test_attack_log_expect_event(&e->d, &lc, "%s: connection lost mid-request", peer);
            fp_test_attack_send(fd, g, len);
            if (!hang_up) {
                shutdown(fd, SHUT_WR);
                expect_closed(fd, what);
            }
        } else {
            fp_test_attack_log_expect_rejection(&lc, peer, g[3], fp_proto_get_u64(g + 8),
                                                FP_ERR_PROTOCOL);
            fp_test_attack_send(fd, g, len);
            if (!hang_up) {
                fp_test_attack_expect_status(fd, g[3], fp_proto_get_u64(g + 8), FP_ERR_PROTOCOL);
                expect_closed(fd, what);
            }
        }
        close(fd);
    }
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* Frames cut short, then the client goes away: the node just closes. */
static void test_truncated_frame(void **state)
{
    env_t *e = *state;
    uint8_t buf[FP_PROTO_HDR_SIZE + 4096];
    fp_proto_hello_req_t hello = {1, 1, {0}};
    char peer[FP_TEST_ADDR_MAX];
    fp_test_attack_logcheck_t lc;
    int fd;

    fp_test_attack_log_begin(&e->d, &lc);
    /* Half a HELLO header. */
    fd = raw_connect(e);
    fp_test_attack_peer(fd, peer, sizeof(peer));
    fp_test_attack_log_expect_event(&e->d, &lc, "%s: connection lost mid-request", peer);
    key_set(hello.client_key, KEY_ATTACKER);
    fp_test_attack_encode_request(buf, FP_OP_HELLO, next_id(e), FP_PROTO_HELLO_REQ_SIZE);
    fp_proto_hello_req_encode(&hello, buf + FP_PROTO_HDR_SIZE);
    fp_test_attack_send(fd, buf, 12);
    shutdown(fd, SHUT_WR);
    expect_closed(fd, "half a HELLO header");
    close(fd);

    /* A HELLO header and 10 of its 24 payload bytes. */
    fd = raw_connect(e);
    fp_test_attack_peer(fd, peer, sizeof(peer));
    fp_test_attack_log_expect_event(&e->d, &lc, "%s: connection lost mid-request", peer);
    fp_test_attack_send(fd, buf, FP_PROTO_HDR_SIZE + 10);
    shutdown(fd, SHUT_WR);
    expect_closed(fd, "HELLO with 10 of 24 payload bytes");
    close(fd);

    /* After HELLO: a PING announcing 100 bytes, 50 sent. */
    fd = raw_open(e, KEY_ATTACKER);
    fp_test_attack_peer(fd, peer, sizeof(peer));
    fp_test_attack_log_expect_event(&e->d, &lc, "%s: connection lost mid-request", peer);
    memset(buf, 0x5a, sizeof(buf));
    fp_test_attack_encode_request(buf, FP_OP_PING, next_id(e), 100);
    fp_test_attack_send(fd, buf, FP_PROTO_HDR_SIZE + 50);
    shutdown(fd, SHUT_WR);
    expect_closed(fd, "PING with 50 of 100 payload bytes");
    close(fd);

    /* After HELLO: a READ header without its args; the client closes. */
    fd = raw_open(e, KEY_VICTIM);
    fp_test_attack_peer(fd, peer, sizeof(peer));
    fp_test_attack_log_expect_event(&e->d, &lc, "%s: connection lost mid-request", peer);
    fp_test_attack_encode_request(buf, FP_OP_READ, next_id(e), FP_PROTO_RANGE_SIZE);
    fp_test_attack_send(fd, buf, FP_PROTO_HDR_SIZE);
    close(fd);

    /* After HELLO: a WRITEV header and half its vector header; the client closes. */
    fd = raw_open(e, KEY_VICTIM);
    fp_test_attack_peer(fd, peer, sizeof(peer));
    fp_test_attack_log_expect_event(&e->d, &lc, "%s: connection lost mid-request", peer);
    memset(buf, 0, sizeof(buf));
    fp_test_attack_encode_request(buf, FP_OP_WRITEV, next_id(e), 8 + 24 + 4096);
    buf[FP_PROTO_HDR_SIZE] = 1;
    fp_test_attack_send(fd, buf, FP_PROTO_HDR_SIZE + 4);
    close(fd);

    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* A length field of 4 GiB (and just over the limits): FP_ERR_TOO_LARGE, then close. */
static void test_length_4gib(void **state)
{
    env_t *e = *state;
    fp_test_attack_logcheck_t lc;

    fp_test_attack_log_begin(&e->d, &lc);
    bad_header(e, &lc, true, FP_PROTO_MAGIC, 1, FP_OP_PING, 0, 0, 0, 0xffffffffu, FP_ERR_TOO_LARGE);
    bad_header(e, &lc, true, FP_PROTO_MAGIC, 1, FP_OP_WRITE, 0, 0, 0, 0xffffffffu,
               FP_ERR_TOO_LARGE);
    bad_header(e, &lc, false, FP_PROTO_MAGIC, 1, FP_OP_HELLO, 0, 0, 0, 0xffffffffu,
               FP_ERR_TOO_LARGE);
    bad_header(e, &lc, true, FP_PROTO_MAGIC, 1, FP_OP_READV, 0, 0, 0, FP_PROTO_MAX_PAYLOAD + 1,
               FP_ERR_TOO_LARGE);
    bad_header(e, &lc, true, FP_PROTO_MAGIC, 1, 99, 0, 0, 0, FP_PROTO_MAX_CONTROL + 1,
               FP_ERR_TOO_LARGE);
    bad_header(e, &lc, true, FP_PROTO_MAGIC, 1, FP_OP_STATS, 0, 0, 0, FP_PROTO_MAX_CONTROL + 1,
               FP_ERR_TOO_LARGE);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* Unknown opcodes, well framed: FP_ERR_UNSUPPORTED, payload skipped, connection kept. */
static void test_unknown_opcode(void **state)
{
    static const uint8_t ops[] = {99, 0, 11, 15, 20, 255};
    static const uint32_t lens[] = {100, 0, FP_PROTO_MAX_CONTROL, 1, 24, 8};
    env_t *e = *state;
    uint8_t payload[FP_PROTO_MAX_CONTROL];
    fp_test_attack_logcheck_t lc;
    int fd;

    /* The payload looks like frames, so a node that does not skip it gets lost. */
    for (size_t i = 0; i + FP_PROTO_HDR_SIZE <= sizeof(payload); i += FP_PROTO_HDR_SIZE)
        fp_test_attack_encode_request(payload + i, FP_OP_SLAB_ALLOC, 0xdead, 0);
    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_ATTACKER);
    for (size_t i = 0; i < sizeof(ops); i++) {
        uint64_t id = next_id(e);

        fp_test_attack_send_frame(fd, ops[i], id, payload, lens[i]);
        expect_rejected(e, &lc, fd, ops[i], id, FP_ERR_UNSUPPORTED, false);
    }
    close(fd);
    /* Before HELLO an unknown opcode is a request before the handshake. */
    reject_and_close(e, &lc, false, 99, payload, 16, FP_ERR_AUTH);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* A wrong frame version, or no common protocol version in HELLO. */
static void test_wrong_version(void **state)
{
    env_t *e = *state;
    fp_proto_hello_req_t req = {2, 2, {0}};
    uint8_t hello[FP_PROTO_HELLO_REQ_SIZE];
    fp_test_attack_logcheck_t lc;

    fp_test_attack_log_begin(&e->d, &lc);
    bad_header(e, &lc, true, FP_PROTO_MAGIC, 2, FP_OP_PING, 0, 0, 0, 0, FP_ERR_VERSION);
    bad_header(e, &lc, false, FP_PROTO_MAGIC, 0, FP_OP_HELLO, 0, 0, 0, FP_PROTO_HELLO_REQ_SIZE,
               FP_ERR_VERSION);
    bad_header(e, &lc, true, FP_PROTO_MAGIC, 255, FP_OP_READ, 0, 0, 0, 24, FP_ERR_VERSION);

    key_set(req.client_key, KEY_ATTACKER);
    fp_proto_hello_req_encode(&req, hello); /* versions 2..2 */
    reject_and_close(e, &lc, false, FP_OP_HELLO, hello, sizeof(hello), FP_ERR_VERSION);
    req.min_version = 0;
    req.max_version = 0;
    fp_proto_hello_req_encode(&req, hello);
    reject_and_close(e, &lc, false, FP_OP_HELLO, hello, sizeof(hello), FP_ERR_VERSION);
    req.min_version = 2;
    req.max_version = 1; /* min > max */
    fp_proto_hello_req_encode(&req, hello);
    reject_and_close(e, &lc, false, FP_OP_HELLO, hello, sizeof(hello), FP_ERR_PROTOCOL);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* The other header errors of section 11: FP_ERR_PROTOCOL, then close. */
static void test_header_errors(void **state)
{
    env_t *e = *state;
    fp_test_attack_logcheck_t lc;

    fp_test_attack_log_begin(&e->d, &lc);
    bad_header(e, &lc, true, 0x4650, 1, FP_OP_PING, 0, 0, 0, 0, FP_ERR_PROTOCOL); /* "PF" */
    bad_header(e, &lc, true, FP_PROTO_MAGIC, 1, FP_OP_PING, FP_PROTO_FLAG_REPLY, 0, 0, 0,
               FP_ERR_PROTOCOL);
    bad_header(e, &lc, true, FP_PROTO_MAGIC, 1, FP_OP_PING, 0x0100, 0, 0, 0, FP_ERR_PROTOCOL);
    bad_header(e, &lc, true, FP_PROTO_MAGIC, 1, FP_OP_PING, 0, 1, 0, 0, FP_ERR_PROTOCOL);
    bad_header(e, &lc, true, FP_PROTO_MAGIC, 1, FP_OP_STATS, 0, 0, FP_ERR_PERMISSION, 0,
               FP_ERR_PROTOCOL);
    bad_header(e, &lc, false, FP_PROTO_MAGIC, 1, FP_OP_HELLO, FP_PROTO_FLAG_REPLY, 0, 0,
               FP_PROTO_HELLO_REQ_SIZE, FP_ERR_PROTOCOL);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* Control requests with a payload of the wrong size. */
static void test_control_sizes(void **state)
{
    env_t *e = *state;
    uint8_t payload[FP_PROTO_MAX_CONTROL];
    fp_proto_hello_req_t req = {1, 1, {0}};
    uint64_t before[FP_PROTO_STATS_FIELDS], after[FP_PROTO_STATS_FIELDS];
    fp_test_attack_logcheck_t lc;
    uint64_t id;
    int fd;

    memset(payload, 0, sizeof(payload));
    fp_proto_put_u64(payload, e->vslab[0]);
    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_VICTIM);
    raw_stats(e, fd, before);
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_STATS, id, payload, 8);
    expect_rejected(e, &lc, fd, FP_OP_STATS, id, FP_ERR_PROTOCOL, false);
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_SLAB_ALLOC, id, payload, 1);
    expect_rejected(e, &lc, fd, FP_OP_SLAB_ALLOC, id, FP_ERR_PROTOCOL, false);
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_SLAB_FREE, id, payload,
                              4); /* 4 bytes of the victim's slab id */
    expect_rejected(e, &lc, fd, FP_OP_SLAB_FREE, id, FP_ERR_PROTOCOL, false);
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_SLAB_FREE, id, payload, 16); /* its id and 8 more bytes */
    expect_rejected(e, &lc, fd, FP_OP_SLAB_FREE, id, FP_ERR_PROTOCOL, false);
    raw_stats(e, fd, after);
    if (after[3] != before[3])
        fail_msg("rejected SLAB_ALLOC/SLAB_FREE changed the slab count from %llu to %llu",
                 (unsigned long long)before[3], (unsigned long long)after[3]);
    close(fd);

    /* HELLO of the wrong size or with reserved bits: PROTOCOL, then close. */
    key_set(req.client_key, KEY_ATTACKER);
    fp_proto_hello_req_encode(&req, payload);
    reject_and_close(e, &lc, false, FP_OP_HELLO, payload, FP_PROTO_HELLO_REQ_SIZE - 1,
                     FP_ERR_PROTOCOL);
    reject_and_close(e, &lc, false, FP_OP_HELLO, payload, FP_PROTO_HELLO_REQ_SIZE + 8,
                     FP_ERR_PROTOCOL);
    payload[4] = 1; /* reserved */
    reject_and_close(e, &lc, false, FP_OP_HELLO, payload, FP_PROTO_HELLO_REQ_SIZE, FP_ERR_PROTOCOL);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* READs past a slab's end, with and without 64-bit overflow. */
static void test_read_out_of_bounds(void **state)
{
    env_t *e = *state;
    uint64_t s0 = e->vslab[0], s1 = e->vslab[1], size = e->slab_size;
    fp_proto_range_t two[2] = {{s0, 0, 16}, {s1, size - 8, 16}};
    uint8_t tail[16];
    fp_proto_hdr_t h;
    fp_test_attack_logcheck_t lc;
    uint64_t id;
    int fd;

    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_VICTIM); /* the owner itself, so only the bounds are wrong */
    reject_range(e, &lc, fd, FP_OP_READ, s0, size - 10, 100, NULL, 0, FP_ERR_OUT_OF_RANGE);
    reject_range(e, &lc, fd, FP_OP_READ, s0, size, 1, NULL, 0, FP_ERR_OUT_OF_RANGE);
    reject_range(e, &lc, fd, FP_OP_READ, s0, 0xfffffffffffffff0ull, 32, NULL, 0,
                 FP_ERR_OUT_OF_RANGE);
    reject_range(e, &lc, fd, FP_OP_READ, s0, UINT64_MAX, 1, NULL, 0, FP_ERR_OUT_OF_RANGE);
    reject_range(e, &lc, fd, FP_OP_READ, s1, size - 1, UINT32_MAX, NULL, 0, FP_ERR_TOO_LARGE);
    reject_range(e, &lc, fd, FP_OP_READ, s0, 0, (uint32_t)size + 1, NULL, 0, FP_ERR_TOO_LARGE);
    reject_data(e, &lc, fd, FP_OP_READV, two, 2, NULL, 0, FP_ERR_OUT_OF_RANGE);

    /* The last bytes are readable. */
    id = next_id(e);
    send_range(fd, FP_OP_READ, id, s0, size - sizeof(tail), sizeof(tail), NULL, 0);
    h = fp_test_attack_recv_reply(fd, FP_OP_READ, id, tail, sizeof(tail));
    if (h.status != FP_OK || h.length != sizeof(tail))
        fail_msg("READ of the last %zu bytes: status %d, %u bytes", sizeof(tail), (int)h.status,
                 h.length);
    FP_PATTERN_ASSERT(tail, sizeof(tail), s0, size - sizeof(tail), VICTIM_VERSION);
    close(fd);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* WRITEs past a slab's end: rejected, their data consumed and never stored. */
static void test_write_out_of_bounds(void **state)
{
    env_t *e = *state;
    uint64_t s0 = e->vslab[0], s1 = e->vslab[1], size = e->slab_size;
    fp_proto_range_t two[2] = {{s1, 0, 4096}, {s0, size, 1}};
    uint8_t *data = attack_data(1u << 20, s0, size - 4096);
    fp_test_attack_logcheck_t lc;
    int fd;

    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_VICTIM);
    reject_range(e, &lc, fd, FP_OP_WRITE, s0, size - 100, 4096, data, 4096, FP_ERR_OUT_OF_RANGE);
    reject_range(e, &lc, fd, FP_OP_WRITE, s0, 0xfffffffffffffff0ull, 64, data, 64,
                 FP_ERR_OUT_OF_RANGE);
    reject_range(e, &lc, fd, FP_OP_WRITE, s1, size - 4096, 1u << 20, data, 1u << 20,
                 FP_ERR_OUT_OF_RANGE);
    /* One valid range and one invalid: nothing is written, not even the valid one. */
    reject_data(e, &lc, fd, FP_OP_WRITEV, two, 2, data, 4097, FP_ERR_OUT_OF_RANGE);
    /* The frame carries less, or more, data than its range says. */
    reject_range(e, &lc, fd, FP_OP_WRITE, s0, 0, 100, data, 50, FP_ERR_PROTOCOL);
    reject_range(e, &lc, fd, FP_OP_WRITE, s0, 0, 100, data, 150, FP_ERR_PROTOCOL);
    close(fd);
    free(data);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* Slabs of another client key, and ids that name no slab. */
static void test_foreign_slab(void **state)
{
    env_t *e = *state;
    uint64_t s0 = e->vslab[0], s1 = e->vslab[1];
    uint64_t made_up[] = {0x0000777700000001ull, 0, UINT64_MAX, s0 + 0x100000000ull};
    uint8_t *data = attack_data(65536, s0, 0), buf[16], zeros[16];
    fp_proto_range_t mixed[2] = {{0, 0, 16}, {s1, 0, 16}};
    fp_proto_hdr_t h;
    fp_test_attack_logcheck_t lc;
    uint64_t own, id;
    int fd;

    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_ATTACKER);
    reject_range(e, &lc, fd, FP_OP_READ, s0, 0, 4096, NULL, 0, FP_ERR_PERMISSION);
    reject_range(e, &lc, fd, FP_OP_WRITE, s0, 0, 65536, data, 65536, FP_ERR_PERMISSION);
    fp_proto_put_u64(buf, s0);
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_SLAB_FREE, id, buf, 8);
    expect_rejected(e, &lc, fd, FP_OP_SLAB_FREE, id, FP_ERR_PERMISSION, false);

    /* Mixed with a slab of its own: the whole request fails, its own slab untouched. */
    own = raw_alloc(e, fd);
    mixed[0].slab = own;
    reject_data(e, &lc, fd, FP_OP_READV, mixed, 2, NULL, 0, FP_ERR_PERMISSION);
    reject_data(e, &lc, fd, FP_OP_WRITEV, mixed, 2, data, 32, FP_ERR_PERMISSION);
    id = next_id(e);
    send_range(fd, FP_OP_READ, id, own, 0, sizeof(buf), NULL, 0);
    h = fp_test_attack_recv_reply(fd, FP_OP_READ, id, buf, sizeof(buf));
    memset(zeros, 0, sizeof(zeros));
    if (h.status != FP_OK || h.length != sizeof(buf) || memcmp(buf, zeros, sizeof(buf)) != 0)
        fail_msg("a rejected WRITEV changed the attacker's own slab (status %d)", (int)h.status);

    /* Ids that were never handed out. */
    for (size_t i = 0; i < sizeof(made_up) / sizeof(made_up[0]); i++) {
        reject_range(e, &lc, fd, FP_OP_READ, made_up[i], 0, 16, NULL, 0, FP_ERR_NO_ENTRY);
        reject_range(e, &lc, fd, FP_OP_WRITE, made_up[i], 0, 16, data, 16, FP_ERR_NO_ENTRY);
        fp_proto_put_u64(buf, made_up[i]);
        id = next_id(e);
        fp_test_attack_send_frame(fd, FP_OP_SLAB_FREE, id, buf, 8);
        expect_rejected(e, &lc, fd, FP_OP_SLAB_FREE, id, FP_ERR_NO_ENTRY, false);
    }
    raw_free(e, fd, own);
    close(fd);
    free(data);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* A freed slab's id is dead, even once its memory is handed out again. */
static void test_freed_slab(void **state)
{
    env_t *e = *state;
    uint8_t *data = attack_data(4096, 7, 0), buf[65536], slab_id[8];
    fp_proto_hdr_t h;
    fp_test_attack_logcheck_t lc;
    uint64_t s, s2, id;
    int fd;

    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_ATTACKER);
    s = raw_alloc(e, fd);
    id = next_id(e);
    send_range(fd, FP_OP_WRITE, id, s, 0, 4096, data, 4096);
    fp_test_attack_expect_status(fd, FP_OP_WRITE, id, FP_OK);
    raw_free(e, fd, s);

    reject_range(e, &lc, fd, FP_OP_READ, s, 0, 16, NULL, 0, FP_ERR_NO_ENTRY);
    reject_range(e, &lc, fd, FP_OP_WRITE, s, 0, 4096, data, 4096, FP_ERR_NO_ENTRY);
    fp_proto_put_u64(slab_id, s);
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_SLAB_FREE, id, slab_id, 8);
    expect_rejected(e, &lc, fd, FP_OP_SLAB_FREE, id, FP_ERR_NO_ENTRY, false);

    /* The memory comes back under a new id, zeroed; the old id stays dead. */
    s2 = raw_alloc(e, fd);
    if (s2 == s)
        fail_msg("SLAB_ALLOC handed out the freed id %#llx again", (unsigned long long)s);
    reject_range(e, &lc, fd, FP_OP_READ, s, 0, 16, NULL, 0, FP_ERR_NO_ENTRY);
    id = next_id(e);
    send_range(fd, FP_OP_READ, id, s2, 0, sizeof(buf), NULL, 0);
    h = fp_test_attack_recv_reply(fd, FP_OP_READ, id, buf, sizeof(buf));
    if (h.status != FP_OK || h.length != sizeof(buf))
        fail_msg("READ of a new slab failed: %d", (int)h.status);
    for (size_t i = 0; i < sizeof(buf); i++) {
        if (buf[i] != 0)
            fail_msg("a new slab holds byte %#x at offset %zu: left over from a freed slab", buf[i],
                     i);
    }
    raw_free(e, fd, s2);
    close(fd);
    free(data);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* Requests before HELLO: FP_ERR_AUTH, then close; nothing is done. */
static void test_before_hello(void **state)
{
    env_t *e = *state;
    uint8_t payload[24 + 64], slab_id[8];
    fp_proto_range_t r = {e->vslab[0], 0, 64};
    uint8_t *data = attack_data(64, e->vslab[0], 0);
    fp_test_attack_logcheck_t lc;
    uint64_t id;
    int fd;

    fp_proto_put_u64(slab_id, e->vslab[0]);
    fp_test_attack_log_begin(&e->d, &lc);
    reject_and_close(e, &lc, false, FP_OP_STATS, NULL, 0, FP_ERR_AUTH);
    reject_and_close(e, &lc, false, FP_OP_PING, "ping", 4, FP_ERR_AUTH);
    reject_and_close(e, &lc, false, FP_OP_SLAB_ALLOC, NULL, 0, FP_ERR_AUTH);
    reject_and_close(e, &lc, false, FP_OP_SLAB_FREE, slab_id, 8, FP_ERR_AUTH);
    fp_proto_ranges_encode(FP_OP_READ, &r, 1, payload);
    reject_and_close(e, &lc, false, FP_OP_READ, payload, 24, FP_ERR_AUTH);
    memcpy(payload + 24, data, 64);
    reject_and_close(e, &lc, false, FP_OP_WRITE, payload, sizeof(payload), FP_ERR_AUTH);

    /* A WRITE whose data is still on its way when the node says no. */
    fd = raw_connect(e);
    id = next_id(e);
    fp_test_attack_encode_request(payload, FP_OP_WRITE, id, 24 + 64);
    fp_test_attack_send(fd, payload, FP_PROTO_HDR_SIZE);
    expect_rejected(e, &lc, fd, FP_OP_WRITE, id, FP_ERR_AUTH, true);
    close(fd);
    free(data);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* A second HELLO, and AUTH on a node that has no secret: FP_ERR_PROTOCOL, then close. */
static void test_handshake_order(void **state)
{
    env_t *e = *state;
    fp_proto_hello_req_t req = {1, 1, {0}};
    uint8_t hello[FP_PROTO_HELLO_REQ_SIZE], auth[FP_PROTO_AUTH_REQ_SIZE];
    fp_test_attack_logcheck_t lc;

    key_set(req.client_key, KEY_ATTACKER);
    fp_proto_hello_req_encode(&req, hello);
    memset(auth, 0x11, sizeof(auth));
    fp_test_attack_log_begin(&e->d, &lc);
    reject_and_close(e, &lc, true, FP_OP_HELLO, hello, sizeof(hello), FP_ERR_PROTOCOL);
    reject_and_close(e, &lc, true, FP_OP_AUTH, auth, sizeof(auth), FP_ERR_PROTOCOL);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* One AUTH attempt on a fresh connection with @mac_secret, @mac_key and @mac_nonce. */
static void auth_attempt(env_t *e, fp_test_attack_logcheck_t *lc, const char *mac_secret,
                         const char *mac_key, bool replayed_nonce)
{
    uint8_t key[FP_PROTO_KEY_SIZE], auth[FP_PROTO_AUTH_REQ_SIZE], nonce[FP_PROTO_NONCE_SIZE];
    uint8_t buf[FP_PROTO_HELLO_REQ_SIZE];
    fp_proto_hello_req_t req = {1, 1, {0}};
    fp_proto_hello_rep_t rep;
    uint8_t rbuf[FP_PROTO_HELLO_REP_SIZE];
    fp_proto_hdr_t h;
    uint64_t id = next_id(e);
    int fd = raw_connect(e);

    key_set(req.client_key, KEY_ATTACKER);
    fp_proto_hello_req_encode(&req, buf);
    fp_test_attack_send_frame(fd, FP_OP_HELLO, id, buf, sizeof(buf));
    h = fp_test_attack_recv_reply(fd, FP_OP_HELLO, id, rbuf, sizeof(rbuf));
    if (h.status != FP_OK || fp_proto_hello_rep_decode(rbuf, h.length, &rep) != FP_OK)
        fail_msg("HELLO to the node with a secret failed: %d", (int)h.status);
    if (!(rep.flags & FP_PROTO_HELLO_AUTH_REQUIRED))
        fail_msg("a node started with --secret-file does not ask for AUTH");
    memcpy(nonce, rep.nonce, sizeof(nonce));
    if (replayed_nonce)
        memset(nonce, 0, sizeof(nonce)); /* a MAC made for another session */
    key_set(key, mac_key);
    fp_proto_random(auth, FP_PROTO_NONCE_SIZE);
    fp_proto_auth_mac(FP_PROTO_AUTH_CLIENT, (const uint8_t *)mac_secret, strlen(mac_secret), nonce,
                      auth, key, auth + FP_PROTO_NONCE_SIZE);
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_AUTH, id, auth, sizeof(auth));
    expect_rejected(e, lc, fd, FP_OP_AUTH, id, FP_ERR_AUTH, true);
    close(fd);
}

/* A node with a secret: wrong MACs, skipped AUTH, a silent half-handshake. */
static void test_wrong_secret(void **state)
{
    const char *args[] = {"--secret-file",
                          NULL,
                          "--handshake-timeout",
                          "1",
                          "--capacity",
                          "8M",
                          "--slab-size",
                          "1M",
                          NULL};
    char path[FP_TEST_PATH_MAX], peer[FP_TEST_ADDR_MAX];
    farpool_node_params_t p;
    farpool_node_t *node = NULL;
    fp_proto_range_t r;
    uint8_t payload[FP_PROTO_AUTH_REQ_SIZE];
    fp_status_t status;
    fp_test_attack_logcheck_t lc;
    uint64_t t0, took;
    env_t *e;
    int fd;

    (void)state;
    if (fp_test_write_secret(NULL, SECRET "\n", strlen(SECRET) + 1, path) != FP_OK)
        fail_msg("cannot write the secret file");
    args[1] = path;
    e = private_start(args, SECRET, 2); /* the victim authenticates with the secret */

    fp_test_attack_log_begin(&e->d, &lc);
    auth_attempt(e, &lc, WRONG_SECRET, KEY_ATTACKER, false);
    auth_attempt(e, &lc, SECRET, KEY_VICTIM, false);  /* a proof made for another key */
    auth_attempt(e, &lc, SECRET, KEY_ATTACKER, true); /* a proof made for another nonce */

    /* Requests after HELLO without AUTH: FP_ERR_AUTH, then close. */
    {
        fp_proto_hello_rep_t rep;
        uint8_t hb[FP_PROTO_HELLO_REQ_SIZE], rb[FP_PROTO_HELLO_REP_SIZE];
        fp_proto_hello_req_t req = {1, 1, {0}};
        uint8_t ops[] = {FP_OP_STATS, FP_OP_READ, FP_OP_SLAB_ALLOC, 99};

        key_set(req.client_key, KEY_VICTIM); /* even with the victim's key */
        fp_proto_hello_req_encode(&req, hb);
        r.slab = e->vslab[0];
        r.offset = 0;
        r.length = 64;
        for (size_t i = 0; i < sizeof(ops); i++) {
            uint64_t id = next_id(e);
            fp_proto_hdr_t h;
            uint32_t len = 0;

            fd = raw_connect(e);
            fp_test_attack_send_frame(fd, FP_OP_HELLO, id, hb, sizeof(hb));
            h = fp_test_attack_recv_reply(fd, FP_OP_HELLO, id, rb, sizeof(rb));
            if (h.status != FP_OK || fp_proto_hello_rep_decode(rb, h.length, &rep) != FP_OK)
                fail_msg("HELLO failed: %d", (int)h.status);
            if (ops[i] == FP_OP_READ)
                len = fp_proto_ranges_encode(FP_OP_READ, &r, 1, payload);
            id = next_id(e);
            fp_test_attack_send_frame(fd, ops[i], id, payload, len);
            expect_rejected(e, &lc, fd, ops[i], id, FP_ERR_AUTH, true);
            close(fd);
        }
    }

    /* HELLO, then silence: dropped by the handshake timeout (1 s). */
    fd = raw_connect(e);
    fp_test_attack_peer(fd, peer, sizeof(peer));
    fp_test_attack_log_expect_event(&e->d, &lc, "%s: no handshake within", peer);
    {
        fp_proto_hello_req_t req = {1, 1, {0}};
        uint8_t hb[FP_PROTO_HELLO_REQ_SIZE];
        uint64_t id = next_id(e);

        key_set(req.client_key, KEY_ATTACKER);
        fp_proto_hello_req_encode(&req, hb);
        fp_test_attack_send_frame(fd, FP_OP_HELLO, id, hb, sizeof(hb));
        fp_test_attack_expect_status(fd, FP_OP_HELLO, id, FP_OK);
    }
    t0 = fp_test_attack_now_ms();
    expect_closed(fd, "HELLO without AUTH");
    took = fp_test_attack_now_ms() - t0;
    if (took > 2000)
        fail_msg("the node dropped a client that never sent AUTH only after %llu ms",
                 (unsigned long long)took);
    close(fd);
    check_healthy(e); /* with the right secret, through the public API */
    fp_test_attack_log_verify(&e->d, &lc);

    /* The right secret over raw bytes: AUTH succeeds; a second AUTH is a protocol error. */
    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_ATTACKER);
    raw_ping(e, fd);
    {
        uint64_t id = next_id(e);

        memset(payload, 0, sizeof(payload));
        fp_test_attack_send_frame(fd, FP_OP_AUTH, id, payload, sizeof(payload));
        expect_rejected(e, &lc, fd, FP_OP_AUTH, id, FP_ERR_PROTOCOL, true);
    }
    close(fd);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);

    /* The public API with a wrong secret gets FP_ERR_AUTH. */
    fp_test_attack_log_begin(&e->d, &lc);
    fp_test_attack_log_expect_event(&e->d, &lc, "rejected: %s", fp_status_string(FP_ERR_AUTH));
    node_params(e, NULL, &p);
    p.secret = WRONG_SECRET;
    p.secret_len = strlen(WRONG_SECRET);
    status = farpool_node_connect(e->d.addr, &p, &node);
    farpool_node_close(node);
    node = NULL;
    if (status != FP_ERR_AUTH)
        fail_msg("farpool_node_connect with a wrong secret: %d (%s), expected FP_ERR_AUTH",
                 (int)status, fp_status_string(status));
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);

    /* ... and without one it is refused as well (the client gives up, the node logs nothing). */
    fp_test_attack_log_begin(&e->d, &lc);
    node_params(e, NULL, &p);
    p.field_mask &= ~(uint64_t)FARPOOL_NODE_PARAM_SECRET;
    status = farpool_node_connect(e->d.addr, &p, &node);
    farpool_node_close(node);
    if (status != FP_ERR_AUTH)
        fail_msg("farpool_node_connect without a secret: %d (%s), expected FP_ERR_AUTH",
                 (int)status, fp_status_string(status));
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);

    assert_int_equal(private_stop(), 0);
}

/* Spec section 7: a HELLO after the first one is FP_ERR_PROTOCOL, also while AUTH is awaited. */
static void test_second_hello_before_auth(void **state)
{
    const char *args[] = {"--secret-file", NULL, "--capacity", "8M", "--slab-size", "1M", NULL};
    char path[FP_TEST_PATH_MAX];
    fp_proto_hello_req_t req = {1, 1, {0}};
    uint8_t hb[FP_PROTO_HELLO_REQ_SIZE];
    fp_test_attack_logcheck_t lc;
    uint64_t id;
    env_t *e;
    int fd;

    (void)state;
    if (fp_test_write_secret(NULL, SECRET, strlen(SECRET), path) != FP_OK)
        fail_msg("cannot write the secret file");
    args[1] = path;
    e = private_start(args, SECRET, 1);
    key_set(req.client_key, KEY_ATTACKER);
    fp_proto_hello_req_encode(&req, hb);
    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_connect(e);
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_HELLO, id, hb, sizeof(hb));
    fp_test_attack_expect_status(fd, FP_OP_HELLO, id, FP_OK);
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_HELLO, id, hb, sizeof(hb));
    expect_rejected(e, &lc, fd, FP_OP_HELLO, id, FP_ERR_PROTOCOL, true);
    close(fd);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
    assert_int_equal(private_stop(), 0);
}

/* Allocation past capacity: FP_ERR_NO_SPACE, and space freed is usable again. */
static void test_capacity(void **state)
{
    const char *args[] = {"--capacity", "256K", "--slab-size", "64K", NULL};
    uint64_t v[FP_PROTO_STATS_FIELDS], mine[3], again, id;
    fp_test_attack_logcheck_t lc;
    env_t *e;
    int fd, fd2;

    (void)state;
    e = private_start(args, NULL, 1); /* slab 1 of 4: the victim's */
    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_ATTACKER);
    for (int i = 0; i < 3; i++)
        mine[i] = raw_alloc(e, fd); /* slabs 2, 3 and 4 */
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_SLAB_ALLOC, id, NULL, 0); /* the 5th */
    expect_rejected(e, &lc, fd, FP_OP_SLAB_ALLOC, id, FP_ERR_NO_SPACE, false);
    fd2 = raw_open(e, KEY_OTHER);
    id = next_id(e);
    fp_test_attack_send_frame(fd2, FP_OP_SLAB_ALLOC, id, NULL, 0);
    expect_rejected(e, &lc, fd2, FP_OP_SLAB_ALLOC, id, FP_ERR_NO_SPACE, false);
    raw_stats(e, fd2, v);
    if (v[0] != 256u << 10 || v[1] != 256u << 10 || v[3] != 4)
        fail_msg("STATS at capacity: capacity %llu, used %llu, slabs %llu; expected 256K, 256K, 4",
                 (unsigned long long)v[0], (unsigned long long)v[1], (unsigned long long)v[3]);

    raw_free(e, fd, mine[1]);
    again = raw_alloc(e, fd2); /* the freed space serves another client */
    id = next_id(e);
    fp_test_attack_send_frame(fd, FP_OP_SLAB_ALLOC, id, NULL, 0);
    expect_rejected(e, &lc, fd, FP_OP_SLAB_ALLOC, id, FP_ERR_NO_SPACE, false);
    raw_free(e, fd2, again);
    raw_free(e, fd, mine[0]);
    raw_free(e, fd, mine[2]);
    close(fd);
    close(fd2);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
    wait_used(e, 64u << 10);
    assert_int_equal(private_stop(), 0);
}

/* Clients that connect and never speak, or stop mid-frame, with 1 s timeouts. */
static void test_silent_client(void **state)
{
    const char *args[] = {"--handshake-timeout",
                          "1",
                          "--idle-timeout",
                          "1",
                          "--capacity",
                          "8M",
                          "--slab-size",
                          "1M",
                          NULL};
    char peer[FP_TEST_ADDR_MAX];
    uint8_t hb[FP_PROTO_HDR_SIZE + 10];
    uint64_t t0, took_silent, took_stuck;
    int idle, silent, stuck;
    fp_test_attack_logcheck_t lc;
    env_t *e;

    (void)state;
    e = private_start(args, NULL, 1);
    fp_test_attack_log_begin(&e->d, &lc);
    idle = raw_open(e, KEY_ATTACKER); /* ready and idle between frames: kept */
    stuck = raw_open(e, KEY_ATTACKER);
    silent = raw_connect(e);
    t0 = fp_test_attack_now_ms();
    fp_test_attack_peer(silent, peer, sizeof(peer));
    fp_test_attack_log_expect_event(&e->d, &lc, "%s: no handshake within", peer);
    fp_test_attack_peer(stuck, peer, sizeof(peer));
    fp_test_attack_log_expect_event(&e->d, &lc, "%s: stalled mid-request", peer);
    memset(hb, 0, sizeof(hb));
    fp_test_attack_encode_request(hb, FP_OP_PING, next_id(e), 100);
    fp_test_attack_send(stuck, hb, sizeof(hb)); /* 10 of 100 payload bytes, then nothing */

    expect_closed(silent, "a client that never speaks");
    took_silent = fp_test_attack_now_ms() - t0;
    expect_closed(stuck, "a client stuck mid-frame");
    took_stuck = fp_test_attack_now_ms() - t0;
    if (took_silent < 900 || took_silent > 2000)
        fail_msg("a silent client was dropped after %llu ms; expected about 1000 "
                 "(--handshake-timeout 1)",
                 (unsigned long long)took_silent);
    if (took_stuck > 2000)
        fail_msg("a client stuck mid-frame was dropped after %llu ms; expected about 1000 "
                 "(--idle-timeout 1)",
                 (unsigned long long)took_stuck);
    if (fp_test_attack_now_ms() - t0 < 1500)
        fp_test_attack_sleep_ms((unsigned)(1500 - (fp_test_attack_now_ms() - t0)));
    raw_ping(e, idle); /* more than a timeout later, still served */
    close(silent);
    close(stuck);
    close(idle);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
    assert_int_equal(private_stop(), 0);
}

/* Index of the first byte of @got that is neither @a's nor @b's, or @len if none. */
static size_t first_not_either(const uint8_t *got, const uint8_t *a, const uint8_t *b, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (got[i] != a[i] && got[i] != b[i])
            return i;
    }
    return len;
}

/*
 * A client that vanishes in the middle of a WRITE's data: the range being
 * written may hold old or new bytes (section 10), everything else is intact,
 * and the slab references of the unfinished WRITE are released.
 */
static void test_vanish_mid_write(void **state)
{
    env_t *e = *state;
    const uint64_t off = 1u << 20, len = 8u << 20;
    uint64_t size = e->slab_size, x;
    uint8_t *data, *old, *got;
    farpool_node_stats_t before;
    fp_proto_range_t r;
    char peer[FP_TEST_ADDR_MAX];
    fp_status_t status;
    fp_test_attack_logcheck_t lc;
    frame_t f;
    int fd;

    fp_test_attack_new_client_stats(&e->d, e->secret, &before);
    fd = raw_open(e, KEY_VICTIM);
    x = raw_alloc(e, fd); /* a third slab of the victim's, for the target */
    close(fd);
    old = malloc(size);
    got = malloc(size);
    if (old == NULL || got == NULL)
        fail_msg("out of memory");
    fp_pattern_fill(old, size, x, 0, VICTIM_VERSION);
    status = farpool_slab_write(e->victim, x, 0, old, size);
    if (status != FP_OK)
        fail_msg("victim: write: %s", fp_status_string(status));
    data = attack_data(len, x, off);
    r.slab = x;
    r.offset = off;
    r.length = (uint32_t)len;

    for (int how = 0; how < 3; how++) {
        /* 0: half the data, then FIN; 1: half the data, then RST; 2: args only, FIN. */
        size_t sent = how == 2 ? FP_PROTO_HDR_SIZE + FP_PROTO_RANGE_SIZE
                               : FP_PROTO_HDR_SIZE + FP_PROTO_RANGE_SIZE + len / 2;
        size_t bad;

        fp_test_attack_log_begin(&e->d, &lc);
        fd = raw_open(e, KEY_VICTIM);
        fp_test_attack_peer(fd, peer, sizeof(peer));
        fp_test_attack_log_expect_event(&e->d, &lc, "%s: connection lost", peer);
        f = frame_data(FP_OP_WRITE, next_id(e), &r, 1, data, len);
        fp_test_attack_send(fd, f.buf, sent);
        free(f.buf);
        if (how == 1) {
            struct linger lg = {1, 0};

            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        }
        close(fd);
        check_healthy(e); /* the victim's two slabs are intact */
        fp_test_attack_log_verify(&e->d, &lc);

        status = farpool_slab_read(e->victim, x, 0, got, size);
        if (status != FP_OK)
            fail_msg("victim: read: %s", fp_status_string(status));
        FP_PATTERN_ASSERT(got, off, x, 0, VICTIM_VERSION);
        FP_PATTERN_ASSERT(got + off + len, size - off - len, x, off + len, VICTIM_VERSION);
        bad = first_not_either(got + off, old + off, data, len);
        if (bad != len)
            fail_msg("byte %llu of the interrupted WRITE's range is neither old nor new data",
                     (unsigned long long)(off + bad));
        /* Back to the old content for the next round. */
        status = farpool_slab_write(e->victim, x, 0, old, size);
        if (status != FP_OK)
            fail_msg("victim: write: %s", fp_status_string(status));
    }
    status = farpool_slab_free(e->victim, x);
    if (status != FP_OK)
        fail_msg("victim: free: %s", fp_status_string(status));
    wait_used(e, before.used);
    free(data);
    free(old);
    free(got);
}

/*
 * A client that pipelines 64 READs of 16 MiB and never reads a reply: the node
 * must not block on it nor buffer 1 GiB, and keeps serving everyone else.
 */
static void test_never_reads(void **state)
{
    env_t *e = *state;
    uint8_t *reqs = malloc(NEVER_READ_REQS * (FP_PROTO_HDR_SIZE + FP_PROTO_RANGE_SIZE));
    char peer[FP_TEST_ADDR_MAX];
    farpool_node_stats_t before;
    fp_proto_range_t r;
    uint64_t s;
    fp_test_attack_logcheck_t lc;
    int fd, fd2;

    if (reqs == NULL)
        fail_msg("out of memory");
    fp_test_attack_new_client_stats(&e->d, e->secret, &before);
    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_ATTACKER);
    s = raw_alloc(e, fd);
    r.slab = s;
    r.offset = 0;
    r.length = (uint32_t)e->slab_size;
    for (int i = 0; i < NEVER_READ_REQS; i++) {
        uint8_t *p = reqs + (size_t)i * (FP_PROTO_HDR_SIZE + FP_PROTO_RANGE_SIZE);

        fp_test_attack_encode_request(p, FP_OP_READ, next_id(e), FP_PROTO_RANGE_SIZE);
        fp_proto_ranges_encode(FP_OP_READ, &r, 1, p + FP_PROTO_HDR_SIZE);
    }
    fp_test_attack_send(fd, reqs, NEVER_READ_REQS * (FP_PROTO_HDR_SIZE + FP_PROTO_RANGE_SIZE));
    free(reqs);
    fp_test_attack_sleep_ms(300); /* the node fills the socket and backs up */
    for (int i = 0; i < 3; i++) {
        check_healthy(e); /* STATS within 2 s, the victim reads 32 MiB */
        fp_test_attack_sleep_ms(100);
    }
    if (!fp_test_daemon_alive(&e->d))
        fail_msg("farpoold died");
    /* Closing with replies unread resets the connection: one line for it. */
    fp_test_attack_peer(fd, peer, sizeof(peer));
    fp_test_attack_log_expect_event2(&e->d, &lc, peer, "send failed", "connection lost");
    close(fd);
    fd2 = raw_open(e, KEY_ATTACKER);
    raw_free(e, fd2, s);
    close(fd2);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
    wait_used(e, before.used); /* the queued replies let go of the slab */
}

/* Ranges of length 0: FP_ERR_PROTOCOL, connection kept, nothing written. */
static void test_zero_length_range(void **state)
{
    env_t *e = *state;
    uint64_t s0 = e->vslab[0], s1 = e->vslab[1];
    fp_proto_range_t rv[2] = {{s0, 0, 16}, {s0, 16, 0}};
    fp_proto_range_t wv[2] = {{s1, 0, 0}, {s1, 0, 16}};
    uint8_t *data = attack_data(16, s1, 0);
    uint8_t args[FP_PROTO_HDR_SIZE + FP_PROTO_RANGE_SIZE];
    fp_test_attack_logcheck_t lc;
    uint64_t id;
    int fd;

    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_VICTIM);
    reject_range(e, &lc, fd, FP_OP_READ, s0, 0, 0, NULL, 0, FP_ERR_PROTOCOL);
    reject_range(e, &lc, fd, FP_OP_WRITE, s0, 0, 0, NULL, 0, FP_ERR_PROTOCOL);
    reject_data(e, &lc, fd, FP_OP_READV, rv, 2, NULL, 0, FP_ERR_PROTOCOL);
    reject_data(e, &lc, fd, FP_OP_WRITEV, wv, 2, data, 16, FP_ERR_PROTOCOL);
    /* A range with its reserved field set. */
    id = next_id(e);
    fp_test_attack_encode_request(args, FP_OP_READ, id, FP_PROTO_RANGE_SIZE);
    fp_proto_ranges_encode(FP_OP_READ, rv, 1, args + FP_PROTO_HDR_SIZE);
    args[FP_PROTO_HDR_SIZE + 20] = 1;
    fp_test_attack_send(fd, args, sizeof(args));
    expect_rejected(e, &lc, fd, FP_OP_READ, id, FP_ERR_PROTOCOL, false);
    /* A READ frame longer than its args. */
    reject_range(e, &lc, fd, FP_OP_READ, s0, 0, 16, data, 16, FP_ERR_PROTOCOL);
    close(fd);
    free(data);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* READV/WRITEV range counts of 0 and 1025, and the other vector errors. */
static void test_readv_count(void **state)
{
    env_t *e = *state;
    uint64_t s0 = e->vslab[0], size = e->slab_size;
    const uint32_t n = FP_PROTO_MAX_RANGES + 1;
    fp_proto_range_t *r = calloc(n, sizeof(*r));
    uint8_t *data = attack_data(4096, s0, 0), *got = malloc(size);
    uint8_t vec[FP_PROTO_HDR_SIZE + FP_PROTO_VEC_HDR];
    fp_proto_hdr_t h;
    fp_test_attack_logcheck_t lc;
    uint64_t id;
    frame_t f;
    int fd;

    if (r == NULL || got == NULL)
        fail_msg("out of memory");
    for (uint32_t i = 0; i < n; i++) {
        r[i].slab = s0;
        r[i].offset = (uint64_t)i * 4096;
        r[i].length = 1;
    }
    fp_test_attack_log_begin(&e->d, &lc);
    fd = raw_open(e, KEY_VICTIM);
    reject_data(e, &lc, fd, FP_OP_READV, r, 0, NULL, 0, FP_ERR_PROTOCOL);
    reject_data(e, &lc, fd, FP_OP_WRITEV, r, 0, data, 16, FP_ERR_PROTOCOL);
    reject_data(e, &lc, fd, FP_OP_READV, r, n, NULL, 0, FP_ERR_PROTOCOL);
    reject_data(e, &lc, fd, FP_OP_WRITEV, r, n, data, n, FP_ERR_PROTOCOL);

    /* The vector header's reserved field. */
    id = next_id(e);
    fp_test_attack_encode_request(vec, FP_OP_READV, id, FP_PROTO_VEC_HDR);
    fp_proto_put_u32(vec + FP_PROTO_HDR_SIZE, 1);
    fp_proto_put_u32(vec + FP_PROTO_HDR_SIZE + 4, 1);
    fp_test_attack_send(fd, vec, sizeof(vec));
    expect_rejected(e, &lc, fd, FP_OP_READV, id, FP_ERR_PROTOCOL, false);

    /* A count of 2 in a frame that holds 3 ranges. */
    id = next_id(e);
    f = frame_data(FP_OP_READV, id, r, 3, NULL, 0);
    fp_proto_put_u32(f.buf + FP_PROTO_HDR_SIZE, 2);
    fp_test_attack_send(fd, f.buf, f.len);
    free(f.buf);
    expect_rejected(e, &lc, fd, FP_OP_READV, id, FP_ERR_PROTOCOL, false);

    /* 1024 ranges of 16 KiB + 1: more than 16 MiB of data. */
    for (uint32_t i = 0; i < FP_PROTO_MAX_RANGES; i++) {
        r[i].offset = (uint64_t)i * 16384;
        r[i].length = 16385;
    }
    r[FP_PROTO_MAX_RANGES - 1].length = 16384;
    reject_data(e, &lc, fd, FP_OP_READV, r, FP_PROTO_MAX_RANGES, NULL, 0, FP_ERR_TOO_LARGE);

    /* The limits themselves are accepted: 1024 ranges, 16 MiB, the whole slab in order. */
    for (uint32_t i = 0; i < FP_PROTO_MAX_RANGES; i++)
        r[i].length = (uint32_t)(size / FP_PROTO_MAX_RANGES);
    id = next_id(e);
    send_data(fd, FP_OP_READV, id, r, FP_PROTO_MAX_RANGES, NULL, 0);
    h = fp_test_attack_recv_reply(fd, FP_OP_READV, id, got, size);
    if (h.status != FP_OK || h.length != size)
        fail_msg("READV of 1024 ranges covering 16 MiB: status %d, %u bytes", (int)h.status,
                 h.length);
    FP_PATTERN_ASSERT(got, size, s0, 0, VICTIM_VERSION);
    close(fd);
    free(r);
    free(data);
    free(got);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc);
}

/* 1000 connections at once (half say HELLO, half stay silent), then all closed. */
static void test_many_connections(void **state)
{
    env_t *e = *state;
    int *fds = malloc(MANY_CONNS * sizeof(*fds));
    uint64_t v[FP_PROTO_STATS_FIELDS], deadline, clients0;
    fp_proto_hello_req_t req = {1, 1, {0}};
    uint8_t hb[FP_PROTO_HDR_SIZE + FP_PROTO_HELLO_REQ_SIZE];
    fp_test_attack_logcheck_t lc;
    int fd;

    if (fds == NULL)
        fail_msg("out of memory");
    key_set(req.client_key, KEY_ATTACKER);
    fp_proto_hello_req_encode(&req, hb + FP_PROTO_HDR_SIZE);
    fd = raw_open(e, KEY_OTHER);
    raw_stats(e, fd, v);
    do { /* until the clients of earlier tests are gone */
        clients0 = v[4];
        fp_test_attack_sleep_ms(50);
        raw_stats(e, fd, v);
    } while (v[4] != clients0);
    fp_test_attack_log_begin(&e->d, &lc);
    for (int i = 0; i < MANY_CONNS; i++) {
        fds[i] = raw_connect(e);
        if (i % 2 == 0) {
            fp_test_attack_encode_request(hb, FP_OP_HELLO, (uint64_t)i, FP_PROTO_HELLO_REQ_SIZE);
            fp_test_attack_send(fds[i], hb, sizeof(hb));
        }
    }
    for (int i = 0; i < MANY_CONNS; i += 2)
        fp_test_attack_expect_status(fds[i], FP_OP_HELLO, (uint64_t)i, FP_OK);
    raw_stats(e, fd, v);
    if (v[4] != clients0 + MANY_CONNS)
        fail_msg("STATS shows %llu clients with %d more connected; expected %llu",
                 (unsigned long long)v[4], MANY_CONNS, (unsigned long long)(clients0 + MANY_CONNS));
    check_healthy(e);
    for (int i = 0; i < MANY_CONNS; i++)
        close(fds[i]);
    free(fds);
    deadline = fp_test_attack_now_ms() + 3000;
    for (;;) {
        raw_stats(e, fd, v);
        if (v[4] == clients0)
            break;
        if (fp_test_attack_now_ms() >= deadline)
            fail_msg("STATS still shows %llu clients, %llu before the 1000 came and went",
                     (unsigned long long)v[4], (unsigned long long)clients0);
        fp_test_attack_sleep_ms(20);
    }
    close(fd);
    check_healthy(e);
    fp_test_attack_log_verify(&e->d, &lc); /* clients that leave cleanly are not warnings */
}

/* SIGTERM makes the daemon exit 0, with clients connected, one of them mid-frame. */
static void test_sigterm_exit_zero(void **state)
{
    const char *args[] = {"--capacity", "8M", "--slab-size", "1M", NULL};
    uint8_t hb[FP_PROTO_HDR_SIZE + 10];
    env_t *e;
    int fd, code;

    (void)state;
    e = private_start(args, NULL, 2);
    fd = raw_open(e, KEY_ATTACKER);
    memset(hb, 0, sizeof(hb));
    fp_test_attack_encode_request(hb, FP_OP_PING, next_id(e), 100);
    fp_test_attack_send(fd, hb, sizeof(hb));
    check_healthy(e);
    code = fp_test_daemon_stop(&e->d); /* with its clients still connected */
    close(fd);
    private_stop(); /* closes the victim; the daemon is gone already */
    if (code != 0)
        fail_msg("farpoold exited with code %d after SIGTERM, expected 0", code);
}

/* ---- group ---- */

static int group_setup(void **state)
{
    static const char *const args[] = {"--capacity", "256M", "--slab-size", "16M", NULL};
    static env_t env;
    struct rlimit rl;

    /* 1000 connections need as many descriptors, here and in the daemon. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096 && rl.rlim_max > rl.rlim_cur) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    fp_test_attack_watchdog_install();
    fp_test_attack_set_note(daemon_note);

    if (env_start(&env, args, NULL, VICTIM_SLABS) != 0)
        return -1;
    if (env.slab_size != MAIN_SLAB_SIZE) {
        fprintf(stderr, "slab size %llu, expected 16M\n", (unsigned long long)env.slab_size);
        return -1;
    }
    group_env = &env;
    *state = &env;
    return 0;
}

static int group_teardown(void **state)
{
    env_t *e = *state;
    int code;

    if (e == NULL)
        return 0;
    code = env_stop(e);
    if (code != 0) {
        fprintf(stderr, "farpoold exited with code %d after SIGTERM, expected 0\n", code);
        return -1;
    }
    return 0;
}

#define BADINPUT_TEST(f)                                                                           \
    cmocka_unit_test_setup_teardown(f, fp_test_attack_watchdog_arm, watchdog_disarm)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BADINPUT_TEST(test_garbage),
        BADINPUT_TEST(test_truncated_frame),
        BADINPUT_TEST(test_length_4gib),
        BADINPUT_TEST(test_unknown_opcode),
        BADINPUT_TEST(test_wrong_version),
        BADINPUT_TEST(test_header_errors),
        BADINPUT_TEST(test_control_sizes),
        BADINPUT_TEST(test_read_out_of_bounds),
        BADINPUT_TEST(test_write_out_of_bounds),
        BADINPUT_TEST(test_foreign_slab),
        BADINPUT_TEST(test_freed_slab),
        BADINPUT_TEST(test_before_hello),
        BADINPUT_TEST(test_handshake_order),
        BADINPUT_TEST(test_wrong_secret),
        BADINPUT_TEST(test_second_hello_before_auth),
        BADINPUT_TEST(test_capacity),
        BADINPUT_TEST(test_silent_client),
        BADINPUT_TEST(test_vanish_mid_write),
        BADINPUT_TEST(test_never_reads),
        BADINPUT_TEST(test_zero_length_range),
        BADINPUT_TEST(test_readv_count),
        BADINPUT_TEST(test_many_connections),
        BADINPUT_TEST(test_sigterm_exit_zero),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
