/* SPDX-License-Identifier: MIT */
/*
 * farpoold's settings and its configuration file (config.h).
 *
 * DESIGN
 * One table, keys[], names every setting, its kind and where it lives in
 * fp_dconf_t; fp_dconf_set() parses a value by its kind, so the command line
 * and the file share every parser (fp_parse_size, fp_addr_parse, ...). The
 * file is parsed by inih (Debian's libinih, as built: lines of at most 197
 * characters, an indented line continues the value above, parsing goes on
 * after an error and returns the first error's line). inih does not tell a
 * handler its line, so the reader given to ini_parse_stream() counts the
 * lines it hands out (inih asks for one line a call), stops at the first
 * error found here, and checks what inih does not: that a section is
 * [farpoold], that no line is indented (no continued values: a value is one
 * line) and that no line was cut. Debian's inih exports variables that look
 * like run-time options (ini_max_line, ...), but the library reads its own
 * copies, not those a program links against: they are left alone.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "client/pool.h"
#include "common/log.h"
#include "common/parse.h"
#include "config.h"

#define SECTION "farpoold"

typedef enum setting_kind {
    KIND_PATH,       /* a non-empty string */
    KIND_CREDENTIAL, /* a file name: no '/', not "." or ".." */
    KIND_LISTEN,     /* HOST:PORT */
    KIND_ADVERTISE,  /* HOST:PORT, at most FP_POOL_ADDR_MAX bytes */
    KIND_POOL,       /* farpool://HOST:PORT */
    KIND_SIZE,       /* uint64_t bytes, > 0 unless KEY_ZERO_OK */
    KIND_SECONDS,    /* int milliseconds, whole seconds 1-86400 */
    KIND_REPLICAS,   /* uint32_t 1-4 */
    KIND_LEVEL,      /* int FP_LOG_* */
    KIND_METRICS,    /* HOST:PORT, or PORT alone for 127.0.0.1:PORT */
} setting_kind_t;

typedef struct setting {
    const char *name;
    setting_kind_t kind;
    size_t offset;   /* in fp_dconf_t */
    const char *why; /* what a bad value should have been */
} setting_t;

#define KEY(name, kind, field, why)                                                                \
    {                                                                                              \
        (name), (kind), offsetof(fp_dconf_t, field), (why)                                         \
    }

static const setting_t keys[] = {
    KEY("listen", KIND_LISTEN, listen, "expected HOST:PORT or [IPV6]:PORT"),
    KEY("capacity", KIND_SIZE, capacity, "expected a size such as 512M or 4G"),
    KEY("slab-size", KIND_SIZE, slab_size, "expected a size such as 64M"),
    KEY("secret-file", KIND_PATH, secret_file, "expected a file name"),
    KEY("secret-credential", KIND_CREDENTIAL, secret_credential,
        "expected a credential's name, without '/'"),
    KEY("port-file", KIND_PATH, port_file, "expected a file name"),
    KEY("handshake-timeout", KIND_SECONDS, handshake_timeout_ms, "seconds, 1-86400"),
    KEY("idle-timeout", KIND_SECONDS, idle_timeout_ms, "seconds, 1-86400"),
    KEY("log-level", KIND_LEVEL, log_level, "error, warn, info, debug, trace"),
    KEY("meta-dir", KIND_PATH, meta_dir, "expected a directory"),
    KEY("pool", KIND_POOL, pool, "expected farpool://HOST:PORT or etcd://HOST:PORT/PREFIX"),
    KEY("advertise", KIND_ADVERTISE, advertise, "expected HOST:PORT"),
    KEY("dead-after", KIND_SECONDS, dead_after_ms, "seconds, 1-86400"),
    KEY("replicas", KIND_REPLICAS, replicas, "1 to 4"),
    KEY("repair-rate", KIND_SIZE, repair_rate, "bytes per second, e.g. 256M"),
    KEY("lease-ttl", KIND_SECONDS, lease_ttl_ms, "seconds, 1-86400"),
    KEY("metrics", KIND_METRICS, metrics, "expected HOST:PORT, or PORT for 127.0.0.1:PORT"),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const level_names[] = {"error", "warn", "info", "debug", "trace"};

void fp_dconf_init(fp_dconf_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->capacity = FP_DCONF_DEFAULT_CAPACITY;
    cfg->slab_size = FP_DCONF_DEFAULT_SLAB_SIZE;
    cfg->handshake_timeout_ms = 5000;
    cfg->idle_timeout_ms = 300000;
    cfg->log_level = FP_LOG_INFO;
    cfg->dead_after_ms = 5000;
    cfg->repair_rate = 256ull << 20;
    cfg->lease_ttl_ms = 10000;
}

void fp_dconf_clear(fp_dconf_t *cfg)
{
    for (size_t i = 0; i < NKEYS; i++) {
        switch (keys[i].kind) {
        case KIND_PATH:
        case KIND_CREDENTIAL:
        case KIND_LISTEN:
        case KIND_ADVERTISE:
        case KIND_POOL:
        case KIND_METRICS: {
            char **s = (char **)((char *)cfg + keys[i].offset);

            free(*s);
            *s = NULL;
            break;
        }
        default:
            break;
        }
    }
}

static const setting_t *key_find(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    }
    return NULL;
}

