/*
 * aggregator/parse.c: Fluentd's <parse> section; see parse.h. The
 * configuration, the pair handling every type shares (time key, null
 * patterns, types) and the dispatch to the types in aggregator/parsers/
 * (see parse_impl.h); the `types` conversions are in parse_conv.c.
 */
#include "parse.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/mp.h"
#include "aggregator/parse_impl.h"
#include "aggregator/record.h"

/* ---- configuration ---------------------------------------------------------------------- */

/* What every type takes; each type's own rows are its plugin's spec (aggregator/parsers/). */
const conf_spec parse_common_spec[] = {
    {"time_key", CONF_STR, NULL, 0, offsetof(parser, time_key), NULL,
     "field that gives the event time, removed from the record unless `keep_time_key`; default `time` for `json`, "
     "`regexp`, `grok` and `ltsv`. `cri`: the key the CRI timestamp is kept under (default `time`)"},
    {"keep_time_key", CONF_BOOL, "false", 0, offsetof(parser, keep_time_key), NULL,
     "keep the time field in the record"},
    {"time_format", CONF_STR, NULL, 0, offsetof(parser, time_format), NULL,
     "strptime with `%N`/`%L`/`%3N`, `%z`, `%s`, `%b`...; `%iso8601`; without it a string time is read as ISO 8601, "
     "Apache, RFC 2822, asctime or syslog form (`cri`: always RFC 3339)"},
    {"time_type", CONF_STR, NULL, 0, offsetof(parser, time_type), NULL,
     "`string`, `unixtime`, `float` or `mixed` (`time_format`, then each of `time_format_fallbacks`); default "
     "`float` for `json` without `time_format` (Fluentd's quirk: a string time such as "
     "`\"2024-01-01T00:00:00Z\"` is then read with `to_i`, as 2024), else `string`"},
    {"time_format_fallbacks", CONF_ARRAY, NULL, 0, offsetof(parser, time_format_fallbacks), NULL,
     "`time_type mixed`: formats tried after `time_format`, in order (`unixtime` and `float` read numbers)"},
    {"localtime", CONF_BOOL, "true", 0, offsetof(parser, localtime), NULL,
     "times without a zone are local time (`false`: UTC)"},
    {"utc", CONF_BOOL, "false", 0, offsetof(parser, utc), NULL, "times without a zone are UTC"},
    {"timezone", CONF_STR, NULL, 0, offsetof(parser, timezone), NULL,
     "zone of times without one: `UTC`, a fixed offset like `+09:00`, or a zone name like `Asia/Tokyo` (the TZ "
     "database under `$TZDIR` or `/usr/share/zoneinfo`)"},
    {"null_value_pattern", CONF_STR, NULL, 0, offsetof(parser, null_value_pattern), NULL,
     "a regexp matched anywhere in string values: matching values become nil"},
    {"null_empty_string", CONF_BOOL, "false", 0, offsetof(parser, null_empty_string), NULL,
     "empty string values become nil"},
    {"types", CONF_STR, NULL, 0, offsetof(parser, types), NULL,
     "`key:integer,key2:float,key3:bool,key4:string,key5:array[:delim],key6:time[:format]` or a JSON hash; Ruby's "
     "`to_i`/`to_f` rules"},
    {"estimate_current_event", CONF_BOOL, "true", 0, offsetof(parser, estimate_current_event), NULL,
     "a text without a time gets the current time (`false`: the event keeps the time it had)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* The table parse_configure binds: the common rows, then every type's own
 * rows (first of a name wins: types may share one, e.g. message_key). Every
 * type accepts the others' rows, as before the tables were split;
 * `expression` is checked below. Built once, never freed. */
static conf_spec *bind_spec;
static pthread_once_t bind_once = PTHREAD_ONCE_INIT;

static int spec_has(const conf_spec *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].name, name))
            return 1;
    return 0;
}

