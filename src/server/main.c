/* SPDX-License-Identifier: MIT */
/*
 * farpoold: the memory node daemon. Reads its settings (config.c: the
 * configuration file, then the command line over it), loads the secret, runs
 * the server (server.c) until SIGTERM or SIGINT, telling systemd when it is
 * ready (sd_notify; nothing without $NOTIFY_SOCKET). With
 * --meta-dir it also runs the pool's metadata service (meta/service.c) and
 * is the pool's first member; with --pool it joins a pool (meta/member.c).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include <farpool/farpool.h>

#include "common/log.h"
#include "client/pool.h"
#include "common/etcd.h"
#include "common/parse.h"
#include "common/secret.h"
#include "meta/member.h"
#include "meta/service.h"
#include "config.h"
#include "metrics.h"
#include "server.h"
#include "slab.h"

static fp_server_t *running_server; /* for the signal handler only */

/* How the server and the metadata service reach each other. */
typedef struct pool_glue {
    fp_server_t *server;
    fp_meta_service_t *svc;
    volatile sig_atomic_t refused; /* the pool refused this member: exit 1 */
} pool_glue_t;

static void glue_pool_op(void *arg, uint64_t token, const uint8_t *key, uint8_t op, uint64_t id,
                         const uint8_t *payload, uint32_t len)
{
    pool_glue_t *g = arg;

    fp_meta_service_submit(g->svc, token, key, op, id, payload, len);
}

static void glue_reply(void *arg, uint64_t token, uint8_t op, uint64_t id, fp_status_t status,
                       const void *payload, uint32_t len)
{
    pool_glue_t *g = arg;

    fp_server_post_reply(g->server, token, op, id, status, payload, len);
}

static void glue_fatal(void *arg, fp_status_t status)
{
    pool_glue_t *g = arg;

    (void)status;
    g->refused = 1;
    fp_server_stop(g->server);
}

/* The metrics' view of the pool (on the metrics thread). */
static void glue_metrics(void *arg, fp_meta_metrics_t *pool_p)
{
    const pool_glue_t *g = arg;

    fp_meta_service_metrics(g->svc, pool_p);
}

/*
 * Serve the metrics on cfg->metrics (a metadata node's with the pool's
 * view); -1 (said) if that cannot be.
 */
