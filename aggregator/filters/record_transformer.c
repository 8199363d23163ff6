/*
 * aggregator/filters/record_transformer.c: Fluentd's filter_record_transformer
 * (enable_ruby false, the default, and true: the Ruby subset of
 * aggregator/ruby_expr.h), and the templates and record edits
 * fluent-plugin-record-modifier's record_modifier (record_modifier.c) shares.
 *
 * <record> values (and keys) are templates with Fluentd's placeholders:
 *   ${tag} ${tag_parts[N]} ${tag_prefix[N]} ${tag_suffix[N]} (N < 0 counts
 *   from the end) ${hostname} ${time} ("2026-11-21 23:17:55 +0000", local
 *   time, Ruby's Time#to_s) ${record["key"]} and, as a weir extension,
 *   nested ${record["a"]["b"]} / ${record["a"][0]}.
 * A value that is exactly one placeholder keeps the original type when
 * auto_typecast is true (Fluentd v1's default), anything else is a string.
 * A value starting with '{' or '[' is JSON (expanded recursively). Text of
 * the form __UPPER__ is replaced by nothing (Fluentd treats it as an unknown
 * placeholder). Any other ${...} (Ruby code) is a configuration error unless
 * enable_ruby is true: then it is a Ruby expression (ruby_expr.h), and so
 * are record_modifier's; a Ruby error at run time fails the record (@ERROR).
 *
 * Order per record, like Fluentd: new = renew_record ? {keep_keys of the
 * record} : record; new.merge!(<record>); renew_time_key; remove_keys
 * (record accessors, applied last).
 *
 * record_modifier (the `modifier` flag) differs where the plugin does: a
 * <record> key is literal text and a value is a plain template (no JSON, no
 * __UPPER__); a value that is one whole ${...} keeps its type (the Ruby
 * value); ${time} is the EventTime (as text: its seconds); remove_keys are
 * top-level key names; allowlist_keys (whitelist_keys) keep the listed keys
 * in the record's order when remove_keys is not set, and <replace> and
 * char_encoding (record_modifier.c).
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/array.h"
#include "lib/timefmt.h"
#include "aggregator/timeparse.h"
#include "aggregator/filters/rt_impl.h"


static const conf_spec rt_spec[] = {
    {"remove_keys", CONF_ARRAY, NULL, 0, offsetof(rt_ctx, remove_keys), NULL,
     "record accessors removed, applied last (also to keys `<record>` added)"},
    {"keep_keys", CONF_ARRAY, NULL, 0, offsetof(rt_ctx, keep_keys), NULL,
     "with `renew_record true` (required): the record keys to keep, in this order"},
    {"renew_record", CONF_BOOL, "false", 0, offsetof(rt_ctx, renew_record), NULL, "start from an empty record"},
    {"renew_time_key", CONF_STR, NULL, 0, offsetof(rt_ctx, renew_time_key), NULL,
     "the (merged) record's value at this key becomes the event time (`to_f`: numbers, numeric strings; other types "
     "reject the record)"},
    {"enable_ruby", CONF_BOOL, "false", 0, offsetof(rt_ctx, enable_ruby), NULL,
     "`true`: each `${...}` is a Ruby expression, evaluated without Ruby (the subset under \"Ruby expressions\" "
     "below; other code is a configuration error)"},
    {"auto_typecast", CONF_BOOL, "true", 0, offsetof(rt_ctx, auto_typecast), NULL,
     "a value that is exactly one placeholder keeps the original type (`${record[\"n\"]}` stays an integer, a "
     "missing key gives nil)"},
    {"record", CONF_SECTION, NULL, 0, 0, NULL,
     "`key value` pairs to set; keys and values are templates (placeholders below)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};


/* ---- templates ---------------------------------------------------------------------------- */

static int add_part(tstr *t, tpart p) { return ARRAY_APPEND(t->parts, t->n, p); }

