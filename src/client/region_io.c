/* SPDX-License-Identifier: MIT */
/*
 * farpool_region_pread() and farpool_region_pwrite(): a region's bytes read
 * and written straight from and to its memory nodes, without a mapping.
 *
 * The first call builds the region's map (from the node, or from the pool's
 * metadata) and keeps it with one connection per node, made when first
 * needed, presenting the region's key (pool) or having opened the region by
 * name (one node), as the fault engine does. A range is cut at slab bounds;
 * a write goes to every copy of each slab it touches, a read to the first
 * copy that answers. A node whose connection fails is skipped from then on
 * by this region's calls; a write succeeds while one copy of each slab took
 * it (the pool re-creates the missing copies once that node is declared
 * dead), a read while one copy answers.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "context_int.h"
#include "node.h"
#include "pool.h"
#include "region_map.h"
#include "region_meta.h"

struct fp_region_io {
    fp_region_map_t map;
    farpool_node_t **conn; /* map.nnodes, NULL until used */
    bool *down;            /* map.nnodes: failed, skipped from now on */
};

void fp_region_io_close(farpool_region_t *r)
{
    struct fp_region_io *io = r->io;

    if (io == NULL)
        return;
    for (uint32_t i = 0; i < io->map.nnodes; i++)
        farpool_node_close(io->conn[i]);
    free(io->conn);
    free(io->down);
    fp_region_map_cleanup(&io->map);
    free(io);
    r->io = NULL;
}

fp_status_t fp_region_io_open(farpool_region_t *r)
{
    struct fp_region_io *io;
    fp_status_t status;

    if (r->io != NULL)
        return FP_OK;
    io = calloc(1, sizeof(*io));
    if (io == NULL)
        return FP_ERR_NO_MEMORY;
    if (r->ctx->pool)
        FP_CTX_CTL_CALL(r->ctx, status, fp_pool_region_map(r->ctx->ctl, &r->desc, &io->map));
    else
        status = fp_ctx_node_region_map(r, &io->map);
    if (status == FP_OK) {
        io->conn = calloc(io->map.nnodes, sizeof(*io->conn));
        io->down = calloc(io->map.nnodes, sizeof(*io->down));
        if (io->conn == NULL || io->down == NULL)
            status = FP_ERR_NO_MEMORY;
    }
    if (status != FP_OK) {
        free(io->conn);
        free(io->down);
        fp_region_map_cleanup(&io->map);
        free(io);
        return status;
    }
    r->io = io;
    return FP_OK;
}

/* The connection to node @n of the map, made now if needed; NULL if it is down. */
static farpool_node_t *io_conn(farpool_region_t *r, uint32_t n)
{
    struct fp_region_io *io = r->io;
    farpool_node_params_t np = r->ctx->np;
    fp_status_t status;

    if (io->down[n])
        return NULL;
    if (io->conn[n] != NULL)
        return io->conn[n];
    if (io->map.by_key) {
        np.field_mask |= FARPOOL_NODE_PARAM_CLIENT_KEY;
        memcpy(np.client_key, io->map.key, sizeof(np.client_key));
    }
    status = farpool_node_connect(io->map.nodes[n], &np, &io->conn[n]);
    if (status == FP_OK && !io->map.by_key) {
        fp_region_info_t info; /* opening it is what gives this connection its slabs */

        status = fp_region_meta_open(io->conn[n], r->name, &info);
        fp_region_info_cleanup(&info);
    }
    if (status != FP_OK) {
        fp_warn(&r->ctx->log, "region %s: node %s: %s; its copies are skipped", r->name,
                io->map.nodes[n], fp_status_string(status));
        farpool_node_close(io->conn[n]);
        io->conn[n] = NULL;
        io->down[n] = true;
    }
    return io->conn[n];
}

/* A failure that says the node (not the request) is unusable. */
static bool node_failure(fp_status_t status)
{
    return status == FP_ERR_NOT_CONNECTED || status == FP_ERR_TIMED_OUT || status == FP_ERR_IO;
}

/* One slab's part of a read or write: @len bytes at @in_slab of slab @i. */
static fp_status_t io_piece(farpool_region_t *r, bool write, uint32_t i, uint64_t in_slab,
                            uint8_t *p, size_t len)
{
    struct fp_region_io *io = r->io;
    fp_status_t first = FP_ERR_NO_ENTRY;
    unsigned done = 0;

    for (uint32_t k = 0; k < io->map.replicas; k++) {
        const fp_map_replica_t *c = fp_region_map_at(&io->map, i, k);
        farpool_node_t *conn;
        fp_status_t status;

        if (c->node == FP_MAP_NO_NODE || (conn = io_conn(r, c->node)) == NULL)
            continue;
        status = write ? farpool_slab_write(conn, c->slab, in_slab, p, len)
                       : farpool_slab_read(conn, c->slab, in_slab, p, len);
        if (status == FP_OK) {
            done++;
            if (!write)
                return FP_OK; /* one copy is enough to read */
            continue;
        }
        fp_warn(&r->ctx->log, "region %s: %s slab %" PRIu32 " on node %s: %s", r->name,
                write ? "cannot write" : "cannot read", i, io->map.nodes[c->node],
                fp_status_string(status));
        if (first == FP_ERR_NO_ENTRY)
            first = status;
        if (node_failure(status)) {
            farpool_node_close(io->conn[c->node]);
            io->conn[c->node] = NULL;
            io->down[c->node] = true;
        }
    }
    if (done > 0)
        return FP_OK;
    fp_error(&r->ctx->log, "region %s: no copy of slab %" PRIu32 " could be %s", r->name, i,
             write ? "written" : "read");
    return first;
}

static fp_status_t io_range(farpool_region_t *r, bool write, uint8_t *p, size_t len,
                            uint64_t offset)
{
    fp_status_t status;

    if (r == NULL || (p == NULL && len > 0))
        return FP_ERR_INVALID_PARAM;
    if (offset > r->size || len > r->size - offset)
        return FP_ERR_OUT_OF_RANGE;
    if (write && (r->flags & FARPOOL_REGION_READONLY))
        return FP_ERR_PERMISSION;
    if (len == 0)
        return FP_OK;
    status = fp_region_io_open(r);
    while (status == FP_OK && len > 0) {
        uint64_t slab = r->io->map.slab_size, in_slab = offset % slab;
        size_t take = slab - in_slab < len ? (size_t)(slab - in_slab) : len;

        status = io_piece(r, write, (uint32_t)(offset / slab), in_slab, p, take);
        p += take;
        offset += take;
        len -= take;
    }
    return status;
}

fp_status_t farpool_region_pwrite(farpool_region_t *region, const void *buf, size_t len,
                                  uint64_t offset)
{
    return io_range(region, true, (uint8_t *)(uintptr_t)buf, len, offset);
}

fp_status_t farpool_region_pread(farpool_region_t *region, void *buf, size_t len, uint64_t offset)
{
    return io_range(region, false, buf, len, offset);
}
