/*
 * forward-protocol/fwd_conn.c: one connection on its worker: reads (plain or TLS),
 * writes, acks in request order, back-pressure, closing.
 * See fwd_conn.h for how the forward input is cut.
 */
#include "forward-protocol/fwd_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "lib/clock.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/membudget.h"
#include "lib/mp.h"
#include "buffer/buffer.h"
#include "aggregator/router.h"
#include "forward-protocol/fwd_auth.h"
#include "aggregator/tls_server.h"

/* ---- connections (worker thread) -------------------------------------------- */

void fwd_conn_unref(fwd_conn *c)
{
    if (--c->refs > 0)
        return;
    wbuf_free(&c->in);
    fwd_in_sync(c);
    fwd_stream_abort(c); /* normally done at close */
    wbuf_free(&c->out);
    wbuf_free(&c->wire);
    free(c);
}

void fwd_conn_close(fwd_conn *c)
{
    if (c->closed)
        return;
    fwd_worker *fw = c->w->proto;
    fwd_stream_abort(c); /* a request cut off: no ack; what was handed on is counted */
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
            tls_srv_shutdown(c->tls);
            if (tls_srv_drain(c->tls, &c->wire) == 0 && c->wire.len > c->wire_off) {
                ssize_t n = write(c->fd, c->wire.data + c->wire_off, c->wire.len - c->wire_off);
                (void)n;
            }
        }
        tls_srv_conn_free(c->tls);
        c->tls = NULL;
    }
    close(c->fd);
    c->fd = -1;
    DLIST_UNLINK(fw->conns, c);
    fw->nconns--;
    atomic_fetch_sub_explicit(&c->w->stats.connections_open, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&c->src->open_conns, 1, memory_order_relaxed);
    worker *w = c->w;
    fwd_conn_unref(c);
    fwd_check_exit(w);
}

/* Bytes still to go out. Plaintext held for a TLS handshake that has not
 * completed (or failed) does not count: it may never be sendable. */
int fwd_out_pending(const fwd_conn *c)
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
        if (tls_srv_write(c->tls, c->out.data + c->out_off, c->out.len - c->out_off, err, sizeof err)) {
            wlog_warn("in_forward", "connection from %s: TLS write failed: %s; closing", c->peer, err);
            c->tls_failed = 1;
            return -1;
        }
        c->out.len = c->out_off = 0;
        if (c->out.cap > 65536)
            wbuf_free(&c->out);
    }
    return tls_srv_drain(c->tls, &c->wire);
}

void fwd_conn_write(fwd_conn *c)
{
    wbuf *b = &c->out;
    size_t *off = &c->out_off;
    if (c->tls) {
        if (tls_seal(c) < 0) {
            fwd_conn_close(c);
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
        fwd_conn_close(c);
        return;
    }
    b->len = *off = 0;
    if (b->cap > 65536)
        wbuf_free(b);
}

void fwd_maybe_close(fwd_conn *c)
{
    if (c->closed)
        return;
    if ((c->eof || c->no_more_reads || c->w->stopping) && c->npending == 0 && !fwd_out_pending(c))
        fwd_conn_close(c);
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
            fwd_conn_unref(c); /* may free c: stop touching it then */
            if (last) {
                fwd_check_exit(w);
                return;
            }
        } else {
            c->refs--; /* the connection's own reference keeps it alive */
        }
    }
    if (!c->closed) {
        c->refs++; /* fwd_conn_write/fwd_maybe_close may close it */
        if (fwd_out_pending(c))
            fwd_conn_write(c);
        fwd_maybe_close(c);
        fwd_conn_unref(c);
    }
    fwd_check_exit(w);
}

static void complete_reqs(fwd_req *q, uint32_t n, int failed)
{
    for (; q && n; q = q->next, n--) {
        q->complete = 1;
        q->failed = failed;
    }
}

/* Worker thread: every output is done with the group's batch. */
void fwd_group_done_cb(worker *w, wk_done *d)
{
    fwd_group *g = (fwd_group *)((char *)d - offsetof(fwd_group, d));
    fwd_worker *fw = w->proto;
    complete_reqs(g->first, g->nreqs, atomic_load_explicit(&g->t.failed, memory_order_relaxed) > 0);
    fwd_conn *c = g->c;
    if (g->reserved)
        mb_release(g->reserved);
    fw->pending--;
    if (g->sr) {
        /* a part of a streamed request: it holds a reference on c */
        fwd_part_done(g, atomic_load_explicit(&g->t.failed, memory_order_relaxed) > 0);
        free(g);
        flush_acks(c);
        int last = c->refs == 1;
        fwd_conn_unref(c);
        if (last)
            fwd_check_exit(w);
    } else {
        free(g);
        flush_acks(c);
    }
    if (fw->gate)
        fwd_try_park(w);
}

/* Output thread: hand the group back to its worker. */
void fwd_group_ticket_done(ticket *t)
{
    fwd_group *g = (fwd_group *)t;
    worker_done(g->w, &g->d);
}

