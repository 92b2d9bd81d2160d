/* SPDX-License-Identifier: MIT */
/*
 * The memory node's event loop and request handling; see server.h.
 *
 * DESIGN
 * One thread, one epoll set, level-triggered. Each connection reads into a
 * staging buffer and parses as many complete frames as it holds. Data moves
 * without intermediate copies where it is large: a READ reply is queued as an
 * iovec pointing into slab memory and leaves with sendmsg(); the data of a
 * WRITE beyond what the staging buffer already holds is read with readv()
 * straight into the slab. Slabs referenced by queued replies or a receive in
 * progress hold a reference (slab.h), so a concurrent free cannot pull the
 * memory from under them.
 *
 * Every byte from a client is untrusted. The header is checked first
 * (proto.c); a header that cannot be trusted loses the frame boundaries, so
 * the node answers with an error (echoing the id when it could read one) and
 * closes that connection. A well-framed but invalid request gets an error reply
 * and the connection stays usable; the data of a rejected WRITE is read and
 * discarded, never stored. Nothing a client sends reaches another client's
 * state. Every rejection is logged once, at warn level.
 *
 * Named regions (region.h): a connection may touch a region's slabs once it
 * has created or opened the region; it keeps the ids of the regions it opened
 * in a small fixed array (CONN_REGIONS), which fp_slab_store_access() checks.
 * A deleted region's id stays in that array, harmlessly (its generation is
 * dead, and so are its slabs), until the slot is needed for another.
 *
 * Flow control: a connection whose queued replies exceed OUT_HIGH_WATER bytes
 * is not read from until they drain, so a client that never reads its replies
 * cannot make the node buffer without bound.
 *
 * Timeouts, checked every SWEEP_MS: the handshake (HELLO, and AUTH when a
 * secret is set) must finish within handshake_timeout_ms; a connection that
 * stops mid-frame for idle_timeout_ms is closed.
 */
#include "server.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"
#include "proto/proto.h"
#include "region.h"
#include "slab.h"

#define IN_BUF_SIZE    (256u << 10)
#define DIRECT_MIN     (64u << 10)
#define OUT_HIGH_WATER (64u << 20)
#define SEND_IOV_MAX   1024
#define SWEEP_MS       200
#define MAX_EVENTS     64
#define READ_BUDGET    (8u << 20) /* bytes read from one connection per wakeup */
#define CONN_REGIONS   64         /* regions one connection may have open */

typedef enum conn_phase {
    PHASE_HELLO = 0, /* waiting for HELLO */
    PHASE_AUTH,      /* waiting for AUTH */
    PHASE_READY,
} conn_phase_t;

typedef enum conn_rx {
    RX_HEADER = 0, /* waiting for a frame header */
    RX_BODY,       /* waiting for the args (data ops) or the whole payload */
    RX_DATA,       /* receiving WRITE data into slabs */
    RX_DISCARD,    /* skipping the rest of a rejected frame */
} conn_rx_t;

/* A reply waiting to be sent. */
typedef struct out_item {
    struct out_item *next;
    uint8_t hdr[FP_PROTO_HDR_SIZE];
    int iovcnt, iovpos;
    uint32_t nslabs;
    fp_slab_t **slabs; /* references to drop once sent */
    struct iovec *iov;
    uint8_t *payload; /* small control payloads are copied here */
} out_item_t;

typedef struct conn {
    struct conn *prev, *next;
    int fd;
    char peer[64];
    conn_phase_t phase;
    uint8_t key[FP_PROTO_KEY_SIZE];
    uint8_t nonce[FP_PROTO_NONCE_SIZE];
    uint64_t regions[CONN_REGIONS]; /* ids of the regions opened (some may be deleted since) */
    uint32_t nregions;
    uint64_t accepted_ns;
    uint64_t last_rx_ns;
    uint32_t events;  /* what epoll watches now */
    bool closing;     /* send what is queued, then close */
    bool more_frames; /* frames read but not parsed yet: parse on the next round */

    uint8_t *in;
    size_t ipos, ilen;
    conn_rx_t rx;
    fp_proto_hdr_t hdr;
    uint32_t skip_left; /* RX_DISCARD: bytes still to skip */
    fp_status_t skip_status;

    /* RX_DATA: where the current WRITE's data goes. */
    struct iovec *wiov;
    fp_slab_t **wslabs;
    uint32_t wcnt, widx;
    size_t woff;
    uint32_t data_left, data_total;

    out_item_t *oq_head, *oq_tail;
    size_t oq_bytes;
} conn_t;

struct fp_server {
    fp_server_params_t params;
    const fp_log_t *log; /* params.log */
    uint8_t secret[1024];
    fp_slab_store_t store;
    fp_region_table_t regions;
    int epfd;
    int listen_fd;
    int stop_fd;
    fp_addr_t local;
    conn_t *conns;
    uint64_t node_id;
    uint64_t start_ns;
    fp_proto_range_t *ranges; /* scratch for decoding, FP_PROTO_MAX_RANGES */
    /* Counters for STATS. */
    uint64_t nclients;
    uint64_t bytes_read, bytes_written, requests, errors;
};

