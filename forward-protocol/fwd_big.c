/*
 * forward-protocol/fwd_big.c: streamed requests and the memory budget on a
 * connection (docs/architecture.md, "Streamed requests" and "Memory budget").
 * See fwd_conn.h for how the forward input is cut.
 *
 * A streamed request is fed from c->in to its fwd_stream as bytes arrive;
 * every batch it fills (a "part", ACC_FLUSH_BYTES) goes through the router
 * and output_submit like an accumulated batch, with a fwd_group whose sr
 * points at the request's fwd_sreq. The request's fwd_req (its ack) joins
 * the FIFO when its option map has been read, and completes when every part
 * is done. Cut off midway, it is never acked; its parts are still delivered
 * (counted as partial records: the sender's retry sends them again).
 */
#include "forward-protocol/fwd_conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/membudget.h"
#include "buffer/buffer.h"
#include "aggregator/router.h"
#include "forward-protocol/fwd_stream.h"

/* ---- the budget's account of a connection ------------------------------------- */

static void sync_res(size_t *res, size_t now)
{
    if (now > *res)
        mb_force(now - *res);
    else if (now < *res)
        mb_release(*res - now);
    *res = now;
}

void fwd_in_sync(fwd_conn *c) { sync_res(&c->in_res, c->in.cap); }

static void st_sync(fwd_conn *c)
{
    sync_res(&c->st_res, (c->st ? fwd_stream_footprint(c->st) : 0) + c->st_out.cap);
}

/* Growing the input buffer by `grow` would pass the budget. The first
 * READ_CHUNK of a connection is never refused (a connection must be able to
 * read its handshake and requests at all). */
int fwd_budget_refuses(const fwd_conn *c, size_t grow)
{
    uint64_t lim = mb_limit();
    return lim && c->in.cap >= READ_CHUNK && mb_in_use() + grow > lim;
}

/* At the budget: a connection holding an unfinished whole frame (bigger
 * than its first read buffer) streams that request instead, which frees the
 * frame. 1: it did, 0: nothing to shed, -1: the connection is gone. */
int fwd_budget_shed(fwd_conn *c)
{
    if (c->st || c->force_stream || c->auth_wait || c->closed || c->in.len <= c->in_off || c->in.cap <= READ_CHUNK)
        return 0;
    c->force_stream = 1;
    c->refs++;
    int rc = fwd_process_input(c);
    int gone = rc < 0 || c->closed || c->no_more_reads;
    fwd_conn_unref(c);
    return gone ? -1 : 1;
}

/* ---- waiting for memory --------------------------------------------------------- */

static void arm_budget(fwd_worker *fw)
{
    if (!fw->budget_armed) {
        struct timeval tv = {0, 5000};
        fw->budget_armed = 1;
        evtimer_add(fw->budget_ev, &tv);
    }
}

void fwd_budget_pause(fwd_conn *c)
{
    fwd_worker *fw = c->w->proto;
    if (!c->mpaused) {
        c->mpaused = 1;
        c->mpaused_at = clock_mono();
        c->mseq = ++fw->mseq;
        if (c->rev)
            event_del(c->rev);
        mb_wait_start(MB_WAIT_FORWARD_READ);
    }
    arm_budget(fw);
}

static void resume(fwd_conn *c, double now)
{
    c->mpaused = 0;
    mb_wait_add(MB_WAIT_FORWARD_READ, now - c->mpaused_at);
    if (c->closed || c->no_more_reads || c->w->stopping || c->paused || !c->rev)
        return;
    fwd_arm_read(c);
    /* activated in waiting order: libevent runs them in that order */
    event_active(c->rev, EV_READ, 0);
}

static int by_seq(const void *a, const void *b)
{
    const fwd_conn *x = *(fwd_conn *const *)a, *y = *(fwd_conn *const *)b;
    return x->mseq < y->mseq ? -1 : x->mseq > y->mseq;
}

/* Every 5 ms while connections wait: under the budget, all of them read
 * again, the one that waited longest first (each reads at most one burst
 * before the budget is checked again). Over it with nothing of this worker
 * in flight for 200 ms (nothing here will release memory), the oldest
 * reads once anyway so a budget held by unfinished requests cannot stall
 * them all. */
