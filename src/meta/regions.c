/* SPDX-License-Identifier: MIT */
/*
 * The metadata service's regions: CREATE (placement and allocation), OPEN
 * (and the writer lease), MAP, DELETE, COMMIT, LEASE, REGIONS and STALE (a
 * copy that missed a write).
 *
 * Names. A published region owns its name: no two published regions share
 * one. Unpublished regions (a put in progress) do not: two puts of one name
 * may run at once, and the first to COMMIT takes the name; the other's
 * COMMIT gets FP_ERR_EXISTS.
 *
 * Leases. The creator of a region holds its writer lease, and so does whoever
 * opens it for writing; a lease names the holder's client key and lasts
 * lease_ttl_ms unless renewed (LEASE). Another key asking to write while it
 * lasts gets FP_ERR_IN_USE. The same key may reopen (a context reopening its
 * own region). Leases are stored, so they outlive a restart of this node.
 * Where the store holds leases itself (etcd: writer_take and friends), a
 * lease is the store's: taken, renewed and released there, and its answer is
 * the truth at open for write and at renewal; the in-memory copy is a view.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/node.h"
#include "common/log.h"
#include "common/time.h"
#include "proto/pool.h"
#include "service_int.h"

#define FIXED_BASE  0x400000000000ull /* where FARPOOL_REGION_FIXED addresses start (64 TiB) */
#define FIXED_ALIGN (1ull << 30)
#define FIXED_END   0x700000000000ull

meta_region_t *meta_region_by_id(fp_meta_service_t *svc, uint64_t id)
{
    for (size_t i = 0; i < svc->nregions; i++)
        if (svc->regions[i]->rec.id == id)
            return svc->regions[i];
    return NULL;
}

static meta_region_t *region_by_name(fp_meta_service_t *svc, const char *name)
{
    for (size_t i = 0; i < svc->nregions; i++)
        if (svc->regions[i]->rec.state == FP_META_REGION_READY &&
            strcmp(svc->regions[i]->rec.name, name) == 0)
            return svc->regions[i];
    return NULL;
}

fp_status_t meta_region_add_rep(fp_meta_service_t *svc, meta_region_t *r,
                                const fp_meta_replica_t *rep)
{
    meta_node_t *n;

    if (r->nreps == r->capreps) {
        size_t cap = r->capreps ? r->capreps * 2 : 16;
        fp_meta_replica_t *reps = realloc(r->reps, cap * sizeof(*reps));

        if (reps == NULL)
            return FP_ERR_NO_MEMORY;
        r->reps = reps;
        r->capreps = cap;
    }
    r->reps[r->nreps++] = *rep;
    n = meta_node_by_id(svc, rep->node);
    if (n != NULL)
        n->placed += r->rec.slab_size;
    return FP_OK;
}

void meta_region_drop_rep(fp_meta_service_t *svc, meta_region_t *r, size_t i)
{
    meta_node_t *n = meta_node_by_id(svc, r->reps[i].node);

    if (n != NULL && n->placed >= r->rec.slab_size)
        n->placed -= r->rec.slab_size;
    r->reps[i] = r->reps[--r->nreps];
}

uint32_t meta_region_good_copies(fp_meta_service_t *svc, const meta_region_t *r, uint32_t index)
{
    uint32_t good = 0;

    for (size_t i = 0; i < r->nreps; i++) {
        const fp_meta_replica_t *rep = &r->reps[i];
        const meta_node_t *n;

        if (rep->index != index || rep->state != FP_META_REPLICA_OK)
            continue;
        n = meta_node_by_id(svc, rep->node);
        if (n != NULL && meta_node_usable(n))
            good++;
    }
    return good;
}

uint32_t meta_region_health(fp_meta_service_t *svc, const meta_region_t *r)
{
    uint32_t health = FP_POOL_HEALTHY;

    for (size_t i = 0; i < r->nreps; i++)
        if (r->reps[i].state == FP_META_REPLICA_COPYING)
            health = FP_POOL_REPAIRING;
    for (uint32_t s = 0; s < r->rec.nslabs; s++) {
        uint32_t good = meta_region_good_copies(svc, r, s);

        if (good == 0)
            return FP_POOL_LOST;
        if (good < r->rec.replicas && health == FP_POOL_HEALTHY)
            health = FP_POOL_DEGRADED;
    }
    return health;
}

