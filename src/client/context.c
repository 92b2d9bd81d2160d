/* SPDX-License-Identifier: MIT */
/*
 * Contexts and regions: the public farpool_context_*, farpool_region_* and
 * farpool_map/sync/unmap API. A context holds a control connection (to its
 * first node, or to its pool's metadata node: context_pool.c) and the cache
 * budget; each mapped region runs a fault engine (engine.c) with connections
 * of its own to the nodes holding it.
 */
#include <farpool/farpool.h>

#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/abi.h"
#include "common/log.h"
#include "context_int.h"
#include "engine.h"
#include "pool.h"
#include "proto/proto.h"
#include "region_map.h"
#include "region_meta.h"

#define DEFAULT_CACHE_BYTES (1ull << 30)
#define MAX_NODES           FP_CONTEXT_MAX_NODES

fp_status_t farpool_context_create(const farpool_context_params_t *params,
                                   farpool_context_t **ctx_p)
{
    uint64_t mask = params != NULL ? params->field_mask : 0;
    const char *secret_file = NULL, *pool = NULL;
    farpool_context_t *ctx;
    fp_status_t status;

    fp_log_t log;

    fp_log_init_params(&log, "farpool", (mask & FARPOOL_CONTEXT_PARAM_LOG) != 0,
                       (mask & FARPOOL_CONTEXT_PARAM_LOG) ? params->log_level : FARPOOL_LOG_WARN,
                       (mask & FARPOOL_CONTEXT_PARAM_LOG) ? params->log_func : NULL,
                       (mask & FARPOOL_CONTEXT_PARAM_LOG) ? params->log_arg : NULL);
    if ((mask & FARPOOL_CONTEXT_PARAM_POOL) && params->pool != NULL)
        pool = params->pool;
    else if (!(mask & FARPOOL_CONTEXT_PARAM_NODES) && getenv("FARPOOL_POOL") != NULL &&
             getenv("FARPOOL_POOL")[0] != '\0')
        pool = getenv("FARPOOL_POOL");
    if (ctx_p == NULL ||
        (pool == NULL && (!(mask & FARPOOL_CONTEXT_PARAM_NODES) || params->nodes == NULL ||
                          params->nnodes == 0 || params->nnodes > MAX_NODES)) ||
        (pool != NULL && (mask & FARPOOL_CONTEXT_PARAM_NODES) && params->nnodes > 0)) {
        fp_error(&log,
                 "a context needs a pool (or $FARPOOL_POOL) or 1 to %d memory nodes, "
                 "not both",
                 MAX_NODES);
        return FP_ERR_INVALID_PARAM;
    }
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return FP_ERR_NO_MEMORY;
    ctx->log = log;
    fp_budget_init(&ctx->budget,
                   (mask & FARPOOL_CONTEXT_PARAM_CACHE_BYTES) && params->cache_bytes > 0
                       ? params->cache_bytes
                       : DEFAULT_CACHE_BYTES);
    /* Its connections log the same way. */
    ctx->np.field_mask |= FARPOOL_NODE_PARAM_LOG;
    ctx->np.log_level = (farpool_log_level_t)log.level;
    ctx->np.log_func = log.func;
    ctx->np.log_arg = log.arg;
    for (size_t i = 0; pool == NULL && i < params->nnodes; i++) {
        ctx->nodes[i] = strdup(params->nodes[i]);
        if (ctx->nodes[i] == NULL) {
            status = FP_ERR_NO_MEMORY;
            goto err_free;
        }
        ctx->nnodes++;
    }
    ctx->readahead = !(mask & FARPOOL_CONTEXT_PARAM_READAHEAD) || params->readahead != 0;
    ctx->prefault = (mask & FARPOOL_CONTEXT_PARAM_PREFAULT) && params->prefault != 0;

    if ((mask & FARPOOL_CONTEXT_PARAM_SECRET_FILE) && params->secret_file != NULL)
        secret_file = params->secret_file;
    else if (getenv("FARPOOL_SECRET_FILE") != NULL && getenv("FARPOOL_SECRET_FILE")[0] != '\0')
        secret_file = getenv("FARPOOL_SECRET_FILE");
    if (secret_file != NULL) {
        snprintf(ctx->secret_file, sizeof(ctx->secret_file), "%s", secret_file);
        ctx->np.field_mask |= FARPOOL_NODE_PARAM_SECRET_FILE;
        ctx->np.secret_file = ctx->secret_file;
    }
    if ((mask & FARPOOL_CONTEXT_PARAM_TIMEOUT) && params->timeout_ms > 0) {
        ctx->np.field_mask |= FARPOOL_NODE_PARAM_TIMEOUT;
        ctx->np.timeout_ms = params->timeout_ms;
    }
    /* One identity for all of the context's connections. */
    status = fp_proto_random(ctx->np.client_key, sizeof(ctx->np.client_key));
    if (status != FP_OK)
        goto err_free;
    ctx->np.field_mask |= FARPOOL_NODE_PARAM_CLIENT_KEY;

    if (pool != NULL)
        status = fp_ctx_pool_connect(ctx, pool);
    else
        status = farpool_node_connect(ctx->nodes[0], &ctx->np, &ctx->ctl);
    if (status != FP_OK)
        goto err_free;
    *ctx_p = ctx;
    return FP_OK;

err_free:
    for (size_t i = 0; i < ctx->nnodes; i++)
        free(ctx->nodes[i]);
    fp_budget_cleanup(&ctx->budget);
    free(ctx);
    return status;
}

