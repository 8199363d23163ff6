/*
 * aggregator/filter.h: the filter plugin interface (Fluentd's <filter>).
 *
 * A filter sees one record at a time, as msgpack, on a worker thread, and
 * says what becomes of it. It may run on several workers at once: the
 * plugin context is immutable after init; per-call scratch lives in the
 * filter_call the core hands in (one per worker).
 *
 * Results:
 *   FILTER_KEEP     the record goes on unchanged (cheapest: no copy)
 *   FILTER_MODIFY   the record is replaced by the map the filter appended
 *                   to call->out (and call->sec/nsec if it changed the time)
 *   FILTER_DROP     the record is discarded (grep)
 *   FILTER_ERROR    the record goes to the @ERROR label, with call->err set
 *                   (Fluentd's emit_error_event, e.g. parser failures with
 *                   emit_invalid_record_to_error)
 *   FILTER_ERROR_KEEP  both: the record as the filter got it goes to @ERROR
 *                   AND the record continues (as appended to call->out, or
 *                   unchanged if nothing was appended). Fluentd's parser
 *                   filter with reserve_data does this for unparsable text.
 */
#ifndef WEIR_FILTER_H
#define WEIR_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"
#include "lib/wbuf.h"
#include "config/conf.h"

enum { FILTER_KEEP = 0, FILTER_MODIFY = 1, FILTER_DROP = 2, FILTER_ERROR = 3, FILTER_ERROR_KEEP = 4 };

typedef struct filter filter;
struct parser;

/* Records a filter emits as new events (aggregate's summaries): entries
 * ([time, record], batch_put_entry_head) appended to w, n of them, all with
 * tag `tag` (the filter's; it does not change between calls). The router
 * routes them into the filter's label from its start, like records a
 * rewrite_tag_filter re-tagged, after the batch being filtered. */
typedef struct filter_emit {
    wbuf w;
    uint32_t n;
    const char *tag;
    size_t tag_len;
} filter_emit;

/* filter_plugin.tick's `mode` */
enum { FILTER_TICK = 0, FILTER_TICK_SHUTDOWN = 1, FILTER_TICK_RELOAD = 2 };

typedef struct filter_call {
    const char *tag; /* the record's tag */
    size_t tag_len;
    uint32_t sec, nsec;    /* in: the record's time; out: may be changed with FILTER_MODIFY */
    const uint8_t *meta;   /* Fluent Bit metadata map or NULL (read only) */
    size_t meta_len;
    wbuf *out;             /* FILTER_MODIFY: append exactly one msgpack map here */
    wbuf *scratch;         /* free scratch space for the filter (reset by the filter as it likes) */
    wbuf *aux;             /* a second one, distinct from scratch and out (may be NULL in tests) */
    char err[256];         /* FILTER_ERROR: why */
    filter_emit *emit;     /* new records to emit (may be NULL: the filter then emits none) */
} filter_call;

/* A stateful filter's counters (aggregate's), for /metrics */
typedef struct filter_stats {
    uint64_t open, evicted, summaries;
    /* its Kafka changelog: states written (delivered or queued), writes
     * failed, states installed by restores */
    uint64_t changelog_written, changelog_failed, restored;
} filter_stats;

typedef struct filter_plugin {
    const char *name;
    const conf_spec *spec; /* bound into ctx (ctx_size bytes, zeroed) before init */
    size_t ctx_size;
    int (*init)(filter *f, conf_node *n, conf_errors *errs);
    int (*filter)(filter *f, filter_call *call, const uint8_t *rec, size_t rec_len);
    void (*exit)(filter *f); /* also after a failed init */
    /* optional: the filter's <parse> section (NULL: none), whose counters
     * /metrics shows (parse_stats_get: grok's) */
    const struct parser *(*parser)(const filter *f);
    /* optional: called about once a second on the main thread (mode
     * FILTER_TICK; now: clock_mono()), once at shutdown after the inputs
     * stopped (FILTER_TICK_SHUTDOWN), and on the old filters at a SIGHUP
     * reload while the workers are parked (FILTER_TICK_RELOAD); what it
     * appends to em is routed like records emitted from filter() (router_tick) */
    void (*tick)(filter *f, double now, int mode, filter_emit *em);
    /* optional: counters for /metrics (aggregate's); 0 when it has none */
    int (*stats)(const filter *f, filter_stats *s);
} filter_plugin;

/* A filter plugin from the naming convention: FILTER_PLUGIN(grep, grep)
 * defines filter_grep_plugin, named "grep", from grep_spec, the context
 * type grep_ctx and grep_init, grep_filter and grep_exit. */
#define FILTER_PLUGIN(name_, prefix, ...)                                                                              \
    const filter_plugin filter_##name_##_plugin = {                                                                    \
        .name = #name_,                                                                                                \
        .spec = prefix##_spec,                                                                                         \
        .ctx_size = sizeof(prefix##_ctx),                                                                              \
        .init = prefix##_init,                                                                                         \
        .filter = prefix##_filter,                                                                                     \
        .exit = prefix##_exit,                                                                                         \
        __VA_ARGS__                                                                                                    \
    }

struct filter {
    const filter_plugin *plugin;
    void *ctx;
    char *id;
    char *pattern;
};

/* The plugins (aggregator/registry.c). */
const filter_plugin *const *filter_plugins(void); /* NULL-terminated, in registry order */
const filter_plugin *filter_plugin_find(const char *name);
const char *const *filter_plugin_names(void);

filter *filter_create(conf_node *n, int index, conf_errors *errs);

struct rec_path;
/* Compile a list parameter of record accessors (`param` of section `node`)
 * into *out (*n entries, empty strings skipped). 0, or -1 with errors added.
 * rec_paths_free(*out, *n) frees them. */
int filter_compile_keys(char **keys, struct rec_path **out, size_t *n, const char *param, conf_node *node,
                        conf_errors *errs);
void filter_destroy(filter *f);

/* Hooks of stateful filters into the consumer-group sources (aggregate's
 * changelog, docs/architecture.md "Correlation state"). A source that
 * commits offsets calls filter_hooks_barrier() after the outputs hold a
 * burst and before it stores its offsets (nonzero: a hook could not make
 * its state durable; do not store them), and filter_hooks_partitions() on a
 * rebalance: `assigned` 1 before it starts reading the partitions, 0 after
 * it committed them and before it lets them go. */
typedef struct filter_part {
    const char *topic;
    int32_t partition;
} filter_part;
typedef struct filter_hooks {
    void *arg;
    int (*barrier)(void *arg);
    void (*partitions)(void *arg, const filter_part *p, size_t n, int assigned);
} filter_hooks;
void filter_hooks_add(const filter_hooks *h);
void filter_hooks_remove(void *arg);
int filter_hooks_barrier(void);
void filter_hooks_partitions(const filter_part *p, size_t n, int assigned);

#endif
