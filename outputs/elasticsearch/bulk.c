/*
 * outputs/elasticsearch/bulk.c: the _bulk body (NDJSON) of one write.
 *
 * Two lines per record: the action line, {"index":{"_index":"NAME"}} or
 * {"create":{...}} (write_operation; data streams only take create), with
 * "_id" from id_key or generate_id; then the document. The document is the
 * record as JSON with @timestamp (logstash_format, include_timestamp, data
 * streams) and the tag (include_tag_key) put first. `generate_id` gives each
 * record a deterministic _id (SHA-1 of tag, time and record), the same on
 * every attempt (what a resent request then gets: response.c).
 *
 * The record's time (index name and @timestamp): time_key, or an existing
 * @timestamp when @timestamp is added, when present and parsable (a number
 * of seconds or a time string); else the event time. @timestamp is written
 * in UTC with time_precision fractional digits.
 *
 * Threads: reads the context only; the buffers belong to the write.
 */
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/array.h"
#include "lib/json.h"
#include "lib/mp.h"
#include "lib/timefmt.h"
#include "outputs/elasticsearch/bulk.h"
#include "outputs/elasticsearch/index.h"

int es_buf_init(es_buf *w, uint32_t nrec)
{
    w->recno = malloc(nrec * sizeof *w->recno);
    w->off = malloc((nrec + 1) * sizeof *w->off);
    w->st = calloc(nrec, 1);
    w->why = calloc(nrec, sizeof *w->why);
    return w->recno && w->off && w->st && w->why ? 0 : -1;
}

void es_buf_free(es_buf *w)
{
    ARRAY_FREE_ALL(w->why, w->nsent);
    free(w->st);
    free(w->off);
    free(w->recno);
    wbuf_free(&w->body);
    wbuf_free(&w->idx);
    wbuf_free(&w->scratch);
    wbuf_free(&w->flat);
    wbuf_free(&w->tdel);
    wbuf_free(&w->upd);
    wbuf_free(&w->inj);
    wbuf_free(&w->ix_tag);
    wbuf_free(&w->ix);
}

/* Time of the record for the index name and @timestamp: time_key or an
 * existing @timestamp when present and parsable, else the event time. */
void es_record_time(const out_es *c, const entry *e, uint32_t *sec, uint32_t *nsec, int *has_ts)
{
    *sec = e->sec;
    *nsec = e->nsec;
    size_t vlen;
    const uint8_t *v = NULL;
    *has_ts = rec_get(e->record, e->record_len, "@timestamp", 10, &vlen) != NULL;
    if (c->has_time_path)
        v = rec_lookup(e->record, e->record_len, &c->time_path, &vlen);
    else if (*has_ts && c->add_ts)
        v = rec_get(e->record, e->record_len, "@timestamp", 10, &vlen);
    if (!v)
        return;
    const uint8_t *p = v;
    mp_obj ob;
    if (mp_read(&p, v + vlen, &ob) != MP_OK)
        return;
    double d = -1;
    mp_number(&ob, &d);
    if (d >= 0 && d < 4294967296.0) {
        *sec = (uint32_t)d;
        *nsec = (uint32_t)((d - (double)*sec) * 1e9);
        return;
    }
    uint32_t s, ns;
    if (ob.type == MP_STR && tparse_text(&c->tp, (const char *)ob.ptr, ob.len, &s, &ns) == 0) {
        *sec = s;
        *nsec = ns;
    }
}

/* "@timestamp":"YYYY-MM-DDTHH:MM:SS[.fff...]Z": the date formatted once per UTC day (w's cache), the
 * time of day and the fraction's prec digits written directly. */