void fwd_budget_cb(evutil_socket_t fd, short what, void *arg)
{
    worker *w = arg;
    fwd_worker *fw = w->proto;
    fw->budget_armed = 0;
    int n = 0;
    for (fwd_conn *c = fw->conns; c; c = c->next)
        n += c->mpaused;
    if (!n)
        return;
    fwd_conn **v = malloc((size_t)n * sizeof *v);
    if (!v) {
        arm_budget(fw);
        return;
    }
    int k = 0;
    for (fwd_conn *c = fw->conns; c; c = c->next)
        if (c->mpaused)
            v[k++] = c;
    qsort(v, (size_t)k, sizeof *v, by_seq);
    double now = clock_mono();
    /* over the budget: the waiting connections' unfinished frames are streamed first */
    for (int i = 0; i < k && mb_over(); i++) {
        if (v[i]->closed)
            continue;
        v[i]->refs++;
        if (fwd_budget_shed(v[i]) < 0)
            v[i]->mpaused = 0; /* gone: not resumed below */
        int last = v[i]->refs == 1;
        fwd_conn_unref(v[i]);
        if (last)
            v[i] = NULL;
    }
    int m = 0;
    for (int i = 0; i < k; i++)
        if (v[i] && v[i]->mpaused)
            v[m++] = v[i];
    k = m;
    if (!k) {
        free(v);
        return;
    }
    if (!mb_over()) {
        fw->stalled_since = 0;
        for (int i = 0; i < k; i++)
            resume(v[i], now);
    } else if (fw->pending == 0) {
        if (!fw->stalled_since)
            fw->stalled_since = now;
        if (now - fw->stalled_since >= 0.2) {
            fw->stalled_since = 0;
            v[0]->mgrant = 1;
            resume(v[0], now);
            wlog_debug("in_forward", "memory budget held by waiting requests: %s reads once", v[0]->peer);
        }
        arm_budget(fw);
    } else {
        fw->stalled_since = 0;
        arm_budget(fw);
    }
    free(v);
}

/* ---- yielding ------------------------------------------------------------------------ */

/* The stream stopped between parts with bytes still to decode (st_yield):
 * it goes on from a zero timer, i.e. after the loop's next poll, so the
 * connections readable meanwhile (a normal client's small requests) are
 * served first, and the budget is checked again before it goes on. An
 * event_active here would run it again before the next poll. */
void fwd_stream_yield(fwd_conn *c)
{
    fwd_worker *fw = c->w->proto;
    if (c->rev)
        event_del(c->rev);
    if (!fw->yield_armed) {
        struct timeval tv = {0, 0};
        fw->yield_armed = 1;
        evtimer_add(fw->yield_ev, &tv);
    }
}

void fwd_yield_cb(evutil_socket_t fd, short what, void *arg)
{
    worker *w = arg;
    fwd_worker *fw = w->proto;
    fw->yield_armed = 0;
    for (fwd_conn *c = fw->conns; c; c = c->next) {
        /* paused (outputs, a reload) or waiting for memory: resumed from there, st_blocked says why */
        if (!c->st_yield || c->paused || c->mpaused)
            continue;
        c->st_yield = 0;
        if (!c->closed && !c->no_more_reads && !w->stopping && c->rev) {
            fwd_arm_read(c);
            event_active(c->rev, EV_READ, 0);
        }
    }
}

/* ---- streamed requests ------------------------------------------------------------ */

/* Start streaming the request whose head is at `head` (fwd_stream_probe said
 * it streams). The accumulated requests before it go out first. */
