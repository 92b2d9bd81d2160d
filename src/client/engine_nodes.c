/* SPDX-License-Identifier: MIT */
/*
 * The memory nodes of a region's fault engine: its copy of the region's map,
 * a connection per node, what a node's failure or silence does, and a new
 * map adopted (see engine_int.h for who owns what).
 *
 * DESIGN
 * The map (region_map.h) says, per slab, which nodes hold its copies. The
 * engine keeps a table of the nodes it knows, each with its connection, the
 * transfers it has on the wire and when one last ended; the map's node
 * indexes are translated through map_node. The table only grows, so a node
 * a new map drops is still there for the transfers in flight to it.
 *
 * Rights. A region of one node (by_key false) is opened by name on the
 * engine's connection, which gives that connection the right to its slabs;
 * the slab list the node sends must be the map's. A pool region's slabs are
 * owned by the region's key: every connection presents it as its client key
 * and opens nothing.
 *
 * Down. A node is down once its connection is closed: it broke (the
 * transport says so at progress), a transfer failed as only a broken node or
 * connection fails (fp_engine_node_level()), or the node completed none of
 * its transfers for the connection's timeout (the silence check). Closing
 * completes its transfers with errors; fetches among them are re-issued to
 * other copies (engine_fetch.c). Completions only flag a node (fail); the
 * loop's step closes it, so a transport is never closed inside its own
 * progress. A down node is connected again only when a new map names it.
 *
 * Missed writes. A copy that did not take a write-back (its node down, or
 * failing the write) holds stale bytes: the node's entry records that slab
 * id as stale, and it is never read again, even if a new map names it
 * (unless under another slab id: a new copy).
 *
 * A new map. When a fetch finds no usable copy of its block, the remap
 * callback (if any; at most every FP_ENGINE_REMAP_MS) is asked for a fresh
 * map, from the pool's metadata after its repair. One of the same geometry
 * is adopted: its new nodes connected, its down nodes tried again, and the
 * fetches retried under it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/time.h"
#include "engine_int.h"
#include "node.h"

/* Room for @want nodes in the table and the loop's descriptors. */
static fp_status_t nodes_reserve(fp_engine_t *e, unsigned want)
{
    fp_engine_node_t *nodes;
    struct pollfd *pfd;
    unsigned *pfd_node;

    nodes = realloc(e->nodes, (size_t)want * sizeof(*nodes));
    if (nodes == NULL)
        return FP_ERR_NO_MEMORY;
    e->nodes = nodes;
    memset(nodes + e->nnodes, 0, (size_t)(want - e->nnodes) * sizeof(*nodes));
    pfd = realloc(e->pfd, (size_t)(2 + want) * sizeof(*pfd));
    if (pfd == NULL)
        return FP_ERR_NO_MEMORY;
    e->pfd = pfd;
    pfd_node = realloc(e->pfd_node, (size_t)want * sizeof(*pfd_node));
    if (pfd_node == NULL)
        return FP_ERR_NO_MEMORY;
    e->pfd_node = pfd_node;
    return FP_OK;
}

/* by_key false: open the region by name on @conn, and check its slabs are the map's. */
static fp_status_t open_region(fp_engine_t *e, fp_engine_node_t *n, farpool_node_t *conn)
{
    const fp_region_map_t *m = &e->rmap;
    fp_region_info_t info;
    fp_status_t status;

    status = fp_region_meta_open(conn, m->name, &info);
    if (status != FP_OK) {
        fp_error(e->log, "region %s: cannot open on node %s: %s", e->name, n->addr,
                 fp_status_string(status));
        return status;
    }
    if (info.size != m->size || info.granule != m->granule || info.slab_size != m->slab_size ||
        info.nslabs != m->nslabs) {
        status = FP_ERR_PROTOCOL;
    } else {
        for (uint32_t i = 0; i < m->nslabs && status == FP_OK; i++)
            if (info.slabs[i] != fp_region_map_at(m, i, 0)->slab)
                status = FP_ERR_PROTOCOL;
    }
    if (status != FP_OK)
        fp_error(e->log, "region %s: node %s describes it otherwise than its map does", e->name,
                 n->addr);
    fp_region_info_cleanup(&info);
    return status;
}

