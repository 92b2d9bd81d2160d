/* SPDX-License-Identifier: MIT */
/*
 * The pool's metadata store on embedded SQLite: the "sqlite" backend of
 * meta.h, one database file, DIR/pool.db.
 *
 * DESIGN
 * Files. DIR is created mode 0700 if missing (its parent is not); pool.db is
 * created mode 0600 before SQLite opens it (SQLite would create it 0644 less
 * the umask), and a pool.db readable by group or others is narrowed to 0600
 * with a warning: it holds the client keys that own the regions' slabs.
 * SQLite gives its -wal file the database's mode.
 *
 * Durability. The database runs in WAL mode with synchronous=FULL: a commit
 * returns once the WAL is fsync'ed, so a change is on disk when its call
 * returns, and a crash loses no acknowledged change. The connection holds an
 * exclusive lock for its whole life (locking_mode=EXCLUSIVE, taken at open),
 * so a second farpoold on the same DIR fails at open with FP_ERR_IN_USE
 * instead of both writing; with that lock SQLite keeps the WAL index in
 * memory and makes no -shm file.
 *
 * Transactions. Every op is one transaction. A single statement is its own;
 * region_add and region_delete, which write two tables, run between BEGIN
 * IMMEDIATE and COMMIT and roll back on any failure, so a name clash or a bad
 * replica leaves nothing behind.
 *
 * Schema. PRAGMA application_id marks the file as farpool's and PRAGMA
 * user_version holds the schema version (SCHEMA_VERSION). A new, empty file
 * gets the schema; a database of another application, of a newer schema, or
 * failing PRAGMA quick_check is refused at open with a line that says which
 * (quick_check reads the whole file: milliseconds for a pool's metadata).
 * Ids are INTEGER PRIMARY KEY AUTOINCREMENT, so a deleted id is never given
 * again. Keys and checksums are blobs; a region without a checksum has NULL.
 * Unsigned 64-bit fields are stored as SQLite's signed 64-bit integers, bit
 * for bit, and read back the same (ORDER BY compares them signed, which only
 * matters past 2^63, far beyond any id the store gives).
 *
 * Statements. Every statement is prepared once at open, with bound
 * parameters only: no SQL is ever built from data. Blobs and text are bound
 * SQLITE_STATIC (no copy) and unbound (sqlite3_clear_bindings) before the
 * call returns.
 *
 * Errors. A constraint a caller can hit (a taken name, a replica of a missing
 * region, the same replica twice in one region_add) is returned as
 * FP_ERR_EXISTS, FP_ERR_NO_ENTRY or FP_ERR_INVALID_PARAM and logged at debug
 * level only; any other SQLite failure is logged here with the file, what was
 * being done and SQLite's message, and returned as FP_ERR_IO.
 *
 * Thread safety: a store is used by one thread at a time (meta.h); the
 * connection is opened SQLITE_OPEN_NOMUTEX.
 */
#include "meta.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#define SCHEMA_VERSION 1
#define APPLICATION_ID 1179667780 /* 0x46504d44, "FPMD": farpool metadata */
#define DB_NAME        "pool.db"

#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x) /* a macro's value as a string literal */

/* Version 1 of the schema; run in one transaction on a new database. */
static const char schema_sql[] = "CREATE TABLE node ("
                                 " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                 " node_id INTEGER NOT NULL,"
                                 " addr TEXT NOT NULL,"
                                 " capacity INTEGER NOT NULL,"
                                 " used INTEGER NOT NULL,"
                                 " slab_size INTEGER NOT NULL,"
                                 " state INTEGER NOT NULL,"
                                 " joined_ms INTEGER NOT NULL,"
                                 " seen_ms INTEGER NOT NULL);"
                                 "CREATE TABLE region ("
                                 " id INTEGER PRIMARY KEY AUTOINCREMENT,"
                                 " name TEXT NOT NULL,"
                                 " size INTEGER NOT NULL,"
                                 " granule INTEGER NOT NULL,"
                                 " flags INTEGER NOT NULL,"
                                 " replicas INTEGER NOT NULL,"
                                 " state INTEGER NOT NULL,"
                                 " slab_size INTEGER NOT NULL,"
                                 " nslabs INTEGER NOT NULL,"
                                 " client_key BLOB NOT NULL,"
                                 " fixed_addr INTEGER NOT NULL,"
                                 " checksum BLOB," /* NULL: none */
                                 " created_ms INTEGER NOT NULL,"
                                 " lease_id INTEGER NOT NULL,"
                                 " lease_holder BLOB NOT NULL,"
                                 " lease_expires_ms INTEGER NOT NULL);"
                                 /* Published regions own their names; unpublished ones
                                  * (a put in progress) may share one. */
                                 "CREATE UNIQUE INDEX region_name ON region (name)"
                                 " WHERE state = 1;"
                                 "CREATE TABLE replica ("
                                 " region INTEGER NOT NULL REFERENCES region (id),"
                                 " idx INTEGER NOT NULL,"
                                 " node INTEGER NOT NULL,"
                                 " state INTEGER NOT NULL,"
                                 " slab INTEGER NOT NULL,"
                                 " PRIMARY KEY (region, idx, node)) WITHOUT ROWID;"
                                 "CREATE TABLE counter ("
                                 " name TEXT PRIMARY KEY NOT NULL,"
                                 " value INTEGER NOT NULL) WITHOUT ROWID;";

