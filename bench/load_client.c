/* SPDX-License-Identifier: MIT */
/*
 * farpool-load-client: one client process of bench/load.sh's load test.
 *
 * It creates its own pool region and, for a bounded number of requests and
 * seconds, reads and writes random ranges of it with farpool_region_pread()
 * and farpool_region_pwrite(), verifying every byte it reads against what it
 * last wrote there. At the end it reads the whole region once more (the final
 * sweep), deletes it and prints one JSON line on stdout.
 *
 * Sessions. The region is used in sessions that alternate between a writer
 * handle (opened for writing: it holds the writer lease; reads and writes)
 * and a reader handle (opened read-only: reads only). The pool repairs a
 * region only while no writer holds it (docs/consistency.md), so the reader
 * sessions are what lets repair finish under load. A session ends by opening
 * the next handle first and only then closing the current one, so a failed
 * open (the metadata node is away) leaves the client working on the handle it
 * has; the open is tried again after a back-off. Each failure is counted.
 *
 * Verification. The region is cut into 4 KiB chunks; writes are chunk-aligned
 * and stamp every 8-byte word with a hash of (client id, word offset,
 * version), version 0 being the zeros of a fresh region. Each chunk keeps the
 * versions it may hold: one after a successful write; after a failed write
 * (some copies may have taken part of it) the old ones and the new one, up to
 * CAND_MAX, after which the chunk is not verified until written again (its
 * bytes are counted as unverifiable). A read that succeeds is checked word by
 * word against those candidates: a word that matches none is wrong, and its
 * bytes that differ from the latest version are counted as wrong bytes, with
 * details on stderr. A read that fails is counted as an error, never as
 * verified.
 *
 * Errors. Every failed call is counted under "OP: STATUS" (fp_status_string)
 * and printed on stderr with its wall-clock time in ms ("t_ms=..."), so the
 * script can check each happened while a fault was under way. Nothing is
 * retried silently: a request that fails is not repeated.
 *
 * Latency: each request's (reads and writes, failed ones included) into a
 * log-linear histogram (32 sub-buckets per power of two of nanoseconds, under
 * 3 % error), printed as [[bucket_lower_ns, count], ...] for the script to
 * merge over clients.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <farpool/farpool.h>

#define PROG         "farpool-load-client"
#define CHUNK        4096u
#define CAND_MAX     4
#define WORD         8u
#define HIST_SUB     32
#define HIST_BUCKETS (64 * HIST_SUB)
#define MAX_KINDS    64
#define MAX_DETAILS  10
#define BACKOFF_MS   200

typedef struct load_args {
    const char *pool;
    const char *name;
    const char *stop_file;
    const char *ready_file;
    unsigned id;
    uint64_t size;
    uint32_t min_len, max_len;
    uint32_t replicas;
    unsigned write_pct;
    uint64_t max_requests;
    double seconds;
    unsigned rw_ms, ro_ms;
    int timeout_ms;
    uint64_t seed;
    bool keep;
} load_args_t;

typedef struct chunk_state {
    uint8_t ncand; /* 0: not known (not verified until written) */
    uint32_t cand[CAND_MAX];
} chunk_state_t;

typedef struct err_kind {
    char name[96];
    uint64_t count;
} err_kind_t;

typedef struct load {
    load_args_t a;
    farpool_context_t *ctx;
    farpool_region_t *h; /* the current handle */
    bool h_rw;
    chunk_state_t *chunks;
    uint64_t nchunks;
    uint32_t version;
    uint64_t rng;
    uint8_t *buf;
    uint64_t requests, reads, writes, read_bytes, write_bytes;
    uint64_t verified_bytes, wrong_bytes, unverifiable_bytes;
    uint64_t sweep_bytes, sweep_wrong;
    uint64_t sessions, details;
    uint64_t open_max_ns;
    err_kind_t kinds[MAX_KINDS];
    size_t nkinds;
    uint64_t errors;
    uint64_t hist[HIST_BUCKETS];
    uint64_t lat_max_ns;
} load_t;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_next(load_t *l)
{
    return mix64(l->rng += 0x9e3779b97f4a7c15ull);
}

/* The word at byte @off (a multiple of 8) of version @v. */
static uint64_t pattern_word(const load_t *l, uint64_t off, uint32_t v)
{
    if (v == 0)
        return 0;
    return mix64(((uint64_t)l->a.id << 48) ^ (off / WORD) ^ ((uint64_t)v << 24) ^
                 0x5bd1e9955bd1e995ull);
}

