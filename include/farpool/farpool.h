/* SPDX-License-Identifier: MIT */
/*
 * libfarpool: the public API.
 *
 * Two levels. The node API (farpool_node_*, farpool_slab_*) connects to one
 * farpoold, allocates slabs of its memory and reads and writes byte ranges of
 * them. Contexts and regions (farpool_context_*, farpool_region_*,
 * farpool_map and the hints) name regions of pool memory and map them into
 * the process: pages are fetched on first touch, cached within the context's
 * budget and written back (docs/fault-engine.md). Build with
 * `cc prog.c $(pkg-config --cflags --libs farpool)`; examples/quickstart.c
 * is a complete program.
 *
 * Ownership: every object returned through an output argument (*_p) belongs to
 * the caller and is released with the matching destroy/close function, which
 * accepts NULL. Output arguments are written only when FP_OK is returned.
 *
 * Thread safety: a farpool_node_t is not thread-safe; use one per thread or
 * serialise calls on it. Distinct handles may be used from distinct threads at
 * once. The library keeps no mutable global state.
 */
#ifndef FARPOOL_FARPOOL_H
#define FARPOOL_FARPOOL_H

#include <stddef.h>
#include <stdint.h>

#include <farpool/status.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Version of these headers, MAJOR*10000 + MINOR*100 + PATCH. The library a
 * program runs with says its own with farpool_version(): the two differ when
 * the program was built against other headers than the installed library's.
 * Within one MAJOR.MINOR the ABI only grows (symbols are versioned per
 * release, output structs are filled up to the size the caller passes).
 */
#define FARPOOL_VERSION 300

/** The version of the library itself (as FARPOOL_VERSION). */
FARPOOL_API unsigned farpool_version(void);

/** The same as a string, "MAJOR.MINOR.PATCH". Static; never NULL. */
FARPOOL_API const char *farpool_version_string(void);

/** Levels of log lines, from the most to the least important. */
typedef enum farpool_log_level {
    FARPOOL_LOG_ERROR = 0, /* something failed: a fetch, a write-back, a connection */
    FARPOOL_LOG_WARN = 1,  /* something the user should know: a refused write, a lost node */
    FARPOOL_LOG_INFO = 2,  /* lifecycle: connected, mapped */
    FARPOOL_LOG_DEBUG = 3,
    FARPOOL_LOG_TRACE = 4, /* every fault and fetch */
} farpool_log_level_t;

/**
 * Where the library's log lines go instead of standard error: called with
 * @arg as given in the parameters, the line's level and the line itself
 * (no trailing newline, no time or program prefix; valid during the call
 * only). It may be called from any thread of the library (a region's fault
 * thread included) and from several at once; it must not call back into
 * the library.
 */
typedef void (*farpool_log_func_t)(void *arg, farpool_log_level_t level, const char *line);

/** A connection to one memory node (farpoold). */
typedef struct farpool_node farpool_node_t;

/** Which fields of farpool_node_params_t the caller has set. */
enum farpool_node_params_field {
    FARPOOL_NODE_PARAM_SECRET = 1u << 0,      /* secret, secret_len */
    FARPOOL_NODE_PARAM_SECRET_FILE = 1u << 1, /* secret_file */
    FARPOOL_NODE_PARAM_TIMEOUT = 1u << 2,     /* timeout_ms */
    FARPOOL_NODE_PARAM_CLIENT_KEY = 1u << 3,  /* client_key */
    FARPOOL_NODE_PARAM_LOG = 1u << 4,         /* log_level, log_func, log_arg */
};

/**
 * Parameters of farpool_node_connect(). Fields not named in field_mask take
 * their defaults, so new fields can be added without breaking callers.
 */