/* Mark the file as farpool's, of this schema version; run in the same transaction. */
#define SCHEMA_APP_SQL     "PRAGMA application_id = " STRINGIFY(APPLICATION_ID)
#define SCHEMA_VERSION_SQL "PRAGMA user_version = " STRINGIFY(SCHEMA_VERSION)

/* Column lists, shared by the INSERTs, UPDATEs and SELECTs below. */
#define NODE_COLS "node_id, addr, capacity, used, slab_size, state, joined_ms, seen_ms"
#define REGION_COLS                                                                                \
    "name, size, granule, flags, replicas, state, slab_size, nslabs, client_key, fixed_addr, "     \
    "checksum, created_ms, lease_id, lease_holder, lease_expires_ms"

typedef enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_NODE_INSERT,
    ST_NODE_UPDATE,
    ST_NODE_LIST,
    ST_REGION_INSERT,
    ST_REGION_UPDATE,
    ST_REGION_DELETE,
    ST_REGION_LIST,
    ST_REPLICA_INSERT,
    ST_REPLICA_UPSERT,
    ST_REPLICA_DELETE,
    ST_REPLICA_DELETE_REGION,
    ST_REPLICA_LIST,
    ST_COUNTER_GET,
    ST_COUNTER_PUT,
    ST_COUNT
} stmt_id_t;

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_NODE_INSERT] = "INSERT INTO node (" NODE_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [ST_NODE_UPDATE] = "UPDATE node SET node_id = ?1, addr = ?2, capacity = ?3, used = ?4,"
                       " slab_size = ?5, state = ?6, joined_ms = ?7, seen_ms = ?8 WHERE id = ?9",
    [ST_NODE_LIST] = "SELECT id, " NODE_COLS " FROM node ORDER BY id",
    [ST_REGION_INSERT] = "INSERT INTO region (" REGION_COLS ") VALUES"
                         " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
    [ST_REGION_UPDATE] = "UPDATE region SET name = ?1, size = ?2, granule = ?3, flags = ?4,"
                         " replicas = ?5, state = ?6, slab_size = ?7, nslabs = ?8,"
                         " client_key = ?9, fixed_addr = ?10, checksum = ?11, created_ms = ?12,"
                         " lease_id = ?13, lease_holder = ?14, lease_expires_ms = ?15"
                         " WHERE id = ?16",
    [ST_REGION_DELETE] = "DELETE FROM region WHERE id = ?1",
    [ST_REGION_LIST] = "SELECT id, " REGION_COLS " FROM region ORDER BY id",
    [ST_REPLICA_INSERT] = "INSERT INTO replica (region, idx, node, state, slab)"
                          " VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_REPLICA_UPSERT] = "INSERT INTO replica (region, idx, node, state, slab)"
                          " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (region, idx, node)"
                          " DO UPDATE SET state = excluded.state, slab = excluded.slab",
    [ST_REPLICA_DELETE] = "DELETE FROM replica WHERE region = ?1 AND idx = ?2 AND node = ?3",
    [ST_REPLICA_DELETE_REGION] = "DELETE FROM replica WHERE region = ?1",
    [ST_REPLICA_LIST] = "SELECT region, idx, node, state, slab FROM replica"
                        " ORDER BY region, idx, node",
    [ST_COUNTER_GET] = "SELECT value FROM counter WHERE name = ?1",
    [ST_COUNTER_PUT] = "INSERT INTO counter (name, value) VALUES (?1, ?2)"
                       " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
};

typedef struct meta_sqlite {
    fp_meta_store_t base; /* first: the handle the callers hold */
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT];
    char path[PATH_MAX]; /* DIR/pool.db, for log lines */
} meta_sqlite_t;

static meta_sqlite_t *ms_of(fp_meta_store_t *store)
{
    return (meta_sqlite_t *)store;
}

/* ---- errors ---- */

/* Log SQLite's last error on the connection while doing @what; FP_ERR_IO. */
static fp_status_t db_fail(const meta_sqlite_t *ms, const char *what)
{
    fp_error(ms->base.log, "meta store %s: cannot %s: %s (sqlite error %d)", ms->path, what,
             sqlite3_errmsg(ms->db), sqlite3_extended_errcode(ms->db));
    return FP_ERR_IO;
}

/*
 * The status for a failed step (@rc) of a statement doing @what: the
 * constraints a caller can break map to their status, the rest is logged.
 */
static fp_status_t step_fail(const meta_sqlite_t *ms, int rc, const char *what)
{
    fp_status_t status;

    switch (rc) {
    case SQLITE_CONSTRAINT_UNIQUE:
        status = FP_ERR_EXISTS;
        break;
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        status = FP_ERR_NO_ENTRY;
        break;
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        status = FP_ERR_INVALID_PARAM;
        break;
    default:
        return db_fail(ms, what);
    }
    fp_debug(ms->base.log, "meta store %s: cannot %s: %s", ms->path, what, sqlite3_errmsg(ms->db));
    return status;
}

