/* SPDX-License-Identifier: MIT */
/* `farpool bench moe`: placeholder until the experiment lands. */
#include <stdio.h>

#include "moe.h"

int bench_moe_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "farpool bench moe: not built yet\n");
    return 1;
}
