/*
 * aggregator/parsers/syslog.c: <parse> @type syslog, Fluentd core's
 * parser_syslog (its regexp engine) on the syslog input's message parser
 * (aggregator/inputs/syslog.h): RFC 3164, RFC 5424 or auto; with_priority
 * (default false here, as the parser's; in_syslog sets it) puts `pri` first as
 * an integer; then `time` with keep_time_key, and the fields the message has
 * (host, ident, pid, message; 5424 also msgid, extradata). The event time
 * is the message's (time_format, rfc5424_time_format). See parse.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/inputs/syslog.h"
#include "aggregator/parse_impl.h"
#include "aggregator/record.h"

static const conf_spec sl_spec[] = {
    {"message_format", CONF_ENUM, "rfc3164", 0, offsetof(parser, message_format), "rfc3164|rfc5424|auto",
     "`rfc3164`, `rfc5424`, or `auto` (RFC 5424 when `<PRI>` is followed by a version)"},
    {"with_priority", CONF_BOOL, "false", 0, offsetof(parser, with_priority), NULL,
     "messages start with `<PRI>`, written as the integer `pri`"},
    {"rfc5424_time_format", CONF_STR, "%Y-%m-%dT%H:%M:%S.%L%z", 0, offsetof(parser, rfc5424_time_format), NULL,
     "the RFC 5424 time (without fractional seconds also accepted); the RFC 3164 time is `time_format` (default "
     "`%b %d %H:%M:%S`, this year, local time)"},
    {"parser_engine", CONF_STR, NULL, 0, offsetof(parser, engine), NULL,
     "`regexp` (default) or `string`: accepted; weir parses as Fluentd's `regexp` engine does"},
    {"parser_type", CONF_STR, NULL, 0, offsetof(parser, engine_alias), NULL, "the old name of `parser_engine`"},
    {"support_colonless_ident", CONF_BOOL, "true", 0, offsetof(parser, support_colonless_ident), NULL,
     "accepted (the `string` engine's option)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int sl_configure(parser *p, conf_node *n, conf_errors *errs)
{
    int bad = parse_engine_choice(p, n, "regexp", "string", errs) < 0 ? -1 : 0;
    syslog_parser *sp = calloc(1, sizeof *sp);
    if (!sp)
        return -1;
    p->impl = sp;
    char err[256];
    if (!bad && syslog_parser_init(sp, p->message_format, p->with_priority, p->time_format, p->rfc5424_time_format,
                                   p->keep_time_key, err, sizeof err)) {
        conf_errors_add(errs, n->file, n->line, "<parse> @type syslog: %s", err);
        bad = -1;
    }
    /* the time is the message's, not a pair's: `time` is written as text with keep_time_key */
    p->tkey = NULL;
    p->tkey_len = 0;
    return bad;
}

static void sl_free(parser *p)
{
    syslog_parser *sp = p->impl;
    if (!sp)
        return;
    syslog_parser_free(sp);
    free(sp);
    p->impl = NULL;
}

static int parse_syslog_text(pctx *c, const uint8_t *txt, size_t n, char *err, size_t errlen)
{
    static const char *const names[SL_NFIELDS] = {"time", "host", "ident", "pid", "msgid", "extradata", "message"};
    const syslog_parser *sp = c->p->impl;
    syslog_fields f;
    int rc = syslog_parse(sp, (const char *)txt, n, &f);
    if (rc == -1)
        return PARSE_NOMATCH;
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "invalid time format: the syslog header's time does not parse");
        return PARSE_FAIL;
    }
    rec_hdr h;
    if (rec_hdr_open(c->o, &h, 1, SL_NFIELDS + 1))
        return PARSE_FAIL;
    c->body0 = c->o->len;
    if (f.pri >= 0) {
        size_t pair_off = c->o->len;
        if (mpw_str(c->o, "pri", 3))
            return PARSE_FAIL;
        size_t kpay = c->o->len - 3, voff = c->o->len;
        if (mpw_int(c->o, f.pri) || parse_pair_done(c, pair_off, kpay, 3, voff))
            return PARSE_FAIL;
    }
    for (int i = 0; i < SL_NFIELDS; i++)
        if (f.f[i] && parse_put_pair(c, names[i], strlen(names[i]), f.f[i], f.n[i]))
            return PARSE_FAIL;
    c->has_time = 1;
    c->sec = f.sec;
    c->nsec = f.nsec;
    return rec_hdr_close(c->o, &h, c->count) ? PARSE_FAIL : PARSE_OK;
}

const parser_plugin parser_syslog_plugin = {
    .name = "syslog",
    .type = PARSE_SYSLOG,
    .spec = sl_spec,
    .parse = parse_syslog_text,
    .configure = sl_configure,
    .free = sl_free,
};
