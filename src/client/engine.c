/* SPDX-License-Identifier: MIT */
/*
 * The fault engine of one mapped region; see engine.h.
 *
 * DESIGN
 * The engine decides what to fetch, keep and evict; where the bytes live and
 * how they are mapped is the cache backend's business (cache.h): a memfd's
 * page cache mapped with UFFDIO_CONTINUE (cache_shmem.c, every mapping), or
 * a pool of recycled pages moved in and out with UFFDIO_MOVE (cache_move.c,
 * read-only mappings where the kernel can move pages). Either way a block's
 * bytes are received from the socket straight into the memory that is then
 * mapped: no copy after the socket's.
 *
 * One engine thread serves the region: it polls the userfaultfd, the node
 * connection and a command eventfd. A missing fault on an ABSENT block starts
 * a fetch of the whole block (the granule) and returns to the loop at once, so
 * faults on other blocks are fetched in parallel, up to MAX_FETCHES. A fault on
 * a block already FETCHING starts nothing: its thread sleeps in the kernel
 * until the CONTINUE of its range wakes it, so concurrent faults on one block
 * share one fetch. For granules above HEAD_SIZE the HEAD_SIZE bytes around the
 * faulting address are read first and mapped as soon as they arrive, waking
 * the faulting thread while the rest of the block is still on the wire.
 *
 * Cache and eviction. The memory the cache holds counts against the
 * context's byte budget. Before a fetch would exceed it (and no spare page is
 * left to recycle), a victim is chosen by CLOCK (block.c). The access signal
 * comes from faults on cached blocks: when the hand spares a block whose
 * access bit was set, the backend unmaps it keeping its bytes, so the block's
 * next use is a fault (minor, or missing on a parked block) that sets the bit
 * again and is resolved without any network traffic. A dirty victim is
 * write-protected and written back before it is dropped.
 *
 * Dirty tracking. Blocks are mapped write-protected; the first write to a clean
 * block is a write-protect fault that marks it DIRTY and lifts the protection.
 * A sync write-protects each dirty block again before writing it back, so a
 * write racing with the write-back faults and waits until it is done.
 *
 * Failure. A fetch that cannot be served (the node is gone, the connection
 * broke, a timeout) is logged and its block is poisoned with UFFDIO_POISON:
 * the accesses that wait for it, and any later one, get SIGBUS. No fault is
 * ever resolved with zeros or stale bytes.
 *
 * fork(): the backends' mappings are MADV_DONTFORK, so a child has no mapping
 * at the region's addresses (an access there is SIGSEGV) instead of a view of
 * the cache that nothing would keep coherent.
 */
#include "engine.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "block.h"
#include "cache.h"
#include "common/log.h"
#include "common/time.h"
#include "node.h"
#include "prefetch.h"
#include "region_meta.h"
#include "stats.h"
#include "transport/transport.h"
#include "uffd.h"

#define PAGE_SIZE_BYTES FP_CACHE_PAGE
#define HEAD_SIZE       (64u << 10)
#define MAX_FETCHES     64
#define MAX_RANGES      40 /* ranges of one block: 2 MiB over 64 KiB slabs, + head split */
#define UFFD_MSG_BATCH  64
#define DEMAND_RESERVE  8   /* fetch slots prefetching leaves to demand faults */
#define HINTS_MAX       256 /* farpool_prefetch() ranges queued */
#define AUTO_WINDOW_MAX 32  /* blocks the automatic prefetcher reads ahead at most */

/* Per-block prefetch flags (engine thread only). */
#define PF_INFLIGHT 0x1 /* being fetched ahead of use */
#define PF_UNUSED   0x2 /* fetched ahead, not touched yet */
#define PF_LATE     0x4 /* touched while still in flight */
#define PF_FETCHING                                                                                \
    0x8                  /* a fetch of it is on the wire (FETCHING without it: claimed by a        \
                          * farpool_prefetch() hint, not issued yet) */
#define PF_SENTINEL 0x10 /* all mapped but its first page, whose touch says it is used */
#define PF_WANTED   0x20 /* fetched ahead by the prefetcher, then hinted: map it as it lands */

typedef enum engine_cmd {
    CMD_NONE = 0,
    CMD_SYNC,
    CMD_STOP,
    CMD_RELEASE,
    CMD_PREFETCH_WAIT,
} engine_cmd_t;

typedef struct hint {
    uint64_t first, end; /* blocks [first, end) */
} hint_t;

typedef struct fetch {
    struct fp_engine *e;
    uint64_t block;
    uint64_t start_ns;
    bool prefetch; /* ahead of use: no head part, enters the cache cold and unmapped */
    bool hinted;   /* ...asked for by farpool_prefetch(): mapped whole as it lands */
    int pending;   /* xfers outstanding */
    fp_status_t status;
    bool head_mapped;
    uint64_t head_off, head_len; /* region offset and length of the head part */
    fp_xfer_t xfer[2];           /* [0] head, [1] the rest */
    fp_proto_range_t ranges[2][MAX_RANGES];
    struct iovec iov[2][MAX_RANGES];
    struct fetch *next_free;
} fetch_t;

struct fp_engine {
    char name[FP_REGION_NAME_MAX + 1];
    farpool_node_t *node; /* the engine thread's own connection */
    fp_transport_t *tp;
    fp_region_info_t info;
    uint64_t size, map_size, granule, nblocks;
    bool readonly;
    fp_log_t *log; /* the context's */
    fp_uffd_t uffd;
    int cmd_fd;
    fp_cache_t *cache;
    const fp_cache_ops_t *ops; /* cache->ops */
    uint8_t *map;              /* the application's view (cache->map) */
    fp_block_table_t *blocks;
    fetch_t fetches[MAX_FETCHES];
    fetch_t *free_fetches;
    unsigned nfetching, nprefetching;
    uint64_t quiet_since; /* fetches in flight: when the last one completed, or the first left */
    bool silenced;        /* disconnecting from a silent node: its fetches timed out */
    uint8_t *pf;          /* PF_* flags per block */
    fp_prefetch_t trend;  /* the automatic prefetcher */
    hint_t cur_hint;      /* the explicit prefetch being issued; first == end: none */
    bool pfwait;          /* a farpool_prefetch_wait() is waiting */
    _Atomic uint64_t *cache_used;   /* the context's memory held, all regions */
    _Atomic uint64_t *cache_wanted; /* bytes some region waits for: trim spares */
    uint64_t cache_budget;
    uint64_t held;     /* what this engine added to *cache_used */
    bool readahead;    /* the automatic prefetcher is on */
    bool write_denied; /* a write to this read-only region was refused, and said */
    pthread_t thread;

    /* Commands from the application's thread. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    engine_cmd_t cmd;           /* guarded by lock */
    uint64_t cmd_off, cmd_len;  /* guarded by lock: the range of CMD_RELEASE */
    bool cmd_done;              /* guarded by lock */
    fp_status_t cmd_status;     /* guarded by lock */
    hint_t hints[HINTS_MAX];    /* guarded by lock: farpool_prefetch() ranges, a ring */
    unsigned hint_head, nhints; /* guarded by lock */

