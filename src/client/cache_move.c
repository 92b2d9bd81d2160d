/* SPDX-License-Identifier: MIT */
/*
 * The page-moving cache backend, for read-only mappings; see cache.h.
 *
 * DESIGN
 * The region is an anonymous mapping registered for missing and
 * write-protect faults. Beside it lies a pool of slots, one block in size
 * each, and a block's bytes are received into a slot. At 2 MiB granule each
 * block is one transparent huge page, and UFFDIO_MOVE moves it into the region
 * by its page-table entry: no copy after the socket's, and no allocation,
 * since the page came from the pool and goes back to it when the block leaves
 * the cache (moved back out) as a spare for the next fill. Pool memory is
 * allocated once, the first time a slot is used (or up front, see prefault),
 * and after that recycled: never zeroed, never given back to the kernel while
 * the region is mapped (unless trimmed).
 *
 * Every page is in exactly one place: a slot, or the region. Per block, slot[]
 * names the slot holding its bytes while they are in flight or parked
 * (cached but unmapped, so that the next touch is a fault: the CLOCK access
 * signal, and how a prefetched block's first use is seen), and NO_SLOT while
 * the block is mapped or absent. Slots are either spare (holding a page) or
 * empty. There are never more pages than slots, so a page in the region
 * always finds an empty slot to go back to.
 *
 * Blocks smaller than a huge page are copied into place instead (UFFDIO_COPY,
 * write-protected in the same step): moving small pages costs a TLB flush per
 * move and protection, and measured several times more than allocating and
 * copying them (docs/fault-engine.md). There the pool only stages fills (at
 * most COPY_SPARES idle slots, not counted against the budget) and holds
 * parked blocks, and a block's region pages are allocated when it lands and
 * freed when it leaves.
 *
 * Read-only. The kernel moves pages only between writable mappings, so the
 * region is mapped PROT_READ|PROT_WRITE and read-only is enforced with
 * userfaultfd write-protection: every block is write-protected as it is
 * copied in, or right after it is moved in, and the engine answers a write
 * fault with SIGSEGV. A write by another thread in the instant between a huge
 * block's move and its protection is not caught (it would change only this
 * process's copy: nothing is ever written back from a read-only mapping).
 * Writable mappings use cache_shmem.c, whose CONTINUE maps pages protected in
 * one step: dirty tracking may not have that gap.
 */
#include "cache.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/log.h"
#include "uffd.h"

#define COPY_SPARES 8 /* copying: slots kept ready to stage fills */
#define NO_SLOT     UINT32_MAX
#define LOST_SLOT   (UINT32_MAX - 1) /* its bytes are gone: drop it, fetch it again */
#define POOL_SLACK                                                                                 \
    64 /* slots beyond the budget: fetches in flight while a full cache waits for room */

typedef struct move_cache {
    fp_cache_t base;
    uint8_t *pool; /* nslots slots of granule bytes */
    uint32_t nslots;
    uint32_t *slot;          /* per block: the slot holding its bytes, NO_SLOT or LOST_SLOT */
    uint32_t *spare, nspare; /* a stack of slots holding a page */
    uint32_t *empty, nempty; /* a stack of slots holding none */
    uint8_t *fresh;          /* per slot: taken empty, not populated yet */
    uint8_t *parked;         /* per slot: holds a parked block (not a fill) */
    bool copy;               /* fills are copied into the region, not moved */
} move_cache_t;

static uint8_t *slot_addr(const move_cache_t *m, uint32_t s)
{
    return m->pool + (uint64_t)s * m->base.granule;
}

static uint8_t *block_addr(const move_cache_t *m, uint64_t b)
{
    return m->base.map + fp_cache_block_off(&m->base, b);
}

/* Free the pages of [addr, addr+len): they go back to the kernel. */
static void discard(const move_cache_t *m, void *addr, uint64_t len)
{
    /* Only a bad range fails, which would be a bug here: say so. */
    if (madvise(addr, len, MADV_DONTNEED) != 0)
        fp_error(m->base.log, "region %s: madvise(MADV_DONTNEED) %p+%" PRIu64 ": %s", m->base.name,
                 addr, len, strerror(errno));
}

