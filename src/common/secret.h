/* SPDX-License-Identifier: MIT */
/*
 * Loading the pre-shared secret from a file. The whole file is the secret,
 * less one trailing newline (so `head -c 32 /dev/urandom | base64 > F` works).
 * At least FP_SECRET_MIN bytes are required. A file readable by group or others
 * is accepted with a warning.
 *
 * Thread safety: reentrant.
 */
#ifndef FP_COMMON_SECRET_H
#define FP_COMMON_SECRET_H

#include <stddef.h>
#include <stdint.h>

#include <farpool/status.h>

#include "log.h"

#define FP_SECRET_MIN 16u
#define FP_SECRET_MAX 1024u

/* Read @path into @buf (FP_SECRET_MAX bytes); logs the reason on failure. */
fp_status_t fp_secret_load(const fp_log_t *log, const char *path, uint8_t *buf, size_t *len_p);

#endif /* FP_COMMON_SECRET_H */
