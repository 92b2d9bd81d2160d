/* SPDX-License-Identifier: MIT */
/*
 * The local memory of a mapped region: where fetched blocks land, how they
 * are made visible to the application and taken away again. The fault engine
 * (engine.c) decides what to fetch, keep and evict; a cache backend carries
 * it out on memory. Two backends sit behind this ops table:
 *
 *   cache_shmem.c  a memfd the size of the region, mapped twice; bytes land in
 *                  its page cache and UFFDIO_CONTINUE maps them. Every mapping
 *                  mode, writes and dirty tracking included; a dropped block's
 *                  memory goes back to the system, a new one is allocated.
 *   cache_move.c   read-only mappings, where the kernel can move pages
 *                  (UFFDIO_MOVE, Linux 6.8): bytes land in a pool; 2 MiB
 *                  blocks are huge pages moved into the region and back out,
 *                  so memory is allocated once and recycled, never zeroed
 *                  again; smaller blocks are copied into place
 *                  (UFFDIO_COPY), protected in the same step.
 *
 * Memory accounting. A backend either gives a dropped block's memory back to
 * the system (shmem) or keeps it as a spare page for the next fill (move).
 * fp_cache_bind() says when a fill takes new memory, fp_cache_drop() and
 * fp_cache_trim() how much went back; the engine counts those against the
 * context's budget.
 *
 * Thread safety: none; a cache is used by its engine's thread only (create and
 * destroy by whoever starts and stops the engine).
 */
#ifndef FP_CLIENT_CACHE_H
#define FP_CLIENT_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include <farpool/status.h>

#include "common/log.h"
#include "uffd.h"

#define FP_CACHE_PAGE 4096u
#define FP_CACHE_HUGE (2u << 20) /* a PMD-mapped huge page */

typedef struct fp_cache fp_cache_t;

typedef struct fp_cache_params {
    const char *name;      /* the region's, for logs; outlives the cache */
    fp_log_t *log;         /* where the backend logs */
    const fp_uffd_t *uffd; /* the engine's userfaultfd; outlives the cache */
    uint64_t map_size;     /* the region's size rounded up to a page */
    uint64_t granule;      /* block size, a power of two from 4 KiB to 2 MiB */
    uint64_t nblocks;
    uint64_t max_blocks; /* blocks the budget can hold: sizes the move backend's pool */
    bool readonly;
    uint64_t fixed_addr; /* the application's view goes exactly here (FARPOOL_REGION_FIXED); 0:
                            anywhere */
} fp_cache_params_t;

typedef struct fp_cache_ops {
    const char *name;
    /* Create the application's mapping (registered on p->uffd) and what backs it. */
    fp_status_t (*create)(const fp_cache_params_t *p, fp_cache_t **cache_p);
    /* Unregister and unmap everything; the memory goes back to the system. */
    void (*destroy)(fp_cache_t *c);
    /* True if memory of a dropped block is kept for the next fill. */
    bool (*has_spare)(const fp_cache_t *c);
    /* Bytes of such spare memory held now, which trim() could give back. */
    uint64_t (*spare_bytes)(const fp_cache_t *c);
    /*
     * Give memory to block @b, about to be fetched. Sets *@grew_p when that is
     * new memory (count it) rather than a spare. FP_ERR_NO_SPACE if the backend
     * has no room left for a block (the engine evicts and tries again).
     */
    fp_status_t (*bind)(fp_cache_t *c, uint64_t b, bool *grew_p);
    /* Where region byte @off of block @b, bound, lands or is read from. */
    uint8_t *(*data)(fp_cache_t *c, uint64_t b, uint64_t off);
    /* Allocate block @b's pages now, while its bytes are on the wire. */
    void (*populate)(fp_cache_t *c, uint64_t b);
    /*
     * Make region bytes [@off, @off+@len) of block @b, landed, visible;
     * write-protected if @wp; wake the threads waiting on them. A backend
     * without partial maps (can_map_part false) maps the whole block whatever
     * the range. A block with nothing left to map is only woken.
     */
    fp_status_t (*map)(fp_cache_t *c, uint64_t b, uint64_t off, uint64_t len, bool wp);
    /* True if part of a block can be mapped on its own, cheaply (head first, sentinels). */
    bool (*can_map_part)(const fp_cache_t *c);
    /*
     * Take block @b, cached, out of the application's view, keeping its bytes:
     * its next use is a fault the engine sees (the CLOCK access signal). False
     * if that could not be done (the block stays mapped).
     */
    bool (*unmap)(fp_cache_t *c, uint64_t b);
    /* True if a missing-page fault on a cached block means it is unmapped (not in transit). */
    bool (*refaults_missing)(const fp_cache_t *c);
    /* Block @b leaves the cache. Returns the bytes given back to the system. */
    uint64_t (*drop)(fp_cache_t *c, uint64_t b);
    /* Block @b, bound, could not be fetched: drop it and make every access SIGBUS. */
    uint64_t (*fail)(fp_cache_t *c, uint64_t b);
    /* Give spare memory back to the system, up to @bytes; returns how much went. */
    uint64_t (*trim)(fp_cache_t *c, uint64_t bytes);
    /* Allocate up to @bytes of spare memory now; returns how much was taken. */
    uint64_t (*prefault)(fp_cache_t *c, uint64_t bytes);
} fp_cache_ops_t;

/* What every backend's object starts with. */
struct fp_cache {
    const fp_cache_ops_t *ops;
    uint8_t *map; /* the application's view of the region */
    int prot;     /* the view's protection, as mapped (mmap's PROT_*) */
    uint64_t map_size, granule, nblocks;
    bool readonly;
    const char *name;
    fp_log_t *log;
    const fp_uffd_t *uffd;
};

extern const fp_cache_ops_t fp_cache_shmem_ops;
extern const fp_cache_ops_t fp_cache_move_ops;

static inline uint64_t fp_cache_block_off(const fp_cache_t *c, uint64_t b)
{
    return b * c->granule;
}

/* Page-rounded length of block @b, as mapped. */
static inline uint64_t fp_cache_block_len(const fp_cache_t *c, uint64_t b)
{
    uint64_t off = fp_cache_block_off(c, b);

    return c->map_size - off < c->granule ? c->map_size - off : c->granule;
}

/*
 * Ask for transparent huge pages over [@addr, @addr+@len) (@huge) or for
 * none (MADV_NOHUGEPAGE). Advice only: where the system refuses it (THP
 * disabled), blocks are filled as small pages, slower but correct; false then.
 */
bool fp_cache_advise_huge(void *addr, uint64_t len, bool huge);

/*
 * Map @len bytes at a 2 MiB-aligned address (so that huge pages can back
 * whole blocks): of @fd if >= 0 (shared), else anonymous and private.
 * MAP_FAILED on failure, errno set.
 */
uint8_t *fp_cache_map_aligned(uint64_t len, int prot, int fd);

/*
 * The application's view of @p's region (p->map_size bytes): at
 * p->fixed_addr if set, never replacing what is mapped there (MAP_FAILED
 * with errno EEXIST if the range is taken), else as fp_cache_map_aligned().
 */
uint8_t *fp_cache_map_view(const fp_cache_params_t *p, int prot, int fd);

/* The status and log line of a failed fp_cache_map_view() (errno says why). */
fp_status_t fp_cache_view_failed(const fp_cache_params_t *p);

#endif /* FP_CLIENT_CACHE_H */