    /* Counters, written by the engine thread, read by anyone (stats.h). */
    fp_stats_shared_t *st;
};

static uint64_t block_off(const fp_engine_t *e, uint64_t block)
{
    return block * e->granule;
}

static uint64_t block_len(const fp_engine_t *e, uint64_t block)
{
    uint64_t off = block_off(e, block);
    return e->size - off < e->granule ? e->size - off : e->granule;
}

/* Page-rounded length of a block, as mapped. */
static uint64_t block_map_len(const fp_engine_t *e, uint64_t block)
{
    uint64_t off = block_off(e, block);
    return e->map_size - off < e->granule ? e->map_size - off : e->granule;
}

/* Memory the cache took (> 0) or gave back to the system (< 0): the budget's measure. */
static void mem_add(fp_engine_t *e, int64_t delta)
{
    atomic_fetch_add(e->cache_used, (uint64_t)delta);
    e->held += (uint64_t)delta;
}

/* *@v -= min(*@v, @n), atomically. */
static void sub_saturating(_Atomic uint64_t *v, uint64_t n)
{
    uint64_t cur = atomic_load(v);

    while (!atomic_compare_exchange_weak(v, &cur, cur - (cur < n ? cur : n)))
        ;
}

/* Some region of the context waits for memory: give it our spare pages. */
static void trim_if_wanted(fp_engine_t *e)
{
    uint64_t wanted = atomic_load(e->cache_wanted), freed;

    if (wanted == 0 || !e->ops->has_spare(e->cache))
        return;
    freed = e->ops->trim(e->cache, wanted);
    mem_add(e, -(int64_t)freed);
    sub_saturating(e->cache_wanted, freed);
}

/* Bytes of the region cached (or in flight): the statistics' measure. */
static void stat_cache_add(fp_engine_t *e, int64_t delta)
{
    uint64_t now = atomic_fetch_add(&e->st->cache, (uint64_t)delta) + (uint64_t)delta;

    if (now > atomic_load_explicit(&e->st->cache_peak, memory_order_relaxed))
        atomic_store_explicit(&e->st->cache_peak, now, memory_order_relaxed);
}

/*
 * Describe region bytes [off, off+len), all in one block, as ranges of the
 * node's slabs and the matching cache memory. Returns the number of ranges
 * added at @n.
 */
static unsigned add_ranges(fp_engine_t *e, uint64_t off, uint64_t len, fp_proto_range_t *ranges,
                           struct iovec *iov, unsigned n)
{
    while (len > 0) {
        uint64_t slab = off / e->info.slab_size, in_slab = off % e->info.slab_size;
        uint64_t take = e->info.slab_size - in_slab < len ? e->info.slab_size - in_slab : len;

        ranges[n].slab = e->info.slabs[slab];
        ranges[n].offset = in_slab;
        ranges[n].length = (uint32_t)take;
        iov[n].iov_base = e->ops->data(e->cache, off / e->granule, off);
        iov[n].iov_len = take;
        n++;
        off += take;
        len -= take;
    }
    return n;
}

static void fetch_done(fp_xfer_t *xfer, fp_status_t status);

/* Make xfer @k of @f a read of the @n ranges prepared in f->ranges[k] / f->iov[k]. */
static void fetch_xfer_init(fetch_t *f, int k, unsigned n)
{
    fp_xfer_t *x = &f->xfer[k];

    memset(x, 0, sizeof(*x));
    x->op = n == 1 ? FP_OP_READ : FP_OP_READV;
    x->nranges = n;
    x->ranges = f->ranges[k];
    x->rsp_iov = f->iov[k];
    x->rsp_iovcnt = (int)n;
    x->done = fetch_done;
    x->arg = f;
}

/* Map the bytes of [off, off+len) of one block, arrived, into the application's view. */
static fp_status_t map_range(fp_engine_t *e, uint64_t off, uint64_t len, bool wp)
{
    return e->ops->map(e->cache, off / e->granule, off, len, wp);
}

static void fetch_release(fp_engine_t *e, fetch_t *f)
{
    f->next_free = e->free_fetches;
    e->free_fetches = f;
    e->nfetching--;
    if (f->prefetch)
        e->nprefetching--;
}

/*
 * Block @b, claimed for a fetch and counted in the cache, cannot be fetched.
 * Never zeros, never stale bytes: drop what came, poison the block so that
 * every access to it gets SIGBUS, and say why.
 */
static void fail_block(fp_engine_t *e, uint64_t b, fp_status_t status)
{
    uint64_t off = block_off(e, b);

    fp_error(e->log,
             "region %s: cannot fetch block %" PRIu64 " (offset %" PRIu64 ") from node %s: %s; "
             "accesses to it get SIGBUS",
             e->name, b, off, fp_node_addr(e->node), fp_status_string(status));
    atomic_fetch_add_explicit(&e->st->fetch_errors, 1, memory_order_relaxed);
    mem_add(e, -(int64_t)e->ops->fail(e->cache, b));
    stat_cache_add(e, -(int64_t)e->granule);
    e->pf[b] = 0;
    fp_block_fill_done(e->blocks, b, false);
}

