/*
 * config/conf_bind.c: typed access to a parsed tree (see conf.h): value
 * conversions with Fluentd's rules, conf_bind() against a conf_spec table,
 * "did you mean" suggestions and the error list.
 *
 * Out of memory aborts, as in conf.c.
 */
#include "config/conf.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/array.h"

static void oom(void)
{
    fputs("weir: out of memory while reading the configuration\n", stderr);
    abort();
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *d = strndup(s, n);
    if (!d)
        oom();
    return d;
}

/* ---- errors ------------------------------------------------------------- */

void conf_errors_add(conf_errors *e, const char *file, int line, const char *fmt, ...)
{
    char *msg = NULL, *full = NULL;
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (r < 0)
        oom();
    /* Line 0 means "the file as a whole" (unreadable file, top level). */
    if (file && line > 0)
        r = asprintf(&full, "%s:%d: %s", file, line, msg);
    else if (file)
        r = asprintf(&full, "%s: %s", file, msg);
    else
        full = strdup(msg);
    free(msg);
    if (r < 0 || !full)
        oom();
    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 8;
        e->msgs = xrealloc(e->msgs, e->cap * sizeof *e->msgs);
    }
    e->msgs[e->n++] = full;
}

void conf_errors_free(conf_errors *e)
{
    ARRAY_FREE_ALL(e->msgs, e->n);
    *e = (conf_errors){0};
}

/* ---- conversions -------------------------------------------------------- */

static int is_space(char c)
{
    /* Ruby's \s, independent of the C locale. */
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int conf_parse_bool(const char *s, int *out)
{
    /* Fluentd's Config.bool_value, exactly: a bare flag ("key" with no
     * value) means true; anything else but these four is an error. */
    if (!s)
        return -1;
    if (!*s || strcmp(s, "true") == 0 || strcmp(s, "yes") == 0) {
        *out = 1;
        return 0;
    }
    if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0) {
        *out = 0;
        return 0;
    }
    return -1;
}

