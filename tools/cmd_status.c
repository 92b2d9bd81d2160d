/* SPDX-License-Identifier: MIT */
/*
 * `farpool status`: a memory node's capacity, use and counters (--node), the
 * regions mapped by programs here (--clients), or a pool's members, regions
 * and totals from its metadata node (--pool).
 *
 * --clients --prometheus writes the mappings' counters in Prometheus' text
 * format, for node_exporter's textfile collector: what the fault engines of
 * this machine see (faults, cache, fetches, prefetching) is known to no
 * daemon, whereas a node's and a pool's own figures are served by farpoold
 * --metrics, so those have no exporter here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "client/pool.h"
#include "client/stats.h"
#include "common/parse.h"
#include "json.h"
#include "meta/meta.h"
#include "progress.h"

static void status_usage(void)
{
    printf("Usage: farpool status --node ADDR:PORT [--json] [--secret-file FILE]\n"
           "       farpool status --pool URL [--json] [--secret-file FILE]\n"
           "       farpool status --clients [--json | --prometheus]\n"
           "Show a memory node's capacity, use, clients and traffic; a pool's members,\n"
           "regions and totals; or the regions mapped by programs running on this\n"
           "machine: faults, cache, prefetching.\n\n"
           "  -n, --node ADDR:PORT   the memory node (farpoold)\n"
           "  -p, --pool URL         the pool, farpool://HOST:PORT (its metadata node;\n"
           "                         $FARPOOL_POOL when neither --node nor --clients is given)\n"
           "  -c, --clients          regions mapped by running programs here\n"
           "  -j, --json             JSON, for scripts\n"
           "      --prometheus       (--clients) Prometheus text format, for node_exporter's\n"
           "                         textfile collector (nodes and pools: farpoold --metrics)\n"
           "  -k, --secret-file F    the pool's secret (default: $FARPOOL_SECRET_FILE)\n");
}

static void print_human(const char *addr, const farpool_node_stats_t *s)
{
    char cap[32], used[32], freeb[32], slab[32];
    uint64_t up = s->uptime_ms / 1000;

    fp_format_size(s->capacity, cap, sizeof(cap));
    fp_format_size(s->used, used, sizeof(used));
    fp_format_size(s->capacity - s->used, freeb, sizeof(freeb));
    fp_format_size(s->slab_size, slab, sizeof(slab));
    printf("node           %s\n", addr);
    printf("capacity       %s (%" PRIu64 " bytes)\n", cap, s->capacity);
    printf("used           %s (%" PRIu64 " bytes, %.1f%%)\n", used, s->used,
           s->capacity ? 100.0 * (double)s->used / (double)s->capacity : 0.0);
    printf("free           %s (%" PRIu64 " bytes)\n", freeb, s->capacity - s->used);
    printf("slabs          %" PRIu64 " of %s\n", s->slabs, slab);
    printf("clients        %" PRIu64 "\n", s->clients);
    printf("bytes read     %" PRIu64 "\n", s->bytes_read);
    printf("bytes written  %" PRIu64 "\n", s->bytes_written);
    printf("requests       %" PRIu64 "\n", s->requests);
    printf("errors         %" PRIu64 "\n", s->errors);
    printf("uptime         %" PRIu64 "d %02" PRIu64 ":%02" PRIu64 ":%02" PRIu64 "\n", up / 86400,
           up / 3600 % 24, up / 60 % 60, up % 60);
}

static void print_json(const char *addr, const farpool_node_stats_t *s)
{
    /* addr was parsed as HOST:PORT, so it holds no quote or backslash. */
    printf("{\"node\":\"%s\",\"capacity\":%" PRIu64 ",\"used\":%" PRIu64 ",\"free\":%" PRIu64
           ",\"slab_size\":%" PRIu64 ",\"slabs\":%" PRIu64 ",\"clients\":%" PRIu64
           ",\"bytes_read\":%" PRIu64 ",\"bytes_written\":%" PRIu64 ",\"requests\":%" PRIu64
           ",\"errors\":%" PRIu64 ",\"uptime_ms\":%" PRIu64 "}\n",
           addr, s->capacity, s->used, s->capacity - s->used, s->slab_size, s->slabs, s->clients,
           s->bytes_read, s->bytes_written, s->requests, s->errors, s->uptime_ms);
}