typedef struct farpool_node_params {
    uint64_t field_mask;
    /** Pre-shared secret (bytes, not necessarily a string). Default: none. */
    const void *secret;
    size_t secret_len;
    /**
     * File holding the secret; a trailing newline is ignored. Default (neither
     * secret nor secret_file set): $FARPOOL_SECRET_FILE if set, else none.
     */
    const char *secret_file;
    /** Deadline of each blocking call, milliseconds. Default 10000. */
    int timeout_ms;
    /**
     * Identity that owns the slabs this connection allocates; connections
     * presenting the same key share them. Default: a fresh random key.
     */
    uint8_t client_key[16];
    /**
     * Lines above @log_level are dropped; the others go to @log_func (NULL:
     * standard error). Default: the level $FARPOOL_LOG_LEVEL names when the
     * handle is made, else FARPOOL_LOG_WARN; standard error.
     */
    farpool_log_level_t log_level;
    farpool_log_func_t log_func;
    void *log_arg;
} farpool_node_params_t;

/**
 * Statistics of one memory node, as `farpool status` shows them. New fields
 * are only ever appended: farpool_node_stats() fills as many bytes as the
 * caller says its struct has.
 */
typedef struct farpool_node_stats {
    uint64_t capacity;      /* bytes the node may donate */
    uint64_t used;          /* bytes in allocated slabs */
    uint64_t slab_size;     /* bytes per slab */
    uint64_t slabs;         /* allocated slabs */
    uint64_t clients;       /* connected clients (this one included) */
    uint64_t bytes_read;    /* bytes served by READ since start */
    uint64_t bytes_written; /* bytes stored by WRITE since start */
    uint64_t requests;      /* frames served */
    uint64_t errors;        /* error replies and dropped connections */
    uint64_t uptime_ms;     /* milliseconds since the node started */
} farpool_node_stats_t;

/**
 * Connect to the memory node at @addr ("HOST:PORT", "[V6]:PORT"), say hello
 * and authenticate with the secret if the node asks for one.
 *
 * @params may be NULL for defaults. On FP_OK *@node_p is a new handle to close
 * with farpool_node_close(). FP_ERR_AUTH: wrong or missing secret;
 * FP_ERR_VERSION: incompatible node.
 */
FARPOOL_API fp_status_t farpool_node_connect(const char *addr, const farpool_node_params_t *params,
                                             farpool_node_t **node_p);

/** Close the connection and free the handle. Slabs stay allocated. NULL is a no-op. */
FARPOOL_API void farpool_node_close(farpool_node_t *node);

/** Allocate one slab; its id and size in bytes are returned. FP_ERR_NO_SPACE when full. */
FARPOOL_API fp_status_t farpool_slab_alloc(farpool_node_t *node, uint64_t *slab_id_p,
                                           uint64_t *slab_size_p);

/** Free a slab this client owns. */
FARPOOL_API fp_status_t farpool_slab_free(farpool_node_t *node, uint64_t slab_id);

/**
 * Read @len bytes at @offset of slab @slab_id into @buf. Any length is
 * accepted; large reads are split into pipelined requests.
 * FP_ERR_OUT_OF_RANGE past the slab's end, FP_ERR_PERMISSION if not ours.
 */
FARPOOL_API fp_status_t farpool_slab_read(farpool_node_t *node, uint64_t slab_id, uint64_t offset,
                                          void *buf, size_t len);

/** Write @len bytes of @buf at @offset of slab @slab_id. Same errors as read. */
FARPOOL_API fp_status_t farpool_slab_write(farpool_node_t *node, uint64_t slab_id, uint64_t offset,
                                           const void *buf, size_t len);

/**
 * Fetch the node's statistics into @stats_p, whose size is @stats_size (pass
 * sizeof(farpool_node_stats_t)): a program built against older headers gets
 * the fields it knows, one built against newer headers finds the fields this
 * library does not know zeroed.
 */
FARPOOL_API fp_status_t farpool_node_stats(farpool_node_t *node, farpool_node_stats_t *stats_p,
                                           size_t stats_size);

