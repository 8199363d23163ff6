/*
 * aggregator/filters/aggregate.c: correlation of the events of one key (a
 * saga id) into one summary record (Logstash's aggregate filter, for sagas).
 *
 *   key saga_id                        record accessor of the correlation key
 *   <start>, <step>, <end>, <failure>, <compensation>: key K, pattern /RE/
 *                                      what an event is (grep's syntax; any
 *                                      number of each, any one matching)
 *   timeout 300s, max_open 100000, max_steps 32, tag saga.summary
 *
 * An event with the key opens its saga (or joins the open one). <end>
 * closes it: outcome `compensated` when a compensation was seen, else
 * `failed` when a failure was seen, else `completed`. With end_on_failure a
 * failure closes it at once (`failed`). No event for `timeout` (time of
 * arrival, not event time): `timed_out`. Over max_open the least recently
 * active saga is closed as `evicted`. At shutdown and when a reload changes
 * the filter, open sagas are emitted as `open`. The summary is a new record
 * with tag `tag`, routed from the start of the filter's label; records with
 * that tag pass through this filter untouched (no loops).
 *
 * State ownership (docs/architecture.md "Correlation state"): one state per
 * filter, shared by every worker, split in AGG_SHARDS shards by a hash of
 * the key; each shard has its own mutex, hash table, LRU/timeout list and
 * string table. A saga lives in exactly one shard, so its events are
 * serialized whatever worker or connection they arrive on. The state is
 * kept in a process-wide registry by (filter id, configuration text): a
 * reload whose filter is unchanged adopts it with its open sagas.
 *
 * With `changelog_topic` the state of every open saga is also kept in a
 * compacted Kafka topic and restored when the kafka source is assigned
 * partitions (aggregate_chlog.c); tables and summaries: aggregate_state.c.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/clock.h"
#include "lib/rx.h"
#include "lib/u64map.h"
#include "aggregator/filter.h"
#include "aggregator/record.h"
#include "aggregator/filters/aggregate_impl.h"


/* clock of the timeouts (tests replace it) */
double (*aggregate_clock)(void) = clock_mono;

