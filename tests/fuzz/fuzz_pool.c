/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the POOL_* payload decoders (src/proto/pool.c).
 *
 * The input's first byte picks the decoder (modulo their number), the rest is
 * the payload an untrusted peer sent, copied into a heap buffer of exactly its
 * size so AddressSanitizer sees any read past it. For every decoder:
 *
 *   - a failed decode leaves its outputs untouched (they are pre-filled);
 *   - a successful one holds what its checks promise (NUL-terminated strings
 *     of the wire length, valid names, counts within the limits);
 *   - it re-encodes, with exactly the payload's size as capacity, to the
 *     identical bytes; with one byte less the encoder returns 0 (list replies
 *     of nodes and regions: a shorter list, with fewer entries);
 *   - the re-encoding decodes to the same struct, field by field;
 *   - list replies decoded with room for one entry fewer fail.
 *
 * abort() on any violation.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/pool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_pool: check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define SENTINEL 0xA5

/* An exact-size heap copy of @len bytes (at least one byte is allocated). */
static uint8_t *dup_exact(const uint8_t *src, size_t len)
{
    uint8_t *copy = malloc(len != 0 ? len : 1);

    CHECK(copy != NULL);
    if (len != 0)
        memcpy(copy, src, len);
    return copy;
}

static void *alloc_filled(size_t size)
{
    uint8_t *p = malloc(size);

    CHECK(p != NULL);
    memset(p, SENTINEL, size);
    return p;
}

static bool untouched(const void *p, size_t size)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < size; i++) {
        if (b[i] != SENTINEL)
            return false;
    }
    return true;
}

/* ---- field-by-field equality and the promises of a successful decode ---- */

static bool name_eq(const fp_proto_region_name_t *a, const fp_proto_region_name_t *b)
{
    return a->len == b->len && memcmp(a->text, b->text, a->len + 1u) == 0;
}

static void name_ok(const fp_proto_region_name_t *n)
{
    CHECK(n->len >= 1 && n->len <= FP_PROTO_REGION_NAME_MAX);
    CHECK(n->text[n->len] == '\0' && strlen(n->text) == n->len);
    CHECK(fp_proto_region_name_valid(n->text, n->len));
}

static void addr_ok(const char *addr)
{
    size_t len = strnlen(addr, FP_POOL_ADDR_MAX + 1);

    CHECK(len >= 1 && len <= FP_POOL_ADDR_MAX);
    for (size_t i = 0; i < len; i++)
        CHECK(addr[i] > ' ' && addr[i] <= '~');
}

static bool desc_eq(const fp_pool_region_desc_t *a, const fp_pool_region_desc_t *b)
{
    return a->id == b->id && a->size == b->size && a->granule == b->granule &&
           a->flags == b->flags && a->replicas == b->replicas && a->state == b->state &&
           a->health == b->health && a->slab_size == b->slab_size && a->nslabs == b->nslabs &&
           memcmp(a->key, b->key, FP_PROTO_KEY_SIZE) == 0 && a->fixed_addr == b->fixed_addr &&
           a->has_checksum == b->has_checksum &&
           memcmp(a->checksum, b->checksum, FP_POOL_HASH_SIZE) == 0 &&
           a->created_ms == b->created_ms && a->lease_id == b->lease_id &&
           a->lease_ttl_ms == b->lease_ttl_ms && name_eq(&a->name, &b->name);
}

static bool node_eq(const fp_pool_node_entry_t *a, const fp_pool_node_entry_t *b)
{
    return a->member == b->member && a->node_id == b->node_id && a->capacity == b->capacity &&
           a->used == b->used && a->slab_size == b->slab_size && a->state == b->state &&
           a->seen_ms == b->seen_ms && strcmp(a->addr, b->addr) == 0;
}

/* ---- single messages: one table ---- */

typedef struct single_case {
    size_t size;
    fp_status_t (*decode)(const uint8_t *buf, uint32_t len, void *m);
    uint32_t (*encode)(const void *m, uint8_t *buf, size_t cap);
    bool (*eq)(const void *a, const void *b);
    void (*ok)(const void *m); /* the promises of a successful decode */
} single_case_t;

