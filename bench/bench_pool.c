/* SPDX-License-Identifier: MIT */
/*
 * bench_pool: the pool (farpoold --meta-dir and --pool members, regions
 * spread over them with replicas) against baselines measured in the same
 * run. Three measurements, one per subcommand:
 *
 * stripe: is a region striped over three memory nodes read three times as
 *    fast as one node can send? Three members, each in a network namespace
 *    of its own behind a veth pair whose node end sends through tbf at rate
 *    R (pool_netns.sh makes them; bench_pool runs itself under it). In one
 *    run: (a) the raw TCP stream through each shaped link, one at a time (R
 *    as achieved), and through the three at once; (b) a sequential first
 *    touch, every word checked, of a region striped over the three (replicas
 *    1, 2 MiB slabs and granule: each block is a slab placed on its own, so
 *    the read-ahead's window of up to 32 blocks spans all three nodes); (c)
 *    the same read of a region of a pool of one, a fourth farpoold in the
 *    first namespace, behind the same shaped link. Ratios: striped / 3R and
 *    striped / one node.
 *
 * failover: what a reader sees when a member dies. A pool of three on
 *    loopback (the metadata node with a short --dead-after), a region with 2
 *    copies of each slab; a thread scans a fresh read-only mapping of it,
 *    timing every 4 KiB access, and a member holding copies is killed with
 *    SIGKILL a third of the way through. Reported: the longest access of
 *    the scan (and that of a scan with no kill, the same run), and repair:
 *    the copies the dead member held times the slab size, over the time from
 *    the kill until the pool says the region is healthy again. Between kills
 *    the member is restarted empty on its address and the pool waited for.
 *
 * fault: the fault path must not get slower with the pool. bench_fault's
 *    random 4 KiB fault (4 KiB granule, each page once, read-only, cache
 *    memory taken at map) and 2 MiB-granule first touch, on a region of a
 *    pool of three loopback members with 2 copies against a region of a pool
 *    of one, the two alternating in one run.
 *
 * Regions are filled once through a writable mapping (one word per 4 KiB
 * page), synced and closed (which gives the writer lease up: a region held
 * by a writer is not repaired), and every measured pass maps them afresh.
 * Figures are medians of --runs runs; one line per run goes to stderr. This
 * is a benchmark, not a test: it prints tables and gates on nothing; its exit
 * status says only whether it could measure. Children are stopped and
 * temporary files removed on every exit path (pool_sys.c); the namespaces
 * are pool_netns.sh's to delete.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <farpool/farpool.h>

#include "bench_common.h"
#include "client/pool.h"
#include "common/parse.h"
#include "common/time.h"
#include "pool_sys.h"

#define PAGE        (4 * KIB)
#define MAX_RUNS    64
#define MAX_KILLS   64
#define POOL_MAX    4      /* members of one pool */
#define LAT_BLOCK   100    /* the two pools take turns in blocks of this many accesses */
#define LAT_WARM    100    /* untimed accesses of each pool first */
#define STREAM_SLOT 8      /* receive buffers of a raw stream, BENCH_RAW_STREAM_IO each */
#define POLL_MS     100    /* how often the pool's state is read while waiting */
#define HEALTH_MS   120000 /* a wait for the pool to be healthy gives up after this */

/* Targets of the issue. */
#define TARGET_STRIPE_RAW 0.8  /* striped >= 0.8 x (3 x R) */
#define TARGET_STRIPE_ONE 2.4  /* striped >= 2.4 x one node */
#define TARGET_FAULT      0.05 /* the pool within 5% of one node */

typedef enum pool_mode { MODE_STRIPE, MODE_FAILOVER, MODE_FAULT } pool_mode_t;

typedef struct cfg {
    pool_mode_t mode;
    unsigned runs;
    bool quick;
    const char *farpoold;
    bench_cpus_t cpus;
    uint64_t size;         /* region size */
    uint32_t granule;      /* failover: region granule */
    const char *slab_size; /* failover: --slab-size of its members; NULL: farpoold's */
    const char *dead_after;
    const char *repair_rate;
    unsigned kills;
    const char *rate; /* stripe: --rate as given */
    const char *netns_script;
    uint64_t raw_bytes, raw_warm, raw_limit_ns; /* one slice of a raw stream */
    unsigned rand_count;
    uint64_t rand_limit_ns;
    uint64_t rand_size;
} cfg_t;

/* A pool this program started: node[0] is its metadata node. */
typedef struct bpool {
    const char *label;
    unsigned n;
    pool_node_t node[POOL_MAX];
    char url[96];
    const char *secret; /* the secret file, or NULL (loopback) */
} bpool_t;

/* A region of a pool, filled once. */
typedef struct bregion {
    char name[64];
    bpool_t *pool;
    uint64_t size;
    uint32_t granule;
    uint32_t replicas;
    uint64_t seed;
    bool created;
} bregion_t;

/* A mapping of a region in a context of its own. */
typedef struct mapping {
    farpool_context_t *ctx;
    farpool_region_t *region;
    const uint8_t *addr;
} mapping_t;

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static double median_of(const double *v, unsigned n)
{
    double tmp[MAX_KILLS > MAX_RUNS ? MAX_KILLS : MAX_RUNS];

    if (n == 0)
        return NAN;
    memcpy(tmp, v, n * sizeof(*v));
    return bench_median(tmp, n);
}

static void loadavg(char *buf, size_t len)
{
    FILE *f = fopen("/proc/loadavg", "r");

    snprintf(buf, len, "?");
    if (f != NULL) {
        if (fgets(buf, (int)len, f) != NULL) {
            char *sp = buf;

            for (int i = 0; i < 3 && sp != NULL; i++)
                sp = strchr(sp + 1, ' ');
            if (sp != NULL)
                *sp = '\0';
        }
        fclose(f);
    }
}

static void pin_self(int cpu)
{
    cpu_set_t set;

    if (cpu < 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
        fprintf(stderr, "%s: cannot pin to CPU %d: %s\n", bench_prog, cpu, strerror(errno));
}

/* Streams: this program on one CPU, every child on the other; latency: all on one. */
static void place(const cfg_t *cfg, bench_phase_t phase)
{
    const bench_cpus_t *c = &cfg->cpus;

    if (c->mode == BENCH_CPU_NONE || c->cpu[0] < 0)
        return;
    pin_self(c->cpu[0]);
    pool_sys_pin_children(bench_phase_split(c, phase) ? c->cpu[1] : c->cpu[0]);
}

/*
 * CPU time of the machine and of this run's own processes, so that a run can
 * say how much of the machine others took meanwhile (the machines are shared).
 */
typedef struct cpu_mark {
    uint64_t machine; /* user + nice + system of every CPU, clock ticks */
    uint64_t total;   /* every CPU's ticks, idle included */
    uint64_t ours;    /* this process and its running children */
    unsigned ncpu;
} cpu_mark_t;

static void cpu_mark(cpu_mark_t *m)
{
    unsigned long long v[8] = {0};
    char line[256];
    FILE *f = fopen("/proc/stat", "r");

    memset(m, 0, sizeof(*m));
    m->ours = pool_sys_proc_ticks(0) + pool_sys_children_ticks();
    if (f == NULL)
        return;
    if (fgets(line, sizeof(line), f) != NULL &&
        sscanf(line, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7]) == 8) {
        m->machine = v[0] + v[1] + v[2];
        for (unsigned i = 0; i < 8; i++)
            m->total += v[i];
        while (fgets(line, sizeof(line), f) != NULL)
            if (strncmp(line, "cpu", 3) == 0 && line[3] >= '0' && line[3] <= '9')
                m->ncpu++;
    }
    fclose(f);
}

/*
 * CPUs (0 to ncpu) that processes other than ours kept busy from @a to @b, in
 * user and system time: an estimate (softirq work is left out on both sides).
 */
static double cpu_others(const cpu_mark_t *a, const cpu_mark_t *b)
{
    double busy, ours;

    if (b->ncpu == 0 || b->total <= a->total)
        return NAN;
    busy = (double)(b->machine - a->machine);
    ours = (double)(b->ours - a->ours);
    return busy > ours ? (busy - ours) / (double)(b->total - a->total) * b->ncpu : 0.0;
}

/* ------------------------------------------------------------------------ */
/* Pools                                                                    */
/* ------------------------------------------------------------------------ */

static fp_status_t meta_connect(const bpool_t *p, farpool_node_t **meta_p)
{
    farpool_node_params_t np;
    fp_status_t status;

    memset(&np, 0, sizeof(np));
    np.field_mask = FARPOOL_NODE_PARAM_TIMEOUT;
    np.timeout_ms = BENCH_IO_TIMEOUT_MS;
    if (p->secret != NULL) {
        np.field_mask |= FARPOOL_NODE_PARAM_SECRET_FILE;
        np.secret_file = p->secret;
    }
    status = farpool_node_connect(p->node[0].addr, &np, meta_p);
    if (status != FP_OK)
        fprintf(stderr, "%s: connect to the metadata node %s: %s\n", bench_prog, p->node[0].addr,
                farpool_status_string(status));
    return status;
}

/* Live members of @p whose address is one of ours (and, if @addr, that one). */
static fp_status_t pool_live(const bpool_t *p, const char *addr, unsigned *live_p)
{
    fp_pool_node_entry_t *nodes = NULL;
    farpool_node_t *meta;
    size_t count = 0;
    unsigned live = 0;
    fp_status_t status = meta_connect(p, &meta);

    if (status != FP_OK)
        return status;
    status = fp_pool_nodes(meta, &nodes, &count);
    farpool_node_close(meta);
    if (status != FP_OK) {
        fprintf(stderr, "%s: list the members of %s: %s\n", bench_prog, p->url,
                farpool_status_string(status));
        return status;
    }
    for (size_t i = 0; i < count; i++) {
        if (nodes[i].state != FP_POOL_NODE_LIVE)
            continue;
        if (addr != NULL ? strcmp(nodes[i].addr, addr) == 0 : true)
            live++;
    }
    free(nodes);
    *live_p = live;
    return FP_OK;
}

/*
 * The member id of the live member at @addr. A restarted member is a new
 * member at the same address: the pool keeps the old one's record (dead, then
 * gone), so a member is followed by its id, never by its address.
 */
