/* SPDX-License-Identifier: MIT */
/*
 * mappart FILE OFF LEN [whole]: what tests/cli_run.sh runs plainly and under
 * `farpool run` to check a mapping of part of a file, with libc only. Map
 * bytes [OFF, OFF+LEN) of FILE (PROT_READ, MAP_SHARED), read them in order
 * and print their FNV-1a 64. With $MAPPART_OUTSIDE set (only under the
 * shim: in a plain run the addresses beside a mapping may hold anything),
 * read the byte just before the mapping and the one just after it, and say
 * whether each gave a signal, as outside a real mmap. With "whole": then map
 * the whole file too, print its FNV-1a, unmap it, print the part's again,
 * and (with $MAPPART_OUTSIDE) probe outside the part again.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static sigjmp_buf jump;
static volatile sig_atomic_t caught;

static void on_signal(int sig)
{
    caught = sig;
    siglongjmp(jump, 1);
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

/* Read *@p; say "NAME: signal N" or "NAME: readable". */
static void probe(const char *name, const volatile unsigned char *p)
{
    caught = 0;
    if (sigsetjmp(jump, 1) == 0)
        (void)*p;
    if (caught != 0)
        printf("%s: signal %d\n", name, (int)caught);
    else
        printf("%s: readable\n", name);
}

static void probe_outside(const volatile unsigned char *p, size_t len)
{
    if (getenv("MAPPART_OUTSIDE") == NULL)
        return;
    probe("before", p - 1);
    probe("after", p + len);
}

int main(int argc, char **argv)
{
    const volatile unsigned char *part, *whole;
    struct sigaction sa;
    struct stat st;
    size_t len;
    off_t off;
    int fd;

    if (argc < 4) {
        fprintf(stderr, "usage: mappart FILE OFF LEN [whole]\n");
        return 2;
    }
    off = (off_t)strtoull(argv[2], NULL, 0);
    len = (size_t)strtoull(argv[3], NULL, 0);
    fd = open(argv[1], O_RDONLY);
    if (fd < 0 || fstat(fd, &st) != 0) {
        perror(argv[1]);
        return 1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    part = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, off);
    if (part == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    printf("part fnv1a64 %016llx\n", (unsigned long long)fnv1a(part, len));
    probe_outside(part, len);
    if (argc > 4 && strcmp(argv[4], "whole") == 0) {
        whole = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (whole == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        /* Under the shim the blocks outside the part were fenced: readable now. */
        caught = 0;
        if (sigsetjmp(jump, 1) == 0)
            printf("whole fnv1a64 %016llx\n", (unsigned long long)fnv1a(whole, (size_t)st.st_size));
        else
            printf("whole: signal %d\n", (int)caught);
        if (munmap((void *)whole, (size_t)st.st_size) != 0) {
            perror("munmap");
            return 1;
        }
        printf("part fnv1a64 %016llx\n", (unsigned long long)fnv1a(part, len));
        probe_outside(part, len);
    }
    close(fd);
    return munmap((void *)part, len) == 0 ? 0 : 1;
}
