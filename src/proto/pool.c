/* SPDX-License-Identifier: MIT */
/*
 * Encoders and decoders of the POOL_* payloads; see pool.h and the section
 * "Pool metadata operations" of docs/protocol.md.
 *
 * DESIGN
 * Every message is written through a writer (a buffer, its capacity and an
 * overflow flag) and read through a reader (the bytes left and a failure
 * flag), so each encoder and decoder is the list of its fields. A writer that
 * runs out of room, or is given a string over its limit, stops writing and
 * the encoder returns 0; a reader that runs out of bytes, or meets a string
 * length over its limit, reads zeros from then on and the decoder returns
 * FP_ERR_PROTOCOL, as it does for bytes left over. Values are checked only
 * once the whole payload has been read, so a malformed payload is always
 * FP_ERR_PROTOCOL and FP_ERR_INVALID_PARAM means well-formed but invalid.
 * Decoders write their outputs only on success: list decoders check every
 * entry in a first pass and fill @entries in a second.
 */
#include "pool.h"

#define MAP_HDR_SIZE 4u /* u32 count */
#define REPLICAS_MAX 4u /* copies of a slab a POOL_CREATE may ask for */

/* ---- writer ---- */

typedef struct pool_writer {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool over; /* out of room, or a string over its limit: nothing more is written */
} pool_writer_t;

static pool_writer_t writer_init(uint8_t *buf, size_t cap)
{
    return (pool_writer_t){.buf = buf, .cap = cap, .len = 0, .over = false};
}

/* Room for @n more bytes at w->buf + w->len; NULL (and over) if there is none. */
static uint8_t *writer_room(pool_writer_t *w, size_t n)
{
    uint8_t *p;

    if (w->over || n > w->cap - w->len) {
        w->over = true;
        return NULL;
    }
    p = w->buf + w->len;
    w->len += n;
    return p;
}

static void put_u32(pool_writer_t *w, uint32_t v)
{
    uint8_t *p = writer_room(w, 4);

    if (p != NULL)
        fp_proto_put_u32(p, v);
}

static void put_u64(pool_writer_t *w, uint64_t v)
{
    uint8_t *p = writer_room(w, 8);

    if (p != NULL)
        fp_proto_put_u64(p, v);
}

static void put_bytes(pool_writer_t *w, const void *src, size_t n)
{
    uint8_t *p = writer_room(w, n);

    if (p != NULL && n != 0)
        memcpy(p, src, n);
}

/* A u16 length and @len bytes; a length outside [@min, @max] is an overflow. */
static void put_str(pool_writer_t *w, const char *s, size_t len, size_t min, size_t max)
{
    uint8_t *p;

    if (len < min || len > max) {
        w->over = true;
        return;
    }
    p = writer_room(w, 2);
    if (p != NULL)
        fp_proto_put_u16(p, (uint16_t)len);
    put_bytes(w, s, len);
}

static void put_name(pool_writer_t *w, const fp_proto_region_name_t *name)
{
    put_str(w, name->text, name->len, 0, FP_PROTO_REGION_NAME_MAX);
}

static void put_addr(pool_writer_t *w, const char *addr)
{
    put_str(w, addr, strnlen(addr, FP_POOL_ADDR_MAX + 1), 1, FP_POOL_ADDR_MAX);
}

/* The payload size, or 0 if it did not fit. */
static uint32_t writer_end(const pool_writer_t *w)
{
    if (w->over || w->len > UINT32_MAX)
        return 0;
    return (uint32_t)w->len;
}

/* ---- reader ---- */

typedef struct pool_reader {
    const uint8_t *p;
    uint32_t left;
    bool bad; /* truncated or a string over its limit: reads give zeros from then on */
} pool_reader_t;

static pool_reader_t reader_init(const uint8_t *buf, uint32_t len)
{
    return (pool_reader_t){.p = buf, .left = len, .bad = false};
}

