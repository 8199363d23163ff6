/*
 * aggregator/ruby_parse.c: Ruby expressions to a tree (see ruby_expr.h).
 * A recursive descent over Ruby's precedence, lowest first:
 *
 *   kw      := not ('and' | 'or') not ...      not := 'not' not | tern
 *   tern    := or ['?' tern ':' tern]
 *   or      := and ('||' and)*                 and := eq ('&&' eq)*
 *   eq      := rel [('==' | '!=' | '=~' | '!~') rel]
 *   rel     := add [('<' | '<=' | '>' | '>=') add]
 *   add     := mul (('+' | '-') mul)*          mul := unary (('*' | '/' | '%') unary)*
 *   unary   := '!' unary | '-' unary | post
 *   post    := primary ('[' args ']' | ('.' | '&.') method ['(' args ')'])*
 *   primary := literal | variable | ENV[...] | ENV.fetch(...) | Socket.gethostname
 *            | Time.now | Time.at(expr) | '(' kw ')' | '[' args ']'
 *
 * Everything else (blocks, assignments, symbols, other constants, unknown
 * methods) is an error naming it.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/ruby_impl.h"

const rb_method_info rb_methods[] = {
    {"to_s", M_TO_S, 0, 0},          {"to_str", M_TO_S, 0, 0},          {"to_i", M_TO_I, 0, 0},
    {"to_int", M_TO_I, 0, 0},        {"to_f", M_TO_F, 0, 0},            {"inspect", M_INSPECT, 0, 0},
    {"to_json", M_TO_JSON, 0, 0},    {"nil?", M_NILP, 0, 0},            {"empty?", M_EMPTYP, 0, 0},
    {"length", M_LENGTH, 0, 0},      {"size", M_LENGTH, 0, 0},          {"bytesize", M_BYTESIZE, 0, 0},
    {"upcase", M_UPCASE, 0, 0},      {"downcase", M_DOWNCASE, 0, 0},    {"capitalize", M_CAPITALIZE, 0, 0},
    {"swapcase", M_SWAPCASE, 0, 0},  {"strip", M_STRIP, 0, 0},          {"lstrip", M_LSTRIP, 0, 0},
    {"rstrip", M_RSTRIP, 0, 0},      {"chomp", M_CHOMP, 0, 0},          {"reverse", M_REVERSE, 0, 0},
    {"include?", M_INCLUDEP, 1, 1},  {"member?", M_INCLUDEP, 1, 1},     {"key?", M_KEYP, 1, 1},
    {"has_key?", M_KEYP, 1, 1},      {"start_with?", M_START_WITHP, 1, 8}, {"end_with?", M_END_WITHP, 1, 8},
    {"gsub", M_GSUB, 2, 2},          {"sub", M_SUB, 2, 2},              {"split", M_SPLIT, 0, 2},
    {"match?", M_MATCHP, 1, 1},      {"slice", M_SLICE, 1, 2},          {"dig", M_DIG, 1, 16},
    {"fetch", M_FETCH, 1, 2},        {"keys", M_KEYS, 0, 0},            {"values", M_VALUES, 0, 0},
    {"first", M_FIRST, 0, 0},        {"last", M_LAST, 0, 0},            {"join", M_JOIN, 0, 1},
    {"abs", M_ABS, 0, 0},            {"round", M_ROUND, 0, 1},          {"floor", M_FLOOR, 0, 0},
    {"ceil", M_CEIL, 0, 0},          {"zero?", M_ZEROP, 0, 0},          {"strftime", M_STRFTIME, 1, 1},
    {"year", M_YEAR, 0, 0},          {"month", M_MONTH, 0, 0},          {"mon", M_MONTH, 0, 0},
    {"day", M_DAY, 0, 0},            {"mday", M_DAY, 0, 0},             {"hour", M_HOUR, 0, 0},
    {"min", M_MIN, 0, 0},            {"sec", M_SEC, 0, 0},              {"usec", M_USEC, 0, 0},
    {"nsec", M_NSEC, 0, 0},          {"utc", M_UTC, 0, 0},              {"getutc", M_UTC, 0, 0},
    {"gmtime", M_UTC, 0, 0},         {"localtime", M_LOCALTIME, 0, 0},  {"iso8601", M_ISO8601, 0, 1},
    {"xmlschema", M_ISO8601, 0, 1},  {"to_a", M_TO_A, 0, 0},            {NULL, 0, 0, 0},
};

const char *rb_method_name(int id)
{
    for (size_t i = 0; rb_methods[i].name; i++)
        if (rb_methods[i].id == id)
            return rb_methods[i].name;
    return "?";
}

typedef struct parser {
    const char *p, *start, *end;
    char *err;
    size_t errlen;
    int failed, depth;
    int *nodes; /* nodes made so far (all sub-parsers share it) */
} parser;

