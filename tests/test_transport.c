/* SPDX-License-Identifier: MIT */
/*
 * Tests of the transport (src/transport/transport.h, tcp.c) driven directly:
 * a HELLO xfer, then many xfers in flight at once against a real farpoold,
 * and against fake nodes made here that break the protocol.
 *
 * Covered: 512 READs of random sizes submitted before any progress, with
 * FP_ERR_BUSY past max_inflight and slots freed by progress, each reply in its
 * own buffer whatever the completion order; READV and WRITEV of 1024 ranges
 * scattered over two slabs through 64 uneven iovecs; replies that do not fit,
 * name no request, come twice, carry the wrong opcode or an unknown status, or
 * stop half way, after which every xfer completes with FP_ERR_NOT_CONNECTED
 * exactly once; a node killed with xfers in flight; fp_transport_close() with
 * xfers queued, sent and unanswered, each completing with FP_ERR_CANCELED
 * exactly once; 32 READs of 16 MiB at once, eight times the node's out-queue
 * high water, all answered; with an interrupt descriptor readable, a 16 MiB
 * reply received a slice per call and small replies never left staged behind
 * a quiet socket.
 *
 * The random sizes and offsets come from a fixed seed, printed at the start;
 * FP_TEST_SEED=N replays another.
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
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/daemon.h"
#include "common/parse.h"
#include "common/pattern.h"
#include "proto/proto.h"
#include "transport/transport.h"

#define MiB       (1ull << 20)
#define SLAB_SIZE (64 * MiB)
#define GUARD     64   /* bytes checked on each side of a read buffer */
#define WAIT_MS   5000 /* longest wait for any one completion */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);

    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static uint64_t rng_range(uint64_t lo, uint64_t hi)
{
    return lo + rng_next() % (hi - lo + 1);
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define assert_status(expr, expected)                                                              \
    do {                                                                                           \
        fp_status_t st_ = (expr);                                                                  \
        if (st_ != (expected))                                                                     \
            fail_msg("%s: expected %s, got %s (%d)", #expr, fp_status_string(expected),            \
                     fp_status_string(st_), (int)st_);                                             \
    } while (0)

#define assert_ok(expr) assert_status((expr), FP_OK)

/* ---------------------------------------------------------------------------
 * One xfer with its memory and a record of how it completed.
 */
typedef struct call {
    fp_xfer_t xfer;
    fp_proto_range_t range;
    struct iovec req_iov, rsp_iov;
    int ncalls;          /* completions seen: must end at exactly 1 */
    fp_status_t status;  /* of the last completion */
    unsigned order;      /* rank among completions */
    unsigned *completed; /* shared completion counter, may be NULL */
} call_t;

static void call_done(fp_xfer_t *xfer, fp_status_t status)
{
    call_t *c = xfer->arg;

    c->ncalls++;
    c->status = status;
    if (c->completed != NULL)
        c->order = (*c->completed)++;
}

static void call_init(call_t *c, uint8_t op, const void *req, size_t req_len, void *rsp,
                      size_t rsp_cap)
{
    memset(c, 0, sizeof(*c));
    c->xfer.op = op;
    c->xfer.done = call_done;
    c->xfer.arg = c;
    c->req_iov.iov_base = (void *)req;
    c->req_iov.iov_len = req_len;
    c->xfer.req_iov = &c->req_iov;
    c->xfer.req_iovcnt = req_len > 0 ? 1 : 0;
    c->rsp_iov.iov_base = rsp;
    c->rsp_iov.iov_len = rsp_cap;
    c->xfer.rsp_iov = &c->rsp_iov;
    c->xfer.rsp_iovcnt = rsp_cap > 0 ? 1 : 0;
}

static void call_data(call_t *c, uint8_t op, uint64_t slab, uint64_t offset, void *buf,
                      uint32_t len)
{
    if (op == FP_OP_WRITE)
        call_init(c, op, buf, len, NULL, 0);
    else
        call_init(c, op, NULL, 0, buf, len);
    c->range.slab = slab;
    c->range.offset = offset;
    c->range.length = len;
    c->xfer.ranges = &c->range;
    c->xfer.nranges = 1;
}

/* Progress until *@ncalls reaches @target; fails the test after WAIT_MS without one. */
static void wait_calls(fp_transport_t *tp, const unsigned *count, unsigned target)
{
    while (*count < target) {
        uint64_t t0 = now_ms();
        unsigned before = *count, n = 0;
        fp_status_t status = fp_transport_progress(tp, WAIT_MS, &n);

        if (status != FP_OK && status != FP_ERR_TIMED_OUT)
            fail_msg("progress: %s with %u of %u completions", fp_status_string(status), *count,
                     target);
        assert_int_equal(*count - before, n);
        if (*count == before && now_ms() - t0 >= WAIT_MS)
            fail_msg("no completion within %d ms (%u of %u)", WAIT_MS, *count, target);
    }
}

/* Submit @c and progress until it completes; its status. */
static fp_status_t call_run(fp_transport_t *tp, call_t *c)
{
    unsigned completed = 0;

    c->completed = &completed;
    assert_ok(fp_transport_submit(tp, &c->xfer));
    wait_calls(tp, &completed, 1);
    assert_int_equal(c->ncalls, 1);
    return c->status;
}

/* ---------------------------------------------------------------------------
 * Fixture: a daemon (or a fake node) and a connected transport after HELLO.
 */
typedef enum fake_mode {
    FAKE_OVERSIZED,       /* answers #1 right, then #3 with more bytes than it asked */
    FAKE_UNKNOWN_SLOT,    /* a reply whose id names no slot */
    FAKE_STALE_ID,        /* a reply whose id has the slot of #0 and another generation */
    FAKE_DUPLICATE,       /* answers #0 right, then #0 again */
    FAKE_WRONG_OP,        /* answers #0 with the opcode of a WRITE */
    FAKE_ERROR_WITH_DATA, /* an error status and a payload */
    FAKE_TRUNCATED,       /* half of #2's payload, then the connection closes */
    FAKE_BAD_STATUS,      /* #0 gets a status that is no fp_status_t; the rest is fine */
    FAKE_SILENT,          /* nothing after HELLO */
    FAKE_REVERSED,        /* answers all, last first, each with its own bytes */
} fake_mode_t;

#define FAKE_NREQ 8   /* READs the client sends the fake */
#define FAKE_LEN  100 /* bytes each asks for */

typedef struct fake_node {
    int lfd;
    char addr[FP_TEST_ADDR_MAX];
    fake_mode_t mode;
    pthread_t thread;
    bool running;
    uint64_t ids[FAKE_NREQ];
    _Atomic int requests;      /* READ frames received */
    _Atomic int client_closed; /* the client closed its end */
    _Atomic int failed;        /* something unexpected happened */
} fake_node_t;

typedef struct fixture {
    fp_test_daemon_t daemon;
    bool have_daemon;
    bool daemon_killed;
    fp_transport_t *tp;
    fake_node_t *fake;
    void *mem[8];
    uint64_t slab_size;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));

    if (f == NULL)
        return -1;
    *state = f;
    return 0;
}

