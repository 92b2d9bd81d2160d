/* SPDX-License-Identifier: MIT */
/*
 * bench_net: farpool READ against raw loopback TCP, measured in one run.
 *
 * The question it answers: how much of the wire does farpool's protocol,
 * transport and daemon cost? Two servers run side by side as separate
 * processes, serving the same bytes over loopback:
 *
 * - a baseline: a plain blocking socket server, forked from this program. It
 *   answers a 48-byte request with N bytes from a preallocated, touched 64 MiB
 *   buffer (request/response), or writes that buffer in 1 MiB send()s until
 *   the client hangs up (the one-way stream, the loopback ceiling);
 * - farpoold (--farpoold PATH, else the one beside this program, in the
 *   directory above it or in PATH), with one 64 MiB slab written once so its
 *   pages are touched. The measured connection is a transport connection
 *   (fp_transport_*) of its own, after a HELLO done here; the slab is set up
 *   through the public API with the same client key, so the measured
 *   connection owns it.
 *
 * Both serve ranges that rotate through 64 MiB, and both clients receive into
 * the same rotating set of DEPTH buffers, so neither side has a cache
 * advantage. Figures:
 *
 * - latency with one request outstanding, median and p99, of 4 KiB, 64 KiB
 *   and 1 MiB replies;
 * - streaming bandwidth with DEPTH (16) requests in flight of 256 KiB, 1 MiB
 *   and 2 MiB: raw request/response and farpool READ, each compared with the
 *   raw one-way stream.
 *
 * Every measurement has a warm-up and is bounded in count (or bytes) and in
 * time; the whole set is repeated --runs times and the median of each figure
 * is reported. Ratios are taken between figures of the same run, never
 * against a stored number: the machines are shared and noisy.
 *
 * This is a benchmark, not a test: it prints a table and gates on nothing.
 * Its exit status says only whether it could measure.
 *
 * Children: both servers ask for SIGTERM when this process dies
 * (PR_SET_PDEATHSIG); on every exit path, and on SIGINT/SIGTERM, they are sent
 * SIGTERM (SIGKILL after 5 s) and reaped, and the temporary directory holding
 * farpoold's port file is removed (bench_common.c, shared with bench_fault).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h> /* NAN */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <farpool/farpool.h>

#include "bench_common.h"
#include "common/log.h"
#include "common/time.h"
#include "proto/proto.h"
#include "transport/transport.h"

#define MAX_DEPTH     64
#define DEFAULT_DEPTH 16

#define NLAT    3
#define NSTREAM 3
static const size_t lat_sizes[NLAT] = {4 * KIB, 64 * KIB, MIB};
static const char *const lat_names[NLAT] = {"4 KiB", "64 KiB", "1 MiB"};
static const size_t stream_sizes[NSTREAM] = {256 * KIB, MIB, 2 * MIB};
static const char *const stream_names[NSTREAM] = {"256 KiB", "1 MiB", "2 MiB"};

/* Targets of the issue: 4 KiB latency <= 1.2x raw; streams >= 0.8x the raw stream. */
#define TARGET_LAT    1.2
#define TARGET_STREAM 0.8

enum { SIDE_RAW = 0, SIDE_FP = 1 };

typedef enum out_format { OUT_MARKDOWN, OUT_JSON, OUT_CSV } out_format_t;

typedef struct bench_cfg {
    unsigned runs;
    unsigned depth;
    bool quick;
    out_format_t format;
    const char *farpoold;
    bench_cpus_t cpus;
    unsigned lat_count[NLAT]; /* measured requests at most */
    unsigned lat_warm;        /* warm-up requests */
    uint64_t lat_limit_ns;    /* time limit of one latency measurement */
    uint64_t stream_bytes;    /* bytes of one stream measurement at most */
    uint64_t stream_warm;     /* warm-up bytes */
    uint64_t stream_limit_ns;
} bench_cfg_t;

/* The figures of one run. */
typedef struct run_result {
    double lat_med[2][NLAT]; /* microseconds, [SIDE_RAW or SIDE_FP][size] */
    double lat_p99[2][NLAT];
    double oneway[NSTREAM]; /* GB/s (1e9 bytes/s): raw one-way stream, alongside... */
    double rr[NSTREAM];     /* ...the raw request/response stream... */
    double fp[NSTREAM];     /* ...and the farpool READ stream of each request size */
} run_result_t;

/* ------------------------------------------------------------------------ */
/* farpoold and the measured transport connection                           */
/* ------------------------------------------------------------------------ */

typedef struct bench_fp bench_fp_t;

/* One request on the measured connection. */
typedef struct bench_op {
    fp_xfer_t xfer;
    fp_proto_range_t range;
    struct iovec req_iov, rsp_iov;
    bool done;
    fp_status_t status;
    struct bench_op *next_done;
    bench_fp_t *owner;
} bench_op_t;