bool meta_region_leased(const meta_region_t *r, uint64_t now_ms)
{
    return r->rec.lease_id != 0 && r->rec.lease_expires_ms > now_ms;
}

static void desc_fill(fp_meta_service_t *svc, const meta_region_t *r, bool with_lease,
                      fp_pool_region_desc_t *d)
{
    memset(d, 0, sizeof(*d));
    d->id = r->rec.id;
    d->size = r->rec.size;
    d->granule = r->rec.granule;
    d->flags = r->rec.flags;
    d->replicas = r->rec.replicas;
    d->state = r->rec.state;
    d->health = meta_region_health(svc, r);
    d->slab_size = r->rec.slab_size;
    d->nslabs = r->rec.nslabs;
    memcpy(d->key, r->rec.key, sizeof(d->key));
    d->fixed_addr = r->rec.fixed_addr;
    d->has_checksum = r->rec.has_checksum;
    memcpy(d->checksum, r->rec.checksum, sizeof(d->checksum));
    d->created_ms = r->rec.created_ms;
    if (with_lease) {
        d->lease_id = r->rec.lease_id;
        d->lease_ttl_ms = (uint32_t)svc->params.lease_ttl_ms;
    }
    d->name.len = (uint16_t)strlen(r->rec.name);
    memcpy(d->name.text, r->rec.name, d->name.len + 1);
}

static void reply_desc(const meta_call_t *call, const meta_region_t *r, bool with_lease)
{
    fp_pool_region_desc_t d;
    uint8_t buf[FP_PROTO_MAX_CONTROL];

    desc_fill(call->svc, r, with_lease, &d);
    meta_reply(call, FP_OK, buf, fp_pool_desc_encode(&d, buf, sizeof(buf)));
}

/* The store holds writer leases itself (etcd): its answer is the truth. */
static bool store_leases(const fp_meta_service_t *svc)
{
    return svc->store->ops->writer_take != NULL;
}

void meta_region_lease_clear(fp_meta_region_t *rec)
{
    rec->lease_id = 0;
    rec->lease_expires_ms = 0;
    memset(rec->lease_holder, 0, sizeof(rec->lease_holder));
}

/*
 * Give the caller the writer lease of @r: the one it holds already, renewed
 * (a context opening its region twice), or a new one. Where the store holds
 * leases, it judges: FP_ERR_IN_USE if another key holds it there.
 */
static fp_status_t lease_take(fp_meta_service_t *svc, meta_region_t *r, const uint8_t *key)
{
    fp_meta_region_t rec = r->rec;
    fp_status_t status;

    if (store_leases(svc)) {
        uint64_t lease = 0;
        int ttl_ms = 0;

        status = svc->store->ops->writer_take(svc->store, rec.id, key, svc->params.lease_ttl_ms,
                                              &lease, &ttl_ms);
        if (status != FP_OK)
            return status;
        r->rec.lease_id = lease;
        memcpy(r->rec.lease_holder, key, sizeof(r->rec.lease_holder));
        r->rec.lease_expires_ms = fp_wall_ms() + (uint64_t)ttl_ms;
        return FP_OK;
    }
    if (!meta_region_leased(r, fp_wall_ms()) ||
        memcmp(rec.lease_holder, key, sizeof(rec.lease_holder)) != 0) {
        do
            rec.lease_id = meta_random(svc);
        while (rec.lease_id == 0);
    }
    memcpy(rec.lease_holder, key, sizeof(rec.lease_holder));
    rec.lease_expires_ms = fp_wall_ms() + (uint64_t)svc->params.lease_ttl_ms;
    status = svc->store->ops->region_update(svc->store, &rec);
    if (status == FP_OK)
        r->rec = rec;
    return status;
}

/* Free slab ids @ids (@n of them) that @key owns on member @n. */
static void free_slabs(fp_meta_service_t *svc, const meta_node_t *n, const uint8_t *key,
                       const uint64_t *ids, size_t count)
{
    farpool_node_t *conn;

    if (count == 0 || !meta_node_usable(n) || meta_connect(svc, n, key, &conn) != FP_OK)
        return;
    for (size_t i = 0; i < count; i++)
        (void)farpool_slab_free(conn, ids[i]);
    farpool_node_close(conn);
}

