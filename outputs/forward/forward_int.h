/*
 * outputs/forward/forward_int.h: the forward output's state, shared by its
 * files: forward.c (configuration, servers, writes, metrics) and conn.c
 * (connections: TCP/TLS connect, the shared-key handshake, reads and writes
 * with timeouts). Not for other plugins.
 */
#ifndef WEIR_OUTPUTS_FORWARD_INT_H
#define WEIR_OUTPUTS_FORWARD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "lib/wbuf.h"
#include "outputs/forward/sd.h"

typedef struct fwd_server {
    char *host, *name, *shared_key, *username, *password;
    int64_t port, weight;
    int standby;
    /* state (under the output's mutex) */
    int sock;
    SSL *ssl;
    double down_until; /* monotonic s */
    double last_used;
    int64_t cw; /* smooth weighted round robin */
    atomic_uint_fast64_t sent, acked, failures;
    atomic_int available;
    /* 1: a write may pick it; a slot of <service_discovery> @type srv: 0 while its records no longer list it
     * (written by the refresh thread) */
    atomic_int active;
    int from_srv; /* a slot of @type srv (immutable) */
} fwd_server;

typedef struct out_forward {
    /* bound */
    int transport; /* 0 tcp, 1 tls */
    int compress;  /* 0 text, 1 gzip */
    int require_ack_response;
    double ack_response_timeout, send_timeout, connect_timeout, hard_timeout, heartbeat_interval, recover_wait;
    double keepalive_timeout;
    int heartbeat_type; /* transport|tcp|udp|none */
    int keepalive, send_keepalive_packet;
    int phi_failure_detector, ignore_network_errors_at_startup, verify_connection_at_startup, dns_round_robin;
    double phi_threshold, expire_dns_cache;
    char **tls_cert_path;
    int tls_verify_hostname, tls_insecure_mode, tls_allow_self_signed_cert;
    char *tls_version, *tls_min_version, *tls_max_version, *tls_ciphers;
    char *tls_client_cert_path, *tls_client_private_key_path, *tls_client_private_key_passphrase;
    char *tls_cert_thumbprint, *tls_cert_logical_store_name;
    int tls_cert_use_enterprise_store;
    /* <security> */
    int has_security;
    char *self_hostname, *shared_key, *username, *password;
    /* compiled */
    fwd_server *servers;
    /* The servers in use: [0, nservers). Without @type srv it is set at init and never changes. With it,
     * servers has SRV_SLOTS more slots, allocated at init and never moved nor freed until exit: the
     * refresh thread fills a slot (host, name, port, weight are then immutable) and only then publishes
     * it (a release store of nservers; readers load it with acquire); a slot is never emptied, only
     * its `active` flag changes (docs/outputs/forward.md). */
    atomic_size_t nservers;
    size_t nstatic; /* the servers written in the configuration (the slots of srv follow them) */
    fwd_sd_srv *srv;
    pthread_t srv_thread;
    int srv_started, srv_stop; /* srv_stop under srv_mu */
    pthread_mutex_t srv_mu;
    pthread_cond_t srv_cv;
    int srv_sync_init;
    double srv_err_logged; /* monotonic s of the last failure's log line (refresh thread) */
    atomic_uint_fast64_t sd_failures;
    SSL_CTX *ssl_ctx;
    pthread_mutex_t mu;
    int mu_init;
    const char *id;
    wbuf msg, resp, gz;
    atomic_uint_fast64_t messages, records, ack_timeouts, failovers;
} out_forward;

/* conn.c; under the output's mutex (the write path) */
/* Close the server's socket (and TLS session). */
void fwd_disconnect(fwd_server *s);
/* Connect (TCP, TLS, the <security> handshake). 0, or -1 with why. */
int fwd_connect_server(out_forward *c, fwd_server *s, char *why, size_t wl);
/* Write all of p (send_timeout). 0 or -1. */
int fwd_io_write(fwd_server *s, const void *p, size_t n);
/* Read one msgpack object into c->resp within timeout s. 0 or -1. */
int fwd_io_read_obj(out_forward *c, fwd_server *s, double timeout);
/* In a msgpack map of `pairs` pairs at p, the value at key k: its bytes (*v, *vl; a bool's value in *vl) and
 * type (*vtype). 1 found, 0 not, -1 malformed. */
int fwd_map_str(const uint8_t *p, const uint8_t *end, uint32_t pairs, const char *k, const uint8_t **v, uint32_t *vl,
                int *vtype);
/* n random bytes. 0 or -1. */
int fwd_rand_bytes(uint8_t *b, size_t n);

#endif
