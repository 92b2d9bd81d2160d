/* SPDX-License-Identifier: MIT */
/* bench_pool's processes and files; see pool_sys.h. */
#include "pool_sys.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "common/time.h"

#define MAX_CHILDREN 32
#define TMP_BASE     "bench_pool" /* /tmp/TMP_BASE.PID.XXXXXX */
#define START_MS     15000
#define STOP_MS      5000
#define SENDER_BUF   (8 * MIB)
#define SENDER_IO    MIB

extern char **environ;

/* What must be undone on exit. Read by the signal handler, hence static. */
static struct pool_sys {
    volatile pid_t child[MAX_CHILDREN]; /* 0: free slot */
    char dir[64];                       /* temporary directory; "" if none */
    char secret[96];                    /* the secret file in it; "" if none */
    unsigned next_id;
} sys;

/* ------------------------------------------------------------------------ */
/* Signal-safe helpers                                                      */
/* ------------------------------------------------------------------------ */

static void signals_block(sigset_t *old)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, old);
}

static void signals_restore(const sigset_t *old)
{
    sigprocmask(SIG_SETMASK, old, NULL);
}

/* Run "rm -rf -- @dir" and wait for it. Async-signal-safe. */
static void remove_tree(const char *dir)
{
    char *argv[] = {"rm", "-rf", "--", (char *)dir, NULL};
    pid_t pid = fork();

    if (pid == 0) {
        bench_child_reset_signals();
        execve("/bin/rm", argv, environ);
        execve("/usr/bin/rm", argv, environ);
        _exit(127);
    }
    if (pid > 0)
        (void)bench_wait_bounded(pid, 10000);
}

/* Every child stopped (SIGTERM together, then each reaped), the directory removed. */
static void sys_undo(void)
{
    for (unsigned i = 0; i < MAX_CHILDREN; i++)
        if (sys.child[i] > 0)
            kill(sys.child[i], SIGTERM);
    for (unsigned i = 0; i < MAX_CHILDREN; i++) {
        if (sys.child[i] > 0) {
            (void)bench_wait_bounded(sys.child[i], STOP_MS);
            sys.child[i] = 0;
        }
    }
    if (sys.dir[0] != '\0') {
        remove_tree(sys.dir);
        sys.dir[0] = '\0';
        sys.secret[0] = '\0';
    }
}

static void on_signal(int sig)
{
    sys_undo();
    bench_cleanup();
    _exit(128 + sig);
}

/* ------------------------------------------------------------------------ */
/* Setup and cleanup                                                        */
/* ------------------------------------------------------------------------ */

/* Directories /tmp/TMP_BASE.PID.* of processes that are gone. */
static void stale_tmpdirs(void)
{
    size_t blen = strlen(TMP_BASE);
    DIR *d = opendir("/tmp");
    struct dirent *e;

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char path[320], *end;
        long pid;

        if (strncmp(e->d_name, TMP_BASE ".", blen + 1) != 0)
            continue;
        errno = 0;
        pid = strtol(e->d_name + blen + 1, &end, 10);
        if (errno != 0 || end == e->d_name + blen + 1 || *end != '.' || pid <= 0 ||
            pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(path, sizeof(path), "/tmp/%.250s", e->d_name);
        remove_tree(path);
        fprintf(stderr, "%s: removed %s, left by a run that was killed\n", bench_prog, path);
    }
    closedir(d);
}

void pool_sys_init(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGHUP);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    stale_tmpdirs();
}

void pool_sys_cleanup(void)
{
    signals_block(NULL);
    sys_undo();
    bench_cleanup();
}

