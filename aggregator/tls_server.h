/*
 * aggregator/tls_server.h: the server side of Fluentd's <transport tls> (the
 * forward input, the syslog input), as a byte-in/byte-out engine over
 * OpenSSL memory BIOs.
 *
 * The connection code keeps doing its own non-blocking read(2)/write(2) on
 * the socket inside its libevent callbacks; this module never touches a fd:
 *
 *   socket --read--> tls_srv_feed --> tls_srv_read --> plaintext (framer, PING, requests)
 *   plaintext (HELO, PONG, acks) --> tls_srv_write --> tls_srv_drain --> wire --write--> socket
 *
 * The handshake runs inside tls_srv_read; whatever it wants to send (server
 * hello, alerts, session tickets, key update replies) is collected by
 * tls_srv_drain. The SSL_CTX (tls_srv_ctx) is built once at start-up on the
 * main thread and shared read-only by the workers; a tls_srv_conn belongs
 * to one worker.
 */
#ifndef WEIR_TLS_SERVER_H
#define WEIR_TLS_SERVER_H

#include <stddef.h>

#include "lib/wbuf.h"
#include "config/conf.h"

typedef struct tls_srv_ctx tls_srv_ctx;
typedef struct tls_srv_conn tls_srv_conn;

/* Build from a <transport tls> section: loads and checks the certificate,
 * key (and passphrase), CA, versions and ciphers now, so every problem is a
 * FILE:LINE error at start-up (and in --dry-run). NULL on error. */
tls_srv_ctx *tls_srv_create(conf_node *transport, conf_errors *errs);
void tls_srv_free(tls_srv_ctx *t);
/* "TLS (min TLSv1.2, client certificates required)" for the start-up log. */
const char *tls_srv_summary(const tls_srv_ctx *t);

tls_srv_conn *tls_srv_conn_new(tls_srv_ctx *t);
void tls_srv_conn_free(tls_srv_conn *c);

enum {
    TLS_SRV_WANT = 0,    /* tls_srv_read: no plaintext until more ciphertext is fed */
    TLS_SRV_EOF = -1,    /* the peer sent close_notify */
    TLS_SRV_ERROR = -2,  /* fatal: handshake failure or bad record (err says why); close */
};

/* Hand ciphertext read from the socket to TLS. 0 or -1 (out of memory). */
int tls_srv_feed(tls_srv_conn *c, const void *p, size_t n);
/* Decrypt up to cap bytes into buf. >0: bytes; or TLS_SRV_WANT/EOF/ERROR. */
int tls_srv_read(tls_srv_conn *c, void *buf, size_t cap, char *err, size_t errlen);
/* Encrypt n plaintext bytes (only once established). 0 or -1 (err set). */
int tls_srv_write(tls_srv_conn *c, const void *p, size_t n, char *err, size_t errlen);
/* Append what TLS wants sent to `wire`. 0 or -1 (out of memory). */
int tls_srv_drain(tls_srv_conn *c, wbuf *wire);
/* Handshake complete? */
int tls_srv_established(const tls_srv_conn *c);
/* Queue a close_notify (collect it with tls_srv_drain). */
void tls_srv_shutdown(tls_srv_conn *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384, client CN=node-1" for debug logs. */
void tls_srv_describe(const tls_srv_conn *c, char *buf, size_t cap);

#endif
