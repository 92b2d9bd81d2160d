/* SPDX-License-Identifier: MIT */
/*
 * Writes the seed corpora of the fuzz targets, with the encoders of proto.h so
 * the frames are exactly what the daemon and the client send:
 *
 *   gen_corpus DIR      writes DIR/frame/<name>, DIR/parse/<name> and DIR/pool/<name>
 *
 * Frame seeds start with the direction byte of fuzz_frame.c (0: requests,
 * 1: replies), then one or more frames. Parse seeds are plain strings, without
 * a trailing newline. Pool seeds are the decoder byte of fuzz_pool.c, then one
 * POOL_* payload. The output is committed as tests/fuzz/corpus/; rerun this
 * after a protocol change:
 *
 *   cc -std=c11 -Iinclude -Isrc tests/fuzz/gen_corpus.c src/proto/proto.c \
 *       src/proto/pool.c -o /tmp/gen_corpus && /tmp/gen_corpus tests/fuzz/corpus
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "proto/pool.h"
#include "proto/proto.h"

/* Largest seed: a header and a READV/WRITEV args part with a little data. */
#define SEED_MAX (2 * (FP_PROTO_HDR_SIZE + FP_PROTO_MAX_ARGS) + 4096)

typedef struct seed {
    uint8_t buf[SEED_MAX];
    size_t len;
} seed_t;

static const char *out_dir;

static void seed_start(seed_t *seed, bool reply)
{
    seed->buf[0] = reply ? 1 : 0;
    seed->len = 1;
}

/* Append a frame: header, then @payload_len bytes of @payload (or a pattern). */
static void seed_frame(seed_t *seed, uint8_t op, bool reply, uint64_t id, int32_t status,
                       const uint8_t *payload, uint32_t payload_len)
{
    fp_proto_hdr_t hdr = {
        .version = FP_PROTO_VERSION,
        .op = op,
        .flags = reply ? FP_PROTO_FLAG_REPLY : 0,
        .id = id,
        .status = status,
        .length = payload_len,
    };

    if (seed->len + FP_PROTO_HDR_SIZE + payload_len > SEED_MAX) {
        fprintf(stderr, "gen_corpus: seed too large\n");
        exit(1);
    }
    fp_proto_hdr_encode(&hdr, seed->buf + seed->len);
    seed->len += FP_PROTO_HDR_SIZE;
    for (uint32_t i = 0; i < payload_len; i++)
        seed->buf[seed->len + i] = payload != NULL ? payload[i] : (uint8_t)(i * 7 + 1);
    seed->len += payload_len;
}

/* Append a data request: args encoded from @ranges, then the data of writes. */
static void seed_data_request(seed_t *seed, uint8_t op, uint64_t id, const fp_proto_range_t *ranges,
                              uint32_t count)
{
    static uint8_t payload[FP_PROTO_MAX_ARGS + 4096];
    uint32_t args_len, data_len = 0;

    args_len = fp_proto_ranges_encode(op, ranges, count, payload);
    if (op == FP_OP_WRITE || op == FP_OP_WRITEV) {
        for (uint32_t i = 0; i < count; i++)
            data_len += ranges[i].length;
        if (args_len + data_len > sizeof(payload)) {
            fprintf(stderr, "gen_corpus: write data too large\n");
            exit(1);
        }
        for (uint32_t i = 0; i < data_len; i++)
            payload[args_len + i] = (uint8_t)(0xa5 ^ i);
    }
    seed_frame(seed, op, false, id, 0, payload, args_len + data_len);
}

static void write_file(const char *sub, const char *name, const void *buf, size_t len)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s/%s", out_dir, sub, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "gen_corpus: %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void seed_write(const seed_t *seed, const char *name)
{
    write_file("frame", name, seed->buf, seed->len);
}

