/* SPDX-License-Identifier: MIT */
/*
 * farpoold's settings: their defaults, the parsing of one setting from text
 * (a command-line option or a key of the configuration file, the same code
 * for both), and the configuration file itself (INI, parsed by inih).
 *
 * Every key of the file is a long option's name (listen, capacity, ...), its
 * value the option's argument. The file may hold one section, [farpoold], or
 * none; a key given twice, an unknown key, another section, a bad value or a
 * line that is no KEY = VALUE is an error naming FILE:LINE. Precedence is the
 * caller's: farpoold loads the file first, then sets the command line's
 * options over it.
 *
 * Thread safety: none; farpoold sets its settings up before starting threads.
 * fp_dconf_load() sets inih's process-wide options.
 */
#ifndef FP_SERVER_CONFIG_H
#define FP_SERVER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <farpool/status.h>

#define FP_DCONF_DEFAULT_LISTEN    "127.0.0.1:7070"
#define FP_DCONF_DEFAULT_CAPACITY  (1ull << 30)
#define FP_DCONF_DEFAULT_SLAB_SIZE (64ull << 20)

/* Longest reason fp_dconf_set() writes, and longest error fp_dconf_load() writes. */
#define FP_DCONF_ERR_MAX 1024

/* One daemon's settings. Strings are owned (malloc'd) by the struct, or NULL. */
typedef struct fp_dconf {
    char *listen;            /* HOST:PORT, checked; NULL: FP_DCONF_DEFAULT_LISTEN */
    uint64_t capacity;       /* bytes, > 0 */
    uint64_t slab_size;      /* bytes (checked against capacity by the caller) */
    char *secret_file;       /* path, or NULL */
    char *secret_credential; /* a name in $CREDENTIALS_DIRECTORY, or NULL */
    char *port_file;         /* path, or NULL */
    int handshake_timeout_ms;
    int idle_timeout_ms;
    int log_level;   /* FP_LOG_* */
    char *meta_dir;  /* path, or NULL */
    char *pool;      /* farpool://HOST:PORT, checked, or NULL */
    char *advertise; /* HOST:PORT, checked, or NULL */
    int dead_after_ms;
    uint32_t replicas; /* 0: automatic */
    uint64_t repair_rate;
    int lease_ttl_ms;
    char *metrics; /* HOST:PORT, checked (a bare PORT made 127.0.0.1:PORT), or NULL: none */
} fp_dconf_t;

/* Fill @cfg with the defaults. */
void fp_dconf_init(fp_dconf_t *cfg);

/* Free the strings @cfg owns; @cfg may then be given to fp_dconf_init() again. */
void fp_dconf_clear(fp_dconf_t *cfg);

/* True if @name is a setting (a key of the file, a long option with a value). */
int fp_dconf_is_key(const char *name);

/*
 * Set @name (a long option's name, e.g. "capacity") from @text. Returns
 * FP_OK; FP_ERR_NO_ENTRY if @name is no setting; FP_ERR_INVALID_PARAM if
 * @text is not a valid value, with what is expected written to @why
 * (FP_DCONF_ERR_MAX bytes, e.g. "expected a size such as 512M or 4G");
 * FP_ERR_NO_MEMORY. @cfg is unchanged on failure.
 */
fp_status_t fp_dconf_set(fp_dconf_t *cfg, const char *name, const char *text, char *why);

/*
 * Read the configuration file @path into @cfg, over what it holds. On
 * failure, writes to @err (FP_DCONF_ERR_MAX bytes) a message that starts
 * with "@path:LINE: " where a line is at fault, and returns
 * FP_ERR_NO_ENTRY (no such file) or FP_ERR_IO if it cannot be read,
 * FP_ERR_INVALID_PARAM for what it holds, FP_ERR_NO_MEMORY. @cfg may then
 * hold part of the file: the caller exits.
 */
fp_status_t fp_dconf_load(fp_dconf_t *cfg, const char *path, char *err);

/* Write @cfg to @out as a configuration file ("# key =" for a setting not set). */
void fp_dconf_print(const fp_dconf_t *cfg, FILE *out);

#endif /* FP_SERVER_CONFIG_H */
