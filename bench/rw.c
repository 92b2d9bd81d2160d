/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench rw` (also `farpool bench rw`): the first end-to-end workload.
 * Allocates slabs on a memory node to hold SIZE bytes, writes a pattern that
 * encodes each byte's offset, reads everything back, verifies every byte,
 * reports throughput and frees the slabs. Exits 1 on any mismatch or failure,
 * 2 on bad usage.
 */
#include "rw.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <farpool/farpool.h>

#include "bench_common.h"
#include "common/parse.h"
#include "common/time.h"

#define PFX "farpool-bench rw: "

/* Exit codes. */
#define RW_EXIT_OK      0
#define RW_EXIT_FAILURE 1
#define RW_EXIT_USAGE   2

#define STEP (16u << 20) /* bytes per API call */

static void rw_usage(void)
{
    printf("Usage: farpool-bench rw --node ADDR:PORT [--size SIZE] [--secret-file FILE]\n"
           "Write SIZE bytes to a memory node, read them back, verify, print throughput.\n\n"
           "  -n, --node ADDR:PORT   the memory node (farpoold)\n"
           "  -s, --size SIZE        bytes to move (default 256M; 64K, 1G, ...)\n"
           "  -k, --secret-file F    the pool's secret (default: $FARPOOL_SECRET_FILE)\n");
}

/* Connect to @addr with the secret of @secret_file, else (the library's default)
 * $FARPOOL_SECRET_FILE. */
static fp_status_t rw_connect(const char *addr, const char *secret_file, farpool_node_t **node_p)
{
    farpool_node_params_t params = {.field_mask =
                                        secret_file != NULL ? FARPOOL_NODE_PARAM_SECRET_FILE : 0,
                                    .secret_file = secret_file};
    fp_status_t status = farpool_node_connect(addr, &params, node_p);

    if (status != FP_OK)
        fprintf(stderr, PFX "cannot use node %s: %s\n", addr, fp_status_string(status));
    return status;
}

/* Each 8-byte word holds a mix of its absolute offset and the run's seed. */
static void fill(uint64_t *w, size_t words, uint64_t offset, uint64_t seed)
{
    for (size_t i = 0; i < words; i++)
        w[i] = (offset + 8 * i) * 0x9E3779B97F4A7C15ull ^ seed;
}

static int64_t verify(const uint64_t *w, size_t words, uint64_t offset, uint64_t seed)
{
    for (size_t i = 0; i < words; i++) {
        if (w[i] != ((offset + 8 * i) * 0x9E3779B97F4A7C15ull ^ seed))
            return (int64_t)(offset + 8 * i);
    }
    return -1;
}

int bench_rw_main(int argc, char **argv)
{
    static const struct option options[] = {
        {"node", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'},
        {"secret-file", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *addr = NULL, *secret_file = NULL;
    uint64_t size = 256ull << 20, slab_size = 0, seed, t0, t_write, t_read;
    uint64_t *slabs = NULL, nslabs = 0, *buf = NULL;
    farpool_node_t *node = NULL;
    fp_status_t status = FP_OK;
    char text[32];
    int opt, rc = RW_EXIT_FAILURE;

    while ((opt = getopt_long(argc, argv, "n:s:k:h", options, NULL)) != -1) {
        switch (opt) {
        case 'n':
            addr = optarg;
            break;
        case 's':
            if (fp_parse_size(optarg, &size) != FP_OK || size == 0 || size % 8 != 0)
                return bench_usage_error(
                    "rw", "invalid --size '%s' (a multiple of 8 bytes, e.g. 256M)", optarg);
            break;
        case 'k':
            secret_file = optarg;
            break;
        case 'h':
            rw_usage();
            return RW_EXIT_OK;
        default:
            return bench_usage_error("rw", "bad option");
        }
    }
    if (optind < argc)
        return bench_usage_error("rw", "unexpected argument '%s'", argv[optind]);
    if (addr == NULL)
        return bench_usage_error("rw", "--node ADDR:PORT is required");
    if (rw_connect(addr, secret_file, &node) != FP_OK)
        return RW_EXIT_FAILURE;

    buf = malloc(STEP);
    slabs = calloc(size / (64u << 10) + 1, sizeof(*slabs));
    if (buf == NULL || slabs == NULL) {
        fprintf(stderr, PFX "out of memory\n");
        goto out;
    }
    /* Allocate slabs until SIZE is covered. */
    while (nslabs * slab_size < size) {
        status = farpool_slab_alloc(node, &slabs[nslabs], &slab_size);
        if (status != FP_OK) {
            fp_format_size(size, text, sizeof(text));
            fprintf(stderr, PFX "cannot allocate %s on %s: %s\n", text, addr,
                    fp_status_string(status));
            goto out;
        }
        nslabs++;
    }
    seed = fp_time_ns(); /* a new pattern each run: stale data cannot pass */

    t0 = fp_time_ns();
    for (uint64_t off = 0; off < size; off += STEP) {
        size_t n = size - off < STEP ? (size_t)(size - off) : STEP;
        fill(buf, n / 8, off, seed);
        /* A step never straddles slabs: STEP divides every slab size >= STEP. */
        for (size_t done = 0; done < n;) {
            uint64_t pos = off + done, in_slab = slab_size - pos % slab_size;
            size_t len = n - done < in_slab ? n - done : (size_t)in_slab;
            status = farpool_slab_write(node, slabs[pos / slab_size], pos % slab_size,
                                        (uint8_t *)buf + done, len);
            if (status != FP_OK)
                goto io_error;
            done += len;
        }
    }
    t_write = fp_time_ns() - t0;

    t0 = fp_time_ns();
    for (uint64_t off = 0; off < size; off += STEP) {
        size_t n = size - off < STEP ? (size_t)(size - off) : STEP;
        int64_t bad;
        for (size_t done = 0; done < n;) {
            uint64_t pos = off + done, in_slab = slab_size - pos % slab_size;
            size_t len = n - done < in_slab ? n - done : (size_t)in_slab;
            status = farpool_slab_read(node, slabs[pos / slab_size], pos % slab_size,
                                       (uint8_t *)buf + done, len);
            if (status != FP_OK)
                goto io_error;
            done += len;
        }
        bad = verify(buf, n / 8, off, seed);
        if (bad >= 0) {
            fprintf(stderr, PFX "WRONG DATA at offset %" PRId64 " of the region\n", bad);
            goto out;
        }
    }
    t_read = fp_time_ns() - t0;

    fp_format_size(size, text, sizeof(text));
    printf("node %s: %s in %" PRIu64 " slabs of %" PRIu64 " MiB\n", addr, text, nslabs,
           slab_size >> 20);
    printf("write  %8.1f MB/s  (%.3f s)\n", (double)size / ((double)t_write / 1e9) / 1e6,
           (double)t_write / 1e9);
    printf("read   %8.1f MB/s  (%.3f s, every byte verified)\n",
           (double)size / ((double)t_read / 1e9) / 1e6, (double)t_read / 1e9);
    rc = RW_EXIT_OK;
    goto out;

io_error:
    fprintf(stderr, PFX "I/O with %s failed: %s\n", addr, fp_status_string(status));
out:
    for (uint64_t i = 0; node != NULL && i < nslabs; i++)
        farpool_slab_free(node, slabs[i]);
    farpool_node_close(node);
    free(slabs);
    free(buf);
    return rc;
}