static void fake_finish(fake_node_t *fake);

static int teardown(void **state)
{
    fixture_t *f = *state;
    int code = 0, expected = f->daemon_killed ? 137 : 0;

    fp_transport_close(f->tp);
    if (f->fake != NULL) {
        fake_finish(f->fake);
        free(f->fake);
    }
    for (size_t i = 0; i < sizeof(f->mem) / sizeof(f->mem[0]); i++)
        free(f->mem[i]);
    if (f->have_daemon)
        code = fp_test_daemon_stop(&f->daemon);
    free(f);
    if (code != expected) {
        fprintf(stderr, "farpoold exited with code %d, expected %d\n", code, expected);
        return -1;
    }
    return 0;
}

static void *fx_alloc(fixture_t *f, size_t len)
{
    for (size_t i = 0; i < sizeof(f->mem) / sizeof(f->mem[0]); i++) {
        if (f->mem[i] == NULL) {
            f->mem[i] = malloc(len);
            assert_non_null(f->mem[i]);
            return f->mem[i];
        }
    }
    fail_msg("too many buffers in one test");
    return NULL;
}

/* Connect a transport to @addr with @max_inflight slots and say HELLO. */
static void fx_connect(fixture_t *f, const char *addr, uint32_t max_inflight)
{
    fp_transport_params_t params;
    fp_proto_hello_req_t req = {FP_PROTO_VERSION, FP_PROTO_VERSION, {0}};
    fp_proto_hello_rep_t rep;
    uint8_t req_buf[FP_PROTO_HELLO_REQ_SIZE], rep_buf[FP_PROTO_HELLO_REP_SIZE];
    fp_addr_t a;
    call_t c;

    assert_ok(fp_addr_parse(addr, &a));
    fp_transport_params_default(&params);
    params.connect_timeout_ms = 5000;
    if (max_inflight != 0)
        params.max_inflight = max_inflight;
    assert_ok(fp_transport_connect(&fp_transport_tcp_ops, &a, &params, &f->tp));
    assert_int_equal(fp_transport_inflight(f->tp), 0);
    assert_true(fp_transport_fd(f->tp) >= 0);

    assert_ok(fp_proto_random(req.client_key, sizeof(req.client_key)));
    fp_proto_hello_req_encode(&req, req_buf);
    call_init(&c, FP_OP_HELLO, req_buf, sizeof(req_buf), rep_buf, sizeof(rep_buf));
    assert_ok(call_run(f->tp, &c));
    assert_int_equal(c.xfer.rsp_len, FP_PROTO_HELLO_REP_SIZE);
    assert_ok(fp_proto_hello_rep_decode(rep_buf, c.xfer.rsp_len, &rep));
    f->slab_size = rep.slab_size;
}

static void fx_daemon(fixture_t *f, const char *const args[], uint32_t max_inflight)
{
    assert_int_equal(fp_test_daemon_start(args, &f->daemon), FP_OK);
    f->have_daemon = true;
    fx_connect(f, f->daemon.addr, max_inflight);
}

static uint64_t slab_alloc(fixture_t *f)
{
    uint8_t buf[FP_PROTO_ALLOC_REP_SIZE];
    call_t c;

    call_init(&c, FP_OP_SLAB_ALLOC, NULL, 0, buf, sizeof(buf));
    assert_ok(call_run(f->tp, &c));
    assert_int_equal(c.xfer.rsp_len, sizeof(buf));
    assert_int_equal(fp_proto_get_u64(buf + 8), f->slab_size);
    return fp_proto_get_u64(buf);
}

/* Write @len bytes of @buf at @offset of @slab, FP_PROTO_MAX_DATA per WRITE, all in flight. */
static void write_all(fixture_t *f, uint64_t slab, uint64_t offset, uint8_t *buf, size_t len)
{
    size_t n = (len + FP_PROTO_MAX_DATA - 1) / FP_PROTO_MAX_DATA;
    call_t *calls = calloc(n, sizeof(*calls));
    unsigned completed = 0;

    assert_non_null(calls);
    for (size_t i = 0; i < n; i++) {
        size_t pos = i * FP_PROTO_MAX_DATA;
        size_t chunk = len - pos < FP_PROTO_MAX_DATA ? len - pos : FP_PROTO_MAX_DATA;
        call_data(&calls[i], FP_OP_WRITE, slab, offset + pos, buf + pos, (uint32_t)chunk);
        calls[i].completed = &completed;
        assert_ok(fp_transport_submit(f->tp, &calls[i].xfer));
    }
    wait_calls(f->tp, &completed, (unsigned)n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(calls[i].ncalls, 1);
        assert_ok(calls[i].status);
        assert_int_equal(calls[i].xfer.rsp_len, 0);
    }
    free(calls);
}

static void read_all(fixture_t *f, uint64_t slab, uint64_t offset, uint8_t *buf, size_t len)
{
    size_t n = (len + FP_PROTO_MAX_DATA - 1) / FP_PROTO_MAX_DATA;
    call_t *calls = calloc(n, sizeof(*calls));
    unsigned completed = 0;

    assert_non_null(calls);
    for (size_t i = 0; i < n; i++) {
        size_t pos = i * FP_PROTO_MAX_DATA;
        size_t chunk = len - pos < FP_PROTO_MAX_DATA ? len - pos : FP_PROTO_MAX_DATA;
        call_data(&calls[i], FP_OP_READ, slab, offset + pos, buf + pos, (uint32_t)chunk);
        calls[i].completed = &completed;
        assert_ok(fp_transport_submit(f->tp, &calls[i].xfer));
    }
    wait_calls(f->tp, &completed, (unsigned)n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(calls[i].ncalls, 1);
        assert_ok(calls[i].status);
        assert_int_equal(calls[i].xfer.rsp_len, calls[i].range.length);
    }
    free(calls);
}

/* ---------------------------------------------------------------------------
 * Many READs in flight.
 */
#define NREADS       512
#define MAX_INFLIGHT 64

typedef struct rd {
    call_t call;
    uint8_t *mem; /* GUARD + len + GUARD */
    size_t len;
} rd_t;

static size_t random_read_size(void)
{
    switch (rng_next() % 4) {
    case 0:
        return (size_t)rng_range(1, 64); /* tiny: many per recv() */
    case 1:
        return (size_t)rng_range(1, 64 << 10); /* below the direct-read threshold */
    default:
        return (size_t)rng_range(1, 2 * MiB);
    }
}

static bool guards_intact(const rd_t *r)
{
    for (size_t i = 0; i < GUARD; i++) {
        if (r->mem[i] != 0xee || r->mem[GUARD + r->len + i] != 0xee)
            return false;
    }
    return true;
}

