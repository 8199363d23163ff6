/*
 * forward-protocol/fwd_conn.h: the forward input's internals, shared by its
 * files (not for use outside forward-protocol/):
 *   fwd_source.c   configuration, reload adoption, the plugin table
 *   fwd_listen.c   listener and UDP heartbeat (main thread)
 *   fwd_conn.c     a connection on its worker: reads, writes, TLS, acks
 *   fwd_request.c  handshakes and requests: decode, route, submit
 *   fwd_big.c      streamed requests (over stream_threshold) and the memory
 *                  budget on a connection: parts, partial requests, waiting
 *   fwd_worker.c   per-worker state, stop, and the reload gate
 *   fwd_metrics.c  /metrics families
 *
 * Connection life on a worker:
 *
 *   accept (main) --post--> fwd_conn_new (worker) --> [reading] <--> [paused]
 *        read -> mp_frame (resumable) -> fwd_decode -> router -> output_submit
 *        each request with `chunk` gets a fwd_req in the connection's pending
 *        FIFO; outputs complete its ticket; the worker then writes the acks
 *        of the completed *prefix* of the FIFO, so acks leave in request order.
 *   close: on EOF/corrupt input/stop. A connection with pending requests is
 *   only freed when the last of them completes (refcount), because outputs
 *   still hold tickets that point at it.
 *
 * Back-pressure: when any output's queue is over its limit, a worker stops
 * reading (event_del) instead of closing connections, and re-checks every
 * 5 ms; acks are held because the records have not been accepted yet.
 *
 * Memory budget (lib/membudget.h, docs/architecture.md "Memory budget"): a
 * connection's input buffer, its stream's windows and every batch handed on
 * until its ticket completes are reserved in the process-wide account. At
 * the budget a worker stops reading (event_del, c->mpaused) and resumes its
 * paused connections oldest first as memory is released (fwd_budget_cb).
 * A request over stream_threshold, or one whose frame the budget refuses,
 * is decoded as it arrives (fwd_stream.h) instead of being framed whole.
 *
 * Security (docs/security.md): with <transport tls> every byte goes through
 * a tls_srv_conn (OpenSSL over memory BIOs): read_cb reads ciphertext from
 * the socket and tls_recv turns it into plaintext in c->in; fwd_conn_write
 * encrypts c->out (HELO, PONG, acks) into c->wire and writes that. With
 * <security>, the HELO is queued at accept and the first message must be a
 * valid PING (fwd_auth.c) before any request is decoded. Until both are
 * done (hs_done) a timer enforces handshake_timeout.
 */
#ifndef WEIR_FWD_CONN_H
#define WEIR_FWD_CONN_H

#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include <event2/util.h>

#include "lib/mp.h"
#include "aggregator/router.h"
#include "forward-protocol/fwd_auth.h"
#include "forward-protocol/fwd_input.h"
#include "aggregator/tls_server.h"

#define READ_CHUNK (256 * 1024)
/* Ciphertext is read in smaller pieces: what is read is held by the TLS
 * engine's input BIO until decrypted, and that BIO keeps its capacity. */
#define TLS_READ_CHUNK (64 * 1024)

typedef struct fwd_conn fwd_conn;

/* One request that asked for an ack, waiting in its connection's FIFO. */
typedef struct fwd_req {
    struct fwd_req *next;
    uint32_t records;
    int complete, failed;
    size_t ack_len;
    uint8_t ack[];
} fwd_req;

/* A streamed request: its parts (batches) in flight. Its fwd_req joins the
 * FIFO only once the request was read whole (its options, with `chunk`,
 * come last); it completes when that happened and every part is done. */
typedef struct fwd_sreq {
    int parts;        /* part batches handed on whose tickets are not done */
    int failed;       /* a part was refused by an output */
    int ended;        /* read whole, or cut off */
    fwd_req *q;       /* its ack, when read whole with `chunk` and parts remain */
    uint64_t handed;  /* records handed on */
} fwd_sreq;

/* The requests whose records went out in one batch share one ticket.
 * Their fwd_reqs are consecutive in the connection's FIFO from `first`.
 * A part of a streamed request has sr set instead (and holds a reference
 * on c). `reserved`: the batch's bytes in the memory budget. */
typedef struct fwd_group {
    ticket t; /* first: outputs see only this */
    wk_done d;
    worker *w;
    struct fwd_conn *c;
    fwd_req *first;
    uint32_t nreqs;
    fwd_sreq *sr;
    size_t reserved;
} fwd_group;

/* Requests of one tag decoded from one read burst are accumulated here and
 * submitted as ONE batch at the end of the burst (or when the tag changes or
 * the batch is big enough): a sender of many small Message-mode requests
 * then costs one queue hand-off and one wake-up per burst, not per record. */
#define ACC_FLUSH_BYTES (256 * 1024)
typedef struct fwd_acc {
    wbuf data;
    char tag[1024];
    size_t tag_len;
    uint32_t records;
    fwd_req *first;
    uint32_t nreqs;
} fwd_acc;

