/* SPDX-License-Identifier: MIT */
/*
 * farpoold at its limits: out of file descriptors, a client that queues
 * millions of tiny replies and never reads them, and epoll_ctl() failing
 * (issue #18). Each test runs a real daemon of its own on loopback.
 *
 *   - test_fd_exhaustion: the daemon's descriptor limit is lowered (prlimit)
 *     to what it holds plus a few connections, and more connections keep
 *     arriving. Its log must stay bounded and its CPU time low (no loop
 *     spinning on a listener that accept() cannot empty), each connection
 *     beyond the limit must be closed at once (shed), and once descriptors
 *     are free again a new client is served.
 *   - test_tiny_replies_bounded: a client pipelines zero-length READs (24
 *     bytes each, each answered with a 24-byte error reply) and never reads.
 *     The daemon's resident memory must stay bounded, because the replies'
 *     own bookkeeping counts against the output high-water mark, and other
 *     clients are still served.
 *   - test_epoll_*: a seccomp filter installed in the daemon only (before
 *     exec) makes one kind of epoll_ctl() call fail with ENOMEM. The daemon
 *     must notice: refuse to start when it cannot watch its listener, close
 *     (not stall) a connection whose events it cannot change, and say so when
 *     it cannot unwatch one. The client does not read the READ replies meant
 *     to need EPOLLOUT until the daemon has dropped the connection (its
 *     descriptor count says so): a client draining them could keep pace with
 *     a slow daemon (TSan), which then sends everything and never needs MOD.
 *
 * DESIGN
 * Every loop is bounded in count and in time, and every wait is on a
 * condition (a reply, a closed connection, a log line, the daemon's
 * descriptor count) with a deadline; the only fixed sleeps pace the arrival
 * of connections in test_fd_exhaustion and the polling of conditions. CPU
 * time and memory come from /proc/PID/stat and /proc/PID/status; bounds are
 * loose enough for a sanitized daemon beside a busy CPU and far below what
 * the defects cost (a spinning core, hundreds of MiB).
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <cmocka.h>

#include "common/attack.h"
#include "common/daemon.h"
#include "proto/proto.h"

#define KEY_TEST "limits-key-00001" /* exactly 16 bytes */

/* test_fd_exhaustion */
#define HOLD_EXTRA      8    /* connections the lowered limit leaves room for */
#define HOLD_MAX        64   /* ...counting holes below the highest descriptor */
#define FLOOD_MS        2000 /* connections keep arriving for this long */
#define FLOOD_MAX       200  /* at most this many */
#define FLOOD_PACE_MS   10   /* one every this many ms */
#define SHED_WAIT_MS    1000 /* a connection beyond the limit must be closed within this */
#define FLOOD_LINES_MAX 8    /* log lines the flood may add (one a second is said) */
#define FLOOD_CPU_MS    400  /* CPU time the daemon may spend during the flood */
#define FD_WAIT_MS      5000 /* closed connections must free their descriptors within this */

/* test_tiny_replies_bounded */
#define TINY_CHUNK     4096       /* frames per send buffer */
#define TINY_MAX       (6u << 20) /* frames sent at most (144 MiB) */
#define TINY_DEADLINE  30000      /* ms the attack may take at most */
#define TINY_STALL_MS  1000       /* no progress for this long: the node stopped reading */
#define TINY_RSS_CHECK 16         /* check the daemon's RSS every this many chunks */
#ifdef FP_SANITIZED
#define TINY_RSS_MAX_KIB (192u << 10) /* ASan's allocator and shadow cost more per reply */
#else
#define TINY_RSS_MAX_KIB (96u << 10)
#endif

/* test_epoll_* */
#define EPOLL_CLOSE_MS  3000
#define EPOLL_READ_LEN  FP_PROTO_MAX_DATA /* the largest READ (16 MiB) */
#define EPOLL_READS_MAX 4                 /* 64 MiB: what farpoold queues before it stops reading */
#define EPOLL_RCVBUF    (64u << 10)       /* the client's receive buffer, fixed (no autotuning) */

#define SERVED_DEADLINE_MS 2000 /* a new client gets HELLO and STATS answered within this */

/* The daemon of the running test, and its raw connections; stopped by the teardown. */
typedef struct limits_env {
    fp_test_daemon_t d;
    bool running;
    int fds[HOLD_MAX + 8];
    int nfds;
    uint64_t next_id;
} limits_env_t;

static limits_env_t env;

/* ---- the daemon's process ---- */

