/*
 * aggregator/parsers/grok.c: <parse> @type grok, fluent-plugin-grok-parser's
 * parser (see grok.h for the patterns and their expansion).
 *
 * The alternatives: `grok_pattern`, or one per <grok> section, in order;
 * the first whose regexp matches anywhere in the text gives the record (its
 * fields in pattern order, unmatched ones left out, for a field named twice
 * the last group that matched, as with @type regexp), then its time
 * (`time_key`, default `time`) and conversions (the `:type` suffixes, then
 * the <parse> section's `types`), then `grok_name_key` (the <grok> section's
 * name, its index when it has none, "grok_pattern" for grok_pattern). When
 * none matches, the record is the plugin's: {"message": text}, plus
 * `grok_failure_key`: "No grok pattern matched".
 *
 * Every match runs under a PCRE2 match limit and depth limit
 * (grok_match_limit, grok_depth_limit), which PCRE2 applies to each start
 * position, and the record under a time budget over all its patterns
 * (grok_timeout); see rx_exec_budget (lib/rx.h). A line that would
 * backtrack for long (a nested quantifier meeting a long line that almost
 * matches, at one position or at many) stops there. Such a record is
 * counted (weir_grok_match_limit_total in /metrics)
 * and, with grok_failure_key, passes on as {"message": text,
 * grok_failure_key: "Grok match limit exceeded"}; without, it is a parse
 * failure (the parser filter sends it to @ERROR, or drops it with
 * emit_invalid_record_to_error false). The alternatives after it are not
 * tried.
 *
 * Configuration time does all the work (expansion, compilation with JIT,
 * field tables, time parsers and conversions per alternative); a match is
 * one pcre2_jit_match per alternative tried and the pairs' output. An
 * alternative PCRE2 cannot skip through by itself (not anchored, no known
 * first character) and that needs a literal (" associated with ") is
 * skipped at once when the text lacks it (memmem): unanchored patterns
 * otherwise cost a try at nearly every position of the line.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"
#include "lib/rx.h"
#include "aggregator/parse_impl.h"
#include "aggregator/parsers/grok.h"
#include "aggregator/record.h"

#define GROK_NO_MATCH "No grok pattern matched"
#define GROK_OVER_LIMIT "Grok match limit exceeded"

/* a record key and the capture groups that give it, in group order */
typedef struct gfield {
    char *key;
    size_t klen;
    uint32_t *groups;
    size_t ngroups;
    int is_name_key; /* key == grok_name_key: the name replaces the value (Ruby's record[k] = name) */
} gfield;

typedef struct galt {
    rx re;
    parser view; /* what parse_pair_done reads for this alternative: time key and parser, conversions, nulls */
    gfield *fields;
    size_t nfields;
    size_t own_conv; /* view.conv[0..own_conv) are this alternative's (the `:type` suffixes); the rest are shared */
    int own_tp;      /* view.tp is this alternative's */
    char *lit;       /* NULL, or a literal every match contains (grok_required_literal): memmem first */
    size_t litlen;
    char *label;     /* for messages: "grok_pattern", the section's name or "#index" */
    char *name;      /* grok_name_key value: the section's name, "grok_pattern", or NULL: index */
    int64_t index;
} galt;

typedef struct grok {
    galt *alts;
    size_t nalts;
    uint32_t match_limit, depth_limit;
    uint64_t time_ns; /* grok_timeout */
    const char *fkey, *nkey; /* grok_failure_key, grok_name_key (the parser's strings) */
    size_t fkey_len, nkey_len;
    atomic_uint_fast64_t over_limit, unmatched;
} grok;

/* ---- <grok> sections ------------------------------------------------------------------------- */

typedef struct grok_sec {
    char *name, *pattern, *time_key, *time_format, *timezone;
    int keep_time_key;
} grok_sec;

