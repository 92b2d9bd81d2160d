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
 * Failure. A fetch that cannot be served (the node is gone, the connection
 * broke, a timeout) is logged and its block is poisoned: the accesses that
 * wait for it, and any later one, get SIGBUS. No fault is ever resolved with
 * zeros or stale bytes. A guess that fails is dropped quietly.
 */
#include <inttypes.h>
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
    e->quiet_since = fp_time_ns();
    if (io->state == FP_IO_WIRE) {
        io->state = FP_IO_IDLE; /* off the wire; its owner frees it */
        e->nwire--;
    }
    e->kick = true;
}

unsigned fp_engine_add_ranges(fp_engine_t *e, uint64_t off, uint64_t len, fp_proto_range_t *ranges,
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

fp_status_t fp_engine_map_range(fp_engine_t *e, uint64_t off, uint64_t len)
{
    return e->ops->map(e->cache, off / e->granule, off, len, true);
}

fp_status_t fp_engine_submit(fp_engine_t *e, fp_xfer_t *x)
{
    fp_status_t status;

    if (e->tp == NULL)
        return FP_ERR_NOT_CONNECTED;
    status = fp_transport_submit(e->tp, x);
    /* The transport has far more slots than an engine has transfers. */
    if (status == FP_ERR_BUSY)
        fp_error(e->log, "region %s: the transport to node %s is full", e->name,
                 fp_node_addr(e->node));
    return status;
}

/*
 * Block @b, claimed and counted in the cache, cannot be fetched. Never zeros,
 * never stale bytes: drop what came, poison the block so that every access to
 * it gets SIGBUS, and say why.
 */
static void fail_block(fp_engine_t *e, uint64_t b, fp_status_t status)
{
    fp_error(e->log,
             "region %s: cannot fetch block %" PRIu64 " (offset %" PRIu64 ") from node %s: %s; "
             "accesses to it get SIGBUS",
             e->name, b, fp_engine_block_off(e, b), fp_node_addr(e->node),
             fp_status_string(status));
    fp_engine_count(e, &e->st->fetch_errors, 1);
    fp_engine_mem_add(e, -(int64_t)e->ops->fail(e->cache, b));
    fp_engine_stat_cache_add(e, -(int64_t)e->granule);
    e->pf[b] = 0;
    fp_block_fill_done(e->blocks, b, false);
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
        fail_block(e, b, status);
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

static void fetch_xfer_done(fp_xfer_t *xfer, fp_status_t status)
{
    fp_engine_io_t *io = xfer->arg;
    fp_engine_t *e = io->e;

    if (status == FP_ERR_CANCELED && e->silenced)
        status = FP_ERR_TIMED_OUT;
    io->pending--;
    if (status != FP_OK && io->status == FP_OK)
        io->status = status;
    if (xfer == &io->xfer[0] && status == FP_OK && io->pending > 0) {
        /* The head is here: let the faulting thread go on now. */
        if (fp_engine_map_range(e, io->head_off, io->head_len) == FP_OK)
            io->head_mapped = true;
    }
    if (io->pending > 0)
        return;
    fp_engine_io_ended(e, io);
    fp_trace(e->log, "region %s: block %" PRIu64 " fetched: %s", e->name, io->block,
             fp_status_string(io->status));
    if (!(io->flags & FP_IO_PREFETCH))
        fetch_finish(e, io);
    else if (io->status == FP_OK)
        fp_engine_prefetch_landed(e, io, FP_OK);
    else
        prefetch_failed(e, io->block, io->status);
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
    unsigned nrest = 0;
    fp_status_t status;

    status = e->tp != NULL ? bind_block(e, b) : FP_ERR_NOT_CONNECTED;
    if (status != FP_OK) {
        if (io->flags & FP_IO_PREFETCH) {
            fp_block_fill_done(e->blocks, b, false);
            e->pf[b] = 0;
            fp_engine_wake_block(e, b);
        } else {
            /* Not counted in the cache yet: count it, as fail_block uncounts. */
            fp_engine_stat_cache_add(e, (int64_t)e->granule);
            fail_block(e, b, status);
        }
        fp_engine_io_put(e, io);
        return;
    }
    fp_engine_stat_cache_add(e, (int64_t)e->granule);
    io->start_ns = fp_time_ns();
    if (e->nwire == 0)
        e->quiet_since = io->start_ns;
    io->state = FP_IO_WIRE;
    e->nwire++;

    if (len <= FP_ENGINE_HEAD || (io->flags & FP_IO_PREFETCH) || !e->ops->can_map_part(e->cache)) {
        io->head_off = off;
        io->head_len = len;
        xfer_init(io, 0, fp_engine_add_ranges(e, off, len, io->ranges[0], io->iov[0], 0));
        io->pending = 1;
    } else {
        uint64_t head = io->fault_off & ~(uint64_t)(FP_ENGINE_HEAD - 1);

        if (head + FP_ENGINE_HEAD > off + len)
            head = off + len - FP_ENGINE_HEAD;
        io->head_off = head;
        io->head_len = FP_ENGINE_HEAD;
        xfer_init(io, 0,
                  fp_engine_add_ranges(e, head, FP_ENGINE_HEAD, io->ranges[0], io->iov[0], 0));
        if (head > off)
            nrest = fp_engine_add_ranges(e, off, head - off, io->ranges[1], io->iov[1], nrest);
        if (head + FP_ENGINE_HEAD < off + len)
            nrest =
                fp_engine_add_ranges(e, head + FP_ENGINE_HEAD, off + len - head - FP_ENGINE_HEAD,
                                     io->ranges[1], io->iov[1], nrest);
        xfer_init(io, 1, nrest);
        io->pending = 2;
    }
    for (int k = 0, n = io->pending; k < n; k++) {
        status = fp_engine_submit(e, &io->xfer[k]);
        if (status != FP_OK) {
            /* Not submitted: complete them here, as the transport would have. */
            for (int j = k; j < n; j++)
                fetch_xfer_done(&io->xfer[j], status);
            return;
        }
    }
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
    if (guess && (e->tp == NULL ||
                  e->nfetch >= FP_ENGINE_IOS - FP_ENGINE_WB_RESERVE - FP_ENGINE_DEMAND_RESERVE ||
                  (uint64_t)(e->nprefetch + 1) * e->granule > e->budget->limit / 4))
        return FP_FETCH_SKIPPED;
    /* Faults wait for room: a guess must not take it from them. */
    if (guess && e->room_head != NULL)
        return FP_FETCH_SKIPPED;
    /* Only this thread takes a block out of ABSENT or HINTED: checked now, it
     * can still be claimed below. */
    was = fp_block_state(e->blocks, b);
    if (was != FP_BLOCK_ABSENT && was != FP_BLOCK_HINTED)
        return FP_FETCH_GONE;
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
        e->pf[b] = (uint8_t)((e->pf[b] & FP_PF_LATE) | FP_PF_INFLIGHT);
        if (flags & FP_IO_MARKER)
            e->pf[b] |= FP_PF_MARKER;
        fp_engine_count(e, &e->st->pf_issued, 1);
    } else {
        e->pf[b] = 0;
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