static int start_metrics(const fp_dconf_t *cfg, const fp_server_params_t *params,
                         fp_server_t *server, pool_glue_t *glue, fp_log_t *log,
                         fp_metrics_t **metrics_p)
{
    fp_metrics_params_t mp;
    char text[96];

    memset(&mp, 0, sizeof(mp));
    if (fp_addr_parse(cfg->metrics, &mp.listen) != FP_OK) {
        fp_error(log, "cannot resolve --metrics '%s' any more", cfg->metrics);
        return -1;
    }
    mp.counters = fp_server_counters(server);
    mp.capacity = params->capacity;
    mp.slab_size = params->slab_size;
    if (glue->svc != NULL) {
        mp.pool = glue_metrics;
        mp.pool_arg = glue;
    }
    mp.log = log;
    if (fp_metrics_start(&mp, metrics_p) != FP_OK)
        return -1;
    fp_metrics_local_addr(*metrics_p, &mp.listen);
    fp_addr_format(&mp.listen, text, sizeof(text));
    fp_info(log, "metrics on http://%s/metrics%s", text,
            fp_addr_is_loopback(&mp.listen) ? ""
                                            : " (no authentication: anyone who can reach it "
                                              "can read them)");
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    if (running_server != NULL)
        fp_server_stop(running_server);
}

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: farpoold [OPTIONS]\n"
        "Donate this machine's memory to a farpool pool.\n\n"
        "      --config FILE            read settings from FILE (farpoold(8)); the options\n"
        "                               given here override it\n"
        "      --print-config           print the settings in effect, as a FILE, and exit\n"
        "  -l, --listen ADDR:PORT       address to serve (default " FP_DCONF_DEFAULT_LISTEN
        "; [::1]:PORT for IPv6;\n"
        "                               port 0 picks a free port)\n"
        "  -c, --capacity SIZE          memory to donate at most (default 1G; 512M, 4G, ...)\n"
        "  -s, --slab-size SIZE         unit of allocation, a power of two (default 64M)\n"
        "  -k, --secret-file FILE       pre-shared secret; required off loopback\n"
        "      --secret-credential NAME the secret is systemd credential NAME\n"
        "                               ($CREDENTIALS_DIRECTORY/NAME, from LoadCredential=)\n"
        "  -p, --port-file FILE         write HOST:PORT here once listening\n"
        "      --handshake-timeout SEC  drop clients that have not authenticated (default 5)\n"
        "      --idle-timeout SEC       drop clients stuck mid-request (default 300)\n"
        "      --metrics ADDR:PORT      serve Prometheus metrics at http://ADDR:PORT/metrics\n"
        "                               (a bare PORT: 127.0.0.1:PORT; default: none)\n"
        "  -L, --log-level LEVEL        error, warn, info, debug or trace (default info)\n"
        "  -h, --help                   show this help\n"
        "  -V, --version                show the version\n\n"
        "Pool:\n"
        "  -m, --meta-dir DIR|URL       run the pool's metadata service, keeping its records\n"
        "                               in DIR (SQLite) or in etcd (etcd://HOST:PORT[,...]/\n"
        "                               PREFIX), and be its first member: others join with\n"
        "                               --pool farpool://THIS-NODE or --pool URL\n"
        "  -P, --pool URL               join the pool farpool://HOST:PORT (its --meta-dir\n"
        "                               node) or etcd://HOST:PORT[,HOST:PORT...]/PREFIX\n"
        "      --advertise ADDR:PORT    where clients reach this node (default: --listen)\n"
        "      --dead-after SEC         (--meta-dir) a member silent this long is dead (default "
        "5);\n"
        "                               in an etcd pool, this node's lease TTL too\n"
        "      --replicas N             (--meta-dir) default copies of each slab, 1-4\n"
        "                               (default 2 with two members or more, else 1)\n"
        "      --repair-rate SIZE       (--meta-dir) bytes per second repair copies at most\n"
        "                               (default 256M)\n"
        "      --lease-ttl SEC          (--meta-dir) a writer's lease lasts this long unless\n"
        "                               renewed (default 10)\n\n"
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

/* The secret's file: secret-file, or secret-credential in $CREDENTIALS_DIRECTORY. */
static int secret_path(const fp_dconf_t *cfg, fp_log_t *log, char *path, size_t cap)
{
    const char *dir;

    if (cfg->secret_file != NULL) {
        snprintf(path, cap, "%s", cfg->secret_file);
        return 0;
    }
    dir = getenv("CREDENTIALS_DIRECTORY");
    if (dir == NULL || dir[0] == '\0') {
        fp_error(log,
                 "secret-credential '%s': $CREDENTIALS_DIRECTORY is not set (systemd sets it "
                 "for a unit with LoadCredential=); outside systemd, use --secret-file",
                 cfg->secret_credential);
        return -1;
    }
    if (snprintf(path, cap, "%s/%s", dir, cfg->secret_credential) >= (int)cap) {
        fp_error(log, "secret-credential '%s': the path is too long", cfg->secret_credential);
        return -1;
    }
    return 0;
}

/*
 * Fill @cfg from the file --config names, then the command line over it.
 * Returns -1 to go on, else the exit status (0 after --help, --version or
 * --print-config).
 */