static void test_many_reads_in_flight(void **state)
{
    fixture_t *f = *state;
    uint8_t *image;
    uint64_t slab;
    rd_t *rds;
    unsigned completed = 0, submitted = 0, busy = 0, resumed = 0;
    bool in_order = true;

    fx_daemon(f, NULL, MAX_INFLIGHT);
    slab = slab_alloc(f);
    image = fx_alloc(f, SLAB_SIZE);
    fp_pattern_fill(image, SLAB_SIZE, slab, 0, 1);
    write_all(f, slab, 0, image, SLAB_SIZE);

    rds = fx_alloc(f, NREADS * sizeof(*rds));
    for (unsigned i = 0; i < NREADS; i++) {
        rd_t *r = &rds[i];
        uint64_t offset;

        r->len = random_read_size();
        offset = rng_range(0, SLAB_SIZE - r->len);
        r->mem = malloc(r->len + 2 * GUARD);
        assert_non_null(r->mem);
        memset(r->mem, 0xee, GUARD);
        memset(r->mem + GUARD, 0xa5, r->len);
        memset(r->mem + GUARD + r->len, 0xee, GUARD);
        call_data(&r->call, FP_OP_READ, slab, offset, r->mem + GUARD, (uint32_t)r->len);
        r->call.completed = &completed;
    }

    /* Everything at once, before any progress: the table fills, then BUSY. */
    for (; submitted < NREADS; submitted++) {
        fp_status_t status = fp_transport_submit(f->tp, &rds[submitted].call.xfer);
        if (status == FP_ERR_BUSY)
            break;
        assert_ok(status);
    }
    assert_int_equal(submitted, MAX_INFLIGHT);
    assert_int_equal(fp_transport_inflight(f->tp), MAX_INFLIGHT);
    assert_status(fp_transport_submit(f->tp, &rds[submitted].call.xfer), FP_ERR_BUSY);
    assert_int_equal(completed, 0); /* no callback without progress */
    assert_int_equal(rds[submitted].call.ncalls, 0);

    /* Progress frees slots; refill until BUSY each time. */
    while (completed < NREADS) {
        unsigned n = 0, before = completed;
        fp_status_t status = fp_transport_progress(f->tp, WAIT_MS, &n);

        if (status != FP_OK)
            fail_msg("progress: %s after %u of %d completions", fp_status_string(status), completed,
                     NREADS);
        assert_true(n > 0);
        assert_int_equal(completed - before, n);
        assert_int_equal(fp_transport_inflight(f->tp), submitted - completed);
        if (submitted < NREADS)
            resumed++;
        for (; submitted < NREADS; submitted++) {
            fp_status_t st = fp_transport_submit(f->tp, &rds[submitted].call.xfer);
            if (st == FP_ERR_BUSY) {
                busy++;
                break;
            }
            assert_ok(st);
        }
        assert_true(fp_transport_inflight(f->tp) <= MAX_INFLIGHT);
        /* A slot freed by progress is usable at once. */
        assert_true(submitted == NREADS || fp_transport_inflight(f->tp) == MAX_INFLIGHT);
    }
    assert_int_equal(fp_transport_inflight(f->tp), 0);
    assert_true(resumed > 0);

    /* Each reply in its own buffer, exactly once, whatever the order. */
    for (unsigned i = 0; i < NREADS; i++) {
        rd_t *r = &rds[i];

        if (r->call.ncalls != 1)
            fail_msg("READ %u completed %d times", i, r->call.ncalls);
        if (r->call.status != FP_OK)
            fail_msg("READ %u (%zu bytes at %llu): %s", i, r->len,
                     (unsigned long long)r->call.range.offset, fp_status_string(r->call.status));
        assert_int_equal(r->call.xfer.rsp_len, r->len);
        if (!guards_intact(r))
            fail_msg("READ %u (%zu bytes) wrote outside its buffer", i, r->len);
        FP_PATTERN_ASSERT(r->mem + GUARD, r->len, slab, r->call.range.offset, 1);
        in_order = in_order && r->call.order == i;
    }
    print_message("512 READs: %u BUSY refusals, %s completion order\n", busy + 1,
                  in_order ? "submission" : "out-of-submission");
    for (unsigned i = 0; i < NREADS; i++)
        free(rds[i].mem);
}

/* ---------------------------------------------------------------------------
 * Vectored I/O: 1024 ranges over two slabs.
 */
#define NRANGES 1024

/* Split @buf (@len bytes) into @n iovecs of random, uneven sizes (some empty). */
static void split_iov(uint8_t *buf, size_t len, struct iovec *iov, int n)
{
    size_t cuts[FP_XFER_MAX_IOV + 1];

    cuts[0] = 0;
    cuts[n] = len;
    for (int i = 1; i < n; i++)
        cuts[i] = (size_t)rng_range(0, len);
    /* Sort the inner cuts (insertion sort; n is 64). */
    for (int i = 2; i < n; i++) {
        for (int j = i; j > 1 && cuts[j - 1] > cuts[j]; j--) {
            size_t t = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = t;
        }
    }
    for (int i = 0; i < n; i++) {
        iov[i].iov_base = buf + cuts[i];
        iov[i].iov_len = cuts[i + 1] - cuts[i];
    }
}

