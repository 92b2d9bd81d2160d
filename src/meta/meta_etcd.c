/* SPDX-License-Identifier: MIT */
/*
 * The pool's metadata store in etcd: the "etcd" backend of meta.h, every
 * record a key under the URL's prefix P, every op one etcd transaction, with
 * the same semantics as the SQLite backend (meta_sqlite.c).
 *
 * DESIGN
 * Keys. Ids in keys are fixed-width hex, so a range over a prefix (sorted by
 * key) is in id order:
 *   P/service                       the service's "HOST:PORT", under its lease
 *   P/taken                         the "HOST:PORT" of the service that took P/service last
 *   P/members/<node id %016x>       a member's "HOST:PORT", under the member's lease
 *   P/ids/node, P/ids/region        the last id given (decimal)
 *   P/nodes/<id %016x>              a member (JSON)
 *   P/regions/<id %016x>            a region (JSON)
 *   P/names/<name>                  the id of the published (READY) region of that name
 *   P/replicas/<region %016x>/<index %08x>/<node %016x>   a replica (JSON)
 *   P/values/<name>                 a counter (decimal)
 *   P/writers/<region id %016x>     the writer's client key (hex), under the writer lease
 * Records are JSON objects (json-c); 64-bit fields are decimal strings and
 * keys and checksums hex, so every value round-trips bit for bit.
 *
 * Ids. A new id is the counter's value plus one, written in the same
 * transaction as the record, on the condition that the counter's
 * mod_revision is the one read: a conflict is retried (RETRY_MAX times), and
 * an id is never given twice, nor again after a delete.
 *
 * Names. A published region owns P/names/<name>: a transaction that
 * publishes one requires that key's create_revision to be 0, so of two
 * writers publishing one name exactly one wins, and the other gets
 * FP_ERR_EXISTS. Unpublished regions have no name key and may share a name.
 *
 * Large regions. etcd caps a transaction at 128 ops by default
 * (--max-txn-ops). A region_add whose region, name, counter and replicas
 * need more reserves its id first, writes the replicas in transactions of
 * CHUNK_OPS, and publishes the region (and its name) last; if that fails the
 * replicas are deleted again. Until the region's key exists its replicas are
 * invisible: replica_list leaves out replicas of a region that does not
 * exist, and open deletes such leftovers of an add that was cut short.
 *
 * The service key and fencing. Opening makes the caller the pool's one
 * metadata service: it grants a lease of the TTL and creates P/service =
 * its address under that lease, on the condition that P/service does not
 * exist (else FP_ERR_IN_USE, naming the holder). A thread renews the lease
 * every TTL/3 with its own client; close stops it and revokes the lease, so
 * P/service goes at once (and TTL after a crash). Every write transaction
 * also requires P/service's create_revision to be the one this store
 * created, so a service whose lease expired (a pause, a partition) cannot
 * write after another has taken over; and once the keeper or such a
 * transaction finds the lease lost, the store is marked lost: its changes
 * are refused (FP_ERR_IO, logged) until it takes the service back, which it
 * does only where no other service can have written meanwhile (regain();
 * every take of P/service also puts P/taken, in the same transaction, so a
 * P/taken modified since this service's take means another took over):
 * an etcd restarted or a partition healed leaves the pool with its service.
 *
 * Members' leases. Every member of an etcd pool (the metadata node's own
 * too) holds P/members/<its farpoold node id> (the HELLO id, new at every
 * start) under a lease of its own, granted with its --dead-after as TTL and
 * renewed every TTL/3 by a thread of the member with its own client
 * (fp_meta_etcd_member_start); a clean stop revokes it, so the key goes at
 * once, and a crash or a stop of the process lets it expire within the TTL.
 * The keys are not part of the store's records and are written without the
 * service's fence: members write them, not the service. The service reads
 * them (member_live, one keys-only range over P/members/, with a client of
 * its own whose deadline is short, so that etcd away stalls it little) and
 * takes a member's liveness from its key (repair.c); a lost store also
 * tries to take the service back there (regain), so that it does not wait
 * for its next change to be found again. A lease found gone
 * (expired while the member was cut off or stopped, or lost by etcd) is
 * granted again and the key put again; etcd restarted on its data renews
 * every lease, so the keys come back as they were. A key deleted behind the
 * member's back is put again at its next renewal.
 *
 * Writer leases. A region's writer lease is an etcd lease: writer_take
 * grants one of the writer-lease TTL (rounded up to seconds) and creates
 * P/writers/<region> = the holder's client key (hex) under it, fenced as
 * every write and on the condition that the key does not exist, so two
 * writers never both hold it, even across services. A renewal is a
 * keepalive of that lease (once the key is found still under it), a release
 * revokes it, and expiry is etcd's: a region whose writers key is gone has
 * no writer. The lease lives in etcd, so a restarted service finds it there
 * (writer_get); the lease fields of the region records are not used.
 *
 * Thread safety: the store is used by one thread at a time (meta.h); the
 * keeper thread shares only the lost flag and its stop condition. A member's
 * lease thread shares only its stop condition.
 */
#include "meta.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <sodium.h>

#include "common/etcd.h"

#define KEY_MAX       ((int)(FP_ETCD_PREFIX_MAX + FP_PROTO_REGION_NAME_MAX + 64))
#define RETRY_MAX     64  /* conflicting transactions on the id counter, in a row */
#define TXN_OPS_MAX   128 /* etcd's default --max-txn-ops */
#define CHUNK_OPS     100 /* replicas per transaction of a large region_add */
#define TTL_MS_DEF    10000
#define KEEPER_MIN_MS 100
#define REGAIN_MS     1000 /* a lost store tries to take the service back this often */

typedef struct meta_etcd {
    fp_meta_store_t base; /* first: the handle the callers hold */
    fp_etcd_t *etcd;      /* the store's thread's client */
    fp_etcd_t *keeper_etcd;
    fp_etcd_t *live_etcd; /* the store's thread's too: member_live, with a short deadline */
    fp_log_t quiet;       /* live_etcd's log: member_live says once itself */
    bool live_failing;    /* member_live's last read failed (said) */
    char url[FP_ETCD_PREFIX_MAX + FP_ETCD_ENDPOINTS_MAX * FP_ETCD_HOSTPORT_MAX + 16];
    char prefix[FP_ETCD_PREFIX_MAX];
    char service_key[KEY_MAX];
    char taken_key[KEY_MAX]; /* P/taken */
    char addr[FP_META_ADDR_MAX];
    int64_t lease;
    int64_t service_rev; /* P/service's create_revision, ours */
    int ttl_ms;
    atomic_bool lost;
    bool ousted;        /* another service wrote since: lost for good */
    uint64_t regain_ms; /* when the store last tried to take the service back */
    uint64_t said_ms;   /* when a refused change was last logged */
    pthread_t keeper;
    bool keeper_started;
    bool sync_ready;      /* lock and cond initialized */
    pthread_mutex_t lock; /* guards stop */
    pthread_cond_t cond;
    bool stop;
} meta_etcd_t;

static meta_etcd_t *me_of(fp_meta_store_t *store)
{
    return (meta_etcd_t *)store;
}

/* ---- keys ---- */

