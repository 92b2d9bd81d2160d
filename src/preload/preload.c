/* SPDX-License-Identifier: MIT */
/*
 * libfarpool-preload.so: the LD_PRELOAD shim of `farpool run` (docs/preload.md).
 * A read-only mmap(2) of a file that the configuration matches is served from
 * a region of the pool holding the same bytes (same size, same BLAKE2b-256)
 * instead of from the file: the region is mapped whole with farpool_map() and
 * the caller gets its base plus the offset. munmap, madvise, posix_madvise,
 * msync and posix_fadvise of those ranges are answered here; everything else
 * goes to the C library.
 *
 * DESIGN
 * - The shim has process-wide state (it stands for the process's mappings):
 *   the configuration, parsed once from the environment; one context, made
 *   on the first matched mmap; the table of served files, each with its
 *   region mapping and the caller's mappings into it (refcounted), under
 *   one mutex.
 * - The library's objects are linked into the shim with -Wl,--wrap for
 *   the functions interposed here: their own mmap, munmap and madvise calls
 *   (from any of their threads: the fault threads included) go to the C
 *   library through the __wrap_* functions below, never into the matching.
 *   A thread-local flag does the same for everything else the shim calls
 *   while it serves a call (libsodium, the C library's own callers).
 * - The next definitions (dlsym(RTLD_NEXT)) are looked up on first use;
 *   dlsym may allocate, and an allocation may mmap: while a thread is
 *   looking them up its own calls go to the system calls directly.
 * - Nothing is done for a program that maps no matched file: no context,
 *   no thread, no handler; mmap costs a flags test, munmap an atomic load.
 * - fork(): the library's mappings are not inherited (MADV_DONTFORK). The
 *   child makes a context of its own and maps each served region again at
 *   the parent's address (as FARPOOL_REGION_FIXED does: the one internal
 *   field the shim sets), in the pthread_atfork child handler.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <farpool/farpool.h>

#include "client/context_int.h"
#include "common/parse.h"
#include "preload/preload_int.h"
#include "preload/preload_sum.h"

#define PRELOAD_EXPORT __attribute__((visibility("default")))

/* ------------------------------------------------------------------------ */
/* The next definitions                                                      */
/* ------------------------------------------------------------------------ */

typedef void *(*mmap_func_t)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_func_t)(void *, size_t);
typedef int (*madvise_func_t)(void *, size_t, int);
typedef int (*fadvise_func_t)(int, off_t, off_t, int);

typedef void *(*mremap_func_t)(void *, size_t, size_t, int, ...);

enum {
    NEXT_MMAP,
    NEXT_MUNMAP,
    NEXT_MADVISE,
    NEXT_POSIX_MADVISE,
    NEXT_MSYNC,
    NEXT_FADVISE,
    NEXT_MREMAP,
    NEXT_N
};

static const char *const next_names[NEXT_N] = {"mmap",  "munmap",        "madvise", "posix_madvise",
                                               "msync", "posix_fadvise", "mremap"};
static _Atomic(void *) next_syms[NEXT_N];
_Thread_local bool fp_preload_resolving FP_PRELOAD_TLS; /* this thread is in dlsym */
_Thread_local bool fp_preload_inside FP_PRELOAD_TLS;    /* in the shim: call the next ones */

/* The next definition of function @which, or NULL (then: the system call). */
static void *next_sym(int which)
{
    void *p = atomic_load_explicit(&next_syms[which], memory_order_acquire);

    if (p != NULL || fp_preload_resolving)
        return p;
    fp_preload_resolving = true;
    p = dlsym(RTLD_NEXT, next_names[which]);
    fp_preload_resolving = false;
    if (p != NULL)
        atomic_store_explicit(&next_syms[which], p, memory_order_release);
    return p;
}

void *fp_preload_real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    mmap_func_t fn = (mmap_func_t)next_sym(NEXT_MMAP);

    if (fn != NULL)
        return fn(addr, len, prot, flags, fd, off);
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}

int fp_preload_real_munmap(void *addr, size_t len)
{
    munmap_func_t fn = (munmap_func_t)next_sym(NEXT_MUNMAP);

    return fn != NULL ? fn(addr, len) : (int)syscall(SYS_munmap, addr, len);
}

int fp_preload_real_madvise(void *addr, size_t len, int advice)
{
    madvise_func_t fn = (madvise_func_t)next_sym(NEXT_MADVISE);

    return fn != NULL ? fn(addr, len, advice) : (int)syscall(SYS_madvise, addr, len, advice);
}

void *fp_preload_real_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr)
{
    mremap_func_t fn = (mremap_func_t)next_sym(NEXT_MREMAP);

    if (fn != NULL)
        return fn(old, old_len, new_len, flags, new_addr);
    return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
}

static int real_posix_madvise(void *addr, size_t len, int advice)
{
    madvise_func_t fn = (madvise_func_t)next_sym(NEXT_POSIX_MADVISE);

    if (fn != NULL)
        return fn(addr, len, advice);
    return syscall(SYS_madvise, addr, len, advice) == 0 ? 0 : errno;
}

static int real_msync(void *addr, size_t len, int flags)
{
    madvise_func_t fn = (madvise_func_t)next_sym(NEXT_MSYNC);

    return fn != NULL ? fn(addr, len, flags) : (int)syscall(SYS_msync, addr, len, flags);
}

static int real_fadvise(int fd, off_t off, off_t len, int advice)
{
    fadvise_func_t fn = (fadvise_func_t)next_sym(NEXT_FADVISE);

    if (fn != NULL)
        return fn(fd, off, len, advice);
    return syscall(SYS_fadvise64, fd, off, len, advice) == 0 ? 0 : errno;
}