static void fetch_finish(fetch_t *f)
{
    fp_engine_t *e = f->e;
    uint64_t b = f->block, off = block_off(e, b), len = block_map_len(e, b);
    fp_status_t status = f->status;

    fp_trace(e->log, "region %s: block %" PRIu64 " fetched: %s", e->name, b,
             fp_status_string(status));
    e->pf[b] &= (uint8_t)~PF_FETCHING;
    if (f->prefetch) {
        e->pf[b] &= (uint8_t)~PF_INFLIGHT;
        if (status == FP_OK) {
            /* Cold and unmapped: its first use is a minor fault, which says it was used. */
            atomic_fetch_add_explicit(&e->st->fetched, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&e->st->bytes_in, block_len(e, b), memory_order_relaxed);
            fp_stats_latency_add(e->st, fp_time_ns() - f->start_ns);
            bool late = (e->pf[b] & PF_LATE) != 0, wanted = (e->pf[b] & PF_WANTED) != 0;

            e->pf[b] &= (uint8_t) ~(PF_LATE | PF_WANTED);
            if (f->hinted)
                atomic_fetch_add_explicit(&e->st->pf_hinted, 1, memory_order_relaxed);
            else if (wanted && !late)
                atomic_fetch_add_explicit(&e->st->pf_used, 1, memory_order_relaxed);
            if (f->hinted || late || wanted) {
                /* Touched while in flight (its use is known), or asked for by
                 * the application: map it whole, so that using it costs no
                 * further fault. A hinted block's use is not seen, so it enters
                 * with its access bit set: CLOCK unmaps it once before it can go. */
                fp_block_fill_done(e->blocks, b, true);
                map_range(e, off, len, true);
            } else {
                e->pf[b] |= PF_UNUSED;
                fp_block_fill_done(e->blocks, b, true);
                fp_block_cool(e->blocks, b);
                /* Map it now, while the application is busy elsewhere, all but
                 * its first page: the touch of that page is the minor fault that
                 * says the block was used, and costs one page, not the block.
                 * A backend that maps only whole blocks leaves it parked: its
                 * first touch maps it, and says the same. */
                if (len > PAGE_SIZE_BYTES && e->ops->can_map_part(e->cache) &&
                    map_range(e, off + PAGE_SIZE_BYTES, len - PAGE_SIZE_BYTES, true) == FP_OK)
                    e->pf[b] |= PF_SENTINEL;
            }
        } else {
            /* A guess that failed costs nothing: drop it; a real access will fetch
             * (and, if the node is really gone, fail loudly) on its own. */
            fp_warn(e->log, "region %s: prefetch of block %" PRIu64 " failed: %s", e->name, b,
                    fp_status_string(status));
            e->pf[b] = 0;
            mem_add(e, -(int64_t)e->ops->drop(e->cache, b));
            stat_cache_add(e, -(int64_t)e->granule);
            fp_block_fill_done(e->blocks, b, false);
        }
        fp_uffd_wake(&e->uffd, e->map + off, len);
        fetch_release(e, f);
        return;
    }
    if (status == FP_OK) {
        /* Count it before mapping it: mapping wakes the faulting thread, which
         * may read the counters at once and must find its fetch there. */
        atomic_fetch_add_explicit(&e->st->fetched, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->st->bytes_in, block_len(e, b), memory_order_relaxed);
        fp_stats_latency_add(e->st, fp_time_ns() - f->start_ns);
        /* Map what the head did not. */
        if (f->head_mapped) {
            if (f->head_off > off)
                status = map_range(e, off, f->head_off - off, true);
            if (status == FP_OK && f->head_off + f->head_len < off + len)
                status = map_range(e, f->head_off + f->head_len,
                                   off + len - f->head_off - f->head_len, true);
        } else {
            status = map_range(e, off, len, true);
        }
    }
    if (status == FP_OK) {
        fp_block_fill_done(e->blocks, b, true);
        /* A write to the early-mapped head was left waiting (write-protect fault
         * on a block in flight): let it retry now. Without an early head, the
         * CONTINUE above already woke every waiter of the block. */
        if (f->head_mapped)
            fp_uffd_wake(&e->uffd, e->map + off, len);
    } else {
        fail_block(e, b, status);
    }
    fetch_release(e, f);
}

static void fetch_done(fp_xfer_t *xfer, fp_status_t status)
{
    fetch_t *f = xfer->arg;

    f->e->quiet_since = fp_time_ns();
    if (status == FP_ERR_CANCELED && f->e->silenced)
        status = FP_ERR_TIMED_OUT;
    f->pending--;
    if (status != FP_OK && f->status == FP_OK)
        f->status = status;
    if (xfer == &f->xfer[0] && status == FP_OK && f->pending > 0) {
        /* The head is here: let the faulting thread go on now. */
        if (map_range(f->e, f->head_off, f->head_len, true) == FP_OK)
            f->head_mapped = true;
    }
    if (f->pending == 0)
        fetch_finish(f);
}

/* The connection is unusable: close it, which completes every xfer with an error. */
static void engine_disconnect(fp_engine_t *e)
{
    fp_node_disconnect(e->node);
    e->tp = NULL;
}

/* Nanoseconds the node may go without completing any of the fetches in flight. */
static uint64_t silence_limit_ns(const fp_engine_t *e)
{
    return (uint64_t)fp_node_timeout_ms(e->node) * FP_NS_PER_MS;
}

/*
 * Fetches are in flight and the node has completed none of them for the node
 * timeout: it is stopped, stuck or unreachable without the connection
 * breaking. Disconnect, which completes every fetch with an error (its block
 * poisoned: SIGBUS and a log line, never zeros), rather than leave the
 * application's threads waiting for ever. True if it did.
 */
static bool engine_check_silence(fp_engine_t *e)
{
    if (e->tp == NULL || e->nfetching == 0 || fp_time_ns() - e->quiet_since < silence_limit_ns(e))
        return false;
    fp_error(e->log, "region %s: node %s completed none of %u fetches in %d ms; disconnecting",
             e->name, fp_node_addr(e->node), e->nfetching, fp_node_timeout_ms(e->node));
    e->silenced = true;
    engine_disconnect(e);
    e->silenced = false;
    return true;
}

/* Let the transport run callbacks for up to @timeout_ms. */
static fp_status_t engine_progress(fp_engine_t *e, int timeout_ms)
{
    fp_status_t status;

    if (e->tp == NULL)
        return FP_ERR_NOT_CONNECTED;
    status = fp_transport_progress(e->tp, timeout_ms, NULL);
    if (status == FP_ERR_NOT_CONNECTED) {
        /* Every xfer has completed with an error: their blocks are poisoned. */
        fp_error(e->log, "region %s: lost the connection to node %s", e->name,
                 fp_node_addr(e->node));
        e->tp = NULL;
    } else if (engine_check_silence(e)) {
        return FP_ERR_NOT_CONNECTED;
    }
    return status == FP_ERR_TIMED_OUT ? FP_OK : status;
}

/* Milliseconds the engine may sleep before engine_check_silence() must look (-1: no limit). */
static int silence_wait_ms(const fp_engine_t *e)
{
    uint64_t now = fp_time_ns(), end = e->quiet_since + silence_limit_ns(e);

    if (e->tp == NULL || e->nfetching == 0)
        return -1;
    return now >= end ? 0 : (int)((end - now + FP_NS_PER_MS - 1) / FP_NS_PER_MS);
}

/* Wait until *@done, running callbacks; gives up (and disconnects) after the node timeout. */
static fp_status_t engine_wait(fp_engine_t *e, const bool *done)
{
    uint64_t deadline = fp_time_ns() + (uint64_t)fp_node_timeout_ms(e->node) * FP_NS_PER_MS;

    while (!*done) {
        uint64_t now = fp_time_ns();
        fp_status_t status;

        if (e->tp == NULL)
            return FP_ERR_NOT_CONNECTED;
        if (now >= deadline) {
            fp_error(e->log, "region %s: node %s did not answer in time; disconnecting", e->name,
                     fp_node_addr(e->node));
            engine_disconnect(e);
            return FP_ERR_TIMED_OUT;
        }
        status = engine_progress(e, (int)((deadline - now) / FP_NS_PER_MS) + 1);
        if (status != FP_OK && e->tp != NULL) {
            engine_disconnect(e);
            return status;
        }
    }
    return FP_OK;
}

/* Submit @x, making room by progress while the transport is full. */
static fp_status_t engine_submit(fp_engine_t *e, fp_xfer_t *x)
{
    for (;;) {
        fp_status_t status;

        if (e->tp == NULL)
            return FP_ERR_NOT_CONNECTED;
        status = fp_transport_submit(e->tp, x);
        if (status != FP_ERR_BUSY)
            return status;
        status = engine_progress(e, 100);
        if (status != FP_OK)
            return status;
    }
}