/* ---- statements ---- */

/* Make @st ready for its next use: reset, and drop the bound buffers. */
static void stmt_finish(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Run @st, which returns no rows, to completion; the status, logged on failure. */
static fp_status_t stmt_run(const meta_sqlite_t *ms, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    fp_status_t status = rc == SQLITE_DONE ? FP_OK : step_fail(ms, rc, what);

    stmt_finish(st);
    return status;
}

static int bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    return sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static int bind_blob(sqlite3_stmt *st, int i, const void *data, size_t len)
{
    return sqlite3_bind_blob(st, i, data, (int)len, SQLITE_STATIC);
}

static int bind_text(sqlite3_stmt *st, int i, const char *text)
{
    return sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
}

static uint64_t col_u64(sqlite3_stmt *st, int i)
{
    return (uint64_t)sqlite3_column_int64(st, i);
}

/* Column @i as a 32-bit field into *@out; false if out of range. */
static bool col_u32(sqlite3_stmt *st, int i, uint32_t *out)
{
    sqlite3_int64 v = sqlite3_column_int64(st, i);

    if (v < 0 || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* Column @i as text into @out (@size bytes, NUL included); false if NULL or too long. */
static bool col_text(sqlite3_stmt *st, int i, char *out, size_t size)
{
    const unsigned char *text = sqlite3_column_text(st, i);
    size_t len = (size_t)sqlite3_column_bytes(st, i);

    if (text == NULL || len >= size)
        return false;
    memcpy(out, text, len);
    out[len] = '\0';
    return true;
}

/* Column @i as a blob of exactly @size bytes into @out; false otherwise. */
static bool col_blob(sqlite3_stmt *st, int i, uint8_t *out, size_t size)
{
    const void *data = sqlite3_column_blob(st, i);

    if (data == NULL || (size_t)sqlite3_column_bytes(st, i) != size)
        return false;
    memcpy(out, data, size);
    return true;
}

/* ---- transactions ---- */

static fp_status_t tx_begin(meta_sqlite_t *ms)
{
    return stmt_run(ms, ms->stmt[ST_BEGIN], "begin a transaction");
}

/* Roll back the open transaction, if SQLite has not already. */
static void tx_rollback(meta_sqlite_t *ms)
{
    if (sqlite3_get_autocommit(ms->db))
        return;
    stmt_run(ms, ms->stmt[ST_ROLLBACK], "roll back a transaction");
}

/* Commit the open transaction; on failure it is rolled back. */
static fp_status_t tx_commit(meta_sqlite_t *ms)
{
    fp_status_t status = stmt_run(ms, ms->stmt[ST_COMMIT], "commit a transaction");

    if (status != FP_OK)
        tx_rollback(ms);
    return status;
}

/* ---- lists ---- */

/* Make room in *@array (*@cap elements of @elem bytes) for element @count. */
static fp_status_t list_grow(void **array, size_t *cap, size_t count, size_t elem)
{
    size_t ncap;
    void *grown;

    if (count < *cap)
        return FP_OK;
    ncap = *cap == 0 ? 16 : *cap * 2;
    if (ncap > SIZE_MAX / elem)
        return FP_ERR_NO_MEMORY;
    grown = realloc(*array, ncap * elem);
    if (grown == NULL)
        return FP_ERR_NO_MEMORY;
    *array = grown;
    *cap = ncap;
    return FP_OK;
}

/* Reads the current row of a list statement into @out; false if the row is corrupt. */
typedef bool (*row_read_func_t)(sqlite3_stmt *st, void *out);

/*
 * Run list statement @id and read every row with @read into a malloc'd array
 * of @elem-byte elements (*@array_p; NULL when empty) of *@count_p elements.
 */
static fp_status_t list_run(meta_sqlite_t *ms, stmt_id_t id, size_t elem, row_read_func_t read,
                            const char *what, void **array_p, size_t *count_p)
{
    sqlite3_stmt *st = ms->stmt[id];
    fp_status_t status = FP_OK;
    void *array = NULL;
    size_t count = 0, cap = 0;
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        status = list_grow(&array, &cap, count, elem);
        if (status != FP_OK) {
            fp_error(ms->base.log, "meta store %s: cannot %s: out of memory", ms->path, what);
            break;
        }
        if (!read(st, (char *)array + count * elem)) {
            fp_error(ms->base.log, "meta store %s: cannot %s: row %zu is corrupt", ms->path, what,
                     count + 1);
            status = FP_ERR_IO;
            break;
        }
        count++;
    }
    if (status == FP_OK && rc != SQLITE_DONE)
        status = db_fail(ms, what);
    stmt_finish(st);
    if (status != FP_OK) {
        free(array);
        return status;
    }
    *array_p = array;
    *count_p = count;
    return FP_OK;
}

/* ---- nodes ---- */

/* Bind @node's fields to ?1..?8 (NODE_COLS). */
static int node_bind(sqlite3_stmt *st, const fp_meta_node_t *node)
{
    int rc = bind_u64(st, 1, node->node_id);

    if (rc == SQLITE_OK)
        rc = bind_text(st, 2, node->addr);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 3, node->capacity);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 4, node->used);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 5, node->slab_size);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 6, node->state);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 7, node->joined_ms);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 8, node->seen_ms);
    return rc;
}

