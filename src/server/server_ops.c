/* SPDX-License-Identifier: MIT */
/*
 * The memory node's request handlers: HELLO and AUTH, STATS, PING, slab
 * allocation and freeing, named regions, and the ranges of data requests.
 * Each is called by server_conn.c with a complete, framed request in
 * c->hdr and answers it, or rejects it with the FP_ERR_* of
 * docs/protocol.md, through fp_server_conn_reply*(); none trusts a byte of
 * the payload it decodes.
 *
 * Named regions (region.h): a connection may touch a region's slabs once it
 * has created or opened the region; it keeps the ids of the regions it opened
 * in a small fixed array (FP_SERVER_CONN_REGIONS), which
 * fp_slab_store_access() checks. A deleted region's id stays in that array,
 * harmlessly (its generation is dead, and so are its slabs), until the slot
 * is needed for another.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "common/log.h"
#include "common/time.h"
#include "proto/proto.h"
#include "region.h"
#include "server_int.h"
#include "slab.h"

static void handle_hello(fp_server_t *srv, fp_server_conn_t *c, const uint8_t *payload)
{
    fp_proto_hello_req_t req;
    fp_proto_hello_rep_t rep;
    uint8_t buf[FP_PROTO_HELLO_REP_SIZE];
    fp_status_t status;

    if (c->phase != FP_SERVER_PHASE_HELLO) {
        fp_server_conn_fail(srv, c, FP_ERR_PROTOCOL, "second HELLO");
        return;
    }
    status = fp_proto_hello_req_decode(payload, c->hdr.length, &req);
    if (status != FP_OK) {
        fp_server_conn_fail(srv, c, status, "bad HELLO");
        return;
    }
    memcpy(c->key, req.client_key, sizeof(c->key));
    memset(&rep, 0, sizeof(rep));
    rep.version = FP_PROTO_VERSION;
    rep.flags = srv->params.secret != NULL ? FP_PROTO_HELLO_AUTH_REQUIRED : 0;
    rep.node_id = srv->node_id;
    if (fp_proto_random(c->nonce, sizeof(c->nonce)) != FP_OK) {
        fp_server_conn_fail(srv, c, FP_ERR_IO, "no random numbers");
        return;
    }
    memcpy(rep.nonce, c->nonce, sizeof(rep.nonce));
    rep.slab_size = srv->store.slab_size;
    rep.max_data = FP_PROTO_MAX_DATA;
    rep.max_ranges = FP_PROTO_MAX_RANGES;
    fp_proto_hello_rep_encode(&rep, buf);
    c->phase = srv->params.secret != NULL ? FP_SERVER_PHASE_AUTH : FP_SERVER_PHASE_READY;
    fp_server_conn_reply(srv, c, FP_OK, buf, sizeof(buf));
    if (c->phase == FP_SERVER_PHASE_READY)
        fp_info(srv->log, "%s: client connected", c->peer);
}

static void handle_auth(fp_server_t *srv, fp_server_conn_t *c, const uint8_t *payload)
{
    uint8_t mac[FP_PROTO_MAC_SIZE];
    const uint8_t *client_nonce = payload;
    const uint8_t *client_mac = payload + FP_PROTO_NONCE_SIZE;

    if (c->phase != FP_SERVER_PHASE_AUTH || c->hdr.length != FP_PROTO_AUTH_REQ_SIZE) {
        fp_server_conn_fail(srv, c, FP_ERR_PROTOCOL, "unexpected AUTH");
        return;
    }
    if (fp_proto_auth_verify(FP_PROTO_AUTH_CLIENT, srv->params.secret, srv->params.secret_len,
                             c->nonce, client_nonce, c->key, client_mac) != FP_OK) {
        fp_server_conn_fail(srv, c, FP_ERR_AUTH, "wrong secret");
        return;
    }
    fp_proto_auth_mac(FP_PROTO_AUTH_NODE, srv->params.secret, srv->params.secret_len, c->nonce,
                      client_nonce, c->key, mac);
    c->phase = FP_SERVER_PHASE_READY;
    fp_server_conn_reply(srv, c, FP_OK, mac, sizeof(mac));
    fp_info(srv->log, "%s: client authenticated", c->peer);
}

static void handle_stats(fp_server_t *srv, fp_server_conn_t *c)
{
    const fp_server_counters_t *m = &srv->counters;
    uint8_t buf[FP_PROTO_STATS_REP_SIZE];
    uint64_t requests = 0, errors = 0;

    for (unsigned i = 0; i < FP_METRICS_OPS; i++)
        requests += fp_metrics_get(&m->requests[i]);
    for (unsigned i = 0; i < FP_METRICS_KINDS; i++)
        errors += fp_metrics_get(&m->errors[i]);
    uint64_t v[FP_PROTO_STATS_FIELDS] = {
        srv->store.capacity,
        srv->store.mapped,
        srv->store.slab_size,
        srv->store.nlive,
        srv->nclients,
        fp_metrics_get(&m->bytes_read),
        fp_metrics_get(&m->bytes_written),
        requests,
        errors,
        (fp_time_ns() - srv->start_ns) / FP_NS_PER_MS,
    };

    for (unsigned i = 0; i < FP_PROTO_STATS_FIELDS; i++)
        fp_proto_put_u64(buf + 8 * i, v[i]);
    fp_server_conn_reply(srv, c, FP_OK, buf, sizeof(buf));
}

static void handle_alloc(fp_server_t *srv, fp_server_conn_t *c)
{
    uint8_t buf[FP_PROTO_ALLOC_REP_SIZE];
    uint64_t id;
    fp_status_t status;

    if (c->hdr.length != 0) {
        fp_server_conn_reply_error(srv, c, FP_ERR_PROTOCOL, "SLAB_ALLOC takes no payload");
        return;
    }
    status = fp_slab_store_alloc(&srv->store, c->key, 0, &id);
    if (status != FP_OK) {
        fp_server_conn_reply_error(srv, c, status, NULL);
        return;
    }
    fp_proto_put_u64(buf, id);
    fp_proto_put_u64(buf + 8, srv->store.slab_size);
    fp_debug(srv->log, "%s: slab %#llx allocated", c->peer, (unsigned long long)id);
    fp_server_conn_reply(srv, c, FP_OK, buf, sizeof(buf));
}

static void handle_free(fp_server_t *srv, fp_server_conn_t *c, const uint8_t *payload)
{
    fp_status_t status;
    uint64_t id;

    if (c->hdr.length != FP_PROTO_FREE_REQ_SIZE) {
        fp_server_conn_reply_error(srv, c, FP_ERR_PROTOCOL, "SLAB_FREE takes 8 bytes");
        return;
    }
    id = fp_proto_get_u64(payload);
    status = fp_slab_store_free(&srv->store, c->key, id);
    if (status != FP_OK) {
        fp_server_conn_reply_error(srv, c, status, NULL);
        return;
    }
    fp_server_conn_reply(srv, c, FP_OK, NULL, 0);
}

/* Is region @id open on @c? */
static bool conn_region_is_open(const fp_server_conn_t *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->nregions; i++) {
        if (c->regions[i] == id)
            return true;
    }
    return false;
}

