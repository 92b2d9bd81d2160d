/* SPDX-License-Identifier: MIT */
/*
 * Starting, watching and stopping a real farpoold for integration tests, and
 * raw sockets to it; see daemon.h.
 *
 * DESIGN
 * Every child is entered in a small locked registry (pid and directory) the
 * moment it is forked. An atexit handler, installed once and active only in the
 * process that registered (a test that forks a helper process must not have
 * that helper's exit kill the daemons), SIGKILLs and reaps whatever is still
 * registered and removes the directories. Between fork and exec the child
 * calls only async-signal-safe functions: the test program may have threads.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/parse.h"

#ifndef FP_TEST_FARPOOLD
#error "FP_TEST_FARPOOLD (the path of the farpoold binary) must be defined by the build"
#endif

#define MAX_CHILDREN     64
#define POLL_INTERVAL_MS 10
#define FAIL_LOG_LINES   40

typedef struct child {
    pid_t pid; /* -1 once reaped */
    char dir[FP_TEST_PATH_MAX];
} child_t;

/* Test support code, not the library: process-wide state is fine here. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static child_t children[MAX_CHILDREN];     /* registry_lock; unused slots have dir[0] == 0 */
static char scratch_dir[FP_TEST_PATH_MAX]; /* registry_lock */
static pid_t owner_pid;                    /* set once, by install_cleanup() */
static pthread_once_t cleanup_once = PTHREAD_ONCE_INIT;

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static bool keep_dirs(void)
{
    const char *keep = getenv("FP_TEST_KEEP");

    return keep != NULL && keep[0] != '\0' && strcmp(keep, "0") != 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        fprintf(stderr, "fp_test: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

/* rm -rf @dir, or say where it is kept. */
static void remove_tree(const char *dir)
{
    if (dir[0] == '\0')
        return;
    if (keep_dirs()) {
        fprintf(stderr, "fp_test: keeping %s (FP_TEST_KEEP)\n", dir);
        return;
    }
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int exit_code_of(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return -1;
}

static void cleanup_at_exit(void)
{
    if (getpid() != owner_pid)
        return;
    pthread_mutex_lock(&registry_lock);
    for (int i = 0; i < MAX_CHILDREN; i++) {
        child_t *c = &children[i];

        if (c->pid > 0) {
            fprintf(stderr, "fp_test: killing farpoold %d, left running by the test\n",
                    (int)c->pid);
            kill(c->pid, SIGKILL);
            while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
                ;
            c->pid = -1;
        }
        remove_tree(c->dir);
        c->dir[0] = '\0';
    }
    remove_tree(scratch_dir);
    scratch_dir[0] = '\0';
    pthread_mutex_unlock(&registry_lock);
}

static void install_cleanup(void)
{
    owner_pid = getpid();
    if (atexit(cleanup_at_exit) != 0)
        fprintf(stderr, "fp_test: atexit failed; daemons may outlive a failed test\n");
}

static void registry_add(pid_t pid, const char *dir)
{
    pthread_once(&cleanup_once, install_cleanup);
    pthread_mutex_lock(&registry_lock);
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i].dir[0] == '\0') {
            children[i].pid = pid;
            snprintf(children[i].dir, sizeof(children[i].dir), "%s", dir);
            pthread_mutex_unlock(&registry_lock);
            return;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    fprintf(stderr, "fp_test: more than %d daemons; %d is not cleaned up at exit\n", MAX_CHILDREN,
            (int)pid);
}

/* Record that the child of @dir has been reaped, or (@forget) drop its entry. */
static void registry_update(const char *dir, bool forget)
{
    pthread_mutex_lock(&registry_lock);
    for (int i = 0; i < MAX_CHILDREN; i++) {
        if (children[i].dir[0] != '\0' && strcmp(children[i].dir, dir) == 0) {
            children[i].pid = -1;
            if (forget)
                children[i].dir[0] = '\0';
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

static fp_status_t make_tmpdir(const char *what, char *dir_p)
{
    const char *base = getenv("TMPDIR");
    char dir[FP_TEST_PATH_MAX];
    int n;

    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    n = snprintf(dir, sizeof(dir), "%s/farpool-%s-XXXXXX", base, what);
    if (n < 0 || (size_t)n >= sizeof(dir) - 32) {
        fprintf(stderr, "fp_test: TMPDIR path too long: %s\n", base);
        return FP_ERR_IO;
    }
    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "fp_test: mkdtemp %s: %s\n", dir, strerror(errno));
        return FP_ERR_IO;
    }
    memcpy(dir_p, dir, strlen(dir) + 1);
    return FP_OK;
}

const char *fp_test_scratch_dir(void)
{
    const char *dir = NULL;

    pthread_once(&cleanup_once, install_cleanup);
    pthread_mutex_lock(&registry_lock);
    if (scratch_dir[0] != '\0' || make_tmpdir("scratch", scratch_dir) == FP_OK)
        dir = scratch_dir;
    pthread_mutex_unlock(&registry_lock);
    return dir;
}

static void child_write(const char *text)
{
    ssize_t n = write(STDERR_FILENO, text, strlen(text));

    (void)n;
}

/* In the forked child: only async-signal-safe calls from here to exec. */
static void child_exec(char *const argv[], const char *log_path, pid_t parent,
                       fp_test_daemon_child_func_t setup, void *setup_arg)
{
    static const int reset_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGQUIT};
    struct sigaction sa;
    sigset_t none;
    int log_fd, null_fd;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(126);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (size_t i = 0; i < sizeof(reset_signals) / sizeof(reset_signals[0]); i++)
        sigaction(reset_signals[i], &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (log_fd < 0 || null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 ||
        dup2(log_fd, STDOUT_FILENO) < 0 || dup2(log_fd, STDERR_FILENO) < 0)
        _exit(126);
    if (close_range(3, ~0u, 0) != 0) {
        for (int fd = 3; fd < 4096; fd++)
            close(fd);
    }
    if (setup != NULL)
        setup(setup_arg);
    execv(argv[0], argv);
    child_write("fp_test: cannot exec ");
    child_write(argv[0]);
    child_write("\n");
    _exit(127);
}

static void log_dump_tail(const char *log_path, size_t max_lines)
{
    char *line = NULL;
    size_t cap = 0, total = 0, skip = 0;
    FILE *f;

    f = fopen(log_path, "re");
    if (f == NULL) {
        fprintf(stderr, "fp_test: no daemon log at %s\n", log_path);
        return;
    }
    while (getline(&line, &cap, f) >= 0)
        total++;
    if (max_lines != 0 && total > max_lines)
        skip = total - max_lines;
    fprintf(stderr, "fp_test: ---- %s (%zu lines%s) ----\n", log_path, total,
            skip != 0 ? ", the last shown" : "");
    rewind(f);
    for (size_t i = 0; getline(&line, &cap, f) >= 0; i++) {
        if (i >= skip)
            fprintf(stderr, "farpoold| %s%s", line, strchr(line, '\n') != NULL ? "" : "\n");
    }
    fprintf(stderr, "fp_test: ---- end of log ----\n");
    free(line);
    fclose(f);
}

void fp_test_daemon_log_dump(const fp_test_daemon_t *d)
{
    log_dump_tail(d->log_path, 0);
}

/* Wait up to @timeout_ms for @pid to exit; its exit code, or -2 if it still runs. */
static int wait_exit(pid_t pid, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    int wstatus;
    pid_t r;

    for (;;) {
        r = waitpid(pid, &wstatus, timeout_ms < 0 ? 0 : WNOHANG);
        if (r == pid)
            return exit_code_of(wstatus);
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "fp_test: waitpid %d: %s\n", (int)pid, strerror(errno));
            return -1;
        }
        if (r == 0 && now_ms() >= deadline)
            return -2;
        if (r == 0)
            sleep_ms(5);
    }
}

/* Read "HOST:PORT\n" from the port file into @addr; false while it is not (all) there. */
static bool read_port_file(const char *path, char *addr, bool *bad_p)
{
    char buf[FP_TEST_ADDR_MAX + 2], host[FP_HOST_MAX];
    char *nl;
    uint16_t port;
    ssize_t n;
    int fd;

    *bad_p = false;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    nl = strchr(buf, '\n');
    if (nl == NULL) {
        /* Not complete yet, unless it is already too long to be an address. */
        *bad_p = (size_t)n >= sizeof(buf) - 1;
        return false;
    }
    *nl = '\0';
    if ((size_t)(nl - buf) >= FP_TEST_ADDR_MAX || fp_addr_split(buf, host, &port) != FP_OK ||
        port == 0) {
        *bad_p = true;
        return false;
    }
    memcpy(addr, buf, (size_t)(nl - buf) + 1);
    return true;
}

static fp_status_t wait_listening(fp_test_daemon_t *d)
{
    uint64_t deadline = now_ms() + FP_TEST_DAEMON_START_MS;
    bool bad;
    int code;

    for (;;) {
        if (read_port_file(d->port_path, d->addr, &bad))
            return FP_OK;
        if (bad) {
            fprintf(stderr, "fp_test: the port file %s does not hold HOST:PORT\n", d->port_path);
            return FP_ERR_PROTOCOL;
        }
        code = wait_exit(d->pid, 0);
        if (code != -2) {
            d->pid = -1;
            d->exit_code = code;
            registry_update(d->dir, false);
            fprintf(stderr, "fp_test: farpoold exited with code %d before listening\n", code);
            return FP_ERR_IO;
        }
        if (now_ms() >= deadline) {
            fprintf(stderr, "fp_test: farpoold wrote no port file within %d ms\n",
                    FP_TEST_DAEMON_START_MS);
            return FP_ERR_TIMED_OUT;
        }
        sleep_ms(POLL_INTERVAL_MS);
    }
}

fp_status_t fp_test_daemon_start(const char *const extra_args[], fp_test_daemon_t *d_p)
{
    return fp_test_daemon_start_setup(extra_args, NULL, NULL, d_p);
}

fp_status_t fp_test_daemon_start_setup(const char *const extra_args[],
                                       fp_test_daemon_child_func_t setup, void *setup_arg,
                                       fp_test_daemon_t *d_p)
{
    static const char *const base_args[] = {"--listen",      "127.0.0.1:0", "--port-file",
                                            NULL /* port */, "--log-level", "info"};
    const size_t nbase = sizeof(base_args) / sizeof(base_args[0]);
    fp_test_daemon_t d;
    size_t nextra = 0, argc = 0;
    char **argv;
    fp_status_t status;
    pid_t parent;

    memset(&d, 0, sizeof(d));
    d.pid = -1;
    d.exit_code = -1;
    while (extra_args != NULL && extra_args[nextra] != NULL)
        nextra++;
    if (access(FP_TEST_FARPOOLD, X_OK) != 0) {
        fprintf(stderr, "fp_test: cannot run %s: %s\n", FP_TEST_FARPOOLD, strerror(errno));
        return FP_ERR_IO;
    }
    status = make_tmpdir("farpoold", d.dir);
    if (status != FP_OK)
        return status;
    /* make_tmpdir() left room for the names. */
    if (snprintf(d.log_path, sizeof(d.log_path), "%s/farpoold.log", d.dir) < 0 ||
        snprintf(d.port_path, sizeof(d.port_path), "%s/port", d.dir) < 0) {
        status = FP_ERR_IO;
        goto err_remove_dir;
    }

    /* Built before fork: the child must not allocate. */
    argv = calloc(1 + nbase + nextra + 1, sizeof(*argv));
    if (argv == NULL) {
        fprintf(stderr, "fp_test: out of memory\n");
        status = FP_ERR_NO_MEMORY;
        goto err_remove_dir;
    }
    argv[argc++] = (char *)FP_TEST_FARPOOLD;
    for (size_t i = 0; i < nbase; i++)
        argv[argc++] = (char *)(base_args[i] != NULL ? base_args[i] : d.port_path);
    for (size_t i = 0; i < nextra; i++)
        argv[argc++] = (char *)extra_args[i];
    argv[argc] = NULL;

    parent = getpid();
    d.pid = fork();
    if (d.pid == 0)
        child_exec(argv, d.log_path, parent, setup, setup_arg);
    free(argv);
    if (d.pid < 0) {
        fprintf(stderr, "fp_test: fork: %s\n", strerror(errno));
        status = FP_ERR_IO;
        goto err_remove_dir;
    }
    registry_add(d.pid, d.dir);

    status = wait_listening(&d);
    if (status != FP_OK)
        goto err_kill;
    *d_p = d;
    return FP_OK;

err_kill:
    if (d.pid > 0) {
        kill(d.pid, SIGKILL);
        wait_exit(d.pid, -1);
    }
    log_dump_tail(d.log_path, 0);
    registry_update(d.dir, true);
err_remove_dir:
    remove_tree(d.dir);
    return status;
}

int fp_test_daemon_stop(fp_test_daemon_t *d)
{
    int code;

    if (d->dir[0] == '\0')
        return -1;
    if (d->pid > 0) {
        kill(d->pid, SIGTERM);
        code = wait_exit(d->pid, FP_TEST_DAEMON_STOP_MS);
        if (code == -2) {
            fprintf(stderr, "fp_test: farpoold %d still runs %d ms after SIGTERM; killing it\n",
                    (int)d->pid, FP_TEST_DAEMON_STOP_MS);
            kill(d->pid, SIGKILL);
            code = wait_exit(d->pid, -1);
        }
        d->exit_code = code;
        d->pid = -1;
    }
    code = d->exit_code;
    if (code != 0 && code != 128 + SIGKILL) {
        fprintf(stderr, "fp_test: farpoold exited with code %d\n", code);
        log_dump_tail(d->log_path, FAIL_LOG_LINES);
    }
    registry_update(d->dir, true);
    remove_tree(d->dir);
    d->dir[0] = '\0';
    return code;
}

void fp_test_daemon_kill(fp_test_daemon_t *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGKILL);
    d->exit_code = wait_exit(d->pid, -1);
    d->pid = -1;
    registry_update(d->dir, false);
}

