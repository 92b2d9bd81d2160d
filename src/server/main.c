/* SPDX-License-Identifier: MIT */
/*
 * farpoold: the memory node daemon. Parses the command line, loads the
 * secret, runs the server (server.c) until SIGTERM or SIGINT.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <farpool/farpool.h>

#include "common/log.h"
#include "common/parse.h"
#include "common/secret.h"
#include "server.h"
#include "slab.h"

#define DEFAULT_LISTEN    "127.0.0.1:7070"
#define DEFAULT_CAPACITY  (1ull << 30)
#define DEFAULT_SLAB_SIZE (64ull << 20)

static fp_server_t *running_server; /* for the signal handler only */

static void on_signal(int sig)
{
    (void)sig;
    if (running_server != NULL)
        fp_server_stop(running_server);
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: farpoold [OPTIONS]\n"
            "Donate this machine's memory to a farpool pool.\n\n"
            "  -l, --listen ADDR:PORT       address to serve (default " DEFAULT_LISTEN
            "; [::1]:PORT for IPv6;\n"
            "                               port 0 picks a free port)\n"
            "  -c, --capacity SIZE          memory to donate at most (default 1G; 512M, 4G, ...)\n"
            "  -s, --slab-size SIZE         unit of allocation, a power of two (default 64M)\n"
            "  -k, --secret-file FILE       pre-shared secret; required off loopback\n"
            "  -p, --port-file FILE         write HOST:PORT here once listening\n"
            "      --handshake-timeout SEC  drop clients that have not authenticated (default 5)\n"
            "      --idle-timeout SEC       drop clients stuck mid-request (default 300)\n"
            "  -L, --log-level LEVEL        error, warn, info, debug or trace (default info)\n"
            "  -h, --help                   show this help\n"
            "  -V, --version                show the version\n\n"
            "See farpoold(8).\n");
}

static int bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int bad_usage(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "farpoold: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'farpoold --help'.\n");
    return 2;
}

static int parse_seconds(const char *text, int *ms_p)
{
    uint64_t v;

    if (fp_parse_size(text, &v) != FP_OK || v == 0 || v > 86400 || strpbrk(text, "kKmMgGtTpPbB"))
        return -1;
    *ms_p = (int)v * 1000;
    return 0;
}

static int write_port_file(const char *path, const fp_addr_t *addr)
{
    char text[96];
    char tmp[4096];
    FILE *f;

    fp_addr_format(addr, text, sizeof(text));
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -1;
    f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    fprintf(f, "%s\n", text);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    enum { OPT_HANDSHAKE = 256, OPT_IDLE };
    static const struct option options[] = {
        {"listen", required_argument, NULL, 'l'},
        {"capacity", required_argument, NULL, 'c'},
        {"slab-size", required_argument, NULL, 's'},
        {"secret-file", required_argument, NULL, 'k'},
        {"port-file", required_argument, NULL, 'p'},
        {"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE},
        {"idle-timeout", required_argument, NULL, OPT_IDLE},
        {"log-level", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *listen_text = DEFAULT_LISTEN, *secret_file = NULL, *port_file = NULL;
    fp_server_params_t params;
    uint8_t secret[FP_SECRET_MAX];
    size_t secret_len = 0;
    struct sigaction sa;
    fp_server_t *server;
    fp_addr_t local;
    char local_text[96], cap_text[32], slab_text[32];
    fp_status_t status;
    fp_log_t log;
    int opt, level;

    fp_log_init(&log, "farpoold", FP_LOG_INFO, NULL, NULL);
    memset(&params, 0, sizeof(params));
    params.log = &log;
    params.capacity = DEFAULT_CAPACITY;
    params.slab_size = DEFAULT_SLAB_SIZE;
    params.handshake_timeout_ms = 5000;
    params.idle_timeout_ms = 300000;

    while ((opt = getopt_long(argc, argv, "l:c:s:k:p:L:hV", options, NULL)) != -1) {
        switch (opt) {
        case 'l':
            listen_text = optarg;
            break;
        case 'c':
            if (fp_parse_size(optarg, &params.capacity) != FP_OK || params.capacity == 0)
                return bad_usage("invalid --capacity '%s' (expected a size such as 512M or 4G)",
                                 optarg);
            break;
        case 's':
            if (fp_parse_size(optarg, &params.slab_size) != FP_OK)
                return bad_usage("invalid --slab-size '%s' (expected a size such as 64M)", optarg);
            break;
        case 'k':
            secret_file = optarg;
            break;
        case 'p':
            port_file = optarg;
            break;
        case OPT_HANDSHAKE:
            if (parse_seconds(optarg, &params.handshake_timeout_ms) != 0)
                return bad_usage("invalid --handshake-timeout '%s' (seconds, 1-86400)", optarg);
            break;
        case OPT_IDLE:
            if (parse_seconds(optarg, &params.idle_timeout_ms) != 0)
                return bad_usage("invalid --idle-timeout '%s' (seconds, 1-86400)", optarg);
            break;
        case 'L':
            level = fp_log_level_parse(optarg);
            if (level < 0)
                return bad_usage("invalid --log-level '%s' (error, warn, info, debug, trace)",
                                 optarg);
            log.level = level;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("farpoold %d.%d.%d\n", FARPOOL_VERSION / 10000, FARPOOL_VERSION / 100 % 100,
                   FARPOOL_VERSION % 100);
            return 0;
        default:
            fprintf(stderr, "Try 'farpoold --help'.\n");
            return 2;
        }
    }
    if (optind < argc)
        return bad_usage("unexpected argument '%s'", argv[optind]);
    if (params.slab_size < FP_SLAB_MIN_SIZE || params.slab_size > FP_SLAB_MAX_SIZE ||
        (params.slab_size & (params.slab_size - 1)) != 0)
        return bad_usage(
            "--slab-size must be a power of two from 64K to 1G, not '%s'",
            (fp_format_size(params.slab_size, slab_text, sizeof(slab_text)), slab_text));
    if (params.capacity < params.slab_size)
        return bad_usage(
            "--capacity must hold at least one slab (%s)",
            (fp_format_size(params.slab_size, slab_text, sizeof(slab_text)), slab_text));
    status = fp_addr_parse(listen_text, &params.listen);
    if (status != FP_OK)
        return bad_usage("invalid --listen '%s' (expected HOST:PORT or [IPV6]:PORT)", listen_text);
    if (secret_file != NULL) {
        if (fp_secret_load(&log, secret_file, secret, &secret_len) != FP_OK)
            return 1;
        params.secret = secret;
        params.secret_len = secret_len;
    }

    status = fp_server_create(&params, &server);
    if (status != FP_OK)
        return 1;
    fp_server_local_addr(server, &local);
    fp_addr_format(&local, local_text, sizeof(local_text));
    if (port_file != NULL && write_port_file(port_file, &local) != 0) {
        fp_error(&log, "cannot write port file %s: %s", port_file, strerror(errno));
        fp_server_destroy(server);
        return 1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    running_server = server;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    fp_format_size(params.capacity, cap_text, sizeof(cap_text));
    fp_format_size(params.slab_size, slab_text, sizeof(slab_text));
    fp_info(&log, "listening on %s, capacity %s in slabs of %s, %s", local_text, cap_text,
            slab_text, params.secret != NULL ? "secret required" : "no secret (loopback only)");
    status = fp_server_run(server);
    running_server = NULL;
    fp_info(&log, "shutting down");
    fp_server_destroy(server);
    return status == FP_OK ? 0 : 1;
}
