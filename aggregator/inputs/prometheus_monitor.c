/*
 * aggregator/inputs/prometheus_monitor.c: fluent-plugin-prometheus's
 * `prometheus_monitor` and `prometheus_output_monitor` sources. They open
 * nothing: their families are written on /metrics of weir's monitor
 * endpoint (`<source> @type prometheus` or `monitor_agent`), computed at the
 * scrape from weir's own counters, with the plugin's names and labels
 * (`plugin_id`, `type`, `plugin_category` for prometheus_monitor, and the
 * `<labels>` of the section):
 *
 *   fluentd_output_status_buffer_queue_length   chunks queued       (buffered outputs)
 *   fluentd_output_status_buffer_total_bytes    bytes in the buffer (buffered outputs)
 *   fluentd_output_status_buffer_stage_length   chunks being filled (buffered outputs)
 *   fluentd_output_status_retry_count           retries since the first failure
 *   fluentd_output_status_retry_wait            seconds to the next retry while retrying
 *   fluentd_output_status_num_errors            failed writes
 *   fluentd_output_status_emit_count            batches the output took
 *   fluentd_output_status_emit_records          records the output took
 *   fluentd_output_status_write_count           writes to the backend (flushes)
 *   fluentd_output_status_rollback_count        flushes retried
 *   fluentd_status_buffer_queue_length, fluentd_status_buffer_total_bytes,
 *   fluentd_status_retry_count                  (prometheus_monitor)
 *
 * Fluentd updates these every `interval`; weir reads them at each scrape
 * (`interval` is accepted). The plugin's buffer timekey gauges are not
 * exposed (weir does not keep the timekeys of its chunks apart).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "lib/prom.h"
#include "buffer/buffer.h"
#include "aggregator/pipeline.h"
#include "aggregator/source.h"

typedef struct pmon {
    source base;
    double interval;
    int output_monitor;
    char *labels; /* `,k="v"` for every <labels> pair, expanded */
} pmon;

