/*
 * aggregator/params.c: weir --list-params; see params.h.
 *
 * The plugins' tables come from the registry (aggregator/registry.c). The
 * other tables conf_bind() is called with are listed in `sections` below:
 * the core sections, and the sub-sections of a plugin, printed after it. The
 * tables of the layers above (forward-protocol/, outputs/) and of the
 * filters are reached through extern symbols, as the registry reaches the
 * plugins; a new table conf_bind()s a section with goes into that list.
 */
#include "aggregator/params.h"

#include <stdlib.h>
#include <string.h>

#include "config/conf.h"
#include "buffer/buffer.h"
#include "aggregator/filter.h"
#include "aggregator/output.h"
#include "aggregator/parse_impl.h"
#include "aggregator/pipeline.h"
#include "aggregator/source.h"

/* outputs/elasticsearch/elasticsearch.c, outputs/format.c, forward-protocol/fwd_auth.c, aggregator/tls_server.c,
 * forward-protocol/fwd_source.c,
 * aggregator/filters/grep.c, aggregator/parsers/grok.c, aggregator/inputs/syslog.c, outputs/forward/forward.c,
 * aggregator/prom_metrics.c */
extern const conf_spec es_metadata_spec[], fmt_format_spec[], fmt_inject_spec[], fwd_security_spec[], fwd_user_spec[],
    fwd_client_spec[], tls_server_spec[], fwd_transport_tcp_spec[], filter_grep_cond_spec[], filter_grep_group_spec[],
    parse_grok_section_spec[], in_syslog_parse_spec[], out_forward_server_spec[], out_forward_security_spec[],
    out_forward_sd_spec[], out_forward_sd_srv_spec[], pmx_metric_spec[];

typedef struct param_section {
    const char *id;    /* the marker: <!-- params:ID --> */
    const char *title; /* the heading */
    const char *after; /* NULL: a core section (listed first); else the id of the plugin it follows */
    const conf_spec *spec;
} param_section;

static const param_section sections[] = {
    {"system", "`<system>`", NULL, pipeline_system_spec},
    {"system.log", "`<log>` (in `<system>`)", NULL, pipeline_system_log_spec},
    {"buffer", "`<buffer>` (in a `<match>`)", NULL, buffer_conf_spec},
    {"format", "`<format>` (in a `<match>` of `file`, `stdout`, `kafka2`)", NULL, fmt_format_spec},
    {"inject", "`<inject>` (in a `<match>` of `file`, `stdout`, `kafka2`)", NULL, fmt_inject_spec},
    {"parse", "`<parse>`: every type", NULL, parse_common_spec},
    {"source.forward.security", "`<security>` (in `<source> @type forward`)", "source.forward", fwd_security_spec},
    {"source.forward.security.user", "`<user>` (in `<security>`)", "source.forward", fwd_user_spec},
    {"source.forward.security.client", "`<client>` (in `<security>`)", "source.forward", fwd_client_spec},
    {"source.forward.transport.tls", "`<transport tls>` (in `<source> @type forward`)", "source.forward",
     tls_server_spec},
    {"source.forward.transport.tcp", "`<transport tcp>` (in `<source> @type forward`)", "source.forward",
     fwd_transport_tcp_spec},
    {"filter.grep.regexp", "`<regexp>`, `<exclude>` (in `<filter> @type grep`, `<and>`, `<or>`)", "filter.grep",
     filter_grep_cond_spec},
    {"output.elasticsearch.metadata", "`<metadata>` (in `<match> @type elasticsearch`)", "output.elasticsearch",
     es_metadata_spec},
    {"source.syslog.parse", "`<parse>` (in `<source> @type syslog`; `@type syslog`, the default)", "source.syslog",
     in_syslog_parse_spec},
    {"output.forward.server", "`<server>` (in `<match> @type forward`)", "output.forward", out_forward_server_spec},
    {"output.forward.security", "`<security>` (in `<match> @type forward`)", "output.forward",
     out_forward_security_spec},
    {"output.forward.service_discovery", "`<service_discovery>` (in `<match> @type forward`)", "output.forward",
     out_forward_sd_spec},
    {"output.forward.service_discovery.srv", "`<service_discovery>` `@type srv` (in `<match> @type forward`)",
     "output.forward", out_forward_sd_srv_spec},
    {"filter.prometheus.metric", "`<metric>` (in `<filter>` and `<match>` of `@type prometheus`)", "filter.prometheus",
     pmx_metric_spec},
    {"filter.grep.and", "`<and>`, `<or>` (in `<filter> @type grep`)", "filter.grep", filter_grep_group_spec},
    {"parser.grok.grok", "`<grok>` (in `<parse> @type grok`)", "parser.grok", parse_grok_section_spec},
};
#define NSECTIONS (sizeof sections / sizeof sections[0])

