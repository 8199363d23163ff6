/* aggregator/output.c: output instances, their thread and queue; see output.h. */
#include "output.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/list.h"
#include "lib/log.h"
#include "buffer/buffer.h"
#include "aggregator/compat_params.h"

/* The buffer's sink (buffer/sink.h): a flush is one plugin write, timed. */
static int sink_write(void *arg, const batch *b, out_result *res)
{
    output *o = arg;
    double t0 = clock_mono();
    int rc = o->plugin->write(o, b, res);
    double dt = clock_mono() - t0;
    output_observe(o, dt);
    if (o->slow_flush > 0 && dt > o->slow_flush) /* Fluentd's wording */
        wlog_warn("output", "%s: buffer flush took longer time than slow_flush_log_threshold: elapsed_time=%.3f "
                  "slow_flush_log_threshold=%.3f records=%u", o->id, dt, o->slow_flush, b->nrecords);
    return rc;
}

static int sink_secondary(void *arg, const batch *b, char *why, size_t whylen, const char **to)
{
    output *o = arg;
    if (!o->secondary)
        return -1;
    *to = o->secondary->id;
    return output_write_sync(o->secondary, b, why, whylen);
}

static void sink_abort(void *arg)
{
    output *o = arg;
    if (o->plugin->abort)
        o->plugin->abort(o);
}

/* A file buffer without `path` (Fluentd: buf_file#configure, plugin_id.rb, out_file#configure): with
 * <system> root_dir and the output's @id, ROOT_DIR/worker0/ID/buffer; else out_file's own `path`; else none
 * (buffer_create refuses it). The derived path is added to the <buffer> section. */
static void derive_buffer_path(conf_node *n, conf_node *buf, const out_plugin *pl)
{
    const char *type = conf_get_value(buf, "@type");
    if (!type || strcmp(type, "file") != 0 || conf_get_value(buf, "path"))
        return;
    const conf_node *root = n;
    while (root->parent)
        root = root->parent;
    const char *root_dir = NULL, *id = conf_get_value(n, "@id");
    for (size_t i = 0; i < root->nchildren; i++)
        if (!strcmp(root->children[i]->name, "system"))
            root_dir = conf_get_value(root->children[i], "root_dir");
    char *path = NULL;
    if (root_dir && *root_dir && id) {
        if (asprintf(&path, "%s/worker0/%s/buffer", root_dir, id) < 0)
            path = NULL;
    } else if (!strcmp(pl->name, "file") && conf_get_value(n, "path")) {
        path = strdup(conf_get_value(n, "path"));
    } else {
        return; /* buffer_create: missing path */
    }
    if (!path)
        return;
    conf_param *p = conf_get(buf, "@type");
    conf_node_set(buf, "path", path, p->file, p->line);
    free(path);
}

output *output_create(conf_node *n, const char *pattern, int index, conf_errors *errs)
{
    conf_param *type = conf_plugin_type(n, errs);
    if (!type)
        return NULL;
    const out_plugin *pl = out_plugin_find(type->value);
    if (!pl) {
        conf_error_unknown(errs, type->file, type->line, "output plugin", type->value, NULL, out_plugin_names());
        return NULL;
    }
    output *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->plugin = pl;
    o->ctx = calloc(1, pl->ctx_size ? pl->ctx_size : 1);
    o->id = conf_plugin_id(n, pl->name, index);
    o->pattern = strdup(pattern ? pattern : "");
    o->conf_fp = conf_fingerprint(n);
    o->queue_limit = 64u << 20;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    conf_get(n, "@log_level"); /* accepted; per-plugin log levels are not implemented */
    /* what every output has, handled here: <buffer>, <secondary> (and the
     * @id, @label, @log_level parameters, which conf_bind leaves to callers) */
    static const char *const core_sections[] = {"buffer", "secondary", NULL};
    static const conf_spec no_params[] = {{NULL, 0, NULL, 0, 0, NULL, NULL}};
    int bad = conf_bind_with(n, pl->spec ? pl->spec : no_params, o->ctx, core_sections, errs);
    /* parameters of the Fluentd plugin accepted as no-ops (one warning each) or refused */
    if (bad == 0 && pl->spec && compat_check(n, pl->spec, "config", o->id, errs))
        bad = -1;
    if (bad == 0 && pl->init && pl->init(o, n, errs) != 0)
        bad = -1;
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *ch = n->children[i];
        if (!strcmp(ch->name, "buffer")) {
            if (o->buf) {
                conf_errors_add(errs, ch->file, ch->line, "more than one <buffer> in <%s>", n->name);
                bad = -1;
            } else {
                buf_sink sink = {.arg = o, .id = o->id, .kind = pl->name, .write = sink_write, .secondary = sink_secondary,
                                 .abort = sink_abort};
                derive_buffer_path(n, ch, pl);
                if (!(o->buf = buffer_create(&sink, ch, errs)))
                    bad = -1;
            }
        } else if (!strcmp(ch->name, "secondary")) {
            char sid[128];
            snprintf(sid, sizeof sid, "%s.secondary", o->id);
            if (o->secondary) {
                conf_errors_add(errs, ch->file, ch->line, "more than one <secondary> in <%s>", n->name);
                bad = -1;
            } else if (!conf_get_value(ch, "@id")) {
                o->secondary = output_create(ch, pattern, index, errs);
                if (o->secondary) {
                    free(o->secondary->id);
                    o->secondary->id = strdup(sid);
                }
            } else {
                o->secondary = output_create(ch, pattern, index, errs);
            }
            if (!o->secondary)
                bad = -1;
            else if (o->secondary->buf) {
                conf_errors_add(errs, ch->file, ch->line, "<secondary> cannot have its own <buffer>");
                bad = -1;
            }
        }
    }
    if (bad == 0 && o->secondary && !o->buf) {
        conf_errors_add(errs, n->file, n->line, "<secondary> needs a <buffer> in the same <%s>", n->name);
        bad = -1;
    }
    if (bad) {
        output_destroy(o);
        return NULL;
    }
    return o;
}

