/*
 * forward-protocol/fwd_request.c: the handshake (HELO/PING/PONG) and each request:
 * framed, decoded, routed, submitted; acks tracked.
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
#include "lib/log.h"
#include "lib/mp.h"
#include "buffer/buffer.h"
#include "aggregator/router.h"
#include "forward-protocol/fwd_auth.h"
#include "forward-protocol/fwd_stream.h"
#include "aggregator/tls_server.h"

/* ---- handshakes ------------------------------------------------------------------ */

/* Both handshakes done (or not configured): stop the deadline. */
void fwd_hs_check(fwd_conn *c)
{
    if (c->hs_done || (c->tls && !c->tls_up) || c->auth_wait)
        return;
    c->hs_done = 1;
    if (c->hs_ev)
        event_del(c->hs_ev);
    atomic_fetch_add_explicit(&c->src->hs_ok, 1, memory_order_relaxed);
}

void fwd_hs_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    fwd_conn *c = arg;
    atomic_fetch_add_explicit(&c->src->hs_timeouts, 1, memory_order_relaxed);
    wlog_warn("in_forward", "handshake timeout: closing the connection from %s after %gs: %s", c->peer,
              c->src->handshake_timeout,
              c->tls && !c->tls_up ? "the TLS handshake did not complete"
              : c->auth_wait && !c->no_more_reads ? "no PING received"
                                                  : "the refused client did not read its PONG");
    fwd_conn_close(c);
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
    fwd_hs_check(c);
}

/* A decoded request's counters and warnings (whole or streamed). */
void fwd_count_result(fwd_conn *c, const fwd_result *rp)
{
    worker_stats *st = &c->w->stats;
    const fwd_result r = *rp;
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
}