fp_status_t meta_region_destroy(fp_meta_service_t *svc, meta_region_t *r)
{
    uint64_t *ids = malloc((r->nreps > 0 ? r->nreps : 1) * sizeof(*ids));
    fp_status_t status;

    status = svc->store->ops->region_delete(svc->store, r->rec.id);
    if (status != FP_OK) {
        free(ids);
        return status;
    }
    /* Per member, the slabs it holds; the store forgot them already. */
    for (size_t i = 0; ids != NULL && i < svc->nnodes; i++) {
        size_t count = 0;

        for (size_t j = 0; j < r->nreps; j++)
            if (r->reps[j].node == svc->nodes[i].rec.id)
                ids[count++] = r->reps[j].slab;
        free_slabs(svc, &svc->nodes[i], r->rec.key, ids, count);
    }
    free(ids);
    while (r->nreps > 0)
        meta_region_drop_rep(svc, r, r->nreps - 1);
    for (size_t i = 0; i < svc->nregions; i++) {
        if (svc->regions[i] == r) {
            svc->regions[i] = svc->regions[--svc->nregions];
            break;
        }
    }
    free(r->reps);
    free(r);
    return FP_OK;
}

/* Say in the log what the pool has free, for a region that does not fit. */
static void say_no_space(fp_meta_service_t *svc, const char *name, uint32_t nslabs,
                         uint32_t replicas)
{
    char line[1024];
    size_t pos = 0;
    uint64_t total = 0;

    for (size_t i = 0; i < svc->nnodes && pos < sizeof(line) - 128; i++) {
        const meta_node_t *n = &svc->nodes[i];
        uint64_t free = n->rec.capacity > n->placed ? n->rec.capacity - n->placed : 0;

        if (n->rec.state != FP_META_NODE_LIVE)
            continue;
        total += free;
        pos += (size_t)snprintf(line + pos, sizeof(line) - pos, "%s%s %" PRIu64 " MiB",
                                pos > 0 ? ", " : "", n->rec.addr, free >> 20);
    }
    fp_warn(svc->log,
            "pool: no room for region %s: it needs %" PRIu32 " slabs of %" PRIu64 " MiB %" PRIu32
            " times; free: %" PRIu64 " MiB (%s)",
            name, nslabs, svc->params.slab_size >> 20, replicas, total >> 20,
            pos > 0 ? line : "no live member");
}

/*
 * Allocate the copies placed by @place on the members (@cand's order), as
 * the owner @key. On failure everything allocated is freed, and *@failed_p is
 * the candidate that failed.
 */
static fp_status_t allocate(fp_meta_service_t *svc, const fp_meta_candidate_t *cand, size_t ncand,
                            const uint32_t *place, uint32_t nslabs, uint32_t replicas,
                            const uint8_t *key, fp_meta_replica_t *reps, size_t *failed_p)
{
    size_t total = (size_t)nslabs * replicas;
    fp_status_t status = FP_OK;
    size_t c;

    for (size_t i = 0; i < total; i++)
        reps[i].slab = 0;
    for (c = 0; c < ncand && status == FP_OK; c++) {
        meta_node_t *n = meta_node_by_id(svc, cand[c].node);
        farpool_node_t *conn = NULL;
        bool any = false;

        for (size_t i = 0; i < total && !any; i++)
            any = place[i] == c;
        if (!any)
            continue;
        status = meta_connect(svc, n, key, &conn);
        for (size_t i = 0; i < total && status == FP_OK; i++) {
            uint64_t size;

            if (place[i] != c)
                continue;
            status = farpool_slab_alloc(conn, &reps[i].slab, &size);
            if (status == FP_OK && size != svc->params.slab_size)
                status = FP_ERR_PROTOCOL;
            if (status != FP_OK)
                fp_warn(svc->log, "pool: member %s cannot allocate a slab: %s", n->rec.addr,
                        fp_status_string(status));
            reps[i].index = (uint32_t)(i / replicas);
            reps[i].node = n->rec.id;
            reps[i].state = FP_META_REPLICA_OK;
        }
        farpool_node_close(conn);
        if (status != FP_OK)
            *failed_p = c;
    }
    if (status == FP_OK)
        return FP_OK;
    /* Give back what was taken. */
    for (c = 0; c < ncand; c++) {
        meta_node_t *n = meta_node_by_id(svc, cand[c].node);
        uint64_t *ids = malloc(total * sizeof(*ids));
        size_t count = 0;

        for (size_t i = 0; ids != NULL && i < total; i++)
            if (place[i] == c && reps[i].slab != 0)
                ids[count++] = reps[i].slab;
        if (ids != NULL)
            free_slabs(svc, n, key, ids, count);
        free(ids);
    }
    return status;
}