static bool node_read(sqlite3_stmt *st, void *out)
{
    fp_meta_node_t *node = out;

    memset(node, 0, sizeof(*node));
    node->id = col_u64(st, 0);
    node->node_id = col_u64(st, 1);
    node->capacity = col_u64(st, 3);
    node->used = col_u64(st, 4);
    node->slab_size = col_u64(st, 5);
    node->joined_ms = col_u64(st, 7);
    node->seen_ms = col_u64(st, 8);
    return col_text(st, 2, node->addr, sizeof(node->addr)) && col_u32(st, 6, &node->state);
}

static fp_status_t sqlite_node_put(fp_meta_store_t *store, fp_meta_node_t *node)
{
    meta_sqlite_t *ms = ms_of(store);
    sqlite3_stmt *st;
    fp_status_t status;

    if (node == NULL || memchr(node->addr, '\0', sizeof(node->addr)) == NULL)
        return FP_ERR_INVALID_PARAM;
    st = ms->stmt[node->id == 0 ? ST_NODE_INSERT : ST_NODE_UPDATE];
    if (node_bind(st, node) != SQLITE_OK ||
        (node->id != 0 && bind_u64(st, 9, node->id) != SQLITE_OK))
        status = db_fail(ms, "bind a member's fields");
    else
        status = FP_OK;
    if (status != FP_OK) {
        stmt_finish(st);
        return status;
    }
    status = stmt_run(ms, st, node->id == 0 ? "add a member" : "update a member");
    if (status != FP_OK)
        return status;
    if (node->id == 0) {
        node->id = (uint64_t)sqlite3_last_insert_rowid(ms->db);
    } else if (sqlite3_changes(ms->db) == 0) {
        fp_debug(ms->base.log, "meta store %s: no member %llu to update", ms->path,
                 (unsigned long long)node->id);
        return FP_ERR_NO_ENTRY;
    }
    return FP_OK;
}

static fp_status_t sqlite_node_list(fp_meta_store_t *store, fp_meta_node_t **nodes_p,
                                    size_t *count_p)
{
    if (nodes_p == NULL || count_p == NULL)
        return FP_ERR_INVALID_PARAM;
    return list_run(ms_of(store), ST_NODE_LIST, sizeof(**nodes_p), node_read, "list the members",
                    (void **)nodes_p, count_p);
}

/* ---- regions ---- */

/* Bind @region's fields to ?1..?15 (REGION_COLS). */
static int region_bind(sqlite3_stmt *st, const fp_meta_region_t *r)
{
    int rc = bind_text(st, 1, r->name);

    if (rc == SQLITE_OK)
        rc = bind_u64(st, 2, r->size);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 3, r->granule);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 4, r->flags);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 5, r->replicas);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 6, r->state);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 7, r->slab_size);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 8, r->nslabs);
    if (rc == SQLITE_OK)
        rc = bind_blob(st, 9, r->key, sizeof(r->key));
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 10, r->fixed_addr);
    if (rc == SQLITE_OK)
        rc = r->has_checksum ? bind_blob(st, 11, r->checksum, sizeof(r->checksum))
                             : sqlite3_bind_null(st, 11);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 12, r->created_ms);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 13, r->lease_id);
    if (rc == SQLITE_OK)
        rc = bind_blob(st, 14, r->lease_holder, sizeof(r->lease_holder));
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 15, r->lease_expires_ms);
    return rc;
}

static bool region_read(sqlite3_stmt *st, void *out)
{
    fp_meta_region_t *r = out;
    bool ok;

    memset(r, 0, sizeof(*r));
    r->id = col_u64(st, 0);
    r->size = col_u64(st, 2);
    r->slab_size = col_u64(st, 7);
    r->fixed_addr = col_u64(st, 10);
    r->created_ms = col_u64(st, 12);
    r->lease_id = col_u64(st, 13);
    r->lease_expires_ms = col_u64(st, 15);
    ok = col_text(st, 1, r->name, sizeof(r->name)) && col_u32(st, 3, &r->granule) &&
         col_u32(st, 4, &r->flags) && col_u32(st, 5, &r->replicas) && col_u32(st, 6, &r->state) &&
         col_u32(st, 8, &r->nslabs) && col_blob(st, 9, r->key, sizeof(r->key)) &&
         col_blob(st, 14, r->lease_holder, sizeof(r->lease_holder));
    if (ok && sqlite3_column_type(st, 11) != SQLITE_NULL) {
        r->has_checksum = true;
        ok = col_blob(st, 11, r->checksum, sizeof(r->checksum));
    }
    return ok;
}

