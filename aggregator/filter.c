/* aggregator/filter.c: filter instances (the plugins are listed in registry.c); see filter.h. */
#include "filter.h"

#include "aggregator/record.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fluentd filters weir knows of but does not implement: a clearer message
 * than "unknown". */
static const char *const refused[][2] = {
    {"geoip", NULL},
    {"concat", NULL},
    {"typecast", NULL},
    {NULL, NULL},
};

filter *filter_create(conf_node *n, int index, conf_errors *errs)
{
    conf_param *type = conf_plugin_type(n, errs);
    if (!type)
        return NULL;
    const filter_plugin *pl = filter_plugin_find(type->value);
    if (!pl) {
        for (size_t i = 0; refused[i][0]; i++) {
            if (strcmp(refused[i][0], type->value) == 0) {
                conf_errors_add(errs, type->file, type->line, "filter plugin '%s' is not supported by weir%s%s",
                                type->value, refused[i][1] ? ": " : "", refused[i][1] ? refused[i][1] : "");
                return NULL;
            }
        }
        conf_error_unknown(errs, type->file, type->line, "filter plugin", type->value, NULL, filter_plugin_names());
        return NULL;
    }
    filter *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->plugin = pl;
    f->ctx = calloc(1, pl->ctx_size ? pl->ctx_size : 1);
    f->id = conf_plugin_id(n, pl->name, index);
    f->pattern = strdup(n->arg && n->arg[0] ? n->arg : "**");
    if (!f->ctx || !f->id || !f->pattern) {
        filter_destroy(f);
        return NULL;
    }
    conf_get(n, "@log_level"); /* accepted; per-plugin log levels are not implemented */
    int bad = pl->spec ? conf_bind(n, pl->spec, f->ctx, errs) : 0;
    if (bad == 0 && pl->init && pl->init(f, n, errs) != 0)
        bad = -1;
    if (bad) {
        filter_destroy(f);
        return NULL;
    }
    return f;
}

void filter_destroy(filter *f)
{
    if (!f)
        return;
    if (f->plugin && f->ctx) {
        if (f->plugin->exit)
            f->plugin->exit(f);
        if (f->plugin->spec)
            conf_unbind(f->plugin->spec, f->ctx);
    }
    free(f->ctx);
    free(f->id);
    free(f->pattern);
    free(f);
}

int filter_compile_keys(char **keys, rec_path **out, size_t *n, const char *param, conf_node *node, conf_errors *errs)
{
    size_t cnt = 0;
    while (keys && keys[cnt])
        cnt++;
    *out = calloc(cnt ? cnt : 1, sizeof **out);
    if (!*out)
        return -1;
    int bad = 0;
    for (size_t i = 0; i < cnt; i++) {
        char err[256];
        if (!keys[i][0])
            continue;
        if (rec_path_compile(&(*out)[*n], keys[i], err, sizeof err) != 0) {
            const conf_param *p = conf_get(node, param);
            conf_errors_add(errs, p ? p->file : node->file, p ? p->line : node->line, "invalid key '%s' in %s: %s",
                            keys[i], param, err);
            bad = -1;
            continue;
        }
        (*n)++;
    }
    return bad;
}

/* ---- hooks of stateful filters into consumer-group sources ------------------------------------- */

static pthread_mutex_t hooks_mu = PTHREAD_MUTEX_INITIALIZER;
static filter_hooks *hooks;
static size_t nhooks;

void filter_hooks_add(const filter_hooks *h)
{
    pthread_mutex_lock(&hooks_mu);
    filter_hooks *nv = realloc(hooks, (nhooks + 1) * sizeof *nv);
    if (nv) {
        hooks = nv;
        hooks[nhooks++] = *h;
    }
    pthread_mutex_unlock(&hooks_mu);
}

void filter_hooks_remove(void *arg)
{
    pthread_mutex_lock(&hooks_mu);
    for (size_t i = 0; i < nhooks; i++)
        if (hooks[i].arg == arg) {
            memmove(&hooks[i], &hooks[i + 1], (nhooks - i - 1) * sizeof *hooks);
            nhooks--;
            break;
        }
    if (!nhooks) {
        free(hooks);
        hooks = NULL;
    }
    pthread_mutex_unlock(&hooks_mu);
}

int filter_hooks_barrier(void)
{
    int rc = 0;
    pthread_mutex_lock(&hooks_mu);
    for (size_t i = 0; i < nhooks; i++)
        if (hooks[i].barrier && hooks[i].barrier(hooks[i].arg))
            rc = -1;
    pthread_mutex_unlock(&hooks_mu);
    return rc;
}

void filter_hooks_partitions(const filter_part *p, size_t n, int assigned)
{
    pthread_mutex_lock(&hooks_mu);
    for (size_t i = 0; i < nhooks; i++)
        if (hooks[i].partitions)
            hooks[i].partitions(hooks[i].arg, p, n, assigned);
    pthread_mutex_unlock(&hooks_mu);
}