/* The next free FARPOOL_REGION_FIXED range for @size bytes; 0 if none is left. */
static uint64_t fixed_next(fp_meta_service_t *svc, uint64_t size)
{
    uint64_t next = 0, span = (size + FIXED_ALIGN - 1) / FIXED_ALIGN * FIXED_ALIGN;

    if (svc->store->ops->value_get(svc->store, "next_fixed_addr", &next) != FP_OK)
        return 0;
    if (next < FIXED_BASE)
        next = FIXED_BASE;
    if (span > FIXED_END - next)
        return 0;
    if (svc->store->ops->value_put(svc->store, "next_fixed_addr", next + span + FIXED_ALIGN) !=
        FP_OK)
        return 0;
    return next;
}

static uint32_t live_members(fp_meta_service_t *svc)
{
    uint32_t live = 0;

    for (size_t i = 0; i < svc->nnodes; i++)
        live += svc->nodes[i].rec.state == FP_META_NODE_LIVE;
    return live;
}

static void handle_create(const meta_call_t *call)
{
    fp_meta_service_t *svc = call->svc;
    fp_meta_candidate_t *cand = NULL;
    fp_meta_replica_t *reps = NULL;
    uint32_t *place = NULL;
    meta_region_t *r = NULL, **all;
    fp_pool_create_req_t req;
    size_t ncand = 0;
    uint32_t replicas, nslabs;
    uint64_t now_ms = fp_wall_ms();
    fp_status_t status;

    status = fp_pool_create_req_decode(call->req->payload, call->req->len, &req);
    if (status != FP_OK)
        goto out;
    if (req.granule > svc->params.slab_size) {
        fp_warn(svc->log, "pool: region %s: granule %" PRIu32 " is over the slab size",
                req.name.text, req.granule);
        status = FP_ERR_INVALID_PARAM;
        goto out;
    }
    if (!(req.flags & FP_POOL_REGION_PENDING) && region_by_name(svc, req.name.text) != NULL) {
        status = FP_ERR_EXISTS;
        goto out;
    }
    replicas = req.replicas;
    if (replicas == 0)
        replicas = svc->params.replicas;
    if (replicas == 0)
        replicas = live_members(svc) >= 2 ? 2 : 1;
    if (replicas > live_members(svc)) {
        fp_warn(svc->log,
                "pool: region %s wants %" PRIu32 " copies; the pool has %" PRIu32 " live members",
                req.name.text, replicas, live_members(svc));
        status = live_members(svc) == 0 ? FP_ERR_NO_SPACE : FP_ERR_INVALID_PARAM;
        goto out;
    }
    nslabs = (uint32_t)fp_proto_region_nslabs(req.size, svc->params.slab_size);
    if (fp_proto_region_nslabs(req.size, svc->params.slab_size) > UINT32_MAX / replicas) {
        status = FP_ERR_NO_SPACE;
        goto out;
    }
    cand = meta_candidates(svc, &ncand); /* who may take copies; narrowed by failures below */
    place = malloc((size_t)nslabs * replicas * sizeof(*place));
    reps = calloc((size_t)nslabs * replicas, sizeof(*reps));
    r = calloc(1, sizeof(*r));
    if (cand == NULL || place == NULL || reps == NULL || r == NULL) {
        status = FP_ERR_NO_MEMORY;
        goto out;
    }
    status = fp_proto_random(r->rec.key, sizeof(r->rec.key));
    if (status != FP_OK)
        goto out;
    /*
     * A member that cannot allocate (it died a moment ago, and is not declared
     * dead yet; it is full after all) is left out, and the region placed
     * again on the others.
     */
    for (unsigned attempt = 0;; attempt++) {
        size_t failed = SIZE_MAX;
        fp_meta_candidate_t *again = meta_candidates(svc, &ncand);

        if (again == NULL) {
            status = FP_ERR_NO_MEMORY;
            goto out;
        }
        for (size_t i = 0; i < ncand; i++)
            again[i].eligible = again[i].eligible && cand[i].eligible;
        free(cand);
        cand = again;
        status = fp_meta_place(cand, ncand, nslabs, replicas, svc->params.slab_size,
                               meta_random(svc), place);
        if (status == FP_ERR_NO_SPACE)
            say_no_space(svc, req.name.text, nslabs, replicas);
        if (status == FP_OK)
            status = allocate(svc, cand, ncand, place, nslabs, replicas, r->rec.key, reps, &failed);
        if (status == FP_OK || failed == SIZE_MAX || attempt >= 3)
            break;
        fp_warn(svc->log, "pool: region %s: leaving member %" PRIu64 " out and placing again",
                req.name.text, cand[failed].node);
        cand[failed].eligible = false;
    }
    if (status != FP_OK)
        goto out;
    snprintf(r->rec.name, sizeof(r->rec.name), "%s", req.name.text);
    r->rec.size = req.size;
    r->rec.granule = req.granule;
    r->rec.flags = req.flags & FP_POOL_REGION_FIXED;
    r->rec.replicas = replicas;
    r->rec.state =
        (req.flags & FP_POOL_REGION_PENDING) ? FP_META_REGION_PENDING : FP_META_REGION_READY;
    r->rec.slab_size = svc->params.slab_size;
    r->rec.nslabs = nslabs;
    r->rec.created_ms = now_ms;
    if (req.flags & FP_POOL_REGION_FIXED) {
        r->rec.fixed_addr = fixed_next(svc, req.size);
        if (r->rec.fixed_addr == 0)
            status = FP_ERR_NO_SPACE;
    }
    if (!store_leases(svc)) {
        do
            r->rec.lease_id = meta_random(svc);
        while (r->rec.lease_id == 0);
        memcpy(r->rec.lease_holder, call->req->key, sizeof(r->rec.lease_holder));
        r->rec.lease_expires_ms = now_ms + (uint64_t)svc->params.lease_ttl_ms;
    }
    if (status == FP_OK)
        status = svc->store->ops->region_add(svc->store, &r->rec, reps, (size_t)nslabs * replicas);
    if (status == FP_OK && store_leases(svc)) {
        /* The creator's lease, from the store, once the region has its id. */
        status = lease_take(svc, r, call->req->key);
        if (status != FP_OK)
            (void)svc->store->ops->region_delete(svc->store, r->rec.id);
    }
    if (status == FP_OK && svc->nregions == svc->capregions) {
        all = realloc(svc->regions, (svc->capregions ? svc->capregions * 2 : 16) * sizeof(*all));
        if (all == NULL) {
            (void)svc->store->ops->region_delete(svc->store, r->rec.id);
            status = FP_ERR_NO_MEMORY;
        } else {
            svc->regions = all;
            svc->capregions = svc->capregions ? svc->capregions * 2 : 16;
        }
    }
    if (status != FP_OK) {
        /* Nothing stored: give the slabs back. */
        meta_region_t tmp = {.rec = r->rec, .reps = reps, .nreps = 0};

        for (size_t i = 0; i < ncand; i++) {
            meta_node_t *n = meta_node_by_id(svc, cand[i].node);
            uint64_t *ids = malloc((size_t)nslabs * replicas * sizeof(*ids));
            size_t count = 0;

            for (size_t j = 0; ids != NULL && j < (size_t)nslabs * replicas; j++)
                if (place[j] == i)
                    ids[count++] = reps[j].slab;
            if (ids != NULL)
                free_slabs(svc, n, tmp.rec.key, ids, count);
            free(ids);
        }
        goto out;
    }
    svc->regions[svc->nregions++] = r;
    for (size_t i = 0; i < (size_t)nslabs * replicas; i++) {
        reps[i].region = r->rec.id;
        (void)meta_region_add_rep(svc, r, &reps[i]);
    }
    fp_info(svc->log,
            "pool: created region %s (%" PRIu64 " MiB, %" PRIu32 " slabs x %" PRIu32 " copies)%s",
            r->rec.name, r->rec.size >> 20, nslabs, replicas,
            r->rec.state == FP_META_REGION_PENDING ? ", unpublished" : "");
    reply_desc(call, r, true);
    r = NULL;
out:
    if (status != FP_OK)
        meta_reply(call, status, NULL, 0);
    free(r);
    free(reps);
    free(place);
    free(cand);
}