/* a bound on the tree (the walks recurse over it): what a config's ${...}
 * needs is far below */
#define RB_MAX_NODES 512

static rb_node *p_kw(parser *ps);
static rb_node *p_tern(parser *ps);

static rb_node *fail(parser *ps, const char *fmt, ...)
{
    if (!ps->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err, ps->errlen, fmt, ap);
        va_end(ap);
        ps->failed = 1;
    }
    return NULL;
}

void rb_free(rb_node *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nkids; i++)
        rb_free(e->kids[i]);
    free(e->kids);
    free(e->s);
    if (e->re) {
        rx_free(e->re);
        free(e->re);
    }
    free(e);
}

static rb_node *node(parser *ps, int kind)
{
    if (++*ps->nodes > RB_MAX_NODES)
        return fail(ps, "expression too long (more than %d terms)", RB_MAX_NODES);
    rb_node *n = calloc(1, sizeof *n);
    if (!n)
        return fail(ps, "out of memory");
    n->kind = (uint8_t)kind;
    return n;
}

static int add_kid(parser *ps, rb_node *n, rb_node *k)
{
    if (!k)
        return -1;
    rb_node **nk = realloc(n->kids, (n->nkids + 1) * sizeof *nk);
    if (!nk) {
        rb_free(k);
        fail(ps, "out of memory");
        return -1;
    }
    n->kids = nk;
    n->kids[n->nkids++] = k;
    return 0;
}

/* a node of `kind` over the given kids (freed on failure) */
static rb_node *node_of(parser *ps, int kind, int op, rb_node *a, rb_node *b, rb_node *c)
{
    rb_node *n = a ? node(ps, kind) : NULL;
    if (!n || add_kid(ps, n, a) || (b && add_kid(ps, n, b)) || (c && add_kid(ps, n, c))) {
        if (!n) {
            rb_free(a);
            rb_free(b);
            rb_free(c);
        } else {
            rb_free(n);
        }
        return NULL;
    }
    n->op = (uint8_t)op;
    return n;
}

static void ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* the punctuation `tok` next (after white space): consumed, 1 */
static int eat(parser *ps, const char *tok)
{
    ws(ps);
    size_t n = strlen(tok);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, tok, n))
        return 0;
    ps->p += n;
    return 1;
}

static int is_id(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* the keyword `w` next, as a whole word */
static int eat_word(parser *ps, const char *w)
{
    ws(ps);
    size_t n = strlen(w);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, w, n) || (ps->p + n < ps->end && is_id(ps->p[n])))
        return 0;
    ps->p += n;
    return 1;
}

static const char *near(parser *ps) { return ps->p < ps->end ? ps->p : "(end)"; }
static int near_len(parser *ps)
{
    size_t n = (size_t)(ps->end - ps->p);
    return ps->p < ps->end ? (int)(n > 16 ? 16 : n) : 5;
}

/* ---- literals ------------------------------------------------------------------------------------ */

static int put(char **b, size_t *n, size_t *cap, const char *s, size_t k)
{
    if (*n + k + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 32) + k;
        char *nb = realloc(*b, nc);
        if (!nb)
            return -1;
        *b = nb, *cap = nc;
    }
    memcpy(*b + *n, s, k);
    *n += k;
    (*b)[*n] = 0;
    return 0;
}

static size_t utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80)
        return o[0] = (char)cp, 1;
    if (cp < 0x800)
        return o[0] = (char)(0xc0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3f)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xe0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 0x3f)),
               o[2] = (char)(0x80 | (cp & 0x3f)), 3;
    return o[0] = (char)(0xf0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 0x3f)),
           o[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), o[3] = (char)(0x80 | (cp & 0x3f)), 4;
}

