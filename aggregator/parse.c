/* aggregator/parse.c: Fluentd's <parse> section; see parse.h. */
#include "parse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/mp.h"
#include "aggregator/record.h"

#define JSON_MAX_DEPTH 128

/* ---- configuration ---------------------------------------------------------------------- */

static const conf_spec parse_spec[] = {
    {"expression", CONF_STR, NULL, 0, offsetof(parser, expression), NULL},
    {"ignorecase", CONF_BOOL, "false", 0, offsetof(parser, ignorecase), NULL},
    {"multiline", CONF_BOOL, "false", 0, offsetof(parser, multiline), NULL},
    {"time_key", CONF_STR, NULL, 0, offsetof(parser, time_key), NULL},
    {"keep_time_key", CONF_BOOL, "false", 0, offsetof(parser, keep_time_key), NULL},
    {"time_format", CONF_STR, NULL, 0, offsetof(parser, time_format), NULL},
    {"time_type", CONF_STR, NULL, 0, offsetof(parser, time_type), NULL},
    {"localtime", CONF_BOOL, "true", 0, offsetof(parser, localtime), NULL},
    {"utc", CONF_BOOL, "false", 0, offsetof(parser, utc), NULL},
    {"timezone", CONF_STR, NULL, 0, offsetof(parser, timezone), NULL},
    {"null_value_pattern", CONF_STR, NULL, 0, offsetof(parser, null_value_pattern), NULL},
    {"null_empty_string", CONF_BOOL, "false", 0, offsetof(parser, null_empty_string), NULL},
    {"types", CONF_STR, NULL, 0, offsetof(parser, types), NULL},
    {"message_key", CONF_STR, NULL, 0, offsetof(parser, message_key), NULL},
    {"estimate_current_event", CONF_BOOL, "true", 0, offsetof(parser, estimate_current_event), NULL},
    {"json_parser", CONF_STR, NULL, 0, offsetof(parser, json_parser), NULL},
    {"stream_buffer_size", CONF_INT, "8192", 0, offsetof(parser, stream_buffer_size), NULL},
    {NULL, 0, NULL, 0, 0, NULL},
};

static const char *const type_names[] = {"json", "regexp", "cri", "logfmt", "none", NULL};
/* Fluentd parsers weir does not have (yet) */
static const char *const unsupported[] = {"apache2", "apache_error", "nginx", "syslog",  "csv",  "tsv",  "ltsv",
                                          "multiline", "multi_format", "grok", "msgpack", "regex", "kv", NULL};

static conf_param *find_param(conf_node *n, const char *key)
{
    for (size_t i = 0; i < n->nparams; i++)
        if (strcmp(n->params[i].key, key) == 0)
            return &n->params[i];
    return NULL;
}

static int add_conv(parser *p, const char *key, size_t klen, const char *def, const conf_param *at, conf_errors *errs)
{
    const char *colon = strchr(def, ':');
    size_t tl = colon ? (size_t)(colon - def) : strlen(def);
    const char *opt = colon ? colon + 1 : NULL;
    static const char *const names[] = {"string", "integer", "float", "bool", "time", "array", NULL};
    int type = -1;
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == tl && strncmp(names[i], def, tl) == 0)
            type = i;
    if (type < 0) {
        conf_errors_add(errs, at->file, at->line, "unknown value conversion for key:'%.*s', type:'%.*s'", (int)klen, key,
                        (int)tl, def);
        return -1;
    }
    parse_conv *nc = realloc(p->conv, (p->nconv + 1) * sizeof *nc);
    if (!nc)
        return -1;
    p->conv = nc;
    parse_conv *c = &p->conv[p->nconv++];
    memset(c, 0, sizeof *c);
    c->key = strndup(key, klen);
    c->key_len = klen;
    c->type = type;
    if (type == CONV_ARRAY)
        c->delim = strdup(opt ? opt : ",");
    if (type == CONV_TIME) {
        /* time[:timezone:format] | time:format | time:unixtime | time:float */
        int ttype = TP_STRING;
        const char *fmt = NULL, *tz = NULL;
        char *tzbuf = NULL;
        if (opt) {
            const char *c2 = strchr(opt, ':');
            int32_t off;
            if (c2 && tz_offset(opt, (size_t)(c2 - opt), &off) == 0) {
                tzbuf = strndup(opt, (size_t)(c2 - opt));
                tz = tzbuf;
                fmt = c2 + 1;
            } else {
                fmt = opt;
            }
            if (!strcmp(fmt, "unixtime"))
                ttype = TP_UNIXTIME, fmt = NULL;
            else if (!strcmp(fmt, "float"))
                ttype = TP_FLOAT, fmt = NULL;
        }
        char err[256];
        int rc = tparse_init(&c->tp, ttype, fmt, p->localtime, p->utc, tz ? tz : p->timezone, err, sizeof err);
        free(tzbuf);
        if (rc) {
            conf_errors_add(errs, at->file, at->line, "%s", err);
            return -1;
        }
    }
    return c->key && (type != CONV_ARRAY || c->delim) ? 0 : -1;
}

