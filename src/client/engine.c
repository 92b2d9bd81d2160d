/* SPDX-License-Identifier: MIT */
/*
 * The fault engine of one mapped region: its thread's loop, deadlines and
 * commands, and its start and stop; see engine.h, and engine_int.h for the
 * parts and who owns what.
 *
 * DESIGN
 * The engine decides what to fetch, keep and evict; where the bytes live and
 * how they are mapped is the cache backend's business (cache.h): a memfd's
 * page cache mapped with UFFDIO_CONTINUE (cache_shmem.c, every mapping), or
 * a pool of recycled pages moved in and out with UFFDIO_MOVE (cache_move.c,
 * read-only mappings where the kernel can move pages). Either way a block's
 * bytes are received from the socket straight into the memory that is then
 * mapped: no copy after the socket's.
 *
 * One thread serves the region. It sleeps in poll() on the userfaultfd, an
 * eventfd (commands and hints from the application, calls from the
 * context's other regions) and the connection to each node that is up
 * (engine_nodes.c), with a timeout computed from its deadlines: a node's
 * silence while it has transfers in flight, and a wait for other regions'
 * memory. An idle mapped region has no deadline and wakes for nothing. Each
 * turn of the loop handles, in order, faults (a thread waits on each), the
 * transports' completions, the nodes found broken or silent, then what
 * waits for them: fetches to re-issue to another copy, fetches waiting for
 * room, faults waiting for a slot, hints, and the command in progress.
 *
 * Nothing the loop does blocks: fetches, write-backs and the passes of sync
 * and release are asynchronous (engine_fetch.c, engine_writeback.c), and
 * whatever waits for one is resumed when it completes.
 *
 * Failure. A node that completes none of its transfers in flight for the
 * connection's timeout is given up: the connection is closed, which
 * completes its transfers with an error, rather than leave the application
 * waiting for ever. Fetches are then read from another copy of their block
 * (engine_fetch.c); a block no copy can serve is poisoned (SIGBUS and a log
 * line, never zeros).
 *
 * Fences (fp_engine_fence; the LD_PRELOAD shim's partial mappings of a
 * file). A fenced block is never fetched: not by the read-ahead, nor a hint,
 * nor anything else, and so never mapped into the view, whose range the
 * fence makes PROT_NONE (the kernel moves and copies pages only between
 * areas of the same protection). Who does what, given the threads:
 *   - the fence bytes are written by the engine thread alone, in a fence
 *     command, and that thread alone claims blocks for fetches
 *     (fp_engine_fetch) and fills them: a fetch checks the fence when it
 *     claims its block, when it is launched from the room queue or
 *     re-issued to another copy, and when it lands, all on that thread, so
 *     none of those can miss a fence set by an earlier command;
 *   - fencing sets the bytes, then runs a release pass over the range
 *     (HINTED given up, RESIDENT dropped, DIRTY written back and dropped,
 *     in flight waited for: a fetch that lands fenced is dropped, not
 *     mapped nor poisoned, the block ABSENT again). The command is answered
 *     once every block of the range is ABSENT; only then does the calling
 *     thread mprotect it PROT_NONE, so no page is ever moved or copied into
 *     or out of an inaccessible range;
 *   - opening first mprotects the range back to the view's protection from
 *     the calling thread, then clears the bytes in a command: a block can
 *     be fetched only once its range is accessible again;
 *   - farpool_prefetch() runs in application threads and may move a fenced
 *     block ABSENT -> HINTED (it skips those it sees fenced); the engine
 *     gives such a hint up when it reaches it.
 * A demand fault on a fenced block cannot come from a PROT_NONE range (the
 * thread gets SIGSEGV first); one that does (the caller made the range
 * accessible itself) gets SIGBUS and a log line, never zeros: the block is
 * poisoned, and the poison is cleared when the block is opened, so that
 * its next fault after that fetches it as usual.
 *
 * fork(): the backends' mappings are MADV_DONTFORK, so a child has no mapping
 * at the region's addresses (an access there is SIGSEGV) instead of a view of
 * the cache that nothing would keep coherent.
 */
#include "engine.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"
#include "engine_int.h"

void fp_engine_wake_block(fp_engine_t *e, uint64_t b)
{
    fp_uffd_wake(&e->uffd, e->map + fp_engine_block_off(e, b), fp_engine_block_map_len(e, b));
}

