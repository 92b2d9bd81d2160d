/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench tiers`: what it sets up outside its own memory, and undoes
 * on every exit path: a network namespace joined to the root namespace by a
 * veth pair, the farpoold that runs inside it (with a secret, since it does
 * not listen on loopback), and the cold file of the disk tier.
 *
 * Topology: the namespace "farpool-tiers-PID" holds one end of the veth pair
 * ("fptPIDb", 10.213.x.y+2/30) and farpoold; the benchmark stays in the root
 * namespace on the other end ("fptPIDa", 10.213.x.y+1/30). The /30 is picked
 * from 10.213.0.0/16, starting at one derived from the PID, so that it overlaps
 * no address or route of this machine (getifaddrs(), /proc/net/route).
 *
 * Cleanup: tiers_sys_cleanup() (and the SIGINT/SIGTERM/SIGHUP handler that
 * tiers_sys_init() installs in place of bench_common's, and a SIGBUS handler
 * for a fetch that failed) stops the namespace's farpoold (SIGTERM, SIGKILL
 * after 5 s), deletes the namespace (which takes the veth pair with it) and
 * the root end of the pair if it is still there, removes the disk file and
 * the temporary directory, then runs bench_cleanup(). The handler's path uses
 * only async-signal-safe calls (kill, waitpid, fork, execve, unlink, rmdir).
 * The namespace's farpoold also dies with this process (PR_SET_PDEATHSIG). A
 * run killed with SIGKILL leaves its namespace, temporary directory and disk
 * file behind; the next run removes them (tiers_sys_stale()). Not
 * bench_common's directory (/tmp/farpool-bench-tiers.XXXXXX with a port
 * file): its name carries no PID to tell a dead run's from a live one's.
 *
 * Errors are printed where first seen, prefixed "farpool-bench tiers: ".
 *
 * Thread safety: none; call from the main thread. The state is process-wide
 * because the signal handler needs it.
 */
#ifndef FP_BENCH_TIERS_SYS_H
#define FP_BENCH_TIERS_SYS_H

#include <stddef.h>
#include <stdint.h>

#include <farpool/status.h>

/* Install the signal handlers; call after bench_init(). */
void tiers_sys_init(void);

/* Undo everything below, then bench_cleanup(). Idempotent. */
void tiers_sys_cleanup(void);

/* Names and addresses of the namespace tier. */
typedef struct tiers_netns {
    char ns[32];        /* the namespace */
    char veth_host[16]; /* the root namespace's end */
    char veth_node[16]; /* the node's end, inside the namespace */
    char host_ip[16];
    char node_ip[16];
} tiers_netns_t;

/*
 * Remove what runs that were killed (with SIGKILL) left behind, recognised by
 * the PID in their names being gone: namespaces "farpool-tiers-PID" (root
 * only), directories /tmp/farpool-tiers.PID.* and, if @disk_dir is not NULL,
 * files @disk_dir/farpool-tiers.PID.*. Says what it removed on stderr.
 */
void tiers_sys_stale(const char *disk_dir);

/*
 * Create the namespace and the veth pair and bring them up. On failure (not
 * root, no ip(8), a command refused) *@why says why, what was created is
 * deleted, and the caller skips the tier.
 */
fp_status_t tiers_netns_create(tiers_netns_t *netns_p, char *why, size_t why_len);

/*
 * Start @farpoold inside the namespace with `ip netns exec NS farpoold
 * --listen NODE_IP:0 --port-file F --secret-file S --capacity @capacity
 * --log-level warn`; its "HOST:PORT" lands in @addr, the path of the secret
 * file it requires in *@secret_file_p (valid until tiers_sys_cleanup()).
 */
fp_status_t tiers_netns_node_start(const tiers_netns_t *netns, const char *farpoold,
                                   const char *capacity, char *addr, size_t addr_len,
                                   const char **secret_file_p);

/* Pin the namespace's farpoold to @cpu (< 0: leave it). */
void tiers_netns_node_pin(int cpu);

/*
 * Create a file of @size bytes in @dir holding @src, synced to disk; it is
 * removed on exit. Its path lands in @path.
 */
fp_status_t tiers_disk_file_create(const char *dir, const uint8_t *src, uint64_t size, char *path,
                                   size_t path_len);

#endif /* FP_BENCH_TIERS_SYS_H */
