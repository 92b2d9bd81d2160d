/* SPDX-License-Identifier: MIT */
/*
 * `farpool bench rw`: the first end-to-end workload. Allocates slabs on a
 * memory node to hold SIZE bytes, writes a pattern that encodes each byte's
 * offset, reads everything back, verifies every byte, reports throughput and
 * frees the slabs. Exits non-zero on any mismatch.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common/parse.h"
#include "common/time.h"

#define STEP (16u << 20) /* bytes per API call */

static void rw_usage(void)
{
    printf("Usage: farpool bench rw --node ADDR:PORT [--size SIZE] [--secret-file FILE]\n"
           "Write SIZE bytes to a memory node, read them back, verify, print throughput.\n\n"
           "  -n, --node ADDR:PORT   the memory node (farpoold)\n"
           "  -s, --size SIZE        bytes to move (default 256M; 64K, 1G, ...)\n"
           "  -k, --secret-file F    the pool's secret (default: $FARPOOL_SECRET_FILE)\n");
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

int cli_bench_rw(int argc, char **argv)
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
    int opt, rc = CLI_EXIT_FAILURE;

    while ((opt = getopt_long(argc, argv, "n:s:k:h", options, NULL)) != -1) {
        switch (opt) {
        case 'n':
            addr = optarg;
            break;
        case 's':
            if (fp_parse_size(optarg, &size) != FP_OK || size == 0 || size % 8 != 0)
                return cli_usage_error(
                    "bench rw ", "invalid --size '%s' (a multiple of 8 bytes, e.g. 256M)", optarg);
            break;
        case 'k':
            secret_file = optarg;
            break;
        case 'h':
            rw_usage();
            return CLI_EXIT_OK;
        default:
            return cli_usage_error("bench rw ", "bad option");
        }
    }
    if (optind < argc)
        return cli_usage_error("bench rw ", "unexpected argument '%s'", argv[optind]);
    if (addr == NULL)
        return cli_usage_error("bench rw ", "--node ADDR:PORT is required");
    if (cli_connect(addr, secret_file, &node) != FP_OK)
        return CLI_EXIT_FAILURE;

    buf = malloc(STEP);
    slabs = calloc(size / (64u << 10) + 1, sizeof(*slabs));
    if (buf == NULL || slabs == NULL) {
        fprintf(stderr, "farpool: out of memory\n");
        goto out;
    }
    /* Allocate slabs until SIZE is covered. */
    while (nslabs * slab_size < size) {
        status = farpool_slab_alloc(node, &slabs[nslabs], &slab_size);
        if (status != FP_OK) {
            fp_format_size(size, text, sizeof(text));
            fprintf(stderr, "farpool: cannot allocate %s on %s: %s\n", text, addr,
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
            fprintf(stderr, "farpool: WRONG DATA at offset %" PRId64 " of the region\n", bad);
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
    rc = CLI_EXIT_OK;
    goto out;

io_error:
    fprintf(stderr, "farpool: I/O with %s failed: %s\n", addr, fp_status_string(status));
out:
    for (uint64_t i = 0; node != NULL && i < nslabs; i++)
        farpool_slab_free(node, slabs[i]);
    farpool_node_close(node);
    free(slabs);
    free(buf);
    return rc;
}
