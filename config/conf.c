/*
 * config/conf.c: the Fluentd v1 syntax parser behind conf_parse_file() and
 * conf_parse_string(); see conf.h for the data model.
 *
 * A file is read whole and scanned with a cursor. Each statement (section
 * header, closing tag, parameter) is handled by one function that leaves the
 * cursor at the end of the last line it consumed. Open sections are tracked
 * through the parent pointers rather than by recursion, so a deeply nested
 * (or hostile) file cannot exhaust the stack.
 *
 * Error recovery: a bad statement is reported and parsing resumes on the next
 * line, so a single --dry-run reports as many problems as possible. Only an
 * unclosed section (nobody can tell where it was meant to end) or an
 * unreadable main file makes the tree unusable; then the parse returns NULL.
 *
 * Out of memory aborts: a half-parsed configuration is of no use to anyone.
 */
#include "config/conf.h"

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

/* Fluentd has no limit, but an include chain that long is a mistake. */
#define INCLUDE_MAX_DEPTH 16
/* Ruby's JSON.parse default max_nesting; also bounds our recursion. */
#define JSON_MAX_DEPTH 100
/* Quoted snippets of bad input are cut so one bad line cannot flood --dry-run. */
#define SNIP(len) ((int)((len) > 200 ? 200 : (len)))

/* ROOT is allocated as this, so the tree can own the file names that every
 * node and parameter points to. */
typedef struct conf_root {
    conf_node node; /* first member: conf_free() receives &node */
    char **files;
    size_t nfiles;
} conf_root;

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

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
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

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* Arrays that only grow: the capacity is implied by the count (the next power
 * of two), so no separate field is needed in the public structs. */
static void *grow(void *arr, size_t n, size_t size)
{
    if (n == 0 || (n & (n - 1)) == 0)
        arr = xrealloc(arr, (n ? 2 * n : 1) * size);
    return arr;
}

typedef struct sbuf {
    char *d;
    size_t n, cap;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        b->d = xrealloc(b->d, cap);
        b->cap = cap;
    }
    memcpy(b->d + b->n, s, n);
    b->n += n;
    b->d[b->n] = '\0';
}