/* 0: handled; 1: stream it instead (it inflates past stream_threshold);
 * -1: the connection was dropped. */
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
        fwd_acc_flush(c);

    fwd_result r;
    if (!a->data.cap)
        wbuf_grow(&a->data, 64 * 1024);
    a->data.max = o->max_decompressed + (o->max_decompressed >> 2) + ACC_FLUSH_BYTES + (1u << 20);
    /* a compressed request that inflates past stream_threshold is decoded
     * again by the stream (bounded windows) instead of inflated whole */
    fwd_decode_opts capped = *o;
    int cap = c->src->stream_threshold && capped.max_decompressed > c->src->stream_threshold;
    if (cap)
        capped.max_decompressed = c->src->stream_threshold;
    int rc = fwd_decode(&capped, &c->fp, &fw->scratch, req, len, &r, &a->data);
    if (rc == FWD_CORRUPT && r.over_decompressed && cap) {
        if (fw->scratch.inflated.cap > (8u << 20))
            wbuf_free(&fw->scratch.inflated);
        return 1;
    }
    if (fw->scratch.inflated.cap > (8u << 20))
        wbuf_free(&fw->scratch.inflated); /* do not keep a huge decompression buffer around */
    if (rc == FWD_HEARTBEAT)
        return 0;
    atomic_fetch_add_explicit(&st->requests, 1, memory_order_relaxed);
    if (rc == FWD_CORRUPT) {
        atomic_fetch_add_explicit(&st->decode_errors, 1, memory_order_relaxed);
        if (r.over_decompressed)
            atomic_fetch_add_explicit(&st->over_decompressed, 1, memory_order_relaxed);
        fwd_drop_conn(c, "corrupt request", r.err);
        return -1;
    }
    fwd_count_result(c, &r);
    if (r.records && !a->records) {
        memcpy(a->tag, tag, (size_t)tl + 1);
        a->tag_len = (size_t)tl;
    }
    a->records += r.records;

    if (r.chunk) {
        fwd_req *q = malloc(sizeof *q + 5 + r.chunk_len);
        if (!q) {
            fwd_drop_conn(c, "out of memory", NULL);
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

/* A request was read whole: keepalive and retirement. */
int fwd_after_request(fwd_conn *c)
{
    fwd_source *s = c->src;
    c->nreqs++;
    c->force_stream = 0; /* the budget's switch was for that request only */
    if (s->deny_keepalive) {
        c->no_more_reads = 1;
        if (c->rev)
            event_del(c->rev);
    } else if (c->in_off == c->in.len && retire_due(c)) {
        /* between requests (nothing of the next one read yet): read no
         * more; fwd_maybe_close() closes once every ack is written */
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
    return 0;
}

int fwd_process_input(fwd_conn *c)
{
    fwd_source *s = c->src;
    while (!c->no_more_reads && c->in.len > c->in_off) {
        if (c->st) {
            int src = fwd_stream_input(c);
            if (src < 0)
                return -1;
            if (src == 0)
                break;
            fwd_after_request(c);
            continue;
        }
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
            fwd_drop_conn(c, "corrupt stream", d);
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
        if (size > fwd_request_limit(s->chunk_size_limit)) {
            char d[128];
            snprintf(d, sizeof d, "%llu%s bytes, chunk_size_limit is %llu", (unsigned long long)size,
                     rc == MP_OK ? "" : "+ (as its length fields claim)", (unsigned long long)s->chunk_size_limit);
            atomic_fetch_add_explicit(&c->w->stats.oversize, 1, memory_order_relaxed);
            fwd_drop_conn(c, "request larger than chunk_size_limit", d);
            return -1;
        }
        if (s->chunk_size_warn_limit && size > s->chunk_size_warn_limit && !c->warned_size) {
            c->warned_size = 1;
            wlog_warn("in_forward", "request from %s is larger than chunk_size_warn_limit (%llu bytes)", c->peer,
                      (unsigned long long)s->chunk_size_warn_limit);
        }
        if (rc != MP_OK) {
            /* large (or refused by the memory budget): decode it as it arrives */
            if (!c->auth_wait && ((s->stream_threshold && size > s->stream_threshold) || c->force_stream) &&
                fwd_stream_probe(base, avail) == FWD_OK) {
                mp_framer_reset(&c->fr);
                if (fwd_stream_begin(c, base, avail) < 0)
                    return -1;
                continue;
            }
            break;
        }
        mp_framer_reset(&c->fr);
        c->warned_size = 0;
        c->in_off += size;
        if (c->auth_wait) {
            handle_ping(c, base, size); /* queues the PONG; written below */
            continue;
        }
        int hr = handle_request(c, base, size);
        if (hr < 0)
            return -1;
        if (hr == 1) { /* inflates past stream_threshold: stream it from its first byte */
            c->in_off -= size;
            if (fwd_stream_begin(c, base, size) < 0)
                return -1;
            continue;
        }
        fwd_after_request(c);
    }
    c->refs++;
    fwd_acc_flush(c);
    if (c->closed) {
        fwd_conn_unref(c);
        return -1;
    }
    c->refs--;
    /* compact: keep only the unfinished request at the front */
    if (c->in_off == c->in.len) {
        c->in.len = c->in_off = 0;
        if (c->in.cap > (4u << 20)) {
            wbuf_free(&c->in); /* give a big request's memory back */
            fwd_in_sync(c);
        }
    } else if (c->in_off) {
        memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
        c->in.len -= c->in_off;
        c->in_off = 0;
    }
    /* what is left is small (a streamed request's next entry): give the
     * rest of a big buffer back, to the budget too (a streamed request keeps
     * one read buffer, whatever it needed for a big entry) */
    if (c->in.cap > READ_CHUNK && c->in.len <= READ_CHUNK / 2 && (c->st || c->in.cap > (4u << 20))) {
        uint8_t *d = realloc(c->in.data, READ_CHUNK);
        if (d) {
            c->in.data = d;
            c->in.cap = READ_CHUNK;
            fwd_in_sync(c);
        }
    }
    c->refs++; /* fwd_conn_write/fwd_maybe_close may free c */
    if (fwd_out_pending(c))
        fwd_conn_write(c); /* a PONG */
    if (!c->closed)
        fwd_maybe_close(c);
    int closed = c->closed;
    fwd_conn_unref(c);
    return closed ? -1 : 0;
}