/* a double-quoted escape after the backslash at *pp: its bytes into o */
static size_t dq_escape(const char **pp, const char *end, char o[4])
{
    const char *p = *pp;
    char c = *p++;
    size_t n = 1;
    uint32_t cp = 0;
    int k = 0;
    switch (c) {
    case 'n': o[0] = '\n'; break;
    case 't': o[0] = '\t'; break;
    case 'r': o[0] = '\r'; break;
    case 'e': o[0] = 27; break;
    case 's': o[0] = ' '; break;
    case '0': o[0] = 0; break;
    case 'a': o[0] = 7; break;
    case 'b': o[0] = 8; break;
    case 'f': o[0] = 12; break;
    case 'v': o[0] = 11; break;
    case 'x':
        for (; k < 2 && p < end && isxdigit((unsigned char)*p); k++, p++)
            cp = cp * 16 + (uint32_t)(isdigit((unsigned char)*p) ? *p - '0' : (tolower((unsigned char)*p) - 'a' + 10));
        o[0] = (char)cp;
        break;
    case 'u':
        for (; k < 4 && p < end && isxdigit((unsigned char)*p); k++, p++)
            cp = cp * 16 + (uint32_t)(isdigit((unsigned char)*p) ? *p - '0' : (tolower((unsigned char)*p) - 'a' + 10));
        n = utf8_put(o, cp);
        break;
    default: o[0] = c;
    }
    *pp = p;
    return n;
}

/* '...' (only \\ and \' are escapes) or "..." with escapes and #{expr} */
static rb_node *p_string(parser *ps)
{
    char q = *ps->p++;
    rb_node *d = node(ps, N_DSTR);
    char *b = NULL;
    size_t bn = 0, cap = 0;
    if (!d)
        return NULL;
    while (ps->p < ps->end && *ps->p != q) {
        const char *c = ps->p;
        if (*c == '\\' && c + 1 < ps->end) {
            if (q == '\'') {
                if (c[1] != '\'' && c[1] != '\\' && put(&b, &bn, &cap, c, 1))
                    goto oom;
                if (put(&b, &bn, &cap, c + 1, 1))
                    goto oom;
                ps->p = c + 2;
            } else {
                char o[4];
                ps->p = c + 1;
                size_t k = dq_escape(&ps->p, ps->end, o);
                if (put(&b, &bn, &cap, o, k))
                    goto oom;
            }
            continue;
        }
        if (q == '"' && *c == '#' && c + 1 < ps->end && c[1] == '{') {
            const char *close = rb_code_end(c + 2, ps->end);
            if (!close) {
                fail(ps, "unterminated #{ in a string");
                goto bad;
            }
            if (bn) {
                rb_node *lit = node(ps, N_STR);
                if (!lit)
                    goto bad;
                lit->s = b, lit->n = bn, b = NULL, bn = cap = 0;
                if (add_kid(ps, d, lit))
                    goto bad;
            }
            parser sub = {c + 2, ps->start, close, ps->err, ps->errlen, 0, ps->depth + 1, ps->nodes};
            rb_node *x = p_kw(&sub);
            ws(&sub);
            if (x && sub.p != close)
                x = (rb_free(x), fail(&sub, "unexpected '%.*s' in #{...}", near_len(&sub), near(&sub)));
            if (!x) {
                ps->failed = 1;
                goto bad;
            }
            if (add_kid(ps, d, x))
                goto bad;
            ps->p = close + 1;
            continue;
        }
        if (put(&b, &bn, &cap, c, 1))
            goto oom;
        ps->p++;
    }
    if (ps->p >= ps->end) {
        fail(ps, "unterminated string");
        goto bad;
    }
    ps->p++;
    if (!d->nkids) { /* no interpolation: a plain literal */
        d->kind = N_STR;
        d->s = b ? b : strdup("");
        d->n = bn;
        if (!d->s)
            goto oom;
        return d;
    }
    if (bn) {
        rb_node *lit = node(ps, N_STR);
        if (!lit)
            goto bad;
        lit->s = b, lit->n = bn, b = NULL;
        if (add_kid(ps, d, lit))
            goto bad;
    }
    free(b);
    return d;
oom:
    fail(ps, "out of memory");
bad:
    free(b);
    rb_free(d);
    return NULL;
}

