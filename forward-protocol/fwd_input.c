/*
 * forward-protocol/fwd_input.c: Fluentd's in_forward for weir.
 *
 * Connection life on a worker:
 *
 *   accept (main) --post--> conn_new (worker) --> [reading] <--> [paused]
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
 * Security (docs/security.md): with <transport tls> every byte goes through
 * a fwd_tls_conn (OpenSSL over memory BIOs): read_cb reads ciphertext from
 * the socket and tls_recv turns it into plaintext in c->in; conn_write
 * encrypts c->out (HELO, PONG, acks) into c->wire and writes that. With
 * <security>, the HELO is queued at accept and the first message must be a
 * valid PING (fwd_auth.c) before any request is decoded. Until both are
 * done (hs_done) a timer enforces handshake_timeout.
 */
#include "fwd_input.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/mp.h"
#include "buffer/buffer.h"
#include "aggregator/router.h"
#include "forward-protocol/fwd_auth.h"
#include "forward-protocol/fwd_tls.h"

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

/* The requests whose records went out in one batch share one ticket.
 * Their fwd_reqs are consecutive in the connection's FIFO from `first`. */
typedef struct fwd_group {
    ticket t; /* first: outputs see only this */
    wk_done d;
    worker *w;
    struct fwd_conn *c;
    fwd_req *first;
    uint32_t nreqs;
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
    fwd_tls_conn *tls;          /* NULL: plain TCP */
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
} fwd_worker;

static void try_park(worker *w);

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

/* A stopping worker leaves its loop only when no output still holds a
 * ticket pointing at it (a closed connection may still have some). */
static void check_exit(worker *w)
{
    fwd_worker *fw = w->proto;
    if (w->stopping && fw->nconns == 0 && fw->pending == 0)
        event_base_loopexit(w->base, NULL);
}

/* ---- configuration ---------------------------------------------------------- */

static const conf_spec forward_spec[] = {
    {"port", CONF_INT, "24224", 0, offsetof(fwd_source, port), NULL},
    {"bind", CONF_STR, "0.0.0.0", 0, offsetof(fwd_source, bind), NULL},
    {"chunk_size_warn_limit", CONF_SIZE, "0", 0, offsetof(fwd_source, chunk_size_warn_limit), NULL},
    {"chunk_size_limit", CONF_SIZE, "256m", 0, offsetof(fwd_source, chunk_size_limit), NULL},
    {"skip_invalid_event", CONF_BOOL, "false", 0, offsetof(fwd_source, skip_invalid_event), NULL},
    {"source_address_key", CONF_STR, NULL, 0, offsetof(fwd_source, source_address_key), NULL},
    {"source_hostname_key", CONF_STR, NULL, 0, offsetof(fwd_source, source_hostname_key), NULL},
    {"tag", CONF_STR, NULL, 0, offsetof(fwd_source, tag), NULL},
    {"add_tag_prefix", CONF_STR, NULL, 0, offsetof(fwd_source, add_tag_prefix), NULL},
    {"deny_keepalive", CONF_BOOL, "false", 0, offsetof(fwd_source, deny_keepalive), NULL},
    {"linger_timeout", CONF_TIME, "0", 0, offsetof(fwd_source, linger_timeout), NULL},
    {"resolve_hostname", CONF_BOOL, "false", 0, offsetof(fwd_source, resolve_hostname), NULL},
    {"send_keepalive_packet", CONF_BOOL, "false", 0, offsetof(fwd_source, send_keepalive_packet), NULL},
    {"decompressed_size_limit", CONF_SIZE, "512m", 0, offsetof(fwd_source, decompressed_size_limit), NULL},
    {"max_nesting_depth", CONF_INT, "64", 0, offsetof(fwd_source, max_nesting_depth), NULL},
    {"max_string_length", CONF_SIZE, "0", 0, offsetof(fwd_source, max_string_length), NULL},
    {"handshake_timeout", CONF_TIME, "10s", 0, offsetof(fwd_source, handshake_timeout), NULL},
    {"idle_timeout", CONF_TIME, "300s", 0, offsetof(fwd_source, idle_timeout), NULL},
    {"max_connections", CONF_INT, "0", 0, offsetof(fwd_source, max_connections), NULL},
    {"max_connection_age", CONF_TIME, "0", 0, offsetof(fwd_source, max_connection_age), NULL},
    {"max_requests_per_connection", CONF_INT, "0", 0, offsetof(fwd_source, max_requests_per_connection), NULL},
    {"security", CONF_SECTION, NULL, 0, 0, NULL},
    {"transport", CONF_SECTION, NULL, 0, 0, NULL},
    {NULL, 0, NULL, 0, 0, NULL},
};

