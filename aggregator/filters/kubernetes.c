/*
 * aggregator/filters/kubernetes.c: weir's own kubernetes filter (no API
 * server calls: it works with what Fluent Bit's kubernetes filter already
 * added, or with what the tag says).
 *
 *   - the record has a `kubernetes` map: kept as it is; with `flatten true`
 *     it is replaced by top-level keys "kubernetes.namespace_name",
 *     "kubernetes.labels.app", ... (nested maps flattened, separator
 *     `flatten_separator`, default ".").
 *   - no `kubernetes` map: derived from a tail-style tag
 *     "kube.var.log.containers.<pod>_<namespace>_<container>-<id>.log" (any
 *     prefix; the part after the last "containers." or else after the last
 *     '.' before the first '_') as {pod_name, namespace_name, container_name,
 *     docker_id}; `tag_regex` (named captures, matched against the whole tag)
 *     replaces that rule. A tag that does not match leaves the record alone.
 *   - `cluster_name X` adds "cluster": X (key `cluster_key`) to the
 *     kubernetes map (or "kubernetes.cluster" when flattened), unless the map
 *     already has that key.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/rx.h"
#include "aggregator/filter.h"
#include "aggregator/record.h"

typedef struct k8s_ctx {
    int flatten;
    char *sep;
    char *tag_regex;
    char *cluster_name;
    char *cluster_key;
    /* compiled */
    rx re;
    rx_name *names;
    size_t nnames;
    size_t sep_len, cn_len, ck_len;
} k8s_ctx;

