/* SPDX-License-Identifier: MIT */
/*
 * Internal side of the node connection (node.c): what the rest of the client
 * needs beyond the public farpool_node_* API. Named regions (region_meta.c)
 * and the fault engine use these.
 *
 * Thread safety: as farpool_node_t: one thread at a time per handle.
 */
#ifndef FP_CLIENT_NODE_H
#define FP_CLIENT_NODE_H

#include <stdint.h>

#include <farpool/farpool.h>

#include "transport/transport.h"

/*
 * The node's transport, for callers that drive requests themselves (the fault
 * engine). NULL once the connection broke. Owned by @node.
 */
fp_transport_t *fp_node_transport(farpool_node_t *node);

/* Close the connection now, completing every xfer in flight with an error. */
void fp_node_disconnect(farpool_node_t *node);

/* The deadline of one operation, as set at connect. */
int fp_node_timeout_ms(const farpool_node_t *node);

/* The node's address as given to farpool_node_connect(). */
const char *fp_node_addr(const farpool_node_t *node);

/* The node id and slab size the node said in its HELLO. */
uint64_t fp_node_id(const farpool_node_t *node);
uint64_t fp_node_slab_size(const farpool_node_t *node);

/* One blocking control request: send @len payload bytes, receive up to @rsp_cap. */
fp_status_t fp_node_call(farpool_node_t *node, uint8_t op, const void *payload, size_t len,
                         void *rsp, size_t rsp_cap, uint32_t *rsp_len_p);

#endif /* FP_CLIENT_NODE_H */
