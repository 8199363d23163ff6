/*
 * forward-protocol/fwd_decode.c: one forward request -> one batch.
 *
 * The fast path: entries that are already in weir's canonical form
 * ([fixext8-EventTime, map] or [[EventTime, map], map]) are not re-encoded;
 * consecutive canonical entries form a "run" copied with one memcpy. Only an
 * entry that needs work (integer/float time, source_*_key injection) or that
 * must be dropped (invalid event, group marker) breaks the run.
 */
#include "fwd_decode.h"
#include "fwd_decode_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/compress.h"
#include "lib/mp.h"

const char *fwd_type_name(mp_type t)
{
    static const char *const n[] = {"nil", "bool", "integer", "integer", "float", "string", "binary", "array", "map", "ext"};
    return n[t];
}

int fwd_flush_run(dctx *c)
{
    int rc = 0;
    if (c->run_start && c->run_end > c->run_start)
        rc = wbuf_add(c->out, c->run_start, (size_t)(c->run_end - c->run_start));
    c->run_start = c->run_end = NULL;
    return rc;
}

void fwd_note_invalid(dctx *c, const char *fmt, ...)
{
    if (c->r->invalid++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->r->err, sizeof c->r->err, fmt, ap);
        va_end(ap);
    }
}

/* Parse a time value.
 * Returns 0: sec/nsec set (*canonical when it was the fixext8 form);
 *         1: nil or a time whose whole seconds are 0 (Fluentd's `time.to_i
 *            == 0`): the caller uses the time of receipt, as Fluentd does;
 *        -3/-4: not a valid time (*why says what it is);
 *        MP_SHORT/MP_BAD: truncated / not msgpack.
 * Every msgpack encoding of a non-negative number is a valid time: positive
 * fixint, uint8-64, int8-64 holding a value >= 0 (mp_read reports those as
 * MP_UINT), float32/64, and EventTime as fixext8 or ext8 of length 8. */
static int parse_time(const uint8_t **p, const uint8_t *end, uint32_t *sec, uint32_t *nsec, int *canonical,
                      const char **why)
{
    const uint8_t *start = *p;
    mp_obj t;
    int rc = mp_read(p, end, &t);
    if (rc != MP_OK) {
        *why = "truncated time";
        return rc;
    }
    *canonical = 0;
    switch (t.type) {
    case MP_NIL:
        return 1;
    case MP_EXT:
        if (t.ext_type != 0 || t.len != 8) {
            *why = "time is an ext value that is not EventTime";
            return -3;
        }
        *sec = mp_be32(t.ptr);
        *nsec = mp_be32(t.ptr + 4);
        if (*sec == 0)
            return 1;
        *canonical = start[0] == 0xd7;
        return 0;
    case MP_UINT:
        if (t.v.u > UINT32_MAX) {
            *why = "integer time out of range";
            return -3;
        }
        if (t.v.u == 0)
            return 1;
        *sec = (uint32_t)t.v.u;
        *nsec = 0;
        return 0;
    case MP_INT: /* always < 0: mp_read reports non-negative values as MP_UINT */
        *why = "negative integer time";
        return -3;
    case MP_FLOAT:
        if (t.v.f > -1.0 && t.v.f < 1.0)
            return 1;
        if (!(t.v.f >= 1.0 && t.v.f < 4294967296.0)) {
            *why = "float time out of range";
            return -3;
        }
        *sec = (uint32_t)t.v.f;
        *nsec = (uint32_t)llround((t.v.f - (double)*sec) * 1e9);
        if (*nsec >= 1000000000u) {
            (*sec)++;
            *nsec -= 1000000000u;
        }
        if (*sec == 0) /* 0xFFFFFFFF.99.. rounded up past the range */
            return 1;
        return 0;
    default:
        *why = fwd_type_name(t.type);
        return -4;
    }
}