int fp_dconf_is_key(const char *name)
{
    return key_find(name) != NULL;
}

/* Whole seconds 1-86400 (no unit) into milliseconds. */
static int parse_seconds(const char *text, int *ms_p)
{
    uint64_t v;

    if (fp_parse_size(text, &v) != FP_OK || v == 0 || v > 86400 || strpbrk(text, "kKmMgGtTpPbB"))
        return -1;
    *ms_p = (int)v * 1000;
    return 0;
}

/* A bare port, "9100", stands for 127.0.0.1:9100 (loopback unless said otherwise). */
static bool is_bare_port(const char *text)
{
    return text[0] != '\0' && strspn(text, "0123456789") == strlen(text) && strlen(text) <= 5;
}

/* Is @text a valid value of @key? Numbers are written to *@num_p. */
static int value_check(const setting_t *key, const char *text, uint64_t *num_p)
{
    char addr[FP_POOL_ADDR_MAX + 1];
    fp_addr_t a;
    int ms, level;

    switch (key->kind) {
    case KIND_PATH:
        return text[0] != '\0' ? 0 : -1;
    case KIND_CREDENTIAL:
        return text[0] != '\0' && strchr(text, '/') == NULL && strcmp(text, ".") != 0 &&
                       strcmp(text, "..") != 0 && strlen(text) <= 255
                   ? 0
                   : -1;
    case KIND_LISTEN:
        return fp_addr_parse(text, &a) == FP_OK ? 0 : -1;
    case KIND_ADVERTISE:
        return strlen(text) <= FP_POOL_ADDR_MAX && fp_addr_parse(text, &a) == FP_OK ? 0 : -1;
    case KIND_METRICS:
        if (is_bare_port(text)) {
            snprintf(addr, sizeof(addr), "127.0.0.1:%s", text);
            text = addr;
        }
        return fp_addr_parse(text, &a) == FP_OK ? 0 : -1;
    case KIND_POOL:
        return fp_pool_url_check(text) == FP_OK ? 0 : -1;
    case KIND_SIZE:
        if (fp_parse_size(text, num_p) != FP_OK)
            return -1;
        /* slab-size 0 is refused by the caller's power-of-two check */
        return *num_p != 0 || key->offset == offsetof(fp_dconf_t, slab_size) ? 0 : -1;
    case KIND_SECONDS:
        if (parse_seconds(text, &ms) != 0)
            return -1;
        *num_p = (uint64_t)ms;
        return 0;
    case KIND_REPLICAS:
        if (fp_parse_size(text, num_p) != FP_OK || *num_p < 1 || *num_p > 4 ||
            strpbrk(text, "kKmMgGtTpPbB"))
            return -1;
        return 0;
    case KIND_LEVEL:
        level = fp_log_level_parse(text);
        if (level < 0)
            return -1;
        *num_p = (uint64_t)level;
        return 0;
    }
    return -1;
}

