/* SPDX-License-Identifier: MIT */
/*
 * Thin userfaultfd wrappers: each ioctl once, errno turned into fp_status_t
 * here and nowhere else. Also the definitions newer than the installed kernel
 * headers (Debian 12 ships 6.1; POISON and CONTINUE_MODE_WP came in 6.6/6.4).
 *
 * Thread safety: reentrant; a userfaultfd may be used from several threads.
 */
#ifndef FP_CLIENT_UFFD_H
#define FP_CLIENT_UFFD_H

#include <stdbool.h>
#include <stdint.h>

#include <linux/userfaultfd.h>

#include <farpool/status.h>

#include "common/log.h"

#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#define _UFFDIO_POISON      (0x08)
struct uffdio_poison {
    struct uffdio_range range;
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
    __u64 mode;
    __s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#define _UFFDIO_MOVE      (0x05)
struct uffdio_move {
    __u64 dst;
    __u64 src;
    __u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE        ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
    __u64 mode;
    __s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1)
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

/* Features farpool needs: minor faults and write-protect on shmem, poison. */
#define FP_UFFD_FEATURES                                                                           \
    (UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM |     \
     UFFD_FEATURE_POISON)

/*
 * Features used where the kernel has them: moving anonymous pages (Linux 6.8),
 * for the page-recycling cache of read-only mappings (cache_move.c), and the
 * faulting thread's id in fault messages.
 */
#define FP_UFFD_FEATURES_OPTIONAL (UFFD_FEATURE_MOVE | UFFD_FEATURE_THREAD_ID)

/* An open userfaultfd and the logger its wrappers say failures to. */
typedef struct fp_uffd {
    int fd;
    fp_log_t *log;
} fp_uffd_t;

/*
 * Open a non-blocking userfaultfd and negotiate FP_UFFD_FEATURES, plus those
 * of FP_UFFD_FEATURES_OPTIONAL the kernel has; *@features_p (may be NULL) gets
 * what was negotiated. Tries full mode first; where the process may not
 * handle kernel-mode faults, falls back to UFFD_USER_MODE_ONLY and sets
 * *@user_mode_only_p (a kernel copy into the region, such as read(2), then
 * fails with EFAULT). FP_ERR_UNSUPPORTED if the kernel lacks userfaultfd or a
 * needed feature; logs why to @log, which the wrappers below use too.
 */
fp_status_t fp_uffd_open(fp_log_t *log, fp_uffd_t *uffd_p, bool *user_mode_only_p,
                         uint64_t *features_p);

/* Close it (fd -1 afterwards; closing twice is harmless). */
void fp_uffd_close(fp_uffd_t *uffd);

/* Registration modes (UFFDIO_REGISTER_MODE_*). */
#define FP_UFFD_MISSING UFFDIO_REGISTER_MODE_MISSING
#define FP_UFFD_MINOR   UFFDIO_REGISTER_MODE_MINOR
#define FP_UFFD_WP      UFFDIO_REGISTER_MODE_WP

/* What the resolving calls do besides their job. */
enum fp_uffd_flags {
    FP_UFFD_PROTECT = 1u << 0,  /* map the pages write-protected */
    FP_UFFD_DONTWAKE = 1u << 1, /* leave the threads waiting on the range asleep */
    FP_UFFD_CLEAR_WP = 1u << 2, /* fp_uffd_poison: clear uffd-wp markers first */
};

/* Register [addr, addr+len) for the faults in @modes (FP_UFFD_* ORed). */
fp_status_t fp_uffd_register(const fp_uffd_t *u, void *addr, uint64_t len, uint64_t modes);
fp_status_t fp_uffd_unregister(const fp_uffd_t *u, void *addr, uint64_t len);

/*
 * Copy @len bytes at @src into new anonymous pages at @dst (registered, empty)
 * and wake the threads waiting on them. @flags: FP_UFFD_PROTECT, FP_UFFD_DONTWAKE.
 */
fp_status_t fp_uffd_copy(const fp_uffd_t *u, void *dst, const void *src, uint64_t len,
                         unsigned flags);

/*
 * Map the page-cache pages of the range (minor faults) and wake the threads
 * waiting on them; pages mapped already are skipped. @flags: FP_UFFD_PROTECT,
 * FP_UFFD_DONTWAKE.
 */
fp_status_t fp_uffd_continue(const fp_uffd_t *u, void *addr, uint64_t len, unsigned flags);

/* Write-protect the range: the next write to it is a write-protect fault. */
fp_status_t fp_uffd_protect(const fp_uffd_t *u, void *addr, uint64_t len);

/* Lift write protection and wake the writers waiting; @flags: FP_UFFD_DONTWAKE. */
fp_status_t fp_uffd_unprotect(const fp_uffd_t *u, void *addr, uint64_t len, unsigned flags);

/*
 * Mark the range poisoned: an access raises SIGBUS. Wakes waiters. Mapped
 * pages keep their bytes. A write-protected page zapped from a shmem range
 * leaves a uffd-wp marker, which poison refuses as it refuses a page: with
 * FP_UFFD_CLEAR_WP (a range registered for write-protect that holds no page
 * the caller needs protected), the markers are cleared first, so that every
 * access gets SIGBUS instead of faulting again and again.
 */
fp_status_t fp_uffd_poison(const fp_uffd_t *u, void *addr, uint64_t len, unsigned flags);

/*
 * Move the anonymous pages of [src, src+len) to the empty range at @dst (both
 * writable anonymous mappings, @dst registered on @u); no copy, no
 * allocation. Wakes threads waiting on @dst unless FP_UFFD_DONTWAKE. *@moved_p
 * gets the bytes moved, from the start, also on failure. FP_ERR_BUSY, not
 * logged, when the kernel will not move a page (pinned or shared); other
 * failures are logged: FP_ERR_IO.
 */
fp_status_t fp_uffd_move(const fp_uffd_t *u, void *dst, void *src, uint64_t len, unsigned flags,
                         uint64_t *moved_p);

/* Wake threads waiting on faults in the range. */
fp_status_t fp_uffd_wake(const fp_uffd_t *u, void *addr, uint64_t len);

#endif /* FP_CLIENT_UFFD_H */
