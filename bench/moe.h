/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench moe`: the MoE expert-loading experiment (see bench/README.md).
 * A subcommand of farpool-bench (bench/farpool_bench.c); @argv[0] is "moe".
 */
#ifndef FP_BENCH_MOE_H
#define FP_BENCH_MOE_H

int bench_moe_main(int argc, char **argv);

#endif /* FP_BENCH_MOE_H */