/* The time of receipt, read once per request (or fixed by the options). */
static void receipt_time(dctx *c, uint32_t *sec, uint32_t *nsec)
{
    if (!c->have_now) {
        if (c->o->now_sec) {
            c->now_sec = c->o->now_sec;
            c->now_nsec = c->o->now_nsec;
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            c->now_sec = (uint32_t)ts.tv_sec;
            c->now_nsec = (uint32_t)ts.tv_nsec;
        }
        c->have_now = 1;
    }
    *sec = c->now_sec;
    *nsec = c->now_nsec;
}

/* An event whose time is invalid and skip_invalid_event is false: it is kept
 * with the time of receipt, counted, and the first one noted. */
static void note_retimed(dctx *c, const char *why)
{
    if (c->r->retimed++ == 0)
        c->r->retimed_why = why ? why : "unknown";
}

/* Skip one object whatever its depth (used to step over an invalid event
 * whose nesting exceeded the limit). */
static int skip_any(const uint8_t **p, const uint8_t *end)
{
    mp_framer f;
    mp_framer_reset(&f);
    int rc = mp_frame(&f, *p, (size_t)(end - *p));
    if (rc == MP_OK)
        *p += f.pos;
    return rc;
}

/* Write one entry in canonical form, with injected keys if configured. */
static int emit(dctx *c, uint32_t sec, uint32_t nsec, const uint8_t *meta, size_t meta_len, const uint8_t *rec,
                size_t rec_len)
{
    wbuf *w = c->out;
    if (batch_put_entry_head(w, sec, nsec, meta, meta_len))
        return -1;
    if (!c->inject)
        return wbuf_add(w, rec, rec_len);
    const uint8_t *p = rec;
    mp_obj m;
    mp_read(&p, rec + rec_len, &m);
    uint32_t extra = (c->o->source_address_key != NULL) + (c->o->source_hostname_key != NULL);
    if (mpw_map(w, m.len + extra) || wbuf_add(w, p, (size_t)(rec + rec_len - p)))
        return -1;
    if (c->o->source_address_key) {
        const char *k = c->o->source_address_key, *v = c->peer->address ? c->peer->address : "";
        if (mpw_str(w, k, strlen(k)) || mpw_str(w, v, strlen(v)))
            return -1;
    }
    if (c->o->source_hostname_key) {
        const char *k = c->o->source_hostname_key, *v = c->peer->hostname ? c->peer->hostname : "";
        if (mpw_str(w, k, strlen(k)) || mpw_str(w, v, strlen(v)))
            return -1;
    }
    return 0;
}

/* Why read_map refused a map (-3/-5/-6), counting the limit hits. */
static const char *map_refusal(dctx *c, int rc)
{
    if (rc == -5) {
        c->r->too_deep++;
        return "nested deeper than max_nesting_depth";
    }
    if (rc == -6) {
        c->r->too_long++;
        return "holding a string longer than max_string_length";
    }
    return "not a map";
}

/* Read a map (metadata or record) and return its span. -3: not a map,
 * -5: too deep, -6: a string over max_string_length (both skipped),
 * MP_SHORT/MP_BAD otherwise. */
static int read_map(dctx *c, const uint8_t **p, const uint8_t *end, const uint8_t **span, size_t *span_len)
{
    const uint8_t *start = *p;
    if (start >= end)
        return MP_SHORT;
    uint8_t b = *start;
    int is_map = (b & 0xf0) == 0x80 || b == 0xde || b == 0xdf;
    int exceeded = 0;
    int rc = mp_skip_limits(p, end, c->o->max_depth, c->o->max_string_length, &exceeded);
    if (rc == MP_BAD) {
        /* a limit or an invalid byte: find the end without limits */
        *p = start;
        if (skip_any(p, end) != MP_OK)
            return MP_BAD;
        return exceeded == MP_LIMIT_STRING ? -6 : -5;
    }
    if (rc != MP_OK)
        return rc;
    if (!is_map)
        return -3;
    *span = start;
    *span_len = (size_t)(*p - start);
    return MP_OK;
}

/*
 * Process one [time, record] / [[time, meta], record] entry at *p.
 * Returns MP_OK (stored, or skipped and counted), MP_SHORT (truncated at the
 * end of the input), MP_BAD (bytes that are not msgpack), E_NOMEM (out of
 * memory / over the size cap).
 */
