/* SPDX-License-Identifier: MIT */
/*
 * Room in the cache: which block leaves when a fetch needs memory, and how a
 * region gets memory another region of its context keeps spare (see
 * engine_int.h for who owns what).
 *
 * DESIGN
 * The memory the cache holds counts against the context's budget (budget.h).
 * Before a fetch would exceed it, and when no spare page is left to recycle,
 * a victim is chosen by CLOCK (block.c). The access signal comes from faults
 * on cached blocks: when the hand spares a block whose access bit was set,
 * the backend unmaps it keeping its bytes, so its next use is a fault that
 * sets the bit again and is resolved without any network traffic.
 *
 * A clean victim is dropped at once. A dirty one is written back first, as
 * an asynchronous transfer (engine_writeback.c), and dropped when the node
 * has it: the fetch that needed the room waits in the room queue meanwhile,
 * and so does nothing else. A guess (a prefetch nobody waits for) may only
 * replace a block CLOCK judges cold, and never one fetched ahead and not
 * used yet; it is skipped rather than made to wait. A read-ahead that finds
 * nothing cold moves the hand on as a fault would (an idle scan would
 * otherwise have nothing cold to replace once the cache is full); a hint
 * does not, so that fetching the next expert never costs the one in use a
 * fault.
 *
 * With nothing of its own to drop and nothing on its way, a region asks the
 * others for their spare pages and waits, for FP_ENGINE_ASK_MS at most; with
 * none to ask, it goes over budget rather than stall: a cache smaller than
 * the blocks its threads need at once must still make progress.
 */
#include "common/time.h"
#include "engine_int.h"

void fp_engine_mem_add(fp_engine_t *e, int64_t delta)
{
    fp_budget_charge(e->budget, delta);
    e->held += (uint64_t)delta;
}

void fp_engine_stat_cache_add(fp_engine_t *e, int64_t delta)
{
    uint64_t now = atomic_fetch_add(&e->st->cache, (uint64_t)delta) + (uint64_t)delta;

    if (now > atomic_load_explicit(&e->st->cache_peak, memory_order_relaxed))
        atomic_store_explicit(&e->st->cache_peak, now, memory_order_relaxed);
}

/* A guess passes over blocks fetched ahead and not used yet. */
static bool keep_unused(uint64_t b, void *arg)
{
    fp_engine_t *e = arg;

    return (e->pf[b] & FP_PF_UNUSED) != 0;
}

/* CLOCK spared block @b: unmap it so that its next use is a fault. */
static void spare_block(uint64_t b, void *arg)
{
    fp_engine_t *e = arg;

    if (e->ops->unmap(e->cache, b))
        e->pf[b] &= (uint8_t)~FP_PF_SENTINEL;
}

void fp_engine_drop(fp_engine_t *e, uint64_t b)
{
    fp_engine_prefetch_dropped(e, b);
    fp_engine_mem_add(e, -(int64_t)e->ops->drop(e->cache, b));
    fp_engine_stat_cache_add(e, -(int64_t)e->granule);
    fp_engine_count(e, &e->st->evictions, 1);
    fp_block_evict_done(e->blocks, b);
    /* Threads that faulted on it meanwhile retry and fetch it again. */
    fp_engine_wake_block(e, b);
}

bool fp_engine_evict_clean(fp_engine_t *e)
{
    fp_block_state_t was;
    uint64_t b;

    if (!fp_block_evict_pick(e->blocks, spare_block, NULL, e, &b, &was))
        return false;
    if (was == FP_BLOCK_DIRTY) {
        fp_block_writeback_done(e->blocks, b, FP_BLOCK_WB_FAILED); /* DIRTY again, untouched */
        return false;
    }
    fp_engine_drop(e, b);
    return true;
}

/* Room came (or will not): a want of other regions' pages is over. */
static void ask_done(fp_engine_t *e, bool served)
{
    if (e->asked == 0)
        return;
    /* Givers lower the want by what they give; a want given up is withdrawn. */
    if (!served)
        fp_budget_unask(e->budget, e->asked);
    e->asked = 0;
}

fp_engine_room_t fp_engine_make_room(fp_engine_t *e, unsigned flags)
{
    bool guess = (flags & FP_ROOM_GUESS) != 0, age = (flags & FP_ROOM_AGE) != 0;

    for (;;) {
        uint64_t used, b;
        fp_block_state_t was;
        bool picked;

        if (e->ops->has_spare(e->cache) || fp_budget_fits(e->budget, e->granule) ||
            !fp_engine_any_node(e)) {
            /* (Without a node the fetch fails at once: no room needed.) */
            ask_done(e, true);
            return FP_ROOM_OK;
        }
        /* Dirty victims on their way out will make room enough: wait for them. */
        used = atomic_load(&e->budget->used);
        if (e->evicting > 0 &&
            used - (used < e->evicting ? used : e->evicting) + e->granule <= e->budget->limit)
            return guess ? FP_ROOM_NONE : FP_ROOM_WAIT;
        if (!guess)
            picked = fp_block_evict_pick(e->blocks, spare_block, NULL, e, &b, &was);
        else if (!(picked = fp_block_evict_pick_cold(e->blocks, keep_unused, e, &b, &was)) && age)
            /* Nothing cold: move the CLOCK hand on, as a fault would, giving
             * each used block its second chance (unmapped, so that its next
             * use is seen), and take the first not used since it last passed. */
            picked = fp_block_evict_pick_within(e->blocks, spare_block, keep_unused, e,
                                                FP_BLOCK_COLD_SCAN, &b, &was);
        if (picked) {
            if (was == FP_BLOCK_RESIDENT) {
                fp_engine_drop(e, b);
                continue;
            }
            /* Dirty: written back, then dropped. Without a slot now, later. */
            if (fp_engine_writeback(e, b, 0))
                continue;
            return guess ? FP_ROOM_NONE : FP_ROOM_WAIT;
        }
        if (guess)
            return FP_ROOM_NONE;
        /* Nothing to drop now: a fetch about to land, or a write-back, will give some. */
        if (e->nwire > 0)
            return FP_ROOM_WAIT;
        if (e->asked == 0) {
            if (fp_budget_ask(e->budget, &e->member, e->granule)) {
                e->asked = e->granule;
                e->ask_until_ns = fp_time_ns() + (uint64_t)FP_ENGINE_ASK_MS * FP_NS_PER_MS;
                return FP_ROOM_WAIT;
            }
        } else if (fp_time_ns() < e->ask_until_ns) {
            return FP_ROOM_WAIT;
        }
        /* Nothing will come: over budget rather than stall. */
        ask_done(e, false);
        return FP_ROOM_OK;
    }
}

void fp_engine_budget_step(fp_engine_t *e)
{
    uint64_t wanted = fp_budget_wanted(e->budget);

    /* Some other region waits for memory (not this one: its own want is not
     * for its own spares, which it would have used): give it ours. */
    if (wanted > 0 && e->asked == 0 && e->ops->has_spare(e->cache)) {
        uint64_t freed = e->ops->trim(e->cache, wanted);

        fp_engine_mem_add(e, -(int64_t)freed);
        fp_budget_gave(e->budget, &e->member, freed);
    }
    atomic_store(&e->member.spare, e->ops->spare_bytes(e->cache));
}
