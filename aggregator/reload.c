/*
 * aggregator/reload.c: SIGHUP reload; see reload.h and docs/architecture.md
 * ("Reload").
 *
 * Main thread only. The new configuration is parsed and built completely
 * (pipeline_load) before anything running is touched, so an invalid file
 * changes nothing. Unchanged outputs (same configuration text) are carried
 * over as they are, buffer, queue, connections and all: the output factory
 * hands them to router_build instead of creating twins. Then every worker
 * is parked between requests (the forward input's gate: all its requests acked), and
 * while nothing reads, outputs that changed are stopped (file buffers keep
 * their chunks on disk for their successors, which recover them when they
 * start), new outputs are started, unchanged sources whose plugin adopts
 * (forward) take their new TLS context (certificate files re-read) and keep
 * their listeners and connections, dropped sources stop listening, other
 * sources (kafka) are restarted, observers (the monitor) stay, and the
 * workers are released onto the new routes.
 *
 * Old routers and configuration trees are kept until exit: a buffer flush
 * thread may be inside router_emit_error() with the old router while the
 * swap happens (they are small; reloads are rare).
 */
#include "aggregator/reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/array.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "buffer/buffer.h"
#include "aggregator/dead_letter.h"
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
    if (root) {
        const conf_errors *w = conf_warnings(root);
        for (size_t i = 0; w && i < w->n; i++)
            wlog_warn("config", "%s", w->msgs[i]);
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
    /* pair sources: an unchanged one (same plugin and configuration text)
     * whose plugin can adopt is carried over; observers (the monitor) stay
     * as they are */
    size_t nold = pl->nsources, nnew = npl.nsources;
    source **pair = calloc(nnew ? nnew : 1, sizeof *pair); /* new -> running */
    uint8_t *old_kept = calloc(nold ? nold : 1, 1);
    int observers_differ = 0;
    for (size_t i = 0; pair && old_kept && i < nnew; i++) {
        source *nw = npl.sources[i];
        int found = 0;
        for (size_t k = 0; k < nold && !found; k++) {
            source *old = pl->sources[k];
            if (old_kept[k] || old->plugin != nw->plugin || !old->conf_fp || !nw->conf_fp ||
                strcmp(old->conf_fp, nw->conf_fp) != 0)
                continue;
            if (nw->plugin->observer || nw->plugin->adopt) {
                old_kept[k] = 1;
                pair[i] = old;
            }
            found = 1;
        }
        if (nw->plugin->observer && !pair[i])
            observers_differ = 1;
    }
    for (size_t k = 0; pair && old_kept && k < nold; k++)
        if (pl->sources[k]->plugin->observer && !old_kept[k]) {
            observers_differ = 1;
            old_kept[k] = 1; /* the running monitor stays */
        }
    if (observers_differ)
        wlog_warn("reload", "monitor sources are not reloaded (the running ones stay): restart to change them");

    /* 2. park every worker between requests (every plugin with a gate) */
    const source_plugin *const *plugins = source_plugins();
    size_t nplugins = 0;
    while (plugins[nplugins])
        nplugins++;
    void **gates = calloc(nplugins ? nplugins : 1, sizeof *gates);
    int parked = pair && old_kept && gates;
    double wait = pl->sys.shutdown_timeout > 0 ? pl->sys.shutdown_timeout : 10;
    for (size_t j = 0; parked && j < nplugins; j++)
        if (plugins[j]->quiesce && !(gates[j] = plugins[j]->quiesce(x->workers, x->nworkers)))
            parked = 0;
    for (size_t j = 0; parked && j < nplugins; j++)
        if (gates[j] && plugins[j]->wait_parked(gates[j], x->nworkers, wait) != 0)
            parked = 0;
    if (!parked) {
        wlog_error("reload", "requests in flight did not complete within %.0fs (an output is blocked?); keeping the "
                   "running configuration",
                   pl->sys.shutdown_timeout);
        for (size_t j = 0; gates && j < nplugins; j++)
            if (gates[j])
                plugins[j]->release(gates[j], NULL, x->workers, x->nworkers);
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
        free(gates);
        free(pair);
        free(old_kept);
        free(cs.claimed);
        conf_free(root);
        return -1;
    }

    /* 3. everything idle: swap */
    double deadline = clock_mono() + wait;
    /* running sources that go (dropped, changed, or not adoptable) stop
     * taking input first (a changed one may listen again on the same port),
     * and sources with threads of their own (kafka) hand over what they
     * read and commit it */
    for (size_t k = 0; k < nold; k++) {
        source *old = pl->sources[k];
        if (old_kept[k])
            continue;
        if (old->plugin->close)
            old->plugin->close(old);
        if (old->plugin->stop)
            old->plugin->stop(old);
    }
    /* filters of the old routes emit what the new ones do not take over
     * (aggregate: open sagas of a filter whose configuration changed or
     * went, outcome "open"), while every old output still runs */
    router_tick(pl->rt, clock_mono(), FILTER_TICK_RELOAD);
    /* until the new routes are in place, records outputs reject (and dead
     * letters for a dead_letter_label) go to the dead-letter files (the
     * write lock waits for flush threads inside the old @ERROR or dead-letter
     * label, whose outputs may be about to stop) */
    buffer_sink_lock(1);
    for (size_t k = 0; k < pl->noutputs; k++)
        if (pl->outputs[k]->buf) {
            pl->outputs[k]->buf->error_sink = NULL;
            pl->outputs[k]->buf->dead_sink = NULL;
        }
    buffer_sink_lock(0);
    /* outputs that changed or went: drain and stop (file buffers keep their
     * chunks; memory buffers flush per flush_at_shutdown) */
    size_t stopped = 0;
    output **gone = NULL;
    size_t ngone = 0;
    for (size_t k = 0; k < pl->noutputs; k++)
        if (!cs.claimed[k]) {
            output_stop(pl->outputs[k], deadline);
            ARRAY_APPEND(gone, ngone, pl->outputs[k]);
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
    /* sources: carried over (they take what the new one re-read: TLS
     * context, label), kept (observers), or new (started) */
    source **shells = NULL, **list = NULL;
    size_t nshells = 0, nlist = 0;
    size_t *kept_by = calloc(nplugins + 1, sizeof *kept_by), *added_by = calloc(nplugins + 1, sizeof *added_by),
           *removed_by = calloc(nplugins + 1, sizeof *removed_by);
    source_env env = {.base = x->base, .workers = x->workers, .nworkers = x->nworkers, .pl = pl};
    for (size_t i = 0; i < nnew; i++) {
        source *nw = npl.sources[i];
        size_t j = 0;
        while (plugins[j] && plugins[j] != nw->plugin)
            j++;
        if (nw->plugin->observer) {
            ARRAY_APPEND(shells, nshells, nw); /* the running observers stay */
        } else if (pair[i]) {
            nw->plugin->adopt(pair[i], nw);
            ARRAY_APPEND(shells, nshells, nw);
            ARRAY_APPEND(list, nlist, pair[i]);
            if (kept_by)
                kept_by[j]++;
        } else {
            if (nw->plugin->start(nw, &env) != 0)
                wlog_error("reload", "cannot start source %s; it stays down until the next reload", nw->id);
            ARRAY_APPEND(list, nlist, nw);
            if (added_by)
                added_by[j]++;
        }
    }
    for (size_t k = 0; k < nold; k++) {
        source *old = pl->sources[k];
        if (old->plugin->observer) {
            ARRAY_APPEND(list, nlist, old);
        } else if (!old_kept[k] && removed_by) {
            size_t j = 0;
            while (plugins[j] && plugins[j] != old->plugin)
                j++;
            removed_by[j]++;
        }
    }

    /* the running pipeline becomes the new one (observers and workers stay) */
    monitor_lock(); /* the monitor thread reads pl */
    pipeline old = *pl;
    ARRAY_APPEND(x->old_routers, x->nold_routers, old.rt);
    ARRAY_APPEND(x->old_roots, x->nold_roots, x->root);
    x->root = root;
    pl->rt = npl.rt;
    pl->dl = npl.dl; /* bound above; the old ones are detached */
    pl->sources = list;
    pl->nsources = nlist;
    pl->outputs = npl.outputs;
    pl->noutputs = npl.noutputs;
    if (npl.sys.log_level && !x->log_level_forced)
        wlog_level = wlog_level_from_name(npl.sys.log_level);
    pl->sys.shutdown_timeout = npl.sys.shutdown_timeout;
    pl->sys.memory_budget = npl.sys.memory_budget;
    pipeline_apply_budget(&pl->sys);
    monitor_unlock();

    /* 4. workers read again, on the new routes */
    for (size_t j = 0; j < nplugins; j++)
        if (gates[j])
            plugins[j]->release(gates[j], npl.rt, x->workers, x->nworkers);

    /* 5. free what nobody uses any more */
    for (size_t k = 0; k < nold; k++)
        if (!old_kept[k])
            old.sources[k]->plugin->free(old.sources[k]);
    for (size_t i = 0; i < nshells; i++)
        shells[i]->plugin->free(shells[i]);
    for (size_t i = 0; i < ngone; i++)
        output_destroy(gone[i]);
    for (size_t k = 0; old.dl && k < old.noutputs; k++)
        dl_route_free(&old.dl[k]);
    free(old.dl);
    pipeline_sys_free(&npl.sys);
    free(npl.sources);
    free(old.sources);
    free(old.outputs);
    free(shells);
    free(gone);
    free(gates);
    free(pair);
    free(old_kept);
    free(cs.claimed);
    atomic_fetch_add(&reload_ok_total, 1);
    /* "...; forward sources 1 kept, 0 added, 0 removed" for each kind present */
    char srcs[512] = "";
    size_t sl = 0;
    for (size_t j = 0; kept_by && added_by && removed_by && j < nplugins && sl < sizeof srcs; j++)
        if (kept_by[j] + added_by[j] + removed_by[j])
            sl += (size_t)snprintf(srcs + sl, sizeof srcs - sl, "; %s sources %zu kept, %zu added, %zu removed",
                                   plugins[j]->name, kept_by[j], added_by[j], removed_by[j]);
    free(kept_by);
    free(added_by);
    free(removed_by);
    wlog_info("reload", "configuration reloaded in %.3fs: outputs %zu kept, %zu started, %zu stopped%s",
              clock_mono() - t0, cs.kept, started, stopped, srcs);
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