/* A field of /proc/@pid/status, in kB (VmRSS, VmHWM); 0 if missing. */
static uint64_t proc_status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t flen = strlen(field);
    uint64_t v = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    if (f == NULL)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            v = strtoull(line + flen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* User plus system CPU time of @pid so far, in milliseconds. */
static uint64_t proc_cpu_ms(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long utime = 0, stime = 0;
    long hz = sysconf(_SC_CLK_TCK);
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        fail_msg("cannot read %s", path);
    buf[n] = '\0';
    p = strrchr(buf, ')'); /* the name may hold spaces; fields 3.. follow it */
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                            &stime) != 2)
        fail_msg("cannot parse %s", path);
    return (utime + stime) * 1000u / (uint64_t)(hz > 0 ? hz : 100);
}

/* The number of @pid's open descriptors, and the highest one into *@max_p. */
static int proc_fds(pid_t pid, int *max_p)
{
    char path[64];
    struct dirent *de;
    int count = 0, max = -1;
    DIR *dir;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    dir = opendir(path);
    if (dir == NULL)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    while ((de = readdir(dir)) != NULL) {
        int fd;

        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        fd = atoi(de->d_name);
        count++;
        if (fd > max)
            max = fd;
    }
    closedir(dir);
    if (max_p != NULL)
        *max_p = max;
    return count;
}

/* Wait up to @timeout_ms for @pid to hold at most @count descriptors. */
static void wait_fds_at_most(pid_t pid, int count, int timeout_ms)
{
    uint64_t deadline = fp_test_attack_now_ms() + (uint64_t)timeout_ms;
    int now;

    while ((now = proc_fds(pid, NULL)) > count) {
        if (fp_test_attack_now_ms() >= deadline)
            fail_msg("farpoold still holds %d descriptors %d ms after its clients left; "
                     "expected at most %d",
                     now, timeout_ms, count);
        fp_test_attack_sleep_ms(10);
    }
}

/* All lines of the daemon's log. */
static size_t log_lines(const fp_test_daemon_t *d)
{
    return fp_test_daemon_log_count(d, "");
}

/* ---- the test's daemon and connections ---- */

static void env_start(const char *const args[], fp_test_daemon_child_func_t setup, void *arg)
{
    fp_status_t status;

    memset(&env, 0, sizeof(env));
    env.next_id = 0x100;
    status = fp_test_daemon_start_setup(args, setup, arg, &env.d);
    if (status != FP_OK)
        fail_msg("cannot start farpoold: %s", fp_status_string(status));
    env.running = true;
}

static int env_teardown(void **state)
{
    for (int i = 0; i < env.nfds; i++) {
        if (env.fds[i] >= 0)
            close(env.fds[i]);
    }
    env.nfds = 0;
    if (env.running) {
        env.running = false;
        fp_test_daemon_stop(&env.d);
    }
    return fp_test_attack_watchdog_disarm(state);
}

/* A raw connection the teardown closes if the test does not. */
static int env_connect(void)
{
    int fd = fp_test_connect_raw(env.d.addr);

    if (fd < 0)
        fail_msg("cannot connect to %s", env.d.addr);
    if (env.nfds < (int)(sizeof(env.fds) / sizeof(env.fds[0])))
        env.fds[env.nfds++] = fd;
    return fd;
}

static void env_close(int fd)
{
    for (int i = 0; i < env.nfds; i++) {
        if (env.fds[i] == fd)
            env.fds[i] = -1;
    }
    close(fd);
}

static void raw_hello(int fd)
{
    uint8_t buf[FP_PROTO_HELLO_REP_SIZE];
    fp_proto_hello_req_t req = {1, 1, {0}};
    fp_proto_hello_rep_t rep;
    uint64_t id = env.next_id++;
    fp_proto_hdr_t h;

    memcpy(req.client_key, KEY_TEST, FP_PROTO_KEY_SIZE);
    fp_proto_hello_req_encode(&req, buf);
    fp_test_attack_send_frame(fd, FP_OP_HELLO, id, buf, FP_PROTO_HELLO_REQ_SIZE);
    h = fp_test_attack_expect_reply(fd, FP_OP_HELLO, id, FP_OK, buf, sizeof(buf));
    if (fp_proto_hello_rep_decode(buf, h.length, &rep) != FP_OK)
        fail_msg("the HELLO reply does not decode");
}