fwd_source *fwd_source_create(conf_node *n, int index, conf_errors *errs)
{
    fwd_source *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->udp_fd = -1;
    int rc = conf_bind(n, forward_spec, s, errs);
    s->conf_fp = conf_fingerprint(n);
    const char *id = conf_get_value(n, "@id");
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "forward.%d", index);
    s->id = strdup(id ? id : idbuf);
    if (rc == 0) {
        if (s->port < 0 || s->port > 65535) {
            conf_param *p = conf_get(n, "port");
            conf_errors_add(errs, p ? p->file : n->file, p ? p->line : n->line, "port %lld out of range 0..65535",
                            (long long)s->port);
            rc = -1;
        }
        if (s->max_connection_age < 0 || s->max_requests_per_connection < 0) {
            conf_param *p = conf_get(n, s->max_connection_age < 0 ? "max_connection_age" : "max_requests_per_connection");
            conf_errors_add(errs, p ? p->file : n->file, p ? p->line : n->line, "%s must not be negative", p ? p->key : "limit");
            rc = -1;
        }
        if (s->max_nesting_depth < 2 || s->max_nesting_depth > 64) {
            conf_param *p = conf_get(n, "max_nesting_depth");
            conf_errors_add(errs, p ? p->file : n->file, p ? p->line : n->line,
                            "max_nesting_depth must be between 2 and 64");
            rc = -1;
        }
        if (s->chunk_size_limit < 64) {
            conf_param *p = conf_get(n, "chunk_size_limit");
            conf_errors_add(errs, p ? p->file : n->file, p ? p->line : n->line, "chunk_size_limit is too small");
            rc = -1;
        }
        if (s->idle_timeout < 0 || s->max_connections < 0) {
            conf_error_at(errs, n, s->idle_timeout < 0 ? "idle_timeout" : "max_connections", "%s must not be negative",
                          s->idle_timeout < 0 ? "idle_timeout" : "max_connections");
            rc = -1;
        }
        s->idle_tv.tv_sec = (time_t)s->idle_timeout;
        s->idle_tv.tv_usec = (suseconds_t)((s->idle_timeout - (double)(time_t)s->idle_timeout) * 1e6);
        if (!(s->handshake_timeout > 0)) {
            conf_param *p = conf_get(n, "handshake_timeout");
            conf_errors_add(errs, p ? p->file : n->file, p ? p->line : n->line,
                            "handshake_timeout must be greater than 0");
            rc = -1;
        }
    }
    /* <security> and <transport>: checked even after other errors, so that
     * --dry-run reports everything at once */
    conf_node *sec = NULL, *tr = NULL;
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *ch = n->children[i];
        conf_node **slot = !strcmp(ch->name, "security") ? &sec : !strcmp(ch->name, "transport") ? &tr : NULL;
        if (!slot)
            continue;
        if (*slot) {
            conf_errors_add(errs, ch->file, ch->line, "more than one <%s> in <source @type forward>", ch->name);
            rc = -1;
            continue;
        }
        *slot = ch;
    }
    if (sec && !(s->auth = fwd_auth_create(sec, errs)))
        rc = -1;
    if (tr) {
        const char *proto = tr->arg && *tr->arg ? tr->arg : "tcp";
        if (!strcmp(proto, "tls")) {
            if (!(s->tls = fwd_tls_create(tr, errs)))
                rc = -1;
        } else if (!strcmp(proto, "tcp")) {
            static const conf_spec none[] = {{NULL, 0, NULL, 0, 0, NULL}};
            char dummy;
            if (conf_bind(tr, none, &dummy, errs))
                rc = -1;
        } else {
            conf_errors_add(errs, tr->file, tr->line,
                            "<transport %s> is not supported by @type forward; use <transport tls> or <transport tcp>",
                            proto);
            rc = -1;
        }
    }
    if (rc) {
        fwd_source_free(s);
        return NULL;
    }
    if (s->source_hostname_key)
        s->resolve_hostname = 1;
    if (s->resolve_hostname) {
        FILE *f = fopen("/etc/hosts", "re");
        if (f) {
            char *buf = calloc(1, 65536 + 1);
            size_t got = buf ? fread(buf, 1, 65536, f) : 0;
            if (buf)
                buf[got] = 0;
            s->hosts = buf;
            fclose(f);
        }
    }
    s->dopts.skip_invalid_event = s->skip_invalid_event;
    s->dopts.tag = s->tag;
    s->dopts.add_tag_prefix = s->add_tag_prefix;
    s->dopts.source_address_key = s->source_address_key;
    s->dopts.source_hostname_key = s->source_hostname_key;
    s->dopts.max_decompressed = s->decompressed_size_limit;
    s->dopts.max_depth = (int)s->max_nesting_depth;
    s->dopts.max_string_length = s->max_string_length;
    return s;
}

void fwd_source_free(fwd_source *s)
{
    if (!s)
        return;
    free(s->hosts);
    fwd_source_close(s);
    if (s->workers && (s->auth || s->tls))
        wlog_info("in_forward", "%s: handshakes: %llu completed, %llu refused, %llu TLS failures, %llu timeouts", s->id,
                  (unsigned long long)atomic_load(&s->hs_ok), (unsigned long long)atomic_load(&s->hs_refused),
                  (unsigned long long)atomic_load(&s->hs_tls_failed),
                  (unsigned long long)atomic_load(&s->hs_timeouts));
    fwd_auth_free(s->auth);
    fwd_tls_free(s->tls);
    free(s->conf_fp);
    conf_unbind(forward_spec, s);
    free(s->id);
    free(s);
}

/* ---- connections (worker thread) -------------------------------------------- */

static void conn_unref(fwd_conn *c)
{
    if (--c->refs > 0)
        return;
    wbuf_free(&c->in);
    wbuf_free(&c->out);
    wbuf_free(&c->wire);
    free(c);
}

static void conn_close(fwd_conn *c)
{
    if (c->closed)
        return;
    fwd_worker *fw = c->w->proto;
    c->closed = 1;
    if (c->rev)
        event_free(c->rev);
    if (c->wev)
        event_free(c->wev);
    c->rev = c->wev = NULL;
    if (c->hs_ev)
        event_free(c->hs_ev);
    c->hs_ev = NULL;
    if (c->tls) {
        if (c->tls_up && !c->tls_failed) {
            /* close_notify, best effort: one non-blocking write, no waiting */
            fwd_tls_shutdown(c->tls);
            if (fwd_tls_drain(c->tls, &c->wire) == 0 && c->wire.len > c->wire_off) {
                ssize_t n = write(c->fd, c->wire.data + c->wire_off, c->wire.len - c->wire_off);
                (void)n;
            }
        }
        fwd_tls_conn_free(c->tls);
        c->tls = NULL;
    }
    close(c->fd);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        fw->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    fw->nconns--;
    atomic_fetch_sub_explicit(&c->w->stats.connections_open, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&c->src->open_conns, 1, memory_order_relaxed);
    worker *w = c->w;
    conn_unref(c);
    check_exit(w);
}

/* Bytes still to go out. Plaintext held for a TLS handshake that has not
 * completed (or failed) does not count: it may never be sendable. */
static int out_pending(const fwd_conn *c)
{
    if (c->wire.len > c->wire_off)
        return 1;
    if (c->out.len <= c->out_off)
        return 0;
    return !c->tls || (c->tls_up && !c->tls_failed);
}

/* TLS: encrypt the pending plaintext (once the handshake is done; all of it
 * in one TLS write, so HELO, PONG and a run of acks each leave in one
 * send()), then collect everything TLS wants to send. -1: failed. */
static int tls_seal(fwd_conn *c)
{
    if (!c->tls_failed && c->tls_up && c->out.len > c->out_off) {
        char err[256];
        if (fwd_tls_write(c->tls, c->out.data + c->out_off, c->out.len - c->out_off, err, sizeof err)) {
            wlog_warn("in_forward", "connection from %s: TLS write failed: %s; closing", c->peer, err);
            c->tls_failed = 1;
            return -1;
        }
        c->out.len = c->out_off = 0;
        if (c->out.cap > 65536)
            wbuf_free(&c->out);
    }
    return fwd_tls_drain(c->tls, &c->wire);
}

static void conn_write(fwd_conn *c)
{
    wbuf *b = &c->out;
    size_t *off = &c->out_off;
    if (c->tls) {
        if (tls_seal(c) < 0) {
            conn_close(c);
            return;
        }
        b = &c->wire;
        off = &c->wire_off;
    }
    while (*off < b->len) {
        ssize_t n = write(c->fd, b->data + *off, b->len - *off);
        if (n > 0) {
            *off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            event_add(c->wev, NULL);
            return;
        }
        wlog_debug("in_forward", "connection from %s: write failed: %s", c->peer, strerror(errno));
        conn_close(c);
        return;
    }
    b->len = *off = 0;
    if (b->cap > 65536)
        wbuf_free(b);
}

static void maybe_close(fwd_conn *c)
{
    if (c->closed)
        return;
    if ((c->eof || c->no_more_reads || c->w->stopping) && c->npending == 0 && !out_pending(c))
        conn_close(c);
}

/* Write the acks of the completed prefix of the pending FIFO. May free c
 * when it is closed and this was its last reference. */