static const conf_spec pmon_spec[] = {
    {"interval", CONF_TIME, "5s", 0, offsetof(pmon, interval), NULL,
     "accepted; weir computes the values at each scrape"},
    {"labels", CONF_SECTION, NULL, 0, 0, NULL,
     "`<labels>`: labels added to every sample (`${hostname}`, `${worker_id}` expanded)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static void pmon_free(source *s)
{
    pmon *m = (pmon *)s;
    if (!m)
        return;
    free(m->labels);
    conf_unbind(pmon_spec, m);
    source_fini(&m->base);
    free(m);
}

static source *pmon_create_common(conf_node *n, int index, conf_errors *errs, int output_monitor)
{
    extern const source_plugin in_prometheus_monitor_plugin, in_prometheus_output_monitor_plugin;
    pmon *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    const char *name = output_monitor ? "prometheus_output_monitor" : "prometheus_monitor";
    source_init(&m->base, output_monitor ? &in_prometheus_output_monitor_plugin : &in_prometheus_monitor_plugin, n,
                index);
    m->output_monitor = output_monitor;
    int bad = conf_bind(n, pmon_spec, m, errs);
    char host[256];
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    wbuf l = {0};
    int nsec = 0;
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *ls = n->children[i];
        if (strcmp(ls->name, "labels"))
            continue;
        if (nsec++) {
            conf_errors_add(errs, ls->file, ls->line, "labels section must have at most 1");
            bad = -1;
        }
        for (size_t k = 0; k < ls->nparams; k++) {
            conf_param *p = &ls->params[k];
            p->used = 1;
            const char *v = p->value;
            if (!strncmp(v, "$.", 2) || !strncmp(v, "$[", 2)) {
                conf_errors_add(errs, p->file, p->line, "record accessor syntax is not available in %s", name);
                bad = -1;
                continue;
            }
            char val[1024], esc[2048];
            size_t o = 0;
            for (size_t j = 0; v[j] && o < sizeof val - 1;) {
                const char *rep = !strncmp(v + j, "${hostname}", 11) ? host : !strncmp(v + j, "${worker_id}", 12) ? "0" : NULL;
                if (rep) {
                    o += (size_t)snprintf(val + o, sizeof val - o, "%s", rep);
                    j += v[j + 2] == 'h' ? 11 : 12;
                } else {
                    val[o++] = v[j++];
                }
            }
            val[o < sizeof val ? o : sizeof val - 1] = 0;
            char line[3200];
            int ln = snprintf(line, sizeof line, ",%s=\"%s\"", p->key, prom_label(val, esc, sizeof esc));
            wbuf_add(&l, line, (size_t)ln);
        }
    }
    wbuf_addc(&l, 0);
    m->labels = (char *)l.data;
    if (bad) {
        pmon_free(&m->base);
        return NULL;
    }
    return &m->base;
}

static source *pmon_create(conf_node *n, int index, conf_errors *errs) { return pmon_create_common(n, index, errs, 0); }
static source *pomon_create(conf_node *n, int index, conf_errors *errs)
{
    return pmon_create_common(n, index, errs, 1);
}

static int pmon_start(source *s, const source_env *env) { return 0; }

enum { V_QUEUE, V_BYTES, V_STAGE, V_RETRY, V_RETRY_WAIT, V_ERRORS, V_EMIT, V_EMIT_REC, V_WRITE, V_ROLLBACK };

static double value(output *o, const buffer_snap *s, int which)
{
    switch (which) {
    case V_QUEUE: return s->queued;
    case V_BYTES: return (double)s->bytes;
    case V_STAGE: return s->staged;
    case V_RETRY: return s->retries;
    case V_RETRY_WAIT: return s->retrying && s->next_retry_in > 0 ? s->next_retry_in : 0;
    case V_ERRORS: return (double)prom_ld(&o->write_errors);
    case V_EMIT: return (double)prom_ld(&o->batches_in);
    case V_EMIT_REC: return (double)prom_ld(&o->records_in);
    case V_WRITE: return (double)prom_ld(&o->lat_count);
    default: return o->buf ? (double)prom_ld(&o->buf->retried_flushes) : 0;
    }
}

static void families(source *const *srcs, size_t n, const source_env *env, struct evbuffer *ev, int om)
{
    if (!n || !env->pl)
        return;
    const pmon *m = (const pmon *)srcs[0];
    static const struct {
        const char *name, *help;
        int which, buffered_only, om_only;
    } fam[] = {
        {"buffer_queue_length", "Current buffer queue length.", V_QUEUE, 1, 0},
        {"buffer_total_bytes", "Current total size of queued buffers.", V_BYTES, 1, 0},
        {"buffer_stage_length", "Current length of stage buffers.", V_STAGE, 1, 1},
        {"retry_count", "Current retry counts.", V_RETRY, 0, 0},
        {"retry_wait", "Current retry wait", V_RETRY_WAIT, 0, 1},
        {"num_errors", "Current number of errors.", V_ERRORS, 0, 1},
        {"emit_count", "Current emit counts.", V_EMIT, 0, 1},
        {"emit_records", "Current emit records.", V_EMIT_REC, 0, 1},
        {"write_count", "Current write counts.", V_WRITE, 0, 1},
        {"rollback_count", "Current rollback counts.", V_ROLLBACK, 0, 1},
    };
    pipeline *pl = env->pl;
    buffer_snap *snaps = calloc(pl->noutputs ? pl->noutputs : 1, sizeof *snaps);
    if (!snaps)
        return;
    for (size_t i = 0; i < pl->noutputs; i++)
        if (pl->outputs[i]->buf)
            buffer_snapshot(pl->outputs[i]->buf, &snaps[i]);
    char lb[256], name[128];
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        if (fam[f].om_only && !om)
            continue;
        snprintf(name, sizeof name, "%s_%s", om ? "fluentd_output_status" : "fluentd_status", fam[f].name);
        prom_head(ev, name, "gauge", fam[f].help);
        for (size_t i = 0; i < pl->noutputs; i++) {
            output *o = pl->outputs[i];
            if (fam[f].buffered_only && !o->buf)
                continue;
            evbuffer_add_printf(ev, "%s{plugin_id=\"%s\"%s,type=\"%s\"%s} %.17g\n", name,
                                prom_label(o->id, lb, sizeof lb), om ? "" : ",plugin_category=\"output\"",
                                o->plugin->name, m->labels, value(o, &snaps[i], fam[f].which));
        }
    }
    free(snaps);
}

static void pmon_metrics(source *const *srcs, size_t n, const source_env *env, struct evbuffer *ev)
{
    families(srcs, n, env, ev, 0);
}

static void pomon_metrics(source *const *srcs, size_t n, const source_env *env, struct evbuffer *ev)
{
    families(srcs, n, env, ev, 1);
}

const source_plugin in_prometheus_monitor_plugin = {
    .name = "prometheus_monitor",
    .spec = pmon_spec,
    .create = pmon_create,
    .start = pmon_start,
    .free = pmon_free,
    .metrics = pmon_metrics,
};

const source_plugin in_prometheus_output_monitor_plugin = {
    .name = "prometheus_output_monitor",
    .spec = pmon_spec,
    .create = pomon_create,
    .start = pmon_start,
    .free = pmon_free,
    .metrics = pomon_metrics,
};
