/*
 * aggregator/parsers/apache2.c: Fluentd core's apache2 parser
 * (parser_apache2.rb): its access-log expression, then the plugin's own
 * record: host, user, method, path, code, size, referer, agent in that order,
 * every key present; "-" (and an unmatched group) is nil, code and size are
 * Ruby's to_i (a code of 0 is nil); the time from `time` with
 * "%d/%b/%Y:%H:%M:%S %z", kept last with keep_time_key. See parse.h.
 */
#include <string.h>

#include "lib/rx.h"
#include "aggregator/parse_impl.h"
#include "aggregator/record.h"

/* Ruby's String#to_i: blanks, a sign, digits (single underscores between them); *ok 0 when no digit */
static int64_t ruby_to_i(const uint8_t *s, size_t n, int *ok)
{
    size_t i = 0;
    while (i < n && (s[i] == ' ' || (s[i] >= '\t' && s[i] <= '\r')))
        i++;
    int neg = i < n && s[i] == '-';
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    int64_t v = 0;
    *ok = 0;
    for (; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            if (v < INT64_MAX / 10)
                v = v * 10 + (s[i] - '0');
            *ok = 1;
        } else if (!(s[i] == '_' && *ok && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9')) {
            break;
        }
    }
    return neg ? -v : v;
}

static int put_int(pctx *c, const char *k, int64_t v, int nil)
{
    size_t kl = strlen(k), pair_off = c->o->len;
    if (mpw_str(c->o, k, kl))
        return -1;
    size_t kpay = c->o->len - kl, voff = c->o->len;
    if (nil ? mpw_nil(c->o) : mpw_int(c->o, v))
        return -1;
    return parse_pair_done(c, pair_off, kpay, kl, voff);
}

static int parse_apache2_text(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    static const char *const keys[] = {"host", "user", "method", "path", "code", "size", "referer", "agent", "time"};
    enum { HOST, USER, METHOD, PATH, CODE, SIZE, REFERER, AGENT, TIME, NKEYS };
    const parser *p = c->p;
    const PCRE2_SIZE *ov;
    int rc = parse_rx_exec(p, s, n, &ov, err, errlen);
    if (rc != PARSE_OK)
        return rc;
    /* the spans first: conversions may run other regexps on this thread */
    const uint8_t *v[NKEYS];
    size_t vl[NKEYS];
    for (int k = 0; k < NKEYS; k++) {
        v[k] = NULL;
        vl[k] = 0;
        for (size_t i = 0; i < p->nnames; i++) {
            uint32_t g = p->names[i].group;
            if (p->names[i].len == strlen(keys[k]) && !memcmp(p->names[i].name, keys[k], p->names[i].len) &&
                ov[2 * g] != PCRE2_UNSET) {
                v[k] = s + ov[2 * g];
                vl[k] = ov[2 * g + 1] - ov[2 * g];
            }
        }
    }
    rec_hdr h;
    if (rec_hdr_open(c->o, &h, 1, NKEYS))
        return PARSE_FAIL;
    c->body0 = c->o->len;
    for (int k = 0; k < NKEYS; k++) {
        int dash = v[k] && vl[k] == 1 && v[k][0] == '-';
        int r;
        if (k == CODE || k == SIZE) {
            int ok = 0;
            int64_t x = v[k] ? ruby_to_i(v[k], vl[k], &ok) : 0;
            r = put_int(c, keys[k], x, k == CODE ? x == 0 : dash || !v[k]);
        } else {
            int nil = !v[k] || (dash && k != METHOD && k != PATH && k != TIME);
            r = parse_put_pair(c, keys[k], strlen(keys[k]), nil ? NULL : v[k], nil ? 0 : vl[k]);
        }
        if (r)
            return PARSE_FAIL;
    }
    return rec_hdr_close(c->o, &h, c->count) ? PARSE_FAIL : PARSE_OK;
}

static const conf_spec apache2_spec[] = {
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const parser_plugin parser_apache2_plugin = {
    .name = "apache2",
    .type = PARSE_REGEXP,
    .spec = apache2_spec,
    .parse = parse_apache2_text,
    .default_expression =
        "/^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] \"(?<method>\\S+)(?: +(?<path>(?:[^\\\"]|\\\\\")*?)"
        "(?: +\\S*)?)?\" (?<code>[^ ]*) (?<size>[^ ]*)(?: \"(?<referer>(?:[^\\\"]|\\\\\")*)\" \"(?<agent>(?:[^\\\"]|"
        "\\\\\")*)\")?$/",
    .default_time_format = "%d/%b/%Y:%H:%M:%S %z",
};