static bool region_name_ok(const fp_meta_region_t *region)
{
    return region->name[0] != '\0' && memchr(region->name, '\0', sizeof(region->name)) != NULL;
}

/* Insert @replica (its region is @region_id) with statement @id. */
static fp_status_t replica_write(meta_sqlite_t *ms, stmt_id_t id, uint64_t region_id,
                                 const fp_meta_replica_t *replica)
{
    sqlite3_stmt *st = ms->stmt[id];
    int rc = bind_u64(st, 1, region_id);

    if (rc == SQLITE_OK)
        rc = bind_u64(st, 2, replica->index);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 3, replica->node);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 4, replica->state);
    if (rc == SQLITE_OK)
        rc = bind_u64(st, 5, replica->slab);
    if (rc != SQLITE_OK) {
        stmt_finish(st);
        return db_fail(ms, "bind a replica's fields");
    }
    return stmt_run(ms, st, "write a replica");
}

static fp_status_t sqlite_region_add(fp_meta_store_t *store, fp_meta_region_t *region,
                                     fp_meta_replica_t *replicas, size_t nreplicas)
{
    meta_sqlite_t *ms = ms_of(store);
    sqlite3_stmt *st = ms->stmt[ST_REGION_INSERT];
    fp_status_t status;
    uint64_t id;

    if (region == NULL || !region_name_ok(region) || (nreplicas > 0 && replicas == NULL))
        return FP_ERR_INVALID_PARAM;
    status = tx_begin(ms);
    if (status != FP_OK)
        return status;
    if (region_bind(st, region) != SQLITE_OK) {
        stmt_finish(st);
        status = db_fail(ms, "bind a region's fields");
        goto err_rollback;
    }
    status = stmt_run(ms, st, "add a region");
    if (status != FP_OK)
        goto err_rollback;
    id = (uint64_t)sqlite3_last_insert_rowid(ms->db);
    for (size_t i = 0; i < nreplicas; i++) {
        status = replica_write(ms, ST_REPLICA_INSERT, id, &replicas[i]);
        if (status != FP_OK)
            goto err_rollback;
    }
    status = tx_commit(ms);
    if (status != FP_OK)
        return status;
    region->id = id;
    for (size_t i = 0; i < nreplicas; i++)
        replicas[i].region = id;
    return FP_OK;

err_rollback:
    tx_rollback(ms);
    return status;
}

static fp_status_t sqlite_region_update(fp_meta_store_t *store, const fp_meta_region_t *region)
{
    meta_sqlite_t *ms = ms_of(store);
    sqlite3_stmt *st = ms->stmt[ST_REGION_UPDATE];
    fp_status_t status;

    if (region == NULL || region->id == 0 || !region_name_ok(region))
        return FP_ERR_INVALID_PARAM;
    if (region_bind(st, region) != SQLITE_OK || bind_u64(st, 16, region->id) != SQLITE_OK) {
        stmt_finish(st);
        return db_fail(ms, "bind a region's fields");
    }
    status = stmt_run(ms, st, "update a region");
    if (status != FP_OK)
        return status;
    if (sqlite3_changes(ms->db) == 0) {
        fp_debug(ms->base.log, "meta store %s: no region %llu to update", ms->path,
                 (unsigned long long)region->id);
        return FP_ERR_NO_ENTRY;
    }
    return FP_OK;
}

/* Run the id statement @stid with ?1 = @id; the number of rows it changed in *@changes_p. */
static fp_status_t delete_by_id(meta_sqlite_t *ms, stmt_id_t stid, uint64_t id, const char *what,
                                int *changes_p)
{
    sqlite3_stmt *st = ms->stmt[stid];
    fp_status_t status;

    if (bind_u64(st, 1, id) != SQLITE_OK) {
        stmt_finish(st);
        return db_fail(ms, "bind a region id");
    }
    status = stmt_run(ms, st, what);
    if (status == FP_OK)
        *changes_p = sqlite3_changes(ms->db);
    return status;
}

static fp_status_t sqlite_region_delete(fp_meta_store_t *store, uint64_t id)
{
    meta_sqlite_t *ms = ms_of(store);
    fp_status_t status;
    int changes = 0;

    status = tx_begin(ms);
    if (status != FP_OK)
        return status;
    status = delete_by_id(ms, ST_REPLICA_DELETE_REGION, id, "delete a region's replicas", &changes);
    if (status != FP_OK)
        goto err_rollback;
    status = delete_by_id(ms, ST_REGION_DELETE, id, "delete a region", &changes);
    if (status != FP_OK)
        goto err_rollback;
    if (changes == 0) {
        fp_debug(ms->base.log, "meta store %s: no region %llu to delete", ms->path,
                 (unsigned long long)id);
        status = FP_ERR_NO_ENTRY;
        goto err_rollback;
    }
    return tx_commit(ms);

err_rollback:
    tx_rollback(ms);
    return status;
}

