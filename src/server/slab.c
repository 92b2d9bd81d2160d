/* SPDX-License-Identifier: MIT */
/* The memory node's slab store; see slab.h. */
#include "slab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/log.h"

#define HUGE_ALIGN (2ull << 20)

static uint32_t slab_index(uint64_t id)
{
    return (uint32_t)id;
}

static uint32_t slab_gen(uint64_t id)
{
    return (uint32_t)(id >> 32);
}

fp_status_t fp_slab_store_init(fp_slab_store_t *store, uint64_t capacity, uint64_t slab_size,
                               const fp_log_t *log)
{
    uint64_t nslots;

    memset(store, 0, sizeof(*store));
    store->log = log;
    if (slab_size < FP_SLAB_MIN_SIZE || slab_size > FP_SLAB_MAX_SIZE ||
        (slab_size & (slab_size - 1)) != 0 || capacity < slab_size)
        return FP_ERR_INVALID_PARAM;
    nslots = capacity / slab_size;
    if (nslots > UINT32_MAX - 1)
        return FP_ERR_INVALID_PARAM;
    store->slabs = calloc(nslots, sizeof(*store->slabs));
    store->free_idx = calloc(nslots, sizeof(*store->free_idx));
    if (store->slabs == NULL || store->free_idx == NULL) {
        free(store->slabs);
        free(store->free_idx);
        return FP_ERR_NO_MEMORY;
    }
    store->capacity = capacity;
    store->slab_size = slab_size;
    store->nslots = (uint32_t)nslots;
    for (uint32_t i = 0; i < store->nslots; i++)
        store->free_idx[i] = store->nslots - 1 - i;
    store->nfree = store->nslots;
    return FP_OK;
}

/* Map @size bytes aligned to 2 MiB when size allows, for transparent huge pages. */
static void *slab_map(uint64_t size)
{
    uint64_t extra = size >= HUGE_ALIGN ? HUGE_ALIGN : 0;
    uint8_t *raw, *base;
    uint64_t head, tail;

    raw = mmap(NULL, size + extra, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    base = raw;
    if (extra != 0)
        base = (uint8_t *)(((uintptr_t)raw + extra - 1) & ~(uintptr_t)(extra - 1));
    head = (uint64_t)(base - raw);
    tail = extra - head;
    if (head > 0)
        munmap(raw, head);
    if (tail > 0)
        munmap(base + size, tail);
    if (extra != 0)
        madvise(base, size, MADV_HUGEPAGE); /* a hint: failure changes nothing */
    return base;
}

static void slab_unmap(fp_slab_store_t *store, fp_slab_t *slab, uint32_t index)
{
    munmap(slab->base, store->slab_size);
    slab->base = NULL;
    store->mapped -= store->slab_size;
    store->free_idx[store->nfree++] = index;
}

fp_status_t fp_slab_store_alloc(fp_slab_store_t *store, const uint8_t *owner, uint64_t region,
                                uint64_t *id_p)
{
    fp_slab_t *slab;
    uint32_t index;

    if (store->nfree == 0 || store->mapped + store->slab_size > store->capacity)
        return FP_ERR_NO_SPACE;
    index = store->free_idx[store->nfree - 1];
    slab = &store->slabs[index];
    slab->base = slab_map(store->slab_size);
    if (slab->base == NULL) {
        fp_error(store->log, "cannot map a slab of %llu bytes: %s",
                 (unsigned long long)store->slab_size, strerror(errno));
        return FP_ERR_NO_MEMORY;
    }
    store->nfree--;
    slab->gen++;
    if (slab->gen == 0)
        slab->gen = 1; /* id 0 is never valid */
    slab->refs = 0;
    slab->live = true;
    slab->region = region;
    if (region == 0)
        memcpy(slab->owner, owner, FP_PROTO_KEY_SIZE);
    else
        memset(slab->owner, 0, FP_PROTO_KEY_SIZE);
    store->mapped += store->slab_size;
    store->nlive++;
    *id_p = ((uint64_t)slab->gen << 32) | index;
    return FP_OK;
}

/* The live slab of @id, or NULL. */
static fp_slab_t *slab_find(fp_slab_store_t *store, uint64_t id)
{
    uint32_t index = slab_index(id);
    fp_slab_t *slab;

    if (index >= store->nslots)
        return NULL;
    slab = &store->slabs[index];
    if (!slab->live || slab->gen != slab_gen(id))
        return NULL;
    return slab;
}

/* May a connection of key @owner with @regions open touch @slab? */
static bool slab_allowed(const fp_slab_t *slab, const uint8_t *owner, const uint64_t *regions,
                         uint32_t nregions)
{
    if (slab->region == 0)
        return memcmp(slab->owner, owner, FP_PROTO_KEY_SIZE) == 0;
    for (uint32_t i = 0; i < nregions; i++) {
        if (regions[i] == slab->region)
            return true;
    }
    return false;
}

static void slab_kill(fp_slab_store_t *store, fp_slab_t *slab, uint64_t id)
{
    slab->live = false;
    store->nlive--;
    if (slab->refs == 0)
        slab_unmap(store, slab, slab_index(id));
}

fp_status_t fp_slab_store_free(fp_slab_store_t *store, const uint8_t *owner, uint64_t id)
{
    fp_slab_t *slab = slab_find(store, id);

    if (slab == NULL)
        return FP_ERR_NO_ENTRY;
    if (slab->region != 0 || !slab_allowed(slab, owner, NULL, 0))
        return FP_ERR_PERMISSION;
    slab_kill(store, slab, id);
    return FP_OK;
}

fp_status_t fp_slab_store_release(fp_slab_store_t *store, uint64_t id)
{
    fp_slab_t *slab = slab_find(store, id);

    if (slab == NULL)
        return FP_ERR_NO_ENTRY;
    slab_kill(store, slab, id);
    return FP_OK;
}

fp_status_t fp_slab_store_access(fp_slab_store_t *store, const uint8_t *owner,
                                 const uint64_t *regions, uint32_t nregions,
                                 const fp_proto_range_t *range, fp_slab_t **slab_p,
                                 uint8_t **addr_p)
{
    fp_slab_t *slab = slab_find(store, range->slab);

    if (slab == NULL)
        return FP_ERR_NO_ENTRY;
    if (!slab_allowed(slab, owner, regions, nregions))
        return FP_ERR_PERMISSION;
    if (range->offset >= store->slab_size || range->length > store->slab_size - range->offset)
        return FP_ERR_OUT_OF_RANGE;
    *slab_p = slab;
    *addr_p = slab->base + range->offset;
    return FP_OK;
}

void fp_slab_unref(fp_slab_store_t *store, fp_slab_t *slab)
{
    if (--slab->refs == 0 && !slab->live && slab->base != NULL)
        slab_unmap(store, slab, (uint32_t)(slab - store->slabs));
}

void fp_slab_store_cleanup(fp_slab_store_t *store)
{
    for (uint32_t i = 0; i < store->nslots; i++) {
        if (store->slabs != NULL && store->slabs[i].base != NULL)
            munmap(store->slabs[i].base, store->slab_size);
    }
    free(store->slabs);
    free(store->free_idx);
    memset(store, 0, sizeof(*store));
}
