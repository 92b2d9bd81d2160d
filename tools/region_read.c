/* SPDX-License-Identifier: MIT */
/*
 * The reading path of `farpool get` and `farpool cat`: a pool region opened
 * read-only and read in order, a window at a time, straight from its nodes
 * (farpool_region_pread: one live copy of each slab, another if that fails),
 * written out and hashed as it goes. Memory: two windows.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli.h"
#include "progress.h"

#define READ_WINDOW (8u << 20) /* bytes written (and released) at a time */

int cli_region_read(const char *url, const char *secret_file, const char *name, int fd,
                    const char *label, bool quiet)
{
    crypto_generichash_state hash;
    uint8_t sum[crypto_generichash_BYTES];
    farpool_region_info_t info;
    farpool_context_t *ctx = NULL;
    farpool_region_t *region = NULL;
    cli_progress_t bar;
    fp_status_t status;
    uint64_t size, off;
    int rc = CLI_EXIT_FAILURE;
    char *bounce = NULL;
    uint8_t *base = NULL;

    if (sodium_init() < 0) {
        fprintf(stderr, "farpool: libsodium cannot be initialised\n");
        return CLI_EXIT_FAILURE;
    }
    if (cli_pool_context(url, secret_file, &ctx) != FP_OK)
        return CLI_EXIT_FAILURE;
    status = farpool_region_open(ctx, name, FARPOOL_REGION_READONLY, &region);
    if (status != FP_OK) {
        if (status == FP_ERR_NO_ENTRY)
            fprintf(stderr, "farpool: no region '%s' in pool %s\n", name, url);
        else
            fprintf(stderr, "farpool: cannot open region '%s': %s\n", name,
                    fp_status_string(status));
        goto out_destroy_ctx;
    }
    memset(&info, 0, sizeof(info));
    status = farpool_region_info(region, &info, sizeof(info));
    if (status != FP_OK) {
        fprintf(stderr, "farpool: cannot get the checksum of region '%s': %s\n", name,
                fp_status_string(status));
        goto out_close_region;
    }
    size = info.size;
    base = malloc(READ_WINDOW);
    bounce = malloc(READ_WINDOW);
    if (base == NULL || bounce == NULL) {
        fprintf(stderr, "farpool: out of memory\n");
        goto out_close_region;
    }
    crypto_generichash_init(&hash, NULL, 0, sizeof(sum));
    cli_catch_signals();
    cli_progress_start(&bar, label, size, quiet);
    for (off = 0; off < size; off += READ_WINDOW) {
        size_t len = size - off < READ_WINDOW ? (size_t)(size - off) : READ_WINDOW;

        if (cli_signal != 0)
            break;
        status = farpool_region_pread(region, base, len, off);
        if (status != FP_OK) {
            cli_progress_clear(&bar);
            fprintf(stderr, "farpool: cannot read region '%s' at %llu: %s\n", name,
                    (unsigned long long)off, fp_status_string(status));
            goto out_close_region;
        }
        if (cli_write_all(fd, base, len, bounce, READ_WINDOW) != 0) {
            if (cli_signal != 0)
                break;
            cli_progress_clear(&bar);
            fprintf(stderr, "farpool: cannot write '%s': %s\n", name, strerror(errno));
            goto out_close_region;
        }
        crypto_generichash_update(&hash, base, len);
        cli_progress_update(&bar, off + len);
    }
    cli_progress_clear(&bar);
    if (cli_signal != 0) {
        fprintf(stderr, "farpool: interrupted by %s\n", cli_signal_name(cli_signal));
        goto out_close_region;
    }
    crypto_generichash_final(&hash, sum, sizeof(sum));
    if (!info.has_checksum) {
        fprintf(stderr,
                "farpool: region '%s' has no checksum (not written by farpool put): "
                "its content is not verified\n",
                name);
    } else if (sodium_memcmp(sum, info.checksum, sizeof(sum)) != 0) {
        fprintf(stderr,
                "farpool: region '%s': checksum mismatch: the content read does not "
                "hash to the checksum stored when it was put (run 'farpool verify %s')\n",
                name, name);
        goto out_close_region;
    }
    rc = CLI_EXIT_OK;
out_close_region:
    free(base);
    free(bounce);
    farpool_region_close(region);
out_destroy_ctx:
    farpool_context_destroy(ctx);
    return rc;
}
