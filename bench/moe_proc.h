/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench moe`, its surroundings: the child processes it runs
 * (farpoold, memcached), the files and directories it creates (the experts'
 * disk file, port files), their cleanup on every exit path, and what it asks
 * the system (free memory, free disk, free ports, a child's CPU time).
 *
 * Cleanup. Children are started with PR_SET_PDEATHSIG (SIGTERM), so they die
 * with the benchmark even if it is SIGKILLed. moe_proc_init() installs
 * handlers for SIGINT, SIGTERM and SIGHUP that stop every registered child
 * (SIGTERM, SIGKILL after 5 s, always reaped), unlink the registered files,
 * remove the registered directories and exit with 128 + the signal; SIGBUS
 * (what an access gets when farpool cannot fetch a block) does the same after
 * saying so, then dies of the signal. moe_proc_cleanup() does it on a normal
 * exit.
 *
 * Errors are printed to stderr, prefixed "farpool-bench moe: ", where first
 * seen, and returned as an fp_status_t.
 *
 * Thread safety: none; everything here runs on the benchmark's main thread
 * (the registry is process-wide because the signal handler needs it).
 */
#ifndef FP_BENCH_MOE_PROC_H
#define FP_BENCH_MOE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <farpool/status.h>

#define MOE_PROG "farpool-bench moe"

/* printf to stderr with the program's prefix and a newline. */
void moe_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Install the signal handlers (after bench_init()). */
void moe_proc_init(void);

/* Stop every child, unlink every registered file, remove registered directories. */
void moe_proc_cleanup(void);

/* Files and directories removed by the cleanup (a directory after the files). */
void moe_path_register(const char *path);
void moe_path_forget(const char *path);
void moe_dir_register(const char *path);

/*
 * Start @argv[0] (searched in PATH if it has no slash) with @argv as a
 * registered child; its stdout goes to /dev/null, stderr is ours.
 */
fp_status_t moe_child_spawn(char *const argv[], pid_t *pid_p);

/* True (and reaped, forgotten, status in *@status_p) if @pid has exited. */
bool moe_child_exited(pid_t pid, int *status_p);

/* SIGTERM, up to 5 s, SIGKILL; reaped and forgotten. <= 0 is a no-op. */
void moe_child_stop(pid_t pid);

/* User + system CPU seconds @pid has used so far; 0 if unknown. */
double moe_child_cpu_s(pid_t pid);

/*
 * Start farpoold @path on 127.0.0.1:0 with --capacity @capacity bytes, its
 * port file in @dir; "HOST:PORT" into @addr.
 */
fp_status_t moe_node_start(const char *path, uint64_t capacity, const char *dir, char *addr,
                           size_t addr_len, pid_t *pid_p);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
fp_status_t moe_free_port(uint16_t *port_p);

/* Wait until 127.0.0.1:@port accepts a connection, or @pid exits, or @timeout_ms. */
fp_status_t moe_wait_listening(uint16_t port, pid_t pid, unsigned timeout_ms);

/* Run @argv to completion (a registered child) within @timeout_ms; its exit status, -1 if not. */
int moe_run_program(char *const argv[], unsigned timeout_ms);

/* /proc/meminfo MemAvailable in bytes; 0 if unknown. */
uint64_t moe_mem_available(void);

/* Bytes free for an unprivileged user on the file system of @dir; 0 if unknown. */
uint64_t moe_disk_free(const char *dir);

/* Seconds since some fixed point (CLOCK_MONOTONIC). */
double moe_now(void);

#endif /* FP_BENCH_MOE_PROC_H */
