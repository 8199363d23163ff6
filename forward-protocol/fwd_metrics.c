/*
 * forward-protocol/fwd_metrics.c: the forward input's Prometheus families
 * (/metrics), summed over the workers (per-worker relaxed counters) and per
 * source. Runs on the monitor thread under monitor_lock (aggregator/monitor.c
 * calls it through the plugin's `metrics`).
 */
#include "forward-protocol/fwd_input.h"

#include <stddef.h>
#include <string.h>

#include <event2/buffer.h>

#include "lib/prom.h"

typedef struct wsum {
    uint64_t records, bytes, requests, connections, connections_open, invalid, decode_errors, oversize, acks, markers,
        signals, too_deep, too_long, over_decompressed, retimed;
} wsum;

static void sum_workers(const source_env *env, wsum *s)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < env->nworkers; i++) {
        worker_stats *w = &env->workers[i].stats;
        s->records += prom_ld(&w->records);
        s->bytes += prom_ld(&w->bytes);
        s->requests += prom_ld(&w->requests);
        s->connections += prom_ld(&w->connections);
        s->connections_open += prom_ld(&w->connections_open);
        s->invalid += prom_ld(&w->invalid_events);
        s->retimed += prom_ld(&w->retimed);
        s->decode_errors += prom_ld(&w->decode_errors);
        s->oversize += prom_ld(&w->oversize);
        s->acks += prom_ld(&w->acks);
        s->markers += prom_ld(&w->markers);
        s->signals += prom_ld(&w->signals_skipped);
        s->too_deep += prom_ld(&w->too_deep);
        s->too_long += prom_ld(&w->too_long);
        s->over_decompressed += prom_ld(&w->over_decompressed);
    }
}

/* A counter family with a line per source: the counter at offset `off` of
 * each fwd_source. */
static void per_source(struct evbuffer *o, source *const *srcs, size_t n, const char *name, const char *help,
                       size_t off)
{
    char l1[256];
    prom_head(o, name, "counter", help);
    for (size_t i = 0; i < n; i++) {
        fwd_source *s = (fwd_source *)srcs[i];
        evbuffer_add_printf(o, "%s{input=\"%s\"} %llu\n", name, prom_label(s->base.id, l1, sizeof l1),
                            (unsigned long long)prom_ld((atomic_uint_fast64_t *)((char *)s + off)));
    }
}