void farpool_context_destroy(farpool_context_t *ctx)
{
    if (ctx == NULL)
        return;
    while (ctx->regions != NULL)
        farpool_region_close(ctx->regions);
    fp_ctx_pool_disconnect(ctx);
    farpool_node_close(ctx->ctl);
    for (size_t i = 0; i < ctx->nnodes; i++)
        free(ctx->nodes[i]);
    fp_budget_cleanup(&ctx->budget);
    free(ctx);
}

static farpool_region_t *region_alloc(farpool_context_t *ctx, const char *name, uint32_t flags)
{
    farpool_region_t *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->ctx = ctx;
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->flags = flags;
    return r;
}

static void region_link(farpool_region_t *r, farpool_region_t **region_p)
{
    r->next = r->ctx->regions;
    r->ctx->regions = r;
    *region_p = r;
}

static fp_status_t region_new(farpool_context_t *ctx, const fp_region_info_t *info,
                              const char *name, uint32_t flags, farpool_region_t **region_p)
{
    farpool_region_t *r = region_alloc(ctx, name, flags);

    if (r == NULL)
        return FP_ERR_NO_MEMORY;
    r->size = info->size;
    r->granule = info->granule;
    region_link(r, region_p);
    return FP_OK;
}

fp_status_t farpool_region_create(farpool_context_t *ctx, const char *name, uint64_t size,
                                  uint32_t granule, farpool_region_t **region_p)
{
    farpool_region_params_t params = {.field_mask = FARPOOL_REGION_PARAM_GRANULE,
                                      .granule = granule};

    return farpool_region_create_ex(ctx, name, size, &params, region_p);
}

fp_status_t farpool_region_create_ex(farpool_context_t *ctx, const char *name, uint64_t size,
                                     const farpool_region_params_t *params,
                                     farpool_region_t **region_p)
{
    uint64_t mask = params != NULL ? params->field_mask : 0;
    uint32_t granule = (mask & FARPOOL_REGION_PARAM_GRANULE) ? params->granule : 0;
    uint32_t replicas = (mask & FARPOOL_REGION_PARAM_REPLICAS) ? params->replicas : 0;
    uint32_t flags = (mask & FARPOOL_REGION_PARAM_FLAGS) ? params->flags : 0;
    fp_region_info_t info;
    fp_status_t status;

    if (ctx == NULL || name == NULL || region_p == NULL || replicas > FP_MAP_REPLICAS_MAX ||
        (flags & ~(FARPOOL_REGION_FIXED | FARPOOL_REGION_UNPUBLISHED)))
        return FP_ERR_INVALID_PARAM;
    if (granule == 0)
        granule = FARPOOL_GRANULE_DEFAULT;
    if (ctx->pool) {
        farpool_region_t *r = region_alloc(ctx, name, 0);

        if (r == NULL)
            return FP_ERR_NO_MEMORY;
        status = fp_ctx_pool_create(ctx, name, size, granule, replicas, flags, r);
        if (status != FP_OK) {
            free(r);
            return status;
        }
        region_link(r, region_p);
        return FP_OK;
    }
    if (flags != 0 || replicas > 1) {
        fp_error(&ctx->log, "region %s: replicas, FIXED and UNPUBLISHED need a pool", name);
        return FP_ERR_UNSUPPORTED;
    }
    status = fp_region_meta_create(ctx->ctl, name, size, granule, 0, &info);
    if (status != FP_OK)
        return status;
    status = region_new(ctx, &info, name, 0, region_p);
    fp_region_info_cleanup(&info);
    return status;
}

