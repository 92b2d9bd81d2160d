/* SPDX-License-Identifier: MIT */
/*
 * One connection of the memory node: reading into the staging buffer,
 * framing and parsing, the queue of replies and sending it, closing. The
 * handlers it calls are in server_ops.c; server.c accepts connections and
 * calls fp_server_conn_service() for their epoll events. See server.c's
 * DESIGN for the flow of data and for flow control.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"
#include "proto/proto.h"
#include "server_int.h"
#include "slab.h"

#define DIRECT_MIN   (64u << 10) /* WRITE data left from which readv() goes straight to slabs */
#define SEND_IOV_MAX 1024
#define READ_BUDGET  (8u << 20) /* bytes read from one connection per wakeup */
#define MALLOC_SLOP  16 /* what malloc() adds to a block, at most (glibc: 8, rounded to 16) */

/*
 * Have epoll watch what @c waits for now. False if it cannot (said): @c
 * would stall or spin, so the caller closes it.
 */
static bool conn_update_events(fp_server_t *srv, fp_server_conn_t *c)
{
    uint32_t want = 0;
    struct epoll_event ev;

    if (!c->closing && c->oq_bytes < FP_SERVER_OUT_HIGH_WATER)
        want |= EPOLLIN;
    if (c->oq_head != NULL || (c->more_frames && !c->closing))
        want |= EPOLLOUT;
    if (want == c->events)
        return true;
    ev.events = want;
    ev.data.ptr = c;
    if (epoll_ctl(srv->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        fp_error(srv->log, "%s: epoll_ctl(MOD): %s; closing", c->peer, strerror(errno));
        fp_server_count_error(srv, FP_ERR_IO);
        return false;
    }
    c->events = want;
    return true;
}

static void out_free(fp_server_t *srv, fp_server_out_t *item)
{
    for (uint32_t i = 0; i < item->nslabs; i++)
        fp_slab_unref(&srv->store, item->slabs[i]);
    free(item);
}

/*
 * Allocate a reply with room for @niov data iovecs, @nslabs slab references and
 * a copied @payload_len-byte payload, all in one block.
 */
fp_server_out_t *fp_server_out_new(int niov, uint32_t nslabs, size_t payload_len)
{
    fp_server_out_t *item;
    size_t size = sizeof(*item) + (size_t)(niov + 1) * sizeof(struct iovec) +
                  nslabs * sizeof(fp_slab_t *) + payload_len;

    item = malloc(size);
    if (item == NULL)
        return NULL;
    memset(item, 0, sizeof(*item));
    item->heap = size + MALLOC_SLOP;
    item->iov = (struct iovec *)(item + 1);
    item->slabs = (fp_slab_t **)(item->iov + niov + 1);
    item->payload = (uint8_t *)(item->slabs + nslabs);
    return item;
}

void fp_server_conn_queue(fp_server_t *srv, fp_server_conn_t *c, fp_server_out_t *item, uint8_t op,
                          uint64_t id, fp_status_t status, uint32_t length)
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
    /* Not just what goes on the wire: a million empty replies cost ~130 MB of items. */
    c->oq_bytes += item->heap + FP_PROTO_HDR_SIZE + length;
    fp_metrics_request(&srv->counters, op);
    if (status != FP_OK) {
        fp_metrics_error(&srv->counters, status);
    } else if (fp_proto_op_is_data(op)) {
        /* Timed from its header to its last byte sent (conn_flush). */
        item->start_ns = c->req_start_ns;
        item->timed =
            (op == FP_OP_WRITE || op == FP_OP_WRITEV ? FP_METRICS_LAT_WRITE : FP_METRICS_LAT_READ) +
            1;
    }
}

/* Queue a reply whose payload (possibly empty) is copied. */
void fp_server_conn_reply(fp_server_t *srv, fp_server_conn_t *c, fp_status_t status,
                          const void *payload, uint32_t len)
{
    fp_server_out_t *item = fp_server_out_new(1, 0, len);

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
    fp_server_conn_queue(srv, c, item, c->hdr.op, c->hdr.id, status, len);
}

void fp_server_conn_reply_error(fp_server_t *srv, fp_server_conn_t *c, fp_status_t status,
                                const char *what)
{
    fp_warn(srv->log, "%s: %s #%llu rejected: %s%s%s", c->peer, fp_proto_op_name(c->hdr.op),
            (unsigned long long)c->hdr.id, fp_status_string(status), what ? ": " : "",
            what ? what : "");
    fp_server_conn_reply(srv, c, status, NULL, 0);
}

