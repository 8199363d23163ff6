/*
 * aggregator/prom_metrics.h: fluent-plugin-prometheus's metrics from
 * records: the `<metric>` sections of the `prometheus` filter
 * (aggregator/filters/prometheus.c) and output (outputs/prometheus.c), kept
 * in one process-wide registry that the monitor endpoint serves on /metrics
 * after weir's own families.
 *
 * A family is registered by name once (a second `<metric>` of the same name,
 * type and labels shares it, as in the plugin; another type or other labels
 * is a configuration error, also across a reload: families live as long as
 * the process). Series are keyed by their label values; updates take the
 * family's mutex (filters run on every worker at once).
 *
 * Per record, as the plugin: counter += 1 (no `key`) or += record[key];
 * gauge = record[key]; summary and histogram observe record[key]. A missing
 * or nil value changes nothing; a value that is not a number is an error
 * (the record goes on, and to @ERROR). Label values: `$.a.b` / `$["a"]`
 * record accessors (the value's text), else text with placeholders
 * `${tag}`, `${tag_parts[N]}`, `${tag_prefix[N]}`, `${tag_suffix[N]}`,
 * `${hostname}`, `${worker_id}`, `${KEY}` (a top-level record key),
 * `${KEY[N]}`, `${KEY["k"]}`; an unknown placeholder stays as written.
 */
#ifndef WEIR_PROM_METRICS_H
#define WEIR_PROM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "config/conf.h"

struct evbuffer;
typedef struct pmx pmx;

/* The <metric> and <labels> sections of a prometheus filter or output
 * section `n`. NULL with errors added. */
pmx *pmx_create(conf_node *n, conf_errors *errs);
void pmx_free(pmx *x);
/* Instrument one record. 0, or -1 with err (a value that is not a number). */
int pmx_record(const pmx *x, const char *tag, size_t tag_len, const uint8_t *rec, size_t len, char *err,
               size_t errlen);

/* Every registered family, in the Prometheus text format (monitor thread). */
void pmx_registry_write(struct evbuffer *o);

/* The spec of <metric> (weir --list-params) and of the plugins' own rows. */
extern const conf_spec pmx_metric_spec[];

#endif