static void flush_acks(fwd_conn *c)
{
    worker *w = c->w;
    int closed = c->closed;
    while (c->ph && c->ph->complete) {
        fwd_req *q = c->ph;
        c->ph = q->next;
        if (!c->ph)
            c->pt = NULL;
        c->npending--;
        if (!closed) {
            if (!q->failed) {
                if (wbuf_add(&c->out, q->ack, q->ack_len) == 0) {
                    c->records_acked += q->records;
                    atomic_fetch_add_explicit(&w->stats.acks, 1, memory_order_relaxed);
                }
            } else {
                wlog_warn("in_forward", "not acknowledging a request of %u records from %s: an output could not "
                          "accept them; the sender will retry",
                          q->records, c->peer);
            }
        }
        free(q);
        if (closed) {
            int last = c->refs == 1;
            conn_unref(c); /* may free c: stop touching it then */
            if (last) {
                check_exit(w);
                return;
            }
        } else {
            c->refs--; /* the connection's own reference keeps it alive */
        }
    }
    if (!c->closed) {
        c->refs++; /* conn_write/maybe_close may close it */
        if (out_pending(c))
            conn_write(c);
        maybe_close(c);
        conn_unref(c);
    }
    check_exit(w);
}

static void complete_reqs(fwd_req *q, uint32_t n, int failed)
{
    for (; q && n; q = q->next, n--) {
        q->complete = 1;
        q->failed = failed;
    }
}

/* Worker thread: every output is done with the group's batch. */
static void group_done_cb(worker *w, wk_done *d)
{
    fwd_group *g = (fwd_group *)((char *)d - offsetof(fwd_group, d));
    fwd_worker *fw = w->proto;
    complete_reqs(g->first, g->nreqs, atomic_load_explicit(&g->t.failed, memory_order_relaxed) > 0);
    fwd_conn *c = g->c;
    free(g);
    fw->pending--;
    flush_acks(c);
    if (fw->gate)
        try_park(w);
}

/* Output thread: hand the group back to its worker. */
static void group_ticket_done(ticket *t)
{
    fwd_group *g = (fwd_group *)t;
    worker_done(g->w, &g->d);
}

/* Submit what the accumulator holds as one batch (worker thread). */
static void acc_flush(fwd_conn *c)
{
    worker *w = c->w;
    fwd_worker *fw = w->proto;
    fwd_acc *a = &fw->acc;
    if (a->records) {
        atomic_fetch_add_explicit(&w->stats.records, a->records, memory_order_relaxed);
        size_t len;
        uint8_t *data = wbuf_steal(&a->data, &len);
        batch *b = batch_new(a->tag, a->tag_len, data, len, a->records);
        size_t n = 0;
        rt_delivery *dl = NULL;
        if (b) {
            router_route(fw->route, c->src->label, b);
            dl = router_ctx_deliveries(fw->route, &n);
        } else {
            free(data);
        }
        fwd_group *g = NULL;
        if (b && a->nreqs && n && (g = calloc(1, sizeof *g)) != NULL) {
            atomic_init(&g->t.outstanding, (int)n);
            atomic_init(&g->t.failed, 0);
            g->t.done = group_ticket_done;
            g->d.cb = group_done_cb;
            g->w = w;
            g->c = c;
            g->first = a->first;
            g->nreqs = a->nreqs;
            fw->pending++;
        }
        if (!b || (a->nreqs && n && !g)) {
            wlog_error("in_forward", "out of memory: %u records from %s not accepted", a->records, c->peer);
            complete_reqs(a->first, a->nreqs, 1);
        } else {
            if (!n) /* filtered out or matched nothing: nothing to wait for */
                complete_reqs(a->first, a->nreqs, 0);
            for (size_t i = 0; i < n; i++)
                output_submit(dl[i].out, dl[i].b, g ? &g->t : NULL, dl[i].flags);
        }
        router_ctx_reset(fw->route);
        if (b)
            batch_unref(b);
    }
    a->data.len = 0;
    a->records = 0;
    a->tag_len = 0;
    a->first = NULL;
    a->nreqs = 0;
    if (c->ph && !c->closed)
        flush_acks(c); /* requests without records may be ready */
}

/* Bad input: stop reading at once, but the complete requests before it are
 * still stored and acked; the connection closes when their acks are out. */
static void drop_conn(fwd_conn *c, const char *what, const char *detail)
{
    wlog_warn("in_forward", "dropping connection from %s: %s%s%s; %llu records acked on it before, %d requests "
              "before the bad one still to be acked",
              c->peer, what, detail ? ": " : "", detail ? detail : "", (unsigned long long)c->records_acked,
              c->npending);
    c->no_more_reads = 1;
    if (c->rev)
        event_del(c->rev);
    c->refs++; /* keep c while the accumulated requests are handed over */
    acc_flush(c);
    maybe_close(c);
    conn_unref(c);
}

/* ---- handshakes ------------------------------------------------------------------ */

/* Both handshakes done (or not configured): stop the deadline. */
static void hs_check(fwd_conn *c)
{
    if (c->hs_done || (c->tls && !c->tls_up) || c->auth_wait)
        return;
    c->hs_done = 1;
    if (c->hs_ev)
        event_del(c->hs_ev);
    atomic_fetch_add_explicit(&c->src->hs_ok, 1, memory_order_relaxed);
}

static void hs_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    fwd_conn *c = arg;
    atomic_fetch_add_explicit(&c->src->hs_timeouts, 1, memory_order_relaxed);
    wlog_warn("in_forward", "handshake timeout: closing the connection from %s after %gs: %s", c->peer,
              c->src->handshake_timeout,
              c->tls && !c->tls_up ? "the TLS handshake did not complete"
              : c->auth_wait && !c->no_more_reads ? "no PING received"
                                                  : "the refused client did not read its PONG");
    conn_close(c);
}

/* The PING was refused (PONG false already queued in c->out): count, log,
 * read nothing more; the connection closes once the PONG is written. */
static void refuse_handshake(fwd_conn *c, const fwd_auth_result *r)
{
    atomic_fetch_add_explicit(&c->src->hs_refused, 1, memory_order_relaxed);
    wlog_warn("in_forward", "handshake refused for %s (hostname '%s', user '%s'): %s; replied PONG false '%s' and closing",
              c->peer, r->hostname, r->username, r->detail, r->reason);
    c->no_more_reads = 1;
    if (c->rev)
        event_del(c->rev);
    c->in_off = c->in.len; /* whatever follows is not read */
    mp_framer_reset(&c->fr);
}

/* Before the handshake, input that is not a PING at all (not msgpack, too big). */
static void refuse_input(fwd_conn *c, const char *detail)
{
    fwd_auth_result r = {.code = FWD_AUTH_BAD_MESSAGE, .reason = "invalid ping message", .client = -1};
    snprintf(r.detail, sizeof r.detail, "%s", detail);
    fwd_auth_refuse(&c->out, r.reason);
    refuse_handshake(c, &r);
}

