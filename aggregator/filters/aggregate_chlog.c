/*
 * aggregator/filters/aggregate_chlog.c: the aggregate filter's changelog in
 * Kafka (`changelog_topic`), so that open sagas survive a replica killed
 * with -9 and a partition moving to another replica of the consumer group
 * (docs/architecture.md, "Correlation state").
 *
 * - Every change of a saga writes its whole state (agg_encode) to the
 *   changelog topic, keyed by the saga key; a closed saga writes its final
 *   state as a marker (flag closed, kept `timeout` in memory), then a
 *   tombstone when the marker expires.
 * - Barrier (filter_hooks_barrier, called by the kafka source after the
 *   outputs hold a burst and before it stores the burst's offsets): flush
 *   the producer; a failed delivery keeps the offsets from being stored.
 * - Assignment (the kafka source's rebalance callback, before it reads the
 *   partitions): read the changelog from its start to its end offsets and
 *   install every saga whose source partition was just assigned.
 *   Revocation (after the source committed): drop the sagas of the revoked
 *   partitions without summaries (their state is in the changelog).
 *
 * Encoding of a state (little-endian, str16 = [u16 len][bytes]):
 *   u8 version (1), u8 flags (1 started, 2 closed), u8 outcome,
 *   u64 first, u64 last (ns), u32 events, failures, compensations, steps_dropped,
 *   str16 source topic, i32 source partition, i64 offset of the last event applied,
 *   u32 nsteps, nsteps x ([u64 t][u8 kind][str16 name][str16 service][str16 status]),
 *   u8 nservices, str16 each, u8 ntrace_ids, [u8 len][bytes] each.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "aggregator/filters/aggregate_impl.h"

#define CL_VERSION 1

typedef struct agg_chlog {
    pthread_mutex_t mu; /* the producer's creation */
    rd_kafka_t *_Atomic prod;
    char *topic, *brokers, *id;
    int partitions;
    agg_state *st;
    aggregate_ctx caps; /* max_steps, max_services, max_trace_ids, copy_key_by_trace (a reload may free the ctx) */
    atomic_uint_fast64_t failed, written; /* failed: since the last barrier */
    atomic_uint_fast64_t failed_total, restored;
} agg_chlog;

/* ---- encoding ---------------------------------------------------------------------------------- */