static const char *type_name(conf_type t)
{
    switch (t) {
    case CONF_STR: return "string";
    case CONF_INT: return "integer";
    case CONF_BOOL: return "bool";
    case CONF_SIZE: return "size";
    case CONF_TIME: return "time";
    case CONF_ENUM: return "enum";
    case CONF_ARRAY: return "array";
    case CONF_SECTION: return "section";
    case CONF_HASH: return "hash";
    }
    return "?";
}

/* Table cell text: '|' escaped, control characters as C escapes (a tab default). */
static void put_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else if (*s == '\t')
            fputs("\\t", out);
        else if (*s == '\n')
            fputs("\\n", out);
        else if ((unsigned char)*s < 0x20)
            fprintf(out, "\\x%02x", (unsigned char)*s);
        else
            fputc(*s, out);
    }
}

/* `s` as inline code (`` s `` when it holds a backtick) */
static void put_code(FILE *out, const char *s)
{
    int tick = strchr(s, '`') != NULL;
    fputs(tick ? "`` " : "`", out);
    put_cell(out, s);
    fputs(tick ? " ``" : "`", out);
}

static int same_str(const char *a, const char *b) { return a == b || (a && b && !strcmp(a, b)); }

/* "regexp12" -> prefix length 6, number 12; -1 when the name does not end in digits. */
static long name_number(const char *name, size_t *prefix)
{
    size_t n = strlen(name), i = n;
    while (i > 0 && name[i - 1] >= '0' && name[i - 1] <= '9')
        i--;
    if (i == n || i == 0 || n - i > 6)
        return -1;
    *prefix = i;
    return strtol(name + i, NULL, 10);
}

/* How many rows from `sp` on form one run regexp1, regexp2, ... that differ
 * only in that number (printed as one row); 1 for a single row. */
static size_t run_length(const conf_spec *sp)
{
    size_t pfx, p2;
    long first = name_number(sp->name, &pfx);
    if (first < 0)
        return 1;
    size_t k = 1;
    for (const conf_spec *q = sp + 1; q->name; q++, k++) {
        long v = name_number(q->name, &p2);
        if (v != first + (long)k || p2 != pfx || strncmp(q->name, sp->name, pfx) || q->type != sp->type ||
            q->required != sp->required || !same_str(q->def, sp->def) || !same_str(q->choices, sp->choices) ||
            !same_str(q->desc, sp->desc))
            break;
    }
    return k;
}

/* The rows of one table; -1 when a row has no description. */
static int put_table(FILE *out, const char *id, const conf_spec *spec)
{
    int rc = 0;
    fputs("| parameter | type | default | description |\n|---|---|---|---|\n", out);
    for (const conf_spec *sp = spec; sp->name;) {
        size_t run = run_length(sp);
        const conf_spec *last = sp + run - 1;
        fputs("| ", out);
        if (sp->type == CONF_SECTION) {
            fputs("`<", out);
            put_cell(out, sp->name);
            fputs(">`", out);
        } else {
            put_code(out, sp->name);
        }
        if (run > 1) {
            fputs("..", out);
            put_code(out, last->name);
        }
        fprintf(out, " | %s", type_name(sp->type));
        if (sp->type == CONF_ENUM && sp->choices) {
            fputs(": ", out);
            for (const char *c = sp->choices; *c;) {
                size_t n = strcspn(c, "|");
                fprintf(out, "`%.*s`%s", (int)n, c, c[n] ? ", " : "");
                c += n + (c[n] ? 1 : 0);
            }
        }
        fputs(" | ", out);
        if (sp->required)
            fputs("required", out);
        else if (sp->def)
            put_code(out, sp->def);
        fputs(" | ", out);
        if (sp->desc && sp->desc[0]) {
            put_cell(out, sp->desc);
        } else {
            fprintf(stderr, "weir: parameter '%s' of %s has no description\n", sp->name, id);
            rc = -1;
        }
        fputs(" |\n", out);
        sp += run;
    }
    return rc;
}

