/* SPDX-License-Identifier: MIT */
/* The cache budget shared by a context's regions; see budget.h. */
#include "budget.h"

#include <stddef.h>
#include <unistd.h>

void fp_budget_init(fp_budget_t *b, uint64_t limit)
{
    b->limit = limit;
    atomic_init(&b->used, 0);
    atomic_init(&b->wanted, 0);
    pthread_mutex_init(&b->lock, NULL);
    b->members = NULL;
}

void fp_budget_cleanup(fp_budget_t *b)
{
    pthread_mutex_destroy(&b->lock);
}

void fp_budget_join(fp_budget_t *b, fp_budget_member_t *m, int wake_fd)
{
    m->wake_fd = wake_fd;
    atomic_init(&m->spare, 0);
    pthread_mutex_lock(&b->lock);
    m->next = b->members;
    b->members = m;
    pthread_mutex_unlock(&b->lock);
}

void fp_budget_leave(fp_budget_t *b, fp_budget_member_t *m)
{
    pthread_mutex_lock(&b->lock);
    for (fp_budget_member_t **pp = &b->members; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == m) {
            *pp = m->next;
            break;
        }
    }
    pthread_mutex_unlock(&b->lock);
}

/* Wake every member but @self. Called with the lock held. */
static void wake_others(fp_budget_t *b, const fp_budget_member_t *self)
{
    uint64_t one = 1;

    for (fp_budget_member_t *m = b->members; m != NULL; m = m->next) {
        /* An eventfd write fails only when its counter would overflow: it is
         * readable then anyway, which is all a wake-up needs. */
        if (m != self)
            (void)!write(m->wake_fd, &one, sizeof(one));
    }
}

bool fp_budget_ask(fp_budget_t *b, const fp_budget_member_t *self, uint64_t bytes)
{
    uint64_t spare = 0;

    pthread_mutex_lock(&b->lock);
    for (fp_budget_member_t *m = b->members; m != NULL; m = m->next) {
        if (m != self)
            spare += atomic_load(&m->spare);
    }
    if (spare > 0) {
        atomic_fetch_add(&b->wanted, bytes);
        wake_others(b, self);
    }
    pthread_mutex_unlock(&b->lock);
    return spare > 0;
}

/* *@v -= min(*@v, @n), atomically. */
static void sub_saturating(_Atomic uint64_t *v, uint64_t n)
{
    uint64_t cur = atomic_load(v);

    while (!atomic_compare_exchange_weak(v, &cur, cur - (cur < n ? cur : n)))
        ;
}

void fp_budget_unask(fp_budget_t *b, uint64_t bytes)
{
    sub_saturating(&b->wanted, bytes);
}

void fp_budget_gave(fp_budget_t *b, const fp_budget_member_t *self, uint64_t bytes)
{
    sub_saturating(&b->wanted, bytes);
    pthread_mutex_lock(&b->lock);
    wake_others(b, self);
    pthread_mutex_unlock(&b->lock);
}
