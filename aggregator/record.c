/* aggregator/record.c: record accessors and msgpack record rewriting; see record.h. */
#include "record.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json.h"

#define REC_DEPTH 512

/* ---- small msgpack helpers ---------------------------------------------------------- */

static inline int rd_str(const uint8_t **p, const uint8_t *end, const uint8_t **s, uint32_t *n)
{
    const uint8_t *q = *p;
    if (q >= end)
        return -1;
    uint8_t c = *q;
    uint32_t len;
    size_t h;
    if ((c & 0xe0) == 0xa0) {
        len = c & 0x1f;
        h = 1;
    } else if (c == 0xd9 || c == 0xc4) {
        if (end - q < 2)
            return -1;
        len = q[1];
        h = 2;
    } else if (c == 0xda || c == 0xc5) {
        if (end - q < 3)
            return -1;
        len = mp_be16(q + 1);
        h = 3;
    } else if (c == 0xdb || c == 0xc6) {
        if (end - q < 5)
            return -1;
        len = mp_be32(q + 1);
        h = 5;
    } else {
        return 0;
    }
    if ((size_t)(end - q) - h < len)
        return -1;
    *s = q + h;
    *n = len;
    *p = q + h + len;
    return 1;
}

int rec_read_str(const uint8_t **p, const uint8_t *end, const uint8_t **s, uint32_t *n)
{
    return rd_str(p, end, s, n);
}

/* Per first byte: the total length of values whose length the byte alone
 * tells (scalars, fixstr, and the headers of fixmap/fixarray), 0 for the
 * rest; and the children a fixmap/fixarray adds. */
static uint8_t skip_len[256], skip_add[256];

__attribute__((constructor)) static void skip_tables(void)
{
    for (int c = 0; c < 256; c++) {
        uint8_t l = 0, a = 0;
        if (c <= 0x7f || c >= 0xe0)
            l = 1;
        else if (c <= 0x8f)
            l = 1, a = (uint8_t)((c & 0x0f) * 2);
        else if (c <= 0x9f)
            l = 1, a = (uint8_t)(c & 0x0f);
        else if (c <= 0xbf)
            l = (uint8_t)((c & 0x1f) + 1);
        else
            switch (c) {
            case 0xc0: case 0xc2: case 0xc3: l = 1; break;
            case 0xcc: case 0xd0: l = 2; break;
            case 0xcd: case 0xd1: case 0xd4: l = 3; break;
            case 0xd5: l = 4; break;
            case 0xca: case 0xce: case 0xd2: l = 5; break;
            case 0xd6: l = 6; break;
            case 0xcb: case 0xcf: case 0xd3: l = 9; break;
            case 0xd7: l = 10; break;
            case 0xd8: l = 18; break;
            default: break;
            }
        skip_len[c] = l;
        skip_add[c] = a;
    }
}

/* Skip one complete value without recursion: `need` counts the objects
 * still to pass (an array adds n, a map 2n), so nesting costs no stack and
 * hostile counts just run out of bytes. */
int rec_skip(const uint8_t **pp, const uint8_t *end)
{
    const uint8_t *p = *pp;
    uint64_t need = 1;
    while (need) {
        if (p >= end)
            return -1;
        uint8_t c = *p;
        size_t avail = (size_t)(end - p), l;
        need--;
        if (c < 0xc0) { /* fixint, fixmap, fixarray, fixstr: no table load on the critical path */
            l = c >= 0xa0 ? (size_t)(c & 0x1f) + 1 : 1;
            if (avail < l)
                return -1;
            need += skip_add[c];
            p += l;
            continue;
        }
        l = skip_len[c];
        if (l) {
            if (avail < l)
                return -1;
            need += skip_add[c];
            p += l;
            continue;
        }
        switch (c) {
        case 0xc4:
        case 0xd9:
            if (avail < 2)
                return -1;
            l = 2 + (size_t)p[1];
            break;
        case 0xc5:
        case 0xda:
            if (avail < 3)
                return -1;
            l = 3 + (size_t)mp_be16(p + 1);
            break;
        case 0xc6:
        case 0xdb:
            if (avail < 5)
                return -1;
            l = 5 + (size_t)mp_be32(p + 1);
            break;
        case 0xc7:
            if (avail < 2)
                return -1;
            l = 3 + (size_t)p[1];
            break;
        case 0xc8:
            if (avail < 3)
                return -1;
            l = 4 + (size_t)mp_be16(p + 1);
            break;
        case 0xc9:
            if (avail < 5)
                return -1;
            l = 6 + (size_t)mp_be32(p + 1);
            break;
        case 0xdc:
            if (avail < 3)
                return -1;
            need += mp_be16(p + 1);
            l = 3;
            break;
        case 0xdd:
            if (avail < 5)
                return -1;
            need += mp_be32(p + 1);
            l = 5;
            break;
        case 0xde:
            if (avail < 3)
                return -1;
            need += (uint64_t)mp_be16(p + 1) * 2;
            l = 3;
            break;
        case 0xdf:
            if (avail < 5)
                return -1;
            need += (uint64_t)mp_be32(p + 1) * 2;
            l = 5;
            break;
        default: return -1; /* 0xc1 */
        }
        if (avail < l)
            return -1;
        p += l;
    }
    *pp = p;
    return 0;
}

