/* SPDX-License-Identifier: MIT */
/*
 * Leveled logging to stderr.
 *
 * The level is a property of the process (the daemon and CLI set it from their
 * command line; the library from FARPOOL_LOG_LEVEL through its config), read
 * with a relaxed atomic load. The macros test the level before evaluating their
 * arguments, so a disabled debug line costs one load and a branch.
 *
 * Rule (UCX LoggingStyle): the function that first sees an error logs it;
 * callers pass the status on without logging again.
 *
 * Thread safety: all functions may be called from any thread; one line is
 * written with one write(2), so lines of different threads do not interleave.
 */
#ifndef FP_COMMON_LOG_H
#define FP_COMMON_LOG_H

#include <stdatomic.h>

typedef enum fp_log_level {
    FP_LOG_ERROR = 0,
    FP_LOG_WARN = 1,
    FP_LOG_INFO = 2,
    FP_LOG_DEBUG = 3,
    FP_LOG_TRACE = 4,
} fp_log_level_t;

/* The one piece of process-wide state: where log lines are cut off. */
extern _Atomic int fp_log_level_current;

void fp_log_set_level(fp_log_level_t level);
/* Parse "error", "warn", "info", "debug", "trace"; -1 if unknown. */
int fp_log_level_parse(const char *name);
void fp_log_set_prefix(const char *prefix);
void fp_log_write(fp_log_level_t level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define fp_log_enabled(level)                                                                      \
    ((int)(level) <= atomic_load_explicit(&fp_log_level_current, memory_order_relaxed))

#define fp_log(level, ...)                                                                         \
    do {                                                                                           \
        if (fp_log_enabled(level))                                                                 \
            fp_log_write((level), __FILE__, __LINE__, __VA_ARGS__);                                \
    } while (0)

#define fp_error(...) fp_log(FP_LOG_ERROR, __VA_ARGS__)
#define fp_warn(...)  fp_log(FP_LOG_WARN, __VA_ARGS__)
#define fp_info(...)  fp_log(FP_LOG_INFO, __VA_ARGS__)
#define fp_debug(...) fp_log(FP_LOG_DEBUG, __VA_ARGS__)
#define fp_trace(...) fp_log(FP_LOG_TRACE, __VA_ARGS__)

#endif /* FP_COMMON_LOG_H */
