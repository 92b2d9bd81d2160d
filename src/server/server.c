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
 * bound. Every byte a queued reply holds counts: what is still to be sent
 * (header and payload, copied or in a slab) and the memory of the item that
 * describes it, so a flood of tiny requests (a zero-length READ costs 24
 * bytes on the wire and ~120 in the node) is held to the same bound as a few
 * big READs.
 *
 * Timeouts, checked every SWEEP_MS: the handshake (HELLO, and AUTH when a
 * secret is set) must finish within handshake_timeout_ms; a connection that
 * stops mid-frame for idle_timeout_ms is closed.
 *
 * Out of descriptors (as libuv and redis do it): accept() failing with
 * EMFILE or ENFILE leaves the connection in the backlog and the listener
 * readable, so a level-triggered loop would spin on it, logging each time.
 * The server holds a spare descriptor (/dev/null) instead: it closes it,
 * accepts and closes at once what waits (the client sees its connection
 * closed rather than hanging), and takes the spare back. When that cannot
 * help (no spare, or still no descriptor, or accept() fails for want of
 * memory) the listener leaves the epoll set for ACCEPT_PAUSE_MS, a deadline
 * folded into epoll_wait()'s timeout: no busy loop, no sleep. What was shed
 * or paused is said at most once per ACCEPT_REPORT_MS, with the counts.
 */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
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

#define SWEEP_MS         200
#define MAX_EVENTS       64
#define ACCEPT_BATCH     64   /* connections accepted per wakeup, at most */
#define SHED_BATCH       1024 /* connections shed per wakeup, at most */
#define ACCEPT_PAUSE_MS  100  /* the listener rests this long when accept() cannot succeed */
#define ACCEPT_REPORT_MS 1000 /* accept troubles are said at most once per this */

/* Markers for epoll's data pointer. */
static char listen_marker, stop_marker, post_marker;

/* Take the spare descriptor (again); quietly none if that fails. */
static void spare_open(fp_server_t *srv)
{
    if (srv->spare_fd < 0)
        srv->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

/*
 * Say the accept troubles counted since the last line, unless that line is
 * younger than ACCEPT_REPORT_MS (and not @force).
 */
static void accept_report(fp_server_t *srv, uint64_t now, bool force)
{
    const char *why = strerror(srv->accept_err);

    if (srv->accept_shed == 0 && srv->accept_pauses == 0)
        return;
    if (!force && now - srv->accept_said_ns < ACCEPT_REPORT_MS * FP_NS_PER_MS)
        return;
    if (srv->accept_shed > 0)
        fp_warn(srv->log, "%s: %s: shed %llu new connection%s (closed unserved)", srv->accept_what,
                why, (unsigned long long)srv->accept_shed, srv->accept_shed == 1 ? "" : "s");
    if (srv->accept_pauses > 0)
        fp_warn(srv->log, "%s: %s: stopped accepting for %d ms, %llu time%s", srv->accept_what, why,
                ACCEPT_PAUSE_MS, (unsigned long long)srv->accept_pauses,
                srv->accept_pauses == 1 ? "" : "s");
    srv->accept_shed = srv->accept_pauses = 0;
    srv->accept_said_ns = now;
}

/* Count @shed connections lost (and a pause if @paused) to @what failing with @err. */
static void accept_trouble(fp_server_t *srv, const char *what, int err, uint64_t shed, bool paused)
{
    srv->accept_what = what;
    srv->accept_err = err;
    srv->accept_shed += shed;
    srv->accept_pauses += paused;
    accept_report(srv, fp_time_ns(), false);
}

/* Stop watching the listener for ACCEPT_PAUSE_MS after @what failed with @err. */
static void accept_pause(fp_server_t *srv, const char *what, int err)
{
    srv->accept_paused = true;
    srv->accept_resume_ns = fp_time_ns() + ACCEPT_PAUSE_MS * FP_NS_PER_MS;
    accept_trouble(srv, what, err, 0, true);
    /* Level-triggered: a readable listener left in the set would wake the loop at once. */
    if (epoll_ctl(srv->epfd, EPOLL_CTL_DEL, srv->listen_fd, NULL) != 0 && errno != ENOENT)
        fp_error(srv->log, "epoll_ctl(DEL) of the listener: %s; its events are ignored for now",
                 strerror(errno));
}

/* Watch the listener again once its pause is over; if that fails, pause again. */
static void accept_resume(fp_server_t *srv)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &listen_marker};

    spare_open(srv);
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->listen_fd, &ev) != 0 && errno != EEXIST) {
        accept_pause(srv, "epoll_ctl(ADD) of the listener", errno);
        return;
    }
    srv->accept_paused = false;
}