static inline int skip_val(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *q = *p;
    if (q < end) { /* the common scalars inline */
        uint8_t c = *q;
        if (c < 0x80 || c >= 0xe0 || (c >= 0xc0 && c <= 0xc3 && c != 0xc1)) {
            *p = q + 1;
            return 0;
        }
        if ((c & 0xe0) == 0xa0) {
            size_t l = (size_t)(c & 0x1f) + 1;
            if ((size_t)(end - q) < l)
                return -1;
            *p = q + l;
            return 0;
        }
        if (c == 0xd9 && end - q >= 2) {
            size_t l = (size_t)q[1] + 2;
            if ((size_t)(end - q) < l)
                return -1;
            *p = q + l;
            return 0;
        }
        if (c == 0xcb && end - q >= 9) {
            *p = q + 9;
            return 0;
        }
    }
    return rec_skip(p, end);
}

/* A map header at *p: the pair count, advancing *p; -1 if not a map. */
static inline int64_t map_hdr(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *q = *p;
    if (q >= end)
        return -1;
    if ((*q & 0xf0) == 0x80) {
        *p = q + 1;
        return *q & 0x0f;
    }
    if (*q == 0xde && end - q >= 3) {
        *p = q + 3;
        return mp_be16(q + 1);
    }
    if (*q == 0xdf && end - q >= 5) {
        *p = q + 5;
        return mp_be32(q + 1);
    }
    return -1;
}

static inline int key_is(const uint8_t *k, uint32_t kn, const char *s, size_t sn)
{
    return kn == sn && memcmp(k, s, sn) == 0;
}

/* ---- headers ----------------------------------------------------------------------- */

static uint8_t hdr_size(uint32_t n) { return n < 16 ? 1 : n < 65536 ? 3 : 5; }

static void hdr_put(uint8_t *d, int map, uint32_t n, uint8_t size)
{
    if (size == 1) {
        d[0] = (uint8_t)((map ? 0x80 : 0x90) | n);
    } else if (size == 3) {
        d[0] = map ? 0xde : 0xdc;
        d[1] = (uint8_t)(n >> 8);
        d[2] = (uint8_t)n;
    } else {
        d[0] = map ? 0xdf : 0xdd;
        d[1] = (uint8_t)(n >> 24);
        d[2] = (uint8_t)(n >> 16);
        d[3] = (uint8_t)(n >> 8);
        d[4] = (uint8_t)n;
    }
}

int rec_hdr_open(wbuf *out, rec_hdr *h, int map, uint32_t guess)
{
    h->off = out->len;
    h->size = hdr_size(guess);
    h->map = (uint8_t)(map != 0);
    if (out->cap - out->len < h->size && wbuf_grow(out, h->size))
        return -1;
    out->len += h->size;
    return 0;
}