/* /re/imx */
static rb_node *p_regex(parser *ps)
{
    const char *s = ++ps->p;
    while (ps->p < ps->end && *ps->p != '/') {
        if (*ps->p == '\\' && ps->p + 1 < ps->end)
            ps->p++;
        else if (*ps->p == '#' && ps->p + 1 < ps->end && ps->p[1] == '{')
            return fail(ps, "interpolation in a regexp is not supported");
        ps->p++;
    }
    if (ps->p >= ps->end)
        return fail(ps, "unterminated regexp");
    size_t n = (size_t)(ps->p - s);
    ps->p++;
    int flags = 0, ext = 0;
    for (; ps->p < ps->end && isalpha((unsigned char)*ps->p); ps->p++) {
        if (*ps->p == 'i')
            flags |= RX_ICASE;
        else if (*ps->p == 'm')
            flags |= RX_DOTALL;
        else if (*ps->p == 'x')
            ext = 1;
        else
            return fail(ps, "regexp option '%c' is not supported", *ps->p);
    }
    char *text = malloc(n + 5);
    rb_node *r = text ? node(ps, N_REGEX) : NULL;
    if (!r) {
        free(text);
        return fail(ps, "out of memory");
    }
    size_t o = 0;
    if (ext)
        memcpy(text, "(?x)", 4), o = 4;
    memcpy(text + o, s, n);
    text[o + n] = 0;
    r->re = calloc(1, sizeof *r->re);
    char err[200];
    if (!r->re || rx_compile(r->re, text, flags | RX_SHORT_ERR, err, sizeof err)) {
        free(r->re);
        r->re = NULL;
        rb_free(r);
        fail(ps, "bad regexp /%.*s/: %s", (int)n, s, r ? err : "out of memory");
        free(text);
        return NULL;
    }
    free(text);
    return r;
}

static rb_node *p_number(parser *ps)
{
    const char *s = ps->p;
    char buf[64];
    size_t n = 0;
    int fl = 0;
    while (ps->p < ps->end && (isdigit((unsigned char)*ps->p) || *ps->p == '_')) {
        if (*ps->p != '_' && n < sizeof buf - 1)
            buf[n++] = *ps->p;
        ps->p++;
    }
    if (ps->p + 1 < ps->end && *ps->p == '.' && isdigit((unsigned char)ps->p[1])) {
        fl = 1;
        buf[n < sizeof buf - 1 ? n++ : n] = '.';
        for (ps->p++; ps->p < ps->end && (isdigit((unsigned char)*ps->p) || *ps->p == '_'); ps->p++)
            if (*ps->p != '_' && n < sizeof buf - 1)
                buf[n++] = *ps->p;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        const char *e = ps->p + 1;
        if (e < ps->end && (*e == '+' || *e == '-'))
            e++;
        if (e < ps->end && isdigit((unsigned char)*e)) {
            fl = 1;
            for (; ps->p < e; ps->p++)
                if (n < sizeof buf - 1)
                    buf[n++] = *ps->p;
            for (; ps->p < ps->end && isdigit((unsigned char)*ps->p); ps->p++)
                if (n < sizeof buf - 1)
                    buf[n++] = *ps->p;
        }
    }
    buf[n] = 0;
    if (n >= sizeof buf - 1)
        return fail(ps, "number too long: %.*s", (int)(ps->p - s), s);
    rb_node *r = node(ps, fl ? N_FLOAT : N_INT);
    if (!r)
        return NULL;
    if (fl) {
        r->f = strtod(buf, NULL);
    } else {
        char *e;
        unsigned long long v = strtoull(buf, &e, 10);
        if (v > INT64_MAX) {
            rb_free(r);
            return fail(ps, "integer %s is too large", buf);
        }
        r->i = (int64_t)v;
    }
    return r;
}

/* ---- primaries ---------------------------------------------------------------------------------- */