static void handle_open(const meta_call_t *call)
{
    fp_meta_service_t *svc = call->svc;
    fp_pool_open_req_t req;
    meta_region_t *r;
    fp_status_t status;

    status = fp_pool_open_req_decode(call->req->payload, call->req->len, &req);
    if (status != FP_OK) {
        meta_reply(call, status, NULL, 0);
        return;
    }
    r = region_by_name(svc, req.name.text);
    if (r == NULL) {
        meta_reply(call, FP_ERR_NO_ENTRY, NULL, 0);
        return;
    }
    if (req.flags & FP_POOL_OPEN_WRITE) {
        if (!store_leases(svc) && meta_region_leased(r, fp_wall_ms()) &&
            memcmp(r->rec.lease_holder, call->req->key, sizeof(r->rec.lease_holder)) != 0) {
            meta_reply(call, FP_ERR_IN_USE, NULL, 0);
            return;
        }
        status = lease_take(svc, r, call->req->key);
        if (status != FP_OK) {
            meta_reply(call, status, NULL, 0);
            return;
        }
    }
    reply_desc(call, r, (req.flags & FP_POOL_OPEN_WRITE) != 0);
}

static void handle_map(const meta_call_t *call)
{
    fp_meta_service_t *svc = call->svc;
    fp_pool_map_entry_t *entries;
    fp_pool_map_req_t req;
    uint8_t buf[FP_PROTO_MAX_CONTROL];
    meta_region_t *r;
    uint32_t n;
    fp_status_t status;

    status = fp_pool_map_req_decode(call->req->payload, call->req->len, &req);
    if (status != FP_OK) {
        meta_reply(call, status, NULL, 0);
        return;
    }
    r = meta_region_by_id(svc, req.region);
    if (r == NULL) {
        meta_reply(call, FP_ERR_NO_ENTRY, NULL, 0);
        return;
    }
    if (req.first >= r->rec.nslabs || req.count > r->rec.nslabs - req.first ||
        (uint64_t)req.count * r->rec.replicas > FP_POOL_MAP_PAGE) {
        meta_reply(call, FP_ERR_OUT_OF_RANGE, NULL, 0);
        return;
    }
    n = req.count * r->rec.replicas;
    entries = calloc(n, sizeof(*entries));
    if (entries == NULL) {
        meta_reply(call, FP_ERR_NO_MEMORY, NULL, 0);
        return;
    }
    /* Each slab's readable copies, in member order; the rest 0. */
    for (size_t i = 0; i < r->nreps; i++) {
        const fp_meta_replica_t *rep = &r->reps[i];
        const meta_node_t *node = meta_node_by_id(svc, rep->node);
        fp_pool_map_entry_t *slot;

        if (rep->index < req.first || rep->index >= req.first + req.count ||
            rep->state != FP_META_REPLICA_OK || node == NULL || !meta_node_usable(node))
            continue;
        slot = &entries[(size_t)(rep->index - req.first) * r->rec.replicas];
        for (uint32_t k = 0; k < r->rec.replicas; k++) {
            if (slot[k].member == 0) {
                slot[k].member = rep->node;
                slot[k].slab = rep->slab;
                break;
            }
        }
    }
    meta_reply(call, FP_OK, buf, fp_pool_map_rep_encode(entries, n, buf, sizeof(buf)));
    free(entries);
}

