/* SPDX-License-Identifier: MIT */
/*
 * A memory node's membership in a pool: the thread that `farpoold --pool URL`
 * (and the metadata node itself) runs to join the pool and heartbeat.
 *
 * It connects to the metadata node with the pool's secret, sends JOIN (its
 * node id, capacity, slab size and the address clients reach it at), then a
 * HEARTBEAT with what it holds every period the pool asks for. When the
 * metadata node is away it retries, saying so once; when the pool has
 * forgotten it (a heartbeat answered FP_ERR_NO_ENTRY) it joins again. A JOIN
 * answered RESET frees the node's slabs first (the pool had declared it dead:
 * what it holds is stale). A refusal that retrying cannot cure (a wrong
 * secret, a slab size unlike the pool's, an address another member has) is
 * fatal: the thread calls @fatal, and farpoold exits with the reason.
 *
 * In an etcd pool (@lease_url given) the node also holds its own lease key in
 * etcd, from a thread of its own (fp_meta_etcd_member_start, meta.h): the
 * service takes its liveness from that key, and a stop revokes it at once.
 *
 * Thread safety: start and stop from one thread.
 */
#ifndef FP_META_MEMBER_H
#define FP_META_MEMBER_H

#include <stdint.h>

#include <farpool/farpool.h>

#include "common/log.h"
#include "server/server.h"

typedef struct fp_member fp_member_t;

typedef struct fp_member_params {
    const char *meta_url;            /* the pool's URL (client/pool.h), or "HOST:PORT" */
    const char *self_addr;           /* where clients reach this node, "HOST:PORT" */
    const farpool_node_params_t *np; /* secret and timeout; copied */
    fp_server_t *server;             /* this node (node id, resets) */
    uint64_t node_id, capacity, slab_size;
    const char *lease_url; /* etcd://...: hold a lease key there; NULL: none (SQLite pools) */
    int lease_ttl_ms;      /* that lease's TTL (<= 0: 10 s) */
    void (*fatal)(void *arg, fp_status_t status); /* a refusal retrying cannot cure */
    void *fatal_arg;
    const fp_log_t *log;
} fp_member_params_t;

fp_status_t fp_member_start(const fp_member_params_t *params, fp_member_t **member_p);

/*
 * Stop heartbeating (the pool will declare this node dead: at once in an etcd
 * pool, whose lease key is revoked) and free. NULL: no-op.
 */
void fp_member_stop(fp_member_t *member);

#endif /* FP_META_MEMBER_H */