static void raw_stats(int fd, uint64_t v[FP_PROTO_STATS_FIELDS])
{
    uint8_t buf[FP_PROTO_STATS_REP_SIZE];
    uint64_t id = env.next_id++;
    fp_proto_hdr_t h;

    fp_test_attack_send_frame(fd, FP_OP_STATS, id, NULL, 0);
    h = fp_test_attack_expect_reply(fd, FP_OP_STATS, id, FP_OK, buf, sizeof(buf));
    if (h.length != sizeof(buf))
        fail_msg("STATS reply of %u bytes", h.length);
    for (unsigned i = 0; i < FP_PROTO_STATS_FIELDS; i++)
        v[i] = fp_proto_get_u64(buf + 8 * i);
}

static void raw_ping(int fd)
{
    uint8_t out[16];
    uint64_t id = env.next_id++;

    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(id * 31 + i);
    fp_test_attack_ping(fd, id, out, sizeof(out));
}

/* A new client connects, says HELLO and gets STATS within SERVED_DEADLINE_MS. */
static void new_client_served(void)
{
    uint64_t v[FP_PROTO_STATS_FIELDS], t0 = fp_test_attack_now_ms(), took;
    int fd;

    fp_test_attack_check_alive(&env.d);
    fd = env_connect();
    raw_hello(fd);
    raw_stats(fd, v);
    raw_ping(fd);
    took = fp_test_attack_now_ms() - t0;
    env_close(fd);
    if (took > SERVED_DEADLINE_MS)
        fail_msg("a new client was served only after %llu ms", (unsigned long long)took);
}

/* ---- out of file descriptors ---- */

static void test_fd_exhaustion(void **state)
{
    static const char *const args[] = {"--capacity", "8M", "--slab-size", "1M", NULL};
    struct rlimit rl;
    uint64_t t0, lines0, cpu0, lines, cpu;
    int base, maxfd, nhold, hold[HOLD_MAX], flood = 0, shed = 0, kept = 0;
    uint64_t v[FP_PROTO_STATS_FIELDS];

    (void)state;
    env_start(args, NULL, NULL);
    /* Room for HOLD_EXTRA descriptors above the highest one it holds now. */
    base = proc_fds(env.d.pid, &maxfd);
    rl.rlim_cur = rl.rlim_max = (rlim_t)maxfd + 1 + HOLD_EXTRA;
    if (prlimit(env.d.pid, RLIMIT_NOFILE, &rl, NULL) != 0)
        fail_msg("prlimit(%d, RLIMIT_NOFILE, %llu): %s", (int)env.d.pid,
                 (unsigned long long)rl.rlim_cur, strerror(errno));
    nhold = (int)rl.rlim_cur - base;
    if (nhold > HOLD_MAX)
        fail_msg("farpoold holds %d descriptors up to %d: too many holes", base, maxfd);

    /* Fill the table with clients that are served. */
    for (int i = 0; i < nhold; i++) {
        hold[i] = env_connect();
        raw_hello(hold[i]);
    }

    /* Now every new connection finds the table full. */
    lines0 = log_lines(&env.d);
    cpu0 = proc_cpu_ms(env.d.pid);
    t0 = fp_test_attack_now_ms();
    while (flood < FLOOD_MAX && fp_test_attack_now_ms() - t0 < FLOOD_MS) {
        int fd = fp_test_connect_raw(env.d.addr);

        if (fd < 0)
            fail_msg("connection %d beyond the limit: connect failed", flood);
        flood++;
        if (fp_test_wait_closed(fd, SHED_WAIT_MS))
            shed++;
        close(fd);
        fp_test_attack_sleep_ms(FLOOD_PACE_MS); /* pace the arrivals; no condition here */
    }
    lines = log_lines(&env.d) - lines0;
    cpu = proc_cpu_ms(env.d.pid) - cpu0;
    print_message("fd exhaustion: %d connections in %llu ms, %d shed; the daemon wrote %zu log "
                  "lines and used %llu ms of CPU\n",
                  flood, (unsigned long long)(fp_test_attack_now_ms() - t0), shed, (size_t)lines,
                  (unsigned long long)cpu);
    fp_test_attack_check_alive(&env.d);
    if (lines > FLOOD_LINES_MAX) {
        fail_msg("out of descriptors, farpoold wrote %zu log lines in %d ms (at most %d "
                 "expected)",
                 (size_t)lines, FLOOD_MS, FLOOD_LINES_MAX);
    }
    if (cpu > FLOOD_CPU_MS)
        fail_msg("out of descriptors, farpoold used %llu ms of CPU in %d ms (at most %d "
                 "expected): it spins",
                 (unsigned long long)cpu, FLOOD_MS, FLOOD_CPU_MS);
    if (shed != flood)
        fail_msg("%d of %d connections beyond the descriptor limit were left hanging, not "
                 "closed within %d ms",
                 flood - shed, flood, SHED_WAIT_MS);
    if (!fp_test_daemon_log_wait(&env.d, "shed", FP_TEST_ATTACK_LOG_WAIT_MS))
        fail_msg("farpoold did not say that it shed connections");

    /* The held clients are still served. */
    for (int i = 0; i < nhold; i++)
        raw_ping(hold[i]);

    /* Half of them leave: their descriptors serve new clients. */
    for (int i = 0; i < nhold / 2; i++)
        env_close(hold[i]);
    wait_fds_at_most(env.d.pid, (int)rl.rlim_cur - nhold / 2, FD_WAIT_MS);
    new_client_served();
    for (int i = nhold / 2; i < nhold; i++) {
        raw_ping(hold[i]);
        kept++;
    }
    raw_stats(hold[nhold - 1], v);
    if (v[4] != (uint64_t)kept)
        fail_msg("STATS counts %llu clients, expected %d", (unsigned long long)v[4], kept);
    for (int i = nhold / 2; i < nhold; i++)
        env_close(hold[i]);
    wait_fds_at_most(env.d.pid, base + 1, FD_WAIT_MS);
    new_client_served();
}

