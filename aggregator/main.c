/*
 * aggregator/main.c: command line, start-up and shutdown.
 *
 * Threads: main (config, listeners, UDP heartbeat, signals), N workers
 * (connections), one thread per output. Shutdown on SIGTERM/SIGINT:
 * stop accepting -> workers stop reading and send the acks of requests in
 * flight -> outputs drain their queues -> exit 0. Bounded by
 * <system> shutdown_timeout.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "config/conf.h"
#include "buffer/buffer.h"
#include "aggregator/monitor.h"
#include "aggregator/params.h"
#include "aggregator/pipeline.h"
#include "aggregator/reload.h"
#include "aggregator/source.h"
#include "aggregator/tap.h"
#include "aggregator/worker.h"

extern const char weir_default_conf[];

static void usage(FILE *f)
{
    fprintf(f,
            "usage: weir [-c FILE] [--dry-run] [--log-level LEVEL]\n"
            "       weir --list-params\n"
            "       weir tap [--endpoint HOST:PORT] [--rate N] [--output ID] [--token T] PATTERN\n"
            "\n"
            "  -c, --config FILE    configuration in Fluentd syntax (default: the embedded\n"
            "                       config: forward on 24224, JSON lines under ./data/)\n"
            "      --dry-run        check the configuration, print every error as\n"
            "                       FILE:LINE: message, exit 0 if it is valid\n"
            "      --show-default   print the embedded default configuration\n"
            "      --list-params    print every section's and plugin's parameters as Markdown\n"
            "                       tables (the source of docs/configuration.md's tables)\n"
            "      --log-level L    trace, debug, info, warn, error (overrides <system>)\n"
            "  -V, --version        print the version\n"
            "  -h, --help           this help\n"
            "\n"
            "Logs are JSON objects, one per line, on stderr.\n");
}

static void on_tick(evutil_socket_t fd, short ev, void *arg)
{
    (void)fd;
    (void)ev;
    reload_ctx *x = arg;
    router_tick(x->pl->rt, clock_mono(), FILTER_TICK);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    reload_ctx *rl = arg;
    if (sig == SIGHUP) {
        reload_run(rl);
        return;
    }
    wlog_info("main", "%s received: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    event_base_loopexit(rl->base, NULL);
}

static void break_task(worker *w, void *arg) { event_base_loopbreak(w->base); }

/* Shutdown: after `at` (half of shutdown_timeout), appends blocked on a full buffer give up, unless the
 * sources' stop finished first (done). */
typedef struct shutdown_watch {
    pipeline *pl;
    struct timespec at; /* CLOCK_REALTIME */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    pthread_t thread;
} shutdown_watch;

