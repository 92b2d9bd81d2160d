/* SPDX-License-Identifier: MIT */
/*
 * Integration tests of the memory-node API (src/client/node.c, public
 * farpool_node_* and farpool_slab_*) against a real farpoold on loopback, and
 * against fake nodes made here for what a real one never does (stay silent,
 * stall after HELLO, send a short READ reply).
 *
 * Covered: connect and close; writes and reads at unaligned offsets and
 * lengths, a full slab and a transfer cut into many pipelined chunks, checked
 * byte for byte with the pattern detector and against a shadow copy of the
 * slab; accesses past a slab's end; free and reuse of ids; sharing by client
 * key and refusal of other keys; slabs outliving their connection; the STATS
 * counters; ping; the secret handshake; a node killed between calls and in
 * the middle of a long read; timeouts, refused connections and bad addresses.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <farpool/farpool.h>

#include "common/daemon.h"
#include "common/pattern.h"
#include "proto/proto.h"

#define MiB        (1ull << 20)
#define SLAB_SIZE  (64 * MiB) /* farpoold's default */
#define MAX_NODES  8
#define MAX_MEM    8
#define MAX_FAKES  2
#define JOIN_BOUND 15 /* seconds a thread may take once its node is gone */

/* ---------------------------------------------------------------------------
 * Fake nodes: a listening socket in this process, and a thread that plays a
 * node badly.
 */
typedef enum fake_mode {
    FAKE_ANSWER_HELLO_THEN_STALL, /* HELLO is answered, nothing after it */
    FAKE_SHORT_READ_REPLY,        /* READs get a reply with half the bytes asked */
} fake_mode_t;

typedef struct fake_node {
    int lfd;
    char addr[FP_TEST_ADDR_MAX];
    fake_mode_t mode;
    pthread_t thread;
    bool running;
    _Atomic int hello_seen;
    _Atomic int data_requests;
    _Atomic int client_closed;
    _Atomic int failed; /* the fake saw something it did not expect */
} fake_node_t;

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A listening TCP socket on 127.0.0.1 with a kernel-chosen port; -1 on error. */
static int listen_loopback(char *addr_p, int backlog)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        (backlog > 0 && listen(fd, backlog) != 0) ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        close(fd);
        return -1;
    }
    snprintf(addr_p, FP_TEST_ADDR_MAX, "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
    return fd;
}

/* Read one request frame; its payload (at most @cap bytes) into @payload. */
static int fake_read_frame(int fd, fp_proto_hdr_t *hdr, uint8_t *payload, size_t cap)
{
    uint8_t buf[FP_PROTO_HDR_SIZE];

    if (fp_test_recv_all(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf))
        return -1;
    if (fp_proto_hdr_decode(buf, false, hdr) != FP_OK || hdr->length > cap)
        return -2;
    if (fp_test_recv_all(fd, payload, hdr->length) != (ssize_t)hdr->length)
        return -1;
    return 0;
}

static int fake_send_reply(int fd, const fp_proto_hdr_t *req, int32_t status, const void *payload,
                           uint32_t len)
{
    fp_proto_hdr_t hdr = {FP_PROTO_VERSION, req->op, FP_PROTO_FLAG_REPLY, req->id, status, len};
    uint8_t buf[FP_PROTO_HDR_SIZE];

    fp_proto_hdr_encode(&hdr, buf);
    if (fp_test_send_all(fd, buf, sizeof(buf)) != 0)
        return -1;
    return len > 0 ? fp_test_send_all(fd, payload, len) : 0;
}

