/* SPDX-License-Identifier: MIT */
/*
 * The cache budget a context's mapped regions share: how much memory their
 * caches hold together, and how a region that needs memory gets other
 * regions to give back pages they keep spare.
 *
 * DESIGN
 * Each region's engine joins the budget with its wake-up eventfd and says how
 * much spare memory it holds (recycled pages of the page-moving cache, which
 * count against the budget while unused). An engine that needs room and has
 * nothing of its own to evict asks (fp_budget_ask): if others hold spares,
 * the bytes wanted are recorded and every other engine is woken through its
 * eventfd; each one that wakes gives back what it can (fp_budget_gave), which
 * wakes the others again, the asker among them, to retry. Nothing polls: an
 * idle context costs no wake-ups.
 *
 * Thread safety: every function may be called from any thread. The member
 * list is guarded by lock; the counters are atomics.
 */
#ifndef FP_CLIENT_BUDGET_H
#define FP_CLIENT_BUDGET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct fp_budget_member {
    int wake_fd;                   /* the engine's eventfd; written to wake it */
    _Atomic uint64_t spare;        /* bytes of spare memory it could give back now */
    struct fp_budget_member *next; /* guarded by the budget's lock */
} fp_budget_member_t;

typedef struct fp_budget {
    uint64_t limit;          /* bytes, set at init */
    _Atomic uint64_t used;   /* bytes held by all members' caches */
    _Atomic uint64_t wanted; /* bytes some member waits for */
    pthread_mutex_t lock;
    fp_budget_member_t *members; /* guarded by lock */
} fp_budget_t;

void fp_budget_init(fp_budget_t *b, uint64_t limit);
void fp_budget_cleanup(fp_budget_t *b);

/* Join with @wake_fd (m is owned by the caller and stays valid until leave). */
void fp_budget_join(fp_budget_t *b, fp_budget_member_t *m, int wake_fd);
void fp_budget_leave(fp_budget_t *b, fp_budget_member_t *m);

/* Memory taken (> 0) or given back (< 0) by a member's cache. */
static inline void fp_budget_charge(fp_budget_t *b, int64_t delta)
{
    atomic_fetch_add(&b->used, (uint64_t)delta);
}

/* True if @bytes more fit in the budget. */
static inline bool fp_budget_fits(const fp_budget_t *b, uint64_t bytes)
{
    return atomic_load(&b->used) + bytes <= b->limit;
}

/*
 * @self needs @bytes and has nothing to evict: if other members hold spare
 * memory, record the want, wake them and return true (wait to be woken, then
 * retry; call fp_budget_unask() if you give up unserved: givers lower the
 * want by what they give). False if nobody has anything to give: waiting
 * would be in vain.
 */
bool fp_budget_ask(fp_budget_t *b, const fp_budget_member_t *self, uint64_t bytes);

/* Withdraw @bytes of a want (given up). */
void fp_budget_unask(fp_budget_t *b, uint64_t bytes);

/* Bytes some member waits for (0: nobody). */
static inline uint64_t fp_budget_wanted(const fp_budget_t *b)
{
    return atomic_load(&b->wanted);
}

/* @self gave @bytes of spare memory back: lower the want and wake the others to retry. */
void fp_budget_gave(fp_budget_t *b, const fp_budget_member_t *self, uint64_t bytes);

#endif /* FP_CLIENT_BUDGET_H */
