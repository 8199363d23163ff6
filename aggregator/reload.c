/*
 * aggregator/reload.c: SIGHUP reload; see reload.h and docs/architecture.md
 * ("Reload").
 *
 * Main thread only. The new configuration is parsed and built completely
 * (pipeline_load) before anything running is touched, so an invalid file
 * changes nothing. Unchanged outputs (same configuration text) are carried
 * over as they are, buffer, queue, connections and all: the output factory
 * hands them to router_build instead of creating twins. Then every worker
 * is parked between requests (fwd_quiesce: all its requests acked), and
 * while nothing reads, outputs that changed are stopped (file buffers keep
 * their chunks on disk for their successors, which recover them when they
 * start), new outputs are started, unchanged forward sources adopt their
 * new TLS context (certificate files re-read) and keep their listeners and
 * connections, dropped sources stop listening, other sources (kafka) are
 * restarted, and the workers are released onto the new routes.
 *
 * Old routers and configuration trees are kept until exit: a buffer flush
 * thread may be inside router_emit_error() with the old router while the
 * swap happens (they are small; reloads are rare).
 */
#include "aggregator/reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "buffer/buffer.h"
#include "aggregator/monitor.h"
#include "aggregator/source.h"

typedef struct claim_state {
    pipeline *old;
    uint8_t *claimed; /* per old output */
    size_t kept;
} claim_state;

static output *make_output(void *arg, conf_node *n, const char *pattern, int index, conf_errors *errs)
{
    claim_state *cs = arg;
    char *fp = conf_fingerprint(n);
    if (fp) {
        for (size_t i = 0; i < cs->old->noutputs; i++) {
            output *o = cs->old->outputs[i];
            if (!cs->claimed[i] && o->conf_fp && strcmp(o->conf_fp, fp) == 0) {
                cs->claimed[i] = 1;
                cs->kept++;
                o->borrowed = 1; /* a failed load must not destroy it */
                free(fp);
                return o;
            }
        }
        free(fp);
    }
    return output_create(n, pattern, index, errs);
}

atomic_uint_fast64_t reload_ok_total, reload_failed_total;

static void *push(void *arr, size_t *n, void *item)
{
    void **a = realloc(arr, (*n + 1) * sizeof *a);
    if (!a)
        return arr;
    a[(*n)++] = item;
    return a;
}

