/*
 * outputs/loki/encode.c: a record's Loki entry (line formats, structured
 * metadata) and the push bodies (contracts in encode.h).
 *
 * Protobuf (logproto.PushRequest, as Promtail sends it):
 *   PushRequest      { repeated StreamAdapter streams = 1; }
 *   StreamAdapter    { string labels = 1; repeated EntryAdapter entries = 2; }
 *   EntryAdapter     { Timestamp timestamp = 1; string line = 2;
 *                      repeated LabelPairAdapter structuredMetadata = 3; }
 *   Timestamp        { int64 seconds = 1; int32 nanos = 2; }
 *   LabelPairAdapter { string name = 1; string value = 2; }
 * Sizes are computed first, so each message is written once, in place.
 * JSON: {"streams":[{"stream":{labels},"values":[["<ns>","line",{meta}]]}]}.
 */
#include <snappy-c.h>
#include <stdio.h>
#include <string.h>

#include "lib/compress.h"
#include "lib/json.h"
#include "lib/mp.h"
#include "outputs/loki/encode.h"

/* ------------------------------------------------------------ the entry -- */

/* Ruby-like key=value line of a map (the Fluentd plugin's key_value format). */
static int line_key_value(wbuf *out, wbuf *tmp, const uint8_t *rec, size_t len)
{
    const uint8_t *p = rec, *end = rec + len;
    mp_obj m;
    if (mp_read(&p, end, &m) != MP_OK || m.type != MP_MAP)
        return -1;
    for (uint32_t i = 0; i < m.len; i++) {
        const uint8_t *ks = p;
        if (rec_skip(&p, end))
            return -1;
        const uint8_t *vs = p;
        if (rec_skip(&p, end))
            return -1;
        if (i && wbuf_addc(out, ' '))
            return -1;
        tmp->len = 0;
        if (rec_value_to_s(tmp, ks, (size_t)(vs - ks)) || rec_add(out, tmp->data, tmp->len) || wbuf_addc(out, '='))
            return -1;
        tmp->len = 0;
        if (rec_value_to_s(tmp, vs, (size_t)(p - vs)))
            return -1;
        int quote = tmp->len && (memchr(tmp->data, ' ', tmp->len) || memchr(tmp->data, '=', tmp->len));
        if (quote && wbuf_addc(out, '"'))
            return -1;
        for (size_t j = 0; j < tmp->len; j++) {
            uint8_t ch = tmp->data[j];
            if ((ch == '"' || ch == '\\') && wbuf_addc(out, '\\'))
                return -1;
            if (wbuf_addc(out, ch))
                return -1;
        }
        if (quote && wbuf_addc(out, '"'))
            return -1;
    }
    return 0;
}

int lk_entry_line(const lk_entry_conf *ec, lk_req *r, const entry *e, lk_rec *lr)
{
    const uint8_t *rec = e->record;
    size_t len = e->record_len;
    if (ec->nstrip) {
        r->sc2.len = 0;
        if (rec_delete(&r->sc2, rec, len, ec->strip, ec->nstrip) < 0)
            return -1;
        rec = r->sc2.data;
        len = r->sc2.len;
    }
    lr->line_off = r->lines.len;
    const uint8_t *p = rec, *end = rec + len;
    mp_obj m;
    const uint8_t *after = p;
    if (mp_read(&after, end, &m) != MP_OK || m.type != MP_MAP)
        return -1;
    int rc;
    if (ec->drop_single_key && m.len == 1) {
        const uint8_t *v = after;
        if (rec_skip(&v, end))
            return -1;
        rc = rec_value_to_s(&r->lines, v, (size_t)(end - v));
    } else if (ec->line_format == LK_JSON) {
        rc = jw_value(&r->lines, &p, end);
    } else {
        wbuf tmp = {0};
        rc = line_key_value(&r->lines, &tmp, rec, len);
        wbuf_free(&tmp);
    }
    if (rc)
        return -1;
    lr->line_len = (uint32_t)(r->lines.len - lr->line_off);
    return 0;
}