bool fp_test_daemon_alive(fp_test_daemon_t *d)
{
    int code;

    if (d->pid <= 0)
        return false;
    code = wait_exit(d->pid, 0);
    if (code == -2)
        return true;
    d->exit_code = code;
    d->pid = -1;
    registry_update(d->dir, false);
    return false;
}

/* Lines of the log containing @needle; stops at the first if @first_only. */
static size_t log_scan(const fp_test_daemon_t *d, const char *needle, bool first_only)
{
    char *line = NULL;
    size_t cap = 0, count = 0;
    FILE *f;

    f = fopen(d->log_path, "re");
    if (f == NULL)
        return 0;
    while (getline(&line, &cap, f) >= 0) {
        if (strstr(line, needle) != NULL) {
            count++;
            if (first_only)
                break;
        }
    }
    free(line);
    fclose(f);
    return count;
}

bool fp_test_daemon_log_contains(const fp_test_daemon_t *d, const char *needle)
{
    return log_scan(d, needle, true) != 0;
}

size_t fp_test_daemon_log_count(const fp_test_daemon_t *d, const char *needle)
{
    return log_scan(d, needle, false);
}

bool fp_test_daemon_log_wait(const fp_test_daemon_t *d, const char *needle, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);

    for (;;) {
        if (fp_test_daemon_log_contains(d, needle))
            return true;
        if (now_ms() >= deadline)
            return false;
        sleep_ms(POLL_INTERVAL_MS);
    }
}

