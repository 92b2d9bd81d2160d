/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the wire protocol (src/proto/proto.c and auth.c): the header's
 * byte layout and round trip, every way the decoder of untrusted headers must
 * refuse one (magic, version, reserved bits, reply flag, length limits), the
 * args and ranges of READ/WRITE/READV/WRITEV with their limits, the HELLO
 * messages and version negotiation, the REGION_* payloads (names, sizes,
 * granules, reserved fields and exact lengths), and the authentication MACs. The example
 * frames and the MAC test vector of docs/protocol.md are checked byte for byte,
 * so the code and the specification cannot drift apart unnoticed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

#define SENTINEL 0xA5A5A5A5u

static const uint8_t all_ops[] = {FP_OP_HELLO,         FP_OP_AUTH,        FP_OP_PING,
                                  FP_OP_STATS,         FP_OP_SLAB_ALLOC,  FP_OP_SLAB_FREE,
                                  FP_OP_REGION_CREATE, FP_OP_REGION_OPEN, FP_OP_REGION_SLABS,
                                  FP_OP_REGION_DELETE, FP_OP_READ,        FP_OP_WRITE,
                                  FP_OP_READV,         FP_OP_WRITEV};

static void make_hdr(uint8_t *buf, uint8_t op, uint16_t flags, int32_t status, uint32_t length)
{
    fp_proto_hdr_t hdr = {.version = FP_PROTO_VERSION,
                          .op = op,
                          .flags = flags,
                          .id = 0x1122334455667788ull,
                          .status = status,
                          .length = length};

    fp_proto_hdr_encode(&hdr, buf);
}

/* Decode a request (or a reply, with FLAG_REPLY) of @op and @length. */
static fp_status_t decode_len(uint8_t op, bool reply, uint32_t length)
{
    uint8_t buf[FP_PROTO_HDR_SIZE];
    fp_proto_hdr_t hdr;
    fp_status_t status;

    make_hdr(buf, op, reply ? FP_PROTO_FLAG_REPLY : 0, 0, length);
    status = fp_proto_hdr_decode(buf, reply, &hdr);
    assert_int_equal(hdr.id, 0x1122334455667788ull); /* always filled, to echo */
    assert_int_equal(hdr.length, length);
    return status;
}

static void test_hdr_round_trip(void **state)
{
    static const uint8_t expected[FP_PROTO_HDR_SIZE] = {
        'F',  'P',  1,    16,   0,    0,    0,    0,    /* magic, version, op, flags, rsvd */
        0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, /* id */
        0,    0,    0,    0,                            /* status */
        0x18, 0,    0,    0};                           /* length */
    fp_proto_hdr_t in = {.version = FP_PROTO_VERSION,
                         .op = FP_OP_READ,
                         .flags = 0,
                         .id = 0x0123456789abcdefull,
                         .status = 0,
                         .length = 24};
    fp_proto_hdr_t out;
    uint8_t buf[FP_PROTO_HDR_SIZE];

    (void)state;
    fp_proto_hdr_encode(&in, buf);
    assert_memory_equal(buf, expected, sizeof(expected));
    memset(&out, 0xff, sizeof(out));
    assert_int_equal(fp_proto_hdr_decode(buf, false, &out), FP_OK);
    assert_int_equal(out.version, in.version);
    assert_int_equal(out.op, in.op);
    assert_int_equal(out.flags, in.flags);
    assert_int_equal(out.id, in.id);
    assert_int_equal(out.status, in.status);
    assert_int_equal(out.length, in.length);

    /* A reply carries a negative status through the unsigned wire field. */
    in.op = FP_OP_SLAB_ALLOC;
    in.flags = FP_PROTO_FLAG_REPLY;
    in.id = UINT64_MAX;
    in.status = FP_ERR_NO_SPACE;
    in.length = 0;
    fp_proto_hdr_encode(&in, buf);
    assert_int_equal(fp_proto_get_u32(buf + 16), (uint32_t)(int32_t)FP_ERR_NO_SPACE);
    assert_int_equal(fp_proto_hdr_decode(buf, true, &out), FP_OK);
    assert_int_equal(out.flags, FP_PROTO_FLAG_REPLY);
    assert_int_equal(out.id, UINT64_MAX);
    assert_int_equal(out.status, FP_ERR_NO_SPACE);

    /* Every opcode, both directions, empty payload. */
    for (size_t i = 0; i < sizeof(all_ops); i++) {
        assert_int_equal(decode_len(all_ops[i], false, 0), FP_OK);
        assert_int_equal(decode_len(all_ops[i], true, 0), FP_OK);
    }
    /* An unknown opcode is the server's to refuse (UNSUPPORTED), within control limits. */
    assert_int_equal(decode_len(200, false, FP_PROTO_MAX_CONTROL), FP_OK);
    assert_int_equal(decode_len(200, false, FP_PROTO_MAX_CONTROL + 1), FP_ERR_TOO_LARGE);
}

static void test_hdr_decode_errors(void **state)
{
    uint8_t buf[FP_PROTO_HDR_SIZE];
    fp_proto_hdr_t hdr;

    (void)state;
    /* Bad magic. */
    make_hdr(buf, FP_OP_PING, 0, 0, 0);
    buf[0] ^= 0x01;
    assert_int_equal(fp_proto_hdr_decode(buf, false, &hdr), FP_ERR_PROTOCOL);
    assert_int_equal(hdr.id, 0x1122334455667788ull);
    make_hdr(buf, FP_OP_PING, 0, 0, 0);
    buf[1] = 0;
    assert_int_equal(fp_proto_hdr_decode(buf, false, &hdr), FP_ERR_PROTOCOL);
    memcpy(buf, "GET / HTTP/1.1\r\nHost: x\r\n", FP_PROTO_HDR_SIZE);
    assert_int_equal(fp_proto_hdr_decode(buf, false, &hdr), FP_ERR_PROTOCOL);

    /* Wrong version. */
    for (unsigned v = 0; v < 256; v++) {
        make_hdr(buf, FP_OP_HELLO, 0, 0, FP_PROTO_HELLO_REQ_SIZE);
        buf[2] = (uint8_t)v;
        assert_int_equal(fp_proto_hdr_decode(buf, false, &hdr),
                         v == FP_PROTO_VERSION ? FP_OK : FP_ERR_VERSION);
        assert_int_equal(hdr.version, v);
        assert_int_equal(hdr.id, 0x1122334455667788ull);
    }

    /* Reserved bytes 6-7 and unknown flag bits. */
    for (int at = 6; at <= 7; at++) {
        make_hdr(buf, FP_OP_PING, 0, 0, 0);
        buf[at] = 0x80;
        assert_int_equal(fp_proto_hdr_decode(buf, false, &hdr), FP_ERR_PROTOCOL);
    }
    for (unsigned bit = 1; bit < 16; bit++) {
        make_hdr(buf, FP_OP_PING, (uint16_t)(1u << bit), 0, 0);
        assert_int_equal(fp_proto_hdr_decode(buf, false, &hdr), FP_ERR_PROTOCOL);
        make_hdr(buf, FP_OP_PING, (uint16_t)(FP_PROTO_FLAG_REPLY | (1u << bit)), 0, 0);
        assert_int_equal(fp_proto_hdr_decode(buf, true, &hdr), FP_ERR_PROTOCOL);
    }

    /* A reply where a request is expected, and the other way round. */
    make_hdr(buf, FP_OP_PING, FP_PROTO_FLAG_REPLY, 0, 0);
    assert_int_equal(fp_proto_hdr_decode(buf, false, &hdr), FP_ERR_PROTOCOL);
    make_hdr(buf, FP_OP_PING, 0, 0, 0);
    assert_int_equal(fp_proto_hdr_decode(buf, true, &hdr), FP_ERR_PROTOCOL);

    /* A request carries no status. */
    make_hdr(buf, FP_OP_PING, 0, FP_ERR_IO, 0);
    assert_int_equal(fp_proto_hdr_decode(buf, false, &hdr), FP_ERR_PROTOCOL);
    make_hdr(buf, FP_OP_PING, 0, 1, 0);
    assert_int_equal(fp_proto_hdr_decode(buf, false, &hdr), FP_ERR_PROTOCOL);
}

