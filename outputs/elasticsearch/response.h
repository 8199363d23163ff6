/*
 * outputs/elasticsearch/response.h: what an answer to a bulk request means
 * for each of its records (response.c holds the status table).
 */
#ifndef WEIR_ES_RESPONSE_H
#define WEIR_ES_RESPONSE_H

#include <stdint.h>

#include "lib/http.h"
#include "buffer/sink.h"
#include "outputs/elasticsearch/es.h"

/* What the rounds of one write saw, for its logs and its reason. */
typedef struct round_stats {
    uint32_t n429, nerr, nfailed_req, nreq;
    int log_400; /* log_es_400_reason: log every 400 item's reason */
    char item_reason[400], req_reason[300], soon_reason[300];
} round_stats;

/* 1 when a whole request with this status goes to the next host: 401/403/408/429/5xx. */
int es_status_next_host(long status);
/* Set the RS_* and reason of the records pend[0..n) of w from the answer r to their request: per item
 * for a 2xx, whole otherwise; counts and first reasons into rs (id: for logs). */
void es_apply_response(const char *id, http_req *r, es_buf *w, const uint32_t *pend, uint32_t n, round_stats *rs);
/* Mark every sent record of w in res by its RS_* (RS_OK unmarked; RS_ERROR OUT_ERROR; RS_RETRY and an
 * RS_SOON left after the rounds OUT_RETRY) with its reason; adds to the three counts. */
void es_mark_results(const es_buf *w, out_result *res, uint32_t *nok, uint32_t *nretry, uint32_t *nerr);

#endif
