/* SPDX-License-Identifier: MIT */
/*
 * Write-back: dirty blocks written to the node, and the passes of the
 * application's sync and release that drive them (see engine_int.h for who
 * owns what).
 *
 * DESIGN
 * Dirty tracking. Blocks are mapped write-protected; the first write to a
 * clean block is a write-protect fault that marks it DIRTY and lifts the
 * protection (engine_fault.c). Writing one back protects it again first, so
 * that a write racing with the transfer faults and waits until it is done;
 * the block's bytes are sent from the cache's own view of them.
 *
 * A write-back is an asynchronous transfer on an I/O slot like a fetch, so
 * the fault loop never waits for one: a victim's write-back ends with the
 * block dropped (and the room it leaves goes to the fetches waiting for it),
 * a sync's with the block kept, clean. A block written back to be dropped
 * that is touched meanwhile is kept instead. A failed write-back leaves the
 * block DIRTY and cached, since it holds the only copy of its bytes.
 *
 * sync and release are passes over the block table, resumed by the loop
 * after each completion: a sync starts the write-back of every dirty block,
 * as many at once as slots allow (pipelined), and is done when every
 * write-back started before its end has completed; a release drops its
 * range, writing dirty blocks back first, and waits for blocks in flight.
 */
#include <inttypes.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"
#include "engine_int.h"

static void wb_done(fp_xfer_t *xfer, fp_status_t status)
{
    fp_engine_io_t *io = xfer->arg;
    fp_engine_t *e = io->e;
    uint64_t b = io->block;
    bool keep = (io->flags & FP_IO_KEEP) != 0;

    if (status == FP_ERR_CANCELED && e->silenced)
        status = FP_ERR_TIMED_OUT;
    fp_engine_io_ended(e, io);
    if (!keep)
        e->evicting -= e->evicting < e->granule ? e->evicting : e->granule;
    if (status == FP_OK) {
        fp_engine_count(e, &e->st->writebacks, 1);
        fp_engine_count(e, &e->st->bytes_out, fp_engine_block_len(e, b));
        fp_block_writeback_done(e->blocks, b, keep ? FP_BLOCK_WB_KEEP : FP_BLOCK_WB_EVICT);
        if (keep)
            fp_engine_wake_block(e, b); /* writers waiting on the protection write again */
        else
            fp_engine_drop(e, b);
    } else {
        fp_error(e->log, "region %s: cannot write block %" PRIu64 " back to node %s: %s", e->name,
                 b, fp_node_addr(e->node), fp_status_string(status));
        e->wb_failed++;
        e->wb_error = status;
        fp_block_writeback_done(e->blocks, b, FP_BLOCK_WB_FAILED);
        /* DIRTY again: writable, and its waiting writers go on. */
        fp_uffd_unprotect(&e->uffd, e->map + fp_engine_block_off(e, b),
                          fp_engine_block_map_len(e, b), 0);
    }
    fp_engine_io_put(e, io);
}

bool fp_engine_writeback(fp_engine_t *e, uint64_t b, unsigned flags)
{
    uint64_t off = fp_engine_block_off(e, b);
    fp_engine_io_t *io = fp_engine_io_get(e, FP_IO_WRITEBACK);
    fp_xfer_t *x;
    unsigned n;
    fp_status_t status;

    if (io == NULL) {
        fp_block_writeback_done(e->blocks, b, FP_BLOCK_WB_FAILED); /* DIRTY, for later */
        return false;
    }
    io->block = b;
    io->flags = flags;
    io->seq = ++e->wb_seq;
    io->pending = 1;
    x = &io->xfer[0];
    memset(x, 0, sizeof(*x));
    n = fp_engine_add_ranges(e, off, fp_engine_block_len(e, b), io->ranges[0], io->iov[0], 0);
    x->op = n == 1 ? FP_OP_WRITE : FP_OP_WRITEV;
    x->nranges = n;
    x->ranges = io->ranges[0];
    x->req_iov = io->iov[0];
    x->req_iovcnt = (int)n;
    x->done = wb_done;
    x->arg = io;
    if (!(flags & FP_IO_KEEP))
        e->evicting += e->granule;
    io->state = FP_IO_WIRE;
    if (e->nwire++ == 0)
        e->quiet_since = fp_time_ns();
    /* Writes wait (protection faults) until the node has the bytes. */
    status = fp_uffd_protect(&e->uffd, e->map + off, fp_engine_block_map_len(e, b));
    if (status == FP_OK)
        status = fp_engine_submit(e, x);
    if (status != FP_OK)
        wb_done(x, status); /* not sent: complete it here, as the transport would have */
    return true;
}

