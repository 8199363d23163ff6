/*
 * forward-protocol/fwd_tls.h: TLS for the forward input (Fluentd's
 * <transport tls>), as a byte-in/byte-out engine over OpenSSL memory BIOs.
 *
 * The connection code keeps doing its own non-blocking read(2)/write(2) on
 * the socket inside its libevent callbacks; this module never touches a fd:
 *
 *   socket --read--> fwd_tls_feed --> fwd_tls_read --> plaintext (framer, PING, requests)
 *   plaintext (HELO, PONG, acks) --> fwd_tls_write --> fwd_tls_drain --> wire --write--> socket
 *
 * The handshake runs inside fwd_tls_read; whatever it wants to send (server
 * hello, alerts, session tickets, key update replies) is collected by
 * fwd_tls_drain. The SSL_CTX (fwd_tls_ctx) is built once at start-up on the
 * main thread and shared read-only by the workers; a fwd_tls_conn belongs
 * to one worker.
 */
#ifndef WEIR_FWD_TLS_H
#define WEIR_FWD_TLS_H

#include <stddef.h>

#include "lib/wbuf.h"
#include "config/conf.h"

typedef struct fwd_tls_ctx fwd_tls_ctx;
typedef struct fwd_tls_conn fwd_tls_conn;

/* Build from a <transport tls> section: loads and checks the certificate,
 * key (and passphrase), CA, versions and ciphers now, so every problem is a
 * FILE:LINE error at start-up (and in --dry-run). NULL on error. */
fwd_tls_ctx *fwd_tls_create(conf_node *transport, conf_errors *errs);
void fwd_tls_free(fwd_tls_ctx *t);
/* "TLS (min TLSv1.2, client certificates required)" for the start-up log. */
const char *fwd_tls_summary(const fwd_tls_ctx *t);

fwd_tls_conn *fwd_tls_conn_new(fwd_tls_ctx *t);
void fwd_tls_conn_free(fwd_tls_conn *c);

enum {
    FWD_TLS_WANT = 0,    /* fwd_tls_read: no plaintext until more ciphertext is fed */
    FWD_TLS_EOF = -1,    /* the peer sent close_notify */
    FWD_TLS_ERROR = -2,  /* fatal: handshake failure or bad record (err says why); close */
};

/* Hand ciphertext read from the socket to TLS. 0 or -1 (out of memory). */
int fwd_tls_feed(fwd_tls_conn *c, const void *p, size_t n);
/* Decrypt up to cap bytes into buf. >0: bytes; or FWD_TLS_WANT/EOF/ERROR. */
int fwd_tls_read(fwd_tls_conn *c, void *buf, size_t cap, char *err, size_t errlen);
/* Encrypt n plaintext bytes (only once established). 0 or -1 (err set). */
int fwd_tls_write(fwd_tls_conn *c, const void *p, size_t n, char *err, size_t errlen);
/* Append what TLS wants sent to `wire`. 0 or -1 (out of memory). */
int fwd_tls_drain(fwd_tls_conn *c, wbuf *wire);
/* Handshake complete? */
int fwd_tls_established(const fwd_tls_conn *c);
/* Queue a close_notify (collect it with fwd_tls_drain). */
void fwd_tls_shutdown(fwd_tls_conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384, client CN=node-1" for debug logs. */
void fwd_tls_describe(const fwd_tls_conn *c, char *buf, size_t cap);

#endif
