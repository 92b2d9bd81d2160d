/* SPDX-License-Identifier: MIT */
/*
 * The fault reader: userfaultfd messages turned into the engine's actions
 * (see engine_int.h for who owns what).
 *
 * DESIGN
 * The userfaultfd is read in batches. Per fault, by the block's state:
 *
 *   missing, ABSENT      fetch it (engine_fetch.c); feed the read-ahead
 *   missing, HINTED      a hint not issued yet is wanted now: issue it now
 *   missing, FETCHING    nothing: the thread sleeps in the kernel until the
 *                        block's bytes are mapped, which wakes it (concurrent
 *                        faults on one block share one fetch)
 *   minor (or missing on a parked block), cached
 *                        a touch of a block the cache had unmapped: map it
 *                        again (the CLOCK access signal, the first use of a
 *                        block read ahead, a batch's marker)
 *   write-protect        the first write to a clean block: DIRTY, unprotect;
 *                        in transit: the write waits until the block settles
 *
 * A fault whose fetch finds no I/O slot is kept, with those read after it,
 * and handled again when a slot frees; the userfaultfd is not read meanwhile.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "engine_int.h"

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
    if (tid > 0 && syscall(SYS_tgkill, (pid_t)getpid(), tid, SIGSEGV) != 0)
        fp_error(e->log, "region %s: cannot signal thread %d: %s", e->name, (int)tid,
                 strerror(errno));
}

/* The first write to block @b: a clean block becomes DIRTY and writable. */
static void write_fault(fp_engine_t *e, const struct uffd_msg *msg, uint64_t off, uint64_t b)
{
    fp_engine_count(e, &e->st->wp, 1);
    if (e->readonly) {
        deny_write(e, msg, off);
        return;
    }
    fp_block_mark_dirty(e->blocks, b); /* only from RESIDENT */
    if (fp_block_state(e->blocks, b) == FP_BLOCK_DIRTY)
        fp_uffd_unprotect(&e->uffd, e->map + fp_engine_block_off(e, b),
                          fp_engine_block_map_len(e, b), 0);
    /* Other states: the write waits until the block settles; it is woken then. */
}

/* A touch of block @b, cached (@state), that the backend had unmapped. */
static void touch_cached(fp_engine_t *e, uint64_t b, uint64_t off, fp_block_state_t state)
{
    uint64_t boff = fp_engine_block_off(e, b), blen = fp_engine_block_map_len(e, b);
    bool marker = (e->pf[b] & FP_PF_MARKER) != 0;
    bool first_use = !marker && (e->pf[b] & FP_PF_UNUSED) != 0;
    fp_block_state_t was;
    fp_status_t status;

    fp_engine_count(e, &e->st->minor, 1);
    /* Mark it used (and count that, before the wake-up lets the thread read
     * the counters) and map it before reading ahead: the prefetches that
     * follow may evict, and must not take this block from under us. */
    fp_block_touch(e->blocks, b);
    if (first_use) {
        e->pf[b] &= (uint8_t)~FP_PF_UNUSED;
        fp_engine_count(e, &e->st->pf_used, 1);
    }
    if (marker)
        fp_engine_marker_credit(e, b, false);
    if (e->pf[b] & FP_PF_SENTINEL) {
        e->pf[b] &= (uint8_t)~FP_PF_SENTINEL;
        blen = FP_ENGINE_PAGE; /* the rest is mapped */
    }
    status = e->ops->map(e->cache, b, boff, blen, state != FP_BLOCK_DIRTY);
    if (status == FP_ERR_NO_ENTRY) {
        /* The backend lost its bytes (it said why): fetch the block again. */
        if (fp_block_evict_begin(e->blocks, b, &was)) {
            if (was == FP_BLOCK_RESIDENT) {
                fp_engine_drop(e, b);
                fp_engine_fetch(e, b, off, 0); /* no slot: the retried fault fetches it */
            } else {
                fp_block_writeback_done(e->blocks, b, FP_BLOCK_WB_FAILED);
            }
        }
        return;
    }
    if (marker || first_use)
        fp_engine_note_access(e, b);
}

/*
 * A block read ahead was touched while in flight and the fault is read only
 * now that it has landed (a missing fault on a cached block): late, and the
 * stream's touch all the same (a batch's marker, say).
 */
static void touched_in_flight(fp_engine_t *e, uint64_t b, fp_block_state_t state)
{
    uint64_t boff = fp_engine_block_off(e, b), blen = fp_engine_block_map_len(e, b);
    uint8_t f = e->pf[b];

    fp_engine_count(e, &e->st->pf_late, 1);
    fp_block_touch(e->blocks, b);
    if (f & FP_PF_MARKER)
        fp_engine_marker_credit(e, b, true); /* before the wake-up, as the counters */
    e->pf[b] &= (uint8_t) ~(FP_PF_UNUSED | FP_PF_SENTINEL | FP_PF_MARKER);
    if (f & (FP_PF_SENTINEL | FP_PF_MARKER))
        e->ops->map(e->cache, b, boff, f & FP_PF_SENTINEL ? FP_ENGINE_PAGE : blen,
                    state != FP_BLOCK_DIRTY);
    else
        fp_engine_wake_block(e, b); /* mapped whole as it landed */
    fp_engine_note_access(e, b);
}