static void bind_spec_init(void)
{
    const parser_plugin *const *pl = parser_plugins();
    size_t cap = 1, n = 0;
    for (const conf_spec *sp = parse_common_spec; sp->name; sp++)
        cap++;
    for (size_t i = 0; pl[i]; i++)
        for (const conf_spec *sp = pl[i]->spec; sp && sp->name; sp++)
            cap++;
    bind_spec = calloc(cap, sizeof *bind_spec);
    if (!bind_spec)
        abort();
    for (const conf_spec *sp = parse_common_spec; sp->name; sp++)
        bind_spec[n++] = *sp;
    for (size_t i = 0; pl[i]; i++)
        for (const conf_spec *sp = pl[i]->spec; sp && sp->name; sp++)
            if (!spec_has(bind_spec, n, sp->name))
                bind_spec[n++] = *sp;
}

static const conf_spec *parse_spec(void)
{
    pthread_once(&bind_once, bind_spec_init);
    return bind_spec;
}

/* Fluentd parsers weir does not have (yet) */
static const char *const unsupported[] = {"multi_format", "multiline_grok", "regex", "kv", NULL};

static conf_param *find_param(conf_node *n, const char *key)
{
    for (size_t i = 0; i < n->nparams; i++)
        if (strcmp(n->params[i].key, key) == 0)
            return &n->params[i];
    return NULL;
}

