/*
 * aggregator/parse_conv.c: the <parse> section's `types` parameter
 * (Fluentd's Parser types): "key:type,..." or a JSON hash, with the types
 * string, integer, float, bool, time[:format | :unixtime | :float |
 * :timezone:format] and array[:delimiter]; applied to each pair by
 * parse_pair_done (parse.c). See parse_impl.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/array.h"
#include "lib/json_mp.h"
#include "lib/mp.h"
#include "aggregator/parse_impl.h"
#include "aggregator/record.h"

/* ---- configuration ---------------------------------------------------------------------- */

int parse_conv_add(parser *p, const char *key, size_t klen, const char *def, const conf_param *at, conf_errors *errs)
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
    parse_conv *c = ARRAY_PUSH(p->conv, p->nconv);
    if (!c)
        return -1;
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

int parse_conv_configure(parser *p, const conf_param *at, conf_errors *errs)
{
    const char *s = p->types;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '{') {
        /* {"key":"type", ...}: read with the JSON converter of the json parse type
         * (starting with '{', valid JSON is an object) */
        wbuf m = {0};
        int bad = 0;
        const uint8_t *q, *end;
        mp_obj o;
        if (json_mp(&m, (const uint8_t *)s, strlen(s)) != 0) {
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
            if (!def || parse_conv_add(p, (const char *)k.ptr, k.len, def, at, errs))
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
        if (parse_conv_add(p, k, kl, d, at, errs))
            bad = -1;
    }
    free(copy);
    return bad;
}

/* ---- conversions ------------------------------------------------------------------------ */

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
int parse_conv_apply(const parse_conv *c, wbuf *o, size_t voff)
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
        if (is_str)
            d = ruby_str_to_f((const char *)x.ptr, x.len);
        else
            mp_number(&x, &d);
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
