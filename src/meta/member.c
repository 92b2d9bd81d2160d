/* SPDX-License-Identifier: MIT */
/* A memory node's membership in a pool: join and heartbeat; see member.h. */
#include "member.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/node.h"
#include "client/pool.h"
#include "common/etcd.h"
#include "common/log.h"
#include "common/time.h"
#include "common/worker.h"
#include "meta.h"
#include "proto/pool.h"

#define RETRY_MS      1000
#define DEFAULT_HB_MS 1000

struct fp_member {
    fp_member_params_t params;
    farpool_node_params_t np;
    char *meta_url;                       /* the pool, as given */
    char meta_addr[FP_POOL_ADDR_MAX + 1]; /* where its service was last found */
    char self_addr[FP_POOL_ADDR_MAX + 1];
    fp_worker_t worker;
    fp_meta_etcd_member_t *lease; /* its lease key in an etcd pool; NULL: none */
    bool reset_done;              /* guarded by worker.lock: the server freed its slabs */
};

/* The server's loop freed the slabs (fp_server_post_reset). */
static void member_reset_done(void *arg)
{
    fp_member_t *m = arg;

    pthread_mutex_lock(&m->worker.lock);
    m->reset_done = true;
    fp_worker_kick(&m->worker);
    pthread_mutex_unlock(&m->worker.lock);
}

/* Have the server free every slab, and wait until it has (or the stop). */
static void member_reset(fp_member_t *m)
{
    pthread_mutex_lock(&m->worker.lock);
    m->reset_done = false;
    pthread_mutex_unlock(&m->worker.lock);
    fp_server_post_reset(m->params.server, member_reset_done, m);
    pthread_mutex_lock(&m->worker.lock);
    while (!m->reset_done && !m->worker.stopping)
        pthread_cond_wait(&m->worker.cond, &m->worker.lock);
    pthread_mutex_unlock(&m->worker.lock);
}

/*
 * The member's own connections log through here, one level lower: the
 * thread says once, itself, that the metadata node is away, instead of a
 * line per retry.
 */
static void member_log(void *arg, farpool_log_level_t level, const char *line)
{
    const fp_log_t *log = arg;

    if (level < FARPOOL_LOG_TRACE)
        level = (farpool_log_level_t)(level + 1);
    if ((int)level <= fp_log_level_of(log))
        fp_log_write(log, (fp_log_level_t)level, __FILE__, __LINE__, "%s", line);
}

static fp_status_t member_join(fp_member_t *m, farpool_node_t *meta, uint64_t *member_p,
                               int *hb_ms_p)
{
    fp_pool_join_req_t req = {.node_id = m->params.node_id,
                              .capacity = m->params.capacity,
                              .slab_size = m->params.slab_size};
    fp_pool_join_rep_t rep;
    uint8_t buf[FP_PROTO_MAX_CONTROL];
    uint32_t len = 0;
    fp_status_t status;

    snprintf(req.addr, sizeof(req.addr), "%s", m->self_addr);
    len = fp_pool_join_req_encode(&req, buf, sizeof(buf));
    status = fp_node_call(meta, FP_OP_POOL_JOIN, buf, len, buf, sizeof(buf), &len);
    if (status == FP_OK)
        status = fp_pool_join_rep_decode(buf, len, &rep);
    if (status != FP_OK)
        return status;
    if (rep.flags & FP_POOL_JOIN_RESET) {
        /* Not a member yet: free what is stale, then join afresh. */
        member_reset(m);
        return FP_ERR_BUSY;
    }
    *member_p = rep.member;
    *hb_ms_p = rep.heartbeat_ms > 0 ? (int)rep.heartbeat_ms : DEFAULT_HB_MS;
    fp_info(m->params.log, "joined the pool at %s as member %llu, serving %s", m->meta_addr,
            (unsigned long long)rep.member, m->self_addr);
    return FP_OK;
}

static fp_status_t member_heartbeat(fp_member_t *m, farpool_node_t *meta, farpool_node_t *self,
                                    uint64_t member)
{
    fp_pool_heartbeat_req_t req = {
        .member = member, .node_id = m->params.node_id, .capacity = m->params.capacity};
    farpool_node_stats_t st;
    uint8_t buf[64];

    if (self != NULL && farpool_node_stats(self, &st, sizeof(st)) == FP_OK)
        req.used = st.used;
    return fp_node_call(meta, FP_OP_POOL_HEARTBEAT, buf,
                        fp_pool_heartbeat_req_encode(&req, buf, sizeof(buf)), NULL, 0, NULL);
}

/* A refusal that retrying cannot cure. */
static bool member_fatal(fp_status_t status)
{
    return status == FP_ERR_AUTH || status == FP_ERR_EXISTS || status == FP_ERR_INVALID_PARAM ||
           status == FP_ERR_UNSUPPORTED || status == FP_ERR_VERSION;
}

