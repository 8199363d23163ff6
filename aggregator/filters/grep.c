/*
 * aggregator/filters/grep.c: Fluentd's filter_grep.
 *
 *   <regexp> key KEY pattern /RE/ </regexp>   all must match (AND)
 *   <exclude> key KEY pattern /RE/ </exclude> any match drops (OR)
 *   <and> <regexp>.. </and>                   joins the top-level regexps (AND)
 *   <and> <exclude>.. </and>                  drops when all of them match
 *   <or> <regexp>.. </or>                     at least one must match
 *   <or> <exclude>.. </or>                    joins the top-level excludes (OR)
 *   regexp1..regexp20 / exclude1..exclude20   "KEY RE" (deprecated form)
 *
 * KEY is a record accessor. The value is matched as Ruby's to_s would print
 * it: a missing key or nil is "" (so /^$/ matches it), numbers and booleans
 * their text, maps/arrays JSON. A regexp engine error (match limit) keeps the
 * record, like Fluentd's rescue.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/rx.h"
#include "aggregator/filter.h"
#include "aggregator/record.h"

#define LEGACY_MAX 20

typedef struct grep_expr {
    char *key;
    rec_path path;
    rx re;
} grep_expr;

typedef struct grep_list {
    grep_expr *v;
    size_t n;
} grep_list;

typedef struct grep_ctx {
    char *regexpN[LEGACY_MAX];
    char *excludeN[LEGACY_MAX];
    grep_list rand, ror, eand, eor;
} grep_ctx;

/* the deprecated forms, regexp1..regexp20 then exclude1..exclude20 (weir --list-params shows each run as one row) */
#define LEG_RE(i)                                                                                                    \
    {"regexp" #i, CONF_STR, NULL, 0, offsetof(grep_ctx, regexpN) + (i - 1) * sizeof(char *), NULL,                   \
     "deprecated form `KEY REGEXP`: must match, like a `<regexp>` (the regexp is taken literally, no `/.../`)"}
#define LEG_EX(i)                                                                                                    \
    {"exclude" #i, CONF_STR, NULL, 0, offsetof(grep_ctx, excludeN) + (i - 1) * sizeof(char *), NULL,                 \
     "deprecated form `KEY REGEXP`: drops the record when it matches, like an `<exclude>`"}

