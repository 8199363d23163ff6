/*
 * aggregator/filters/aggregate_state.c: the aggregate filter's state
 * (docs/architecture.md "Correlation state"): key hashing, the shards'
 * string tables, hash tables and LRU lists, the trace id index
 * (copy_key_by_trace) and the summary record of a saga. The filter
 * (aggregate.c) and its changelog (aggregate_chlog.c) use them under the
 * shard's lock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/mp.h"
#include "aggregator/filters/aggregate_impl.h"

static const char *const kind_names[] = {"start", "step", "end", "failure", "compensation", "event"};
static const char *const outcome_names[] = {"completed", "failed", "compensated", "timed_out", "evicted", "open"};

/* ---- hashing, strings -------------------------------------------------------------------------- */

uint64_t agg_hash(const void *p, size_t n)
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
uint32_t agg_str_id(agg_state *st, agg_shard *sh, const uint8_t *s, size_t n)
{
    if (!n)
        return 0;
    if (n > AGG_MAX_STR)
        n = AGG_MAX_STR;
    uint64_t h = agg_hash(s, n);
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

const char *agg_str_of(const agg_shard *sh, uint32_t id) { return id && id < sh->nstrs ? sh->strs[id] : ""; }

/* ---- the shard's table and list --------------------------------------------------------------- */

saga *agg_find(agg_shard *sh, uint64_t h, const uint8_t *k, size_t kl)
{
    if (!sh->cap)
        return NULL;
    for (saga *g = sh->tab[(h >> 8) & (sh->cap - 1)]; g; g = g->hnext)
        if (g->h == h && g->keylen == kl && !memcmp(g->key, k, kl))
            return g;
    return NULL;
}

void agg_lru_unlink(agg_shard *sh, saga *g)
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

void agg_lru_append(agg_shard *sh, saga *g)
{
    g->prev = sh->tail;
    g->next = NULL;
    if (sh->tail)
        sh->tail->next = g;
    else
        sh->head = g;
    sh->tail = g;
}

int agg_tab_insert(agg_shard *sh, saga *g)
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

void agg_tab_remove(agg_shard *sh, saga *g)
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

void agg_trace_put(agg_state *st, uint64_t th, uint64_t kh)
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

uint64_t agg_trace_get(agg_state *st, uint64_t th)
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
void agg_trace_del(agg_state *st, uint64_t th, uint64_t kh)
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
    return strcmp(agg_str_of(sort_sh, *(const uint32_t *)x), agg_str_of(sort_sh, *(const uint32_t *)y));
}

static int cmp_step_full(const void *x, const void *y)
{
    int c = cmp_step(x, y);
    if (c)
        return c;
    const agg_step *a = x, *b = y;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    if ((c = strcmp(agg_str_of(sort_sh, a->name), agg_str_of(sort_sh, b->name))))
        return c;
    if ((c = strcmp(agg_str_of(sort_sh, a->service), agg_str_of(sort_sh, b->service))))
        return c;
    return strcmp(agg_str_of(sort_sh, a->status), agg_str_of(sort_sh, b->status));
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
void agg_emit_summary(const aggregate_ctx *a, agg_shard *sh, saga *g, int outcome, filter_emit *em)
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
        put_cstr(w, agg_str_of(sh, s->name));
        put_cstr(w, "kind");
        put_cstr(w, kind_names[s->kind]);
        put_cstr(w, "service");
        put_cstr(w, agg_str_of(sh, s->service));
        put_cstr(w, "status");
        put_cstr(w, agg_str_of(sh, s->status));
        put_cstr(w, "time");
        put_time(w, s->t);
    }
    put_cstr(w, "steps_dropped");
    mpw_uint(w, g->dropped_steps);
    put_cstr(w, "services");
    mpw_array(w, g->nsvc);
    for (uint32_t i = 0; i < g->nsvc; i++)
        put_cstr(w, agg_str_of(sh, g->svcs[i]));
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

size_t agg_saga_bytes(const saga *g)
{
    return sizeof *g + g->keylen + (size_t)g->capsteps * sizeof(agg_step) + (size_t)g->capsvc * 4 + g->trcap;
}

void agg_add_trace(const aggregate_ctx *a, saga *g, const uint8_t *s, uint32_t n)
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
        agg_trace_put(a->st, agg_hash(s, n), g->h);
}
