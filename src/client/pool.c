/* SPDX-License-Identifier: MIT */
/*
 * The client side of the pool's metadata; see pool.h. Each call is one or a
 * few blocking control requests to the metadata node (fp_node_call); lists
 * and slab maps come in pages of what fits in one control frame.
 */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

#include "common/etcd.h"
#include "common/parse.h"
#include "proto/pool.h"
#include "proto/proto.h"

#define POOL_SCHEME "farpool://"

fp_status_t fp_pool_url_parse(const char *url, char *addr, size_t cap)
{
    char host[FP_HOST_MAX];
    const char *rest = url;
    uint16_t port;
    size_t len;

    if (url == NULL || addr == NULL)
        return FP_ERR_INVALID_PARAM;
    if (strncmp(url, POOL_SCHEME, strlen(POOL_SCHEME)) == 0)
        rest = url + strlen(POOL_SCHEME);
    else if (strstr(url, "://") != NULL)
        return FP_ERR_UNSUPPORTED;
    len = strlen(rest);
    while (len > 0 && rest[len - 1] == '/')
        len--; /* "farpool://host:port/" */
    if (len == 0 || len >= cap || len > FP_POOL_ADDR_MAX)
        return FP_ERR_ADDRESS;
    memcpy(addr, rest, len);
    addr[len] = '\0';
    if (fp_addr_split(addr, host, &port) != FP_OK || port == 0)
        return FP_ERR_ADDRESS;
    return FP_OK;
}

fp_status_t fp_pool_url_check(const char *url)
{
    char addr[FP_POOL_ADDR_MAX + 1];
    fp_etcd_url_t parsed;

    if (url != NULL && fp_etcd_url_is(url))
        return fp_etcd_url_parse(url, NULL, &parsed);
    return fp_pool_url_parse(url, addr, sizeof(addr));
}

fp_status_t fp_pool_url_resolve(const char *url, const fp_log_t *log, char *addr, size_t cap)
{
    fp_status_t status;

    if (url == NULL || !fp_etcd_url_is(url))
        return fp_pool_url_parse(url, addr, cap);
    status = fp_etcd_service_addr(url, log, addr, cap);
    if (status == FP_ERR_NO_ENTRY)
        fp_error(log,
                 "pool %s: no metadata service is registered in etcd (is a farpoold "
                 "--meta-dir %s running?)",
                 url, url);
    return status;
}

/* One request with a small fixed payload; the reply into @rsp (FP_PROTO_MAX_CONTROL). */
static fp_status_t pool_call(farpool_node_t *meta, uint8_t op, const uint8_t *req, uint32_t len,
                             uint8_t *rsp, uint32_t *rsp_len_p)
{
    if (meta == NULL)
        return FP_ERR_INVALID_PARAM;
    if (len == 0 && req != NULL)
        return FP_ERR_INVALID_PARAM; /* an encoder found no room: a bug or a bad argument */
    return fp_node_call(meta, op, req, len, rsp, rsp != NULL ? FP_PROTO_MAX_CONTROL : 0, rsp_len_p);
}

/* Decode one page of a list reply into @entries (FP_POOL_LIST_MAX of them). */
typedef fp_status_t (*pool_page_decode_t)(const uint8_t *buf, uint32_t len, uint32_t *total_p,
                                          void *entries, uint32_t *count_p);

static fp_status_t nodes_page(const uint8_t *buf, uint32_t len, uint32_t *total_p, void *entries,
                              uint32_t *count_p)
{
    return fp_pool_nodes_rep_decode(buf, len, total_p, entries, FP_POOL_LIST_MAX, count_p);
}

static fp_status_t regions_page(const uint8_t *buf, uint32_t len, uint32_t *total_p, void *entries,
                                uint32_t *count_p)
{
    return fp_pool_regions_rep_decode(buf, len, total_p, entries, FP_POOL_LIST_MAX, count_p);
}

