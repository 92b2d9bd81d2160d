/* SPDX-License-Identifier: MIT */
/* userfaultfd wrappers; see uffd.h. */
#include "uffd.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"

/* The optional features this kernel offers: asked of a userfaultfd of its own. */
static uint64_t optional_features(int flags)
{
    struct uffdio_api api;
    int fd = (int)syscall(SYS_userfaultfd, flags);

    if (fd < 0)
        return 0;
    memset(&api, 0, sizeof(api));
    api.api = UFFD_API;
    if (ioctl(fd, UFFDIO_API, &api) < 0)
        api.features = 0;
    close(fd);
    return api.features & FP_UFFD_FEATURES_OPTIONAL;
}

fp_status_t fp_uffd_open(fp_log_t *log, fp_uffd_t *uffd_p, bool *user_mode_only_p,
                         uint64_t *features_p)
{
    struct uffdio_api api;
    bool user_mode_only = false;
    int flags = O_CLOEXEC | O_NONBLOCK;
    int fd;

    fd = (int)syscall(SYS_userfaultfd, flags);
    if (fd < 0 && errno == EPERM) {
        user_mode_only = true;
        flags |= UFFD_USER_MODE_ONLY;
        fd = (int)syscall(SYS_userfaultfd, flags);
    }
    if (fd < 0) {
        fp_error(log,
                 "userfaultfd: %s (is vm.unprivileged_userfaultfd 0 and "
                 "UFFD_USER_MODE_ONLY unavailable?)",
                 strerror(errno));
        return errno == ENOSYS ? FP_ERR_UNSUPPORTED : FP_ERR_IO;
    }
    memset(&api, 0, sizeof(api));
    api.api = UFFD_API;
    api.features = FP_UFFD_FEATURES | optional_features(flags);
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        fp_error(log,
                 "userfaultfd: the kernel lacks a needed feature (shmem minor faults, shmem "
                 "write-protect or poison; Linux 6.6 or later): %s",
                 strerror(errno));
        close(fd);
        return FP_ERR_UNSUPPORTED;
    }
    uffd_p->fd = fd;
    uffd_p->log = log;
    *user_mode_only_p = user_mode_only;
    if (features_p != NULL)
        *features_p = api.features;
    return FP_OK;
}

void fp_uffd_close(fp_uffd_t *uffd)
{
    if (uffd->fd >= 0)
        close(uffd->fd);
    uffd->fd = -1;
}

fp_status_t fp_uffd_register(const fp_uffd_t *u, void *addr, uint64_t len, uint64_t modes)
{
    struct uffdio_register reg;

    memset(&reg, 0, sizeof(reg));
    reg.range.start = (uintptr_t)addr;
    reg.range.len = len;
    reg.mode = modes;
    if (ioctl(u->fd, UFFDIO_REGISTER, &reg) < 0) {
        fp_error(u->log, "userfaultfd register %p+%llu: %s", addr, (unsigned long long)len,
                 strerror(errno));
        return FP_ERR_IO;
    }
    return FP_OK;
}

fp_status_t fp_uffd_unregister(const fp_uffd_t *u, void *addr, uint64_t len)
{
    struct uffdio_range range = {(uintptr_t)addr, len};

    if (ioctl(u->fd, UFFDIO_UNREGISTER, &range) < 0) {
        fp_error(u->log, "userfaultfd unregister %p+%llu: %s", addr, (unsigned long long)len,
                 strerror(errno));
        return FP_ERR_IO;
    }
    return FP_OK;
}

