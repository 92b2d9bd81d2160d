/* SPDX-License-Identifier: MIT */
/*
 * What the parts of a region's fault engine share; engine.h is its interface
 * and engine.c's DESIGN says how the parts fit. One file per role:
 *
 *   engine.c            the engine thread's loop, its deadlines, the commands
 *                       of the application (sync, release, prefetch-wait, fence,
 *                       stop), start and stop
 *   engine_fault.c      the fault reader: userfaultfd messages to actions
 *   engine_fetch.c      the I/O slots, fetches and fills, poisoning
 *   engine_evict.c      room in the cache: CLOCK victims, the shared budget
 *   engine_writeback.c  write-backs of dirty blocks, sync and release passes
 *   engine_hints.c      farpool_prefetch() hints and the read-ahead
 *   engine_nodes.c      the memory nodes: connections, replicas, a node's
 *                       failure and silence, a new map
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
 * handling, so no completion ever runs inside a half-done start. A fetch that
 * failed on one copy goes on the retry queue, and a node found broken is
 * only flagged (fail): the loop's steps re-issue the one and disconnect the
 * other, never a completion.
 */
#ifndef FP_CLIENT_ENGINE_INT_H
#define FP_CLIENT_ENGINE_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <poll.h>
#include <stdint.h>
#include <sys/uio.h>

#include "block.h"
#include "budget.h"
#include "cache.h"
#include "common/secret.h"
#include "engine.h"
#include "node.h"
#include "prefetch.h"
#include "region_map.h"
#include "region_meta.h"
#include "stats.h"
#include "transport/transport.h"
#include "uffd.h"

#define FP_ENGINE_PAGE           FP_CACHE_PAGE
#define FP_ENGINE_HEAD           (64u << 10) /* a demand fetch maps this much around the fault first */
#define FP_ENGINE_IOS            64          /* fetches and write-backs in flight, per region */
#define FP_ENGINE_WB_RESERVE     8           /* I/O slots fetches leave to write-backs */
#define FP_ENGINE_DEMAND_RESERVE 8           /* fetch slots prefetches leave to faults */
#define FP_ENGINE_MAX_RANGES     40   /* ranges of one block: 2 MiB over 64 KiB slabs, + head */
#define FP_ENGINE_MSG_BATCH      64   /* userfaultfd messages read at once */
#define FP_ENGINE_HINTS          256  /* farpool_prefetch() ranges queued */
#define FP_ENGINE_WINDOW_MAX     32   /* blocks the read-ahead keeps ahead at most */
#define FP_ENGINE_ASK_MS         100  /* a fault waits this long for other regions' spares */
#define FP_ENGINE_REMAP_MS       1000 /* the remap callback is called at most this often */

/* Per-block prefetch flags, fp_engine_t.pf. */
enum fp_engine_pf {
    FP_PF_INFLIGHT = 0x01, /* being fetched ahead of use */
    FP_PF_UNUSED = 0x02,   /* fetched ahead; its use not seen yet */
    FP_PF_LATE = 0x04,     /* touched while still in flight */
    FP_PF_MARKER = 0x08,   /* first block of a read-ahead batch: its touch is seen */
    FP_PF_SENTINEL = 0x10, /* a marker mapped all but its first page */
    FP_PF_WANTED = 0x20,   /* in flight and known to be used: map it whole as it lands */
    FP_PF_HINT = 0x40,     /* the application hinted it: its faults start no read-ahead */
};

/*
 * Per-block fence, fp_engine_t.fence (fp_engine_fence(), engine.c's Fences):
 * written by the engine thread only, in a fence command.
 */
