/* aggregator/pipeline.c: build sources, outputs and routes from a config tree. */
#include "pipeline.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/array.h"
#include "lib/log.h"
#include "lib/membudget.h"
#include "buffer/buffer.h"
#include "aggregator/dead_letter.h"
#include "aggregator/source.h"

const conf_spec pipeline_system_spec[] = {
    {"workers", CONF_INT, "0", 0, offsetof(sys_conf, workers), NULL,
     "worker threads (event loops) that own client connections; `0`: the CPU count; at most 256. Unlike Fluentd's "
     "`workers` these are threads in one process, sharing outputs; a change takes effect at the next restart, not "
     "on reload"},
    {"log_level", CONF_STR, "info", 0, offsetof(sys_conf, log_level), NULL,
     "`trace`, `debug`, `info`, `warn`, `error` or `fatal`; `--log-level` on the command line overrides it; applied "
     "on reload"},
    {"shutdown_timeout", CONF_TIME, "10s", 0, offsetof(sys_conf, shutdown_timeout), NULL,
     "longest SIGTERM may take to finish acks and drain outputs; also how long a reload waits for the requests in "
     "flight"},
    {"suppress_config_dump", CONF_BOOL, "false", 0, offsetof(sys_conf, suppress_config_dump), NULL,
     "accepted for compatibility; no effect"},
    {"process_name", CONF_STR, NULL, 0, offsetof(sys_conf, process_name), NULL,
     "accepted for compatibility; no effect"},
    {"root_dir", CONF_STR, NULL, 0, offsetof(sys_conf, root_dir), NULL,
     "as in Fluentd: a file `<buffer>` without `path` in an output with `@id` keeps its chunks in "
     "`ROOT_DIR/worker0/ID/buffer`"},
    {"memory_budget", CONF_SIZE, NULL, 0, offsetof(sys_conf, memory_budget), NULL,
     "weir: the memory the process may hold for what its senders send (request bytes, inflate windows, batches "
     "until stored); at the budget weir stops reading (connections stay open, acks wait) and resumes as memory is "
     "released. Default: half of the cgroup's memory limit (`memory.max`, v1 `memory.limit_in_bytes`) when one is "
     "set, else 256m. Applied on reload. See docs/architecture.md, \"Memory budget\""},
    {"rpc_endpoint", CONF_STR, NULL, 0, COMPAT_SLOT(sys_conf, 0), NULL,
     COMPAT_NOOP "weir has no RPC endpoint; reload with SIGHUP, stop with SIGTERM"},
    {"enable_get_dump", CONF_BOOL, "false", 0, COMPAT_SLOT(sys_conf, 1), NULL,
     COMPAT_NOOP "goes with `rpc_endpoint`"},
    {"log_event_verbose", CONF_BOOL, "false", 0, COMPAT_SLOT(sys_conf, 2), NULL,
     COMPAT_NOOP "weir's own logs are never events"},
    {"ignore_repeated_log_interval", CONF_TIME, NULL, 0, COMPAT_SLOT(sys_conf, 3), NULL,
     COMPAT_NOOP "weir does not suppress repeated log lines (filter them where the logs are read)"},
    {"ignore_same_log_interval", CONF_TIME, NULL, 0, COMPAT_SLOT(sys_conf, 4), NULL,
     COMPAT_NOOP "weir does not suppress repeated log lines (filter them where the logs are read)"},
    {"emit_error_log_interval", CONF_TIME, NULL, 0, COMPAT_SLOT(sys_conf, 5), NULL,
     COMPAT_NOOP "weir does not suppress repeated log lines (filter them where the logs are read)"},
    {"enable_input_metrics", CONF_BOOL, "false", 0, COMPAT_SLOT(sys_conf, 6), NULL,
     COMPAT_NOOP "weir's input metrics are always on (the monitor endpoint's `/metrics`)"},
    {"enable_size_metrics", CONF_BOOL, "false", 0, COMPAT_SLOT(sys_conf, 7), NULL,
     COMPAT_NOOP "weir's size metrics are always on (the monitor endpoint's `/metrics`)"},
    {"enable_msgpack_time_support", CONF_BOOL, "false", 0, COMPAT_SLOT(sys_conf, 8), NULL,
     COMPAT_NOOP "weir reads EventTime everywhere"},
    {"file_permission", CONF_STR, NULL, 0, COMPAT_SLOT(sys_conf, 9), NULL,
     COMPAT_NOOP "set `file_permission` in each file `<buffer>`"},
    {"dir_permission", CONF_STR, NULL, 0, COMPAT_SLOT(sys_conf, 10), NULL,
     COMPAT_NOOP "set `dir_permission` in each file `<buffer>`"},
    {"umask", CONF_STR, NULL, 0, COMPAT_SLOT(sys_conf, 11), NULL,
     COMPAT_NOOP "weir keeps the umask it was started with (systemd `UMask=`)"},
    {"strict_config_value", CONF_BOOL, "false", 0, COMPAT_SLOT(sys_conf, 12), NULL,
     COMPAT_NOOP "weir always checks values strictly"},
    {"disable_shared_socket", CONF_BOOL, "false", 0, COMPAT_SLOT(sys_conf, 13), NULL,
     COMPAT_NOOP "weir is one process: its sockets are not shared with workers"},
    {"without_source", CONF_BOOL, "false", 0, COMPAT_SLOT(sys_conf, 14), NULL,
     COMPAT_REFUSED "weir always starts its sources"},
    {"log", CONF_SECTION, NULL, 0, 0, NULL,
     "`<log>`: Fluentd's own log format and rotation; accepted, no effect (below)"},
    {"metrics", CONF_SECTION, NULL, 0, 0, NULL,
     "`<metrics>` (`@type local`, `cmetrics`): accepted with one warning, no effect: weir's metrics are its own "
     "(the monitor endpoint's `/metrics`)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const conf_spec pipeline_system_log_spec[] = {
    {"format", CONF_ENUM, "text", 0, COMPAT_SLOT(sys_log_conf, 0), "text|json",
     COMPAT_NOOP "weir's log lines are always JSON objects on stderr"},
    {"time_format", CONF_STR, NULL, 0, COMPAT_SLOT(sys_log_conf, 1), NULL,
     COMPAT_NOOP "weir's log times are ISO 8601 UTC"},
    {"rotate_age", CONF_STR, NULL, 0, COMPAT_SLOT(sys_log_conf, 2), NULL,
     COMPAT_NOOP "weir logs to stderr (journald or the container runtime rotates)"},
    {"rotate_size", CONF_SIZE, NULL, 0, COMPAT_SLOT(sys_log_conf, 3), NULL,
     COMPAT_NOOP "weir logs to stderr (journald or the container runtime rotates)"},
    {"forced_stacktrace_level", CONF_STR, NULL, 0, COMPAT_SLOT(sys_log_conf, 4), NULL,
     COMPAT_NOOP "weir logs no Ruby stack traces"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* <system>'s <log> and <metrics>: checked, accepted, no effect. */
static void system_subsections(conf_node *n, conf_errors *errs)
{
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *c = n->children[i];
        if (!strcmp(c->name, "log")) {
            sys_log_conf lc;
            memset(&lc, 0, sizeof lc);
            if (conf_bind(c, pipeline_system_log_spec, &lc, errs) == 0)
                compat_check(c, pipeline_system_log_spec, "config", "system", errs);
            conf_unbind(pipeline_system_log_spec, &lc);
        } else if (!strcmp(c->name, "metrics")) {
            conf_get(c, "@type");
            for (size_t j = 0; j < c->nparams; j++)
                conf_get(c, c->params[j].key); /* the metrics plugin's own parameters */
            wlog_warn("config", "%s:%d: system: <metrics> has no effect in weir: weir's metrics are its own (the "
                      "monitor endpoint's /metrics)", c->file ? c->file : "?", c->line);
        }
    }
}

static const char *const directives[] = {"system", "source", "match", "filter", "label", "worker", NULL};

static int error_sink(void *arg, const batch *b, const char *reason) { return router_emit_error(arg, b, reason); }

int pipeline_load(pipeline *p, conf_node *root, conf_errors *errs)
{
    memset(p, 0, sizeof *p);
    size_t before = errs->n;
    int nsystem = 0;

    for (size_t i = 0; i < root->nparams; i++) {
        conf_param *pr = &root->params[i];
        if (pr->bare) /* Fluentd: a parameter of the root, not used (a warning) */
            conf_warn(root, pr->file, pr->line,
                      "parameter '%s' outside of any directive is not used (a word alone on its line: a comment "
                      "without '#'?)", pr->key);
        else
            conf_errors_add(errs, pr->file, pr->line, "parameter '%s' outside of any directive", pr->key);
    }
    /* <system> first, whatever its position, so workers/log_level apply to all */
    for (size_t i = 0; i < root->nchildren; i++) {
        conf_node *n = root->children[i];
        if (strcmp(n->name, "system") != 0)
            continue;
        if (nsystem++) {
            conf_errors_add(errs, n->file, n->line, "more than one <system> directive");
            continue;
        }
        if (conf_bind(n, pipeline_system_spec, &p->sys, errs) == 0)
            compat_check(n, pipeline_system_spec, "config", "system", errs);
        system_subsections(n, errs);
        if (p->sys.log_level && wlog_level_from_name(p->sys.log_level) < 0) {
            conf_param *pr = conf_get(n, "log_level");
            conf_errors_add(errs, pr->file, pr->line,
                            "invalid value '%s' for parameter 'log_level'; expected one of: trace, debug, info, "
                            "warn, error, fatal",
                            p->sys.log_level);
        }
        if (p->sys.workers < 0 || p->sys.workers > 256) {
            conf_param *pr = conf_get(n, "workers");
            conf_errors_add(errs, pr->file, pr->line, "workers must be between 1 and 256");
        }
    }
    if (!nsystem) {
        conf_node empty = {.name = "system", .file = root->file, .line = 0};
        conf_bind(&empty, pipeline_system_spec, &p->sys, errs);
    }
    if (p->sys.workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        p->sys.workers = n > 0 ? n : 1;
    }

    /* routing first: sources refer to labels */
    p->rt = router_build(root, &p->outputs, &p->noutputs, errs);
    int nsrc = 0;
    for (size_t i = 0; i < root->nchildren; i++) {
        conf_node *n = root->children[i];
        if (!strcmp(n->name, "system") || !strcmp(n->name, "match") || !strcmp(n->name, "filter") ||
            !strcmp(n->name, "label")) {
            continue;
        } else if (!strcmp(n->name, "source")) {
            conf_param *type = conf_get(n, "@type");
            if (!type) {
                conf_errors_add(errs, n->file, n->line, "missing @type in <source>");
                continue;
            }
            const source_plugin *sp = source_plugin_find(type->value);
            if (!sp) {
                conf_error_unknown(errs, type->file, type->line, "input plugin", type->value, NULL,
                                   source_plugin_names());
                continue;
            }
            conf_get(n, "@id");
            conf_get(n, "@log_level");
            conf_param *lp = conf_get(n, "@label");
            source *src = sp->create(n, nsrc++, errs);
            if (!src)
                continue;
            ARRAY_APPEND(p->sources, p->nsources, src);
            src->rt = p->rt;
            if (p->rt && !sp->observer)
                src->label = router_label(p->rt, lp ? lp->value : NULL, lp ? lp->file : n->file,
                                          lp ? lp->line : n->line, errs);
        } else if (!strcmp(n->name, "worker")) {
            continue; /* a <worker> left in the tree is one config/conf_compat.c refused (valid ones are spliced in) */
        } else {
            conf_error_unknown(errs, n->file, n->line, "directive", n->name, NULL, directives);
        }
    }
    /* dead_letter_label: the label must exist */
    if (p->rt && p->noutputs && (p->dl = calloc(p->noutputs, sizeof *p->dl)))
        for (size_t i = 0; i < p->noutputs; i++)
            dl_route_init(&p->dl[i], p->rt, p->outputs[i]->buf, errs);
    /* two buffers in one directory would recover each other's chunks */
    for (size_t i = 0; i < p->noutputs; i++)
        for (size_t k = 0; k < i; k++) {
            buffer *a = p->outputs[i]->buf, *b2 = p->outputs[k]->buf;
            if (a && b2 && a->c.path && b2->c.path && !strcmp(a->c.path, b2->c.path))
                conf_errors_add(errs, root->file, 0, "buffer path %s is used by both %s and %s", a->c.path,
                                p->outputs[k]->id, p->outputs[i]->id);
        }
    if (errs->n > before) {
        pipeline_free(p);
        return -1;
    }
    return 0;
}

/* Records an output rejects one by one go to this pipeline's @ERROR label.
 * Separate from pipeline_load so a reload switches them only once the new
 * outputs run (under buffer_sink_lock). */
void pipeline_bind_error_sinks(pipeline *p)
{
    for (size_t i = 0; i < p->noutputs; i++)
        if (p->outputs[i]->buf) {
            p->outputs[i]->buf->error_sink = error_sink;
            p->outputs[i]->buf->error_sink_arg = p->rt;
            int dl = p->dl && p->dl[i].rt;
            p->outputs[i]->buf->dead_sink = dl ? dl_route_sink : NULL;
            p->outputs[i]->buf->dead_sink_arg = dl ? &p->dl[i] : NULL;
        }
}

void pipeline_sys_free(sys_conf *s) { conf_unbind(pipeline_system_spec, s); }

void pipeline_free(pipeline *p)
{
    /* observers (the monitor thread) read sources, outputs and buffers:
     * they go first */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < p->nsources; i++)
            if (p->sources[i] && (p->sources[i]->plugin->observer != 0) == (pass == 0)) {
                p->sources[i]->plugin->free(p->sources[i]);
                p->sources[i] = NULL;
            }
    free(p->sources);
    for (size_t i = 0; i < p->noutputs; i++)
        output_destroy(p->outputs[i]);
    free(p->outputs);
    for (size_t i = 0; p->dl && i < p->noutputs; i++)
        dl_route_free(&p->dl[i]);
    free(p->dl);
    p->dl = NULL;
    router_free(p->rt);
    conf_unbind(pipeline_system_spec, &p->sys);
    memset(p, 0, sizeof *p);
}

int pipeline_start_sources(pipeline *p, const source_env *env)
{
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < p->nsources; i++) {
            source *s = p->sources[i];
            if ((s->plugin->observer != 0) == (pass == 1) && s->plugin->start(s, env) != 0) {
                wlog_error("main", "cannot start source %s", s->id);
                return -1;
            }
        }
    return 0;
}

void pipeline_apply_budget(const sys_conf *s)
{
    const char *from = "<system> memory_budget";
    uint64_t v = s->memory_budget ? s->memory_budget : mb_default(&from);
    if (v != mb_limit())
        wlog_info("system", "memory budget %llu bytes (%s)", (unsigned long long)v, from);
    mb_set_limit(v);
}
