/* aggregator/source.c: the registry of non-forward source plugins; see source.h. */
#include "aggregator/source.h"

#include <string.h>

extern const source_plugin in_kafka_plugin;

static const source_plugin *const plugins[] = {&in_kafka_plugin, NULL};

const source_plugin *source_plugin_find(const char *name)
{
    for (int i = 0; plugins[i]; i++)
        if (!strcmp(plugins[i]->name, name))
            return plugins[i];
    return NULL;
}