static void put_u8(wbuf *w, uint8_t v) { wbuf_add(w, &v, 1); }
static void put_le(wbuf *w, uint64_t v, int n)
{
    uint8_t b[8];
    for (int i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    wbuf_add(w, b, (size_t)n);
}
static void put_s16(wbuf *w, const char *s)
{
    size_t n = strlen(s);
    if (n > AGG_MAX_STR)
        n = AGG_MAX_STR;
    put_le(w, n, 2);
    wbuf_add(w, s, n);
}

void agg_encode(const agg_shard *sh, const saga *g, wbuf *w)
{
    put_u8(w, CL_VERSION);
    put_u8(w, g->flags & (F_STARTED | F_CLOSED));
    put_u8(w, g->outcome);
    put_le(w, g->first, 8);
    put_le(w, g->last, 8);
    put_le(w, g->events, 4);
    put_le(w, g->failures, 4);
    put_le(w, g->compensations, 4);
    put_le(w, g->dropped_steps, 4);
    put_s16(w, agg_str_of(sh, g->stopic));
    put_le(w, (uint32_t)g->spart, 4);
    put_le(w, (uint64_t)g->soff, 8);
    put_le(w, g->nsteps, 4);
    for (uint32_t i = 0; i < g->nsteps; i++) {
        put_le(w, g->steps[i].t, 8);
        put_u8(w, (uint8_t)g->steps[i].kind);
        put_s16(w, agg_str_of(sh, g->steps[i].name));
        put_s16(w, agg_str_of(sh, g->steps[i].service));
        put_s16(w, agg_str_of(sh, g->steps[i].status));
    }
    put_u8(w, g->nsvc);
    for (uint32_t i = 0; i < g->nsvc; i++)
        put_s16(w, agg_str_of(sh, g->svcs[i]));
    uint8_t nt = 0;
    for (uint32_t off = 0; nt < g->ntr && off < g->trlen; off += 1u + g->tr[off])
        nt++;
    put_u8(w, nt);
    uint32_t off = 0;
    for (uint8_t i = 0; i < nt; i++, off += 1u + g->tr[off])
        wbuf_add(w, g->tr + off, 1u + g->tr[off]);
}

typedef struct rd {
    const uint8_t *p, *e;
    int bad;
} rd;

static uint64_t get_le(rd *r, int n)
{
    if (r->bad || r->e - r->p < n) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return v;
}

static const uint8_t *get_s16(rd *r, uint16_t *n)
{
    *n = (uint16_t)get_le(r, 2);
    if (r->bad || *n > AGG_MAX_STR || (size_t)(r->e - r->p) < *n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *s = r->p;
    r->p += *n;
    return s;
}

int agg_view_parse(agg_view *v, const uint8_t *p, size_t n)
{
    memset(v, 0, sizeof *v);
    rd r = {p, p + n, !p};
    if (get_le(&r, 1) != CL_VERSION)
        return -1;
    v->flags = (uint8_t)get_le(&r, 1);
    v->outcome = (uint8_t)get_le(&r, 1);
    v->first = get_le(&r, 8);
    v->last = get_le(&r, 8);
    v->events = (uint32_t)get_le(&r, 4);
    v->failures = (uint32_t)get_le(&r, 4);
    v->compensations = (uint32_t)get_le(&r, 4);
    v->dropped = (uint32_t)get_le(&r, 4);
    v->topic = get_s16(&r, &v->topic_len);
    v->part = (int32_t)(uint32_t)get_le(&r, 4);
    v->off = (int64_t)get_le(&r, 8);
    v->nsteps = (uint32_t)get_le(&r, 4);
    if (r.bad || (v->flags & ~(F_STARTED | F_CLOSED)) || v->outcome > O_OPEN || v->first > v->last ||
        v->nsteps > 100000 || v->nsteps > (size_t)(r.e - r.p) / 15)
        return -1;
    v->steps = r.p;
    for (uint32_t i = 0; i < v->nsteps && !r.bad; i++) {
        uint16_t l;
        get_le(&r, 8);
        if (get_le(&r, 1) >= K_NONE)
            r.bad = 1;
        get_s16(&r, &l);
        get_s16(&r, &l);
        get_s16(&r, &l);
    }
    v->nsvc = (uint8_t)get_le(&r, 1);
    v->svcs = r.p;
    for (uint32_t i = 0; i < v->nsvc && !r.bad; i++) {
        uint16_t l;
        get_s16(&r, &l);
    }
    v->ntr = (uint8_t)get_le(&r, 1);
    v->trs = r.p;
    for (uint32_t i = 0; i < v->ntr && !r.bad; i++) {
        uint8_t l = (uint8_t)get_le(&r, 1);
        if (!l || l > AGG_MAX_TRACE || (size_t)(r.e - r.p) < l)
            r.bad = 1;
        else
            r.p += l;
    }
    v->end = r.e;
    return r.bad || r.p != r.e ? -1 : 0;
}

/* the shard's id of a string of the state; cut at a NUL, as the string table keeps C strings */
static uint32_t sid(agg_state *st, agg_shard *sh, const uint8_t *s, uint16_t l)
{
    return agg_str_id(st, sh, s, s ? strnlen((const char *)s, l) : 0);
}

/* v was checked by agg_view_parse: the reads below stay inside it */
saga *agg_from_view(const aggregate_ctx *a, agg_shard *sh, const uint8_t *k, size_t kl, const agg_view *v)
{
    agg_state *st = a->st;
    saga *g = calloc(1, sizeof *g + kl);
    if (!g)
        return NULL;
    g->h = agg_hash(k, kl);
    g->keylen = (uint16_t)kl;
    memcpy(g->key, k, kl);
    g->first = v->first;
    g->last = v->last;
    g->events = v->events;
    g->failures = v->failures;
    g->compensations = v->compensations;
    g->dropped_steps = v->dropped;
    g->flags = v->flags;
    g->outcome = v->outcome;
    g->stopic = sid(st, sh, v->topic, v->topic_len);
    g->spart = v->part;
    g->soff = v->off;
    uint32_t keep = v->nsteps < (uint64_t)a->max_steps ? v->nsteps : (uint32_t)a->max_steps;
    g->dropped_steps += v->nsteps - keep;
    if (keep && !(g->steps = calloc(keep, sizeof *g->steps)))
        keep = 0;
    g->capsteps = g->nsteps = keep;
    rd r = {v->steps, v->end, 0};
    uint16_t l;
    const uint8_t *s;
    for (uint32_t i = 0; i < v->nsteps; i++) {
        agg_step x;
        x.t = get_le(&r, 8);
        x.kind = (uint32_t)get_le(&r, 1);
        s = get_s16(&r, &l);
        x.name = sid(st, sh, s, l);
        s = get_s16(&r, &l);
        x.service = sid(st, sh, s, l);
        s = get_s16(&r, &l);
        x.status = sid(st, sh, s, l);
        if (i < keep)
            g->steps[i] = x;
    }
    r.p = v->svcs;
    uint32_t ns = v->nsvc < a->max_services ? v->nsvc : (uint32_t)a->max_services;
    if (ns && (g->svcs = calloc(ns, sizeof *g->svcs)))
        g->capsvc = (uint8_t)ns;
    for (uint32_t i = 0; i < v->nsvc; i++) {
        s = get_s16(&r, &l);
        uint32_t id = sid(st, sh, s, l);
        int have = !id;
        for (uint32_t j = 0; j < g->nsvc && !have; j++)
            have = g->svcs[j] == id;
        if (!have && g->nsvc < g->capsvc)
            g->svcs[g->nsvc++] = id;
    }
    const uint8_t *t = v->trs;
    for (uint32_t i = 0; i < v->ntr; i++) {
        uint8_t tl = t[0];
        if (!(g->flags & F_CLOSED))
            agg_add_trace(a, g, t + 1, tl);
        else if (g->ntr < a->max_trace_ids) {
            /* a marker's trace ids are not in the trace index */
            aggregate_ctx b = *a;
            b.copy_key_by_trace = 0;
            agg_add_trace(&b, g, t + 1, tl);
        }
        t += 1u + tl;
    }
    return g;
}

/* ---- the producer ------------------------------------------------------------------------------ */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    agg_chlog *cl = opaque;
    if (m->err) {
        atomic_fetch_add(&cl->failed, 1);
        atomic_fetch_add(&cl->failed_total, 1);
        wlog_warn("aggregate", "%s: changelog write failed: %s", cl->id, rd_kafka_err2str(m->err));
    }
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    if (level <= 4)
        wlog_warn("aggregate", "changelog: librdkafka %s: %s", fac, buf);
    else
        wlog_debug("aggregate", "changelog: librdkafka %s: %s", fac, buf);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    agg_chlog *cl = opaque;
    wlog_warn("aggregate", "%s: changelog: %s", cl->id, reason);
}

static rd_kafka_conf_t *base_conf(agg_chlog *cl)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char err[256];
    if (rd_kafka_conf_set(kc, "bootstrap.servers", cl->brokers, err, sizeof err) != RD_KAFKA_CONF_OK)
        wlog_error("aggregate", "%s: changelog brokers: %s", cl->id, err);
    rd_kafka_conf_set(kc, "client.id", "weir-changelog", err, sizeof err);
    rd_kafka_conf_set_opaque(kc, cl);
    rd_kafka_conf_set_log_cb(kc, log_cb);
    rd_kafka_conf_set_error_cb(kc, error_cb);
    return kc;
}

