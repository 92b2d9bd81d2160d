/* SPDX-License-Identifier: MIT */
/*
 * `farpool get NAME FILE`: a pool region into a local file, checked against
 * the checksum it was put with. The bytes go to a file with no name yet
 * (O_TMPFILE) in FILE's directory, which gets FILE's name only once every
 * byte is written and checked: a get that fails, is interrupted or killed
 * leaves no FILE, and an existing FILE is replaced whole or not at all.
 * Where the file system has no O_TMPFILE, a hidden temporary file is
 * removed on failure instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"

static void get_usage(void)
{
    printf("Usage: farpool get NAME FILE [--pool URL] [--quiet] [--secret-file FILE]\n"
           "Copy region NAME of the pool into FILE (replaced if it exists; FILE may be a\n"
           "directory, then DIR/NAME), checking it against the checksum it was put with.\n"
           "A get that fails leaves no FILE.\n\n"
           "  -p, --pool URL         the pool, farpool://HOST:PORT (default: $FARPOOL_POOL)\n"
           "  -q, --quiet            no progress bar\n"
           "  -k, --secret-file F    the pool's secret (default: $FARPOOL_SECRET_FILE)\n");
}

/* A hidden name in @dir for @base: "DIR/.BASE.farpool-HEX". -1 (ENAMETOOLONG) if too long. */
static int temp_name(char *buf, size_t cap, const char *dir, const char *base)
{
    uint8_t rnd[6];
    char hex[2 * sizeof(rnd) + 1];
    int n;

    randombytes_buf(rnd, sizeof(rnd));
    sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
    n = snprintf(buf, cap, "%s/.%.200s.farpool-%s", dir, base, hex);
    if (n < 0 || (size_t)n >= cap) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Give the unnamed file @fd the name @path, replacing what is there. */
static int link_tmpfile(int fd, const char *path, const char *dir, const char *base)
{
    char proc[64], tmp[PATH_MAX];

    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
        return 0;
    if (errno != EEXIST)
        return -1;
    for (int tries = 0; tries < 10; tries++) {
        if (temp_name(tmp, sizeof(tmp), dir, base) != 0)
            return -1;
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0) {
            if (rename(tmp, path) == 0)
                return 0;
            int saved = errno;
            unlink(tmp);
            errno = saved;
            return -1;
        }
        if (errno != EEXIST)
            return -1;
    }
    return -1;
}

int cli_get(int argc, char **argv)
{
    static const struct option options[] = {
        {"pool", required_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},
        {"secret-file", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pool = NULL, *url, *secret_file = NULL, *name, *file, *base;
    static char tmp_path[PATH_MAX];
    char path[PATH_MAX], dir[PATH_MAX], label[300];
    bool quiet = false, named = false;
    struct stat st;
    int opt, rc, fd;
    char *slash;

    while ((opt = getopt_long(argc, argv, "p:qk:h", options, NULL)) != -1) {
        switch (opt) {
        case 'p':
            pool = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'k':
            secret_file = optarg;
            break;
        case 'h':
            get_usage();
            return CLI_EXIT_OK;
        default:
            return cli_usage_error("get ", "bad option");
        }
    }
    if (argc - optind < 2)
        return cli_usage_error("get ", "get needs NAME and FILE");
    if (argc - optind > 2)
        return cli_usage_error("get ", "unexpected argument '%s'", argv[optind + 2]);
    name = argv[optind];
    file = argv[optind + 1];
    if (!cli_region_name_ok(name))
        return cli_usage_error("get ", "bad region name '%s' (1-255 of A-Z a-z 0-9 . _ -)", name);
    if (*file == '\0')
        return cli_usage_error("get ", "empty FILE");
    rc = cli_pool_url("get ", pool, &url);
    if (rc != CLI_EXIT_OK)
        return rc;

    /* FILE, or DIR/NAME when FILE is a directory; the directory holds the temporary file. */
    if (stat(file, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(dir, sizeof(dir), "%s", file);
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", file, name) >= sizeof(path)) {
            fprintf(stderr, "farpool: %s/%s: file name too long\n", file, name);
            return CLI_EXIT_FAILURE;
        }
    } else if ((size_t)snprintf(path, sizeof(path), "%s", file) >= sizeof(path) ||
               (size_t)snprintf(dir, sizeof(dir), "%s", file) >= sizeof(dir)) {
        fprintf(stderr, "farpool: %s: file name too long\n", file);
        return CLI_EXIT_FAILURE;
    } else {
        slash = strrchr(dir, '/');
        if (slash == NULL)
            snprintf(dir, sizeof(dir), ".");
        else if (slash == dir)
            dir[1] = '\0';
        else
            *slash = '\0';
    }
    slash = strrchr(path, '/');
    base = slash != NULL ? slash + 1 : path;
    if (*base == '\0') {
        fprintf(stderr, "farpool: %s: not a file name\n", file);
        return CLI_EXIT_FAILURE;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "farpool: libsodium cannot be initialised\n");
        return CLI_EXIT_FAILURE;
    }

    fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
        /* No O_TMPFILE here: a named temporary file, removed if anything fails. */
        fd = -1;
        if (temp_name(tmp_path, sizeof(tmp_path), dir, base) == 0)
            fd = open(tmp_path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
        named = fd >= 0;
    }
    if (fd < 0) {
        fprintf(stderr, "farpool: cannot create a file in %s: %s\n", dir, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    cli_catch_sigbus(named ? tmp_path : NULL);
    snprintf(label, sizeof(label), "get %.200s", name);
    rc = cli_region_read(url, secret_file, name, fd, label, quiet);
    if (rc == CLI_EXIT_OK && fsync(fd) != 0) {
        fprintf(stderr, "farpool: cannot write %s: %s\n", path, strerror(errno));
        rc = CLI_EXIT_FAILURE;
    }
    if (rc == CLI_EXIT_OK) {
        int r = named ? rename(tmp_path, path) : link_tmpfile(fd, path, dir, base);

        if (r != 0) {
            fprintf(stderr, "farpool: cannot create %s: %s\n", path, strerror(errno));
            rc = CLI_EXIT_FAILURE;
        } else {
            named = false; /* it is FILE now */
        }
    }
    close(fd); /* after fsync(): nothing left to fail */
    if (named)
        unlink(tmp_path);
    return rc;
}
