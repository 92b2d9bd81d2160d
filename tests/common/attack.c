/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the bad-input tests: a watchdog, the daemon-log check, raw
 * request frames and replies, and the "alive and serving" check. See
 * attack.h.
 */
#include "attack.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/parse.h"

static fp_test_attack_note_func_t attack_note;

/* ---- small utilities ---- */

uint64_t fp_test_attack_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void fp_test_attack_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

const char *fp_test_attack_why_short(int err)
{
    return err == 0 ? "connection closed by the node" : strerror(err);
}

void fp_test_attack_set_note(fp_test_attack_note_func_t note)
{
    attack_note = note;
}

/* ---- the watchdog ---- */

static void watchdog_fired(int sig)
{
    (void)sig;
    fail_msg("watchdog: the test still runs after %d s (the daemon or the test hangs)",
             FP_TEST_ATTACK_WATCHDOG_S);
}

void fp_test_attack_watchdog_install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = watchdog_fired;
    sa.sa_flags = SA_NODEFER; /* the handler longjmps out; SIGALRM must stay unblocked */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
}

int fp_test_attack_watchdog_arm(void **state)
{
    (void)state;
    alarm(FP_TEST_ATTACK_WATCHDOG_S);
    return 0;
}

int fp_test_attack_watchdog_disarm(void **state)
{
    (void)state;
    alarm(0);
    return 0;
}

/* ---- the daemon's log ---- */

long fp_test_attack_log_size(const fp_test_daemon_t *d)
{
    FILE *f = fopen(d->log_path, "re");
    long size;

    if (f == NULL)
        return 0;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fclose(f);
    return size < 0 ? 0 : size;
}

void fp_test_attack_log_show_since(const fp_test_daemon_t *d, long offset)
{
    char line[1200];
    FILE *f = fopen(d->log_path, "re");

    if (f == NULL)
        return;
    fseek(f, offset, SEEK_SET);
    fprintf(stderr, "---- farpoold log since the attack began ----\n");
    while (fgets(line, sizeof(line), f) != NULL)
        fprintf(stderr, "farpoold| %s", line);
    fprintf(stderr, "---- end of log ----\n");
    fclose(f);
}

/* Lines of @d's log that match @x (either wording). */
static size_t log_count_expect(const fp_test_daemon_t *d, const fp_test_attack_expect_t *x)
{
    size_t n = fp_test_daemon_log_count(d, x->needle);

    if (x->needle2[0] != '\0')
        n += fp_test_daemon_log_count(d, x->needle2);
    return n;
}

void fp_test_attack_log_begin(const fp_test_daemon_t *d, fp_test_attack_logcheck_t *lc)
{
    lc->warn0 = fp_test_daemon_log_count(d, "] warn: ");
    lc->error0 = fp_test_daemon_log_count(d, "] error: ");
    lc->offset0 = fp_test_attack_log_size(d);
    lc->n = 0;
}

/* A new, zeroed expectation in @lc. */
static fp_test_attack_expect_t *log_add(fp_test_attack_logcheck_t *lc)
{
    if (lc->n == FP_TEST_ATTACK_MAX_EXPECT)
        fail_msg("test bug: more than %d expected log lines in one check",
                 FP_TEST_ATTACK_MAX_EXPECT);
    memset(&lc->ex[lc->n], 0, sizeof(lc->ex[0]));
    return &lc->ex[lc->n++];
}

void fp_test_attack_log_expect_event(const fp_test_daemon_t *d, fp_test_attack_logcheck_t *lc,
                                     const char *fmt, ...)
{
    fp_test_attack_expect_t *x = log_add(lc);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(x->needle, sizeof(x->needle), fmt, ap);
    va_end(ap);
    x->before = log_count_expect(d, x);
}

void fp_test_attack_log_expect_event2(const fp_test_daemon_t *d, fp_test_attack_logcheck_t *lc,
                                      const char *peer, const char *what1, const char *what2)
{
    fp_test_attack_expect_t *x = log_add(lc);

    snprintf(x->needle, sizeof(x->needle), "%s: %s", peer, what1);
    snprintf(x->needle2, sizeof(x->needle2), "%s: %s", peer, what2);
    x->before = log_count_expect(d, x);
}

void fp_test_attack_log_expect_rejection(fp_test_attack_logcheck_t *lc, const char *peer,
                                         uint8_t op, uint64_t id, fp_status_t status)
{
    fp_test_attack_expect_t *x = log_add(lc);

    snprintf(x->needle, sizeof(x->needle), "%s: %s #%llu rejected: %s", peer, fp_proto_op_name(op),
             (unsigned long long)id, fp_status_string(status));
    x->before = 0;
}