/* Connect to @n (down, or never connected). */
static fp_status_t node_connect(fp_engine_t *e, fp_engine_node_t *n)
{
    farpool_node_t *conn;
    fp_status_t status;

    status = farpool_node_connect(n->addr, &e->np, &conn);
    if (status != FP_OK) {
        fp_warn(e->log, "region %s: cannot connect to node %s: %s", e->name, n->addr,
                fp_status_string(status));
        return status;
    }
    if (n->node_id != 0 && fp_node_id(conn) != n->node_id) {
        /* Restarted on its address: the map's slab ids are not its own. */
        fp_warn(e->log,
                "region %s: node %s is another farpoold now (node id %016" PRIx64 ", the map's "
                "%016" PRIx64 "): the copies the map places there are skipped",
                e->name, n->addr, fp_node_id(conn), n->node_id);
        farpool_node_close(conn);
        n->given_up = true;
        return FP_ERR_NOT_CONNECTED;
    }
    if (!e->rmap.by_key && (status = open_region(e, n, conn)) != FP_OK) {
        farpool_node_close(conn);
        return status;
    }
    farpool_node_close(n->conn); /* the handle of a connection closed before */
    n->conn = conn;
    n->tp = fp_node_transport(conn);
    n->nxfer = 0;
    n->fail = FP_OK;
    n->silenced = n->flush = n->said_reply = n->said_missed = false;
    if (e->uffd.fd >= 0)
        fp_transport_interrupt_on(n->tp, e->uffd.fd);
    e->nlive++;
    if (e->timeout_ns == 0)
        e->timeout_ns = (uint64_t)fp_node_timeout_ms(conn) * FP_NS_PER_MS;
    return FP_OK;
}

/* Close @n's connection: its transfers complete with errors (canceled). */
static void node_down(fp_engine_t *e, fp_engine_node_t *n)
{
    if (n->tp == NULL)
        return;
    n->tp = NULL; /* first: completions that run below find it down */
    n->flush = false;
    e->nlive--;
    fp_node_disconnect(n->conn);
}

/* How to connect: the parameters, their secret copied, and the map's key where it owns the slabs.
 */
static void params_copy(fp_engine_t *e, const farpool_node_params_t *np)
{
    if (np != NULL)
        e->np = *np;
    if ((e->np.field_mask & FARPOOL_NODE_PARAM_SECRET) && e->np.secret != NULL &&
        e->np.secret_len <= sizeof(e->secret)) {
        memcpy(e->secret, e->np.secret, e->np.secret_len);
        e->np.secret = e->secret;
    }
    if ((e->np.field_mask & FARPOOL_NODE_PARAM_SECRET_FILE) && e->np.secret_file != NULL) {
        snprintf(e->secret_file, sizeof(e->secret_file), "%s", e->np.secret_file);
        e->np.secret_file = e->secret_file;
    }
    if (e->rmap.by_key) {
        e->np.field_mask |= FARPOOL_NODE_PARAM_CLIENT_KEY;
        memcpy(e->np.client_key, e->rmap.key, sizeof(e->np.client_key));
    }
}

fp_status_t fp_engine_nodes_start(fp_engine_t *e, const fp_engine_params_t *params)
{
    const fp_region_map_t *m = params->map;
    fp_status_t status;

    if (m == NULL)
        return FP_ERR_INVALID_PARAM;
    status = fp_region_map_check(m);
    if (status == FP_OK && !m->by_key && m->nnodes != 1)
        status = FP_ERR_INVALID_PARAM;
    if (status != FP_OK) {
        fp_error(e->log, "region %s: its map is not usable: %s", e->name, fp_status_string(status));
        return status;
    }
    status = fp_region_map_copy(&e->rmap, m);
    if (status != FP_OK)
        return status;
    params_copy(e, params->np);
    e->remap = params->remap;
    e->remap_arg = params->remap_arg;
    e->stale = params->stale;
    e->map_node = malloc((size_t)m->nnodes * sizeof(*e->map_node));
    if (e->map_node == NULL || nodes_reserve(e, m->nnodes) != FP_OK) {
        status = FP_ERR_NO_MEMORY;
        goto err_stop;
    }
    for (uint32_t i = 0; i < m->nnodes; i++) {
        fp_engine_node_t *n = &e->nodes[e->nnodes];

        snprintf(n->addr, sizeof(n->addr), "%s", m->nodes[i]);
        n->node_id = m->node_ids != NULL ? m->node_ids[i] : 0;
        e->map_node[i] = e->nnodes++;
        status = node_connect(e, n);
        if (status != FP_OK && !m->by_key)
            goto err_stop; /* its only node */
    }
    /* Every slab needs a copy on a node that is up. */
    for (uint32_t i = 0; i < m->nslabs; i++) {
        bool up = false;

        for (uint32_t k = 0; k < m->replicas && !up; k++) {
            uint32_t node = fp_region_map_at(m, i, k)->node;

            up = node != FP_MAP_NO_NODE && e->nodes[e->map_node[node]].tp != NULL;
        }
        if (!up) {
            fp_error(e->log, "region %s: no node holding slab %" PRIu32 " can be reached", e->name,
                     i);
            status = FP_ERR_NOT_CONNECTED;
            goto err_stop;
        }
    }
    return FP_OK;

err_stop:
    fp_engine_nodes_stop(e);
    return status;
}