static int add_lit(tstr *t, const char *s, size_t n)
{
    if (!n)
        return 0;
    if (t->n && t->parts[t->n - 1].kind == PH_LIT) {
        tpart *l = &t->parts[t->n - 1];
        char *nl = realloc(l->lit, l->len + n + 1);
        if (!nl)
            return -1;
        memcpy(nl + l->len, s, n);
        l->len += n;
        nl[l->len] = 0;
        l->lit = nl;
        return 0;
    }
    tpart p = {PH_LIT, strndup(s, n), n, 0, {0}, NULL, NULL};
    return p.lit ? add_part(t, p) : -1;
}

static int classify(const char *c, size_t n, tpart *p, char *why, size_t whylen)
{
    memset(p, 0, sizeof *p);
    static const struct {
        const char *name;
        int kind;
    } simple[] = {{"tag", PH_TAG}, {"hostname", PH_HOST}, {"time", PH_TIME}};
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++) {
        if (strlen(simple[i].name) == n && !memcmp(c, simple[i].name, n)) {
            p->kind = simple[i].kind;
            return 0;
        }
    }
    static const struct {
        const char *prefix;
        int kind;
    } arr[] = {{"tag_parts[", PH_TAG_PART}, {"tag_prefix[", PH_TAG_PREFIX}, {"tag_suffix[", PH_TAG_SUFFIX}};
    for (size_t i = 0; i < sizeof arr / sizeof arr[0]; i++) {
        size_t pl = strlen(arr[i].prefix);
        if (n > pl + 1 && !memcmp(c, arr[i].prefix, pl) && c[n - 1] == ']' &&
            rec_parse_index(c + pl, n - pl - 1, 1, &p->index) == 0) {
            p->kind = arr[i].kind;
            return 0;
        }
    }
    if (n > 7 && !memcmp(c, "record[", 7) && c[n - 1] == ']') {
        /* record["a"]["b"] -> the accessor $["a"]["b"] */
        char *acc = malloc(n - 6 + 2);
        if (!acc)
            return -1;
        acc[0] = '$';
        memcpy(acc + 1, c + 6, n - 6);
        acc[n - 5] = 0;
        char err[256];
        int rc = rec_path_compile(&p->path, acc, err, sizeof err);
        free(acc);
        if (rc == 0) {
            p->kind = PH_RECORD;
            return 0;
        }
        snprintf(why, whylen, "%s", err);
        return -1;
    }
    why[0] = 0;
    return -1;
}

/* mode: TM_RT record_transformer; TM_RUBY record_transformer with
 * enable_ruby; TM_RM record_modifier's value (Ruby, nested record[..][..]
 * read as accessors); TM_TEXT literal text (record_modifier's key) */
enum { TM_RT, TM_RM, TM_TEXT, TM_RUBY };

/* ${code} in Ruby mode: a plain placeholder when it is one (the same
 * value as Ruby's), else the Ruby expression compiled */
static int ruby_part(const char *code, size_t cl, int mode, tpart *p, const conf_param *at, conf_errors *errs)
{
    char why[256];
    if (classify(code, cl, p, why, sizeof why) == 0 && (mode == TM_RM || p->kind != PH_RECORD || p->path.n == 1))
        return 0;
    rec_path_free(&p->path);
    memset(p, 0, sizeof *p);
    p->kind = PH_RUBY;
    p->rb = rb_compile(code, cl, why, sizeof why);
    p->code = strndup(code, cl);
    if (!p->rb || !p->code) {
        conf_errors_add(errs, at->file, at->line, "unsupported Ruby in <record>: '${%.*s}': %s", (int)cl, code,
                        p->rb ? "out of memory" : why);
        rb_free(p->rb);
        free(p->code);
        return -1;
    }
    return 0;
}