/*
 * What the library's objects call instead of the interposed functions (the
 * shim is linked with -Wl,--wrap=mmap and so on): the C library's.
 */
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_munmap(void *addr, size_t len);
int __wrap_madvise(void *addr, size_t len, int advice);
int __wrap_posix_madvise(void *addr, size_t len, int advice);
int __wrap_msync(void *addr, size_t len, int flags);

void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return fp_preload_real_mmap(addr, len, prot, flags, fd, off);
}

void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return fp_preload_real_mmap(addr, len, prot, flags, fd, off);
}

int __wrap_munmap(void *addr, size_t len)
{
    return fp_preload_real_munmap(addr, len);
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
    return fp_preload_real_madvise(addr, len, advice);
}

int __wrap_posix_madvise(void *addr, size_t len, int advice)
{
    return real_posix_madvise(addr, len, advice);
}

int __wrap_msync(void *addr, size_t len, int flags)
{
    return real_msync(addr, len, flags);
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

/* One entry of FARPOOL_PRELOAD_MAP: GLOB or GLOB=REGION. */
typedef struct preload_glob {
    char *glob;
    char *region;      /* NULL: the file's basename */
    bool basename;     /* no '/' in the glob: matched against the basename */
    _Atomic bool used; /* some mmap matched it */
} preload_glob_t;

typedef struct preload_config {
    preload_glob_t *globs;
    size_t nglobs;
    bool has_cache;
    uint64_t cache_bytes;
    int readahead; /* -1: the library's default */
    bool prefault; /* FARPOOL_CONTEXT_PARAM_PREFAULT */
    bool stats;
    bool quiet;
    bool root; /* the process `farpool run` exec'd (FARPOOL_PRELOAD_ROOT is our pid) */
} preload_config_t;

static preload_config_t config;
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

static bool region_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 255)
        return false;
    for (; *s != '\0'; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    return true;
}

static void config_parse(void)
{
    const char *map = getenv("FARPOOL_PRELOAD_MAP");
    const char *cache = getenv("FARPOOL_PRELOAD_CACHE");
    const char *ra = getenv("FARPOOL_PRELOAD_READAHEAD");
    const char *stats = getenv("FARPOOL_PRELOAD_STATS");
    const char *quiet = getenv("FARPOOL_PRELOAD_QUIET");
    const char *root = getenv("FARPOOL_PRELOAD_ROOT");
    const char *prefault = getenv("FARPOOL_PRELOAD_PREFAULT");
    size_t n = 1;
    char *copy, *line, *save = NULL;

    config.readahead = -1;
    if (cache != NULL && *cache != '\0') {
        if (fp_parse_size(cache, &config.cache_bytes) == FP_OK && config.cache_bytes > 0)
            config.has_cache = true;
        else
            fprintf(stderr, "farpool-preload: ignoring FARPOOL_PRELOAD_CACHE=%s (not a size)\n",
                    cache);
    }
    if (ra != NULL && (strcmp(ra, "off") == 0 || strcmp(ra, "0") == 0))
        config.readahead = 0;
    else if (ra != NULL && (strcmp(ra, "on") == 0 || strcmp(ra, "1") == 0))
        config.readahead = 1;
    config.stats = stats != NULL && *stats != '\0' && strcmp(stats, "0") != 0;
    config.prefault = prefault != NULL && *prefault != '\0' && strcmp(prefault, "0") != 0;
    config.quiet = quiet != NULL && *quiet != '\0' && strcmp(quiet, "0") != 0;
    config.root = root != NULL && atol(root) == (long)getpid();
    if (map == NULL || *map == '\0')
        return;
    for (const char *p = map; *p != '\0'; p++)
        n += *p == '\n';
    copy = strdup(map);
    config.globs = calloc(n, sizeof(*config.globs));
    if (copy == NULL || config.globs == NULL) {
        free(copy);
        free(config.globs);
        config.globs = NULL;
        return;
    }
    for (line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        preload_glob_t *g = &config.globs[config.nglobs];
        char *eq = strrchr(line, '=');

        if (eq != NULL && eq != line && region_name_ok(eq + 1)) {
            *eq = '\0';
            g->region = eq + 1;
        }
        g->glob = line;
        g->basename = strchr(line, '/') == NULL;
        config.nglobs++;
    }
    /* copy stays allocated: the globs point into it. */
}

static preload_config_t *config_get(void)
{
    pthread_once(&config_once, config_parse);
    return &config;
}

/* ------------------------------------------------------------------------ */
/* The table of served files                                                 */
/* ------------------------------------------------------------------------ */

/* One mapping the caller holds: [lo, hi) of it is still mapped. */
typedef struct preload_mapping {
    struct preload_mapping *next;
    uintptr_t lo, hi;
} preload_mapping_t;

/* One local file (one version of it) that an mmap matched. */
typedef struct preload_file {
    struct preload_file *next;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
    char path[PATH_MAX];
    char region_name[256];
    bool failed;  /* checked and refused: the file itself is mapped */
    bool has_sum; /* sum is the file's */
    uint8_t sum[FP_PRELOAD_SUM_BYTES];
    farpool_region_t *region; /* open and mapped while mappings is not empty */
    uintptr_t base, span;     /* the region's mapping: [base, base + span) */
    preload_mapping_t *mappings;
    farpool_stats_t done; /* counters of the region's earlier mappings */
    bool ever_mapped;
} preload_file_t;

pthread_mutex_t fp_preload_lock = PTHREAD_MUTEX_INITIALIZER;
static preload_file_t *files;          /* fp_preload_lock */
farpool_context_t *fp_preload_context; /* fp_preload_lock */
static bool context_failed;            /* fp_preload_lock: said once, not retried */
static bool said_fixed;                /* fp_preload_lock */
static atomic_size_t nserved;          /* files with a region mapped */
static bool atfork_done;               /* fp_preload_lock */
static bool served_here;               /* fp_preload_lock: a file served by this process itself */
size_t fp_preload_page;

