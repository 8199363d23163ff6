/*
 * aggregator/record_edit.c: rewriting records without decoding them: drop
 * and set keys (Ruby's Hash#merge order), keep only some keys, delete the
 * values at record accessor paths; see record.h.
 */
#include <stdlib.h>
#include <string.h>

#include "aggregator/record.h"
#include "aggregator/record_impl.h"

/* ---- rewriting ---------------------------------------------------------------------------- */

/* A cheap 64-bit signature of a key: most keys of a record are not in a
 * small set, and one AND tells so without comparing bytes. */
static inline uint64_t key_sig(const void *k, size_t n)
{
    const uint8_t *b = k;
    unsigned h = n ? (unsigned)(n * 7u + b[0] * 3u + b[n - 1]) : 0;
    return 1ull << (h & 63);
}

int rec_rewrite_n(wbuf *out, const uint8_t *rec, size_t len, const rec_kv *drop, size_t ndrop, const rec_kv *set,
                  size_t nset)
{
    const uint8_t *p = rec, *end = rec + len;
    size_t start = out->len;
    int64_t mlen = map_hdr(&p, end);
    if (mlen < 0)
        return -1;
    uint8_t found_stack[64];
    uint8_t *found = nset <= sizeof found_stack ? found_stack : calloc(nset, 1);
    if (!found)
        return -1;
    if (nset <= sizeof found_stack)
        memset(found, 0, nset);
    uint64_t dmask = 0, smask = 0;
    int set_dups = 0;
    for (size_t j = 0; j < ndrop; j++)
        dmask |= key_sig(drop[j].key, drop[j].key_len);
    for (size_t j = 0; j < nset; j++) {
        uint64_t sg = key_sig(set[j].key, set[j].key_len);
        set_dups |= (smask & sg) != 0; /* maybe the same key twice: check below */
        smask |= sg;
    }
    rec_hdr h;
    uint32_t count = 0;
    int rc = -1;
    if (rec_hdr_open(out, &h, 1, (uint32_t)mlen + (uint32_t)nset))
        goto done;
    const uint8_t *run = p; /* pending bytes to copy unchanged */
    for (int64_t i = 0; i < mlen; i++) {
        const uint8_t *pair = p, *k = NULL;
        uint32_t kn = 0;
        int r = rd_str(&p, end, &k, &kn);
        if (r < 0)
            goto done;
        if (r == 0 && skip_val(&p, end))
            goto done;
        const uint8_t *val = p;
        if (skip_val(&p, end))
            goto done;
        uint64_t sg = r ? key_sig(k, kn) : 0;
        if (!(sg & (dmask | smask))) {
            count++;
            continue;
        }
        int dropped = 0;
        if (sg & dmask) {
            for (size_t j = 0; j < ndrop; j++) {
                if (key_is(k, kn, drop[j].key, drop[j].key_len)) {
                    dropped = 1;
                    break;
                }
            }
        }
        size_t sj = nset;
        if (!dropped && (sg & smask)) {
            for (size_t j = 0; j < nset; j++) {
                if (key_is(k, kn, set[j].key, set[j].key_len)) {
                    sj = j;
                    break;
                }
            }
        }
        if (!dropped && sj == nset) {
            count++;
            continue;
        }
        /* flush the run before this pair */
        if (pair > run && rec_add(out, run, (size_t)(pair - run)))
            goto done;
        run = p;
        if (dropped)
            continue;
        /* Hash#merge: the key keeps its place, the value is the new one. A
         * key present twice in `set`: the last value wins. */
        size_t last = sj;
        if (set_dups)
            for (size_t j = sj + 1; j < nset; j++)
                if (key_is(k, kn, set[j].key, set[j].key_len))
                    last = j, found[j] = 1;
        found[sj] = 1;
        if (rec_add(out, pair, (size_t)(val - pair)) || rec_add(out, set[last].val, set[last].val_len))
            goto done;
        count++;
    }
    if (p > run && rec_add(out, run, (size_t)(p - run)))
        goto done;
    for (size_t j = 0; j < nset; j++) {
        if (found[j])
            continue;
        /* a new key given twice: first position, last value */
        size_t last = j;
        if (set_dups)
            for (size_t q = j + 1; q < nset; q++)
                if (!found[q] &&
                    key_is((const uint8_t *)set[q].key, (uint32_t)set[q].key_len, set[j].key, set[j].key_len))
                    last = q, found[q] = 1;
        if (mpw_str(out, set[j].key, set[j].key_len) || rec_add(out, set[last].val, set[last].val_len))
            goto done;
        count++;
    }
    rc = rec_hdr_close(out, &h, count);
done:
    if (found != found_stack)
        free(found);
    if (rc)
        out->len = start;
    return rc;
}

