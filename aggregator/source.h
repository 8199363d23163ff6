/*
 * aggregator/source.h: the source (input) plugin interface. Every
 * `<source @type X>` is one of these: forward (forward-protocol/), kafka
 * (aggregator/inputs/), monitor_agent and prometheus (aggregator/monitor.c).
 * They are named in one list, aggregator/registry.c; the engine (pipeline,
 * main, reload, --dry-run, /metrics, /api/plugins.json) walks that list and
 * the pipeline's sources and never names a plugin.
 *
 * Lifecycle, all on the main thread:
 *   create   parse and validate a <source> section: no sockets, no threads,
 *            no network (--dry-run calls only create and free);
 *   start    begin taking input (listen, subscribe, start threads), after
 *            the outputs and workers started;
 *   close    stop taking new input (listeners closed); optional;
 *   stop     after the workers finished their requests: hand over and commit
 *            what is in flight, so that everything a source routed has
 *            reached the outputs (tickets done) when stop returns; optional;
 *   free     release it (after stop, or without start).
 * create sets plugin, id and conf_fp; pipeline_load sets rt and label.
 *
 * Reload (SIGHUP, aggregator/reload.c): a source whose configuration text is
 * unchanged is carried over when its plugin has `adopt` (the running one
 * takes what the new one re-read, e.g. certificate files, and keeps its
 * listener and connections); an `observer` plugin keeps its running
 * instances whatever the new configuration says (a warning when it
 * differs); any other source is stopped and its successor started.
 *
 * A plugin that runs its protocol on the engine's worker threads (forward)
 * has worker hooks, called for every worker whatever the configuration (a
 * reload may add the first such source), and a gate that parks every worker
 * between requests while a reload swaps the pipeline.
 */
#ifndef WEIR_SOURCE_H
#define WEIR_SOURCE_H

#include <stddef.h>

#include "config/conf.h"
#include "aggregator/router.h"

typedef struct source source;
struct worker;
struct pipeline;
struct event_base;
struct evbuffer;
struct parser;

/* What start() and metrics() get from the engine. */
typedef struct source_env {
    struct event_base *base; /* the main thread's loop (listeners) */
    struct worker *workers;
    int nworkers;
    struct pipeline *pl; /* the running pipeline (other threads read it under monitor_lock) */
} source_env;

typedef struct source_plugin {
    const char *name;
    /* the table create binds the <source> section with (weir --list-params
     * lists it; sub-sections' tables: aggregator/params.c) */
    const conf_spec *spec;
    source *(*create)(conf_node *n, int index, conf_errors *errs); /* NULL with errors added */
    int (*start)(source *s, const source_env *env);                /* 0, or -1 (logged) */
    void (*close)(source *s);                                      /* optional */
    void (*stop)(source *s);                                       /* optional */
    void (*free)(source *s);
    void (*adopt)(source *running, source *nw); /* optional: reload keeps `running`; nw is freed after */
    /* 1: it observes the running pipeline (monitor): started after the
     * other sources, freed before them, and kept across reloads. */
    int observer;
    /* Prometheus families for /metrics, for all `n` sources of this plugin
     * at once (monitor thread, under monitor_lock). Optional. */
    void (*metrics)(source *const *srcs, size_t n, const source_env *env, struct evbuffer *out);
    /* optional: the source's <parse> section (NULL: none), whose counters
     * /metrics shows with the filters' (parse_stats_get) */
    const struct parser *(*parser)(const source *s);
    /* per-worker state (worker_init before the worker starts; worker_stop
     * on the worker's loop: finish requests, close connections, leave the
     * loop; worker_free after it joined). Optional, all three or none. */
    int (*worker_init)(struct worker *w);
    void (*worker_stop)(struct worker *w);
    void (*worker_free)(struct worker *w);
    /* reload gate over the workers: quiesce asks every worker to park once
     * its requests are acked; wait_parked: 0 when all are, -1 after timeout s;
     * release lets them read again on `newrt` (if not NULL) and frees the
     * gate. Optional, with the worker hooks. */
    void *(*quiesce)(struct worker *workers, int n);
    int (*wait_parked)(void *gate, int n, double timeout);
    void (*release)(void *gate, router *newrt, struct worker *workers, int n);
} source_plugin;

struct source {
    const source_plugin *plugin;
    char *id;      /* @id, or "<type>.<n>" */
    char *conf_fp; /* its configuration text (conf_fingerprint), for reload */
    router *rt;
    rt_label *label; /* where its records enter routing (@label, or the root) */
};

/* The plugins (aggregator/registry.c), NULL-terminated. */
const source_plugin *const *source_plugins(void);
const source_plugin *source_plugin_find(const char *name); /* NULL: none */
const char *const *source_plugin_names(void);

/* Every plugin's worker hooks, for one worker (main thread). */
int source_worker_init(struct worker *w);
void source_worker_stop(struct worker *w);
void source_worker_free(struct worker *w);

/* For the sources that run their own thread and wait for their records
 * (http, syslog, udp, monitor_agent's tag: Fluentd's router.emit): route
 * the `nrec` entries (weir's entry format, taken from *entries, which is
 * left empty) of one tag entering label `l`, hand them to the outputs and
 * wait until every output has them. While the outputs are congested it
 * waits first, up to `max_wait` seconds or until *stop is set. Returns 0
 * when every output accepted them (or nothing matched), -1 when one refused
 * them or the wait ran out (why says which). */
int source_emit_wait(router_ctx *rc, router *rt, rt_label *l, const char *tag, size_t tag_len, wbuf *entries,
                     uint32_t nrec, double max_wait, const int *stop, char *why, size_t whylen);

/* Reserve n bytes of a batch a source is about to hand on against the memory
 * budget (lib/membudget.h). At the budget the caller waits here (it reads
 * nothing meanwhile; wait reason `source`), polling every 5 ms, up to
 * max_wait seconds or until *stop is set; then the bytes are forced (the
 * batch is decoded already). The caller releases n when the batch's ticket
 * completes. */
void source_mem_reserve(size_t n, double max_wait, const int *stop);

/* Fill the common fields (id from @id or "<type>.<index>", conf_fp). 0 or -1. */
int source_init(source *s, const source_plugin *p, conf_node *n, int index);
/* Free what source_init allocated. */
void source_fini(source *s);

#endif
