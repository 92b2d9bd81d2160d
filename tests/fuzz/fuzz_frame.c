/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the wire decoder (src/proto/proto.c).
 *
 * The input is what an untrusted peer could send on one connection: the first
 * byte only picks the direction (bit 0 set: we are a client reading replies;
 * clear: we are a node reading requests), the rest is a byte stream of frames.
 * The loop decodes it the way a receiver does: a 24-byte header, then for a
 * data request the args (ranges) before any data, for HELLO its fixed payload,
 * for the REGION_* operations their payloads (requests and replies), for AUTH
 * the MAC (against a fixed secret and nonces, so it fails unless the
 * input carries the right MAC; this exercises src/proto/auth.c).
 * It stops at the first decoding error, as a receiver would drop the
 * connection (a wrong MAC excepted, see check_auth), and when the input runs
 * out.
 *
 * Every piece the receiver reads (prefix, args, HELLO payload) is copied into
 * a heap buffer of exactly its size, so AddressSanitizer sees any read past it
 * instead of silently reading the next frame of the stream. Whatever decodes
 * successfully must re-encode to the identical bytes; abort() on a mismatch.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_frame: check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* An exact-size heap copy of @len bytes (at least one byte is allocated). */
static uint8_t *dup_exact(const uint8_t *src, size_t len)
{
    uint8_t *copy = malloc(len != 0 ? len : 1);

    CHECK(copy != NULL);
    if (len != 0)
        memcpy(copy, src, len);
    return copy;
}

static bool op_is_write(uint8_t op)
{
    return op == FP_OP_WRITE || op == FP_OP_WRITEV;
}

static bool op_is_vectored(uint8_t op)
{
    return op == FP_OP_READV || op == FP_OP_WRITEV;
}

static void check_hdr_roundtrip(const fp_proto_hdr_t *hdr, const uint8_t *wire)
{
    uint8_t buf[FP_PROTO_HDR_SIZE];

    fp_proto_hdr_encode(hdr, buf);
    CHECK(memcmp(buf, wire, FP_PROTO_HDR_SIZE) == 0);
}

/*
 * Decode the args of a data request whose payload starts at @payload, with
 * @avail bytes of the input left. Returns false when the stream must stop.
 */
static bool decode_data_request(const fp_proto_hdr_t *hdr, const uint8_t *payload, size_t avail)
{
    uint8_t *prefix, *args, *encoded;
    fp_proto_range_t *ranges;
    uint32_t args_len, count, data_len, encoded_len;
    uint64_t sum = 0;
    size_t prefix_len;
    fp_status_t status;

    /* What a receiver has read before it knows the size of the args. */
    prefix_len = avail;
    if (prefix_len > hdr->length)
        prefix_len = hdr->length;
    if (prefix_len > FP_PROTO_VEC_HDR)
        prefix_len = FP_PROTO_VEC_HDR;
    prefix = dup_exact(payload, prefix_len);
    status = fp_proto_args_size(hdr, prefix, prefix_len, &args_len);
    free(prefix);
    if (status != FP_OK)
        return false;
    CHECK(args_len <= hdr->length);
    CHECK(args_len <= FP_PROTO_MAX_ARGS);
    CHECK(args_len >= FP_PROTO_RANGE_SIZE);
    if (args_len > avail)
        return false;

    args = dup_exact(payload, args_len);
    ranges = malloc(FP_PROTO_MAX_RANGES * sizeof(*ranges));
    CHECK(ranges != NULL);
    status = fp_proto_ranges_decode(hdr, args, args_len, ranges, &count, &data_len);
    if (status == FP_OK) {
        CHECK(count >= 1 && count <= FP_PROTO_MAX_RANGES);
        CHECK(op_is_vectored(hdr->op) || count == 1);
        CHECK(data_len <= FP_PROTO_MAX_DATA);
        for (uint32_t i = 0; i < count; i++) {
            CHECK(ranges[i].length != 0);
            sum += ranges[i].length;
        }
        CHECK(sum == data_len);
        CHECK((uint64_t)hdr->length == args_len + (op_is_write(hdr->op) ? sum : 0));

        encoded = malloc(FP_PROTO_MAX_ARGS);
        CHECK(encoded != NULL);
        encoded_len = fp_proto_ranges_encode(hdr->op, ranges, count, encoded);
        CHECK(encoded_len == args_len);
        CHECK(memcmp(encoded, args, args_len) == 0);
        free(encoded);
    }
    free(ranges);
    free(args);
    return status == FP_OK;
}