static const conf_spec k8s_spec[] = {
    {"flatten", CONF_BOOL, "false", 0, offsetof(k8s_ctx, flatten), NULL,
     "replace the `kubernetes` map by top-level keys `kubernetes.namespace_name`, `kubernetes.labels.app`, ... "
     "(nested maps flattened, appended at the end)"},
    {"flatten_separator", CONF_STR, ".", 0, offsetof(k8s_ctx, sep), NULL, "between the parts of a flattened key"},
    {"tag_regex", CONF_STR, NULL, 0, offsetof(k8s_ctx, tag_regex), NULL,
     "named captures on the tag instead of the built-in rule"},
    {"cluster_name", CONF_STR, NULL, 0, offsetof(k8s_ctx, cluster_name), NULL,
     "adds the cluster name to the kubernetes map (not over an existing value)"},
    {"cluster_key", CONF_STR, "cluster", 0, offsetof(k8s_ctx, cluster_key), NULL, "its key"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int k8s_init(filter *f, conf_node *n, conf_errors *errs)
{
    k8s_ctx *c = f->ctx;
    c->sep_len = strlen(c->sep);
    c->cn_len = c->cluster_name ? strlen(c->cluster_name) : 0;
    c->ck_len = strlen(c->cluster_key);
    if (c->tag_regex) {
        char err[512];
        const conf_param *p = conf_get(n, "tag_regex");
        if (rx_compile(&c->re, c->tag_regex, RX_SLASHES, err, sizeof err) != 0) {
            conf_errors_add(errs, p->file, p->line, "%s", err);
            return -1;
        }
        c->names = rx_names(&c->re, &c->nnames);
        if (!c->nnames) {
            conf_errors_add(errs, p->file, p->line,
                            "tag_regex needs named captures such as (?<namespace_name>...) and (?<pod_name>...)");
            return -1;
        }
    }
    return 0;
}

static void k8s_exit(filter *f)
{
    k8s_ctx *c = f->ctx;
    rx_free(&c->re);
    free(c->names);
}

typedef struct span {
    const char *p;
    size_t n;
} span;

static const char *rmemmem(const char *h, size_t hn, const char *needle, size_t nn)
{
    if (hn < nn)
        return NULL;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (!memcmp(h + i, needle, nn))
            return h + i;
    return NULL;
}

/* <pod>_<namespace>_<container>-<id>.log at the end of the tag */
static int parse_tag(const char *tag, size_t n, span out[4])
{
    const char *rest = NULL;
    const char *c = rmemmem(tag, n, "containers.", 11);
    if (c && (c == tag || c[-1] == '.'))
        rest = c + 11;
    if (!rest) {
        const char *us = memchr(tag, '_', n);
        if (!us)
            return -1;
        rest = tag;
        for (const char *q = us; q > tag; q--)
            if (q[-1] == '.') {
                rest = q;
                break;
            }
    }
    const char *e = tag + n;
    if (e - rest < 4 || memcmp(e - 4, ".log", 4))
        return -1;
    e -= 4;
    const char *u1 = memchr(rest, '_', (size_t)(e - rest));
    if (!u1 || u1 == rest)
        return -1;
    const char *u2 = memchr(u1 + 1, '_', (size_t)(e - u1 - 1));
    if (!u2 || u2 == u1 + 1)
        return -1;
    const char *dash = NULL;
    for (const char *q = e; q > u2 + 1; q--)
        if (q[-1] == '-') {
            dash = q - 1;
            break;
        }
    if (!dash || dash == u2 + 1 || dash + 1 == e)
        return -1;
    for (const char *q = dash + 1; q < e; q++)
        if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9')))
            return -1;
    out[0] = (span){rest, (size_t)(u1 - rest)};
    out[1] = (span){u1 + 1, (size_t)(u2 - u1 - 1)};
    out[2] = (span){u2 + 1, (size_t)(dash - u2 - 1)};
    out[3] = (span){dash + 1, (size_t)(e - dash - 1)};
    return 0;
}

/* Append the flattened pairs of map m (prefix "kubernetes") to sc; returns the count or -1. */
static int64_t flatten_map(const k8s_ctx *c, wbuf *sc, char *prefix, size_t plen, size_t pcap, const uint8_t **p,
                           const uint8_t *end, int depth)
{
    mp_obj m;
    if (depth > 64 || mp_read(p, end, &m) != MP_OK || m.type != MP_MAP)
        return -1;
    int64_t count = 0;
    for (uint32_t i = 0; i < m.len; i++) {
        const uint8_t *k = *p, *ks;
        uint32_t kn;
        char kbuf[64];
        int r = rec_read_str(p, end, &ks, &kn);
        if (r < 0)
            return -1;
        if (r == 0) { /* non-string key: its text */
            wbuf t = {0};
            if (rec_skip(p, end) != 0 || rec_value_text(&t, k, (size_t)(*p - k))) {
                wbuf_free(&t);
                return -1;
            }
            kn = (uint32_t)(t.len < sizeof kbuf ? t.len : sizeof kbuf);
            memcpy(kbuf, t.data, kn);
            wbuf_free(&t);
            ks = (const uint8_t *)kbuf;
        }
        if (plen + c->sep_len + kn > pcap)
            return -1;
        memcpy(prefix + plen, c->sep, c->sep_len);
        memcpy(prefix + plen + c->sep_len, ks, kn);
        size_t nl = plen + c->sep_len + kn;
        if (**p >= 0x80 && (**p <= 0x8f || **p == 0xde || **p == 0xdf)) {
            int64_t sub = flatten_map(c, sc, prefix, nl, pcap, p, end, depth + 1);
            if (sub < 0)
                return -1;
            count += sub;
            continue;
        }
        const uint8_t *v = *p;
        if (rec_skip(p, end) != 0 || mpw_str(sc, prefix, nl) || rec_add(sc, v, (size_t)(*p - v)))
            return -1;
        count++;
    }
    return count;
}

static int map_has(const uint8_t *m, size_t len, const char *k, size_t kl)
{
    size_t vl;
    return rec_get(m, len, k, kl, &vl) != NULL;
}

/* Append key "kubernetes<sep><name>" (flattened) or "<name>" to sc. */
static int put_key(const k8s_ctx *c, wbuf *sc, const char *name, size_t nl)
{
    if (!c->flatten)
        return mpw_str(sc, name, nl);
    size_t off;
    return rec_str_open(sc, &off) || rec_add(sc, "kubernetes", 10) || rec_add(sc, c->sep, c->sep_len) ||
                   rec_add(sc, name, nl) || rec_str_close(sc, off)
               ? -1
               : 0;
}

/* The new pairs, as one map in scratch: the derived (or flattened) kubernetes
 * entries plus the cluster. Returns the pair count, 0 for "nothing to do", -1. */
static int64_t build(const k8s_ctx *c, filter_call *call, const uint8_t *km, size_t kl, int have_map, wbuf *sc)
{
    int64_t n = 0;
    if (have_map) {
        if (c->flatten) {
            /* a flattened key is at most every key of the map joined */
            char pstack[1024];
            size_t pcap = 10 + kl * (1 + c->sep_len) + 64;
            char *prefix = pcap <= sizeof pstack ? pstack : malloc(pcap);
            if (!prefix)
                return -1;
            memcpy(prefix, "kubernetes", 10);
            const uint8_t *p = km;
            n = flatten_map(c, sc, prefix, 10, pcap, &p, km + kl, 0);
            if (prefix != pstack)
                free(prefix);
            if (n < 0)
                return -1;
        }
        if (c->cluster_name && !map_has(km, kl, c->cluster_key, c->ck_len)) {
            if (put_key(c, sc, c->cluster_key, c->ck_len) || mpw_str(sc, c->cluster_name, c->cn_len))
                return -1;
            n++;
        }
        return n;
    }
    if (c->tag_regex) {
        const PCRE2_SIZE *ov;
        if (rx_exec(&c->re, (const uint8_t *)call->tag, call->tag_len, &ov) != 1)
            return 0;
        for (size_t i = 0; i < c->nnames; i++) {
            uint32_t g = c->names[i].group;
            if (ov[2 * g] == PCRE2_UNSET)
                continue;
            if (put_key(c, sc, c->names[i].name, c->names[i].len) ||
                mpw_str(sc, call->tag + ov[2 * g], ov[2 * g + 1] - ov[2 * g]))
                return -1;
            n++;
        }
        if (!n)
            return 0;
    } else {
        span s[4];
        static const char *const keys[] = {"pod_name", "namespace_name", "container_name", "docker_id"};
        if (parse_tag(call->tag, call->tag_len, s))
            return 0;
        for (int i = 0; i < 4; i++) {
            if (put_key(c, sc, keys[i], strlen(keys[i])) || mpw_str(sc, s[i].p, s[i].n))
                return -1;
            n++;
        }
    }
    if (c->cluster_name) {
        if (put_key(c, sc, c->cluster_key, c->ck_len) || mpw_str(sc, c->cluster_name, c->cn_len))
            return -1;
        n++;
    }
    return n;
}

static int k8s_filter(filter *f, filter_call *call, const uint8_t *rec, size_t len)
{
    const k8s_ctx *c = f->ctx;
    wbuf *sc = call->scratch, *out = call->out;
    size_t kl = 0;
    const uint8_t *km = rec_get(rec, len, "kubernetes", 10, &kl);
    int have_map = km && ((*km >= 0x80 && *km <= 0x8f) || *km == 0xde || *km == 0xdf);
    if (have_map && !c->flatten && (!c->cluster_name || map_has(km, kl, c->cluster_key, c->ck_len)))
        return FILTER_KEEP;
    sc->len = 0;
    rec_hdr h;
    snprintf(call->err, sizeof call->err, "kubernetes: out of memory or malformed record");
    if (rec_hdr_open(sc, &h, 1, 16))
        return FILTER_ERROR;
    int64_t n = build(c, call, km, kl, have_map, sc);
    if (n < 0 || rec_hdr_close(sc, &h, (uint32_t)n))
        return FILTER_ERROR;
    if (n == 0 && !(have_map && c->flatten)) {
        call->err[0] = 0;
        return FILTER_KEEP;
    }
    int rc;
    static const rec_kv drop = {"kubernetes", 10, NULL, 0};
    if (!c->flatten) {
        if (have_map) { /* the map plus the cluster, in place */
            size_t mo = sc->len;
            if (rec_reserve(sc, kl + (mo - h.off) + 16))
                return FILTER_ERROR;
            const uint8_t *pairs = sc->data + h.off;
            const uint8_t *pp = pairs;
            mp_obj m;
            if (mp_read(&pp, sc->data + mo, &m) != MP_OK)
                return FILTER_ERROR;
            const uint8_t *k;
            uint32_t kn;
            if (rec_read_str(&pp, sc->data + mo, &k, &kn) != 1)
                return FILTER_ERROR;
            rec_kv cl = {(const char *)k, kn, pp, (size_t)(sc->data + mo - pp)};
            size_t mapo = sc->len;
            if (rec_rewrite_n(sc, km, kl, NULL, 0, &cl, 1))
                return FILTER_ERROR;
            rec_kv kv = {"kubernetes", 10, sc->data + mapo, sc->len - mapo};
            rc = rec_rewrite_n(out, rec, len, NULL, 0, &kv, 1);
        } else {
            rec_kv kv = {"kubernetes", 10, sc->data + h.off, sc->len - h.off};
            rc = rec_rewrite_n(out, rec, len, NULL, 0, &kv, 1);
        }
    } else {
        const uint8_t *fm = sc->data + h.off, *fe = sc->data + sc->len, *p = fm;
        rec_kv kstack[64], *kv = kstack;
        if (n > 64 && !(kv = malloc((size_t)n * sizeof *kv)))
            return FILTER_ERROR;
        mp_obj mo;
        rc = mp_read(&p, fe, &mo) == MP_OK ? rec_read_pairs(&p, fe, kv, mo.len) : -1;
        if (rc == 0)
            rc = rec_rewrite_n(out, rec, len, have_map ? &drop : NULL, have_map ? 1 : 0, kv, (size_t)n);
        if (kv != kstack)
            free(kv);
    }
    if (rc)
        return FILTER_ERROR;
    call->err[0] = 0;
    return FILTER_MODIFY;
}

FILTER_PLUGIN(kubernetes, k8s);
