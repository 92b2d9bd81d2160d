/* SPDX-License-Identifier: MIT */
/*
 * forksum FILE [WAIT_FILE]: what tests/cli_programs.sh runs plainly and under
 * `farpool run`, with libc only: map FILE whole (PROT_READ, MAP_SHARED), then
 * fork() 4 children without exec, each of which sums its quarter of the
 * mapping (FNV-1a 64) and writes the sum to a pipe, while the parent sums the
 * whole mapping and each quarter itself. The parent then reads the children's
 * sums, waits for them, and prints each part's sum, the whole file's, and
 * "children ok" if every child exited 0 with the parent's sum of its part.
 * A child that fails, dies, or sums other bytes than the parent: a line on
 * stderr and exit 1. With WAIT_FILE: after the first page is read, create
 * WAIT_FILE.ready and wait (30 s at most) for WAIT_FILE to exist, so that the
 * test can kill a node before the rest of the file is read.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PARTS 4

static uint64_t fnv1a(const volatile unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Write all of @n bytes of @buf to @fd; 0 or -1. */
static int write_all(int fd, const void *buf, size_t n)
{
    const char *b = buf;

    while (n > 0) {
        ssize_t w = write(fd, b, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Read exactly @n bytes from @fd; 0, or -1 (an error or an early end). */
static int read_all(int fd, void *buf, size_t n)
{
    char *b = buf;

    while (n > 0) {
        ssize_t r = read(fd, b, n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

static void wait_for(const char *wait_file, const volatile unsigned char *p)
{
    char ready[4096];
    volatile unsigned char first = p[0];
    int fd;

    (void)first;
    snprintf(ready, sizeof(ready), "%s.ready", wait_file);
    fd = open(ready, O_WRONLY | O_CREAT, 0600);
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < 3000 && access(wait_file, F_OK) != 0; i++)
        usleep(10000);
}

int main(int argc, char **argv)
{
    const volatile unsigned char *p;
    size_t len, off[PARTS + 1];
    uint64_t mine[PARTS], theirs[PARTS], whole;
    pid_t pid[PARTS];
    int fds[PARTS];
    struct stat st;
    int fd, rc = 0;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: forksum FILE [WAIT_FILE]\n");
        return 2;
    }
    fd = open(argv[1], O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[1]);
        return 1;
    }
    len = (size_t)st.st_size;
    if (len < PARTS) {
        fprintf(stderr, "forksum: %s is too small\n", argv[1]);
        return 1;
    }
    p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    close(fd);
    if (argc == 3)
        wait_for(argv[2], p);
    for (int i = 0; i <= PARTS; i++)
        off[i] = len / PARTS * (size_t)i;
    off[PARTS] = len;

    fflush(stdout);
    for (int i = 0; i < PARTS; i++) {
        int pipefd[2];

        if (pipe(pipefd) != 0) {
            perror("pipe");
            return 1;
        }
        pid[i] = fork();
        if (pid[i] < 0) {
            perror("fork");
            return 1;
        }
        if (pid[i] == 0) {
            uint64_t h;

            /* Die with the parent (it dies by SIGBUS when a node is lost). */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() == 1)
                _exit(1);
            close(pipefd[0]);
            h = fnv1a(p + off[i], off[i + 1] - off[i]);
            _exit(write_all(pipefd[1], &h, sizeof(h)) == 0 ? 0 : 1);
        }
        close(pipefd[1]);
        fds[i] = pipefd[0];
    }

    /* The parent's own sums, while the children read theirs. */
    whole = fnv1a(p, len);
    for (int i = 0; i < PARTS; i++)
        mine[i] = fnv1a(p + off[i], off[i + 1] - off[i]);

    for (int i = 0; i < PARTS; i++) {
        int got = read_all(fds[i], &theirs[i], sizeof(theirs[i]));
        int wstatus = 0;

        close(fds[i]);
        if (waitpid(pid[i], &wstatus, 0) != pid[i]) {
            perror("waitpid");
            return 1;
        }
        if (WIFSIGNALED(wstatus)) {
            fprintf(stderr, "forksum: child %d was killed by signal %d (%s)\n", i,
                    WTERMSIG(wstatus), strsignal(WTERMSIG(wstatus)));
            rc = 1;
        } else if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0 || got != 0) {
            fprintf(stderr, "forksum: child %d failed (status %#x)\n", i, wstatus);
            rc = 1;
        } else if (theirs[i] != mine[i]) {
            fprintf(stderr, "forksum: child %d summed part %d as %016llx, the parent as %016llx\n",
                    i, i, (unsigned long long)theirs[i], (unsigned long long)mine[i]);
            rc = 1;
        }
    }
    for (int i = 0; i < PARTS; i++)
        printf("part %d offset %zu size %zu fnv1a64 %016llx\n", i, off[i], off[i + 1] - off[i],
               (unsigned long long)mine[i]);
    printf("size %zu fnv1a64 %016llx\n", len, (unsigned long long)whole);
    if (rc == 0)
        printf("children ok\n");
    if (munmap((void *)p, len) != 0) {
        perror("munmap");
        return 1;
    }
    return rc;
}
