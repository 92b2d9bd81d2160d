/* SPDX-License-Identifier: MIT */
/*
 * TCP backend of the transport (see transport.h): connecting, queueing and
 * sending requests, progress. Receiving replies is tcp_recv.c's part; what
 * both share is in tcp_int.h.
 *
 * DESIGN
 * One non-blocking socket with TCP_NODELAY. Requests are identified by
 * (generation << 32 | slot): the slot indexes a fixed table of in-flight xfers
 * (no search, no allocation), the generation catches a stale or forged id.
 *
 * Send side: queued xfers are packed into a batch, their headers and range
 * arguments encoded into one buffer and their data referenced in place, and the
 * batch leaves in as few sendmsg() calls as the socket allows. A partial send
 * resumes where it stopped.
 *
 * Receive side: bytes are read into a staging buffer, so that many small
 * replies cost one recv(); payload found there is copied to the xfer's
 * rsp_iov. When a large payload remains and the staging buffer is empty, the
 * rest is read with readv() straight into the destination: the bulk of a
 * 2 MiB block is never copied twice.
 *
 * A reply is accepted only for a request that is fully sent, whose opcode
 * matches and whose size fits; anything else is a protocol error, after which
 * the connection is useless (frame boundaries are lost): every xfer completes
 * with FP_ERR_NOT_CONNECTED.
 */
#include "tcp_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"

/* Complete @xfer: release its slot and run its callback. */
void fp_tcp_complete(tcp_transport_t *t, fp_xfer_t *xfer, fp_status_t status)
{
    uint32_t slot = slot_of(xfer->id);

    t->slots[slot].xfer = NULL;
    t->slots[slot].state = TCP_SLOT_FREE;
    t->free_slots[t->nfree++] = slot;
    t->inflight--;
    xfer->done(xfer, status);
}

/* The connection is unusable: fail everything that is pending. */
static void tcp_break(tcp_transport_t *t, fp_status_t why, unsigned *completed)
{
    fp_status_t status = why == FP_ERR_CANCELED ? FP_ERR_CANCELED : FP_ERR_NOT_CONNECTED;

    if (!t->broken && why != FP_ERR_CANCELED)
        fp_warn(t->super.log, "connection to %s lost: %s", t->peer, fp_status_string(why));
    t->broken = true;
    t->sq_head = t->sq_tail = NULL;
    t->batch_len = t->batch_pos = 0;
    t->siov_cnt = t->siov_pos = 0;
    t->rx = NULL;
    for (uint32_t i = 0; i < t->nslots; i++) {
        if (t->slots[i].state != TCP_SLOT_FREE) {
            fp_tcp_complete(t, t->slots[i].xfer, status);
            if (completed != NULL)
                (*completed)++;
        }
    }
}

