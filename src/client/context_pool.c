/* SPDX-License-Identifier: MIT */
/*
 * The pool side of contexts and regions (context_int.h): a context of a pool
 * talks to its metadata node to create, open and delete regions, builds each
 * mapped region's map from the metadata, and keeps the writer leases it holds
 * alive.
 *
 * The lease keeper. A writer lease lasts the pool's lease TTL unless renewed;
 * a thread per context renews every lease the context holds at a third of
 * that, on a connection of its own (ctl belongs to the application's calls),
 * with the context's client key, which is what names the holder. When the
 * metadata node is away (restarting) it reconnects and renews on return; the
 * stored lease outlives the restart. A lease the pool says is lost is
 * dropped and logged: the region's writes may race another writer from then
 * on. When the process dies, renewals stop and the lease runs out: another
 * writer may then open the region, and an unpublished region is dropped.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context_int.h"
#include "node.h"
#include "pool.h"

#include "common/time.h"
#include "common/worker.h"

#define KEEPER_MAX     256
#define KEEPER_MIN_MS  200
#define KEEPER_IDLE_MS 1000

typedef struct keeper_lease {
    uint64_t region, lease;
    char name[FP_PROTO_REGION_NAME_MAX + 1];
} keeper_lease_t;

struct fp_lease_keeper {
    farpool_context_t *ctx;
    fp_worker_t worker;
    keeper_lease_t leases[KEEPER_MAX]; /* guarded by worker.lock */
    unsigned nleases;                  /* guarded by worker.lock */
    int period_ms;                     /* guarded by worker.lock: a third of the shortest TTL */
    farpool_node_t *meta;              /* the thread's own */
};

/*
 * A connection to the pool's metadata service, where its URL says it is now
 * (an etcd pool's service is looked up again each time).
 */
static fp_status_t meta_connect(farpool_context_t *ctx, farpool_node_t **node_p)
{
    char addr[FP_POOL_ADDR_MAX + 1];
    fp_status_t status = fp_pool_url_resolve(ctx->pool_url, &ctx->log, addr, sizeof(addr));

    return status != FP_OK ? status : farpool_node_connect(addr, &ctx->np, node_p);
}

static void keeper_add(fp_lease_keeper_t *k, const farpool_region_t *r)
{
    int period = (int)(r->desc.lease_ttl_ms / 3);

    pthread_mutex_lock(&k->worker.lock);
    if (k->nleases < KEEPER_MAX) {
        keeper_lease_t *l = &k->leases[k->nleases++];

        l->region = r->desc.id;
        l->lease = r->lease;
        snprintf(l->name, sizeof(l->name), "%s", r->name);
    } else {
        fp_warn(&k->ctx->log, "region %s: over %d leases held; this one is not renewed", r->name,
                KEEPER_MAX);
    }
    if (period < KEEPER_MIN_MS)
        period = KEEPER_MIN_MS;
    if (period < k->period_ms)
        k->period_ms = period;
    fp_worker_kick(&k->worker);
    pthread_mutex_unlock(&k->worker.lock);
}

/* Forget a lease; false if it was not held (any more). */
static bool keeper_remove(fp_lease_keeper_t *k, uint64_t region, uint64_t lease)
{
    bool found = false;

    pthread_mutex_lock(&k->worker.lock);
    for (unsigned i = 0; i < k->nleases && !found; i++) {
        if (k->leases[i].region == region && k->leases[i].lease == lease) {
            k->leases[i] = k->leases[--k->nleases];
            found = true;
        }
    }
    pthread_mutex_unlock(&k->worker.lock);
    return found;
}