void fp_engine_nodes_stop(fp_engine_t *e)
{
    for (unsigned i = 0; i < e->nnodes; i++) {
        farpool_node_close(e->nodes[i].conn);
        free(e->nodes[i].stale);
        free(e->nodes[i].told);
    }
    free(e->nodes);
    free(e->pfd);
    free(e->pfd_node);
    free(e->map_node);
    e->nodes = NULL;
    e->pfd = NULL;
    e->pfd_node = NULL;
    e->map_node = NULL;
    e->nnodes = e->nlive = 0;
    fp_region_map_cleanup(&e->rmap);
    memset(e->secret, 0, sizeof(e->secret));
}

void fp_engine_nodes_interrupt(fp_engine_t *e, int fd)
{
    for (unsigned i = 0; i < e->nnodes; i++)
        if (e->nodes[i].tp != NULL)
            fp_transport_interrupt_on(e->nodes[i].tp, fd);
}

/* The first slab of block @b, and how many it spans. */
static uint32_t block_slabs(const fp_engine_t *e, uint64_t b, uint32_t *count_p)
{
    uint64_t off = fp_engine_block_off(e, b), len = fp_engine_block_len(e, b);
    uint64_t first = off / e->rmap.slab_size;

    *count_p = (uint32_t)((off + len - 1) / e->rmap.slab_size - first + 1);
    return (uint32_t)first;
}

bool fp_engine_copy_usable(fp_engine_t *e, uint64_t b, unsigned k)
{
    fp_engine_node_t *n = fp_engine_copy_node(e, b, k);
    uint32_t first, count;

    if (n == NULL || n->tp == NULL || n->fail != FP_OK || n->given_up)
        return false;
    if (n->stale == NULL)
        return true;
    first = block_slabs(e, b, &count);
    for (uint32_t i = first; i < first + count; i++)
        if (n->stale[i] == fp_region_map_at(&e->rmap, i, k)->slab)
            return false;
    return true;
}

bool fp_engine_copy_missed(fp_engine_t *e, fp_engine_node_t *n, uint64_t b,
                           const fp_proto_range_t *ranges)
{
    uint32_t first, count;
    bool known = n->stale != NULL;

    if (n->stale == NULL) {
        n->stale = malloc((size_t)e->rmap.nslabs * sizeof(*n->stale));
        if (n->stale == NULL) {
            /* Cannot say which copy is stale: none of this node is read again. */
            fp_error(e->log, "region %s: out of memory: node %s is given up", e->name, n->addr);
            n->given_up = true;
            fp_engine_node_failed(e, n, FP_ERR_NO_MEMORY);
            return true;
        }
        for (uint32_t i = 0; i < e->rmap.nslabs; i++)
            n->stale[i] = UINT64_MAX;
    }
    first = block_slabs(e, b, &count);
    for (uint32_t i = 0; i < count; i++) {
        known = known && n->stale[first + i] == ranges[i].slab;
        n->stale[first + i] = ranges[i].slab;
    }
    e->stale_unsaid = e->stale != NULL;
    return !known;
}

/* Tell the stale callback of the copies that missed a write (the loop's step; may block). */
static void stale_step(fp_engine_t *e)
{
    uint64_t now = fp_time_ns();
    bool unsaid = false;

    if (!e->stale_unsaid ||
        (e->stale_ns != 0 && now - e->stale_ns < (uint64_t)FP_ENGINE_REMAP_MS * FP_NS_PER_MS))
        return;
    for (unsigned j = 0; j < e->nnodes; j++) {
        fp_engine_node_t *n = &e->nodes[j];

        if (n->stale == NULL)
            continue;
        if (n->told == NULL) {
            n->told = malloc((size_t)e->rmap.nslabs * sizeof(*n->told));
            if (n->told == NULL) {
                unsaid = true;
                continue;
            }
            for (uint32_t i = 0; i < e->rmap.nslabs; i++)
                n->told[i] = UINT64_MAX;
        }
        for (uint32_t i = 0; i < e->rmap.nslabs; i++) {
            if (n->stale[i] == UINT64_MAX || n->told[i] == n->stale[i])
                continue;
            if (e->stale(e->remap_arg, i, n->addr) == FP_OK) {
                n->told[i] = n->stale[i];
            } else {
                unsaid = true;
                e->stale_ns = fp_time_ns();
                break;
            }
        }
    }
    e->stale_unsaid = unsaid;
}