int parse_configure(parser *p, conf_node *n, conf_errors *errs)
{
    memset(p, 0, sizeof *p);
    conf_param *tp = conf_get(n, "@type");
    if (!tp || !tp->value[0]) {
        conf_errors_add(errs, n->file, n->line, "missing @type in <%s>", n->name);
        return -1;
    }
    p->plugin = parser_plugin_find(tp->value);
    if (!p->plugin) {
        const char *const *type_names = parser_plugin_names();
        for (int i = 0; unsupported[i]; i++) {
            if (strcmp(unsupported[i], tp->value) == 0) {
                char list[256] = "";
                for (size_t k = 0, l = 0; type_names[k] && l < sizeof list; k++)
                    l += (size_t)snprintf(list + l, sizeof list - l, "%s%s", k ? ", " : "", type_names[k]);
                conf_errors_add(errs, tp->file, tp->line, "parser type '%s' is not supported by weir (supported: %s)%s",
                                tp->value, list, !strcmp(tp->value, "regex") ? "; did you mean 'regexp'?" : "");
                return -1;
            }
        }
        conf_error_unknown(errs, tp->file, tp->line, "parser type", tp->value, NULL, type_names);
        return -1;
    }
    p->type = p->plugin->type;
    int bad = conf_bind(n, parse_spec(), p, errs);
    p->configured = 1;
    if (p->plugin->default_expression && !p->expression && !(p->expression = strdup(p->plugin->default_expression)))
        bad = -1;
    if (p->plugin->expression) {
        if (p->expression) {
            const conf_param *xp = find_param(n, "expression");
            conf_errors_add(errs, xp->file, xp->line, "parameter 'expression' is not used by @type %s", tp->value);
            return -1;
        }
        if (!(p->expression = p->plugin->expression(p, n, errs)))
            return -1;
    }
    if (p->plugin->default_time_format && !p->time_format &&
        !(p->time_format = strdup(p->plugin->default_time_format)))
        bad = -1;
    char err[512];

    const conf_param *ep = find_param(n, "expression");
    if (p->type == PARSE_REGEXP) {
        if (!p->expression) {
            conf_errors_add(errs, n->file, n->line, "missing required parameter 'expression' in <%s>", n->name);
            bad = -1;
        } else if (rx_compile(&p->expr, p->expression,
                              RX_SLASHES | (p->ignorecase ? RX_ICASE : 0) | (p->multiline ? RX_DOTALL : 0), err,
                              sizeof err) != 0) {
            conf_errors_add(errs, ep ? ep->file : n->file, ep ? ep->line : n->line, "%s", err);
            bad = -1;
        } else {
            p->names = rx_names(&p->expr, &p->nnames);
            if (!p->nnames) {
                conf_errors_add(errs, ep ? ep->file : n->file, ep ? ep->line : n->line,
                                "No named captures in 'expression' parameter. The regexp must have at least one "
                                "named capture");
                bad = -1;
            }
            for (size_t i = 0; i < p->nnames; i++)
                for (size_t j = 0; j < i; j++)
                    if (p->names[i].len == p->names[j].len && !memcmp(p->names[i].name, p->names[j].name, p->names[i].len))
                        p->dupnames = 1;
        }
    } else if (p->expression) {
        conf_errors_add(errs, ep->file, ep->line, "parameter 'expression' is only used by @type regexp, not %s",
                        tp->value);
        bad = -1;
    }
    if (p->json_parser && strcmp(p->json_parser, "oj") && strcmp(p->json_parser, "yajl") &&
        strcmp(p->json_parser, "json")) {
        const conf_param *jp = find_param(n, "json_parser");
        conf_errors_add(errs, jp->file, jp->line,
                        "invalid value '%s' for parameter 'json_parser'; expected one of: oj, yajl, json",
                        p->json_parser);
        bad = -1;
    }

    /* time */
    if (p->time_key)
        p->tkey = p->time_key;
    else if (p->type == PARSE_JSON || p->type == PARSE_REGEXP || p->type == PARSE_GROK || p->type == PARSE_LTSV)
        p->tkey = "time";
    else if (p->type == PARSE_CRI)
        p->tkey = "time"; /* the CRI timestamp; kept under this key with keep_time_key */
    p->tkey_len = p->tkey ? strlen(p->tkey) : 0;
    int ttype = p->type == PARSE_JSON && !p->time_format ? TP_FLOAT : TP_STRING;
    if (p->time_type) {
        if (!strcmp(p->time_type, "string"))
            ttype = TP_STRING;
        else if (!strcmp(p->time_type, "unixtime"))
            ttype = TP_UNIXTIME;
        else if (!strcmp(p->time_type, "float"))
            ttype = TP_FLOAT;
        else if (!strcmp(p->time_type, "mixed"))
            ttype = TP_MIXED;
        else {
            const conf_param *tt = find_param(n, "time_type");
            conf_errors_add(errs, tt->file, tt->line,
                            "invalid value '%s' for parameter 'time_type'; expected one of: string, unixtime, float, "
                            "mixed",
                            p->time_type);
            bad = -1;
        }
    }
    if (p->type == PARSE_CRI)
        ttype = TP_STRING;
    const char *tfmt = p->type == PARSE_CRI ? "%iso8601" : p->time_format;
    if (ttype == TP_MIXED && p->type != PARSE_CRI
            ? tparse_init_mixed(&p->tp, tfmt, p->time_format_fallbacks, p->localtime, p->utc, p->timezone, err,
                                sizeof err) != 0
            : tparse_init(&p->tp, ttype, tfmt, p->localtime, p->utc, p->timezone, err, sizeof err) != 0) {
        const conf_param *tz = find_param(n, ttype == TP_MIXED ? "time_type" : "timezone");
        conf_errors_add(errs, tz ? tz->file : n->file, tz ? tz->line : n->line, "%s", err);
        bad = -1;
    }

    if (p->null_value_pattern) {
        if (rx_compile(&p->nullrx, p->null_value_pattern, 0, err, sizeof err) != 0) {
            const conf_param *np = find_param(n, "null_value_pattern");
            conf_errors_add(errs, np->file, np->line, "%s", err);
            bad = -1;
        } else {
            p->has_nullrx = 1;
        }
    }
    if (p->types && parse_conv_configure(p, find_param(n, "types"), errs))
        bad = -1;
    p->convert = p->nconv || p->has_nullrx || p->null_empty_string;

    p->mkey = p->message_key ? p->message_key : p->type == PARSE_CRI ? "log" : "message";
    p->mkey_len = strlen(p->mkey);
    /* the type's own configuration, once the common part is in place (a
     * type may build on it: grok's alternatives take the time and types);
     * also after an error above, so that --dry-run reports everything */
    if (p->plugin->configure && p->plugin->configure(p, n, errs) != 0)
        bad = -1;
    return bad ? -1 : 0;
}

