/* SPDX-License-Identifier: MIT */
/* Backend-independent part of the transport; see transport.h. */
#include "transport.h"

#include <string.h>

static const fp_transport_ops_t *const backends[] = {&fp_transport_tcp_ops};

const fp_transport_ops_t *fp_transport_find(const char *name)
{
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i];
    }
    return NULL;
}

void fp_transport_params_default(fp_transport_params_t *params)
{
    memset(params, 0, sizeof(*params));
    params->connect_timeout_ms = 10000;
    params->max_inflight = 1024;
    /* 0: leave socket buffers to the kernel's autotuning, which on Linux grows
     * them to tcp_rmem/tcp_wmem's maximum (MiBs); a fixed SO_RCVBUF would be
     * clamped to rmem_max and disable autotuning. */
    params->sndbuf = 0;
    params->rcvbuf = 0;
}

fp_status_t fp_transport_connect(const fp_transport_ops_t *ops, const fp_addr_t *addr,
                                 const fp_transport_params_t *params, fp_transport_t **tp_p)
{
    fp_transport_params_t defaults;

    if (params == NULL) {
        fp_transport_params_default(&defaults);
        params = &defaults;
    }
    if (params->max_inflight != 0 && (params->max_inflight & (params->max_inflight - 1)) != 0)
        return FP_ERR_INVALID_PARAM;
    return ops->connect(addr, params, tp_p);
}

void fp_transport_close(fp_transport_t *tp)
{
    if (tp != NULL)
        tp->ops->close(tp);
}

size_t fp_iov_length(const struct iovec *iov, int iovcnt)
{
    size_t len = 0;

    for (int i = 0; i < iovcnt; i++)
        len += iov[i].iov_len;
    return len;
}