/* Renew every lease once; reconnect first if needed. */
static void keeper_round(fp_lease_keeper_t *k)
{
    keeper_lease_t copy[KEEPER_MAX];
    unsigned n;

    pthread_mutex_lock(&k->worker.lock);
    n = k->nleases;
    memcpy(copy, k->leases, n * sizeof(copy[0]));
    pthread_mutex_unlock(&k->worker.lock);
    if (n == 0)
        return;
    if (k->meta == NULL && meta_connect(k->ctx, &k->meta) != FP_OK)
        return; /* logged; tried again next round */
    for (unsigned i = 0; i < n; i++) {
        fp_status_t status =
            fp_pool_lease(k->meta, copy[i].region, copy[i].lease, FP_POOL_LEASE_RENEW);

        if (status == FP_ERR_NO_ENTRY) {
            /* Unless the region was closed or deleted meanwhile (its lease let go). */
            if (keeper_remove(k, copy[i].region, copy[i].lease))
                fp_error(&k->ctx->log,
                         "region %s: the pool says our writer lease is lost (it ran out); "
                         "another writer may open it now",
                         copy[i].name);
        } else if (status != FP_OK) {
            farpool_node_close(k->meta); /* the metadata node is away: reconnect next time */
            k->meta = NULL;
            return;
        }
    }
}

/*
 * Renew every period from the first lease on; a new lease with a shorter TTL
 * brings the next round forward, but a new lease never puts it off.
 */
static void *keeper_main(void *arg)
{
    fp_lease_keeper_t *k = arg;
    uint64_t next = 0; /* when the next round is due; 0: no lease to renew */

    pthread_mutex_lock(&k->worker.lock);
    while (!k->worker.stopping) {
        uint64_t now = fp_time_ns(), period = (uint64_t)k->period_ms * FP_NS_PER_MS;
        int ms = KEEPER_IDLE_MS;

        if (k->nleases == 0) {
            next = 0;
        } else {
            if (next == 0 || next > now + period)
                next = now + period;
            if (now >= next) {
                pthread_mutex_unlock(&k->worker.lock);
                keeper_round(k);
                pthread_mutex_lock(&k->worker.lock);
                next = fp_time_ns() + period;
                continue;
            }
            ms = (int)((next - now + FP_NS_PER_MS - 1) / FP_NS_PER_MS);
        }
        fp_worker_wait_locked(&k->worker, ms);
    }
    pthread_mutex_unlock(&k->worker.lock);
    farpool_node_close(k->meta);
    return NULL;
}

fp_status_t fp_ctx_pool_connect(farpool_context_t *ctx, const char *url)
{
    fp_lease_keeper_t *k;
    fp_status_t status;

    status = fp_pool_url_check(url);
    if (status != FP_OK) {
        fp_error(&ctx->log,
                 "invalid pool '%s': expected farpool://HOST:PORT or "
                 "etcd://HOST:PORT[,HOST:PORT...]/PREFIX",
                 url);
        return status;
    }
    ctx->pool_url = strdup(url);
    if (ctx->pool_url == NULL)
        return FP_ERR_NO_MEMORY;
    ctx->pool = true;
    status = meta_connect(ctx, &ctx->ctl);
    if (status != FP_OK) {
        free(ctx->pool_url);
        ctx->pool_url = NULL;
        return status;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL) {
        farpool_node_close(ctx->ctl);
        return FP_ERR_NO_MEMORY;
    }
    k->ctx = ctx;
    k->period_ms = INT32_MAX;
    if (fp_worker_start(&k->worker, "fp:lease", keeper_main, k) != FP_OK) {
        fp_error(&ctx->log, "cannot start the lease keeper: %s", strerror(errno));
        free(k);
        farpool_node_close(ctx->ctl);
        return FP_ERR_IO;
    }
    ctx->keeper = k;
    return FP_OK;
}

void fp_ctx_pool_disconnect(farpool_context_t *ctx)
{
    fp_lease_keeper_t *k = ctx->keeper;

    free(ctx->pool_url);
    ctx->pool_url = NULL;
    if (k == NULL)
        return;
    fp_worker_stop(&k->worker);
    free(k);
    ctx->keeper = NULL;
}

fp_status_t fp_ctx_pool_ctl(farpool_context_t *ctx)
{
    return ctx->ctl != NULL ? FP_OK : meta_connect(ctx, &ctx->ctl);
}

