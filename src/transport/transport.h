/* SPDX-License-Identifier: MIT */
/*
 * The transport: how requests reach a memory node and replies come back.
 *
 * A transport is an ops table (fp_transport_ops_t) with one backend per file:
 * tcp.c today; an RDMA (verbs or UCX) backend later, behind the same calls.
 * Its unit of work is the fp_xfer_t, one request and its reply. Data requests
 * name (slab, offset, length) ranges and the local memory the bytes come from
 * or go to, so each maps onto a one-sided RDMA READ or WRITE.
 *
 * DESIGN
 * - Submission never blocks: fp_transport_submit() queues the request and
 *   returns; fp_transport_progress() sends what is queued, receives replies and
 *   calls each xfer's completion callback. Many requests are in flight on one
 *   connection; replies complete in whatever order the node sends them.
 * - No allocation per request: the caller owns every fp_xfer_t (embedded in its
 *   own structures or preallocated), and the transport keeps only pointers.
 * - Reply data lands directly in the caller's buffers (rsp_iov); write data is
 *   sent from the caller's buffers (req_iov) without a copy.
 * - On a broken connection every queued or in-flight xfer completes with
 *   FP_ERR_NOT_CONNECTED; none is silently dropped.
 *
 * Thread safety: one transport belongs to one thread at a time; the caller
 * serialises submit, progress and close on it.
 */
#ifndef FP_TRANSPORT_TRANSPORT_H
#define FP_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include <farpool/status.h>

#include "common/log.h"
#include "common/parse.h"
#include "proto/proto.h"

typedef struct fp_transport fp_transport_t;
typedef struct fp_xfer fp_xfer_t;

/* Called from fp_transport_progress() or fp_transport_close() when @xfer ends. */
typedef void (*fp_xfer_done_func_t)(fp_xfer_t *xfer, fp_status_t status);

#define FP_XFER_MAX_IOV 64

/*
 * One request and its reply. The caller fills the public fields, keeps the
 * memory alive and unchanged until the callback, and may reuse it after.
 */
struct fp_xfer {
    /* Set by the caller. */
    uint8_t op;                     /* an fp_proto_op_t */
    uint32_t nranges;               /* data ops: number of ranges (1 for READ/WRITE) */
    const fp_proto_range_t *ranges; /* data ops: the ranges */
    const struct iovec *req_iov;    /* WRITE data, or a control request's payload */
    int req_iovcnt;
    const struct iovec *rsp_iov; /* READ data, or room for a control reply's payload */
    int rsp_iovcnt;
    fp_xfer_done_func_t done;
    void *arg;

    /* Set by the transport before done() is called. */
    uint32_t rsp_len; /* reply payload bytes received */
    uint64_t submit_ns;

    /* Private to the transport. */
    uint64_t id;
    uint32_t req_len;
    fp_xfer_t *next;
};

/** Parameters of a connection. */
typedef struct fp_transport_params {
    int connect_timeout_ms;
    int sndbuf; /* socket buffer sizes, bytes; 0 = backend default */
    int rcvbuf;
    uint32_t max_inflight; /* requests in flight; power of two; 0 = 1024 */
    fp_log_t *log;         /* where the connection logs (NULL: the default); outlives it */
} fp_transport_params_t;

typedef struct fp_transport_ops {
    const char *name;
    fp_status_t (*connect)(const fp_addr_t *addr, const fp_transport_params_t *params,
                           fp_transport_t **tp_p);
    fp_status_t (*submit)(fp_transport_t *tp, fp_xfer_t *xfer);
    fp_status_t (*progress)(fp_transport_t *tp, int timeout_ms, unsigned *completed_p);
    fp_status_t (*flush)(fp_transport_t *tp);
    int (*fd)(fp_transport_t *tp);
    unsigned (*inflight)(fp_transport_t *tp);
    bool (*send_pending)(fp_transport_t *tp);
    void (*close)(fp_transport_t *tp);
} fp_transport_ops_t;