enum fp_engine_fence {
    FP_FENCE_OPEN = 0,     /* fetched as usual */
    FP_FENCE_ON = 1,       /* never fetched, nor kept */
    FP_FENCE_POISONED = 2, /* ...and a fault on it got SIGBUS: its poison goes at unfence */
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
    FP_IO_RETRY,     /* a fetch that failed on a copy, on the retry queue */
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

/* The parts of a fetch: xfer[0] the head (or the whole block), xfer[1] the rest. */
#define FP_IO_PART_HEAD 0x1u
#define FP_IO_PART_REST 0x2u

/*
 * One I/O slot: a block's fetch (head and rest, from one copy at a time) or
 * its write-back (one transfer per copy).
 */
typedef struct fp_engine_io {
    fp_engine_t *e;
    struct fp_engine_io *next; /* on the free list, the room queue or the retry queue */
    uint8_t kind, state;       /* fp_engine_io_kind_t, fp_engine_io_state_t */
    unsigned flags;            /* fp_engine_io_flags */
    uint64_t gen;              /* bumped at each use: a slot seen again is another I/O */
    uint64_t block, fault_off, start_ns;
    uint64_t seq; /* write-backs: their order, for a sync to know which it waits for */
    int pending;  /* transfers outstanding */
    fp_status_t status;
    bool head_mapped;
    uint64_t head_off, head_len; /* region offset and length of the head part */
    uint8_t parts;               /* fetch: the parts it has (FP_IO_PART_*) */
    uint8_t landed;              /* fetch: the parts received */
    uint8_t copy;                /* fetch: the copy being read */
    uint8_t tried;               /* fetch: the copies tried (bit k: copy k) since map_gen */
    uint8_t sent;                /* the xfers on the wire (bit x: xfer[x]) */
    uint8_t done;                /* write-back: the copies that have the bytes */
    uint64_t map_gen;            /* fetch: the map its copies were tried under */
    fp_status_t copy_status[FP_MAP_REPLICAS_MAX]; /* per copy: why it failed */
    uint32_t xnode[FP_MAP_REPLICAS_MAX];          /* per xfer: the engine node it goes to */
    fp_xfer_t xfer[FP_MAP_REPLICAS_MAX]; /* fetch: the parts; write-back: xfer[k] to copy k */
    fp_proto_range_t ranges[FP_MAP_REPLICAS_MAX][FP_ENGINE_MAX_RANGES];
    struct iovec iov[2][FP_ENGINE_MAX_RANGES]; /* a write-back's copies share iov[0] */
} fp_engine_io_t;

/*
 * A memory node the engine talks to (engine_nodes.c). The table only grows:
 * a node a new map no longer names stays, unused, so that the transfers in
 * flight to it still find it.
 */
typedef struct fp_engine_node {
    char addr[FP_MAP_ADDR_MAX];
    uint64_t node_id;     /* the farpoold it must be (its HELLO node id); 0: any */
    farpool_node_t *conn; /* NULL: never connected */
    fp_transport_t *tp;   /* conn's transport; NULL: down */
    unsigned nxfer;       /* transfers on the wire to it */
    uint64_t quiet_since; /* nxfer > 0: when one of them last ended, or the first began */
    fp_status_t fail;     /* not FP_OK: found broken by a completion, to be disconnected */
    bool silenced;        /* being disconnected for its silence: its transfers timed out */
    bool flush;           /* requests submitted and not flushed yet */
    bool said_reply;      /* an error reply of it was logged (the next ones at debug) */
    bool said_missed;     /* a write-back that went on without it was logged */
    bool given_up;        /* what it holds cannot be trusted: never used, nor connected, again */
    /* Per slab of the region: the id of this node's copy that missed a write
     * (UINT64_MAX: none), never read again; NULL until one does. */
    uint64_t *stale;
    uint64_t *told; /* per slab: the stale id told to the stale callback; NULL until one is */
} fp_engine_node_t;

typedef enum fp_engine_cmd {
    FP_CMD_NONE = 0,
    FP_CMD_SYNC,
    FP_CMD_RELEASE,
    FP_CMD_PREFETCH_WAIT,
    FP_CMD_FENCE,
    FP_CMD_UNFENCE,
    FP_CMD_STOP,
} fp_engine_cmd_t;

typedef struct fp_engine_hint {
    uint64_t first, end; /* blocks [first, end) */
} fp_engine_hint_t;

struct fp_engine {
    char name[FP_REGION_NAME_MAX + 1];
    fp_log_t *log; /* the context's; outlives the engine */
    uint64_t size, map_size, granule, nblocks;
    bool readonly, readahead;
    fp_uffd_t uffd;
    int wake_fd; /* eventfd: commands, hints, the budget's calls */
    fp_cache_t *cache;
    const fp_cache_ops_t *ops; /* cache->ops */
    uint8_t *map;              /* the application's view (cache->map) */
    fp_block_table_t *blocks;  /* states are atomics: see block.h */
    uint8_t *pf;               /* fp_engine_pf flags per block */
    _Atomic uint8_t *fence;    /* fp_engine_fence per block: the engine thread writes it,
                                  application threads may read it (relaxed) */
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
    uint64_t evicting; /* bytes of dirty victims being written back, to be dropped */
    bool kick;         /* a slot freed or a transfer ended: retry what waits */
    fp_engine_io_t *retry_head, *retry_tail; /* fetches to re-issue to another copy */

