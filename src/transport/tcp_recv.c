/* SPDX-License-Identifier: MIT */
/*
 * The receiving half of the TCP backend: reply headers checked against their
 * requests, payloads copied from the staging buffer or received straight into
 * the caller's buffers, completions. See tcp.c's DESIGN; tcp_int.h holds the
 * state both halves share.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "tcp_int.h"

static size_t iov_capacity(const fp_xfer_t *xfer)
{
    return fp_iov_length(xfer->rsp_iov, xfer->rsp_iovcnt);
}

/* Data bytes a READ/READV asks for (0 for writes): its reply must carry exactly that. */
static size_t read_length(const fp_xfer_t *xfer)
{
    size_t len = 0;

    if (xfer->op != FP_OP_READ && xfer->op != FP_OP_READV)
        return 0;
    for (uint32_t i = 0; i < xfer->nranges; i++)
        len += xfer->ranges[i].length;
    return len;
}

/* A reply header arrived: find and check its request. */
static fp_status_t tcp_rx_header(tcp_transport_t *t, const uint8_t *buf)
{
    fp_proto_hdr_t *h = &t->rhdr;
    tcp_slot_t *s;
    fp_xfer_t *xfer;
    fp_status_t status;

    status = fp_proto_hdr_decode(buf, true, h);
    if (status != FP_OK) {
        fp_error(t->super.log, "bad reply header from %s: %s", t->peer, fp_status_string(status));
        return FP_ERR_PROTOCOL;
    }
    if (slot_of(h->id) >= t->nslots)
        goto err_unknown;
    s = &t->slots[slot_of(h->id)];
    xfer = s->xfer;
    if (s->state != TCP_SLOT_SENT || xfer == NULL || xfer->id != h->id || xfer->op != h->op)
        goto err_unknown;
    if (h->status != 0               ? h->length != 0
        : fp_proto_op_is_data(h->op) ? h->length != read_length(xfer)
                                     : h->length > iov_capacity(xfer)) {
        fp_error(t->super.log, "reply from %s to %s #%llx has %u bytes, %zu expected", t->peer,
                 fp_proto_op_name(h->op), (unsigned long long)h->id, h->length,
                 h->status != 0               ? (size_t)0
                 : fp_proto_op_is_data(h->op) ? read_length(xfer)
                                              : iov_capacity(xfer));
        return FP_ERR_PROTOCOL;
    }
    t->rx = xfer;
    t->rx_left = h->length;
    t->rx_iov_idx = 0;
    t->rx_iov_off = 0;
    t->rx_in_payload = true;
    xfer->rsp_len = h->length;
    return FP_OK;

err_unknown:
    fp_error(t->super.log, "reply from %s for unknown request %s #%llx", t->peer,
             fp_proto_op_name(h->op), (unsigned long long)h->id);
    return FP_ERR_PROTOCOL;
}

/* Copy up to @len payload bytes from @src into the current xfer's rsp_iov. */
static void tcp_rx_copy(tcp_transport_t *t, const uint8_t *src, size_t len)
{
    fp_xfer_t *xfer = t->rx;

    while (len > 0) {
        const struct iovec *v = &xfer->rsp_iov[t->rx_iov_idx];
        size_t room = v->iov_len - t->rx_iov_off;
        size_t take = len < room ? len : room;
        memcpy((uint8_t *)v->iov_base + t->rx_iov_off, src, take);
        src += take;
        len -= take;
        t->rx_iov_off += take;
        t->rx_left -= (uint32_t)take;
        if (t->rx_iov_off == v->iov_len) {
            t->rx_iov_idx++;
            t->rx_iov_off = 0;
        }
    }
}

static void tcp_rx_finish(tcp_transport_t *t, unsigned *completed)
{
    fp_xfer_t *xfer = t->rx;
    fp_status_t status = (fp_status_t)t->rhdr.status;

    t->rx_in_payload = false;
    t->rx = NULL;
    t->rx_hdr_only = xfer->rsp_len >= TCP_DIRECT_MIN;
    if (status < FP_ERR_LAST || status > 0)
        status = FP_ERR_PROTOCOL;
    fp_tcp_complete(t, xfer, status);
    (*completed)++;
}