static void test_hdr_length_limits(void **state)
{
    (void)state;
    /* Control frames, both directions. */
    for (size_t i = 0; i < sizeof(all_ops); i++) {
        uint8_t op = all_ops[i];

        if (fp_proto_op_is_data(op))
            continue;
        assert_int_equal(decode_len(op, false, FP_PROTO_MAX_CONTROL), FP_OK);
        assert_int_equal(decode_len(op, false, FP_PROTO_MAX_CONTROL + 1), FP_ERR_TOO_LARGE);
        assert_int_equal(decode_len(op, false, 0xFFFFFFFFu), FP_ERR_TOO_LARGE);
        assert_int_equal(decode_len(op, true, FP_PROTO_MAX_CONTROL), FP_OK);
        assert_int_equal(decode_len(op, true, FP_PROTO_MAX_CONTROL + 1), FP_ERR_TOO_LARGE);
        assert_int_equal(decode_len(op, true, 0xFFFFFFFFu), FP_ERR_TOO_LARGE);
    }
    /* Data requests: args and data. */
    static const uint8_t data_ops[] = {FP_OP_READ, FP_OP_WRITE, FP_OP_READV, FP_OP_WRITEV};
    for (size_t i = 0; i < sizeof(data_ops); i++) {
        assert_int_equal(decode_len(data_ops[i], false, FP_PROTO_MAX_PAYLOAD), FP_OK);
        assert_int_equal(decode_len(data_ops[i], false, FP_PROTO_MAX_PAYLOAD + 1),
                         FP_ERR_TOO_LARGE);
        assert_int_equal(decode_len(data_ops[i], false, 0xFFFFFFFFu), FP_ERR_TOO_LARGE);
    }
    /* Read replies carry data; write replies do not. */
    assert_int_equal(decode_len(FP_OP_READ, true, FP_PROTO_MAX_DATA), FP_OK);
    assert_int_equal(decode_len(FP_OP_READ, true, FP_PROTO_MAX_DATA + 1), FP_ERR_TOO_LARGE);
    assert_int_equal(decode_len(FP_OP_READ, true, 0xFFFFFFFFu), FP_ERR_TOO_LARGE);
    assert_int_equal(decode_len(FP_OP_READV, true, FP_PROTO_MAX_DATA), FP_OK);
    assert_int_equal(decode_len(FP_OP_READV, true, FP_PROTO_MAX_DATA + 1), FP_ERR_TOO_LARGE);
    assert_int_equal(decode_len(FP_OP_WRITE, true, FP_PROTO_MAX_CONTROL), FP_OK);
    assert_int_equal(decode_len(FP_OP_WRITE, true, FP_PROTO_MAX_CONTROL + 1), FP_ERR_TOO_LARGE);
    assert_int_equal(decode_len(FP_OP_WRITEV, true, FP_PROTO_MAX_CONTROL + 1), FP_ERR_TOO_LARGE);
}

static fp_proto_hdr_t data_hdr(uint8_t op, uint32_t length)
{
    fp_proto_hdr_t hdr = {
        .version = FP_PROTO_VERSION, .op = op, .flags = 0, .id = 1, .status = 0, .length = length};

    return hdr;
}

static fp_status_t args_size(uint8_t op, uint32_t length, uint32_t count, uint32_t reserved,
                             size_t prefix_len, uint32_t *args_len_p)
{
    fp_proto_hdr_t hdr = data_hdr(op, length);
    uint8_t prefix[FP_PROTO_VEC_HDR];

    fp_proto_put_u32(prefix, count);
    fp_proto_put_u32(prefix + 4, reserved);
    *args_len_p = SENTINEL;
    return fp_proto_args_size(&hdr, prefix, prefix_len, args_len_p);
}

static void test_args_size(void **state)
{
    const uint32_t max_vec = FP_PROTO_VEC_HDR + FP_PROTO_MAX_RANGES * FP_PROTO_RANGE_SIZE;
    uint32_t n;

    (void)state;
    assert_int_equal(FP_PROTO_MAX_ARGS, max_vec);
    /* READ/WRITE: one range, no prefix needed. */
    assert_int_equal(args_size(FP_OP_READ, 24, 0, 0, 0, &n), FP_OK);
    assert_int_equal(n, 24);
    assert_int_equal(args_size(FP_OP_WRITE, 24 + 4096, 0, 0, 0, &n), FP_OK);
    assert_int_equal(n, 24);
    assert_int_equal(args_size(FP_OP_READ, 23, 0, 0, 0, &n), FP_ERR_PROTOCOL);
    assert_int_equal(n, SENTINEL);
    assert_int_equal(args_size(FP_OP_WRITE, 0, 0, 0, 0, &n), FP_ERR_PROTOCOL);

    /* READV/WRITEV: 8 + 24 * count. */
    assert_int_equal(args_size(FP_OP_READV, 32, 1, 0, 8, &n), FP_OK);
    assert_int_equal(n, 32);
    assert_int_equal(args_size(FP_OP_WRITEV, 8 + 72 + 100, 3, 0, 8, &n), FP_OK);
    assert_int_equal(n, 8 + 72);
    assert_int_equal(args_size(FP_OP_READV, max_vec, FP_PROTO_MAX_RANGES, 0, 8, &n), FP_OK);
    assert_int_equal(n, max_vec);
    assert_int_equal(args_size(FP_OP_WRITEV, max_vec + 1, FP_PROTO_MAX_RANGES, 0, 8, &n), FP_OK);
    assert_int_equal(n, max_vec);

    /* Count 0, over the limit, huge (no overflow of 24 * count). */
    assert_int_equal(args_size(FP_OP_READV, 32, 0, 0, 8, &n), FP_ERR_PROTOCOL);
    assert_int_equal(args_size(FP_OP_WRITEV, 8, 0, 0, 8, &n), FP_ERR_PROTOCOL);
    assert_int_equal(args_size(FP_OP_READV, max_vec + 24, FP_PROTO_MAX_RANGES + 1, 0, 8, &n),
                     FP_ERR_PROTOCOL);
    assert_int_equal(args_size(FP_OP_READV, FP_PROTO_MAX_PAYLOAD, 0xFFFFFFFFu, 0, 8, &n),
                     FP_ERR_PROTOCOL);
    assert_int_equal(args_size(FP_OP_WRITEV, FP_PROTO_MAX_PAYLOAD, 0x0AAAAAABu, 0, 8, &n),
                     FP_ERR_PROTOCOL); /* 24 * count wraps to 8 in 32 bits */
    assert_int_equal(n, SENTINEL);

    /* Reserved word, short prefix, frame shorter than its args. */
    assert_int_equal(args_size(FP_OP_READV, 32, 1, 1, 8, &n), FP_ERR_PROTOCOL);
    assert_int_equal(args_size(FP_OP_READV, 32, 1, 0, 7, &n), FP_ERR_PROTOCOL);
    assert_int_equal(args_size(FP_OP_READV, 7, 1, 0, 8, &n), FP_ERR_PROTOCOL);
    assert_int_equal(args_size(FP_OP_READV, 8 + 48 - 1, 2, 0, 8, &n), FP_ERR_PROTOCOL);
    assert_int_equal(args_size(FP_OP_WRITEV, 8 + 48 - 1, 2, 0, 8, &n), FP_ERR_PROTOCOL);
    assert_int_equal(n, SENTINEL);

    /* Not a data operation. */
    assert_int_equal(args_size(FP_OP_PING, 24, 0, 0, 8, &n), FP_ERR_UNSUPPORTED);
    assert_int_equal(args_size(FP_OP_HELLO, 24, 0, 0, 8, &n), FP_ERR_UNSUPPORTED);
}