/*
 * Check an AUTH payload the way each side does, against a fixed session: the
 * MAC must verify exactly when it equals the one computed here. Returns false
 * when the stream must stop: a wrong size. A wrong MAC does not stop it (a
 * real peer would), or the fuzzer could never reach the frames after AUTH.
 */
static bool check_auth(const fp_proto_hdr_t *hdr, const uint8_t *payload, size_t avail, bool reply)
{
    static const uint8_t secret[] = "fuzz-secret";
    uint8_t node_nonce[FP_PROTO_NONCE_SIZE], client_key[FP_PROTO_KEY_SIZE];
    uint8_t zero_nonce[FP_PROTO_NONCE_SIZE], expected[FP_PROTO_MAC_SIZE];
    const uint8_t *client_nonce, *mac;
    fp_proto_auth_role_t role = reply ? FP_PROTO_AUTH_NODE : FP_PROTO_AUTH_CLIENT;
    uint32_t want = reply ? FP_PROTO_AUTH_REP_SIZE : FP_PROTO_AUTH_REQ_SIZE;
    uint8_t *copy;
    fp_status_t status;

    if (reply && hdr->status != FP_OK)
        return true;
    if (hdr->length != want || avail < want)
        return false;
    memset(node_nonce, 0x4e, sizeof(node_nonce));
    memset(client_key, 0x4b, sizeof(client_key));
    memset(zero_nonce, 0, sizeof(zero_nonce));
    copy = dup_exact(payload, want);
    /* A reply carries only the node MAC; the client nonce is the client's own. */
    client_nonce = reply ? zero_nonce : copy;
    mac = reply ? copy : copy + FP_PROTO_NONCE_SIZE;
    CHECK(fp_proto_auth_mac(role, secret, sizeof(secret) - 1, node_nonce, client_nonce, client_key,
                            expected) == FP_OK);
    status = fp_proto_auth_verify(role, secret, sizeof(secret) - 1, node_nonce, client_nonce,
                                  client_key, mac);
    CHECK(status == (memcmp(expected, mac, FP_PROTO_MAC_SIZE) == 0 ? FP_OK : FP_ERR_AUTH));
    free(copy);
    return true;
}

/* Decode a HELLO payload; returns false when the stream must stop. */
static bool decode_hello(const fp_proto_hdr_t *hdr, const uint8_t *payload, size_t avail,
                         bool reply)
{
    uint8_t *copy, *encoded;
    fp_status_t status;

    if (hdr->length > avail)
        return false;
    copy = dup_exact(payload, hdr->length);
    if (!reply) {
        fp_proto_hello_req_t req;

        status = fp_proto_hello_req_decode(copy, hdr->length, &req);
        if (status == FP_OK) {
            CHECK(hdr->length == FP_PROTO_HELLO_REQ_SIZE);
            CHECK(req.min_version <= FP_PROTO_VERSION && FP_PROTO_VERSION <= req.max_version);
            encoded = malloc(FP_PROTO_HELLO_REQ_SIZE);
            CHECK(encoded != NULL);
            fp_proto_hello_req_encode(&req, encoded);
            CHECK(memcmp(encoded, copy, FP_PROTO_HELLO_REQ_SIZE) == 0);
            free(encoded);
        }
    } else if (hdr->status != FP_OK) {
        /* An error reply carries no HELLO payload to decode. */
        status = FP_OK;
    } else {
        fp_proto_hello_rep_t rep;

        status = fp_proto_hello_rep_decode(copy, hdr->length, &rep);
        if (status == FP_OK) {
            CHECK(hdr->length == FP_PROTO_HELLO_REP_SIZE);
            CHECK(rep.version == FP_PROTO_VERSION);
            CHECK(rep.slab_size != 0 && rep.max_data != 0 && rep.max_ranges != 0);
            encoded = malloc(FP_PROTO_HELLO_REP_SIZE);
            CHECK(encoded != NULL);
            fp_proto_hello_rep_encode(&rep, encoded);
            CHECK(memcmp(encoded, copy, FP_PROTO_HELLO_REP_SIZE) == 0);
            free(encoded);
        }
    }
    free(copy);
    return status == FP_OK;
}