/* Allocate the pages of [addr, addr+len) now; advice: a failure leaves them to the receive. */
static void populate(void *addr, uint64_t len)
{
    (void)madvise(addr, len, MADV_POPULATE_WRITE);
}

/* Slot @s holds no page any more (what a short last block left is freed too). */
static void slot_emptied(move_cache_t *m, uint32_t s, uint64_t moved_len)
{
    if (moved_len < m->base.granule)
        discard(m, slot_addr(m, s) + moved_len, m->base.granule - moved_len);
    m->parked[s] = 0;
    m->empty[m->nempty++] = s;
}

/* Slot @s, holding @len bytes of pages from its start, becomes a spare: a whole block's worth. */
static void slot_spared(move_cache_t *m, uint32_t s, uint64_t len)
{
    if (len < m->base.granule)
        populate(slot_addr(m, s) + len, m->base.granule - len);
    m->fresh[s] = 0;
    m->parked[s] = 0;
    m->spare[m->nspare++] = s;
}

/* Copying: staging slot @s is free again; a few stay ready, the others go. */
static void staging_done(move_cache_t *m, uint32_t s)
{
    if (m->nspare < COPY_SPARES) {
        m->spare[m->nspare++] = s;
        return;
    }
    discard(m, slot_addr(m, s), m->base.granule);
    m->empty[m->nempty++] = s;
}

/* Free @m and its tables (not its mappings). */
static void move_free(move_cache_t *m)
{
    free(m->slot);
    free(m->spare);
    free(m->empty);
    free(m->fresh);
    free(m->parked);
    free(m);
}

static fp_status_t move_create(const fp_cache_params_t *p, fp_cache_t **cache_p)
{
    move_cache_t *m = calloc(1, sizeof(*m));
    uint64_t nslots = (p->max_blocks < p->nblocks ? p->max_blocks : p->nblocks) + POOL_SLACK;
    fp_status_t status = FP_ERR_NO_MEMORY;

    if (m == NULL)
        return FP_ERR_NO_MEMORY;
    if (nslots > UINT32_MAX - 2)
        nslots = UINT32_MAX - 2;
    m->base.ops = &fp_cache_move_ops;
    m->base.map_size = p->map_size;
    m->base.granule = p->granule;
    m->base.nblocks = p->nblocks;
    m->base.readonly = p->readonly;
    m->base.uffd = p->uffd;
    m->base.name = p->name;
    m->base.log = p->log;
    m->base.map = m->pool = MAP_FAILED;
    m->nslots = (uint32_t)nslots;
    m->slot = malloc(p->nblocks * sizeof(*m->slot));
    m->spare = malloc(nslots * sizeof(*m->spare));
    m->empty = malloc(nslots * sizeof(*m->empty));
    m->fresh = calloc(nslots, 1);
    m->parked = calloc(nslots, 1);
    m->copy = p->granule < FP_CACHE_HUGE;
    if (m->slot == NULL || m->spare == NULL || m->empty == NULL || m->fresh == NULL ||
        m->parked == NULL)
        goto err;
    for (uint64_t b = 0; b < p->nblocks; b++)
        m->slot[b] = NO_SLOT;
    for (uint32_t s = 0; s < m->nslots; s++)
        m->empty[m->nempty++] = m->nslots - 1 - s; /* slot 0 on top */

    status = FP_ERR_IO;
    m->base.prot = PROT_READ | PROT_WRITE; /* see Read-only above */
    m->base.map = fp_cache_map_view(p, m->base.prot, -1);
    if (m->base.map == MAP_FAILED) {
        status = fp_cache_view_failed(p);
        goto err;
    }
    m->pool = fp_cache_map_aligned(nslots * p->granule, PROT_READ | PROT_WRITE, -1);
    if (m->pool == MAP_FAILED) {
        fp_error(p->log, "region %s: mmap of %" PRIu64 " + %" PRIu64 " bytes: %s", p->name,
                 p->map_size, nslots * p->granule, strerror(errno));
        goto err;
    }
    /* Huge pages for whole-huge-page blocks; small ones otherwise, so that a
     * block's pages never have to be split out of a huge page to move. */
    (void)fp_cache_advise_huge(m->base.map, p->map_size, p->granule >= FP_CACHE_HUGE);
    (void)fp_cache_advise_huge(m->pool, nslots * p->granule, p->granule >= FP_CACHE_HUGE);
    /* A child must not see the cache (nothing would keep it coherent). */
    if (madvise(m->base.map, p->map_size, MADV_DONTFORK) != 0 ||
        madvise(m->pool, nslots * p->granule, MADV_DONTFORK) != 0) {
        fp_error(p->log, "region %s: madvise(MADV_DONTFORK): %s", p->name, strerror(errno));
        goto err;
    }
    status = fp_uffd_register(p->uffd, m->base.map, p->map_size, FP_UFFD_MISSING | FP_UFFD_WP);
    if (status != FP_OK)
        goto err;
    /* Pages may only be moved into a range registered on the same userfaultfd:
     * the pool is registered too, for write-protect faults only, which it
     * never takes; its missing pages are allocated by the kernel as usual. */
    status = fp_uffd_register(p->uffd, m->pool, nslots * p->granule, FP_UFFD_WP);
    if (status != FP_OK) {
        fp_uffd_unregister(p->uffd, m->base.map, p->map_size);
        goto err;
    }
    *cache_p = &m->base;
    return FP_OK;

err:
    if (m->base.map != MAP_FAILED)
        munmap(m->base.map, p->map_size);
    if (m->pool != MAP_FAILED)
        munmap(m->pool, nslots * p->granule);
    move_free(m);
    return status;
}

