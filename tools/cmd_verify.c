/* SPDX-License-Identifier: MIT */
/*
 * `farpool verify NAME`: read every copy of a region and check each against
 * the checksum it was put with.
 *
 * The region's map (fp_pool_open + fp_pool_region_map) gives, for each slab,
 * its copies: (member, slab id). Copy k of the region is copy k of every
 * slab, read straight from the members (farpool_slab_read, on connections
 * presenting the region's key) and hashed in order; a slab with fewer than
 * k + 1 copies (one on a dead member, one being repaired) is read from
 * another of its copies instead, and the report says how many were. A
 * region without a checksum has its copies compared with each other.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "cli.h"
#include "client/pool.h"
#include "json.h"
#include "progress.h"

#define VERIFY_CHUNK      (4u << 20) /* bytes read per farpool_slab_read() */
#define VERIFY_REPORT_MAX 10         /* unreadable slabs reported per copy */

static void verify_usage(void)
{
    printf("Usage: farpool verify NAME [--json] [--quiet] [--pool URL] [--secret-file FILE]\n"
           "Read every copy of region NAME from the members that hold it and check that\n"
           "each hashes to the checksum it was put with. Exit 1 on any mismatch or\n"
           "unreadable slab.\n\n"
           "  -j, --json             JSON, for scripts\n"
           "  -q, --quiet            no progress bar\n"
           "  -p, --pool URL         the pool, farpool://HOST:PORT (default: $FARPOOL_POOL)\n"
           "  -k, --secret-file F    the pool's secret (default: $FARPOOL_SECRET_FILE)\n");
}

typedef enum copy_result {
    COPY_OK,
    COPY_MISMATCH,
    COPY_UNREADABLE,
} copy_result_t;

typedef struct copy_report {
    copy_result_t result;
    uint32_t fallback;   /* slabs read from another copy */
    uint32_t unreadable; /* slabs that could not be read */
    uint8_t sum[crypto_generichash_BYTES];
} copy_report_t;

typedef struct verify {
    const char *name, *secret_file;
    fp_pool_region_desc_t desc;
    fp_region_map_t map;
    farpool_node_t **conns;   /* map.nnodes, connected on first use */
    fp_status_t *conn_status; /* FP_OK: not tried or connected */
    uint8_t *buf;             /* VERIFY_CHUNK bytes */
    cli_progress_t bar;
    uint64_t done; /* bytes read, over all copies */
} verify_t;

/* The connection to node @n of the map, or NULL (said why, once). */
static farpool_node_t *node_conn(verify_t *v, uint32_t n)
{
    farpool_node_params_t params = {0};
    fp_status_t status;

    if (v->conns[n] != NULL || v->conn_status[n] != FP_OK)
        return v->conns[n];
    params.field_mask = FARPOOL_NODE_PARAM_CLIENT_KEY;
    memcpy(params.client_key, v->desc.key, sizeof(params.client_key));
    if (v->secret_file != NULL) {
        params.field_mask |= FARPOOL_NODE_PARAM_SECRET_FILE;
        params.secret_file = v->secret_file;
    }
    status = farpool_node_connect(v->map.nodes[n], &params, &v->conns[n]);
    if (status != FP_OK) {
        cli_progress_clear(&v->bar);
        fprintf(stderr, "farpool: cannot reach member %s: %s\n", v->map.nodes[n],
                fp_status_string(status));
        v->conn_status[n] = status;
        v->conns[n] = NULL;
    }
    return v->conns[n];
}

/* Read slab @i from entry @e into @hash. */
static fp_status_t read_slab(verify_t *v, uint32_t i, const fp_map_replica_t *e,
                             crypto_generichash_state *hash)
{
    uint64_t start = (uint64_t)i * v->map.slab_size, len, off;
    farpool_node_t *node = node_conn(v, e->node);

    if (node == NULL)
        return v->conn_status[e->node];
    len = v->map.size - start < v->map.slab_size ? v->map.size - start : v->map.slab_size;
    for (off = 0; off < len; off += VERIFY_CHUNK) {
        size_t n = len - off < VERIFY_CHUNK ? (size_t)(len - off) : VERIFY_CHUNK;
        fp_status_t status = farpool_slab_read(node, e->slab, off, v->buf, n);

        if (status != FP_OK)
            return status;
        crypto_generichash_update(hash, v->buf, n);
        v->done += n;
        cli_progress_update(&v->bar, v->done);
    }
    return FP_OK;
}

