/* outputs/format.c: msgpack -> JSON/text for <format>/<inject>; see format.h. */
#include "format.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "forward-protocol/mp.h"

/* ---- JSON ---------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c >= 0xc2 && c <= 0xdf)
        return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
            return 0;
        if (c == 0xe0 && s[1] < 0xa0)
            return 0; /* overlong */
        if (c == 0xed && s[1] > 0x9f)
            return 0; /* surrogates */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
            return 0;
        if (c == 0xf0 && s[1] < 0x90)
            return 0;
        if (c == 0xf4 && s[1] > 0x8f)
            return 0;
        return 4;
    }
    return 0;
}

/* Table: 0 = copy as is, 1 = needs escaping, 2 = non-ASCII (validate). */
static const uint8_t esc_class[256] = {
    [0 ... 0x1f] = 1, ['"'] = 1, ['\\'] = 1, [0x7f] = 0, [0x80 ... 0xff] = 2,
};

/* Write the JSON escape of '"', '\\' or a control byte; returns the new end. */
static inline uint8_t *esc_byte(uint8_t *o, uint8_t c)
{
    static const char hex[] = "0123456789abcdef";
    *o++ = '\\';
    switch (c) {
    case '"': *o++ = '"'; break;
    case '\\': *o++ = '\\'; break;
    case '\n': *o++ = 'n'; break;
    case '\r': *o++ = 'r'; break;
    case '\t': *o++ = 't'; break;
    case '\b': *o++ = 'b'; break;
    case '\f': *o++ = 'f'; break;
    default:
        *o++ = 'u';
        *o++ = '0';
        *o++ = '0';
        *o++ = (uint8_t)hex[c >> 4];
        *o++ = (uint8_t)hex[c & 15];
    }
    return o;
}

int fmt_json_string(wbuf *out, const uint8_t *s, size_t n)
{
    /* worst case 6 bytes per input byte (\u00XX), plus 16 bytes of slack:
     * the SSE2 loop stores whole 16-byte vectors and keeps only part */
    if (out->cap - out->len < n * 6 + 18 && wbuf_grow(out, n * 6 + 18))
        return -1;
    uint8_t *o = out->data + out->len;
    *o++ = '"';
    size_t i = 0;
    while (i < n) {
#ifdef __SSE2__
        /* 16 bytes at a time. A signed compare with 0x20 flags both the
         * control bytes (0x00-0x1f) and every byte >= 0x80 (negative as
         * int8): those need escaping or UTF-8 validation, as do '"' and '\\'.
         * Flagged '"', '\\' and control bytes are escaped right here, bit by
         * bit of the mask (log lines that are themselves JSON have a quote
         * every few bytes); a byte >= 0x80 leaves for the UTF-8 check below. */
        while (n - i >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
            __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                                       _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                    _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))));
            unsigned mask = (unsigned)_mm_movemask_epi8(bad);
            if (!mask) {
                _mm_storeu_si128((__m128i *)(void *)o, v);
                o += 16;
                i += 16;
                continue;
            }
            /* the clean run before each flagged byte is copied with one
             * 16-byte store from a copy of the block (no memcpy call per
             * run: a JSON log line has a quote every few bytes) */
            uint8_t blk[32];
            _mm_storeu_si128((__m128i *)(void *)blk, v);
            _mm_storeu_si128((__m128i *)(void *)(blk + 16), _mm_setzero_si128());
            unsigned done = 0;
            int utf8 = 0;
            while (mask) {
                unsigned k = (unsigned)__builtin_ctz(mask);
                _mm_storeu_si128((__m128i *)(void *)o, _mm_loadu_si128((const __m128i *)(const void *)(blk + done)));
                o += k - done;
                uint8_t c = blk[k];
                if (c >= 0x80) {
                    i += k;
                    utf8 = 1;
                    break;
                }
                o = esc_byte(o, c);
                done = k + 1;
                mask &= mask - 1;
            }
            if (utf8)
                break;
            _mm_storeu_si128((__m128i *)(void *)o, _mm_loadu_si128((const __m128i *)(const void *)(blk + done)));
            o += 16 - done;
            i += 16;
        }
