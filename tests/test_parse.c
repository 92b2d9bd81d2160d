/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the text parsers (src/common/parse.c): sizes with binary units
 * and their formatting, the overflow and junk cases that must be refused with
 * the right status, and endpoint addresses ("HOST:PORT", "[V6]:PORT"): split,
 * resolve, loopback test and formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/parse.h"

static void check_size(const char *text, uint64_t expected)
{
    uint64_t size = 0;
    fp_status_t status = fp_parse_size(text, &size);

    if (status != FP_OK || size != expected)
        fail_msg("size \"%s\": status %d, %llu; expected %llu", text, (int)status,
                 (unsigned long long)size, (unsigned long long)expected);
}

static void check_size_error(const char *text, fp_status_t expected)
{
    uint64_t size = 12345;
    fp_status_t status = fp_parse_size(text, &size);

    if (status != expected || size != 12345) /* not written on failure */
        fail_msg("size \"%s\": status %d, %llu; expected status %d", text ? text : "(null)",
                 (int)status, (unsigned long long)size, (int)expected);
}

static void test_parse_size_valid(void **state)
{
    (void)state;
    check_size("0", 0);
    check_size("4096", 4096);
    check_size("64K", 64ull << 10);
    check_size("64k", 64ull << 10);
    check_size("512M", 512ull << 20);
    check_size("4G", 4ull << 30);
    check_size("4GiB", 4ull << 30);
    check_size("4gb", 4ull << 30);
    check_size("4GB", 4ull << 30);
    check_size("4gib", 4ull << 30);
    check_size("1T", 1ull << 40);
    check_size("2P", 2ull << 50);
    check_size("0M", 0);
    check_size("00064K", 64ull << 10);
    check_size("1B", 1);
    check_size("18446744073709551615", UINT64_MAX);
    check_size("16383P", 16383ull << 50);
    check_size("17179869183G", 17179869183ull << 30);
}

static void test_parse_size_overflow(void **state)
{
    (void)state;
    check_size_error("18446744073709551616", FP_ERR_OUT_OF_RANGE);
    check_size_error("99999999999999999999999", FP_ERR_OUT_OF_RANGE);
    check_size_error("17179869184G", FP_ERR_OUT_OF_RANGE);
    check_size_error("16384P", FP_ERR_OUT_OF_RANGE);
    check_size_error("16777216T", FP_ERR_OUT_OF_RANGE);
    /* E (exbi) is not a unit of parse.h (K, M, G, T, P): junk, not an overflow. */
    check_size_error("16E", FP_ERR_INVALID_PARAM);
}

static void test_parse_size_junk(void **state)
{
    static const char *const junk[] = {"",    "-1",    "1.5G", " 1G", "1G ",  "G",   "1X",  "+1",
                                       "1KK", "1GiBB", "1iB",  "1 K", "0x10", "1Bi", "1M!", "K1"};

    (void)state;
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        check_size_error(junk[i], FP_ERR_INVALID_PARAM);
    check_size_error(NULL, FP_ERR_INVALID_PARAM);
}

static void test_format_size(void **state)
{
    static const struct {
        uint64_t size;
        const char *text;
    } cases[] = {
        {0, "0"},
        {1, "1"},
        {1000, "1000"},
        {1024, "1K"},
        {1536, "1536"},
        {4096, "4K"},
        {64ull << 10, "64K"},
        {(1ull << 20) + 1024, "1025K"},
        {512ull << 20, "512M"},
        {4ull << 30, "4G"},
        {1ull << 40, "1T"},
        {3ull << 50, "3P"},
        {1ull << 60, "1024P"},
        {UINT64_MAX, "18446744073709551615"},
    };
    char buf[32];
    uint64_t back;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fp_format_size(cases[i].size, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].text);
        assert_int_equal(fp_parse_size(buf, &back), FP_OK);
        assert_int_equal(back, cases[i].size);
    }
    /* Round trips over powers of two and their neighbours. */
    for (unsigned shift = 0; shift < 64; shift++) {
        for (int d = -1; d <= 1; d++) {
            uint64_t size = (1ull << shift) + (uint64_t)(int64_t)d;

            fp_format_size(size, buf, sizeof(buf));
            assert_int_equal(fp_parse_size(buf, &back), FP_OK);
            assert_int_equal(back, size);
        }
    }
    /* A short buffer is truncated, not overrun. */
    memset(buf, 'x', sizeof(buf));
    fp_format_size(123456789, buf, 4);
    assert_string_equal(buf, "123");
    assert_int_equal(buf[4], 'x');
}

static void check_split(const char *text, const char *host, uint16_t port)
{
    char got_host[FP_HOST_MAX];
    uint16_t got_port = 0;
    fp_status_t status = fp_addr_split(text, got_host, &got_port);

    if (status != FP_OK || strcmp(got_host, host) != 0 || got_port != port)
        fail_msg("split \"%s\": status %d, \"%s\" %u", text, (int)status,
                 status == FP_OK ? got_host : "", (unsigned)got_port);
}