/* Read and hash copy @k, filling @r. */
static void verify_copy(verify_t *v, uint32_t k, copy_report_t *r)
{
    crypto_generichash_state hash;

    memset(r, 0, sizeof(*r));
    crypto_generichash_init(&hash, NULL, 0, sizeof(r->sum));
    for (uint32_t i = 0; i < v->map.nslabs && cli_signal == 0; i++) {
        const fp_map_replica_t *e = fp_region_map_at(&v->map, i, k);
        fp_status_t status;

        if (e->node == FP_MAP_NO_NODE) {
            /* This slab has no copy k: read another one, and say so. */
            e = NULL;
            for (uint32_t j = 0; j < v->map.replicas; j++) {
                const fp_map_replica_t *o = fp_region_map_at(&v->map, i, j);

                if (j != k && o->node != FP_MAP_NO_NODE) {
                    e = o;
                    break;
                }
            }
            if (e == NULL) {
                cli_progress_clear(&v->bar);
                if (r->unreadable < VERIFY_REPORT_MAX)
                    fprintf(stderr, "farpool: %s: slab %" PRIu32 " has no copy left\n", v->name, i);
                r->unreadable++;
                continue;
            }
            r->fallback++;
        }
        status = read_slab(v, i, e, &hash);
        if (status != FP_OK) {
            cli_progress_clear(&v->bar);
            if (r->unreadable < VERIFY_REPORT_MAX)
                fprintf(stderr,
                        "farpool: %s: copy %" PRIu32 " of slab %" PRIu32 " (slab %" PRIu64
                        " on %s) cannot be read: %s\n",
                        v->name, k + 1, i, e->slab, v->map.nodes[e->node],
                        fp_status_string(status));
            r->unreadable++;
        }
    }
    crypto_generichash_final(&hash, r->sum, sizeof(r->sum));
    if (r->unreadable != 0)
        r->result = COPY_UNREADABLE;
    else if (v->desc.has_checksum)
        r->result =
            sodium_memcmp(r->sum, v->desc.checksum, sizeof(r->sum)) == 0 ? COPY_OK : COPY_MISMATCH;
}

static const char *result_name(copy_result_t r)
{
    switch (r) {
    case COPY_OK:
        return "ok";
    case COPY_MISMATCH:
        return "mismatch";
    case COPY_UNREADABLE:
        return "unreadable";
    }
    return "?";
}

static void print_report(const verify_t *v, const copy_report_t *reports, bool ok, bool json)
{
    char hex[2 * crypto_generichash_BYTES + 1], size[32], slab[32];
    uint32_t n = v->map.replicas;

    if (json) {
        printf("{\"region\":");
        cli_json_string(stdout, v->name);
        printf(",\"size\":%" PRIu64 ",\"slab_size\":%" PRIu64 ",\"slabs\":%" PRIu32
               ",\"replicas\":%" PRIu32 ",\"checksum\":",
               v->map.size, v->map.slab_size, v->map.nslabs, n);
        if (v->desc.has_checksum)
            cli_json_hex(stdout, v->desc.checksum, sizeof(v->desc.checksum));
        else
            printf("null");
        printf(",\"ok\":%s,\"copies\":[", ok ? "true" : "false");
        for (uint32_t k = 0; k < n; k++) {
            printf("%s{\"copy\":%" PRIu32 ",\"status\":\"%s\",\"checksum\":", k ? "," : "", k + 1,
                   result_name(reports[k].result));
            cli_json_hex(stdout, reports[k].sum, sizeof(reports[k].sum));
            printf(",\"fallback_slabs\":%" PRIu32 ",\"unreadable_slabs\":%" PRIu32 "}",
                   reports[k].fallback, reports[k].unreadable);
        }
        printf("]}\n");
        return;
    }
    cli_format_bytes(v->map.size, size, sizeof(size));
    cli_format_bytes(v->map.slab_size, slab, sizeof(slab));
    printf("region   %s: %s in %" PRIu32 " slabs of %s, %" PRIu32 " replica%s\n", v->name, size,
           v->map.nslabs, slab, n, n == 1 ? "" : "s");
    if (v->desc.has_checksum) {
        sodium_bin2hex(hex, sizeof(hex), v->desc.checksum, sizeof(v->desc.checksum));
        printf("checksum blake2b-256 %s\n", hex);
    } else {
        printf("checksum none stored: the copies are compared with each other\n");
    }
    for (uint32_t k = 0; k < n; k++) {
        const copy_report_t *r = &reports[k];

        sodium_bin2hex(hex, sizeof(hex), r->sum, sizeof(r->sum));
        printf("copy %-3" PRIu32 " %s", k + 1, result_name(r->result));
        if (r->result == COPY_MISMATCH)
            printf(" (hashes to %.16s...)", hex);
        else if (r->result == COPY_UNREADABLE)
            printf(" (%" PRIu32 " slab%s could not be read)", r->unreadable,
                   r->unreadable == 1 ? "" : "s");
        else if (!v->desc.has_checksum)
            printf(" (blake2b-256 %.16s...)", hex);
        if (r->fallback != 0)
            printf("; %" PRIu32 " slab%s with no copy %" PRIu32 " read from another copy",
                   r->fallback, r->fallback == 1 ? "" : "s", k + 1);
        printf("\n");
    }
    printf("%s\n", ok ? "ok" : "FAILED");
}