/*
 * Encode @count ranges for @op, then decode them as the args of a frame whose
 * length is args + data (for writes) + @extra, so @extra != 0 is a mismatch.
 */
static fp_status_t ranges_round(uint8_t op, const fp_proto_range_t *in, uint32_t count,
                                int64_t extra, fp_proto_range_t *out, uint32_t *count_p,
                                uint32_t *data_len_p)
{
    static uint8_t args[FP_PROTO_MAX_ARGS];
    uint64_t data = 0;
    uint32_t args_len;
    fp_proto_hdr_t hdr;

    args_len = fp_proto_ranges_encode(op, in, count, args);
    for (uint32_t i = 0; i < count; i++)
        data += in[i].length;
    if (op != FP_OP_WRITE && op != FP_OP_WRITEV)
        data = 0;
    hdr = data_hdr(op, (uint32_t)((int64_t)args_len + (int64_t)data + extra));
    *count_p = SENTINEL;
    *data_len_p = SENTINEL;
    return fp_proto_ranges_decode(&hdr, args, args_len, out, count_p, data_len_p);
}

static void test_ranges_round_trip(void **state)
{
    static fp_proto_range_t in[FP_PROTO_MAX_RANGES], out[FP_PROTO_MAX_RANGES];
    static const uint8_t vec_layout[8 + 24] = {
        2,    0,    0,    0,    0,    0,    0,    0,    /* count, reserved */
        0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, /* slab */
        0x00, 0x10, 0,    0,    0,    0,    0,    0x80, /* offset */
        0x00, 0x00, 0x01, 0,    0,    0,    0,    0};   /* length, reserved */
    uint8_t args[FP_PROTO_MAX_ARGS];
    uint32_t count, data_len;

    (void)state;
    in[0] = (fp_proto_range_t){
        .slab = 0x1122334455667788ull, .offset = 0x8000000000001000ull, .length = 65536};
    in[1] = (fp_proto_range_t){.slab = 2, .offset = 4096, .length = 1};
    in[2] = (fp_proto_range_t){.slab = 3, .offset = 0, .length = 4095};

    assert_int_equal(fp_proto_ranges_encode(FP_OP_READ, in, 1, args), 24);
    assert_int_equal(fp_proto_ranges_encode(FP_OP_READV, in, 2, args), 8 + 48);
    assert_memory_equal(args, vec_layout, sizeof(vec_layout));

    static const uint8_t ops[] = {FP_OP_READ, FP_OP_WRITE, FP_OP_READV, FP_OP_WRITEV};
    for (size_t k = 0; k < sizeof(ops); k++) {
        uint32_t n = (ops[k] == FP_OP_READ || ops[k] == FP_OP_WRITE) ? 1 : 3;

        memset(out, 0, sizeof(out));
        assert_int_equal(ranges_round(ops[k], in, n, 0, out, &count, &data_len), FP_OK);
        assert_int_equal(count, n);
        assert_int_equal(data_len, n == 1 ? 65536 : 65536 + 1 + 4095);
        for (uint32_t i = 0; i < n; i++) {
            assert_int_equal(out[i].slab, in[i].slab);
            assert_int_equal(out[i].offset, in[i].offset);
            assert_int_equal(out[i].length, in[i].length);
        }
    }

    /* The largest frames: 1024 ranges adding up to exactly FP_PROTO_MAX_DATA. */
    for (uint32_t i = 0; i < FP_PROTO_MAX_RANGES; i++)
        in[i] = (fp_proto_range_t){.slab = i,
                                   .offset = (uint64_t)i << 20,
                                   .length = FP_PROTO_MAX_DATA / FP_PROTO_MAX_RANGES};
    assert_int_equal(ranges_round(FP_OP_READV, in, FP_PROTO_MAX_RANGES, 0, out, &count, &data_len),
                     FP_OK);
    assert_int_equal(count, FP_PROTO_MAX_RANGES);
    assert_int_equal(data_len, FP_PROTO_MAX_DATA);
    assert_int_equal(out[FP_PROTO_MAX_RANGES - 1].offset, (uint64_t)(FP_PROTO_MAX_RANGES - 1)
                                                              << 20);
    assert_int_equal(ranges_round(FP_OP_WRITEV, in, FP_PROTO_MAX_RANGES, 0, out, &count, &data_len),
                     FP_OK);
    assert_int_equal(data_len, FP_PROTO_MAX_DATA);
    in[0].length = FP_PROTO_MAX_DATA;
    assert_int_equal(ranges_round(FP_OP_WRITE, in, 1, 0, out, &count, &data_len), FP_OK);
    assert_int_equal(data_len, FP_PROTO_MAX_DATA);
}

static void test_ranges_errors(void **state)
{
    static fp_proto_range_t in[FP_PROTO_MAX_RANGES], out[FP_PROTO_MAX_RANGES];
    uint8_t args[FP_PROTO_MAX_ARGS];
    uint32_t count, data_len, args_len;
    fp_proto_hdr_t hdr;

    (void)state;
    for (uint32_t i = 0; i < 4; i++)
        in[i] = (fp_proto_range_t){.slab = 1, .offset = 4096 * i, .length = 4096};

    /* An empty range, alone or among others. */
    in[1].length = 0;
    assert_int_equal(ranges_round(FP_OP_READ, in + 1, 1, 0, out, &count, &data_len),
                     FP_ERR_PROTOCOL);
    assert_int_equal(ranges_round(FP_OP_WRITEV, in, 3, 0, out, &count, &data_len), FP_ERR_PROTOCOL);
    assert_int_equal(count, SENTINEL);
    assert_int_equal(data_len, SENTINEL);
    in[1].length = 4096;

    /* The reserved word of a range. */
    args_len = fp_proto_ranges_encode(FP_OP_READV, in, 2, args);
    fp_proto_put_u32(args + 8 + 24 + 20, 1);
    hdr = data_hdr(FP_OP_READV, args_len);
    assert_int_equal(fp_proto_ranges_decode(&hdr, args, args_len, out, &count, &data_len),
                     FP_ERR_PROTOCOL);

    /* Data over FP_PROTO_MAX_DATA, in one range or in total. */
    in[0].length = FP_PROTO_MAX_DATA + 1;
    assert_int_equal(ranges_round(FP_OP_READ, in, 1, 0, out, &count, &data_len), FP_ERR_TOO_LARGE);
    in[0].length = 0xFFFFFFFFu;
    assert_int_equal(ranges_round(FP_OP_READ, in, 1, 0, out, &count, &data_len), FP_ERR_TOO_LARGE);
    in[0].length = FP_PROTO_MAX_DATA / 2;
    in[1].length = FP_PROTO_MAX_DATA / 2 + 1;
    assert_int_equal(ranges_round(FP_OP_READV, in, 2, 0, out, &count, &data_len), FP_ERR_TOO_LARGE);
    for (uint32_t i = 0; i < FP_PROTO_MAX_RANGES; i++)
        in[i] = (fp_proto_range_t){.slab = 1, .offset = 0, .length = 0xFFFFFFFFu};
    assert_int_equal(ranges_round(FP_OP_READV, in, FP_PROTO_MAX_RANGES, 0, out, &count, &data_len),
                     FP_ERR_TOO_LARGE);
    assert_int_equal(count, SENTINEL);

    /* The frame length must be args + data for writes, args alone for reads. */
    for (uint32_t i = 0; i < 4; i++)
        in[i] = (fp_proto_range_t){.slab = 1, .offset = 4096 * i, .length = 4096};
    assert_int_equal(ranges_round(FP_OP_WRITE, in, 1, -1, out, &count, &data_len), FP_ERR_PROTOCOL);
    assert_int_equal(ranges_round(FP_OP_WRITE, in, 1, 1, out, &count, &data_len), FP_ERR_PROTOCOL);
    assert_int_equal(ranges_round(FP_OP_WRITE, in, 1, -4096, out, &count, &data_len),
                     FP_ERR_PROTOCOL);
    assert_int_equal(ranges_round(FP_OP_WRITEV, in, 4, -1, out, &count, &data_len),
                     FP_ERR_PROTOCOL);
    assert_int_equal(ranges_round(FP_OP_WRITEV, in, 4, 4096, out, &count, &data_len),
                     FP_ERR_PROTOCOL);
    assert_int_equal(ranges_round(FP_OP_READ, in, 1, 1, out, &count, &data_len), FP_ERR_PROTOCOL);
    assert_int_equal(ranges_round(FP_OP_READ, in, 1, 4096, out, &count, &data_len),
                     FP_ERR_PROTOCOL);
    assert_int_equal(ranges_round(FP_OP_READV, in, 4, 1, out, &count, &data_len), FP_ERR_PROTOCOL);
    assert_int_equal(count, SENTINEL);

    /*
     * A count over FP_PROTO_MAX_RANGES is refused before a range is stored:
     * the caller's array has room for FP_PROTO_MAX_RANGES (ASan watches it).
     */
    {
        const uint32_t over = FP_PROTO_MAX_RANGES + 1;
        const uint32_t over_len = FP_PROTO_VEC_HDR + over * FP_PROTO_RANGE_SIZE;
        uint8_t *big = calloc(1, over_len);
        fp_proto_range_t *exact = calloc(FP_PROTO_MAX_RANGES, sizeof(*exact));

        assert_non_null(big);
        assert_non_null(exact);
        fp_proto_put_u32(big, over);
        for (uint32_t i = 0; i < over; i++) {
            uint8_t *r = big + FP_PROTO_VEC_HDR + i * FP_PROTO_RANGE_SIZE;

            fp_proto_put_u64(r, 1);
            fp_proto_put_u32(r + 16, 1);
        }
        hdr = data_hdr(FP_OP_READV, over_len);
        count = SENTINEL;
        assert_int_equal(fp_proto_ranges_decode(&hdr, big, over_len, exact, &count, &data_len),
                         FP_ERR_PROTOCOL);
        assert_int_equal(count, SENTINEL);
        free(exact);
        free(big);
    }

    /* args_len other than what fp_proto_args_size() gives. */
    args_len = fp_proto_ranges_encode(FP_OP_READV, in, 2, args);
    hdr = data_hdr(FP_OP_READV, args_len + 24);
    assert_int_equal(fp_proto_ranges_decode(&hdr, args, args_len + 24, out, &count, &data_len),
                     FP_ERR_PROTOCOL);
    hdr = data_hdr(FP_OP_READ, 24);
    assert_int_equal(fp_proto_ranges_decode(&hdr, args, 32, out, &count, &data_len),
                     FP_ERR_PROTOCOL);

    /* Not a data operation. */
    hdr = data_hdr(FP_OP_STATS, 24);
    assert_int_equal(fp_proto_ranges_decode(&hdr, args, 24, out, &count, &data_len),
                     FP_ERR_UNSUPPORTED);
}

