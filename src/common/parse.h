/* SPDX-License-Identifier: MIT */
/*
 * Parsers of untrusted text: sizes ("512M", "4GiB") and endpoint addresses
 * ("127.0.0.1:7070", "[::1]:7070", "localhost:7070"). Pure functions, fuzzed
 * by tests/fuzz/fuzz_parse.c.
 *
 * Thread safety: all functions are reentrant.
 */
#ifndef FP_COMMON_PARSE_H
#define FP_COMMON_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <farpool/status.h>

/*
 * Parse a byte count: digits, then an optional binary unit K, M, G, T, P
 * (case-insensitive; "KB", "KiB" mean the same, 1024). No sign, no spaces, no
 * fraction. FP_ERR_INVALID_PARAM on junk, FP_ERR_OUT_OF_RANGE on overflow.
 */
fp_status_t fp_parse_size(const char *text, uint64_t *size_p);

/* Format @size as the shortest exact "64M"-style string (or plain bytes). */
void fp_format_size(uint64_t size, char *buf, size_t buflen);

#define FP_HOST_MAX 256

/*
 * Split "HOST:PORT" or "[V6]:PORT" into host and port. Port is 0-65535, decimal.
 * The host is copied (brackets removed) into @host (FP_HOST_MAX bytes).
 */
fp_status_t fp_addr_split(const char *text, char *host, uint16_t *port_p);

/** A resolved socket address. */
typedef struct fp_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} fp_addr_t;

/* Split and resolve @text (numeric or a name from /etc/hosts or DNS). */
fp_status_t fp_addr_parse(const char *text, fp_addr_t *addr_p);

/* True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104. */
bool fp_addr_is_loopback(const fp_addr_t *addr);

/* "127.0.0.1:7070" or "[::1]:7070". */
void fp_addr_format(const fp_addr_t *addr, char *buf, size_t buflen);

#endif /* FP_COMMON_PARSE_H */