/* ---- tiny replies never read ---- */

static void test_tiny_replies_bounded(void **state)
{
    /* Each rejected READ is a warn line: keep the log small. */
    static const char *const args[] = {"--capacity",  "8M",    "--slab-size", "1M",
                                       "--log-level", "error", NULL};
    uint8_t *chunk = malloc((size_t)TINY_CHUNK * FP_PROTO_HDR_SIZE);
    uint64_t rss0, rss = 0, rss_max = 0, t0, last_progress, sent = 0, v[FP_PROTO_STATS_FIELDS];
    size_t chunk_len = (size_t)TINY_CHUNK * FP_PROTO_HDR_SIZE, off = 0;
    unsigned chunks = 0;
    bool stalled = false, over = false;
    int victim, fd;

    (void)state;
    if (chunk == NULL)
        fail_msg("out of memory");
    for (unsigned i = 0; i < TINY_CHUNK; i++)
        fp_test_attack_encode_request(chunk + (size_t)i * FP_PROTO_HDR_SIZE, FP_OP_READ,
                                      0x10000 + i, 0);
    env_start(args, NULL, NULL);
    victim = env_connect();
    raw_hello(victim);
    fd = env_connect();
    raw_hello(fd);
    rss0 = proc_status_kib(env.d.pid, "VmRSS");

    t0 = last_progress = fp_test_attack_now_ms();
    while (sent < TINY_MAX) {
        uint64_t now = fp_test_attack_now_ms();
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        ssize_t n;

        if (now - t0 >= TINY_DEADLINE)
            break;
        if (now - last_progress >= TINY_STALL_MS) {
            stalled = true;
            break;
        }
        n = send(fd, chunk + off, chunk_len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            fail_msg("send after %llu frames: %s", (unsigned long long)sent, strerror(errno));
        if (n <= 0) {
            poll(&pfd, 1, 100);
            continue;
        }
        last_progress = fp_test_attack_now_ms();
        off += (size_t)n;
        if (off < chunk_len)
            continue;
        off = 0;
        sent += TINY_CHUNK;
        if (++chunks % TINY_RSS_CHECK == 0) {
            rss = proc_status_kib(env.d.pid, "VmRSS");
            if (rss > rss_max)
                rss_max = rss;
            if (rss > rss0 + TINY_RSS_MAX_KIB) {
                over = true;
                break;
            }
        }
    }
    free(chunk);
    rss = proc_status_kib(env.d.pid, "VmRSS");
    if (rss > rss_max)
        rss_max = rss;
    print_message("tiny replies: %llu zero-length READs sent in %llu ms (%s); farpoold's RSS "
                  "%llu KiB at start, %llu KiB at most (+%llu KiB)\n",
                  (unsigned long long)sent, (unsigned long long)(fp_test_attack_now_ms() - t0),
                  stalled ? "then the node stopped reading" : "no stall", (unsigned long long)rss0,
                  (unsigned long long)rss_max, (unsigned long long)(rss_max - rss0));
    fp_test_attack_check_alive(&env.d);
    if (over || rss_max > rss0 + TINY_RSS_MAX_KIB)
        fail_msg("farpoold grew by %llu KiB (more than %u KiB) queueing the replies of a client "
                 "that never reads them",
                 (unsigned long long)(rss_max - rss0), TINY_RSS_MAX_KIB);
    if (!stalled)
        fail_msg("farpoold kept reading %llu requests whose replies nobody reads",
                 (unsigned long long)sent);

    /* Everyone else is still served: the old client and a new one. */
    raw_ping(victim);
    raw_stats(victim, v);
    new_client_served();
}

/* ---- epoll_ctl() failing ---- */

#if defined(__x86_64__)
#define FP_TEST_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define FP_TEST_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/*
 * In the daemon's child, before exec: make every epoll_ctl() with op
 * *@arg fail with ENOMEM. Only async-signal-safe calls.
 */
static void child_fail_epoll_op(void *arg)
{
#ifdef FP_TEST_AUDIT_ARCH
    const int op = *(const int *)arg;
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, FP_TEST_AUDIT_ARCH, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_epoll_ctl, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        /* The low half of the second argument (little-endian). */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)op, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOMEM & SECCOMP_RET_DATA)),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        _exit(125);
#else
    (void)arg;
    _exit(125);