/** Round trip to the node; returns the time it took in nanoseconds. */
FARPOOL_API fp_status_t farpool_node_ping(farpool_node_t *node, uint64_t *rtt_ns_p);

/* ------------------------------------------------------------------------ */
/* Contexts and mapped regions                                               */
/* ------------------------------------------------------------------------ */

/**
 * A context: connections to memory nodes and the local cache budget shared by
 * the regions it maps.
 *
 * Thread safety: creating, opening, mapping, syncing, unmapping and closing
 * regions of one context must be serialised by the caller; the memory of a
 * mapped region may be used by any number of threads at once.
 */
typedef struct farpool_context farpool_context_t;

/** A named region of pool memory, open in a context. */
typedef struct farpool_region farpool_region_t;

enum farpool_context_params_field {
    FARPOOL_CONTEXT_PARAM_NODES = 1u << 0,       /* nodes, nnodes */
    FARPOOL_CONTEXT_PARAM_SECRET_FILE = 1u << 1, /* secret_file */
    FARPOOL_CONTEXT_PARAM_CACHE_BYTES = 1u << 2, /* cache_bytes */
    FARPOOL_CONTEXT_PARAM_TIMEOUT = 1u << 3,     /* timeout_ms */
    FARPOOL_CONTEXT_PARAM_READAHEAD = 1u << 4,   /* readahead */
    FARPOOL_CONTEXT_PARAM_PREFAULT = 1u << 5,    /* prefault */
    FARPOOL_CONTEXT_PARAM_LOG = 1u << 6,         /* log_level, log_func, log_arg */
    FARPOOL_CONTEXT_PARAM_POOL = 1u << 7,        /* pool */
};

typedef struct farpool_context_params {
    uint64_t field_mask;
    /**
     * Memory nodes, "HOST:PORT" each, used without a pool: regions are placed
     * on the first. Either these or @pool is required.
     */
    const char *const *nodes;
    size_t nnodes;
    /** Secret file. Default: $FARPOOL_SECRET_FILE, else none. */
    const char *secret_file;
    /** Local cache budget in bytes, over all mapped regions. Default 1 GiB. */
    uint64_t cache_bytes;
    /**
     * Deadline of each network operation, ms. Default 10000. Fetches in
     * flight that the node leaves all unanswered for this long are given up:
     * the accesses waiting for them get SIGBUS.
     */
    int timeout_ms;
    /**
     * The automatic prefetcher (sequential and strided read-ahead from the
     * fault stream): 1 on, 0 off. Default on. farpool_prefetch() hints work
     * either way.
     */
    int readahead;
    /**
     * 1: a read-only region of 2 MiB granule takes its share of the cache's
     * memory when it is mapped (up to the budget, or the region's size if
     * smaller), so that first touches find pages ready instead of waiting for
     * the kernel to allocate them. 0 (the default): memory is taken as blocks
     * arrive. Either way such a mapping keeps the huge pages it has and
     * recycles them for new blocks (see docs/fault-engine.md); other mappings
     * allocate as blocks arrive and free as they leave.
     */
    int prefault;
    /**
     * Lines above @log_level are dropped; the others go to @log_func (NULL:
     * standard error), for everything the context does: its connections and
     * its regions' fault threads. Default: the level $FARPOOL_LOG_LEVEL names
     * when the context is created, else FARPOOL_LOG_WARN; standard error.
     * Nothing outside the context changes.
     */
    farpool_log_level_t log_level;
    farpool_log_func_t log_func;
    void *log_arg;
    /**
     * The pool, "farpool://HOST:PORT" (its metadata node, farpoold
     * --meta-dir): regions are the pool's, their slabs spread over its
     * members with replicas (docs/pool.md). Default, when neither this nor
     * @nodes is set: $FARPOOL_POOL.
     */
    const char *pool;
} farpool_context_params_t;

