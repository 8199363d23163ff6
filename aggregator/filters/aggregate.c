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

#define AGG_SHARDS 64
#define AGG_MAX_STR 256   /* step names, services, statuses: longer values are cut */
#define AGG_MAX_TRACE 128 /* longer trace ids are ignored */
#define AGG_MAX_STRS 65536 /* distinct strings per shard; beyond: "" (counted) */

enum { K_START, K_STEP, K_END, K_FAILURE, K_COMPENSATION, K_NONE, K_N = K_NONE };
static const char *const kind_names[] = {"start", "step", "end", "failure", "compensation", "event"};
enum { O_COMPLETED, O_FAILED, O_COMPENSATED, O_TIMED_OUT, O_EVICTED, O_OPEN };
static const char *const outcome_names[] = {"completed", "failed", "compensated", "timed_out", "evicted", "open"};

/* clock of the timeouts (tests replace it) */
double (*aggregate_clock)(void) = clock_mono;

typedef struct agg_step {
    uint64_t t; /* event time, ns */
    uint32_t name, service, status;
    uint32_t kind;
} agg_step;

enum { F_STARTED = 1 };

typedef struct saga {
    struct saga *hnext;       /* hash chain */
    struct saga *prev, *next; /* shard's LRU list: least recently active first */
    uint64_t h;
    uint64_t first, last; /* event times, ns */
    double seen;          /* clock of the last event */
    double enq;           /* clock when it was put at the list's tail (the list is in this order) */
    uint32_t events, nsteps, capsteps, dropped_steps;
    uint32_t failures, compensations;
    agg_step *steps;
    uint32_t *svcs; /* string ids, sorted at emission */
    uint8_t nsvc, capsvc, ntr, flags;
    uint16_t trlen, trcap, keylen;
    uint8_t *tr; /* trace ids: [len][bytes]... */
    char key[];
} saga;

typedef struct agg_shard {
    pthread_mutex_t mu;
    saga **tab;
    size_t cap, n;
    saga *head, *tail;
    /* strings: id -> text, hash -> id + 1 */
    char **strs;
    uint32_t nstrs, capstrs;
    u64map strmap;
    size_t bytes; /* heap held by this shard's sagas and strings */
} agg_shard;

/* trace id -> the key hash of its open saga (copy_key_by_trace) */
typedef struct agg_trace_shard {
    pthread_mutex_t mu;
    uint64_t *k, *v; /* open addressing with deletion by backward shift; k 0 empty */
    size_t cap, n;
} agg_trace_shard;

typedef struct agg_state {
    struct agg_state *next; /* registry */
    char *fp;
    int refs;
    const filter *owner; /* the newest filter using it (the running configuration's) */
    agg_shard sh[AGG_SHARDS];
    agg_trace_shard ts[AGG_SHARDS];
    atomic_uint_fast64_t open, evicted, summaries, strs_dropped;
} agg_state;

typedef struct agg_cond {
    rec_path path;
    rx re;
} agg_cond;

typedef struct aggregate_ctx {
    char *key, *tag, *key_name;
    char *step_name_key, *service_key, *status_key, *trace_key;
    char **service_keys, **trace_keys;
    double timeout;
    int64_t max_open, max_steps, max_services, max_trace_ids;
    int copy_key_by_trace, drop_events, end_on_failure;
    rec_path kpath, npath, stpath;
    rec_path *svpaths, *trpaths;
    size_t nsv, ntrp;
    agg_cond *conds[K_N];
    size_t nconds[K_N];
    int any_cond;
    size_t tag_len;
    agg_state *st;
    const filter *prev_owner; /* st's owner before this filter took it (a failed reload gives it back) */
} aggregate_ctx;

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

static void saga_free(saga *g)
{
    free(g->steps);
    free(g->svcs);
    free(g->tr);
    free(g);
}