static fp_status_t d_join_req(const uint8_t *b, uint32_t n, void *m)
{
    return fp_pool_join_req_decode(b, n, m);
}
static uint32_t e_join_req(const void *m, uint8_t *b, size_t cap)
{
    return fp_pool_join_req_encode(m, b, cap);
}
static bool q_join_req(const void *x, const void *y)
{
    const fp_pool_join_req_t *a = x, *b = y;

    return a->node_id == b->node_id && a->capacity == b->capacity && a->slab_size == b->slab_size &&
           strcmp(a->addr, b->addr) == 0;
}
static void k_join_req(const void *x)
{
    addr_ok(((const fp_pool_join_req_t *)x)->addr);
}

static fp_status_t d_join_rep(const uint8_t *b, uint32_t n, void *m)
{
    return fp_pool_join_rep_decode(b, n, m);
}
static uint32_t e_join_rep(const void *m, uint8_t *b, size_t cap)
{
    return fp_pool_join_rep_encode(m, b, cap);
}
static bool q_join_rep(const void *x, const void *y)
{
    const fp_pool_join_rep_t *a = x, *b = y;

    return a->member == b->member && a->flags == b->flags && a->heartbeat_ms == b->heartbeat_ms;
}

static void k_join_rep(const void *x)
{
    CHECK((((const fp_pool_join_rep_t *)x)->flags & ~FP_POOL_JOIN_RESET) == 0);
}

static fp_status_t d_heartbeat(const uint8_t *b, uint32_t n, void *m)
{
    return fp_pool_heartbeat_req_decode(b, n, m);
}
static uint32_t e_heartbeat(const void *m, uint8_t *b, size_t cap)
{
    return fp_pool_heartbeat_req_encode(m, b, cap);
}
static bool q_heartbeat(const void *x, const void *y)
{
    const fp_pool_heartbeat_req_t *a = x, *b = y;

    return a->member == b->member && a->node_id == b->node_id && a->capacity == b->capacity &&
           a->used == b->used;
}

static fp_status_t d_create(const uint8_t *b, uint32_t n, void *m)
{
    return fp_pool_create_req_decode(b, n, m);
}
static uint32_t e_create(const void *m, uint8_t *b, size_t cap)
{
    return fp_pool_create_req_encode(m, b, cap);
}
static bool q_create(const void *x, const void *y)
{
    const fp_pool_create_req_t *a = x, *b = y;

    return a->size == b->size && a->granule == b->granule && a->flags == b->flags &&
           a->replicas == b->replicas && name_eq(&a->name, &b->name);
}
static void k_create(const void *x)
{
    const fp_pool_create_req_t *m = x;

    CHECK(m->size != 0 && fp_proto_region_granule_valid(m->granule));
    CHECK((m->flags & ~FP_POOL_REGION_FLAGS) == 0 && m->replicas <= 4);
    name_ok(&m->name);
}

static fp_status_t d_open(const uint8_t *b, uint32_t n, void *m)
{
    return fp_pool_open_req_decode(b, n, m);
}
static uint32_t e_open(const void *m, uint8_t *b, size_t cap)
{
    return fp_pool_open_req_encode(m, b, cap);
}
static bool q_open(const void *x, const void *y)
{
    const fp_pool_open_req_t *a = x, *b = y;

    return a->flags == b->flags && name_eq(&a->name, &b->name);
}
static void k_open(const void *x)
{
    name_ok(&((const fp_pool_open_req_t *)x)->name);
}

static fp_status_t d_name(const uint8_t *b, uint32_t n, void *m)
{
    return fp_pool_name_req_decode(b, n, m);
}
static uint32_t e_name(const void *m, uint8_t *b, size_t cap)
{
    return fp_pool_name_req_encode(m, b, cap);
}
static bool q_name(const void *x, const void *y)
{
    return name_eq(x, y);
}
static void k_name(const void *x)
{
    name_ok(x);
}