/* Markers for epoll's data pointer. */
static char listen_marker, stop_marker;

static void conn_close(fp_server_t *srv, conn_t *c);

static void conn_update_events(fp_server_t *srv, conn_t *c)
{
    uint32_t want = 0;
    struct epoll_event ev;

    if (!c->closing && c->oq_bytes < OUT_HIGH_WATER)
        want |= EPOLLIN;
    if (c->oq_head != NULL || (c->more_frames && !c->closing))
        want |= EPOLLOUT;
    if (want == c->events)
        return;
    ev.events = want;
    ev.data.ptr = c;
    if (epoll_ctl(srv->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->events = want;
}

static void out_item_free(fp_server_t *srv, out_item_t *item)
{
    for (uint32_t i = 0; i < item->nslabs; i++)
        fp_slab_unref(&srv->store, item->slabs[i]);
    free(item);
}

/*
 * Allocate a reply with room for @niov data iovecs, @nslabs slab references and
 * a copied @payload_len-byte payload, all in one block.
 */
static out_item_t *out_item_new(int niov, uint32_t nslabs, size_t payload_len)
{
    out_item_t *item;
    size_t size = sizeof(*item) + (size_t)(niov + 1) * sizeof(struct iovec) +
                  nslabs * sizeof(fp_slab_t *) + payload_len;

    item = malloc(size);
    if (item == NULL)
        return NULL;
    memset(item, 0, sizeof(*item));
    item->iov = (struct iovec *)(item + 1);
    item->slabs = (fp_slab_t **)(item->iov + niov + 1);
    item->payload = (uint8_t *)(item->slabs + nslabs);
    return item;
}

static void conn_queue(fp_server_t *srv, conn_t *c, out_item_t *item, uint8_t op, uint64_t id,
                       fp_status_t status, uint32_t length)
{
    fp_proto_hdr_t hdr = {FP_PROTO_VERSION, op, FP_PROTO_FLAG_REPLY, id, status, length};

    fp_proto_hdr_encode(&hdr, item->hdr);
    item->iov[0].iov_base = item->hdr;
    item->iov[0].iov_len = FP_PROTO_HDR_SIZE;
    item->next = NULL;
    if (c->oq_tail != NULL)
        c->oq_tail->next = item;
    else
        c->oq_head = item;
    c->oq_tail = item;
    c->oq_bytes += FP_PROTO_HDR_SIZE + length;
    srv->requests++;
    if (status != FP_OK)
        srv->errors++;
}

/* Queue a reply whose payload (possibly empty) is copied. */
static void reply(fp_server_t *srv, conn_t *c, fp_status_t status, const void *payload,
                  uint32_t len)
{
    out_item_t *item = out_item_new(1, 0, len);

    if (item == NULL) {
        fp_error(srv->log, "%s: out of memory for a reply; closing", c->peer);
        c->closing = true;
        return;
    }
    item->iovcnt = 1;
    if (len > 0) {
        memcpy(item->payload, payload, len);
        item->iov[1].iov_base = item->payload;
        item->iov[1].iov_len = len;
        item->iovcnt = 2;
    }
    conn_queue(srv, c, item, c->hdr.op, c->hdr.id, status, len);
}

static void reply_error(fp_server_t *srv, conn_t *c, fp_status_t status, const char *what)
{
    fp_warn(srv->log, "%s: %s #%llu rejected: %s%s%s", c->peer, fp_proto_op_name(c->hdr.op),
            (unsigned long long)c->hdr.id, fp_status_string(status), what ? ": " : "",
            what ? what : "");
    reply(srv, c, status, NULL, 0);
}

/* A fatal error on @c: say why, reply if possible, and close once flushed. */
static void conn_fail(fp_server_t *srv, conn_t *c, fp_status_t status, const char *what)
{
    reply_error(srv, c, status, what);
    c->closing = true;
}

static void handle_hello(fp_server_t *srv, conn_t *c, const uint8_t *payload)
{
    fp_proto_hello_req_t req;
    fp_proto_hello_rep_t rep;
    uint8_t buf[FP_PROTO_HELLO_REP_SIZE];
    fp_status_t status;

    if (c->phase != PHASE_HELLO) {
        conn_fail(srv, c, FP_ERR_PROTOCOL, "second HELLO");
        return;
    }
    status = fp_proto_hello_req_decode(payload, c->hdr.length, &req);
    if (status != FP_OK) {
        conn_fail(srv, c, status, "bad HELLO");
        return;
    }
    memcpy(c->key, req.client_key, sizeof(c->key));
    memset(&rep, 0, sizeof(rep));
    rep.version = FP_PROTO_VERSION;
    rep.flags = srv->params.secret != NULL ? FP_PROTO_HELLO_AUTH_REQUIRED : 0;
    rep.node_id = srv->node_id;
    if (fp_proto_random(c->nonce, sizeof(c->nonce)) != FP_OK) {
        conn_fail(srv, c, FP_ERR_IO, "no random numbers");
        return;
    }
    memcpy(rep.nonce, c->nonce, sizeof(rep.nonce));
    rep.slab_size = srv->store.slab_size;
    rep.max_data = FP_PROTO_MAX_DATA;
    rep.max_ranges = FP_PROTO_MAX_RANGES;
    fp_proto_hello_rep_encode(&rep, buf);
    c->phase = srv->params.secret != NULL ? PHASE_AUTH : PHASE_READY;
    reply(srv, c, FP_OK, buf, sizeof(buf));
    if (c->phase == PHASE_READY)
        fp_info(srv->log, "%s: client connected", c->peer);
}

static void handle_auth(fp_server_t *srv, conn_t *c, const uint8_t *payload)
{
    uint8_t mac[FP_PROTO_MAC_SIZE];
    const uint8_t *client_nonce = payload;
    const uint8_t *client_mac = payload + FP_PROTO_NONCE_SIZE;

    if (c->phase != PHASE_AUTH || c->hdr.length != FP_PROTO_AUTH_REQ_SIZE) {
        conn_fail(srv, c, FP_ERR_PROTOCOL, "unexpected AUTH");
        return;
    }
    if (fp_proto_auth_verify(FP_PROTO_AUTH_CLIENT, srv->params.secret, srv->params.secret_len,
                             c->nonce, client_nonce, c->key, client_mac) != FP_OK) {
        conn_fail(srv, c, FP_ERR_AUTH, "wrong secret");
        return;
    }
    fp_proto_auth_mac(FP_PROTO_AUTH_NODE, srv->params.secret, srv->params.secret_len, c->nonce,
                      client_nonce, c->key, mac);
    c->phase = PHASE_READY;
    reply(srv, c, FP_OK, mac, sizeof(mac));
    fp_info(srv->log, "%s: client authenticated", c->peer);
}

static void handle_stats(fp_server_t *srv, conn_t *c)
{
    uint8_t buf[FP_PROTO_STATS_REP_SIZE];
    uint64_t v[FP_PROTO_STATS_FIELDS] = {
        srv->store.capacity,  srv->store.mapped,
        srv->store.slab_size, srv->store.nlive,
        srv->nclients,        srv->bytes_read,
        srv->bytes_written,   srv->requests,
        srv->errors,          (fp_time_ns() - srv->start_ns) / FP_NS_PER_MS,
    };

    for (unsigned i = 0; i < FP_PROTO_STATS_FIELDS; i++)
        fp_proto_put_u64(buf + 8 * i, v[i]);
    reply(srv, c, FP_OK, buf, sizeof(buf));
}

static void handle_alloc(fp_server_t *srv, conn_t *c)
{
    uint8_t buf[FP_PROTO_ALLOC_REP_SIZE];
    uint64_t id;
    fp_status_t status;

    if (c->hdr.length != 0) {
        reply_error(srv, c, FP_ERR_PROTOCOL, "SLAB_ALLOC takes no payload");
        return;
    }
    status = fp_slab_store_alloc(&srv->store, c->key, 0, &id);
    if (status != FP_OK) {
        reply_error(srv, c, status, NULL);
        return;
    }
    fp_proto_put_u64(buf, id);
    fp_proto_put_u64(buf + 8, srv->store.slab_size);
    fp_debug(srv->log, "%s: slab %#llx allocated", c->peer, (unsigned long long)id);
    reply(srv, c, FP_OK, buf, sizeof(buf));
}

static void handle_free(fp_server_t *srv, conn_t *c, const uint8_t *payload)
{
    fp_status_t status;
    uint64_t id;

    if (c->hdr.length != FP_PROTO_FREE_REQ_SIZE) {
        reply_error(srv, c, FP_ERR_PROTOCOL, "SLAB_FREE takes 8 bytes");
        return;
    }
    id = fp_proto_get_u64(payload);
    status = fp_slab_store_free(&srv->store, c->key, id);
    if (status != FP_OK) {
        reply_error(srv, c, status, NULL);
        return;
    }
    reply(srv, c, FP_OK, NULL, 0);
}

/* Is region @id open on @c? */
static bool conn_region_is_open(const conn_t *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->nregions; i++) {
        if (c->regions[i] == id)
            return true;
    }
    return false;
}

/*
 * Make room for one more open region on @c, dropping the ids of regions
 * deleted since they were opened. False if all CONN_REGIONS are live.
 */
static bool conn_region_room(fp_server_t *srv, conn_t *c)
{
    uint32_t kept = 0;

    if (c->nregions < CONN_REGIONS)
        return true;
    for (uint32_t i = 0; i < c->nregions; i++) {
        if (fp_region_id_live(&srv->regions, c->regions[i]))
            c->regions[kept++] = c->regions[i];
    }
    c->nregions = kept;
    return kept < CONN_REGIONS;
}

/* Reply to REGION_CREATE or REGION_OPEN with @region's description. */
static void reply_region(fp_server_t *srv, conn_t *c, const fp_region_t *region, uint64_t id)
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
    reply(srv, c, FP_OK, buf, sizeof(buf));
}