/* create the topic compacted (an existing one is used as it is) */
static void create_topic(agg_chlog *cl, rd_kafka_t *rk)
{
    char err[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(cl->topic, cl->partitions, -1, err, sizeof err);
    if (!nt)
        return;
    rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 15000);
    if (ev) {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr = res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(tr[i]);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                wlog_info("aggregate", "%s: created the changelog topic %s (compacted, %d partitions)", cl->id,
                          cl->topic, cl->partitions);
            else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
                wlog_warn("aggregate", "%s: cannot create the changelog topic %s (create it compacted): %s", cl->id,
                          cl->topic, rd_kafka_topic_result_error_string(tr[i]));
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
}

static rd_kafka_t *producer(agg_chlog *cl)
{
    rd_kafka_t *p = atomic_load(&cl->prod);
    if (p)
        return p;
    pthread_mutex_lock(&cl->mu);
    if (!(p = atomic_load(&cl->prod))) {
        rd_kafka_conf_t *kc = base_conf(cl);
        char err[256];
        rd_kafka_conf_set(kc, "enable.idempotence", "true", err, sizeof err);
        rd_kafka_conf_set(kc, "linger.ms", "5", err, sizeof err);
        rd_kafka_conf_set_dr_msg_cb(kc, dr_cb);
        p = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof err);
        if (!p) {
            wlog_error("aggregate", "%s: cannot create the changelog producer: %s", cl->id, err);
            rd_kafka_conf_destroy(kc);
        } else {
            create_topic(cl, p);
            atomic_store(&cl->prod, p);
        }
    }
    pthread_mutex_unlock(&cl->mu);
    return p;
}