static int read_settings(int argc, char **argv, fp_dconf_t *cfg)
{
    enum { OPT_CONFIG = 256, OPT_PRINT_CONFIG, OPT_LONG_ONLY };
    static const struct option options[] = {
        {"config", required_argument, NULL, OPT_CONFIG},
        {"print-config", no_argument, NULL, OPT_PRINT_CONFIG},
        {"listen", required_argument, NULL, 'l'},
        {"capacity", required_argument, NULL, 'c'},
        {"slab-size", required_argument, NULL, 's'},
        {"secret-file", required_argument, NULL, 'k'},
        {"secret-credential", required_argument, NULL, OPT_LONG_ONLY},
        {"port-file", required_argument, NULL, 'p'},
        {"handshake-timeout", required_argument, NULL, OPT_LONG_ONLY},
        {"idle-timeout", required_argument, NULL, OPT_LONG_ONLY},
        {"log-level", required_argument, NULL, 'L'},
        {"meta-dir", required_argument, NULL, 'm'},
        {"pool", required_argument, NULL, 'P'},
        {"advertise", required_argument, NULL, OPT_LONG_ONLY},
        {"dead-after", required_argument, NULL, OPT_LONG_ONLY},
        {"replicas", required_argument, NULL, OPT_LONG_ONLY},
        {"repair-rate", required_argument, NULL, OPT_LONG_ONLY},
        {"lease-ttl", required_argument, NULL, OPT_LONG_ONLY},
        {"metrics", required_argument, NULL, OPT_LONG_ONLY},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *config = NULL, **names, **values;
    char why[FP_DCONF_ERR_MAX], slab_text[32];
    int opt, index, count = 0, print = 0, rc = -1;
    fp_status_t status;

    /* The options with values are kept, and set over the file's once it is read. */
    names = calloc((size_t)argc + 1, sizeof(*names));
    values = calloc((size_t)argc + 1, sizeof(*values));
    if (names == NULL || values == NULL) {
        fprintf(stderr, "farpoold: out of memory\n");
        rc = 1;
        goto out;
    }
    while ((opt = getopt_long(argc, argv, "l:c:s:k:p:L:m:P:hV", options, &index)) != -1) {
        switch (opt) {
        case OPT_CONFIG:
            config = optarg;
            break;
        case OPT_PRINT_CONFIG:
            print = 1;
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        case 'V':
            printf("farpoold %d.%d.%d\n", FARPOOL_VERSION / 10000, FARPOOL_VERSION / 100 % 100,
                   FARPOOL_VERSION % 100);
            rc = 0;
            goto out;
        case '?':
        case ':':
            fprintf(stderr, "Try 'farpoold --help'.\n");
            rc = 2;
            goto out;
        default:
            if (opt != OPT_LONG_ONLY) { /* a short option: its long name */
                for (index = 0; options[index].val != opt; index++)
                    ;
            }
            names[count] = options[index].name;
            values[count++] = optarg;
            break;
        }
    }
    if (optind < argc) {
        rc = bad_usage("unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (config != NULL) {
        status = fp_dconf_load(cfg, config, why);
        if (status != FP_OK) {
            fprintf(stderr, "farpoold: %s\n", why);
            rc = status == FP_ERR_INVALID_PARAM ? 2 : 1;
            goto out;
        }
    }
    for (int i = 0; i < count; i++) {
        status = fp_dconf_set(cfg, names[i], values[i], why);
        if (status == FP_ERR_NO_MEMORY) {
            fprintf(stderr, "farpoold: out of memory\n");
            rc = 1;
            goto out;
        }
        if (status != FP_OK) {
            rc = bad_usage("invalid --%s '%s' (%s)", names[i], values[i], why);
            goto out;
        }
    }

    /* What one setting cannot check alone. */
    if (cfg->slab_size < FP_SLAB_MIN_SIZE || cfg->slab_size > FP_SLAB_MAX_SIZE ||
        (cfg->slab_size & (cfg->slab_size - 1)) != 0) {
        fp_format_size(cfg->slab_size, slab_text, sizeof(slab_text));
        rc = bad_usage("--slab-size must be a power of two from 64K to 1G, not '%s'", slab_text);
        goto out;
    }
    if (cfg->capacity < cfg->slab_size) {
        fp_format_size(cfg->slab_size, slab_text, sizeof(slab_text));
        rc = bad_usage("--capacity must hold at least one slab (%s)", slab_text);
        goto out;
    }
    if (cfg->meta_dir != NULL && fp_etcd_url_is(cfg->meta_dir) &&
        fp_pool_url_check(cfg->meta_dir) != FP_OK) {
        rc = bad_usage("bad --meta-dir '%s': expected a directory or "
                       "etcd://HOST:PORT[,HOST:PORT...]/PREFIX",
                       cfg->meta_dir);
        goto out;
    }
    if (cfg->meta_dir != NULL && cfg->pool != NULL) {
        rc = bad_usage("--meta-dir and --pool exclude each other: the metadata node is the "
                       "pool's first member already");
        goto out;
    }
    if (cfg->secret_file != NULL && cfg->secret_credential != NULL) {
        rc = bad_usage("--secret-file and --secret-credential exclude each other: give one "
                       "place for the secret");
        goto out;
    }
    if (cfg->listen == NULL && fp_dconf_set(cfg, "listen", FP_DCONF_DEFAULT_LISTEN, why) != FP_OK) {
        fprintf(stderr, "farpoold: cannot resolve the default address %s\n",
                FP_DCONF_DEFAULT_LISTEN);
        rc = 1;
        goto out;
    }
    if (print) {
        fp_dconf_print(cfg, stdout);
        rc = fflush(stdout) == 0 ? 0 : 1;
    }
out:
    free(names);
    free(values);
    return rc;
}

static int run_daemon(const fp_dconf_t *cfg)
{
    fp_meta_service_params_t mp;
    farpool_node_params_t np;
    pool_glue_t glue;
    fp_member_t *member = NULL;
    fp_metrics_t *metrics = NULL;
    fp_server_params_t params;
    uint8_t secret[FP_SECRET_MAX];
    char path[4096];
    size_t secret_len = 0;
    struct sigaction sa;
    fp_server_t *server;
    fp_addr_t local;
    char local_text[96], cap_text[32], slab_text[32];
    fp_status_t status;
    fp_log_t log;

    fp_log_init(&log, "farpoold", (fp_log_level_t)cfg->log_level, NULL, NULL);
    memset(&params, 0, sizeof(params));
    params.log = &log;
    params.capacity = cfg->capacity;
    params.slab_size = cfg->slab_size;
    params.handshake_timeout_ms = cfg->handshake_timeout_ms;
    params.idle_timeout_ms = cfg->idle_timeout_ms;
    memset(&mp, 0, sizeof(mp));
    mp.dead_after_ms = cfg->dead_after_ms;
    mp.lease_ttl_ms = cfg->lease_ttl_ms;
    mp.repair_rate = cfg->repair_rate;
    mp.replicas = cfg->replicas;
    memset(&glue, 0, sizeof(glue));

    if (fp_addr_parse(cfg->listen, &params.listen) != FP_OK) {
        fp_error(&log, "cannot resolve --listen '%s' any more", cfg->listen);
        return 1;
    }
    if (cfg->secret_file != NULL || cfg->secret_credential != NULL) {
        if (secret_path(cfg, &log, path, sizeof(path)) != 0 ||
            fp_secret_load(&log, path, secret, &secret_len) != FP_OK)
            return 1;
        params.secret = secret;
        params.secret_len = secret_len;
    }

    if (cfg->meta_dir != NULL) {
        params.pool_op = glue_pool_op;
        params.pool_arg = &glue;
    }
    status = fp_server_create(&params, &server);
    if (status != FP_OK)
        return 1;
    glue.server = server;
    fp_server_local_addr(server, &local);
    fp_addr_format(&local, local_text, sizeof(local_text));
    if (cfg->port_file != NULL && write_port_file(cfg->port_file, &local) != 0) {
        fp_error(&log, "cannot write port file %s: %s", cfg->port_file, strerror(errno));
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
    if (cfg->meta_dir != NULL || cfg->pool != NULL) {
        fp_member_params_t memp;
        const char *self = cfg->advertise != NULL ? cfg->advertise : local_text;

        if (cfg->advertise == NULL &&
            (strncmp(local_text, "0.0.0.0:", 8) == 0 || strncmp(local_text, "[::]:", 5) == 0)) {
            fp_error(&log, "listening on every address: say where clients reach this node "
                           "with --advertise HOST:PORT");
            fp_server_destroy(server);
            return 2;
        }
        memset(&np, 0, sizeof(np));
        np.field_mask = FARPOOL_NODE_PARAM_LOG;
        np.log_level = (farpool_log_level_t)log.level;
        if (params.secret != NULL) {
            np.field_mask |= FARPOOL_NODE_PARAM_SECRET;
            np.secret = params.secret;
            np.secret_len = params.secret_len;
        }
        if (cfg->meta_dir != NULL) {
            mp.dir = cfg->meta_dir;
            mp.self_addr = self;
            mp.slab_size = params.slab_size;
            mp.np = &np;
            mp.reply = glue_reply;
            mp.reply_arg = &glue;
            mp.log = &log;
            if (fp_meta_service_start(&mp, &glue.svc) != FP_OK) {
                fp_server_destroy(server);
                return 1;
            }
            if (fp_etcd_url_is(cfg->meta_dir))
                fp_info(&log,
                        "keeping the pool's metadata in etcd, %s; members join with --pool %s",
                        cfg->meta_dir, cfg->meta_dir);
            else
                fp_info(&log,
                        "keeping the pool's metadata in %s; members join with --pool "
                        "farpool://%s",
                        cfg->meta_dir, self);
        }
        memset(&memp, 0, sizeof(memp));
        memp.meta_url = cfg->meta_dir != NULL ? self : cfg->pool;
        memp.self_addr = self;
        memp.np = &np;
        memp.server = server;
        memp.node_id = fp_server_node_id(server);
        memp.capacity = params.capacity;
        memp.slab_size = params.slab_size;
        /* An etcd pool's members (the metadata node's own too) hold a lease key there. */
        if (cfg->meta_dir != NULL ? fp_etcd_url_is(cfg->meta_dir) : fp_etcd_url_is(cfg->pool))
            memp.lease_url = cfg->meta_dir != NULL ? cfg->meta_dir : cfg->pool;
        memp.lease_ttl_ms = cfg->dead_after_ms;
        memp.fatal = glue_fatal;
        memp.fatal_arg = &glue;
        memp.log = &log;
        if (fp_member_start(&memp, &member) != FP_OK) {
            fp_meta_service_stop(glue.svc);
            fp_server_destroy(server);
            return 1;
        }
    }
    if (cfg->metrics != NULL && start_metrics(cfg, &params, server, &glue, &log, &metrics) != 0) {
        running_server = NULL;
        fp_member_stop(member);
        fp_meta_service_stop(glue.svc);
        fp_server_destroy(server);
        return 1;
    }
    /* Listening, and a member: what Type=notify waits for. */
    sd_notifyf(0, "READY=1\nSTATUS=listening on %s", local_text);
    status = fp_server_run(server);
    running_server = NULL;
    sd_notify(0, "STOPPING=1");
    fp_info(&log, "shutting down");
    fp_metrics_stop(metrics); /* before what it reads goes */
    fp_member_stop(member);
    fp_meta_service_stop(glue.svc);
    fp_server_destroy(server);
    return status == FP_OK && !glue.refused ? 0 : 1;
}

int main(int argc, char **argv)
{
    fp_dconf_t cfg;
    int rc;

    fp_dconf_init(&cfg);
    rc = read_settings(argc, argv, &cfg);
    if (rc < 0)
        rc = run_daemon(&cfg);
    fp_dconf_clear(&cfg);
    return rc;
}