/* The temporary directory, made at the first call. */
static fp_status_t tmpdir_get(void)
{
    sigset_t old;
    fp_status_t status = FP_OK;

    if (sys.dir[0] != '\0')
        return FP_OK;
    signals_block(&old);
    snprintf(sys.dir, sizeof(sys.dir), "/tmp/" TMP_BASE ".%d.XXXXXX", (int)getpid());
    if (mkdtemp(sys.dir) == NULL) {
        fprintf(stderr, "%s: mkdtemp: %s\n", bench_prog, strerror(errno));
        sys.dir[0] = '\0';
        status = FP_ERR_IO;
    }
    signals_restore(&old);
    return status;
}

const char *pool_sys_secret_file(void)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[32];
    char text[2 * sizeof(raw) + 1], path[sizeof(sys.secret)];
    int fd;

    if (sys.secret[0] != '\0')
        return sys.secret;
    if (tmpdir_get() != FP_OK)
        return NULL;
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        fprintf(stderr, "%s: getrandom: %s\n", bench_prog, strerror(errno));
        return NULL;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        text[2 * i] = hex[raw[i] >> 4];
        text[2 * i + 1] = hex[raw[i] & 15];
    }
    text[2 * sizeof(raw)] = '\n';
    snprintf(path, sizeof(path), "%s/secret", sys.dir);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, text, sizeof(text)) != (ssize_t)sizeof(text)) {
        fprintf(stderr, "%s: cannot write %s: %s\n", bench_prog, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    close(fd);
    memcpy(sys.secret, path, sizeof(path));
    return sys.secret;
}

/* ------------------------------------------------------------------------ */
/* Children                                                                 */
/* ------------------------------------------------------------------------ */

static int slot_take(void)
{
    for (int i = 0; i < MAX_CHILDREN; i++)
        if (sys.child[i] == 0)
            return i;
    fprintf(stderr, "%s: over %d children\n", bench_prog, MAX_CHILDREN);
    return -1;
}

static void close_inherited_fds(int keep)
{
    long max = sysconf(_SC_OPEN_MAX);

    if (max < 0 || max > 65536)
        max = 65536;
    for (int fd = 3; fd < max; fd++)
        if (fd != keep)
            close(fd);
}

/* In a fresh child: die with @parent, enter namespace @ns (if any). False on failure. */
static bool child_enter(pid_t parent, const char *ns)
{
    char path[96];
    int fd;

    bench_child_reset_signals();
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* kept across exec */
    if (getppid() != parent)
        return false;
    if (ns[0] == '\0')
        return true;
    snprintf(path, sizeof(path), "/run/netns/%s", ns);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
        fprintf(stderr, "%s: cannot enter network namespace %s: %s\n", bench_prog, ns,
                strerror(errno));
        return false;
    }
    close(fd);
    return true;
}

/*
 * Fork, with signals blocked until the child is recorded in @slot, so that a
 * signal at any point stops it. Returns the child's pid in the parent, 0 in
 * the child, -1 on failure.
 */
static pid_t child_fork(int slot)
{
    sigset_t old;
    pid_t pid;

    fflush(NULL);
    signals_block(&old);
    pid = fork();
    if (pid < 0) {
        signals_restore(&old);
        fprintf(stderr, "%s: fork: %s\n", bench_prog, strerror(errno));
        return -1;
    }
    if (pid == 0)
        return 0; /* child_enter() resets the mask */
    sys.child[slot] = pid;
    signals_restore(&old);
    return pid;
}

void pool_node_init(pool_node_t *n)
{
    n->slot = -1;
    n->id = sys.next_id++;
    n->addr[0] = '\0';
    n->meta_dir[0] = '\0';
}

pid_t pool_node_pid(const pool_node_t *n)
{
    return n->slot >= 0 ? sys.child[n->slot] : -1;
}