int rec_hdr_close(wbuf *out, const rec_hdr *h, uint32_t count)
{
    uint8_t need = hdr_size(count);
    size_t body = h->off + h->size;
    size_t blen = out->len - body;
    if (need > h->size) {
        if (rec_reserve(out, need - h->size))
            return -1;
        memmove(out->data + h->off + need, out->data + body, blen);
    } else if (need < h->size) {
        memmove(out->data + h->off + need, out->data + body, blen);
    }
    out->len = h->off + need + blen;
    hdr_put(out->data + h->off, h->map, count, need);
    return 0;
}

int rec_str_open(wbuf *out, size_t *off)
{
    *off = out->len;
    if (out->cap - out->len < 2 && wbuf_grow(out, 2))
        return -1;
    out->len += 2; /* str8 guessed */
    return 0;
}

int rec_str_close(wbuf *out, size_t off)
{
    size_t n = out->len - off - 2;
    size_t hs = n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
    if (hs > 2 && rec_reserve(out, hs - 2))
        return -1;
    if (hs != 2)
        memmove(out->data + off + hs, out->data + off + 2, n);
    uint8_t *d = out->data + off;
    if (hs == 1)
        d[0] = (uint8_t)(0xa0 | n);
    else if (hs == 2)
        d[0] = 0xd9, d[1] = (uint8_t)n;
    else if (hs == 3)
        d[0] = 0xda, d[1] = (uint8_t)(n >> 8), d[2] = (uint8_t)n;
    else
        d[0] = 0xdb, d[1] = (uint8_t)(n >> 24), d[2] = (uint8_t)(n >> 16), d[3] = (uint8_t)(n >> 8), d[4] = (uint8_t)n;
    out->len = off + hs + n;
    return 0;
}