typedef struct wb_req {
    fp_xfer_t xfer;
    fp_proto_range_t ranges[MAX_RANGES];
    struct iovec iov[MAX_RANGES];
    bool done;
    fp_status_t status;
} wb_req_t;

static void wb_done(fp_xfer_t *xfer, fp_status_t status)
{
    wb_req_t *w = xfer->arg;

    w->done = true;
    w->status = status;
}

/*
 * Write block @b back from the page cache and wait for the node's answer. The
 * caller has write-protected the block, so it cannot change meanwhile.
 */
static fp_status_t writeback_block(fp_engine_t *e, uint64_t b)
{
    wb_req_t w;
    unsigned n;
    fp_status_t status;

    memset(&w, 0, sizeof(w));
    n = add_ranges(e, block_off(e, b), block_len(e, b), w.ranges, w.iov, 0);
    w.xfer.op = n == 1 ? FP_OP_WRITE : FP_OP_WRITEV;
    w.xfer.nranges = n;
    w.xfer.ranges = w.ranges;
    w.xfer.req_iov = w.iov;
    w.xfer.req_iovcnt = (int)n;
    w.xfer.done = wb_done;
    w.xfer.arg = &w;
    status = engine_submit(e, &w.xfer);
    if (status == FP_OK)
        status = engine_wait(e, &w.done);
    if (status == FP_OK || w.done)
        status = w.status;
    if (status != FP_OK) {
        fp_error(e->log, "region %s: cannot write block %" PRIu64 " back to node %s: %s", e->name,
                 b, fp_node_addr(e->node), fp_status_string(status));
        return status;
    }
    atomic_fetch_add_explicit(&e->st->writebacks, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->st->bytes_out, block_len(e, b), memory_order_relaxed);
    return FP_OK;
}

/* Block @b leaves the cache: if it was fetched ahead and never used, that guess was wasted. */
static void note_dropped(fp_engine_t *e, uint64_t b)
{
    if (e->pf[b] & PF_UNUSED) {
        atomic_fetch_add_explicit(&e->st->pf_wasted, 1, memory_order_relaxed);
        fp_prefetch_wasted(&e->trend);
    }
    e->pf[b] = 0;
}

/* Prefetch-driven eviction passes over blocks fetched ahead and not used yet. */
static bool keep_unused(uint64_t b, void *arg)
{
    fp_engine_t *e = arg;

    return (e->pf[b] & PF_UNUSED) != 0;
}

/* CLOCK spared block @b: unmap it so that its next use is a minor fault. */
static void spare_block(uint64_t b, void *arg)
{
    fp_engine_t *e = arg;

    if (e->ops->unmap(e->cache, b))
        e->pf[b] &= (uint8_t)~PF_SENTINEL;
}

/*
 * Drop block @b, taken by fp_block_evict_pick/_begin (it was @was), from the
 * cache, writing it back first if dirty. False if the write-back failed: the
 * block then stays, DIRTY, since it holds the only copy of its bytes.
 */
static bool evict_block(fp_engine_t *e, uint64_t b, fp_block_state_t was)
{
    uint64_t off = block_off(e, b), len = block_map_len(e, b);

    if (was == FP_BLOCK_DIRTY) {
        fp_status_t status = fp_uffd_protect(&e->uffd, e->map + off, len);
        if (status == FP_OK)
            status = writeback_block(e, b);
        fp_block_writeback_done(e->blocks, b, status == FP_OK, false);
        if (status != FP_OK) {
            fp_uffd_unprotect(&e->uffd, e->map + off, len, 0);
            return false;
        }
    }
    note_dropped(e, b);
    mem_add(e, -(int64_t)e->ops->drop(e->cache, b));
    stat_cache_add(e, -(int64_t)e->granule);
    atomic_fetch_add_explicit(&e->st->evictions, 1, memory_order_relaxed);
    fp_block_evict_done(e->blocks, b);
    /* Threads that faulted on it meanwhile retry and fetch it again. */
    fp_uffd_wake(&e->uffd, e->map + off, len);
    return true;
}

/*
 * Drop one block from the cache, chosen by CLOCK; for a prefetch (@for_prefetch)
 * only a cold one, and never one fetched ahead and not used yet. False if
 * there was none to drop.
 */
static bool evict_one(fp_engine_t *e, bool for_prefetch)
{
    fp_block_state_t was;
    uint64_t b;
    bool picked = for_prefetch ? fp_block_evict_pick_cold(e->blocks, keep_unused, e, &b, &was)
                               : fp_block_evict_pick(e->blocks, spare_block, NULL, e, &b, &was);

    return picked && evict_block(e, b, was);
}

/*
 * Make room for one more block in the cache: a spare page to recycle, or
 * budget for new memory, evicting by CLOCK as needed; for a guess (@guess)
 * only cold blocks, and false if there are none.
 */
static bool make_room(fp_engine_t *e, bool guess)
{
    bool asked = false;

    for (int waits = 0; !e->ops->has_spare(e->cache) &&
                        atomic_load(e->cache_used) + e->granule > e->cache_budget;) {
        if (evict_one(e, guess))
            continue;
        if (guess)
            return false;
        /* Nothing of ours to drop: let a fetch in flight land so it can make room,
         * or other regions of the context give their spare pages back. Bounded,
         * so that a cache smaller than the blocks its threads need at once goes
         * over budget rather than stalling. */
        if (e->tp == NULL || ++waits > 50)
            break;
        if (e->nfetching > 0) {
            engine_progress(e, 10);
        } else {
            if (!asked)
                atomic_fetch_add(e->cache_wanted, e->granule);
            asked = true;
            poll(NULL, 0, 2);
        }
    }
    if (asked)
        sub_saturating(e->cache_wanted, e->granule);
    return true;
}

/* Give block @b, claimed, memory to land in, counting new memory against the budget. */
static fp_status_t bind_block(fp_engine_t *e, uint64_t b)
{
    fp_status_t status;
    bool grew;

    for (int tries = 0; (status = e->ops->bind(e->cache, b, &grew)) == FP_ERR_NO_SPACE;) {
        /* Every page of the backend is taken: only far over budget. */
        if (++tries > 8 || !evict_one(e, false))
            return FP_ERR_NO_MEMORY;
    }
    if (status == FP_OK && grew)
        mem_add(e, (int64_t)e->granule);
    return status;
}

/*
 * Start fetching block @b: for a fault at region offset @fault_off, or ahead of
 * use (@prefetch). A prefetch is skipped (false) when it would have to wait for
 * a fetch slot or push out anything but cold blocks, unless a thread already
 * waits for it (@urgent: a hinted block touched before it was issued); a
 * demand fetch never is.
 */
