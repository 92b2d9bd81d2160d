/* SPDX-License-Identifier: MIT */
/*
 * TCP backend of the transport (see transport.h).
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
#include "transport.h"

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

#define TCP_STAGING_SIZE (256u << 10)
#define TCP_DIRECT_MIN   (64u << 10) /* payload left to read directly into place */
#define TCP_SEND_IOV_MAX 256
#define TCP_SEND_BATCH   64 /* xfers packed into one send batch */
#define TCP_HDR_ROOM     (FP_PROTO_HDR_SIZE + FP_PROTO_MAX_ARGS)

typedef enum tcp_slot_state {
    TCP_SLOT_FREE = 0,
    TCP_SLOT_QUEUED,  /* waiting in the send queue */
    TCP_SLOT_SENDING, /* part of the batch being sent */
    TCP_SLOT_SENT,    /* waiting for its reply */
} tcp_slot_state_t;

typedef struct tcp_slot {
    fp_xfer_t *xfer;
    uint32_t gen;
    tcp_slot_state_t state;
} tcp_slot_t;

typedef struct tcp_transport {
    fp_transport_t super;
    int fd;
    bool broken;
    bool maybe_readable; /* the last recv() filled its buffer: more may be waiting */
    bool rx_hdr_only;    /* a large payload just ended: stage the next header alone */
    bool interrupted;    /* the interrupt descriptor was readable: progress returns */
    size_t rx_unlooked;  /* bytes received since the interrupt descriptor was last polled */
    int rcvtimeo_ms;     /* SO_RCVTIMEO now set on the socket, 0 = none */
    char peer[64];

    tcp_slot_t *slots;
    uint32_t *free_slots;
    uint32_t nslots, nfree;
    unsigned inflight;

    /* Send queue and the batch being sent. */
    fp_xfer_t *sq_head, *sq_tail;
    fp_xfer_t *batch[TCP_SEND_BATCH];
    size_t batch_left[TCP_SEND_BATCH]; /* bytes of each frame not yet sent */
    unsigned batch_len, batch_pos;
    struct iovec siov[TCP_SEND_IOV_MAX];
    int siov_cnt, siov_pos;
    uint8_t *sbuf; /* encoded headers and args of the batch */
    size_t sbuf_cap;

    /* Receive side. */
    uint8_t *rbuf;
    size_t rpos, rlen;
    bool rx_in_payload;
    fp_proto_hdr_t rhdr;
    fp_xfer_t *rx; /* xfer whose payload is being received, NULL to discard */
    uint32_t rx_left;
    int rx_iov_idx;
    size_t rx_iov_off;
} tcp_transport_t;

static tcp_transport_t *tcp_of(fp_transport_t *tp)
{
    return (tcp_transport_t *)tp;
}

static uint32_t slot_of(uint64_t id)
{
    return (uint32_t)id;
}

/* Complete @xfer: release its slot and run its callback. */
static void tcp_complete(tcp_transport_t *t, fp_xfer_t *xfer, fp_status_t status)
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
            tcp_complete(t, t->slots[i].xfer, status);
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
    tcp_complete(t, xfer, status);
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
static fp_status_t tcp_wait_recv(tcp_transport_t *t, int wait_ms)
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
static bool tcp_interrupted(tcp_transport_t *t)
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
static fp_status_t tcp_receive(tcp_transport_t *t, unsigned *completed)
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
                if (t->rx_left > 0 && tcp_interrupted(t))
                    return FP_ERR_BUSY;
            }
            if (t->rx_left == 0) {
                tcp_rx_finish(t, completed);
                if (tcp_interrupted(t))
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
                if (tcp_interrupted(t))
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

static fp_status_t tcp_progress(fp_transport_t *tp, int timeout_ms, unsigned *completed_p)
{
    tcp_transport_t *t = tcp_of(tp);
    uint64_t deadline = timeout_ms > 0 ? fp_time_ns() + (uint64_t)timeout_ms * FP_NS_PER_MS : 0;
    unsigned completed = 0;
    fp_status_t status;

    if (t->broken)
        goto out_broken;
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
            status = tcp_receive(t, &completed);
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
            status = tcp_wait_recv(t, wait_ms);
            if (status == FP_OK && tcp_interrupted(t))
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
    .fd = tcp_fd,
    .inflight = tcp_inflight,
    .send_pending = tcp_send_pending,
    .close = tcp_close,
};
