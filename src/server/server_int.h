/* SPDX-License-Identifier: MIT */
/*
 * What the parts of the memory node share; server.h is its interface and
 * server.c's DESIGN says how the parts fit. One file per role:
 *
 *   server.c      create, run, stop, destroy; the epoll loop and its
 *                 deadlines; accepting connections; the timeout sweep
 *   server_conn.c one connection: reading, framing and parsing, the queue
 *                 of replies and sending it, closing
 *   server_ops.c  the request handlers: the handshake, STATS, slabs,
 *                 regions, and the data requests' ranges
 *   server_post.c work other threads post to the loop: the metadata
 *                 service's replies, a reset of the store
 *
 * Who owns what. One thread, the loop's, runs the whole server: every field
 * here is read and written by it alone (fp_server_stop() only writes to
 * stop_fd, fp_server_post_*() only touch the post queue under post_lock). A
 * connection belongs to the server's list from accept to
 * fp_server_conn_close(), which frees it; after that call it must not be
 * touched. The queue of replies owns its items and the slab references they
 * hold.
 *
 * Thread safety: none; see server.h.
 */
#ifndef FP_SERVER_SERVER_INT_H
#define FP_SERVER_SERVER_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/log.h"
#include "metrics.h"
#include "proto/proto.h"
#include "region.h"
#include "server.h"
#include "slab.h"

#define FP_SERVER_IN_BUF_SIZE    (256u << 10) /* a connection's staging buffer */
#define FP_SERVER_OUT_HIGH_WATER (64u << 20)  /* queued bytes: stop reading the connection */
#define FP_SERVER_CONN_REGIONS   64           /* regions one connection may have open */

typedef enum fp_server_phase {
    FP_SERVER_PHASE_HELLO = 0, /* waiting for HELLO */
    FP_SERVER_PHASE_AUTH,      /* waiting for AUTH */
    FP_SERVER_PHASE_READY,
} fp_server_phase_t;

typedef enum fp_server_rx {
    FP_SERVER_RX_HEADER = 0, /* waiting for a frame header */
    FP_SERVER_RX_BODY,       /* waiting for the args (data ops) or the whole payload */
    FP_SERVER_RX_DATA,       /* receiving WRITE data into slabs */
    FP_SERVER_RX_DISCARD,    /* skipping the rest of a rejected frame */
} fp_server_rx_t;

/* A reply waiting to be sent. */
typedef struct fp_server_out {
    struct fp_server_out *next;
    uint8_t hdr[FP_PROTO_HDR_SIZE];
    int iovcnt, iovpos;
    uint32_t nslabs;
    fp_slab_t **slabs; /* references to drop once sent */
    struct iovec *iov;
    uint8_t *payload;  /* small control payloads are copied here */
    size_t heap;       /* bytes this item costs in memory, counted in oq_bytes until freed */
    uint64_t start_ns; /* timed: when its request's header was read */
    uint8_t timed;     /* 0; else the reply of a READ or WRITE, fp_metrics_lat_t + 1 */
} fp_server_out_t;

typedef struct fp_server_conn {
    struct fp_server_conn *prev, *next;
    uint64_t serial; /* the token POOL_* replies find it by; never reused */
    int fd;
    char peer[64];
    fp_server_phase_t phase;
    uint8_t key[FP_PROTO_KEY_SIZE];
    uint8_t nonce[FP_PROTO_NONCE_SIZE];
    uint64_t
        regions[FP_SERVER_CONN_REGIONS]; /* ids of the regions opened (some may be deleted since) */
    uint32_t nregions;
    uint64_t accepted_ns;
    uint64_t last_rx_ns;
    uint64_t req_start_ns; /* when the header of the data request being parsed was read */
    uint32_t events;       /* what epoll watches now */
    bool closing;          /* send what is queued, then close */
    bool more_frames;      /* frames read but not parsed yet: parse on the next round */

    uint8_t *in;
    size_t ipos, ilen;
    fp_server_rx_t rx;
    fp_proto_hdr_t hdr;
    uint32_t skip_left; /* FP_SERVER_RX_DISCARD: bytes still to skip */
    fp_status_t skip_status;

    /* FP_SERVER_RX_DATA: where the current WRITE's data goes. */
    struct iovec *wiov;
    fp_slab_t **wslabs;
    uint32_t wcnt, widx;
    size_t woff;
    uint32_t data_left, data_total;

    fp_server_out_t *oq_head, *oq_tail;
    size_t oq_bytes; /* queued: bytes still to send plus each item's heap */
} fp_server_conn_t;