static void *fake_node_main(void *arg)
{
    fake_node_t *f = arg;
    static uint8_t payload[FP_PROTO_MAX_PAYLOAD]; /* one fake node at a time uses it */
    struct pollfd pfd = {.fd = f->lfd, .events = POLLIN};
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    fp_proto_hello_rep_t rep;
    uint8_t hello[FP_PROTO_HELLO_REP_SIZE];
    fp_proto_hdr_t hdr;
    int fd, rc;

    if (poll(&pfd, 1, 10000) != 1 || (fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
        f->failed = 1;
        return NULL;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (fake_read_frame(fd, &hdr, payload, sizeof(payload)) != 0 || hdr.op != FP_OP_HELLO) {
        f->failed = 1;
        close(fd);
        return NULL;
    }
    f->hello_seen = 1;
    memset(&rep, 0, sizeof(rep));
    rep.version = FP_PROTO_VERSION;
    rep.node_id = 0x1234;
    rep.slab_size = SLAB_SIZE;
    rep.max_data = FP_PROTO_MAX_DATA;
    rep.max_ranges = FP_PROTO_MAX_RANGES;
    fp_proto_hello_rep_encode(&rep, hello);
    if (fake_send_reply(fd, &hdr, FP_OK, hello, sizeof(hello)) != 0)
        f->failed = 1;

    /* Serve (or not) until the client goes away. */
    while ((rc = fake_read_frame(fd, &hdr, payload, sizeof(payload))) == 0) {
        if (fp_proto_op_is_data(hdr.op))
            f->data_requests++;
        if (f->mode == FAKE_SHORT_READ_REPLY && hdr.op == FP_OP_READ) {
            uint32_t asked = fp_proto_get_u32(payload + 16);
            memset(payload, 0x42, asked / 2);
            if (fake_send_reply(fd, &hdr, FP_OK, payload, asked / 2) != 0)
                break;
        }
    }
    if (rc == -1 && errno == 0)
        f->client_closed = 1;
    else if (rc == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
        f->failed = 1; /* the client never closed */
    close(fd);
    return NULL;
}

static void fake_node_start(fake_node_t *f, fake_mode_t mode)
{
    memset(f, 0, sizeof(*f));
    f->mode = mode;
    f->lfd = listen_loopback(f->addr, 4);
    assert_true(f->lfd >= 0);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_node_main, f), 0);
    f->running = true;
}

/* Join the fake's thread (it ends once the client has closed). */
static void fake_node_finish(fake_node_t *f)
{
    if (f->running) {
        pthread_join(f->thread, NULL);
        f->running = false;
    }
    if (f->lfd >= 0)
        close(f->lfd);
    f->lfd = -1;
}

/* ---------------------------------------------------------------------------
 * Fixture: whatever a test opens is released in teardown, failed or not.
 */
typedef struct fixture {
    fp_test_daemon_t daemon;
    bool have_daemon;
    bool daemon_killed; /* 137 is then the expected exit code */
    farpool_node_t *nodes[MAX_NODES];
    void *mem[MAX_MEM];
    fake_node_t *fakes[MAX_FAKES];
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    int code = 0, expected;

    for (int i = 0; i < MAX_NODES; i++)
        farpool_node_close(f->nodes[i]);
    for (int i = 0; i < MAX_FAKES; i++) {
        if (f->fakes[i] != NULL)
            fake_node_finish(f->fakes[i]);
        free(f->fakes[i]);
    }
    for (int i = 0; i < MAX_MEM; i++)
        free(f->mem[i]);
    if (f->have_daemon)
        code = fp_test_daemon_stop(&f->daemon);
    expected = f->daemon_killed ? 137 : 0;
    free(f);
    if (code != expected) {
        fprintf(stderr, "farpoold exited with code %d, expected %d\n", code, expected);
        return -1;
    }
    return 0;
}

static void fx_daemon(fixture_t *f, const char *const args[])
{
    assert_false(f->have_daemon);
    assert_int_equal(fp_test_daemon_start(args, &f->daemon), FP_OK);
    f->have_daemon = true;
}

static void fx_kill(fixture_t *f)
{
    fp_test_daemon_kill(&f->daemon);
    f->daemon_killed = true;
}

static void fx_track(fixture_t *f, farpool_node_t *node)
{
    for (int i = 0; i < MAX_NODES; i++) {
        if (f->nodes[i] == NULL) {
            f->nodes[i] = node;
            return;
        }
    }
    fail_msg("too many nodes in one test");
}

/* Connect to the fixture's daemon (or @addr) and keep the handle for teardown. */
static farpool_node_t *fx_connect(fixture_t *f, const char *addr,
                                  const farpool_node_params_t *params)
{
    farpool_node_t *node = NULL;
    fp_status_t status;

    status = farpool_node_connect(addr != NULL ? addr : f->daemon.addr, params, &node);
    if (status != FP_OK)
        fail_msg("connect to %s: %s", addr != NULL ? addr : f->daemon.addr,
                 farpool_status_string(status));
    assert_non_null(node);
    fx_track(f, node);
    return node;
}

static farpool_node_t *fx_connect_key(fixture_t *f, uint8_t key_byte)
{
    farpool_node_params_t params;

    memset(&params, 0, sizeof(params));
    params.field_mask = FARPOOL_NODE_PARAM_CLIENT_KEY;
    memset(params.client_key, key_byte, sizeof(params.client_key));
    return fx_connect(f, NULL, &params);
}

/* Close @node now and forget it. */
static void fx_close(fixture_t *f, farpool_node_t *node)
{
    for (int i = 0; i < MAX_NODES; i++) {
        if (f->nodes[i] == node)
            f->nodes[i] = NULL;
    }
    farpool_node_close(node);
}

static uint8_t *fx_alloc(fixture_t *f, size_t len)
{
    for (int i = 0; i < MAX_MEM; i++) {
        if (f->mem[i] == NULL) {
            f->mem[i] = malloc(len);
            assert_non_null(f->mem[i]);
            return f->mem[i];
        }
    }
    fail_msg("too many buffers in one test");
    return NULL;
}

/* A fake node owned by the fixture (its thread may outlive a failed test's frame). */
static fake_node_t *fx_fake(fixture_t *f, fake_mode_t mode)
{
    for (int i = 0; i < MAX_FAKES; i++) {
        if (f->fakes[i] == NULL) {
            f->fakes[i] = calloc(1, sizeof(fake_node_t));
            assert_non_null(f->fakes[i]);
            fake_node_start(f->fakes[i], mode);
            return f->fakes[i];
        }
    }
    fail_msg("too many fake nodes in one test");
    return NULL;
}

#define assert_status(expr, expected)                                                              \
    do {                                                                                           \
        fp_status_t st_ = (expr);                                                                  \
        if (st_ != (expected))                                                                     \
            fail_msg("%s: expected %s, got %s (%d)", #expr, farpool_status_string(expected),       \
                     farpool_status_string(st_), (int)st_);                                        \
    } while (0)

#define assert_ok(expr) assert_status((expr), FP_OK)

static farpool_node_stats_t get_stats(farpool_node_t *node)
{
    farpool_node_stats_t s;

    memset(&s, 0xff, sizeof(s));
    assert_ok(farpool_node_stats(node, &s, sizeof(s)));
    return s;
}

static bool all_bytes(const uint8_t *p, size_t len, uint8_t value)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != value)
            return false;
    }
    return true;
}

/* Index of the first byte that is not @value, or @len. */
static size_t first_not(const uint8_t *p, size_t len, uint8_t value)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != value)
            return i;
    }
    return len;
}

/* Number of bytes at the end of @p that are @value. */
static size_t count_trailing(const uint8_t *p, size_t len, uint8_t value)
{
    size_t n = 0;

    while (n < len && p[len - 1 - n] == value)
        n++;
    return n;
}

/* Index of the first differing byte, or @len. */
static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (a[i] != b[i])
            return i;
    }
    return len;
}

/* ---------------------------------------------------------------------------
 * Connecting.
 */
static void test_connect_close(void **state)
{
    fixture_t *f = *state;
    farpool_node_t *node = NULL;
    farpool_node_stats_t s;

    fx_daemon(f, NULL);
    farpool_node_close(NULL); /* a no-op */

    /* NULL params: defaults. */
    assert_ok(farpool_node_connect(f->daemon.addr, NULL, &node));
    assert_non_null(node);
    s = get_stats(node);
    assert_int_equal(s.clients, 1);
    assert_int_equal(s.slab_size, SLAB_SIZE);
    farpool_node_close(node);

    /* Many connect/close cycles leave no client behind. */
    for (int i = 0; i < 50; i++) {
        node = NULL;
        assert_ok(farpool_node_connect(f->daemon.addr, NULL, &node));
        farpool_node_close(node);
    }
    node = fx_connect(f, NULL, NULL);
    for (int i = 0; i < 200; i++) {
        s = get_stats(node);
        if (s.clients == 1)
            break;
        sleep_ms(10);
    }
    assert_int_equal(s.clients, 1);
    assert_true(fp_test_daemon_log_contains(&f->daemon, "client connected"));
}

static void test_connect_invalid_params(void **state)
{
    fixture_t *f = *state;
    farpool_node_t *node = (farpool_node_t *)(uintptr_t)0x1;
    farpool_node_params_t params;

    fx_daemon(f, NULL);
    assert_status(farpool_node_connect(NULL, NULL, &node), FP_ERR_INVALID_PARAM);
    assert_status(farpool_node_connect(f->daemon.addr, NULL, NULL), FP_ERR_INVALID_PARAM);
    memset(&params, 0, sizeof(params));
    params.field_mask = FARPOOL_NODE_PARAM_SECRET; /* a secret of no bytes */
    assert_status(farpool_node_connect(f->daemon.addr, &params, &node), FP_ERR_INVALID_PARAM);
    assert_ptr_equal(node, (farpool_node_t *)(uintptr_t)0x1); /* not written on failure */
}

/* ---------------------------------------------------------------------------
 * The data path.
 */
typedef struct rw_case {
    uint64_t offset;
    size_t len;
} rw_case_t;