void fp_engine_writeback_keep(fp_engine_t *e, uint64_t b)
{
    for (unsigned i = 0; i < FP_ENGINE_IOS; i++) {
        fp_engine_io_t *io = &e->ios[i];

        if (io->state == FP_IO_WIRE && io->kind == FP_IO_WRITEBACK && io->block == b &&
            !(io->flags & FP_IO_KEEP)) {
            io->flags |= FP_IO_KEEP;
            e->evicting -= e->evicting < e->granule ? e->evicting : e->granule;
            return;
        }
    }
}

void fp_engine_sync_start(fp_engine_t *e)
{
    e->sync_next = 0;
    e->sync_seq = UINT64_MAX; /* set when the pass ends */
    e->sync_failed = e->wb_failed;
}

/* True while a write-back started at or before sequence number @seq is in flight. */
static bool writebacks_before(const fp_engine_t *e, uint64_t seq)
{
    for (unsigned i = 0; i < FP_ENGINE_IOS; i++) {
        const fp_engine_io_t *io = &e->ios[i];

        if (io->state != FP_IO_FREE && io->kind == FP_IO_WRITEBACK && io->seq <= seq)
            return true;
    }
    return false;
}

bool fp_engine_sync_step(fp_engine_t *e, fp_status_t *status_p)
{
    bool started = false;

    while (!e->readonly && e->sync_next < e->nblocks) {
        uint64_t b = e->sync_next;

        if (fp_block_state(e->blocks, b) == FP_BLOCK_DIRTY &&
            fp_block_writeback_begin(e->blocks, b)) {
            if (!fp_engine_writeback(e, b, FP_IO_KEEP))
                break; /* no slot: on when one frees */
            started = true;
        }
        e->sync_next++;
    }
    if (started)
        fp_engine_flush(e); /* send the batch now */
    if (e->sync_next < e->nblocks && !e->readonly)
        return false;
    /* Every block was dirty before this point or written back; the ones being
     * written back when the pass ended (a victim's, say) must land too. */
    if (e->sync_seq == UINT64_MAX)
        e->sync_seq = e->wb_seq;
    if (writebacks_before(e, e->sync_seq))
        return false;
    *status_p = e->wb_failed != e->sync_failed ? e->wb_error : FP_OK;
    return true;
}

void fp_engine_release_start(fp_engine_t *e, uint64_t first, uint64_t end)
{
    e->cmd_first = first;
    e->cmd_end = end;
    e->cmd_result = FP_OK;
    e->sync_failed = e->wb_failed;
}

bool fp_engine_release_step(fp_engine_t *e, fp_status_t *status_p)
{
    bool busy = false, started = false;
    /* After a failed write-back, dirty blocks stay (the node is likely gone). */
    bool failed = e->wb_failed != e->sync_failed;

    for (uint64_t b = e->cmd_first; b < e->cmd_end; b++) {
        fp_block_state_t s = fp_block_state(e->blocks, b), was;

        switch (s) {
        case FP_BLOCK_HINTED:
            /* Asked for and not issued yet: simply given up. */
            if (fp_block_unhint(e->blocks, b))
                fp_engine_wake_block(e, b);
            break;
        case FP_BLOCK_ABSENT:
            break;
        case FP_BLOCK_RESIDENT:
            if (fp_block_evict_begin(e->blocks, b, &was))
                fp_engine_drop(e, b);
            break;
        case FP_BLOCK_DIRTY:
            if (failed)
                break;
            if (fp_block_evict_begin(e->blocks, b, &was)) {
                started |= fp_engine_writeback(e, b, 0);
                busy = true; /* done when it is dropped (or fails) */
            }
            break;
        default:
            busy = true; /* in flight: dropped once it lands */
            break;
        }
        if (!busy && fp_block_state(e->blocks, b) == FP_BLOCK_ABSENT)
            e->cmd_first = b + 1;
    }
    if (started)
        fp_engine_flush(e);
    if (busy)
        return false;
    *status_p = e->wb_failed != e->sync_failed ? FP_ERR_IO : FP_OK;
    return true;
}
