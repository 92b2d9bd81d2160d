/* SPDX-License-Identifier: MIT */
/*
 * The metadata service's thread, its request queue, the loading of the pool
 * from the store, and the members' requests: JOIN, HEARTBEAT, NODES, DRAIN.
 * See service.h for the design and service_int.h for the parts.
 *
 * Membership. A member is an address and the node id its farpoold drew at
 * start (HELLO). A JOIN from a known address with the same node id is the
 * same member coming back (a restarted member thread); with a new node id,
 * it is a restarted farpoold, empty: the old member is dead and gone, and the
 * joiner is a new member. A JOIN naming the address of a live member that
 * answers with another node id is a duplicate address, refused. A member the
 * pool declared dead that comes back with its old node id holds stale slabs:
 * it is told to reset (free them) and becomes a new member.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/node.h"
#include "common/etcd.h"
#include "common/log.h"
#include "common/time.h"
#include "proto/pool.h"
#include "service_int.h"

#define META_METRICS_MS    250 /* the metrics' view is made again at most this often */
#define MIN_HEARTBEAT_MS   100
#define CONNECT_TIMEOUT_MS 3000

uint64_t meta_random(fp_meta_service_t *svc)
{
    uint64_t z = (svc->rng += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void meta_reply(const meta_call_t *call, fp_status_t status, const void *payload, uint32_t len)
{
    const fp_meta_service_params_t *p = &call->svc->params;

    p->reply(p->reply_arg, call->req->token, call->req->op, call->req->id, status, payload, len);
}

meta_node_t *meta_node_by_id(fp_meta_service_t *svc, uint64_t id)
{
    for (size_t i = 0; i < svc->nnodes; i++)
        if (svc->nodes[i].rec.id == id)
            return &svc->nodes[i];
    return NULL;
}

bool meta_node_usable(const meta_node_t *n)
{
    return n->rec.state == FP_META_NODE_LIVE || n->rec.state == FP_META_NODE_DRAINING;
}

fp_status_t meta_connect(fp_meta_service_t *svc, const meta_node_t *n, const uint8_t *key,
                         farpool_node_t **conn_p)
{
    farpool_node_params_t np = svc->np;
    fp_status_t status;

    np.field_mask |= FARPOOL_NODE_PARAM_CLIENT_KEY | FARPOOL_NODE_PARAM_TIMEOUT;
    memcpy(np.client_key, key, sizeof(np.client_key));
    if (np.timeout_ms <= 0 || np.timeout_ms > CONNECT_TIMEOUT_MS)
        np.timeout_ms = CONNECT_TIMEOUT_MS;
    status = farpool_node_connect(n->rec.addr, &np, conn_p);
    if (status != FP_OK)
        fp_warn(svc->log, "pool: cannot reach member %s: %s", n->rec.addr,
                fp_status_string(status));
    return status;
}

fp_meta_candidate_t *meta_candidates(fp_meta_service_t *svc, size_t *count_p)
{
    fp_meta_candidate_t *c = calloc(svc->nnodes > 0 ? svc->nnodes : 1, sizeof(*c));

    if (c == NULL)
        return NULL;
    for (size_t i = 0; i < svc->nnodes; i++) {
        const meta_node_t *n = &svc->nodes[i];

        c[i].node = n->rec.id;
        c[i].eligible = n->rec.state == FP_META_NODE_LIVE;
        c[i].free = n->rec.capacity > n->placed ? n->rec.capacity - n->placed : 0;
    }
    *count_p = svc->nnodes;
    return c;
}

static fp_status_t node_persist(fp_meta_service_t *svc, meta_node_t *n)
{
    return svc->store->ops->node_put(svc->store, &n->rec);
}

static meta_node_t *node_add(fp_meta_service_t *svc)
{
    if (svc->nnodes == svc->capnodes) {
        size_t cap = svc->capnodes ? svc->capnodes * 2 : 8;
        meta_node_t *nodes = realloc(svc->nodes, cap * sizeof(*nodes));

        if (nodes == NULL)
            return NULL;
        svc->nodes = nodes;
        svc->capnodes = cap;
    }
    memset(&svc->nodes[svc->nnodes], 0, sizeof(svc->nodes[0]));
    return &svc->nodes[svc->nnodes++];
}

/* The node id that @addr answers HELLO with now, or 0 if it does not answer. */
static uint64_t probe_node_id(fp_meta_service_t *svc, const char *addr)
{
    farpool_node_params_t np = svc->np;
    farpool_node_t *conn;
    uint64_t id = 0;

    np.field_mask |= FARPOOL_NODE_PARAM_TIMEOUT;
    np.timeout_ms = CONNECT_TIMEOUT_MS;
    if (farpool_node_connect(addr, &np, &conn) == FP_OK) {
        id = fp_node_id(conn);
        farpool_node_close(conn);
    }
    return id;
}

static void handle_join(const meta_call_t *call)
{
    fp_meta_service_t *svc = call->svc;
    fp_pool_join_req_t req;
    fp_pool_join_rep_t rep = {0};
    meta_node_t *old = NULL, *n;
    uint8_t buf[64];
    fp_status_t status;

    status = fp_pool_join_req_decode(call->req->payload, call->req->len, &req);
    if (status != FP_OK) {
        meta_reply(call, status, NULL, 0);
        return;
    }
    if (req.slab_size != svc->params.slab_size) {
        fp_warn(svc->log,
                "pool: refused member %s: its slab size is %" PRIu64 " bytes, the pool's %" PRIu64
                " (start it with --slab-size as the metadata node)",
                req.addr, req.slab_size, svc->params.slab_size);
        meta_reply(call, FP_ERR_INVALID_PARAM, NULL, 0);
        return;
    }
    for (size_t i = 0; i < svc->nnodes; i++) {
        const meta_node_t *g = &svc->nodes[i];

        if (g->rec.state == FP_META_NODE_GONE && g->rec.node_id == req.node_id && g->drained) {
            /* Drained and still running: it takes no slab until restarted. */
            meta_reply(call, FP_ERR_PERMISSION, NULL, 0);
            return;
        }
        if (g->rec.state != FP_META_NODE_GONE && strcmp(g->rec.addr, req.addr) == 0)
            old = &svc->nodes[i];
    }
    if (old != NULL && old->rec.node_id == req.node_id && meta_node_usable(old)) {
        /* The same farpoold again (its member thread reconnected). */
        old->seen_ns = fp_time_ns();
        old->rec.seen_ms = fp_wall_ms();
        old->rec.capacity = req.capacity;
        n = old;
    } else {
        if (old != NULL && meta_node_usable(old)) {
            /* Another farpoold says it is at a live member's address. */
            if (probe_node_id(svc, old->rec.addr) != req.node_id) {
                fp_warn(svc->log,
                        "pool: refused a node joining as %s: that address is a live member "
                        "already (a duplicate --listen or --advertise?)",
                        req.addr);
                meta_reply(call, FP_ERR_EXISTS, NULL, 0);
                return;
            }
            meta_node_declare_dead(svc, old, "restarted: it came back empty");
        }
        if (old != NULL) {
            bool stale = old->rec.node_id == req.node_id; /* declared dead, yet it kept its slabs */

            old->rec.state = FP_META_NODE_GONE;
            (void)node_persist(svc, old);
            if (stale) {
                /* It frees them, then joins again as new; no slab goes there before. */
                rep.flags = FP_POOL_JOIN_RESET;
                meta_reply(call, FP_OK, buf, fp_pool_join_rep_encode(&rep, buf, sizeof(buf)));
                return;
            }
        }
        n = node_add(svc);
        if (n == NULL) {
            meta_reply(call, FP_ERR_NO_MEMORY, NULL, 0);
            return;
        }
        n->rec.node_id = req.node_id;
        snprintf(n->rec.addr, sizeof(n->rec.addr), "%s", req.addr);
        n->rec.capacity = req.capacity;
        n->rec.slab_size = req.slab_size;
        n->rec.state = FP_META_NODE_LIVE;
        n->rec.joined_ms = n->rec.seen_ms = fp_wall_ms();
        n->seen_ns = fp_time_ns();
    }
    status = node_persist(svc, n);
    if (status != FP_OK) {
        if (n->rec.id == 0)
            svc->nnodes--;
        meta_reply(call, status, NULL, 0);
        return;
    }
    if (n != old)
        fp_info(svc->log, "pool: %s joined as member %" PRIu64 " (%" PRIu64 " MiB)", n->rec.addr,
                n->rec.id, n->rec.capacity >> 20);
    rep.member = n->rec.id;
    rep.heartbeat_ms = (uint32_t)(svc->params.dead_after_ms / 10);
    if (rep.heartbeat_ms < MIN_HEARTBEAT_MS)
        rep.heartbeat_ms = MIN_HEARTBEAT_MS;
    meta_reply(call, FP_OK, buf, fp_pool_join_rep_encode(&rep, buf, sizeof(buf)));
}

static void handle_heartbeat(const meta_call_t *call)
{
    fp_meta_service_t *svc = call->svc;
    fp_pool_heartbeat_req_t req;
    meta_node_t *n;
    fp_status_t status;

    status = fp_pool_heartbeat_req_decode(call->req->payload, call->req->len, &req);
    if (status != FP_OK) {
        meta_reply(call, status, NULL, 0);
        return;
    }
    n = meta_node_by_id(svc, req.member);
    if (n == NULL || !meta_node_usable(n) || n->rec.node_id != req.node_id) {
        meta_reply(call, FP_ERR_NO_ENTRY, NULL, 0); /* rejoin */
        return;
    }
    if (call->req->arrived_ns > n->seen_ns)
        n->seen_ns = call->req->arrived_ns; /* when it came, not when its turn came */
    n->rec.seen_ms = fp_wall_ms();
    n->rec.used = req.used;
    if (n->rec.capacity != req.capacity) {
        n->rec.capacity = req.capacity;
        (void)node_persist(svc, n);
    }
    meta_reply(call, FP_OK, NULL, 0);
}

static void handle_nodes(const meta_call_t *call)
{
    fp_meta_service_t *svc = call->svc;
    fp_pool_node_entry_t *entries;
    fp_pool_list_req_t req;
    uint8_t buf[FP_PROTO_MAX_CONTROL];
    uint64_t now = fp_time_ns();
    uint32_t written = 0, len, count = 0;
    fp_status_t status;

    status = fp_pool_list_req_decode(call->req->payload, call->req->len, &req);
    if (status != FP_OK) {
        meta_reply(call, status, NULL, 0);
        return;
    }
    entries = calloc(FP_POOL_LIST_MAX, sizeof(*entries));
    if (entries == NULL) {
        meta_reply(call, FP_ERR_NO_MEMORY, NULL, 0);
        return;
    }
    for (size_t i = req.first; i < svc->nnodes && count < FP_POOL_LIST_MAX; i++) {
        const meta_node_t *n = &svc->nodes[i];
        fp_pool_node_entry_t *e = &entries[count++];
        uint64_t ago = (now - n->seen_ns) / FP_NS_PER_MS;

        e->member = n->rec.id;
        e->node_id = n->rec.node_id;
        e->capacity = n->rec.capacity;
        e->used = n->placed;
        e->slab_size = n->rec.slab_size;
        e->state = n->rec.state;
        e->seen_ms = ago > UINT32_MAX ? UINT32_MAX : (uint32_t)ago;
        snprintf(e->addr, sizeof(e->addr), "%s", n->rec.addr);
    }
    len =
        fp_pool_nodes_rep_encode((uint32_t)svc->nnodes, entries, count, buf, sizeof(buf), &written);
    free(entries);
    meta_reply(call, len > 0 ? FP_OK : FP_ERR_TOO_LARGE, buf, len);
}

static void handle_drain(const meta_call_t *call)
{
    fp_meta_service_t *svc = call->svc;
    char addr[FP_POOL_ADDR_MAX + 1];
    fp_status_t status;

    status = fp_pool_addr_req_decode(call->req->payload, call->req->len, addr);
    if (status != FP_OK) {
        meta_reply(call, status, NULL, 0);
        return;
    }
    for (size_t i = 0; i < svc->nnodes; i++) {
        meta_node_t *n = &svc->nodes[i];

        if (strcmp(n->rec.addr, addr) != 0 || !meta_node_usable(n))
            continue;
        if (n->rec.state == FP_META_NODE_LIVE) {
            n->rec.state = FP_META_NODE_DRAINING;
            status = node_persist(svc, n);
            if (status == FP_OK)
                fp_info(svc->log, "pool: draining member %s (%" PRIu64 " MiB of copies to move)",
                        addr, n->placed >> 20);
        }
        meta_reply(call, status, NULL, 0);
        return;
    }
    meta_reply(call, FP_ERR_NO_ENTRY, NULL, 0);
}

static void handle(fp_meta_service_t *svc, const meta_req_t *req)
{
    meta_call_t call = {svc, req};

    switch (req->op) {
    case FP_OP_POOL_JOIN:
        handle_join(&call);
        break;
    case FP_OP_POOL_HEARTBEAT:
        handle_heartbeat(&call);
        break;
    case FP_OP_POOL_NODES:
        handle_nodes(&call);
        break;
    case FP_OP_POOL_DRAIN:
        handle_drain(&call);
        break;
    default:
        meta_handle_region(&call);
        break;
    }
}

/*
 * Make the pool's view for the metrics, if it is due (every META_METRICS_MS,
 * or at once after a repair copy), and publish it under worker.lock: the
 * metrics thread never reads the service's own state.
 */
static void metrics_publish(fp_meta_service_t *svc)
{
    fp_meta_metrics_t m;
    uint64_t now = fp_time_ns();
    /* This thread is the only writer of svc->metrics: it may read them unlocked. */
    bool copied = svc->metrics.copied_slabs != svc->copied_slabs;

    if (!copied && svc->metrics_ns != 0 && now - svc->metrics_ns < META_METRICS_MS * FP_NS_PER_MS)
        return;
    memset(&m, 0, sizeof(m));
    for (size_t i = 0; i < svc->nnodes; i++) {
        if (svc->nodes[i].rec.state < 4)
            m.members[svc->nodes[i].rec.state]++;
    }
    for (size_t i = 0; i < svc->nregions; i++) {
        uint32_t health;

        if (svc->regions[i]->rec.state != FP_META_REGION_READY)
            continue;
        health = meta_region_health(svc, svc->regions[i]);
        if (health < 4)
            m.regions[health]++;
    }
    m.copied_bytes = svc->copied_bytes;
    m.copied_slabs = svc->copied_slabs;
    pthread_mutex_lock(&svc->worker.lock);
    svc->metrics = m;
    pthread_mutex_unlock(&svc->worker.lock);
    svc->metrics_ns = now;
}

void fp_meta_service_metrics(fp_meta_service_t *svc, fp_meta_metrics_t *metrics_p)
{
    pthread_mutex_lock(&svc->worker.lock);
    *metrics_p = svc->metrics;
    pthread_mutex_unlock(&svc->worker.lock);
}

/*
 * Requests first, all of them; the periodic work when none waits, so that a
 * heartbeat queued behind a slow request is counted before deaths are judged.
 */
static void *service_main(void *arg)
{
    fp_meta_service_t *svc = arg;

    pthread_mutex_lock(&svc->worker.lock);
    while (!svc->worker.stopping) {
        meta_req_t *req = svc->head;
        int wait_ms;

        if (req != NULL) {
            svc->head = req->next;
            if (svc->head == NULL)
                svc->tail = NULL;
            pthread_mutex_unlock(&svc->worker.lock);
            handle(svc, req);
            free(req);
            pthread_mutex_lock(&svc->worker.lock);
            continue;
        }
        pthread_mutex_unlock(&svc->worker.lock);
        wait_ms = meta_periodic(svc);
        metrics_publish(svc); /* the periodic work runs at least every 100 ms */
        pthread_mutex_lock(&svc->worker.lock);
        if (svc->head == NULL)
            fp_worker_wait_locked(&svc->worker, wait_ms);
    }
    pthread_mutex_unlock(&svc->worker.lock);
    return NULL;
}

void fp_meta_service_submit(fp_meta_service_t *svc, uint64_t token, const uint8_t *key, uint8_t op,
                            uint64_t id, const uint8_t *payload, uint32_t len)
{
    meta_req_t *req = malloc(sizeof(*req) + len);

    if (req == NULL) {
        svc->params.reply(svc->params.reply_arg, token, op, id, FP_ERR_NO_MEMORY, NULL, 0);
        return;
    }
    req->next = NULL;
    req->arrived_ns = fp_time_ns();
    req->token = token;
    req->id = id;
    req->op = op;
    req->len = len;
    memcpy(req->key, key, sizeof(req->key));
    if (len > 0)
        memcpy(req->payload, payload, len);
    pthread_mutex_lock(&svc->worker.lock);
    if (svc->tail != NULL)
        svc->tail->next = req;
    else
        svc->head = req;
    svc->tail = req;
    fp_worker_kick(&svc->worker);
    pthread_mutex_unlock(&svc->worker.lock);
}

/*
 * @r's writer lease as the store holds it (etcd), not as its record says:
 * the lease outlives this service there. Its expiry is not known here: a TTL
 * from now, for the view (renewals and opens ask the store).
 */
static fp_status_t lease_load(fp_meta_service_t *svc, meta_region_t *r)
{
    uint8_t holder[FP_PROTO_KEY_SIZE];
    uint64_t lease = 0;
    fp_status_t status = svc->store->ops->writer_get(svc->store, r->rec.id, holder, &lease);

    if (status == FP_OK) {
        r->rec.lease_id = lease;
        memcpy(r->rec.lease_holder, holder, sizeof(r->rec.lease_holder));
        r->rec.lease_expires_ms = fp_wall_ms() + (uint64_t)svc->params.lease_ttl_ms;
    } else if (status == FP_ERR_NO_ENTRY) {
        meta_region_lease_clear(&r->rec);
        status = FP_OK;
    }
    return status;
}

/* Load members, regions and copies from the store. */
static fp_status_t service_load(fp_meta_service_t *svc)
{
    fp_meta_store_t *st = svc->store;
    fp_meta_node_t *nodes = NULL;
    fp_meta_region_t *regions = NULL;
    fp_meta_replica_t *reps = NULL;
    size_t nn = 0, nr = 0, np = 0;
    uint64_t now = fp_time_ns();
    fp_status_t status;

    status = st->ops->node_list(st, &nodes, &nn);
    if (status == FP_OK)
        status = st->ops->region_list(st, &regions, &nr);
    if (status == FP_OK)
        status = st->ops->replica_list(st, &reps, &np);
    for (size_t i = 0; status == FP_OK && i < nn; i++) {
        meta_node_t *n = node_add(svc);

        if (n == NULL) {
            status = FP_ERR_NO_MEMORY;
            break;
        }
        n->rec = nodes[i];
        n->seen_ns = now; /* members get dead_after from now to be heard again */
    }
    for (size_t i = 0; status == FP_OK && i < nr; i++) {
        meta_region_t *r = calloc(1, sizeof(*r));
        meta_region_t **all = NULL;

        if (r == NULL ||
            (svc->nregions == svc->capregions &&
             (all = realloc(svc->regions, (svc->capregions ? svc->capregions * 2 : 16) *
                                              sizeof(*all))) == NULL)) {
            free(r);
            status = FP_ERR_NO_MEMORY;
            break;
        }
        if (svc->nregions == svc->capregions) {
            svc->regions = all;
            svc->capregions = svc->capregions ? svc->capregions * 2 : 16;
        }
        r->rec = regions[i];
        svc->regions[svc->nregions++] = r;
        if (st->ops->writer_get != NULL)
            status = lease_load(svc, r);
    }
    for (size_t i = 0; status == FP_OK && i < np; i++) {
        meta_region_t *r = meta_region_by_id(svc, reps[i].region);

        if (r != NULL)
            status = meta_region_add_rep(svc, r, &reps[i]);
    }
    if (status == FP_OK)
        fp_info(svc->log, "pool: loaded %zu members, %zu regions, %zu slab copies from %s", nn, nr,
                np, svc->dir);
    free(nodes);
    free(regions);
    free(reps);
    return status;
}

/* The in-memory view and the store; the thread is not running. */
static void service_free(fp_meta_service_t *svc)
{
    for (size_t i = 0; i < svc->nregions; i++) {
        free(svc->regions[i]->reps);
        free(svc->regions[i]);
    }
    free(svc->regions);
    free(svc->nodes);
    svc->store->ops->close(svc->store);
    free(svc);
}

/*
 * The store: SQLite in a directory, or etcd. An etcd pool has one service at
 * a time, the holder of its service key; one that is held still may be this
 * node's own before a restart (or a crash), whose etcd lease runs out within
 * its TTL (--dead-after): wait that long for it, then give up.
 */
static fp_status_t service_store_open(fp_meta_service_t *svc)
{
    int ttl_ms = svc->params.dead_after_ms > 0 ? svc->params.dead_after_ms : 5000;
    uint64_t deadline = fp_time_ns() + (uint64_t)(ttl_ms + 2000) * FP_NS_PER_MS;
    fp_log_t quiet = *svc->log;
    fp_status_t status;

    if (!fp_etcd_url_is(svc->dir))
        return fp_meta_sqlite_open(svc->dir, svc->log, &svc->store);
    /* The store keeps the log it is opened with: always the daemon's. The
     * wait for the holder's key to go looks it up quietly (said once). */
    quiet.level = -1;
    for (bool said = false;; said = true) {
        status = fp_meta_etcd_open(svc->dir, svc->params.self_addr, ttl_ms, svc->log, &svc->store);
        if (status != FP_ERR_IN_USE || fp_time_ns() >= deadline)
            break;
        if (!said)
            fp_info(svc->log, "pool: waiting up to %d s for that service's etcd lease to run out",
                    (ttl_ms + 2000) / 1000);
        /* Until its key goes: a watch, which ends as it is deleted; while
         * etcd does not answer, a look again every 250 ms. */
        while (fp_time_ns() < deadline) {
            int left_ms = (int)((deadline - fp_time_ns()) / FP_NS_PER_MS) + 1;

            if (fp_etcd_service_wait(svc->dir, &quiet, true, left_ms) != FP_ERR_IO)
                break;
            usleep(250 * 1000);
        }
    }
    if (status == FP_ERR_IN_USE)
        fp_error(svc->log, "pool: another metadata service holds %s (see above); stop it first",
                 svc->dir);
    return status;
}

fp_status_t fp_meta_service_start(const fp_meta_service_params_t *params, fp_meta_service_t **svc_p)
{
    fp_meta_service_t *svc = calloc(1, sizeof(*svc));
    fp_status_t status;

    if (svc == NULL)
        return FP_ERR_NO_MEMORY;
    svc->params = *params;
    svc->log = params->log;
    if (params->np != NULL)
        svc->np = *params->np;
    snprintf(svc->dir, sizeof(svc->dir), "%s", params->dir);
    svc->params.dir = svc->dir;
    svc->params.np = &svc->np;
    if (fp_proto_random(&svc->rng, sizeof(svc->rng)) != FP_OK)
        svc->rng = fp_time_ns();
    status = service_store_open(svc);
    if (status != FP_OK) {
        free(svc);
        return status;
    }
    status = service_load(svc);
    if (status != FP_OK)
        goto err;
    if (fp_worker_start(&svc->worker, "fp:meta", service_main, svc) != FP_OK) {
        fp_error(svc->log, "pool: cannot start the metadata thread: %s", strerror(errno));
        status = FP_ERR_IO;
        goto err;
    }
    *svc_p = svc;
    return FP_OK;

err:
    service_free(svc);
    return status;
}

void fp_meta_service_stop(fp_meta_service_t *svc)
{
    if (svc == NULL)
        return;
    fp_worker_stop(&svc->worker);
    while (svc->head != NULL) {
        meta_req_t *req = svc->head;

        svc->head = req->next;
        free(req);
    }
    service_free(svc);
}
