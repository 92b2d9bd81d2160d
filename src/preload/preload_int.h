/* SPDX-License-Identifier: MIT */
/*
 * What the shim's files share: preload.c (the configuration, the context, the
 * served files, the interposed mapping calls) and preload_anon.c (anonymous
 * memory served from private pool regions: --anon-over, and the writable
 * private mappings of matched files). docs/preload.md says what each does.
 */
#ifndef FP_PRELOAD_INT_H
#define FP_PRELOAD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <farpool/farpool.h>

#define FP_PRELOAD_TLS __attribute__((tls_model("initial-exec")))

/* This thread is in dlsym: its interposed calls are system calls (or the bootstrap heap). */
extern _Thread_local bool fp_preload_resolving FP_PRELOAD_TLS;
/* This thread is in the shim: its interposed calls go to the next definitions. */
extern _Thread_local bool fp_preload_inside FP_PRELOAD_TLS;

/* The next definitions (the C library's), or the system calls before they are found. */
void *fp_preload_real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int fp_preload_real_munmap(void *addr, size_t len);
int fp_preload_real_madvise(void *addr, size_t len, int advice);
void *fp_preload_real_mremap(void *old, size_t old_len, size_t new_len, int flags, void *new_addr);

/* The context and the tables of served memory: serialised by this lock. */
extern pthread_mutex_t fp_preload_lock;
extern farpool_context_t *fp_preload_context; /* fp_preload_lock */
extern size_t fp_preload_page;                /* the page size, once known */

/* The context, made on first use (and the fork handlers registered); false: none. */
bool fp_preload_context_get(void);

/* Add @s to @sum (counters summed, peaks kept). */
void fp_preload_stats_add(farpool_stats_t *sum, const farpool_stats_t *s);

/* ---- anonymous memory (preload_anon.c) ---- */

/* The settings of --anon-over and --granule (FARPOOL_PRELOAD_ANON_OVER, _GRANULE). */
bool fp_preload_anon_enabled(void);

/* Anonymous allocations served now (an atomic load: 0 on the fast paths). */
size_t fp_preload_anon_count(void);

/*
 * An mmap of anonymous memory, private and writable, of @len bytes (the
 * caller checked the flags): a pool region, or MAP_FAILED (then the kernel's).
 */
void *fp_preload_anon_mmap(size_t len);

/*
 * A MAP_PRIVATE writable mapping of @len bytes of a served file: a private
 * region holding a copy of bytes [@off, @off + @copy) of the file's mapped
 * @region (the rest zeros), or MAP_FAILED. The caller holds fp_preload_lock.
 */
void *fp_preload_anon_private_copy(farpool_region_t *region, uint64_t off, size_t copy, size_t len);

/*
 * The anonymous allocation holding @a: its bounds [*@lo_p, *@hi_p) and a
 * handle; NULL if none. The caller holds fp_preload_lock.
 */
void *fp_preload_anon_at(uintptr_t a, uintptr_t *lo_p, uintptr_t *hi_p);

/* The lowest anonymous allocation's start in (@a, @end), else @end. The caller holds the lock. */
uintptr_t fp_preload_anon_next(uintptr_t a, uintptr_t end);

/* munmap / madvise / msync of [a, b) of allocation @h. The caller holds fp_preload_lock. */
int fp_preload_anon_unmap(void *h, uintptr_t a, uintptr_t b);
int fp_preload_anon_advise(void *h, uintptr_t a, uintptr_t b, int advice);

/*
 * mremap of allocation @h's [old, old + old_len): MAP_FAILED and errno on
 * failure. The caller holds fp_preload_lock.
 */
void *fp_preload_anon_mremap(void *h, uintptr_t old, size_t old_len, size_t new_len, int flags,
                             void *new_addr);

/* fork(): before (sync), in the parent after (wait for the child's copy), in the child. */
void fp_preload_anon_prepare(void);
void fp_preload_anon_parent(void);
void fp_preload_anon_child(void);

/* True if this process made an anonymous region itself (not a copy for a child of fork()). */
bool fp_preload_anon_made_here(void);

/* At exit: the --stats line of the anonymous regions, to @fd. */
void fp_preload_anon_stats(int fd);

#endif /* FP_PRELOAD_INT_H */