static void pattern_fill(const load_t *l, uint8_t *p, uint64_t off, size_t len, uint32_t v)
{
    for (size_t i = 0; i < len; i += WORD) {
        uint64_t w = pattern_word(l, off + i, v);

        memcpy(p + i, &w, WORD);
    }
}

static void hist_add(load_t *l, uint64_t ns)
{
    unsigned b;

    if (ns < HIST_SUB) {
        b = (unsigned)ns;
    } else {
        unsigned e = 63u - (unsigned)__builtin_clzll(ns); /* ns >= 2^e */
        unsigned shift = e - 5u;                          /* HIST_SUB = 2^5 */

        b = (e - 4u) * HIST_SUB + (unsigned)((ns >> shift) - HIST_SUB);
    }
    if (b >= HIST_BUCKETS)
        b = HIST_BUCKETS - 1;
    l->hist[b]++;
    if (ns > l->lat_max_ns)
        l->lat_max_ns = ns;
}

/* The lowest latency that falls in bucket @b. */
static uint64_t hist_lower(unsigned b)
{
    unsigned e;

    if (b < HIST_SUB)
        return b;
    e = b / HIST_SUB + 4u;
    return ((uint64_t)(b % HIST_SUB) + HIST_SUB) << (e - 5u);
}

static uint64_t hist_pct(const load_t *l, double pct)
{
    uint64_t total = 0, seen = 0, want;

    for (unsigned b = 0; b < HIST_BUCKETS; b++)
        total += l->hist[b];
    if (total == 0)
        return 0;
    want = (uint64_t)(pct / 100.0 * (double)total + 0.999999);
    if (want == 0)
        want = 1;
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        seen += l->hist[b];
        if (seen >= want)
            return hist_lower(b);
    }
    return l->lat_max_ns;
}

/* Count (and print) one failed call. */
static void count_error(load_t *l, const char *op, fp_status_t status, uint64_t off, uint64_t len)
{
    char name[96];
    size_t i;

    snprintf(name, sizeof(name), "%s: %s", op, farpool_status_string(status));
    l->errors++;
    fprintf(stderr,
            "%s %u: error t_ms=%" PRIu64 " op=%s status=\"%s\" offset=%" PRIu64 " len=%" PRIu64
            "\n",
            PROG, l->a.id, wall_ms(), op, farpool_status_string(status), off, len);
    for (i = 0; i < l->nkinds; i++) {
        if (strcmp(l->kinds[i].name, name) == 0)
            break;
    }
    if (i == l->nkinds) {
        if (l->nkinds == MAX_KINDS) {
            i = MAX_KINDS - 1;
            snprintf(l->kinds[i].name, sizeof(l->kinds[i].name), "other");
        } else {
            snprintf(l->kinds[i].name, sizeof(l->kinds[i].name), "%s", name);
            l->nkinds++;
        }
    }
    l->kinds[i].count++;
}

/*
 * Check @len bytes at @off just read into @p against the chunks' candidates;
 * returns the wrong bytes. @what names the check in the details.
 */
static uint64_t verify(load_t *l, const uint8_t *p, uint64_t off, size_t len, const char *what)
{
    uint64_t wrong = 0;

    for (size_t done = 0; done < len; done += CHUNK) {
        const chunk_state_t *c = &l->chunks[(off + done) / CHUNK];

        if (c->ncand == 0) {
            l->unverifiable_bytes += CHUNK;
            continue;
        }
        for (size_t i = 0; i < CHUNK; i += WORD) {
            uint64_t at = off + done + i, got, want = 0;
            bool match = false;

            memcpy(&got, p + done + i, WORD);
            for (unsigned k = 0; k < c->ncand && !match; k++) {
                want = pattern_word(l, at, c->cand[k]);
                match = got == want;
            }
            if (match)
                continue;
            want = pattern_word(l, at, c->cand[c->ncand - 1]);
            for (unsigned b = 0; b < WORD; b++) {
                if (((got >> (8 * b)) & 0xff) != ((want >> (8 * b)) & 0xff))
                    wrong++;
            }
            if (l->details++ < MAX_DETAILS) {
                fprintf(stderr,
                        "%s %u: WRONG BYTES (%s) region %s offset %" PRIu64 ": got %016" PRIx64
                        ", want %016" PRIx64 " (version %" PRIu32 " of %u candidates;",
                        PROG, l->a.id, what, l->a.name, at, got, want, c->cand[c->ncand - 1],
                        c->ncand);
                for (unsigned k = 0; k < c->ncand; k++)
                    fprintf(stderr, " %" PRIu32, c->cand[k]);
                fprintf(stderr, ")\n");
            }
        }
        l->verified_bytes += CHUNK;
    }
    return wrong;
}

