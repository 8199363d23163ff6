/*
 * aggregator/router.h: Fluentd's event routing.
 *
 * A configuration becomes labels: the root label (top-level <filter> and
 * <match>) and one per <label @NAME>. A label is its <filter>/<match>
 * directives in configuration order. For a tag, the *plan* is Fluentd's
 * pipeline: every <filter> whose pattern matches, in order, up to the first
 * <match> whose pattern matches; that match's target receives the records.
 * Filters after that match never apply (Fluentd's rule).
 *
 * Targets: an output; `copy` (every <store>); `relabel` (the records enter
 * another label); `rewrite_tag_filter` (each record gets a new tag from its
 * first matching <rule> and re-enters the same label; no rule: dropped;
 * aggregator/rewrite_tag.h). Records a filter rejects (FILTER_ERROR) and
 * records an output reports as failed go to the @ERROR label when there is
 * one.
 *
 * Patterns: `*` one tag part, `**` zero or more parts (`a.**` matches `a`),
 * `{a,b}` alternatives, several space-separated patterns per directive
 * (aggregator/tagmatch.h).
 *
 * Threads: the router is immutable once built and shared by every worker.
 * Each worker owns a router_ctx (plan cache, scratch buffers); plans are
 * computed once per (label, tag) and cached there, so routing a batch of a
 * known tag costs one hash lookup. A batch whose plan has no filter and a
 * plain output target is submitted as it is: no record is decoded.
 */
#ifndef WEIR_ROUTER_H
#define WEIR_ROUTER_H

#include "lib/batch.h"
#include "config/conf.h"
#include "aggregator/filter.h"
#include "aggregator/output.h"

typedef struct rt_label rt_label;
typedef struct rt_target rt_target;
typedef struct router router;

/* Build from a parsed configuration (top-level filter/match/label).
 * Outputs it creates are appended to *outs (the caller starts/stops them).
 * NULL on error (errors added). */
router *router_build(conf_node *root, output ***outs, size_t *nouts, conf_errors *errs);
void router_free(router *r);

/* Reload (main thread, around router_build only): outputs are made by `fn`
 * instead of output_create, so an unchanged output can be carried over with
 * its buffer and connections. NULL restores output_create. */
typedef output *(*router_output_fn)(void *arg, conf_node *n, const char *pattern, int index, conf_errors *errs);
void router_set_output_factory(router_output_fn fn, void *arg);

/* The label a source's `@label` names, or the root label for NULL. NULL if
 * no such label (an error was added). */
rt_label *router_label(router *r, const char *name, const char *file, int line, conf_errors *errs);
rt_label *router_root(router *r);
const char *rt_label_name(const rt_label *l);

/* One batch handed to one output as the result of routing. */
typedef struct rt_delivery {
    output *out;
    batch *b; /* one reference owned by the delivery */
    int flags; /* OUT_SUBMIT_* for output_submit */
} rt_delivery;

typedef struct router_ctx router_ctx;
router_ctx *router_ctx_new(router *r);
void router_ctx_free(router_ctx *c);

/*
 * Route `b` (any number of segments) entering label `l`. Appends deliveries
 * to the context's list (router_ctx_deliveries); the caller submits them and
 * then calls router_ctx_reset. Records dropped by filters or matching
 * nothing are counted; records sent to @ERROR become deliveries too.
 */
int router_route(router_ctx *c, rt_label *l, batch *b);
rt_delivery *router_ctx_deliveries(router_ctx *c, size_t *n);
void router_ctx_reset(router_ctx *c);

/*
 * Hand records an output rejected to @ERROR (from a buffer flush thread).
 * Waits until the @ERROR outputs have accepted them. Returns 0 when they
 * were accepted, -1 when there is no @ERROR label or it refused them (the
 * caller then writes a dead letter).
 */
int router_emit_error(router *r, const batch *b, const char *reason);
/* The same into label l (dead_letter_label, aggregator/dead_letter.c). */
int router_emit_to(router *r, rt_label *l, const batch *b, const char *reason);

int router_congested(const router *r);

/* Run every filter's tick (filter_plugin.tick; mode FILTER_TICK*) and route
 * what they emit into their labels; at shutdown and reload it waits until
 * the outputs accepted it (they may stop next), the periodic tick does not.
 * Main thread: once a second, at shutdown (after the inputs stopped) and on
 * the old router at a reload (workers parked). */
void router_tick(router *r, double now, int mode);

/* Call fn for every <filter> of every label, in configuration order. */
void router_each_filter(const router *r, void (*fn)(const filter *f, void *arg), void *arg);

/* counters */
typedef struct router_stats {
    uint64_t filtered_out, unmatched, to_error, rewritten;
} router_stats;
void router_stats_get(const router *r, router_stats *s);

#endif
