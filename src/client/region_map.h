/* SPDX-License-Identifier: MIT */
/*
 * Where a region's bytes live: its geometry, the memory nodes holding it and,
 * for each slab, the replicas (node, slab id) that hold a copy. The context
 * builds one when a region is mapped (from the node, or from the pool's
 * metadata) and the fault engine reads from and writes to what it names.
 *
 * Byte X of the region is at offset X % slab_size of slab X / slab_size; that
 * slab has up to @replicas copies, entry k of slab i being
 * replica[i * replicas + k] (node FP_MAP_NO_NODE: no copy there). Each block
 * lies in the slabs of one replica set: either a block never spans two slabs
 * (a pool: slab_size >= granule), or every slab has the same nodes in the same
 * order (one node). fp_region_map_check() says which maps are usable.
 *
 * Thread safety: a map is plain data; whoever owns one may copy it.
 */
#ifndef FP_CLIENT_REGION_MAP_H
#define FP_CLIENT_REGION_MAP_H

#include <stdbool.h>
#include <stdint.h>

#include <farpool/farpool.h>

#include "proto/proto.h"

#define FP_MAP_NO_NODE      UINT32_MAX
#define FP_MAP_ADDR_MAX     96 /* a node address "HOST:PORT", NUL included */
#define FP_MAP_REPLICAS_MAX 4  /* copies of one slab at most */

typedef struct fp_map_replica {
    uint32_t node; /* index into nodes[]; FP_MAP_NO_NODE: no copy here */
    uint64_t slab; /* the slab's id on that node */
} fp_map_replica_t;

typedef struct fp_region_map {
    char name[FP_PROTO_REGION_NAME_MAX + 1];
    uint64_t size;      /* bytes */
    uint32_t granule;   /* bytes per block */
    uint64_t slab_size; /* bytes per slab (every node of the map has this size) */
    uint32_t nslabs;
    uint32_t replicas; /* entries per slab, 1..FP_MAP_REPLICAS_MAX */
    /*
     * How the engine gets the right to use the slabs. true (a pool region):
     * they are owned by @key, so every connection presents it as its client
     * key. false (a region of one node): the engine opens the region by
     * @name on its connection to nodes[0].
     */
    bool by_key;
    uint8_t key[FP_PROTO_KEY_SIZE];
    uint64_t fixed_addr; /* map at this address (FARPOOL_REGION_FIXED); 0: anywhere */
    uint32_t nnodes;
    char (*nodes)[FP_MAP_ADDR_MAX]; /* nnodes addresses, malloc'd */
    /* nnodes HELLO node ids, malloc'd: the farpoold process each address is
     * (a member restarted on its address is another, with other slabs); 0:
     * not known, any will do. */
    uint64_t *node_ids;
    fp_map_replica_t *replica; /* nslabs * replicas, malloc'd */
} fp_region_map_t;

/* Entry @k of slab @i. */
static inline const fp_map_replica_t *fp_region_map_at(const fp_region_map_t *m, uint32_t i,
                                                       uint32_t k)
{
    return &m->replica[(uint64_t)i * m->replicas + k];
}

/*
 * Allocate the arrays of @m for @nnodes nodes and @nslabs x @replicas entries
 * (all FP_MAP_NO_NODE); the scalar fields are the caller's to fill.
 */
fp_status_t fp_region_map_alloc(fp_region_map_t *m, uint32_t nnodes, uint32_t nslabs,
                                uint32_t replicas);

/* Deep copy of @src into *@dst (freed with fp_region_map_cleanup()). */
fp_status_t fp_region_map_copy(fp_region_map_t *dst, const fp_region_map_t *src);

/*
 * FP_OK if @m is usable: sizes and counts consistent, node indexes in range,
 * no slab with two copies on one node, every slab with at least one copy
 * (FP_ERR_NO_ENTRY otherwise: bytes lost), and the block rule above.
 */
fp_status_t fp_region_map_check(const fp_region_map_t *m);

/* Free the arrays; the map is zeroed. NULL is a no-op. */
void fp_region_map_cleanup(fp_region_map_t *m);

#endif /* FP_CLIENT_REGION_MAP_H */