static void handle_region_create(fp_server_t *srv, conn_t *c, const uint8_t *payload)
{
    fp_proto_region_create_req_t req;
    fp_region_t *region;
    fp_status_t status;
    uint64_t id;

    status = fp_proto_region_create_req_decode(payload, c->hdr.length, &req);
    if (status != FP_OK) {
        reply_error(srv, c, status, "bad REGION_CREATE");
        return;
    }
    if (!conn_region_room(srv, c)) {
        reply_error(srv, c, FP_ERR_NO_SPACE, "too many regions open on this connection");
        return;
    }
    status = fp_region_create(&srv->regions, &req, &region);
    if (status != FP_OK) {
        reply_error(srv, c, status, req.name.text);
        return;
    }
    id = fp_region_id(&srv->regions, region);
    c->regions[c->nregions++] = id;
    fp_info(srv->log, "%s: region '%s' created: %llu bytes in %u slabs", c->peer, region->name.text,
            (unsigned long long)region->size, region->nslabs);
    reply_region(srv, c, region, id);
}

static void handle_region_open(fp_server_t *srv, conn_t *c, const uint8_t *payload)
{
    fp_proto_region_name_t name;
    fp_region_t *region;
    fp_status_t status;
    uint64_t id;

    status = fp_proto_region_name_req_decode(payload, c->hdr.length, &name);
    if (status != FP_OK) {
        reply_error(srv, c, status, "bad REGION_OPEN");
        return;
    }
    status = fp_region_find(&srv->regions, &name, &region);
    if (status != FP_OK) {
        reply_error(srv, c, status, name.text);
        return;
    }
    id = fp_region_id(&srv->regions, region);
    if (!conn_region_is_open(c, id)) {
        if (!conn_region_room(srv, c)) {
            reply_error(srv, c, FP_ERR_NO_SPACE, "too many regions open on this connection");
            return;
        }
        c->regions[c->nregions++] = id;
    }
    reply_region(srv, c, region, id);
}

