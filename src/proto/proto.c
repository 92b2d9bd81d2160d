/* SPDX-License-Identifier: MIT */
/* Frame encoding and the decoder of untrusted frames; see proto.h. */
#include "proto.h"

const char *fp_proto_op_name(uint8_t op)
{
    switch (op) {
    case FP_OP_HELLO:
        return "HELLO";
    case FP_OP_AUTH:
        return "AUTH";
    case FP_OP_PING:
        return "PING";
    case FP_OP_STATS:
        return "STATS";
    case FP_OP_SLAB_ALLOC:
        return "SLAB_ALLOC";
    case FP_OP_SLAB_FREE:
        return "SLAB_FREE";
    case FP_OP_REGION_CREATE:
        return "REGION_CREATE";
    case FP_OP_REGION_OPEN:
        return "REGION_OPEN";
    case FP_OP_REGION_SLABS:
        return "REGION_SLABS";
    case FP_OP_REGION_DELETE:
        return "REGION_DELETE";
    case FP_OP_POOL_JOIN:
        return "POOL_JOIN";
    case FP_OP_POOL_HEARTBEAT:
        return "POOL_HEARTBEAT";
    case FP_OP_POOL_NODES:
        return "POOL_NODES";
    case FP_OP_POOL_CREATE:
        return "POOL_CREATE";
    case FP_OP_POOL_OPEN:
        return "POOL_OPEN";
    case FP_OP_POOL_MAP:
        return "POOL_MAP";
    case FP_OP_POOL_DELETE:
        return "POOL_DELETE";
    case FP_OP_POOL_COMMIT:
        return "POOL_COMMIT";
    case FP_OP_POOL_LEASE:
        return "POOL_LEASE";
    case FP_OP_POOL_REGIONS:
        return "POOL_REGIONS";
    case FP_OP_POOL_DRAIN:
        return "POOL_DRAIN";
    case FP_OP_POOL_STALE:
        return "POOL_STALE";
    case FP_OP_READ:
        return "READ";
    case FP_OP_WRITE:
        return "WRITE";
    case FP_OP_READV:
        return "READV";
    case FP_OP_WRITEV:
        return "WRITEV";
    }
    return "?";
}

bool fp_proto_op_is_pool(uint8_t op)
{
    return op >= FP_OP_POOL_JOIN && op <= FP_OP_POOL_STALE;
}

bool fp_proto_op_is_data(uint8_t op)
{
    return op == FP_OP_READ || op == FP_OP_WRITE || op == FP_OP_READV || op == FP_OP_WRITEV;
}

static bool op_is_vectored(uint8_t op)
{
    return op == FP_OP_READV || op == FP_OP_WRITEV;
}

static bool op_is_write(uint8_t op)
{
    return op == FP_OP_WRITE || op == FP_OP_WRITEV;
}

void fp_proto_hdr_encode(const fp_proto_hdr_t *hdr, uint8_t *buf)
{
    fp_proto_put_u16(buf + 0, FP_PROTO_MAGIC);
    buf[2] = hdr->version;
    buf[3] = hdr->op;
    fp_proto_put_u16(buf + 4, hdr->flags);
    fp_proto_put_u16(buf + 6, 0);
    fp_proto_put_u64(buf + 8, hdr->id);
    fp_proto_put_u32(buf + 16, (uint32_t)hdr->status);
    fp_proto_put_u32(buf + 20, hdr->length);
}