const conf_spec parse_grok_section_spec[] = {
    {"name", CONF_STR, NULL, 0, offsetof(grok_sec, name), NULL,
     "the name `grok_name_key` records when this pattern matched (default: the section's index, 0 for the first)"},
    {"pattern", CONF_STR, NULL, 1, offsetof(grok_sec, pattern), NULL, "the grok pattern"},
    {"keep_time_key", CONF_BOOL, "false", 0, offsetof(grok_sec, keep_time_key), NULL,
     "keep the time field in the record (also when the `<parse>` section says so)"},
    {"time_key", CONF_STR, NULL, 0, offsetof(grok_sec, time_key), NULL,
     "field that gives the event time; default the `<parse>` section's `time_key`, else `time`"},
    {"time_format", CONF_STR, NULL, 0, offsetof(grok_sec, time_format), NULL,
     "format of that field; default the `<parse>` section's `time_format`"},
    {"timezone", CONF_STR, NULL, 0, offsetof(grok_sec, timezone), NULL,
     "zone of times without one (`UTC` or `+09:00`); default the `<parse>` section's `timezone`"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* ---- configuration ---------------------------------------------------------------------------- */

static void alt_free(galt *a)
{
    rx_free(&a->re);
    for (size_t i = 0; i < a->nfields; i++) {
        free(a->fields[i].key);
        free(a->fields[i].groups);
    }
    free(a->fields);
    for (size_t i = 0; i < a->own_conv; i++) {
        free(a->view.conv[i].key);
        free(a->view.conv[i].delim);
        tparse_free(&a->view.conv[i].tp);
    }
    free(a->view.conv);
    if (a->own_tp)
        tparse_free(&a->view.tp);
    free(a->view.timezone);
    free(a->view.time_key); /* a <grok> section's own time_key, or NULL */
    free(a->label);
    free(a->name);
    free(a->lit);
}

static int is_group_name(const char *s, size_t n, size_t *idx)
{
    size_t pl = strlen(GROK_GROUP_PREFIX);
    if (n <= pl || memcmp(s, GROK_GROUP_PREFIX, pl))
        return 0;
    size_t v = 0;
    for (size_t i = pl; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *idx = v;
    return 1;
}

/* The record keys of a compiled alternative: every named group, generated
 * (a %{NAME:field}) or written in the pattern ((?<name>...)), merged by key,
 * in order of each key's first group. */
static int build_fields(galt *a, const grok_expansion *x)
{
    size_t nn;
    rx_name *names = rx_names(&a->re, &nn);
    if (nn && !names)
        return -1;
    /* names are in group order */
    a->fields = calloc(nn ? nn : 1, sizeof *a->fields);
    if (!a->fields) {
        free(names);
        return -1;
    }
    for (size_t i = 0; i < nn; i++) {
        const char *k = names[i].name;
        size_t kl = names[i].len, idx;
        if (is_group_name(k, kl, &idx) && idx < x->nfields) {
            k = x->fields[idx].key;
            kl = strlen(k);
        }
        gfield *f = NULL;
        for (size_t j = 0; j < a->nfields && !f; j++)
            if (a->fields[j].klen == kl && !memcmp(a->fields[j].key, k, kl))
                f = &a->fields[j];
        if (!f) {
            f = &a->fields[a->nfields++];
            if (!(f->key = strndup(k, kl))) {
                free(names);
                return -1;
            }
            f->klen = kl;
        }
        uint32_t *ng = realloc(f->groups, (f->ngroups + 1) * sizeof *ng);
        if (!ng) {
            free(names);
            return -1;
        }
        f->groups = ng;
        f->groups[f->ngroups++] = names[i].group;
    }
    free(names);
    return 0;
}

/* The alternative's own conversions: for each field, the type written
 * after it in its last occurrence (the plugin's type map; an occurrence
 * without a type is a string), then the <parse> section's `types` (shared). */
static int alt_convs(galt *a, const parser *p, const grok_expansion *x, const conf_param *at, conf_errors *errs)
{
    int bad = 0;
    for (size_t i = 0; i < x->nfields; i++) {
        const grok_field *f = &x->fields[i];
        int last = 1;
        for (size_t j = i + 1; j < x->nfields && last; j++)
            if (!strcmp(x->fields[j].key, f->key))
                last = 0;
        if (!last || !f->type || !strcmp(f->type, "string"))
            continue; /* a capture is a string already */
        if (parse_conv_add(&a->view, f->key, strlen(f->key), f->type, at, errs))
            bad = -1;
    }
    a->own_conv = a->view.nconv;
    if (p->nconv) {
        parse_conv *nc = realloc(a->view.conv, (a->view.nconv + p->nconv) * sizeof *nc);
        if (!nc)
            return -1;
        a->view.conv = nc;
        memcpy(nc + a->view.nconv, p->conv, p->nconv * sizeof *nc); /* borrowed: freed with p */
        a->view.nconv += p->nconv;
    }
    return bad;
}

/* One alternative from a pattern written at `at`; sec NULL for grok_pattern. */
static int alt_init(galt *a, parser *p, const grok_set *set, const char *pattern, const conf_param *at,
                    const grok_sec *sec, conf_node *secnode, int64_t index, conf_errors *errs)
{
    char err[1024];
    grok_expansion x;
    if (grok_expand(set, pattern, &x, err, sizeof err)) {
        conf_errors_add(errs, at->file, at->line, "%s in grok pattern '%s'", err, pattern);
        return -1;
    }
    int bad = 0;
    if (rx_compile(&a->re, x.regexp, RX_SHORT_ERR | RX_GUARD, err, sizeof err)) {
        conf_errors_add(errs, at->file, at->line, "invalid regexp from grok pattern '%s': %s of its expansion '%.300s%s'",
                        pattern, err, x.regexp, x.len > 300 ? "..." : "");
        grok_expansion_free(&x);
        return -1;
    }
    if (build_fields(a, &x)) {
        grok_expansion_free(&x);
        return -1;
    }
    /* PCRE2 skips start positions on its own when the pattern is anchored or starts with a known character;
     * otherwise it tries (nearly) every position: a literal the pattern needs, absent from the text, saves that */
    uint32_t first = 0, opts = 0;
    pcre2_pattern_info(a->re.code, PCRE2_INFO_FIRSTCODETYPE, &first);
    pcre2_pattern_info(a->re.code, PCRE2_INFO_ALLOPTIONS, &opts);
    if (first == 0 && !(opts & PCRE2_ANCHORED))
        a->lit = grok_required_literal(pattern, &a->litlen);
    if (!a->nfields) {
        conf_errors_add(errs, at->file, at->line,
                        "grok pattern '%s' names no field: write %%{PATTERN:field} (fluent-plugin-grok-parser drops "
                        "such a pattern)",
                        pattern);
        bad = -1;
    }
    /* the alternative's view of the parser: its time, its conversions, the section's nulls */
    parser *v = &a->view;
    v->keep_time_key = p->keep_time_key || (sec && sec->keep_time_key);
    v->localtime = p->localtime;
    v->utc = p->utc;
    v->null_empty_string = p->null_empty_string;
    v->has_nullrx = p->has_nullrx;
    v->nullrx = p->nullrx; /* borrowed */
    v->estimate_current_event = p->estimate_current_event;
    const char *tz = sec && sec->timezone ? sec->timezone : p->timezone;
    if (tz && !(v->timezone = strdup(tz)))
        bad = -1;
    if (!sec) {
        v->tkey = p->tkey;
        v->tp = p->tp; /* borrowed */
    } else {
        v->tkey = sec->time_key ? sec->time_key : p->time_key ? p->time_key : "time";
        const char *fmt = sec->time_format ? sec->time_format : p->time_format;
        if (p->tp.type == TP_MIXED ? tparse_init_mixed(&v->tp, fmt, p->time_format_fallbacks, p->localtime, p->utc,
                                                       tz, err, sizeof err)
                                   : tparse_init(&v->tp, p->tp.type, fmt, p->localtime, p->utc, tz, err, sizeof err)) {
            const conf_param *tzp = conf_get(secnode, "timezone");
            if (!tzp)
                tzp = at;
            conf_errors_add(errs, tzp->file, tzp->line, "%s", err);
            bad = -1;
        } else {
            a->own_tp = 1;
        }
    }
    v->tkey_len = v->tkey ? strlen(v->tkey) : 0;
    if (alt_convs(a, p, &x, at, errs))
        bad = -1;
    v->convert = v->nconv || v->has_nullrx || v->null_empty_string;
    grok_expansion_free(&x);
    a->index = index;
    if (!sec)
        a->name = strdup("grok_pattern");
    else if (sec->name)
        a->name = strdup(sec->name);
    char lb[64];
    snprintf(lb, sizeof lb, "#%lld", (long long)index);
    a->label = strdup(a->name ? a->name : lb);
    return bad;
}

static void grok_free(parser *p)
{
    grok *g = p->impl;
    if (!g)
        return;
    for (size_t i = 0; i < g->nalts; i++)
        alt_free(&g->alts[i]);
    free(g->alts);
    free(g);
    p->impl = NULL;
}

static int grok_configure(parser *p, conf_node *n, conf_errors *errs)
{
    grok *g = calloc(1, sizeof *g);
    if (!g)
        return -1;
    p->impl = g;
    int bad = 0;
    size_t nsec = 0;
    for (size_t i = 0; i < n->nchildren; i++)
        nsec += !strcmp(n->children[i]->name, "grok");
    const conf_param *gp = conf_get(n, "grok_pattern");
    if (p->grok_pattern && nsec) {
        conf_errors_add(errs, gp->file, gp->line,
                        "grok_pattern and <grok> sections together: fluent-plugin-grok-parser would use grok_pattern "
                        "only; keep one");
        return -1;
    }
    if (!p->grok_pattern && !nsec) {
        conf_errors_add(errs, n->file, n->line, "no grok patterns in <%s>: set grok_pattern or add <grok> sections",
                        n->name);
        return -1;
    }
    if (p->grok_match_limit < 0 || p->grok_match_limit > UINT32_MAX || p->grok_depth_limit < 0 ||
        p->grok_depth_limit > UINT32_MAX) {
        const char *which = p->grok_match_limit < 0 || p->grok_match_limit > UINT32_MAX ? "grok_match_limit"
                                                                                        : "grok_depth_limit";
        conf_error_at(errs, n, which, "%s must be between 0 and %u", which, UINT32_MAX);
        bad = -1;
    }
    g->match_limit = (uint32_t)p->grok_match_limit;
    g->depth_limit = (uint32_t)p->grok_depth_limit;
    if (p->grok_timeout < 0 || p->grok_timeout > 3600) {
        conf_error_at(errs, n, "grok_timeout", "grok_timeout must be between 0 and 1h");
        bad = -1;
    } else {
        g->time_ns = (uint64_t)(p->grok_timeout * 1e9);
    }
    g->fkey = p->grok_failure_key;
    g->fkey_len = g->fkey ? strlen(g->fkey) : 0;
    g->nkey = p->grok_name_key;
    g->nkey_len = g->nkey ? strlen(g->nkey) : 0;

    grok_set *set = grok_set_new(p->grok_pattern_series ? GROK_ECS_V1 : GROK_LEGACY);
    if (!set)
        return -1;
    if (p->custom_pattern_path) {
        char err[512];
        if (grok_set_load_path(set, p->custom_pattern_path, err, sizeof err)) {
            conf_error_at(errs, n, "custom_pattern_path", "custom_pattern_path: %s", err);
            grok_set_free(set);
            return -1;
        }
    }
    g->alts = calloc(nsec ? nsec : 1, sizeof *g->alts);
    if (!g->alts) {
        grok_set_free(set);
        return -1;
    }
    if (p->grok_pattern) {
        g->nalts = 1;
        if (alt_init(&g->alts[0], p, set, p->grok_pattern, gp, NULL, NULL, 0, errs))
            bad = -1;
    }
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *c = n->children[i];
        if (strcmp(c->name, "grok"))
            continue;
        grok_sec sec = {0};
        if (conf_bind(c, parse_grok_section_spec, &sec, errs)) {
            bad = -1;
        } else {
            galt *a = &g->alts[g->nalts];
            int64_t idx = (int64_t)g->nalts++;
            if (alt_init(a, p, set, sec.pattern, conf_get(c, "pattern"), &sec, c, idx, errs))
                bad = -1;
            /* time_key is read through view.tkey: keep the section's string */
            if (sec.time_key && a->view.tkey == sec.time_key) {
                a->view.tkey = a->view.time_key = sec.time_key;
                sec.time_key = NULL;
            }
        }
        conf_unbind(parse_grok_section_spec, &sec);
    }
    for (size_t i = 0; i < g->nalts; i++) {
        galt *a = &g->alts[i];
        for (size_t k = 0; g->nkey && k < a->nfields; k++)
            a->fields[k].is_name_key = a->fields[k].klen == g->nkey_len && !memcmp(a->fields[k].key, g->nkey, g->nkey_len);
    }
    grok_set_free(set);
    return bad;
}

/* ---- parsing --------------------------------------------------------------------------------- */

static int put_name(wbuf *o, const galt *a)
{
    return a->name ? mpw_str(o, a->name, strlen(a->name)) : mpw_int(o, a->index);
}

/* The plugin's record for a text no pattern took: {message_key: text,
 * grok_failure_key: why} (the failure key replaces the text when they are one
 * key); no conversion, no time (estimate_current_event decides). */
static int failure_record(pctx *c, const grok *g, const uint8_t *s, size_t n, const char *why)
{
    const parser *p = c->p;
    wbuf *o = c->o;
    rec_hdr h;
    if (rec_hdr_open(o, &h, 1, 2))
        return PARSE_FAIL;
    c->body0 = o->len;
    int same = g->fkey && g->fkey_len == p->mkey_len && !memcmp(g->fkey, p->mkey, p->mkey_len);
    if (mpw_str(o, p->mkey, p->mkey_len))
        return PARSE_FAIL;
    parse_note_key(c, o->len - p->mkey_len, p->mkey_len);
    if (same ? mpw_str(o, why, strlen(why)) : mpw_str(o, s, n))
        return PARSE_FAIL;
    c->count++;
    if (g->fkey && !same) {
        if (mpw_str(o, g->fkey, g->fkey_len))
            return PARSE_FAIL;
        parse_note_key(c, o->len - g->fkey_len, g->fkey_len);
        if (mpw_str(o, why, strlen(why)))
            return PARSE_FAIL;
        c->count++;
    }
    return rec_hdr_close(o, &h, c->count) ? PARSE_FAIL : PARSE_OK;
}

static int emit(pctx *c, const grok *g, const galt *a, const uint8_t *s, const PCRE2_SIZE *ov)
{
    wbuf *o = c->o;
    rec_hdr h;
    if (rec_hdr_open(o, &h, 1, (uint32_t)a->nfields + (g->nkey ? 1u : 0u)))
        return PARSE_FAIL;
    c->body0 = o->len;
    int named = 0;
    for (size_t i = 0; i < a->nfields; i++) {
        const gfield *f = &a->fields[i];
        uint32_t gr = UINT32_MAX;
        for (size_t k = f->ngroups; k-- > 0;) /* Ruby: the last group of the name that matched */
            if (ov[2 * f->groups[k]] != PCRE2_UNSET) {
                gr = f->groups[k];
                break;
            }
        if (gr == UINT32_MAX)
            continue;
        size_t pair_off = o->len;
        if (mpw_str(o, f->key, f->klen))
            return PARSE_FAIL;
        size_t kpay = o->len - f->klen, voff = o->len;
        if (mpw_str(o, s + ov[2 * gr], ov[2 * gr + 1] - ov[2 * gr]))
            return PARSE_FAIL;
        uint32_t before = c->count;
        if (parse_pair_done(c, pair_off, kpay, f->klen, voff))
            return PARSE_FAIL;
        if (f->is_name_key && c->count > before) {
            o->len = voff;
            if (put_name(o, a))
                return PARSE_FAIL;
            named = 1;
        }
    }
    if (g->nkey && !named) {
        if (mpw_str(o, g->nkey, g->nkey_len))
            return PARSE_FAIL;
        parse_note_key(c, o->len - g->nkey_len, g->nkey_len);
        if (put_name(o, a))
            return PARSE_FAIL;
        c->count++;
    }
    return rec_hdr_close(o, &h, c->count) ? PARSE_FAIL : PARSE_OK;
}

static int parse_grok_text(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen)
{
    const parser *p = c->p;
    grok *g = p->impl;
    if (!g || !g->nalts)
        return PARSE_FAIL;
    if (!rx_utf8_valid(s, n))
        return PARSE_BADUTF8;
    rx_budget b = {g->match_limit, g->depth_limit, g->time_ns, 0}; /* one for the record */
    for (size_t i = 0; i < g->nalts; i++) {
        const galt *a = &g->alts[i];
        const PCRE2_SIZE *ov;
        if (a->lit && !memmem(s, n, a->lit, a->litlen))
            continue; /* cannot match */
        /* both 0: weir's guard off, one plain search with PCRE2's own limits (how bench/filters.c measures the guard) */
        int rc = g->match_limit || g->time_ns ? rx_exec_budget(&a->re, s, n, &ov, &b)
                                              : rx_exec_limit(&a->re, s, n, &ov, 0, g->depth_limit);
        if (rc == 0)
            continue;
        if (rc == RX_LIMIT || rc == RX_TIMEOUT) {
            atomic_fetch_add_explicit(&g->over_limit, 1, memory_order_relaxed);
            if (g->fkey)
                return failure_record(c, g, s, n, GROK_OVER_LIMIT);
            if (err && errlen) {
                if (rc == RX_LIMIT)
                    snprintf(err, errlen,
                             "grok pattern %s gave up on the text at its match limit (grok_match_limit %u, "
                             "grok_depth_limit %u)",
                             a->label, g->match_limit, g->depth_limit);
                else
                    snprintf(err, errlen, "grok gave up on the text in pattern %s: grok_timeout (%g s) reached",
                             a->label, (double)g->time_ns / 1e9);
            }
            return PARSE_FAIL;
        }
        if (rc < 0) {
            if (err && errlen)
                snprintf(err, errlen, "grok pattern %s: regexp match failed", a->label);
            return PARSE_FAIL;
        }
        /* copy the ovector: conversions may run other regexps on this thread */
        size_t nov = 2 * ((size_t)a->re.ncap + 1);
        PCRE2_SIZE ovs[256], *ovc = nov <= 256 ? ovs : malloc(nov * sizeof *ovc);
        if (!ovc)
            return PARSE_FAIL;
        memcpy(ovc, ov, nov * sizeof *ovc);
        c->p = &a->view;
        rc = emit(c, g, a, s, ovc);
        c->p = p;
        if (ovc != ovs)
            free(ovc);
        return rc;
    }
    atomic_fetch_add_explicit(&g->unmatched, 1, memory_order_relaxed);
    return failure_record(c, g, s, n, GROK_NO_MATCH);
}

static int grok_stats(const parser *p, parse_stats *s)
{
    const grok *g = p->impl;
    if (!g)
        return 0;
    s->match_limit = atomic_load_explicit(&((grok *)g)->over_limit, memory_order_relaxed);
    s->unmatched = atomic_load_explicit(&((grok *)g)->unmatched, memory_order_relaxed);
    return 1;
}

static const conf_spec grok_spec[] = {
    {"grok_pattern", CONF_STR, NULL, 0, offsetof(parser, grok_pattern), NULL,
     "the grok pattern: `%{NAME}`, `%{NAME:field}`, `%{NAME:field:type}` (type `string`, `bool`, `integer`, "
     "`float`, `time`, `time:FORMAT`, `array`, `array:C`) and regexp; `[a][b]` fields are keys `a.b`. Either this or "
     "`<grok>` sections"},
    {"grok", CONF_SECTION, NULL, 0, 0, NULL,
     "one alternative pattern: `<grok>`; several are tried in order, the first that matches gives the record"},
    {"custom_pattern_path", CONF_STR, NULL, 0, offsetof(parser, custom_pattern_path), NULL,
     "a pattern file (`NAME regexp` lines, `#` comments), or a directory of them (read in name order); they add to "
     "(and may redefine) the built-in patterns. Unlike Fluentd, a path that does not exist is an error"},
    {"grok_failure_key", CONF_STR, NULL, 0, offsetof(parser, grok_failure_key), NULL,
     "when no pattern matches, the record is `{\"message\": text}` with this key set to `No grok pattern matched` "
     "(`Grok match limit exceeded` when a match gave up at `grok_match_limit`)"},
    {"grok_name_key", CONF_STR, NULL, 0, offsetof(parser, grok_name_key), NULL,
     "key for the name of the pattern that matched: the `<grok>` section's `name`, else its index (an integer from "
     "0); `grok_pattern` for `grok_pattern`"},
    {"grok_pattern_series", CONF_ENUM, "legacy", 0, offsetof(parser, grok_pattern_series), "legacy|ecs-v1",
     "field names of the built-in composite patterns: logstash's classic ones, or Elastic Common Schema ones"},
    {"grok_match_limit", CONF_INT, "1000000", 0, offsetof(parser, grok_match_limit), NULL,
     "weir: PCRE2 match limit, the backtracking steps a pattern may take from one start position in the text "
     "(a few milliseconds of work); a record where a pattern needs more is counted in "
     "`weir_grok_match_limit_total` and gets `grok_failure_key`, or fails to parse. 0: PCRE2's default (10 "
     "million)"},
    {"grok_depth_limit", CONF_INT, "10000", 0, offsetof(parser, grok_depth_limit), NULL,
     "weir: PCRE2 depth limit (nested backtracking) from one start position, for the interpreter used where JIT "
     "is unavailable; over it, as over `grok_match_limit`. 0: PCRE2's default"},
    {"grok_timeout", CONF_TIME, "250ms", 0, offsetof(parser, grok_timeout), NULL,
     "weir: the time one record may take over all the patterns it is tried with (PCRE2's limits are per start "
     "position, so a long line could add them up); over it, as over `grok_match_limit`. Checked between chunks "
     "of start positions: a short line on ordinary patterns reads no clock. 0: no bound (and with `grok_match_limit 0`, "
     "one plain PCRE2 search: no guard of weir's)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const parser_plugin parser_grok_plugin = {.name = "grok",
                                          .type = PARSE_GROK,
                                          .spec = grok_spec,
                                          .parse = parse_grok_text,
                                          .configure = grok_configure,
                                          .free = grok_free,
                                          .stats = grok_stats};