/* An accept() error that belongs to one connection: skip it and go on. */
static bool accept_error_is_transient(int err)
{
    switch (err) {
    case ECONNABORTED:
    case EPROTO:
    case EPERM: /* a firewall rule */
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
        return true;
    default:
        return false;
    }
}

/*
 * accept() failed with EMFILE or ENFILE: give the spare descriptor up,
 * accept and close at once the connections that wait, take the spare back.
 * False if that could not help: there is no spare, or still no descriptor.
 */
static bool accept_shed(fp_server_t *srv, int err)
{
    uint64_t shed = 0;
    bool helped = false;

    if (srv->spare_fd < 0)
        return false;
    close(srv->spare_fd);
    srv->spare_fd = -1;
    for (int i = 0; i < SHED_BATCH; i++) {
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);

        if (fd >= 0) {
            close(fd);
            shed++;
            helped = true;
            continue;
        }
        if (errno == EINTR || accept_error_is_transient(errno))
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            helped = true; /* nothing (more) waits */
        break;
    }
    spare_open(srv);
    accept_trouble(srv, "accept", err, shed, false);
    return helped;
}

/* Set up a connection for the accepted socket @fd from @ss; closes @fd on failure. */
static void conn_open(fp_server_t *srv, int fd, const struct sockaddr_storage *ss, socklen_t len)
{
    struct epoll_event ev;
    fp_addr_t peer;
    fp_server_conn_t *c;
    int one = 1;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->in = malloc(FP_SERVER_IN_BUF_SIZE);
        c->wiov = malloc(FP_PROTO_MAX_RANGES * sizeof(*c->wiov));
        c->wslabs = malloc(FP_PROTO_MAX_RANGES * sizeof(*c->wslabs));
    }
    if (c == NULL || c->in == NULL || c->wiov == NULL || c->wslabs == NULL) {
        accept_trouble(srv, "out of memory for a new connection", ENOMEM, 1, false);
        goto err_free;
    }
    memcpy(&peer.ss, ss, sizeof(*ss));
    peer.len = len;
    fp_addr_format(&peer, c->peer, sizeof(c->peer));
    c->fd = fd;
    c->serial = ++srv->next_serial;
    c->accepted_ns = c->last_rx_ns = fp_time_ns();
    c->events = EPOLLIN;
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        accept_trouble(srv, "epoll_ctl(ADD) of a new connection", errno, 1, false);
        goto err_free;
    }
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    srv->nclients++;
    fp_debug(srv->log, "%s: accepted", c->peer);
    return;

err_free:
    if (c != NULL) {
        free(c->in);
        free(c->wiov);
        free(c->wslabs);
        free(c);
    }
    close(fd);
}

/* The listener is readable: accept up to ACCEPT_BATCH connections. */
static void accept_clients(fp_server_t *srv)
{
    for (int i = 0; i < ACCEPT_BATCH && !srv->accept_paused; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd =
            accept4(srv->listen_fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            conn_open(srv, fd, &ss, len);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (errno == EINTR)
            continue;
        if (accept_error_is_transient(errno)) {
            fp_debug(srv->log, "accept: %s", strerror(errno));
            continue;
        }
        if ((errno == EMFILE || errno == ENFILE) && accept_shed(srv, errno))
            return; /* epoll says when more wait */
        accept_pause(srv, "accept", errno);
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
            fp_server_count_error(srv, FP_ERR_TIMED_OUT);
            fp_server_conn_close(srv, c);
        } else if ((c->rx != FP_SERVER_RX_HEADER || c->ipos < c->ilen) &&
                   now - c->last_rx_ns > (uint64_t)srv->params.idle_timeout_ms * FP_NS_PER_MS) {
            fp_warn(srv->log, "%s: %s for %d ms; closing", c->peer,
                    c->oq_bytes >= FP_SERVER_OUT_HIGH_WATER ? "not reading its replies"
                                                            : "stalled mid-request",
                    srv->params.idle_timeout_ms);
            fp_server_count_error(srv, FP_ERR_TIMED_OUT);
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
    srv->epfd = srv->listen_fd = srv->stop_fd = srv->spare_fd = srv->post_fd = -1;
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
    if (srv->stop_fd < 0 || srv->epfd < 0 || fp_server_post_init(srv) != FP_OK) {
        fp_error(srv->log, "eventfd/epoll: %s", strerror(errno));
        status = FP_ERR_IO;
        goto err_close_fds;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = &listen_marker;
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->listen_fd, &ev) != 0) {
        fp_error(srv->log, "epoll_ctl(ADD) of the listener: %s", strerror(errno));
        status = FP_ERR_IO;
        goto err_close_fds;
    }
    ev.data.ptr = &stop_marker;
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->stop_fd, &ev) != 0) {
        fp_error(srv->log, "epoll_ctl(ADD) of the stop event: %s", strerror(errno));
        status = FP_ERR_IO;
        goto err_close_fds;
    }
    ev.data.ptr = &post_marker;
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->post_fd, &ev) != 0) {
        fp_error(srv->log, "epoll_ctl(ADD) of the post event: %s", strerror(errno));
        status = FP_ERR_IO;
        goto err_close_fds;
    }
    spare_open(srv);
    if (srv->spare_fd < 0)
        fp_warn(srv->log,
                "cannot open /dev/null: %s; out of descriptors, farpoold will pause "
                "accepting instead of closing new connections at once",
                strerror(errno));
    srv->start_ns = fp_time_ns();
    *server_p = srv;
    return FP_OK;

