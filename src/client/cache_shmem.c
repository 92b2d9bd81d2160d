/* SPDX-License-Identifier: MIT */
/*
 * The shmem cache backend; see cache.h.
 *
 * DESIGN
 * The local copy of a region is a memfd the size of the region, mapped twice:
 * the application's mapping (map) is registered with userfaultfd for missing,
 * minor and (writable regions) write-protect faults; the engine's own mapping
 * (stage) is not. Fetched bytes are received from the socket straight into
 * stage, that is into the memfd's page cache, and UFFDIO_CONTINUE then maps
 * those pages into map: no copy after the socket's, however large the granule.
 * Unmapping a block drops its page-table entries in map and keeps its pages,
 * so its next use is a minor fault; dropping it punches a hole in the memfd.
 * At 2 MiB granule each block is one shmem huge page where the system allows
 * them (transparent_hugepage/shmem_enabled).
 */
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "uffd.h"

typedef struct shmem_cache {
    fp_cache_t base;
    int memfd;
    uint8_t *stage; /* the engine's view of the same pages */
} shmem_cache_t;

#define SHMEM_THP_PATH "/sys/kernel/mm/transparent_hugepage/shmem_enabled"

/*
 * Whether the system lets a memfd be backed by huge pages when asked with
 * MADV_HUGEPAGE: the bracketed choice of SHMEM_THP_PATH is not "never" or
 * "deny". Said once per process when it does not, with the way out.
 */
static void check_shmem_thp(fp_log_t *log)
{
    char line[256] = "";
    const char *choice;
    FILE *f = fopen(SHMEM_THP_PATH, "re");

    if (f == NULL)
        return;
    if (fgets(line, sizeof(line), f) == NULL)
        line[0] = '\0';
    fclose(f);
    choice = strchr(line, '[');
    if (choice == NULL || (strncmp(choice, "[never]", 7) != 0 && strncmp(choice, "[deny]", 6) != 0))
        return;
    if (fp_log_once(log, FP_LOG_ONCE_SHMEM_THP))
        fp_info(log,
                "shmem huge pages are off (%s: %.7s): each 2 MiB block of a writable mapping is "
                "filled as 512 small pages, several times slower; as root, 'echo advise > %s' "
                "lets farpool use them",
                SHMEM_THP_PATH, choice, SHMEM_THP_PATH);
}

static fp_status_t shmem_create(const fp_cache_params_t *p, fp_cache_t **cache_p)
{
    shmem_cache_t *s = calloc(1, sizeof(*s));
    uint64_t modes = FP_UFFD_MISSING | FP_UFFD_MINOR | (p->readonly ? 0 : FP_UFFD_WP);
    fp_status_t status = FP_ERR_IO;

    if (s == NULL)
        return FP_ERR_NO_MEMORY;
    s->base.ops = &fp_cache_shmem_ops;
    s->base.map_size = p->map_size;
    s->base.granule = p->granule;
    s->base.nblocks = p->nblocks;
    s->base.readonly = p->readonly;
    s->base.uffd = p->uffd;
    s->base.name = p->name;
    s->base.log = p->log;
    s->base.map = s->stage = MAP_FAILED;
    s->memfd = memfd_create(p->name, MFD_CLOEXEC);
    if (s->memfd < 0 || ftruncate(s->memfd, (off_t)p->map_size) < 0) {
        fp_error(p->log, "region %s: memfd of %" PRIu64 " bytes: %s", p->name, p->map_size,
                 strerror(errno));
        goto err;
    }
    s->base.prot = PROT_READ | (p->readonly ? 0 : PROT_WRITE);
    s->base.map = fp_cache_map_view(p, s->base.prot, s->memfd);
    if (s->base.map == MAP_FAILED) {
        status = fp_cache_view_failed(p);
        goto err;
    }
    s->stage = fp_cache_map_aligned(p->map_size, PROT_READ | PROT_WRITE, s->memfd);
    if (s->stage == MAP_FAILED) {
        fp_error(p->log, "region %s: mmap of %" PRIu64 " bytes: %s", p->name, p->map_size,
                 strerror(errno));
        goto err;
    }
    if (p->granule >= FP_CACHE_HUGE) {
        /* Whole blocks are whole huge pages: one allocation per block instead
         * of 512 (where shmem THP is allowed; see docs/fault-engine.md). */
        (void)fp_cache_advise_huge(s->base.map, p->map_size, true);
        (void)fp_cache_advise_huge(s->stage, p->map_size, true);
        check_shmem_thp(p->log);
    }
    /* A child must not see the cache (nothing would keep it coherent). */
    if (madvise(s->base.map, p->map_size, MADV_DONTFORK) != 0 ||
        madvise(s->stage, p->map_size, MADV_DONTFORK) != 0) {
        fp_error(p->log, "region %s: madvise(MADV_DONTFORK): %s", p->name, strerror(errno));
        goto err;
    }
    status = fp_uffd_register(p->uffd, s->base.map, p->map_size, modes);
    if (status != FP_OK)
        goto err;
    *cache_p = &s->base;
    return FP_OK;

err:
    if (s->base.map != MAP_FAILED)
        munmap(s->base.map, p->map_size);
    if (s->stage != MAP_FAILED)
        munmap(s->stage, p->map_size);
    if (s->memfd >= 0)
        close(s->memfd);
    free(s);
    return status;
}