static void test_rw_unaligned(void **state)
{
    static const rw_case_t cases[] = {
        {13, 1},
        {4097, 4095},
        {3, 4096},
        {12345, MiB + 7},
        {SLAB_SIZE - 1, 1},
        {SLAB_SIZE - 4096 - 5, 4096 + 5}, /* ends exactly at the slab's end */
        {5 * MiB + 1, 3 * MiB + 3},       /* several chunks, nothing aligned */
        {4096, 0},                        /* nothing at all */
    };
    fixture_t *f = *state;
    farpool_node_t *node;
    uint8_t *shadow, *wbuf, *rbuf;
    uint64_t slab, slab_size = 0;

    fx_daemon(f, NULL);
    node = fx_connect(f, NULL, NULL);
    assert_ok(farpool_slab_alloc(node, &slab, &slab_size));
    assert_int_equal(slab_size, SLAB_SIZE);
    shadow = fx_alloc(f, SLAB_SIZE);
    wbuf = fx_alloc(f, 8 * MiB + 16);
    rbuf = fx_alloc(f, SLAB_SIZE + 16);
    memset(shadow, 0, SLAB_SIZE);

    /* A new slab reads as zeros. */
    memset(rbuf, 0xa5, MiB);
    assert_ok(farpool_slab_read(node, slab, 0, rbuf, MiB));
    assert_true(all_bytes(rbuf, MiB, 0));

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const rw_case_t *c = &cases[i];
        uint8_t *w = wbuf + 1 + i % 7, *r = rbuf + 3 + i % 5; /* odd host alignment too */
        uint32_t version = (uint32_t)i + 1;

        fp_pattern_fill(w, c->len, slab, c->offset, version);
        assert_ok(farpool_slab_write(node, slab, c->offset, w, c->len));
        memcpy(shadow + c->offset, w, c->len);
        memset(r, 0xa5, c->len + 1);
        assert_ok(farpool_slab_read(node, slab, c->offset, r, c->len));
        FP_PATTERN_ASSERT(r, c->len, slab, c->offset, version);
        assert_int_equal(r[c->len], 0xa5); /* not one byte more */
    }

    /* Nothing spilled around any write: the slab is exactly the shadow. */
    assert_ok(farpool_slab_read(node, slab, 0, rbuf + 1, SLAB_SIZE));
    if (memcmp(rbuf + 1, shadow, SLAB_SIZE) != 0)
        fail_msg("slab differs from its shadow at offset %zu",
                 first_diff(rbuf + 1, shadow, SLAB_SIZE));
}

static void test_rw_full_slab(void **state)
{
    fixture_t *f = *state;
    farpool_node_t *node;
    uint8_t *wbuf, *rbuf;
    uint64_t slab;

    fx_daemon(f, NULL);
    node = fx_connect(f, NULL, NULL);
    assert_ok(farpool_slab_alloc(node, &slab, NULL));
    wbuf = fx_alloc(f, SLAB_SIZE + 8);
    rbuf = fx_alloc(f, SLAB_SIZE + 8);

    fp_pattern_fill(wbuf + 1, SLAB_SIZE, slab, 0, 1);
    assert_ok(farpool_slab_write(node, slab, 0, wbuf + 1, SLAB_SIZE));
    memset(rbuf, 0, SLAB_SIZE + 8);
    assert_ok(farpool_slab_read(node, slab, 0, rbuf + 5, SLAB_SIZE));
    FP_PATTERN_ASSERT(rbuf + 5, SLAB_SIZE, slab, 0, 1);

    /* A slice of it, and a rewrite of the whole with another version. */
    assert_ok(farpool_slab_read(node, slab, 33 * MiB + 3, rbuf, MiB + 7));
    FP_PATTERN_ASSERT(rbuf, MiB + 7, slab, 33 * MiB + 3, 1);
    fp_pattern_fill(wbuf, SLAB_SIZE, slab, 0, 2);
    assert_ok(farpool_slab_write(node, slab, 0, wbuf, SLAB_SIZE));
    assert_ok(farpool_slab_read(node, slab, 0, rbuf, SLAB_SIZE));
    FP_PATTERN_ASSERT(rbuf, SLAB_SIZE, slab, 0, 2);
}

/* 40 MiB in one call: cut into 1 MiB requests, many in flight at once. */
static void test_rw_pipelined(void **state)
{
    const size_t len = 40 * MiB;
    const uint64_t offset = 7;
    fixture_t *f = *state;
    farpool_node_t *node;
    farpool_node_stats_t s0, s1, s2;
    uint8_t *wbuf, *rbuf;
    uint64_t slab;

    fx_daemon(f, NULL);
    node = fx_connect(f, NULL, NULL);
    assert_ok(farpool_slab_alloc(node, &slab, NULL));
    wbuf = fx_alloc(f, len + 8);
    rbuf = fx_alloc(f, len + 8);
    fp_pattern_fill(wbuf + 3, len, slab, offset, 9);

    s0 = get_stats(node);
    assert_ok(farpool_slab_write(node, slab, offset, wbuf + 3, len));
    s1 = get_stats(node);
    memset(rbuf, 0, len + 8);
    assert_ok(farpool_slab_read(node, slab, offset, rbuf + 1, len));
    s2 = get_stats(node);
    FP_PATTERN_ASSERT(rbuf + 1, len, slab, offset, 9);
    assert_true(all_bytes(rbuf + 1 + len, 7, 0));

    assert_int_equal(s1.bytes_written - s0.bytes_written, len);
    assert_int_equal(s2.bytes_read - s1.bytes_read, len);
    /* Each was split: at least 40 requests, plus the STATS between them. */
    assert_true(s1.requests - s0.requests >= 40 + 1);
    assert_true(s2.requests - s1.requests >= 40 + 1);
}

/* ---------------------------------------------------------------------------
 * Past the end of a slab.
 */
static void test_read_past_end(void **state)
{
    fixture_t *f = *state;
    farpool_node_t *node;
    uint8_t *buf;
    uint64_t slab;

    fx_daemon(f, NULL);
    node = fx_connect(f, NULL, NULL);
    assert_ok(farpool_slab_alloc(node, &slab, NULL));
    buf = fx_alloc(f, 2 * MiB);
    fp_pattern_fill(buf, MiB, slab, SLAB_SIZE - MiB, 1);
    assert_ok(farpool_slab_write(node, slab, SLAB_SIZE - MiB, buf, MiB));

    /* One byte over, at the end, far past it: no data handed back. */
    memset(buf, 0x5a, 2 * MiB);
    assert_status(farpool_slab_read(node, slab, SLAB_SIZE - 10, buf, 11), FP_ERR_OUT_OF_RANGE);
    assert_status(farpool_slab_read(node, slab, SLAB_SIZE, buf, 1), FP_ERR_OUT_OF_RANGE);
    assert_status(farpool_slab_read(node, slab, SLAB_SIZE * 4, buf, 4096), FP_ERR_OUT_OF_RANGE);
    assert_status(farpool_slab_read(node, slab, SLAB_SIZE - 4096, buf, MiB), FP_ERR_OUT_OF_RANGE);
    assert_true(all_bytes(buf, 2 * MiB, 0x5a));

    /* The connection is still good. */
    assert_ok(farpool_slab_read(node, slab, SLAB_SIZE - 10, buf, 10));
    FP_PATTERN_ASSERT(buf, 10, slab, SLAB_SIZE - 10, 1);
}

