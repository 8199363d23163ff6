/*
 * aggregator/parsers/cri.c: <parse> @type cri: "TIME STREAM LOGTAG LOG"
 * (CRI container logs, one line) -> {time_key, "stream", "logtag",
 * message_key}; TIME (RFC 3339) is the event time, kept under time_key only
 * with keep_time_key. See parse.h.
 */
#include <string.h>

#include "aggregator/parse_impl.h"
#include "aggregator/record.h"

static int parse_cri_text(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    const uint8_t *e = s + n;
    const uint8_t *t_end = memchr(s, ' ', n);
    if (!t_end || t_end == s)
        return PARSE_NOMATCH;
    const uint8_t *st = t_end + 1, *st_end = memchr(st, ' ', (size_t)(e - st));
    if (!st_end || !((st_end - st == 6 && (!memcmp(st, "stdout", 6) || !memcmp(st, "stderr", 6)))))
        return PARSE_NOMATCH;
    const uint8_t *tg = st_end + 1, *tg_end = memchr(tg, ' ', (size_t)(e - tg));
    if (!tg_end)
        return PARSE_NOMATCH;
    const uint8_t *log = tg_end + 1, *log_end = memchr(log, '\n', (size_t)(e - log));
    if (!log_end)
        log_end = e;
    else if (log_end + 1 != e)
        return PARSE_NOMATCH; /* (?<log>.*)$ cannot span lines */
    /* the time first, so that a bad one fails like Fluentd's parse_time */
    const parser *p = c->p;
    rec_hdr h;
    if (rec_hdr_open(c->o, &h, 1, 4))
        return PARSE_FAIL;
    c->body0 = c->o->len;
    if (parse_put_pair(c, p->tkey, p->tkey_len, s, (size_t)(t_end - s)) ||
        parse_put_pair(c, "stream", 6, st, (size_t)(st_end - st)) || parse_put_pair(c, "logtag", 6, tg, (size_t)(tg_end - tg)) ||
        parse_put_pair(c, p->mkey, p->mkey_len, log, (size_t)(log_end - log)))
        return PARSE_FAIL;
    return rec_hdr_close(c->o, &h, c->count) ? PARSE_FAIL : PARSE_OK;
}

static const conf_spec cri_spec[] = {
    {"message_key", CONF_STR, NULL, 0, offsetof(parser, message_key), NULL,
     "key of the LOG part; default `log` (Fluent Bit's names; `message_key message` gives "
     "fluent-plugin-parser-cri's)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const parser_plugin parser_cri_plugin = {.name = "cri", .type = PARSE_CRI, .spec = cri_spec, .parse = parse_cri_text};