/* Every backend's object starts with this. */
struct fp_transport {
    const fp_transport_ops_t *ops;
    int interrupt_fd; /* see fp_transport_interrupt_on(); -1: none */
    fp_log_t *log;    /* params->log */
};

extern const fp_transport_ops_t fp_transport_tcp_ops;

/* Find a backend by name ("tcp"); NULL if unknown. */
const fp_transport_ops_t *fp_transport_find(const char *name);

/* Default parameters. */
void fp_transport_params_default(fp_transport_params_t *params);

/*
 * Open a connection with @ops to @addr. Logs why on failure.
 * FP_ERR_NOT_CONNECTED (refused, unreachable), FP_ERR_TIMED_OUT.
 */
fp_status_t fp_transport_connect(const fp_transport_ops_t *ops, const fp_addr_t *addr,
                                 const fp_transport_params_t *params, fp_transport_t **tp_p);

/*
 * Queue @xfer. FP_ERR_BUSY when max_inflight requests are outstanding (call
 * progress and retry), FP_ERR_NOT_CONNECTED after the connection broke,
 * FP_ERR_INVALID_PARAM for a malformed xfer. On error, done() is not called.
 */
static inline fp_status_t fp_transport_submit(fp_transport_t *tp, fp_xfer_t *xfer)
{
    return tp->ops->submit(tp, xfer);
}

/*
 * Make progress: send queued requests, receive replies, run callbacks. Waits
 * up to @timeout_ms (0: do not wait, -1: forever) for at least one completion
 * when requests are in flight. *@completed_p (may be NULL) counts callbacks run.
 * Returns FP_ERR_NOT_CONNECTED once the connection is broken (after
 * completing every xfer with that status).
 */
static inline fp_status_t fp_transport_progress(fp_transport_t *tp, int timeout_ms,
                                                unsigned *completed_p)
{
    return tp->ops->progress(tp, timeout_ms, completed_p);
}

/*
 * Send what is queued, as far as the socket takes it now, without receiving
 * or completing anything (no callback runs): for a caller that has just
 * submitted and will poll the descriptor for the replies. What the socket
 * does not take now is sent by a later progress (poll for POLLOUT: see
 * fp_transport_send_pending()). FP_ERR_NOT_CONNECTED if the connection broke;
 * the next progress then completes everything with that status.
 */
static inline fp_status_t fp_transport_flush(fp_transport_t *tp)
{
    return tp->ops->flush(tp);
}

/* A file descriptor that polls readable when progress may complete something. */
static inline int fp_transport_fd(fp_transport_t *tp)
{
    return tp->ops->fd(tp);
}

/* Number of submitted xfers whose callback has not yet run. */
static inline unsigned fp_transport_inflight(fp_transport_t *tp)
{
    return tp->ops->inflight(tp);
}

/* True while submitted bytes wait for room in the socket: poll for POLLOUT then. */
static inline bool fp_transport_send_pending(fp_transport_t *tp)
{
    return tp->ops->send_pending(tp);
}

/*
 * Let progress return early while @fd (-1: none) polls readable: it looks
 * every FP_TRANSPORT_RX_SLICE bytes received (a large reply is received that
 * much at a time), between replies, rather than only when the socket is
 * drained. For a caller with more urgent work behind @fd (the fault engine:
 * its userfaultfd), which then waits for a slice, not for everything a fast
 * node has sent meanwhile.
 */
#define FP_TRANSPORT_RX_SLICE (256u << 10)
static inline void fp_transport_interrupt_on(fp_transport_t *tp, int fd)
{
    tp->interrupt_fd = fd;
}

/* Close; pending xfers complete with FP_ERR_CANCELED. NULL is a no-op. */
void fp_transport_close(fp_transport_t *tp);

/* Total bytes described by an iovec array. */
size_t fp_iov_length(const struct iovec *iov, int iovcnt);

#endif /* FP_TRANSPORT_TRANSPORT_H */