static int tstr_compile(tstr *t, const char *s, const conf_param *at, conf_errors *errs, int mode)
{
    memset(t, 0, sizeof *t);
    size_t n = strlen(s), lit = 0, i = mode == TM_TEXT ? n : 0;
    int ruby = mode == TM_RUBY || mode == TM_RM;
    while (i < n) {
        if (s[i] == '$' && i + 1 < n && s[i + 1] == '{') {
            const char *close = ruby ? rb_code_end(s + i + 2, s + n) : memchr(s + i + 2, '}', n - i - 2);
            if (close && close > s + i + 2) {
                size_t cl = (size_t)(close - (s + i + 2));
                tpart p;
                char why[256];
                if (ruby) {
                    if (ruby_part(s + i + 2, cl, mode, &p, at, errs))
                        return -1;
                } else if (classify(s + i + 2, cl, &p, why, sizeof why) != 0) {
                    conf_errors_add(errs, at->file, at->line,
                                    "unsupported placeholder '%.*s' in <record>%s%s: weir does not run Ruby; use "
                                    "${tag}, ${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]}, ${hostname}, "
                                    "${time} or ${record[\"key\"]} (or enable_ruby true for Ruby expressions)",
                                    (int)(cl + 3), s + i, why[0] ? " (" : "", why[0] ? why : "");
                    return -1;
                }
                if (add_lit(t, s + lit, i - lit) || add_part(t, p))
                    return -1;
                t->dynamic = 1;
                i = (size_t)(close - s) + 1;
                lit = i;
                continue;
            }
        }
        if (mode == TM_RT && s[i] == '_' && i + 1 < n && s[i + 1] == '_') {
            /* __[A-Z_]+__ (greedy, backtracking to the last "__") */
            size_t r = i + 2;
            while (r < n && ((s[r] >= 'A' && s[r] <= 'Z') || s[r] == '_'))
                r++;
            size_t j = r >= 2 ? r - 2 : 0;
            while (j >= i + 3 && !(s[j] == '_' && s[j + 1] == '_'))
                j--;
            if (j >= i + 3 && r >= i + 5) {
                tpart p = {PH_NIL, NULL, 0, 0, {0}, NULL, NULL};
                if (add_lit(t, s + lit, i - lit) || add_part(t, p))
                    return -1;
                t->dynamic = 1;
                i = j + 2;
                lit = i;
                continue;
            }
        }
        i++;
    }
    if (add_lit(t, s + lit, n - lit))
        return -1;
    if (!t->dynamic) {
        t->text = strdup(s);
        t->text_len = n;
        if (!t->text)
            return -1;
    }
    return 0;
}

static void tstr_free(tstr *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->parts[i].lit);
        rec_path_free(&t->parts[i].path);
        rb_free(t->parts[i].rb);
        free(t->parts[i].code);
    }
    free(t->parts);
    free(t->text);
    memset(t, 0, sizeof *t);
}

