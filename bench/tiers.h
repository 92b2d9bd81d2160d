/* SPDX-License-Identifier: MIT */
/*
 * `farpool bench tiers`: the characterization of the memory tiers (see
 * bench/README.md). Linked into the farpool command-line tool; @argv[0] is "tiers".
 */
#ifndef FP_BENCH_TIERS_H
#define FP_BENCH_TIERS_H

int bench_tiers_main(int argc, char **argv);

#endif /* FP_BENCH_TIERS_H */