static void atfork_prepare(void)
{
    bool was_inside = fp_preload_inside;

    pthread_mutex_lock(&fp_preload_lock);
    fp_preload_inside = true;
    fp_preload_anon_prepare();
    fp_preload_inside = was_inside;
}

static void atfork_parent(void)
{
    fp_preload_anon_parent();
    pthread_mutex_unlock(&fp_preload_lock);
}

/* Whether a mapping of the caller's covers any of the block at @b (granule @g). */
static bool block_covered(const preload_file_t *f, uintptr_t b, uintptr_t g)
{
    for (const preload_mapping_t *m = f->mappings; m != NULL; m = m->next)
        if (m->lo < b + g && m->hi > b)
            return true;
    return false;
}

/*
 * Make the whole blocks of @f's region mapping that no mapping of the
 * caller's covers inaccessible (SIGSEGV on access, as outside a real mmap),
 * and those one covers, even in part, accessible. Both through the engine's
 * fence (fp_region_fence): an uncovered block leaves the cache and is never
 * fetched (no read-ahead past the end of what was mapped), and a covered one
 * is fetched as usual again. The caller holds fp_preload_lock, or is the
 * child of fork().
 */
static void file_protect(preload_file_t *f)
{
    uintptr_t g = farpool_region_granule(f->region), end = f->base + f->span, run = f->base;
    bool run_covered = block_covered(f, f->base, g);

    for (uintptr_t b = f->base + g;; b += g) {
        bool at_end = b >= end, covered = !at_end && block_covered(f, b, g);

        if (!at_end && covered == run_covered)
            continue;
        /* [run, b) is one run of blocks, all covered or none. */
        if (at_end)
            b = end;
        (void)fp_region_fence(f->region, (void *)run, (size_t)(b - run), !run_covered);
        if (at_end)
            break;
        run = b;
        run_covered = covered;
    }
}

/*
 * Map @f's region again at the address it had in the parent (the child
 * inherits none of the library's mappings: MADV_DONTFORK), and make the
 * whole blocks that no mapping of the caller's covers inaccessible again.
 * False: the range stays unmapped (SIGSEGV on access).
 */
static bool child_remap(preload_file_t *f)
{
    farpool_region_t *region;
    void *base;

    if (!fp_preload_context_get() || farpool_region_open(fp_preload_context, f->region_name,
                                                         FARPOOL_REGION_READONLY, &region) != FP_OK)
        return false;
    /* Internal: what FARPOOL_REGION_FIXED does, at the parent's address. */
    region->desc.fixed_addr = f->base;
    if (farpool_map(region, &base) != FP_OK || (uintptr_t)base != f->base) {
        farpool_region_close(region);
        return false;
    }
    f->region = region;
    file_protect(f);
    return true;
}

/*
 * The child of fork() has none of the library's threads, connections or
 * mappings; the parent's context and regions are forgotten (leaked: their
 * descriptors are the parent's too). Each served file is mapped again at its
 * address with a context of the child's own, so that the child reads what
 * the parent mapped; one that cannot be is left unmapped, and said so.
 */
static void atfork_child(void)
{
    bool was_inside = fp_preload_inside;

    pthread_mutex_init(&fp_preload_lock, NULL);
    fp_preload_context = NULL;
    context_failed = false;
    served_here = false;
    atomic_store(&nserved, 0);
    fp_preload_inside = true;
    for (preload_file_t *f = files; f != NULL; f = f->next) {
        memset(&f->done, 0, sizeof(f->done));
        f->ever_mapped = false;
        if (f->region == NULL)
            continue;
        f->region = NULL;
        if (child_remap(f)) {
            f->ever_mapped = true;
            atomic_fetch_add(&nserved, 1);
        } else {
            fprintf(stderr,
                    "farpool-preload: %s: cannot map region %s again in the child of "
                    "fork(); its range is unmapped there\n",
                    f->path, f->region_name);
            f->mappings = NULL; /* leaked */
            f->base = f->span = 0;
        }
    }
    fp_preload_anon_child();
    fp_preload_inside = was_inside;
}

void fp_preload_stats_add(farpool_stats_t *sum, const farpool_stats_t *s)
{
    sum->faults += s->faults;
    sum->minor_faults += s->minor_faults;
    sum->blocks_fetched += s->blocks_fetched;
    sum->bytes_in += s->bytes_in;
    sum->bytes_out += s->bytes_out;
    sum->wp_faults += s->wp_faults;
    sum->writebacks += s->writebacks;
    sum->evictions += s->evictions;
    sum->fetch_errors += s->fetch_errors;
    sum->prefetch_issued += s->prefetch_issued;
    sum->prefetch_used += s->prefetch_used;
    sum->prefetch_wasted += s->prefetch_wasted;
    sum->prefetch_late += s->prefetch_late;
    sum->prefetch_hinted += s->prefetch_hinted;
    if (s->cache_peak > sum->cache_peak)
        sum->cache_peak = s->cache_peak;
    if (s->fetch_max_ns > sum->fetch_max_ns)
        sum->fetch_max_ns = s->fetch_max_ns;
    sum->fetch_p50_ns = s->fetch_p50_ns; /* the latest mapping's */
    sum->fetch_p99_ns = s->fetch_p99_ns;
}