static void test_readv_writev_scattered(void **state)
{
    fixture_t *f = *state;
    fp_proto_range_t *ranges, *reversed;
    struct iovec iov[FP_XFER_MAX_IOV];
    uint8_t *data, *expected[2], *actual;
    uint64_t slabs[2];
    size_t total = 0, pos;
    call_t c;

    fx_daemon(f, NULL, 0);
    slabs[0] = slab_alloc(f);
    slabs[1] = slab_alloc(f);
    ranges = fx_alloc(f, NRANGES * sizeof(*ranges));
    reversed = fx_alloc(f, NRANGES * sizeof(*reversed));

    /* 512 disjoint ranges per slab, one in each 128 KiB cell, in a shuffled order. */
    for (unsigned i = 0; i < NRANGES; i++) {
        uint64_t cell = (uint64_t)(i / 2) * (SLAB_SIZE / (NRANGES / 2));
        uint32_t len = (uint32_t)rng_range(1, 16384);

        ranges[i].slab = slabs[i % 2];
        ranges[i].offset = cell + rng_range(0, SLAB_SIZE / (NRANGES / 2) - len);
        ranges[i].length = len;
        total += len;
    }
    assert_true(total <= FP_PROTO_MAX_DATA);
    for (unsigned i = NRANGES - 1; i > 0; i--) {
        unsigned j = (unsigned)rng_range(0, i);
        fp_proto_range_t t = ranges[i];
        ranges[i] = ranges[j];
        ranges[j] = t;
    }

    /* WRITEV: the data of every range, one after the other, from 64 uneven iovecs. */
    data = fx_alloc(f, total);
    for (unsigned i = 0, p = 0; i < NRANGES; p += ranges[i].length, i++)
        fp_pattern_fill(data + p, ranges[i].length, ranges[i].slab, ranges[i].offset, 3);
    split_iov(data, total, iov, FP_XFER_MAX_IOV);
    call_init(&c, FP_OP_WRITEV, NULL, 0, NULL, 0);
    c.xfer.req_iov = iov;
    c.xfer.req_iovcnt = FP_XFER_MAX_IOV;
    c.xfer.ranges = ranges;
    c.xfer.nranges = NRANGES;
    assert_ok(call_run(f->tp, &c));
    assert_int_equal(c.xfer.rsp_len, 0);

    /* Whole slabs read back: the ranges hold their data, everything else is zero. */
    for (int s = 0; s < 2; s++) {
        expected[s] = fx_alloc(f, SLAB_SIZE);
        memset(expected[s], 0, SLAB_SIZE);
    }
    for (unsigned i = 0; i < NRANGES; i++) {
        int s = ranges[i].slab == slabs[1];
        fp_pattern_fill(expected[s] + ranges[i].offset, ranges[i].length, ranges[i].slab,
                        ranges[i].offset, 3);
    }
    actual = fx_alloc(f, SLAB_SIZE);
    for (int s = 0; s < 2; s++) {
        read_all(f, slabs[s], 0, actual, SLAB_SIZE);
        if (memcmp(actual, expected[s], SLAB_SIZE) != 0) {
            size_t at = 0;
            while (actual[at] == expected[s][at])
                at++;
            fail_msg("slab %d after WRITEV: first wrong byte at offset %zu", s, at);
        }
    }

    /* READV in the reverse order into 64 other uneven iovecs. */
    for (unsigned i = 0; i < NRANGES; i++)
        reversed[i] = ranges[NRANGES - 1 - i];
    memset(data, 0xa5, total);
    split_iov(data, total, iov, FP_XFER_MAX_IOV);
    call_init(&c, FP_OP_READV, NULL, 0, NULL, 0);
    c.xfer.rsp_iov = iov;
    c.xfer.rsp_iovcnt = FP_XFER_MAX_IOV;
    c.xfer.ranges = reversed;
    c.xfer.nranges = NRANGES;
    assert_ok(call_run(f->tp, &c));
    assert_int_equal(c.xfer.rsp_len, total);
    pos = 0;
    for (unsigned i = 0; i < NRANGES; i++) {
        FP_PATTERN_ASSERT(data + pos, reversed[i].length, reversed[i].slab, reversed[i].offset, 3);
        pos += reversed[i].length;
    }

    /* One bad range (past the end) spoils the whole READV, and nothing lands. */
    reversed[NRANGES / 2].offset = SLAB_SIZE - reversed[NRANGES / 2].length + 1;
    memset(data, 0xa5, total);
    call_init(&c, FP_OP_READV, NULL, 0, NULL, 0);
    c.xfer.rsp_iov = iov;
    c.xfer.rsp_iovcnt = FP_XFER_MAX_IOV;
    c.xfer.ranges = reversed;
    c.xfer.nranges = NRANGES;
    assert_status(call_run(f->tp, &c), FP_ERR_OUT_OF_RANGE);
    assert_int_equal(c.xfer.rsp_len, 0);
    for (size_t i = 0; i < total; i++) {
        if (data[i] != 0xa5)
            fail_msg("a failed READV wrote byte %zu of its buffer", i);
    }

    /* The connection still works. */
    call_init(&c, FP_OP_PING, "12345678", 8, data, 8);
    assert_ok(call_run(f->tp, &c));
    assert_memory_equal(data, "12345678", 8);
}

/* Malformed xfers are refused at submit, without a callback. */
static void test_submit_invalid(void **state)
{
    fixture_t *f = *state;
    fp_proto_range_t ranges[2] = {{1, 0, 10}, {1, 10, 10}};
    struct iovec iov[FP_XFER_MAX_IOV + 1];
    uint8_t buf[100];
    call_t c;

    fx_daemon(f, NULL, 0);
    memset(iov, 0, sizeof(iov));

    call_data(&c, FP_OP_READ, 1, 0, buf, 10);
    c.xfer.done = NULL;
    assert_status(fp_transport_submit(f->tp, &c.xfer), FP_ERR_INVALID_PARAM);
    call_data(&c, FP_OP_READ, 1, 0, buf, 10);
    c.xfer.nranges = 0;
    assert_status(fp_transport_submit(f->tp, &c.xfer), FP_ERR_INVALID_PARAM);
    call_data(&c, FP_OP_READ, 1, 0, buf, 10);
    c.xfer.ranges = ranges;
    c.xfer.nranges = 2; /* READ takes one range */
    assert_status(fp_transport_submit(f->tp, &c.xfer), FP_ERR_INVALID_PARAM);
    call_data(&c, FP_OP_READ, 1, 0, buf, 10);
    c.xfer.rsp_iov = iov;
    c.xfer.rsp_iovcnt = FP_XFER_MAX_IOV + 1;
    assert_status(fp_transport_submit(f->tp, &c.xfer), FP_ERR_INVALID_PARAM);
    call_init(&c, FP_OP_READV, NULL, 0, buf, 10);
    c.xfer.ranges = ranges;
    c.xfer.nranges = FP_PROTO_MAX_RANGES + 1;
    assert_status(fp_transport_submit(f->tp, &c.xfer), FP_ERR_INVALID_PARAM);
    call_init(&c, FP_OP_PING, buf, FP_PROTO_MAX_CONTROL + 1, buf, 8);
    assert_status(fp_transport_submit(f->tp, &c.xfer), FP_ERR_TOO_LARGE);
    assert_int_equal(c.ncalls, 0);
    assert_int_equal(fp_transport_inflight(f->tp), 0);
}

/* ---------------------------------------------------------------------------
 * Fake nodes that break the protocol.
 */
static int listen_loopback(char *addr_p)
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
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(fd, 4) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        close(fd);
        return -1;
    }
    snprintf(addr_p, FP_TEST_ADDR_MAX, "127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
    return fd;
}

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

/* A reply header claiming @claimed payload bytes, followed by @len bytes of 0x42. */
static int fake_reply(int fd, uint8_t op, uint64_t id, int32_t status, uint32_t claimed,
                      uint32_t len)
{
    fp_proto_hdr_t hdr = {FP_PROTO_VERSION, op, FP_PROTO_FLAG_REPLY, id, status, claimed};
    uint8_t buf[FP_PROTO_HDR_SIZE + 1024];

    assert_true(len <= 1024);
    fp_proto_hdr_encode(&hdr, buf);
    memset(buf + FP_PROTO_HDR_SIZE, 0x42, len);
    return fp_test_send_all(fd, buf, FP_PROTO_HDR_SIZE + len);
}