static void check_split_error(const char *text)
{
    char host[FP_HOST_MAX] = "untouched";
    uint16_t port = 4321;
    fp_status_t status = fp_addr_split(text, host, &port);

    if (status != FP_ERR_ADDRESS || port != 4321)
        fail_msg("split \"%s\": status %d, port %u; expected FP_ERR_ADDRESS",
                 text ? text : "(null)", (int)status, (unsigned)port);
}

static void test_addr_split(void **state)
{
    char long_host[FP_HOST_MAX + 16], host[FP_HOST_MAX];
    uint16_t port;

    (void)state;
    check_split("127.0.0.1:7070", "127.0.0.1", 7070);
    check_split("[::1]:7070", "::1", 7070);
    check_split("[fe80::1%eth0]:80", "fe80::1%eth0", 80);
    check_split("localhost:7070", "localhost", 7070);
    check_split("node-3.example.com:1", "node-3.example.com", 1);
    check_split("127.0.0.1:0", "127.0.0.1", 0);
    check_split("h:65535", "h", 65535);
    check_split("h:00080", "h", 80);

    check_split_error("h:65536");
    check_split_error("h:99999");
    check_split_error("h:100000");
    check_split_error("127.0.0.1");
    check_split_error("127.0.0.1:");
    check_split_error("::1:7070"); /* a bare IPv6 address needs brackets */
    check_split_error("::1");
    check_split_error(":7070");
    check_split_error("[]:7070");
    check_split_error("[::1]");
    check_split_error("[::1]7070");
    check_split_error("[::1:7070");
    check_split_error("h:-1");
    check_split_error("h:+80");
    check_split_error("h:80 ");
    check_split_error("h:8x");
    check_split_error("");
    check_split_error(NULL);

    /* The longest host that fits (FP_HOST_MAX - 1 bytes and a NUL), and one byte more. */
    memset(long_host, 'a', FP_HOST_MAX);
    strcpy(long_host + FP_HOST_MAX, ":1");
    check_split_error(long_host);
    strcpy(long_host + FP_HOST_MAX - 1, ":1");
    assert_int_equal(fp_addr_split(long_host, host, &port), FP_OK);
    assert_int_equal(strlen(host), FP_HOST_MAX - 1);
}

static void check_addr(const char *text, int family, bool loopback, const char *formatted)
{
    fp_addr_t addr;
    char buf[128];

    if (fp_addr_parse(text, &addr) != FP_OK)
        fail_msg("parse \"%s\" failed", text);
    fp_addr_format(&addr, buf, sizeof(buf));
    if ((family != AF_UNSPEC && addr.ss.ss_family != family) ||
        fp_addr_is_loopback(&addr) != loopback ||
        (formatted != NULL && strcmp(buf, formatted) != 0))
        fail_msg("parse \"%s\": family %d, loopback %d, \"%s\"", text, (int)addr.ss.ss_family,
                 (int)fp_addr_is_loopback(&addr), buf);
}

static void test_addr_parse_loopback(void **state)
{
    fp_addr_t addr;
    char buf[128];

    (void)state;
    check_addr("127.0.0.1:7070", AF_INET, true, "127.0.0.1:7070");
    check_addr("127.5.6.7:1", AF_INET, true, "127.5.6.7:1");
    check_addr("[::1]:7070", AF_INET6, true, "[::1]:7070");
    check_addr("10.0.0.1:7070", AF_INET, false, "10.0.0.1:7070");
    check_addr("128.0.0.1:7070", AF_INET, false, "128.0.0.1:7070");
    check_addr("126.255.255.255:1", AF_INET, false, NULL);
    check_addr("0.0.0.0:0", AF_INET, false, "0.0.0.0:0");
    check_addr("[::ffff:127.0.0.1]:9", AF_INET6, true, "[::ffff:127.0.0.1]:9");
    check_addr("[::ffff:10.0.0.1]:9", AF_INET6, false, NULL);
    check_addr("[2001:db8::1]:65535", AF_INET6, false, "[2001:db8::1]:65535");
    /* Either family, depending on /etc/hosts; both are loopback. */
    check_addr("localhost:7070", AF_UNSPEC, true, NULL);
    assert_int_equal(fp_addr_parse("localhost:7070", &addr), FP_OK);
    fp_addr_format(&addr, buf, sizeof(buf));
    assert_true(strcmp(buf, "127.0.0.1:7070") == 0 || strcmp(buf, "[::1]:7070") == 0);

    assert_int_equal(fp_addr_parse("127.0.0.1", &addr), FP_ERR_ADDRESS);
    assert_int_equal(fp_addr_parse("999.0.0.1:1", &addr), FP_ERR_ADDRESS);

    /* Neither family: not loopback, formatted as "?". */
    memset(&addr, 0, sizeof(addr));
    addr.ss.ss_family = AF_UNIX;
    assert_false(fp_addr_is_loopback(&addr));
    fp_addr_format(&addr, buf, sizeof(buf));
    assert_string_equal(buf, "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size_valid), cmocka_unit_test(test_parse_size_overflow),
        cmocka_unit_test(test_parse_size_junk),  cmocka_unit_test(test_format_size),
        cmocka_unit_test(test_addr_split),       cmocka_unit_test(test_addr_parse_loopback),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