static void move_destroy(fp_cache_t *c)
{
    move_cache_t *m = (move_cache_t *)c;
    uint64_t pool_len = (uint64_t)m->nslots * c->granule;

    fp_uffd_unregister(c->uffd, c->map, c->map_size);
    fp_uffd_unregister(c->uffd, m->pool, pool_len);
    munmap(c->map, c->map_size);
    munmap(m->pool, pool_len);
    move_free(m);
}

static bool move_has_spare(const fp_cache_t *c)
{
    const move_cache_t *m = (const move_cache_t *)c;

    /* Copying, spare slots only stage fills: the region needs new memory. */
    return !m->copy && m->nspare > 0;
}

static uint64_t move_spare_bytes(const fp_cache_t *c)
{
    const move_cache_t *m = (const move_cache_t *)c;

    return move_has_spare(c) ? (uint64_t)m->nspare * c->granule : 0;
}

static fp_status_t move_bind(fp_cache_t *c, uint64_t b, bool *grew_p)
{
    move_cache_t *m = (move_cache_t *)c;
    uint32_t s;

    if (m->nspare > 0) {
        s = m->spare[--m->nspare];
        *grew_p = false;
    } else if (m->nempty > 0) {
        s = m->empty[--m->nempty];
        m->fresh[s] = 1;
        *grew_p = true;
    } else {
        return FP_ERR_NO_SPACE;
    }
    if (m->copy)
        *grew_p = true; /* the region's pages, allocated when the block lands */
    m->parked[s] = 0;
    m->slot[b] = s;
    return FP_OK;
}

static uint8_t *move_data(fp_cache_t *c, uint64_t b, uint64_t off)
{
    move_cache_t *m = (move_cache_t *)c;

    return slot_addr(m, m->slot[b]) + (off - fp_cache_block_off(c, b));
}

static void move_populate(fp_cache_t *c, uint64_t b)
{
    move_cache_t *m = (move_cache_t *)c;
    uint32_t s = m->slot[b];

    if (s < m->nslots && m->fresh[s]) {
        m->fresh[s] = 0;
        populate(slot_addr(m, s), c->granule);
    }
}

