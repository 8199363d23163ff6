/*
 * aggregator/monitor.c: the HTTP endpoint for operators, served by
 * libevent's evhttp on a thread of its own (it only reads counters and takes
 * each buffer's lock briefly, so it never slows the record path).
 *
 *   /metrics          Prometheus text format
 *   /api/plugins.json Fluentd monitor_agent's view (plugin list with counters)
 *   /api/v1/health    Fluent Bit's health check: 200 "ok" / 500 "error" when
 *                     write errors or failed retries in the last
 *                     hc_period exceed hc_errors_count / hc_retry_failure_count
 *   /healthz          liveness: 200 while the process serves requests
 *   /readyz           readiness: 200 once every listener is up and every buffer
 *                     recovered, 503 before and while draining
 *
 * Configured as Fluentd's `<source> @type monitor_agent` (port 24220) or
 * fluent-plugin-prometheus's `<source> @type prometheus` (port 24231,
 * `metrics_path`); both serve every path above.
 */
#include "monitor.h"
#include "aggregator/parse.h"
#include "aggregator/reload.h"
#include "aggregator/prom_metrics.h"
#include "aggregator/tap.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>

#include "lib/clock.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/http.h"
#include "lib/membudget.h"
#include "lib/prom.h"
#include "buffer/buffer.h"

static atomic_int proc_ready, proc_draining;
void monitor_set_ready(void) { atomic_store(&proc_ready, 1); }
void monitor_set_draining(void) { atomic_store(&proc_draining, 1); }