int fwd_stream_begin(fwd_conn *c, const uint8_t *head, size_t len)
{
    fwd_acc_flush(c);
    if (c->closed)
        return -1;
    c->force_stream = 0;
    const uint8_t *raw;
    size_t raw_len;
    int tl = -1;
    if (fwd_peek_tag(head, len, &raw, &raw_len) == 0)
        tl = fwd_final_tag(&c->src->dopts, raw, raw_len, c->st_tag, sizeof c->st_tag);
    if (tl < 0) {
        atomic_fetch_add_explicit(&c->w->stats.decode_errors, 1, memory_order_relaxed);
        fwd_drop_conn(c, "corrupt request", "the tag is too long");
        return -1;
    }
    c->st_tag_len = (size_t)tl;
    c->st = fwd_stream_new(&c->src->dopts, &c->fp, ACC_FLUSH_BYTES);
    c->sr = c->st ? calloc(1, sizeof *c->sr) : NULL;
    if (!c->sr) {
        fwd_stream_free(c->st);
        c->st = NULL;
        fwd_drop_conn(c, "out of memory", NULL);
        return -1;
    }
    atomic_fetch_add_explicit(&c->src->streamed, 1, memory_order_relaxed);
    wlog_debug("in_forward", "streaming a large request from %s (tag %s)", c->peer, c->st_tag);
    return 0;
}

static void sreq_maybe_free(fwd_sreq *sr)
{
    if (sr->ended && sr->parts == 0) {
        if (sr->q) {
            sr->q->complete = 1;
            sr->q->failed = sr->failed;
        }
        free(sr);
    }
}

/* A part's ticket completed (worker thread). */
void fwd_part_done(fwd_group *g, int failed)
{
    fwd_sreq *sr = g->sr;
    sr->parts--;
    if (failed)
        sr->failed = 1;
    sreq_maybe_free(sr);
}

/* Hand the stream's batch on as one part. -1: out of memory (dropped). */
static int submit_part(fwd_conn *c)
{
    worker *w = c->w;
    fwd_worker *fw = w->proto;
    uint32_t recs = fwd_stream_take(c->st);
    if (!recs) {
        c->st_out.len = 0;
        return 0;
    }
    atomic_fetch_add_explicit(&w->stats.records, recs, memory_order_relaxed);
    size_t len;
    uint8_t *data = wbuf_steal(&c->st_out, &len);
    st_sync(c);
    batch *b = batch_new(c->st_tag, c->st_tag_len, data, len, recs);
    if (!b) {
        free(data);
        c->sr->failed = 1;
        return -1;
    }
    size_t n = 0;
    router_route(fw->route, c->src->base.label, b);
    rt_delivery *dl = router_ctx_deliveries(fw->route, &n);
    fwd_group *g = NULL;
    if (n && (g = calloc(1, sizeof *g)) != NULL) {
        atomic_init(&g->t.outstanding, (int)n);
        atomic_init(&g->t.failed, 0);
        g->t.done = fwd_group_ticket_done;
        g->d.cb = fwd_group_done_cb;
        g->w = w;
        g->c = c;
        g->sr = c->sr;
        g->reserved = len;
        mb_force(len);
        c->refs++;
        c->sr->parts++;
        fw->pending++;
    }
    int rc = 0;
    if (n && !g) {
        wlog_error("in_forward", "out of memory: %u records from %s not accepted", recs, c->peer);
        c->sr->failed = 1;
        rc = -1;
    } else {
        c->sr->handed += recs;
        for (size_t i = 0; i < n; i++)
            output_submit(dl[i].out, dl[i].b, &g->t, dl[i].flags);
    }
    router_ctx_reset(fw->route);
    batch_unref(b);
    return rc;
}

static void stream_free(fwd_conn *c)
{
    fwd_stream_free(c->st);
    c->st = NULL;
    wbuf_free(&c->st_out);
    st_sync(c);
    c->sr = NULL;
}

/* The connection is closing (or dropped) in the middle of a streamed
 * request: no ack; the parts already handed on stay (counted). */
void fwd_stream_abort(fwd_conn *c)
{
    if (!c->st)
        return;
    fwd_sreq *sr = c->sr;
    if (sr->handed) {
        atomic_fetch_add_explicit(&c->src->partial_requests, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&c->src->partial_records, sr->handed, memory_order_relaxed);
        wlog_warn("in_forward", "a request from %s was cut off after %llu of its records were handed on: not "
                  "acknowledged, the sender's retry will deliver those again",
                  c->peer, (unsigned long long)sr->handed);
    }
    sr->ended = 1;
    sr->q = NULL;
    stream_free(c);
    sreq_maybe_free(sr);
}