/*
 * The whole list that @op pages through from `first`, entries of @size bytes:
 * *@all_p malloc'd, *@count_p of them. A list that changes between pages is
 * FP_ERR_PROTOCOL (call again).
 */
static fp_status_t pool_list(farpool_node_t *meta, uint8_t op, size_t size,
                             pool_page_decode_t decode, void **all_p, size_t *count_p)
{
    uint8_t req[16], rsp[FP_PROTO_MAX_CONTROL];
    uint8_t *all = NULL, *page = malloc(FP_POOL_LIST_MAX * size);
    uint32_t total = 0, have = 0;
    fp_status_t status = page != NULL ? FP_OK : FP_ERR_NO_MEMORY;

    while (status == FP_OK) {
        fp_pool_list_req_t lr = {.first = have};
        uint32_t len = 0, count = 0, page_total = 0;

        status =
            pool_call(meta, op, req, fp_pool_list_req_encode(&lr, req, sizeof(req)), rsp, &len);
        if (status == FP_OK)
            status = decode(rsp, len, &page_total, page, &count);
        if (status == FP_OK && have == 0) {
            total = page_total;
            all = calloc(total > 0 ? total : 1, size);
            if (all == NULL)
                status = FP_ERR_NO_MEMORY;
        }
        if (status == FP_OK &&
            (page_total != total || count > total - have || (count == 0 && have < total)))
            status = FP_ERR_PROTOCOL; /* the list changed under us, or a bad reply */
        if (status != FP_OK)
            break;
        memcpy(all + (size_t)have * size, page, (size_t)count * size);
        have += count;
        if (have == total)
            break;
    }
    free(page);
    if (status != FP_OK) {
        free(all);
        return status;
    }
    *all_p = all;
    *count_p = total;
    return FP_OK;
}

fp_status_t fp_pool_nodes(farpool_node_t *meta, fp_pool_node_entry_t **nodes_p, size_t *count_p)
{
    void *all;
    fp_status_t status =
        pool_list(meta, FP_OP_POOL_NODES, sizeof(**nodes_p), nodes_page, &all, count_p);

    if (status == FP_OK)
        *nodes_p = all;
    return status;
}

fp_status_t fp_pool_regions(farpool_node_t *meta, fp_pool_region_desc_t **regions_p,
                            size_t *count_p)
{
    void *all;
    fp_status_t status =
        pool_list(meta, FP_OP_POOL_REGIONS, sizeof(**regions_p), regions_page, &all, count_p);

    if (status == FP_OK)
        *regions_p = all;
    return status;
}

static fp_status_t desc_call(farpool_node_t *meta, uint8_t op, const uint8_t *req, uint32_t len,
                             fp_pool_region_desc_t *desc_p)
{
    uint8_t rsp[FP_PROTO_MAX_CONTROL];
    uint32_t rsp_len = 0;
    fp_status_t status;

    status = pool_call(meta, op, req, len, rsp, &rsp_len);
    if (status != FP_OK)
        return status;
    return fp_pool_desc_decode(rsp, rsp_len, desc_p);
}

fp_status_t fp_pool_create(farpool_node_t *meta, const char *name, uint64_t size, uint32_t granule,
                           uint32_t flags, uint32_t replicas, fp_pool_region_desc_t *desc_p)
{
    fp_pool_create_req_t cr = {
        .size = size, .granule = granule, .flags = flags, .replicas = replicas};
    uint8_t req[FP_PROTO_MAX_CONTROL];
    fp_status_t status;

    if (size == 0 || !fp_proto_region_granule_valid(granule) || (flags & ~FP_POOL_REGION_FLAGS) ||
        replicas > FP_MAP_REPLICAS_MAX || desc_p == NULL)
        return FP_ERR_INVALID_PARAM;
    status = fp_proto_region_name_set(name, &cr.name);
    if (status != FP_OK)
        return status;
    return desc_call(meta, FP_OP_POOL_CREATE, req, fp_pool_create_req_encode(&cr, req, sizeof(req)),
                     desc_p);
}