static void handle_ping(fwd_conn *c, const uint8_t *msg, size_t len)
{
    fwd_auth_result r;
    int code = fwd_auth_check_ping(c->src->auth, &c->as, (const struct sockaddr *)&c->sa, msg, len, &c->out, &r);
    if (code != FWD_AUTH_OK) {
        refuse_handshake(c, &r);
        return;
    }
    c->auth_wait = 0;
    if (r.previous_key)
        wlog_info("in_forward", "%s (hostname '%s') authenticated with previous_shared_key: update its shared key",
                  c->peer, r.hostname);
    else
        wlog_debug("in_forward", "handshake ok for %s (hostname '%s', user '%s'%s)", c->peer, r.hostname, r.username,
                   r.client >= 0 ? ", matched a <client>" : "");
    hs_check(c);
}

static int handle_request(fwd_conn *c, const uint8_t *req, size_t len)
{
    worker *w = c->w;
    fwd_worker *fw = w->proto;
    fwd_acc *a = &fw->acc;
    worker_stats *st = &w->stats;
    const fwd_decode_opts *o = &c->src->dopts;

    /* a new tag, or enough bytes: the accumulated batch goes out first */
    const uint8_t *raw;
    size_t raw_len;
    char tag[sizeof a->tag];
    int tl = -1;
    if (fwd_peek_tag(req, len, &raw, &raw_len) == 0)
        tl = fwd_final_tag(o, raw, raw_len, tag, sizeof tag);
    if (a->records && (tl < 0 || (size_t)tl != a->tag_len || memcmp(tag, a->tag, (size_t)tl) != 0 ||
                       a->data.len >= ACC_FLUSH_BYTES))
        acc_flush(c);

    fwd_result r;
    if (!a->data.cap)
        wbuf_grow(&a->data, 64 * 1024);
    a->data.max = o->max_decompressed + (o->max_decompressed >> 2) + ACC_FLUSH_BYTES + (1u << 20);
    int rc = fwd_decode(o, &c->fp, &fw->scratch, req, len, &r, &a->data);
    if (fw->scratch.inflated.cap > (8u << 20))
        wbuf_free(&fw->scratch.inflated); /* do not keep a huge decompression buffer around */
    if (rc == FWD_HEARTBEAT)
        return 0;
    atomic_fetch_add_explicit(&st->requests, 1, memory_order_relaxed);
    if (rc == FWD_CORRUPT) {
        atomic_fetch_add_explicit(&st->decode_errors, 1, memory_order_relaxed);
        if (r.over_decompressed)
            atomic_fetch_add_explicit(&st->over_decompressed, 1, memory_order_relaxed);
        drop_conn(c, "corrupt request", r.err);
        return -1;
    }
    if (r.invalid) {
        atomic_fetch_add_explicit(&st->invalid_events, r.invalid, memory_order_relaxed);
        if (r.too_deep)
            atomic_fetch_add_explicit(&st->too_deep, r.too_deep, memory_order_relaxed);
        if (r.too_long)
            atomic_fetch_add_explicit(&st->too_long, r.too_long, memory_order_relaxed);
        wlog_warn("in_forward", "skipped %u invalid event%s from %s in a %s request (%s); %u valid records kept",
                  r.invalid, r.invalid > 1 ? "s" : "", c->peer, r.mode, r.err, r.records);
    }
    if (r.retimed) {
        atomic_fetch_add_explicit(&st->retimed, r.retimed, memory_order_relaxed);
        wlog_warn("in_forward", "kept %u event%s from %s in a %s request with the time of receipt: invalid event time (%s); "
                  "skip_invalid_event true would skip them",
                  r.retimed, r.retimed > 1 ? "s" : "", c->peer, r.mode, r.retimed_why);
    }
    if (r.markers)
        atomic_fetch_add_explicit(&st->markers, r.markers, memory_order_relaxed);
    if (r.signal)
        atomic_fetch_add_explicit(&st->signals_skipped, 1, memory_order_relaxed);
    if (r.records && !a->records) {
        memcpy(a->tag, tag, (size_t)tl + 1);
        a->tag_len = (size_t)tl;
    }
    a->records += r.records;

    if (r.chunk) {
        fwd_req *q = malloc(sizeof *q + 5 + r.chunk_len);
        if (!q) {
            drop_conn(c, "out of memory", NULL);
            return -1;
        }
        memset(q, 0, sizeof *q);
        wbuf tmp = {.data = q->ack, .cap = 5 + r.chunk_len, .max = 5 + r.chunk_len};
        fwd_ack_encode(&tmp, r.chunk, r.chunk_len);
        q->ack_len = tmp.len;
        q->records = r.records;
        c->refs++;
        c->npending++;
        if (c->pt)
            c->pt->next = q;
        else
            c->ph = q;
        c->pt = q;
        if (r.records) {
            if (!a->first)
                a->first = q;
            a->nreqs++;
        } else {
            q->complete = 1; /* nothing to store: acked in its turn */
        }
    }
    return 0;
}

/* Frame and handle every complete request in the input buffer. -1: closed. */
/* Should this connection be closed (gracefully) now that a request is done? */
static int retire_due(const fwd_conn *c)
{
    const fwd_source *s = c->src;
    if (s->max_requests_per_connection && c->nreqs >= (uint64_t)s->max_requests_per_connection)
        return 1;
    return c->retire_at > 0 && clock_mono() >= c->retire_at;
}

