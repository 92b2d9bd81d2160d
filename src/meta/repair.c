/* SPDX-License-Identifier: MIT */
/*
 * The metadata service's background work, run between requests: members
 * declared dead when silent for dead_after_ms (in an etcd pool: when their
 * lease key is gone, check_leases), unpublished regions whose
 * creator went away dropped, and copies made, one slab at a time, for slabs
 * that have fewer than their region wants (repair) or that sit on a member
 * being drained (drain).
 *
 * Repair. A dead member's copies are lost. For each slab left with fewer
 * copies, a new member is chosen (the best of two with room, not holding the
 * slab), a slab allocated there as the region's key, its bytes read from a
 * surviving copy and written, and only then is the copy stored as OK and
 * given to clients. Copies are made at most repair_rate bytes per second.
 * A region held by a writer is not repaired while the lease lasts: the
 * writer could change the bytes being copied. It is repaired when the
 * writer closes it (docs/pool.md).
 *
 * Drain. A draining member's copies are moved the same way (copy elsewhere,
 * then free the old one); when it holds none it is gone.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "client/node.h"
#include "common/log.h"
#include "common/time.h"
#include "service_int.h"

#define LOOP_MS       100  /* the periodic work runs at least this often */
#define LIVE_RETRY_MS 1000 /* lease keys not read: read again after this long */

void meta_node_declare_dead(fp_meta_service_t *svc, meta_node_t *n, const char *why)
{
    size_t lost = 0;

    n->rec.state = FP_META_NODE_DEAD;
    if (svc->store->ops->node_put(svc->store, &n->rec) != FP_OK)
        fp_error(svc->log, "pool: cannot store that member %s is dead", n->rec.addr);
    for (size_t i = 0; i < svc->nregions; i++) {
        meta_region_t *r = svc->regions[i];

        for (size_t j = r->nreps; j-- > 0;) {
            if (r->reps[j].node != n->rec.id)
                continue;
            (void)svc->store->ops->replica_delete(svc->store, r->rec.id, r->reps[j].index,
                                                  n->rec.id);
            meta_region_drop_rep(svc, r, j);
            lost++;
        }
        if (meta_region_health(svc, r) == FP_POOL_LOST)
            fp_error(svc->log, "pool: region %s lost bytes: some slab has no copy left",
                     r->rec.name);
    }
    n->placed = 0;
    fp_warn(svc->log, "pool: member %s is dead (%s); %zu slab copies lost%s", n->rec.addr, why,
            lost, lost > 0 ? ", repairing from the survivors" : "");
}

/*
 * Liveness by lease (a store with member_live: etcd), read once a heartbeat
 * period: a usable member whose key lives is alive, however late its
 * heartbeats; one whose key was seen and is gone is dead. A member whose
 * key was never seen (it has not put it yet, or it joined by farpool:// and
 * holds none) goes by heartbeats. No answer (etcd away): nobody is declared dead by the lease.
 * Nor for --dead-after after this thread was itself away (check_deaths): a
 * pause of this whole process (the metadata node is a member too) lets its
 * own key expire, and its member thread, paused as well, puts it again.
 */
static void check_leases(fp_meta_service_t *svc, uint64_t now)
{
    uint64_t period = (uint64_t)svc->params.dead_after_ms / 10 * FP_NS_PER_MS;
    uint64_t *ids;
    bool *live;
    size_t n = 0;

    /* After a failed read, once a second at most: each may wait out its deadline. */
    if (svc->live_failed && period < LIVE_RETRY_MS * FP_NS_PER_MS)
        period = LIVE_RETRY_MS * FP_NS_PER_MS;
    if (svc->store->ops->member_live == NULL || now - svc->live_ns < period || svc->nnodes == 0)
        return;
    svc->live_ns = now;
    svc->live_failed = true; /* until the read succeeds */
    ids = malloc(svc->nnodes * sizeof(*ids));
    live = malloc(svc->nnodes * sizeof(*live));
    if (ids == NULL || live == NULL)
        goto out; /* judged again next period */
    for (size_t i = 0; i < svc->nnodes; i++)
        ids[i] = svc->nodes[i].rec.node_id;
    n = svc->nnodes;
    if (svc->store->ops->member_live(svc->store, ids, n, live) != FP_OK)
        goto out;
    svc->live_failed = false;
    for (size_t i = 0; i < n; i++) {
        meta_node_t *node = &svc->nodes[i];

        if (!meta_node_usable(node))
            continue;
        if (live[i]) {
            node->leased = true; /* its heartbeats still say when it was last heard */
        } else if (node->leased && now >= svc->lease_grace_ns) {
            node->leased = false;
            meta_node_declare_dead(svc, node, "its etcd lease key is gone");
        }
    }
out:
    free(ids);
    free(live);
}