/* Percent @num / @den, or 0. */
static double pct(uint64_t num, uint64_t den)
{
    return den != 0 ? 100.0 * (double)num / (double)den : 0.0;
}

static void print_client(const fp_stats_shared_t *sh, bool json, bool first)
{
    farpool_stats_t s;
    uint64_t demand, accuracy_den, coverage_den;
    char cache[32], budget[32], size[32];

    fp_stats_read(sh, &s);
    demand = s.blocks_fetched > s.prefetch_issued ? s.blocks_fetched - s.prefetch_issued : 0;
    /* Accuracy is the automatic prefetcher's (hinted blocks' use is not seen). */
    accuracy_den = s.prefetch_issued - s.prefetch_hinted;
    coverage_den = s.prefetch_used + s.prefetch_late + s.prefetch_hinted + demand;
    if (json) {
        /* Region names are [A-Za-z0-9._-]; node addresses HOST:PORT: nothing to escape. */
        printf("%s{\"pid\":%d,\"region\":\"%s\",\"node\":\"%s\",\"size\":%" PRIu64
               ",\"granule\":%" PRIu64 ",\"cache_bytes\":%" PRIu64 ",\"cache_budget\":%" PRIu64
               ",\"faults\":%" PRIu64 ",\"minor_faults\":%" PRIu64 ",\"blocks_fetched\":%" PRIu64
               ",\"bytes_in\":%" PRIu64 ",\"bytes_out\":%" PRIu64 ",\"evictions\":%" PRIu64
               ",\"writebacks\":%" PRIu64 ",\"fetch_errors\":%" PRIu64 ",\"fetch_p50_ns\":%" PRIu64
               ",\"fetch_p99_ns\":%" PRIu64 ",\"prefetch_issued\":%" PRIu64
               ",\"prefetch_used\":%" PRIu64 ",\"prefetch_wasted\":%" PRIu64
               ",\"prefetch_late\":%" PRIu64 ",\"prefetch_hinted\":%" PRIu64
               ",\"prefetch_accuracy\":%.3f,\"prefetch_coverage\":%.3f}",
               first ? "" : ",", (int)sh->pid, sh->region, sh->node, sh->size, sh->granule,
               s.cache_bytes, sh->cache_budget, s.faults, s.minor_faults, s.blocks_fetched,
               s.bytes_in, s.bytes_out, s.evictions, s.writebacks, s.fetch_errors, s.fetch_p50_ns,
               s.fetch_p99_ns, s.prefetch_issued, s.prefetch_used, s.prefetch_wasted,
               s.prefetch_late, s.prefetch_hinted, pct(s.prefetch_used, accuracy_den) / 100,
               pct(s.prefetch_used + s.prefetch_late + s.prefetch_hinted, coverage_den) / 100);
        return;
    }
    fp_format_size(s.cache_bytes, cache, sizeof(cache));
    fp_format_size(sh->cache_budget, budget, sizeof(budget));
    fp_format_size(sh->size, size, sizeof(size));
    printf("pid %d  region %s  on %s  (%s, granule %" PRIu64 " KiB)\n", (int)sh->pid, sh->region,
           sh->node, size, sh->granule >> 10);
    printf("  cache        %s of %s; %" PRIu64 " evictions, %" PRIu64 " write-backs\n", cache,
           budget, s.evictions, s.writebacks);
    printf("  faults       %" PRIu64 " missing, %" PRIu64 " minor, %" PRIu64
           " write-protect; %" PRIu64 " fetch errors\n",
           s.faults, s.minor_faults, s.wp_faults, s.fetch_errors);
    printf("  fetched      %" PRIu64 " blocks, %" PRIu64 " bytes in, %" PRIu64
           " bytes out; latency p50 %.1f us, p99 %.1f us\n",
           s.blocks_fetched, s.bytes_in, s.bytes_out, (double)s.fetch_p50_ns / 1e3,
           (double)s.fetch_p99_ns / 1e3);
    printf("  prefetch     %" PRIu64 " issued (%" PRIu64 " hinted), %" PRIu64 " used, %" PRIu64
           " late, %" PRIu64 " wasted; accuracy %.1f%%, coverage %.1f%%\n",
           s.prefetch_issued, s.prefetch_hinted, s.prefetch_used, s.prefetch_late,
           s.prefetch_wasted, pct(s.prefetch_used, accuracy_den),
           pct(s.prefetch_used + s.prefetch_late + s.prefetch_hinted, coverage_den));
}