/* ---- accessors ----------------------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *f, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, f);
    vsnprintf(err, errlen, f, ap);
    va_end(ap);
}

/* Ruby's Integer(): sign, 0x/0b/0o/0 prefixes, underscores between digits. */
static int ruby_integer(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n'))
        i++;
    while (n > i && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n'))
        n--;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    int base = 10;
    if (i + 1 < n && s[i] == '0') {
        char b = s[i + 1];
        if (b == 'x' || b == 'X')
            base = 16, i += 2;
        else if (b == 'b' || b == 'B')
            base = 2, i += 2;
        else if (b == 'o' || b == 'O')
            base = 8, i += 2;
        else if (b == 'd' || b == 'D')
            base = 10, i += 2;
        else
            base = 8, i += 1;
    }
    if (i >= n)
        return -1;
    uint64_t v = 0;
    int prev_digit = 0;
    for (; i < n; i++) {
        char c = s[i];
        int d;
        if (c == '_' && prev_digit && i + 1 < n && s[i + 1] != '_') {
            prev_digit = 0;
            continue;
        }
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        if (d >= base)
            return -1;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return -1;
        v = v * (uint64_t)base + (uint64_t)d;
        prev_digit = 1;
    }
    if (!prev_digit || v > (uint64_t)INT32_MAX + (neg ? 1 : 0))
        return -1;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

typedef struct pb_step {
    int is_key;
    size_t koff, klen;
    uint32_t index;
} pb_step;

typedef struct path_builder {
    pb_step *steps;
    size_t n, cap;
    char *keys; /* all key bytes, NUL-separated */
    size_t klen, kcap;
} path_builder;

static int pb_add_key(path_builder *b, const char *k, size_t n)
{
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 4;
        pb_step *s = realloc(b->steps, nc * sizeof *s);
        if (!s)
            return -1;
        b->steps = s;
        b->cap = nc;
    }
    if (k) {
        if (b->klen + n + 1 > b->kcap) {
            size_t nc = (b->kcap + n + 1) * 2;
            char *nk = realloc(b->keys, nc);
            if (!nk)
                return -1;
            b->keys = nk;
            b->kcap = nc;
        }
        memcpy(b->keys + b->klen, k, n);
        b->keys[b->klen + n] = 0;
        b->steps[b->n] = (pb_step){1, b->klen, n, 0};
        b->klen += n + 1;
    } else {
        b->steps[b->n] = (pb_step){0, 0, 0, 0};
    }
    b->n++;
    return 0;
}

static int pb_add_index(path_builder *b, const char *s, size_t n, const char *param, char *err, size_t errlen)
{
    int64_t v;
    if (n == 1 && s[0] == ']') { /* Ruby's key[0..-1] when ']' comes first */
        set_err(err, errlen, "missing array index in '[]'. Invalid syntax: %s", param);
        return -1;
    }
    if (ruby_integer(s, n, &v) != 0) {
        char tmp[128];
        snprintf(tmp, sizeof tmp, "%.*s", (int)(n > 100 ? 100 : n), s);
        set_err(err, errlen, "invalid array index '%s'", tmp);
        return -1;
    }
    if (pb_add_key(b, NULL, 0))
        return -1;
    b->steps[b->n - 1].index = (uint32_t)(int32_t)v; /* negative: from the end */
    return 0;
}

static int parse_dot(path_builder *b, const char *param, char *err, size_t errlen)
{
    const char *s = param + 2;
    size_t n = strlen(s);
    /* Ruby's split('.') drops trailing empty fields */
    while (n > 0 && s[n - 1] == '.')
        n--;
    size_t i = 0;
    while (i < n) {
        const char *dot = memchr(s + i, '.', n - i);
        size_t e = dot ? (size_t)(dot - s) : n;
        const char *key = s + i;
        size_t kl = e - i;
        for (size_t j = 0; j < kl; j++) {
            if (key[j] == ' ' || key[j] == '\t' || key[j] == '\n' || key[j] == '\r' || key[j] == '\f' ||
                key[j] == '\v') {
                char tmp[256];
                snprintf(tmp, sizeof tmp, "%.*s", (int)(kl > 200 ? 200 : kl), key);
                set_err(err, errlen, "whitespace character is not allowed in dot notation. Use bracket notation: %s",
                        tmp);
                return -1;
            }
        }
        const char *br = memchr(key, '[', kl);
        if (!br) {
            if (pb_add_key(b, key, kl))
                return -1;
        } else {
            if (br > key && pb_add_key(b, key, (size_t)(br - key)))
                return -1;
            const char *k = br + 1, *ke = key + kl;
            int in_bracket = 1;
            while (k < ke) {
                if (in_bracket) {
                    const char *cb = memchr(k, ']', (size_t)(ke - k));
                    if (!cb) {
                        set_err(err, errlen, "'[' found but ']' not found. Invalid syntax: %s", param);
                        return -1;
                    }
                    if (pb_add_index(b, k, cb == k ? 1 : (size_t)(cb - k), param, err, errlen))
                        return -1;
                    k = cb + 1;
                    in_bracket = 0;
                } else {
                    const char *ob = memchr(k, '[', (size_t)(ke - k));
                    if (!ob) {
                        set_err(err, errlen, "found more characters after ']'. Invalid syntax: %s", param);
                        return -1;
                    }
                    k = ob + 1;
                    in_bracket = 1;
                }
            }
        }
        i = e + 1;
    }
    if (b->n == 0) {
        set_err(err, errlen, "empty keys in dot notation");
        return -1;
    }
    return 0;
}

static const char *find2(const char *s, size_t n, char a, char b)
{
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == a && s[i + 1] == b)
            return s + i;
    return NULL;
}

static int parse_bracket(path_builder *b, const char *param, char *err, size_t errlen)
{
    const char *s = param + 1;
    const char *e = s + strlen(s);
    int in_bracket = 0;
    while (s < e) {
        if (in_bracket) {
            if (*s == '\'' || *s == '"') {
                const char *q = find2(s, (size_t)(e - s), '\'', ']');
                if (!q)
                    q = find2(s, (size_t)(e - s), '"', ']');
                if (!q) {
                    set_err(err, errlen, "Incomplete bracket. Invalid syntax: %s", param);
                    return -1;
                }
                if (*q != *s) {
                    set_err(err, errlen, "Mismatched quotes. Invalid syntax: %s", param);
                    return -1;
                }
                if (pb_add_key(b, q > s ? s + 1 : s, q > s ? (size_t)(q - s - 1) : 0))
                    return -1;
                s = q + 2;
                in_bracket = 0;
            } else {
                const char *cb = memchr(s, ']', (size_t)(e - s));
                if (!cb) {
                    set_err(err, errlen, "'[' found but ']' not found. Invalid syntax: %s", param);
                    return -1;
                }
                if (pb_add_index(b, s, cb == s ? 1 : (size_t)(cb - s), param, err, errlen))
                    return -1;
                s = cb + 1;
                in_bracket = 0;
            }
        } else {
            const char *ob = memchr(s, '[', (size_t)(e - s));
            if (!ob) {
                set_err(err, errlen, "found more characters after ']'. Invalid syntax: %s", param);
                return -1;
            }
            s = ob + 1;
            in_bracket = 1;
        }
    }
    if (b->n == 0) {
        set_err(err, errlen, "empty keys in bracket notation");
        return -1;
    }
    return 0;
}

