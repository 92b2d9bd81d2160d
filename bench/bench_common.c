/* SPDX-License-Identifier: MIT */
/* Helpers shared by the benchmarks; see bench_common.h. */
#include "bench_common.h"

#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
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

#include "common/time.h"
#include "proto/proto.h"

#define RAW_MAGIC 0x52415742u

const char *bench_prog = "bench";

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

void bench_child_reset_signals(void)
{
    struct sigaction sa;
    sigset_t none;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

int bench_wait_bounded(pid_t pid, unsigned ms)
{
    int st = -1;

    for (unsigned waited = 0;; waited += 2) {
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid)
            return st;
        if (r < 0 && errno != EINTR)
            return -1;
        if (waited >= ms) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            return -1;
        }
        bench_sleep_ms(2);
    }
}

void bench_sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

void bench_sleep_us(unsigned us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* SIGTERM, wait up to BENCH_STOP_TIMEOUT_MS, then SIGKILL; always reaps. Signal-safe. */
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
        if (waited >= BENCH_STOP_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        bench_sleep_ms(10);
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

void bench_init(const char *prog)
{
    struct sigaction sa;

    bench_prog = prog;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void bench_cleanup(void)
{
    sigset_t block;

    /* No signal handler may run the cleanup concurrently with this one. */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, NULL);
    procs_cleanup();
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
/* CPU placement                                                            */
/* ------------------------------------------------------------------------ */

static const char *const cpu_mode_names[] = {"auto", "split", "same", "none"};

int bench_cpu_mode_parse(const char *text, bench_cpu_mode_t *mode_p)
{
    for (int m = BENCH_CPU_AUTO; m <= BENCH_CPU_NONE; m++) {
        if (strcmp(text, cpu_mode_names[m]) == 0) {
            *mode_p = (bench_cpu_mode_t)m;
            return 0;
        }
    }
    return -1;
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
        fprintf(stderr, "%s: cannot pin to CPU %d: %s\n", bench_prog, cpu, strerror(errno));
}

void bench_cpus_find(bench_cpu_mode_t mode, bench_cpus_t *cpus_p)
{
    cpu_set_t set;
    unsigned n = 0;

    cpus_p->mode = mode;
    cpus_p->cpu[0] = cpus_p->cpu[1] = -1;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return;
    for (int cpu = 0; cpu < CPU_SETSIZE && n < 2; cpu++) {
        if (CPU_ISSET(cpu, &set))
            cpus_p->cpu[n++] = cpu;
    }
    if (mode != BENCH_CPU_NONE && mode != BENCH_CPU_SAME && n < 2)
        fprintf(stderr, "%s: one CPU only: everything runs on it\n", bench_prog);
}

bool bench_phase_split(const bench_cpus_t *cpus, bench_phase_t phase)
{
    if (cpus->cpu[1] < 0)
        return false;
    return cpus->mode == BENCH_CPU_SPLIT ||
           (cpus->mode == BENCH_CPU_AUTO && phase == BENCH_PHASE_STREAM);
}

const char *bench_phase_placement(const bench_cpus_t *cpus, bench_phase_t phase)
{
    if (cpus->mode == BENCH_CPU_NONE || cpus->cpu[0] < 0)
        return "unpinned";
    return bench_phase_split(cpus, phase) ? "client and servers on 2 CPUs" : "all on 1 CPU";
}

void bench_cpus_place(const bench_cpus_t *cpus, bench_phase_t phase)
{
    int client, server;

    if (cpus->mode == BENCH_CPU_NONE || cpus->cpu[0] < 0)
        return;
    client = cpus->cpu[0];
    server = bench_phase_split(cpus, phase) ? cpus->cpu[1] : cpus->cpu[0];
    pin_to_cpu(procs.raw_pid, server);
    pin_to_cpu(procs.node_pid, server);
    pin_to_cpu(0, client);
}

/* ------------------------------------------------------------------------ */
/* Blocking socket helpers and the baseline server                          */
/* ------------------------------------------------------------------------ */

int bench_read_full(int fd, void *buf, size_t len)
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

int bench_write_full(int fd, const void *buf, size_t len)
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

void bench_raw_req_encode(uint8_t *buf, uint32_t op, uint64_t size, uint64_t offset)
{
    memset(buf, 0, BENCH_RAW_REQ_SIZE);
    fp_proto_put_u32(buf, RAW_MAGIC);
    fp_proto_put_u32(buf + 4, op);
    fp_proto_put_u64(buf + 8, size);
    fp_proto_put_u64(buf + 16, offset);
}

/* One client of the baseline server, until it hangs up or misbehaves. */
static void raw_serve(int fd, uint8_t *buf)
{
    uint8_t req[BENCH_RAW_REQ_SIZE];

    for (;;) {
        uint32_t op;
        uint64_t size, offset;

        if (bench_read_full(fd, req, sizeof(req)) != 0 || fp_proto_get_u32(req) != RAW_MAGIC)
            return;
        op = fp_proto_get_u32(req + 4);
        size = fp_proto_get_u64(req + 8);
        offset = fp_proto_get_u64(req + 16);
        if (op == BENCH_RAW_OP_REPLY) {
            if (size > BENCH_SPAN || offset > BENCH_SPAN - size ||
                bench_write_full(fd, buf + offset, size) != 0)
                return;
        } else if (op == BENCH_RAW_OP_STREAM) {
            for (size_t off = 0;;) {
                size_t len =
                    BENCH_SPAN - off < BENCH_RAW_STREAM_IO ? BENCH_SPAN - off : BENCH_RAW_STREAM_IO;
                ssize_t n = send(fd, buf + off, len, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    return;
                off = (off + (size_t)n) % BENCH_SPAN;
            }
        } else if (op == BENCH_RAW_OP_SINK) {
            uint8_t ack[8] = {0};

            for (uint64_t got = 0, off = 0; got < size;) {
                size_t len =
                    BENCH_SPAN - off < BENCH_RAW_STREAM_IO ? BENCH_SPAN - off : BENCH_RAW_STREAM_IO;
                ssize_t n = recv(fd, buf + off, size - got < len ? (size_t)(size - got) : len, 0);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    return;
                got += (uint64_t)n;
                off = (off + (uint64_t)n) % BENCH_SPAN;
            }
            if (bench_write_full(fd, ack, sizeof(ack)) != 0)
                return;
        } else {
            return;
        }
    }
}

typedef struct raw_conn {
    int fd;
    uint8_t *buf; /* the stream reads it, the sink writes it */
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
    buf = mmap(NULL, BENCH_SPAN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED)
        _exit(1);
    madvise(buf, BENCH_SPAN, MADV_HUGEPAGE); /* as farpoold's slabs */
    for (size_t i = 0; i < BENCH_SPAN; i++)
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

fp_status_t bench_raw_start(uint16_t *port_p)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    pid_t parent = getpid(), pid;
    int lfd;

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        fprintf(stderr, "%s: socket: %s\n", bench_prog, strerror(errno));
        return FP_ERR_IO;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 16) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &len) < 0) {
        fprintf(stderr, "%s: baseline server socket: %s\n", bench_prog, strerror(errno));
        close(lfd);
        return FP_ERR_IO;
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", bench_prog, strerror(errno));
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

int bench_raw_connect(uint16_t port)
{
    struct sockaddr_in sin;
    struct timeval tv = {BENCH_IO_TIMEOUT_MS / 1000, 0};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = htons(port);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        fprintf(stderr, "%s: connect to the baseline server: %s\n", bench_prog, strerror(errno));
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

/* ------------------------------------------------------------------------ */
/* farpoold                                                                 */
/* ------------------------------------------------------------------------ */

static bool is_executable_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

bool bench_find_program(const char *name, char *buf, size_t len)
{
    const char *path = getenv("PATH");

    if (strchr(name, '/') != NULL) {
        snprintf(buf, len, "%s", name);
        return is_executable_file(buf);
    }
    if (path == NULL || path[0] == '\0')
        path = "/usr/local/bin:/usr/bin:/bin";
    for (;;) {
        size_t n = strcspn(path, ":");

        if (n == 0) /* an empty entry is the current directory */
            snprintf(buf, len, "./%s", name);
        else
            snprintf(buf, len, "%.*s/%s", (int)n, path, name);
        if (is_executable_file(buf))
            return true;
        if (path[n] == '\0')
            return false;
        path += n + 1;
    }
}

bool bench_farpoold_find(char *buf, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

    if (n > 0) {
        self[n] = '\0';
        /* Its directory, then the one above it. */
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(self, '/');

            if (slash == NULL)
                break;
            *slash = '\0';
            if ((size_t)snprintf(buf, len, "%s/farpoold", self) < len && is_executable_file(buf))
                return true;
        }
    }
    return bench_find_program("farpoold", buf, len);
}

static void close_inherited_fds(void)
{
    long max = sysconf(_SC_OPEN_MAX);

    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = 3; fd < max; fd++)
        close(fd);
}

fp_status_t bench_node_start(const char *path, const char *capacity, char *addr, size_t addr_len)
{
    pid_t parent = getpid(), pid;
    uint64_t deadline;

    if (access(path, X_OK) != 0) {
        fprintf(stderr, "%s: cannot run farpoold at %s: %s (use --farpoold PATH)\n", bench_prog,
                path, strerror(errno));
        return FP_ERR_INVALID_PARAM;
    }
    snprintf(procs.dir, sizeof(procs.dir), "/tmp/%s.XXXXXX", bench_prog);
    if (mkdtemp(procs.dir) == NULL) {
        fprintf(stderr, "%s: mkdtemp: %s\n", bench_prog, strerror(errno));
        procs.dir[0] = '\0';
        return FP_ERR_IO;
    }
    snprintf(procs.port_file, sizeof(procs.port_file), "%s/port", procs.dir);
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", bench_prog, strerror(errno));
        return FP_ERR_IO;
    }
    if (pid == 0) {
        child_bind_to_parent(parent);
        close_inherited_fds();
        execl(path, path, "--listen", "127.0.0.1:0", "--port-file", procs.port_file, "--capacity",
              capacity, "--log-level", "warn", (char *)NULL);
        fprintf(stderr, "%s: exec %s: %s\n", bench_prog, path, strerror(errno));
        _exit(127);
    }
    procs.node_pid = pid;

    deadline = fp_time_ns() + BENCH_START_TIMEOUT_MS * FP_NS_PER_MS;
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
            fprintf(stderr, "%s: farpoold exited before listening (status %d)\n", bench_prog, st);
            return FP_ERR_IO;
        }
        if (fp_time_ns() > deadline) {
            fprintf(stderr, "%s: farpoold wrote no port file within %d ms\n", bench_prog,
                    BENCH_START_TIMEOUT_MS);
            return FP_ERR_TIMED_OUT;
        }
        bench_sleep_ms(5);
    }
}

