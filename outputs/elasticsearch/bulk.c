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
#include <openssl/evp.h>
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

static int put_timestamp(wbuf *out, uint32_t sec, uint32_t nsec, int prec)
{
    char tb[64];
    size_t n = time_fmt(tb, sizeof tb, "%Y-%m-%dT%H:%M:%S", sec, 0, 1);
    if (prec > 0) {
        char frac[16];
        snprintf(frac, sizeof frac, "%09u", nsec);
        n += (size_t)snprintf(tb + n, sizeof tb - n, ".%.*s", prec, frac);
    }
    n += (size_t)snprintf(tb + n, sizeof tb - n, "Z");
    return wbuf_add(out, "\"@timestamp\":\"", 14) || wbuf_add(out, tb, n) || wbuf_addc(out, '"');
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

/* The document: injected keys first, then the record's own pairs (minus
 * the injected keys it also has: ES refuses duplicate keys). */
static int put_doc(const out_es *c, wbuf *out, wbuf *scratch, const entry *e, uint32_t sec, uint32_t nsec, int has_ts)
{
    const uint8_t *rec = e->record;
    size_t rlen = e->record_len;
    int inject_ts = c->add_ts && !has_ts && !(c->has_time_path && c->time_key_exclude_timestamp);
    size_t vlen;
    int drop_tag = c->include_tag_key && rec_get(rec, rlen, c->tag_key, strlen(c->tag_key), &vlen);
    if (drop_tag) {
        rec_kv d = {.key = c->tag_key, .key_len = strlen(c->tag_key)};
        scratch->len = 0;
        if (rec_rewrite_n(scratch, rec, rlen, &d, 1, NULL, 0) != 0)
            return -1;
        rec = scratch->data;
        rlen = scratch->len;
    }
    if (!inject_ts && !c->include_tag_key) {
        const uint8_t *q = rec;
        return jw_value(out, &q, rec + rlen) || wbuf_addc(out, '\n');
    }
    if (wbuf_addc(out, '{'))
        return -1;
    int first = 1;
    if (inject_ts) {
        if (put_timestamp(out, sec, nsec, (int)c->time_precision))
            return -1;
        first = 0;
    }
    if (c->include_tag_key) {
        if ((!first && wbuf_addc(out, ',')) || jw_string(out, (const uint8_t *)c->tag_key, strlen(c->tag_key)) ||
            wbuf_addc(out, ':') || jw_string(out, (const uint8_t *)e->tag, e->tag_len))
            return -1;
    }
    size_t at = out->len;
    const uint8_t *q = rec;
    if (jw_value(out, &q, rec + rlen))
        return -1;
    if (out->len - at == 2 && out->data[at] == '{' && out->data[at + 1] == '}') {
        out->len = at; /* empty record */
        return wbuf_add(out, "}\n", 2);
    }
    if (out->data[at] != '{')
        return -1; /* not a map */
    out->data[at] = ',';
    return wbuf_addc(out, '\n');
}

/* The action line. -1 with err when the record cannot be addressed. */
static int put_action(const out_es *c, wbuf *out, wbuf *idx, const entry *e, uint32_t sec, char *err, size_t errlen)
{
    static const char *const ops[] = {"{\"index\":{\"_index\":", "{\"create\":{\"_index\":"};
    idx->len = 0;
    if (es_index_expand(&c->index, idx, e, sec, c->utc_index, err, errlen) != 0)
        return -1;
    if (idx->len == 0) {
        snprintf(err, errlen, "the index name is empty");
        return -1;
    }
    const char *op = ops[c->write_operation];
    if (wbuf_add(out, op, strlen(op)) || jw_string(out, idx->data, idx->len))
        return -1;
    if (c->generate_id) {
        if (put_gen_id(out, e))
            return -1;
    } else if (c->has_id_path) {
        size_t vlen;
        const uint8_t *v = rec_lookup(e->record, e->record_len, &c->id_path, &vlen);
        if (v && *v != 0xc0) {
            size_t at = idx->len;
            if (rec_value_text(idx, v, vlen) || wbuf_add(out, ",\"_id\":", 7) ||
                jw_string(out, idx->data + at, idx->len - at))
                return -1;
        }
    }
    return wbuf_add(out, "}}\n", 3);
}

uint32_t es_bulk_encode(const out_es *c, const batch *b, uint32_t nrec, es_buf *w, out_result *res, char *err,
                        size_t errlen)
{
    batch_iter it;
    entry e;
    uint32_t i = 0, nbad = 0;
    batch_iter_init(&it, b);
    for (; batch_iter_next(&it, &e) == 1 && i < nrec; i++) {
        uint32_t sec, nsec;
        int has_ts;
        es_record_time(c, &e, &sec, &nsec, &has_ts);
        size_t at = w->body.len;
        err[0] = 0;
        if (put_action(c, &w->body, &w->idx, &e, sec, err, errlen) != 0 ||
            put_doc(c, &w->body, &w->scratch, &e, sec, nsec, has_ts) != 0) {
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
