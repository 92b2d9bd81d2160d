/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench moe`: the local stores, DRAM and the disk file (through mmap
 * and through O_DIRECT); see moe_store.h.
 */
#include "moe_store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench_common.h"
#include "moe_proc.h"
#include "moe_slots.h"
#include "moe_trace.h"

#define FILL_CHUNK  (16 * MIB) /* bytes generated and written at a time */
#define DIRECT_IO   (16 * MIB) /* bytes per O_DIRECT read() */
#define DISK_MARGIN GIB        /* free disk left over after the file */

void moe_store_destroy(moe_store_t *s)
{
    if (s != NULL)
        s->ops->destroy(s);
}

/* ------------------------------------------------------------------------ */
/* Local DRAM: every expert resident, nothing to load                        */
/* ------------------------------------------------------------------------ */

typedef struct dram_store {
    moe_store_t base;
    uint8_t *mem; /* experts x size */
} dram_store_t;

static fp_status_t dram_nothing(moe_store_t *s)
{
    (void)s;
    return FP_OK;
}

static fp_status_t dram_nothing_e(moe_store_t *s, unsigned e)
{
    (void)s;
    (void)e;
    return FP_OK;
}

static const void *dram_expert(moe_store_t *s, unsigned e)
{
    return ((dram_store_t *)s)->mem + (size_t)e * s->size;
}

static void no_sample(moe_store_t *s, moe_io_t *io_p)
{
    (void)s;
    memset(io_p, 0, sizeof(*io_p));
}

static fp_status_t dram_run_end(moe_store_t *s, moe_io_t *io_p)
{
    (void)s;
    memset(io_p, 0, sizeof(*io_p));
    return FP_OK;
}

static void dram_destroy(moe_store_t *s)
{
    dram_store_t *d = (dram_store_t *)s;

    if (d->mem != NULL)
        munmap(d->mem, (size_t)s->experts * s->size);
    free(d);
}

static const moe_store_ops_t dram_ops = {
    .run_begin = dram_nothing,
    .load = dram_nothing_e,
    .unload = dram_nothing_e,
    .hint = NULL,
    .expert = dram_expert,
    .sample = no_sample,
    .run_end = dram_run_end,
    .destroy = dram_destroy,
};

static fp_status_t dram_fill(void *arg, unsigned thread, moe_pattern_t *pat, uint8_t *scratch,
                             unsigned e)
{
    dram_store_t *d = arg;

    (void)thread;
    (void)scratch;
    moe_pattern_fill(pat, e, 0, d->mem + (size_t)e * d->base.size, d->base.size);
    return FP_OK;
}

fp_status_t moe_store_dram_create(unsigned experts, uint64_t size, moe_store_t **s_p)
{
    dram_store_t *d = calloc(1, sizeof(*d));
    fp_status_t status;

    if (d == NULL) {
        moe_err("out of memory");
        return FP_ERR_NO_MEMORY;
    }
    d->base = (moe_store_t){&dram_ops, experts, experts, size, -1};
    d->mem = moe_alloc((uint64_t)experts * size, "the experts in DRAM");
    if (d->mem == NULL) {
        free(d);
        return FP_ERR_NO_MEMORY;
    }
    status = moe_fill_experts(experts, 0, dram_fill, d);
    if (status != FP_OK) {
        moe_err("cannot fill the experts in DRAM: %s", fp_status_string(status));
        dram_destroy(&d->base);
        return status;
    }
    *s_p = &d->base;
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* The disk file                                                            */
/* ------------------------------------------------------------------------ */

/* Write expert @e to the file, FILL_CHUNK bytes at a time through @scratch. */
static fp_status_t disk_fill(void *arg, unsigned thread, moe_pattern_t *pat, uint8_t *scratch,
                             unsigned e)
{
    moe_disk_file_t *f = arg;

    (void)thread;
    for (uint64_t off = 0; off < f->size; off += FILL_CHUNK) {
        size_t len = f->size - off < FILL_CHUNK ? (size_t)(f->size - off) : FILL_CHUNK;
        off_t pos = (off_t)((uint64_t)e * f->size + off);

        moe_pattern_fill(pat, e, off, scratch, len);
        for (size_t done = 0; done < len;) {
            ssize_t n = pwrite(f->fd, scratch + done, len - done, pos + (off_t)done);

            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                moe_err("writing %s: %s", f->path, n < 0 ? strerror(errno) : "short write");
                return FP_ERR_IO;
            }
            done += (size_t)n;
        }
    }
    return FP_OK;
}

fp_status_t moe_disk_file_create(const char *dir, unsigned experts, uint64_t size, bool drop_global,
                                 moe_disk_file_t **file_p)
{
    uint64_t total = (uint64_t)experts * size, avail = moe_disk_free(dir);
    moe_disk_file_t *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        moe_err("out of memory");
        return FP_ERR_NO_MEMORY;
    }
    if (avail < total + DISK_MARGIN) {
        moe_err("not enough disk space in %s for the experts' file: it needs %" PRIu64
                " MiB (+%" PRIu64 " MiB spare), %" PRIu64 " MiB are free (use --dir)",
                dir, (uint64_t)(total / MIB), (uint64_t)(DISK_MARGIN / MIB),
                (uint64_t)(avail / MIB));
        free(f);
        return FP_ERR_NO_SPACE;
    }
    snprintf(f->path, sizeof(f->path), "%s/farpool-moe-%d-%" PRIu64 "M.bin", dir, (int)getpid(),
             (uint64_t)(size / MIB));
    f->experts = experts;
    f->size = size;
    f->drop_global = drop_global;
    moe_path_register(f->path);
    f->fd = open(f->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (f->fd < 0) {
        moe_err("cannot create %s: %s (use --dir)", f->path, strerror(errno));
        goto err_forget;
    }
    if (moe_fill_experts(experts, FILL_CHUNK, disk_fill, f) != FP_OK)
        goto err_close;
    if (fdatasync(f->fd) != 0) {
        moe_err("fdatasync %s: %s", f->path, strerror(errno));
        goto err_close;
    }
    *file_p = f;
    return FP_OK;

err_close:
    close(f->fd);
    unlink(f->path);
err_forget:
    moe_path_forget(f->path);
    free(f);
    return FP_ERR_IO;
}

void moe_disk_file_destroy(moe_disk_file_t *file)
{
    if (file == NULL)
        return;
    close(file->fd);
    unlink(file->path);
    moe_path_forget(file->path);
    free(file);
}

/* Make the file cold: nothing of it in the page cache. */
static void disk_file_drop(moe_disk_file_t *f)
{
    if (f->drop_global) {
        int fd;

        sync();
        fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
        if (fd >= 0 && write(fd, "3\n", 2) == 2) {
            close(fd);
            return;
        }
        if (!f->said_fadvise)
            moe_err("cannot drop the page cache (/proc/sys/vm/drop_caches: %s; root is needed): "
                    "evicting the experts' file with POSIX_FADV_DONTNEED instead",
                    strerror(errno));
        if (fd >= 0)
            close(fd);
        f->drop_global = false;
        f->said_fadvise = true;
    }
    fdatasync(f->fd);
    posix_fadvise(f->fd, 0, 0, POSIX_FADV_DONTNEED);
}

/* Bytes this process has had read from storage (/proc/self/io read_bytes). */
static uint64_t storage_read_bytes(void)
{
    char line[128];
    unsigned long long v = 0;
    FILE *f = fopen("/proc/self/io", "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "read_bytes: %llu", &v) == 1)
            break;
    fclose(f);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Disk through mmap: map the expert's range, touch every page               */
/* ------------------------------------------------------------------------ */

typedef struct mmap_store {
    moe_store_t base;
    moe_disk_file_t *file;
    void **map;          /* per expert: its mapping while loaded, else NULL */
    uint64_t read_start; /* storage_read_bytes() at run_begin */
    volatile uint64_t sink;
} mmap_store_t;

static fp_status_t mmap_run_begin(moe_store_t *s)
{
    mmap_store_t *m = (mmap_store_t *)s;

    disk_file_drop(m->file);
    m->read_start = storage_read_bytes();
    return FP_OK;
}

static fp_status_t mmap_load(moe_store_t *s, unsigned e)
{
    mmap_store_t *m = (mmap_store_t *)s;
    void *p = mmap(NULL, s->size, PROT_READ, MAP_SHARED, m->file->fd, (off_t)(e * s->size));

    if (p == MAP_FAILED) {
        moe_err("mmap of expert %u of %s: %s", e, m->file->path, strerror(errno));
        return FP_ERR_IO;
    }
    m->sink += moe_touch(p, s->size);
    m->map[e] = p;
    return FP_OK;
}

static fp_status_t mmap_unload(moe_store_t *s, unsigned e)
{
    mmap_store_t *m = (mmap_store_t *)s;

    if (m->map[e] != NULL)
        munmap(m->map[e], s->size);
    m->map[e] = NULL;
    /* So that the next load of it is cold again. */
    posix_fadvise(m->file->fd, (off_t)(e * s->size), (off_t)s->size, POSIX_FADV_DONTNEED);
    return FP_OK;
}

static const void *mmap_expert(moe_store_t *s, unsigned e)
{
    return ((mmap_store_t *)s)->map[e];
}

static fp_status_t mmap_run_end(moe_store_t *s, moe_io_t *io_p)
{
    mmap_store_t *m = (mmap_store_t *)s;

    for (unsigned e = 0; e < s->experts; e++)
        if (m->map[e] != NULL)
            mmap_unload(s, e);
    memset(io_p, 0, sizeof(*io_p));
    io_p->bytes_moved = storage_read_bytes() - m->read_start;
    return FP_OK;
}

static void mmap_destroy(moe_store_t *s)
{
    mmap_store_t *m = (mmap_store_t *)s;

    for (unsigned e = 0; e < s->experts; e++)
        if (m->map[e] != NULL)
            munmap(m->map[e], s->size);
    free(m->map);
    free(m);
}

static const moe_store_ops_t mmap_ops = {
    .run_begin = mmap_run_begin,
    .load = mmap_load,
    .unload = mmap_unload,
    .hint = NULL,
    .expert = mmap_expert,
    .sample = no_sample,
    .run_end = mmap_run_end,
    .destroy = mmap_destroy,
};

fp_status_t moe_store_mmap_create(moe_disk_file_t *file, unsigned slots, moe_store_t **s_p)
{
    mmap_store_t *m = calloc(1, sizeof(*m));

    if (m == NULL || (m->map = calloc(file->experts, sizeof(*m->map))) == NULL) {
        moe_err("out of memory");
        free(m);
        return FP_ERR_NO_MEMORY;
    }
    m->base = (moe_store_t){&mmap_ops, file->experts, slots, file->size, -1};
    m->file = file;
    *s_p = &m->base;
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* Disk through O_DIRECT read() into a slot                                  */
/* ------------------------------------------------------------------------ */

typedef struct direct_store {
    moe_store_t base;
    moe_disk_file_t *file;
    int fd; /* O_DIRECT */
    moe_slots_t slots;
    uint64_t read_start;
} direct_store_t;

static fp_status_t direct_run_begin(moe_store_t *s)
{
    direct_store_t *d = (direct_store_t *)s;

    disk_file_drop(d->file);
    moe_slots_reset(&d->slots);
    d->read_start = storage_read_bytes();
    return FP_OK;
}

static fp_status_t direct_read(direct_store_t *d, uint8_t *buf, uint64_t size, off_t pos)
{
    for (uint64_t done = 0; done < size;) {
        size_t len = size - done < DIRECT_IO ? (size_t)(size - done) : DIRECT_IO;
        ssize_t n = pread(d->fd, buf + done, len, pos + (off_t)done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            moe_err("O_DIRECT read of %s at %" PRIu64 ": %s", d->file->path, (uint64_t)pos + done,
                    n < 0 ? strerror(errno) : "end of file");
            return n < 0 && errno == EINVAL ? FP_ERR_UNSUPPORTED : FP_ERR_IO;
        }
        done += (uint64_t)n;
    }
    return FP_OK;
}

static fp_status_t direct_load(moe_store_t *s, unsigned e)
{
    direct_store_t *d = (direct_store_t *)s;
    uint8_t *buf = moe_slots_take(&d->slots, e);

    if (buf == NULL)
        return FP_ERR_NO_SPACE;
    return direct_read(d, buf, s->size, (off_t)(e * s->size));
}

static fp_status_t direct_unload(moe_store_t *s, unsigned e)
{
    moe_slots_give(&((direct_store_t *)s)->slots, e);
    return FP_OK;
}

static const void *direct_expert(moe_store_t *s, unsigned e)
{
    return moe_slots_get(&((direct_store_t *)s)->slots, e);
}

static fp_status_t direct_run_end(moe_store_t *s, moe_io_t *io_p)
{
    direct_store_t *d = (direct_store_t *)s;

    memset(io_p, 0, sizeof(*io_p));
    io_p->bytes_moved = storage_read_bytes() - d->read_start;
    return FP_OK;
}

static void direct_destroy(moe_store_t *s)
{
    direct_store_t *d = (direct_store_t *)s;

    if (d->fd >= 0)
        close(d->fd);
    moe_slots_cleanup(&d->slots);
    free(d);
}

static const moe_store_ops_t direct_ops = {
    .run_begin = direct_run_begin,
    .load = direct_load,
    .unload = direct_unload,
    .hint = NULL,
    .expert = direct_expert,
    .sample = no_sample,
    .run_end = direct_run_end,
    .destroy = direct_destroy,
};

fp_status_t moe_store_direct_create(moe_disk_file_t *file, unsigned slots, moe_store_t **s_p)
{
    direct_store_t *d = calloc(1, sizeof(*d));
    fp_status_t status;

    if (d == NULL) {
        moe_err("out of memory");
        return FP_ERR_NO_MEMORY;
    }
    d->base = (moe_store_t){&direct_ops, file->experts, slots, file->size, -1};
    d->file = file;
    d->fd = open(file->path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (d->fd < 0) {
        int err = errno;

        moe_err("cannot open %s with O_DIRECT: %s%s", file->path, strerror(err),
                err == EINVAL ? " (the file system does not support it; use --dir on a disk)" : "");
        free(d);
        return err == EINVAL ? FP_ERR_UNSUPPORTED : FP_ERR_IO;
    }
    status = moe_slots_init(&d->slots, file->experts, slots, file->size);
    if (status != FP_OK) {
        close(d->fd);
        free(d);
        return status;
    }
    /* One read up front, untimed: a file system may accept the open and refuse the read. */
    status = direct_read(d, d->slots.base, MOE_PAGE, 0);
    if (status != FP_OK) {
        direct_destroy(&d->base);
        return status;
    }
    *s_p = &d->base;
    return FP_OK;
}