static int fake_answer(int fd, const fake_node_t *f, int i)
{
    return fake_reply(fd, FP_OP_READ, f->ids[i], FP_OK, FAKE_LEN, FAKE_LEN);
}

/* The reply to request @i, its payload bytes all 0x10 + @i; all in one send. */
static int fake_answer_own(int fd, const fake_node_t *f, int i)
{
    fp_proto_hdr_t hdr = {FP_PROTO_VERSION, FP_OP_READ, FP_PROTO_FLAG_REPLY,
                          f->ids[i],        0,          FAKE_LEN};
    uint8_t buf[FP_PROTO_HDR_SIZE + FAKE_LEN];

    fp_proto_hdr_encode(&hdr, buf);
    memset(buf + FP_PROTO_HDR_SIZE, 0x10 + i, FAKE_LEN);
    return fp_test_send_all(fd, buf, sizeof(buf));
}

/* Send the replies of @f->mode; 0 if they were sent. */
static int fake_misbehave(int fd, fake_node_t *f)
{
    int rc = 0;

    switch (f->mode) {
    case FAKE_OVERSIZED:
        rc |= fake_answer(fd, f, 1);
        rc |= fake_reply(fd, FP_OP_READ, f->ids[3], FP_OK, 2 * FAKE_LEN, 2 * FAKE_LEN);
        break;
    case FAKE_UNKNOWN_SLOT:
        rc |= fake_reply(fd, FP_OP_READ, (f->ids[0] & ~0xffffffffull) | 0xfffffu, FP_OK, FAKE_LEN,
                         FAKE_LEN);
        break;
    case FAKE_STALE_ID:
        rc |= fake_reply(fd, FP_OP_READ, f->ids[0] + (1ull << 32), FP_OK, FAKE_LEN, FAKE_LEN);
        break;
    case FAKE_DUPLICATE:
        rc |= fake_answer(fd, f, 0);
        rc |= fake_answer(fd, f, 0);
        break;
    case FAKE_WRONG_OP:
        rc |= fake_reply(fd, FP_OP_WRITE, f->ids[0], FP_OK, 0, 0);
        break;
    case FAKE_ERROR_WITH_DATA:
        rc |= fake_reply(fd, FP_OP_READ, f->ids[0], FP_ERR_OUT_OF_RANGE, 10, 10);
        break;
    case FAKE_TRUNCATED:
        rc |= fake_reply(fd, FP_OP_READ, f->ids[2], FP_OK, FAKE_LEN, FAKE_LEN / 2);
        shutdown(fd, SHUT_WR);
        break;
    case FAKE_BAD_STATUS:
        rc |= fake_reply(fd, FP_OP_READ, f->ids[0], -1000, 0, 0);
        for (int i = 1; i < FAKE_NREQ; i++)
            rc |= fake_answer(fd, f, i);
        break;
    case FAKE_SILENT:
        break;
    case FAKE_REVERSED:
        for (int i = FAKE_NREQ - 1; i >= 0; i--)
            rc |= fake_answer_own(fd, f, i);
        break;
    }
    return rc;
}

static void *fake_main(void *arg)
{
    static uint8_t payload[FP_PROTO_MAX_CONTROL];
    fake_node_t *f = arg;
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
    if (fake_read_frame(fd, &hdr, payload, sizeof(payload)) != 0 || hdr.op != FP_OP_HELLO)
        goto fail;
    memset(&rep, 0, sizeof(rep));
    rep.version = FP_PROTO_VERSION;
    rep.node_id = 0x1234;
    rep.slab_size = SLAB_SIZE;
    rep.max_data = FP_PROTO_MAX_DATA;
    rep.max_ranges = FP_PROTO_MAX_RANGES;
    fp_proto_hello_rep_encode(&rep, hello);
    {
        fp_proto_hdr_t r = {FP_PROTO_VERSION, FP_OP_HELLO, FP_PROTO_FLAG_REPLY,
                            hdr.id,           0,           sizeof(hello)};
        uint8_t h[FP_PROTO_HDR_SIZE];
        fp_proto_hdr_encode(&r, h);
        if (fp_test_send_all(fd, h, sizeof(h)) != 0 ||
            fp_test_send_all(fd, hello, sizeof(hello)) != 0)
            goto fail;
    }
    for (int i = 0; i < FAKE_NREQ; i++) {
        if (fake_read_frame(fd, &hdr, payload, sizeof(payload)) != 0 || hdr.op != FP_OP_READ ||
            fp_proto_get_u32(payload + 16) != FAKE_LEN)
            goto fail;
        f->ids[i] = hdr.id;
        f->requests++;
    }
    if (fake_misbehave(fd, f) != 0)
        goto fail;
    /* Keep the connection open (a broken stream, not an EOF, must end it) until the client closes.
     */
    while ((rc = fake_read_frame(fd, &hdr, payload, sizeof(payload))) == 0)
        ;
    if (rc == -1 && errno == 0)
        f->client_closed = 1;
    close(fd);
    return NULL;

fail:
    f->failed = 1;
    close(fd);
    return NULL;
}

static fake_node_t *fx_fake(fixture_t *f, fake_mode_t mode)
{
    fake_node_t *fake = calloc(1, sizeof(*fake));

    assert_non_null(fake);
    f->fake = fake;
    fake->mode = mode;
    fake->lfd = listen_loopback(fake->addr);
    assert_true(fake->lfd >= 0);
    assert_int_equal(pthread_create(&fake->thread, NULL, fake_main, fake), 0);
    fake->running = true;
    return fake;
}

static void fake_finish(fake_node_t *fake)
{
    if (fake->running)
        pthread_join(fake->thread, NULL);
    fake->running = false;
    if (fake->lfd >= 0)
        close(fake->lfd);
    fake->lfd = -1;
}

/*
 * Connect to a fake node in @mode, submit FAKE_NREQ READs and progress until
 * all complete; @calls holds them.
 */
static fp_status_t run_fake(fixture_t *f, fake_mode_t mode, call_t *calls, uint8_t *bufs,
                            unsigned *completed)
{
    fp_status_t last = FP_OK;
    uint64_t deadline;
    fake_node_t *fake = fx_fake(f, mode);

    fx_connect(f, fake->addr, 0);
    for (int i = 0; i < FAKE_NREQ; i++) {
        memset(bufs + i * (FAKE_LEN + GUARD), 0xa5, FAKE_LEN + GUARD);
        call_data(&calls[i], FP_OP_READ, 1, 0, bufs + i * (FAKE_LEN + GUARD), FAKE_LEN);
        calls[i].completed = completed;
        assert_ok(fp_transport_submit(f->tp, &calls[i].xfer));
    }
    deadline = now_ms() + WAIT_MS;
    while (*completed < FAKE_NREQ && now_ms() < deadline) {
        unsigned n = 0, before = *completed;
        last = fp_transport_progress(f->tp, 200, &n);
        assert_int_equal(*completed - before, n);
        if (last != FP_OK && last != FP_ERR_TIMED_OUT)
            break;
    }
    if (*completed < FAKE_NREQ)
        fail_msg("fake node mode %d: %u of %d xfers completed (last progress: %s)", (int)mode,
                 *completed, FAKE_NREQ, fp_status_string(last));
    return last;
}