/* protobuf helpers */
static size_t pb_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}
static int pb_varint(wbuf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    return wbuf_add(b, t, n);
}
static int pb_bytes(wbuf *b, int field, const void *p, size_t n)
{
    return wbuf_addc(b, (uint8_t)(field << 3 | 2)) || pb_varint(b, n) || rec_add(b, p, n);
}
static size_t pb_bytes_len(size_t n) { return 1 + pb_varint_len(n) + n; }

/* Structured metadata of one record: protobuf LabelPairAdapter fields (3) or
 * a JSON object. */
int lk_entry_meta(const lk_entry_conf *ec, lk_req *r, const entry *e, lk_rec *lr)
{
    lr->sm_off = r->sm.len;
    lr->sm_len = 0;
    int n = 0;
    for (size_t i = 0; i < ec->nmeta; i++) {
        size_t vl;
        const uint8_t *v = rec_lookup(e->record, e->record_len, &ec->meta[i].path, &vl);
        if (!v)
            continue;
        r->sc2.len = 0;
        if (rec_value_to_s(&r->sc2, v, vl))
            return -1;
        if (!r->sc2.len)
            continue;
        const char *nm = ec->meta[i].name;
        size_t nl = strlen(nm);
        if (ec->encoding == LK_PROTOBUF) {
            size_t inner = pb_bytes_len(nl) + pb_bytes_len(r->sc2.len);
            if (wbuf_addc(&r->sm, 3 << 3 | 2) || pb_varint(&r->sm, inner) || pb_bytes(&r->sm, 1, nm, nl) ||
                pb_bytes(&r->sm, 2, r->sc2.data, r->sc2.len))
                return -1;
        } else {
            if (wbuf_addc(&r->sm, n ? ',' : '{') || jw_string(&r->sm, (const uint8_t *)nm, nl) ||
                wbuf_addc(&r->sm, ':') || jw_string(&r->sm, r->sc2.data, r->sc2.len))
                return -1;
        }
        n++;
    }
    if (n && ec->encoding == LK_JSON_BODY && wbuf_addc(&r->sm, '}'))
        return -1;
    lr->sm_len = (uint32_t)(r->sm.len - lr->sm_off);
    return 0;
}

/* ---------------------------------------------------------------- bodies -- */

static size_t ts_len(const lk_rec *x)
{
    return 1 + pb_varint_len(x->sec) + (x->nsec ? 1 + pb_varint_len(x->nsec) : 0);
}

/* Snappy's block format holding n bytes as one literal: the uncompressed
 * length (varint), then a literal tag (60..63 for a length of 1..4 bytes,
 * little-endian, minus one; below 61 bytes the length sits in the tag). */
static int snappy_literal_header(wbuf *b, size_t n)
{
    if (pb_varint(b, n))
        return -1;
    if (!n)
        return 0;
    uint8_t t[5];
    size_t m = n - 1, k = 0;
    if (m < 60)
        return wbuf_addc(b, (uint8_t)(m << 2));
    while (m) {
        t[1 + k++] = (uint8_t)m;
        m >>= 8;
    }
    t[0] = (uint8_t)((59 + k) << 2);
    return wbuf_add(b, t, 1 + k);
}

/* Protobuf PushRequest of recs[from, to) (one tenant, sorted), snappy'd into
 * out (compress), or framed as one snappy literal in out. */