static int put_timestamp(wbuf *out, es_buf *w, uint32_t sec, uint32_t nsec, int prec)
{
    if (w->ts_key != (uint64_t)(sec / 86400u) + 1) {
        if (time_fmt(w->ts_text, sizeof w->ts_text, "%Y-%m-%dT", sec, 0, 1) != 11)
            return -1;
        w->ts_key = (uint64_t)(sec / 86400u) + 1;
    }
    uint32_t tod = sec % 86400u, hms[3] = {tod / 3600u, tod / 60u % 60u, tod % 60u};
    for (int i = 0; i < 3; i++) {
        w->ts_text[11 + 3 * i] = (char)('0' + hms[i] / 10);
        w->ts_text[12 + 3 * i] = (char)('0' + hms[i] % 10);
        if (i < 2)
            w->ts_text[13 + 3 * i] = ':';
    }
    char tb[48];
    memcpy(tb, "\"@timestamp\":\"", 14);
    memcpy(tb + 14, w->ts_text, 19);
    size_t n = 33;
    if (prec > 0) {
        if (prec > 9)
            prec = 9;
        char frac[9];
        uint32_t v = nsec % 1000000000u;
        for (int i = 8; i >= 0; i--) {
            frac[i] = (char)('0' + v % 10);
            v /= 10;
        }
        tb[n++] = '.';
        memcpy(tb + n, frac, (size_t)prec);
        n += (size_t)prec;
    }
    tb[n++] = 'Z';
    tb[n++] = '"';
    return wbuf_add(out, tb, n);
}

/* The deterministic _id: base64url(SHA-1(tag NUL sec nsec record-msgpack)). */
static int put_gen_id(wbuf *out, const entry *e)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    uint8_t t[9];
    t[0] = 0;
    for (int i = 0; i < 4; i++) {
        t[1 + i] = (uint8_t)(e->sec >> (24 - 8 * i));
        t[5 + i] = (uint8_t)(e->nsec >> (24 - 8 * i));
    }
    int ok = m && EVP_DigestInit_ex(m, EVP_sha1(), NULL) && EVP_DigestUpdate(m, e->tag, e->tag_len) &&
             EVP_DigestUpdate(m, t, sizeof t) && EVP_DigestUpdate(m, e->record, e->record_len) &&
             EVP_DigestFinal_ex(m, md, &mdlen);
    EVP_MD_CTX_free(m);
    if (!ok)
        return -1;
    char b64[64];
    int n = EVP_EncodeBlock((unsigned char *)b64, md, (int)mdlen);
    while (n > 0 && b64[n - 1] == '=')
        n--;
    for (int i = 0; i < n; i++)
        b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    return wbuf_add(out, ",\"_id\":\"", 8) || wbuf_add(out, b64, (size_t)n) || wbuf_addc(out, '"');
}

/* flatten_hashes: nested maps become top-level keys joined with the
 * separator ({"a":{"b":1}} -> {"a_b":1}); arrays and scalars stay values. */
static int flatten_into(wbuf *out, const uint8_t **p, const uint8_t *end, wbuf *prefix, const char *sep,
                        uint32_t *count)
{
    mp_obj m;
    if (mp_read(p, end, &m) != MP_OK || m.type != MP_MAP)
        return -1;
    size_t plen = prefix->len;
    for (uint32_t i = 0; i < m.len; i++) {
        mp_obj k;
        if (mp_read(p, end, &k) != MP_OK)
            return -1;
        prefix->len = plen;
        if (plen && wbuf_add(prefix, sep, strlen(sep)))
            return -1;
        if (k.type == MP_STR || k.type == MP_BIN) {
            if (rec_add(prefix, k.ptr, k.len))
                return -1;
        } else {
            char nb[32];
            int nl = k.type == MP_UINT ? snprintf(nb, sizeof nb, "%llu", (unsigned long long)k.v.u)
                     : k.type == MP_INT ? snprintf(nb, sizeof nb, "%lld", (long long)k.v.i)
                                        : -1;
            if (nl < 0 || wbuf_add(prefix, nb, (size_t)nl))
                return -1;
        }
        const uint8_t *v = *p;
        if (v < end && ((*v >= 0x80 && *v <= 0x8f) || *v == 0xde || *v == 0xdf)) {
            if (flatten_into(out, p, end, prefix, sep, count))
                return -1;
            continue;
        }
        if (rec_skip(p, end))
            return -1;
        size_t off;
        if (rec_str_open(out, &off) || rec_add(out, prefix->data, prefix->len) || rec_str_close(out, off) ||
            rec_add(out, v, (size_t)(*p - v)))
            return -1;
        (*count)++;
    }
    prefix->len = plen;
    return 0;
}

static int flatten(wbuf *out, const uint8_t *rec, size_t len, const char *sep)
{
    wbuf prefix = {0};
    rec_hdr h;
    uint32_t count = 0;
    const uint8_t *p = rec;
    out->len = 0;
    int rc = rec_hdr_open(out, &h, 1, 16) || flatten_into(out, &p, rec + len, &prefix, sep, &count) ||
             rec_hdr_close(out, &h, count);
    wbuf_free(&prefix);
    return rc ? -1 : 0;
}