/* After a broken connection nothing completes again, and nothing new is accepted. */
static void check_broken(fixture_t *f, call_t *calls)
{
    unsigned n = 99;
    call_t extra;
    uint8_t buf[8];

    assert_int_equal(fp_transport_inflight(f->tp), 0);
    assert_status(fp_transport_progress(f->tp, 0, &n), FP_ERR_NOT_CONNECTED);
    assert_int_equal(n, 0);
    assert_status(fp_transport_progress(f->tp, 100, NULL), FP_ERR_NOT_CONNECTED);
    call_data(&extra, FP_OP_READ, 1, 0, buf, sizeof(buf));
    assert_status(fp_transport_submit(f->tp, &extra.xfer), FP_ERR_NOT_CONNECTED);
    assert_int_equal(extra.ncalls, 0);
    fp_transport_close(f->tp);
    f->tp = NULL;
    for (int i = 0; i < FAKE_NREQ; i++)
        assert_int_equal(calls[i].ncalls, 1);
    fake_finish(f->fake);
    assert_int_equal(f->fake->failed, 0);
    assert_int_equal(f->fake->client_closed, 1);
}

/*
 * A protocol violation: every xfer not answered correctly before it completes
 * with NOT_CONNECTED exactly once; @ok_index (or -1) was answered before.
 */
static void check_protocol_break(void **state, fake_mode_t mode, int ok_index)
{
    fixture_t *f = *state;
    call_t calls[FAKE_NREQ];
    uint8_t bufs[FAKE_NREQ * (FAKE_LEN + GUARD)];
    unsigned completed = 0;

    assert_status(run_fake(f, mode, calls, bufs, &completed), FP_ERR_NOT_CONNECTED);
    for (int i = 0; i < FAKE_NREQ; i++) {
        const uint8_t *b = bufs + i * (FAKE_LEN + GUARD);

        if (calls[i].ncalls != 1)
            fail_msg("mode %d: xfer %d completed %d times", (int)mode, i, calls[i].ncalls);
        if (i == ok_index) {
            assert_ok(calls[i].status);
            assert_int_equal(calls[i].xfer.rsp_len, FAKE_LEN);
            for (int j = 0; j < FAKE_LEN; j++)
                assert_int_equal(b[j], 0x42);
        } else if (calls[i].status != FP_ERR_NOT_CONNECTED) {
            fail_msg("mode %d: xfer %d completed with %s, expected %s", (int)mode, i,
                     fp_status_string(calls[i].status), fp_status_string(FP_ERR_NOT_CONNECTED));
        }
        /* Nothing past the reply buffer, whatever the node sent. */
        for (int j = FAKE_LEN; j < FAKE_LEN + GUARD; j++)
            assert_int_equal(b[j], 0xa5);
    }
    check_broken(f, calls);
}

static void test_reply_oversized(void **state)
{
    check_protocol_break(state, FAKE_OVERSIZED, 1);
}

static void test_reply_unknown_slot(void **state)
{
    check_protocol_break(state, FAKE_UNKNOWN_SLOT, -1);
}

static void test_reply_stale_id(void **state)
{
    check_protocol_break(state, FAKE_STALE_ID, -1);
}

static void test_reply_duplicate(void **state)
{
    check_protocol_break(state, FAKE_DUPLICATE, 0);
}

static void test_reply_wrong_op(void **state)
{
    check_protocol_break(state, FAKE_WRONG_OP, -1);
}

static void test_reply_error_with_data(void **state)
{
    check_protocol_break(state, FAKE_ERROR_WITH_DATA, -1);
}

static void test_reply_truncated(void **state)
{
    check_protocol_break(state, FAKE_TRUNCATED, -1);
}

/* A status outside fp_status_t fails that xfer only; the stream is intact. */
static void test_reply_bad_status(void **state)
{
    fixture_t *f = *state;
    call_t calls[FAKE_NREQ];
    uint8_t bufs[FAKE_NREQ * (FAKE_LEN + GUARD)];
    unsigned completed = 0;
    fp_status_t status;

    status = run_fake(f, FAKE_BAD_STATUS, calls, bufs, &completed);
    assert_true(status == FP_OK || status == FP_ERR_TIMED_OUT);
    assert_int_equal(calls[0].ncalls, 1);
    assert_status(calls[0].status, FP_ERR_PROTOCOL);
    for (int i = 1; i < FAKE_NREQ; i++) {
        assert_int_equal(calls[i].ncalls, 1);
        assert_ok(calls[i].status);
        assert_int_equal(calls[i].xfer.rsp_len, FAKE_LEN);
    }
    fp_transport_close(f->tp);
    f->tp = NULL;
    for (int i = 0; i < FAKE_NREQ; i++)
        assert_int_equal(calls[i].ncalls, 1);
    fake_finish(f->fake);
    assert_int_equal(f->fake->failed, 0);
}

/* Replies in the reverse order of the requests: each lands in its own buffer. */
static void test_reply_reversed(void **state)
{
    fixture_t *f = *state;
    call_t calls[FAKE_NREQ];
    uint8_t bufs[FAKE_NREQ * (FAKE_LEN + GUARD)];
    unsigned completed = 0;
    fp_status_t status;

    status = run_fake(f, FAKE_REVERSED, calls, bufs, &completed);
    assert_true(status == FP_OK || status == FP_ERR_TIMED_OUT);
    for (int i = 0; i < FAKE_NREQ; i++) {
        const uint8_t *b = bufs + i * (FAKE_LEN + GUARD);

        assert_int_equal(calls[i].ncalls, 1);
        assert_ok(calls[i].status);
        assert_int_equal(calls[i].order, FAKE_NREQ - 1 - i);
        assert_int_equal(calls[i].xfer.rsp_len, FAKE_LEN);
        for (int j = 0; j < FAKE_LEN; j++) {
            if (b[j] != 0x10 + i)
                fail_msg("xfer %d: byte %d is 0x%02x, the reply to xfer %d", i, j, b[j],
                         b[j] - 0x10);
        }
        for (int j = FAKE_LEN; j < FAKE_LEN + GUARD; j++)
            assert_int_equal(b[j], 0xa5);
    }
    assert_int_equal(fp_transport_inflight(f->tp), 0);
    fp_transport_close(f->tp);
    f->tp = NULL;
    fake_finish(f->fake);
    assert_int_equal(f->fake->failed, 0);
}