struct bench_fp {
    fp_transport_t *tp; /* NULL once broken */
    uint64_t slab;
    uint64_t span;        /* bytes of the slab that are read, rotating */
    bench_op_t *done_top; /* ops completed since the last look */
};

static void bench_op_done(fp_xfer_t *xfer, fp_status_t status)
{
    bench_op_t *op = xfer->arg;

    op->done = true;
    op->status = status;
    op->next_done = op->owner->done_top;
    op->owner->done_top = op;
}

static void bench_op_init(bench_fp_t *b, bench_op_t *op, uint8_t opcode)
{
    memset(op, 0, sizeof(*op));
    op->owner = b;
    op->xfer.op = opcode;
    op->xfer.done = bench_op_done;
    op->xfer.arg = op;
    op->xfer.req_iov = &op->req_iov;
    op->xfer.rsp_iov = &op->rsp_iov;
}

/* Prepare @op as a READ of @size bytes at @offset of the slab into @dst. */
static void bench_op_read(bench_fp_t *b, bench_op_t *op, uint64_t offset, size_t size, void *dst)
{
    op->done = false;
    op->range.slab = b->slab;
    op->range.offset = offset;
    op->range.length = (uint32_t)size;
    op->xfer.nranges = 1;
    op->xfer.ranges = &op->range;
    op->xfer.req_iovcnt = 0;
    op->rsp_iov.iov_base = dst;
    op->rsp_iov.iov_len = size;
    op->xfer.rsp_iovcnt = 1;
}

/* The connection can no longer be trusted: close it (completing every op). */
static void bench_fp_break(bench_fp_t *b)
{
    fp_transport_close(b->tp);
    b->tp = NULL;
}

/* Progress once, waiting up to BENCH_IO_TIMEOUT_MS; on failure the connection is closed. */
static fp_status_t bench_fp_progress(bench_fp_t *b)
{
    fp_status_t status = fp_transport_progress(b->tp, BENCH_IO_TIMEOUT_MS, NULL);

    if (status == FP_OK)
        return FP_OK;
    fprintf(stderr, "bench_net: farpool transport: %s\n", fp_status_string(status));
    bench_fp_break(b);
    return status;
}

/* Submit @op and wait for it. */
static fp_status_t bench_fp_call(bench_fp_t *b, bench_op_t *op)
{
    fp_status_t status;

    if (b->tp == NULL)
        return FP_ERR_NOT_CONNECTED;
    status = fp_transport_submit(b->tp, &op->xfer);
    if (status != FP_OK)
        return status;
    while (!op->done) {
        status = bench_fp_progress(b);
        if (status != FP_OK)
            return status;
    }
    b->done_top = NULL;
    return op->status;
}

/* HELLO on the measured connection, presenting @key (the slab owner's). */
static fp_status_t bench_fp_hello(bench_fp_t *b, const uint8_t *key)
{
    uint8_t req_buf[FP_PROTO_HELLO_REQ_SIZE], rep_buf[FP_PROTO_HELLO_REP_SIZE];
    fp_proto_hello_req_t req = {FP_PROTO_VERSION, FP_PROTO_VERSION, {0}};
    fp_proto_hello_rep_t rep;
    bench_op_t op;
    fp_status_t status;

    memcpy(req.client_key, key, sizeof(req.client_key));
    fp_proto_hello_req_encode(&req, req_buf);
    bench_op_init(b, &op, FP_OP_HELLO);
    op.req_iov.iov_base = req_buf;
    op.req_iov.iov_len = sizeof(req_buf);
    op.xfer.req_iovcnt = 1;
    op.rsp_iov.iov_base = rep_buf;
    op.rsp_iov.iov_len = sizeof(rep_buf);
    op.xfer.rsp_iovcnt = 1;
    status = bench_fp_call(b, &op);
    if (status == FP_OK)
        status = fp_proto_hello_rep_decode(rep_buf, op.xfer.rsp_len, &rep);
    if (status != FP_OK) {
        fprintf(stderr, "bench_net: HELLO failed: %s\n", fp_status_string(status));
        return status;
    }
    if (rep.flags & FP_PROTO_HELLO_AUTH_REQUIRED) {
        fprintf(stderr,
                "bench_net: the node asks for a secret; bench_net starts its own without\n");
        return FP_ERR_AUTH;
    }
    return FP_OK;
}

/*
 * Set up the slab through the public API (alloc, write it once so its pages
 * are touched), then open the measured transport connection with the same
 * client key. @node_p keeps the setup connection open (the slab's owner).
 */