static void handle_delete(const meta_call_t *call)
{
    fp_meta_service_t *svc = call->svc;
    fp_proto_region_name_t name;
    meta_region_t *r;
    fp_status_t status;

    status = fp_pool_name_req_decode(call->req->payload, call->req->len, &name);
    if (status != FP_OK) {
        meta_reply(call, status, NULL, 0);
        return;
    }
    r = region_by_name(svc, name.text);
    if (r == NULL) {
        meta_reply(call, FP_ERR_NO_ENTRY, NULL, 0);
        return;
    }
    if (meta_region_leased(r, fp_wall_ms()) &&
        memcmp(r->rec.lease_holder, call->req->key, sizeof(r->rec.lease_holder)) != 0) {
        meta_reply(call, FP_ERR_IN_USE, NULL, 0);
        return;
    }
    status = meta_region_destroy(svc, r);
    if (status == FP_OK)
        fp_info(svc->log, "pool: deleted region %s", name.text);
    meta_reply(call, status, NULL, 0);
}

/* The region whose lease @lease the caller holds, or NULL. */
static meta_region_t *leased_by(fp_meta_service_t *svc, uint64_t region, uint64_t lease,
                                const uint8_t *key)
{
    meta_region_t *r = meta_region_by_id(svc, region);

    if (r == NULL || lease == 0 || r->rec.lease_id != lease ||
        memcmp(r->rec.lease_holder, key, sizeof(r->rec.lease_holder)) != 0)
        return NULL;
    return r;
}

