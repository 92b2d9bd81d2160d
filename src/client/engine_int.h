/* SPDX-License-Identifier: MIT */
/*
 * What the parts of a region's fault engine share; engine.h is its interface
 * and engine.c's DESIGN says how the parts fit. One file per role:
 *
 *   engine.c            the engine thread's loop, its deadlines, the commands
 *                       of the application (sync, release, prefetch-wait,
 *                       stop), start and stop
 *   engine_fault.c      the fault reader: userfaultfd messages to actions
 *   engine_fetch.c      the I/O slots, fetches and fills, poisoning
 *   engine_evict.c      room in the cache: CLOCK victims, the shared budget
 *   engine_writeback.c  write-backs of dirty blocks, sync and release passes
 *   engine_hints.c      farpool_prefetch() hints and the read-ahead
 *
 * Who owns what. One thread, the engine's, runs a region: every field of
 * fp_engine_t is read and written by it alone unless its comment names a lock
 * or says atomic. Application threads reach the engine through the command
 * block and the hint ring (both guarded by lock, followed by a write to
 * wake_fd) and through the block table, whose states are atomics: a hint
 * moves blocks ABSENT -> HINTED from the caller's thread. Counters in st are
 * written by the engine thread and read by anyone.
 *
 * Rule of the callbacks. Transfer completions run inside the transport's
 * progress, which the engine calls from many places. They finish what their
 * transfer did (map, drop, count) and may free an I/O slot, but never start
 * another transfer: new work starts only from the loop's steps and from fault
 * handling, so no completion ever runs inside a half-done start.
 */
#ifndef FP_CLIENT_ENGINE_INT_H
#define FP_CLIENT_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "block.h"
#include "budget.h"
#include "cache.h"
#include "engine.h"
#include "node.h"
#include "prefetch.h"
#include "region_meta.h"
#include "stats.h"
#include "transport/transport.h"
#include "uffd.h"

#define FP_ENGINE_PAGE           FP_CACHE_PAGE
#define FP_ENGINE_HEAD           (64u << 10) /* a demand fetch maps this much around the fault first */
#define FP_ENGINE_IOS            64          /* fetches and write-backs in flight, per region */
#define FP_ENGINE_WB_RESERVE     8           /* I/O slots fetches leave to write-backs */
#define FP_ENGINE_DEMAND_RESERVE 8           /* fetch slots prefetches leave to faults */
#define FP_ENGINE_MAX_RANGES     40  /* ranges of one block: 2 MiB over 64 KiB slabs, + head */
#define FP_ENGINE_MSG_BATCH      64  /* userfaultfd messages read at once */
#define FP_ENGINE_HINTS          256 /* farpool_prefetch() ranges queued */
#define FP_ENGINE_WINDOW_MAX     32  /* blocks the read-ahead keeps ahead at most */
#define FP_ENGINE_ASK_MS         100 /* a fault waits this long for other regions' spares */

/* Per-block prefetch flags, fp_engine_t.pf. */
enum fp_engine_pf {
    FP_PF_INFLIGHT = 0x01, /* being fetched ahead of use */
    FP_PF_UNUSED = 0x02,   /* fetched ahead; its use not seen yet */
    FP_PF_LATE = 0x04,     /* touched while still in flight */
    FP_PF_MARKER = 0x08,   /* first block of a read-ahead batch: its touch is seen */
    FP_PF_SENTINEL = 0x10, /* a marker mapped all but its first page */
    FP_PF_WANTED = 0x20,   /* in flight and known to be used: map it whole as it lands */
};

typedef enum fp_engine_io_kind {
    FP_IO_FETCH = 0,
    FP_IO_WRITEBACK,
} fp_engine_io_kind_t;

typedef enum fp_engine_io_state {
    FP_IO_FREE = 0,
    FP_IO_IDLE,      /* taken, nothing in flight (being set up, or just ended) */
    FP_IO_WAIT_ROOM, /* a fetch waiting for room in the cache */
    FP_IO_WIRE,      /* its requests are submitted */
} fp_engine_io_state_t;