static const conf_spec aggregate_spec[] = {
    {"key", CONF_STR, NULL, 1, offsetof(aggregate_ctx, key), NULL,
     "record accessor of the correlation key (a saga id); records without it pass untouched"},
    {"tag", CONF_STR, "saga.summary", 0, offsetof(aggregate_ctx, tag), NULL,
     "tag of the summary records; they enter the filter's label from its start (records with this tag are not "
     "aggregated)"},
    {"key_name", CONF_STR, "key", 0, offsetof(aggregate_ctx, key_name), NULL,
     "the summary's field holding the key"},
    {"timeout", CONF_TIME, "300s", 0, offsetof(aggregate_ctx, timeout), NULL,
     "a saga with no event for this long (time of arrival, checked every second) ends as `timed_out`"},
    {"max_open", CONF_INT, "100000", 0, offsetof(aggregate_ctx, max_open), NULL,
     "open sagas at most; one more evicts the least recently active one of its shard (outcome `evicted`, counted in "
     "weir_aggregate_evictions_total)"},
    {"max_steps", CONF_INT, "32", 0, offsetof(aggregate_ctx, max_steps), NULL,
     "steps kept per saga (the first ones); more are counted in `steps_dropped`"},
    {"max_services", CONF_INT, "16", 0, offsetof(aggregate_ctx, max_services), NULL, "services kept per saga"},
    {"max_trace_ids", CONF_INT, "16", 0, offsetof(aggregate_ctx, max_trace_ids), NULL, "trace ids kept per saga"},
    {"step_key", CONF_STR, "step", 0, offsetof(aggregate_ctx, step_name_key), NULL,
     "record accessor of a step's name"},
    {"service_key", CONF_ARRAY, "service,$.service.name", 0, offsetof(aggregate_ctx, service_keys), NULL,
     "record accessors of the service, the first one present wins"},
    {"status_key", CONF_STR, "status", 0, offsetof(aggregate_ctx, status_key), NULL,
     "record accessor of a step's status"},
    {"trace_id_key", CONF_ARRAY, "$.trace.id,trace_id", 0, offsetof(aggregate_ctx, trace_keys), NULL,
     "record accessors of the trace id, the first one present wins"},
    {"end_on_failure", CONF_BOOL, "false", 0, offsetof(aggregate_ctx, end_on_failure), NULL,
     "a `<failure>` event closes the saga at once as `failed` (default: the saga waits for its `<end>`, which then "
     "says `failed`, or `compensated` after a `<compensation>`)"},
    {"copy_key_by_trace", CONF_BOOL, "false", 0, offsetof(aggregate_ctx, copy_key_by_trace), NULL,
     "a record without the key whose trace id belongs to an open saga gets the key (and counts as one of its events)"},
    {"drop_events", CONF_BOOL, "false", 0, offsetof(aggregate_ctx, drop_events), NULL,
     "drop the records of sagas (only summaries go on); default: they pass unchanged"},
    {"changelog_topic", CONF_STR, NULL, 0, offsetof(aggregate_ctx, cl_topic), NULL,
     "Kafka topic of the open sagas' state (compacted; created with `cleanup.policy compact` when missing): open "
     "sagas survive a replica killed with -9 and move with their partitions in the consumer group "
     "(docs/architecture.md, \"Correlation state\"); needs `changelog_brokers` and Kafka coordinates on the records "
     "(the kafka source's `decorate_events`)"},
    {"changelog_brokers", CONF_ARRAY, NULL, 0, offsetof(aggregate_ctx, cl_brokers), NULL,
     "brokers of the changelog topic (`host:port`, comma separated; usually the kafka source's)"},
    {"changelog_partitions", CONF_INT, "4", 0, offsetof(aggregate_ctx, cl_partitions), NULL,
     "partitions of the changelog topic when weir creates it"},
    {"source_topic_key", CONF_STR, "$.kafka.topic", 0, offsetof(aggregate_ctx, src_topic_key), NULL,
     "with a changelog: record accessor of the record's Kafka topic (`decorate_events`)"},
    {"source_partition_key", CONF_STR, "$.kafka.partition", 0, offsetof(aggregate_ctx, src_partition_key), NULL,
     "with a changelog: record accessor of the record's Kafka partition"},
    {"source_offset_key", CONF_STR, "$.kafka.offset", 0, offsetof(aggregate_ctx, src_offset_key), NULL,
     "with a changelog: record accessor of the record's Kafka offset (an event at or below a saga's last applied "
     "offset of the same partition is a replay and not counted again)"},
    {"start", CONF_SECTION, NULL, 0, 0, NULL, "any number, `key` and `pattern` as in grep's `<regexp>`: a saga's start"},
    {"step", CONF_SECTION, NULL, 0, 0, NULL,
     "any number: a step (none configured: every event of a saga that is no other kind is a step)"},
    {"end", CONF_SECTION, NULL, 0, 0, NULL, "any number: the successful end, closes the saga"},
    {"failure", CONF_SECTION, NULL, 0, 0, NULL, "any number: a failure (checked first)"},
    {"compensation", CONF_SECTION, NULL, 0, 0, NULL, "any number: a compensation"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

extern const conf_spec filter_grep_cond_spec[];

/* ---- the registry of states (reload keeps them) -------------------------------------------------- */

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static agg_state *reg_head;

static agg_state *state_new(const char *fp)
{
    agg_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->fp = strdup(fp);
    for (int i = 0; i < AGG_SHARDS; i++) {
        pthread_mutex_init(&s->sh[i].mu, NULL);
        pthread_mutex_init(&s->ts[i].mu, NULL);
    }
    s->refs = 1;
    return s;
}

void agg_saga_free(saga *g)
{
    free(g->steps);
    free(g->svcs);
    free(g->tr);
    free(g);
}

static void state_free(agg_state *s)
{
    agg_chlog_free(s);
    for (int i = 0; i < AGG_SHARDS; i++) {
        agg_shard *sh = &s->sh[i];
        for (saga *g = sh->head, *nx; g; g = nx) {
            nx = g->next;
            agg_saga_free(g);
        }
        free(sh->tab);
        for (uint32_t k = 0; k < sh->nstrs; k++)
            free(sh->strs[k]);
        free(sh->strs);
        u64map_free(&sh->strmap);
        pthread_mutex_destroy(&sh->mu);
        free(s->ts[i].k);
        free(s->ts[i].v);
        pthread_mutex_destroy(&s->ts[i].mu);
    }
    free(s->fp);
    free(s);
}

/* ---- configuration ---------------------------------------------------------------------------- */

static int compile_path(rec_path *p, const char *text, const char *what, conf_node *n, conf_errors *errs)
{
    char err[256] = "";
    if (rec_path_compile(p, text, err, sizeof err) != 0) {
        conf_errors_add(errs, n->file, n->line, "invalid %s '%s': %s", what, text, err);
        return -1;
    }
    return 0;
}

static int add_cond(aggregate_ctx *a, int kind, conf_node *c, conf_errors *errs)
{
    struct {
        char *key, *pattern;
    } cc = {0};
    int bad = conf_bind(c, filter_grep_cond_spec, &cc, errs);
    if (!bad) {
        agg_cond *nv = realloc(a->conds[kind], (a->nconds[kind] + 1) * sizeof *nv);
        if (!nv) {
            bad = -1;
        } else {
            a->conds[kind] = nv;
            agg_cond *x = &nv[a->nconds[kind]];
            memset(x, 0, sizeof *x);
            char err[512] = "";
            if (compile_path(&x->path, cc.key, "key", c, errs)) {
                bad = -1;
            } else if (rx_compile(&x->re, cc.pattern, RX_SLASHES, err, sizeof err) != 0) {
                conf_errors_add(errs, c->file, c->line, "%s", err);
                rec_path_free(&x->path);
                bad = -1;
            } else {
                a->nconds[kind]++;
                a->any_cond = 1;
            }
        }
    }
    conf_unbind(filter_grep_cond_spec, &cc);
    return bad;
}

static int aggregate_init(filter *f, conf_node *n, conf_errors *errs)
{
    aggregate_ctx *a = f->ctx;
    int bad = 0;
    if (a->timeout <= 0) {
        conf_errors_add(errs, n->file, n->line, "aggregate: timeout must be positive");
        bad = -1;
    }
    if (a->max_open < 1 || a->max_steps < 0 || a->max_steps > 100000 || a->max_services < 0 ||
        a->max_services > 255 || a->max_trace_ids < 0 || a->max_trace_ids > 255) {
        conf_errors_add(errs, n->file, n->line,
                        "aggregate: max_open must be at least 1, max_steps 0..100000, max_services and "
                        "max_trace_ids 0..255");
        bad = -1;
    }
    if (!a->tag || !a->tag[0]) {
        conf_errors_add(errs, n->file, n->line, "aggregate: tag must not be empty");
        bad = -1;
    }
    a->tag_len = a->tag ? strlen(a->tag) : 0;
    if (compile_path(&a->kpath, a->key, "key", n, errs) || compile_path(&a->npath, a->step_name_key, "step_key", n, errs) ||
        compile_path(&a->stpath, a->status_key, "status_key", n, errs))
        bad = -1;
    if (a->cl_topic) {
        if (!a->cl_topic[0] || !a->cl_brokers || !a->cl_brokers[0] || a->cl_partitions < 1) {
            conf_errors_add(errs, n->file, n->line,
                            "aggregate: changelog_topic needs changelog_brokers and changelog_partitions >= 1");
            bad = -1;
        }
        if (compile_path(&a->tpath, a->src_topic_key, "source_topic_key", n, errs) ||
            compile_path(&a->ppath, a->src_partition_key, "source_partition_key", n, errs) ||
            compile_path(&a->opath, a->src_offset_key, "source_offset_key", n, errs))
            bad = -1;
    }
    if (filter_compile_keys(a->service_keys, &a->svpaths, &a->nsv, "service_key", n, errs) ||
        filter_compile_keys(a->trace_keys, &a->trpaths, &a->ntrp, "trace_id_key", n, errs))
        bad = -1;
    static const char *const names[K_N] = {"start", "step", "end", "failure", "compensation"};
    for (size_t i = 0; i < n->nchildren; i++)
        for (int k = 0; k < K_N; k++)
            if (!strcmp(n->children[i]->name, names[k]) && add_cond(a, k, n->children[i], errs))
                bad = -1;
    if (bad)
        return -1;
    /* the state: adopted from a running filter with the same id and configuration */
    char *fp0 = conf_fingerprint(n);
    if (!fp0)
        return -1;
    size_t fl = strlen(fp0) + strlen(f->id) + 2;
    char *fp = malloc(fl);
    if (!fp) {
        free(fp0);
        return -1;
    }
    snprintf(fp, fl, "%s\n%s", f->id, fp0);
    free(fp0);
    pthread_mutex_lock(&reg_mu);
    for (agg_state *s = reg_head; s; s = s->next)
        if (!strcmp(s->fp, fp)) {
            s->refs++;
            a->st = s;
            break;
        }
    if (!a->st && (a->st = state_new(fp))) {
        if (a->cl_topic && agg_chlog_new(a, a->st, f->id)) {
            state_free(a->st);
            a->st = NULL;
        } else {
            a->st->next = reg_head;
            reg_head = a->st;
        }
    }
    if (a->st) {
        a->prev_owner = a->st->owner;
        a->st->owner = f;
    }
    pthread_mutex_unlock(&reg_mu);
    free(fp);
    return a->st ? 0 : -1;
}

static void aggregate_exit(filter *f)
{
    aggregate_ctx *a = f->ctx;
    if (a->st) {
        pthread_mutex_lock(&reg_mu);
        if (a->st->owner == f)
            a->st->owner = a->prev_owner;
        if (--a->st->refs == 0) {
            agg_state **pp = &reg_head;
            while (*pp && *pp != a->st)
                pp = &(*pp)->next;
            if (*pp)
                *pp = a->st->next;
            state_free(a->st);
        }
        pthread_mutex_unlock(&reg_mu);
        a->st = NULL;
    }
    rec_path_free(&a->kpath);
    rec_path_free(&a->npath);
    rec_path_free(&a->stpath);
    rec_path_free(&a->tpath);
    rec_path_free(&a->ppath);
    rec_path_free(&a->opath);
    rec_paths_free(a->svpaths, a->nsv);
    rec_paths_free(a->trpaths, a->ntrp);
    a->svpaths = a->trpaths = NULL;
    for (int k = 0; k < K_N; k++) {
        for (size_t i = 0; i < a->nconds[k]; i++) {
            rec_path_free(&a->conds[k][i].path);
            rx_free(&a->conds[k][i].re);
        }
        free(a->conds[k]);
        a->conds[k] = NULL;
        a->nconds[k] = 0;
    }
}

/* ---- per record ------------------------------------------------------------------------------- */

/* The text of a value (strings as they are, others as Ruby's to_s) into
 * the text and its length; scratch holds converted ones. 1 found, 0 missing or nil, -1 malformed. */
static int value_text(const uint8_t *v, size_t vl, wbuf *scratch, const uint8_t **s, uint32_t *n)
{
    if (!v)
        return 0;
    const uint8_t *q = v;
    int r = rec_read_str(&q, v + vl, s, n);
    if (r < 0)
        return -1;
    if (r > 0)
        return 1;
    if (vl == 1 && v[0] == 0xc0)
        return 0;
    scratch->len = 0;
    if (rec_value_to_s(scratch, v, vl))
        return -1;
    *s = scratch->data ? scratch->data : (const uint8_t *)"";
    *n = (uint32_t)scratch->len;
    return 1;
}

static int path_text(const uint8_t *rec, size_t len, const rec_path *p, wbuf *scratch, const uint8_t **s, uint32_t *n)
{
    size_t vl;
    const uint8_t *v = rec_lookup(rec, len, p, &vl);
    return value_text(v, vl, scratch, s, n);
}

/* 1 match, 0 no, -1 error (treated as no) */
static int cond_match(const agg_cond *c, const uint8_t *rec, size_t len, wbuf *scratch)
{
    const uint8_t *s = (const uint8_t *)"";
    uint32_t n = 0;
    if (path_text(rec, len, &c->path, scratch, &s, &n) < 0)
        return -1;
    return rx_match(&c->re, s, n);
}

static int event_kind(const aggregate_ctx *a, const uint8_t *rec, size_t len, wbuf *scratch)
{
    static const int order[] = {K_FAILURE, K_COMPENSATION, K_END, K_START, K_STEP};
    for (size_t o = 0; o < 5; o++) {
        int k = order[o];
        for (size_t i = 0; i < a->nconds[k]; i++)
            if (cond_match(&a->conds[k][i], rec, len, scratch) == 1)
                return k;
    }
    return a->nconds[K_STEP] ? K_NONE : K_STEP;
}

/* the first of the accessors present, as text */
static int first_text(const uint8_t *rec, size_t len, const rec_path *ps, size_t np, wbuf *scratch,
                      const uint8_t **s, uint32_t *n)
{
    for (size_t i = 0; i < np; i++) {
        size_t vl;
        const uint8_t *v = rec_lookup(rec, len, &ps[i], &vl);
        if (!v || (*v >= 0x80 && *v <= 0x9f) || (*v >= 0xdc && *v <= 0xdf))
            continue; /* missing, or a map or an array ({"service": {"name": ..}}): the next one */
        int r = value_text(v, vl, scratch, s, n);
        if (r > 0 && *n)
            return 1;
    }
    return 0;
}

/* Close g: summary, out of the table, list and trace index, freed. */
static void close_saga(const aggregate_ctx *a, agg_shard *sh, saga *g, int outcome, filter_emit *em)
{
    agg_emit_summary(a, sh, g, outcome, em);
    if (a->st->cl) {
        /* kept as a marker for `timeout` (replays of its events are not counted again), then a tombstone */
        for (uint32_t off = 0; off < g->trlen; off += 1u + g->tr[off])
            agg_trace_del(a->st, agg_hash(g->tr + off + 1, g->tr[off]), g->h);
        atomic_fetch_sub(&a->st->open, 1);
        g->flags |= F_CLOSED;
        g->outcome = (uint8_t)outcome;
        g->seen = g->enq = aggregate_clock();
        agg_lru_unlink(sh, g);
        agg_lru_append(sh, g);
        agg_chlog_put(a->st, sh, g);
        return;
    }
    agg_tab_remove(sh, g);
    agg_lru_unlink(sh, g);
    for (uint32_t off = 0; off < g->trlen; off += 1u + g->tr[off])
        agg_trace_del(a->st, agg_hash(g->tr + off + 1, g->tr[off]), g->h);
    sh->bytes -= agg_saga_bytes(g);
    atomic_fetch_sub(&a->st->open, 1);
    agg_saga_free(g);
}

/* the record's Kafka coordinates (changelog): topic copied into tp (cap 256) */
static void src_coords(const aggregate_ctx *a, const uint8_t *rec, size_t len, wbuf *scratch, char *tp,
                       uint32_t *tl, int64_t *part, int64_t *off)
{
    const uint8_t *s;
    uint32_t n;
    char num[32];
    *tl = 0;
    *part = *off = -1;
    if (path_text(rec, len, &a->tpath, scratch, &s, &n) <= 0 || n > 255)
        return;
    memcpy(tp, s, n);
    *tl = n;
    if (path_text(rec, len, &a->ppath, scratch, &s, &n) <= 0 || !n || n >= sizeof num)
        return;
    memcpy(num, s, n);
    num[n] = 0;
    int64_t p = strtoll(num, NULL, 10);
    if (path_text(rec, len, &a->opath, scratch, &s, &n) <= 0 || !n || n >= sizeof num)
        return;
    memcpy(num, s, n);
    num[n] = 0;
    if (p >= 0 && p <= INT32_MAX) {
        *part = p;
        *off = strtoll(num, NULL, 10);
    }
}

/* a closed saga's marker becomes a new saga of the same key (an event after its end) */
static void reopen(agg_state *st, agg_shard *sh, saga *g, uint64_t t, double now)
{
    sh->bytes -= agg_saga_bytes(g);
    free(g->steps);
    free(g->svcs);
    free(g->tr);
    g->steps = NULL;
    g->svcs = NULL;
    g->tr = NULL;
    g->first = g->last = t;
    g->events = g->nsteps = g->capsteps = g->dropped_steps = g->failures = g->compensations = 0;
    g->nsvc = g->capsvc = g->ntr = g->flags = g->outcome = 0;
    g->trlen = g->trcap = 0;
    g->spart = -1;
    g->soff = -1;
    g->enq = now;
    agg_lru_unlink(sh, g);
    agg_lru_append(sh, g);
    atomic_fetch_add(&st->open, 1);
    sh->bytes += agg_saga_bytes(g);
}

static int aggregate_filter(filter *f, filter_call *call, const uint8_t *rec, size_t rec_len)
{
    const aggregate_ctx *a = f->ctx;
    agg_state *st = a->st;
    if (call->tag_len == a->tag_len && !memcmp(call->tag, a->tag, a->tag_len))
        return FILTER_KEEP; /* our own summaries */
    wbuf *scratch = call->scratch;
    const uint8_t *ks;
    uint32_t kl;
    uint8_t kbuf[256];
    int r = path_text(rec, rec_len, &a->kpath, scratch, &ks, &kl);
    int joined = 0;
    uint64_t h = 0;
    if (r < 0)
        return FILTER_KEEP; /* malformed: pass on */
    if (r == 0 || kl == 0) {
        if (!a->copy_key_by_trace)
            return FILTER_KEEP;
        const uint8_t *ts;
        uint32_t tn;
        if (!first_text(rec, rec_len, a->trpaths, a->ntrp, scratch, &ts, &tn) || tn > AGG_MAX_TRACE)
            return FILTER_KEEP;
        h = agg_trace_get(st, agg_hash(ts, tn));
        if (!h)
            return FILTER_KEEP;
        joined = 1;
        ks = NULL;
        kl = 0;
    } else {
        if (kl > 65535)
            return FILTER_KEEP;
        if (kl <= sizeof kbuf) {
            /* scratch is reused below: keep the key */
            memcpy(kbuf, ks, kl);
            ks = kbuf;
        }
        h = agg_hash(ks, kl);
    }
    int kind = event_kind(a, rec, rec_len, scratch);
    uint64_t t = (uint64_t)call->sec * 1000000000u + call->nsec;
    char stp[256];
    uint32_t stl = 0;
    int64_t spart = -1, soff = -1;
    if (st->cl)
        src_coords(a, rec, rec_len, scratch, stp, &stl, &spart, &soff);
    const uint8_t *ns = NULL, *sv = NULL, *stt = NULL, *tr = NULL;
    uint32_t nn = 0, svn = 0, stn = 0, trn = 0;
    /* the texts are copied into the string table one by one (each may live in scratch) */
    agg_shard *sh = &st->sh[h & (AGG_SHARDS - 1)];
    double now = aggregate_clock();
    uint8_t *kcopy = NULL;
    if (ks && ks != kbuf) {
        kcopy = malloc(kl);
        if (!kcopy)
            return FILTER_KEEP;
        memcpy(kcopy, ks, kl);
        ks = kcopy;
    }
    pthread_mutex_lock(&sh->mu);
    saga *g = NULL;
    if (joined) {
        /* the saga of the trace id (its key hash): still open? */
        if (sh->cap)
            for (saga *x = sh->tab[(h >> 8) & (sh->cap - 1)]; x; x = x->hnext)
                if (x->h == h && !(x->flags & F_CLOSED)) {
                    g = x;
                    break;
                }
        if (!g) {
            pthread_mutex_unlock(&sh->mu);
            return FILTER_KEEP;
        }
    } else {
        g = agg_find(sh, h, ks, kl);
    }
    if (g && soff >= 0 && g->spart == spart && g->soff >= soff && strlen(agg_str_of(sh, g->stopic)) == stl &&
        !memcmp(agg_str_of(sh, g->stopic), stp, stl)) {
        /* changelog: a replayed event (read again after a crash or a rebalance), already in the state; the
         * event that closed the saga emits its summary again (the same, for an output that lost it) */
        if ((g->flags & F_CLOSED) && g->soff == soff && g->outcome <= O_COMPENSATED)
            agg_emit_summary(a, sh, g, g->outcome, call->emit);
        pthread_mutex_unlock(&sh->mu);
        free(kcopy);
        return a->drop_events ? FILTER_DROP : FILTER_KEEP;
    }
    if (g && (g->flags & F_CLOSED))
        reopen(st, sh, g, t, now);
    if (!g) {
        /* a new saga; over max_open the least recently queued one of this
         * shard goes (the least recently active, within timeout/64) */
        while (atomic_load(&st->open) >= (uint64_t)a->max_open && sh->head && (sh->head->flags & F_CLOSED)) {
            agg_chlog_tombstone(st, sh->head); /* markers first */
            agg_drop(st, sh, sh->head);
        }
        if (atomic_load(&st->open) >= (uint64_t)a->max_open && sh->head) {
            atomic_fetch_add(&st->evicted, 1);
            close_saga(a, sh, sh->head, O_EVICTED, call->emit);
        }
        g = calloc(1, sizeof *g + kl);
        if (g) {
            g->h = h;
            g->keylen = (uint16_t)kl;
            memcpy(g->key, ks, kl);
            g->spart = -1;
            g->soff = -1;
        }
        if (!g || agg_tab_insert(sh, g)) {
            free(g);
            pthread_mutex_unlock(&sh->mu);
            free(kcopy);
            return FILTER_KEEP;
        }
        g->first = g->last = t;
        g->enq = now;
        agg_lru_append(sh, g);
        atomic_fetch_add(&st->open, 1);
        sh->bytes += agg_saga_bytes(g);
    } else if (now - g->enq > a->timeout / 64) {
        /* to the tail, at most 64 times per timeout (a move touches three
         * cache lines; between moves only `seen` changes) */
        agg_lru_unlink(sh, g);
        g->enq = now;
        agg_lru_append(sh, g);
    }
    free(kcopy);
    size_t before = agg_saga_bytes(g);
    g->seen = now;
    g->events++;
    if (t < g->first)
        g->first = t;
    if (t > g->last)
        g->last = t;
    if (kind == K_START)
        g->flags |= F_STARTED;
    else if (kind == K_FAILURE)
        g->failures++;
    else if (kind == K_COMPENSATION)
        g->compensations++;
    uint32_t sid = 0;
    if (first_text(rec, rec_len, a->svpaths, a->nsv, scratch, &sv, &svn))
        sid = agg_str_id(st, sh, sv, svn);
    if (sid && g->nsvc < a->max_services) {
        int have = 0;
        for (uint32_t i = 0; i < g->nsvc && !have; i++)
            have = g->svcs[i] == sid;
        if (!have) {
            if (g->nsvc == g->capsvc) {
                uint32_t nc = g->capsvc ? g->capsvc * 2u : 2u;
                if (nc > (uint32_t)a->max_services)
                    nc = (uint32_t)a->max_services;
                uint32_t *nv = realloc(g->svcs, nc * sizeof *nv);
                if (nv) {
                    g->svcs = nv;
                    g->capsvc = (uint8_t)nc;
                }
            }
            if (g->nsvc < g->capsvc)
                g->svcs[g->nsvc++] = sid;
        }
    }
    if (first_text(rec, rec_len, a->trpaths, a->ntrp, scratch, &tr, &trn))
        agg_add_trace(a, g, tr, trn);
    if (kind != K_NONE) {
        if (g->nsteps < a->max_steps) {
            if (g->nsteps == g->capsteps) {
                uint32_t nc = g->capsteps ? g->capsteps * 2u : 4u;
                if (nc > (uint32_t)a->max_steps)
                    nc = (uint32_t)a->max_steps;
                agg_step *nv = realloc(g->steps, nc * sizeof *nv);
                if (nv) {
                    g->steps = nv;
                    g->capsteps = nc;
                }
            }
            if (g->nsteps < g->capsteps) {
                agg_step *s = &g->steps[g->nsteps++];
                s->t = t;
                s->kind = (uint32_t)kind;
                s->service = sid;
                s->name = path_text(rec, rec_len, &a->npath, scratch, &ns, &nn) > 0 ? agg_str_id(st, sh, ns, nn) : 0;
                s->status = path_text(rec, rec_len, &a->stpath, scratch, &stt, &stn) > 0 ? agg_str_id(st, sh, stt, stn) : 0;
            } else {
                g->dropped_steps++;
            }
        } else {
            g->dropped_steps++;
        }
    }
    if (st->cl && spart >= 0) {
        g->stopic = agg_str_id(st, sh, (const uint8_t *)stp, stl);
        g->spart = (int32_t)spart;
        g->soff = soff;
    }
    sh->bytes += agg_saga_bytes(g) - before;
    /* the key onto a record that came by its trace id (before g may go) */
    int rc = a->drop_events ? FILTER_DROP : FILTER_KEEP;
    if (joined && !a->drop_events) {
        wbuf kv = {0};
        mpw_str(&kv, g->key, g->keylen);
        if (rec_set_path(call->out, rec, rec_len, &a->kpath, kv.data, kv.len) == 0)
            rc = FILTER_MODIFY;
        wbuf_free(&kv);
    }
    if (kind == K_END)
        close_saga(a, sh, g, g->compensations ? O_COMPENSATED : g->failures ? O_FAILED : O_COMPLETED, call->emit);
    else if (kind == K_FAILURE && a->end_on_failure)
        close_saga(a, sh, g, g->compensations ? O_COMPENSATED : O_FAILED, call->emit);
    else if (st->cl)
        agg_chlog_put(st, sh, g);
    pthread_mutex_unlock(&sh->mu);
    return rc;
}

/* ---- clock ------------------------------------------------------------------------------------ */

static void aggregate_tick(filter *f, double now, int mode, filter_emit *em)
{
    aggregate_ctx *a = f->ctx;
    agg_state *st = a->st;
    if (mode == FILTER_TICK_RELOAD) {
        /* a new filter with the same id and configuration took the state over
         * (old routers are kept until exit: refs counts them too) */
        pthread_mutex_lock(&reg_mu);
        int taken = st->owner != f;
        pthread_mutex_unlock(&reg_mu);
        if (taken)
            return;
    }
    for (int i = 0; i < AGG_SHARDS; i++) {
        agg_shard *sh = &st->sh[i];
        pthread_mutex_lock(&sh->mu);
        if (mode == FILTER_TICK) {
            /* the list is in queueing order and a saga is queued again when
             * its last event is timeout/64 past its queueing: the head is
             * never more than timeout/64 late against any saga behind it */
            while (sh->head && sh->head->seen + a->timeout <= now) {
                saga *hd = sh->head;
                if (hd->flags & F_CLOSED) {
                    agg_chlog_tombstone(st, hd); /* a changelog's marker expired */
                    agg_drop(st, sh, hd);
                } else {
                    close_saga(a, sh, hd, O_TIMED_OUT, em);
                }
            }
        } else if (!st->cl) {
            while (sh->head) {
                if (sh->head->flags & F_CLOSED)
                    agg_drop(st, sh, sh->head); /* a marker (only imported ones without a changelog) */
                else
                    close_saga(a, sh, sh->head, O_OPEN, em);
            }
        }
        pthread_mutex_unlock(&sh->mu);
    }
}

static int aggregate_stats(const filter *f, filter_stats *s)
{
    const aggregate_ctx *a = f->ctx;
    memset(s, 0, sizeof *s);
    s->open = atomic_load(&a->st->open);
    s->evicted = atomic_load(&a->st->evicted);
    s->summaries = atomic_load(&a->st->summaries);
    agg_chlog_stats(a->st, s);
    return 1;
}

/* bytes the state holds (sagas, tables, strings), for the benchmark */
size_t aggregate_state_bytes(const filter *f);
size_t aggregate_state_bytes(const filter *f)
{
    const aggregate_ctx *a = f->ctx;
    size_t b = 0;
    for (int i = 0; i < AGG_SHARDS; i++) {
        agg_shard *sh = &a->st->sh[i];
        pthread_mutex_lock(&sh->mu);
        b += sh->bytes + sh->strmap.cap * 16 + sh->capstrs * sizeof(char *);
        pthread_mutex_unlock(&sh->mu);
        b += a->st->ts[i].cap * 16;
    }
    return b;
}

FILTER_PLUGIN(aggregate, aggregate, .tick = aggregate_tick, .stats = aggregate_stats);
