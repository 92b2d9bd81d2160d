/* SPDX-License-Identifier: MIT */
/*
 * farpool status codes.
 *
 * Every fallible farpool function returns an fp_status_t: FP_OK (zero) on
 * success, a negative FP_ERR_* value on failure. The same numbers travel on the
 * wire in reply frames, so the values below are part of the protocol and must
 * never be renumbered; new codes are appended.
 *
 * Thread safety: fp_status_string() is safe to call from any thread.
 */
#ifndef FARPOOL_STATUS_H
#define FARPOOL_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Marks the functions libfarpool.so exports. The library is built with
 * -fvisibility=hidden, so a public function without it does not link.
 */
#if defined(FP_BUILDING_LIBRARY)
#define FARPOOL_API __attribute__((visibility("default")))
#else
#define FARPOOL_API
#endif

typedef enum fp_status {
    FP_OK = 0,
    FP_ERR_NO_MEMORY = -1,     /* local allocation failed */
    FP_ERR_INVALID_PARAM = -2, /* a caller's argument is invalid */
    FP_ERR_IO = -3,            /* a system call failed */
    FP_ERR_TIMED_OUT = -4,     /* no answer within the deadline */
    FP_ERR_NOT_CONNECTED = -5, /* the peer closed or the connection broke */
    FP_ERR_PROTOCOL = -6,      /* a malformed or unexpected frame */
    FP_ERR_VERSION = -7,       /* the peer speaks another protocol version */
    FP_ERR_AUTH = -8,          /* authentication failed or is required */
    FP_ERR_NO_SPACE = -9,      /* the node has no capacity left */
    FP_ERR_NO_ENTRY = -10,     /* no such slab (or region) */
    FP_ERR_PERMISSION = -11,   /* the object belongs to somebody else */
    FP_ERR_OUT_OF_RANGE = -12, /* an offset or length past the object's end */
    FP_ERR_UNSUPPORTED = -13,  /* unknown operation or feature */
    FP_ERR_BUSY = -14,         /* too many requests in flight; progress and retry */
    FP_ERR_ADDRESS = -15,      /* an address could not be parsed or resolved */
    FP_ERR_TOO_LARGE = -16,    /* a frame or request over the protocol's limits */
    FP_ERR_CANCELED = -17,     /* the request was dropped before completion */
    FP_ERR_EXISTS = -18,       /* the name is taken (a region) */
    FP_ERR_IN_USE = -19,       /* the object is in use elsewhere (a region open) */
    FP_ERR_LAST = -20
} fp_status_t;

/*
 * A short, static, human-readable description of @status ("no space left on
 * node"). Unknown values give "unknown status". Never returns NULL.
 */
FARPOOL_API const char *fp_status_string(fp_status_t status);

#ifdef __cplusplus
}
#endif

#endif /* FARPOOL_STATUS_H */