/* ---------------------------------------------------------------------------
 * Closing with xfers in flight, and a node that dies.
 */
#define NCLOSE 200

static void check_all_once(const call_t *calls, unsigned n, fp_status_t expected, unsigned ok_max)
{
    unsigned ok = 0;

    for (unsigned i = 0; i < n; i++) {
        if (calls[i].ncalls != 1)
            fail_msg("xfer %u completed %d times", i, calls[i].ncalls);
        if (calls[i].status == FP_OK)
            ok++;
        else if (calls[i].status != expected)
            fail_msg("xfer %u completed with %s, expected %s", i, fp_status_string(calls[i].status),
                     fp_status_string(expected));
    }
    assert_true(ok <= ok_max);
}

/* Queued, never sent: close cancels them all. */
static void test_close_queued(void **state)
{
    fixture_t *f = *state;
    call_t *calls;
    uint8_t *buf;
    uint64_t slab;
    unsigned completed = 0;

    fx_daemon(f, NULL, 0);
    slab = slab_alloc(f);
    calls = fx_alloc(f, NCLOSE * sizeof(*calls));
    buf = fx_alloc(f, MiB);
    for (unsigned i = 0; i < NCLOSE; i++) {
        call_data(&calls[i], FP_OP_READ, slab, 0, buf, MiB);
        calls[i].completed = &completed;
        assert_ok(fp_transport_submit(f->tp, &calls[i].xfer));
    }
    assert_int_equal(completed, 0);
    fp_transport_close(f->tp);
    f->tp = NULL;
    assert_int_equal(completed, NCLOSE);
    check_all_once(calls, NCLOSE, FP_ERR_CANCELED, 0);
}

/* Some answered, some sent, some queued: the unfinished ones are canceled, once. */
static void test_close_in_flight(void **state)
{
    fixture_t *f = *state;
    call_t *calls;
    uint8_t *buf;
    uint64_t slab;
    unsigned completed = 0, done_before;

    fx_daemon(f, NULL, 0);
    slab = slab_alloc(f);
    calls = fx_alloc(f, NCLOSE * sizeof(*calls));
    buf = fx_alloc(f, MiB); /* shared: only completion matters here */
    for (unsigned i = 0; i < NCLOSE; i++) {
        call_data(&calls[i], FP_OP_READ, slab, 0, buf, MiB);
        calls[i].completed = &completed;
        assert_ok(fp_transport_submit(f->tp, &calls[i].xfer));
    }
    wait_calls(f->tp, &completed, 1);
    done_before = completed;
    assert_true(done_before < NCLOSE);
    fp_transport_close(f->tp);
    f->tp = NULL;
    assert_int_equal(completed, NCLOSE);
    check_all_once(calls, NCLOSE, FP_ERR_CANCELED, done_before);
    for (unsigned i = 0; i < NCLOSE; i++)
        assert_true((calls[i].status == FP_OK) == (calls[i].order < done_before));
}

/* Sent to a node that never answers: close cancels them, once each. */
static void test_close_unanswered(void **state)
{
    fixture_t *f = *state;
    fake_node_t *fake = fx_fake(f, FAKE_SILENT);
    call_t calls[FAKE_NREQ];
    uint8_t bufs[FAKE_NREQ * FAKE_LEN];
    unsigned completed = 0, n = 99;
    fp_status_t status;
    uint64_t t0;

    fx_connect(f, fake->addr, 0);
    for (int i = 0; i < FAKE_NREQ; i++) {
        call_data(&calls[i], FP_OP_READ, 1, 0, bufs + i * FAKE_LEN, FAKE_LEN);
        calls[i].completed = &completed;
        assert_ok(fp_transport_submit(f->tp, &calls[i].xfer));
    }
    t0 = now_ms();
    /* Nothing to complete: it waits the whole 200 ms (TIMED_OUT is what tcp.c says then). */
    status = fp_transport_progress(f->tp, 200, &n);
    assert_true(status == FP_OK || status == FP_ERR_TIMED_OUT);
    assert_true(now_ms() - t0 >= 150);
    assert_int_equal(n, 0);
    while (fake->requests < FAKE_NREQ && now_ms() - t0 < WAIT_MS)
        fp_transport_progress(f->tp, 10, NULL); /* everything reaches the fake */
    assert_int_equal(fake->requests, FAKE_NREQ);
    assert_int_equal(fp_transport_inflight(f->tp), FAKE_NREQ);
    fp_transport_close(f->tp);
    f->tp = NULL;
    assert_int_equal(completed, FAKE_NREQ);
    check_all_once(calls, FAKE_NREQ, FP_ERR_CANCELED, 0);
    fake_finish(fake);
    assert_int_equal(fake->failed, 0);
}

/* The node is killed with xfers in flight: each completes with NOT_CONNECTED, once. */
static void test_node_killed_in_flight(void **state)
{
    fixture_t *f = *state;
    call_t *calls;
    uint8_t *buf;
    uint64_t slab, t0;
    unsigned completed = 0;
    fp_status_t status = FP_OK;

    fx_daemon(f, NULL, 0);
    slab = slab_alloc(f);
    calls = fx_alloc(f, NCLOSE * sizeof(*calls));
    buf = fx_alloc(f, MiB);
    for (unsigned i = 0; i < NCLOSE; i++) {
        call_data(&calls[i], FP_OP_READ, slab, 0, buf, MiB);
        calls[i].completed = &completed;
        assert_ok(fp_transport_submit(f->tp, &calls[i].xfer));
    }
    fp_transport_progress(f->tp, 0, NULL); /* some leave */
    fp_test_daemon_kill(&f->daemon);
    f->daemon_killed = true;
    t0 = now_ms();
    while (completed < NCLOSE && now_ms() - t0 < WAIT_MS) {
        status = fp_transport_progress(f->tp, 1000, NULL);
        if (status == FP_ERR_NOT_CONNECTED)
            break;
    }
    assert_status(status, FP_ERR_NOT_CONNECTED);
    assert_int_equal(completed, NCLOSE);
    assert_int_equal(fp_transport_inflight(f->tp), 0);
    check_all_once(calls, NCLOSE, FP_ERR_NOT_CONNECTED, NCLOSE);
    fp_transport_close(f->tp); /* nothing left to cancel */
    f->tp = NULL;
    check_all_once(calls, NCLOSE, FP_ERR_NOT_CONNECTED, NCLOSE);
}

/* ---------------------------------------------------------------------------
 * Replies beyond the node's out-queue high water (64 MiB): it stops parsing
 * the requests it has read and resumes as the replies drain. All of them must
 * come, however fast this side drains them (a fast reader once left frames
 * unparsed in the node's buffer, their replies never sent).
 */
#define NBIG 32 /* READs of FP_PROTO_MAX_DATA: eight times the high water */

