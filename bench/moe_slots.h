/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench moe`: expert-sized buffers. moe_alloc() gives anonymous
 * memory (4 KiB pages: MADV_HUGEPAGE made the first touch slower, not faster,
 * on these guests, compaction included). A moe_slots_t is the pool of `slots` such buffers that the
 * O_DIRECT and memcached stores read experts into: allocated and written once
 * before timing, so a load takes no page fault; loading takes a free slot,
 * unloading gives it back.
 *
 * Thread safety: none; one thread uses a pool.
 */
#ifndef FP_BENCH_MOE_SLOTS_H
#define FP_BENCH_MOE_SLOTS_H

#include <stdint.h>

#include <farpool/status.h>

/* @len bytes of anonymous memory; NULL (said on stderr, naming @what) on failure. */
void *moe_alloc(uint64_t len, const char *what);

typedef struct moe_slots {
    uint8_t *base; /* nslots x size bytes */
    unsigned nslots, experts;
    uint64_t size;
    int *slot_of; /* per expert: its slot, -1 if none */
    int *owner;   /* per slot: its expert, -1 if free */
} moe_slots_t;

/* Allocate and write the pool. Free with moe_slots_cleanup(). */
fp_status_t moe_slots_init(moe_slots_t *sl, unsigned experts, unsigned slots, uint64_t size);
void moe_slots_cleanup(moe_slots_t *sl);

/* Every slot free. */
void moe_slots_reset(moe_slots_t *sl);

/* A free slot for expert @e; NULL (said) if none is free. */
uint8_t *moe_slots_take(moe_slots_t *sl, unsigned e);

/* Expert @e's slot is free again. */
void moe_slots_give(moe_slots_t *sl, unsigned e);

/* Expert @e's bytes, NULL if it has no slot. */
const void *moe_slots_get(moe_slots_t *sl, unsigned e);

#endif /* FP_BENCH_MOE_SLOTS_H */
