/* SPDX-License-Identifier: MIT */
/*
 * Named regions as a memory node stores them: create, open, list the slabs of,
 * and delete a region by name (REGION_* operations of docs/protocol.md).
 *
 * A region is a name, a size, a granule and the slabs that hold its bytes, in
 * order: byte X of the region is at offset X % slab_size of slabs[X / slab_size].
 * Its slabs belong to the region, not to the client that created it; any
 * connection that opened the region (or created it) may read and write them.
 *
 * Thread safety: as farpool_node_t: one thread at a time per node handle.
 */
#ifndef FP_CLIENT_REGION_META_H
#define FP_CLIENT_REGION_META_H

#include <stdint.h>

#include <farpool/farpool.h>

#include "region_map.h"

#define FP_REGION_NAME_MAX 255

typedef struct fp_region_info {
    uint64_t id;        /* the node's handle of the region */
    uint64_t size;      /* bytes */
    uint32_t granule;   /* bytes per block, a power of two from 4 KiB to 2 MiB */
    uint32_t flags;     /* FP_REGION_* flags given at creation */
    uint64_t slab_size; /* bytes per slab on that node */
    uint32_t nslabs;
    uint64_t *slabs; /* nslabs slab ids, malloc'd; free with fp_region_info_cleanup() */
} fp_region_info_t;

/*
 * Create region @name (1..255 bytes of [A-Za-z0-9._-]) of @size bytes on
 * @node, allocating its slabs, and open it on this connection.
 * FP_ERR_EXISTS if the name is taken, FP_ERR_NO_SPACE if the node cannot hold it.
 */
fp_status_t fp_region_meta_create(farpool_node_t *node, const char *name, uint64_t size,
                                  uint32_t granule, uint32_t flags, fp_region_info_t *info_p);

/* Open an existing region on this connection. FP_ERR_NO_ENTRY if there is none. */
fp_status_t fp_region_meta_open(farpool_node_t *node, const char *name, fp_region_info_t *info_p);

/* Delete a region and free its slabs. */
fp_status_t fp_region_meta_delete(farpool_node_t *node, const char *name);

void fp_region_info_cleanup(fp_region_info_t *info);

/*
 * The map of region @name, described by @info, of the node at @node_addr: one
 * node, one copy of each slab, opened by name (by_key false). *@map_p is
 * freed with fp_region_map_cleanup().
 */
fp_status_t fp_region_map_from_info(const fp_region_info_t *info, const char *name,
                                    const char *node_addr, fp_region_map_t *map_p);

#endif /* FP_CLIENT_REGION_META_H */