fp_status_t fp_proto_hdr_decode(const uint8_t *buf, bool expect_reply, fp_proto_hdr_t *hdr_p)
{
    fp_proto_hdr_t hdr;
    uint32_t limit;

    hdr.version = buf[2];
    hdr.op = buf[3];
    hdr.flags = fp_proto_get_u16(buf + 4);
    hdr.id = fp_proto_get_u64(buf + 8);
    hdr.status = (int32_t)fp_proto_get_u32(buf + 16);
    hdr.length = fp_proto_get_u32(buf + 20);
    *hdr_p = hdr;

    if (fp_proto_get_u16(buf) != FP_PROTO_MAGIC || fp_proto_get_u16(buf + 6) != 0)
        return FP_ERR_PROTOCOL;
    if (hdr.version != FP_PROTO_VERSION)
        return FP_ERR_VERSION;
    if ((hdr.flags & ~FP_PROTO_FLAG_REPLY) != 0)
        return FP_ERR_PROTOCOL;
    if (((hdr.flags & FP_PROTO_FLAG_REPLY) != 0) != expect_reply)
        return FP_ERR_PROTOCOL;
    if (!expect_reply && hdr.status != 0)
        return FP_ERR_PROTOCOL;
    if (expect_reply)
        limit = (hdr.op == FP_OP_READ || hdr.op == FP_OP_READV) ? FP_PROTO_MAX_DATA
                                                                : FP_PROTO_MAX_CONTROL;
    else
        limit = fp_proto_op_is_data(hdr.op) ? FP_PROTO_MAX_PAYLOAD : FP_PROTO_MAX_CONTROL;
    if (hdr.length > limit)
        return FP_ERR_TOO_LARGE;
    return FP_OK;
}

fp_status_t fp_proto_args_size(const fp_proto_hdr_t *hdr, const uint8_t *prefix, size_t prefix_len,
                               uint32_t *args_len_p)
{
    uint32_t args_len, count;

    if (!fp_proto_op_is_data(hdr->op))
        return FP_ERR_UNSUPPORTED;
    if (!op_is_vectored(hdr->op)) {
        args_len = FP_PROTO_RANGE_SIZE;
    } else {
        if (prefix_len < FP_PROTO_VEC_HDR || hdr->length < FP_PROTO_VEC_HDR)
            return FP_ERR_PROTOCOL;
        count = fp_proto_get_u32(prefix);
        if (count == 0 || count > FP_PROTO_MAX_RANGES || fp_proto_get_u32(prefix + 4) != 0)
            return FP_ERR_PROTOCOL;
        args_len = FP_PROTO_VEC_HDR + count * FP_PROTO_RANGE_SIZE;
    }
    if (hdr->length < args_len)
        return FP_ERR_PROTOCOL;
    *args_len_p = args_len;
    return FP_OK;
}

fp_status_t fp_proto_ranges_decode(const fp_proto_hdr_t *hdr, const uint8_t *args,
                                   uint32_t args_len, fp_proto_range_t *ranges, uint32_t *count_p,
                                   uint32_t *data_len_p)
{
    const uint8_t *p = args;
    uint32_t count = 1;
    uint64_t total = 0;
    uint32_t expected;
    fp_status_t status;

    status = fp_proto_args_size(hdr, args, args_len, &expected);
    if (status != FP_OK)
        return status;
    if (expected != args_len)
        return FP_ERR_PROTOCOL;
    if (op_is_vectored(hdr->op)) {
        count = fp_proto_get_u32(p);
        p += FP_PROTO_VEC_HDR;
    }
    for (uint32_t i = 0; i < count; i++, p += FP_PROTO_RANGE_SIZE) {
        ranges[i].slab = fp_proto_get_u64(p);
        ranges[i].offset = fp_proto_get_u64(p + 8);
        ranges[i].length = fp_proto_get_u32(p + 16);
        if (ranges[i].length == 0 || fp_proto_get_u32(p + 20) != 0)
            return FP_ERR_PROTOCOL;
        total += ranges[i].length;
        if (total > FP_PROTO_MAX_DATA)
            return FP_ERR_TOO_LARGE;
    }
    if (op_is_write(hdr->op) ? (uint64_t)hdr->length != args_len + total : hdr->length != args_len)
        return FP_ERR_PROTOCOL;
    *count_p = count;
    *data_len_p = (uint32_t)total;
    return FP_OK;
}