/* The document: injected keys first, then the record's own pairs minus
 * `drop` (remove_keys; the injected keys it also has: ES refuses duplicate
 * keys). No trailing newline. */
/* The record's map as JSON, as jw_value writes it, setting *saw_ts when one of its
 * top-level keys is "@timestamp" (a str or bin key, as rec_get matches). */
static int put_map_ts(wbuf *out, const uint8_t *rec, size_t rlen, int *saw_ts)
{
    const uint8_t *p = rec, *end = rec + rlen;
    mp_obj m;
    if (mp_read(&p, end, &m) != MP_OK || m.type != MP_MAP) {
        p = rec;
        return jw_value(out, &p, end); /* not a map: whatever jw_value makes of it */
    }
    if (wbuf_addc(out, '{'))
        return -1;
    for (uint32_t i = 0; i < m.len; i++) {
        const uint8_t *k = p;
        mp_obj ko;
        if (mp_read(&k, end, &ko) == MP_OK && (ko.type == MP_STR || ko.type == MP_BIN) && ko.len == 10 &&
            memcmp(ko.ptr, "@timestamp", 10) == 0)
            *saw_ts = 1;
        if ((i && wbuf_addc(out, ',')) || jw_key(out, &p, end) || wbuf_addc(out, ':') ||
            jw_value_at(out, &p, end, 1))
            return -1;
    }
    return wbuf_addc(out, '}');
}

/* saw_ts: not NULL on the fast path of es_bulk_encode (no @timestamp looked up before, has_ts 0): set
 * when the record turns out to have one, and the document is then to be written again. */
static int put_doc(const out_es *c, wbuf *out, es_buf *w, const entry *e, uint32_t sec, uint32_t nsec, int has_ts,
                   const rec_kv *drop, size_t ndrop, const char *chunk_id, int *saw_ts)
{
    const uint8_t *rec = e->record;
    size_t rlen = e->record_len;
    int inject_ts = c->add_ts && !has_ts && !(c->has_time_path && c->time_key_exclude_timestamp);
    size_t vlen;
    rec_kv d[64];
    size_t nd = 0;
    for (size_t i = 0; i < ndrop && nd < 62; i++)
        d[nd++] = drop[i];
    if (c->include_tag_key && rec_get(rec, rlen, c->tag_key, strlen(c->tag_key), &vlen))
        d[nd++] = (rec_kv){.key = c->tag_key, .key_len = strlen(c->tag_key)};
    if (chunk_id && rec_get(rec, rlen, c->chunk_id_key, strlen(c->chunk_id_key), &vlen))
        d[nd++] = (rec_kv){.key = c->chunk_id_key, .key_len = strlen(c->chunk_id_key)};
    if (nd) {
        w->scratch.len = 0;
        if (rec_rewrite_n(&w->scratch, rec, rlen, d, nd, NULL, 0) != 0)
            return -1;
        rec = w->scratch.data;
        rlen = w->scratch.len;
    }
    if (!inject_ts && !c->include_tag_key && !chunk_id) {
        const uint8_t *q = rec;
        return jw_value(out, &q, rec + rlen);
    }
    if (wbuf_addc(out, '{'))
        return -1;
    int first = 1;
    if (inject_ts) {
        if (put_timestamp(out, w, sec, nsec, (int)c->time_precision))
            return -1;
        first = 0;
    }
    if (c->include_tag_key) {
        if ((!first && wbuf_addc(out, ',')) || jw_string(out, (const uint8_t *)c->tag_key, strlen(c->tag_key)) ||
            wbuf_addc(out, ':') || jw_string(out, (const uint8_t *)e->tag, e->tag_len))
            return -1;
        first = 0;
    }
    if (chunk_id) {
        if ((!first && wbuf_addc(out, ',')) ||
            jw_string(out, (const uint8_t *)c->chunk_id_key, strlen(c->chunk_id_key)) || wbuf_addc(out, ':') ||
            jw_string(out, (const uint8_t *)chunk_id, strlen(chunk_id)))
            return -1;
    }
    size_t at = out->len;
    const uint8_t *q = rec;
    if (saw_ts ? put_map_ts(out, rec, rlen, saw_ts) : jw_value(out, &q, rec + rlen))
        return -1;
    if (saw_ts && *saw_ts)
        return 0; /* written again by the caller */
    if (out->len - at == 2 && out->data[at] == '{' && out->data[at + 1] == '}') {
        out->len = at; /* empty record */
        return wbuf_addc(out, '}');
    }
    if (out->data[at] != '{')
        return -1; /* not a map */
    out->data[at] = ',';
    return 0;
}

