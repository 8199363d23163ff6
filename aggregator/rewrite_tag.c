/*
 * aggregator/rewrite_tag.c: rewrite_tag_filter (fluent-plugin-rewrite-tag-
 * filter, an output plugin in Fluentd): a <match> target of the router that
 * gives each record a new tag from its first matching <rule> and re-emits
 * it. See rewrite_tag.h; the router (router.c) makes it for
 * `@type rewrite_tag_filter` and routes what it returns.
 */
#include "rewrite_tag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/array.h"
#include "lib/log.h"
#include "lib/rx.h"
#include "aggregator/record.h"

typedef struct rw_rule {
    rec_path key;
    rx re;
    int invert;
    char *tag; /* template */
} rw_rule;

struct rewrite_tag {
    rw_rule *rules;
    size_t n;
    char *remove_tag_prefix;
    rx remove_tag_regexp;
    int has_remove_tag_regexp;
    int capitalize;
    char hostname[256];
};

/* Write one entry [time(, meta)] record into w. */
static int put_entry(wbuf *w, uint32_t sec, uint32_t nsec, const uint8_t *meta, size_t meta_len, const uint8_t *rec,
                     size_t rec_len)
{
    return batch_put_entry_head(w, sec, nsec, meta, meta_len) || wbuf_add(w, rec, rec_len) ? -1 : 0;
}

/* ---- configuration ------------------------------------------------------------------------ */

void rewrite_tag_free(rewrite_tag *rw)
{
    if (!rw)
        return;
    for (size_t i = 0; i < rw->n; i++) {
        rec_path_free(&rw->rules[i].key);
        rx_free(&rw->rules[i].re);
        free(rw->rules[i].tag);
    }
    free(rw->rules);
    free(rw->remove_tag_prefix);
    if (rw->has_remove_tag_regexp)
        rx_free(&rw->remove_tag_regexp);
    free(rw);
}

rewrite_tag *rewrite_tag_create(conf_node *n, conf_errors *errs)
{
    rewrite_tag *rw = calloc(1, sizeof *rw);
    gethostname(rw->hostname, sizeof rw->hostname - 1);
    int bad = 0;
    for (size_t i = 0; i < n->nparams; i++) {
        conf_param *p = &n->params[i];
        if (p->key[0] == '@')
            continue;
        p->used = 1;
        if (!strcmp(p->key, "remove_tag_prefix")) {
            rw->remove_tag_prefix = strdup(p->value);
        } else if (!strcmp(p->key, "remove_tag_regexp")) {
            char err[200];
            if (rx_compile(&rw->remove_tag_regexp, p->value, RX_SLASHES, err, sizeof err) != 0) {
                conf_errors_add(errs, p->file, p->line, "%s", err);
                bad = 1;
            } else {
                rw->has_remove_tag_regexp = 1;
            }
        } else if (!strcmp(p->key, "capitalize_regex_backreference")) {
            if (conf_parse_bool(p->value, &rw->capitalize)) {
                conf_errors_add(errs, p->file, p->line, "invalid boolean value '%s' for parameter '%s'", p->value,
                                p->key);
                bad = 1;
            }
        } else if (!strcmp(p->key, "hostname_command") || !strcmp(p->key, "emit_mode")) {
            /* accepted: the hostname comes from gethostname(); records are always emitted per batch */
        } else if (!strncmp(p->key, "rewriterule", 11)) {
            conf_errors_add(errs, p->file, p->line,
                            "'%s' is the old rewrite_tag_filter syntax; use <rule> key KEY pattern /RE/ tag TAG </rule>",
                            p->key);
            bad = 1;
        } else {
            static const char *const known[] = {"remove_tag_prefix", "remove_tag_regexp",
                                                "capitalize_regex_backreference", "hostname_command", "emit_mode",
                                                NULL};
            char where[512];
            snprintf(where, sizeof where, "in <match %s>", n->arg);
            conf_error_unknown(errs, p->file, p->line, "parameter", p->key, where, known);
            bad = 1;
        }
    }
    size_t nrule_sections = 0;
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *c = n->children[i];
        nrule_sections += strcmp(c->name, "rule") == 0;
        if (strcmp(c->name, "rule") != 0) {
            conf_errors_add(errs, c->file, c->line, "unknown section <%s> in rewrite_tag_filter (expected <rule>)",
                            c->name);
            bad = 1;
            continue;
        }
        rw_rule rule = {0};
        const char *key = conf_get_value(c, "key"), *pat = conf_get_value(c, "pattern"), *tag = conf_get_value(c, "tag");
        const char *inv = conf_get_value(c, "invert");
        if (!key || !pat || !tag) {
            conf_errors_add(errs, c->file, c->line, "<rule> is missing '%s' (a rule needs key, pattern and tag)",
                            !key ? "key" : !pat ? "pattern" : "tag");
            bad = 1;
            continue;
        }
        for (size_t k = 0; k < c->nparams; k++)
            if (!c->params[k].used) {
                conf_errors_add(errs, c->params[k].file, c->params[k].line,
                                "unknown parameter '%s' in <rule> (key, pattern, tag, invert)", c->params[k].key);
                bad = 1;
            }
        char err[200];
        if (rec_path_compile(&rule.key, key, err, sizeof err) != 0) {
            conf_errors_add(errs, c->file, c->line, "invalid key '%s': %s", key, err);
            bad = 1;
            continue;
        }
        conf_param *pp = conf_get(c, "pattern");
        if (rx_compile(&rule.re, pat, RX_SLASHES, err, sizeof err) != 0) {
            conf_errors_add(errs, pp->file, pp->line, "%s", err);
            rec_path_free(&rule.key);
            bad = 1;
            continue;
        }
        if (inv && conf_parse_bool(inv, &rule.invert)) {
            conf_errors_add(errs, c->file, c->line, "invalid boolean value '%s' for parameter 'invert'", inv);
            bad = 1;
        }
        rule.tag = strdup(tag);
        *ARRAY_XPUSH(rw->rules, rw->n) = rule;
    }
    if (!nrule_sections && !bad) {
        conf_errors_add(errs, n->file, n->line, "rewrite_tag_filter needs at least one <rule>");
        bad = 1;
    }
    if (bad) {
        rewrite_tag_free(rw);
        return NULL;
    }
    return rw;
}

