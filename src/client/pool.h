/* SPDX-License-Identifier: MIT */
/*
 * The client side of the pool's metadata: calls to the metadata node over a
 * farpool_node_t connection (POOL_* operations, proto/pool.h), and the
 * building of a region's map from them. The context uses these for pool
 * regions; the farpool tool for ls, status --pool, rm, drain and verify.
 *
 * Thread safety: as farpool_node_t: one thread at a time per connection.
 */
#ifndef FP_CLIENT_POOL_H
#define FP_CLIENT_POOL_H

#include <stddef.h>
#include <stdint.h>

#include <farpool/farpool.h>

#include "common/log.h"
#include "proto/pool.h"
#include "region_map.h"

/*
 * A pool is named by a URL of one of two kinds:
 *   farpool://HOST:PORT  the metadata node itself (a bare HOST:PORT is taken too);
 *   etcd://HOST:PORT[,HOST:PORT...]/PREFIX  an etcd cluster keeping the pool's
 *       records under PREFIX, where the metadata service registers its
 *       address (common/etcd.h, FP_ETCD_SERVICE_KEY).
 */

/*
 * The metadata node's "HOST:PORT" of a farpool:// URL @url into @addr
 * (@cap bytes). FP_ERR_UNSUPPORTED for another scheme (etcd:// included:
 * see fp_pool_url_resolve), FP_ERR_ADDRESS for junk.
 */
fp_status_t fp_pool_url_parse(const char *url, char *addr, size_t cap);

/* @url names a pool (either kind), by its syntax alone: FP_OK, else as fp_pool_url_parse. */
fp_status_t fp_pool_url_check(const char *url);

/*
 * Where the metadata service of pool @url is now, into @addr (@cap bytes):
 * a farpool:// URL's address, or what etcd says for an etcd:// one (asked
 * each time: a service that moved is found). FP_ERR_NO_ENTRY when no service
 * is registered there, FP_ERR_IO when etcd cannot be reached (both logged on
 * @log, which may be NULL).
 */
fp_status_t fp_pool_url_resolve(const char *url, const fp_log_t *log, char *addr, size_t cap);

/* Every member (*@nodes_p malloc'd, *@count_p of them). */
fp_status_t fp_pool_nodes(farpool_node_t *meta, fp_pool_node_entry_t **nodes_p, size_t *count_p);

/* Every region, pending ones included (state says). */
fp_status_t fp_pool_regions(farpool_node_t *meta, fp_pool_region_desc_t **regions_p,
                            size_t *count_p);

/* POOL_CREATE: @flags FP_POOL_REGION_*; @replicas 0: the pool's default. */
fp_status_t fp_pool_create(farpool_node_t *meta, const char *name, uint64_t size, uint32_t granule,
                           uint32_t flags, uint32_t replicas, fp_pool_region_desc_t *desc_p);

/* POOL_OPEN: @flags FP_POOL_OPEN_WRITE to take the writer lease. */
fp_status_t fp_pool_open(farpool_node_t *meta, const char *name, uint32_t flags,
                         fp_pool_region_desc_t *desc_p);

fp_status_t fp_pool_delete(farpool_node_t *meta, const char *name);
fp_status_t fp_pool_commit(farpool_node_t *meta, uint64_t region, uint64_t lease,
                           const uint8_t *checksum);
/* @op: FP_POOL_LEASE_RENEW or _RELEASE. FP_ERR_NO_ENTRY: the lease is lost. */
fp_status_t fp_pool_lease(farpool_node_t *meta, uint64_t region, uint64_t lease, uint32_t op);
fp_status_t fp_pool_drain(farpool_node_t *meta, const char *addr);
/* The copy of slab @index of @region on @addr missed a write: the pool drops it. */
fp_status_t fp_pool_stale(farpool_node_t *meta, uint64_t region, uint32_t index, const char *addr);

/*
 * The map of region @desc: its slabs' copies (POOL_MAP) and the addresses of
 * the members holding them (POOL_NODES). Copies being repaired and copies on
 * dead members are left out. by_key is set, with the region's key.
 */
fp_status_t fp_pool_region_map(farpool_node_t *meta, const fp_pool_region_desc_t *desc,
                               fp_region_map_t *map_p);

/* "healthy", "degraded", "repairing", "lost". */
const char *fp_pool_health_name(uint32_t health);
/* "live", "dead", "draining", "gone". */
const char *fp_pool_node_state_name(uint32_t state);

#endif /* FP_CLIENT_POOL_H */