/* The caller holds fp_preload_lock (or is the child of fork(), alone). */
bool fp_preload_context_get(void)
{
    preload_config_t *cfg = config_get();
    farpool_context_params_t params = {0};
    fp_status_t status;

    if (fp_preload_context != NULL)
        return true;
    if (context_failed)
        return false;
    if (cfg->has_cache) {
        params.field_mask |= FARPOOL_CONTEXT_PARAM_CACHE_BYTES;
        params.cache_bytes = cfg->cache_bytes;
    }
    if (cfg->readahead >= 0) {
        params.field_mask |= FARPOOL_CONTEXT_PARAM_READAHEAD;
        params.readahead = cfg->readahead;
    }
    if (cfg->prefault) {
        params.field_mask |= FARPOOL_CONTEXT_PARAM_PREFAULT;
        params.prefault = 1;
    }
    /* The pool and the secret file: $FARPOOL_POOL, $FARPOOL_SECRET_FILE. */
    status = farpool_context_create(&params, &fp_preload_context);
    if (status != FP_OK) {
        fprintf(stderr,
                "farpool-preload: cannot use the pool ($FARPOOL_POOL=%s): %s; matched files are "
                "mapped from disk%s\n",
                getenv("FARPOOL_POOL") != NULL ? getenv("FARPOOL_POOL") : "(unset)",
                farpool_status_string(status),
                fp_preload_anon_enabled() ? ", anonymous memory is the kernel's" : "");
        context_failed = true;
        fp_preload_context = NULL;
        return false;
    }
    if (!atfork_done) {
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
        atfork_done = true;
    }
    return true;
}