/* Milliseconds poll() may sleep: until the next deadline; -1 if there is none. */
static int wait_ms(const fp_engine_t *e)
{
    uint64_t deadline = UINT64_MAX, now;

    if (e->kick || e->retry_head != NULL)
        return 0;
    deadline = fp_engine_nodes_deadline(e);
    if (e->asked != 0 && e->room_head != NULL && e->ask_until_ns < deadline)
        deadline = e->ask_until_ns;
    if (deadline == UINT64_MAX)
        return -1;
    now = fp_time_ns();
    if (now >= deadline)
        return 0;
    deadline = (deadline - now + FP_NS_PER_MS - 1) / FP_NS_PER_MS;
    return deadline > 60000 ? 60000 : (int)deadline;
}

/* Answer the command in progress. */
static void cmd_answer(fp_engine_t *e, fp_status_t status)
{
    pthread_mutex_lock(&e->lock);
    e->req = FP_CMD_NONE;
    e->req_status = status;
    e->req_done = true;
    pthread_cond_broadcast(&e->cond);
    pthread_mutex_unlock(&e->lock);
    if (e->cmd == FP_CMD_STOP)
        e->stopping = true;
    e->cmd = FP_CMD_NONE;
}

/* The blocks region bytes [off, off+len) touch, as [*first_p, *end_p). */
static void block_range(const fp_engine_t *e, uint64_t off, uint64_t len, uint64_t *first_p,
                        uint64_t *end_p)
{
    *first_p = off / e->granule;
    *end_p = (off + len + e->granule - 1) / e->granule;
}

/* Fence the blocks of [off, off+len), then drop them (the release pass of cmd_step). */
static void fence_start(fp_engine_t *e, uint64_t off, uint64_t len)
{
    uint64_t first, end;

    block_range(e, off, len, &first, &end);
    for (uint64_t b = first; b < end; b++)
        if (!fp_engine_fenced(e, b))
            atomic_store_explicit(&e->fence[b], FP_FENCE_ON, memory_order_relaxed);
    fp_engine_release_start(e, first, end);
}

/* Open the blocks of [off, off+len) again, clearing the poison a fault on one left. */
static void unfence(fp_engine_t *e, uint64_t off, uint64_t len)
{
    uint64_t first, end;

    block_range(e, off, len, &first, &end);
    for (uint64_t b = first; b < end; b++) {
        /* Fenced blocks are ABSENT: nothing but the poison's markers is there to go. */
        if (atomic_load_explicit(&e->fence[b], memory_order_relaxed) == FP_FENCE_POISONED &&
            madvise(e->map + fp_engine_block_off(e, b), fp_engine_block_map_len(e, b),
                    MADV_DONTNEED) != 0)
            fp_error(e->log, "region %s: cannot clear the poison of block %" PRIu64 ": %s", e->name,
                     b, strerror(errno));
        atomic_store_explicit(&e->fence[b], FP_FENCE_OPEN, memory_order_relaxed);
    }
}

/* Take a new command, if one was asked for. */
static void cmd_take(fp_engine_t *e)
{
    uint64_t off, len;

    if (e->cmd != FP_CMD_NONE)
        return;
    pthread_mutex_lock(&e->lock);
    if (e->req != FP_CMD_NONE && !e->req_taken) {
        e->req_taken = true;
        e->cmd = e->req;
    }
    off = e->req_off;
    len = e->req_len;
    pthread_mutex_unlock(&e->lock);
    switch (e->cmd) {
    case FP_CMD_SYNC:
        fp_engine_sync_start(e);
        break;
    case FP_CMD_RELEASE:
        fp_engine_release_start(e, off / e->granule, (off + len + e->granule - 1) / e->granule);
        break;
    case FP_CMD_FENCE:
        fence_start(e, off, len);
        break;
    case FP_CMD_UNFENCE:
        unfence(e, off, len);
        cmd_answer(e, FP_OK);
        break;
    case FP_CMD_STOP:
        fp_engine_hints_cancel(e, 0, e->nblocks, true);
        fp_engine_sync_start(e);
        e->cmd_result = FP_ERR_LAST; /* the sync's result, once it has one */
        break;
    default:
        break;
    }
}

