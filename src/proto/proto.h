/* SPDX-License-Identifier: MIT */
/*
 * The farpool wire protocol: frame layout, opcodes, encoders and the decoder of
 * untrusted frames. docs/protocol.md is the prose specification; this file is
 * its one implementation, shared by the daemon and the client.
 *
 * DESIGN
 * Every frame is a 24-byte header followed by `length` payload bytes. All
 * integers are little-endian. The header carries a request id chosen by the
 * client and echoed in the reply, so many requests are in flight on one
 * connection and replies may come back in any order.
 *
 * Data operations name (slab, offset, length) ranges and nothing else, so each
 * maps one to one onto a one-sided RDMA READ or WRITE of registered memory.
 * A data request's payload is an "args" part (ranges) followed, for writes, by
 * the data itself; the receiver can therefore validate every range before it
 * accepts a byte of data, and place the data straight into the slab.
 *
 * Thread safety: all functions are reentrant; they touch only their arguments.
 */
#ifndef FP_PROTO_PROTO_H
#define FP_PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <farpool/status.h>

#define FP_PROTO_MAGIC    0x5046u /* "FP" on the wire */
#define FP_PROTO_VERSION  1u
#define FP_PROTO_HDR_SIZE 24u

/* Limits every peer enforces. A frame over them is a protocol error. */
#define FP_PROTO_MAX_DATA    (16u << 20) /* data bytes of one READ/WRITE frame */
#define FP_PROTO_MAX_RANGES  1024u       /* ranges of one vectored frame */
#define FP_PROTO_RANGE_SIZE  24u
#define FP_PROTO_VEC_HDR     8u
#define FP_PROTO_MAX_ARGS    (FP_PROTO_VEC_HDR + FP_PROTO_MAX_RANGES * FP_PROTO_RANGE_SIZE)
#define FP_PROTO_MAX_CONTROL 4096u /* payload of a non-data frame */
#define FP_PROTO_MAX_PAYLOAD (FP_PROTO_MAX_ARGS + FP_PROTO_MAX_DATA)

/* Header flags. */
#define FP_PROTO_FLAG_REPLY 0x0001u

typedef enum fp_proto_op {
    FP_OP_HELLO = 1,
    FP_OP_AUTH = 2,
    FP_OP_PING = 3,
    FP_OP_STATS = 4,
    FP_OP_SLAB_ALLOC = 5,
    FP_OP_SLAB_FREE = 6,
    FP_OP_REGION_CREATE = 7,
    FP_OP_REGION_OPEN = 8,
    FP_OP_REGION_SLABS = 9,
    FP_OP_REGION_DELETE = 10,
    /* The pool's metadata (proto/pool.h), served by the metadata node. */
    FP_OP_POOL_JOIN = 32,
    FP_OP_POOL_HEARTBEAT = 33,
    FP_OP_POOL_NODES = 34,
    FP_OP_POOL_CREATE = 35,
    FP_OP_POOL_OPEN = 36,
    FP_OP_POOL_MAP = 37,
    FP_OP_POOL_DELETE = 38,
    FP_OP_POOL_COMMIT = 39,
    FP_OP_POOL_LEASE = 40,
    FP_OP_POOL_REGIONS = 41,
    FP_OP_POOL_DRAIN = 42,
    FP_OP_POOL_STALE = 43,
    FP_OP_READ = 16,
    FP_OP_WRITE = 17,
    FP_OP_READV = 18,
    FP_OP_WRITEV = 19,
} fp_proto_op_t;

/** A decoded frame header. */
typedef struct fp_proto_hdr {
    uint8_t version;
    uint8_t op;
    uint16_t flags;
    uint64_t id;
    int32_t status; /* replies: an fp_status_t; requests: 0 */
    uint32_t length;
} fp_proto_hdr_t;

/** One (slab, offset, length) range of a data operation. */
typedef struct fp_proto_range {
    uint64_t slab;
    uint64_t offset;
    uint32_t length;
} fp_proto_range_t;