static void test_hello_req(void **state)
{
    fp_proto_hello_req_t in = {.min_version = 1, .max_version = 1}, out;
    uint8_t buf[FP_PROTO_HELLO_REQ_SIZE + 8];

    (void)state;
    for (unsigned i = 0; i < FP_PROTO_KEY_SIZE; i++)
        in.client_key[i] = (uint8_t)(0xA0 + i);
    memset(buf, 0xEE, sizeof(buf));
    fp_proto_hello_req_encode(&in, buf);
    assert_int_equal(fp_proto_get_u16(buf), 1);
    assert_int_equal(fp_proto_get_u16(buf + 2), 1);
    assert_int_equal(fp_proto_get_u32(buf + 4), 0);
    assert_memory_equal(buf + 8, in.client_key, FP_PROTO_KEY_SIZE);
    assert_int_equal(buf[FP_PROTO_HELLO_REQ_SIZE], 0xEE); /* no overrun */
    assert_int_equal(fp_proto_hello_req_decode(buf, FP_PROTO_HELLO_REQ_SIZE, &out), FP_OK);
    assert_int_equal(out.min_version, 1);
    assert_int_equal(out.max_version, 1);
    assert_memory_equal(out.client_key, in.client_key, FP_PROTO_KEY_SIZE);

    /* A newer client that still speaks version 1. */
    in.max_version = 7;
    fp_proto_hello_req_encode(&in, buf);
    assert_int_equal(fp_proto_hello_req_decode(buf, FP_PROTO_HELLO_REQ_SIZE, &out), FP_OK);
    assert_int_equal(out.max_version, 7);

    /* No common version. */
    in.min_version = 2;
    in.max_version = 3;
    fp_proto_hello_req_encode(&in, buf);
    assert_int_equal(fp_proto_hello_req_decode(buf, FP_PROTO_HELLO_REQ_SIZE, &out), FP_ERR_VERSION);
    in.min_version = 0;
    in.max_version = 0;
    fp_proto_hello_req_encode(&in, buf);
    assert_int_equal(fp_proto_hello_req_decode(buf, FP_PROTO_HELLO_REQ_SIZE, &out), FP_ERR_VERSION);

    /* An empty range, a wrong size, reserved bits. */
    in.min_version = 3;
    in.max_version = 1;
    fp_proto_hello_req_encode(&in, buf);
    assert_int_equal(fp_proto_hello_req_decode(buf, FP_PROTO_HELLO_REQ_SIZE, &out),
                     FP_ERR_PROTOCOL);
    in.min_version = 1;
    fp_proto_hello_req_encode(&in, buf);
    assert_int_equal(fp_proto_hello_req_decode(buf, FP_PROTO_HELLO_REQ_SIZE - 1, &out),
                     FP_ERR_PROTOCOL);
    assert_int_equal(fp_proto_hello_req_decode(buf, FP_PROTO_HELLO_REQ_SIZE + 1, &out),
                     FP_ERR_PROTOCOL);
    assert_int_equal(fp_proto_hello_req_decode(buf, 0, &out), FP_ERR_PROTOCOL);
    buf[5] = 1;
    assert_int_equal(fp_proto_hello_req_decode(buf, FP_PROTO_HELLO_REQ_SIZE, &out),
                     FP_ERR_PROTOCOL);
}