static void handle_region_slabs(fp_server_t *srv, conn_t *c, const uint8_t *payload)
{
    uint8_t buf[FP_PROTO_REGION_SLABS_MAX * 8];
    fp_proto_region_slabs_req_t req;
    fp_region_t *region;
    fp_status_t status;
    uint32_t len;

    status = fp_proto_region_slabs_req_decode(payload, c->hdr.length, &req);
    if (status != FP_OK) {
        reply_error(srv, c, status, "bad REGION_SLABS");
        return;
    }
    if (!conn_region_is_open(c, req.region_id)) {
        reply_error(srv, c, FP_ERR_PERMISSION, "region not open on this connection");
        return;
    }
    status = fp_region_lookup(&srv->regions, req.region_id, &region);
    if (status != FP_OK) {
        reply_error(srv, c, status, "region deleted");
        return;
    }
    if ((uint64_t)req.first + req.count > region->nslabs) {
        reply_error(srv, c, FP_ERR_OUT_OF_RANGE, "past the region's last slab");
        return;
    }
    len = fp_proto_region_slabs_rep_encode(region->slabs + req.first, req.count, buf);
    reply(srv, c, FP_OK, buf, len);
}

static void handle_region_delete(fp_server_t *srv, conn_t *c, const uint8_t *payload)
{
    fp_proto_region_name_t name;
    fp_status_t status;

    status = fp_proto_region_name_req_decode(payload, c->hdr.length, &name);
    if (status != FP_OK) {
        reply_error(srv, c, status, "bad REGION_DELETE");
        return;
    }
    status = fp_region_delete(&srv->regions, &name);
    if (status != FP_OK) {
        reply_error(srv, c, status, name.text);
        return;
    }
    fp_info(srv->log, "%s: region '%s' deleted", c->peer, name.text);
    reply(srv, c, FP_OK, NULL, 0);
}

/* A complete control frame (payload in @payload). */
static void handle_control(fp_server_t *srv, conn_t *c, const uint8_t *payload)
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
        reply(srv, c, FP_OK, payload, c->hdr.length);
        break;
    case FP_OP_STATS:
        if (c->hdr.length != 0)
            reply_error(srv, c, FP_ERR_PROTOCOL, "STATS takes no payload");
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
        reply_error(srv, c, FP_ERR_UNSUPPORTED, "unknown opcode");
        break;
    }
}

/* Check every range of a data request; on success take references. */
static fp_status_t resolve_ranges(fp_server_t *srv, conn_t *c, uint32_t count, fp_slab_t **slabs,
                                  struct iovec *iov)
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