/* Say why @f is mapped from disk, once (it is marked failed). */
__attribute__((format(printf, 2, 3))) static void file_refuse(preload_file_t *f, const char *fmt,
                                                              ...)
{
    char why[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    fprintf(stderr, "farpool-preload: %s: %s; mapping the file itself\n", f->path, why);
    f->failed = true;
}

/*
 * Open and map @f's region if its size and checksum are the file's (open as
 * @fd). The caller holds fp_preload_lock. False: @f is mapped from disk (said why,
 * unless the context could not be made, which says so once).
 */
static bool file_serve(preload_file_t *f, int fd)
{
    farpool_region_info_t info;
    farpool_region_t *region;
    fp_status_t status;
    void *base;

    if (!fp_preload_context_get())
        return false;
    status =
        farpool_region_open(fp_preload_context, f->region_name, FARPOOL_REGION_READONLY, &region);
    if (status != FP_OK) {
        file_refuse(
            f, status == FP_ERR_NO_ENTRY ? "no region %s in the pool" : "cannot open region %s",
            f->region_name);
        return false;
    }
    status = farpool_region_info(region, &info, sizeof(info));
    if (status != FP_OK) {
        farpool_region_close(region);
        file_refuse(f, "cannot read region %s's information", f->region_name);
        return false;
    }
    if (info.size != (uint64_t)f->size) {
        farpool_region_close(region);
        file_refuse(f, "region %s is %llu bytes, the file %llu", f->region_name,
                    (unsigned long long)info.size, (unsigned long long)f->size);
        return false;
    }
    if (!info.has_checksum) {
        farpool_region_close(region);
        file_refuse(f, "region %s has no checksum to compare", f->region_name);
        return false;
    }
    if (!f->has_sum) {
        if (fp_preload_sum_get(fd,
                               &(struct stat){.st_dev = f->dev,
                                              .st_ino = f->ino,
                                              .st_size = f->size,
                                              .st_mtim = f->mtime,
                                              .st_ctim = f->ctime},
                               f->sum) != FP_OK) {
            farpool_region_close(region);
            file_refuse(f, "cannot read the file to check it against region %s", f->region_name);
            return false;
        }
        f->has_sum = true;
    }
    if (memcmp(f->sum, info.checksum, sizeof(f->sum)) != 0) {
        farpool_region_close(region);
        file_refuse(f, "region %s holds other bytes (the file changed since it was put?)",
                    f->region_name);
        return false;
    }
    status = farpool_map(region, &base);
    if (status != FP_OK) {
        farpool_region_close(region);
        file_refuse(f, "cannot map region %s: %s", f->region_name, farpool_status_string(status));
        return false;
    }
    f->region = region;
    f->base = (uintptr_t)base;
    f->span = ((uintptr_t)f->size + fp_preload_page - 1) & ~(fp_preload_page - 1);
    f->ever_mapped = true;
    served_here = true;
    atomic_fetch_add(&nserved, 1);
    return true;
}

/* Unmap and close @f's region: its last mapping is gone. The caller holds fp_preload_lock. */
static void file_unserve(preload_file_t *f)
{
    farpool_stats_t s;

    if (farpool_region_stats(f->region, &s, sizeof(s)) == FP_OK)
        fp_preload_stats_add(&f->done, &s);
    farpool_region_close(f->region);
    f->region = NULL;
    f->base = f->span = 0;
    atomic_fetch_sub(&nserved, 1);
}

/* The glob that @path matches, or NULL. */
static preload_glob_t *glob_match(preload_config_t *cfg, const char *path)
{
    const char *base = strrchr(path, '/');

    base = base != NULL ? base + 1 : path;
    for (size_t i = 0; i < cfg->nglobs; i++)
        if (fnmatch(cfg->globs[i].glob, cfg->globs[i].basename ? base : path, 0) == 0)
            return &cfg->globs[i];
    return NULL;
}

/*
 * An mmap of a file, read-only (or writable and private: @writable), with a
 * configuration. MAP_FAILED: map it from disk.
 */
static void *preload_mmap(size_t len, int flags, int fd, off_t off, bool writable)
{
    preload_config_t *cfg = config_get();
    char link[64], path[PATH_MAX];
    preload_glob_t *g;
    preload_file_t *f;
    preload_mapping_t *m;
    struct stat st;
    ssize_t n;
    void *addr = MAP_FAILED;

    if (cfg->nglobs == 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
        return MAP_FAILED;
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    if (n <= 0 || path[0] != '/')
        return MAP_FAILED;
    path[n] = '\0';
    g = glob_match(cfg, path);
    if (g == NULL)
        return MAP_FAILED;
    atomic_store(&g->used, true);

    pthread_mutex_lock(&fp_preload_lock);
    if (fp_preload_page == 0)
        fp_preload_page = (size_t)sysconf(_SC_PAGESIZE);
    if (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) {
        if (!said_fixed)
            fprintf(stderr,
                    "farpool-preload: %s: mmap at a fixed address is not served from the "
                    "pool; mapping the file itself (said once)\n",
                    path);
        said_fixed = true;
        goto out_unlock;
    }
    for (f = files; f != NULL; f = f->next)
        if (f->dev == st.st_dev && f->ino == st.st_ino && f->size == st.st_size &&
            f->mtime.tv_sec == st.st_mtim.tv_sec && f->mtime.tv_nsec == st.st_mtim.tv_nsec &&
            f->ctime.tv_sec == st.st_ctim.tv_sec && f->ctime.tv_nsec == st.st_ctim.tv_nsec)
            break;
    if (f == NULL) {
        const char *base = strrchr(path, '/') + 1;

        f = calloc(1, sizeof(*f));
        if (f == NULL)
            goto out_unlock;
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        f->size = st.st_size;
        f->mtime = st.st_mtim;
        f->ctime = st.st_ctim;
        snprintf(f->path, sizeof(f->path), "%s", path);
        snprintf(f->region_name, sizeof(f->region_name), "%s",
                 g->region != NULL ? g->region : base);
        f->next = files;
        files = f;
        if (g->region == NULL && !region_name_ok(f->region_name))
            file_refuse(f, "its name %s is no region name; give one with --map GLOB=REGION",
                        f->region_name);
    }
    if (f->failed)
        goto out_unlock;
    if (off < 0 || (size_t)off % fp_preload_page != 0 || len == 0 ||
        (uint64_t)off > (uint64_t)f->size ||
        len > (((uint64_t)f->size + fp_preload_page - 1) & ~(uint64_t)(fp_preload_page - 1)) -
                  (uint64_t)off)
        goto out_unlock; /* past the end of the file: the kernel's SIGBUS, not ours */
    if (f->region == NULL && !file_serve(f, fd))
        goto out_unlock;
    if (writable) {
        /* A private copy of the file's bytes, in a region of its own (docs/preload.md). */
        uint64_t copy =
            (uint64_t)f->size - (uint64_t)off < len ? (uint64_t)f->size - (uint64_t)off : len;

        addr = fp_preload_anon_private_copy(f->region, (uint64_t)off, (size_t)copy, len);
        if (f->mappings == NULL)
            file_unserve(f);
        goto out_unlock;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL) {
        if (f->mappings == NULL)
            file_unserve(f);
        goto out_unlock;
    }
    m->lo = f->base + (uintptr_t)off;
    m->hi = m->lo + ((len + fp_preload_page - 1) & ~(fp_preload_page - 1));
    m->next = f->mappings;
    f->mappings = m;
    addr = (void *)m->lo;
    file_protect(f);
    if (flags & MAP_POPULATE)
        (void)farpool_prefetch(f->region, addr, (size_t)(m->hi - m->lo));
out_unlock:
    pthread_mutex_unlock(&fp_preload_lock);
    return addr;
}

/* The served file whose region mapping holds @a, or NULL. The caller holds fp_preload_lock. */
static preload_file_t *file_at(uintptr_t a)
{
    for (preload_file_t *f = files; f != NULL; f = f->next)
        if (f->region != NULL && a >= f->base && a < f->base + f->span)
            return f;
    return NULL;
}

/* The lowest served base in (@a, @end), else @end. The caller holds fp_preload_lock. */
static uintptr_t next_served(uintptr_t a, uintptr_t end)
{
    uintptr_t best = end;

    for (preload_file_t *f = files; f != NULL; f = f->next)
        if (f->region != NULL && f->base > a && f->base < best)
            best = f->base;
    return best;
}

/*
 * Split [@addr, @addr + @len) into the pieces in served region mappings,
 * given to @served with their file, and the others, given to @other. The
 * caller holds fp_preload_lock. Returns the first nonzero result.
 */
typedef int (*served_func_t)(preload_file_t *f, uintptr_t a, uintptr_t b, int arg);
typedef int (*anon_func_t)(void *h, uintptr_t a, uintptr_t b, int arg);
typedef int (*other_func_t)(uintptr_t a, uintptr_t b, int arg);

static int range_walk(uintptr_t addr, size_t len, served_func_t served, anon_func_t anon,
                      other_func_t other, int arg)
{
    uintptr_t a = addr, end = addr + len;
    int rc = 0, r;

    if (end < addr)
        end = UINTPTR_MAX;
    while (a < end) {
        preload_file_t *f = file_at(a);
        uintptr_t b, lo, hi;
        void *h;

        if (f != NULL) {
            b = f->base + f->span < end ? f->base + f->span : end;
            r = served(f, a, b, arg);
        } else if ((h = fp_preload_anon_at(a, &lo, &hi)) != NULL) {
            b = hi < end ? hi : end;
            r = anon(h, a, b, arg);
        } else {
            b = next_served(a, end);
            b = fp_preload_anon_next(a, b);
            r = other(a, b, arg);
        }
        if (rc == 0)
            rc = r;
        a = b;
    }
    return rc;
}

/* munmap of [a, b) of @f's region mapping. */
static int unmap_served(preload_file_t *f, uintptr_t a, uintptr_t b, int arg)
{
    preload_mapping_t **pp, *m;

    (void)arg;
    /* The same range mapped twice is one mapping here: drop one of them. */
    for (pp = &f->mappings; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->lo == a && (*pp)->hi == b)
            break;
    if (*pp != NULL) {
        m = *pp;
        *pp = m->next;
        free(m);
    } else {
        pp = &f->mappings;
        while ((m = *pp) != NULL) {
            if (m->hi <= a || m->lo >= b) {
                pp = &m->next;
                continue;
            }
            if (a <= m->lo && b >= m->hi) {
                *pp = m->next;
                free(m);
                continue;
            }
            if (a <= m->lo) {
                m->lo = b;
            } else if (b >= m->hi) {
                m->hi = a;
            } else {
                /* A hole in the middle: two mappings. */
                preload_mapping_t *rest = calloc(1, sizeof(*rest));

                if (rest != NULL) {
                    rest->lo = b;
                    rest->hi = m->hi;
                    rest->next = m->next;
                    m->hi = a;
                    m->next = rest;
                    pp = &rest->next;
                    continue;
                }
            }
            pp = &m->next;
        }
    }
    if (f->mappings == NULL)
        file_unserve(f);
    else
        file_protect(f); /* what no mapping covers any more: as unmapped (SIGSEGV) */
    return 0;
}

static int unmap_other(uintptr_t a, uintptr_t b, int arg)
{
    (void)arg;
    return fp_preload_real_munmap((void *)a, (size_t)(b - a));
}

/* madvise/posix_madvise advice @arg (MADV_*) on [a, b) of @f's region. */
static int advise_served(preload_file_t *f, uintptr_t a, uintptr_t b, int advice)
{
    switch (advice) {
    case MADV_WILLNEED:
        (void)farpool_prefetch(f->region, (void *)a, (size_t)(b - a));
        break;
    case MADV_DONTNEED:
    case MADV_PAGEOUT:
    case MADV_COLD:
        (void)farpool_release(f->region, (void *)a, (size_t)(b - a));
        break;
    default:
        break; /* the engine decides what is resident: other advice is dropped */
    }
    return 0;
}

static int advise_other(uintptr_t a, uintptr_t b, int advice)
{
    return fp_preload_real_madvise((void *)a, (size_t)(b - a), advice);
}

static int posix_advise_anon(void *h, uintptr_t a, uintptr_t b, int advice)
{
    return fp_preload_anon_advise(h, a, b, advice == POSIX_MADV_DONTNEED ? MADV_COLD : advice);
}

static int posix_advise_other(uintptr_t a, uintptr_t b, int advice)
{
    return real_posix_madvise((void *)a, (size_t)(b - a), advice);
}

static int sync_served(preload_file_t *f, uintptr_t a, uintptr_t b, int flags)
{
    (void)f, (void)a, (void)b, (void)flags;
    return 0; /* read-only: nothing to write */
}

static int sync_other(uintptr_t a, uintptr_t b, int flags)
{
    return real_msync((void *)a, (size_t)(b - a), flags);
}

/* ------------------------------------------------------------------------ */
/* The interposed functions                                                  */
/* ------------------------------------------------------------------------ */

/* Nothing is served: the interposed calls go straight to the C library. */
static bool nothing_served(void)
{
    return atomic_load_explicit(&nserved, memory_order_acquire) == 0 &&
           fp_preload_anon_count() == 0;
}

/* Anonymous memory the shim may serve (docs/preload.md says why these flags). */
static bool anon_candidate(int prot, int flags)
{
    return (flags & MAP_ANONYMOUS) && (flags & MAP_TYPE) == MAP_PRIVATE &&
           prot == (PROT_READ | PROT_WRITE) &&
           !(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_GROWSDOWN | MAP_STACK | MAP_HUGETLB |
                      MAP_NORESERVE | MAP_32BIT));
}

PRELOAD_EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    bool writable = false;
    void *p;

    if (fp_preload_inside || fp_preload_resolving)
        return fp_preload_real_mmap(addr, len, prot, flags, fd, off);
    if (flags & MAP_ANONYMOUS) {
        if (anon_candidate(prot, flags) && (p = fp_preload_anon_mmap(len)) != MAP_FAILED)
            return p;
        return fp_preload_real_mmap(addr, len, prot, flags, fd, off);
    }
    if (fd < 0 || (prot & PROT_EXEC) || !(prot & PROT_READ))
        return fp_preload_real_mmap(addr, len, prot, flags, fd, off);
    if (prot & PROT_WRITE) {
        /* Writable: only a private mapping, as a private copy (and only with --anon-over on). */
        if ((flags & MAP_TYPE) != MAP_PRIVATE || !fp_preload_anon_enabled())
            return fp_preload_real_mmap(addr, len, prot, flags, fd, off);
        writable = true;
    }
    fp_preload_inside = true;
    p = preload_mmap(len, flags, fd, off, writable);
    fp_preload_inside = false;
    if (p != MAP_FAILED)
        return p;
    return fp_preload_real_mmap(addr, len, prot, flags, fd, off);
}