/* HELLO: client -> node. */
#define FP_PROTO_KEY_SIZE       16u
#define FP_PROTO_NONCE_SIZE     32u
#define FP_PROTO_MAC_SIZE       32u
#define FP_PROTO_HELLO_REQ_SIZE 24u
typedef struct fp_proto_hello_req {
    uint16_t min_version;
    uint16_t max_version;
    uint8_t client_key[FP_PROTO_KEY_SIZE];
} fp_proto_hello_req_t;

/* HELLO reply: node -> client. */
#define FP_PROTO_HELLO_AUTH_REQUIRED 0x0001u
#define FP_PROTO_HELLO_REP_SIZE      64u
typedef struct fp_proto_hello_rep {
    uint16_t version;
    uint16_t flags;
    uint64_t node_id;
    uint8_t nonce[FP_PROTO_NONCE_SIZE];
    uint64_t slab_size;
    uint32_t max_data;
    uint32_t max_ranges;
} fp_proto_hello_rep_t;

/* AUTH: client nonce + client MAC; reply: node MAC. */
#define FP_PROTO_AUTH_REQ_SIZE (FP_PROTO_NONCE_SIZE + FP_PROTO_MAC_SIZE)
#define FP_PROTO_AUTH_REP_SIZE FP_PROTO_MAC_SIZE

#define FP_PROTO_STATS_FIELDS   10u
#define FP_PROTO_STATS_REP_SIZE (FP_PROTO_STATS_FIELDS * 8u)
#define FP_PROTO_ALLOC_REP_SIZE 16u
#define FP_PROTO_FREE_REQ_SIZE  8u

/*
 * Named regions (REGION_CREATE, REGION_OPEN, REGION_SLABS, REGION_DELETE).
 * A name is 1..255 bytes of [A-Za-z0-9._-], not NUL-terminated on the wire.
 */
#define FP_PROTO_REGION_NAME_MAX       255u
#define FP_PROTO_REGION_GRANULE_MIN    4096u
#define FP_PROTO_REGION_GRANULE_MAX    (2u << 20)
#define FP_PROTO_REGION_SLABS_MAX      500u /* slab ids in one REGION_SLABS reply */
#define FP_PROTO_REGION_CREATE_HDR     20u  /* REGION_CREATE request before the name */
#define FP_PROTO_REGION_NAME_HDR       4u   /* REGION_OPEN/DELETE request before the name */
#define FP_PROTO_REGION_REP_SIZE       40u  /* reply of REGION_CREATE and REGION_OPEN */
#define FP_PROTO_REGION_SLABS_REQ_SIZE 16u
#define FP_PROTO_REGION_CREATE_REQ_MAX (FP_PROTO_REGION_CREATE_HDR + FP_PROTO_REGION_NAME_MAX)
#define FP_PROTO_REGION_NAME_REQ_MAX   (FP_PROTO_REGION_NAME_HDR + FP_PROTO_REGION_NAME_MAX)

/** A region name as decoded: @len bytes, NUL-terminated for convenience. */
typedef struct fp_proto_region_name {
    uint16_t len;
    char text[FP_PROTO_REGION_NAME_MAX + 1];
} fp_proto_region_name_t;

/** REGION_CREATE request. @flags are opaque to the node: stored and returned. */
typedef struct fp_proto_region_create_req {
    uint64_t size;
    uint32_t granule;
    uint32_t flags;
    fp_proto_region_name_t name;
} fp_proto_region_create_req_t;

/** Reply of REGION_CREATE and REGION_OPEN: what a client needs to use the region. */
typedef struct fp_proto_region_rep {
    uint64_t region_id; /* (generation << 32 | index), never 0 */
    uint64_t size;
    uint32_t granule;
    uint32_t flags;
    uint64_t slab_size;
    uint32_t nslabs; /* ceil(size / slab_size) */
} fp_proto_region_rep_t;

