/* SPDX-License-Identifier: MIT */
/*
 * Challenge-response authentication with a pre-shared secret, on libsodium's
 * HMAC-SHA-256. Each side proves it holds the secret by MACing both nonces and
 * the client key under its own role label; see docs/protocol.md.
 */
#include "proto.h"

#include <sodium.h>

static const char *const role_labels[] = {"farpool-v1 client", "farpool-v1 node"};

fp_status_t fp_proto_auth_mac(fp_proto_auth_role_t role, const uint8_t *secret, size_t secret_len,
                              const uint8_t *node_nonce, const uint8_t *client_nonce,
                              const uint8_t *client_key, uint8_t *mac)
{
    crypto_auth_hmacsha256_state state;
    const char *label = role_labels[role];

    if (sodium_init() < 0)
        return FP_ERR_IO;
    crypto_auth_hmacsha256_init(&state, secret, secret_len);
    crypto_auth_hmacsha256_update(&state, (const uint8_t *)label, strlen(label) + 1);
    crypto_auth_hmacsha256_update(&state, node_nonce, FP_PROTO_NONCE_SIZE);
    crypto_auth_hmacsha256_update(&state, client_nonce, FP_PROTO_NONCE_SIZE);
    crypto_auth_hmacsha256_update(&state, client_key, FP_PROTO_KEY_SIZE);
    crypto_auth_hmacsha256_final(&state, mac);
    sodium_memzero(&state, sizeof(state));
    return FP_OK;
}

fp_status_t fp_proto_auth_verify(fp_proto_auth_role_t role, const uint8_t *secret,
                                 size_t secret_len, const uint8_t *node_nonce,
                                 const uint8_t *client_nonce, const uint8_t *client_key,
                                 const uint8_t *mac)
{
    uint8_t expected[FP_PROTO_MAC_SIZE];
    fp_status_t status;

    status =
        fp_proto_auth_mac(role, secret, secret_len, node_nonce, client_nonce, client_key, expected);
    if (status != FP_OK)
        return status;
    status = sodium_memcmp(expected, mac, FP_PROTO_MAC_SIZE) == 0 ? FP_OK : FP_ERR_AUTH;
    sodium_memzero(expected, sizeof(expected));
    return status;
}

fp_status_t fp_proto_random(void *buf, size_t len)
{
    /* sodium_init() is idempotent and thread-safe; randombytes works after it. */
    if (sodium_init() < 0)
        return FP_ERR_IO;
    randombytes_buf(buf, len);
    return FP_OK;
}
