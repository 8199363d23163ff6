/*
 * config/conf_ruby.c: the "#{...}" embedded Ruby of Fluentd configuration
 * values, in double-quoted strings and JSON strings. Without a Ruby
 * interpreter only what fluent.conf files use everywhere is evaluated:
 * ENV lookups, Socket.gethostname, strings with interpolation, `||`
 * defaults and a few String methods (the evaluator below); any other code
 * is an error, never silently kept as text.
 */
#include "config/conf_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- "#{...}" embedded code: only ENV lookups --------------------------- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && isspace((unsigned char)*p))
        p++;
    return p;
}

static int has_prefix(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0;
}

/* A Ruby string literal ('...' or "..."): the ENV name or a default. NULL if
 * it is not one we can evaluate without Ruby (e.g. it interpolates). */
static char *ruby_string(const char **pp, const char *end)
{
    const char *p = *pp;
    sbuf b = {0};
    char q;

    if (p >= end || (*p != '\'' && *p != '"'))
        return NULL;
    q = *p++;
    for (; p < end && *p != q; p++) {
        if (*p == '\\' && p + 1 < end) {
            char e = *++p;
            if (q == '\'') {
                if (e != '\'' && e != '\\')
                    sb_putc(&b, '\\');
                sb_putc(&b, e);
            } else {
                sb_putc(&b, e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e);
            }
            continue;
        }
        if (q == '"' && *p == '#' && p + 1 < end && p[1] == '{')
            break;
        sb_putc(&b, *p);
    }
    if (p >= end || *p != q) {
        sb_free(&b);
        return NULL;
    }
    *pp = p + 1;
    return sb_take(&b);
}

/* The byte c, white space before and after it skipped: 1, or 0 (*p unmoved). */
static int take(const char **p, const char *end, char c)
{
    const char *q = skip_ws(*p, end);
    if (q >= end || *q != c)
        return 0;
    *p = skip_ws(q + 1, end);
    return 1;
}

/* A quoted string argument and the white space after it (malloc'd), or NULL. */
static char *ruby_arg(const char **p, const char *end)
{
    char *s = ruby_string(p, end);
    if (s)
        *p = skip_ws(*p, end);
    return s;
}

/* ---- a tiny evaluator for the Ruby fluent.conf files carry ------------------
 *
 *   expr    := term ('||' term)*          first value that is not nil
 *   term    := primary ('.' method)*      to_i to_s upcase downcase strip
 *   primary := ENV['N'] | ENV["N"] | ENV.fetch('N'[, expr]) | Socket.gethostname
 *            | 'text' | "text with #{expr}" | integer | nil | '(' expr ')'
 *            | use_nil | use_default
 *
 * A value is a string or nil (ENV['UNSET'] is nil; nil.to_s is ""). Anything
 * else is refused with the code and its line, never kept as text.
 *
 * use_nil and use_default are Fluentd's: evaluating either (Ruby raises, so
 * `a || use_default` reaches it only when a is nil) makes the whole quoted
 * value "not set", and the parameter is then left out, as if it were not
 * written (Fluentd: the default; use_nil sets nil, the default of nearly
 * every parameter written that way). */

typedef struct rval {
    char *s;   /* NULL: nil */
    int unset; /* use_nil / use_default was evaluated */
} rval;

typedef struct rctx {
    conf_errors *errs;
    const char *file;
    int line;
    char *missing; /* the first ENV.fetch of an unset variable without a default */
} rctx;

static int r_expr(rctx *c, const char **p, const char *end, rval *out, int depth);
static const char *code_end(const char *code, const char *eol);

/* "text with #{expr}": *p on the opening '"'. */
static int r_dquoted(rctx *c, const char **pp, const char *end, rval *out, int depth)
{
    const char *p = *pp + 1;
    sbuf b = {0};
    for (; p < end && *p != '"'; p++) {
        if (*p == '\\' && p + 1 < end) {
            char e = *++p;
            sb_putc(&b, e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e);
        } else if (*p == '#' && p + 1 < end && p[1] == '{') {
            const char *close = code_end(p + 2, end);
            const char *q = p + 2;
            rval v = {0};
            if (!close || r_expr(c, &q, close, &v, depth + 1) || skip_ws(q, close) != close) {
                free(v.s);
                sb_free(&b);
                return -1;
            }
            if (v.s)
                sb_puts(&b, v.s);
            out->unset |= v.unset;
            free(v.s);
            p = close;
        } else {
            sb_putc(&b, *p);
        }
    }
    if (p >= end) {
        sb_free(&b);
        return -1;
    }
    *pp = p + 1;
    if (out->unset) {
        sb_free(&b);
        return 0;
    }
    out->s = sb_take(&b);
    if (!out->s)
        out->s = xstrdup("");
    return 0;
}