/*
 * A read of several chunks whose last chunk crosses the end: the call fails,
 * and the caller's buffer must not hold data from the chunks that were in
 * range (farpool.h: output arguments are written only on FP_OK).
 */
static void test_read_past_end_multi_chunk(void **state)
{
    fixture_t *f = *state;
    farpool_node_t *node;
    uint8_t *buf;
    uint64_t slab;
    size_t len = 4 * MiB;

    fx_daemon(f, NULL);
    node = fx_connect(f, NULL, NULL);
    assert_ok(farpool_slab_alloc(node, &slab, NULL));
    buf = fx_alloc(f, len);
    fp_pattern_fill(buf, len, slab, SLAB_SIZE - len, 1);
    assert_ok(farpool_slab_write(node, slab, SLAB_SIZE - len, buf, len));

    memset(buf, 0x5a, len);
    assert_status(farpool_slab_read(node, slab, SLAB_SIZE - len + 5, buf, len),
                  FP_ERR_OUT_OF_RANGE);
    if (!all_bytes(buf, len, 0x5a))
        fail_msg("a failed read (FP_ERR_OUT_OF_RANGE) handed back data: bytes %zu..%zu of "
                 "the buffer were written",
                 first_not(buf, len, 0x5a), len - 1 - count_trailing(buf, len, 0x5a));
}

/* A write across the end fails and leaves the slab as it was, in one request or several. */
static void test_write_past_end(void **state)
{
    fixture_t *f = *state;
    farpool_node_t *node;
    uint8_t *buf;
    uint64_t slab;
    size_t len = 4 * MiB;

    fx_daemon(f, NULL);
    node = fx_connect(f, NULL, NULL);
    assert_ok(farpool_slab_alloc(node, &slab, NULL));
    buf = fx_alloc(f, len);

    fp_pattern_fill(buf, 100, slab, SLAB_SIZE - 50, 2);
    assert_status(farpool_slab_write(node, slab, SLAB_SIZE - 50, buf, 100), FP_ERR_OUT_OF_RANGE);
    memset(buf, 0x5a, len);
    assert_ok(farpool_slab_read(node, slab, SLAB_SIZE - len, buf, len));
    if (!all_bytes(buf, len, 0))
        fail_msg("a 100-byte write across the end (FP_ERR_OUT_OF_RANGE) changed the slab at "
                 "offset %llu",
                 (unsigned long long)(SLAB_SIZE - len + first_not(buf, len, 0)));

    fp_pattern_fill(buf, len, slab, SLAB_SIZE - len + 5, 2);
    assert_status(farpool_slab_write(node, slab, SLAB_SIZE - len + 5, buf, len),
                  FP_ERR_OUT_OF_RANGE);
    memset(buf, 0x5a, len);
    assert_ok(farpool_slab_read(node, slab, SLAB_SIZE - len, buf, len));
    if (!all_bytes(buf, len, 0))
        fail_msg("a 4 MiB write across the end (FP_ERR_OUT_OF_RANGE) changed the slab: offsets "
                 "%llu..%llu are no longer zero",
                 (unsigned long long)(SLAB_SIZE - len + first_not(buf, len, 0)),
                 (unsigned long long)(SLAB_SIZE - 1 - count_trailing(buf, len, 0)));
}

/*
 * An offset so large that offset + length wraps around 2^64: the call must
 * fail without touching the start of the slab.
 */
static void test_offset_wraparound(void **state)
{
    fixture_t *f = *state;
    farpool_node_t *node;
    uint8_t *buf, *rbuf;
    uint64_t slab, offset = UINT64_MAX - MiB + 1; /* the second chunk would start at 0 */
    size_t len = 3 * MiB;

    fx_daemon(f, NULL);
    node = fx_connect(f, NULL, NULL);
    assert_ok(farpool_slab_alloc(node, &slab, NULL));
    buf = fx_alloc(f, len);
    rbuf = fx_alloc(f, len);

    memset(buf, 0x77, len);
    assert_status(farpool_slab_write(node, slab, offset, buf, len), FP_ERR_OUT_OF_RANGE);
    assert_ok(farpool_slab_read(node, slab, 0, rbuf, len));
    if (!all_bytes(rbuf, len, 0))
        fail_msg("a write at offset 2^64 - 1 MiB (FP_ERR_OUT_OF_RANGE) wrote into the slab: "
                 "offsets %zu..%zu are no longer zero",
                 first_not(rbuf, len, 0), len - 1 - count_trailing(rbuf, len, 0));

    memset(rbuf, 0x5a, len);
    assert_status(farpool_slab_read(node, slab, offset, rbuf, len), FP_ERR_OUT_OF_RANGE);
    assert_true(all_bytes(rbuf, len, 0x5a));
}

/* ---------------------------------------------------------------------------
 * Slab life cycle and ownership.
 */
static void test_free_and_reuse(void **state)
{
    fixture_t *f = *state;
    farpool_node_t *node, *other;
    uint8_t buf[4096];
    uint64_t slab, slab2, slab3;

    fx_daemon(f, (const char *const[]){"--capacity", "64M", NULL}); /* one slab: reuse at once */
    node = fx_connect_key(f, 1);
    other = fx_connect_key(f, 2);
    assert_ok(farpool_slab_alloc(node, &slab, NULL));
    fp_pattern_fill(buf, sizeof(buf), slab, 0, 1);
    assert_ok(farpool_slab_write(node, slab, 0, buf, sizeof(buf)));
    assert_status(farpool_slab_alloc(other, &slab2, NULL), FP_ERR_NO_SPACE);
    assert_ok(farpool_slab_free(node, slab));

    assert_status(farpool_slab_read(node, slab, 0, buf, sizeof(buf)), FP_ERR_NO_ENTRY);
    assert_status(farpool_slab_write(node, slab, 0, buf, sizeof(buf)), FP_ERR_NO_ENTRY);
    assert_status(farpool_slab_free(node, slab), FP_ERR_NO_ENTRY);
    assert_status(farpool_slab_free(node, 0), FP_ERR_NO_ENTRY);
    assert_status(farpool_slab_free(node, 0xdead00000000beefull), FP_ERR_NO_ENTRY);

    /* The memory goes to another client: a new id, zeros, and the old id stays dead. */
    assert_ok(farpool_slab_alloc(other, &slab2, NULL));
    assert_true(slab2 != slab);
    memset(buf, 0x5a, sizeof(buf));
    assert_ok(farpool_slab_read(other, slab2, 0, buf, sizeof(buf)));
    assert_true(all_bytes(buf, sizeof(buf), 0));
    assert_status(farpool_slab_read(node, slab, 0, buf, sizeof(buf)), FP_ERR_NO_ENTRY);
    assert_status(farpool_slab_read(other, slab, 0, buf, sizeof(buf)), FP_ERR_NO_ENTRY);
    assert_ok(farpool_slab_free(other, slab2));

    /* And back: again a new id. */
    assert_ok(farpool_slab_alloc(node, &slab3, NULL));
    assert_true(slab3 != slab && slab3 != slab2);
    assert_status(farpool_slab_free(other, slab2), FP_ERR_NO_ENTRY);
}