/* ---- records ------------------------------------------------------------------------------- */

/* Expand a rewrite_tag_filter tag template. */
static size_t rw_expand(const rewrite_tag *rw, const char *tmpl, const char *tag, const char *subject,
                        const PCRE2_SIZE *ov, int nmatch, char *out, size_t cap)
{
    size_t j = 0;
    /* tag parts of the (prefix-stripped) tag */
    const char *parts[64];
    size_t plen[64];
    int np = 0;
    for (const char *s = tag; *s && np < 64;) {
        const char *d = strchr(s, '.');
        size_t n = d ? (size_t)(d - s) : strlen(s);
        parts[np] = s;
        plen[np++] = n;
        s += n + (d ? 1 : 0);
        if (!d)
            break;
    }
#define PUT(p, n)                                                                                                      \
    do {                                                                                                               \
        size_t _n = (n);                                                                                               \
        if (j + _n >= cap)                                                                                             \
            _n = cap - 1 - j;                                                                                          \
        memcpy(out + j, (p), _n);                                                                                      \
        j += _n;                                                                                                       \
    } while (0)
    for (const char *s = tmpl; *s && j + 1 < cap;) {
        if (s[0] == '$' && s[1] >= '1' && s[1] <= '9') {
            int k = s[1] - '0';
            if (k < nmatch && ov[2 * k] != PCRE2_UNSET) {
                size_t st = ov[2 * k], n = ov[2 * k + 1] - ov[2 * k];
                size_t at = j;
                PUT(subject + st, n);
                if (rw->capitalize && j > at) { /* Ruby's String#capitalize */
                    if (out[at] >= 'a' && out[at] <= 'z')
                        out[at] = (char)(out[at] - 32);
                    for (size_t q = at + 1; q < j; q++)
                        if (out[q] >= 'A' && out[q] <= 'Z')
                            out[q] = (char)(out[q] + 32);
                }
            }
            s += 2;
        } else if (!strncmp(s, "${tag}", 6) || !strncmp(s, "__TAG__", 7)) {
            PUT(tag, strlen(tag));
            s += s[0] == '$' ? 6 : 7;
        } else if (!strncmp(s, "${hostname}", 11) || !strncmp(s, "__HOSTNAME__", 12)) {
            PUT(rw->hostname, strlen(rw->hostname));
            s += s[0] == '$' ? 11 : 12;
        } else if (!strncmp(s, "${tag_parts[", 12) || !strncmp(s, "__TAG_PARTS[", 12)) {
            char *e;
            long k = strtol(s + 12, &e, 10);
            const char *close = s[0] == '$' ? "]}" : "]__";
            if (strncmp(e, close, strlen(close)) == 0) {
                if (k < 0)
                    k += np;
                if (k >= 0 && k < np)
                    PUT(parts[k], plen[k]);
                s = e + strlen(close);
            } else {
                PUT(s, 1);
                s++;
            }
        } else {
            PUT(s, 1);
            s++;
        }
    }
#undef PUT
    out[j] = 0;
    return j;
}

