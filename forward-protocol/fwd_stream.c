/*
 * forward-protocol/fwd_stream.c: a request decoded entry by entry as its
 * bytes arrive (fwd_stream.h). Each element (an entry, the option map) is
 * first found with the resumable framer, so an unfinished one costs O(new
 * bytes) per call; a complete one goes through fwd_entry, as in fwd_decode.
 */
#include "forward-protocol/fwd_stream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward-protocol/fwd_decode_int.h"
#include "lib/compress.h"
#include "lib/mp.h"

#define INFLATE_STEP (64u * 1024) /* the inflate output window */

enum { S_HEAD, S_FWD, S_PACK, S_OPTS, S_DONE, S_FAIL };
enum { CONT = 100 };

struct fwd_stream {
    fwd_decode_opts o;
    fwd_peer peer;
    dctx c;
    fwd_result r;
    int state;
    uint32_t top_len;
    uint64_t left;     /* S_FWD: entries left; S_PACK: bin bytes not yet used */
    uint64_t bin_len;
    int comp;          /* S_PACK: -1 not known yet, 0 raw, ZINF_GZIP, ZINF_ZSTD */
    int skip_rest;     /* S_PACK: bytes that are not msgpack: the rest of the entries is skipped */
    int zdone;
    mp_framer fr;      /* the element being received */
    zinflate *zi;
    wbuf win;          /* inflated bytes not decoded yet */
    size_t win_off;
    uint64_t inflated;
    size_t batch;
    uint32_t taken;
    uint64_t consumed;
    uint8_t *tag, *chunk;
};

fwd_stream *fwd_stream_new(const fwd_decode_opts *o, const fwd_peer *peer, size_t batch_bytes)
{
    fwd_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->o = *o;
    s->peer = *peer;
    s->c.o = &s->o;
    s->c.peer = &s->peer;
    s->c.r = &s->r;
    s->c.inject = o->source_address_key != NULL || o->source_hostname_key != NULL;
    s->batch = batch_bytes ? batch_bytes : (1u << 20);
    s->comp = -1;
    mp_framer_reset(&s->fr);
    return s;
}

void fwd_stream_free(fwd_stream *s)
{
    if (!s)
        return;
    zinf_free(s->zi);
    wbuf_free(&s->win);
    free(s->tag);
    free(s->chunk);
    free(s);
}

const fwd_result *fwd_stream_result(const fwd_stream *s) { return &s->r; }
uint64_t fwd_stream_consumed(const fwd_stream *s) { return s->consumed; }
int fwd_stream_inflating(const fwd_stream *s) { return s->comp > 0; }
size_t fwd_stream_footprint(const fwd_stream *s)
{
    return s->win.cap + (s->zi ? zinf_footprint(s->comp) : 0);
}
uint32_t fwd_stream_take(fwd_stream *s)
{
    uint32_t n = s->r.records - s->taken;
    s->taken = s->r.records;
    return n;
}