uint32_t fp_proto_ranges_encode(uint8_t op, const fp_proto_range_t *ranges, uint32_t count,
                                uint8_t *buf)
{
    uint8_t *p = buf;

    if (op_is_vectored(op)) {
        fp_proto_put_u32(p, count);
        fp_proto_put_u32(p + 4, 0);
        p += FP_PROTO_VEC_HDR;
    }
    for (uint32_t i = 0; i < count; i++, p += FP_PROTO_RANGE_SIZE) {
        fp_proto_put_u64(p, ranges[i].slab);
        fp_proto_put_u64(p + 8, ranges[i].offset);
        fp_proto_put_u32(p + 16, ranges[i].length);
        fp_proto_put_u32(p + 20, 0);
    }
    return (uint32_t)(p - buf);
}

void fp_proto_hello_req_encode(const fp_proto_hello_req_t *req, uint8_t *buf)
{
    fp_proto_put_u16(buf, req->min_version);
    fp_proto_put_u16(buf + 2, req->max_version);
    fp_proto_put_u32(buf + 4, 0);
    memcpy(buf + 8, req->client_key, FP_PROTO_KEY_SIZE);
}

fp_status_t fp_proto_hello_req_decode(const uint8_t *buf, uint32_t len, fp_proto_hello_req_t *req_p)
{
    if (len != FP_PROTO_HELLO_REQ_SIZE || fp_proto_get_u32(buf + 4) != 0)
        return FP_ERR_PROTOCOL;
    req_p->min_version = fp_proto_get_u16(buf);
    req_p->max_version = fp_proto_get_u16(buf + 2);
    memcpy(req_p->client_key, buf + 8, FP_PROTO_KEY_SIZE);
    if (req_p->min_version > req_p->max_version)
        return FP_ERR_PROTOCOL;
    if (req_p->min_version > FP_PROTO_VERSION || req_p->max_version < FP_PROTO_VERSION)
        return FP_ERR_VERSION;
    return FP_OK;
}

void fp_proto_hello_rep_encode(const fp_proto_hello_rep_t *rep, uint8_t *buf)
{
    fp_proto_put_u16(buf, rep->version);
    fp_proto_put_u16(buf + 2, rep->flags);
    fp_proto_put_u32(buf + 4, 0);
    fp_proto_put_u64(buf + 8, rep->node_id);
    memcpy(buf + 16, rep->nonce, FP_PROTO_NONCE_SIZE);
    fp_proto_put_u64(buf + 48, rep->slab_size);
    fp_proto_put_u32(buf + 56, rep->max_data);
    fp_proto_put_u32(buf + 60, rep->max_ranges);
}

fp_status_t fp_proto_hello_rep_decode(const uint8_t *buf, uint32_t len, fp_proto_hello_rep_t *rep_p)
{
    if (len != FP_PROTO_HELLO_REP_SIZE || fp_proto_get_u32(buf + 4) != 0 ||
        (fp_proto_get_u16(buf + 2) & ~FP_PROTO_HELLO_AUTH_REQUIRED) != 0)
        return FP_ERR_PROTOCOL;
    rep_p->version = fp_proto_get_u16(buf);
    rep_p->flags = fp_proto_get_u16(buf + 2);
    rep_p->node_id = fp_proto_get_u64(buf + 8);
    memcpy(rep_p->nonce, buf + 16, FP_PROTO_NONCE_SIZE);
    rep_p->slab_size = fp_proto_get_u64(buf + 48);
    rep_p->max_data = fp_proto_get_u32(buf + 56);
    rep_p->max_ranges = fp_proto_get_u32(buf + 60);
    if (rep_p->version != FP_PROTO_VERSION)
        return FP_ERR_VERSION;
    if (rep_p->slab_size == 0 || rep_p->max_data == 0 || rep_p->max_ranges == 0)
        return FP_ERR_PROTOCOL;
    return FP_OK;
}

bool fp_proto_region_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > FP_PROTO_REGION_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = name[i];

        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

