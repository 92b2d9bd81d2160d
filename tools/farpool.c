/* SPDX-License-Identifier: MIT */
/*
 * farpool: the command-line tool. Dispatches to a subcommand; each lives in its
 * own cmd_*.c file and parses its own options. The benchmarks are another
 * program, farpool-bench (bench/): `farpool bench NAME ARGS...` execs it, so
 * this one links none of their code.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: farpool COMMAND [OPTIONS]\n"
            "Use the memory of other machines as a pool.\n\n"
            "Files in the pool (--pool farpool://HOST:PORT, default $FARPOOL_POOL):\n"
            "  put FILE NAME [--replicas N] [--granule SIZE] [--force] [--quiet]\n"
            "                                       store FILE as region NAME, with a checksum\n"
            "  get NAME FILE [--quiet]              copy region NAME into FILE, checked\n"
            "  cat NAME [--quiet]                   region NAME to standard output, checked\n"
            "  verify NAME [--json] [--quiet]       check every copy of every slab of NAME\n"
            "  ls [--all] [--json]                  list the regions\n"
            "  rm NAME                              delete region NAME\n"
            "  status --pool URL [--json]           members, regions and totals of the pool\n"
            "  node drain ADDR [--no-wait]          move a member's slabs to the others\n"
            "  run --map GLOB[=REGION]... -- CMD    run CMD with its mmaps of GLOB's files\n"
            "                                       served from the pool (docs/preload.md)\n\n"
            "Nodes and this machine:\n"
            "  status --node ADDR:PORT [--json]     show a memory node's capacity and use\n"
            "  status --clients [--json]            regions mapped by programs here\n"
            "  bench rw --node ADDR:PORT [--size S] write, read back and verify S bytes\n"
            "  bench moe [OPTIONS]                  the MoE expert-loading experiment\n"
            "  bench tiers [OPTIONS]                latency and bandwidth of each memory tier\n\n"
            "'farpool bench NAME ...' runs 'farpool-bench NAME ...'; see farpool-bench(1).\n\n"
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

    /* Without --secret-file, the library reads $FARPOOL_SECRET_FILE. */
    if (secret_file != NULL) {
        params.field_mask |= FARPOOL_NODE_PARAM_SECRET_FILE;
        params.secret_file = secret_file;
    }
    status = farpool_node_connect(addr, &params, node_p);
    if (status != FP_OK)
        fprintf(stderr, "farpool: cannot use node %s: %s\n", addr, fp_status_string(status));
    return status;
}

/*
 * `farpool bench NAME ARGS...`: exec `farpool-bench NAME ARGS...`, the one
 * beside this executable (/proc/self/exe), else the first in PATH. Returns
 * only if neither can be run.
 */
static int cli_bench(int argc, char **argv)
{
    char self[PATH_MAX], path[PATH_MAX + 16];
    char **args;
    ssize_t n;

    if (argc < 2)
        return cli_usage_error("", "bench needs a benchmark name: rw, moe or tiers");
    args = calloc((size_t)argc + 1, sizeof(*args));
    if (args == NULL) {
        fprintf(stderr, "farpool: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    args[0] = "farpool-bench";
    for (int i = 1; i < argc; i++)
        args[i] = argv[i];
    n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        char *slash;

        self[n] = '\0';
        slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(path, sizeof(path), "%s/farpool-bench", self);
            if (access(path, X_OK) == 0) {
                execv(path, args);
                fprintf(stderr, "farpool: cannot run %s: %s\n", path, strerror(errno));
                free(args);
                return CLI_EXIT_FAILURE;
            }
        }
    }
    execvp("farpool-bench", args);
    if (errno == ENOENT)
        fprintf(stderr, "farpool: farpool bench needs farpool-bench, which this installation "
                        "lacks; build with -DFP_BUILD_BENCH=ON\n");
    else
        fprintf(stderr, "farpool: cannot run farpool-bench: %s\n", strerror(errno));
    free(args);
    return CLI_EXIT_FAILURE;
}

/* The subcommands, each in its own cmd_*.c. */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
} commands[] = {
    {"status", cli_status}, {"put", cli_put},       {"get", cli_get},
    {"cat", cli_cat},       {"verify", cli_verify}, {"ls", cli_ls},
    {"rm", cli_rm},         {"node", cli_node},     {"run", cli_run},
};

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
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    if (strcmp(argv[1], "bench") == 0)
        return cli_bench(argc - 1, argv + 1);
    return cli_usage_error("", "unknown command '%s'", argv[1]);
}