static fp_status_t bench_fp_open(const char *addr_text, bench_fp_t *b, farpool_node_t **node_p)
{
    farpool_node_params_t params;
    fp_transport_params_t tparams;
    farpool_node_t *node = NULL;
    uint64_t slab, slab_size;
    uint8_t *fill;
    fp_addr_t addr;
    fp_status_t status;

    memset(&params, 0, sizeof(params));
    params.field_mask = FARPOOL_NODE_PARAM_CLIENT_KEY | FARPOOL_NODE_PARAM_TIMEOUT;
    params.timeout_ms = BENCH_IO_TIMEOUT_MS;
    status = fp_proto_random(params.client_key, sizeof(params.client_key));
    if (status != FP_OK)
        return status;
    status = farpool_node_connect(addr_text, &params, &node);
    if (status != FP_OK)
        goto err;
    status = farpool_slab_alloc(node, &slab, &slab_size);
    if (status != FP_OK)
        goto err_close_node;
    b->slab = slab;
    b->span = slab_size < BENCH_SPAN ? slab_size : BENCH_SPAN;
    if (b->span < 2 * MIB) {
        fprintf(stderr, "bench_net: slab of %llu bytes is too small\n",
                (unsigned long long)slab_size);
        status = FP_ERR_INVALID_PARAM;
        goto err_close_node;
    }
    fill = malloc(b->span);
    if (fill == NULL) {
        status = FP_ERR_NO_MEMORY;
        goto err_close_node;
    }
    for (size_t i = 0; i < b->span; i++)
        fill[i] = (uint8_t)(i * 131);
    status = farpool_slab_write(node, slab, 0, fill, b->span);
    free(fill);
    if (status != FP_OK)
        goto err_close_node;

    status = fp_addr_parse(addr_text, &addr);
    if (status != FP_OK)
        goto err_close_node;
    fp_transport_params_default(&tparams);
    tparams.connect_timeout_ms = BENCH_IO_TIMEOUT_MS;
    status = fp_transport_connect(&fp_transport_tcp_ops, &addr, &tparams, &b->tp);
    if (status != FP_OK)
        goto err_close_node;
    status = bench_fp_hello(b, params.client_key);
    if (status != FP_OK)
        goto err_close_tp;
    *node_p = node;
    return FP_OK;

err_close_tp:
    bench_fp_break(b);
err_close_node:
    farpool_node_close(node);
err:
    fprintf(stderr, "bench_net: farpool setup on %s failed: %s\n", addr_text,
            fp_status_string(status));
    return status;
}

/* ------------------------------------------------------------------------ */
/* Latency                                                                  */
/* ------------------------------------------------------------------------ */

static fp_status_t fp_lat_op(bench_fp_t *b, size_t size, uint64_t offset, uint8_t *dst)
{
    bench_op_t op;
    fp_status_t status;

    bench_op_init(b, &op, FP_OP_READ);
    bench_op_read(b, &op, offset, size, dst);
    status = bench_fp_call(b, &op);
    if (status != FP_OK)
        fprintf(stderr, "bench_net: farpool READ: %s\n", fp_status_string(status));
    return status;
}

/*
 * Latency of @size-byte replies, one request outstanding. Raw and farpool take
 * turns in blocks of LAT_BLOCK requests (which goes first alternates), so both
 * see the same machine: on a shared host the load changes within a second.
 * Blocks rather than single requests: alternating request by request leaves
 * each server idle for the other's round trip, which is not the steady state
 * either would see alone (farpoold's round trip was seen to triple that way).
 * Warm-up, then up to count requests each within the time limit. Both read
 * the same offsets, rotating through the span.
 */
#define LAT_BLOCK 100

static fp_status_t lat_block(int side, int fd, bench_fp_t *b, size_t size, unsigned count,
                             uint64_t off, uint8_t *dst, uint64_t *samples)
{
    fp_status_t status;

    for (unsigned i = 0; i < count; i++) {
        uint64_t t0 = fp_time_ns();

        if (side == SIDE_RAW)
            status = bench_raw_pingpong(fd, size, off, dst);
        else
            status = fp_lat_op(b, size, off, dst);
        if (status != FP_OK)
            return status;
        if (samples != NULL)
            samples[i] = fp_time_ns() - t0;
        off = (off + size) % b->span;
    }
    return FP_OK;
}