static void *shutdown_watch_main(void *arg)
{
    shutdown_watch *w = arg;
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while (!w->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w->cv, &w->mu, &w->at);
    int fire = !w->done;
    pthread_mutex_unlock(&w->mu);
    if (fire) {
        wlog_warn("main", "a source has not stopped within half of shutdown_timeout; appends waiting for buffer space "
                          "give up (what they held is not acknowledged or committed)");
        for (size_t k = 0; k < w->pl->noutputs; k++)
            if (w->pl->outputs[k]->buf)
                buffer_abort_waits(w->pl->outputs[k]->buf);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *config = NULL, *log_level = NULL;
    int dry_run = 0;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"dry-run", no_argument, NULL, 'n'},
        {"version", no_argument, NULL, 'V'},      {"help", no_argument, NULL, 'h'},
        {"log-level", required_argument, NULL, 'l'}, {"show-default", no_argument, NULL, 's'},
        {"list-params", no_argument, NULL, 'P'},  {NULL, 0, NULL, 0},
    };
    if (argc > 1 && strcmp(argv[1], "tap") == 0)
        return tap_client_main(argc - 1, argv + 1);
    int ch;
    while ((ch = getopt_long(argc, argv, "c:Vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': config = optarg; break;
        case 'n': dry_run = 1; break;
        case 'V': printf("weir %s\n", WEIR_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        case 'l': log_level = optarg; break;
        case 's': fputs(weir_default_conf, stdout); return 0;
        case 'P': return params_list(stdout) == 0 && fflush(stdout) == 0 ? 0 : 1;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "weir: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (log_level) {
        int l = wlog_level_from_name(log_level);
        if (l < 0) {
            fprintf(stderr, "weir: unknown log level '%s'\n", log_level);
            return 2;
        }
        wlog_level = l;
    }

    conf_errors errs = {0};
    conf_node *root = config ? conf_parse_file(config, &errs) : conf_parse_string(weir_default_conf, "<embedded default>", &errs);
    pipeline pl;
    reload_ctx rl = {0};
    int bad = !root || errs.n > 0, loaded = 0;
    if (root) {
        if (pipeline_load(&pl, root, &errs) != 0) {
            bad = 1;
        } else {
            loaded = 1;
            pipeline_bind_error_sinks(&pl);
        }
    }
    /* what Fluentd accepts with a warning (v0.12 names it converts, parameters it does not use) */
    size_t nwarn = 0;
    if (root) {
        const conf_errors *w = conf_warnings(root);
        conf_errors ws = {0};
        for (size_t i = 0; w && i < w->n; i++)
            conf_errors_add(&ws, NULL, 0, "%s", w->msgs[i]);
        conf_errors_sort(&ws);
        for (size_t i = 0; i < ws.n; i++) {
            if (dry_run)
                fprintf(stderr, "%s\n", ws.msgs[i]);
            else
                wlog_warn("config", "%s", ws.msgs[i]);
        }
        nwarn = ws.n;
        conf_errors_free(&ws);
    }
    if (bad) {
        if (loaded)
            pipeline_free(&pl); /* the parser had errors although the pipeline could be built */
        conf_errors_sort(&errs);
        for (size_t i = 0; i < errs.n; i++) {
            if (dry_run)
                fprintf(stderr, "%s\n", errs.msgs[i]);
            else
                wlog_error("config", "%s", errs.msgs[i]);
        }
        if (dry_run)
            fprintf(stderr, "%zu error%s\n", errs.n, errs.n == 1 ? "" : "s");
        else
            wlog_error("config", "invalid configuration (%zu error%s); not starting", errs.n, errs.n == 1 ? "" : "s");
        conf_errors_free(&errs);
        conf_free(root);
        return 1;
    }
    conf_errors_free(&errs);
    if (dry_run) {
        fprintf(stderr, "%s: configuration OK (%zu sources, %zu outputs)", config ? config : "<embedded default>",
                pl.nsources, pl.noutputs);
        if (nwarn)
            fprintf(stderr, " with %zu warning%s", nwarn, nwarn == 1 ? "" : "s");
        fputc('\n', stderr);
        pipeline_free(&pl);
        conf_free(root);
        return 0;
    }
    if (!log_level && pl.sys.log_level)
        wlog_level = wlog_level_from_name(pl.sys.log_level);
    pipeline_apply_budget(&pl.sys);

    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    struct event_base *base = event_base_new();
    int nworkers = (int)pl.sys.workers;
    worker *workers = calloc((size_t)nworkers, sizeof *workers);
    int rc = 1;
    int started_workers = 0;
    for (int i = 0; i < nworkers; i++) {
        workers[i].evfd = -1;
        if (worker_init(&workers[i], i, pl.rt) || source_worker_init(&workers[i])) {
            wlog_error("main", "cannot create worker %d", i);
            goto out;
        }
    }
    for (size_t i = 0; i < pl.noutputs; i++)
        if (output_start(pl.outputs[i])) {
            wlog_error("main", "cannot start output %s", pl.outputs[i]->id);
            goto out;
        }
    for (int i = 0; i < nworkers; i++) {
        if (worker_start(&workers[i])) {
            wlog_error("main", "cannot start worker %d", i);
            goto out;
        }
        started_workers++;
    }
    source_env env = {.base = base, .workers = workers, .nworkers = nworkers, .pl = &pl};
    if (pipeline_start_sources(&pl, &env))
        goto out;
    /* outputs started (buffers recovered) and listeners up: ready */
    monitor_set_ready();

    struct event *sigs[3];
    int signums[3] = {SIGTERM, SIGINT, SIGHUP};
    rl.pl = &pl;
    rl.workers = workers;
    rl.nworkers = nworkers;
    rl.base = base;
    rl.config_path = config;
    rl.embedded = weir_default_conf;
    rl.log_level_forced = log_level != NULL;
    rl.root = root;
    for (int i = 0; i < 3; i++) {
        sigs[i] = evsignal_new(base, signums[i], on_signal, &rl);
        event_add(sigs[i], NULL);
    }
    /* the filters' clock (aggregate's inactivity timeouts): once a second on
     * this thread, so it never runs during a reload */
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, &rl);
    struct timeval one = {1, 0};
    event_add(tick, &one);
    wlog_info("main", "weir %s started: config %s, %d workers, %zu outputs", WEIR_VERSION,
              config ? config : "<embedded default>", nworkers, pl.noutputs);
    event_base_dispatch(base);
    for (int i = 0; i < 3; i++)
        event_free(sigs[i]);
    event_free(tick);
    rc = 0;
    monitor_set_draining();

out:;
    double stop_deadline = clock_mono() + pl.sys.shutdown_timeout;
    /* 1. stop accepting */
    for (size_t i = 0; i < pl.nsources; i++)
        if (pl.sources[i]->plugin->close)
            pl.sources[i]->plugin->close(pl.sources[i]);
    /* 2. workers finish their requests in flight (acks) and leave their loops */
    for (int i = 0; i < started_workers; i++)
        source_worker_stop(&workers[i]);
    /* Workers wait for their requests' acks. A buffer blocked on overflow or a
     * full disk would hold them: after half the timeout, such appends give up
     * (those requests are not acked; their senders keep the records). */
    struct timespec deadline, half;
    clock_gettime(CLOCK_REALTIME, &deadline);
    half = deadline;
    deadline.tv_sec += (time_t)pl.sys.shutdown_timeout;
    half.tv_sec += (time_t)(pl.sys.shutdown_timeout / 2);
    int forced = 0;
    for (int i = 0; i < started_workers; i++) {
        if (pthread_timedjoin_np(workers[i].thread, NULL, &half) == 0)
            continue;
        for (size_t k = 0; k < pl.noutputs; k++)
            if (pl.outputs[k]->buf)
                buffer_abort_waits(pl.outputs[k]->buf);
        if (pthread_timedjoin_np(workers[i].thread, NULL, &deadline) != 0) {
            wlog_error("main", "worker %d did not finish within shutdown_timeout (%.0fs); closing its connections",
                       i, pl.sys.shutdown_timeout);
            worker_post(&workers[i], break_task, NULL);
            worker_join(&workers[i]);
            forced = 1;
        }
    }
    /* sources with threads of their own (kafka) hand over what they read and commit it; a buffer
     * blocked on overflow would hold that too: from half the timeout on, its appends give up (the
     * source then commits nothing of that burst, which is read again at the next start) */
    shutdown_watch sw = {.pl = &pl, .at = half};
    int watching = pthread_mutex_init(&sw.mu, NULL) == 0 && pthread_cond_init(&sw.cv, NULL) == 0 &&
                   pthread_create(&sw.thread, NULL, shutdown_watch_main, &sw) == 0;
    for (size_t i = 0; i < pl.nsources; i++)
        if (pl.sources[i]->plugin->stop)
            pl.sources[i]->plugin->stop(pl.sources[i]);
    if (watching) {
        pthread_mutex_lock(&sw.mu);
        sw.done = 1;
        pthread_cond_signal(&sw.cv);
        pthread_mutex_unlock(&sw.mu);
        pthread_join(sw.thread, NULL);
        pthread_cond_destroy(&sw.cv);
        pthread_mutex_destroy(&sw.mu);
    }
    /* nothing comes in any more: filters emit what they hold (aggregate's
     * open sagas, outcome "open") while the outputs still run */
    router_tick(pl.rt, clock_mono(), FILTER_TICK_SHUTDOWN);
    /* 3. outputs take what they were handed; buffers flush (flush_at_shutdown)
     * or keep their chunks for the next start */
    size_t nout = pl.noutputs;
    for (size_t i = 0; i < pl.noutputs; i++)
        output_stop(pl.outputs[i], stop_deadline);
    if (!forced) {
        for (int i = 0; i < nworkers; i++) {
            source_worker_free(&workers[i]);
            worker_free(&workers[i]);
        }
        free(workers);
    }
    pipeline_free(&pl);
    if (rl.root)
        root = rl.root; /* the tree of the configuration running last */
    conf_free(root);
    reload_free(&rl);
    event_base_free(base);
    wlog_info("main", "stopped (%zu outputs drained)", nout);
    libevent_global_shutdown();
    return rc;
}
