/* SPDX-License-Identifier: MIT */
/* `farpool ls`: the regions of the pool, from its metadata node. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "cli.h"
#include "client/pool.h"
#include "common/parse.h"
#include "json.h"
#include "meta/meta.h"
#include "progress.h"

static void ls_usage(void)
{
    printf("Usage: farpool ls [--all] [--json] [--pool URL] [--secret-file FILE]\n"
           "List the regions of the pool: name, size, granule, replicas, health, the start\n"
           "of the checksum, and when each was created.\n\n"
           "  -a, --all              also regions being put (not published yet)\n"
           "  -j, --json             JSON, for scripts\n"
           "  -p, --pool URL         the pool, farpool://HOST:PORT (default: $FARPOOL_POOL)\n"
           "  -k, --secret-file F    the pool's secret (default: $FARPOOL_SECRET_FILE)\n");
}

static int by_name(const void *a, const void *b)
{
    const fp_pool_region_desc_t *x = a, *y = b;
    int c = strcmp(x->name.text, y->name.text);

    return c != 0 ? c : (x->id > y->id) - (x->id < y->id);
}

/* "2026-12-07 14:03:12" in local time, or "-". */
static void format_time(uint64_t ms, char *buf, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms == 0 || localtime_r(&t, &tm) == NULL || strftime(buf, cap, "%F %T", &tm) == 0)
        snprintf(buf, cap, "-");
}

static void print_json(const fp_pool_region_desc_t *r, size_t n)
{
    bool first = true;

    printf("[");
    for (size_t i = 0; i < n; i++) {
        printf("%s{\"name\":", first ? "" : ",");
        first = false;
        cli_json_string(stdout, r[i].name.text);
        printf(",\"size\":%" PRIu64 ",\"granule\":%" PRIu32 ",\"replicas\":%" PRIu32
               ",\"slab_size\":%" PRIu64 ",\"slabs\":%" PRIu32 ",\"health\":",
               r[i].size, r[i].granule, r[i].replicas, r[i].slab_size, r[i].nslabs);
        cli_json_string(stdout, fp_pool_health_name(r[i].health));
        printf(",\"state\":\"%s\",\"checksum\":",
               r[i].state == FP_META_REGION_PENDING ? "pending" : "ready");
        if (r[i].has_checksum)
            cli_json_hex(stdout, r[i].checksum, sizeof(r[i].checksum));
        else
            printf("null");
        printf(",\"created_ms\":%" PRIu64 "}", r[i].created_ms);
    }
    printf("]\n");
}

static void print_table(const fp_pool_region_desc_t *r, size_t n, bool all)
{
    char size[32], granule[32], sum[2 * FP_POOL_HASH_SIZE + 1], created[64];
    int w = 4;

    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(r[i].name.text) > w)
            w = (int)strlen(r[i].name.text);
    printf("%-*s  %10s  %7s  %8s  %-9s  %-12s  %-*s%s\n", w, "NAME", "SIZE", "GRANULE", "REPLICAS",
           "HEALTH", "CHECKSUM", all ? 19 : 0, "CREATED", all ? "  STATE" : "");
    for (size_t i = 0; i < n; i++) {
        cli_format_bytes(r[i].size, size, sizeof(size));
        fp_format_size(r[i].granule, granule, sizeof(granule));
        if (r[i].has_checksum)
            sodium_bin2hex(sum, sizeof(sum), r[i].checksum, 6);
        else
            snprintf(sum, sizeof(sum), "-");
        format_time(r[i].created_ms, created, sizeof(created));
        printf("%-*s  %10s  %7s  %8" PRIu32 "  %-9s  %-12s  %-*s%s\n", w, r[i].name.text, size,
               granule, r[i].replicas, fp_pool_health_name(r[i].health), sum, all ? 19 : 0, created,
               !all                                   ? ""
               : r[i].state == FP_META_REGION_PENDING ? "  pending"
                                                      : "  ready");
    }
}

int cli_ls(int argc, char **argv)
{
    static const struct option options[] = {
        {"all", no_argument, NULL, 'a'},        {"json", no_argument, NULL, 'j'},
        {"pool", required_argument, NULL, 'p'}, {"secret-file", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *pool = NULL, *url, *secret_file = NULL;
    fp_pool_region_desc_t *regions;
    farpool_node_t *meta;
    fp_status_t status;
    bool all = false, json = false;
    size_t count, n = 0;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "ajp:k:h", options, NULL)) != -1) {
        switch (opt) {
        case 'a':
            all = true;
            break;
        case 'j':
            json = true;
            break;
        case 'p':
            pool = optarg;
            break;
        case 'k':
            secret_file = optarg;
            break;
        case 'h':
            ls_usage();
            return CLI_EXIT_OK;
        default:
            return cli_usage_error("ls ", "bad option");
        }
    }
    if (optind < argc)
        return cli_usage_error("ls ", "unexpected argument '%s'", argv[optind]);
    rc = cli_pool_url("ls ", pool, &url);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (sodium_init() < 0) {
        fprintf(stderr, "farpool: libsodium cannot be initialised\n");
        return CLI_EXIT_FAILURE;
    }
    if (cli_pool_connect(url, secret_file, &meta) != FP_OK)
        return CLI_EXIT_FAILURE;
    status = fp_pool_regions(meta, &regions, &count);
    farpool_node_close(meta);
    if (status != FP_OK) {
        fprintf(stderr, "farpool: cannot list the regions of pool %s: %s\n", url,
                fp_status_string(status));
        return CLI_EXIT_FAILURE;
    }
    /* Keep what is shown, in name order. */
    for (size_t i = 0; i < count; i++) {
        fp_proto_region_name_t *nm = &regions[i].name;

        nm->text[nm->len <= FP_PROTO_REGION_NAME_MAX ? nm->len : FP_PROTO_REGION_NAME_MAX] = '\0';
        if (all || regions[i].state != FP_META_REGION_PENDING)
            regions[n++] = regions[i];
    }
    if (n > 1)
        qsort(regions, n, sizeof(*regions), by_name);
    if (json)
        print_json(regions, n);
    else
        print_table(regions, n, all);
    free(regions);
    return CLI_EXIT_OK;
}
