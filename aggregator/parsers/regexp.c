/*
 * aggregator/parsers/regexp.c: <parse> @type regexp: `expression` with named
 * captures (?<name>...) -> one pair per name; unmatched optional groups are
 * left out and, for a name used twice, the last group that matched wins
 * (Ruby's MatchData). Text that is not valid UTF-8 fails like Ruby's
 * "invalid byte sequence in UTF-8". See parse.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/rx.h"
#include "aggregator/parse_impl.h"
#include "aggregator/record.h"

int parse_rx_exec(const parser *p, const uint8_t *s, size_t n, const PCRE2_SIZE **ov, char *err, size_t errlen)
{
    if (!rx_utf8_valid(s, n))
        return PARSE_BADUTF8;
    int rc = rx_exec(&p->expr, s, n, ov);
    if (rc == 0)
        return PARSE_NOMATCH;
    if (rc < 0) {
        if (err && errlen)
            snprintf(err, errlen, "regexp match failed (match limit?)");
        return PARSE_FAIL;
    }
    return PARSE_OK;
}

static int parse_regexp_text(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    const parser *p = c->p;
    const PCRE2_SIZE *ov;
    int rc = parse_rx_exec(p, s, n, &ov, err, errlen);
    if (rc != PARSE_OK)
        return rc;
    /* copy the ovector: conversions may run other regexps on this thread */
    size_t nov = 2 * ((size_t)p->expr.ncap + 1);
    PCRE2_SIZE ovs[128], *ovc = nov <= 128 ? ovs : malloc(nov * sizeof *ovc);
    if (!ovc)
        return PARSE_FAIL;
    memcpy(ovc, ov, nov * sizeof *ovc);
    rec_hdr h;
    int ret = PARSE_FAIL;
    if (rec_hdr_open(c->o, &h, 1, (uint32_t)p->nnames))
        goto out;
    c->body0 = c->o->len;
    for (size_t i = 0; i < p->nnames; i++) {
        const rx_name *nm = &p->names[i];
        uint32_t g = nm->group;
        if (p->dupnames) {
            int first = 1;
            for (size_t k = 0; k < i; k++)
                if (p->names[k].len == nm->len && !memcmp(p->names[k].name, nm->name, nm->len))
                    first = 0;
            if (!first)
                continue;
            /* Ruby: the last matched group of that name */
            for (size_t k = i; k < p->nnames; k++)
                if (p->names[k].len == nm->len && !memcmp(p->names[k].name, nm->name, nm->len) &&
                    ovc[2 * p->names[k].group] != PCRE2_UNSET)
                    g = p->names[k].group;
        }
        if (ovc[2 * g] == PCRE2_UNSET)
            continue;
        if (parse_put_pair(c, nm->name, nm->len, s + ovc[2 * g], ovc[2 * g + 1] - ovc[2 * g]))
            goto out;
    }
    ret = rec_hdr_close(c->o, &h, c->count) ? PARSE_FAIL : PARSE_OK;
out:
    if (ovc != ovs)
        free(ovc);
    return ret;
}