static void tval_free(tval *v)
{
    tstr_free(&v->s);
    for (size_t i = 0; i < v->n; i++) {
        if (v->items)
            tval_free(&v->items[i]);
        if (v->keys)
            tstr_free(&v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->mp);
    memset(v, 0, sizeof *v);
}

struct ectx;
static int tval_write(const struct ectx *e, const tval *v, wbuf *o);

static int tval_from_json(tval *v, json_t *j, const conf_param *at, conf_errors *errs, int mode)
{
    memset(v, 0, sizeof *v);
    if (json_is_string(j)) {
        v->kind = TV_STR;
        if (tstr_compile(&v->s, json_string_value(j), at, errs, mode))
            return -1;
        v->dynamic = v->s.dynamic;
    } else if (json_is_object(j)) {
        v->kind = TV_MAP;
        v->n = json_object_size(j);
        v->items = calloc(v->n ? v->n : 1, sizeof *v->items);
        v->keys = calloc(v->n ? v->n : 1, sizeof *v->keys);
        if (!v->items || !v->keys)
            return -1;
        size_t i = 0;
        const char *k;
        json_t *x;
        json_object_foreach(j, k, x)
        {
            if (tstr_compile(&v->keys[i], k, at, errs, mode) || tval_from_json(&v->items[i], x, at, errs, mode))
                return -1;
            v->dynamic |= v->keys[i].dynamic | v->items[i].dynamic;
            i++;
        }
    } else if (json_is_array(j)) {
        v->kind = TV_ARRAY;
        v->n = json_array_size(j);
        v->items = calloc(v->n ? v->n : 1, sizeof *v->items);
        if (!v->items)
            return -1;
        for (size_t i = 0; i < v->n; i++) {
            if (tval_from_json(&v->items[i], json_array_get(j, i), at, errs, mode))
                return -1;
            v->dynamic |= v->items[i].dynamic;
        }
    } else {
        v->kind = TV_RAW;
        wbuf b = {0};
        int rc = json_is_integer(j) ? mpw_int(&b, json_integer_value(j))
                 : json_is_real(j)  ? mpw_double(&b, json_real_value(j))
                 : json_is_true(j)  ? mpw_bool(&b, 1)
                 : json_is_false(j) ? mpw_bool(&b, 0)
                                    : mpw_nil(&b);
        if (rc) {
            wbuf_free(&b);
            return -1;
        }
        v->mp = wbuf_steal(&b, &v->mp_len);
        return 0;
    }
    if (!v->dynamic) {
        wbuf b = {0};
        if (tval_write(NULL, v, &b)) { /* a static value: its msgpack, once */
            wbuf_free(&b);
            return -1;
        }
        v->mp = wbuf_steal(&b, &v->mp_len);
    }
    return 0;
}

/* ---- configuration ----------------------------------------------------------------------------- */

/* <record> and remove_keys, for both plugins (c->modifier chooses the rules) */
int rt_compile(rt_ctx *c, conf_node *n, conf_errors *errs)
{
    int bad = 0;
    if (gethostname(c->hostname, sizeof c->hostname - 1) != 0)
        snprintf(c->hostname, sizeof c->hostname, "localhost");
    c->hostname_len = strlen(c->hostname);
    int vmode = c->modifier ? TM_RM : c->enable_ruby ? TM_RUBY : TM_RT;

    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *r = n->children[i];
        if (strcmp(r->name, "record"))
            continue;
        if (r->nchildren) {
            conf_errors_add(errs, r->children[0]->file, r->children[0]->line, "unknown section <%s> in <record>",
                            r->children[0]->name);
            bad = -1;
        }
        for (size_t k = 0; k < r->nparams; k++) {
            conf_param *p = &r->params[k];
            p->used = 1;
            rt_field *fd = ARRAY_PUSH(c->fields, c->nfields);
            if (!fd)
                return -1;
            if (tstr_compile(&fd->key, p->key, p, errs, c->modifier ? TM_TEXT : vmode)) {
                bad = -1;
                continue;
            }
            const char *v = p->value;
            json_t *j = NULL;
            if (!c->modifier && (v[0] == '{' || v[0] == '['))
                j = json_loads(v, JSON_DECODE_ANY, NULL); /* not JSON: a plain string, like Fluentd */
            if (j) {
                if (tval_from_json(&fd->val, j, p, errs, vmode))
                    bad = -1;
                json_decref(j);
            } else {
                json_t *s = json_string(v);
                if (!s || tval_from_json(&fd->val, s, p, errs, vmode))
                    bad = -1;
                json_decref(s);
            }
            if (fd->key.dynamic || fd->val.dynamic)
                c->dynamic = 1;
        }
    }
    if (bad)
        return -1;
    if (!c->dynamic && c->nfields) {
        c->static_kv = calloc(c->nfields, sizeof *c->static_kv);
        if (!c->static_kv)
            return -1;
        for (size_t i = 0; i < c->nfields; i++)
            c->static_kv[i] = (rec_kv){c->fields[i].key.text, c->fields[i].key.text_len, c->fields[i].val.mp,
                                       c->fields[i].val.mp_len};
    }
    size_t nrk = 0;
    while (c->remove_keys && c->remove_keys[nrk])
        nrk++;
    if (nrk) {
        c->allp = calloc(nrk, sizeof *c->allp);
        c->drop = calloc(nrk, sizeof *c->drop);
        c->nested = calloc(nrk, sizeof *c->nested);
        if (!c->allp || !c->drop || !c->nested)
            return -1;
    }
    for (size_t i = 0; i < nrk && c->modifier; i++) /* record.delete(name): top-level names */
        c->drop[c->ndrop++] = (rec_kv){c->remove_keys[i], strlen(c->remove_keys[i]), NULL, 0};
    for (size_t i = 0; i < nrk && !c->modifier; i++) {
        rec_path *p = &c->allp[c->nallp];
        char err[256];
        if (rec_path_compile(p, c->remove_keys[i], err, sizeof err) != 0) {
            const conf_param *rp = conf_get(n, "remove_keys");
            conf_errors_add(errs, rp->file, rp->line, "invalid key '%s' in remove_keys: %s", c->remove_keys[i], err);
            bad = -1;
            continue;
        }
        c->nallp++;
        /* "$[0]" at the top level: Hash#delete(0) deletes nothing */
        if (p->n == 1 && p->steps[0].key)
            c->drop[c->ndrop++] = (rec_kv){p->steps[0].key, p->steps[0].key_len, NULL, 0};
        else if (p->n > 1)
            c->nested[c->nnested++] = *p; /* shallow copy: allp owns it */
    }
    return bad;
}