static int r_env(rctx *c, const char **p, const char *end, rval *out, int depth)
{
    char *name = NULL;
    rval def = {0};
    int fetch = 0, has_def = 0, rc = -1;
    if (take(p, end, '[')) { /* ENV['NAME'] */
        if (!(name = ruby_arg(p, end)) || !take(p, end, ']'))
            goto out;
    } else if (take(p, end, '.') && has_prefix(*p, end, "fetch")) { /* ENV.fetch('NAME'[, default]) */
        fetch = 1;
        *p += 5;
        if (!take(p, end, '(') || !(name = ruby_arg(p, end)))
            goto out;
        if (take(p, end, ',')) {
            if (r_expr(c, p, end, &def, depth + 1))
                goto out;
            has_def = 1;
        }
        if (!take(p, end, ')'))
            goto out;
    } else {
        goto out;
    }
    const char *env = getenv(name);
    if (env) {
        out->s = xstrdup(env);
    } else if (has_def) {
        out->s = def.s;
        out->unset = def.unset;
        def.s = NULL;
    } else if (fetch && !c->missing) {
        c->missing = name; /* reported once the whole code is read (Ruby's KeyError) */
        name = NULL;
    } /* else nil */
    rc = 0;
out:
    free(name);
    free(def.s);
    return rc;
}

static int r_primary(rctx *c, const char **p, const char *end, rval *out, int depth)
{
    *p = skip_ws(*p, end);
    if (depth > 16 || *p >= end)
        return -1;
    if (has_prefix(*p, end, "Socket.gethostname")) {
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        *p += 18;
        out->s = xstrdup(host);
        return 0;
    }
    if (has_prefix(*p, end, "ENV")) {
        *p += 3;
        return r_env(c, p, end, out, depth);
    }
    if (**p == '\'') {
        if (!(out->s = ruby_string(p, end)))
            return -1;
        return 0;
    }
    if (**p == '"')
        return r_dquoted(c, p, end, out, depth);
    if (isdigit((unsigned char)**p) || (**p == '-' && *p + 1 < end && isdigit((unsigned char)(*p)[1]))) {
        const char *q = *p + 1;
        while (q < end && (isdigit((unsigned char)*q) || *q == '_'))
            q++;
        sbuf b = {0};
        for (const char *r = *p; r < q; r++)
            if (*r != '_')
                sb_putc(&b, *r);
        out->s = sb_take(&b);
        *p = q;
        return 0;
    }
    static const char *const unset_words[] = {"use_nil", "use_default", NULL};
    for (int i = 0; unset_words[i]; i++) {
        size_t n = strlen(unset_words[i]);
        if (has_prefix(*p, end, unset_words[i]) &&
            (*p + n >= end || !(isalnum((unsigned char)(*p)[n]) || (*p)[n] == '_'))) {
            *p += n;
            out->unset = 1;
            return 0;
        }
    }
    if (has_prefix(*p, end, "nil") && (*p + 3 >= end || !isalnum((unsigned char)(*p)[3]))) {
        *p += 3;
        return 0;
    }
    if (take(p, end, '(')) {
        if (r_expr(c, p, end, out, depth + 1))
            return -1;
        return take(p, end, ')') ? 0 : -1;
    }
    return -1;
}

/* Ruby's String#to_i: leading white space, a sign, digits (and '_'); 0 when none. */
static char *ruby_to_i(const char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    sbuf b = {0};
    if (*s == '-' || *s == '+') {
        if (*s == '-')
            sb_putc(&b, '-');
        s++;
    }
    while (*s == '0' && isdigit((unsigned char)s[1]))
        s++;
    size_t digits = 0;
    for (; isdigit((unsigned char)*s) || (*s == '_' && digits && isdigit((unsigned char)s[1])); s++)
        if (*s != '_')
            sb_putc(&b, *s), digits++;
    char *r = sb_take(&b);
    if (!digits) {
        free(r);
        return xstrdup("0");
    }
    return r;
}