/* The metrics of --clients --prometheus: name, type, help. */
typedef struct prom_metric {
    const char *name, *type, *help;
} prom_metric_t;

enum {
    PM_SIZE,
    PM_CACHE,
    PM_BUDGET,
    PM_FAULTS,
    PM_FETCHED,
    PM_BYTES,
    PM_EVICTIONS,
    PM_WRITEBACKS,
    PM_FETCH_ERRORS,
    PM_P50,
    PM_P99,
    PM_MAX,
    PM_PF_ISSUED,
    PM_PF_USED,
    PM_PF_WASTED,
    PM_PF_LATE,
    PM_PF_HINTED,
    PM_COUNT
};

static const prom_metric_t prom_metrics[PM_COUNT] = {
    [PM_SIZE] = {"farpool_client_region_size_bytes", "gauge", "Size of the mapped region."},
    [PM_CACHE] = {"farpool_client_cache_bytes", "gauge", "Bytes of the region in the local cache."},
    [PM_BUDGET] = {"farpool_client_cache_budget_bytes", "gauge",
                   "The cache budget of the mapping's context."},
    [PM_FAULTS] = {"farpool_client_faults_total", "counter",
                   "Page faults handled, by kind (missing, minor, write_protect)."},
    [PM_FETCHED] = {"farpool_client_blocks_fetched_total", "counter",
                    "Blocks read from the memory nodes."},
    [PM_BYTES] = {"farpool_client_bytes_total", "counter",
                  "Bytes moved: in (fetched from nodes) and out (written back)."},
    [PM_EVICTIONS] = {"farpool_client_evictions_total", "counter",
                      "Blocks dropped from the cache."},
    [PM_WRITEBACKS] = {"farpool_client_writebacks_total", "counter",
                       "Dirty blocks written back to the nodes."},
    [PM_FETCH_ERRORS] = {"farpool_client_fetch_errors_total", "counter",
                         "Fetches that failed (the accesses got SIGBUS)."},
    [PM_P50] = {"farpool_client_fetch_p50_seconds", "gauge",
                "Median fetch latency, fault to data mapped (quarter-octave resolution)."},
    [PM_P99] = {"farpool_client_fetch_p99_seconds", "gauge",
                "99th percentile fetch latency (quarter-octave resolution)."},
    [PM_MAX] = {"farpool_client_fetch_max_seconds", "gauge", "Slowest fetch."},
    [PM_PF_ISSUED] = {"farpool_client_prefetch_issued_total", "counter",
                      "Blocks fetched ahead of use (automatic or hinted)."},
    [PM_PF_USED] = {"farpool_client_prefetch_used_total", "counter",
                    "Blocks the automatic prefetcher fetched that were then used."},
    [PM_PF_WASTED] = {"farpool_client_prefetch_wasted_total", "counter",
                      "Blocks the automatic prefetcher fetched that were dropped unused."},
    [PM_PF_LATE] = {"farpool_client_prefetch_late_total", "counter",
                    "Prefetched blocks touched while still in flight."},
    [PM_PF_HINTED] = {"farpool_client_prefetch_hinted_total", "counter",
                      "Blocks fetched for farpool_prefetch() hints."},
};

/* A label value as the text format wants it: backslash, quote and newline escaped. */
static void prom_label(const char *v, size_t cap)
{
    for (size_t i = 0; i < cap && v[i] != '\0'; i++) {
        if (v[i] == '\\' || v[i] == '"')
            printf("\\%c", v[i]);
        else if (v[i] == '\n')
            printf("\\n");
        else
            putchar(v[i]);
    }
}

/* One sample of metric @m for mapping @sh, with @extra ("kind=\"minor\"", or NULL). */
static void prom_sample(const fp_stats_shared_t *sh, int m, const char *extra, double v)
{
    printf("%s{pid=\"%d\",region=\"", prom_metrics[m].name, (int)sh->pid);
    prom_label(sh->region, sizeof(sh->region));
    printf("\",node=\"");
    prom_label(sh->node, sizeof(sh->node));
    printf("\"%s%s} %.17g\n", extra != NULL ? "," : "", extra != NULL ? extra : "", v);
}

