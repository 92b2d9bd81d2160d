/* SPDX-License-Identifier: MIT */
/*
 * Fetching ahead of use: the application's hints (farpool_prefetch) and the
 * automatic read-ahead (see engine_int.h for who owns what).
 *
 * DESIGN
 * Hints. farpool_prefetch() runs in the caller's thread: it moves the absent
 * blocks of its range to HINTED, so that from then on a fault on one of them
 * issues its fetch at once instead of waiting its turn, and queues the range
 * for the engine, which issues the hinted blocks as slots and room allow
 * (never pushing out blocks in use) and maps the blocks the read-ahead
 * brought already. Hinted blocks are mapped whole as they land: using them
 * costs no fault at all, which also means their use is never seen; they
 * count as hinted, neither used nor wasted.
 *
 * Read-ahead. Each first touch of a block (a miss, a late touch of a block
 * in flight, a batch's marker) feeds the trend detector (prefetch.c); along
 * a trend the engine fetches a batch of blocks ahead, up to the window
 * beyond the last block read ahead. The batch's first block is its marker:
 * it lands mapped all but its first page (or parked, where the backend maps
 * only whole blocks), so its first touch is one minor fault, which says the
 * stream reached the batch and starts the next; the other blocks land mapped
 * whole, costing no fault. One fault per batch, not per block, as Linux's
 * PG_readahead marker. Read-ahead blocks enter the cache cold and unused;
 * when the stream reaches a batch's marker, the batch counts as used (its
 * blocks ahead of the marker included, as Linux counts a window it entered);
 * one dropped before that counts as wasted and halves the window.
 *
 * Hints and read-ahead. A block the application hinted is the
 * application's to schedule: its faults (the hint came late, or the block
 * was pushed out before its use) start no read-ahead, and it keeps that mark
 * when it leaves the cache. Along a fault stream the read-ahead would run on
 * past the hinted range into blocks nobody asked for, taking the room and
 * slots the next hints need (an MoE program that hints each expert it will
 * use fetched 2.6x the bytes it needed that way, at 2 MiB granule). And a
 * hint over a block cached already sets its access bit, as a use would:
 * hints take room only from blocks CLOCK judges cold, and such a block may
 * be cold, yet it is about to be used.
 *
 * Fences (engine.c): a fenced block is not hinted, and a stream that
 * reaches one stops reading ahead there.
 */
#include <inttypes.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"
#include "engine_int.h"

fp_status_t fp_engine_prefetch(fp_engine_t *e, uint64_t off, uint64_t len)
{
    uint64_t first = off / e->granule, end = (off + len + e->granule - 1) / e->granule;
    uint64_t one = 1;

    if (first == end)
        return FP_OK;
    for (uint64_t b = first; b < end; b++)
        if (!fp_engine_fenced(e, b)) /* (one fenced meanwhile is given up by the engine) */
            (void)fp_block_hint(e->blocks, b); /* fails if cached or in flight already */
    pthread_mutex_lock(&e->lock);
    while (e->nhints == FP_ENGINE_HINTS)
        pthread_cond_wait(&e->cond, &e->lock);
    e->hints[(e->hint_head + e->nhints) % FP_ENGINE_HINTS] = (fp_engine_hint_t){first, end};
    e->nhints++;
    pthread_mutex_unlock(&e->lock);
    /* An eventfd write fails only when it would overflow: readable then anyway. */
    (void)!write(e->wake_fd, &one, sizeof(one));
    return FP_OK;
}

bool fp_engine_hints_pending(fp_engine_t *e)
{
    bool pending;

    pthread_mutex_lock(&e->lock);
    pending = e->nhints > 0;
    pthread_mutex_unlock(&e->lock);
    return pending || e->cur_hint.first != e->cur_hint.end;
}

void fp_engine_hints_cancel(fp_engine_t *e, uint64_t first, uint64_t end, bool all)
{
    if (all) {
        pthread_mutex_lock(&e->lock);
        e->nhints = 0;
        pthread_cond_broadcast(&e->cond); /* room in the queue */
        pthread_mutex_unlock(&e->lock);
        e->cur_hint.first = e->cur_hint.end = 0;
    }
    for (uint64_t b = first; b < end; b++) {
        if (fp_block_unhint(e->blocks, b))
            fp_engine_wake_block(e, b);
    }
}

/*
 * Block @b is in a hinted range but was cached or in flight already. The
 * application says it will use it. Read ahead and not used yet: map it whole
 * now (or as it lands), as a hinted block is, so that its first touch costs
 * no fault; counted as used: the guess was right. Cached and used before:
 * its access bit is set, as a use would, so that the hints that follow (which
 * take only blocks CLOCK judges cold) do not push it out before its use.
 */
