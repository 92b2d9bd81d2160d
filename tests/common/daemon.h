/* SPDX-License-Identifier: MIT */
/*
 * A real farpoold for integration tests, and raw sockets to talk to it.
 *
 * fp_test_daemon_start() runs the farpoold that CMake built (FP_TEST_FARPOOLD)
 * on 127.0.0.1 with an ephemeral port, in a fresh temporary directory that
 * holds its port file and its log (the daemon's stdout and stderr), so a test
 * can grep what the daemon said. fp_test_daemon_stop() shuts it down with
 * SIGTERM and reports how it exited.
 *
 * No daemon outlives its test program: every child is registered and killed by
 * an atexit handler (a failed cmocka assertion returns normally, so the handler
 * runs), and the child asks the kernel for SIGKILL when its parent dies
 * (PR_SET_PDEATHSIG), which covers crashes and the CTest timeout. Start
 * daemons from the main thread: the death signal follows the thread that
 * forked, not the process. After such a crash the temporary directories stay
 * in $TMPDIR (farpool-farpoold-*), for a post-mortem; set FP_TEST_KEEP=1 in the
 * environment to keep them after a normal exit too.
 *
 * Sockets made here are close-on-exec, and the daemon closes every inherited
 * descriptor above stderr before exec, so closing a test's socket is seen by
 * the daemon as the end of that connection.
 *
 * Errors are printed to stderr where they are first seen (test code: no log
 * levels) and returned as an fp_status_t or -1.
 *
 * Thread safety: the registry of children is locked, so daemons may be
 * started and stopped from several threads; one fp_test_daemon_t must not be
 * used by two threads at once. The socket helpers are reentrant.
 */
#ifndef FP_TESTS_COMMON_DAEMON_H
#define FP_TESTS_COMMON_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <farpool/status.h>

#define FP_TEST_PATH_MAX 256
#define FP_TEST_ADDR_MAX 80

/* How long the daemon may take to write its port file, and to exit on SIGTERM.
 * A sanitized daemon exits slower: TSan clears its shadow of every slab it
 * frees (1 s for 4096 slabs on an idle machine, 3.5 s beside a busy loop). */
#define FP_TEST_DAEMON_START_MS 10000
#ifdef FP_SANITIZED
#define FP_TEST_DAEMON_STOP_MS 20000
#else
#define FP_TEST_DAEMON_STOP_MS 5000
#endif
/* Receive (and send) timeout of fp_test_connect_raw() sockets. */
#define FP_TEST_SOCKET_TIMEOUT_MS 5000

/** One running (or finished, not yet stopped) farpoold. */
typedef struct fp_test_daemon {
    pid_t pid;                        /* the daemon; -1 once it has been reaped */
    int exit_code;                    /* once reaped: as fp_test_daemon_stop() returns it */
    char addr[FP_TEST_ADDR_MAX];      /* "127.0.0.1:41234", from the port file */
    char dir[FP_TEST_PATH_MAX];       /* the temporary directory */
    char log_path[FP_TEST_PATH_MAX];  /* dir/farpoold.log: stdout and stderr */
    char port_path[FP_TEST_PATH_MAX]; /* dir/port */
} fp_test_daemon_t;

/*
 * Start farpoold with
 *     --listen 127.0.0.1:0 --port-file DIR/port --log-level info EXTRA_ARGS...
 * and wait up to FP_TEST_DAEMON_START_MS for the port file to hold
 * "HOST:PORT\n". @extra_args is a NULL-terminated array (may be NULL), e.g.
 * {"--capacity", "256M", NULL}; a later "--log-level" overrides the default if
 * the daemon's option parser lets the last one win.
 *
 * On FP_OK *@d_p describes the running daemon; release it with
 * fp_test_daemon_stop(). On failure the daemon's log is copied to stderr, the
 * child (if any) is killed and reaped and the directory removed:
 * FP_ERR_IO (cannot create the directory, fork or exec; the daemon exited
 * before listening), FP_ERR_TIMED_OUT (no port file in time),
 * FP_ERR_PROTOCOL (the port file does not hold an address).
 */
fp_status_t fp_test_daemon_start(const char *const extra_args[], fp_test_daemon_t *d_p);

/* Runs in the forked child just before exec; only async-signal-safe calls. */
typedef void (*fp_test_daemon_child_func_t)(void *arg);

