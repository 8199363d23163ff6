/*
 * outputs/loki/labels.c: label names (validation, sanitising), the <label>,
 * <structured_metadata> and extra_labels configuration, and the label set
 * of a record in its canonical forms (contracts in labels.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lib/json.h"
#include "lib/mp.h"
#include "outputs/loki/grow.h"
#include "outputs/loki/labels.h"

int lk_label_name_valid(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Loki's label names are [a-zA-Z_][a-zA-Z0-9_]*: anything else becomes '_'
 * (what the Fluentd plugin does to Kubernetes label names). */
size_t lk_label_name_sanitize(char *out, size_t cap, const uint8_t *s, size_t n)
{
    size_t j = 0;
    if (n && s[0] >= '0' && s[0] <= '9' && j + 1 < cap)
        out[j++] = '_';
    for (size_t i = 0; i < n && j + 1 < cap; i++) {
        uint8_t ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
        out[j++] = ok ? (char)ch : '_';
    }
    out[j] = 0;
    return j;
}

/* <label> / <structured_metadata>: "name accessor" or a bare "name" (the
 * top-level key of that name). Accessors: "$.a.b", "$['a']", or a bare key. */
int lk_fields_bind(conf_node *sec, lk_field **out, size_t *nout, int labels, conf_errors *errs)
{
    for (size_t i = 0; i < sec->nchildren; i++)
        conf_errors_add(errs, sec->children[i]->file, sec->children[i]->line, "<%s> takes no sub-section <%s>",
                        sec->name, sec->children[i]->name);
    if (sec->nchildren)
        return -1;
    lk_field *f = realloc(*out, (*nout + sec->nparams) * sizeof *f);
    if (!f)
        return -1;
    *out = f;
    for (size_t i = 0; i < sec->nparams; i++) {
        conf_param *p = &sec->params[i];
        p->used = 1;
        const char *acc = p->value && p->value[0] ? p->value : p->key;
        if (labels && !lk_label_name_valid(p->key)) {
            conf_errors_add(errs, p->file, p->line,
                            "invalid label name '%s' in <label>: Loki label names are [a-zA-Z_][a-zA-Z0-9_]*", p->key);
            return -1;
        }
        char err[256];
        lk_field *x = &f[*nout];
        memset(x, 0, sizeof *x);
        if (rec_path_compile(&x->path, acc, err, sizeof err)) {
            conf_errors_add(errs, p->file, p->line, "invalid record accessor '%s' for '%s' in <%s>: %s", acc, p->key,
                            sec->name, err);
            return -1;
        }
        x->name = strdup(p->key);
        (*nout)++;
    }
    return 0;
}

int lk_extra_labels_set(lk_label_conf *lc, const conf_hash *h, conf_node *n, conf_errors *errs)
{
    for (size_t i = 0; i < h->n; i++) {
        if (!lk_label_name_valid(h->kv[i].k)) {
            conf_error_at(errs, n, "extra_labels", "invalid label name '%s' in extra_labels", h->kv[i].k);
            return -1;
        }
    }
    lc->extra = h;
    return 0;
}

void lk_fields_free(lk_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i].name);
        rec_path_free(&f[i].path);
    }
    free(f);
}

void lk_label_conf_free(lk_label_conf *lc)
{
    lk_fields_free(lc->labels, lc->nlabels);
    if (lc->extract_kubernetes_labels)
        rec_path_free(&lc->kube_labels);
}

/* ------------------------------------------------------------ label sets -- */

int lk_labels_add(lk_labels *ls, const char *name, size_t nlen, const void *val, size_t vlen, int dyn)
{
    if (LK_GROW(ls->kv, ls->nkv, ls->cap_kv))
        return -1;
    lk_kv *k = &ls->kv[ls->nkv];
    k->noff = (uint32_t)ls->sc.len;
    k->nlen = (uint32_t)nlen;
    if (rec_add(&ls->sc, name, nlen))
        return -1;
    k->voff = (uint32_t)ls->sc.len;
    k->vlen = (uint32_t)vlen;
    if (rec_add(&ls->sc, val, vlen))
        return -1;
    k->dyn = (uint8_t)dyn;
    k->seq = (uint32_t)ls->nkv;
    ls->nkv++;
    return 0;
}

/* A record value as a label value (Ruby to_s); empty/absent: not added. */
int lk_labels_add_value(lk_labels *ls, const char *name, size_t nlen, const uint8_t *v, size_t vlen)
{
    size_t mark = ls->sc.len;
    if (rec_add(&ls->sc, name, nlen))
        return -1;
    size_t voff = ls->sc.len;
    if (rec_value_to_s(&ls->sc, v, vlen))
        return -1;
    size_t n = ls->sc.len - voff;
    if (n == 0) {
        ls->sc.len = mark;
        return 0;
    }
    if (LK_GROW(ls->kv, ls->nkv, ls->cap_kv))
        return -1;
    ls->kv[ls->nkv] = (lk_kv){.noff = (uint32_t)mark, .nlen = (uint32_t)nlen, .voff = (uint32_t)voff,
                              .vlen = (uint32_t)n, .seq = (uint32_t)ls->nkv, .dyn = 1};
    ls->nkv++;
    return 0;
}