static void hint_promote(fp_engine_t *e, uint64_t b)
{
    uint64_t off = fp_engine_block_off(e, b), len = fp_engine_block_map_len(e, b);
    fp_block_state_t state = fp_block_state(e->blocks, b);

    if (e->pf[b] & FP_PF_INFLIGHT) {
        e->pf[b] |= FP_PF_WANTED | FP_PF_HINT;
        return;
    }
    if ((state == FP_BLOCK_RESIDENT || state == FP_BLOCK_DIRTY) && !(e->pf[b] & FP_PF_UNUSED)) {
        e->pf[b] |= FP_PF_HINT;
        fp_block_touch(e->blocks, b);
        return;
    }
    if (!(e->pf[b] & FP_PF_UNUSED) || state != FP_BLOCK_RESIDENT)
        return;
    /* A marker is parked or mapped but its first page; the others are mapped. */
    if (e->pf[b] & FP_PF_MARKER) {
        if (e->pf[b] & FP_PF_SENTINEL)
            len = FP_ENGINE_PAGE;
        if (fp_engine_map_range(e, off, len) != FP_OK)
            return; /* its first touch will map it, or fetch it again */
    }
    e->pf[b] = (uint8_t)((e->pf[b] & ~(FP_PF_UNUSED | FP_PF_SENTINEL | FP_PF_MARKER)) | FP_PF_HINT);
    fp_block_touch(e->blocks, b);
    fp_engine_count(e, &e->st->pf_used, 1);
}

void fp_engine_hints_step(fp_engine_t *e)
{
    for (;;) {
        if (e->cur_hint.first == e->cur_hint.end) {
            pthread_mutex_lock(&e->lock);
            if (e->nhints > 0) {
                e->cur_hint = e->hints[e->hint_head];
                e->hint_head = (e->hint_head + 1) % FP_ENGINE_HINTS;
                e->nhints--;
                pthread_cond_broadcast(&e->cond); /* room in the queue */
            }
            pthread_mutex_unlock(&e->lock);
            if (e->cur_hint.first == e->cur_hint.end)
                return;
        }
        while (e->cur_hint.first < e->cur_hint.end) {
            uint64_t b = e->cur_hint.first;

            /* Still hinted (a fault may have pulled it forward, a release given
             * it up): issue it. Read ahead already: map it. */
            if (fp_block_state(e->blocks, b) == FP_BLOCK_HINTED) {
                if (fp_engine_fetch(e, b, 0, FP_IO_PREFETCH | FP_IO_HINTED) == FP_FETCH_SKIPPED)
                    return; /* no slot or no room now: on when fetches complete */
            } else {
                hint_promote(e, b);
            }
            e->cur_hint.first++;
        }
    }
}

/*
 * The read-ahead stopped short of its window at block @b (no room, no slot):
 * make the last block read ahead a marker, so that the stream's arrival
 * there is seen and reading ahead resumes. In flight, it becomes one as it
 * lands; cached and mapped, it is unmapped keeping its bytes (its touch is
 * then a fault).
 */
static void rearm(fp_engine_t *e, uint64_t b)
{
    uint64_t m = e->ra_end;
    int64_t ahead = (int64_t)(m - b);

    if (e->ra_trend == 0 || ahead / e->ra_trend <= 0 || (e->pf[m] & FP_PF_MARKER))
        return;
    if (e->pf[m] & FP_PF_INFLIGHT) {
        e->pf[m] |= FP_PF_MARKER;
        return;
    }
    if (fp_block_state(e->blocks, m) == FP_BLOCK_RESIDENT && e->ops->unmap(e->cache, m))
        e->pf[m] = (uint8_t)((e->pf[m] & ~FP_PF_SENTINEL) | FP_PF_MARKER);
}

void fp_engine_note_access(fp_engine_t *e, uint64_t b)
{
    uint64_t plan[2 * FP_ENGINE_WINDOW_MAX];
    unsigned extra = 0, n;
    bool first = true;
    int64_t trend;

    if (!e->readahead || (e->pf[b] & FP_PF_HINT))
        return; /* the application says what it needs here: nothing to guess */
    trend = fp_prefetch_record(&e->trend, b);
    if (trend == 0)
        return;
    /* Reach past what this stream has read ahead already. */
    if (trend == e->ra_trend) {
        int64_t ahead = (int64_t)(e->ra_end - b);

        if (ahead % trend == 0 && ahead / trend > 0 && ahead / trend <= FP_ENGINE_WINDOW_MAX)
            extra = (unsigned)(ahead / trend);
    }
    n = fp_prefetch_plan(&e->trend, b, trend, e->nblocks, extra, plan, 2 * FP_ENGINE_WINDOW_MAX);
    for (unsigned i = 0; i < n; i++) {
        fp_engine_fetch_t r;

        if (fp_block_state(e->blocks, plan[i]) != FP_BLOCK_ABSENT)
            continue;
        r = fp_engine_fetch(e, plan[i], 0, FP_IO_PREFETCH | (first ? FP_IO_MARKER : 0));
        if (r == FP_FETCH_FENCED)
            return; /* the stream reached a fence (the end of what the program mapped) */
        if (r != FP_FETCH_STARTED) {
            /* No room or slot for the rest now: the stream must still be seen
             * again before it runs out of what was read ahead. */
            if (extra > 0 || !first)
                rearm(e, b);
            return;
        }
        first = false;
        e->ra_end = plan[i];
        e->ra_trend = trend;
    }
}