static int parse_types(parser *p, const conf_param *at, conf_errors *errs)
{
    const char *s = p->types;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '{') {
        /* {"key":"type", ...}: read with this file's own JSON converter */
        parser jpp;
        memset(&jpp, 0, sizeof jpp);
        jpp.type = PARSE_JSON;
        wbuf m = {0};
        int ht, bad = 0;
        uint32_t sec, nsec;
        const uint8_t *q, *end;
        mp_obj o;
        if (parse_text(&jpp, s, strlen(s), &m, &ht, &sec, &nsec, NULL, 0) != PARSE_OK) {
            conf_errors_add(errs, at->file, at->line, "invalid hash value '%s' for parameter 'types'", p->types);
            wbuf_free(&m);
            return -1;
        }
        q = m.data;
        end = m.data + m.len;
        mp_read(&q, end, &o);
        for (uint32_t i = 0; i < o.len && !bad; i++) {
            mp_obj k, v;
            if (mp_read(&q, end, &k) != MP_OK || mp_read(&q, end, &v) != MP_OK || v.type != MP_STR) {
                conf_errors_add(errs, at->file, at->line, "invalid hash value '%s' for parameter 'types'", p->types);
                bad = -1;
                break;
            }
            char *def = strndup((const char *)v.ptr, v.len);
            if (!def || add_conv(p, (const char *)k.ptr, k.len, def, at, errs))
                bad = -1;
            free(def);
        }
        wbuf_free(&m);
        return bad;
    }
    int bad = 0;
    char *copy = strdup(s), *save = NULL;
    if (!copy)
        return -1;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t l = strlen(tok);
        while (l && (tok[l - 1] == ' ' || tok[l - 1] == '\t'))
            tok[--l] = 0;
        if (!l)
            continue;
        char *colon = strchr(tok, ':');
        if (!colon) {
            conf_errors_add(errs, at->file, at->line, "invalid hash value '%s' for parameter 'types'", p->types);
            bad = -1;
            break;
        }
        char *k = tok;
        size_t kl = (size_t)(colon - tok);
        while (kl && (k[kl - 1] == ' ' || k[kl - 1] == '\t'))
            kl--;
        char *d = colon + 1;
        while (*d == ' ' || *d == '\t')
            d++;
        if (add_conv(p, k, kl, d, at, errs))
            bad = -1;
    }
    free(copy);
    return bad;
}

