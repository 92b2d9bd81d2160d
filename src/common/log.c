/* SPDX-License-Identifier: MIT */
/* Leveled logging to stderr; see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

_Atomic int fp_log_level_current = FP_LOG_WARN;

/* Set once at start-up by a program's main(), before threads exist. */
static char log_prefix[32] = "farpool";

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void fp_log_set_level(fp_log_level_t level)
{
    atomic_store_explicit(&fp_log_level_current, (int)level, memory_order_relaxed);
}

int fp_log_level_parse(const char *name)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(name, level_names[i]) == 0)
            return (int)i;
    }
    return -1;
}

void fp_log_set_prefix(const char *prefix)
{
    snprintf(log_prefix, sizeof(log_prefix), "%s", prefix);
}

void fp_log_write(fp_log_level_t level, const char *file, int line, const char *fmt, ...)
{
    char buf[1024];
    struct timespec ts;
    struct tm tm;
    int n, m;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(buf, sizeof(buf), "%02d:%02d:%02d.%03ld %s[%d] %s: ", tm.tm_hour, tm.tm_min,
                 tm.tm_sec, ts.tv_nsec / 1000000, log_prefix, (int)getpid(), level_names[level]);
    if (n < 0 || (size_t)n >= sizeof(buf))
        n = 0;
    va_start(ap, fmt);
    m = vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if ((size_t)n >= sizeof(buf) - 1)
        n = (int)sizeof(buf) - 2;
    if (level >= FP_LOG_DEBUG) {
        const char *base = strrchr(file, '/');
        m = snprintf(buf + n, sizeof(buf) - (size_t)n, " (%s:%d)", base ? base + 1 : file, line);
        if (m > 0 && (size_t)(n + m) < sizeof(buf) - 1)
            n += m;
    }
    buf[n++] = '\n';
    /* One write per line; a short write to stderr is not worth a retry loop. */
    (void)!write(STDERR_FILENO, buf, (size_t)n);
}