int fp_test_connect_raw(const char *addr)
{
    struct timeval tv = {.tv_sec = FP_TEST_SOCKET_TIMEOUT_MS / 1000,
                         .tv_usec = (FP_TEST_SOCKET_TIMEOUT_MS % 1000) * 1000};
    fp_addr_t a;
    int fd, one = 1;

    if (fp_addr_parse(addr, &a) != FP_OK) {
        fprintf(stderr, "fp_test: bad address %s\n", addr);
        return -1;
    }
    fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "fp_test: socket: %s\n", strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        fprintf(stderr, "fp_test: setsockopt: %s\n", strerror(errno));
        goto err_close;
    }
    if (connect(fd, (const struct sockaddr *)&a.ss, a.len) != 0) {
        fprintf(stderr, "fp_test: connect %s: %s\n", addr, strerror(errno));
        goto err_close;
    }
    return fd;

err_close:
    close(fd);
    return -1;
}

int fp_test_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

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

ssize_t fp_test_recv_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, p + got, len - got, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0)
            errno = 0;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

bool fp_test_wait_closed(int fd, int timeout_ms)
{
    uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    char sink[4096];

    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        uint64_t now = now_ms();
        ssize_t n;
        int r;

        if (now >= deadline)
            return false;
        r = poll(&pfd, 1, (int)(deadline - now));
        if (r < 0 && errno != EINTR)
            return false;
        if (r <= 0)
            continue;
        n = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (n == 0)
            return true;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return true; /* reset */
    }
}

fp_status_t fp_test_write_secret(const char *dir, const void *secret, size_t len, char *path_p)
{
    char path[FP_TEST_PATH_MAX];
    const char *p = secret;
    int fd, n;

    if (dir == NULL && (dir = fp_test_scratch_dir()) == NULL)
        return FP_ERR_IO;
    n = snprintf(path, sizeof(path), "%s/secret-XXXXXX", dir);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        fprintf(stderr, "fp_test: directory path too long: %s\n", dir);
        return FP_ERR_IO;
    }
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "fp_test: mkostemp %s: %s\n", path, strerror(errno));
        return FP_ERR_IO;
    }
    if (fchmod(fd, 0600) != 0)
        goto err_unlink;
    while (len > 0) {
        ssize_t w = write(fd, p, len);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            goto err_unlink;
        p += w;
        len -= (size_t)w;
    }
    if (close(fd) != 0) {
        fd = -1;
        goto err_unlink;
    }
    memcpy(path_p, path, strlen(path) + 1);
    return FP_OK;

err_unlink:
    fprintf(stderr, "fp_test: cannot write %s: %s\n", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(path);
    return FP_ERR_IO;
}
