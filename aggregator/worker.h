/*
 * aggregator/worker.h: worker threads, one libevent loop each (libuv's rule:
 * one loop per thread, the only cross-thread call is a wake-up).
 *
 * A worker owns the connections handed to it and everything hanging off
 * them. Other threads talk to a worker in exactly two ways, both through one
 * eventfd per worker:
 *   - worker_post(): run a function on the worker (new connection, stop);
 *   - worker_done(): hand back a completed item (an output finished a
 *     request's batch) pushed on a lock-free stack.
 * So no mutex is held on the record path except the output queue's.
 */
#ifndef WEIR_WORKER_H
#define WEIR_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct event_base;
struct event;
struct router;

typedef struct worker worker;

typedef struct wk_done {
    struct wk_done *next;
    void (*cb)(worker *w, struct wk_done *d); /* runs on the worker thread */
} wk_done;

typedef struct wk_task {
    struct wk_task *next;
    void (*fn)(worker *w, void *arg);
    void *arg;
} wk_task;

/* Per-worker counters, read by the metrics endpoint (relaxed atomics). */
typedef struct worker_stats {
    atomic_uint_fast64_t records, bytes, requests, connections, connections_open;
    atomic_uint_fast64_t invalid_events, decode_errors, oversize, markers, signals_skipped, acks;
    atomic_uint_fast64_t retimed; /* invalid event times replaced by the time of receipt */
    /* limit hits (security): records over max_nesting_depth / max_string_length,
     * requests over decompressed_size_limit */
    atomic_uint_fast64_t too_deep, too_long, over_decompressed;
} worker_stats;

struct worker {
    int id;
    struct event_base *base;
    pthread_t thread;
    int evfd;
    struct event *wake_ev;
    pthread_mutex_t mu;
    wk_task *tasks, *tasks_tail;    /* under mu */
    _Atomic(wk_done *) done;        /* lock-free stack */
    int stopping;                   /* worker thread only */
    struct router *rt;
    void *proto;                    /* per-worker state of the forward protocol (fwd_worker) */
    worker_stats stats;
};

int worker_init(worker *w, int id, struct router *rt);
int worker_start(worker *w);
void worker_post(worker *w, void (*fn)(worker *, void *), void *arg); /* any thread */
void worker_done(worker *w, wk_done *d);                             /* any thread */
void worker_join(worker *w);
void worker_free(worker *w);

#endif
