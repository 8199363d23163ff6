/*
 * forward-protocol/fwd_auth.h: the forward protocol's shared-key handshake
 * and user authentication (Fluentd in_forward's <security> section).
 *
 *   server                                   client
 *   ["HELO", {nonce, auth, keepalive}]  -->
 *                                       <--  ["PING", hostname, salt, hexdigest, username, password_digest]
 *   ["PONG", true, "", self_hostname, digest]   (or ["PONG", false, reason, "", ""] and close)
 *
 * hexdigest = hex(SHA-512(salt || hostname || nonce || shared_key)),
 * password_digest = hex(SHA-512(auth_salt || username || password)),
 * PONG digest = hex(SHA-512(salt || self_hostname || nonce || shared_key)).
 *
 * Pure functions of (configuration, session, peer address, message bytes):
 * no I/O, no logging, no globals, so the verifier is unit-tested and fuzzed
 * directly. The configuration is immutable once built and is shared by all
 * worker threads; a session belongs to one connection.
 */
#ifndef WEIR_FWD_AUTH_H
#define WEIR_FWD_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "lib/wbuf.h"
#include "config/conf.h"

#define FWD_AUTH_NONCE_LEN 16
#define FWD_AUTH_SALT_LEN 16
#define FWD_AUTH_HEX_LEN 128 /* hex SHA-512 */
/* A PING is a few hundred bytes; anything bigger before authentication is
 * refused without buffering it (an unauthenticated peer must not make us
 * hold chunk_size_limit bytes). */
#define FWD_AUTH_MAX_PING 16384

typedef struct fwd_auth_user {
    char *username, *password;
} fwd_auth_user;

/* One address range of a <client> (host resolved at start-up, or network). */
typedef struct fwd_auth_net {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
} fwd_auth_net;

typedef struct fwd_auth_client {
    char *host, *network, *shared_key, *previous_shared_key;
    char **users; /* allowed usernames; NULL or empty: every <user> */
    fwd_auth_net *nets;
    size_t nnets;
    /* the keys this client may use (its own, else the <security> ones) */
    const char *key, *prev_key;
} fwd_auth_client;

typedef struct fwd_auth {
    char *self_hostname;
    char *shared_key;
    char *previous_shared_key; /* weir: accepted too, for key rotation */
    int user_auth;
    int allow_anonymous_source;
    fwd_auth_user *users;
    size_t nusers;
    fwd_auth_client *clients;
    size_t nclients;
} fwd_auth;

/* Build from a <security> section; NULL (errors added as FILE:LINE) on error. */
fwd_auth *fwd_auth_create(conf_node *security, conf_errors *errs);
void fwd_auth_free(fwd_auth *a);

/* ---- digests (lowercase hex SHA-512, NUL-terminated; 0 or -1) ---- */
int fwd_auth_shared_key_digest(char out[FWD_AUTH_HEX_LEN + 1], const void *salt, size_t salt_len, const void *host,
                               size_t host_len, const void *nonce, size_t nonce_len, const void *key, size_t key_len);
int fwd_auth_password_digest(char out[FWD_AUTH_HEX_LEN + 1], const void *auth_salt, size_t salt_len,
                             const void *user, size_t user_len, const void *password, size_t password_len);

/* ---- one connection's handshake ---- */
typedef struct fwd_auth_session {
    uint8_t nonce[FWD_AUTH_NONCE_LEN];
    uint8_t salt[FWD_AUTH_SALT_LEN]; /* user auth salt, used when a->user_auth */
} fwd_auth_session;

/* Fresh random nonce (and salt) from OpenSSL's CSPRNG. 0 or -1. */
int fwd_auth_session_init(fwd_auth_session *s);
/* Append ["HELO", {"nonce": bin, "auth": bin salt | "", "keepalive": bool}]. */
int fwd_auth_helo(const fwd_auth *a, const fwd_auth_session *s, int keepalive, wbuf *out);

/* The first <client> whose host/network contains the peer address, or NULL.
 * IPv4-mapped IPv6 peers (a listener on "::") match IPv4 rules. */
const fwd_auth_client *fwd_auth_match_client(const fwd_auth *a, const struct sockaddr *peer);

enum {
    FWD_AUTH_OK = 0,
    FWD_AUTH_BAD_MESSAGE,   /* not a well-formed 6-element PING */
    FWD_AUTH_ANONYMOUS,     /* no <client> matches and allow_anonymous_source is false */
    FWD_AUTH_BAD_KEY,       /* shared key digest mismatch */
    FWD_AUTH_UNKNOWN_USER,  /* user_auth: no such <user> */
    FWD_AUTH_USER_DENIED,   /* user_auth: user not in the <client>'s users */
    FWD_AUTH_BAD_PASSWORD,  /* user_auth: password digest mismatch */
    FWD_AUTH_INTERNAL,      /* digest computation or out of memory */
};

typedef struct fwd_auth_result {
    int code;                /* FWD_AUTH_* */
    char reason[112];        /* what the PONG says ("" on success): Fluentd's words */
    char detail[200];        /* for weir's log: more precise than the reason */
    char hostname[72];       /* the PING's client hostname, printable, truncated */
    char username[72];       /* the PING's username, printable, truncated */
    int client;              /* index of the matching <client>, or -1 */
    int previous_key;        /* 1: the client used previous_shared_key */
} fwd_auth_result;

/*
 * Verify the client's first message `msg` (one complete msgpack object) and
 * append the PONG to `pong`. Digests are compared in constant time. Returns
 * FWD_AUTH_OK (PONG true appended: the connection is authenticated) or
 * another code (PONG false appended: send it and close).
 */
int fwd_auth_check_ping(const fwd_auth *a, const fwd_auth_session *s, const struct sockaddr *peer,
                        const uint8_t *msg, size_t len, wbuf *pong, fwd_auth_result *r);

/* Append ["PONG", false, reason, "", ""] (refusing input that is no PING at all). */
int fwd_auth_refuse(wbuf *pong, const char *reason);

/* Copy at most cap-1 bytes of s as printable ASCII (others as '?'), for logs. */
void fwd_auth_printable(char *out, size_t cap, const uint8_t *s, size_t len);

#endif
