/* SPDX-License-Identifier: MIT */
/* Status codes to text; see include/farpool/status.h. */
#include <farpool/status.h>

const char *fp_status_string(fp_status_t status)
{
    switch (status) {
    case FP_OK:
        return "success";
    case FP_ERR_NO_MEMORY:
        return "out of memory";
    case FP_ERR_INVALID_PARAM:
        return "invalid parameter";
    case FP_ERR_IO:
        return "input/output error";
    case FP_ERR_TIMED_OUT:
        return "timed out";
    case FP_ERR_NOT_CONNECTED:
        return "not connected";
    case FP_ERR_PROTOCOL:
        return "protocol error";
    case FP_ERR_VERSION:
        return "protocol version mismatch";
    case FP_ERR_AUTH:
        return "authentication failed";
    case FP_ERR_NO_SPACE:
        return "no space left on node";
    case FP_ERR_NO_ENTRY:
        return "no such slab or region";
    case FP_ERR_PERMISSION:
        return "permission denied";
    case FP_ERR_OUT_OF_RANGE:
        return "offset or length out of range";
    case FP_ERR_UNSUPPORTED:
        return "unsupported operation";
    case FP_ERR_BUSY:
        return "too many requests in flight";
    case FP_ERR_ADDRESS:
        return "bad address";
    case FP_ERR_TOO_LARGE:
        return "request too large";
    case FP_ERR_CANCELED:
        return "canceled";
    case FP_ERR_EXISTS:
        return "already exists";
    case FP_ERR_IN_USE:
        return "in use";
    case FP_ERR_LAST:
        break;
    }
    return "unknown status";
}