static int p_args(parser *ps, rb_node *n, const char *close)
{
    if (eat(ps, close))
        return 0;
    do {
        if (add_kid(ps, n, p_tern(ps)))
            return -1;
        if (eat(ps, "..")) {
            fail(ps, "ranges (a..b) are not supported");
            return -1;
        }
    } while (eat(ps, ","));
    if (!eat(ps, close)) {
        fail(ps, "expected '%s' near '%.*s'", close, near_len(ps), near(ps));
        return -1;
    }
    return 0;
}

static rb_node *lit_str(parser *ps, const char *s)
{
    rb_node *r = node(ps, s ? N_STR : N_NIL);
    if (r && s && !(r->s = strdup(s))) {
        rb_free(r);
        return fail(ps, "out of memory");
    }
    if (r && s)
        r->n = strlen(s);
    return r;
}

/* ENV['X'], ENV["X"], ENV.fetch('X'[, default]): read at configuration */
static rb_node *p_env(parser *ps)
{
    int fetch = 0;
    if (eat(ps, "[")) {
        ;
    } else if (eat(ps, ".") && eat_word(ps, "fetch") && eat(ps, "(")) {
        fetch = 1;
    } else {
        return fail(ps, "only ENV['NAME'] and ENV.fetch('NAME'[, default]) are supported");
    }
    ws(ps);
    if (ps->p >= ps->end || (*ps->p != '\'' && *ps->p != '"'))
        return fail(ps, "ENV takes a string literal");
    rb_node *name = p_string(ps);
    if (!name)
        return NULL;
    if (name->kind != N_STR) {
        rb_free(name);
        return fail(ps, "ENV takes a string literal");
    }
    const char *v = getenv(name->s);
    rb_node *r = NULL;
    if (!fetch) {
        r = eat(ps, "]") ? lit_str(ps, v) : fail(ps, "expected ']' after ENV[...]");
    } else if (eat(ps, ",")) {
        rb_node *def = p_tern(ps);
        if (def && !eat(ps, ")")) {
            rb_free(def);
            def = fail(ps, "expected ')' after ENV.fetch(...)");
        }
        r = !def ? NULL : v ? (rb_free(def), lit_str(ps, v)) : def;
    } else if (!eat(ps, ")")) {
        r = fail(ps, "expected ')' after ENV.fetch(...)");
    } else {
        r = v ? lit_str(ps, v) : fail(ps, "key not found: \"%s\" (ENV.fetch of an unset variable)", name->s);
    }
    rb_free(name);
    return r;
}

/* the instance variables rb_compile sees (rb_ivars_use) */
static const rb_ivars *cur_ivars;

void rb_ivars_use(const rb_ivars *iv) { cur_ivars = iv; }

const rb_ivars *rb_ivars_current(void) { return cur_ivars; }

/* @name: the value prepare_value gave it, copied into the tree */
static rb_node *p_ivar(parser *ps)
{
    const char *s = ++ps->p;
    while (ps->p < ps->end && is_id(*ps->p))
        ps->p++;
    size_t n = (size_t)(ps->p - s);
    if (!n)
        return fail(ps, "unexpected '@'");
    for (size_t i = 0; cur_ivars && i < cur_ivars->n; i++) {
        if (strlen(cur_ivars->names[i]) != n || memcmp(cur_ivars->names[i], s, n))
            continue;
        rb_node *r = node(ps, N_CONST);
        if (!r)
            return NULL;
        r->n = cur_ivars->vals[i].len;
        r->s = malloc(r->n ? r->n : 1);
        if (!r->s) {
            rb_free(r);
            return fail(ps, "out of memory");
        }
        memcpy(r->s, cur_ivars->vals[i].data, r->n);
        return r;
    }
    return fail(ps, "instance variable @%.*s is not set (record_modifier's prepare_value sets them)", (int)n, s);
}

