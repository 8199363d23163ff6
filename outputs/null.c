/* outputs/null.c: Fluentd's out_null: accepts and discards records. */
#include <stddef.h>

#include "aggregator/output.h"

typedef struct out_null {
    int never_flush;
} out_null;

static const conf_spec null_spec[] = {
    {"never_flush", CONF_BOOL, "false", 0, offsetof(out_null, never_flush), NULL,
     "every flush fails, to exercise buffering (as in Fluentd)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* never_flush true: every flush fails (Fluentd uses it to test buffering). */
static int null_write(output *o, const batch *b, out_result *res)
{
    const out_null *c = o->ctx;
    return c->never_flush ? OUT_RETRY : OUT_OK;
}

const out_plugin out_null_plugin = {
    .name = "null",
    .spec = null_spec,
    .ctx_size = sizeof(out_null),
    .write = null_write,
};