static void make_dir(const char *sub)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/%s", out_dir, sub);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen_corpus: %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static void gen_requests(void)
{
    static seed_t seed;
    uint8_t hello[FP_PROTO_HELLO_REQ_SIZE], auth[FP_PROTO_AUTH_REQ_SIZE], slab[8];
    fp_proto_hello_req_t req = {.min_version = 1, .max_version = 1};
    fp_proto_range_t one = {.slab = 3, .offset = 4096, .length = 64};
    fp_proto_range_t vec[3] = {
        {.slab = 1, .offset = 0, .length = 16},
        {.slab = 2, .offset = 1u << 20, .length = 32},
        {.slab = 1, .offset = 8192, .length = 8},
    };

    memset(req.client_key, 0x4b, sizeof(req.client_key));
    fp_proto_hello_req_encode(&req, hello);
    memset(auth, 0x33, sizeof(auth));
    fp_proto_put_u64(slab, 3);

    seed_start(&seed, false);
    seed_frame(&seed, FP_OP_HELLO, false, 1, 0, hello, sizeof(hello));
    seed_write(&seed, "req_hello");
    seed_start(&seed, false);
    seed_frame(&seed, FP_OP_AUTH, false, 2, 0, auth, sizeof(auth));
    seed_write(&seed, "req_auth");
    seed_start(&seed, false);
    seed_frame(&seed, FP_OP_PING, false, 3, 0, NULL, 0);
    seed_write(&seed, "req_ping");
    seed_start(&seed, false);
    seed_frame(&seed, FP_OP_STATS, false, 4, 0, NULL, 0);
    seed_write(&seed, "req_stats");
    seed_start(&seed, false);
    seed_frame(&seed, FP_OP_SLAB_ALLOC, false, 5, 0, NULL, 0);
    seed_write(&seed, "req_slab_alloc");
    seed_start(&seed, false);
    seed_frame(&seed, FP_OP_SLAB_FREE, false, 6, 0, slab, sizeof(slab));
    seed_write(&seed, "req_slab_free");
    seed_start(&seed, false);
    seed_data_request(&seed, FP_OP_READ, 7, &one, 1);
    seed_write(&seed, "req_read");
    seed_start(&seed, false);
    seed_data_request(&seed, FP_OP_WRITE, 8, &one, 1);
    seed_write(&seed, "req_write");
    seed_start(&seed, false);
    seed_data_request(&seed, FP_OP_READV, 9, vec, 3);
    seed_write(&seed, "req_readv");
    seed_start(&seed, false);
    seed_data_request(&seed, FP_OP_WRITEV, 10, vec, 3);
    seed_write(&seed, "req_writev");

    /* A whole session on one connection. */
    seed_start(&seed, false);
    seed_frame(&seed, FP_OP_HELLO, false, 1, 0, hello, sizeof(hello));
    seed_frame(&seed, FP_OP_AUTH, false, 2, 0, auth, sizeof(auth));
    seed_frame(&seed, FP_OP_SLAB_ALLOC, false, 3, 0, NULL, 0);
    seed_data_request(&seed, FP_OP_WRITE, 4, &one, 1);
    seed_data_request(&seed, FP_OP_READ, 5, &one, 1);
    seed_data_request(&seed, FP_OP_WRITEV, 6, vec, 3);
    seed_data_request(&seed, FP_OP_READV, 7, vec, 3);
    seed_frame(&seed, FP_OP_PING, false, 8, 0, NULL, 0);
    seed_frame(&seed, FP_OP_STATS, false, 9, 0, NULL, 0);
    seed_frame(&seed, FP_OP_SLAB_FREE, false, 10, 0, slab, sizeof(slab));
    seed_write(&seed, "req_session");

    /* Named regions: create, open, list the slabs, delete; and a bad name. */
    {
        fp_proto_region_create_req_t create = {
            .size = (3u << 20) + 5, .granule = 65536, .flags = 1};
        fp_proto_region_name_t name = {.len = 11, .text = "model.w-1_0"};
        fp_proto_region_slabs_req_t list = {.region_id = (1ull << 32) | 7, .first = 0, .count = 4};
        uint8_t creq[FP_PROTO_REGION_CREATE_REQ_MAX], nreq[FP_PROTO_REGION_NAME_REQ_MAX];
        uint8_t sreq[FP_PROTO_REGION_SLABS_REQ_SIZE];
        uint32_t clen, nlen;

        create.name = name;
        clen = fp_proto_region_create_req_encode(&create, creq);
        nlen = fp_proto_region_name_req_encode(&name, nreq);
        fp_proto_region_slabs_req_encode(&list, sreq);
        seed_start(&seed, false);
        seed_frame(&seed, FP_OP_REGION_CREATE, false, 1, 0, creq, clen);
        seed_write(&seed, "req_region_create");
        seed_start(&seed, false);
        seed_frame(&seed, FP_OP_HELLO, false, 1, 0, hello, sizeof(hello));
        seed_frame(&seed, FP_OP_REGION_CREATE, false, 2, 0, creq, clen);
        seed_frame(&seed, FP_OP_REGION_OPEN, false, 3, 0, nreq, nlen);
        seed_frame(&seed, FP_OP_REGION_SLABS, false, 4, 0, sreq, sizeof(sreq));
        seed_data_request(&seed, FP_OP_READ, 5, &one, 1);
        seed_frame(&seed, FP_OP_REGION_DELETE, false, 6, 0, nreq, nlen);
        nreq[FP_PROTO_REGION_NAME_HDR + 5] = '/'; /* invalid, but the stream goes on */
        seed_frame(&seed, FP_OP_REGION_OPEN, false, 7, 0, nreq, nlen);
        seed_frame(&seed, FP_OP_PING, false, 8, 0, NULL, 0);
        seed_write(&seed, "req_region_session");
    }

    /* The most ranges a frame may carry, one byte each. */
    {
        static fp_proto_range_t many[FP_PROTO_MAX_RANGES];

        for (uint32_t i = 0; i < FP_PROTO_MAX_RANGES; i++)
            many[i] = (fp_proto_range_t){.slab = i % 5, .offset = (uint64_t)i * 4096, .length = 1};
        seed_start(&seed, false);
        seed_data_request(&seed, FP_OP_READV, 11, many, FP_PROTO_MAX_RANGES);
        seed_write(&seed, "req_readv_max");
    }
}

