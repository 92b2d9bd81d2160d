/* SPDX-License-Identifier: MIT */
/* Trend detection and read-ahead window; see prefetch.h. */
#include "prefetch.h"

#include <string.h>

void fp_prefetch_init(fp_prefetch_t *p, unsigned max_window)
{
    memset(p, 0, sizeof(*p));
    p->max_window = max_window > 0 ? max_window : 1;
    p->window = p->max_window < 2 ? p->max_window : 2;
}

/* The delta held by more than half of the history, or 0. */
static int64_t majority(const fp_prefetch_t *p)
{
    int64_t candidate = 0;
    unsigned count = 0;

    if (p->ndeltas < FP_PREFETCH_HISTORY / 2)
        return 0; /* too little history to call it a trend */
    for (unsigned i = 0; i < p->ndeltas; i++) {
        if (count == 0)
            candidate = p->deltas[i];
        count += p->deltas[i] == candidate ? 1 : (unsigned)-1;
    }
    count = 0;
    for (unsigned i = 0; i < p->ndeltas; i++)
        count += p->deltas[i] == candidate;
    return count * 2 > p->ndeltas ? candidate : 0;
}

int64_t fp_prefetch_record(fp_prefetch_t *p, uint64_t block)
{
    uint64_t best = 0, best_dist = UINT64_MAX;

    for (unsigned i = 0; i < p->nblocks; i++) {
        uint64_t h = p->blocks[i];
        uint64_t dist = h < block ? block - h : h - block;
        if (dist == 0)
            return majority(p); /* a block seen again adds no step */
        if (dist < best_dist || (dist == best_dist && h < block)) {
            best = h;
            best_dist = dist;
        }
    }
    if (best_dist != UINT64_MAX) {
        p->deltas[p->pos] = (int64_t)(block - best);
        p->pos = (p->pos + 1) % FP_PREFETCH_HISTORY;
        if (p->ndeltas < FP_PREFETCH_HISTORY)
            p->ndeltas++;
    }
    p->blocks[p->bpos] = block;
    p->bpos = (p->bpos + 1) % FP_PREFETCH_HISTORY;
    if (p->nblocks < FP_PREFETCH_HISTORY)
        p->nblocks++;
    return majority(p);
}

unsigned fp_prefetch_plan(fp_prefetch_t *p, uint64_t block, int64_t trend, uint64_t nblocks,
                          unsigned extra, uint64_t *out, unsigned max)
{
    unsigned n = 0;

    for (unsigned k = 1; trend != 0 && k <= p->window + extra && n < max; k++) {
        int64_t next = (int64_t)block + trend * (int64_t)k;
        if (next < 0 || (uint64_t)next >= nblocks)
            break;
        out[n++] = (uint64_t)next;
    }
    return n;
}

void fp_prefetch_used(fp_prefetch_t *p)
{
    if (p->window < p->max_window)
        p->window = p->window * 2 > p->max_window ? p->max_window : p->window * 2;
}

void fp_prefetch_wasted(fp_prefetch_t *p)
{
    if (p->window > 1)
        p->window /= 2;
}
