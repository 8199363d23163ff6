/*
 * aggregator/record_path.c: record accessors (Fluentd's record_accessor
 * syntax: "key", "$.a.b", "$['a']['b.c']", "$.items[0]"), compiled once and
 * looked up per record; see record.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/record.h"
#include "aggregator/record_impl.h"

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

/* Inside brackets, not quoted: an array index up to the ']', which *s then
 * passes. */
static int bracket_index(path_builder *b, const char **s, const char *e, const char *param, char *err, size_t errlen)
{
    const char *cb = memchr(*s, ']', (size_t)(e - *s));
    if (!cb) {
        set_err(err, errlen, "'[' found but ']' not found. Invalid syntax: %s", param);
        return -1;
    }
    if (pb_add_index(b, *s, cb == *s ? 1 : (size_t)(cb - *s), param, err, errlen))
        return -1;
    *s = cb + 1;
    return 0;
}

/* After a ']': on to the next '[', which *s then passes. */
static int next_bracket(const char **s, const char *e, const char *param, char *err, size_t errlen)
{
    const char *ob = memchr(*s, '[', (size_t)(e - *s));
    if (!ob) {
        set_err(err, errlen, "found more characters after ']'. Invalid syntax: %s", param);
        return -1;
    }
    *s = ob + 1;
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
                int rc = in_bracket ? bracket_index(b, &k, ke, param, err, errlen)
                                    : next_bracket(&k, ke, param, err, errlen);
                if (rc)
                    return -1;
                in_bracket = !in_bracket;
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
                if (bracket_index(b, &s, e, param, err, errlen))
                    return -1;
                in_bracket = 0;
            }
        } else {
            if (next_bracket(&s, e, param, err, errlen))
                return -1;
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

void rec_paths_free(rec_path *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rec_path_free(&v[i]);
    free(v);
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

int rec_parse_index(const char *s, size_t n, int canonical, int32_t *v)
{
    size_t i = 0;
    int neg = 0;
    if (i < n && s[i] == '-')
        neg = 1, i++;
    if (i >= n || n - i > 9 || (canonical && ((s[i] == '0' && n - i > 1) || (neg && s[i] == '0'))))
        return -1;
    int32_t x = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        x = x * 10 + (s[i] - '0');
    }
    *v = neg ? -x : x;
    return 0;
}