fp_status_t fp_engine_submit(fp_engine_t *e, fp_engine_io_t *io, unsigned x, fp_engine_node_t *n)
{
    fp_status_t status;

    if (n->tp == NULL)
        return FP_ERR_NOT_CONNECTED;
    status = fp_transport_submit(n->tp, &io->xfer[x]);
    if (status != FP_OK) {
        /* The transport has far more slots than an engine has transfers. */
        if (status == FP_ERR_BUSY)
            fp_error(e->log, "region %s: the transport to node %s is full", e->name, n->addr);
        return status;
    }
    io->xnode[x] = (uint32_t)(n - e->nodes);
    io->sent |= (uint8_t)(1u << x);
    if (n->nxfer++ == 0)
        n->quiet_since = fp_time_ns();
    n->flush = true;
    return FP_OK;
}

fp_engine_node_t *fp_engine_xfer_ended(fp_engine_t *e, fp_engine_io_t *io, unsigned x,
                                       fp_status_t *status_p)
{
    fp_engine_node_t *n;

    if (!(io->sent & (1u << x)))
        return NULL; /* never sent */
    io->sent &= (uint8_t) ~(1u << x);
    n = &e->nodes[io->xnode[x]];
    /* The silence clock restarts at each completion; with none left, at the next submit. */
    if (--n->nxfer > 0)
        n->quiet_since = fp_time_ns();
    if (*status_p == FP_ERR_CANCELED && n->silenced)
        *status_p = FP_ERR_TIMED_OUT;
    return n;
}

void fp_engine_node_failed(fp_engine_t *e, fp_engine_node_t *n, fp_status_t status)
{
    if (n->tp == NULL || n->fail != FP_OK)
        return;
    n->fail = status;
    e->nodes_failed = true;
    e->kick = true;
}

void fp_engine_flush(fp_engine_t *e)
{
    for (unsigned i = 0; i < e->nnodes; i++) {
        fp_engine_node_t *n = &e->nodes[i];

        /* A broken connection is found, and handled, by the next progress. */
        if (n->flush && n->tp != NULL)
            (void)fp_transport_flush(n->tp);
        n->flush = false;
    }
}

unsigned fp_engine_nodes_poll(fp_engine_t *e)
{
    unsigned count = 0;

    for (unsigned i = 0; i < e->nnodes; i++) {
        fp_engine_node_t *n = &e->nodes[i];

        if (n->tp == NULL)
            continue;
        e->pfd[2 + count].fd = fp_transport_fd(n->tp);
        e->pfd[2 + count].events = POLLIN | (fp_transport_send_pending(n->tp) ? POLLOUT : 0);
        e->pfd_node[count++] = i;
    }
    return count;
}

void fp_engine_node_progress(fp_engine_t *e, fp_engine_node_t *n)
{
    if (n->tp == NULL)
        return;
    if (fp_transport_progress(n->tp, 0, NULL) == FP_ERR_NOT_CONNECTED) {
        /* Every transfer has completed with an error: fetches go to other copies. */
        fp_error(e->log, "region %s: lost the connection to node %s", e->name, n->addr);
        node_down(e, n);
    }
}

void fp_engine_nodes_step(fp_engine_t *e)
{
    uint64_t now = 0;

    stale_step(e);
    if (e->nodes_failed) {
        e->nodes_failed = false;
        for (unsigned i = 0; i < e->nnodes; i++) {
            fp_engine_node_t *n = &e->nodes[i];
            fp_status_t why = n->fail;

            n->fail = FP_OK;
            if (why == FP_OK || n->tp == NULL)
                continue;
            fp_error(e->log, "region %s: node %s failed a transfer (%s); disconnecting", e->name,
                     n->addr, fp_status_string(why));
            node_down(e, n);
        }
    }
    for (unsigned i = 0; i < e->nnodes; i++) {
        fp_engine_node_t *n = &e->nodes[i];

        if (n->tp == NULL || n->nxfer == 0)
            continue;
        if (now == 0)
            now = fp_time_ns();
        if (now - n->quiet_since < e->timeout_ns)
            continue;
        fp_error(e->log,
                 "region %s: node %s completed none of %u transfers in %" PRIu64
                 " ms; disconnecting",
                 e->name, n->addr, n->nxfer, (uint64_t)(e->timeout_ns / FP_NS_PER_MS));
        n->silenced = true;
        node_down(e, n);
        n->silenced = false;
    }
}

