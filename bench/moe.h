/* SPDX-License-Identifier: MIT */
/*
 * `farpool bench moe`: the MoE expert-loading experiment (see bench/README.md).
 * Linked into the farpool command-line tool; @argv[0] is "moe".
 */
#ifndef FP_BENCH_MOE_H
#define FP_BENCH_MOE_H

int bench_moe_main(int argc, char **argv);

#endif /* FP_BENCH_MOE_H */
