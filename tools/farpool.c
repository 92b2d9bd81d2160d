/* SPDX-License-Identifier: MIT */
/*
 * farpool: the command-line tool. Dispatches to a subcommand; each lives in its
 * own cmd_*.c file and parses its own options.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#ifdef FP_HAVE_BENCH
#include "moe.h"
#include "tiers.h"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: farpool COMMAND [OPTIONS]\n"
            "Use the memory of other machines as a pool.\n\n"
            "Commands:\n"
            "  status --node ADDR:PORT [--json]     show a memory node's capacity and use\n"
            "  status --clients [--json]            regions mapped by programs here\n"
            "  bench rw --node ADDR:PORT [--size S] write, read back and verify S bytes\n"
            "  bench moe [OPTIONS]                  the MoE expert-loading experiment\n"
            "  bench tiers [OPTIONS]                latency and bandwidth of each memory tier\n\n"
            "Options of every command:\n"
            "  --secret-file FILE   the pool's secret (default: $FARPOOL_SECRET_FILE)\n"
            "  -h, --help           help of a command\n\n"
            "  farpool --version    show the version\n\n"
            "See farpool(1).\n");
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "farpool: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'farpool %s--help'.\n", cmd);
    return CLI_EXIT_USAGE;
}

fp_status_t cli_connect(const char *addr, const char *secret_file, farpool_node_t **node_p)
{
    farpool_node_params_t params = {0};
    fp_status_t status;

    if (secret_file == NULL)
        secret_file = getenv("FARPOOL_SECRET_FILE");
    if (secret_file != NULL && secret_file[0] != '\0') {
        params.field_mask |= FARPOOL_NODE_PARAM_SECRET_FILE;
        params.secret_file = secret_file;
    }
    status = farpool_node_connect(addr, &params, node_p);
    if (status != FP_OK)
        fprintf(stderr, "farpool: cannot use node %s: %s\n", addr, fp_status_string(status));
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("farpool %d.%d.%d\n", FARPOOL_VERSION / 10000, FARPOOL_VERSION / 100 % 100,
               FARPOOL_VERSION % 100);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "status") == 0)
        return cli_status(argc - 1, argv + 1);
    if (strcmp(argv[1], "bench") == 0) {
        if (argc >= 3 && strcmp(argv[2], "rw") == 0)
            return cli_bench_rw(argc - 2, argv + 2);
#ifdef FP_HAVE_BENCH
        if (argc >= 3 && strcmp(argv[2], "moe") == 0)
            return bench_moe_main(argc - 2, argv + 2);
        if (argc >= 3 && strcmp(argv[2], "tiers") == 0)
            return bench_tiers_main(argc - 2, argv + 2);
        return cli_usage_error("", "bench needs a benchmark name: rw, moe or tiers");
#else
        return cli_usage_error("", "bench needs a benchmark name: rw (built without bench/)");
#endif
    }
    return cli_usage_error("", "unknown command '%s'", argv[1]);
}
