/* SPDX-License-Identifier: MIT */
/*
 * `farpool put FILE NAME`: a local file into a new pool region.
 *
 * The region is created unpublished (FARPOOL_REGION_UNPUBLISHED): nobody
 * sees it under NAME while it is filled. The file is read in windows of
 * PUT_WINDOW bytes, hashed as it goes (BLAKE2b-256) and written straight to
 * every copy of each slab (farpool_region_pwrite: no mapping, so no block is
 * fetched only to be overwritten), then the region is published with the
 * hash. Memory: one window. A put that fails, is interrupted
 * or killed never publishes: the pool deletes the unpublished region once
 * its creator's lease is gone. --force replaces an existing NAME only once
 * the new region is complete: publish says FP_ERR_EXISTS, the old region is
 * deleted, publish again.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "client/pool.h"
#include "common/parse.h"
#include "common/time.h"
#include "progress.h"
#include "proto/proto.h"

#define PUT_WINDOW       (8u << 20) /* bytes read at a time */
#define PUT_PUBLISH_MAX  3          /* --force: tries of delete-then-publish */
#define PUT_REPLICAS_MAX ((unsigned)FP_MAP_REPLICAS_MAX)

static void put_usage(void)
{
    printf("Usage: farpool put FILE NAME [--replicas N] [--granule SIZE] [--rate SIZE] [--force]\n"
           "                   [--quiet] [--pool URL] [--secret-file FILE]\n"
           "Store FILE in the pool as region NAME, with a checksum. NAME appears only once\n"
           "every byte is stored: a put that fails or is interrupted leaves nothing.\n\n"
           "  -r, --replicas N       copies of each slab, 1-4 (default: the pool's)\n"
           "  -g, --granule SIZE     block size, a power of two from 4K to 2M (default 64K)\n"
           "  -R, --rate SIZE        read FILE at most SIZE bytes per second, e.g. 100M\n"
           "                         (default: as fast as the pool takes it)\n"
           "  -f, --force            replace NAME if it exists (once the new one is stored)\n"
           "  -q, --quiet            no progress bar, no summary\n"
           "  -p, --pool URL         the pool, farpool://HOST:PORT (default: $FARPOOL_POOL)\n"
           "  -k, --secret-file F    the pool's secret (default: $FARPOOL_SECRET_FILE)\n");
}

typedef struct put_args {
    const char *file, *name, *url, *secret_file;
    uint32_t replicas; /* 0: the pool's default */
    uint32_t granule;  /* 0: the default */
    uint64_t rate;     /* bytes per second at most; 0: no limit */
    bool force, quiet;
} put_args_t;

/* FP_OK if no region is named @name; prints why otherwise. */
static fp_status_t check_free(const put_args_t *a)
{
    fp_pool_region_desc_t desc;
    farpool_node_t *meta;
    fp_status_t status;

    if (cli_pool_connect(a->url, a->secret_file, &meta) != FP_OK)
        return FP_ERR_NOT_CONNECTED;
    status = fp_pool_open(meta, a->name, 0, &desc);
    farpool_node_close(meta);
    if (status == FP_ERR_NO_ENTRY)
        return FP_OK;
    if (status == FP_OK) {
        fprintf(stderr, "farpool: region '%s' exists in the pool; give --force to replace it\n",
                a->name);
        return FP_ERR_EXISTS;
    }
    fprintf(stderr, "farpool: cannot look up region '%s': %s\n", a->name, fp_status_string(status));
    return status;
}

/* Delete the published region @name (replaced by --force). */
static fp_status_t delete_old(const put_args_t *a)
{
    farpool_node_t *meta;
    fp_status_t status;

    if (cli_pool_connect(a->url, a->secret_file, &meta) != FP_OK)
        return FP_ERR_NOT_CONNECTED;
    status = fp_pool_delete(meta, a->name);
    farpool_node_close(meta);
    if (status == FP_ERR_NO_ENTRY) /* deleted meanwhile: as good */
        return FP_OK;
    if (status != FP_OK)
        fprintf(stderr, "farpool: cannot delete the old region '%s' to replace it: %s\n", a->name,
                fp_status_string(status));
    return status;
}