PRELOAD_EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    return mmap(addr, len, prot, flags, fd, off);
}

static int unmap_anon(void *h, uintptr_t a, uintptr_t b, int arg)
{
    (void)arg;
    return fp_preload_anon_unmap(h, a, b);
}

PRELOAD_EXPORT int munmap(void *addr, size_t len)
{
    int rc;

    if (fp_preload_inside || fp_preload_resolving || nothing_served())
        return fp_preload_real_munmap(addr, len);
    if (((uintptr_t)addr & (fp_preload_page - 1)) != 0 || len == 0) {
        errno = EINVAL;
        return -1;
    }
    len = (len + fp_preload_page - 1) & ~(fp_preload_page - 1);
    fp_preload_inside = true;
    pthread_mutex_lock(&fp_preload_lock);
    rc = range_walk((uintptr_t)addr, len, unmap_served, unmap_anon, unmap_other, 0);
    pthread_mutex_unlock(&fp_preload_lock);
    fp_preload_inside = false;
    return rc;
}

PRELOAD_EXPORT int madvise(void *addr, size_t len, int advice)
{
    int rc;

    if (fp_preload_inside || fp_preload_resolving || nothing_served())
        return fp_preload_real_madvise(addr, len, advice);
    fp_preload_inside = true;
    pthread_mutex_lock(&fp_preload_lock);
    rc = range_walk((uintptr_t)addr, len, advise_served, fp_preload_anon_advise, advise_other,
                    advice);
    pthread_mutex_unlock(&fp_preload_lock);
    fp_preload_inside = false;
    return rc;
}