/* The samples of metric @m for mapping @sh. */
static void prom_client(const fp_stats_shared_t *sh, const farpool_stats_t *s, int m)
{
    switch (m) {
    case PM_SIZE:
        prom_sample(sh, m, NULL, (double)sh->size);
        break;
    case PM_CACHE:
        prom_sample(sh, m, NULL, (double)s->cache_bytes);
        break;
    case PM_BUDGET:
        prom_sample(sh, m, NULL, (double)sh->cache_budget);
        break;
    case PM_FAULTS:
        prom_sample(sh, m, "kind=\"missing\"", (double)s->faults);
        prom_sample(sh, m, "kind=\"minor\"", (double)s->minor_faults);
        prom_sample(sh, m, "kind=\"write_protect\"", (double)s->wp_faults);
        break;
    case PM_FETCHED:
        prom_sample(sh, m, NULL, (double)s->blocks_fetched);
        break;
    case PM_BYTES:
        prom_sample(sh, m, "direction=\"in\"", (double)s->bytes_in);
        prom_sample(sh, m, "direction=\"out\"", (double)s->bytes_out);
        break;
    case PM_EVICTIONS:
        prom_sample(sh, m, NULL, (double)s->evictions);
        break;
    case PM_WRITEBACKS:
        prom_sample(sh, m, NULL, (double)s->writebacks);
        break;
    case PM_FETCH_ERRORS:
        prom_sample(sh, m, NULL, (double)s->fetch_errors);
        break;
    case PM_P50:
        prom_sample(sh, m, NULL, (double)s->fetch_p50_ns / 1e9);
        break;
    case PM_P99:
        prom_sample(sh, m, NULL, (double)s->fetch_p99_ns / 1e9);
        break;
    case PM_MAX:
        prom_sample(sh, m, NULL, (double)s->fetch_max_ns / 1e9);
        break;
    case PM_PF_ISSUED:
        prom_sample(sh, m, NULL, (double)s->prefetch_issued);
        break;
    case PM_PF_USED:
        prom_sample(sh, m, NULL, (double)s->prefetch_used);
        break;
    case PM_PF_WASTED:
        prom_sample(sh, m, NULL, (double)s->prefetch_wasted);
        break;
    case PM_PF_LATE:
        prom_sample(sh, m, NULL, (double)s->prefetch_late);
        break;
    case PM_PF_HINTED:
        prom_sample(sh, m, NULL, (double)s->prefetch_hinted);
        break;
    }
}

/*
 * The text format wants a metric's samples together, under its HELP and TYPE:
 * the mappings found are kept (copied) and written metric by metric.
 */
typedef struct prom_found {
    fp_stats_shared_t sh; /* the identity fields only: the counters are in s */
    farpool_stats_t s;
} prom_found_t;

static int prom_clients(const prom_found_t *found, size_t n)
{
    for (int m = 0; m < PM_COUNT; m++) {
        printf("# HELP %s %s\n# TYPE %s %s\n", prom_metrics[m].name, prom_metrics[m].help,
               prom_metrics[m].name, prom_metrics[m].type);
        for (size_t i = 0; i < n; i++)
            prom_client(&found[i].sh, &found[i].s, m);
    }
    printf("# HELP farpool_client_mappings Regions mapped by running programs on this machine.\n"
           "# TYPE farpool_client_mappings gauge\nfarpool_client_mappings %zu\n",
           n);
    return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
}

