/* SPDX-License-Identifier: MIT */
/* The farpool command-line tool: shared declarations of its subcommands. */
#ifndef FP_TOOLS_CLI_H
#define FP_TOOLS_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <farpool/farpool.h>

/* Exit codes of every subcommand. */
#define CLI_EXIT_OK      0
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE   2

/* The subcommands: argv[0] is the command's name. */
int cli_status(int argc, char **argv);
int cli_put(int argc, char **argv);
int cli_get(int argc, char **argv);
int cli_cat(int argc, char **argv);
int cli_verify(int argc, char **argv);
int cli_ls(int argc, char **argv);
int cli_rm(int argc, char **argv);
int cli_node(int argc, char **argv);
int cli_run(int argc, char **argv);

/* Print "farpool: MSG\nTry 'farpool CMD --help'." and return CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Connect to @addr with the secret from @secret_file, or from
 * FARPOOL_SECRET_FILE when @secret_file is NULL. Prints the error.
 */
fp_status_t cli_connect(const char *addr, const char *secret_file, farpool_node_t **node_p);

/* Local cache budget of the contexts of put, get and cat: big files need no more RAM. */
#define CLI_CACHE_BYTES (256ull << 20)

/*
 * The pool's URL: @opt (--pool) if given, else $FARPOOL_POOL. Checked with
 * fp_pool_url_parse(). CLI_EXIT_OK with *@url_p set, or a usage error of
 * command @cmd ("put ") printed and returned.
 */
int cli_pool_url(const char *cmd, const char *opt, const char **url_p);

/* Connect to the metadata node of pool @url. Prints the error. */
fp_status_t cli_pool_connect(const char *url, const char *secret_file, farpool_node_t **meta_p);

/* A context on pool @url with a cache of CLI_CACHE_BYTES. Prints the error. */
fp_status_t cli_pool_context(const char *url, const char *secret_file, farpool_context_t **ctx_p);

/* True if @name is a valid region name (1-255 bytes of [A-Za-z0-9._-]). */
bool cli_region_name_ok(const char *name);

/*
 * The signal (SIGINT, SIGTERM, SIGHUP) that interrupted a transfer, 0 while
 * none has. cli_catch_signals() installs the handler, which records the
 * signal and restores the default action, so that a second one kills.
 */
extern volatile sig_atomic_t cli_signal;
void cli_catch_signals(void);

/* "SIGINT", "SIGTERM", "SIGHUP", else "a signal". */
const char *cli_signal_name(int sig);

/*
 * On SIGBUS (bytes of a mapped region could not be fetched: the library has
 * logged why) say so, unlink @unlink_path (NULL: nothing; kept, not copied)
 * and exit CLI_EXIT_FAILURE, instead of dumping core.
 */
void cli_catch_sigbus(const char *unlink_path);

/*
 * Write the @len bytes at @buf (which may be a mapped region) to @fd. A
 * region mapped in user-mode-only mode makes write(2) from a page not yet
 * touched fail with EFAULT; then the bytes go through @bounce (@bounce_cap
 * bytes) instead. Returns 0, or -1 with errno set.
 */
int cli_write_all(int fd, const void *buf, size_t len, void *bounce, size_t bounce_cap);

/*
 * The reading path of get and cat: map region @name of pool @url read-only,
 * write its bytes to @fd in order and check them against the region's
 * BLAKE2b-256 checksum (a region without one is written and said to be
 * unchecked). @label names the transfer on the progress bar, shown unless
 * @quiet. Returns CLI_EXIT_OK, or CLI_EXIT_FAILURE (said why on stderr; the
 * bytes written so far are the caller's to discard).
 */
int cli_region_read(const char *url, const char *secret_file, const char *name, int fd,
                    const char *label, bool quiet);

#endif /* FP_TOOLS_CLI_H */