/* ------------------------------------------------------------------------ */
/* The baseline's client side                                               */
/* ------------------------------------------------------------------------ */

fp_status_t bench_raw_pingpong(int fd, size_t size, uint64_t offset, uint8_t *dst)
{
    uint8_t req[BENCH_RAW_REQ_SIZE];

    bench_raw_req_encode(req, BENCH_RAW_OP_REPLY, size, offset);
    if (bench_write_full(fd, req, sizeof(req)) != 0 || bench_read_full(fd, dst, size) != 0) {
        fprintf(stderr, "%s: baseline ping-pong: %s\n", bench_prog, strerror(errno));
        return FP_ERR_NOT_CONNECTED;
    }
    return FP_OK;
}

double bench_acc_gbs(const bench_acc_t *acc)
{
    return acc->ns > 0 ? (double)acc->bytes / (double)acc->ns : 0.0;
}

fp_status_t bench_raw_oneway(uint16_t port, unsigned depth, uint64_t warm, uint64_t bytes,
                             uint64_t limit_ns, uint8_t *dst, bench_acc_t *acc)
{
    uint8_t req[BENCH_RAW_REQ_SIZE];
    uint64_t got = 0, t0 = 0, deadline = 0, total = warm;
    unsigned slot = 0;
    bool timing = false;
    int fd = bench_raw_connect(port);

    if (fd < 0)
        return FP_ERR_NOT_CONNECTED;
    bench_raw_req_encode(req, BENCH_RAW_OP_STREAM, 0, 0);
    if (bench_write_full(fd, req, sizeof(req)) != 0)
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
        n = recv(fd, dst + (size_t)slot * BENCH_RAW_STREAM_IO, BENCH_RAW_STREAM_IO, 0);
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
    fprintf(stderr, "%s: baseline one-way stream: %s\n", bench_prog, strerror(errno));
    close(fd);
    return FP_ERR_NOT_CONNECTED;
}