fp_status_t pool_node_start(pool_node_t *n)
{
    char port_file[160], listen_addr[64];
    const char *secret = NULL;
    uint64_t deadline;
    pid_t parent = getpid(), pid;
    int slot;

    if (n->slot >= 0) {
        fprintf(stderr, "%s: member %s is running already\n", bench_prog, n->addr);
        return FP_ERR_INVALID_PARAM;
    }
    if (access(n->opts.farpoold, X_OK) != 0) {
        fprintf(stderr, "%s: cannot run farpoold at %s: %s (use --farpoold PATH)\n", bench_prog,
                n->opts.farpoold, strerror(errno));
        return FP_ERR_INVALID_PARAM;
    }
    if (tmpdir_get() != FP_OK)
        return FP_ERR_IO;
    if (n->opts.secret && (secret = pool_sys_secret_file()) == NULL)
        return FP_ERR_IO;
    if (n->meta_url[0] == '\0' && n->meta_dir[0] == '\0') {
        snprintf(n->meta_dir, sizeof(n->meta_dir), "%s/meta%u", sys.dir, n->id);
        if (mkdir(n->meta_dir, 0700) != 0) {
            fprintf(stderr, "%s: mkdir %s: %s\n", bench_prog, n->meta_dir, strerror(errno));
            n->meta_dir[0] = '\0';
            return FP_ERR_IO;
        }
    }
    snprintf(port_file, sizeof(port_file), "%s/port%u", sys.dir, n->id);
    unlink(port_file);
    /* The first start picks a port; a restart takes the same one again. */
    if (n->addr[0] == '\0')
        snprintf(listen_addr, sizeof(listen_addr), "%s:0", n->ip);
    else
        snprintf(listen_addr, sizeof(listen_addr), "%s", n->addr);
    slot = slot_take();
    if (slot < 0)
        return FP_ERR_NO_SPACE;

    pid = child_fork(slot);
    if (pid < 0)
        return FP_ERR_IO;
    if (pid == 0) {
        char *argv[32];
        unsigned k = 0;

        if (!child_enter(parent, n->ns))
            _exit(126);
        close_inherited_fds(-1);
        argv[k++] = (char *)n->opts.farpoold;
        argv[k++] = "--listen";
        argv[k++] = listen_addr;
        argv[k++] = "--port-file";
        argv[k++] = port_file;
        argv[k++] = "--capacity";
        argv[k++] = (char *)n->opts.capacity;
        argv[k++] = "--log-level";
        argv[k++] = "warn";
        if (n->opts.slab_size != NULL) {
            argv[k++] = "--slab-size";
            argv[k++] = (char *)n->opts.slab_size;
        }
        if (secret != NULL) {
            argv[k++] = "--secret-file";
            argv[k++] = (char *)secret;
        }
        if (n->meta_url[0] != '\0') {
            argv[k++] = "--pool";
            argv[k++] = n->meta_url;
        } else {
            argv[k++] = "--meta-dir";
            argv[k++] = n->meta_dir;
            if (n->opts.dead_after != NULL) {
                argv[k++] = "--dead-after";
                argv[k++] = (char *)n->opts.dead_after;
            }
            if (n->opts.repair_rate != NULL) {
                argv[k++] = "--repair-rate";
                argv[k++] = (char *)n->opts.repair_rate;
            }
        }
        argv[k] = NULL;
        execve(n->opts.farpoold, argv, environ);
        fprintf(stderr, "%s: exec %s: %s\n", bench_prog, n->opts.farpoold, strerror(errno));
        _exit(127);
    }
    n->slot = slot;

    deadline = fp_time_ns() + START_MS * FP_NS_PER_MS;
    for (;;) {
        FILE *f = fopen(port_file, "r");
        int st;

        if (f != NULL) {
            char line[64];
            bool ok = fgets(line, sizeof(line), f) != NULL && strchr(line, '\n') != NULL;

            fclose(f);
            if (ok) {
                line[strcspn(line, "\r\n")] = '\0';
                snprintf(n->addr, sizeof(n->addr), "%s", line);
                return FP_OK;
            }
        }
        if (waitpid(pid, &st, WNOHANG) == pid) {
            sys.child[slot] = 0;
            n->slot = -1;
            fprintf(stderr, "%s: farpoold (%s%s%s) exited before listening (status %#x)\n",
                    bench_prog, listen_addr, n->ns[0] ? " in " : "", n->ns, (unsigned)st);
            return FP_ERR_IO;
        }
        if (fp_time_ns() > deadline) {
            fprintf(stderr, "%s: farpoold (%s) wrote no port file within %d ms\n", bench_prog,
                    listen_addr, START_MS);
            pool_node_stop(n);
            return FP_ERR_TIMED_OUT;
        }
        bench_sleep_ms(5);
    }
}