static void shmem_destroy(fp_cache_t *c)
{
    shmem_cache_t *s = (shmem_cache_t *)c;

    fp_uffd_unregister(c->uffd, c->map, c->map_size);
    munmap(c->map, c->map_size);
    munmap(s->stage, c->map_size);
    close(s->memfd);
    free(s);
}

static bool shmem_has_spare(const fp_cache_t *c)
{
    (void)c;
    return false;
}

static uint64_t shmem_spare_bytes(const fp_cache_t *c)
{
    (void)c;
    return 0;
}

static fp_status_t shmem_bind(fp_cache_t *c, uint64_t b, bool *grew_p)
{
    (void)c;
    (void)b;
    *grew_p = true;
    return FP_OK;
}

static uint8_t *shmem_data(fp_cache_t *c, uint64_t b, uint64_t off)
{
    (void)b;
    return ((shmem_cache_t *)c)->stage + off;
}

static void shmem_populate(fp_cache_t *c, uint64_t b)
{
    /* Advice: a failure leaves the allocation to the receive. */
    (void)madvise(((shmem_cache_t *)c)->stage + fp_cache_block_off(c, b), fp_cache_block_len(c, b),
                  MADV_POPULATE_WRITE);
}

static fp_status_t shmem_map(fp_cache_t *c, uint64_t b, uint64_t off, uint64_t len, bool wp)
{
    uint64_t start = off & ~(uint64_t)(FP_CACHE_PAGE - 1);
    uint64_t end = (off + len + FP_CACHE_PAGE - 1) & ~(uint64_t)(FP_CACHE_PAGE - 1);

    (void)b;
    if (end > c->map_size)
        end = c->map_size;
    return fp_uffd_continue(c->uffd, c->map + start, end - start,
                            wp && !c->readonly ? FP_UFFD_PROTECT : 0);
}

static bool shmem_can_map_part(const fp_cache_t *c)
{
    (void)c;
    return true;
}

static bool shmem_unmap(fp_cache_t *c, uint64_t b)
{
    return madvise(c->map + fp_cache_block_off(c, b), fp_cache_block_len(c, b), MADV_DONTNEED) == 0;
}

static bool shmem_refaults_missing(const fp_cache_t *c)
{
    (void)c;
    return false;
}

static uint64_t shmem_drop(fp_cache_t *c, uint64_t b)
{
    if (fallocate(((shmem_cache_t *)c)->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)fp_cache_block_off(c, b), (off_t)fp_cache_block_len(c, b)) != 0) {
        /* Its pages stay in the memfd (the next fill of the block reuses them). */
        fp_warn(c->log, "region %s: cannot free block %" PRIu64 ": %s", c->name, b,
                strerror(errno));
        return 0;
    }
    return c->granule;
}

static uint64_t shmem_fail(fp_cache_t *c, uint64_t b)
{
    uint64_t freed = shmem_drop(c, b);

    /* A block written back before was write-protected: the hole punch left a
     * uffd-wp marker in each of its page table entries (cleared first). */
    fp_uffd_poison(c->uffd, c->map + fp_cache_block_off(c, b), fp_cache_block_len(c, b),
                   c->readonly ? 0 : FP_UFFD_CLEAR_WP);
    return freed;
}

static uint64_t shmem_none(fp_cache_t *c, uint64_t bytes)
{
    (void)c;
    (void)bytes;
    return 0;
}

const fp_cache_ops_t fp_cache_shmem_ops = {
    .name = "shmem",
    .create = shmem_create,
    .destroy = shmem_destroy,
    .has_spare = shmem_has_spare,
    .spare_bytes = shmem_spare_bytes,
    .bind = shmem_bind,
    .data = shmem_data,
    .populate = shmem_populate,
    .map = shmem_map,
    .can_map_part = shmem_can_map_part,
    .unmap = shmem_unmap,
    .refaults_missing = shmem_refaults_missing,
    .drop = shmem_drop,
    .fail = shmem_fail,
    .trim = shmem_none,
    .prefault = shmem_none,
};
