/* SPDX-License-Identifier: MIT */
/*
 * bench_pool's processes and files: the farpoold members of the pools it
 * measures (each on loopback or in a network namespace made by
 * pool_netns.sh), the raw stream senders of its baselines, and the run's
 * temporary directory (metadata directories, port files, the secret).
 *
 * Children are forked from this process and enter their namespace with
 * setns(2) before they exec, so every one is this process's child: killed
 * with SIGKILL on demand (the failover measurement), stopped with SIGTERM
 * (SIGKILL after 5 s) and reaped by pool_sys_cleanup() and by the handler of
 * SIGINT, SIGTERM and SIGHUP that pool_sys_init() installs, and told to stop
 * (PR_SET_PDEATHSIG) if this process dies first. The temporary directory,
 * /tmp/bench_pool.PID.XXXXXX, is removed on the same paths; those of runs
 * that were killed are removed at the next start. Namespaces are not made
 * here: pool_netns.sh makes them, and deletes them when bench_pool exits.
 *
 * Errors are printed to stderr where they are first seen and returned as an
 * fp_status_t.
 *
 * Thread safety: none; the main thread drives all of it. The table of
 * children is process-wide (the signal handler needs it).
 */
#ifndef FP_BENCH_POOL_SYS_H
#define FP_BENCH_POOL_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <farpool/status.h>

#define POOL_SYS_MAX_NETNS 16

/* One namespace of FARPOOL_NETNS (pool_netns.sh). */
typedef struct pool_netns {
    char name[48];
    char ip[24];
} pool_netns_t;

/* What pool_netns.sh made: FARPOOL_NETNS="TAG HOST_IP RATE_BITS NS:IP ...". */
typedef struct pool_netns_set {
    char host_ip[24];   /* the bridge's address: where this process is */
    uint64_t rate_bits; /* what each node's egress is shaped to, bits per second */
    unsigned n;
    pool_netns_t ns[POOL_SYS_MAX_NETNS];
} pool_netns_set_t;

/* Parse @text (FARPOOL_NETNS) into *@set_p; FP_ERR_INVALID_PARAM if malformed. */
fp_status_t pool_netns_parse(const char *text, pool_netns_set_t *set_p);

/* How a member is started. */
typedef struct pool_node_opts {
    const char *farpoold;    /* path of the daemon */
    const char *capacity;    /* --capacity, e.g. "4G" */
    const char *slab_size;   /* --slab-size; NULL: farpoold's default */
    const char *dead_after;  /* --dead-after (metadata node); NULL: the default */
    const char *repair_rate; /* --repair-rate (metadata node); NULL: the default */
    bool secret;             /* --secret-file with the run's secret (needed off loopback) */
} pool_node_opts_t;

/*
 * One member. The caller fills ns, ip, meta_url (empty for the metadata
 * node, which is started with --meta-dir) and opts; pool_node_start() fills
 * addr at the first start, and later starts listen on the same address, as
 * a machine that restarts would.
 */
typedef struct pool_node {
    char ns[48];       /* network namespace; "" for this process's own */
    char ip[24];       /* address to listen on */
    char meta_url[96]; /* "farpool://HOST:PORT" to join; "" for the metadata node */
    pool_node_opts_t opts;
    char addr[64];      /* "IP:PORT" where it listens; "" before the first start */
    char meta_dir[160]; /* the metadata node's --meta-dir; "" for the others */
    int slot;           /* its entry in the table of children; -1 while not running */
    unsigned id;        /* names its files */
} pool_node_t;

/*
 * Install the signal handlers (call after bench_init()) and remove what
 * killed runs left in /tmp.
 */
void pool_sys_init(void);

/* Stop every child, remove the temporary directory, then bench_cleanup(). */
void pool_sys_cleanup(void);

/* The run's secret file (made at the first call, 0600); NULL if it cannot be. */
const char *pool_sys_secret_file(void);

/* Prepare @n for its first start (slot -1, a fresh id, addr empty). */
void pool_node_init(pool_node_t *n);

/* Start farpoold for @n and wait until it listens (its port file); fills addr. */
fp_status_t pool_node_start(pool_node_t *n);

/* SIGKILL, then reap: a member that dies at once, as a machine that fails. */
void pool_node_kill(pool_node_t *n);

/* SIGTERM (SIGKILL after 5 s), then reap. */
void pool_node_stop(pool_node_t *n);

/* Its process id, or -1 while it is not running. */
pid_t pool_node_pid(const pool_node_t *n);

/*
 * A raw stream sender in namespace @ns ("" for this one) listening on @ip: it
 * sends a touched buffer in 1 MiB send()s to each client that connects,
 * until the client hangs up. Its "IP:PORT" lands in @addr.
 */
fp_status_t pool_sender_start(const char *ns, const char *ip, char *addr, size_t addr_len);

/* Pin every child (farpoold members and senders) to @cpu; nothing if @cpu < 0. */
void pool_sys_pin_children(int cpu);

/* CPU time of process @pid (0: this one), user + system, in clock ticks; 0 if gone. */
uint64_t pool_sys_proc_ticks(pid_t pid);

/* The same summed over every running child. */
uint64_t pool_sys_children_ticks(void);

#endif /* FP_BENCH_POOL_SYS_H */