static void test_shared_key(void **state)
{
    fixture_t *f = *state;
    farpool_node_t *a, *b, *c;
    uint8_t buf[10000], buf2[10000];
    uint64_t slab;

    fx_daemon(f, NULL);
    a = fx_connect_key(f, 0x11);
    b = fx_connect_key(f, 0x11);
    c = fx_connect_key(f, 0x22);

    assert_ok(farpool_slab_alloc(a, &slab, NULL));
    fp_pattern_fill(buf, sizeof(buf), slab, 1000, 1);
    assert_ok(farpool_slab_write(a, slab, 1000, buf, sizeof(buf)));
    memset(buf2, 0, sizeof(buf2));
    assert_ok(farpool_slab_read(b, slab, 1000, buf2, sizeof(buf2)));
    FP_PATTERN_ASSERT(buf2, sizeof(buf2), slab, 1000, 1);
    fp_pattern_fill(buf, sizeof(buf), slab, 1000, 2);
    assert_ok(farpool_slab_write(b, slab, 1000, buf, sizeof(buf)));
    assert_ok(farpool_slab_read(a, slab, 1000, buf2, sizeof(buf2)));
    FP_PATTERN_ASSERT(buf2, sizeof(buf2), slab, 1000, 2);

    /* Another key: refused, and nothing it tried changed the slab. */
    memset(buf2, 0x5a, sizeof(buf2));
    assert_status(farpool_slab_read(c, slab, 1000, buf2, sizeof(buf2)), FP_ERR_PERMISSION);
    assert_true(all_bytes(buf2, sizeof(buf2), 0x5a));
    memset(buf, 0x77, sizeof(buf));
    assert_status(farpool_slab_write(c, slab, 1000, buf, sizeof(buf)), FP_ERR_PERMISSION);
    assert_status(farpool_slab_free(c, slab), FP_ERR_PERMISSION);
    assert_ok(farpool_slab_read(a, slab, 1000, buf2, sizeof(buf2)));
    FP_PATTERN_ASSERT(buf2, sizeof(buf2), slab, 1000, 2);

    /* b may free what a allocated; then it is gone for everyone. */
    assert_ok(farpool_slab_free(b, slab));
    assert_status(farpool_slab_read(a, slab, 0, buf2, 1), FP_ERR_NO_ENTRY);
    assert_status(farpool_slab_read(c, slab, 0, buf2, 1), FP_ERR_NO_ENTRY);
}

static void test_slabs_survive_disconnect(void **state)
{
    fixture_t *f = *state;
    farpool_node_t *node;
    uint8_t *buf;
    uint64_t slabs[3];
    size_t len = 3 * MiB + 1;

    fx_daemon(f, NULL);
    buf = fx_alloc(f, len);
    node = fx_connect_key(f, 0x33);
    for (int i = 0; i < 3; i++) {
        assert_ok(farpool_slab_alloc(node, &slabs[i], NULL));
        fp_pattern_fill(buf, len, slabs[i], 77, 5);
        assert_ok(farpool_slab_write(node, slabs[i], 77, buf, len));
    }
    fx_close(f, node);

    /* Another client comes and goes meanwhile; then the owner is back. */
    node = fx_connect_key(f, 0x44);
    assert_status(farpool_slab_read(node, slabs[0], 77, buf, 1), FP_ERR_PERMISSION);
    fx_close(f, node);
    node = fx_connect_key(f, 0x33);
    for (int i = 2; i >= 0; i--) {
        memset(buf, 0, len);
        assert_ok(farpool_slab_read(node, slabs[i], 77, buf, len));
        FP_PATTERN_ASSERT(buf, len, slabs[i], 77, 5);
    }
    assert_int_equal(get_stats(node).slabs, 3);
}

/* ---------------------------------------------------------------------------
 * Statistics and ping.
 */
static farpool_node_stats_t wait_clients(farpool_node_t *node, uint64_t clients)
{
    farpool_node_stats_t s = get_stats(node);

    for (int i = 0; i < 300 && s.clients != clients; i++) {
        sleep_ms(10);
        s = get_stats(node);
    }
    assert_int_equal(s.clients, clients);
    return s;
}

static void test_stats(void **state)
{
    fixture_t *f = *state;
    farpool_node_t *a, *b;
    farpool_node_stats_t s, t;
    uint8_t *buf;
    uint64_t slabs[5];
    uint64_t written = 0, read = 0;

    fx_daemon(f, (const char *const[]){"--capacity", "256M", "--slab-size", "64M", NULL});
    buf = fx_alloc(f, 4 * MiB);
    memset(buf, 1, 4 * MiB);
    a = fx_connect(f, NULL, NULL);

    s = get_stats(a);
    assert_int_equal(s.capacity, 256 * MiB);
    assert_int_equal(s.used, 0);
    assert_int_equal(s.slab_size, 64 * MiB);
    assert_int_equal(s.slabs, 0);
    assert_int_equal(s.clients, 1);
    assert_int_equal(s.bytes_read, 0);
    assert_int_equal(s.bytes_written, 0);
    assert_int_equal(s.errors, 0);
    assert_true(s.requests >= 1); /* the HELLO */
    assert_true(s.uptime_ms < 60000);

    assert_ok(farpool_slab_alloc(a, &slabs[0], NULL));
    assert_ok(farpool_slab_alloc(a, &slabs[1], NULL));
    t = get_stats(a);
    assert_int_equal(t.used, 128 * MiB);
    assert_int_equal(t.slabs, 2);
    assert_true(t.requests > s.requests);

    assert_ok(farpool_slab_write(a, slabs[0], 0, buf, 1000));
    written += 1000;
    assert_ok(farpool_slab_write(a, slabs[1], 5, buf, 3 * MiB + 1)); /* several requests */
    written += 3 * MiB + 1;
    assert_ok(farpool_slab_read(a, slabs[0], 1, buf, 777));
    read += 777;
    assert_ok(farpool_slab_read(a, slabs[1], 0, buf, 2 * MiB + 3));
    read += 2 * MiB + 3;
    s = get_stats(a);
    assert_int_equal(s.bytes_written, written);
    assert_int_equal(s.bytes_read, read);
    assert_int_equal(s.errors, 0);

    /* Refused requests move nothing but the error count. */
    assert_status(farpool_slab_read(a, slabs[0] + (1ull << 40), 0, buf, 1), FP_ERR_NO_ENTRY);
    assert_status(farpool_slab_write(a, slabs[0] + (1ull << 40), 0, buf, 2), FP_ERR_NO_ENTRY);
    t = get_stats(a);
    assert_int_equal(t.bytes_written, written);
    assert_int_equal(t.bytes_read, read);
    assert_int_equal(t.errors, 2);
    /* Out of range (refused by the node or already by the client). */
    assert_status(farpool_slab_read(a, slabs[0], SLAB_SIZE, buf, 1), FP_ERR_OUT_OF_RANGE);
    assert_status(farpool_slab_write(a, slabs[0], SLAB_SIZE - 1, buf, 2), FP_ERR_OUT_OF_RANGE);
    t = get_stats(a);
    assert_int_equal(t.bytes_written, written);
    assert_int_equal(t.bytes_read, read);

    /* Clients come and go. */
    b = fx_connect(f, NULL, NULL);
    assert_int_equal(get_stats(b).clients, 2);
    fx_close(f, b);
    wait_clients(a, 1);

    /* Fill the node, overflow it, empty it. */
    assert_ok(farpool_slab_alloc(a, &slabs[2], NULL));
    assert_ok(farpool_slab_alloc(a, &slabs[3], NULL));
    assert_status(farpool_slab_alloc(a, &slabs[4], NULL), FP_ERR_NO_SPACE);
    s = get_stats(a);
    assert_int_equal(s.used, s.capacity);
    assert_int_equal(s.slabs, 4);
    for (int i = 0; i < 4; i++)
        assert_ok(farpool_slab_free(a, slabs[i]));
    t = get_stats(a);
    assert_int_equal(t.used, 0);
    assert_int_equal(t.slabs, 0);
    assert_int_equal(t.capacity, 256 * MiB);

    /* Uptime moves with the clock. */
    sleep_ms(120);
    s = get_stats(a);
    assert_true(s.uptime_ms >= t.uptime_ms + 100);
    assert_true(s.requests > t.requests);
}

