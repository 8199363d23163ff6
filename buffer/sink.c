/* buffer/sink.c: per-record write results; see sink.h. */
#include "buffer/sink.h"

#include <stdlib.h>
#include <string.h>

#include "lib/array.h"

int out_result_mark(out_result *r, uint32_t idx, int status, const char *reason)
{
    if (idx >= r->n)
        return -1;
    if (!r->status && !(r->status = calloc(r->n, 1)))
        return -1;
    r->status[idx] = (uint8_t)status;
    if (reason) {
        if (!r->reasons && !(r->reasons = calloc(r->n, sizeof *r->reasons)))
            return -1;
        free(r->reasons[idx]);
        r->reasons[idx] = strdup(reason);
    }
    return 0;
}

void out_result_free(out_result *r)
{
    ARRAY_FREE_ALL(r->reasons, r->n);
    free(r->status);
    r->reasons = NULL;
    r->status = NULL;
}