/* One record's addressing, found before the document is written. */
typedef struct es_target {
    const uint8_t *index; /* target_index_key's value, lowercased (in w->idx), or NULL */
    size_t index_len;
} es_target;

/* A value of the record as an action-line field: ,"NAME":"text" (nothing when absent or nil). */
static int put_meta(wbuf *out, wbuf *tmp, const char *name, const uint8_t *v, size_t vlen)
{
    if (!v || *v == 0xc0)
        return 0;
    size_t at = tmp->len;
    int rc = rec_value_text(tmp, v, vlen) || wbuf_addc(out, ',') ||
             jw_string(out, (const uint8_t *)name, strlen(name)) || wbuf_addc(out, ':') ||
             jw_string(out, tmp->data + at, tmp->len - at);
    tmp->len = at;
    return rc;
}

/* The action line. e: the record as received (index placeholders); pe: the
 * record as prepared (flattened, without target_index_key: _id, routing).
 * -1 with err when the record cannot be addressed. */
static int put_action(const out_es *c, es_buf *w, wbuf *out, wbuf *idx, const entry *e, const entry *pe, const es_target *t,
                      uint32_t sec, char *err, size_t errlen)
{
    static const char *const ops[] = {"{\"index\":{\"_index\":", "{\"create\":{\"_index\":",
                                      "{\"update\":{\"_index\":", "{\"update\":{\"_index\":"};
    size_t ilen;
    const uint8_t *iname;
    if (t->index) {
        iname = t->index;
        ilen = t->index_len;
    } else if (!c->index.per_record) {
        /* the name depends on the time (and tag) only: expanded once per second (per UTC day for a name
         * like logs-%Y.%m.%d: records of a Kafka burst or a backlog are not in time order) and tag */
        uint64_t key = (c->index.day_only && c->utc_index ? sec / 86400u : sec) + 1;
        if (w->ix_key != key || w->ix_tag.len != e->tag_len ||
            memcmp(w->ix_tag.data, e->tag, e->tag_len) != 0) {
            w->ix_key = 0;
            w->ix.len = w->ix_tag.len = 0;
            if (es_index_expand(&c->index, &w->ix, e, sec, c->utc_index, err, errlen) != 0 ||
                wbuf_add(&w->ix_tag, e->tag, e->tag_len))
                return -1;
            w->ix_key = key;
        }
        iname = w->ix.data;
        ilen = w->ix.len;
    } else {
        idx->len = 0;
        if (es_index_expand(&c->index, idx, e, sec, c->utc_index, err, errlen) != 0)
            return -1;
        iname = idx->data;
        ilen = idx->len;
    }
    if (ilen == 0) {
        snprintf(err, errlen, "the index name is empty");
        return -1;
    }
    const char *op = ops[c->write_operation];
    if (wbuf_add(out, op, strlen(op)) || jw_string(out, iname, ilen))
        return -1;
    /* scratch text after the index name in idx */
    size_t keep = idx->len;
    int has_id = 0;
    if (c->generate_id) {
        if (put_gen_id(out, e))
            return -1;
        has_id = 1;
    } else if (c->has_id_path) {
        size_t vlen;
        const uint8_t *v = rec_lookup(pe->record, pe->record_len, &c->id_path, &vlen);
        if (v && *v != 0xc0) {
            if (put_meta(out, idx, "_id", v, vlen))
                return -1;
            has_id = 1;
        }
    }
    if (c->write_operation >= OP_UPDATE && !has_id) {
        snprintf(err, errlen, "write_operation %s needs an _id and the record has no value for id_key '%s'",
                 c->write_operation == OP_UPDATE ? "update" : "upsert", c->id_key ? c->id_key : "");
        return -1;
    }
    if (c->has_routing || c->has_parent) {
        /* routing_key's value, else (parent_key) the parent's id */
        size_t vlen = 0;
        const uint8_t *v = c->has_routing ? rec_lookup(pe->record, pe->record_len, &c->routing_path, &vlen) : NULL;
        if ((!v || *v == 0xc0) && c->has_parent)
            v = rec_lookup(pe->record, pe->record_len, &c->parent_path, &vlen);
        if (put_meta(out, idx, "routing", v, vlen))
            return -1;
    }
    if (c->pipeline && (wbuf_add(out, ",\"pipeline\":", 12) ||
                        jw_string(out, (const uint8_t *)c->pipeline, strlen(c->pipeline))))
        return -1;
    idx->len = keep;
    return wbuf_add(out, "}}\n", 3);
}