static void skip_frame(conn_t *c, uint32_t left, fp_status_t status)
{
    c->rx = RX_DISCARD;
    c->skip_left = left;
    c->skip_status = status;
}

/*
 * The args of a data frame are in @args. READs are answered at once; a WRITE
 * switches the connection to RX_DATA (or RX_DISCARD when rejected).
 */
static void handle_data(fp_server_t *srv, conn_t *c, const uint8_t *args, uint32_t args_len)
{
    bool is_write = c->hdr.op == FP_OP_WRITE || c->hdr.op == FP_OP_WRITEV;
    uint32_t count, data_len, rest = c->hdr.length - args_len;
    fp_status_t status;
    out_item_t *item;

    status = fp_proto_ranges_decode(&c->hdr, args, args_len, srv->ranges, &count, &data_len);
    if (status != FP_OK) {
        /* The frame length is trusted (checked in the header): skip the rest. */
        if (rest > 0)
            skip_frame(c, rest, status);
        else
            reply_error(srv, c, status, "bad ranges");
        return;
    }

    /* A WRITE borrows the item to resolve its ranges, so it needs the iovecs too. */
    item = out_item_new((int)count, count, 0);
    if (item == NULL) {
        fp_error(srv->log, "%s: out of memory for a request", c->peer);
        c->closing = true;
        return;
    }
    status = resolve_ranges(srv, c, count, item->slabs, item->iov + 1);
    if (status != FP_OK) {
        free(item);
        if (rest > 0)
            skip_frame(c, rest, status);
        else
            reply_error(srv, c, status, NULL);
        return;
    }
    item->nslabs = count;
    if (!is_write) {
        item->iovcnt = (int)count + 1;
        srv->bytes_read += data_len;
        conn_queue(srv, c, item, c->hdr.op, c->hdr.id, FP_OK, data_len);
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
    c->rx = RX_DATA;
}

static void write_done(fp_server_t *srv, conn_t *c)
{
    for (uint32_t i = 0; i < c->wcnt; i++)
        fp_slab_unref(&srv->store, c->wslabs[i]);
    c->wcnt = 0;
    srv->bytes_written += c->data_total;
    c->rx = RX_HEADER;
    reply(srv, c, FP_OK, NULL, 0);
}

/* Account @n bytes placed at the WRITE cursor. */
static void write_advance(conn_t *c, size_t n)
{
    c->data_left -= (uint32_t)n;
    while (n > 0) {
        size_t room = c->wiov[c->widx].iov_len - c->woff;
        size_t take = n < room ? n : room;
        c->woff += take;
        n -= take;
        if (c->woff == c->wiov[c->widx].iov_len) {
            c->widx++;
            c->woff = 0;
        }
    }
}

/* Copy WRITE data from the staging buffer into the slabs. */
static void write_from_buffer(conn_t *c)
{
    while (c->data_left > 0 && c->ipos < c->ilen) {
        size_t room = c->wiov[c->widx].iov_len - c->woff;
        size_t avail = c->ilen - c->ipos;
        size_t take = avail < room ? avail : room;
        memcpy((uint8_t *)c->wiov[c->widx].iov_base + c->woff, c->in + c->ipos, take);
        c->ipos += take;
        write_advance(c, take);
    }
}

/*
 * Parse what the staging buffer holds. Returns when more bytes are needed or
 * the connection must stop reading.
 */
static void conn_parse(fp_server_t *srv, conn_t *c)
{
    while (!c->closing && c->oq_bytes < OUT_HIGH_WATER) {
        size_t avail = c->ilen - c->ipos;
        fp_status_t status;

        switch (c->rx) {
        case RX_HEADER:
            if (avail < FP_PROTO_HDR_SIZE)
                return;
            status = fp_proto_hdr_decode(c->in + c->ipos, false, &c->hdr);
            c->ipos += FP_PROTO_HDR_SIZE;
            if (status != FP_OK) {
                conn_fail(srv, c, status, "bad frame header; closing");
                return;
            }
            if (c->phase == PHASE_HELLO && c->hdr.op != FP_OP_HELLO) {
                conn_fail(srv, c, FP_ERR_AUTH, "HELLO must come first; closing");
                return;
            }
            if (c->phase == PHASE_AUTH && c->hdr.op != FP_OP_AUTH && c->hdr.op != FP_OP_HELLO) {
                conn_fail(srv, c, FP_ERR_AUTH, "request before authentication; closing");
                return;
            }
            c->rx = RX_BODY;
            break;

        case RX_BODY:
            if (fp_proto_op_is_data(c->hdr.op)) {
                uint32_t args_len;
                status = fp_proto_args_size(&c->hdr, c->in + c->ipos, avail, &args_len);
                if (status == FP_ERR_PROTOCOL && avail < FP_PROTO_VEC_HDR &&
                    c->hdr.length >= FP_PROTO_VEC_HDR)
                    return; /* the range count has not arrived yet */
                if (status != FP_OK) {
                    c->rx = RX_HEADER;
                    if (c->hdr.length > 0)
                        skip_frame(c, c->hdr.length, status);
                    else
                        reply_error(srv, c, status, "bad data request");
                    break;
                }
                if (avail < args_len)
                    return;
                c->ipos += args_len;
                c->rx = RX_HEADER;
                handle_data(srv, c, c->in + c->ipos - args_len, args_len);
            } else {
                if (avail < c->hdr.length)
                    return;
                c->ipos += c->hdr.length;
                c->rx = RX_HEADER;
                handle_control(srv, c, c->in + c->ipos - c->hdr.length);
            }
            break;

        case RX_DATA:
            write_from_buffer(c);
            if (c->data_left > 0)
                return;
            write_done(srv, c);
            break;

        case RX_DISCARD: {
            size_t take = avail < c->skip_left ? avail : c->skip_left;
            c->ipos += take;
            c->skip_left -= (uint32_t)take;
            if (c->skip_left > 0)
                return;
            c->rx = RX_HEADER;
            reply_error(srv, c, c->skip_status, NULL);
            break;
        }
        }
    }
}

/* Read WRITE data larger than the staging buffer straight into the slabs. */
static ssize_t conn_read_direct(conn_t *c)
{
    struct iovec iov[64];
    int cnt = 0;
    size_t want = c->data_left;
    ssize_t n;

    for (uint32_t i = c->widx; i < c->wcnt && cnt < 64 && want > 0; i++, cnt++) {
        size_t off = i == c->widx ? c->woff : 0;
        size_t len = c->wiov[i].iov_len - off;
        iov[cnt].iov_base = (uint8_t *)c->wiov[i].iov_base + off;
        iov[cnt].iov_len = len < want ? len : want;
        want -= iov[cnt].iov_len;
    }
    n = readv(c->fd, iov, cnt);
    if (n > 0)
        write_advance(c, (size_t)n);
    return n;
}

/* Read and parse; false if the connection was closed (and freed). */
static bool conn_on_readable(fp_server_t *srv, conn_t *c)
{
    size_t budget = READ_BUDGET;

    while (budget > 0 && !c->closing && c->oq_bytes < OUT_HIGH_WATER) {
        ssize_t n;
        bool direct = c->rx == RX_DATA && c->ipos == c->ilen && c->data_left >= DIRECT_MIN;

        if (direct) {
            n = conn_read_direct(c);
        } else {
            if (c->ipos > 0) {
                memmove(c->in, c->in + c->ipos, c->ilen - c->ipos);
                c->ilen -= c->ipos;
                c->ipos = 0;
            }
            n = recv(c->fd, c->in + c->ilen, IN_BUF_SIZE - c->ilen, MSG_DONTWAIT);
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            if (n < 0 || c->rx != RX_HEADER || c->ipos < c->ilen)
                fp_warn(srv->log, "%s: connection lost%s%s", c->peer, n < 0 ? ": " : " mid-request",
                        n < 0 ? strerror(errno) : "");
            else
                fp_info(srv->log, "%s: client disconnected", c->peer);
            if (n < 0 || c->rx != RX_HEADER || c->ipos < c->ilen)
                srv->errors++;
            conn_close(srv, c);
            return false;
        }
        c->last_rx_ns = fp_time_ns();
        budget -= (size_t)n < budget ? (size_t)n : budget;
        if (direct) {
            if (c->data_left == 0)
                write_done(srv, c);
            continue;
        }
        c->ilen += (size_t)n;
        conn_parse(srv, c);
        if ((size_t)n < IN_BUF_SIZE / 2 && c->rx != RX_DATA)
            break; /* the socket is most likely drained */
    }
    return true;
}

/* Send queued replies until done or the socket is full; false if closed. */
static bool conn_flush(fp_server_t *srv, conn_t *c)
{
    while (c->oq_head != NULL) {
        struct iovec iov[SEND_IOV_MAX];
        struct msghdr msg;
        int cnt = 0;
        ssize_t n;

        for (out_item_t *it = c->oq_head; it != NULL && cnt < SEND_IOV_MAX; it = it->next) {
            for (int i = it->iovpos; i < it->iovcnt && cnt < SEND_IOV_MAX; i++)
                iov[cnt++] = it->iov[i];
        }
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = iov;
        msg.msg_iovlen = (size_t)cnt;
        n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n < 0) {
            fp_warn(srv->log, "%s: send failed: %s", c->peer, strerror(errno));
            srv->errors++;
            conn_close(srv, c);
            return false;
        }
        c->oq_bytes -= (size_t)n;
        while (n > 0) {
            out_item_t *it = c->oq_head;
            struct iovec *v = &it->iov[it->iovpos];
            size_t take = (size_t)n < v->iov_len ? (size_t)n : v->iov_len;
            v->iov_base = (uint8_t *)v->iov_base + take;
            v->iov_len -= take;
            n -= (ssize_t)take;
            if (v->iov_len == 0 && ++it->iovpos == it->iovcnt) {
                c->oq_head = it->next;
                if (c->oq_head == NULL)
                    c->oq_tail = NULL;
                out_item_free(srv, it);
            }
        }
    }
    return true;
}