/* Send @sig, reap within @ms (SIGKILL after), free the slot. */
static void node_end(pool_node_t *n, int sig, unsigned ms)
{
    sigset_t old;
    pid_t pid = pool_node_pid(n);

    if (pid <= 0)
        return;
    kill(pid, sig);
    (void)bench_wait_bounded(pid, ms);
    signals_block(&old);
    sys.child[n->slot] = 0;
    n->slot = -1;
    signals_restore(&old);
}

void pool_node_kill(pool_node_t *n)
{
    node_end(n, SIGKILL, STOP_MS);
}

void pool_node_stop(pool_node_t *n)
{
    node_end(n, SIGTERM, STOP_MS);
}

void pool_sys_pin_children(int cpu)
{
    cpu_set_t set;

    if (cpu < 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    for (unsigned i = 0; i < MAX_CHILDREN; i++) {
        /* A child's later threads inherit the main thread's mask; farpoold's
         * threads already started keep theirs, so pin them all. */
        char path[64];
        DIR *d;
        struct dirent *e;

        if (sys.child[i] <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/task", (int)sys.child[i]);
        d = opendir(path);
        if (d == NULL)
            continue;
        while ((e = readdir(d)) != NULL) {
            long tid = strtol(e->d_name, NULL, 10);

            if (tid > 0 && sched_setaffinity((pid_t)tid, sizeof(set), &set) != 0 && errno != ESRCH)
                fprintf(stderr, "%s: cannot pin %ld to CPU %d: %s\n", bench_prog, tid, cpu,
                        strerror(errno));
        }
        closedir(d);
    }
}

uint64_t pool_sys_proc_ticks(pid_t pid)
{
    char path[64], line[1024], *p;
    unsigned long long utime, stime;
    FILE *f;
    bool ok;

    if (pid == 0)
        snprintf(path, sizeof(path), "/proc/self/stat");
    else
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    /* "PID (COMM) S PPID ...": fields 14 and 15, utime and stime, after the last ')'. */
    p = ok ? strrchr(line, ')') : NULL;
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                            &stime) != 2)
        return 0;
    return utime + stime;
}

uint64_t pool_sys_children_ticks(void)
{
    uint64_t sum = 0;

    for (unsigned i = 0; i < MAX_CHILDREN; i++)
        if (sys.child[i] > 0)
            sum += pool_sys_proc_ticks(sys.child[i]);
    return sum;
}

/* ------------------------------------------------------------------------ */
/* The raw stream sender                                                    */
/* ------------------------------------------------------------------------ */

/* The buffer every connection sends from; written once before any thread. */
static uint8_t *sender_buf;

static void *sender_conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;

    for (size_t off = 0;;) {
        ssize_t n = send(fd, sender_buf + off, SENDER_IO, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off = (off + (size_t)n) % (SENDER_BUF - SENDER_IO);
    }
    close(fd);
    return NULL;
}

static _Noreturn void sender_main(int lfd)
{
    pthread_attr_t attr;
    int one = 1;

    signal(SIGPIPE, SIG_IGN);
    sender_buf = mmap(NULL, SENDER_BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (sender_buf == MAP_FAILED)
        _exit(1);
    madvise(sender_buf, SENDER_BUF, MADV_HUGEPAGE);
    for (size_t i = 0; i < SENDER_BUF; i++)
        sender_buf[i] = (uint8_t)(i * 131);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        pthread_t tid;
        int fd = accept(lfd, NULL, NULL);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            _exit(1);
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (pthread_create(&tid, &attr, sender_conn_main, (void *)(intptr_t)fd) != 0)
            close(fd);
    }
}