/* remove_keys_on_update_key: the record's list of keys to leave out of
 * "doc" (strings of an array), appended to d. */
static size_t keys_from_record(const entry *pe, const char *key, rec_kv *d, size_t cap)
{
    size_t vlen, n = 0;
    const uint8_t *v = rec_get(pe->record, pe->record_len, key, strlen(key), &vlen);
    if (!v)
        return 0;
    const uint8_t *p = v, *end = v + vlen;
    mp_obj a;
    if (mp_read(&p, end, &a) != MP_OK || a.type != MP_ARRAY)
        return 0;
    for (uint32_t i = 0; i < a.len && n < cap; i++) {
        mp_obj s;
        if (mp_read(&p, end, &s) != MP_OK)
            break;
        if (s.type == MP_STR)
            d[n++] = (rec_kv){.key = (const char *)s.ptr, .key_len = s.len};
        else if (s.type == MP_ARRAY || s.type == MP_MAP)
            break;
    }
    return n;
}

/* The document line: the document itself, or for update/upsert
 * {"doc":...} ({"doc":...,"doc_as_upsert":true}; with keys left out of the
 * update, {"doc":...,"upsert":<whole>}), or the document alone with
 * suppress_doc_wrap. */
static int put_body(const out_es *c, es_buf *w, const entry *pe, uint32_t sec, uint32_t nsec, int has_ts,
                    const char *chunk_id, int *saw_ts)
{
    wbuf *out = &w->body;
    rec_kv d[64];
    size_t nd = 0;
    for (size_t i = 0; i < c->nremove && nd < 31; i++)
        d[nd++] = c->remove[i];
    if (c->write_operation < OP_UPDATE)
        return put_doc(c, out, w, pe, sec, nsec, has_ts, d, nd, chunk_id, saw_ts) ||
               (!(saw_ts && *saw_ts) && wbuf_addc(out, '\n'));
    if (c->remove_keys_on_update_key)
        d[nd++] = (rec_kv){.key = c->remove_keys_on_update_key, .key_len = strlen(c->remove_keys_on_update_key)};
    size_t nbase = nd;
    for (size_t i = 0; i < c->nremove_upd && nd < 48; i++)
        d[nd++] = c->remove_upd[i];
    if (c->remove_keys_on_update_key)
        nd += keys_from_record(pe, c->remove_keys_on_update_key, d + nd, 60 - nd);
    if (c->suppress_doc_wrap)
        return put_doc(c, out, w, pe, sec, nsec, has_ts, d, nd, chunk_id, NULL) || wbuf_addc(out, '\n');
    if (wbuf_add(out, "{\"doc\":", 7) || put_doc(c, out, w, pe, sec, nsec, has_ts, d, nd, chunk_id, NULL))
        return -1;
    if (c->write_operation == OP_UPSERT) {
        if (nd == nbase) {
            if (wbuf_add(out, ",\"doc_as_upsert\":true", 21))
                return -1;
        } else if (wbuf_add(out, ",\"upsert\":", 10) ||
                   put_doc(c, out, w, pe, sec, nsec, has_ts, d, nbase, chunk_id, NULL)) {
            return -1;
        }
    }
    return wbuf_add(out, "}\n", 2);
}

/* Prepare a record: flatten_hashes, then target_index_key (its value names
 * the index and leaves the document). -1 with err. */
