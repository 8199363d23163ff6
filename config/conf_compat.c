/*
 * config/conf_compat.c: Fluentd v1's compatibility layer, applied to every
 * parsed tree before anything binds it (conf_compat_apply, conf.h).
 *
 * Fluentd 1.x still runs v0.12 configurations: Config::Element#[] answers a
 * read of `@type`, `@id`, `@log_level` with `type`, `id`, `log_level` (with
 * the warning "'type' is deprecated parameter name. use '@type' instead."),
 * and the plugin helper compat_parameters (plugin_helper/compat_parameters.rb)
 * builds a <buffer>, <inject>, <extract>, <parse> or <format> section from
 * the v0.12 parameters written on a plugin's own section, for the plugins
 * that call it and in the order they list (the `plugins` table below, from
 * each plugin's configure). The tables here are that file's, row for row; a
 * section the user wrote stops its conversion (Fluentd then leaves the v0.12
 * parameters unused: weir warns that they are ignored, and removes them).
 *
 * Fluentd converts silently (its source says "TODO: warn"); weir warns once
 * per parameter, naming the v1 form, in Fluentd's wording: "'max_retry_wait'
 * is deprecated parameter. use 'retry_max_interval' in <buffer> instead." The v0.12 parameters are removed from the plugin's section once
 * converted (weir's binding refuses parameters a plugin does not have;
 * Fluentd's leaves them in the hash, read).
 */
#include "config/conf_int.h"

#include <stdarg.h>

/* ---- the tables (compat_parameters.rb) --------------------------------------- */

typedef struct cmap {
    const char *old, *cur; /* cur NULL: handled by the conversion's own code */
} cmap;

static const cmap buffer_params[] = {
    {"buffer_type", "@type"},
    {"buffer_path", "path"},
    {"num_threads", "flush_thread_count"},
    {"flush_interval", "flush_interval"},
    {"try_flush_interval", "flush_thread_interval"},
    {"queued_chunk_flush_interval", "flush_thread_burst_interval"},
    {"disable_retry_limit", "retry_forever"},
    {"retry_limit", "retry_max_times"},
    {"max_retry_wait", "retry_max_interval"},
    {"buffer_chunk_limit", "chunk_limit_size"},
    {"buffer_queue_limit", "queue_limit_length"},
    {"buffer_queue_full_action", "overflow_action"},
    {"flush_at_shutdown", "flush_at_shutdown"},
    /* BUFFER_TIME_SLICED_PARAMS */
    {"time_slice_format", NULL},
    {"time_slice_wait", "timekey_wait"},
    {"timezone", "timekey_zone"},
    {NULL, NULL},
};

static const cmap parser_params[] = {
    {"format", NULL},
    {"types", NULL},
    {"types_delimiter", NULL},
    {"types_label_delimiter", NULL},
    {"keys", "keys"},
    {"time_key", "time_key"},
    {"time_format", "time_format"},
    {"localtime", NULL},
    {"utc", NULL},
    {"delimiter", "delimiter"},
    {"keep_time_key", "keep_time_key"},
    {"null_empty_string", "null_empty_string"},
    {"null_value_pattern", "null_value_pattern"},
    {"json_parser", "json_parser"},
    {"label_delimiter", "label_delimiter"},
    {"format_firstline", "format_firstline"},
    {"message_key", "message_key"},
    {"with_priority", "with_priority"},
    {"message_format", "message_format"},
    {"rfc5424_time_format", "rfc5424_time_format"},
    {NULL, NULL},
};

static const cmap inject_params[] = {
    {"include_time_key", NULL},
    {"time_key", "time_key"},
    {"time_format", "time_format"},
    {"timezone", "timezone"},
    {"include_tag_key", NULL},
    {"tag_key", "tag_key"},
    {"localtime", NULL},
    {"utc", NULL},
    {NULL, NULL},
};

static const cmap extract_params[] = {
    {"time_key", "time_key"},
    {"time_format", "time_format"},
    {"timezone", "timezone"},
    {"tag_key", "tag_key"},
    {"localtime", NULL},
    {"utc", NULL},
    {NULL, NULL},
};