fp_status_t bench_raw_sink(uint16_t port, uint64_t bytes, const uint8_t *src, size_t src_len,
                           bench_acc_t *acc)
{
    uint8_t req[BENCH_RAW_REQ_SIZE], ack[8];
    uint64_t sent = 0, t0;
    size_t off = 0;
    int fd = bench_raw_connect(port);

    if (fd < 0)
        return FP_ERR_NOT_CONNECTED;
    bench_raw_req_encode(req, BENCH_RAW_OP_SINK, bytes, 0);
    if (bench_write_full(fd, req, sizeof(req)) != 0)
        goto err;
    t0 = fp_time_ns();
    while (sent < bytes) {
        size_t len = src_len - off < BENCH_RAW_STREAM_IO ? src_len - off : BENCH_RAW_STREAM_IO;
        ssize_t n;

        if (len > bytes - sent)
            len = (size_t)(bytes - sent);
        n = send(fd, src + off, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto err;
        sent += (uint64_t)n;
        off = (off + (size_t)n) % src_len;
    }
    if (bench_read_full(fd, ack, sizeof(ack)) != 0)
        goto err;
    acc->bytes += bytes;
    acc->ns += fp_time_ns() - t0;
    close(fd);
    return FP_OK;

err:
    fprintf(stderr, "%s: baseline write stream: %s\n", bench_prog, strerror(errno));
    close(fd);
    return FP_ERR_NOT_CONNECTED;
}

/* ------------------------------------------------------------------------ */
/* CPU time                                                                 */
/* ------------------------------------------------------------------------ */

void bench_cpu_time(bench_cpu_time_t *t)
{
    unsigned long long v[8] = {0};
    char line[256];
    FILE *f = fopen("/proc/stat", "r");

    memset(t, 0, sizeof(*t));
    if (f == NULL)
        return;
    /* cpu  user nice system idle iowait irq softirq steal ... */
    if (fgets(line, sizeof(line), f) != NULL &&
        sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]) == 8) {
        t->busy = v[0] + v[1] + v[2] + v[5] + v[6];
        t->total = t->busy + v[3] + v[4] + v[7];
        while (fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "cpu", 3) == 0 && line[3] >= '0' && line[3] <= '9')
                t->ncpu++;
    }
    fclose(f);
}