/* List the regions that running programs on this machine have mapped. */
static int status_clients(bool json, bool prom)
{
    DIR *dir = opendir("/dev/shm");
    struct dirent *de;
    unsigned n = 0;
    prom_found_t *found = NULL;
    size_t nfound = 0, capfound = 0;
    int rc = CLI_EXIT_OK;

    if (dir == NULL) {
        fprintf(stderr, "farpool: cannot list /dev/shm: %s\n", strerror(errno));
        return CLI_EXIT_FAILURE;
    }
    if (json)
        printf("[");
    while ((de = readdir(dir)) != NULL) {
        fp_stats_shared_t *sh;
        char name[300];
        int fd;

        if (strncmp(de->d_name, FP_STATS_PREFIX, strlen(FP_STATS_PREFIX)) != 0)
            continue;
        snprintf(name, sizeof(name), "/%s", de->d_name);
        fd = shm_open(name, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0)
            continue;
        sh = mmap(NULL, sizeof(*sh), PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (sh == MAP_FAILED)
            continue;
        /* Skip what is not ours to read; remove what programs that died left behind. */
        if (sh->magic == FP_STATS_MAGIC && sh->version == FP_STATS_VERSION) {
            if (prom && (kill(sh->pid, 0) == 0 || errno == EPERM)) {
                if (nfound == capfound) {
                    size_t cap = capfound ? capfound * 2 : 16;
                    prom_found_t *more = realloc(found, cap * sizeof(*found));

                    if (more == NULL) {
                        munmap(sh, sizeof(*sh));
                        fprintf(stderr, "farpool: out of memory\n");
                        rc = CLI_EXIT_FAILURE;
                        break;
                    }
                    found = more;
                    capfound = cap;
                }
                memset(&found[nfound].sh, 0, sizeof(found[nfound].sh));
                found[nfound].sh.pid = sh->pid;
                memcpy(found[nfound].sh.region, sh->region, sizeof(sh->region));
                memcpy(found[nfound].sh.node, sh->node, sizeof(sh->node));
                found[nfound].sh.region[sizeof(sh->region) - 1] = '\0';
                found[nfound].sh.node[sizeof(sh->node) - 1] = '\0';
                found[nfound].sh.size = sh->size;
                found[nfound].sh.cache_budget = sh->cache_budget;
                fp_stats_read(sh, &found[nfound].s);
                nfound++;
            } else if (kill(sh->pid, 0) == 0 || errno == EPERM) {
                if (!json && n > 0)
                    printf("\n");
                print_client(sh, json, n == 0);
                n++;
            } else if (errno == ESRCH) {
                shm_unlink(name); /* best effort: another user's file stays */
            }
        }
        munmap(sh, sizeof(*sh));
    }
    closedir(dir);
    if (prom) {
        if (rc == CLI_EXIT_OK)
            rc = prom_clients(found, nfound);
        free(found);
        return rc;
    }
    if (json)
        printf("]\n");
    else if (n == 0)
        printf("no mapped regions on this machine\n");
    return CLI_EXIT_OK;
}

/* Totals over the pool's members; free counts only live ones (draining ones take nothing). */
typedef struct pool_totals {
    uint64_t capacity, used, free;
    uint32_t nodes[4]; /* by FP_POOL_NODE_* */
    uint64_t regions, pending, bytes;
} pool_totals_t;

static void pool_totals(const fp_pool_node_entry_t *nodes, size_t nn,
                        const fp_pool_region_desc_t *regions, size_t nr, pool_totals_t *t)
{
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < nn; i++) {
        if (nodes[i].state < 4)
            t->nodes[nodes[i].state]++;
        if (nodes[i].state != FP_POOL_NODE_LIVE && nodes[i].state != FP_POOL_NODE_DRAINING)
            continue;
        t->capacity += nodes[i].capacity;
        t->used += nodes[i].used;
        if (nodes[i].state == FP_POOL_NODE_LIVE && nodes[i].capacity > nodes[i].used)
            t->free += nodes[i].capacity - nodes[i].used;
    }
    for (size_t i = 0; i < nr; i++) {
        if (regions[i].state == FP_META_REGION_PENDING) {
            t->pending++;
            continue;
        }
        t->regions++;
        t->bytes += regions[i].size;
    }
}

static void print_pool_json(const char *url, const fp_pool_node_entry_t *nodes, size_t nn,
                            const fp_pool_region_desc_t *regions, size_t nr, const pool_totals_t *t)
{
    bool first = true;

    printf("{\"pool\":");
    cli_json_string(stdout, url);
    printf(",\"nodes\":[");
    for (size_t i = 0; i < nn; i++) {
        printf("%s{\"address\":", i ? "," : "");
        cli_json_string(stdout, nodes[i].addr);
        printf(",\"member\":%" PRIu64 ",\"capacity\":%" PRIu64 ",\"used\":%" PRIu64
               ",\"slab_size\":%" PRIu64 ",\"state\":",
               nodes[i].member, nodes[i].capacity, nodes[i].used, nodes[i].slab_size);
        cli_json_string(stdout, fp_pool_node_state_name(nodes[i].state));
        printf(",\"seen_ms\":%" PRIu32 "}", nodes[i].seen_ms);
    }
    printf("],\"regions\":[");
    for (size_t i = 0; i < nr; i++) {
        if (regions[i].state == FP_META_REGION_PENDING)
            continue;
        printf("%s{\"name\":", first ? "" : ",");
        first = false;
        cli_json_string(stdout, regions[i].name.text);
        printf(",\"size\":%" PRIu64 ",\"granule\":%" PRIu32 ",\"replicas\":%" PRIu32 ",\"health\":",
               regions[i].size, regions[i].granule, regions[i].replicas);
        cli_json_string(stdout, fp_pool_health_name(regions[i].health));
        printf("}");
    }
    printf("],\"totals\":{\"capacity\":%" PRIu64 ",\"used\":%" PRIu64 ",\"free\":%" PRIu64
           ",\"regions\":%" PRIu64 ",\"pending_regions\":%" PRIu64 ",\"region_bytes\":%" PRIu64
           ",\"nodes_live\":%" PRIu32 ",\"nodes_dead\":%" PRIu32 ",\"nodes_draining\":%" PRIu32
           ",\"nodes_gone\":%" PRIu32 "}}\n",
           t->capacity, t->used, t->free, t->regions, t->pending, t->bytes,
           t->nodes[FP_POOL_NODE_LIVE], t->nodes[FP_POOL_NODE_DEAD],
           t->nodes[FP_POOL_NODE_DRAINING], t->nodes[FP_POOL_NODE_GONE]);
}

