/* SPDX-License-Identifier: MIT */
/*
 * The shim's checksums of local files: the BLAKE2b-256 of a file's bytes, as
 * `farpool put` stores it with a region, kept in a cache directory
 * ($XDG_CACHE_HOME/farpool, else ~/.cache/farpool) under a name made of the
 * file's device, inode, size, modification and change times, so that it is
 * computed (the whole file read) once per version of the file.
 *
 * Thread safety: reentrant; the cache's files are written atomically
 * (a temporary file renamed), so processes may share the directory.
 */
#ifndef FP_PRELOAD_PRELOAD_SUM_H
#define FP_PRELOAD_PRELOAD_SUM_H

#include <stdint.h>
#include <sys/stat.h>

#include <farpool/status.h>

#define FP_PRELOAD_SUM_BYTES 32

/*
 * The checksum of the file open as @fd, whose fstat(2) is @st: from the
 * cache if it has this version, else computed with pread(2) (the descriptor's
 * offset is left alone) and stored in the cache (a failure to store is
 * ignored). FP_ERR_IO if the file cannot be read, or changed while it was.
 */
fp_status_t fp_preload_sum_get(int fd, const struct stat *st, uint8_t sum_p[FP_PRELOAD_SUM_BYTES]);

#endif /* FP_PRELOAD_PRELOAD_SUM_H */
