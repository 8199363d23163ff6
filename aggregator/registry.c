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

/* sources: forward-protocol/fwd_source.c, aggregator/inputs/, aggregator/monitor.c */
extern const source_plugin in_forward_plugin, in_kafka_plugin, in_monitor_agent_plugin, in_prometheus_plugin;
static const source_plugin *const sources[] = {
    &in_forward_plugin, &in_kafka_plugin, &in_monitor_agent_plugin, &in_prometheus_plugin, NULL,
};

/* filters: aggregator/filters/ */
extern const filter_plugin filter_record_transformer_plugin, filter_grep_plugin, filter_parser_plugin,
    filter_kubernetes_plugin, filter_trace_plugin, filter_ecs_plugin;
static const filter_plugin *const filters[] = {
    &filter_record_transformer_plugin, &filter_grep_plugin,  &filter_parser_plugin,
    &filter_kubernetes_plugin,         &filter_trace_plugin, &filter_ecs_plugin,
    NULL,
};

/* <parse> types: aggregator/parsers/ */
extern const parser_plugin parser_json_plugin, parser_regexp_plugin, parser_cri_plugin, parser_logfmt_plugin,
    parser_none_plugin, parser_grok_plugin;
static const parser_plugin *const parsers[] = {
    &parser_json_plugin, &parser_regexp_plugin, &parser_cri_plugin, &parser_logfmt_plugin,
    &parser_none_plugin, &parser_grok_plugin,   NULL,
};

/* outputs: outputs/ */
extern const out_plugin out_file_plugin, out_stdout_plugin, out_null_plugin, out_kafka2_plugin, out_rdkafka2_plugin,
    out_loki_plugin, out_elasticsearch_plugin, out_opensearch_plugin;
static const out_plugin *const outputs[] = {
    &out_file_plugin,     &out_stdout_plugin, &out_null_plugin,          &out_kafka2_plugin,
    &out_rdkafka2_plugin, &out_loki_plugin,   &out_elasticsearch_plugin, &out_opensearch_plugin,
    NULL,
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]) - 1)
static const char *source_names[COUNT(sources) + 1], *filter_names[COUNT(filters) + 1],
    *parser_names[COUNT(parsers) + 1], *output_names[COUNT(outputs) + 1];

static pthread_once_t names_once = PTHREAD_ONCE_INIT;
static void names_init(void)
{
    for (size_t i = 0; i < COUNT(sources); i++)
        source_names[i] = sources[i]->name;
    for (size_t i = 0; i < COUNT(filters); i++)
        filter_names[i] = filters[i]->name;
    for (size_t i = 0; i < COUNT(parsers); i++)
        parser_names[i] = parsers[i]->name;
    for (size_t i = 0; i < COUNT(outputs); i++)
        output_names[i] = outputs[i]->name;
}

const source_plugin *const *source_plugins(void) { return sources; }

const source_plugin *source_plugin_find(const char *name)
{
    for (size_t i = 0; sources[i]; i++)
        if (!strcmp(sources[i]->name, name))
            return sources[i];
    return NULL;
}

const char *const *source_plugin_names(void)
{
    pthread_once(&names_once, names_init);
    return source_names;
}

const filter_plugin *const *filter_plugins(void) { return filters; }

const filter_plugin *filter_plugin_find(const char *name)
{
    for (size_t i = 0; filters[i]; i++)
        if (!strcmp(filters[i]->name, name))
            return filters[i];
    return NULL;
}

const char *const *filter_plugin_names(void)
{
    pthread_once(&names_once, names_init);
    return filter_names;
}

const parser_plugin *const *parser_plugins(void) { return parsers; }

const parser_plugin *parser_plugin_find(const char *name)
{
    for (size_t i = 0; parsers[i]; i++)
        if (!strcmp(parsers[i]->name, name))
            return parsers[i];
    return NULL;
}

const char *const *parser_plugin_names(void)
{
    pthread_once(&names_once, names_init);
    return parser_names;
}

const out_plugin *const *out_plugins(void) { return outputs; }

const out_plugin *out_plugin_find(const char *name)
{
    for (size_t i = 0; outputs[i]; i++)
        if (!strcmp(outputs[i]->name, name))
            return outputs[i];
    return NULL;
}

const char *const *out_plugin_names(void)
{
    pthread_once(&names_once, names_init);
    return output_names;
}