/* Carry the command in progress on as far as it can go now. */
static void cmd_step(fp_engine_t *e)
{
    fp_status_t status = FP_OK;

    switch (e->cmd) {
    case FP_CMD_SYNC:
        if (fp_engine_sync_step(e, &status))
            cmd_answer(e, status);
        break;
    case FP_CMD_RELEASE:
    case FP_CMD_FENCE:
        if (fp_engine_release_step(e, &status))
            cmd_answer(e, status);
        break;
    case FP_CMD_PREFETCH_WAIT:
        /* Every prefetch has landed, or what is left cannot be issued for want
         * of room (or of a node): either way, waiting longer changes nothing. */
        if (e->nprefetch == 0 &&
            (!fp_engine_hints_pending(e) || e->nfetch == 0 || !fp_engine_any_node(e)))
            cmd_answer(e, fp_engine_any_node(e) ? FP_OK : FP_ERR_NOT_CONNECTED);
        break;
    case FP_CMD_STOP:
        /* Write back, then let every transfer in flight finish. */
        if (e->cmd_result == FP_ERR_LAST) {
            if (!fp_engine_sync_step(e, &status))
                break;
            e->cmd_result = status;
        }
        if (e->nfetch == 0 && e->nwb == 0)
            cmd_answer(e, e->cmd_result);
        break;
    default:
        break;
    }
}

/* poll() failed (ENOMEM: the kernel is short of memory). Said once per second at most. */
static void poll_failed(fp_engine_t *e, uint64_t *said_ns)
{
    uint64_t now = fp_time_ns();

    if (now - *said_ns >= FP_NS_PER_MS * 1000) {
        fp_error(e->log, "region %s: poll: %s; going on", e->name, strerror(errno));
        *said_ns = now;
    }
}

static void *engine_thread(void *arg)
{
    fp_engine_t *e = arg;
    uint64_t said_ns = 0;

    while (!e->stopping) {
        struct pollfd *pfd = e->pfd;
        nfds_t n;
        int rc;

        pfd[0].fd = e->wake_fd;
        pfd[0].events = POLLIN;
        /* Faults kept for want of a slot: read no more until one frees. */
        pfd[1].fd = e->ndeferred == 0 ? e->uffd.fd : -1;
        pfd[1].events = POLLIN;
        n = 2 + fp_engine_nodes_poll(e);
        for (nfds_t i = 0; i < n; i++)
            pfd[i].revents = 0;
        rc = poll(pfd, n, wait_ms(e));
        if (rc < 0 && errno != EINTR) {
            /* Look at everything: each step finds out for itself, without waiting. */
            poll_failed(e, &said_ns);
            for (nfds_t i = 0; i < n; i++)
                pfd[i].revents = pfd[i].events;
        }
        if (pfd[0].revents & POLLIN) {
            uint64_t v;

            /* Non-blocking; EAGAIN (another turn drained it) is as good. */
            (void)!read(e->wake_fd, &v, sizeof(v));
            cmd_take(e);
        }
        fp_engine_budget_step(e);
        /* Faults first: a thread waits on each. The transport hands back
         * between slices of a reply while more wait (fp_transport_interrupt_on). */
        if (pfd[1].revents & POLLIN)
            fp_engine_read_faults(e);
        /* (A new map adopted meanwhile moved the arrays, and kept what they held.) */
        for (nfds_t i = 2; i < n; i++)
            if (e->pfd[i].revents != 0)
                fp_engine_node_progress(e, &e->nodes[e->pfd_node[i - 2]]);
        /* Nodes found broken or silent: disconnected, their transfers failed. */
        fp_engine_nodes_step(e);
        /* Then what waits on completions. One that frees a slot or ends a
         * transfer during these steps (a submit that fails at once) kicks:
         * the next turn does not sleep. */
        e->kick = false;
        fp_engine_retry_step(e);
        fp_engine_room_retry(e);
        if (e->ndeferred > 0)
            fp_engine_read_faults(e);
        fp_engine_hints_step(e);
        cmd_step(e);
    }
    return NULL;
}

/* Ask the engine thread to carry out @cmd and wait for its answer. */
static fp_status_t engine_command(fp_engine_t *e, fp_engine_cmd_t cmd, uint64_t off, uint64_t len)
{
    uint64_t one = 1;
    fp_status_t status;

    pthread_mutex_lock(&e->lock);
    while (e->req != FP_CMD_NONE || e->req_done) /* one command at a time, whoever asks */
        pthread_cond_wait(&e->cond, &e->lock);
    e->req = cmd;
    e->req_off = off;
    e->req_len = len;
    e->req_taken = false;
    pthread_mutex_unlock(&e->lock);
    /* An eventfd write fails only when it would overflow: readable then anyway. */
    (void)!write(e->wake_fd, &one, sizeof(one));
    pthread_mutex_lock(&e->lock);
    while (!e->req_done)
        pthread_cond_wait(&e->cond, &e->lock);
    status = e->req_status;
    e->req_done = false;              /* the answer is taken */
    pthread_cond_broadcast(&e->cond); /* the next command may go */
    pthread_mutex_unlock(&e->lock);
    return status;
}