static void produce(agg_chlog *cl, const void *k, size_t kl, const void *v, size_t vl)
{
    rd_kafka_t *p = producer(cl);
    if (!p) {
        atomic_fetch_add(&cl->failed, 1);
        atomic_fetch_add(&cl->failed_total, 1);
        return;
    }
    for (int tries = 0;; tries++) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(p, RD_KAFKA_V_TOPIC(cl->topic), RD_KAFKA_V_KEY((void *)k, kl),
                              RD_KAFKA_V_VALUE((void *)v, vl), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (!e) {
            atomic_fetch_add(&cl->written, 1);
            return;
        }
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || tries > 100) {
            atomic_fetch_add(&cl->failed, 1);
            atomic_fetch_add(&cl->failed_total, 1);
            wlog_warn("aggregate", "%s: changelog write failed: %s", cl->id, rd_kafka_err2str(e));
            return;
        }
        rd_kafka_poll(p, 100);
    }
}

void agg_chlog_put(agg_state *st, const agg_shard *sh, const saga *g)
{
    if (!st->cl)
        return;
    wbuf w = {0};
    agg_encode(sh, g, &w);
    produce(st->cl, g->key, g->keylen, w.data, w.len);
    wbuf_free(&w);
}

void agg_chlog_tombstone(agg_state *st, const saga *g)
{
    if (st->cl)
        produce(st->cl, g->key, g->keylen, NULL, 0);
}

/* ---- hooks: barrier, assignment, revocation ---------------------------------------------------- */

void agg_chlog_stats(const agg_state *st, filter_stats *s)
{
    const agg_chlog *cl = st->cl;
    if (!cl)
        return;
    s->changelog_written = atomic_load(&cl->written);
    s->changelog_failed = atomic_load(&cl->failed_total);
    s->restored = atomic_load(&cl->restored);
}

