/*
 * aggregator/parsers/json.c: <parse> @type json: one JSON object -> one map,
 * converted by lib/json_mp.c (streaming, no intermediate tree, no
 * allocation per field); the time key and the conversions apply to the
 * top-level pairs as they are written. json_parser (oj, yajl, json) is
 * accepted and ignored. Anything but one object is "pattern not matched".
 * See parse.h.
 */
#include "lib/json_mp.h"
#include "aggregator/parse_impl.h"

/* The top-level object: like json_mp_value's objects, plus the time key and the conversions. */
static int j_top(json_mp_cursor *j, pctx *c)
{
    if (json_mp_reserve(j))
        return -1;
    json_mp_ws(j);
    if (j->p >= j->e || *j->p != '{')
        return -1;
    j->p++;
    size_t hoff = j->o->len++;
    c->body0 = j->o->len; /* keys are noted relative to the body: the header may still grow */
    const parser *p = c->p;
    json_mp_ws(j);
    if (j->p < j->e && *j->p == '}') {
        j->p++;
    } else {
        for (;;) {
            size_t pair_off = j->o->len, kpay, klen;
            if (json_mp_key(j, &kpay, &klen))
                return -1;
            size_t voff = j->o->len;
            if (json_mp_value(j, 1))
                return -1;
            if (!p->convert && (!p->tkey || klen != p->tkey_len)) {
                c->count++; /* the common case: nothing to look at */
                parse_note_key(c, kpay, klen);
            } else {
                if (parse_pair_done(c, pair_off, kpay, klen, voff) || json_mp_reserve(j))
                    return -1;
            }
            int more = json_mp_next(j, '}');
            if (more < 0)
                return -1;
            if (!more)
                break;
        }
    }
    json_mp_ws(j);
    if (j->p != j->e)
        return -1; /* trailing garbage */
    return json_mp_close(j, hoff, c->count, 1);
}

static int parse_json_text(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    json_mp_cursor j = {s, s + n, c->o};
    return j_top(&j, c) ? PARSE_NOMATCH : PARSE_OK;
}

static const conf_spec json_spec[] = {
    {"json_parser", CONF_STR, NULL, 0, offsetof(parser, json_parser), NULL,
     "`oj`, `yajl` or `json`: accepted and ignored (weir has one JSON converter)"},
    {"stream_buffer_size", CONF_INT, "8192", 0, offsetof(parser, stream_buffer_size), NULL,
     "accepted and ignored"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const parser_plugin parser_json_plugin = {
    .name = "json", .type = PARSE_JSON, .spec = json_spec, .parse = parse_json_text};
