/*
 * outputs/prometheus.c: fluent-plugin-prometheus's `prometheus` output: the
 * records update the `<metric>`s (aggregator/prom_metrics.h) and go nowhere
 * else. A value that is not a number is logged (rate-limited) and skipped.
 */
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "lib/log.h"
#include "aggregator/output.h"
#include "aggregator/prom_metrics.h"

typedef struct out_prom {
    pmx *x;
    int64_t max_series_per_metric;
    double ignore_error_log_interval;
    time_t last_warn;
} out_prom;

static const conf_spec oprom_spec[] = {
    {"metric", CONF_SECTION, NULL, 0, 0, NULL, "`<metric>` sections (as the filter's)"},
    {"labels", CONF_SECTION, NULL, 0, 0, NULL, "`<labels>`: labels of every metric (`key value`)"},
    {"max_series_per_metric", CONF_INT, "0", 0, offsetof(out_prom, max_series_per_metric), NULL,
     "accepted; weir keeps every series"},
    {"ignore_error_log_interval", CONF_TIME, "3600s", 0, offsetof(out_prom, ignore_error_log_interval), NULL,
     "accepted; no effect"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int oprom_init(output *o, conf_node *n, conf_errors *errs)
{
    out_prom *c = o->ctx;
    c->x = pmx_create(n, errs);
    return c->x ? 0 : -1;
}

static int oprom_write(output *o, const batch *b, out_result *res)
{
    out_prom *c = o->ctx;
    batch_iter it;
    entry e;
    char err[256];
    batch_iter_init(&it, b);
    while (batch_iter_next(&it, &e) == 1) {
        if (pmx_record(c->x, e.tag, e.tag_len, e.record, e.record_len, err, sizeof err)) {
            time_t now = time(NULL);
            if (now - c->last_warn >= 60) {
                c->last_warn = now;
                wlog_warn("out_prometheus", "%s: %s (tag %s)", o->id, err, e.tag);
            }
        }
    }
    return OUT_OK;
}

static void oprom_exit(output *o)
{
    out_prom *c = o->ctx;
    pmx_free(c->x);
}

OUT_PLUGIN(prometheus, oprom, out_prom);