static const conf_spec regexp_spec[] = {
    {"expression", CONF_STR, NULL, 0, offsetof(parser, expression), NULL,
     "required: `/regexp/` (flags `i`, `m`) or a bare pattern, with at least one named capture `(?<name>...)`; the "
     "captures become the record's keys, in pattern order (unmatched optional groups left out). Refused with any "
     "other type"},
    {"ignorecase", CONF_BOOL, "false", 0, offsetof(parser, ignorecase), NULL, "match case-insensitively"},
    {"multiline", CONF_BOOL, "false", 0, offsetof(parser, multiline), NULL,
     "`.` also matches a newline (Ruby's `m`)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const parser_plugin parser_regexp_plugin = {
    .name = "regexp", .type = PARSE_REGEXP, .spec = regexp_spec, .parse = parse_regexp_text};

/* Fluentd's regexp presets (parser_nginx.rb, parser_apache.rb, parser_apache_error.rb): the same
 * parser with their expression (and time_format) unless configured */
const parser_plugin parser_nginx_plugin = {
    .name = "nginx",
    .type = PARSE_REGEXP,
    .spec = regexp_spec,
    .parse = parse_regexp_text,
    .default_expression =
        "/^(?<remote>[^ ]*) (?<host>[^ ]*) (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] \"(?<method>\\S+)(?: +(?<path>[^\\\"]*?)"
        "(?: +\\S*)?)?\" (?<code>[^ ]*) (?<size>[^ ]*)(?: \"(?<referer>[^\\\"]*)\" \"(?<agent>[^\\\"]*)\"(?:\\s+\\\"?"
        "(?<http_x_forwarded_for>[^\\\"]*)\\\"?)?)?$/",
    .default_time_format = "%d/%b/%Y:%H:%M:%S %z",
};

const parser_plugin parser_apache_plugin = {
    .name = "apache",
    .type = PARSE_REGEXP,
    .spec = regexp_spec,
    .parse = parse_regexp_text,
    .default_expression = "/^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] \"(?<method>\\S+)(?: +(?<path>[^ ]*) "
                          "+\\S*)?\" (?<code>[^ ]*) (?<size>[^ ]*)(?: \"(?<referer>[^\\\"]*)\" \"(?<agent>[^\\\"]*)\")?$/",
    .default_time_format = "%d/%b/%Y:%H:%M:%S %z",
};

const parser_plugin parser_apache_error_plugin = {
    .name = "apache_error",
    .type = PARSE_REGEXP,
    .spec = regexp_spec,
    .parse = parse_regexp_text,
    .default_expression = "/^\\[[^ ]* (?<time>[^\\]]*)\\] \\[(?<level>[^\\]]*)\\](?: \\[pid (?<pid>[^\\]]*)\\])?"
                          "( \\[client (?<client>[^\\]]*)\\])? (?<message>.*)$/",
};

/* Fluentd core's multiline parser (parser_multiline.rb) as a parser filter uses it: format1..format20
 * (each /.../) joined into one expression matched with `.` taking line breaks too; the first match is
 * the record (Fluentd's filter takes the first record it yields). unmatched_lines: a text that does not
 * match becomes {"unmatched_line": text} (at the current time) instead of an error. format_firstline is
 * in_tail's (checked, not used). */
static char *multiline_expression(parser *p, conf_node *n, conf_errors *errs)
{
    /* format21 and beyond: conf_bind's unknown parameter */
    wbuf x = {0};
    int bad = wbuf_addc(&x, '/');
    for (int i = 0; i < 20 && !bad; i++) {
        const char *f = p->formatn[i];
        if (!f)
            continue;
        if (i && !p->formatn[i - 1]) {
            conf_errors_add(errs, n->file, n->line, "Jump of format index found. format%d is missing.", i);
            bad = 1;
            break;
        }
        size_t l = strlen(f);
        if (l < 2 || f[0] != '/' || f[l - 1] != '/') {
            char key[32];
            snprintf(key, sizeof key, "format%d", i + 1);
            conf_param *fp = conf_get(n, key);
            conf_errors_add(errs, fp ? fp->file : n->file, fp ? fp->line : n->line,
                            "format should be Regexp, need //, in %s: '%s'", key, f);
            bad = 1;
            break;
        }
        bad = wbuf_add(&x, f + 1, l - 2);
    }
    if (!bad && x.len == 1) {
        conf_errors_add(errs, n->file, n->line, "missing required parameter 'format1' in <%s> (@type multiline)",
                        n->name);
        bad = 1;
    }
    if (!bad && p->format_firstline) {
        size_t l = strlen(p->format_firstline);
        if (l < 2 || p->format_firstline[0] != '/' || p->format_firstline[l - 1] != '/') {
            conf_param *fp = conf_get(n, "format_firstline");
            conf_errors_add(errs, fp ? fp->file : n->file, fp ? fp->line : n->line,
                            "format should be Regexp, need //, in format_firstline: '%s'", p->format_firstline);
            bad = 1;
        }
    }
    if (bad || wbuf_add(&x, "/m", 3)) {
        wbuf_free(&x);
        return NULL;
    }
    return (char *)x.data;
}

static int parse_multiline_text(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    int rc = parse_regexp_text(c, s, n, err, errlen);
    if (rc != PARSE_NOMATCH || !c->p->unmatched_lines)
        return rc;
    rec_hdr h;
    if (rec_hdr_open(c->o, &h, 1, 1))
        return PARSE_FAIL;
    c->body0 = c->o->len;
    if (parse_put_pair(c, "unmatched_line", 14, s, n) || rec_hdr_close(c->o, &h, c->count))
        return PARSE_FAIL;
    return PARSE_OK;
}

#define FMT_N(i) {"format" #i, CONF_STR, NULL, 0, offsetof(parser, formatn[i - 1]), NULL, "part " #i " of the expression"}
static const conf_spec multiline_spec[] = {
    {"format1", CONF_STR, NULL, 0, offsetof(parser, formatn[0]), NULL,
     "required: `/regexp/`, the first part of the expression; `format2` .. `format20` follow it (named captures "
     "become the record's keys; `.` matches line breaks too)"},
    FMT_N(2), FMT_N(3), FMT_N(4), FMT_N(5), FMT_N(6), FMT_N(7), FMT_N(8), FMT_N(9), FMT_N(10), FMT_N(11),
    FMT_N(12), FMT_N(13), FMT_N(14), FMT_N(15), FMT_N(16), FMT_N(17), FMT_N(18), FMT_N(19), FMT_N(20),
    {"format_firstline", CONF_STR, NULL, 0, offsetof(parser, format_firstline), NULL,
     "`/regexp/` of a record's first line: in_tail's; checked, not used by a parser filter"},
    {"unmatched_lines", CONF_STR, NULL, 0, offsetof(parser, unmatched_lines), NULL,
     "any value: a text that does not match becomes `{\"unmatched_line\": text}` instead of an error"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};
#undef FMT_N

const parser_plugin parser_multiline_plugin = {
    .name = "multiline",
    .type = PARSE_REGEXP,
    .spec = multiline_spec,
    .parse = parse_multiline_text,
    .expression = multiline_expression,
};