static int rt_init(filter *f, conf_node *n, conf_errors *errs)
{
    rt_ctx *c = f->ctx;
    int bad = 0;
    if (c->keep_keys && !c->renew_record) {
        const conf_param *p = conf_get(n, "keep_keys");
        conf_errors_add(errs, p->file, p->line, "`renew_record` must be true to use `keep_keys`");
        bad = -1;
    }
    return rt_compile(c, n, errs) || bad ? -1 : 0;
}


void rt_exit(filter *f)
{
    rt_ctx *c = f->ctx;
    for (size_t i = 0; i < c->nfields; i++) {
        tstr_free(&c->fields[i].key);
        tval_free(&c->fields[i].val);
    }
    free(c->fields);
    free(c->static_kv);
    free(c->drop);
    rec_paths_free(c->allp, c->nallp);
    free(c->nested);
    for (size_t i = 0; i < c->nreplaces; i++) {
        rb_free(c->replaces[i].rb);
        free(c->replaces[i].key);
        free(c->replaces[i].code);
    }
    free(c->replaces);
}

/* ---- per record ----------------------------------------------------------------------------------- */

typedef struct ectx {
    const rt_ctx *c;
    filter_call *call;
    const uint8_t *rec;
    size_t len;
    rb_env env; /* what the Ruby expressions see */
} ectx;

/* a Ruby expression's value (typed) or text; a Ruby error fails the
 * record with Fluentd's words */
static int ph_ruby(const ectx *e, const tpart *p, wbuf *o, int typed)
{
    char why[200];
    int rc = typed ? rb_eval_value(p->rb, &e->env, o, why, sizeof why) : rb_eval_text(p->rb, &e->env, o, why, sizeof why);
    if (rc)
        snprintf(e->call->err, sizeof e->call->err, "%s: failed to expand `${%s}` : error = %s",
                 e->c->modifier ? "record_modifier" : "record_transformer", p->code, why);
    return rc;
}

/* Ruby's tag.split('.') element `idx` as a span of the tag: the part, the
 * prefix up to it, or the suffix from it. */
static int tag_span(const char *t, size_t n, int kind, int32_t idx, size_t *s, size_t *e)
{
    while (n && t[n - 1] == '.') /* split drops trailing empty fields */
        n--;
    if (!n)
        return -1;
    int64_t parts = 1;
    for (size_t i = 0; i < n; i++)
        parts += t[i] == '.';
    int64_t k = idx < 0 ? idx + parts : idx;
    if (k < 0 || k >= parts)
        return -1;
    size_t ps = 0;
    for (int64_t i = 0; i < k; i++)
        ps = (size_t)((const char *)memchr(t + ps, '.', n - ps) - t) + 1;
    const char *dot = memchr(t + ps, '.', n - ps);
    size_t pe = dot ? (size_t)(dot - t) : n;
    *s = kind == PH_TAG_PREFIX ? 0 : ps;
    *e = kind == PH_TAG_SUFFIX ? n : pe;
    return 0;
}

