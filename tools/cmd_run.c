/* SPDX-License-Identifier: MIT */
/*
 * `farpool run [--map GLOB[=REGION]]... [--anon-over SIZE] [OPTIONS] -- CMD
 * [ARGS...]`: run an unmodified program with libfarpool-preload.so
 * preloaded, so that its mmaps of the matched files, and with --anon-over
 * its large anonymous allocations, are served from the pool
 * (docs/preload.md). This sets the shim's environment and execs CMD; the
 * shim does the rest in CMD's process.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "common/parse.h"

#define PRELOAD_NAME "libfarpool-preload.so"

#ifndef FP_INSTALL_LIBDIR
#define FP_INSTALL_LIBDIR "lib"
#endif

static void run_usage(void)
{
    printf("Usage: farpool run [--map GLOB[=REGION]]... [--anon-over SIZE] [OPTIONS] -- CMD "
           "[ARGS...]\n"
           "Run CMD with its mmaps of the files GLOB matches served from the pool: from region\n"
           "REGION, or the region named as the file's basename. A file whose region is missing\n"
           "or holds other bytes is mapped from disk (one warning). With --anon-over, CMD's\n"
           "anonymous allocations of SIZE or more (mmap, malloc) live in private pool regions.\n\n"
           "  -m, --map GLOB[=REGION]  files to serve (fnmatch; a GLOB without '/' is matched\n"
           "                           against the basename, '*' matches '/' too); repeatable\n"
           "  -a, --anon-over SIZE     serve anonymous allocations of SIZE bytes or more (mmap\n"
           "                           MAP_PRIVATE|MAP_ANONYMOUS, malloc, calloc, realloc, ...)\n"
           "                           and writable MAP_PRIVATE mappings of matched files\n"
           "  -g, --granule SIZE       block size of the regions --anon-over creates (4K to 2M,\n"
           "                           a power of two; default 64K)\n"
           "  -c, --cache SIZE         local cache budget of CMD's context (default 1G), shared\n"
           "                           by the served files and the anonymous regions\n"
           "  -p, --pool URL           the pool, farpool://HOST:PORT (default: $FARPOOL_POOL)\n"
           "  -r, --readahead on|off   the automatic prefetcher (default on)\n"
           "  -P, --prefault           take the cache's memory when a file of 2M granule is\n"
           "                           mapped, not at first touches (for a server: slower to\n"
           "                           start, as fast as it gets from its first token)\n"
           "  -s, --stats              at exit, each served region's counters on stderr\n"
           "  -q, --quiet              no line about --map globs that matched nothing\n"
           "  -k, --secret-file F      the pool's secret (default: $FARPOOL_SECRET_FILE)\n"
           "  -h, --help               this text\n\n"
           "At least one of --map and --anon-over is needed. Statically linked programs cannot\n"
           "be served (a warning says so; they run unchanged). See docs/preload.md.\n");
}

/* The shim beside this executable (a build tree) or in ../LIBDIR, ../lib*, into @path. */
static bool find_preload(char *path, size_t pathlen)
{
    static const char *const dirs[] = {".", ("../" FP_INSTALL_LIBDIR), "../lib", "../lib64",
                                       "../lib/x86_64-linux-gnu"};
    char self[PATH_MAX];
    char *slash;
    ssize_t n;

    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (slash == NULL)
        return false;
    *slash = '\0';
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char candidate[PATH_MAX + 64];

        snprintf(candidate, sizeof(candidate), "%s/%s/" PRELOAD_NAME, self, dirs[i]);
        if (access(candidate, R_OK) == 0 && realpath(candidate, path) != NULL &&
            strlen(path) < pathlen)
            return true;
    }
    snprintf(path, pathlen, "%s", self);
    return false;
}

/* @cmd as execvp(3) would find it, into @path; false if not found. */
static bool resolve_cmd(const char *cmd, char *path, size_t pathlen)
{
    const char *p = getenv("PATH");
    char *copy, *dir, *save = NULL;
    bool found = false;

    if (strchr(cmd, '/') != NULL) {
        snprintf(path, pathlen, "%s", cmd);
        return access(path, X_OK) == 0;
    }
    copy = strdup(p != NULL && *p != '\0' ? p : "/bin:/usr/bin");
    if (copy == NULL)
        return false;
    for (dir = strtok_r(copy, ":", &save); dir != NULL && !found;
         dir = strtok_r(NULL, ":", &save)) {
        struct stat st;

        if ((size_t)snprintf(path, pathlen, "%s/%s", *dir != '\0' ? dir : ".", cmd) >= pathlen)
            continue;
        found = access(path, X_OK) == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode);
    }
    free(copy);
    return found;
}

/*
 * True if @path is an ELF executable without a program interpreter (PT_INTERP):
 * statically linked, so the dynamic loader never sees LD_PRELOAD. Scripts and
 * files that cannot be read are not.
 */