static int prepare(const out_es *c, es_buf *w, const entry *e, entry *pe, es_target *t, char *err, size_t errlen)
{
    *pe = *e;
    t->index = NULL;
    if (c->flatten_hashes) {
        if (flatten(&w->flat, e->record, e->record_len, c->flatten_hashes_separator) != 0) {
            snprintf(err, errlen, "cannot flatten the record (not a map)");
            return -1;
        }
        pe->record = w->flat.data;
        pe->record_len = w->flat.len;
    }
    if (c->has_target_index) {
        size_t vlen;
        const uint8_t *v = rec_lookup(pe->record, pe->record_len, &c->target_index_path, &vlen);
        if (v && *v != 0xc0 && *v != 0xc2) { /* nil and false: the configured index */
            w->idx.len = 0;
            if (rec_value_text(&w->idx, v, vlen))
                return -1;
            for (size_t i = 0; i < w->idx.len; i++)
                w->idx.data[i] = (uint8_t)tolower(w->idx.data[i]);
            w->tdel.len = 0;
            if (rec_delete(&w->tdel, pe->record, pe->record_len, &c->target_index_path, 1) < 0)
                return -1;
            pe->record = w->tdel.data;
            pe->record_len = w->tdel.len;
            t->index = w->idx.data;
            t->index_len = w->idx.len;
        }
    }
    return 0;
}

uint32_t es_bulk_encode(const out_es *c, const batch *b, uint32_t nrec, es_buf *w, out_result *res, char *err,
                        size_t errlen)
{
    batch_iter it;
    entry e, pe;
    es_target t;
    uint32_t i = 0, nbad = 0;
    const char *chunk_id = NULL;
    if (c->include_chunk_id) {
        unsigned char r[16];
        if (RAND_bytes(r, sizeof r) != 1)
            memset(r, 0, sizeof r);
        for (int k = 0; k < 16; k++)
            snprintf(w->chunk_id + 2 * k, 3, "%02x", r[k]);
        chunk_id = w->chunk_id;
    }
    /* the body is about 1.4 x the msgpack plus the action lines: sized once, not doubled up to it */
    if (b->nrecords && w->body.len == 0) {
        size_t mp = (size_t)((double)b->len * nrec / b->nrecords);
        (void)wbuf_grow(&w->body, mp + mp / 2 + (size_t)nrec * 80); /* a failure shows at the first add */
    }
    /* fast: @timestamp added and the time is the event time, unless the record has an @timestamp of its
     * own (found while its document is written, instead of by a lookup first) */
    int fast = c->add_ts && !c->has_time_path && c->write_operation < OP_UPDATE && c->nremove == 0 &&
               !c->include_tag_key && !chunk_id;
    batch_iter_init(&it, b);
    for (; batch_iter_next(&it, &e) == 1 && i < nrec; i++) {
        uint32_t sec, nsec;
        int has_ts;
        size_t at = w->body.len;
        err[0] = 0;
        if (c->inj.active) { /* the plugin injects first: everything below sees the keys */
            w->inj.len = 0;
            if (fmt_inject_mp(&c->inj, &w->inj, e.tag, e.tag_len, &e) == 0) {
                e.record = w->inj.data;
                e.record_len = w->inj.len;
            }
        }
        if (prepare(c, w, &e, &pe, &t, err, errlen) != 0) {
            if (!err[0])
                snprintf(err, errlen, "out of memory");
            out_result_mark(res, i, OUT_ERROR, err);
            nbad++;
            continue;
        }
        if (fast) {
            /* the record's time is the event time unless it has an @timestamp, which only the
             * document's own keys tell: written on that guess, again the slow way when wrong */
            int saw_ts = 0;
            if (put_action(c, w, &w->body, &w->scratch, &e, &pe, &t, pe.sec, err, errlen) == 0 &&
                put_body(c, w, &pe, pe.sec, pe.nsec, 0, chunk_id, &saw_ts) == 0 && !saw_ts) {
                w->off[w->nsent] = at;
                w->recno[w->nsent++] = i;
                continue;
            }
            w->body.len = at;
            err[0] = 0;
            if (saw_ts)
                fast = 0; /* records with @timestamp: likely the rest of the batch too */
        }
        es_record_time(c, &pe, &sec, &nsec, &has_ts);
        if (put_action(c, w, &w->body, &w->scratch, &e, &pe, &t, sec, err, errlen) != 0 ||
            put_body(c, w, &pe, sec, nsec, has_ts, chunk_id, NULL) != 0) {
            w->body.len = at;
            if (!err[0])
                snprintf(err, errlen, "cannot encode the record as JSON");
            out_result_mark(res, i, OUT_ERROR, err);
            nbad++;
            continue;
        }
        w->off[w->nsent] = at;
        w->recno[w->nsent++] = i;
    }
    w->off[w->nsent] = w->body.len;
    return nbad;
}
