/* SPDX-License-Identifier: MIT */
/* `farpool status`: a memory node's capacity, use and counters. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "client/stats.h"
#include "common/parse.h"

static void status_usage(void)
{
    printf("Usage: farpool status --node ADDR:PORT [--json] [--secret-file FILE]\n"
           "       farpool status --clients [--json]\n"
           "Show a memory node's capacity, use, clients and traffic, or the regions\n"
           "mapped by programs running on this machine: faults, cache, prefetching.\n\n"
           "  -n, --node ADDR:PORT   the memory node (farpoold)\n"
           "  -c, --clients          regions mapped by running programs here\n"
           "  -j, --json             JSON, for scripts\n"
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

/* List the regions that running programs on this machine have mapped. */
static int status_clients(bool json)
{
    DIR *dir = opendir("/dev/shm");
    struct dirent *de;
    unsigned n = 0;

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
            if (kill(sh->pid, 0) == 0 || errno == EPERM) {
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
    if (json)
        printf("]\n");
    else if (n == 0)
        printf("no mapped regions on this machine\n");
    return CLI_EXIT_OK;
}

int cli_status(int argc, char **argv)
{
    static const struct option options[] = {
        {"node", required_argument, NULL, 'n'}, {"json", no_argument, NULL, 'j'},
        {"clients", no_argument, NULL, 'c'},    {"secret-file", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *addr = NULL, *secret_file = NULL;
    farpool_node_stats_t stats;
    farpool_node_t *node;
    int opt, json = 0, clients = 0;
    fp_status_t status;

    while ((opt = getopt_long(argc, argv, "n:jck:h", options, NULL)) != -1) {
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
    if (clients && addr != NULL)
        return cli_usage_error("status ", "give --node or --clients, not both");
    if (clients)
        return status_clients(json);
    if (addr == NULL)
        return cli_usage_error("status ", "--node ADDR:PORT or --clients is required");
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
