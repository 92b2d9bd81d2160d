/* SPDX-License-Identifier: MIT */
/*
 * The memory node's slab store: the donated memory, cut into equal slabs.
 *
 * DESIGN
 * A slab is one anonymous mapping of slab_size bytes, aligned to 2 MiB and
 * advised MADV_HUGEPAGE, so that the kernel can back it with transparent huge
 * pages; it costs nothing until written. A slab id is (generation << 32 |
 * index): the index finds the descriptor in O(1), the generation makes an id
 * useless once its slab is freed, so a stale id never reaches reused memory.
 *
 * A slab is either private to an owner key (the client key of its allocator)
 * or belongs to a named region (region.h), which owns it on behalf of every
 * connection that opened the region. Every data access is checked for owner
 * (or open region) and bounds by fp_slab_store_access().
 *
 * Replies are sent straight from slab memory, so a slab carries a reference
 * count of the replies (and receives) that point into it; freeing a slab with
 * references outstanding makes it unreachable at once and unmaps it when the
 * last reference goes. Capacity is counted until the memory is unmapped.
 *
 * Thread safety: none; the store belongs to the server's event loop thread.
 */
#ifndef FP_SERVER_SLAB_H
#define FP_SERVER_SLAB_H

#include <stdbool.h>
#include <stdint.h>

#include <farpool/status.h>

#include "common/log.h"
#include "proto/proto.h"

typedef struct fp_slab {
    uint8_t *base;
    uint8_t owner[FP_PROTO_KEY_SIZE]; /* private slabs: the owner's client key */
    uint64_t region;                  /* 0: private; else the id of the region it belongs to */
    uint32_t gen;                     /* generation of the id now (or last) using this index */
    uint32_t refs;                    /* replies or receives pointing into base */
    bool live;                        /* allocated and not freed */
} fp_slab_t;

typedef struct fp_slab_store {
    uint64_t capacity;  /* bytes that may be mapped at once */
    uint64_t slab_size; /* bytes per slab, a power of two */
    uint64_t mapped;    /* bytes mapped now (live slabs and freed ones still referenced) */
    uint32_t nlive;     /* live slabs */
    uint32_t nslots;    /* capacity / slab_size descriptors */
    fp_slab_t *slabs;
    uint32_t *free_idx; /* stack of unused descriptor indexes */
    uint32_t nfree;
    const fp_log_t *log; /* where allocation failures are said */
} fp_slab_store_t;

#define FP_SLAB_MIN_SIZE (64ull << 10)
#define FP_SLAB_MAX_SIZE (1ull << 30)

/*
 * Prepare a store of @capacity bytes in slabs of @slab_size (a power of two
 * in [FP_SLAB_MIN_SIZE, FP_SLAB_MAX_SIZE], at most @capacity). No memory is
 * mapped until slabs are allocated.
 */
fp_status_t fp_slab_store_init(fp_slab_store_t *store, uint64_t capacity, uint64_t slab_size,
                               const fp_log_t *log);

/* Unmap every slab and free the descriptors. */
void fp_slab_store_cleanup(fp_slab_store_t *store);

/*
 * Allocate a slab, private to @owner when @region is 0, else belonging to
 * region @region (@owner is then ignored and may be NULL).
 * FP_ERR_NO_SPACE at capacity, FP_ERR_NO_MEMORY if mmap fails.
 */
fp_status_t fp_slab_store_alloc(fp_slab_store_t *store, const uint8_t *owner, uint64_t region,
                                uint64_t *id_p);

/*
 * Free private slab @id of @owner. FP_ERR_NO_ENTRY, FP_ERR_PERMISSION (another
 * key's slab, or a region's: those go with their region only).
 */
fp_status_t fp_slab_store_free(fp_slab_store_t *store, const uint8_t *owner, uint64_t id);

/*
 * Free slab @id of a region, without an owner check (the region module's
 * own). FP_ERR_NO_ENTRY if @id is not a live slab.
 */
fp_status_t fp_slab_store_release(fp_slab_store_t *store, uint64_t id);

/*
 * Check that a connection with client key @owner and the @nregions regions of
 * @regions open may access @range, and return its slab and the address of its
 * first byte. FP_ERR_NO_ENTRY (no such slab), FP_ERR_PERMISSION (another
 * key's, or of a region not open), FP_ERR_OUT_OF_RANGE (past the slab's end).
 */
fp_status_t fp_slab_store_access(fp_slab_store_t *store, const uint8_t *owner,
                                 const uint64_t *regions, uint32_t nregions,
                                 const fp_proto_range_t *range, fp_slab_t **slab_p,
                                 uint8_t **addr_p);

/* Take and drop a reference to memory of @slab. */
static inline void fp_slab_ref(fp_slab_t *slab)
{
    slab->refs++;
}
void fp_slab_unref(fp_slab_store_t *store, fp_slab_t *slab);

#endif /* FP_SERVER_SLAB_H */
