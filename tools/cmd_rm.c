/* SPDX-License-Identifier: MIT */
/* `farpool rm NAME`: delete a region of the pool; its slabs are freed on every member. */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "client/pool.h"

static void rm_usage(void)
{
    printf("Usage: farpool rm NAME [--pool URL] [--secret-file FILE]\n"
           "Delete region NAME from the pool.\n\n"
           "  -p, --pool URL         the pool, farpool://HOST:PORT (default: $FARPOOL_POOL)\n"
           "  -k, --secret-file F    the pool's secret (default: $FARPOOL_SECRET_FILE)\n");
}

int cli_rm(int argc, char **argv)
{
    static const struct option options[] = {
        {"pool", required_argument, NULL, 'p'},
        {"secret-file", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pool = NULL, *url, *secret_file = NULL, *name;
    farpool_node_t *meta;
    fp_status_t status;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "p:k:h", options, NULL)) != -1) {
        switch (opt) {
        case 'p':
            pool = optarg;
            break;
        case 'k':
            secret_file = optarg;
            break;
        case 'h':
            rm_usage();
            return CLI_EXIT_OK;
        default:
            return cli_usage_error("rm ", "bad option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("rm ", "rm needs a region NAME");
    if (argc - optind > 1)
        return cli_usage_error("rm ", "unexpected argument '%s'", argv[optind + 1]);
    name = argv[optind];
    if (!cli_region_name_ok(name))
        return cli_usage_error("rm ", "bad region name '%s' (1-255 of A-Z a-z 0-9 . _ -)", name);
    rc = cli_pool_url("rm ", pool, &url);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (cli_pool_connect(url, secret_file, &meta) != FP_OK)
        return CLI_EXIT_FAILURE;
    status = fp_pool_delete(meta, name);
    farpool_node_close(meta);
    if (status == FP_ERR_NO_ENTRY) {
        fprintf(stderr, "farpool: no region '%s' in pool %s\n", name, url);
        return CLI_EXIT_FAILURE;
    }
    if (status != FP_OK) {
        fprintf(stderr, "farpool: cannot delete region '%s': %s\n", name, fp_status_string(status));
        return CLI_EXIT_FAILURE;
    }
    return CLI_EXIT_OK;
}