static void record_write(load_t *l, uint64_t off, size_t len, uint32_t v, bool ok)
{
    for (uint64_t c = off / CHUNK; c < (off + len) / CHUNK; c++) {
        chunk_state_t *s = &l->chunks[c];

        if (ok) {
            s->ncand = 1;
            s->cand[0] = v;
        } else if (s->ncand > 0 && s->ncand < CAND_MAX) {
            s->cand[s->ncand++] = v;
        } else {
            s->ncand = 0; /* too many possibilities: not verified until written */
        }
    }
}

static void one_request(load_t *l)
{
    uint32_t span = (l->a.max_len - l->a.min_len) / CHUNK + 1;
    size_t len = l->a.min_len + (size_t)(rng_next(l) % span) * CHUNK;
    uint64_t off = (rng_next(l) % ((l->a.size - len) / CHUNK + 1)) * CHUNK;
    bool write = l->h_rw && rng_next(l) % 100 < l->a.write_pct;
    uint64_t t0;
    fp_status_t status;

    if (write) {
        uint32_t v = ++l->version;

        pattern_fill(l, l->buf, off, len, v);
        t0 = now_ns();
        status = farpool_region_pwrite(l->h, l->buf, len, off);
        hist_add(l, now_ns() - t0);
        l->writes++;
        record_write(l, off, len, v, status == FP_OK);
        if (status == FP_OK)
            l->write_bytes += len;
        else
            count_error(l, "pwrite", status, off, len);
    } else {
        t0 = now_ns();
        status = farpool_region_pread(l->h, l->buf, len, off);
        hist_add(l, now_ns() - t0);
        l->reads++;
        if (status == FP_OK) {
            l->read_bytes += len;
            l->wrong_bytes += verify(l, l->buf, off, len, "read");
        } else {
            count_error(l, "pread", status, off, len);
        }
    }
    l->requests++;
}

/* Open the region for writing (@rw) or reading; counts a failure. */
static fp_status_t open_handle(load_t *l, bool rw, farpool_region_t **h_p)
{
    uint64_t t0 = now_ns(), took;
    fp_status_t status;

    status = farpool_region_open(l->ctx, l->a.name, rw ? 0 : FARPOOL_REGION_READONLY, h_p);
    took = now_ns() - t0;
    if (took > l->open_max_ns)
        l->open_max_ns = took;
    if (status != FP_OK)
        count_error(l, rw ? "open_rw" : "open_ro", status, 0, 0);
    return status;
}

static bool stop_asked(const load_t *l)
{
    struct stat st;

    return l->a.stop_file != NULL && stat(l->a.stop_file, &st) == 0;
}

