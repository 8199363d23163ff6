/*
 * config/conf_parse.c: the Fluentd v1 syntax parser behind conf_parse_file()
 * and conf_parse_string(); see conf.h for the data model, conf_int.h for the
 * other units (values, "#{...}", @include, the tree).
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
#include "config/conf_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- statements --------------------------------------------------------- */

static void parse_param(parser *ps, src *s, conf_node *cur, int depth)
{
    const int line = s->line;
    const char *k = s->p;
    char *key, *value = NULL;
    int is_include, bare;

    while (s->p < s->end && *s->p != '\n' && !is_blank(*s->p))
        s->p++;
    key = xstrndup(k, (size_t)(s->p - k));
    is_include = strcmp(key, "@include") == 0;
    skip_blanks(s);
    bare = s->p >= s->end || *s->p == '\n' || *s->p == '#';
    /* "@include {a,b}.conf" is a brace glob, not a JSON hash. */
    s->unset = 0;
    if (cfg_parse_value(ps, s, key, !is_include, &value) < 0) {
        s->unset = 0;
        free(key);
        return;
    }
    if (s->unset && !is_include) { /* "#{... || use_default}": as if the line were not there */
        s->unset = 0;
        free(key);
        free(value);
        return;
    }
    s->unset = 0;
    if (is_include) {
        cfg_include(ps, s, value, cur, depth, line);
        free(key);
        free(value);
        return;
    }
    cfg_node_set_param(cur, key, value, s->name, line)->bare = bare;
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
        if (cfg_scan_quoted(s, &b, &sub) != SCAN_OK || s->line != line) {
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
    return cfg_node_add(cur, name, namelen, arg, s->name, line);
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
void cfg_parse_text(parser *ps, const char *name, char *text, size_t len, conf_node *base, int depth)
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
    ps->root->node.file = cfg_pool_name(ps, name);
}

static conf_node *parser_finish(parser *ps)
{
    if (ps->broken) {
        conf_free(&ps->root->node);
        return NULL;
    }
    conf_compat_apply(&ps->root->node, ps->errs);
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
    err = cfg_read_text(path, &text, &len);
    if (err) {
        conf_errors_add(errs, ps.root->node.file, 0, "cannot read configuration file: %s", strerror(err));
        ps.broken = 1;
    } else {
        if (stat(path, &st) == 0) {
            ps.active[0].dev = st.st_dev;
            ps.active[0].ino = st.st_ino;
            ps.nactive = 1;
        }
        cfg_parse_text(&ps, ps.root->node.file, text, len, &ps.root->node, 0);
    }
    free(text);
    return parser_finish(&ps);
}

conf_node *conf_parse_string(const char *text, const char *name, conf_errors *errs)
{
    parser ps;
    char *copy = xstrdup(text ? text : "");

    parser_init(&ps, errs, name ? name : "(string)");
    cfg_parse_text(&ps, ps.root->node.file, copy, strlen(copy), &ps.root->node, 0);
    free(copy);
    return parser_finish(&ps);
}