static __thread struct {
    int valid;
    uint32_t sec;
    size_t len;
    char text[64];
} tl_time;

static const char *time_text(uint32_t sec, size_t *len)
{
    if (!tl_time.valid || tl_time.sec != sec) {
        tl_time.len = time_fmt(tl_time.text, sizeof tl_time.text, "%Y-%m-%d %H:%M:%S %z", sec, 0, 0);
        tl_time.sec = sec;
        tl_time.valid = 1;
    }
    *len = tl_time.len;
    return tl_time.text;
}

/* The text of a placeholder that is a string: the literal, the tag or a
 * part of it, the hostname, the time. 1 with *t, *l; 0 when it has none (a
 * tag part beyond the tag); -1 for the others (PH_RECORD, PH_NIL). */
static int ph_str(const ectx *e, const tpart *p, const char **t, size_t *l)
{
    size_t s, en;
    switch (p->kind) {
    case PH_LIT: *t = p->lit, *l = p->len; return 1;
    case PH_TAG: *t = e->call->tag, *l = e->call->tag_len; return 1;
    case PH_TAG_PART:
    case PH_TAG_PREFIX:
    case PH_TAG_SUFFIX:
        if (tag_span(e->call->tag, e->call->tag_len, p->kind, p->index, &s, &en))
            return 0;
        *t = e->call->tag + s, *l = en - s;
        return 1;
    case PH_HOST: *t = e->c->hostname, *l = e->c->hostname_len; return 1;
    case PH_TIME:
        if (e->c->modifier) { /* EventTime#to_s: the seconds */
            static __thread char secs[16];
            *l = (size_t)snprintf(secs, sizeof secs, "%u", e->call->sec);
            *t = secs;
            return 1;
        }
        *t = time_text(e->call->sec, l);
        return 1;
    default: return -1;
    }
}

/* A placeholder as text (Ruby's to_s; nil is ""). */
static int ph_text(const ectx *e, const tpart *p, wbuf *o)
{
    const char *t;
    size_t l, vl;
    if (p->kind == PH_RECORD) {
        const uint8_t *v = rec_lookup(e->rec, e->len, &p->path, &vl);
        return v ? rec_value_to_s(o, v, vl) : 0;
    }
    if (p->kind == PH_RUBY)
        return ph_ruby(e, p, o, 0);
    return ph_str(e, p, &t, &l) > 0 ? rec_add(o, t, l) : 0;
}

/* A placeholder's own value (auto_typecast, single placeholder). */
static int ph_value(const ectx *e, const tpart *p, wbuf *o)
{
    const char *t;
    size_t l, vl;
    if (p->kind == PH_RECORD) {
        const uint8_t *v = rec_lookup(e->rec, e->len, &p->path, &vl);
        return v ? rec_add(o, v, vl) : mpw_nil(o);
    }
    if (p->kind == PH_RUBY)
        return ph_ruby(e, p, o, 1);
    if (p->kind == PH_TIME && e->c->modifier) { /* the EventTime itself */
        uint8_t et[10] = {0xd7, 0x00};
        for (int i = 0; i < 4; i++) {
            et[2 + i] = (uint8_t)(e->call->sec >> (24 - 8 * i));
            et[6 + i] = (uint8_t)(e->call->nsec >> (24 - 8 * i));
        }
        return rec_add(o, et, sizeof et);
    }
    return ph_str(e, p, &t, &l) > 0 ? mpw_str(o, t, l) : mpw_nil(o);
}

static int tstr_text(const ectx *e, const tstr *t, wbuf *o)
{
    if (!t->dynamic)
        return rec_add(o, t->text, t->text_len);
    for (size_t i = 0; i < t->n; i++)
        if (ph_text(e, &t->parts[i], o))
            return -1;
    return 0;
}

