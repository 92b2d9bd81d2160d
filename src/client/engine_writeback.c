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
 * the fault loop never waits for one. It writes to every usable copy of the
 * block at once, one transfer each, and is done when all are: it succeeds if
 * one copy at least took the bytes; the copies that did not (their node
 * down, or failing the write) are said, counted, and never read again
 * (engine_nodes.c), and a node that failed as only a broken one fails is
 * taken down. Then: a victim's write-back ends with the
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
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"
#include "engine_int.h"

/* Say why block @b reached no copy. */
static void say_failed(fp_engine_t *e, const fp_engine_io_t *io, uint64_t b)
{
    char copies[FP_MAP_REPLICAS_MAX * (FP_MAP_ADDR_MAX + 48)];
    size_t len = 0;

    copies[0] = '\0';
    for (unsigned k = 0; k < e->rmap.replicas; k++) {
        fp_engine_node_t *n = fp_engine_copy_node(e, b, k);
        int w;

        if (n == NULL)
            continue;
        w = snprintf(copies + len, sizeof(copies) - len, "%s%s%s", len > 0 ? ", " : "", n->addr,
                     e->rmap.replicas > 1 ? ": " : "");
        if (w < 0 || (size_t)w >= sizeof(copies) - len)
            break;
        len += (size_t)w;
        if (e->rmap.replicas == 1)
            continue;
        w = snprintf(copies + len, sizeof(copies) - len, "%s",
                     io->copy_status[k] != FP_OK ? fp_status_string(io->copy_status[k])
                     : n->tp == NULL             ? "node down"
                                                 : "missed a write before");
        if (w < 0 || (size_t)w >= sizeof(copies) - len)
            break;
        len += (size_t)w;
    }
    if (e->rmap.replicas == 1)
        fp_error(e->log, "region %s: cannot write block %" PRIu64 " back to node %s: %s", e->name,
                 b, copies, fp_status_string(io->status));
    else
        fp_error(e->log, "region %s: cannot write block %" PRIu64 " back to any copy (%s)", e->name,
                 b, copies);
}

/* Every copy's transfer of write-back @io has ended. */
static void wb_finish(fp_engine_t *e, fp_engine_io_t *io)
{
    uint64_t b = io->block;
    bool keep = (io->flags & FP_IO_KEEP) != 0;

    fp_engine_io_ended(e, io);
    if (!keep)
        e->evicting -= e->evicting < e->granule ? e->evicting : e->granule;
    if (io->done != 0) {
        bool missed = false;

        /* The copies that did not take it hold stale bytes from now on. */
        for (unsigned k = 0; k < e->rmap.replicas; k++) {
            fp_engine_node_t *n;

            if (io->xnode[k] == UINT32_MAX || (io->done & (1u << k)))
                continue;
            n = &e->nodes[io->xnode[k]];
            if (fp_engine_copy_missed(e, n, b, io->ranges[k]) && io->copy_status[k] != FP_OK)
                fp_warn(e->log,
                        "region %s: block %" PRIu64 " not written back to node %s: %s; "
                        "that copy of its slab is not read again",
                        e->name, b, n->addr, fp_status_string(io->copy_status[k]));
            missed = true;
        }
        e->wb_missed += missed;
        fp_engine_count(e, &e->st->writebacks, 1);
        fp_engine_count(e, &e->st->bytes_out, fp_engine_block_len(e, b));
        fp_block_writeback_done(e->blocks, b, keep ? FP_BLOCK_WB_KEEP : FP_BLOCK_WB_EVICT);
        if (keep)
            fp_engine_wake_block(e, b); /* writers waiting on the protection write again */
        else
            fp_engine_drop(e, b);
    } else {
        say_failed(e, io, b);
        e->wb_failed++;
        e->wb_error = io->status;
        fp_block_writeback_done(e->blocks, b, FP_BLOCK_WB_FAILED);
        /* DIRTY again: writable, and its waiting writers go on. */
        fp_uffd_unprotect(&e->uffd, e->map + fp_engine_block_off(e, b),
                          fp_engine_block_map_len(e, b), 0);
    }
    fp_engine_io_put(e, io);
}