int fwd_entry(dctx *c, const uint8_t **p, const uint8_t *end)
{
    const uint8_t *start = *p;
    mp_obj a;
    int rc = mp_read(p, end, &a);
    if (rc != MP_OK)
        return rc;
    if (a.type != MP_ARRAY || a.len != 2) {
        *p = start;
        rc = skip_any(p, end);
        if (rc != MP_OK)
            return rc;
        if (fwd_flush_run(c))
            return E_NOMEM;
        fwd_note_invalid(c, "entry is not a [time, record] array (got %s)", a.type == MP_ARRAY ? "an array of another size" : fwd_type_name(a.type));
        return MP_OK;
    }
    uint32_t sec = 0, nsec = 0;
    int canonical = 0;
    const uint8_t *meta = NULL, *rec = NULL;
    size_t meta_len = 0, rec_len = 0;
    const char *why = NULL, *bad = NULL;
    int trc = 0;

    if (*p < end && (**p & 0xf0) == 0x90) {
        mp_obj ta;
        mp_read(p, end, &ta);
        if (ta.len != 2) {
            bad = "metadata entry [time, meta] has the wrong size";
        } else {
            trc = parse_time(p, end, &sec, &nsec, &canonical, &why);
            if (trc == MP_SHORT || trc == MP_BAD)
                return trc;
            if (trc < 0 && c->o->skip_invalid_event) {
                bad = "invalid event time";
            } else {
                rc = read_map(c, p, end, &meta, &meta_len);
                if (rc == MP_SHORT || rc == MP_BAD)
                    return rc;
                if (rc != MP_OK) {
                    bad = rc == -3 ? "metadata is not a map" : rc == -5 ? "metadata nested too deep" : "metadata holds a string longer than max_string_length";
                    if (rc == -5)
                        c->r->too_deep++;
                    else if (rc == -6)
                        c->r->too_long++;
                }
            }
        }
    } else {
        trc = parse_time(p, end, &sec, &nsec, &canonical, &why);
        if (trc == MP_SHORT || trc == MP_BAD)
            return trc;
        if (trc < 0 && c->o->skip_invalid_event)
            bad = "invalid event time";
    }
    if (bad) {
        /* re-skip the whole entry from its start to stay in sync */
        *p = start;
        rc = skip_any(p, end);
        if (rc != MP_OK)
            return rc;
        if (fwd_flush_run(c))
            return E_NOMEM;
        if (why && bad[0] == 'i')
            fwd_note_invalid(c, "%s: %s", bad, why);
        else
            fwd_note_invalid(c, "%s", bad);
        return MP_OK;
    }
    if (canonical && nsec == 0 && (sec == 0xFFFFFFFFu || sec == 0xFFFFFFFEu)) {
        /* Fluent Bit group start/end marker: not an event */
        rc = skip_any(p, end);
        if (rc != MP_OK)
            return rc;
        if (fwd_flush_run(c))
            return E_NOMEM;
        c->r->markers++;
        return MP_OK;
    }
    rc = read_map(c, p, end, &rec, &rec_len);
    if (rc == MP_SHORT || rc == MP_BAD)
        return rc;
    if (rc != MP_OK) {
        if (fwd_flush_run(c))
            return E_NOMEM;
        fwd_note_invalid(c, "record is %s", map_refusal(c, rc));
        return MP_OK;
    }
    if (trc != 0) {
        /* nil/zero time (Fluentd: the time of receipt), or an invalid time
         * kept because skip_invalid_event is false */
        if (trc < 0)
            note_retimed(c, why);
        receipt_time(c, &sec, &nsec);
        canonical = 0;
    }
    c->r->records++;
    if (canonical && !c->inject) {
        if (!c->run_start)
            c->run_start = start;
        c->run_end = *p;
        return MP_OK;
    }
    if (fwd_flush_run(c))
        return E_NOMEM;
    return emit(c, sec, nsec, meta, meta_len, rec, rec_len) ? E_NOMEM : MP_OK;
}