/** Connect to the nodes. On FP_OK *@ctx_p is freed with farpool_context_destroy(). */
FARPOOL_API fp_status_t farpool_context_create(const farpool_context_params_t *params,
                                               farpool_context_t **ctx_p);

/** Unmap and close every region still open, disconnect, free. NULL is a no-op. */
FARPOOL_API void farpool_context_destroy(farpool_context_t *ctx);

/** Region flags. */
#define FARPOOL_REGION_READONLY 0x1u /* map read-only (PROT_READ); nothing is written back */
/**
 * Creation (pool regions): map the region at the same virtual address in
 * every process on every machine, chosen at creation and kept in the pool's
 * metadata, so pointers stored inside it stay valid. farpool_map() fails
 * with FP_ERR_IN_USE, and says which range, where the process has that range
 * taken.
 */
#define FARPOOL_REGION_FIXED 0x2u
/**
 * Creation (pool regions): the region is not visible under its name (open
 * and list do not find it) until farpool_region_publish(); if its creator
 * goes away first, the pool deletes it. How `farpool put` leaves no half
 * file behind.
 */
#define FARPOOL_REGION_UNPUBLISHED 0x4u

/** Default granule: see docs/fault-engine.md for the measurement behind it. */
#define FARPOOL_GRANULE_DEFAULT (64u << 10)

/**
 * Create region @name (1-255 bytes of [A-Za-z0-9._-]) of @size bytes with
 * blocks of @granule bytes (a power of two from 4 KiB to 2 MiB; 0 for the
 * default) on the context's first node, and open it. FP_ERR_EXISTS if the
 * name is taken. Its bytes start as zeros and live on the node until
 * farpool_region_delete(), whoever created them.
 */
FARPOOL_API fp_status_t farpool_region_create(farpool_context_t *ctx, const char *name,
                                              uint64_t size, uint32_t granule,
                                              farpool_region_t **region_p);

/** Which fields of farpool_region_params_t the caller has set. */
enum farpool_region_params_field {
    FARPOOL_REGION_PARAM_GRANULE = 1u << 0,  /* granule */
    FARPOOL_REGION_PARAM_REPLICAS = 1u << 1, /* replicas */
    FARPOOL_REGION_PARAM_FLAGS = 1u << 2,    /* flags */
};

/** Parameters of farpool_region_create_ex(). Fields not in field_mask take their defaults. */
typedef struct farpool_region_params {
    uint64_t field_mask;
    /** Bytes per block, a power of two from 4 KiB to 2 MiB. Default FARPOOL_GRANULE_DEFAULT. */
    uint32_t granule;
    /**
     * Copies of each slab, on distinct nodes (pool regions; 1 to 4). Default:
     * the pool's, 2 when it has two members or more, else 1.
     */
    uint32_t replicas;
    /** FARPOOL_REGION_FIXED, FARPOOL_REGION_UNPUBLISHED. Default 0. */
    uint32_t flags;
} farpool_region_params_t;

/**
 * farpool_region_create() with parameters. In a pool the creator holds the
 * region's writer lease until it closes it (see farpool_region_open()).
 * FP_ERR_NO_SPACE (and a log line saying what is free) when the pool cannot
 * hold @size bytes @replicas times; FP_ERR_INVALID_PARAM for replicas over
 * the live members.
 */
FARPOOL_API fp_status_t farpool_region_create_ex(farpool_context_t *ctx, const char *name,
                                                 uint64_t size,
                                                 const farpool_region_params_t *params,
                                                 farpool_region_t **region_p);

/**
 * Make an FARPOOL_REGION_UNPUBLISHED region visible under its name, with the
 * BLAKE2b-256 @checksum of its content (32 bytes; NULL: none), which
 * `farpool get` and `farpool verify` check. FP_ERR_EXISTS if the name was
 * taken meanwhile.
 */
FARPOOL_API fp_status_t farpool_region_publish(farpool_region_t *region, const uint8_t *checksum);