static void test_hello_rep(void **state)
{
    fp_proto_hello_rep_t in = {.version = FP_PROTO_VERSION,
                               .flags = FP_PROTO_HELLO_AUTH_REQUIRED,
                               .node_id = 0xfedcba9876543210ull,
                               .slab_size = 1ull << 30,
                               .max_data = FP_PROTO_MAX_DATA,
                               .max_ranges = FP_PROTO_MAX_RANGES};
    fp_proto_hello_rep_t out;
    uint8_t buf[FP_PROTO_HELLO_REP_SIZE + 8];

    (void)state;
    for (unsigned i = 0; i < FP_PROTO_NONCE_SIZE; i++)
        in.nonce[i] = (uint8_t)i;
    memset(buf, 0xEE, sizeof(buf));
    fp_proto_hello_rep_encode(&in, buf);
    assert_int_equal(fp_proto_get_u32(buf + 4), 0);
    assert_int_equal(buf[FP_PROTO_HELLO_REP_SIZE], 0xEE);
    assert_int_equal(fp_proto_hello_rep_decode(buf, FP_PROTO_HELLO_REP_SIZE, &out), FP_OK);
    assert_int_equal(out.version, in.version);
    assert_int_equal(out.flags, FP_PROTO_HELLO_AUTH_REQUIRED);
    assert_int_equal(out.node_id, in.node_id);
    assert_memory_equal(out.nonce, in.nonce, FP_PROTO_NONCE_SIZE);
    assert_int_equal(out.slab_size, in.slab_size);
    assert_int_equal(out.max_data, in.max_data);
    assert_int_equal(out.max_ranges, in.max_ranges);

    /* The node chose a version the client does not speak. */
    in.version = 2;
    fp_proto_hello_rep_encode(&in, buf);
    assert_int_equal(fp_proto_hello_rep_decode(buf, FP_PROTO_HELLO_REP_SIZE, &out), FP_ERR_VERSION);
    in.version = 0;
    fp_proto_hello_rep_encode(&in, buf);
    assert_int_equal(fp_proto_hello_rep_decode(buf, FP_PROTO_HELLO_REP_SIZE, &out), FP_ERR_VERSION);
    in.version = FP_PROTO_VERSION;

    /* Zero limits, wrong sizes. */
    in.slab_size = 0;
    fp_proto_hello_rep_encode(&in, buf);
    assert_int_equal(fp_proto_hello_rep_decode(buf, FP_PROTO_HELLO_REP_SIZE, &out),
                     FP_ERR_PROTOCOL);
    in.slab_size = 4096;
    in.max_data = 0;
    fp_proto_hello_rep_encode(&in, buf);
    assert_int_equal(fp_proto_hello_rep_decode(buf, FP_PROTO_HELLO_REP_SIZE, &out),
                     FP_ERR_PROTOCOL);
    in.max_data = 4096;
    in.max_ranges = 0;
    fp_proto_hello_rep_encode(&in, buf);
    assert_int_equal(fp_proto_hello_rep_decode(buf, FP_PROTO_HELLO_REP_SIZE, &out),
                     FP_ERR_PROTOCOL);
    in.max_ranges = 1;
    fp_proto_hello_rep_encode(&in, buf);
    assert_int_equal(fp_proto_hello_rep_decode(buf, FP_PROTO_HELLO_REP_SIZE, &out), FP_OK);
    assert_int_equal(fp_proto_hello_rep_decode(buf, FP_PROTO_HELLO_REP_SIZE - 1, &out),
                     FP_ERR_PROTOCOL);
    assert_int_equal(fp_proto_hello_rep_decode(buf, FP_PROTO_HELLO_REP_SIZE + 1, &out),
                     FP_ERR_PROTOCOL);
}

/* The example frames of docs/protocol.md, byte for byte. */
static void test_spec_examples(void **state)
{
    static const uint8_t hello[FP_PROTO_HDR_SIZE + FP_PROTO_HELLO_REQ_SIZE] = {
        0x46, 0x50, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x41, 0x42, 0x43,
        0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f};
    static const uint8_t error_reply[FP_PROTO_HDR_SIZE] = {
        0x46, 0x50, 0x01, 0x10, 0x01, 0x00, 0x00, 0x00, 0x08, 0x07, 0x06, 0x05,
        0x04, 0x03, 0x02, 0x01, 0xf5, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t readv[FP_PROTO_HDR_SIZE + 56] = {
        0x46, 0x50, 0x01, 0x12, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x38, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    fp_proto_hello_req_t req = {.min_version = 1, .max_version = 1}, req_out;
    fp_proto_range_t ranges[2] = {{.slab = 3, .offset = 0x1000, .length = 16},
                                  {.slab = 3, .offset = 0x20000, .length = 8}};
    fp_proto_range_t out[FP_PROTO_MAX_RANGES];
    uint8_t buf[FP_PROTO_HDR_SIZE + FP_PROTO_MAX_ARGS];
    fp_proto_hdr_t hdr = {.version = 1, .op = FP_OP_HELLO, .id = 1, .length = 24};
    uint32_t args_len, count, data_len;

    (void)state;
    /* 2.2: HELLO request. */
    for (unsigned i = 0; i < FP_PROTO_KEY_SIZE; i++)
        req.client_key[i] = (uint8_t)(0x40 + i);
    fp_proto_hdr_encode(&hdr, buf);
    fp_proto_hello_req_encode(&req, buf + FP_PROTO_HDR_SIZE);
    assert_memory_equal(buf, hello, sizeof(hello));
    assert_int_equal(fp_proto_hdr_decode(hello, false, &hdr), FP_OK);
    assert_int_equal(fp_proto_hello_req_decode(hello + FP_PROTO_HDR_SIZE, hdr.length, &req_out),
                     FP_OK);
    assert_memory_equal(req_out.client_key, req.client_key, FP_PROTO_KEY_SIZE);

    /* 2.2: an error reply to a READ. */
    hdr = (fp_proto_hdr_t){.version = 1,
                           .op = FP_OP_READ,
                           .flags = FP_PROTO_FLAG_REPLY,
                           .id = 0x0102030405060708ull,
                           .status = FP_ERR_PERMISSION,
                           .length = 0};
    fp_proto_hdr_encode(&hdr, buf);
    assert_memory_equal(buf, error_reply, sizeof(error_reply));
    assert_int_equal(fp_proto_hdr_decode(error_reply, true, &hdr), FP_OK);
    assert_int_equal(hdr.status, -11);

    /* 5.9: READV of two ranges. */
    hdr = (fp_proto_hdr_t){.version = 1, .op = FP_OP_READV, .id = 7, .length = 56};
    fp_proto_hdr_encode(&hdr, buf);
    args_len = fp_proto_ranges_encode(FP_OP_READV, ranges, 2, buf + FP_PROTO_HDR_SIZE);
    assert_int_equal(args_len, 56);
    assert_memory_equal(buf, readv, sizeof(readv));
    assert_int_equal(fp_proto_hdr_decode(readv, false, &hdr), FP_OK);
    assert_int_equal(fp_proto_args_size(&hdr, readv + FP_PROTO_HDR_SIZE, 56, &args_len), FP_OK);
    assert_int_equal(
        fp_proto_ranges_decode(&hdr, readv + FP_PROTO_HDR_SIZE, args_len, out, &count, &data_len),
        FP_OK);
    assert_int_equal(count, 2);
    assert_int_equal(data_len, 24);
    assert_int_equal(out[1].offset, 0x20000);
}

/*
 * docs/protocol.md 5.1: "A client rejects the reply ... if reserved or an
 * unknown flags bit is not 0".
 */
static void test_hello_rep_reserved(void **state)
{
    fp_proto_hello_rep_t in = {.version = FP_PROTO_VERSION,
                               .slab_size = 1ull << 20,
                               .max_data = FP_PROTO_MAX_DATA,
                               .max_ranges = FP_PROTO_MAX_RANGES};
    fp_proto_hello_rep_t out;
    uint8_t buf[FP_PROTO_HELLO_REP_SIZE];

    (void)state;
    fp_proto_hello_rep_encode(&in, buf);
    assert_int_equal(fp_proto_hello_rep_decode(buf, sizeof(buf), &out), FP_OK);
    buf[6] = 1;
    assert_int_equal(fp_proto_hello_rep_decode(buf, sizeof(buf), &out), FP_ERR_PROTOCOL);
    in.flags = FP_PROTO_HELLO_AUTH_REQUIRED | 0x0002;
    fp_proto_hello_rep_encode(&in, buf);
    assert_int_equal(fp_proto_hello_rep_decode(buf, sizeof(buf), &out), FP_ERR_PROTOCOL);
    in.flags = 0x8000;
    fp_proto_hello_rep_encode(&in, buf);
    assert_int_equal(fp_proto_hello_rep_decode(buf, sizeof(buf), &out), FP_ERR_PROTOCOL);
}

/* The test vector of docs/protocol.md section 6 (also checked with Python's hmac). */
static const uint8_t kat_secret[] = "0123456789abcdef0123456789abcdef";
static const uint8_t kat_client_mac[FP_PROTO_MAC_SIZE] = {
    0x77, 0xdc, 0xf2, 0x18, 0x1c, 0x53, 0xb0, 0x4b, 0x96, 0x81, 0xec, 0x1f, 0xd1, 0x87, 0x14, 0x66,
    0x49, 0xdc, 0x83, 0x52, 0x09, 0xb0, 0xc3, 0x69, 0xe8, 0x4a, 0xcc, 0x15, 0x77, 0xc3, 0x54, 0xf8};
static const uint8_t kat_node_mac[FP_PROTO_MAC_SIZE] = {
    0x72, 0x41, 0x8e, 0x4e, 0x6d, 0xec, 0x91, 0xde, 0x8d, 0xd6, 0xae, 0x9b, 0xd1, 0x1d, 0x53, 0x13,
    0x22, 0xe0, 0xf2, 0xe9, 0x8a, 0x6d, 0x1d, 0x25, 0x73, 0xf9, 0x5d, 0xdf, 0x2c, 0x33, 0xed, 0xc8};

typedef struct auth_inputs {
    uint8_t secret[64];
    size_t secret_len;
    uint8_t node_nonce[FP_PROTO_NONCE_SIZE];
    uint8_t client_nonce[FP_PROTO_NONCE_SIZE];
    uint8_t client_key[FP_PROTO_KEY_SIZE];
} auth_inputs_t;

static void kat_inputs(auth_inputs_t *a)
{
    memset(a, 0, sizeof(*a));
    a->secret_len = sizeof(kat_secret) - 1;
    memcpy(a->secret, kat_secret, a->secret_len);
    for (unsigned i = 0; i < FP_PROTO_NONCE_SIZE; i++) {
        a->node_nonce[i] = (uint8_t)i;
        a->client_nonce[i] = (uint8_t)(0x20 + i);
    }
    for (unsigned i = 0; i < FP_PROTO_KEY_SIZE; i++)
        a->client_key[i] = (uint8_t)(0x40 + i);
}

static fp_status_t verify(fp_proto_auth_role_t role, const auth_inputs_t *a, const uint8_t *mac)
{
    return fp_proto_auth_verify(role, a->secret, a->secret_len, a->node_nonce, a->client_nonce,
                                a->client_key, mac);
}

static void test_auth_mac(void **state)
{
    uint8_t client_mac[FP_PROTO_MAC_SIZE], node_mac[FP_PROTO_MAC_SIZE], mac[FP_PROTO_MAC_SIZE];
    auth_inputs_t a, b;

    (void)state;
    kat_inputs(&a);
    assert_int_equal(fp_proto_auth_mac(FP_PROTO_AUTH_CLIENT, a.secret, a.secret_len, a.node_nonce,
                                       a.client_nonce, a.client_key, client_mac),
                     FP_OK);
    assert_int_equal(fp_proto_auth_mac(FP_PROTO_AUTH_NODE, a.secret, a.secret_len, a.node_nonce,
                                       a.client_nonce, a.client_key, node_mac),
                     FP_OK);
    assert_memory_equal(client_mac, kat_client_mac, FP_PROTO_MAC_SIZE);
    assert_memory_equal(node_mac, kat_node_mac, FP_PROTO_MAC_SIZE);

    /* The right secret verifies. */
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &a, client_mac), FP_OK);
    assert_int_equal(verify(FP_PROTO_AUTH_NODE, &a, node_mac), FP_OK);

    /* Swapped role: a reply cannot be replayed as a request, nor the reverse. */
    assert_int_equal(verify(FP_PROTO_AUTH_NODE, &a, client_mac), FP_ERR_AUTH);
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &a, node_mac), FP_ERR_AUTH);

    /* A wrong secret: one byte changed, one byte short, one byte more. */
    b = a;
    b.secret[5] ^= 0x01;
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &b, client_mac), FP_ERR_AUTH);
    b = a;
    b.secret_len--;
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &b, client_mac), FP_ERR_AUTH);
    b = a;
    b.secret[b.secret_len++] = 'x';
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &b, client_mac), FP_ERR_AUTH);

    /* Any change of the session: either nonce, swapped nonces, the client key. */
    b = a;
    b.node_nonce[31] ^= 0x80;
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &b, client_mac), FP_ERR_AUTH);
    assert_int_equal(verify(FP_PROTO_AUTH_NODE, &b, node_mac), FP_ERR_AUTH);
    b = a;
    b.client_nonce[0] ^= 0x01;
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &b, client_mac), FP_ERR_AUTH);
    assert_int_equal(verify(FP_PROTO_AUTH_NODE, &b, node_mac), FP_ERR_AUTH);
    b = a;
    memcpy(b.node_nonce, a.client_nonce, FP_PROTO_NONCE_SIZE);
    memcpy(b.client_nonce, a.node_nonce, FP_PROTO_NONCE_SIZE);
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &b, client_mac), FP_ERR_AUTH);
    b = a;
    b.client_key[7] ^= 0x40;
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &b, client_mac), FP_ERR_AUTH);
    assert_int_equal(verify(FP_PROTO_AUTH_NODE, &b, node_mac), FP_ERR_AUTH);

    /* A damaged MAC, in its first and last byte. */
    memcpy(mac, client_mac, sizeof(mac));
    mac[0] ^= 0x01;
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &a, mac), FP_ERR_AUTH);
    memcpy(mac, client_mac, sizeof(mac));
    mac[FP_PROTO_MAC_SIZE - 1] ^= 0x80;
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &a, mac), FP_ERR_AUTH);
    memset(mac, 0, sizeof(mac));
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &a, mac), FP_ERR_AUTH);

    /* A secret longer than the HMAC block (64 bytes) works too. */
    b = a;
    memset(b.secret, 'k', sizeof(b.secret));
    b.secret_len = sizeof(b.secret);
    assert_int_equal(fp_proto_auth_mac(FP_PROTO_AUTH_CLIENT, b.secret, b.secret_len, b.node_nonce,
                                       b.client_nonce, b.client_key, mac),
                     FP_OK);
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &b, mac), FP_OK);
    b.secret_len--;
    assert_int_equal(verify(FP_PROTO_AUTH_CLIENT, &b, mac), FP_ERR_AUTH);
}