static int process_input(fwd_conn *c)
{
    fwd_source *s = c->src;
    while (!c->no_more_reads && c->in.len > c->in_off) {
        const uint8_t *base = c->in.data + c->in_off;
        size_t avail = c->in.len - c->in_off;
        int rc = mp_frame(&c->fr, base, avail);
        if (rc == MP_BAD && c->auth_wait) {
            refuse_input(c, "the first message is not msgpack");
            break;
        }
        if (rc == MP_BAD) {
            char d[96];
            snprintf(d, sizeof d, "byte 0x%02x at offset %zu of the request is not msgpack", base[c->fr.pos],
                     c->fr.pos);
            atomic_fetch_add_explicit(&c->w->stats.decode_errors, 1, memory_order_relaxed);
            drop_conn(c, "corrupt stream", d);
            return -1;
        }
        /* an incomplete request is at least what the framer has seen plus the
         * payload a str/bin header still promises: a length claim beyond the
         * limit is refused at once, not after waiting for bytes */
        uint64_t size = rc == MP_OK ? c->fr.pos : (uint64_t)avail + c->fr.skip;
        if (c->auth_wait && size > FWD_AUTH_MAX_PING) {
            char d[96];
            snprintf(d, sizeof d, "the first message is larger than %d bytes: not a PING", FWD_AUTH_MAX_PING);
            refuse_input(c, d);
            break;
        }
        if (size > s->chunk_size_limit) {
            char d[128];
            snprintf(d, sizeof d, "%llu%s bytes, chunk_size_limit is %llu", (unsigned long long)size,
                     rc == MP_OK ? "" : "+ (as its length fields claim)", (unsigned long long)s->chunk_size_limit);
            atomic_fetch_add_explicit(&c->w->stats.oversize, 1, memory_order_relaxed);
            drop_conn(c, "request larger than chunk_size_limit", d);
            return -1;
        }
        if (s->chunk_size_warn_limit && size > s->chunk_size_warn_limit && !c->warned_size) {
            c->warned_size = 1;
            wlog_warn("in_forward", "request from %s is larger than chunk_size_warn_limit (%llu bytes)", c->peer,
                      (unsigned long long)s->chunk_size_warn_limit);
        }
        if (rc != MP_OK)
            break;
        mp_framer_reset(&c->fr);
        c->warned_size = 0;
        c->in_off += size;
        if (c->auth_wait) {
            handle_ping(c, base, size); /* queues the PONG; written below */
            continue;
        }
        if (handle_request(c, base, size) < 0)
            return -1;
        c->nreqs++;
        if (s->deny_keepalive) {
            c->no_more_reads = 1;
            if (c->rev)
                event_del(c->rev);
        } else if (c->in_off == c->in.len && retire_due(c)) {
            /* between requests (nothing of the next one read yet): read no
             * more; maybe_close() closes once every ack is written */
            c->no_more_reads = 1;
            if (c->rev)
                event_del(c->rev);
            atomic_fetch_add_explicit(&s->retired, 1, memory_order_relaxed);
            wlog_debug("in_forward", "retiring connection from %s after %llu requests (%s)", c->peer,
                       (unsigned long long)c->nreqs,
                       s->max_requests_per_connection && c->nreqs >= (uint64_t)s->max_requests_per_connection
                           ? "max_requests_per_connection"
                           : "max_connection_age");
        }
    }
    c->refs++;
    acc_flush(c);
    if (c->closed) {
        conn_unref(c);
        return -1;
    }
    c->refs--;
    /* compact: keep only the unfinished request at the front */
    if (c->in_off == c->in.len) {
        c->in.len = c->in_off = 0;
        if (c->in.cap > (4u << 20))
            wbuf_free(&c->in); /* give a big request's memory back */
    } else if (c->in_off) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    c->refs++; /* conn_write/maybe_close may free c */
    if (out_pending(c))
        conn_write(c); /* a PONG */
    if (!c->closed)
        maybe_close(c);
    int closed = c->closed;
    conn_unref(c);
    return closed ? -1 : 0;
}

static void pressure_cb(evutil_socket_t fd, short what, void *arg);
static void arm_read(fwd_conn *c);

static void pause_conn(fwd_conn *c)
{
    fwd_worker *fw = c->w->proto;
    if (!c->paused) {
        c->paused = 1;
        event_del(c->rev);
    }
    if (!fw->pressure_armed && !fw->gate) {
        struct timeval tv = {0, 5000};
        fw->pressure_armed = 1;
        evtimer_add(fw->pressure_ev, &tv);
    }
}

static void pressure_cb(evutil_socket_t fd, short what, void *arg)
{
    worker *w = arg;
    fwd_worker *fw = w->proto;
    fw->pressure_armed = 0;
    if (fw->gate)
        return; /* the reload's resume re-arms every paused connection */
    if (router_congested(w->rt)) {
        struct timeval tv = {0, 5000};
        fw->pressure_armed = 1;
        evtimer_add(fw->pressure_ev, &tv);
        return;
    }
    for (fwd_conn *c = fw->conns; c; c = c->next)
        if (c->paused) {
            c->paused = 0;
            if (!c->no_more_reads && !w->stopping) {
                arm_read(c);
                if (c->tls) /* decrypted-but-unread data does not make the socket readable */
                    event_active(c->rev, EV_READ, 0);
            }
        }
}

static void tls_ready(fwd_conn *c)
{
    if (wlog_level <= WLOG_DEBUG) {
        char d[256];
        fwd_tls_describe(c->tls, d, sizeof d);
        wlog_debug("in_forward", "TLS handshake with %s done: %s", c->peer, d);
    }
    hs_check(c);
}

/* A fatal TLS error: log, send the alert TLS queued, close. */
static void tls_fail(fwd_conn *c, const char *err)
{
    if (!c->tls_up) {
        atomic_fetch_add_explicit(&c->src->hs_tls_failed, 1, memory_order_relaxed);
        wlog_warn("in_forward", "TLS handshake with %s failed: %s", c->peer, err);
    } else {
        wlog_warn("in_forward", "TLS error on the connection from %s: %s; closing (%llu records acked on it)",
                  c->peer, err, (unsigned long long)c->records_acked);
    }
    fwd_tls_drain(c->tls, &c->wire); /* the alert */
    c->tls_failed = 1;
    c->no_more_reads = 1;
    if (c->rev)
        event_del(c->rev);
    c->refs++;
    conn_write(c);
    if (!c->closed)
        maybe_close(c);
    conn_unref(c);
}

#define TLS_RECV_STOP (-2)

/* TLS: decrypt into c->in (at most `room` bytes), reading ciphertext from
 * the socket whenever TLS needs more. Returns like read(2): >0 plaintext
 * bytes, 0 end of stream, -1 with errno (EAGAIN: socket drained); or
 * TLS_RECV_STOP when the connection failed (handled, maybe freed). *more is
 * set when the caller should call again at once (c->in got full, or an end
 * or error is still to be reported after the data). */
static ssize_t tls_recv(fwd_conn *c, size_t room, int *more)
{
    fwd_worker *fw = c->w->proto;
    size_t got = 0;
    int eof = 0, err_no = EAGAIN, rc = 0;
    char err[256] = "";
    *more = 0;
    for (;;) {
        if (got == room) {
            *more = 1;
            break;
        }
        rc = fwd_tls_read(c->tls, c->in.data + c->in.len + got, room - got, err, sizeof err);
        if (rc > 0) {
            got += (size_t)rc;
            continue;
        }
        if (rc == FWD_TLS_EOF) {
            eof = 1;
            break;
        }
        if (rc == FWD_TLS_ERROR)
            break;
        ssize_t n = read(c->fd, fw->tls_rbuf, TLS_READ_CHUNK);
        if (n > 0) {
            atomic_fetch_add_explicit(&c->w->stats.bytes, (uint64_t)n, memory_order_relaxed);
            if (fwd_tls_feed(c->tls, fw->tls_rbuf, (size_t)n)) {
                rc = FWD_TLS_ERROR;
                snprintf(err, sizeof err, "out of memory");
                break;
            }
            continue;
        }
        if (n == 0) {
            eof = 1;
            break;
        }
        if (errno == EINTR)
            continue;
        err_no = errno;
        break;
    }
    if (!c->tls_up && fwd_tls_established(c->tls)) {
        c->tls_up = 1;
        tls_ready(c);
    }
    if (rc == FWD_TLS_ERROR) {
        tls_fail(c, err);
        return TLS_RECV_STOP;
    }
    /* send what the handshake produced, and the HELO once it is done */
    c->refs++;
    conn_write(c);
    int closed = c->closed;
    conn_unref(c);
    if (closed)
        return TLS_RECV_STOP;
    if (got) {
        if (eof || (err_no != EAGAIN && err_no != EWOULDBLOCK))
            *more = 1;
        return (ssize_t)got;
    }
    if (eof)
        return 0;
    errno = err_no;
    return -1;
}