static void *output_main(void *arg)
{
    output *o = arg;
    char name[16];
    snprintf(name, sizeof name, "out-%s", o->plugin->name);
    pthread_setname_np(pthread_self(), name);
    for (;;) {
        pthread_mutex_lock(&o->mu);
        while (!o->head && !o->stopping) {
            pthread_mutex_unlock(&o->mu);
            if (o->plugin->idle)
                o->plugin->idle(o);
            pthread_mutex_lock(&o->mu);
            if (o->head || o->stopping)
                break;
            pthread_cond_wait(&o->cv, &o->mu);
        }
        /* take the whole queue at once: one lock round-trip per burst */
        out_item *it = o->head;
        o->head = o->tail = NULL;
        int stop = o->stopping;
        pthread_mutex_unlock(&o->mu);
        if (!it && stop)
            break;
        while (it) {
            out_item *next = it->next;
            batch *b = it->b;
            int rc;
            if (o->buf) {
                rc = buffer_append(o->buf, b) == 0 ? OUT_OK : OUT_RETRY;
            } else {
                char why[256];
                rc = output_write_sync(o, b, why, sizeof why);
            }
            if (rc == OUT_OK) {
                atomic_fetch_add(&o->records_out, b->nrecords);
            } else {
                atomic_fetch_add(&o->write_errors, 1);
                atomic_fetch_add(&o->records_failed, b->nrecords);
            }
            atomic_fetch_sub(&o->queued_bytes, b->len);
            if (it->t)
                ticket_done(it->t, rc == OUT_OK || (it->flags & OUT_SUBMIT_IGNORE_ERROR));
            batch_unref(b);
            free(it);
            it = next;
        }
    }
    return NULL;
}

const double out_lat_bounds[OUT_LAT_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

void output_observe(output *o, double seconds)
{
    int i = 0;
    while (i < OUT_LAT_BUCKETS && seconds > out_lat_bounds[i])
        i++;
    atomic_fetch_add_explicit(&o->lat_buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->lat_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&o->lat_sum_us, (uint64_t)(seconds * 1e6), memory_order_relaxed);
}

/* Unbuffered: any record not OK makes the whole batch fail (the sender
 * retries it whole: no ack); there is no buffer to keep partial results. */
int output_write_sync(output *o, const batch *b, char *why, size_t whylen)
{
    out_result res = {.n = b->nrecords};
    double t0 = clock_mono();
    int rc = o->plugin->write(o, b, &res);
    output_observe(o, clock_mono() - t0);
    if (rc == OUT_OK && res.status)
        for (uint32_t i = 0; i < res.n; i++)
            if (res.status[i] != OUT_OK)
                rc = res.status[i];
    snprintf(why, whylen, "%s", res.reason[0] ? res.reason : rc == OUT_OK ? "ok" : "write failed");
    out_result_free(&res);
    return rc;
}

int output_start(output *o)
{
    if (o->plugin->start && o->plugin->start(o) != 0)
        return -1;
    /* a <secondary> has no thread of its own (the buffer writes to it), but
     * its client must exist */
    if (o->secondary && o->secondary->plugin->start && o->secondary->plugin->start(o->secondary) != 0)
        return -1;
    if (o->buf && buffer_start(o->buf) != 0)
        return -1;
    if (pthread_create(&o->thread, NULL, output_main, o) != 0)
        return -1;
    o->started = 1;
    return 0;
}

void output_submit(output *o, batch *b, ticket *t, int flags)
{
    out_item *it = malloc(sizeof *it);
    if (!it) {
        if (t)
            ticket_done(t, 0);
        return;
    }
    batch_ref(b);
    it->next = NULL;
    it->b = b;
    it->t = t;
    it->flags = flags;
    atomic_fetch_add(&o->records_in, b->nrecords);
    atomic_fetch_add(&o->batches_in, 1);
    atomic_fetch_add(&o->queued_bytes, b->len);
    pthread_mutex_lock(&o->mu);
    int was_empty = o->head == NULL;
    QUEUE_PUSH(o->head, o->tail, it);
    pthread_mutex_unlock(&o->mu);
    if (was_empty)
        pthread_cond_signal(&o->cv);
}

void output_stop(output *o, double deadline)
{
    if (o->started) {
        pthread_mutex_lock(&o->mu);
        o->stopping = 1;
        pthread_cond_signal(&o->cv);
        pthread_mutex_unlock(&o->mu);
        pthread_join(o->thread, NULL);
        o->started = 0;
    }
    if (o->buf) {
        buffer_destroy(o->buf, deadline);
        o->buf = NULL;
    }
}

void output_destroy(output *o)
{
    if (!o)
        return;
    if (o->borrowed) { /* a reload's failed build: it still belongs to the running pipeline */
        o->borrowed = 0;
        return;
    }
    output_stop(o, clock_mono() + 10);
    output_destroy(o->secondary);
    if (o->plugin->exit)
        o->plugin->exit(o);
    if (o->plugin->spec)
        conf_unbind(o->plugin->spec, o->ctx);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    free(o->ctx);
    free(o->id);
    free(o->pattern);
    free(o->conf_fp);
    free(o);
}