static void test_random_and_names(void **state)
{
    uint8_t x[32], y[32], zero[32] = {0};

    (void)state;
    assert_int_equal(fp_proto_random(x, sizeof(x)), FP_OK);
    assert_int_equal(fp_proto_random(y, sizeof(y)), FP_OK);
    assert_memory_not_equal(x, y, sizeof(x));
    assert_memory_not_equal(x, zero, sizeof(x));

    assert_string_equal(fp_proto_op_name(FP_OP_HELLO), "HELLO");
    assert_string_equal(fp_proto_op_name(FP_OP_READV), "READV");
    assert_string_equal(fp_proto_op_name(FP_OP_SLAB_FREE), "SLAB_FREE");
    assert_string_equal(fp_proto_op_name(FP_OP_REGION_CREATE), "REGION_CREATE");
    assert_string_equal(fp_proto_op_name(FP_OP_REGION_OPEN), "REGION_OPEN");
    assert_string_equal(fp_proto_op_name(FP_OP_REGION_SLABS), "REGION_SLABS");
    assert_string_equal(fp_proto_op_name(FP_OP_REGION_DELETE), "REGION_DELETE");
    assert_string_equal(fp_proto_op_name(0), "?");
    assert_string_equal(fp_proto_op_name(255), "?");
    for (unsigned op = 0; op < 256; op++) {
        bool data =
            op == FP_OP_READ || op == FP_OP_WRITE || op == FP_OP_READV || op == FP_OP_WRITEV;

        assert_int_equal(fp_proto_op_is_data((uint8_t)op), data);
    }
}

/* ---- named regions ---- */