static const conf_spec monitor_spec[] = {
    {"bind", CONF_STR, "0.0.0.0", 0, offsetof(monitor, bind), NULL, "address to listen on"},
    {"port", CONF_INT, "0", 0, offsetof(monitor, port), NULL,
     "HTTP port; `0`: 24220 for `monitor_agent`, 24231 for `prometheus`"},
    {"metrics_path", CONF_STR, "/metrics", 0, offsetof(monitor, metrics_path), NULL,
     "another path for the Prometheus text format (`/metrics` is always served; every family: docs/operations.md)"},
    {"aggregated_metrics_path", CONF_STR, "/aggregated_metrics", 0, offsetof(monitor, aggregated_metrics_path), NULL,
     "fluent-plugin-prometheus's path of every worker's metrics: served as `metrics_path` (weir is one process)"},
    {"content_encoding", CONF_STR, NULL, 0, offsetof(monitor, content_encoding), NULL,
     "accepted (fluent-plugin-prometheus); weir answers uncompressed"},
    {"tag", CONF_STR, NULL, 0, offsetof(monitor, tag), NULL,
     "emit every plugin's monitor_agent record (`plugin_id`, `plugin_category`, `type`, `output_plugin`, buffer "
     "and retry counts, `emit_records`...) with this tag every `emit_interval`"},
    {"emit_interval", CONF_TIME, "60s", 0, offsetof(monitor, emit_interval), NULL,
     "with `tag`: how often the records are emitted"},
    {"tap", CONF_BOOL, "false", 0, offsetof(monitor, tap), NULL,
     "serve `/api/tap` (`weir tap`: the records routed to outputs, live); off by default: records are not metrics"},
    {"tap_token", CONF_STR, NULL, 0, offsetof(monitor, tap_token), NULL,
     "with `tap true`: `/api/tap` answers loopback clients only, unless a client sends `Authorization: Bearer "
     "TOKEN` with this token (`weir tap --token`, or `WEIR_TAP_TOKEN`)"},
    {"include_config", CONF_BOOL, "true", 0, offsetof(monitor, include_config), NULL,
     "accepted for compatibility; no effect"},
    {"include_retry", CONF_BOOL, "true", 0, offsetof(monitor, include_retry), NULL,
     "accepted for compatibility; no effect"},
    {"hc_errors_count", CONF_INT, "5", 0, offsetof(monitor, hc_errors_count), NULL,
     "`/api/v1/health` turns `500 error` when this many output write errors happened within `hc_period` (Fluent "
     "Bit's `HC_Errors_Count`)"},
    {"hc_retry_failure_count", CONF_INT, "5", 0, offsetof(monitor, hc_retry_failure_count), NULL,
     "... or this many failed retries (Fluent Bit's `HC_Retry_Failure_Count`)"},
    {"hc_period", CONF_TIME, "60s", 0, offsetof(monitor, hc_period), NULL,
     "the window of those two counts (Fluent Bit's `HC_Period`)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static void monitor_free(monitor *m);

static monitor *monitor_create(conf_node *n, const source_plugin *plugin, int index, conf_errors *errs)
{
    const char *type = plugin->name;
    monitor *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    source_init(&m->base, plugin, n, index);
    conf_get(n, "@log_level");
    int rc = conf_bind(n, monitor_spec, m, errs);
    if (m->port == 0)
        m->port = strcmp(type, "prometheus") == 0 ? 24231 : 24220;
    if (m->port < 1 || m->port > 65535) {
        conf_param *p = conf_get(n, "port");
        conf_errors_add(errs, p ? p->file : n->file, p ? p->line : n->line, "port %lld out of range 1..65535",
                        (long long)m->port);
        rc = -1;
    }
    if (m->tag && m->emit_interval <= 0) {
        conf_error_at(errs, n, "emit_interval", "emit_interval must be positive");
        rc = -1;
    }
    if (m->tap_token && !m->tap_token[0]) {
        conf_error_at(errs, n, "tap_token", "tap_token is empty");
        rc = -1;
    }
    const char *lbl = conf_get_value(n, "@label");
    if (lbl && !(m->label_name = strdup(lbl)))
        rc = -1;
    if (rc) {
        monitor_free(m);
        return NULL;
    }
    return m;
}

static void tap_sess_free(struct tap_sess *s, int detach);

static void monitor_free(monitor *m)
{
    if (!m)
        return;
    if (m->running) {
        event_base_loopbreak(m->evbase);
        pthread_join(m->thread, NULL);
    }
    while (m->taps)
        tap_sess_free(m->taps, 1);
    if (m->hc_timer)
        event_free(m->hc_timer);
    if (m->emit_timer)
        event_free(m->emit_timer);
    free(m->label_name);
    if (m->http)
        evhttp_free(m->http);
    if (m->evbase)
        event_base_free(m->evbase);
    conf_unbind(monitor_spec, m);
    source_fini(&m->base);
    free(m->hc_ring);
    free(m);
}

/* ---- Prometheus text ------------------------------------------------------------ */



static long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    long pages = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * sysconf(_SC_PAGESIZE);
}

/* weir_grok_*: one sample per parser that counts (parse_stats_get), labelled
 * with its filter's or source's id */
typedef struct parse_walk {
    struct evbuffer *o;
    int which; /* 0: match_limit, 1: unmatched */
} parse_walk;

static void parse_sample(struct evbuffer *o, int which, const char *label, const char *id, const parser *p)
{
    parse_stats st;
    char l1[256];
    if (!p || !parse_stats_get(p, &st))
        return;
    evbuffer_add_printf(o, "%s{%s=\"%s\"} %llu\n", which ? "weir_grok_unmatched_total" : "weir_grok_match_limit_total",
                        label, prom_label(id, l1, sizeof l1),
                        (unsigned long long)(which ? st.unmatched : st.match_limit));
}

static void filter_parse_sample(const filter *f, void *arg)
{
    parse_walk *w = arg;
    if (f->plugin->parser)
        parse_sample(w->o, w->which, "filter", f->id, f->plugin->parser(f));
}

static void grok_families(monitor *m, struct evbuffer *o)
{
    static const char *const head[2][2] = {
        {"weir_grok_match_limit_total",
         "records a grok <parse> gave up on at grok_match_limit, grok_depth_limit or grok_timeout"},
        {"weir_grok_unmatched_total", "records no grok pattern matched (grok_failure_key: No grok pattern matched)"},
    };
    for (int k = 0; k < 2; k++) {
        prom_head(o, head[k][0], "counter", head[k][1]);
        parse_walk w = {o, k};
        router_each_filter(m->pl->rt, filter_parse_sample, &w);
        for (size_t i = 0; i < m->pl->nsources; i++) {
            source *s = m->pl->sources[i];
            if (s->plugin->parser)
                parse_sample(o, k, "input", s->id, s->plugin->parser(s));
        }
    }
}

/* weir_aggregate_*: one sample per filter with counters (aggregate's) */
enum { AGG_OPEN, AGG_EVICTED, AGG_SUMMARIES, AGG_CL_WRITTEN, AGG_CL_FAILED, AGG_RESTORED, AGG_FAMILIES };

typedef struct agg_walk {
    struct evbuffer *o;
    int which; /* AGG_* */
} agg_walk;

static const char *const agg_heads[AGG_FAMILIES][3] = {
    {"weir_aggregate_open", "gauge", "sagas (keys) an aggregate filter holds open"},
    {"weir_aggregate_evictions_total", "counter", "sagas closed as `evicted` because max_open was reached"},
    {"weir_aggregate_summaries_total", "counter", "summary records an aggregate filter emitted"},
    {"weir_aggregate_changelog_writes_total", "counter", "saga states written to the filter's Kafka changelog"},
    {"weir_aggregate_changelog_failed_total", "counter",
     "changelog writes that failed (the burst's offsets were not stored: read again)"},
    {"weir_aggregate_restored_total", "counter", "open sagas installed from the changelog at partition assignments"},
};

static void filter_agg_sample(const filter *f, void *arg)
{
    agg_walk *w = arg;
    filter_stats st;
    char l1[256];
    if (!f->plugin->stats || !f->plugin->stats(f, &st))
        return;
    const uint64_t v[AGG_FAMILIES] = {st.open, st.evicted, st.summaries, st.changelog_written, st.changelog_failed,
                                      st.restored};
    evbuffer_add_printf(w->o, "%s{filter=\"%s\"} %llu\n", agg_heads[w->which][0], prom_label(f->id, l1, sizeof l1),
                        (unsigned long long)v[w->which]);
}

static void aggregate_families(monitor *m, struct evbuffer *o)
{
    for (int k = 0; k < AGG_FAMILIES; k++) {
        prom_head(o, agg_heads[k][0], agg_heads[k][1], agg_heads[k][2]);
        agg_walk w = {o, k};
        router_each_filter(m->pl->rt, filter_agg_sample, &w);
    }
}

static void write_metrics(monitor *m, struct evbuffer *o)
{
    char l1[256], l2[64];
    /* each source plugin's own families (the forward input: its connections,
     * requests, limits, handshakes) */
    const source_plugin *const *sp = source_plugins();
    source_env env = {.workers = m->workers, .nworkers = m->nworkers, .pl = m->pl};
    for (size_t k = 0; sp[k]; k++) {
        if (!sp[k]->metrics)
            continue;
        source **mine = calloc(m->pl->nsources ? m->pl->nsources : 1, sizeof *mine);
        size_t nm = 0;
        for (size_t i = 0; mine && i < m->pl->nsources; i++)
            if (m->pl->sources[i]->plugin == sp[k])
                mine[nm++] = m->pl->sources[i];
        if (mine)
            sp[k]->metrics(mine, nm, &env, o);
        free(mine);
    }
    prom_head(o, "weir_reloads_total", "counter", "SIGHUP configuration reloads by result");
    evbuffer_add_printf(o, "weir_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)prom_ld(&reload_ok_total));
    evbuffer_add_printf(o, "weir_reloads_total{result=\"failed\"} %llu\n",
                        (unsigned long long)prom_ld(&reload_failed_total));
    /* outputs */
    struct {
        const char *name, *type, *help;
    } oh[] = {
        {"weir_output_records_total", "counter", "records the output accepted (unbuffered: written; buffered: appended)"},
        {"weir_output_write_errors_total", "counter", "batches the output or its buffer refused"},
        {"weir_output_failed_records_total", "counter", "records in refused batches (not acked)"},
        {"weir_output_queue_bytes", "gauge", "bytes waiting for the output's ingest thread"},
    };
    for (size_t k = 0; k < sizeof oh / sizeof oh[0]; k++) {
        prom_head(o, oh[k].name, oh[k].type, oh[k].help);
        for (size_t i = 0; i < m->pl->noutputs; i++) {
            output *op = m->pl->outputs[i];
            uint64_t v = k == 0   ? prom_ld(&op->records_out)
                         : k == 1 ? prom_ld(&op->write_errors)
                         : k == 2 ? prom_ld(&op->records_failed)
                                  : atomic_load(&op->queued_bytes);
            evbuffer_add_printf(o, "%s{output=\"%s\",type=\"%s\"} %llu\n", oh[k].name, prom_label(op->id, l1, sizeof l1),
                                op->plugin->name, (unsigned long long)v);
        }
    }
    for (size_t i = 0; i < m->pl->noutputs; i++) { /* plugin-specific families (e.g. weir_loki_*) */
        const out_plugin *pg = m->pl->outputs[i]->plugin;
        int first = 1;
        for (size_t j = 0; j < i && first; j++)
            first = m->pl->outputs[j]->plugin != pg;
        if (!pg->metrics || !first)
            continue;
        output **same = calloc(m->pl->noutputs, sizeof *same);
        size_t n = 0;
        for (size_t j = i; same && j < m->pl->noutputs; j++)
            if (m->pl->outputs[j]->plugin == pg)
                same[n++] = m->pl->outputs[j];
        if (same)
            pg->metrics((output *const *)same, n, o);
        free(same);
    }
    prom_head(o, "weir_output_write_seconds", "histogram", "time of one write to the backend (a flush)");
    for (size_t i = 0; i < m->pl->noutputs; i++) {
        output *op = m->pl->outputs[i];
        uint64_t cum = 0;
        prom_label(op->id, l1, sizeof l1);
        for (int b = 0; b <= OUT_LAT_BUCKETS; b++) {
            cum += prom_ld(&op->lat_buckets[b]);
            if (b < OUT_LAT_BUCKETS)
                snprintf(l2, sizeof l2, "%g", out_lat_bounds[b]);
            else
                snprintf(l2, sizeof l2, "+Inf");
            evbuffer_add_printf(o, "weir_output_write_seconds_bucket{output=\"%s\",le=\"%s\"} %llu\n", l1, l2,
                                (unsigned long long)cum);
        }
        evbuffer_add_printf(o, "weir_output_write_seconds_sum{output=\"%s\"} %.6f\n", l1,
                            (double)prom_ld(&op->lat_sum_us) / 1e6);
        evbuffer_add_printf(o, "weir_output_write_seconds_count{output=\"%s\"} %llu\n", l1,
                            (unsigned long long)prom_ld(&op->lat_count));
    }

    /* buffers */
    struct {
        const char *name, *help;
        size_t off;
    } bc[] = {
        {"weir_buffer_appended_records_total", "records appended to chunks", offsetof(buffer, appended_records)},
        {"weir_buffer_flushed_records_total", "records the output delivered", offsetof(buffer, flushed_records)},
        {"weir_buffer_retried_flushes_total", "flushes that failed and will be retried", offsetof(buffer, retried_flushes)},
        {"weir_buffer_failed_flushes_total", "chunks given up (secondary or dead letter)", offsetof(buffer, failed_flushes)},
        {"weir_buffer_dead_letter_records_total", "records given up on (dead-letter file or dead_letter_label)",
         offsetof(buffer, dead_letter_records)},
        {"weir_buffer_secondary_records_total", "records handed to <secondary>", offsetof(buffer, secondary_records)},
        {"weir_buffer_dropped_chunks_total", "chunks dropped by drop_oldest_chunk", offsetof(buffer, dropped_chunks)},
        {"weir_buffer_dropped_records_total", "records in dropped chunks", offsetof(buffer, dropped_records)},
        {"weir_buffer_rejected_batches_total", "appends refused (buffer full, throw_exception)",
         offsetof(buffer, rejected_batches)},
        {"weir_buffer_streamed_batches_total",
         "batches larger than total_limit_size, written chunk by chunk as space freed",
         offsetof(buffer, streamed_batches)},
        {"weir_buffer_recovered_chunks_total", "chunks recovered at start", offsetof(buffer, recovered_chunks)},
        {"weir_buffer_torn_tails_total", "chunks whose torn tail was cut at recovery", offsetof(buffer, torn_tails)},
        {"weir_buffer_corrupt_chunks_total", "chunks moved to corrupt/", offsetof(buffer, corrupt_chunks)},
    };
    for (size_t k = 0; k < sizeof bc / sizeof bc[0]; k++) {
        prom_head(o, bc[k].name, "counter", bc[k].help);
        for (size_t i = 0; i < m->pl->noutputs; i++) {
            buffer *b = m->pl->outputs[i]->buf;
            if (!b)
                continue;
            evbuffer_add_printf(o, "%s{output=\"%s\"} %llu\n", bc[k].name, prom_label(m->pl->outputs[i]->id, l1, sizeof l1),
                                (unsigned long long)prom_ld((atomic_uint_fast64_t *)((char *)b + bc[k].off)));
        }
    }
    struct {
        const char *name, *help;
    } bg[] = {
        {"weir_buffer_bytes", "bytes in staged and queued chunks"},
        {"weir_buffer_limit_bytes", "total_limit_size"},
        {"weir_buffer_staged_chunks", "chunks being filled"},
        {"weir_buffer_queue_length", "chunks waiting to be flushed (Fluentd: buffer_queue_length)"},
        {"weir_buffer_flushing_chunks", "chunks being flushed now"},
        {"weir_buffer_oldest_chunk_age_seconds", "age of the oldest chunk (0 when empty)"},
        {"weir_buffer_retrying", "1 while the output is in retry back-off"},
        {"weir_buffer_retry_count", "retries since the first failure (Fluentd: retry_count)"},
        {"weir_buffer_next_retry_seconds", "seconds until the next retry"},
    };
    buffer_snap *snaps = calloc(m->pl->noutputs ? m->pl->noutputs : 1, sizeof *snaps);
    for (size_t i = 0; i < m->pl->noutputs; i++)
        if (m->pl->outputs[i]->buf)
            buffer_snapshot(m->pl->outputs[i]->buf, &snaps[i]);
    for (size_t k = 0; k < sizeof bg / sizeof bg[0]; k++) {
        prom_head(o, bg[k].name, "gauge", bg[k].help);
        for (size_t i = 0; i < m->pl->noutputs; i++) {
            if (!m->pl->outputs[i]->buf)
                continue;
            buffer_snap *s = &snaps[i];
            double v = k == 0   ? (double)s->bytes
                       : k == 1 ? (double)s->limit
                       : k == 2 ? s->staged
                       : k == 3 ? s->queued
                       : k == 4 ? s->flushing
                       : k == 5 ? ((s->staged || s->queued) ? s->oldest_age : 0)
                       : k == 6 ? s->retrying
                       : k == 7 ? s->retries
                                : (s->retrying && s->next_retry_in > 0 ? s->next_retry_in : 0);
            evbuffer_add_printf(o, "%s{output=\"%s\"} %.17g\n", bg[k].name, prom_label(m->pl->outputs[i]->id, l1, sizeof l1),
                                v);
        }
    }
    free(snaps);

    /* <parse> counters of the filters' and sources' parsers (grok's) */
    grok_families(m, o);
    aggregate_families(m, o);

    /* routing */
    router_stats rs;
    router_stats_get(m->pl->rt, &rs);
    prom_head(o, "weir_router_filtered_records_total", "counter", "records dropped by filters (grep, rewrite_tag_filter without a rule)");
    evbuffer_add_printf(o, "weir_router_filtered_records_total %llu\n", (unsigned long long)rs.filtered_out);
    prom_head(o, "weir_router_unmatched_records_total", "counter", "records no <match> took (discarded)");
    evbuffer_add_printf(o, "weir_router_unmatched_records_total %llu\n", (unsigned long long)rs.unmatched);
    prom_head(o, "weir_router_error_records_total", "counter", "records sent to @ERROR (or dropped without it)");
    evbuffer_add_printf(o, "weir_router_error_records_total %llu\n", (unsigned long long)rs.to_error);
    prom_head(o, "weir_router_rewritten_records_total", "counter", "records re-tagged by rewrite_tag_filter");
    evbuffer_add_printf(o, "weir_router_rewritten_records_total %llu\n", (unsigned long long)rs.rewritten);

    /* the prometheus filter's and output's <metric>s */
    pmx_registry_write(o);

    /* process */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    prom_head(o, "weir_process_resident_memory_bytes", "gauge", "resident set size");
    evbuffer_add_printf(o, "weir_process_resident_memory_bytes %ld\n", rss_bytes());
    prom_head(o, "weir_process_cpu_seconds_total", "counter", "user + system CPU time");
    evbuffer_add_printf(o, "weir_process_cpu_seconds_total %.3f\n",
                        (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
                            (double)ru.ru_stime.tv_usec / 1e6);
    prom_head(o, "weir_process_start_time_seconds", "gauge", "start time, unix seconds");
    evbuffer_add_printf(o, "weir_process_start_time_seconds %.0f\n", m->start_time);
    prom_head(o, "weir_memory_budget_bytes", "gauge", "the memory budget (<system> memory_budget)");
    evbuffer_add_printf(o, "weir_memory_budget_bytes %llu\n", (unsigned long long)mb_limit());
    prom_head(o, "weir_memory_in_use_bytes", "gauge", "bytes reserved against the memory budget now");
    evbuffer_add_printf(o, "weir_memory_in_use_bytes %llu\n", (unsigned long long)mb_in_use());
    prom_head(o, "weir_memory_in_use_peak_bytes", "gauge", "the most ever reserved against the memory budget");
    evbuffer_add_printf(o, "weir_memory_in_use_peak_bytes %llu\n", (unsigned long long)mb_peak());
    prom_head(o, "weir_memory_waits_total", "counter", "times a reader stopped at the memory budget, by reason");
    for (int i = 0; i < MB_WAIT_REASONS; i++)
        evbuffer_add_printf(o, "weir_memory_waits_total{reason=\"%s\"} %llu\n", mb_wait_reason[i],
                            (unsigned long long)mb_waits(i));
    prom_head(o, "weir_memory_wait_seconds_total", "counter", "time readers spent stopped at the memory budget, by reason");
    for (int i = 0; i < MB_WAIT_REASONS; i++)
        evbuffer_add_printf(o, "weir_memory_wait_seconds_total{reason=\"%s\"} %.3f\n", mb_wait_reason[i],
                            mb_wait_seconds(i));
    prom_head(o, "weir_http_responses_truncated_total", "counter",
              "HTTP responses (outputs' requests) whose body was cut at the bound; the head is kept");
    evbuffer_add_printf(o, "weir_http_responses_truncated_total %llu\n",
                        (unsigned long long)http_responses_truncated());
    prom_head(o, "weir_build_info", "gauge", "version");
    evbuffer_add_printf(o, "weir_build_info{version=\"%s\"} 1\n", WEIR_VERSION);
}

static void reply(struct evhttp_request *req, int code, const char *reason, const char *ctype, struct evbuffer *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evhttp_send_reply(req, code, reason, body);
}

/* ---- health: error and retry-failure counts over a sliding period ------------------- */

static void hc_totals(monitor *m, uint64_t *errors, uint64_t *retry_failures)
{
    *errors = *retry_failures = 0;
    for (size_t i = 0; i < m->pl->noutputs; i++) {
        output *op = m->pl->outputs[i];
        *errors += prom_ld(&op->write_errors);
        if (op->buf)
            *retry_failures += prom_ld(&op->buf->failed_flushes);
    }
}

/* Monitor thread, every second: remember the totals, so that health can
 * compare now with hc_period ago. Slot k holds [errors, retry failures, time]. */
static void hc_sample(evutil_socket_t fd, short what, void *arg)
{
    monitor *m = arg;
    uint64_t e, r;
    monitor_lock();
    hc_totals(m, &e, &r);
    monitor_unlock();
    uint64_t now = (uint64_t)clock_mono();
    uint64_t *slot = &m->hc_ring[3 * (now % (uint64_t)m->hc_slots)];
    slot[0] = e;
    slot[1] = r;
    slot[2] = now;
}

static int healthy(monitor *m)
{
    uint64_t e, r;
    hc_totals(m, &e, &r);
    double now = clock_mono();
    uint64_t e0 = e, r0 = r;
    for (int k = 0; k < m->hc_slots; k++) {
        const uint64_t *slot = &m->hc_ring[3 * k];
        if (slot[2] && now - (double)slot[2] <= m->hc_period) {
            if (slot[0] < e0)
                e0 = slot[0];
            if (slot[1] < r0)
                r0 = slot[1];
        }
    }
    return (int64_t)(e - e0) < m->hc_errors_count && (int64_t)(r - r0) < m->hc_retry_failure_count;
}

/* ---- /api/tap: live records for `weir tap` (aggregator/tap.h) ------------------------- */

struct tap_sess {
    struct tap_sess *next, *prev;
    monitor *m;
    struct evhttp_request *req;
    tap *t;
    struct event *ev;   /* activated by tap_offer (any thread) */
    struct event *tick; /* once a second: say how many records the rate limit skipped */
    uint64_t dropped;
    double rate;
};

static void tap_sess_free(struct tap_sess *s, int detach)
{
    monitor *m = s->m;
    struct evhttp_connection *ec = detach ? evhttp_request_get_connection(s->req) : NULL;
    if (ec) /* the monitor stops: evhttp_free closes the connection later, no callback then */
        evhttp_connection_set_closecb(ec, NULL, NULL);
    tap_close(s->t); /* after this no thread activates s->ev */
    event_free(s->ev);
    event_free(s->tick);
    DLIST_UNLINK(m->taps, s);
    free(s);
}

static void tap_wake(void *arg) { event_active(((struct tap_sess *)arg)->ev, EV_READ, 0); }

static void tap_flush(evutil_socket_t fd, short what, void *arg)
{
    struct tap_sess *s = arg;
    wbuf w = {0};
    uint64_t dropped = 0;
    tap_take(s->t, &w, &dropped);
    s->dropped += dropped;
    if (what & EV_TIMEOUT && s->dropped) {
        char line[200];
        int n = snprintf(line, sizeof line,
                         "{\"tap\":\"skipped\",\"records\":%llu,\"reason\":\"rate limit of %g records/s\"}\n",
                         (unsigned long long)s->dropped, s->rate);
        wbuf_add(&w, line, (size_t)n);
        s->dropped = 0;
    }
    if (w.len) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add(b, w.data, w.len);
        evhttp_send_reply_chunk(s->req, b);
        evbuffer_free(b);
    }
    wbuf_free(&w);
}

/* The client went away. libevent has detached the request (evcon NULL)
 * because its reply was still being streamed: ending the reply frees it. */
static void tap_closed(struct evhttp_connection *ec, void *arg)
{
    struct tap_sess *s = arg;
    struct evhttp_request *req = s->req;
    tap_sess_free(s, 0);
    if (!evhttp_request_get_connection(req))
        evhttp_send_reply_end(req);
}

static void tap_start(monitor *m, struct evhttp_request *req, struct evbuffer *body)
{
    struct evkeyvalq q;
    TAILQ_INIT(&q);
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *qs = u ? evhttp_uri_get_query(u) : NULL;
    if (!qs || evhttp_parse_query_str(qs, &q) != 0 || !evhttp_find_header(&q, "pattern")) {
        evbuffer_add_printf(body, "usage: /api/tap?pattern=TAG_PATTERN[&rate=N][&output=ID]\n");
        reply(req, 400, "Bad Request", "text/plain", body);
        evhttp_clear_headers(&q);
        return;
    }
    char pattern[256];
    snprintf(pattern, sizeof pattern, "%s", evhttp_find_header(&q, "pattern"));
    const char *rate_s = evhttp_find_header(&q, "rate");
    double rate = rate_s ? atof(rate_s) : 100;
    if (rate <= 0 || rate > 100000)
        rate = rate <= 0 ? 100 : 100000;
    struct tap_sess *s = calloc(1, sizeof *s);
    if (s) {
        s->m = m;
        s->req = req;
        s->rate = rate;
        s->ev = event_new(m->evbase, -1, 0, tap_flush, s);
        s->tick = event_new(m->evbase, -1, EV_PERSIST, tap_flush, s);
        s->t = tap_open(evhttp_find_header(&q, "pattern"), evhttp_find_header(&q, "output"), rate, tap_wake, s);
    }
    evhttp_clear_headers(&q);
    if (!s || !s->ev || !s->tick || !s->t) {
        if (s) {
            tap_close(s->t);
            if (s->ev)
                event_free(s->ev);
            if (s->tick)
                event_free(s->tick);
            free(s);
        }
        evbuffer_add_printf(body, "too many taps open\n");
        reply(req, 503, "Service Unavailable", "text/plain", body);
        return;
    }
    DLIST_PUSH(m->taps, s);
    struct timeval one = {1, 0};
    event_add(s->tick, &one);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/x-ndjson");
    evhttp_send_reply_start(req, 200, "OK");
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), tap_closed, s);
    wlog_info("monitor", "tap opened: pattern '%s', at most %g records/s", pattern, rate);
}