/*
 * Make room for one more open region on @c, dropping the ids of regions
 * deleted since they were opened. False if all FP_SERVER_CONN_REGIONS are live.
 */
static bool conn_region_room(fp_server_t *srv, fp_server_conn_t *c)
{
    uint32_t kept = 0;

    if (c->nregions < FP_SERVER_CONN_REGIONS)
        return true;
    for (uint32_t i = 0; i < c->nregions; i++) {
        if (fp_region_id_live(&srv->regions, c->regions[i]))
            c->regions[kept++] = c->regions[i];
    }
    c->nregions = kept;
    return kept < FP_SERVER_CONN_REGIONS;
}

/* Reply to REGION_CREATE or REGION_OPEN with @region's description. */
static void reply_region(fp_server_t *srv, fp_server_conn_t *c, const fp_region_t *region,
                         uint64_t id)
{
    uint8_t buf[FP_PROTO_REGION_REP_SIZE];
    fp_proto_region_rep_t rep = {
        .region_id = id,
        .size = region->size,
        .granule = region->granule,
        .flags = region->flags,
        .slab_size = srv->store.slab_size,
        .nslabs = region->nslabs,
    };

    fp_proto_region_rep_encode(&rep, buf);
    fp_server_conn_reply(srv, c, FP_OK, buf, sizeof(buf));
}