int conf_parse_int(const char *s, int64_t *out)
{
    const char *digits;
    char *end;
    long long v;

    if (!s)
        return -1;
    digits = s + (*s == '+' || *s == '-');
    /* strtoll alone would accept blanks, "0x" prefixes and an empty string. */
    if (!is_digit(*digits))
        return -1;
    for (const char *p = digits; *p; p++)
        if (!is_digit(*p))
            return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int conf_parse_size(const char *s, uint64_t *out)
{
    const char *p = s;
    uint64_t v = 0;
    int shift = 0;

    if (!s || !is_digit(*s))
        return -1;
    for (; is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    switch (*p) {
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    case 't': case 'T': shift = 40; p++; break;
    }
    if (*p == 'b' || *p == 'B') /* "8KB", "100b": accepted for convenience */
        p++;
    if (*p || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = v << shift;
    return 0;
}

int conf_parse_time(const char *s, double *out)
{
    const char *p = s;
    double v = 0, scale = 1;
    int digits = 0;

    /* Digits are accumulated by hand: strtod would also take "inf", "nan",
     * hex and exponents, and depends on the locale's decimal point. */
    if (!s)
        return -1;
    for (; is_digit(*p); p++, digits++)
        v = v * 10 + (*p - '0');
    if (*p == '.') {
        const char *frac = ++p;
        for (; is_digit(*p); p++, digits++) {
            v = v * 10 + (*p - '0');
            scale *= 10;
        }
        if (p == frac) /* "5." */
            return -1;
    }
    if (!digits)
        return -1;
    v /= scale;
    if (p[0] == 'm' && p[1] == 's') {
        v /= 1000;
        p += 2;
    } else if (*p == 's') {
        p++;
    } else if (*p == 'm') {
        v *= 60;
        p++;
    } else if (*p == 'h') {
        v *= 3600;
        p++;
    } else if (*p == 'd') {
        v *= 86400;
        p++;
    }
    if (*p || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static void strv_push(char ***v, size_t *n, char *s)
{
    *v = xrealloc(*v, (*n + 2) * sizeof **v);
    (*v)[(*n)++] = s;
    (*v)[*n] = NULL;
}

void conf_strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static long hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d = is_digit(c) ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static size_t utf8_encode(long cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* *pp is on the opening quote of a JSON string; returns it decoded. NUL
 * (\u0000) and lone surrogates are refused: they have no C-string form. */
static char *json_string(const char **pp)
{
    const char *p = *pp + 1;
    /* Decoding never makes a string longer. */
    char *out = malloc(strlen(p) + 1), *o = out;

    if (!out)
        oom();
    for (;;) {
        unsigned char c = (unsigned char)*p;
        long cp;
        if (c == '"')
            break;
        if (c < 0x20)
            goto bad;
        if (c != '\\') {
            *o++ = (char)c;
            p++;
            continue;
        }
        c = (unsigned char)p[1];
        p += 2;
        switch (c) {
        case '"': case '\\': case '/': *o++ = (char)c; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u':
            if ((cp = hex4(p)) < 0)
                goto bad;
            p += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                long lo = p[0] == '\\' && p[1] == 'u' ? hex4(p + 2) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    goto bad;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            } else if ((cp >= 0xDC00 && cp <= 0xDFFF) || cp == 0) {
                goto bad;
            }
            o += utf8_encode(cp, o);
            break;
        default:
            goto bad;
        }
    }
    *o = '\0';
    *pp = p + 1;
    return out;
bad:
    free(out);
    return NULL;
}

/* A JSON array element we can represent as text: a string, a number (kept
 * as written) or true/false. */
static char *json_element(const char **pp)
{
    const char *p = *pp, *start = p;

    if (*p == '"')
        return json_string(pp);
    if (strncmp(p, "true", 4) == 0 || strncmp(p, "false", 5) == 0) {
        size_t n = *p == 't' ? 4 : 5;
        *pp = p + n;
        return xstrndup(start, n);
    }
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (is_digit(*p))
        while (is_digit(*p))
            p++;
    else
        return NULL;
    if (*p == '.') {
        if (!is_digit(*++p))
            return NULL;
        while (is_digit(*p))
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!is_digit(*p))
            return NULL;
        while (is_digit(*p))
            p++;
    }
    *pp = p;
    return xstrndup(start, (size_t)(p - start));
}

char **conf_parse_array(const char *s)
{
    char **v;
    size_t n = 0;
    const char *p = s, *end;

    if (!s)
        return NULL;
    v = xrealloc(NULL, sizeof *v);
    v[0] = NULL;
    while (is_space(*p))
        p++;
    if (*p == '[') {
        for (p++; is_space(*p); p++)
            ;
        if (*p == ']') {
            p++;
        } else {
            for (;;) {
                char *e;
                while (is_space(*p))
                    p++;
                if (!(e = json_element(&p)))
                    goto bad;
                strv_push(&v, &n, e);
                while (is_space(*p))
                    p++;
                if (*p == ']') {
                    p++;
                    break;
                }
                if (*p++ != ',')
                    goto bad;
            }
        }
        while (is_space(*p))
            p++;
        if (*p)
            goto bad;
        return v;
    }

    /* Fluentd strips the value and splits it at commas, eating the blanks
     * around each comma. */
    end = p + strlen(p);
    while (end > p && is_space(end[-1]))
        end--;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *a = p, *b = comma ? comma : end;
        while (a < b && is_space(*a))
            a++;
        while (b > a && is_space(b[-1]))
            b--;
        strv_push(&v, &n, xstrndup(a, (size_t)(b - a)));
        if (!comma)
            break;
        p = comma + 1;
    }
    /* Ruby's split drops trailing empty fields: "a,b," is ["a", "b"]. */
    while (n > 0 && v[n - 1][0] == '\0') {
        free(v[--n]);
        v[n] = NULL;
    }
    return v;
bad:
    conf_strv_free(v);
    return NULL;
}

/* ---- suggestions -------------------------------------------------------- */

static int in_list(const char *const *list, const char *word);

static size_t min2(size_t a, size_t b)
{
    return a < b ? a : b;
}

/* Optimal string alignment distance: Levenshtein plus adjacent
 * transpositions, the most common typo ("flsuh"). */
static size_t edit_distance(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b), d;
    size_t *rows = xrealloc(NULL, 3 * (m + 1) * sizeof *rows);
    size_t *before = rows, *prev = rows + (m + 1), *cur = rows + 2 * (m + 1), *t;

    for (size_t j = 0; j <= m; j++)
        prev[j] = j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t v = min2(min2(prev[j] + 1, cur[j - 1] + 1), prev[j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                v = min2(v, before[j - 2] + 1);
            cur[j] = v;
        }
        t = before;
        before = prev;
        prev = cur;
        cur = t;
    }
    d = prev[m];
    free(rows);
    return d;
}

const char *conf_suggest(const char *word, const char *const *cands)
{
    size_t limit, best_d = (size_t)-1;
    const char *best = NULL;

    if (!word || !cands)
        return NULL;
    limit = strlen(word) / 3 > 2 ? strlen(word) / 3 : 2;
    for (; *cands; cands++) {
        size_t d = edit_distance(word, *cands);
        if (d <= limit && d < best_d) {
            best = *cands;
            best_d = d;
        }
    }
    return best;
}

/* A v0.12 name, or the closest v0.12 name to a typo when no candidate is
 * closer: its v1 form (conf_compat_v1_form), or NULL. */
static const char *v012_hint(const char *name, const char *const *cands, char *buf, size_t len)
{
    static const char *const old[] = {
        "type", "id", "log_level", "buffer_type", "buffer_path", "num_threads", "flush_interval", "try_flush_interval",
        "queued_chunk_flush_interval", "disable_retry_limit", "retry_limit", "max_retry_wait", "buffer_chunk_limit",
        "buffer_queue_limit", "buffer_queue_full_action", "flush_at_shutdown", "time_slice_format", "time_slice_wait",
        "retry_wait", "format", "types", "types_delimiter", "types_label_delimiter", "include_time_key",
        "include_tag_key", "time_as_epoch", NULL};
    const char *v1 = conf_compat_v1_form(name);
    if (v1 && (!cands || !in_list(cands, name))) {
        snprintf(buf, len, "%s (its v1 form)", v1);
        return buf;
    }
    const char *near = conf_suggest(name, old), *cand = conf_suggest(name, cands);
    if (!near || (cand && edit_distance(name, cand) <= edit_distance(name, near)))
        return NULL;
    snprintf(buf, len, "%s ('%s' is its v0.12 name)", conf_compat_v1_form(near), near);
    return buf;
}

void conf_error_unknown(conf_errors *e, const char *file, int line, const char *what, const char *name,
                        const char *where, const char *const *cands)
{
    int angle = !strcmp(what, "section") || !strcmp(what, "directive");
    const char *open = angle ? "<" : "'", *close = angle ? ">" : "'";
    const char *hint = conf_suggest(name, cands);
    char mean[512] = "", v1[256];
    const char *old = !strcmp(what, "parameter") ? v012_hint(name, cands, v1, sizeof v1) : NULL;
    if (old && where) { /* "its v1 form" is this very name here (e.g. `fields` in a <format> whose @type lacks it) */
        char self[512];
        snprintf(self, sizeof self, "'%s' %s (its v1 form)", name, where);
        if (!strcmp(old, self))
            old = NULL;
    }
    if (old)
        snprintf(mean, sizeof mean, "; did you mean %s?", old);
    else if (hint)
        snprintf(mean, sizeof mean, "; did you mean %s%s%s?", open, hint, close);
    conf_errors_add(e, file, line, "unknown %s %s%s%s%s%s%s", what, open, name, close, where ? " " : "",
                    where ? where : "", mean);
}

/* ---- binding ------------------------------------------------------------ */

/* "in <match app.**>", "in <buffer>", or "at top level" for ROOT. */
static char *where(const conf_node *n)
{
    char *s = NULL;
    int r;

    if (!n->parent)
        r = asprintf(&s, "at top level");
    else if (n->arg && *n->arg)
        r = asprintf(&s, "in <%s %s>", n->name, n->arg);
    else
        r = asprintf(&s, "in <%s>", n->name);
    if (r < 0)
        oom();
    return s;
}

static int enum_index(const char *choices, const char *value)
{
    size_t len = strlen(value);
    int i = 0;

    for (const char *p = choices; p; i++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && memcmp(p, value, n) == 0)
            return i;
        p = bar ? bar + 1 : NULL;
    }
    return -1;
}

/* Converts `text` and stores it in `field`; -1 leaves `field` untouched. */
static int store(const conf_spec *sp, const char *text, void *field)
{
    switch (sp->type) {
    case CONF_STR:
        *(char **)field = xstrndup(text, strlen(text));
        return 0;
    case CONF_INT:
        return conf_parse_int(text, (int64_t *)field);
    case CONF_BOOL:
        return conf_parse_bool(text, (int *)field);
    case CONF_SIZE:
        return conf_parse_size(text, (uint64_t *)field);
    case CONF_TIME:
        return conf_parse_time(text, (double *)field);
    case CONF_ENUM: {
        int i = sp->choices ? enum_index(sp->choices, text) : -1;
        if (i < 0)
            return -1;
        *(int *)field = i;
        return 0;
    }
    case CONF_ARRAY: {
        char **v = conf_parse_array(text);
        if (!v)
            return -1;
        *(char ***)field = v;
        return 0;
    }
    case CONF_HASH:
        return conf_parse_hash(text, (conf_hash *)field);
    case CONF_SECTION:
        return 0;
    }
    return -1;
}

static void store_zero(const conf_spec *sp, void *field)
{
    switch (sp->type) {
    case CONF_STR: *(char **)field = NULL; break;
    case CONF_INT: *(int64_t *)field = 0; break;
    case CONF_BOOL: *(int *)field = 0; break;
    case CONF_SIZE: *(uint64_t *)field = 0; break;
    case CONF_TIME: *(double *)field = 0; break;
    case CONF_ENUM: *(int *)field = 0; break;
    case CONF_ARRAY: *(char ***)field = NULL; break;
    case CONF_HASH: memset(field, 0, sizeof(conf_hash)); break;
    case CONF_SECTION: break;
    }
}

static void report_invalid(conf_errors *errs, const conf_param *p, const conf_spec *sp)
{
    static const char *const kind[] = {
        [CONF_INT] = "integer", [CONF_BOOL] = "boolean", [CONF_SIZE] = "size",
        [CONF_TIME] = "time",   [CONF_ARRAY] = "array",
    };

    if (sp->type == CONF_HASH) {
        conf_errors_add(errs, p->file, p->line,
                        "invalid hash value '%s' for parameter '%s'; expected a JSON object ({\"k\":\"v\"}) or "
                        "k1:v1,k2:v2",
                        p->value, sp->name);
        return;
    }

    if (sp->type == CONF_ENUM) {
        char *list = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&list, &len);
        if (!f)
            oom();
        for (const char *c = sp->choices ? sp->choices : ""; *c; c++) {
            if (*c == '|')
                fputs(", ", f);
            else
                fputc(*c, f);
        }
        if (fclose(f) != 0)
            oom();
        conf_errors_add(errs, p->file, p->line, "invalid value '%s' for parameter '%s'; expected one of: %s",
                        p->value, sp->name, list);
        free(list);
    } else {
        conf_errors_add(errs, p->file, p->line, "invalid %s value '%s' for parameter '%s'", kind[sp->type],
                        p->value, sp->name);
    }
}