/* Reading, with idle_timeout as the read event's own timeout: libevent
 * re-arms it after every read, so it fires only after that much silence. */
static void arm_read(fwd_conn *c)
{
    event_add(c->rev, c->src->idle_timeout > 0 ? &c->src->idle_tv : NULL);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    fwd_conn *c = arg;
    worker *w = c->w;
    if (what & EV_TIMEOUT) {
        if (c->npending || c->out.len || c->in.len > c->in_off) {
            /* acks still to send, or a request half received: not idle */
            if (c->in.len > c->in_off) {
                atomic_fetch_add_explicit(&c->src->idle_closed, 1, memory_order_relaxed);
                drop_conn(c, "no data for idle_timeout in the middle of a request", NULL);
            }
            return;
        }
        atomic_fetch_add_explicit(&c->src->idle_closed, 1, memory_order_relaxed);
        wlog_info("in_forward", "closing connection from %s: idle for %gs (idle_timeout); %llu records acked on it",
                  c->peer, c->src->idle_timeout, (unsigned long long)c->records_acked);
        conn_close(c);
        return;
    }
    if (((fwd_worker *)w->proto)->gate) { /* a reload is waiting for this worker to be idle */
        pause_conn(c);
        return;
    }
    /* the handshake produces no records: let it finish under pressure */
    if (c->hs_done && router_congested(w->rt)) {
        pause_conn(c);
        return;
    }
    for (int round = 0; round < 4; round++) {
        if (c->in.cap - c->in.len < READ_CHUNK / 4) {
            c->in.max = c->src->chunk_size_limit + READ_CHUNK;
            if (wbuf_grow(&c->in, READ_CHUNK)) {
                drop_conn(c, "out of memory for the input buffer", NULL);
                return;
            }
        }
        size_t room = c->in.cap - c->in.len;
        int more = 0;
        ssize_t n;
        if (c->tls) {
            n = tls_recv(c, room, &more);
            if (n == TLS_RECV_STOP)
                return;
        } else {
            n = read(fd, c->in.data + c->in.len, room);
            if (n > 0)
                atomic_fetch_add_explicit(&w->stats.bytes, (uint64_t)n, memory_order_relaxed);
        }
        if (n > 0) {
            c->in.len += (size_t)n;
            if (process_input(c) < 0)
                return;
            if (c->no_more_reads)
                return;
            if (c->tls ? !more : (size_t)n < room)
                return;
            continue;
        }
        if (n == 0) {
            c->eof = 1;
            event_del(c->rev);
            if (c->in.len > c->in_off)
                wlog_warn("in_forward", "connection from %s closed in the middle of a request (%zu bytes unread)",
                          c->peer, c->in.len - c->in_off);
            else if (c->auth_wait)
                wlog_debug("in_forward", "connection from %s closed before its PING", c->peer);
            maybe_close(c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        wlog_debug("in_forward", "connection from %s: read failed: %s", c->peer, strerror(errno));
        conn_close(c);
        return;
    }
    /* TLS: what is already inside the TLS engine does not make the socket
     * readable again; come back after the other connections had their turn */
    if (c->tls && !c->closed && !c->paused && !c->no_more_reads && c->rev)
        event_active(c->rev, EV_READ, 0);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    fwd_conn *c = arg;
    c->refs++; /* conn_write may close it */
    conn_write(c);
    if (!c->closed && !out_pending(c))
        maybe_close(c);
    conn_unref(c);
}

typedef struct accept_msg {
    int fd;
    fwd_source *src;
    struct sockaddr_storage addr;
} accept_msg;

static void start_reading(fwd_conn *c)
{
    if (c->closed)
        return;
    c->reading = 1;
    if (((fwd_worker *)c->w->proto)->gate)
        c->paused = 1; /* armed when the reload resumes the worker */
    else if (!c->w->stopping)
        arm_read(c);
}

static void reverse_cb(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    fwd_conn *c = arg;
    if (result == DNS_ERR_NONE && type == DNS_PTR && count > 0)
        snprintf(c->host, sizeof c->host, "%s", *(char **)addresses);
    c->fp.hostname = c->host;
    start_reading(c);
    conn_unref(c);
}

/* Reverse lookup in /etc/hosts (what getnameinfo would answer first; evdns
 * only asks DNS servers for PTR records), in the copy read at start-up so a
 * worker loop never touches the disk. */
static int hosts_reverse(const char *hosts, const char *ip, char *out, size_t cap)
{
    if (!hosts)
        return -1;
    char line[1024];
    int found = -1;
    for (const char *p = hosts; found < 0 && *p;) {
        size_t n = strcspn(p, "\n");
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), p);
        p += n + (p[n] == '\n');
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *save = NULL, *addr = strtok_r(line, " \t\r\n", &save), *name = strtok_r(NULL, " \t\r\n", &save);
        if (addr && name && strcmp(addr, ip) == 0) {
            snprintf(out, cap, "%s", name);
            found = 0;
        }
    }
    return found;
}

/* TLS session, HELO and handshake deadline for a new connection. -1: it
 * was closed (and maybe freed). */
static int conn_secure(fwd_conn *c)
{
    fwd_source *s = c->src;
    fwd_worker *fw = c->w->proto;
    if (!s->tls && !s->auth) {
        c->hs_done = 1;
        return 0;
    }
    if (!c->rev || !c->wev || !(c->hs_ev = evtimer_new(c->w->base, hs_timeout_cb, c)))
        goto oom;
    struct timeval tv = {(time_t)s->handshake_timeout,
                         (suseconds_t)((s->handshake_timeout - (double)(time_t)s->handshake_timeout) * 1e6)};
    evtimer_add(c->hs_ev, &tv);
    if (s->tls) {
        if (!fw->tls_rbuf && !(fw->tls_rbuf = malloc(TLS_READ_CHUNK)))
            goto oom;
        if (!(c->tls = fwd_tls_conn_new(s->tls)))
            goto oom;
    }
    if (s->auth) {
        c->auth_wait = 1;
        if (fwd_auth_session_init(&c->as) != 0) {
            wlog_error("in_forward", "cannot draw a random nonce for %s; closing it", c->peer);
            conn_close(c);
            return -1;
        }
        if (fwd_auth_helo(s->auth, &c->as, !s->deny_keepalive, &c->out))
            goto oom;
        if (!c->tls) { /* with TLS the HELO leaves once the TLS handshake is done */
            c->refs++;
            conn_write(c);
            int closed = c->closed;
            conn_unref(c);
            if (closed)
                return -1;
        }
    }
    return 0;
oom:
    wlog_error("in_forward", "out of memory setting up the connection from %s; closing it", c->peer);
    conn_close(c);
    return -1;
}

