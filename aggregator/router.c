/* aggregator/router.c: labels, filter/match rules, plans, targets; see router.h. Tag patterns are
 * tagmatch.c, rewrite_tag_filter rewrite_tag.c. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "router.h"

#include <pcre2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/array.h"
#include "lib/log.h"
#include "aggregator/rewrite_tag.h"
#include "aggregator/tagmatch.h"
#include "aggregator/tap.h"

/* ---- structures ----------------------------------------------------------------------- */

enum { T_OUTPUT, T_COPY, T_RELABEL, T_REWRITE };
enum { R_FILTER, R_MATCH };

struct rt_target {
    int kind;
    output *out;
    rt_target **stores;
    size_t nstores;
    char *label_name; /* relabel, or rewrite_tag_filter's @label: resolved after build */
    const char *label_file;
    int label_line;
    rt_label *label;
    rt_label *owner; /* the label this target's <match> is in (rewrite re-enters it) */
    rewrite_tag *rw; /* T_REWRITE */
    int ignore_error; /* <store ignore_error> */
};

typedef struct rt_rule {
    int kind;
    char *patterns;
    filter *f;
    rt_target *t;
} rt_rule;

struct rt_label {
    char *name; /* NULL: root */
    rt_rule *rules;
    size_t n;
};

struct router {
    rt_label **labels; /* [0] is the root */
    size_t nlabels;
    rt_label *error_label;
    output **outputs; /* every output, for congestion checks */
    size_t noutputs;
    rt_target **targets; /* every target, to free */
    size_t ntargets;
    atomic_uint_fast64_t filtered_out, unmatched, to_error, rewritten;
};

/* SIGHUP reload: who makes the outputs of the router being built (main thread). */
static router_output_fn out_factory;
static void *out_factory_arg;
void router_set_output_factory(router_output_fn fn, void *arg)
{
    out_factory = fn;
    out_factory_arg = arg;
}

/* ---- building -------------------------------------------------------------------------- */

static rt_target *target_create(router *r, rt_label *owner, conf_node *n, const char *pattern, int *index,
                                output ***outs, size_t *nouts, conf_errors *errs);