static void test_region_name_and_granule(void **state)
{
    char name[FP_PROTO_REGION_NAME_MAX + 1];

    (void)state;
    for (unsigned c = 0; c < 256; c++) {
        char ch = (char)c;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';

        assert_int_equal(fp_proto_region_name_valid(&ch, 1), ok);
    }
    memset(name, 'x', sizeof(name));
    assert_false(fp_proto_region_name_valid(name, 0));
    assert_true(fp_proto_region_name_valid(name, FP_PROTO_REGION_NAME_MAX));
    assert_false(fp_proto_region_name_valid(name, FP_PROTO_REGION_NAME_MAX + 1));
    name[100] = '\0';
    assert_false(fp_proto_region_name_valid(name, FP_PROTO_REGION_NAME_MAX));

    for (unsigned b = 0; b < 64; b++) {
        uint64_t g = 1ull << b;

        assert_int_equal(fp_proto_region_granule_valid(g), g >= 4096 && g <= (2u << 20));
        assert_false(fp_proto_region_granule_valid(g + 1));
        assert_false(fp_proto_region_granule_valid(g + g / 2));
    }
    assert_false(fp_proto_region_granule_valid(0));
    assert_false(fp_proto_region_granule_valid(12288));

    assert_int_equal(fp_proto_region_nslabs(1, 65536), 1);
    assert_int_equal(fp_proto_region_nslabs(65536, 65536), 1);
    assert_int_equal(fp_proto_region_nslabs(65537, 65536), 2);
    assert_int_equal(fp_proto_region_nslabs(UINT64_MAX, 1ull << 30), 1ull << 34);
    assert_int_equal(fp_proto_region_nslabs(5, 0), 0);
}

static void test_region_create_req(void **state)
{
    static const uint8_t expected[] = {0x05, 0x00, 0x30, 0x00,
                                       0x00, 0x00, 0x00, 0x00, /* size 0x300005 */
                                       0x00, 0x00, 0x01, 0x00, /* granule 64 KiB */
                                       0x01, 0x00, 0x00, 0x80, /* flags */
                                       0x03, 0x00, 0x00, 0x00, /* name_len 3, reserved */
                                       'a',  '.',  'b'};
    fp_proto_region_create_req_t in = {.size = 0x300005, .granule = 65536, .flags = 0x80000001u};
    fp_proto_region_create_req_t out;
    uint8_t buf[FP_PROTO_REGION_CREATE_REQ_MAX + 8];
    uint32_t len;

    (void)state;
    in.name.len = 3;
    memcpy(in.name.text, "a.b", 4);
    len = fp_proto_region_create_req_encode(&in, buf);
    assert_int_equal(len, sizeof(expected));
    assert_memory_equal(buf, expected, sizeof(expected));
    memset(&out, 0xee, sizeof(out));
    assert_int_equal(fp_proto_region_create_req_decode(buf, len, &out), FP_OK);
    assert_int_equal(out.size, in.size);
    assert_int_equal(out.granule, in.granule);
    assert_int_equal(out.flags, in.flags);
    assert_int_equal(out.name.len, 3);
    assert_string_equal(out.name.text, "a.b");

    /* Framing: FP_ERR_PROTOCOL, and nothing written. */
    memset(&out, 0xee, sizeof(out));
    assert_int_equal(fp_proto_region_create_req_decode(buf, 0, &out), FP_ERR_PROTOCOL);
    assert_int_equal(fp_proto_region_create_req_decode(buf, 19, &out), FP_ERR_PROTOCOL);
    assert_int_equal(fp_proto_region_create_req_decode(buf, len - 1, &out), FP_ERR_PROTOCOL);
    assert_int_equal(fp_proto_region_create_req_decode(buf, len + 1, &out), FP_ERR_PROTOCOL);
    buf[18] = 1;
    assert_int_equal(fp_proto_region_create_req_decode(buf, len, &out), FP_ERR_PROTOCOL);
    buf[18] = 0;
    buf[19] = 0x80;
    assert_int_equal(fp_proto_region_create_req_decode(buf, len, &out), FP_ERR_PROTOCOL);
    buf[19] = 0;
    assert_int_equal(out.size, 0xeeeeeeeeeeeeeeeeull);

    /* Values: FP_ERR_INVALID_PARAM. */
    buf[21] = '/';
    assert_int_equal(fp_proto_region_create_req_decode(buf, len, &out), FP_ERR_INVALID_PARAM);
    buf[21] = '.';
    fp_proto_put_u16(buf + 16, 0);
    assert_int_equal(fp_proto_region_create_req_decode(buf, 20, &out), FP_ERR_INVALID_PARAM);
    fp_proto_put_u16(buf + 16, 3);
    fp_proto_put_u64(buf, 0);
    assert_int_equal(fp_proto_region_create_req_decode(buf, len, &out), FP_ERR_INVALID_PARAM);
    fp_proto_put_u64(buf, UINT64_MAX); /* the node, not the decoder, knows its capacity */
    assert_int_equal(fp_proto_region_create_req_decode(buf, len, &out), FP_OK);
    fp_proto_put_u32(buf + 8, 2048);
    assert_int_equal(fp_proto_region_create_req_decode(buf, len, &out), FP_ERR_INVALID_PARAM);
    fp_proto_put_u32(buf + 8, 4u << 20);
    assert_int_equal(fp_proto_region_create_req_decode(buf, len, &out), FP_ERR_INVALID_PARAM);
    fp_proto_put_u32(buf + 8, 2u << 20);
    assert_int_equal(fp_proto_region_create_req_decode(buf, len, &out), FP_OK);

    /* The longest name; one more byte is invalid. */
    in.name.len = FP_PROTO_REGION_NAME_MAX;
    memset(in.name.text, 'q', FP_PROTO_REGION_NAME_MAX);
    len = fp_proto_region_create_req_encode(&in, buf);
    assert_int_equal(len, FP_PROTO_REGION_CREATE_REQ_MAX);
    assert_int_equal(fp_proto_region_create_req_decode(buf, len, &out), FP_OK);
    assert_int_equal(out.name.len, FP_PROTO_REGION_NAME_MAX);
    assert_int_equal(out.name.text[FP_PROTO_REGION_NAME_MAX], '\0');
    buf[len] = 'q';
    fp_proto_put_u16(buf + 16, FP_PROTO_REGION_NAME_MAX + 1);
    assert_int_equal(fp_proto_region_create_req_decode(buf, len + 1, &out), FP_ERR_INVALID_PARAM);
}

static void test_region_name_req(void **state)
{
    static const uint8_t expected[] = {0x05, 0x00, 0x00, 0x00, 'm', '-', '_', '9', 'Z'};
    fp_proto_region_name_t in = {.len = 5, .text = "m-_9Z"}, out;
    uint8_t buf[FP_PROTO_REGION_NAME_REQ_MAX + 8];
    uint32_t len;

    /* The example frame of docs/protocol.md, section 5.8. */
    static const uint8_t spec[] = {0x46, 0x50, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x21,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x09, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00,
                                   0x00, 0x6d, 0x2d, 0x5f, 0x39, 0x5a};
    fp_proto_hdr_t hdr = {.version = FP_PROTO_VERSION, .op = FP_OP_REGION_OPEN, .id = 0x21};
    uint8_t frame[FP_PROTO_HDR_SIZE + FP_PROTO_REGION_NAME_REQ_MAX];

    (void)state;
    len = fp_proto_region_name_req_encode(&in, buf);
    assert_int_equal(len, sizeof(expected));
    assert_memory_equal(buf, expected, sizeof(expected));
    hdr.length = fp_proto_region_name_req_encode(&in, frame + FP_PROTO_HDR_SIZE);
    fp_proto_hdr_encode(&hdr, frame);
    assert_int_equal(FP_PROTO_HDR_SIZE + hdr.length, sizeof(spec));
    assert_memory_equal(frame, spec, sizeof(spec));
    assert_int_equal(fp_proto_region_name_req_decode(buf, len, &out), FP_OK);
    assert_int_equal(out.len, 5);
    assert_string_equal(out.text, "m-_9Z");
    assert_int_equal(fp_proto_region_name_req_decode(buf, 3, &out), FP_ERR_PROTOCOL);
    assert_int_equal(fp_proto_region_name_req_decode(buf, len - 1, &out), FP_ERR_PROTOCOL);
    assert_int_equal(fp_proto_region_name_req_decode(buf, len + 1, &out), FP_ERR_PROTOCOL);
    buf[3] = 1;
    assert_int_equal(fp_proto_region_name_req_decode(buf, len, &out), FP_ERR_PROTOCOL);
    buf[3] = 0;
    buf[4] = ' ';
    assert_int_equal(fp_proto_region_name_req_decode(buf, len, &out), FP_ERR_INVALID_PARAM);
    fp_proto_put_u16(buf, 0);
    assert_int_equal(fp_proto_region_name_req_decode(buf, 4, &out), FP_ERR_INVALID_PARAM);
}

