/* SPDX-License-Identifier: MIT */
/*
 * The block table of a mapped region: one descriptor per granule-sized block,
 * with the block's state and the access bit its eviction policy reads.
 *
 * DESIGN
 * The fault engine (userfaultfd reader, fillers, evictor) coordinates through
 * this table only. A block moves through these states:
 *
 *           hint          claim
 *   ABSENT -------> HINTED -------> FETCHING --fill ok--> RESIDENT --write--> DIRTY
 *      ^  <-cancel-    |               |                     |  ^               |
 *      |               +----claim------+  fill failed        |  +--written back-+
 *      |                               |                     |   (WRITEBACK)
 *      +-------------------------------+<-----evicted--------+
 *
 * HINTED: farpool_prefetch() asked for the block from an application thread
 * and the engine has not issued its fetch yet. Nobody is fetching it, so
 * whoever needs it first claims it (HINTED -> FETCHING) like an ABSENT one:
 * no thread ever waits on a hint, and the engine thread never waits at all.
 *
 * A claim is a compare-and-swap on the state, so of many threads faulting on
 * one block exactly one fetches it and the others wait for its result: one
 * fetch per block, however many faults. Faults on different blocks proceed in
 * parallel. Waiting uses a futex on the state word (no lock on the fault path,
 * no allocation: descriptors are allocated with the table).
 *
 * Eviction is CLOCK (second chance): a hand sweeps the table, clears the
 * access bit of resident blocks it passes, and takes the first resident block
 * whose bit was already clear. Unlike fill-order FIFO (LLNL umap), a block that
 * keeps being used keeps being spared, provided the engine reports accesses
 * with fp_block_touch() (minor faults on a memfd-backed cache give it that
 * signal).
 *
 * Thread safety: every function may be called from any thread at once; the
 * state and access bit of each block are atomics. fp_block_table_create and
 * _destroy are not concurrent with the rest.
 */
#ifndef FP_CLIENT_BLOCK_H
#define FP_CLIENT_BLOCK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <farpool/status.h>

typedef enum fp_block_state {
    FP_BLOCK_ABSENT = 0, /* not in the local cache */
    FP_BLOCK_HINTED,     /* asked for by a hint, not fetched yet: claim it as ABSENT */
    FP_BLOCK_FETCHING,   /* one thread is fetching it; others wait */
    FP_BLOCK_RESIDENT,   /* in the cache, same bytes as the node */
    FP_BLOCK_DIRTY,      /* in the cache, written since fetched */
    FP_BLOCK_WRITEBACK,  /* dirty bytes being written to the node */
    FP_BLOCK_EVICTING,   /* being dropped from the cache */
} fp_block_state_t;

typedef struct fp_block {
    _Atomic uint32_t state;   /* an fp_block_state_t; futex word */
    _Atomic uint32_t waiters; /* threads sleeping on state */
    _Atomic bool accessed;    /* CLOCK reference bit */
} fp_block_t;

typedef struct fp_block_table {
    uint64_t nblocks;
    fp_block_t *blocks;
    _Atomic uint64_t hand; /* CLOCK hand, an index modulo nblocks */
} fp_block_table_t;

/* What fp_block_claim() tells the faulting thread to do. */
typedef enum fp_block_claim {
    FP_BLOCK_CLAIM_FETCH,   /* you own the fetch: fill, then fp_block_fill_done() */
    FP_BLOCK_CLAIM_PRESENT, /* already resident: nothing to fetch */
} fp_block_claim_t;

/* Allocate a table of @nblocks ABSENT blocks. */
fp_status_t fp_block_table_create(uint64_t nblocks, fp_block_table_t **table_p);

/* Free the table. NULL is a no-op. */
void fp_block_table_destroy(fp_block_table_t *table);

static inline fp_block_state_t fp_block_state(fp_block_table_t *table, uint64_t index)
{
    return (fp_block_state_t)atomic_load_explicit(&table->blocks[index].state,
                                                  memory_order_acquire);
}

/*
 * A thread needs block @index resident. Returns FETCH to exactly one of the
 * threads that ask while the block is ABSENT or HINTED; the others sleep
 * until that fetch ends and then get PRESENT, or FETCH again (a new attempt)
 * if it failed. Blocks in WRITEBACK or EVICTING are waited out the same way.
 * It sleeps: never call it from a thread others depend on for progress (the
 * fault engine's thread uses fp_block_try_claim()).
 */
fp_block_claim_t fp_block_claim(fp_block_table_t *table, uint64_t index);

/*
 * Claim an ABSENT or HINTED block for a fetch without waiting; false in any
 * other state. *@was_p (may be NULL) gets the state it was claimed from.
 */
