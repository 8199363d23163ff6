/*
 * aggregator/parsers/msgpack.c: <parse> @type msgpack, Fluentd core's
 * parser_msgpack: the value holds msgpack bytes (a binary or string value
 * of the record); its first object, a map, is the record (time_key, types
 * and the rest as for any type; Fluentd's filter takes the first record
 * the parser yields). Anything else does not match. See parse.h.
 */
#include "lib/mp.h"
#include "aggregator/parse_impl.h"
#include "aggregator/record.h"

static int parse_msgpack_text(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    const uint8_t *p = s, *end = s + n;
    mp_obj m;
    if (mp_read(&p, end, &m) != MP_OK || m.type != MP_MAP)
        return PARSE_NOMATCH;
    rec_hdr h;
    if (rec_hdr_open(c->o, &h, 1, m.len))
        return PARSE_FAIL;
    c->body0 = c->o->len;
    for (uint32_t i = 0; i < m.len; i++) {
        const uint8_t *k = p, *ks;
        uint32_t kl;
        if (rec_read_str(&p, end, &ks, &kl) != 1)
            return PARSE_NOMATCH; /* a key that is not a string: not a record */
        const uint8_t *v = p;
        if (mp_skip(&p, end, 512))
            return PARSE_NOMATCH;
        size_t pair_off = c->o->len;
        if (wbuf_add(c->o, k, (size_t)(v - k)))
            return PARSE_FAIL;
        size_t kpay = c->o->len - kl, voff = c->o->len;
        if (wbuf_add(c->o, v, (size_t)(p - v)) || parse_pair_done(c, pair_off, kpay, kl, voff))
            return PARSE_FAIL;
    }
    return rec_hdr_close(c->o, &h, c->count) ? PARSE_FAIL : PARSE_OK;
}

const parser_plugin parser_msgpack_plugin = {.name = "msgpack", .type = PARSE_MSGPACK, .parse = parse_msgpack_text};