void fwd_scratch_free(fwd_scratch *s) { wbuf_free(&s->inflated); }

int fwd_ack_encode(wbuf *out, const uint8_t *chunk, size_t chunk_len)
{
    static const uint8_t head[] = {0x81, 0xa3, 'a', 'c', 'k'};
    return wbuf_add(out, head, sizeof head) || wbuf_add(out, chunk, chunk_len) ? -1 : 0;
}

int fwd_parse_options(const uint8_t **p, const uint8_t *end, fwd_options *op, char *err, size_t errlen)
{
    memset(op, 0, sizeof *op);
    mp_obj m;
    if (mp_read(p, end, &m) != MP_OK) {
        snprintf(err, errlen, "truncated options");
        return -1;
    }
    if (m.type == MP_NIL)
        return 0; /* old Docker driver: nil means no options */
    if (m.type != MP_MAP) {
        snprintf(err, errlen, "options is %s, not a map", fwd_type_name(m.type));
        return -1;
    }
    for (uint32_t i = 0; i < m.len; i++) {
        mp_obj k, v;
        if (mp_read(p, end, &k) != MP_OK) {
            snprintf(err, errlen, "truncated options");
            return -1;
        }
        const uint8_t *vstart = *p;
        if ((k.type == MP_ARRAY || k.type == MP_MAP) || mp_skip(p, end, 64) != MP_OK) {
            snprintf(err, errlen, "malformed options map");
            return -1;
        }
        if (k.type != MP_STR)
            continue;
        const uint8_t *q = vstart;
        mp_read(&q, end, &v);
#define KEY_IS(s) (k.len == sizeof(s) - 1 && memcmp(k.ptr, s, sizeof(s) - 1) == 0)
        if (KEY_IS("chunk")) {
            op->chunk = vstart;
            op->chunk_len = (size_t)(*p - vstart);
        } else if (KEY_IS("compressed")) {
            if (v.type == MP_STR || v.type == MP_BIN) {
                op->compressed = v.ptr;
                op->compressed_len = v.len;
            }
        } else if (KEY_IS("fluent_signal")) {
            if (v.type == MP_UINT)
                op->signal = (int64_t)v.v.u;
            else if (v.type == MP_INT)
                op->signal = v.v.i;
        } else if (KEY_IS("metadata")) {
            if (v.type == MP_MAP) {
                op->metadata = vstart;
                op->metadata_len = (size_t)(*p - vstart);
            }
        }
#undef KEY_IS
    }
    return 0;
}

__attribute__((format(printf, 4, 5))) static int decode_fail(fwd_result *r, wbuf *out, size_t mark, const char *fmt, ...)
{
    char tmp[sizeof r->err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap); /* args may point into r->err */
    va_end(ap);
    memcpy(r->err, tmp, sizeof tmp);
    out->len = mark;
    return FWD_CORRUPT;
}