/* What a fetch or write-back is for. */
enum fp_engine_io_flags {
    FP_IO_PREFETCH = 1u << 0, /* ahead of use: no head part, enters the cache cold */
    FP_IO_HINTED = 1u << 1,   /* ...for farpool_prefetch(): mapped whole as it lands */
    FP_IO_URGENT = 1u << 2,   /* ...and a thread waits for it: make room as for a fault */
    FP_IO_MARKER = 1u << 3,   /* ...the first block of a read-ahead batch */
    FP_IO_KEEP = 1u << 4,     /* write-back: keep the block cached (a sync, or touched) */
};

typedef struct fp_engine fp_engine_t;

/* One I/O slot: a block's fetch (head and rest) or its write-back. */
typedef struct fp_engine_io {
    fp_engine_t *e;
    struct fp_engine_io *next; /* on the free list or the room queue */
    uint8_t kind, state;       /* fp_engine_io_kind_t, fp_engine_io_state_t */
    unsigned flags;            /* fp_engine_io_flags */
    uint64_t gen;              /* bumped at each use: a slot seen again is another I/O */
    uint64_t block, fault_off, start_ns;
    uint64_t seq; /* write-backs: their order, for a sync to know which it waits for */
    int pending;  /* transfers outstanding */
    fp_status_t status;
    bool head_mapped;
    uint64_t head_off, head_len; /* region offset and length of the head part */
    fp_xfer_t xfer[2];           /* [0] head (or the whole), [1] the rest */
    fp_proto_range_t ranges[2][FP_ENGINE_MAX_RANGES];
    struct iovec iov[2][FP_ENGINE_MAX_RANGES];
} fp_engine_io_t;

typedef enum fp_engine_cmd {
    FP_CMD_NONE = 0,
    FP_CMD_SYNC,
    FP_CMD_RELEASE,
    FP_CMD_PREFETCH_WAIT,
    FP_CMD_STOP,
} fp_engine_cmd_t;

typedef struct fp_engine_hint {
    uint64_t first, end; /* blocks [first, end) */
} fp_engine_hint_t;

struct fp_engine {
    char name[FP_REGION_NAME_MAX + 1];
    fp_log_t *log;        /* the context's; outlives the engine */
    farpool_node_t *node; /* the engine's own connection */
    fp_transport_t *tp;   /* node's transport; NULL once the connection is gone */
    fp_region_info_t info;
    uint64_t size, map_size, granule, nblocks;
    bool readonly, readahead;
    fp_uffd_t uffd;
    int wake_fd; /* eventfd: commands, hints, the budget's calls */
    fp_cache_t *cache;
    const fp_cache_ops_t *ops; /* cache->ops */
    uint8_t *map;              /* the application's view (cache->map) */
    fp_block_table_t *blocks;  /* states are atomics: see block.h */
    uint8_t *pf;               /* fp_engine_pf flags per block */
    pthread_t thread;
    bool stopping; /* the loop ends once the stop command is answered */

    /* I/O slots. */
    fp_engine_io_t ios[FP_ENGINE_IOS];
    fp_engine_io_t *free_ios;
    unsigned nfetch, nprefetch, nwb, nwire; /* slots in use: fetches, of them ahead of use,
                                               write-backs; and of all, those on the wire */
    fp_engine_io_t *room_head, *room_tail;  /* fetches waiting for room, in order */
    uint64_t wb_seq;                        /* write-backs started */
    uint64_t wb_failed;                     /* write-backs that failed */
    fp_status_t wb_error;                   /* the last failure's status */
    uint64_t evicting;    /* bytes of dirty victims being written back, to be dropped */
    uint64_t quiet_since; /* slots on the wire: when the last transfer ended, or the first began */
    bool silenced;        /* disconnecting from a silent node: its transfers timed out */
    bool kick;            /* a slot freed or a transfer ended: retry what waits */

    /* Faults read but not yet handled (no slot for their fetch). */
    struct uffd_msg deferred[FP_ENGINE_MSG_BATCH];
    unsigned ndeferred, deferred_pos;
    bool write_denied; /* a write to this read-only region was refused, and said */

    /* Memory: the context's budget, this region's part of it. */
    fp_budget_t *budget;
    fp_budget_member_t member;
    uint64_t held;  /* what this engine charged to the budget */
    uint64_t asked; /* bytes asked of other regions, 0: none */
    uint64_t ask_until_ns;

    /* Read-ahead and hints. */
    fp_prefetch_t trend;
    uint64_t ra_end;           /* the last block read ahead along ra_trend */
    int64_t ra_trend;          /* 0: no stream */
    fp_engine_hint_t cur_hint; /* the hint being issued; first == end: none */

