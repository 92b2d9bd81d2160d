/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench rw`: write SIZE bytes to a memory node, read them back,
 * verify every byte, print throughput (see rw.c). A subcommand of
 * farpool-bench (bench/farpool_bench.c); @argv[0] is "rw".
 */
#ifndef FP_BENCH_RW_H
#define FP_BENCH_RW_H

int bench_rw_main(int argc, char **argv);

#endif /* FP_BENCH_RW_H */
