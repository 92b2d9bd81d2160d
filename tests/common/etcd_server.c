/* SPDX-License-Identifier: MIT */
/*
 * A real etcd for tests (see etcd_server.h).
 */
#include "common/etcd_server.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/etcd.h"
#include "common/log.h"

#define START_TRIES 3
#define REG_MAX     16

static pid_t registry[REG_MAX]; /* running etcds, killed at exit */
static bool atexit_set;

static void registry_kill_all(void)
{
    for (int i = 0; i < REG_MAX; i++) {
        if (registry[i] > 0) {
            kill(registry[i], SIGKILL);
            waitpid(registry[i], NULL, 0);
            registry[i] = 0;
        }
    }
}

static void registry_set(pid_t old, pid_t pid)
{
    for (int i = 0; i < REG_MAX; i++) {
        if (registry[i] == old) {
            registry[i] = pid;
            return;
        }
    }
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void nap_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

bool fp_test_etcd_available(void)
{
    return access(FP_TEST_ETCD_BIN, X_OK) == 0;
}

int fp_test_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

void fp_test_etcd_url(const fp_test_etcd_t *e, const char *prefix, char *out, size_t size)
{
    snprintf(out, size, "etcd://%s/%s", e->endpoint, prefix[0] == '/' ? prefix + 1 : prefix);
}

static void log_dump(const fp_test_etcd_t *e)
{
    char line[512];
    FILE *f = fopen(e->log_path, "r");
    int n = 0;

    if (f == NULL)
        return;
    fprintf(stderr, "--- %s (last lines) ---\n", e->log_path);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (++n > 400) /* etcd is chatty: the end says why */
            fputs(line, stderr);
    }
    if (n <= 400) {
        rewind(f);
        while (fgets(line, sizeof(line), f) != NULL)
            fputs(line, stderr);
    }
    fclose(f);
}

static int tree_remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

static void discard(void *arg, farpool_log_level_t level, const char *line)
{
    (void)arg;
    (void)level;
    (void)line;
}