fp_status_t fp_proto_region_name_set(const char *name, fp_proto_region_name_t *out)
{
    size_t len;

    if (name == NULL)
        return FP_ERR_INVALID_PARAM;
    len = strnlen(name, FP_PROTO_REGION_NAME_MAX + 1);
    if (!fp_proto_region_name_valid(name, len))
        return FP_ERR_INVALID_PARAM;
    out->len = (uint16_t)len;
    memcpy(out->text, name, len);
    out->text[len] = '\0';
    return FP_OK;
}

bool fp_proto_region_granule_valid(uint64_t granule)
{
    return granule >= FP_PROTO_REGION_GRANULE_MIN && granule <= FP_PROTO_REGION_GRANULE_MAX &&
           (granule & (granule - 1)) == 0;
}

uint64_t fp_proto_region_nslabs(uint64_t size, uint64_t slab_size)
{
    if (slab_size == 0)
        return 0;
    return size / slab_size + (size % slab_size != 0);
}

/* Check and copy a name of @len bytes at @p; FP_ERR_INVALID_PARAM if it is not valid. */
static fp_status_t region_name_decode(const uint8_t *p, uint32_t len, fp_proto_region_name_t *name)
{
    if (!fp_proto_region_name_valid((const char *)p, len))
        return FP_ERR_INVALID_PARAM;
    name->len = (uint16_t)len;
    memcpy(name->text, p, len);
    name->text[len] = '\0';
    return FP_OK;
}

uint32_t fp_proto_region_create_req_encode(const fp_proto_region_create_req_t *req, uint8_t *buf)
{
    fp_proto_put_u64(buf, req->size);
    fp_proto_put_u32(buf + 8, req->granule);
    fp_proto_put_u32(buf + 12, req->flags);
    fp_proto_put_u16(buf + 16, req->name.len);
    fp_proto_put_u16(buf + 18, 0);
    memcpy(buf + FP_PROTO_REGION_CREATE_HDR, req->name.text, req->name.len);
    return FP_PROTO_REGION_CREATE_HDR + req->name.len;
}

fp_status_t fp_proto_region_create_req_decode(const uint8_t *buf, uint32_t len,
                                              fp_proto_region_create_req_t *req_p)
{
    fp_proto_region_create_req_t req;
    uint32_t name_len;
    fp_status_t status;

    if (len < FP_PROTO_REGION_CREATE_HDR || fp_proto_get_u16(buf + 18) != 0)
        return FP_ERR_PROTOCOL;
    name_len = fp_proto_get_u16(buf + 16);
    if (len != FP_PROTO_REGION_CREATE_HDR + name_len)
        return FP_ERR_PROTOCOL;
    req.size = fp_proto_get_u64(buf);
    req.granule = fp_proto_get_u32(buf + 8);
    req.flags = fp_proto_get_u32(buf + 12);
    status = region_name_decode(buf + FP_PROTO_REGION_CREATE_HDR, name_len, &req.name);
    if (status != FP_OK)
        return status;
    if (req.size == 0 || !fp_proto_region_granule_valid(req.granule))
        return FP_ERR_INVALID_PARAM;
    *req_p = req;
    return FP_OK;
}

uint32_t fp_proto_region_name_req_encode(const fp_proto_region_name_t *name, uint8_t *buf)
{
    fp_proto_put_u16(buf, name->len);
    fp_proto_put_u16(buf + 2, 0);
    memcpy(buf + FP_PROTO_REGION_NAME_HDR, name->text, name->len);
    return FP_PROTO_REGION_NAME_HDR + name->len;
}

fp_status_t fp_proto_region_name_req_decode(const uint8_t *buf, uint32_t len,
                                            fp_proto_region_name_t *name_p)
{
    fp_proto_region_name_t name;
    uint32_t name_len;
    fp_status_t status;

    if (len < FP_PROTO_REGION_NAME_HDR || fp_proto_get_u16(buf + 2) != 0)
        return FP_ERR_PROTOCOL;
    name_len = fp_proto_get_u16(buf);
    if (len != FP_PROTO_REGION_NAME_HDR + name_len)
        return FP_ERR_PROTOCOL;
    status = region_name_decode(buf + FP_PROTO_REGION_NAME_HDR, name_len, &name);
    if (status != FP_OK)
        return status;
    *name_p = name;
    return FP_OK;
}