struct fwd_conn {
    fwd_conn *prev, *next;
    worker *w;
    fwd_source *src;
    int fd;
    struct event *rev, *wev;
    wbuf in;
    size_t in_off;
    mp_framer fr;
    wbuf out;
    size_t out_off;
    fwd_req *ph, *pt;
    int npending;
    int refs;
    int closed, eof, paused, no_more_reads, reading;
    int warned_size;
    uint64_t records_acked;
    char peer[INET6_ADDRSTRLEN + 8];
    char addr[INET6_ADDRSTRLEN];
    char host[NI_MAXHOST];
    fwd_peer fp;
    /* security */
    struct sockaddr_storage sa; /* the peer, for <client> rules */
    tls_srv_conn *tls;          /* NULL: plain TCP */
    wbuf wire;                  /* TLS: ciphertext still to write */
    size_t wire_off;
    int tls_up, tls_failed;
    int auth_wait;              /* HELO sent: the next message must be a PING */
    /* graceful retirement (max_connection_age / max_requests_per_connection) */
    double retire_at;           /* monotonic s; 0: never */
    uint64_t nreqs;             /* requests decoded on this connection */
    int hs_done;                /* TLS handshake and PING done, or not configured */
    struct event *hs_ev;        /* handshake_timeout */
    fwd_auth_session as;
    /* streamed request (fwd_big.c) */
    struct fwd_stream *st;      /* NULL: requests are framed whole */
    fwd_sreq *sr;
    wbuf st_out;                /* its next part */
    char st_tag[1024];
    size_t st_tag_len;
    int force_stream;           /* the budget refused to grow the frame: stream the request */
    int st_blocked;             /* stopped between parts (budget or outputs): c->in still holds bytes */
    int st_yield;               /* stopped between parts to let the worker's other connections run */
    /* memory budget */
    size_t in_res, st_res;      /* bytes reserved for c->in, for the stream (windows, st_out) */
    int mpaused, mgrant;        /* waiting for memory; may read once whatever the budget says */
    double mpaused_at;
    uint64_t mseq;              /* order of waiting: the oldest resumes first */
};

typedef struct fwd_worker {
    fwd_conn *conns;
    int nconns;
    struct event *pressure_ev;
    int pressure_armed;
    fwd_scratch scratch;
    struct evdns_base *dns;
    fwd_acc acc;
    router_ctx *route;
    uint64_t pending; /* groups handed to outputs and not yet completed, all conns */
    uint8_t *tls_rbuf; /* TLS_READ_CHUNK bytes of ciphertext, allocated on first TLS connection */
    struct fwd_gate *gate; /* SIGHUP reload in progress: read nothing, park when pending == 0 */
    struct event *budget_ev; /* connections wait for memory: re-check every 5 ms */
    int budget_armed;
    uint64_t mseq;
    double stalled_since;    /* over the budget with nothing of this worker in flight */
    struct event *yield_ev;  /* streams that yielded go on after the next poll */
    int yield_armed;
} fwd_worker;

/* The meeting point of a reload (docs/architecture.md, "Reload"). Main
 * posts a quiesce task to every worker; each stops reading, waits until its
 * last ticket is done (every request acked), then parks on the condition
 * variable. Main swaps the pipeline while all are parked and releases them.
 * Refcounted: main and every worker hold one reference until they are done. */
struct fwd_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    int parked;   /* workers waiting for the release */
    int released; /* main: go on (newrt set: switch to it) */
    int resumed;  /* workers that read again */
    struct router *newrt;
};

/* An accepted socket, posted from the listener to a worker (fwd_conn_new). */
typedef struct accept_msg {
    int fd;
    fwd_source *src;
    struct sockaddr_storage addr;
} accept_msg;

/* Shared between the files above. */
void fwd_acc_flush(fwd_conn *c);
void fwd_arm_read(fwd_conn *c);
void fwd_check_exit(worker *w);
void fwd_conn_close(fwd_conn *c);
void fwd_conn_new(worker *w, void *arg);
void fwd_conn_unref(fwd_conn *c);
void fwd_conn_write(fwd_conn *c);
void fwd_drop_conn(fwd_conn *c, const char *what, const char *detail);
void fwd_hs_check(fwd_conn *c);
void fwd_hs_timeout_cb(evutil_socket_t fd, short what, void *arg);
void fwd_maybe_close(fwd_conn *c);
int fwd_out_pending(const fwd_conn *c);
void fwd_pressure_cb(evutil_socket_t fd, short what, void *arg);
int fwd_process_input(fwd_conn *c);
void fwd_count_result(fwd_conn *c, const fwd_result *r);
int fwd_after_request(fwd_conn *c);

void fwd_group_ticket_done(ticket *t);
void fwd_group_done_cb(worker *w, wk_done *d);

/* fwd_big.c */
int fwd_stream_begin(fwd_conn *c, const uint8_t *head, size_t len);
int fwd_stream_input(fwd_conn *c); /* 1: the request ended, 0: needs more bytes, -1: closed */
void fwd_stream_abort(fwd_conn *c);
void fwd_part_done(fwd_group *g, int failed);
void fwd_in_sync(fwd_conn *c);
void fwd_budget_pause(fwd_conn *c);
void fwd_budget_cb(evutil_socket_t fd, short what, void *arg);
void fwd_stream_yield(fwd_conn *c);
void fwd_yield_cb(evutil_socket_t fd, short what, void *arg);
int fwd_budget_refuses(const fwd_conn *c, size_t grow);
int fwd_budget_shed(fwd_conn *c);
void fwd_try_park(worker *w);

/* chunk_size_limit counts a request's events: the envelope around them (the
 * tag, the str/bin/array headers, the option map with chunk id, size and
 * compression) may add up to 1/64 of the limit and at most 64 KiB, so that a
 * Fluentd chunk of exactly chunk_limit_size (its file buffer's default 256m)
 * passes the default limit of the same number, and a small limit stays
 * small. */
static inline uint64_t fwd_request_limit(uint64_t chunk_size_limit)
{
    uint64_t envelope = chunk_size_limit / 64;
    return chunk_size_limit + (envelope < (64u << 10) ? envelope : (64u << 10));
}

#endif