fp_status_t fp_pool_open(farpool_node_t *meta, const char *name, uint32_t flags,
                         fp_pool_region_desc_t *desc_p)
{
    fp_pool_open_req_t orq = {.flags = flags};
    uint8_t req[FP_PROTO_MAX_CONTROL];
    fp_status_t status;

    if (desc_p == NULL)
        return FP_ERR_INVALID_PARAM;
    status = fp_proto_region_name_set(name, &orq.name);
    if (status != FP_OK)
        return status;
    return desc_call(meta, FP_OP_POOL_OPEN, req, fp_pool_open_req_encode(&orq, req, sizeof(req)),
                     desc_p);
}

fp_status_t fp_pool_delete(farpool_node_t *meta, const char *name)
{
    fp_proto_region_name_t n;
    uint8_t req[FP_PROTO_MAX_CONTROL];
    fp_status_t status;

    status = fp_proto_region_name_set(name, &n);
    if (status != FP_OK)
        return status;
    return pool_call(meta, FP_OP_POOL_DELETE, req, fp_pool_name_req_encode(&n, req, sizeof(req)),
                     NULL, NULL);
}

fp_status_t fp_pool_commit(farpool_node_t *meta, uint64_t region, uint64_t lease,
                           const uint8_t *checksum)
{
    fp_pool_commit_req_t c = {.region = region, .lease = lease, .has_checksum = checksum != NULL};
    uint8_t req[128];

    if (checksum != NULL)
        memcpy(c.checksum, checksum, sizeof(c.checksum));
    return pool_call(meta, FP_OP_POOL_COMMIT, req, fp_pool_commit_req_encode(&c, req, sizeof(req)),
                     NULL, NULL);
}

fp_status_t fp_pool_lease(farpool_node_t *meta, uint64_t region, uint64_t lease, uint32_t op)
{
    fp_pool_lease_req_t l = {.region = region, .lease = lease, .op = op};
    uint8_t req[64];

    return pool_call(meta, FP_OP_POOL_LEASE, req, fp_pool_lease_req_encode(&l, req, sizeof(req)),
                     NULL, NULL);
}

fp_status_t fp_pool_drain(farpool_node_t *meta, const char *addr)
{
    uint8_t req[FP_PROTO_MAX_CONTROL];

    if (addr == NULL)
        return FP_ERR_INVALID_PARAM;
    return pool_call(meta, FP_OP_POOL_DRAIN, req, fp_pool_addr_req_encode(addr, req, sizeof(req)),
                     NULL, NULL);
}

fp_status_t fp_pool_stale(farpool_node_t *meta, uint64_t region, uint32_t index, const char *addr)
{
    fp_pool_stale_req_t sr = {.region = region, .index = index};
    uint8_t req[FP_PROTO_MAX_CONTROL];

    if (addr == NULL || strlen(addr) > FP_POOL_ADDR_MAX)
        return FP_ERR_INVALID_PARAM;
    snprintf(sr.addr, sizeof(sr.addr), "%s", addr);
    return pool_call(meta, FP_OP_POOL_STALE, req, fp_pool_stale_req_encode(&sr, req, sizeof(req)),
                     NULL, NULL);
}

/* Index of member @member in @map's nodes, added from @nodes if new; FP_MAP_NO_NODE if unusable. */
static uint32_t map_node(fp_region_map_t *map, uint64_t *members, const fp_pool_node_entry_t *nodes,
                         size_t nnodes, uint64_t member)
{
    for (uint32_t i = 0; i < map->nnodes; i++)
        if (members[i] == member)
            return i;
    for (size_t j = 0; j < nnodes; j++) {
        if (nodes[j].member != member)
            continue;
        if (nodes[j].state == FP_POOL_NODE_DEAD || nodes[j].state == FP_POOL_NODE_GONE)
            return FP_MAP_NO_NODE;
        members[map->nnodes] = member;
        snprintf(map->nodes[map->nnodes], FP_MAP_ADDR_MAX, "%s", nodes[j].addr);
        map->node_ids[map->nnodes] = nodes[j].node_id;
        return map->nnodes++;
    }
    return FP_MAP_NO_NODE;
}

