/* SPDX-License-Identifier: MIT */
/* Monotonic time in nanoseconds, and wall-clock milliseconds. Thread safety: reentrant. */
#ifndef FP_COMMON_TIME_H
#define FP_COMMON_TIME_H

#include <stdint.h>
#include <time.h>

static inline uint64_t fp_time_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define FP_NS_PER_MS 1000000ull

/* Wall-clock milliseconds since the epoch (what is stored and shown). */
static inline uint64_t fp_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

#endif /* FP_COMMON_TIME_H */