PRELOAD_EXPORT int posix_madvise(void *addr, size_t len, int advice)
{
    int rc;

    if (fp_preload_inside || fp_preload_resolving || nothing_served())
        return real_posix_madvise(addr, len, advice);
    fp_preload_inside = true;
    pthread_mutex_lock(&fp_preload_lock);
    /*
     * POSIX_MADV_* are MADV_* on Linux; the pieces not served keep their
     * POSIX meaning. POSIX_MADV_DONTNEED is only a hint (the bytes stay): on
     * anonymous memory it is MADV_COLD, not the discarding MADV_DONTNEED.
     */
    rc = range_walk((uintptr_t)addr, len, advise_served, posix_advise_anon, posix_advise_other,
                    advice);
    pthread_mutex_unlock(&fp_preload_lock);
    fp_preload_inside = false;
    return rc;
}

static int sync_anon(void *h, uintptr_t a, uintptr_t b, int flags)
{
    (void)h, (void)a, (void)b, (void)flags;
    return 0; /* private memory: there is no file to write (the kernel's msync does nothing) */
}

PRELOAD_EXPORT int msync(void *addr, size_t len, int flags)
{
    int rc;

    if (fp_preload_inside || fp_preload_resolving || nothing_served())
        return real_msync(addr, len, flags);
    fp_preload_inside = true;
    pthread_mutex_lock(&fp_preload_lock);
    rc = range_walk((uintptr_t)addr, len, sync_served, sync_anon, sync_other, flags);
    pthread_mutex_unlock(&fp_preload_lock);
    fp_preload_inside = false;
    return rc;
}

/*
 * mremap of [old, old + old_len) of @f's region mapping, a range one of the
 * caller's mappings holds. Shrinking unmaps the tail. Growing maps the file
 * from disk at a new address when MREMAP_MAYMOVE allows it (the region's
 * blocks after the range may have been made inaccessible, and giving them
 * back their protection would change the engine's view), else ENOMEM, as
 * the kernel says when a mapping cannot grow in place. The caller holds the
 * lock.
 */
static void *mremap_served(preload_file_t *f, uintptr_t old, size_t old_len, size_t new_len,
                           int flags)
{
    uintptr_t end = old + old_len;
    preload_mapping_t *m;
    struct stat st;
    void *p;
    int fd;

    for (m = f->mappings; m != NULL && !(m->lo <= old && end <= m->hi); m = m->next)
        ;
    if (m == NULL || old_len == 0 || (flags & (MREMAP_FIXED | MREMAP_DONTUNMAP))) {
        errno = m == NULL ? EFAULT : EINVAL;
        return MAP_FAILED;
    }
    if (new_len <= old_len) {
        if (new_len < old_len)
            (void)unmap_served(f, old + new_len, end, 0);
        return (void *)old;
    }
    if (!(flags & MREMAP_MAYMOVE)) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    /* From disk: the file's bytes, past its end the kernel's SIGBUS. */
    fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_dev != f->dev || st.st_ino != f->ino) {
        if (fd >= 0)
            close(fd);
        errno = ENOMEM;
        return MAP_FAILED;
    }
    p = fp_preload_real_mmap(NULL, new_len, PROT_READ, MAP_PRIVATE, fd, (off_t)(old - f->base));
    close(fd);
    if (p == MAP_FAILED)
        return MAP_FAILED;
    (void)unmap_served(f, old, end, 0);
    return p;
}

PRELOAD_EXPORT void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
    void *new_addr = NULL, *h, *p;
    uintptr_t a = (uintptr_t)old, lo, hi;
    preload_file_t *f;
    va_list ap;

    if (flags & MREMAP_FIXED) {
        va_start(ap, flags);
        new_addr = va_arg(ap, void *);
        va_end(ap);
    }
    if (fp_preload_inside || fp_preload_resolving || nothing_served())
        return fp_preload_real_mremap(old, old_len, new_len, flags, new_addr);
    if ((a & (fp_preload_page - 1)) != 0 || new_len == 0) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    old_len = (old_len + fp_preload_page - 1) & ~(fp_preload_page - 1);
    new_len = (new_len + fp_preload_page - 1) & ~(fp_preload_page - 1);
    fp_preload_inside = true;
    pthread_mutex_lock(&fp_preload_lock);
    if ((f = file_at(a)) != NULL)
        p = mremap_served(f, a, old_len, new_len, flags);
    else if ((h = fp_preload_anon_at(a, &lo, &hi)) != NULL)
        p = fp_preload_anon_mremap(h, a, old_len, new_len, flags, new_addr);
    else
        p = fp_preload_real_mremap(old, old_len, new_len, flags, new_addr);
    pthread_mutex_unlock(&fp_preload_lock);
    fp_preload_inside = false;
    return p;
}