static fp_status_t pool_member_id(const bpool_t *p, const char *addr, uint64_t *id_p)
{
    fp_pool_node_entry_t *nodes = NULL;
    farpool_node_t *meta;
    size_t count = 0;
    fp_status_t status = meta_connect(p, &meta);

    if (status != FP_OK)
        return status;
    status = fp_pool_nodes(meta, &nodes, &count);
    farpool_node_close(meta);
    if (status != FP_OK) {
        fprintf(stderr, "%s: list the members of %s: %s\n", bench_prog, p->url,
                farpool_status_string(status));
        return status;
    }
    status = FP_ERR_NO_ENTRY;
    for (size_t i = 0; i < count; i++) {
        if (nodes[i].state == FP_POOL_NODE_LIVE && strcmp(nodes[i].addr, addr) == 0) {
            *id_p = nodes[i].member;
            status = FP_OK;
        }
    }
    free(nodes);
    if (status != FP_OK)
        fprintf(stderr, "%s: %s lists no live member at %s\n", bench_prog, p->url, addr);
    return status;
}

/* Wait until @want members are live (or, with @addr, until @addr is). */
static fp_status_t pool_wait_live(const bpool_t *p, const char *addr, unsigned want)
{
    uint64_t deadline = fp_time_ns() + HEALTH_MS * FP_NS_PER_MS;

    for (;;) {
        unsigned live = 0;
        fp_status_t status = pool_live(p, addr, &live);

        if (status != FP_OK)
            return status;
        if (live >= want)
            return FP_OK;
        if (fp_time_ns() > deadline) {
            fprintf(stderr, "%s: %s: %u of %u members live after %d s\n", bench_prog, p->url, live,
                    want, HEALTH_MS / 1000);
            return FP_ERR_TIMED_OUT;
        }
        bench_sleep_ms(POLL_MS);
    }
}

/*
 * Start pool @p of @n members: member i in namespace @ns[i] ("" or NULL:
 * this one) on address @ip[i]; the first is the metadata node.
 */
static fp_status_t pool_start(bpool_t *p, const char *label, unsigned n, const char *const *ns,
                              const char *const *ip, const pool_node_opts_t *opts)
{
    fp_status_t status;

    memset(p, 0, sizeof(*p));
    p->label = label;
    p->n = n;
    p->secret = opts->secret ? pool_sys_secret_file() : NULL;
    if (opts->secret && p->secret == NULL)
        return FP_ERR_IO;
    for (unsigned i = 0; i < n; i++) {
        pool_node_t *m = &p->node[i];

        pool_node_init(m);
        snprintf(m->ns, sizeof(m->ns), "%s", ns != NULL && ns[i] != NULL ? ns[i] : "");
        snprintf(m->ip, sizeof(m->ip), "%s", ip[i]);
        m->opts = *opts;
        if (i > 0)
            snprintf(m->meta_url, sizeof(m->meta_url), "%s", p->url);
        status = pool_node_start(m);
        if (status != FP_OK)
            return status;
        if (i == 0)
            snprintf(p->url, sizeof(p->url), "farpool://%s", m->addr);
    }
    return pool_wait_live(p, NULL, n);
}

static void pool_stop(bpool_t *p)
{
    for (unsigned i = p->n; i-- > 0;)
        pool_node_stop(&p->node[i]);
}

static fp_status_t ctx_new(const bpool_t *p, uint64_t cache_bytes, bool prefault,
                           farpool_context_t **ctx_p)
{
    farpool_context_params_t cp;
    fp_status_t status;

    memset(&cp, 0, sizeof(cp));
    cp.field_mask = FARPOOL_CONTEXT_PARAM_POOL | FARPOOL_CONTEXT_PARAM_CACHE_BYTES |
                    FARPOOL_CONTEXT_PARAM_TIMEOUT | FARPOOL_CONTEXT_PARAM_PREFAULT;
    cp.pool = p->url;
    cp.cache_bytes = cache_bytes;
    cp.timeout_ms = BENCH_IO_TIMEOUT_MS;
    cp.prefault = prefault;
    if (p->secret != NULL) {
        cp.field_mask |= FARPOOL_CONTEXT_PARAM_SECRET_FILE;
        cp.secret_file = p->secret;
    }
    status = farpool_context_create(&cp, ctx_p);
    if (status != FP_OK)
        fprintf(stderr, "%s: context of pool %s: %s\n", bench_prog, p->url,
                farpool_status_string(status));
    return status;
}

/* Cache budget of a mapping of @r: the region and room to spare. */
static uint64_t budget_of(const bregion_t *r)
{
    return r->size + 64 * MIB;
}

static fp_status_t mapping_open(const bregion_t *r, bool prefault, mapping_t *m)
{
    void *addr;
    fp_status_t status;

    memset(m, 0, sizeof(*m));
    status = ctx_new(r->pool, budget_of(r), prefault, &m->ctx);
    if (status != FP_OK)
        return status;
    status = farpool_region_open(m->ctx, r->name, FARPOOL_REGION_READONLY, &m->region);
    if (status == FP_OK)
        status = farpool_map(m->region, &addr);
    if (status != FP_OK) {
        fprintf(stderr, "%s: open and map region %s: %s\n", bench_prog, r->name,
                farpool_status_string(status));
        farpool_region_close(m->region);
        farpool_context_destroy(m->ctx);
        memset(m, 0, sizeof(*m));
        return status;
    }
    m->addr = addr;
    return FP_OK;
}

static void mapping_close(mapping_t *m)
{
    farpool_region_close(m->region);
    farpool_context_destroy(m->ctx);
    memset(m, 0, sizeof(*m));
}

/*
 * Create region @r in its pool and write one word per 4 KiB page through a
 * writable mapping, sync, close: its bytes then live on the members only,
 * and the writer lease is given up.
 */
static fp_status_t region_fill(bregion_t *r)
{
    farpool_region_params_t rp;
    farpool_context_t *ctx;
    farpool_region_t *region = NULL;
    uint64_t t0, t1, t2, pages = r->size / PAGE;
    void *addr;
    fp_status_t status;

    status = ctx_new(r->pool, budget_of(r), false, &ctx);
    if (status != FP_OK)
        return status;
    memset(&rp, 0, sizeof(rp));
    rp.field_mask = FARPOOL_REGION_PARAM_GRANULE | FARPOOL_REGION_PARAM_REPLICAS;
    rp.granule = r->granule;
    rp.replicas = r->replicas;
    status = farpool_region_create_ex(ctx, r->name, r->size, &rp, &region);
    if (status != FP_OK) {
        fprintf(stderr, "%s: create region %s (%llu MiB, granule %u KiB, %u copies) in %s: %s\n",
                bench_prog, r->name, (unsigned long long)(r->size / MIB), r->granule >> 10,
                r->replicas, r->pool->url, farpool_status_string(status));
        farpool_context_destroy(ctx);
        return status;
    }
    r->created = true;
    r->seed = rng_next() | 1;
    status = farpool_map(region, &addr);
    if (status != FP_OK) {
        fprintf(stderr, "%s: map region %s: %s\n", bench_prog, r->name,
                farpool_status_string(status));
        goto out;
    }
    t0 = fp_time_ns();
    for (uint64_t pg = 0; pg < pages; pg++)
        *(volatile uint64_t *)((uint8_t *)addr + pg * PAGE) = bench_page_word(r->seed, pg);
    t1 = fp_time_ns();
    status = farpool_sync(region);
    t2 = fp_time_ns();
    if (status == FP_OK)
        status = farpool_unmap(region);
    if (status != FP_OK)
        fprintf(stderr, "%s: write back region %s: %s\n", bench_prog, r->name,
                farpool_status_string(status));
    else
        fprintf(stderr,
                "%s: filled %s: %llu MiB, granule %u KiB, %u cop%s: writes %.2f s, sync %.2f s\n",
                bench_prog, r->name, (unsigned long long)(r->size / MIB), r->granule >> 10,
                r->replicas, r->replicas == 1 ? "y" : "ies", (double)(t1 - t0) / 1e9,
                (double)(t2 - t1) / 1e9);
out:
    farpool_region_close(region);
    farpool_context_destroy(ctx);
    return status;
}

static void region_delete(bregion_t *r)
{
    farpool_context_t *ctx;
    fp_status_t status;

    if (!r->created)
        return;
    r->created = false;
    if (ctx_new(r->pool, 64 * MIB, false, &ctx) != FP_OK)
        return;
    status = farpool_region_delete(ctx, r->name);
    if (status != FP_OK)
        fprintf(stderr, "%s: delete region %s: %s\n", bench_prog, r->name,
                farpool_status_string(status));
    farpool_context_destroy(ctx);
}

static void region_init(bregion_t *r, bpool_t *p, const char *tag, uint64_t size, uint32_t granule,
                        uint32_t replicas)
{
    memset(r, 0, sizeof(*r));
    r->pool = p;
    r->size = size;
    r->granule = granule;
    r->replicas = replicas;
    snprintf(r->name, sizeof(r->name), "bench_pool.%d.%s", (int)getpid(), tag);
}

static fp_status_t check_word(const bregion_t *r, uint64_t page, uint64_t got)
{
    if (got == bench_page_word(r->seed, page))
        return FP_OK;
    fprintf(stderr, "%s: region %s page %llu reads %#llx, the fill wrote %#llx\n", bench_prog,
            r->name, (unsigned long long)page, (unsigned long long)got,
            (unsigned long long)bench_page_word(r->seed, page));
    return FP_ERR_PROTOCOL;
}

static void check_stats(const bregion_t *r, const farpool_stats_t *st)
{
    if (st->evictions != 0 || st->fetch_errors != 0)
        fprintf(stderr, "%s: region %s: %llu evictions, %llu fetch errors during a pass\n",
                bench_prog, r->name, (unsigned long long)st->evictions,
                (unsigned long long)st->fetch_errors);
}

