/*
 * aggregator/parsers/logfmt.c: <parse> @type logfmt: key=value
 * key="quoted \"value\"" flag, on one line (Fluent Bit's logfmt parser):
 * a key without a value (flag, key=) is nil; escapes in quoted values are
 * decoded, \uXXXX as JSON does. See parse.h.
 */
#include <string.h>

#include "lib/json_mp.h"
#include "aggregator/parse_impl.h"
#include "aggregator/record.h"

static const uint8_t ident_byte[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1,
    [','] = 1, ['-'] = 1, ['.'] = 1, ['/'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, [':'] = 1, [';'] = 1, ['<'] = 1, ['>'] = 1, ['?'] = 1, ['@'] = 1,
};

/* Fluent Bit's ident_byte: every byte above ' ' except '=' and '"' */
static inline int is_ident(uint8_t c) { return c > '@' ? 1 : ident_byte[c]; }

static int logfmt_unescape(wbuf *o, const uint8_t *v, size_t vl)
{
    /* decoded length <= raw length */
    size_t hs = mpw_str_hdr_size(vl), h0 = o->len;
    if (rec_reserve(o, vl + hs))
        return -1;
    uint8_t *d = o->data + h0 + hs, *d0 = d;
    const uint8_t *p = v, *e = v + vl;
    while (p < e) {
        if (*p != '\\' || p + 1 >= e) {
            *d++ = *p++;
            continue;
        }
        p++;
        uint8_t ch = *p++;
        uint32_t cp;
        if (ch == 'u' && json_mp_u_escape(&p, e, &cp) == 0)
            d += json_mp_utf8_put(d, cp);
        else /* JSON's escapes; anything else (and a bad \u): the byte itself */
            *d++ = json_mp_unescape[ch] ? json_mp_unescape[ch] : ch;
    }
    mpw_str_finish(o, h0, hs, (size_t)(d - d0));
    return 0;
}

static int parse_logfmt_text(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    const uint8_t *p = s, *e = s + n;
    rec_hdr h;
    if (rec_hdr_open(c->o, &h, 1, 0))
        return PARSE_FAIL;
    c->body0 = c->o->len;
    uint32_t pairs = 0;
    while (p < e) {
        while (p < e && !is_ident(*p))
            p++;
        if (p >= e)
            break;
        const uint8_t *k = p;
        while (p < e && is_ident(*p))
            p++;
        size_t kl = (size_t)(p - k);
        const uint8_t *v = NULL;
        size_t vl = 0;
        int quoted = 0, escaped = 0;
        if (p < e && *p == '=') {
            p++;
            if (p < e && *p == '"') {
                p++;
                v = p;
                quoted = 1;
                while (p < e && *p != '"') {
                    if (*p == '\\') {
                        escaped = 1;
                        p++;
                        if (p >= e)
                            break;
                    }
                    p++;
                }
                vl = (size_t)((p > e ? e : p) - v);
                if (p < e)
                    p++; /* closing quote */
            } else {
                v = p;
                while (p < e && is_ident(*p))
                    p++;
                vl = (size_t)(p - v);
            }
        }
        size_t pair_off = c->o->len;
        if (mpw_str(c->o, k, kl))
            return PARSE_FAIL;
        size_t kpay = c->o->len - kl, voff = c->o->len;
        int rc;
        if (vl == 0 && !quoted)
            rc = mpw_nil(c->o); /* key, key= */
        else if (escaped)
            rc = logfmt_unescape(c->o, v, vl);
        else
            rc = mpw_str(c->o, v ? v : k, vl);
        if (rc || parse_pair_done(c, pair_off, kpay, kl, voff))
            return PARSE_FAIL;
        pairs++;
        /* one line: a line break right after a pair ends the record */
        if (p < e && (*p == '\r' || *p == '\n'))
            break;
    }
    if (!pairs) {
        c->o->len = h.off;
        return PARSE_NOMATCH;
    }
    return rec_hdr_close(c->o, &h, c->count) ? PARSE_FAIL : PARSE_OK;
}

const parser_plugin parser_logfmt_plugin = {.name = "logfmt", .type = PARSE_LOGFMT, .parse = parse_logfmt_text};
