/* SPDX-License-Identifier: MIT */
/*
 * `farpool cat NAME`: a pool region to standard output, by the same reading
 * path as get. The checksum can only be checked once every byte has been
 * written: a mismatch is an error exit after the fact.
 */
#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "cli.h"

static void cat_usage(void)
{
    printf("Usage: farpool cat NAME [--pool URL] [--quiet] [--secret-file FILE]\n"
           "Write region NAME of the pool to standard output, then check it against the\n"
           "checksum it was put with (exit 1 on a mismatch).\n\n"
           "  -p, --pool URL         the pool, farpool://HOST:PORT (default: $FARPOOL_POOL)\n"
           "  -q, --quiet            no progress bar on standard error\n"
           "  -k, --secret-file F    the pool's secret (default: $FARPOOL_SECRET_FILE)\n");
}

int cli_cat(int argc, char **argv)
{
    static const struct option options[] = {
        {"pool", required_argument, NULL, 'p'},
        {"quiet", no_argument, NULL, 'q'},
        {"secret-file", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pool = NULL, *url, *secret_file = NULL, *name;
    char label[300];
    bool quiet = false;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "p:qk:h", options, NULL)) != -1) {
        switch (opt) {
        case 'p':
            pool = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'k':
            secret_file = optarg;
            break;
        case 'h':
            cat_usage();
            return CLI_EXIT_OK;
        default:
            return cli_usage_error("cat ", "bad option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("cat ", "cat needs a region NAME");
    if (argc - optind > 1)
        return cli_usage_error("cat ", "unexpected argument '%s'", argv[optind + 1]);
    name = argv[optind];
    if (!cli_region_name_ok(name))
        return cli_usage_error("cat ", "bad region name '%s' (1-255 of A-Z a-z 0-9 . _ -)", name);
    rc = cli_pool_url("cat ", pool, &url);
    if (rc != CLI_EXIT_OK)
        return rc;
    cli_catch_sigbus(NULL);
    snprintf(label, sizeof(label), "cat %.200s", name);
    return cli_region_read(url, secret_file, name, STDOUT_FILENO, label, quiet);
}