bool fp_ctx_pool_ctl_broken(farpool_context_t *ctx, fp_status_t status)
{
    if (status != FP_ERR_NOT_CONNECTED || ctx->ctl == NULL)
        return false;
    farpool_node_close(ctx->ctl);
    ctx->ctl = NULL;
    return true;
}

/* Fill @r from @desc, and keep its lease if it has one. */
static void region_take(farpool_context_t *ctx, farpool_region_t *r,
                        const fp_pool_region_desc_t *desc)
{
    r->desc = *desc;
    r->size = desc->size;
    r->granule = desc->granule;
    r->lease = desc->lease_id;
    if (r->lease != 0)
        keeper_add(ctx->keeper, r);
}

/* Say what the pool has free, for a region that does not fit. */
static void say_free(farpool_context_t *ctx, const char *name, uint64_t size, uint32_t replicas)
{
    fp_pool_node_entry_t *nodes;
    uint64_t free_bytes = 0;
    size_t n = 0, live = 0;

    fp_status_t status;

    FP_CTX_CTL_CALL(ctx, status, fp_pool_nodes(ctx->ctl, &nodes, &n));
    if (status != FP_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        if (nodes[i].state != FP_POOL_NODE_LIVE)
            continue;
        live++;
        free_bytes += nodes[i].capacity > nodes[i].used ? nodes[i].capacity - nodes[i].used : 0;
    }
    fp_error(&ctx->log,
             "region %s: the pool cannot hold %" PRIu64 " MiB %s: %" PRIu64
             " MiB free over %zu live nodes",
             name, size >> 20,
             replicas == 0   ? "with its default copies"
             : replicas == 1 ? "once"
                             : "per copy",
             free_bytes >> 20, live);
    free(nodes);
}

fp_status_t fp_ctx_pool_create(farpool_context_t *ctx, const char *name, uint64_t size,
                               uint32_t granule, uint32_t replicas, uint32_t flags,
                               farpool_region_t *r)
{
    fp_pool_region_desc_t desc;
    uint32_t wire = 0;
    fp_status_t status;

    if (flags & FARPOOL_REGION_FIXED)
        wire |= FP_POOL_REGION_FIXED;
    if (flags & FARPOOL_REGION_UNPUBLISHED)
        wire |= FP_POOL_REGION_PENDING;
    FP_CTX_CTL_CALL(ctx, status,
                    fp_pool_create(ctx->ctl, name, size, granule, wire, replicas, &desc));
    if (status == FP_ERR_NO_SPACE)
        say_free(ctx, name, size, replicas);
    else if (status == FP_ERR_INVALID_PARAM && replicas > 1)
        fp_error(&ctx->log,
                 "region %s: the pool cannot keep %" PRIu32 " copies (too few live "
                 "nodes, or a granule over its slab size)",
                 name, replicas);
    if (status != FP_OK)
        return status;
    region_take(ctx, r, &desc);
    return FP_OK;
}

fp_status_t fp_ctx_pool_open(farpool_context_t *ctx, const char *name, uint32_t flags,
                             farpool_region_t *r)
{
    fp_pool_region_desc_t desc;
    fp_status_t status;

    FP_CTX_CTL_CALL(ctx, status,
                    fp_pool_open(ctx->ctl, name,
                                 (flags & FARPOOL_REGION_READONLY) ? 0 : FP_POOL_OPEN_WRITE,
                                 &desc));
    if (status == FP_ERR_IN_USE)
        fp_error(&ctx->log,
                 "region %s has a writer already; open it read-only, or wait until "
                 "the writer closes it",
                 name);
    if (status != FP_OK)
        return status;
    region_take(ctx, r, &desc);
    /* Its map for farpool_region_pread/pwrite now, not at their first call:
     * a handle that opened reads and writes while the metadata is away. (If
     * this fails, the first call asks again, and fails loudly then. A mapping
     * asks for a map of its own, as fresh as can be.) */
    (void)fp_region_io_open(r);
    return FP_OK;
}

