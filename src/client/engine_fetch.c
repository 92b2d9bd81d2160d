/* SPDX-License-Identifier: MIT */
/*
 * Fetches and fills: the engine's I/O slots, a block's fetch from the node
 * into cache memory, and what happens when it lands or fails (see
 * engine_int.h for who owns what).
 *
 * DESIGN
 * A fetch takes an I/O slot, claims its block (ABSENT or HINTED ->
 * FETCHING, never waiting), gets room in the cache and sends its READs; the
 * bytes are received straight into the memory that is then mapped. A demand
 * fetch whose granule exceeds FP_ENGINE_HEAD reads the FP_ENGINE_HEAD bytes
 * around the fault first and maps them as soon as they arrive, waking the
 * faulting thread while the rest is on the wire. A fetch that must wait for
 * room (a dirty victim being written back, a fetch about to land, another
 * region giving pages back) waits in a queue, in order, with its block
 * claimed, and the loop starts it when room comes; the faulting thread waits
 * in the kernel meanwhile and nothing blocks the engine.
 *
 * Slots: FP_ENGINE_IOS per region; fetches may hold all but
 * FP_ENGINE_WB_RESERVE, so that a write-back that frees room always finds
 * one, and guesses all but FP_ENGINE_DEMAND_RESERVE more. A fault that finds
 * no fetch slot is kept (engine_fault.c) and handled when one frees.
 *
 * Copies. A block lies in one replica set (region_map.h). A fetch reads
 * both its parts from one copy: a usable one (its node up, its bytes not
 * stale: engine_nodes.c) with the fewest transfers on the wire, ties taken
 * in turn. A fetch that fails on a copy goes on the retry queue (from the
 * completion, which starts nothing) and the loop re-issues it to a copy not
 * tried yet, asking only for the parts that did not land: a head already
 * mapped into the application's view is never received into again. A
 * failure that says the node is broken (fp_engine_node_level()) also takes
 * the node down; an error reply of a live node (it lost the slab: no entry,
 * permission, out of range) only skips that copy.
 *
 * Failure. A demand fetch that no copy can serve, and for which the remap
 * callback gives no new copy (engine_nodes.c), is logged, naming each copy
 * and why it failed, and its block is poisoned: the accesses that wait for
 * it, and any later one, get SIGBUS. No fault is ever resolved with zeros or
 * stale bytes. A guess that fails is dropped quietly.
 *
 * Fences (engine.c). A fenced block is not claimed; a fetch claimed before
 * its block was fenced is given up when it is launched or re-issued, and
 * dropped when it lands: the block goes back to ABSENT, unmapped and never
 * poisoned. A fault on a fenced block gets SIGBUS (fence_fault).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"
#include "engine_int.h"

void fp_engine_ios_init(fp_engine_t *e)
{
    e->free_ios = NULL;
    for (int i = FP_ENGINE_IOS - 1; i >= 0; i--) {
        e->ios[i].e = e;
        e->ios[i].state = FP_IO_FREE;
        e->ios[i].next = e->free_ios;
        e->free_ios = &e->ios[i];
    }
}

fp_engine_io_t *fp_engine_io_get(fp_engine_t *e, fp_engine_io_kind_t kind)
{
    fp_engine_io_t *io = e->free_ios;

    if (io == NULL || (kind == FP_IO_FETCH && e->nfetch >= FP_ENGINE_IOS - FP_ENGINE_WB_RESERVE))
        return NULL;
    e->free_ios = io->next;
    io->next = NULL;
    io->kind = (uint8_t)kind;
    io->state = FP_IO_IDLE;
    io->flags = 0;
    io->gen++;
    io->pending = 0;
    io->status = FP_OK;
    io->head_mapped = false;
    io->sent = io->done = io->landed = io->tried = 0;
    if (kind == FP_IO_FETCH)
        e->nfetch++;
    else
        e->nwb++;
    return io;
}

void fp_engine_io_put(fp_engine_t *e, fp_engine_io_t *io)
{
    if (io->kind == FP_IO_FETCH) {
        e->nfetch--;
        if (io->flags & FP_IO_PREFETCH)
            e->nprefetch--;
    } else {
        e->nwb--;
    }
    io->state = FP_IO_FREE;
    io->next = e->free_ios;
    e->free_ios = io;
    if (e->ndeferred > 0)
        e->kick = true; /* a fault kept for want of a slot may go on */
}