static rt_target *target_create(router *r, rt_label *owner, conf_node *n, const char *pattern, int *index,
                                output ***outs, size_t *nouts, conf_errors *errs)
{
    conf_param *type = conf_get(n, "@type");
    if (!type) {
        conf_errors_add(errs, n->file, n->line, "missing @type in <%s%s%s>", n->name, n->arg ? " " : "",
                        n->arg ? n->arg : "");
        return NULL;
    }
    const char *ty = type->value;
    if (!strcmp(ty, "relabel") && !conf_get_value(n, "@label")) {
        conf_errors_add(errs, n->file, n->line, "@type relabel needs @label");
        return NULL;
    }
    rt_target *t = calloc(1, sizeof *t);
    t->owner = owner;
    *ARRAY_XPUSH(r->targets, r->ntargets) = t;
    if (!strcmp(ty, "copy")) {
        t->kind = T_COPY;
        int bad = 0;
        for (size_t i = 0; i < n->nparams; i++) {
            conf_param *p = &n->params[i];
            if (p->key[0] == '@' || !strcmp(p->key, "copy_mode")) {
                p->used = 1; /* records are immutable in weir: every copy mode is a deep copy */
                continue;
            }
            conf_errors_add(errs, p->file, p->line, "unknown parameter '%s' in <%s %s> of @type copy", p->key, n->name,
                            n->arg ? n->arg : "");
            bad = 1;
        }
        for (size_t i = 0; i < n->nchildren; i++) {
            conf_node *c = n->children[i];
            if (strcmp(c->name, "store") != 0) {
                const char *const cands[] = {"store", NULL};
                const char *s = conf_suggest(c->name, cands);
                conf_errors_add(errs, c->file, c->line, "unknown section <%s> in @type copy%s", c->name,
                                s ? "; did you mean <store>?" : " (expected <store>)");
                bad = 1;
                continue;
            }
            /* <store ignore_error>: if this store refuses the records (e.g. its buffer is
             * full with throw_exception), the request is still acked for the others */
            rt_target *st = target_create(r, owner, c, pattern, index, outs, nouts, errs);
            if (!st) {
                bad = 1;
                continue;
            }
            if (c->arg && c->arg[0]) {
                if (!strcmp(c->arg, "ignore_error")) {
                    st->ignore_error = 1;
                } else {
                    conf_errors_add(errs, c->file, c->line, "unknown <store> argument '%s' (only ignore_error)",
                                    c->arg);
                    bad = 1;
                }
            }
            *ARRAY_XPUSH(t->stores, t->nstores) = st;
        }
        if (!t->nstores && !bad) {
            conf_errors_add(errs, n->file, n->line, "@type copy needs at least one <store>");
            bad = 1;
        }
        return bad ? NULL : t;
    }
    if (!strcmp(ty, "relabel")) {
        t->kind = T_RELABEL;
        conf_param *l = conf_get(n, "@label");
        if (!l) {
            conf_errors_add(errs, n->file, n->line, "@type relabel needs @label");
            return NULL;
        }
        t->label_name = strdup(l->value);
        t->label_file = l->file;
        t->label_line = l->line;
        for (size_t i = 0; i < n->nparams; i++)
            if (n->params[i].key[0] != '@') {
                conf_errors_add(errs, n->params[i].file, n->params[i].line,
                                "unknown parameter '%s' in @type relabel (only @label)", n->params[i].key);
                return NULL;
            }
        return t;
    }
    if (!strcmp(ty, "rewrite_tag_filter")) {
        t->kind = T_REWRITE;
        conf_param *l = conf_get(n, "@label");
        if (l) { /* re-emit into that label instead of this <match>'s own */
            t->label_name = strdup(l->value);
            t->label_file = l->file;
            t->label_line = l->line;
        }
        t->rw = rewrite_tag_create(n, errs);
        return t->rw ? t : NULL;
    }
    t->kind = T_OUTPUT;
    t->out = out_factory ? out_factory(out_factory_arg, n, pattern, (*index)++, errs)
                         : output_create(n, pattern, (*index)++, errs);
    if (!t->out)
        return NULL;
    *ARRAY_XPUSH(*outs, *nouts) = t->out;
    return t;
}

static void label_add_rule(rt_label *l, int kind, const char *patterns, filter *f, rt_target *t)
{
    *ARRAY_XPUSH(l->rules, l->n) = (rt_rule){kind, strdup(patterns), f, t};
}

/* The <filter>/<match> directives of one label (or of the root). */
static void build_label(router *r, rt_label *l, conf_node *n, int *findex, int *oindex, output ***outs,
                        size_t *nouts, conf_errors *errs)
{
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *c = n->children[i];
        int is_filter = !strcmp(c->name, "filter"), is_match = !strcmp(c->name, "match");
        if (!is_filter && !is_match)
            continue;
        const char *pat = c->arg && c->arg[0] ? c->arg : NULL;
        if (!pat) {
            /* Fluentd: <filter> and <match> without a pattern mean "**" */
            pat = "**";
        }
        if (is_filter) {
            filter *f = filter_create(c, (*findex)++, errs);
            if (f)
                label_add_rule(l, R_FILTER, pat, f, NULL);
        } else {
            rt_target *t = target_create(r, l, c, pat, oindex, outs, nouts, errs);
            if (t)
                label_add_rule(l, R_MATCH, pat, NULL, t);
        }
    }
}

static rt_label *find_label(router *r, const char *name)
{
    if (!strcmp(name, "@ROOT")) /* Fluentd 1.14+: the top level */
        return r->labels[0];
    for (size_t i = 1; i < r->nlabels; i++)
        if (!strcmp(r->labels[i]->name, name))
            return r->labels[i];
    return NULL;
}

