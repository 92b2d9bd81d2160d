/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench tiers`: the characterization of the memory tiers (see
 * bench/README.md). A subcommand of farpool-bench (bench/farpool_bench.c);
 * @argv[0] is "tiers".
 */
#ifndef FP_BENCH_TIERS_H
#define FP_BENCH_TIERS_H

int bench_tiers_main(int argc, char **argv);

#endif /* FP_BENCH_TIERS_H */