fp_status_t fp_uffd_copy(const fp_uffd_t *u, void *dst, const void *src, uint64_t len,
                         unsigned flags)
{
    struct uffdio_copy c;

    memset(&c, 0, sizeof(c));
    c.dst = (uintptr_t)dst;
    c.src = (uintptr_t)src;
    c.len = len;
    c.mode = (flags & FP_UFFD_PROTECT ? UFFDIO_COPY_MODE_WP : 0) |
             (flags & FP_UFFD_DONTWAKE ? UFFDIO_COPY_MODE_DONTWAKE : 0);
    while (ioctl(u->fd, UFFDIO_COPY, &c) < 0) {
        if (errno == EAGAIN) {
            /* Partly done (c.copy bytes); the rest again. */
            if (c.copy > 0) {
                c.dst += (uint64_t)c.copy;
                c.src += (uint64_t)c.copy;
                c.len -= (uint64_t)c.copy;
            }
            c.copy = 0;
            continue;
        }
        fp_error(u->log, "UFFDIO_COPY %p+%llu: %s", dst, (unsigned long long)len, strerror(errno));
        return errno == ENOMEM ? FP_ERR_NO_MEMORY : FP_ERR_IO;
    }
    return FP_OK;
}

fp_status_t fp_uffd_continue(const fp_uffd_t *u, void *addr, uint64_t len, unsigned flags)
{
    struct uffdio_continue c;

    memset(&c, 0, sizeof(c));
    c.range.start = (uintptr_t)addr;
    c.range.len = len;
    c.mode = (flags & FP_UFFD_PROTECT ? UFFDIO_CONTINUE_MODE_WP : 0) |
             (flags & FP_UFFD_DONTWAKE ? UFFDIO_CONTINUE_MODE_DONTWAKE : 0);
    while (ioctl(u->fd, UFFDIO_CONTINUE, &c) < 0) {
        if (errno == EAGAIN) {
            /* Partly done (c.mapped bytes); the rest again. */
            if (c.mapped > 0) {
                c.range.start += (uint64_t)c.mapped;
                c.range.len -= (uint64_t)c.mapped;
            }
            c.mapped = 0;
            continue;
        }
        if (errno == EEXIST) {
            /* Some pages were mapped already: map page by page, skip those. */
            uint64_t page = 4096, end = c.range.start + c.range.len;
            for (uint64_t a = c.range.start; a < end; a += page) {
                struct uffdio_continue one = c;
                one.range.start = a;
                one.range.len = page;
                one.mode |= UFFDIO_CONTINUE_MODE_DONTWAKE;
                if (ioctl(u->fd, UFFDIO_CONTINUE, &one) < 0 && errno != EEXIST) {
                    fp_error(u->log, "UFFDIO_CONTINUE %#llx: %s", (unsigned long long)a,
                             strerror(errno));
                    return FP_ERR_IO;
                }
            }
            return flags & FP_UFFD_DONTWAKE ? FP_OK : fp_uffd_wake(u, addr, len);
        }
        fp_error(u->log, "UFFDIO_CONTINUE %p+%llu: %s", addr, (unsigned long long)len,
                 strerror(errno));
        return FP_ERR_IO;
    }
    return FP_OK;
}

/* Set or clear write protection; @mode: UFFDIO_WRITEPROTECT_MODE_*. */
static fp_status_t writeprotect(const fp_uffd_t *u, void *addr, uint64_t len, uint64_t mode)
{
    struct uffdio_writeprotect w;

    memset(&w, 0, sizeof(w));
    w.range.start = (uintptr_t)addr;
    w.range.len = len;
    w.mode = mode;
    if (ioctl(u->fd, UFFDIO_WRITEPROTECT, &w) < 0) {
        fp_error(u->log, "UFFDIO_WRITEPROTECT %p+%llu: %s", addr, (unsigned long long)len,
                 strerror(errno));
        return FP_ERR_IO;
    }
    return FP_OK;
}

fp_status_t fp_uffd_protect(const fp_uffd_t *u, void *addr, uint64_t len)
{
    return writeprotect(u, addr, len, UFFDIO_WRITEPROTECT_MODE_WP);
}