/* Name the engine's thread after its region ("fp:NAME", as ps and /proc show it). */
static void name_thread(fp_engine_t *e)
{
    char name[16] = "fp:";

    /* The kernel keeps 15 bytes of a thread's name. */
    memcpy(name + 3, e->name, strnlen(e->name, sizeof(name) - 4));
    (void)pthread_setname_np(e->thread, name); /* cosmetic: a failure changes nothing */
}

/* Open the userfaultfd and the cache backend, and map the region. */
static fp_status_t engine_map(fp_engine_t *e, const fp_engine_params_t *params)
{
    fp_cache_params_t cp;
    bool user_mode_only = false;
    uint64_t features = 0;
    fp_status_t status;

    status = fp_uffd_open(e->log, &e->uffd, &user_mode_only, &features);
    if (status != FP_OK)
        return status;
    /* A fault must not wait for all the replies a fast node has sent meanwhile. */
    fp_engine_nodes_interrupt(e, e->uffd.fd);
    if (user_mode_only)
        fp_info(e->log,
                "region %s: userfaultfd in user-mode-only mode: system calls that write into the "
                "region (read(2) into it) fail with EFAULT",
                e->name);
    /* Read-only mappings recycle their pages where the kernel can move them. */
    e->ops = e->readonly && (features & UFFD_FEATURE_MOVE) && (features & UFFD_FEATURE_THREAD_ID)
                 ? &fp_cache_move_ops
                 : &fp_cache_shmem_ops;
    memset(&cp, 0, sizeof(cp));
    cp.name = e->name;
    cp.log = e->log;
    cp.uffd = &e->uffd;
    cp.map_size = e->map_size;
    cp.granule = e->granule;
    cp.nblocks = e->nblocks;
    cp.max_blocks = (e->budget->limit + e->granule - 1) / e->granule;
    cp.readonly = e->readonly;
    cp.fixed_addr = e->rmap.fixed_addr;
    status = e->ops->create(&cp, &e->cache);
    if (status != FP_OK) {
        fp_engine_nodes_interrupt(e, -1);
        fp_uffd_close(&e->uffd);
        return status;
    }
    e->map = e->cache->map;
    fp_debug(e->log, "region %s: %s cache, granule %" PRIu64, e->name, e->ops->name, e->granule);
    if (params->prefault) {
        /* Take the memory now rather than during the first touches. */
        uint64_t used = atomic_load(&e->budget->used), want = e->nblocks * e->granule;

        if (used < e->budget->limit)
            fp_engine_mem_add(
                e, (int64_t)e->ops->prefault(
                       e->cache, want < e->budget->limit - used ? want : e->budget->limit - used));
    }
    return FP_OK;
}

/* Undo engine_map(). */
static void engine_unmap(fp_engine_t *e)
{
    e->ops->destroy(e->cache);
    fp_engine_mem_add(e, -(int64_t)e->held);
    fp_engine_nodes_interrupt(e, -1); /* the descriptor is about to go */
    fp_uffd_close(&e->uffd);
}

fp_status_t fp_engine_start(const fp_engine_params_t *params, fp_engine_t **engine_p, void **addr_p)
{
    fp_engine_t *e;
    fp_status_t status;

    if (params == NULL || params->map == NULL || engine_p == NULL || addr_p == NULL)
        return FP_ERR_INVALID_PARAM;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return FP_ERR_NO_MEMORY;
    snprintf(e->name, sizeof(e->name), "%s", params->map->name);
    e->log = params->log;
    e->readonly = params->readonly;
    e->readahead = params->readahead;
    e->budget = params->budget;
    e->uffd.fd = e->wake_fd = -1;

    status = fp_engine_nodes_start(e, params);
    if (status != FP_OK)
        goto err_free;
    e->size = e->rmap.size;
    e->granule = e->rmap.granule;
    e->map_size = (e->size + FP_ENGINE_PAGE - 1) & ~(uint64_t)(FP_ENGINE_PAGE - 1);
    e->nblocks = (e->size + e->granule - 1) / e->granule;
    status = fp_block_table_create(e->nblocks, &e->blocks);
    if (status != FP_OK)
        goto err_nodes;
    e->pf = calloc(e->nblocks, 1);
    e->fence = calloc(e->nblocks, sizeof(*e->fence));
    if (e->pf == NULL || e->fence == NULL) {
        status = FP_ERR_NO_MEMORY;
        goto err_blocks;
    }
    fp_prefetch_init(&e->trend, FP_ENGINE_WINDOW_MAX);
    fp_engine_ios_init(e);
    status = fp_stats_publish(e->log, e->name, e->rmap.nodes[0], e->size, e->granule,
                              e->budget->limit, &e->st);
    if (status != FP_OK)
        goto err_pf;
    e->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (e->wake_fd < 0) {
        fp_error(e->log, "region %s: eventfd: %s", e->name, strerror(errno));
        status = FP_ERR_IO;
        goto err_stats;
    }
    status = engine_map(e, params);
    if (status != FP_OK)
        goto err_wake;
    fp_budget_join(e->budget, &e->member, e->wake_fd);
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->cond, NULL);
    if (pthread_create(&e->thread, NULL, engine_thread, e) != 0) {
        fp_error(e->log, "region %s: cannot start its fault thread", e->name);
        status = FP_ERR_NO_MEMORY;
        goto err_lock;
    }
    name_thread(e);
    *engine_p = e;
    *addr_p = e->map;
    return FP_OK;