static rb_node *p_primary(parser *ps)
{
    ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, "unexpected end of expression");
    char c = *ps->p;
    if (c == '\'' || c == '"')
        return p_string(ps);
    if (c == '/')
        return p_regex(ps);
    if (isdigit((unsigned char)c))
        return p_number(ps);
    if (c == '(') {
        ps->p++;
        rb_node *x = p_kw(ps);
        if (x && !eat(ps, ")")) {
            rb_free(x);
            return fail(ps, "expected ')' near '%.*s'", near_len(ps), near(ps));
        }
        return x;
    }
    if (c == '[') {
        ps->p++;
        rb_node *a = node(ps, N_ARRAY);
        if (a && p_args(ps, a, "]")) {
            rb_free(a);
            return NULL;
        }
        return a;
    }
    if (c == '@')
        return p_ivar(ps);
    if (!isalpha((unsigned char)c) && c != '_')
        return fail(ps, "unexpected '%.*s'", near_len(ps), near(ps));
    const char *s = ps->p;
    while (ps->p < ps->end && is_id(*ps->p))
        ps->p++;
    size_t n = (size_t)(ps->p - s);
    static const struct {
        const char *name;
        int kind, var;
    } words[] = {
        {"nil", N_NIL, 0},           {"true", N_TRUE, 0},
        {"false", N_FALSE, 0},       {"record", N_VAR, VAR_RECORD},
        {"tag", N_VAR, VAR_TAG},     {"time", N_VAR, VAR_TIME},
        {"tag_parts", N_VAR, VAR_TAG_PARTS}, {"tag_prefix", N_VAR, VAR_TAG_PREFIX},
        {"tag_suffix", N_VAR, VAR_TAG_SUFFIX}, {"hostname", N_VAR, VAR_HOSTNAME},
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (strlen(words[i].name) == n && !memcmp(s, words[i].name, n)) {
            rb_node *r = node(ps, words[i].kind);
            if (r)
                r->i = words[i].var;
            return r;
        }
    }
    if (n == 3 && !memcmp(s, "ENV", 3))
        return p_env(ps);
    if (n == 6 && !memcmp(s, "Socket", 6)) {
        if (!eat(ps, ".") || !eat_word(ps, "gethostname"))
            return fail(ps, "only Socket.gethostname is supported");
        rb_node *r = node(ps, N_VAR);
        if (r)
            r->i = VAR_HOSTNAME;
        return r;
    }
    if (n == 4 && !memcmp(s, "Time", 4)) {
        if (eat(ps, ".") && eat_word(ps, "now"))
            return node(ps, N_TIME_NOW);
        if (!eat_word(ps, "at") || !eat(ps, "("))
            return fail(ps, "only Time.now and Time.at(seconds) are supported");
        rb_node *x = p_tern(ps);
        if (x && !eat(ps, ")")) {
            rb_free(x);
            return fail(ps, "expected ')' after Time.at(...");
        }
        return x ? node_of(ps, N_TIME_AT, 0, x, NULL, NULL) : NULL;
    }
    return fail(ps, "undefined local variable or method `%.*s' (weir evaluates record, tag, time, tag_parts, "
                    "tag_prefix, tag_suffix, hostname, ENV, Socket.gethostname, Time.now, Time.at)",
                (int)n, s);
}

