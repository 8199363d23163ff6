/*
 * lib/fwd_digest.h: the forward protocol's handshake digest, lowercase hex
 * SHA-512 of parts concatenated (shared key: salt || hostname || nonce ||
 * key; password: auth_salt || username || password). Shared by the forward
 * input's verifier (forward-protocol/fwd_auth.c) and the forward output's
 * client (outputs/forward/), which are siblings and may not include each
 * other.
 */
#ifndef WEIR_LIB_FWD_DIGEST_H
#define WEIR_LIB_FWD_DIGEST_H

#include <stddef.h>

#define FWD_DIGEST_HEX_LEN 128

/* 0, or -1 (out is then ""). */
int fwd_digest_hex(char out[FWD_DIGEST_HEX_LEN + 1], const void *const *parts, const size_t *lens, int n);

#endif