static bool fetch_begin(fp_engine_t *e, uint64_t b, uint64_t fault_off, bool prefetch, bool claimed,
                        bool urgent)
{
    uint64_t off = block_off(e, b), len = block_len(e, b);
    bool guess = prefetch && !urgent; /* nobody waits for it yet */
    unsigned nrest = 0;
    fetch_t *f;
    fp_status_t status;

    /* Blocks in flight cannot be evicted: guesses may hold at most a quarter
     * of the budget, so that demand faults always find room, and may only
     * replace cold blocks. A hinted block someone already waits for goes at
     * once, making room as a demand fetch would. */
    if (guess && (e->tp == NULL || e->nfetching >= MAX_FETCHES - DEMAND_RESERVE ||
                  (uint64_t)(e->nprefetching + 1) * e->granule > e->cache_budget / 4))
        return false;
    if (!make_room(e, guess))
        return false;
    while (e->free_fetches == NULL) {
        if (engine_progress(e, 100) != FP_OK && e->free_fetches == NULL)
            break;
    }
    if (!claimed && (fp_block_state(e->blocks, b) != FP_BLOCK_ABSENT ||
                     fp_block_claim(e->blocks, b) != FP_BLOCK_CLAIM_FETCH)) {
        if (!prefetch)
            fp_uffd_wake(&e->uffd, e->map + off, block_map_len(e, b));
        return false;
    }
    status = bind_block(e, b);
    if (status == FP_OK) {
        stat_cache_add(e, (int64_t)e->granule);
        f = e->free_fetches;
        if (f == NULL) /* every slot is stuck: only when the connection is gone */
            status = FP_ERR_NOT_CONNECTED;
    }
    if (status != FP_OK) {
        fail_block(e, b, status);
        return false;
    }
    e->free_fetches = f->next_free;
    e->nfetching++;
    f->e = e;
    f->block = b;
    f->start_ns = fp_time_ns();
    if (e->nfetching == 1)
        e->quiet_since = f->start_ns;
    f->status = FP_OK;
    f->head_mapped = false;
    f->prefetch = prefetch;
    f->hinted = prefetch && claimed;
    f->pending = 0;
    e->pf[b] = (uint8_t)((e->pf[b] & PF_LATE) | PF_FETCHING);
    if (prefetch) {
        e->nprefetching++;
        e->pf[b] |= PF_INFLIGHT;
        atomic_fetch_add_explicit(&e->st->pf_issued, 1, memory_order_relaxed);
    }

    if (len <= HEAD_SIZE || prefetch || !e->ops->can_map_part(e->cache)) {
        f->head_off = off;
        f->head_len = len;
        fetch_xfer_init(f, 0, add_ranges(e, off, len, f->ranges[0], f->iov[0], 0));
        f->pending = 1;
    } else {
        uint64_t head = fault_off & ~(uint64_t)(HEAD_SIZE - 1);
        if (head + HEAD_SIZE > off + len)
            head = off + len - HEAD_SIZE;
        f->head_off = head;
        f->head_len = HEAD_SIZE;
        fetch_xfer_init(f, 0, add_ranges(e, head, HEAD_SIZE, f->ranges[0], f->iov[0], 0));
        if (head > off)
            nrest = add_ranges(e, off, head - off, f->ranges[1], f->iov[1], nrest);
        if (head + HEAD_SIZE < off + len)
            nrest = add_ranges(e, head + HEAD_SIZE, off + len - head - HEAD_SIZE, f->ranges[1],
                               f->iov[1], nrest);
        fetch_xfer_init(f, 1, nrest);
        f->pending = 2;
    }
    for (int k = 0, n = f->pending; k < n; k++) {
        status = engine_submit(e, &f->xfer[k]);
        if (status != FP_OK) {
            /* Not submitted: complete them here, as the transport would have. */
            for (int j = k; j < n; j++)
                fetch_done(&f->xfer[j], status);
            return true;
        }
    }
    /* The requests are on their way; while the node sends, allocate the pages
     * the replies will land in (if they are new), all at once rather than one
     * fault per page during the receive. This thread reads the replies only
     * after. */
    engine_progress(e, 0);
    /* Unless that progress already ended the fetch (a failure must not leave
     * zero pages behind, a success needs nothing more). */
    if (fp_block_state(e->blocks, b) == FP_BLOCK_FETCHING && (e->pf[b] & PF_FETCHING))
        e->ops->populate(e->cache, b);
    return true;
}

/* A first touch of block @b: feed the trend detector and read ahead along it. */
static void note_access(fp_engine_t *e, uint64_t b)
{
    uint64_t plan[AUTO_WINDOW_MAX];
    int64_t trend;
    unsigned n;

    if (!e->readahead)
        return;
    trend = fp_prefetch_record(&e->trend, b);
    n = fp_prefetch_plan(&e->trend, b, trend, e->nblocks, plan, AUTO_WINDOW_MAX);
    for (unsigned i = 0; i < n; i++) {
        if (fp_block_state(e->blocks, plan[i]) == FP_BLOCK_ABSENT &&
            !fetch_begin(e, plan[i], 0, true, false, false))
            break;
    }
}

/* Block @b was claimed by a farpool_prefetch() hint and its fetch is not issued yet. */
static bool hint_queued(fp_engine_t *e, uint64_t b)
{
    return fp_block_state(e->blocks, b) == FP_BLOCK_FETCHING && !(e->pf[b] & PF_FETCHING);
}

/* Give up hinted blocks not issued yet in [first, end): they become ABSENT again. */
static void hint_cancel(fp_engine_t *e, uint64_t first, uint64_t end)
{
    for (uint64_t b = first; b < end; b++) {
        if (hint_queued(e, b)) {
            fp_block_fill_done(e->blocks, b, false);
            fp_uffd_wake(&e->uffd, e->map + block_off(e, b), block_map_len(e, b));
        }
    }
}

/*
 * Block @b is in a farpool_prefetch() range but was cached or in flight
 * already, fetched ahead by the automatic prefetcher and not used yet. The
 * application says it will use it: map it whole now (or as it lands), as a
 * hinted block is, so that its first touch costs no fault. Counted as used:
 * the guess was right.
 */
static void hint_promote(fp_engine_t *e, uint64_t b)
{
    uint64_t off = block_off(e, b), len = block_map_len(e, b);

    if (e->pf[b] & PF_INFLIGHT) {
        e->pf[b] |= PF_WANTED;
        return;
    }
    if (!(e->pf[b] & PF_UNUSED) || fp_block_state(e->blocks, b) != FP_BLOCK_RESIDENT)
        return;
    if (e->pf[b] & PF_SENTINEL)
        len = PAGE_SIZE_BYTES; /* the rest is mapped */
    if (map_range(e, off, len, true) != FP_OK)
        return; /* its first touch will map it, or fetch it again */
    e->pf[b] &= (uint8_t) ~(PF_UNUSED | PF_SENTINEL);
    fp_block_touch(e->blocks, b);
    atomic_fetch_add_explicit(&e->st->pf_used, 1, memory_order_relaxed);
}