/* Decode a REGION_CREATE request and check it re-encodes to the same bytes. */
static void decode_region_create(const uint8_t *copy, uint32_t len)
{
    fp_proto_region_create_req_t req;
    uint8_t *encoded;

    if (fp_proto_region_create_req_decode(copy, len, &req) != FP_OK)
        return;
    CHECK(len == FP_PROTO_REGION_CREATE_HDR + req.name.len);
    CHECK(fp_proto_region_name_valid(req.name.text, req.name.len));
    CHECK(strlen(req.name.text) == req.name.len);
    CHECK(req.size != 0 && fp_proto_region_granule_valid(req.granule));
    encoded = malloc(FP_PROTO_REGION_CREATE_REQ_MAX);
    CHECK(encoded != NULL);
    CHECK(fp_proto_region_create_req_encode(&req, encoded) == len);
    CHECK(memcmp(encoded, copy, len) == 0);
    free(encoded);
}

/* REGION_OPEN and REGION_DELETE requests. */
static void decode_region_name(const uint8_t *copy, uint32_t len)
{
    fp_proto_region_name_t name;
    uint8_t *encoded;

    if (fp_proto_region_name_req_decode(copy, len, &name) != FP_OK)
        return;
    CHECK(len == FP_PROTO_REGION_NAME_HDR + name.len);
    CHECK(fp_proto_region_name_valid(name.text, name.len));
    encoded = malloc(FP_PROTO_REGION_NAME_REQ_MAX);
    CHECK(encoded != NULL);
    CHECK(fp_proto_region_name_req_encode(&name, encoded) == len);
    CHECK(memcmp(encoded, copy, len) == 0);
    free(encoded);
}

static void decode_region_slabs_req(const uint8_t *copy, uint32_t len)
{
    fp_proto_region_slabs_req_t req;
    uint8_t encoded[FP_PROTO_REGION_SLABS_REQ_SIZE];

    if (fp_proto_region_slabs_req_decode(copy, len, &req) != FP_OK)
        return;
    CHECK(len == FP_PROTO_REGION_SLABS_REQ_SIZE);
    CHECK(req.count >= 1 && req.count <= FP_PROTO_REGION_SLABS_MAX);
    fp_proto_region_slabs_req_encode(&req, encoded);
    CHECK(memcmp(encoded, copy, len) == 0);
}

/* The reply of REGION_CREATE and REGION_OPEN. */
static void decode_region_rep(const uint8_t *copy, uint32_t len)
{
    fp_proto_region_rep_t rep;
    uint8_t *encoded;

    if (fp_proto_region_rep_decode(copy, len, &rep) != FP_OK)
        return;
    CHECK(len == FP_PROTO_REGION_REP_SIZE);
    CHECK(rep.region_id != 0 && rep.size != 0 && rep.slab_size != 0);
    CHECK(fp_proto_region_granule_valid(rep.granule));
    CHECK(rep.nslabs >= 1 && rep.nslabs - 1 == (rep.size - 1) / rep.slab_size);
    encoded = malloc(FP_PROTO_REGION_REP_SIZE);
    CHECK(encoded != NULL);
    fp_proto_region_rep_encode(&rep, encoded);
    CHECK(memcmp(encoded, copy, len) == 0);
    free(encoded);
}

/*
 * The REGION_SLABS reply, decoded for the count its length implies (a client
 * knows the count it asked for), and for its neighbours, which must fail.
 */