static void gen_replies(void)
{
    static seed_t seed;
    uint8_t hello[FP_PROTO_HELLO_REP_SIZE], alloc[FP_PROTO_ALLOC_REP_SIZE];
    fp_proto_hello_rep_t rep = {
        .version = FP_PROTO_VERSION,
        .flags = FP_PROTO_HELLO_AUTH_REQUIRED,
        .node_id = 0x1122334455667788ull,
        .slab_size = 64u << 20,
        .max_data = FP_PROTO_MAX_DATA,
        .max_ranges = FP_PROTO_MAX_RANGES,
    };

    memset(rep.nonce, 0x4e, sizeof(rep.nonce));
    fp_proto_hello_rep_encode(&rep, hello);
    fp_proto_put_u64(alloc, 3);
    fp_proto_put_u64(alloc + 8, 64u << 20);

    seed_start(&seed, true);
    seed_frame(&seed, FP_OP_HELLO, true, 1, 0, hello, sizeof(hello));
    seed_write(&seed, "rep_hello");
    seed_start(&seed, true);
    seed_frame(&seed, FP_OP_AUTH, true, 2, 0, NULL, FP_PROTO_AUTH_REP_SIZE);
    seed_write(&seed, "rep_auth");
    seed_start(&seed, true);
    seed_frame(&seed, FP_OP_PING, true, 3, 0, NULL, 0);
    seed_write(&seed, "rep_ping");
    seed_start(&seed, true);
    seed_frame(&seed, FP_OP_STATS, true, 4, 0, NULL, FP_PROTO_STATS_REP_SIZE);
    seed_write(&seed, "rep_stats");
    seed_start(&seed, true);
    seed_frame(&seed, FP_OP_SLAB_ALLOC, true, 5, 0, alloc, sizeof(alloc));
    seed_write(&seed, "rep_slab_alloc");
    seed_start(&seed, true);
    seed_frame(&seed, FP_OP_SLAB_FREE, true, 6, 0, NULL, 0);
    seed_write(&seed, "rep_slab_free");
    seed_start(&seed, true);
    seed_frame(&seed, FP_OP_READ, true, 7, 0, NULL, 64);
    seed_write(&seed, "rep_read");
    seed_start(&seed, true);
    seed_frame(&seed, FP_OP_WRITE, true, 8, 0, NULL, 0);
    seed_write(&seed, "rep_write");
    seed_start(&seed, true);
    seed_frame(&seed, FP_OP_READV, true, 9, 0, NULL, 56);
    seed_write(&seed, "rep_readv");
    seed_start(&seed, true);
    seed_frame(&seed, FP_OP_WRITEV, true, 10, 0, NULL, 0);
    seed_write(&seed, "rep_writev");

    /* Named regions: the description, a list of slab ids, an empty delete reply, errors. */
    {
        fp_proto_region_rep_t region = {
            .region_id = (1ull << 32) | 7,
            .size = (3u << 20) + 5,
            .granule = 65536,
            .flags = 1,
            .slab_size = 1u << 20,
            .nslabs = 4,
        };
        uint64_t ids[4] = {(1ull << 32) | 1, (1ull << 32) | 2, (2ull << 32) | 3, (1ull << 32) | 9};
        uint8_t rrep[FP_PROTO_REGION_REP_SIZE], srep[sizeof(ids)];

        fp_proto_region_rep_encode(&region, rrep);
        fp_proto_region_slabs_rep_encode(ids, 4, srep);
        seed_start(&seed, true);
        seed_frame(&seed, FP_OP_REGION_CREATE, true, 2, 0, rrep, sizeof(rrep));
        seed_frame(&seed, FP_OP_REGION_OPEN, true, 3, 0, rrep, sizeof(rrep));
        seed_frame(&seed, FP_OP_REGION_SLABS, true, 4, 0, srep, sizeof(srep));
        seed_frame(&seed, FP_OP_REGION_DELETE, true, 6, 0, NULL, 0);
        seed_frame(&seed, FP_OP_REGION_CREATE, true, 7, FP_ERR_EXISTS, NULL, 0);
        seed_frame(&seed, FP_OP_REGION_SLABS, true, 8, FP_ERR_PERMISSION, NULL, 0);
        seed_write(&seed, "rep_region_session");
    }

    /* Error replies, then a session's worth of replies in another order. */
    seed_start(&seed, true);
    seed_frame(&seed, FP_OP_HELLO, true, 1, FP_ERR_VERSION, NULL, 0);
    seed_frame(&seed, FP_OP_AUTH, true, 2, FP_ERR_AUTH, NULL, 0);
    seed_frame(&seed, FP_OP_SLAB_ALLOC, true, 3, FP_ERR_NO_SPACE, NULL, 0);
    seed_frame(&seed, FP_OP_READ, true, 4, FP_ERR_OUT_OF_RANGE, NULL, 0);
    seed_frame(&seed, 0x7f, true, 5, FP_ERR_UNSUPPORTED, NULL, 0);
    seed_write(&seed, "rep_errors");
    seed_start(&seed, true);
    seed_frame(&seed, FP_OP_HELLO, true, 1, 0, hello, sizeof(hello));
    seed_frame(&seed, FP_OP_AUTH, true, 2, 0, NULL, FP_PROTO_AUTH_REP_SIZE);
    seed_frame(&seed, FP_OP_SLAB_ALLOC, true, 3, 0, alloc, sizeof(alloc));
    seed_frame(&seed, FP_OP_READ, true, 5, 0, NULL, 64);
    seed_frame(&seed, FP_OP_WRITE, true, 4, 0, NULL, 0);
    seed_frame(&seed, FP_OP_STATS, true, 9, 0, NULL, FP_PROTO_STATS_REP_SIZE);
    seed_write(&seed, "rep_session");
}