/** REGION_SLABS request: slab ids first .. first + count - 1 of a region. */
typedef struct fp_proto_region_slabs_req {
    uint64_t region_id;
    uint32_t first;
    uint32_t count; /* 1 .. FP_PROTO_REGION_SLABS_MAX */
} fp_proto_region_slabs_req_t;

/* Little-endian scalar access on byte buffers. */
static inline void fp_proto_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void fp_proto_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void fp_proto_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t fp_proto_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t fp_proto_get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint64_t fp_proto_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Name of an opcode for logs ("READ"), or "?" */
const char *fp_proto_op_name(uint8_t op);

/* True for the POOL_* metadata operations. */
bool fp_proto_op_is_pool(uint8_t op);

/* True for READ, WRITE, READV, WRITEV. */
bool fp_proto_op_is_data(uint8_t op);

/* Write a header into @buf (FP_PROTO_HDR_SIZE bytes). */
void fp_proto_hdr_encode(const fp_proto_hdr_t *hdr, uint8_t *buf);

/*
 * Decode and check an untrusted header: magic, version, reserved bits, and a
 * payload length within the limits of its opcode's class. Replies (FLAG_REPLY)
 * are accepted only when @expect_reply. FP_ERR_PROTOCOL, FP_ERR_VERSION or
 * FP_ERR_TOO_LARGE; *@hdr_p is filled when the fields could be read (so an
 * error reply can echo the id) even if an error is returned.
 */
fp_status_t fp_proto_hdr_decode(const uint8_t *buf, bool expect_reply, fp_proto_hdr_t *hdr_p);

/*
 * Size of the args part of a data request: 24 for READ/WRITE; for READV/WRITEV
 * 8 + 24 * count, where count is read from the first 4 bytes at @prefix (at
 * least FP_PROTO_VEC_HDR bytes). Checks count against FP_PROTO_MAX_RANGES and
 * the size against the frame's @length.
 */
fp_status_t fp_proto_args_size(const fp_proto_hdr_t *hdr, const uint8_t *prefix, size_t prefix_len,
                               uint32_t *args_len_p);

/*
 * Decode the ranges of a data request from its args (@args_len bytes, as
 * given by fp_proto_args_size) into @ranges (room for FP_PROTO_MAX_RANGES).
 * Checks that no range is empty, that the data adds up to at most
 * FP_PROTO_MAX_DATA, and that the frame length is args_len + data for writes
 * and args_len for reads. Returns the count and the total data length.
 */
fp_status_t fp_proto_ranges_decode(const fp_proto_hdr_t *hdr, const uint8_t *args,
                                   uint32_t args_len, fp_proto_range_t *ranges, uint32_t *count_p,
                                   uint32_t *data_len_p);

/* Encode the args of a data request; returns its size. @buf: FP_PROTO_MAX_ARGS. */
uint32_t fp_proto_ranges_encode(uint8_t op, const fp_proto_range_t *ranges, uint32_t count,
                                uint8_t *buf);

void fp_proto_hello_req_encode(const fp_proto_hello_req_t *req, uint8_t *buf);
fp_status_t fp_proto_hello_req_decode(const uint8_t *buf, uint32_t len,
                                      fp_proto_hello_req_t *req_p);
void fp_proto_hello_rep_encode(const fp_proto_hello_rep_t *rep, uint8_t *buf);
fp_status_t fp_proto_hello_rep_decode(const uint8_t *buf, uint32_t len,
                                      fp_proto_hello_rep_t *rep_p);

/*
 * Named regions. Decoders take untrusted bytes (@len of them) and check them
 * strictly: FP_ERR_PROTOCOL for a payload of the wrong size or a non-zero
 * reserved field, FP_ERR_INVALID_PARAM for well-formed but invalid values (a
 * bad name, size or granule). Encoders write what the struct says (the caller
 * keeps name.len <= FP_PROTO_REGION_NAME_MAX) and return the payload size.
 */

/* True if @name (@len bytes) is a valid region name: 1..255 of [A-Za-z0-9._-]. */
bool fp_proto_region_name_valid(const char *name, size_t len);