int fwd_decode(const fwd_decode_opts *o, const fwd_peer *peer, fwd_scratch *s, const uint8_t *req, size_t len,
               fwd_result *r, wbuf *out)
{
    memset(r, 0, sizeof *r);
    dctx c = {.o = o, .peer = peer, .r = r, .out = out};
    size_t mark = out->len;
    c.inject = o->source_address_key != NULL || o->source_hostname_key != NULL;
    const uint8_t *p = req, *end = req + len;
    mp_obj top, tag, second;
    fwd_options op;

    if (mp_read(&p, end, &top) != MP_OK)
        return decode_fail(r, out, mark, "truncated request%s", "");
    if (top.type == MP_NIL && p == end)
        return FWD_HEARTBEAT;
    if (top.type != MP_ARRAY || top.len < 2 || top.len > 4)
        return decode_fail(r, out, mark, "request is %s, not an array of 2 to 4 elements",
                           top.type == MP_ARRAY ? "an array of the wrong size" : fwd_type_name(top.type));
    if (mp_read(&p, end, &tag) != MP_OK || tag.type != MP_STR)
        return decode_fail(r, out, mark, "tag is %s, not a string", fwd_type_name(tag.type));
    if (tag.len && memchr(tag.ptr, 0, tag.len)) /* tags are C strings everywhere after this */
        return decode_fail(r, out, mark, "tag contains a NUL byte%s", "");
    r->tag = tag.ptr;
    r->tag_len = tag.len;

    const uint8_t *second_start = p;
    if (mp_read(&p, end, &second) != MP_OK)
        return decode_fail(r, out, mark, "truncated request%s", "");

    if (second.type == MP_ARRAY) {
        r->mode = "Forward";
        if (top.len > 3)
            return decode_fail(r, out, mark, "Forward mode request has %s elements", "4");
        if (wbuf_grow(out, (size_t)(end - p)))
            return decode_fail(r, out, mark, "request too large%s", "");
        for (uint32_t i = 0; i < second.len; i++) {
            int rc = fwd_entry(&c, &p, end);
            if (rc == E_NOMEM)
                return decode_fail(r, out, mark, "out of memory or over the size limit%s", "");
            if (rc != MP_OK)
                return decode_fail(r, out, mark, "malformed entry in Forward mode%s", "");
        }
        if (fwd_flush_run(&c))
            return decode_fail(r, out, mark, "out of memory%s", "");
        if (top.len == 3 && fwd_parse_options(&p, end, &op, r->err, sizeof r->err))
            return decode_fail(r, out, mark, "%s", r->err);
        if (top.len == 2)
            memset(&op, 0, sizeof op);
    } else if (second.type == MP_STR || second.type == MP_BIN) {
        if (top.len > 3)
            return decode_fail(r, out, mark, "PackedForward request has %s elements", "4");
        if (top.len == 3 && fwd_parse_options(&p, end, &op, r->err, sizeof r->err))
            return decode_fail(r, out, mark, "%s", r->err);
        if (top.len == 2)
            memset(&op, 0, sizeof op);
        const uint8_t *blob = second.ptr;
        size_t blob_len = second.len;
        r->mode = "PackedForward";
        if (op.compressed && !(op.compressed_len == 4 && memcmp(op.compressed, "text", 4) == 0)) {
            char err[200];
            s->inflated.len = 0;
            s->inflated.max = o->max_decompressed;
            int zrc;
            if (op.compressed_len == 4 && memcmp(op.compressed, "gzip", 4) == 0)
                zrc = gz_decompress(blob, blob_len, &s->inflated, err, sizeof err);
            else if (op.compressed_len == 4 && memcmp(op.compressed, "zstd", 4) == 0)
                zrc = zstd_decompress(blob, blob_len, &s->inflated, err, sizeof err);
            else {
                snprintf(err, sizeof err, "unknown compression '%.*s'", (int)(op.compressed_len > 32 ? 32 : op.compressed_len),
                         op.compressed);
                zrc = -1;
            }
            if (zrc) {
                r->over_decompressed = strstr(err, "exceeds the limit") != NULL;
                return decode_fail(r, out, mark, "%s", err);
            }
            /* an empty blob inflates to nothing and leaves no buffer: keep
             * a valid pointer (NULL + 0 is undefined; found by fuzzing) */
            blob = s->inflated.len ? s->inflated.data : second.ptr;
            blob_len = s->inflated.len;
            r->mode = "CompressedPackedForward";
        }
        if (blob_len && wbuf_grow(out, blob_len))
            return decode_fail(r, out, mark, "request too large%s", "");
        const uint8_t *q = blob, *qend = blob + blob_len;
        while (q < qend) {
            int rc = fwd_entry(&c, &q, qend);
            if (rc == E_NOMEM)
                return decode_fail(r, out, mark, "out of memory or over the size limit%s", "");
            if (rc == MP_SHORT) {
                if (fwd_flush_run(&c))
                    return decode_fail(r, out, mark, "out of memory%s", "");
                fwd_note_invalid(&c, "%s", "trailing partial event at the end of the entries");
                break;
            }
            if (rc == MP_BAD) {
                if (fwd_flush_run(&c))
                    return decode_fail(r, out, mark, "out of memory%s", "");
                fwd_note_invalid(&c, "%s", "entries contain bytes that are not msgpack; rest of the request skipped");
                break;
            }
        }
        if (fwd_flush_run(&c))
            return decode_fail(r, out, mark, "out of memory%s", "");
    } else {
        /* Message mode: [tag, time, record, option?] */
        r->mode = "Message";
        if (top.len < 3)
            return decode_fail(r, out, mark, "Message mode request has %s elements", "2");
        uint32_t sec = 0, nsec = 0;
        int canonical;
        const char *why = NULL;
        const uint8_t *rec = NULL;
        size_t rec_len = 0;
        p = second_start;
        int trc = parse_time(&p, end, &sec, &nsec, &canonical, &why);
        if (trc == MP_SHORT || trc == MP_BAD)
            return decode_fail(r, out, mark, "truncated request%s", "");
        int rrc = MP_OK, skip_time = trc < 0 && o->skip_invalid_event;
        if (!skip_time)
            rrc = read_map(&c, &p, end, &rec, &rec_len);
        else if (skip_any(&p, end) != MP_OK)
            return decode_fail(r, out, mark, "truncated request%s", "");
        if (rrc == MP_SHORT || rrc == MP_BAD)
            return decode_fail(r, out, mark, "truncated request%s", "");
        if (top.len == 4 && fwd_parse_options(&p, end, &op, r->err, sizeof r->err))
            return decode_fail(r, out, mark, "%s", r->err);
        if (top.len == 3)
            memset(&op, 0, sizeof op);
        if (skip_time) {
            fwd_note_invalid(&c, "invalid event time: %s", why ? why : "unknown");
        } else if (rrc != MP_OK) {
            fwd_note_invalid(&c, "record is %s", map_refusal(&c, rrc));
        } else {
            if (trc != 0) {
                if (trc < 0)
                    note_retimed(&c, why);
                receipt_time(&c, &sec, &nsec);
            }
            r->records = 1;
            if (emit(&c, sec, nsec, op.metadata, op.metadata_len, rec, rec_len))
                return decode_fail(r, out, mark, "out of memory%s", "");
        }
    }
    if (p != end)
        return decode_fail(r, out, mark, "%s", "extra bytes after the request");

    r->chunk = op.chunk;
    r->chunk_len = op.chunk_len;
    r->signal = (int)op.signal;
    if (op.signal != 0) {
        /* metrics/traces payloads are not events: skip them, still ack */
        r->records = 0;
        out->len = mark;
        return FWD_OK;
    }
    /* skip_invalid_event false: an event that cannot be kept (not a
     * [time, map] entry, bytes that are not msgpack) refuses the whole
     * request, so that its ack never hides a drop; events over the
     * configured max_nesting_depth / max_string_length are always skipped
     * and counted (the limit is what asked for it). */
    if (r->invalid > r->too_deep + r->too_long && !o->skip_invalid_event) {
        char why[256];
        snprintf(why, sizeof why, "%s", r->err);
        r->records = 0;
        return decode_fail(r, out, mark, "invalid event and skip_invalid_event is false: %s", why);
    }
    return FWD_OK;
}

int fwd_final_tag(const fwd_decode_opts *o, const uint8_t *raw, size_t raw_len, char *buf, size_t cap)
{
    int n;
    if (o->tag)
        n = snprintf(buf, cap, "%s", o->tag);
    else if (o->add_tag_prefix)
        n = snprintf(buf, cap, "%s.%.*s", o->add_tag_prefix, (int)raw_len, (const char *)raw);
    else
        n = snprintf(buf, cap, "%.*s", (int)raw_len, (const char *)raw);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int fwd_peek_tag(const uint8_t *req, size_t len, const uint8_t **tag, size_t *tag_len)
{
    const uint8_t *p = req, *end = req + len;
    mp_obj a, t;
    if (mp_read(&p, end, &a) != MP_OK || a.type != MP_ARRAY || a.len < 2 || mp_read(&p, end, &t) != MP_OK ||
        t.type != MP_STR)
        return -1;
    *tag = t.ptr;
    *tag_len = t.len;
    return 0;
}
