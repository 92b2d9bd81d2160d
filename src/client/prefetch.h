/* SPDX-License-Identifier: MIT */
/*
 * The automatic prefetcher's brain: detect a sequential or strided trend in a
 * region's stream of block accesses and decide what to read ahead.
 *
 * DESIGN
 * As in Leap (ATC'18), the trend is the majority delta over a short history
 * (Boyer-Moore majority vote): a random stream has no majority and prefetches
 * nothing. Each access's delta is taken from the nearest block among the
 * recent accesses (the lower one on a tie), not from the previous access, so
 * a sequential scan by several threads, whose faults arrive a little out of
 * order (0 1 2 4 3 5), still reads as +1 steps. The read-ahead
 * window grows (doubling) while prefetched blocks are used and shrinks
 * (halving) when one is evicted unused. The fault engine reads ahead in
 * batches, as Linux does: each batch's first block is a marker whose touch
 * (the one fault of the batch) says the stream reached it and starts the
 * next batch, a window beyond the last block read ahead. Accesses fed in are first touches of
 * blocks: demand misses, first uses of prefetched blocks and faults on blocks
 * still in flight, so the trend survives once prefetching hides the misses.
 *
 * Pure bookkeeping: no I/O and no locks; the fault engine's thread owns it.
 */
#ifndef FP_CLIENT_PREFETCH_H
#define FP_CLIENT_PREFETCH_H

#include <stdbool.h>
#include <stdint.h>

#define FP_PREFETCH_HISTORY 8

typedef struct fp_prefetch {
    uint64_t blocks[FP_PREFETCH_HISTORY]; /* the latest accesses, a ring */
    unsigned nblocks, bpos;
    int64_t deltas[FP_PREFETCH_HISTORY]; /* the latest deltas, a ring */
    unsigned ndeltas, pos;
    unsigned window, max_window;
} fp_prefetch_t;

/* Start with no history and a window of 2, growing to at most @max_window blocks. */
void fp_prefetch_init(fp_prefetch_t *p, unsigned max_window);

/* Record an access to @block. Returns the trend: the majority delta, or 0 if none. */
int64_t fp_prefetch_record(fp_prefetch_t *p, uint64_t block);

/*
 * After an access to @block with trend @trend, the blocks to read ahead: the
 * next `window` + @extra blocks along the trend within [0, @nblocks), at
 * most @max (@extra: the steps already read ahead of @block, so that the
 * window reaches past them). The caller skips those already cached or in
 * flight.
 */
unsigned fp_prefetch_plan(fp_prefetch_t *p, uint64_t block, int64_t trend, uint64_t nblocks,
                          unsigned extra, uint64_t *out, unsigned max);

/* A prefetched block was used: widen the window. */
void fp_prefetch_used(fp_prefetch_t *p);

/* A prefetched block was evicted unused: narrow the window. */
void fp_prefetch_wasted(fp_prefetch_t *p);

#endif /* FP_CLIENT_PREFETCH_H */