int lk_body_protobuf(lk_req *r, size_t from, size_t to, int compress, wbuf *raw, wbuf *out, size_t *raw_len)
{
    uint64_t total = 0;
    for (size_t i = from; i < to;) {
        lk_stream *s = &r->streams[r->recs[i].stream];
        uint64_t ssz = pb_bytes_len(s->lab_len);
        size_t j = i;
        for (; j < to && r->recs[j].stream == r->recs[i].stream; j++) {
            lk_rec *x = &r->recs[j];
            size_t tl = ts_len(x);
            x->esize = (uint32_t)(pb_bytes_len(tl) + pb_bytes_len(x->line_len) + x->sm_len);
            ssz += pb_bytes_len(x->esize);
        }
        s->size = ssz;
        total += pb_bytes_len(ssz);
        i = j;
    }
    *raw_len = total;
    wbuf *pb = raw;
    out->len = 0;
    raw->len = 0;
    if (!compress) {
        if (snappy_literal_header(out, total))
            return -1;
        pb = out;
    }
    if (wbuf_grow(pb, total))
        return -1;
    size_t start = pb->len;
    for (size_t i = from; i < to;) {
        lk_stream *s = &r->streams[r->recs[i].stream];
        if (wbuf_addc(pb, 1 << 3 | 2) || pb_varint(pb, s->size) ||
            pb_bytes(pb, 1, r->text.data + s->lab_off, s->lab_len))
            return -1;
        size_t j = i;
        for (; j < to && r->recs[j].stream == r->recs[i].stream; j++) {
            lk_rec *x = &r->recs[j];
            if (wbuf_addc(pb, 2 << 3 | 2) || pb_varint(pb, x->esize))
                return -1;
            if (wbuf_addc(pb, 1 << 3 | 2) || pb_varint(pb, ts_len(x)) || wbuf_addc(pb, 1 << 3) ||
                pb_varint(pb, x->sec))
                return -1;
            if (x->nsec && (wbuf_addc(pb, 2 << 3) || pb_varint(pb, x->nsec)))
                return -1;
            if (pb_bytes(pb, 2, r->lines.data + x->line_off, x->line_len) ||
                rec_add(pb, r->sm.data + x->sm_off, x->sm_len))
                return -1;
        }
        i = j;
    }
    if (pb->len - start != total) /* the sizes computed above are wrong: a bug, never send it */
        return -1;
    if (!compress)
        return 0;
    size_t cap = snappy_max_compressed_length(raw->len);
    if (wbuf_grow(out, cap))
        return -1;
    size_t olen = cap;
    if (snappy_compress((const char *)raw->data, raw->len, (char *)out->data, &olen) != SNAPPY_OK)
        return -1;
    out->len = olen;
    return 0;
}

/* gzip (one member) of raw into out (replacing its content): lib/compress. */
int lk_gzip_into(const wbuf *raw, wbuf *out, int level)
{
    out->len = 0;
    return gz_compress(out, raw->data, raw->len, level);
}

int lk_body_json(lk_req *r, size_t from, size_t to, wbuf *out)
{
    out->len = 0;
    if (wbuf_add(out, "{\"streams\":[", 12))
        return -1;
    for (size_t i = from; i < to;) {
        lk_stream *s = &r->streams[r->recs[i].stream];
        if ((i > from && wbuf_addc(out, ',')) || wbuf_add(out, "{\"stream\":", 10) ||
            wbuf_add(out, r->text.data + s->json_off, s->json_len) || wbuf_add(out, ",\"values\":[", 11))
            return -1;
        size_t j = i;
        for (; j < to && r->recs[j].stream == r->recs[i].stream; j++) {
            lk_rec *x = &r->recs[j];
            char ts[40];
            int n = snprintf(ts, sizeof ts, "%s[\"%u%09u\",", j > i ? "," : "", x->sec, x->nsec);
            if (wbuf_add(out, ts, (size_t)n) ||
                jw_string(out, r->lines.data + x->line_off, x->line_len))
                return -1;
            if (x->sm_len && (wbuf_addc(out, ',') || wbuf_add(out, r->sm.data + x->sm_off, x->sm_len)))
                return -1;
            if (wbuf_addc(out, ']'))
                return -1;
        }
        if (wbuf_add(out, "]}", 2))
            return -1;
        i = j;
    }
    return wbuf_add(out, "]}", 2);
}