int parse_stats_get(const parser *p, parse_stats *s)
{
    memset(s, 0, sizeof *s);
    return p && p->plugin && p->plugin->stats ? p->plugin->stats(p, s) : 0;
}

void parse_free(parser *p)
{
    if (p->plugin && p->plugin->free)
        p->plugin->free(p);
    rx_free(&p->expr);
    free(p->names);
    tparse_free(&p->tp);
    rx_free(&p->nullrx);
    for (size_t i = 0; i < p->nconv; i++) {
        free(p->conv[i].key);
        free(p->conv[i].delim);
        tparse_free(&p->conv[i].tp);
    }
    free(p->conv);
    conf_unbind(parse_spec(), p);
    memset(p, 0, sizeof *p);
}

/* ---- shared pair handling --------------------------------------------------------------- */

int parse_pair_done(pctx *c, size_t pair_off, size_t kpay, size_t klen, size_t voff)
{
    const parser *p = c->p;
    wbuf *o = c->o;
    if (p->tkey && klen == p->tkey_len && memcmp(o->data + kpay, p->tkey, klen) == 0) {
        uint32_t s, ns;
        if (tparse_value(&p->tp, o->data + voff, o->len - voff, &s, &ns, c->terr, sizeof c->terr) == 0) {
            c->has_time = 1;
            c->sec = s;
            c->nsec = ns;
            c->time_err = 0;
        } else {
            c->time_err = 1;
        }
        if (!p->keep_time_key) {
            o->len = pair_off;
            return 0;
        }
    }
    if (p->convert) {
        const uint8_t *v = o->data + voff;
        /* null_empty_string / null_value_pattern on strings first */
        const uint8_t *q = v, *s;
        uint32_t sl;
        if (rec_read_str(&q, o->data + o->len, &s, &sl) == 1 &&
            ((p->null_empty_string && sl == 0) || (p->has_nullrx && rx_match(&p->nullrx, s, sl) == 1))) {
            o->len = voff;
            if (mpw_nil(o))
                return -1;
        } else {
            for (size_t i = 0; i < p->nconv; i++) {
                if (p->conv[i].key_len == klen && memcmp(p->conv[i].key, o->data + kpay, klen) == 0) {
                    if (parse_conv_apply(&p->conv[i], o, voff))
                        return -1;
                    break;
                }
            }
        }
    }
    c->count++;
    parse_note_key(c, kpay, klen);
    return 0;
}

int parse_put_pair(pctx *c, const void *k, size_t kl, const void *v, size_t vl)
{
    wbuf *o = c->o;
    size_t pair_off = o->len;
    if (mpw_str(o, k, kl))
        return -1;
    size_t kpay = o->len - kl, voff = o->len;
    if (v ? mpw_str(o, v, vl) : mpw_nil(o))
        return -1;
    return parse_pair_done(c, pair_off, kpay, kl, voff);
}

void pspans_init(pspans *s)
{
    s->k = s->sk;
    s->v = s->sv;
    s->n = 0;
    s->cap = sizeof s->sk / sizeof s->sk[0];
}

int pspans_add(pspans *s, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    if (s->n == s->cap) {
        size_t cap = s->cap * 2;
        pspan *k2 = malloc(cap * sizeof *k2), *v2 = malloc(cap * sizeof *v2);
        if (!k2 || !v2) {
            free(k2);
            free(v2);
            return -1;
        }
        memcpy(k2, s->k, s->n * sizeof *k2);
        memcpy(v2, s->v, s->n * sizeof *v2);
        pspans_free(s);
        s->k = k2, s->v = v2, s->cap = cap;
    }
    s->k[s->n] = (pspan){k, kl};
    s->v[s->n] = (pspan){v, vl};
    s->n++;
    return 0;
}

void pspans_free(pspans *s)
{
    if (s->k != s->sk)
        free(s->k);
    if (s->v != s->sv)
        free(s->v);
    s->k = s->sk, s->v = s->sv;
}

static int span_eq(const pspan *a, const pspan *b) { return a->n == b->n && (!a->n || !memcmp(a->p, b->p, a->n)); }