static const conf_spec grep_spec[] = {
    LEG_RE(1),  LEG_RE(2),  LEG_RE(3),  LEG_RE(4),  LEG_RE(5),  LEG_RE(6),  LEG_RE(7),  LEG_RE(8),  LEG_RE(9),
    LEG_RE(10), LEG_RE(11), LEG_RE(12), LEG_RE(13), LEG_RE(14), LEG_RE(15), LEG_RE(16), LEG_RE(17), LEG_RE(18),
    LEG_RE(19), LEG_RE(20),
    LEG_EX(1),  LEG_EX(2),  LEG_EX(3),  LEG_EX(4),  LEG_EX(5),  LEG_EX(6),  LEG_EX(7),  LEG_EX(8),  LEG_EX(9),
    LEG_EX(10), LEG_EX(11), LEG_EX(12), LEG_EX(13), LEG_EX(14), LEG_EX(15), LEG_EX(16), LEG_EX(17), LEG_EX(18),
    LEG_EX(19), LEG_EX(20),
    {"regexp", CONF_SECTION, NULL, 0, 0, NULL, "any number: every `<regexp>` must match (`key`, `pattern`)"},
    {"exclude", CONF_SECTION, NULL, 0, 0, NULL, "any number: any matching `<exclude>` drops the record"},
    {"and", CONF_SECTION, NULL, 0, 0, NULL,
     "a group of `<regexp>` (they join the top-level regexps) or of `<exclude>` (drops the record when all of them "
     "match), not both"},
    {"or", CONF_SECTION, NULL, 0, 0, NULL,
     "a group of `<regexp>` (one of them must match) or of `<exclude>` (they join the top-level excludes), not both"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

typedef struct cond_conf {
    char *key;
    char *pattern;
} cond_conf;

const conf_spec filter_grep_cond_spec[] = {
    {"key", CONF_STR, NULL, 1, offsetof(cond_conf, key), NULL,
     "record accessor of the value matched (a missing key or nil is matched as `\"\"`; numbers, booleans, maps as "
     "text)"},
    {"pattern", CONF_STR, NULL, 1, offsetof(cond_conf, pattern), NULL,
     "`/regexp/` with flags `i`, `m`, or a bare regexp (PCRE2 with Ruby's meaning)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const conf_spec filter_grep_group_spec[] = {
    {"regexp", CONF_SECTION, NULL, 0, 0, NULL, "any number, with `key` and `pattern`"},
    {"exclude", CONF_SECTION, NULL, 0, 0, NULL, "any number, with `key` and `pattern`"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int list_has(const grep_list *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].key, key) == 0)
            return 1;
    return 0;
}

static int list_add(grep_list *l, const char *key, const char *pattern, int rxflags, const char *file, int line,
                    conf_errors *errs)
{
    grep_expr *nv = realloc(l->v, (l->n + 1) * sizeof *nv);
    if (!nv)
        return -1;
    l->v = nv;
    grep_expr *x = &l->v[l->n];
    memset(x, 0, sizeof *x);
    char err[512];
    err[0] = 0;
    if (rec_path_compile(&x->path, key, err, sizeof err) != 0) {
        conf_errors_add(errs, file, line, "invalid key '%s': %s", key, err);
        return -1;
    }
    if (rx_compile(&x->re, pattern, rxflags, err, sizeof err) != 0) {
        conf_errors_add(errs, file, line, "%s", err);
        rec_path_free(&x->path);
        return -1;
    }
    x->key = strdup(key);
    l->n++;
    return x->key ? 0 : -1;
}

static const conf_param *param_of(const conf_node *n, const char *key)
{
    for (size_t i = 0; i < n->nparams; i++)
        if (strcmp(n->params[i].key, key) == 0)
            return &n->params[i];
    return NULL;
}

/* One <regexp>/<exclude> section into list l; dupmsg is Fluentd's message prefix. */
static int add_section(grep_list *l, conf_node *c, const char *dupmsg, conf_errors *errs)
{
    cond_conf cc = {0};
    int bad = conf_bind(c, filter_grep_cond_spec, &cc, errs);
    if (!bad) {
        if (list_has(l, cc.key)) {
            conf_errors_add(errs, c->file, c->line, "%s%s", dupmsg, cc.key);
            bad = -1;
        } else {
            const conf_param *pp = param_of(c, "pattern");
            bad = list_add(l, cc.key, cc.pattern, RX_SLASHES, pp->file, pp->line, errs);
        }
    }
    conf_unbind(filter_grep_cond_spec, &cc);
    return bad;
}

static int grep_init(filter *f, conf_node *n, conf_errors *errs)
{
    grep_ctx *g = f->ctx;
    int bad = 0;
    /* the deprecated forms first, like Fluentd */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < LEGACY_MAX; i++) {
            const char *v = pass == 0 ? g->regexpN[i] : g->excludeN[i];
            if (!v)
                continue;
            char name[32];
            snprintf(name, sizeof name, "%s%d", pass == 0 ? "regexp" : "exclude", i + 1);
            const conf_param *p = param_of(n, name);
            const char *sp = strchr(v, ' ');
            if (!sp) {
                conf_errors_add(errs, p->file, p->line, "%s does not contain 2 parameters", name);
                bad = -1;
                continue;
            }
            char *key = strndup(v, (size_t)(sp - v));
            grep_list *l = pass == 0 ? &g->rand : &g->eor;
            if (!key) {
                bad = -1;
            } else if (list_has(l, key)) {
                conf_errors_add(errs, p->file, p->line, "%s contains a duplicated key, %s", name, key);
                bad = -1;
            } else if (list_add(l, key, sp + 1, 0, p->file, p->line, errs)) {
                bad = -1;
            }
            free(key);
        }
    }
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *c = n->children[i];
        if (!strcmp(c->name, "regexp")) {
            if (add_section(&g->rand, c, "Duplicate key: ", errs))
                bad = -1;
        } else if (!strcmp(c->name, "exclude")) {
            if (add_section(&g->eor, c, "Duplicate key: ", errs))
                bad = -1;
        } else if (!strcmp(c->name, "and") || !strcmp(c->name, "or")) {
            int is_and = c->name[0] == 'a';
            int dummy = 0;
            if (conf_bind(c, filter_grep_group_spec, &dummy, errs)) {
                bad = -1;
                continue;
            }
            int nre = 0, nex = 0;
            for (size_t k = 0; k < c->nchildren; k++) {
                nre += !strcmp(c->children[k]->name, "regexp");
                nex += !strcmp(c->children[k]->name, "exclude");
            }
            if (nre && nex) {
                conf_errors_add(errs, c->file, c->line, "Do not specify both <regexp> and <exclude> in <%s>", c->name);
                bad = -1;
                continue;
            }
            const char *dup = is_and ? "Duplicate key in <and>: " : "Duplicate key in <or>: ";
            for (size_t k = 0; k < c->nchildren; k++) {
                conf_node *cc = c->children[k];
                int re = !strcmp(cc->name, "regexp");
                grep_list *l = is_and ? (re ? &g->rand : &g->eand) : (re ? &g->ror : &g->eor);
                if (add_section(l, cc, dup, errs))
                    bad = -1;
            }
        }
    }
    return bad;
}

