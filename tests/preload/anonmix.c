/* SPDX-License-Identifier: MIT */
/*
 * The anonymous memory that cli_anon.sh runs plainly and under `farpool run
 * --anon-over`: libc only. Each step writes a pattern, reads it back and
 * prints one line (the same in both runs); a wrong byte prints where and
 * exits 1.
 *
 *   malloc, calloc (zeros), realloc growing and shrinking across the
 *   threshold, posix_memalign / aligned_alloc / memalign / valloc,
 *   malloc_usable_size, free; an anonymous mmap, a partial munmap of its
 *   head and tail, madvise(MADV_DONTNEED) (zeros after), MADV_PAGEOUT (the
 *   bytes stay); mremap grown in place or moved, shrunk; fork() without exec
 *   (the child sees the parent's bytes as they were at fork, the parent never
 *   sees the child's writes, nor the child the parent's); a child of
 *   fork() that execs.
 *
 * anonmix --file PATH: mremap of a read-only mapping of PATH (a quarter of
 * it grown to the whole, shrunk, grown past its end with MREMAP_MAYMOVE),
 * and a writable MAP_PRIVATE mapping of it (its writes private: the file
 * and a read-only mapping keep their bytes).
 *
 * Usage: anonmix [SIZE_MIB] (default 32: each block is that big).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t page;

/* The byte of pattern @seed at offset @i. */
static uint8_t pat(uint64_t seed, size_t i)
{
    uint64_t x = (i / 8 + 1) * 0x9e3779b97f4a7c15ull ^ seed;

    x ^= x >> 29;
    x *= 0xbf58476d1ce4e5b9ull;
    return (uint8_t)(x >> (8 * (i % 8)));
}

/* Not inlined: gcc -O3 (12) would otherwise take the bytes it writes for uninitialised in check().
 */
__attribute__((noinline)) static void fill(void *p, size_t n, uint64_t seed)
{
    uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        b[i] = pat(seed, i);
}

static int check(const char *what, const void *p, size_t n, uint64_t seed)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++) {
        if (b[i] != pat(seed, i)) {
            printf("FAIL %s: byte %zu is %u, not %u\n", what, i, b[i], pat(seed, i));
            return 1;
        }
    }
    return 0;
}

static int zeros(const char *what, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++) {
        if (b[i] != 0) {
            printf("FAIL %s: byte %zu is %u, not 0\n", what, i, b[i]);
            return 1;
        }
    }
    return 0;
}

/* A sum of @n bytes, to print: the same plainly and served. */
static uint64_t sum(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t s = 0;

    for (size_t i = 0; i < n; i++)
        s = s * 31 + b[i];
    return s;
}

