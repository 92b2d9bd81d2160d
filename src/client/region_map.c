/* SPDX-License-Identifier: MIT */
/*
 * Where a region's bytes live: allocating, copying and checking a region map
 * (region_map.h). Plain data; nothing here talks to a node.
 */
#include "region_map.h"

#include <stdlib.h>
#include <string.h>

fp_status_t fp_region_map_alloc(fp_region_map_t *m, uint32_t nnodes, uint32_t nslabs,
                                uint32_t replicas)
{
    char(*nodes)[FP_MAP_ADDR_MAX];
    uint64_t *node_ids;
    fp_map_replica_t *replica;
    uint64_t n = (uint64_t)nslabs * replicas;

    if (m == NULL || nnodes == 0 || nslabs == 0 || replicas == 0 ||
        replicas > FP_MAP_REPLICAS_MAX || n > SIZE_MAX / sizeof(*replica))
        return FP_ERR_INVALID_PARAM;
    nodes = calloc(nnodes, sizeof(*nodes));
    node_ids = calloc(nnodes, sizeof(*node_ids));
    replica = malloc((size_t)n * sizeof(*replica));
    if (nodes == NULL || node_ids == NULL || replica == NULL) {
        free(nodes);
        free(node_ids);
        free(replica);
        return FP_ERR_NO_MEMORY;
    }
    for (uint64_t i = 0; i < n; i++)
        replica[i] = (fp_map_replica_t){FP_MAP_NO_NODE, 0};
    m->nnodes = nnodes;
    m->nslabs = nslabs;
    m->replicas = replicas;
    m->nodes = nodes;
    m->node_ids = node_ids;
    m->replica = replica;
    return FP_OK;
}

fp_status_t fp_region_map_copy(fp_region_map_t *dst, const fp_region_map_t *src)
{
    fp_region_map_t m;
    fp_status_t status;

    if (dst == NULL || src == NULL || src->nodes == NULL || src->replica == NULL)
        return FP_ERR_INVALID_PARAM;
    m = *src;
    status = fp_region_map_alloc(&m, src->nnodes, src->nslabs, src->replicas);
    if (status != FP_OK)
        return status;
    memcpy(m.nodes, src->nodes, (size_t)src->nnodes * sizeof(*m.nodes));
    if (src->node_ids != NULL)
        memcpy(m.node_ids, src->node_ids, (size_t)src->nnodes * sizeof(*m.node_ids));
    memcpy(m.replica, src->replica, (size_t)src->nslabs * src->replicas * sizeof(*m.replica));
    *dst = m;
    return FP_OK;
}

/* Two slabs hold their copies on the same nodes, in the same order. */
static bool same_nodes(const fp_region_map_t *m, uint32_t i, uint32_t j)
{
    for (uint32_t k = 0; k < m->replicas; k++)
        if (fp_region_map_at(m, i, k)->node != fp_region_map_at(m, j, k)->node)
            return false;
    return true;
}

fp_status_t fp_region_map_check(const fp_region_map_t *m)
{
    if (m == NULL || m->nodes == NULL || m->replica == NULL || m->nnodes == 0 || m->size == 0 ||
        !fp_proto_region_granule_valid(m->granule) || m->slab_size == 0 || m->nslabs == 0 ||
        m->replicas == 0 || m->replicas > FP_MAP_REPLICAS_MAX ||
        strnlen(m->name, sizeof(m->name)) == sizeof(m->name))
        return FP_ERR_INVALID_PARAM;
    /* Exactly the slabs the size needs. */
    if ((m->size + m->slab_size - 1) / m->slab_size != m->nslabs)
        return FP_ERR_INVALID_PARAM;
    for (uint32_t n = 0; n < m->nnodes; n++) {
        size_t len = strnlen(m->nodes[n], FP_MAP_ADDR_MAX);

        if (len == 0 || len == FP_MAP_ADDR_MAX)
            return FP_ERR_INVALID_PARAM;
        for (uint32_t o = 0; o < n; o++)
            if (strcmp(m->nodes[o], m->nodes[n]) == 0)
                return FP_ERR_INVALID_PARAM; /* one node named twice */
    }
    for (uint32_t i = 0; i < m->nslabs; i++) {
        uint32_t copies = 0;

        for (uint32_t k = 0; k < m->replicas; k++) {
            uint32_t node = fp_region_map_at(m, i, k)->node;

            if (node == FP_MAP_NO_NODE)
                continue;
            if (node >= m->nnodes)
                return FP_ERR_INVALID_PARAM;
            for (uint32_t j = 0; j < k; j++)
                if (fp_region_map_at(m, i, j)->node == node)
                    return FP_ERR_INVALID_PARAM; /* two copies on one node */
            copies++;
        }
        if (copies == 0)
            return FP_ERR_NO_ENTRY;
    }
    /* Each block in one replica set: a block across a slab boundary spans
     * slabs that share their nodes. */
    for (uint32_t i = 1; i < m->nslabs; i++)
        if ((uint64_t)i * m->slab_size % m->granule != 0 && !same_nodes(m, i - 1, i))
            return FP_ERR_INVALID_PARAM;
    return FP_OK;
}

void fp_region_map_cleanup(fp_region_map_t *m)
{
    if (m == NULL)
        return;
    free(m->nodes);
    free(m->node_ids);
    free(m->replica);
    memset(m, 0, sizeof(*m));
}