static int run(load_t *l)
{
    farpool_context_params_t cp;
    farpool_region_params_t rp;
    fp_status_t status;
    uint64_t t_start, deadline, session_end, next_check = 0;

    memset(&cp, 0, sizeof(cp));
    cp.field_mask = FARPOOL_CONTEXT_PARAM_POOL | FARPOOL_CONTEXT_PARAM_TIMEOUT;
    cp.pool = l->a.pool;
    cp.timeout_ms = l->a.timeout_ms;
    status = farpool_context_create(&cp, &l->ctx);
    if (status != FP_OK) {
        fprintf(stderr, "%s %u: context of pool %s: %s\n", PROG, l->a.id,
                l->a.pool != NULL ? l->a.pool : "$FARPOOL_POOL", farpool_status_string(status));
        return 1;
    }
    memset(&rp, 0, sizeof(rp));
    rp.field_mask = FARPOOL_REGION_PARAM_REPLICAS;
    rp.replicas = l->a.replicas;
    status = farpool_region_create_ex(l->ctx, l->a.name, l->a.size, &rp, &l->h);
    if (status == FP_ERR_EXISTS) {
        /* Left by an earlier run: write it over; its content starts unknown. */
        status = farpool_region_open(l->ctx, l->a.name, 0, &l->h);
        if (status == FP_OK && farpool_region_size(l->h) != l->a.size) {
            fprintf(stderr, "%s %u: region %s exists with another size\n", PROG, l->a.id,
                    l->a.name);
            farpool_region_close(l->h);
            return 1;
        }
        for (uint64_t c = 0; c < l->nchunks; c++)
            l->chunks[c].ncand = 0;
    }
    if (status != FP_OK) {
        fprintf(stderr, "%s %u: cannot create region %s: %s\n", PROG, l->a.id, l->a.name,
                farpool_status_string(status));
        return 1;
    }
    l->h_rw = true;
    l->sessions = 1;
    if (l->a.ready_file != NULL) {
        FILE *f = fopen(l->a.ready_file, "w");

        if (f != NULL)
            fclose(f);
    }

    t_start = now_ns();
    deadline = t_start + (uint64_t)(l->a.seconds * 1e9);
    session_end = t_start + (uint64_t)l->a.rw_ms * 1000000ull;
    while (l->requests < l->a.max_requests) {
        uint64_t now = now_ns();

        if (now >= deadline)
            break;
        if (now >= next_check) {
            if (stop_asked(l))
                break;
            next_check = now + 50000000ull;
        }
        if (now >= session_end && l->a.ro_ms > 0) {
            farpool_region_t *next = NULL;
            bool rw = !l->h_rw;

            if (open_handle(l, rw, &next) == FP_OK) {
                farpool_region_close(l->h);
                l->h = next;
                l->h_rw = rw;
                l->sessions++;
                session_end = now_ns() + (uint64_t)(rw ? l->a.rw_ms : l->a.ro_ms) * 1000000ull;
            } else {
                session_end = now_ns() + BACKOFF_MS * 1000000ull;
            }
        }
        one_request(l);
    }
    double elapsed = (double)(now_ns() - t_start) / 1e9;

    /* The final sweep: the whole region, read-only, in 1 MiB reads. */
    farpool_region_close(l->h);
    l->h = NULL;
    for (int tries = 0; tries < 10 && l->h == NULL; tries++) {
        if (open_handle(l, false, &l->h) != FP_OK)
            usleep(BACKOFF_MS * 1000);
    }
    if (l->h != NULL) {
        size_t piece = (size_t)1 << 20;

        for (uint64_t off = 0; off < l->a.size; off += piece) {
            size_t len = l->a.size - off < piece ? (size_t)(l->a.size - off) : piece;

            status = farpool_region_pread(l->h, l->buf, len, off);
            if (status != FP_OK) {
                count_error(l, "sweep", status, off, len);
                continue;
            }
            uint64_t before = l->verified_bytes;

            l->sweep_wrong += verify(l, l->buf, off, len, "final sweep");
            l->sweep_bytes += l->verified_bytes - before;
        }
        farpool_region_close(l->h);
        l->h = NULL;
    }
    if (!l->a.keep) {
        for (int tries = 0; tries < 10; tries++) {
            status = farpool_region_delete(l->ctx, l->a.name);
            if (status == FP_OK || status == FP_ERR_NO_ENTRY)
                break;
            count_error(l, "delete", status, 0, 0);
            usleep(BACKOFF_MS * 1000);
        }
    }
    farpool_context_destroy(l->ctx);
    l->ctx = NULL;

    printf("{\"client\":%u,\"region\":\"%s\",\"elapsed_s\":%.3f,\"requests\":%" PRIu64
           ",\"reads\":%" PRIu64 ",\"writes\":%" PRIu64 ",\"read_bytes\":%" PRIu64
           ",\"write_bytes\":%" PRIu64 ",\"rps\":%.1f,\"sessions\":%" PRIu64
           ",\"open_max_us\":%" PRIu64 ",\"verified_bytes\":%" PRIu64
           ",\"unverifiable_bytes\":%" PRIu64 ",\"sweep_bytes\":%" PRIu64
           ",\"wrong_bytes\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"errors_by_kind\":{",
           l->a.id, l->a.name, elapsed, l->requests, l->reads, l->writes, l->read_bytes,
           l->write_bytes, elapsed > 0 ? (double)l->requests / elapsed : 0.0, l->sessions,
           l->open_max_ns / 1000, l->verified_bytes, l->unverifiable_bytes, l->sweep_bytes,
           l->wrong_bytes + l->sweep_wrong, l->errors);
    for (size_t i = 0; i < l->nkinds; i++)
        printf("%s\"%s\":%" PRIu64, i ? "," : "", l->kinds[i].name, l->kinds[i].count);
    printf("},\"p50_us\":%.1f,\"p99_us\":%.1f,\"max_us\":%.1f,\"hist_ns\":[",
           (double)hist_pct(l, 50) / 1e3, (double)hist_pct(l, 99) / 1e3,
           (double)l->lat_max_ns / 1e3);
    bool first = true;

    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        if (l->hist[b] == 0)
            continue;
        printf("%s[%" PRIu64 ",%" PRIu64 "]", first ? "" : ",", hist_lower(b), l->hist[b]);
        first = false;
    }
    printf("]}\n");
    fflush(stdout);
    return l->wrong_bytes + l->sweep_wrong > 0 ? 3 : 0;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: " PROG " --id N [OPTIONS]\n"
                 "One client of bench/load.sh: verified random reads and writes of its own pool\n"
                 "region; one JSON line on stdout at the end.\n\n"
                 "  --pool URL         the pool (default $FARPOOL_POOL)\n"
                 "  --id N             this client's number (0-65535); names its region\n"
                 "  --name NAME        the region (default load-ID)\n"
                 "  --size SIZE        region bytes, a multiple of 4 KiB (default 16M)\n"
                 "  --min SIZE, --max SIZE  request sizes, multiples of 4 KiB (default 4K, 64K)\n"
                 "  --write-pct P      writes among a writer session's requests (default 50)\n"
                 "  --replicas N       copies of each slab (default 2)\n"
                 "  --requests N       stop after N requests (default 10000000)\n"
                 "  --seconds S        stop after S seconds (default 10)\n"
                 "  --stop-file FILE   stop when FILE exists (checked every 50 ms)\n"
                 "  --ready-file FILE  created once the region is made\n"
                 "  --rw-ms MS         length of a writer session (default 1000)\n"
                 "  --ro-ms MS         length of a read-only session (default 500; 0: never)\n"
                 "  --timeout-ms MS    the context's network deadline (default 5000)\n"
                 "  --seed N           random seed (default: from the id)\n"
                 "  --keep             do not delete the region at the end\n"
                 "Exit: 0, 1 (setup failed), 2 (usage), 3 (wrong bytes read).\n");
}

