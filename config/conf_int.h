/*
 * config/conf_int.h: what the units of the configuration parser share; not
 * API (conf.h is). The units:
 *   conf_parse.c    statements: sections, closing tags, parameters; the
 *                   conf_parse_file / conf_parse_string entry points
 *   conf_value.c    parameter values: plain, quoted strings, JSON arrays/hashes
 *   conf_ruby.c     "#{...}" embedded Ruby: ENV lookups, Socket.gethostname
 *   conf_include.c  @include: paths, globs, cycles, reading files
 *   conf.c          the node tree: building, lookups, freeing, fingerprints,
 *                   the tree's warnings
 *   conf_compat.c   Fluentd v1's compatibility layer: v0.12 names converted
 *   conf_sbuf.c     the string builder (sbuf) the others use
 * conf_bind.c and conf_hash.c (typed binding) use only conf.h.
 *
 * Below: the parser's state, and small helpers every unit uses: allocation
 * that aborts on OOM, a string builder (conf_sbuf.c), the source cursor.
 * Out of memory aborts: a half-parsed configuration is of no use to anyone.
 */
#ifndef WEIR_CONF_INT_H
#define WEIR_CONF_INT_H

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "config/conf.h"

/* Fluentd has no limit, but an include chain that long is a mistake. */
#define INCLUDE_MAX_DEPTH 16
/* Quoted snippets of bad input are cut so one bad line cannot flood --dry-run. */
#define SNIP(len) ((int)((len) > 200 ? 200 : (len)))

/* ROOT is allocated as this, so the tree can own the file names that every
 * node and parameter points to. */
typedef struct conf_root {
    conf_node node; /* first member: conf_free() receives &node */
    char **files;
    size_t nfiles;
    conf_errors warns; /* conf_warn */
} conf_root;

/* ---- allocation and the string builder ----------------------------------- */

static inline void oom(void)
{
    fputs("weir: out of memory while reading the configuration\n", stderr);
    abort();
}

static inline void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        oom();
    return p;
}

static inline void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

static inline char *xstrndup(const char *s, size_t n)
{
    char *d = strndup(s, n);
    if (!d)
        oom();
    return d;
}

static inline char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* Arrays that only grow: the capacity is implied by the count (the next power
 * of two), so no separate field is needed in the public structs. */
static inline void *grow(void *arr, size_t n, size_t size)
{
    if (n == 0 || (n & (n - 1)) == 0)
        arr = xrealloc(arr, (n ? 2 * n : 1) * size);
    return arr;
}

typedef struct sbuf {
    char *d;
    size_t n, cap;
} sbuf;

/* A growable NUL-terminated string (conf_sbuf.c); {0} is empty. */
void sb_putn(sbuf *b, const char *s, size_t n);
void sb_putc(sbuf *b, char c);
void sb_puts(sbuf *b, const char *s);
/* The string (malloc'd, "" when empty); the builder is empty again. */
char *sb_take(sbuf *b);
void sb_free(sbuf *b);

/* Errors found inside a value are staged in a private list first: if the
 * value later turns out to be unterminated they are noise and get dropped. */
static inline void errors_move(conf_errors *dst, conf_errors *src)
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
    int unset; /* the value being read evaluated use_nil / use_default (conf_ruby.c) */
} src;

static inline int is_blank(char c)
{
    /* A lone '\r' (CRLF pairs are already folded) counts as a blank. */
    return c == ' ' || c == '\t' || c == '\r';
}

static inline int is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static inline const char *eol_of(const src *s, const char *p)
{
    const char *q = memchr(p, '\n', (size_t)(s->end - p));
    return q ? q : s->end;
}

static inline void skip_blanks(src *s)
{
    while (s->p < s->end && is_blank(*s->p))
        s->p++;
}

static inline void skip_space_and_comments(src *s)
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

static inline size_t trimmed_len(const char *p, const char *e)
{
    while (e > p && is_blank(e[-1]))
        e--;
    return (size_t)(e - p);
}

/* Length of an unquoted value starting at p: Fluentd ends it at a '#' that
 * follows a blank (a comment) or at the end of the line, minus trailing
 * blanks. A '#' glued to text ("a#b") is part of the value. */
static inline size_t unquoted_len(const char *p, const char *eol)
{
    const char *q = p;
    while (q < eol && !(*q == '#' && q > p && is_blank(q[-1])))
        q++;
    return trimmed_len(p, q);
}

/* After a quoted value, a JSON value or a tag only blanks and a comment may
 * follow. Moves the cursor to the end of the line either way. */
static inline int rest_is_blank(src *s, const char **junk, size_t *junk_len)
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

/* ---- parser state ------------------------------------------------------- */

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

enum { SCAN_OK, SCAN_UNTERMINATED };

/* ---- conf.c: the tree ---------------------------------------------------- */
/* Keep a copy of a file name in the tree; returns the copy nodes point to. */
const char *cfg_pool_name(parser *ps, const char *name);
/* A new child section of parent (takes ownership of arg). */
conf_node *cfg_node_add(conf_node *parent, const char *name, size_t namelen, char *arg, const char *file, int line);
/* Set a parameter (takes ownership of key and value); a repeated key replaces the earlier value. Returns it. */
conf_param *cfg_node_set_param(conf_node *n, char *key, char *value, const char *file, int line);
/* Remove parameter `key` (freed) if n has it. */
void cfg_node_del_param(conf_node *n, const char *key);
/* Free a node that has no children left (not a ROOT). */
void cfg_node_free_empty(conf_node *n);

/* ---- conf_parse.c: statements -------------------------------------------- */
/* Parse `text` (ours to modify, len bytes) of file `name` into the section `base`, at include depth `depth`. */
void cfg_parse_text(parser *ps, const char *name, char *text, size_t len, conf_node *base, int depth);

/* ---- conf_value.c: values ------------------------------------------------ */
/* The cursor is on the first character of the value (blanks skipped): 0 with *out malloc'd and the cursor at
 * the end of the value's last line, or -1 after adding errors (the cursor on a line to resume from). */
int cfg_parse_value(parser *ps, src *s, const char *key, int allow_json, char **out);
/* s->p on the opening quote: the unescaped (and expanded) string appended to out; SCAN_OK, or SCAN_UNTERMINATED
 * at the end of the text. Errors inside the string go to errs. */
int cfg_scan_quoted(src *s, sbuf *out, conf_errors *errs);

/* ---- conf_ruby.c: "#{...}" ------------------------------------------------ */
/* s->p on the '#' of "#{": the expansion appended to out (JSON-escaped when json), the cursor past the '}'. */
void cfg_expand_code(src *s, sbuf *out, conf_errors *errs, int json);

/* ---- conf_include.c: @include --------------------------------------------- */
/* "@include PATTERN" at line `line` of s: the statements of the files it names land in cur. */
void cfg_include(parser *ps, const src *s, const char *pattern, conf_node *cur, int depth, int line);
/* A whole file: 0 with *text malloc'd (NUL-terminated) and *len, or an errno value. */
int cfg_read_text(const char *path, char **text, size_t *len);

#endif