static void handle_commit(const meta_call_t *call)
{
    fp_meta_service_t *svc = call->svc;
    fp_pool_commit_req_t req;
    fp_meta_region_t rec;
    meta_region_t *r;
    fp_status_t status;

    status = fp_pool_commit_req_decode(call->req->payload, call->req->len, &req);
    if (status != FP_OK) {
        meta_reply(call, status, NULL, 0);
        return;
    }
    r = leased_by(svc, req.region, req.lease, call->req->key);
    if (r == NULL) {
        meta_reply(call, FP_ERR_NO_ENTRY, NULL, 0);
        return;
    }
    if (r->rec.state == FP_META_REGION_PENDING && region_by_name(svc, r->rec.name) != NULL) {
        meta_reply(call, FP_ERR_EXISTS, NULL, 0);
        return;
    }
    rec = r->rec;
    rec.state = FP_META_REGION_READY;
    rec.has_checksum = req.has_checksum != 0;
    memcpy(rec.checksum, req.checksum, sizeof(rec.checksum));
    status = svc->store->ops->region_update(svc->store, &rec);
    if (status == FP_OK) {
        if (r->rec.state == FP_META_REGION_PENDING)
            fp_info(svc->log, "pool: published region %s", rec.name);
        r->rec = rec;
    }
    meta_reply(call, status, NULL, 0);
}

static void handle_lease(const meta_call_t *call)
{
    fp_meta_service_t *svc = call->svc;
    fp_pool_lease_req_t req;
    fp_meta_region_t rec;
    meta_region_t *r;
    fp_status_t status;

    status = fp_pool_lease_req_decode(call->req->payload, call->req->len, &req);
    if (status != FP_OK) {
        meta_reply(call, status, NULL, 0);
        return;
    }
    r = leased_by(svc, req.region, req.lease, call->req->key);
    if (r == NULL) {
        meta_reply(call, FP_ERR_NO_ENTRY, NULL, 0);
        return;
    }
    if (req.op == FP_POOL_LEASE_RELEASE && r->rec.state == FP_META_REGION_PENDING) {
        /* A put given up: its region goes (and with it, in the store, its writer's key). */
        if (store_leases(svc))
            (void)svc->store->ops->writer_release(svc->store, r->rec.id, r->rec.lease_id);
        meta_reply(call, meta_region_destroy(svc, r), NULL, 0);
        return;
    }
    if (store_leases(svc)) {
        int ttl_ms = 0;

        /* A renewal is the store's (etcd: a keepalive), and so is the end of a lease. */
        if (req.op == FP_POOL_LEASE_RELEASE) {
            status = svc->store->ops->writer_release(svc->store, r->rec.id, r->rec.lease_id);
            if (status == FP_OK)
                meta_region_lease_clear(&r->rec);
        } else {
            status = svc->store->ops->writer_renew(svc->store, r->rec.id, r->rec.lease_id, &ttl_ms);
            if (status == FP_OK)
                r->rec.lease_expires_ms = fp_wall_ms() + (uint64_t)ttl_ms;
            else if (status == FP_ERR_NO_ENTRY)
                meta_region_lease_clear(
                    &r->rec); /* over in the store: the same answer as a lease that ran out */
        }
        meta_reply(call, status, NULL, 0);
        return;
    }
    rec = r->rec;
    if (req.op == FP_POOL_LEASE_RELEASE) {
        meta_region_lease_clear(&rec);
    } else {
        rec.lease_expires_ms = fp_wall_ms() + (uint64_t)svc->params.lease_ttl_ms;
    }
    status = svc->store->ops->region_update(svc->store, &rec);
    if (status == FP_OK)
        r->rec = rec;
    meta_reply(call, status, NULL, 0);
}