fp_status_t fp_ctx_pool_publish(farpool_region_t *r, const uint8_t *checksum)
{
    fp_status_t status;

    if (r->lease == 0)
        return FP_ERR_PERMISSION;
    FP_CTX_CTL_CALL(r->ctx, status, fp_pool_commit(r->ctx->ctl, r->desc.id, r->lease, checksum));
    if (status == FP_OK) {
        r->desc.state = 1; /* ready */
        r->desc.has_checksum = checksum != NULL;
        if (checksum != NULL)
            memcpy(r->desc.checksum, checksum, sizeof(r->desc.checksum));
    }
    return status;
}

fp_status_t fp_ctx_pool_map(farpool_region_t *r, fp_region_map_t *map_p)
{
    fp_pool_remap_t *rm;
    fp_status_t status;

    FP_CTX_CTL_CALL(r->ctx, status, fp_pool_region_map(r->ctx->ctl, &r->desc, map_p));
    if (status != FP_OK)
        return status;
    rm = calloc(1, sizeof(*rm));
    if (rm == NULL) {
        fp_region_map_cleanup(map_p);
        return FP_ERR_NO_MEMORY;
    }
    rm->ctx = r->ctx;
    rm->region_id = r->desc.id;
    rm->desc = r->desc;
    r->remap = rm;
    return FP_OK;
}

/* The engine thread's connection to the metadata node, made on first use. */
static fp_status_t remap_meta(fp_pool_remap_t *rm)
{
    return rm->meta != NULL ? FP_OK : meta_connect(rm->ctx, &rm->meta);
}

/* After a call on it: a broken connection is made again next time. */
static fp_status_t remap_done(fp_pool_remap_t *rm, fp_status_t status)
{
    if (status == FP_ERR_NOT_CONNECTED || status == FP_ERR_TIMED_OUT) {
        farpool_node_close(rm->meta);
        rm->meta = NULL;
    }
    return status;
}

fp_status_t fp_ctx_pool_remap(void *arg, fp_region_map_t *map_p)
{
    fp_pool_remap_t *rm = arg;
    fp_status_t status = remap_meta(rm);

    return status != FP_OK ? status
                           : remap_done(rm, fp_pool_region_map(rm->meta, &rm->desc, map_p));
}

fp_status_t fp_ctx_pool_stale(void *arg, uint32_t slab, const char *addr)
{
    fp_pool_remap_t *rm = arg;
    fp_status_t status = remap_meta(rm);

    if (status != FP_OK)
        return status;
    status = remap_done(rm, fp_pool_stale(rm->meta, rm->region_id, slab, addr));
    if (status == FP_ERR_IN_USE)
        status = FP_OK; /* the pool's last copy of that slab: it keeps it */
    return status;
}

void fp_ctx_pool_unmapped(farpool_region_t *r)
{
    if (r->remap == NULL)
        return;
    farpool_node_close(r->remap->meta);
    free(r->remap);
    r->remap = NULL;
}

void fp_ctx_pool_close(farpool_region_t *r)
{
    fp_status_t status;

    fp_ctx_pool_unmapped(r);
    if (r->lease == 0)
        return;
    keeper_remove(r->ctx->keeper, r->desc.id, r->lease);
    for (farpool_region_t *o = r->ctx->regions; o != NULL; o = o->next) {
        if (o != r && o->lease == r->lease && o->desc.id == r->desc.id) {
            r->lease = 0; /* the context holds it still, through @o */
            return;
        }
    }
    FP_CTX_CTL_CALL(r->ctx, status,
                    fp_pool_lease(r->ctx->ctl, r->desc.id, r->lease, FP_POOL_LEASE_RELEASE));
    if (status != FP_OK && status != FP_ERR_NO_ENTRY)
        fp_warn(&r->ctx->log,
                "region %s: cannot give the writer lease back (%s); it runs out "
                "by itself",
                r->name, fp_status_string(status));
    r->lease = 0;
}
