/* SPDX-License-Identifier: MIT */
/* The memory node's table of named regions; see region.h. */
#include "region.h"

#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static uint32_t region_index(uint64_t id)
{
    return (uint32_t)id;
}

static uint32_t region_gen(uint64_t id)
{
    return (uint32_t)(id >> 32);
}

/* FNV-1a of the name's bytes, folded onto the buckets. */
static uint32_t name_bucket(const fp_region_table_t *table, const fp_proto_region_name_t *name)
{
    uint32_t h = 2166136261u;

    for (uint16_t i = 0; i < name->len; i++) {
        h ^= (uint8_t)name->text[i];
        h *= 16777619u;
    }
    return h & (table->nbuckets - 1);
}

static bool name_equal(const fp_proto_region_name_t *a, const fp_proto_region_name_t *b)
{
    return a->len == b->len && memcmp(a->text, b->text, a->len) == 0;
}

fp_status_t fp_region_table_init(fp_region_table_t *table, fp_slab_store_t *store, uint32_t max)
{
    memset(table, 0, sizeof(*table));
    if (max == 0 || max > FP_REGION_TABLE_MAX)
        return FP_ERR_INVALID_PARAM;
    table->nbuckets = 1;
    while (table->nbuckets < max)
        table->nbuckets <<= 1;
    table->regions = calloc(max, sizeof(*table->regions));
    table->free_idx = calloc(max, sizeof(*table->free_idx));
    table->buckets = calloc(table->nbuckets, sizeof(*table->buckets));
    if (table->regions == NULL || table->free_idx == NULL || table->buckets == NULL) {
        free(table->regions);
        free(table->free_idx);
        free(table->buckets);
        memset(table, 0, sizeof(*table));
        return FP_ERR_NO_MEMORY;
    }
    table->store = store;
    table->nslots = max;
    for (uint32_t i = 0; i < max; i++)
        table->free_idx[i] = max - 1 - i;
    table->nfree = max;
    return FP_OK;
}

void fp_region_table_cleanup(fp_region_table_t *table)
{
    for (uint32_t i = 0; i < table->nslots; i++)
        free(table->regions[i].slabs);
    free(table->regions);
    free(table->free_idx);
    free(table->buckets);
    memset(table, 0, sizeof(*table));
}

uint64_t fp_region_id(const fp_region_table_t *table, const fp_region_t *region)
{
    return ((uint64_t)region->gen << 32) | (uint32_t)(region - table->regions);
}

static fp_region_t *region_by_name(fp_region_table_t *table, const fp_proto_region_name_t *name)
{
    uint32_t next = table->buckets[name_bucket(table, name)];

    while (next != 0) {
        fp_region_t *region = &table->regions[next - 1];

        if (name_equal(&region->name, name))
            return region;
        next = region->hnext;
    }
    return NULL;
}

/* Free the first @n slabs of @region. */
static void region_release_slabs(fp_region_table_t *table, fp_region_t *region, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        fp_status_t status = fp_slab_store_release(table->store, region->slabs[i]);

        if (status != FP_OK)
            fp_error(table->store->log, "region '%s': its slab %#llx is gone: %s",
                     region->name.text, (unsigned long long)region->slabs[i],
                     fp_status_string(status));
    }
}

fp_status_t fp_region_create(fp_region_table_t *table, const fp_proto_region_create_req_t *req,
                             fp_region_t **region_p)
{
    fp_region_t *region;
    uint64_t nslabs, id;
    uint32_t index, bucket;
    fp_status_t status;

    if (req->size == 0 || req->size > table->store->capacity)
        return FP_ERR_INVALID_PARAM;
    if (region_by_name(table, &req->name) != NULL)
        return FP_ERR_EXISTS;
    if (table->nfree == 0)
        return FP_ERR_NO_SPACE;
    nslabs = fp_proto_region_nslabs(req->size, table->store->slab_size);

    index = table->free_idx[table->nfree - 1];
    region = &table->regions[index];
    region->slabs = malloc(nslabs * sizeof(*region->slabs));
    if (region->slabs == NULL)
        return FP_ERR_NO_MEMORY;
    region->gen++;
    if (region->gen == 0)
        region->gen = 1; /* id 0 is never valid */
    id = fp_region_id(table, region);
    for (uint32_t i = 0; i < nslabs; i++) {
        status = fp_slab_store_alloc(table->store, NULL, id, &region->slabs[i]);
        if (status != FP_OK) {
            region_release_slabs(table, region, i);
            free(region->slabs);
            region->slabs = NULL;
            return status;
        }
    }
    table->nfree--;
    region->name = req->name;
    region->size = req->size;
    region->granule = req->granule;
    region->flags = req->flags;
    region->nslabs = (uint32_t)nslabs;
    region->live = true;
    bucket = name_bucket(table, &req->name);
    region->hnext = table->buckets[bucket];
    table->buckets[bucket] = index + 1;
    table->nlive++;
    *region_p = region;
    return FP_OK;
}

fp_status_t fp_region_find(fp_region_table_t *table, const fp_proto_region_name_t *name,
                           fp_region_t **region_p)
{
    fp_region_t *region = region_by_name(table, name);

    if (region == NULL)
        return FP_ERR_NO_ENTRY;
    *region_p = region;
    return FP_OK;
}

bool fp_region_id_live(const fp_region_table_t *table, uint64_t id)
{
    uint32_t index = region_index(id);

    return index < table->nslots && table->regions[index].live &&
           table->regions[index].gen == region_gen(id);
}

fp_status_t fp_region_lookup(fp_region_table_t *table, uint64_t id, fp_region_t **region_p)
{
    if (!fp_region_id_live(table, id))
        return FP_ERR_NO_ENTRY;
    *region_p = &table->regions[region_index(id)];
    return FP_OK;
}

fp_status_t fp_region_delete(fp_region_table_t *table, const fp_proto_region_name_t *name)
{
    uint32_t bucket = name_bucket(table, name);
    uint32_t *link = &table->buckets[bucket];
    fp_region_t *region = NULL;
    uint32_t index;

    while (*link != 0) {
        fp_region_t *r = &table->regions[*link - 1];

        if (name_equal(&r->name, name)) {
            region = r;
            break;
        }
        link = &r->hnext;
    }
    if (region == NULL)
        return FP_ERR_NO_ENTRY;
    index = *link - 1;
    *link = region->hnext;
    region->hnext = 0;
    region_release_slabs(table, region, region->nslabs);
    free(region->slabs);
    region->slabs = NULL;
    region->nslabs = 0;
    region->live = false;
    table->free_idx[table->nfree++] = index;
    table->nlive--;
    return FP_OK;
}