static const cmap formatter_params[] = {
    {"format", "@type"},
    {"delimiter", "delimiter"},
    {"force_quotes", "force_quotes"},
    {"keys", "keys"},
    {"fields", "fields"},
    {"json_parser", "json_parser"},
    {"label_delimiter", "label_delimiter"},
    {"output_time", "output_time"},
    {"output_tag", "output_tag"},
    {"localtime", "localtime"},
    {"utc", "utc"},
    {"timezone", "timezone"},
    {"message_key", "message_key"},
    {"add_newline", "add_newline"},
    {"output_type", "output_type"},
    {NULL, NULL},
};

/* Which plugins call compat_parameters_convert, with which types in which
 * order (b buffer, i inject, e extract, p parser, f formatter) and which
 * default_chunk_key: Fluentd 1.16's own plugins and the output plugins of
 * fluent-plugin-elasticsearch, -opensearch and -grafana-loki (which convert
 * :buffer). fluent-plugin-kafka's kafka2/rdkafka2 convert nothing. Plugins
 * weir does not have are listed too: their section is refused later by name,
 * converted as Fluentd would. */
static const struct cplugin {
    const char *kind; /* "source", "filter", "match" (also <store>, <secondary>) */
    const char *type;
    const char *convert;
    const char *chunk_key;
} plugins[] = {
    {"match", "file", "fbi", "time"},
    {"match", "exec", "ifb", "time"},
    {"match", "stdout", "if", ""},
    {"match", "forward", "b", "tag"},
    {"match", "exec_filter", "b", ""},
    {"match", "tcp", "b", ""},
    {"match", "unix", "b", ""},
    {"match", "elasticsearch", "b", ""},
    {"match", "elasticsearch_data_stream", "b", ""},
    {"match", "opensearch", "b", ""},
    {"match", "opensearch_data_stream", "b", ""},
    {"match", "loki", "b", ""},
    {"filter", "parser", "p", ""},
    {"filter", "stdout", "if", ""},
    {"source", "tail", "p", ""},
    {"source", "http", "p", ""},
    {"source", "syslog", "p", ""},
    {"source", "tcp", "p", ""},
    {"source", "udp", "p", ""},
    {"source", "exec", "ep", ""},
    {NULL, NULL, NULL, NULL},
};

/* v1 forms, for the did-you-mean of a v0.12 name where nothing converts it
 * (conf_compat_v1_form): the first table a name appears in decides. */
const char *conf_compat_v1_form(const char *name)
{
    static const struct {
        const char *old, *v1;
    } extra[] = {
        {"type", "'@type'"},
        {"id", "'@id'"},
        {"log_level", "'@log_level'"},
        {"buffer_type", "'@type' in <buffer>"},
        {"time_slice_format", "'timekey' in <buffer time>"},
        {"format", "'@type' in <parse> or <format>"},
        {"types", "'types' in <parse>"},
        {"types_delimiter", "'types' in <parse>"},
        {"types_label_delimiter", "'types' in <parse>"},
        {"localtime", "'localtime' in <parse>, <inject> or <format>"},
        {"utc", "'localtime false' in <parse>, <inject>; 'utc' in <format>"},
        {"include_time_key", "'time_key' in <inject>"},
        {"include_tag_key", "'tag_key' in <inject>"},
        {"time_as_epoch", "'time_type unixtime' in <inject>"},
        /* not in compat_parameters.rb, but v0.12 buffered outputs' */
        {"retry_wait", "'retry_wait' in <buffer>"},
        {"buffer_queue_full_action", "'overflow_action' in <buffer>"},
        {NULL, NULL},
    };
    static char buf[128];
    static const struct {
        const cmap *t;
        const char *sec;
    } tables[] = {{buffer_params, "buffer"},   {inject_params, "inject"},       {parser_params, "parse"},
                  {extract_params, "extract"}, {formatter_params, "format"}};

    if (!name)
        return NULL;
    for (size_t i = 0; extra[i].old; i++)
        if (!strcmp(extra[i].old, name))
            return extra[i].v1;
    for (size_t t = 0; t < sizeof tables / sizeof *tables; t++)
        for (const cmap *m = tables[t].t; m->old; m++)
            if (m->cur && !strcmp(m->old, name)) {
                snprintf(buf, sizeof buf, "'%s' in <%s>", m->cur, tables[t].sec);
                return buf;
            }
    return NULL;
}

