/*
 * outputs/elasticsearch/bulk.h: the _bulk body of one write (bulk.c).
 * Ownership: an es_buf belongs to the write that filled it.
 */
#ifndef WEIR_ES_BULK_H
#define WEIR_ES_BULK_H

#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"
#include "buffer/sink.h"
#include "outputs/elasticsearch/es.h"

/* Allocate w's per-record arrays for nrec records; -1 on OOM (es_buf_free frees what was allocated). */
int es_buf_init(es_buf *w, uint32_t nrec);
/* Free everything w holds. */
void es_buf_free(es_buf *w);
/* The time of e for its index name and @timestamp (see bulk.c); *has_ts: the record has an @timestamp. */
void es_record_time(const out_es *c, const entry *e, uint32_t *sec, uint32_t *nsec, int *has_ts);
/* Encode up to nrec records of b into w (action + document line each; w->off, w->recno, w->nsent); a
 * record that cannot be encoded is marked OUT_ERROR in res and left out. Returns how many were left
 * out, err holding the last one's reason. */
uint32_t es_bulk_encode(const out_es *c, const batch *b, uint32_t nrec, es_buf *w, out_result *res, char *err,
                        size_t errlen);

#endif