uint64_t fp_engine_nodes_deadline(const fp_engine_t *e)
{
    uint64_t deadline = UINT64_MAX;

    if (e->stale_unsaid) /* a stale copy to tell again */
        deadline = e->stale_ns + (uint64_t)FP_ENGINE_REMAP_MS * FP_NS_PER_MS;
    for (unsigned i = 0; i < e->nnodes; i++) {
        const fp_engine_node_t *n = &e->nodes[i];

        if (n->tp != NULL && n->nxfer > 0 && n->quiet_since + e->timeout_ns < deadline)
            deadline = n->quiet_since + e->timeout_ns;
    }
    return deadline;
}

/* The engine node at @addr that is farpoold @node_id (0: any), added (not connected) if none. */
static fp_status_t node_find(fp_engine_t *e, const char *addr, uint64_t node_id, uint32_t *index_p)
{
    fp_status_t status;

    for (unsigned i = 0; i < e->nnodes; i++) {
        if (strcmp(e->nodes[i].addr, addr) == 0 && e->nodes[i].node_id == node_id) {
            *index_p = i;
            return FP_OK;
        }
    }
    status = nodes_reserve(e, e->nnodes + 1);
    if (status != FP_OK)
        return status;
    snprintf(e->nodes[e->nnodes].addr, sizeof(e->nodes[e->nnodes].addr), "%s", addr);
    e->nodes[e->nnodes].node_id = node_id;
    *index_p = e->nnodes++;
    return FP_OK;
}

/* Adopt @m (taken: *@m is emptied), if it describes the same region. */
static fp_status_t map_adopt(fp_engine_t *e, fp_region_map_t *m)
{
    const fp_region_map_t *old = &e->rmap;
    uint32_t *map_node;
    fp_status_t status;
    unsigned up = 0;

    status = fp_region_map_check(m);
    if (status == FP_OK &&
        (m->size != old->size || m->granule != old->granule || m->slab_size != old->slab_size ||
         m->nslabs != old->nslabs || m->by_key != old->by_key ||
         (m->by_key && memcmp(m->key, old->key, sizeof(m->key)) != 0) ||
         (!m->by_key && (m->nnodes != 1 || strcmp(m->name, old->name) != 0))))
        status = FP_ERR_INVALID_PARAM;
    if (status != FP_OK) {
        fp_error(e->log, "region %s: the new map is not one of this region (%s); not adopted",
                 e->name, fp_status_string(status));
        return status;
    }
    map_node = malloc((size_t)m->nnodes * sizeof(*map_node));
    if (map_node == NULL)
        return FP_ERR_NO_MEMORY;
    for (uint32_t i = 0; i < m->nnodes; i++) {
        status = node_find(e, m->nodes[i], m->node_ids != NULL ? m->node_ids[i] : 0, &map_node[i]);
        if (status != FP_OK) {
            free(map_node);
            return status;
        }
    }
    free(e->map_node);
    e->map_node = map_node;
    fp_region_map_cleanup(&e->rmap);
    e->rmap = *m;
    memset(m, 0, sizeof(*m));
    e->map_gen++;
    /* Its nodes that are down (or new) are tried (again). */
    for (uint32_t i = 0; i < e->rmap.nnodes; i++) {
        fp_engine_node_t *n = &e->nodes[e->map_node[i]];

        if (n->tp == NULL && !n->given_up)
            (void)node_connect(e, n); /* it said why not */
        up += n->tp != NULL;
    }
    fp_warn(e->log, "region %s: a new map adopted: %" PRIu32 " nodes, %u of them up", e->name,
            e->rmap.nnodes, up);
    return FP_OK;
}

bool fp_engine_remap(fp_engine_t *e, uint64_t b)
{
    fp_region_map_t m;
    fp_status_t status;
    uint64_t now;

    if (e->remap == NULL)
        return false;
    now = fp_time_ns();
    if (e->remap_ns != 0 && now - e->remap_ns < (uint64_t)FP_ENGINE_REMAP_MS * FP_NS_PER_MS)
        return false;
    fp_warn(e->log, "region %s: no copy of block %" PRIu64 " left; asking for a new map", e->name,
            b);
    memset(&m, 0, sizeof(m));
    status = e->remap(e->remap_arg, &m);
    e->remap_ns = fp_time_ns();
    if (status == FP_OK)
        status = map_adopt(e, &m);
    else
        fp_warn(e->log, "region %s: no new map: %s", e->name, fp_status_string(status));
    fp_region_map_cleanup(&m);
    return status == FP_OK;
}
