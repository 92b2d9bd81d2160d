/* SPDX-License-Identifier: MIT */
/*
 * The shim's checksum cache (preload_sum.h): one small file per version of a
 * local file, named blake2b-DEV-INO-SIZE-MTIME-CTIME and holding the
 * checksum in hex, under $XDG_CACHE_HOME/farpool or ~/.cache/farpool.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "preload/preload_sum.h"

#define SUM_READ_CHUNK (1u << 20)

/* The cache directory into @dir (created if missing); false if there is none. */
static bool sum_dir(char *dir, size_t dirlen)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    char parent[PATH_MAX];

    if (xdg != NULL && xdg[0] == '/') {
        snprintf(parent, sizeof(parent), "%s", xdg);
        (void)mkdir(parent, 0700);
    } else if (home != NULL && home[0] == '/') {
        snprintf(parent, sizeof(parent), "%s/.cache", home);
        (void)mkdir(parent, 0700);
    } else {
        return false;
    }
    if ((size_t)snprintf(dir, dirlen, "%s/farpool", parent) >= dirlen)
        return false;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return false;
    return true;
}

static bool sum_path(const struct stat *st, char *path, size_t pathlen)
{
    char dir[PATH_MAX];

    if (!sum_dir(dir, sizeof(dir)))
        return false;
    return (size_t)snprintf(path, pathlen, "%s/blake2b-%llx-%llx-%llx-%lld.%09ld-%lld.%09ld", dir,
                            (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
                            (unsigned long long)st->st_size, (long long)st->st_mtim.tv_sec,
                            (long)st->st_mtim.tv_nsec, (long long)st->st_ctim.tv_sec,
                            (long)st->st_ctim.tv_nsec) < pathlen;
}

static bool sum_load(const char *path, uint8_t sum[FP_PRELOAD_SUM_BYTES])
{
    char hex[2 * FP_PRELOAD_SUM_BYTES + 2];
    size_t got = 0;
    ssize_t n;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    while (got < sizeof(hex) && (n = read(fd, hex + got, sizeof(hex) - got)) > 0)
        got += (size_t)n;
    close(fd);
    if (got < 2 * FP_PRELOAD_SUM_BYTES)
        return false;
    return sodium_hex2bin(sum, FP_PRELOAD_SUM_BYTES, hex, 2 * FP_PRELOAD_SUM_BYTES, NULL, NULL,
                          NULL) == 0;
}

static void sum_store(const char *path, const uint8_t sum[FP_PRELOAD_SUM_BYTES])
{
    char hex[2 * FP_PRELOAD_SUM_BYTES + 1], tmp[PATH_MAX + 64];
    int fd;
    bool ok;

    sodium_bin2hex(hex, sizeof(hex), sum, FP_PRELOAD_SUM_BYTES);
    hex[2 * FP_PRELOAD_SUM_BYTES] = '\n';
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%lx", path, (long)getpid(),
                         (unsigned long)pthread_self()) >= sizeof(tmp))
        return;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    ok = write(fd, hex, sizeof(hex)) == (ssize_t)sizeof(hex);
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, path) != 0)
        unlink(tmp);
}

/* BLAKE2b-256 of the @size bytes of @fd, read with pread(2). */
static fp_status_t sum_compute(int fd, uint64_t size, uint8_t sum[FP_PRELOAD_SUM_BYTES])
{
    crypto_generichash_state hash;
    uint64_t off = 0;
    uint8_t *buf;

    buf = malloc(SUM_READ_CHUNK);
    if (buf == NULL)
        return FP_ERR_NO_MEMORY;
    crypto_generichash_init(&hash, NULL, 0, FP_PRELOAD_SUM_BYTES);
    while (off < size) {
        size_t want = size - off < SUM_READ_CHUNK ? (size_t)(size - off) : SUM_READ_CHUNK;
        ssize_t n = pread(fd, buf, want, (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return FP_ERR_IO; /* an error, or the file shrank */
        }
        crypto_generichash_update(&hash, buf, (size_t)n);
        off += (uint64_t)n;
    }
    free(buf);
    crypto_generichash_final(&hash, sum, FP_PRELOAD_SUM_BYTES);
    return FP_OK;
}

fp_status_t fp_preload_sum_get(int fd, const struct stat *st, uint8_t sum_p[FP_PRELOAD_SUM_BYTES])
{
    char path[PATH_MAX];
    uint8_t sum[FP_PRELOAD_SUM_BYTES];
    struct stat after;
    bool cached = sum_path(st, path, sizeof(path));
    fp_status_t status;

    if (cached && sum_load(path, sum)) {
        memcpy(sum_p, sum, sizeof(sum));
        return FP_OK;
    }
    status = sum_compute(fd, (uint64_t)st->st_size, sum);
    if (status != FP_OK)
        return status;
    /* A file written while it was read has no checksum worth keeping. */
    if (fstat(fd, &after) != 0 || after.st_size != st->st_size ||
        after.st_mtim.tv_sec != st->st_mtim.tv_sec || after.st_mtim.tv_nsec != st->st_mtim.tv_nsec)
        return FP_ERR_IO;
    if (cached)
        sum_store(path, sum);
    memcpy(sum_p, sum, sizeof(sum));
    return FP_OK;
}