/* Submit what the accumulator holds as one batch (worker thread). */
void fwd_acc_flush(fwd_conn *c)
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
            router_route(fw->route, c->src->base.label, b);
            dl = router_ctx_deliveries(fw->route, &n);
        } else {
            free(data);
        }
        fwd_group *g = NULL;
        if (b && a->nreqs && n && (g = calloc(1, sizeof *g)) != NULL) {
            atomic_init(&g->t.outstanding, (int)n);
            atomic_init(&g->t.failed, 0);
            g->t.done = fwd_group_ticket_done;
            g->d.cb = fwd_group_done_cb;
            g->w = w;
            g->c = c;
            g->first = a->first;
            g->nreqs = a->nreqs;
            g->reserved = len; /* held by outputs until the ticket completes */
            mb_force(len);
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
void fwd_drop_conn(fwd_conn *c, const char *what, const char *detail)
{
    wlog_warn("in_forward", "dropping connection from %s: %s%s%s; %llu records acked on it before, %d requests "
              "before the bad one still to be acked",
              c->peer, what, detail ? ": " : "", detail ? detail : "", (unsigned long long)c->records_acked,
              c->npending);
    fwd_stream_abort(c);
    c->no_more_reads = 1;
    if (c->rev)
        event_del(c->rev);
    c->refs++; /* keep c while the accumulated requests are handed over */
    fwd_acc_flush(c);
    fwd_maybe_close(c);
    fwd_conn_unref(c);
}


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

void fwd_pressure_cb(evutil_socket_t fd, short what, void *arg)
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
                fwd_arm_read(c);
                /* decrypted-but-unread data, or read bytes a stream still has to
                 * decode, do not make the socket readable */
                if (c->tls || c->st_blocked)
                    event_active(c->rev, EV_READ, 0);
            }
        }
}