static void conn_close(fp_server_t *srv, conn_t *c)
{
    out_item_t *it, *next;

    epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    for (it = c->oq_head; it != NULL; it = next) {
        next = it->next;
        out_item_free(srv, it);
    }
    for (uint32_t i = 0; i < c->wcnt; i++)
        fp_slab_unref(&srv->store, c->wslabs[i]);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    srv->nclients--;
    free(c->wiov);
    free(c->wslabs);
    free(c->in);
    free(c);
}

static void accept_clients(fp_server_t *srv)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        struct epoll_event ev;
        fp_addr_t peer;
        conn_t *c;
        int one = 1;
        int fd =
            accept4(srv->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                fp_warn(srv->log, "accept: %s", strerror(errno));
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (c != NULL) {
            c->in = malloc(IN_BUF_SIZE);
            c->wiov = malloc(FP_PROTO_MAX_RANGES * sizeof(*c->wiov));
            c->wslabs = malloc(FP_PROTO_MAX_RANGES * sizeof(*c->wslabs));
        }
        if (c == NULL || c->in == NULL || c->wiov == NULL || c->wslabs == NULL) {
            fp_error(srv->log, "out of memory accepting a client");
            if (c != NULL) {
                free(c->in);
                free(c->wiov);
                free(c->wslabs);
            }
            free(c);
            close(fd);
            continue;
        }
        memcpy(&peer.ss, &ss, sizeof(ss));
        peer.len = len;
        fp_addr_format(&peer, c->peer, sizeof(c->peer));
        c->fd = fd;
        c->accepted_ns = c->last_rx_ns = fp_time_ns();
        c->events = EPOLLIN;
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            fp_error(srv->log, "epoll_ctl: %s", strerror(errno));
            free(c->in);
            free(c->wiov);
            free(c->wslabs);
            free(c);
            close(fd);
            continue;
        }
        c->next = srv->conns;
        if (srv->conns != NULL)
            srv->conns->prev = c;
        srv->conns = c;
        srv->nclients++;
        fp_debug(srv->log, "%s: accepted", c->peer);
    }
}