/* The next @n bytes; NULL (and bad) if they are not all there. */
static const uint8_t *reader_take(pool_reader_t *r, uint32_t n)
{
    const uint8_t *p;

    if (r->bad || n > r->left) {
        r->bad = true;
        return NULL;
    }
    p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint16_t get_u16(pool_reader_t *r)
{
    const uint8_t *p = reader_take(r, 2);

    return p != NULL ? fp_proto_get_u16(p) : 0;
}

static uint32_t get_u32(pool_reader_t *r)
{
    const uint8_t *p = reader_take(r, 4);

    return p != NULL ? fp_proto_get_u32(p) : 0;
}

static uint64_t get_u64(pool_reader_t *r)
{
    const uint8_t *p = reader_take(r, 8);

    return p != NULL ? fp_proto_get_u64(p) : 0;
}

static void get_bytes(pool_reader_t *r, void *dst, uint32_t n)
{
    const uint8_t *p = reader_take(r, n);

    if (p != NULL)
        memcpy(dst, p, n);
    else
        memset(dst, 0, n);
}

/*
 * A string of @min..@max bytes into @dst (room for @max + 1), NUL-terminated;
 * its length, 0 when the reader is bad.
 */
static uint16_t get_str(pool_reader_t *r, char *dst, uint16_t min, uint16_t max)
{
    uint16_t len = get_u16(r);
    const uint8_t *p;

    if (!r->bad && (len < min || len > max))
        r->bad = true;
    p = reader_take(r, len);
    if (p == NULL) {
        dst[0] = '\0';
        return 0;
    }
    memcpy(dst, p, len);
    dst[len] = '\0';
    return len;
}

static void get_name(pool_reader_t *r, fp_proto_region_name_t *name)
{
    name->len = get_str(r, name->text, 0, FP_PROTO_REGION_NAME_MAX);
}

static uint16_t get_addr(pool_reader_t *r, char addr[FP_POOL_ADDR_MAX + 1])
{
    return get_str(r, addr, 1, FP_POOL_ADDR_MAX);
}

/* FP_ERR_PROTOCOL if the payload was short, had a string over its limit or has bytes left. */
static fp_status_t reader_end(const pool_reader_t *r)
{
    return r->bad || r->left != 0 ? FP_ERR_PROTOCOL : FP_OK;
}

/* ---- value checks (after a complete read) ---- */

static fp_status_t name_check(const fp_proto_region_name_t *name)
{
    return fp_proto_region_name_valid(name->text, name->len) ? FP_OK : FP_ERR_INVALID_PARAM;
}

/* An address (@len bytes) is printable ASCII without spaces: no NUL, no control byte. */
static fp_status_t addr_check(const char *addr, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (addr[i] <= ' ' || addr[i] > '~')
            return FP_ERR_INVALID_PARAM;
    }
    return FP_OK;
}

/* The status of a decoder: the reader's first, then the value check's. */
static fp_status_t decode_end(const pool_reader_t *r, fp_status_t check)
{
    fp_status_t status = reader_end(r);

    return status != FP_OK ? status : check;
}

/* ---- POOL_JOIN ---- */

uint32_t fp_pool_join_req_encode(const fp_pool_join_req_t *m, uint8_t *buf, size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    put_u64(&w, m->node_id);
    put_u64(&w, m->capacity);
    put_u64(&w, m->slab_size);
    put_addr(&w, m->addr);
    return writer_end(&w);
}

fp_status_t fp_pool_join_req_decode(const uint8_t *buf, uint32_t len, fp_pool_join_req_t *m)
{
    pool_reader_t r = reader_init(buf, len);
    fp_pool_join_req_t v;
    fp_status_t status;
    uint16_t alen;

    v.node_id = get_u64(&r);
    v.capacity = get_u64(&r);
    v.slab_size = get_u64(&r);
    alen = get_addr(&r, v.addr);
    status = decode_end(&r, addr_check(v.addr, alen));
    if (status == FP_OK)
        *m = v;
    return status;
}

uint32_t fp_pool_join_rep_encode(const fp_pool_join_rep_t *m, uint8_t *buf, size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    put_u64(&w, m->member);
    put_u32(&w, m->flags);
    put_u32(&w, m->heartbeat_ms);
    return writer_end(&w);
}

fp_status_t fp_pool_join_rep_decode(const uint8_t *buf, uint32_t len, fp_pool_join_rep_t *m)
{
    pool_reader_t r = reader_init(buf, len);
    fp_pool_join_rep_t v;
    fp_status_t status;

    v.member = get_u64(&r);
    v.flags = get_u32(&r);
    v.heartbeat_ms = get_u32(&r);
    status = reader_end(&r);
    if (status == FP_OK && (v.flags & ~FP_POOL_JOIN_RESET) != 0)
        status = FP_ERR_PROTOCOL; /* unassigned flag bits are 0 (docs/protocol.md, 12) */
    if (status == FP_OK)
        *m = v;
    return status;
}