/* True if @fd is a file whose region is mapped here. */
static bool fd_served(int fd)
{
    struct stat st;
    bool found = false;

    if (fstat(fd, &st) != 0)
        return false;
    pthread_mutex_lock(&fp_preload_lock);
    for (preload_file_t *f = files; f != NULL && !found; f = f->next)
        found = f->region != NULL && f->dev == st.st_dev && f->ino == st.st_ino;
    pthread_mutex_unlock(&fp_preload_lock);
    return found;
}

PRELOAD_EXPORT int posix_fadvise(int fd, off_t off, off_t len, int advice)
{
    bool ours;

    if (fp_preload_inside || fp_preload_resolving ||
        atomic_load_explicit(&nserved, memory_order_acquire) == 0)
        return real_fadvise(fd, off, len, advice);
    fp_preload_inside = true;
    ours = fd_served(fd);
    fp_preload_inside = false;
    return ours ? 0 : real_fadvise(fd, off, len, advice);
}

PRELOAD_EXPORT int posix_fadvise64(int fd, off_t off, off_t len, int advice)
{
    return posix_fadvise(fd, off, len, advice);
}

/* ------------------------------------------------------------------------ */
/* At exit                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * The descriptor the lines at exit go to: standard error, duplicated when the
 * shim is loaded if there will be something to say, because programs may
 * close standard error in their atexit handlers, which run before this
 * (coreutils' close_stdout does). -1: standard error as it is.
 */
static int exit_fd = -1;

/*
 * The process these lines are about: set when the shim is loaded and in
 * every child of fork(); a child of vfork() (which shares the parent's
 * memory and runs no fork handler) has another pid, and says nothing.
 */
static pid_t shim_pid;

static void pid_child(void)
{
    shim_pid = getpid();
}

__attribute__((constructor)) static void preload_init(void)
{
    const char *stats = getenv("FARPOOL_PRELOAD_STATS");
    const char *quiet = getenv("FARPOOL_PRELOAD_QUIET");
    const char *root = getenv("FARPOOL_PRELOAD_ROOT");

    if ((stats != NULL && *stats != '\0' && strcmp(stats, "0") != 0) ||
        (root != NULL && atol(root) == (long)getpid() && (quiet == NULL || *quiet == '\0')))
        exit_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 100);
    shim_pid = getpid();
    pthread_atfork(NULL, NULL, pid_child);
}

/* The lines at exit: --stats, and the globs that matched nothing. */
static void exit_lines(bool wait)
{
    preload_config_t *cfg;
    int fd = exit_fd >= 0 ? exit_fd : STDERR_FILENO;

    if (getpid() != shim_pid)
        return; /* a child of vfork(): not a word, nothing touched */
    cfg = config_get();
    if (!cfg->stats && !(cfg->root && !cfg->quiet))
        return;
    if (!wait && pthread_mutex_trylock(&fp_preload_lock) != 0)
        return; /* _exit() while the shim is busy (a signal handler): nothing said */
    if (!wait && !served_here && !fp_preload_anon_made_here()) {
        /* _exit() of a child of fork() that only read what its parent served: its parent says. */
        pthread_mutex_unlock(&fp_preload_lock);
        return;
    }
    fp_preload_inside = true;
    if (wait)
        pthread_mutex_lock(&fp_preload_lock);
    shim_pid = 0; /* said once: the destructor after _exit's says nothing */
    if (cfg->stats) {
        for (preload_file_t *f = files; f != NULL; f = f->next) {
            farpool_stats_t s = f->done, now;

            if (!f->ever_mapped)
                continue;
            if (f->region != NULL && farpool_region_stats(f->region, &now, sizeof(now)) == FP_OK)
                fp_preload_stats_add(&s, &now);
            dprintf(fd,
                    "farpool-preload: stats: region %s (%s): faults %llu, minor_faults %llu, "
                    "blocks_fetched %llu, bytes_in %llu, evictions %llu, fetch_errors %llu, "
                    "prefetch_issued %llu, prefetch_hinted %llu, cache_peak %llu, "
                    "fetch_p50_ns %llu, fetch_p99_ns %llu\n",
                    f->region_name, f->path, (unsigned long long)s.faults,
                    (unsigned long long)s.minor_faults, (unsigned long long)s.blocks_fetched,
                    (unsigned long long)s.bytes_in, (unsigned long long)s.evictions,
                    (unsigned long long)s.fetch_errors, (unsigned long long)s.prefetch_issued,
                    (unsigned long long)s.prefetch_hinted, (unsigned long long)s.cache_peak,
                    (unsigned long long)s.fetch_p50_ns, (unsigned long long)s.fetch_p99_ns);
        }
        fp_preload_anon_stats(fd);
    }
    if (cfg->root && !cfg->quiet)
        for (size_t i = 0; i < cfg->nglobs; i++)
            if (!atomic_load(&cfg->globs[i].used))
                dprintf(fd, "farpool-preload: --map %s matched no file this program mapped\n",
                        cfg->globs[i].glob);
    pthread_mutex_unlock(&fp_preload_lock);
    fp_preload_inside = false;
}

__attribute__((destructor)) static void preload_fini(void)
{
    exit_lines(true);
}

/* Programs that end with _exit(2) (dash; stress-ng's workers) say their lines here. */
PRELOAD_EXPORT void _exit(int status)
{
    static void (*next)(int);

    if (!fp_preload_inside && !fp_preload_resolving)
        exit_lines(false);
    if (next == NULL)
        next = (void (*)(int))dlsym(RTLD_NEXT, "_exit");
    if (next != NULL)
        next(status);
    syscall(SYS_exit_group, status);
    __builtin_unreachable();
}