    /* The command being carried out (copied from the command block). */
    fp_engine_cmd_t cmd;
    uint64_t cmd_first, cmd_end; /* release: blocks [first, end) left to look at */
    uint64_t sync_next;          /* sync: the next block to look at */
    uint64_t sync_seq;           /* sync: write-backs started before it waited for */
    uint64_t sync_failed;        /* sync: wb_failed when it began */
    fp_status_t cmd_result;      /* release: its first failure */

    /* The command block and the hint ring, shared with application threads. */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    fp_engine_cmd_t req;                     /* guarded by lock: asked, not yet answered */
    uint64_t req_off, req_len;               /* guarded by lock: a release's range */
    bool req_taken, req_done;                /* guarded by lock */
    fp_status_t req_status;                  /* guarded by lock */
    fp_engine_hint_t hints[FP_ENGINE_HINTS]; /* guarded by lock: a ring */
    unsigned hint_head, nhints;              /* guarded by lock */

    fp_stats_shared_t *st;
};

/* ---- geometry (engine.c) ---- */

static inline uint64_t fp_engine_block_off(const fp_engine_t *e, uint64_t b)
{
    return b * e->granule;
}

/* Bytes of block @b on the node. */
static inline uint64_t fp_engine_block_len(const fp_engine_t *e, uint64_t b)
{
    uint64_t off = fp_engine_block_off(e, b);

    return e->size - off < e->granule ? e->size - off : e->granule;
}

/* Page-rounded length of block @b, as mapped. */
static inline uint64_t fp_engine_block_map_len(const fp_engine_t *e, uint64_t b)
{
    uint64_t off = fp_engine_block_off(e, b);

    return e->map_size - off < e->granule ? e->map_size - off : e->granule;
}

