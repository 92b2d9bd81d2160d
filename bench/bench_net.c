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
 * - farpoold, started from the build tree (or --farpoold PATH), with one
 *   64 MiB slab written once so its pages are touched. The measured
 *   connection is a transport connection (fp_transport_*) of its own, after a
 *   HELLO done here; the slab is set up through the public API with the same
 *   client key, so the measured connection owns it.
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
 * farpoold's port file is removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h> /* NAN */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <farpool/farpool.h>

#include "common/log.h"
#include "common/parse.h"
#include "common/time.h"
#include "proto/proto.h"
#include "transport/transport.h"

#ifndef FP_BENCH_FARPOOLD
#define FP_BENCH_FARPOOLD "farpoold"
#endif

#define KIB (1ull << 10)
#define MIB (1ull << 20)

#define SPAN             (64 * MIB) /* bytes both servers serve from, rotating */
#define RAW_REQ_SIZE     48u        /* a raw request, like a farpool READ's 24 + 24 */
#define RAW_MAGIC        0x52415742u
#define RAW_OP_REPLY     1u /* reply with `size` bytes at `offset` */
#define RAW_OP_STREAM    2u /* write the buffer in 1 MiB send()s until the peer hangs up */
#define RAW_STREAM_IO    MIB
#define MAX_DEPTH        64
#define DEFAULT_DEPTH    16
#define IO_TIMEOUT_MS    10000 /* a stuck peer is an error, not a slow figure */
#define START_TIMEOUT_MS 10000
#define STOP_TIMEOUT_MS  5000

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

/*
 * Where the processes run. On a small VM a wake-up across CPUs costs tens of
 * microseconds (an IPI and a vCPU wake-up on the host), more than the whole
 * same-CPU round trip, and whether client and server share a CPU is the
 * scheduler's whim: unpinned, the 4 KiB round trip flips between about 20 and
 * about 80 us from one second to the next. So both servers always share a
 * placement, and by default latency is measured with everything on one CPU
 * (the ratio then shows farpool's own cost per request) and streams with the
 * client on one CPU and the servers on another (both ends work in parallel,
 * as on two machines).
 */
typedef enum cpu_mode {
    CPU_AUTO,  /* latency: same; streams: split */
    CPU_SPLIT, /* this client on one CPU, both servers on another */
    CPU_SAME,  /* everything on one CPU */
    CPU_NONE,  /* wherever the scheduler puts them */
} cpu_mode_t;

static const char *const cpu_mode_names[] = {"auto", "split", "same", "none"};

typedef enum bench_phase { PHASE_LATENCY, PHASE_STREAM } bench_phase_t;