static void tls_ready(fwd_conn *c)
{
    if (wlog_level <= WLOG_DEBUG) {
        char d[256];
        tls_srv_describe(c->tls, d, sizeof d);
        wlog_debug("in_forward", "TLS handshake with %s done: %s", c->peer, d);
    }
    fwd_hs_check(c);
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
    tls_srv_drain(c->tls, &c->wire); /* the alert */
    c->tls_failed = 1;
    c->no_more_reads = 1;
    if (c->rev)
        event_del(c->rev);
    c->refs++;
    fwd_conn_write(c);
    if (!c->closed)
        fwd_maybe_close(c);
    fwd_conn_unref(c);
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
        rc = tls_srv_read(c->tls, c->in.data + c->in.len + got, room - got, err, sizeof err);
        if (rc > 0) {
            got += (size_t)rc;
            continue;
        }
        if (rc == TLS_SRV_EOF) {
            eof = 1;
            break;
        }
        if (rc == TLS_SRV_ERROR)
            break;
        ssize_t n = read(c->fd, fw->tls_rbuf, TLS_READ_CHUNK);
        if (n > 0) {
            atomic_fetch_add_explicit(&c->w->stats.bytes, (uint64_t)n, memory_order_relaxed);
            if (tls_srv_feed(c->tls, fw->tls_rbuf, (size_t)n)) {
                rc = TLS_SRV_ERROR;
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
    if (!c->tls_up && tls_srv_established(c->tls)) {
        c->tls_up = 1;
        tls_ready(c);
    }
    if (rc == TLS_SRV_ERROR) {
        tls_fail(c, err);
        return TLS_RECV_STOP;
    }
    /* send what the handshake produced, and the HELO once it is done */
    c->refs++;
    fwd_conn_write(c);
    int closed = c->closed;
    fwd_conn_unref(c);
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
void fwd_arm_read(fwd_conn *c)
{
    event_add(c->rev, c->src->idle_timeout > 0 ? &c->src->idle_tv : NULL);
}

/* A streamed request stopped between parts (st_blocked): why decides how it goes on. */
static void stream_stopped(fwd_conn *c)
{
    if (mb_over())
        fwd_budget_pause(c);
    else if (c->st_yield)
        fwd_stream_yield(c);
    else
        pause_conn(c);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    fwd_conn *c = arg;
    worker *w = c->w;
    if (what & EV_TIMEOUT) {
        if (c->npending || c->out.len || c->in.len > c->in_off || c->st) {
            /* acks still to send, or a request half received: not idle */
            if (c->in.len > c->in_off || c->st) {
                atomic_fetch_add_explicit(&c->src->idle_closed, 1, memory_order_relaxed);
                fwd_drop_conn(c, "no data for idle_timeout in the middle of a request", NULL);
            }
            return;
        }
        atomic_fetch_add_explicit(&c->src->idle_closed, 1, memory_order_relaxed);
        wlog_info("in_forward", "closing connection from %s: idle for %gs (idle_timeout); %llu records acked on it",
                  c->peer, c->src->idle_timeout, (unsigned long long)c->records_acked);
        fwd_conn_close(c);
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
    int grant = c->mgrant;
    c->mgrant = 0;
    if (c->st_blocked) {
        /* a streamed request stopped between parts: what it has read goes first */
        if (c->hs_done && !grant && mb_over()) {
            fwd_budget_pause(c);
            return;
        }
        c->st_blocked = 0;
        c->st_yield = 0;
        if (fwd_process_input(c) < 0 || c->no_more_reads)
            return;
        if (c->st_blocked) {
            stream_stopped(c);
            return;
        }
    }
    for (int round = 0; round < 4; round++) {
        /* at the memory budget: stop reading until memory is released */
        if (c->hs_done && !grant && mb_over()) {
            /* an unfinished frame it holds is streamed instead: that frees it */
            int r = fwd_budget_shed(c);
            if (r < 0)
                return;
            if (mb_over()) {
                fwd_budget_pause(c);
                return;
            }
        }
        if (c->in.cap - c->in.len < READ_CHUNK / 4) {
            if (c->hs_done && fwd_budget_refuses(c, c->in.cap ? c->in.cap : READ_CHUNK)) {
                /* the frame would not fit: decode the request as it arrives
                 * (frees the frame), or wait for memory */
                if (!c->st && !c->force_stream && c->in.len > c->in_off) {
                    c->force_stream = 1;
                    if (fwd_process_input(c) < 0 || c->no_more_reads)
                        return;
                    continue;
                }
                if (!grant) {
                    fwd_budget_pause(c);
                    return;
                }
            }
            c->in.max = fwd_request_limit(c->src->chunk_size_limit) + READ_CHUNK;
            if (wbuf_grow(&c->in, READ_CHUNK)) {
                fwd_drop_conn(c, "out of memory for the input buffer", NULL);
                return;
            }
            fwd_in_sync(c);
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
            if (fwd_process_input(c) < 0)
                return;
            if (c->no_more_reads)
                return;
            if (c->st_blocked) {
                stream_stopped(c);
                return;
            }
            if (c->tls ? !more : (size_t)n < room)
                return;
            continue;
        }
        if (n == 0) {
            c->eof = 1;
            event_del(c->rev);
            if (c->in.len > c->in_off || c->st)
                wlog_warn("in_forward", "connection from %s closed in the middle of a request (%zu bytes unread)",
                          c->peer, c->in.len - c->in_off);
            else if (c->auth_wait)
                wlog_debug("in_forward", "connection from %s closed before its PING", c->peer);
            fwd_maybe_close(c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        wlog_debug("in_forward", "connection from %s: read failed: %s", c->peer, strerror(errno));
        fwd_conn_close(c);
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
    c->refs++; /* fwd_conn_write may close it */
    fwd_conn_write(c);
    if (!c->closed && !fwd_out_pending(c))
        fwd_maybe_close(c);
    fwd_conn_unref(c);
}

static void start_reading(fwd_conn *c)
{
    if (c->closed)
        return;
    c->reading = 1;
    if (((fwd_worker *)c->w->proto)->gate)
        c->paused = 1; /* armed when the reload resumes the worker */
    else if (!c->w->stopping)
        fwd_arm_read(c);
}

static void reverse_cb(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    fwd_conn *c = arg;
    if (result == DNS_ERR_NONE && type == DNS_PTR && count > 0)
        snprintf(c->host, sizeof c->host, "%s", *(char **)addresses);
    c->fp.hostname = c->host;
    start_reading(c);
    fwd_conn_unref(c);
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
    if (!c->rev || !c->wev || !(c->hs_ev = evtimer_new(c->w->base, fwd_hs_timeout_cb, c)))
        goto oom;
    struct timeval tv = {(time_t)s->handshake_timeout,
                         (suseconds_t)((s->handshake_timeout - (double)(time_t)s->handshake_timeout) * 1e6)};
    evtimer_add(c->hs_ev, &tv);
    if (s->tls) {
        if (!fw->tls_rbuf && !(fw->tls_rbuf = malloc(TLS_READ_CHUNK)))
            goto oom;
        if (!(c->tls = tls_srv_conn_new(s->tls)))
            goto oom;
    }
    if (s->auth) {
        c->auth_wait = 1;
        if (fwd_auth_session_init(&c->as) != 0) {
            wlog_error("in_forward", "cannot draw a random nonce for %s; closing it", c->peer);
            fwd_conn_close(c);
            return -1;
        }
        if (fwd_auth_helo(s->auth, &c->as, !s->deny_keepalive, &c->out))
            goto oom;
        if (!c->tls) { /* with TLS the HELO leaves once the TLS handshake is done */
            c->refs++;
            fwd_conn_write(c);
            int closed = c->closed;
            fwd_conn_unref(c);
            if (closed)
                return -1;
        }
    }
    return 0;
oom:
    wlog_error("in_forward", "out of memory setting up the connection from %s; closing it", c->peer);
    fwd_conn_close(c);
    return -1;
}

void fwd_conn_new(worker *w, void *arg)
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
    DLIST_PUSH(fw->conns, c);
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