static void handle_region_create(fp_server_t *srv, fp_server_conn_t *c, const uint8_t *payload)
{
    fp_proto_region_create_req_t req;
    fp_region_t *region;
    fp_status_t status;
    uint64_t id;

    status = fp_proto_region_create_req_decode(payload, c->hdr.length, &req);
    if (status != FP_OK) {
        fp_server_conn_reply_error(srv, c, status, "bad REGION_CREATE");
        return;
    }
    if (!conn_region_room(srv, c)) {
        fp_server_conn_reply_error(srv, c, FP_ERR_NO_SPACE,
                                   "too many regions open on this connection");
        return;
    }
    status = fp_region_create(&srv->regions, &req, &region);
    if (status != FP_OK) {
        fp_server_conn_reply_error(srv, c, status, req.name.text);
        return;
    }
    id = fp_region_id(&srv->regions, region);
    c->regions[c->nregions++] = id;
    fp_info(srv->log, "%s: region '%s' created: %llu bytes in %u slabs", c->peer, region->name.text,
            (unsigned long long)region->size, region->nslabs);
    reply_region(srv, c, region, id);
}

static void handle_region_open(fp_server_t *srv, fp_server_conn_t *c, const uint8_t *payload)
{
    fp_proto_region_name_t name;
    fp_region_t *region;
    fp_status_t status;
    uint64_t id;

    status = fp_proto_region_name_req_decode(payload, c->hdr.length, &name);
    if (status != FP_OK) {
        fp_server_conn_reply_error(srv, c, status, "bad REGION_OPEN");
        return;
    }
    status = fp_region_find(&srv->regions, &name, &region);
    if (status != FP_OK) {
        fp_server_conn_reply_error(srv, c, status, name.text);
        return;
    }
    id = fp_region_id(&srv->regions, region);
    if (!conn_region_is_open(c, id)) {
        if (!conn_region_room(srv, c)) {
            fp_server_conn_reply_error(srv, c, FP_ERR_NO_SPACE,
                                       "too many regions open on this connection");
            return;
        }
        c->regions[c->nregions++] = id;
    }
    reply_region(srv, c, region, id);
}

static void handle_region_slabs(fp_server_t *srv, fp_server_conn_t *c, const uint8_t *payload)
{
    uint8_t buf[FP_PROTO_REGION_SLABS_MAX * 8];
    fp_proto_region_slabs_req_t req;
    fp_region_t *region;
    fp_status_t status;
    uint32_t len;

    status = fp_proto_region_slabs_req_decode(payload, c->hdr.length, &req);
    if (status != FP_OK) {
        fp_server_conn_reply_error(srv, c, status, "bad REGION_SLABS");
        return;
    }
    if (!conn_region_is_open(c, req.region_id)) {
        fp_server_conn_reply_error(srv, c, FP_ERR_PERMISSION, "region not open on this connection");
        return;
    }
    status = fp_region_lookup(&srv->regions, req.region_id, &region);
    if (status != FP_OK) {
        fp_server_conn_reply_error(srv, c, status, "region deleted");
        return;
    }
    if ((uint64_t)req.first + req.count > region->nslabs) {
        fp_server_conn_reply_error(srv, c, FP_ERR_OUT_OF_RANGE, "past the region's last slab");
        return;
    }
    len = fp_proto_region_slabs_rep_encode(region->slabs + req.first, req.count, buf);
    fp_server_conn_reply(srv, c, FP_OK, buf, len);
}

static void handle_region_delete(fp_server_t *srv, fp_server_conn_t *c, const uint8_t *payload)
{
    fp_proto_region_name_t name;
    fp_status_t status;

    status = fp_proto_region_name_req_decode(payload, c->hdr.length, &name);
    if (status != FP_OK) {
        fp_server_conn_reply_error(srv, c, status, "bad REGION_DELETE");
        return;
    }
    status = fp_region_delete(&srv->regions, &name);
    if (status != FP_OK) {
        fp_server_conn_reply_error(srv, c, status, name.text);
        return;
    }
    fp_info(srv->log, "%s: region '%s' deleted", c->peer, name.text);
    fp_server_conn_reply(srv, c, FP_OK, NULL, 0);
}

