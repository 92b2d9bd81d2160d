/* SPDX-License-Identifier: MIT */
/*
 * The pool's metadata operations (POOL_* opcodes of docs/protocol.md): how
 * members join and heartbeat, and how clients create, find, map, list and
 * delete regions and hold writer leases. They are control frames to the
 * metadata node (farpoold --meta-dir); every other node answers them
 * FP_ERR_UNSUPPORTED.
 *
 * Encoding: little-endian integers in the order of each struct's fields;
 * strings are a u16 length then the bytes (no NUL); the NODES and REGIONS
 * lists are a u32 total, a u32 count, then the entries; the MAP reply a u32
 * count then the entries. Decoders take untrusted bytes and check them strictly:
 * FP_ERR_PROTOCOL for a truncated or overlong payload, a string over its
 * limit or a count over FP_POOL_LIST_MAX; FP_ERR_INVALID_PARAM for a
 * well-formed but invalid value (a region name, a granule). Encoders return
 * the payload size, 0 if it does not fit in @cap bytes.
 *
 * Thread safety: all functions are reentrant.
 */
#ifndef FP_PROTO_POOL_H
#define FP_PROTO_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define FP_POOL_ADDR_MAX  95u  /* bytes of a node address "HOST:PORT" */
#define FP_POOL_LIST_MAX  256u /* entries of one list reply */
#define FP_POOL_HASH_SIZE 32u  /* BLAKE2b-256 */
#define FP_POOL_MAP_PAGE  240u /* map entries (16 bytes each) that fit one control frame */

/* POOL_JOIN: a node asks to be a member. */
typedef struct fp_pool_join_req {
    uint64_t node_id; /* its HELLO node id */
    uint64_t capacity;
    uint64_t slab_size;
    char addr[FP_POOL_ADDR_MAX + 1]; /* where clients reach it */
} fp_pool_join_req_t;

#define FP_POOL_JOIN_RESET 0x1u /* free every slab held before serving the pool */
typedef struct fp_pool_join_rep {
    uint64_t member;
    uint32_t flags;
    uint32_t heartbeat_ms; /* how often to heartbeat */
} fp_pool_join_rep_t;

/* POOL_HEARTBEAT; the reply is FP_ERR_NO_ENTRY when the pool no longer knows it (rejoin). */
typedef struct fp_pool_heartbeat_req {
    uint64_t member;
    uint64_t node_id;
    uint64_t capacity;
    uint64_t used;
} fp_pool_heartbeat_req_t;

/* Member states on the wire (= fp_meta_node_state_t of meta/meta.h). */
#define FP_POOL_NODE_LIVE     0u
#define FP_POOL_NODE_DEAD     1u
#define FP_POOL_NODE_DRAINING 2u
#define FP_POOL_NODE_GONE     3u

/* POOL_NODES request: entries from @first on; reply: a list of these. */
typedef struct fp_pool_node_entry {
    uint64_t member;
    uint64_t node_id;
    uint64_t capacity;
    uint64_t used;
    uint64_t slab_size;
    uint32_t state;   /* FP_POOL_NODE_* */
    uint32_t seen_ms; /* ms since its last heartbeat (saturating) */
    char addr[FP_POOL_ADDR_MAX + 1];
} fp_pool_node_entry_t;

/* Region flags on the wire (POOL_CREATE). The public ones are farpool.h's. */
#define FP_POOL_REGION_FIXED   0x2u   /* = FARPOOL_REGION_FIXED */
#define FP_POOL_REGION_PENDING 0x100u /* invisible under its name until POOL_COMMIT */
#define FP_POOL_REGION_FLAGS   (FP_POOL_REGION_FIXED | FP_POOL_REGION_PENDING)

typedef struct fp_pool_create_req {
    uint64_t size;
    uint32_t granule;
    uint32_t flags;    /* FP_POOL_REGION_* */
    uint32_t replicas; /* 0: the pool's default */
    fp_proto_region_name_t name;
} fp_pool_create_req_t;