int rec_path_compile(rec_path *p, const char *text, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    path_builder b = {0};
    int rc;
    if (strncmp(text, "$.", 2) == 0)
        rc = parse_dot(&b, text, err, errlen);
    else if (strncmp(text, "$[", 2) == 0)
        rc = parse_bracket(&b, text, err, errlen);
    else
        rc = pb_add_key(&b, text, strlen(text));
    if (rc) {
        free(b.steps);
        free(b.keys);
        if (err && errlen && !err[0])
            snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* one block: steps, then the key bytes */
    size_t sz = b.n * sizeof(rec_path_step);
    rec_path_step *steps = malloc(sz + b.klen + 1);
    char *txt = strdup(text);
    if (!steps || !txt) {
        free(steps);
        free(txt);
        free(b.steps);
        free(b.keys);
        set_err(err, errlen, "out of memory");
        return -1;
    }
    char *kb = (char *)steps + sz;
    if (b.klen)
        memcpy(kb, b.keys, b.klen);
    kb[b.klen] = 0;
    for (size_t i = 0; i < b.n; i++) {
        steps[i].key = b.steps[i].is_key ? kb + b.steps[i].koff : NULL;
        steps[i].key_len = b.steps[i].klen;
        steps[i].index = b.steps[i].index;
    }
    free(b.steps);
    free(b.keys);
    p->steps = steps;
    p->n = b.n;
    p->text = txt;
    return 0;
}

void rec_path_free(rec_path *p)
{
    free(p->steps);
    free(p->text);
    memset(p, 0, sizeof *p);
}

/* ---- lookup ----------------------------------------------------------------------------- */

/* Find `key` in the map at *p (header included); on success *p is the value. */
static const uint8_t *map_find(const uint8_t *p, const uint8_t *end, const char *key, size_t klen, size_t *vlen)
{
    int64_t n = map_hdr(&p, end);
    for (int64_t i = 0; i < n; i++) {
        const uint8_t *k;
        uint32_t kn;
        int r = rd_str(&p, end, &k, &kn);
        if (r < 0)
            return NULL;
        if (r == 0) {
            if (skip_val(&p, end))
                return NULL;
        } else if (kn == klen && memcmp(k, key, klen) == 0) {
            const uint8_t *v = p;
            if (skip_val(&p, end))
                return NULL;
            *vlen = (size_t)(p - v);
            return v;
        }
        if (skip_val(&p, end))
            return NULL;
    }
    return NULL;
}

static const uint8_t *array_at(const uint8_t *p, const uint8_t *end, uint32_t index, size_t *vlen)
{
    mp_obj a;
    if (mp_read(&p, end, &a) != MP_OK || a.type != MP_ARRAY)
        return NULL;
    int64_t idx = (int32_t)index;
    if (idx < 0)
        idx += a.len;
    if (idx < 0 || idx >= (int64_t)a.len)
        return NULL;
    for (int64_t i = 0; i < idx; i++)
        if (skip_val(&p, end))
            return NULL;
    const uint8_t *v = p;
    if (skip_val(&p, end))
        return NULL;
    *vlen = (size_t)(p - v);
    return v;
}

const uint8_t *rec_get(const uint8_t *rec, size_t len, const char *key, size_t key_len, size_t *vlen)
{
    return map_find(rec, rec + len, key, key_len, vlen);
}

const uint8_t *rec_lookup(const uint8_t *rec, size_t len, const rec_path *path, size_t *vlen)
{
    const uint8_t *cur = rec;
    size_t clen = len;
    for (size_t i = 0; i < path->n; i++) {
        const rec_path_step *st = &path->steps[i];
        const uint8_t *v = st->key ? map_find(cur, cur + clen, st->key, st->key_len, &clen)
                                   : array_at(cur, cur + clen, st->index, &clen);
        if (!v)
            return NULL;
        cur = v;
    }
    *vlen = clen;
    return cur;
}

/* ---- text ---------------------------------------------------------------------------------- */

size_t rec_double_text(char buf[32], double d)
{
    if (isnan(d))
        return (size_t)snprintf(buf, 32, "NaN");
    if (isinf(d))
        return (size_t)snprintf(buf, 32, d < 0 ? "-Infinity" : "Infinity");
    if (d == 0)
        return (size_t)snprintf(buf, 32, signbit(d) ? "-0.0" : "0.0");
    char e[40];
    int prec;
    for (prec = 0; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, d);
        if (strtod(e, NULL) == d)
            break;
    }
    if (prec == 17)
        snprintf(e, sizeof e, "%.16e", d);
    /* e: [-]D[.DDDD]e[+-]XX */
    char digits[24];
    size_t nd = 0;
    const char *s = e;
    int neg = 0;
    if (*s == '-')
        neg = 1, s++;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nd < sizeof digits - 1)
            digits[nd++] = *s;
    int exp10 = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    size_t o = 0;
    if (neg)
        buf[o++] = '-';
    if (exp10 >= 16 || exp10 < -4) {
        buf[o++] = digits[0];
        buf[o++] = '.';
        if (nd > 1) {
            memcpy(buf + o, digits + 1, nd - 1);
            o += nd - 1;
        } else {
            buf[o++] = '0';
        }
        o += (size_t)snprintf(buf + o, 32 - o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
        return o;
    }
    if (exp10 < 0) {
        buf[o++] = '0';
        buf[o++] = '.';
        for (int i = -1; i > exp10; i--)
            buf[o++] = '0';
        memcpy(buf + o, digits, nd);
        o += nd;
    } else {
        size_t ip = (size_t)exp10 + 1; /* digits before the point */
        for (size_t i = 0; i < ip; i++)
            buf[o++] = i < nd ? digits[i] : '0';
        buf[o++] = '.';
        if (nd > ip) {
            memcpy(buf + o, digits + ip, nd - ip);
            o += nd - ip;
        } else {
            buf[o++] = '0';
        }
    }
    buf[o] = 0;
    return o;
}