/* Close connections that overstayed a handshake or stalled mid-frame. */
static void sweep(fp_server_t *srv)
{
    uint64_t now = fp_time_ns();
    conn_t *c, *next;

    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        if (c->phase != PHASE_READY &&
            now - c->accepted_ns > (uint64_t)srv->params.handshake_timeout_ms * FP_NS_PER_MS) {
            fp_warn(srv->log, "%s: no handshake within %d ms; closing", c->peer,
                    srv->params.handshake_timeout_ms);
            srv->errors++;
            conn_close(srv, c);
        } else if ((c->rx != RX_HEADER || c->ipos < c->ilen) &&
                   now - c->last_rx_ns > (uint64_t)srv->params.idle_timeout_ms * FP_NS_PER_MS) {
            fp_warn(srv->log, "%s: %s for %d ms; closing", c->peer,
                    c->oq_bytes >= OUT_HIGH_WATER ? "not reading its replies"
                                                  : "stalled mid-request",
                    srv->params.idle_timeout_ms);
            srv->errors++;
            conn_close(srv, c);
        }
    }
}

fp_status_t fp_server_create(const fp_server_params_t *params, fp_server_t **server_p)
{
    fp_server_t *srv;
    struct epoll_event ev;
    char addr[80];
    int one = 1;
    fp_status_t status;

    fp_addr_format(&params->listen, addr, sizeof(addr));
    if (params->secret == NULL && !fp_addr_is_loopback(&params->listen)) {
        fp_error(params->log,
                 "refusing to listen on %s without a secret: anyone who can reach it could "
                 "read and write the pool; give --secret-file or listen on loopback",
                 addr);
        return FP_ERR_INVALID_PARAM;
    }
    if (params->secret_len > sizeof(srv->secret))
        return FP_ERR_INVALID_PARAM;
    srv = calloc(1, sizeof(*srv));
    if (srv == NULL)
        return FP_ERR_NO_MEMORY;
    srv->params = *params;
    srv->log = params->log;
    if (params->secret != NULL) {
        memcpy(srv->secret, params->secret, params->secret_len);
        srv->params.secret = srv->secret;
    }
    srv->epfd = srv->listen_fd = srv->stop_fd = -1;
    srv->ranges = calloc(FP_PROTO_MAX_RANGES, sizeof(*srv->ranges));
    if (srv->ranges == NULL) {
        status = FP_ERR_NO_MEMORY;
        goto err_free;
    }
    status = fp_slab_store_init(&srv->store, params->capacity, params->slab_size, params->log);
    if (status != FP_OK) {
        fp_error(srv->log, "bad capacity or slab size: %s", fp_status_string(status));
        goto err_free;
    }
    status = fp_region_table_init(&srv->regions, &srv->store, FP_REGION_TABLE_MAX);
    if (status != FP_OK)
        goto err_store;
    if (fp_proto_random(&srv->node_id, sizeof(srv->node_id)) != FP_OK) {
        status = FP_ERR_IO;
        goto err_regions;
    }

    srv->listen_fd =
        socket(params->listen.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (srv->listen_fd < 0) {
        fp_error(srv->log, "socket: %s", strerror(errno));
        status = FP_ERR_IO;
        goto err_regions;
    }
    setsockopt(srv->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(srv->listen_fd, (const struct sockaddr *)&params->listen.ss, params->listen.len) < 0 ||
        listen(srv->listen_fd, 512) < 0) {
        fp_error(srv->log, "cannot listen on %s: %s", addr, strerror(errno));
        status = FP_ERR_IO;
        goto err_close_listen;
    }
    srv->local.len = sizeof(srv->local.ss);
    getsockname(srv->listen_fd, (struct sockaddr *)&srv->local.ss, &srv->local.len);

    srv->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (srv->stop_fd < 0 || srv->epfd < 0) {
        fp_error(srv->log, "eventfd/epoll: %s", strerror(errno));
        status = FP_ERR_IO;
        goto err_close_fds;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = &listen_marker;
    epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->listen_fd, &ev);
    ev.data.ptr = &stop_marker;
    epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->stop_fd, &ev);
    srv->start_ns = fp_time_ns();
    *server_p = srv;
    return FP_OK;

err_close_fds:
    if (srv->epfd >= 0)
        close(srv->epfd);
    if (srv->stop_fd >= 0)
        close(srv->stop_fd);
err_close_listen:
    close(srv->listen_fd);
err_regions:
    fp_region_table_cleanup(&srv->regions);
err_store:
    fp_slab_store_cleanup(&srv->store);
err_free:
    free(srv->ranges);
    free(srv);
    return status;
}

