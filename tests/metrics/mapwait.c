/* SPDX-License-Identifier: MIT */
/*
 * mapwait POOL_URL REGION WAIT_FILE: what tests/cli_metrics.sh runs to have a
 * mapping alive on this machine while it scrapes `farpool status --clients
 * --prometheus`. Opens REGION of the pool read-only, maps it, reads every
 * byte (so every block is fetched) and prints their FNV-1a 64, creates
 * WAIT_FILE.ready, and waits (30 s at most) for WAIT_FILE to exist before
 * unmapping. Exits 0, or 1 with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <farpool/farpool.h>

#define WAIT_MS 30000

int main(int argc, char **argv)
{
    farpool_context_params_t cp;
    farpool_context_t *ctx;
    farpool_region_t *region;
    const volatile unsigned char *p;
    void *addr;
    uint64_t h = 0xcbf29ce484222325ull, size;
    char ready[4096];
    fp_status_t status;
    FILE *f;

    if (argc != 4) {
        fprintf(stderr, "usage: mapwait POOL_URL REGION WAIT_FILE\n");
        return 2;
    }
    memset(&cp, 0, sizeof(cp));
    cp.field_mask = FARPOOL_CONTEXT_PARAM_POOL;
    cp.pool = argv[1];
    status = farpool_context_create(&cp, &ctx);
    if (status != FP_OK) {
        fprintf(stderr, "mapwait: %s: %s\n", argv[1], farpool_status_string(status));
        return 1;
    }
    status = farpool_region_open(ctx, argv[2], FARPOOL_REGION_READONLY, &region);
    if (status == FP_OK)
        status = farpool_map(region, &addr);
    if (status != FP_OK) {
        fprintf(stderr, "mapwait: %s: %s\n", argv[2], farpool_status_string(status));
        farpool_context_destroy(ctx);
        return 1;
    }
    size = farpool_region_size(region);
    p = addr;
    for (uint64_t i = 0; i < size; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    printf("%016llx\n", (unsigned long long)h);
    fflush(stdout);
    snprintf(ready, sizeof(ready), "%s.ready", argv[3]);
    f = fopen(ready, "w");
    if (f == NULL || fclose(f) != 0) {
        fprintf(stderr, "mapwait: cannot create %s\n", ready);
        farpool_context_destroy(ctx);
        return 1;
    }
    for (int i = 0; i < WAIT_MS / 10 && access(argv[3], F_OK) != 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};

        nanosleep(&ts, NULL);
    }
    farpool_region_close(region);
    farpool_context_destroy(ctx);
    return 0;
}