err_close_fds:
    fp_server_post_cleanup(srv);
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

uint64_t fp_server_node_id(const fp_server_t *server)
{
    return server->node_id;
}

const fp_server_counters_t *fp_server_counters(const fp_server_t *server)
{
    return &server->counters;
}

/* Publish the gauges the metrics show (the loop's own fields stay the truth). */
static void publish_gauges(fp_server_t *srv)
{
    fp_metrics_set(&srv->counters.clients, srv->nclients);
    fp_metrics_set(&srv->counters.used, srv->store.mapped);
    fp_metrics_set(&srv->counters.slabs, srv->store.nlive);
}

/* How long epoll_wait() may sleep from @now: until the next sweep or the listener's resumption. */
static int loop_timeout_ms(const fp_server_t *srv, uint64_t now, uint64_t next_sweep)
{
    uint64_t until = next_sweep;

    if (srv->accept_paused && srv->accept_resume_ns < until)
        until = srv->accept_resume_ns;
    if (until <= now)
        return 0;
    return (int)((until - now + FP_NS_PER_MS - 1) / FP_NS_PER_MS);
}

fp_status_t fp_server_run(fp_server_t *srv)
{
    struct epoll_event events[MAX_EVENTS];
    uint64_t now = fp_time_ns(), next_sweep = now + SWEEP_MS * FP_NS_PER_MS;

    for (;;) {
        int n;

        publish_gauges(srv); /* before sleeping: what changed in the last round shows */
        n = epoll_wait(srv->epfd, events, MAX_EVENTS, loop_timeout_ms(srv, now, next_sweep));

        if (n < 0 && errno != EINTR) {
            fp_error(srv->log, "epoll_wait: %s", strerror(errno));
            return FP_ERR_IO;
        }
        for (int i = 0; i < n; i++) {
            void *ptr = events[i].data.ptr;
            fp_server_conn_t *c = ptr;

            if (ptr == &stop_marker)
                return FP_OK;
            if (ptr == &post_marker) {
                fp_server_post_drain(srv);
                continue;
            }
            if (ptr == &listen_marker) {
                if (!srv->accept_paused)
                    accept_clients(srv);
                continue;
            }
            fp_server_conn_service(srv, c, events[i].events);
        }
        now = fp_time_ns();
        if (srv->accept_paused && now >= srv->accept_resume_ns)
            accept_resume(srv);
        if (now >= next_sweep) {
            sweep(srv);
            accept_report(srv, now, false);
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
    accept_report(srv, fp_time_ns(), true);
    while (srv->conns != NULL)
        fp_server_conn_close(srv, srv->conns);
    if (srv->spare_fd >= 0)
        close(srv->spare_fd);
    close(srv->epfd);
    close(srv->stop_fd);
    close(srv->listen_fd);
    fp_server_post_cleanup(srv);
    fp_region_table_cleanup(&srv->regions);
    fp_slab_store_cleanup(&srv->store);
    free(srv->ranges);
    free(srv);
}
