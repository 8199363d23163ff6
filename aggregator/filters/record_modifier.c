/*
 * aggregator/filters/record_modifier.c: fluent-plugin-record-modifier's
 * record_modifier on record_transformer's templates and record edits
 * (rt_impl.h), with the plugin's own rules: a <record> key is literal text,
 * a value is a template whose ${...} are Ruby (aggregator/ruby_expr.h);
 * <replace> gsubs a key's string value when its expression matches;
 * allowlist_keys (whitelist_keys) when remove_keys is not set;
 * char_encoding (the UTF-8 forms, and byte encodings to UTF-8); prepare_value
 * as `@name = expr` statements in the same Ruby subset, evaluated once at
 * start, their @names usable in every ${...} (rb_prepare).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/array.h"
#include "aggregator/filters/rt_impl.h"
#include "aggregator/ruby_expr.h"

static const conf_spec rm_spec[] = {
    {"record", CONF_SECTION, NULL, 0, 0, NULL,
     "`key value` pairs to set: the key as written, the value a template (`${tag}`, `${tag_parts[N]}`, "
     "`${record[\"key\"]}`, `${hostname}`, `${time}`); a value that is one whole placeholder keeps the value's type"},
    {"remove_keys", CONF_ARRAY, NULL, 0, offsetof(rt_ctx, remove_keys), NULL,
     "top-level keys removed after `<record>` is applied"},
    {"allowlist_keys", CONF_ARRAY, NULL, 0, offsetof(rt_ctx, allowlist_keys), NULL,
     "keep only these top-level keys (in the record's order); ignored when `remove_keys` is set"},
    {"whitelist_keys", CONF_ARRAY, NULL, 0, offsetof(rt_ctx, whitelist_keys), NULL,
     "the plugin's older name of `allowlist_keys`"},
    {"char_encoding", CONF_STR, NULL, 0, offsetof(rt_ctx, char_encoding), NULL,
     "`FROM` or `FROM:TO` for the top-level string values: `utf-8` and `utf-8:utf-8` change nothing; "
     "`ascii-8bit:utf-8` (`binary`, `us-ascii`) turns every byte >= 0x80 into U+FFFD as Ruby's `encode!` "
     "with `:replace`; other encodings are refused"},
    {"prepare_value", CONF_STR, NULL, 0, offsetof(rt_ctx, prepare_value), NULL,
     "Ruby run once at start: `@name = expression` statements (separated by `;` or line breaks; `require` "
     "skipped) in the Ruby subset of `${...}`; each `@name` is then usable in `<record>` and `<replace>` "
     "expressions. Other statements are refused"},
    {"replace", CONF_SECTION, NULL, 0, 0, NULL,
     "`<replace>` with `key`, `expression` (`/re/flags`) and `replace` (`\\1`, `\\k<name>`): the key's string value "
     "becomes its `gsub` when the expression matches, after `<record>`"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* "utf-8", "UTF8" -> 1; the byte encodings Ruby converts from with every
 * high byte undefined -> 2; anything else 0 */
static int enc_kind(const char *s, size_t n)
{
    static const char *const utf8[] = {"utf-8", "utf8", NULL};
    static const char *const bytes[] = {"ascii-8bit", "binary", "us-ascii", "ascii", NULL};
    for (size_t i = 0; utf8[i]; i++)
        if (strlen(utf8[i]) == n && !strncasecmp(s, utf8[i], n))
            return 1;
    for (size_t i = 0; bytes[i]; i++)
        if (strlen(bytes[i]) == n && !strncasecmp(s, bytes[i], n))
            return 2;
    return 0;
}

/* text as a Ruby single-quoted string literal */
static void ruby_quote(wbuf *b, const char *s)
{
    wbuf_addc(b, '\'');
    for (; *s; s++) {
        if (*s == '\\' || *s == '\'')
            wbuf_addc(b, '\\');
        wbuf_addc(b, *s);
    }
    wbuf_addc(b, '\'');
}

