/* SPDX-License-Identifier: MIT */
/*
 * What the pool commands of the farpool tool share: the pool's URL, the
 * connection to its metadata node and a context on it, region names,
 * interruption by a signal, and writes from a mapped region.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "client/pool.h"
#include "proto/proto.h"

volatile sig_atomic_t cli_signal;

int cli_pool_url(const char *cmd, const char *opt, const char **url_p)
{
    const char *url = opt;
    fp_status_t status;

    if (url == NULL || *url == '\0')
        url = getenv("FARPOOL_POOL");
    if (url == NULL || *url == '\0')
        return cli_usage_error(cmd, "no pool: give --pool farpool://HOST:PORT or set "
                                    "FARPOOL_POOL");
    status = fp_pool_url_check(url);
    if (status != FP_OK)
        return cli_usage_error(cmd,
                               "bad pool URL '%s'%s: %s (expected farpool://HOST:PORT or "
                               "etcd://HOST:PORT[,HOST:PORT...]/PREFIX)",
                               url, opt == NULL ? " (from FARPOOL_POOL)" : "",
                               fp_status_string(status));
    *url_p = url;
    return CLI_EXIT_OK;
}

fp_status_t cli_pool_connect(const char *url, const char *secret_file, farpool_node_t **meta_p)
{
    char addr[FP_POOL_ADDR_MAX + 1];
    fp_status_t status;

    status = fp_pool_url_resolve(url, NULL, addr, sizeof(addr));
    if (status != FP_OK) {
        fprintf(stderr, "farpool: cannot find the metadata service of pool %s: %s\n", url,
                fp_status_string(status));
        return status;
    }
    return cli_connect(addr, secret_file, meta_p);
}

fp_status_t cli_pool_context(const char *url, const char *secret_file, farpool_context_t **ctx_p)
{
    farpool_context_params_t params = {0};
    fp_status_t status;

    params.field_mask = FARPOOL_CONTEXT_PARAM_POOL | FARPOOL_CONTEXT_PARAM_CACHE_BYTES;
    params.pool = url;
    params.cache_bytes = CLI_CACHE_BYTES;
    if (secret_file != NULL) {
        params.field_mask |= FARPOOL_CONTEXT_PARAM_SECRET_FILE;
        params.secret_file = secret_file;
    }
    status = farpool_context_create(&params, ctx_p);
    if (status != FP_OK)
        fprintf(stderr, "farpool: cannot use pool %s: %s\n", url, fp_status_string(status));
    return status;
}

bool cli_region_name_ok(const char *name)
{
    return fp_proto_region_name_valid(name, strlen(name));
}

static void on_signal(int sig)
{
    cli_signal = sig;
}

void cli_catch_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = (int)SA_RESETHAND; /* no SA_RESTART: a blocking read(2) returns EINTR */
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
}

const char *cli_signal_name(int sig)
{
    switch (sig) {
    case SIGINT:
        return "SIGINT";
    case SIGTERM:
        return "SIGTERM";
    case SIGHUP:
        return "SIGHUP";
    default:
        return "a signal";
    }
}

static const char *sigbus_unlink;

static void on_sigbus(int sig)
{
    static const char msg[] = "farpool: bytes of the region could not be fetched from the pool "
                              "(SIGBUS; the reason is logged above)\n";

    (void)sig;
    if (sigbus_unlink != NULL)
        unlink(sigbus_unlink);
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to be done */
    }
    _exit(CLI_EXIT_FAILURE);
}

void cli_catch_sigbus(const char *unlink_path)
{
    struct sigaction sa;

    sigbus_unlink = unlink_path;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}

int cli_write_all(int fd, const void *buf, size_t len, void *bounce, size_t bounce_cap)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);

        if (n < 0 && errno == EFAULT && bounce != NULL) {
            size_t part = len < bounce_cap ? len : bounce_cap;

            memcpy(bounce, p, part); /* the fault is taken here, in user mode */
            if (cli_write_all(fd, bounce, part, NULL, 0) != 0)
                return -1;
            n = (ssize_t)part;
        } else if (n < 0 && errno == EINTR) {
            if (cli_signal != 0)
                return -1;
            continue;
        } else if (n < 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