/* The description of region @r from its pool's list. */
static fp_status_t region_desc(const bregion_t *r, farpool_node_t *meta,
                               fp_pool_region_desc_t *desc_p)
{
    fp_pool_region_desc_t *regions = NULL;
    size_t count = 0;
    fp_status_t status = fp_pool_regions(meta, &regions, &count);

    if (status != FP_OK) {
        fprintf(stderr, "%s: list the regions of %s: %s\n", bench_prog, r->pool->url,
                farpool_status_string(status));
        return status;
    }
    status = FP_ERR_NO_ENTRY;
    for (size_t i = 0; i < count; i++) {
        if (strcmp(regions[i].name.text, r->name) == 0) {
            *desc_p = regions[i];
            status = FP_OK;
            break;
        }
    }
    free(regions);
    if (status != FP_OK)
        fprintf(stderr, "%s: the pool %s does not list region %s\n", bench_prog, r->pool->url,
                r->name);
    return status;
}

/* Copies of @r's slabs on each member of its pool (by address), into @copies[POOL_MAX]. */
static fp_status_t region_copies(const bregion_t *r, unsigned *copies)
{
    fp_pool_region_desc_t desc;
    fp_region_map_t map;
    farpool_node_t *meta;
    fp_status_t status = meta_connect(r->pool, &meta);

    memset(copies, 0, POOL_MAX * sizeof(*copies));
    if (status != FP_OK)
        return status;
    status = region_desc(r, meta, &desc);
    if (status == FP_OK) {
        memset(&map, 0, sizeof(map));
        status = fp_pool_region_map(meta, &desc, &map);
        if (status != FP_OK)
            fprintf(stderr, "%s: the map of region %s: %s\n", bench_prog, r->name,
                    farpool_status_string(status));
    }
    farpool_node_close(meta);
    if (status != FP_OK)
        return status;
    for (uint32_t i = 0; i < map.nslabs; i++) {
        for (uint32_t k = 0; k < map.replicas; k++) {
            const fp_map_replica_t *rep = fp_region_map_at(&map, i, k);

            if (rep->node == FP_MAP_NO_NODE)
                continue;
            for (unsigned m = 0; m < r->pool->n; m++)
                if (strcmp(map.nodes[rep->node], r->pool->node[m].addr) == 0)
                    copies[m]++;
        }
    }
    fp_region_map_cleanup(&map);
    return FP_OK;
}

/* Bytes each member of @p has served (farpool_node_stats() bytes_read), into @bytes. */
static void pool_bytes_read(const bpool_t *p, uint64_t *bytes)
{
    farpool_node_params_t np;

    memset(&np, 0, sizeof(np));
    np.field_mask = FARPOOL_NODE_PARAM_TIMEOUT;
    np.timeout_ms = BENCH_IO_TIMEOUT_MS;
    if (p->secret != NULL) {
        np.field_mask |= FARPOOL_NODE_PARAM_SECRET_FILE;
        np.secret_file = p->secret;
    }
    for (unsigned i = 0; i < p->n; i++) {
        farpool_node_stats_t st;
        farpool_node_t *node;

        bytes[i] = 0;
        if (farpool_node_connect(p->node[i].addr, &np, &node) != FP_OK)
            continue;
        if (farpool_node_stats(node, &st, sizeof(st)) == FP_OK)
            bytes[i] = st.bytes_read;
        farpool_node_close(node);
    }
}

/* ------------------------------------------------------------------------ */
/* Sequential first touch                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Touch one word per 4 KiB page of a fresh read-only mapping of @r, in
 * order, checking each; its cache memory is taken at map time, after the
 * guest's memory was made resident (bench_warm_memory()), so the figure is
 * the fetch path's, not this guest's allocation of new memory.
 */