#endif
}

static void skip_without_seccomp(void)
{
#ifndef FP_TEST_AUDIT_ARCH
    print_message("no seccomp filter for this architecture\n");
    skip();
#endif
}

/* The listener cannot be watched: the daemon must fail to start, not serve nobody. */
static void test_epoll_add_fails(void **state)
{
    static const char *const args[] = {"--capacity", "8M", "--slab-size", "1M", NULL};
    static int op = EPOLL_CTL_ADD;
    fp_test_daemon_t d;
    fp_status_t status;

    (void)state;
    skip_without_seccomp();
    print_message("(the start is meant to fail: farpoold's log follows)\n");
    status = fp_test_daemon_start_setup(args, child_fail_epoll_op, &op, &d);
    if (status == FP_OK) {
        env.d = d;
        env.running = true;
        fail_msg("farpoold started although epoll_ctl(ADD) fails: it cannot watch its listener");
    }
    if (status != FP_ERR_IO)
        fail_msg("farpoold's start failed with %s, expected it to exit (I/O error)",
                 fp_status_string(status));
}

/* The most a TCP socket's send buffer grows to by itself: net.ipv4.tcp_wmem's maximum. */
static uint64_t tcp_wmem_max(void)
{
    unsigned long long wmin = 0, wdef = 0, wmax = 0;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "re");
    int n;

    if (f == NULL)
        fail_msg("cannot open /proc/sys/net/ipv4/tcp_wmem: %s", strerror(errno));
    n = fscanf(f, "%llu %llu %llu", &wmin, &wdef, &wmax);
    fclose(f);
    if (n != 3)
        fail_msg("cannot parse /proc/sys/net/ipv4/tcp_wmem");
    return wmax;
}

/*
 * A connection whose events cannot change is closed, not left stalled.
 *
 * The replies must certainly not fit in the sockets, so the daemon must ask
 * epoll for EPOLLOUT: the client's receive buffer is fixed and small, the
 * daemon's send buffer grows to tcp_wmem's maximum at most (farpoold sets no
 * SO_SNDBUF), the READs add up to more than both, and the client reads
 * nothing until the daemon has dropped the connection. (Reading meanwhile races the daemon's
 * sendmsg() loop: under TSan each call is slow enough for the client to drain what the previous one
 * sent, the whole reply goes out without EAGAIN, no MOD is ever made and the connection, served,
 * stays open.)
 */