/* NULL when this request may open a tap: `tap true`, and a loopback client
 * or one that sends the tap_token */
static const char *tap_refused(monitor *m, struct evhttp_request *req)
{
    if (!m->tap)
        return "tap is off: enable it with `tap true` in this monitor source";
    char *peer = NULL;
    ev_uint16_t port = 0;
    struct evhttp_connection *ec = evhttp_request_get_connection(req);
    if (ec)
        evhttp_connection_get_peer(ec, &peer, &port);
    struct in6_addr a6;
    struct in_addr a4;
    int loopback = peer && ((inet_pton(AF_INET, peer, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127) ||
                            (inet_pton(AF_INET6, peer, &a6) == 1 &&
                             (IN6_IS_ADDR_LOOPBACK(&a6) ||
                              (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127))));
    if (loopback)
        return NULL;
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (m->tap_token && auth && !strncmp(auth, "Bearer ", 7)) {
        size_t tl = strlen(m->tap_token), al = strlen(auth + 7);
        unsigned diff = (unsigned)(tl ^ al);
        for (size_t i = 0; i < al; i++)
            diff |= (unsigned char)auth[7 + i] ^ (unsigned char)m->tap_token[i % (tl ? tl : 1)];
        if (!diff)
            return NULL;
    }
    return m->tap_token ? "tap refused: a client that is not on loopback must send Authorization: Bearer TOKEN"
                        : "tap answers loopback clients only (configure tap_token to allow others)";
}

static void handle(struct evhttp_request *req, void *arg)
{
    monitor *m = arg;
    const char *uri = evhttp_request_get_uri(req);
    char path[256];
    size_t pl = strcspn(uri, "?");
    snprintf(path, sizeof path, "%.*s", (int)(pl < sizeof path ? pl : sizeof path - 1), uri);
    struct evbuffer *body = evbuffer_new();
    monitor_lock(); /* a reload swaps the pipeline's lists */
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
        evbuffer_add_printf(body, "method not allowed\n");
        reply(req, 405, "Method Not Allowed", "text/plain", body);
    } else if (!strcmp(path, m->metrics_path) || !strcmp(path, "/metrics") ||
               (m->aggregated_metrics_path && !strcmp(path, m->aggregated_metrics_path))) {
        write_metrics(m, body);
        reply(req, 200, "OK", "text/plain; version=0.0.4", body);
    } else if (!strcmp(path, "/api/tap")) {
        const char *why = tap_refused(m, req);
        if (why) {
            evbuffer_add_printf(body, "%s\n", why);
            reply(req, 403, "Forbidden", "text/plain", body);
        } else {
            tap_start(m, req, body);
        }
    } else if (!strcmp(path, "/healthz")) {
        evbuffer_add_printf(body, "ok\n");
        reply(req, 200, "OK", "text/plain", body);
    } else if (!strcmp(path, "/readyz")) {
        int ready = atomic_load(&proc_ready) && !atomic_load(&proc_draining);
        evbuffer_add_printf(body, "%s\n", ready ? "ready" : atomic_load(&proc_draining) ? "draining" : "starting");
        reply(req, ready ? 200 : 503, ready ? "OK" : "Service Unavailable", "text/plain", body);
    } else if (!strcmp(path, "/api/v1/health")) {
        int ok = healthy(m);
        /* the body stays Fluent Bit's; the memory budget rides in headers */
        char v[32];
        snprintf(v, sizeof v, "%llu", (unsigned long long)mb_limit());
        evhttp_add_header(evhttp_request_get_output_headers(req), "X-Weir-Memory-Budget", v);
        snprintf(v, sizeof v, "%llu", (unsigned long long)mb_in_use());
        evhttp_add_header(evhttp_request_get_output_headers(req), "X-Weir-Memory-In-Use", v);
        evbuffer_add_printf(body, "%s\n", ok ? "ok" : "error");
        reply(req, ok ? 200 : 500, ok ? "OK" : "Internal Server Error", "text/plain", body);
    } else if (!strcmp(path, "/api/plugins.json") || !strcmp(path, "/api/plugins")) {
        char l1[256];
        evbuffer_add_printf(body, "{\"plugins\":[");
        int first = 1;
        for (size_t i = 0; i < m->pl->nsources; i++) {
            source *sr = m->pl->sources[i];
            char l2[64];
            evbuffer_add_printf(body, "%s{\"plugin_id\":\"%s\",\"plugin_category\":\"input\",\"type\":\"%s\"}",
                                first ? "" : ",", prom_label(sr->id, l1, sizeof l1),
                                prom_label(sr->plugin->name, l2, sizeof l2));
            first = 0;
        }
        for (size_t i = 0; i < m->pl->noutputs; i++) {
            output *op = m->pl->outputs[i];
            buffer_snap s = {0};
            if (op->buf)
                buffer_snapshot(op->buf, &s);
            evbuffer_add_printf(body,
                                "%s{\"plugin_id\":\"%s\",\"plugin_category\":\"output\",\"type\":\"%s\","
                                "\"output_plugin\":true,\"buffer_queue_length\":%u,\"buffer_total_queued_size\":%llu,"
                                "\"buffer_stage_length\":%u,\"retry_count\":%d,\"emit_records\":%llu,"
                                "\"write_count\":%llu,\"rollback_count\":%llu}",
                                first ? "" : ",", prom_label(op->id, l1, sizeof l1), op->plugin->name, s.queued,
                                (unsigned long long)s.bytes, s.staged, s.retries,
                                (unsigned long long)prom_ld(&op->records_in), (unsigned long long)prom_ld(&op->lat_count),
                                (unsigned long long)(op->buf ? prom_ld(&op->buf->retried_flushes) : 0));
            first = 0;
        }
        evbuffer_add_printf(body, "]}\n");
        reply(req, 200, "OK", "application/json", body);
    } else {
        evbuffer_add_printf(body, "not found: try /metrics, /api/plugins.json, /api/v1/health, /healthz, /readyz\n");
        reply(req, 404, "Not Found", "text/plain", body);
    }
    monitor_unlock();
    evbuffer_free(body);
}