static int test_malloc(size_t big)
{
    int bad = 0;
    uint8_t *a = malloc(big), *c = calloc(big / 4096, 4096), *r;
    void *m = NULL, *al, *ma, *va;

    if (a == NULL || c == NULL)
        return printf("FAIL malloc: NULL\n"), 1;
    bad |= zeros("calloc", c, big);
    fill(a, big, 1);
    fill(c, big, 2);
    bad |= check("malloc", a, big, 1);
    bad |= check("calloc written", c, big, 2);
    if (malloc_usable_size(a) < big)
        bad |= printf("FAIL malloc_usable_size %zu < %zu\n", malloc_usable_size(a), big) > 0;
    printf("malloc %zu: sum %llu\n", big, (unsigned long long)sum(a, big));

    /* realloc: grow (big to 2 big), shrink under the threshold, grow across it again. */
    r = realloc(a, 2 * big);
    if (r == NULL)
        return printf("FAIL realloc grow: NULL\n"), 1;
    bad |= check("realloc grown", r, big, 1);
    fill(r + big, big, 3);
    bad |= check("realloc grown tail", r + big, big, 3);
    r = realloc(r, 4096); /* small: to the C library's heap */
    if (r == NULL)
        return printf("FAIL realloc shrink: NULL\n"), 1;
    bad |= check("realloc shrunk", r, 4096, 1);
    r = realloc(r, 3 * big); /* big again */
    if (r == NULL)
        return printf("FAIL realloc regrow: NULL\n"), 1;
    bad |= check("realloc regrown", r, 4096, 1);
    fill(r, 3 * big, 4);
    r = realloc(r, big + 12345); /* shrink within the threshold */
    if (r == NULL)
        return printf("FAIL realloc shrink big: NULL\n"), 1;
    bad |= check("realloc shrunk big", r, big + 12345, 4);
    printf("realloc: sum %llu\n", (unsigned long long)sum(r, big + 12345));
    free(r);

    /* Aligned allocations. */
    if (posix_memalign(&m, 1u << 21, big) != 0 || ((uintptr_t)m & ((1u << 21) - 1)) != 0)
        return printf("FAIL posix_memalign: %p\n", m), 1;
    al = aligned_alloc(1u << 16, big);
    ma = memalign(1u << 12, big);
    va = valloc(big);
    if (al == NULL || ((uintptr_t)al & 0xffff) != 0 || ma == NULL || va == NULL ||
        ((uintptr_t)va & (page - 1)) != 0)
        return printf("FAIL aligned allocations: %p %p %p\n", al, ma, va), 1;
    fill(m, big, 5);
    fill(al, big, 6);
    fill(ma, big, 7);
    fill(va, big, 8);
    bad |= check("posix_memalign", m, big, 5) | check("aligned_alloc", al, big, 6) |
           check("memalign", ma, big, 7) | check("valloc", va, big, 8);
    printf("aligned: sums %llu %llu\n", (unsigned long long)sum(m, big),
           (unsigned long long)sum(va, big));
    free(m);
    free(al);
    free(ma);
    free(va);
    bad |= check("calloc after frees", c, big, 2);
    free(c);

    /* Many small ones beside (the C library's), freed in another order. */
    {
        void *small[256];

        for (int i = 0; i < 256; i++) {
            small[i] = malloc((size_t)(i + 1) * 64);
            if (small[i] == NULL)
                return printf("FAIL small malloc\n"), 1;
            memset(small[i], i, (size_t)(i + 1) * 64);
        }
        for (int i = 255; i >= 0; i--) {
            if (((uint8_t *)small[i])[i * 64] != (uint8_t)i)
                bad |= printf("FAIL small block %d\n", i) > 0;
            free(small[i]);
        }
    }
    printf("malloc family: %s\n", bad ? "FAILED" : "ok");
    return bad;
}

