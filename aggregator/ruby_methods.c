/*
 * aggregator/ruby_methods.c: the methods and the [] of the Ruby expressions
 * (see ruby_expr.h), with Ruby's results for the String, Integer, Float,
 * Hash, Array, Time and nil receivers the configs use. Strings are UTF-8;
 * indexes and lengths count characters, as Ruby's do. upcase, downcase,
 * capitalize and swapcase change ASCII letters only.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/json.h"
#include "lib/timefmt.h"
#include "aggregator/record.h"
#include "aggregator/ruby_impl.h"
#include "aggregator/timeparse.h"

/* ---- UTF-8 characters ---------------------------------------------------------------------------- */

static size_t nchars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

/* the byte offset of character k (n when k is the end or beyond) */
static size_t char_off(const char *s, size_t n, size_t k)
{
    size_t i = 0;
    for (; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80 && !k--)
            return i;
    return n;
}

/* Ruby's start/length index of a sequence of `len` items: 0 with *s, *n, or
 * -1 (nil) */
static int span(int64_t start, int64_t count, size_t len, size_t *s, size_t *n)
{
    if (start < 0)
        start += (int64_t)len;
    if (start < 0 || (uint64_t)start > len || count < 0)
        return -1;
    *s = (size_t)start;
    *n = (uint64_t)count > len - *s ? len - *s : (size_t)count;
    return 0;
}

static int need_str(rb_ev *ev, const rv *a)
{
    return a->t == V_STR ? 0 : rb_fail(ev, "no implicit conversion of %s into String", rb_class(a));
}

static int need_int(rb_ev *ev, const rv *a, int64_t *i)
{
    if (a->t == V_INT)
        *i = a->i;
    else if (a->t == V_FLOAT && isfinite(a->f))
        *i = (int64_t)a->f;
    else
        return rb_fail(ev, "no implicit conversion of %s into Integer", rb_class(a));
    return 0;
}

/* ---- [] --------------------------------------------------------------------------------------------- */

static const uint8_t *map_get(const rv *m, const rv *k, size_t *vl)
{
    return k->t == V_STR ? rec_get(m->mp, m->n, k->s, k->n, vl) : NULL;
}

