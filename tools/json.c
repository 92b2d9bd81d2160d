/* SPDX-License-Identifier: MIT */
/* JSON strings for the farpool tool's --json output (see json.h). */
#include "json.h"

/* Bytes of the valid UTF-8 sequence at @s (1-4), or 0 if it is not one. */
static size_t utf8_length(const unsigned char *s)
{
    size_t n;
    uint32_t cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        n = 2;
        cp = s[0] & 0x1fu;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        n = 3;
        cp = s[0] & 0x0fu;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        n = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* the NUL that ends the string stops here too */
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    /* Overlong forms, surrogates and code points past U+10FFFF are not UTF-8. */
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void cli_json_string(FILE *out, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;

    fputc('"', out);
    while (*p != '\0') {
        size_t n;

        switch (*p) {
        case '"':
            fputs("\\\"", out);
            p++;
            continue;
        case '\\':
            fputs("\\\\", out);
            p++;
            continue;
        case '\n':
            fputs("\\n", out);
            p++;
            continue;
        case '\r':
            fputs("\\r", out);
            p++;
            continue;
        case '\t':
            fputs("\\t", out);
            p++;
            continue;
        default:
            break;
        }
        if (*p < 0x20 || *p == 0x7f) {
            fprintf(out, "\\u%04x", *p);
            p++;
            continue;
        }
        n = utf8_length(p);
        if (n == 0) {
            fputs("\\ufffd", out);
            p++;
            continue;
        }
        fwrite(p, 1, n, out);
        p += n;
    }
    fputc('"', out);
}

void cli_json_hex(FILE *out, const uint8_t *bytes, size_t len)
{
    fputc('"', out);
    for (size_t i = 0; i < len; i++)
        fprintf(out, "%02x", bytes[i]);
    fputc('"', out);
}