typedef struct bench_cfg {
    unsigned runs;
    unsigned depth;
    bool quick;
    out_format_t format;
    const char *farpoold;
    cpu_mode_t cpu_mode;
    int cpus[2];              /* the first two CPUs this process may use; -1: none */
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
/* Children and cleanup                                                     */
/* ------------------------------------------------------------------------ */

/* What must be undone on exit. Also read by the signal handler, hence static. */
typedef struct bench_procs {
    pid_t raw_pid;  /* -1: none */
    pid_t node_pid; /* -1: none */
    char dir[64];   /* temporary directory, "" if none */
    char port_file[128];
} bench_procs_t;

static bench_procs_t procs = {-1, -1, "", ""};

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* SIGTERM, wait up to STOP_TIMEOUT_MS, then SIGKILL; always reaps. Signal-safe. */
static void proc_stop(pid_t *pid_p)
{
    pid_t pid = *pid_p;
    int st;

    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (unsigned waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            break;
        if (waited >= STOP_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        sleep_ms(10);
    }
    *pid_p = -1;
}

/* Stop every child and remove the temporary files. Async-signal-safe. */
static void procs_cleanup(void)
{
    proc_stop(&procs.node_pid);
    proc_stop(&procs.raw_pid);
    if (procs.port_file[0] != '\0') {
        unlink(procs.port_file);
        procs.port_file[0] = '\0';
    }
    if (procs.dir[0] != '\0') {
        rmdir(procs.dir);
        procs.dir[0] = '\0';
    }
}

static void on_signal(int sig)
{
    procs_cleanup();
    _exit(128 + sig);
}

/*
 * Pin @pid (0: the calling thread; else the main thread of that process, whose
 * later threads inherit it) to @cpu.
 */
static void pin_to_cpu(pid_t pid, int cpu)
{
    cpu_set_t set;

    if (pid < 0 || cpu < 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(pid, sizeof(set), &set) != 0)
        fprintf(stderr, "bench_net: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
}

/* The first two CPUs this process may use (the second -1 if there is one only). */
static void cpus_find(bench_cfg_t *cfg)
{
    cpu_set_t set;
    unsigned n = 0;

    cfg->cpus[0] = cfg->cpus[1] = -1;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return;
    for (int cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++) {
        if (CPU_ISSET(cpu, &set))
            cfg->cpus[n++] = cpu;
    }
    if (cfg->cpu_mode != CPU_NONE && cfg->cpu_mode != CPU_SAME && n < 2)
        fprintf(stderr, "bench_net: one CPU only: everything runs on it\n");
}

/* True when @phase runs client and servers on different CPUs. */
static bool phase_split(const bench_cfg_t *cfg, bench_phase_t phase)
{
    if (cfg->cpus[1] < 0)
        return false;
    return cfg->cpu_mode == CPU_SPLIT || (cfg->cpu_mode == CPU_AUTO && phase == PHASE_STREAM);
}

static const char *phase_placement(const bench_cfg_t *cfg, bench_phase_t phase)
{
    if (cfg->cpu_mode == CPU_NONE || cfg->cpus[0] < 0)
        return "unpinned";
    return phase_split(cfg, phase) ? "client and servers on 2 CPUs" : "all on 1 CPU";
}

/* Place this process and both servers for @phase. */
static void cpus_place(const bench_cfg_t *cfg, bench_phase_t phase)
{
    int client, server;

    if (cfg->cpu_mode == CPU_NONE || cfg->cpus[0] < 0)
        return;
    client = cfg->cpus[0];
    server = phase_split(cfg, phase) ? cfg->cpus[1] : cfg->cpus[0];
    pin_to_cpu(procs.raw_pid, server);
    pin_to_cpu(procs.node_pid, server);
    pin_to_cpu(0, client);
}

/* In a fresh child: die with the parent (which may already be gone). */
static void child_bind_to_parent(pid_t parent)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(1);
}

/* ------------------------------------------------------------------------ */
/* Blocking socket helpers (baseline)                                       */
/* ------------------------------------------------------------------------ */

static int read_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = recv(fd, p, len, MSG_WAITALL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void raw_req_encode(uint8_t *buf, uint32_t op, uint64_t size, uint64_t offset)
{
    memset(buf, 0, RAW_REQ_SIZE);
    fp_proto_put_u32(buf, RAW_MAGIC);
    fp_proto_put_u32(buf + 4, op);
    fp_proto_put_u64(buf + 8, size);
    fp_proto_put_u64(buf + 16, offset);
}

/* One client of the baseline server, until it hangs up or misbehaves. */
static void raw_serve(int fd, const uint8_t *buf)
{
    uint8_t req[RAW_REQ_SIZE];

    for (;;) {
        uint32_t op;
        uint64_t size, offset;

        if (read_full(fd, req, sizeof(req)) != 0 || fp_proto_get_u32(req) != RAW_MAGIC)
            return;
        op = fp_proto_get_u32(req + 4);
        size = fp_proto_get_u64(req + 8);
        offset = fp_proto_get_u64(req + 16);
        if (op == RAW_OP_REPLY) {
            if (size > SPAN || offset > SPAN - size || write_full(fd, buf + offset, size) != 0)
                return;
        } else if (op == RAW_OP_STREAM) {
            for (size_t off = 0;;) {
                size_t len = SPAN - off < RAW_STREAM_IO ? SPAN - off : RAW_STREAM_IO;
                ssize_t n = send(fd, buf + off, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    return;
                off = (off + (size_t)n) % SPAN;
            }
        } else {
            return;
        }
    }
}

typedef struct raw_conn {
    int fd;
    const uint8_t *buf;
} raw_conn_t;

static void *raw_conn_thread(void *arg)
{
    raw_conn_t *rc = arg;

    raw_serve(rc->fd, rc->buf);
    close(rc->fd);
    free(rc);
    return NULL;
}

/*
 * The baseline server process: one thread per connection, blocking I/O, so a
 * stream connection may stay open while another is served.
 */
static _Noreturn void raw_server_main(int lfd)
{
    pthread_attr_t attr;
    uint8_t *buf;
    int one = 1;

    signal(SIGPIPE, SIG_IGN);
    buf = mmap(NULL, SPAN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        _exit(1);
    madvise(buf, SPAN, MADV_HUGEPAGE); /* as farpoold's slabs */
    for (size_t i = 0; i < SPAN; i++)
        buf[i] = (uint8_t)(i * 131);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        raw_conn_t *rc;
        pthread_t tid;
        int fd = accept(lfd, NULL, NULL);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            _exit(1);
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        rc = malloc(sizeof(*rc));
        if (rc == NULL) {
            close(fd);
            continue;
        }
        rc->fd = fd;
        rc->buf = buf;
        if (pthread_create(&tid, &attr, raw_conn_thread, rc) != 0) {
            close(fd);
            free(rc);
        }
    }
}

/* Fork the baseline server on 127.0.0.1:0; its port is returned. */
static fp_status_t raw_server_start(uint16_t *port_p)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    pid_t parent = getpid(), pid;
    int lfd;

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        fprintf(stderr, "bench_net: socket: %s\n", strerror(errno));
        return FP_ERR_IO;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 16) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &len) < 0) {
        fprintf(stderr, "bench_net: baseline server socket: %s\n", strerror(errno));
        close(lfd);
        return FP_ERR_IO;
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "bench_net: fork: %s\n", strerror(errno));
        close(lfd);
        return FP_ERR_IO;
    }
    if (pid == 0) {
        child_bind_to_parent(parent);
        raw_server_main(lfd);
    }
    procs.raw_pid = pid;
    close(lfd);
    *port_p = ntohs(sin.sin_port);
    return FP_OK;
}

