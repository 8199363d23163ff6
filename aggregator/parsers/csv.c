/*
 * aggregator/parsers/csv.c: <parse> @type csv (Fluentd's parser_csv): the
 * values of one line under `keys`, in order (a key without a value is nil,
 * values without a key are left out; a key given twice keeps its first
 * place and takes the later value, a Ruby Hash).
 *
 *   parser_engine normal  Ruby's CSV.parse_line(text, col_sep: delimiter):
 *                         "quoted, with "" for a quote", an empty unquoted
 *                         value is nil, "" is an empty string; the line ends
 *                         at the first line break outside quotes (the row
 *                         separator, detected as Ruby does); malformed
 *                         quoting fails with Ruby's message
 *   parser_engine fast    Fluentd's parse_fast: the line chomped, split on the
 *                         delimiter, then a quote count per column decides
 *                         (never fails)
 * See parse.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/parse_impl.h"
#include "aggregator/record.h"

/* The values, decoded into v->data; field i is (off[i], len[i]), nil when
 * off[i] is SIZE_MAX. */
typedef struct csv_row {
    wbuf v;
    size_t *off, *len, n, cap;
} csv_row;

static int row_add(csv_row *r, size_t off, size_t len)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        size_t *o2 = realloc(r->off, cap * sizeof *o2);
        if (!o2)
            return -1;
        r->off = o2;
        size_t *l2 = realloc(r->len, cap * sizeof *l2);
        if (!l2)
            return -1;
        r->len = l2;
        r->cap = cap;
    }
    r->off[r->n] = off;
    r->len[r->n] = len;
    r->n++;
    return 0;
}

static int row_text(csv_row *r, const uint8_t *s, size_t n)
{
    size_t at = r->v.len;
    return rec_add(&r->v, s, n) || row_add(r, at, n);
}

static void row_free(csv_row *r)
{
    wbuf_free(&r->v);
    free(r->off);
    free(r->len);
}

/* Ruby's CSV row separator: the first "\r\n", "\n" or "\r" of the text, else "\n". */
static size_t row_sep(const uint8_t *s, size_t n, const char **sep)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n')
            return *sep = "\n", 1;
        if (s[i] == '\r')
            return (i + 1 < n && s[i + 1] == '\n') ? (*sep = "\r\n", 2) : (*sep = "\r", 1);
    }
    return *sep = "\n", 1;
}

static int at_str(const uint8_t *s, const uint8_t *e, const char *t, size_t tl)
{
    return tl && (size_t)(e - s) >= tl && !memcmp(s, t, tl);
}

/* CSV.parse_line: 0, 1 for a text without a row (Ruby's nil), or -1 with Ruby's message in err. */
static int csv_normal(const parser *p, csv_row *r, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    const char *rs, *d = p->delimiter;
    size_t rl = row_sep(s, n, &rs), dl = strlen(d);
    const uint8_t *q = s, *e = s + n;
    if (!n)
        return 1;
    for (;;) {
        if (q < e && *q == '"') { /* quoted */
            size_t at = r->v.len;
            q++;
            for (;;) {
                const uint8_t *b = q;
                while (q < e && *q != '"')
                    q++;
                if (rec_add(&r->v, b, (size_t)(q - b)))
                    return -1;
                if (q >= e) {
                    snprintf(err, errlen, "Unclosed quoted field in line 1.");
                    return -1;
                }
                if (q + 1 < e && q[1] == '"') {
                    if (wbuf_addc(&r->v, '"'))
                        return -1;
                    q += 2;
                    continue;
                }
                q++;
                break;
            }
            if (row_add(r, at, r->v.len - at))
                return -1;
            if (q < e && !at_str(q, e, d, dl) && !at_str(q, e, rs, rl)) {
                snprintf(err, errlen, "Any value after quoted field isn't allowed in line 1.");
                return -1;
            }
        } else { /* unquoted: up to the delimiter or the row's end */
            const uint8_t *b = q;
            while (q < e && !at_str(q, e, d, dl) && !at_str(q, e, rs, rl)) {
                if (*q == '"') {
                    snprintf(err, errlen, "Illegal quoting in line 1.");
                    return -1;
                }
                if (*q == '\r' || *q == '\n') { /* a line break that is not the row separator */
                    const char *nl = *q == '\n' ? "\\n" : q + 1 < e && q[1] == '\n' ? "\\r\\n" : "\\r";
                    if (q > b)
                        snprintf(err, errlen, "Unquoted fields do not allow new line <\"%s\"> in line 1.", nl);
                    else
                        snprintf(err, errlen, "New line must be <\"%s\"> not <\"%s\"> in line 1.",
                                 !strcmp(rs, "\r") ? "\\r" : !strcmp(rs, "\n") ? "\\n" : "\\r\\n", nl);
                    return -1;
                }
                q++;
            }
            if (q == b ? row_add(r, SIZE_MAX, 0) : row_text(r, b, (size_t)(q - b)))
                return -1;
        }
        if (q < e && at_str(q, e, d, dl)) {
            q += dl;
            continue;
        }
        break; /* the row's end: the rest is the next row */
    }
    if (r->n == 1 && r->off[0] == SIZE_MAX && (n == rl && at_str(s, e, rs, rl)))
        r->n = 0; /* a blank line: [] */
    return 0;
}

static size_t count_quotes(const uint8_t *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == '"';
    return k;
}

/* gsub('""', '"') */
static int unquote(csv_row *r, const uint8_t *s, size_t n)
{
    size_t at = r->v.len;
    for (size_t i = 0; i < n; i++) {
        if (wbuf_addc(&r->v, s[i]))
            return -1;
        if (s[i] == '"' && i + 1 < n && s[i + 1] == '"')
            i++;
    }
    return row_add(r, at, r->v.len - at);
}

