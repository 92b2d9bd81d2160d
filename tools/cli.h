/* SPDX-License-Identifier: MIT */
/* The farpool command-line tool: shared declarations of its subcommands. */
#ifndef FP_TOOLS_CLI_H
#define FP_TOOLS_CLI_H

#include <farpool/farpool.h>

/* Exit codes of every subcommand. */
#define CLI_EXIT_OK      0
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE   2

int cli_status(int argc, char **argv);

/* Print "farpool: MSG\nTry 'farpool CMD --help'." and return CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Connect to @addr with the secret from @secret_file, or from
 * FARPOOL_SECRET_FILE when @secret_file is NULL. Prints the error.
 */
fp_status_t cli_connect(const char *addr, const char *secret_file, farpool_node_t **node_p);

#endif /* FP_TOOLS_CLI_H */