static int verify(verify_t *v, const char *url, bool json, bool quiet)
{
    copy_report_t *reports = NULL;
    farpool_node_t *meta;
    fp_status_t status;
    char label[300];
    int rc = CLI_EXIT_FAILURE;
    bool ok = true;

    if (cli_pool_connect(url, v->secret_file, &meta) != FP_OK)
        return CLI_EXIT_FAILURE;
    status = fp_pool_open(meta, v->name, 0, &v->desc);
    if (status == FP_OK) {
        status = fp_pool_region_map(meta, &v->desc, &v->map);
        if (status != FP_OK)
            fprintf(stderr, "farpool: cannot get the map of region '%s': %s\n", v->name,
                    fp_status_string(status));
    } else if (status == FP_ERR_NO_ENTRY) {
        fprintf(stderr, "farpool: no region '%s' in pool %s\n", v->name, url);
    } else {
        fprintf(stderr, "farpool: cannot open region '%s': %s\n", v->name,
                fp_status_string(status));
    }
    farpool_node_close(meta);
    if (status != FP_OK)
        return CLI_EXIT_FAILURE;

    v->conns = calloc(v->map.nnodes ? v->map.nnodes : 1, sizeof(*v->conns));
    v->conn_status = calloc(v->map.nnodes ? v->map.nnodes : 1, sizeof(*v->conn_status));
    v->buf = malloc(VERIFY_CHUNK);
    reports = calloc(v->map.replicas ? v->map.replicas : 1, sizeof(*reports));
    if (v->conns == NULL || v->conn_status == NULL || v->buf == NULL || reports == NULL) {
        fprintf(stderr, "farpool: out of memory\n");
        goto out_free;
    }
    cli_catch_signals();
    snprintf(label, sizeof(label), "verify %.200s", v->name);
    cli_progress_start(&v->bar, label, v->map.size * v->map.replicas, quiet || json);
    for (uint32_t k = 0; k < v->map.replicas && cli_signal == 0; k++)
        verify_copy(v, k, &reports[k]);
    cli_progress_clear(&v->bar);
    if (cli_signal != 0) {
        fprintf(stderr, "farpool: verify interrupted by %s\n", cli_signal_name(cli_signal));
        goto out_free;
    }
    if (!v->desc.has_checksum) {
        /* Nothing to check against: copies that differ from the first are mismatches. */
        for (uint32_t k = 1; k < v->map.replicas; k++)
            if (reports[k].result == COPY_OK &&
                memcmp(reports[k].sum, reports[0].sum, sizeof(reports[k].sum)) != 0)
                reports[k].result = COPY_MISMATCH;
    }
    for (uint32_t k = 0; k < v->map.replicas; k++)
        ok = ok && reports[k].result == COPY_OK;
    print_report(v, reports, ok, json);
    if (!ok)
        fprintf(stderr, "farpool: region '%s' failed verification\n", v->name);
    rc = ok ? CLI_EXIT_OK : CLI_EXIT_FAILURE;
out_free:
    for (uint32_t n = 0; v->conns != NULL && n < v->map.nnodes; n++)
        farpool_node_close(v->conns[n]);
    free(v->conns);
    free(v->conn_status);
    free(v->buf);
    free(reports);
    fp_region_map_cleanup(&v->map);
    return rc;
}

int cli_verify(int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},       {"quiet", no_argument, NULL, 'q'},
        {"pool", required_argument, NULL, 'p'}, {"secret-file", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *pool = NULL, *url;
    verify_t v;
    bool json = false, quiet = false;
    int opt, rc;

    memset(&v, 0, sizeof(v));
    while ((opt = getopt_long(argc, argv, "jqp:k:h", options, NULL)) != -1) {
        switch (opt) {
        case 'j':
            json = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'p':
            pool = optarg;
            break;
        case 'k':
            v.secret_file = optarg;
            break;
        case 'h':
            verify_usage();
            return CLI_EXIT_OK;
        default:
            return cli_usage_error("verify ", "bad option");
        }
    }
    if (optind >= argc)
        return cli_usage_error("verify ", "verify needs a region NAME");
    if (argc - optind > 1)
        return cli_usage_error("verify ", "unexpected argument '%s'", argv[optind + 1]);
    v.name = argv[optind];
    if (!cli_region_name_ok(v.name))
        return cli_usage_error("verify ", "bad region name '%s' (1-255 of A-Z a-z 0-9 . _ -)",
                               v.name);
    rc = cli_pool_url("verify ", pool, &url);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (sodium_init() < 0) {
        fprintf(stderr, "farpool: libsodium cannot be initialised\n");
        return CLI_EXIT_FAILURE;
    }
    return verify(&v, url, json, quiet);
}