void fp_engine_marker_credit(fp_engine_t *e, uint64_t b, bool late)
{
    int64_t t = e->ra_trend;

    if ((e->pf[b] & FP_PF_UNUSED) && !late)
        fp_engine_count(e, &e->st->pf_used, 1);
    e->pf[b] &= (uint8_t) ~(FP_PF_UNUSED | FP_PF_MARKER);
    fp_prefetch_used(&e->trend);
    /* The stream entered the batch: its blocks ahead of the marker count as
     * used, and as accesses of the stream, whose touches are not seen one by
     * one (the trend is then taken from the stream's blocks, not from the
     * markers' strides). */
    (void)fp_prefetch_record(&e->trend, b);
    for (int64_t k = 1; t != 0 && k <= FP_ENGINE_WINDOW_MAX; k++) {
        int64_t nb = (int64_t)b + t * k;
        uint8_t f;

        if (nb < 0 || (uint64_t)nb >= e->nblocks)
            break;
        f = e->pf[nb];
        if (f & FP_PF_MARKER)
            break; /* the next batch */
        if (f & FP_PF_INFLIGHT) {
            e->pf[nb] |= FP_PF_WANTED;
        } else if (f & FP_PF_UNUSED) {
            e->pf[nb] &= (uint8_t)~FP_PF_UNUSED;
            fp_block_touch(e->blocks, (uint64_t)nb);
            fp_engine_count(e, &e->st->pf_used, 1);
        } else {
            break;
        }
        (void)fp_prefetch_record(&e->trend, (uint64_t)nb);
    }
}

void fp_engine_prefetch_landed(fp_engine_t *e, fp_engine_io_t *io, fp_status_t status)
{
    uint64_t b = io->block, off = fp_engine_block_off(e, b), len = fp_engine_block_map_len(e, b);
    uint8_t f = e->pf[b];
    bool late = (f & FP_PF_LATE) != 0, wanted = (f & FP_PF_WANTED) != 0;
    bool hinted = (io->flags & FP_IO_HINTED) != 0;

    (void)status;
    fp_engine_count(e, &e->st->fetched, 1);
    fp_engine_count(e, &e->st->bytes_in, fp_engine_block_len(e, b));
    fp_stats_latency_add(e->st, fp_time_ns() - io->start_ns);
    f &= (uint8_t) ~(FP_PF_INFLIGHT | FP_PF_LATE | FP_PF_WANTED);
    if (hinted)
        fp_engine_count(e, &e->st->pf_hinted, 1);
    else if (wanted && !late)
        fp_engine_count(e, &e->st->pf_used, 1);
    if (hinted || late || wanted) {
        /* Touched while in flight (its use is known), or asked for by the
         * application: map it whole, so that using it costs no further fault.
         * A hinted block's use is not seen, so it enters with its access bit
         * set: CLOCK unmaps it once before it can go. */
        e->pf[b] = (uint8_t)(f & ~FP_PF_MARKER);
        fp_block_fill_done(e->blocks, b, true);
        fp_engine_map_range(e, off, len);
    } else if (f & FP_PF_MARKER) {
        /* Cold; all mapped but its first page, whose touch is the batch's
         * fault. A backend that maps only whole blocks leaves it parked: its
         * first touch maps it, and says the same. */
        e->pf[b] = (uint8_t)(f | FP_PF_UNUSED);
        fp_block_fill_done(e->blocks, b, true);
        fp_block_cool(e->blocks, b);
        if (len > FP_ENGINE_PAGE && e->ops->can_map_part(e->cache) &&
            fp_engine_map_range(e, off + FP_ENGINE_PAGE, len - FP_ENGINE_PAGE) == FP_OK)
            e->pf[b] |= FP_PF_SENTINEL;
    } else {
        /* The rest of a batch: cold, unused until its marker is reached, and
         * mapped whole while the application is busy elsewhere. */
        e->pf[b] = (uint8_t)(f | FP_PF_UNUSED);
        fp_block_fill_done(e->blocks, b, true);
        fp_block_cool(e->blocks, b);
        fp_engine_map_range(e, off, len);
    }
    fp_engine_wake_block(e, b);
}

void fp_engine_prefetch_dropped(fp_engine_t *e, uint64_t b)
{
    if (e->pf[b] & FP_PF_UNUSED) {
        fp_engine_count(e, &e->st->pf_wasted, 1);
        fp_prefetch_wasted(&e->trend);
    }
    e->pf[b] &= FP_PF_HINT; /* hinted once: a miss on it later starts no read-ahead */
}