#define FP_POOL_OPEN_WRITE 0x1u /* take the writer lease */
typedef struct fp_pool_open_req {
    uint32_t flags;
    fp_proto_region_name_t name;
} fp_pool_open_req_t;

typedef enum fp_pool_health {
    FP_POOL_HEALTHY = 0,   /* every slab has all its copies */
    FP_POOL_DEGRADED = 1,  /* some slab has fewer, none is being repaired */
    FP_POOL_REPAIRING = 2, /* copies are being made */
    FP_POOL_LOST = 3,      /* some slab has no copy left: its bytes are gone */
} fp_pool_health_t;

/* What a client needs to use a region: the reply of POOL_CREATE and POOL_OPEN, and list entries. */
typedef struct fp_pool_region_desc {
    uint64_t id;
    uint64_t size;
    uint32_t granule;
    uint32_t flags;
    uint32_t replicas;
    uint32_t state;  /* fp_meta_region_state_t */
    uint32_t health; /* fp_pool_health_t */
    uint64_t slab_size;
    uint32_t nslabs;
    uint8_t key[FP_PROTO_KEY_SIZE];
    uint64_t fixed_addr;
    uint32_t has_checksum;
    uint8_t checksum[FP_POOL_HASH_SIZE];
    uint64_t created_ms;
    uint64_t lease_id;     /* the lease the caller got (create, open for writing); else 0 */
    uint32_t lease_ttl_ms; /* renew it before this */
    fp_proto_region_name_t name;
} fp_pool_region_desc_t;

/* POOL_MAP request: slabs first .. first + count - 1; reply: a list of count * replicas of these.
 */
typedef struct fp_pool_map_req {
    uint64_t region;
    uint32_t first;
    uint32_t count;
} fp_pool_map_req_t;

typedef struct fp_pool_map_entry {
    uint64_t member; /* 0: no copy */
    uint64_t slab;
} fp_pool_map_entry_t;

/* POOL_COMMIT: a put is complete; the region becomes visible with its checksum. */
typedef struct fp_pool_commit_req {
    uint64_t region;
    uint64_t lease;
    uint32_t has_checksum;
    uint8_t checksum[FP_POOL_HASH_SIZE];
} fp_pool_commit_req_t;

#define FP_POOL_LEASE_RENEW   1u
#define FP_POOL_LEASE_RELEASE 2u
typedef struct fp_pool_lease_req {
    uint64_t region;
    uint64_t lease;
    uint32_t op;
} fp_pool_lease_req_t;

/*
 * POOL_STALE: the writer of region @region could not write a block back to
 * the copy of slab @index on node @addr, while other copies took it: that
 * copy is stale and must not be read again. The pool drops it (repair makes a
 * new one). Only the region's writer may say so.
 */
typedef struct fp_pool_stale_req {
    uint64_t region;
    uint32_t index;
    char addr[FP_POOL_ADDR_MAX + 1];
} fp_pool_stale_req_t;

/* POOL_REGIONS request (entries from @first on) and POOL_NODES request. */
typedef struct fp_pool_list_req {
    uint32_t first;
} fp_pool_list_req_t;

/* Encoders and decoders. The name of create/open/desc is checked as a region name. */
uint32_t fp_pool_join_req_encode(const fp_pool_join_req_t *m, uint8_t *buf, size_t cap);
fp_status_t fp_pool_join_req_decode(const uint8_t *buf, uint32_t len, fp_pool_join_req_t *m);
uint32_t fp_pool_join_rep_encode(const fp_pool_join_rep_t *m, uint8_t *buf, size_t cap);
fp_status_t fp_pool_join_rep_decode(const uint8_t *buf, uint32_t len, fp_pool_join_rep_t *m);
uint32_t fp_pool_heartbeat_req_encode(const fp_pool_heartbeat_req_t *m, uint8_t *buf, size_t cap);
fp_status_t fp_pool_heartbeat_req_decode(const uint8_t *buf, uint32_t len,
                                         fp_pool_heartbeat_req_t *m);