/* A complete control frame (payload in @payload). */
void fp_server_op_control(fp_server_t *srv, fp_server_conn_t *c, const uint8_t *payload)
{
    uint8_t op = c->hdr.op;

    if (op == FP_OP_HELLO) {
        handle_hello(srv, c, payload);
        return;
    }
    if (op == FP_OP_AUTH) {
        handle_auth(srv, c, payload);
        return;
    }
    switch (op) {
    case FP_OP_PING:
        fp_server_conn_reply(srv, c, FP_OK, payload, c->hdr.length);
        break;
    case FP_OP_STATS:
        if (c->hdr.length != 0)
            fp_server_conn_reply_error(srv, c, FP_ERR_PROTOCOL, "STATS takes no payload");
        else
            handle_stats(srv, c);
        break;
    case FP_OP_SLAB_ALLOC:
        handle_alloc(srv, c);
        break;
    case FP_OP_SLAB_FREE:
        handle_free(srv, c, payload);
        break;
    case FP_OP_REGION_CREATE:
        handle_region_create(srv, c, payload);
        break;
    case FP_OP_REGION_OPEN:
        handle_region_open(srv, c, payload);
        break;
    case FP_OP_REGION_SLABS:
        handle_region_slabs(srv, c, payload);
        break;
    case FP_OP_REGION_DELETE:
        handle_region_delete(srv, c, payload);
        break;
    default:
        if (!fp_proto_op_is_pool(op))
            fp_server_conn_reply_error(srv, c, FP_ERR_UNSUPPORTED, "unknown opcode");
        else if (srv->params.pool_op == NULL)
            fp_server_conn_reply_error(srv, c, FP_ERR_UNSUPPORTED,
                                       "not the pool's metadata node (farpoold --meta-dir)");
        else
            srv->params.pool_op(srv->params.pool_arg, c->serial, c->key, op, c->hdr.id, payload,
                                c->hdr.length);
        break;
    }
}

/* Check every range of a data request; on success take references. */
static fp_status_t resolve_ranges(fp_server_t *srv, fp_server_conn_t *c, uint32_t count,
                                  fp_slab_t **slabs, struct iovec *iov)
{
    for (uint32_t i = 0; i < count; i++) {
        uint8_t *addr;
        fp_status_t status = fp_slab_store_access(&srv->store, c->key, c->regions, c->nregions,
                                                  &srv->ranges[i], &slabs[i], &addr);
        if (status != FP_OK)
            return status;
        iov[i].iov_base = addr;
        iov[i].iov_len = srv->ranges[i].length;
    }
    for (uint32_t i = 0; i < count; i++)
        fp_slab_ref(slabs[i]);
    return FP_OK;
}

/*
 * The args of a data frame are in @args. READs are answered at once; a WRITE
 * switches the connection to FP_SERVER_RX_DATA (or FP_SERVER_RX_DISCARD when rejected).
 */
void fp_server_op_data(fp_server_t *srv, fp_server_conn_t *c, const uint8_t *args,
                       uint32_t args_len)
{
    bool is_write = c->hdr.op == FP_OP_WRITE || c->hdr.op == FP_OP_WRITEV;
    uint32_t count, data_len, rest = c->hdr.length - args_len;
    fp_status_t status;
    fp_server_out_t *item;

    status = fp_proto_ranges_decode(&c->hdr, args, args_len, srv->ranges, &count, &data_len);
    if (status != FP_OK) {
        /* The frame length is trusted (checked in the header): skip the rest. */
        if (rest > 0)
            fp_server_conn_skip(c, rest, status);
        else
            fp_server_conn_reply_error(srv, c, status, "bad ranges");
        return;
    }

    /* A WRITE borrows the item to resolve its ranges, so it needs the iovecs too. */
    item = fp_server_out_new((int)count, count, 0);
    if (item == NULL) {
        fp_error(srv->log, "%s: out of memory for a request", c->peer);
        c->closing = true;
        return;
    }
    status = resolve_ranges(srv, c, count, item->slabs, item->iov + 1);
    if (status != FP_OK) {
        free(item);
        if (rest > 0)
            fp_server_conn_skip(c, rest, status);
        else
            fp_server_conn_reply_error(srv, c, status, NULL);
        return;
    }
    item->nslabs = count;
    if (!is_write) {
        item->iovcnt = (int)count + 1;
        fp_metrics_add(&srv->counters.bytes_read, data_len);
        fp_server_conn_queue(srv, c, item, c->hdr.op, c->hdr.id, FP_OK, data_len);
        return;
    }
    /* WRITE: keep the resolved ranges while the data arrives. */
    memcpy(c->wiov, item->iov + 1, count * sizeof(struct iovec));
    memcpy(c->wslabs, item->slabs, count * sizeof(fp_slab_t *));
    free(item);
    c->wcnt = count;
    c->widx = 0;
    c->woff = 0;
    c->data_left = c->data_total = data_len;
    c->rx = FP_SERVER_RX_DATA;
}
