/* SPDX-License-Identifier: MIT */
/*
 * A progress bar on standard error for the farpool tool's long transfers
 * (put, get, cat, verify): bytes done of the total, the rate and the time
 * left, redrawn at most ten times a second and cleared when done. It draws
 * only when standard error is a terminal and the user did not ask for
 * --quiet; otherwise every call is a no-op, so callers need not check.
 *
 * Thread safety: one bar per thread.
 */
#ifndef FP_TOOLS_PROGRESS_H
#define FP_TOOLS_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cli_progress {
    bool on;           /* drawing (stderr is a terminal, not quiet) */
    bool drawn;        /* something is on the line now */
    const char *label; /* what is moving ("put data.bin"); borrowed */
    uint64_t total;    /* bytes in all */
    uint64_t start_ns; /* CLOCK_MONOTONIC at start */
    uint64_t last_ns;  /* of the last redraw */
} cli_progress_t;

/* Start a bar for @total bytes labelled @label (kept, not copied). */
void cli_progress_start(cli_progress_t *p, const char *label, uint64_t total, bool quiet);

/* @done bytes of the total are done: redraw if 100 ms have passed since the last time. */
void cli_progress_update(cli_progress_t *p, uint64_t done);

/* Show @text instead of the bar (a step with no byte count: "syncing"), until the next update or
 * clear. */
void cli_progress_text(cli_progress_t *p, const char *text);

/* Clear the line. Call before printing anything else on stderr, and at the end. */
void cli_progress_clear(cli_progress_t *p);

/* @bytes as "117.7 MiB" (binary units, one decimal; plain bytes under 1 KiB) into @buf. */
void cli_format_bytes(uint64_t bytes, char *buf, size_t cap);

#endif /* FP_TOOLS_PROGRESS_H */