/* A fatal error on @c: say why, reply if possible, and close once flushed. */
void fp_server_conn_fail(fp_server_t *srv, fp_server_conn_t *c, fp_status_t status,
                         const char *what)
{
    fp_server_conn_reply_error(srv, c, status, what);
    c->closing = true;
}

void fp_server_conn_skip(fp_server_conn_t *c, uint32_t left, fp_status_t status)
{
    c->rx = FP_SERVER_RX_DISCARD;
    c->skip_left = left;
    c->skip_status = status;
}

static void write_done(fp_server_t *srv, fp_server_conn_t *c)
{
    for (uint32_t i = 0; i < c->wcnt; i++)
        fp_slab_unref(&srv->store, c->wslabs[i]);
    c->wcnt = 0;
    fp_metrics_add(&srv->counters.bytes_written, c->data_total);
    c->rx = FP_SERVER_RX_HEADER;
    fp_server_conn_reply(srv, c, FP_OK, NULL, 0);
}

/* Account @n bytes placed at the WRITE cursor. */
static void write_advance(fp_server_conn_t *c, size_t n)
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
static void write_from_buffer(fp_server_conn_t *c)
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
static void conn_parse(fp_server_t *srv, fp_server_conn_t *c)
{
    while (!c->closing && c->oq_bytes < FP_SERVER_OUT_HIGH_WATER) {
        size_t avail = c->ilen - c->ipos;
        fp_status_t status;

        switch (c->rx) {
        case FP_SERVER_RX_HEADER:
            if (avail < FP_PROTO_HDR_SIZE)
                return;
            status = fp_proto_hdr_decode(c->in + c->ipos, false, &c->hdr);
            c->ipos += FP_PROTO_HDR_SIZE;
            if (status != FP_OK) {
                fp_server_conn_fail(srv, c, status, "bad frame header; closing");
                return;
            }
            if (fp_proto_op_is_data(c->hdr.op))
                c->req_start_ns = fp_time_ns();
            if (c->phase == FP_SERVER_PHASE_HELLO && c->hdr.op != FP_OP_HELLO) {
                fp_server_conn_fail(srv, c, FP_ERR_AUTH, "HELLO must come first; closing");
                return;
            }
            if (c->phase == FP_SERVER_PHASE_AUTH && c->hdr.op != FP_OP_AUTH &&
                c->hdr.op != FP_OP_HELLO) {
                fp_server_conn_fail(srv, c, FP_ERR_AUTH, "request before authentication; closing");
                return;
            }
            c->rx = FP_SERVER_RX_BODY;
            break;

        case FP_SERVER_RX_BODY:
            if (fp_proto_op_is_data(c->hdr.op)) {
                uint32_t args_len;
                status = fp_proto_args_size(&c->hdr, c->in + c->ipos, avail, &args_len);
                if (status == FP_ERR_PROTOCOL && avail < FP_PROTO_VEC_HDR &&
                    c->hdr.length >= FP_PROTO_VEC_HDR)
                    return; /* the range count has not arrived yet */
                if (status != FP_OK) {
                    c->rx = FP_SERVER_RX_HEADER;
                    if (c->hdr.length > 0)
                        fp_server_conn_skip(c, c->hdr.length, status);
                    else
                        fp_server_conn_reply_error(srv, c, status, "bad data request");
                    break;
                }
                if (avail < args_len)
                    return;
                c->ipos += args_len;
                c->rx = FP_SERVER_RX_HEADER;
                fp_server_op_data(srv, c, c->in + c->ipos - args_len, args_len);
            } else {
                if (avail < c->hdr.length)
                    return;
                c->ipos += c->hdr.length;
                c->rx = FP_SERVER_RX_HEADER;
                fp_server_op_control(srv, c, c->in + c->ipos - c->hdr.length);
            }
            break;

        case FP_SERVER_RX_DATA:
            write_from_buffer(c);
            if (c->data_left > 0)
                return;
            write_done(srv, c);
            break;

        case FP_SERVER_RX_DISCARD: {
            size_t take = avail < c->skip_left ? avail : c->skip_left;
            c->ipos += take;
            c->skip_left -= (uint32_t)take;
            if (c->skip_left > 0)
                return;
            c->rx = FP_SERVER_RX_HEADER;
            fp_server_conn_reply_error(srv, c, c->skip_status, NULL);
            break;
        }
        }
    }
}