int conf_is_plugin_section(const conf_node *n)
{
    static const char *const names[] = {"source", "filter", "match", "store", "secondary", NULL};
    if (!n || !n->parent)
        return 0;
    for (size_t i = 0; names[i]; i++)
        if (!strcmp(n->name, names[i]))
            return 1;
    return 0;
}

/* ---- one plugin section ------------------------------------------------------- */

/* What happened to one v0.12 parameter: where it went, for its warning. */
typedef struct seen {
    const char *key;
    sbuf to;     /* "'retry_max_interval' in <buffer>, ..." */
    int ignored; /* present, but its section was written: unused, as in Fluentd */
    const char *ignored_sec, *ignored_as;
} seen;

typedef struct conv {
    conf_node *n;
    conf_errors *errs;
    seen v[64];
    size_t nv;
} conv;

static conf_param *param(const conf_node *n, const char *key)
{
    for (size_t i = 0; i < n->nparams; i++)
        if (!strcmp(n->params[i].key, key))
            return &n->params[i];
    return NULL;
}

static seen *seen_of(conv *c, const char *key)
{
    for (size_t i = 0; i < c->nv; i++)
        if (!strcmp(c->v[i].key, key))
            return &c->v[i];
    if (c->nv == sizeof c->v / sizeof *c->v)
        return NULL;
    c->v[c->nv] = (seen){.key = key};
    return &c->v[c->nv++];
}