/*
 * Copy the C string @name into @out (NUL-terminated) if it is a valid region
 * name; FP_ERR_INVALID_PARAM otherwise (or if NULL).
 */
fp_status_t fp_proto_region_name_set(const char *name, fp_proto_region_name_t *out);

/* True if @granule is a power of two in [FP_PROTO_REGION_GRANULE_MIN, _MAX]. */
bool fp_proto_region_granule_valid(uint64_t granule);

/* Slabs of @slab_size bytes that hold @size bytes; 0 if @slab_size is 0. */
uint64_t fp_proto_region_nslabs(uint64_t size, uint64_t slab_size);

/* Buffers: FP_PROTO_REGION_CREATE_REQ_MAX bytes. */
uint32_t fp_proto_region_create_req_encode(const fp_proto_region_create_req_t *req, uint8_t *buf);
fp_status_t fp_proto_region_create_req_decode(const uint8_t *buf, uint32_t len,
                                              fp_proto_region_create_req_t *req_p);

/* REGION_OPEN and REGION_DELETE. Buffers: FP_PROTO_REGION_NAME_REQ_MAX bytes. */
uint32_t fp_proto_region_name_req_encode(const fp_proto_region_name_t *name, uint8_t *buf);
fp_status_t fp_proto_region_name_req_decode(const uint8_t *buf, uint32_t len,
                                            fp_proto_region_name_t *name_p);

/* The reply also checks region_id != 0, a valid size, granule and slab_size, and nslabs. */
void fp_proto_region_rep_encode(const fp_proto_region_rep_t *rep, uint8_t *buf);
fp_status_t fp_proto_region_rep_decode(const uint8_t *buf, uint32_t len,
                                       fp_proto_region_rep_t *rep_p);

/* Count 0 or over FP_PROTO_REGION_SLABS_MAX is FP_ERR_PROTOCOL. */
void fp_proto_region_slabs_req_encode(const fp_proto_region_slabs_req_t *req, uint8_t *buf);
fp_status_t fp_proto_region_slabs_req_decode(const uint8_t *buf, uint32_t len,
                                             fp_proto_region_slabs_req_t *req_p);

/*
 * The REGION_SLABS reply: @count slab ids (8 bytes each). Decoding checks that
 * @len is exactly 8 * @count, @count is 1..FP_PROTO_REGION_SLABS_MAX and no id is 0.
 */
uint32_t fp_proto_region_slabs_rep_encode(const uint64_t *ids, uint32_t count, uint8_t *buf);
fp_status_t fp_proto_region_slabs_rep_decode(const uint8_t *buf, uint32_t len, uint32_t count,
                                             uint64_t *ids);

/*
 * Authentication MACs: HMAC-SHA-256 keyed with the shared secret over a role
 * label, both nonces and the client key, so a reply cannot be replayed as a
 * request nor moved to another session. @mac: FP_PROTO_MAC_SIZE bytes.
 */
typedef enum fp_proto_auth_role {
    FP_PROTO_AUTH_CLIENT = 0,
    FP_PROTO_AUTH_NODE = 1,
} fp_proto_auth_role_t;

fp_status_t fp_proto_auth_mac(fp_proto_auth_role_t role, const uint8_t *secret, size_t secret_len,
                              const uint8_t *node_nonce, const uint8_t *client_nonce,
                              const uint8_t *client_key, uint8_t *mac);
/* Constant-time check of a received MAC; FP_OK or FP_ERR_AUTH. */
fp_status_t fp_proto_auth_verify(fp_proto_auth_role_t role, const uint8_t *secret,
                                 size_t secret_len, const uint8_t *node_nonce,
                                 const uint8_t *client_nonce, const uint8_t *client_key,
                                 const uint8_t *mac);

/* Fill @buf with @len cryptographically random bytes; FP_ERR_IO if no RNG. */
fp_status_t fp_proto_random(void *buf, size_t len);

#endif /* FP_PROTO_PROTO_H */
