/* SPDX-License-Identifier: MIT */
/*
 * A real etcd (Debian's etcd-server, /usr/bin/etcd) for tests: one member on
 * 127.0.0.1 with a client and a peer port picked free (bound to port 0
 * first, then given to etcd; a start that loses the port to another program
 * is tried again), its data in a fresh temporary directory, waited for until
 * it answers a range request (FP_TEST_ETCD_START_MS at most).
 *
 * No etcd outlives its test program: it asks the kernel for SIGKILL when its
 * parent thread dies (PR_SET_PDEATHSIG: start it from the main thread), and
 * an atexit handler kills those still registered. fp_test_etcd_stop() sends
 * SIGTERM (SIGKILL after FP_TEST_ETCD_STOP_MS), reaps it and removes its
 * directory. The shell tests have the same in common/etcd.sh.
 *
 * Thread safety: start and stop from the main thread.
 */
#ifndef FP_TESTS_COMMON_ETCD_SERVER_H
#define FP_TESTS_COMMON_ETCD_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <farpool/status.h>

#define FP_TEST_ETCD_BIN      "/usr/bin/etcd"
#define FP_TEST_ETCD_START_MS 20000
#define FP_TEST_ETCD_STOP_MS  5000

/** One running etcd. */
typedef struct fp_test_etcd {
    pid_t pid; /* -1 once reaped */
    int client_port;
    int peer_port;
    char endpoint[32];  /* "127.0.0.1:PORT", its client endpoint */
    char dir[256];      /* the temporary directory: data/ and etcd.log */
    char log_path[300]; /* dir/etcd.log: its stdout and stderr */
} fp_test_etcd_t;

/* True if the etcd binary is installed (tests skip, exit 77, if not). */
bool fp_test_etcd_available(void);

/*
 * Start etcd member @name. FP_OK: *@e describes it. Else its log goes to
 * stderr, nothing is left running, and FP_ERR_IO (cannot start; it exited)
 * or FP_ERR_TIMED_OUT (no answer in time).
 */
fp_status_t fp_test_etcd_start(const char *name, fp_test_etcd_t *e);

/* Stop it (SIGTERM, then SIGKILL), reap it, remove its directory. Accepts a stopped one. */
void fp_test_etcd_stop(fp_test_etcd_t *e);

/* Kill it with SIGKILL and reap it, keeping its directory (a crash). */
void fp_test_etcd_kill(fp_test_etcd_t *e);

/*
 * Start member @name of @e again after fp_test_etcd_kill(), on the same
 * ports and data, and wait until it answers. FP_OK, else as fp_test_etcd_start.
 */
fp_status_t fp_test_etcd_restart(const char *name, fp_test_etcd_t *e);

/* "etcd://ENDPOINT/PREFIX" into @out. */
void fp_test_etcd_url(const fp_test_etcd_t *e, const char *prefix, char *out, size_t size);

/* A TCP port on 127.0.0.1 that was free a moment ago (bound to 0, closed); -1 on failure. */
int fp_test_free_port(void);

#endif /* FP_TESTS_COMMON_ETCD_SERVER_H */