/* Run etcd on @e's ports; its pid, or -1. */
static pid_t etcd_spawn(const char *name, fp_test_etcd_t *e)
{
    char client[64], peer[64], cluster[128], data[300];
    pid_t parent = getpid(), pid;

    snprintf(client, sizeof(client), "http://127.0.0.1:%d", e->client_port);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", e->peer_port);
    snprintf(cluster, sizeof(cluster), "%s=%s", name, peer);
    snprintf(data, sizeof(data), "%s/data", e->dir);
    pid = fork();
    if (pid != 0)
        return pid;
    {
        int fd = open(e->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int nul = open("/dev/null", O_RDONLY);

        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(126);
        if (fd < 0 || nul < 0 || dup2(nul, 0) < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(126);
        execl(FP_TEST_ETCD_BIN, FP_TEST_ETCD_BIN, "--name", name, "--data-dir", data,
              "--listen-client-urls", client, "--advertise-client-urls", client,
              "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
              "--initial-cluster", cluster, "--initial-cluster-state", "new", "--log-level", "warn",
              (char *)NULL);
        _exit(127);
    }
}

/* Wait until the etcd of @e answers; FP_OK, FP_ERR_IO (it exited), FP_ERR_TIMED_OUT. */
static fp_status_t etcd_wait(fp_test_etcd_t *e)
{
    char url[128];
    fp_log_t log;
    fp_etcd_t *client = NULL;
    long deadline = now_ms() + FP_TEST_ETCD_START_MS;
    fp_status_t status = FP_ERR_TIMED_OUT;

    fp_log_init(&log, "etcd-wait", FP_LOG_ERROR, discard, NULL);
    fp_test_etcd_url(e, "fp-test-wait", url, sizeof(url));
    if (fp_etcd_open(url, 1000, &log, &client) != FP_OK)
        return FP_ERR_IO;
    while (now_ms() < deadline) {
        fp_etcd_kv_t kv = {0};
        fp_status_t got = fp_etcd_get(client, "/fp-test-wait/probe", &kv);

        fp_etcd_kv_clear(&kv);
        if (got == FP_OK || got == FP_ERR_NO_ENTRY) {
            status = FP_OK;
            break;
        }
        if (waitpid(e->pid, NULL, WNOHANG) == e->pid) {
            registry_set(e->pid, 0);
            e->pid = -1;
            status = FP_ERR_IO;
            break;
        }
        nap_ms(50);
    }
    fp_etcd_close(client);
    return status;
}

fp_status_t fp_test_etcd_start(const char *name, fp_test_etcd_t *e)
{
    const char *tmp = getenv("TMPDIR");
    fp_status_t status = FP_ERR_IO;

    memset(e, 0, sizeof(*e));
    e->pid = -1;
    if (!atexit_set) {
        atexit(registry_kill_all);
        atexit_set = true;
    }
    snprintf(e->dir, sizeof(e->dir), "%s/farpool-etcd-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(e->dir) == NULL) {
        fprintf(stderr, "etcd: mkdtemp %s: %s\n", e->dir, strerror(errno));
        return FP_ERR_IO;
    }
    snprintf(e->log_path, sizeof(e->log_path), "%s/etcd.log", e->dir);
    for (int tries = 0; tries < START_TRIES; tries++) {
        e->client_port = fp_test_free_port();
        e->peer_port = fp_test_free_port();
        if (e->client_port < 0 || e->peer_port < 0 || e->client_port == e->peer_port)
            continue;
        snprintf(e->endpoint, sizeof(e->endpoint), "127.0.0.1:%d", e->client_port);
        e->pid = etcd_spawn(name, e);
        if (e->pid < 0) {
            fprintf(stderr, "etcd: fork: %s\n", strerror(errno));
            break;
        }
        registry_set(0, e->pid);
        status = etcd_wait(e);
        if (status != FP_ERR_IO)
            break; /* up, or hung: a lost port makes it exit */
        fprintf(stderr, "etcd: exited at start (a port taken?); trying again\n");
    }
    if (status == FP_OK)
        return FP_OK;
    fprintf(stderr, "etcd: did not start (%s)\n", fp_status_string(status));
    log_dump(e);
    fp_test_etcd_stop(e);
    return status;
}

void fp_test_etcd_kill(fp_test_etcd_t *e)
{
    if (e->pid > 0) {
        kill(e->pid, SIGKILL);
        waitpid(e->pid, NULL, 0);
        registry_set(e->pid, 0);
        e->pid = -1;
    }
}

fp_status_t fp_test_etcd_restart(const char *name, fp_test_etcd_t *e)
{
    fp_status_t status;

    if (e->pid > 0)
        return FP_ERR_INVALID_PARAM;
    e->pid = etcd_spawn(name, e);
    if (e->pid < 0) {
        fprintf(stderr, "etcd: fork: %s\n", strerror(errno));
        return FP_ERR_IO;
    }
    registry_set(0, e->pid);
    status = etcd_wait(e);
    if (status != FP_OK) {
        fprintf(stderr, "etcd: did not start again (%s)\n", fp_status_string(status));
        log_dump(e);
    }
    return status;
}

void fp_test_etcd_stop(fp_test_etcd_t *e)
{
    if (e->pid > 0) {
        long deadline = now_ms() + FP_TEST_ETCD_STOP_MS;

        kill(e->pid, SIGTERM);
        while (waitpid(e->pid, NULL, WNOHANG) == 0) {
            if (now_ms() >= deadline) {
                kill(e->pid, SIGKILL);
                waitpid(e->pid, NULL, 0);
                break;
            }
            nap_ms(20);
        }
        registry_set(e->pid, 0);
        e->pid = -1;
    }
    if (e->dir[0] != '\0' && getenv("FP_TEST_KEEP") == NULL)
        nftw(e->dir, tree_remove_one, 16, FTW_DEPTH | FTW_PHYS);
    e->dir[0] = '\0';
}
