/*
 * forward-protocol/fwd_worker.c: the per-worker state of the forward input, stopping a
 * worker, and the reload gate that parks every worker between requests.
 * See fwd_conn.h for how the forward input is cut.
 */
#include "forward-protocol/fwd_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/mp.h"
#include "buffer/buffer.h"
#include "aggregator/router.h"
#include "forward-protocol/fwd_auth.h"
#include "aggregator/tls_server.h"

/* A stopping worker leaves its loop only when no output still holds a
 * ticket pointing at it (a closed connection may still have some). */
void fwd_check_exit(worker *w)
{
    fwd_worker *fw = w->proto;
    if (w->stopping && fw->nconns == 0 && fw->pending == 0)
        event_base_loopexit(w->base, NULL);
}

/* ---- per-worker state ---------------------------------------------------------- */

int fwd_worker_init(worker *w)
{
    fwd_worker *fw = calloc(1, sizeof *fw);
    if (!fw)
        return -1;
    fw->pressure_ev = evtimer_new(w->base, fwd_pressure_cb, w);
    fw->budget_ev = evtimer_new(w->base, fwd_budget_cb, w);
    fw->yield_ev = evtimer_new(w->base, fwd_yield_cb, w);
    fw->route = router_ctx_new(w->rt);
    w->proto = fw;
    return 0;
}

void fwd_worker_free(worker *w)
{
    fwd_worker *fw = w->proto;
    if (!fw)
        return;
    while (fw->conns)
        fwd_conn_close(fw->conns);
    if (fw->dns)
        evdns_base_free(fw->dns, 1);
    if (fw->pressure_ev)
        event_free(fw->pressure_ev);
    if (fw->budget_ev)
        event_free(fw->budget_ev);
    if (fw->yield_ev)
        event_free(fw->yield_ev);
    fwd_scratch_free(&fw->scratch);
    free(fw->tls_rbuf);
    wbuf_free(&fw->acc.data);
    router_ctx_free(fw->route);
    free(fw);
    w->proto = NULL;
}

static void stop_task(worker *w, void *arg)
{
    fwd_worker *fw = w->proto;
    w->stopping = 1;
    fwd_conn *next;
    for (fwd_conn *c = fw->conns; c; c = next) {
        next = c->next;
        if (c->rev)
            event_del(c->rev);
        /* requests already handed to outputs still get their acks before the close */
        fwd_maybe_close(c);
    }
    fwd_check_exit(w);
}

void fwd_worker_stop(worker *w) { worker_post(w, stop_task, NULL); }

/* ---- SIGHUP reload: quiesce, swap, resume ----------------------------------- */

static void gate_unref(fwd_gate *g)
{
    pthread_mutex_lock(&g->mu);
    int last = --g->refs == 0;
    pthread_mutex_unlock(&g->mu);
    if (last) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        free(g);
    }
}

/* Worker: leave the gate, switch routers if told to, close the connections
 * of sources the new configuration dropped, read again. */
static void resume(worker *w, fwd_gate *g)
{
    fwd_worker *fw = w->proto;
    fw->gate = NULL;
    pthread_mutex_lock(&g->mu);
    struct router *nrt = g->newrt;
    pthread_mutex_unlock(&g->mu);
    if (nrt && nrt != w->rt) {
        router_ctx *rc = router_ctx_new(nrt);
        if (rc) {
            router_ctx_free(fw->route);
            fw->route = rc;
            w->rt = nrt;
        } else {
            wlog_error("in_forward", "worker %d: out of memory switching to the new routes", w->id);
        }
    }
    fwd_conn *next;
    for (fwd_conn *c = fw->conns; c; c = next) {
        next = c->next;
        if (c->src->retiring) {
            /* nothing pending (the worker was idle): close now */
            c->no_more_reads = 1;
            if (c->rev)
                event_del(c->rev);
            fwd_maybe_close(c);
            if (!c->closed)
                fwd_conn_close(c);
            continue;
        }
        if (c->paused) {
            c->paused = 0;
            if (c->reading && !c->no_more_reads && !w->stopping) {
                fwd_arm_read(c);
                event_active(c->rev, EV_READ, 0); /* bytes may have arrived meanwhile */
            }
        }
    }
    pthread_mutex_lock(&g->mu);
    g->resumed++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    gate_unref(g);
}

/* Worker: park if idle (every request handed to outputs is acked). */
void fwd_try_park(worker *w)
{
    fwd_worker *fw = w->proto;
    fwd_gate *g = fw->gate;
    if (!g || fw->pending > 0)
        return;
    pthread_mutex_lock(&g->mu);
    g->parked++;
    pthread_cond_broadcast(&g->cv);
    while (!g->released)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    resume(w, g);
}

static void quiesce_task(worker *w, void *arg)
{
    fwd_worker *fw = w->proto;
    fwd_gate *g = arg;
    pthread_mutex_lock(&g->mu);
    int released = g->released;
    pthread_mutex_unlock(&g->mu);
    if (released) { /* main gave up before this task ran */
        pthread_mutex_lock(&g->mu);
        g->resumed++;
        pthread_cond_broadcast(&g->cv);
        pthread_mutex_unlock(&g->mu);
        gate_unref(g);
        return;
    }
    fw->gate = g;
    for (fwd_conn *c = fw->conns; c; c = c->next)
        if (c->rev && !c->paused) {
            c->paused = 1;
            event_del(c->rev);
        }
    fwd_try_park(w);
}

/* Main gave up waiting: a worker still waiting for its tickets resumes now. */
static void unquiesce_task(worker *w, void *arg)
{
    fwd_worker *fw = w->proto;
    if (fw->gate == arg)
        resume(w, arg);
}

fwd_gate *fwd_quiesce(worker *workers, int n)
{
    fwd_gate *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->refs = n + 1;
    for (int i = 0; i < n; i++)
        worker_post(&workers[i], quiesce_task, g);
    return g;
}

int fwd_gate_wait_parked(fwd_gate *g, int n, double timeout)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)timeout;
    until.tv_nsec += (long)((timeout - (double)(time_t)timeout) * 1e9);
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g->mu);
    int rc = 0;
    while (g->parked < n && rc == 0)
        rc = pthread_cond_timedwait(&g->cv, &g->mu, &until);
    int ok = g->parked >= n;
    pthread_mutex_unlock(&g->mu);
    return ok ? 0 : -1;
}

void fwd_gate_release(fwd_gate *g, struct router *newrt, worker *workers, int n)
{
    pthread_mutex_lock(&g->mu);
    g->newrt = newrt;
    g->released = 1;
    int all = g->parked >= n;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    if (!all)
        for (int i = 0; i < n; i++)
            worker_post(&workers[i], unquiesce_task, g);
    /* wait until every worker reads again (the connections of dropped
     * sources are closed by then), then drop main's reference */
    pthread_mutex_lock(&g->mu);
    while (g->resumed < n)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    gate_unref(g);
}