int rec_rewrite(wbuf *out, const uint8_t *rec, size_t len, const char *const *drop, const rec_kv *set, size_t nset)
{
    rec_kv dstack[16] = {{0}};
    size_t nd = 0;
    if (drop)
        while (drop[nd])
            nd++;
    rec_kv *d = nd <= 16 ? dstack : calloc(nd, sizeof *d);
    if (!d)
        return -1;
    for (size_t i = 0; i < nd; i++)
        d[i] = (rec_kv){drop[i], strlen(drop[i]), NULL, 0};
    int rc = rec_rewrite_n(out, rec, len, d, nd, set, nset);
    if (d != dstack)
        free(d);
    return rc;
}

int rec_keep(wbuf *out, const uint8_t *rec, size_t len, const char *const *keep)
{
    size_t start = out->len;
    rec_hdr h;
    uint32_t count = 0;
    mp_obj m;
    const uint8_t *p = rec;
    if (mp_read(&p, rec + len, &m) != MP_OK || m.type != MP_MAP)
        return -1;
    if (rec_hdr_open(out, &h, 1, 0))
        return -1;
    for (size_t i = 0; keep && keep[i]; i++) {
        size_t kl = strlen(keep[i]), vl;
        int dup = 0;
        for (size_t j = 0; j < i; j++)
            if (strcmp(keep[j], keep[i]) == 0)
                dup = 1;
        if (dup)
            continue;
        const uint8_t *v = rec_get(rec, len, keep[i], kl, &vl);
        if (!v)
            continue;
        if (mpw_str(out, keep[i], kl) || rec_add(out, v, vl)) {
            out->len = start;
            return -1;
        }
        count++;
    }
    if (rec_hdr_close(out, &h, count)) {
        out->len = start;
        return -1;
    }
    return 0;
}

/* ---- deleting nested values -------------------------------------------------------- */

typedef struct del_ctx {
    const rec_path *paths;
    size_t npaths;
    int removed;
} del_ctx;

static int del_value(del_ctx *c, wbuf *out, const uint8_t **p, const uint8_t *end, const uint64_t active,
                     size_t depth);

/* Does path i's step at `depth` select this map key / array index? */
static int step_key(const rec_path_step *st, const uint8_t *k, uint32_t kn)
{
    return st->key && st->key_len == kn && memcmp(st->key, k, kn) == 0;
}

static int del_value(del_ctx *c, wbuf *out, const uint8_t **p, const uint8_t *end, const uint64_t active,
                     size_t depth)
{
    const uint8_t *start = *p;
    mp_obj o;
    if (mp_read(p, end, &o) != MP_OK)
        return -1;
    if (depth >= REC_DEPTH)
        return -1;
    if (o.type != MP_MAP && o.type != MP_ARRAY) {
        return rec_add(out, start, (size_t)(*p - start));
    }
    int is_map = o.type == MP_MAP;
    rec_hdr h;
    uint32_t count = 0;
    if (rec_hdr_open(out, &h, is_map, o.len))
        return -1;
    for (uint32_t i = 0; i < o.len; i++) {
        const uint8_t *elem = *p, *k = NULL;
        uint32_t kn = 0;
        int has_key = 0;
        if (is_map) {
            int r = rd_str(p, end, &k, &kn);
            if (r < 0)
                return -1;
            if (r == 0 && skip_val(p, end))
                return -1;
            has_key = r;
        }
        const uint8_t *val = *p;
        uint64_t child = 0;
        int del = 0;
        for (size_t j = 0; j < c->npaths && j < 64; j++) {
            if (!(active >> j & 1))
                continue;
            const rec_path *pa = &c->paths[j];
            const rec_path_step *st = &pa->steps[depth];
            int hit;
            if (is_map) {
                hit = has_key && step_key(st, k, kn);
            } else {
                int64_t idx = (int32_t)st->index;
                if (idx < 0)
                    idx += o.len;
                hit = !st->key && idx == (int64_t)i;
            }
            if (!hit)
                continue;
            if (depth + 1 == pa->n)
                del = 1;
            else
                child |= 1ull << j;
        }
        if (del) {
            if (skip_val(p, end))
                return -1;
            c->removed = 1;
            continue;
        }
        count++;
        if (child) {
            if (is_map && rec_add(out, elem, (size_t)(val - elem)))
                return -1;
            if (del_value(c, out, p, end, child, depth + 1))
                return -1;
        } else {
            if (skip_val(p, end) || rec_add(out, elem, (size_t)(*p - elem)))
                return -1;
        }
    }
    return rec_hdr_close(out, &h, count);
}