static inline bool fp_block_try_claim(fp_block_table_t *table, uint64_t index,
                                      fp_block_state_t *was_p)
{
    _Atomic uint32_t *state = &table->blocks[index].state;
    uint32_t s = atomic_load(state);

    while (s == FP_BLOCK_ABSENT || s == FP_BLOCK_HINTED) {
        uint32_t from = s;

        if (atomic_compare_exchange_weak(state, &s, FP_BLOCK_FETCHING)) {
            if (was_p != NULL)
                *was_p = (fp_block_state_t)from;
            return true;
        }
        /* s holds the state it has now: look again. */
    }
    return false;
}

/* ABSENT -> HINTED, from any thread: false if the block is in any other state. */
static inline bool fp_block_hint(fp_block_table_t *table, uint64_t index)
{
    uint32_t expected = FP_BLOCK_ABSENT;

    return atomic_compare_exchange_strong(&table->blocks[index].state, &expected, FP_BLOCK_HINTED);
}

/* HINTED -> ABSENT (a hint given up): false if the block was not HINTED. */
static inline bool fp_block_unhint(fp_block_table_t *table, uint64_t index)
{
    uint32_t expected = FP_BLOCK_HINTED;

    return atomic_compare_exchange_strong(&table->blocks[index].state, &expected, FP_BLOCK_ABSENT);
}

/* End the fetch claimed on @index: RESIDENT on success, ABSENT on failure; wakes waiters. */
void fp_block_fill_done(fp_block_table_t *table, uint64_t index, bool ok);

/* Record an access to a resident block (sets the CLOCK bit). */
static inline void fp_block_touch(fp_block_table_t *table, uint64_t index)
{
    atomic_store_explicit(&table->blocks[index].accessed, true, memory_order_relaxed);
}

/* RESIDENT -> DIRTY. False if the block was not RESIDENT. */
bool fp_block_mark_dirty(fp_block_table_t *table, uint64_t index);

/*
 * Pick an eviction victim by CLOCK and move it to EVICTING (from RESIDENT) or
 * WRITEBACK (from DIRTY: write it back first). Scans at most two turns of the
 * table; false when no block can be taken (all in transit or absent).
 */
typedef void (*fp_block_spare_func_t)(uint64_t index, void *arg);
typedef bool (*fp_block_keep_func_t)(uint64_t index, void *arg);

/*
 * @spare (may be NULL) is called for each resident block the hand spares
 * because its access bit was set: the fault engine uses it to unmap the block
 * so that its next use is seen again. Blocks for which @keep (may be NULL)
 * returns true are passed over untouched.
 */
bool fp_block_evict_pick(fp_block_table_t *table, fp_block_spare_func_t spare,
                         fp_block_keep_func_t keep, void *arg, uint64_t *index_p,
                         fp_block_state_t *was_p);

/* As fp_block_evict_pick(), moving the hand @steps blocks at most. */
bool fp_block_evict_pick_within(fp_block_table_t *table, fp_block_spare_func_t spare,
                                fp_block_keep_func_t keep, void *arg, uint64_t steps,
                                uint64_t *index_p, fp_block_state_t *was_p);

/* Blocks fp_block_evict_pick_cold() looks at, at most. */
#define FP_BLOCK_COLD_SCAN 4096

/*
 * As fp_block_evict_pick(), for a prefetch: take only a block that is cold
 * already (its access bit clear), without clearing any bit or calling any
 * spare function, looking at most at FP_BLOCK_COLD_SCAN blocks. A guess must
 * not push out what is in use. False if none was found.
 */
bool fp_block_evict_pick_cold(fp_block_table_t *table, fp_block_keep_func_t keep, void *arg,
                              uint64_t *index_p, fp_block_state_t *was_p);

/*
 * Take block @index out of the cache by request (a release): RESIDENT ->
 * EVICTING or DIRTY -> WRITEBACK, as fp_block_evict_pick() would. False if the
 * block is in neither state.
 */
bool fp_block_evict_begin(fp_block_table_t *table, uint64_t index, fp_block_state_t *was_p);

/* Clear the access bit: a block brought in ahead of use enters the cache cold. */
static inline void fp_block_cool(fp_block_table_t *table, uint64_t index)
{
    atomic_store_explicit(&table->blocks[index].accessed, false, memory_order_relaxed);
}

/* DIRTY -> WRITEBACK, to write a block back and keep it (a sync). False if not DIRTY. */
bool fp_block_writeback_begin(fp_block_table_t *table, uint64_t index);

/* How a write-back ended. */
typedef enum fp_block_wb {
    FP_BLOCK_WB_FAILED, /* not written: DIRTY again */
    FP_BLOCK_WB_KEEP,   /* written, and kept cached (a sync): RESIDENT */
    FP_BLOCK_WB_EVICT,  /* written, to be dropped (an eviction): EVICTING */
} fp_block_wb_t;

/* End a write-back of block @index as @outcome says. Wakes waiters. */
void fp_block_writeback_done(fp_block_table_t *table, uint64_t index, fp_block_wb_t outcome);

/* EVICTING -> ABSENT once the local copy is gone; wakes waiters. */
void fp_block_evict_done(fp_block_table_t *table, uint64_t index);

#endif /* FP_CLIENT_BLOCK_H */