static void print_pool_human(const char *url, const fp_pool_node_entry_t *nodes, size_t nn,
                             const fp_pool_region_desc_t *regions, size_t nr,
                             const pool_totals_t *t)
{
    char cap[32], used[32], freeb[32], size[32], granule[32];
    int wa = 7, wn = 6;

    for (size_t i = 0; i < nn; i++)
        if ((int)strlen(nodes[i].addr) > wa)
            wa = (int)strlen(nodes[i].addr);
    for (size_t i = 0; i < nr; i++)
        if ((int)strlen(regions[i].name.text) > wn)
            wn = (int)strlen(regions[i].name.text);
    printf("pool %s\n\n", url);
    printf("%-*s  %10s  %10s  %5s  %-8s  %s\n", wa, "ADDRESS", "CAPACITY", "USED", "USE%", "STATE",
           "SEEN");
    for (size_t i = 0; i < nn; i++) {
        cli_format_bytes(nodes[i].capacity, cap, sizeof(cap));
        cli_format_bytes(nodes[i].used, used, sizeof(used));
        printf("%-*s  %10s  %10s  %4.0f%%  %-8s  %.1f s ago\n", wa, nodes[i].addr, cap, used,
               pct(nodes[i].used, nodes[i].capacity), fp_pool_node_state_name(nodes[i].state),
               (double)nodes[i].seen_ms / 1000.0);
    }
    if (nn == 0)
        printf("(no members)\n");
    printf("\n");
    if (t->regions != 0) {
        printf("%-*s  %10s  %7s  %8s  %s\n", wn, "REGION", "SIZE", "GRANULE", "REPLICAS", "HEALTH");
        for (size_t i = 0; i < nr; i++) {
            if (regions[i].state == FP_META_REGION_PENDING)
                continue;
            cli_format_bytes(regions[i].size, size, sizeof(size));
            fp_format_size(regions[i].granule, granule, sizeof(granule));
            printf("%-*s  %10s  %7s  %8" PRIu32 "  %s\n", wn, regions[i].name.text, size, granule,
                   regions[i].replicas, fp_pool_health_name(regions[i].health));
        }
        printf("\n");
    }
    cli_format_bytes(t->capacity, cap, sizeof(cap));
    cli_format_bytes(t->used, used, sizeof(used));
    cli_format_bytes(t->free, freeb, sizeof(freeb));
    cli_format_bytes(t->bytes, size, sizeof(size));
    printf("members   %" PRIu32 " live, %" PRIu32 " draining, %" PRIu32 " dead, %" PRIu32 " gone\n",
           t->nodes[FP_POOL_NODE_LIVE], t->nodes[FP_POOL_NODE_DRAINING],
           t->nodes[FP_POOL_NODE_DEAD], t->nodes[FP_POOL_NODE_GONE]);
    printf("capacity  %s (live and draining members)\n", cap);
    printf("used      %s (%.1f%%)\n", used, pct(t->used, t->capacity));
    printf("free      %s (on live members)\n", freeb);
    printf("regions   %" PRIu64 " holding %s", t->regions, size);
    if (t->pending != 0)
        printf("; %" PRIu64 " being put", t->pending);
    printf("\n");
}