static int r_term(rctx *c, const char **p, const char *end, rval *out, int depth)
{
    if (r_primary(c, p, end, out, depth))
        return -1;
    while (take(p, end, '.')) {
        static const char *const methods[] = {"to_i", "to_s", "upcase", "downcase", "strip", NULL};
        int m = -1;
        for (int i = 0; methods[i]; i++) {
            size_t n = strlen(methods[i]);
            if (has_prefix(*p, end, methods[i]) &&
                (*p + n >= end || !(isalnum((unsigned char)(*p)[n]) || (*p)[n] == '_'))) {
                m = i;
                *p += n;
                break;
            }
        }
        if (m < 0 || (m >= 2 && !out->s && !out->unset)) /* unknown method; nil has no upcase/downcase/strip */
            return -1;
        if (out->unset) { /* Ruby raised before the method */
            *p = skip_ws(*p, end);
            continue;
        }
        char *r;
        if (m == 0) {
            r = ruby_to_i(out->s ? out->s : "");
        } else if (m == 1) {
            r = xstrdup(out->s ? out->s : "");
        } else if (m == 4) {
            const char *a = out->s, *z = out->s + strlen(out->s);
            while (a < z && isspace((unsigned char)*a))
                a++;
            while (z > a && isspace((unsigned char)z[-1]))
                z--;
            r = xstrndup(a, (size_t)(z - a));
        } else {
            r = xstrdup(out->s);
            for (char *q = r; *q; q++)
                *q = (char)(m == 2 ? toupper((unsigned char)*q) : tolower((unsigned char)*q));
        }
        free(out->s);
        out->s = r;
        *p = skip_ws(*p, end);
    }
    return 0;
}

static int r_expr(rctx *c, const char **p, const char *end, rval *out, int depth)
{
    if (r_term(c, p, end, out, depth))
        return -1;
    for (;;) {
        const char *q = skip_ws(*p, end);
        if (!has_prefix(q, end, "||"))
            return 0;
        *p = q + 2;
        rval next = {0};
        if (r_term(c, p, end, &next, depth)) {
            free(next.s);
            return -1;
        }
        if (!out->s && !out->unset) { /* a || b: b when a is nil */
            out->s = next.s;
            out->unset = next.unset;
        } else {
            free(next.s);
        }
    }
}

/* Evaluates the code between "#{" and "}". Returns the malloc'd expansion, or
 * NULL after adding an error. */
static char *eval_code(const char *code, size_t n, conf_errors *errs, const char *file, int line, int *unset)
{
    rctx c = {errs, file, line, NULL};
    const char *p = code, *end = code + n;
    rval v = {0};
    if (r_expr(&c, &p, end, &v, 0) == 0 && skip_ws(p, end) == end) {
        if (!c.missing) {
            if (v.unset)
                *unset = 1;
            return v.s ? v.s : xstrdup(""); /* nil.to_s */
        }
        conf_errors_add(errs, file, line, "environment variable '%s' is not set and ENV.fetch has no default",
                        c.missing);
        free(c.missing);
        free(v.s);
        return NULL;
    }
    free(c.missing);
    free(v.s);
    conf_errors_add(errs, file, line,
                    "embedded Ruby code is not supported: #{%.*s}; weir evaluates ENV['NAME'], "
                    "ENV.fetch('NAME'[, default]), Socket.gethostname, 'strings', \"#{interpolation}\", "
                    "integers, nil, a || b, and .to_i .to_s .upcase .downcase .strip",
                    SNIP(n), code);
    return NULL;
}

/* The '}' closing embedded code that starts at `code`, or NULL. Braces and
 * quotes inside the code are balanced, as Ruby would; the code must fit on
 * its line. */
static const char *code_end(const char *code, const char *eol)
{
    int depth = 0;
    for (const char *p = code; p < eol; p++) {
        if (*p == '\'' || *p == '"') {
            char q = *p;
            for (p++; p < eol && *p != q; p++)
                if (*p == '\\' && p + 1 < eol)
                    p++;
            if (p >= eol)
                return NULL;
        } else if (*p == '{') {
            depth++;
        } else if (*p == '}') {
            if (depth == 0)
                return p;
            depth--;
        }
    }
    return NULL;
}

static void sb_put_json_escaped(sbuf *b, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            sb_putc(b, '\\');
            sb_putc(b, (char)c);
        } else if (c < 0x20) {
            char u[8];
            snprintf(u, sizeof u, "\\u%04x", c);
            sb_puts(b, u);
        } else {
            sb_putc(b, (char)c);
        }
    }
}

/* s->p is on the '#' of "#{". Appends the expansion (JSON-escaped when it
 * lands inside a JSON string) and moves past the '}'. */
void cfg_expand_code(src *s, sbuf *out, conf_errors *errs, int json)
{
    const char *code = s->p + 2;
    const char *close = code_end(code, eol_of(s, code));
    char *val;

    if (!close) {
        conf_errors_add(errs, s->name, s->line, "unterminated '#{' in double-quoted string");
        sb_putc(out, '#');
        s->p++;
        return;
    }
    val = eval_code(code, (size_t)(close - code), errs, s->name, s->line, &s->unset);
    if (val) {
        if (json)
            sb_put_json_escaped(out, val);
        else
            sb_puts(out, val);
        free(val);
    }
    s->p = close + 1;
}