static int put_section(FILE *out, const char *id, const char *title, const conf_spec *spec, const char *empty)
{
    fprintf(out, "<!-- params:%s -->\n### %s\n\n", id, title);
    int rc = 0;
    if (spec && spec->name)
        rc = put_table(out, id, spec);
    else
        fprintf(out, "%s\n", empty);
    fputc('\n', out);
    return rc;
}

typedef struct plug {
    const char *name;
    const conf_spec *spec;
} plug;
#define MAX_PLUGINS 64 /* of one kind */

/* Every plugin of a kind: its table (or, for an alias with the table of an
 * earlier one, its name), then the sub-sections listed after it. */
static int put_kind(FILE *out, const char *kind, const char *directive, const plug *v, size_t n, const char *empty,
                    int *printed)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        char id[128], title[160];
        snprintf(id, sizeof id, "%s.%s", kind, v[i].name);
        snprintf(title, sizeof title, "`%s @type %s`", directive, v[i].name);
        const char *same = NULL;
        for (size_t j = 0; j < i && !same; j++)
            if (v[j].spec && v[j].spec == v[i].spec)
                same = v[j].name;
        if (same) {
            fprintf(out, "<!-- params:%s -->\n### %s\n\nSame parameters as `%s @type %s`.\n\n", id, title, directive,
                    same);
        } else if (put_section(out, id, title, v[i].spec, empty)) {
            rc = -1;
        }
        for (size_t k = 0; k < NSECTIONS; k++) {
            if (!sections[k].after || strcmp(sections[k].after, id))
                continue;
            printed[k] = 1;
            if (put_section(out, sections[k].id, sections[k].title, sections[k].spec, "No parameters."))
                rc = -1;
        }
    }
    return rc;
}

static int too_many(const char *kind)
{
    fprintf(stderr, "weir: more than %d %s plugins: raise MAX_PLUGINS in aggregator/params.c\n", MAX_PLUGINS, kind);
    return -1;
}

int params_list(FILE *out)
{
    int rc = 0;
    for (size_t i = 0; i < NSECTIONS; i++)
        if (!sections[i].after &&
            put_section(out, sections[i].id, sections[i].title, sections[i].spec, "No parameters."))
            rc = -1;

    plug v[MAX_PLUGINS];
    size_t n = 0;
    int printed[NSECTIONS] = {0};
    const source_plugin *const *src = source_plugins();
    for (n = 0; src[n]; n++) {
        if (n == MAX_PLUGINS)
            return too_many("source");
        v[n] = (plug){src[n]->name, src[n]->spec};
    }
    if (put_kind(out, "source", "<source>", v, n, "No parameters.", printed))
        rc = -1;
    const filter_plugin *const *flt = filter_plugins();
    for (n = 0; flt[n]; n++) {
        if (n == MAX_PLUGINS)
            return too_many("filter");
        v[n] = (plug){flt[n]->name, flt[n]->spec};
    }
    if (put_kind(out, "filter", "<filter>", v, n, "No parameters.", printed))
        rc = -1;
    const parser_plugin *const *prs = parser_plugins();
    for (n = 0; prs[n]; n++) {
        if (n == MAX_PLUGINS)
            return too_many("parser");
        v[n] = (plug){prs[n]->name, prs[n]->spec};
    }
    if (put_kind(out, "parser", "<parse>", v, n, "No parameters besides the common `<parse>` ones.", printed))
        rc = -1;
    const out_plugin *const *outs = out_plugins();
    for (n = 0; outs[n]; n++) {
        if (n == MAX_PLUGINS)
            return too_many("output");
        v[n] = (plug){outs[n]->name, outs[n]->spec};
    }
    if (put_kind(out, "output", "<match>", v, n, "No parameters.", printed))
        rc = -1;
    for (size_t k = 0; k < NSECTIONS; k++)
        if (sections[k].after && !printed[k]) {
            fprintf(stderr, "weir: %s follows %s, which is no plugin\n", sections[k].id, sections[k].after);
            rc = -1;
        }
    return rc;
}
