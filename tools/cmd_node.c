/* SPDX-License-Identifier: MIT */
/*
 * `farpool node drain ADDR`: ask the pool to move a member's slabs to the
 * others (fp_pool_drain), then follow it (fp_pool_nodes) until the member
 * is "gone": it holds nothing and may be stopped.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "client/pool.h"
#include "common/time.h"
#include "progress.h"

#define DRAIN_POLL_US  500000u              /* between two looks at the members */
#define DRAIN_STUCK_NS (60ull * 1000000000) /* warn once when nothing moved for this long */

static void node_usage(void)
{
    printf("Usage: farpool node drain ADDR [--no-wait] [--pool URL] [--secret-file FILE]\n"
           "Move every slab of member ADDR (HOST:PORT, as 'farpool status --pool' shows it)\n"
           "to the other members, and wait until it holds nothing (state 'gone'); it may\n"
           "then be stopped. Ctrl-C stops waiting; the drain goes on.\n\n"
           "  -n, --no-wait          ask for the drain and return\n"
           "  -p, --pool URL         the pool, farpool://HOST:PORT (default: $FARPOOL_POOL)\n"
           "  -k, --secret-file F    the pool's secret (default: $FARPOOL_SECRET_FILE)\n");
}

/*
 * The entry of member @addr being drained (or drained already: a drained
 * member that still runs may join again, under a new member id, so the
 * address alone does not say which entry), when @member is 0; else member
 * @member's entry. FP_OK, FP_ERR_NO_ENTRY, or the list's error.
 */
static fp_status_t find_node(farpool_node_t *meta, const char *addr, uint64_t member,
                             fp_pool_node_entry_t *e_p)
{
    fp_pool_node_entry_t *nodes;
    fp_status_t status;
    size_t count;

    status = fp_pool_nodes(meta, &nodes, &count);
    if (status != FP_OK)
        return status;
    status = FP_ERR_NO_ENTRY;
    for (size_t i = 0; i < count; i++) {
        fp_pool_node_entry_t *n = &nodes[i];

        n->addr[FP_POOL_ADDR_MAX] = '\0';
        if (member != 0 ? n->member != member
                        : strcmp(n->addr, addr) != 0 ||
                              (n->state != FP_POOL_NODE_DRAINING && n->state != FP_POOL_NODE_GONE))
            continue;
        /* The newest such entry (the highest member id) counts. */
        if (status != FP_OK || n->member > e_p->member)
            *e_p = *n;
        status = FP_OK;
    }
    free(nodes);
    return status;
}

/* Follow the drain of @addr until it is gone. */
static int drain_wait(farpool_node_t *meta, const char *addr, uint64_t member, uint64_t used)
{
    uint64_t last = used, moved_ns = fp_time_ns();
    bool warned = false;
    char size[32];

    for (;;) {
        fp_pool_node_entry_t e;
        fp_status_t status;

        if (cli_signal != 0) {
            fprintf(stderr, "farpool: stopped waiting (%s); the drain of %s goes on\n",
                    cli_signal_name(cli_signal), addr);
            return CLI_EXIT_FAILURE;
        }
        status = find_node(meta, addr, member, &e);
        if (status != FP_OK) {
            fprintf(stderr, "farpool: cannot follow the drain of %s: %s\n", addr,
                    fp_status_string(status));
            return CLI_EXIT_FAILURE;
        }
        if (e.state == FP_POOL_NODE_GONE) {
            printf("%s is drained: it holds nothing and may be stopped\n", addr);
            return CLI_EXIT_OK;
        }
        if (e.state != FP_POOL_NODE_DRAINING) {
            fprintf(stderr,
                    "farpool: %s is %s now, no longer draining; the slabs it still "
                    "held are repaired from their other copies\n",
                    addr, fp_pool_node_state_name(e.state));
            return CLI_EXIT_FAILURE;
        }
        if (e.used != last) {
            cli_format_bytes(e.used, size, sizeof(size));
            printf("%s: %s left\n", addr, size);
            fflush(stdout);
            last = e.used;
            moved_ns = fp_time_ns();
        } else if (!warned && fp_time_ns() - moved_ns > DRAIN_STUCK_NS) {
            fprintf(stderr,
                    "farpool: nothing moved off %s for 60 s: do the other members have "
                    "room? ('farpool status --pool' says)\n",
                    addr);
            warned = true;
        }
        usleep(DRAIN_POLL_US);
    }
}

static int node_drain(const char *url, const char *secret_file, const char *addr, bool wait)
{
    fp_pool_node_entry_t e;
    farpool_node_t *meta;
    fp_status_t status;
    char size[32];
    int rc = CLI_EXIT_FAILURE;

    if (cli_pool_connect(url, secret_file, &meta) != FP_OK)
        return CLI_EXIT_FAILURE;
    status = fp_pool_drain(meta, addr);
    if (status != FP_OK) {
        if (status == FP_ERR_NO_ENTRY)
            fprintf(stderr,
                    "farpool: no member %s in pool %s ('farpool status --pool' lists "
                    "them)\n",
                    addr, url);
        else
            fprintf(stderr, "farpool: cannot drain %s: %s\n", addr, fp_status_string(status));
        goto out_close;
    }
    status = find_node(meta, addr, 0, &e);
    if (status != FP_OK) {
        fprintf(stderr, "farpool: drain of %s asked, but it cannot be followed: %s\n", addr,
                fp_status_string(status));
        goto out_close;
    }
    cli_format_bytes(e.used, size, sizeof(size));
    printf("draining %s: %s to move to the other members\n", addr, size);
    fflush(stdout);
    if (!wait) {
        rc = CLI_EXIT_OK;
        goto out_close;
    }
    cli_catch_signals();
    rc = drain_wait(meta, addr, e.member, e.used);
out_close:
    farpool_node_close(meta);
    return rc;
}

int cli_node(int argc, char **argv)
{
    static const struct option options[] = {
        {"no-wait", no_argument, NULL, 'n'},
        {"pool", required_argument, NULL, 'p'},
        {"secret-file", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pool = NULL, *url, *secret_file = NULL, *addr;
    bool wait = true;
    int opt, rc;

    while ((opt = getopt_long(argc, argv, "np:k:h", options, NULL)) != -1) {
        switch (opt) {
        case 'n':
            wait = false;
            break;
        case 'p':
            pool = optarg;
            break;
        case 'k':
            secret_file = optarg;
            break;
        case 'h':
            node_usage();
            return CLI_EXIT_OK;
        default:
            return cli_usage_error("node ", "bad option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("node ", "node needs a subcommand: drain");
    if (strcmp(argv[optind], "drain") != 0)
        return cli_usage_error("node ", "unknown node subcommand '%s' (drain)", argv[optind]);
    if (argc - optind < 2)
        return cli_usage_error("node ", "node drain needs a member's ADDR (HOST:PORT)");
    if (argc - optind > 2)
        return cli_usage_error("node ", "unexpected argument '%s'", argv[optind + 2]);
    addr = argv[optind + 1];
    if (*addr == '\0' || strlen(addr) > FP_POOL_ADDR_MAX)
        return cli_usage_error("node ", "bad member address '%s' (HOST:PORT)", addr);
    rc = cli_pool_url("node ", pool, &url);
    if (rc != CLI_EXIT_OK)
        return rc;
    return node_drain(url, secret_file, addr, wait);
}