static pthread_mutex_t pl_mu = PTHREAD_MUTEX_INITIALIZER;
void monitor_lock(void) { pthread_mutex_lock(&pl_mu); }
void monitor_unlock(void) { pthread_mutex_unlock(&pl_mu); }

static void *monitor_main(void *arg)
{
    monitor *m = arg;
    pthread_setname_np(pthread_self(), "monitor");
    event_base_loop(m->evbase, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* ---- `tag`: monitor_agent's records, every emit_interval ------------------------------- */

static void kv_str(wbuf *w, const char *k, const char *v)
{
    mpw_str(w, k, strlen(k));
    if (v)
        mpw_str(w, v, strlen(v));
    else
        mpw_nil(w);
}

static void kv_uint(wbuf *w, const char *k, uint64_t v)
{
    mpw_str(w, k, strlen(k));
    mpw_uint(w, v);
}

/* Monitor thread, under monitor_lock: one record per source and output, as
 * Fluentd's plugins_info_all (with_config false, with_retry false) */
static void emit_records(evutil_socket_t fd, short what, void *arg)
{
    monitor *m = arg;
    monitor_lock();
    pipeline *pl = m->pl;
    wbuf e = {0};
    uint32_t n = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    for (size_t i = 0; i < pl->nsources; i++) {
        source *sr = pl->sources[i];
        batch_put_entry_head(&e, (uint32_t)ts.tv_sec, (uint32_t)ts.tv_nsec, NULL, 0);
        mpw_map(&e, 5);
        kv_str(&e, "plugin_id", sr->id);
        kv_str(&e, "plugin_category", "input");
        kv_str(&e, "type", sr->plugin->name);
        mpw_str(&e, "output_plugin", 13);
        mpw_bool(&e, 0);
        kv_str(&e, "retry_count", NULL);
        n++;
    }
    for (size_t i = 0; i < pl->noutputs; i++) {
        output *op = pl->outputs[i];
        buffer_snap bs = {0};
        if (op->buf)
            buffer_snapshot(op->buf, &bs);
        batch_put_entry_head(&e, (uint32_t)ts.tv_sec, (uint32_t)ts.tv_nsec, NULL, 0);
        mpw_map(&e, op->buf ? 13 : 9);
        kv_str(&e, "plugin_id", op->id);
        kv_str(&e, "plugin_category", "output");
        kv_str(&e, "type", op->plugin->name);
        mpw_str(&e, "output_plugin", 13);
        mpw_bool(&e, 1);
        if (op->buf) {
            kv_uint(&e, "buffer_queue_length", bs.queued);
            mpw_str(&e, "buffer_timekeys", 15);
            mpw_array(&e, 0);
            kv_uint(&e, "buffer_total_queued_size", bs.bytes);
            kv_uint(&e, "buffer_stage_length", bs.staged);
        }
        kv_uint(&e, "retry_count", prom_ld(&op->write_errors));
        kv_uint(&e, "emit_records", prom_ld(&op->records_in));
        kv_uint(&e, "emit_count", prom_ld(&op->batches_in));
        kv_uint(&e, "write_count", prom_ld(&op->lat_count));
        kv_uint(&e, "rollback_count", op->buf ? prom_ld(&op->buf->retried_flushes) : 0);
        n++;
    }
    conf_errors errs = {0};
    rt_label *l = m->label_name ? router_label(pl->rt, m->label_name, NULL, 0, &errs) : router_root(pl->rt);
    conf_errors_free(&errs);
    router_ctx *rc = l ? router_ctx_new(pl->rt) : NULL;
    char why[256];
    if (!rc)
        wlog_warn("monitor", "%s: cannot emit its records (no label %s)", m->base.id,
                  m->label_name ? m->label_name : "root");
    else if (source_emit_wait(rc, pl->rt, l, m->tag, strlen(m->tag), &e, n, 1.0, NULL, why, sizeof why))
        wlog_warn("monitor", "%s: its %u records were not taken: %s", m->base.id, n, why);
    if (rc)
        router_ctx_free(rc);
    monitor_unlock();
    wbuf_free(&e);
}

static int monitor_start(monitor *m, pipeline *pl, worker *workers, int nworkers)
{
    m->pl = pl;
    m->workers = workers;
    m->nworkers = nworkers;
    m->start_time = (double)time(NULL);
    m->hc_slots = (int)(m->hc_period > 1 ? m->hc_period : 1) + 2;
    m->hc_ring = calloc((size_t)m->hc_slots * 3, sizeof *m->hc_ring);
    m->evbase = event_base_new(); /* after evthread_use_pthreads(): loopbreak works from main */
    m->http = m->evbase ? evhttp_new(m->evbase) : NULL;
    if (!m->http || evhttp_bind_socket(m->http, m->bind, (uint16_t)m->port) != 0) {
        wlog_error("monitor", "cannot listen for HTTP on %s:%lld", m->bind, (long long)m->port);
        return -1;
    }
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT);
    evhttp_set_gencb(m->http, handle, m);
    hc_sample(-1, 0, m); /* the baseline: totals at start */
    m->hc_timer = event_new(m->evbase, -1, EV_PERSIST, hc_sample, m);
    struct timeval one = {1, 0};
    event_add(m->hc_timer, &one);
    if (m->tag) {
        m->emit_timer = event_new(m->evbase, -1, EV_PERSIST, emit_records, m);
        struct timeval iv = {(time_t)m->emit_interval,
                             (suseconds_t)((m->emit_interval - (double)(time_t)m->emit_interval) * 1e6)};
        if (!m->emit_timer || event_add(m->emit_timer, &iv))
            return -1;
    }
    if (pthread_create(&m->thread, NULL, monitor_main, m) != 0)
        return -1;
    m->running = 1;
    wlog_info("monitor", "HTTP on %s:%lld: %s, /api/plugins.json, /api/v1/health, /healthz, /readyz", m->bind,
              (long long)m->port, m->metrics_path);
    return 0;
}

/* ---- the plugins (aggregator/source.h) ------------------------------------------- */

extern const source_plugin in_monitor_agent_plugin, in_prometheus_plugin;

static source *mon_agent_create(conf_node *n, int index, conf_errors *errs)
{
    monitor *m = monitor_create(n, &in_monitor_agent_plugin, index, errs);
    return m ? &m->base : NULL;
}

static source *mon_prom_create(conf_node *n, int index, conf_errors *errs)
{
    monitor *m = monitor_create(n, &in_prometheus_plugin, index, errs);
    return m ? &m->base : NULL;
}

static int mon_start(source *s, const source_env *env)
{
    return monitor_start((monitor *)s, env->pl, env->workers, env->nworkers);
}

static void mon_free(source *s) { monitor_free((monitor *)s); }

/* Fluentd's monitor_agent (port 24220) and fluent-plugin-prometheus (24231,
 * metrics_path): the same endpoint. Kept across reloads: it reads the
 * running pipeline, whichever that is. */
const source_plugin in_monitor_agent_plugin = {
    .name = "monitor_agent", .spec = monitor_spec, .create = mon_agent_create, .start = mon_start, .free = mon_free,
    .observer = 1,
};
const source_plugin in_prometheus_plugin = {
    .name = "prometheus", .spec = monitor_spec, .create = mon_prom_create, .start = mon_start, .free = mon_free,
    .observer = 1,
};
