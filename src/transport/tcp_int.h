/* SPDX-License-Identifier: MIT */
/*
 * What the two halves of the TCP backend share: the connection's state and
 * its slot table. tcp.c connects, queues and sends requests, and drives
 * progress; tcp_recv.c receives replies and hands them to their xfers. See
 * tcp.c's DESIGN for the whole.
 *
 * Thread safety: as the transport's: one thread at a time per connection.
 */
#ifndef FP_TRANSPORT_TCP_INT_H
#define FP_TRANSPORT_TCP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "transport.h"

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
    bool flush_failed;   /* a flush without progress found the connection broken */
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

static inline tcp_transport_t *tcp_of(fp_transport_t *tp)
{
    return (tcp_transport_t *)tp;
}

static inline uint32_t slot_of(uint64_t id)
{
    return (uint32_t)id;
}

/* Complete @xfer (tcp.c): release its slot and run its callback. */
void fp_tcp_complete(tcp_transport_t *t, fp_xfer_t *xfer, fp_status_t status);

/*
 * Receive and dispatch what the socket holds (tcp_recv.c). FP_ERR_BUSY:
 * nothing more now, or the caller's interrupt descriptor is readable.
 */
fp_status_t fp_tcp_receive(tcp_transport_t *t, unsigned *completed);

/*
 * Sleep until the node sends something or @wait_ms (-1: forever) pass, inside
 * recv() itself. FP_ERR_BUSY: the slice passed quietly.
 */
fp_status_t fp_tcp_wait_recv(tcp_transport_t *t, int wait_ms);

/* True (and noted) when progress should stop for the caller's interrupt descriptor. */
bool fp_tcp_interrupted(tcp_transport_t *t);

#endif /* FP_TRANSPORT_TCP_INT_H */
