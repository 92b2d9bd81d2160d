/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the bad-input tests (test_server_badinput.c,
 * test_region_badinput.c): tests that attack a real farpoold (daemon.h) with
 * raw, often malformed frames and then check that the daemon answered as
 * docs/protocol.md says, survived, and logged exactly what it should.
 *
 * Three groups of helpers:
 *   - a SIGALRM watchdog, so a hanging test fails instead of running into the
 *     CTest timeout;
 *   - a log check (fp_test_attack_logcheck_t): count the daemon's warn and
 *     error lines before an attack, name the lines the attack must add, then
 *     require exactly those (one line each) and nothing else;
 *   - raw connections: send request frames, receive and check replies, PING
 *     to see that a connection is still in step, and the "the daemon is alive
 *     and a new client gets STATS in time" check.
 *
 * Every check fails the current cmocka test with fail_msg() and a message
 * that says what went wrong; none returns an error. Call them from a test (or
 * its setup/teardown), never from a group setup.
 *
 * Thread safety: none of these helpers is meant for more than one thread;
 * the watchdog and the note function (fp_test_attack_set_note()) are
 * per-process.
 */
#ifndef FP_TESTS_COMMON_ATTACK_H
#define FP_TESTS_COMMON_ATTACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <farpool/farpool.h>

#include "common/daemon.h"
#include "proto/proto.h"

/* A test that still runs after this many seconds fails (the watchdog). */
#define FP_TEST_ATTACK_WATCHDOG_S 60
/* A new client must connect and get STATS within this. */
#define FP_TEST_ATTACK_STATS_DEADLINE_MS 2000
/* An expected log line must appear within this... */
#define FP_TEST_ATTACK_LOG_WAIT_MS 3000
/* ...and then no second line for the same event may follow within this. */
#define FP_TEST_ATTACK_LOG_SETTLE_MS 200
/* Expected log lines in one check, at most. */
#define FP_TEST_ATTACK_MAX_EXPECT 64
/* Payload bytes of fp_test_attack_ping(), at most. */
#define FP_TEST_ATTACK_PING_MAX 64

/* One log line a test owes: a line containing needle (or needle2) appears once more. */
typedef struct fp_test_attack_expect {
    char needle[200];
    char needle2[200]; /* alternative wording; empty if none */
    size_t before;     /* lines matching before the event */
} fp_test_attack_expect_t;

/* The log lines one attack must add; see fp_test_attack_log_begin(). */
typedef struct fp_test_attack_logcheck {
    size_t warn0, error0; /* warn and error lines when the check began */
    long offset0;         /* log size when the check began, to show what came since */
    int n;
    fp_test_attack_expect_t ex[FP_TEST_ATTACK_MAX_EXPECT];
} fp_test_attack_logcheck_t;

/* Returns a suffix for failure messages about a connection ("" if none). */
typedef const char *(*fp_test_attack_note_func_t)(void);

/* ---- small utilities ---- */

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t fp_test_attack_now_ms(void);

/* Sleep @ms milliseconds (resumed after a signal). */
void fp_test_attack_sleep_ms(unsigned ms);

/*
 * Why a receive came up short, from its errno: "connection closed by the
 * node" for 0, else strerror(@err). The string is not to be freed.
 */
const char *fp_test_attack_why_short(int err);

/*
 * Set the function whose string fp_test_attack_recv_reply() appends to its
 * "no reply" failure message (e.g. " (farpoold is dead: ...)"); NULL, the
 * default, appends nothing.
 */
void fp_test_attack_set_note(fp_test_attack_note_func_t note);

/* ---- the watchdog ---- */

/*
 * Install the SIGALRM handler that fails the running test (call once, from
 * the group setup). It longjmps out through cmocka, so SIGALRM stays
 * unblocked (SA_NODEFER).
 */
void fp_test_attack_watchdog_install(void);

/* Per-test setup: fail the test if it still runs after FP_TEST_ATTACK_WATCHDOG_S. @state unused. */
int fp_test_attack_watchdog_arm(void **state);

/* Per-test teardown: cancel the watchdog. @state unused; returns 0. */
int fp_test_attack_watchdog_disarm(void **state);

/* ---- the daemon's log ---- */

/* Size in bytes of @d's log (0 if it cannot be read). */
long fp_test_attack_log_size(const fp_test_daemon_t *d);