static fp_status_t sqlite_region_list(fp_meta_store_t *store, fp_meta_region_t **regions_p,
                                      size_t *count_p)
{
    if (regions_p == NULL || count_p == NULL)
        return FP_ERR_INVALID_PARAM;
    return list_run(ms_of(store), ST_REGION_LIST, sizeof(**regions_p), region_read,
                    "list the regions", (void **)regions_p, count_p);
}

/* ---- replicas ---- */

static bool replica_read(sqlite3_stmt *st, void *out)
{
    fp_meta_replica_t *rep = out;

    memset(rep, 0, sizeof(*rep));
    rep->region = col_u64(st, 0);
    rep->node = col_u64(st, 2);
    rep->slab = col_u64(st, 4);
    return col_u32(st, 1, &rep->index) && col_u32(st, 3, &rep->state);
}

static fp_status_t sqlite_replica_list(fp_meta_store_t *store, fp_meta_replica_t **replicas_p,
                                       size_t *count_p)
{
    if (replicas_p == NULL || count_p == NULL)
        return FP_ERR_INVALID_PARAM;
    return list_run(ms_of(store), ST_REPLICA_LIST, sizeof(**replicas_p), replica_read,
                    "list the replicas", (void **)replicas_p, count_p);
}

static fp_status_t sqlite_replica_put(fp_meta_store_t *store, const fp_meta_replica_t *replica)
{
    if (replica == NULL)
        return FP_ERR_INVALID_PARAM;
    return replica_write(ms_of(store), ST_REPLICA_UPSERT, replica->region, replica);
}

static fp_status_t sqlite_replica_delete(fp_meta_store_t *store, uint64_t region, uint32_t index,
                                         uint64_t node)
{
    meta_sqlite_t *ms = ms_of(store);
    sqlite3_stmt *st = ms->stmt[ST_REPLICA_DELETE];
    fp_status_t status;

    if (bind_u64(st, 1, region) != SQLITE_OK || bind_u64(st, 2, index) != SQLITE_OK ||
        bind_u64(st, 3, node) != SQLITE_OK) {
        stmt_finish(st);
        return db_fail(ms, "bind a replica's key");
    }
    status = stmt_run(ms, st, "delete a replica");
    if (status == FP_OK && sqlite3_changes(ms->db) == 0)
        return FP_ERR_NO_ENTRY;
    return status;
}

/* ---- counters ---- */

static fp_status_t sqlite_value_get(fp_meta_store_t *store, const char *key, uint64_t *value_p)
{
    meta_sqlite_t *ms = ms_of(store);
    sqlite3_stmt *st = ms->stmt[ST_COUNTER_GET];
    uint64_t value = 0;
    fp_status_t status = FP_OK;
    int rc;

    if (key == NULL || value_p == NULL)
        return FP_ERR_INVALID_PARAM;
    if (bind_text(st, 1, key) != SQLITE_OK) {
        stmt_finish(st);
        return db_fail(ms, "bind a counter's name");
    }
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        value = col_u64(st, 0);
    else if (rc != SQLITE_DONE)
        status = db_fail(ms, "read a counter");
    stmt_finish(st);
    if (status == FP_OK)
        *value_p = value;
    return status;
}

static fp_status_t sqlite_value_put(fp_meta_store_t *store, const char *key, uint64_t value)
{
    meta_sqlite_t *ms = ms_of(store);
    sqlite3_stmt *st = ms->stmt[ST_COUNTER_PUT];

    if (key == NULL)
        return FP_ERR_INVALID_PARAM;
    if (bind_text(st, 1, key) != SQLITE_OK || bind_u64(st, 2, value) != SQLITE_OK) {
        stmt_finish(st);
        return db_fail(ms, "bind a counter");
    }
    return stmt_run(ms, st, "write a counter");
}

/* ---- open and close ---- */

/* Finalize the statements and close the connection (either may be missing). */
static void ms_free(meta_sqlite_t *ms)
{
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(ms->stmt[i]);
    if (ms->db != NULL && sqlite3_close(ms->db) != SQLITE_OK)
        fp_error(ms->base.log, "meta store %s: cannot close: %s", ms->path, sqlite3_errmsg(ms->db));
    free(ms);
}

static void sqlite_close(fp_meta_store_t *store)
{
    if (store != NULL)
        ms_free(ms_of(store));
}

static const fp_meta_ops_t sqlite_ops = {
    .name = "sqlite",
    .close = sqlite_close,
    .node_put = sqlite_node_put,
    .node_list = sqlite_node_list,
    .region_add = sqlite_region_add,
    .region_update = sqlite_region_update,
    .region_delete = sqlite_region_delete,
    .region_list = sqlite_region_list,
    .replica_list = sqlite_replica_list,
    .replica_put = sqlite_replica_put,
    .replica_delete = sqlite_replica_delete,
    .value_get = sqlite_value_get,
    .value_put = sqlite_value_put,
};

/* Create directory @dir (mode 0700) unless it exists; fail if it is not a directory. */
static fp_status_t dir_make(const char *dir, const fp_log_t *log)
{
    struct stat st;

    if (mkdir(dir, 0700) == 0)
        return FP_OK;
    if (errno != EEXIST) {
        fp_error(log, "meta store: cannot create the directory %s: %s", dir, strerror(errno));
        return FP_ERR_IO;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fp_error(log, "meta store: %s exists and is not a directory", dir);
        return FP_ERR_IO;
    }
    return FP_OK;
}