/* Publish with @sum; with --force, delete the region that holds the name and try again. */
static fp_status_t publish(const put_args_t *a, farpool_region_t *region, const uint8_t *sum,
                           bool *replaced_p)
{
    fp_status_t status;

    for (int tries = 0;; tries++) {
        status = farpool_region_publish(region, sum);
        if (status != FP_ERR_EXISTS)
            break;
        if (!a->force) {
            fprintf(stderr,
                    "farpool: region '%s' was created meanwhile; nothing stored (give "
                    "--force to replace it)\n",
                    a->name);
            return status;
        }
        if (tries == PUT_PUBLISH_MAX) {
            fprintf(stderr,
                    "farpool: region '%s' was recreated %d times while being replaced; "
                    "nothing stored\n",
                    a->name, tries);
            return status;
        }
        status = delete_old(a);
        if (status != FP_OK)
            return status;
        *replaced_p = true;
    }
    if (status != FP_OK)
        fprintf(stderr, "farpool: cannot publish region '%s': %s\n", a->name,
                fp_status_string(status));
    return status;
}

/*
 * Read @size bytes of @fd in windows, hash them into @sum and write them
 * to @region straight to its nodes (farpool_region_pwrite: every copy, no
 * mapping, so nothing is fetched before it is overwritten), showing it on
 * @bar. FP_OK, or FP_ERR_CANCELED on a signal, FP_ERR_IO (said why) or the
 * write's error otherwise.
 */
/*
 * --rate: sleep until @done bytes are due at a->rate since @start_ns. A
 * signal cuts the sleep short; the caller's loop sees cli_signal.
 */
static void pace(const put_args_t *a, uint64_t start_ns, uint64_t done)
{
    uint64_t due_ns, now_ns;
    struct timespec ts;

    if (a->rate == 0)
        return;
    due_ns = start_ns + (uint64_t)((double)done / (double)a->rate * 1e9);
    now_ns = fp_time_ns();
    if (due_ns <= now_ns || cli_signal != 0)
        return;
    ts.tv_sec = (time_t)((due_ns - now_ns) / 1000000000ull);
    ts.tv_nsec = (long)((due_ns - now_ns) % 1000000000ull);
    nanosleep(&ts, NULL);
}

static fp_status_t copy_in(const put_args_t *a, int fd, farpool_region_t *region, uint64_t size,
                           uint8_t *sum, cli_progress_t *bar)
{
    crypto_generichash_state hash;
    fp_status_t status = FP_OK;
    uint8_t *buf = malloc(PUT_WINDOW);
    size_t window = PUT_WINDOW;
    uint64_t off = 0, start_ns = fp_time_ns();

    if (buf == NULL) {
        fprintf(stderr, "farpool: out of memory\n");
        return FP_ERR_NO_MEMORY;
    }
    if (a->rate != 0 && a->rate / 10 < window)
        window = a->rate / 10 > 4096 ? (size_t)(a->rate / 10) : 4096; /* ten steps a second */
    crypto_generichash_init(&hash, NULL, 0, crypto_generichash_BYTES);
    while (off < size) {
        size_t len = size - off < window ? (size_t)(size - off) : window;
        ssize_t n;

        if (cli_signal != 0) {
            status = FP_ERR_CANCELED;
            break;
        }
        n = pread(fd, buf, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            cli_progress_clear(bar);
            if (n == 0)
                fprintf(stderr,
                        "farpool: %s: shorter than it was (%" PRIu64
                        " bytes) while being read; nothing stored\n",
                        a->file, size);
            else
                fprintf(stderr, "farpool: cannot read %s: %s\n", a->file, strerror(errno));
            status = FP_ERR_IO;
            break;
        }
        crypto_generichash_update(&hash, buf, (size_t)n);
        status = farpool_region_pwrite(region, buf, (size_t)n, off);
        if (status != FP_OK) {
            cli_progress_clear(bar);
            fprintf(stderr, "farpool: cannot write region '%s' to the pool: %s\n", a->name,
                    fp_status_string(status));
            break;
        }
        off += (uint64_t)n;
        cli_progress_update(bar, off);
        pace(a, start_ns, off);
    }
    free(buf);
    if (status == FP_OK)
        crypto_generichash_final(&hash, sum, crypto_generichash_BYTES);
    return status;
}

