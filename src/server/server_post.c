/* SPDX-License-Identifier: MIT */
/*
 * Work other threads hand to the memory node's loop: the replies of the
 * metadata service to POOL_* requests, and a reset of the slab store when
 * the pool says this member's slabs are stale. Each is an item on a locked
 * list plus a write to an eventfd in the epoll set; the loop drains the list
 * and does the work on its own thread, so nothing else touches its state.
 * A reply whose connection has gone meanwhile is dropped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "server.h"
#include "server_int.h"
#include "slab.h"

typedef struct fp_server_post {
    struct fp_server_post *next;
    bool reset; /* free every slab, then call done(arg); the reply fields are unused */
    void (*done)(void *arg);
    void *arg;
    uint64_t token, id;
    uint8_t op;
    fp_status_t status;
    uint32_t len;
    uint8_t payload[]; /* len bytes */
} fp_server_post_t;

fp_status_t fp_server_post_init(fp_server_t *srv)
{
    srv->post_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->post_fd < 0) {
        fp_error(srv->log, "eventfd: %s", strerror(errno));
        return FP_ERR_IO;
    }
    pthread_mutex_init(&srv->post_lock, NULL);
    return FP_OK;
}

void fp_server_post_cleanup(fp_server_t *srv)
{
    while (srv->post_head != NULL) {
        fp_server_post_t *p = srv->post_head;

        srv->post_head = p->next;
        free(p);
    }
    if (srv->post_fd >= 0) {
        close(srv->post_fd);
        pthread_mutex_destroy(&srv->post_lock);
    }
    srv->post_fd = -1;
}

static void post_push(fp_server_t *srv, fp_server_post_t *p)
{
    uint64_t one = 1;

    p->next = NULL;
    pthread_mutex_lock(&srv->post_lock);
    if (srv->post_tail != NULL)
        srv->post_tail->next = p;
    else
        srv->post_head = p;
    srv->post_tail = p;
    pthread_mutex_unlock(&srv->post_lock);
    (void)!write(srv->post_fd, &one, sizeof(one));
}

void fp_server_post_reply(fp_server_t *srv, uint64_t token, uint8_t op, uint64_t id,
                          fp_status_t status, const void *payload, uint32_t len)
{
    fp_server_post_t *p = malloc(sizeof(*p) + len);

    if (p == NULL) {
        fp_error(srv->log, "out of memory for a POOL reply; the client will time out");
        return;
    }
    memset(p, 0, sizeof(*p));
    p->token = token;
    p->op = op;
    p->id = id;
    p->status = status;
    p->len = len;
    if (len > 0)
        memcpy(p->payload, payload, len);
    post_push(srv, p);
}

void fp_server_post_reset(fp_server_t *srv, void (*done)(void *arg), void *arg)
{
    fp_server_post_t *p = calloc(1, sizeof(*p));

    if (p == NULL) {
        fp_error(srv->log, "out of memory for a reset of the slabs");
        return;
    }
    p->reset = true;
    p->done = done;
    p->arg = arg;
    post_push(srv, p);
}

/* Free every live slab: the pool has forgotten them. */
static void store_reset(fp_server_t *srv)
{
    fp_slab_store_t *store = &srv->store;
    uint32_t freed = 0;

    for (uint32_t i = 0; i < store->nslots; i++) {
        fp_slab_t *slab = &store->slabs[i];

        if (slab->live && slab->region == 0 &&
            fp_slab_store_release(store, ((uint64_t)slab->gen << 32) | i) == FP_OK)
            freed++;
    }
    fp_warn(srv->log, "the pool declared this node dead earlier: freed its %u stale slabs", freed);
}

static void post_reply(fp_server_t *srv, fp_server_post_t *p)
{
    fp_server_out_t *item;

    for (fp_server_conn_t *c = srv->conns; c != NULL; c = c->next) {
        if (c->serial != p->token)
            continue;
        if (c->closing)
            return;
        item = fp_server_out_new(1, 0, p->len);
        if (item == NULL) {
            fp_server_conn_fail(srv, c, FP_ERR_NO_MEMORY, "no memory for a reply");
            return;
        }
        item->iovcnt = 1;
        if (p->len > 0) {
            memcpy(item->payload, p->payload, p->len);
            item->iov[1].iov_base = item->payload;
            item->iov[1].iov_len = p->len;
            item->iovcnt = 2;
        }
        fp_server_conn_queue(srv, c, item, p->op, p->id, p->status, p->len);
        fp_server_conn_service(srv, c, 0);
        return;
    }
}

void fp_server_post_drain(fp_server_t *srv)
{
    fp_server_post_t *list;
    uint64_t n;

    (void)!read(srv->post_fd, &n, sizeof(n));
    pthread_mutex_lock(&srv->post_lock);
    list = srv->post_head;
    srv->post_head = srv->post_tail = NULL;
    pthread_mutex_unlock(&srv->post_lock);
    while (list != NULL) {
        fp_server_post_t *p = list;

        list = p->next;
        if (p->reset) {
            store_reset(srv);
            if (p->done != NULL)
                p->done(p->arg);
        } else
            post_reply(srv, p);
        free(p);
    }
}