#endif
        /* 8 bytes at a time while none needs escaping or validation:
         * no byte < 0x20, no '"' (0x22), no '\\' (0x5c), no byte >= 0x80 */
        while (n - i >= 8) {
            uint64_t v;
            memcpy(&v, s + i, 8);
            const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
            uint64_t lt20 = (v - ones * 0x20) & ~v;
            uint64_t q = v ^ (ones * 0x22), bs = v ^ (ones * 0x5c);
            uint64_t hit = (lt20 | ((q - ones) & ~q) | ((bs - ones) & ~bs) | v) & high;
            if (hit)
                break;
            memcpy(o, s + i, 8);
            o += 8;
            i += 8;
        }
        if (i >= n)
            break;
        uint8_t c = s[i];
        uint8_t cls = esc_class[c];
        if (cls == 0) {
            *o++ = c;
            i++;
            continue;
        }
        if (cls == 2) {
            size_t k = utf8_seq(s + i, n - i);
            if (k) {
                memcpy(o, s + i, k);
                o += k;
                i += k;
            } else {
                memcpy(o, "\xef\xbf\xbd", 3); /* U+FFFD */
                o += 3;
                i++;
            }
            continue;
        }
        o = esc_byte(o, c);
        i++;
    }
    *o++ = '"';
    out->len = (size_t)(o - out->data);
    return 0;
}

static int json_double(wbuf *out, double d)
{
    if (!isfinite(d))
        return wbuf_add(out, "null", 4);
    char tmp[40];
    int n = snprintf(tmp, sizeof tmp, "%.15g", d);
    if (strtod(tmp, NULL) != d)
        n = snprintf(tmp, sizeof tmp, "%.17g", d);
    /* keep it a float in JSON consumers that care (1.0 rather than 1) */
    if (!strpbrk(tmp, ".eEn"))
        tmp[n++] = '.', tmp[n++] = '0', tmp[n] = 0;
    return wbuf_add(out, tmp, (size_t)n);
}

static int json_base64(wbuf *out, const uint8_t *s, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (wbuf_grow(out, (n + 2) / 3 * 4 + 2))
        return -1;
    uint8_t *o = out->data + out->len;
    *o++ = '"';
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *o++ = (uint8_t)tbl[v >> 18];
        *o++ = (uint8_t)tbl[(v >> 12) & 63];
        *o++ = (uint8_t)tbl[(v >> 6) & 63];
        *o++ = (uint8_t)tbl[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        *o++ = (uint8_t)tbl[v >> 18];
        *o++ = (uint8_t)tbl[(v >> 12) & 63];
        *o++ = i + 1 < n ? (uint8_t)tbl[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    *o++ = '"';
    out->len = (size_t)(o - out->data);
    return 0;
}

static int json_value(wbuf *out, const uint8_t **p, const uint8_t *end, int depth);

/* A map key. JSON keys must be strings: a non-string key is written as its
 * JSON text, quoted, cut at 256 bytes: escaping nested container keys would
 * otherwise grow the output exponentially with depth (found by fuzzing). */
static int json_key(wbuf *out, const uint8_t **p, const uint8_t *end, int depth)
{
    const uint8_t *k = *p;
    if (k < end && ((*k & 0xe0) == 0xa0 || *k == 0xd9 || *k == 0xda || *k == 0xdb || *k == 0xc4 || *k == 0xc5 ||
                    *k == 0xc6))
        return json_value(out, p, end, depth);
    wbuf tmpb = {0};
    int rc = json_value(&tmpb, p, end, depth) || fmt_json_string(out, tmpb.data, tmpb.len > 256 ? 256 : tmpb.len);
    wbuf_free(&tmpb);
    return rc ? -1 : 0;
}

static int json_value(wbuf *out, const uint8_t **p, const uint8_t *end, int depth)
{
    mp_obj o;
    if (depth > 512 || mp_read(p, end, &o) != MP_OK)
        return -1;
    char tmp[32];
    int n;
    switch (o.type) {
    case MP_NIL: return wbuf_add(out, "null", 4);
    case MP_BOOL: return o.v.b ? wbuf_add(out, "true", 4) : wbuf_add(out, "false", 5);
    case MP_UINT:
        n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)o.v.u);
        return wbuf_add(out, tmp, (size_t)n);
    case MP_INT:
        n = snprintf(tmp, sizeof tmp, "%lld", (long long)o.v.i);
        return wbuf_add(out, tmp, (size_t)n);
    case MP_FLOAT: return json_double(out, o.v.f);
    case MP_STR:
    case MP_BIN: return fmt_json_string(out, o.ptr, o.len);
    case MP_EXT:
        if (o.ext_type == 0 && o.len == 8)
            return json_double(out, (double)mp_be32(o.ptr) + (double)mp_be32(o.ptr + 4) / 1e9);
        return json_base64(out, o.ptr, o.len);
    case MP_ARRAY:
        if (wbuf_addc(out, '['))
            return -1;
        for (uint32_t i = 0; i < o.len; i++) {
            if ((i && wbuf_addc(out, ',')) || json_value(out, p, end, depth + 1))
                return -1;
        }
        return wbuf_addc(out, ']');
    case MP_MAP:
        if (wbuf_addc(out, '{'))
            return -1;
        for (uint32_t i = 0; i < o.len; i++) {
            if (i && wbuf_addc(out, ','))
                return -1;
            if (json_key(out, p, end, depth + 1))
                return -1;
            if (wbuf_addc(out, ':') || json_value(out, p, end, depth + 1))
                return -1;
        }
        return wbuf_addc(out, '}');
    }
    return -1;
}

