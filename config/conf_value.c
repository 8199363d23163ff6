/*
 * config/conf_value.c: a parameter's value, from the cursor to the end of
 * its last line: plain (to the end of the line or a comment), a quoted
 * string (Ruby's escapes, may span lines, "#{...}" expanded in double
 * quotes), or a JSON array/hash (over as many lines as it takes, validated
 * and stored without insignificant blanks).
 *
 * Errors found inside a value are staged first: if the value turns out to be
 * unterminated they are noise and get dropped, and the parse resumes on the
 * next line (conf_parse.c has the error recovery rules).
 */
#include "config/conf_int.h"

#include <ctype.h>
#include <string.h>

/* Ruby's JSON.parse default max_nesting; also bounds our recursion. */
#define JSON_MAX_DEPTH 100

/* ---- plain, quoted or JSON ------------------------------------------------ */

/* ---- quoted strings ----------------------------------------------------- */

/* s->p is on the opening quote. Both kinds may span lines (Fluentd v1); a
 * newline inside is kept, and in double quotes a backslash-newline pair is
 * dropped. Single quotes follow Ruby: only \' and \\ are escapes. */
int cfg_scan_quoted(src *s, sbuf *out, conf_errors *errs)
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
            cfg_expand_code(s, out, errs, 0);
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

    st = cfg_scan_quoted(s, &b, &sub);
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
                cfg_expand_code(s, &raw, &sub, 1);
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

/* The cursor is on the first character of the value (blanks skipped). */
int cfg_parse_value(parser *ps, src *s, const char *key, int allow_json, char **out)
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