int parse_put_hash(pctx *c, const pspans *s)
{
    rec_hdr h;
    if (rec_hdr_open(c->o, &h, 1, (uint32_t)s->n))
        return PARSE_FAIL;
    c->body0 = c->o->len;
    for (size_t i = 0; i < s->n; i++) {
        size_t last = i, k;
        for (k = 0; k < i && !span_eq(&s->k[k], &s->k[i]); k++)
            ;
        if (k < i)
            continue; /* written at its first place */
        for (k = i + 1; k < s->n; k++)
            if (span_eq(&s->k[k], &s->k[i]))
                last = k;
        const pspan *v = &s->v[last];
        if (parse_put_pair(c, s->k[i].p, s->k[i].n, v->p, v->n))
            return PARSE_FAIL;
    }
    return rec_hdr_close(c->o, &h, c->count) ? PARSE_FAIL : PARSE_OK;
}

static int finish(pctx *c, int *has_time, uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
    if (c->time_err) {
        if (err && errlen)
            snprintf(err, errlen, "%s", c->terr);
        return PARSE_FAIL;
    }
    if (c->has_time) {
        *has_time = 1;
        *sec = c->sec;
        *nsec = c->nsec;
    } else if (c->p->estimate_current_event) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        *has_time = 1;
        *sec = (uint32_t)ts.tv_sec;
        *nsec = (uint32_t)ts.tv_nsec;
    } else {
        *has_time = 0;
    }
    return PARSE_OK;
}

/* ---- entry point --------------------------------------------------------------------------------- */

int parse_text(const parser *p, const char *s, size_t n, wbuf *out_map, int *has_time, uint32_t *sec,
               uint32_t *nsec, char *err, size_t errlen)
{
    return parse_text_keys(p, s, n, out_map, has_time, sec, nsec, err, errlen, NULL);
}

int parse_text_keys(const parser *p, const char *s, size_t n, wbuf *out_map, int *has_time, uint32_t *sec,
                    uint32_t *nsec, char *err, size_t errlen, parse_keys *keys)
{
    size_t start = out_map->len;
    pctx c; /* not zero-initialised: terr is only read after being written */
    c.p = p;
    c.o = out_map;
    c.count = 0;
    c.has_time = c.time_err = 0;
    c.sec = c.nsec = 0;
    c.keys = keys;
    c.body0 = 0;
    c.terr[0] = 0;
    if (keys)
        keys->n = 0, keys->overflow = 0;
    const uint8_t *u = (const uint8_t *)(s ? s : "");
    int rc;
    if (err && errlen)
        err[0] = 0;
    rc = p->plugin ? p->plugin->parse(&c, u, n, err, errlen) : PARSE_FAIL;
    if (rc == PARSE_OK)
        rc = finish(&c, has_time, sec, nsec, err, errlen);
    else if (rc == PARSE_BADUTF8 && err && errlen)
        snprintf(err, errlen, "invalid byte sequence in UTF-8");
    else if (rc == PARSE_FAIL && err && errlen && !err[0])
        snprintf(err, errlen, "%s", c.time_err ? c.terr : "out of memory or record too large");
    if (rc != PARSE_OK) {
        out_map->len = start;
    } else if (keys) { /* relative to the body -> offsets in out_map */
        uint8_t b = out_map->data[start];
        size_t body = start + ((b & 0xf0) == 0x80 ? 1 : b == 0xde ? 3 : 5);
        for (size_t i = 0; i < keys->n; i++)
            keys->off[i] += body;
    }
    return rc;
}

int parse_scrub(wbuf *out, const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (wbuf_addc(out, c))
                return -1;
            i++;
            continue;
        }
        size_t k = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
        size_t j = 1;
        while (j <= k && i + j < n && (s[i + j] & 0xc0) == 0x80)
            j++;
        if (k && j == k + 1 && rx_utf8_valid(s + i, k + 1)) {
            if (rec_add(out, s + i, k + 1))
                return -1;
            i += k + 1;
        } else {
            if (wbuf_addc(out, '?'))
                return -1;
            i += j > 1 ? j : 1; /* a truncated sequence counts once */
        }
    }
    return 0;
}
