/* lib/json_mp.c: JSON text to msgpack; see json_mp.h. */
#include "json_mp.h"

#include <stdlib.h>
#include <string.h>

/*
 * One pass, straight into the output buffer. The output of r bytes of JSON
 * is at most 3r + 16 bytes of msgpack (the worst case is a 3-character
 * float such as 1.5 becoming 9 bytes), so the buffer is grown once for the
 * whole text (json_mp_reserve) and the writers below need no capacity
 * checks. A caller walking the top level itself renews the reservation
 * after writing through the checked wbuf API (see json_mp.h).
 */

typedef json_mp_cursor jp;

static inline void put_be(wbuf *o, uint8_t tag, uint64_t v, int bytes)
{
    uint8_t *d = o->data + o->len;
    d[0] = tag;
    for (int i = 0; i < bytes; i++)
        d[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    o->len += (size_t)bytes + 1;
}

static inline void put_uint(wbuf *o, uint64_t v)
{
    if (v < 128)
        o->data[o->len++] = (uint8_t)v;
    else if (v < 256)
        put_be(o, 0xcc, v, 1);
    else if (v < 65536)
        put_be(o, 0xcd, v, 2);
    else if (v <= 0xffffffffu)
        put_be(o, 0xce, v, 4);
    else
        put_be(o, 0xcf, v, 8);
}

static inline void put_neg(wbuf *o, int64_t v) /* v < 0 */
{
    if (v >= -32)
        o->data[o->len++] = (uint8_t)(int8_t)v;
    else if (v >= -128)
        put_be(o, 0xd0, (uint8_t)(int8_t)v, 1);
    else if (v >= -32768)
        put_be(o, 0xd1, (uint16_t)(int16_t)v, 2);
    else if (v >= INT32_MIN)
        put_be(o, 0xd2, (uint32_t)(int32_t)v, 4);
    else
        put_be(o, 0xd3, (uint64_t)v, 8);
}

static inline void put_double(wbuf *o, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    put_be(o, 0xcb, u, 8);
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static const uint8_t jstop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};

/* Position of the first '"', '\\' or control byte at or after s (or e):
 * 8 bytes at a time while far from the end, then by a table. */
static inline const uint8_t *str_scan(const uint8_t *s, const uint8_t *e)
{
    while (e - s >= 8) {
        if (jstop[s[0]])
            return s;
        if (jstop[s[1]])
            return s + 1;
        if (jstop[s[2]])
            return s + 2;
        if (jstop[s[3]])
            return s + 3;
        uint64_t w;
        memcpy(&w, s, 8);
        uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
        uint64_t m = ((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w);
        m &= HIGHS;
        if (m)
            return s + (__builtin_ctzll(m) >> 3);
        s += 8;
    }
    while (s < e && !jstop[*s])
        s++;
    return s;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int hex4(const uint8_t *p, const uint8_t *e, uint32_t *v)
{
    if (e - p < 4)
        return -1;
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        x = x << 4 | (uint32_t)h;
    }
    *v = x;
    return 0;
}

size_t json_mp_utf8_put(uint8_t *d, uint32_t cp)
{
    if (cp < 0x80) {
        d[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (uint8_t)(0xc0 | cp >> 6);
        d[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (uint8_t)(0xe0 | cp >> 12);
        d[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (uint8_t)(0xf0 | cp >> 18);
    d[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

const uint8_t json_mp_unescape[256] = {
    ['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b', ['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t',
};

/* The code point of a \uXXXX escape (*p just after the 'u'), joining a
 * surrogate pair; a lone surrogate becomes U+FFFD. -1 (and *p unmoved) when
 * the four hex digits are not there. */
int json_mp_u_escape(const uint8_t **pp, const uint8_t *e, uint32_t *cp)
{
    const uint8_t *p = *pp;
    if (hex4(p, e, cp))
        return -1;
    p += 4;
    if (*cp >= 0xd800 && *cp <= 0xdbff) {
        uint32_t lo;
        if (e - p >= 6 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, e, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
            *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
            p += 6;
        } else {
            *cp = 0xfffd;
        }
    } else if (*cp >= 0xdc00 && *cp <= 0xdfff) {
        *cp = 0xfffd;
    }
    *pp = p;
    return 0;
}

/* At the opening quote: write a msgpack str; *pay, *plen tell where its bytes are in o. */
int json_mp_string(jp *j, size_t *pay, size_t *plen)
{
    const uint8_t *s = j->p + 1, *e = j->e;
    const uint8_t *q = str_scan(s, e);
    if (q >= e)
        return -1;
    wbuf *o = j->o;
    if (*q == '"') {
        size_t n = (size_t)(q - s), hs = mpw_str_hdr_size(n);
        uint8_t *d = o->data + o->len;
        mpw_str_hdr_put(d, n, hs);
        memcpy(d + hs, s, n);
        *pay = o->len + hs;
        *plen = n;
        o->len += hs + n;
        j->p = q + 1;
        return 0;
    }
    if (*q < 0x20)
        return -1;
    /* escapes: find the closing quote to bound the decoded length */
    const uint8_t *r = q;
    for (;;) {
        r = str_scan(r, e);
        if (r >= e || *r < 0x20)
            return -1;
        if (*r == '"')
            break;
        r += 2; /* backslash + escaped byte */
        if (r > e)
            return -1;
    }
    size_t raw = (size_t)(r - s), hs = mpw_str_hdr_size(raw);
    size_t h0 = o->len;
    uint8_t *d = o->data + h0 + hs, *d0 = d;
    const uint8_t *p = s;
    while (p < r) {
        const uint8_t *t = str_scan(p, r);
        memcpy(d, p, (size_t)(t - p));
        d += t - p;
        p = t;
        if (p >= r)
            break;
        /* *p == '\\' */
        p++;
        uint8_t c = *p++;
        if (c == 'u') {
            uint32_t cp;
            if (json_mp_u_escape(&p, r, &cp))
                return -1;
            /* \uXXXX is 6 bytes for at most 3 out; a pair is 12 for 4 */
            d += json_mp_utf8_put(d, cp);
        } else if (json_mp_unescape[c]) {
            *d++ = json_mp_unescape[c];
        } else {
            return -1;
        }
    }
    size_t n = (size_t)(d - d0);
    mpw_str_finish(o, h0, hs, n);
    *pay = o->len - n;
    *plen = n;
    j->p = r + 1;
    return 0;
}

static const double pow10tab[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int j_number(jp *j)
{
    const uint8_t *s = j->p, *p = s, *e = j->e;
    int neg = 0;
    if (p < e && *p == '-')
        neg = 1, p++;
    if (p >= e)
        return -1;
    uint64_t mant = 0;
    int ndig = 0, overflow = 0, isfloat = 0, exp10 = 0;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9') {
            if (ndig < 19)
                mant = mant * 10 + (uint64_t)(*p - '0');
            else if (ndig == 19 && mant <= (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
                mant = mant * 10 + (uint64_t)(*p - '0');
            else
                overflow = 1, exp10++;
            ndig++;
            p++;
        }
    } else {
        return -1;
    }
    if (p < e && *p == '.') {
        p++;
        isfloat = 1;
        if (p >= e || *p < '0' || *p > '9')
            return -1;
        while (p < e && *p >= '0' && *p <= '9') {
            if (!overflow && mant < 100000000000000000ull) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                exp10--;
            } else {
                overflow = 1;
            }
            p++;
        }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        isfloat = 1;
        int eneg = 0, ev = 0;
        if (p < e && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p >= e || *p < '0' || *p > '9')
            return -1;
        while (p < e && *p >= '0' && *p <= '9') {
            if (ev < 100000)
                ev = ev * 10 + (*p - '0');
            p++;
        }
        exp10 += eneg ? -ev : ev;
    }
    j->p = p;
    if (!isfloat && !overflow) {
        if (!neg || mant == 0) {
            put_uint(j->o, mant);
            return 0;
        }
        if (mant <= (uint64_t)INT64_MAX + 1) {
            put_neg(j->o, mant == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mant);
            return 0;
        }
    }
    double d;
    if (!overflow && mant < (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
        d = (double)mant;
        d = exp10 < 0 ? d / pow10tab[-exp10] : d * pow10tab[exp10];
        if (neg)
            d = -d;
    } else {
        char buf[512];
        size_t l = (size_t)(p - s);
        char *tmp = l < sizeof buf ? buf : malloc(l + 1);
        if (!tmp)
            return -1;
        memcpy(tmp, s, l);
        tmp[l] = 0;
        d = strtod(tmp, NULL);
        if (tmp != buf)
            free(tmp);
    }
    put_double(j->o, d);
    return 0;
}

/* A container whose count is known at the end: 1 byte reserved (fix*),
 * the body moved when the count needs 3 or 5. */
int json_mp_close(jp *j, size_t hoff, uint32_t n, int is_map)
{
    wbuf *o = j->o;
    if (n < 16) {
        o->data[hoff] = (uint8_t)((is_map ? 0x80 : 0x90) | n);
        return 0;
    }
    size_t hs = n < 65536 ? 3 : 5, body = o->len - hoff - 1;
    if (o->cap - o->len < hs - 1 + 3 * (size_t)(j->e - j->p) + 16 && wbuf_grow(o, hs - 1 + 3 * (size_t)(j->e - j->p) + 16))
        return -1;
    memmove(o->data + hoff + hs, o->data + hoff + 1, body);
    uint8_t *d = o->data + hoff;
    if (hs == 3)
        d[0] = is_map ? 0xde : 0xdc, d[1] = (uint8_t)(n >> 8), d[2] = (uint8_t)n;
    else
        d[0] = is_map ? 0xdf : 0xdd, d[1] = (uint8_t)(n >> 24), d[2] = (uint8_t)(n >> 16), d[3] = (uint8_t)(n >> 8),
        d[4] = (uint8_t)n;
    o->len += hs - 1;
    return 0;
}

static int j_container(jp *j, int depth, int is_map)
{
    if (depth > JSON_MP_MAX_DEPTH)
        return -1;
    j->p++; /* '{' or '[' */
    size_t hoff = j->o->len++;
    uint32_t n = 0;
    json_mp_ws(j);
    uint8_t close = is_map ? '}' : ']';
    if (j->p < j->e && *j->p == close) {
        j->p++;
        return json_mp_close(j, hoff, 0, is_map);
    }
    for (;;) {
        if (is_map) {
            size_t pay, plen;
            if (json_mp_key(j, &pay, &plen))
                return -1;
        }
        if (json_mp_value(j, depth + 1))
            return -1;
        n++;
        int more = json_mp_next(j, close);
        if (more < 0)
            return -1;
        if (!more)
            return json_mp_close(j, hoff, n, is_map);
    }
}

static int j_lit(jp *j, const char *lit, size_t n, uint8_t code)
{
    if ((size_t)(j->e - j->p) < n || memcmp(j->p, lit, n))
        return -1;
    j->p += n;
    j->o->data[j->o->len++] = code;
    return 0;
}

int json_mp_value(jp *j, int depth)
{
    if (j->p >= j->e)
        return -1;
    size_t pay, plen;
    switch (*j->p) {
    case '"': return json_mp_string(j, &pay, &plen);
    case '{': return j_container(j, depth, 1);
    case '[': return j_container(j, depth, 0);
    case 't': return j_lit(j, "true", 4, 0xc3);
    case 'f': return j_lit(j, "false", 5, 0xc2);
    case 'n': return j_lit(j, "null", 4, 0xc0);
    default: return j_number(j);
    }
}

int json_mp(wbuf *out, const uint8_t *s, size_t n)
{
    size_t start = out->len;
    jp j = {s, s + n, out};
    if (json_mp_reserve(&j))
        return -1;
    json_mp_ws(&j);
    if (json_mp_value(&j, 0))
        goto fail;
    json_mp_ws(&j);
    if (j.p != j.e)
        goto fail; /* trailing garbage */
    return 0;
fail:
    out->len = start;
    return -1;
}
