/* SPDX-License-Identifier: MIT */
/* `farpool-bench moe`, children, files and system queries; see moe_proc.h. */
#include "moe_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"

#define CHILDREN_MAX    4
#define PATHS_MAX       16
#define DIRS_MAX        4
#define STOP_TIMEOUT_MS 5000
#define NODE_START_MS   10000

/* What the cleanup undoes. Read by the signal handlers, hence static. */
static struct {
    pid_t child[CHILDREN_MAX]; /* 0: free slot */
    char path[PATHS_MAX][PATH_MAX];
    char dir[DIRS_MAX][PATH_MAX];
} reg;

void moe_err(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fprintf(stderr, "%s: ", MOE_PROG);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

double moe_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------------ */
/* Cleanup                                                                  */
/* ------------------------------------------------------------------------ */

/* SIGTERM, wait, SIGKILL; always reaps. Async-signal-safe. */
static void child_stop_raw(pid_t pid)
{
    int st;

    kill(pid, SIGTERM);
    for (unsigned waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &st, WNOHANG);

        if (r == pid || (r < 0 && errno != EINTR))
            return;
        if (waited >= STOP_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            return;
        }
        bench_sleep_ms(10);
    }
}

/* Async-signal-safe. */
static void cleanup_all(void)
{
    for (unsigned i = 0; i < CHILDREN_MAX; i++) {
        if (reg.child[i] > 0)
            child_stop_raw(reg.child[i]);
        reg.child[i] = 0;
    }
    for (unsigned i = 0; i < PATHS_MAX; i++) {
        if (reg.path[i][0] != '\0')
            unlink(reg.path[i]);
        reg.path[i][0] = '\0';
    }
    for (unsigned i = 0; i < DIRS_MAX; i++) {
        if (reg.dir[i][0] != '\0')
            rmdir(reg.dir[i]);
        reg.dir[i][0] = '\0';
    }
}

static void on_signal(int sig)
{
    cleanup_all();
    _exit(128 + sig);
}

static void on_sigbus(int sig)
{
    static const char msg[] =
        MOE_PROG ": SIGBUS: an expert's bytes could not be had (a farpool fetch failed, "
                 "or a disk file shrank); cleaning up\n";
    ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);

    (void)n;
    cleanup_all();
    signal(sig, SIG_DFL);
    raise(sig);
}

void moe_proc_init(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sa.sa_handler = on_sigbus;
    sigaction(SIGBUS, &sa, NULL);
}

void moe_proc_cleanup(void)
{
    sigset_t block, old;

    /* No signal handler may run the cleanup concurrently with this one. */
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &old);
    cleanup_all();
    sigprocmask(SIG_SETMASK, &old, NULL);
}

/* Copy @path into a free slot of @table (@n rows); false if full. */
static bool table_add(char (*table)[PATH_MAX], unsigned n, const char *path)
{
    for (unsigned i = 0; i < n; i++) {
        if (table[i][0] == '\0') {
            snprintf(table[i], PATH_MAX, "%s", path);
            return true;
        }
    }
    return false;
}

void moe_path_register(const char *path)
{
    if (!table_add(reg.path, PATHS_MAX, path))
        moe_err("internal: too many temporary files; %s will not be removed on exit", path);
}

void moe_path_forget(const char *path)
{
    for (unsigned i = 0; i < PATHS_MAX; i++)
        if (strcmp(reg.path[i], path) == 0)
            reg.path[i][0] = '\0';
}

void moe_dir_register(const char *path)
{
    if (!table_add(reg.dir, DIRS_MAX, path))
        moe_err("internal: too many temporary directories; %s will not be removed", path);
}

/* ------------------------------------------------------------------------ */
/* Children                                                                 */
/* ------------------------------------------------------------------------ */

static void child_forget(pid_t pid)
{
    for (unsigned i = 0; i < CHILDREN_MAX; i++)
        if (reg.child[i] == pid)
            reg.child[i] = 0;
}

fp_status_t moe_child_spawn(char *const argv[], pid_t *pid_p)
{
    pid_t parent = getpid(), pid;
    unsigned slot = CHILDREN_MAX;

    for (unsigned i = 0; i < CHILDREN_MAX && slot == CHILDREN_MAX; i++)
        if (reg.child[i] == 0)
            slot = i;
    if (slot == CHILDREN_MAX) {
        moe_err("internal: too many children to start %s", argv[0]);
        return FP_ERR_NO_SPACE;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        moe_err("fork for %s: %s", argv[0], strerror(errno));
        return FP_ERR_IO;
    }
    if (pid == 0) {
        struct sigaction sa;
        int null = open("/dev/null", O_WRONLY);

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = SIG_DFL;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        signal(SIGPIPE, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        if (null >= 0) {
            dup2(null, STDOUT_FILENO);
            dup2(null, STDIN_FILENO);
        }
        if (close_range(3, ~0u, 0) != 0) {
            for (int fd = 3; fd < 65536; fd++)
                close(fd);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "%s: cannot run %s: %s\n", MOE_PROG, argv[0], strerror(errno));
        _exit(127);
    }
    reg.child[slot] = pid;
    *pid_p = pid;
    return FP_OK;
}

bool moe_child_exited(pid_t pid, int *status_p)
{
    int st;

    if (waitpid(pid, &st, WNOHANG) != pid)
        return false;
    child_forget(pid);
    *status_p = st;
    return true;
}

void moe_child_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    child_stop_raw(pid);
    child_forget(pid);
}