fp_status_t farpool_region_open(farpool_context_t *ctx, const char *name, uint32_t flags,
                                farpool_region_t **region_p)
{
    fp_region_info_t info;
    fp_status_t status;

    if (ctx == NULL || name == NULL || region_p == NULL || (flags & ~FARPOOL_REGION_READONLY))
        return FP_ERR_INVALID_PARAM;
    if (ctx->pool) {
        farpool_region_t *r = region_alloc(ctx, name, flags);

        if (r == NULL)
            return FP_ERR_NO_MEMORY;
        status = fp_ctx_pool_open(ctx, name, flags, r);
        if (status != FP_OK) {
            free(r);
            return status;
        }
        region_link(r, region_p);
        return FP_OK;
    }
    status = fp_region_meta_open(ctx->ctl, name, &info);
    if (status != FP_OK)
        return status;
    status = region_new(ctx, &info, name, flags, region_p);
    fp_region_info_cleanup(&info);
    return status;
}

fp_status_t farpool_region_delete(farpool_context_t *ctx, const char *name)
{
    fp_status_t status;

    if (ctx == NULL || name == NULL)
        return FP_ERR_INVALID_PARAM;
    for (farpool_region_t *r = ctx->regions; r != NULL; r = r->next) {
        if (strcmp(r->name, name) == 0) {
            fp_error(&ctx->log, "region %s is open in this context; close it first", name);
            return FP_ERR_IN_USE;
        }
    }
    if (!ctx->pool)
        return fp_region_meta_delete(ctx->ctl, name);
    FP_CTX_CTL_CALL(ctx, status, fp_pool_delete(ctx->ctl, name));
    return status;
}

fp_status_t farpool_region_publish(farpool_region_t *region, const uint8_t *checksum)
{
    if (region == NULL)
        return FP_ERR_INVALID_PARAM;
    if (!region->ctx->pool)
        return FP_ERR_UNSUPPORTED;
    return fp_ctx_pool_publish(region, checksum);
}

fp_status_t farpool_region_info(farpool_region_t *region, farpool_region_info_t *info_p,
                                size_t info_size)
{
    farpool_region_info_t info;

    if (region == NULL || info_p == NULL || info_size == 0)
        return FP_ERR_INVALID_PARAM;
    memset(&info, 0, sizeof(info));
    info.size = region->size;
    info.granule = region->granule;
    info.replicas = 1;
    if (region->ctx->pool) {
        info.replicas = region->desc.replicas;
        info.flags = (region->desc.flags & FP_POOL_REGION_FIXED) ? FARPOOL_REGION_FIXED : 0;
        info.has_checksum = region->desc.has_checksum;
        memcpy(info.checksum, region->desc.checksum, sizeof(info.checksum));
        info.fixed_addr = region->desc.fixed_addr;
        info.created_ms = region->desc.created_ms;
    }
    fp_copy_out(info_p, info_size, &info, sizeof(info));
    return FP_OK;
}

/* The map of a region of one node: its slabs, all on nodes[0], one copy each. */
fp_status_t fp_ctx_node_region_map(farpool_region_t *region, fp_region_map_t *map_p)
{
    farpool_context_t *ctx = region->ctx;
    fp_region_info_t info;
    fp_status_t status;

    status = fp_region_meta_open(ctx->ctl, region->name, &info);
    if (status != FP_OK)
        return status;
    status = fp_region_map_from_info(&info, region->name, ctx->nodes[0], map_p);
    fp_region_info_cleanup(&info);
    return status;
}

fp_status_t farpool_map(farpool_region_t *region, void **addr_p)
{
    farpool_context_t *ctx;
    fp_engine_params_t ep;
    fp_region_map_t map;
    fp_status_t status;

    if (region == NULL || addr_p == NULL)
        return FP_ERR_INVALID_PARAM;
    if (region->engine != NULL) {
        *addr_p = region->addr;
        return FP_OK;
    }
    ctx = region->ctx;
    status = ctx->pool ? fp_ctx_pool_map(region, &map) : fp_ctx_node_region_map(region, &map);
    if (status != FP_OK)
        return status;
    memset(&ep, 0, sizeof(ep));
    ep.map = &map;
    ep.np = &ctx->np;
    if (region->remap != NULL) {
        ep.remap = fp_ctx_pool_remap;
        ep.stale = fp_ctx_pool_stale;
        ep.remap_arg = region->remap;
    }
    ep.readonly = (region->flags & FARPOOL_REGION_READONLY) != 0;
    ep.budget = &ctx->budget;
    ep.readahead = ctx->readahead;
    ep.prefault = ctx->prefault;
    ep.log = &ctx->log;
    status = fp_engine_start(&ep, &region->engine, &region->addr);
    fp_region_map_cleanup(&map);
    if (status != FP_OK) {
        fp_ctx_pool_unmapped(region);
        return status;
    }
    *addr_p = region->addr;
    return FP_OK;
}