fp_status_t fp_uffd_unprotect(const fp_uffd_t *u, void *addr, uint64_t len, unsigned flags)
{
    return writeprotect(u, addr, len,
                        flags & FP_UFFD_DONTWAKE ? UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0);
}

fp_status_t fp_uffd_poison(const fp_uffd_t *u, void *addr, uint64_t len, unsigned flags)
{
    struct uffdio_poison p;

    if ((flags & FP_UFFD_CLEAR_WP) &&
        writeprotect(u, addr, len, UFFDIO_WRITEPROTECT_MODE_DONTWAKE) != FP_OK)
        return FP_ERR_IO;

    memset(&p, 0, sizeof(p));
    p.range.start = (uintptr_t)addr;
    p.range.len = len;
    while (ioctl(u->fd, UFFDIO_POISON, &p) < 0) {
        if (errno == EAGAIN && p.updated > 0) {
            p.range.start += (uint64_t)p.updated;
            p.range.len -= (uint64_t)p.updated;
            p.updated = 0;
            continue;
        }
        if (errno == EEXIST) {
            /* Mapped pages keep their (good) bytes; poison the others one by one. */
            uint64_t end = p.range.start + p.range.len;
            for (uint64_t a = p.range.start; a < end; a += 4096) {
                struct uffdio_poison one = p;
                one.range.start = a;
                one.range.len = 4096;
                one.mode = UFFDIO_POISON_MODE_DONTWAKE;
                if (ioctl(u->fd, UFFDIO_POISON, &one) < 0 && errno != EEXIST) {
                    fp_error(u->log, "UFFDIO_POISON %#llx: %s", (unsigned long long)a,
                             strerror(errno));
                    return FP_ERR_IO;
                }
            }
            return fp_uffd_wake(u, addr, len);
        }
        fp_error(u->log, "UFFDIO_POISON %p+%llu: %s", addr, (unsigned long long)len,
                 strerror(errno));
        return FP_ERR_IO;
    }
    return FP_OK;
}

fp_status_t fp_uffd_move(const fp_uffd_t *u, void *dst, void *src, uint64_t len, unsigned flags,
                         uint64_t *moved_p)
{
    struct uffdio_move m;
    int again = 0;

    *moved_p = 0;
    memset(&m, 0, sizeof(m));
    m.dst = (uintptr_t)dst;
    m.src = (uintptr_t)src;
    m.len = len;
    m.mode = flags & FP_UFFD_DONTWAKE ? UFFDIO_MOVE_MODE_DONTWAKE : 0;
    while (ioctl(u->fd, UFFDIO_MOVE, &m) < 0) {
        int err = errno;

        if (m.move > 0) {
            /* Partly done: the rest again. */
            *moved_p += (uint64_t)m.move;
            m.dst += (uint64_t)m.move;
            m.src += (uint64_t)m.move;
            m.len -= (uint64_t)m.move;
        }
        m.move = 0;
        /* EAGAIN: a page was busy (being split, migrated); a few tries, then give up. */
        if (err == EAGAIN && ++again < 100)
            continue;
        if (err == EBUSY || err == EAGAIN)
            return FP_ERR_BUSY; /* not movable now (pinned, shared); the caller copes */
        fp_error(u->log, "UFFDIO_MOVE %#llx -> %#llx +%llu: %s", (unsigned long long)m.src,
                 (unsigned long long)m.dst, (unsigned long long)m.len, strerror(err));
        return FP_ERR_IO;
    }
    *moved_p = len;
    return FP_OK;
}

fp_status_t fp_uffd_wake(const fp_uffd_t *u, void *addr, uint64_t len)
{
    struct uffdio_range range = {(uintptr_t)addr, len};

    if (ioctl(u->fd, UFFDIO_WAKE, &range) < 0) {
        fp_error(u->log, "UFFDIO_WAKE %p+%llu: %s", addr, (unsigned long long)len, strerror(errno));
        return FP_ERR_IO;
    }
    return FP_OK;
}
