/*
 * forward-protocol/fwd_input.h: the `@type forward` source (Fluentd's
 * in_forward): listener, UDP heartbeat, and the per-connection protocol
 * state machine that runs on worker threads.
 *
 * Threads: the listener and the UDP heartbeat socket live on the main
 * thread's loop; an accepted socket is handed to a worker (round robin) and
 * from then on every byte of it is handled on that worker. A request's
 * ack is sent by the worker after every output that received the request's
 * batch reported back (ticket), in request order per connection.
 */
#ifndef WEIR_FWD_INPUT_H
#define WEIR_FWD_INPUT_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/time.h>

#include "config/conf.h"
#include "aggregator/source.h"
#include "aggregator/worker.h"
#include "forward-protocol/fwd_decode.h"

struct event_base;
struct evbuffer;
struct fwd_auth;
struct tls_srv_ctx;

typedef struct fwd_source {
    source base; /* id, conf_fp, rt, label (aggregator/source.h) */
    /* parameters (Fluentd in_forward names) */
    int64_t port;
    char *bind;
    uint64_t chunk_size_warn_limit; /* 0 = none */
    uint64_t chunk_size_limit;
    int skip_invalid_event;
    char *source_address_key;
    char *source_hostname_key;
    char *tag;
    char *add_tag_prefix;
    int deny_keepalive;
    double linger_timeout;
    int resolve_hostname;
    int send_keepalive_packet;
    uint64_t decompressed_size_limit;
    int64_t max_nesting_depth;
    uint64_t max_string_length; /* weir: longest str/bin inside a record; 0: no limit */
    double handshake_timeout; /* weir: accept -> TLS and PING done, else close */
    double idle_timeout;      /* weir: a connection silent this long (nothing pending) is closed; 0: never */
    int64_t max_connections;  /* weir: connections beyond this are closed at accept; 0: no limit */
    double max_connection_age;           /* weir: close (gracefully, between requests) after this long; 0: never */
    int64_t max_requests_per_connection; /* weir: close (gracefully) after this many requests; 0: never */
    uint64_t stream_threshold; /* weir: requests larger than this are decoded as they arrive; 0: never by size */
    struct timeval idle_tv;
    char *hosts; /* /etc/hosts as read at start-up (resolve_hostname), for reverse lookups */
    atomic_int_fast64_t open_conns; /* across workers, for max_connections */
    atomic_uint_fast64_t conns_refused, idle_closed, retired;
    atomic_uint_fast64_t streamed, partial_requests, partial_records; /* streamed requests; cut off, their records handed on */
    int retiring; /* closed (reload: gone); its connections close when the workers resume */

    /* <security> (shared-key handshake, users, clients) and <transport tls>;
     * NULL when not configured. Immutable after start-up, shared by workers. */
    struct fwd_auth *auth;
    struct tls_srv_ctx *tls;
    /* Handshake counters, bumped by the workers (relaxed atomics), for the
     * metrics endpoint: completed (TLS and/or PING), refused PINGs (bad key,
     * user, client rule, not a PING), failed TLS handshakes, timeouts. */
    atomic_uint_fast64_t hs_ok, hs_refused, hs_tls_failed, hs_timeouts;

    fwd_decode_opts dopts;
    /* runtime, main thread */
    struct evconnlistener *lev;
    int udp_fd;
    struct event *udp_ev;
    worker *workers;
    int nworkers;
    unsigned next_worker;
} fwd_source;

fwd_source *fwd_source_create(conf_node *n, int index, conf_errors *errs);

/* SIGHUP reload (main thread). fwd_quiesce asks every worker to stop reading
 * and park once all its requests are acked; fwd_gate_wait_parked waits for
 * that (0), or gives up after `timeout` s (-1); fwd_gate_release lets them
 * go (switching to `newrt` if not NULL; connections of sources marked
 * `retiring` are closed) and returns when every worker reads again; it
 * frees the gate. While all are parked, main may change sources, outputs
 * and routes freely. */
typedef struct fwd_gate fwd_gate;
struct router;
fwd_gate *fwd_quiesce(worker *workers, int n);
int fwd_gate_wait_parked(fwd_gate *g, int n, double timeout);
void fwd_gate_release(fwd_gate *g, struct router *newrt, worker *workers, int n);
/* An unchanged source carried over: take the new one's TLS context (files
 * re-read: certificate rotation), auth and label; `nw` gets the old ones
 * and is freed by the caller. Workers must be parked. */
void fwd_source_adopt(fwd_source *old, fwd_source *nw);
/* Start listening (main thread). Connections go to `workers`. */
int fwd_source_listen(fwd_source *s, struct event_base *main_base, worker *workers, int nworkers);
void fwd_source_close(fwd_source *s); /* stop accepting */
void fwd_source_free(fwd_source *s);

/* The forward input's /metrics families (fwd_metrics.c). */
void fwd_metrics(source *const *srcs, size_t n, const source_env *env, struct evbuffer *out);

/* Per-worker protocol state; created on the worker before it starts. */
int fwd_worker_init(worker *w);
void fwd_worker_free(worker *w);
/* Ask a worker to stop reading, finish pending acks, close its connections
 * and leave its loop (runs on the worker through worker_post). */
void fwd_worker_stop(worker *w);

#endif
