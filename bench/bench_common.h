/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benchmarks in bench/: the child processes a benchmark
 * runs (farpoold, found next to the benchmark, and a raw TCP baseline server),
 * their cleanup, CPU placement, the raw baseline's client side (ping-pong and the
 * one-way stream) and small statistics.
 *
 * Children: both servers ask for SIGTERM when the benchmark dies
 * (PR_SET_PDEATHSIG); bench_cleanup(), and the SIGINT/SIGTERM/SIGHUP handler
 * that bench_init() installs, send them SIGTERM (SIGKILL after 5 s), reap
 * them and remove the temporary directory that holds farpoold's port file.
 *
 * Errors are printed to stderr, prefixed with the program's name, where they
 * are first seen, and returned as an fp_status_t (or -1 for socket helpers).
 *
 * Thread safety: none; a benchmark drives all of this from its main thread.
 * The record of children is process-wide (the signal handler needs it).
 */
#ifndef FP_BENCH_COMMON_H
#define FP_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <farpool/status.h>

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GIB (1ull << 30)

/* The raw baseline server. */
#define BENCH_SPAN          (64 * MIB) /* bytes it serves from, rotating */
#define BENCH_RAW_REQ_SIZE  48u        /* a raw request, like a farpool READ's 24 + 24 */
#define BENCH_RAW_OP_REPLY  1u         /* reply with `size` bytes at `offset` */
#define BENCH_RAW_OP_STREAM 2u /* write the buffer in 1 MiB send()s until the peer hangs up */
#define BENCH_RAW_OP_SINK   3u /* receive `size` bytes, then reply with an 8-byte ack */
#define BENCH_RAW_STREAM_IO MIB

#define BENCH_IO_TIMEOUT_MS    10000 /* a stuck peer is an error, not a slow figure */
#define BENCH_START_TIMEOUT_MS 10000
#define BENCH_STOP_TIMEOUT_MS  5000

/* The program's name, for messages; set by bench_init(). */
extern const char *bench_prog;

/*
 * Name the program, install the signal handlers that clean up and exit
 * (SIGINT, SIGTERM, SIGHUP) and ignore SIGPIPE. Call first, from main().
 */
void bench_init(const char *prog);

/* Stop every child and remove the temporary files; signals are blocked first. */
void bench_cleanup(void);

void bench_sleep_ms(unsigned ms);
void bench_sleep_us(unsigned us);

/* In a fresh child: default handling of the signals bench_init() caught, nothing blocked. */
void bench_child_reset_signals(void);

/* Wait for @pid up to @ms, then SIGKILL and reap it; its wait status, -1 if it was killed or lost.
 */
int bench_wait_bounded(pid_t pid, unsigned ms);

/* The word the benchmarks fill page @page with (and check) for @seed. */
static inline uint64_t bench_page_word(uint64_t seed, uint64_t page)
{
    return ((page + 1) * 0x9E3779B97F4A7C15ull) ^ seed;
}

/* ---- CPU placement ------------------------------------------------------- */

/*
 * Where the processes run. On a small VM a wake-up across CPUs costs tens of
 * microseconds (an IPI and a vCPU wake-up on the host), more than the whole
 * same-CPU round trip, and whether client and server share a CPU is the
 * scheduler's whim. So both servers always share a placement: by default
 * latency is measured with everything on one CPU and streams with the client
 * on one CPU and the servers on another.
 */
typedef enum bench_cpu_mode {
    BENCH_CPU_AUTO,  /* latency: same; streams: split */
    BENCH_CPU_SPLIT, /* the benchmark on one CPU, both servers on another */
    BENCH_CPU_SAME,  /* everything on one CPU */
    BENCH_CPU_NONE,  /* wherever the scheduler puts them */
} bench_cpu_mode_t;

/* "auto", "split", "same", "none": parse into *@mode_p; -1 if unknown. */
int bench_cpu_mode_parse(const char *text, bench_cpu_mode_t *mode_p);

typedef enum bench_phase { BENCH_PHASE_LATENCY, BENCH_PHASE_STREAM } bench_phase_t;

typedef struct bench_cpus {
    bench_cpu_mode_t mode;
    int cpu[2]; /* the first two CPUs this process may use; -1: none */
} bench_cpus_t;

/* Find the CPUs this process may use; says so on stderr if @mode needs two and there is one. */
void bench_cpus_find(bench_cpu_mode_t mode, bench_cpus_t *cpus_p);

/* True when @phase runs the benchmark and the servers on different CPUs. */
bool bench_phase_split(const bench_cpus_t *cpus, bench_phase_t phase);

/* "unpinned", "all on 1 CPU" or "client and servers on 2 CPUs". */
const char *bench_phase_placement(const bench_cpus_t *cpus, bench_phase_t phase);

/* Place this process (its calling thread, and threads it creates later) and both servers. */
void bench_cpus_place(const bench_cpus_t *cpus, bench_phase_t phase);

/* ---- Children ------------------------------------------------------------ */

/*
 * Fork the raw baseline server on 127.0.0.1:0; its port is returned. It holds
 * a preallocated, touched BENCH_SPAN buffer and serves, one thread per
 * connection, BENCH_RAW_OP_REPLY (a request/response) and BENCH_RAW_OP_STREAM
 * (the one-way stream).
 */
fp_status_t bench_raw_start(uint16_t *port_p);

/*
 * Find the program @name: @name itself if it holds a '/', else the first
 * executable file of that name in PATH (/usr/local/bin:/usr/bin:/bin when
 * PATH is unset or empty). Its path lands in @buf; false if there is none.
 */