static void wb_xfer_done(fp_xfer_t *xfer, fp_status_t status)
{
    fp_engine_io_t *io = xfer->arg;
    fp_engine_t *e = io->e;
    unsigned k = (unsigned)(xfer - io->xfer);
    fp_engine_node_t *n = fp_engine_xfer_ended(e, io, k, &status);

    io->pending--;
    if (status == FP_OK) {
        io->done |= (uint8_t)(1u << k);
    } else {
        io->copy_status[k] = status;
        if (io->status == FP_OK)
            io->status = status;
        if (n != NULL && fp_engine_node_level(status))
            fp_engine_node_failed(e, n, status);
    }
    if (io->pending == 0)
        wb_finish(e, io);
}

bool fp_engine_writeback(fp_engine_t *e, uint64_t b, unsigned flags)
{
    uint64_t off = fp_engine_block_off(e, b), len = fp_engine_block_len(e, b);
    fp_engine_io_t *io = fp_engine_io_get(e, FP_IO_WRITEBACK);
    unsigned send = 0, nsend;
    fp_status_t status;

    if (io == NULL) {
        fp_block_writeback_done(e->blocks, b, FP_BLOCK_WB_FAILED); /* DIRTY, for later */
        return false;
    }
    io->block = b;
    io->flags = flags;
    io->seq = ++e->wb_seq;
    /* One transfer per copy, xfer[k] to copy k; those not usable miss it. */
    for (unsigned k = 0; k < e->rmap.replicas; k++) {
        fp_engine_node_t *n = fp_engine_copy_node(e, b, k);
        fp_xfer_t *x = &io->xfer[k];
        unsigned nr;

        io->copy_status[k] = FP_OK;
        io->xnode[k] = n != NULL ? (uint32_t)(n - e->nodes) : UINT32_MAX;
        if (n == NULL)
            continue;
        nr = fp_engine_add_ranges(e, off, len, k, io->ranges[k], io->iov[0], 0);
        if (!fp_engine_copy_usable(e, b, k)) {
            if (n->tp == NULL && !n->said_missed && e->rmap.replicas > 1) {
                n->said_missed = true;
                fp_warn(e->log,
                        "region %s: node %s is down: write-backs go to the other copies, and "
                        "its copies are not read again",
                        e->name, n->addr);
            }
            continue;
        }
        memset(x, 0, sizeof(*x));
        x->op = nr == 1 ? FP_OP_WRITE : FP_OP_WRITEV;
        x->nranges = nr;
        x->ranges = io->ranges[k];
        x->req_iov = io->iov[0];
        x->req_iovcnt = (int)nr;
        x->done = wb_xfer_done;
        x->arg = io;
        send |= 1u << k;
    }
    if (!(flags & FP_IO_KEEP))
        e->evicting += e->granule;
    io->state = FP_IO_WIRE;
    e->nwire++;
    nsend = (unsigned)__builtin_popcount(send);
    io->pending = (int)nsend;
    if (nsend == 0) {
        io->status = FP_ERR_NOT_CONNECTED; /* no copy is up */
        wb_finish(e, io);
        return true;
    }
    /* Writes wait (protection faults) until the nodes have the bytes. */
    status = fp_uffd_protect(&e->uffd, e->map + off, fp_engine_block_map_len(e, b));
    for (unsigned k = 0; k < e->rmap.replicas && nsend > 0; k++) {
        fp_status_t st = status;

        if (!(send & (1u << k)))
            continue;
        nsend--; /* after the last one's completion @io may be gone */
        if (st == FP_OK)
            st = fp_engine_submit(e, io, k, &e->nodes[io->xnode[k]]);
        if (st != FP_OK)
            wb_xfer_done(&io->xfer[k],
                         st); /* not sent: complete it here, as the transport would have */
    }
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