static bool is_static_elf(const char *path)
{
    unsigned char ident[EI_NIDENT];
    bool is_static = false;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    if (pread(fd, ident, sizeof(ident), 0) != (ssize_t)sizeof(ident) ||
        memcmp(ident, ELFMAG, SELFMAG) != 0)
        goto out;
    if (ident[EI_CLASS] == ELFCLASS64) {
        Elf64_Ehdr eh;

        if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
            (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) || eh.e_phentsize != sizeof(Elf64_Phdr))
            goto out;
        is_static = true;
        for (unsigned i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;

            if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) !=
                (ssize_t)sizeof(ph)) {
                is_static = false;
                break;
            }
            if (ph.p_type == PT_INTERP) {
                is_static = false;
                break;
            }
        }
    } else if (ident[EI_CLASS] == ELFCLASS32) {
        Elf32_Ehdr eh;

        if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
            (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) || eh.e_phentsize != sizeof(Elf32_Phdr))
            goto out;
        is_static = true;
        for (unsigned i = 0; i < eh.e_phnum; i++) {
            Elf32_Phdr ph;

            if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) !=
                    (ssize_t)sizeof(ph) ||
                ph.p_type == PT_INTERP) {
                is_static = false;
                break;
            }
        }
    }
out:
    close(fd);
    return is_static;
}

/* Append @s and a newline to the growing string *@buf (*@len bytes). */
static bool append_line(char **buf, size_t *len, const char *s)
{
    size_t n = strlen(s);
    char *p = realloc(*buf, *len + n + 2);

    if (p == NULL)
        return false;
    if (*len > 0)
        p[(*len)++] = '\n';
    memcpy(p + *len, s, n + 1);
    *len += n;
    *buf = p;
    return true;
}