static void test_region_rep(void **state)
{
    fp_proto_region_rep_t in = {
        .region_id = (3ull << 32) | 9,
        .size = (5ull << 20) + 1,
        .granule = 4096,
        .flags = 7,
        .slab_size = 1u << 20,
        .nslabs = 6,
    };
    fp_proto_region_rep_t out;
    uint8_t buf[FP_PROTO_REGION_REP_SIZE + 8], good[FP_PROTO_REGION_REP_SIZE];

    (void)state;
    fp_proto_region_rep_encode(&in, buf);
    memcpy(good, buf, sizeof(good));
    assert_int_equal(fp_proto_get_u64(buf), in.region_id);
    assert_int_equal(fp_proto_get_u64(buf + 8), in.size);
    assert_int_equal(fp_proto_get_u32(buf + 16), 4096);
    assert_int_equal(fp_proto_get_u32(buf + 20), 7);
    assert_int_equal(fp_proto_get_u64(buf + 24), 1u << 20);
    assert_int_equal(fp_proto_get_u32(buf + 32), 6);
    assert_int_equal(fp_proto_get_u32(buf + 36), 0);
    assert_int_equal(fp_proto_region_rep_decode(buf, FP_PROTO_REGION_REP_SIZE, &out), FP_OK);
    assert_memory_equal(&out.region_id, &in.region_id, sizeof(in.region_id));
    assert_int_equal(out.size, in.size);
    assert_int_equal(out.granule, in.granule);
    assert_int_equal(out.flags, in.flags);
    assert_int_equal(out.slab_size, in.slab_size);
    assert_int_equal(out.nslabs, in.nslabs);

    assert_int_equal(fp_proto_region_rep_decode(buf, FP_PROTO_REGION_REP_SIZE - 1, &out),
                     FP_ERR_PROTOCOL);
    assert_int_equal(fp_proto_region_rep_decode(buf, FP_PROTO_REGION_REP_SIZE + 1, &out),
                     FP_ERR_PROTOCOL);
    /* Each of these corruptions alone must be refused. */
    static const struct {
        unsigned off, width;
        uint64_t value;
    } bad[] = {
        {36, 4, 1},                     /* reserved */
        {0, 8, 0},                      /* region id 0 */
        {8, 8, 0},                      /* size 0 */
        {16, 4, 8192 + 1},              /* granule */
        {16, 4, 0},         {24, 8, 0}, /* slab size 0 */
        {32, 4, 5},                     /* nslabs too few */
        {32, 4, 7},                     /* too many */
        {8, 8, 5ull << 20},             /* size that needs 5 slabs */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memcpy(buf, good, sizeof(good));
        if (bad[i].width == 8)
            fp_proto_put_u64(buf + bad[i].off, bad[i].value);
        else
            fp_proto_put_u32(buf + bad[i].off, (uint32_t)bad[i].value);
        assert_int_equal(fp_proto_region_rep_decode(buf, FP_PROTO_REGION_REP_SIZE, &out),
                         FP_ERR_PROTOCOL);
    }
}

static void test_region_slabs(void **state)
{
    fp_proto_region_slabs_req_t in = {.region_id = 0x0102030405060708ull, .first = 9, .count = 500};
    fp_proto_region_slabs_req_t out;
    static const uint8_t expected[] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,
                                       0x09, 0x00, 0x00, 0x00, 0xf4, 0x01, 0x00, 0x00};
    uint64_t ids[FP_PROTO_REGION_SLABS_MAX + 1], got[FP_PROTO_REGION_SLABS_MAX + 1];
    uint8_t buf[(FP_PROTO_REGION_SLABS_MAX + 1) * 8];

    (void)state;
    fp_proto_region_slabs_req_encode(&in, buf);
    assert_memory_equal(buf, expected, sizeof(expected));
    assert_int_equal(fp_proto_region_slabs_req_decode(buf, 16, &out), FP_OK);
    assert_int_equal(out.region_id, in.region_id);
    assert_int_equal(out.first, 9);
    assert_int_equal(out.count, 500);
    assert_int_equal(fp_proto_region_slabs_req_decode(buf, 15, &out), FP_ERR_PROTOCOL);
    assert_int_equal(fp_proto_region_slabs_req_decode(buf, 17, &out), FP_ERR_PROTOCOL);
    fp_proto_put_u32(buf + 12, 0);
    assert_int_equal(fp_proto_region_slabs_req_decode(buf, 16, &out), FP_ERR_PROTOCOL);
    fp_proto_put_u32(buf + 12, 501);
    assert_int_equal(fp_proto_region_slabs_req_decode(buf, 16, &out), FP_ERR_PROTOCOL);
    fp_proto_put_u32(buf + 12, 1);
    fp_proto_put_u32(buf + 8, UINT32_MAX); /* the node checks first against the region */
    assert_int_equal(fp_proto_region_slabs_req_decode(buf, 16, &out), FP_OK);

    for (uint32_t i = 0; i <= FP_PROTO_REGION_SLABS_MAX; i++)
        ids[i] = ((uint64_t)(i + 1) << 32) | i;
    assert_int_equal(fp_proto_region_slabs_rep_encode(ids, FP_PROTO_REGION_SLABS_MAX, buf),
                     FP_PROTO_REGION_SLABS_MAX * 8);
    assert_int_equal(fp_proto_region_slabs_rep_decode(buf, FP_PROTO_REGION_SLABS_MAX * 8,
                                                      FP_PROTO_REGION_SLABS_MAX, got),
                     FP_OK);
    assert_memory_equal(got, ids, FP_PROTO_REGION_SLABS_MAX * 8);
    assert_int_equal(fp_proto_region_slabs_rep_decode(buf, 16, 1, got), FP_ERR_PROTOCOL);
    assert_int_equal(fp_proto_region_slabs_rep_decode(buf, 0, 0, got), FP_ERR_PROTOCOL);
    fp_proto_region_slabs_rep_encode(ids, FP_PROTO_REGION_SLABS_MAX + 1, buf);
    assert_int_equal(fp_proto_region_slabs_rep_decode(buf, (FP_PROTO_REGION_SLABS_MAX + 1) * 8,
                                                      FP_PROTO_REGION_SLABS_MAX + 1, got),
                     FP_ERR_PROTOCOL);
    /* An id of 0 anywhere: refused, and nothing written. */
    memset(got, 0xab, sizeof(got));
    fp_proto_put_u64(buf + 8 * 7, 0);
    assert_int_equal(fp_proto_region_slabs_rep_decode(buf, 8 * 10, 10, got), FP_ERR_PROTOCOL);
    assert_int_equal(got[0], 0xababababababababull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hdr_round_trip),
        cmocka_unit_test(test_hdr_decode_errors),
        cmocka_unit_test(test_hdr_length_limits),
        cmocka_unit_test(test_args_size),
        cmocka_unit_test(test_ranges_round_trip),
        cmocka_unit_test(test_ranges_errors),
        cmocka_unit_test(test_hello_req),
        cmocka_unit_test(test_hello_rep),
        cmocka_unit_test(test_hello_rep_reserved),
        cmocka_unit_test(test_spec_examples),
        cmocka_unit_test(test_auth_mac),
        cmocka_unit_test(test_random_and_names),
        cmocka_unit_test(test_region_name_and_granule),
        cmocka_unit_test(test_region_create_req),
        cmocka_unit_test(test_region_name_req),
        cmocka_unit_test(test_region_rep),
        cmocka_unit_test(test_region_slabs),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