int reload_run(reload_ctx *x)
{
    pipeline *pl = x->pl;
    double t0 = clock_mono();
    wlog_info("reload", "SIGHUP: reloading %s", x->config_path ? x->config_path : "the embedded configuration");

    /* 1. parse and build the new pipeline, reusing unchanged outputs */
    conf_errors errs = {0};
    conf_node *root = x->config_path ? conf_parse_file(x->config_path, &errs)
                                     : conf_parse_string(x->embedded, "<embedded default>", &errs);
    pipeline npl;
    claim_state cs = {.old = pl, .claimed = calloc(pl->noutputs ? pl->noutputs : 1, 1)};
    int bad = !root || errs.n > 0 || !cs.claimed;
    if (!bad) {
        router_set_output_factory(make_output, &cs);
        if (pipeline_load(&npl, root, &errs) != 0)
            bad = 1;
        router_set_output_factory(NULL, NULL);
    }
    if (bad) {
        /* pipeline_load cleaned up; borrowed outputs survived it */
        for (size_t i = 0; i < pl->noutputs; i++)
            pl->outputs[i]->borrowed = 0;
        conf_errors_sort(&errs);
        for (size_t i = 0; i < errs.n; i++)
            wlog_error("config", "%s", errs.msgs[i]);
        wlog_error("reload", "the new configuration is invalid (%zu error%s); keeping the running one", errs.n,
                   errs.n == 1 ? "" : "s");
        atomic_fetch_add(&reload_failed_total, 1);
        conf_errors_free(&errs);
        conf_free(root);
        free(cs.claimed);
        return -1;
    }
    conf_errors_free(&errs);
    for (size_t i = 0; i < npl.noutputs; i++)
        npl.outputs[i]->borrowed = 0;
    if (npl.sys.workers != pl->sys.workers)
        wlog_warn("reload", "<system> workers changed (%lld -> %lld): takes effect at the next restart",
                  (long long)pl->sys.workers, (long long)npl.sys.workers);
    if (npl.nmonitors != pl->nmonitors)
        wlog_warn("reload", "monitor sources are not reloaded (the running ones stay): restart to change them");

    /* pair unchanged forward sources */
    fwd_source **pair = calloc(npl.nsources ? npl.nsources : 1, sizeof *pair); /* new -> old */
    uint8_t *old_kept = calloc(pl->nsources ? pl->nsources : 1, 1);
    for (size_t i = 0; pair && old_kept && i < npl.nsources; i++)
        for (size_t k = 0; k < pl->nsources; k++)
            if (!old_kept[k] && npl.sources[i]->conf_fp && pl->sources[k]->conf_fp &&
                strcmp(npl.sources[i]->conf_fp, pl->sources[k]->conf_fp) == 0) {
                old_kept[k] = 1;
                pair[i] = pl->sources[k];
                break;
            }

    /* 2. park every worker between requests */
    fwd_gate *g = fwd_quiesce(x->workers, x->nworkers);
    if (!pair || !old_kept || !g ||
        fwd_gate_wait_parked(g, x->nworkers, pl->sys.shutdown_timeout > 0 ? pl->sys.shutdown_timeout : 10) != 0) {
        wlog_error("reload", "requests in flight did not complete within %.0fs (an output is blocked?); keeping the "
                   "running configuration",
                   pl->sys.shutdown_timeout);
        if (g)
            fwd_gate_release(g, NULL, x->workers, x->nworkers);
        /* carried-over outputs belong to the running pipeline: take them out of npl */
        for (size_t i = 0; i < npl.noutputs; i++)
            for (size_t k = 0; k < pl->noutputs; k++)
                if (npl.outputs[i] == pl->outputs[k])
                    npl.outputs[i] = NULL;
        size_t w = 0;
        for (size_t i = 0; i < npl.noutputs; i++)
            if (npl.outputs[i])
                npl.outputs[w++] = npl.outputs[i];
        npl.noutputs = w;
        pipeline_free(&npl);
        atomic_fetch_add(&reload_failed_total, 1);
        free(pair);
        free(old_kept);
        free(cs.claimed);
        conf_free(root);
        return -1;
    }

    /* 3. everything idle: swap */
    double deadline = clock_mono() + (pl->sys.shutdown_timeout > 0 ? pl->sys.shutdown_timeout : 10);
    /* other sources hand over what they read and commit it */
    for (size_t i = 0; i < pl->nxsources; i++)
        pl->xsources[i]->plugin->stop(pl->xsources[i]);
    /* dropped and changed forward sources stop listening first (a changed
     * one may listen again on the same port) */
    size_t dropped = 0;
    for (size_t k = 0; k < pl->nsources; k++)
        if (!old_kept[k]) {
            pl->sources[k]->retiring = 1;
            fwd_source_close(pl->sources[k]);
            dropped++;
        }
    /* until the new routes are in place, records outputs reject go to the
     * dead-letter files (the write lock waits for flush threads inside the
     * old @ERROR label, whose outputs may be about to stop) */
    buffer_sink_lock(1);
    for (size_t k = 0; k < pl->noutputs; k++)
        if (pl->outputs[k]->buf)
            pl->outputs[k]->buf->error_sink = NULL;
    buffer_sink_lock(0);
    /* outputs that changed or went: drain and stop (file buffers keep their
     * chunks; memory buffers flush per flush_at_shutdown) */
    size_t stopped = 0;
    output **gone = NULL;
    size_t ngone = 0;
    for (size_t k = 0; k < pl->noutputs; k++)
        if (!cs.claimed[k]) {
            output_stop(pl->outputs[k], deadline);
            gone = push(gone, &ngone, pl->outputs[k]);
            stopped++;
        }
    size_t started = 0;
    for (size_t i = 0; i < npl.noutputs; i++) {
        output *o = npl.outputs[i];
        int carried = 0;
        for (size_t k = 0; k < pl->noutputs && !carried; k++)
            carried = pl->outputs[k] == o;
        if (carried)
            continue;
        if (output_start(o) != 0)
            wlog_error("reload", "cannot start output %s; its records will fail until the next reload", o->id);
        else
            started++;
    }
    /* records outputs reject go to the new @ERROR label from now on */
    buffer_sink_lock(1);
    pipeline_bind_error_sinks(&npl);
    buffer_sink_lock(0);
    /* forward sources: carried over (new TLS context, label), or new */
    fwd_source **shells = NULL;
    size_t nshells = 0;
    size_t added = 0;
    for (size_t i = 0; i < npl.nsources; i++) {
        if (pair[i]) {
            fwd_source_adopt(pair[i], npl.sources[i]);
            shells = push(shells, &nshells, npl.sources[i]);
            npl.sources[i] = pair[i];
        } else {
            if (fwd_source_listen(npl.sources[i], x->base, x->workers, x->nworkers) != 0)
                wlog_error("reload", "source %s cannot listen; it stays down until the next reload",
                           npl.sources[i]->id);
            added++;
        }
    }
    for (size_t i = 0; i < npl.nxsources; i++)
        if (npl.xsources[i]->plugin->start(npl.xsources[i]) != 0)
            wlog_error("reload", "cannot start source %s", npl.xsources[i]->id);

    /* the running pipeline becomes the new one (monitors and workers stay) */
    monitor_lock(); /* the monitor thread reads pl */
    pipeline old = *pl;
    x->old_routers = push(x->old_routers, &x->nold_routers, old.rt);
    x->old_roots = push(x->old_roots, &x->nold_roots, x->root);
    x->root = root;
    pl->rt = npl.rt;
    pl->sources = npl.sources;
    pl->nsources = npl.nsources;
    pl->xsources = npl.xsources;
    pl->nxsources = npl.nxsources;
    pl->outputs = npl.outputs;
    pl->noutputs = npl.noutputs;
    if (npl.sys.log_level && !x->log_level_forced)
        wlog_level = wlog_level_from_name(npl.sys.log_level);
    pl->sys.shutdown_timeout = npl.sys.shutdown_timeout;
    monitor_unlock();

    /* 4. workers read again, on the new routes */
    fwd_gate_release(g, npl.rt, x->workers, x->nworkers);

    /* 5. free what nobody uses any more */
    for (size_t k = 0; k < old.nsources; k++)
        if (!old_kept[k])
            fwd_source_free(old.sources[k]);
    for (size_t i = 0; i < nshells; i++)
        fwd_source_free(shells[i]);
    for (size_t i = 0; i < old.nxsources; i++)
        old.xsources[i]->plugin->free(old.xsources[i]);
    for (size_t i = 0; i < ngone; i++)
        output_destroy(gone[i]);
    for (size_t i = 0; i < npl.nmonitors; i++)
        monitor_free(npl.monitors[i]);
    free(npl.monitors);
    pipeline_sys_free(&npl.sys);
    free(old.sources);
    free(old.xsources);
    free(old.outputs);
    free(shells);
    free(gone);
    free(pair);
    free(old_kept);
    free(cs.claimed);
    atomic_fetch_add(&reload_ok_total, 1);
    wlog_info("reload", "configuration reloaded in %.3fs: outputs %zu kept, %zu started, %zu stopped; forward "
              "sources %zu kept, %zu added, %zu removed",
              clock_mono() - t0, cs.kept, started, stopped, npl.nsources - added, added, dropped);
    return 0;
}

void reload_free(reload_ctx *x)
{
    for (size_t i = 0; i < x->nold_routers; i++)
        router_free(x->old_routers[i]);
    free(x->old_routers);
    for (size_t i = 0; i < x->nold_roots; i++)
        conf_free(x->old_roots[i]);
    free(x->old_roots);
    x->old_routers = NULL;
    x->old_roots = NULL;
    x->nold_routers = x->nold_roots = 0;
}