static int parse_size(const char *s, uint64_t *v_p)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s)
        return -1;
    switch (*end) {
    case 'K':
        v <<= 10;
        end++;
        break;
    case 'M':
        v <<= 20;
        end++;
        break;
    case 'G':
        v <<= 30;
        end++;
        break;
    default:
        break;
    }
    if (*end != '\0')
        return -1;
    *v_p = v;
    return 0;
}

int main(int argc, char **argv)
{
    enum {
        O_POOL = 256,
        O_ID,
        O_NAME,
        O_SIZE,
        O_MIN,
        O_MAX,
        O_WPCT,
        O_REPL,
        O_REQ,
        O_SEC,
        O_STOP,
        O_READY,
        O_RW,
        O_RO,
        O_TMO,
        O_SEED,
        O_KEEP,
        O_HELP
    };
    static const struct option opts[] = {
        {"pool", required_argument, NULL, O_POOL},
        {"id", required_argument, NULL, O_ID},
        {"name", required_argument, NULL, O_NAME},
        {"size", required_argument, NULL, O_SIZE},
        {"min", required_argument, NULL, O_MIN},
        {"max", required_argument, NULL, O_MAX},
        {"write-pct", required_argument, NULL, O_WPCT},
        {"replicas", required_argument, NULL, O_REPL},
        {"requests", required_argument, NULL, O_REQ},
        {"seconds", required_argument, NULL, O_SEC},
        {"stop-file", required_argument, NULL, O_STOP},
        {"ready-file", required_argument, NULL, O_READY},
        {"rw-ms", required_argument, NULL, O_RW},
        {"ro-ms", required_argument, NULL, O_RO},
        {"timeout-ms", required_argument, NULL, O_TMO},
        {"seed", required_argument, NULL, O_SEED},
        {"keep", no_argument, NULL, O_KEEP},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    static load_t l;
    static char name[64];
    uint64_t v;
    bool have_id = false, have_seed = false;
    int c;

    l.a.pool = getenv("FARPOOL_POOL");
    l.a.size = 16ull << 20;
    l.a.min_len = 4096;
    l.a.max_len = 64 << 10;
    l.a.write_pct = 50;
    l.a.replicas = 2;
    l.a.max_requests = 10000000;
    l.a.seconds = 10;
    l.a.rw_ms = 1000;
    l.a.ro_ms = 500;
    l.a.timeout_ms = 5000;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        const char *bad = NULL;

        switch (c) {
        case O_POOL:
            l.a.pool = optarg;
            break;
        case O_NAME:
            l.a.name = optarg;
            break;
        case O_STOP:
            l.a.stop_file = optarg;
            break;
        case O_READY:
            l.a.ready_file = optarg;
            break;
        case O_KEEP:
            l.a.keep = true;
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        case O_SEC: {
            char *end;

            l.a.seconds = strtod(optarg, &end);
            if (*end != '\0' || !(l.a.seconds > 0 && l.a.seconds < 86400))
                bad = "--seconds";
            break;
        }
        default:
            if (c < O_POOL || parse_size(optarg, &v) != 0) {
                bad = c < O_POOL ? "an option" : argv[optind - 2];
                break;
            }
            switch (c) {
            case O_ID:
                l.a.id = (unsigned)v;
                have_id = v <= 65535;
                bad = have_id ? NULL : "--id";
                break;
            case O_SIZE:
                l.a.size = v;
                break;
            case O_MIN:
                l.a.min_len = (uint32_t)v;
                break;
            case O_MAX:
                l.a.max_len = (uint32_t)v;
                break;
            case O_WPCT:
                l.a.write_pct = (unsigned)v;
                bad = v > 100 ? "--write-pct" : NULL;
                break;
            case O_REPL:
                l.a.replicas = (uint32_t)v;
                break;
            case O_REQ:
                l.a.max_requests = v;
                break;
            case O_RW:
                l.a.rw_ms = (unsigned)v;
                break;
            case O_RO:
                l.a.ro_ms = (unsigned)v;
                break;
            case O_TMO:
                l.a.timeout_ms = (int)v;
                break;
            case O_SEED:
                l.a.seed = v;
                have_seed = true;
                break;
            default:
                break;
            }
        }
        if (bad != NULL) {
            fprintf(stderr, "%s: bad %s\nTry '%s --help'.\n", PROG, bad, PROG);
            return 2;
        }
    }
    if (optind < argc || !have_id) {
        fprintf(stderr, "%s: %s\nTry '%s --help'.\n", PROG,
                optind < argc ? "unexpected arguments" : "--id is required", PROG);
        return 2;
    }
    if (l.a.size == 0 || l.a.size % CHUNK != 0 || l.a.min_len == 0 || l.a.min_len % CHUNK != 0 ||
        l.a.max_len % CHUNK != 0 || l.a.max_len < l.a.min_len || l.a.max_len > l.a.size ||
        l.a.rw_ms == 0 || l.a.timeout_ms <= 0) {
        fprintf(stderr,
                "%s: sizes must be multiples of 4 KiB, --min <= --max <= --size, "
                "--rw-ms and --timeout-ms above 0\n",
                PROG);
        return 2;
    }
    if (l.a.name == NULL) {
        snprintf(name, sizeof(name), "load-%u", l.a.id);
        l.a.name = name;
    }
    l.rng = have_seed ? l.a.seed : mix64(l.a.id + 1) ^ (uint64_t)getpid();
    l.nchunks = l.a.size / CHUNK;
    l.chunks = calloc(l.nchunks, sizeof(*l.chunks));
    l.buf = malloc((size_t)1 << 20 > l.a.max_len ? (size_t)1 << 20 : l.a.max_len);
    if (l.chunks == NULL || l.buf == NULL) {
        fprintf(stderr, "%s: out of memory\n", PROG);
        return 1;
    }
    for (uint64_t i = 0; i < l.nchunks; i++)
        l.chunks[i].ncand = 1; /* version 0: zeros */
    int rc = run(&l);

    free(l.chunks);
    free(l.buf);
    return rc;
}
