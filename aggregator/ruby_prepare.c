/*
 * aggregator/ruby_prepare.c: record_modifier's prepare_value (ruby_expr.h,
 * rb_prepare): `@name = expr` statements of the Ruby subset, each compiled
 * (ruby_parse.c) and evaluated (ruby_eval.c) once, at configuration time,
 * into instance variables that later compiles resolve `@name` against.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aggregator/ruby_impl.h"

void rb_ivars_free(rb_ivars *iv)
{
    for (size_t i = 0; i < iv->n; i++) {
        free(iv->names[i]);
        wbuf_free(&iv->vals[i]);
    }
    free(iv->names);
    free(iv->vals);
    memset(iv, 0, sizeof *iv);
}

/* The end of the statement at s: the first ';' or line break outside quotes and brackets. */
static const char *stmt_end(const char *s, const char *end)
{
    int depth = 0;
    for (const char *p = s; p < end; p++) {
        if (*p == '\'' || *p == '"') {
            char q = *p;
            for (p++; p < end && *p != q; p++)
                if (*p == '\\')
                    p++;
            if (p >= end)
                return end;
        } else if (*p == '(' || *p == '[' || *p == '{') {
            depth++;
        } else if ((*p == ')' || *p == ']' || *p == '}') && depth) {
            depth--;
        } else if (!depth && (*p == ';' || *p == '\n')) {
            return p;
        }
    }
    return end;
}

static int set_ivar(rb_ivars *iv, const char *name, size_t nl, wbuf *val)
{
    for (size_t i = 0; i < iv->n; i++)
        if (strlen(iv->names[i]) == nl && !memcmp(iv->names[i], name, nl)) {
            wbuf_free(&iv->vals[i]);
            iv->vals[i] = *val;
            return 0;
        }
    char **names = realloc(iv->names, (iv->n + 1) * sizeof *names);
    if (names)
        iv->names = names;
    wbuf *vals = realloc(iv->vals, (iv->n + 1) * sizeof *vals);
    if (vals)
        iv->vals = vals;
    char *nm = names && vals ? strndup(name, nl) : NULL;
    if (!nm)
        return -1;
    iv->names[iv->n] = nm;
    iv->vals[iv->n++] = *val;
    return 0;
}

int rb_prepare(const char *src, size_t n, rb_ivars *iv, char *err, size_t errlen)
{
    const rb_ivars *saved = rb_ivars_current();
    const char *p = src, *end = src + n;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    rb_env env = {.tag = "", .rec = (const uint8_t *)"\x80", .len = 1, .sec = (uint32_t)time(NULL),
                  .hostname = host, .hostname_len = strlen(host)};
    int rc = 0;
    memset(iv, 0, sizeof *iv);
    rb_ivars_use(iv);
    while (!rc && p < end) {
        const char *s = p, *e = stmt_end(p, end);
        p = e < end ? e + 1 : end;
        while (s < e && isspace((unsigned char)*s))
            s++;
        while (e > s && isspace((unsigned char)e[-1]))
            e--;
        if (s == e)
            continue;
        if (e - s > 8 && !memcmp(s, "require", 7) && (s[7] == ' ' || s[7] == '\'' || s[7] == '"'))
            continue; /* require 'socket' and the like: what weir has needs none */
        const char *nm = s + 1, *q = nm;
        while (q < e && (isalnum((unsigned char)*q) || *q == '_'))
            q++;
        const char *eq = q;
        while (eq < e && (*eq == ' ' || *eq == '\t'))
            eq++;
        if (*s != '@' || q == nm || eq >= e || *eq != '=' || (eq + 1 < e && (eq[1] == '=' || eq[1] == '~'))) {
            snprintf(err, errlen,
                     "prepare_value: only `@name = expression` statements (and require) are supported, not '%.*s'",
                     (int)(e - s > 80 ? 80 : e - s), s);
            rc = -1;
            break;
        }
        char why[256];
        rb_node *x = rb_compile(eq + 1, (size_t)(e - eq - 1), why, sizeof why);
        wbuf v = {0};
        if (!x) {
            snprintf(err, errlen, "prepare_value: @%.*s: %s", (int)(q - nm), nm, why);
            rc = -1;
        } else if (rb_eval_value(x, &env, &v, why, sizeof why)) {
            snprintf(err, errlen, "prepare_value: @%.*s: %s", (int)(q - nm), nm, why);
            rc = -1;
        } else if (set_ivar(iv, nm, (size_t)(q - nm), &v)) {
            snprintf(err, errlen, "out of memory");
            rc = -1;
        } else {
            v = (wbuf){0}; /* kept in iv */
        }
        wbuf_free(&v);
        rb_free(x);
    }
    rb_ivars_use(saved);
    if (rc)
        rb_ivars_free(iv);
    return rc;
}
