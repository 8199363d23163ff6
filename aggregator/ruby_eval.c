/*
 * aggregator/ruby_eval.c: evaluating a compiled Ruby expression for one
 * event (see ruby_expr.h): values, conversions (to_s, inspect, msgpack),
 * operators, indexing and the tree walk. The methods are in ruby_methods.c.
 *
 * Values that need new bytes (a concatenation, a gsub, the items of a list)
 * live in a thread-local arena, reset at the start of each evaluation and
 * kept (grown to the largest evaluation) for the next: no malloc per record
 * once it is warm.
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/json.h"
#include "lib/mp.h"
#include "lib/timefmt.h"
#include "aggregator/record.h"
#include "aggregator/ruby_impl.h"

/* ---- the arena ------------------------------------------------------------------------------------ */

typedef struct ablk {
    struct ablk *next;
    size_t cap, used;
    max_align_t data[];
} ablk;

static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;
static __thread ablk *a_head, *a_cur;

static void arena_free(void *p)
{
    for (ablk *b = p, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
}
static void arena_init(void) { pthread_key_create(&arena_key, arena_free); }

/* Back to empty, keeping the first block (16 KiB: what ordinary records
 * need) and freeing what a large record made it grow by. */
static void arena_reset(void)
{
    if (a_head && a_head->next) {
        arena_free(a_head->next);
        a_head->next = NULL;
    }
    if (a_head && a_head->cap > 16384) {
        free(a_head);
        a_head = NULL;
        pthread_setspecific(arena_key, NULL);
    }
    if (a_head)
        a_head->used = 0;
    a_cur = a_head;
}

void *rb_alloc(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    while (a_cur && a_cur->cap - a_cur->used < n)
        a_cur = a_cur->next;
    if (!a_cur) {
        size_t cap = n > 16384 ? n : 16384;
        ablk *b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->cap = cap, b->used = 0, b->next = NULL;
        if (!a_head) {
            pthread_once(&arena_once, arena_init);
            pthread_setspecific(arena_key, b);
            a_head = b;
        } else {
            ablk *t = a_head;
            while (t->next)
                t = t->next;
            t->next = b;
        }
        a_cur = b;
    }
    void *p = (char *)a_cur->data + a_cur->used;
    a_cur->used += n;
    return p;
}

char *rb_strdup(const char *s, size_t n)
{
    char *d = rb_alloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

int rb_wstr(rb_ev *ev, const wbuf *w, rv *out)
{
    char *s = rb_strdup(w->len ? (const char *)w->data : "", w->len);
    if (!s)
        return rb_fail(ev, "out of memory");
    *out = rv_str(s, w->len);
    return 0;
}

/* ---- errors and classes -------------------------------------------------------------------------- */

int rb_fail(rb_ev *ev, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->err, ev->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

const char *rb_class(const rv *v)
{
    static const char *const names[] = {"NilClass", "FalseClass", "TrueClass", "Integer", "Float",  "String",
                                        "Hash",     "Array",      "Object",    "Time",    "Array", "Regexp"};
    return names[v->t];
}

/* how Ruby 3.1 names a receiver or an argument in its messages: the
 * inspect of a short value (7:Integer, "warn":String), else the class */
static int describe(rb_ev *ev, const rv *v, char *buf, size_t cap, int with_class)
{
    wbuf w = {0};
    int ok = v->t <= V_STR && !rb_inspect(ev, v, &w) && w.len <= 65;
    if (ok)
        snprintf(buf, cap, "%.*s%s%s", (int)w.len, (const char *)w.data, with_class ? ":" : "",
                 with_class ? rb_class(v) : "");
    else
        snprintf(buf, cap, "%s%s", with_class ? "an instance of " : "", rb_class(v));
    wbuf_free(&w);
    return 0;
}

int rb_no_method(rb_ev *ev, const char *m, const rv *v)
{
    char d[96];
    describe(ev, v, d, sizeof d, 1);
    return rb_fail(ev, "undefined method `%s' for %s", m, d);
}

/* ---- values from msgpack, and back --------------------------------------------------------------- */

rv rb_from_mp(const uint8_t *v, size_t n)
{
    const uint8_t *p = v;
    mp_obj o;
    if (mp_read(&p, v + n, &o) != MP_OK)
        return (rv){.t = V_NIL};
    switch (o.type) {
    case MP_NIL: return (rv){.t = V_NIL};
    case MP_BOOL: return rv_bool(o.v.b);
    case MP_UINT: return o.v.u > INT64_MAX ? rv_float((double)o.v.u) : rv_int((int64_t)o.v.u);
    case MP_INT: return rv_int(o.v.i);
    case MP_FLOAT: return rv_float(o.v.f);
    case MP_STR:
    case MP_BIN: return rv_str((const char *)o.ptr, o.len);
    case MP_MAP: return (rv){.t = V_MAP, .mp = v, .n = n};
    case MP_ARRAY: return (rv){.t = V_ARY, .mp = v, .n = n};
    default: return (rv){.t = V_RAW, .mp = v, .n = n};
    }
}

int rb_list(rb_ev *ev, const rv *a, rv *out)
{
    if (a->t == V_LIST) {
        *out = *a;
        return 0;
    }
    const uint8_t *p = a->mp, *end = a->mp + a->n;
    mp_obj o;
    if (mp_read(&p, end, &o) != MP_OK || o.type != MP_ARRAY)
        return rb_fail(ev, "malformed array");
    rv *items = rb_alloc((o.len ? o.len : 1) * sizeof *items);
    if (!items)
        return rb_fail(ev, "out of memory");
    for (uint32_t i = 0; i < o.len; i++) {
        const uint8_t *s = p;
        if (rec_skip(&p, end))
            return rb_fail(ev, "malformed array");
        items[i] = rb_from_mp(s, (size_t)(p - s));
    }
    *out = (rv){.t = V_LIST, .items = items, .n = o.len};
    return 0;
}

static int time_text(wbuf *out, const rv *v, const char *fmt)
{
    char buf[128];
    size_t n = time_fmt(buf, sizeof buf, fmt, v->sec, v->nsec, v->utc);
    return rec_add(out, buf, n);
}

int rb_to_mp(rb_ev *ev, const rv *v, wbuf *out)
{
    switch (v->t) {
    case V_NIL: return mpw_nil(out);
    case V_FALSE:
    case V_TRUE: return mpw_bool(out, v->t == V_TRUE);
    case V_INT: return mpw_int(out, v->i);
    case V_FLOAT: return mpw_double(out, v->f);
    case V_STR: return mpw_str(out, v->s, v->n);
    case V_MAP:
    case V_ARY:
    case V_RAW: return rec_add(out, v->mp, v->n);
    case V_LIST:
        if (mpw_array(out, (uint32_t)v->n))
            return -1;
        for (size_t i = 0; i < v->n; i++)
            if (rb_to_mp(ev, &v->items[i], out))
                return -1;
        return 0;
    default: { /* a Time or a Regexp: its text */
        size_t off;
        if (rec_str_open(out, &off) || rb_to_s(ev, v, out))
            return -1;
        return rec_str_close(out, off);
    }
    }
}

/* Ruby's String#inspect (UTF-8) */
static int str_inspect(wbuf *out, const char *s, size_t n)
{
    if (wbuf_addc(out, '"'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *e = NULL;
        char tmp[8];
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\t': e = "\\t"; break;
        case '\r': e = "\\r"; break;
        case 27: e = "\\e"; break;
        case 7: e = "\\a"; break;
        case 8: e = "\\b"; break;
        case 11: e = "\\v"; break;
        case 12: e = "\\f"; break;
        case '#':
            if (i + 1 < n && (s[i + 1] == '{' || s[i + 1] == '$' || s[i + 1] == '@'))
                e = "\\#";
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                snprintf(tmp, sizeof tmp, "\\u%04X", c);
                e = tmp;
            }
        }
        if (e ? wbuf_add(out, e, strlen(e)) : wbuf_addc(out, (char)c))
            return -1;
    }
    return wbuf_addc(out, '"');
}

static int inspect_any(rb_ev *ev, const rv *v, wbuf *out, int depth);

/* a msgpack map or array, as Ruby 3.1 inspects a Hash ({"a"=>1}) or an Array */
static int inspect_mp(rb_ev *ev, const rv *v, wbuf *out, int depth)
{
    const uint8_t *p = v->mp, *end = v->mp + v->n;
    mp_obj o;
    if (mp_read(&p, end, &o) != MP_OK)
        return -1;
    int map = o.type == MP_MAP;
    if (wbuf_addc(out, map ? '{' : '['))
        return -1;
    for (uint32_t i = 0; i < o.len * (map ? 2u : 1u); i++) {
        const uint8_t *s = p;
        if (rec_skip(&p, end))
            return -1;
        rv x = rb_from_mp(s, (size_t)(p - s));
        const char *sep = !i ? "" : map && (i & 1) ? "=>" : ", ";
        if (wbuf_add(out, sep, strlen(sep)) || inspect_any(ev, &x, out, depth + 1))
            return -1;
    }
    return wbuf_addc(out, map ? '}' : ']');
}

static int inspect_any(rb_ev *ev, const rv *v, wbuf *out, int depth)
{
    if (depth > 64)
        return rb_fail(ev, "value nested too deeply");
    switch (v->t) {
    case V_NIL: return wbuf_add(out, "nil", 3);
    case V_STR: return str_inspect(out, v->s, v->n);
    case V_MAP:
    case V_ARY: return inspect_mp(ev, v, out, depth);
    case V_LIST:
        if (wbuf_addc(out, '['))
            return -1;
        for (size_t i = 0; i < v->n; i++)
            if ((i && wbuf_add(out, ", ", 2)) || inspect_any(ev, &v->items[i], out, depth + 1))
                return -1;
        return wbuf_addc(out, ']');
    case V_TIME: return time_text(out, v, v->utc ? "%Y-%m-%d %H:%M:%S.%N UTC" : "%Y-%m-%d %H:%M:%S.%N %z");
    case V_RE:
        return wbuf_addc(out, '/') || wbuf_add(out, v->re->src, strlen(v->re->src)) || wbuf_addc(out, '/');
    default: return rb_to_s(ev, v, out);
    }
}

int rb_inspect(rb_ev *ev, const rv *v, wbuf *out) { return inspect_any(ev, v, out, 0); }

int rb_to_s(rb_ev *ev, const rv *v, wbuf *out)
{
    char tmp[40];
    switch (v->t) {
    case V_NIL: return 0;
    case V_FALSE: return wbuf_add(out, "false", 5);
    case V_TRUE: return wbuf_add(out, "true", 4);
    case V_INT: return rec_add(out, tmp, fmt_i64(tmp, v->i));
    case V_FLOAT: return rec_add(out, tmp, rec_double_text(tmp, v->f));
    case V_STR: return rec_add(out, v->s, v->n);
    case V_TIME: return time_text(out, v, v->utc ? "%Y-%m-%d %H:%M:%S UTC" : "%Y-%m-%d %H:%M:%S %z");
    case V_RE: /* Regexp#to_s */
        return wbuf_add(out, "(?-mix:", 7) || wbuf_add(out, v->re->src, strlen(v->re->src)) || wbuf_addc(out, ')');
    case V_RAW: return rec_value_to_s(out, v->mp, v->n);
    default: return inspect_any(ev, v, out, 0);
    }
}

int rb_str_of(rb_ev *ev, const rv *v, rv *out)
{
    char tmp[40];
    size_t n;
    switch (v->t) { /* the text of a string, nil, a boolean or a number needs no buffer but the arena */
    case V_STR: *out = *v; return 0;
    case V_NIL: *out = rv_str("", 0); return 0;
    case V_TRUE: *out = rv_str("true", 4); return 0;
    case V_FALSE: *out = rv_str("false", 5); return 0;
    case V_INT: n = fmt_i64(tmp, v->i); break;
    case V_FLOAT: n = rec_double_text(tmp, v->f); break;
    default: n = SIZE_MAX;
    }
    if (n != SIZE_MAX) {
        char *s = rb_strdup(tmp, n);
        if (!s)
            return rb_fail(ev, "out of memory");
        *out = rv_str(s, n);
        return 0;
    }
    wbuf b = {0};
    int rc = rb_to_s(ev, v, &b) ? rb_fail(ev, "out of memory") : rb_wstr(ev, &b, out);
    wbuf_free(&b);
    return rc;
}

/* ---- operators ----------------------------------------------------------------------------------- */

static int is_num(const rv *v) { return v->t == V_INT || v->t == V_FLOAT; }
static double num(const rv *v) { return v->t == V_INT ? (double)v->i : v->f; }

int rb_equal(const rv *a, const rv *b)
{
    if (is_num(a) && is_num(b))
        return a->t == V_INT && b->t == V_INT ? a->i == b->i : num(a) == num(b);
    if (a->t != b->t) {
        int la = a->t == V_ARY || a->t == V_LIST, lb = b->t == V_ARY || b->t == V_LIST;
        if (!la || !lb)
            return 0;
    }
    switch (a->t) {
    case V_NIL:
    case V_TRUE:
    case V_FALSE: return 1;
    case V_STR: return a->n == b->n && (!a->n || !memcmp(a->s, b->s, a->n));
    case V_TIME: return a->sec == b->sec && a->nsec == b->nsec;
    case V_RE: return a->re == b->re;
    default: { /* maps and arrays: the same msgpack */
        wbuf x = {0}, y = {0};
        char e[8];
        rb_ev ev = {NULL, e, sizeof e};
        int eq = !rb_to_mp(&ev, a, &x) && !rb_to_mp(&ev, b, &y) && x.len == y.len &&
                 (!x.len || !memcmp(x.data, y.data, x.len));
        wbuf_free(&x);
        wbuf_free(&y);
        return eq;
    }
    }
}

/* <=> for < <= > >=; -2 when they do not compare */
static int compare(const rv *a, const rv *b)
{
    if (is_num(a) && is_num(b)) {
        if (a->t == V_INT && b->t == V_INT)
            return (a->i > b->i) - (a->i < b->i);
        double x = num(a), y = num(b);
        return isnan(x) || isnan(y) ? -2 : (x > y) - (x < y);
    }
    if (a->t == V_STR && b->t == V_STR) {
        size_t m = a->n < b->n ? a->n : b->n;
        int c = m ? memcmp(a->s, b->s, m) : 0;
        return c ? (c > 0) - (c < 0) : (a->n > b->n) - (a->n < b->n);
    }
    if (a->t == V_TIME && b->t == V_TIME)
        return a->sec != b->sec ? (a->sec > b->sec) - (a->sec < b->sec) : (a->nsec > b->nsec) - (a->nsec < b->nsec);
    return -2;
}

static rv time_plus(const rv *t, double secs)
{
    double x = (double)t->sec + t->nsec / 1e9 + secs;
    rv r = *t;
    if (x < 0)
        x = 0;
    r.sec = (uint32_t)x;
    r.nsec = (uint32_t)((x - floor(x)) * 1e9);
    return r;
}

static int arith(rb_ev *ev, int op, const rv *a, const rv *b, rv *out)
{
    if (is_num(a) && is_num(b)) {
        if (a->t == V_INT && b->t == V_INT) {
            int64_t x = a->i, y = b->i, r;
            switch (op) {
            case '+':
                if (__builtin_add_overflow(x, y, &r))
                    return rb_fail(ev, "integer overflow (weir has no Bignum)");
                break;
            case '-':
                if (__builtin_sub_overflow(x, y, &r))
                    return rb_fail(ev, "integer overflow (weir has no Bignum)");
                break;
            case '*':
                if (__builtin_mul_overflow(x, y, &r))
                    return rb_fail(ev, "integer overflow (weir has no Bignum)");
                break;
            default: /* / and %: Ruby floors */
                if (!y)
                    return rb_fail(ev, "divided by 0");
                if (x == INT64_MIN && y == -1)
                    return rb_fail(ev, "integer overflow (weir has no Bignum)");
                r = x / y;
                int64_t m = x % y;
                if (m && ((m < 0) != (y < 0)))
                    r--, m += y;
                if (op == '%')
                    r = m;
            }
            *out = rv_int(r);
            return 0;
        }
        double x = num(a), y = num(b), r;
        switch (op) {
        case '+': r = x + y; break;
        case '-': r = x - y; break;
        case '*': r = x * y; break;
        case '/': r = x / y; break;
        default:
            r = fmod(x, y);
            if (r != 0 && ((r < 0) != (y < 0)))
                r += y;
        }
        *out = rv_float(r);
        return 0;
    }
    if (a->t == V_STR && op == '+') {
        if (b->t != V_STR)
            return rb_fail(ev, "no implicit conversion of %s into String", rb_class(b));
        char *s = rb_alloc(a->n + b->n + 1);
        if (!s)
            return rb_fail(ev, "out of memory");
        if (a->n)
            memcpy(s, a->s, a->n);
        if (b->n)
            memcpy(s + a->n, b->s, b->n);
        s[a->n + b->n] = 0;
        *out = rv_str(s, a->n + b->n);
        return 0;
    }
    if (a->t == V_STR && op == '*') {
        if (b->t != V_INT)
            return rb_fail(ev, "no implicit conversion of %s into Integer", rb_class(b));
        if (b->i < 0)
            return rb_fail(ev, "negative argument");
        if (a->n && (uint64_t)b->i > (1u << 20) / a->n)
            return rb_fail(ev, "argument too big (weir: a string of at most 1 MiB)");
        size_t n = a->n * (size_t)b->i;
        char *s = rb_alloc(n + 1);
        if (!s)
            return rb_fail(ev, "out of memory");
        for (int64_t i = 0; i < b->i; i++)
            memcpy(s + (size_t)i * a->n, a->s, a->n);
        s[n] = 0;
        *out = rv_str(s, n);
        return 0;
    }
    if (a->t == V_TIME && (op == '+' || op == '-') && is_num(b)) {
        *out = time_plus(a, op == '+' ? num(b) : -num(b));
        return 0;
    }
    if (a->t == V_TIME && op == '-' && b->t == V_TIME) {
        *out = rv_float(((double)a->sec - b->sec) + ((double)a->nsec - b->nsec) / 1e9);
        return 0;
    }
    if (is_num(a))
        return rb_fail(ev, "%s can't be coerced into %s", rb_class(b), rb_class(a));
    char m[2] = {(char)op, 0};
    return rb_no_method(ev, m, a);
}

/* the index (in characters) of the first character at or after byte b */
static size_t char_index(const char *s, size_t b)
{
    size_t c = 0;
    for (size_t i = 0; i < b; i++)
        c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

int rb_regex_match(rb_ev *ev, const rv *s, const rv *re, rv *out)
{
    const PCRE2_SIZE *ov;
    int rc = rx_exec(re->re, (const uint8_t *)s->s, s->n, &ov);
    if (rc < 0)
        return rb_fail(ev, "regexp match failed (match limit)");
    *out = rc ? rv_int((int64_t)char_index(s->s, ov[0])) : (rv){.t = V_NIL};
    return 0;
}

/* ---- the tree walk ------------------------------------------------------------------------------- */

static int tag_list(rb_ev *ev, int var, rv *out)
{
    const char *t = ev->env->tag;
    size_t n = ev->env->tag_len;
    while (n && t[n - 1] == '.') /* split('.') drops trailing empty fields */
        n--;
    size_t parts = n ? 1 : 0;
    for (size_t i = 0; i < n; i++)
        parts += t[i] == '.';
    rv *items = rb_alloc((parts ? parts : 1) * sizeof *items);
    if (!items)
        return rb_fail(ev, "out of memory");
    size_t s = 0, k = 0;
    for (size_t i = 0; i <= n && n; i++) {
        if (i < n && t[i] != '.')
            continue;
        /* part k is t[s..i) */
        if (var == VAR_TAG_PARTS)
            items[k] = rv_str(t + s, i - s);
        else if (var == VAR_TAG_PREFIX)
            items[k] = rv_str(t, i);
        else
            items[k] = rv_str(t + s, n - s);
        k++;
        s = i + 1;
    }
    *out = (rv){.t = V_LIST, .items = items, .n = parts};
    return 0;
}

static int eval(rb_ev *ev, const rb_node *e, rv *out);

static int eval_kids(rb_ev *ev, const rb_node *e, size_t from, rv *args)
{
    for (size_t i = from; i < e->nkids; i++)
        if (eval(ev, e->kids[i], &args[i - from]))
            return -1;
    return 0;
}

static int truthy(const rv *v) { return v->t != V_NIL && v->t != V_FALSE; }

static int eval(rb_ev *ev, const rb_node *e, rv *out);

/* a[...] and a.m(...): their own frame (the argument array stays off the
 * frames of the other nodes) */
static int eval_call(rb_ev *ev, const rb_node *e, rv *out)
{
    rv a, args[17];
    if (eval(ev, e->kids[0], &a))
        return -1;
    if (e->kind == N_CALL && e->op && a.t == V_NIL) { /* &. */
        *out = a;
        return 0;
    }
    if (eval_kids(ev, e, 1, args))
        return -1;
    return e->kind == N_INDEX ? rb_index(ev, &a, args, e->nkids - 1, out)
                              : rb_call(ev, (int)e->i, &a, args, e->nkids - 1, out);
}

static int eval(rb_ev *ev, const rb_node *e, rv *out)
{
    rv a, b;
    switch (e->kind) {
    case N_NIL: *out = (rv){.t = V_NIL}; return 0;
    case N_TRUE: *out = rv_bool(1); return 0;
    case N_FALSE: *out = rv_bool(0); return 0;
    case N_INT: *out = rv_int(e->i); return 0;
    case N_FLOAT: *out = rv_float(e->f); return 0;
    case N_STR: *out = rv_str(e->s, e->n); return 0;
    case N_CONST: *out = rb_from_mp((const uint8_t *)e->s, e->n); return 0;
    case N_REGEX: *out = (rv){.t = V_RE, .re = e->re}; return 0;
    case N_DSTR: { /* the parts' texts, then one copy of them in the arena */
        rv *parts = rb_alloc(e->nkids * sizeof *parts);
        size_t n = 0;
        if (!parts)
            return rb_fail(ev, "out of memory");
        for (size_t i = 0; i < e->nkids; i++) {
            if (eval(ev, e->kids[i], &a) || rb_str_of(ev, &a, &parts[i]))
                return -1;
            n += parts[i].n;
        }
        char *s = rb_alloc(n + 1);
        if (!s)
            return rb_fail(ev, "out of memory");
        for (size_t i = 0, o = 0; i < e->nkids; o += parts[i].n, i++)
            if (parts[i].n)
                memcpy(s + o, parts[i].s, parts[i].n);
        s[n] = 0;
        *out = rv_str(s, n);
        return 0;
    }
    case N_VAR:
        switch (e->i) {
        case VAR_RECORD: *out = rb_from_mp(ev->env->rec, ev->env->len); return 0; /* one map: rb_env's contract */
        case VAR_TAG: *out = rv_str(ev->env->tag, ev->env->tag_len); return 0;
        case VAR_TIME: *out = (rv){.t = V_TIME, .sec = ev->env->sec, .nsec = ev->env->nsec}; return 0;
        case VAR_HOSTNAME: *out = rv_str(ev->env->hostname, ev->env->hostname_len); return 0;
        default: return tag_list(ev, (int)e->i, out);
        }
    case N_ARRAY: {
        rv *items = rb_alloc((e->nkids ? e->nkids : 1) * sizeof *items);
        if (!items)
            return rb_fail(ev, "out of memory");
        if (eval_kids(ev, e, 0, items))
            return -1;
        *out = (rv){.t = V_LIST, .items = items, .n = e->nkids};
        return 0;
    }
    case N_INDEX:
    case N_CALL: return eval_call(ev, e, out);
    case N_NOT:
        if (eval(ev, e->kids[0], &a))
            return -1;
        *out = rv_bool(!truthy(&a));
        return 0;
    case N_NEG:
        if (eval(ev, e->kids[0], &a))
            return -1;
        if (a.t == V_INT && a.i != INT64_MIN)
            *out = rv_int(-a.i);
        else if (a.t == V_FLOAT)
            *out = rv_float(-a.f);
        else
            return rb_no_method(ev, "-@", &a);
        return 0;
    case N_AND:
    case N_OR:
        if (eval(ev, e->kids[0], &a))
            return -1;
        if (truthy(&a) == (e->kind == N_OR)) {
            *out = a;
            return 0;
        }
        return eval(ev, e->kids[1], out);
    case N_TERN:
        if (eval(ev, e->kids[0], &a))
            return -1;
        return eval(ev, e->kids[truthy(&a) ? 1 : 2], out);
    case N_TIME_NOW: {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        *out = (rv){.t = V_TIME, .sec = (uint32_t)ts.tv_sec, .nsec = (uint32_t)ts.tv_nsec};
        return 0;
    }
    case N_TIME_AT:
        if (eval(ev, e->kids[0], &a))
            return -1;
        if (!is_num(&a))
            return rb_fail(ev, "can't convert %s into an exact number", rb_class(&a));
        *out = time_plus(&(rv){.t = V_TIME}, num(&a));
        return 0;
    case N_BIN: break;
    default: return rb_fail(ev, "internal: unknown node");
    }
    if (eval(ev, e->kids[0], &a) || eval(ev, e->kids[1], &b))
        return -1;
    int c;
    switch (e->op) {
    case OP_EQ: *out = rv_bool(rb_equal(&a, &b)); return 0;
    case OP_NE: *out = rv_bool(!rb_equal(&a, &b)); return 0;
    case OP_MATCH:
    case OP_NMATCH: {
        const rv *s = a.t == V_RE ? &b : &a, *re = a.t == V_RE ? &a : &b;
        rv m = {.t = V_NIL};
        if (re->t != V_RE) {
            if (a.t != V_STR && a.t != V_NIL)
                return rb_no_method(ev, "=~", &a);
            return rb_fail(ev, "wrong argument type %s (expected Regexp)", rb_class(&b));
        }
        if (s->t == V_STR && rb_regex_match(ev, s, re, &m))
            return -1;
        if (s->t != V_STR && s->t != V_NIL)
            return rb_fail(ev, "no implicit conversion of %s into String", rb_class(s));
        *out = e->op == OP_MATCH ? m : rv_bool(m.t == V_NIL);
        return 0;
    }
    case '<':
    case '>':
    case OP_LE:
    case OP_GE:
        c = compare(&a, &b);
        if (c == -2) {
            if (a.t == V_NIL || !(is_num(&a) || a.t == V_STR || a.t == V_TIME))
                return rb_no_method(ev, e->op == '<' ? "<" : e->op == '>' ? ">" : e->op == OP_LE ? "<=" : ">=", &a);
        {
            char d[96];
            if (b.t <= V_FLOAT) /* Ruby names special values and numbers by value */
                describe(ev, &b, d, sizeof d, 0);
            else
                snprintf(d, sizeof d, "%s", rb_class(&b));
            return rb_fail(ev, "comparison of %s with %s failed", rb_class(&a), d);
        }
        }
        *out = rv_bool(e->op == '<' ? c < 0 : e->op == '>' ? c > 0 : e->op == OP_LE ? c <= 0 : c >= 0);
        return 0;
    default: return arith(ev, e->op, &a, &b, out);
    }
}

/* evaluate e and append its value: as msgpack (typed) or as to_s text */
static int eval_out(const rb_node *e, const rb_env *env, wbuf *out, int typed, char *err, size_t errlen)
{
    rb_ev ev = {env, err, errlen};
    rv v;
    arena_reset();
    size_t start = out->len;
    if (eval(&ev, e, &v))
        return -1;
    if (typed ? rb_to_mp(&ev, &v, out) : rb_to_s(&ev, &v, out)) {
        out->len = start;
        return rb_fail(&ev, "out of memory or value too large");
    }
    return 0;
}

int rb_eval_value(const rb_node *e, const rb_env *env, wbuf *out, char *err, size_t errlen)
{
    return eval_out(e, env, out, 1, err, errlen);
}

int rb_value_to_s(const uint8_t *v, size_t n, wbuf *out)
{
    char err[128];
    rb_ev ev = {NULL, err, sizeof err};
    rv x = rb_from_mp(v, n);
    return rb_to_s(&ev, &x, out);
}

int rb_eval_text(const rb_node *e, const rb_env *env, wbuf *out, char *err, size_t errlen)
{
    return eval_out(e, env, out, 0, err, errlen);
}