void fp_server_local_addr(const fp_server_t *server, fp_addr_t *addr_p)
{
    *addr_p = server->local;
}

/* Handle the epoll @events of @c: read, parse, send, then pick what to wait for. */
static void conn_service(fp_server_t *srv, conn_t *c, uint32_t events)
{
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (!conn_on_readable(srv, c))
            return;
    }
    if (!conn_flush(srv, c))
        return;
    /*
     * Frames left in the buffer while replies were backed up: their bytes have
     * been read, so epoll will not report them again. Parse a batch now; if
     * the replies drained and whole frames are still left, come back on the
     * next round (EPOLLOUT fires at once on a socket with room), after the
     * other connections had theirs.
     */
    c->more_frames = false;
    if (c->ipos < c->ilen && !c->closing && c->oq_bytes < OUT_HIGH_WATER) {
        size_t before = c->ipos;

        conn_parse(srv, c);
        if (!conn_flush(srv, c))
            return;
        c->more_frames = c->ipos != before && c->ipos < c->ilen;
    }
    if (c->closing && c->oq_head == NULL) {
        conn_close(srv, c);
        return;
    }
    conn_update_events(srv, c);
}

fp_status_t fp_server_run(fp_server_t *srv)
{
    struct epoll_event events[MAX_EVENTS];
    uint64_t next_sweep = fp_time_ns() + SWEEP_MS * FP_NS_PER_MS;

    for (;;) {
        int n = epoll_wait(srv->epfd, events, MAX_EVENTS, SWEEP_MS);
        uint64_t now;

        if (n < 0 && errno != EINTR) {
            fp_error(srv->log, "epoll_wait: %s", strerror(errno));
            return FP_ERR_IO;
        }
        for (int i = 0; i < n; i++) {
            void *ptr = events[i].data.ptr;
            conn_t *c = ptr;

            if (ptr == &stop_marker)
                return FP_OK;
            if (ptr == &listen_marker) {
                accept_clients(srv);
                continue;
            }
            conn_service(srv, c, events[i].events);
        }
        now = fp_time_ns();
        if (now >= next_sweep) {
            sweep(srv);
            next_sweep = now + SWEEP_MS * FP_NS_PER_MS;
        }
    }
}

void fp_server_stop(fp_server_t *server)
{
    uint64_t one = 1;

    (void)!write(server->stop_fd, &one, sizeof(one));
}

void fp_server_destroy(fp_server_t *srv)
{
    if (srv == NULL)
        return;
    while (srv->conns != NULL)
        conn_close(srv, srv->conns);
    close(srv->epfd);
    close(srv->stop_fd);
    close(srv->listen_fd);
    fp_region_table_cleanup(&srv->regions);
    fp_slab_store_cleanup(&srv->store);
    free(srv->ranges);
    free(srv);
}
