/* SPDX-License-Identifier: MIT */
/*
 * mapsum FILE [WAIT_FILE]: what tests/cli_run.sh runs plainly and under
 * `farpool run`, with libc only: map FILE whole (PROT_READ, MAP_SHARED),
 * madvise(MADV_WILLNEED), print the FNV-1a 64 of every byte; munmap the first
 * page (the first $MAPSUM_HEAD bytes if set, and then check and say that they
 * are gone: SIGSEGV) and print the FNV-1a of the rest, read again; munmap the
 * rest. With $MAPSUM_FORK set: fork() after the first sum; the child prints
 * the FNV-1a of the whole mapping again. With $MAPSUM_THREADS=N: after the
 * first sum, N threads at once each map the file (MAP_PRIVATE), sum and unmap. With WAIT_FILE:
 * after the first page is read, create WAIT_FILE.ready and wait (30 s at most) for WAIT_FILE to
 * exist, so that the test can kill a node while the mapping is in use.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static sigjmp_buf segv_jump;

static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(segv_jump, 1);
}

static uint64_t fnv1a(const volatile unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* One of $MAPSUM_THREADS threads: map the file itself, sum it, unmap it. */
typedef struct thread_arg {
    const char *path;
    size_t len;
    uint64_t sum;
    int rc;
} thread_arg_t;

static void *thread_main(void *arg)
{
    thread_arg_t *t = arg;
    const volatile unsigned char *p;
    int fd = open(t->path, O_RDONLY);

    t->rc = 1;
    if (fd < 0)
        return NULL;
    p = mmap(NULL, t->len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return NULL;
    t->sum = fnv1a(p, t->len);
    t->rc = munmap((void *)p, t->len) == 0 ? 0 : 1;
    return NULL;
}

/* Sum the file from @n threads at once, each with its own mapping; print the sums. */
static int threads_run(const char *path, size_t len, int n)
{
    pthread_t tid[16];
    thread_arg_t args[16];

    if (n < 1 || n > 16)
        return 1;
    for (int i = 0; i < n; i++) {
        args[i] = (thread_arg_t){path, len, 0, 1};
        if (pthread_create(&tid[i], NULL, thread_main, &args[i]) != 0)
            return 1;
    }
    for (int i = 0; i < n; i++)
        pthread_join(tid[i], NULL);
    for (int i = 0; i < n; i++) {
        if (args[i].rc != 0)
            return 1;
        printf("thread %d fnv1a64 %016llx\n", i, (unsigned long long)args[i].sum);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *head = getenv("MAPSUM_HEAD");
    long page = head != NULL ? atol(head) : sysconf(_SC_PAGESIZE);
    struct sigaction sa;
    volatile unsigned char *p;
    struct stat st;
    size_t len;
    int fd;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: mapsum FILE [WAIT_FILE]\n");
        return 2;
    }
    fd = open(argv[1], O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[1]);
        return 1;
    }
    len = (size_t)st.st_size;
    if (len <= (size_t)page) {
        fprintf(stderr, "mapsum: %s is too small\n", argv[1]);
        return 1;
    }
    p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    close(fd);
    if (madvise((void *)p, len, MADV_WILLNEED) != 0)
        perror("madvise");
    if (argc == 3) {
        char ready[4096];
        volatile unsigned char first = p[0];

        (void)first;
        snprintf(ready, sizeof(ready), "%s.ready", argv[2]);
        fd = open(ready, O_WRONLY | O_CREAT, 0600);
        if (fd >= 0)
            close(fd);
        for (int i = 0; i < 3000 && access(argv[2], F_OK) != 0; i++)
            usleep(10000);
    }
    printf("size %zu fnv1a64 %016llx\n", len, (unsigned long long)fnv1a(p, len));
    if (getenv("MAPSUM_THREADS") != NULL &&
        threads_run(argv[1], len, atoi(getenv("MAPSUM_THREADS"))) != 0) {
        fprintf(stderr, "mapsum: a thread failed\n");
        return 1;
    }
    if (getenv("MAPSUM_FORK") != NULL) {
        int wstatus;
        pid_t pid;

        fflush(stdout);
        pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            printf("child fnv1a64 %016llx\n", (unsigned long long)fnv1a(p, len));
            fflush(stdout);
            _exit(0);
        }
        if (waitpid(pid, &wstatus, 0) != pid || !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
            fprintf(stderr, "mapsum: the child of fork() failed (status %#x)\n", wstatus);
            return 1;
        }
    }

    if (munmap((void *)p, (size_t)page) != 0) {
        perror("munmap head");
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_segv;
    sigaction(SIGSEGV, &sa, NULL);
    if (head == NULL) {
        /* The shim leaves a partly unmapped block readable: say nothing. */
    } else if (sigsetjmp(segv_jump, 1) == 0) {
        volatile unsigned char c = p[0];

        (void)c;
        printf("head still mapped\n");
    } else {
        printf("head unmapped\n");
    }
    signal(SIGSEGV, SIG_DFL);
    printf("tail fnv1a64 %016llx\n", (unsigned long long)fnv1a(p + page, len - (size_t)page));
    if (munmap((void *)(p + page), len - (size_t)page) != 0) {
        perror("munmap tail");
        return 1;
    }
    return 0;
}
