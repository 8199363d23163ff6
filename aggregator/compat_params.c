/*
 * aggregator/compat_params.c: no-op and refused plugin parameters; see
 * compat_params.h.
 */
#include "aggregator/compat_params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

static int starts(const char *s, const char *prefix)
{
    return s && strncmp(s, prefix, strlen(prefix)) == 0;
}

int compat_is_noop(const conf_spec *s)
{
    return starts(s->desc, COMPAT_NOOP);
}

int compat_is_refused(const conf_spec *s)
{
    return starts(s->desc, COMPAT_REFUSED);
}

/* The parameter of n named like the row, the last one written (what binding keeps). */
static const conf_param *find(const conf_node *n, const char *name)
{
    const conf_param *p = NULL;
    for (size_t i = 0; i < n->nparams; i++)
        if (strcmp(n->params[i].key, name) == 0)
            p = &n->params[i];
    return p;
}

/* Is the value the row's default? Bools compare by meaning ("yes" is "true"). */
static int is_default(const conf_spec *s, const char *v)
{
    if (!s->def)
        return 0;
    if (s->type == CONF_BOOL) {
        int a, b;
        return conf_parse_bool(v, &a) == 0 && conf_parse_bool(s->def, &b) == 0 && a == b;
    }
    return strcmp(v, s->def) == 0;
}

char *compat_noop_message(const conf_param *p, const conf_spec *s, const char *id)
{
    char *m = NULL;
    const char *why = s->desc + strlen(COMPAT_NOOP);
    if (asprintf(&m, "%s:%d: %s: parameter '%s' has no effect in weir: %s", p->file ? p->file : "?", p->line, id,
                 s->name, why) < 0)
        return NULL;
    return m;
}

int compat_check(const conf_node *n, const conf_spec *spec, const char *module, const char *id, conf_errors *errs)
{
    int nerr = 0;
    /* in the order written; a parameter written twice counts once (the last, what binding keeps) */
    for (size_t i = 0; i < n->nparams; i++) {
        const conf_param *p = &n->params[i];
        if (find(n, p->key) != p)
            continue;
        const conf_spec *s = spec;
        while (s->name && (s->type == CONF_SECTION || strcmp(s->name, p->key) != 0))
            s++;
        if (!s->name)
            continue;
        if (compat_is_noop(s)) {
            char *m = compat_noop_message(p, s, id);
            if (m)
                wlog_warn(module, "%s", m);
            free(m);
        } else if (compat_is_refused(s) && !is_default(s, p->value ? p->value : "")) {
            conf_errors_add(errs, p->file, p->line, "parameter '%s' is not supported by weir: %s", s->name,
                            s->desc + strlen(COMPAT_REFUSED));
            nerr++;
        }
    }
    return nerr;
}