static int put(const put_args_t *a)
{
    uint8_t sum[crypto_generichash_BYTES];
    char hex[2 * sizeof(sum) + 1], human[32], label[300];
    farpool_region_params_t params = {0};
    farpool_context_t *ctx = NULL;
    farpool_region_t *region = NULL;
    struct stat st, st2;
    cli_progress_t bar;
    fp_status_t status;
    bool replaced = false;
    int rc = CLI_EXIT_FAILURE, fd;
    uint64_t t0;

    fd = open(a->file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "farpool: cannot open %s: %s\n", a->file, strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    if (fstat(fd, &st) != 0) {
        fprintf(stderr, "farpool: cannot stat %s: %s\n", a->file, strerror(errno));
        goto out_close_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "farpool: %s is not a regular file (put needs its size up front)\n",
                a->file);
        goto out_close_fd;
    }
    if (st.st_size == 0) {
        fprintf(stderr, "farpool: %s is empty, and a pool region cannot be: nothing stored\n",
                a->file);
        goto out_close_fd;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "farpool: libsodium cannot be initialised\n");
        goto out_close_fd;
    }
    if (!a->force && check_free(a) != FP_OK)
        goto out_close_fd;
    if (cli_pool_context(a->url, a->secret_file, &ctx) != FP_OK)
        goto out_close_fd;

    t0 = fp_time_ns();
    params.field_mask = FARPOOL_REGION_PARAM_FLAGS;
    params.flags = FARPOOL_REGION_UNPUBLISHED;
    if (a->granule != 0) {
        params.field_mask |= FARPOOL_REGION_PARAM_GRANULE;
        params.granule = a->granule;
    }
    if (a->replicas != 0) {
        params.field_mask |= FARPOOL_REGION_PARAM_REPLICAS;
        params.replicas = a->replicas;
    }
    cli_format_bytes((uint64_t)st.st_size, human, sizeof(human));
    status = farpool_region_create_ex(ctx, a->name, (uint64_t)st.st_size, &params, &region);
    if (status != FP_OK) {
        if (status == FP_ERR_NO_SPACE)
            fprintf(stderr, "farpool: the pool has no room for %s (%s) times %s: %s\n", a->name,
                    human, a->replicas != 0 ? "the replicas asked for" : "its replicas",
                    fp_status_string(status));
        else if (status == FP_ERR_INVALID_PARAM && a->replicas != 0)
            fprintf(stderr,
                    "farpool: cannot create region '%s' with %u replicas (more than "
                    "the pool's live members?): %s\n",
                    a->name, a->replicas, fp_status_string(status));
        else
            fprintf(stderr, "farpool: cannot create region '%s': %s\n", a->name,
                    fp_status_string(status));
        goto out_destroy_ctx;
    }
    cli_catch_signals();
    snprintf(label, sizeof(label), "put %.200s", a->name);
    cli_progress_start(&bar, label, (uint64_t)st.st_size, a->quiet);
    status = copy_in(a, fd, region, (uint64_t)st.st_size, sum, &bar);
    cli_progress_clear(&bar);
    if (status == FP_ERR_CANCELED) {
        fprintf(stderr, "farpool: put interrupted by %s: nothing stored under '%s'\n",
                cli_signal_name(cli_signal), a->name);
        goto out_close_region;
    }
    if (status != FP_OK)
        goto out_close_region;
    if (fstat(fd, &st2) == 0 &&
        (st2.st_size != st.st_size || st2.st_mtim.tv_sec != st.st_mtim.tv_sec ||
         st2.st_mtim.tv_nsec != st.st_mtim.tv_nsec)) {
        fprintf(stderr, "farpool: %s changed while it was read: nothing stored\n", a->file);
        goto out_close_region;
    }
    if (cli_signal != 0) {
        fprintf(stderr, "farpool: put interrupted by %s: nothing stored under '%s'\n",
                cli_signal_name(cli_signal), a->name);
        goto out_close_region;
    }
    if (publish(a, region, sum, &replaced) != FP_OK)
        goto out_close_region;
    if (!a->quiet) {
        double secs = (double)(fp_time_ns() - t0) / 1e9;
        char rate[32];

        sodium_bin2hex(hex, sizeof(hex), sum, sizeof(sum));
        cli_format_bytes(secs > 0 ? (uint64_t)((double)st.st_size / secs) : 0, rate, sizeof(rate));
        printf("%s %s: %s in %.1f s (%s/s), blake2b-256 %.16s\n", replaced ? "replaced" : "put",
               a->name, human, secs, rate, hex);
    }
    rc = CLI_EXIT_OK;