/*
 * fp_test_daemon_start(), with @setup(@setup_arg) called in the child right
 * before exec (after its descriptors are set up), unless @setup is NULL: to
 * lower a limit or install a seccomp filter in the daemon only. @setup may
 * _exit() to fail the start; it must not allocate.
 */
fp_status_t fp_test_daemon_start_setup(const char *const extra_args[],
                                       fp_test_daemon_child_func_t setup, void *setup_arg,
                                       fp_test_daemon_t *d_p);

/*
 * Send SIGTERM, wait up to FP_TEST_DAEMON_STOP_MS for the daemon to exit, then
 * SIGKILL it (saying so on stderr). Removes the temporary directory (unless
 * FP_TEST_KEEP is set) and unregisters the daemon. Returns its exit code
 * (0..255) if it exited, 128 + the signal number if a signal ended it (137:
 * killed, whether by fp_test_daemon_kill() or after the stop timeout), -1 if
 * it could not be waited for. A daemon already reaped by fp_test_daemon_kill()
 * or fp_test_daemon_alive() gives the code recorded then. When the code is not
 * 0 the log's last lines are copied to stderr. *@d is unusable afterwards.
 */
int fp_test_daemon_stop(fp_test_daemon_t *d);

/*
 * SIGKILL the daemon now and reap it (a crashed memory node). The directory
 * and the log stay until fp_test_daemon_stop(), which must still be called.
 */
void fp_test_daemon_kill(fp_test_daemon_t *d);

/* True while the daemon runs; reaps it (recording exit_code) once it has exited. */
bool fp_test_daemon_alive(fp_test_daemon_t *d);

/* True if a line of the daemon's log contains @needle. */
bool fp_test_daemon_log_contains(const fp_test_daemon_t *d, const char *needle);

/* Number of lines of the daemon's log that contain @needle. */
size_t fp_test_daemon_log_count(const fp_test_daemon_t *d, const char *needle);

/*
 * Wait up to @timeout_ms for a line containing @needle to appear in the log
 * (the daemon logs asynchronously to what a test sees). True if it did.
 */
bool fp_test_daemon_log_wait(const fp_test_daemon_t *d, const char *needle, int timeout_ms);

/* Copy the daemon's log to stderr, each line prefixed by "farpoold| ". */
void fp_test_daemon_log_dump(const fp_test_daemon_t *d);

/*
 * A blocking TCP socket connected to @addr ("HOST:PORT"), close-on-exec, with
 * TCP_NODELAY and send and receive timeouts of FP_TEST_SOCKET_TIMEOUT_MS, for
 * tests that speak raw bytes. Returns the descriptor (the caller closes it) or
 * -1.
 */
int fp_test_connect_raw(const char *addr);

/* Send all @len bytes of @buf (no SIGPIPE). 0 on success, -1 on error or timeout. */
int fp_test_send_all(int fd, const void *buf, size_t len);

/*
 * Receive until @len bytes are in @buf, the peer closes, or the socket's
 * timeout expires. Returns the number of bytes received (never negative).
 * When it is less than @len, errno says why: 0 for an orderly close,
 * EAGAIN/EWOULDBLOCK for the timeout, ECONNRESET etc. for errors.
 */
ssize_t fp_test_recv_all(int fd, void *buf, size_t len);

/*
 * Read and discard whatever arrives on @fd until the peer closes or resets the
 * connection (true), or until @timeout_ms pass without that (false): "the
 * daemon drops this connection".
 */
bool fp_test_wait_closed(int fd, int timeout_ms);

/*
 * Write the @len bytes of @secret, exactly (add a "\n" yourself to test that a
 * trailing newline is ignored), to a new file of mode 0600 in @dir, or in a
 * scratch directory of the test program (removed at exit) if @dir is NULL; a
 * secret usually has to exist before the daemon, hence before its directory.
 * The file's path is written to @path_p (FP_TEST_PATH_MAX bytes).
 * FP_ERR_IO on failure.
 */
fp_status_t fp_test_write_secret(const char *dir, const void *secret, size_t len, char *path_p);

/* The scratch directory of the test program, created on first use; NULL on failure. */
const char *fp_test_scratch_dir(void);

#endif /* FP_TESTS_COMMON_DAEMON_H */