fp_status_t farpool_sync(farpool_region_t *region)
{
    if (region == NULL)
        return FP_ERR_INVALID_PARAM;
    return region->engine != NULL ? fp_engine_sync(region->engine) : FP_OK;
}

fp_status_t farpool_unmap(farpool_region_t *region)
{
    fp_status_t status;

    if (region == NULL)
        return FP_ERR_INVALID_PARAM;
    status = fp_engine_stop(region->engine, false);
    if (status != FP_OK)
        return status; /* still mapped: nothing written is lost */
    region->engine = NULL;
    region->addr = NULL;
    fp_ctx_pool_unmapped(region);
    return FP_OK;
}

void farpool_region_close(farpool_region_t *region)
{
    farpool_region_t **pp;

    if (region == NULL)
        return;
    fp_engine_stop(region->engine, true);
    region->engine = NULL;
    fp_region_io_close(region);
    if (region->ctx->pool)
        fp_ctx_pool_close(region);
    for (pp = &region->ctx->regions; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == region) {
            *pp = region->next;
            break;
        }
    }
    free(region);
}

uint64_t farpool_region_size(const farpool_region_t *region)
{
    return region->size;
}

uint32_t farpool_region_granule(const farpool_region_t *region)
{
    return region->granule;
}

/* Check that [addr, addr+len) lies in mapped @region; its offset in *off_p. */
static fp_status_t region_range(farpool_region_t *region, const void *addr, size_t len,
                                uint64_t *off_p)
{
    uintptr_t a = (uintptr_t)addr, base = (uintptr_t)region->addr;

    if (region->engine == NULL)
        return FP_ERR_INVALID_PARAM;
    if (a < base || a - base > region->size || len > region->size - (a - base))
        return FP_ERR_OUT_OF_RANGE;
    *off_p = a - base;
    return FP_OK;
}

fp_status_t farpool_prefetch(farpool_region_t *region, const void *addr, size_t len)
{
    uint64_t off;
    fp_status_t status;

    if (region == NULL)
        return FP_ERR_INVALID_PARAM;
    status = region_range(region, addr, len, &off);
    return status == FP_OK ? fp_engine_prefetch(region->engine, off, len) : status;
}

fp_status_t farpool_prefetch_wait(farpool_region_t *region)
{
    if (region == NULL || region->engine == NULL)
        return FP_ERR_INVALID_PARAM;
    return fp_engine_prefetch_wait(region->engine);
}

fp_status_t farpool_release(farpool_region_t *region, const void *addr, size_t len)
{
    uint64_t off;
    fp_status_t status;

    if (region == NULL)
        return FP_ERR_INVALID_PARAM;
    status = region_range(region, addr, len, &off);
    return status == FP_OK ? fp_engine_release(region->engine, off, len) : status;
}

fp_status_t fp_region_fence(farpool_region_t *r, const void *addr, size_t len, bool fenced)
{
    uintptr_t a = (uintptr_t)addr;

    if (r == NULL || r->engine == NULL)
        return FP_ERR_INVALID_PARAM;
    if (a < (uintptr_t)r->addr)
        return FP_ERR_OUT_OF_RANGE;
    return fp_engine_fence(r->engine, a - (uintptr_t)r->addr, len, fenced);
}

fp_status_t farpool_region_stats(farpool_region_t *region, farpool_stats_t *stats_p,
                                 size_t stats_size)
{
    farpool_stats_t st;

    if (region == NULL || stats_p == NULL || stats_size == 0)
        return FP_ERR_INVALID_PARAM;
    memset(&st, 0, sizeof(st));
    if (region->engine != NULL)
        fp_engine_stats(region->engine, &st);
    fp_copy_out(stats_p, stats_size, &st, sizeof(st));
    return FP_OK;
}
