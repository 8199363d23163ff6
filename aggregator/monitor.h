/*
 * aggregator/monitor.h: HTTP endpoint (metrics, health, readiness, tap), on
 * a thread of its own ("monitor"); see monitor.c for the paths. It reads the
 * running pipeline under monitor_lock(), which a reload takes to swap it.
 */
#ifndef WEIR_MONITOR_H
#define WEIR_MONITOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config/conf.h"
#include "aggregator/pipeline.h"
#include "aggregator/source.h"
#include "aggregator/worker.h"

struct event_base;
struct evhttp;

typedef struct monitor {
    source base; /* a source plugin: monitor_agent or prometheus */
    /* parameters */
    char *bind;
    int64_t port;
    char *metrics_path, *aggregated_metrics_path, *content_encoding;
    char *tag;
    char *label_name; /* @label, for the records of `tag` */
    int tap;
    char *tap_token;
    struct event *emit_timer;
    double emit_interval;
    int include_config, include_retry;
    int64_t hc_errors_count, hc_retry_failure_count;
    double hc_period;
    /* runtime */
    struct evhttp *http;
    struct event_base *evbase; /* its own loop and thread: it answers during shutdown too */
    pthread_t thread;
    int running;
    pipeline *pl;
    worker *workers;
    int nworkers;
    double start_time;
    int hc_slots;
    uint64_t *hc_ring; /* per second: [write errors, retry failures, sampled at] */
    struct event *hc_timer;
    struct tap_sess *taps; /* open /api/tap streams (monitor thread) */
} monitor;

/* The process's state for /readyz: ready once every output started (buffers
 * recovered) and every source listens; draining from SIGTERM on. */
void monitor_set_ready(void);
void monitor_set_draining(void);
/* Held by the monitor thread while it reads the pipeline, and by a reload
 * while it swaps the pipeline's lists. */
void monitor_lock(void);
void monitor_unlock(void);

#endif