/** What farpool_region_info() says of a region. Fields are only ever appended. */
typedef struct farpool_region_info {
    uint64_t size;
    uint32_t granule;
    uint32_t replicas; /* copies of each slab (1 outside a pool) */
    uint32_t flags;    /* FARPOOL_REGION_FIXED as created */
    uint32_t has_checksum;
    uint8_t checksum[32]; /* BLAKE2b-256 of the content, when has_checksum */
    uint64_t fixed_addr;  /* FARPOOL_REGION_FIXED: where it is mapped; else 0 */
    uint64_t created_ms;  /* when it was created, ms since the epoch (0: not known) */
} farpool_region_info_t;

/** Fill @info_p (of @info_size bytes: pass sizeof(farpool_region_info_t)). */
FARPOOL_API fp_status_t farpool_region_info(farpool_region_t *region, farpool_region_info_t *info_p,
                                            size_t info_size);

/**
 * Open an existing region. @flags: FARPOOL_REGION_READONLY or 0. In a pool,
 * a region opened without FARPOOL_REGION_READONLY holds the writer lease:
 * one writer at a time, and a second gets FP_ERR_IN_USE until the first
 * closes it (or its process dies and the lease runs out). Any number may
 * open it read-only at once; they see what the writer last synced before
 * they opened it (docs/consistency.md).
 */
FARPOOL_API fp_status_t farpool_region_open(farpool_context_t *ctx, const char *name,
                                            uint32_t flags, farpool_region_t **region_p);

/** Delete region @name from the pool (it must not be open in this context). */
FARPOOL_API fp_status_t farpool_region_delete(farpool_context_t *ctx, const char *name);

/**
 * Map the whole region into this process; *@addr_p points to its first byte.
 * Pages are fetched from the node on first touch, kept in the context's cache
 * and evicted (written back first if dirty) when the budget needs room. If a
 * fetch cannot be served, the access that needs it gets SIGBUS and the reason
 * is logged: never zeros or stale bytes. The mapping is not inherited by
 * fork(): in a child the region's addresses are unmapped (SIGSEGV). The
 * region's fault thread starts here and takes the calling thread's CPU
 * affinity.
 */
FARPOOL_API fp_status_t farpool_map(farpool_region_t *region, void **addr_p);

/** Write every dirty block back to the node; returns once they are all there. */
FARPOOL_API fp_status_t farpool_sync(farpool_region_t *region);

/**
 * Write back, then unmap. The region stays open and may be mapped again. If a
 * dirty block cannot be written back (the node is gone), the error is returned
 * and the region stays mapped, so no write is lost; call again later, or close
 * the region to give the writes up.
 */
FARPOOL_API fp_status_t farpool_unmap(farpool_region_t *region);

/**
 * Unmap if mapped, and close. Dirty blocks are written back first; any that
 * cannot be are lost, and the log says so. NULL is a no-op.
 */
FARPOOL_API void farpool_region_close(farpool_region_t *region);

/** Region size and granule in bytes. */
FARPOOL_API uint64_t farpool_region_size(const farpool_region_t *region);
FARPOOL_API uint32_t farpool_region_granule(const farpool_region_t *region);

/**
 * Hint: the bytes [@addr, @addr+@len) of mapped @region will be needed soon.
 * Returns at once; the blocks are fetched in the background, as many at once
 * as the connection allows. Their use is not observed (they are mapped whole),
 * so they enter the cache marked used: CLOCK passes over them once, unmapping
 * them so that their next use is seen, before it may evict them.
 * A fault on a block still in flight waits for it; it is never fetched twice.
 * Blocks of the range are mapped whole as they land, and those the automatic
 * prefetcher brought already are mapped now: touching them costs no fault.
 * Prefetching stops short of pushing used blocks out: the budget holds.
 */
FARPOOL_API fp_status_t farpool_prefetch(farpool_region_t *region, const void *addr, size_t len);