/* Handle one fault; false if it must wait for an I/O slot (handle it again later). */
static bool handle_fault(fp_engine_t *e, const struct uffd_msg *msg)
{
    uint64_t addr = msg->arg.pagefault.address, flags = msg->arg.pagefault.flags;
    uint64_t off, b;
    fp_block_state_t state;
    bool minor;

    if (addr < (uintptr_t)e->map || addr >= (uintptr_t)e->map + e->map_size)
        return true;
    off = addr - (uintptr_t)e->map;
    b = off / e->granule;
    state = fp_block_state(e->blocks, b);
    fp_trace(e->log,
             "region %s: fault at +%" PRIu64 " flags %#" PRIx64 ", block %" PRIu64 " state %d",
             e->name, off, flags, b, (int)state);

    if (flags & UFFD_PAGEFAULT_FLAG_WP) {
        write_fault(e, msg, off, b);
        return true;
    }
    if (state == FP_BLOCK_HINTED) {
        /* Hinted, not issued yet, and wanted now: issue it now. */
        uint8_t pf = e->pf[b];

        e->pf[b] |= FP_PF_LATE;
        switch (fp_engine_fetch(e, b, off, FP_IO_PREFETCH | FP_IO_HINTED | FP_IO_URGENT)) {
        case FP_FETCH_DEFERRED:
            e->pf[b] = pf;
            return false;
        case FP_FETCH_STARTED:
            fp_engine_count(e, &e->st->pf_late, 1);
            fp_engine_note_access(e, b);
            break;
        default:
            e->pf[b] = pf;
            fp_engine_wake_block(e, b); /* it moved on: let the access retry */
            break;
        }
        return true;
    }
    if (state == FP_BLOCK_FETCHING && (e->pf[b] & FP_PF_INFLIGHT) && !(e->pf[b] & FP_PF_LATE)) {
        /* Touched while its prefetch is on the wire: late, but no second fetch. */
        e->pf[b] |= FP_PF_LATE;
        fp_engine_count(e, &e->st->pf_late, 1);
        if (e->pf[b] & FP_PF_MARKER)
            fp_engine_marker_credit(e, b, true);
        fp_engine_note_access(e, b);
    }
    if (!(flags & UFFD_PAGEFAULT_FLAG_MINOR) && !e->ops->refaults_missing(e->cache) &&
        (state == FP_BLOCK_RESIDENT || state == FP_BLOCK_DIRTY) &&
        (e->pf[b] & (FP_PF_UNUSED | FP_PF_MARKER))) {
        fp_engine_count(e, &e->st->faults, 1);
        touched_in_flight(e, b, state);
        return true;
    }
    minor = (flags & UFFD_PAGEFAULT_FLAG_MINOR) ||
            (e->ops->refaults_missing(e->cache) &&
             (state == FP_BLOCK_RESIDENT || state == FP_BLOCK_DIRTY));
    if (minor) {
        if (state == FP_BLOCK_RESIDENT || state == FP_BLOCK_DIRTY) {
            touch_cached(e, b, off, state);
        } else if (state == FP_BLOCK_WRITEBACK) {
            /* Being written back to be dropped, and in use again: keep it, and
             * map it protected meanwhile (a write waits for the write-back). */
            fp_engine_count(e, &e->st->minor, 1);
            fp_engine_writeback_keep(e, b);
            fp_block_touch(e->blocks, b);
            e->ops->map(e->cache, b, fp_engine_block_off(e, b), fp_engine_block_map_len(e, b),
                        true);
        } else if (state == FP_BLOCK_ABSENT) {
            /* Dropped between the fault and now: fetch it as a miss. */
            fp_engine_fetch_t r = fp_engine_fetch(e, b, off, 0);

            if (r == FP_FETCH_DEFERRED)
                return false;
            fp_engine_count(e, &e->st->faults, 1);
            if (r != FP_FETCH_FENCED)
                fp_engine_note_access(e, b);
        }
        return true; /* FETCHING: woken when its bytes are mapped */
    }
    switch (state) {
    case FP_BLOCK_ABSENT:
        switch (fp_engine_fetch(e, b, off, 0)) {
        case FP_FETCH_DEFERRED:
            return false;
        case FP_FETCH_STARTED:
            fp_engine_note_access(e, b);
            break;
        default:
            fp_engine_wake_block(e, b); /* it moved on: let the access retry */
            break;
        }
        break;
    case FP_BLOCK_RESIDENT:
    case FP_BLOCK_DIRTY:
        fp_engine_wake_block(e, b); /* mapped meanwhile */
        break;
    default:
        break; /* in transit: woken when it settles */
    }
    fp_engine_count(e, &e->st->faults, 1);
    return true;
}

void fp_engine_read_faults(fp_engine_t *e)
{
    /* The faults kept for want of a slot come first. */
    while (e->deferred_pos < e->ndeferred) {
        const struct uffd_msg *msg = &e->deferred[e->deferred_pos];

        if (msg->event == UFFD_EVENT_PAGEFAULT && !handle_fault(e, msg))
            return;
        e->deferred_pos++;
    }
    e->ndeferred = e->deferred_pos = 0;
    for (;;) {
        ssize_t n = read(e->uffd.fd, e->deferred, sizeof(e->deferred));

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN)
                fp_error(e->log, "region %s: reading its userfaultfd: %s", e->name,
                         strerror(errno));
            return; /* EAGAIN: drained */
        }
        e->ndeferred = (unsigned)((size_t)n / sizeof(e->deferred[0]));
        for (e->deferred_pos = 0; e->deferred_pos < e->ndeferred; e->deferred_pos++) {
            const struct uffd_msg *msg = &e->deferred[e->deferred_pos];

            if (msg->event == UFFD_EVENT_PAGEFAULT && !handle_fault(e, msg))
                return; /* kept: the rest waits for a slot */
        }
        e->ndeferred = e->deferred_pos = 0;
        if ((size_t)n < sizeof(e->deferred))
            return;
    }
}