static int str_index(rb_ev *ev, const rv *s, const rv *args, size_t nargs, rv *out)
{
    *out = (rv){.t = V_NIL};
    if (args[0].t == V_STR && nargs == 1) { /* "abc"["b"] */
        if (!args[0].n || (s->n >= args[0].n && memmem(s->s, s->n, args[0].s, args[0].n)))
            *out = args[0];
        return 0;
    }
    if (args[0].t == V_RE) { /* "abc"[/re/, group] */
        const PCRE2_SIZE *ov;
        int64_t g = 0;
        if (nargs == 2 && need_int(ev, &args[1], &g))
            return -1;
        int rc = rx_exec(args[0].re, (const uint8_t *)s->s, s->n, &ov);
        if (rc < 0)
            return rb_fail(ev, "regexp match failed (match limit)");
        if (rc && g >= 0 && (uint64_t)g <= args[0].re->ncap && ov[2 * g] != PCRE2_UNSET)
            *out = rv_str(s->s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
        return 0;
    }
    int64_t st = 0, cnt = 1;
    if (need_int(ev, &args[0], &st) || (nargs == 2 && need_int(ev, &args[1], &cnt)))
        return -1;
    size_t len = nchars(s->s, s->n), a, k;
    if (span(st, cnt, len, &a, &k) || (nargs == 1 && a >= len))
        return 0;
    size_t b0 = char_off(s->s, s->n, a), b1 = char_off(s->s, s->n, a + k);
    *out = rv_str(s->s + b0, b1 - b0);
    return 0;
}

static int list_index(rb_ev *ev, const rv *l, const rv *args, size_t nargs, rv *out)
{
    int64_t st = 0, cnt = 1;
    *out = (rv){.t = V_NIL};
    if (need_int(ev, &args[0], &st) || (nargs == 2 && need_int(ev, &args[1], &cnt)))
        return -1;
    size_t a, k;
    if (span(st, cnt, l->n, &a, &k))
        return 0;
    if (nargs == 1) {
        if (a < l->n)
            *out = l->items[a];
        return 0;
    }
    *out = (rv){.t = V_LIST, .items = l->items + a, .n = k};
    return 0;
}

int rb_index(rb_ev *ev, const rv *recv, const rv *args, size_t nargs, rv *out)
{
    size_t vl;
    switch (recv->t) {
    case V_MAP: {
        if (nargs != 1)
            return rb_fail(ev, "wrong number of arguments (given %zu, expected 1)", nargs);
        const uint8_t *v = map_get(recv, &args[0], &vl);
        *out = v ? rb_from_mp(v, vl) : (rv){.t = V_NIL};
        return 0;
    }
    case V_ARY:
    case V_LIST: {
        rv l;
        return rb_list(ev, recv, &l) || list_index(ev, &l, args, nargs, out) ? -1 : 0;
    }
    case V_STR: return str_index(ev, recv, args, nargs, out);
    default: return rb_no_method(ev, "[]", recv);
    }
}

/* ---- strings ------------------------------------------------------------------------------------- */

static int str_new(rb_ev *ev, size_t n, char **s)
{
    *s = rb_alloc(n + 1);
    if (!*s)
        return rb_fail(ev, "out of memory");
    (*s)[n] = 0;
    return 0;
}

static int str_case(rb_ev *ev, int m, const rv *r, rv *out)
{
    char *s;
    if (str_new(ev, r->n, &s))
        return -1;
    for (size_t i = 0; i < r->n; i++) {
        unsigned char c = (unsigned char)r->s[i];
        int up = m == M_UPCASE || (m == M_CAPITALIZE && i == 0) || (m == M_SWAPCASE && islower(c));
        int down = m == M_DOWNCASE || (m == M_CAPITALIZE && i > 0) || (m == M_SWAPCASE && isupper(c));
        s[i] = c < 0x80 ? (char)(up ? toupper(c) : down ? tolower(c) : c) : (char)c;
    }
    *out = rv_str(s, r->n);
    return 0;
}

static int is_rb_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* Ruby's replacement text: \0 \& (the match), \1..\9, \k<name>, \\ */
static int sub_expand(wbuf *w, const rv *rep, const char *subj, const PCRE2_SIZE *ov, uint32_t ncap, const rx *re)
{
    for (size_t i = 0; i < rep->n; i++) {
        char c = rep->s[i];
        if (c == '\\' && i + 1 < rep->n) {
            char d = rep->s[i + 1];
            int g = d == '&' ? 0 : (d >= '0' && d <= '9') ? d - '0' : -1;
            const char *close = d == 'k' && i + 2 < rep->n && rep->s[i + 2] == '<' && re
                                    ? memchr(rep->s + i + 3, '>', rep->n - i - 3)
                                    : NULL;
            if (close && close - (rep->s + i + 3) < 64) { /* \k<name>: a named group */
                char name[64];
                size_t nl = (size_t)(close - (rep->s + i + 3));
                memcpy(name, rep->s + i + 3, nl);
                name[nl] = 0;
                int num = pcre2_substring_number_from_name(re->code, (PCRE2_SPTR)name);
                i = (size_t)(close - rep->s);
                if (num > 0 && ov && (uint32_t)num <= ncap && ov[2 * num] != PCRE2_UNSET &&
                    rec_add(w, subj + ov[2 * num], ov[2 * num + 1] - ov[2 * num]))
                    return -1;
                continue;
            }
            if (g >= 0) {
                i++;
                if (ov && (uint32_t)g <= ncap && ov[2 * g] != PCRE2_UNSET &&
                    rec_add(w, subj + ov[2 * g], ov[2 * g + 1] - ov[2 * g]))
                    return -1;
                continue;
            }
            if (d == '\\') {
                i++;
                if (wbuf_addc(w, '\\'))
                    return -1;
                continue;
            }
        }
        if (wbuf_addc(w, c))
            return -1;
    }
    return 0;
}

static int str_sub(rb_ev *ev, int global, const rv *s, const rv *pat, const rv *rep, rv *out)
{
    if (pat->t != V_STR && pat->t != V_RE)
        return rb_fail(ev, "wrong argument type %s (expected Regexp)", rb_class(pat));
    if (need_str(ev, rep))
        return -1;
    wbuf w = {0};
    size_t pos = 0;
    int rc = 0;
    while (pos <= s->n) {
        size_t ms, me;
        const PCRE2_SIZE *ov = NULL;
        uint32_t ncap = 0;
        if (pat->t == V_STR) {
            const char *f = pat->n ? memmem(s->s + pos, s->n - pos, pat->s, pat->n) : s->s + pos;
            if (!f)
                break;
            ms = (size_t)(f - s->s), me = ms + pat->n;
        } else {
            int m = rx_exec_at(pat->re, (const uint8_t *)s->s, s->n, pos, &ov);
            if (m < 0) {
                rc = rb_fail(ev, "regexp match failed (match limit)");
                break;
            }
            if (!m)
                break;
            ms = ov[0], me = ov[1], ncap = pat->re->ncap;
        }
        PCRE2_SIZE lit[2] = {ms, me};
        if (rec_add(&w, s->s + pos, ms - pos) ||
            sub_expand(&w, rep, s->s, ov ? ov : lit, ncap, pat->t == V_RE ? pat->re : NULL)) {
            rc = rb_fail(ev, "out of memory");
            break;
        }
        pos = me;
        if (me == ms) { /* an empty match: the next character passes through */
            if (ms >= s->n)
                break;
            size_t nx = ms + 1;
            while (nx < s->n && ((unsigned char)s->s[nx] & 0xc0) == 0x80)
                nx++;
            if (rec_add(&w, s->s + ms, nx - ms)) {
                rc = rb_fail(ev, "out of memory");
                break;
            }
            pos = nx;
        }
        if (!global)
            break;
    }
    if (!rc && pos < s->n && rec_add(&w, s->s + pos, s->n - pos))
        rc = rb_fail(ev, "out of memory");
    if (!rc)
        rc = rb_wstr(ev, &w, out);
    wbuf_free(&w);
    return rc;
}

/* String#split's fields into items (NULL: counted only); *k their number */
static int split_run(rb_ev *ev, const rv *s, const rv *sep, int64_t limit, rv *items, size_t *k)
{
    int awk = !sep || (sep->t == V_STR && sep->n == 1 && sep->s[0] == ' ');
    size_t pos = 0;
    *k = 0;
#define FIELD(a, n) (items ? (void)(items[*k] = rv_str(s->s + (a), (n))) : (void)0, ++*k)
    if (awk)
        while (pos < s->n && is_rb_space(s->s[pos]))
            pos++;
    while (pos < s->n) {
        if (limit > 0 && *k + 1 == (uint64_t)limit)
            break;
        size_t ms, me;
        if (awk) {
            ms = pos;
            while (ms < s->n && !is_rb_space(s->s[ms]))
                ms++;
            if (ms >= s->n)
                break;
            me = ms;
            while (me < s->n && is_rb_space(s->s[me]))
                me++;
        } else if (sep->t == V_STR) {
            if (!sep->n) { /* "": every character */
                ms = me = pos + char_off(s->s + pos, s->n - pos, 1);
                if (ms >= s->n)
                    break;
            } else {
                const char *f = memmem(s->s + pos, s->n - pos, sep->s, sep->n);
                if (!f)
                    break;
                ms = (size_t)(f - s->s), me = ms + sep->n;
            }
        } else {
            const PCRE2_SIZE *ov;
            size_t from = pos;
            int m;
            for (;;) { /* an empty match at the field's start splits nothing */
                m = rx_exec_at(sep->re, (const uint8_t *)s->s, s->n, from, &ov);
                if (m <= 0 || ov[1] > ov[0] || ov[0] > pos)
                    break;
                if (++from > s->n) {
                    m = 0;
                    break;
                }
            }
            if (m < 0)
                return rb_fail(ev, "regexp match failed (match limit)");
            if (!m || ov[0] >= s->n)
                break;
            ms = ov[0], me = ov[1];
        }
        FIELD(pos, ms - pos);
        pos = me;
        if (awk && pos >= s->n)
            break;
    }
    if (pos < s->n || (!awk && *k > 0 && (limit != 0 || pos == s->n)))
        FIELD(pos, s->n - pos);
#undef FIELD
    return 0;
}

/* String#split: none or " " (awk: runs of white space, leading ones
 * ignored), a string, a regexp; limit like Ruby's (0: trailing empty fields
 * removed) */
static int str_split(rb_ev *ev, const rv *s, const rv *args, size_t nargs, rv *out)
{
    int64_t limit = 0;
    if (nargs == 2 && need_int(ev, &args[1], &limit))
        return -1;
    const rv *sep = nargs && args[0].t != V_NIL ? &args[0] : NULL;
    if (sep && sep->t != V_STR && sep->t != V_RE)
        return rb_fail(ev, "wrong argument type %s (expected Regexp)", rb_class(sep));
    size_t k;
    if (split_run(ev, s, sep, limit, NULL, &k))
        return -1;
    rv *items = rb_alloc((k ? k : 1) * sizeof *items);
    if (!items)
        return rb_fail(ev, "out of memory");
    if (split_run(ev, s, sep, limit, items, &k))
        return -1;
    if (limit == 0)
        while (k && !items[k - 1].n)
            k--;
    *out = (rv){.t = V_LIST, .items = items, .n = k};
    return 0;
}

static int affix(rb_ev *ev, int end, const rv *s, const rv *args, size_t nargs, rv *out)
{
    for (size_t i = 0; i < nargs; i++) {
        if (need_str(ev, &args[i]))
            return -1;
        const rv *a = &args[i];
        if (a->n <= s->n && (!a->n || !memcmp(end ? s->s + s->n - a->n : s->s, a->s, a->n))) {
            *out = rv_bool(1);
            return 0;
        }
    }
    *out = rv_bool(0);
    return 0;
}

static int str_method(rb_ev *ev, int m, const rv *r, const rv *args, size_t nargs, rv *out)
{
    size_t a = 0, b = r->n;
    char *s;
    switch (m) {
    case M_TO_S: *out = *r; return 0;
    case M_TO_I: *out = rv_int(ruby_str_to_i(r->s, r->n)); return 0;
    case M_TO_F: *out = rv_float(ruby_str_to_f(r->s, r->n)); return 0;
    case M_EMPTYP: *out = rv_bool(!r->n); return 0;
    case M_LENGTH: *out = rv_int((int64_t)nchars(r->s, r->n)); return 0;
    case M_BYTESIZE: *out = rv_int((int64_t)r->n); return 0;
    case M_UPCASE:
    case M_DOWNCASE:
    case M_CAPITALIZE:
    case M_SWAPCASE: return str_case(ev, m, r, out);
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP:
        if (m != M_RSTRIP)
            while (a < b && (is_rb_space(r->s[a]) || !r->s[a]))
                a++;
        if (m != M_LSTRIP)
            while (b > a && (is_rb_space(r->s[b - 1]) || !r->s[b - 1]))
                b--;
        *out = rv_str(r->s + a, b - a);
        return 0;
    case M_CHOMP:
        if (b && r->s[b - 1] == '\n')
            b--;
        if (b && r->s[b - 1] == '\r')
            b--;
        *out = rv_str(r->s, b);
        return 0;
    case M_REVERSE:
        if (str_new(ev, r->n, &s))
            return -1;
        for (size_t i = 0; i < r->n;) { /* character by character */
            size_t l = 1;
            while (i + l < r->n && ((unsigned char)r->s[i + l] & 0xc0) == 0x80)
                l++;
            memcpy(s + r->n - i - l, r->s + i, l);
            i += l;
        }
        *out = rv_str(s, r->n);
        return 0;
    case M_INCLUDEP:
        if (need_str(ev, &args[0]))
            return -1;
        *out = rv_bool(!args[0].n || (r->n >= args[0].n && memmem(r->s, r->n, args[0].s, args[0].n)));
        return 0;
    case M_START_WITHP:
    case M_END_WITHP: return affix(ev, m == M_END_WITHP, r, args, nargs, out);
    case M_GSUB:
    case M_SUB: return str_sub(ev, m == M_GSUB, r, &args[0], &args[1], out);
    case M_SPLIT: return str_split(ev, r, args, nargs, out);
    case M_MATCHP:
        if (args[0].t == V_STR) {
            *out = rv_bool(!args[0].n || (r->n >= args[0].n && memmem(r->s, r->n, args[0].s, args[0].n)));
            return 0;
        }
        if (args[0].t != V_RE)
            return rb_fail(ev, "wrong argument type %s (expected Regexp)", rb_class(&args[0]));
        if (rb_regex_match(ev, r, &args[0], out))
            return -1;
        *out = rv_bool(out->t != V_NIL);
        return 0;
    case M_SLICE: return str_index(ev, r, args, nargs, out);
    default: return rb_no_method(ev, rb_method_name(m), r);
    }
}

/* ---- numbers ------------------------------------------------------------------------------------- */

/* Ruby's round half away from zero, to `digits` decimals */
static double round_to(double x, int64_t digits)
{
    if (digits > 15 || !isfinite(x))
        return x;
    double p = pow(10.0, (double)digits);
    return digits >= 0 ? round(x * p) / p : round(x / pow(10.0, (double)-digits)) * pow(10.0, (double)-digits);
}

static int float_to_int(rb_ev *ev, double d, rv *out)
{
    if (!isfinite(d) || d >= 9.2233720368547758e18 || d < -9.2233720368547758e18)
        return rb_fail(ev, "%s", isnan(d) ? "NaN" : isinf(d) ? (d < 0 ? "-Infinity" : "Infinity") : "Bignum");
    *out = rv_int((int64_t)d);
    return 0;
}

static int num_method(rb_ev *ev, int m, const rv *r, const rv *args, size_t nargs, rv *out)
{
    int isf = r->t == V_FLOAT;
    int64_t digits = 0;
    switch (m) {
    case M_TO_S: return rb_str_of(ev, r, out);
    case M_TO_I: return isf ? float_to_int(ev, trunc(r->f), out) : (*out = *r, 0);
    case M_TO_F: *out = rv_float(isf ? r->f : (double)r->i); return 0;
    case M_ZEROP: *out = rv_bool(isf ? r->f == 0 : r->i == 0); return 0;
    case M_ABS:
        if (!isf && r->i == INT64_MIN)
            return rb_fail(ev, "integer overflow (weir has no Bignum)");
        *out = isf ? rv_float(fabs(r->f)) : rv_int(r->i < 0 ? -r->i : r->i);
        return 0;
    case M_ROUND:
        if (nargs && need_int(ev, &args[0], &digits))
            return -1;
        if (!isf) {
            if (digits >= 0) {
                *out = *r;
                return 0;
            }
            return float_to_int(ev, round_to((double)r->i, digits), out);
        }
        if (digits > 0) {
            *out = rv_float(round_to(r->f, digits));
            return 0;
        }
        return float_to_int(ev, round_to(r->f, digits), out);
    case M_FLOOR: return isf ? float_to_int(ev, floor(r->f), out) : (*out = *r, 0);
    case M_CEIL: return isf ? float_to_int(ev, ceil(r->f), out) : (*out = *r, 0);
    default: return rb_no_method(ev, rb_method_name(m), r);
    }
}

/* ---- time ---------------------------------------------------------------------------------------- */

static int time_method(rb_ev *ev, int m, const rv *r, const rv *args, size_t nargs, rv *out)
{
    struct tm tm;
    time_t t = (time_t)r->sec;
    char buf[512];
    size_t n;
    int64_t digits = 0;
    /* the calendar fields only for the methods that read them (strftime and iso8601 format the time themselves) */
    if (m >= M_YEAR && m <= M_SEC && (r->utc ? !gmtime_r(&t, &tm) : !localtime_r(&t, &tm)))
        return rb_fail(ev, "time out of range");
    switch (m) {
    case M_TO_S: return rb_str_of(ev, r, out);
    case M_TO_I: *out = rv_int(r->sec); return 0;
    case M_TO_F: *out = rv_float(r->sec + r->nsec / 1e9); return 0;
    case M_YEAR: *out = rv_int(tm.tm_year + 1900); return 0;
    case M_MONTH: *out = rv_int(tm.tm_mon + 1); return 0;
    case M_DAY: *out = rv_int(tm.tm_mday); return 0;
    case M_HOUR: *out = rv_int(tm.tm_hour); return 0;
    case M_MIN: *out = rv_int(tm.tm_min); return 0;
    case M_SEC: *out = rv_int(tm.tm_sec); return 0;
    case M_USEC: *out = rv_int(r->nsec / 1000); return 0;
    case M_NSEC: *out = rv_int(r->nsec); return 0;
    case M_UTC:
    case M_LOCALTIME:
        *out = *r;
        out->utc = m == M_UTC;
        return 0;
    case M_STRFTIME: {
        if (need_str(ev, &args[0]))
            return -1;
        char *fmt = rb_strdup(args[0].s, args[0].n);
        if (!fmt)
            return rb_fail(ev, "out of memory");
        n = args[0].n ? time_fmt(buf, sizeof buf, fmt, r->sec, r->nsec, r->utc) : 0;
        if (!n && args[0].n && strlen(fmt))
            return rb_fail(ev, "strftime: the result is longer than %zu bytes", sizeof buf);
        char *s = rb_strdup(buf, n);
        if (!s)
            return rb_fail(ev, "out of memory");
        *out = rv_str(s, n);
        return 0;
    }
    case M_ISO8601: {
        if (nargs && need_int(ev, &args[0], &digits))
            return -1;
        n = time_fmt(buf, 64, "%Y-%m-%dT%H:%M:%S", r->sec, 0, r->utc);
        if (digits > 0) {
            char ns[16];
            snprintf(ns, sizeof ns, "%09u", r->nsec);
            buf[n++] = '.';
            for (int64_t i = 0; i < digits && i < 60; i++)
                buf[n++] = i < 9 ? ns[i] : '0';
        }
        if (r->utc) {
            buf[n++] = 'Z';
        } else {
            char z[16];
            size_t zl = time_fmt(z, sizeof z, "%z", r->sec, 0, 0);
            if (zl == 5) {
                memcpy(buf + n, z, 3);
                buf[n + 3] = ':';
                memcpy(buf + n + 4, z + 3, 2);
                n += 6;
            }
        }
        char *s = rb_strdup(buf, n);
        if (!s)
            return rb_fail(ev, "out of memory");
        *out = rv_str(s, n);
        return 0;
    }
    default: return rb_no_method(ev, rb_method_name(m), r);
    }
}

/* ---- hashes and arrays --------------------------------------------------------------------------- */

static int dig(rb_ev *ev, const rv *r, const rv *args, size_t nargs, rv *out)
{
    rv cur = *r;
    for (size_t i = 0; i < nargs; i++) {
        if (cur.t == V_NIL)
            break;
        if (cur.t != V_MAP && cur.t != V_ARY && cur.t != V_LIST)
            return rb_fail(ev, "%s does not have #dig method", rb_class(&cur));
        rv nx;
        if ((cur.t != V_MAP && args[i].t != V_INT) ? rb_fail(ev, "no implicit conversion of %s into Integer",
                                                              rb_class(&args[i]))
                                                    : rb_index(ev, &cur, &args[i], 1, &nx))
            return -1;
        cur = nx;
    }
    *out = cur;
    return 0;
}

static int map_method(rb_ev *ev, int m, const rv *r, const rv *args, size_t nargs, rv *out)
{
    const uint8_t *p = r->mp, *end = r->mp + r->n, *v;
    size_t vl;
    mp_obj o;
    if (mp_read(&p, end, &o) != MP_OK)
        return rb_fail(ev, "malformed record");
    switch (m) {
    case M_EMPTYP: *out = rv_bool(!o.len); return 0;
    case M_LENGTH: *out = rv_int(o.len); return 0;
    case M_DIG: return dig(ev, r, args, nargs, out);
    case M_KEYP:
    case M_INCLUDEP: *out = rv_bool(map_get(r, &args[0], &vl) != NULL); return 0;
    case M_FETCH:
        v = map_get(r, &args[0], &vl);
        if (v) {
            *out = rb_from_mp(v, vl);
            return 0;
        }
        if (nargs == 2) {
            *out = args[1];
            return 0;
        }
        if (args[0].t == V_STR)
            return rb_fail(ev, "key not found: \"%.*s\"", (int)(args[0].n > 200 ? 200 : args[0].n), args[0].s);
        return rb_fail(ev, "key not found");
    case M_KEYS:
    case M_VALUES: {
        rv *items = rb_alloc((o.len ? o.len : 1) * sizeof *items);
        if (!items)
            return rb_fail(ev, "out of memory");
        for (uint32_t i = 0; i < o.len; i++) {
            const uint8_t *k = p;
            if (rec_skip(&p, end))
                return rb_fail(ev, "malformed record");
            const uint8_t *val = p;
            if (rec_skip(&p, end))
                return rb_fail(ev, "malformed record");
            items[i] = m == M_KEYS ? rb_from_mp(k, (size_t)(val - k)) : rb_from_mp(val, (size_t)(p - val));
        }
        *out = (rv){.t = V_LIST, .items = items, .n = o.len};
        return 0;
    }
    default: return rb_no_method(ev, rb_method_name(m), r);
    }
}

static int list_method(rb_ev *ev, int m, const rv *r, const rv *args, size_t nargs, rv *out)
{
    rv l;
    if (rb_list(ev, r, &l))
        return -1;
    switch (m) {
    case M_EMPTYP: *out = rv_bool(!l.n); return 0;
    case M_LENGTH: *out = rv_int((int64_t)l.n); return 0;
    case M_FIRST:
    case M_LAST: *out = l.n ? l.items[m == M_FIRST ? 0 : l.n - 1] : (rv){.t = V_NIL}; return 0;
    case M_DIG: return dig(ev, &l, args, nargs, out);
    case M_SLICE: return list_index(ev, &l, args, nargs, out);
    case M_TO_A: *out = l; return 0;
    case M_INCLUDEP:
        *out = rv_bool(0);
        for (size_t i = 0; i < l.n; i++)
            if (rb_equal(&l.items[i], &args[0]))
                *out = rv_bool(1);
        return 0;
    case M_FETCH: {
        int64_t i = 0;
        if (need_int(ev, &args[0], &i))
            return -1;
        if (list_index(ev, &l, args, 1, out))
            return -1;
        if (i >= (int64_t)l.n || i < -(int64_t)l.n) {
            if (nargs == 2) {
                *out = args[1];
                return 0;
            }
            return rb_fail(ev, "index %lld outside of array bounds", (long long)i);
        }
        return 0;
    }
    case M_REVERSE: {
        rv *items = rb_alloc((l.n ? l.n : 1) * sizeof *items);
        if (!items)
            return rb_fail(ev, "out of memory");
        for (size_t i = 0; i < l.n; i++)
            items[i] = l.items[l.n - 1 - i];
        *out = (rv){.t = V_LIST, .items = items, .n = l.n};
        return 0;
    }
    case M_JOIN: {
        if (nargs && args[0].t != V_NIL && need_str(ev, &args[0]))
            return -1;
        wbuf w = {0};
        int rc = 0;
        for (size_t i = 0; i < l.n && !rc; i++) {
            if (i && nargs && args[0].t == V_STR && rec_add(&w, args[0].s, args[0].n))
                rc = rb_fail(ev, "out of memory");
            else if (l.items[i].t == V_ARY || l.items[i].t == V_LIST) { /* nested arrays are joined too */
                rv sub;
                rc = list_method(ev, M_JOIN, &l.items[i], args, nargs, &sub) || rec_add(&w, sub.s, sub.n) ? -1 : 0;
            } else if (rb_to_s(ev, &l.items[i], &w)) {
                rc = -1;
            }
        }
        if (!rc)
            rc = rb_wstr(ev, &w, out);
        wbuf_free(&w);
        return rc;
    }
    default: return rb_no_method(ev, rb_method_name(m), r);
    }
}

/* ---- dispatch ------------------------------------------------------------------------------------ */

int rb_call(rb_ev *ev, int m, const rv *r, const rv *args, size_t nargs, rv *out)
{
    /* the methods of every object */
    if (m == M_NILP) {
        *out = rv_bool(r->t == V_NIL);
        return 0;
    }
    if (m == M_INSPECT || m == M_TO_JSON) {
        wbuf w = {0}, mp = {0};
        int rc;
        if (m == M_INSPECT) {
            rc = rb_inspect(ev, r, &w);
        } else {
            const uint8_t *p;
            rc = rb_to_mp(ev, r, &mp);
            p = mp.data;
            rc = rc || jw_value(&w, &p, mp.data + mp.len) ? -1 : 0;
        }
        rc = rc ? rb_fail(ev, "out of memory") : rb_wstr(ev, &w, out);
        wbuf_free(&w);
        wbuf_free(&mp);
        return rc;
    }
    switch (r->t) {
    case V_NIL:
        switch (m) {
        case M_TO_S: *out = rv_str("", 0); return 0;
        case M_TO_I: *out = rv_int(0); return 0;
        case M_TO_F: *out = rv_float(0); return 0;
        case M_TO_A: *out = (rv){.t = V_LIST}; return 0;
        default: return rb_no_method(ev, rb_method_name(m), r);
        }
    case V_TRUE:
    case V_FALSE:
    case V_RE:
    case V_RAW: return m == M_TO_S ? rb_str_of(ev, r, out) : rb_no_method(ev, rb_method_name(m), r);
    case V_STR: return str_method(ev, m, r, args, nargs, out);
    case V_INT:
    case V_FLOAT: return num_method(ev, m, r, args, nargs, out);
    case V_TIME: return time_method(ev, m, r, args, nargs, out);
    case V_MAP: return m == M_TO_S ? rb_str_of(ev, r, out) : map_method(ev, m, r, args, nargs, out);
    default: return m == M_TO_S ? rb_str_of(ev, r, out) : list_method(ev, m, r, args, nargs, out);
    }
}