/* the postfix operators after the primary x */
static rb_node *p_post(parser *ps, rb_node *x)
{
    while (x) {
        ws(ps);
        if (ps->p < ps->end && *ps->p == '[') {
            ps->p++;
            rb_node *ix = node_of(ps, N_INDEX, 0, x, NULL, NULL);
            if (!ix || p_args(ps, ix, "]")) {
                rb_free(ix);
                return NULL;
            }
            if (ix->nkids < 2 || ix->nkids > 3) {
                rb_free(ix);
                return fail(ps, "[] takes one or two arguments");
            }
            x = ix;
            continue;
        }
        int safe = eat(ps, "&.");
        if (!safe && !(ps->p < ps->end && *ps->p == '.' && !(ps->p + 1 < ps->end && ps->p[1] == '.')))
            return x;
        if (!safe)
            ps->p++;
        ws(ps);
        const char *s = ps->p;
        while (ps->p < ps->end && is_id(*ps->p))
            ps->p++;
        size_t n = (size_t)(ps->p - s);
        const rb_method_info *m = NULL;
        for (int q = 1; q >= 0 && !m; q--) { /* name? first */
            size_t k = n + (size_t)q;
            if (q && !(ps->p < ps->end && (*ps->p == '?')))
                continue;
            for (size_t i = 0; rb_methods[i].name && !m; i++)
                if (strlen(rb_methods[i].name) == k && !memcmp(rb_methods[i].name, s, k))
                    m = &rb_methods[i];
            if (m && q)
                ps->p++;
        }
        if (!m) {
            rb_free(x);
            if (!n)
                return fail(ps, "expected a method name after '.'");
            return fail(ps, "undefined method `%.*s' (not in the methods weir evaluates; see docs/configuration.md)",
                        (int)n + (ps->p < ps->end && (*ps->p == '?' || *ps->p == '!')), s);
        }
        rb_node *call = node_of(ps, N_CALL, safe, x, NULL, NULL);
        if (!call)
            return NULL;
        call->i = m->id;
        if (ps->p < ps->end && *ps->p == '(') {
            ps->p++;
            if (p_args(ps, call, ")")) {
                rb_free(call);
                return NULL;
            }
        }
        size_t na = call->nkids - 1;
        if (na < m->min_args || na > m->max_args) {
            rb_free(call);
            return fail(ps, "wrong number of arguments for %s (given %zu, expected %u%s)", m->name, na, m->min_args,
                        m->max_args > m->min_args ? "+" : "");
        }
        ws(ps);
        if (ps->p < ps->end && (*ps->p == '{' || eat_word(ps, "do"))) {
            rb_free(call);
            return fail(ps, "blocks are not supported (%s { ... })", m->name);
        }
        x = call;
    }
    return x;
}

static rb_node *p_unary(parser *ps)
{
    if (++ps->depth > 64)
        return fail(ps, "expression nested too deeply");
    rb_node *r;
    ws(ps);
    if (ps->p < ps->end && *ps->p == '!' && !(ps->p + 1 < ps->end && (ps->p[1] == '=' || ps->p[1] == '~'))) {
        ps->p++;
        rb_node *x = p_unary(ps);
        r = x ? node_of(ps, N_NOT, 0, x, NULL, NULL) : NULL;
    } else if (ps->p < ps->end && *ps->p == '-') {
        ps->p++;
        if (ps->p < ps->end && isdigit((unsigned char)*ps->p)) { /* -1.abs is (-1).abs */
            rb_node *num = p_number(ps);
            if (num)
                num->i = -num->i, num->f = -num->f;
            r = p_post(ps, num);
        } else {
            rb_node *x = p_unary(ps);
            r = x ? node_of(ps, N_NEG, 0, x, NULL, NULL) : NULL;
        }
    } else {
        r = p_post(ps, p_primary(ps));
    }
    ps->depth--;
    return r;
}

static rb_node *p_mul(parser *ps)
{
    rb_node *x = p_unary(ps);
    while (x) {
        ws(ps);
        if (ps->p >= ps->end || !strchr("*/%", *ps->p) || (ps->p + 1 < ps->end && ps->p[1] == '='))
            return x;
        char op = *ps->p++;
        x = node_of(ps, N_BIN, op, x, p_unary(ps), NULL);
        if (x && x->nkids < 2)
            x = (rb_free(x), NULL);
    }
    return x;
}

static rb_node *p_add(parser *ps)
{
    rb_node *x = p_mul(ps);
    while (x) {
        ws(ps);
        if (ps->p >= ps->end || (*ps->p != '+' && *ps->p != '-') || (ps->p + 1 < ps->end && ps->p[1] == '='))
            return x;
        char op = *ps->p++;
        rb_node *y = p_mul(ps);
        x = y ? node_of(ps, N_BIN, op, x, y, NULL) : (rb_free(x), NULL);
    }
    return x;
}

static rb_node *p_rel(parser *ps)
{
    rb_node *x = p_add(ps);
    if (!x)
        return NULL;
    int op = eat(ps, "<=") ? OP_LE : eat(ps, ">=") ? OP_GE : 0;
    if (!op) {
        ws(ps);
        if (ps->p < ps->end && (*ps->p == '<' || *ps->p == '>') && !(ps->p + 1 < ps->end && ps->p[1] == ps->p[0]))
            op = *ps->p++;
    }
    if (!op)
        return x;
    rb_node *y = p_add(ps);
    return y ? node_of(ps, N_BIN, op, x, y, NULL) : (rb_free(x), NULL);
}