static int rm_replace_compile(rt_ctx *c, conf_node *r, conf_errors *errs)
{
    const char *names[] = {"key", "expression", "replace"}, *v[3];
    for (int i = 0; i < 3; i++)
        if (!(v[i] = conf_get_value(r, names[i]))) {
            conf_errors_add(errs, r->file, r->line, "<replace> needs '%s' (key, expression and replace)", names[i]);
            return -1;
        }
    for (size_t k = 0; k < r->nparams; k++)
        if (!r->params[k].used) {
            conf_errors_add(errs, r->params[k].file, r->params[k].line,
                            "unknown parameter '%s' in <replace> (key, expression, replace)", r->params[k].key);
            return -1;
        }
    /* the expression as a Ruby regexp literal: /re/flags as written, a bare pattern between slashes */
    wbuf re = {0}, code = {0};
    size_t el = strlen(v[1]);
    const char *last = strrchr(v[1], '/');
    if (v[1][0] == '/' && last && last > v[1] && strspn(last + 1, "imx") == strlen(last + 1)) {
        wbuf_add(&re, v[1], el);
    } else {
        wbuf_addc(&re, '/');
        for (const char *p = v[1]; *p; p++) {
            if (*p == '/' && (p == v[1] || p[-1] != '\\'))
                wbuf_addc(&re, '\\');
            wbuf_addc(&re, *p);
        }
        wbuf_addc(&re, '/');
    }
    for (int part = 0; part < 3; part++) { /* r.match?(RE) ? r.gsub(RE, 'REP') : r */
        wbuf_add(&code, "record[", 7);
        ruby_quote(&code, v[0]);
        wbuf_addc(&code, ']');
        if (part == 0) {
            wbuf_add(&code, ".match?(", 8);
            wbuf_add(&code, re.data, re.len);
            wbuf_add(&code, ") ? ", 4);
        } else if (part == 1) {
            wbuf_add(&code, ".gsub(", 6);
            wbuf_add(&code, re.data, re.len);
            wbuf_add(&code, ", ", 2);
            ruby_quote(&code, v[2]);
            wbuf_add(&code, ") : ", 4);
        }
    }
    wbuf_addc(&code, 0);
    char why[256];
    rm_replace rr = {strdup(v[0]), rb_compile((const char *)code.data, code.len - 1, why, sizeof why),
                     strdup((const char *)code.data)};
    wbuf_free(&re);
    wbuf_free(&code);
    if (!rr.rb) {
        conf_param *ep = conf_get(r, "expression");
        conf_errors_add(errs, ep->file, ep->line, "<replace>: %s", why);
        free(rr.key);
        free(rr.code);
        return -1;
    }
    if (ARRAY_APPEND(c->replaces, c->nreplaces, rr)) {
        rb_free(rr.rb);
        free(rr.key);
        free(rr.code);
        return -1;
    }
    return 0;
}

/* <replace>s on the map at out[start ..): each key present is rewritten with its value's gsub */
int rm_replaces(const rt_ctx *c, filter_call *call, wbuf *out, size_t start, wbuf *sc)
{
    for (size_t i = 0; i < c->nreplaces; i++) {
        const rm_replace *r = &c->replaces[i];
        size_t vl, kl = strlen(r->key);
        if (!rec_get(out->data + start, out->len - start, r->key, kl, &vl))
            continue;
        rb_env env = {call->tag, call->tag_len, call->sec, call->nsec, out->data + start, out->len - start,
                      c->hostname, c->hostname_len};
        size_t vo = sc->len;
        char why[200];
        if (rb_eval_value(r->rb, &env, sc, why, sizeof why)) {
            snprintf(call->err, sizeof call->err, "record_modifier: <replace> of '%s' failed: %s", r->key, why);
            return -1;
        }
        size_t ro = sc->len;
        if (rec_add(sc, out->data + start, out->len - start))
            return -1;
        rec_kv set = {r->key, kl, sc->data + vo, ro - vo};
        out->len = start;
        if (rec_rewrite_n(out, sc->data + ro, sc->len - ro, NULL, 0, &set, 1))
            return -1;
        sc->len = vo;
    }
    return 0;
}