static void check_deaths(fp_meta_service_t *svc, uint64_t now)
{
    uint64_t limit = (uint64_t)svc->params.dead_after_ms * FP_NS_PER_MS;

    /*
     * This thread itself was away (a long copy, a stall of the machine): the
     * silence it sees may be its own. Every member gets a heartbeat's credit
     * now rather than all being declared dead at once, and every lease
     * holder time to renew (the credit is not stored: after a restart the
     * stored expiry counts).
     */
    if (svc->checked_ns != 0 && now - svc->checked_ns > limit / 4) {
        fp_info(svc->log,
                "pool: the metadata service was away %" PRIu64 " ms; members get "
                "--dead-after from now",
                (uint64_t)((now - svc->checked_ns) / FP_NS_PER_MS));
        for (size_t i = 0; i < svc->nnodes; i++)
            if (svc->nodes[i].seen_ns < now - limit / 2)
                svc->nodes[i].seen_ns = now - limit / 2;
        /* Lease keys that expired meanwhile get --dead-after to come back. */
        svc->lease_grace_ns = now + limit;
        /* And every writer lease half its TTL: renewals may not have been sent yet. */
        for (size_t i = 0; i < svc->nregions; i++) {
            fp_meta_region_t *rec = &svc->regions[i]->rec;
            uint64_t credit = fp_wall_ms() + (uint64_t)svc->params.lease_ttl_ms / 2;

            if (rec->lease_id != 0 && rec->lease_expires_ms < credit)
                rec->lease_expires_ms = credit;
        }
    }
    check_leases(svc, now);
    /* The read's own wait is no absence: heartbeats that came meanwhile are
     * counted by their arrival. */
    svc->checked_ns = fp_time_ns();
    for (size_t i = 0; i < svc->nnodes; i++) {
        meta_node_t *n = &svc->nodes[i];

        if (meta_node_usable(n) && !n->leased && now - n->seen_ns > limit)
            meta_node_declare_dead(svc, n, "no heartbeat for --dead-after");
    }
}

static void drop_abandoned(fp_meta_service_t *svc, uint64_t now_ms)
{
    for (size_t i = 0; i < svc->nregions; i++) {
        meta_region_t *r = svc->regions[i];

        if (r->rec.state != FP_META_REGION_PENDING || meta_region_leased(r, now_ms))
            continue;
        fp_info(svc->log, "pool: dropping unpublished region %s: its creator went away",
                r->rec.name);
        if (meta_region_destroy(svc, r) == FP_OK)
            i--; /* another region moved into slot i */
    }
}

/* Copy slab bytes from @src (slab @from) to @dst (slab @to) in steps. */
static fp_status_t copy_slab(fp_meta_service_t *svc, farpool_node_t *src, uint64_t from,
                             farpool_node_t *dst, uint64_t to)
{
    uint64_t size = svc->params.slab_size, step = size < (8u << 20) ? size : (8u << 20);
    uint8_t *buf = malloc(step);
    fp_status_t status = FP_OK;

    if (buf == NULL)
        return FP_ERR_NO_MEMORY;
    for (uint64_t off = 0; off < size && status == FP_OK; off += step) {
        status = farpool_slab_read(src, from, off, buf, step);
        if (status == FP_OK)
            status = farpool_slab_write(dst, to, off, buf, step);
    }
    free(buf);
    return status;
}

/*
 * Make one more copy of slab @index of @r, from a good copy, on a member
 * chosen by placement (not one of @r's holders of that slab). True if a copy
 * was made (or tried: the caller moves on either way).
 */
static bool copy_one(fp_meta_service_t *svc, meta_region_t *r, uint32_t index, uint64_t *made_on)
{
    uint64_t exclude[64], seed = meta_random(svc);
    const fp_meta_replica_t *from = NULL;
    fp_meta_candidate_t *cand;
    farpool_node_t *src = NULL, *dst = NULL;
    fp_meta_replica_t rep;
    size_t ncand = 0, nex = 0;
    meta_node_t *sn = NULL, *dn;
    long pick;
    fp_status_t status;

    for (size_t i = 0; i < r->nreps; i++) {
        const fp_meta_replica_t *p = &r->reps[i];
        meta_node_t *n = meta_node_by_id(svc, p->node);

        if (p->index != index)
            continue;
        if (nex < 64)
            exclude[nex++] = p->node;
        if (p->state == FP_META_REPLICA_OK && n != NULL && meta_node_usable(n) && from == NULL) {
            from = p;
            sn = n;
        }
    }
    if (from == NULL)
        return false; /* lost: nothing to copy from */
    cand = meta_candidates(svc, &ncand);
    if (cand == NULL)
        return false;
    pick = fp_meta_place_one(cand, ncand, exclude, nex, svc->params.slab_size, &seed);
    if (pick < 0) {
        free(cand);
        return false; /* no member can take it now */
    }
    dn = meta_node_by_id(svc, cand[pick].node);
    free(cand);
    memset(&rep, 0, sizeof(rep));
    rep.region = r->rec.id;
    rep.index = index;
    rep.node = dn->rec.id;
    rep.state = FP_META_REPLICA_COPYING;
    status = meta_connect(svc, sn, r->rec.key, &src);
    if (status == FP_OK)
        status = meta_connect(svc, dn, r->rec.key, &dst);
    if (status == FP_OK) {
        uint64_t size;

        status = farpool_slab_alloc(dst, &rep.slab, &size);
    }
    if (status == FP_OK)
        status = svc->store->ops->replica_put(svc->store, &rep);
    if (status == FP_OK) {
        status = copy_slab(svc, src, from->slab, dst, rep.slab);
        if (status == FP_OK) {
            rep.state = FP_META_REPLICA_OK;
            status = svc->store->ops->replica_put(svc->store, &rep);
        }
        if (status != FP_OK) {
            (void)svc->store->ops->replica_delete(svc->store, rep.region, rep.index, rep.node);
            (void)farpool_slab_free(dst, rep.slab);
        }
    } else if (dst != NULL && rep.slab != 0) {
        (void)farpool_slab_free(dst, rep.slab);
    }
    if (status == FP_OK && meta_region_add_rep(svc, r, &rep) == FP_OK) {
        svc->copied_bytes += svc->params.slab_size;
        svc->copied_slabs++;
        *made_on = dn->rec.id;
    } else if (status != FP_OK) {
        fp_warn(svc->log, "pool: cannot copy slab %" PRIu32 " of region %s from %s to %s: %s",
                index, r->rec.name, sn->rec.addr, dn->rec.addr, fp_status_string(status));
    }
    farpool_node_close(src);
    farpool_node_close(dst);
    return true;
}

