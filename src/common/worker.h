/* SPDX-License-Identifier: MIT */
/*
 * A background thread that sleeps until there is work, a deadline or a stop:
 * the pool's metadata service, a member's heartbeat, a context's lease
 * keeper. It owns a lock and a condition on the monotonic clock that the
 * thread and its users share for whatever else they guard.
 *
 * Thread safety: fp_worker_kick() and fp_worker_sleep() from any thread;
 * start and stop from the one that owns the worker.
 */
#ifndef FP_COMMON_WORKER_H
#define FP_COMMON_WORKER_H

#include <pthread.h>
#include <stdbool.h>

#include <farpool/status.h>

typedef struct fp_worker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* waits are on CLOCK_MONOTONIC */
    bool stopping;       /* guarded by lock */
} fp_worker_t;

/* Set up the lock and condition, and run @fn(@arg) on a thread named @name. FP_ERR_IO if not. */
fp_status_t fp_worker_start(fp_worker_t *w, const char *name, void *(*fn)(void *), void *arg);

/* Ask the thread to stop, wake it, join it, and free the lock and condition. */
void fp_worker_stop(fp_worker_t *w);

/* Wake the thread (w->cond); the caller may hold w->lock or not. */
void fp_worker_kick(fp_worker_t *w);

/*
 * With w->lock held: wait until kicked, stopped or @ms milliseconds passed
 * (0 or less: do not wait). Returns w->stopping.
 */
bool fp_worker_wait_locked(fp_worker_t *w, int ms);

/* fp_worker_wait_locked() taking and releasing the lock. */
bool fp_worker_sleep(fp_worker_t *w, int ms);

#endif /* FP_COMMON_WORKER_H */