int fmt_json_value(wbuf *out, const uint8_t **p, const uint8_t *end) { return json_value(out, p, end, 0); }

/* ---- time ---------------------------------------------------------------- */

size_t fmt_time(char *buf, size_t cap, const char *format, uint32_t sec, uint32_t nsec, int utc)
{
    time_t t = (time_t)sec;
    struct tm tm;
    if (utc)
        gmtime_r(&t, &tm);
    else
        localtime_r(&t, &tm);
    /* Expand Fluentd's sub-second directives first, then strftime the rest. */
    char f2[256];
    size_t j = 0;
    for (const char *s = format; *s && j + 12 < sizeof f2; s++) {
        if (s[0] == '%' && (s[1] == 'L' || s[1] == 'N' || (s[1] >= '1' && s[1] <= '9' && s[2] == 'N'))) {
            int digits = s[1] == 'L' ? 3 : s[1] == 'N' ? 9 : s[1] - '0';
            uint32_t v = nsec;
            for (int d = 9; d > digits; d--)
                v /= 10;
            j += (size_t)snprintf(f2 + j, sizeof f2 - j, "%0*u", digits, v);
            s += (s[1] == 'L' || s[1] == 'N') ? 1 : 2;
        } else if (s[0] == '%' && s[1] == '%') {
            f2[j++] = '%';
            f2[j++] = '%';
            s++;
        } else {
            f2[j++] = *s;
        }
    }
    f2[j] = 0;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t n = strftime(buf, cap, f2, &tm); /* user-supplied time_format, by design */
#pragma GCC diagnostic pop
    return n;
}