/* ---- POOL_HEARTBEAT ---- */

uint32_t fp_pool_heartbeat_req_encode(const fp_pool_heartbeat_req_t *m, uint8_t *buf, size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    put_u64(&w, m->member);
    put_u64(&w, m->node_id);
    put_u64(&w, m->capacity);
    put_u64(&w, m->used);
    return writer_end(&w);
}

fp_status_t fp_pool_heartbeat_req_decode(const uint8_t *buf, uint32_t len,
                                         fp_pool_heartbeat_req_t *m)
{
    pool_reader_t r = reader_init(buf, len);
    fp_pool_heartbeat_req_t v;
    fp_status_t status;

    v.member = get_u64(&r);
    v.node_id = get_u64(&r);
    v.capacity = get_u64(&r);
    v.used = get_u64(&r);
    status = reader_end(&r);
    if (status == FP_OK)
        *m = v;
    return status;
}

/* ---- POOL_CREATE, POOL_OPEN, POOL_DELETE, POOL_DRAIN ---- */

uint32_t fp_pool_create_req_encode(const fp_pool_create_req_t *m, uint8_t *buf, size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    put_u64(&w, m->size);
    put_u32(&w, m->granule);
    put_u32(&w, m->flags);
    put_u32(&w, m->replicas);
    put_name(&w, &m->name);
    return writer_end(&w);
}

fp_status_t fp_pool_create_req_decode(const uint8_t *buf, uint32_t len, fp_pool_create_req_t *m)
{
    pool_reader_t r = reader_init(buf, len);
    fp_pool_create_req_t v;
    fp_status_t status;

    v.size = get_u64(&r);
    v.granule = get_u32(&r);
    v.flags = get_u32(&r);
    v.replicas = get_u32(&r);
    get_name(&r, &v.name);
    status = reader_end(&r);
    if (status != FP_OK)
        return status;
    status = name_check(&v.name);
    if (status != FP_OK)
        return status;
    if (v.size == 0 || !fp_proto_region_granule_valid(v.granule) ||
        (v.flags & ~FP_POOL_REGION_FLAGS) != 0 || v.replicas > REPLICAS_MAX)
        return FP_ERR_INVALID_PARAM;
    *m = v;
    return FP_OK;
}

uint32_t fp_pool_open_req_encode(const fp_pool_open_req_t *m, uint8_t *buf, size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    put_u32(&w, m->flags);
    put_name(&w, &m->name);
    return writer_end(&w);
}

fp_status_t fp_pool_open_req_decode(const uint8_t *buf, uint32_t len, fp_pool_open_req_t *m)
{
    pool_reader_t r = reader_init(buf, len);
    fp_pool_open_req_t v;
    fp_status_t status;

    v.flags = get_u32(&r);
    get_name(&r, &v.name);
    status = decode_end(&r, name_check(&v.name));
    if (status != FP_OK)
        return status;
    if ((v.flags & ~FP_POOL_OPEN_WRITE) != 0)
        return FP_ERR_INVALID_PARAM;
    *m = v;
    return FP_OK;
}

uint32_t fp_pool_name_req_encode(const fp_proto_region_name_t *m, uint8_t *buf, size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    put_name(&w, m);
    return writer_end(&w);
}

fp_status_t fp_pool_name_req_decode(const uint8_t *buf, uint32_t len, fp_proto_region_name_t *m)
{
    pool_reader_t r = reader_init(buf, len);
    fp_proto_region_name_t v;
    fp_status_t status;

    get_name(&r, &v);
    status = decode_end(&r, name_check(&v));
    if (status == FP_OK)
        *m = v;
    return status;
}

uint32_t fp_pool_addr_req_encode(const char *addr, uint8_t *buf, size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    put_addr(&w, addr);
    return writer_end(&w);
}

fp_status_t fp_pool_addr_req_decode(const uint8_t *buf, uint32_t len,
                                    char addr[FP_POOL_ADDR_MAX + 1])
{
    pool_reader_t r = reader_init(buf, len);
    char v[FP_POOL_ADDR_MAX + 1];
    fp_status_t status;
    uint16_t alen;

    alen = get_addr(&r, v);
    status = decode_end(&r, addr_check(v, alen));
    if (status == FP_OK)
        memcpy(addr, v, alen + 1u);
    return status;
}