struct fp_server {
    fp_server_params_t params;
    const fp_log_t *log; /* params.log */
    uint8_t secret[1024];
    fp_slab_store_t store;
    fp_region_table_t regions;
    int epfd;
    int listen_fd;
    int stop_fd;
    int spare_fd; /* /dev/null, given up to accept() when out of descriptors; -1: none */
    fp_addr_t local;
    /* Accepting: paused while no descriptor or memory can be had (server.c). */
    bool accept_paused;        /* the listener is out of the epoll set until accept_resume_ns */
    uint64_t accept_resume_ns; /* when to watch the listener again */
    /* Accept troubles not said yet; said at most once per ACCEPT_REPORT_MS. */
    uint64_t accept_said_ns; /* when they were last said */
    uint64_t accept_shed;    /* connections closed at once, unserved */
    uint64_t accept_pauses;  /* times accepting was paused */
    const char *accept_what; /* the call that failed last ("accept", ...) */
    int accept_err;          /* and its errno */
    fp_server_conn_t *conns;
    uint64_t next_serial;
    /* Work posted by other threads (server_post.c): replies to POOL_* requests, resets. */
    int post_fd; /* eventfd in the epoll set */
    pthread_mutex_t post_lock;
    struct fp_server_post *post_head, *post_tail; /* guarded by post_lock */
    uint64_t node_id;
    uint64_t start_ns;
    fp_proto_range_t *ranges; /* scratch for decoding, FP_PROTO_MAX_RANGES */
    uint64_t nclients;
    /* Counters for STATS and the metrics (metrics.h): written here only. */
    fp_server_counters_t counters;
};

/* Count an error of kind @status that no reply carries (a connection dropped, ...). */
static inline void fp_server_count_error(fp_server_t *srv, fp_status_t status)
{
    fp_metrics_error(&srv->counters, status);
}

/* ---- server_conn.c ---- */

/* Handle the epoll @events of @c: read, parse, send, then pick what to wait for. May close @c. */
void fp_server_conn_service(fp_server_t *srv, fp_server_conn_t *c, uint32_t events);

/* Close @c, drop what it holds and free it. */
void fp_server_conn_close(fp_server_t *srv, fp_server_conn_t *c);

/*
 * Allocate a reply with room for @niov data iovecs, @nslabs slab references
 * and a copied @payload_len-byte payload, all in one block (free() it if it
 * is not queued); NULL if out of memory.
 */
fp_server_out_t *fp_server_out_new(int niov, uint32_t nslabs, size_t payload_len);

/*
 * Queue @item on @c as the reply to @op #@id with @status and a @length-byte
 * payload (its iovecs from 1 on); @c owns it from now on.
 */
void fp_server_conn_queue(fp_server_t *srv, fp_server_conn_t *c, fp_server_out_t *item, uint8_t op,
                          uint64_t id, fp_status_t status, uint32_t length);

/* Reply to the current request with @status and a copy of @len bytes of @payload (may be 0). */
void fp_server_conn_reply(fp_server_t *srv, fp_server_conn_t *c, fp_status_t status,
                          const void *payload, uint32_t len);

/* Reject the current request with @status: one warn line (with @what, if not NULL), a reply. */
void fp_server_conn_reply_error(fp_server_t *srv, fp_server_conn_t *c, fp_status_t status,
                                const char *what);

/* A fatal error on @c: say why, reply if possible, and close once flushed. */
void fp_server_conn_fail(fp_server_t *srv, fp_server_conn_t *c, fp_status_t status,
                         const char *what);

/* Skip the @left bytes still to come of the current frame, then reject it with @status. */
void fp_server_conn_skip(fp_server_conn_t *c, uint32_t left, fp_status_t status);

/* ---- server_post.c ---- */

/* Set up / tear down the post queue (post_fd is added to the epoll set by the caller). */
fp_status_t fp_server_post_init(fp_server_t *srv);
void fp_server_post_cleanup(fp_server_t *srv);

/* post_fd is readable: carry out what was posted. */
void fp_server_post_drain(fp_server_t *srv);

/* ---- server_ops.c ---- */

/* Handle a complete control frame, c->hdr, with its payload in @payload. */
void fp_server_op_control(fp_server_t *srv, fp_server_conn_t *c, const uint8_t *payload);

/*
 * Handle the @args_len bytes of args of a data frame, c->hdr. READs are
 * answered at once; a WRITE switches @c to FP_SERVER_RX_DATA (or to
 * FP_SERVER_RX_DISCARD when rejected).
 */
void fp_server_op_data(fp_server_t *srv, fp_server_conn_t *c, const uint8_t *args,
                       uint32_t args_len);

#endif /* FP_SERVER_SERVER_INT_H */