    /* The map and the nodes (engine_nodes.c). */
    fp_region_map_t rmap;    /* the engine's copy */
    uint64_t map_gen;        /* maps adopted */
    uint32_t *map_node;      /* rmap.nnodes: the engine node of each node of the map */
    fp_engine_node_t *nodes; /* nnodes, of which nlive are up */
    unsigned nnodes, nlive;
    bool nodes_failed;        /* some node's fail is set */
    unsigned rr;              /* round-robin among copies equally busy */
    uint64_t timeout_ns;      /* a node's silence limit */
    farpool_node_params_t np; /* how to connect; secret copied below */
    uint8_t secret[FP_SECRET_MAX];
    char secret_file[PATH_MAX];
    fp_status_t (*remap)(void *arg, fp_region_map_t *map_p);
    void *remap_arg;
    uint64_t remap_ns; /* when remap was last called; 0: never */
    fp_status_t (*stale)(void *arg, uint32_t slab, const char *addr); /* with remap_arg */
    bool stale_unsaid;    /* some node's stale copy is not told to stale() yet */
    uint64_t stale_ns;    /* when stale() last failed; 0: never */
    struct pollfd *pfd;   /* 2 + nnodes: the loop's descriptors */
    unsigned *pfd_node;   /* the engine node of each pfd[2 + i] */
    uint64_t copy_errors; /* fetches that failed on one copy (re-issued or not) */
    uint64_t wb_missed;   /* write-backs that missed a copy (but reached another) */

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

/* ---- the fault reader (engine_fault.c) ---- */

/* Handle the deferred faults, then read and handle the userfaultfd's. */
void fp_engine_read_faults(fp_engine_t *e);

/* ---- fetches (engine_fetch.c) ---- */

typedef enum fp_engine_fetch {
    FP_FETCH_STARTED,  /* on its way (or waiting for room; failures are handled) */
    FP_FETCH_SKIPPED,  /* a guess not worth its room or slot now: nothing done */
    FP_FETCH_DEFERRED, /* a fault with no slot free: handle it again later */
    FP_FETCH_GONE,     /* the block is not ABSENT or HINTED any more: nothing to fetch */
    FP_FETCH_FENCED,   /* the block is fenced: not fetched (a fault on it got SIGBUS) */
} fp_engine_fetch_t;

/* Block @b is fenced (engine thread: exact; others: a hint). */
static inline bool fp_engine_fenced(fp_engine_t *e, uint64_t b)
{
    return atomic_load_explicit(&e->fence[b], memory_order_relaxed) != FP_FENCE_OPEN;
}

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

/*
 * Describe region bytes [off, off+len) of one block as ranges of its copy
 * @copy and the cache memory they land in or leave from.
 */
unsigned fp_engine_add_ranges(fp_engine_t *e, uint64_t off, uint64_t len, unsigned copy,
                              fp_proto_range_t *ranges, struct iovec *iov, unsigned n);

/* Map [off, off+len) of one block, landed, into the application's view. */
fp_status_t fp_engine_map_range(fp_engine_t *e, uint64_t off, uint64_t len);

/* The xfers of @io ended (or were never sent): it is off the wire. */
void fp_engine_io_ended(fp_engine_t *e, fp_engine_io_t *io);

/* Re-issue the fetches that failed on a copy, each to another copy (or fail them). */
void fp_engine_retry_step(fp_engine_t *e);

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

/* ---- the nodes and the map (engine_nodes.c) ---- */

/* Copy the map, connect to its nodes (and open the region where by_key is false). */
fp_status_t fp_engine_nodes_start(fp_engine_t *e, const fp_engine_params_t *params);

/* Close every connection and free the map. */
void fp_engine_nodes_stop(fp_engine_t *e);

/* Let progress of every connection return early while @fd polls readable (-1: never). */
void fp_engine_nodes_interrupt(fp_engine_t *e, int fd);

/* The engine node of copy @k of block @b; NULL: none there. */
static inline fp_engine_node_t *fp_engine_copy_node(fp_engine_t *e, uint64_t b, unsigned k)
{
    uint32_t node =
        fp_region_map_at(&e->rmap, (uint32_t)(b * e->granule / e->rmap.slab_size), k)->node;

    return node == FP_MAP_NO_NODE ? NULL : &e->nodes[e->map_node[node]];
}

/*
 * Copy @k of block @b is usable: on a node that is up, and did not miss a
 * write of the block's slabs.
 */
bool fp_engine_copy_usable(fp_engine_t *e, uint64_t b, unsigned k);

/*
 * The copy of block @b on node @n, whose slabs @ranges name (one per slab, in
 * order, as fp_engine_add_ranges() made them), missed a write that another
 * copy took: never read it again. True if that copy was not known stale yet
 * (the caller says so once per slab, not once per block).
 */
bool fp_engine_copy_missed(fp_engine_t *e, fp_engine_node_t *n, uint64_t b,
                           const fp_proto_range_t *ranges);

/* A failure that says the node (or the way to it) is broken, not that it lacks the slab. */
static inline bool fp_engine_node_level(fp_status_t status)
{
    return status == FP_ERR_NOT_CONNECTED || status == FP_ERR_TIMED_OUT || status == FP_ERR_IO ||
           status == FP_ERR_CANCELED || status == FP_ERR_PROTOCOL;
}

/* True while some node is up. */
static inline bool fp_engine_any_node(const fp_engine_t *e)
{
    return e->nlive > 0;
}

/*
 * Submit xfer @x of @io to engine node @n; on failure the caller completes
 * it (as the transport would have), and fp_engine_xfer_ended() finds it was
 * never sent.
 */
fp_status_t fp_engine_submit(fp_engine_t *e, fp_engine_io_t *io, unsigned x, fp_engine_node_t *n);

/*
 * Xfer @x of @io completed with *@status_p (in a completion): it is off its
 * node's wire; a transfer canceled by a silence check becomes a timeout.
 * Returns its node, NULL if it was never sent.
 */
fp_engine_node_t *fp_engine_xfer_ended(fp_engine_t *e, fp_engine_io_t *io, unsigned x,
                                       fp_status_t *status_p);

/* In a completion: node @n failed with @status; the loop disconnects it (fp_engine_nodes_step). */
void fp_engine_node_failed(fp_engine_t *e, fp_engine_node_t *n, fp_status_t status);

/*
 * Send what was just submitted, without receiving: no completion runs (the
 * loop's poll says when replies come), so none can run inside a step.
 */
void fp_engine_flush(fp_engine_t *e);

/* Fill the loop's descriptors of the live nodes from e->pfd[2] on; returns how many. */
unsigned fp_engine_nodes_poll(fp_engine_t *e);

/* Complete what node @n (a live one, e->pfd_node's) has for us, without waiting. */
void fp_engine_node_progress(fp_engine_t *e, fp_engine_node_t *n);

/*
 * The loop's step: disconnect the nodes found broken, and those that have
 * completed none of their transfers for the timeout (completing their
 * transfers with errors).
 */
void fp_engine_nodes_step(fp_engine_t *e);

/* The next silence deadline of a node (fp_time_ns); UINT64_MAX: none. */
uint64_t fp_engine_nodes_deadline(const fp_engine_t *e);

/*
 * No copy of block @b is left for a fetch: ask the remap callback for a new
 * map (at most every FP_ENGINE_REMAP_MS) and adopt it. True if one was
 * adopted (blocking: the failure path).
 */
bool fp_engine_remap(fp_engine_t *e, uint64_t b);

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