err_lock:
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->lock);
    fp_budget_leave(e->budget, &e->member);
    engine_unmap(e);
err_wake:
    close(e->wake_fd);
err_stats:
    fp_stats_unpublish(e->st);
err_pf:
    free(e->fence);
    free(e->pf);
err_blocks:
    fp_block_table_destroy(e->blocks);
err_nodes:
    fp_engine_nodes_stop(e);
err_free:
    free(e);
    return status;
}

fp_status_t fp_engine_sync(fp_engine_t *e)
{
    return engine_command(e, FP_CMD_SYNC, 0, 0);
}

fp_status_t fp_engine_stop(fp_engine_t *e, bool force)
{
    fp_status_t status;

    if (e == NULL)
        return FP_OK;
    if (!force) {
        /* Write back first; if that fails, the cache holds the only copy of
         * those bytes: keep everything mapped and say so. */
        status = engine_command(e, FP_CMD_SYNC, 0, 0);
        if (status != FP_OK)
            return status;
    }
    status = engine_command(e, FP_CMD_STOP, 0, 0);
    if (status != FP_OK)
        fp_error(e->log,
                 "region %s: unmapped with dirty blocks that could not be written back: those "
                 "writes are lost",
                 e->name);
    pthread_join(e->thread, NULL);
    fp_budget_leave(e->budget, &e->member);
    if (e->asked != 0)
        fp_budget_unask(e->budget, e->asked);
    engine_unmap(e);
    close(e->wake_fd);
    fp_stats_unpublish(e->st);
    pthread_cond_destroy(&e->cond);
    pthread_mutex_destroy(&e->lock);
    fp_block_table_destroy(e->blocks);
    free(e->fence);
    free(e->pf);
    fp_engine_nodes_stop(e);
    free(e);
    return status;
}

void fp_engine_stats(fp_engine_t *e, farpool_stats_t *s)
{
    fp_stats_read(e->st, s);
}

fp_status_t fp_engine_prefetch_wait(fp_engine_t *e)
{
    return engine_command(e, FP_CMD_PREFETCH_WAIT, 0, 0);
}

fp_status_t fp_engine_release(fp_engine_t *e, uint64_t off, uint64_t len)
{
    return engine_command(e, FP_CMD_RELEASE, off, len);
}

fp_status_t fp_engine_fence(fp_engine_t *e, uint64_t off, uint64_t len, bool fenced)
{
    uint64_t first, end, bytes;
    fp_status_t status = FP_OK;
    uint8_t *addr;

    if (off > e->map_size || len > e->map_size - off)
        return FP_ERR_OUT_OF_RANGE;
    block_range(e, off, len, &first, &end);
    if (first == end)
        return FP_OK;
    addr = e->map + fp_engine_block_off(e, first);
    bytes = fp_engine_block_off(e, end - 1) + fp_engine_block_map_len(e, end - 1) -
            fp_engine_block_off(e, first);
    /* The order is what makes it safe (Fences above): no block is in the cache
     * or in flight while its range is inaccessible. */
    if (fenced)
        status = engine_command(e, FP_CMD_FENCE, off, len);
    if (mprotect(addr, bytes, fenced ? PROT_NONE : e->cache->prot) != 0) {
        fp_error(e->log, "region %s: mprotect of +%" PRIu64 " (%" PRIu64 " bytes): %s", e->name,
                 (uint64_t)(addr - e->map), bytes, strerror(errno));
        if (!fenced)
            return FP_ERR_IO; /* stays fenced: its range would not take its pages */
        status = FP_ERR_IO;
    }
    if (!fenced)
        status = engine_command(e, FP_CMD_UNFENCE, off, len);
    return status;
}