uint32_t fp_pool_create_req_encode(const fp_pool_create_req_t *m, uint8_t *buf, size_t cap);
fp_status_t fp_pool_create_req_decode(const uint8_t *buf, uint32_t len, fp_pool_create_req_t *m);
uint32_t fp_pool_open_req_encode(const fp_pool_open_req_t *m, uint8_t *buf, size_t cap);
fp_status_t fp_pool_open_req_decode(const uint8_t *buf, uint32_t len, fp_pool_open_req_t *m);
/* POOL_DELETE and POOL_DRAIN carry one string: a region name / a node address. */
uint32_t fp_pool_name_req_encode(const fp_proto_region_name_t *m, uint8_t *buf, size_t cap);
fp_status_t fp_pool_name_req_decode(const uint8_t *buf, uint32_t len, fp_proto_region_name_t *m);
uint32_t fp_pool_addr_req_encode(const char *addr, uint8_t *buf, size_t cap);
fp_status_t fp_pool_addr_req_decode(const uint8_t *buf, uint32_t len,
                                    char addr[FP_POOL_ADDR_MAX + 1]);
uint32_t fp_pool_desc_encode(const fp_pool_region_desc_t *m, uint8_t *buf, size_t cap);
fp_status_t fp_pool_desc_decode(const uint8_t *buf, uint32_t len, fp_pool_region_desc_t *m);
uint32_t fp_pool_map_req_encode(const fp_pool_map_req_t *m, uint8_t *buf, size_t cap);
fp_status_t fp_pool_map_req_decode(const uint8_t *buf, uint32_t len, fp_pool_map_req_t *m);
uint32_t fp_pool_commit_req_encode(const fp_pool_commit_req_t *m, uint8_t *buf, size_t cap);
fp_status_t fp_pool_commit_req_decode(const uint8_t *buf, uint32_t len, fp_pool_commit_req_t *m);
uint32_t fp_pool_lease_req_encode(const fp_pool_lease_req_t *m, uint8_t *buf, size_t cap);
fp_status_t fp_pool_lease_req_decode(const uint8_t *buf, uint32_t len, fp_pool_lease_req_t *m);
uint32_t fp_pool_stale_req_encode(const fp_pool_stale_req_t *m, uint8_t *buf, size_t cap);
fp_status_t fp_pool_stale_req_decode(const uint8_t *buf, uint32_t len, fp_pool_stale_req_t *m);
uint32_t fp_pool_list_req_encode(const fp_pool_list_req_t *m, uint8_t *buf, size_t cap);
fp_status_t fp_pool_list_req_decode(const uint8_t *buf, uint32_t len, fp_pool_list_req_t *m);

/*
 * List replies: @total (entries in all), then @count entries. Encoders write
 * as many of @entries (@count given) as fit in @cap and say how many in
 * *@written_p. Decoders fill at most @max entries (FP_ERR_PROTOCOL if more).
 */
uint32_t fp_pool_nodes_rep_encode(uint32_t total, const fp_pool_node_entry_t *entries,
                                  uint32_t count, uint8_t *buf, size_t cap, uint32_t *written_p);
fp_status_t fp_pool_nodes_rep_decode(const uint8_t *buf, uint32_t len, uint32_t *total_p,
                                     fp_pool_node_entry_t *entries, uint32_t max,
                                     uint32_t *count_p);
uint32_t fp_pool_regions_rep_encode(uint32_t total, const fp_pool_region_desc_t *entries,
                                    uint32_t count, uint8_t *buf, size_t cap, uint32_t *written_p);
fp_status_t fp_pool_regions_rep_decode(const uint8_t *buf, uint32_t len, uint32_t *total_p,
                                       fp_pool_region_desc_t *entries, uint32_t max,
                                       uint32_t *count_p);
uint32_t fp_pool_map_rep_encode(const fp_pool_map_entry_t *entries, uint32_t count, uint8_t *buf,
                                size_t cap);
fp_status_t fp_pool_map_rep_decode(const uint8_t *buf, uint32_t len, fp_pool_map_entry_t *entries,
                                   uint32_t max, uint32_t *count_p);

#endif /* FP_PROTO_POOL_H */
