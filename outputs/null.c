/* outputs/null.c: Fluentd's out_null: accepts and discards records. */
#include "aggregator/output.h"

static int null_write(output *o, const batch *b) { return OUT_OK; }

const out_plugin out_null_plugin = {
    .name = "null",
    .write = null_write,
};
