/* SPDX-License-Identifier: MIT */
/* What the cache backends share; see cache.h. */
#include "cache.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "common/log.h"

bool fp_cache_advise_huge(void *addr, uint64_t len, bool huge)
{
    return madvise(addr, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == 0;
}

uint8_t *fp_cache_map_aligned(uint64_t len, int prot, int fd)
{
    const uint64_t align = FP_CACHE_HUGE;
    uint8_t *r, *a;

    r = mmap(NULL, len + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED)
        return MAP_FAILED;
    a = (uint8_t *)(((uintptr_t)r + align - 1) & ~(uintptr_t)(align - 1));
    if (mmap(a, len, prot,
             fd >= 0 ? MAP_SHARED | MAP_FIXED
                     : MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
             fd, 0) == MAP_FAILED) {
        munmap(r, len + align);
        return MAP_FAILED;
    }
    if (a > r)
        munmap(r, (size_t)(a - r));
    if (r + len + align > a + len)
        munmap(a + len, (size_t)(r + len + align - (a + len)));
    return a;
}

uint8_t *fp_cache_map_view(const fp_cache_params_t *p, int prot, int fd)
{
    int flags = fd >= 0 ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
    uint8_t *want = (uint8_t *)(uintptr_t)p->fixed_addr, *a;

    if (p->fixed_addr == 0)
        return fp_cache_map_aligned(p->map_size, prot, fd);
    a = mmap(want, p->map_size, prot, flags | MAP_FIXED_NOREPLACE, fd, 0);
    if (a != MAP_FAILED && a != want) {
        munmap(a, p->map_size); /* a kernel without MAP_FIXED_NOREPLACE took it as a hint */
        errno = EEXIST;
        return MAP_FAILED;
    }
    return a;
}

fp_status_t fp_cache_view_failed(const fp_cache_params_t *p)
{
    if (p->fixed_addr != 0 && errno == EEXIST) {
        fp_error(p->log,
                 "region %s: its fixed address range 0x%" PRIx64 "-0x%" PRIx64
                 " is taken in this process; it cannot be mapped here",
                 p->name, p->fixed_addr, p->fixed_addr + p->map_size);
        return FP_ERR_IN_USE;
    }
    fp_error(p->log, "region %s: mmap of %" PRIu64 " bytes: %s", p->name, p->map_size,
             strerror(errno));
    return FP_ERR_IO;
}
