/* aggregator/source.c: what every source shares; see source.h (the plugins are listed in registry.c). */
#include "aggregator/source.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int source_init(source *s, const source_plugin *p, conf_node *n, int index)
{
    s->plugin = p;
    s->id = conf_plugin_id(n, p->name, index);
    s->conf_fp = conf_fingerprint(n);
    return s->id ? 0 : -1;
}

void source_fini(source *s)
{
    free(s->id);
    free(s->conf_fp);
    s->id = s->conf_fp = NULL;
}

int source_worker_init(struct worker *w)
{
    const source_plugin *const *p = source_plugins();
    for (size_t i = 0; p[i]; i++)
        if (p[i]->worker_init && p[i]->worker_init(w) != 0)
            return -1;
    return 0;
}

void source_worker_stop(struct worker *w)
{
    const source_plugin *const *p = source_plugins();
    for (size_t i = 0; p[i]; i++)
        if (p[i]->worker_stop)
            p[i]->worker_stop(w);
}

void source_worker_free(struct worker *w)
{
    const source_plugin *const *p = source_plugins();
    for (size_t i = 0; p[i]; i++)
        if (p[i]->worker_free)
            p[i]->worker_free(w);
}