/* Free copy @i of @r (on a draining member) and forget it. */
static void drop_copy(fp_meta_service_t *svc, meta_region_t *r, size_t i)
{
    fp_meta_replica_t rep = r->reps[i];
    meta_node_t *n = meta_node_by_id(svc, rep.node);
    farpool_node_t *conn;

    if (svc->store->ops->replica_delete(svc->store, rep.region, rep.index, rep.node) != FP_OK)
        return;
    meta_region_drop_rep(svc, r, i);
    if (n != NULL && meta_connect(svc, n, r->rec.key, &conn) == FP_OK) {
        (void)farpool_slab_free(conn, rep.slab);
        farpool_node_close(conn);
    }
}

/* One repair or drain copy, if any is due. True if one was made or tried. */
static bool copy_step(fp_meta_service_t *svc, uint64_t now_ms)
{
    for (size_t i = 0; i < svc->nregions; i++) {
        meta_region_t *r = svc->regions[i];

        if (r->rec.state != FP_META_REGION_READY || meta_region_leased(r, now_ms))
            continue;
        for (uint32_t s = 0; s < r->rec.nslabs; s++) {
            uint32_t good = meta_region_good_copies(svc, r, s);
            uint64_t made_on = 0;

            if (good > 0 && good < r->rec.replicas && copy_one(svc, r, s, &made_on))
                return true;
        }
        /* Copies on draining members: make one elsewhere, then drop the old. */
        for (size_t j = 0; j < r->nreps; j++) {
            meta_node_t *n = meta_node_by_id(svc, r->reps[j].node);
            uint32_t index = r->reps[j].index;
            uint64_t made_on = 0;

            if (n == NULL || n->rec.state != FP_META_NODE_DRAINING)
                continue;
            bool tried = copy_one(svc, r, index, &made_on);

            if (made_on != 0) {
                for (size_t k = 0; k < r->nreps; k++) {
                    if (r->reps[k].index == index && r->reps[k].node == n->rec.id) {
                        drop_copy(svc, r, k);
                        break;
                    }
                }
            }
            if (!tried)
                continue; /* no member can take it now */
            return true;
        }
    }
    return false;
}

/* Draining members that hold nothing any more are gone. */
static void drained(fp_meta_service_t *svc)
{
    for (size_t i = 0; i < svc->nnodes; i++) {
        meta_node_t *n = &svc->nodes[i];

        if (n->rec.state != FP_META_NODE_DRAINING || n->placed != 0)
            continue;
        n->rec.state = FP_META_NODE_GONE;
        n->drained = true;
        if (svc->store->ops->node_put(svc->store, &n->rec) == FP_OK)
            fp_info(svc->log, "pool: member %s is drained: it holds no slab; stop it", n->rec.addr);
    }
}

int meta_periodic(fp_meta_service_t *svc)
{
    uint64_t now = fp_time_ns(), now_ms = fp_wall_ms();
    int wait_ms = LOOP_MS;

    check_deaths(svc, now);
    drop_abandoned(svc, now_ms);
    if (now >= svc->copy_next_ns) {
        if (copy_step(svc, now_ms)) {
            uint64_t took = fp_time_ns() - now;
            uint64_t budget = svc->params.repair_rate > 0
                                  ? svc->params.slab_size * 1000000000ull / svc->params.repair_rate
                                  : 0;

            /* The next copy when the rate allows: soon, not at the next tick. */
            svc->copy_next_ns = now + (budget > took ? budget : took);
            svc->copy_pending = true;
        } else {
            svc->copy_pending = false;
        }
    }
    if (svc->copy_pending) {
        now = fp_time_ns();
        wait_ms = svc->copy_next_ns > now
                      ? (int)((svc->copy_next_ns - now + FP_NS_PER_MS - 1) / FP_NS_PER_MS)
                      : 0;
        if (wait_ms > LOOP_MS)
            wait_ms = LOOP_MS;
    }
    drained(svc);
    return wait_ms;
}