/* Read payload straight into the destination buffers; @flags: MSG_DONTWAIT or 0 (wait). */
static fp_status_t tcp_rx_direct(tcp_transport_t *t, int flags)
{
    struct msghdr msg;
    struct iovec iov[FP_XFER_MAX_IOV];
    int cnt = 0;
    size_t want = t->rx_left;
    ssize_t n;

    if (t->super.interrupt_fd >= 0 && want > FP_TRANSPORT_RX_SLICE)
        want = FP_TRANSPORT_RX_SLICE; /* a slice at a time, looking in between */

    for (int i = t->rx_iov_idx; i < t->rx->rsp_iovcnt && want > 0; i++) {
        size_t off = i == t->rx_iov_idx ? t->rx_iov_off : 0;
        size_t len = t->rx->rsp_iov[i].iov_len - off;
        if (len > want)
            len = want;
        iov[cnt].iov_base = (uint8_t *)t->rx->rsp_iov[i].iov_base + off;
        iov[cnt].iov_len = len;
        want -= len;
        cnt++;
    }
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = iov;
    msg.msg_iovlen = (size_t)cnt;
    n = recvmsg(t->fd, &msg, flags);
    if (n < 0 && errno == EINTR)
        return FP_OK;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        t->maybe_readable = false;
        return FP_ERR_BUSY;
    }
    if (n <= 0)
        return FP_ERR_NOT_CONNECTED;
    t->rx_unlooked += (size_t)n;
    /* Advance the cursor without copying: the bytes are in place. */
    for (size_t left = (size_t)n; left > 0;) {
        const struct iovec *v = &t->rx->rsp_iov[t->rx_iov_idx];
        size_t room = v->iov_len - t->rx_iov_off;
        size_t take = left < room ? left : room;
        t->rx_iov_off += take;
        left -= take;
        if (t->rx_iov_off == v->iov_len) {
            t->rx_iov_idx++;
            t->rx_iov_off = 0;
        }
    }
    t->rx_left -= (uint32_t)n;
    if ((size_t)n < fp_iov_length(iov, cnt))
        t->maybe_readable = false; /* drained */
    return FP_OK;
}

/*
 * Read what the socket holds into the staging buffer (compacting it first).
 * After a large payload the next reply is likely large too: then only its
 * header is staged, so that its payload is received straight into place
 * rather than staged and copied again.
 * @flags: MSG_DONTWAIT, or 0 to wait up to SO_RCVTIMEO. FP_ERR_BUSY: nothing came.
 */
static fp_status_t tcp_fill(tcp_transport_t *t, int flags)
{
    size_t want;
    ssize_t n;

    if (t->rpos > 0) {
        memmove(t->rbuf, t->rbuf + t->rpos, t->rlen - t->rpos);
        t->rlen -= t->rpos;
        t->rpos = 0;
    }
    want = TCP_STAGING_SIZE - t->rlen;
    if (t->rx_hdr_only && !t->rx_in_payload && t->rlen < FP_PROTO_HDR_SIZE)
        want = FP_PROTO_HDR_SIZE - t->rlen;
    do {
        n = recv(t->fd, t->rbuf + t->rlen, want, flags);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        t->maybe_readable = false;
        return FP_ERR_BUSY;
    }
    if (n == 0) {
        fp_debug(t->super.log, "connection to %s closed by peer", t->peer);
        return FP_ERR_NOT_CONNECTED;
    }
    if (n < 0) {
        fp_debug(t->super.log, "recv from %s: %s", t->peer, strerror(errno));
        return FP_ERR_NOT_CONNECTED;
    }
    t->maybe_readable = (size_t)n == want;
    t->rlen += (size_t)n;
    t->rx_unlooked += (size_t)n;
    if (t->rlen >= FP_PROTO_HDR_SIZE)
        t->rx_hdr_only = false;
    return FP_OK;
}

