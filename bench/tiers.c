/* SPDX-License-Identifier: MIT */
/* `farpool bench tiers`: placeholder until the characterization lands. */
#include <stdio.h>

#include "tiers.h"

int bench_tiers_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "farpool bench tiers: not built yet\n");
    return 1;
}