static void test_ping(void **state)
{
    fixture_t *f = *state;
    farpool_node_t *node;
    uint64_t rtt = 0;

    fx_daemon(f, NULL);
    node = fx_connect(f, NULL, NULL);
    for (int i = 0; i < 100; i++) {
        rtt = 0;
        assert_ok(farpool_node_ping(node, &rtt));
        assert_true(rtt > 0);
        assert_true(rtt < 1000000000ull);
    }
    assert_ok(farpool_node_ping(node, NULL));
}

/* ---------------------------------------------------------------------------
 * Authentication.
 */
static void test_secret(void **state)
{
    /* Binary, with a NUL and a newline inside: the secret is bytes, not a string. */
    static const uint8_t secret[32] = {'s', 'e', 'c', 0,  'r',  'e', 't', '\n', 1,   2,  3,
                                       4,   5,   6,   7,  8,    9,   10,  11,   12,  13, 14,
                                       15,  16,  17,  18, 0xff, 'x', 'y', 'z',  '!', '#'};
    fixture_t *f = *state;
    char path[FP_TEST_PATH_MAX], path_nl[FP_TEST_PATH_MAX], wrong_path[FP_TEST_PATH_MAX];
    uint8_t wrong[sizeof(secret)], with_nl[sizeof(secret) + 1];
    farpool_node_params_t params;
    farpool_node_t *node = (farpool_node_t *)(uintptr_t)0x1;
    uint64_t slab;

    memcpy(wrong, secret, sizeof(secret));
    wrong[sizeof(wrong) - 1] ^= 1;
    memcpy(with_nl, secret, sizeof(secret));
    with_nl[sizeof(secret)] = '\n';
    assert_int_equal(fp_test_write_secret(NULL, secret, sizeof(secret), path), FP_OK);
    assert_int_equal(fp_test_write_secret(NULL, with_nl, sizeof(with_nl), path_nl), FP_OK);
    assert_int_equal(fp_test_write_secret(NULL, wrong, sizeof(wrong), wrong_path), FP_OK);
    fx_daemon(f, (const char *const[]){"--secret-file", path, NULL});

    /* No secret. */
    assert_status(farpool_node_connect(f->daemon.addr, NULL, &node), FP_ERR_AUTH);
    assert_ptr_equal(node, (farpool_node_t *)(uintptr_t)0x1);

    /* Wrong secrets: one bit, a prefix, a longer one, from a file. */
    memset(&params, 0, sizeof(params));
    params.field_mask = FARPOOL_NODE_PARAM_SECRET;
    params.secret = wrong;
    params.secret_len = sizeof(wrong);
    assert_status(farpool_node_connect(f->daemon.addr, &params, &node), FP_ERR_AUTH);
    params.secret = secret;
    params.secret_len = 16;
    assert_status(farpool_node_connect(f->daemon.addr, &params, &node), FP_ERR_AUTH);
    params.secret = with_nl;
    params.secret_len = sizeof(with_nl);
    assert_status(farpool_node_connect(f->daemon.addr, &params, &node), FP_ERR_AUTH);
    memset(&params, 0, sizeof(params));
    params.field_mask = FARPOOL_NODE_PARAM_SECRET_FILE;
    params.secret_file = wrong_path;
    assert_status(farpool_node_connect(f->daemon.addr, &params, &node), FP_ERR_AUTH);
    assert_ptr_equal(node, (farpool_node_t *)(uintptr_t)0x1);
    assert_true(fp_test_daemon_log_wait(&f->daemon, "wrong secret", 2000));

    /* The right secret, as bytes and from files (a trailing newline is not part of it). */
    memset(&params, 0, sizeof(params));
    params.field_mask = FARPOOL_NODE_PARAM_SECRET;
    params.secret = secret;
    params.secret_len = sizeof(secret);
    node = fx_connect(f, NULL, &params);
    assert_ok(farpool_slab_alloc(node, &slab, NULL));
    assert_ok(farpool_node_ping(node, NULL));
    memset(&params, 0, sizeof(params));
    params.field_mask = FARPOOL_NODE_PARAM_SECRET_FILE;
    params.secret_file = path;
    node = fx_connect(f, NULL, &params);
    assert_ok(farpool_node_ping(node, NULL));
    params.secret_file = path_nl;
    node = fx_connect(f, NULL, &params);
    assert_ok(farpool_node_ping(node, NULL));

    /* A secret file that does not exist: the connect fails before any exchange. */
    params.secret_file = "/nonexistent/farpool-secret";
    node = (farpool_node_t *)(uintptr_t)0x1;
    assert_true(farpool_node_connect(f->daemon.addr, &params, &node) != FP_OK);
    assert_ptr_equal(node, (farpool_node_t *)(uintptr_t)0x1);
}

/* A node without a secret does not ask for one: a client that has one still connects. */
static void test_secret_not_required(void **state)
{
    static const char secret[] = "0123456789abcdef0123";
    fixture_t *f = *state;
    farpool_node_params_t params;
    farpool_node_t *node;

    fx_daemon(f, NULL);
    memset(&params, 0, sizeof(params));
    params.field_mask = FARPOOL_NODE_PARAM_SECRET;
    params.secret = secret;
    params.secret_len = sizeof(secret) - 1;
    node = fx_connect(f, NULL, &params);
    assert_ok(farpool_node_ping(node, NULL));
}

