/* SPDX-License-Identifier: MIT */
/*
 * Named regions as a memory node stores them; see region_meta.h.
 *
 * Each call is one or a few blocking control requests on the node's
 * connection (fp_node_call). Create and open fetch the region's slab list with
 * as many REGION_SLABS requests as it takes, FP_PROTO_REGION_SLABS_MAX ids at
 * a time. Arguments are checked here first, so an invalid name or granule
 * costs no round trip; the node checks them again.
 */
#include "region_meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

#include "proto/proto.h"

/*
 * Send @op (@len payload bytes), expect a region description back (*@rep_p),
 * then fetch its slab list (*@slabs_p, malloc'd). If a REGION_CREATE succeeded
 * but the list cannot be fetched, the region stays on the node: the error is
 * returned, and the caller may delete it by name.
 */
static fp_status_t region_call(farpool_node_t *node, uint8_t op, const uint8_t *payload,
                               uint32_t len, fp_proto_region_rep_t *rep_p, uint64_t **slabs_p)
{
    uint8_t buf[FP_PROTO_REGION_SLABS_MAX * 8];
    fp_proto_region_rep_t rep;
    uint64_t *slabs;
    uint32_t rsp_len = 0;
    fp_status_t status;

    status = fp_node_call(node, op, payload, len, buf, FP_PROTO_REGION_REP_SIZE, &rsp_len);
    if (status != FP_OK)
        return status;
    status = fp_proto_region_rep_decode(buf, rsp_len, &rep);
    if (status != FP_OK)
        return status;
    slabs = malloc((size_t)rep.nslabs * sizeof(*slabs));
    if (slabs == NULL)
        return FP_ERR_NO_MEMORY;
    for (uint32_t first = 0; first < rep.nslabs;) {
        uint32_t left = rep.nslabs - first;
        fp_proto_region_slabs_req_t req = {
            .region_id = rep.region_id,
            .first = first,
            .count = left < FP_PROTO_REGION_SLABS_MAX ? left : FP_PROTO_REGION_SLABS_MAX,
        };
        uint8_t reqbuf[FP_PROTO_REGION_SLABS_REQ_SIZE];

        fp_proto_region_slabs_req_encode(&req, reqbuf);
        status = fp_node_call(node, FP_OP_REGION_SLABS, reqbuf, sizeof(reqbuf), buf,
                              (size_t)req.count * 8, &rsp_len);
        if (status == FP_OK)
            status = fp_proto_region_slabs_rep_decode(buf, rsp_len, req.count, slabs + first);
        if (status != FP_OK) {
            free(slabs);
            return status;
        }
        first += req.count;
    }
    *rep_p = rep;
    *slabs_p = slabs;
    return FP_OK;
}

static void info_fill(const fp_proto_region_rep_t *rep, uint64_t *slabs, fp_region_info_t *info)
{
    info->id = rep->region_id;
    info->size = rep->size;
    info->granule = rep->granule;
    info->flags = rep->flags;
    info->slab_size = rep->slab_size;
    info->nslabs = rep->nslabs;
    info->slabs = slabs;
}

fp_status_t fp_region_meta_create(farpool_node_t *node, const char *name, uint64_t size,
                                  uint32_t granule, uint32_t flags, fp_region_info_t *info_p)
{
    uint8_t buf[FP_PROTO_REGION_CREATE_REQ_MAX];
    fp_proto_region_create_req_t req;
    fp_proto_region_rep_t rep;
    uint64_t *slabs;
    uint32_t len;
    fp_status_t status;

    if (node == NULL || info_p == NULL || size == 0 || !fp_proto_region_granule_valid(granule))
        return FP_ERR_INVALID_PARAM;
    status = fp_proto_region_name_set(name, &req.name);
    if (status != FP_OK)
        return status;
    req.size = size;
    req.granule = granule;
    req.flags = flags;
    len = fp_proto_region_create_req_encode(&req, buf);
    status = region_call(node, FP_OP_REGION_CREATE, buf, len, &rep, &slabs);
    if (status != FP_OK)
        return status;
    if (rep.size != size || rep.granule != granule || rep.flags != flags) {
        free(slabs);
        return FP_ERR_PROTOCOL; /* the node did not create what was asked */
    }
    info_fill(&rep, slabs, info_p);
    return FP_OK;
}

fp_status_t fp_region_meta_open(farpool_node_t *node, const char *name, fp_region_info_t *info_p)
{
    uint8_t buf[FP_PROTO_REGION_NAME_REQ_MAX];
    fp_proto_region_name_t req;
    fp_proto_region_rep_t rep;
    uint64_t *slabs;
    uint32_t len;
    fp_status_t status;

    if (node == NULL || info_p == NULL)
        return FP_ERR_INVALID_PARAM;
    status = fp_proto_region_name_set(name, &req);
    if (status != FP_OK)
        return status;
    len = fp_proto_region_name_req_encode(&req, buf);
    status = region_call(node, FP_OP_REGION_OPEN, buf, len, &rep, &slabs);
    if (status != FP_OK)
        return status;
    info_fill(&rep, slabs, info_p);
    return FP_OK;
}

fp_status_t fp_region_meta_delete(farpool_node_t *node, const char *name)
{
    uint8_t buf[FP_PROTO_REGION_NAME_REQ_MAX];
    fp_proto_region_name_t req;
    uint32_t len;
    fp_status_t status;

    if (node == NULL)
        return FP_ERR_INVALID_PARAM;
    status = fp_proto_region_name_set(name, &req);
    if (status != FP_OK)
        return status;
    len = fp_proto_region_name_req_encode(&req, buf);
    return fp_node_call(node, FP_OP_REGION_DELETE, buf, len, NULL, 0, NULL);
}

void fp_region_info_cleanup(fp_region_info_t *info)
{
    if (info == NULL)
        return;
    free(info->slabs);
    memset(info, 0, sizeof(*info));
}

fp_status_t fp_region_map_from_info(const fp_region_info_t *info, const char *name,
                                    const char *node_addr, fp_region_map_t *map_p)
{
    fp_region_map_t m;
    fp_status_t status;

    if (info == NULL || name == NULL || node_addr == NULL || map_p == NULL ||
        strlen(name) > FP_PROTO_REGION_NAME_MAX || strlen(node_addr) >= FP_MAP_ADDR_MAX)
        return FP_ERR_INVALID_PARAM;
    memset(&m, 0, sizeof(m));
    status = fp_region_map_alloc(&m, 1, info->nslabs, 1);
    if (status != FP_OK)
        return status;
    snprintf(m.name, sizeof(m.name), "%s", name);
    m.size = info->size;
    m.granule = info->granule;
    m.slab_size = info->slab_size;
    m.by_key = false;
    snprintf(m.nodes[0], sizeof(m.nodes[0]), "%s", node_addr);
    for (uint32_t i = 0; i < info->nslabs; i++)
        m.replica[i] = (fp_map_replica_t){0, info->slabs[i]};
    *map_p = m;
    return FP_OK;
}