fp_status_t fp_dconf_set(fp_dconf_t *cfg, const char *name, const char *text, char *why)
{
    const setting_t *key = key_find(name);
    void *field;
    uint64_t num = 0;
    char *copy, port[32];

    if (key == NULL)
        return FP_ERR_NO_ENTRY;
    snprintf(why, FP_DCONF_ERR_MAX, "%s", key->why);
    if (value_check(key, text, &num) != 0)
        return FP_ERR_INVALID_PARAM;
    why[0] = '\0';
    field = (char *)cfg + key->offset;
    switch (key->kind) {
    case KIND_PATH:
    case KIND_CREDENTIAL:
    case KIND_LISTEN:
    case KIND_ADVERTISE:
    case KIND_POOL:
    case KIND_METRICS:
        if (key->kind == KIND_METRICS && is_bare_port(text)) {
            snprintf(port, sizeof(port), "127.0.0.1:%s", text);
            text = port;
        }
        copy = strdup(text);
        if (copy == NULL)
            return FP_ERR_NO_MEMORY;
        free(*(char **)field);
        *(char **)field = copy;
        break;
    case KIND_SIZE:
        *(uint64_t *)field = num;
        break;
    case KIND_REPLICAS:
        *(uint32_t *)field = (uint32_t)num;
        break;
    case KIND_SECONDS:
    case KIND_LEVEL:
        *(int *)field = (int)num;
        break;
    }
    return FP_OK;
}

/* The state of one fp_dconf_load(). */
typedef struct load {
    fp_dconf_t *cfg;
    const char *path;
    FILE *file;
    int line;        /* lines handed to inih so far */
    int seen[NKEYS]; /* the line each key was set on, 0: not yet */
    int err_line;    /* the line of the first error found here, 0: none */
    fp_status_t err_status;
    char *err; /* FP_DCONF_ERR_MAX bytes */
} load_t;

static void load_fail(load_t *ld, fp_status_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void load_fail(load_t *ld, fp_status_t status, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (ld->err_line != 0)
        return;
    ld->err_line = ld->line;
    ld->err_status = status;
    /* a long message is cut short: it still starts with FILE:LINE */
    n = snprintf(ld->err, FP_DCONF_ERR_MAX, "%s:%d: ", ld->path, ld->line);
    if (n < 0 || n >= FP_DCONF_ERR_MAX)
        return;
    va_start(ap, fmt);
    vsnprintf(ld->err + n, FP_DCONF_ERR_MAX - (size_t)n, fmt, ap);
    va_end(ap);
}

/* A section header on @text must name farpoold's section. */
static void check_section(load_t *ld, const char *text)
{
    const char *p = text, *end;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '[')
        return;
    p++;
    end = strchr(p, ']');
    if (end == NULL)
        return; /* inih says it is malformed */
    if ((size_t)(end - p) != strlen(SECTION) || strncmp(p, SECTION, (size_t)(end - p)) != 0)
        load_fail(ld, FP_ERR_INVALID_PARAM,
                  "section [%.*s] is not farpoold's: the file holds [" SECTION "] or no section",
                  (int)(end - p), p);
}

/* inih's reader: one line a call, counted; a line too long to fit is an error. */
static char *load_read(char *buf, int num, void *arg)
{
    load_t *ld = arg;
    size_t len;

    if (ld->err_line != 0 || fgets(buf, num, ld->file) == NULL)
        return NULL;
    ld->line++;
    len = strlen(buf);
    if ((len == 0 || buf[len - 1] != '\n') && !feof(ld->file)) {
        /* fgets() stopped short of a newline: the buffer is full, or a NUL hid the rest */
        if (len + 1 < (size_t)num)
            load_fail(ld, FP_ERR_INVALID_PARAM, "a NUL byte in the line");
        else
            load_fail(ld, FP_ERR_INVALID_PARAM, "line longer than %d characters", num - 3);
        return NULL;
    }
    if ((buf[0] == ' ' || buf[0] == '\t') && buf[strspn(buf, " \t\r\n")] != '\0' &&
        strchr("#;", buf[strspn(buf, " \t")]) == NULL) {
        load_fail(ld, FP_ERR_INVALID_PARAM,
                  "an indented line: a key starts its line, and a value is one line");
        return NULL;
    }
    check_section(ld, buf);
    return ld->err_line != 0 ? NULL : buf;
}