uint32_t fp_pool_stale_req_encode(const fp_pool_stale_req_t *m, uint8_t *buf, size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    put_u64(&w, m->region);
    put_u32(&w, m->index);
    put_addr(&w, m->addr);
    return writer_end(&w);
}

fp_status_t fp_pool_stale_req_decode(const uint8_t *buf, uint32_t len, fp_pool_stale_req_t *m)
{
    pool_reader_t r = reader_init(buf, len);
    fp_pool_stale_req_t v;
    uint16_t alen;
    fp_status_t status;

    v.region = get_u64(&r);
    v.index = get_u32(&r);
    alen = get_addr(&r, v.addr);
    status = decode_end(&r, addr_check(v.addr, alen));
    if (status == FP_OK)
        *m = v;
    return status;
}

/* ---- region descriptions ---- */

static void put_desc(pool_writer_t *w, const fp_pool_region_desc_t *m)
{
    put_u64(w, m->id);
    put_u64(w, m->size);
    put_u32(w, m->granule);
    put_u32(w, m->flags);
    put_u32(w, m->replicas);
    put_u32(w, m->state);
    put_u32(w, m->health);
    put_u64(w, m->slab_size);
    put_u32(w, m->nslabs);
    put_bytes(w, m->key, FP_PROTO_KEY_SIZE);
    put_u64(w, m->fixed_addr);
    put_u32(w, m->has_checksum);
    put_bytes(w, m->checksum, FP_POOL_HASH_SIZE);
    put_u64(w, m->created_ms);
    put_u64(w, m->lease_id);
    put_u32(w, m->lease_ttl_ms);
    put_name(w, &m->name);
}

/* Read one description; its value check (the name) is returned. */
static fp_status_t get_desc(pool_reader_t *r, fp_pool_region_desc_t *m)
{
    m->id = get_u64(r);
    m->size = get_u64(r);
    m->granule = get_u32(r);
    m->flags = get_u32(r);
    m->replicas = get_u32(r);
    m->state = get_u32(r);
    m->health = get_u32(r);
    m->slab_size = get_u64(r);
    m->nslabs = get_u32(r);
    get_bytes(r, m->key, FP_PROTO_KEY_SIZE);
    m->fixed_addr = get_u64(r);
    m->has_checksum = get_u32(r);
    get_bytes(r, m->checksum, FP_POOL_HASH_SIZE);
    m->created_ms = get_u64(r);
    m->lease_id = get_u64(r);
    m->lease_ttl_ms = get_u32(r);
    get_name(r, &m->name);
    return name_check(&m->name);
}

uint32_t fp_pool_desc_encode(const fp_pool_region_desc_t *m, uint8_t *buf, size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    put_desc(&w, m);
    return writer_end(&w);
}

fp_status_t fp_pool_desc_decode(const uint8_t *buf, uint32_t len, fp_pool_region_desc_t *m)
{
    pool_reader_t r = reader_init(buf, len);
    fp_pool_region_desc_t v;
    fp_status_t check, status;

    check = get_desc(&r, &v);
    status = decode_end(&r, check);
    if (status == FP_OK)
        *m = v;
    return status;
}

/* ---- POOL_MAP, POOL_COMMIT, POOL_LEASE, list requests ---- */

uint32_t fp_pool_map_req_encode(const fp_pool_map_req_t *m, uint8_t *buf, size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    put_u64(&w, m->region);
    put_u32(&w, m->first);
    put_u32(&w, m->count);
    return writer_end(&w);
}

fp_status_t fp_pool_map_req_decode(const uint8_t *buf, uint32_t len, fp_pool_map_req_t *m)
{
    pool_reader_t r = reader_init(buf, len);
    fp_pool_map_req_t v;
    fp_status_t status;

    v.region = get_u64(&r);
    v.first = get_u32(&r);
    v.count = get_u32(&r);
    status =
        decode_end(&r, v.count == 0 || v.count > FP_POOL_LIST_MAX ? FP_ERR_INVALID_PARAM : FP_OK);
    if (status == FP_OK)
        *m = v;
    return status;
}

uint32_t fp_pool_commit_req_encode(const fp_pool_commit_req_t *m, uint8_t *buf, size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    put_u64(&w, m->region);
    put_u64(&w, m->lease);
    put_u32(&w, m->has_checksum);
    put_bytes(&w, m->checksum, FP_POOL_HASH_SIZE);
    return writer_end(&w);
}