static int barrier(void *arg)
{
    agg_chlog *cl = arg;
    rd_kafka_t *p = atomic_load(&cl->prod);
    if (p) {
        rd_kafka_resp_err_t e = rd_kafka_flush(p, 30000);
        if (e) {
            wlog_warn("aggregate", "%s: changelog flush: %s", cl->id, rd_kafka_err2str(e));
            return -1;
        }
    }
    if (atomic_exchange(&cl->failed, 0)) {
        wlog_warn("aggregate", "%s: changelog writes failed: the offsets are not stored (read again)", cl->id);
        return -1;
    }
    return 0;
}

static int in_parts(const filter_part *p, size_t n, const char *t, size_t tl, int32_t part)
{
    for (size_t i = 0; i < n; i++)
        if (p[i].partition == part && strlen(p[i].topic) == tl && !memcmp(p[i].topic, t, tl))
            return 1;
    return 0;
}

void agg_drop(agg_state *st, agg_shard *sh, saga *g)
{
    agg_tab_remove(sh, g);
    agg_lru_unlink(sh, g);
    if (!(g->flags & F_CLOSED)) {
        for (uint32_t off = 0; off < g->trlen; off += 1u + g->tr[off])
            agg_trace_del(st, agg_hash(g->tr + off + 1, g->tr[off]), g->h);
        atomic_fetch_sub(&st->open, 1);
    }
    sh->bytes -= agg_saga_bytes(g);
    agg_saga_free(g);
}

/* drop the sagas of the revoked partitions (their state is in the changelog) */
static void revoke(agg_chlog *cl, const filter_part *p, size_t n)
{
    agg_state *st = cl->st;
    size_t dropped = 0;
    for (int i = 0; i < AGG_SHARDS; i++) {
        agg_shard *sh = &st->sh[i];
        pthread_mutex_lock(&sh->mu);
        for (saga *g = sh->head, *nx; g; g = nx) {
            nx = g->next;
            const char *t = agg_str_of(sh, g->stopic);
            if (g->spart >= 0 && in_parts(p, n, t, strlen(t), g->spart)) {
                agg_drop(st, sh, g);
                dropped++;
            }
        }
        pthread_mutex_unlock(&sh->mu);
    }
    wlog_info("aggregate", "%s: %zu sagas of %zu revoked partitions left to their next owner", cl->id, dropped, n);
}

/* one changelog record: install it when its source partition was assigned */
static void apply(agg_chlog *cl, const filter_part *p, size_t n, const rd_kafka_message_t *m, size_t *installed,
                  size_t *bad)
{
    agg_state *st = cl->st;
    if (!m->key || !m->key_len || m->key_len > 65535)
        return;
    uint64_t h = agg_hash(m->key, m->key_len);
    agg_shard *sh = &st->sh[h & (AGG_SHARDS - 1)];
    agg_view v;
    int ok = m->payload && agg_view_parse(&v, m->payload, m->len) == 0;
    if (m->payload && !ok) {
        (*bad)++;
        return;
    }
    if (ok && !in_parts(p, n, (const char *)v.topic, v.topic_len, v.part))
        return;
    pthread_mutex_lock(&sh->mu);
    saga *old = agg_find(sh, h, m->key, m->key_len);
    if (old) {
        const char *t = agg_str_of(sh, old->stopic);
        if (ok || in_parts(p, n, t, strlen(t), old->spart))
            agg_drop(st, sh, old); /* replaced by the changelog's state, or its tombstone */
    }
    if (ok) {
        cl->caps.st = st;
        saga *g = agg_from_view(&cl->caps, sh, m->key, m->key_len, &v);
        if (g && agg_tab_insert(sh, g) == 0) {
            g->seen = g->enq = clock_mono(); /* the timeout starts again */
            agg_lru_append(sh, g);
            if (!(g->flags & F_CLOSED))
                atomic_fetch_add(&st->open, 1);
            sh->bytes += agg_saga_bytes(g);
            (*installed)++;
        } else if (g) {
            agg_saga_free(g);
        }
    }
    pthread_mutex_unlock(&sh->mu);
}