/* Issue queued farpool_prefetch() ranges while slots and cache room allow. */
static void issue_hints(fp_engine_t *e)
{
    for (;;) {
        if (e->cur_hint.first == e->cur_hint.end) {
            pthread_mutex_lock(&e->lock);
            if (e->nhints > 0) {
                e->cur_hint = e->hints[e->hint_head];
                e->hint_head = (e->hint_head + 1) % HINTS_MAX;
                e->nhints--;
                pthread_cond_broadcast(&e->cond); /* room in the queue */
            }
            pthread_mutex_unlock(&e->lock);
            if (e->cur_hint.first == e->cur_hint.end)
                return;
        }
        while (e->cur_hint.first < e->cur_hint.end) {
            uint64_t b = e->cur_hint.first;
            /* Still claimed and not issued (a fault may have pulled it forward, a
             * release cancelled it): issue it. Fetched ahead already: map it. */
            if (hint_queued(e, b)) {
                if (!fetch_begin(e, b, 0, true, true, false))
                    return; /* no slot or no room now: go on when fetches complete */
            } else {
                hint_promote(e, b);
            }
            e->cur_hint.first++;
        }
    }
}

static bool hints_pending(fp_engine_t *e)
{
    bool pending;

    pthread_mutex_lock(&e->lock);
    pending = e->nhints > 0;
    pthread_mutex_unlock(&e->lock);
    return pending || e->cur_hint.first != e->cur_hint.end;
}

/* Drop blocks [first, end) from the cache, writing dirty ones back first. */
static fp_status_t release_range(fp_engine_t *e, uint64_t first, uint64_t end)
{
    fp_status_t first_error = FP_OK;

    for (uint64_t b = first; b < end; b++) {
        fp_block_state_t was;

        /* A hinted block not issued yet is simply given up; one in flight is
         * waited for, then dropped like the others. */
        hint_cancel(e, b, b + 1);
        while (fp_block_state(e->blocks, b) == FP_BLOCK_FETCHING && e->tp != NULL)
            engine_progress(e, 100);
        if (!fp_block_evict_begin(e->blocks, b, &was))
            continue;
        if (!evict_block(e, b, was) && first_error == FP_OK)
            first_error = FP_ERR_IO;
    }
    return first_error;
}

/*
 * A write to a read-only region the backend maps writable (cache_move.c): the
 * writing thread gets SIGSEGV, as it would from a PROT_READ mapping (with
 * si_code SI_TKILL rather than SEGV_ACCERR). Said once per region.
 */
static void deny_write(fp_engine_t *e, const struct uffd_msg *msg, uint64_t off)
{
    pid_t tid = (pid_t)msg->arg.pagefault.feat.ptid;

    if (!e->write_denied)
        fp_warn(e->log,
                "region %s: write at +%" PRIu64 " to a read-only mapping; the writing thread "
                "gets SIGSEGV",
                e->name, off);
    e->write_denied = true;
    if (tid > 0)
        syscall(SYS_tgkill, (pid_t)getpid(), tid, SIGSEGV);
}

static void handle_fault(fp_engine_t *e, const struct uffd_msg *msg)
{
    uint64_t addr = msg->arg.pagefault.address, flags = msg->arg.pagefault.flags;
    uint64_t off, b, boff, blen;
    fp_block_state_t state;

    if (addr < (uintptr_t)e->map || addr >= (uintptr_t)e->map + e->map_size)
        return;
    off = addr - (uintptr_t)e->map;
    b = off / e->granule;
    boff = block_off(e, b);
    blen = block_map_len(e, b);
    state = fp_block_state(e->blocks, b);
    fp_trace(e->log,
             "region %s: fault at +%" PRIu64 " flags %#" PRIx64 ", block %" PRIu64 " state %d",
             e->name, off, flags, b, (int)state);

    if (flags & UFFD_PAGEFAULT_FLAG_WP) {
        atomic_fetch_add_explicit(&e->st->wp, 1, memory_order_relaxed);
        if (e->readonly) {
            deny_write(e, msg, off);
            return;
        }
        if (state == FP_BLOCK_RESIDENT)
            fp_block_mark_dirty(e->blocks, b);
        state = fp_block_state(e->blocks, b);
        if (state == FP_BLOCK_DIRTY)
            fp_uffd_unprotect(&e->uffd, e->map + boff, blen, 0);
        /* Other states: the write waits until the block settles; it is woken then. */
        return;
    }
    if (state == FP_BLOCK_FETCHING && !(e->pf[b] & PF_FETCHING)) {
        /* Claimed by a hint that is still queued, and wanted now: issue it now. */
        e->pf[b] |= PF_LATE;
        atomic_fetch_add_explicit(&e->st->pf_late, 1, memory_order_relaxed);
        fetch_begin(e, b, off, true, true, true);
        note_access(e, b);
        return;
    }
    if ((state == FP_BLOCK_FETCHING) && (e->pf[b] & PF_INFLIGHT) && !(e->pf[b] & PF_LATE)) {
        /* Touched while its prefetch is on the wire: late, but no second fetch. */
        e->pf[b] |= PF_LATE;
        atomic_fetch_add_explicit(&e->st->pf_late, 1, memory_order_relaxed);
        note_access(e, b);
    }
    if ((flags & UFFD_PAGEFAULT_FLAG_MINOR) ||
        (e->ops->refaults_missing(e->cache) &&
         (state == FP_BLOCK_RESIDENT || state == FP_BLOCK_DIRTY))) {
        /* A touch of a cached block the backend had unmapped. */
        atomic_fetch_add_explicit(&e->st->minor, 1, memory_order_relaxed);
        if (state == FP_BLOCK_RESIDENT || state == FP_BLOCK_DIRTY) {
            bool first_use = (e->pf[b] & PF_UNUSED) != 0;
            /* Mark it used (and count that, before the wake-up lets the thread
             * read the counters) and map it before reading ahead: the
             * prefetches that follow may evict, and must not take this block
             * from under us. */
            fp_block_touch(e->blocks, b);
            if (first_use) {
                e->pf[b] &= (uint8_t)~PF_UNUSED;
                atomic_fetch_add_explicit(&e->st->pf_used, 1, memory_order_relaxed);
            }
            if (e->pf[b] & PF_SENTINEL) {
                e->pf[b] &= (uint8_t)~PF_SENTINEL;
                blen = PAGE_SIZE_BYTES; /* the rest is mapped */
            }
            if (map_range(e, boff, blen, state == FP_BLOCK_RESIDENT) == FP_ERR_NO_ENTRY) {
                /* The backend lost its bytes (it said why): fetch it again. */
                fp_block_state_t was;
                if (fp_block_evict_begin(e->blocks, b, &was) && evict_block(e, b, was))
                    fetch_begin(e, b, off, false, false, false);
                return;
            }
            if (first_use) {
                fp_prefetch_used(&e->trend);
                note_access(e, b);
            }
            return;
        }
        if (state != FP_BLOCK_ABSENT)
            return; /* FETCHING: woken when its bytes are mapped */
    } else {
        atomic_fetch_add_explicit(&e->st->faults, 1, memory_order_relaxed);
    }
    switch (state) {
    case FP_BLOCK_ABSENT:
        fetch_begin(e, b, off, false, false, false);
        note_access(e, b);
        break;
    case FP_BLOCK_RESIDENT:
    case FP_BLOCK_DIRTY:
        fp_uffd_wake(&e->uffd, e->map + boff, blen);
        break;
    default:
        break; /* in transit: woken when it settles */
    }
}