/* Put the whole of block @b from its slot into the region, protected; wake its waiters. */
static fp_status_t move_map(fp_cache_t *c, uint64_t b, uint64_t off, uint64_t len, bool wp)
{
    move_cache_t *m = (move_cache_t *)c;
    uint64_t blen = fp_cache_block_len(c, b), moved;
    uint32_t s = m->slot[b];
    fp_status_t status;

    (void)off;
    (void)len;
    (void)wp; /* read-only: always protected */
    if (s == LOST_SLOT)
        return FP_ERR_NO_ENTRY;
    if (s == NO_SLOT)
        return fp_uffd_wake(c->uffd, block_addr(m, b), blen); /* mapped already */
    m->fresh[s] = 0;
    if (m->copy && !m->parked[s]) {
        /* A fill: copied into new pages, protected and woken in one step; the
         * slot stages the next fill. */
        status = fp_uffd_copy(c->uffd, block_addr(m, b), slot_addr(m, s), blen, FP_UFFD_PROTECT);
        if (status != FP_OK)
            return status;
        m->slot[b] = NO_SLOT;
        staging_done(m, s);
        return FP_OK;
    }
    status =
        fp_uffd_move(c->uffd, block_addr(m, b), slot_addr(m, s), blen, FP_UFFD_DONTWAKE, &moved);
    if (status == FP_OK)
        status = fp_uffd_protect(c->uffd, block_addr(m, b), blen);
    if (status != FP_OK) {
        if (status == FP_ERR_BUSY)
            fp_error(c->log,
                     "region %s: the kernel would not move the pages of block %" PRIu64 " in",
                     c->name, b);
        return status; /* the engine fails the block: fail() cleans both places */
    }
    m->slot[b] = NO_SLOT;
    slot_emptied(m, s, blen);
    return fp_uffd_wake(c->uffd, block_addr(m, b), blen);
}

static bool move_can_map_part(const fp_cache_t *c)
{
    (void)c;
    return false;
}

/* Park block @b, mapped: move its pages out to an empty slot. */
static bool move_unmap(fp_cache_t *c, uint64_t b)
{
    move_cache_t *m = (move_cache_t *)c;
    uint64_t blen = fp_cache_block_len(c, b), moved, back;
    uint32_t s;

    if (m->slot[b] != NO_SLOT || m->nempty == 0)
        return false;
    s = m->empty[--m->nempty];
    if (fp_uffd_move(c->uffd, slot_addr(m, s), block_addr(m, b), blen, FP_UFFD_DONTWAKE, &moved) ==
        FP_OK) {
        m->fresh[s] = 0;
        m->parked[s] = 1;
        m->slot[b] = s;
        return true;
    }
    /* A page would not move (pinned by I/O, say): put back those that did. */
    if (moved > 0 && fp_uffd_move(c->uffd, block_addr(m, b), slot_addr(m, s), moved,
                                  FP_UFFD_DONTWAKE, &back) != FP_OK) {
        /* Cannot happen with pages just moved; if it does, the block's bytes are
         * split between two places: give them up, the engine fetches again. */
        fp_error(c->log, "region %s: cannot put the pages of block %" PRIu64 " back; dropping it",
                 c->name, b);
        discard(m, block_addr(m, b), blen);
        discard(m, slot_addr(m, s), c->granule);
        m->slot[b] = LOST_SLOT;
    }
    m->empty[m->nempty++] = s;
    return false;
}

static bool move_refaults_missing(const fp_cache_t *c)
{
    (void)c;
    return true;
}