static void test_epoll_mod_fails(void **state)
{
    static const char *const args[] = {"--capacity", "32M", "--slab-size", "16M", NULL};
    static int op = EPOLL_CTL_MOD;
    uint8_t buf[EPOLL_READS_MAX * (FP_PROTO_HDR_SIZE + FP_PROTO_RANGE_SIZE)];
    uint8_t rep[FP_PROTO_ALLOC_REP_SIZE];
    fp_proto_range_t r = {0, 0, EPOLL_READ_LEN};
    uint64_t id, room, deadline, wmax;
    socklen_t optlen = sizeof(int);
    int fd, rcvbuf = EPOLL_RCVBUF, nreads, fds0;
    size_t len = 0;
    fp_proto_hdr_t h;

    (void)state;
    skip_without_seccomp();
    env_start(args, child_fail_epoll_op, &op);
    fd = env_connect();
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &optlen) != 0)
        fail_msg("SO_RCVBUF: %s", strerror(errno));
    raw_hello(fd);
    id = env.next_id++;
    fp_test_attack_send_frame(fd, FP_OP_SLAB_ALLOC, id, NULL, 0);
    h = fp_test_attack_expect_reply(fd, FP_OP_SLAB_ALLOC, id, FP_OK, rep, sizeof(rep));
    if (h.length != sizeof(rep))
        fail_msg("SLAB_ALLOC reply of %u bytes", h.length);
    r.slab = fp_proto_get_u64(rep);

    /* Enough READs that their replies exceed what both sockets can hold. */
    wmax = tcp_wmem_max();
    room = wmax + (uint64_t)rcvbuf;
    nreads = (int)(room / EPOLL_READ_LEN) + 1;
    if (nreads > EPOLL_READS_MAX)
        fail_msg("net.ipv4.tcp_wmem lets a send buffer grow to %llu bytes: %d READs of %u bytes "
                 "would fit, and farpoold stops reading after %d; the test cannot make it wait "
                 "for EPOLLOUT",
                 (unsigned long long)wmax, nreads - 1, EPOLL_READ_LEN, EPOLL_READS_MAX);
    for (int i = 0; i < nreads; i++) {
        id = env.next_id++;
        fp_test_attack_encode_request(buf + len, FP_OP_READ, id, FP_PROTO_RANGE_SIZE);
        len += FP_PROTO_HDR_SIZE;
        len += fp_proto_ranges_encode(FP_OP_READ, &r, 1, buf + len);
    }
    fds0 = proc_fds(env.d.pid, NULL);
    fp_test_attack_send(fd, buf, len);

    /* Dropped by the daemon: one descriptor fewer, seen without reading. */
    deadline = fp_test_attack_now_ms() + EPOLL_CLOSE_MS;
    while (proc_fds(env.d.pid, NULL) >= fds0) {
        if (fp_test_attack_now_ms() >= deadline)
            fail_msg("epoll_ctl(MOD) failed and the connection stalled: farpoold still holds it "
                     "%d ms after %d READs of %u bytes (more than the %llu bytes the sockets "
                     "can hold)%s",
                     EPOLL_CLOSE_MS, nreads, EPOLL_READ_LEN, (unsigned long long)room,
                     fp_test_daemon_log_contains(&env.d, "epoll_ctl")
                         ? "; it said that epoll_ctl failed"
                         : "");
        fp_test_attack_sleep_ms(10);
    }
    if (!fp_test_daemon_log_wait(&env.d, "epoll_ctl", FP_TEST_ATTACK_LOG_WAIT_MS))
        fail_msg("farpoold closed the connection without saying that epoll_ctl failed");
    /* The client gets what had been sent, then the end of the connection. */
    if (!fp_test_wait_closed(fd, EPOLL_CLOSE_MS))
        fail_msg("farpoold dropped the connection, but its client did not see it end within %d ms",
                 EPOLL_CLOSE_MS);
    env_close(fd);
    new_client_served();
}

/* A connection that cannot be unwatched is still closed, said, and its descriptor reused. */
static void test_epoll_del_fails(void **state)
{
    static const char *const args[] = {"--capacity", "8M", "--slab-size", "1M", NULL};
    static int op = EPOLL_CTL_DEL;
    int fd;

    (void)state;
    skip_without_seccomp();
    env_start(args, child_fail_epoll_op, &op);
    fd = env_connect();
    raw_hello(fd);
    env_close(fd);
    if (!fp_test_daemon_log_wait(&env.d, "epoll_ctl", FP_TEST_ATTACK_LOG_WAIT_MS))
        fail_msg("epoll_ctl(DEL) failed and farpoold did not say so");
    /* The descriptor number comes back for the next clients. */
    new_client_served();
    new_client_served();
}

#define LIMITS_TEST(f) cmocka_unit_test_setup_teardown(f, fp_test_attack_watchdog_arm, env_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        LIMITS_TEST(test_fd_exhaustion),   LIMITS_TEST(test_tiny_replies_bounded),
        LIMITS_TEST(test_epoll_add_fails), LIMITS_TEST(test_epoll_mod_fails),
        LIMITS_TEST(test_epoll_del_fails),
    };

    fp_test_attack_watchdog_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