router *router_build(conf_node *root, output ***outs, size_t *nouts, conf_errors *errs)
{
    size_t before = errs->n;
    router *r = calloc(1, sizeof *r);
    int findex = 0, oindex = 0;
    rt_label *rl = calloc(1, sizeof *rl);
    *ARRAY_XPUSH(r->labels, r->nlabels) = rl;
    /* labels first, so relabel/@label can refer to labels defined later */
    for (size_t i = 0; i < root->nchildren; i++) {
        conf_node *c = root->children[i];
        if (strcmp(c->name, "label") != 0)
            continue;
        if (!c->arg || c->arg[0] != '@') {
            conf_errors_add(errs, c->file, c->line, "<label> needs a name starting with @, e.g. <label @ERROR>");
            continue;
        }
        if (find_label(r, c->arg)) {
            conf_errors_add(errs, c->file, c->line, "label %s is defined twice", c->arg);
            continue;
        }
        rt_label *l = calloc(1, sizeof *l);
        l->name = strdup(c->arg);
        *ARRAY_XPUSH(r->labels, r->nlabels) = l;
        for (size_t k = 0; k < c->nparams; k++)
            conf_errors_add(errs, c->params[k].file, c->params[k].line, "parameter '%s' directly inside <label %s>",
                            c->params[k].key, c->arg);
        for (size_t k = 0; k < c->nchildren; k++) {
            conf_node *cc = c->children[k];
            if (strcmp(cc->name, "filter") && strcmp(cc->name, "match")) {
                const char *const cands[] = {"filter", "match", NULL};
                char where[512];
                snprintf(where, sizeof where, "in <label %s>", c->arg);
                conf_error_unknown(errs, cc->file, cc->line, "section", cc->name, where, cands);
            }
        }
        build_label(r, l, c, &findex, &oindex, outs, nouts, errs);
        if (!strcmp(l->name, "@ERROR"))
            r->error_label = l;
    }
    build_label(r, rl, root, &findex, &oindex, outs, nouts, errs);
    for (size_t i = 0; i < r->ntargets; i++) {
        rt_target *t = r->targets[i];
        if (t->label_name && !(t->label = find_label(r, t->label_name)))
            conf_errors_add(errs, t->label_file, t->label_line, "%s to undefined label %s",
                            t->kind == T_RELABEL ? "relabel" : "rewrite_tag_filter @label", t->label_name);
    }
    r->outputs = *outs;
    r->noutputs = *nouts;
    if (errs->n > before) {
        r->outputs = NULL;
        r->noutputs = 0;
        router_free(r);
        return NULL;
    }
    return r;
}

void router_free(router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nlabels; i++) {
        rt_label *l = r->labels[i];
        for (size_t k = 0; k < l->n; k++) {
            free(l->rules[k].patterns);
            filter_destroy(l->rules[k].f);
        }
        free(l->rules);
        free(l->name);
        free(l);
    }
    free(r->labels);
    for (size_t i = 0; i < r->ntargets; i++) {
        rt_target *t = r->targets[i];
        free(t->stores);
        free(t->label_name);
        rewrite_tag_free(t->rw);
        free(t);
    }
    free(r->targets);
    free(r);
}

rt_label *router_root(router *r) { return r->labels[0]; }
const char *rt_label_name(const rt_label *l) { return l->name ? l->name : "ROOT"; }

rt_label *router_label(router *r, const char *name, const char *file, int line, conf_errors *errs)
{
    if (!name)
        return r->labels[0];
    rt_label *l = find_label(r, name);
    if (!l)
        conf_errors_add(errs, file, line, "@label %s is not defined", name);
    return l;
}

int router_congested(const router *r)
{
    for (size_t i = 0; i < r->noutputs; i++)
        if (output_congested(r->outputs[i]))
            return 1;
    return 0;
}