static int load_handle(void *arg, const char *section, const char *name, const char *value)
{
    load_t *ld = arg;
    const setting_t *key;
    char why[FP_DCONF_ERR_MAX];
    fp_status_t status;
    size_t i;

    if (section[0] != '\0' && strcmp(section, SECTION) != 0) {
        load_fail(ld, FP_ERR_INVALID_PARAM, "section [%s] is not farpoold's", section);
        return 0;
    }
    key = key_find(name);
    if (key == NULL) {
        load_fail(ld, FP_ERR_INVALID_PARAM, "unknown key '%s'", name);
        return 0;
    }
    i = (size_t)(key - keys);
    if (ld->seen[i] != 0) {
        load_fail(ld, FP_ERR_INVALID_PARAM, "key '%s' given twice (first on line %d)", name,
                  ld->seen[i]);
        return 0;
    }
    status = fp_dconf_set(ld->cfg, name, value, why);
    if (status == FP_ERR_NO_MEMORY) {
        load_fail(ld, status, "out of memory");
        return 0;
    }
    if (status != FP_OK) {
        load_fail(ld, status, "invalid %s '%s' (%s)", name, value, why);
        return 0;
    }
    ld->seen[i] = ld->line;
    return 1;
}

fp_status_t fp_dconf_load(fp_dconf_t *cfg, const char *path, char *err)
{
    load_t ld;
    int rc;

    memset(&ld, 0, sizeof(ld));
    ld.cfg = cfg;
    ld.path = path;
    ld.err = err;
    err[0] = '\0';
    ld.file = fopen(path, "r");
    if (ld.file == NULL) {
        int e = errno;

        snprintf(err, FP_DCONF_ERR_MAX, "cannot read configuration file %s: %s", path, strerror(e));
        return e == ENOENT ? FP_ERR_NO_ENTRY : FP_ERR_IO;
    }
    rc = ini_parse_stream(load_read, &ld, load_handle, &ld);
    if (ld.err_line == 0 && ferror(ld.file)) {
        snprintf(err, FP_DCONF_ERR_MAX, "cannot read configuration file %s: %s", path,
                 strerror(errno));
        fclose(ld.file);
        return FP_ERR_IO;
    }
    fclose(ld.file);
    if (ld.err_line != 0 && (rc <= 0 || rc == ld.err_line))
        return ld.err_status;
    if (rc == -2) {
        snprintf(err, FP_DCONF_ERR_MAX, "%s: out of memory", path);
        return FP_ERR_NO_MEMORY;
    }
    if (rc != 0) {
        snprintf(err, FP_DCONF_ERR_MAX,
                 "%s:%d: expected KEY = VALUE, [" SECTION "], or a comment (# or ;)", path, rc);
        return FP_ERR_INVALID_PARAM;
    }
    return FP_OK;
}

void fp_dconf_print(const fp_dconf_t *cfg, FILE *out)
{
    char text[32];

    fprintf(out, "[" SECTION "]\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const void *field = (const char *)cfg + keys[i].offset;
        const char *name = keys[i].name;

        switch (keys[i].kind) {
        case KIND_PATH:
        case KIND_CREDENTIAL:
        case KIND_ADVERTISE:
        case KIND_POOL:
        case KIND_METRICS:
        case KIND_LISTEN: {
            const char *s = *(char *const *)field;

            if (s == NULL && keys[i].kind == KIND_LISTEN)
                s = FP_DCONF_DEFAULT_LISTEN;
            if (s != NULL)
                fprintf(out, "%s = %s\n", name, s);
            else
                fprintf(out, "# %s =\n", name);
            break;
        }
        case KIND_SIZE:
            fp_format_size(*(const uint64_t *)field, text, sizeof(text));
            fprintf(out, "%s = %s\n", name, text);
            break;
        case KIND_SECONDS:
            fprintf(out, "%s = %d\n", name, *(const int *)field / 1000);
            break;
        case KIND_REPLICAS:
            if (*(const uint32_t *)field != 0)
                fprintf(out, "%s = %u\n", name, (unsigned)*(const uint32_t *)field);
            else
                fprintf(out, "# %s =\n", name);
            break;
        case KIND_LEVEL:
            fprintf(out, "%s = %s\n", name, level_names[*(const int *)field]);
            break;
        }
    }
}