static int has_child(const conf_node *n, const char *name)
{
    for (size_t i = 0; i < n->nchildren; i++)
        if (strcmp(n->children[i]->name, name) == 0)
            return 1;
    return 0;
}

static int in_list(const char *const *list, const char *word)
{
    for (; *list; list++)
        if (strcmp(*list, word) == 0)
            return 1;
    return 0;
}

int conf_bind(conf_node *n, const conf_spec *specs, void *out, conf_errors *errs)
{
    return conf_bind_with(n, specs, out, NULL, errs);
}

int conf_bind_with(conf_node *n, const conf_spec *specs, void *out, const char *const *more_sections,
                   conf_errors *errs)
{
    const size_t before = errs->n;
    size_t nspecs = 0, nmore = 0, np = 0, ns = 0;
    const char **params, **sections;
    char *loc = where(n);

    for (const conf_spec *sp = specs; sp->name; sp++)
        nspecs++;
    for (; more_sections && more_sections[nmore]; nmore++)
        ;
    params = xrealloc(NULL, (nspecs + 1) * sizeof *params);
    sections = xrealloc(NULL, (nspecs + nmore + 1) * sizeof *sections);
    for (size_t i = 0; i < nmore; i++)
        sections[ns++] = more_sections[i];

    for (const conf_spec *sp = specs; sp->name; sp++) {
        void *field = (char *)out + sp->offset;
        conf_param *p;

        if (sp->type == CONF_SECTION) {
            sections[ns++] = sp->name;
            if (sp->required && !has_child(n, sp->name))
                conf_errors_add(errs, n->file, n->line, "missing required section <%s> %s", sp->name, loc);
            continue;
        }
        params[np++] = sp->name;
        p = conf_get(n, sp->name);
        if (p) {
            if (store(sp, p->value, field) == 0)
                continue;
            report_invalid(errs, p, sp);
        } else if (sp->required) {
            conf_errors_add(errs, n->file, n->line, "missing required parameter '%s' %s", sp->name, loc);
        }
        /* Absent or invalid: the default keeps the struct usable, so the
         * caller can go on collecting errors. */
        if (!sp->def) {
            store_zero(sp, field);
        } else if (store(sp, sp->def, field) < 0) {
            conf_errors_add(errs, n->file, n->line, "invalid default '%s' for parameter '%s' (bug in weir)", sp->def,
                            sp->name);
            store_zero(sp, field);
        }
    }
    params[np] = NULL;
    sections[ns] = NULL;

    for (size_t i = 0; i < n->nparams; i++) {
        conf_param *p = &n->params[i];
        char v1[256];
        const char *hint;
        /* '@' parameters belong to the caller; `used` ones were consumed by
         * the table above or by an earlier conf_get(). */
        if (p->key[0] == '@' || p->used)
            continue;
        if (p->bare) {
            /* a word alone on its line (a comment without its '#'): Fluentd
             * takes it as a parameter without value and warns it is not used */
            hint = conf_suggest(p->key, params);
            conf_warn(n, p->file, p->line, "parameter '%s' %s is not used (a word alone on its line: a comment "
                      "without '#'?)%s%s%s", p->key, loc, hint ? "; did you mean '" : "", hint ? hint : "",
                      hint ? "'?" : "");
            p->used = 1;
            continue;
        }
        if (conf_is_plugin_section(n) && (hint = conf_compat_v1_form(p->key)) != NULL) {
            /* a v0.12 parameter this plugin does not convert in Fluentd either: unused there, with a warning */
            snprintf(v1, sizeof v1, "%s", hint);
            conf_warn(n, p->file, p->line, "parameter '%s' %s is not used (Fluentd v1 does not convert it here "
                      "either); use %s", p->key, loc, v1);
            p->used = 1;
            continue;
        }
        conf_error_unknown(errs, p->file, p->line, "parameter", p->key, loc, params);
    }

    for (size_t i = 0; i < n->nchildren; i++) {
        const conf_node *c = n->children[i];
        if (in_list(sections, c->name))
            continue;
        conf_error_unknown(errs, c->file, c->line, "section", c->name, loc, sections);
    }

    free(params);
    free(sections);
    free(loc);
    return errs->n > before ? -1 : 0;
}