void fp_proto_region_rep_encode(const fp_proto_region_rep_t *rep, uint8_t *buf)
{
    fp_proto_put_u64(buf, rep->region_id);
    fp_proto_put_u64(buf + 8, rep->size);
    fp_proto_put_u32(buf + 16, rep->granule);
    fp_proto_put_u32(buf + 20, rep->flags);
    fp_proto_put_u64(buf + 24, rep->slab_size);
    fp_proto_put_u32(buf + 32, rep->nslabs);
    fp_proto_put_u32(buf + 36, 0);
}

fp_status_t fp_proto_region_rep_decode(const uint8_t *buf, uint32_t len,
                                       fp_proto_region_rep_t *rep_p)
{
    fp_proto_region_rep_t rep;

    if (len != FP_PROTO_REGION_REP_SIZE || fp_proto_get_u32(buf + 36) != 0)
        return FP_ERR_PROTOCOL;
    rep.region_id = fp_proto_get_u64(buf);
    rep.size = fp_proto_get_u64(buf + 8);
    rep.granule = fp_proto_get_u32(buf + 16);
    rep.flags = fp_proto_get_u32(buf + 20);
    rep.slab_size = fp_proto_get_u64(buf + 24);
    rep.nslabs = fp_proto_get_u32(buf + 32);
    if (rep.region_id == 0 || rep.size == 0 || rep.slab_size == 0 ||
        !fp_proto_region_granule_valid(rep.granule) ||
        rep.nslabs != fp_proto_region_nslabs(rep.size, rep.slab_size))
        return FP_ERR_PROTOCOL;
    *rep_p = rep;
    return FP_OK;
}

void fp_proto_region_slabs_req_encode(const fp_proto_region_slabs_req_t *req, uint8_t *buf)
{
    fp_proto_put_u64(buf, req->region_id);
    fp_proto_put_u32(buf + 8, req->first);
    fp_proto_put_u32(buf + 12, req->count);
}

fp_status_t fp_proto_region_slabs_req_decode(const uint8_t *buf, uint32_t len,
                                             fp_proto_region_slabs_req_t *req_p)
{
    fp_proto_region_slabs_req_t req;

    if (len != FP_PROTO_REGION_SLABS_REQ_SIZE)
        return FP_ERR_PROTOCOL;
    req.region_id = fp_proto_get_u64(buf);
    req.first = fp_proto_get_u32(buf + 8);
    req.count = fp_proto_get_u32(buf + 12);
    if (req.count == 0 || req.count > FP_PROTO_REGION_SLABS_MAX)
        return FP_ERR_PROTOCOL;
    *req_p = req;
    return FP_OK;
}

uint32_t fp_proto_region_slabs_rep_encode(const uint64_t *ids, uint32_t count, uint8_t *buf)
{
    for (uint32_t i = 0; i < count; i++)
        fp_proto_put_u64(buf + 8 * (size_t)i, ids[i]);
    return 8 * count;
}

fp_status_t fp_proto_region_slabs_rep_decode(const uint8_t *buf, uint32_t len, uint32_t count,
                                             uint64_t *ids)
{
    if (count == 0 || count > FP_PROTO_REGION_SLABS_MAX || len != 8 * count)
        return FP_ERR_PROTOCOL;
    for (uint32_t i = 0; i < count; i++) {
        if (fp_proto_get_u64(buf + 8 * (size_t)i) == 0)
            return FP_ERR_PROTOCOL;
    }
    for (uint32_t i = 0; i < count; i++)
        ids[i] = fp_proto_get_u64(buf + 8 * (size_t)i);
    return FP_OK;
}