static int del_pass(wbuf *dst, const uint8_t *src, size_t srclen, const rec_path *paths, size_t n, int *removed)
{
    del_ctx c = {paths, n, 0};
    uint64_t active = n >= 64 ? ~0ull : ((1ull << n) - 1);
    for (size_t j = 0; j < n; j++) /* paths of zero steps select nothing */
        if (paths[j].n == 0)
            active &= ~(1ull << j);
    const uint8_t *p = src, *q = src;
    mp_obj m;
    if (mp_read(&q, src + srclen, &m) != MP_OK || m.type != MP_MAP || del_value(&c, dst, &p, src + srclen, active, 0))
        return -1;
    *removed |= c.removed;
    return 0;
}

int rec_delete(wbuf *out, const uint8_t *rec, size_t len, const rec_path *paths, size_t npaths)
{
    size_t start = out->len;
    int removed = 0;
    if (npaths <= 64) {
        if (del_pass(out, rec, len, paths, npaths, &removed)) {
            out->len = start;
            return -1;
        }
        return removed;
    }
    /* more than 64 paths (one bit mask per level): several passes */
    wbuf a = {0}, b = {0};
    const uint8_t *src = rec;
    size_t srclen = len;
    int rc = 0;
    for (size_t base = 0; base < npaths && rc == 0; base += 64) {
        size_t n = npaths - base < 64 ? npaths - base : 64;
        int last = base + 64 >= npaths;
        wbuf *dst = last ? out : (src == a.data ? &b : &a);
        if (!last)
            dst->len = 0;
        rc = del_pass(dst, src, srclen, paths + base, n, &removed);
        if (!last) {
            src = dst->data;
            srclen = dst->len;
        }
    }
    wbuf_free(&a);
    wbuf_free(&b);
    if (rc) {
        out->len = start;
        return -1;
    }
    return removed;
}

/* ---- setting a nested value ---------------------------------------------------------- */

/* {steps[i]: {steps[i+1]: ... val}} */
static int set_build(wbuf *out, const rec_path *path, size_t i, const uint8_t *val, size_t vlen)
{
    for (; i < path->n; i++)
        if (mpw_map(out, 1) || mpw_str(out, path->steps[i].key, path->steps[i].key_len))
            return -1;
    return rec_add(out, val, vlen);
}

/* The value at *p (consumed) with path's steps from i on set to val. */
static int set_value(wbuf *out, const uint8_t **p, const uint8_t *end, const rec_path *path, size_t i,
                     const uint8_t *val, size_t vlen)
{
    const uint8_t *q = *p;
    int64_t n = map_hdr(&q, end);
    if (n < 0) {
        /* not a map (or the record's end): replaced by the nested maps */
        if (skip_val(p, end))
            return -1;
        return set_build(out, path, i, val, vlen) ? -1 : 0;
    }
    const rec_path_step *st = &path->steps[i];
    rec_hdr h;
    uint32_t count = 0;
    int done = 0;
    if (rec_hdr_open(out, &h, 1, (uint32_t)n + 1))
        return -1;
    for (int64_t j = 0; j < n; j++) {
        const uint8_t *k = q, *ks = NULL;
        uint32_t kn = 0;
        int isstr = rd_str(&q, end, &ks, &kn);
        if (isstr < 0 || (!isstr && skip_val(&q, end)))
            return -1;
        if (rec_add(out, k, (size_t)(q - k)))
            return -1;
        if (!done && isstr == 1 && kn == st->key_len && !memcmp(ks, st->key, kn)) {
            done = 1;
            if (i + 1 == path->n) {
                if (skip_val(&q, end) || rec_add(out, val, vlen))
                    return -1;
            } else if (set_value(out, &q, end, path, i + 1, val, vlen)) {
                return -1;
            }
        } else {
            const uint8_t *v = q;
            if (skip_val(&q, end) || rec_add(out, v, (size_t)(q - v)))
                return -1;
        }
        count++;
    }
    if (!done) {
        if (mpw_str(out, st->key, st->key_len) || set_build(out, path, i + 1, val, vlen))
            return -1;
        count++;
    }
    *p = q;
    return rec_hdr_close(out, &h, count);
}

int rec_set_path(wbuf *out, const uint8_t *rec, size_t len, const rec_path *path, const uint8_t *val, size_t vlen)
{
    size_t start = out->len;
    const uint8_t *p = rec, *end = rec + len, *q = rec;
    for (size_t i = 0; i < path->n; i++)
        if (!path->steps[i].key)
            return -1;
    if (!path->n || map_hdr(&q, end) < 0 || set_value(out, &p, end, path, 0, val, vlen) || p != end) {
        out->len = start;
        return -1;
    }
    return 0;
}
