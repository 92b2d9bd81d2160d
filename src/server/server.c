/* SPDX-License-Identifier: MIT */
/*
 * The memory node's event loop: create, run, stop and destroy a server,
 * accept its connections and sweep the ones that time out; see server.h.
 * What one connection does is in server_conn.c, the request handlers in
 * server_ops.c, and what they share in server_int.h.
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
 * Flow control: a connection whose queued replies exceed
 * FP_SERVER_OUT_HIGH_WATER bytes is not read from until they drain, so a
 * client that never reads its replies cannot make the node buffer without
 * bound.
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
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"
#include "proto/proto.h"
#include "region.h"
#include "server_int.h"
#include "slab.h"

#define SWEEP_MS   200
#define MAX_EVENTS 64

/* Markers for epoll's data pointer. */
static char listen_marker, stop_marker;

static void accept_clients(fp_server_t *srv)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        struct epoll_event ev;
        fp_addr_t peer;
        fp_server_conn_t *c;
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
            c->in = malloc(FP_SERVER_IN_BUF_SIZE);
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
    fp_server_conn_t *c, *next;

    for (c = srv->conns; c != NULL; c = next) {
        next = c->next;
        if (c->phase != FP_SERVER_PHASE_READY &&
            now - c->accepted_ns > (uint64_t)srv->params.handshake_timeout_ms * FP_NS_PER_MS) {
            fp_warn(srv->log, "%s: no handshake within %d ms; closing", c->peer,
                    srv->params.handshake_timeout_ms);
            srv->errors++;
            fp_server_conn_close(srv, c);
        } else if ((c->rx != FP_SERVER_RX_HEADER || c->ipos < c->ilen) &&
                   now - c->last_rx_ns > (uint64_t)srv->params.idle_timeout_ms * FP_NS_PER_MS) {
            fp_warn(srv->log, "%s: %s for %d ms; closing", c->peer,
                    c->oq_bytes >= FP_SERVER_OUT_HIGH_WATER ? "not reading its replies"
                                                            : "stalled mid-request",
                    srv->params.idle_timeout_ms);
            srv->errors++;
            fp_server_conn_close(srv, c);
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
            fp_server_conn_t *c = ptr;

            if (ptr == &stop_marker)
                return FP_OK;
            if (ptr == &listen_marker) {
                accept_clients(srv);
                continue;
            }
            fp_server_conn_service(srv, c, events[i].events);
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
        fp_server_conn_close(srv, srv->conns);
    close(srv->epfd);
    close(srv->stop_fd);
    close(srv->listen_fd);
    fp_region_table_cleanup(&srv->regions);
    fp_slab_store_cleanup(&srv->store);
    free(srv->ranges);
    free(srv);
}