/** Wait until every prefetch asked for on @region has landed (or cannot, for want of room). */
FARPOOL_API fp_status_t farpool_prefetch_wait(farpool_region_t *region);

/**
 * Hint: the bytes [@addr, @addr+@len) are not needed any more (an expert
 * unloaded). Dirty blocks among them are written back, then every cached block
 * of the range is dropped; returns when that is done. Later accesses fetch
 * again.
 */
FARPOOL_API fp_status_t farpool_release(farpool_region_t *region, const void *addr, size_t len);

/**
 * Write @len bytes of @buf at @offset of @region straight to the memory nodes
 * (every live copy of each slab), without mapping it: how `farpool put`
 * fills a region, at the speed of the network. The region must be open for
 * writing. It bypasses a mapping's cache: a mapping of the region in this
 * or another process may keep older bytes cached (docs/consistency.md), so
 * use one or the other for a region at a time. Returns once every live copy
 * has the bytes; FP_ERR_OUT_OF_RANGE past the region's end; an error if no
 * copy of some slab could be written.
 */
FARPOOL_API fp_status_t farpool_region_pwrite(farpool_region_t *region, const void *buf, size_t len,
                                              uint64_t offset);

/**
 * Read @len bytes at @offset of @region into @buf straight from the memory
 * nodes (one live copy of each slab, another if that fails), without mapping
 * it. Never zeros in place of bytes that cannot be read: an error instead.
 */
FARPOOL_API fp_status_t farpool_region_pread(farpool_region_t *region, void *buf, size_t len,
                                             uint64_t offset);

/**
 * Counters of a mapped region since it was mapped. New fields are only ever
 * appended: farpool_region_stats() fills as many bytes as the caller says
 * its struct has.
 */
typedef struct farpool_stats {
    uint64_t faults;         /* missing-page faults handled (fetches and waits) */
    uint64_t minor_faults;   /* touches of cached blocks (the LRU's access signal) */
    uint64_t wp_faults;      /* first writes to clean blocks */
    uint64_t blocks_fetched; /* blocks read from the node */
    uint64_t bytes_in;       /* bytes read from the node */
    uint64_t bytes_out;      /* bytes written back to the node */
    uint64_t evictions;      /* blocks dropped from the cache */
    uint64_t writebacks;     /* dirty blocks written back */
    uint64_t fetch_errors;   /* fetches that failed (accesses got SIGBUS) */
    uint64_t cache_bytes;    /* bytes of the region in the local cache now */
    uint64_t cache_peak;     /* the most it has held */
    uint64_t fetch_p50_ns;   /* fetch latency percentiles (fault to data mapped) */
    uint64_t fetch_p99_ns;
    uint64_t fetch_max_ns;
    uint64_t prefetch_issued; /* blocks fetched ahead of use (automatic or hinted) */
    uint64_t prefetch_used;   /* ...by the automatic prefetcher, then used (or hinted) */
    uint64_t prefetch_wasted; /* ...by the automatic prefetcher, dropped without being used */
    uint64_t prefetch_late;   /* ...touched while still in flight (waited, not refetched) */
    /*
     * ...for farpool_prefetch(). Those are mapped whole as they land, so that
     * using them costs no fault at all; their use is therefore not observed,
     * and they count in neither used nor wasted. Accuracy of the automatic
     * prefetcher = used / (issued - hinted).
     */
    uint64_t prefetch_hinted;
} farpool_stats_t;

/**
 * Read @region's counters into @stats_p, whose size is @stats_size (pass
 * sizeof(farpool_stats_t)); all zero while the region is not mapped.
 */
FARPOOL_API fp_status_t farpool_region_stats(farpool_region_t *region, farpool_stats_t *stats_p,
                                             size_t stats_size);

/** Description of a status code (same as fp_status_string()). */
FARPOOL_API const char *farpool_status_string(fp_status_t status);

#ifdef __cplusplus
}
#endif

#endif /* FARPOOL_FARPOOL_H */