static fp_status_t d_addr(const uint8_t *b, uint32_t n, void *m)
{
    return fp_pool_addr_req_decode(b, n, m);
}
static uint32_t e_addr(const void *m, uint8_t *b, size_t cap)
{
    return fp_pool_addr_req_encode(m, b, cap);
}
static bool q_addr(const void *x, const void *y)
{
    return strcmp(x, y) == 0;
}
static void k_addr(const void *x)
{
    addr_ok(x);
}

static fp_status_t d_desc(const uint8_t *b, uint32_t n, void *m)
{
    return fp_pool_desc_decode(b, n, m);
}
static uint32_t e_desc(const void *m, uint8_t *b, size_t cap)
{
    return fp_pool_desc_encode(m, b, cap);
}
static bool q_desc(const void *x, const void *y)
{
    return desc_eq(x, y);
}
static void k_desc(const void *x)
{
    name_ok(&((const fp_pool_region_desc_t *)x)->name);
}

static fp_status_t d_map_req(const uint8_t *b, uint32_t n, void *m)
{
    return fp_pool_map_req_decode(b, n, m);
}
static uint32_t e_map_req(const void *m, uint8_t *b, size_t cap)
{
    return fp_pool_map_req_encode(m, b, cap);
}
static bool q_map_req(const void *x, const void *y)
{
    const fp_pool_map_req_t *a = x, *b = y;

    return a->region == b->region && a->first == b->first && a->count == b->count;
}
static void k_map_req(const void *x)
{
    const fp_pool_map_req_t *m = x;

    CHECK(m->count >= 1 && m->count <= FP_POOL_LIST_MAX);
}

static fp_status_t d_commit(const uint8_t *b, uint32_t n, void *m)
{
    return fp_pool_commit_req_decode(b, n, m);
}
static uint32_t e_commit(const void *m, uint8_t *b, size_t cap)
{
    return fp_pool_commit_req_encode(m, b, cap);
}
static bool q_commit(const void *x, const void *y)
{
    const fp_pool_commit_req_t *a = x, *b = y;

    return a->region == b->region && a->lease == b->lease && a->has_checksum == b->has_checksum &&
           memcmp(a->checksum, b->checksum, FP_POOL_HASH_SIZE) == 0;
}

static fp_status_t d_lease(const uint8_t *b, uint32_t n, void *m)
{
    return fp_pool_lease_req_decode(b, n, m);
}
static uint32_t e_lease(const void *m, uint8_t *b, size_t cap)
{
    return fp_pool_lease_req_encode(m, b, cap);
}
static bool q_lease(const void *x, const void *y)
{
    const fp_pool_lease_req_t *a = x, *b = y;

    return a->region == b->region && a->lease == b->lease && a->op == b->op;
}
static void k_lease(const void *x)
{
    const fp_pool_lease_req_t *m = x;

    CHECK(m->op == FP_POOL_LEASE_RENEW || m->op == FP_POOL_LEASE_RELEASE);
}

static fp_status_t d_list_req(const uint8_t *b, uint32_t n, void *m)
{
    return fp_pool_list_req_decode(b, n, m);
}
static uint32_t e_list_req(const void *m, uint8_t *b, size_t cap)
{
    return fp_pool_list_req_encode(m, b, cap);
}
static bool q_list_req(const void *x, const void *y)
{
    return ((const fp_pool_list_req_t *)x)->first == ((const fp_pool_list_req_t *)y)->first;
}

