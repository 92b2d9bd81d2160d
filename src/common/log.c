/* SPDX-License-Identifier: MIT */
/* Leveled logging through a logger object; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void fp_log_init(fp_log_t *log, const char *prefix, fp_log_level_t level, farpool_log_func_t func,
                 void *arg)
{
    log->level = (int)level;
    log->func = func;
    log->arg = arg;
    snprintf(log->prefix, sizeof(log->prefix), "%s", prefix != NULL ? prefix : "farpool");
    atomic_init(&log->said, 0);
}

void fp_log_init_params(fp_log_t *log, const char *prefix, bool given, farpool_log_level_t level,
                        farpool_log_func_t func, void *arg)
{
    int lv = (int)level;

    if (!given) {
        /* The one environment knob of logging; see docs/environment.md. */
        const char *env = getenv("FARPOOL_LOG_LEVEL");

        lv = env != NULL ? fp_log_level_parse(env) : -1;
        if (lv < 0)
            lv = FP_LOG_WARN;
        func = NULL;
        arg = NULL;
    }
    if (lv < FP_LOG_ERROR)
        lv = FP_LOG_ERROR;
    if (lv > FP_LOG_TRACE)
        lv = FP_LOG_TRACE;
    fp_log_init(log, prefix, (fp_log_level_t)lv, func, arg);
}

int fp_log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(name, level_names[i]) == 0)
            return (int)i;
    }
    return -1;
}

bool fp_log_once(fp_log_t *log, unsigned what)
{
    if (log == NULL)
        return true;
    return (atomic_fetch_or(&log->said, what) & what) == 0;
}

void fp_log_write(const fp_log_t *log, fp_log_level_t level, const char *file, int line,
                  const char *fmt, ...)
{
    char buf[1024];
    size_t start, n;
    int m;
    va_list ap;

    /* Standard error gets "HH:MM:SS.mmm PROGRAM[PID] LEVEL: "; a callback the message only. */
    n = 0;
    if (log == NULL || log->func == NULL) {
        struct timespec ts;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        m = snprintf(buf, sizeof(buf), "%02d:%02d:%02d.%03ld %s[%d] %s: ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, log != NULL ? log->prefix : "farpool",
                     (int)getpid(), level_names[level]);
        n = m > 0 && (size_t)m < sizeof(buf) ? (size_t)m : 0;
    }
    start = n;
    va_start(ap, fmt);
    m = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
    va_end(ap);
    if (m > 0)
        n += (size_t)m;
    if (n >= sizeof(buf) - 1)
        n = sizeof(buf) - 2;
    if (level >= FP_LOG_DEBUG) {
        const char *base = strrchr(file, '/');
        m = snprintf(buf + n, sizeof(buf) - n, " (%s:%d)", base ? base + 1 : file, line);
        if (m > 0 && n + (size_t)m < sizeof(buf) - 1)
            n += (size_t)m;
    }
    if (log != NULL && log->func != NULL) {
        buf[n] = '\0';
        log->func(log->arg, (farpool_log_level_t)level, buf + start);
        return;
    }
    buf[n++] = '\n';
    /* One write per line; a short write to stderr is not worth a retry loop. */
    (void)!write(STDERR_FILENO, buf, n);
}