/* The pool's members, regions and totals, from its metadata node. */
static int status_pool(const char *url, const char *secret_file, bool json)
{
    fp_pool_region_desc_t *regions = NULL;
    fp_pool_node_entry_t *nodes = NULL;
    size_t nn = 0, nr = 0;
    farpool_node_t *meta;
    fp_status_t status;
    pool_totals_t t;

    if (cli_pool_connect(url, secret_file, &meta) != FP_OK)
        return CLI_EXIT_FAILURE;
    status = fp_pool_nodes(meta, &nodes, &nn);
    if (status != FP_OK) {
        fprintf(stderr, "farpool: cannot list the members of pool %s: %s\n", url,
                fp_status_string(status));
    } else {
        status = fp_pool_regions(meta, &regions, &nr);
        if (status != FP_OK)
            fprintf(stderr, "farpool: cannot list the regions of pool %s: %s\n", url,
                    fp_status_string(status));
    }
    farpool_node_close(meta);
    if (status != FP_OK) {
        free(nodes);
        return CLI_EXIT_FAILURE;
    }
    for (size_t i = 0; i < nn; i++)
        nodes[i].addr[FP_POOL_ADDR_MAX] = '\0';
    for (size_t i = 0; i < nr; i++) {
        fp_proto_region_name_t *nm = &regions[i].name;

        nm->text[nm->len <= FP_PROTO_REGION_NAME_MAX ? nm->len : FP_PROTO_REGION_NAME_MAX] = '\0';
    }
    pool_totals(nodes, nn, regions, nr, &t);
    if (json)
        print_pool_json(url, nodes, nn, regions, nr, &t);
    else
        print_pool_human(url, nodes, nn, regions, nr, &t);
    free(nodes);
    free(regions);
    return CLI_EXIT_OK;
}

int cli_status(int argc, char **argv)
{
    static const struct option options[] = {
        {"node", required_argument, NULL, 'n'}, {"json", no_argument, NULL, 'j'},
        {"clients", no_argument, NULL, 'c'},    {"secret-file", required_argument, NULL, 'k'},
        {"pool", required_argument, NULL, 'p'}, {"prometheus", no_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *addr = NULL, *secret_file = NULL, *pool = NULL, *url;
    farpool_node_stats_t stats;
    farpool_node_t *node;
    int opt, json = 0, clients = 0, prom = 0, rc;
    fp_status_t status;

    while ((opt = getopt_long(argc, argv, "n:p:jck:h", options, NULL)) != -1) {
        switch (opt) {
        case 'n':
            addr = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'c':
            clients = 1;
            break;
        case 'p':
            pool = optarg;
            break;
        case 'M':
            prom = 1;
            break;
        case 'k':
            secret_file = optarg;
            break;
        case 'h':
            status_usage();
            return CLI_EXIT_OK;
        default:
            return cli_usage_error("status ", "bad option");
        }
    }
    if (optind < argc)
        return cli_usage_error("status ", "unexpected argument '%s'", argv[optind]);
    if (clients + (addr != NULL) + (pool != NULL) > 1)
        return cli_usage_error("status ", "give one of --node, --pool and --clients");
    if (prom && !clients)
        return cli_usage_error("status ", "--prometheus is for --clients; a node's and a pool's "
                                          "metrics are served by farpoold --metrics");
    if (prom && json)
        return cli_usage_error("status ", "give one of --json and --prometheus");
    if (clients)
        return status_clients(json, prom);
    if (addr == NULL) {
        /* --pool, else $FARPOOL_POOL; neither: the usage error says what is needed. */
        if (pool == NULL && getenv("FARPOOL_POOL") == NULL)
            return cli_usage_error("status ",
                                   "--node ADDR:PORT, --pool URL or --clients is required");
        rc = cli_pool_url("status ", pool, &url);
        if (rc != CLI_EXIT_OK)
            return rc;
        return status_pool(url, secret_file, json);
    }
    if (cli_connect(addr, secret_file, &node) != FP_OK)
        return CLI_EXIT_FAILURE;
    status = farpool_node_stats(node, &stats, sizeof(stats));
    farpool_node_close(node);
    if (status != FP_OK) {
        fprintf(stderr, "farpool: status of %s: %s\n", addr, fp_status_string(status));
        return CLI_EXIT_FAILURE;
    }
    if (json)
        print_json(addr, &stats);
    else
        print_human(addr, &stats);
    return CLI_EXIT_OK;
}