static void decode_region_slabs_rep(const uint8_t *copy, uint32_t len)
{
    uint64_t *ids = malloc((FP_PROTO_REGION_SLABS_MAX + 1) * sizeof(*ids));
    uint32_t count = len / 8;
    uint8_t *encoded;
    fp_status_t status;

    CHECK(ids != NULL);
    CHECK(fp_proto_region_slabs_rep_decode(copy, len, count + 1, ids) == FP_ERR_PROTOCOL);
    if (count > 0)
        CHECK(fp_proto_region_slabs_rep_decode(copy, len, count - 1, ids) == FP_ERR_PROTOCOL);
    status = fp_proto_region_slabs_rep_decode(copy, len, count, ids);
    if (status == FP_OK) {
        CHECK(len % 8 == 0 && count >= 1 && count <= FP_PROTO_REGION_SLABS_MAX);
        encoded = malloc(len);
        CHECK(encoded != NULL);
        CHECK(fp_proto_region_slabs_rep_encode(ids, count, encoded) == len);
        CHECK(memcmp(encoded, copy, len) == 0);
        for (uint32_t i = 0; i < count; i++)
            CHECK(ids[i] != 0);
        free(encoded);
    }
    free(ids);
}

/*
 * Decode the payload of a REGION_* request or reply. A node answers an
 * invalid one with an error and keeps the connection, so the stream goes on;
 * returns false only when the payload is not all there.
 */
static bool decode_region(const fp_proto_hdr_t *hdr, const uint8_t *payload, size_t avail,
                          bool reply)
{
    uint8_t *copy;

    if (hdr->length > avail)
        return false;
    if (reply && hdr->status != FP_OK)
        return true; /* an error reply carries no payload to decode */
    copy = dup_exact(payload, hdr->length);
    switch (hdr->op) {
    case FP_OP_REGION_CREATE:
        if (reply)
            decode_region_rep(copy, hdr->length);
        else
            decode_region_create(copy, hdr->length);
        break;
    case FP_OP_REGION_OPEN:
        if (reply)
            decode_region_rep(copy, hdr->length);
        else
            decode_region_name(copy, hdr->length);
        break;
    case FP_OP_REGION_SLABS:
        if (reply)
            decode_region_slabs_rep(copy, hdr->length);
        else
            decode_region_slabs_req(copy, hdr->length);
        break;
    case FP_OP_REGION_DELETE:
        if (!reply)
            decode_region_name(copy, hdr->length);
        break;
    }
    free(copy);
    return true;
}

static bool op_is_region(uint8_t op)
{
    return op == FP_OP_REGION_CREATE || op == FP_OP_REGION_OPEN || op == FP_OP_REGION_SLABS ||
           op == FP_OP_REGION_DELETE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool reply;
    size_t off = 1;

    if (size < 1)
        return 0;
    reply = (data[0] & 1) != 0;

    while (size - off >= FP_PROTO_HDR_SIZE) {
        fp_proto_hdr_t hdr;
        uint8_t *wire = dup_exact(data + off, FP_PROTO_HDR_SIZE);
        fp_status_t status = fp_proto_hdr_decode(wire, reply, &hdr);
        size_t avail;
        bool more = true;

        if (status == FP_OK) {
            CHECK(hdr.version == FP_PROTO_VERSION);
            CHECK(((hdr.flags & FP_PROTO_FLAG_REPLY) != 0) == reply);
            CHECK(reply || hdr.status == 0);
            CHECK(hdr.length <= FP_PROTO_MAX_PAYLOAD);
            check_hdr_roundtrip(&hdr, wire);
        }
        free(wire);
        if (status != FP_OK)
            break;

        off += FP_PROTO_HDR_SIZE;
        avail = size - off;
        (void)fp_proto_op_name(hdr.op);
        if (!reply && fp_proto_op_is_data(hdr.op))
            more = decode_data_request(&hdr, data + off, avail);
        else if (hdr.op == FP_OP_HELLO)
            more = decode_hello(&hdr, data + off, avail, reply);
        else if (hdr.op == FP_OP_AUTH)
            more = check_auth(&hdr, data + off, avail, reply);
        else if (op_is_region(hdr.op))
            more = decode_region(&hdr, data + off, avail, reply);
        if (!more || hdr.length > avail)
            break;
        off += hdr.length;
    }
    return 0;
}