static fp_status_t seq_pass(const bregion_t *r, double *gbs_p)
{
    uint64_t pages = r->size / PAGE, bad_page = UINT64_MAX, bad_word = 0, t0, t1;
    farpool_stats_t st;
    mapping_t m;
    fp_status_t status;

    bench_warm_memory(budget_of(r));
    status = mapping_open(r, true, &m);
    if (status != FP_OK)
        return status;
    t0 = fp_time_ns();
    for (uint64_t pg = 0; pg < pages; pg++) {
        uint64_t v = *(const volatile uint64_t *)(m.addr + pg * PAGE);

        if (v != bench_page_word(r->seed, pg) && bad_page == UINT64_MAX) {
            bad_page = pg;
            bad_word = v;
        }
    }
    t1 = fp_time_ns();
    farpool_region_stats(m.region, &st, sizeof(st));
    mapping_close(&m);
    check_stats(r, &st);
    if (bad_page != UINT64_MAX)
        return check_word(r, bad_page, bad_word);
    *gbs_p = (double)r->size / (double)(t1 - t0);
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* Raw streams                                                              */
/* ------------------------------------------------------------------------ */

static int raw_connect(const char *addr)
{
    char host[64];
    struct sockaddr_in sin;
    struct timeval tv = {BENCH_IO_TIMEOUT_MS / 1000, 0};
    uint16_t port;
    int fd;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    if (fp_addr_split(addr, host, &port) != FP_OK || inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        return -1;
    sin.sin_port = htons(port);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        fprintf(stderr, "%s: connect to the raw sender %s: %s\n", bench_prog, addr,
                strerror(errno));
        close(fd);
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* A slice of the raw stream from @addr: @warm bytes, then @bytes or @limit_ns timed. */
static fp_status_t raw_slice(const char *addr, uint64_t warm, uint64_t bytes, uint64_t limit_ns,
                             uint8_t *buf, bench_acc_t *acc)
{
    uint64_t got = 0, t0 = 0, deadline = 0, total = warm;
    unsigned slot = 0;
    bool timing = false;
    int fd = raw_connect(addr);

    if (fd < 0)
        return FP_ERR_NOT_CONNECTED;
    for (;;) {
        ssize_t n;

        if (!timing && got >= total) {
            timing = true;
            got = 0;
            total = bytes;
            t0 = fp_time_ns();
            deadline = t0 + limit_ns;
        }
        if (timing && (got >= total || fp_time_ns() >= deadline))
            break;
        n = recv(fd, buf + (size_t)slot * BENCH_RAW_STREAM_IO, BENCH_RAW_STREAM_IO, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "%s: raw stream from %s: %s\n", bench_prog, addr,
                    n < 0 ? strerror(errno) : "closed");
            close(fd);
            return FP_ERR_NOT_CONNECTED;
        }
        got += (uint64_t)n;
        slot = (slot + 1) % STREAM_SLOT;
    }
    acc->bytes += got;
    acc->ns += fp_time_ns() - t0;
    close(fd);
    return FP_OK;
}

typedef struct raw_job {
    const char *addr;
    const cfg_t *cfg;
    uint8_t *buf;
    bench_acc_t acc;
    fp_status_t status;
} raw_job_t;

static void *raw_job_main(void *arg)
{
    raw_job_t *j = arg;

    j->status =
        raw_slice(j->addr, j->cfg->raw_warm, UINT64_MAX, j->cfg->raw_limit_ns, j->buf, &j->acc);
    return NULL;
}

/* The raw streams from @n senders at once, for raw_limit_ns: their sum in GB/s. */
static fp_status_t raw_parallel(const cfg_t *cfg, char (*addrs)[64], unsigned n, uint8_t **bufs,
                                double *gbs_p)
{
    raw_job_t jobs[POOL_MAX];
    pthread_t tid[POOL_MAX];
    double sum = 0;

    for (unsigned i = 0; i < n; i++) {
        memset(&jobs[i], 0, sizeof(jobs[i]));
        jobs[i].addr = addrs[i];
        jobs[i].cfg = cfg;
        jobs[i].buf = bufs[i];
        if (pthread_create(&tid[i], NULL, raw_job_main, &jobs[i]) != 0) {
            fprintf(stderr, "%s: pthread_create: %s\n", bench_prog, strerror(errno));
            jobs[i].status = FP_ERR_IO;
            for (unsigned k = 0; k < i; k++)
                pthread_join(tid[k], NULL);
            return FP_ERR_IO;
        }
    }
    for (unsigned i = 0; i < n; i++)
        pthread_join(tid[i], NULL);
    for (unsigned i = 0; i < n; i++) {
        if (jobs[i].status != FP_OK)
            return jobs[i].status;
        sum += bench_acc_gbs(&jobs[i].acc);
    }
    *gbs_p = sum;
    return FP_OK;
}

/* ------------------------------------------------------------------------ */
/* stripe                                                                   */
/* ------------------------------------------------------------------------ */

#define STRIPE_NODES 3

typedef struct stripe_run {
    double raw_link[STRIPE_NODES]; /* GB/s, each shaped link alone */
    double raw_r;                  /* their mean: R as achieved */
    double raw_all;                /* GB/s, the three at once */
    double striped, one;           /* GB/s */
    double share[STRIPE_NODES];    /* of the bytes the striped pass fetched, per member */
    double others;                 /* CPUs other processes kept busy during the run */
} stripe_run_t;

typedef struct stripe {
    pool_netns_set_t net;
    bpool_t wide, single;
    bregion_t r_wide, r_single;
    char sender[STRIPE_NODES][64];
    uint8_t *bufs[STRIPE_NODES];
    unsigned copies[STRIPE_NODES];
} stripe_t;

static fp_status_t stripe_setup(const cfg_t *cfg, stripe_t *s)
{
    const char *ns[STRIPE_NODES], *ip[STRIPE_NODES];
    pool_node_opts_t o;
    char cap[32];
    fp_status_t status;

    /* Room for the region at one node, and to spare for the placement's unevenness. */
    snprintf(cap, sizeof(cap), "%lluM", (unsigned long long)((cfg->size + 512 * MIB) / MIB));
    memset(&o, 0, sizeof(o));
    o.farpoold = cfg->farpoold;
    o.capacity = cap;
    o.slab_size = "2M";
    o.secret = true; /* off loopback */
    for (unsigned i = 0; i < STRIPE_NODES; i++) {
        ns[i] = s->net.ns[i].name;
        ip[i] = s->net.ns[i].ip;
        status = pool_sender_start(ns[i], ip[i], s->sender[i], sizeof(s->sender[i]));
        if (status != FP_OK)
            return status;
        s->bufs[i] = bench_buf_alloc(STREAM_SLOT * BENCH_RAW_STREAM_IO);
        if (s->bufs[i] == NULL)
            return FP_ERR_NO_MEMORY;
        memset(s->bufs[i], 0, STREAM_SLOT * BENCH_RAW_STREAM_IO);
    }
    status = pool_start(&s->wide, "striped over 3 nodes", STRIPE_NODES, ns, ip, &o);
    if (status != FP_OK)
        return status;
    /* The pool of one: a fourth farpoold, in the first namespace, behind its shaped link. */
    status = pool_start(&s->single, "one node", 1, ns, ip, &o);
    if (status != FP_OK)
        return status;
    region_init(&s->r_wide, &s->wide, "wide", cfg->size, 2u << 20, 1);
    region_init(&s->r_single, &s->single, "single", cfg->size, 2u << 20, 1);
    status = region_fill(&s->r_wide);
    if (status == FP_OK)
        status = region_fill(&s->r_single);
    if (status == FP_OK)
        status = region_copies(&s->r_wide, s->copies);
    return status;
}

static fp_status_t stripe_raw_links(const cfg_t *cfg, stripe_t *s, bench_acc_t *acc)
{
    for (unsigned i = 0; i < STRIPE_NODES; i++) {
        fp_status_t status = raw_slice(s->sender[i], cfg->raw_warm, cfg->raw_bytes,
                                       cfg->raw_limit_ns, s->bufs[i], &acc[i]);
        if (status != FP_OK)
            return status;
    }
    return FP_OK;
}

static fp_status_t stripe_once(const cfg_t *cfg, stripe_t *s, unsigned run, stripe_run_t *res)
{
    bench_acc_t acc[STRIPE_NODES];
    uint64_t before[POOL_MAX] = {0}, after[POOL_MAX] = {0}, total = 0;
    cpu_mark_t m0, m1;
    fp_status_t status;

    memset(res, 0, sizeof(*res));
    memset(acc, 0, sizeof(acc));
    place(cfg, BENCH_PHASE_STREAM);
    cpu_mark(&m0);
    /* Each link alone before and after the passes; the three at once. */
    status = stripe_raw_links(cfg, s, acc);
    if (status == FP_OK)
        status = raw_parallel(cfg, s->sender, STRIPE_NODES, s->bufs, &res->raw_all);
    for (unsigned k = 0; k < 2 && status == FP_OK; k++) {
        /* Which pool goes first alternates from run to run. */
        bool wide = ((run + k) % 2) == 0;

        if (wide) {
            pool_bytes_read(&s->wide, before);
            status = seq_pass(&s->r_wide, &res->striped);
            pool_bytes_read(&s->wide, after);
        } else {
            status = seq_pass(&s->r_single, &res->one);
        }
    }
    if (status == FP_OK)
        status = stripe_raw_links(cfg, s, acc);
    if (status != FP_OK)
        return status;
    cpu_mark(&m1);
    res->others = cpu_others(&m0, &m1);
    for (unsigned i = 0; i < STRIPE_NODES; i++) {
        res->raw_link[i] = bench_acc_gbs(&acc[i]);
        res->raw_r += res->raw_link[i] / STRIPE_NODES;
        total += after[i] - before[i];
    }
    for (unsigned i = 0; i < STRIPE_NODES; i++)
        res->share[i] = total > 0 ? (double)(after[i] - before[i]) / (double)total : NAN;
    return FP_OK;
}

static void stripe_report(const cfg_t *cfg, const stripe_t *s, const stripe_run_t *runs, unsigned n,
                          const char *load0, const char *load1)
{
    double v[MAX_RUNS], raw_r, raw_all, striped, one, r_raw, r_one, links[STRIPE_NODES];
    double share[STRIPE_NODES], others;

#define MED(field)                                                                                 \
    ({                                                                                             \
        for (unsigned i_ = 0; i_ < n; i_++)                                                        \
            v[i_] = (runs[i_].field);                                                              \
        median_of(v, n);                                                                           \
    })
    raw_r = MED(raw_r);
    raw_all = MED(raw_all);
    striped = MED(striped);
    one = MED(one);
    r_raw = MED(striped / (3 * runs[i_].raw_r));
    r_one = MED(striped / runs[i_].one);
    others = MED(others);
    for (unsigned k = 0; k < STRIPE_NODES; k++) {
        links[k] = MED(raw_link[k]);
        share[k] = MED(share[k]);
    }

    printf("bench_pool stripe: a region striped over 3 memory nodes, each in a network "
           "namespace behind a veth whose node end is shaped with tbf to %.2f Gbit/s; median of "
           "%u run%s%s\n",
           (double)s->net.rate_bits / 1e9, n, n == 1 ? "" : "s", cfg->quick ? " (--quick)" : "");
    printf("region: %llu MiB, granule 2 MiB, slab size 2 MiB (each block a slab, placed on its "
           "own), 1 copy; read-only mapping, cache memory taken at map; %s; load average %s "
           "before, %s after; other processes kept %.2f CPUs busy (median of the runs)\n\n",
           (unsigned long long)(cfg->size / MIB),
           bench_phase_placement(&cfg->cpus, BENCH_PHASE_STREAM), load0, load1, others);
    printf("| figure | GB/s | Gbit/s | ratio | target | met |\n");
    printf("|---|---|---|---|---|---|\n");
    for (unsigned k = 0; k < STRIPE_NODES; k++)
        printf("| raw TCP, link %u alone | %.3f | %.2f | - | - | - |\n", k, links[k], links[k] * 8);
    printf("| raw TCP, one shaped link (R: the mean of the three) | %.3f | %.2f | - | - | - |\n",
           raw_r, raw_r * 8);
    printf("| raw TCP, the three links at once | %.3f | %.2f | %.2fx of 3R | - | - |\n", raw_all,
           raw_all * 8, raw_all / (3 * raw_r));
    printf("| (b) sequential read, striped over 3 nodes | %.3f | %.2f | %.2fx of 3R | >= %.1fx | "
           "%s |\n",
           striped, striped * 8, r_raw, TARGET_STRIPE_RAW,
           r_raw >= TARGET_STRIPE_RAW ? "yes" : "no");
    printf("| (c) sequential read, one node | %.3f | %.2f | %.2fx of R | - | - |\n", one, one * 8,
           one / raw_r);
    printf("| striped / one node | - | - | %.2fx | >= %.1fx | %s |\n\n", r_one, TARGET_STRIPE_ONE,
           r_one >= TARGET_STRIPE_ONE ? "yes" : "no");
    printf("Ratios are medians of each run's own ratio (its streams and passes); R is each run's "
           "mean over its slices of the three links, one at a time, before and after the "
           "passes.\n");
    printf("The striped region's slabs per member: %u / %u / %u; share of the bytes each served "
           "in the striped pass: %.0f%% / %.0f%% / %.0f%%.\n",
           s->copies[0], s->copies[1], s->copies[2], share[0] * 100, share[1] * 100,
           share[2] * 100);
    printf("\nEach run (GB/s; others: CPUs other processes kept busy meanwhile):\n\n");
    printf("| run | R | three links at once | striped | one node | striped / 3R | "
           "striped / one | others |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (unsigned i = 0; i < n; i++)
        printf("| %u | %.3f | %.3f | %.3f | %.3f | %.2fx | %.2fx | %.2f |\n", i + 1, runs[i].raw_r,
               runs[i].raw_all, runs[i].striped, runs[i].one, runs[i].striped / (3 * runs[i].raw_r),
               runs[i].striped / runs[i].one, runs[i].others);
#undef MED
}

static int run_stripe(const cfg_t *cfg)
{
    static stripe_run_t runs[MAX_RUNS];
    static stripe_t s;
    const char *env = getenv("FARPOOL_NETNS");
    char load0[64], load1[64];
    fp_status_t status;
    int rc = 1;

    if (pool_netns_parse(env, &s.net) != FP_OK || s.net.n < STRIPE_NODES) {
        fprintf(stderr, "%s: FARPOOL_NETNS is not that of pool_netns.sh --nodes %d: '%s'\n",
                bench_prog, STRIPE_NODES, env != NULL ? env : "");
        return 1;
    }
    loadavg(load0, sizeof(load0));
    status = stripe_setup(cfg, &s);
    for (unsigned i = 0; status == FP_OK && i < cfg->runs; i++) {
        status = stripe_once(cfg, &s, i, &runs[i]);
        if (status == FP_OK)
            fprintf(stderr,
                    "%s: run %u/%u: raw links %.3f %.3f %.3f GB/s (R %.3f), at once %.3f; "
                    "striped %.3f GB/s (%.2fx 3R), one node %.3f GB/s (%.2fx); others %.2f "
                    "CPUs\n",
                    bench_prog, i + 1, cfg->runs, runs[i].raw_link[0], runs[i].raw_link[1],
                    runs[i].raw_link[2], runs[i].raw_r, runs[i].raw_all, runs[i].striped,
                    runs[i].striped / (3 * runs[i].raw_r), runs[i].one,
                    runs[i].striped / runs[i].one, runs[i].others);
    }
    if (status == FP_OK) {
        loadavg(load1, sizeof(load1));
        stripe_report(cfg, &s, runs, cfg->runs, load0, load1);
        rc = 0;
    }
    region_delete(&s.r_wide);
    region_delete(&s.r_single);
    pool_stop(&s.single);
    pool_stop(&s.wide);
    for (unsigned i = 0; i < STRIPE_NODES; i++)
        free(s.bufs[i]);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* failover                                                                 */
/* ------------------------------------------------------------------------ */

#define FAIL_NODES 3

/* What a scan saw. */
typedef struct scan {
    const bregion_t *r;
    const uint8_t *addr;
    _Atomic uint64_t progress; /* pages done */
    _Atomic bool done;         /* the scan thread is finished */
    _Atomic uint64_t kill_ns;  /* when the member was killed; 0 before */
    uint64_t max_ns[2];        /* the longest access: [0] ending before the kill, [1] after */
    uint64_t max_at[2];        /* when it began (fp_time_ns()) */
    uint64_t slow;             /* accesses over 10 ms after the kill */
    uint64_t t0, t1;
    bool sigbus;
    uint64_t bad_page; /* UINT64_MAX: every word right */
    uint64_t bad_word;
} scan_t;

static __thread sigjmp_buf *scan_jmp;
static __thread volatile uint64_t scan_page;

static void on_sigbus(int sig)
{
    static const char msg[] = "bench_pool: SIGBUS outside a scan\n";

    if (scan_jmp != NULL)
        siglongjmp(*scan_jmp, 1);
    (void)sig;
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
    _exit(1);
}

static void *scan_main(void *arg)
{
    scan_t *sc = arg;
    uint64_t pages = sc->r->size / PAGE;
    sigjmp_buf jb;

    sc->bad_page = UINT64_MAX;
    if (sigsetjmp(jb, 1) != 0) {
        scan_jmp = NULL;
        sc->sigbus = true;
        sc->bad_page = scan_page;
        sc->t1 = fp_time_ns();
        atomic_store(&sc->done, true);
        return NULL;
    }
    scan_jmp = &jb;
    sc->t0 = fp_time_ns();
    for (uint64_t pg = 0; pg < pages; pg++) {
        uint64_t t0, t1, v, kill_ns;
        bool after;

        scan_page = pg;
        t0 = fp_time_ns();
        v = *(const volatile uint64_t *)(sc->addr + pg * PAGE);
        t1 = fp_time_ns();
        kill_ns = atomic_load_explicit(&sc->kill_ns, memory_order_relaxed);
        after = kill_ns != 0 && t1 >= kill_ns;
        if (t1 - t0 > sc->max_ns[after]) {
            sc->max_ns[after] = t1 - t0;
            sc->max_at[after] = t0;
        }
        if (after && t1 - t0 > 10 * FP_NS_PER_MS)
            sc->slow++;
        if (v != bench_page_word(sc->r->seed, pg) && sc->bad_page == UINT64_MAX) {
            sc->bad_page = pg;
            sc->bad_word = v;
        }
        atomic_store_explicit(&sc->progress, pg + 1, memory_order_relaxed);
    }
    sc->t1 = fp_time_ns();
    scan_jmp = NULL;
    atomic_store(&sc->done, true);
    return NULL;
}

/* One kill's figures. */
typedef struct kill_res {
    double stall_ms;    /* the longest access that ended after the kill */
    double stall_at_ms; /* when it began, from the kill (negative: before it) */
    double before_ms;   /* the longest access of the same scan before the kill */
    double slow;        /* accesses over 10 ms after the kill */
    double calm_ms;     /* the longest access of a scan with no kill, just before */
    double scan_gbs, calm_gbs;
    double dead_s;     /* from the kill until the pool lists the member dead */
    double healthy_s;  /* from the kill until the region is healthy again */
    double bytes;      /* copies the killed member held x slab size */
    double repair_gbs; /* bytes / healthy_s */
    double copy_gbs;   /* bytes / (healthy_s - dead_s) */
    unsigned victim;
} kill_res_t;

typedef struct failover {
    bpool_t pool;
    bregion_t r;
    uint64_t slab_size;
    unsigned next_victim;
} failover_t;

/*
 * Scan a fresh mapping of @f's region on a thread of its own; with @victim
 * >= 0 kill that member once a third of the pages are read. *@sc gets what
 * the scan saw, *@t_kill_p when the kill was sent.
 */
static fp_status_t failover_scan(failover_t *f, int victim, scan_t *sc, uint64_t *t_kill_p)
{
    uint64_t pages = f->r.size / PAGE;
    farpool_stats_t st;
    pthread_t tid;
    mapping_t m;
    fp_status_t status;

    memset(sc, 0, sizeof(*sc));
    sc->r = &f->r;
    bench_warm_memory(budget_of(&f->r));
    status = mapping_open(&f->r, true, &m);
    if (status != FP_OK)
        return status;
    sc->addr = m.addr;
    if (pthread_create(&tid, NULL, scan_main, sc) != 0) {
        fprintf(stderr, "%s: pthread_create: %s\n", bench_prog, strerror(errno));
        mapping_close(&m);
        return FP_ERR_IO;
    }
    if (victim >= 0) {
        while (atomic_load_explicit(&sc->progress, memory_order_relaxed) < pages / 3 &&
               !atomic_load(&sc->done))
            bench_sleep_us(50);
        *t_kill_p = fp_time_ns();
        atomic_store(&sc->kill_ns, *t_kill_p);
        pool_node_kill(&f->pool.node[victim]);
    }
    pthread_join(tid, NULL);
    farpool_region_stats(m.region, &st, sizeof(st));
    mapping_close(&m);
    if (sc->sigbus) {
        fprintf(stderr, "%s: the reader got SIGBUS at page %llu of region %s (%s)\n", bench_prog,
                (unsigned long long)sc->bad_page, f->r.name,
                victim >= 0 ? "after a member was killed" : "no member killed");
        return FP_ERR_IO;
    }
    if (sc->bad_page != UINT64_MAX)
        return check_word(&f->r, sc->bad_page, sc->bad_word);
    if (st.evictions != 0)
        fprintf(stderr, "%s: region %s: %llu evictions during a scan\n", bench_prog, f->r.name,
                (unsigned long long)st.evictions);
    return FP_OK;
}

/*
 * Poll the pool from the kill at @t_kill: when it lists member @victim dead,
 * and when region @f->r is healthy again after that. One connection and one
 * request per poll (POOL_NODES until the death is seen, then POOL_REGIONS):
 * the metadata service serves requests on the thread that makes the repair
 * copies, so polling it harder slows what is measured.
 */
static fp_status_t failover_wait_repair(failover_t *f, unsigned victim, uint64_t victim_id,
                                        uint64_t t_kill, uint64_t *t_dead_p, uint64_t *t_healthy_p)
{
    const char *addr = f->pool.node[victim].addr;
    uint64_t t_dead = 0, deadline = t_kill + HEALTH_MS * FP_NS_PER_MS;
    farpool_node_t *meta;
    fp_status_t status = meta_connect(&f->pool, &meta);

    if (status != FP_OK)
        return status;
    for (;;) {
        uint64_t now;

        if (t_dead == 0) {
            fp_pool_node_entry_t *nodes = NULL;
            size_t count = 0;

            status = fp_pool_nodes(meta, &nodes, &count);
            now = fp_time_ns();
            for (size_t i = 0; status == FP_OK && i < count; i++)
                if (nodes[i].member == victim_id && nodes[i].state != FP_POOL_NODE_LIVE)
                    t_dead = now;
            free(nodes);
        } else {
            fp_pool_region_desc_t desc;

            status = region_desc(&f->r, meta, &desc);
            now = fp_time_ns();
            if (status == FP_OK && desc.health == FP_POOL_HEALTHY) {
                *t_dead_p = t_dead;
                *t_healthy_p = now;
                break;
            }
            if (status == FP_OK && desc.health == FP_POOL_LOST) {
                fprintf(stderr, "%s: the pool says region %s lost bytes\n", bench_prog, f->r.name);
                status = FP_ERR_IO;
            }
        }
        if (status != FP_OK)
            break;
        if (now > deadline) {
            fprintf(stderr, "%s: region %s not healthy %d s after member %s was killed%s\n",
                    bench_prog, f->r.name, HEALTH_MS / 1000, addr,
                    t_dead == 0 ? " (the pool never said it was dead)" : "");
            status = FP_ERR_TIMED_OUT;
            break;
        }
        bench_sleep_ms(POLL_MS);
    }
    farpool_node_close(meta);
    return status;
}

/* The member (not the metadata node) that holds the most copies of the region. */
static fp_status_t failover_pick(failover_t *f, unsigned *victim_p, unsigned *copies_p)
{
    unsigned copies[POOL_MAX], best = 0;
    fp_status_t status = region_copies(&f->r, copies);

    if (status != FP_OK)
        return status;
    for (unsigned k = 0; k < FAIL_NODES - 1; k++) {
        unsigned i = 1 + (f->next_victim + k) % (FAIL_NODES - 1);

        if (best == 0 || copies[i] > copies[best])
            best = i;
    }
    f->next_victim = best % (FAIL_NODES - 1); /* a tie next time goes to the other one */
    *victim_p = best;
    *copies_p = copies[best];
    return FP_OK;
}

static fp_status_t failover_once(const cfg_t *cfg, failover_t *f, kill_res_t *res)
{
    uint64_t t_kill = 0, t_dead = 0, t_healthy = 0, victim_id = 0;
    unsigned victim, copies;
    scan_t calm, sc;
    fp_status_t status;

    memset(res, 0, sizeof(*res));
    status = failover_scan(f, -1, &calm, NULL);
    if (status == FP_OK)
        status = failover_pick(f, &victim, &copies);
    if (status == FP_OK && copies == 0) {
        fprintf(stderr, "%s: no member but the metadata node holds copies of %s\n", bench_prog,
                f->r.name);
        status = FP_ERR_NO_ENTRY;
    }
    if (status == FP_OK)
        status = pool_member_id(&f->pool, f->pool.node[victim].addr, &victim_id);
    if (status == FP_OK)
        status = failover_scan(f, (int)victim, &sc, &t_kill);
    if (status == FP_OK)
        status = failover_wait_repair(f, victim, victim_id, t_kill, &t_dead, &t_healthy);
    if (status != FP_OK)
        return status;
    (void)cfg;
    res->victim = victim;
    res->stall_ms = (double)sc.max_ns[1] / 1e6;
    res->stall_at_ms = ((double)sc.max_at[1] - (double)t_kill) / 1e6;
    res->before_ms = (double)sc.max_ns[0] / 1e6;
    res->slow = (double)sc.slow;
    res->calm_ms = (double)calm.max_ns[0] / 1e6;
    res->scan_gbs = (double)f->r.size / (double)(sc.t1 - sc.t0);
    res->calm_gbs = (double)f->r.size / (double)(calm.t1 - calm.t0);
    res->dead_s = (double)(t_dead - t_kill) / 1e9;
    res->healthy_s = (double)(t_healthy - t_kill) / 1e9;
    res->bytes = (double)copies * (double)f->slab_size;
    res->repair_gbs = res->bytes / (double)(t_healthy - t_kill);
    res->copy_gbs = t_healthy > t_dead ? res->bytes / (double)(t_healthy - t_dead) : NAN;

    /* The member comes back empty on its address; wait until the pool has it. */
    status = pool_node_start(&f->pool.node[victim]);
    if (status == FP_OK)
        status = pool_wait_live(&f->pool, f->pool.node[victim].addr, 1);
    return status;
}

static void failover_report(const cfg_t *cfg, const failover_t *f, const kill_res_t *k, unsigned n,
                            const char *load0, const char *load1)
{
    double v[MAX_KILLS];
    char slab[32];

#define MED(field)                                                                                 \
    ({                                                                                             \
        for (unsigned i_ = 0; i_ < n; i_++)                                                        \
            v[i_] = (k[i_].field);                                                                 \
        median_of(v, n);                                                                           \
    })
    fp_format_size(f->slab_size, slab, sizeof(slab));
    printf("bench_pool failover: a member killed (SIGKILL) a third of the way through a "
           "sequential scan; median of %u kill%s%s\n",
           n, n == 1 ? "" : "s", cfg->quick ? " (--quick)" : "");
    printf("pool: 3 members on loopback, the metadata node with --dead-after %s and "
           "--repair-rate %s; region %llu MiB, granule %u KiB, slab size %s, 2 copies; "
           "read-only mapping, every 4 KiB access timed; load average %s before, %s after\n\n",
           cfg->dead_after, cfg->repair_rate != NULL ? cfg->repair_rate : "default (256M)",
           (unsigned long long)(f->r.size / MIB), f->r.granule >> 10, slab, load0, load1);
    printf("| figure | median | min | max |\n");
    printf("|---|---|---|---|\n");
#define ROW(label, field, fmt)                                                                     \
    do {                                                                                           \
        double lo = INFINITY, hi = -INFINITY;                                                      \
        for (unsigned i_ = 0; i_ < n; i_++) {                                                      \
            lo = fmin(lo, k[i_].field);                                                            \
            hi = fmax(hi, k[i_].field);                                                            \
        }                                                                                          \
        printf("| " label " | " fmt " | " fmt " | " fmt " |\n", MED(field), lo, hi);               \
    } while (0)
    ROW("**the stall: the longest access ending after the kill (ms)**", stall_ms, "%.2f");
    ROW("...when it began, from the kill (ms)", stall_at_ms, "%+.2f");
    ROW("accesses over 10 ms after the kill", slow, "%.0f");
    ROW("longest access of the same scan before the kill (ms)", before_ms, "%.2f");
    ROW("longest access of a scan with no kill, just before (ms)", calm_ms, "%.2f");
    ROW("scan with a kill (GB/s)", scan_gbs, "%.2f");
    ROW("scan with no kill (GB/s)", calm_gbs, "%.2f");
    ROW("kill -> the pool lists the member dead (s)", dead_s, "%.2f");
    ROW("kill -> the region is healthy again (s)", healthy_s, "%.2f");
    ROW("bytes copied: the dead member's copies x slab size (MiB)", bytes / (double)MIB, "%.0f");
    ROW("repair bandwidth: bytes copied / (kill -> healthy) (GB/s)", repair_gbs, "%.3f");
    ROW("copy bandwidth: bytes copied / (dead -> healthy) (GB/s)", copy_gbs, "%.3f");
    printf("\nThe killed member is the one (not the metadata node) holding the most copies; it is "
           "restarted empty on its address between kills and the pool waited for.\n");
#undef ROW
#undef MED
}

static int run_failover(const cfg_t *cfg)
{
    static kill_res_t kills[MAX_KILLS];
    static failover_t f;
    static const char *const ip[FAIL_NODES] = {"127.0.0.1", "127.0.0.1", "127.0.0.1"};
    char load0[64], load1[64], cap[32];
    pool_node_opts_t o;
    fp_status_t status;
    unsigned done = 0;
    int rc = 1;

    loadavg(load0, sizeof(load0));
    /* After repairs a member may hold one copy of every slab. */
    snprintf(cap, sizeof(cap), "%lluM", (unsigned long long)((cfg->size + 512 * MIB) / MIB));
    memset(&o, 0, sizeof(o));
    o.farpoold = cfg->farpoold;
    o.capacity = cap;
    o.slab_size = cfg->slab_size;
    o.dead_after = cfg->dead_after;
    o.repair_rate = cfg->repair_rate;
    status = pool_start(&f.pool, "3 members", FAIL_NODES, NULL, ip, &o);
    region_init(&f.r, &f.pool, "failover", cfg->size, cfg->granule, 2);
    if (status == FP_OK)
        status = region_fill(&f.r);
    if (status == FP_OK) {
        /* The slab size the members run with (farpoold's default unless --slab-size). */
        fp_pool_region_desc_t desc;
        farpool_node_t *meta;

        status = meta_connect(&f.pool, &meta);
        if (status == FP_OK) {
            status = region_desc(&f.r, meta, &desc);
            farpool_node_close(meta);
        }
        if (status == FP_OK)
            f.slab_size = desc.slab_size;
    }
    for (; status == FP_OK && done < cfg->kills; done++) {
        kill_res_t *k = &kills[done];

        status = failover_once(cfg, &f, k);
        if (status == FP_OK)
            fprintf(stderr,
                    "%s: kill %u/%u (member %u): longest access after it %.2f ms, from %+.2f ms "
                    "(before it %.2f, no kill %.2f ms); dead after %.2f s, healthy after %.2f s, "
                    "%.0f MiB "
                    "copied: %.3f GB/s\n",
                    bench_prog, done + 1, cfg->kills, k->victim, k->stall_ms, k->stall_at_ms,
                    k->before_ms, k->calm_ms, k->dead_s, k->healthy_s, k->bytes / (double)MIB,
                    k->repair_gbs);
    }
    if (status == FP_OK) {
        loadavg(load1, sizeof(load1));
        failover_report(cfg, &f, kills, done, load0, load1);
        rc = 0;
    }
    region_delete(&f.r);
    pool_stop(&f.pool);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* fault                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * What is compared: regions of the pool of 3 with 2 copies (the figure the
 * target is about), of the pool of one (its baseline), and of the pool of 3
 * with 1 copy (which says whether a difference comes from the copies or from
 * the members).
 */
enum { FV_P3R2 = 0, FV_P1 = 1, FV_P3R1 = 2, NFV = 3 };
static const unsigned fv_pool[NFV] = {0, 1, 0};
static const uint32_t fv_replicas[NFV] = {2, 1, 1};
static const char *const fv_tag[NFV] = {"p3r2", "p1", "p3r1"};

typedef struct fault_run {
    double med[NFV], p99[NFV]; /* us */
    double seq[NFV];           /* GB/s */
    double n;
    double others; /* CPUs other processes kept busy during the run */
} fault_run_t;

typedef struct fault {
    bpool_t pool[2]; /* [0] 3 members, [1] one */
    bregion_t seq[NFV], rnd[NFV];
    uint64_t *samples[NFV];
    uint64_t *pages[NFV];
} fault_t;

static fp_status_t fault_setup(const cfg_t *cfg, fault_t *f)
{
    static const char *const ip[3] = {"127.0.0.1", "127.0.0.1", "127.0.0.1"};
    char cap[32];
    pool_node_opts_t o;
    fp_status_t status;

    /* Room for a copy of every slab of every region, and to spare. */
    snprintf(cap, sizeof(cap), "%lluM",
             (unsigned long long)((2 * (cfg->size + cfg->rand_size) + 512 * MIB) / MIB));
    memset(&o, 0, sizeof(o));
    o.farpoold = cfg->farpoold;
    o.capacity = cap;
    status = pool_start(&f->pool[0], "3 members, 2 copies", 3, NULL, ip, &o);
    if (status == FP_OK)
        status = pool_start(&f->pool[1], "1 member", 1, NULL, ip, &o);
    for (unsigned i = 0; status == FP_OK && i < NFV; i++) {
        bpool_t *p = &f->pool[fv_pool[i]];
        char name[32];

        snprintf(name, sizeof(name), "%s.seq", fv_tag[i]);
        region_init(&f->seq[i], p, name, cfg->size, 2u << 20, fv_replicas[i]);
        snprintf(name, sizeof(name), "%s.rnd", fv_tag[i]);
        region_init(&f->rnd[i], p, name, cfg->rand_size, 4u << 10, fv_replicas[i]);
        status = region_fill(&f->seq[i]);
        if (status == FP_OK)
            status = region_fill(&f->rnd[i]);
        f->samples[i] = malloc(cfg->rand_count * sizeof(uint64_t));
        f->pages[i] = malloc(cfg->rand_size / PAGE * sizeof(uint64_t));
        if (status == FP_OK && (f->samples[i] == NULL || f->pages[i] == NULL)) {
            fprintf(stderr, "%s: out of memory\n", bench_prog);
            status = FP_ERR_NO_MEMORY;
        }
    }
    return status;
}

/* Pages of @r in a random order (Fisher-Yates). */
static void shuffle_pages(uint64_t *pages, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        pages[i] = i;
    for (uint64_t i = 0; i + 1 < n; i++) {
        uint64_t j = i + rng_next() % (n - i), t = pages[i];

        pages[i] = pages[j];
        pages[j] = t;
    }
}

/* Timed first touches of @count pages of @m from *@next on; samples into @out unless NULL. */
static fp_status_t rand_touch(const bregion_t *r, const mapping_t *m, const uint64_t *pages,
                              uint64_t *next, unsigned count, uint64_t *out)
{
    for (unsigned i = 0; i < count; i++) {
        uint64_t pg = pages[(*next)++], t0, t1, v;
        fp_status_t status;

        t0 = fp_time_ns();
        v = *(const volatile uint64_t *)(m->addr + pg * PAGE);
        t1 = fp_time_ns();
        status = check_word(r, pg, v);
        if (status != FP_OK)
            return status;
        if (out != NULL)
            out[i] = t1 - t0;
    }
    return FP_OK;
}

/*
 * Random 4 KiB faults: the regions mapped afresh, each page touched once in
 * a random order, taking turns in blocks of LAT_BLOCK (which goes first
 * rotates), after LAT_WARM untimed touches of each.
 */
static fp_status_t fault_rand(const cfg_t *cfg, fault_t *f, unsigned run, fault_run_t *res)
{
    uint64_t npages = cfg->rand_size / PAGE, next[NFV] = {0};
    uint64_t deadline, count = cfg->rand_count;
    unsigned n = 0;
    mapping_t m[NFV];
    fp_status_t status = FP_OK;

    if (count > npages - LAT_WARM)
        count = npages - LAT_WARM;
    memset(m, 0, sizeof(m));
    for (unsigned i = 0; i < NFV && status == FP_OK; i++) {
        shuffle_pages(f->pages[i], npages);
        status = mapping_open(&f->rnd[i], true, &m[i]);
        if (status == FP_OK)
            status = rand_touch(&f->rnd[i], &m[i], f->pages[i], &next[i], LAT_WARM, NULL);
    }
    deadline = fp_time_ns() + cfg->rand_limit_ns;
    while (status == FP_OK && n < count && fp_time_ns() < deadline) {
        unsigned take = count - n < LAT_BLOCK ? (unsigned)(count - n) : LAT_BLOCK;

        for (unsigned k = 0; k < NFV && status == FP_OK; k++) {
            unsigned i = (k + run + n / LAT_BLOCK) % NFV;

            status = rand_touch(&f->rnd[i], &m[i], f->pages[i], &next[i], take, f->samples[i] + n);
        }
        n += take;
    }
    for (unsigned i = 0; i < NFV; i++)
        if (m[i].ctx != NULL)
            mapping_close(&m[i]);
    if (status != FP_OK)
        return status;
    for (unsigned i = 0; i < NFV; i++)
        bench_lat_summary(f->samples[i], n, &res->med[i], &res->p99[i]);
    res->n = n;
    return FP_OK;
}

static fp_status_t fault_once(const cfg_t *cfg, fault_t *f, unsigned run, fault_run_t *res)
{
    static const unsigned order[2 * NFV] = {0, 1, 2, 2, 1, 0}; /* ABCCBA */
    double gbs[NFV][2];
    cpu_mark_t m0, m1;
    fp_status_t status = FP_OK;

    memset(res, 0, sizeof(*res));
    cpu_mark(&m0);
    /* First touch, this program on one CPU and the members on the other, in
     * the order ABCCBA (which region is A rotates with the run). */
    place(cfg, BENCH_PHASE_STREAM);
    for (unsigned k = 0; k < 2 * NFV && status == FP_OK; k++) {
        unsigned i = (order[k] + run) % NFV;

        status = seq_pass(&f->seq[i], &gbs[i][k / NFV]);
    }
    if (status != FP_OK)
        return status;
    for (unsigned i = 0; i < NFV; i++)
        res->seq[i] = (gbs[i][0] + gbs[i][1]) / 2;
    place(cfg, BENCH_PHASE_LATENCY);
    status = fault_rand(cfg, f, run, res);
    cpu_mark(&m1);
    res->others = cpu_others(&m0, &m1);
    return status;
}

static void fault_report(const cfg_t *cfg, const fault_run_t *runs, unsigned n, const char *load0,
                         const char *load1)
{
    double v[MAX_RUNS], med[NFV], p99[NFV], seq[NFV], r_med[NFV], r_p99[NFV], r_seq[NFV];
    double cnt, others;
    static const char *const label[NFV] = {"pool of 3, 2 copies", "pool of 1", "pool of 3, 1 copy"};

#define MED(expr)                                                                                  \
    ({                                                                                             \
        for (unsigned i_ = 0; i_ < n; i_++)                                                        \
            v[i_] = (runs[i_].expr);                                                               \
        median_of(v, n);                                                                           \
    })
    for (unsigned i = 0; i < NFV; i++) {
        med[i] = MED(med[i]);
        p99[i] = MED(p99[i]);
        seq[i] = MED(seq[i]);
        r_med[i] = MED(med[i] / runs[i_].med[FV_P1]);
        r_p99[i] = MED(p99[i] / runs[i_].p99[FV_P1]);
        r_seq[i] = MED(seq[i] / runs[i_].seq[FV_P1]);
    }
    cnt = MED(n);
    others = MED(others);
#undef MED
    printf("bench_pool fault: the fault path on a pool region (3 loopback members, 2 copies) "
           "against a pool of one, alternating in one run; median of %u run%s%s\n",
           n, n == 1 ? "" : "s", cfg->quick ? " (--quick)" : "");
    printf("farpoold defaults (slab size 64 MiB); read-only mappings, cache memory taken at map; "
           "first touch: %s; random faults: %s; load average %s before, %s after; other "
           "processes kept %.2f CPUs busy (median of the runs)\n\n",
           bench_phase_placement(&cfg->cpus, BENCH_PHASE_STREAM),
           bench_phase_placement(&cfg->cpus, BENCH_PHASE_LATENCY), load0, load1, others);
    printf("| figure | pool of 3, 2 copies | pool of 1 | ratio | target | met |\n");
    printf("|---|---|---|---|---|---|\n");
    printf("| random 4 KiB fault, 4 KiB granule, %llu MiB region: median (us) | %.1f | %.1f | "
           "%.3fx | <= %.2fx | %s |\n",
           (unsigned long long)(cfg->rand_size / MIB), med[FV_P3R2], med[FV_P1], r_med[FV_P3R2],
           1 + TARGET_FAULT, r_med[FV_P3R2] <= 1 + TARGET_FAULT ? "yes" : "no");
    printf("| random 4 KiB fault: p99 (us) | %.1f | %.1f | %.3fx | - | - |\n", p99[FV_P3R2],
           p99[FV_P1], r_p99[FV_P3R2]);
    printf("| sequential first touch, 2 MiB granule, %llu MiB region (GB/s) | %.3f | %.3f | "
           "%.3fx | >= %.2fx | %s |\n",
           (unsigned long long)(cfg->size / MIB), seq[FV_P3R2], seq[FV_P1], r_seq[FV_P3R2],
           1 - TARGET_FAULT, r_seq[FV_P3R2] >= 1 - TARGET_FAULT ? "yes" : "no");
    printf("\nRatios are medians of each run's own ratio to the pool of 1. %.0f random faults "
           "timed per region per run, the regions taking turns in blocks of %d; each first-touch "
           "figure is the mean of two passes (ABCCBA).\n",
           cnt, LAT_BLOCK);
    printf("\nThe same against a region of 1 copy of the pool of 3 (copies or members?):\n\n");
    printf("| region | fault median (us) | ratio | p99 (us) | ratio | first touch (GB/s) | ratio "
           "|\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (unsigned i = 0; i < NFV; i++)
        printf("| %s | %.1f | %.3fx | %.1f | %.3fx | %.3f | %.3fx |\n", label[i], med[i], r_med[i],
               p99[i], r_p99[i], seq[i], r_seq[i]);
    printf("\nEach run (others: CPUs other processes kept busy meanwhile):\n\n");
    printf("| run | fault median: 3 with 2 copies / 1 / 3 with 1 copy (us) | ratio | first "
           "touch: the same (GB/s) | ratio | others |\n");
    printf("|---|---|---|---|---|---|\n");
    for (unsigned i = 0; i < n; i++)
        printf("| %u | %.1f / %.1f / %.1f | %.3fx | %.3f / %.3f / %.3f | %.3fx | %.2f |\n", i + 1,
               runs[i].med[FV_P3R2], runs[i].med[FV_P1], runs[i].med[FV_P3R1],
               runs[i].med[FV_P3R2] / runs[i].med[FV_P1], runs[i].seq[FV_P3R2], runs[i].seq[FV_P1],
               runs[i].seq[FV_P3R1], runs[i].seq[FV_P3R2] / runs[i].seq[FV_P1], runs[i].others);
}

static int run_fault(const cfg_t *cfg)
{
    static fault_run_t runs[MAX_RUNS];
    static fault_t f;
    char load0[64], load1[64];
    fp_status_t status;
    int rc = 1;

    loadavg(load0, sizeof(load0));
    status = fault_setup(cfg, &f);
    for (unsigned i = 0; status == FP_OK && i < cfg->runs; i++) {
        status = fault_once(cfg, &f, i, &runs[i]);
        if (status == FP_OK)
            fprintf(stderr,
                    "%s: run %u/%u: random 4 KiB median %.1f vs %.1f us (%.3fx; 1 copy %.1f), "
                    "p99 %.1f vs %.1f us; first touch %.3f vs %.3f GB/s (%.3fx; 1 copy %.3f); "
                    "others %.2f CPUs\n",
                    bench_prog, i + 1, cfg->runs, runs[i].med[FV_P3R2], runs[i].med[FV_P1],
                    runs[i].med[FV_P3R2] / runs[i].med[FV_P1], runs[i].med[FV_P3R1],
                    runs[i].p99[FV_P3R2], runs[i].p99[FV_P1], runs[i].seq[FV_P3R2],
                    runs[i].seq[FV_P1], runs[i].seq[FV_P3R2] / runs[i].seq[FV_P1],
                    runs[i].seq[FV_P3R1], runs[i].others);
    }
    if (status == FP_OK) {
        loadavg(load1, sizeof(load1));
        fault_report(cfg, runs, cfg->runs, load0, load1);
        rc = 0;
    }
    for (unsigned i = 0; i < NFV; i++) {
        region_delete(&f.seq[i]);
        region_delete(&f.rnd[i]);
        free(f.samples[i]);
        free(f.pages[i]);
    }
    pool_stop(&f.pool[1]);
    pool_stop(&f.pool[0]);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* main                                                                     */
/* ------------------------------------------------------------------------ */

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: bench_pool stripe   [--rate RATE] [COMMON]    (root: network namespaces)\n"
            "       bench_pool failover [--kills N] [--dead-after SEC] [--repair-rate SIZE]\n"
            "                           [--slab-size SIZE] [--granule SIZE] [COMMON]\n"
            "       bench_pool fault    [COMMON]\n"
            "Measure the pool against baselines of the same run; prints tables of ratios and\n"
            "never fails on a figure.\n\n"
            "  stripe    a region striped over 3 nodes, each behind a tbf-shaped veth, against\n"
            "            the raw TCP stream through one link (x3) and against one node; runs\n"
            "            itself under pool_netns.sh (beside it, or --netns-script PATH)\n"
            "  failover  the longest access a sequential reader sees when a member of a pool\n"
            "            of 3 (2 copies) is killed, and the bandwidth of the repair\n"
            "  fault     random 4 KiB faults and 2 MiB first touch on a pool of 3 (2 copies)\n"
            "            against a pool of one, alternating\n\n"
            "  --rate RATE        stripe: each link's rate, as tc(8) says it (default 4gbit)\n"
            "  --kills N          failover: members killed, one per scan (default 5)\n"
            "  --dead-after SEC   failover: the metadata node's --dead-after (default 1)\n"
            "  --repair-rate SIZE failover: its --repair-rate (default: farpoold's)\n"
            "  --slab-size SIZE   failover: the members' slab size (default: farpoold's, 64M)\n"
            "  --granule SIZE     failover: the region's granule (default 64K)\n"
            "COMMON:\n"
            "  --size SIZE        the region (stripe, failover; fault: the first-touch one)\n"
            "                     (default 1G)\n"
            "  --runs N           stripe, fault: repeat, report medians (default 3)\n"
            "  --quick            smaller regions and counts, one run: a smoke run\n"
            "  --cpu MODE         auto (default): streams with this program on one CPU and\n"
            "                     every farpoold and sender on the other, random faults all\n"
            "                     on one; split: always two; same: always one; none\n"
            "  --farpoold PATH    the daemon (default: beside this program, in the directory\n"
            "                     above it, or in PATH)\n"
            "  --netns-script PATH  stripe: pool_netns.sh (default: beside this program)\n"
            "  -h, --help         show this help\n");
}

/* Exec "sh pool_netns.sh run --nodes 3 --rate RATE -- THIS ARGS..." (stripe, first pass). */
static int reexec_in_netns(const cfg_t *cfg, int argc, char **argv)
{
    char self[PATH_MAX], script[PATH_MAX + 32];
    char **args;
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    unsigned k = 0;

    if (geteuid() != 0) {
        fprintf(stderr, "%s: stripe needs root: it makes network namespaces (CAP_NET_ADMIN)\n",
                bench_prog);
        return 1;
    }
    if (n <= 0) {
        fprintf(stderr, "%s: readlink /proc/self/exe: %s\n", bench_prog, strerror(errno));
        return 1;
    }
    self[n] = '\0';
    if (cfg->netns_script != NULL) {
        snprintf(script, sizeof(script), "%s", cfg->netns_script);
    } else {
        char dir[PATH_MAX];
        char *slash;

        snprintf(dir, sizeof(dir), "%s", self);
        slash = strrchr(dir, '/');
        if (slash != NULL)
            *slash = '\0';
        snprintf(script, sizeof(script), "%s/pool_netns.sh", dir);
    }
    if (access(script, R_OK) != 0) {
        fprintf(stderr, "%s: cannot read %s: %s (use --netns-script PATH)\n", bench_prog, script,
                strerror(errno));
        return 1;
    }
    args = calloc((size_t)argc + 12, sizeof(*args));
    if (args == NULL)
        return 1;
    args[k++] = "sh";
    args[k++] = script;
    args[k++] = "run";
    args[k++] = "--nodes";
    args[k++] = "3";
    args[k++] = "--rate";
    args[k++] = (char *)cfg->rate;
    args[k++] = "--";
    args[k++] = self;
    for (int i = 1; i < argc; i++)
        args[k++] = argv[i];
    args[k] = NULL;
    fflush(NULL);
    execv("/bin/sh", args);
    fprintf(stderr, "%s: exec /bin/sh %s: %s\n", bench_prog, script, strerror(errno));
    free(args);
    return 1;
}

int main(int argc, char **argv)
{
    enum {
        OPT_QUICK = 256,
        OPT_RUNS,
        OPT_FARPOOLD,
        OPT_CPU,
        OPT_SIZE,
        OPT_RATE,
        OPT_KILLS,
        OPT_DEAD_AFTER,
        OPT_REPAIR_RATE,
        OPT_SLAB_SIZE,
        OPT_GRANULE,
        OPT_NETNS_SCRIPT,
    };
    static const struct option options[] = {
        {"quick", no_argument, NULL, OPT_QUICK},
        {"runs", required_argument, NULL, OPT_RUNS},
        {"farpoold", required_argument, NULL, OPT_FARPOOLD},
        {"cpu", required_argument, NULL, OPT_CPU},
        {"size", required_argument, NULL, OPT_SIZE},
        {"rate", required_argument, NULL, OPT_RATE},
        {"kills", required_argument, NULL, OPT_KILLS},
        {"dead-after", required_argument, NULL, OPT_DEAD_AFTER},
        {"repair-rate", required_argument, NULL, OPT_REPAIR_RATE},
        {"slab-size", required_argument, NULL, OPT_SLAB_SIZE},
        {"granule", required_argument, NULL, OPT_GRANULE},
        {"netns-script", required_argument, NULL, OPT_NETNS_SCRIPT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static cfg_t cfg;
    const char *mode_name, *size_text = NULL, *granule_text = "64K";
    bench_cpu_mode_t cpu_mode = BENCH_CPU_AUTO;
    char farpoold_found[PATH_MAX];
    bool runs_given = false;
    uint64_t v;
    int opt, rc;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    mode_name = argv[1];
    if (strcmp(mode_name, "stripe") == 0) {
        cfg.mode = MODE_STRIPE;
    } else if (strcmp(mode_name, "failover") == 0) {
        cfg.mode = MODE_FAILOVER;
    } else if (strcmp(mode_name, "fault") == 0) {
        cfg.mode = MODE_FAULT;
    } else {
        fprintf(stderr, "bench_pool: unknown measurement '%s' (stripe, failover or fault)\n",
                mode_name);
        usage(stderr);
        return 2;
    }
    cfg.runs = 3;
    cfg.rate = "4gbit";
    cfg.kills = 5;
    cfg.dead_after = "1";
    optind = 2;
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case OPT_QUICK:
            cfg.quick = true;
            break;
        case OPT_RUNS:
            if (bench_parse_uint(optarg, 1, MAX_RUNS, &cfg.runs) != 0) {
                fprintf(stderr, "bench_pool: invalid --runs '%s' (1-%d)\n", optarg, MAX_RUNS);
                return 2;
            }
            runs_given = true;
            break;
        case OPT_KILLS:
            if (bench_parse_uint(optarg, 1, MAX_KILLS, &cfg.kills) != 0) {
                fprintf(stderr, "bench_pool: invalid --kills '%s' (1-%d)\n", optarg, MAX_KILLS);
                return 2;
            }
            break;
        case OPT_FARPOOLD:
            cfg.farpoold = optarg;
            break;
        case OPT_CPU:
            if (bench_cpu_mode_parse(optarg, &cpu_mode) != 0) {
                fprintf(stderr, "bench_pool: invalid --cpu '%s' (auto, split, same or none)\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_SIZE:
            size_text = optarg;
            break;
        case OPT_RATE:
            cfg.rate = optarg;
            break;
        case OPT_DEAD_AFTER:
            cfg.dead_after = optarg;
            break;
        case OPT_REPAIR_RATE:
            cfg.repair_rate = optarg;
            break;
        case OPT_SLAB_SIZE:
            cfg.slab_size = optarg;
            break;
        case OPT_GRANULE:
            granule_text = optarg;
            break;
        case OPT_NETNS_SCRIPT:
            cfg.netns_script = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "bench_pool: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    bench_init("bench_pool");
    if (cfg.mode == MODE_STRIPE && getenv("FARPOOL_NETNS") == NULL)
        return reexec_in_netns(&cfg, argc, argv);

    cfg.size = cfg.quick ? 256 * MIB : GIB;
    if (size_text != NULL) {
        if (fp_parse_size(size_text, &cfg.size) != FP_OK || cfg.size < 16 * MIB ||
            cfg.size % (2 * MIB) != 0) {
            fprintf(stderr, "bench_pool: invalid --size '%s' (a multiple of 2M, at least 16M)\n",
                    size_text);
            return 2;
        }
    }
    if (fp_parse_size(granule_text, &v) != FP_OK || v < 4 * KIB || v > 2 * MIB ||
        (v & (v - 1)) != 0) {
        fprintf(stderr, "bench_pool: invalid --granule '%s' (a power of two, 4K to 2M)\n",
                granule_text);
        return 2;
    }
    cfg.granule = (uint32_t)v;
    if (cfg.quick) {
        if (!runs_given)
            cfg.runs = 1;
        cfg.kills = cfg.kills < 2 ? cfg.kills : 2;
        cfg.raw_bytes = 256 * MIB;
        cfg.raw_warm = 8 * MIB;
        cfg.raw_limit_ns = 200 * FP_NS_PER_MS;
        cfg.rand_count = 2000;
        cfg.rand_limit_ns = 2000 * FP_NS_PER_MS;
        cfg.rand_size = 32 * MIB;
    } else {
        cfg.raw_bytes = 4 * GIB;
        cfg.raw_warm = 32 * MIB;
        cfg.raw_limit_ns = 500 * FP_NS_PER_MS;
        cfg.rand_count = 20000;
        cfg.rand_limit_ns = 10000 * FP_NS_PER_MS;
        cfg.rand_size = 256 * MIB;
    }
    if (cfg.farpoold == NULL) {
        if (!bench_farpoold_find(farpoold_found, sizeof(farpoold_found))) {
            fprintf(stderr, "bench_pool: farpoold not found beside this program, in the "
                            "directory above it or in PATH (use --farpoold PATH)\n");
            return 1;
        }
        cfg.farpoold = farpoold_found;
    }
    bench_cpus_find(cpu_mode, &cfg.cpus);
    rng_state = fp_time_ns() | 1;
    pool_sys_init();
    {
        struct sigaction sa;

        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_sigbus;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGBUS, &sa, NULL);
    }

    if (cfg.mode == MODE_STRIPE)
        rc = run_stripe(&cfg);
    else if (cfg.mode == MODE_FAILOVER)
        rc = run_failover(&cfg);
    else
        rc = run_fault(&cfg);
    fflush(stdout);
    pool_sys_cleanup();
    return rc;
}