fp_status_t fp_pool_commit_req_decode(const uint8_t *buf, uint32_t len, fp_pool_commit_req_t *m)
{
    pool_reader_t r = reader_init(buf, len);
    fp_pool_commit_req_t v;
    fp_status_t status;

    v.region = get_u64(&r);
    v.lease = get_u64(&r);
    v.has_checksum = get_u32(&r);
    get_bytes(&r, v.checksum, FP_POOL_HASH_SIZE);
    status = reader_end(&r);
    if (status == FP_OK)
        *m = v;
    return status;
}

uint32_t fp_pool_lease_req_encode(const fp_pool_lease_req_t *m, uint8_t *buf, size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    put_u64(&w, m->region);
    put_u64(&w, m->lease);
    put_u32(&w, m->op);
    return writer_end(&w);
}

fp_status_t fp_pool_lease_req_decode(const uint8_t *buf, uint32_t len, fp_pool_lease_req_t *m)
{
    pool_reader_t r = reader_init(buf, len);
    fp_pool_lease_req_t v;
    fp_status_t status;

    v.region = get_u64(&r);
    v.lease = get_u64(&r);
    v.op = get_u32(&r);
    status = decode_end(&r, v.op == FP_POOL_LEASE_RENEW || v.op == FP_POOL_LEASE_RELEASE
                                ? FP_OK
                                : FP_ERR_INVALID_PARAM);
    if (status == FP_OK)
        *m = v;
    return status;
}

uint32_t fp_pool_list_req_encode(const fp_pool_list_req_t *m, uint8_t *buf, size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    put_u32(&w, m->first);
    return writer_end(&w);
}

fp_status_t fp_pool_list_req_decode(const uint8_t *buf, uint32_t len, fp_pool_list_req_t *m)
{
    pool_reader_t r = reader_init(buf, len);
    fp_pool_list_req_t v;
    fp_status_t status;

    v.first = get_u32(&r);
    status = reader_end(&r);
    if (status == FP_OK)
        *m = v;
    return status;
}

/* ---- list replies ---- */

/*
 * Start a list reply: the header, and the entries that may follow (at most
 * FP_POOL_LIST_MAX, as decoders take no more). False if even the header does
 * not fit, or @count is over @total (no decoder would take it).
 */
static bool list_start(pool_writer_t *w, uint32_t total, uint32_t *count)
{
    if (*count > total)
        return false;
    if (*count > FP_POOL_LIST_MAX)
        *count = FP_POOL_LIST_MAX;
    put_u32(w, total);
    put_u32(w, *count);
    return !w->over;
}

/* Undo a partly written entry that did not fit (back to @mark); false if it did not fit. */
static bool writer_keep(pool_writer_t *w, size_t mark)
{
    if (!w->over)
        return true;
    w->len = mark;
    w->over = false;
    return false;
}

/* Patch the count of a list reply once its entries are written. */
static uint32_t list_end(pool_writer_t *w, uint32_t written, uint32_t *written_p)
{
    fp_proto_put_u32(w->buf + 4, written);
    *written_p = written;
    return writer_end(w);
}

/* Read a list header: FP_ERR_PROTOCOL for a count over FP_POOL_LIST_MAX, @max or the total. */
static fp_status_t get_list_hdr(pool_reader_t *r, uint32_t max, uint32_t *total_p,
                                uint32_t *count_p)
{
    uint32_t total = get_u32(r);
    uint32_t count = get_u32(r);

    if (r->bad || count > FP_POOL_LIST_MAX || count > max || count > total)
        return FP_ERR_PROTOCOL;
    *total_p = total;
    *count_p = count;
    return FP_OK;
}

static void put_node(pool_writer_t *w, const fp_pool_node_entry_t *m)
{
    put_u64(w, m->member);
    put_u64(w, m->node_id);
    put_u64(w, m->capacity);
    put_u64(w, m->used);
    put_u64(w, m->slab_size);
    put_u32(w, m->state);
    put_u32(w, m->seen_ms);
    put_addr(w, m->addr);
}

static fp_status_t get_node(pool_reader_t *r, fp_pool_node_entry_t *m)
{
    m->member = get_u64(r);
    m->node_id = get_u64(r);
    m->capacity = get_u64(r);
    m->used = get_u64(r);
    m->slab_size = get_u64(r);
    m->state = get_u32(r);
    m->seen_ms = get_u32(r);
    return addr_check(m->addr, get_addr(r, m->addr));
}