static void read_faults(fp_engine_t *e)
{
    struct uffd_msg msgs[UFFD_MSG_BATCH];

    for (;;) {
        ssize_t n = read(e->uffd.fd, msgs, sizeof(msgs));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* EAGAIN: drained */
        for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
            if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
                handle_fault(e, &msgs[i]);
        }
        if ((size_t)n < sizeof(msgs))
            return;
    }
}

/* Write back every dirty block, keeping it cached. */
static fp_status_t sync_all(fp_engine_t *e)
{
    fp_status_t first = FP_OK;

    if (e->readonly)
        return FP_OK;
    for (uint64_t b = 0; b < e->nblocks; b++) {
        uint64_t off = block_off(e, b), len = block_map_len(e, b);
        fp_status_t status;

        if (!fp_block_writeback_begin(e->blocks, b))
            continue;
        status = fp_uffd_protect(&e->uffd, e->map + off, len);
        if (status == FP_OK)
            status = writeback_block(e, b);
        fp_block_writeback_done(e->blocks, b, status == FP_OK, true);
        if (status != FP_OK) {
            fp_uffd_unprotect(&e->uffd, e->map + off, len, 0);
            if (first == FP_OK)
                first = status;
        } else {
            fp_uffd_wake(&e->uffd, e->map + off, len);
        }
    }
    return first;
}

static void *engine_thread(void *arg)
{
    fp_engine_t *e = arg;

    for (;;) {
        struct pollfd pfd[3];
        engine_cmd_t cmd;
        uint64_t off, len;
        int nfds = 2, wait_ms, silence_ms;

        pfd[0].fd = e->uffd.fd;
        pfd[0].events = POLLIN;
        pfd[1].fd = e->cmd_fd;
        pfd[1].events = POLLIN;
        if (e->tp != NULL) {
            pfd[2].fd = fp_transport_fd(e->tp);
            pfd[2].events = POLLIN | (fp_transport_send_pending(e->tp) ? POLLOUT : 0);
            nfds = 3;
        }
        /* While a prefetch-wait is pending, look again soon even if nothing
         * stirs; while holding spare pages, now and then, in case another
         * region of the context waits for memory; with fetches in flight, by
         * the time a silent node must be given up. */
        wait_ms = e->pfwait ? 10 : e->ops->has_spare(e->cache) ? 20 : -1;
        silence_ms = silence_wait_ms(e);
        if (silence_ms >= 0 && (wait_ms < 0 || silence_ms < wait_ms))
            wait_ms = silence_ms;
        if (poll(pfd, (nfds_t)nfds, wait_ms) < 0 && errno != EINTR) {
            fp_error(e->log, "region %s: poll: %s", e->name, strerror(errno));
            continue;
        }
        trim_if_wanted(e);
        /* Faults first: a thread waits on each. The transport hands back
         * between slices of a reply while more wait (fp_transport_interrupt_on). */
        if (pfd[0].revents & POLLIN)
            read_faults(e);
        if (nfds == 3 && pfd[2].revents != 0)
            engine_progress(e, 0);
        else
            engine_check_silence(e);
        issue_hints(e);
        if (e->pfwait && e->nprefetching == 0 &&
            (!hints_pending(e) || e->nfetching == 0 || e->tp == NULL)) {
            /* Every prefetch has landed, or what is left cannot be issued for want
             * of room (or of a node): either way, waiting longer changes nothing. */
            e->pfwait = false;
            pthread_mutex_lock(&e->lock);
            e->cmd = CMD_NONE;
            e->cmd_status = e->tp != NULL ? FP_OK : FP_ERR_NOT_CONNECTED;
            e->cmd_done = true;
            pthread_cond_broadcast(&e->cond);
            pthread_mutex_unlock(&e->lock);
        }
        if (!(pfd[1].revents & POLLIN))
            continue;

        {
            uint64_t v;
            (void)!read(e->cmd_fd, &v, sizeof(v));
        }
        pthread_mutex_lock(&e->lock);
        cmd = e->cmd;
        off = e->cmd_off;
        len = e->cmd_len;
        pthread_mutex_unlock(&e->lock);
        if (cmd == CMD_NONE)
            continue; /* a new hint only */
        if (cmd == CMD_PREFETCH_WAIT) {
            e->pfwait = true; /* answered above once prefetches are done */
            continue;
        }
        {
            fp_status_t status;
            if (cmd == CMD_RELEASE) {
                status =
                    release_range(e, off / e->granule, (off + len + e->granule - 1) / e->granule);
            } else {
                status = sync_all(e);
                if (cmd == CMD_STOP)
                    hint_cancel(e, 0, e->nblocks);
                /* Stopping: let every fetch in flight finish first. */
                while (cmd == CMD_STOP && e->nfetching > 0 && e->tp != NULL)
                    engine_progress(e, 100);
            }
            pthread_mutex_lock(&e->lock);
            e->cmd = CMD_NONE;
            e->cmd_status = status;
            e->cmd_done = true;
            pthread_cond_broadcast(&e->cond);
            pthread_mutex_unlock(&e->lock);
        }
        if (cmd == CMD_STOP)
            return NULL;
    }
}

static fp_status_t engine_command(fp_engine_t *e, engine_cmd_t cmd, uint64_t off, uint64_t len)
{
    uint64_t one = 1;
    fp_status_t status;

    pthread_mutex_lock(&e->lock);
    while (e->cmd != CMD_NONE) /* one command at a time, whoever asks */
        pthread_cond_wait(&e->cond, &e->lock);
    e->cmd = cmd;
    e->cmd_off = off;
    e->cmd_len = len;
    e->cmd_done = false;
    pthread_mutex_unlock(&e->lock);
    (void)!write(e->cmd_fd, &one, sizeof(one));
    pthread_mutex_lock(&e->lock);
    while (!e->cmd_done)
        pthread_cond_wait(&e->cond, &e->lock);
    status = e->cmd_status;
    pthread_cond_broadcast(&e->cond); /* the next command may go */
    pthread_mutex_unlock(&e->lock);
    return status;
}