/* The v0.12 parameter `key` went to `fmt...` (once per target). */
static void went(conv *c, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void went(conv *c, const char *key, const char *fmt, ...)
{
    seen *s = seen_of(c, key);
    char t[256];
    va_list ap;

    if (!s)
        return;
    va_start(ap, fmt);
    vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    if (s->to.d && strstr(s->to.d, t))
        return;
    if (s->to.n)
        sb_puts(&s->to, ", ");
    sb_puts(&s->to, t);
}

static conf_node *child(const conf_node *n, const char *name)
{
    for (size_t i = 0; i < n->nchildren; i++)
        if (!strcmp(n->children[i]->name, name))
            return n->children[i];
    return NULL;
}

/* Fluentd's Config.bool_value: "true"/"yes"/"" true, "false"/"no" false, else nil (-1). */
static int bool_value(const char *v)
{
    if (!v)
        return -1;
    if (!*v || !strcmp(v, "true") || !strcmp(v, "yes"))
        return 1;
    if (!strcmp(v, "false") || !strcmp(v, "no"))
        return 0;
    return -1;
}

/* compat_parameters' to_bool: false for "false" (and absent), true for anything else. */
static int to_bool(const char *v)
{
    return v && strcmp(v, "false") != 0;
}

/* The new section, its parameters placed at the lines of the ones they come from. */
typedef struct newsec {
    conf_node *s;
    const char *file;
    int line;
} newsec;

static void put(newsec *ns, const char *key, const char *value, const conf_param *from)
{
    conf_param *p = param(ns->s, key);
    if (p) { /* Ruby's hash: a later store replaces the value */
        free(p->value);
        p->value = xstrdup(value);
        return;
    }
    cfg_node_set_param(ns->s, xstrdup(key), xstrdup(value), from ? from->file : ns->file,
                       from ? from->line : ns->line);
}

/* The first present key of `m`, which the section is placed at. */
static const conf_param *first_present(const conf_node *n, const cmap *m)
{
    const conf_param *best = NULL;
    for (; m->old; m++) {
        const conf_param *p = param(n, m->old);
        if (p && (!best || p->line < best->line))
            best = p;
    }
    return best;
}

static int any_present(const conf_node *n, const cmap *m)
{
    return first_present(n, m) != NULL;
}

/* Copy the table's mapped parameters (compat_parameters_copy_to_subsection_attributes). */
static void copy_mapped(conv *c, newsec *ns, const cmap *m, const char *sec)
{
    for (; m->old; m++) {
        const conf_param *p = param(c->n, m->old);
        if (!p || !m->cur)
            continue;
        const char *v = p->value;
        if (!strcmp(m->old, "buffer_queue_full_action") && !strcmp(v, "exception"))
            v = "throw_exception";
        put(ns, m->cur, v, p);
        went(c, m->old, "'%s' in <%s>", m->cur, sec);
    }
}

/* A section was written: the table's parameters present on the plugin's section are unused, as in Fluentd. */
static void mark_ignored(conv *c, const cmap *m, const char *sec)
{
    for (; m->old; m++)
        if (param(c->n, m->old)) {
            seen *s = seen_of(c, m->old);
            if (s && !s->ignored) {
                s->ignored = 1;
                s->ignored_sec = sec;
                s->ignored_as = m->cur;
            }
        }
}

static newsec new_section(conv *c, const char *name, const char *arg, const cmap *m)
{
    const conf_param *at = first_present(c->n, m);
    newsec ns = {.file = at ? at->file : c->n->file, .line = at ? at->line : c->n->line};
    ns.s = cfg_node_add(c->n, name, strlen(name), arg && *arg ? xstrdup(arg) : NULL, ns.file, ns.line);
    return ns;
}

/* localtime/utc of <parse>/<extract>: both is an error; else localtime = localtime, or !utc. */
static void localtime_utc(conv *c, newsec *ns, const char *sec)
{
    const conf_param *lt = param(c->n, "localtime"), *utc = param(c->n, "utc");
    if (!lt && !utc)
        return;
    if (lt && utc) {
        conf_errors_add(c->errs, utc->file, utc->line, "both of utc and localtime are specified, use only one of them");
        return;
    }
    if (lt) {
        put(ns, "localtime", bool_value(lt->value) == 1 ? "true" : "false", lt);
        went(c, "localtime", "'localtime' in <%s>", sec);
    } else {
        put(ns, "localtime", bool_value(utc->value) == 1 ? "false" : "true", utc);
        went(c, "utc", "'localtime %s' in <%s>", bool_value(utc->value) == 1 ? "false" : "true", sec);
    }
}

static void convert_buffer(conv *c, const char *chunk_key, int has_flush_interval)
{
    if (child(c->n, "buffer")) {
        mark_ignored(c, buffer_params, "buffer");
        return;
    }
    if (!any_present(c->n, buffer_params))
        return;
    const conf_param *tsf = param(c->n, "time_slice_format");
    const char *key = tsf ? "time" : chunk_key;
    newsec ns = new_section(c, "buffer", key, buffer_params);
    copy_mapped(c, &ns, buffer_params, "buffer");
    if (tsf) {
        const char *f = tsf->value, *timekey = strstr(f, "%S") ? "1"
                                                : strstr(f, "%M") ? "60"
                                                : strstr(f, "%H") ? "3600"
                                                : strstr(f, "%d") ? "86400"
                                                                  : NULL;
        if (!timekey)
            conf_errors_add(c->errs, tsf->file, tsf->line, "time_slice_format only with %%Y or %%m is too long");
        else
            put(&ns, "timekey", timekey, tsf);
        went(c, "time_slice_format", "'timekey %s' in <buffer time>", timekey ? timekey : "?");
        const conf_param *lt = param(c->n, "localtime"), *utc = param(c->n, "utc");
        if (lt && utc) {
            conf_errors_add(c->errs, utc->file, utc->line,
                            "both of utc and localtime are specified, use only one of them");
        } else if (lt) {
            put(&ns, "timekey_use_utc", bool_value(lt->value) == 1 ? "false" : "true", lt);
            went(c, "localtime", "'timekey_use_utc' in <buffer>");
        } else if (utc) {
            put(&ns, "timekey_use_utc", bool_value(utc->value) == 1 ? "true" : "false", utc);
            went(c, "utc", "'timekey_use_utc' in <buffer>");
        }
    } else if (!strcmp(key, "time")) {
        put(&ns, "timekey", "86400", NULL);
    }
    /* Output#configure: flush_interval written outside <buffer> makes the default flush_mode 'interval' */
    if (has_flush_interval)
        put(&ns, "flush_mode", "interval", param(c->n, "flush_interval"));
    const conf_param *bt = param(c->n, "buffer_type");
    if (bt)
        went(c, "buffer_type", "'@type' in <buffer>");
}

static void convert_inject(conv *c)
{
    if (child(c->n, "inject")) {
        mark_ignored(c, inject_params, "inject");
        return;
    }
    if (!any_present(c->n, inject_params))
        return;
    newsec ns = new_section(c, "inject", NULL, inject_params);
    copy_mapped(c, &ns, inject_params, "inject");
    const conf_param *itk = param(c->n, "include_time_key"), *tae = param(c->n, "time_as_epoch");
    if (itk) {
        if (bool_value(itk->value) == 1) {
            if (!param(ns.s, "time_key"))
                put(&ns, "time_key", "time", itk);
            if (!param(ns.s, "time_type"))
                put(&ns, "time_type", "string", itk);
        }
        went(c, "include_time_key", "'time_key' in <inject>");
    }
    if (tae) {
        if (bool_value(tae->value) == 1) {
            if (!param(ns.s, "time_key"))
                put(&ns, "time_key", "time", tae);
            put(&ns, "time_type", "unixtime", tae);
        }
        went(c, "time_as_epoch", "'time_type unixtime' in <inject>");
    }
    const conf_param *lt = param(c->n, "localtime"), *utc = param(c->n, "utc");
    if (lt || utc) {
        int l = to_bool(lt ? lt->value : NULL), u = to_bool(utc ? utc->value : NULL);
        if (lt && utc && !(l ^ u)) {
            conf_errors_add(c->errs, utc->file, utc->line,
                            "both of utc and localtime are specified, use only one of them");
        } else if (lt) {
            put(&ns, "localtime", bool_value(lt->value) == 1 ? "true" : "false", lt);
            went(c, "localtime", "'localtime' in <inject>");
        } else {
            put(&ns, "localtime", bool_value(utc->value) == 1 ? "false" : "true", utc);
            went(c, "utc", "'localtime' in <inject>");
        }
    }
    const conf_param *itag = param(c->n, "include_tag_key");
    if (itag) {
        if (bool_value(itag->value) == 1 && !param(ns.s, "tag_key"))
            put(&ns, "tag_key", "tag", itag);
        went(c, "include_tag_key", "'tag_key' in <inject>");
    }
}

static int old_regexp(const char *f)
{
    size_t n = f ? strlen(f) : 0;
    return n >= 1 && f[0] == '/' && f[n - 1] == '/'; /* "/" too: Ruby's "/"[1..-2] is "" */
}

static void convert_extract(conv *c)
{
    if (child(c->n, "extract")) {
        mark_ignored(c, extract_params, "extract");
        return;
    }
    const conf_param *fmt = param(c->n, "format");
    if (!any_present(c->n, extract_params) && !fmt)
        return;
    newsec ns = new_section(c, "extract", NULL, extract_params);
    copy_mapped(c, &ns, extract_params, "extract");
    const conf_param *tae = param(c->n, "time_as_epoch");
    if (tae && bool_value(tae->value) == 1) {
        if (!param(ns.s, "time_key"))
            put(&ns, "time_key", "time", tae);
        put(&ns, "time_type", "unixtime", tae);
        went(c, "time_as_epoch", "'time_type unixtime' in <extract>");
    } else if (fmt && old_regexp(fmt->value)) {
        if (!param(ns.s, "time_key"))
            put(&ns, "time_key", "time", fmt);
        if (!param(ns.s, "time_type"))
            put(&ns, "time_type", "string", fmt);
    }
    localtime_utc(c, &ns, "extract");
}

/* "a:integer,b:string" (types_delimiter, types_label_delimiter) as Fluentd's JSON.dump of the hash */
static char *types_json(const char *types, const char *delim, const char *label_delim)
{
    sbuf b = {0};
    size_t dl = strlen(delim), ll = strlen(label_delim);
    int first = 1;
    sb_putc(&b, '{');
    for (const char *p = types; dl && *p;) {
        const char *e = strstr(p, delim);
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *lab = ll ? memmem(p, len, label_delim, ll) : NULL;
        size_t klen = lab ? (size_t)(lab - p) : len;
        /* Ruby's split drops empty fields at the end only; a "" key is kept as Ruby does */
        if (len || e) {
            if (!first)
                sb_putc(&b, ',');
            first = 0;
            sb_putc(&b, '"');
            for (size_t i = 0; i < klen; i++) {
                if (p[i] == '"' || p[i] == '\\')
                    sb_putc(&b, '\\');
                sb_putc(&b, p[i]);
            }
            sb_puts(&b, "\":");
            if (lab) {
                sb_putc(&b, '"');
                for (const char *q = lab + ll; q < p + len; q++) {
                    if (*q == '"' || *q == '\\')
                        sb_putc(&b, '\\');
                    sb_putc(&b, *q);
                }
                sb_putc(&b, '"');
            } else {
                sb_puts(&b, "null");
            }
        }
        if (!e)
            break;
        p = e + dl;
    }
    sb_putc(&b, '}');
    return sb_take(&b);
}

static void convert_parser(conv *c)
{
    if (child(c->n, "parse")) {
        mark_ignored(c, parser_params, "parse");
        return;
    }
    if (!any_present(c->n, parser_params))
        return;
    newsec ns = new_section(c, "parse", NULL, parser_params);
    copy_mapped(c, &ns, parser_params, "parse");
    const conf_param *fmt = param(c->n, "format");
    if (fmt && *fmt->value) {
        if (old_regexp(fmt->value)) {
            size_t len = strlen(fmt->value);
            char *expr = xstrndup(fmt->value + 1, len >= 2 ? len - 2 : 0);
            put(&ns, "@type", "regexp", fmt);
            put(&ns, "expression", expr, fmt);
            free(expr);
            went(c, "format", "'@type regexp' and 'expression' in <parse>");
        } else {
            put(&ns, "@type", fmt->value, fmt);
            went(c, "format", "'@type %s' in <parse>", fmt->value);
        }
    } else if (fmt) {
        went(c, "format", "'@type' in <parse>");
    }
    const conf_param *types = param(c->n, "types");
    if (types && *types->value) {
        const conf_param *td = param(c->n, "types_delimiter"), *tld = param(c->n, "types_label_delimiter");
        char *json = types_json(types->value, td ? td->value : ",", tld ? tld->value : ":");
        put(&ns, "types", json, types);
        free(json);
        went(c, "types", "'types' in <parse> (a hash)");
        if (td)
            went(c, "types_delimiter", "'types' in <parse> (a hash)");
        if (tld)
            went(c, "types_label_delimiter", "'types' in <parse> (a hash)");
    }
    localtime_utc(c, &ns, "parse");
}

static void convert_formatter(conv *c)
{
    if (child(c->n, "format")) {
        mark_ignored(c, formatter_params, "format");
        return;
    }
    if (!any_present(c->n, formatter_params))
        return;
    newsec ns = new_section(c, "format", NULL, formatter_params);
    copy_mapped(c, &ns, formatter_params, "format");
    const conf_param *tae = param(c->n, "time_as_epoch");
    if (tae && bool_value(tae->value) == 1) {
        put(&ns, "time_type", "unixtime", tae);
        went(c, "time_as_epoch", "'time_type unixtime' in <format>");
    }
}

/* type/id/log_level -> @type/@id/@log_level (Config::Element#[]) */
static void reserved(conf_node *n, int all)
{
    static const char *const names[][2] = {{"type", "@type"}, {"id", "@id"}, {"log_level", "@log_level"}};
    for (size_t i = 0; i < (all ? 3u : 1u); i++) {
        conf_param *old = param(n, names[i][0]);
        if (!old)
            continue;
        if (param(n, names[i][1])) {
            conf_warn(n, old->file, old->line, "parameter '%s' in <%s%s%s> is not used: '%s' is set", names[i][0],
                      n->name, n->arg ? " " : "", n->arg ? n->arg : "", names[i][1]);
            cfg_node_del_param(n, names[i][0]);
            continue;
        }
        conf_warn(n, old->file, old->line, "'%s' is deprecated parameter name. use '%s' instead.", names[i][0],
                  names[i][1]);
        free(old->key);
        old->key = xstrdup(names[i][1]);
    }
}

static const char *kind_of(const conf_node *n)
{
    if (!strcmp(n->name, "source") || !strcmp(n->name, "filter"))
        return n->name;
    return "match";
}

static void convert_plugin(conf_node *n, conf_errors *errs)
{
    reserved(n, 1);
    /* Output#configure, for every output: `flush_interval` written outside a <buffer> the user wrote is not
     * used, but makes the buffer's default flush_mode 'interval' */
    conf_node *buf = child(n, "buffer");
    conf_param *fi = param(n, "flush_interval");
    if (!strcmp(kind_of(n), "match") && buf && fi) {
        if (!param(buf, "flush_mode")) {
            cfg_node_set_param(buf, xstrdup("flush_mode"), xstrdup("interval"), fi->file, fi->line);
            conf_warn(n, fi->file, fi->line,
                      "parameter 'flush_interval' outside <buffer> is not used, but as in Fluentd it sets <buffer>'s "
                      "flush_mode to 'interval' (\"to keep existing behaviour\"); use 'flush_interval' in <buffer>");
        } else {
            conf_warn(n, fi->file, fi->line, "parameter 'flush_interval' outside <buffer> is not used; use "
                                             "'flush_interval' in <buffer>");
        }
        cfg_node_del_param(n, "flush_interval");
    }
    const char *type = NULL;
    const conf_param *tp = param(n, "@type");
    if (tp)
        type = tp->value;
    const struct cplugin *pl = NULL;
    for (size_t i = 0; type && plugins[i].kind; i++)
        if (!strcmp(plugins[i].kind, kind_of(n)) && !strcmp(plugins[i].type, type))
            pl = &plugins[i];
    if (!pl)
        return;

    conv *c = xcalloc(1, sizeof *c);
    c->n = n;
    c->errs = errs;
    int has_flush_interval = param(n, "flush_interval") != NULL;
    for (const char *t = pl->convert; *t; t++) {
        switch (*t) {
        case 'b': convert_buffer(c, pl->chunk_key, has_flush_interval); break;
        case 'i': convert_inject(c); break;
        case 'e': convert_extract(c); break;
        case 'p': convert_parser(c); break;
        case 'f': convert_formatter(c); break;
        }
    }
    /* one warning per parameter, in the order written, then it leaves the plugin's section */
    for (size_t i = 1; i < c->nv; i++) {
        const conf_param *pi = param(n, c->v[i].key);
        for (size_t k = i; k > 0; k--) {
            const conf_param *pk = param(n, c->v[k - 1].key);
            if (!pi || !pk || pk->line <= pi->line)
                break;
            seen t = c->v[k];
            c->v[k] = c->v[k - 1];
            c->v[k - 1] = t;
        }
    }
    for (size_t i = 0; i < c->nv; i++) {
        seen *s = &c->v[i];
        const conf_param *p = param(n, s->key);
        if (!p)
            continue;
        if (s->to.n)
            conf_warn(n, p->file, p->line, "'%s' is deprecated parameter. use %s instead.", s->key, s->to.d);
        else if (s->ignored) {
            char as[160];
            const char *v1 = conf_compat_v1_form(s->key);
            if (s->ignored_as) {
                snprintf(as, sizeof as, "'%s' in <%s>", s->ignored_as, s->ignored_sec);
                v1 = as;
            }
            conf_warn(n, p->file, p->line,
                      "parameter '%s' in <%s%s%s> is not used: a <%s> section is written, and Fluentd converts v0.12 "
                      "parameters only without one%s%s",
                      s->key, n->name, n->arg ? " " : "", n->arg ? n->arg : "", s->ignored_sec, v1 ? "; use " : "",
                      v1 ? v1 : "");
        }
        if (s->to.n || s->ignored)
            cfg_node_del_param(n, s->key);
        sb_free(&s->to);
    }
    free(c);
}

/* <worker N> / <worker N-M>: Fluentd runs those directives in the named
 * worker processes only. weir is one process (its `workers` are threads
 * that share every plugin), so the directives run once, in it, as if they
 * were written at the top level: the records are the same. */
static void flatten_workers(conf_node *root, conf_errors *errs)
{
    for (size_t i = 0; i < root->nchildren; i++) {
        conf_node *w = root->children[i];
        if (strcmp(w->name, "worker"))
            continue;
        const char *a = w->arg ? w->arg : "";
        char *e;
        long lo = strtol(a, &e, 10), hi = lo;
        if (*e == '-')
            hi = strtol(e + 1, &e, 10);
        if (!*a || *e || lo < 0 || hi < lo) {
            conf_errors_add(errs, w->file, w->line, "<worker %s>: the worker id must be N or N-M (0 <= N <= M)", a);
            continue;
        }
        int ok = 1;
        for (size_t k = 0; k < w->nchildren; k++) {
            const char *nm = w->children[k]->name;
            if (strcmp(nm, "source") && strcmp(nm, "match") && strcmp(nm, "filter") && strcmp(nm, "label")) {
                conf_errors_add(errs, w->children[k]->file, w->children[k]->line,
                                "<%s> is not allowed in <worker>: only <source>, <match>, <filter> and <label>", nm);
                ok = 0;
            }
        }
        if (w->nparams) {
            conf_errors_add(errs, w->params[0].file, w->params[0].line, "parameter '%s' is not allowed in <worker>",
                            w->params[0].key);
            ok = 0;
        }
        if (!ok)
            continue;
        conf_warn(root, w->file, w->line,
                  "<worker %s>: weir runs one process, whose threads share every plugin: these directives run once, "
                  "as if written at the top level",
                  a);
        size_t nk = w->nchildren, total = root->nchildren - 1 + nk, cap = 1;
        while (cap < total) /* grow()'s invariant: room up to the next power of two */
            cap *= 2;
        conf_node **nc = malloc(cap * sizeof *nc);
        if (!nc)
            return;
        memcpy(nc, root->children, i * sizeof *nc);
        memcpy(nc + i, w->children, nk * sizeof *nc);
        memcpy(nc + i + nk, root->children + i + 1, (root->nchildren - i - 1) * sizeof *nc);
        for (size_t k = 0; k < nk; k++)
            w->children[k]->parent = root;
        w->nchildren = 0;
        cfg_node_free_empty(w);
        free(root->children);
        root->children = nc;
        root->nchildren = total;
        i += nk;
        i--;
    }
}

void conf_compat_apply(conf_node *root, conf_errors *errs)
{
    /* depth first without recursion (any nesting the parser accepts); the sections a conversion adds hold
     * only v1 names and need no visit */
    conf_node **stack = NULL;
    size_t n = 0;

    if (!root)
        return;
    flatten_workers(root, errs);
    stack = grow(stack, n, sizeof *stack);
    stack[n++] = root;
    while (n) {
        conf_node *cur = stack[--n];
        size_t nch = cur->nchildren;
        if (conf_is_plugin_section(cur))
            convert_plugin(cur, errs);
        else if (cur->parent && (!strcmp(cur->name, "buffer") || !strcmp(cur->name, "parse") ||
                                 !strcmp(cur->name, "format")))
            reserved(cur, 0);
        for (size_t i = nch; i-- > 0;) {
            stack = grow(stack, n, sizeof *stack);
            stack[n++] = cur->children[i];
        }
    }
    free(stack);
}
