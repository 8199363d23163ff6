/*
 * aggregator/dead_letter.h: weir's own dead letters routed to a label
 * (`<buffer> dead_letter_label`, docs/buffer.md "Dead letters to a label").
 *
 * The buffer (buffer/dlq.c) hands the records it gives up on, and those the
 * backend rejected, to the output's dead_sink with why (buf_dead); here each
 * record gets a map at `dead_letter_key` (error_type, error_message,
 * attempts, tag, output_id) and the batch enters the label, keeping its tag,
 * like records sent to @ERROR (router_emit_to waits until the label's
 * outputs have them). Built by pipeline_load (configuration errors there),
 * read-only afterwards: dl_route_sink runs on flush threads.
 */
#ifndef WEIR_DEAD_LETTER_H
#define WEIR_DEAD_LETTER_H

#include "buffer/buffer.h"
#include "aggregator/record.h"
#include "aggregator/router.h"

typedef struct dl_route {
    router *rt;
    rt_label *label;
    rec_path key;
} dl_route;

/* For buffer b: 0 (nothing to do: no dead_letter_label, d left zeroed), 1
 * (d set up), -1 (the label does not exist or the key is no key path: an
 * error at the parameter's line). */
int dl_route_init(dl_route *d, router *rt, const buffer *b, conf_errors *errs);
void dl_route_free(dl_route *d);
/* buffer.dead_sink: decorate and route; 0, or -1 (the label refused them, or
 * out of memory). */
int dl_route_sink(void *arg, const batch *b, const buf_dead *why);

/* The record [rec, rec+len) with the dead-letter map at key, appended to
 * out (exposed for the unit tests). 0, or -1. */
int dl_decorate(wbuf *out, const uint8_t *rec, size_t len, const rec_path *key, const buf_dead *why,
                const char *reason, const char *tag, size_t tag_len, wbuf *scratch);

#endif