static fp_status_t tcp_connect(const fp_addr_t *addr, const fp_transport_params_t *params,
                               fp_transport_t **tp_p)
{
    tcp_transport_t *t;
    struct pollfd pfd;
    int one = 1, err = 0;
    socklen_t errlen = sizeof(err);
    fp_status_t status;

    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return FP_ERR_NO_MEMORY;
    t->super.ops = &fp_transport_tcp_ops;
    t->super.interrupt_fd = -1;
    t->super.log = params->log;
    fp_addr_format(addr, t->peer, sizeof(t->peer));
    t->nslots = params->max_inflight ? params->max_inflight : 1024;
    t->slots = calloc(t->nslots, sizeof(*t->slots));
    t->free_slots = calloc(t->nslots, sizeof(*t->free_slots));
    t->sbuf_cap = (size_t)TCP_SEND_BATCH * (FP_PROTO_HDR_SIZE + FP_PROTO_RANGE_SIZE) + TCP_HDR_ROOM;
    t->sbuf = malloc(t->sbuf_cap);
    t->rbuf = malloc(TCP_STAGING_SIZE);
    if (t->slots == NULL || t->free_slots == NULL || t->sbuf == NULL || t->rbuf == NULL) {
        status = FP_ERR_NO_MEMORY;
        goto err_free;
    }
    for (uint32_t i = 0; i < t->nslots; i++)
        t->free_slots[i] = t->nslots - 1 - i;
    t->nfree = t->nslots;

    t->fd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (t->fd < 0) {
        fp_error(t->super.log, "socket: %s", strerror(errno));
        status = FP_ERR_IO;
        goto err_free;
    }
    setsockopt(t->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (params->sndbuf > 0)
        setsockopt(t->fd, SOL_SOCKET, SO_SNDBUF, &params->sndbuf, sizeof(params->sndbuf));
    if (params->rcvbuf > 0)
        setsockopt(t->fd, SOL_SOCKET, SO_RCVBUF, &params->rcvbuf, sizeof(params->rcvbuf));
    if (connect(t->fd, (const struct sockaddr *)&addr->ss, addr->len) < 0) {
        if (errno != EINPROGRESS) {
            err = errno;
            goto err_connect;
        }
        pfd.fd = t->fd;
        pfd.events = POLLOUT;
        do {
            err = poll(&pfd, 1, params->connect_timeout_ms);
        } while (err < 0 && errno == EINTR);
        if (err == 0) {
            fp_error(t->super.log, "connect to %s: timed out after %d ms", t->peer,
                     params->connect_timeout_ms);
            status = FP_ERR_TIMED_OUT;
            goto err_close_fd;
        }
        err = 0;
        if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
            err = errno;
        if (err != 0)
            goto err_connect;
    }
    /* From here on every call says MSG_DONTWAIT, except the one wait in
     * tcp_progress(), which sleeps in recv() itself rather than in poll() first. */
    fcntl(t->fd, F_SETFL, fcntl(t->fd, F_GETFL) & ~O_NONBLOCK);
    *tp_p = &t->super;
    return FP_OK;

err_connect:
    fp_error(t->super.log, "connect to %s: %s", t->peer, strerror(err));
    status = FP_ERR_NOT_CONNECTED;
err_close_fd:
    close(t->fd);
err_free:
    free(t->rbuf);
    free(t->sbuf);
    free(t->free_slots);
    free(t->slots);
    free(t);
    return status;
}

static size_t request_payload_len(const fp_xfer_t *xfer, uint32_t *args_len_p)
{
    uint32_t args_len = 0;

    if (fp_proto_op_is_data(xfer->op))
        args_len = (xfer->op == FP_OP_READV || xfer->op == FP_OP_WRITEV ? FP_PROTO_VEC_HDR : 0) +
                   xfer->nranges * FP_PROTO_RANGE_SIZE;
    *args_len_p = args_len;
    return args_len + fp_iov_length(xfer->req_iov, xfer->req_iovcnt);
}

static fp_status_t tcp_submit(fp_transport_t *tp, fp_xfer_t *xfer)
{
    tcp_transport_t *t = tcp_of(tp);
    uint32_t args_len, slot;
    size_t len;

    if (t->broken)
        return FP_ERR_NOT_CONNECTED;
    if (xfer->done == NULL || xfer->req_iovcnt < 0 || xfer->req_iovcnt > FP_XFER_MAX_IOV ||
        xfer->rsp_iovcnt < 0 || xfer->rsp_iovcnt > FP_XFER_MAX_IOV)
        return FP_ERR_INVALID_PARAM;
    if (fp_proto_op_is_data(xfer->op) &&
        (xfer->nranges == 0 || xfer->nranges > FP_PROTO_MAX_RANGES ||
         ((xfer->op == FP_OP_READ || xfer->op == FP_OP_WRITE) && xfer->nranges != 1)))
        return FP_ERR_INVALID_PARAM;
    len = request_payload_len(xfer, &args_len);
    if (len > (fp_proto_op_is_data(xfer->op) ? FP_PROTO_MAX_PAYLOAD : FP_PROTO_MAX_CONTROL))
        return FP_ERR_TOO_LARGE;
    if (t->nfree == 0)
        return FP_ERR_BUSY;

    slot = t->free_slots[--t->nfree];
    t->slots[slot].gen++;
    t->slots[slot].xfer = xfer;
    t->slots[slot].state = TCP_SLOT_QUEUED;
    xfer->id = ((uint64_t)t->slots[slot].gen << 32) | slot;
    xfer->req_len = (uint32_t)len;
    xfer->rsp_len = 0;
    xfer->submit_ns = fp_time_ns();
    xfer->next = NULL;
    if (t->sq_tail != NULL)
        t->sq_tail->next = xfer;
    else
        t->sq_head = xfer;
    t->sq_tail = xfer;
    t->inflight++;
    return FP_OK;
}

/* Pack queued xfers into a new send batch. */
static void tcp_batch_build(tcp_transport_t *t)
{
    size_t used = 0;
    fp_xfer_t *xfer;

    t->batch_len = t->batch_pos = 0;
    t->siov_cnt = t->siov_pos = 0;
    while ((xfer = t->sq_head) != NULL && t->batch_len < TCP_SEND_BATCH) {
        fp_proto_hdr_t hdr = {FP_PROTO_VERSION, xfer->op, 0, xfer->id, 0, xfer->req_len};
        uint32_t args_len;
        uint8_t *p = t->sbuf + used;

        request_payload_len(xfer, &args_len);
        if (t->siov_cnt + 1 + xfer->req_iovcnt > TCP_SEND_IOV_MAX ||
            used + FP_PROTO_HDR_SIZE + args_len > t->sbuf_cap)
            break;
        fp_proto_hdr_encode(&hdr, p);
        if (args_len > 0)
            fp_proto_ranges_encode(xfer->op, xfer->ranges, xfer->nranges, p + FP_PROTO_HDR_SIZE);
        t->siov[t->siov_cnt].iov_base = p;
        t->siov[t->siov_cnt].iov_len = FP_PROTO_HDR_SIZE + args_len;
        t->siov_cnt++;
        used += FP_PROTO_HDR_SIZE + args_len;
        for (int i = 0; i < xfer->req_iovcnt; i++) {
            if (xfer->req_iov[i].iov_len > 0)
                t->siov[t->siov_cnt++] = xfer->req_iov[i];
        }
        t->batch[t->batch_len] = xfer;
        t->batch_left[t->batch_len] = FP_PROTO_HDR_SIZE + (size_t)xfer->req_len;
        t->batch_len++;
        t->slots[slot_of(xfer->id)].state = TCP_SLOT_SENDING;
        t->sq_head = xfer->next;
        if (t->sq_head == NULL)
            t->sq_tail = NULL;
    }
}

/* Account @n sent bytes to the batch's frames. */
static void tcp_batch_advance(tcp_transport_t *t, size_t n)
{
    size_t left = n;

    while (left > 0 && t->siov_pos < t->siov_cnt) {
        struct iovec *v = &t->siov[t->siov_pos];
        size_t take = left < v->iov_len ? left : v->iov_len;
        v->iov_base = (uint8_t *)v->iov_base + take;
        v->iov_len -= take;
        left -= take;
        if (v->iov_len == 0)
            t->siov_pos++;
    }
    while (n > 0 && t->batch_pos < t->batch_len) {
        size_t take = n < t->batch_left[t->batch_pos] ? n : t->batch_left[t->batch_pos];
        t->batch_left[t->batch_pos] -= take;
        n -= take;
        if (t->batch_left[t->batch_pos] == 0) {
            fp_xfer_t *xfer = t->batch[t->batch_pos++];
            t->slots[slot_of(xfer->id)].state = TCP_SLOT_SENT;
        }
    }
}

/* Send until the queue is empty or the socket is full. */
static fp_status_t tcp_flush(tcp_transport_t *t)
{
    for (;;) {
        struct msghdr msg;
        ssize_t n;

        if (t->siov_pos == t->siov_cnt) {
            if (t->sq_head == NULL)
                return FP_OK;
            tcp_batch_build(t);
        }
        memset(&msg, 0, sizeof(msg));
        msg.msg_iov = &t->siov[t->siov_pos];
        msg.msg_iovlen = (size_t)(t->siov_cnt - t->siov_pos);
        n = sendmsg(t->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return FP_OK;
            fp_debug(t->super.log, "sendmsg to %s: %s", t->peer, strerror(errno));
            return FP_ERR_NOT_CONNECTED;
        }
        tcp_batch_advance(t, (size_t)n);
    }
}

static fp_status_t tcp_progress(fp_transport_t *tp, int timeout_ms, unsigned *completed_p)
{
    tcp_transport_t *t = tcp_of(tp);
    uint64_t deadline = timeout_ms > 0 ? fp_time_ns() + (uint64_t)timeout_ms * FP_NS_PER_MS : 0;
    unsigned completed = 0;
    fp_status_t status;

    if (t->broken)
        goto out_broken;
    if (t->flush_failed) {
        tcp_break(t, FP_ERR_NOT_CONNECTED, &completed);
        goto out_broken;
    }
    /* A caller that does not let us wait has polled the socket itself: look. */
    if (timeout_ms == 0)
        t->maybe_readable = true;
    t->interrupted = false;
    for (;;) {
        struct pollfd pfd;
        int wait_ms, rc;

        status = tcp_flush(t);
        if (status != FP_OK) {
            tcp_break(t, status, &completed);
            goto out_broken;
        }
        if (t->maybe_readable || t->rlen > t->rpos || (t->rx_in_payload && t->rx_left == 0)) {
            status = fp_tcp_receive(t, &completed);
            if (status != FP_OK && status != FP_ERR_BUSY) {
                tcp_break(t, status, &completed);
                goto out_broken;
            }
        }
        if (completed > 0 || t->inflight == 0 || timeout_ms == 0 || t->interrupted)
            break;

        if (timeout_ms < 0) {
            wait_ms = -1;
        } else {
            uint64_t now = fp_time_ns();
            if (now >= deadline) {
                status = FP_ERR_TIMED_OUT;
                goto out;
            }
            wait_ms = (int)((deadline - now + FP_NS_PER_MS - 1) / FP_NS_PER_MS);
        }
        if (t->sq_head == NULL && t->siov_pos == t->siov_cnt) {
            /* Only replies to wait for: sleep in recv(). */
            status = fp_tcp_wait_recv(t, wait_ms);
            if (status == FP_OK && fp_tcp_interrupted(t))
                break;
            if (status == FP_OK)
                continue;
            if (status == FP_ERR_BUSY)
                continue; /* a quiet slice: check the deadline */
            tcp_break(t, status, &completed);
            goto out_broken;
        }
        pfd.fd = t->fd;
        pfd.events = POLLIN | POLLOUT;
        pfd.revents = 0;
        rc = poll(&pfd, 1, wait_ms);
        if (rc < 0 && errno != EINTR) {
            fp_error(t->super.log, "poll: %s", strerror(errno));
            status = FP_ERR_IO;
            goto out;
        }
        if (rc > 0 && (pfd.revents & (POLLIN | POLLERR | POLLHUP)))
            t->maybe_readable = true;
    }
    status = FP_OK;
out:
    if (completed_p != NULL)
        *completed_p = completed;
    return status;
out_broken:
    if (completed_p != NULL)
        *completed_p = completed;
    return FP_ERR_NOT_CONNECTED;
}

static fp_status_t tcp_flush_only(fp_transport_t *tp)
{
    tcp_transport_t *t = tcp_of(tp);

    if (t->broken)
        return FP_ERR_NOT_CONNECTED;
    /* A failure is reported, and completes everything, at the next progress. */
    if (tcp_flush(t) != FP_OK) {
        t->flush_failed = true;
        return FP_ERR_NOT_CONNECTED;
    }
    return FP_OK;
}

static int tcp_fd(fp_transport_t *tp)
{
    return tcp_of(tp)->fd;
}

static unsigned tcp_inflight(fp_transport_t *tp)
{
    return tcp_of(tp)->inflight;
}

static bool tcp_send_pending(fp_transport_t *tp)
{
    tcp_transport_t *t = tcp_of(tp);

    return t->sq_head != NULL || t->siov_pos < t->siov_cnt;
}

static void tcp_close(fp_transport_t *tp)
{
    tcp_transport_t *t = tcp_of(tp);

    tcp_break(t, FP_ERR_CANCELED, NULL);
    close(t->fd);
    free(t->rbuf);
    free(t->sbuf);
    free(t->free_slots);
    free(t->slots);
    free(t);
}

const fp_transport_ops_t fp_transport_tcp_ops = {
    .name = "tcp",
    .connect = tcp_connect,
    .submit = tcp_submit,
    .progress = tcp_progress,
    .flush = tcp_flush_only,
    .fd = tcp_fd,
    .inflight = tcp_inflight,
    .send_pending = tcp_send_pending,
    .close = tcp_close,
};
