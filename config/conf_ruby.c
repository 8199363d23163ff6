/*
 * config/conf_ruby.c: the "#{...}" embedded Ruby of Fluentd configuration
 * values, in double-quoted strings and JSON strings. Without a Ruby
 * interpreter only what fluent.conf files use everywhere is evaluated:
 * ENV['NAME'], ENV.fetch('NAME', 'default') and Socket.gethostname; any
 * other code is an error, never silently kept as text.
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

/* Evaluates the code between "#{" and "}". Returns the malloc'd expansion, or
 * NULL after adding an error. */
static char *eval_code(const char *code, size_t n, conf_errors *errs, const char *file, int line)
{
    const char *p = code, *end = code + n;
    char *name = NULL, *def = NULL, *val = NULL;
    const char *env;
    int fetch = 0;

    p = skip_ws(p, end);
    /* "#{Socket.gethostname}": the other Ruby that fluent.conf files carry
     * everywhere (hostname in records); evaluated without Ruby */
    if (has_prefix(p, end, "Socket.gethostname") && skip_ws(p + 18, end) == end) {
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        return xstrdup(host);
    }
    if (!has_prefix(p, end, "ENV"))
        goto unsupported;
    p += 3;
    if (take(&p, end, '[')) { /* ENV['NAME'] */
        if (!(name = ruby_arg(&p, end)) || !take(&p, end, ']'))
            goto unsupported;
    } else if (take(&p, end, '.') && has_prefix(p, end, "fetch")) { /* ENV.fetch('NAME'[, 'default']) */
        fetch = 1;
        p += 5;
        if (!take(&p, end, '(') || !(name = ruby_arg(&p, end)))
            goto unsupported;
        if (take(&p, end, ',') && !(def = ruby_arg(&p, end)))
            goto unsupported;
        if (!take(&p, end, ')'))
            goto unsupported;
    } else {
        goto unsupported;
    }
    if (skip_ws(p, end) != end)
        goto unsupported;

    env = getenv(name);
    if (env) {
        val = xstrdup(env);
    } else if (def) {
        val = def;
        def = NULL;
    } else if (!fetch) {
        val = xstrdup(""); /* Ruby: ENV['X'] is nil, and nil.to_s is "" */
    } else {
        conf_errors_add(errs, file, line, "environment variable '%s' is not set and ENV.fetch has no default",
                        name);
    }
    goto out;

unsupported:
    conf_errors_add(errs, file, line,
                    "embedded Ruby code is not supported: #{%.*s}; "
                    "only #{ENV['NAME']}, #{ENV.fetch('NAME', 'default')} and #{Socket.gethostname} are",
                    SNIP(n), code);
out:
    free(name);
    free(def);
    return val;
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
    val = eval_code(code, (size_t)(close - code), errs, s->name, s->line);
    if (val) {
        if (json)
            sb_put_json_escaped(out, val);
        else
            sb_puts(out, val);
        free(val);
    }
    s->p = close + 1;
}