static void conn_new(worker *w, void *arg)
{
    accept_msg *m = arg;
    fwd_worker *fw = w->proto;
    fwd_conn *c = w->stopping ? NULL : calloc(1, sizeof *c);
    if (!c) {
        atomic_fetch_sub_explicit(&m->src->open_conns, 1, memory_order_relaxed);
        close(m->fd);
        free(m);
        return;
    }
    c->w = w;
    c->src = m->src;
    c->fd = m->fd;
    c->refs = 1;
    memcpy(&c->sa, &m->addr, sizeof c->sa);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->src->send_keepalive_packet)
        setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (m->addr.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&m->addr;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (m->addr.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&m->addr;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    }
    snprintf(c->host, sizeof c->host, "%s", ip);
    snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
    snprintf(c->addr, sizeof c->addr, "%s", ip);
    c->fp.address = c->addr;
    if (c->src->max_connection_age > 0) /* +-10% jitter: a replica's connections do not all leave at once */
        c->retire_at = clock_mono() + c->src->max_connection_age * (0.9 + 0.2 * ((double)(random() % 1000) / 1000.0));
    c->rev = event_new(w->base, c->fd, EV_READ | EV_PERSIST, read_cb, c);
    c->wev = event_new(w->base, c->fd, EV_WRITE, write_cb, c);
    c->next = fw->conns;
    if (fw->conns)
        fw->conns->prev = c;
    fw->conns = c;
    fw->nconns++;
    atomic_fetch_add_explicit(&w->stats.connections, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->stats.connections_open, 1, memory_order_relaxed);
    c->fp.hostname = c->host;
    if (conn_secure(c) < 0) {
        free(m);
        return;
    }
    if (c->src->resolve_hostname) {
        if (!fw->dns) {
            fw->dns = evdns_base_new(w->base, 0);
            if (fw->dns) {
                evdns_base_resolv_conf_parse(fw->dns, DNS_OPTIONS_ALL, "/etc/resolv.conf");
                evdns_base_load_hosts(fw->dns, NULL);
            }
        }
        struct evdns_request *rq = NULL;
        if (hosts_reverse(c->src->hosts, c->addr, c->host, sizeof c->host) == 0) {
            c->fp.hostname = c->host;
            start_reading(c);
        } else if (fw->dns && m->addr.ss_family == AF_INET) {
            c->refs++;
            rq = evdns_base_resolve_reverse(fw->dns, &((struct sockaddr_in *)&m->addr)->sin_addr, 0, reverse_cb, c);
            if (!rq)
                c->refs--;
        } else if (fw->dns && m->addr.ss_family == AF_INET6) {
            c->refs++;
            rq = evdns_base_resolve_reverse_ipv6(fw->dns, &((struct sockaddr_in6 *)&m->addr)->sin6_addr, 0,
                                                 reverse_cb, c);
            if (!rq)
                c->refs--;
        }
        if (!rq && !c->reading)
            start_reading(c);
    } else {
        start_reading(c);
    }
    free(m);
}

/* ---- listener and UDP heartbeat (main thread) --------------------------------- */

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr, int socklen, void *arg)
{
    fwd_source *s = arg;
    if (s->max_connections > 0 &&
        atomic_load_explicit(&s->open_conns, memory_order_relaxed) >= s->max_connections) {
        atomic_fetch_add_explicit(&s->conns_refused, 1, memory_order_relaxed);
        static double last_log;
        double now = clock_mono();
        if (now - last_log >= 10) {
            last_log = now;
            wlog_warn("in_forward", "%s: max_connections (%lld) reached: refusing new connections (%llu so far)",
                      s->id, (long long)s->max_connections,
                      (unsigned long long)atomic_load(&s->conns_refused));
        }
        close(fd);
        return;
    }
    atomic_fetch_add_explicit(&s->open_conns, 1, memory_order_relaxed);
    accept_msg *m = malloc(sizeof *m);
    if (!m) {
        atomic_fetch_sub_explicit(&s->open_conns, 1, memory_order_relaxed);
        close(fd);
        return;
    }
    m->fd = fd;
    m->src = s;
    memset(&m->addr, 0, sizeof m->addr);
    memcpy(&m->addr, addr, (size_t)socklen < sizeof m->addr ? (size_t)socklen : sizeof m->addr);
    worker *w = &s->workers[s->next_worker++ % (unsigned)s->nworkers];
    worker_post(w, conn_new, m);
}

static void reenable_accept(evutil_socket_t fd, short what, void *arg) { evconnlistener_enable(arg); }

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    fwd_source *s = arg;
    int err = EVUTIL_SOCKET_ERROR();
    wlog_error("in_forward", "%s: accept failed: %s; pausing accepts for 100 ms", s->id,
               evutil_socket_error_to_string(err));
    /* EMFILE and friends: back off rather than spin */
    evconnlistener_disable(l);
    struct timeval tv = {0, 100000};
    event_base_once(evconnlistener_get_base(l), -1, EV_TIMEOUT, reenable_accept, l, &tv);
}

/* Fluentd's senders probe with UDP heartbeats: answer "\0" from the same port. */
static void udp_cb(evutil_socket_t fd, short what, void *arg)
{
    for (int i = 0; i < 64; i++) {
        uint8_t buf[512];
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
        if (n < 0)
            return;
        ssize_t r = sendto(fd, "\0", 1, 0, (struct sockaddr *)&from, fl);
        (void)r;
    }
}

int fwd_source_listen(fwd_source *s, struct event_base *base, worker *workers, int nworkers)
{
    struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV, .ai_family = AF_UNSPEC};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%lld", (long long)s->port);
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(s->bind, port, &hints, &ai);
    if (gai != 0 || !ai) {
        wlog_error("in_forward", "%s: cannot resolve bind address '%s': %s", s->id, s->bind, gai_strerror(gai));
        return -1;
    }
    s->lev = evconnlistener_new_bind(base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
                                     1024, ai->ai_addr, (int)ai->ai_addrlen);
    if (!s->lev) {
        wlog_error("in_forward", "%s: cannot listen on %s:%s: %s", s->id, s->bind, port, strerror(errno));
        freeaddrinfo(ai);
        return -1;
    }
    /* set once listening: fwd_source_free logs the handshake counters only then */
    s->workers = workers;
    s->nworkers = nworkers;
    evconnlistener_set_error_cb(s->lev, accept_error_cb);
    s->udp_fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (s->udp_fd >= 0)
        setsockopt(s->udp_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s->udp_fd < 0 || bind(s->udp_fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        wlog_warn("in_forward", "%s: cannot bind the UDP heartbeat socket on %s:%s: %s; heartbeats unanswered",
                  s->id, s->bind, port, strerror(errno));
        if (s->udp_fd >= 0)
            close(s->udp_fd);
        s->udp_fd = -1;
    } else {
        s->udp_ev = event_new(base, s->udp_fd, EV_READ | EV_PERSIST, udp_cb, s);
        event_add(s->udp_ev, NULL);
    }
    freeaddrinfo(ai);
    char sec[256] = "";
    if (s->tls || s->auth)
        snprintf(sec, sizeof sec, "; %s%s%s%s, handshake_timeout %gs", s->tls ? fwd_tls_summary(s->tls) : "",
                 s->tls && s->auth ? ", " : "", s->auth ? "shared-key handshake" : "",
                 s->auth && s->auth->user_auth ? " with user auth" : "", s->handshake_timeout);
    wlog_info("in_forward", "%s: listening on %s:%s (tcp%s), %d workers%s", s->id, s->bind, port,
              s->udp_fd >= 0 ? " and udp heartbeat" : "", nworkers, sec);
    return 0;
}

