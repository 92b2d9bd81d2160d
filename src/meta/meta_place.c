/* SPDX-License-Identifier: MIT */
/*
 * Placement of a region's slabs on the pool's members; see meta.h.
 *
 * DESIGN
 * The power of two choices (Mitzenmacher; Infiniswap, NSDI '17, places slabs
 * on remote machines this way): for each copy of each slab, two distinct
 * candidates are drawn at random among those that qualify (eligible, with
 * room for one more slab, not holding a copy of that slab yet, not excluded)
 * and the one with more free bytes wins; on a tie the first drawn does. When
 * only one qualifies it is taken. Against always taking the emptiest member
 * it needs no exact global view and does not send a burst of slabs all to
 * one member; against a single random choice, it keeps the members' load
 * within a small constant of each other instead of drifting apart.
 *
 * Each copy subtracts slab_size from its candidate's free bytes, so later
 * copies see it; on FP_ERR_NO_SPACE fp_meta_place gives back what it had
 * subtracted, so the candidates are as they were (and @out is undefined).
 * Copies of one slab go on distinct members: a candidate is skipped if a
 * candidate with the same member id already holds that slab.
 *
 * Randomness comes from splitmix64, its state a local seeded by @seed
 * (fp_meta_place) or the caller's *@seed (fp_meta_place_one): the same seed
 * and candidates give the same placement, and there is no global state.
 * Each copy costs two scans of the candidates, each checking the slab's
 * copies so far: O(ncand * replicas), fine for pools of hundreds of members.
 *
 * Thread safety: the functions touch only their arguments; calls on
 * different candidate arrays may run concurrently.
 */
#include "meta.h"

#include <stddef.h>
#include <stdint.h>

/* splitmix64 (Steele, Lea, Flood 2014): the next value of the sequence at *@state. */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A random number below @n (> 0); the modulo bias is negligible for candidate counts. */
static size_t rng_below(uint64_t *state, size_t n)
{
    return (size_t)(rng_next(state) % n);
}

/* What a copy must not land on. */
typedef struct place_avoid {
    const uint32_t *taken; /* indices into cand of the slab's copies so far */
    size_t ntaken;
    const uint64_t *exclude; /* member ids */
    size_t nexclude;
} place_avoid_t;

static bool candidate_qualifies(const fp_meta_candidate_t *cand, size_t i,
                                const place_avoid_t *avoid, uint64_t slab_size)
{
    const fp_meta_candidate_t *c = &cand[i];

    if (!c->eligible || c->free < slab_size)
        return false;
    for (size_t j = 0; j < avoid->ntaken; j++) {
        if (cand[avoid->taken[j]].node == c->node)
            return false;
    }
    for (size_t j = 0; j < avoid->nexclude; j++) {
        if (avoid->exclude[j] == c->node)
            return false;
    }
    return true;
}

/* The candidate chosen for one copy (the better of two random qualifying ones), or -1. */
static long candidate_choose(const fp_meta_candidate_t *cand, size_t ncand,
                             const place_avoid_t *avoid, uint64_t slab_size, uint64_t *rng)
{
    size_t nq = 0, rank = 0, a, b;
    long first = -1, second = -1;

    for (size_t i = 0; i < ncand; i++)
        nq += candidate_qualifies(cand, i, avoid, slab_size);
    if (nq == 0)
        return -1;
    a = rng_below(rng, nq);
    b = a;
    if (nq > 1) {
        b = rng_below(rng, nq - 1);
        if (b >= a)
            b++;
    }
    for (size_t i = 0; i < ncand && (first < 0 || second < 0); i++) {
        if (!candidate_qualifies(cand, i, avoid, slab_size))
            continue;
        if (rank == a)
            first = (long)i;
        if (rank == b)
            second = (long)i;
        rank++;
    }
    return cand[second].free > cand[first].free ? second : first;
}

static size_t eligible_count(const fp_meta_candidate_t *cand, size_t ncand)
{
    size_t n = 0;

    for (size_t i = 0; i < ncand; i++)
        n += cand[i].eligible;
    return n;
}

fp_status_t fp_meta_place(fp_meta_candidate_t *cand, size_t ncand, uint32_t nslabs,
                          uint32_t replicas, uint64_t slab_size, uint64_t seed, uint32_t *out)
{
    uint64_t rng = seed;
    size_t ncopies;

    if ((cand == NULL && ncand > 0) || ncand > UINT32_MAX || slab_size == 0 || replicas == 0 ||
        replicas > eligible_count(cand, ncand) || (out == NULL && nslabs > 0) ||
        nslabs > SIZE_MAX / replicas)
        return FP_ERR_INVALID_PARAM;
    ncopies = (size_t)nslabs * replicas;
    for (size_t c = 0; c < ncopies; c++) {
        size_t first = c - c % replicas; /* slab c / replicas's first copy */
        place_avoid_t avoid = {.taken = out + first, .ntaken = c - first};
        long i = candidate_choose(cand, ncand, &avoid, slab_size, &rng);

        if (i < 0) {
            for (size_t j = 0; j < c; j++)
                cand[out[j]].free += slab_size; /* give back what was placed */
            return FP_ERR_NO_SPACE;
        }
        out[c] = (uint32_t)i;
        cand[i].free -= slab_size;
    }
    return FP_OK;
}

long fp_meta_place_one(fp_meta_candidate_t *cand, size_t ncand, const uint64_t *exclude,
                       size_t nexclude, uint64_t slab_size, uint64_t *seed)
{
    place_avoid_t avoid = {.exclude = exclude, .nexclude = nexclude};
    long i;

    if (cand == NULL || seed == NULL || slab_size == 0 || (exclude == NULL && nexclude > 0))
        return -1;
    i = candidate_choose(cand, ncand, &avoid, slab_size, seed);
    if (i >= 0)
        cand[i].free -= slab_size;
    return i;
}