fp_status_t pool_sender_start(const char *ns, const char *ip, char *addr, size_t addr_len)
{
    pid_t parent = getpid(), pid;
    uint16_t port = 0;
    int pfd[2], slot;
    ssize_t got;

    slot = slot_take();
    if (slot < 0)
        return FP_ERR_NO_SPACE;
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        fprintf(stderr, "%s: pipe: %s\n", bench_prog, strerror(errno));
        return FP_ERR_IO;
    }
    pid = child_fork(slot);
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return FP_ERR_IO;
    }
    if (pid == 0) {
        struct sockaddr_in sin;
        socklen_t len = sizeof(sin);
        int lfd;

        close(pfd[0]);
        if (!child_enter(parent, ns))
            _exit(126);
        close_inherited_fds(pfd[1]);
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (lfd < 0 || inet_pton(AF_INET, ip, &sin.sin_addr) != 1 ||
            bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(lfd, 16) != 0 ||
            getsockname(lfd, (struct sockaddr *)&sin, &len) != 0) {
            fprintf(stderr, "%s: raw sender on %s: %s\n", bench_prog, ip, strerror(errno));
            _exit(1);
        }
        port = ntohs(sin.sin_port);
        if (write(pfd[1], &port, sizeof(port)) != (ssize_t)sizeof(port))
            _exit(1);
        close(pfd[1]);
        sender_main(lfd);
    }
    close(pfd[1]);
    do
        got = read(pfd[0], &port, sizeof(port));
    while (got < 0 && errno == EINTR);
    close(pfd[0]);
    if (got != (ssize_t)sizeof(port)) {
        fprintf(stderr, "%s: the raw sender%s%s did not start\n", bench_prog, ns[0] ? " in " : "",
                ns);
        kill(pid, SIGKILL);
        (void)bench_wait_bounded(pid, STOP_MS);
        sys.child[slot] = 0;
        return FP_ERR_IO;
    }
    snprintf(addr, addr_len, "%s:%u", ip, (unsigned)port);
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* FARPOOL_NETNS                                                            */
/* ------------------------------------------------------------------------ */

fp_status_t pool_netns_parse(const char *text, pool_netns_set_t *set_p)
{
    pool_netns_set_t s;
    char buf[2048], *save = NULL, *tok;
    unsigned field = 0;

    memset(&s, 0, sizeof(s));
    if (text == NULL || strlen(text) >= sizeof(buf))
        return FP_ERR_INVALID_PARAM;
    snprintf(buf, sizeof(buf), "%s", text);
    for (tok = strtok_r(buf, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save), field++) {
        if (field == 0)
            continue; /* the tag */
        if (field == 1) {
            snprintf(s.host_ip, sizeof(s.host_ip), "%s", tok);
        } else if (field == 2) {
            char *end;

            s.rate_bits = strtoull(tok, &end, 10);
            if (*end != '\0' || s.rate_bits == 0)
                return FP_ERR_INVALID_PARAM;
        } else {
            char *colon = strchr(tok, ':');

            if (colon == NULL || s.n >= POOL_SYS_MAX_NETNS ||
                (size_t)(colon - tok) >= sizeof(s.ns[0].name) ||
                strlen(colon + 1) >= sizeof(s.ns[0].ip))
                return FP_ERR_INVALID_PARAM;
            snprintf(s.ns[s.n].name, sizeof(s.ns[s.n].name), "%.*s", (int)(colon - tok), tok);
            snprintf(s.ns[s.n].ip, sizeof(s.ns[s.n].ip), "%s", colon + 1);
            s.n++;
        }
    }
    if (s.n == 0 || s.host_ip[0] == '\0')
        return FP_ERR_INVALID_PARAM;
    *set_p = s;
    return FP_OK;
}