void fwd_metrics(source *const *srcs, size_t n, const source_env *env, struct evbuffer *o)
{
    wsum w;
    sum_workers(env, &w);
    char l1[256];
    struct {
        const char *name, *help;
        uint64_t v;
    } in[] = {
        {"weir_input_records_total", "records accepted from senders", w.records},
        {"weir_input_bytes_total", "bytes read from senders", w.bytes},
        {"weir_input_requests_total", "forward requests decoded", w.requests},
        {"weir_input_connections_total", "connections accepted", w.connections},
        {"weir_input_invalid_events_total", "events skipped as invalid", w.invalid},
        {"weir_input_invalid_time_total", "events whose time was invalid, kept with the time of receipt", w.retimed},
        {"weir_input_decode_errors_total", "corrupt requests (connection closed)", w.decode_errors},
        {"weir_input_oversize_requests_total", "requests over chunk_size_limit (connection closed)", w.oversize},
        {"weir_input_acks_total", "acks sent", w.acks},
        {"weir_input_group_markers_total", "Fluent Bit group markers skipped", w.markers},
        {"weir_input_signals_skipped_total", "metrics/traces requests skipped (fluent_signal)", w.signals},
    };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        prom_head(o, in[i].name, "counter", in[i].help);
        evbuffer_add_printf(o, "%s{input=\"forward\"} %llu\n", in[i].name, (unsigned long long)in[i].v);
    }
    prom_head(o, "weir_input_connections_open", "gauge", "connections open now");
    evbuffer_add_printf(o, "weir_input_connections_open{input=\"forward\"} %llu\n",
                        (unsigned long long)w.connections_open);
    per_source(o, srcs, n, "weir_input_connections_refused_total", "connections closed at accept: max_connections",
               offsetof(fwd_source, conns_refused));
    per_source(o, srcs, n, "weir_input_connections_retired_total",
               "connections closed gracefully after max_connection_age / max_requests_per_connection",
               offsetof(fwd_source, retired));
    per_source(o, srcs, n, "weir_forward_streamed_requests_total",
               "requests over stream_threshold (or refused a whole frame by the memory budget) decoded as they arrived",
               offsetof(fwd_source, streamed));
    per_source(o, srcs, n, "weir_forward_partial_requests_total",
               "streamed requests cut off (closed, corrupt, a limit) after some of their records were handed on",
               offsetof(fwd_source, partial_requests));
    per_source(o, srcs, n, "weir_forward_partial_request_records_total",
               "records of cut-off streamed requests that were handed on (never acked: the sender's retry delivers "
               "them again)",
               offsetof(fwd_source, partial_records));
    per_source(o, srcs, n, "weir_input_idle_closed_total", "connections closed by idle_timeout",
               offsetof(fwd_source, idle_closed));
    /* every security limit in one family (docs/security.md) */
    prom_head(o, "weir_input_limit_exceeded_total", "counter",
                "limit hits: request_size, decompressed_size, nesting_depth, string_length (events skipped), "
                "max_connections, handshake_timeout, idle_timeout (connections closed)");
    {
        struct {
            const char *limit;
            uint64_t v;
        } lim[] = {{"request_size", w.oversize},
                   {"decompressed_size", w.over_decompressed},
                   {"nesting_depth", w.too_deep},
                   {"string_length", w.too_long}};
        for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++)
            evbuffer_add_printf(o, "weir_input_limit_exceeded_total{input=\"forward\",limit=\"%s\"} %llu\n",
                                lim[i].limit, (unsigned long long)lim[i].v);
        for (size_t i = 0; i < n; i++) {
            fwd_source *s = ((fwd_source *)srcs[i]);
            const char *id = prom_label(s->base.id, l1, sizeof l1);
            evbuffer_add_printf(o, "weir_input_limit_exceeded_total{input=\"%s\",limit=\"max_connections\"} %llu\n",
                                id, (unsigned long long)prom_ld(&s->conns_refused));
            evbuffer_add_printf(o, "weir_input_limit_exceeded_total{input=\"%s\",limit=\"handshake_timeout\"} %llu\n",
                                id, (unsigned long long)prom_ld(&s->hs_timeouts));
            evbuffer_add_printf(o, "weir_input_limit_exceeded_total{input=\"%s\",limit=\"idle_timeout\"} %llu\n",
                                id, (unsigned long long)prom_ld(&s->idle_closed));
        }
    }
    prom_head(o, "weir_input_handshakes_total", "counter",
                "handshakes by result: ok, refused (shared key/user), tls_failed, timeout");
    for (size_t i = 0; i < n; i++) {
        fwd_source *s = ((fwd_source *)srcs[i]);
        const char *id = prom_label(s->base.id, l1, sizeof l1);
        evbuffer_add_printf(o, "weir_input_handshakes_total{input=\"%s\",result=\"ok\"} %llu\n", id,
                            (unsigned long long)prom_ld(&s->hs_ok));
        evbuffer_add_printf(o, "weir_input_handshakes_total{input=\"%s\",result=\"refused\"} %llu\n", id,
                            (unsigned long long)prom_ld(&s->hs_refused));
        evbuffer_add_printf(o, "weir_input_handshakes_total{input=\"%s\",result=\"tls_failed\"} %llu\n", id,
                            (unsigned long long)prom_ld(&s->hs_tls_failed));
        evbuffer_add_printf(o, "weir_input_handshakes_total{input=\"%s\",result=\"timeout\"} %llu\n", id,
                            (unsigned long long)prom_ld(&s->hs_timeouts));
    }
}