static void gen_parse(void)
{
    static const struct {
        const char *name;
        const char *text;
    } seeds[] = {
        {"size_512M", "512M"},
        {"size_4GiB", "4GiB"},
        {"size_0", "0"},
        {"size_max", "18446744073709551615"},
        {"size_overflow", "18446744073709551616"},
        {"size_16P", "16383P"},
        {"size_64kb", "64kb"},
        {"size_bytes", "4096B"},
        {"size_1T", "1T"},
        {"addr_v6", "[::1]:7070"},
        {"addr_v4_port0", "127.0.0.1:0"},
        {"addr_bad_port", "host:99999"},
        {"addr_name", "localhost:7070"},
        {"addr_v6_full", "[fe80::1%eth0]:65535"},
        {"addr_no_port", "example.org:"},
        {"addr_bare_v6", "::1:7070"},
    };

    for (size_t i = 0; i < sizeof(seeds) / sizeof(seeds[0]); i++)
        write_file("parse", seeds[i].name, seeds[i].text, strlen(seeds[i].text));
}

/* The decoder byte of fuzz_pool.c: the order of its singles[] table, then the three lists. */
enum pool_pick {
    PICK_JOIN_REQ,
    PICK_JOIN_REP,
    PICK_HEARTBEAT,
    PICK_CREATE,
    PICK_OPEN,
    PICK_NAME,
    PICK_ADDR,
    PICK_DESC,
    PICK_MAP_REQ,
    PICK_COMMIT,
    PICK_LEASE,
    PICK_LIST_REQ,
    PICK_NODES,
    PICK_REGIONS,
    PICK_MAP_REP,
};