static void list_free(grep_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].key);
        rec_path_free(&l->v[i].path);
        rx_free(&l->v[i].re);
    }
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

static void grep_exit(filter *f)
{
    grep_ctx *g = f->ctx;
    list_free(&g->rand);
    list_free(&g->ror);
    list_free(&g->eand);
    list_free(&g->eor);
}

/* 1 match, 0 no match, -1 error */
static int expr_match(const grep_expr *x, const uint8_t *rec, size_t len, wbuf *scratch)
{
    size_t vl;
    const uint8_t *v = rec_lookup(rec, len, &x->path, &vl);
    const uint8_t *s = (const uint8_t *)"";
    uint32_t n = 0;
    if (v) {
        const uint8_t *q = v;
        int r = rec_read_str(&q, v + vl, &s, &n);
        if (r < 0)
            return -1;
        if (r == 0) {
            scratch->len = 0;
            if (rec_value_to_s(scratch, v, vl))
                return -1;
            s = scratch->data ? scratch->data : (const uint8_t *)"";
            n = (uint32_t)scratch->len;
        }
    }
    return rx_match(&x->re, s, n);
}

static int grep_filter(filter *f, filter_call *call, const uint8_t *rec, size_t rec_len)
{
    const grep_ctx *g = f->ctx;
    int r;
    for (size_t i = 0; i < g->rand.n; i++) {
        if ((r = expr_match(&g->rand.v[i], rec, rec_len, call->scratch)) < 0)
            return FILTER_KEEP;
        if (!r)
            return FILTER_DROP;
    }
    if (g->ror.n) {
        int any = 0;
        for (size_t i = 0; i < g->ror.n && !any; i++) {
            if ((r = expr_match(&g->ror.v[i], rec, rec_len, call->scratch)) < 0)
                return FILTER_KEEP;
            any = r;
        }
        if (!any)
            return FILTER_DROP;
    }
    if (g->eand.n) {
        int all = 1;
        for (size_t i = 0; i < g->eand.n && all; i++) {
            if ((r = expr_match(&g->eand.v[i], rec, rec_len, call->scratch)) < 0)
                return FILTER_KEEP;
            all = r;
        }
        if (all)
            return FILTER_DROP;
    }
    for (size_t i = 0; i < g->eor.n; i++) {
        if ((r = expr_match(&g->eor.v[i], rec, rec_len, call->scratch)) < 0)
            return FILTER_KEEP;
        if (r)
            return FILTER_DROP;
    }
    return FILTER_KEEP;
}

FILTER_PLUGIN(grep, grep);