static int kv_cmp(const void *a, const void *b, void *arg)
{
    const uint8_t *base = arg;
    const lk_kv *x = a, *y = b;
    size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
    int c = memcmp(base + x->noff, base + y->noff, n);
    if (c)
        return c;
    if (x->nlen != y->nlen)
        return x->nlen < y->nlen ? -1 : 1;
    /* same name: keep insertion order (the last one wins below) */
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sort by name (stable), keep the last of equal names. An insertion sort:
 * a stream has a handful of labels (Loki's default cap is 15), already in
 * order when they come from the same config, and qsort_r's call per
 * comparison and temporary buffer cost more per record than the sorting. */
void lk_labels_normalize(lk_labels *ls)
{
    for (size_t i = 1; i < ls->nkv; i++) {
        lk_kv x = ls->kv[i];
        size_t j = i;
        for (; j > 0 && kv_cmp(&ls->kv[j - 1], &x, ls->sc.data) > 0; j--)
            ls->kv[j] = ls->kv[j - 1];
        ls->kv[j] = x;
    }
    size_t j = 0;
    for (size_t i = 0; i < ls->nkv; i++) {
        if (i + 1 < ls->nkv && ls->kv[i].nlen == ls->kv[i + 1].nlen &&
            !memcmp(ls->sc.data + ls->kv[i].noff, ls->sc.data + ls->kv[i + 1].noff, ls->kv[i].nlen))
            continue;
        ls->kv[j++] = ls->kv[i];
    }
    ls->nkv = j;
}

/* Go's strconv.Quote for the bytes we produce (what Loki prints in errors). */
static int quote_go(wbuf *o, const uint8_t *s, size_t n)
{
    if (wbuf_addc(o, '"'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = s[i];
        const char *esc = NULL;
        char hex[5];
        switch (ch) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\a': esc = "\\a"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\v': esc = "\\v"; break;
        default:
            if (ch < 0x20 || ch == 0x7f) {
                snprintf(hex, sizeof hex, "\\x%02x", ch);
                esc = hex;
            }
        }
        if (esc ? wbuf_add(o, esc, strlen(esc)) : wbuf_addc(o, ch))
            return -1;
    }
    return wbuf_addc(o, '"');
}

/* Canonical label text of ls->kv (sorted) appended to o. */
int lk_labels_text(const lk_labels *ls, wbuf *o)
{
    if (wbuf_addc(o, '{'))
        return -1;
    for (size_t i = 0; i < ls->nkv; i++) {
        if (i && wbuf_add(o, ", ", 2))
            return -1;
        if (wbuf_add(o, ls->sc.data + ls->kv[i].noff, ls->kv[i].nlen) || wbuf_addc(o, '=') ||
            quote_go(o, ls->sc.data + ls->kv[i].voff, ls->kv[i].vlen))
            return -1;
    }
    return wbuf_addc(o, '}');
}

int lk_labels_json(const lk_labels *ls, wbuf *o)
{
    if (wbuf_addc(o, '{'))
        return -1;
    for (size_t i = 0; i < ls->nkv; i++) {
        if ((i && wbuf_addc(o, ',')) || jw_string(o, ls->sc.data + ls->kv[i].noff, ls->kv[i].nlen) ||
            wbuf_addc(o, ':') || jw_string(o, ls->sc.data + ls->kv[i].voff, ls->kv[i].vlen))
            return -1;
    }
    return wbuf_addc(o, '}');
}

uint64_t lk_labels_hash(const lk_labels *ls)
{
    uint64_t h = LK_FNV0;
    for (size_t i = 0; i < ls->nkv; i++) {
        h = lk_fnv(h, ls->sc.data + ls->kv[i].noff, ls->kv[i].nlen);
        h = lk_fnv(h, "\x01", 1);
        h = lk_fnv(h, ls->sc.data + ls->kv[i].voff, ls->kv[i].vlen);
        h = lk_fnv(h, "\x02", 1);
    }
    return h;
}

int lk_labels_build(const lk_label_conf *lc, lk_labels *ls, const entry *e, int thread)
{
    ls->nkv = 0;
    ls->sc.len = 0;
    for (size_t i = 0; lc->extra && i < lc->extra->n; i++) {
        const conf_kv *kv = &lc->extra->kv[i];
        if (lk_labels_add(ls, kv->k, strlen(kv->k), kv->v, strlen(kv->v), 0))
            return -1;
    }
    if (lc->extract_kubernetes_labels) {
        size_t vl;
        const uint8_t *v = rec_lookup(e->record, e->record_len, &lc->kube_labels, &vl);
        mp_obj m;
        const uint8_t *p = v, *end = v ? v + vl : NULL;
        if (v && mp_read(&p, end, &m) == MP_OK && m.type == MP_MAP) {
            for (uint32_t i = 0; i < m.len; i++) {
                const uint8_t *ks;
                uint32_t kn;
                if (rec_read_str(&p, end, &ks, &kn) != 1)
                    return -1;
                const uint8_t *vs = p;
                if (rec_skip(&p, end))
                    return -1;
                char nm[256];
                size_t nl = lk_label_name_sanitize(nm, sizeof nm, ks, kn);
                if (nl && lk_labels_add_value(ls, nm, nl, vs, (size_t)(p - vs)))
                    return -1;
            }
        }
    }
    for (size_t i = 0; i < lc->nlabels; i++) {
        size_t vl;
        const uint8_t *v = rec_lookup(e->record, e->record_len, &lc->labels[i].path, &vl);
        if (v && lk_labels_add_value(ls, lc->labels[i].name, strlen(lc->labels[i].name), v, vl))
            return -1;
    }
    if (lc->include_thread_label) {
        char t[32];
        int n = snprintf(t, sizeof t, "flush_thread_%d", thread);
        if (lk_labels_add(ls, "fluentd_thread", 14, t, (size_t)n, 0))
            return -1;
    }
    if (ls->nkv == 0 && lk_labels_add(ls, "job", 3, "weir", 4, 0)) /* Loki needs at least one label */
        return -1;
    lk_labels_normalize(ls);
    return 0;
}

void lk_labels_free(lk_labels *ls)
{
    wbuf_free(&ls->sc);
    free(ls->kv);
}