rewrite_tag_group *rewrite_tag_split(const rewrite_tag *rw, const batch *b, const char *tag, size_t tag_len,
                                     wbuf *text, size_t *ngroups, uint32_t *ndropped, uint32_t *nsame)
{
    char base[1024];
    snprintf(base, sizeof base, "%.*s", (int)tag_len, tag);
    const char *btag = base;
    if (rw->remove_tag_prefix) {
        size_t pl = strlen(rw->remove_tag_prefix);
        if (!strncmp(btag, rw->remove_tag_prefix, pl)) {
            btag += pl;
            if (*btag == '.')
                btag++;
        }
    }
    char stripped[1024];
    const PCRE2_SIZE *ov;
    if (rw->has_remove_tag_regexp && rx_exec(&rw->remove_tag_regexp, (const uint8_t *)btag, strlen(btag), &ov) == 1) {
        snprintf(stripped, sizeof stripped, "%.*s%s", (int)ov[0], btag, btag + ov[1]);
        btag = stripped;
    }
    rewrite_tag_group *groups = NULL;
    size_t ng = 0;
    batch_iter it;
    entry e;
    batch_iter_init(&it, b);
    uint32_t dropped = 0, same = 0;
    while (batch_iter_next(&it, &e) == 1) {
        /* fluent-plugin-rewrite-tag-filter's rule walk: the value is
         * record[key].to_s (missing or nil: ""); an empty value never matches
         * a normal rule but is tested against an inverted one */
        int hit = -1;
        const PCRE2_SIZE *mov = NULL;
        uint32_t ncap = 0;
        for (size_t k = 0; k < rw->n && hit < 0; k++) {
            const rw_rule *ru = &rw->rules[k];
            size_t vlen;
            const uint8_t *v = rec_lookup(e.record, e.record_len, &ru->key, &vlen);
            text->len = 0;
            if (v && *v != 0xc0 && rec_value_text(text, v, vlen) != 0)
                continue;
            wbuf_addc(text, 0);
            size_t tl = text->len - 1;
            if (tl == 0 && !ru->invert)
                continue;
            const PCRE2_SIZE *ov2 = NULL;
            int m = rx_exec(&ru->re, text->data, tl, &ov2) == 1;
            if (m != ru->invert) {
                hit = (int)k;
                mov = m ? ov2 : NULL;
                ncap = m ? ru->re.ncap + 1 : 0;
            }
        }
        if (hit < 0) {
            dropped++;
            continue;
        }
        char nt[512];
        size_t ntl = rw_expand(rw, rw->rules[hit].tag, btag, (const char *)text->data, mov, (int)ncap, nt, sizeof nt);
        if (ntl == tag_len && !memcmp(nt, tag, tag_len)) {
            same++; /* the plugin drops a record rewritten to its own tag (a loop otherwise) */
            continue;
        }
        rewrite_tag_group *g = NULL;
        for (size_t k = 0; k < ng; k++)
            if (groups[k].tag_len == ntl && !memcmp(groups[k].tag, nt, ntl))
                g = &groups[k];
        if (!g) {
            g = ARRAY_XPUSH(groups, ng);
            memcpy(g->tag, nt, ntl + 1);
            g->tag_len = ntl;
        }
        put_entry(&g->w, e.sec, e.nsec, e.meta, e.meta_len, e.record, e.record_len);
        g->n++;
    }
    *ngroups = ng;
    *ndropped = dropped;
    *nsame = same;
    return groups;
}