/* ISO 8601 like Ruby's Time#iso8601: "Z" for UTC, "+09:00" otherwise. */
static size_t iso8601(char *buf, size_t cap, uint32_t sec, int utc)
{
    size_t n = fmt_time(buf, cap, utc ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%dT%H:%M:%S%z", sec, 0, utc);
    if (!utc && n >= 5 && n + 1 < cap) { /* +0900 -> +09:00 */
        memmove(buf + n - 1, buf + n - 2, 3);
        buf[n - 2] = ':';
        n++;
    }
    return n;
}

/* ---- configuration --------------------------------------------------------- */

static const conf_spec format_spec[] = {
    {"@type", CONF_ENUM, "json", 0, offsetof(fmt, type), "json|out_file|stdout|single_value|ltsv|msgpack"},
    {"delimiter", CONF_STR, "\t", 0, offsetof(fmt, delimiter), NULL},
    {"output_tag", CONF_BOOL, "true", 0, offsetof(fmt, output_tag), NULL},
    {"output_time", CONF_BOOL, "true", 0, offsetof(fmt, output_time), NULL},
    {"time_format", CONF_STR, NULL, 0, offsetof(fmt, time_format), NULL},
    {"localtime", CONF_BOOL, "true", 0, offsetof(fmt, localtime), NULL},
    {"utc", CONF_BOOL, "false", 0, offsetof(fmt, utc), NULL},
    {"message_key", CONF_STR, "message", 0, offsetof(fmt, message_key), NULL},
    {"add_newline", CONF_BOOL, "true", 0, offsetof(fmt, add_newline), NULL},
    {"label_delimiter", CONF_STR, ":", 0, offsetof(fmt, label_delimiter), NULL},
    {NULL, 0, NULL, 0, 0, NULL},
};

static const conf_spec inject_spec[] = {
    {"time_key", CONF_STR, NULL, 0, offsetof(fmt_inject, time_key), NULL},
    {"time_type", CONF_ENUM, "float", 0, offsetof(fmt_inject, time_type), "float|unixtime|string"},
    {"time_format", CONF_STR, NULL, 0, offsetof(fmt_inject, time_format), NULL},
    {"localtime", CONF_BOOL, "true", 0, offsetof(fmt_inject, localtime), NULL},
    {"utc", CONF_BOOL, "false", 0, offsetof(fmt_inject, utc), NULL},
    {"tag_key", CONF_STR, NULL, 0, offsetof(fmt_inject, tag_key), NULL},
    {"hostname_key", CONF_STR, NULL, 0, offsetof(fmt_inject, hostname_key), NULL},
    {"hostname", CONF_STR, NULL, 0, offsetof(fmt_inject, hostname), NULL},
    {"metadata_key", CONF_STR, NULL, 0, offsetof(fmt_inject, metadata_key), NULL},
    {NULL, 0, NULL, 0, 0, NULL},
};

static conf_node *child(conf_node *n, const char *name)
{
    for (size_t i = 0; i < n->nchildren; i++)
        if (strcmp(n->children[i]->name, name) == 0)
            return n->children[i];
    return NULL;
}

int fmt_configure(fmt *f, conf_node *n, int default_type, conf_errors *errs)
{
    memset(f, 0, sizeof *f);
    conf_node *fs = child(n, "format");
    conf_node empty = {.name = "format", .file = n->file, .line = n->line};
    int rc = conf_bind(fs ? fs : &empty, format_spec, f, errs);
    if (!fs || !conf_get_value(fs, "@type"))
        f->type = default_type;
    if (f->utc)
        f->localtime = 0;
    if (!strcmp(f->delimiter, "SPACE") || !strcmp(f->delimiter, "space")) {
        free(f->delimiter);
        f->delimiter = strdup(" ");
    } else if (!strcmp(f->delimiter, "COMMA") || !strcmp(f->delimiter, "comma")) {
        free(f->delimiter);
        f->delimiter = strdup(",");
    } else if (!strcmp(f->delimiter, "TAB") || !strcmp(f->delimiter, "tab")) {
        free(f->delimiter);
        f->delimiter = strdup("\t");
    }
    conf_node *is = child(n, "inject");
    if (is) {
        if (conf_bind(is, inject_spec, &f->inj, errs))
            rc = -1;
        if (f->inj.utc)
            f->inj.localtime = 0;
        if (f->inj.hostname_key && !f->inj.hostname) {
            char h[256] = "";
            gethostname(h, sizeof h - 1);
            f->inj.hostname = strdup(h);
        }
        f->inj.active = f->inj.time_key || f->inj.tag_key || f->inj.hostname_key || f->inj.metadata_key;
    }
    return rc;
}

void fmt_free(fmt *f)
{
    conf_unbind(format_spec, f);
    conf_unbind(inject_spec, &f->inj);
}

/* ---- records --------------------------------------------------------------- */

static int key_is(const uint8_t *p, const uint8_t *end, const char *k)
{
    mp_obj o;
    if (!k || mp_read(&p, end, &o) != MP_OK || (o.type != MP_STR && o.type != MP_BIN))
        return 0;
    size_t n = strlen(k);
    return o.len == n && memcmp(o.ptr, k, n) == 0;
}

static int json_time_value(wbuf *out, const fmt_inject *in, const entry *e)
{
    char tmp[128];
    int n;
    switch (in->time_type) {
    case TT_UNIXTIME:
        n = snprintf(tmp, sizeof tmp, "%u", e->sec);
        return wbuf_add(out, tmp, (size_t)n);
    case TT_STRING: {
        /* without time_format Fluentd's formatter gives ISO 8601 ("Z" in UTC) */
        size_t k = in->time_format ? fmt_time(tmp, sizeof tmp, in->time_format, e->sec, e->nsec, !in->localtime)
                                   : iso8601(tmp, sizeof tmp, e->sec, !in->localtime);
        return fmt_json_string(out, (const uint8_t *)tmp, k);
    }
    default:
        /* Fluentd: time.to_r.truncate(6): microseconds */
        n = snprintf(tmp, sizeof tmp, "%u.%06u", e->sec, e->nsec / 1000);
        /* trim trailing zeros but keep one decimal, like Ruby's Float#to_s */
        while (n > 2 && tmp[n - 1] == '0' && tmp[n - 2] != '.')
            n--;
        return wbuf_add(out, tmp, (size_t)n);
    }
}

/* One injected key's value. */
static int inject_value(wbuf *out, const fmt_inject *in, int which, const char *tag, size_t tag_len, const entry *e)
{
    switch (which) {
    case 0: return fmt_json_string(out, (const uint8_t *)in->hostname, strlen(in->hostname));
    case 1: return fmt_json_string(out, (const uint8_t *)tag, tag_len);
    case 2: return json_time_value(out, in, e);
    default: {
        const uint8_t *mp = e->meta;
        return fmt_json_value(out, &mp, e->meta + e->meta_len);
    }
    }
}

/*
 * Record as a JSON object with <inject> keys, like Fluentd's
 * inject_values_to_record: hostname, then tag, then time are set with
 * Hash#[]=, so a key the record already has keeps its position and takes
 * the new value, and new keys are appended in that order (weir's
 * metadata_key last).
 */
static int json_record(const fmt *f, wbuf *out, const char *tag, size_t tag_len, const entry *e)
{
    const fmt_inject *in = &f->inj;
    const uint8_t *p = e->record, *end = e->record + e->record_len;
    if (!in->active)
        return fmt_json_value(out, &p, end);
    const char *keys[4] = {in->hostname_key, in->tag_key, in->time_key, e->meta ? in->metadata_key : NULL};
    int done[4] = {0, 0, 0, 0};
    mp_obj m;
    if (mp_read(&p, end, &m) != MP_OK || m.type != MP_MAP)
        return -1;
    if (wbuf_addc(out, '{'))
        return -1;
    int first = 1;
    for (uint32_t i = 0; i < m.len; i++) {
        if (!first && wbuf_addc(out, ','))
            return -1;
        first = 0;
        int which = -1;
        for (int k = 0; k < 4 && which < 0; k++)
            if (keys[k] && key_is(p, end, keys[k]))
                which = k;
        if (json_key(out, &p, end, 1) || wbuf_addc(out, ':'))
            return -1;
        if (which < 0 || done[which]) {
            if (fmt_json_value(out, &p, end))
                return -1;
        } else {
            if (mp_skip(&p, end, 512) || inject_value(out, in, which, tag, tag_len, e))
                return -1;
            done[which] = 1;
        }
    }
    for (int k = 0; k < 4; k++) {
        if (!keys[k] || done[k])
            continue;
        if ((!first && wbuf_addc(out, ',')) ||
            fmt_json_string(out, (const uint8_t *)keys[k], strlen(keys[k])) || wbuf_addc(out, ':') ||
            inject_value(out, in, k, tag, tag_len, e))
            return -1;
        first = 0;
    }
    return wbuf_addc(out, '}');
}

/* Find a top-level key's value in a record map. */
static const uint8_t *record_get(const entry *e, const char *key, const uint8_t **vend)
{
    const uint8_t *p = e->record, *end = e->record + e->record_len;
    mp_obj m;
    if (mp_read(&p, end, &m) != MP_OK || m.type != MP_MAP)
        return NULL;
    for (uint32_t i = 0; i < m.len; i++) {
        int hit = key_is(p, end, key);
        if (mp_skip(&p, end, 512))
            return NULL;
        const uint8_t *v = p;
        if (mp_skip(&p, end, 512))
            return NULL;
        if (hit) {
            *vend = p;
            return v;
        }
    }
    return NULL;
}

static int text_time(const fmt *f, wbuf *out, const entry *e, const char *def)
{
    char tmp[128];
    size_t k = f->time_format ? fmt_time(tmp, sizeof tmp, f->time_format, e->sec, e->nsec, !f->localtime)
               : def         ? fmt_time(tmp, sizeof tmp, def, e->sec, e->nsec, !f->localtime)
                             : iso8601(tmp, sizeof tmp, e->sec, !f->localtime);
    return wbuf_add(out, tmp, k);
}

int fmt_record(const fmt *f, wbuf *out, const char *tag, size_t tag_len, const entry *e)
{
    switch (f->type) {
    case FMT_JSON:
        return json_record(f, out, tag, tag_len, e) || wbuf_addc(out, '\n');
    case FMT_OUT_FILE: {
        size_t dl = strlen(f->delimiter);
        if (f->output_time && (text_time(f, out, e, NULL) || wbuf_add(out, f->delimiter, dl)))
            return -1;
        if (f->output_tag && (wbuf_add(out, tag, tag_len) || wbuf_add(out, f->delimiter, dl)))
            return -1;
        return json_record(f, out, tag, tag_len, e) || wbuf_addc(out, '\n');
    }
    case FMT_STDOUT:
        return text_time(f, out, e, "%Y-%m-%d %H:%M:%S.%N %z") || wbuf_addc(out, ' ') ||
               wbuf_add(out, tag, tag_len) || wbuf_add(out, ": ", 2) || json_record(f, out, tag, tag_len, e) ||
               wbuf_addc(out, '\n');
    case FMT_SINGLE_VALUE: {
        const uint8_t *vend, *v = record_get(e, f->message_key, &vend);
        if (v) {
            mp_obj o;
            const uint8_t *q = v;
            mp_read(&q, vend, &o);
            if (o.type == MP_STR || o.type == MP_BIN) {
                if (wbuf_add(out, o.ptr, o.len))
                    return -1;
            } else if (fmt_json_value(out, &v, vend)) {
                return -1;
            }
        }
        return f->add_newline ? wbuf_addc(out, '\n') : 0;
    }
    case FMT_LTSV: {
        const uint8_t *p = e->record, *end = e->record + e->record_len;
        mp_obj m;
        if (mp_read(&p, end, &m) != MP_OK)
            return -1;
        for (uint32_t i = 0; i < m.len; i++) {
            for (int kv = 0; kv < 2; kv++) {
                mp_obj o;
                const uint8_t *q = p;
                mp_read(&q, end, &o);
                if (o.type == MP_STR || o.type == MP_BIN) {
                    if (wbuf_add(out, o.ptr, o.len))
                        return -1;
                    p = q;
                } else if (fmt_json_value(out, &p, end)) {
                    return -1;
                }
                if (kv == 0 && wbuf_add(out, f->label_delimiter, strlen(f->label_delimiter)))
                    return -1;
            }
            if (i + 1 < m.len && wbuf_add(out, f->delimiter, strlen(f->delimiter)))
                return -1;
        }
        return wbuf_addc(out, '\n');
    }
    case FMT_MSGPACK:
        return wbuf_add(out, e->record, e->record_len);
    }
    return -1;
}