/* Create @ms->path mode 0600 unless it exists, and sync the new entry of @dir to disk. */
static fp_status_t db_file_make(const meta_sqlite_t *ms, const char *dir)
{
    const fp_log_t *log = ms->base.log;
    int fd, dfd;

    fd = open(ms->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST)
        return FP_OK;
    if (fd < 0) {
        fp_error(log, "meta store: cannot create %s: %s", ms->path, strerror(errno));
        return FP_ERR_IO;
    }
    if (fchmod(fd, 0600) != 0) { /* the umask may have taken the owner's bits */
        fp_error(log, "meta store: cannot chmod %s: %s", ms->path, strerror(errno));
        close(fd);
        return FP_ERR_IO;
    }
    close(fd);
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        fp_error(log, "meta store: cannot sync the directory %s: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return FP_ERR_IO;
    }
    close(dfd);
    return FP_OK;
}

/*
 * Narrow the mode of @ms->path, a farpool database (checked: a foreign file
 * is left alone), to 0600 if group or others may use it.
 */
static fp_status_t db_file_narrow(const meta_sqlite_t *ms)
{
    struct stat st;

    if (stat(ms->path, &st) != 0) {
        fp_error(ms->base.log, "meta store: cannot stat %s: %s", ms->path, strerror(errno));
        return FP_ERR_IO;
    }
    if ((st.st_mode & 077) == 0)
        return FP_OK;
    fp_warn(ms->base.log, "meta store: %s had mode %04o; narrowing it to 0600", ms->path,
            (unsigned)(st.st_mode & 07777));
    if (chmod(ms->path, 0600) != 0) {
        fp_error(ms->base.log, "meta store: cannot chmod %s: %s", ms->path, strerror(errno));
        return FP_ERR_IO;
    }
    return FP_OK;
}

/*
 * The status for @rc, SQLite's answer while opening (doing @what), logged
 * with what it says of the file: not a database, corrupt, locked.
 */
static fp_status_t open_fail(const meta_sqlite_t *ms, int rc, const char *what)
{
    const fp_log_t *log = ms->base.log;

    switch (rc & 0xff) {
    case SQLITE_NOTADB:
        fp_error(log,
                 "meta store %s: not a SQLite database (a foreign or damaged file; "
                 "move it away to start an empty pool)",
                 ms->path);
        return FP_ERR_IO;
    case SQLITE_CORRUPT:
        fp_error(log, "meta store %s: the database is corrupt: %s", ms->path,
                 sqlite3_errmsg(ms->db));
        return FP_ERR_IO;
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
        fp_error(log,
                 "meta store %s: cannot %s: %s (the database and its directory must both "
                 "be writable, for its write-ahead log " DB_NAME "-wal)",
                 ms->path, what, sqlite3_errmsg(ms->db));
        return FP_ERR_IO;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        fp_error(log,
                 "meta store %s: in use by another process (another farpoold with this "
                 "--meta-dir?)",
                 ms->path);
        return FP_ERR_IN_USE;
    default:
        return db_fail(ms, what);
    }
}

/*
 * Run @sql, which returns rows, and copy the first row's first column as text
 * into @out (@size bytes; a longer one is cut short).
 */
static fp_status_t pragma_text(meta_sqlite_t *ms, const char *sql, char *out, size_t size)
{
    sqlite3_stmt *st = NULL;
    fp_status_t status = FP_OK;
    const unsigned char *text;
    int rc;

    rc = sqlite3_prepare_v2(ms->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        status = open_fail(ms, rc, sql);
    } else if ((text = sqlite3_column_text(st, 0)) == NULL) {
        fp_error(ms->base.log, "meta store %s: %s returned no text", ms->path, sql);
        status = FP_ERR_IO;
    } else {
        snprintf(out, size, "%s", (const char *)text);
    }
    sqlite3_finalize(st);
    return status;
}

/* PRAGMA @sql's single integer into *@value_p. */
static fp_status_t pragma_int(meta_sqlite_t *ms, const char *sql, long *value_p)
{
    char text[32], *end;
    fp_status_t status = pragma_text(ms, sql, text, sizeof(text));

    if (status != FP_OK)
        return status;
    errno = 0;
    *value_p = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') {
        fp_error(ms->base.log, "meta store %s: %s returned \"%s\"", ms->path, sql, text);
        return FP_ERR_IO;
    }
    return FP_OK;
}

/*
 * Set the connection up: WAL with synchronous=FULL, the exclusive lock taken
 * now, foreign keys enforced, and the whole file checked.
 */