static fp_status_t lat_measure(const bench_cfg_t *cfg, unsigned idx, int fd, bench_fp_t *b,
                               uint8_t *dst, uint64_t *samples[2], run_result_t *r)
{
    size_t size = lat_sizes[idx];
    uint64_t off = 0, deadline;
    unsigned n = 0;
    fp_status_t status;

    for (int side = 0; side < 2; side++) {
        status = lat_block(side, fd, b, size, cfg->lat_warm, 0, dst, NULL);
        if (status != FP_OK)
            return status;
    }
    deadline = fp_time_ns() + cfg->lat_limit_ns;
    for (unsigned blk = 0; n < cfg->lat_count[idx] && fp_time_ns() < deadline; blk++) {
        unsigned count = cfg->lat_count[idx] - n < LAT_BLOCK ? cfg->lat_count[idx] - n : LAT_BLOCK;

        for (int k = 0; k < 2; k++) {
            int side = (int)((blk + (unsigned)k) % 2);

            status = lat_block(side, fd, b, size, count, off, dst, samples[side] + n);
            if (status != FP_OK)
                return status;
        }
        n += count;
        off = (off + count * size) % b->span;
    }
    for (unsigned side = 0; side < 2; side++)
        bench_lat_summary(samples[side], n, &r->lat_med[side][idx], &r->lat_p99[side][idx]);
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * A slice of the raw request/response stream: @depth requests of @size in
 * flight on @fd; each reply lands in the next of @depth buffers and is
 * followed by a new request. Stops issuing at @bytes or @limit_ns, then
 * drains. @acc (may be NULL: warm-up) gets the bytes and the time.
 */
static fp_status_t raw_rr_slice(int fd, size_t size, unsigned depth, uint64_t span, uint64_t bytes,
                                uint64_t limit_ns, uint8_t *dst, uint64_t *off_p, bench_acc_t *acc)
{
    uint8_t req[MAX_DEPTH * BENCH_RAW_REQ_SIZE];
    uint64_t issued = 0, done = 0, t0 = fp_time_ns(), deadline = t0 + limit_ns;
    unsigned inflight = 0, slot = 0;
    bool more = true;

    for (; inflight < depth && issued < bytes; inflight++) {
        bench_raw_req_encode(req + inflight * BENCH_RAW_REQ_SIZE, BENCH_RAW_OP_REPLY, size, *off_p);
        *off_p = (*off_p + size) % span;
        issued += size;
    }
    if (bench_write_full(fd, req, inflight * BENCH_RAW_REQ_SIZE) != 0)
        goto err;
    while (inflight > 0) {
        if (bench_read_full(fd, dst + (size_t)slot * size, size) != 0)
            goto err;
        slot = (slot + 1) % depth;
        inflight--;
        done += size;
        if (more)
            more = issued < bytes && fp_time_ns() < deadline;
        if (more) {
            bench_raw_req_encode(req, BENCH_RAW_OP_REPLY, size, *off_p);
            if (bench_write_full(fd, req, BENCH_RAW_REQ_SIZE) != 0)
                goto err;
            *off_p = (*off_p + size) % span;
            issued += size;
            inflight++;
        }
    }
    if (acc != NULL) {
        acc->bytes += done;
        acc->ns += fp_time_ns() - t0;
    }
    return FP_OK;

err:
    fprintf(stderr, "bench_net: baseline request/response stream: %s\n", strerror(errno));
    return FP_ERR_NOT_CONNECTED;
}

/* A slice of the farpool READ stream: as raw_rr_slice(), on the measured connection. */
static fp_status_t fp_stream_slice(bench_fp_t *b, size_t size, unsigned depth, uint64_t bytes,
                                   uint64_t limit_ns, uint8_t *dst, uint64_t *off_p,
                                   bench_acc_t *acc)
{
    bench_op_t ops[MAX_DEPTH];
    uint64_t issued = 0, done = 0, t0 = fp_time_ns(), deadline = t0 + limit_ns;
    unsigned inflight = 0;
    fp_status_t status, first_error = FP_OK;
    bool more = true;

    if (b->tp == NULL)
        return FP_ERR_NOT_CONNECTED;
    b->done_top = NULL;
    for (unsigned i = 0; i < depth && issued < bytes; i++) {
        bench_op_init(b, &ops[i], FP_OP_READ);
        bench_op_read(b, &ops[i], *off_p, size, dst + (size_t)i * size);
        status = fp_transport_submit(b->tp, &ops[i].xfer);
        if (status != FP_OK) {
            first_error = status;
            more = false;
            break;
        }
        *off_p = (*off_p + size) % b->span;
        issued += size;
        inflight++;
    }
    while (inflight > 0) {
        bench_op_t *op;

        status = bench_fp_progress(b); /* on failure every op has completed */
        if (status != FP_OK) {
            b->done_top = NULL;
            return status;
        }
        if (more)
            more = first_error == FP_OK && issued < bytes && fp_time_ns() < deadline;
        while ((op = b->done_top) != NULL) {
            b->done_top = op->next_done;
            inflight--;
            if (op->status != FP_OK) {
                if (first_error == FP_OK)
                    first_error = op->status;
                more = false;
                continue;
            }
            done += size;
            if (!more)
                continue;
            bench_op_read(b, op, *off_p, size, op->rsp_iov.iov_base);
            status = fp_transport_submit(b->tp, &op->xfer);
            if (status != FP_OK) {
                first_error = status;
                more = false;
                continue;
            }
            *off_p = (*off_p + size) % b->span;
            issued += size;
            inflight++;
        }
    }
    if (first_error != FP_OK) {
        fprintf(stderr, "bench_net: farpool READ: %s\n", fp_status_string(first_error));
        return first_error;
    }
    if (acc != NULL) {
        acc->bytes += done;
        acc->ns += fp_time_ns() - t0;
    }
    return FP_OK;
}

/*
 * The three streams of one request size, interleaved: after a warm-up of
 * each, STREAM_SLICES slices of the one-way stream, the raw request/response
 * stream and the farpool READ stream take turns (the order rotates), each
 * slice 1/STREAM_SLICES of the byte and time budget. The ceiling of each row
 * is thus measured in the same seconds as the row.
 */
#define STREAM_SLICES 4

static fp_status_t stream_measure(const bench_cfg_t *cfg, unsigned idx, uint16_t port,
                                  bench_fp_t *b, uint8_t *dst, run_result_t *r)
{
    size_t size = stream_sizes[idx];
    uint64_t raw_off = 0, fp_off = 0;
    uint64_t bytes = cfg->stream_bytes / STREAM_SLICES;
    uint64_t limit = cfg->stream_limit_ns / STREAM_SLICES;
    bench_acc_t acc[3];
    fp_status_t status;
    int fd;

    memset(acc, 0, sizeof(acc));
    fd = bench_raw_connect(port);
    if (fd < 0)
        return FP_ERR_NOT_CONNECTED;
    status =
        raw_rr_slice(fd, size, cfg->depth, b->span, cfg->stream_warm, limit, dst, &raw_off, NULL);
    if (status == FP_OK)
        status = fp_stream_slice(b, size, cfg->depth, cfg->stream_warm, limit, dst, &fp_off, NULL);
    for (unsigned s = 0; s < STREAM_SLICES && status == FP_OK; s++) {
        for (unsigned k = 0; k < 3 && status == FP_OK; k++) {
            switch ((s + k) % 3) {
            case 0:
                status = bench_raw_oneway(port, cfg->depth, cfg->stream_warm / 4, bytes, limit, dst,
                                          &acc[0]);
                break;
            case 1:
                status = raw_rr_slice(fd, size, cfg->depth, b->span, bytes, limit, dst, &raw_off,
                                      &acc[1]);
                break;
            default:
                status = fp_stream_slice(b, size, cfg->depth, bytes, limit, dst, &fp_off, &acc[2]);
                break;
            }
        }
    }
    close(fd);
    if (status != FP_OK)
        return status;
    r->oneway[idx] = bench_acc_gbs(&acc[0]);
    r->rr[idx] = bench_acc_gbs(&acc[1]);
    r->fp[idx] = bench_acc_gbs(&acc[2]);
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* One run                                                                  */
/* ------------------------------------------------------------------------ */

static fp_status_t run_once(const bench_cfg_t *cfg, uint16_t raw_port, bench_fp_t *b, uint8_t *dst,
                            uint64_t *samples[2], run_result_t *r)
{
    fp_status_t status;

    bench_cpus_place(&cfg->cpus, BENCH_PHASE_LATENCY);
    for (unsigned i = 0; i < NLAT; i++) {
        int fd = bench_raw_connect(raw_port);

        if (fd < 0)
            return FP_ERR_NOT_CONNECTED;
        status = lat_measure(cfg, i, fd, b, dst, samples, r);
        close(fd);
        if (status != FP_OK)
            return status;
    }
    bench_cpus_place(&cfg->cpus, BENCH_PHASE_STREAM);
    for (unsigned i = 0; i < NSTREAM; i++) {
        status = stream_measure(cfg, i, raw_port, b, dst, r);
        if (status != FP_OK)
            return status;
    }
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* Report                                                                   */
/* ------------------------------------------------------------------------ */

/* Median over runs of the double at @offset in each run_result_t. */
static double median_of(const run_result_t *runs, unsigned n, size_t offset)
{
    double v[64];

    for (unsigned i = 0; i < n; i++)
        v[i] = *(const double *)((const char *)&runs[i] + offset);
    qsort(v, n, sizeof(v[0]), bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Offsets of a figure in run_result_t, for median_of(). */
#define LAT_MED_AT(side, i) (offsetof(run_result_t, lat_med) + ((side)*NLAT + (i)) * sizeof(double))
#define LAT_P99_AT(side, i) (offsetof(run_result_t, lat_p99) + ((side)*NLAT + (i)) * sizeof(double))
#define ONEWAY_AT(i)        (offsetof(run_result_t, oneway) + (i) * sizeof(double))
#define RR_AT(i)            (offsetof(run_result_t, rr) + (i) * sizeof(double))
#define FP_AT(i)            (offsetof(run_result_t, fp) + (i) * sizeof(double))

typedef enum row_kind { ROW_LAT, ROW_STREAM } row_kind_t;

typedef struct report_row {
    char metric[64];
    const char *unit;
    row_kind_t kind;
    double raw;    /* latency: raw ping-pong; stream: raw one-way */
    double raw_rr; /* stream: raw request/response (else NAN) */
    double fp;
    double ratio;  /* fp / raw */
    double target; /* 0: none */
    const char *target_text;
} report_row_t;

#define MAX_ROWS (2 * NLAT + NSTREAM)

static unsigned build_rows(const bench_cfg_t *cfg, const run_result_t *runs, unsigned n,
                           report_row_t *rows)
{
    unsigned k = 0;

    for (unsigned i = 0; i < NLAT; i++) {
        for (unsigned p = 0; p < 2; p++) {
            report_row_t *row = &rows[k++];

            snprintf(row->metric, sizeof(row->metric), "%s latency %s (us)", lat_names[i],
                     p == 0 ? "median" : "p99");
            row->unit = "us";
            row->kind = ROW_LAT;
            row->raw =
                median_of(runs, n, p == 0 ? LAT_MED_AT(SIDE_RAW, i) : LAT_P99_AT(SIDE_RAW, i));
            row->fp = median_of(runs, n, p == 0 ? LAT_MED_AT(SIDE_FP, i) : LAT_P99_AT(SIDE_FP, i));
            row->raw_rr = NAN;
            row->ratio = row->fp / row->raw;
            row->target = i == 0 && p == 0 ? TARGET_LAT : 0;
            row->target_text = i == 0 && p == 0 ? "<= 1.2x" : "-";
        }
    }
    for (unsigned i = 0; i < NSTREAM; i++) {
        report_row_t *row = &rows[k++];

        snprintf(row->metric, sizeof(row->metric), "stream %s x%u (GB/s)", stream_names[i],
                 cfg->depth);
        row->unit = "GB/s";
        row->kind = ROW_STREAM;
        row->raw = median_of(runs, n, ONEWAY_AT(i));
        row->raw_rr = median_of(runs, n, RR_AT(i));
        row->fp = median_of(runs, n, FP_AT(i));
        row->ratio = row->fp / row->raw;
        row->target = TARGET_STREAM;
        row->target_text = ">= 0.8x";
    }
    return k;
}

static const char *row_verdict(const report_row_t *row)
{
    if (row->target == 0)
        return "-";
    if (row->kind == ROW_LAT)
        return row->ratio <= row->target ? "yes" : "no";
    return row->ratio >= row->target ? "yes" : "no";
}

static void print_markdown(const bench_cfg_t *cfg, const report_row_t *rows, unsigned nrows,
                           const char *node_addr)
{
    printf("bench_net: farpool READ vs raw loopback TCP; median of %u run%s%s; farpoold at %s\n"
           "latency: one request outstanding, %s; streams: %u in flight, %s\n\n",
           cfg->runs, cfg->runs == 1 ? "" : "s", cfg->quick ? " (--quick)" : "", node_addr,
           bench_phase_placement(&cfg->cpus, BENCH_PHASE_LATENCY), cfg->depth,
           bench_phase_placement(&cfg->cpus, BENCH_PHASE_STREAM));
    printf("| metric | raw TCP | farpool | ratio | target | met |\n");
    printf("|---|---|---|---|---|---|\n");
    for (unsigned i = 0; i < nrows; i++) {
        const report_row_t *row = &rows[i];

        if (row->kind == ROW_LAT)
            printf("| %s | %.1f | %.1f | %.2fx | %s | %s |\n", row->metric, row->raw, row->fp,
                   row->ratio, row->target_text, row_verdict(row));
        else
            printf("| %s | %.2f (one-way stream); %.2f (req/resp x%u) | %.2f | %.2fx "
                   "(%.2fx of req/resp) | %s | %s |\n",
                   row->metric, row->raw, row->raw_rr, cfg->depth, row->fp, row->ratio,
                   row->fp / row->raw_rr, row->target_text, row_verdict(row));
    }
    printf("\nLatency: one request outstanding; ratio = farpool / raw ping-pong (lower is "
           "better).\nStreams: ratio = farpool / raw one-way stream, the loopback ceiling "
           "(higher is better).\n");
}

static void print_csv(const report_row_t *rows, unsigned nrows)
{
    printf("metric,unit,raw,raw_reqresp,farpool,ratio,target,met\n");
    for (unsigned i = 0; i < nrows; i++) {
        const report_row_t *row = &rows[i];

        printf("\"%s\",%s,%.3f,", row->metric, row->unit, row->raw);
        if (row->kind == ROW_STREAM)
            printf("%.3f", row->raw_rr);
        printf(",%.3f,%.4f,\"%s\",%s\n", row->fp, row->ratio, row->target_text, row_verdict(row));
    }
}

static void print_json(const bench_cfg_t *cfg, const report_row_t *rows, unsigned nrows)
{
    printf("{\"bench\":\"bench_net\",\"runs\":%u,\"quick\":%s,\"depth\":%u,"
           "\"placement_latency\":\"%s\",\"placement_streams\":\"%s\",\"rows\":[\n",
           cfg->runs, cfg->quick ? "true" : "false", cfg->depth,
           bench_phase_placement(&cfg->cpus, BENCH_PHASE_LATENCY),
           bench_phase_placement(&cfg->cpus, BENCH_PHASE_STREAM));
    for (unsigned i = 0; i < nrows; i++) {
        const report_row_t *row = &rows[i];

        printf("  {\"metric\":\"%s\",\"unit\":\"%s\",\"raw\":%.3f,", row->metric, row->unit,
               row->raw);
        if (row->kind == ROW_STREAM)
            printf("\"raw_reqresp\":%.3f,", row->raw_rr);
        else
            printf("\"raw_reqresp\":null,");
        printf("\"farpool\":%.3f,\"ratio\":%.4f,\"target\":", row->fp, row->ratio);
        if (row->target == 0)
            printf("null,\"met\":null}");
        else
            printf("\"%s\",\"met\":%s}", row->target_text,
                   strcmp(row_verdict(row), "yes") == 0 ? "true" : "false");
        printf("%s\n", i + 1 < nrows ? "," : "");
    }
    printf("]}\n");
}

/* One line per run on stderr, to judge the noise. */
static void print_run_line(unsigned i, unsigned n, const run_result_t *r)
{
    fprintf(stderr, "run %u/%u: latency raw/farpool (us)", i + 1, n);
    for (unsigned k = 0; k < NLAT; k++)
        fprintf(stderr, " %s %.1f/%.1f", lat_names[k], r->lat_med[SIDE_RAW][k],
                r->lat_med[SIDE_FP][k]);
    fprintf(stderr, "; streams one-way/req-resp/farpool (GB/s)");
    for (unsigned k = 0; k < NSTREAM; k++)
        fprintf(stderr, " %s %.2f/%.2f/%.2f", stream_names[k], r->oneway[k], r->rr[k], r->fp[k]);
    fprintf(stderr, "\n");
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: bench_net [OPTIONS]\n"
            "Measure farpool READ against raw loopback TCP in one run: 4 KiB, 64 KiB and\n"
            "1 MiB request/response latency, and streaming bandwidth with 256 KiB-2 MiB\n"
            "requests in flight. Prints a table of ratios; never fails on a figure.\n\n"
            "  --quick            small counts, for a smoke run (a few seconds)\n"
            "  --runs N           repeat everything N times, report medians (default 3)\n"
            "  --depth N          requests in flight in streams, 1-%d (default %d)\n"
            "  --farpoold PATH    the daemon to run (default: the one beside this program, in\n"
            "                     the directory above it, or in PATH)\n"
            "  --cpu MODE         where processes run: auto (default): latency all on one\n"
            "                     CPU, streams client and servers on two; split: always\n"
            "                     two; same: always one; none: no pinning\n"
            "  --json, --csv      print JSON or CSV instead of a Markdown table\n"
            "  -h, --help         show this help\n",
            MAX_DEPTH, DEFAULT_DEPTH);
}

static void cfg_defaults(bench_cfg_t *cfg, bool quick)
{
    cfg->quick = quick;
    if (quick) {
        cfg->lat_count[0] = 2000;
        cfg->lat_count[1] = 1000;
        cfg->lat_count[2] = 200;
        cfg->lat_warm = 50;
        cfg->lat_limit_ns = 300 * FP_NS_PER_MS;
        cfg->stream_bytes = 256 * MIB;
        cfg->stream_warm = 32 * MIB;
        cfg->stream_limit_ns = 300 * FP_NS_PER_MS;
    } else {
        cfg->lat_count[0] = 20000;
        cfg->lat_count[1] = 10000;
        cfg->lat_count[2] = 3000;
        cfg->lat_warm = 500;
        cfg->lat_limit_ns = 3000 * FP_NS_PER_MS;
        cfg->stream_bytes = 1024 * MIB;
        cfg->stream_warm = 128 * MIB;
        cfg->stream_limit_ns = 3000 * FP_NS_PER_MS;
    }
}

int main(int argc, char **argv)
{
    enum { OPT_QUICK = 256, OPT_RUNS, OPT_DEPTH, OPT_FARPOOLD, OPT_JSON, OPT_CSV, OPT_CPU };
    static const struct option options[] = {
        {"quick", no_argument, NULL, OPT_QUICK},
        {"runs", required_argument, NULL, OPT_RUNS},
        {"depth", required_argument, NULL, OPT_DEPTH},
        {"farpoold", required_argument, NULL, OPT_FARPOOLD},
        {"json", no_argument, NULL, OPT_JSON},
        {"csv", no_argument, NULL, OPT_CSV},
        {"cpu", required_argument, NULL, OPT_CPU},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bench_cfg_t cfg;
    bench_fp_t b;
    farpool_node_t *node = NULL;
    run_result_t runs[64];
    report_row_t rows[MAX_ROWS];
    uint64_t *samples[2] = {NULL, NULL}; /* [SIDE_RAW], [SIDE_FP] */
    uint8_t *dst = NULL;
    size_t dst_len;
    uint16_t raw_port = 0;
    char node_addr[96] = "";
    unsigned runs_n = 3, depth = DEFAULT_DEPTH, nrows;
    bool quick = false;
    out_format_t format = OUT_MARKDOWN;
    bench_cpu_mode_t cpu_mode = BENCH_CPU_AUTO;
    const char *farpoold = NULL; /* --farpoold, else farpoold_found */
    char farpoold_found[PATH_MAX];
    fp_status_t status;
    int opt, rc = 1;

    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_QUICK:
            quick = true;
            break;
        case OPT_RUNS:
            if (bench_parse_uint(optarg, 1, 64, &runs_n) != 0) {
                fprintf(stderr, "bench_net: invalid --runs '%s' (1-64)\n", optarg);
                return 2;
            }
            break;
        case OPT_DEPTH:
            if (bench_parse_uint(optarg, 1, MAX_DEPTH, &depth) != 0) {
                fprintf(stderr, "bench_net: invalid --depth '%s' (1-%d)\n", optarg, MAX_DEPTH);
                return 2;
            }
            break;
        case OPT_FARPOOLD:
            farpoold = optarg;
            break;
        case OPT_JSON:
            format = OUT_JSON;
            break;
        case OPT_CSV:
            format = OUT_CSV;
            break;
        case OPT_CPU:
            if (bench_cpu_mode_parse(optarg, &cpu_mode) != 0) {
                fprintf(stderr, "bench_net: invalid --cpu '%s' (auto, split, same or none)\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bench_net: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (farpoold == NULL) {
        if (!bench_farpoold_find(farpoold_found, sizeof(farpoold_found))) {
            fprintf(stderr,
                    "%s: farpoold not found beside this program, in the directory above "
                    "it or in PATH (use --farpoold PATH)\n",
                    "bench_net");
            return 1;
        }
        farpoold = farpoold_found;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg_defaults(&cfg, quick);
    cfg.runs = runs_n;
    cfg.depth = depth;
    cfg.format = format;
    cfg.farpoold = farpoold;
    memset(&b, 0, sizeof(b));

    bench_init("bench_net");

    /* Children first, before this process holds large buffers. */
    bench_cpus_find(cpu_mode, &cfg.cpus);
    status = bench_raw_start(&raw_port);
    if (status != FP_OK)
        goto out;
    status = bench_node_start(cfg.farpoold, "1G", node_addr, sizeof(node_addr));
    if (status != FP_OK)
        goto out;
    status = bench_fp_open(node_addr, &b, &node);
    if (status != FP_OK)
        goto out;

    /* Receive buffers: depth slots of the largest request, touched now. */
    dst_len = (size_t)cfg.depth * (stream_sizes[NSTREAM - 1] > BENCH_RAW_STREAM_IO
                                       ? stream_sizes[NSTREAM - 1]
                                       : BENCH_RAW_STREAM_IO);
    dst = bench_buf_alloc(dst_len);
    for (unsigned side = 0; side < 2; side++) /* lat_count[0] is the largest count */
        samples[side] = malloc(cfg.lat_count[0] * sizeof(*samples[side]));
    if (dst == NULL || samples[SIDE_RAW] == NULL || samples[SIDE_FP] == NULL) {
        fprintf(stderr, "bench_net: out of memory\n");
        goto out;
    }
    memset(dst, 0, dst_len);

    for (unsigned i = 0; i < cfg.runs; i++) {
        status = run_once(&cfg, raw_port, &b, dst, samples, &runs[i]);
        if (status != FP_OK)
            goto out;
        print_run_line(i, cfg.runs, &runs[i]);
    }
    nrows = build_rows(&cfg, runs, cfg.runs, rows);
    if (cfg.format == OUT_JSON)
        print_json(&cfg, rows, nrows);
    else if (cfg.format == OUT_CSV)
        print_csv(rows, nrows);
    else
        print_markdown(&cfg, rows, nrows, node_addr);
    fflush(stdout);
    rc = 0;

out:
    fp_transport_close(b.tp);
    farpool_node_close(node);
    free(samples[SIDE_RAW]);
    free(samples[SIDE_FP]);
    free(dst);
    bench_cleanup();
    return rc;
}