static void handle_regions(const meta_call_t *call)
{
    fp_meta_service_t *svc = call->svc;
    fp_pool_region_desc_t *entries;
    fp_pool_list_req_t req;
    uint8_t buf[FP_PROTO_MAX_CONTROL];
    uint32_t count = 0, written = 0, len;
    fp_status_t status;

    status = fp_pool_list_req_decode(call->req->payload, call->req->len, &req);
    if (status != FP_OK) {
        meta_reply(call, status, NULL, 0);
        return;
    }
    entries = calloc(FP_POOL_LIST_MAX, sizeof(*entries));
    if (entries == NULL) {
        meta_reply(call, FP_ERR_NO_MEMORY, NULL, 0);
        return;
    }
    for (size_t i = req.first; i < svc->nregions && count < FP_POOL_LIST_MAX; i++)
        desc_fill(svc, svc->regions[i], false, &entries[count++]);
    len = fp_pool_regions_rep_encode((uint32_t)svc->nregions, entries, count, buf, sizeof(buf),
                                     &written);
    free(entries);
    meta_reply(call, len > 0 ? FP_OK : FP_ERR_TOO_LARGE, buf, len);
}

static void handle_stale(const meta_call_t *call)
{
    fp_meta_service_t *svc = call->svc;
    fp_pool_stale_req_t req;
    meta_region_t *r;
    fp_status_t status;

    status = fp_pool_stale_req_decode(call->req->payload, call->req->len, &req);
    if (status != FP_OK) {
        meta_reply(call, status, NULL, 0);
        return;
    }
    r = meta_region_by_id(svc, req.region);
    if (r == NULL || req.index >= r->rec.nslabs) {
        meta_reply(call, FP_ERR_NO_ENTRY, NULL, 0);
        return;
    }
    if (!meta_region_leased(r, fp_wall_ms()) ||
        memcmp(r->rec.lease_holder, call->req->key, sizeof(r->rec.lease_holder)) != 0) {
        meta_reply(call, FP_ERR_PERMISSION, NULL, 0); /* only the writer writes back */
        return;
    }
    for (size_t i = 0; i < r->nreps; i++) {
        const meta_node_t *n = meta_node_by_id(svc, r->reps[i].node);
        fp_meta_replica_t rep = r->reps[i];

        if (rep.index != req.index || n == NULL || !meta_node_usable(n) ||
            strcmp(n->rec.addr, req.addr) != 0)
            continue;
        if (meta_region_good_copies(svc, r, req.index) < 2) {
            meta_reply(call, FP_ERR_IN_USE, NULL, 0); /* the last copy: keep it */
            return;
        }
        status = svc->store->ops->replica_delete(svc->store, rep.region, rep.index, rep.node);
        if (status == FP_OK) {
            farpool_node_t *conn;

            meta_region_drop_rep(svc, r, i);
            if (meta_connect(svc, n, r->rec.key, &conn) == FP_OK) {
                (void)farpool_slab_free(conn, rep.slab);
                farpool_node_close(conn);
            }
            fp_warn(svc->log,
                    "pool: region %s: the copy of slab %" PRIu32 " on %s missed a "
                    "write: dropped, to be made again",
                    r->rec.name, req.index, req.addr);
        }
        meta_reply(call, status, NULL, 0);
        return;
    }
    meta_reply(call, FP_OK, NULL, 0); /* gone already */
}

void meta_handle_region(const meta_call_t *call)
{
    switch (call->req->op) {
    case FP_OP_POOL_CREATE:
        handle_create(call);
        break;
    case FP_OP_POOL_OPEN:
        handle_open(call);
        break;
    case FP_OP_POOL_MAP:
        handle_map(call);
        break;
    case FP_OP_POOL_DELETE:
        handle_delete(call);
        break;
    case FP_OP_POOL_COMMIT:
        handle_commit(call);
        break;
    case FP_OP_POOL_LEASE:
        handle_lease(call);
        break;
    case FP_OP_POOL_REGIONS:
        handle_regions(call);
        break;
    case FP_OP_POOL_STALE:
        handle_stale(call);
        break;
    default:
        meta_reply(call, FP_ERR_UNSUPPORTED, NULL, 0);
        break;
    }
}
