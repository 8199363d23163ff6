/*
 * aggregator/output.h: an output instance and the plugin interface.
 *
 * A plugin is a const table of callbacks plus a conf_spec table (Fluent Bit's
 * flb_output_plugin idea). The core owns threading and queueing: each output
 * instance has one thread that takes queued batches in order and hands them
 * to the plugin's `write`. Plugins never see sockets of inputs, never block
 * an input's event loop, and report OUT_OK / OUT_RETRY / OUT_ERROR.
 *
 * Threads: output_submit() is called by input threads (workers); everything
 * else in `output` except the atomics is owned by the output thread after
 * output_start(). Plugin callbacks run on the output thread, except init and
 * exit which run on the main thread before start / after join.
 *
 * Without a <buffer> section, `write` runs on the output thread before the
 * ticket is completed, so an ack means the plugin has taken the records
 * (e.g. a file output has write(2)-ed them). With one, the output thread
 * appends to the buffer (buffer/), whose flush threads call `write` through
 * the buffer's sink (buffer/sink.h); plugins are the same either way.
 */
#ifndef WEIR_OUTPUT_H
#define WEIR_OUTPUT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "lib/batch.h"
#include "config/conf.h"
#include "buffer/sink.h"

typedef struct output output;
struct buffer;
struct evbuffer;

typedef struct out_plugin {
    const char *name;
    const conf_spec *spec; /* parameters bound into ctx (ctx_size bytes, zeroed) */
    size_t ctx_size;
    /* After binding: validate, open resources. Add errors to errs and return -1 on failure. */
    int (*init)(output *o, conf_node *n, conf_errors *errs);
    /* Connect, start clients and threads (main thread, from output_start,
     * before any write): init only validates, so that --dry-run touches no
     * network. Optional; 0, or -1 (logged). */
    int (*start)(output *o);
    /* Write one batch. Output thread (unbuffered) or a flush thread (buffered;
     * never two calls at once for one output unless flush_thread_count > 1). */
    int (*write)(output *o, const batch *b, out_result *res);
    /* The queue just ran empty: a good moment to fflush. Output thread. Optional. */
    void (*idle)(output *o);
    /* Shutdown: a write blocked on the backend should return soon with
     * OUT_RETRY (buffer/sink.h, abort). Stopping thread, concurrently with
     * write. Optional. */
    void (*abort)(output *o);
    /* Release everything (also after a failed init). Optional. */
    void (*exit)(output *o);
    /* Append the plugin's own Prometheus families for /metrics, for all
     * `n` outputs of this plugin at once (a family's lines must be
     * contiguous). Monitor thread, concurrently with write: lock or use
     * atomics for what it reads. Optional. */
    void (*metrics)(output *const *outs, size_t n, struct evbuffer *out);
} out_plugin;

/* An output plugin from the naming convention: OUT_PLUGIN(file, file,
 * out_file) defines out_file_plugin, named "file", from file_spec, the
 * context type out_file and file_init, file_write and file_exit; more
 * members (.start, .idle, .metrics) may follow. */
#define OUT_PLUGIN(name_, prefix, ctx_type, ...)                                                                       \
    const out_plugin out_##name_##_plugin = {                                                                          \
        .name = #name_,                                                                                                \
        .spec = prefix##_spec,                                                                                         \
        .ctx_size = sizeof(ctx_type),                                                                                  \
        .init = prefix##_init,                                                                                         \
        .write = prefix##_write,                                                                                       \
        .exit = prefix##_exit,                                                                                         \
        __VA_ARGS__                                                                                                    \
    }

#define OUT_LAT_BUCKETS 11
extern const double out_lat_bounds[OUT_LAT_BUCKETS]; /* seconds: 0.005 .. 10 */

typedef struct out_item {
    struct out_item *next;
    batch *b;
    ticket *t;
    int flags;
} out_item;

/* output_submit flags */
#define OUT_SUBMIT_IGNORE_ERROR 1 /* <store ignore_error>: a failure here does not fail the ticket */

struct output {
    const out_plugin *plugin;
    void *ctx;
    double slow_flush; /* slow_flush_log_threshold, set by the init of a plugin that declares it; 0: never warn */
    char *id;      /* @id, or "<type>.<n>" */
    char *pattern; /* the <match> pattern, for logs */
    struct buffer *buf;  /* <buffer>, or NULL: write synchronously before the ack */
    char *conf_fp;       /* its configuration text (conf_fingerprint): reload keeps it when unchanged */
    int borrowed;        /* reload: lent to a pipeline being built; output_destroy leaves it alone */
    output *secondary;   /* <secondary>, or NULL (buffered outputs only) */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    out_item *head, *tail; /* FIFO, under mu */
    int stopping;          /* under mu */
    pthread_t thread;
    int started;

    atomic_size_t queued_bytes; /* back-pressure: inputs stop reading above queue_limit */
    size_t queue_limit;

    /* counters (metrics) */
    atomic_uint_fast64_t records_in, records_out, batches_in, write_errors, records_failed;
    /* latency of plugin->write calls (flushes), Prometheus histogram */
    atomic_uint_fast64_t lat_buckets[OUT_LAT_BUCKETS + 1]; /* last: +Inf */
    atomic_uint_fast64_t lat_count, lat_sum_us;
};

/* The plugins (aggregator/registry.c). */
const out_plugin *const *out_plugins(void); /* NULL-terminated, in registry order */
const out_plugin *out_plugin_find(const char *name);
const char *const *out_plugin_names(void); /* NULL-terminated, for did-you-mean */

/* Build an output from a <match>/<store> section. NULL on error (errors added). */
output *output_create(conf_node *n, const char *pattern, int index, conf_errors *errs);
/* Write a batch with the plugin, converting an out_result into one status
 * (used for unbuffered outputs and secondaries). */
int output_write_sync(output *o, const batch *b, char *why, size_t whylen);
int output_start(output *o);
/* Hand a batch (a new reference is taken) to the output; completes `t` later. */
void output_submit(output *o, batch *b, ticket *t, int flags);
static inline int output_congested(output *o)
{
    return atomic_load_explicit(&o->queued_bytes, memory_order_relaxed) > o->queue_limit;
}
/* Record how long one plugin->write took (any thread). */
void output_observe(output *o, double seconds);

/* Drain the queue, stop the thread (and buffer: flush_at_shutdown), call exit, free. */
void output_destroy(output *o);
/* Stop the ingest thread and the buffer's flushers, within `deadline` (monotonic s). */
void output_stop(output *o, double deadline);

#endif