bool bench_find_program(const char *name, char *buf, size_t len);

/*
 * Find farpoold for a benchmark given no --farpoold: in the directory of this
 * program's executable (/proc/self/exe: bin/ of an installation, the top of
 * the build tree for farpool-bench), then in the directory above it (the top
 * of the build tree for build/bench/bench_*), then in PATH. Nothing names a
 * build tree at compile time. Its path lands in @buf; false if none is found.
 */
bool bench_farpoold_find(char *buf, size_t len);

/*
 * Start farpoold at @path with --listen 127.0.0.1:0 --capacity @capacity
 * (a size such as "1G") --log-level warn; its "HOST:PORT" lands in @addr.
 */
fp_status_t bench_node_start(const char *path, const char *capacity, char *addr, size_t addr_len);

/* ---- The raw baseline's client side ---------------------------------------- */

/* Blocking I/O of exactly @len bytes; -1 on error or EOF. */
int bench_read_full(int fd, void *buf, size_t len);
int bench_write_full(int fd, const void *buf, size_t len);

/* Encode a raw request into @buf (BENCH_RAW_REQ_SIZE bytes). */
void bench_raw_req_encode(uint8_t *buf, uint32_t op, uint64_t size, uint64_t offset);

/* Connect to the baseline server: TCP_NODELAY, send and receive timeouts. -1 on error. */
int bench_raw_connect(uint16_t port);

/* One request/response of @size bytes at @offset (< BENCH_SPAN) into @dst. */
fp_status_t bench_raw_pingpong(int fd, size_t size, uint64_t offset, uint8_t *dst);

/* Bytes and nanoseconds of the slices of one stream figure, summed. */
typedef struct bench_acc {
    uint64_t bytes;
    uint64_t ns;
} bench_acc_t;

/* GB/s (1e9 bytes/s) of @acc. */
double bench_acc_gbs(const bench_acc_t *acc);

/*
 * A slice of the raw one-way stream on a new connection: @warm bytes, then up
 * to @bytes (within @limit_ns) timed and added to @acc; recv() of up to 1 MiB
 * into @depth rotating buffers of BENCH_RAW_STREAM_IO at @dst.
 */
fp_status_t bench_raw_oneway(uint16_t port, unsigned depth, uint64_t warm, uint64_t bytes,
                             uint64_t limit_ns, uint8_t *dst, bench_acc_t *acc);

/*
 * The raw one-way stream the other way: @bytes sent on a new connection from
 * @src (rotating over @src_len bytes, in BENCH_RAW_STREAM_IO send()s) to the
 * server, which acknowledges once it has them all; the time from the first
 * byte to the ack is added to @acc. What writing bytes to a node costs at
 * best: the ceiling of a write-back.
 */
fp_status_t bench_raw_sink(uint16_t port, uint64_t bytes, const uint8_t *src, size_t src_len,
                           bench_acc_t *acc);

/* ---- CPU time ------------------------------------------------------------ */

/* The whole machine's CPU time so far, from /proc/stat, in clock ticks. */
typedef struct bench_cpu_time {
    uint64_t busy;  /* user, nice, system, irq and softirq */
    uint64_t total; /* also idle, iowait and steal */
    unsigned ncpu;
} bench_cpu_time_t;

/* Read it; all zero if /proc/stat cannot be read. */
void bench_cpu_time(bench_cpu_time_t *t);

/* How many CPUs were busy, on average, from @a to @b (0 to ncpu); -1 if unknown. */
double bench_cpu_busy(const bench_cpu_time_t *a, const bench_cpu_time_t *b);

/* ---- Statistics and parsing ------------------------------------------------ */

int bench_cmp_u64(const void *a, const void *b);
int bench_cmp_double(const void *a, const void *b);

/* Median and p99 of @n > 0 samples in nanoseconds (sorted here), in microseconds. */
void bench_lat_summary(uint64_t *samples, unsigned n, double *med_p, double *p99_p);

/* Median of @n > 0 doubles (sorted here). */
double bench_median(double *v, unsigned n);

/*
 * Touch @bytes of new anonymous memory and give it back. On a VM whose guest
 * reports free memory to its host (virtio-balloon free page reporting), memory
 * that stayed free for a few seconds must be faulted back in by the host when
 * it is touched again, at several ms per 2 MiB: far more than the copy it
 * serves. Right after this call the guest's free memory is backed again, as a
 * long-running process's recycled memory would be, so a figure measures the
 * program rather than the host. Benchmarks say where they use it.
 */
void bench_warm_memory(uint64_t bytes);

/*
 * A page-aligned buffer of @len bytes for a baseline to receive into (free()
 * it); NULL if out of memory. farpool receives into page-aligned cache
 * memory, and the kernel's copy to user space is far slower into a buffer
 * that is not aligned to a cache line on some CPUs (on this project's AMD EPYC
 * VMs, a raw stream into malloc()'s 16-byte-aligned memory ran at 2.0-2.5
 * GB/s against 3.7-4.3 GB/s page-aligned): a ceiling must not pay that.
 */
void *bench_buf_alloc(size_t len);

/* Parse a decimal in [@min, @max]; -1 if it is not one. */
/*
 * Say "farpool-bench @cmd: MSG" and where to find help on stderr, for a bad
 * command line of a farpool-bench subcommand; returns 2 (bad usage).
 */
int bench_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int bench_parse_uint(const char *text, unsigned min, unsigned max, unsigned *v_p);

#endif /* FP_BENCH_COMMON_H */