/* Copy @d's log from byte @offset on to stderr, each line prefixed by "farpoold| ". */
void fp_test_attack_log_show_since(const fp_test_daemon_t *d, long offset);

/* Begin a check of @d's log in @lc: remember its warn and error counts and size. */
void fp_test_attack_log_begin(const fp_test_daemon_t *d, fp_test_attack_logcheck_t *lc);

/*
 * Expect one more line of @d's log containing the text of @fmt, counted from
 * now: call it before the event that causes the line.
 */
void fp_test_attack_log_expect_event(const fp_test_daemon_t *d, fp_test_attack_logcheck_t *lc,
                                     const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The same with two acceptable wordings, "@peer: @what1" or "@peer: @what2". */
void fp_test_attack_log_expect_event2(const fp_test_daemon_t *d, fp_test_attack_logcheck_t *lc,
                                      const char *peer, const char *what1, const char *what2);

/*
 * Expect the line of a rejected request, "@peer: OP #@id rejected: STATUS" as
 * server_conn.c's fp_server_conn_reply_error() writes it; unique (peer and
 * id), so its count must go from 0 to 1.
 */
void fp_test_attack_log_expect_rejection(fp_test_attack_logcheck_t *lc, const char *peer,
                                         uint8_t op, uint64_t id, fp_status_t status);

/*
 * Wait up to FP_TEST_ATTACK_LOG_WAIT_MS for every expected line of @lc, let
 * FP_TEST_ATTACK_LOG_SETTLE_MS pass, then require exactly one line per
 * expectation and no other warn or error line since fp_test_attack_log_begin().
 * On failure the log since then is copied to stderr.
 */
void fp_test_attack_log_verify(const fp_test_daemon_t *d, const fp_test_attack_logcheck_t *lc);

/* ---- the daemon's health ---- */

/* Fail (after copying @d's log to stderr) unless the daemon still runs. */
void fp_test_attack_check_alive(fp_test_daemon_t *d);

/*
 * A new public-API client (no client key; @secret if not NULL) connects to @d
 * and gets STATS within FP_TEST_ATTACK_STATS_DEADLINE_MS, or the test fails.
 * The statistics go to *@stats_p unless it is NULL.
 */
void fp_test_attack_new_client_stats(const fp_test_daemon_t *d, const char *secret,
                                     farpool_node_stats_t *stats_p);

/* ---- raw connections ---- */

/* Our end of @fd as the daemon names it in its log ("127.0.0.1:41234"), into @buf of @len bytes. */
void fp_test_attack_peer(int fd, char *buf, size_t len);

/* Send all @len bytes of @buf on @fd, or fail. */
void fp_test_attack_send(int fd, const void *buf, size_t len);

/* Encode a well-formed request header of @op #@id with a @length-byte payload into @buf. */
void fp_test_attack_encode_request(uint8_t *buf, uint8_t op, uint64_t id, uint32_t length);

/* Send a request @op #@id with its @len-byte @payload in one send (one segment on loopback). */
void fp_test_attack_send_frame(int fd, uint8_t op, uint64_t id, const void *payload, uint32_t len);

/*
 * Receive one reply to @op #@id (named in failure messages): the header, then
 * up to @cap payload bytes into @payload; the rest of the payload is drained.
 * Fails when no full reply arrives or its header does not decode. Returns
 * the decoded header, which may be of another op, id or status.
 */
fp_proto_hdr_t fp_test_attack_recv_reply(int fd, uint8_t op, uint64_t id, void *payload,
                                         size_t cap);

/*
 * The next reply on @fd must be to @op #@id with status @want (and no payload
 * if @want is an error); its payload (up to @cap bytes) goes to @payload.
 */
fp_proto_hdr_t fp_test_attack_expect_reply(int fd, uint8_t op, uint64_t id, fp_status_t want,
                                           void *payload, size_t cap);

/* fp_test_attack_expect_reply() for a reply whose payload is not wanted. */
fp_proto_hdr_t fp_test_attack_expect_status(int fd, uint8_t op, uint64_t id, fp_status_t want);

/*
 * PING #@id on @fd with the @len bytes of @out (at most
 * FP_TEST_ATTACK_PING_MAX) as payload; the reply must be the echo: the
 * connection is usable and in step after a rejected request.
 */
void fp_test_attack_ping(int fd, uint64_t id, const uint8_t *out, size_t len);

#endif /* FP_TESTS_COMMON_ATTACK_H */