out_close_region:
    farpool_region_close(region); /* unpublished: the pool deletes it */
out_destroy_ctx:
    farpool_context_destroy(ctx);
out_close_fd:
    close(fd);
    return rc;
}

int cli_put(int argc, char **argv)
{
    static const struct option options[] = {
        {"replicas", required_argument, NULL, 'r'},
        {"granule", required_argument, NULL, 'g'},
        {"rate", required_argument, NULL, 'R'},
        {"force", no_argument, NULL, 'f'},
        {"quiet", no_argument, NULL, 'q'},
        {"pool", required_argument, NULL, 'p'},
        {"secret-file", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    put_args_t a = {0};
    const char *pool = NULL;
    uint64_t v;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "r:g:R:fqp:k:h", options, NULL)) != -1) {
        switch (opt) {
        case 'r':
            if (fp_parse_size(optarg, &v) != FP_OK || v < 1 || v > PUT_REPLICAS_MAX ||
                strspn(optarg, "0123456789") != strlen(optarg))
                return cli_usage_error("put ", "bad --replicas '%s': a number from 1 to %u", optarg,
                                       PUT_REPLICAS_MAX);
            a.replicas = (uint32_t)v;
            break;
        case 'g':
            if (fp_parse_size(optarg, &v) != FP_OK || !fp_proto_region_granule_valid(v))
                return cli_usage_error("put ", "bad --granule '%s': a power of two from 4K to 2M",
                                       optarg);
            a.granule = (uint32_t)v;
            break;
        case 'R':
            if (fp_parse_size(optarg, &v) != FP_OK || v == 0)
                return cli_usage_error("put ", "bad --rate '%s': bytes per second, e.g. 100M",
                                       optarg);
            a.rate = v;
            break;
        case 'f':
            a.force = true;
            break;
        case 'q':
            a.quiet = true;
            break;
        case 'p':
            pool = optarg;
            break;
        case 'k':
            a.secret_file = optarg;
            break;
        case 'h':
            put_usage();
            return CLI_EXIT_OK;
        default:
            return cli_usage_error("put ", "bad option");
        }
    }
    if (argc - optind < 2)
        return cli_usage_error("put ", "put needs FILE and NAME");
    if (argc - optind > 2)
        return cli_usage_error("put ", "unexpected argument '%s'", argv[optind + 2]);
    a.file = argv[optind];
    a.name = argv[optind + 1];
    if (!cli_region_name_ok(a.name))
        return cli_usage_error("put ", "bad region name '%s' (1-255 of A-Z a-z 0-9 . _ -)", a.name);
    rc = cli_pool_url("put ", pool, &a.url);
    if (rc != CLI_EXIT_OK)
        return rc;
    return put(&a);
}