static int tstr_value(const ectx *e, const tstr *t, wbuf *o, int typecast)
{
    if (!t->dynamic)
        return mpw_str(o, t->text, t->text_len);
    if (typecast && t->n == 1 && t->parts[0].kind != PH_LIT)
        return ph_value(e, &t->parts[0], o);
    size_t off;
    if (rec_str_open(o, &off) || tstr_text(e, t, o))
        return -1;
    return rec_str_close(o, off);
}

static int tval_value(const ectx *e, const tval *v, wbuf *o)
{
    return v->dynamic ? tval_write(e, v, o) : rec_add(o, v->mp, v->mp_len);
}

/* A value written out, its static parts as their prebuilt msgpack; e is
 * NULL when v is static itself (at configuration, making v->mp). */
static int tval_write(const ectx *e, const tval *v, wbuf *o)
{
    switch (v->kind) {
    case TV_STR: return tstr_value(e, &v->s, o, e && e->c->auto_typecast);
    case TV_MAP:
        if (mpw_map(o, (uint32_t)v->n))
            return -1;
        for (size_t i = 0; i < v->n; i++)
            if (tstr_value(e, &v->keys[i], o, 0) || tval_value(e, &v->items[i], o))
                return -1;
        return 0;
    case TV_ARRAY:
        if (mpw_array(o, (uint32_t)v->n))
            return -1;
        for (size_t i = 0; i < v->n; i++)
            if (tval_value(e, &v->items[i], o))
                return -1;
        return 0;
    default: return rec_add(o, v->mp, v->mp_len);
    }
}

/* Fluentd: Time.at(new_record[renew_time_key].to_f) */
static int value_time(const uint8_t *v, size_t vl, uint32_t *sec, uint32_t *nsec, char *err, size_t errlen)
{
    const uint8_t *p = v;
    mp_obj o;
    double d;
    if (mp_read(&p, v + vl, &o) != MP_OK)
        return -1;
    if (o.type == MP_NIL) {
        d = 0;
    } else if (o.type == MP_STR || o.type == MP_BIN) {
        d = ruby_str_to_f((const char *)o.ptr, o.len);
    } else if (!mp_number(&o, &d)) {
        snprintf(err, errlen, "renew_time_key: undefined method `to_f' for the value (not a number or a string)");
        return -1;
    }
    if (!(d >= 0 && d < 4294967296.0)) {
        snprintf(err, errlen, "renew_time_key: time value %g out of range", d);
        return -1;
    }
    double fl = floor(d);
    *sec = (uint32_t)fl;
    double ns = (d - fl) * 1e9;
    *nsec = ns >= 999999999.0 ? 999999999u : (uint32_t)ns;
    return 0;
}


typedef struct fpos {
    size_t ko, kl, vo, vl;
} fpos;

