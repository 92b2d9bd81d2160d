/* SPDX-License-Identifier: MIT */
/* The block table: per-block state machine and CLOCK eviction; see block.h. */
#include "block.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Thin futex wrappers on a block's state word. */
static void futex_wait(_Atomic uint32_t *word, uint32_t expected)
{
    /* EAGAIN (the word changed) and EINTR both mean: look again. */
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *word)
{
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

fp_status_t fp_block_table_create(uint64_t nblocks, fp_block_table_t **table_p)
{
    fp_block_table_t *table;

    if (nblocks == 0)
        return FP_ERR_INVALID_PARAM;
    table = calloc(1, sizeof(*table));
    if (table == NULL)
        return FP_ERR_NO_MEMORY;
    table->blocks = calloc(nblocks, sizeof(*table->blocks));
    if (table->blocks == NULL) {
        free(table);
        return FP_ERR_NO_MEMORY;
    }
    table->nblocks = nblocks;
    for (uint64_t i = 0; i < nblocks; i++) {
        atomic_init(&table->blocks[i].state, FP_BLOCK_ABSENT);
        atomic_init(&table->blocks[i].waiters, 0);
        atomic_init(&table->blocks[i].accessed, false);
    }
    atomic_init(&table->hand, 0);
    *table_p = table;
    return FP_OK;
}

void fp_block_table_destroy(fp_block_table_t *table)
{
    if (table == NULL)
        return;
    free(table->blocks);
    free(table);
}

/*
 * Sleep while block @b is in state @seen. The waiter announces itself before
 * it re-reads the state, and block_set() publishes the state before it reads
 * the waiter count; both pairs are sequentially consistent, so at least one
 * side sees the other and no wake-up is lost (and FUTEX_WAIT itself refuses to
 * sleep once the word has changed).
 */
static void block_wait(fp_block_t *b, uint32_t seen)
{
    atomic_fetch_add(&b->waiters, 1);
    if (atomic_load(&b->state) == seen)
        futex_wait(&b->state, seen);
    atomic_fetch_sub(&b->waiters, 1);
}

/* Set @b's state to @to and wake sleepers, if any. */
static void block_set(fp_block_t *b, uint32_t to)
{
    atomic_store(&b->state, to);
    if (atomic_load(&b->waiters) != 0)
        futex_wake_all(&b->state);
}

fp_block_claim_t fp_block_claim(fp_block_table_t *table, uint64_t index)
{
    fp_block_t *b = &table->blocks[index];

    for (;;) {
        uint32_t s = atomic_load_explicit(&b->state, memory_order_acquire);

        switch ((fp_block_state_t)s) {
        case FP_BLOCK_ABSENT:
        case FP_BLOCK_HINTED:
            if (atomic_compare_exchange_weak_explicit(&b->state, &s, FP_BLOCK_FETCHING,
                                                      memory_order_acq_rel, memory_order_acquire))
                return FP_BLOCK_CLAIM_FETCH;
            break;
        case FP_BLOCK_RESIDENT:
        case FP_BLOCK_DIRTY:
            atomic_store_explicit(&b->accessed, true, memory_order_relaxed);
            return FP_BLOCK_CLAIM_PRESENT;
        case FP_BLOCK_FETCHING:
        case FP_BLOCK_WRITEBACK:
        case FP_BLOCK_EVICTING:
            block_wait(b, s);
            break;
        }
    }
}

void fp_block_fill_done(fp_block_table_t *table, uint64_t index, bool ok)
{
    fp_block_t *b = &table->blocks[index];

    /* A freshly fetched block counts as used: the fault that fetched it is an access. */
    atomic_store_explicit(&b->accessed, ok, memory_order_relaxed);
    block_set(b, ok ? FP_BLOCK_RESIDENT : FP_BLOCK_ABSENT);
}

bool fp_block_mark_dirty(fp_block_table_t *table, uint64_t index)
{
    uint32_t expected = FP_BLOCK_RESIDENT;

    return atomic_compare_exchange_strong_explicit(&table->blocks[index].state, &expected,
                                                   FP_BLOCK_DIRTY, memory_order_acq_rel,
                                                   memory_order_acquire);
}

bool fp_block_evict_begin(fp_block_table_t *table, uint64_t index, fp_block_state_t *was_p)
{
    fp_block_t *b = &table->blocks[index];
    uint32_t s = atomic_load(&b->state);

    if (s != FP_BLOCK_RESIDENT && s != FP_BLOCK_DIRTY)
        return false;
    if (!atomic_compare_exchange_strong(
            &b->state, &s, s == FP_BLOCK_DIRTY ? FP_BLOCK_WRITEBACK : FP_BLOCK_EVICTING))
        return false;
    *was_p = (fp_block_state_t)s;
    return true;
}

bool fp_block_evict_pick(fp_block_table_t *table, fp_block_spare_func_t spare,
                         fp_block_keep_func_t keep, void *arg, uint64_t *index_p,
                         fp_block_state_t *was_p)
{
    return fp_block_evict_pick_within(table, spare, keep, arg, 2 * table->nblocks, index_p, was_p);
}

bool fp_block_evict_pick_within(fp_block_table_t *table, fp_block_spare_func_t spare,
                                fp_block_keep_func_t keep, void *arg, uint64_t steps,
                                uint64_t *index_p, fp_block_state_t *was_p)
{
    for (uint64_t step = 0; step < steps; step++) {
        uint64_t i =
            atomic_fetch_add_explicit(&table->hand, 1, memory_order_relaxed) % table->nblocks;
        fp_block_t *b = &table->blocks[i];
        uint32_t s = atomic_load_explicit(&b->state, memory_order_acquire);
        uint32_t to;

        if (s != FP_BLOCK_RESIDENT && s != FP_BLOCK_DIRTY)
            continue;
        if (keep != NULL && keep(i, arg))
            continue;
        /* Second chance: a block used since the hand last passed is spared once. */
        if (atomic_exchange_explicit(&b->accessed, false, memory_order_relaxed)) {
            if (spare != NULL)
                spare(i, arg);
            continue;
        }
        to = s == FP_BLOCK_DIRTY ? FP_BLOCK_WRITEBACK : FP_BLOCK_EVICTING;
        if (atomic_compare_exchange_strong_explicit(&b->state, &s, to, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            *index_p = i;
            *was_p = (fp_block_state_t)s;
            return true;
        }
    }
    return false;
}

bool fp_block_evict_pick_cold(fp_block_table_t *table, fp_block_keep_func_t keep, void *arg,
                              uint64_t *index_p, fp_block_state_t *was_p)
{
    uint64_t limit = table->nblocks < FP_BLOCK_COLD_SCAN ? table->nblocks : FP_BLOCK_COLD_SCAN;

    for (uint64_t step = 0; step < limit; step++) {
        uint64_t i =
            atomic_fetch_add_explicit(&table->hand, 1, memory_order_relaxed) % table->nblocks;
        fp_block_t *b = &table->blocks[i];
        uint32_t s = atomic_load_explicit(&b->state, memory_order_acquire);
        uint32_t to;

        if (s != FP_BLOCK_RESIDENT && s != FP_BLOCK_DIRTY)
            continue;
        if (keep != NULL && keep(i, arg))
            continue;
        /* Used since the hand last passed: not for a guess to push out, and
         * its bit is left for the next full turn to judge. */
        if (atomic_load_explicit(&b->accessed, memory_order_relaxed))
            continue;
        to = s == FP_BLOCK_DIRTY ? FP_BLOCK_WRITEBACK : FP_BLOCK_EVICTING;
        if (atomic_compare_exchange_strong_explicit(&b->state, &s, to, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            *index_p = i;
            *was_p = (fp_block_state_t)s;
            return true;
        }
    }
    return false;
}

bool fp_block_writeback_begin(fp_block_table_t *table, uint64_t index)
{
    uint32_t expected = FP_BLOCK_DIRTY;

    return atomic_compare_exchange_strong(&table->blocks[index].state, &expected,
                                          FP_BLOCK_WRITEBACK);
}

void fp_block_writeback_done(fp_block_table_t *table, uint64_t index, fp_block_wb_t outcome)
{
    uint32_t to = outcome == FP_BLOCK_WB_FAILED ? FP_BLOCK_DIRTY
                  : outcome == FP_BLOCK_WB_KEEP ? FP_BLOCK_RESIDENT
                                                : FP_BLOCK_EVICTING;

    block_set(&table->blocks[index], to);
}

void fp_block_evict_done(fp_block_table_t *table, uint64_t index)
{
    block_set(&table->blocks[index], FP_BLOCK_ABSENT);
}
