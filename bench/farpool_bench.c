/* SPDX-License-Identifier: MIT */
/*
 * farpool-bench: the benchmarks a user runs by name, in a program of their
 * own, apart from the farpool command-line tool (tools/farpool.c), which links
 * none of their code: `farpool bench NAME ARGS...` execs `farpool-bench NAME
 * ARGS...`. Each benchmark lives in its own files and parses its own options;
 * it gets the arguments from its name on (its @argv[0] is the name).
 *
 * Built with -DFP_BUILD_BENCH=ON (the default, when libmemcached is found) and
 * installed beside farpool; see farpool-bench(1) and bench/README.md.
 */
#include <stdio.h>
#include <string.h>

#include <farpool/farpool.h>

#include "moe.h"
#include "rw.h"
#include "tiers.h"

#define EXIT_USAGE 2

typedef struct bench_cmd {
    const char *name;
    int (*main)(int argc, char **argv);
} bench_cmd_t;

static const bench_cmd_t cmds[] = {
    {"rw", bench_rw_main},
    {"moe", bench_moe_main},
    {"tiers", bench_tiers_main},
};

static void usage(FILE *out)
{
    fprintf(out, "Usage: farpool-bench BENCHMARK [OPTIONS]\n"
                 "       farpool bench BENCHMARK [OPTIONS]   (the same, through farpool)\n"
                 "The farpool benchmarks.\n\n"
                 "Benchmarks:\n"
                 "  rw --node ADDR:PORT [--size S]  write, read back and verify S bytes on a node\n"
                 "  moe [OPTIONS]                   the MoE expert-loading experiment\n"
                 "  tiers [OPTIONS]                 latency and bandwidth of each memory tier\n\n"
                 "  farpool-bench BENCHMARK --help  the options of a benchmark\n"
                 "  farpool-bench --version         show the version\n\n"
                 "See farpool-bench(1).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("farpool-bench %d.%d.%d\n", FARPOOL_VERSION / 10000, FARPOOL_VERSION / 100 % 100,
               FARPOOL_VERSION % 100);
        return 0;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].main(argc - 1, argv + 1);
    }
    fprintf(stderr,
            "farpool-bench: unknown benchmark '%s' (rw, moe or tiers)\n"
            "Try 'farpool-bench --help'.\n",
            argv[1]);
    return EXIT_USAGE;
}
