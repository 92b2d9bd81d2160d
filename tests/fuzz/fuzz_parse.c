/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the text parsers of src/common/parse.c: sizes
 * ("512M") and endpoint addresses ("[::1]:7070"). The input is copied into an
 * exact-size, NUL-terminated heap string so AddressSanitizer catches a read
 * past its end. fp_addr_parse() is not called: it resolves names (DNS).
 *
 * Round trips checked (abort() on a mismatch):
 *  - a size that parses formats (fp_format_size) to text that parses back to
 *    the same value; so does any 64-bit value taken from the input's bytes;
 *  - an address that splits, joined again as "HOST:PORT" or "[HOST]:PORT",
 *    splits to the same host and port.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_parse: check failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Longest fp_format_size() output: 20 digits + NUL; the rest is slack. */
#define SIZE_TEXT_MAX 32

static void check_size_roundtrip(uint64_t value)
{
    char text[SIZE_TEXT_MAX];
    uint64_t again = 0;
    fp_status_t status;

    fp_format_size(value, text, sizeof(text));
    CHECK(strlen(text) < sizeof(text) - 1);
    status = fp_parse_size(text, &again);
    if (status != FP_OK || again != value) {
        fprintf(stderr, "fuzz_parse: %" PRIu64 " formats as \"%s\", parses as %" PRIu64 " (%s)\n",
                value, text, again, fp_status_string(status));
        abort();
    }
}

static void fuzz_size(const char *text, const uint8_t *data, size_t size)
{
    uint64_t value;

    if (fp_parse_size(text, &value) == FP_OK)
        check_size_roundtrip(value);

    /* Formatting of arbitrary values, not only those a short string reaches. */
    if (size >= sizeof(value)) {
        memcpy(&value, data, sizeof(value));
        check_size_roundtrip(value);
    }
}

static void fuzz_addr(const char *text)
{
    char *host = malloc(FP_HOST_MAX);
    char *host2 = malloc(FP_HOST_MAX);
    char *joined;
    size_t host_len, joined_size;
    uint16_t port, port2;
    int n;

    CHECK(host != NULL && host2 != NULL);
    if (fp_addr_split(text, host, &port) != FP_OK)
        goto out;
    host_len = strlen(host);
    CHECK(host_len > 0 && host_len < FP_HOST_MAX);

    /* Brackets when the host has a colon or would be read as a bracket form. */
    joined_size = host_len + sizeof("[]:65535");
    joined = malloc(joined_size);
    CHECK(joined != NULL);
    if (strchr(host, ':') != NULL || host[0] == '[')
        n = snprintf(joined, joined_size, "[%s]:%u", host, (unsigned)port);
    else
        n = snprintf(joined, joined_size, "%s:%u", host, (unsigned)port);
    CHECK(n > 0 && (size_t)n < joined_size);
    if (fp_addr_split(joined, host2, &port2) != FP_OK || strcmp(host, host2) != 0 ||
        port != port2) {
        fprintf(stderr, "fuzz_parse: \"%s\" splits to (\"%s\", %u); \"%s\" does not\n", text, host,
                (unsigned)port, joined);
        abort();
    }
    free(joined);
out:
    free(host2);
    free(host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);

    CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    fuzz_size(text, data, size);
    fuzz_addr(text);
    free(text);
    return 0;
}