static int test_mmap(size_t big)
{
    int bad = 0;
    uint8_t *p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *q;
    size_t cut = 1u << 20; /* 1 MiB: whole blocks at any granule */

    if (p == MAP_FAILED)
        return printf("FAIL mmap: %s\n", strerror(errno)), 1;
    bad |= zeros("fresh mmap", p, big);
    fill(p, big, 10);
    bad |= check("mmap", p, big, 10);
    /* DONTNEED: zeros after, as the kernel gives for private anonymous memory. */
    if (madvise(p + cut, 4 * cut, MADV_DONTNEED) != 0)
        bad |= printf("FAIL madvise DONTNEED: %s\n", strerror(errno)) > 0;
    bad |= check("before DONTNEED", p, cut, 10);
    bad |= zeros("after DONTNEED", p + cut, 4 * cut);
    for (size_t i = 5 * cut; i < big; i++)
        if (p[i] != pat(10, i)) {
            bad |= printf("FAIL after DONTNEED: byte %zu changed\n", i) > 0;
            break;
        }
    /* A page-sized DONTNEED inside a block. */
    if (madvise(p + 7 * cut + page, page, MADV_DONTNEED) != 0)
        bad |= printf("FAIL madvise DONTNEED page\n") > 0;
    bad |= zeros("after DONTNEED page", p + 7 * cut + page, page);
    if (p[7 * cut + page - 1] != pat(10, 7 * cut + page - 1) ||
        p[7 * cut + 2 * page] != pat(10, 7 * cut + 2 * page))
        bad |= printf("FAIL DONTNEED page: its neighbours changed\n") > 0;
    /* PAGEOUT: the bytes stay. */
    if (madvise(p, big, MADV_PAGEOUT) != 0 && errno != EINVAL)
        bad |= printf("FAIL madvise PAGEOUT: %s\n", strerror(errno)) > 0;
    bad |= check("after PAGEOUT", p, cut, 10);
    printf("mmap: sum %llu\n", (unsigned long long)sum(p, big));

    /* munmap of the head and the tail: the middle stays. */
    if (munmap(p, cut) != 0 || munmap(p + big - cut, cut) != 0)
        bad |= printf("FAIL munmap head/tail: %s\n", strerror(errno)) > 0;
    if (p[5 * cut] != pat(10, 5 * cut) || p[big - cut - 1] != pat(10, big - cut - 1))
        bad |= printf("FAIL after munmap: the middle changed\n") > 0;

    /* mremap: shrink, grow in place or moved, the bytes kept, the new part zeros. */
    fill(p + cut, big - 2 * cut, 12);
    q = mremap(p + cut, big - 2 * cut, big - 4 * cut, 0);
    if (q != p + cut)
        bad |= printf("FAIL mremap shrink: %p\n", (void *)q) > 0;
    q = mremap(p + cut, big - 4 * cut, 2 * big, MREMAP_MAYMOVE);
    if (q == MAP_FAILED)
        return printf("FAIL mremap grow: %s\n", strerror(errno)), 1;
    for (size_t i = 0; i < big - 4 * cut; i++)
        if (q[i] != pat(12, i)) {
            bad |= printf("FAIL mremap grown: byte %zu\n", i) > 0;
            break;
        }
    bad |= zeros("mremap grown tail", q + big - 4 * cut, big + 4 * cut);
    fill(q, 2 * big, 11);
    bad |= check("mremap grown written", q, 2 * big, 11);
    if (munmap(q, 2 * big) != 0)
        bad |= printf("FAIL munmap moved: %s\n", strerror(errno)) > 0;
    printf("mmap, munmap, madvise, mremap: %s\n", bad ? "FAILED" : "ok");
    return bad;
}

/* fork() without exec: copy-on-write as the kernel's. */
static int test_fork(size_t big)
{
    uint8_t *h = malloc(big);
    uint8_t *m = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int bad = 0, status;
    pid_t pid;

    if (h == NULL || m == MAP_FAILED)
        return printf("FAIL fork setup\n"), 1;
    fill(h, big, 20);
    fill(m, big, 21);
    fflush(stdout);
    pid = fork();
    if (pid < 0)
        return printf("FAIL fork: %s\n", strerror(errno)), 1;
    if (pid == 0) {
        int cbad = check("child heap", h, big, 20) | check("child mmap", m, big, 21);

        fill(h, big, 30); /* the parent must not see these */
        fill(m, big, 31);
        cbad |= check("child heap written", h, big, 30) | check("child mmap written", m, big, 31);
        printf("child: %s\n", cbad ? "FAILED" : "ok");
        fflush(stdout);
        _exit(cbad);
    }
    /* The parent writes too (the child must see the bytes as they were at fork). */
    fill(m, big / 2, 22);
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bad |= printf("FAIL child: status %d\n", status) > 0;
    bad |= check("parent heap after child", h, big, 20);
    bad |= check("parent mmap after child", m, big / 2, 22);
    for (size_t i = big / 2; i < big; i++)
        if (m[i] != pat(21, i)) {
            bad |= printf("FAIL parent mmap tail: byte %zu\n", i) > 0;
            break;
        }
    /* A child that execs. */
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", "exit 7", (char *)NULL);
        _exit(99);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 7)
        bad |= printf("FAIL fork+exec: status %d\n", status) > 0;
    free(h);
    munmap(m, big);
    printf("fork: %s\n", bad ? "FAILED" : "ok");
    return bad;
}