static void pool_write(const char *name, enum pool_pick pick, const uint8_t *payload, uint32_t len)
{
    static uint8_t seed[1 + FP_PROTO_MAX_CONTROL];

    if (len == 0 || len > FP_PROTO_MAX_CONTROL) {
        fprintf(stderr, "gen_corpus: pool seed %s does not encode\n", name);
        exit(1);
    }
    seed[0] = (uint8_t)pick;
    memcpy(seed + 1, payload, len);
    write_file("pool", name, seed, 1 + len);
}

static void gen_pool(void)
{
    static uint8_t p[FP_PROTO_MAX_CONTROL];
    static fp_pool_node_entry_t nodes[3];
    static fp_pool_region_desc_t descs[2];
    fp_pool_join_req_t join = {.node_id = 0x1122334455667788ull,
                               .capacity = 64ull << 30,
                               .slab_size = 64u << 20,
                               .addr = "10.0.0.7:7070"};
    fp_pool_join_rep_t join_rep = {.member = 3, .flags = FP_POOL_JOIN_RESET, .heartbeat_ms = 1000};
    fp_pool_heartbeat_req_t hb = {
        .member = 3, .node_id = 0x1122334455667788ull, .capacity = 64ull << 30, .used = 1u << 30};
    fp_proto_region_name_t name = {.len = 11, .text = "model.w-1_0"};
    fp_pool_create_req_t create = {.size = (3ull << 30) + 5,
                                   .granule = 65536,
                                   .flags = FP_POOL_REGION_PENDING,
                                   .replicas = 2,
                                   .name = name};
    fp_pool_open_req_t open = {.flags = FP_POOL_OPEN_WRITE, .name = name};
    fp_pool_map_req_t map = {.region = 9, .first = 0, .count = 64};
    fp_pool_commit_req_t commit = {.region = 9, .lease = 0x0123456789abcdefull, .has_checksum = 1};
    fp_pool_lease_req_t lease = {
        .region = 9, .lease = 0x0123456789abcdefull, .op = FP_POOL_LEASE_RENEW};
    fp_pool_list_req_t list = {.first = 0};
    fp_pool_map_entry_t entries[6] = {{1, 11}, {2, 21}, {3, 31}, {0, 0}, {2, 22}, {1, 12}};
    uint32_t written;

    memset(commit.checksum, 0xc5, sizeof(commit.checksum));
    for (int i = 0; i < 3; i++) {
        nodes[i] = (fp_pool_node_entry_t){.member = (uint64_t)i + 1,
                                          .node_id = 0x1000u + (uint64_t)i,
                                          .capacity = 64ull << 30,
                                          .used = (uint64_t)i << 30,
                                          .slab_size = 64u << 20,
                                          .state = (uint32_t)i,
                                          .seen_ms = 250u * (uint32_t)i};
        snprintf(nodes[i].addr, sizeof(nodes[i].addr), "node%d.example:%d", i, 7070 + i);
    }
    for (int i = 0; i < 2; i++) {
        fp_pool_region_desc_t *d = &descs[i];

        memset(d, 0, sizeof(*d));
        d->id = 9 + (uint64_t)i;
        d->size = (3ull << 30) + 5;
        d->granule = 65536;
        d->flags = i == 0 ? FP_POOL_REGION_FIXED : FP_POOL_REGION_PENDING;
        d->replicas = 2;
        d->state = (uint32_t)i;
        d->health = (uint32_t)i;
        d->slab_size = 64u << 20;
        d->nslabs = 49;
        memset(d->key, 0x4b + i, sizeof(d->key));
        d->fixed_addr = i == 0 ? 0x7f0000000000ull : 0;
        d->has_checksum = (uint32_t)(i == 0);
        memset(d->checksum, 0xc5, sizeof(d->checksum));
        d->created_ms = 1765000000000ull + (uint64_t)i;
        d->lease_id = i == 0 ? 0 : 0x0123456789abcdefull;
        d->lease_ttl_ms = i == 0 ? 0 : 30000;
        d->name = i == 0 ? name : (fp_proto_region_name_t){.len = 5, .text = "m-_9Z"};
    }

    pool_write("join_req", PICK_JOIN_REQ, p, fp_pool_join_req_encode(&join, p, sizeof(p)));
    pool_write("join_rep", PICK_JOIN_REP, p, fp_pool_join_rep_encode(&join_rep, p, sizeof(p)));
    pool_write("heartbeat", PICK_HEARTBEAT, p, fp_pool_heartbeat_req_encode(&hb, p, sizeof(p)));
    pool_write("create", PICK_CREATE, p, fp_pool_create_req_encode(&create, p, sizeof(p)));
    pool_write("open", PICK_OPEN, p, fp_pool_open_req_encode(&open, p, sizeof(p)));
    pool_write("delete", PICK_NAME, p, fp_pool_name_req_encode(&name, p, sizeof(p)));
    pool_write("drain", PICK_ADDR, p, fp_pool_addr_req_encode("[::1]:7071", p, sizeof(p)));
    pool_write("desc", PICK_DESC, p, fp_pool_desc_encode(&descs[1], p, sizeof(p)));
    pool_write("map_req", PICK_MAP_REQ, p, fp_pool_map_req_encode(&map, p, sizeof(p)));
    pool_write("commit", PICK_COMMIT, p, fp_pool_commit_req_encode(&commit, p, sizeof(p)));
    pool_write("lease", PICK_LEASE, p, fp_pool_lease_req_encode(&lease, p, sizeof(p)));
    pool_write("list_req", PICK_LIST_REQ, p, fp_pool_list_req_encode(&list, p, sizeof(p)));
    pool_write("nodes_rep", PICK_NODES, p,
               fp_pool_nodes_rep_encode(5, nodes, 3, p, sizeof(p), &written));
    pool_write("nodes_rep_empty", PICK_NODES, p,
               fp_pool_nodes_rep_encode(0, nodes, 0, p, sizeof(p), &written));
    pool_write("regions_rep", PICK_REGIONS, p,
               fp_pool_regions_rep_encode(2, descs, 2, p, sizeof(p), &written));
    pool_write("map_rep", PICK_MAP_REP, p, fp_pool_map_rep_encode(entries, 6, p, sizeof(p)));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    out_dir = argv[1];
    make_dir("frame");
    make_dir("parse");
    make_dir("pool");
    gen_requests();
    gen_replies();
    gen_parse();
    gen_pool();
    return 0;
}