/* The request was read whole: its last part, its counters, its ack. */
static int stream_end(fwd_conn *c)
{
    worker *w = c->w;
    const fwd_result *r = fwd_stream_result(c->st);
    if (r->signal) /* fwd_decode skips these; a streamed one was handed on before its options said so */
        wlog_warn("in_forward", "a streamed request from %s carried fluent_signal %d: its %u entries were already "
                  "handed on as records", c->peer, r->signal, r->records);
    if (submit_part(c) < 0) {
        fwd_stream_abort(c);
        fwd_drop_conn(c, "out of memory", NULL);
        return -1;
    }
    atomic_fetch_add_explicit(&w->stats.requests, 1, memory_order_relaxed);
    fwd_count_result(c, r);
    fwd_sreq *sr = c->sr;
    if (r->chunk) {
        fwd_req *q = malloc(sizeof *q + 5 + r->chunk_len);
        if (!q) {
            fwd_stream_abort(c);
            fwd_drop_conn(c, "out of memory", NULL);
            return -1;
        }
        memset(q, 0, sizeof *q);
        wbuf tmp = {.data = q->ack, .cap = 5 + r->chunk_len, .max = 5 + r->chunk_len};
        fwd_ack_encode(&tmp, r->chunk, r->chunk_len);
        q->ack_len = tmp.len;
        q->records = r->records;
        c->refs++;
        c->npending++;
        if (c->pt)
            c->pt->next = q;
        else
            c->ph = q;
        c->pt = q;
        sr->q = q;
    }
    sr->ended = 1;
    stream_free(c);
    sreq_maybe_free(sr); /* no part in flight: complete now */
    return 1;
}

/* A stream whose bytes are already read (a compressed request framed
 * whole, a read burst of many entries) stops after this much and lets the
 * worker's other connections run (fwd_stream_yield): decoding 512 MiB
 * inflated from one 1.4 MB request back to back would hold the worker for
 * the whole of it, and the budget would only be checked between parts. */
#define YIELD_PARTS 4
#define YIELD_BYTES (1024 * 1024)

int fwd_stream_input(fwd_conn *c)
{
    uint64_t lim = fwd_request_limit(c->src->chunk_size_limit);
    int parts = 0;
    size_t fed = 0;
    for (;;) {
        size_t used = 0;
        int rc = fwd_stream_feed(c->st, c->in.data + c->in_off, c->in.len - c->in_off, &used, &c->st_out);
        c->in_off += used;
        fed += used;
        st_sync(c);
        uint64_t size = fwd_stream_consumed(c->st) + (rc == FWD_OK ? 0 : c->in.len - c->in_off);
        if (size > lim) {
            char d[128];
            snprintf(d, sizeof d, "%llu+ bytes (streamed), chunk_size_limit is %llu", (unsigned long long)size,
                     (unsigned long long)c->src->chunk_size_limit);
            atomic_fetch_add_explicit(&c->w->stats.oversize, 1, memory_order_relaxed);
            fwd_drop_conn(c, "request larger than chunk_size_limit", d);
            return -1;
        }
        switch (rc) {
        case FWD_STREAM_FULL:
            if (submit_part(c) < 0) {
                fwd_drop_conn(c, "out of memory", NULL);
                return -1;
            }
            /* the rest of what was read waits while memory or the outputs are full */
            if (mb_over() || router_congested(c->w->rt)) {
                c->st_blocked = 1;
                return 0;
            }
            if (++parts >= YIELD_PARTS || fed >= YIELD_BYTES) {
                c->st_blocked = 1;
                c->st_yield = 1;
                return 0;
            }
            continue;
        case FWD_STREAM_MORE:
            return 0;
        case FWD_OK:
            return stream_end(c);
        default: {
            const fwd_result *r = fwd_stream_result(c->st);
            char err[sizeof r->err];
            snprintf(err, sizeof err, "%s", rc == FWD_CORRUPT ? r->err : "not a streamable request");
            atomic_fetch_add_explicit(&c->w->stats.requests, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&c->w->stats.decode_errors, 1, memory_order_relaxed);
            if (r->over_decompressed)
                atomic_fetch_add_explicit(&c->w->stats.over_decompressed, 1, memory_order_relaxed);
            fwd_drop_conn(c, "corrupt request", err);
            return -1;
        }
        }
    }
}