static int value_text(wbuf *out, const uint8_t *v, size_t vlen, int ruby_nil)
{
    const uint8_t *p = v, *end = v + vlen;
    mp_obj o;
    if (mp_read(&p, end, &o) != MP_OK)
        return -1;
    char tmp[40];
    int n;
    switch (o.type) {
    case MP_NIL: return ruby_nil ? 0 : rec_add(out, "null", 4);
    case MP_BOOL: return o.v.b ? rec_add(out, "true", 4) : rec_add(out, "false", 5);
    case MP_UINT:
        n = snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)o.v.u);
        return rec_add(out, tmp, (size_t)n);
    case MP_INT:
        n = snprintf(tmp, sizeof tmp, "%lld", (long long)o.v.i);
        return rec_add(out, tmp, (size_t)n);
    case MP_FLOAT: return rec_add(out, tmp, rec_double_text(tmp, o.v.f));
    case MP_STR:
    case MP_BIN: return rec_add(out, o.ptr, o.len);
    case MP_EXT:
        if (o.ext_type == 0 && o.len == 8) {
            n = snprintf(tmp, sizeof tmp, "%u", mp_be32(o.ptr)); /* EventTime#to_s is its seconds */
            return rec_add(out, tmp, (size_t)n);
        }
        /* fall through */
    default: {
        const uint8_t *q = v;
        return jw_value(out, &q, end);
    }
    }
}

int rec_value_text(wbuf *out, const uint8_t *v, size_t vlen) { return value_text(out, v, vlen, 0); }
int rec_value_to_s(wbuf *out, const uint8_t *v, size_t vlen) { return value_text(out, v, vlen, 1); }

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
