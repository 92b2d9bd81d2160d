/* SPDX-License-Identifier: MIT */
/*
 * JSON output of the farpool tool: the few helpers its hand-written printing
 * needs. Strings that come from the pool (node addresses, which nothing
 * constrains) are escaped so that the output is always valid JSON.
 *
 * Thread safety: as stdio.
 */
#ifndef FP_TOOLS_JSON_H
#define FP_TOOLS_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Write @s to @out as a JSON string, quotes included: '"', '\\' and control
 * characters escaped, valid UTF-8 kept, each byte of an invalid sequence
 * written as U+FFFD.
 */
void cli_json_string(FILE *out, const char *s);

/* Write the @len bytes of @bytes as a JSON string of lowercase hex digits. */
void cli_json_hex(FILE *out, const uint8_t *bytes, size_t len);

#endif /* FP_TOOLS_JSON_H */