static rb_node *p_eq(parser *ps)
{
    rb_node *x = p_rel(ps);
    if (!x)
        return NULL;
    int op = eat(ps, "==") ? OP_EQ : eat(ps, "!=") ? OP_NE : eat(ps, "=~") ? OP_MATCH : eat(ps, "!~") ? OP_NMATCH : 0;
    if (!op) {
        ws(ps);
        if (ps->p < ps->end && *ps->p == '=')
            return rb_free(x), fail(ps, "assignments are not supported");
        return x;
    }
    rb_node *y = p_rel(ps);
    return y ? node_of(ps, N_BIN, op, x, y, NULL) : (rb_free(x), NULL);
}

static rb_node *p_logic(parser *ps, int kind, const char *tok, rb_node *(*sub)(parser *))
{
    rb_node *x = sub(ps);
    while (x && eat(ps, tok)) {
        rb_node *y = sub(ps);
        x = y ? node_of(ps, kind, 0, x, y, NULL) : (rb_free(x), NULL);
    }
    return x;
}

static rb_node *p_and(parser *ps) { return p_logic(ps, N_AND, "&&", p_eq); }
static rb_node *p_or(parser *ps) { return p_logic(ps, N_OR, "||", p_and); }

static rb_node *p_tern(parser *ps)
{
    rb_node *c = p_or(ps);
    if (!c || !eat(ps, "?"))
        return c;
    rb_node *a = p_tern(ps);
    if (!a)
        return rb_free(c), NULL;
    if (!eat(ps, ":")) {
        rb_free(c), rb_free(a);
        return fail(ps, "expected ':' of ?: near '%.*s'", near_len(ps), near(ps));
    }
    rb_node *b = p_tern(ps);
    if (!b)
        return rb_free(c), rb_free(a), NULL;
    return node_of(ps, N_TERN, 0, c, a, b);
}

static rb_node *p_not(parser *ps)
{
    if (eat_word(ps, "not")) {
        rb_node *x = p_not(ps);
        return x ? node_of(ps, N_NOT, 0, x, NULL, NULL) : NULL;
    }
    return p_tern(ps);
}

static rb_node *p_kw(parser *ps)
{
    rb_node *x = p_not(ps);
    for (;;) {
        int kind = eat_word(ps, "and") ? N_AND : eat_word(ps, "or") ? N_OR : -1;
        if (!x || kind < 0)
            return x;
        rb_node *y = p_not(ps);
        x = y ? node_of(ps, kind, 0, x, y, NULL) : (rb_free(x), NULL);
    }
}

rb_node *rb_compile(const char *src, size_t n, char *err, size_t errlen)
{
    int nodes = 0;
    parser ps = {src, src, src + n, err, errlen, 0, 0, &nodes};
    rb_node *x = p_kw(&ps);
    ws(&ps);
    if (x && ps.p < ps.end) {
        rb_free(x);
        x = fail(&ps, "unexpected '%.*s'", near_len(&ps), near(&ps));
    }
    if (!x && !ps.failed)
        fail(&ps, "syntax error");
    return x;
}

static const char *code_end(const char *s, const char *end, int nest)
{
    int depth = 0;
    if (nest > 32) /* "#{ "#{ ... nested deeper than any config: not code */
        return NULL;
    for (const char *p = s; p < end; p++) {
        char c = *p;
        if (c == '\'' || c == '"') {
            for (p++; p < end && *p != c; p++) {
                if (*p == '\\')
                    p++;
                else if (c == '"' && *p == '#' && p + 1 < end && p[1] == '{') {
                    const char *in = code_end(p + 2, end, nest + 1);
                    if (!in)
                        return NULL;
                    p = in;
                }
            }
            if (p >= end)
                return NULL;
        } else if (c == '{') {
            depth++;
        } else if (c == '}') {
            if (!depth--)
                return p;
        }
    }
    return NULL;
}

const char *rb_code_end(const char *s, const char *end) { return code_end(s, end, 0); }
