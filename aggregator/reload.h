/*
 * aggregator/reload.h: SIGHUP configuration reload (main thread).
 *
 * reload_run() re-reads the configuration; if it is invalid nothing changes
 * (every error is logged, the running configuration stays). Otherwise the
 * running pipeline is switched to it without closing client connections of
 * unchanged sources and without losing records: see reload.c.
 */
#ifndef WEIR_RELOAD_H
#define WEIR_RELOAD_H

#include <stdatomic.h>

#include "aggregator/pipeline.h"
#include "aggregator/worker.h"

struct event_base;

typedef struct reload_ctx {
    pipeline *pl;          /* the running pipeline, updated in place */
    worker *workers;
    int nworkers;
    struct event_base *base; /* main loop: listeners */
    const char *config_path; /* NULL: the embedded configuration */
    const char *embedded;
    int log_level_forced;    /* --log-level given: <system> log_level does not apply */
    conf_node *root;         /* the running configuration's tree */
    /* kept until exit (see reload.c) */
    router **old_routers;
    size_t nold_routers;
    conf_node **old_roots;
    size_t nold_roots;
} reload_ctx;

extern atomic_uint_fast64_t reload_ok_total, reload_failed_total; /* metrics */

/* 0: reloaded; -1: kept the running configuration (logged). */
int reload_run(reload_ctx *x);
/* At exit, after the pipeline is freed. */
void reload_free(reload_ctx *x);

#endif