/* ---------------------------------------------------------------------------
 * Failures: a node that dies, stalls, lies, or is not there.
 */
static farpool_node_t *connect_with_timeout(fixture_t *f, const char *addr, int timeout_ms)
{
    farpool_node_params_t params;

    memset(&params, 0, sizeof(params));
    params.field_mask = FARPOOL_NODE_PARAM_TIMEOUT;
    params.timeout_ms = timeout_ms;
    return fx_connect(f, addr, &params);
}

static void test_daemon_killed(void **state)
{
    fixture_t *f = *state;
    farpool_node_t *node;
    farpool_node_stats_t s;
    uint8_t buf[4096];
    uint64_t slab, t0;

    fx_daemon(f, NULL);
    memset(buf, 3, sizeof(buf));
    node = connect_with_timeout(f, NULL, 5000);
    assert_ok(farpool_slab_alloc(node, &slab, NULL));
    assert_ok(farpool_slab_write(node, slab, 0, buf, sizeof(buf)));
    fx_kill(f);

    /* Not a hang until the 5 s timeout, not success: NOT_CONNECTED, promptly. */
    t0 = now_ms();
    assert_status(farpool_slab_read(node, slab, 0, buf, sizeof(buf)), FP_ERR_NOT_CONNECTED);
    assert_true(now_ms() - t0 < 2000);
    /* And from then on, for every call. */
    assert_status(farpool_slab_write(node, slab, 0, buf, sizeof(buf)), FP_ERR_NOT_CONNECTED);
    assert_status(farpool_node_ping(node, NULL), FP_ERR_NOT_CONNECTED);
    assert_status(farpool_node_stats(node, &s, sizeof(s)), FP_ERR_NOT_CONNECTED);
    assert_status(farpool_slab_alloc(node, &slab, NULL), FP_ERR_NOT_CONNECTED);
    assert_status(farpool_slab_free(node, slab), FP_ERR_NOT_CONNECTED);
    assert_true(now_ms() - t0 < 2000);
}

/* Each call of the others is killed while idle: ping, stats, alloc, write. */
static void test_daemon_killed_each_call(void **state)
{
    fixture_t *f = *state;
    uint8_t buf[100] = {0};
    farpool_node_stats_t s;

    for (int call = 0; call < 4; call++) {
        farpool_node_t *node;
        uint64_t slab = 1, t0;
        fp_status_t status = FP_OK;

        fx_daemon(f, NULL);
        node = connect_with_timeout(f, NULL, 5000);
        if (call == 3)
            assert_ok(farpool_slab_alloc(node, &slab, NULL));
        fx_kill(f);
        t0 = now_ms();
        switch (call) {
        case 0:
            status = farpool_node_ping(node, NULL);
            break;
        case 1:
            status = farpool_node_stats(node, &s, sizeof(s));
            break;
        case 2:
            status = farpool_slab_alloc(node, &slab, NULL);
            break;
        case 3:
            status = farpool_slab_write(node, slab, 0, buf, sizeof(buf));
            break;
        }
        if (status != FP_ERR_NOT_CONNECTED)
            fail_msg("call %d after the node died: expected NOT_CONNECTED, got %s", call,
                     farpool_status_string(status));
        assert_true(now_ms() - t0 < 2000);
        fx_close(f, node);
        assert_int_equal(fp_test_daemon_stop(&f->daemon), 137);
        f->have_daemon = false;
        f->daemon_killed = false;
    }
}

typedef struct reader {
    farpool_node_t *node;
    uint64_t slab;
    uint8_t *buf;
    size_t len;
    _Atomic int started;
    _Atomic int reads; /* completed successfully */
    _Atomic int status;
} reader_t;

static void *reader_main(void *arg)
{
    reader_t *r = arg;
    fp_status_t status;

    r->started = 1;
    do {
        status = farpool_slab_read(r->node, r->slab, 0, r->buf, r->len);
        if (status == FP_OK)
            r->reads++;
    } while (status == FP_OK);
    r->status = status;
    return NULL;
}

/* The node dies while a thread is in the middle of a 256 MiB read. */
static void test_daemon_killed_mid_read(void **state)
{
    fixture_t *f = *state;
    farpool_node_params_t params;
    farpool_node_t *node = NULL;
    struct timespec deadline;
    pthread_t thread;
    reader_t *r;
    fp_status_t status;
    uint64_t t0, slab;
    uint8_t byte;
    int rc, reads;

    fx_daemon(f, (const char *const[]){"--capacity", "256M", "--slab-size", "256M", NULL});
    memset(&params, 0, sizeof(params));
    params.field_mask = FARPOOL_NODE_PARAM_TIMEOUT;
    params.timeout_ms = 5000;
    /* Not tracked by the fixture: if the thread hangs, the node must not be closed under it. */
    assert_ok(farpool_node_connect(f->daemon.addr, &params, &node));
    /* Leaked, with the node, if the thread never returns. */
    r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->node = node;
    r->len = 256 * MiB;
    r->buf = malloc(r->len);
    assert_non_null(r->buf);
    r->status = FP_OK;
    assert_ok(farpool_slab_alloc(node, &r->slab, NULL));

    assert_int_equal(pthread_create(&thread, NULL, reader_main, r), 0);
    while (!r->started)
        sleep_ms(1);
    sleep_ms(60);
    fx_kill(f);
    t0 = now_ms();

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += JOIN_BOUND;
    rc = pthread_timedjoin_np(thread, NULL, &deadline);
    if (rc != 0)
        fail_msg("a read in progress when the node died has not returned after %d s", JOIN_BOUND);
    /* The thread is done: the node and the buffer are the fixture's now. */
    fx_track(f, node);
    for (int i = 0; i < MAX_MEM; i++) {
        if (f->mem[i] == NULL) {
            f->mem[i] = r->buf;
            break;
        }
    }
    status = r->status;
    reads = r->reads;
    slab = r->slab;
    free(r);
    if (status != FP_ERR_NOT_CONNECTED)
        fail_msg("the read in progress when the node died returned %s, expected %s "
                 "(%d reads of 256 MiB had completed)",
                 farpool_status_string(status), farpool_status_string(FP_ERR_NOT_CONNECTED), reads);
    assert_true(now_ms() - t0 < 2000);
    assert_status(farpool_node_ping(node, NULL), FP_ERR_NOT_CONNECTED);
    assert_status(farpool_slab_read(node, slab, 0, &byte, 1), FP_ERR_NOT_CONNECTED);
}