static fp_status_t db_configure(meta_sqlite_t *ms)
{
    char text[256];
    fp_status_t status;

    sqlite3_extended_result_codes(ms->db, 1);
    status = pragma_text(ms, "PRAGMA locking_mode = EXCLUSIVE", text, sizeof(text));
    if (status != FP_OK)
        return status;
    status = pragma_text(ms, "PRAGMA journal_mode = WAL", text, sizeof(text));
    if (status != FP_OK)
        return status;
    if (strcmp(text, "wal") != 0) {
        fp_error(ms->base.log, "meta store %s: cannot use a write-ahead log (journal mode %s)",
                 ms->path, text);
        return FP_ERR_IO;
    }
    if (sqlite3_exec(ms->db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", NULL, NULL,
                     NULL) != SQLITE_OK)
        return db_fail(ms, "set synchronous=FULL and foreign_keys=ON");
    /* A write transaction takes the exclusive lock and holds it from now on. */
    if (sqlite3_exec(ms->db, "BEGIN EXCLUSIVE; COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        return open_fail(ms, sqlite3_extended_errcode(ms->db), "lock the database");
    status = pragma_text(ms, "PRAGMA quick_check", text, sizeof(text));
    if (status != FP_OK)
        return status;
    if (strcmp(text, "ok") != 0) {
        for (char *c = text; *c != '\0'; c++)
            *c = *c == '\n' ? ' ' : *c; /* its list of problems, on one log line */
        fp_error(ms->base.log, "meta store %s: the database is corrupt (quick_check says: %.200s)",
                 ms->path, text);
        return FP_ERR_IO;
    }
    return FP_OK;
}

/* Give a new database the schema; check an existing one is farpool's, of a known version. */
static fp_status_t db_schema(meta_sqlite_t *ms)
{
    long app_id, version, ntables;
    fp_status_t status;

    status = pragma_int(ms, "PRAGMA application_id", &app_id);
    if (status == FP_OK)
        status = pragma_int(ms, "PRAGMA user_version", &version);
    if (status == FP_OK)
        status = pragma_int(ms, "SELECT count(*) FROM sqlite_schema", &ntables);
    if (status != FP_OK)
        return status;
    if (app_id == 0 && version == 0 && ntables == 0) {
        if (sqlite3_exec(ms->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            return db_fail(ms, "begin creating the schema");
        if (sqlite3_exec(ms->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(ms->db, SCHEMA_APP_SQL, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(ms->db, SCHEMA_VERSION_SQL, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(ms->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            status = db_fail(ms, "create the schema");
            if (!sqlite3_get_autocommit(ms->db))
                sqlite3_exec(ms->db, "ROLLBACK", NULL, NULL, NULL);
            return status;
        }
        fp_info(ms->base.log, "meta store %s: new pool database, schema version %d", ms->path,
                SCHEMA_VERSION);
        return FP_OK;
    }
    if (app_id != APPLICATION_ID) {
        fp_error(ms->base.log,
                 "meta store %s: a SQLite database, but not farpool's "
                 "(application_id %#lx)",
                 ms->path, (unsigned long)app_id);
        return FP_ERR_IO;
    }
    if (version != SCHEMA_VERSION) {
        fp_error(ms->base.log,
                 "meta store %s: schema version %ld, and this farpoold knows "
                 "only version %d",
                 ms->path, version, SCHEMA_VERSION);
        return FP_ERR_VERSION;
    }
    return FP_OK;
}

static fp_status_t stmts_prepare(meta_sqlite_t *ms)
{
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(ms->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &ms->stmt[i],
                               NULL) != SQLITE_OK)
            return db_fail(ms, "prepare a statement");
    }
    return FP_OK;
}

fp_status_t fp_meta_sqlite_open(const char *dir, const fp_log_t *log, fp_meta_store_t **store_p)
{
    meta_sqlite_t *ms;
    fp_status_t status;
    int n, rc;

    if (dir == NULL || dir[0] == '\0' || store_p == NULL)
        return FP_ERR_INVALID_PARAM;
    ms = calloc(1, sizeof(*ms));
    if (ms == NULL)
        return FP_ERR_NO_MEMORY;
    ms->base.ops = &sqlite_ops;
    ms->base.log = log;
    n = snprintf(ms->path, sizeof(ms->path), "%s/%s", dir, DB_NAME);
    if (n < 0 || (size_t)n >= sizeof(ms->path)) {
        fp_error(log, "meta store: the directory name is too long: %s", dir);
        status = FP_ERR_INVALID_PARAM;
        goto err_free;
    }
    status = dir_make(dir, log);
    if (status != FP_OK)
        goto err_free;
    status = db_file_make(ms, dir);
    if (status != FP_OK)
        goto err_free;
    rc = sqlite3_open_v2(ms->path, &ms->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        status = ms->db != NULL ? db_fail(ms, "open the database") : FP_ERR_NO_MEMORY;
        goto err_free;
    }
    status = db_configure(ms);
    if (status == FP_OK)
        status = db_schema(ms);
    if (status == FP_OK)
        status = db_file_narrow(ms);
    if (status == FP_OK)
        status = stmts_prepare(ms);
    if (status != FP_OK)
        goto err_free;
    *store_p = &ms->base;
    return FP_OK;

err_free:
    ms_free(ms);
    return status;
}