/* P/@fmt... into @out (KEY_MAX bytes); false if too long. */
static bool key_fmt(const meta_etcd_t *me, char *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool key_fmt(const meta_etcd_t *me, char *out, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(out, KEY_MAX, "%s/", me->prefix), m;

    if (n < 0 || n >= KEY_MAX)
        return false;
    va_start(ap, fmt);
    m = vsnprintf(out + n, KEY_MAX - (size_t)n, fmt, ap);
    va_end(ap);
    return m >= 0 && m < KEY_MAX - n;
}

static void key_node(const meta_etcd_t *me, char *out, uint64_t id)
{
    key_fmt(me, out, "nodes/%016" PRIx64, id);
}

static void key_region(const meta_etcd_t *me, char *out, uint64_t id)
{
    key_fmt(me, out, "regions/%016" PRIx64, id);
}

static void key_writer(const meta_etcd_t *me, char *out, uint64_t region)
{
    key_fmt(me, out, "writers/%016" PRIx64, region);
}

static bool key_name(const meta_etcd_t *me, char *out, const char *name)
{
    return key_fmt(me, out, "names/%s", name);
}

static void key_replica(const meta_etcd_t *me, char *out, uint64_t region, uint32_t index,
                        uint64_t node)
{
    key_fmt(me, out, "replicas/%016" PRIx64 "/%08" PRIx32 "/%016" PRIx64, region, index, node);
}

static void key_replicas_of(const meta_etcd_t *me, char *out, uint64_t region)
{
    key_fmt(me, out, "replicas/%016" PRIx64 "/", region);
}

/* ---- JSON fields ---- */

static bool jput(json_object *o, const char *name, json_object *v)
{
    if (v == NULL)
        return false;
    if (json_object_object_add(o, name, v) != 0) {
        json_object_put(v);
        return false;
    }
    return true;
}

static bool jput_u64(json_object *o, const char *name, uint64_t v)
{
    char text[24];

    snprintf(text, sizeof(text), "%" PRIu64, v);
    return jput(o, name, json_object_new_string(text));
}

static bool jput_hex(json_object *o, const char *name, const uint8_t *data, size_t len)
{
    char text[2 * 64 + 1];

    if (len > 64)
        return false;
    sodium_bin2hex(text, sizeof(text), data, len);
    return jput(o, name, json_object_new_string(text));
}

static const char *jget_text(json_object *o, const char *name)
{
    json_object *v = NULL;

    if (!json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static bool jget_u64(json_object *o, const char *name, uint64_t *out)
{
    const char *text = jget_text(o, name);
    char *end;

    if (text == NULL || text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    *out = strtoull(text, &end, 10);
    return errno == 0 && *end == '\0';
}

static bool jget_u32(json_object *o, const char *name, uint32_t *out)
{
    uint64_t v;

    if (!jget_u64(o, name, &v) || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool jget_str(json_object *o, const char *name, char *out, size_t size)
{
    const char *text = jget_text(o, name);
    size_t len;

    if (text == NULL || (len = strlen(text)) >= size)
        return false;
    memcpy(out, text, len + 1);
    return true;
}

static bool jget_hex(json_object *o, const char *name, uint8_t *out, size_t len)
{
    const char *text = jget_text(o, name);
    size_t got = 0;

    return text != NULL && strlen(text) == 2 * len &&
           sodium_hex2bin(out, len, text, 2 * len, NULL, &got, NULL) == 0 && got == len;
}

/* @o as malloc'd JSON text (and @o put); NULL on OOM. */
static char *json_finish(json_object *o, bool ok)
{
    char *text = NULL;

    if (ok)
        text = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return text;
}

/* The JSON object in @kv's value; NULL if it is not one. */
static json_object *json_of(const fp_etcd_kv_t *kv)
{
    json_object *o = json_tokener_parse((const char *)kv->value);

    if (o != NULL && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* ---- records ---- */

static char *node_encode(const fp_meta_node_t *n)
{
    json_object *o = json_object_new_object();
    bool ok = o != NULL && jput_u64(o, "id", n->id) && jput_u64(o, "node_id", n->node_id) &&
              jput(o, "addr", json_object_new_string(n->addr)) &&
              jput_u64(o, "capacity", n->capacity) && jput_u64(o, "used", n->used) &&
              jput_u64(o, "slab_size", n->slab_size) && jput_u64(o, "state", n->state) &&
              jput_u64(o, "joined_ms", n->joined_ms) && jput_u64(o, "seen_ms", n->seen_ms);

    return o == NULL ? NULL : json_finish(o, ok);
}

static bool node_decode(const fp_etcd_kv_t *kv, void *out)
{
    fp_meta_node_t *n = out;
    json_object *o = json_of(kv);
    bool ok;

    memset(n, 0, sizeof(*n));
    ok = o != NULL && jget_u64(o, "id", &n->id) && jget_u64(o, "node_id", &n->node_id) &&
         jget_str(o, "addr", n->addr, sizeof(n->addr)) && jget_u64(o, "capacity", &n->capacity) &&
         jget_u64(o, "used", &n->used) && jget_u64(o, "slab_size", &n->slab_size) &&
         jget_u32(o, "state", &n->state) && jget_u64(o, "joined_ms", &n->joined_ms) &&
         jget_u64(o, "seen_ms", &n->seen_ms);
    json_object_put(o);
    return ok;
}

static char *region_encode(const fp_meta_region_t *r)
{
    json_object *o = json_object_new_object();
    bool ok = o != NULL && jput_u64(o, "id", r->id) &&
              jput(o, "name", json_object_new_string(r->name)) && jput_u64(o, "size", r->size) &&
              jput_u64(o, "granule", r->granule) && jput_u64(o, "flags", r->flags) &&
              jput_u64(o, "replicas", r->replicas) && jput_u64(o, "state", r->state) &&
              jput_u64(o, "slab_size", r->slab_size) && jput_u64(o, "nslabs", r->nslabs) &&
              jput_hex(o, "key", r->key, sizeof(r->key)) &&
              jput_u64(o, "fixed_addr", r->fixed_addr) &&
              (!r->has_checksum || jput_hex(o, "checksum", r->checksum, sizeof(r->checksum))) &&
              jput_u64(o, "created_ms", r->created_ms) && jput_u64(o, "lease_id", r->lease_id) &&
              jput_hex(o, "lease_holder", r->lease_holder, sizeof(r->lease_holder)) &&
              jput_u64(o, "lease_expires_ms", r->lease_expires_ms);

    return o == NULL ? NULL : json_finish(o, ok);
}

static bool region_decode(const fp_etcd_kv_t *kv, void *out)
{
    fp_meta_region_t *r = out;
    json_object *o = json_of(kv);
    bool ok;

    memset(r, 0, sizeof(*r));
    ok = o != NULL && jget_u64(o, "id", &r->id) && jget_str(o, "name", r->name, sizeof(r->name)) &&
         jget_u64(o, "size", &r->size) && jget_u32(o, "granule", &r->granule) &&
         jget_u32(o, "flags", &r->flags) && jget_u32(o, "replicas", &r->replicas) &&
         jget_u32(o, "state", &r->state) && jget_u64(o, "slab_size", &r->slab_size) &&
         jget_u32(o, "nslabs", &r->nslabs) && jget_hex(o, "key", r->key, sizeof(r->key)) &&
         jget_u64(o, "fixed_addr", &r->fixed_addr) && jget_u64(o, "created_ms", &r->created_ms) &&
         jget_u64(o, "lease_id", &r->lease_id) &&
         jget_hex(o, "lease_holder", r->lease_holder, sizeof(r->lease_holder)) &&
         jget_u64(o, "lease_expires_ms", &r->lease_expires_ms);
    if (ok && jget_text(o, "checksum") != NULL) {
        r->has_checksum = true;
        ok = jget_hex(o, "checksum", r->checksum, sizeof(r->checksum));
    }
    json_object_put(o);
    return ok;
}

static char *replica_encode(const fp_meta_replica_t *p, uint64_t region)
{
    json_object *o = json_object_new_object();
    bool ok = o != NULL && jput_u64(o, "region", region) && jput_u64(o, "index", p->index) &&
              jput_u64(o, "node", p->node) && jput_u64(o, "state", p->state) &&
              jput_u64(o, "slab", p->slab);

    return o == NULL ? NULL : json_finish(o, ok);
}

static bool replica_decode(const fp_etcd_kv_t *kv, void *out)
{
    fp_meta_replica_t *p = out;
    json_object *o = json_of(kv);
    bool ok;

    memset(p, 0, sizeof(*p));
    ok = o != NULL && jget_u64(o, "region", &p->region) && jget_u32(o, "index", &p->index) &&
         jget_u64(o, "node", &p->node) && jget_u32(o, "state", &p->state) &&
         jget_u64(o, "slab", &p->slab);
    json_object_put(o);
    return ok;
}

static bool region_name_ok(const fp_meta_region_t *region)
{
    return region->name[0] != '\0' && memchr(region->name, '\0', sizeof(region->name)) != NULL;
}

/* ---- fencing ---- */

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The op refused because the lease is lost; logged once a second at most. */
static fp_status_t lost_fail(meta_etcd_t *me)
{
    uint64_t now = mono_ms();

    if (now - me->said_ms >= 1000) {
        me->said_ms = now;
        fp_error(me->base.log,
                 "meta store %s: this farpoold is %s the pool's metadata service (its lease "
                 "on %s was lost%s): the change is refused",
                 me->url, me->ousted ? "no longer" : "not now", me->service_key,
                 me->ousted ? ", and another service wrote since" : "; taking it back");
    }
    return FP_ERR_IO;
}

static fp_status_t regain(meta_etcd_t *me);

/* The condition every write carries: P/service is still the key this store created. */
static fp_etcd_cmp_t cmp_service(const meta_etcd_t *me)
{
    fp_etcd_cmp_t c = {.key = me->service_key,
                       .target = FP_ETCD_CREATE,
                       .result = FP_ETCD_EQUAL,
                       .revision = me->service_rev};
    return c;
}

/*
 * After a transaction whose conditions failed: FP_OK if P/service is still
 * ours (another condition failed), else the store is marked lost (logged)
 * and FP_ERR_IO.
 */
static fp_status_t fence_check(meta_etcd_t *me)
{
    fp_etcd_kv_t kv = {0};
    fp_status_t status = fp_etcd_get(me->etcd, me->service_key, &kv);

    if (status == FP_OK && kv.create_revision == me->service_rev) {
        fp_etcd_kv_clear(&kv);
        return FP_OK;
    }
    if (status == FP_OK || status == FP_ERR_NO_ENTRY) {
        atomic_store(&me->lost, true);
        fp_error(me->base.log, "meta store %s: %s is %s%s: this service lost its lease", me->url,
                 me->service_key, status == FP_OK ? "held by " : "gone",
                 status == FP_OK ? (const char *)kv.value : "");
        status = FP_ERR_IO;
    }
    fp_etcd_kv_clear(&kv);
    return status;
}

/*
 * Run a transaction with the service condition first: *@ok_p whether it
 * applied; when it did not and P/service is not ours, FP_ERR_IO.
 */
static fp_status_t txn_run(meta_etcd_t *me, fp_etcd_cmp_t *cmps, size_t ncmps,
                           const fp_etcd_op_t *ops, size_t nops, bool *ok_p)
{
    fp_status_t status;

    if (atomic_load(&me->lost) && regain(me) != FP_OK)
        return lost_fail(me);
    cmps[0] = cmp_service(me);
    status = fp_etcd_txn(me->etcd, cmps, ncmps, ops, nops, ok_p);
    if (status == FP_OK && !*ok_p)
        status = fence_check(me);
    return status;
}

/* ---- ids ---- */

/* The id counter P/ids/@kind: its value (0 if unset) and mod_revision. */
static fp_status_t counter_read(meta_etcd_t *me, const char *key, uint64_t *value_p, int64_t *rev_p)
{
    fp_etcd_kv_t kv = {0};
    fp_status_t status = fp_etcd_get(me->etcd, key, &kv);
    char *end;

    if (status == FP_ERR_NO_ENTRY) {
        *value_p = 0;
        *rev_p = 0;
        return FP_OK;
    }
    if (status != FP_OK)
        return status;
    errno = 0;
    *value_p = strtoull((const char *)kv.value, &end, 10);
    if (errno != 0 || kv.value_len == 0 || *end != '\0') {
        fp_error(me->base.log, "meta store %s: %s holds \"%.40s\", not a number", me->url, key,
                 (const char *)kv.value);
        fp_etcd_kv_clear(&kv);
        return FP_ERR_IO;
    }
    *rev_p = kv.mod_revision;
    fp_etcd_kv_clear(&kv);
    return FP_OK;
}

static fp_status_t conflict_fail(const meta_etcd_t *me, const char *what)
{
    fp_error(me->base.log, "meta store %s: cannot %s: %d conflicting writes in a row", me->url,
             what, RETRY_MAX);
    return FP_ERR_IO;
}

/* ---- lists ---- */

typedef bool (*kv_decode_func_t)(const fp_etcd_kv_t *kv, void *out);

/* Every record under P/@dir/, decoded into a malloc'd array. */
static fp_status_t list_read(meta_etcd_t *me, const char *dir, size_t elem, kv_decode_func_t decode,
                             void **array_p, size_t *count_p)
{
    char prefix[KEY_MAX];
    fp_etcd_kv_t *kvs = NULL;
    size_t count = 0;
    char *array = NULL;
    fp_status_t status;

    if (atomic_load(&me->lost) && regain(me) != FP_OK)
        return lost_fail(me);
    key_fmt(me, prefix, "%s/", dir);
    status = fp_etcd_range_prefix(me->etcd, prefix, false, &kvs, &count);
    if (status != FP_OK)
        return status;
    if (count > 0) {
        array = calloc(count, elem);
        if (array == NULL) {
            fp_etcd_kvs_free(kvs, count);
            return FP_ERR_NO_MEMORY;
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (!decode(&kvs[i], array + i * elem)) {
            fp_error(me->base.log, "meta store %s: %s is corrupt: %.200s", me->url, kvs[i].key,
                     (const char *)kvs[i].value);
            free(array);
            fp_etcd_kvs_free(kvs, count);
            return FP_ERR_IO;
        }
    }
    fp_etcd_kvs_free(kvs, count);
    *array_p = array;
    *count_p = count;
    return FP_OK;
}

/* ---- nodes ---- */

static fp_status_t etcd_node_put(fp_meta_store_t *store, fp_meta_node_t *node)
{
    meta_etcd_t *me = me_of(store);
    char idkey[KEY_MAX], key[KEY_MAX];
    fp_meta_node_t rec;
    fp_etcd_cmp_t cmps[2];
    fp_etcd_op_t ops[2];
    fp_status_t status;
    bool ok = false;
    char *value;

    if (node == NULL || memchr(node->addr, '\0', sizeof(node->addr)) == NULL)
        return FP_ERR_INVALID_PARAM;
    rec = *node;
    if (node->id != 0) {
        key_node(me, key, node->id);
        value = node_encode(&rec);
        if (value == NULL)
            return FP_ERR_NO_MEMORY;
        cmps[1] = (fp_etcd_cmp_t){.key = key, .target = FP_ETCD_CREATE, .result = FP_ETCD_GREATER};
        ops[0] = (fp_etcd_op_t){
            .type = FP_ETCD_PUT, .key = key, .value = value, .value_len = strlen(value)};
        status = txn_run(me, cmps, 2, ops, 1, &ok);
        free(value);
        if (status == FP_OK && !ok) {
            fp_debug(me->base.log, "meta store %s: no member %" PRIu64 " to update", me->url,
                     node->id);
            status = FP_ERR_NO_ENTRY;
        }
        return status;
    }
    key_fmt(me, idkey, "ids/node");
    for (int tries = 0; tries < RETRY_MAX; tries++) {
        uint64_t last;
        int64_t rev;
        char idtext[24];

        status = counter_read(me, idkey, &last, &rev);
        if (status != FP_OK)
            return status;
        rec.id = last + 1;
        snprintf(idtext, sizeof(idtext), "%" PRIu64, rec.id);
        key_node(me, key, rec.id);
        value = node_encode(&rec);
        if (value == NULL)
            return FP_ERR_NO_MEMORY;
        cmps[1] = (fp_etcd_cmp_t){
            .key = idkey, .target = FP_ETCD_MOD, .result = FP_ETCD_EQUAL, .revision = rev};
        ops[0] = (fp_etcd_op_t){
            .type = FP_ETCD_PUT, .key = idkey, .value = idtext, .value_len = strlen(idtext)};
        ops[1] = (fp_etcd_op_t){
            .type = FP_ETCD_PUT, .key = key, .value = value, .value_len = strlen(value)};
        status = txn_run(me, cmps, 2, ops, 2, &ok);
        free(value);
        if (status != FP_OK)
            return status;
        if (ok) {
            node->id = rec.id;
            return FP_OK;
        }
    }
    return conflict_fail(me, "add a member");
}

static fp_status_t etcd_node_list(fp_meta_store_t *store, fp_meta_node_t **nodes_p, size_t *count_p)
{
    if (nodes_p == NULL || count_p == NULL)
        return FP_ERR_INVALID_PARAM;
    return list_read(me_of(store), "nodes", sizeof(**nodes_p), node_decode, (void **)nodes_p,
                     count_p);
}

/* ---- regions ---- */

static int replica_key_cmp(const void *a, const void *b)
{
    const fp_meta_replica_t *x = a, *y = b;

    if (x->index != y->index)
        return x->index < y->index ? -1 : 1;
    if (x->node != y->node)
        return x->node < y->node ? -1 : 1;
    return 0;
}

/* FP_ERR_INVALID_PARAM if two of @reps are the same (index, node); as SQLite's primary key. */
static fp_status_t replicas_distinct(const meta_etcd_t *me, const fp_meta_replica_t *reps, size_t n)
{
    fp_meta_replica_t *sorted;
    fp_status_t status = FP_OK;

    if (n < 2)
        return FP_OK;
    sorted = malloc(n * sizeof(*sorted));
    if (sorted == NULL)
        return FP_ERR_NO_MEMORY;
    memcpy(sorted, reps, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), replica_key_cmp);
    for (size_t i = 1; i < n; i++) {
        if (replica_key_cmp(&sorted[i - 1], &sorted[i]) == 0) {
            fp_debug(me->base.log,
                     "meta store %s: slab %" PRIu32 "'s replica on member %" PRIu64 " given twice",
                     me->url, sorted[i].index, sorted[i].node);
            status = FP_ERR_INVALID_PARAM;
            break;
        }
    }
    free(sorted);
    return status;
}

/* Puts of replicas (their region @id) into @ops, their keys and values malloc'd into @bufs. */
static fp_status_t replica_ops(const meta_etcd_t *me, uint64_t id, const fp_meta_replica_t *reps,
                               size_t n, fp_etcd_op_t *ops, char **bufs)
{
    for (size_t i = 0; i < n; i++) {
        char *key = malloc(KEY_MAX), *value = replica_encode(&reps[i], id);

        bufs[2 * i] = key;
        bufs[2 * i + 1] = value;
        if (key == NULL || value == NULL)
            return FP_ERR_NO_MEMORY;
        key_replica(me, key, id, reps[i].index, reps[i].node);
        ops[i] = (fp_etcd_op_t){
            .type = FP_ETCD_PUT, .key = key, .value = value, .value_len = strlen(value)};
    }
    return FP_OK;
}

static void bufs_free(char **bufs, size_t n)
{
    for (size_t i = 0; i < n && bufs != NULL; i++)
        free(bufs[i]);
    free(bufs);
}

/* Delete every replica of region @id (the undo of a cut-short large add). */
static fp_status_t replicas_drop(meta_etcd_t *me, uint64_t id)
{
    char key[KEY_MAX];
    fp_etcd_cmp_t cmps[1];
    fp_etcd_op_t op = {.type = FP_ETCD_DELETE_PREFIX, .key = key};
    bool ok = false;

    key_replicas_of(me, key, id);
    return txn_run(me, cmps, 1, &op, 1, &ok);
}

/*
 * The region_add of a region with more replicas than one transaction takes:
 * its id reserved, its replicas written in chunks, then the region published.
 */
static fp_status_t region_add_large(meta_etcd_t *me, fp_meta_region_t *rec, const char *idkey,
                                    const fp_meta_replica_t *reps, size_t nreps, bool *exists_p)
{
    char key[KEY_MAX], nkey[KEY_MAX], idtext[24], *value = NULL, **bufs = NULL;
    fp_etcd_cmp_t cmps[2];
    fp_etcd_op_t ops[CHUNK_OPS];
    fp_status_t status = FP_ERR_IO;
    bool ok = false, ready = rec->state == FP_META_REGION_READY;
    int tries;

    for (tries = 0; tries < RETRY_MAX; tries++) {
        uint64_t last;
        int64_t rev;

        status = counter_read(me, idkey, &last, &rev);
        if (status != FP_OK)
            return status;
        rec->id = last + 1;
        snprintf(idtext, sizeof(idtext), "%" PRIu64, rec->id);
        cmps[1] = (fp_etcd_cmp_t){
            .key = idkey, .target = FP_ETCD_MOD, .result = FP_ETCD_EQUAL, .revision = rev};
        ops[0] = (fp_etcd_op_t){
            .type = FP_ETCD_PUT, .key = idkey, .value = idtext, .value_len = strlen(idtext)};
        status = txn_run(me, cmps, 2, ops, 1, &ok);
        if (status != FP_OK)
            return status;
        if (ok)
            break;
    }
    if (tries == RETRY_MAX)
        return conflict_fail(me, "add a region");
    for (size_t at = 0; at < nreps && status == FP_OK; at += CHUNK_OPS) {
        size_t n = nreps - at < CHUNK_OPS ? nreps - at : CHUNK_OPS;

        bufs = calloc(2 * n, sizeof(*bufs));
        status =
            bufs == NULL ? FP_ERR_NO_MEMORY : replica_ops(me, rec->id, reps + at, n, ops, bufs);
        if (status == FP_OK)
            status = txn_run(me, cmps, 1, ops, n, &ok);
        bufs_free(bufs, 2 * n);
        if (status == FP_OK && !ok)
            status = FP_ERR_IO; /* only the service condition, and fence_check said it holds */
    }
    if (status == FP_OK) {
        key_region(me, key, rec->id);
        value = region_encode(rec);
        status = value == NULL ? FP_ERR_NO_MEMORY : FP_OK;
    }
    if (status == FP_OK) {
        size_t nops = 1;

        ops[0] = (fp_etcd_op_t){
            .type = FP_ETCD_PUT, .key = key, .value = value, .value_len = strlen(value)};
        cmps[1] = (fp_etcd_cmp_t){.key = nkey, .target = FP_ETCD_CREATE, .result = FP_ETCD_EQUAL};
        if (ready) {
            key_name(me, nkey, rec->name);
            ops[1] = (fp_etcd_op_t){
                .type = FP_ETCD_PUT, .key = nkey, .value = idtext, .value_len = strlen(idtext)};
            nops = 2;
        }
        status = txn_run(me, cmps, ready ? 2 : 1, ops, nops, &ok);
        if (status == FP_OK && !ok)
            *exists_p = true;
    }
    free(value);
    if (status != FP_OK || *exists_p)
        replicas_drop(me, rec->id); /* best effort: leftovers are invisible, and cleared at open */
    return status;
}

static fp_status_t etcd_region_add(fp_meta_store_t *store, fp_meta_region_t *region,
                                   fp_meta_replica_t *replicas, size_t nreplicas)
{
    meta_etcd_t *me = me_of(store);
    char idkey[KEY_MAX], key[KEY_MAX], nkey[KEY_MAX], idtext[24], *value, **bufs;
    fp_meta_region_t rec;
    fp_etcd_cmp_t cmps[3];
    fp_etcd_op_t *ops;
    fp_status_t status;
    bool ok = false, exists = false, ready;
    size_t nops;

    if (region == NULL || !region_name_ok(region) || (nreplicas > 0 && replicas == NULL))
        return FP_ERR_INVALID_PARAM;
    status = replicas_distinct(me, replicas, nreplicas);
    if (status != FP_OK)
        return status;
    if (atomic_load(&me->lost) && regain(me) != FP_OK)
        return lost_fail(me);
    rec = *region;
    ready = rec.state == FP_META_REGION_READY;
    if (ready && !key_name(me, nkey, rec.name))
        return FP_ERR_INVALID_PARAM;
    key_fmt(me, idkey, "ids/region");
    if (3 + nreplicas > TXN_OPS_MAX) {
        status = region_add_large(me, &rec, idkey, replicas, nreplicas, &exists);
        goto out;
    }
    ops = calloc(3 + nreplicas, sizeof(*ops));
    bufs = calloc(2 * nreplicas + 1, sizeof(*bufs));
    if (ops == NULL || bufs == NULL) {
        free(ops);
        free(bufs);
        return FP_ERR_NO_MEMORY;
    }
    status = FP_ERR_IO;
    for (int tries = 0; tries < RETRY_MAX; tries++) {
        uint64_t last;
        int64_t rev;

        status = counter_read(me, idkey, &last, &rev);
        if (status != FP_OK)
            break;
        rec.id = last + 1;
        snprintf(idtext, sizeof(idtext), "%" PRIu64, rec.id);
        key_region(me, key, rec.id);
        value = region_encode(&rec);
        status = value == NULL ? FP_ERR_NO_MEMORY
                               : replica_ops(me, rec.id, replicas, nreplicas, ops + 3, bufs);
        if (status != FP_OK) {
            free(value);
            break;
        }
        cmps[1] = (fp_etcd_cmp_t){
            .key = idkey, .target = FP_ETCD_MOD, .result = FP_ETCD_EQUAL, .revision = rev};
        cmps[2] = (fp_etcd_cmp_t){.key = nkey, .target = FP_ETCD_CREATE, .result = FP_ETCD_EQUAL};
        ops[0] = (fp_etcd_op_t){
            .type = FP_ETCD_PUT, .key = idkey, .value = idtext, .value_len = strlen(idtext)};
        ops[1] = (fp_etcd_op_t){
            .type = FP_ETCD_PUT, .key = key, .value = value, .value_len = strlen(value)};
        nops = 2;
        if (ready)
            ops[nops++] = (fp_etcd_op_t){
                .type = FP_ETCD_PUT, .key = nkey, .value = idtext, .value_len = strlen(idtext)};
        memmove(ops + nops, ops + 3, nreplicas * sizeof(*ops));
        status = txn_run(me, cmps, ready ? 3 : 2, ops, nops + nreplicas, &ok);
        free(value);
        for (size_t i = 0; i < 2 * nreplicas; i++) {
            free(bufs[i]);
            bufs[i] = NULL;
        }
        if (status != FP_OK || ok)
            break;
        /* The counter moved, or the name is taken. */
        if (ready) {
            fp_etcd_kv_t kv = {0};

            status = fp_etcd_get(me->etcd, nkey, &kv);
            fp_etcd_kv_clear(&kv);
            if (status == FP_OK) {
                exists = true;
                break;
            }
            if (status != FP_ERR_NO_ENTRY)
                break;
        }
        status = FP_OK; /* and try again */
    }
    free(ops);
    bufs_free(bufs, 2 * nreplicas + 1);
    if (status == FP_OK && !ok && !exists)
        return conflict_fail(me, "add a region");
out:
    if (status != FP_OK)
        return status;
    if (exists) {
        fp_debug(me->base.log, "meta store %s: a published region is named %s", me->url, rec.name);
        return FP_ERR_EXISTS;
    }
    region->id = rec.id;
    for (size_t i = 0; i < nreplicas; i++)
        replicas[i].region = rec.id;
    return FP_OK;
}

/* Region @id's record and its mod_revision; FP_ERR_NO_ENTRY if it does not exist. */
static fp_status_t region_read(meta_etcd_t *me, uint64_t id, fp_meta_region_t *rec, int64_t *rev_p)
{
    char key[KEY_MAX];
    fp_etcd_kv_t kv = {0};
    fp_status_t status;

    key_region(me, key, id);
    status = fp_etcd_get(me->etcd, key, &kv);
    if (status == FP_ERR_NO_ENTRY)
        fp_debug(me->base.log, "meta store %s: no region %" PRIu64, me->url, id);
    if (status != FP_OK)
        return status;
    if (!region_decode(&kv, rec)) {
        fp_error(me->base.log, "meta store %s: %s is corrupt", me->url, key);
        status = FP_ERR_IO;
    }
    *rev_p = kv.mod_revision;
    fp_etcd_kv_clear(&kv);
    return status;
}

static fp_status_t etcd_region_update(fp_meta_store_t *store, const fp_meta_region_t *region)
{
    meta_etcd_t *me = me_of(store);
    char key[KEY_MAX], oldkey[KEY_MAX], newkey[KEY_MAX], idtext[24], *value;
    fp_meta_region_t old;
    fp_etcd_cmp_t cmps[3];
    fp_etcd_op_t ops[3];
    fp_status_t status;
    bool ok = false, was_ready, ready;

    if (region == NULL || region->id == 0 || !region_name_ok(region))
        return FP_ERR_INVALID_PARAM;
    if (atomic_load(&me->lost) && regain(me) != FP_OK)
        return lost_fail(me);
    ready = region->state == FP_META_REGION_READY;
    if (ready && !key_name(me, newkey, region->name))
        return FP_ERR_INVALID_PARAM;
    key_region(me, key, region->id);
    snprintf(idtext, sizeof(idtext), "%" PRIu64, region->id);
    value = region_encode(region);
    if (value == NULL)
        return FP_ERR_NO_MEMORY;
    for (int tries = 0; tries < RETRY_MAX; tries++) {
        size_t ncmps = 2, nops = 1;
        int64_t rev;
        bool same;

        status = region_read(me, region->id, &old, &rev);
        if (status != FP_OK)
            goto out;
        was_ready = old.state == FP_META_REGION_READY;
        same = was_ready && ready && strcmp(old.name, region->name) == 0;
        cmps[1] = (fp_etcd_cmp_t){
            .key = key, .target = FP_ETCD_MOD, .result = FP_ETCD_EQUAL, .revision = rev};
        ops[0] = (fp_etcd_op_t){
            .type = FP_ETCD_PUT, .key = key, .value = value, .value_len = strlen(value)};
        if (was_ready && !same) {
            key_name(me, oldkey, old.name);
            ops[nops++] = (fp_etcd_op_t){.type = FP_ETCD_DELETE, .key = oldkey};
        }
        if (ready && !same) {
            cmps[ncmps++] =
                (fp_etcd_cmp_t){.key = newkey, .target = FP_ETCD_CREATE, .result = FP_ETCD_EQUAL};
            ops[nops++] = (fp_etcd_op_t){
                .type = FP_ETCD_PUT, .key = newkey, .value = idtext, .value_len = strlen(idtext)};
        }
        status = txn_run(me, cmps, ncmps, ops, nops, &ok);
        if (status != FP_OK || ok)
            goto out;
        if (ready && !same) {
            fp_etcd_kv_t kv = {0};

            status = fp_etcd_get(me->etcd, newkey, &kv);
            fp_etcd_kv_clear(&kv);
            if (status == FP_OK) {
                fp_debug(me->base.log, "meta store %s: a published region is named %s", me->url,
                         region->name);
                status = FP_ERR_EXISTS;
                goto out;
            }
            if (status != FP_ERR_NO_ENTRY)
                goto out;
        }
    }
    status = conflict_fail(me, "update a region");
out:
    free(value);
    return status;
}

static fp_status_t etcd_region_delete(fp_meta_store_t *store, uint64_t id)
{
    meta_etcd_t *me = me_of(store);
    char key[KEY_MAX], rkey[KEY_MAX], nkey[KEY_MAX], wkey[KEY_MAX];
    fp_meta_region_t old;
    fp_etcd_cmp_t cmps[2];
    fp_etcd_op_t ops[4];
    fp_status_t status;
    bool ok = false;

    if (atomic_load(&me->lost) && regain(me) != FP_OK)
        return lost_fail(me);
    key_region(me, key, id);
    key_replicas_of(me, rkey, id);
    key_writer(me, wkey, id);
    for (int tries = 0; tries < RETRY_MAX; tries++) {
        size_t nops = 2;
        int64_t rev;

        status = region_read(me, id, &old, &rev);
        if (status != FP_OK)
            return status;
        cmps[1] = (fp_etcd_cmp_t){
            .key = key, .target = FP_ETCD_MOD, .result = FP_ETCD_EQUAL, .revision = rev};
        ops[0] = (fp_etcd_op_t){.type = FP_ETCD_DELETE, .key = key};
        ops[1] = (fp_etcd_op_t){.type = FP_ETCD_DELETE_PREFIX, .key = rkey};
        ops[nops++] = (fp_etcd_op_t){.type = FP_ETCD_DELETE, .key = wkey};
        if (old.state == FP_META_REGION_READY && key_name(me, nkey, old.name))
            ops[nops++] = (fp_etcd_op_t){.type = FP_ETCD_DELETE, .key = nkey};
        status = txn_run(me, cmps, 2, ops, nops, &ok);
        if (status != FP_OK || ok)
            return status;
    }
    return conflict_fail(me, "delete a region");
}

static fp_status_t etcd_region_list(fp_meta_store_t *store, fp_meta_region_t **regions_p,
                                    size_t *count_p)
{
    if (regions_p == NULL || count_p == NULL)
        return FP_ERR_INVALID_PARAM;
    return list_read(me_of(store), "regions", sizeof(**regions_p), region_decode,
                     (void **)regions_p, count_p);
}

/* ---- replicas ---- */

/* The ids of the regions that exist, in order, into a malloc'd array. */
static fp_status_t region_ids(meta_etcd_t *me, uint64_t **ids_p, size_t *count_p)
{
    char prefix[KEY_MAX];
    fp_etcd_kv_t *kvs = NULL;
    size_t count = 0, plen;
    uint64_t *ids = NULL;
    fp_status_t status;

    key_fmt(me, prefix, "regions/");
    plen = strlen(prefix);
    status = fp_etcd_range_prefix(me->etcd, prefix, true, &kvs, &count);
    if (status != FP_OK)
        return status;
    if (count > 0 && (ids = malloc(count * sizeof(*ids))) == NULL) {
        fp_etcd_kvs_free(kvs, count);
        return FP_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < count; i++)
        ids[i] = strtoull(kvs[i].key + plen, NULL, 16);
    fp_etcd_kvs_free(kvs, count);
    *ids_p = ids;
    *count_p = count;
    return FP_OK;
}

static fp_status_t etcd_replica_list(fp_meta_store_t *store, fp_meta_replica_t **replicas_p,
                                     size_t *count_p)
{
    meta_etcd_t *me = me_of(store);
    fp_meta_replica_t *reps = NULL;
    uint64_t *ids = NULL;
    size_t n = 0, nids = 0, kept = 0, at = 0;
    fp_status_t status;

    if (replicas_p == NULL || count_p == NULL)
        return FP_ERR_INVALID_PARAM;
    status = list_read(me, "replicas", sizeof(*reps), replica_decode, (void **)&reps, &n);
    if (status == FP_OK)
        status = region_ids(me, &ids, &nids);
    if (status != FP_OK) {
        free(reps);
        return status;
    }
    /* Both in region order: keep the replicas of regions that exist. */
    for (size_t i = 0; i < n; i++) {
        while (at < nids && ids[at] < reps[i].region)
            at++;
        if (at < nids && ids[at] == reps[i].region)
            reps[kept++] = reps[i];
    }
    free(ids);
    if (kept == 0) {
        free(reps);
        reps = NULL;
    }
    *replicas_p = reps;
    *count_p = kept;
    return FP_OK;
}

static fp_status_t etcd_replica_put(fp_meta_store_t *store, const fp_meta_replica_t *replica)
{
    meta_etcd_t *me = me_of(store);
    char rkey[KEY_MAX], key[KEY_MAX], *value;
    fp_etcd_cmp_t cmps[2];
    fp_etcd_op_t op;
    fp_status_t status;
    bool ok = false;

    if (replica == NULL)
        return FP_ERR_INVALID_PARAM;
    key_region(me, rkey, replica->region);
    key_replica(me, key, replica->region, replica->index, replica->node);
    value = replica_encode(replica, replica->region);
    if (value == NULL)
        return FP_ERR_NO_MEMORY;
    cmps[1] = (fp_etcd_cmp_t){.key = rkey, .target = FP_ETCD_CREATE, .result = FP_ETCD_GREATER};
    op =
        (fp_etcd_op_t){.type = FP_ETCD_PUT, .key = key, .value = value, .value_len = strlen(value)};
    status = txn_run(me, cmps, 2, &op, 1, &ok);
    free(value);
    if (status == FP_OK && !ok) {
        fp_debug(me->base.log, "meta store %s: a replica of no region %" PRIu64, me->url,
                 replica->region);
        status = FP_ERR_NO_ENTRY;
    }
    return status;
}

static fp_status_t etcd_replica_delete(fp_meta_store_t *store, uint64_t region, uint32_t index,
                                       uint64_t node)
{
    meta_etcd_t *me = me_of(store);
    char key[KEY_MAX];
    fp_etcd_cmp_t cmps[2];
    fp_etcd_op_t op = {.type = FP_ETCD_DELETE, .key = key};
    fp_status_t status;
    bool ok = false;

    key_replica(me, key, region, index, node);
    cmps[1] = (fp_etcd_cmp_t){.key = key, .target = FP_ETCD_CREATE, .result = FP_ETCD_GREATER};
    status = txn_run(me, cmps, 2, &op, 1, &ok);
    if (status == FP_OK && !ok)
        status = FP_ERR_NO_ENTRY;
    return status;
}

/* ---- counters ---- */

static fp_status_t etcd_value_get(fp_meta_store_t *store, const char *key, uint64_t *value_p)
{
    meta_etcd_t *me = me_of(store);
    char vkey[KEY_MAX];
    int64_t rev;

    if (key == NULL || value_p == NULL)
        return FP_ERR_INVALID_PARAM;
    if (atomic_load(&me->lost) && regain(me) != FP_OK)
        return lost_fail(me);
    if (!key_fmt(me, vkey, "values/%s", key))
        return FP_ERR_INVALID_PARAM;
    return counter_read(me, vkey, value_p, &rev);
}

static fp_status_t etcd_value_put(fp_meta_store_t *store, const char *key, uint64_t value)
{
    meta_etcd_t *me = me_of(store);
    char vkey[KEY_MAX], text[24];
    fp_etcd_cmp_t cmps[1];
    fp_etcd_op_t op = {.type = FP_ETCD_PUT, .key = vkey, .value = text};
    bool ok = false;

    if (key == NULL || !key_fmt(me, vkey, "values/%s", key))
        return FP_ERR_INVALID_PARAM;
    snprintf(text, sizeof(text), "%" PRIu64, value);
    op.value_len = strlen(text);
    return txn_run(me, cmps, 1, &op, 1, &ok);
}

/* ---- members' liveness ---- */

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* Which of @node_ids have a key under P/members/: one range read, keys only. */
static fp_status_t etcd_member_live(fp_meta_store_t *store, const uint64_t *node_ids, size_t count,
                                    bool *live_p)
{
    meta_etcd_t *me = me_of(store);
    char prefix[KEY_MAX];
    fp_etcd_kv_t *kvs = NULL;
    uint64_t *held = NULL;
    size_t n = 0, nheld = 0, plen;
    fp_status_t status;

    key_fmt(me, prefix, "%s/", FP_ETCD_MEMBERS_DIR);
    plen = strlen(prefix);
    status = fp_etcd_range_prefix(me->live_etcd, prefix, true, &kvs, &n);
    if (status != FP_OK) {
        if (!me->live_failing)
            fp_warn(me->base.log,
                    "meta store %s: cannot read the members' lease keys (%s): no member is "
                    "declared dead by its lease until etcd answers again",
                    me->url, fp_status_string(status));
        me->live_failing = true;
        return FP_ERR_IO;
    }
    if (me->live_failing)
        fp_info(me->base.log, "meta store %s: the members' lease keys can be read again", me->url);
    me->live_failing = false;
    /* etcd answers: a lost store takes the service back now (at most once per
     * REGAIN_MS), not at its next change, so that members and clients find it
     * through P/service again. */
    if (atomic_load(&me->lost))
        (void)regain(me);
    if (n > 0 && (held = malloc(n * sizeof(*held))) == NULL) {
        fp_etcd_kvs_free(kvs, n);
        return FP_ERR_NO_MEMORY;
    }
    for (size_t i = 0; i < n; i++) {
        const char *hex = kvs[i].key + plen;
        char *end = NULL;
        uint64_t id;

        errno = 0;
        id = strtoull(hex, &end, 16);
        if (errno != 0 || end == hex || *end != '\0' || end - hex != 16)
            continue; /* not a member's key: it names nobody */
        held[nheld++] = id;
    }
    fp_etcd_kvs_free(kvs, n);
    if (nheld > 1)
        qsort(held, nheld, sizeof(*held), u64_cmp);
    for (size_t i = 0; i < count; i++)
        live_p[i] = nheld > 0 && bsearch(&node_ids[i], held, nheld, sizeof(*held), u64_cmp) != NULL;
    free(held);
    return FP_OK;
}

/* ---- writer leases ---- */

/* The writers key of @region: its holder (decoded from hex) and etcd lease. */
static fp_status_t writer_read(meta_etcd_t *me, uint64_t region, uint8_t *holder, int64_t *lease_p)
{
    char key[KEY_MAX];
    fp_etcd_kv_t kv = {0};
    fp_status_t status;
    size_t len = 0;

    key_writer(me, key, region);
    status = fp_etcd_get(me->etcd, key, &kv);
    if (status == FP_OK) {
        if (sodium_hex2bin(holder, FP_PROTO_KEY_SIZE, (const char *)kv.value, kv.value_len, NULL,
                           &len, NULL) != 0 ||
            len != FP_PROTO_KEY_SIZE || kv.lease <= 0) {
            fp_error(me->base.log, "meta store %s: %s is not a writer's key and lease", me->url,
                     key);
            status = FP_ERR_IO;
        } else {
            *lease_p = kv.lease;
        }
    }
    fp_etcd_kv_clear(&kv);
    return status;
}

/*
 * Renew etcd lease @lease: FP_ERR_NO_ENTRY if it is gone; its TTL (ms) into
 * *@ttl_ms_p.
 */
static fp_status_t writer_keepalive(meta_etcd_t *me, int64_t lease, int *ttl_ms_p)
{
    int64_t ttl = 0;
    fp_status_t status = fp_etcd_lease_keepalive(me->etcd, lease, &ttl); /* gone: NO_ENTRY */

    if (status == FP_OK)
        *ttl_ms_p = ttl > INT32_MAX / 1000 ? INT32_MAX : (int)(ttl * 1000);
    return status;
}

/*
 * Create P/writers/<region> = @holder (hex) under a new lease, on the
 * condition that it does not exist; where it exists and is @holder's, its
 * lease renewed. The grant is revoked again if the key is not created.
 */
static fp_status_t etcd_writer_take(fp_meta_store_t *store, uint64_t region, const uint8_t *holder,
                                    int ttl_ms, uint64_t *lease_p, int *ttl_ms_p)
{
    meta_etcd_t *me = me_of(store);
    char key[KEY_MAX], hex[2 * FP_PROTO_KEY_SIZE + 1];
    uint8_t held[FP_PROTO_KEY_SIZE];
    fp_etcd_cmp_t cmps[2];
    fp_etcd_op_t op;
    int64_t ttl_s = ttl_ms <= 0 ? 1 : ((int64_t)ttl_ms + 999) / 1000, lease = 0, granted = 0, have;
    fp_status_t status;
    bool ok = false;

    if (holder == NULL || lease_p == NULL || ttl_ms_p == NULL)
        return FP_ERR_INVALID_PARAM;
    key_writer(me, key, region);
    sodium_bin2hex(hex, sizeof(hex), holder, FP_PROTO_KEY_SIZE);
    for (int tries = 0; tries < RETRY_MAX; tries++) {
        /* Held already, by this key: its lease renewed. */
        status = writer_read(me, region, held, &have);
        if (status == FP_OK) {
            if (memcmp(held, holder, sizeof(held)) != 0)
                return FP_ERR_IN_USE;
            status = writer_keepalive(me, have, ttl_ms_p);
            if (status == FP_OK)
                *lease_p = (uint64_t)have;
            if (status != FP_ERR_NO_ENTRY)
                return status;
            continue; /* expiring just now: the key goes with it */
        }
        if (status != FP_ERR_NO_ENTRY)
            return status;
        if (lease == 0) {
            status = fp_etcd_lease_grant(me->etcd, ttl_s, &lease, &granted);
            if (status != FP_OK)
                return status;
        }
        cmps[1] = (fp_etcd_cmp_t){.key = key, .target = FP_ETCD_CREATE, .result = FP_ETCD_EQUAL};
        op = (fp_etcd_op_t){.type = FP_ETCD_PUT,
                            .key = key,
                            .value = hex,
                            .value_len = strlen(hex),
                            .lease = lease};
        status = txn_run(me, cmps, 2, &op, 1, &ok);
        if (status != FP_OK)
            break;
        if (ok) {
            *lease_p = (uint64_t)lease;
            *ttl_ms_p = granted > INT32_MAX / 1000 ? INT32_MAX : (int)(granted * 1000);
            return FP_OK;
        }
        /* Taken meanwhile (another service?): read it again. */
    }
    if (status == FP_OK)
        status = conflict_fail(me, "take a writer lease");
    if (lease != 0)
        (void)fp_etcd_lease_revoke(me->etcd, lease);
    return status;
}

/* A keepalive of the lease of P/writers/<region>, if that key is still under it. */
static fp_status_t etcd_writer_renew(fp_meta_store_t *store, uint64_t region, uint64_t lease,
                                     int *ttl_ms_p)
{
    meta_etcd_t *me = me_of(store);
    uint8_t held[FP_PROTO_KEY_SIZE];
    int64_t have = 0;
    fp_status_t status;

    if (ttl_ms_p == NULL || lease == 0 || lease > INT64_MAX)
        return FP_ERR_INVALID_PARAM;
    if (atomic_load(&me->lost) && regain(me) != FP_OK)
        return lost_fail(me);
    status = writer_read(me, region, held, &have);
    if (status == FP_OK && have != (int64_t)lease)
        status = FP_ERR_NO_ENTRY; /* the key is another lease's now */
    if (status == FP_OK)
        status = writer_keepalive(me, have, ttl_ms_p);
    return status;
}

/* Revoke the lease: P/writers/<region> goes at once. */
static fp_status_t etcd_writer_release(fp_meta_store_t *store, uint64_t region, uint64_t lease)
{
    meta_etcd_t *me = me_of(store);
    fp_status_t status;

    (void)region;
    if (lease == 0 || lease > INT64_MAX)
        return FP_ERR_INVALID_PARAM;
    if (atomic_load(&me->lost) && regain(me) != FP_OK)
        return lost_fail(me);
    status = fp_etcd_lease_revoke(me->etcd, (int64_t)lease);
    return status == FP_ERR_NO_ENTRY ? FP_OK : status;
}

static fp_status_t etcd_writer_get(fp_meta_store_t *store, uint64_t region, uint8_t *holder_p,
                                   uint64_t *lease_p)
{
    uint8_t held[FP_PROTO_KEY_SIZE];
    int64_t lease = 0;
    fp_status_t status;

    if (holder_p == NULL || lease_p == NULL)
        return FP_ERR_INVALID_PARAM;
    status = writer_read(me_of(store), region, held, &lease);
    if (status == FP_OK) {
        memcpy(holder_p, held, sizeof(held));
        *lease_p = (uint64_t)lease;
    }
    return status;
}

/* ---- the lease keeper ---- */

/* Renew the lease every TTL/3 until told to stop or the lease is lost. */
static void *keeper_main(void *arg)
{
    meta_etcd_t *me = arg;
    uint64_t interval = (uint64_t)me->ttl_ms / 3, last_ok = mono_ms();
    struct timespec until;

    if (interval < KEEPER_MIN_MS)
        interval = KEEPER_MIN_MS;
    pthread_mutex_lock(&me->lock);
    while (!me->stop) {
        fp_status_t status;
        uint64_t now;

        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)(interval / 1000);
        until.tv_nsec += (long)(interval % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!me->stop && pthread_cond_timedwait(&me->cond, &me->lock, &until) == 0)
            ;
        if (me->stop)
            break;
        pthread_mutex_unlock(&me->lock);
        status = fp_etcd_lease_keepalive(me->keeper_etcd, me->lease, NULL);
        now = mono_ms();
        pthread_mutex_lock(&me->lock);
        if (status == FP_OK) {
            last_ok = now;
            continue;
        }
        if (status == FP_ERR_NO_ENTRY || now - last_ok >= (uint64_t)me->ttl_ms) {
            atomic_store(&me->lost, true);
            fp_error(me->base.log,
                     "meta store %s: the lease of %s is %s: this farpoold is no longer the pool's "
                     "metadata service, and every later change is refused",
                     me->url, me->service_key,
                     status == FP_ERR_NO_ENTRY ? "gone" : "not renewed within its TTL");
            break;
        }
        fp_warn(me->base.log, "meta store %s: cannot renew the lease of %s (%s); trying again",
                me->url, me->service_key, fp_status_string(status));
    }
    pthread_mutex_unlock(&me->lock);
    return NULL;
}

/* ---- open and close ---- */

static fp_status_t keeper_start(meta_etcd_t *me)
{
    me->stop = false;
    if (pthread_create(&me->keeper, NULL, keeper_main, me) != 0) {
        fp_error(me->base.log, "meta store %s: cannot start the lease keeper thread", me->url);
        return FP_ERR_NO_MEMORY;
    }
    me->keeper_started = true;
    return FP_OK;
}

/* Stop the keeper thread (which may have ended by itself, the lease lost). */
static void keeper_stop(meta_etcd_t *me)
{
    if (!me->keeper_started)
        return;
    pthread_mutex_lock(&me->lock);
    me->stop = true;
    pthread_cond_signal(&me->cond);
    pthread_mutex_unlock(&me->lock);
    pthread_join(me->keeper, NULL);
    me->keeper_started = false;
}

static fp_status_t service_take(meta_etcd_t *me);

/*
 * No other service took P/service since this store last held it: P/taken,
 * which every take writes in the same transaction, is still this store's
 * (its mod_revision is P/service's create_revision). Where P/taken is
 * missing (deleted by hand), the cluster's revision must have moved by at
 * most P/service's deletion since @seen, this store's last answer.
 */
static bool untaken_since(meta_etcd_t *me, int64_t seen)
{
    fp_etcd_kv_t kv = {0};
    fp_status_t status = fp_etcd_get(me->etcd, me->taken_key, &kv);
    bool untaken = status == FP_OK && kv.mod_revision == me->service_rev;

    fp_etcd_kv_clear(&kv);
    if (status == FP_ERR_NO_ENTRY)
        untaken = fp_etcd_revision(me->etcd) <= seen + 1;
    return untaken;
}

/*
 * The store was found lost: its lease not renewed within the TTL (etcd was
 * away, or this process paused) or gone. Take the service back, unless
 * another service may have written meanwhile:
 *   - P/service still ours: the lease outlived the outage (etcd renews every
 *     lease when it starts again); renewed, and the keeper started again;
 *   - P/service free, and no other service took it since (untaken_since):
 *     nothing else was written, so what this service holds in memory is
 *     still the truth; the key is taken again under a new lease (the
 *     members' lease keys, which members write and expire meanwhile, do not
 *     count);
 *   - otherwise another service was here: the store stays lost for good.
 * Tried at most once per REGAIN_MS. On the store's thread.
 */
static fp_status_t regain(meta_etcd_t *me)
{
    int64_t seen = fp_etcd_revision(me->etcd);
    uint64_t now = mono_ms();
    fp_etcd_kv_t kv = {0};
    fp_status_t status;

    if (me->ousted || now - me->regain_ms < REGAIN_MS)
        return FP_ERR_IO;
    me->regain_ms = now;
    keeper_stop(me);
    status = fp_etcd_get(me->etcd, me->service_key, &kv);
    if (status == FP_OK && kv.create_revision == me->service_rev) {
        status = fp_etcd_lease_keepalive(me->etcd, me->lease, NULL);
        if (status == FP_ERR_NO_ENTRY)
            status = FP_ERR_IO; /* expiring just now: the next try finds the key free */
    } else if (status == FP_ERR_NO_ENTRY && untaken_since(me, seen)) {
        status = service_take(me);
    } else if (status == FP_OK || status == FP_ERR_NO_ENTRY) {
        me->ousted = true;
        fp_error(me->base.log,
                 "meta store %s: another metadata service wrote to the pool, or may have, while "
                 "this one was cut off (%s %s%s): this farpoold stays out; restart it to serve "
                 "again",
                 me->url, me->service_key, status == FP_OK ? "is held by " : "is free",
                 status == FP_OK ? (const char *)kv.value : "");
        status = FP_ERR_IO;
    }
    fp_etcd_kv_clear(&kv);
    if (status == FP_OK)
        status = keeper_start(me);
    if (status != FP_OK)
        return status;
    atomic_store(&me->lost, false);
    fp_info(me->base.log, "meta store %s: %s is the pool's metadata service again", me->url,
            me->addr);
    return FP_OK;
}

static void me_free(meta_etcd_t *me)
{
    keeper_stop(me);
    if (me->sync_ready) {
        pthread_cond_destroy(&me->cond);
        pthread_mutex_destroy(&me->lock);
    }
    if (me->lease != 0 && me->etcd != NULL) {
        fp_status_t status = fp_etcd_lease_revoke(me->etcd, me->lease);

        if (status != FP_OK && status != FP_ERR_NO_ENTRY)
            fp_warn(me->base.log,
                    "meta store %s: cannot give the lease of %s back (%s): it "
                    "expires in %d ms",
                    me->url, me->service_key, fp_status_string(status), me->ttl_ms);
    }
    fp_etcd_close(me->live_etcd);
    fp_etcd_close(me->keeper_etcd);
    fp_etcd_close(me->etcd);
    free(me);
}

static void etcd_close(fp_meta_store_t *store)
{
    if (store != NULL)
        me_free(me_of(store));
}

static const fp_meta_ops_t etcd_ops = {
    .name = "etcd",
    .close = etcd_close,
    .node_put = etcd_node_put,
    .node_list = etcd_node_list,
    .region_add = etcd_region_add,
    .region_update = etcd_region_update,
    .region_delete = etcd_region_delete,
    .region_list = etcd_region_list,
    .replica_list = etcd_replica_list,
    .replica_put = etcd_replica_put,
    .replica_delete = etcd_replica_delete,
    .value_get = etcd_value_get,
    .value_put = etcd_value_put,
    .member_live = etcd_member_live,
    .writer_take = etcd_writer_take,
    .writer_renew = etcd_writer_renew,
    .writer_release = etcd_writer_release,
    .writer_get = etcd_writer_get,
};

/* Take P/service for @me->addr under a new lease; FP_ERR_IN_USE if another holds it. */
static fp_status_t service_take(meta_etcd_t *me)
{
    int64_t ttl_s = (me->ttl_ms + 999) / 1000, granted = 0;
    fp_etcd_cmp_t cmp = {.key = me->service_key, .target = FP_ETCD_CREATE, .result = FP_ETCD_EQUAL};
    fp_etcd_op_t ops[2] = {{.type = FP_ETCD_PUT,
                            .key = me->service_key,
                            .value = me->addr,
                            .value_len = strlen(me->addr)},
                           {.type = FP_ETCD_PUT,
                            .key = me->taken_key,
                            .value = me->addr,
                            .value_len = strlen(me->addr)}};
    fp_etcd_kv_t kv = {0};
    fp_status_t status;
    bool ok = false;

    status = fp_etcd_lease_grant(me->etcd, ttl_s, &me->lease, &granted);
    if (status != FP_OK)
        return status;
    ops[0].lease = me->lease;
    for (int tries = 0;; tries++) {
        status = fp_etcd_txn(me->etcd, &cmp, 1, ops, 2, &ok);
        if (status != FP_OK)
            return status;
        status = fp_etcd_get(me->etcd, me->service_key, &kv);
        if (status == FP_ERR_NO_ENTRY && !ok && tries < 3)
            continue; /* the holder's lease expired just now: try again */
        if (status == FP_ERR_NO_ENTRY) {
            fp_error(me->base.log, "meta store %s: %s vanished as it was taken", me->url,
                     me->service_key);
            return FP_ERR_IO;
        }
        if (status != FP_OK)
            return status;
        break;
    }
    if (!ok || kv.lease != me->lease) {
        fp_error(me->base.log,
                 "meta store %s: the pool already has a metadata service: %s holds %s (another "
                 "farpoold with this --meta-dir? the key is free once that service stops, or "
                 "its lease's TTL after it dies)",
                 me->url, (const char *)kv.value, me->service_key);
        fp_etcd_kv_clear(&kv);
        return FP_ERR_IN_USE;
    }
    me->service_rev = kv.create_revision;
    fp_etcd_kv_clear(&kv);
    fp_info(me->base.log,
            "meta store %s: %s is the pool's metadata service (lease TTL %" PRId64 " s)", me->url,
            me->addr, granted);
    return FP_OK;
}

/* Delete the replicas of regions that do not exist: leftovers of a large add cut short. */
static fp_status_t orphans_drop(meta_etcd_t *me)
{
    char prefix[KEY_MAX];
    fp_etcd_kv_t *kvs = NULL;
    uint64_t *ids = NULL, gone = 0;
    size_t n = 0, nids = 0, at = 0, plen;
    fp_status_t status;

    key_fmt(me, prefix, "replicas/");
    plen = strlen(prefix);
    status = fp_etcd_range_prefix(me->etcd, prefix, true, &kvs, &n);
    if (status == FP_OK)
        status = region_ids(me, &ids, &nids);
    for (size_t i = 0; i < n && status == FP_OK; i++) {
        uint64_t region = strtoull(kvs[i].key + plen, NULL, 16);

        while (at < nids && ids[at] < region)
            at++;
        if ((at < nids && ids[at] == region) || (gone != 0 && gone == region))
            continue;
        gone = region;
        fp_info(me->base.log,
                "meta store %s: deleting the replicas of region %" PRIu64
                ", whose add was cut short",
                me->url, region);
        status = replicas_drop(me, region);
    }
    free(ids);
    fp_etcd_kvs_free(kvs, n);
    return status;
}

fp_status_t fp_meta_etcd_open(const char *url, const char *service_addr, int ttl_ms,
                              const fp_log_t *log, fp_meta_store_t **store_p)
{
    meta_etcd_t *me;
    fp_etcd_url_t parsed;
    fp_status_t status;
    int keeper_timeout;

    if (url == NULL || service_addr == NULL || service_addr[0] == '\0' ||
        strlen(service_addr) >= FP_META_ADDR_MAX || store_p == NULL)
        return FP_ERR_INVALID_PARAM;
    status = fp_etcd_url_parse(url, log, &parsed);
    if (status != FP_OK)
        return status;
    me = calloc(1, sizeof(*me));
    if (me == NULL)
        return FP_ERR_NO_MEMORY;
    me->base.ops = &etcd_ops;
    me->base.log = log;
    me->ttl_ms = ttl_ms > 0 ? ttl_ms : TTL_MS_DEF;
    atomic_init(&me->lost, false);
    snprintf(me->url, sizeof(me->url), "%s", url);
    snprintf(me->prefix, sizeof(me->prefix), "%s", parsed.prefix);
    snprintf(me->addr, sizeof(me->addr), "%s", service_addr);
    key_fmt(me, me->service_key, "%s", FP_ETCD_SERVICE_KEY);
    key_fmt(me, me->taken_key, "taken");
    keeper_timeout = me->ttl_ms / 3 < FP_ETCD_TIMEOUT_MS ? me->ttl_ms / 3 : FP_ETCD_TIMEOUT_MS;
    if (keeper_timeout < KEEPER_MIN_MS)
        keeper_timeout = KEEPER_MIN_MS;
    status = fp_etcd_open(url, 0, log, &me->etcd);
    if (status == FP_OK)
        status = fp_etcd_open(url, keeper_timeout, log, &me->keeper_etcd);
    if (log != NULL)
        me->quiet = *log;
    else
        fp_log_init(&me->quiet, "farpool", FP_LOG_WARN, NULL, NULL);
    me->quiet.level = -1;
    if (status == FP_OK)
        status = fp_etcd_open(url, keeper_timeout, &me->quiet, &me->live_etcd);
    if (status == FP_OK)
        status = service_take(me);
    if (status == FP_OK)
        status = orphans_drop(me);
    if (status != FP_OK)
        goto err_free;
    if (pthread_mutex_init(&me->lock, NULL) != 0) {
        status = FP_ERR_NO_MEMORY;
        goto err_free;
    }
    {
        pthread_condattr_t attr;

        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        if (pthread_cond_init(&me->cond, &attr) != 0) {
            pthread_condattr_destroy(&attr);
            pthread_mutex_destroy(&me->lock);
            status = FP_ERR_NO_MEMORY;
            goto err_free;
        }
        pthread_condattr_destroy(&attr);
    }
    me->sync_ready = true;
    status = keeper_start(me);
    if (status != FP_OK)
        goto err_free;
    *store_p = &me->base;
    return FP_OK;

err_free:
    me_free(me);
    return status;
}

/* ---- a member's lease key ---- */

#define MEMBER_RETRY_MS 1000 /* a member's keeper tries again this often while etcd is away */

struct fp_meta_etcd_member {
    fp_etcd_t *etcd;     /* the member thread's own client */
    const fp_log_t *log; /* the daemon's */
    fp_log_t quiet;      /* etcd's: the thread says once itself that etcd is away */
    char url[FP_ETCD_PREFIX_MAX + FP_ETCD_ENDPOINTS_MAX * FP_ETCD_HOSTPORT_MAX + 16];
    char key[KEY_MAX];
    char addr[FP_META_ADDR_MAX];
    int ttl_ms;
    int64_t lease; /* the thread's: the lease held, 0: none */
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC */
    bool stop;
};

/* Wait @ms or until told to stop; true if told. */
static bool member_wait(fp_meta_etcd_member_t *m, uint64_t ms)
{
    struct timespec until;
    bool stop;

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->lock);
    while (!m->stop && pthread_cond_timedwait(&m->cond, &m->lock, &until) == 0)
        ;
    stop = m->stop;
    pthread_mutex_unlock(&m->lock);
    return stop;
}

/*
 * The key is there, under the lease held: put it if it was not put under
 * this lease yet (!@held), or if a read shows it gone.
 */
static fp_status_t member_key_ensure(fp_meta_etcd_member_t *m, bool held)
{
    fp_etcd_op_t op = {.type = FP_ETCD_PUT,
                       .key = m->key,
                       .value = m->addr,
                       .value_len = strlen(m->addr),
                       .lease = m->lease};
    fp_etcd_kv_t kv = {0};
    fp_status_t status;
    bool ok = false;

    if (held) {
        status = fp_etcd_get(m->etcd, m->key, &kv);
        if (status == FP_OK && kv.lease == m->lease) {
            fp_etcd_kv_clear(&kv);
            return FP_OK;
        }
        fp_etcd_kv_clear(&kv);
        if (status != FP_OK && status != FP_ERR_NO_ENTRY)
            return status;
        fp_warn(m->log, "etcd %s: %s was deleted behind this node's back: putting it again", m->url,
                m->key);
    }
    status = fp_etcd_txn(m->etcd, NULL, 0, &op, 1, &ok);
    if (status == FP_OK && !ok)
        status = FP_ERR_IO; /* no condition: cannot fail */
    return status;
}

/*
 * Hold the key: grant a lease and put the key, then renew it every TTL/3
 * and check the key is still there; a lease found gone is granted again.
 */
static void *member_lease_main(void *arg)
{
    fp_meta_etcd_member_t *m = arg;
    uint64_t interval = (uint64_t)m->ttl_ms / 3;
    int64_t ttl_s = (m->ttl_ms + 999) / 1000;
    bool said = false, registered = false, held = false; /* held: the key put under m->lease */
    int64_t granted = 0;                                 /* m->lease's TTL as etcd gave it */

    if (interval < KEEPER_MIN_MS)
        interval = KEEPER_MIN_MS;
    for (;;) {
        fp_status_t status;

        if (m->lease == 0) {
            status = fp_etcd_lease_grant(m->etcd, ttl_s, &m->lease, &granted);
        } else {
            status = fp_etcd_lease_keepalive(m->etcd, m->lease, NULL);
            if (status == FP_ERR_NO_ENTRY) {
                fp_warn(m->log,
                        "etcd %s: the lease of %s is gone (this node was stopped or cut off "
                        "past its TTL of %" PRId64 " s): registering again",
                        m->url, m->key, ttl_s);
                m->lease = 0;
                held = false;
                if (member_wait(m, 0))
                    break;
                continue;
            }
        }
        if (status == FP_OK)
            status = member_key_ensure(m, held);
        if (status == FP_OK) {
            if (!held)
                fp_info(m->log, "etcd %s: registered %s = %s under a lease of %" PRId64 " s",
                        m->url, m->key, m->addr, granted);
            else if (said)
                fp_info(m->log, "etcd %s: %s held again, under the same lease", m->url, m->key);
            registered = held = true;
            said = false;
        } else if (!said) {
            fp_warn(m->log, "etcd %s: cannot %s this node's lease key %s (%s); retrying", m->url,
                    registered ? "renew" : "register", m->key, fp_status_string(status));
            said = true;
        }
        if (member_wait(m,
                        status == FP_OK || interval < MEMBER_RETRY_MS ? interval : MEMBER_RETRY_MS))
            break;
    }
    if (m->lease != 0) {
        fp_status_t status = fp_etcd_lease_revoke(m->etcd, m->lease);

        if (status == FP_OK || status == FP_ERR_NO_ENTRY)
            fp_info(m->log, "etcd %s: %s revoked", m->url, m->key);
        else
            fp_warn(m->log,
                    "etcd %s: cannot revoke the lease of %s (%s): it expires in %" PRId64 " s",
                    m->url, m->key, fp_status_string(status), ttl_s);
        m->lease = 0;
    }
    return NULL;
}

fp_status_t fp_meta_etcd_member_start(const char *url, uint64_t node_id, const char *addr,
                                      int ttl_ms, const fp_log_t *log,
                                      fp_meta_etcd_member_t **member_p)
{
    fp_meta_etcd_member_t *m;
    pthread_condattr_t attr;
    fp_etcd_url_t parsed;
    fp_status_t status;
    int timeout;

    if (url == NULL || addr == NULL || addr[0] == '\0' || strlen(addr) >= FP_META_ADDR_MAX ||
        member_p == NULL)
        return FP_ERR_INVALID_PARAM;
    status = fp_etcd_url_parse(url, log, &parsed);
    if (status != FP_OK)
        return status;
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return FP_ERR_NO_MEMORY;
    m->log = log;
    if (log != NULL)
        m->quiet = *log;
    else
        fp_log_init(&m->quiet, "farpool", FP_LOG_WARN, NULL, NULL);
    m->quiet.level = -1;
    m->ttl_ms = ttl_ms > 0 ? ttl_ms : TTL_MS_DEF;
    snprintf(m->url, sizeof(m->url), "%s", url);
    snprintf(m->addr, sizeof(m->addr), "%s", addr);
    snprintf(m->key, sizeof(m->key), "%s/%s/%016" PRIx64, parsed.prefix, FP_ETCD_MEMBERS_DIR,
             node_id);
    timeout = m->ttl_ms / 3 < FP_ETCD_TIMEOUT_MS ? m->ttl_ms / 3 : FP_ETCD_TIMEOUT_MS;
    if (timeout < KEEPER_MIN_MS)
        timeout = KEEPER_MIN_MS;
    status = fp_etcd_open(url, timeout, &m->quiet, &m->etcd);
    if (status != FP_OK)
        goto err_free;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        status = FP_ERR_NO_MEMORY;
        goto err_close_etcd;
    }
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (pthread_cond_init(&m->cond, &attr) != 0) {
        pthread_condattr_destroy(&attr);
        status = FP_ERR_NO_MEMORY;
        goto err_destroy_lock;
    }
    pthread_condattr_destroy(&attr);
    if (pthread_create(&m->thread, NULL, member_lease_main, m) != 0) {
        fp_error(log, "etcd %s: cannot start the thread that keeps this node's lease key", url);
        status = FP_ERR_NO_MEMORY;
        goto err_destroy_cond;
    }
    *member_p = m;
    return FP_OK;

err_destroy_cond:
    pthread_cond_destroy(&m->cond);
err_destroy_lock:
    pthread_mutex_destroy(&m->lock);
err_close_etcd:
    fp_etcd_close(m->etcd);
err_free:
    free(m);
    return status;
}

void fp_meta_etcd_member_stop(fp_meta_etcd_member_t *m)
{
    if (m == NULL)
        return;
    pthread_mutex_lock(&m->lock);
    m->stop = true;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->lock);
    pthread_join(m->thread, NULL);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    fp_etcd_close(m->etcd);
    free(m);
}
