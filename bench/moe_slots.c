/* SPDX-License-Identifier: MIT */
/* `farpool-bench moe`: expert-sized buffers; see moe_slots.h. */
#include "moe_slots.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench_common.h"
#include "moe_proc.h"

/* Anonymous memory of @len bytes. NULL (said) on failure. */
void *moe_alloc(uint64_t len, const char *what)
{
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED) {
        moe_err("cannot allocate %" PRIu64 " MiB for %s: %s", (uint64_t)(len / MIB), what,
                strerror(errno));
        return NULL;
    }
    return p;
}

fp_status_t moe_slots_init(moe_slots_t *sl, unsigned experts, unsigned slots, uint64_t size)
{
    memset(sl, 0, sizeof(*sl));
    sl->nslots = slots;
    sl->size = size;
    sl->slot_of = malloc(experts * sizeof(*sl->slot_of));
    sl->owner = malloc(slots * sizeof(*sl->owner));
    if (sl->slot_of == NULL || sl->owner == NULL) {
        moe_err("out of memory");
        moe_slots_cleanup(sl);
        return FP_ERR_NO_MEMORY;
    }
    sl->base = moe_alloc((uint64_t)slots * size, "the expert buffers");
    if (sl->base == NULL) {
        moe_slots_cleanup(sl);
        return FP_ERR_NO_MEMORY;
    }
    /* Written once, so no load takes a page fault on them. */
    memset(sl->base, 0, (size_t)slots * size);
    sl->experts = experts;
    moe_slots_reset(sl);
    return FP_OK;
}

void moe_slots_reset(moe_slots_t *sl)
{
    for (unsigned e = 0; e < sl->experts; e++)
        sl->slot_of[e] = -1;
    for (unsigned i = 0; i < sl->nslots; i++)
        sl->owner[i] = -1;
}

uint8_t *moe_slots_take(moe_slots_t *sl, unsigned e)
{
    for (unsigned i = 0; i < sl->nslots; i++) {
        if (sl->owner[i] < 0) {
            sl->owner[i] = (int)e;
            sl->slot_of[e] = (int)i;
            return sl->base + (size_t)i * sl->size;
        }
    }
    moe_err("internal: no free buffer to load expert %u into", e);
    return NULL;
}

void moe_slots_give(moe_slots_t *sl, unsigned e)
{
    if (sl->slot_of[e] >= 0)
        sl->owner[sl->slot_of[e]] = -1;
    sl->slot_of[e] = -1;
}

const void *moe_slots_get(moe_slots_t *sl, unsigned e)
{
    return sl->slot_of[e] < 0 ? NULL : sl->base + (size_t)sl->slot_of[e] * sl->size;
}

void moe_slots_cleanup(moe_slots_t *sl)
{
    if (sl->base != NULL)
        munmap(sl->base, (size_t)sl->nslots * sl->size);
    free(sl->slot_of);
    free(sl->owner);
    memset(sl, 0, sizeof(*sl));
}