static int raw_connect(uint16_t port)
{
    struct sockaddr_in sin;
    struct timeval tv = {IO_TIMEOUT_MS / 1000, 0};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(port);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        fprintf(stderr, "bench_net: connect to the baseline server: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

/* ------------------------------------------------------------------------ */
/* farpoold and the measured transport connection                           */
/* ------------------------------------------------------------------------ */

static void close_inherited_fds(void)
{
    long max = sysconf(_SC_OPEN_MAX);

    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = 3; fd < max; fd++)
        close(fd);
}

/* Start farpoold; its "HOST:PORT" lands in @addr. */
static fp_status_t node_start(const char *path, char *addr, size_t addr_len)
{
    pid_t parent = getpid(), pid;
    uint64_t deadline;

    if (access(path, X_OK) != 0) {
        fprintf(stderr, "bench_net: cannot run farpoold at %s: %s (use --farpoold PATH)\n", path,
                strerror(errno));
        return FP_ERR_INVALID_PARAM;
    }
    snprintf(procs.dir, sizeof(procs.dir), "/tmp/bench_net.XXXXXX");
    if (mkdtemp(procs.dir) == NULL) {
        fprintf(stderr, "bench_net: mkdtemp: %s\n", strerror(errno));
        procs.dir[0] = '\0';
        return FP_ERR_IO;
    }
    snprintf(procs.port_file, sizeof(procs.port_file), "%s/port", procs.dir);
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "bench_net: fork: %s\n", strerror(errno));
        return FP_ERR_IO;
    }
    if (pid == 0) {
        child_bind_to_parent(parent);
        close_inherited_fds();
        execl(path, path, "--listen", "127.0.0.1:0", "--port-file", procs.port_file, "--capacity",
              "1G", "--log-level", "warn", (char *)NULL);
        fprintf(stderr, "bench_net: exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    procs.node_pid = pid;

    deadline = fp_time_ns() + START_TIMEOUT_MS * FP_NS_PER_MS;
    for (;;) {
        FILE *f = fopen(procs.port_file, "r");
        int st;

        if (f != NULL) {
            bool ok = fgets(addr, (int)addr_len, f) != NULL;
            fclose(f);
            if (ok) {
                addr[strcspn(addr, "\r\n")] = '\0';
                return FP_OK;
            }
        }
        if (waitpid(pid, &st, WNOHANG) == pid) {
            procs.node_pid = -1;
            fprintf(stderr, "bench_net: farpoold exited before listening (status %d)\n", st);
            return FP_ERR_IO;
        }
        if (fp_time_ns() > deadline) {
            fprintf(stderr, "bench_net: farpoold wrote no port file within %d ms\n",
                    START_TIMEOUT_MS);
            return FP_ERR_TIMED_OUT;
        }
        sleep_ms(5);
    }
}

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

/* Progress once, waiting up to IO_TIMEOUT_MS; on failure the connection is closed. */
static fp_status_t bench_fp_progress(bench_fp_t *b)
{
    fp_status_t status = fp_transport_progress(b->tp, IO_TIMEOUT_MS, NULL);

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
    params.timeout_ms = IO_TIMEOUT_MS;
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
    b->span = slab_size < SPAN ? slab_size : SPAN;
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
    tparams.connect_timeout_ms = IO_TIMEOUT_MS;
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

static fp_status_t raw_lat_op(int fd, size_t size, uint64_t offset, uint8_t *dst)
{
    uint8_t req[RAW_REQ_SIZE];

    raw_req_encode(req, RAW_OP_REPLY, size, offset);
    if (write_full(fd, req, sizeof(req)) != 0 || read_full(fd, dst, size) != 0) {
        fprintf(stderr, "bench_net: baseline ping-pong: %s\n", strerror(errno));
        return FP_ERR_NOT_CONNECTED;
    }
    return FP_OK;
}

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

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Median and p99 of @n samples (sorted here), in microseconds. */
static void lat_summary(uint64_t *samples, unsigned n, double *med_p, double *p99_p)
{
    qsort(samples, n, sizeof(*samples), cmp_u64);
    *med_p = (n % 2 ? (double)samples[n / 2]
                    : ((double)samples[n / 2 - 1] + (double)samples[n / 2]) / 2) /
             1e3;
    *p99_p = (double)samples[((size_t)n * 99 + 99) / 100 - 1] / 1e3; /* ceil(0.99 n) - 1 */
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
            status = raw_lat_op(fd, size, off, dst);
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
        lat_summary(samples[side], n, &r->lat_med[side][idx], &r->lat_p99[side][idx]);
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                  */
/* ------------------------------------------------------------------------ */

/* Bytes and nanoseconds of the slices of one stream figure, summed. */
typedef struct stream_acc {
    uint64_t bytes;
    uint64_t ns;
} stream_acc_t;

static double acc_gbs(const stream_acc_t *acc)
{
    return acc->ns > 0 ? (double)acc->bytes / (double)acc->ns : 0.0;
}

/*
 * A slice of the raw one-way stream on a new connection: @warm bytes, then up
 * to @bytes (within @limit_ns) timed; recv() of up to 1 MiB into @depth
 * rotating buffers.
 */
static fp_status_t raw_oneway_slice(uint16_t port, unsigned depth, uint64_t warm, uint64_t bytes,
                                    uint64_t limit_ns, uint8_t *dst, stream_acc_t *acc)
{
    uint8_t req[RAW_REQ_SIZE];
    uint64_t got = 0, t0 = 0, deadline = 0, total = warm;
    unsigned slot = 0;
    bool timing = false;
    int fd = raw_connect(port);

    if (fd < 0)
        return FP_ERR_NOT_CONNECTED;
    raw_req_encode(req, RAW_OP_STREAM, 0, 0);
    if (write_full(fd, req, sizeof(req)) != 0)
        goto err;
    for (;;) {
        ssize_t n;

        if (!timing && got >= total) {
            timing = true;
            got = 0;
            total = bytes;
            t0 = fp_time_ns();
            deadline = t0 + limit_ns;
        }
        if (timing && got >= total)
            break;
        n = recv(fd, dst + (size_t)slot * RAW_STREAM_IO, RAW_STREAM_IO, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto err;
        got += (uint64_t)n;
        slot = (slot + 1) % depth;
        if (timing && fp_time_ns() >= deadline)
            break;
    }
    acc->bytes += got;
    acc->ns += fp_time_ns() - t0;
    close(fd);
    return FP_OK;

err:
    fprintf(stderr, "bench_net: baseline one-way stream: %s\n", strerror(errno));
    close(fd);
    return FP_ERR_NOT_CONNECTED;
}

/*
 * A slice of the raw request/response stream: @depth requests of @size in
 * flight on @fd; each reply lands in the next of @depth buffers and is
 * followed by a new request. Stops issuing at @bytes or @limit_ns, then
 * drains. @acc (may be NULL: warm-up) gets the bytes and the time.
 */
static fp_status_t raw_rr_slice(int fd, size_t size, unsigned depth, uint64_t span, uint64_t bytes,
                                uint64_t limit_ns, uint8_t *dst, uint64_t *off_p, stream_acc_t *acc)
{
    uint8_t req[MAX_DEPTH * RAW_REQ_SIZE];
    uint64_t issued = 0, done = 0, t0 = fp_time_ns(), deadline = t0 + limit_ns;
    unsigned inflight = 0, slot = 0;
    bool more = true;

    for (; inflight < depth && issued < bytes; inflight++) {
        raw_req_encode(req + inflight * RAW_REQ_SIZE, RAW_OP_REPLY, size, *off_p);
        *off_p = (*off_p + size) % span;
        issued += size;
    }
    if (write_full(fd, req, inflight * RAW_REQ_SIZE) != 0)
        goto err;
    while (inflight > 0) {
        if (read_full(fd, dst + (size_t)slot * size, size) != 0)
            goto err;
        slot = (slot + 1) % depth;
        inflight--;
        done += size;
        if (more)
            more = issued < bytes && fp_time_ns() < deadline;
        if (more) {
            raw_req_encode(req, RAW_OP_REPLY, size, *off_p);
            if (write_full(fd, req, RAW_REQ_SIZE) != 0)
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
                                   stream_acc_t *acc)
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
    stream_acc_t acc[3];
    fp_status_t status;
    int fd;

    memset(acc, 0, sizeof(acc));
    fd = raw_connect(port);
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
                status = raw_oneway_slice(port, cfg->depth, cfg->stream_warm / 4, bytes, limit, dst,
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
    r->oneway[idx] = acc_gbs(&acc[0]);
    r->rr[idx] = acc_gbs(&acc[1]);
    r->fp[idx] = acc_gbs(&acc[2]);
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* One run                                                                  */
/* ------------------------------------------------------------------------ */

static fp_status_t run_once(const bench_cfg_t *cfg, uint16_t raw_port, bench_fp_t *b, uint8_t *dst,
                            uint64_t *samples[2], run_result_t *r)
{
    fp_status_t status;

    cpus_place(cfg, PHASE_LATENCY);
    for (unsigned i = 0; i < NLAT; i++) {
        int fd = raw_connect(raw_port);

        if (fd < 0)
            return FP_ERR_NOT_CONNECTED;
        status = lat_measure(cfg, i, fd, b, dst, samples, r);
        close(fd);
        if (status != FP_OK)
            return status;
    }
    cpus_place(cfg, PHASE_STREAM);
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

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Median over runs of the double at @offset in each run_result_t. */
static double median_of(const run_result_t *runs, unsigned n, size_t offset)
{
    double v[64];

    for (unsigned i = 0; i < n; i++)
        v[i] = *(const double *)((const char *)&runs[i] + offset);
    qsort(v, n, sizeof(v[0]), cmp_double);
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
           phase_placement(cfg, PHASE_LATENCY), cfg->depth, phase_placement(cfg, PHASE_STREAM));
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
           phase_placement(cfg, PHASE_LATENCY), phase_placement(cfg, PHASE_STREAM));
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
            "  --farpoold PATH    the daemon to run (default: the build tree's)\n"
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

static int parse_uint(const char *text, unsigned min, unsigned max, unsigned *v_p)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return -1;
    *v_p = (unsigned)v;
    return 0;
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
    struct sigaction sa;
    sigset_t block;
    uint64_t *samples[2] = {NULL, NULL}; /* [SIDE_RAW], [SIDE_FP] */
    uint8_t *dst = NULL;
    size_t dst_len;
    uint16_t raw_port = 0;
    char node_addr[96] = "";
    unsigned runs_n = 3, depth = DEFAULT_DEPTH, nrows;
    bool quick = false;
    out_format_t format = OUT_MARKDOWN;
    cpu_mode_t cpu_mode = CPU_AUTO;
    const char *farpoold = FP_BENCH_FARPOOLD;
    fp_status_t status;
    int opt, rc = 1;

    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_QUICK:
            quick = true;
            break;
        case OPT_RUNS:
            if (parse_uint(optarg, 1, 64, &runs_n) != 0) {
                fprintf(stderr, "bench_net: invalid --runs '%s' (1-64)\n", optarg);
                return 2;
            }
            break;
        case OPT_DEPTH:
            if (parse_uint(optarg, 1, MAX_DEPTH, &depth) != 0) {
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
            for (cpu_mode = CPU_AUTO; cpu_mode <= CPU_NONE; cpu_mode++) {
                if (strcmp(optarg, cpu_mode_names[cpu_mode]) == 0)
                    break;
            }
            if (cpu_mode > CPU_NONE) {
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
    memset(&cfg, 0, sizeof(cfg));
    cfg_defaults(&cfg, quick);
    cfg.runs = runs_n;
    cfg.depth = depth;
    cfg.format = format;
    cfg.farpoold = farpoold;
    cfg.cpu_mode = cpu_mode;
    memset(&b, 0, sizeof(b));
    fp_log_set_prefix("bench_net");
    fp_log_set_level(FP_LOG_WARN);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Children first, before this process holds large buffers. */
    cpus_find(&cfg);
    status = raw_server_start(&raw_port);
    if (status != FP_OK)
        goto out;
    status = node_start(cfg.farpoold, node_addr, sizeof(node_addr));
    if (status != FP_OK)
        goto out;
    status = bench_fp_open(node_addr, &b, &node);
    if (status != FP_OK)
        goto out;

    /* Receive buffers: depth slots of the largest request, touched now. */
    dst_len =
        (size_t)cfg.depth *
        (stream_sizes[NSTREAM - 1] > RAW_STREAM_IO ? stream_sizes[NSTREAM - 1] : RAW_STREAM_IO);
    dst = malloc(dst_len);
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
    /* No signal handler may run the cleanup concurrently with this one. */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, NULL);
    procs_cleanup();
    return rc;
}