/* read the changelog from its start to its end offsets */
static void restore(agg_chlog *cl, const filter_part *p, size_t n)
{
    double t0 = clock_mono();
    producer(cl); /* creates the topic when it is missing */
    rd_kafka_conf_t *kc = base_conf(cl);
    char err[256];
    rd_kafka_conf_set(kc, "group.id", "weir-changelog-restore", err, sizeof err);
    rd_kafka_conf_set(kc, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_conf_set(kc, "enable.partition.eof", "true", err, sizeof err);
    rd_kafka_conf_set(kc, "auto.offset.reset", "earliest", err, sizeof err);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof err);
    if (!c) {
        wlog_error("aggregate", "%s: cannot create the changelog reader: %s", cl->id, err);
        rd_kafka_conf_destroy(kc);
        return;
    }
    rd_kafka_poll_set_consumer(c);
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c, cl->topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(c, 0, rkt, &md, 15000);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    if (!e && md->topic_cnt == 1 && !md->topics[0].err) {
        /* to the end offsets of now (the partition EOF): what a killed or revoked owner wrote is before them */
        int np = md->topics[0].partition_cnt;
        for (int i = 0; i < np; i++) {
            int32_t pid = md->topics[0].partitions[i].id;
            int64_t lo = 0, h = 0;
            rd_kafka_resp_err_t we;
            for (int tries = 0; (we = rd_kafka_query_watermark_offsets(c, cl->topic, pid, &lo, &h, 5000)) &&
                                tries < 20;
                 tries++)
                rd_kafka_poll(c, 500); /* a topic just created: no leader yet */
            if (we) {
                wlog_error("aggregate", "%s: changelog %s [%d]: no end offset", cl->id, cl->topic, pid);
                continue;
            }
            if (h > lo)
                rd_kafka_topic_partition_list_add(l, cl->topic, pid)->offset = RD_KAFKA_OFFSET_BEGINNING;
        }
    } else {
        wlog_warn("aggregate", "%s: changelog %s: %s", cl->id, cl->topic,
                  e ? rd_kafka_err2str(e) : md && md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "no metadata");
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    size_t msgs = 0, installed = 0, bad = 0;
    int left = l->cnt;
    if (left)
        rd_kafka_assign(c, l);
    while (left > 0 && clock_mono() - t0 < 120) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            left--;
        } else if (!m->err) {
            msgs++;
            apply(cl, p, n, m, &installed, &bad);
        }
        rd_kafka_message_destroy(m);
    }
    if (left > 0)
        wlog_error("aggregate", "%s: changelog %s not read to its end in 120 s", cl->id, cl->topic);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    atomic_fetch_add(&cl->restored, installed);
    wlog_info("aggregate", "%s: changelog %s restored for %zu partitions: %zu records, %zu sagas installed, %zu "
              "unreadable, %.1f s",
              cl->id, cl->topic, n, msgs, installed, bad, clock_mono() - t0);
}

static void partitions(void *arg, const filter_part *p, size_t n, int assigned)
{
    agg_chlog *cl = arg;
    /* this replica's own writes (timeouts' markers, between bursts) in the log first: a restore reads to the end
     * offsets, and a revoked partition's next owner reads what is there (failures stay counted for the barrier) */
    rd_kafka_t *pr = atomic_load(&cl->prod);
    if (pr && rd_kafka_flush(pr, 30000))
        wlog_warn("aggregate", "%s: changelog: %d writes not delivered before a rebalance", cl->id,
                  rd_kafka_outq_len(pr));
    if (assigned)
        restore(cl, p, n);
    else
        revoke(cl, p, n);
}

/* ---- setup -------------------------------------------------------------------------------------- */

