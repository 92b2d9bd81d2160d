/* SPDX-License-Identifier: MIT */
/*
 * Leveled logging through a logger object.
 *
 * The library keeps no logging state of its own: every object that logs
 * (a context, a node connection, a transport, a fault engine, the server)
 * holds a pointer to an fp_log_t that its creator owns: a context embeds one
 * built from its parameters, farpoold and the farpool tool build one from
 * their command line. A logger says where lines are cut off and where they go:
 * the caller's farpool_log_func_t, or standard error. The macros test the
 * level before evaluating their arguments, so a disabled debug line costs a
 * load and a branch. A NULL logger is the default one: level warn, stderr.
 *
 * Rule (UCX LoggingStyle): the function that first sees an error logs it;
 * callers pass the status on without logging again.
 *
 * Thread safety: a logger is set up once (fp_log_init) before it is shared;
 * then every function may be called from any thread. A line written to stderr
 * takes one write(2), so lines of different threads do not interleave.
 */
#ifndef FP_COMMON_LOG_H
#define FP_COMMON_LOG_H

#include <stdatomic.h>
#include <stdbool.h>

#include <farpool/farpool.h>

typedef enum fp_log_level {
    FP_LOG_ERROR = FARPOOL_LOG_ERROR,
    FP_LOG_WARN = FARPOOL_LOG_WARN,
    FP_LOG_INFO = FARPOOL_LOG_INFO,
    FP_LOG_DEBUG = FARPOOL_LOG_DEBUG,
    FP_LOG_TRACE = FARPOOL_LOG_TRACE,
} fp_log_level_t;

/* Things said once per logger (fp_log_once). */
enum fp_log_once {
    FP_LOG_ONCE_SHMEM_THP = 1u << 0, /* shmem huge pages are off */
};

typedef struct fp_log {
    int level;               /* lines above this level are dropped; set at init */
    farpool_log_func_t func; /* NULL: standard error */
    void *arg;               /* func's first argument */
    char prefix[32];         /* the program's name in stderr lines */
    _Atomic unsigned said;   /* fp_log_once bits already said */
} fp_log_t;

/* Set @log up: @prefix (truncated to 31 bytes), @level, @func (NULL: stderr) and @arg. */
void fp_log_init(fp_log_t *log, const char *prefix, fp_log_level_t level, farpool_log_func_t func,
                 void *arg);

/*
 * Set @log up from a library parameter block: @level, @func and @arg if
 * @given, else the level $FARPOOL_LOG_LEVEL names (read now), else warn, to
 * standard error. Out-of-range levels are clamped.
 */
void fp_log_init_params(fp_log_t *log, const char *prefix, bool given, farpool_log_level_t level,
                        farpool_log_func_t func, void *arg);

/* Parse "error", "warn", "info", "debug", "trace" (any case); -1 if unknown. */
int fp_log_level_parse(const char *name);

/* The level of @log; FP_LOG_WARN for NULL. */
static inline int fp_log_level_of(const fp_log_t *log)
{
    return log != NULL ? log->level : FP_LOG_WARN;
}

/* True the first time @what is asked of @log (always true for NULL). */
bool fp_log_once(fp_log_t *log, unsigned what);

void fp_log_write(const fp_log_t *log, fp_log_level_t level, const char *file, int line,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define fp_log_enabled(log, level) ((int)(level) <= fp_log_level_of(log))

#define fp_log(log, level, ...)                                                                    \
    do {                                                                                           \
        const fp_log_t *fp_log_ = (log);                                                           \
        if (fp_log_enabled(fp_log_, (level)))                                                      \
            fp_log_write(fp_log_, (level), __FILE__, __LINE__, __VA_ARGS__);                       \
    } while (0)

#define fp_error(log, ...) fp_log((log), FP_LOG_ERROR, __VA_ARGS__)
#define fp_warn(log, ...)  fp_log((log), FP_LOG_WARN, __VA_ARGS__)
#define fp_info(log, ...)  fp_log((log), FP_LOG_INFO, __VA_ARGS__)
#define fp_debug(log, ...) fp_log((log), FP_LOG_DEBUG, __VA_ARGS__)
#define fp_trace(log, ...) fp_log((log), FP_LOG_TRACE, __VA_ARGS__)

#endif /* FP_COMMON_LOG_H */