static void *member_main(void *arg)
{
    fp_member_t *m = arg;
    farpool_node_t *meta = NULL, *self = NULL;
    uint64_t member = 0;
    int hb_ms = DEFAULT_HB_MS;
    bool said = false;

    for (;;) {
        fp_status_t status = FP_OK;
        fp_log_t quiet = *m->params.log;
        bool found = true; /* the service's address is known */
        int wait_ms;

        quiet.level = -1; /* said once already */
        if (meta == NULL) {
            /* Where the service is now: an etcd pool's may have moved. */
            status = fp_pool_url_resolve(m->meta_url, said ? &quiet : m->params.log, m->meta_addr,
                                         sizeof(m->meta_addr));
            found = status == FP_OK;
            if (status == FP_OK)
                status = farpool_node_connect(m->meta_addr, &m->np, &meta);
        }
        if (status == FP_OK && self == NULL)
            (void)farpool_node_connect(m->self_addr, &m->np, &self);
        if (status == FP_OK && member == 0) {
            status = member_join(m, meta, &member, &hb_ms);
            if (status == FP_ERR_BUSY)
                status = member_join(m, meta, &member, &hb_ms); /* after a reset */
        }
        if (status == FP_OK) {
            status = member_heartbeat(m, meta, self, member);
            if (status == FP_ERR_NO_ENTRY) {
                fp_warn(m->params.log, "the pool at %s forgot this node; joining again",
                        m->meta_addr);
                member = 0;
                continue;
            }
        }
        if (status == FP_OK) {
            said = false;
        } else if (status == FP_ERR_PERMISSION) {
            fp_warn(m->params.log,
                    "the pool at %s drained this node: it holds no slab and gets "
                    "none; stop it (restarted, it joins as a new member)",
                    m->meta_addr);
            break;
        } else if (member_fatal(status)) {
            fp_error(m->params.log, "the pool at %s refused this node: %s", m->meta_addr,
                     status == FP_ERR_AUTH          ? "wrong secret (another pool's?)"
                     : status == FP_ERR_EXISTS      ? "its address is another member's"
                     : status == FP_ERR_UNSUPPORTED ? "it is not a metadata node (--meta-dir)"
                     : status == FP_ERR_INVALID_PARAM
                         ? "its slab size differs from the pool's (see the pool's log)"
                         : fp_status_string(status));
            m->params.fatal(m->params.fatal_arg, status);
            break;
        } else {
            if (!said)
                fp_warn(m->params.log, "cannot reach the pool's metadata node %s: %s; retrying",
                        m->meta_addr, fp_status_string(status));
            said = true;
            farpool_node_close(meta);
            meta = NULL;
            member = 0; /* the pool may have restarted: join again */
        }
        /* Retry as often as it heartbeats: a restarted metadata node gives
         * members only its --dead-after to be heard again. An etcd pool's
         * member that lost its service watches the service key meanwhile
         * instead, and tries again as it changes (the old service's key gone,
         * a new one's put), not up to a retry later. */
        wait_ms = status == FP_OK || hb_ms < RETRY_MS ? hb_ms : RETRY_MS;
        if (status != FP_OK && fp_etcd_url_is(m->meta_url) && status != FP_ERR_IO &&
            fp_etcd_service_wait(m->meta_url, &quiet, found, wait_ms) != FP_ERR_IO) {
            if (fp_worker_sleep(&m->worker, 0))
                break;
            continue;
        }
        if (fp_worker_sleep(&m->worker, wait_ms))
            break;
    }
    farpool_node_close(meta);
    farpool_node_close(self);
    return NULL;
}

fp_status_t fp_member_start(const fp_member_params_t *params, fp_member_t **member_p)
{
    fp_member_t *m = calloc(1, sizeof(*m));
    fp_status_t status;

    if (m == NULL)
        return FP_ERR_NO_MEMORY;
    m->params = *params;
    if (params->np != NULL)
        m->np = *params->np;
    m->params.np = &m->np;
    m->np.field_mask |= FARPOOL_NODE_PARAM_TIMEOUT | FARPOOL_NODE_PARAM_LOG;
    if (m->np.timeout_ms <= 0)
        m->np.timeout_ms = 5000;
    m->np.log_level = FARPOOL_LOG_TRACE;
    m->np.log_func = member_log;
    m->np.log_arg = (void *)params->log;
    m->meta_url = strdup(params->meta_url);
    if (m->meta_url == NULL) {
        free(m);
        return FP_ERR_NO_MEMORY;
    }
    snprintf(m->meta_addr, sizeof(m->meta_addr), "%s", params->meta_url);
    snprintf(m->self_addr, sizeof(m->self_addr), "%s", params->self_addr);
    m->params.lease_url = NULL; /* not kept: only the start reads it */
    if (params->lease_url != NULL) {
        status = fp_meta_etcd_member_start(params->lease_url, params->node_id, m->self_addr,
                                           params->lease_ttl_ms, params->log, &m->lease);
        if (status != FP_OK)
            goto err_free;
    }
    if (fp_worker_start(&m->worker, "fp:member", member_main, m) != FP_OK) {
        fp_error(params->log, "cannot start the pool member thread: %s", strerror(errno));
        status = FP_ERR_IO;
        goto err_stop_lease;
    }
    *member_p = m;
    return FP_OK;

err_stop_lease:
    fp_meta_etcd_member_stop(m->lease);
err_free:
    free(m->meta_url);
    free(m);
    return status;
}

void fp_member_stop(fp_member_t *m)
{
    if (m == NULL)
        return;
    fp_worker_stop(&m->worker);
    fp_meta_etcd_member_stop(m->lease); /* revoked: its key goes at once */
    free(m->meta_url);
    free(m);
}