int agg_chlog_new(aggregate_ctx *a, agg_state *st, const char *id)
{
    agg_chlog *cl = calloc(1, sizeof *cl);
    if (!cl)
        return -1;
    pthread_mutex_init(&cl->mu, NULL);
    size_t bl = 1;
    for (size_t i = 0; a->cl_brokers && a->cl_brokers[i]; i++)
        bl += strlen(a->cl_brokers[i]) + 1;
    cl->brokers = calloc(1, bl);
    for (size_t i = 0; cl->brokers && a->cl_brokers && a->cl_brokers[i]; i++) {
        if (i)
            strcat(cl->brokers, ",");
        strcat(cl->brokers, a->cl_brokers[i]);
    }
    cl->topic = strdup(a->cl_topic);
    cl->id = strdup(id);
    cl->partitions = (int)a->cl_partitions;
    cl->st = st;
    cl->caps.max_steps = a->max_steps;
    cl->caps.max_services = a->max_services;
    cl->caps.max_trace_ids = a->max_trace_ids;
    cl->caps.copy_key_by_trace = a->copy_key_by_trace;
    if (!cl->brokers || !cl->topic || !cl->id) {
        free(cl->brokers);
        free(cl->topic);
        free(cl->id);
        free(cl);
        return -1;
    }
    st->cl = cl;
    filter_hooks h = {.arg = cl, .barrier = barrier, .partitions = partitions};
    filter_hooks_add(&h);
    return 0;
}

void agg_chlog_free(agg_state *st)
{
    agg_chlog *cl = st->cl;
    if (!cl)
        return;
    filter_hooks_remove(cl);
    rd_kafka_t *p = atomic_load(&cl->prod);
    if (p) {
        if (rd_kafka_flush(p, 10000))
            wlog_warn("aggregate", "%s: changelog: %d writes not delivered at exit", cl->id, rd_kafka_outq_len(p));
        rd_kafka_destroy(p);
    }
    pthread_mutex_destroy(&cl->mu);
    free(cl->brokers);
    free(cl->topic);
    free(cl->id);
    free(cl);
    st->cl = NULL;
}

/* ---- for the tests and the fuzz target ---------------------------------------------------------- */

/* the state of key k of an aggregate filter, encoded (appended to w): 1, or 0 when k is not there */
int aggregate_export_saga(const filter *f, const void *k, size_t kl, wbuf *w);
int aggregate_export_saga(const filter *f, const void *k, size_t kl, wbuf *w)
{
    const aggregate_ctx *a = f->ctx;
    uint64_t h = agg_hash(k, kl);
    agg_shard *sh = &a->st->sh[h & (AGG_SHARDS - 1)];
    pthread_mutex_lock(&sh->mu);
    saga *g = agg_find(sh, h, k, kl);
    if (g)
        agg_encode(sh, g, w);
    pthread_mutex_unlock(&sh->mu);
    return g != NULL;
}

/* install an encoded state as key k (as a restore does); 0, or -1 when the bytes are not a state */
int aggregate_import_saga(filter *f, const void *k, size_t kl, const uint8_t *p, size_t n);
int aggregate_import_saga(filter *f, const void *k, size_t kl, const uint8_t *p, size_t n)
{
    aggregate_ctx *a = f->ctx;
    agg_view v;
    if (!kl || kl > 65535 || agg_view_parse(&v, p, n))
        return -1;
    agg_state *st = a->st;
    uint64_t h = agg_hash(k, kl);
    agg_shard *sh = &st->sh[h & (AGG_SHARDS - 1)];
    pthread_mutex_lock(&sh->mu);
    saga *old = agg_find(sh, h, k, kl);
    if (old)
        agg_drop(st, sh, old);
    saga *g = agg_from_view(a, sh, k, kl, &v);
    int rc = -1;
    if (g && agg_tab_insert(sh, g) == 0) {
        g->seen = g->enq = aggregate_clock();
        agg_lru_append(sh, g);
        if (!(g->flags & F_CLOSED))
            atomic_fetch_add(&st->open, 1);
        sh->bytes += agg_saga_bytes(g);
        rc = 0;
    } else if (g) {
        agg_saga_free(g);
    }
    pthread_mutex_unlock(&sh->mu);
    return rc;
}
