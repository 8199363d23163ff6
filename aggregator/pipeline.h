/*
 * aggregator/pipeline.h: everything a configuration builds (system settings,
 * sources, outputs, the route table), validated as a whole so that
 * --dry-run reports every error at once. Built and freed on the main thread;
 * read-only for workers while running.
 */
#ifndef WEIR_PIPELINE_H
#define WEIR_PIPELINE_H

#include "config/conf.h"
#include "aggregator/compat_params.h"
#include "aggregator/router.h"
#include "aggregator/source.h"

typedef struct sys_conf {
    int64_t workers;
    char *log_level;
    double shutdown_timeout;
    int suppress_config_dump;
    char *process_name;
    char *root_dir; /* Fluentd's: where file buffers without path live (aggregator/output.c) */
    uint64_t memory_budget; /* weir: lib/membudget.h; 0: the default (cgroup limit / 2, else 256m) */
    conf_slot compat[16]; /* Fluentd's <system> parameters weir accepts without acting on (no-op rows) */
} sys_conf;

/* <system><log>'s parameters (accepted, no effect: weir logs JSON lines to stderr) */
typedef struct sys_log_conf {
    conf_slot compat[8];
} sys_log_conf;
extern const conf_spec pipeline_system_log_spec[];

/* <system>'s parameters (bound into sys_conf) */
extern const conf_spec pipeline_system_spec[];

typedef struct pipeline {
    sys_conf sys;
    source **sources; /* every <source>, in configuration order (aggregator/source.h) */
    size_t nsources;
    output **outputs; /* every output the router created (started/stopped by main) */
    size_t noutputs;
    router *rt;
    struct dl_route *dl; /* per output: its dead_letter_label (aggregator/dead_letter.h) */
} pipeline;

/* Returns 0 and fills p, or -1 with errors in errs (p is cleaned up). */
int pipeline_load(pipeline *p, conf_node *root, conf_errors *errs);
void pipeline_free(pipeline *p);
/* Point the outputs' rejected records at this pipeline's @ERROR label, and
 * their dead letters at their dead_letter_label (after pipeline_load, before
 * records flow). */
void pipeline_bind_error_sinks(pipeline *p);
void pipeline_sys_free(sys_conf *s);
/* Set the process-wide memory budget from <system> memory_budget (logged). */
void pipeline_apply_budget(const sys_conf *s);
/* Start every source (observers last): 0, or -1 (logged). */
int pipeline_start_sources(pipeline *p, const source_env *env);

#endif