/* Read WRITE data larger than the staging buffer straight into the slabs. */
static ssize_t conn_read_direct(fp_server_conn_t *c)
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
static bool conn_on_readable(fp_server_t *srv, fp_server_conn_t *c)
{
    size_t budget = READ_BUDGET;

    while (budget > 0 && !c->closing && c->oq_bytes < FP_SERVER_OUT_HIGH_WATER) {
        ssize_t n;
        bool direct =
            c->rx == FP_SERVER_RX_DATA && c->ipos == c->ilen && c->data_left >= DIRECT_MIN;

        if (direct) {
            n = conn_read_direct(c);
        } else {
            if (c->ipos > 0) {
                memmove(c->in, c->in + c->ipos, c->ilen - c->ipos);
                c->ilen -= c->ipos;
                c->ipos = 0;
            }
            n = recv(c->fd, c->in + c->ilen, FP_SERVER_IN_BUF_SIZE - c->ilen, MSG_DONTWAIT);
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {
            if (n < 0 || c->rx != FP_SERVER_RX_HEADER || c->ipos < c->ilen)
                fp_warn(srv->log, "%s: connection lost%s%s", c->peer, n < 0 ? ": " : " mid-request",
                        n < 0 ? strerror(errno) : "");
            else
                fp_info(srv->log, "%s: client disconnected", c->peer);
            if (n < 0 || c->rx != FP_SERVER_RX_HEADER || c->ipos < c->ilen)
                fp_server_count_error(srv, FP_ERR_NOT_CONNECTED);
            fp_server_conn_close(srv, c);
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
        if ((size_t)n < FP_SERVER_IN_BUF_SIZE / 2 && c->rx != FP_SERVER_RX_DATA)
            break; /* the socket is most likely drained */
    }
    return true;
}

/* Send queued replies until done or the socket is full; false if closed. */
static bool conn_flush(fp_server_t *srv, fp_server_conn_t *c)
{
    uint64_t sent_ns;

    while (c->oq_head != NULL) {
        struct iovec iov[SEND_IOV_MAX];
        struct msghdr msg;
        int cnt = 0;
        ssize_t n;

        for (fp_server_out_t *it = c->oq_head; it != NULL && cnt < SEND_IOV_MAX; it = it->next) {
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
            fp_server_count_error(srv, FP_ERR_NOT_CONNECTED);
            fp_server_conn_close(srv, c);
            return false;
        }
        c->oq_bytes -= (size_t)n;
        sent_ns = 0;
        while (n > 0) {
            fp_server_out_t *it = c->oq_head;
            struct iovec *v = &it->iov[it->iovpos];
            size_t take = (size_t)n < v->iov_len ? (size_t)n : v->iov_len;
            v->iov_base = (uint8_t *)v->iov_base + take;
            v->iov_len -= take;
            n -= (ssize_t)take;
            if (v->iov_len == 0 && ++it->iovpos == it->iovcnt) {
                c->oq_head = it->next;
                if (c->oq_head == NULL)
                    c->oq_tail = NULL;
                c->oq_bytes -= it->heap;
                if (it->timed != 0) {
                    if (sent_ns == 0)
                        sent_ns = fp_time_ns(); /* one clock read per sendmsg() */
                    fp_metrics_observe(&srv->counters.latency[it->timed - 1],
                                       sent_ns - it->start_ns);
                }
                out_free(srv, it);
            }
        }
    }
    return true;
}

void fp_server_conn_close(fp_server_t *srv, fp_server_conn_t *c)
{
    fp_server_out_t *it, *next;

    /* close() drops the descriptor from the set anyway: it is never shared. */
    if (epoll_ctl(srv->epfd, EPOLL_CTL_DEL, c->fd, NULL) != 0)
        fp_error(srv->log, "%s: epoll_ctl(DEL): %s", c->peer, strerror(errno));
    close(c->fd);
    for (it = c->oq_head; it != NULL; it = next) {
        next = it->next;
        out_free(srv, it);
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

/* Handle the epoll @events of @c: read, parse, send, then pick what to wait for. */
void fp_server_conn_service(fp_server_t *srv, fp_server_conn_t *c, uint32_t events)
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
    if (c->ipos < c->ilen && !c->closing && c->oq_bytes < FP_SERVER_OUT_HIGH_WATER) {
        size_t before = c->ipos;

        conn_parse(srv, c);
        if (!conn_flush(srv, c))
            return;
        c->more_frames = c->ipos != before && c->ipos < c->ilen;
    }
    if ((c->closing && c->oq_head == NULL) || !conn_update_events(srv, c))
        fp_server_conn_close(srv, c);
}