static void test_replies_past_high_water(void **state)
{
    fixture_t *f = *state;
    call_t *calls;
    uint8_t *image, *buf;
    uint64_t slab;
    unsigned completed = 0;

    fx_daemon(f, NULL, NBIG);
    slab = slab_alloc(f);
    image = fx_alloc(f, FP_PROTO_MAX_DATA);
    fp_pattern_fill(image, FP_PROTO_MAX_DATA, slab, 0, 1);
    write_all(f, slab, 0, image, FP_PROTO_MAX_DATA);
    calls = fx_alloc(f, NBIG * sizeof(*calls));
    buf = fx_alloc(f, FP_PROTO_MAX_DATA);
    for (int round = 0; round < 4; round++) {
        completed = 0;
        memset(calls, 0, NBIG * sizeof(*calls));
        /* All into one buffer: they carry the same bytes. */
        for (unsigned i = 0; i < NBIG; i++) {
            call_data(&calls[i], FP_OP_READ, slab, 0, buf, FP_PROTO_MAX_DATA);
            calls[i].completed = &completed;
            assert_ok(fp_transport_submit(f->tp, &calls[i].xfer));
        }
        wait_calls(f->tp, &completed, NBIG);
        check_all_once(calls, NBIG, FP_OK, NBIG);
        FP_PATTERN_ASSERT(buf, FP_PROTO_MAX_DATA, slab, 0, 1);
    }
}

/*
 * With an interrupt descriptor readable (fp_transport_interrupt_on()), a
 * large reply is received a slice at a time, progress returning in between;
 * small replies are each dispatched before it returns, so that the socket's
 * descriptor still says when more is waiting; without one, a call waits for
 * the whole reply.
 */
#define NSMALL 64
static void test_interrupt_between_slices(void **state)
{
    fixture_t *f = *state;
    call_t big, *small;
    uint8_t *image, *buf;
    uint64_t slab, one = 1;
    unsigned completed = 0, calls = 0, n = 0;
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

    assert_true(efd >= 0);
    fx_daemon(f, NULL, NSMALL);
    slab = slab_alloc(f);
    image = fx_alloc(f, FP_PROTO_MAX_DATA);
    fp_pattern_fill(image, FP_PROTO_MAX_DATA, slab, 0, 1);
    write_all(f, slab, 0, image, FP_PROTO_MAX_DATA);
    buf = fx_alloc(f, FP_PROTO_MAX_DATA);
    fp_transport_interrupt_on(f->tp, efd);
    assert_int_equal(write(efd, &one, sizeof(one)), (ssize_t)sizeof(one));

    /* One large reply: many calls, each returning with nothing completed. */
    call_data(&big, FP_OP_READ, slab, 0, buf, FP_PROTO_MAX_DATA);
    big.completed = &completed;
    assert_ok(fp_transport_submit(f->tp, &big.xfer));
    for (uint64_t t0 = now_ms(); big.ncalls == 0;) {
        assert_ok(fp_transport_progress(f->tp, WAIT_MS, &n));
        assert_int_equal(n, completed);
        calls++;
        if (now_ms() - t0 > 4 * WAIT_MS)
            fail_msg("a %u-byte reply not in after %u calls", FP_PROTO_MAX_DATA, calls);
    }
    assert_int_equal(big.ncalls, 1);
    assert_int_equal(big.status, FP_OK);
    FP_PATTERN_ASSERT(buf, FP_PROTO_MAX_DATA, slab, 0, 1);
    /* At most two slices a call (one staged, one in place). */
    if (calls < FP_PROTO_MAX_DATA / (2 * FP_TRANSPORT_RX_SLICE))
        fail_msg("%u calls for %u bytes: not a slice at a time", calls, FP_PROTO_MAX_DATA);
    printf("  a %u MiB reply came in %u calls\n", FP_PROTO_MAX_DATA >> 20, calls);

    /* Small replies: progress only when the socket polls readable. */
    small = fx_alloc(f, NSMALL * sizeof(*small));
    memset(small, 0, NSMALL * sizeof(*small));
    completed = 0;
    for (unsigned i = 0; i < NSMALL; i++) {
        call_data(&small[i], FP_OP_READ, slab, (uint64_t)i * 4096, buf + (size_t)i * 4096, 4096);
        small[i].completed = &completed;
        assert_ok(fp_transport_submit(f->tp, &small[i].xfer));
    }
    assert_ok(fp_transport_progress(f->tp, 0, &n));
    while (completed < NSMALL) {
        struct pollfd pfd = {.fd = fp_transport_fd(f->tp), .events = POLLIN};

        if (poll(&pfd, 1, WAIT_MS) != 1)
            fail_msg("%u of %d replies in, and the socket quiet: the rest left staged", completed,
                     NSMALL);
        assert_ok(fp_transport_progress(f->tp, 0, &n));
    }
    check_all_once(small, NSMALL, FP_OK, NSMALL);
    FP_PATTERN_ASSERT(buf, (size_t)NSMALL * 4096, slab, 0, 1);

    /* Nothing to interrupt for: one call takes the whole reply. */
    assert_int_equal(read(efd, &one, sizeof(one)), (ssize_t)sizeof(one));
    memset(buf, 0, FP_PROTO_MAX_DATA);
    memset(&big, 0, sizeof(big));
    completed = 0;
    call_data(&big, FP_OP_READ, slab, 0, buf, FP_PROTO_MAX_DATA);
    big.completed = &completed;
    assert_ok(fp_transport_submit(f->tp, &big.xfer));
    assert_ok(fp_transport_progress(f->tp, WAIT_MS, &n));
    assert_int_equal(n, 1);
    FP_PATTERN_ASSERT(buf, FP_PROTO_MAX_DATA, slab, 0, 1);
    fp_transport_interrupt_on(f->tp, -1);
    close(efd);
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const char *seed = getenv("FP_TEST_SEED");
    const struct CMUnitTest tests[] = {
        TEST(test_many_reads_in_flight),
        TEST(test_readv_writev_scattered),
        TEST(test_submit_invalid),
        TEST(test_reply_oversized),
        TEST(test_reply_unknown_slot),
        TEST(test_reply_stale_id),
        TEST(test_reply_duplicate),
        TEST(test_reply_wrong_op),
        TEST(test_reply_error_with_data),
        TEST(test_reply_truncated),
        TEST(test_reply_bad_status),
        TEST(test_reply_reversed),
        TEST(test_close_queued),
        TEST(test_close_in_flight),
        TEST(test_close_unanswered),
        TEST(test_node_killed_in_flight),
        TEST(test_replies_past_high_water),
        TEST(test_interrupt_between_slices),
    };

    rng_state = seed != NULL ? strtoull(seed, NULL, 0) : 20261122;
    printf("test_transport: FP_TEST_SEED=%llu\n", (unsigned long long)rng_state);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