void conf_unbind(const conf_spec *specs, void *out)
{
    for (const conf_spec *sp = specs; sp->name; sp++) {
        void *field = (char *)out + sp->offset;
        if (sp->type == CONF_STR) {
            free(*(char **)field);
            *(char **)field = NULL;
        } else if (sp->type == CONF_ARRAY) {
            conf_strv_free(*(char ***)field);
            *(char ***)field = NULL;
        } else if (sp->type == CONF_HASH) {
            conf_hash_free((conf_hash *)field);
        }
    }
}

/* "FILE:LINE: ..." -> (file, line); messages without a line sort first in their file */
static int err_cmp(const char *a, const char *b)
{
    const char *ca = strchr(a, ':'), *cb = strchr(b, ':');
    size_t fa = ca ? (size_t)(ca - a) : strlen(a), fb = cb ? (size_t)(cb - b) : strlen(b);
    int c = strncmp(a, b, fa < fb ? fa : fb);
    if (c || fa != fb)
        return c ? c : (fa < fb ? -1 : 1);
    long la = ca ? strtol(ca + 1, NULL, 10) : 0, lb = cb ? strtol(cb + 1, NULL, 10) : 0;
    return la < lb ? -1 : la > lb;
}

void conf_errors_sort(conf_errors *e)
{
    /* insertion sort: stable, and error lists are short */
    for (size_t i = 1; i < e->n; i++) {
        char *m = e->msgs[i];
        size_t j = i;
        while (j > 0 && err_cmp(e->msgs[j - 1], m) > 0) {
            e->msgs[j] = e->msgs[j - 1];
            j--;
        }
        e->msgs[j] = m;
    }
}

void conf_error_at(conf_errors *e, const conf_node *n, const char *key, const char *fmt, ...)
{
    const conf_param *p = NULL;
    for (size_t i = 0; i < n->nparams; i++)
        if (strcmp(n->params[i].key, key) == 0)
            p = &n->params[i];
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    conf_errors_add(e, p ? p->file : n->file, p ? p->line : n->line, "%s", msg);
}
