/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench tiers`: the characterization of the memory tiers a user can
 * choose from, measured in one run: local DRAM, the pool over loopback, the
 * pool across a veth pair into a network namespace, and local disk read cold.
 * For each: the latency of random 4 KiB accesses (median and p99) and the
 * bandwidth of sequential access by block size, 4 KiB to 8 MiB. Markdown
 * tables on stdout (with ratios against local DRAM and against the disk of
 * the same run), tiers.csv and two PNG plots (gnuplot) in --out-dir.
 *
 * DESIGN
 *
 * Every tier holds the same bytes: a buffer of --size bytes (default 256 MiB)
 * of pseudo-random data whose 4 KiB pages each start with a word derived from
 * the page number. An access copies bytes out of the tier into a local buffer
 * (reused, so already touched) and checks that word, so no figure is that of
 * wrong bytes.
 *
 * - local DRAM: the buffer itself, touched. Random: memcpy() of a random 4 KiB
 *   page. Sequential: memcpy() of consecutive blocks. The destination is the
 *   same small buffer each time and stays in the CPU cache, as for every
 *   tier, so this is the bandwidth of reading DRAM, not of a DRAM-to-DRAM
 *   copy.
 * - pool (mapped), over loopback and across the namespace: a farpoold started
 *   here, named regions filled once through a mapping (then synced and
 *   unmapped), measured through fresh contexts and mappings, so every access
 *   is served by the node. Readahead (the automatic prefetcher) is off and the
 *   cache budget holds the whole region, so the block size alone shapes the
 *   traffic and nothing is evicted. Random: memcpy() of a random 4 KiB page of
 *   a region at 4 KiB granule, each page touched once (a fault served from the
 *   node). Sequential: for blocks of 4 KiB to 2 MiB, memcpy() of consecutive
 *   blocks of a region whose granule is the block size (one fault fetches one
 *   block); for 4 and 8 MiB (beyond the largest granule), a region at 2 MiB
 *   granule, with farpool_prefetch() of each block right before its memcpy(),
 *   so its 2 or 4 granules are fetched at once, as an application that knows
 *   it needs the whole block would ask.
 * - pool (node API): farpool_slab_read() of the block (or of a random 4 KiB
 *   page) from slabs of the same node, written with the same bytes. It shows
 *   the wire and the node without the fault path.
 * - pool across a network namespace: the namespace "farpool-tiers-PID", joined
 *   to the root namespace by a veth pair on a free 10.213.x.y/30, with
 *   farpoold inside (`ip netns exec`, with a secret: it is not on loopback);
 *   the client stays in the root namespace. Root only; skipped with the reason
 *   otherwise. See tiers_sys.h for its cleanup.
 * - local disk, cold: a file of --size bytes in --dir (default /var/tmp),
 *   written and synced once, read with O_DIRECT (random 4 KiB pread()s and
 *   sequential pread()s of the block size), so the page cache plays no part;
 *   the file's pages are dropped (POSIX_FADV_DONTNEED, checked with mincore())
 *   before each run all the same. A disk's own cache and the host's (on a VM)
 *   are out of reach. tmpfs is refused: it is memory.
 *
 * Order: a run measures the latency of each tier in turn, then the bandwidth
 * block size by block size, every tier in turn at each block size, so that
 * the ratios of a run compare figures taken seconds apart.
 *
 * Bounds: each bandwidth point reads --size bytes or for 2 s (0.25 s with
 * --quick), whichever ends first; each latency figure times --samples
 * distinct random pages (default 5000, 500 with --quick) or runs 3 s. Each
 * latency figure starts with 20 untimed accesses. Everything is repeated
 * --runs times (default 3; 1 with --quick); figures are medians over runs,
 * ratios are medians of per-run ratios (each against the baseline of the same
 * run); one line per series and run goes to stderr.
 *
 * Placement (--cpu, bench_common.h): by default the latency figures run this
 * program, its fault engine thread and the node on one CPU, the bandwidth
 * figures the program on one CPU and the node on the other.
 *
 * This is a benchmark: it gates on no figure. Exit 0 when it measured, 1 when
 * it could not, 2 on bad arguments. Children, namespace, files and regions
 * are cleaned up on every exit path, SIGINT/SIGTERM/SIGHUP included.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <farpool/farpool.h>

#include "bench_common.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/time.h"
#include "tiers.h"
#include "tiers_report.h"
#include "tiers_sys.h"

#define PFX            "farpool-bench tiers: "
#define PAGE           (4 * KIB)
#define MAX_RUNS       64
#define LAT_WARM       20
#define NGRAN          6 /* region granules: the first six block sizes, 4 KiB to 2 MiB */
#define GRAN_4K        0
#define GRAN_2M        5
#define MAX_BLOCK      (8 * MIB)
#define TIERS_SIZE_MIN (8 * MIB)
#define TIERS_SIZE_MAX GIB
#define SAMPLES_MAX    1000000u
#define CACHE_SLACK    (64 * MIB)
#define NODE_SLAB      (64 * MIB) /* farpoold's default slab size */
#define DISK_SLACK     (64 * MIB)
#define TMPFS_MAGIC_   0x01021994
#define RAMFS_MAGIC_   0x858458f6

typedef enum tier_id { TIER_DRAM, TIER_LOOPBACK, TIER_NETNS, TIER_DISK, NTIERS } tier_id_t;
static const char *const tier_names[NTIERS] = {"dram", "loopback", "netns", "disk"};

typedef struct tiers_cfg {
    unsigned runs;
    bool quick;
    uint64_t size;           /* bytes of each tier; per bandwidth point at most */
    unsigned samples;        /* random accesses per latency figure at most */
    uint64_t point_limit_ns; /* time limit of a bandwidth point */
    uint64_t lat_limit_ns;   /* time limit of a latency figure */
    const char *dir;         /* the disk tier's file goes here */
    const char *out_dir;     /* tiers.csv and the plots */
    const char *farpoold;    /* --farpoold, else farpoold_found */
    char farpoold_found[PATH_MAX];
    bool want[NTIERS];
    bench_cpus_t cpus;
} tiers_cfg_t;

typedef struct pool_region {
    char name[64];
    uint32_t granule;
    bool created;
} pool_region_t;

/* A pool tier: one node, its regions (mapped series) and slabs (node API series). */
typedef struct pool_tier {
    const char *what; /* "loopback" or "netns" */
    tiers_series_t s_map, s_api;
    bool netns; /* its node runs in the namespace (for CPU placement) */
    char addr[96];
    const char *secret_file; /* NULL on loopback */
    farpool_context_t *ctl;  /* creates, fills and deletes the regions */
    pool_region_t regions[NGRAN];
    farpool_node_t *node; /* the node API series */
    uint64_t *slabs;
    unsigned nslabs;
    uint64_t slab_size;
} pool_tier_t;

typedef struct tiers {
    tiers_cfg_t cfg;
    uint64_t seed, rng;
    uint8_t *src;      /* cfg.size bytes: the local DRAM tier, and what every tier holds */
    uint8_t *dst;      /* MAX_BLOCK bytes, page-aligned, touched: where accesses copy to */
    uint64_t *pages;   /* cfg.size / PAGE: random page orders */
    uint64_t *samples; /* cfg.samples latencies, ns */
    bool active[NTIERS];
    char why[NTIERS][320]; /* why a wanted tier is skipped */
    pool_tier_t pool[2];   /* loopback, netns */
    tiers_netns_t netns;
    char disk_path[4096];
    char disk_desc[320];
    int disk_fd;            /* O_DIRECT */
    int disk_cache_fd;      /* buffered, for fadvise and mincore */
    uint64_t disk_resident; /* pages found cached after the last drop */
} tiers_t;

/* ------------------------------------------------------------------------ */
/* Data                                                                     */
/* ------------------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static void src_fill(tiers_t *t)
{
    uint64_t *w = (uint64_t *)(void *)t->src, s = t->seed ^ 0x5DEECE66Dull;

    for (uint64_t i = 0; i < t->cfg.size / sizeof(uint64_t); i++)
        w[i] = rng_next(&s);
    for (uint64_t p = 0; p < t->cfg.size / PAGE; p++)
        w[p * (PAGE / sizeof(uint64_t))] = bench_page_word(t->seed, p);
}

static fp_status_t check_word(const tiers_t *t, const char *what, uint64_t off, const uint8_t *buf)
{
    uint64_t got, want = bench_page_word(t->seed, off / PAGE);

    memcpy(&got, buf, sizeof(got));
    if (got == want)
        return FP_OK;
    fprintf(stderr, PFX "%s: the page at offset %llu reads %#llx, it holds %#llx\n", what,
            (unsigned long long)off, (unsigned long long)got, (unsigned long long)want);
    return FP_ERR_PROTOCOL;
}

/* ------------------------------------------------------------------------ */
/* The two measurements, for any tier                                       */
/* ------------------------------------------------------------------------ */

/* Copy @len bytes at offset @off of the tier into @dst. */
typedef fp_status_t (*tiers_read_func_t)(void *arg, uint64_t off, size_t len, uint8_t *dst);

/*
 * Sequential: consecutive blocks of @block bytes from offset 0, until
 * cfg.size bytes or point_limit_ns. GB/s and bytes into @run.
 */
static fp_status_t seq_measure(tiers_t *t, const char *what, tiers_read_func_t fn, void *arg,
                               unsigned bidx, tiers_series_t s, tiers_run_t *run)
{
    uint64_t block = tiers_blocks[bidx], done = 0, t0, t1, deadline;
    unsigned i = 0;

    t0 = fp_time_ns();
    deadline = t0 + t->cfg.point_limit_ns;
    for (uint64_t off = 0; off + block <= t->cfg.size; off += block) {
        fp_status_t status = fn(arg, off, block, t->dst);

        if (status == FP_OK)
            status = check_word(t, what, off, t->dst);
        if (status != FP_OK)
            return status;
        done += block;
        if ((block >= 64 * KIB || (++i & 15) == 0) && fp_time_ns() >= deadline)
            break;
    }
    t1 = fp_time_ns();
    run->gbs[s][bidx] = (double)done / (double)(t1 - t0);
    run->gbs_bytes[s][bidx] = (double)done;
    return FP_OK;
}

/* Random distinct pages into t->pages[0..@count), @count <= cfg.size / PAGE. */
static void pages_pick(tiers_t *t, uint64_t count)
{
    uint64_t npages = t->cfg.size / PAGE;

    for (uint64_t i = 0; i < npages; i++)
        t->pages[i] = i;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t j = i + rng_next(&t->rng) % (npages - i), tmp = t->pages[i];

        t->pages[i] = t->pages[j];
        t->pages[j] = tmp;
    }
}

/*
 * Random 4 KiB: LAT_WARM untimed accesses, then up to cfg.samples timed ones
 * (within lat_limit_ns), each of a distinct random page. Median, p99 and
 * count into @run.
 */
static fp_status_t lat_measure(tiers_t *t, const char *what, tiers_read_func_t fn, void *arg,
                               tiers_series_t s, tiers_run_t *run)
{
    uint64_t npages = t->cfg.size / PAGE, count = t->cfg.samples + LAT_WARM, deadline;
    uint64_t warm = LAT_WARM;
    unsigned n = 0;

    if (count > npages)
        count = npages;
    if (warm > count / 4)
        warm = count / 4;
    if (count - warm > t->cfg.samples) /* t->samples holds cfg.samples */
        count = warm + t->cfg.samples;
    pages_pick(t, count);
    for (uint64_t i = 0; i < warm; i++) {
        fp_status_t status = fn(arg, t->pages[i] * PAGE, PAGE, t->dst);

        if (status == FP_OK)
            status = check_word(t, what, t->pages[i] * PAGE, t->dst);
        if (status != FP_OK)
            return status;
    }
    deadline = fp_time_ns() + t->cfg.lat_limit_ns;
    for (uint64_t i = warm; i < count; i++) {
        uint64_t off = t->pages[i] * PAGE, t0, t1;
        fp_status_t status;

        t0 = fp_time_ns();
        status = fn(arg, off, PAGE, t->dst);
        t1 = fp_time_ns();
        if (status == FP_OK)
            status = check_word(t, what, off, t->dst);
        if (status != FP_OK)
            return status;
        t->samples[n++] = t1 - t0;
        if (t1 >= deadline)
            break;
    }
    if (n == 0) {
        fprintf(stderr, PFX "%s: no random access timed\n", what);
        return FP_ERR_TIMED_OUT;
    }
    bench_lat_summary(t->samples, n, &run->lat_med[s], &run->lat_p99[s]);
    run->lat_n[s] = n;
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* Local DRAM                                                               */
/* ------------------------------------------------------------------------ */

static fp_status_t dram_read(void *arg, uint64_t off, size_t len, uint8_t *dst)
{
    const tiers_t *t = arg;

    memcpy(dst, t->src + off, len);
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* The pool                                                                 */
/* ------------------------------------------------------------------------ */

/* Where the pool tier's node goes for @phase, and this program. */
static void pool_place(const tiers_t *t, const pool_tier_t *p, bench_phase_t phase)
{
    const bench_cpus_t *cpus = &t->cfg.cpus;

    bench_cpus_place(cpus, phase);
    if (p->netns && cpus->mode != BENCH_CPU_NONE && cpus->cpu[0] >= 0)
        tiers_netns_node_pin(bench_phase_split(cpus, phase) ? cpus->cpu[1] : cpus->cpu[0]);
}

static fp_status_t pool_context(const tiers_t *t, const pool_tier_t *p, bool readahead,
                                bool prefault, farpool_context_t **ctx_p)
{
    const char *nodes[1] = {p->addr};
    farpool_context_params_t params;
    fp_status_t status;

    memset(&params, 0, sizeof(params));
    params.field_mask = FARPOOL_CONTEXT_PARAM_NODES | FARPOOL_CONTEXT_PARAM_CACHE_BYTES |
                        FARPOOL_CONTEXT_PARAM_TIMEOUT | FARPOOL_CONTEXT_PARAM_READAHEAD |
                        FARPOOL_CONTEXT_PARAM_PREFAULT;
    params.prefault = prefault;
    params.nodes = nodes;
    params.nnodes = 1;
    params.cache_bytes = t->cfg.size + CACHE_SLACK;
    params.timeout_ms = BENCH_IO_TIMEOUT_MS;
    params.readahead = readahead;
    if (p->secret_file != NULL) {
        params.field_mask |= FARPOOL_CONTEXT_PARAM_SECRET_FILE;
        params.secret_file = p->secret_file;
    }
    status = farpool_context_create(&params, ctx_p);
    if (status != FP_OK)
        fprintf(stderr, PFX "%s: context on %s: %s\n", p->what, p->addr,
                farpool_status_string(status));
    return status;
}

/* A mapping of one region in a context of its own. */
typedef struct mapping {
    farpool_context_t *ctx;
    farpool_region_t *region;
    uint8_t *addr;
    uint32_t granule;
} mapping_t;

/*
 * Open and map @r in a context of its own: to fill it (writable, read-ahead
 * on), or to read it (@reader: read-only, read-ahead off, the cache's memory
 * taken at map time, before any clock starts, as the other tiers' buffers are
 * touched before theirs).
 */
static fp_status_t mapping_open(const tiers_t *t, const pool_tier_t *p, const pool_region_t *r,
                                bool reader, mapping_t *m)
{
    void *addr;
    fp_status_t status;

    memset(m, 0, sizeof(*m));
    status = pool_context(t, p, !reader, reader, &m->ctx);
    if (status != FP_OK)
        return status;
    status = farpool_region_open(m->ctx, r->name, reader ? FARPOOL_REGION_READONLY : 0, &m->region);
    if (status == FP_OK)
        status = farpool_map(m->region, &addr);
    if (status != FP_OK) {
        fprintf(stderr, PFX "%s: open and map region %s: %s\n", p->what, r->name,
                farpool_status_string(status));
        farpool_context_destroy(m->ctx); /* closes the region */
        memset(m, 0, sizeof(*m));
        return status;
    }
    m->addr = addr;
    m->granule = r->granule;
    return FP_OK;
}

/* Unmap, close, disconnect; says so if the pass evicted or failed a fetch. */
static void mapping_close(const pool_tier_t *p, mapping_t *m)
{
    farpool_stats_t st;

    if (m->region != NULL && farpool_region_stats(m->region, &st, sizeof(st)) == FP_OK &&
        (st.evictions != 0 || st.fetch_errors != 0))
        fprintf(stderr, PFX "%s: %llu evictions, %llu fetch errors during a pass\n", p->what,
                (unsigned long long)st.evictions, (unsigned long long)st.fetch_errors);
    farpool_region_close(m->region);
    farpool_context_destroy(m->ctx);
    memset(m, 0, sizeof(*m));
}

static fp_status_t mapped_read(void *arg, uint64_t off, size_t len, uint8_t *dst)
{
    const mapping_t *m = arg;

    if (len > m->granule) {
        fp_status_t status = farpool_prefetch(m->region, m->addr + off, len);
        if (status != FP_OK) {
            fprintf(stderr, PFX "farpool_prefetch: %s\n", farpool_status_string(status));
            return status;
        }
    }
    memcpy(dst, m->addr + off, len);
    return FP_OK;
}

static fp_status_t api_read(void *arg, uint64_t off, size_t len, uint8_t *dst)
{
    const pool_tier_t *p = arg;

    while (len > 0) {
        uint64_t in = off % p->slab_size;
        size_t n = p->slab_size - in < len ? (size_t)(p->slab_size - in) : len;
        fp_status_t status = farpool_slab_read(p->node, p->slabs[off / p->slab_size], in, dst, n);

        if (status != FP_OK) {
            fprintf(stderr, PFX "%s: farpool_slab_read: %s\n", p->what,
                    farpool_status_string(status));
            return status;
        }
        off += n;
        dst += n;
        len -= n;
    }
    return FP_OK;
}

/* Create region @r and copy t->src into it through a mapping; sync and unmap. */
static fp_status_t region_fill(tiers_t *t, pool_tier_t *p, pool_region_t *r)
{
    farpool_region_t *region;
    mapping_t m;
    uint64_t t0 = fp_time_ns();
    fp_status_t status;

    status = farpool_region_create(p->ctl, r->name, t->cfg.size, r->granule, &region);
    if (status != FP_OK) {
        fprintf(stderr, PFX "%s: create region %s (%llu bytes, granule %u): %s\n", p->what, r->name,
                (unsigned long long)t->cfg.size, r->granule, farpool_status_string(status));
        return status;
    }
    r->created = true;
    farpool_region_close(region);
    status = mapping_open(t, p, r, false, &m);
    if (status != FP_OK)
        return status;
    memcpy(m.addr, t->src, t->cfg.size);
    status = farpool_sync(m.region);
    if (status == FP_OK)
        status = farpool_unmap(m.region);
    if (status != FP_OK)
        fprintf(stderr, PFX "%s: write back region %s: %s\n", p->what, r->name,
                farpool_status_string(status));
    mapping_close(p, &m);
    if (status == FP_OK)
        fprintf(stderr, PFX "%s: filled region %s in %.2f s\n", p->what, r->name,
                (double)(fp_time_ns() - t0) / 1e9);
    return status;
}

/* Regions at each granule, and slabs for the node API, all holding t->src. */
static fp_status_t pool_fill(tiers_t *t, pool_tier_t *p)
{
    farpool_node_params_t np;
    fp_status_t status;

    status = pool_context(t, p, true, false, &p->ctl);
    if (status != FP_OK)
        return status;
    for (unsigned g = 0; g < NGRAN; g++) {
        pool_region_t *r = &p->regions[g];

        r->granule = (uint32_t)tiers_blocks[g];
        snprintf(r->name, sizeof(r->name), "farpool-tiers.%d.%s.%u", (int)getpid(), p->what,
                 r->granule);
        status = region_fill(t, p, r);
        if (status != FP_OK)
            return status;
    }

    memset(&np, 0, sizeof(np));
    np.field_mask = FARPOOL_NODE_PARAM_TIMEOUT;
    np.timeout_ms = BENCH_IO_TIMEOUT_MS;
    if (p->secret_file != NULL) {
        np.field_mask |= FARPOOL_NODE_PARAM_SECRET_FILE;
        np.secret_file = p->secret_file;
    }
    status = farpool_node_connect(p->addr, &np, &p->node);
    if (status != FP_OK) {
        fprintf(stderr, PFX "%s: connect to %s: %s\n", p->what, p->addr,
                farpool_status_string(status));
        return status;
    }
    for (uint64_t off = 0; off < t->cfg.size;) {
        uint64_t id, slab_size;
        uint64_t *grown;

        status = farpool_slab_alloc(p->node, &id, &slab_size);
        if (status != FP_OK) {
            fprintf(stderr, PFX "%s: slab alloc: %s\n", p->what, farpool_status_string(status));
            return status;
        }
        grown = realloc(p->slabs, (p->nslabs + 1) * sizeof(*p->slabs));
        if (grown == NULL) {
            farpool_slab_free(p->node, id);
            fprintf(stderr, PFX "out of memory\n");
            return FP_ERR_NO_MEMORY;
        }
        p->slabs = grown;
        p->slabs[p->nslabs++] = id;
        if (p->slab_size == 0)
            p->slab_size = slab_size;
        if (slab_size != p->slab_size || slab_size % PAGE != 0) {
            fprintf(stderr, PFX "%s: odd slab size %llu\n", p->what, (unsigned long long)slab_size);
            return FP_ERR_PROTOCOL;
        }
        {
            uint64_t len = t->cfg.size - off < slab_size ? t->cfg.size - off : slab_size;

            status = farpool_slab_write(p->node, id, 0, t->src + off, len);
            if (status != FP_OK) {
                fprintf(stderr, PFX "%s: slab write: %s\n", p->what, farpool_status_string(status));
                return status;
            }
            off += len;
        }
    }
    return FP_OK;
}

/* Delete the regions, free the slabs, disconnect. */
static void pool_release(pool_tier_t *p)
{
    for (unsigned g = 0; g < NGRAN; g++) {
        pool_region_t *r = &p->regions[g];
        fp_status_t status;

        if (!r->created || p->ctl == NULL)
            continue;
        status = farpool_region_delete(p->ctl, r->name);
        if (status != FP_OK)
            fprintf(stderr, PFX "%s: delete region %s: %s\n", p->what, r->name,
                    farpool_status_string(status));
        r->created = false;
    }
    for (unsigned i = 0; i < p->nslabs && p->node != NULL; i++)
        farpool_slab_free(p->node, p->slabs[i]);
    free(p->slabs);
    p->slabs = NULL;
    p->nslabs = 0;
    farpool_node_close(p->node);
    p->node = NULL;
    farpool_context_destroy(p->ctl);
    p->ctl = NULL;
}

/* Random 4 KiB: first touches of a fresh mapping at 4 KiB granule, then node API reads. */
static fp_status_t pool_lat(tiers_t *t, pool_tier_t *p, tiers_run_t *run)
{
    char what[64];
    mapping_t m;
    fp_status_t status;

    pool_place(t, p, BENCH_PHASE_LATENCY);
    snprintf(what, sizeof(what), "%s (mapped)", p->what);
    status = mapping_open(t, p, &p->regions[GRAN_4K], true, &m);
    if (status != FP_OK)
        return status;
    status = lat_measure(t, what, mapped_read, &m, p->s_map, run);
    mapping_close(p, &m);
    if (status != FP_OK)
        return status;
    snprintf(what, sizeof(what), "%s (node API)", p->what);
    return lat_measure(t, what, api_read, p, p->s_api, run);
}

/* Sequential at block size @bidx: a fresh mapping, then the node API. */
static fp_status_t pool_seq(tiers_t *t, pool_tier_t *p, unsigned bidx, tiers_run_t *run)
{
    unsigned g = bidx < NGRAN ? bidx : GRAN_2M;
    char what[64];
    mapping_t m;
    fp_status_t status;

    pool_place(t, p, BENCH_PHASE_STREAM);
    snprintf(what, sizeof(what), "%s (mapped)", p->what);
    status = mapping_open(t, p, &p->regions[g], true, &m);
    if (status != FP_OK)
        return status;
    status = seq_measure(t, what, mapped_read, &m, bidx, p->s_map, run);
    mapping_close(p, &m);
    if (status != FP_OK)
        return status;
    snprintf(what, sizeof(what), "%s (node API)", p->what);
    return seq_measure(t, what, api_read, p, bidx, p->s_api, run);
}

/* ------------------------------------------------------------------------ */
/* Local disk                                                               */
/* ------------------------------------------------------------------------ */

static const char *fs_name(long type, char *buf, size_t len)
{
    switch ((unsigned long)type) {
    case 0xEF53:
        return "ext4";
    case 0x58465342:
        return "xfs";
    case 0x9123683E:
        return "btrfs";
    case 0x2FC12FC1:
        return "zfs";
    case 0xF2F52010:
        return "f2fs";
    case 0x794C7630:
        return "overlayfs";
    default:
        snprintf(buf, len, "filesystem %#lx", (unsigned long)type);
        return buf;
    }
}

/* "vda" for the block device holding @dir, or "an unknown device". */
static void dev_name(const char *dir, char *buf, size_t len)
{
    char link[128], target[512];
    struct stat st;
    ssize_t n;

    snprintf(buf, len, "an unknown device");
    if (stat(dir, &st) != 0)
        return;
    snprintf(link, sizeof(link), "/sys/dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
    n = readlink(link, target, sizeof(target) - 1);
    if (n <= 0)
        return;
    target[n] = '\0';
    snprintf(buf, len, "%.32s", strrchr(target, '/') != NULL ? strrchr(target, '/') + 1 : target);
}

/* Set up the disk tier; on a reason to skip it, t->why[TIER_DISK] says it. */
static fp_status_t disk_setup(tiers_t *t)
{
    char *why = t->why[TIER_DISK], fsbuf[48], dev[64];
    const size_t why_len = sizeof(t->why[TIER_DISK]);
    struct statfs sfs;
    struct statvfs svfs;
    fp_status_t status;

    if (statfs(t->cfg.dir, &sfs) != 0 || statvfs(t->cfg.dir, &svfs) != 0) {
        snprintf(why, why_len, "cannot use --dir %.200s: %s", t->cfg.dir, strerror(errno));
        return FP_ERR_IO;
    }
    if (sfs.f_type == TMPFS_MAGIC_ || sfs.f_type == RAMFS_MAGIC_) {
        snprintf(why, why_len, "%.200s is on tmpfs (memory, not a disk): choose --dir on a disk",
                 t->cfg.dir);
        return FP_ERR_UNSUPPORTED;
    }
    if ((uint64_t)svfs.f_bavail * svfs.f_frsize < t->cfg.size + DISK_SLACK) {
        snprintf(why, why_len, "%.200s has less than %llu MiB free", t->cfg.dir,
                 (unsigned long long)((t->cfg.size + DISK_SLACK) / MIB));
        return FP_ERR_NO_SPACE;
    }
    status =
        tiers_disk_file_create(t->cfg.dir, t->src, t->cfg.size, t->disk_path, sizeof(t->disk_path));
    if (status != FP_OK) {
        snprintf(why, why_len, "cannot write a file in %.200s (see above)", t->cfg.dir);
        return status;
    }
    t->disk_fd = open(t->disk_path, O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (t->disk_fd < 0) {
        snprintf(why, why_len, "%.200s: O_DIRECT: %s (the filesystem does not support it?)",
                 t->disk_path, strerror(errno));
        return FP_ERR_UNSUPPORTED;
    }
    t->disk_cache_fd = open(t->disk_path, O_RDONLY | O_CLOEXEC);
    if (t->disk_cache_fd < 0) {
        snprintf(why, why_len, "%.200s: %s", t->disk_path, strerror(errno));
        return FP_ERR_IO;
    }
    dev_name(t->cfg.dir, dev, sizeof(dev));
    snprintf(t->disk_desc, sizeof(t->disk_desc), "%.160s on %s (%s)", t->disk_path, dev,
             fs_name((long)sfs.f_type, fsbuf, sizeof(fsbuf)));
    return FP_OK;
}

/* Drop the file's cached pages; count those still cached (mincore). */
static void disk_drop(tiers_t *t)
{
    uint64_t npages = t->cfg.size / PAGE, resident = 0;
    unsigned char *vec;
    void *map;

    posix_fadvise(t->disk_cache_fd, 0, 0, POSIX_FADV_DONTNEED);
    map = mmap(NULL, t->cfg.size, PROT_READ, MAP_SHARED, t->disk_cache_fd, 0);
    vec = malloc(npages);
    if (map != MAP_FAILED && vec != NULL && mincore(map, t->cfg.size, vec) == 0) {
        for (uint64_t i = 0; i < npages; i++)
            resident += vec[i] & 1;
    }
    free(vec);
    if (map != MAP_FAILED)
        munmap(map, t->cfg.size);
    if (resident > 0)
        fprintf(stderr,
                PFX "disk: %llu of the file's pages still cached after "
                    "POSIX_FADV_DONTNEED (O_DIRECT reads bypass them)\n",
                (unsigned long long)resident);
    t->disk_resident = resident;
}

static fp_status_t disk_read(void *arg, uint64_t off, size_t len, uint8_t *dst)
{
    const tiers_t *t = arg;

    while (len > 0) {
        ssize_t n = pread(t->disk_fd, dst, len, (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, PFX "disk: pread %s: %s\n", t->disk_path,
                    n < 0 ? strerror(errno) : "end of file");
            return FP_ERR_IO;
        }
        off += (uint64_t)n;
        dst += n;
        len -= (size_t)n;
    }
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* Setup, runs, report                                                      */
/* ------------------------------------------------------------------------ */

/* farpoold's --capacity for a pool tier: NGRAN regions and the node API's slabs. */
static void node_capacity(const tiers_t *t, char *buf, size_t len)
{
    uint64_t per = (t->cfg.size + NODE_SLAB - 1) / NODE_SLAB * NODE_SLAB;

    snprintf(buf, len, "%lluM", (unsigned long long)(((NGRAN + 1) * per + NODE_SLAB) / MIB));
}

/*
 * The children first, before this process holds large buffers: farpoold on
 * loopback, the namespace and its farpoold. A tier that cannot be had is
 * skipped (t->why says why); a node that does not start is an error.
 */
static fp_status_t setup_nodes(tiers_t *t)
{
    char cap[32];
    fp_status_t status;

    node_capacity(t, cap, sizeof(cap));
    tiers_sys_stale(t->cfg.want[TIER_DISK] ? t->cfg.dir : NULL);
    if (t->cfg.want[TIER_LOOPBACK]) {
        pool_tier_t *p = &t->pool[0];

        status = bench_node_start(t->cfg.farpoold, cap, p->addr, sizeof(p->addr));
        if (status != FP_OK)
            return status;
        fprintf(stderr, PFX "loopback: farpoold at %s\n", p->addr);
    }
    if (t->cfg.want[TIER_NETNS]) {
        pool_tier_t *p = &t->pool[1];

        status = tiers_netns_create(&t->netns, t->why[TIER_NETNS], sizeof(t->why[TIER_NETNS]));
        if (status != FP_OK) {
            fprintf(stderr, PFX "netns tier skipped: %s\n", t->why[TIER_NETNS]);
            return FP_OK;
        }
        status = tiers_netns_node_start(&t->netns, t->cfg.farpoold, cap, p->addr, sizeof(p->addr),
                                        &p->secret_file);
        if (status != FP_OK)
            return status;
        fprintf(stderr, PFX "netns: farpoold at %s in namespace %s\n", p->addr, t->netns.ns);
    }
    return FP_OK;
}

/* Then what every tier holds: the pool's regions and slabs, the disk file. */
static fp_status_t setup_data(tiers_t *t)
{
    fp_status_t status;

    t->active[TIER_DRAM] = t->cfg.want[TIER_DRAM];
    for (unsigned i = 0; i < 2; i++) {
        tier_id_t k = i == 0 ? TIER_LOOPBACK : TIER_NETNS;

        if (!t->cfg.want[k] || t->pool[i].addr[0] == '\0')
            continue;
        status = pool_fill(t, &t->pool[i]);
        if (status != FP_OK)
            return status;
        t->active[k] = true;
    }
    if (t->cfg.want[TIER_DISK]) {
        if (disk_setup(t) == FP_OK)
            t->active[TIER_DISK] = true;
        else
            fprintf(stderr, PFX "disk tier skipped: %s\n", t->why[TIER_DISK]);
    }
    return FP_OK;
}

/*
 * One run: the latency of each tier in turn, then the bandwidth block size by
 * block size, every tier in turn at each, so that the ratios of a run compare
 * figures taken seconds apart.
 */
static fp_status_t run_once(tiers_t *t, tiers_run_t *run)
{
    fp_status_t status = FP_OK;

    tiers_run_clear(run);
    if (t->active[TIER_DISK])
        disk_drop(t);

    bench_cpus_place(&t->cfg.cpus, BENCH_PHASE_LATENCY);
    if (t->active[TIER_DRAM])
        status = lat_measure(t, "local DRAM", dram_read, t, TIERS_DRAM, run);
    for (unsigned i = 0; i < 2 && status == FP_OK; i++) {
        if (t->active[i == 0 ? TIER_LOOPBACK : TIER_NETNS])
            status = pool_lat(t, &t->pool[i], run);
    }
    if (status == FP_OK && t->active[TIER_DISK]) {
        bench_cpus_place(&t->cfg.cpus, BENCH_PHASE_LATENCY);
        status = lat_measure(t, "disk", disk_read, t, TIERS_DISK, run);
    }

    for (unsigned b = 0; b < TIERS_NBLOCKS && status == FP_OK; b++) {
        bench_cpus_place(&t->cfg.cpus, BENCH_PHASE_STREAM);
        if (t->active[TIER_DRAM])
            status = seq_measure(t, "local DRAM", dram_read, t, b, TIERS_DRAM, run);
        for (unsigned i = 0; i < 2 && status == FP_OK; i++) {
            if (t->active[i == 0 ? TIER_LOOPBACK : TIER_NETNS])
                status = pool_seq(t, &t->pool[i], b, run);
        }
        if (status == FP_OK && t->active[TIER_DISK]) {
            bench_cpus_place(&t->cfg.cpus, BENCH_PHASE_STREAM);
            status = seq_measure(t, "disk", disk_read, t, b, TIERS_DISK, run);
        }
    }
    return status;
}

static void print_header(const tiers_t *t)
{
    const tiers_cfg_t *c = &t->cfg;

    printf("## farpool-bench tiers\n\n");
    printf("- median of %u run%s%s; each bandwidth point reads %llu MiB or runs %.2f s, each "
           "latency figure times up to %u distinct random 4 KiB pages (or %.1f s)\n",
           c->runs, c->runs == 1 ? "" : "s", c->quick ? " (--quick)" : "",
           (unsigned long long)(c->size / MIB), (double)c->point_limit_ns / 1e9, c->samples,
           (double)c->lat_limit_ns / 1e9);
    if (t->active[TIER_DRAM])
        printf("- local DRAM: memcpy() from a touched %llu MiB buffer\n",
               (unsigned long long)(c->size / MIB));
    if (t->active[TIER_LOOPBACK])
        printf("- pool loopback: farpoold at %s\n", t->pool[0].addr);
    if (t->active[TIER_NETNS])
        printf("- pool netns: farpoold at %s in namespace %s, over veth %s (%s) <-> %s\n",
               t->pool[1].addr, t->netns.ns, t->netns.veth_host, t->netns.host_ip,
               t->netns.veth_node);
    if (t->active[TIER_LOOPBACK] || t->active[TIER_NETNS])
        printf("- pool (mapped): memcpy() from a read-only farpool_map() mapping, readahead "
               "off, a fresh mapping per figure with its cache memory taken at map (prefault); "
               "random = a first touch at 4 KiB granule; sequential = "
               "granule of the block size up to 2M, 4M/8M at 2 MiB granule with "
               "farpool_prefetch() of each block; (node API): farpool_slab_read()\n");
    if (t->active[TIER_DISK])
        printf("- local disk: %s, O_DIRECT pread(); file pages dropped before each run "
               "(POSIX_FADV_DONTNEED)\n",
               t->disk_desc);
    printf("- placement: latency %s; bandwidth %s\n",
           bench_phase_placement(&c->cpus, BENCH_PHASE_LATENCY),
           bench_phase_placement(&c->cpus, BENCH_PHASE_STREAM));
    for (unsigned k = 0; k < NTIERS; k++) {
        if (c->want[k] && !t->active[k])
            printf("- %s: skipped: %s\n", tier_names[k], t->why[k]);
    }
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: farpool-bench tiers [OPTIONS]\n"
            "Characterize the memory tiers: local DRAM, the pool over loopback, the pool across\n"
            "a network namespace (veth), local disk read cold. For each: latency of random\n"
            "4 KiB accesses (median, p99) and sequential bandwidth by block size, 4 KiB to\n"
            "8 MiB, with ratios against local DRAM and the disk of the same run. Markdown\n"
            "tables on stdout, tiers.csv and tiers_{latency,bandwidth}.png in --out-dir.\n\n"
            "  --runs N         repeat everything N times, report medians (default 3; 1 with\n"
            "                   --quick)\n"
            "  --quick          a smoke run: one run, --size 32M, 500 samples, 0.25 s per point\n"
            "  --size SIZE      bytes each tier holds and each bandwidth point reads at most\n"
            "                   (a multiple of 8M, 8M to 1G; default 256M); each pool tier's\n"
            "                   node holds about 7x this\n"
            "  --samples N      random accesses per latency figure at most (default 5000)\n"
            "  --tiers LIST     comma list of dram, loopback, netns, disk (default: all)\n"
            "  --dir DIR        where the disk tier's file goes (default /var/tmp; not tmpfs)\n"
            "  --out-dir DIR    where tiers.csv and the PNGs go (default: .)\n"
            "  --farpoold PATH  the daemon to run (default: the one beside this program, in\n"
            "                   the directory above it, or in PATH)\n"
            "  --cpu MODE       auto (default): latency all on one CPU, bandwidth this program\n"
            "                   and the node on two; split; same; none (no pinning)\n"
            "  -h, --help       show this help\n\n"
            "The netns tier needs root (it creates namespace farpool-tiers-PID and a veth pair\n"
            "on a free 10.213.x.y/30, and deletes them on exit); it is skipped otherwise.\n");
}

static int parse_tiers(const char *text, bool *want)
{
    char buf[256], *save = NULL, *tok;

    if (strlen(text) >= sizeof(buf))
        return -1;
    snprintf(buf, sizeof(buf), "%s", text);
    for (unsigned k = 0; k < NTIERS; k++)
        want[k] = false;
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        unsigned k;

        if (strcmp(tok, "all") == 0) {
            for (k = 0; k < NTIERS; k++)
                want[k] = true;
            continue;
        }
        for (k = 0; k < NTIERS && strcmp(tok, tier_names[k]) != 0; k++)
            ;
        if (k == NTIERS)
            return -1;
        want[k] = true;
    }
    for (unsigned k = 0; k < NTIERS; k++) {
        if (want[k])
            return 0;
    }
    return -1;
}

static int dir_check(const char *opt, const char *dir)
{
    struct stat st;

    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, PFX "%s %s: not a directory\nTry 'farpool-bench tiers --help'.\n", opt,
                dir);
        return -1;
    }
    if (access(dir, W_OK | X_OK) != 0) {
        fprintf(stderr, PFX "%s %s: not writable\nTry 'farpool-bench tiers --help'.\n", opt, dir);
        return -1;
    }
    return 0;
}

/* Parse @argv into @cfg; 0 to run, 1 for --help (printed), 2 on a usage error (said). */
static int parse_args(int argc, char **argv, tiers_cfg_t *cfg)
{
    enum {
        OPT_RUNS = 256,
        OPT_QUICK,
        OPT_SIZE,
        OPT_SAMPLES,
        OPT_TIERS,
        OPT_DIR,
        OPT_OUT_DIR,
        OPT_FARPOOLD,
        OPT_CPU
    };
    static const struct option options[] = {
        {"runs", required_argument, NULL, OPT_RUNS},
        {"quick", no_argument, NULL, OPT_QUICK},
        {"size", required_argument, NULL, OPT_SIZE},
        {"samples", required_argument, NULL, OPT_SAMPLES},
        {"tiers", required_argument, NULL, OPT_TIERS},
        {"dir", required_argument, NULL, OPT_DIR},
        {"out-dir", required_argument, NULL, OPT_OUT_DIR},
        {"farpoold", required_argument, NULL, OPT_FARPOOLD},
        {"cpu", required_argument, NULL, OPT_CPU},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bench_cpu_mode_t cpu_mode = BENCH_CPU_AUTO;
    bool runs_set = false, size_set = false, samples_set = false;
    int opt;

    memset(cfg, 0, sizeof(*cfg));
    cfg->runs = 3;
    cfg->dir = "/var/tmp";
    cfg->out_dir = ".";
    for (unsigned k = 0; k < NTIERS; k++)
        cfg->want[k] = true;

    optind = 1; /* argv[0] is "tiers" */
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_RUNS:
            if (bench_parse_uint(optarg, 1, MAX_RUNS, &cfg->runs) != 0)
                return bench_usage_error("tiers", "invalid --runs '%s' (1 to 64)", optarg);
            runs_set = true;
            break;
        case OPT_QUICK:
            cfg->quick = true;
            break;
        case OPT_SIZE:
            if (fp_parse_size(optarg, &cfg->size) != FP_OK || cfg->size < TIERS_SIZE_MIN ||
                cfg->size > TIERS_SIZE_MAX || cfg->size % MAX_BLOCK != 0)
                return bench_usage_error(
                    "tiers", "invalid --size '%s' (a multiple of 8M, 8M to 1G)", optarg);
            size_set = true;
            break;
        case OPT_SAMPLES:
            if (bench_parse_uint(optarg, 10, SAMPLES_MAX, &cfg->samples) != 0)
                return bench_usage_error("tiers", "invalid --samples '%s' (10 to 1000000)", optarg);
            samples_set = true;
            break;
        case OPT_TIERS:
            if (parse_tiers(optarg, cfg->want) != 0)
                return bench_usage_error("tiers",
                                         "invalid --tiers '%s' (a comma list of dram, loopback, "
                                         "netns, disk, or all)",
                                         optarg);
            break;
        case OPT_DIR:
            cfg->dir = optarg;
            break;
        case OPT_OUT_DIR:
            cfg->out_dir = optarg;
            break;
        case OPT_FARPOOLD:
            cfg->farpoold = optarg;
            break;
        case OPT_CPU:
            if (bench_cpu_mode_parse(optarg, &cpu_mode) != 0)
                return bench_usage_error("tiers", "invalid --cpu '%s' (auto, split, same or none)",
                                         optarg);
            break;
        case 'h':
            usage(stdout);
            return 1;
        case ':':
            return bench_usage_error("tiers", "option '%s' needs an argument", argv[optind - 1]);
        default:
            return bench_usage_error("tiers", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bench_usage_error("tiers", "unexpected argument '%s'", argv[optind]);
    if (cfg->want[TIER_DISK] && dir_check("--dir", cfg->dir) != 0)
        return 2;
    if (dir_check("--out-dir", cfg->out_dir) != 0)
        return 2;
    if (!size_set)
        cfg->size = cfg->quick ? 32 * MIB : 256 * MIB;
    if (!samples_set)
        cfg->samples = cfg->quick ? 500 : 5000;
    if (!runs_set && cfg->quick)
        cfg->runs = 1;
    cfg->point_limit_ns = (cfg->quick ? 250 : 2000) * FP_NS_PER_MS;
    cfg->lat_limit_ns = (cfg->quick ? 500 : 3000) * FP_NS_PER_MS;
    bench_cpus_find(cpu_mode, &cfg->cpus);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static fp_status_t buffers_alloc(tiers_t *t)
{
    void *dst;

    t->src = malloc(t->cfg.size);
    t->pages = malloc(t->cfg.size / PAGE * sizeof(*t->pages));
    t->samples = malloc(t->cfg.samples * sizeof(*t->samples));
    dst = mmap(NULL, MAX_BLOCK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    t->dst = dst == MAP_FAILED ? NULL : dst;
    if (t->src == NULL || t->pages == NULL || t->samples == NULL || t->dst == NULL) {
        fprintf(stderr, PFX "out of memory\n");
        return FP_ERR_NO_MEMORY;
    }
    memset(t->dst, 0, MAX_BLOCK);
    src_fill(t);
    return FP_OK;
}

static void teardown(tiers_t *t)
{
    pool_release(&t->pool[0]);
    pool_release(&t->pool[1]);
    if (t->disk_fd >= 0)
        close(t->disk_fd);
    if (t->disk_cache_fd >= 0)
        close(t->disk_cache_fd);
    t->disk_fd = t->disk_cache_fd = -1;
    tiers_sys_cleanup(); /* the nodes, the namespace, the file */
    free(t->src);
    free(t->pages);
    free(t->samples);
    if (t->dst != NULL)
        munmap(t->dst, MAX_BLOCK);
    t->src = t->dst = NULL;
    t->pages = t->samples = NULL;
}

static int report(const tiers_t *t, const tiers_run_t *runs)
{
    tiers_summary_t sum;
    char csv[4352];
    bool any = false;
    int rc = 0, plot;

    tiers_summarize(runs, t->cfg.runs, &sum);
    for (unsigned s = 0; s < TIERS_NSERIES; s++)
        any = any || sum.present[s];
    if (!any) {
        fprintf(stderr, PFX "no tier could be measured (see above)\n");
        return 1;
    }
    print_header(t);
    tiers_print_tables(&sum);
    printf("\nRatios are medians of per-run ratios against the baseline of the same run: "
           "latency ratios > 1 are slower, bandwidth ratios > 1 faster. Disk: O_DIRECT, so the "
           "page cache plays no part; the device's (and a VM host's) cache may.\n");
    snprintf(csv, sizeof(csv), "%s/tiers.csv", t->cfg.out_dir);
    if (tiers_write_csv(csv, &sum) != 0)
        return 1;
    printf("\nCSV: %s\n", csv);
    plot = tiers_plot(t->cfg.out_dir, &sum);
    if (plot == 0)
        printf("plots: %s/tiers_bandwidth.png, %s/tiers_latency.png\n", t->cfg.out_dir,
               t->cfg.out_dir);
    else if (plot < 0)
        rc = 1;
    return rc;
}

int bench_tiers_main(int argc, char **argv)
{
    static tiers_t t;
    static tiers_run_t runs[MAX_RUNS];
    fp_status_t status;
    int rc;

    memset(&t, 0, sizeof(t));
    t.disk_fd = t.disk_cache_fd = -1;
    t.pool[0].what = "loopback";
    t.pool[0].s_map = TIERS_LO_MAP;
    t.pool[0].s_api = TIERS_LO_API;
    t.pool[1].what = "netns";
    t.pool[1].s_map = TIERS_NS_MAP;
    t.pool[1].s_api = TIERS_NS_API;
    t.pool[1].netns = true;

    rc = parse_args(argc, argv, &t.cfg);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    bench_init("farpool-bench-tiers");
    if (t.cfg.farpoold == NULL) {
        t.cfg.farpoold = t.cfg.farpoold_found;
        if (!bench_farpoold_find(t.cfg.farpoold_found, sizeof(t.cfg.farpoold_found)) &&
            (t.cfg.want[TIER_LOOPBACK] || t.cfg.want[TIER_NETNS])) {
            fprintf(stderr, PFX "farpoold not found beside this program, in the directory above "
                                "it or in PATH (use --farpoold PATH)\n");
            return 1;
        }
    }
    tiers_sys_init();
    t.seed = fp_time_ns() | 1;
    t.rng = t.seed ^ 0x9E3779B97F4A7C15ull;

    rc = 1;
    status = setup_nodes(&t);
    if (status == FP_OK)
        status = buffers_alloc(&t);
    if (status == FP_OK)
        status = setup_data(&t);
    for (unsigned i = 0; i < t.cfg.runs && status == FP_OK; i++) {
        status = run_once(&t, &runs[i]);
        if (status == FP_OK)
            tiers_print_run(stderr, i, t.cfg.runs, &runs[i]);
    }
    if (status == FP_OK)
        rc = report(&t, runs);
    fflush(stdout);
    teardown(&t);
    return rc;
}