double moe_child_cpu_s(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long utime = 0, stime = 0;
    const char *p;
    FILE *f;
    size_t n;

    if (pid <= 0)
        return 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name, which may hold spaces: state is field 3. */
    p = strrchr(buf, ')');
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return 0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

fp_status_t moe_node_start(const char *path, uint64_t capacity, const char *dir, char *addr,
                           size_t addr_len, pid_t *pid_p)
{
    char port_file[PATH_MAX], cap[32];
    char *argv[] = {(char *)path, "--listen", "127.0.0.1:0", "--port-file", port_file,
                    "--capacity", cap,        "--log-level", "warn",        NULL};
    double deadline;
    fp_status_t status;
    pid_t pid;

    if (access(path, X_OK) != 0) {
        moe_err("cannot run farpoold at %s: %s (use --farpoold PATH)", path, strerror(errno));
        return FP_ERR_INVALID_PARAM;
    }
    snprintf(port_file, sizeof(port_file), "%s/farpoold.port", dir);
    snprintf(cap, sizeof(cap), "%" PRIu64, capacity);
    unlink(port_file);
    moe_path_register(port_file);
    status = moe_child_spawn(argv, &pid);
    if (status != FP_OK)
        return status;
    deadline = moe_now() + NODE_START_MS / 1e3;
    for (;;) {
        FILE *f = fopen(port_file, "r");
        int st;

        if (f != NULL) {
            bool ok = fgets(addr, (int)addr_len, f) != NULL;

            fclose(f);
            if (ok && strchr(addr, '\n') != NULL) {
                addr[strcspn(addr, "\r\n")] = '\0';
                *pid_p = pid;
                return FP_OK;
            }
        }
        if (moe_child_exited(pid, &st)) {
            moe_err("farpoold (%s --capacity %s) exited before listening (status %d)", path, cap,
                    st);
            return FP_ERR_IO;
        }
        if (moe_now() > deadline) {
            moe_err("farpoold wrote no port file within %d ms", NODE_START_MS);
            moe_child_stop(pid);
            return FP_ERR_TIMED_OUT;
        }
        bench_sleep_ms(5);
    }
}

fp_status_t moe_free_port(uint16_t *port_p)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        moe_err("socket: %s", strerror(errno));
        return FP_ERR_IO;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) != 0) {
        moe_err("cannot find a free port on 127.0.0.1: %s", strerror(errno));
        close(fd);
        return FP_ERR_IO;
    }
    close(fd);
    *port_p = ntohs(sin.sin_port);
    return FP_OK;
}

fp_status_t moe_wait_listening(uint16_t port, pid_t pid, unsigned timeout_ms)
{
    double deadline = moe_now() + timeout_ms / 1e3;

    for (;;) {
        struct sockaddr_in sin;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), st, rc;

        if (fd < 0) {
            moe_err("socket: %s", strerror(errno));
            return FP_ERR_IO;
        }
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sin.sin_port = htons(port);
        rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
        close(fd);
        if (rc == 0)
            return FP_OK;
        if (moe_child_exited(pid, &st))
            return FP_ERR_NOT_CONNECTED; /* the caller says so and may retry */
        if (moe_now() > deadline)
            return FP_ERR_TIMED_OUT;
        bench_sleep_ms(10);
    }
}

int moe_run_program(char *const argv[], unsigned timeout_ms)
{
    double deadline = moe_now() + timeout_ms / 1e3;
    pid_t pid;
    int st;

    if (moe_child_spawn(argv, &pid) != FP_OK)
        return -1;
    while (!moe_child_exited(pid, &st)) {
        if (moe_now() > deadline) {
            moe_err("%s did not finish within %u s; stopped", argv[0], timeout_ms / 1000);
            moe_child_stop(pid);
            return -1;
        }
        bench_sleep_ms(10);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ------------------------------------------------------------------------ */
/* System queries                                                           */
/* ------------------------------------------------------------------------ */

uint64_t moe_mem_available(void)
{
    char line[256];
    unsigned long long kib = 0;
    FILE *f = fopen("/proc/meminfo", "r");

    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
            break;
    fclose(f);
    return (uint64_t)kib * 1024;
}

uint64_t moe_disk_free(const char *dir)
{
    struct statvfs st;

    if (statvfs(dir, &st) != 0)
        return 0;
    return (uint64_t)st.f_bavail * st.f_frsize;
}
