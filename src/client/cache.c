/* SPDX-License-Identifier: MIT */
/* What the cache backends share; see cache.h. */
#include "cache.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>

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