void fwd_source_close(fwd_source *s)
{
    if (s->lev)
        evconnlistener_free(s->lev);
    s->lev = NULL;
    if (s->udp_ev)
        event_free(s->udp_ev);
    s->udp_ev = NULL;
    if (s->udp_fd >= 0)
        close(s->udp_fd);
    s->udp_fd = -1;
}

/* ---- per-worker state ---------------------------------------------------------- */

int fwd_worker_init(worker *w)
{
    fwd_worker *fw = calloc(1, sizeof *fw);
    if (!fw)
        return -1;
    fw->pressure_ev = evtimer_new(w->base, pressure_cb, w);
    fw->route = router_ctx_new(w->rt);
    w->proto = fw;
    return 0;
}

void fwd_worker_free(worker *w)
{
    fwd_worker *fw = w->proto;
    if (!fw)
        return;
    while (fw->conns)
        conn_close(fw->conns);
    if (fw->dns)
        evdns_base_free(fw->dns, 1);
    if (fw->pressure_ev)
        event_free(fw->pressure_ev);
    fwd_scratch_free(&fw->scratch);
    free(fw->tls_rbuf);
    wbuf_free(&fw->acc.data);
    router_ctx_free(fw->route);
    free(fw);
    w->proto = NULL;
}

static void stop_task(worker *w, void *arg)
{
    fwd_worker *fw = w->proto;
    w->stopping = 1;
    fwd_conn *next;
    for (fwd_conn *c = fw->conns; c; c = next) {
        next = c->next;
        if (c->rev)
            event_del(c->rev);
        /* requests already handed to outputs still get their acks before the close */
        maybe_close(c);
    }
    check_exit(w);
}

void fwd_worker_stop(worker *w) { worker_post(w, stop_task, NULL); }

/* ---- SIGHUP reload: quiesce, swap, resume ----------------------------------- */

static void gate_unref(fwd_gate *g)
{
    pthread_mutex_lock(&g->mu);
    int last = --g->refs == 0;
    pthread_mutex_unlock(&g->mu);
    if (last) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        free(g);
    }
}

/* Worker: leave the gate, switch routers if told to, close the connections
 * of sources the new configuration dropped, read again. */
static void resume(worker *w, fwd_gate *g)
{
    fwd_worker *fw = w->proto;
    fw->gate = NULL;
    pthread_mutex_lock(&g->mu);
    struct router *nrt = g->newrt;
    pthread_mutex_unlock(&g->mu);
    if (nrt && nrt != w->rt) {
        router_ctx *rc = router_ctx_new(nrt);
        if (rc) {
            router_ctx_free(fw->route);
            fw->route = rc;
            w->rt = nrt;
        } else {
            wlog_error("in_forward", "worker %d: out of memory switching to the new routes", w->id);
        }
    }
    fwd_conn *next;
    for (fwd_conn *c = fw->conns; c; c = next) {
        next = c->next;
        if (c->src->retiring) {
            /* nothing pending (the worker was idle): close now */
            c->no_more_reads = 1;
            if (c->rev)
                event_del(c->rev);
            maybe_close(c);
            if (!c->closed)
                conn_close(c);
            continue;
        }
        if (c->paused) {
            c->paused = 0;
            if (c->reading && !c->no_more_reads && !w->stopping) {
                arm_read(c);
                event_active(c->rev, EV_READ, 0); /* bytes may have arrived meanwhile */
            }
        }
    }
    pthread_mutex_lock(&g->mu);
    g->resumed++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    gate_unref(g);
}

/* Worker: park if idle (every request handed to outputs is acked). */
static void try_park(worker *w)
{
    fwd_worker *fw = w->proto;
    fwd_gate *g = fw->gate;
    if (!g || fw->pending > 0)
        return;
    pthread_mutex_lock(&g->mu);
    g->parked++;
    pthread_cond_broadcast(&g->cv);
    while (!g->released)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    resume(w, g);
}

static void quiesce_task(worker *w, void *arg)
{
    fwd_worker *fw = w->proto;
    fwd_gate *g = arg;
    pthread_mutex_lock(&g->mu);
    int released = g->released;
    pthread_mutex_unlock(&g->mu);
    if (released) { /* main gave up before this task ran */
        pthread_mutex_lock(&g->mu);
        g->resumed++;
        pthread_cond_broadcast(&g->cv);
        pthread_mutex_unlock(&g->mu);
        gate_unref(g);
        return;
    }
    fw->gate = g;
    for (fwd_conn *c = fw->conns; c; c = c->next)
        if (c->rev && !c->paused) {
            c->paused = 1;
            event_del(c->rev);
        }
    try_park(w);
}

/* Main gave up waiting: a worker still waiting for its tickets resumes now. */
static void unquiesce_task(worker *w, void *arg)
{
    fwd_worker *fw = w->proto;
    if (fw->gate == arg)
        resume(w, arg);
}

fwd_gate *fwd_quiesce(worker *workers, int n)
{
    fwd_gate *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->refs = n + 1;
    for (int i = 0; i < n; i++)
        worker_post(&workers[i], quiesce_task, g);
    return g;
}

int fwd_gate_wait_parked(fwd_gate *g, int n, double timeout)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)timeout;
    until.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g->mu);
    int rc = 0;
    while (g->parked < n && rc == 0)
        rc = pthread_cond_timedwait(&g->cv, &g->mu, &until);
    int ok = g->parked >= n;
    pthread_mutex_unlock(&g->mu);
    return ok ? 0 : -1;
}

void fwd_gate_release(fwd_gate *g, struct router *newrt, worker *workers, int n)
{
    pthread_mutex_lock(&g->mu);
    g->newrt = newrt;
    g->released = 1;
    int all = g->parked >= n;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (!all)
        for (int i = 0; i < n; i++)
            worker_post(&workers[i], unquiesce_task, g);
    /* wait until every worker reads again (the connections of dropped
     * sources are closed by then), then drop main's reference */
    pthread_mutex_lock(&g->mu);
    while (g->resumed < n)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    gate_unref(g);
}

void fwd_source_adopt(fwd_source *old, fwd_source *nw)
{
    /* what a reload may change without changing the configuration text:
     * certificate and key files (re-read by fwd_source_create), the label
     * object (a new router) */
    fwd_tls_ctx *t = old->tls;
    old->tls = nw->tls;
    nw->tls = t;
    struct fwd_auth *a = old->auth;
    old->auth = nw->auth;
    nw->auth = a;
    old->label = nw->label;
}
