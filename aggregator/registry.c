/*
 * aggregator/registry.c: the one place plugins are named. Adding a plugin is
 * one line here (and its extern): the engine finds sources, filters,
 * <parse> types and outputs through these lists and nothing else, and the
 * did-you-mean lists are made from them.
 */
#include "aggregator/filter.h"
#include "aggregator/output.h"
#include "aggregator/parse_impl.h"
#include "aggregator/source.h"

#include <pthread.h>
#include <string.h>

/* sources: forward-protocol/fwd_source.c, aggregator/inputs/, aggregator/monitor.c (the prometheus monitors:
 * aggregator/inputs/prometheus_monitor.c) */
extern const source_plugin in_forward_plugin, in_kafka_plugin, in_monitor_agent_plugin, in_prometheus_plugin,
    in_kafka_group_plugin, in_rdkafka_group_plugin, in_http_plugin, in_syslog_plugin, in_udp_plugin,
    in_prometheus_monitor_plugin, in_prometheus_output_monitor_plugin;
static const source_plugin *const sources[] = {
    &in_forward_plugin,
    &in_kafka_plugin,
    &in_monitor_agent_plugin,
    &in_prometheus_plugin,
    &in_kafka_group_plugin,
    &in_rdkafka_group_plugin,
    &in_http_plugin,
    &in_syslog_plugin,
    &in_udp_plugin,
    &in_prometheus_monitor_plugin,
    &in_prometheus_output_monitor_plugin,
    NULL,
};

/* filters: aggregator/filters/ (record_modifier.c shares record_transformer.c's templates); stdout: outputs/stdout.c, beside
 * out_stdout's formatter */
extern const filter_plugin filter_record_transformer_plugin, filter_grep_plugin, filter_parser_plugin,
    filter_kubernetes_plugin, filter_trace_plugin, filter_ecs_plugin, filter_record_modifier_plugin,
    filter_stdout_plugin, filter_prometheus_plugin, filter_debezium_plugin, filter_aggregate_plugin;
static const filter_plugin *const filters[] = {
    &filter_record_transformer_plugin, &filter_grep_plugin,   &filter_parser_plugin,
    &filter_kubernetes_plugin,         &filter_trace_plugin,  &filter_ecs_plugin,
    &filter_record_modifier_plugin,    &filter_stdout_plugin, &filter_prometheus_plugin,
    &filter_debezium_plugin,           &filter_aggregate_plugin,
    NULL,
};

/* <parse> types: aggregator/parsers/ */
extern const parser_plugin parser_json_plugin, parser_regexp_plugin, parser_cri_plugin, parser_logfmt_plugin,
    parser_none_plugin, parser_grok_plugin, parser_nginx_plugin, parser_apache_error_plugin, parser_tsv_plugin, parser_ltsv_plugin, parser_csv_plugin,
    parser_apache_plugin, parser_apache2_plugin, parser_syslog_plugin, parser_multiline_plugin,
    parser_msgpack_plugin;
static const parser_plugin *const parsers[] = {
    &parser_json_plugin, &parser_regexp_plugin, &parser_cri_plugin,  &parser_logfmt_plugin, &parser_none_plugin,
    &parser_grok_plugin, &parser_ltsv_plugin,   &parser_csv_plugin,  &parser_nginx_plugin, &parser_apache_error_plugin, &parser_tsv_plugin,
    &parser_apache_plugin, &parser_apache2_plugin, &parser_syslog_plugin, &parser_multiline_plugin,
    &parser_msgpack_plugin, NULL,
};

/* outputs: outputs/ */
extern const out_plugin out_file_plugin, out_stdout_plugin, out_null_plugin, out_kafka2_plugin, out_rdkafka2_plugin,
    out_loki_plugin, out_elasticsearch_plugin, out_opensearch_plugin, out_kafka_buffered_plugin, out_rdkafka_plugin,
    out_forward_plugin, out_prometheus_plugin;
static const out_plugin *const outputs[] = {
    &out_file_plugin,     &out_stdout_plugin, &out_null_plugin,          &out_kafka2_plugin,
    &out_rdkafka2_plugin, &out_loki_plugin,   &out_elasticsearch_plugin, &out_opensearch_plugin,
    &out_kafka_buffered_plugin, &out_rdkafka_plugin, &out_forward_plugin,  &out_prometheus_plugin,
    NULL,
};

/* For each list: <type>s(), the NULL-terminated list itself; <type>_find(name),
 * the plugin of that name or NULL; and <type>_names(), the NULL-terminated
 * list of the names (for did-you-mean and messages), made once. */
#define PLUGIN_LIST(type, list)                                                                                        \
    const type *const *type##s(void) { return list; }                                                                  \
    const type *type##_find(const char *name)                                                                          \
    {                                                                                                                  \
        for (size_t i = 0; list[i]; i++)                                                                               \
            if (!strcmp(list[i]->name, name))                                                                          \
                return list[i];                                                                                        \
        return NULL;                                                                                                   \
    }                                                                                                                  \
    static const char *list##_names[sizeof(list) / sizeof(list[0])];                                                   \
    static pthread_once_t list##_once = PTHREAD_ONCE_INIT;                                                             \
    static void list##_names_init(void)                                                                                \
    {                                                                                                                  \
        for (size_t i = 0; list[i]; i++)                                                                               \
            list##_names[i] = list[i]->name;                                                                           \
    }                                                                                                                  \
    const char *const *type##_names(void)                                                                              \
    {                                                                                                                  \
        pthread_once(&list##_once, list##_names_init);                                                                 \
        return list##_names;                                                                                           \
    }

PLUGIN_LIST(source_plugin, sources)
PLUGIN_LIST(filter_plugin, filters)
PLUGIN_LIST(parser_plugin, parsers)
PLUGIN_LIST(out_plugin, outputs)