static int rm_init(filter *f, conf_node *n, conf_errors *errs)
{
    rt_ctx *c = f->ctx;
    int bad = 0;
    c->modifier = 1;
    c->auto_typecast = 1;
    /* prepare_value: its @variables, evaluated now, are constants of the expressions compiled below */
    rb_ivars iv = {0};
    if (c->prepare_value) {
        char why[400];
        if (rb_prepare(c->prepare_value, strlen(c->prepare_value), &iv, why, sizeof why)) {
            conf_error_at(errs, n, "prepare_value", "%s", why);
            bad = -1;
        }
    }

    if (c->char_encoding) {
        const char *s = c->char_encoding, *colon = strchr(s, ':');
        int from = enc_kind(s, colon ? (size_t)(colon - s) : strlen(s));
        int to = colon ? enc_kind(colon + 1, strlen(colon + 1)) : 1;
        if (!colon && from)
            ; /* force_encoding only: the bytes stay as they are */
        else if (from && to == 1)
            c->enc_binary = from == 2;
        else {
            conf_error_at(errs, n, "char_encoding",
                          "char_encoding '%s' is not supported: weir keeps strings as UTF-8; accepted: utf-8, "
                          "utf-8:utf-8, ascii-8bit:utf-8 (binary, us-ascii)",
                          s);
            bad = -1;
        }
    }
    c->allow = c->remove_keys ? NULL : c->allowlist_keys ? c->allowlist_keys : c->whitelist_keys;
    rb_ivars_use(&iv);
    for (size_t i = 0; i < n->nchildren; i++)
        if (!strcmp(n->children[i]->name, "replace") && rm_replace_compile(c, n->children[i], errs))
            bad = -1;
    if (rt_compile(c, n, errs))
        bad = -1;
    rb_ivars_use(NULL);
    rb_ivars_free(&iv);
    return bad;
}

static int in_list(char *const *list, const uint8_t *k, size_t kl)
{
    for (size_t i = 0; list[i]; i++)
        if (strlen(list[i]) == kl && !memcmp(list[i], k, kl))
            return 1;
    return 0;
}

/* record_modifier after the edits: allowlist_keys, then char_encoding, on
 * the map at out[start ..) (rewritten in place through scratch) */
int rm_post(const rt_ctx *c, wbuf *out, size_t start, wbuf *sc)
{
    if (!c->allow && !c->enc_binary)
        return 0;
    size_t so = sc->len;
    if (rec_add(sc, out->data + start, out->len - start))
        return -1;
    out->len = start;
    const uint8_t *p = sc->data + so, *end = sc->data + sc->len;
    mp_obj m;
    if (mp_read(&p, end, &m) != MP_OK || m.type != MP_MAP)
        return -1;
    rec_hdr h;
    uint32_t kept = 0;
    if (rec_hdr_open(out, &h, 1, m.len))
        return -1;
    for (uint32_t i = 0; i < m.len; i++) {
        const uint8_t *k0 = p, *kp, *vp;
        uint32_t kl, vl;
        if (rec_read_str(&p, end, &kp, &kl) != 1)
            return -1;
        const uint8_t *v0 = p;
        int isstr = rec_read_str(&p, end, &vp, &vl);
        if (isstr < 0 || (!isstr && rec_skip(&p, end)))
            return -1;
        if (c->allow && !in_list(c->allow, kp, kl))
            continue;
        kept++;
        if (rec_add(out, k0, (size_t)(v0 - k0)))
            return -1;
        int high = 0;
        for (uint32_t j = 0; isstr == 1 && c->enc_binary && j < vl && !high; j++)
            high = vp[j] >= 0x80;
        if (!high) {
            if (rec_add(out, v0, (size_t)(p - v0)))
                return -1;
            continue;
        }
        size_t off;
        if (rec_str_open(out, &off))
            return -1;
        for (uint32_t j = 0; j < vl; j++)
            if (vp[j] < 0x80 ? wbuf_addc(out, vp[j]) : wbuf_add(out, "\xef\xbf\xbd", 3))
                return -1;
        if (rec_str_close(out, off))
            return -1;
    }
    sc->len = so;
    return rec_hdr_close(out, &h, kept);
}

typedef rt_ctx rm_ctx;
#define rm_filter rt_filter
#define rm_exit rt_exit
FILTER_PLUGIN(record_modifier, rm);
