/*
 * aggregator/filters/prometheus.c: fluent-plugin-prometheus's `prometheus`
 * filter: each record updates the `<metric>`s (aggregator/prom_metrics.h)
 * and goes on unchanged; one whose value is not a number goes on and to
 * @ERROR too, as the plugin's emit_error_event does.
 */
#include <stddef.h>
#include <stdio.h>

#include "aggregator/filter.h"
#include "aggregator/prom_metrics.h"

typedef struct fprom_ctx {
    pmx *x;
    int64_t max_series_per_metric;
    double ignore_error_log_interval;
} fprom_ctx;

static const conf_spec fprom_spec[] = {
    {"metric", CONF_SECTION, NULL, 0, 0, NULL, "`<metric>` sections (below)"},
    {"labels", CONF_SECTION, NULL, 0, 0, NULL, "`<labels>`: labels of every metric (`key value`)"},
    {"max_series_per_metric", CONF_INT, "0", 0, offsetof(fprom_ctx, max_series_per_metric), NULL,
     "accepted; weir keeps every series"},
    {"ignore_error_log_interval", CONF_TIME, "3600s", 0, offsetof(fprom_ctx, ignore_error_log_interval), NULL,
     "accepted; no effect"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int fprom_init(filter *f, conf_node *n, conf_errors *errs)
{
    fprom_ctx *c = f->ctx;
    c->x = pmx_create(n, errs);
    return c->x ? 0 : -1;
}

static int fprom_filter(filter *f, filter_call *call, const uint8_t *rec, size_t len)
{
    fprom_ctx *c = f->ctx;
    if (pmx_record(c->x, call->tag, call->tag_len, rec, len, call->err, sizeof call->err))
        return FILTER_ERROR_KEEP;
    return FILTER_KEEP;
}

static void fprom_exit(filter *f)
{
    fprom_ctx *c = f->ctx;
    pmx_free(c->x);
}

FILTER_PLUGIN(prometheus, fprom);