double bench_cpu_busy(const bench_cpu_time_t *a, const bench_cpu_time_t *b)
{
    if (b->ncpu == 0 || b->total <= a->total)
        return -1;
    return (double)(b->busy - a->busy) / (double)(b->total - a->total) * b->ncpu;
}

/* ------------------------------------------------------------------------ */
/* Statistics and parsing                                                   */
/* ------------------------------------------------------------------------ */

int bench_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

void bench_lat_summary(uint64_t *samples, unsigned n, double *med_p, double *p99_p)
{
    qsort(samples, n, sizeof(*samples), bench_cmp_u64);
    *med_p = (n % 2 ? (double)samples[n / 2]
                    : ((double)samples[n / 2 - 1] + (double)samples[n / 2]) / 2) /
             1e3;
    *p99_p = (double)samples[((size_t)n * 99 + 99) / 100 - 1] / 1e3; /* ceil(0.99 n) - 1 */
}

double bench_median(double *v, unsigned n)
{
    qsort(v, n, sizeof(v[0]), bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_warm_memory(uint64_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    if (p == MAP_FAILED)
        return;
    madvise(p, bytes, MADV_HUGEPAGE);
    if (madvise(p, bytes, MADV_POPULATE_WRITE) != 0)
        memset(p, 1, bytes);
    munmap(p, bytes);
}

void *bench_buf_alloc(size_t len)
{
    size_t page = 4096;

    return aligned_alloc(page, (len + page - 1) / page * page);
}

int bench_parse_uint(const char *text, unsigned min, unsigned max, unsigned *v_p)
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

int bench_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "farpool-bench %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'farpool-bench %s --help'.\n", cmd);
    return 2;
}