void fp_engine_io_ended(fp_engine_t *e, fp_engine_io_t *io)
{
    if (io->state == FP_IO_WIRE) {
        io->state = FP_IO_IDLE; /* off the wire; its owner frees it */
        e->nwire--;
    }
    e->kick = true;
}

unsigned fp_engine_add_ranges(fp_engine_t *e, uint64_t off, uint64_t len, unsigned copy,
                              fp_proto_range_t *ranges, struct iovec *iov, unsigned n)
{
    uint64_t slab_size = e->rmap.slab_size;

    while (len > 0) {
        uint64_t slab = off / slab_size, in_slab = off % slab_size;
        uint64_t take = slab_size - in_slab < len ? slab_size - in_slab : len;

        ranges[n].slab = fp_region_map_at(&e->rmap, (uint32_t)slab, copy)->slab;
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

fp_status_t fp_engine_map_range(fp_engine_t *e, uint64_t off, uint64_t len)
{
    return e->ops->map(e->cache, off / e->granule, off, len, true);
}

/* Say why block @b cannot be fetched: each copy, and what it answered (if @io tried it). */
static void say_failed(fp_engine_t *e, const fp_engine_io_t *io, uint64_t b, fp_status_t status)
{
    char copies[FP_MAP_REPLICAS_MAX * (FP_MAP_ADDR_MAX + 48)];
    size_t len = 0;

    if (e->rmap.replicas == 1) {
        fp_error(e->log,
                 "region %s: cannot fetch block %" PRIu64 " (offset %" PRIu64 ") from node %s: "
                 "%s; accesses to it get SIGBUS",
                 e->name, b, fp_engine_block_off(e, b), fp_engine_copy_node(e, b, 0)->addr,
                 fp_status_string(status));
        return;
    }
    if (io == NULL) {
        fp_error(e->log,
                 "region %s: cannot fetch block %" PRIu64 " (offset %" PRIu64 "): %s; accesses "
                 "to it get SIGBUS",
                 e->name, b, fp_engine_block_off(e, b), fp_status_string(status));
        return;
    }
    copies[0] = '\0';
    for (unsigned k = 0; k < e->rmap.replicas; k++) {
        fp_engine_node_t *n = fp_engine_copy_node(e, b, k);
        const char *why;
        int w;

        if (n == NULL)
            continue;
        if (io->tried & (1u << k))
            why = fp_status_string(io->copy_status[k]);
        else
            why = n->tp == NULL ? "node down" : "missed a write";
        w = snprintf(copies + len, sizeof(copies) - len, "%scopy %u on node %s: %s",
                     len > 0 ? ", " : "", k, n->addr, why);
        if (w < 0 || (size_t)w >= sizeof(copies) - len)
            break;
        len += (size_t)w;
    }
    fp_error(e->log,
             "region %s: cannot fetch block %" PRIu64 " (offset %" PRIu64 ") from any copy (%s); "
             "accesses to it get SIGBUS",
             e->name, b, fp_engine_block_off(e, b), copies);
}

/*
 * Block @b, claimed and counted in the cache, cannot be fetched (@io: what
 * was tried, NULL: nothing). Never zeros, never stale bytes: drop what came,
 * poison the block so that every access to it gets SIGBUS, and say why.
 */
static void fail_block(fp_engine_t *e, const fp_engine_io_t *io, uint64_t b, fp_status_t status)
{
    say_failed(e, io, b, status);
    fp_engine_count(e, &e->st->fetch_errors, 1);
    fp_engine_mem_add(e, -(int64_t)e->ops->fail(e->cache, b));
    fp_engine_stat_cache_add(e, -(int64_t)e->granule);
    e->pf[b] = 0;
    fp_block_fill_done(e->blocks, b, false);
}

/*
 * @io's block was fenced while it was claimed: give the fetch up. @bound:
 * it holds cache memory (counted), landed or not; nothing of it is mapped
 * (a head mapped early goes with the drop), and nothing is poisoned. Its
 * waiters retry, and find the block fenced.
 */
static void fence_drop(fp_engine_t *e, fp_engine_io_t *io, bool bound)
{
    uint64_t b = io->block;

    fp_debug(e->log, "region %s: block %" PRIu64 " fenced while in flight: dropped", e->name, b);
    if (bound) {
        fp_engine_mem_add(e, -(int64_t)e->ops->drop(e->cache, b));
        fp_engine_stat_cache_add(e, -(int64_t)e->granule);
    }
    e->pf[b] = 0;
    fp_block_fill_done(e->blocks, b, false);
    fp_engine_wake_block(e, b);
    fp_engine_io_put(e, io);
}

/*
 * A thread faulted on fenced block @b (ABSENT), at region offset @off. Its
 * range is inaccessible while fenced, so the caller made it accessible
 * itself: SIGBUS, never zeros, and said once per fence. The poison goes
 * when the block is opened (engine.c's unfence).
 */
static void fence_fault(fp_engine_t *e, uint64_t b, uint64_t off)
{
    if (atomic_load_explicit(&e->fence[b], memory_order_relaxed) != FP_FENCE_POISONED) {
        fp_error(e->log,
                 "region %s: access at +%" PRIu64 " to fenced block %" PRIu64 " (not mapped "
                 "by the program); it gets SIGBUS",
                 e->name, off, b);
        atomic_store_explicit(&e->fence[b], FP_FENCE_POISONED, memory_order_relaxed);
    }
    /* A fenced block holds no page; a writable one may hold the uffd-wp
     * markers of pages it had before the fence, which poison would refuse. */
    (void)fp_uffd_poison(&e->uffd, e->map + fp_engine_block_off(e, b),
                         fp_engine_block_map_len(e, b),
                         e->readonly ? 0 : FP_UFFD_CLEAR_WP); /* and wakes the thread */
}

/* A demand fetch has all its bytes: map what the head did not, and let its threads go. */
static void fetch_finish(fp_engine_t *e, fp_engine_io_t *io)
{
    uint64_t b = io->block, off = fp_engine_block_off(e, b), len = fp_engine_block_map_len(e, b);
    fp_status_t status = io->status;

    if (status == FP_OK) {
        /* Count it before mapping it: mapping wakes the faulting thread, which
         * may read the counters at once and must find its fetch there. */
        fp_engine_count(e, &e->st->fetched, 1);
        fp_engine_count(e, &e->st->bytes_in, fp_engine_block_len(e, b));
        fp_stats_latency_add(e->st, fp_time_ns() - io->start_ns);
        if (io->head_mapped) {
            if (io->head_off > off)
                status = fp_engine_map_range(e, off, io->head_off - off);
            if (status == FP_OK && io->head_off + io->head_len < off + len)
                status = fp_engine_map_range(e, io->head_off + io->head_len,
                                             off + len - io->head_off - io->head_len);
        } else {
            status = fp_engine_map_range(e, off, len);
        }
    }
    if (status == FP_OK) {
        fp_block_fill_done(e->blocks, b, true);
        /* A write to the early-mapped head was left waiting (write-protect fault
         * on a block in flight): let it retry now. Without an early head, the
         * map above already woke every waiter of the block. */
        if (io->head_mapped)
            fp_engine_wake_block(e, b);
    } else {
        fail_block(e, NULL, b, status);
    }
}

/* A guess that failed costs nothing: drop it; a real access will fetch (and fail loudly). */
static void prefetch_failed(fp_engine_t *e, uint64_t b, fp_status_t status)
{
    fp_warn(e->log, "region %s: prefetch of block %" PRIu64 " failed: %s", e->name, b,
            fp_status_string(status));
    e->pf[b] = 0;
    fp_engine_mem_add(e, -(int64_t)e->ops->drop(e->cache, b));
    fp_engine_stat_cache_add(e, -(int64_t)e->granule);
    fp_block_fill_done(e->blocks, b, false);
    fp_engine_wake_block(e, b);
}

/* The fetch @io, its parts all ended, failed on its copy: re-issue it from the loop. */
static void copy_failed(fp_engine_t *e, fp_engine_io_t *io, fp_engine_node_t *n)
{
    fp_status_t status = io->status;

    e->copy_errors++;
    io->copy_status[io->copy] = status;
    if (n != NULL && fp_engine_node_level(status)) {
        fp_engine_node_failed(e, n, status);
    } else if (n != NULL && !n->said_reply) {
        n->said_reply = true;
        fp_warn(e->log,
                "region %s: node %s answers \"%s\" for block %" PRIu64 " (its copy is lost?); "
                "reading other copies",
                e->name, n->addr, fp_status_string(status), io->block);
    } else {
        fp_debug(e->log, "region %s: block %" PRIu64 ", copy %u: %s; trying another", e->name,
                 io->block, io->copy, fp_status_string(status));
    }
    io->state = FP_IO_RETRY;
    io->next = NULL;
    if (e->retry_tail != NULL)
        e->retry_tail->next = io;
    else
        e->retry_head = io;
    e->retry_tail = io;
    e->kick = true;
}

static void fetch_xfer_done(fp_xfer_t *xfer, fp_status_t status)
{
    fp_engine_io_t *io = xfer->arg;
    fp_engine_t *e = io->e;
    unsigned part = (unsigned)(xfer - io->xfer);
    fp_engine_node_t *n = fp_engine_xfer_ended(e, io, part, &status);

    io->pending--;
    if (status == FP_OK)
        io->landed |= (uint8_t)(1u << part);
    else if (io->status == FP_OK)
        io->status = status;
    if (part == 0 && status == FP_OK && io->pending > 0) {
        /* The head is here: let the faulting thread go on now. */
        if (fp_engine_map_range(e, io->head_off, io->head_len) == FP_OK)
            io->head_mapped = true;
    }
    if (io->pending > 0)
        return;
    fp_engine_io_ended(e, io);
    if (fp_engine_fenced(e, io->block)) {
        if (io->landed == io->parts)
            fp_engine_count(e, &e->st->bytes_in, fp_engine_block_len(e, io->block));
        fence_drop(e, io, true);
        return;
    }
    if (io->landed != io->parts) {
        copy_failed(e, io, n);
        return;
    }
    fp_trace(e->log, "region %s: block %" PRIu64 " fetched", e->name, io->block);
    if (!(io->flags & FP_IO_PREFETCH))
        fetch_finish(e, io);
    else
        fp_engine_prefetch_landed(e, io, FP_OK);
    fp_engine_io_put(e, io);
}

/* Make xfer @k of @io a read of the @n ranges prepared in io->ranges[k] / io->iov[k]. */
static void xfer_init(fp_engine_io_t *io, int k, unsigned n)
{
    fp_xfer_t *x = &io->xfer[k];

    memset(x, 0, sizeof(*x));
    x->op = n == 1 ? FP_OP_READ : FP_OP_READV;
    x->nranges = n;
    x->ranges = io->ranges[k];
    x->rsp_iov = io->iov[k];
    x->rsp_iovcnt = (int)n;
    x->done = fetch_xfer_done;
    x->arg = io;
}

/*
 * The copy of @io's block to read: a usable one not tried yet, with the
 * fewest transfers on the wire, ties taken in turn; -1 if none is left.
 */
static int pick_copy(fp_engine_t *e, const fp_engine_io_t *io)
{
    unsigned r = e->rmap.replicas, start, best_n = 0;
    int best = -1;

    if (r == 1)
        return !(io->tried & 1u) && fp_engine_copy_usable(e, io->block, 0) ? 0 : -1;
    start = e->rr++ % r;
    for (unsigned j = 0; j < r; j++) {
        unsigned k = (start + j) % r;
        unsigned n;

        if ((io->tried & (1u << k)) || !fp_engine_copy_usable(e, io->block, k))
            continue;
        n = fp_engine_copy_node(e, io->block, k)->nxfer;
        if (best < 0 || n < best_n) {
            best = (int)k;
            best_n = n;
        }
    }
    return best;
}

/*
 * No copy of @io's block is left to try: ask for a new map. Under it the
 * copies that a live node refused before (same node, same slab) stay tried;
 * the others (another node or slab, a node up again) may be tried. True if
 * one is usable.
 */
static bool remap_copies(fp_engine_t *e, fp_engine_io_t *io)
{
    uint64_t b = io->block;
    uint32_t node[FP_MAP_REPLICAS_MAX], slab;
    uint64_t id[FP_MAP_REPLICAS_MAX];
    fp_status_t why[FP_MAP_REPLICAS_MAX];
    unsigned nrefused = 0;
    bool fresh = false;

    slab = (uint32_t)(b * e->granule / e->rmap.slab_size);
    for (unsigned k = 0; k < e->rmap.replicas; k++) {
        fp_engine_node_t *n = fp_engine_copy_node(e, b, k);

        if (n == NULL || !(io->tried & (1u << k)) || fp_engine_node_level(io->copy_status[k]))
            continue;
        node[nrefused] = (uint32_t)(n - e->nodes);
        id[nrefused] = fp_region_map_at(&e->rmap, slab, k)->slab;
        why[nrefused++] = io->copy_status[k];
    }
    if (!fp_engine_remap(e, b))
        return false;
    io->tried = 0;
    io->map_gen = e->map_gen;
    for (unsigned k = 0; k < e->rmap.replicas; k++) {
        fp_engine_node_t *n = fp_engine_copy_node(e, b, k);

        if (n == NULL)
            continue;
        for (unsigned j = 0; j < nrefused; j++) {
            if (node[j] == (uint32_t)(n - e->nodes) &&
                id[j] == fp_region_map_at(&e->rmap, slab, k)->slab) {
                io->tried |= (uint8_t)(1u << k);
                io->copy_status[k] = why[j];
            }
        }
        if (!(io->tried & (1u << k)) && fp_engine_copy_usable(e, b, k))
            fresh = true;
    }
    return fresh;
}

/* Give @io up: no copy could serve its block. */
static void fetch_give_up(fp_engine_t *e, fp_engine_io_t *io)
{
    fp_status_t status = io->status != FP_OK ? io->status : FP_ERR_NOT_CONNECTED;

    if (!(io->flags & FP_IO_PREFETCH))
        fail_block(e, io, io->block, status);
    else
        prefetch_failed(e, io->block, status);
    fp_engine_io_put(e, io);
}

/*
 * Send the parts of @io that have not landed to a copy not tried yet; with
 * none left, ask for a new map (demand fetches), else give the fetch up.
 * Submits that fail complete their parts here, as the transport would have.
 */
static void fetch_send(fp_engine_t *e, fp_engine_io_t *io)
{
    uint64_t b = io->block, off = fp_engine_block_off(e, b), len = fp_engine_block_len(e, b);
    uint64_t head = io->head_off;
    unsigned want, nrest = 0;
    fp_engine_node_t *n;
    int k;

    if (io->map_gen != e->map_gen) {
        /* Its copies were tried under another map: try them all under this one. */
        io->tried = 0;
        io->map_gen = e->map_gen;
    }
    k = pick_copy(e, io);
    if (k < 0 && !(io->flags & FP_IO_PREFETCH) && remap_copies(e, io))
        k = pick_copy(e, io);
    if (k < 0) {
        fetch_give_up(e, io);
        return;
    }
    n = fp_engine_copy_node(e, b, (unsigned)k);
    io->copy = (uint8_t)k;
    io->tried |= (uint8_t)(1u << k);
    io->status = FP_OK;
    want = io->parts & ~io->landed;
    if (io->parts == FP_IO_PART_HEAD) {
        xfer_init(io, 0,
                  fp_engine_add_ranges(e, off, len, (unsigned)k, io->ranges[0], io->iov[0], 0));
    } else {
        if (want & FP_IO_PART_HEAD)
            xfer_init(io, 0,
                      fp_engine_add_ranges(e, head, FP_ENGINE_HEAD, (unsigned)k, io->ranges[0],
                                           io->iov[0], 0));
        if (want & FP_IO_PART_REST) {
            if (head > off)
                nrest = fp_engine_add_ranges(e, off, head - off, (unsigned)k, io->ranges[1],
                                             io->iov[1], nrest);
            if (head + FP_ENGINE_HEAD < off + len)
                nrest = fp_engine_add_ranges(e, head + FP_ENGINE_HEAD,
                                             off + len - head - FP_ENGINE_HEAD, (unsigned)k,
                                             io->ranges[1], io->iov[1], nrest);
            xfer_init(io, 1, nrest);
        }
    }
    io->pending = __builtin_popcount(want);
    io->state = FP_IO_WIRE;
    e->nwire++;
    for (unsigned p = 0; p < 2; p++) {
        fp_status_t status;

        if (!(want & (1u << p)))
            continue;
        status = fp_engine_submit(e, io, p, n);
        if (status != FP_OK) {
            /* Not submitted: complete them here, as the transport would have. */
            for (unsigned q = p; q < 2; q++)
                if (want & (1u << q))
                    fetch_xfer_done(&io->xfer[q], status);
            return;
        }
    }
}

void fp_engine_retry_step(fp_engine_t *e)
{
    fp_engine_io_t *io = e->retry_head;

    /* Those queued now: a submit failing below queues its fetch for the next turn. */
    e->retry_head = e->retry_tail = NULL;
    while (io != NULL) {
        fp_engine_io_t *next = io->next;

        io->next = NULL;
        io->state = FP_IO_IDLE;
        if (fp_engine_fenced(e, io->block))
            fence_drop(e, io, true);
        else
            fetch_send(e, io);
        io = next;
    }
    fp_engine_flush(e);
}

/* Give block @b, claimed, memory to land in, counting new memory against the budget. */
static fp_status_t bind_block(fp_engine_t *e, uint64_t b)
{
    fp_status_t status;
    bool grew;

    for (int tries = 0; (status = e->ops->bind(e->cache, b, &grew)) == FP_ERR_NO_SPACE;) {
        /* Every page of the backend is taken (only far over budget): drop a
         * clean block to free one. */
        if (++tries > 8 || !fp_engine_evict_clean(e))
            return FP_ERR_NO_MEMORY;
    }
    if (status == FP_OK && grew)
        fp_engine_mem_add(e, (int64_t)e->granule);
    return status;
}

/* Room is there: bind the block's memory and send its requests. */
static void fetch_launch(fp_engine_t *e, fp_engine_io_t *io)
{
    uint64_t b = io->block, off = fp_engine_block_off(e, b), len = fp_engine_block_len(e, b);
    uint64_t gen = io->gen;
    fp_status_t status;

    if (fp_engine_fenced(e, b)) { /* fenced while it waited for room */
        fence_drop(e, io, false);
        return;
    }
    status = bind_block(e, b);
    if (status != FP_OK) {
        if (io->flags & FP_IO_PREFETCH) {
            fp_block_fill_done(e->blocks, b, false);
            e->pf[b] = 0;
            fp_engine_wake_block(e, b);
        } else {
            /* Not counted in the cache yet: count it, as fail_block uncounts. */
            fp_engine_stat_cache_add(e, (int64_t)e->granule);
            fail_block(e, NULL, b, status);
        }
        fp_engine_io_put(e, io);
        return;
    }
    fp_engine_stat_cache_add(e, (int64_t)e->granule);
    io->start_ns = fp_time_ns();
    io->map_gen = e->map_gen;
    if (len <= FP_ENGINE_HEAD || (io->flags & FP_IO_PREFETCH) || !e->ops->can_map_part(e->cache)) {
        io->head_off = off;
        io->head_len = len;
        io->parts = FP_IO_PART_HEAD;
    } else {
        uint64_t head = io->fault_off & ~(uint64_t)(FP_ENGINE_HEAD - 1);

        if (head + FP_ENGINE_HEAD > off + len)
            head = off + len - FP_ENGINE_HEAD;
        io->head_off = head;
        io->head_len = FP_ENGINE_HEAD;
        io->parts = FP_IO_PART_HEAD | FP_IO_PART_REST;
    }
    fetch_send(e, io);
    /* The requests go out now; while the node sends, allocate the pages the
     * replies land in (if they are new), at once rather than one fault per
     * page during the receive. This thread reads the replies only after. */
    fp_engine_flush(e);
    if (io->state == FP_IO_WIRE && io->gen == gen)
        e->ops->populate(e->cache, b);
}

/* Queue @io, its block claimed, until there is room. */
static void room_enqueue(fp_engine_t *e, fp_engine_io_t *io)
{
    io->state = FP_IO_WAIT_ROOM;
    io->next = NULL;
    if (e->room_tail != NULL)
        e->room_tail->next = io;
    else
        e->room_head = io;
    e->room_tail = io;
}

void fp_engine_room_retry(fp_engine_t *e)
{
    while (e->room_head != NULL) {
        fp_engine_io_t *io = e->room_head;

        if (fp_engine_make_room(e, 0) == FP_ROOM_WAIT)
            return;
        e->room_head = io->next;
        if (e->room_head == NULL)
            e->room_tail = NULL;
        io->next = NULL;
        fetch_launch(e, io);
    }
}

fp_engine_fetch_t fp_engine_fetch(fp_engine_t *e, uint64_t b, uint64_t fault_off, unsigned flags)
{
    bool guess = (flags & FP_IO_PREFETCH) && !(flags & FP_IO_URGENT); /* nobody waits for it */
    fp_block_state_t was;
    fp_engine_io_t *io;
    fp_engine_room_t room = FP_ROOM_OK;

    /* Blocks in flight cannot be evicted: guesses may hold at most a quarter
     * of the budget, and leave slots to faults, so that faults always find
     * room; and they may only replace cold blocks. */
    if (guess && (!fp_engine_any_node(e) ||
                  e->nfetch >= FP_ENGINE_IOS - FP_ENGINE_WB_RESERVE - FP_ENGINE_DEMAND_RESERVE ||
                  (uint64_t)(e->nprefetch + 1) * e->granule > e->budget->limit / 4))
        return FP_FETCH_SKIPPED;
    /* Faults wait for room: a guess must not take it from them. */
    if (guess && e->room_head != NULL)
        return FP_FETCH_SKIPPED;
    /* Only this thread takes a block out of ABSENT or HINTED: checked now, it
     * can still be claimed below. */
    was = fp_block_state(e->blocks, b);
    if (was != FP_BLOCK_ABSENT && was != FP_BLOCK_HINTED && (guess || !fp_engine_fenced(e, b)))
        return FP_FETCH_GONE;
    if (fp_engine_fenced(e, b)) {
        /* A hint given before the fence, or after it by a thread that did not
         * see it: given up. A thread waiting for the block gets SIGBUS, and a
         * demand fault does whatever the block's state (a fetch in flight, to
         * be dropped when it lands): woken as if mapped, the thread would
         * fault again and again. */
        if (was == FP_BLOCK_HINTED && fp_block_unhint(e->blocks, b))
            fp_engine_wake_block(e, b);
        if (!guess)
            fence_fault(e, b, fault_off);
        return FP_FETCH_FENCED;
    }
    if (e->free_ios == NULL || e->nfetch >= FP_ENGINE_IOS - FP_ENGINE_WB_RESERVE)
        return guess ? FP_FETCH_SKIPPED : FP_FETCH_DEFERRED;
    if (guess && fp_engine_make_room(e, FP_ROOM_GUESS | (flags & FP_IO_HINTED ? 0 : FP_ROOM_AGE)) !=
                     FP_ROOM_OK)
        return FP_FETCH_SKIPPED;
    io = fp_engine_io_get(e, FP_IO_FETCH);
    if (io == NULL) /* the room made above took a slot for a write-back */
        return guess ? FP_FETCH_SKIPPED : FP_FETCH_DEFERRED;
    if (!fp_block_try_claim(e->blocks, b, &was)) {
        fp_engine_io_put(e, io);
        return FP_FETCH_GONE;
    }
    io->block = b;
    io->fault_off = fault_off;
    io->flags = flags;
    if (flags & FP_IO_PREFETCH) {
        e->nprefetch++;
        e->pf[b] = (uint8_t)((e->pf[b] & (FP_PF_LATE | FP_PF_HINT)) | FP_PF_INFLIGHT);
        if (flags & FP_IO_MARKER)
            e->pf[b] |= FP_PF_MARKER;
        if (flags & FP_IO_HINTED)
            e->pf[b] |= FP_PF_HINT;
        fp_engine_count(e, &e->st->pf_issued, 1);
    } else {
        e->pf[b] &= FP_PF_HINT;
    }
    if (!guess && e->room_head == NULL)
        room = fp_engine_make_room(e, 0);
    if (!guess && (e->room_head != NULL || room == FP_ROOM_WAIT)) {
        room_enqueue(e, io); /* in order behind the others */
        return FP_FETCH_STARTED;
    }
    fetch_launch(e, io);
    return FP_FETCH_STARTED;
}
