/*
 * aggregator/parsers/ltsv.c: <parse> @type ltsv (Fluentd's parser_ltsv):
 * text.split(delimiter) (or delimiter_pattern, a regexp), and each piece
 * that holds label_delimiter split at its first one into label and value;
 * other pieces are left out. A label seen again keeps its first place and
 * takes the later value (a Ruby Hash). A delimiter of one space splits as
 * Ruby's awk mode does (runs of blanks, leading ones skipped). The time key
 * is `time` by default. See parse.h.
 */
#include <ctype.h>
#include <string.h>

#include "lib/rx.h"
#include "aggregator/parse_impl.h"

/* One piece: a pair when it holds the label delimiter. */
static int ltsv_piece(const parser *p, pspans *ps, const uint8_t *s, size_t n)
{
    size_t ll = strlen(p->label_delimiter);
    const uint8_t *at = memmem(s, n, p->label_delimiter, ll);
    if (!at)
        return 0;
    return pspans_add(ps, s, (size_t)(at - s), at + ll, n - (size_t)(at - s) - ll);
}

static int parse_ltsv_text(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    const parser *p = c->p;
    pspans ps;
    pspans_init(&ps);
    int rc = 0;
    const uint8_t *e = s + n;
    if (p->delimiter_pattern) {
        size_t start = 0, from = 0;
        const PCRE2_SIZE *ov;
        while (!rc && from <= n && rx_exec_at(&p->expr, s, n, from, &ov) == 1) {
            if (ov[1] == ov[0]) { /* an empty match does not split */
                from = ov[0] + 1;
                continue;
            }
            rc = ltsv_piece(p, &ps, s + start, ov[0] - start);
            start = from = ov[1];
        }
        if (!rc)
            rc = ltsv_piece(p, &ps, s + start, n - start);
    } else if (!strcmp(p->delimiter, " ")) {
        const uint8_t *q = s;
        while (!rc && q < e) {
            while (q < e && isspace(*q))
                q++;
            const uint8_t *b = q;
            while (q < e && !isspace(*q))
                q++;
            if (q > b)
                rc = ltsv_piece(p, &ps, b, (size_t)(q - b));
        }
    } else {
        size_t dl = strlen(p->delimiter);
        const uint8_t *q = s, *hit;
        while (!rc && dl && (hit = memmem(q, (size_t)(e - q), p->delimiter, dl))) {
            rc = ltsv_piece(p, &ps, q, (size_t)(hit - q));
            q = hit + dl;
        }
        if (!rc)
            rc = ltsv_piece(p, &ps, q, (size_t)(e - q));
    }
    rc = rc ? PARSE_FAIL : parse_put_hash(c, &ps);
    pspans_free(&ps);
    return rc;
}

static int ltsv_configure(parser *p, conf_node *n, conf_errors *errs)
{
    if ((!p->delimiter && !(p->delimiter = strdup("\t"))) ||
        (!p->label_delimiter && !(p->label_delimiter = strdup(":"))))
        return -1;
    if (p->delimiter_pattern) {
        char err[512];
        if (rx_compile(&p->expr, p->delimiter_pattern, RX_SLASHES, err, sizeof err)) {
            conf_error_at(errs, n, "delimiter_pattern", "%s", err);
            return -1;
        }
    }
    return 0;
}

static const conf_spec ltsv_spec[] = {
    {"delimiter", CONF_STR, NULL, 0, offsetof(parser, delimiter), NULL,
     "between pairs, default a tab (one space: any run of blanks)"},
    {"delimiter_pattern", CONF_STR, NULL, 0, offsetof(parser, delimiter_pattern), NULL,
     "a regexp (`/re/` or a bare pattern) between pairs, instead of `delimiter`"},
    {"label_delimiter", CONF_STR, NULL, 0, offsetof(parser, label_delimiter), NULL,
     "between a label and its value (the first one in a pair), default `:`"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const parser_plugin parser_ltsv_plugin = {
    .name = "ltsv", .type = PARSE_LTSV, .spec = ltsv_spec, .parse = parse_ltsv_text, .configure = ltsv_configure};
