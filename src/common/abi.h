/* SPDX-License-Identifier: MIT */
/*
 * Helpers for output structs that grow: the caller passes the size of the
 * struct it was compiled with, and the library fills that many bytes, so a
 * program built against older or newer headers gets what both know.
 *
 * Thread safety: reentrant.
 */
#ifndef FP_COMMON_ABI_H
#define FP_COMMON_ABI_H

#include <stddef.h>
#include <string.h>

/*
 * Copy @src (@src_size bytes, the library's struct) to @dst (@dst_size
 * bytes, the caller's): the common prefix, and zeros past the end of ours.
 */
static inline void fp_copy_out(void *dst, size_t dst_size, const void *src, size_t src_size)
{
    size_t n = dst_size < src_size ? dst_size : src_size;

    memcpy(dst, src, n);
    if (dst_size > n)
        memset((char *)dst + n, 0, dst_size - n);
}

#endif /* FP_COMMON_ABI_H */