__attribute__((format(printf, 2, 3))) static int fail(fwd_stream *s, const char *fmt, ...)
{
    char tmp[sizeof s->r.err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(s->r.err, tmp, sizeof tmp);
    s->state = S_FAIL;
    return FWD_CORRUPT;
}

/* skip_invalid_event false and an event that cannot be kept: fwd_decode
 * refuses the whole request; so does the stream, at once. */
static int invalid_fatal(fwd_stream *s)
{
    if (s->r.invalid > s->r.too_deep + s->r.too_long && !s->o.skip_invalid_event) {
        char why[sizeof s->r.err];
        snprintf(why, sizeof why, "%s", s->r.err);
        fail(s, "invalid event and skip_invalid_event is false: %s", why);
        return 1;
    }
    return 0;
}

/* An entry that cannot be read: the framer starts over, what was decoded so
 * far goes on, and why is noted. 0, or -1 (out of memory). */
static int unreadable(fwd_stream *s, const char *why)
{
    mp_framer_reset(&s->fr);
    if (fwd_flush_run(&s->c))
        return -1;
    fwd_note_invalid(&s->c, "%s", why);
    return 0;
}

static int is_full(const fwd_stream *s)
{
    size_t run = s->c.run_start ? (size_t)(s->c.run_end - s->c.run_start) : 0;
    return s->c.out->len + run >= s->batch;
}

/* The header of the second element: an array (count) or a str/bin (length);
 * MP_OK, MP_SHORT, or MP_BAD for anything else. */
static int second_head(const uint8_t *p, const uint8_t *end, int *is_array, uint64_t *n, size_t *hlen)
{
    if (p >= end)
        return MP_SHORT;
    uint8_t b = p[0];
    size_t need;
    *is_array = 0;
    if ((b & 0xf0) == 0x90) {
        *is_array = 1, *n = b & 0x0f, *hlen = 1;
        return MP_OK;
    }
    if ((b & 0xe0) == 0xa0) {
        *n = b & 0x1f, *hlen = 1;
        return MP_OK;
    }
    switch (b) {
    case 0xc4: case 0xd9: need = 2; break;
    case 0xc5: case 0xda: need = 3; break;
    case 0xc6: case 0xdb: need = 5; break;
    case 0xdc: need = 3; *is_array = 1; break;
    case 0xdd: need = 5; *is_array = 1; break;
    default: return MP_BAD;
    }
    if ((size_t)(end - p) < need)
        return MP_SHORT;
    *n = need == 2 ? p[1] : need == 3 ? (uint64_t)mp_be16(p + 1) : (uint64_t)mp_be32(p + 1);
    *hlen = need;
    return MP_OK;
}

/* The head: [array, tag, second element's header]. *hlen: its size. */
static int read_head(const uint8_t *p, size_t n, mp_obj *top, mp_obj *tag, int *is_array, uint64_t *cnt, size_t *hlen)
{
    const uint8_t *q = p, *end = p + n;
    int rc = mp_read(&q, end, top);
    if (rc != MP_OK)
        return rc == MP_SHORT ? FWD_STREAM_MORE : FWD_CORRUPT;
    if (top->type != MP_ARRAY || top->len < 2 || top->len > 4)
        return FWD_STREAM_NO; /* a heartbeat, or fwd_decode's refusal */
    rc = mp_read(&q, end, tag);
    if (rc == MP_SHORT)
        return FWD_STREAM_MORE;
    if (rc != MP_OK || tag->type != MP_STR)
        return FWD_STREAM_NO;
    size_t h;
    rc = second_head(q, end, is_array, cnt, &h);
    if (rc == MP_SHORT)
        return FWD_STREAM_MORE;
    if (rc != MP_OK)
        return FWD_STREAM_NO; /* Message mode (or not a request): fwd_decode */
    *hlen = (size_t)(q - p) + h;
    return FWD_OK;
}

int fwd_stream_probe(const uint8_t *buf, size_t len)
{
    mp_obj top, tag;
    int is_array;
    uint64_t n;
    size_t h;
    return read_head(buf, len, &top, &tag, &is_array, &n, &h);
}

static int step_head(fwd_stream *s, const uint8_t *p, size_t n, size_t *k)
{
    mp_obj top, tag;
    int is_array;
    uint64_t cnt;
    size_t h;
    int rc = read_head(p, n, &top, &tag, &is_array, &cnt, &h);
    if (rc == FWD_CORRUPT)
        return fail(s, "truncated request");
    if (rc != FWD_OK)
        return rc;
    if (tag.len && memchr(tag.ptr, 0, tag.len))
        return fail(s, "tag contains a NUL byte");
    if (top.len > 3)
        return fail(s, "%s request has 4 elements", is_array ? "Forward mode" : "PackedForward");
    s->tag = malloc(tag.len + 1);
    if (!s->tag)
        return fail(s, "out of memory");
    memcpy(s->tag, tag.ptr, tag.len);
    s->tag[tag.len] = 0;
    s->r.tag = s->tag;
    s->r.tag_len = tag.len;
    s->top_len = top.len;
    s->left = cnt;
    if (is_array) {
        s->state = S_FWD;
        s->r.mode = "Forward";
    } else {
        s->state = S_PACK;
        s->bin_len = cnt;
        s->r.mode = "PackedForward";
    }
    *k = h;
    return CONT;
}

/* The entries are done: the options next, or the end. */
static void entries_done(fwd_stream *s)
{
    s->state = s->top_len == 3 ? S_OPTS : S_DONE;
    mp_framer_reset(&s->fr);
}

/* One complete entry of `len` bytes at p. */
static int one_entry(fwd_stream *s, const uint8_t *p, size_t len, int fatal_bad)
{
    const uint8_t *q = p;
    int rc = fwd_entry(&s->c, &q, p + len);
    if (rc == E_NOMEM)
        return fail(s, "out of memory or over the size limit");
    if (rc != MP_OK || q != p + len) {
        if (fatal_bad)
            return fail(s, "malformed entry in Forward mode");
        if (fwd_flush_run(&s->c))
            return fail(s, "out of memory");
        fwd_note_invalid(&s->c, "%s", "entries contain bytes that are not msgpack; rest of the request skipped");
        s->skip_rest = 1;
    }
    return invalid_fatal(s) ? FWD_CORRUPT : CONT;
}

static int step_forward(fwd_stream *s, const uint8_t *p, size_t n, size_t *k)
{
    if (s->left == 0) {
        entries_done(s);
        return CONT;
    }
    int rc = mp_frame(&s->fr, p, n);
    if (rc == MP_SHORT)
        return FWD_STREAM_MORE;
    if (rc != MP_OK)
        return fail(s, "malformed entry in Forward mode");
    size_t len = s->fr.pos;
    mp_framer_reset(&s->fr);
    rc = one_entry(s, p, len, 1);
    if (rc != CONT)
        return rc;
    *k = len;
    s->left--;
    return is_full(s) ? FWD_STREAM_FULL : CONT;
}

/* Decode the complete entries of the inflated window; at the end of the
 * data, a partial one left is noted as in fwd_decode. */
static int drain_window(fwd_stream *s, int at_end)
{
    for (;;) {
        if (s->skip_rest) {
            s->win_off = s->win.len;
            return CONT;
        }
        size_t n = s->win.len - s->win_off;
        if (n == 0)
            return CONT;
        const uint8_t *p = s->win.data + s->win_off;
        int rc = mp_frame(&s->fr, p, n);
        if (rc == MP_SHORT) {
            if (!at_end)
                return CONT;
            if (unreadable(s, "trailing partial event at the end of the entries"))
                return fail(s, "out of memory");
            s->win_off = s->win.len;
            return invalid_fatal(s) ? FWD_CORRUPT : CONT;
        }
        if (rc != MP_OK) {
            if (unreadable(s, "entries contain bytes that are not msgpack; rest of the request skipped"))
                return fail(s, "out of memory");
            s->skip_rest = 1;
            if (invalid_fatal(s))
                return FWD_CORRUPT;
            continue;
        }
        size_t len = s->fr.pos;
        mp_framer_reset(&s->fr);
        rc = one_entry(s, p, len, 0);
        if (rc != CONT)
            return rc;
        s->win_off += len;
        if (is_full(s))
            return FWD_STREAM_FULL;
    }
}

static int step_inflate(fwd_stream *s, const uint8_t *p, size_t n, size_t *k)
{
    int rc = drain_window(s, 0);
    if (rc != CONT)
        return rc;
    /* the run points into the window: copy it out before the window moves */
    if (fwd_flush_run(&s->c))
        return fail(s, "out of memory");
    if (s->win_off) {
        memmove(s->win.data, s->win.data + s->win_off, s->win.len - s->win_off);
        s->win.len -= s->win_off;
        s->win_off = 0;
    }
    if (s->win.cap - s->win.len < INFLATE_STEP && wbuf_grow(&s->win, INFLATE_STEP))
        return fail(s, "out of memory");
    size_t avail = n < s->left ? n : (size_t)s->left;
    size_t iu, om;
    char err[200];
    if (zinf_step(s->zi, p, avail, &iu, s->win.data + s->win.len, INFLATE_STEP, &om, err, sizeof err))
        return fail(s, "%s", err);
    *k = iu;
    s->left -= iu;
    s->win.len += om;
    s->inflated += om;
    if (s->inflated > s->o.max_decompressed) {
        s->r.over_decompressed = 1;
        return fail(s, "decompressed size exceeds the limit of %zu bytes", s->o.max_decompressed);
    }
    if (iu || om)
        return CONT;
    if (s->left > 0) {
        if (avail == 0)
            return FWD_STREAM_MORE;
        return fail(s, "%s: no progress", s->comp == ZINF_GZIP ? "gzip" : "zstd");
    }
    /* all compressed bytes in, nothing more comes out */
    if (zinf_finish(s->zi, err, sizeof err))
        return fail(s, "%s", err);
    rc = drain_window(s, 1);
    if (rc != CONT)
        return rc;
    entries_done(s);
    return CONT;
}

static int step_packed(fwd_stream *s, const uint8_t *p, size_t n, size_t *k)
{
    if (s->comp < 0) {
        size_t need = s->left < 4 ? (size_t)s->left : 4;
        if (n < need)
            return FWD_STREAM_MORE;
        if (need >= 2 && p[0] == 0x1f && p[1] == 0x8b)
            s->comp = ZINF_GZIP;
        else if (need >= 4 && p[0] == 0x28 && p[1] == 0xb5 && p[2] == 0x2f && p[3] == 0xfd)
            s->comp = ZINF_ZSTD;
        else
            s->comp = 0;
        if (s->comp) {
            s->r.mode = "CompressedPackedForward";
            if (!(s->zi = zinf_new(s->comp)))
                return fail(s, "out of memory");
        }
    }
    if (s->comp)
        return step_inflate(s, p, n, k);
    if (s->left == 0) {
        entries_done(s);
        return CONT;
    }
    size_t avail = n < s->left ? n : (size_t)s->left;
    if (s->skip_rest) {
        if (!avail)
            return FWD_STREAM_MORE;
        *k = avail;
        s->left -= avail;
        return CONT;
    }
    int rc = mp_frame(&s->fr, p, avail);
    if (rc == MP_SHORT) {
        if (avail < s->left)
            return FWD_STREAM_MORE;
        if (unreadable(s, "trailing partial event at the end of the entries"))
            return fail(s, "out of memory");
        *k = avail;
        s->left = 0;
        return invalid_fatal(s) ? FWD_CORRUPT : CONT;
    }
    if (rc != MP_OK) {
        if (unreadable(s, "entries contain bytes that are not msgpack; rest of the request skipped"))
            return fail(s, "out of memory");
        s->skip_rest = 1;
        return invalid_fatal(s) ? FWD_CORRUPT : CONT;
    }
    size_t len = s->fr.pos;
    mp_framer_reset(&s->fr);
    rc = one_entry(s, p, len, 0);
    if (rc != CONT)
        return rc;
    *k = len;
    s->left -= len;
    return is_full(s) ? FWD_STREAM_FULL : CONT;
}

static int finish(fwd_stream *s, const fwd_options *op)
{
    if (s->comp >= 0) { /* PackedForward */
        int declared = op->compressed && !(op->compressed_len == 4 && memcmp(op->compressed, "text", 4) == 0);
        int want = 0;
        if (declared) {
            if (op->compressed_len == 4 && memcmp(op->compressed, "gzip", 4) == 0)
                want = ZINF_GZIP;
            else if (op->compressed_len == 4 && memcmp(op->compressed, "zstd", 4) == 0)
                want = ZINF_ZSTD;
            else
                return fail(s, "unknown compression '%.*s'", (int)(op->compressed_len > 32 ? 32 : op->compressed_len),
                            op->compressed);
        }
        if (s->comp > 0 && !declared) {
            return fail(s, "the entries are %s data but the options do not say `compressed`",
                        s->comp == ZINF_GZIP ? "gzip" : "zstd");
        }
        if (declared && s->bin_len && want != s->comp)
            return fail(s, "the entries are not %s data", want == ZINF_GZIP ? "gzip" : "zstd");
        if (declared)
            s->r.mode = "CompressedPackedForward"; /* an empty bin inflates to nothing */
    }
    if (op->chunk) {
        if (!(s->chunk = malloc(op->chunk_len)))
            return fail(s, "out of memory");
        memcpy(s->chunk, op->chunk, op->chunk_len);
        s->r.chunk = s->chunk;
        s->r.chunk_len = op->chunk_len;
    }
    s->r.signal = (int)op->signal;
    if (invalid_fatal(s))
        return FWD_CORRUPT;
    s->state = S_DONE;
    return FWD_OK;
}

static int step_options(fwd_stream *s, const uint8_t *p, size_t n, size_t *k)
{
    int rc = mp_frame(&s->fr, p, n);
    if (rc == MP_SHORT)
        return FWD_STREAM_MORE;
    if (rc != MP_OK)
        return fail(s, "malformed options map");
    size_t len = s->fr.pos;
    mp_framer_reset(&s->fr);
    const uint8_t *q = p;
    fwd_options op;
    if (fwd_parse_options(&q, p + len, &op, s->r.err, sizeof s->r.err))
        return fail(s, "%s", s->r.err);
    if (q != p + len)
        return fail(s, "extra bytes after the request");
    *k = len;
    return finish(s, &op);
}

int fwd_stream_feed(fwd_stream *s, const uint8_t *p, size_t n, size_t *used, wbuf *out)
{
    static const uint8_t none[1];
    if (!p)
        p = none, n = 0;
    *used = 0;
    s->c.out = out;
    int rc;
    for (;;) {
        size_t k = 0;
        switch (s->state) {
        case S_HEAD: rc = step_head(s, p + *used, n - *used, &k); break;
        case S_FWD: rc = step_forward(s, p + *used, n - *used, &k); break;
        case S_PACK: rc = step_packed(s, p + *used, n - *used, &k); break;
        case S_OPTS: rc = step_options(s, p + *used, n - *used, &k); break;
        case S_DONE: {
            fwd_options op;
            memset(&op, 0, sizeof op);
            rc = finish(s, &op);
            break;
        }
        default: rc = FWD_CORRUPT; break;
        }
        *used += k;
        s->consumed += k;
        if (rc != CONT)
            break;
    }
    /* the pending run points into p or the window: copy it before returning */
    if (rc != FWD_CORRUPT && fwd_flush_run(&s->c))
        rc = fail(s, "out of memory");
    s->c.run_start = s->c.run_end = NULL;
    return rc;
}
