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
 * Open a non-blocking userfaultfd and negotiate FP_UFFD_FEATURES. Tries full
 * mode first; where the process may not handle kernel-mode faults, falls back
 * to UFFD_USER_MODE_ONLY and sets *@user_mode_only_p (a kernel copy into the
 * region, such as read(2), then fails with EFAULT). FP_ERR_UNSUPPORTED if the
 * kernel lacks userfaultfd or a feature; logs why.
 */
fp_status_t fp_uffd_open(int *fd_p, bool *user_mode_only_p);

/* Register [addr, addr+len) for missing, minor and write-protect faults. */
fp_status_t fp_uffd_register(int fd, void *addr, uint64_t len, bool wp);
fp_status_t fp_uffd_unregister(int fd, void *addr, uint64_t len);

/* Map page-cache pages into the range; @wp maps them write-protected. */
fp_status_t fp_uffd_continue(int fd, void *addr, uint64_t len, bool wp, bool wake);

/* Set (@protect) or clear write protection; clearing wakes waiters unless @dontwake
 * (ignored when setting it). */
fp_status_t fp_uffd_writeprotect(int fd, void *addr, uint64_t len, bool protect, bool dontwake);

/* Mark the range poisoned: an access raises SIGBUS. Wakes waiters. */
fp_status_t fp_uffd_poison(int fd, void *addr, uint64_t len);

/* Wake threads waiting on faults in the range. */
fp_status_t fp_uffd_wake(int fd, void *addr, uint64_t len);

#endif /* FP_CLIENT_UFFD_H */
