/*
 * aggregator/parsers/none.c: <parse> @type none: the whole text as one
 * string, {message_key: text}. See parse.h.
 */
#include "aggregator/parse_impl.h"
#include "aggregator/record.h"

static int parse_none_text(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    const parser *p = c->p;
    rec_hdr h;
    int rc = PARSE_FAIL;
    if (rec_hdr_open(c->o, &h, 1, 1) == 0) {
        c->body0 = c->o->len;
        if (parse_put_pair(c, p->mkey, p->mkey_len, s, n) == 0 && rec_hdr_close(c->o, &h, c->count) == 0)
            rc = PARSE_OK;
    }
    return rc;
}

static const conf_spec none_spec[] = {
    {"message_key", CONF_STR, NULL, 0, offsetof(parser, message_key), NULL,
     "key of the text; default `message`"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const parser_plugin parser_none_plugin = {
    .name = "none", .type = PARSE_NONE, .spec = none_spec, .parse = parse_none_text};
