/* outputs/loki/request.c: one write's records, streams and tenants (request.h). */
#include <stdlib.h>
#include <string.h>

#include "aggregator/record.h"
#include "outputs/loki/grow.h"
#include "outputs/loki/request.h"

void lk_req_free(lk_req *r)
{
    lk_labels_free(&r->ls);
    wbuf_free(&r->sc2);
    wbuf_free(&r->lines);
    wbuf_free(&r->sm);
    wbuf_free(&r->text);
    free(r->recs);
    free(r->streams);
    free(r->stab);
    free(r->tenants);
}

int lk_req_tenant(lk_req *r, const char *t, size_t tl, uint32_t *out)
{
    for (size_t i = 0; i < r->ntenants; i++) {
        const char *x = (const char *)r->text.data + r->tenants[i];
        if (strlen(x) == tl && !memcmp(x, t ? t : "", tl)) {
            *out = (uint32_t)i;
            return 0;
        }
    }
    if (LK_GROW(r->tenants, r->ntenants, r->cap_tenants))
        return -1;
    r->tenants[r->ntenants] = r->text.len;
    if (rec_add(&r->text, t ? t : "", tl) || wbuf_addc(&r->text, 0))
        return -1;
    *out = (uint32_t)r->ntenants++;
    return 0;
}

static int stab_grow(lk_req *r)
{
    size_t ncap = r->stab_cap ? r->stab_cap * 2 : 256;
    uint32_t *t = calloc(ncap, sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < r->nstreams; i++) {
        size_t j = r->streams[i].h & (ncap - 1);
        while (t[j])
            j = (j + 1) & (ncap - 1);
        t[j] = (uint32_t)i + 1;
    }
    free(r->stab);
    r->stab = t;
    r->stab_cap = ncap;
    return 0;
}

/* The set's key: each name and value with its length before it (what
 * tells two sets apart; the label text, with its quoting, is made only for
 * a new stream). */
static int set_key(const lk_labels *ls, wbuf *o)
{
    for (size_t i = 0; i < ls->nkv; i++) {
        const lk_kv *k = &ls->kv[i];
        if (wbuf_add(o, &k->nlen, sizeof k->nlen) || wbuf_add(o, ls->sc.data + k->noff, k->nlen) ||
            wbuf_add(o, &k->vlen, sizeof k->vlen) || wbuf_add(o, ls->sc.data + k->voff, k->vlen))
            return -1;
    }
    return 0;
}

int lk_req_stream(lk_req *r, uint32_t tenant, uint64_t lh, uint32_t *out)
{
    uint64_t h = lk_fnv(lh, &tenant, sizeof tenant);
    if ((r->nstreams + 1) * 2 > r->stab_cap && stab_grow(r))
        return -1;
    size_t j = h & (r->stab_cap - 1);
    size_t mark = r->text.len;
    if (set_key(&r->ls, &r->text))
        return -1;
    size_t kl = r->text.len - mark;
    while (r->stab[j]) {
        lk_stream *s = &r->streams[r->stab[j] - 1];
        if (s->h == h && s->tenant == tenant && s->key_len == kl &&
            !memcmp(r->text.data + s->key_off, r->text.data + mark, kl)) {
            r->text.len = mark;
            *out = r->stab[j] - 1;
            return 0;
        }
        j = (j + 1) & (r->stab_cap - 1);
    }
    if (LK_GROW(r->streams, r->nstreams, r->cap_streams))
        return -1;
    lk_stream *s = &r->streams[r->nstreams];
    memset(s, 0, sizeof *s);
    s->tenant = tenant;
    s->h = h;
    s->key_off = mark;
    s->key_len = (uint32_t)kl;
    s->lab_off = r->text.len;
    if (lk_labels_text(&r->ls, &r->text))
        return -1;
    s->lab_len = (uint32_t)(r->text.len - s->lab_off);
    s->json_off = r->text.len;
    if (lk_labels_json(&r->ls, &r->text))
        return -1;
    s->json_len = (uint32_t)(r->text.len - s->json_off);
    r->stab[j] = (uint32_t)r->nstreams + 1;
    *out = (uint32_t)r->nstreams++;
    return 0;
}

static int rec_cmp(const void *a, const void *b, void *arg)
{
    const lk_stream *st = arg;
    const lk_rec *x = a, *y = b;
    if (st[x->stream].tenant != st[y->stream].tenant)
        return st[x->stream].tenant < st[y->stream].tenant ? -1 : 1;
    if (x->stream != y->stream)
        return x->stream < y->stream ? -1 : 1;
    if (x->sec != y->sec)
        return x->sec < y->sec ? -1 : 1;
    if (x->nsec != y->nsec)
        return x->nsec < y->nsec ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Records placed by (tenant, stream) in one counting pass (stable: batch
 * order kept), then each stream's run sorted by time only where it is not
 * in order already (a sender's records nearly always are). A full qsort of
 * the write was 3 % of weir's CPU into Loki. */
void lk_req_sort(lk_req *r)
{
    size_t n = r->nrecs, ns = r->nstreams, nt = r->ntenants;
    /* cnt[k]: stream k's records; next[k]: where its next record goes; first[t]: tenant t's first place */
    size_t *cnt = calloc(2 * ns + nt + 1, sizeof *cnt);
    lk_rec *out = malloc((r->cap_recs ? r->cap_recs : 1) * sizeof *out);
    if (!cnt || !out) { /* out of memory: the plain sort */
        free(cnt);
        free(out);
        qsort_r(r->recs, n, sizeof *r->recs, rec_cmp, r->streams);
        return;
    }
    size_t *next = cnt + ns, *first = next + ns;
    for (size_t i = 0; i < n; i++)
        cnt[r->recs[i].stream]++;
    for (size_t k = 0; k < ns; k++)
        first[r->streams[k].tenant + 1] += cnt[k];
    for (size_t t = 0; t < nt; t++)
        first[t + 1] += first[t];
    for (size_t k = 0; k < ns; k++) { /* within a tenant, streams in their order */
        next[k] = first[r->streams[k].tenant];
        first[r->streams[k].tenant] += cnt[k];
    }
    for (size_t i = 0; i < n; i++)
        out[next[r->recs[i].stream]++] = r->recs[i];
    for (size_t k = 0; k < ns; k++) {
        size_t end = next[k], begin = end - cnt[k];
        for (size_t i = begin + 1; i < end; i++)
            if (out[i].sec < out[i - 1].sec || (out[i].sec == out[i - 1].sec && out[i].nsec < out[i - 1].nsec)) {
                qsort_r(out + begin, end - begin, sizeof *out, rec_cmp, r->streams);
                break;
            }
    }
    free(cnt);
    free(r->recs);
    r->recs = out;
}
