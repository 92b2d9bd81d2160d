/* SPDX-License-Identifier: MIT */
/*
 * `farpool-bench moe`, the strategies: where the experts live and what
 * loading and unloading one means. One ops table, one implementation per
 * kind of store (moe_store.c: local DRAM and the disk file; moe_store_mc.c:
 * memcached; moe_store_fp.c: farpool).
 *
 * | store    | data (set up before timing)      | load (timed)                     | unload (timed)
 * |
 * |----------|----------------------------------|----------------------------------|----------------------------|
 * | dram     | every expert in anonymous memory | nothing                          | nothing | |
 * mmap     | one file of all experts          | mmap the range, touch each page  | munmap +
 * FADV_DONTNEED     | | direct   | the same file                    | read() with O_DIRECT into a
 * slot | give the slot back         | | memcached| 1 MiB items "e<i>.<chunk>"       | multi-get
 * into a slot            | give the slot back         | | farpool  | a region on farpoold | touch
 * each page of the expert    | farpool_release()          |
 *
 * "Slot": direct and memcached read into a pool of `slots` expert-sized
 * buffers, allocated and written once before timing, as a
 * server that reserves its budget would: the strongest form of those
 * baselines, with no page faults in the load.
 *
 * A run starts with run_begin() (caches dropped, a fresh farpool context and
 * mapping, the slots all free) and ends with run_end(), which reports what
 * the run moved. Every call reports its own errors (moe_err) and returns a
 * status.
 *
 * Thread safety: none; one thread drives a store.
 */
#ifndef FP_BENCH_MOE_STORE_H
#define FP_BENCH_MOE_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <farpool/farpool.h>

typedef struct moe_store moe_store_t;

/* Counters of a run so far (sample) or in all (run_end). */
typedef struct moe_io {
    uint64_t bytes_moved; /* read from the disk, memcached or the node */
    uint64_t fp_faults;   /* farpool: faults + minor_faults since run_begin; else 0 */
    bool has_fp;          /* fp below is valid (farpool stores, run_end only) */
    farpool_stats_t fp;   /* the region's counters over the run */
} moe_io_t;

typedef struct moe_store_ops {
    fp_status_t (*run_begin)(moe_store_t *s);
    fp_status_t (*load)(moe_store_t *s, unsigned e);
    fp_status_t (*unload)(moe_store_t *s, unsigned e);
    /* Expert @e will be loaded next batch. NULL: this store takes no hints. */
    fp_status_t (*hint)(moe_store_t *s, unsigned e);
    /* The bytes of loaded expert @e. */
    const void *(*expert)(moe_store_t *s, unsigned e);
    void (*sample)(moe_store_t *s, moe_io_t *io_p);
    fp_status_t (*run_end)(moe_store_t *s, moe_io_t *io_p);
    void (*destroy)(moe_store_t *s);
} moe_store_ops_t;

struct moe_store {
    const moe_store_ops_t *ops;
    unsigned experts;
    unsigned slots; /* experts resident at most */
    uint64_t size;  /* bytes per expert */
    pid_t server;   /* the process serving the data, for its CPU time; -1: none */
};

/* Destroy a store (NULL is a no-op); the data it set up goes with it. */
void moe_store_destroy(moe_store_t *s);

/* ---- Local DRAM ----------------------------------------------------------- */

/* All @experts of @size bytes allocated and written. */
fp_status_t moe_store_dram_create(unsigned experts, uint64_t size, moe_store_t **s_p);

/* ---- Local disk ------------------------------------------------------------ */

/* The experts' file, shared by the mmap and O_DIRECT stores. */
typedef struct moe_disk_file {
    char path[4096];
    int fd; /* buffered descriptor */
    unsigned experts;
    uint64_t size;     /* bytes per expert */
    bool drop_global;  /* drop the whole page cache before a run (else fadvise the file) */
    bool said_fadvise; /* the fallback was announced */
} moe_disk_file_t;

/*
 * Write the experts to a new file in @dir (removed on any exit; checks the
 * free space first). @drop_global: write 3 to /proc/sys/vm/drop_caches before
 * each run (falling back, with a message, to POSIX_FADV_DONTNEED on the file).
 * FP_ERR_NO_SPACE when the disk cannot hold it.
 */
fp_status_t moe_disk_file_create(const char *dir, unsigned experts, uint64_t size, bool drop_global,
                                 moe_disk_file_t **file_p);
void moe_disk_file_destroy(moe_disk_file_t *file);

fp_status_t moe_store_mmap_create(moe_disk_file_t *file, unsigned slots, moe_store_t **s_p);

/* FP_ERR_UNSUPPORTED (said on stderr) if the file system refuses O_DIRECT. */
fp_status_t moe_store_direct_create(moe_disk_file_t *file, unsigned slots, moe_store_t **s_p);

/* ---- memcached ------------------------------------------------------------- */

/*
 * Start memcached (@path, searched in PATH) on 127.0.0.1 and a free port,
 * store every expert in it as 1 MiB items, and allocate the slots.
 */
fp_status_t moe_store_mc_create(const char *path, unsigned experts, uint64_t size, unsigned slots,
                                moe_store_t **s_p);

/* Bytes of memory the memcached server needs for @bytes of experts (its -m). */
uint64_t moe_store_mc_server_bytes(uint64_t bytes);

/* ---- farpool ----------------------------------------------------------------- */

/* A region of all experts on a node, filled through the node's slab API. */
typedef struct moe_fp_data {
    char addr[96]; /* the node */
    char name[64]; /* the region */
    uint32_t granule;
    unsigned experts;
    uint64_t size; /* bytes per expert */
    pid_t node_pid;
    farpool_node_t *node; /* the connection that created (and will delete) it */
} moe_fp_data_t;

/*
 * Create region @name at @granule on the node at @addr (process @node_pid)
 * holding every expert, written with farpool_slab_write() (fast; no mapping).
 */
fp_status_t moe_fp_data_create(const char *addr, pid_t node_pid, const char *name, uint32_t granule,
                               unsigned experts, uint64_t size, moe_fp_data_t **data_p);
/* Delete the region; NULL is a no-op. */
void moe_fp_data_destroy(moe_fp_data_t *data);

/*
 * A store over @data: each run maps it in a fresh context whose cache budget
 * is @slots experts plus @slack bytes, with the automatic prefetcher on or off
 * (@readahead); @hints: take the router's hints (farpool_prefetch()).
 */
fp_status_t moe_store_fp_create(moe_fp_data_t *data, unsigned slots, uint64_t slack, bool readahead,
                                bool hints, moe_store_t **s_p);

#endif /* FP_BENCH_MOE_STORE_H */