int parse_configure(parser *p, conf_node *n, conf_errors *errs)
{
    memset(p, 0, sizeof *p);
    conf_param *tp = conf_get(n, "@type");
    if (!tp || !tp->value[0]) {
        conf_errors_add(errs, n->file, n->line, "missing @type in <%s>", n->name);
        return -1;
    }
    p->type = -1;
    for (int i = 0; type_names[i]; i++)
        if (strcmp(type_names[i], tp->value) == 0)
            p->type = i;
    if (p->type < 0) {
        for (int i = 0; unsupported[i]; i++) {
            if (strcmp(unsupported[i], tp->value) == 0) {
                conf_errors_add(errs, tp->file, tp->line,
                                "parser type '%s' is not supported by weir (supported: json, regexp, cri, logfmt, "
                                "none)%s",
                                tp->value, !strcmp(tp->value, "regex") ? "; did you mean 'regexp'?" : "");
                return -1;
            }
        }
        const char *s = conf_suggest(tp->value, type_names);
        if (s)
            conf_errors_add(errs, tp->file, tp->line, "unknown parser type '%s'; did you mean '%s'?", tp->value, s);
        else
            conf_errors_add(errs, tp->file, tp->line, "unknown parser type '%s'", tp->value);
        return -1;
    }
    int bad = conf_bind(n, parse_spec, p, errs);
    p->configured = 1;
    char err[512];

    const conf_param *ep = find_param(n, "expression");
    if (p->type == PARSE_REGEXP) {
        if (!p->expression) {
            conf_errors_add(errs, n->file, n->line, "missing required parameter 'expression' in <%s>", n->name);
            bad = -1;
        } else if (rx_compile(&p->expr, p->expression,
                              RX_SLASHES | (p->ignorecase ? RX_ICASE : 0) | (p->multiline ? RX_DOTALL : 0), err,
                              sizeof err) != 0) {
            conf_errors_add(errs, ep->file, ep->line, "%s", err);
            bad = -1;
        } else {
            p->names = rx_names(&p->expr, &p->nnames);
            if (!p->nnames) {
                conf_errors_add(errs, ep->file, ep->line,
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
    else if (p->type == PARSE_JSON || p->type == PARSE_REGEXP)
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
        else {
            const conf_param *tt = find_param(n, "time_type");
            if (!strcmp(p->time_type, "mixed"))
                conf_errors_add(errs, tt->file, tt->line, "time_type mixed is not supported by weir");
            else
                conf_errors_add(errs, tt->file, tt->line,
                                "invalid value '%s' for parameter 'time_type'; expected one of: string, unixtime, float",
                                p->time_type);
            bad = -1;
        }
    }
    if (p->type == PARSE_CRI)
        ttype = TP_STRING;
    const char *tfmt = p->type == PARSE_CRI ? "%iso8601" : p->time_format;
    if (tparse_init(&p->tp, ttype, tfmt, p->localtime, p->utc, p->timezone, err, sizeof err) != 0) {
        const conf_param *tz = find_param(n, "timezone");
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
    if (p->types && parse_types(p, find_param(n, "types"), errs))
        bad = -1;
    p->convert = p->nconv || p->has_nullrx || p->null_empty_string;

    p->mkey = p->message_key ? p->message_key : p->type == PARSE_CRI ? "log" : "message";
    p->mkey_len = strlen(p->mkey);
    return bad ? -1 : 0;
}

void parse_free(parser *p)
{
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
    conf_unbind(parse_spec, p);
    memset(p, 0, sizeof *p);
}

/* ---- shared pair handling --------------------------------------------------------------- */

typedef struct pctx {
    const parser *p;
    wbuf *o;
    uint32_t count;
    int has_time, time_err;
    uint32_t sec, nsec;
    parse_keys *keys;
    size_t body0; /* where the pairs started when the header was reserved */
    char terr[256];
} pctx;

static inline void note_key(pctx *c, size_t kpay, size_t klen)
{
    parse_keys *k = c->keys;
    if (!k)
        return;
    if (k->n < k->cap) {
        k->off[k->n] = kpay - c->body0;
        k->len[k->n] = (uint32_t)klen;
        k->n++;
    } else {
        k->overflow = 1;
    }
}

static int ruby_split(wbuf *o, const uint8_t *s, size_t n, const char *delim)
{
    size_t dl = strlen(delim);
    rec_hdr h;
    uint32_t cnt = 0;
    if (rec_hdr_open(o, &h, 0, 0))
        return -1;
    if (dl == 1 && delim[0] == ' ') { /* awk-style */
        size_t i = 0;
        while (i < n) {
            while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f' || s[i] == '\v'))
                i++;
            if (i >= n)
                break;
            size_t b = i;
            while (i < n && !(s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' || s[i] == '\f' || s[i] == '\v'))
                i++;
            if (mpw_str(o, s + b, i - b))
                return -1;
            cnt++;
        }
    } else if (dl == 0) { /* characters */
        size_t i = 0;
        while (i < n) {
            size_t l = 1;
            if (s[i] >= 0xc0)
                while (i + l < n && (s[i + l] & 0xc0) == 0x80 && l < 4)
                    l++;
            if (mpw_str(o, s + i, l))
                return -1;
            cnt++;
            i += l;
        }
    } else {
        /* Ruby drops trailing empty fields: count the fields up to the last non-empty one */
        uint32_t keep = 0, k = 0;
        size_t i, b = 0;
        for (i = 0; i + dl <= n;) {
            if (memcmp(s + i, delim, dl) == 0) {
                k++;
                if (i > b)
                    keep = k;
                i += dl;
                b = i;
            } else {
                i++;
            }
        }
        if (n > b)
            keep = k + 1;
        b = 0;
        for (i = 0; cnt < keep;) {
            if (i + dl <= n && memcmp(s + i, delim, dl) == 0) {
                if (mpw_str(o, s + b, i - b))
                    return -1;
                cnt++;
                i += dl;
                b = i;
            } else if (i >= n) {
                if (mpw_str(o, s + b, n - b))
                    return -1;
                cnt++;
            } else {
                i++;
            }
        }
    }
    return rec_hdr_close(o, &h, cnt);
}

/* Fluentd's type converters on the value at o->data[voff..]. */
static int conv_apply(const parse_conv *c, wbuf *o, size_t voff)
{
    const uint8_t *v = o->data + voff, *end = o->data + o->len, *q = v;
    mp_obj x;
    if (mp_read(&q, end, &x) != MP_OK)
        return -1;
    if (x.type == MP_NIL || (x.type == MP_BOOL && !x.v.b))
        return 0; /* nil (and false) are left as they are */
    int is_str = x.type == MP_STR || x.type == MP_BIN;
    switch (c->type) {
    case CONV_STRING: {
        if (is_str)
            return 0;
        wbuf t = {0};
        if (rec_value_to_s(&t, v, o->len - voff)) {
            wbuf_free(&t);
            return -1;
        }
        o->len = voff;
        int rc = mpw_str(o, t.data ? t.data : (const uint8_t *)"", t.len);
        wbuf_free(&t);
        return rc;
    }
    case CONV_INTEGER: {
        int64_t iv = 0;
        if (x.type == MP_UINT) {
            if (x.v.u > (uint64_t)INT64_MAX)
                return 0;
            iv = (int64_t)x.v.u;
        } else if (x.type == MP_INT)
            iv = x.v.i;
        else if (x.type == MP_FLOAT)
            iv = isfinite(x.v.f) && fabs(x.v.f) < 9.2e18 ? (int64_t)x.v.f : 0;
        else if (is_str)
            iv = ruby_str_to_i((const char *)x.ptr, x.len);
        o->len = voff;
        return mpw_int(o, iv);
    }
    case CONV_FLOAT: {
        double d = 0;
        if (x.type == MP_UINT)
            d = (double)x.v.u;
        else if (x.type == MP_INT)
            d = (double)x.v.i;
        else if (x.type == MP_FLOAT)
            d = x.v.f;
        else if (is_str)
            d = ruby_str_to_f((const char *)x.ptr, x.len);
        o->len = voff;
        return mpw_double(o, d);
    }
    case CONV_BOOL: {
        int b = 0;
        if (is_str)
            b = (x.len == 4 && !strncasecmp((const char *)x.ptr, "true", 4)) ||
                (x.len == 3 && !strncasecmp((const char *)x.ptr, "yes", 3)) || (x.len == 1 && x.ptr[0] == '1');
        else if (x.type == MP_BOOL)
            b = x.v.b;
        else if (x.type == MP_UINT)
            b = x.v.u == 1;
        else if (x.type == MP_INT)
            b = x.v.i == 1;
        o->len = voff;
        return mpw_bool(o, b);
    }
    case CONV_TIME: {
        uint32_t s, ns;
        char e[64];
        int ok = tparse_value(&c->tp, v, o->len - voff, &s, &ns, e, sizeof e) == 0;
        o->len = voff;
        return ok ? mpw_eventtime(o, s, ns) : mpw_nil(o);
    }
    case CONV_ARRAY: {
        wbuf t = {0};
        if (rec_value_to_s(&t, v, o->len - voff)) {
            wbuf_free(&t);
            return -1;
        }
        o->len = voff;
        int rc = ruby_split(o, t.data ? t.data : (const uint8_t *)"", t.len, c->delim);
        wbuf_free(&t);
        return rc;
    }
    }
    return 0;
}

/* A pair was written at o->data[pair_off..]: its key payload is
 * o->data[kpay..kpay+klen), its value starts at voff. Applies the time key
 * and the conversions. */
static int pair_done(pctx *c, size_t pair_off, size_t kpay, size_t klen, size_t voff)
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
                    if (conv_apply(&p->conv[i], o, voff))
                        return -1;
                    break;
                }
            }
        }
    }
    c->count++;
    note_key(c, kpay, klen);
    return 0;
}

/* Append a pair with a string value (or nil when v is NULL). */
static int put_pair(pctx *c, const void *k, size_t kl, const void *v, size_t vl)
{
    wbuf *o = c->o;
    size_t pair_off = o->len;
    if (mpw_str(o, k, kl))
        return -1;
    size_t kpay = o->len - kl, voff = o->len;
    if (v ? mpw_str(o, v, vl) : mpw_nil(o))
        return -1;
    return pair_done(c, pair_off, kpay, kl, voff);
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

/* ---- JSON -> msgpack ----------------------------------------------------------------------- */

/*
 * One pass, straight into the output buffer. The output of r bytes of JSON
 * is at most 3r + 16 bytes of msgpack (the worst case is a 3-character
 * float such as 1.5 becoming 9 bytes), so the buffer is grown once for the
 * whole text and the writers below need no capacity checks. Only the
 * top-level conversions (types, null patterns) go through the checked wbuf
 * API; the reservation is renewed after them.
 */

typedef struct jp {
    const uint8_t *p, *e;
    wbuf *o;
} jp;

#define JRESERVE(j) rec_reserve((j)->o, 3 * (size_t)((j)->e - (j)->p) + 16)

static inline void ws(jp *j)
{
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}

static inline size_t str_hdr_size(size_t n) { return n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5; }

static inline void str_hdr_put(uint8_t *d, size_t n, size_t hs)
{
    if (hs == 1)
        d[0] = (uint8_t)(0xa0 | n);
    else if (hs == 2)
        d[0] = 0xd9, d[1] = (uint8_t)n;
    else if (hs == 3)
        d[0] = 0xda, d[1] = (uint8_t)(n >> 8), d[2] = (uint8_t)n;
    else
        d[0] = 0xdb, d[1] = (uint8_t)(n >> 24), d[2] = (uint8_t)(n >> 16), d[3] = (uint8_t)(n >> 8), d[4] = (uint8_t)n;
}

static inline void put_be(wbuf *o, uint8_t tag, uint64_t v, int bytes)
{
    uint8_t *d = o->data + o->len;
    d[0] = tag;
    for (int i = 0; i < bytes; i++)
        d[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    o->len += (size_t)bytes + 1;
}

static inline void put_uint(wbuf *o, uint64_t v)
{
    if (v < 128)
        o->data[o->len++] = (uint8_t)v;
    else if (v < 256)
        put_be(o, 0xcc, v, 1);
    else if (v < 65536)
        put_be(o, 0xcd, v, 2);
    else if (v <= 0xffffffffu)
        put_be(o, 0xce, v, 4);
    else
        put_be(o, 0xcf, v, 8);
}

static inline void put_neg(wbuf *o, int64_t v) /* v < 0 */
{
    if (v >= -32)
        o->data[o->len++] = (uint8_t)(int8_t)v;
    else if (v >= -128)
        put_be(o, 0xd0, (uint8_t)(int8_t)v, 1);
    else if (v >= -32768)
        put_be(o, 0xd1, (uint16_t)(int16_t)v, 2);
    else if (v >= INT32_MIN)
        put_be(o, 0xd2, (uint32_t)(int32_t)v, 4);
    else
        put_be(o, 0xd3, (uint64_t)v, 8);
}

static inline void put_double(wbuf *o, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    put_be(o, 0xcb, u, 8);
}

#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

static const uint8_t jstop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};

/* Position of the first '"', '\\' or control byte at or after s (or e):
 * 8 bytes at a time while far from the end, then by a table. */
static inline const uint8_t *str_scan(const uint8_t *s, const uint8_t *e)
{
    while (e - s >= 8) {
        if (jstop[s[0]])
            return s;
        if (jstop[s[1]])
            return s + 1;
        if (jstop[s[2]])
            return s + 2;
        if (jstop[s[3]])
            return s + 3;
        uint64_t w;
        memcpy(&w, s, 8);
        uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
        uint64_t m = ((q - ONES) & ~q) | ((b - ONES) & ~b) | ((w - ONES * 0x20) & ~w);
        m &= HIGHS;
        if (m)
            return s + (__builtin_ctzll(m) >> 3);
        s += 8;
    }
    while (s < e && !jstop[*s])
        s++;
    return s;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int hex4(const uint8_t *p, const uint8_t *e, uint32_t *v)
{
    if (e - p < 4)
        return -1;
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0)
            return -1;
        x = x << 4 | (uint32_t)h;
    }
    *v = x;
    return 0;
}

static size_t utf8_put(uint8_t *d, uint32_t cp)
{
    if (cp < 0x80) {
        d[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (uint8_t)(0xc0 | cp >> 6);
        d[1] = (uint8_t)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (uint8_t)(0xe0 | cp >> 12);
        d[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        d[2] = (uint8_t)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (uint8_t)(0xf0 | cp >> 18);
    d[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    d[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    d[3] = (uint8_t)(0x80 | (cp & 0x3f));
    return 4;
}

/* The code point of a \uXXXX escape (*p just after the 'u'), joining a
 * surrogate pair; a lone surrogate becomes U+FFFD. -1 (and *p unmoved) when
 * the four hex digits are not there. */
static int u_escape(const uint8_t **pp, const uint8_t *e, uint32_t *cp)
{
    const uint8_t *p = *pp;
    if (hex4(p, e, cp))
        return -1;
    p += 4;
    if (*cp >= 0xd800 && *cp <= 0xdbff) {
        uint32_t lo;
        if (e - p >= 6 && p[0] == '\\' && p[1] == 'u' && hex4(p + 2, e, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
            *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
            p += 6;
        } else {
            *cp = 0xfffd;
        }
    } else if (*cp >= 0xdc00 && *cp <= 0xdfff) {
        *cp = 0xfffd;
    }
    *pp = p;
    return 0;
}

/* At the opening quote: write a msgpack str; *pay, *plen tell where its bytes are in o. */
static int j_string(jp *j, size_t *pay, size_t *plen)
{
    const uint8_t *s = j->p + 1, *e = j->e;
    const uint8_t *q = str_scan(s, e);
    if (q >= e)
        return -1;
    wbuf *o = j->o;
    if (*q == '"') {
        size_t n = (size_t)(q - s), hs = str_hdr_size(n);
        uint8_t *d = o->data + o->len;
        str_hdr_put(d, n, hs);
        memcpy(d + hs, s, n);
        *pay = o->len + hs;
        *plen = n;
        o->len += hs + n;
        j->p = q + 1;
        return 0;
    }
    if (*q < 0x20)
        return -1;
    /* escapes: find the closing quote to bound the decoded length */
    const uint8_t *r = q;
    for (;;) {
        r = str_scan(r, e);
        if (r >= e || *r < 0x20)
            return -1;
        if (*r == '"')
            break;
        r += 2; /* backslash + escaped byte */
        if (r > e)
            return -1;
    }
    size_t raw = (size_t)(r - s), hs = str_hdr_size(raw);
    size_t h0 = o->len;
    uint8_t *d = o->data + h0 + hs, *d0 = d;
    const uint8_t *p = s;
    while (p < r) {
        const uint8_t *t = str_scan(p, r);
        memcpy(d, p, (size_t)(t - p));
        d += t - p;
        p = t;
        if (p >= r)
            break;
        /* *p == '\\' */
        p++;
        switch (*p++) {
        case '"': *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '/': *d++ = '/'; break;
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'n': *d++ = '\n'; break;
        case 'r': *d++ = '\r'; break;
        case 't': *d++ = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (u_escape(&p, r, &cp))
                return -1;
            /* \uXXXX is 6 bytes for at most 3 out; a pair is 12 for 4 */
            d += utf8_put(d, cp);
            break;
        }
        default: return -1;
        }
    }
    size_t n = (size_t)(d - d0), hn = str_hdr_size(n);
    if (hn != hs)
        memmove(o->data + h0 + hn, o->data + h0 + hs, n);
    str_hdr_put(o->data + h0, n, hn);
    *pay = h0 + hn;
    *plen = n;
    o->len = h0 + hn + n;
    j->p = r + 1;
    return 0;
}

static const double pow10tab[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int j_number(jp *j)
{
    const uint8_t *s = j->p, *p = s, *e = j->e;
    int neg = 0;
    if (p < e && *p == '-')
        neg = 1, p++;
    if (p >= e)
        return -1;
    uint64_t mant = 0;
    int ndig = 0, overflow = 0, isfloat = 0, exp10 = 0;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9') {
            if (ndig < 19)
                mant = mant * 10 + (uint64_t)(*p - '0');
            else if (ndig == 19 && mant <= (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
                mant = mant * 10 + (uint64_t)(*p - '0');
            else
                overflow = 1, exp10++;
            ndig++;
            p++;
        }
    } else {
        return -1;
    }
    if (p < e && *p == '.') {
        p++;
        isfloat = 1;
        if (p >= e || *p < '0' || *p > '9')
            return -1;
        while (p < e && *p >= '0' && *p <= '9') {
            if (!overflow && mant < 100000000000000000ull) {
                mant = mant * 10 + (uint64_t)(*p - '0');
                exp10--;
            } else {
                overflow = 1;
            }
            p++;
        }
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        isfloat = 1;
        int eneg = 0, ev = 0;
        if (p < e && (*p == '+' || *p == '-'))
            eneg = *p++ == '-';
        if (p >= e || *p < '0' || *p > '9')
            return -1;
        while (p < e && *p >= '0' && *p <= '9') {
            if (ev < 100000)
                ev = ev * 10 + (*p - '0');
            p++;
        }
        exp10 += eneg ? -ev : ev;
    }
    j->p = p;
    if (!isfloat && !overflow) {
        if (!neg || mant == 0) {
            put_uint(j->o, mant);
            return 0;
        }
        if (mant <= (uint64_t)INT64_MAX + 1) {
            put_neg(j->o, mant == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mant);
            return 0;
        }
    }
    double d;
    if (!overflow && mant < (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
        d = (double)mant;
        d = exp10 < 0 ? d / pow10tab[-exp10] : d * pow10tab[exp10];
        if (neg)
            d = -d;
    } else {
        char buf[512];
        size_t l = (size_t)(p - s);
        char *tmp = l < sizeof buf ? buf : malloc(l + 1);
        if (!tmp)
            return -1;
        memcpy(tmp, s, l);
        tmp[l] = 0;
        d = strtod(tmp, NULL);
        if (tmp != buf)
            free(tmp);
    }
    put_double(j->o, d);
    return 0;
}

static int j_value(jp *j, int depth);

/* A container whose count is known at the end: 1 byte reserved (fix*),
 * the body moved when the count needs 3 or 5. */
static int j_close(jp *j, size_t hoff, uint32_t n, int is_map)
{
    wbuf *o = j->o;
    if (n < 16) {
        o->data[hoff] = (uint8_t)((is_map ? 0x80 : 0x90) | n);
        return 0;
    }
    size_t hs = n < 65536 ? 3 : 5, body = o->len - hoff - 1;
    if (o->cap - o->len < hs - 1 + 3 * (size_t)(j->e - j->p) + 16 && wbuf_grow(o, hs - 1 + 3 * (size_t)(j->e - j->p) + 16))
        return -1;
    memmove(o->data + hoff + hs, o->data + hoff + 1, body);
    uint8_t *d = o->data + hoff;
    if (hs == 3)
        d[0] = is_map ? 0xde : 0xdc, d[1] = (uint8_t)(n >> 8), d[2] = (uint8_t)n;
    else
        d[0] = is_map ? 0xdf : 0xdd, d[1] = (uint8_t)(n >> 24), d[2] = (uint8_t)(n >> 16), d[3] = (uint8_t)(n >> 8),
        d[4] = (uint8_t)n;
    o->len += hs - 1;
    return 0;
}

static int j_container(jp *j, int depth, int is_map)
{
    if (depth > JSON_MAX_DEPTH)
        return -1;
    j->p++; /* '{' or '[' */
    size_t hoff = j->o->len++;
    uint32_t n = 0;
    ws(j);
    uint8_t close = is_map ? '}' : ']';
    if (j->p < j->e && *j->p == close) {
        j->p++;
        return j_close(j, hoff, 0, is_map);
    }
    for (;;) {
        if (is_map) {
            size_t pay, plen;
            if (j->p >= j->e || *j->p != '"' || j_string(j, &pay, &plen))
                return -1;
            ws(j);
            if (j->p >= j->e || *j->p != ':')
                return -1;
            j->p++;
            ws(j);
        }
        if (j_value(j, depth + 1))
            return -1;
        n++;
        ws(j);
        if (j->p >= j->e)
            return -1;
        if (*j->p == ',') {
            j->p++;
            ws(j);
            continue;
        }
        if (*j->p == close) {
            j->p++;
            return j_close(j, hoff, n, is_map);
        }
        return -1;
    }
}

static int j_lit(jp *j, const char *lit, size_t n, uint8_t code)
{
    if ((size_t)(j->e - j->p) < n || memcmp(j->p, lit, n))
        return -1;
    j->p += n;
    j->o->data[j->o->len++] = code;
    return 0;
}

static int j_value(jp *j, int depth)
{
    if (j->p >= j->e)
        return -1;
    size_t pay, plen;
    switch (*j->p) {
    case '"': return j_string(j, &pay, &plen);
    case '{': return j_container(j, depth, 1);
    case '[': return j_container(j, depth, 0);
    case 't': return j_lit(j, "true", 4, 0xc3);
    case 'f': return j_lit(j, "false", 5, 0xc2);
    case 'n': return j_lit(j, "null", 4, 0xc0);
    default: return j_number(j);
    }
}

/* The top-level object: like j_container, plus time key and conversions. */
static int j_top(jp *j, pctx *c)
{
    if (JRESERVE(j))
        return -1;
    ws(j);
    if (j->p >= j->e || *j->p != '{')
        return -1;
    j->p++;
    size_t hoff = j->o->len++;
    c->body0 = j->o->len; /* keys are noted relative to the body: the header may still grow */
    const parser *p = c->p;
    ws(j);
    if (j->p < j->e && *j->p == '}') {
        j->p++;
    } else {
        for (;;) {
            size_t pair_off = j->o->len, kpay, klen;
            if (j->p >= j->e || *j->p != '"' || j_string(j, &kpay, &klen))
                return -1;
            ws(j);
            if (j->p >= j->e || *j->p != ':')
                return -1;
            j->p++;
            ws(j);
            size_t voff = j->o->len;
            if (j_value(j, 1))
                return -1;
            if (!p->convert && (!p->tkey || klen != p->tkey_len)) {
                c->count++; /* the common case: nothing to look at */
                note_key(c, kpay, klen);
            } else {
                if (pair_done(c, pair_off, kpay, klen, voff) || JRESERVE(j))
                    return -1;
            }
            ws(j);
            if (j->p >= j->e)
                return -1;
            if (*j->p == ',') {
                j->p++;
                ws(j);
                continue;
            }
            if (*j->p == '}') {
                j->p++;
                break;
            }
            return -1;
        }
    }
    ws(j);
    if (j->p != j->e)
        return -1; /* trailing garbage */
    return j_close(j, hoff, c->count, 1);
}

/* ---- the other formats ------------------------------------------------------------------------ */

static int do_regexp(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    const parser *p = c->p;
    if (!rx_utf8_valid(s, n))
        return PARSE_BADUTF8;
    const PCRE2_SIZE *ov;
    int rc = rx_exec(&p->expr, s, n, &ov);
    if (rc == 0)
        return PARSE_NOMATCH;
    if (rc < 0) {
        if (err && errlen)
            snprintf(err, errlen, "regexp match failed (match limit?)");
        return PARSE_FAIL;
    }
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
        if (put_pair(c, nm->name, nm->len, s + ovc[2 * g], ovc[2 * g + 1] - ovc[2 * g]))
            goto out;
    }
    ret = rec_hdr_close(c->o, &h, c->count) ? PARSE_FAIL : PARSE_OK;
out:
    if (ovc != ovs)
        free(ovc);
    return ret;
}

static int do_cri(pctx *c, const uint8_t *s, size_t n)
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
    if (put_pair(c, p->tkey, p->tkey_len, s, (size_t)(t_end - s)) ||
        put_pair(c, "stream", 6, st, (size_t)(st_end - st)) || put_pair(c, "logtag", 6, tg, (size_t)(tg_end - tg)) ||
        put_pair(c, p->mkey, p->mkey_len, log, (size_t)(log_end - log)))
        return PARSE_FAIL;
    return rec_hdr_close(c->o, &h, c->count) ? PARSE_FAIL : PARSE_OK;
}

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
    size_t hs = str_hdr_size(vl), h0 = o->len;
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
        switch (ch) {
        case 'n': *d++ = '\n'; break;
        case 't': *d++ = '\t'; break;
        case 'r': *d++ = '\r'; break;
        case 'b': *d++ = '\b'; break;
        case 'f': *d++ = '\f'; break;
        case 'u': {
            uint32_t cp;
            if (u_escape(&p, e, &cp) == 0)
                d += utf8_put(d, cp);
            else
                *d++ = 'u';
            break;
        }
        default: *d++ = ch; break; /* \" \\ \/ and anything else: the byte itself */
        }
    }
    size_t n = (size_t)(d - d0), hn = str_hdr_size(n);
    if (hn != hs)
        memmove(o->data + h0 + hn, o->data + h0 + hs, n);
    str_hdr_put(o->data + h0, n, hn);
    o->len = h0 + hn + n;
    return 0;
}

static int do_logfmt(pctx *c, const uint8_t *s, size_t n)
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
        if (rc || pair_done(c, pair_off, kpay, kl, voff))
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
    switch (p->type) {
    case PARSE_JSON: {
        jp j = {u, u + n, out_map};
        rc = j_top(&j, &c) ? PARSE_NOMATCH : PARSE_OK;
        break;
    }
    case PARSE_REGEXP: rc = do_regexp(&c, u, n, err, errlen); break;
    case PARSE_CRI: rc = do_cri(&c, u, n); break;
    case PARSE_LOGFMT: rc = do_logfmt(&c, u, n); break;
    case PARSE_NONE: {
        rec_hdr h;
        rc = PARSE_FAIL;
        if (rec_hdr_open(out_map, &h, 1, 1) == 0) {
            c.body0 = out_map->len;
            if (put_pair(&c, p->mkey, p->mkey_len, u, n) == 0 && rec_hdr_close(out_map, &h, c.count) == 0)
                rc = PARSE_OK;
        }
        break;
    }
    default: rc = PARSE_FAIL; break;
    }
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
