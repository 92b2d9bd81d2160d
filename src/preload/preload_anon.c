/* SPDX-License-Identifier: MIT */
/*
 * Anonymous memory of an unmodified program served from the pool (`farpool
 * run --anon-over SIZE`, docs/preload.md): private writable anonymous mmaps
 * and malloc-family allocations of SIZE bytes or more are each backed by a
 * private pool region of their own, mapped with farpool_map(); smaller ones
 * go to the next allocator (the C library's). Also the writable MAP_PRIVATE
 * mappings of served files (a private region holding a copy of the file's
 * bytes), which munmap, madvise and mremap treat as anonymous memory.
 *
 * DESIGN
 * - One region per allocation, created FARPOOL_REGION_UNPUBLISHED with one
 *   copy: nobody else can open it, closing it deletes it at once (the pool
 *   destroys an unpublished region whose lease is given back), and if the
 *   process dies its lease runs out and the pool's metadata service drops
 *   it. A fresh region is zeros, as fresh anonymous memory is: calloc and
 *   mmap need no memset.
 * - The table of allocations is under fp_preload_lock; a parallel array of
 *   atomic bounds lets free(), realloc() and malloc_usable_size() tell a
 *   pointer of the C library's from one of ours without the lock.
 * - The next allocator's functions are found with dlsym(RTLD_NEXT); while a
 *   thread is in dlsym (which may allocate) its allocations come from a
 *   small static bootstrap heap, whose blocks free() ignores.
 * - The library's objects are linked with -Wl,--wrap for the malloc family:
 *   their own allocations (the engine's tables, from any of its threads) go
 *   to the next allocator through the __wrap_* functions below, never into a
 *   region; so does everything done while fp_preload_inside is set.
 * - fork(): the child gets a copy of every allocation, as the kernel's
 *   copy-on-write would show it: the parent writes its dirty blocks back
 *   (prepare handler) and waits, holding the lock, while the child copies
 *   each region into a new one of its own, between the nodes, and maps it
 *   at the same address. MADV_DONTFORK and MADV_WIPEONFORK are kept.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client/context_int.h"
#include "common/parse.h"
#include "preload/preload_int.h"

#define PRELOAD_EXPORT __attribute__((visibility("default")))

#define ANON_MAX          4096         /* allocations served at once */
#define ANON_CHUNK        (4u << 20)   /* bytes per step of a copy between regions */
#define ANON_FORK_WAIT_MS (600 * 1000) /* how long a parent waits for its child's copies */

/* ------------------------------------------------------------------------ */
/* The next allocator                                                        */
/* ------------------------------------------------------------------------ */

typedef struct next_alloc {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*memalign)(size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*usable)(void *);
} next_alloc_t;

static next_alloc_t nx;
static _Atomic bool nx_ready;
static pthread_mutex_t nx_lock = PTHREAD_MUTEX_INITIALIZER;

/* The bootstrap heap: allocations made while this thread is in dlsym. Never freed. */
#define BOOT_BYTES (256u << 10)
static _Alignas(64) unsigned char boot[BOOT_BYTES];
static atomic_size_t boot_used;

static bool boot_owns(const void *p)
{
    return (const unsigned char *)p >= boot && (const unsigned char *)p < boot + BOOT_BYTES;
}

/* @n bytes aligned to @align (a power of two, at least 16), the size kept before them. */
static void *boot_alloc(size_t n, size_t align)
{
    size_t used = atomic_load(&boot_used), start, end;

    if (align < 16)
        align = 16;
    do {
        start = (used + 16 + align - 1) & ~(align - 1);
        if (n > BOOT_BYTES || start > BOOT_BYTES - n)
            return NULL;
        end = start + n;
    } while (!atomic_compare_exchange_weak(&boot_used, &used, end));
    memcpy(boot + start - sizeof(size_t), &n, sizeof(n));
    return boot + start;
}

static size_t boot_size(const void *p)
{
    size_t n;

    memcpy(&n, (const unsigned char *)p - sizeof(size_t), sizeof(n));
    return n;
}

/* True once the next allocator's functions are known (false while this thread looks). */
static bool nx_get(void)
{
    next_alloc_t n;

    if (atomic_load_explicit(&nx_ready, memory_order_acquire))
        return true;
    if (fp_preload_resolving)
        return false;
    pthread_mutex_lock(&nx_lock);
    if (!atomic_load(&nx_ready)) {
        fp_preload_resolving = true;
        n.malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
        n.free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
        n.calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
        n.realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
        n.memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
        n.posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
        n.aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
        n.valloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "valloc");
        n.pvalloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "pvalloc");
        n.usable = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
        fp_preload_resolving = false;
        if (n.malloc != NULL && n.free != NULL && n.calloc != NULL && n.realloc != NULL &&
            n.memalign != NULL && n.posix_memalign != NULL && n.aligned_alloc != NULL &&
            n.valloc != NULL && n.pvalloc != NULL && n.usable != NULL) {
            nx = n;
            atomic_store_explicit(&nx_ready, true, memory_order_release);
        }
    }
    pthread_mutex_unlock(&nx_lock);
    return atomic_load_explicit(&nx_ready, memory_order_acquire);
}

static void *next_malloc(size_t n)
{
    return nx_get() ? nx.malloc(n) : boot_alloc(n, 16);
}

static void next_free(void *p)
{
    if (p != NULL && !boot_owns(p) && nx_get())
        nx.free(p);
}

static void *next_calloc(size_t n, size_t s)
{
    if (nx_get())
        return nx.calloc(n, s);
    if (s != 0 && n > SIZE_MAX / s)
        return NULL;
    return boot_alloc(n * s, 16); /* never used before: zeros */
}

static void *next_realloc(void *p, size_t n)
{
    void *q;

    if (p != NULL && boot_owns(p)) {
        size_t old = boot_size(p);

        q = next_malloc(n);
        if (q != NULL)
            memcpy(q, p, old < n ? old : n);
        return q;
    }
    return nx_get() ? nx.realloc(p, n) : boot_alloc(n, 16);
}

