/* SPDX-License-Identifier: MIT */
/*
 * Contexts and regions: the public farpool_context_*, farpool_region_* and
 * farpool_map/sync/unmap API. A context holds a control connection to its
 * first node (region metadata) and the cache budget; each mapped region runs a
 * fault engine (engine.c) with a connection of its own.
 */
#include <farpool/farpool.h>

#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/abi.h"
#include "common/log.h"
#include "engine.h"
#include "proto/proto.h"
#include "region_meta.h"

#define DEFAULT_CACHE_BYTES (1ull << 30)
#define MAX_NODES           64

struct farpool_context {
    fp_log_t log; /* from the parameters; shared by the context's connections and engines */
    char *nodes[MAX_NODES];
    size_t nnodes;
    char secret_file[PATH_MAX];
    farpool_node_params_t np;
    farpool_node_t *ctl; /* control connection to nodes[0] */
    fp_budget_t budget;  /* the cache budget its regions share */
    bool readahead;
    bool prefault;
    farpool_region_t *regions;
};

struct farpool_region {
    farpool_context_t *ctx;
    farpool_region_t *next;
    char name[FP_REGION_NAME_MAX + 1];
    uint64_t size;
    uint32_t granule;
    uint32_t flags;
    fp_engine_t *engine; /* NULL while not mapped */
    void *addr;
};

fp_status_t farpool_context_create(const farpool_context_params_t *params,
                                   farpool_context_t **ctx_p)
{
    uint64_t mask = params != NULL ? params->field_mask : 0;
    const char *secret_file = NULL;
    farpool_context_t *ctx;
    fp_status_t status;

    fp_log_t log;

    fp_log_init_params(&log, "farpool", (mask & FARPOOL_CONTEXT_PARAM_LOG) != 0,
                       (mask & FARPOOL_CONTEXT_PARAM_LOG) ? params->log_level : FARPOOL_LOG_WARN,
                       (mask & FARPOOL_CONTEXT_PARAM_LOG) ? params->log_func : NULL,
                       (mask & FARPOOL_CONTEXT_PARAM_LOG) ? params->log_arg : NULL);
    if (ctx_p == NULL || !(mask & FARPOOL_CONTEXT_PARAM_NODES) || params->nodes == NULL ||
        params->nnodes == 0 || params->nnodes > MAX_NODES) {
        fp_error(&log, "a context needs 1 to %d memory nodes", MAX_NODES);
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
    for (size_t i = 0; i < params->nnodes; i++) {
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
    farpool_node_close(ctx->ctl);
    for (size_t i = 0; i < ctx->nnodes; i++)
        free(ctx->nodes[i]);
    fp_budget_cleanup(&ctx->budget);
    free(ctx);
}

static fp_status_t region_new(farpool_context_t *ctx, const fp_region_info_t *info,
                              const char *name, uint32_t flags, farpool_region_t **region_p)
{
    farpool_region_t *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return FP_ERR_NO_MEMORY;
    r->ctx = ctx;
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->size = info->size;
    r->granule = info->granule;
    r->flags = flags;
    r->next = ctx->regions;
    ctx->regions = r;
    *region_p = r;
    return FP_OK;
}

fp_status_t farpool_region_create(farpool_context_t *ctx, const char *name, uint64_t size,
                                  uint32_t granule, farpool_region_t **region_p)
{
    fp_region_info_t info;
    fp_status_t status;

    if (ctx == NULL || name == NULL || region_p == NULL)
        return FP_ERR_INVALID_PARAM;
    if (granule == 0)
        granule = FARPOOL_GRANULE_DEFAULT;
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
    status = fp_region_meta_open(ctx->ctl, name, &info);
    if (status != FP_OK)
        return status;
    status = region_new(ctx, &info, name, flags, region_p);
    fp_region_info_cleanup(&info);
    return status;
}

fp_status_t farpool_region_delete(farpool_context_t *ctx, const char *name)
{
    if (ctx == NULL || name == NULL)
        return FP_ERR_INVALID_PARAM;
    for (farpool_region_t *r = ctx->regions; r != NULL; r = r->next) {
        if (strcmp(r->name, name) == 0) {
            fp_error(&ctx->log, "region %s is open in this context; close it first", name);
            return FP_ERR_IN_USE;
        }
    }
    return fp_region_meta_delete(ctx->ctl, name);
}

fp_status_t farpool_map(farpool_region_t *region, void **addr_p)
{
    farpool_context_t *ctx;
    fp_engine_params_t ep;
    fp_status_t status;

    if (region == NULL || addr_p == NULL)
        return FP_ERR_INVALID_PARAM;
    if (region->engine != NULL) {
        *addr_p = region->addr;
        return FP_OK;
    }
    ctx = region->ctx;
    memset(&ep, 0, sizeof(ep));
    ep.node_addr = ctx->nodes[0];
    ep.np = &ctx->np;
    ep.region_name = region->name;
    ep.readonly = (region->flags & FARPOOL_REGION_READONLY) != 0;
    ep.budget = &ctx->budget;
    ep.readahead = ctx->readahead;
    ep.prefault = ctx->prefault;
    ep.log = &ctx->log;
    status = fp_engine_start(&ep, &region->engine, &region->addr);
    if (status != FP_OK)
        return status;
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
    return FP_OK;
}

void farpool_region_close(farpool_region_t *region)
{
    farpool_region_t **pp;

    if (region == NULL)
        return;
    fp_engine_stop(region->engine, true);
    region->engine = NULL;
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
