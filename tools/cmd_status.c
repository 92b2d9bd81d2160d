/* SPDX-License-Identifier: MIT */
/* `farpool status`: a memory node's capacity, use and counters. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>

#include "cli.h"
#include "common/parse.h"

static void status_usage(void)
{
    printf("Usage: farpool status --node ADDR:PORT [--json] [--secret-file FILE]\n"
           "Show a memory node's capacity, use, clients and traffic.\n\n"
           "  -n, --node ADDR:PORT   the memory node (farpoold)\n"
           "  -j, --json             one JSON object, for scripts\n"
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

int cli_status(int argc, char **argv)
{
    static const struct option options[] = {
        {"node", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"secret-file", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *addr = NULL, *secret_file = NULL;
    farpool_node_stats_t stats;
    farpool_node_t *node;
    int opt, json = 0;
    fp_status_t status;

    while ((opt = getopt_long(argc, argv, "n:jk:h", options, NULL)) != -1) {
        switch (opt) {
        case 'n':
            addr = optarg;
            break;
        case 'j':
            json = 1;
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
    if (addr == NULL)
        return cli_usage_error("status ", "--node ADDR:PORT is required");
    if (cli_connect(addr, secret_file, &node) != FP_OK)
        return CLI_EXIT_FAILURE;
    status = farpool_node_stats(node, &stats);
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