fp_status_t fp_pool_region_map(farpool_node_t *meta, const fp_pool_region_desc_t *desc,
                               fp_region_map_t *map_p)
{
    fp_pool_node_entry_t *nodes = NULL;
    fp_pool_map_entry_t *page = NULL;
    uint64_t *members = NULL;
    fp_region_map_t map;
    size_t nnodes = 0;
    uint32_t per_page;
    fp_status_t status;

    if (desc == NULL || map_p == NULL || desc->replicas == 0 ||
        desc->replicas > FP_MAP_REPLICAS_MAX || desc->nslabs == 0)
        return FP_ERR_INVALID_PARAM;
    memset(&map, 0, sizeof(map));
    status = fp_pool_nodes(meta, &nodes, &nnodes);
    if (status != FP_OK)
        return status;
    status = fp_region_map_alloc(&map, (uint32_t)(nnodes > 0 ? nnodes : 1), desc->nslabs,
                                 desc->replicas);
    members = calloc(nnodes > 0 ? nnodes : 1, sizeof(*members));
    page = malloc(FP_POOL_LIST_MAX * sizeof(*page));
    if (status == FP_OK && (members == NULL || page == NULL))
        status = FP_ERR_NO_MEMORY;
    map.nnodes = 0;                               /* filled as members are met */
    per_page = FP_POOL_MAP_PAGE / desc->replicas; /* entries of one reply */
    for (uint32_t first = 0; status == FP_OK && first < desc->nslabs;) {
        uint32_t left = desc->nslabs - first, count = 0, len = 0;
        fp_pool_map_req_t mr = {.region = desc->id, .first = first};
        uint8_t req[32], rsp[FP_PROTO_MAX_CONTROL];

        mr.count = left < per_page ? left : per_page;
        status = pool_call(meta, FP_OP_POOL_MAP, req, fp_pool_map_req_encode(&mr, req, sizeof(req)),
                           rsp, &len);
        if (status == FP_OK)
            status = fp_pool_map_rep_decode(rsp, len, page, FP_POOL_LIST_MAX, &count);
        if (status == FP_OK && count != mr.count * desc->replicas)
            status = FP_ERR_PROTOCOL;
        for (uint32_t i = 0; status == FP_OK && i < count; i++) {
            fp_map_replica_t *r = &map.replica[(uint64_t)first * desc->replicas + i];

            if (page[i].member == 0)
                continue;
            r->node = map_node(&map, members, nodes, nnodes, page[i].member);
            r->slab = r->node != FP_MAP_NO_NODE ? page[i].slab : 0;
        }
        first += mr.count;
    }
    if (status == FP_OK) {
        snprintf(map.name, sizeof(map.name), "%s", desc->name.text);
        map.size = desc->size;
        map.granule = desc->granule;
        map.slab_size = desc->slab_size;
        map.nslabs = desc->nslabs;
        map.replicas = desc->replicas;
        map.by_key = true;
        memcpy(map.key, desc->key, sizeof(map.key));
        map.fixed_addr = desc->fixed_addr;
        *map_p = map;
    } else {
        fp_region_map_cleanup(&map);
    }
    free(page);
    free(members);
    free(nodes);
    return status;
}

const char *fp_pool_health_name(uint32_t health)
{
    static const char *const names[] = {"healthy", "degraded", "repairing", "lost"};

    return health < sizeof(names) / sizeof(names[0]) ? names[health] : "?";
}

const char *fp_pool_node_state_name(uint32_t state)
{
    static const char *const names[] = {"live", "dead", "draining", "gone"};

    return state < sizeof(names) / sizeof(names[0]) ? names[state] : "?";
}