static void sb_putc(sbuf *b, char c)
{
    sb_putn(b, &c, 1);
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static char *sb_take(sbuf *b)
{
    char *s = b->d ? b->d : xstrdup("");
    *b = (sbuf){0};
    return s;
}

static void sb_free(sbuf *b)
{
    free(b->d);
    *b = (sbuf){0};
}

/* Errors found inside a value are staged in a private list first: if the
 * value later turns out to be unterminated they are noise and get dropped. */
static void errors_move(conf_errors *dst, conf_errors *src)
{
    for (size_t i = 0; i < src->n; i++) {
        if (dst->n == dst->cap) {
            dst->cap = dst->cap ? 2 * dst->cap : 8;
            dst->msgs = xrealloc(dst->msgs, dst->cap * sizeof *dst->msgs);
        }
        dst->msgs[dst->n++] = src->msgs[i];
    }
    free(src->msgs);
    *src = (conf_errors){0};
}

/* ---- source cursor ------------------------------------------------------ */

typedef struct src {
    const char *name; /* pooled; used in messages and for relative @include */
    const char *p;    /* cursor */
    const char *end;  /* *end == '\0', so p[1] is always readable when p < end */
    int line;
} src;

static int is_blank(char c)
{
    /* A lone '\r' (CRLF pairs are already folded) counts as a blank. */
    return c == ' ' || c == '\t' || c == '\r';
}

static int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static const char *eol_of(const src *s, const char *p)
{
    const char *q = memchr(p, '\n', (size_t)(s->end - p));
    return q ? q : s->end;
}

static void skip_blanks(src *s)
{
    while (s->p < s->end && is_blank(*s->p))
        s->p++;
}

static void skip_space_and_comments(src *s)
{
    for (;;) {
        while (s->p < s->end && (is_blank(*s->p) || *s->p == '\n')) {
            if (*s->p == '\n')
                s->line++;
            s->p++;
        }
        if (s->p < s->end && *s->p == '#') {
            s->p = eol_of(s, s->p);
            continue;
        }
        return;
    }
}

static size_t trimmed_len(const char *p, const char *e)
{
    while (e > p && is_blank(e[-1]))
        e--;
    return (size_t)(e - p);
}

/* Length of an unquoted value starting at p: Fluentd ends it at a '#' that
 * follows a blank (a comment) or at the end of the line, minus trailing
 * blanks. A '#' glued to text ("a#b") is part of the value. */
static size_t unquoted_len(const char *p, const char *eol)
{
    const char *q = p;
    while (q < eol && !(*q == '#' && q > p && is_blank(q[-1])))
        q++;
    return trimmed_len(p, q);
}

/* After a quoted value, a JSON value or a tag only blanks and a comment may
 * follow. Moves the cursor to the end of the line either way. */
static int rest_is_blank(src *s, const char **junk, size_t *junk_len)
{
    const char *eol = eol_of(s, s->p), *p = s->p;
    while (p < eol && is_blank(*p))
        p++;
    s->p = eol;
    if (p == eol || *p == '#')
        return 1;
    *junk = p;
    *junk_len = unquoted_len(p, eol);
    return 0;
}

/* ---- parser state and tree building ------------------------------------- */

typedef struct parser {
    conf_errors *errs;
    conf_root *root;
    int broken; /* the tree cannot be trusted: return NULL */
    /* Files being read, outermost first, to detect include cycles. */
    struct {
        dev_t dev;
        ino_t ino;
    } active[INCLUDE_MAX_DEPTH + 1];
    int nactive;
} parser;

static const char *pool_name(parser *ps, const char *name)
{
    conf_root *r = ps->root;
    r->files = grow(r->files, r->nfiles, sizeof *r->files);
    r->files[r->nfiles] = xstrdup(name);
    return r->files[r->nfiles++];
}

static conf_node *node_add(conf_node *parent, const char *name, size_t namelen, char *arg, const char *file,
                           int line)
{
    conf_node *n = xcalloc(1, sizeof *n);
    n->name = xstrndup(name, namelen);
    n->arg = arg;
    n->file = file;
    n->line = line;
    n->parent = parent;
    parent->children = grow(parent->children, parent->nchildren, sizeof *parent->children);
    parent->children[parent->nchildren++] = n;
    return n;
}

/* Takes ownership of key and value. */
static void node_set_param(conf_node *n, char *key, char *value, const char *file, int line)
{
    for (size_t i = 0; i < n->nparams; i++) {
        conf_param *p = &n->params[i];
        if (strcmp(p->key, key) == 0) {
            /* Fluentd keeps parameters in a hash: the last value wins, and the
             * consumers should see one entry, not two. */
            free(key);
            free(p->value);
            p->value = value;
            p->file = file;
            p->line = line;
            p->used = 0;
            return;
        }
    }
    n->params = grow(n->params, n->nparams, sizeof *n->params);
    n->params[n->nparams++] = (conf_param){.key = key, .value = value, .file = file, .line = line};
}

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
    p = skip_ws(p + 3, end);
    if (p < end && *p == '[') {
        p = skip_ws(p + 1, end);
        if (!(name = ruby_string(&p, end)))
            goto unsupported;
        p = skip_ws(p, end);
        if (p >= end || *p++ != ']')
            goto unsupported;
    } else if (p < end && *p == '.') {
        fetch = 1;
        p = skip_ws(p + 1, end);
        if (!has_prefix(p, end, "fetch"))
            goto unsupported;
        p = skip_ws(p + 5, end);
        if (p >= end || *p++ != '(')
            goto unsupported;
        p = skip_ws(p, end);
        if (!(name = ruby_string(&p, end)))
            goto unsupported;
        p = skip_ws(p, end);
        if (p < end && *p == ',') {
            p = skip_ws(p + 1, end);
            if (!(def = ruby_string(&p, end)))
                goto unsupported;
            p = skip_ws(p, end);
        }
        if (p >= end || *p++ != ')')
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
static void expand_code(src *s, sbuf *out, conf_errors *errs, int json)
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

/* ---- quoted strings ----------------------------------------------------- */

enum { SCAN_OK, SCAN_UNTERMINATED };

/* s->p is on the opening quote. Both kinds may span lines (Fluentd v1); a
 * newline inside is kept, and in double quotes a backslash-newline pair is
 * dropped. Single quotes follow Ruby: only \' and \\ are escapes. */
static int scan_quoted(src *s, sbuf *out, conf_errors *errs)
{
    char q = *s->p++;

    while (s->p < s->end) {
        char c = *s->p;
        if (c == q) {
            s->p++;
            return SCAN_OK;
        }
        if (c == '\n') {
            s->line++;
            sb_putc(out, c);
            s->p++;
        } else if (c == '\\' && s->p + 1 < s->end) {
            char e = s->p[1];
            s->p += 2;
            if (q == '\'') {
                if (e != '\'' && e != '\\')
                    sb_putc(out, '\\');
                if (e == '\n')
                    s->line++;
                sb_putc(out, e);
                continue;
            }
            switch (e) {
            case '\n': s->line++; break;
            case 'n': sb_putc(out, '\n'); break;
            case 't': sb_putc(out, '\t'); break;
            case 'r': sb_putc(out, '\r'); break;
            case 'f': sb_putc(out, '\f'); break;
            case 'b': sb_putc(out, '\b'); break;
            default:
                /* Fluentd refuses \d, \w, \0...: silently turning a regexp's
                 * "\d" into "d" would be worse than an error. Punctuation
                 * escapes stand for themselves. */
                if (isalnum((unsigned char)e))
                    conf_errors_add(errs, s->name, s->line,
                                    "unknown escape '\\%c' in double-quoted string (write '\\\\' for a backslash)",
                                    e);
                else
                    sb_putc(out, e);
            }
        } else if (q == '"' && c == '#' && s->p[1] == '{') {
            expand_code(s, out, errs, 0);
        } else {
            sb_putc(out, c);
            s->p++;
        }
    }
    return SCAN_UNTERMINATED;
}

static int parse_quoted_value(parser *ps, src *s, char **out)
{
    const int line = s->line;
    const char *first_eol = eol_of(s, s->p);
    sbuf b = {0};
    conf_errors sub = {0};
    const char *junk = NULL;
    size_t junk_len = 0;
    int st, blank, bad_inside, rc = -1;

    st = scan_quoted(s, &b, &sub);
    blank = st == SCAN_OK && rest_is_blank(s, &junk, &junk_len);
    if (st != SCAN_OK || (!blank && s->line != line)) {
        /* Never closed, or closed lines later with text after the quote: that
         * is a missing quote on the first line. Report it there and resume on
         * the next line, so the lines swallowed by the string are parsed. */
        conf_errors_add(ps->errs, s->name, line, "unterminated quoted string");
        s->p = first_eol;
        s->line = line;
        conf_errors_free(&sub);
        goto out;
    }
    bad_inside = sub.n > 0;
    errors_move(ps->errs, &sub);
    if (!blank)
        conf_errors_add(ps->errs, s->name, s->line, "unexpected text after quoted string: '%.*s'",
                        SNIP(junk_len), junk);
    if (!bad_inside) {
        *out = sb_take(&b);
        rc = 0;
    }
out:
    sb_free(&b);
    return rc;
}

/* ---- JSON values -------------------------------------------------------- */

typedef struct jscan {
    const char *p;
    sbuf *out;
} jscan;

static void j_ws(jscan *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

static int j_string(jscan *j)
{
    const char *start = j->p++;
    for (;;) {
        unsigned char c = (unsigned char)*j->p;
        if (c == '"')
            break;
        if (c < 0x20) /* raw control character, or the end of the text */
            return -1;
        if (c == '\\') {
            char e = j->p[1];
            if (e == 'u') {
                for (int i = 2; i < 6; i++)
                    if (!isxdigit((unsigned char)j->p[i]))
                        return -1;
                j->p += 6;
                continue;
            }
            if (e == '\0' || !strchr("\"\\/bfnrt", e))
                return -1;
            j->p += 2;
            continue;
        }
        j->p++;
    }
    j->p++;
    sb_putn(j->out, start, (size_t)(j->p - start));
    return 0;
}

static int j_digits(const char **pp)
{
    const char *p = *pp;
    while (isdigit((unsigned char)*p))
        p++;
    if (p == *pp)
        return -1;
    *pp = p;
    return 0;
}

static int j_number(jscan *j)
{
    const char *p = j->p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (j_digits(&p) < 0)
        return -1;
    if (*p == '.') {
        p++;
        if (j_digits(&p) < 0)
            return -1;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (j_digits(&p) < 0)
            return -1;
    }
    sb_putn(j->out, j->p, (size_t)(p - j->p));
    j->p = p;
    return 0;
}

/* Validates one JSON value and appends it without insignificant blanks. */
static int j_value(jscan *j, int depth)
{
    static const char *const literals[] = {"true", "false", "null"};
    char c;

    j_ws(j);
    c = *j->p;
    if (c == '[' || c == '{') {
        char close = c == '[' ? ']' : '}';
        if (depth >= JSON_MAX_DEPTH)
            return -1;
        sb_putc(j->out, c);
        j->p++;
        j_ws(j);
        if (*j->p == close) {
            sb_putc(j->out, close);
            j->p++;
            return 0;
        }
        for (;;) {
            if (c == '{') {
                j_ws(j);
                if (*j->p != '"' || j_string(j) < 0)
                    return -1;
                j_ws(j);
                if (*j->p != ':')
                    return -1;
                sb_putc(j->out, ':');
                j->p++;
            }
            if (j_value(j, depth + 1) < 0)
                return -1;
            j_ws(j);
            if (*j->p == ',') {
                sb_putc(j->out, ',');
                j->p++;
            } else if (*j->p == close) {
                sb_putc(j->out, close);
                j->p++;
                return 0;
            } else {
                return -1;
            }
        }
    }
    if (c == '"')
        return j_string(j);
    if (c == '-' || isdigit((unsigned char)c))
        return j_number(j);
    for (size_t i = 0; i < sizeof literals / sizeof literals[0]; i++) {
        size_t n = strlen(literals[i]);
        if (strncmp(j->p, literals[i], n) == 0) {
            sb_putn(j->out, j->p, n);
            j->p += n;
            return 0;
        }
    }
    return -1;
}

static int json_minify(const char *in, sbuf *out)
{
    jscan j = {in, out};
    if (j_value(&j, 0) < 0)
        return -1;
    j_ws(&j);
    return *j.p ? -1 : 0;
}

/* s->p is on '[' or '{'. Like Fluentd, the value runs over as many lines as
 * needed to close it; '#' outside a JSON string starts a comment. The stored
 * value is the validated JSON without insignificant blanks. */
static int parse_json_value(parser *ps, src *s, const char *key, char **out)
{
    const int line = s->line;
    const char *first_eol = eol_of(s, s->p);
    const char *kind = *s->p == '[' ? "array" : "hash";
    sbuf raw = {0}, min = {0};
    conf_errors sub = {0};
    const char *junk = NULL;
    size_t junk_len = 0;
    int depth = 0, in_str = 0, blank, rc = -1;
    enum { J_OPEN, J_DONE, J_BROKEN_STRING, J_TAG } st = J_OPEN;

    while (st == J_OPEN && s->p < s->end) {
        char c = *s->p;
        if (in_str) {
            if (c == '\n') {
                st = J_BROKEN_STRING;
                break;
            }
            if (c == '\\' && s->p + 1 < s->end && s->p[1] != '\n') {
                sb_putn(&raw, s->p, 2);
                s->p += 2;
                continue;
            }
            if (c == '#' && s->p[1] == '{') {
                expand_code(s, &raw, &sub, 1);
                continue;
            }
            if (c == '"')
                in_str = 0;
        } else if (c == '\n') {
            s->line++;
            c = ' ';
        } else if (c == '#') {
            s->p = eol_of(s, s->p);
            continue;
        } else if (c == '<') {
            /* Never valid JSON: most likely the next section header, after
             * a value whose closing bracket is missing. */
            st = J_TAG;
            break;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            depth++;
        } else if ((c == ']' || c == '}') && --depth == 0) {
            st = J_DONE;
        }
        sb_putc(&raw, c);
        s->p++;
    }

    switch (st) {
    case J_DONE:
        blank = rest_is_blank(s, &junk, &junk_len);
        if (json_minify(raw.d, &min) < 0) {
            conf_errors_add(ps->errs, s->name, line,
                            "invalid JSON %s in value of '%s' (quote the value if it is not meant as JSON)", kind,
                            key);
            break;
        }
        if (!blank)
            conf_errors_add(ps->errs, s->name, s->line, "unexpected text after JSON %s: '%.*s'", kind,
                            SNIP(junk_len), junk);
        if (sub.n) {
            errors_move(ps->errs, &sub);
            break;
        }
        *out = sb_take(&min);
        rc = 0;
        break;
    case J_BROKEN_STRING:
        /* JSON strings cannot hold a newline. On the first line that is the
         * error; further down, the value itself is what never closed. */
        if (s->line == line) {
            conf_errors_add(ps->errs, s->name, line, "unterminated string in JSON %s in value of '%s'", kind, key);
            break;
        }
        /* fall through */
    case J_TAG:
    case J_OPEN:
        conf_errors_add(ps->errs, s->name, line,
                        "unterminated JSON %s in value of '%s' (quote the value if it is not meant as JSON)", kind,
                        key);
        if (st == J_TAG && s->line > line) {
            /* Resume on the line holding the '<' so that section is parsed. */
            while (*s->p != '\n')
                s->p--;
            s->line--;
        } else {
            s->p = first_eol;
            s->line = line;
        }
        break;
    }
    conf_errors_free(&sub);
    sb_free(&raw);
    sb_free(&min);
    return rc;
}

/* ---- statements --------------------------------------------------------- */

/* The cursor is on the first character of the value (blanks skipped). */
static int parse_value(parser *ps, src *s, const char *key, int allow_json, char **out)
{
    const char *eol = eol_of(s, s->p);
    char c = s->p < eol ? *s->p : '\n';

    if (c == '\n' || c == '#') { /* "key" alone, or "key  # comment" */
        s->p = eol;
        *out = xstrdup("");
        return 0;
    }
    if (c == '"' || c == '\'')
        return parse_quoted_value(ps, s, out);
    if (allow_json && (c == '[' || c == '{'))
        return parse_json_value(ps, s, key, out);
    *out = xstrndup(s->p, unquoted_len(s->p, eol));
    s->p = eol;
    return 0;
}

static int read_text(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    sbuf b = {0};
    char chunk[8192];
    size_t n;
    int err = 0;

    if (!f)
        return errno;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        sb_putn(&b, chunk, n);
    if (ferror(f))
        err = errno ? errno : EIO;
    fclose(f);
    if (err) {
        sb_free(&b);
        return err;
    }
    *len = b.n;
    *text = sb_take(&b);
    return 0;
}

static char *resolve_relative(const char *from, const char *path)
{
    const char *slash = strrchr(from, '/');
    sbuf b = {0};

    if (path[0] == '/' || !slash)
        return xstrdup(path);
    sb_putn(&b, from, (size_t)(slash - from + 1));
    sb_puts(&b, path);
    return sb_take(&b);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void parse_buffer(parser *ps, const char *name, char *text, size_t len, conf_node *base, int depth);

static void include_file(parser *ps, const char *path, conf_node *cur, int depth, const char *from, int line)
{
    struct stat st;
    char *text = NULL;
    size_t len = 0;
    int err;

    if (depth > INCLUDE_MAX_DEPTH) {
        conf_errors_add(ps->errs, from, line, "@include nested more than %d levels deep: '%s'", INCLUDE_MAX_DEPTH,
                        path);
        return;
    }
    if (stat(path, &st) < 0) {
        conf_errors_add(ps->errs, from, line, "cannot read included file '%s': %s", path, strerror(errno));
        return;
    }
    /* A FIFO or /dev/zero would block or never end. */
    if (!S_ISREG(st.st_mode)) {
        conf_errors_add(ps->errs, from, line, "cannot include '%s': not a regular file", path);
        return;
    }
    for (int i = 0; i < ps->nactive; i++) {
        if (ps->active[i].dev == st.st_dev && ps->active[i].ino == st.st_ino) {
            conf_errors_add(ps->errs, from, line, "@include cycle: '%s' is already being read", path);
            return;
        }
    }
    err = read_text(path, &text, &len);
    if (err) {
        conf_errors_add(ps->errs, from, line, "cannot read included file '%s': %s", path, strerror(err));
        return;
    }
    ps->active[ps->nactive].dev = st.st_dev;
    ps->active[ps->nactive].ino = st.st_ino;
    ps->nactive++;
    parse_buffer(ps, pool_name(ps, path), text, len, cur, depth);
    ps->nactive--;
    free(text);
}

/* "@include PATH": PATH is relative to the including file and may be a glob;
 * its statements land in `cur`, where the @include stands. */
static void include(parser *ps, const src *s, const char *pattern, conf_node *cur, int depth, int line)
{
    glob_t g = {0};
    char *path;
    int r;

    if (!*pattern) {
        conf_errors_add(ps->errs, s->name, line, "@include without a path");
        return;
    }
    if (strstr(pattern, "://")) {
        conf_errors_add(ps->errs, s->name, line, "cannot include '%s': only local files can be included", pattern);
        return;
    }
    path = resolve_relative(s->name, pattern);
    if (!strpbrk(path, "*?[{")) {
        /* Unlike Fluentd, a plain path that does not exist is an error: a
         * typo should not silently drop part of the configuration. */
        include_file(ps, path, cur, depth + 1, s->name, line);
    } else {
        r = glob(path, GLOB_BRACE, NULL, &g);
        if (r == 0) {
            /* Ruby sorts the whole list; GLOB_BRACE sorts per alternative. */
            qsort(g.gl_pathv, g.gl_pathc, sizeof *g.gl_pathv, cmp_str);
            for (size_t i = 0; i < g.gl_pathc; i++)
                include_file(ps, g.gl_pathv[i], cur, depth + 1, s->name, line);
        } else if (r != GLOB_NOMATCH) {
            conf_errors_add(ps->errs, s->name, line, "cannot expand @include pattern '%s'", path);
        }
        globfree(&g);
    }
    free(path);
}

static void parse_param(parser *ps, src *s, conf_node *cur, int depth)
{
    const int line = s->line;
    const char *k = s->p;
    char *key, *value = NULL;
    int is_include;

    while (s->p < s->end && *s->p != '\n' && !is_blank(*s->p))
        s->p++;
    key = xstrndup(k, (size_t)(s->p - k));
    is_include = strcmp(key, "@include") == 0;
    skip_blanks(s);
    /* "@include {a,b}.conf" is a brace glob, not a JSON hash. */
    if (parse_value(ps, s, key, !is_include, &value) < 0) {
        free(key);
        return;
    }
    if (is_include) {
        include(ps, s, value, cur, depth, line);
        free(key);
        free(value);
        return;
    }
    node_set_param(cur, key, value, s->name, line);
}

/* "<name arg>": returns the new section, or `cur` if the header is beyond
 * repair. A header with a valid name still opens its section even when it is
 * otherwise malformed, so its closing tag does not cascade into more errors. */
static conf_node *parse_open(parser *ps, src *s, conf_node *cur)
{
    const int line = s->line;
    const char *start = s->p, *eol = eol_of(s, start);
    const char *name = start + 1, *q = name, *junk = NULL;
    size_t namelen, junk_len = 0;
    char *arg = NULL;
    int ok = 1;

    while (q < eol && is_name_char(*q))
        q++;
    namelen = (size_t)(q - name);
    if (namelen == 0 || (q < eol && *q != '>' && !is_blank(*q))) {
        size_t n = trimmed_len(start, eol);
        conf_errors_add(ps->errs, s->name, line, "invalid section header '%.*s'", SNIP(n), start);
        s->p = eol;
        return cur;
    }
    s->p = q;
    skip_blanks(s);
    if (s->p < eol && (*s->p == '"' || *s->p == '\'')) {
        /* Quoted arg, e.g. <match "#{ENV['TAG']}.**"> */
        sbuf b = {0};
        conf_errors sub = {0};
        if (scan_quoted(s, &b, &sub) != SCAN_OK || s->line != line) {
            conf_errors_add(ps->errs, s->name, line, "unterminated quoted string");
            conf_errors_free(&sub);
            s->p = eol;
            s->line = line;
            ok = 0;
        } else {
            if (sub.n == 0)
                arg = sb_take(&b);
            errors_move(ps->errs, &sub);
            skip_blanks(s);
            if (s->p < eol && *s->p == '>') {
                s->p++;
            } else {
                size_t n = trimmed_len(start, eol);
                conf_errors_add(ps->errs, s->name, line, "invalid section header '%.*s'", SNIP(n), start);
                s->p = eol;
                ok = 0;
            }
        }
        sb_free(&b);
    } else {
        const char *gt = s->p;
        size_t alen;
        while (gt < eol && *gt != '>')
            gt++;
        alen = trimmed_len(s->p, gt);
        if (alen)
            arg = xstrndup(s->p, alen);
        if (gt < eol) {
            s->p = gt + 1;
        } else {
            size_t n = trimmed_len(start, eol);
            conf_errors_add(ps->errs, s->name, line, "invalid section header '%.*s'", SNIP(n), start);
            s->p = eol;
            ok = 0;
        }
    }
    if (ok && !rest_is_blank(s, &junk, &junk_len))
        conf_errors_add(ps->errs, s->name, line, "unexpected text after section header: '%.*s'", SNIP(junk_len),
                        junk);
    return node_add(cur, name, namelen, arg, s->name, line);
}

/* "</name>": returns the section that is current afterwards. `base` is where
 * this file started: a file cannot close sections its includer opened. */
static conf_node *parse_close(parser *ps, src *s, conf_node *cur, conf_node *base)
{
    const int line = s->line;
    const char *start = s->p, *eol = eol_of(s, start);
    const char *q = start + 2, *name, *junk = NULL;
    size_t namelen, junk_len = 0;

    while (q < eol && is_blank(*q))
        q++;
    name = q;
    while (q < eol && is_name_char(*q))
        q++;
    namelen = (size_t)(q - name);
    while (q < eol && is_blank(*q))
        q++;
    s->p = eol;
    if (namelen == 0 || q >= eol || *q != '>') {
        size_t n = trimmed_len(start, eol);
        conf_errors_add(ps->errs, s->name, line, "invalid closing tag '%.*s'", SNIP(n), start);
        if (namelen == 0)
            return cur;
    } else {
        s->p = q + 1;
        if (!rest_is_blank(s, &junk, &junk_len))
            conf_errors_add(ps->errs, s->name, line, "unexpected text after closing tag: '%.*s'", SNIP(junk_len),
                            junk);
    }
    if (cur == base) {
        conf_errors_add(ps->errs, s->name, line, "'</%.*s>' without an open section", SNIP(namelen), name);
        return cur;
    }
    if (strlen(cur->name) == namelen && memcmp(cur->name, name, namelen) == 0)
        return cur->parent;
    conf_errors_add(ps->errs, s->name, line, "expected '</%s>' but found '</%.*s>'", cur->name, SNIP(namelen),
                    name);
    /* If it closes an outer section, the inner closing tags were forgotten:
     * close everything up to it. Otherwise it is a misspelled '</cur>'. */
    for (conf_node *a = cur->parent; a != base; a = a->parent)
        if (strlen(a->name) == namelen && memcmp(a->name, name, namelen) == 0)
            return a->parent;
    return cur->parent;
}

static void report_unclosed(parser *ps, conf_node *cur, conf_node *base)
{
    size_t n = 0, i;
    conf_node **open;

    for (conf_node *c = cur; c != base; c = c->parent)
        n++;
    if (n == 0)
        return;
    /* Report in file order, outermost first. */
    open = xcalloc(n, sizeof *open);
    i = n;
    for (conf_node *c = cur; c != base; c = c->parent)
        open[--i] = c;
    for (i = 0; i < n; i++) {
        const conf_node *c = open[i];
        conf_errors_add(ps->errs, c->file, c->line, "unclosed section <%s%s%s>: expected '</%s>' before end of file",
                        c->name, c->arg ? " " : "", c->arg ? c->arg : "", c->name);
    }
    free(open);
    ps->broken = 1;
}

/* Parses `text` (ours to modify) into `base`. */
static void parse_buffer(parser *ps, const char *name, char *text, size_t len, conf_node *base, int depth)
{
    const char *nul = memchr(text, '\0', len);
    conf_node *cur = base;
    size_t r, w = 0;
    src s;

    if (nul) {
        int line = 1;
        for (const char *p = text; p < nul; p++)
            line += *p == '\n';
        conf_errors_add(ps->errs, name, line, "NUL byte in configuration file (not a text file?)");
        return;
    }
    for (r = 0; r < len; r++)
        if (!(text[r] == '\r' && r + 1 < len && text[r + 1] == '\n'))
            text[w++] = text[r];
    text[w] = '\0';

    s = (src){.name = name, .p = text, .end = text + w, .line = 1};
    for (;;) {
        skip_space_and_comments(&s);
        if (s.p >= s.end)
            break;
        if (s.p[0] == '<' && s.p[1] == '/')
            cur = parse_close(ps, &s, cur, base);
        else if (s.p[0] == '<')
            cur = parse_open(ps, &s, cur);
        else
            parse_param(ps, &s, cur, depth);
    }
    report_unclosed(ps, cur, base);
}

/* ---- public API --------------------------------------------------------- */

static void parser_init(parser *ps, conf_errors *errs, const char *name)
{
    *ps = (parser){.errs = errs};
    ps->root = xcalloc(1, sizeof *ps->root);
    ps->root->node.name = xstrdup("ROOT");
    ps->root->node.file = pool_name(ps, name);
}

static conf_node *parser_finish(parser *ps)
{
    if (ps->broken) {
        conf_free(&ps->root->node);
        return NULL;
    }
    return &ps->root->node;
}

conf_node *conf_parse_file(const char *path, conf_errors *errs)
{
    parser ps;
    struct stat st;
    char *text = NULL;
    size_t len = 0;
    int err;

    parser_init(&ps, errs, path);
    err = read_text(path, &text, &len);
    if (err) {
        conf_errors_add(errs, ps.root->node.file, 0, "cannot read configuration file: %s", strerror(err));
        ps.broken = 1;
    } else {
        if (stat(path, &st) == 0) {
            ps.active[0].dev = st.st_dev;
            ps.active[0].ino = st.st_ino;
            ps.nactive = 1;
        }
        parse_buffer(&ps, ps.root->node.file, text, len, &ps.root->node, 0);
    }
    free(text);
    return parser_finish(&ps);
}

conf_node *conf_parse_string(const char *text, const char *name, conf_errors *errs)
{
    parser ps;
    char *copy = xstrdup(text ? text : "");

    parser_init(&ps, errs, name ? name : "(string)");
    parse_buffer(&ps, ps.root->node.file, copy, strlen(copy), &ps.root->node, 0);
    free(copy);
    return parser_finish(&ps);
}

void conf_free(conf_node *root)
{
    conf_node *n = root;

    /* Post-order walk through the parent pointers: no recursion, so any
     * nesting depth the parser accepted can be freed. */
    while (n) {
        conf_node *up;
        if (n->nchildren) {
            n = n->children[--n->nchildren];
            continue;
        }
        up = n == root ? NULL : n->parent;
        for (size_t i = 0; i < n->nparams; i++) {
            free(n->params[i].key);
            free(n->params[i].value);
        }
        free(n->params);
        free(n->children);
        free(n->name);
        free(n->arg);
        if (n == root) {
            conf_root *r = (conf_root *)root;
            for (size_t i = 0; i < r->nfiles; i++)
                free(r->files[i]);
            free(r->files);
        }
        free(n);
        n = up;
    }
}

conf_param *conf_get(const conf_node *n, const char *key)
{
    if (!n || !key)
        return NULL;
    for (size_t i = n->nparams; i-- > 0;) {
        if (strcmp(n->params[i].key, key) == 0) {
            n->params[i].used = 1;
            return &n->params[i];
        }
    }
    return NULL;
}

const char *conf_get_value(const conf_node *n, const char *key)
{
    const conf_param *p = conf_get(n, key);
    return p ? p->value : NULL;
}

/* ---- fingerprint (reload) ------------------------------------------------------ */

static int fp_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 256);
        while (nc < *len + n + 1)
            nc *= 2;
        char *b = realloc(*buf, nc);
        if (!b)
            return -1;
        *buf = b;
        *cap = nc;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    return 0;
}

/* Length-prefixed pieces, so no value can imitate structure. */
static int fp_str(char **buf, size_t *len, size_t *cap, const char *s)
{
    char pre[24];
    size_t n = s ? strlen(s) : 0;
    int pl = snprintf(pre, sizeof pre, s ? "%zu:" : "-:", n);
    return fp_add(buf, len, cap, pre, (size_t)pl) || (s && fp_add(buf, len, cap, s, n)) ? -1 : 0;
}

static int fp_node(char **buf, size_t *len, size_t *cap, const conf_node *n)
{
    if (fp_add(buf, len, cap, "<", 1) || fp_str(buf, len, cap, n->name) || fp_str(buf, len, cap, n->arg))
        return -1;
    for (size_t i = 0; i < n->nparams; i++)
        if (fp_str(buf, len, cap, n->params[i].key) || fp_str(buf, len, cap, n->params[i].value))
            return -1;
    for (size_t i = 0; i < n->nchildren; i++)
        if (fp_node(buf, len, cap, n->children[i]))
            return -1;
    return fp_add(buf, len, cap, ">", 1);
}

char *conf_fingerprint(const conf_node *n)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (fp_node(&buf, &len, &cap, n) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