static const single_case_t singles[] = {
    {sizeof(fp_pool_join_req_t), d_join_req, e_join_req, q_join_req, k_join_req},
    {sizeof(fp_pool_join_rep_t), d_join_rep, e_join_rep, q_join_rep, k_join_rep},
    {sizeof(fp_pool_heartbeat_req_t), d_heartbeat, e_heartbeat, q_heartbeat, NULL},
    {sizeof(fp_pool_create_req_t), d_create, e_create, q_create, k_create},
    {sizeof(fp_pool_open_req_t), d_open, e_open, q_open, k_open},
    {sizeof(fp_proto_region_name_t), d_name, e_name, q_name, k_name},
    {FP_POOL_ADDR_MAX + 1, d_addr, e_addr, q_addr, k_addr},
    {sizeof(fp_pool_region_desc_t), d_desc, e_desc, q_desc, k_desc},
    {sizeof(fp_pool_map_req_t), d_map_req, e_map_req, q_map_req, k_map_req},
    {sizeof(fp_pool_commit_req_t), d_commit, e_commit, q_commit, NULL},
    {sizeof(fp_pool_lease_req_t), d_lease, e_lease, q_lease, k_lease},
    {sizeof(fp_pool_list_req_t), d_list_req, e_list_req, q_list_req, NULL},
};
#define NSINGLES (sizeof(singles) / sizeof(singles[0]))

static void fuzz_single(const single_case_t *c, const uint8_t *in, uint32_t len)
{
    void *a = alloc_filled(c->size), *b = alloc_filled(c->size);
    uint8_t *enc;

    if (c->decode(in, len, a) != FP_OK) {
        CHECK(untouched(a, c->size));
        goto out;
    }
    if (c->ok != NULL)
        c->ok(a);
    enc = alloc_filled(len + 1u);
    CHECK(c->encode(a, enc, len) == len);
    CHECK(memcmp(enc, in, len) == 0);
    CHECK(enc[len] == SENTINEL);
    if (len > 0) {
        uint8_t *shorter = alloc_filled(len - 1u + 1u);

        CHECK(c->encode(a, shorter, len - 1u) == 0);
        free(shorter);
    }
    CHECK(c->decode(enc, len, b) == FP_OK);
    CHECK(c->eq(a, b));
    free(enc);
out:
    free(b);
    free(a);
}

/* ---- list replies ---- */

static void fuzz_nodes(const uint8_t *in, uint32_t len)
{
    size_t size = FP_POOL_LIST_MAX * sizeof(fp_pool_node_entry_t);
    fp_pool_node_entry_t *a = alloc_filled(size), *b = alloc_filled(size);
    uint32_t total = 0x5a5a5a5a, count = 0x5a5a5a5a, total2, count2, written;
    uint8_t *enc;
    fp_status_t status;

    status = fp_pool_nodes_rep_decode(in, len, &total, a, FP_POOL_LIST_MAX, &count);
    if (status != FP_OK) {
        CHECK(untouched(a, size) && total == 0x5a5a5a5a && count == 0x5a5a5a5a);
        goto out;
    }
    CHECK(count <= FP_POOL_LIST_MAX && count <= total);
    for (uint32_t i = 0; i < count; i++)
        addr_ok(a[i].addr);
    if (count > 0)
        CHECK(fp_pool_nodes_rep_decode(in, len, &total2, b, count - 1, &count2) == FP_ERR_PROTOCOL);
    enc = alloc_filled(len + 1u);
    CHECK(fp_pool_nodes_rep_encode(total, a, count, enc, len, &written) == len);
    CHECK(written == count && memcmp(enc, in, len) == 0 && enc[len] == SENTINEL);
    CHECK(fp_pool_nodes_rep_decode(enc, len, &total2, b, count, &count2) == FP_OK);
    CHECK(total2 == total && count2 == count);
    for (uint32_t i = 0; i < count; i++)
        CHECK(node_eq(&a[i], &b[i]));
    if (count > 0) {
        uint32_t short_len = fp_pool_nodes_rep_encode(total, a, count, enc, len - 1u, &written);

        CHECK(short_len < len && short_len >= 8 && written == count - 1);
        CHECK(fp_pool_nodes_rep_decode(enc, short_len, &total2, b, count, &count2) == FP_OK);
        CHECK(count2 == count - 1 && total2 == total);
    } else {
        CHECK(fp_pool_nodes_rep_encode(total, a, 0, enc, len - 1u, &written) == 0);
    }
    free(enc);
out:
    free(b);
    free(a);
}

