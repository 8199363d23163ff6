/*
 * outputs/loki/guard.c: the cardinality guard (`max_label_sets`).
 *
 * An output remembers the distinct label sets it has sent and the label
 * values they used. Once it holds that many sets, a record with a new set
 * has each dynamic label whose value was never seen replaced by
 * `label_overflow_value` (most diverse label first, stopping as soon as the
 * set is a known one); a new combination of known values loses its most
 * diverse label. Streams beyond the cap are thus made of known values only:
 * bounded. Static labels (extra_labels, the thread label) are never
 * replaced. Each replacement is counted in
 * weir_loki_label_overflow_total{output,label}, logged once per label.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "lib/log.h"
#include "outputs/loki/guard.h"

void lk_guard_init(lk_guard *g, size_t max_sets, const char *overflow_value)
{
    g->max_sets = max_sets;
    g->overflow_value = overflow_value;
    pthread_mutex_init(&g->mu, NULL);
}

static lk_name *guard_name(lk_guard *g, const uint8_t *name, size_t n)
{
    int added;
    uint64_t *slot = u64map_at(&g->names, lk_fnv(LK_FNV0, name, n), 1, &added);
    if (!slot)
        return NULL;
    if (added) {
        if (g->nnm == g->cap_nm) {
            size_t nc = g->cap_nm ? g->cap_nm * 2 : 16;
            lk_name *x = realloc(g->nm, nc * sizeof *x);
            if (!x)
                return NULL;
            g->nm = x;
            g->cap_nm = nc;
        }
        lk_name *e = &g->nm[g->nnm];
        memset(e, 0, sizeof *e);
        e->name = strndup((const char *)name, n);
        *slot = ++g->nnm;
    }
    return &g->nm[*slot - 1];
}

/* The hash of label i of ls as a name/value pair. */
static uint64_t pair_hash(const lk_labels *ls, size_t i)
{
    const lk_kv *k = &ls->kv[i];
    return lk_fnv(lk_fnv(lk_fnv(LK_FNV0, ls->sc.data + k->noff, k->nlen), "\x01", 1), ls->sc.data + k->voff, k->vlen);
}

uint64_t lk_guard_apply(lk_guard *g, lk_labels *ls, lk_guard_memo *memo, const char *id)
{
    uint64_t h = lk_labels_hash(ls);
    if (memo->set && memo->known == h)
        return h; /* known set (sets are never forgotten): as the lookup below would find */
    pthread_mutex_lock(&g->mu);
    if (u64map_at(&g->sets, h, 0, NULL)) {
        pthread_mutex_unlock(&g->mu);
        memo->known = h;
        memo->set = 1;
        return h;
    }
    if (g->sets.n < g->max_sets) {
        u64map_at(&g->sets, h, 1, NULL);
        memo->known = h;
        memo->set = 1;
        for (size_t i = 0; i < ls->nkv; i++) {
            const uint8_t *nm = ls->sc.data + ls->kv[i].noff;
            uint64_t ph = pair_hash(ls, i);
            int added;
            if (u64map_at(&g->pairs, ph, 1, &added) && added) {
                lk_name *e = guard_name(g, nm, ls->kv[i].nlen);
                if (e)
                    e->distinct++;
            }
        }
        pthread_mutex_unlock(&g->mu);
        return h;
    }
    /* Over the cap. Replace label values until the set is a known one or
     * is made only of values seen under the cap (plus the overflow value):
     * first the values never seen (most diverse label first), then, if the
     * combination alone is new, the most diverse label. This bounds the sets
     * sent beyond the cap by the product of the values known at the cap. */
    size_t ov_len = strlen(g->overflow_value);
    int replaced = 0;
    for (;;) {
        ssize_t best = -1, best_any = -1;
        uint64_t best_n = 0, best_any_n = 0;
        for (size_t i = 0; i < ls->nkv; i++) {
            if (!ls->kv[i].dyn)
                continue;
            const uint8_t *nm = ls->sc.data + ls->kv[i].noff;
            lk_name *e = guard_name(g, nm, ls->kv[i].nlen);
            uint64_t d = e ? e->distinct : 0;
            uint64_t ph = pair_hash(ls, i);
            if (!u64map_at(&g->pairs, ph, 0, NULL) && (best < 0 || d > best_n)) {
                best = (ssize_t)i;
                best_n = d;
            }
            if (best_any < 0 || d > best_any_n) {
                best_any = (ssize_t)i;
                best_any_n = d;
            }
        }
        if (best < 0 && replaced) {
            u64map_at(&g->sets, h, 1, NULL); /* known values only: bounded */
            break;
        }
        if (best < 0)
            best = best_any;
        if (best < 0) {
            u64map_at(&g->sets, h, 1, NULL); /* no dynamic label to replace */
            break;
        }
        lk_kv *k = &ls->kv[best];
        lk_name *e = guard_name(g, ls->sc.data + k->noff, k->nlen);
        if (e && e->overflow++ == 0)
            wlog_warn("out_loki", "%s: more than %zu label sets: label '%s' replaced by \"%s\" for new streams "
                      "(weir_loki_label_overflow_total)", id, g->max_sets, e->name, g->overflow_value);
        g->overflow_total++;
        replaced = 1;
        size_t voff = ls->sc.len;
        if (rec_add(&ls->sc, g->overflow_value, ov_len))
            break; /* out of memory: the set as it is (h is its hash) */
        k->voff = (uint32_t)voff;
        k->vlen = (uint32_t)ov_len;
        k->dyn = 0;
        h = lk_labels_hash(ls);
        if (u64map_at(&g->sets, h, 0, NULL))
            break;
    }
    pthread_mutex_unlock(&g->mu);
    return h;
}

void lk_guard_free(lk_guard *g)
{
    u64map_free(&g->sets);
    u64map_free(&g->pairs);
    u64map_free(&g->names);
    for (size_t i = 0; i < g->nnm; i++)
        free(g->nm[i].name);
    free(g->nm);
    pthread_mutex_destroy(&g->mu);
}
