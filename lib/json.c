/* lib/json.c: the JSON writer: msgpack values and strings as JSON; see json.h. */
#include "lib/json.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "lib/mp.h"

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

/* The second byte of a two-byte escape (\" \\ \n \r \t \b \f), 0 for \u00XX. */
static const uint8_t esc_short[256] = {
    ['"'] = '"', ['\\'] = '\\', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't', ['\b'] = 'b', ['\f'] = 'f',
};

/* Write the JSON escape of '"', '\\' or a control byte; returns the new end.
 * A table, not a switch: a log line that is itself JSON has a quote every
 * few bytes, and an indirect jump per quote mispredicts. */
static inline uint8_t *esc_byte(uint8_t *o, uint8_t c)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t e = esc_short[c];
    o[0] = '\\';
    if (e) {
        o[1] = e;
        return o + 2;
    }
    o[1] = 'u';
    o[2] = '0';
    o[3] = '0';
    o[4] = (uint8_t)hex[c >> 4];
    o[5] = (uint8_t)hex[c & 15];
    return o + 6;
}

int jw_string(wbuf *out, const uint8_t *s, size_t n)
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

/* The shortest significant digits that read back as d (d finite, not 0),
 * into dig (no point, no trailing zeros; returns their count) with *decpt,
 * the position of the decimal point (d = 0.DIGITS * 10^decpt). For a normal
 * double, 15 digits that read back are the shortest (DBL_DIG): try 15, 16,
 * 17; a subnormal has fewer significant bits, so it counts up from 1. */
static int shortest_digits(double d, char dig[20], int *decpt)
{
    char e[40];
    int from = fabs(d) < DBL_MIN ? 1 : 15;
    for (int prec = from; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, d);
        if (prec == 17 || strtod(e, NULL) == d)
            break;
    }
    /* e: [-]D[.DDD]e[+-]XX */
    const char *p = e + (e[0] == '-');
    int n = 0;
    for (; *p != 'e'; p++)
        if (*p != '.')
            dig[n++] = *p;
    while (n > 1 && dig[n - 1] == '0')
        n--;
    dig[n] = 0;
    *decpt = atoi(p + 1) + 1;
    return n;
}

/* A float as Fluentd's JSON formatter writes it (Oj in compat mode, so a
 * file output's lines match Fluentd's byte for byte): 0.0 for either zero;
 * an integral value in [-2^63, 2^63) as "%.1f" (10000000000000000.0); anything
 * else as Ruby's Float#to_s: the shortest digits that read back as the
 * same double, in fixed notation when -4 < decimal exponent <= 16 (0.0001,
 * 123456789012345.6), else D.DDDe+XX (1.0e-05, 1.0e+20, 5.0e-324). NaN and
 * the infinities, which JSON cannot hold, are null. */
static int json_double(wbuf *out, double d)
{
    if (!isfinite(d))
        return wbuf_add(out, "null", 4);
    char tmp[48];
    int n;
    if (d == 0) {
        return wbuf_add(out, "0.0", 3);
    } else if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 && d == (double)(long long)d) {
        n = snprintf(tmp, sizeof tmp, "%.1f", d);
    } else {
        char dig[20];
        int decpt, nd = shortest_digits(d, dig, &decpt);
        char *o = tmp;
        if (d < 0)
            *o++ = '-';
        if (decpt > 0 && decpt <= 16) {
            for (int i = 0; i < decpt; i++)
                *o++ = i < nd ? dig[i] : '0';
            *o++ = '.';
            if (nd > decpt)
                for (int i = decpt; i < nd; i++)
                    *o++ = dig[i];
            else
                *o++ = '0';
        } else if (decpt <= 0 && decpt > -4) {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -decpt; i++)
                *o++ = '0';
            for (int i = 0; i < nd; i++)
                *o++ = dig[i];
        } else {
            *o++ = dig[0];
            *o++ = '.';
            if (nd > 1)
                for (int i = 1; i < nd; i++)
                    *o++ = dig[i];
            else
                *o++ = '0';
            o += snprintf(o, (size_t)(tmp + sizeof tmp - o), "e%c%02d", decpt - 1 < 0 ? '-' : '+',
                          abs(decpt - 1));
        }
        n = (int)(o - tmp);
    }
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

int jw_scalar(wbuf *out, const mp_obj *o)
{
    char tmp[32];
    int n;
    switch (o->type) {
    case MP_NIL: return wbuf_add(out, "null", 4);
    case MP_BOOL: return o->v.b ? wbuf_add(out, "true", 4) : wbuf_add(out, "false", 5);
    case MP_UINT: n = (int)fmt_u64(tmp, o->v.u); break;
    case MP_INT: n = (int)fmt_i64(tmp, o->v.i); break;
    default: return -1;
    }
    return wbuf_add(out, tmp, (size_t)n);
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
    int rc = json_value(&tmpb, p, end, depth) || jw_string(out, tmpb.data, tmpb.len > 256 ? 256 : tmpb.len);
    wbuf_free(&tmpb);
    return rc ? -1 : 0;
}

static int json_value(wbuf *out, const uint8_t **p, const uint8_t *end, int depth)
{
    if (depth > 512)
        return -1;
    /* strings (most keys and values of a log record) without mp_read: fixstr and str8 */
    const uint8_t *q = *p;
    if (q < end) {
        size_t hl = (*q & 0xe0) == 0xa0 ? 1 : *q == 0xd9 && end - q >= 2 ? 2 : 0;
        if (hl) {
            size_t n = hl == 1 ? (size_t)(*q & 0x1f) : (size_t)q[1];
            if ((size_t)(end - q) - hl >= n) {
                *p = q + hl + n;
                return jw_string(out, q + hl, n);
            }
        }
    }
    mp_obj o;
    if (mp_read(p, end, &o) != MP_OK)
        return -1;
    switch (o.type) {
    case MP_NIL:
    case MP_BOOL:
    case MP_UINT:
    case MP_INT: return jw_scalar(out, &o);
    case MP_FLOAT: return json_double(out, o.v.f);
    case MP_STR:
    case MP_BIN: return jw_string(out, o.ptr, o.len);
    case MP_EXT:
        if (o.ext_type == 0 && o.len == 8) {
            /* an EventTime (a `time`-typed value): its whole seconds, as
             * Fluentd's EventTime#to_json writes it */
            char num[24];
            return wbuf_add(out, num, fmt_u64(num, mp_be32(o.ptr)));
        }
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

int jw_value(wbuf *out, const uint8_t **p, const uint8_t *end) { return json_value(out, p, end, 0); }

int jw_key(wbuf *out, const uint8_t **p, const uint8_t *end) { return json_key(out, p, end, 1); }

int jw_value_at(wbuf *out, const uint8_t **p, const uint8_t *end, int depth) { return json_value(out, p, end, depth); }