int cli_run(int argc, char **argv)
{
    static const struct option options[] = {
        {"map", required_argument, NULL, 'm'},     {"anon-over", required_argument, NULL, 'a'},
        {"granule", required_argument, NULL, 'g'}, {"cache", required_argument, NULL, 'c'},
        {"pool", required_argument, NULL, 'p'},    {"readahead", required_argument, NULL, 'r'},
        {"prefault", no_argument, NULL, 'P'},      {"stats", no_argument, NULL, 's'},
        {"quiet", no_argument, NULL, 'q'},         {"secret-file", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *pool = NULL, *url, *secret_file = NULL, *readahead = NULL, *cache = NULL;
    const char *anon_over = NULL, *granule = NULL;
    char preload[PATH_MAX], cmd_path[PATH_MAX], num[32];
    char *map = NULL, *ld = NULL;
    size_t map_len = 0;
    bool stats = false, quiet = false, prefault = false;
    uint64_t cache_bytes = 0, anon_bytes = 0, granule_bytes = 0;
    const char *old_ld;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "+m:a:g:c:p:r:Psqk:h", options, NULL)) != -1) {
        switch (opt) {
        case 'm': {
            const char *eq = strrchr(optarg, '=');

            if (*optarg == '\0' || *optarg == '=' || strchr(optarg, '\n') != NULL) {
                free(map);
                return cli_usage_error("run ", "bad --map '%s': GLOB[=REGION], no newline", optarg);
            }
            if (eq != NULL && eq[1] != '\0' && !cli_region_name_ok(eq + 1)) {
                free(map);
                return cli_usage_error("run ",
                                       "bad region name in --map '%s' (1-255 of A-Z a-z "
                                       "0-9 . _ -)",
                                       optarg);
            }
            if (!append_line(&map, &map_len, optarg)) {
                free(map);
                fprintf(stderr, "farpool: out of memory\n");
                return CLI_EXIT_FAILURE;
            }
            break;
        }
        case 'a':
            anon_over = optarg;
            break;
        case 'g':
            granule = optarg;
            break;
        case 'c':
            cache = optarg;
            break;
        case 'p':
            pool = optarg;
            break;
        case 'r':
            readahead = optarg;
            break;
        case 's':
            stats = true;
            break;
        case 'P':
            prefault = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'k':
            secret_file = optarg;
            break;
        case 'h':
            free(map);
            run_usage();
            return CLI_EXIT_OK;
        default:
            free(map);
            return cli_usage_error("run ", "bad option");
        }
    }
    rc = CLI_EXIT_USAGE;
    if (optind >= argc) {
        rc = cli_usage_error("run ", "run needs a command: farpool run --map GLOB -- CMD");
        goto out;
    }
    if (map == NULL && anon_over == NULL) {
        rc = cli_usage_error("run ", "run needs at least one --map GLOB[=REGION], or --anon-over "
                                     "SIZE");
        goto out;
    }
    if (anon_over != NULL &&
        (fp_parse_size(anon_over, &anon_bytes) != FP_OK || anon_bytes < 4096)) {
        rc = cli_usage_error("run ", "bad --anon-over '%s' (a size of 4K or more: 64M, 1G)",
                             anon_over);
        goto out;
    }
    if (granule != NULL &&
        (fp_parse_size(granule, &granule_bytes) != FP_OK || granule_bytes < 4096 ||
         granule_bytes > (2u << 20) || (granule_bytes & (granule_bytes - 1)) != 0)) {
        rc = cli_usage_error("run ", "bad --granule '%s' (a power of two from 4K to 2M)", granule);
        goto out;
    }
    if (cache != NULL && (fp_parse_size(cache, &cache_bytes) != FP_OK || cache_bytes == 0)) {
        rc = cli_usage_error("run ", "bad --cache '%s' (a size: 512M, 4G)", cache);
        goto out;
    }
    if (readahead != NULL && strcmp(readahead, "on") != 0 && strcmp(readahead, "off") != 0) {
        rc = cli_usage_error("run ", "bad --readahead '%s' (on or off)", readahead);
        goto out;
    }
    rc = cli_pool_url("run ", pool, &url);
    if (rc != CLI_EXIT_OK)
        goto out;
    rc = CLI_EXIT_FAILURE;
    if (!find_preload(preload, sizeof(preload))) {
        fprintf(stderr,
                "farpool: cannot find " PRELOAD_NAME " beside %s/ or in %s/../lib*/: this "
                "installation lacks the shim that farpool run needs\n",
                preload, preload);
        goto out;
    }
    if (!resolve_cmd(argv[optind], cmd_path, sizeof(cmd_path))) {
        fprintf(stderr, "farpool: cannot run %s: command not found\n", argv[optind]);
        rc = 127;
        goto out;
    }
    if (is_static_elf(cmd_path))
        fprintf(stderr,
                "farpool: %s is statically linked: the shim cannot act in it; it runs "
                "unchanged, its files read from disk\n",
                cmd_path);

    old_ld = getenv("LD_PRELOAD");
    if (old_ld != NULL && *old_ld != '\0') {
        ld = malloc(strlen(preload) + strlen(old_ld) + 2);
        if (ld == NULL) {
            fprintf(stderr, "farpool: out of memory\n");
            goto out;
        }
        sprintf(ld, "%s:%s", preload, old_ld);
    }
    snprintf(num, sizeof(num), "%ld", (long)getpid()); /* exec keeps the pid */
    if (setenv("LD_PRELOAD", ld != NULL ? ld : preload, 1) != 0 ||
        (map != NULL ? setenv("FARPOOL_PRELOAD_MAP", map, 1) : unsetenv("FARPOOL_PRELOAD_MAP")) !=
            0 ||
        setenv("FARPOOL_POOL", url, 1) != 0 || setenv("FARPOOL_PRELOAD_ROOT", num, 1) != 0 ||
        (stats ? setenv("FARPOOL_PRELOAD_STATS", "1", 1) : unsetenv("FARPOOL_PRELOAD_STATS")) !=
            0 ||
        (quiet ? setenv("FARPOOL_PRELOAD_QUIET", "1", 1) : unsetenv("FARPOOL_PRELOAD_QUIET")) !=
            0 ||
        (prefault ? setenv("FARPOOL_PRELOAD_PREFAULT", "1", 1)
                  : unsetenv("FARPOOL_PRELOAD_PREFAULT")) != 0 ||
        (readahead != NULL && setenv("FARPOOL_PRELOAD_READAHEAD", readahead, 1) != 0) ||
        (secret_file != NULL && setenv("FARPOOL_SECRET_FILE", secret_file, 1) != 0)) {
        fprintf(stderr, "farpool: cannot set the environment: %s\n", strerror(errno));
        goto out;
    }
    if (cache != NULL) {
        snprintf(num, sizeof(num), "%llu", (unsigned long long)cache_bytes);
        if (setenv("FARPOOL_PRELOAD_CACHE", num, 1) != 0) {
            fprintf(stderr, "farpool: cannot set the environment: %s\n", strerror(errno));
            goto out;
        }
    }
    snprintf(num, sizeof(num), "%llu", (unsigned long long)anon_bytes);
    if ((anon_over != NULL ? setenv("FARPOOL_PRELOAD_ANON_OVER", num, 1)
                           : unsetenv("FARPOOL_PRELOAD_ANON_OVER")) != 0) {
        fprintf(stderr, "farpool: cannot set the environment: %s\n", strerror(errno));
        goto out;
    }
    snprintf(num, sizeof(num), "%llu", (unsigned long long)granule_bytes);
    if ((granule != NULL ? setenv("FARPOOL_PRELOAD_GRANULE", num, 1)
                         : unsetenv("FARPOOL_PRELOAD_GRANULE")) != 0) {
        fprintf(stderr, "farpool: cannot set the environment: %s\n", strerror(errno));
        goto out;
    }
    execv(cmd_path, argv + optind);
    fprintf(stderr, "farpool: cannot run %s: %s\n", cmd_path, strerror(errno));
    rc = errno == ENOENT ? 127 : 126;
out:
    free(ld);
    free(map);
    return rc;
}
