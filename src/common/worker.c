/* SPDX-License-Identifier: MIT */
/* A background thread that sleeps until there is work; see worker.h. */
#include "worker.h"

#include <time.h>

fp_status_t fp_worker_start(fp_worker_t *w, const char *name, void *(*fn)(void *), void *arg)
{
    pthread_condattr_t ca;

    w->stopping = false;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&w->thread, NULL, fn, arg) != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        return FP_ERR_IO;
    }
    pthread_setname_np(w->thread, name);
    return FP_OK;
}

void fp_worker_stop(fp_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
}

void fp_worker_kick(fp_worker_t *w)
{
    pthread_cond_broadcast(&w->cond);
}

bool fp_worker_wait_locked(fp_worker_t *w, int ms)
{
    struct timespec ts;

    if (w->stopping || ms <= 0)
        return w->stopping;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&w->cond, &w->lock, &ts);
    return w->stopping;
}

bool fp_worker_sleep(fp_worker_t *w, int ms)
{
    bool stop;

    pthread_mutex_lock(&w->lock);
    stop = fp_worker_wait_locked(w, ms);
    pthread_mutex_unlock(&w->lock);
    return stop;
}