static void state_free(agg_state *s)
{
    for (int i = 0; i < AGG_SHARDS; i++) {
        agg_shard *sh = &s->sh[i];
        for (saga *g = sh->head, *nx; g; g = nx) {
            nx = g->next;
            saga_free(g);
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

/* ---- hashing, strings -------------------------------------------------------------------------- */

static uint64_t hash_bytes(const void *p, size_t n)
{
    /* FNV-1a then a finalizer (shard and bucket bits come from the mix) */
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h ? h : 1;
}

/* id of a string in the shard's table (0 is ""): under the shard's lock */
static uint32_t str_id(agg_state *st, agg_shard *sh, const uint8_t *s, size_t n)
{
    if (!n)
        return 0;
    if (n > AGG_MAX_STR)
        n = AGG_MAX_STR;
    uint64_t h = hash_bytes(s, n);
    int added = 0;
    if (sh->nstrs >= AGG_MAX_STRS) {
        uint64_t *v = u64map_at(&sh->strmap, h, 0, NULL);
        if (v)
            return (uint32_t)*v;
        atomic_fetch_add(&st->strs_dropped, 1);
        return 0;
    }
    uint64_t *v = u64map_at(&sh->strmap, h, 1, &added);
    if (!v)
        return 0;
    if (!added)
        return (uint32_t)*v;
    if (sh->nstrs == 0)
        sh->nstrs = 1; /* id 0 is "" */
    if (sh->nstrs >= sh->capstrs) {
        uint32_t nc = sh->capstrs ? sh->capstrs * 2 : 64;
        char **ns = realloc(sh->strs, nc * sizeof *ns);
        if (!ns) {
            *v = 0;
            return 0;
        }
        sh->strs = ns;
        sh->capstrs = nc;
        sh->strs[0] = NULL;
    }
    char *c = malloc(n + 1);
    if (!c) {
        *v = 0;
        return 0;
    }
    memcpy(c, s, n);
    c[n] = 0;
    sh->strs[sh->nstrs] = c;
    sh->bytes += n + 1;
    *v = sh->nstrs;
    return sh->nstrs++;
}

static const char *str_of(const agg_shard *sh, uint32_t id) { return id && id < sh->nstrs ? sh->strs[id] : ""; }

/* ---- the shard's table and list --------------------------------------------------------------- */

static saga *find(agg_shard *sh, uint64_t h, const uint8_t *k, size_t kl)
{
    if (!sh->cap)
        return NULL;
    for (saga *g = sh->tab[(h >> 8) & (sh->cap - 1)]; g; g = g->hnext)
        if (g->h == h && g->keylen == kl && !memcmp(g->key, k, kl))
            return g;
    return NULL;
}

static void lru_unlink(agg_shard *sh, saga *g)
{
    if (g->prev)
        g->prev->next = g->next;
    else
        sh->head = g->next;
    if (g->next)
        g->next->prev = g->prev;
    else
        sh->tail = g->prev;
    g->prev = g->next = NULL;
}

static void lru_append(agg_shard *sh, saga *g)
{
    g->prev = sh->tail;
    g->next = NULL;
    if (sh->tail)
        sh->tail->next = g;
    else
        sh->head = g;
    sh->tail = g;
}

static int tab_insert(agg_shard *sh, saga *g)
{
    if (sh->n + 1 > sh->cap) {
        size_t nc = sh->cap ? sh->cap * 2 : 256;
        saga **nt = calloc(nc, sizeof *nt);
        if (!nt)
            return -1;
        for (size_t i = 0; i < sh->cap; i++)
            for (saga *x = sh->tab[i], *nx; x; x = nx) {
                nx = x->hnext;
                size_t b = (x->h >> 8) & (nc - 1);
                x->hnext = nt[b];
                nt[b] = x;
            }
        free(sh->tab);
        sh->bytes += (nc - sh->cap) * sizeof *nt;
        sh->tab = nt;
        sh->cap = nc;
    }
    size_t b = (g->h >> 8) & (sh->cap - 1);
    g->hnext = sh->tab[b];
    sh->tab[b] = g;
    sh->n++;
    return 0;
}

static void tab_remove(agg_shard *sh, saga *g)
{
    saga **pp = &sh->tab[(g->h >> 8) & (sh->cap - 1)];
    while (*pp && *pp != g)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = g->hnext;
        sh->n--;
    }
}

/* ---- trace index ------------------------------------------------------------------------------ */

static agg_trace_shard *tshard(agg_state *st, uint64_t th) { return &st->ts[th & (AGG_SHARDS - 1)]; }

static void trace_put(agg_state *st, uint64_t th, uint64_t kh)
{
    agg_trace_shard *t = tshard(st, th);
    pthread_mutex_lock(&t->mu);
    if ((t->n + 1) * 10 > t->cap * 7) {
        size_t nc = t->cap ? t->cap * 2 : 256;
        uint64_t *nk = calloc(nc, 8), *nv = calloc(nc, 8);
        if (!nk || !nv) {
            free(nk);
            free(nv);
            pthread_mutex_unlock(&t->mu);
            return;
        }
        for (size_t i = 0; i < t->cap; i++)
            if (t->k[i]) {
                size_t j = (t->k[i] >> 8) & (nc - 1);
                while (nk[j])
                    j = (j + 1) & (nc - 1);
                nk[j] = t->k[i];
                nv[j] = t->v[i];
            }
        free(t->k);
        free(t->v);
        t->k = nk;
        t->v = nv;
        t->cap = nc;
    }
    size_t j = (th >> 8) & (t->cap - 1);
    while (t->k[j] && t->k[j] != th)
        j = (j + 1) & (t->cap - 1);
    if (!t->k[j])
        t->n++;
    t->k[j] = th;
    t->v[j] = kh;
    pthread_mutex_unlock(&t->mu);
}

static uint64_t trace_get(agg_state *st, uint64_t th)
{
    agg_trace_shard *t = tshard(st, th);
    uint64_t r = 0;
    pthread_mutex_lock(&t->mu);
    if (t->cap) {
        size_t j = (th >> 8) & (t->cap - 1);
        while (t->k[j]) {
            if (t->k[j] == th) {
                r = t->v[j];
                break;
            }
            j = (j + 1) & (t->cap - 1);
        }
    }
    pthread_mutex_unlock(&t->mu);
    return r;
}

/* remove th if it still points at kh (backward-shift deletion) */
static void trace_del(agg_state *st, uint64_t th, uint64_t kh)
{
    agg_trace_shard *t = tshard(st, th);
    pthread_mutex_lock(&t->mu);
    if (t->cap) {
        size_t m = t->cap - 1, j = (th >> 8) & m;
        while (t->k[j] && t->k[j] != th)
            j = (j + 1) & m;
        if (t->k[j] == th && t->v[j] == kh) {
            t->k[j] = 0;
            t->n--;
            size_t i = j;
            for (size_t x = (i + 1) & m; t->k[x]; x = (x + 1) & m) {
                size_t home = (t->k[x] >> 8) & m;
                /* move x back to the hole i when its home is not in (i, x] */
                if ((x > i && (home <= i || home > x)) || (x < i && (home <= i && home > x))) {
                    t->k[i] = t->k[x];
                    t->v[i] = t->v[x];
                    t->k[x] = 0;
                    i = x;
                }
            }
        }
    }
    pthread_mutex_unlock(&t->mu);
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
        a->st->next = reg_head;
        reg_head = a->st;
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

static int cmp_step(const void *x, const void *y)
{
    const agg_step *a = x, *b = y;
    if (a->t != b->t)
        return a->t < b->t ? -1 : 1;
    return 0;
}

static __thread const agg_shard *sort_sh;

static int cmp_sid(const void *x, const void *y)
{
    return strcmp(str_of(sort_sh, *(const uint32_t *)x), str_of(sort_sh, *(const uint32_t *)y));
}

static int cmp_step_full(const void *x, const void *y)
{
    int c = cmp_step(x, y);
    if (c)
        return c;
    const agg_step *a = x, *b = y;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if ((c = strcmp(str_of(sort_sh, a->name), str_of(sort_sh, b->name))))
        return c;
    if ((c = strcmp(str_of(sort_sh, a->service), str_of(sort_sh, b->service))))
        return c;
    return strcmp(str_of(sort_sh, a->status), str_of(sort_sh, b->status));
}

static void put_cstr(wbuf *w, const char *s) { mpw_str(w, s, strlen(s)); }

/* ISO 8601 UTC with nanoseconds, "2026-12-02T15:40:12.123456789Z" (what
 * time_fmt's %Y-%m-%dT%H:%M:%S.%NZ gives, without strftime's cost) */
static void put_time(wbuf *w, uint64_t ns)
{
    uint64_t secs = ns / 1000000000u;
    uint32_t frac = (uint32_t)(ns % 1000000000u);
    int64_t days = (int64_t)(secs / 86400);
    uint32_t sod = (uint32_t)(secs % 86400);
    /* days to civil (Howard Hinnant's algorithm) */
    int64_t z = days + 719468;
    int64_t era = z / 146097;
    uint32_t doe = (uint32_t)(z - era * 146097);
    uint32_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = (int64_t)yoe + era * 400;
    uint32_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    uint32_t mp = (5 * doy + 2) / 153;
    uint32_t d = doy - (153 * mp + 2) / 5 + 1;
    uint32_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        y++;
    char b[40];
    int n = snprintf(b, sizeof b, "%04lld-%02u-%02uT%02u:%02u:%02u.%09uZ", (long long)y, m, d, sod / 3600,
                     sod / 60 % 60, sod % 60, frac);
    if (n > 0 && (size_t)n < sizeof b)
        mpw_str(w, b, (size_t)n);
    else
        mpw_str(w, "", 0);
}

typedef struct trace_ref {
    const uint8_t *p;
    uint8_t n;
} trace_ref;

static int cmp_trace(const void *x, const void *y)
{
    const trace_ref *a = x, *b = y;
    int c = memcmp(a->p, b->p, a->n < b->n ? a->n : b->n);
    return c ? c : (int)a->n - (int)b->n;
}

/* Append the summary of g as one entry to em; under the shard's lock. The
 * content depends only on the saga's events, not on their order of arrival
 * (steps sorted by time, then kind and text; services and trace ids sorted). */
static void emit_summary(const aggregate_ctx *a, agg_shard *sh, saga *g, int outcome, filter_emit *em)
{
    atomic_fetch_add(&a->st->summaries, 1);
    if (!em)
        return;
    em->tag = a->tag;
    em->tag_len = a->tag_len;
    wbuf *w = &em->w;
    uint64_t t = g->last;
    batch_put_entry_head(w, (uint32_t)(t / 1000000000u), (uint32_t)(t % 1000000000u), NULL, 0);
    sort_sh = sh;
    if (g->nsteps)
        qsort(g->steps, g->nsteps, sizeof *g->steps, cmp_step_full);
    if (g->nsvc)
        qsort(g->svcs, g->nsvc, sizeof *g->svcs, cmp_sid);
    mpw_map(w, 13);
    put_cstr(w, a->key_name);
    mpw_str(w, g->key, g->keylen);
    put_cstr(w, "outcome");
    put_cstr(w, outcome_names[outcome]);
    put_cstr(w, "first_time");
    put_time(w, g->first);
    put_cstr(w, "last_time");
    put_time(w, g->last);
    put_cstr(w, "duration");
    mpw_double(w, (double)(g->last - g->first) / 1e9);
    put_cstr(w, "event_count");
    mpw_uint(w, g->events);
    put_cstr(w, "started");
    mpw_bool(w, (g->flags & F_STARTED) != 0);
    put_cstr(w, "failures");
    mpw_uint(w, g->failures);
    put_cstr(w, "compensations");
    mpw_uint(w, g->compensations);
    put_cstr(w, "steps");
    mpw_array(w, g->nsteps);
    for (uint32_t i = 0; i < g->nsteps; i++) {
        const agg_step *s = &g->steps[i];
        mpw_map(w, 5);
        put_cstr(w, "name");
        put_cstr(w, str_of(sh, s->name));
        put_cstr(w, "kind");
        put_cstr(w, kind_names[s->kind]);
        put_cstr(w, "service");
        put_cstr(w, str_of(sh, s->service));
        put_cstr(w, "status");
        put_cstr(w, str_of(sh, s->status));
        put_cstr(w, "time");
        put_time(w, s->t);
    }
    put_cstr(w, "steps_dropped");
    mpw_uint(w, g->dropped_steps);
    put_cstr(w, "services");
    mpw_array(w, g->nsvc);
    for (uint32_t i = 0; i < g->nsvc; i++)
        put_cstr(w, str_of(sh, g->svcs[i]));
    trace_ref refs[256];
    uint32_t nt = 0;
    for (uint32_t off = 0; nt < g->ntr && off < g->trlen; off += 1u + g->tr[off])
        refs[nt++] = (trace_ref){g->tr + off + 1, g->tr[off]};
    if (nt)
        qsort(refs, nt, sizeof *refs, cmp_trace);
    put_cstr(w, "trace_ids");
    mpw_array(w, nt);
    for (uint32_t i = 0; i < nt; i++)
        mpw_str(w, refs[i].p, refs[i].n);
    em->n++;
}

static size_t saga_bytes(const saga *g)
{
    return sizeof *g + g->keylen + (size_t)g->capsteps * sizeof(agg_step) + (size_t)g->capsvc * 4 + g->trcap;
}

/* Close g: summary, out of the table, list and trace index, freed. */
static void close_saga(const aggregate_ctx *a, agg_shard *sh, saga *g, int outcome, filter_emit *em)
{
    emit_summary(a, sh, g, outcome, em);
    tab_remove(sh, g);
    lru_unlink(sh, g);
    for (uint32_t off = 0; off < g->trlen; off += 1u + g->tr[off])
        trace_del(a->st, hash_bytes(g->tr + off + 1, g->tr[off]), g->h);
    sh->bytes -= saga_bytes(g);
    atomic_fetch_sub(&a->st->open, 1);
    saga_free(g);
}

static void add_trace(const aggregate_ctx *a, saga *g, const uint8_t *s, uint32_t n)
{
    if (!n || n > AGG_MAX_TRACE || g->ntr >= a->max_trace_ids)
        return;
    for (uint32_t off = 0; off < g->trlen; off += 1u + g->tr[off])
        if (g->tr[off] == n && !memcmp(g->tr + off + 1, s, n))
            return;
    size_t need = g->trlen + 1u + n;
    if (need > g->trcap) {
        size_t nc = (need + 63) & ~(size_t)63;
        uint8_t *nt = realloc(g->tr, nc);
        if (!nt)
            return;
        g->tr = nt;
        g->trcap = (uint16_t)nc;
    }
    g->tr[g->trlen] = (uint8_t)n;
    memcpy(g->tr + g->trlen + 1, s, n);
    g->trlen = (uint16_t)(g->trlen + 1u + n);
    g->ntr++;
    if (a->copy_key_by_trace)
        trace_put(a->st, hash_bytes(s, n), g->h);
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
        h = trace_get(st, hash_bytes(ts, tn));
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
        h = hash_bytes(ks, kl);
    }
    int kind = event_kind(a, rec, rec_len, scratch);
    uint64_t t = (uint64_t)call->sec * 1000000000u + call->nsec;
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
                if (x->h == h) {
                    g = x;
                    break;
                }
        if (!g) {
            pthread_mutex_unlock(&sh->mu);
            return FILTER_KEEP;
        }
    } else {
        g = find(sh, h, ks, kl);
    }
    if (!g) {
        /* a new saga; over max_open the least recently queued one of this
         * shard goes (the least recently active, within timeout/64) */
        if (atomic_load(&st->open) >= (uint64_t)a->max_open && sh->head) {
            atomic_fetch_add(&st->evicted, 1);
            close_saga(a, sh, sh->head, O_EVICTED, call->emit);
        }
        g = calloc(1, sizeof *g + kl);
        if (g) {
            g->h = h;
            g->keylen = (uint16_t)kl;
            memcpy(g->key, ks, kl);
        }
        if (!g || tab_insert(sh, g)) {
            free(g);
            pthread_mutex_unlock(&sh->mu);
            free(kcopy);
            return FILTER_KEEP;
        }
        g->first = g->last = t;
        g->enq = now;
        lru_append(sh, g);
        atomic_fetch_add(&st->open, 1);
        sh->bytes += saga_bytes(g);
    } else if (now - g->enq > a->timeout / 64) {
        /* to the tail, at most 64 times per timeout (a move touches three
         * cache lines; between moves only `seen` changes) */
        lru_unlink(sh, g);
        g->enq = now;
        lru_append(sh, g);
    }
    free(kcopy);
    size_t before = saga_bytes(g);
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
        sid = str_id(st, sh, sv, svn);
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
        add_trace(a, g, tr, trn);
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
                s->name = path_text(rec, rec_len, &a->npath, scratch, &ns, &nn) > 0 ? str_id(st, sh, ns, nn) : 0;
                s->status = path_text(rec, rec_len, &a->stpath, scratch, &stt, &stn) > 0 ? str_id(st, sh, stt, stn) : 0;
            } else {
                g->dropped_steps++;
            }
        } else {
            g->dropped_steps++;
        }
    }
    sh->bytes += saga_bytes(g) - before;
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
            while (sh->head && sh->head->seen + a->timeout <= now)
                close_saga(a, sh, sh->head, O_TIMED_OUT, em);
        } else {
            while (sh->head)
                close_saga(a, sh, sh->head, O_OPEN, em);
        }
        pthread_mutex_unlock(&sh->mu);
    }
}

static int aggregate_stats(const filter *f, uint64_t *open, uint64_t *evicted, uint64_t *summaries)
{
    const aggregate_ctx *a = f->ctx;
    *open = atomic_load(&a->st->open);
    *evicted = atomic_load(&a->st->evicted);
    *summaries = atomic_load(&a->st->summaries);
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