void fp_test_attack_log_verify(const fp_test_daemon_t *d, const fp_test_attack_logcheck_t *lc)
{
    size_t warn, error;

    for (int i = 0; i < lc->n; i++) {
        const fp_test_attack_expect_t *x = &lc->ex[i];
        uint64_t deadline = fp_test_attack_now_ms() + FP_TEST_ATTACK_LOG_WAIT_MS;

        while (log_count_expect(d, x) <= x->before && fp_test_attack_now_ms() < deadline)
            fp_test_attack_sleep_ms(10);
        if (log_count_expect(d, x) <= x->before) {
            fp_test_attack_log_show_since(d, lc->offset0);
            fail_msg("the daemon logged no line containing \"%s\"%s%s%s within %d ms", x->needle,
                     x->needle2[0] ? " (or \"" : "", x->needle2, x->needle2[0] ? "\")" : "",
                     FP_TEST_ATTACK_LOG_WAIT_MS);
        }
    }
    fp_test_attack_sleep_ms(FP_TEST_ATTACK_LOG_SETTLE_MS);
    for (int i = 0; i < lc->n; i++) {
        const fp_test_attack_expect_t *x = &lc->ex[i];
        size_t n = log_count_expect(d, x) - x->before;

        if (n != 1) {
            fp_test_attack_log_show_since(d, lc->offset0);
            fail_msg("%zu log lines contain \"%s\"; expected exactly one", n, x->needle);
        }
    }
    warn = fp_test_daemon_log_count(d, "] warn: ") - lc->warn0;
    error = fp_test_daemon_log_count(d, "] error: ") - lc->error0;
    if (warn != (size_t)lc->n || error != 0) {
        fp_test_attack_log_show_since(d, lc->offset0);
        fail_msg("the daemon logged %zu warn and %zu error lines; expected %d warn and 0 error",
                 warn, error, lc->n);
    }
}

/* ---- the daemon's health ---- */

void fp_test_attack_check_alive(fp_test_daemon_t *d)
{
    if (!fp_test_daemon_alive(d)) {
        fp_test_daemon_log_dump(d);
        fail_msg("farpoold is dead (exit code %d)", d->exit_code);
    }
}

void fp_test_attack_new_client_stats(const fp_test_daemon_t *d, const char *secret,
                                     farpool_node_stats_t *stats_p)
{
    farpool_node_params_t p;
    farpool_node_t *node = NULL;
    farpool_node_stats_t stats;
    uint64_t t0 = fp_test_attack_now_ms(), took;
    fp_status_t status;

    memset(&p, 0, sizeof(p));
    p.field_mask = FARPOOL_NODE_PARAM_TIMEOUT;
    p.timeout_ms = FP_TEST_ATTACK_STATS_DEADLINE_MS;
    if (secret != NULL) {
        p.field_mask |= FARPOOL_NODE_PARAM_SECRET;
        p.secret = secret;
        p.secret_len = strlen(secret);
    }
    status = farpool_node_connect(d->addr, &p, &node);
    if (status == FP_OK)
        status = farpool_node_stats(node, &stats, sizeof(stats));
    took = fp_test_attack_now_ms() - t0;
    farpool_node_close(node);
    if (status != FP_OK)
        fail_msg("a new client cannot connect and get STATS: %s", fp_status_string(status));
    if (took > FP_TEST_ATTACK_STATS_DEADLINE_MS)
        fail_msg("a new client got STATS only after %llu ms", (unsigned long long)took);
    if (stats_p != NULL)
        *stats_p = stats;
}

/* ---- raw connections ---- */

void fp_test_attack_peer(int fd, char *buf, size_t len)
{
    fp_addr_t a;

    memset(&a, 0, sizeof(a));
    a.len = sizeof(a.ss);
    if (getsockname(fd, (struct sockaddr *)&a.ss, &a.len) != 0)
        fail_msg("getsockname: %s", strerror(errno));
    fp_addr_format(&a, buf, len);
}

void fp_test_attack_send(int fd, const void *buf, size_t len)
{
    if (fp_test_send_all(fd, buf, len) != 0)
        fail_msg("send of %zu bytes failed: %s", len, strerror(errno));
}