static size_t next_usable(void *p)
{
    if (p == NULL)
        return 0;
    if (boot_owns(p))
        return boot_size(p);
    return nx_get() ? nx.usable(p) : 0;
}

/*
 * What the library's objects call instead of the malloc family (the shim is
 * linked with -Wl,--wrap=malloc and so on): the next allocator's.
 */
void *__wrap_malloc(size_t n);
void __wrap_free(void *p);
void *__wrap_calloc(size_t n, size_t s);
void *__wrap_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n)
{
    return next_malloc(n);
}

void __wrap_free(void *p)
{
    next_free(p);
}

void *__wrap_calloc(size_t n, size_t s)
{
    return next_calloc(n, s);
}

void *__wrap_realloc(void *p, size_t n)
{
    return next_realloc(p, n);
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

enum { ANON_UNREAD = 0, ANON_OFF, ANON_ON };

static _Atomic int anon_state;
static uint64_t anon_over;    /* allocations of this many bytes or more are served */
static uint32_t anon_granule; /* 0: the library's default */

/* One line on standard error, without allocating (the malloc path may say it). */
__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Read FARPOOL_PRELOAD_ANON_OVER and FARPOOL_PRELOAD_GRANULE (no allocation). */
static int anon_config(void)
{
    const char *over = getenv("FARPOOL_PRELOAD_ANON_OVER");
    const char *gran = getenv("FARPOOL_PRELOAD_GRANULE");
    int state = ANON_OFF;
    uint64_t v;

    if (gran != NULL && *gran != '\0') {
        if (fp_parse_size(gran, &v) == FP_OK && v >= 4096 && v <= (2u << 20) && (v & (v - 1)) == 0)
            anon_granule = (uint32_t)v;
        else
            say("farpool-preload: ignoring FARPOOL_PRELOAD_GRANULE=%s (a power of two from 4K "
                "to 2M)\n",
                gran);
    }
    if (over != NULL && *over != '\0') {
        if (fp_parse_size(over, &v) == FP_OK && v > 0) {
            anon_over = v;
            state = ANON_ON;
        } else {
            say("farpool-preload: ignoring FARPOOL_PRELOAD_ANON_OVER=%s (not a size)\n", over);
        }
    }
    atomic_store(&anon_state, state);
    return state;
}

bool fp_preload_anon_enabled(void)
{
    int s = atomic_load_explicit(&anon_state, memory_order_acquire);

    if (s == ANON_UNREAD)
        s = anon_config();
    return s == ANON_ON;
}

/* An allocation of @n bytes is served (this thread is not in the shim, --anon-over is on). */
static bool anon_wanted(size_t n)
{
    return !fp_preload_inside && !fp_preload_resolving && fp_preload_anon_enabled() &&
           n >= anon_over;
}

/* ------------------------------------------------------------------------ */
/* The table of allocations                                                  */
/* ------------------------------------------------------------------------ */

enum { ANON_MALLOC, ANON_MMAP, ANON_PRIVATE };           /* what gave it out */
enum { ANON_FORK_COPY, ANON_FORK_NONE, ANON_FORK_WIPE }; /* what a child of fork gets */

/* Where the bytes of a private file mapping come from (its file's region, as opened). */
typedef struct anon_source {
    farpool_region_t region; /* a copy of the file region's description: see shadow_open */
    uint64_t off;            /* the file's offset at the mapping's first byte */
    uint64_t len;            /* bytes of the file from there (the rest is zeros) */
} anon_source_t;

typedef struct anon_alloc {
    farpool_region_t *region;
    uintptr_t base, span; /* the region's mapping */
    uintptr_t user;       /* what the caller got */
    size_t size;          /* ...of this many bytes (malloc) or mapped (mmap) */
    uint8_t kind, fork;   /* ANON_*, ANON_FORK_* */
    bool fork_bad;        /* fork: the parent could not write its blocks back */
    uint32_t slot;        /* its index in anon_tab */
    uintptr_t (*live)[2]; /* mmap and private kinds: the ranges still mapped */
    size_t nlive, caplive;
    anon_source_t *src; /* private kind: NULL for the others */
} anon_alloc_t;

typedef struct anon_key {
    _Atomic uintptr_t lo, hi; /* [lo, hi): a served allocation's mapping; 0, 0: free */
} anon_key_t;

static anon_key_t anon_keys[ANON_MAX];
static anon_alloc_t *anon_tab[ANON_MAX]; /* fp_preload_lock */
static _Atomic uint32_t anon_hw;         /* slots [0, anon_hw) may be in use */
static atomic_size_t anon_n;             /* allocations served */
static bool anon_here;                   /* fp_preload_lock: anon_new made one in this process */
static uint32_t anon_seq;                /* fp_preload_lock: names */
static bool said_full, said_create, said_map; /* fp_preload_lock */

/* Counters at exit (fp_preload_lock). */
static farpool_stats_t anon_done;
static uint64_t anon_regions, anon_bytes, anon_peak;

/* A fork's pipe: the child says it copied its regions (fp_preload_lock). */
static int fork_pipe[2] = {-1, -1};

size_t fp_preload_anon_count(void)
{
    return atomic_load_explicit(&anon_n, memory_order_acquire);
}

/* True if @p may be in a served allocation (no lock: the caller checks under it). */
static bool anon_maybe(uintptr_t p)
{
    uint32_t hw = atomic_load_explicit(&anon_hw, memory_order_acquire);

    for (uint32_t i = 0; i < hw; i++) {
        uintptr_t lo = atomic_load_explicit(&anon_keys[i].lo, memory_order_acquire);

        if (p >= lo && p < atomic_load_explicit(&anon_keys[i].hi, memory_order_acquire))
            return true;
    }
    return false;
}

/* The allocation whose mapping holds @p. The caller holds fp_preload_lock. */
static anon_alloc_t *anon_find(uintptr_t p)
{
    uint32_t hw = atomic_load(&anon_hw);

    for (uint32_t i = 0; i < hw; i++) {
        anon_alloc_t *x = anon_tab[i];

        if (x != NULL && p >= x->base && p < x->base + x->span)
            return x;
    }
    return NULL;
}

static uintptr_t page_up(uintptr_t v)
{
    return (v + fp_preload_page - 1) & ~(uintptr_t)(fp_preload_page - 1);
}

static void said_once(bool *flag, const char *what, fp_status_t status, uint64_t size)
{
    if (*flag)
        return;
    *flag = true;
    say("farpool-preload: %s (%llu bytes): %s; such allocations are the C library's and the "
        "kernel's until one succeeds (said once)\n",
        what, (unsigned long long)size, farpool_status_string(status));
}

/*
 * A new private region of @size bytes, not mapped. The caller holds
 * fp_preload_lock with fp_preload_inside set. NULL: said why (once).
 */
static farpool_region_t *region_new(uint64_t size)
{
    farpool_region_params_t params = {
        .field_mask = FARPOOL_REGION_PARAM_REPLICAS | FARPOOL_REGION_PARAM_FLAGS |
                      FARPOOL_REGION_PARAM_GRANULE,
        .replicas = 1,
        .flags = FARPOOL_REGION_UNPUBLISHED,
        .granule = anon_granule,
    };
    farpool_region_t *r;
    char name[64];
    fp_status_t status;

    if (!fp_preload_context_get())
        return NULL;
    snprintf(name, sizeof(name), "anon.%ld.%u", (long)getpid(), anon_seq++);
    status = farpool_region_create_ex(fp_preload_context, name, size, &params, &r);
    if (status != FP_OK) {
        said_once(&said_create, "cannot create a region for anonymous memory", status, size);
        return NULL;
    }
    return r;
}

/* Map @r (at @fixed, or where the library chooses when 0); 0: failed, said once. */
static uintptr_t region_map_at(farpool_region_t *r, uintptr_t fixed)
{
    fp_status_t status;
    void *base;

    r->desc.fixed_addr = fixed; /* internal: what FARPOOL_REGION_FIXED does */
    status = farpool_map(r, &base);
    if (status == FP_OK && fixed != 0 && (uintptr_t)base != fixed) {
        (void)farpool_unmap(r);
        status = FP_ERR_IN_USE;
    }
    if (status != FP_OK) {
        said_once(&said_map, "cannot map a region for anonymous memory", status,
                  farpool_region_size(r));
        return 0;
    }
    return (uintptr_t)base;
}

/* Record @x (its region mapped) in a free slot; false if the table is full. */
static bool anon_insert(anon_alloc_t *x)
{
    uint32_t hw = atomic_load(&anon_hw), i;

    for (i = 0; i < hw && anon_tab[i] != NULL; i++)
        ;
    if (i == ANON_MAX) {
        if (!said_full)
            say("farpool-preload: %u anonymous allocations are served already; the next ones "
                "are the C library's (said once)\n",
                ANON_MAX);
        said_full = true;
        return false;
    }
    x->slot = i;
    anon_tab[i] = x;
    atomic_store_explicit(&anon_keys[i].lo, x->base, memory_order_release);
    atomic_store_explicit(&anon_keys[i].hi, x->base + x->span, memory_order_release);
    if (i == hw)
        atomic_store_explicit(&anon_hw, hw + 1, memory_order_release);
    atomic_fetch_add_explicit(&anon_n, 1, memory_order_release);
    anon_regions++;
    anon_bytes += x->span;
    if (anon_bytes > anon_peak)
        anon_peak = anon_bytes;
    return true;
}

/* Forget @x's slot (its region is the caller's to close). */
static void anon_remove(anon_alloc_t *x)
{
    atomic_store_explicit(&anon_keys[x->slot].hi, 0, memory_order_release);
    atomic_store_explicit(&anon_keys[x->slot].lo, 0, memory_order_release);
    anon_tab[x->slot] = NULL;
    atomic_fetch_sub_explicit(&anon_n, 1, memory_order_release);
    anon_bytes -= x->span;
}

static void anon_free_record(anon_alloc_t *x)
{
    next_free(x->live);
    next_free(x->src);
    next_free(x);
}

/* Close @x's region (its blocks are deleted with it) and forget it. */
static void anon_destroy(anon_alloc_t *x)
{
    farpool_stats_t s;

    anon_remove(x);
    if (farpool_region_stats(x->region, &s, sizeof(s)) == FP_OK)
        fp_preload_stats_add(&anon_done, &s);
    farpool_region_close(x->region);
    anon_free_record(x);
}

/* Keep [lo, hi) as the one range of @x still mapped. */
static bool live_init(anon_alloc_t *x, uintptr_t lo, uintptr_t hi)
{
    x->live = next_malloc(4 * sizeof(*x->live));
    if (x->live == NULL)
        return false;
    x->caplive = 4;
    x->nlive = 1;
    x->live[0][0] = lo;
    x->live[0][1] = hi;
    return true;
}

/*
 * A new allocation of @size bytes aligned to @align (0: a page), of @kind,
 * its region created, filled by @fill (NULL: zeros) and mapped. The caller
 * holds fp_preload_lock with fp_preload_inside set. NULL: not served.
 */
typedef fp_status_t (*anon_fill_func_t)(farpool_region_t *r, void *arg);

static anon_alloc_t *anon_new(size_t size, size_t align, int kind, anon_fill_func_t fill, void *arg)
{
    anon_alloc_t *x;
    uint64_t total;
    fp_status_t status;

    if (fp_preload_page == 0)
        fp_preload_page = (size_t)sysconf(_SC_PAGESIZE);
    if (size > SIZE_MAX / 2 || align > SIZE_MAX / 4)
        return NULL;
    total = page_up(size);
    if (align > fp_preload_page)
        total += align - fp_preload_page;
    x = next_calloc(1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->region = region_new(total);
    if (x->region == NULL)
        goto err_free;
    if (fill != NULL) {
        status = fill(x->region, arg);
        if (status != FP_OK) {
            say("farpool-preload: cannot fill a private region (%llu bytes): %s\n",
                (unsigned long long)total, farpool_status_string(status));
            goto err_close;
        }
    }
    x->base = region_map_at(x->region, 0);
    if (x->base == 0)
        goto err_close;
    x->span = page_up(total);
    x->user = align > fp_preload_page ? (x->base + align - 1) & ~(uintptr_t)(align - 1) : x->base;
    x->size = size;
    x->kind = (uint8_t)kind;
    x->fork = ANON_FORK_COPY;
    if (kind != ANON_MALLOC && !live_init(x, x->user, x->user + page_up(size)))
        goto err_close;
    if (!anon_insert(x))
        goto err_close;
    anon_here = true;
    return x;

err_close:
    farpool_region_close(x->region);
err_free:
    anon_free_record(x);
    return NULL;
}

/* malloc and friends of @size bytes aligned to @align: a served pointer, or NULL. */
static void *anon_malloc(size_t size, size_t align)
{
    anon_alloc_t *x;

    fp_preload_inside = true;
    pthread_mutex_lock(&fp_preload_lock);
    x = anon_new(size, align, ANON_MALLOC, NULL, NULL);
    pthread_mutex_unlock(&fp_preload_lock);
    fp_preload_inside = false;
    return x != NULL ? (void *)x->user : NULL;
}

/* The served allocation handed out as @p; NULL if @p is not ours. Takes fp_preload_lock. */
static anon_alloc_t *anon_lock_user(void *p)
{
    anon_alloc_t *x;

    if (p == NULL || atomic_load_explicit(&anon_n, memory_order_acquire) == 0 ||
        !anon_maybe((uintptr_t)p))
        return NULL;
    pthread_mutex_lock(&fp_preload_lock);
    x = anon_find((uintptr_t)p);
    if (x == NULL)
        pthread_mutex_unlock(&fp_preload_lock);
    return x;
}

/* Bytes usable at @x's pointer. */
static size_t anon_usable(const anon_alloc_t *x)
{
    return (size_t)(x->base + x->span - x->user);
}

/* ------------------------------------------------------------------------ */
/* Copies between regions                                                    */
/* ------------------------------------------------------------------------ */

static uint8_t *chunk; /* fp_preload_lock: ANON_CHUNK bytes for copies */
static void *zeros;    /* ANON_CHUNK bytes never written: the kernel's zero page */

static fp_status_t chunk_get(void)
{
    if (chunk == NULL)
        chunk = next_malloc(ANON_CHUNK);
    return chunk != NULL ? FP_OK : FP_ERR_NO_MEMORY;
}

static fp_status_t zeros_get(void)
{
    if (zeros == NULL) {
        void *p =
            fp_preload_real_mmap(NULL, ANON_CHUNK, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        if (p == MAP_FAILED)
            return FP_ERR_NO_MEMORY;
        zeros = p;
    }
    return FP_OK;
}

/*
 * @shadow: a region object of this context for the region @orig describes
 * (one the parent of fork() or a closed mapping opened), read by its id
 * straight from the nodes: opened by nobody, never mapped. Free it with
 * shadow_close().
 */
static void shadow_open(farpool_region_t *shadow, const farpool_region_t *orig)
{
    memset(shadow, 0, sizeof(*shadow));
    shadow->ctx = fp_preload_context;
    memcpy(shadow->name, orig->name, sizeof(shadow->name));
    shadow->size = orig->size;
    shadow->granule = orig->granule;
    shadow->flags = FARPOOL_REGION_READONLY;
    shadow->desc = orig->desc;
}

static void shadow_close(farpool_region_t *shadow)
{
    fp_region_io_close(shadow);
}

/*
 * Write @len bytes to @dst at @dst_off: those of @src from @src_off (NULL:
 * zeros), straight between the nodes.
 */
static fp_status_t region_copy(farpool_region_t *src, uint64_t src_off, farpool_region_t *dst,
                               uint64_t dst_off, uint64_t len)
{
    fp_status_t status = src != NULL ? chunk_get() : zeros_get();

    for (uint64_t done = 0; status == FP_OK && done < len;) {
        size_t n = len - done < ANON_CHUNK ? (size_t)(len - done) : ANON_CHUNK;

        if (src != NULL)
            status = farpool_region_pread(src, chunk, n, src_off + done);
        if (status == FP_OK)
            status = farpool_region_pwrite(dst, src != NULL ? chunk : zeros, n, dst_off + done);
        done += n;
    }
    return status;
}

/* Copy @src's bytes [off, off + len) to the start of a new region (a private file mapping). */
typedef struct copy_arg {
    farpool_region_t *src;
    uint64_t off, len;
} copy_arg_t;

static fp_status_t fill_copy(farpool_region_t *r, void *arg)
{
    copy_arg_t *c = arg;

    return region_copy(c->src, c->off, r, 0, c->len);
}

/* ------------------------------------------------------------------------ */
/* Ranges of allocations: what munmap and madvise do                        */
/* ------------------------------------------------------------------------ */

void *fp_preload_anon_at(uintptr_t a, uintptr_t *lo_p, uintptr_t *hi_p)
{
    anon_alloc_t *x;

    if (atomic_load(&anon_n) == 0 || (x = anon_find(a)) == NULL)
        return NULL;
    *lo_p = x->base;
    *hi_p = x->base + x->span;
    return x;
}

uintptr_t fp_preload_anon_next(uintptr_t a, uintptr_t end)
{
    uint32_t hw = atomic_load(&anon_hw);
    uintptr_t best = end;

    for (uint32_t i = 0; i < hw; i++)
        if (anon_tab[i] != NULL && anon_tab[i]->base > a && anon_tab[i]->base < best)
            best = anon_tab[i]->base;
    return best;
}

/* True if some byte of [a, b) is in a range of @x still mapped. */
static bool live_any(const anon_alloc_t *x, uintptr_t a, uintptr_t b)
{
    if (x->live == NULL)
        return a < x->user + x->size && b > x->user; /* malloc: what was handed out */
    for (size_t i = 0; i < x->nlive; i++)
        if (x->live[i][0] < b && x->live[i][1] > a)
            return true;
    return false;
}

/* Take [a, b) out of @x's mapped ranges. False: no memory to split one (nothing done). */
static bool live_cut(anon_alloc_t *x, uintptr_t a, uintptr_t b)
{
    for (size_t i = 0; i < x->nlive; i++) {
        uintptr_t lo = x->live[i][0], hi = x->live[i][1];

        if (hi <= a || lo >= b)
            continue;
        if (a > lo && b < hi) { /* a hole in the middle: two ranges */
            if (x->nlive == x->caplive) {
                uintptr_t(*more)[2] = next_realloc(x->live, 2 * x->caplive * sizeof(*x->live));

                if (more == NULL)
                    return false;
                x->live = more;
                x->caplive *= 2;
            }
            x->live[x->nlive][0] = b;
            x->live[x->nlive][1] = hi;
            x->nlive++;
            x->live[i][1] = a;
        } else if (a <= lo && b >= hi) {
            x->live[i][0] = x->live[--x->nlive][0];
            x->live[i][1] = x->live[x->nlive][1];
            i--;
        } else if (a <= lo) {
            x->live[i][0] = b;
        } else {
            x->live[i][1] = a;
        }
    }
    return true;
}

/* The whole blocks of @x's region within [a, b), as [*ga_p, *gb_p) (empty: ga >= gb). */
static void whole_blocks(const anon_alloc_t *x, uintptr_t a, uintptr_t b, uintptr_t *ga_p,
                         uintptr_t *gb_p)
{
    uintptr_t g = farpool_region_granule(x->region);

    *ga_p = x->base + ((a - x->base + g - 1) & ~(g - 1));
    *gb_p = x->base + ((b - x->base) & ~(g - 1));
    if (*gb_p > x->base + x->span)
        *gb_p = x->base + x->span;
}

/* Make the whole blocks of [a, b) that no mapped range of @x covers inaccessible. */
static void protect_dead(anon_alloc_t *x, uintptr_t a, uintptr_t b)
{
    uintptr_t g = farpool_region_granule(x->region), ga, gb;

    whole_blocks(x, a, b, &ga, &gb);
    for (uintptr_t blk = ga; blk < gb; blk += g)
        if (!live_any(x, blk, blk + g))
            (void)mprotect((void *)blk, (size_t)g, PROT_NONE);
}

int fp_preload_anon_unmap(void *h, uintptr_t a, uintptr_t b)
{
    anon_alloc_t *x = h;
    uintptr_t ga, gb;

    if (x->live == NULL) {
        /* A malloc'd block unmapped by hand: as a free of it. */
        if (a <= x->user && b >= x->user + x->size)
            anon_destroy(x);
        return 0;
    }
    if (!live_cut(x, a, b)) {
        errno = ENOMEM;
        return -1;
    }
    if (x->nlive == 0) {
        anon_destroy(x);
        return 0;
    }
    /*
     * As unmapped: SIGSEGV on access. Only the whole blocks (the engine
     * fills a block with one UFFDIO_COPY, which must fall within one VMA);
     * they leave the cache first. The region keeps its size until the last
     * range goes.
     */
    whole_blocks(x, a, b, &ga, &gb);
    if (ga < gb)
        (void)farpool_release(x->region, (void *)ga, (size_t)(gb - ga));
    protect_dead(x, a, b);
    return 0;
}

/*
 * What fresh memory of @x holds at [a, b): zeros, or for a private file
 * mapping the file's bytes. Whole blocks are dropped from the cache and
 * written on the node (dropped again after, in case the read-ahead fetched
 * one meanwhile); the parts of blocks at either end are written through the
 * mapping. Bytes of ranges unmapped are left alone.
 */
static fp_status_t anon_refill(anon_alloc_t *x, uintptr_t a, uintptr_t b)
{
    uintptr_t g = farpool_region_granule(x->region), ga, gb;
    fp_status_t status = FP_OK;
    farpool_region_t shadow;

    whole_blocks(x, a, b, &ga, &gb);
    if (gb - ga < 2 * g || ga >= gb)
        ga = gb = a; /* small: all through the mapping */
    if (x->src != NULL) {
        if ((status = chunk_get()) != FP_OK)
            return status;
        shadow_open(&shadow, &x->src->region);
    }
    /* [p, q) through the mapping, for each of the pieces outside [ga, gb). */
    for (int piece = 0; piece < 2 && status == FP_OK; piece++) {
        uintptr_t p = piece == 0 ? a : (gb > ga ? gb : b), q = piece == 0 ? (ga > a ? ga : b) : b;

        if (piece == 1 && gb <= ga)
            break;
        for (uintptr_t s = p; s < q && status == FP_OK;) {
            uintptr_t t = q - s < ANON_CHUNK ? q : s + ANON_CHUNK;

            if (!live_any(x, s, t)) {
                s = t;
                continue;
            }
            if (x->src == NULL) {
                memset((void *)s, 0, (size_t)(t - s));
            } else {
                uint64_t off = s - x->user; /* offset in the mapping = in the file from src->off */
                uint64_t have = off < x->src->len ? x->src->len - off : 0;
                size_t n = (size_t)(t - s), from = have < n ? (size_t)have : n;

                if (from > 0)
                    status = farpool_region_pread(&shadow, chunk, from, x->src->off + off);
                if (status == FP_OK) {
                    memcpy((void *)s, chunk, from);
                    memset((void *)(s + from), 0, n - from);
                }
            }
            s = t;
        }
    }
    if (status == FP_OK && ga < gb) {
        status = farpool_release(x->region, (void *)ga, (size_t)(gb - ga));
        if (status == FP_OK && x->src == NULL) {
            status = region_copy(NULL, 0, x->region, ga - x->base, gb - ga);
        } else if (status == FP_OK) {
            uint64_t off = ga - x->user, end = gb - x->user;
            uint64_t have = x->src->len > off ? x->src->len - off : 0;
            uint64_t from = have < end - off ? have : end - off;

            status = region_copy(&shadow, x->src->off + off, x->region, ga - x->base, from);
            if (status == FP_OK && from < end - off)
                status = region_copy(NULL, 0, x->region, ga - x->base + from, end - off - from);
        }
        if (status == FP_OK)
            status = farpool_release(x->region, (void *)ga, (size_t)(gb - ga));
    }
    if (x->src != NULL)
        shadow_close(&shadow);
    return status;
}

int fp_preload_anon_advise(void *h, uintptr_t a, uintptr_t b, int advice)
{
    anon_alloc_t *x = h;
    fp_status_t status;
    bool whole = a <= x->user && b >= x->user + x->size;

    if (a < x->base || a >= x->base + x->span)
        return 0;
    if (b > x->base + x->span)
        b = x->base + x->span;
    switch (advice) {
    case MADV_WILLNEED:
    case MADV_POPULATE_READ:
    case MADV_POPULATE_WRITE:
        (void)farpool_prefetch(x->region, (void *)a, (size_t)(b - a));
        break;
    case MADV_PAGEOUT:
    case MADV_COLD:
        /* The bytes stay: dirty blocks are written back, then dropped from the cache. */
        (void)farpool_release(x->region, (void *)a, (size_t)(b - a));
        break;
    case MADV_DONTNEED:
    case MADV_REMOVE:
        status = anon_refill(x, a, b);
        if (status != FP_OK) {
            /* Never the old bytes where the kernel gives fresh ones: inaccessible. */
            say("farpool-preload: madvise(DONTNEED) of a served anonymous range failed (%s); "
                "the range is made inaccessible\n",
                farpool_status_string(status));
            (void)live_cut(x, a, b);
            protect_dead(x, a, b);
        }
        break;
    case MADV_DONTFORK:
        if (whole)
            x->fork = ANON_FORK_NONE;
        break;
    case MADV_WIPEONFORK:
        if (whole)
            x->fork = ANON_FORK_WIPE;
        break;
    case MADV_DOFORK:
    case MADV_KEEPONFORK:
        if (whole)
            x->fork = ANON_FORK_COPY;
        break;
    default:
        break; /* MADV_FREE (the bytes may stay), MADV_HUGEPAGE, ...: the engine decides */
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* mmap, mremap, private file mappings                                       */
/* ------------------------------------------------------------------------ */

void *fp_preload_anon_mmap(size_t len)
{
    anon_alloc_t *x;

    if (!anon_wanted(len))
        return MAP_FAILED;
    fp_preload_inside = true;
    pthread_mutex_lock(&fp_preload_lock);
    x = anon_new(len, 0, ANON_MMAP, NULL, NULL);
    pthread_mutex_unlock(&fp_preload_lock);
    fp_preload_inside = false;
    return x != NULL ? (void *)x->user : MAP_FAILED;
}

void *fp_preload_anon_private_copy(farpool_region_t *region, uint64_t off, size_t copy, size_t len)
{
    copy_arg_t c = {.src = region, .off = off, .len = copy};
    anon_alloc_t *x;
    anon_source_t *src = next_calloc(1, sizeof(*src));

    if (src == NULL)
        return MAP_FAILED;
    x = anon_new(len, 0, ANON_PRIVATE, fill_copy, &c);
    if (x == NULL) {
        next_free(src);
        return MAP_FAILED;
    }
    memcpy(&src->region, region, sizeof(*region));
    src->region.ctx = NULL;
    src->region.next = NULL;
    src->region.engine = NULL;
    src->region.remap = NULL;
    src->region.io = NULL;
    src->off = off;
    src->len = copy;
    x->src = src;
    return (void *)x->user;
}

void *fp_preload_anon_mremap(void *h, uintptr_t old, size_t old_len, size_t new_len, int flags,
                             void *new_addr)
{
    anon_alloc_t *x = h, *y;
    uintptr_t end = old + old_len, new_end;
    size_t i;

    if (x->live == NULL || (flags & MREMAP_DONTUNMAP) || old_len == 0 || new_len == 0) {
        errno = EINVAL; /* a malloc'd block; a duplicate of a shared mapping; DONTUNMAP */
        return MAP_FAILED;
    }
    for (i = 0; i < x->nlive && !(x->live[i][0] <= old && end <= x->live[i][1]); i++)
        ;
    if (i == x->nlive) {
        errno = EFAULT; /* not within one mapped range */
        return MAP_FAILED;
    }
    new_len = page_up(new_len);
    new_end = old + new_len;
    if (!(flags & MREMAP_FIXED) && new_len <= old_len) {
        if (new_len < old_len && fp_preload_anon_unmap(x, new_end, end) != 0)
            return MAP_FAILED;
        return (void *)old;
    }
    /* Grow in place: the range ends a mapped range, the region has room after it. */
    if (!(flags & MREMAP_FIXED) && end == x->live[i][1] && new_end <= x->base + x->span &&
        !live_any(x, end, new_end)) {
        uintptr_t g = farpool_region_granule(x->region);
        uintptr_t lo = x->base + ((end - x->base) & ~(g - 1));
        uintptr_t hi = x->base + ((new_end - x->base + g - 1) & ~(g - 1));

        if (hi > x->base + x->span)
            hi = x->base + x->span;
        x->live[i][1] = new_end;
        (void)mprotect((void *)lo, (size_t)(hi - lo), PROT_READ | PROT_WRITE);
        /* The grown part is fresh memory: zeros (or what it held before an unmap). */
        if (anon_refill(x, end, new_end) == FP_OK)
            return (void *)old;
        x->live[i][1] = end;
        protect_dead(x, end, new_end);
        errno = ENOMEM;
        return MAP_FAILED;
    }
    if (!(flags & MREMAP_MAYMOVE)) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    if ((flags & MREMAP_FIXED) &&
        (((uintptr_t)new_addr & (fp_preload_page - 1)) != 0 ||
         ((uintptr_t)new_addr < end && (uintptr_t)new_addr + new_len > old))) {
        errno = EINVAL;
        return MAP_FAILED;
    }
    /* Move: a new region with the bytes of [old, end), written back first. */
    if (farpool_sync(x->region) != FP_OK) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    y = next_calloc(1, sizeof(*y));
    if (y == NULL) {
        errno = ENOMEM;
        return MAP_FAILED;
    }
    y->region = region_new(new_len);
    if (y->region == NULL || region_copy(x->region, old - x->base, y->region, 0,
                                         old_len < new_len ? old_len : new_len) != FP_OK)
        goto err;
    if ((flags & MREMAP_FIXED) && anon_find((uintptr_t)new_addr) == NULL &&
        fp_preload_anon_next((uintptr_t)new_addr, (uintptr_t)new_addr + new_len) ==
            (uintptr_t)new_addr + new_len)
        (void)fp_preload_real_munmap(new_addr, new_len); /* MREMAP_FIXED replaces what is there */
    else if (flags & MREMAP_FIXED)
        goto err; /* over another served range: not supported */
    y->base = region_map_at(y->region, (flags & MREMAP_FIXED) ? (uintptr_t)new_addr : 0);
    if (y->base == 0)
        goto err;
    y->span = page_up(new_len);
    y->user = y->base;
    y->size = new_len;
    y->kind = ANON_MMAP;
    y->fork = x->fork;
    if (!live_init(y, y->base, y->base + new_len) || !anon_insert(y))
        goto err;
    (void)fp_preload_anon_unmap(x, old, end);
    return (void *)y->user;

err:
    if (y->region != NULL)
        farpool_region_close(y->region);
    anon_free_record(y);
    errno = (flags & MREMAP_FIXED) ? EINVAL : ENOMEM;
    return MAP_FAILED;
}

/* ------------------------------------------------------------------------ */
/* fork()                                                                    */
/* ------------------------------------------------------------------------ */

void fp_preload_anon_prepare(void)
{
    uint32_t hw = atomic_load(&anon_hw);
    bool copies = false;

    if (atomic_load(&anon_n) == 0)
        return;
    /* The nodes must hold every byte the child copies. */
    for (uint32_t i = 0; i < hw; i++) {
        anon_alloc_t *x = anon_tab[i];

        if (x == NULL || x->fork != ANON_FORK_COPY)
            continue;
        x->fork_bad = farpool_sync(x->region) != FP_OK;
        copies = true;
    }
    if (copies && pipe2(fork_pipe, O_CLOEXEC) != 0)
        fork_pipe[0] = fork_pipe[1] = -1;
}

void fp_preload_anon_parent(void)
{
    uint64_t waited = 0;
    char c;

    if (fork_pipe[0] < 0)
        return;
    close(fork_pipe[1]);
    /* Hold the regions still (the lock is held) until the child has its copies. */
    while (waited < ANON_FORK_WAIT_MS) {
        struct pollfd pfd = {.fd = fork_pipe[0], .events = POLLIN};
        int n = poll(&pfd, 1, 1000);

        if (n > 0) {
            ssize_t r = read(fork_pipe[0], &c, 1);

            if (r >= 0 || (errno != EINTR && errno != EAGAIN))
                break; /* the child is done (a byte) or gone (end of file) */
        } else if (n < 0 && errno != EINTR) {
            break;
        }
        waited += n == 0 ? 1000 : 0;
    }
    if (waited >= ANON_FORK_WAIT_MS)
        say("farpool-preload: the child of fork() did not copy its served anonymous memory in "
            "%d s; the parent goes on\n",
            ANON_FORK_WAIT_MS / 1000);
    close(fork_pipe[0]);
    fork_pipe[0] = fork_pipe[1] = -1;
}

/* The child's own region for @x: a copy of the parent's (or zeros), mapped at its address. */
static bool child_copy(anon_alloc_t *x)
{
    uint64_t size = farpool_region_size(x->region);
    farpool_region_t *parent = x->region, *r, shadow;
    fp_status_t status = FP_OK;

    if (x->fork_bad)
        return false;
    r = region_new(size);
    if (r == NULL)
        return false;
    if (x->fork == ANON_FORK_COPY) {
        shadow_open(&shadow, parent);
        status = region_copy(&shadow, 0, r, 0, size);
        shadow_close(&shadow);
    }
    if (status != FP_OK || region_map_at(r, x->base) != x->base) {
        farpool_region_close(r);
        return false;
    }
    x->region = r;
    return true;
}

void fp_preload_anon_child(void)
{
    uint32_t hw = atomic_load(&anon_hw);
    bool was_inside = fp_preload_inside;

    said_create = said_map = anon_here = false;
    memset(&anon_done, 0, sizeof(anon_done));
    anon_regions = 0;
    if (atomic_load(&anon_n) == 0)
        goto out;
    fp_preload_inside = true;
    for (uint32_t i = 0; i < hw; i++) {
        anon_alloc_t *x = anon_tab[i];

        if (x == NULL)
            continue;
        if (x->fork != ANON_FORK_NONE && child_copy(x)) {
            anon_regions++;
            if (x->live != NULL)
                protect_dead(x, x->base, x->base + x->span);
            continue;
        }
        if (x->fork != ANON_FORK_NONE)
            say("farpool-preload: cannot copy the parent's served anonymous memory [%p, %p) in "
                "the child of fork(); it is unmapped there (SIGSEGV on access)\n",
                (void *)x->base, (void *)(x->base + x->span));
        anon_remove(x); /* the parent's region: leaked here, the parent's to close */
        anon_free_record(x);
    }
    fp_preload_inside = was_inside;
out:
    if (fork_pipe[1] >= 0) {
        (void)!write(fork_pipe[1], "", 1);
        close(fork_pipe[1]);
        close(fork_pipe[0]);
        fork_pipe[0] = fork_pipe[1] = -1;
    }
}

/* ------------------------------------------------------------------------ */
/* At exit                                                                   */
/* ------------------------------------------------------------------------ */

bool fp_preload_anon_made_here(void)
{
    return anon_here;
}

void fp_preload_anon_stats(int fd)
{
    uint32_t hw = atomic_load(&anon_hw);
    farpool_stats_t s = anon_done, now;

    if (anon_regions == 0)
        return;
    for (uint32_t i = 0; i < hw; i++)
        if (anon_tab[i] != NULL &&
            farpool_region_stats(anon_tab[i]->region, &now, sizeof(now)) == FP_OK)
            fp_preload_stats_add(&s, &now);
    dprintf(fd,
            "farpool-preload: stats: anon (%llu regions, %llu bytes at most): faults %llu, "
            "wp_faults %llu, blocks_fetched %llu, bytes_in %llu, bytes_out %llu, writebacks "
            "%llu, evictions %llu, fetch_errors %llu, cache_peak %llu\n",
            (unsigned long long)anon_regions, (unsigned long long)anon_peak,
            (unsigned long long)s.faults, (unsigned long long)s.wp_faults,
            (unsigned long long)s.blocks_fetched, (unsigned long long)s.bytes_in,
            (unsigned long long)s.bytes_out, (unsigned long long)s.writebacks,
            (unsigned long long)s.evictions, (unsigned long long)s.fetch_errors,
            (unsigned long long)s.cache_peak);
}

/* ------------------------------------------------------------------------ */
/* The interposed malloc family                                              */
/* ------------------------------------------------------------------------ */

PRELOAD_EXPORT void *malloc(size_t n)
{
    void *p;

    if (anon_wanted(n) && (p = anon_malloc(n, 0)) != NULL)
        return p;
    return next_malloc(n);
}

PRELOAD_EXPORT void free(void *p)
{
    anon_alloc_t *x;

    if (p == NULL || boot_owns(p))
        return;
    if ((x = anon_lock_user(p)) == NULL) {
        next_free(p);
        return;
    }
    fp_preload_inside = true;
    if ((uintptr_t)p == x->user && x->kind == ANON_MALLOC)
        anon_destroy(x);
    else
        say("farpool-preload: free(%p) of a pointer that malloc did not return; ignored\n", p);
    pthread_mutex_unlock(&fp_preload_lock);
    fp_preload_inside = false;
}

PRELOAD_EXPORT void *calloc(size_t n, size_t s)
{
    void *p;

    if (s != 0 && n > SIZE_MAX / s) {
        errno = ENOMEM;
        return NULL;
    }
    if (anon_wanted(n * s) && (p = anon_malloc(n * s, 0)) != NULL)
        return p; /* a fresh region is zeros */
    return next_calloc(n, s);
}

PRELOAD_EXPORT void *realloc(void *p, size_t n)
{
    anon_alloc_t *x;
    size_t have, keep;
    void *q;

    if (p == NULL)
        return malloc(n);
    if (boot_owns(p) || fp_preload_inside || fp_preload_resolving)
        return next_realloc(p, n);
    x = anon_lock_user(p);
    if (x == NULL) {
        /* The C library's block: to a region if it grows over the threshold. */
        if (!anon_wanted(n))
            return next_realloc(p, n);
        have = next_usable(p);
        if (n <= have)
            return next_realloc(p, n);
        q = anon_malloc(n, 0);
        if (q == NULL)
            return next_realloc(p, n);
        memcpy(q, p, have);
        next_free(p);
        return q;
    }
    have = anon_usable(x);
    if (n == 0 || (uintptr_t)p != x->user || x->kind != ANON_MALLOC) {
        pthread_mutex_unlock(&fp_preload_lock);
        if (n == 0) {
            free(p);
            return NULL;
        }
        say("farpool-preload: realloc(%p) of a pointer that malloc did not return\n", p);
        errno = EINVAL;
        return NULL;
    }
    if (n <= have && n >= anon_over) { /* in place: the region keeps its size */
        x->size = n;
        pthread_mutex_unlock(&fp_preload_lock);
        return p;
    }
    pthread_mutex_unlock(&fp_preload_lock);
    keep = n < have ? n : have;
    q = n >= anon_over ? anon_malloc(n, 0) : NULL;
    if (q == NULL)
        q = next_malloc(n);
    if (q == NULL)
        return NULL; /* p is left as it was */
    memcpy(q, p, keep);
    free(p);
    return q;
}

PRELOAD_EXPORT void *reallocarray(void *p, size_t n, size_t s)
{
    if (s != 0 && n > SIZE_MAX / s) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n * s);
}

PRELOAD_EXPORT int posix_memalign(void **pp, size_t align, size_t n)
{
    void *p;

    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    if (anon_wanted(n) && (p = anon_malloc(n, align)) != NULL) {
        *pp = p;
        return 0;
    }
    if (!nx_get()) {
        *pp = boot_alloc(n, align);
        return *pp != NULL ? 0 : ENOMEM;
    }
    return nx.posix_memalign(pp, align, n);
}

PRELOAD_EXPORT void *aligned_alloc(size_t align, size_t n)
{
    void *p;

    if (align != 0 && (align & (align - 1)) == 0 && anon_wanted(n) &&
        (p = anon_malloc(n, align)) != NULL)
        return p;
    return nx_get() ? nx.aligned_alloc(align, n) : boot_alloc(n, align);
}

PRELOAD_EXPORT void *memalign(size_t align, size_t n)
{
    void *p;

    if (align != 0 && (align & (align - 1)) == 0 && anon_wanted(n) &&
        (p = anon_malloc(n, align)) != NULL)
        return p;
    return nx_get() ? nx.memalign(align, n) : boot_alloc(n, align);
}

PRELOAD_EXPORT void *valloc(size_t n)
{
    void *p;

    if (anon_wanted(n) && (p = anon_malloc(n, 0)) != NULL)
        return p;
    return nx_get() ? nx.valloc(n) : boot_alloc(n, 4096);
}

PRELOAD_EXPORT void *pvalloc(size_t n)
{
    void *p;

    if (anon_wanted(n) && (p = anon_malloc(n, 0)) != NULL)
        return p;
    return nx_get() ? nx.pvalloc(n) : boot_alloc((n + 4095) & ~(size_t)4095, 4096);
}

PRELOAD_EXPORT size_t malloc_usable_size(void *p)
{
    anon_alloc_t *x = anon_lock_user(p);
    size_t n;

    if (x == NULL)
        return next_usable(p);
    n = (uintptr_t)p == x->user ? anon_usable(x) : 0;
    pthread_mutex_unlock(&fp_preload_lock);
    return n;
}
