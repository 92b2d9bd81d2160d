/* quickstart.c: map a region of the pool, write it, read it back.
 *   cc quickstart.c $(pkg-config --cflags --libs farpool) -o quickstart
 *   ./quickstart 127.0.0.1:7070            (a farpoold listening there) */
#include <farpool/farpool.h>
#include <stdio.h>

#define CHECK(call)                                                                                \
    do {                                                                                           \
        fp_status_t s_ = (call);                                                                   \
        if (s_ != FP_OK) {                                                                         \
            fprintf(stderr, "quickstart: %s: %s\n", #call, fp_status_string(s_));                  \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(int argc, char **argv)
{
    const char *nodes[] = {argc > 1 ? argv[1] : "127.0.0.1:7070"};
    farpool_context_params_t p = {
        .field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_CACHE_BYTES,
        .nodes = nodes,
        .nnodes = 1,
        .cache_bytes = 64 << 20, /* the local cache: 64 MiB */
    };
    const size_t size = 256 << 20, n = size / sizeof(float);
    farpool_context_t *ctx;
    farpool_region_t *region;
    farpool_stats_t st;
    float *w;

    CHECK(farpool_context_create(&p, &ctx));
    /* 256 MiB of pool memory, fetched and cached in 2 MiB blocks. */
    CHECK(farpool_region_create(ctx, "quickstart", size, 2 << 20, &region));
    CHECK(farpool_map(region, (void **)&w));
    for (size_t i = 0; i < n; i += 1024) /* 4x the cache: blocks are evicted, written back */
        w[i] = (float)i;
    CHECK(farpool_sync(region)); /* every dirty block is on the node now */
    CHECK(farpool_unmap(region));

    CHECK(farpool_map(region, (void **)&w));      /* a fresh mapping: every byte from the node */
    CHECK(farpool_prefetch(region, w, 32 << 20)); /* the first 32 MiB, in the background */
    for (size_t i = 0; i < n; i += 1024) {
        if (w[i] != (float)i) {
            fprintf(stderr, "quickstart: w[%zu] is %g, not %zu\n", i, w[i], i);
            return 1;
        }
    }
    CHECK(farpool_region_stats(region, &st, sizeof(st)));
    printf("read back %zu MiB: %llu blocks fetched, fetch p50 %llu us\n", size >> 20,
           (unsigned long long)st.blocks_fetched, (unsigned long long)st.fetch_p50_ns / 1000);
    farpool_region_close(region);
    CHECK(farpool_region_delete(ctx, "quickstart"));
    farpool_context_destroy(ctx);
    return 0;
}