static void fuzz_regions(const uint8_t *in, uint32_t len)
{
    size_t size = FP_POOL_LIST_MAX * sizeof(fp_pool_region_desc_t);
    fp_pool_region_desc_t *a = alloc_filled(size), *b = alloc_filled(size);
    uint32_t total = 0x5a5a5a5a, count = 0x5a5a5a5a, total2, count2, written;
    uint8_t *enc;
    fp_status_t status;

    status = fp_pool_regions_rep_decode(in, len, &total, a, FP_POOL_LIST_MAX, &count);
    if (status != FP_OK) {
        CHECK(untouched(a, size) && total == 0x5a5a5a5a && count == 0x5a5a5a5a);
        goto out;
    }
    CHECK(count <= FP_POOL_LIST_MAX && count <= total);
    for (uint32_t i = 0; i < count; i++)
        name_ok(&a[i].name);
    if (count > 0)
        CHECK(fp_pool_regions_rep_decode(in, len, &total2, b, count - 1, &count2) ==
              FP_ERR_PROTOCOL);
    enc = alloc_filled(len + 1u);
    CHECK(fp_pool_regions_rep_encode(total, a, count, enc, len, &written) == len);
    CHECK(written == count && memcmp(enc, in, len) == 0 && enc[len] == SENTINEL);
    CHECK(fp_pool_regions_rep_decode(enc, len, &total2, b, count, &count2) == FP_OK);
    CHECK(total2 == total && count2 == count);
    for (uint32_t i = 0; i < count; i++)
        CHECK(desc_eq(&a[i], &b[i]));
    if (count > 0) {
        uint32_t short_len = fp_pool_regions_rep_encode(total, a, count, enc, len - 1u, &written);

        CHECK(short_len < len && short_len >= 8 && written == count - 1);
        CHECK(fp_pool_regions_rep_decode(enc, short_len, &total2, b, count, &count2) == FP_OK);
        CHECK(count2 == count - 1 && total2 == total);
    } else {
        CHECK(fp_pool_regions_rep_encode(total, a, 0, enc, len - 1u, &written) == 0);
    }
    free(enc);
out:
    free(b);
    free(a);
}

static void fuzz_map(const uint8_t *in, uint32_t len)
{
    size_t size = FP_POOL_LIST_MAX * sizeof(fp_pool_map_entry_t);
    fp_pool_map_entry_t *a = alloc_filled(size), *b = alloc_filled(size);
    uint32_t count = 0x5a5a5a5a, count2;
    uint8_t *enc;

    if (fp_pool_map_rep_decode(in, len, a, FP_POOL_LIST_MAX, &count) != FP_OK) {
        CHECK(untouched(a, size) && count == 0x5a5a5a5a);
        goto out;
    }
    CHECK(count <= FP_POOL_LIST_MAX && len == 4 + 16 * count);
    if (count > 0)
        CHECK(fp_pool_map_rep_decode(in, len, b, count - 1, &count2) == FP_ERR_PROTOCOL);
    enc = alloc_filled(len + 1u);
    CHECK(fp_pool_map_rep_encode(a, count, enc, len) == len);
    CHECK(memcmp(enc, in, len) == 0 && enc[len] == SENTINEL);
    CHECK(fp_pool_map_rep_encode(a, count, enc, len - 1u) == 0);
    CHECK(fp_pool_map_rep_decode(enc, len, b, count, &count2) == FP_OK && count2 == count);
    for (uint32_t i = 0; i < count; i++)
        CHECK(a[i].member == b[i].member && a[i].slab == b[i].slab);
    free(enc);
out:
    free(b);
    free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *payload;
    uint32_t len, pick;

    if (size < 1 || size - 1 > FP_PROTO_MAX_CONTROL)
        return 0;
    pick = data[0] % (NSINGLES + 3);
    len = (uint32_t)(size - 1);
    payload = dup_exact(data + 1, len);
    if (pick < NSINGLES)
        fuzz_single(&singles[pick], payload, len);
    else if (pick == NSINGLES)
        fuzz_nodes(payload, len);
    else if (pick == NSINGLES + 1)
        fuzz_regions(payload, len);
    else
        fuzz_map(payload, len);
    free(payload);
    return 0;
}