void router_each_filter(const router *r, void (*fn)(const filter *f, void *arg), void *arg)
{
    for (size_t i = 0; i < r->nlabels; i++)
        for (size_t k = 0; k < r->labels[i]->n; k++)
            if (r->labels[i]->rules[k].f)
                fn(r->labels[i]->rules[k].f, arg);
}

void router_stats_get(const router *r, router_stats *s)
{
    s->filtered_out = atomic_load(&((router *)r)->filtered_out);
    s->unmatched = atomic_load(&((router *)r)->unmatched);
    s->to_error = atomic_load(&((router *)r)->to_error);
    s->rewritten = atomic_load(&((router *)r)->rewritten);
}

/* ---- plans and the per-worker cache ------------------------------------------------------ */

typedef struct plan {
    const rt_label *label;
    char *tag;
    uint64_t hash;
    filter **filters;
    size_t nfilters;
    int emits; /* a filter that may emit records (filter_plugin.tick) */
    rt_target *target; /* NULL: no match */
} plan;

#define PLAN_SLOTS 4096 /* power of two; the cache is cleared when 3/4 full */

struct router_ctx {
    router *r;
    plan **slots;
    size_t used;
    rt_delivery *dl;
    size_t ndl, capdl;
    wbuf ping, pong, scratch, aux, errs_buf;
    wbuf text;
    pcre2_match_data *md;
};