static int test_file(const char *path)
{
    int fd = open(path, O_RDONLY), bad = 0;
    off_t size = fd >= 0 ? lseek(fd, 0, SEEK_END) : -1;
    size_t n = (size_t)size, q = (n / 4) & ~(page - 1);
    uint8_t *p, *r, *w;
    uint64_t whole;

    if (fd < 0 || size <= 0 || n % page != 0)
        return printf("FAIL file %s: cannot open, or not a whole number of pages\n", path), 1;
    p = mmap(NULL, q, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return printf("FAIL mmap file: %s\n", strerror(errno)), 1;
    printf("file quarter: sum %llu\n", (unsigned long long)sum(p, q));
    r = mremap(p, q, n, MREMAP_MAYMOVE); /* grown to the whole file */
    if (r == MAP_FAILED)
        return printf("FAIL mremap file grow: %s\n", strerror(errno)), 1;
    whole = sum(r, n);
    printf("file grown: sum %llu\n", (unsigned long long)whole);
    p = mremap(r, n, q, 0); /* shrunk in place */
    if (p != r)
        bad |= printf("FAIL mremap file shrink: %p\n", (void *)p) > 0;
    printf("file shrunk: sum %llu\n", (unsigned long long)sum(p, q));
    r = mremap(p, q, n + 4 * page, MREMAP_MAYMOVE); /* past its end: the last pages SIGBUS */
    if (r == MAP_FAILED)
        return printf("FAIL mremap file past end: %s\n", strerror(errno)), 1;
    if (sum(r, n) != whole)
        bad |= printf("FAIL mremap file past end: other bytes\n") > 0;
    munmap(r, n + 4 * page);

    /* MAP_PRIVATE writable: reads the file, writes stay in this mapping. */
    w = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    p = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, 0);
    if (w == MAP_FAILED || p == MAP_FAILED)
        return printf("FAIL mmap private: %s\n", strerror(errno)), 1;
    if (sum(w, n) != whole)
        bad |= printf("FAIL private mapping: other bytes than the file's\n") > 0;
    fill(w, n / 2, 40);
    bad |= check("private written", w, n / 2, 40);
    if (sum(p, n) != whole)
        bad |= printf("FAIL private writes seen by a shared mapping\n") > 0;
    if (memcmp(w + n / 2, p + n / 2, n - n / 2) != 0)
        bad |= printf("FAIL private mapping: its unwritten half changed\n") > 0;
    if (madvise(w, n / 4, MADV_DONTNEED) != 0) /* private file pages: the file's again */
        bad |= printf("FAIL madvise private: %s\n", strerror(errno)) > 0;
    if (memcmp(w, p, n / 4) != 0)
        bad |= printf("FAIL private mapping after DONTNEED: not the file's bytes\n") > 0;
    for (size_t i = n / 4; i < n / 2; i++)
        if (w[i] != pat(40, i)) {
            bad |= printf("FAIL private after DONTNEED: byte %zu\n", i) > 0;
            break;
        }
    printf("file private: sum %llu\n", (unsigned long long)sum(w, n));
    munmap(w, n);
    munmap(p, n);
    close(fd);
    printf("file: %s\n", bad ? "FAILED" : "ok");
    return bad;
}

int main(int argc, char **argv)
{
    size_t big = (size_t)(argc > 1 ? atol(argv[1]) : 32) << 20;
    int bad = 0;

    page = (size_t)sysconf(_SC_PAGESIZE);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 2 && strcmp(argv[1], "--file") == 0)
        return test_file(argv[2]);
    bad |= test_malloc(big);
    bad |= test_mmap(big);
    bad |= test_fork(big);
    printf("anonmix: %s\n", bad ? "FAILED" : "ok");
    return bad;
}