static uint64_t move_drop(fp_cache_t *c, uint64_t b)
{
    move_cache_t *m = (move_cache_t *)c;
    uint64_t blen = fp_cache_block_len(c, b), moved;
    uint32_t s = m->slot[b];

    m->slot[b] = NO_SLOT;
    if (s == LOST_SLOT)
        return c->granule; /* freed when it was lost */
    if (s != NO_SLOT && m->fresh[s]) {
        /* Bound but never populated (its fetch failed early): it may have holes. */
        discard(m, slot_addr(m, s), c->granule);
        m->fresh[s] = 0;
        m->empty[m->nempty++] = s;
        return c->granule;
    }
    if (s != NO_SLOT && m->copy) {
        if (m->parked[s]) {
            /* The block's own pages: they go. */
            discard(m, slot_addr(m, s), c->granule);
            m->parked[s] = 0;
            m->empty[m->nempty++] = s;
        } else {
            staging_done(m, s); /* a fill given up: the slot stages the next */
        }
        return c->granule;
    }
    if (s != NO_SLOT) {
        slot_spared(m, s, blen); /* parked, or never mapped: its page is a spare now */
        return 0;
    }
    if (m->copy) {
        discard(m, block_addr(m, b), blen);
        return c->granule;
    }
    if (m->nempty == 0) {
        discard(m, block_addr(m, b), blen);
        return c->granule;
    }
    s = m->empty[--m->nempty];
    if (fp_uffd_move(c->uffd, slot_addr(m, s), block_addr(m, b), blen, FP_UFFD_DONTWAKE, &moved) ==
        FP_OK) {
        slot_spared(m, s, blen);
        return 0;
    }
    /* Not movable (pinned): let the kernel have the pages, and the slot stays empty. */
    discard(m, block_addr(m, b), blen);
    discard(m, slot_addr(m, s), c->granule);
    m->empty[m->nempty++] = s;
    return c->granule;
}

static uint64_t move_fail(fp_cache_t *c, uint64_t b)
{
    move_cache_t *m = (move_cache_t *)c;
    uint64_t blen = fp_cache_block_len(c, b), freed = 0;
    uint32_t s = m->slot[b];

    m->slot[b] = NO_SLOT;
    if (s < m->nslots) {
        /* Whatever landed goes, in the slot and whatever part moved in. */
        discard(m, block_addr(m, b), blen);
        discard(m, slot_addr(m, s), c->granule);
        m->fresh[s] = 0;
        m->parked[s] = 0;
        m->empty[m->nempty++] = s;
        freed = c->granule;
    }
    /* Without a slot the block was never bound (its bind failed): nothing was
     * counted for it, in either mode, so nothing goes back. */
    fp_uffd_poison(c->uffd, block_addr(m, b), blen, 0); /* read-only: no uffd-wp markers */
    return freed;
}

static uint64_t move_trim(fp_cache_t *c, uint64_t bytes)
{
    move_cache_t *m = (move_cache_t *)c;
    uint64_t freed = 0;

    while (freed < bytes && m->nspare > 0) {
        uint32_t s = m->spare[--m->nspare];

        discard(m, slot_addr(m, s), c->granule);
        m->empty[m->nempty++] = s;
        freed += c->granule;
    }
    return freed;
}

static uint64_t move_prefault(fp_cache_t *c, uint64_t bytes)
{
    move_cache_t *m = (move_cache_t *)c;
    uint64_t taken = 0;

    if (m->copy)
        return 0; /* a copied block's pages are allocated as it lands */
    while (taken + c->granule <= bytes && m->nempty > 0) {
        uint32_t s = m->empty[m->nempty - 1];

        if (madvise(slot_addr(m, s), c->granule, MADV_POPULATE_WRITE) != 0)
            break;
        m->nempty--;
        m->spare[m->nspare++] = s;
        taken += c->granule;
    }
    return taken;
}

const fp_cache_ops_t fp_cache_move_ops = {
    .name = "move",
    .create = move_create,
    .destroy = move_destroy,
    .has_spare = move_has_spare,
    .spare_bytes = move_spare_bytes,
    .bind = move_bind,
    .data = move_data,
    .populate = move_populate,
    .map = move_map,
    .can_map_part = move_can_map_part,
    .unmap = move_unmap,
    .refaults_missing = move_refaults_missing,
    .drop = move_drop,
    .fail = move_fail,
    .trim = move_trim,
    .prefault = move_prefault,
};
