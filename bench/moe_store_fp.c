/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench moe`: the farpool store; see moe_store.h.
 *
 * Data. One region per granule holds every expert back to back (expert e at
 * byte e * size). It is created and written through the node's slab API
 * (fp_region_meta_create(), then farpool_slab_write() of each slab range, on
 * MOE_FILL_THREADS connections that each opened the region): that moves the
 * bytes at the loopback's speed without a mapping, a cache or write-back,
 * none of which is being measured.
 *
 * Runs. Each run opens the region read-only in a fresh context whose cache
 * budget is exactly `slots` experts (FARPOOL_CONTEXT_PARAM_CACHE_BYTES; plus
 * --cache-slack, 0 by default) and maps it, so every load comes from the node.
 * The cache's memory is taken at map (FARPOOL_CONTEXT_PARAM_PREFAULT), before
 * the run's clock starts, as the other strategies' expert buffers are written
 * before theirs (moe_slots.c); loads then recycle it. Load = one read per
 * 4 KiB page of the expert, in order (each fault fetches a granule; with read-ahead on, the
 * prefetcher runs ahead of the touch). Unload = farpool_release() of the expert's range. Hint =
 * farpool_prefetch() of the expert's range; the load that follows is the same touch pass, so any
 * wait for blocks still on the wire is inside the measured load time.
 */
#include "moe_store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "client/region_meta.h"
#include "moe_proc.h"
#include "moe_trace.h"

#define FILL_CHUNK (8 * MIB)
#define TIMEOUT_MS 10000

typedef struct fp_store {
    moe_store_t base;
    moe_fp_data_t *data;
    bool readahead, hints;
    uint64_t slack; /* cache bytes beyond the budget (--cache-slack) */
    farpool_context_t *ctx;
    farpool_region_t *region;
    uint8_t *map;
    volatile uint64_t sink;
} fp_store_t;

/* What the fill threads share: one connection each, with the region open on it. */
typedef struct fp_fill {
    moe_fp_data_t *d;
    farpool_node_t *node[MOE_FILL_THREADS];
    fp_region_info_t info[MOE_FILL_THREADS];
} fp_fill_t;

/* Write expert bytes [off, off + len) of the region, across slab boundaries. */
static fp_status_t fp_write_range(moe_fp_data_t *d, farpool_node_t *node,
                                  const fp_region_info_t *info, uint64_t off, const uint8_t *buf,
                                  uint64_t len)
{
    while (len > 0) {
        uint64_t slab = off / info->slab_size, in = off % info->slab_size;
        uint64_t n = info->slab_size - in < len ? info->slab_size - in : len;
        fp_status_t status;

        if (slab >= info->nslabs) {
            moe_err("internal: region %s has %u slabs, byte %" PRIu64 " is past them", d->name,
                    info->nslabs, off);
            return FP_ERR_OUT_OF_RANGE;
        }
        status = farpool_slab_write(node, info->slabs[slab], in, buf, (size_t)n);
        if (status != FP_OK) {
            moe_err("writing region %s on %s: %s", d->name, d->addr, fp_status_string(status));
            return status;
        }
        off += n;
        buf += n;
        len -= n;
    }
    return FP_OK;
}

/* Write expert @e on fill connection @thread. */
static fp_status_t fp_fill_one(void *arg, unsigned thread, moe_pattern_t *pat, uint8_t *scratch,
                               unsigned e)
{
    fp_fill_t *fill = arg;
    moe_fp_data_t *d = fill->d;

    for (uint64_t off = 0; off < d->size; off += FILL_CHUNK) {
        uint64_t len = d->size - off < FILL_CHUNK ? d->size - off : FILL_CHUNK;
        fp_status_t status;

        moe_pattern_fill(pat, e, off, scratch, (size_t)len);
        status = fp_write_range(d, fill->node[thread], &fill->info[thread],
                                (uint64_t)e * d->size + off, scratch, len);
        if (status != FP_OK)
            return status;
    }
    return FP_OK;
}

/* Create the region on d->node and write every expert, one more connection per fill thread. */
static fp_status_t fp_fill(moe_fp_data_t *d)
{
    fp_fill_t fill;
    fp_status_t status;
    unsigned opened = 1;

    memset(&fill, 0, sizeof(fill));
    fill.d = d;
    fill.node[0] = d->node;
    status = fp_region_meta_create(d->node, d->name, (uint64_t)d->experts * d->size, d->granule, 0,
                                   &fill.info[0]);
    if (status != FP_OK) {
        moe_err("cannot create region %s (%" PRIu64 " MiB) on %s: %s", d->name,
                (uint64_t)((uint64_t)d->experts * d->size / MIB), d->addr,
                fp_status_string(status));
        return status;
    }
    for (; opened < MOE_FILL_THREADS && status == FP_OK; opened++) {
        status = farpool_node_connect(d->addr, NULL, &fill.node[opened]);
        if (status == FP_OK) {
            status = fp_region_meta_open(fill.node[opened], d->name, &fill.info[opened]);
            if (status != FP_OK) {
                farpool_node_close(fill.node[opened]);
                fill.node[opened] = NULL;
            }
        }
        if (status != FP_OK) {
            moe_err("cannot open region %s on a second connection to %s: %s", d->name, d->addr,
                    fp_status_string(status));
            break;
        }
    }
    if (status == FP_OK)
        status = moe_fill_experts(d->experts, FILL_CHUNK, fp_fill_one, &fill);
    for (unsigned i = 0; i < MOE_FILL_THREADS; i++) {
        if (fill.node[i] != NULL)
            fp_region_info_cleanup(&fill.info[i]);
        if (i > 0)
            farpool_node_close(fill.node[i]);
    }
    if (status != FP_OK)
        fp_region_meta_delete(d->node, d->name);
    return status;
}

fp_status_t moe_fp_data_create(const char *addr, pid_t node_pid, const char *name, uint32_t granule,
                               unsigned experts, uint64_t size, moe_fp_data_t **data_p)
{
    moe_fp_data_t *d = calloc(1, sizeof(*d));
    fp_status_t status;

    if (d == NULL) {
        moe_err("out of memory");
        return FP_ERR_NO_MEMORY;
    }
    snprintf(d->addr, sizeof(d->addr), "%s", addr);
    snprintf(d->name, sizeof(d->name), "%s", name);
    d->granule = granule;
    d->experts = experts;
    d->size = size;
    d->node_pid = node_pid;
    status = farpool_node_connect(addr, NULL, &d->node);
    if (status != FP_OK) {
        moe_err("cannot connect to farpoold at %s: %s", addr, fp_status_string(status));
        free(d);
        return status;
    }
    status = fp_fill(d);
    if (status != FP_OK) {
        farpool_node_close(d->node);
        free(d);
        return status;
    }
    *data_p = d;
    return FP_OK;
}

void moe_fp_data_destroy(moe_fp_data_t *d)
{
    fp_status_t status;

    if (d == NULL)
        return;
    status = fp_region_meta_delete(d->node, d->name);
    if (status != FP_OK)
        moe_err("cannot delete region %s on %s: %s (it goes with the node)", d->name, d->addr,
                fp_status_string(status));
    farpool_node_close(d->node);
    free(d);
}

static void fp_run_close(fp_store_t *f)
{
    farpool_region_close(f->region);
    farpool_context_destroy(f->ctx);
    f->region = NULL;
    f->ctx = NULL;
    f->map = NULL;
}

static fp_status_t fp_run_begin(moe_store_t *s)
{
    fp_store_t *f = (fp_store_t *)s;
    const char *nodes[] = {f->data->addr};
    farpool_context_params_t p;
    fp_status_t status;
    void *map;

    memset(&p, 0, sizeof(p));
    p.field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_CACHE_BYTES |
                   FARPOOL_CONTEXT_PARAM_READAHEAD | FARPOOL_CONTEXT_PARAM_TIMEOUT |
                   FARPOOL_CONTEXT_PARAM_PREFAULT;
    p.nodes = nodes;
    p.nnodes = 1;
    p.cache_bytes = (uint64_t)s->slots * s->size + f->slack;
    p.readahead = f->readahead ? 1 : 0;
    p.prefault = 1;
    p.timeout_ms = TIMEOUT_MS;
    status = farpool_context_create(&p, &f->ctx);
    if (status != FP_OK) {
        moe_err("farpool_context_create (node %s): %s", f->data->addr, fp_status_string(status));
        return status;
    }
    status = farpool_region_open(f->ctx, f->data->name, FARPOOL_REGION_READONLY, &f->region);
    if (status == FP_OK)
        status = farpool_map(f->region, &map);
    if (status != FP_OK) {
        moe_err("cannot open and map region %s: %s", f->data->name, fp_status_string(status));
        fp_run_close(f);
        return status;
    }
    f->map = map;
    return FP_OK;
}

static fp_status_t fp_load(moe_store_t *s, unsigned e)
{
    fp_store_t *f = (fp_store_t *)s;

    f->sink += moe_touch(f->map + (size_t)e * s->size, s->size);
    return FP_OK;
}

static fp_status_t fp_unload(moe_store_t *s, unsigned e)
{
    fp_store_t *f = (fp_store_t *)s;
    fp_status_t status = farpool_release(f->region, f->map + (size_t)e * s->size, s->size);

    if (status != FP_OK)
        moe_err("farpool_release of expert %u: %s", e, fp_status_string(status));
    return status;
}

static fp_status_t fp_hint(moe_store_t *s, unsigned e)
{
    fp_store_t *f = (fp_store_t *)s;
    fp_status_t status = farpool_prefetch(f->region, f->map + (size_t)e * s->size, s->size);

    if (status != FP_OK)
        moe_err("farpool_prefetch of expert %u: %s", e, fp_status_string(status));
    return status;
}

static const void *fp_expert(moe_store_t *s, unsigned e)
{
    return ((fp_store_t *)s)->map + (size_t)e * s->size;
}

static void fp_sample(moe_store_t *s, moe_io_t *io_p)
{
    fp_store_t *f = (fp_store_t *)s;
    farpool_stats_t st;

    memset(io_p, 0, sizeof(*io_p));
    if (f->region == NULL || farpool_region_stats(f->region, &st, sizeof(st)) != FP_OK)
        return;
    io_p->fp_faults = st.faults + st.minor_faults;
    io_p->bytes_moved = st.bytes_in;
}

static fp_status_t fp_run_end(moe_store_t *s, moe_io_t *io_p)
{
    fp_store_t *f = (fp_store_t *)s;
    fp_status_t status = FP_OK;

    memset(io_p, 0, sizeof(*io_p));
    if (f->region != NULL &&
        farpool_region_stats(f->region, &io_p->fp, sizeof(io_p->fp)) == FP_OK) {
        io_p->has_fp = true;
        io_p->fp_faults = io_p->fp.faults + io_p->fp.minor_faults;
        io_p->bytes_moved = io_p->fp.bytes_in;
        if (io_p->fp.fetch_errors != 0) {
            moe_err("region %s: %" PRIu64 " fetches failed", f->data->name, io_p->fp.fetch_errors);
            status = FP_ERR_IO;
        }
    }
    fp_run_close(f);
    return status;
}

static void fp_destroy(moe_store_t *s)
{
    fp_store_t *f = (fp_store_t *)s;

    fp_run_close(f);
    free(f);
}

static const moe_store_ops_t fp_ops = {
    .run_begin = fp_run_begin,
    .load = fp_load,
    .unload = fp_unload,
    .hint = NULL,
    .expert = fp_expert,
    .sample = fp_sample,
    .run_end = fp_run_end,
    .destroy = fp_destroy,
};

static const moe_store_ops_t fp_hint_ops = {
    .run_begin = fp_run_begin,
    .load = fp_load,
    .unload = fp_unload,
    .hint = fp_hint,
    .expert = fp_expert,
    .sample = fp_sample,
    .run_end = fp_run_end,
    .destroy = fp_destroy,
};

fp_status_t moe_store_fp_create(moe_fp_data_t *data, unsigned slots, uint64_t slack, bool readahead,
                                bool hints, moe_store_t **s_p)
{
    fp_store_t *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        moe_err("out of memory");
        return FP_ERR_NO_MEMORY;
    }
    f->base = (moe_store_t){hints ? &fp_hint_ops : &fp_ops, data->experts, slots, data->size,
                            data->node_pid};
    f->data = data;
    f->readahead = readahead;
    f->hints = hints;
    f->slack = slack;
    *s_p = &f->base;
    return FP_OK;
}