/* Fluentd's parse_fast_internal. */
static int csv_fast(const parser *p, csv_row *r, const uint8_t *s, size_t n)
{
    if (n && s[n - 1] == '\n')
        n -= 1 + (n > 1 && s[n - 2] == '\r');
    else if (n && s[n - 1] == '\r')
        n--;
    if (!n)
        return 0;
    const char *d = p->delimiter;
    size_t dl = strlen(d);
    /* the columns of text.split(delimiter, -1), one at a time: [q, ce),
     * hit the delimiter after it (NULL: the last column) */
    const uint8_t *e = s + n, *q = s;
    for (;;) {
        const uint8_t *hit = dl ? memmem(q, (size_t)(e - q), d, dl) : NULL, *ce = hit ? hit : e;
        size_t cl = (size_t)(ce - q), nq = count_quotes(q, cl);
        int rc;
        if (nq == 0) {
            rc = cl ? row_text(r, q, cl) : row_add(r, SIZE_MAX, 0);
        } else if (nq == 1 && *q == '"') {
            /* joined with the next columns up to one that ends with a quote, then [1..-2] */
            while (hit) {
                const uint8_t *ns = hit + dl;
                hit = memmem(ns, (size_t)(e - ns), d, dl);
                ce = hit ? hit : e;
                if (ce > ns && ce[-1] == '"')
                    break;
            }
            size_t jl = (size_t)(ce - q);
            rc = row_text(r, q + 1, jl >= 2 ? jl - 2 : 0);
        } else if (nq >= 2 && cl >= 2 && *q == '"' && ce[-1] == '"') {
            rc = nq == 2 ? row_text(r, q + 1, cl - 2) : unquote(r, q + 1, cl - 2);
        } else {
            rc = nq >= 3 ? unquote(r, q, cl) : row_text(r, q, cl);
        }
        if (rc)
            return -1;
        if (!hit)
            return 0;
        q = hit + dl;
    }
}

static int parse_csv_text(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    const parser *p = c->p;
    csv_row r = {0};
    char why[128] = "";
    int rc = p->parser_engine ? csv_fast(p, &r, s, n) : csv_normal(p, &r, s, n, why, sizeof why);
    if (rc == 1) /* Hash[keys.zip(nil)] */
        snprintf(why, sizeof why, "wrong argument type NilClass (must respond to :each)");
    if (rc) {
        if (why[0] && err && errlen)
            snprintf(err, errlen, "parse failed %s", why);
        row_free(&r);
        return PARSE_FAIL;
    }
    pspans ps;
    pspans_init(&ps);
    size_t nk = 0;
    while (p->keys[nk])
        nk++;
    if (p->parser_engine)
        nk = nk < r.n ? nk : r.n; /* fast: only the columns there are */
    for (size_t i = 0; i < nk && !rc; i++) {
        const char *k = p->keys[i];
        const uint8_t *v = i < r.n && r.off[i] != SIZE_MAX ? (r.v.data ? r.v.data + r.off[i] : (const uint8_t *)"")
                                                          : NULL;
        rc = pspans_add(&ps, (const uint8_t *)k, strlen(k), v, v ? r.len[i] : 0);
    }
    rc = rc ? PARSE_FAIL : parse_put_hash(c, &ps);
    pspans_free(&ps);
    row_free(&r);
    return rc;
}

/* parser_engine / parser_type (csv's and syslog's): 0 or 1 for values a and b, -1 with the error */
int parse_engine_choice(parser *p, conf_node *n, const char *a, const char *b, conf_errors *errs)
{
    int v = 0;
    const char *names[2] = {"parser_engine", "parser_type"};
    const char *vals[2] = {p->engine, p->engine_alias};
    for (int i = 0; i < 2; i++) {
        if (!vals[i])
            continue;
        if (strcmp(vals[i], a) && strcmp(vals[i], b)) {
            conf_param *pp = conf_get(n, names[i]);
            conf_errors_add(errs, pp ? pp->file : n->file, pp ? pp->line : n->line,
                            "invalid value '%s' for parameter '%s'; expected one of: %s, %s", vals[i], names[i], a, b);
            return -1;
        }
        v |= !strcmp(vals[i], b);
    }
    return v;
}

static int csv_configure(parser *p, conf_node *n, conf_errors *errs)
{
    int fast = parse_engine_choice(p, n, "normal", "fast", errs);
    if (fast < 0)
        return -1;
    p->parser_engine = fast;
    if (!p->keys) {
        conf_errors_add(errs, n->file, n->line, "missing required parameter 'keys' in <%s> (@type csv)", n->name);
        return -1;
    }
    return !p->delimiter && !(p->delimiter = strdup(",")) ? -1 : 0;
}

static const conf_spec csv_spec[] = {
    {"keys", CONF_ARRAY, NULL, 0, offsetof(parser, keys), NULL,
     "required: the record keys of the values, in order (`a,b,c` or a JSON array)"},
    {"delimiter", CONF_STR, NULL, 0, offsetof(parser, delimiter), NULL, "between values, default `,`"},
    {"parser_engine", CONF_STR, NULL, 0, offsetof(parser, engine), NULL,
     "`normal` (default): Ruby's CSV.parse_line; `fast`: Fluentd's quicker split (quoted values holding the "
     "delimiter keep their doubled quotes)"},
    {"parser_type", CONF_STR, NULL, 0, offsetof(parser, engine_alias), NULL, "the old name of `parser_engine`"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const parser_plugin parser_csv_plugin = {
    .name = "csv", .type = PARSE_CSV, .spec = csv_spec, .parse = parse_csv_text, .configure = csv_configure};
