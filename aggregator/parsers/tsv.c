/*
 * aggregator/parsers/tsv.c: <parse> @type tsv (Fluentd's parser_tsv): the
 * line split on `delimiter` (default a tab) into at most as many values as
 * `keys` (Ruby's text.split(delimiter, keys.length): the last value keeps
 * the delimiters of the rest), then Hash[keys.zip(values)]: a key without a
 * value is nil; a key given twice keeps its first place and takes the later
 * value. See parse.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/parse_impl.h"
#include "aggregator/record.h"

static int parse_tsv_text(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    const parser *p = c->p;
    const char *d = p->delimiter;
    size_t dl = strlen(d), nk = 0;
    while (p->keys[nk])
        nk++;
    pspans ps;
    pspans_init(&ps);
    int rc = 0;
    size_t pos = n ? 0 : 1; /* "".split gives no value at all */
    for (size_t i = 0; i < nk && !rc; i++) {
        const char *k = p->keys[i];
        if (pos > n) { /* no value left: nil */
            rc = pspans_add(&ps, (const uint8_t *)k, strlen(k), NULL, 0);
            continue;
        }
        const uint8_t *hit = i + 1 < nk && dl ? memmem(s + pos, n - pos, d, dl) : NULL;
        size_t end = hit ? (size_t)(hit - s) : n;
        rc = pspans_add(&ps, (const uint8_t *)k, strlen(k), s + pos, end - pos);
        pos = hit ? end + dl : n + 1;
    }
    (void)err;
    (void)errlen;
    rc = rc ? PARSE_FAIL : parse_put_hash(c, &ps);
    pspans_free(&ps);
    return rc;
}

static int tsv_configure(parser *p, conf_node *n, conf_errors *errs)
{
    if (!p->keys) {
        conf_errors_add(errs, n->file, n->line, "missing required parameter 'keys' in <%s> (@type tsv)", n->name);
        return -1;
    }
    return !p->delimiter && !(p->delimiter = strdup("\t")) ? -1 : 0;
}

static const conf_spec tsv_spec[] = {
    {"keys", CONF_ARRAY, NULL, 0, offsetof(parser, keys), NULL,
     "required: the record keys of the values, in order (`a,b,c` or a JSON array)"},
    {"delimiter", CONF_STR, NULL, 0, offsetof(parser, delimiter), NULL, "between values, default a tab"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const parser_plugin parser_tsv_plugin = {
    .name = "tsv", .type = PARSE_TSV, .spec = tsv_spec, .parse = parse_tsv_text, .configure = tsv_configure};