fp_status_t fp_engine_start(const fp_engine_params_t *params, fp_engine_t **engine_p, void **addr_p)
{
    fp_engine_t *e;
    fp_cache_params_t cp;
    bool user_mode_only = false;
    uint64_t features = 0;
    fp_status_t status;

    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return FP_ERR_NO_MEMORY;
    snprintf(e->name, sizeof(e->name), "%s", params->region_name);
    e->readonly = params->readonly;
    e->cache_used = params->cache_used;
    e->cache_wanted = params->cache_wanted;
    e->cache_budget = params->cache_budget;
    e->readahead = params->readahead;
    e->log = params->log;
    e->uffd.fd = e->cmd_fd = -1;

    status = farpool_node_connect(params->node_addr, params->np, &e->node);
    if (status != FP_OK)
        goto err_free;
    status = fp_region_meta_open(e->node, params->region_name, &e->info);
    if (status != FP_OK) {
        fp_error(e->log, "region %s: cannot open on node %s: %s", e->name, params->node_addr,
                 fp_status_string(status));
        goto err_close_node;
    }
    e->tp = fp_node_transport(e->node);
    e->size = e->info.size;
    e->granule = e->info.granule;
    e->map_size = (e->size + PAGE_SIZE_BYTES - 1) & ~(uint64_t)(PAGE_SIZE_BYTES - 1);
    e->nblocks = (e->size + e->granule - 1) / e->granule;
    status = fp_block_table_create(e->nblocks, &e->blocks);
    if (status != FP_OK)
        goto err_info;
    e->pf = calloc(e->nblocks, 1);
    if (e->pf == NULL) {
        status = FP_ERR_NO_MEMORY;
        goto err_blocks;
    }
    fp_prefetch_init(&e->trend, AUTO_WINDOW_MAX);
    status = fp_stats_publish(e->log, e->name, params->node_addr, e->size, e->granule,
                              e->cache_budget, &e->st);
    if (status != FP_OK)
        goto err_blocks;
    for (int i = 0; i < MAX_FETCHES; i++) {
        e->fetches[i].next_free = e->free_fetches;
        e->free_fetches = &e->fetches[i];
    }

    status = fp_uffd_open(e->log, &e->uffd, &user_mode_only, &features);
    if (status != FP_OK)
        goto err_stats;
    /* A fault must not wait for all the replies a fast node has sent meanwhile. */
    fp_transport_interrupt_on(e->tp, e->uffd.fd);
    if (user_mode_only)
        fp_info(e->log,
                "region %s: userfaultfd in user-mode-only mode: system calls that "
                "write "
                "into the region (read(2) into it) fail with EFAULT",
                e->name);
    /* Read-only mappings recycle their pages where the kernel can move them. */
    e->ops = e->readonly && (features & UFFD_FEATURE_MOVE) && (features & UFFD_FEATURE_THREAD_ID)
                 ? &fp_cache_move_ops
                 : &fp_cache_shmem_ops;
    memset(&cp, 0, sizeof(cp));
    cp.name = e->name;
    cp.uffd = &e->uffd;
    cp.log = e->log;
    cp.map_size = e->map_size;
    cp.granule = e->granule;
    cp.nblocks = e->nblocks;
    cp.max_blocks = (e->cache_budget + e->granule - 1) / e->granule;
    cp.readonly = e->readonly;
    status = e->ops->create(&cp, &e->cache);
    if (status != FP_OK)
        goto err_uffd;
    e->map = e->cache->map;
    fp_debug(e->log, "region %s: %s cache, granule %" PRIu64, e->name, e->ops->name, e->granule);
    if (params->prefault) {
        /* Take the memory now rather than during the first touches. */
        uint64_t used = atomic_load(e->cache_used), want = e->nblocks * e->granule;

        if (used < e->cache_budget)
            mem_add(e, (int64_t)e->ops->prefault(e->cache, want < e->cache_budget - used
                                                               ? want
                                                               : e->cache_budget - used));
    }
    e->cmd_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e->cmd_fd < 0) {
        status = FP_ERR_IO;
        goto err_cache;
    }
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    if (pthread_create(&e->thread, NULL, engine_thread, e) != 0) {
        fp_error(e->log, "region %s: cannot start its fault thread", e->name);
        status = FP_ERR_NO_MEMORY;
        goto err_lock;
    }
    *engine_p = e;
    *addr_p = e->map;
    return FP_OK;

err_lock:
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->lock);
    close(e->cmd_fd);
err_cache:
    e->ops->destroy(e->cache);
    mem_add(e, -(int64_t)e->held);
err_uffd:
    fp_transport_interrupt_on(e->tp, -1);
    fp_uffd_close(&e->uffd);
err_stats:
    fp_stats_unpublish(e->st);
err_blocks:
    free(e->pf);
    fp_block_table_destroy(e->blocks);
err_info:
    fp_region_info_cleanup(&e->info);
err_close_node:
    farpool_node_close(e->node);
err_free:
    free(e);
    return status;
}

fp_status_t fp_engine_sync(fp_engine_t *e)
{
    return engine_command(e, CMD_SYNC, 0, 0);
}

fp_status_t fp_engine_stop(fp_engine_t *e, bool force)
{
    fp_status_t status;

    if (e == NULL)
        return FP_OK;
    if (!force) {
        /* Write back first; if that fails, the cache holds the only copy of
         * those bytes: keep everything mapped and say so. */
        status = engine_command(e, CMD_SYNC, 0, 0);
        if (status != FP_OK)
            return status;
    }
    status = engine_command(e, CMD_STOP, 0, 0);
    if (status != FP_OK)
        fp_error(e->log,
                 "region %s: unmapped with dirty blocks that could not be written back: "
                 "those writes are lost",
                 e->name);
    pthread_join(e->thread, NULL);
    e->ops->destroy(e->cache);
    mem_add(e, -(int64_t)e->held);
    if (e->tp != NULL)
        fp_transport_interrupt_on(e->tp, -1); /* the descriptor is about to go */
    fp_uffd_close(&e->uffd);
    close(e->cmd_fd);
    fp_stats_unpublish(e->st);
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->lock);
    fp_block_table_destroy(e->blocks);
    free(e->pf);
    fp_region_info_cleanup(&e->info);
    farpool_node_close(e->node);
    free(e);
    return status;
}

void fp_engine_stats(fp_engine_t *e, farpool_stats_t *s)
{
    fp_stats_read(e->st, s);
}

/*
 * Claim the absent blocks of [off, off+len) for prefetching, here in the
 * caller's thread, so that from now on a fault on any of them waits for its
 * fetch instead of issuing another; queue the range for the engine, which
 * issues the claimed blocks as slots and cache room allow, and maps those the
 * automatic prefetcher brought already. Returns at once (unless the queue is
 * full).
 */
fp_status_t fp_engine_prefetch(fp_engine_t *e, uint64_t off, uint64_t len)
{
    uint64_t first = off / e->granule, end = (off + len + e->granule - 1) / e->granule;
    uint64_t one = 1;

    if (first == end)
        return FP_OK;
    for (uint64_t b = first; b < end; b++)
        (void)fp_block_try_claim(e->blocks, b); /* fails if cached or in flight already */
    pthread_mutex_lock(&e->lock);
    while (e->nhints == HINTS_MAX)
        pthread_cond_wait(&e->cond, &e->lock);
    e->hints[(e->hint_head + e->nhints) % HINTS_MAX] = (hint_t){first, end};
    e->nhints++;
    pthread_mutex_unlock(&e->lock);
    (void)!write(e->cmd_fd, &one, sizeof(one));
    return FP_OK;
}

fp_status_t fp_engine_prefetch_wait(fp_engine_t *e)
{
    return engine_command(e, CMD_PREFETCH_WAIT, 0, 0);
}

fp_status_t fp_engine_release(fp_engine_t *e, uint64_t off, uint64_t len)
{
    return engine_command(e, CMD_RELEASE, off, len);
}
