/*
 * aggregator/source.h: inputs other than in_forward (which has its own
 * worker-based machinery in forward-protocol/).
 *
 * A source plugin owns its thread(s). pipeline_load() creates it from a
 * <source> section (main thread) and sets `rt` and `label`; main starts it
 * after the outputs are started and stops it before the outputs are
 * stopped, so everything it routed has reached the outputs (tickets done)
 * by the time stop() returns. free() releases it (main thread, after stop).
 */
#ifndef WEIR_SOURCE_H
#define WEIR_SOURCE_H

#include "config/conf.h"
#include "aggregator/router.h"

typedef struct source source;

typedef struct source_plugin {
    const char *name;
    /* Parse and validate `n`; NULL with errors added. */
    source *(*create)(conf_node *n, int index, conf_errors *errs);
    int (*start)(source *s);  /* 0, or -1 (logged) */
    void (*stop)(source *s);  /* finish what is in flight, then return */
    void (*free)(source *s);
} source_plugin;

struct source {
    const source_plugin *plugin;
    char *id;
    router *rt;
    rt_label *label;
};

/* The registered plugins (NULL if `name` is none of them). */
const source_plugin *source_plugin_find(const char *name);

#endif