static uint64_t hash_tag(const rt_label *l, const char *tag, size_t len)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)l;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)tag[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void plan_free(plan *p)
{
    free(p->tag);
    free(p->filters);
    free(p);
}

static plan *plan_compute(router *r, const rt_label *l, const char *tag, size_t tag_len, uint64_t h)
{
    plan *p = calloc(1, sizeof *p);
    p->label = l;
    p->tag = strndup(tag, tag_len);
    p->hash = h;
    for (size_t i = 0; i < l->n; i++) {
        const rt_rule *ru = &l->rules[i];
        if (!route_patterns_match(ru->patterns, p->tag))
            continue;
        if (ru->kind == R_FILTER) {
            *ARRAY_XPUSH(p->filters, p->nfilters) = ru->f;
            if (ru->f->plugin->tick)
                p->emits = 1;
        } else {
            p->target = ru->t;
            break;
        }
    }
    if (!p->target)
        wlog_warn("router", "no <match> in %s for tag '%s': its records are discarded", rt_label_name(l), p->tag);
    return p;
}

static plan *plan_get(router_ctx *c, const rt_label *l, const char *tag, size_t tag_len)
{
    uint64_t h = hash_tag(l, tag, tag_len);
    size_t i = h & (PLAN_SLOTS - 1);
    for (;;) {
        plan *p = c->slots[i];
        if (!p)
            break;
        if (p->hash == h && p->label == l && !strncmp(p->tag, tag, tag_len) && !p->tag[tag_len])
            return p;
        i = (i + 1) & (PLAN_SLOTS - 1);
    }
    if (c->used >= PLAN_SLOTS * 3 / 4) {
        /* many distinct tags: start over rather than grow without bound */
        for (size_t k = 0; k < PLAN_SLOTS; k++)
            if (c->slots[k]) {
                plan_free(c->slots[k]);
                c->slots[k] = NULL;
            }
        c->used = 0;
        i = h & (PLAN_SLOTS - 1);
    }
    plan *p = plan_compute(c->r, l, tag, tag_len, h);
    c->slots[i] = p;
    c->used++;
    return p;
}

router_ctx *router_ctx_new(router *r)
{
    router_ctx *c = calloc(1, sizeof *c);
    c->r = r;
    c->slots = calloc(PLAN_SLOTS, sizeof *c->slots);
    c->md = pcre2_match_data_create(32, NULL);
    return c;
}

void router_ctx_reset(router_ctx *c)
{
    for (size_t i = 0; i < c->ndl; i++)
        batch_unref(c->dl[i].b);
    c->ndl = 0;
}

void router_ctx_free(router_ctx *c)
{
    if (!c)
        return;
    router_ctx_reset(c);
    for (size_t k = 0; k < PLAN_SLOTS; k++)
        if (c->slots[k])
            plan_free(c->slots[k]);
    free(c->slots);
    free(c->dl);
    wbuf_free(&c->ping);
    wbuf_free(&c->pong);
    wbuf_free(&c->scratch);
    wbuf_free(&c->aux);
    wbuf_free(&c->errs_buf);
    wbuf_free(&c->text);
    pcre2_match_data_free(c->md);
    free(c);
}

rt_delivery *router_ctx_deliveries(router_ctx *c, size_t *n)
{
    *n = c->ndl;
    return c->dl;
}

static void deliver(router_ctx *c, output *o, batch *b, int flags)
{
    if (c->ndl == c->capdl) {
        c->capdl = c->capdl ? c->capdl * 2 : 8;
        c->dl = realloc(c->dl, c->capdl * sizeof *c->dl);
    }
    batch_ref(b);
    c->dl[c->ndl++] = (rt_delivery){o, b, flags};
    tap_offer(o->id, b);
}

/* ---- routing ------------------------------------------------------------------------------- */

static int route_one(router_ctx *c, const rt_label *l, batch *b, const char *tag, size_t tag_len, int depth);

/* Write one entry [time(, meta)] record into w. */
static int put_entry(wbuf *w, uint32_t sec, uint32_t nsec, const uint8_t *meta, size_t meta_len, const uint8_t *rec,
                     size_t rec_len)
{
    return batch_put_entry_head(w, sec, nsec, meta, meta_len) || wbuf_add(w, rec, rec_len) ? -1 : 0;
}

static batch *batch_from(wbuf *w, const char *tag, size_t tag_len, uint32_t n)
{
    size_t len;
    uint8_t *data = wbuf_steal(w, &len);
    batch *b = batch_new(tag, tag_len, data, len, n);
    if (!b)
        free(data);
    return b;
}

static void to_error(router_ctx *c, const rt_label *from, batch *eb, int depth)
{
    router *r = c->r;
    atomic_fetch_add(&r->to_error, eb->nrecords);
    if (from == r->error_label) {
        wlog_warn("router", "a filter in <label @ERROR> rejected %u records of tag '%s': dropped", eb->nrecords,
                  eb->tag);
        return;
    }
    if (!r->error_label) {
        wlog_warn("router", "%u records of tag '%s' were rejected and there is no <label @ERROR>: dropped",
                  eb->nrecords, eb->tag);
        return;
    }
    route_one(c, r->error_label, eb, eb->tag, eb->tag_len, depth + 1);
}

/* rewrite_tag_filter (rewrite_tag.c): each new tag's records re-enter the label. */
static void route_rewrite(router_ctx *c, const rt_target *t, batch *b, const char *tag, size_t tag_len, int depth)
{
    router *r = c->r;
    size_t ng;
    uint32_t dropped, same;
    rewrite_tag_group *groups = rewrite_tag_split(t->rw, b, tag, tag_len, &c->text, &ng, &dropped, &same);
    if (same)
        wlog_warn("router", "rewrite_tag_filter: %u records of tag '%.*s' rewritten to the same tag: dropped", same,
                  (int)tag_len, tag);
    if (dropped + same)
        atomic_fetch_add(&r->filtered_out, dropped + same);
    for (size_t k = 0; k < ng; k++) {
        rewrite_tag_group *g = &groups[k];
        atomic_fetch_add(&r->rewritten, g->n);
        batch *nb = batch_from(&g->w, g->tag, g->tag_len, g->n);
        if (nb) {
            route_one(c, t->label ? t->label : t->owner, nb, nb->tag, nb->tag_len, depth + 1);
            batch_unref(nb);
        }
        wbuf_free(&g->w);
    }
    free(groups);
}

static void route_target(router_ctx *c, const rt_target *t, batch *b, const char *tag, size_t tag_len, int depth)
{
    switch (t->kind) {
    case T_OUTPUT:
        deliver(c, t->out, b, t->ignore_error ? OUT_SUBMIT_IGNORE_ERROR : 0);
        break;
    case T_COPY:
        for (size_t i = 0; i < t->nstores; i++)
            route_target(c, t->stores[i], b, tag, tag_len, depth);
        break;
    case T_RELABEL:
        route_one(c, t->label, b, tag, tag_len, depth + 1);
        break;
    case T_REWRITE:
        route_rewrite(c, t, b, tag, tag_len, depth);
        break;
    }
}

/* Run the plan's filters over every entry of b (one tag). Returns the
 * resulting batch (a new one, or b itself with a new reference when no
 * record changed), NULL when nothing is left. Rejected records go to @ERROR. */
static batch *run_filters(router_ctx *c, const plan *p, batch *b, int depth)
{
    router *r = c->r;
    wbuf out = {0};
    wbuf errw = {0};
    uint32_t nout = 0, nerr = 0, ndrop = 0;
    int changed = 0;
    batch_iter it;
    entry e;
    batch_iter_init(&it, b);
    const uint8_t *prev = it.p;
    filter_call call = {.tag = b->tag, .tag_len = b->tag_len, .scratch = &c->scratch, .aux = &c->aux};
    /* records the filters emit (one list per filter: each has its own tag) */
    filter_emit *ems = p->emits ? calloc(p->nfilters, sizeof *ems) : NULL;
    const rt_label *label = p->label;
    while (batch_iter_next(&it, &e) == 1) {
        const uint8_t *entry_start = prev, *entry_end = it.p;
        prev = it.p;
        const uint8_t *rec = e.record;
        size_t rec_len = e.record_len;
        call.sec = e.sec;
        call.nsec = e.nsec;
        call.meta = e.meta;
        call.meta_len = e.meta_len;
        int modified = 0, fate = FILTER_KEEP;
        for (size_t k = 0; k < p->nfilters; k++) {
            /* write into whichever buffer does not hold the current record: after a
             * KEEP the record is still where an earlier filter put it */
            wbuf *o = rec == c->ping.data ? &c->pong : &c->ping;
            o->len = 0;
            call.out = o;
            call.err[0] = 0;
            call.emit = ems ? &ems[k] : NULL;
            int rc = p->filters[k]->plugin->filter(p->filters[k], &call, rec, rec_len);
            if (rc == FILTER_MODIFY) {
                rec = o->data;
                rec_len = o->len;
                modified = 1;
            } else if (rc == FILTER_ERROR_KEEP) {
                /* a copy as the filter saw it to @ERROR; the record goes on */
                if (nerr == 0)
                    wlog_warn("router", "filter %s could not process a record of tag '%s': %s; a copy goes to @ERROR, "
                              "the record is kept",
                              p->filters[k]->id, b->tag, call.err[0] ? call.err : "error");
                put_entry(&errw, call.sec, call.nsec, e.meta, e.meta_len, rec, rec_len);
                nerr++;
                changed = 1;
                if (o->len) {
                    rec = o->data;
                    rec_len = o->len;
                    modified = 1;
                }
            } else if (rc == FILTER_DROP || rc == FILTER_ERROR) {
                fate = rc;
                if (rc == FILTER_ERROR && nerr == 0)
                    wlog_warn("router", "filter %s rejected a record of tag '%s': %s; sent to @ERROR",
                              p->filters[k]->id, b->tag, call.err[0] ? call.err : "error");
                break;
            }
        }
        if (fate == FILTER_DROP) {
            ndrop++;
            changed = 1;
            continue;
        }
        if (fate == FILTER_ERROR) {
            /* the record as the failing filter saw it */
            put_entry(&errw, call.sec, call.nsec, e.meta, e.meta_len, rec, rec_len);
            nerr++;
            changed = 1;
            continue;
        }
        if (!modified && call.sec == e.sec && call.nsec == e.nsec) {
            wbuf_add(&out, entry_start, (size_t)(entry_end - entry_start));
        } else {
            put_entry(&out, call.sec, call.nsec, e.meta, e.meta_len, rec, rec_len);
            changed = 1;
        }
        nout++;
    }
    if (ndrop)
        atomic_fetch_add(&r->filtered_out, ndrop);
    if (nerr) {
        batch *eb = batch_from(&errw, b->tag, b->tag_len, nerr);
        if (eb) {
            to_error(c, p->label, eb, depth);
            batch_unref(eb);
        }
    }
    wbuf_free(&errw);
    if (ems) {
        /* the emitted records enter the label from its start with their own
         * tag; all taken out first (routing them may run these filters again) */
        size_t nf = p->nfilters;
        batch **nbs = calloc(nf, sizeof *nbs);
        for (size_t k = 0; k < nf; k++) {
            if (ems[k].n && nbs)
                nbs[k] = batch_from(&ems[k].w, ems[k].tag, ems[k].tag_len, ems[k].n);
            wbuf_free(&ems[k].w);
        }
        free(ems);
        for (size_t k = 0; nbs && k < nf; k++)
            if (nbs[k]) {
                route_one(c, label, nbs[k], nbs[k]->tag, nbs[k]->tag_len, depth + 1);
                batch_unref(nbs[k]);
            }
        free(nbs);
    }
    if (!nout) {
        wbuf_free(&out);
        return NULL;
    }
    if (!changed) {
        wbuf_free(&out);
        batch_ref(b);
        return b;
    }
    return batch_from(&out, b->tag, b->tag_len, nout);
}

/* Route one single-tag batch into label l. */
static int route_one(router_ctx *c, const rt_label *l, batch *b, const char *tag, size_t tag_len, int depth)
{
    if (depth > 8) {
        wlog_warn("router", "tag '%.*s' was re-routed more than 8 times (relabel/rewrite_tag_filter loop?); %u "
                  "records dropped",
                  (int)tag_len, tag, b->nrecords);
        atomic_fetch_add(&c->r->unmatched, b->nrecords);
        return -1;
    }
    plan *p = plan_get(c, l, tag, tag_len);
    if (!p->target) {
        atomic_fetch_add(&c->r->unmatched, b->nrecords);
        return 0;
    }
    if (!p->nfilters) {
        route_target(c, p->target, b, tag, tag_len, depth);
        return 0;
    }
    batch *fb = run_filters(c, p, b, depth);
    if (fb) {
        route_target(c, p->target, fb, tag, tag_len, depth);
        batch_unref(fb);
    }
    return 0;
}

int router_route(router_ctx *c, rt_label *l, batch *b)
{
    if (b->nsegs == 1)
        return route_one(c, l, b, b->tag, b->tag_len, 0);
    /* several tags: route each segment as its own batch */
    for (uint32_t s = 0; s < b->nsegs; s++) {
        const batch_seg *sg = &b->segs[s];
        uint8_t *copy = malloc(sg->len ? sg->len : 1);
        if (!copy)
            return -1;
        memcpy(copy, b->data + sg->off, sg->len);
        batch *one = batch_new(sg->tag, sg->tag_len, copy, sg->len, sg->nrecords);
        if (!one) {
            free(copy);
            return -1;
        }
        route_one(c, l, one, one->tag, one->tag_len, 0);
        batch_unref(one);
    }
    return 0;
}

/* ---- @ERROR from flush threads -------------------------------------------------------------- */

int router_emit_error(router *r, const batch *b, const char *reason)
{
    if (!r->error_label)
        return -1;
    return router_emit_to(r, r->error_label, b, reason);
}

/* Hand the deliveries of c to their outputs and wait until they accepted
 * them: 0, or -1. */
static int submit_wait(router_ctx *c)
{
    size_t n;
    rt_delivery *dl = router_ctx_deliveries(c, &n);
    if (!n)
        return 0;
    ticket_sync st;
    ticket_sync_init(&st, (int)n);
    for (size_t i = 0; i < n; i++)
        output_submit(dl[i].out, dl[i].b, &st.t, dl[i].flags);
    return ticket_sync_wait(&st) ? -1 : 0;
}

static void tick_ticket_done(ticket *t)
{
    if (atomic_load(&t->failed))
        wlog_warn("router", "an output refused records emitted by a filter (aggregate summaries)");
    free(t);
}

void router_tick(router *r, double now, int mode)
{
    router_ctx *c = NULL;
    for (size_t li = 0; li < r->nlabels; li++) {
        rt_label *l = r->labels[li];
        for (size_t i = 0; i < l->n; i++) {
            filter *f = l->rules[i].f;
            if (l->rules[i].kind != R_FILTER || !f->plugin->tick)
                continue;
            filter_emit em = {0};
            f->plugin->tick(f, now, mode, &em);
            if (em.n) {
                if (!c && !(c = router_ctx_new(r))) {
                    wbuf_free(&em.w);
                    return;
                }
                batch *nb = batch_from(&em.w, em.tag, em.tag_len, em.n);
                if (nb) {
                    route_one(c, l, nb, nb->tag, nb->tag_len, 1);
                    batch_unref(nb);
                }
            }
            wbuf_free(&em.w);
        }
    }
    if (!c)
        return;
    if (mode != FILTER_TICK) {
        /* shutdown, reload: the outputs may stop next; wait until they took them */
        if (submit_wait(c))
            wlog_warn("router", "an output refused records emitted by a filter (aggregate summaries)");
    } else {
        /* the once-a-second tick runs on the main thread (listeners,
         * signals): it does not wait for the outputs */
        size_t n;
        rt_delivery *dl = router_ctx_deliveries(c, &n);
        for (size_t i = 0; i < n; i++) {
            ticket *t = malloc(sizeof *t);
            if (!t)
                continue;
            atomic_init(&t->outstanding, 1);
            atomic_init(&t->failed, 0);
            t->done = tick_ticket_done;
            output_submit(dl[i].out, dl[i].b, t, dl[i].flags);
        }
    }
    router_ctx_free(c);
}

int router_emit_to(router *r, rt_label *l, const batch *b, const char *reason)
{
    router_ctx *c = router_ctx_new(r);
    if (!c)
        return -1;
    int rc = 0;
    for (uint32_t s = 0; s < b->nsegs; s++) {
        const batch_seg *sg = &b->segs[s];
        uint8_t *copy = malloc(sg->len ? sg->len : 1);
        memcpy(copy, b->data + sg->off, sg->len);
        batch *one = batch_new(sg->tag, sg->tag_len, copy, sg->len, sg->nrecords);
        route_one(c, l, one, one->tag, one->tag_len, 1);
        batch_unref(one);
    }
    size_t n;
    rt_delivery *dl = router_ctx_deliveries(c, &n);
    if (n) {
        ticket_sync st;
        ticket_sync_init(&st, (int)n);
        for (size_t i = 0; i < n; i++)
            output_submit(dl[i].out, dl[i].b, &st.t, dl[i].flags);
        rc = ticket_sync_wait(&st) ? -1 : 0;
        atomic_fetch_add(&r->to_error, b->nrecords);
        if (rc == 0)
            wlog_warn("router", "%u records sent to %s: %s", b->nrecords, l->name ? l->name : "the top level",
                      reason);
    }
    router_ctx_free(c);
    return rc;
}