int rt_filter(filter *f, filter_call *call, const uint8_t *rec, size_t len)
{
    const rt_ctx *c = f->ctx;
    wbuf *sc = call->scratch, *out = call->out;
    size_t start = out->len;
    rec_kv kv_stack[32], set_stack[32];
    fpos pos_stack[32];
    rec_kv *kv = kv_stack, *set2 = set_stack;
    fpos *pos = pos_stack;
    const rec_kv *set = c->static_kv;
    size_t nset = c->static_kv ? c->nfields : 0;
    int rc = FILTER_ERROR;
    if (c->nfields > 32) {
        kv = malloc(c->nfields * sizeof *kv);
        set2 = malloc(c->nfields * sizeof *set2);
        pos = malloc(c->nfields * sizeof *pos);
        if (!kv || !set2 || !pos)
            goto done;
    }
    sc->len = 0;
    snprintf(call->err, sizeof call->err, "record_transformer: out of memory or record too large");
    if (c->dynamic) {
        ectx e = {c, call, rec, len,
                  {call->tag, call->tag_len, call->sec, call->nsec, rec, len, c->hostname, c->hostname_len}};
        size_t total = 0;
        for (size_t i = 0; i < c->nfields; i++) {
            const rt_field *fd = &c->fields[i];
            pos[i].ko = sc->len;
            if (fd->key.dynamic && tstr_text(&e, &fd->key, sc))
                goto done;
            pos[i].kl = sc->len - pos[i].ko;
            pos[i].vo = sc->len;
            if (tval_value(&e, &fd->val, sc))
                goto done;
            pos[i].vl = sc->len - pos[i].vo;
            total += pos[i].kl + pos[i].vl + fd->key.text_len;
        }
        /* everything appended to scratch from here on fits: no realloc
         * moves the expanded values under the pointers below */
        if (rec_reserve(sc, 2 * len + 2 * total + 32 * c->nfields + 256))
            goto done;
        for (size_t i = 0; i < c->nfields; i++) {
            const rt_field *fd = &c->fields[i];
            kv[i].key = fd->key.dynamic ? (const char *)sc->data + pos[i].ko : fd->key.text;
            kv[i].key_len = fd->key.dynamic ? pos[i].kl : fd->key.text_len;
            kv[i].val = sc->data + pos[i].vo;
            kv[i].val_len = pos[i].vl;
        }
        set = kv;
        nset = c->nfields;
    } else if (c->renew_record || c->nnested) {
        if (rec_reserve(sc, 2 * len + 256))
            goto done;
    }
    /* renew_time_key sees the merged record, before remove_keys */
    if (c->renew_time_key) {
        size_t tl = strlen(c->renew_time_key), vl = 0;
        const uint8_t *v = NULL;
        for (size_t i = nset; i-- > 0;) {
            if (set[i].key_len == tl && !memcmp(set[i].key, c->renew_time_key, tl)) {
                v = set[i].val;
                vl = set[i].val_len;
                break;
            }
        }
        if (!v && !c->renew_record)
            v = rec_get(rec, len, c->renew_time_key, tl, &vl);
        if (!v && c->renew_record)
            for (size_t i = 0; c->keep_keys && c->keep_keys[i] && !v; i++)
                if (!strcmp(c->keep_keys[i], c->renew_time_key))
                    v = rec_get(rec, len, c->renew_time_key, tl, &vl);
        if (v && value_time(v, vl, &call->sec, &call->nsec, call->err, sizeof call->err))
            goto done;
    }
    /* keys of <record> that remove_keys deletes again */
    if (c->ndrop && nset) {
        size_t k = 0;
        for (size_t i = 0; i < nset; i++) {
            int dropped = 0;
            for (size_t j = 0; j < c->ndrop && !dropped; j++)
                dropped = set[i].key_len == c->drop[j].key_len && !memcmp(set[i].key, c->drop[j].key, set[i].key_len);
            if (!dropped)
                set2[k++] = set[i];
        }
        set = set2;
        nset = k;
    }
    const uint8_t *src = rec;
    size_t srclen = len;
    if (c->renew_record) {
        static const char *const none[] = {NULL};
        size_t bo = sc->len;
        if (rec_keep(sc, rec, len, c->keep_keys ? (const char *const *)c->keep_keys : none))
            goto done;
        src = sc->data + bo;
        srclen = sc->len - bo;
    }
    if (rec_rewrite_n(out, src, srclen, c->drop, c->ndrop, set, nset))
        goto done;
    if (c->nnested) {
        size_t doff = sc->len;
        if (rec_delete(sc, out->data + start, out->len - start, c->nested, c->nnested) < 0)
            goto done;
        out->len = start;
        if (rec_add(out, sc->data + doff, sc->len - doff))
            goto done;
    }
    if (c->modifier && c->nreplaces && rm_replaces(c, call, out, start, sc))
        goto done;
    if (c->modifier && rm_post(c, out, start, sc))
        goto done;
    call->err[0] = 0;
    rc = FILTER_MODIFY;
done:
    if (rc != FILTER_MODIFY)
        out->len = start;
    if (kv != kv_stack)
        free(kv);
    if (set2 != set_stack)
        free(set2);
    if (pos != pos_stack)
        free(pos);
    return rc;
}

FILTER_PLUGIN(record_transformer, rt);