/*
 * Sleep until the node sends something or @wait_ms (-1: forever) pass, inside
 * recv() itself: one system call where poll() and recv() would be two. Large
 * payloads land in place. Waits in slices of at most WAIT_SLICE_MS so that the
 * SO_RCVTIMEO it needs rarely changes. FP_ERR_BUSY: the slice passed quietly.
 */
#define WAIT_SLICE_MS 100
fp_status_t fp_tcp_wait_recv(tcp_transport_t *t, int wait_ms)
{
    int slice = wait_ms < 0 || wait_ms > WAIT_SLICE_MS ? WAIT_SLICE_MS : wait_ms;

    if (slice != t->rcvtimeo_ms) {
        struct timeval tv = {slice / 1000, (slice % 1000) * 1000};
        if (setsockopt(t->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
            return FP_ERR_IO;
        t->rcvtimeo_ms = slice;
    }
    if (t->rx_in_payload && t->rpos == t->rlen && t->rx_left >= TCP_DIRECT_MIN)
        return tcp_rx_direct(t, 0);
    return tcp_fill(t, 0);
}

/*
 * Stop receiving for now: the caller's interrupt descriptor polls readable.
 * Looked at once per FP_TRANSPORT_RX_SLICE bytes received (small replies cost
 * no system call each), and only once every byte read is dispatched, so that
 * what is left is in the socket and the transport's descriptor still says so.
 */
bool fp_tcp_interrupted(tcp_transport_t *t)
{
    struct pollfd pfd = {.fd = t->super.interrupt_fd, .events = POLLIN};

    if (t->super.interrupt_fd < 0 || t->rx_unlooked < FP_TRANSPORT_RX_SLICE || t->rpos < t->rlen ||
        (t->rx_in_payload && t->rx_left == 0))
        return false;
    t->rx_unlooked = 0;
    if (poll(&pfd, 1, 0) <= 0)
        return false;
    t->interrupted = true;
    return true;
}

/*
 * Receive and dispatch what the socket holds. FP_ERR_BUSY: nothing more now,
 * or the caller's interrupt descriptor is readable.
 */
fp_status_t fp_tcp_receive(tcp_transport_t *t, unsigned *completed)
{
    fp_status_t status;

    for (;;) {
        size_t avail = t->rlen - t->rpos;

        if (t->rx_in_payload) {
            if (avail > 0) {
                size_t take = avail < t->rx_left ? avail : t->rx_left;
                tcp_rx_copy(t, t->rbuf + t->rpos, take);
                t->rpos += take;
            } else if (t->rx_left >= TCP_DIRECT_MIN) {
                if (!t->maybe_readable)
                    return FP_ERR_BUSY;
                status = tcp_rx_direct(t, MSG_DONTWAIT);
                if (status != FP_OK)
                    return status;
                if (t->rx_left > 0 && fp_tcp_interrupted(t))
                    return FP_ERR_BUSY;
            }
            if (t->rx_left == 0) {
                tcp_rx_finish(t, completed);
                if (fp_tcp_interrupted(t))
                    return FP_ERR_BUSY;
                continue;
            }
            /* The staged bytes are used up: a large rest goes straight into place. */
            if (t->rpos < t->rlen || t->rx_left >= TCP_DIRECT_MIN)
                continue;
        } else if (avail >= FP_PROTO_HDR_SIZE) {
            status = tcp_rx_header(t, t->rbuf + t->rpos);
            if (status != FP_OK)
                return status;
            t->rpos += FP_PROTO_HDR_SIZE;
            if (t->rx_left == 0) {
                tcp_rx_finish(t, completed);
                if (fp_tcp_interrupted(t))
                    return FP_ERR_BUSY;
            }
            continue;
        }

        /* Need more bytes. None are owed, or the last read drained the socket:
         * do not pay for a recv() that would say EAGAIN; poll() says when. */
        if (t->inflight == 0)
            t->maybe_readable = false;
        if (!t->maybe_readable)
            return FP_ERR_BUSY;
        status = tcp_fill(t, MSG_DONTWAIT);
        if (status != FP_OK)
            return status;
    }
}
