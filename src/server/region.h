/* SPDX-License-Identifier: MIT */
/*
 * The memory node's table of named regions (REGION_* operations of
 * docs/protocol.md).
 *
 * A region is a name, a size, a granule, opaque client flags and the slabs
 * that hold its bytes, in order: byte X of the region is at offset
 * X % slab_size of slabs[X / slab_size]. Its slabs belong to the region
 * (fp_slab_t.region), not to a client key, and are allocated all at once when
 * the region is created; they stay, with their bytes, until the region is
 * deleted, whoever created it and whoever is connected.
 *
 * DESIGN
 * A fixed array of at most FP_REGION_TABLE_MAX records. A region id is
 * (generation << 32 | index), as slab ids are: the index finds the record in
 * O(1) and the generation makes the id of a deleted region useless, so a
 * connection that still holds it gets FP_ERR_NO_ENTRY, never the record's
 * next tenant. Names are found through a hash table with chaining through the
 * records (FNV-1a over the name's bytes); the names are a single namespace
 * shared by every client of the node.
 *
 * Which connections may use a region is the server's business (it keeps the
 * ids a connection opened and hands them to fp_slab_store_access()); this
 * table only knows regions and their slabs.
 *
 * Thread safety: none; the table belongs to the server's event loop thread.
 */
#ifndef FP_SERVER_REGION_H
#define FP_SERVER_REGION_H

#include <stdbool.h>
#include <stdint.h>

#include <farpool/status.h>

#include "proto/proto.h"
#include "slab.h"

#define FP_REGION_TABLE_MAX 4096u /* regions one node holds at most */

typedef struct fp_region {
    fp_proto_region_name_t name;
    uint64_t size;    /* bytes */
    uint32_t granule; /* bytes per block, as given at creation */
    uint32_t flags;   /* opaque, as given at creation */
    uint32_t nslabs;
    uint64_t *slabs; /* nslabs slab ids, owned by the record */
    uint32_t gen;    /* generation of the id now (or last) using this index */
    uint32_t hnext;  /* next record in the name's hash chain, index + 1; 0 ends it */
    bool live;
} fp_region_t;

typedef struct fp_region_table {
    fp_slab_store_t *store; /* where the regions' slabs come from; not owned */
    fp_region_t *regions;   /* nslots records */
    uint32_t nslots;
    uint32_t *free_idx; /* stack of unused record indexes */
    uint32_t nfree;
    uint32_t nlive;
    uint32_t *buckets; /* nbuckets hash chains, index + 1 of their first record; 0 empty */
    uint32_t nbuckets; /* a power of two */
} fp_region_table_t;

/*
 * Prepare an empty table for at most @max regions (1..FP_REGION_TABLE_MAX)
 * whose slabs come from @store, which must outlive the table.
 * FP_ERR_INVALID_PARAM, FP_ERR_NO_MEMORY.
 */
fp_status_t fp_region_table_init(fp_region_table_t *table, fp_slab_store_t *store, uint32_t max);

/*
 * Free the records. The regions' slabs are left to the store (the node is
 * going away: fp_slab_store_cleanup() unmaps them all).
 */
void fp_region_table_cleanup(fp_region_table_t *table);

/*
 * Create a region as @req describes (the decoder has checked the name, that
 * size is not 0 and the granule) and allocate all its slabs, or none:
 * FP_ERR_INVALID_PARAM if req->size exceeds the store's capacity,
 * FP_ERR_EXISTS if the name is taken, FP_ERR_NO_SPACE if the table is full or
 * the store cannot hold the slabs, FP_ERR_NO_MEMORY. On FP_OK *@region_p is
 * the new record (valid until the region is deleted) and its id is
 * fp_region_id() of it.
 */
fp_status_t fp_region_create(fp_region_table_t *table, const fp_proto_region_create_req_t *req,
                             fp_region_t **region_p);

/* The live region named @name. FP_ERR_NO_ENTRY if there is none. */
fp_status_t fp_region_find(fp_region_table_t *table, const fp_proto_region_name_t *name,
                           fp_region_t **region_p);

/* The live region of id @id. FP_ERR_NO_ENTRY if there is none (any more). */
fp_status_t fp_region_lookup(fp_region_table_t *table, uint64_t id, fp_region_t **region_p);

/* True while @id names a live region. */
bool fp_region_id_live(const fp_region_table_t *table, uint64_t id);

/* The id of a live @region of @table: (generation << 32 | index), never 0. */
uint64_t fp_region_id(const fp_region_table_t *table, const fp_region_t *region);

/*
 * Delete region @name: free its slabs (a slab that a queued reply still points
 * into is unmapped when that reference drops) and forget the name and the id.
 * FP_ERR_NO_ENTRY if there is no such region.
 */
fp_status_t fp_region_delete(fp_region_table_t *table, const fp_proto_region_name_t *name);

#endif /* FP_SERVER_REGION_H */