static inline void fp_engine_count(fp_engine_t *e, _Atomic uint64_t *counter, uint64_t n)
{
    (void)e;
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

/* Wake the threads waiting on faults in block @b. */
void fp_engine_wake_block(fp_engine_t *e, uint64_t b);

/* Let the transport send and complete what it can now, without waiting. */
void fp_engine_progress(fp_engine_t *e);

/*
 * Send what was just submitted, without receiving: no completion runs (the
 * loop's poll says when replies come), so none can run inside a step.
 */
void fp_engine_flush(fp_engine_t *e);

/* The connection is unusable: close it, which completes every transfer with an error. */
void fp_engine_disconnect(fp_engine_t *e);

/* ---- the fault reader (engine_fault.c) ---- */

/* Handle the deferred faults, then read and handle the userfaultfd's. */
void fp_engine_read_faults(fp_engine_t *e);

/* ---- fetches (engine_fetch.c) ---- */

typedef enum fp_engine_fetch {
    FP_FETCH_STARTED,  /* on its way (or waiting for room; failures are handled) */
    FP_FETCH_SKIPPED,  /* a guess not worth its room or slot now: nothing done */
    FP_FETCH_DEFERRED, /* a fault with no slot free: handle it again later */
    FP_FETCH_GONE,     /* the block is not ABSENT or HINTED any more: nothing to fetch */
} fp_engine_fetch_t;

/* Prepare the I/O slots. */
void fp_engine_ios_init(fp_engine_t *e);

/* A free slot for @kind, or NULL when its share is in use. */
fp_engine_io_t *fp_engine_io_get(fp_engine_t *e, fp_engine_io_kind_t kind);

/* Give @io back (its transfers are done). */
void fp_engine_io_put(fp_engine_t *e, fp_engine_io_t *io);

/*
 * Fetch block @b: for a fault at region offset @fault_off, or ahead of use
 * (FP_IO_PREFETCH, with HINTED, URGENT, MARKER as they apply).
 */
fp_engine_fetch_t fp_engine_fetch(fp_engine_t *e, uint64_t b, uint64_t fault_off, unsigned flags);

/* Start the fetches waiting for room, in order, as far as room allows. */
void fp_engine_room_retry(fp_engine_t *e);

/* Describe region bytes [off, off+len) of one block as slab ranges and cache memory. */
unsigned fp_engine_add_ranges(fp_engine_t *e, uint64_t off, uint64_t len, fp_proto_range_t *ranges,
                              struct iovec *iov, unsigned n);

/* Map [off, off+len) of one block, landed, into the application's view. */
fp_status_t fp_engine_map_range(fp_engine_t *e, uint64_t off, uint64_t len);

/* Submit @x; on failure the caller completes it. */
fp_status_t fp_engine_submit(fp_engine_t *e, fp_xfer_t *x);

/* The xfers of @io ended (or were never sent): note when, for the silence check. */
void fp_engine_io_ended(fp_engine_t *e, fp_engine_io_t *io);

/* ---- room in the cache (engine_evict.c) ---- */

/* What fp_engine_make_room() may do. */
enum fp_engine_room_flags {
    FP_ROOM_GUESS = 1u << 0, /* for a guess: replace only cold blocks, never wait */
    FP_ROOM_AGE = 1u << 1,   /* ...and move the CLOCK hand to find some */
};

typedef enum fp_engine_room {
    FP_ROOM_OK,   /* go: there is room (or waiting would not bring any) */
    FP_ROOM_WAIT, /* room is on its way (a write-back, a fetch, another region): wait */
    FP_ROOM_NONE, /* a guess finds nothing cold to replace: give it up */
} fp_engine_room_t;

/* Room for one more block; @flags: fp_engine_room_flags. */
fp_engine_room_t fp_engine_make_room(fp_engine_t *e, unsigned flags);

/* Memory the cache took (> 0) or gave back (< 0), charged to the budget. */
void fp_engine_mem_add(fp_engine_t *e, int64_t delta);

/* Bytes of the region cached or in flight (the statistics' measure). */
void fp_engine_stat_cache_add(fp_engine_t *e, int64_t delta);

/* Drop one clean block chosen by CLOCK (a dirty one is left dirty): false if none. */
bool fp_engine_evict_clean(fp_engine_t *e);

/* Drop block @b (EVICTING, clean) from the cache; wakes its waiters. */
void fp_engine_drop(fp_engine_t *e, uint64_t b);

/* Another region waits for memory: give back spare pages. Say what is spare. */
void fp_engine_budget_step(fp_engine_t *e);

/* ---- write-backs (engine_writeback.c) ---- */

/*
 * Write block @b (WRITEBACK, just taken from DIRTY) back to the node, then
 * keep it (FP_IO_KEEP) or drop it. False, with the block DIRTY again, if no
 * slot is free.
 */
bool fp_engine_writeback(fp_engine_t *e, uint64_t b, unsigned flags);

/* Block @b, being written back to be dropped, is in use again: keep it. */
void fp_engine_writeback_keep(fp_engine_t *e, uint64_t b);

/* Start a sync / a release of [first, end); step them; true once done. */
void fp_engine_sync_start(fp_engine_t *e);
bool fp_engine_sync_step(fp_engine_t *e, fp_status_t *status_p);
void fp_engine_release_start(fp_engine_t *e, uint64_t first, uint64_t end);
bool fp_engine_release_step(fp_engine_t *e, fp_status_t *status_p);

/* ---- hints and read-ahead (engine_hints.c) ---- */

/* A first touch of block @b (a miss, a marker's touch, a late one): read ahead along the trend. */
void fp_engine_note_access(fp_engine_t *e, uint64_t b);

/*
 * The marker @b was touched (@late: while in flight, and counted so): count
 * its batch used. Before the touching thread is woken (it may read the
 * counters at once); then fp_engine_note_access() reads on.
 */
void fp_engine_marker_credit(fp_engine_t *e, uint64_t b, bool late);

/* Issue queued hints while slots and room allow. */
void fp_engine_hints_step(fp_engine_t *e);

/* True while hints wait to be issued. */
bool fp_engine_hints_pending(fp_engine_t *e);

/* Give up the hinted blocks of [first, end) not issued yet, and queued hints if @all. */
void fp_engine_hints_cancel(fp_engine_t *e, uint64_t first, uint64_t end, bool all);

/* Block @b landed ahead of use, or was dropped: the read-ahead's bookkeeping. */
void fp_engine_prefetch_landed(fp_engine_t *e, fp_engine_io_t *io, fp_status_t status);
void fp_engine_prefetch_dropped(fp_engine_t *e, uint64_t b);

#endif /* FP_CLIENT_ENGINE_INT_H */