void fp_test_attack_encode_request(uint8_t *buf, uint8_t op, uint64_t id, uint32_t length)
{
    fp_proto_hdr_t h = {FP_PROTO_VERSION, op, 0, id, 0, length};

    fp_proto_hdr_encode(&h, buf);
}

void fp_test_attack_send_frame(int fd, uint8_t op, uint64_t id, const void *payload, uint32_t len)
{
    uint8_t *buf = malloc(FP_PROTO_HDR_SIZE + (size_t)len);

    if (buf == NULL)
        fail_msg("out of memory");
    fp_test_attack_encode_request(buf, op, id, len);
    if (len > 0)
        memcpy(buf + FP_PROTO_HDR_SIZE, payload, len);
    fp_test_attack_send(fd, buf, FP_PROTO_HDR_SIZE + (size_t)len);
    free(buf);
}

fp_proto_hdr_t fp_test_attack_recv_reply(int fd, uint8_t op, uint64_t id, void *payload, size_t cap)
{
    uint8_t hb[FP_PROTO_HDR_SIZE], sink[4096];
    fp_proto_hdr_t h;
    fp_status_t status;
    size_t take, left;
    ssize_t got;

    got = fp_test_recv_all(fd, hb, sizeof(hb));
    if (got != (ssize_t)sizeof(hb)) {
        const char *why = fp_test_attack_why_short(errno); /* before the note touches errno */

        fail_msg("%s #%llu: no reply: %s after %zd of %u header bytes%s", fp_proto_op_name(op),
                 (unsigned long long)id, why, got, FP_PROTO_HDR_SIZE,
                 attack_note != NULL ? attack_note() : "");
    }
    status = fp_proto_hdr_decode(hb, true, &h);
    if (status != FP_OK)
        fail_msg("%s #%llu: the reply header does not decode: %s", fp_proto_op_name(op),
                 (unsigned long long)id, fp_status_string(status));
    take = h.length < cap ? h.length : cap;
    if (take > 0 && fp_test_recv_all(fd, payload, take) != (ssize_t)take)
        fail_msg("%s #%llu: reply payload cut short: %s", fp_proto_op_name(op),
                 (unsigned long long)id, fp_test_attack_why_short(errno));
    for (left = h.length - take; left > 0; left -= take) {
        take = left < sizeof(sink) ? left : sizeof(sink);
        if (fp_test_recv_all(fd, sink, take) != (ssize_t)take)
            fail_msg("%s #%llu: reply payload cut short: %s", fp_proto_op_name(op),
                     (unsigned long long)id, fp_test_attack_why_short(errno));
    }
    return h;
}

fp_proto_hdr_t fp_test_attack_expect_reply(int fd, uint8_t op, uint64_t id, fp_status_t want,
                                           void *payload, size_t cap)
{
    fp_proto_hdr_t h = fp_test_attack_recv_reply(fd, op, id, payload, cap);

    if (h.op != op || h.id != id || h.status != want || (want != FP_OK && h.length != 0))
        fail_msg("%s #%llu: expected a reply with status %d (%s); got op %u #%llu, status %d "
                 "(%s), %u payload bytes",
                 fp_proto_op_name(op), (unsigned long long)id, (int)want, fp_status_string(want),
                 h.op, (unsigned long long)h.id, (int)h.status,
                 fp_status_string((fp_status_t)h.status), h.length);
    return h;
}

fp_proto_hdr_t fp_test_attack_expect_status(int fd, uint8_t op, uint64_t id, fp_status_t want)
{
    return fp_test_attack_expect_reply(fd, op, id, want, NULL, 0);
}

void fp_test_attack_ping(int fd, uint64_t id, const uint8_t *out, size_t len)
{
    uint8_t in[FP_TEST_ATTACK_PING_MAX];
    fp_proto_hdr_t h;

    if (len > sizeof(in))
        fail_msg("test bug: a PING payload of %zu bytes (at most %zu)", len, sizeof(in));
    fp_test_attack_send_frame(fd, FP_OP_PING, id, out, (uint32_t)len);
    h = fp_test_attack_recv_reply(fd, FP_OP_PING, id, in, sizeof(in));
    if (h.op != FP_OP_PING || h.id != id || h.status != FP_OK || h.length != len ||
        memcmp(in, out, len) != 0)
        fail_msg("PING #%llu after the rejected request: got op %u #%llu status %d length %u, "
                 "not the echo: the connection is out of step",
                 (unsigned long long)id, h.op, (unsigned long long)h.id, (int)h.status, h.length);
}