uint32_t fp_pool_nodes_rep_encode(uint32_t total, const fp_pool_node_entry_t *entries,
                                  uint32_t count, uint8_t *buf, size_t cap, uint32_t *written_p)
{
    pool_writer_t w = writer_init(buf, cap);
    uint32_t i;

    if (!list_start(&w, total, &count))
        return 0;
    for (i = 0; i < count; i++) {
        size_t mark = w.len;

        put_node(&w, &entries[i]);
        if (!writer_keep(&w, mark))
            break;
    }
    return list_end(&w, i, written_p);
}

fp_status_t fp_pool_nodes_rep_decode(const uint8_t *buf, uint32_t len, uint32_t *total_p,
                                     fp_pool_node_entry_t *entries, uint32_t max, uint32_t *count_p)
{
    pool_reader_t r = reader_init(buf, len);
    fp_pool_node_entry_t tmp;
    fp_status_t check = FP_OK, status;
    uint32_t total, count;

    status = get_list_hdr(&r, max, &total, &count);
    if (status != FP_OK)
        return status;
    for (uint32_t i = 0; i < count; i++) {
        status = get_node(&r, &tmp);
        if (check == FP_OK)
            check = status;
    }
    status = decode_end(&r, check);
    if (status != FP_OK)
        return status;
    r = reader_init(buf, len);
    (void)get_list_hdr(&r, max, &total, &count);
    for (uint32_t i = 0; i < count; i++)
        (void)get_node(&r, &entries[i]);
    *total_p = total;
    *count_p = count;
    return FP_OK;
}

uint32_t fp_pool_regions_rep_encode(uint32_t total, const fp_pool_region_desc_t *entries,
                                    uint32_t count, uint8_t *buf, size_t cap, uint32_t *written_p)
{
    pool_writer_t w = writer_init(buf, cap);
    uint32_t i;

    if (!list_start(&w, total, &count))
        return 0;
    for (i = 0; i < count; i++) {
        size_t mark = w.len;

        put_desc(&w, &entries[i]);
        if (!writer_keep(&w, mark))
            break;
    }
    return list_end(&w, i, written_p);
}

fp_status_t fp_pool_regions_rep_decode(const uint8_t *buf, uint32_t len, uint32_t *total_p,
                                       fp_pool_region_desc_t *entries, uint32_t max,
                                       uint32_t *count_p)
{
    pool_reader_t r = reader_init(buf, len);
    fp_pool_region_desc_t tmp;
    fp_status_t check = FP_OK, status;
    uint32_t total, count;

    status = get_list_hdr(&r, max, &total, &count);
    if (status != FP_OK)
        return status;
    for (uint32_t i = 0; i < count; i++) {
        status = get_desc(&r, &tmp);
        if (check == FP_OK)
            check = status;
    }
    status = decode_end(&r, check);
    if (status != FP_OK)
        return status;
    r = reader_init(buf, len);
    (void)get_list_hdr(&r, max, &total, &count);
    for (uint32_t i = 0; i < count; i++)
        (void)get_desc(&r, &entries[i]);
    *total_p = total;
    *count_p = count;
    return FP_OK;
}

uint32_t fp_pool_map_rep_encode(const fp_pool_map_entry_t *entries, uint32_t count, uint8_t *buf,
                                size_t cap)
{
    pool_writer_t w = writer_init(buf, cap);

    if (count > FP_POOL_LIST_MAX)
        return 0;
    put_u32(&w, count);
    for (uint32_t i = 0; i < count; i++) {
        put_u64(&w, entries[i].member);
        put_u64(&w, entries[i].slab);
    }
    return writer_end(&w);
}

fp_status_t fp_pool_map_rep_decode(const uint8_t *buf, uint32_t len, fp_pool_map_entry_t *entries,
                                   uint32_t max, uint32_t *count_p)
{
    pool_reader_t r = reader_init(buf, len);
    uint32_t count = get_u32(&r);

    if (r.bad || count > FP_POOL_LIST_MAX || count > max ||
        (uint64_t)len != MAP_HDR_SIZE + 16ull * count)
        return FP_ERR_PROTOCOL;
    for (uint32_t i = 0; i < count; i++) {
        entries[i].member = get_u64(&r);
        entries[i].slab = get_u64(&r);
    }
    *count_p = count;
    return FP_OK;
}