/* A "node" that accepts TCP connections and never says a word. */
static void test_timeout_silent_node(void **state)
{
    char addr[FP_TEST_ADDR_MAX];
    farpool_node_params_t params;
    farpool_node_t *node = (farpool_node_t *)(uintptr_t)0x1;
    fp_proto_hdr_t hdr;
    uint8_t frame[FP_PROTO_HDR_SIZE + FP_PROTO_HELLO_REQ_SIZE];
    uint64_t t0, elapsed;
    fp_status_t status;
    int lfd, fd;

    (void)state;
    lfd = listen_loopback(addr, 4); /* the kernel accepts; nobody answers */
    assert_true(lfd >= 0);
    memset(&params, 0, sizeof(params));
    params.field_mask = FARPOOL_NODE_PARAM_TIMEOUT;
    params.timeout_ms = 300;
    t0 = now_ms();
    status = farpool_node_connect(addr, &params, &node);
    elapsed = now_ms() - t0;
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    close(lfd);
    if (status != FP_ERR_TIMED_OUT) {
        if (fd >= 0)
            close(fd);
        fail_msg("connect to a silent node: expected %s, got %s after %llu ms",
                 farpool_status_string(FP_ERR_TIMED_OUT), farpool_status_string(status),
                 (unsigned long long)elapsed);
    }
    assert_ptr_equal(node, (farpool_node_t *)(uintptr_t)0x1);
    assert_true(elapsed >= 250);
    assert_true(elapsed < 1000);

    /* What it waited for was the answer to its HELLO. */
    assert_true(fd >= 0);
    assert_int_equal(recv(fd, frame, sizeof(frame), MSG_WAITALL), (ssize_t)sizeof(frame));
    close(fd);
    assert_int_equal(fp_proto_hdr_decode(frame, false, &hdr), FP_OK);
    assert_int_equal(hdr.op, FP_OP_HELLO);
    assert_int_equal(hdr.length, FP_PROTO_HELLO_REQ_SIZE);
}

/* A node that answers HELLO, then nothing: a call times out, then the handle is dead. */
static void test_timeout_stalled_node(void **state)
{
    fixture_t *f = *state;
    fake_node_t *fake;
    farpool_node_t *node;
    uint8_t buf[100];
    uint64_t t0, elapsed;
    fp_status_t status;

    fake = fx_fake(f, FAKE_ANSWER_HELLO_THEN_STALL);
    node = connect_with_timeout(f, fake->addr, 300);
    t0 = now_ms();
    status = farpool_slab_read(node, 1, 0, buf, sizeof(buf));
    elapsed = now_ms() - t0;
    if (status != FP_ERR_TIMED_OUT)
        fail_msg("read from a stalled node: expected %s, got %s after %llu ms",
                 farpool_status_string(FP_ERR_TIMED_OUT), farpool_status_string(status),
                 (unsigned long long)elapsed);
    assert_true(elapsed >= 250 && elapsed < 1000);
    assert_status(farpool_node_ping(node, NULL), FP_ERR_NOT_CONNECTED);
    assert_status(farpool_slab_read(node, 1, 0, buf, sizeof(buf)), FP_ERR_NOT_CONNECTED);
    fx_close(f, node);
    fake_node_finish(fake);
    assert_int_equal(fake->data_requests, 1);
    assert_int_equal(fake->failed, 0);
}

/*
 * A node that answers a READ with fewer bytes than asked: the read must not
 * succeed, since part of the caller's buffer would hold no data from the node.
 */
static void test_short_read_reply(void **state)
{
    fixture_t *f = *state;
    fake_node_t *fake;
    farpool_node_t *node;
    uint8_t buf[1000];
    fp_status_t status;

    fake = fx_fake(f, FAKE_SHORT_READ_REPLY);
    node = connect_with_timeout(f, fake->addr, 2000);
    memset(buf, 0x5a, sizeof(buf));
    status = farpool_slab_read(node, 1, 0, buf, sizeof(buf));
    if (status == FP_OK)
        fail_msg("a READ of %zu bytes answered with %zu succeeded; bytes %zu.. of the buffer "
                 "hold no data from the node (still 0x%02x)",
                 sizeof(buf), sizeof(buf) / 2, sizeof(buf) / 2, buf[sizeof(buf) - 1]);
    assert_true(status == FP_ERR_PROTOCOL || status == FP_ERR_NOT_CONNECTED);
}

static void test_connect_refused(void **state)
{
    char addr[FP_TEST_ADDR_MAX];
    farpool_node_params_t params;
    farpool_node_t *node = (farpool_node_t *)(uintptr_t)0x1;
    uint64_t t0;
    int fd;

    (void)state;
    /* Bound but not listening: the port is ours and nobody accepts on it. */
    fd = listen_loopback(addr, 0);
    assert_true(fd >= 0);
    memset(&params, 0, sizeof(params));
    params.field_mask = FARPOOL_NODE_PARAM_TIMEOUT;
    params.timeout_ms = 5000;
    t0 = now_ms();
    assert_status(farpool_node_connect(addr, &params, &node), FP_ERR_NOT_CONNECTED);
    assert_status(farpool_node_connect(addr, NULL, &node), FP_ERR_NOT_CONNECTED);
    assert_true(now_ms() - t0 < 1000);
    assert_ptr_equal(node, (farpool_node_t *)(uintptr_t)0x1);
    close(fd);
}

static void test_bad_addresses(void **state)
{
    /* Only strings that fail without asking DNS. */
    static const char *const bad[] = {
        "",
        "nonsense",
        "127.0.0.1",
        "127.0.0.1:",
        ":7070",
        "127.0.0.1:99999",
        "127.0.0.1:123456",
        "127.0.0.1:70a",
        "127.0.0.1:-1",
        "127.0.0.1: 7070",
        "::1:7070",
        "[::1:7070",
        "[::1]7070",
        "[::1]:",
        "[]:7070",
    };
    farpool_node_t *node = (farpool_node_t *)(uintptr_t)0x1;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fp_status_t status = farpool_node_connect(bad[i], NULL, &node);
        if (status != FP_ERR_ADDRESS)
            fail_msg("address '%s': expected %s, got %s", bad[i],
                     farpool_status_string(FP_ERR_ADDRESS), farpool_status_string(status));
        assert_ptr_equal(node, (farpool_node_t *)(uintptr_t)0x1);
    }
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        TEST(test_connect_close),
        TEST(test_connect_invalid_params),
        TEST(test_rw_unaligned),
        TEST(test_rw_full_slab),
        TEST(test_rw_pipelined),
        TEST(test_read_past_end),
        TEST(test_read_past_end_multi_chunk),
        TEST(test_write_past_end),
        TEST(test_offset_wraparound),
        TEST(test_free_and_reuse),
        TEST(test_shared_key),
        TEST(test_slabs_survive_disconnect),
        TEST(test_stats),
        TEST(test_ping),
        TEST(test_secret),
        TEST(test_secret_not_required),
        TEST(test_daemon_killed),
        TEST(test_daemon_killed_each_call),
        TEST(test_daemon_killed_mid_read),
        TEST(test_timeout_silent_node),
        TEST(test_timeout_stalled_node),
        TEST(test_short_read_reply),
        TEST(test_connect_refused),
        TEST(test_bad_addresses),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
