/*
 * outputs/loki/status.h: what Loki's answer to one push request means for
 * its records (the table at the top of status.c). Pure: no I/O, no logs,
 * no shared state.
 */
#ifndef WEIR_LOKI_STATUS_H
#define WEIR_LOKI_STATUS_H

#include <stddef.h>

#include "lib/http.h"
#include "buffer/sink.h"
#include "outputs/loki/request.h"

enum { LK_DELIVERED, LK_RETRY, LK_REJECTED };

/* The class of the answer q: LK_DELIVERED, LK_RETRY or LK_REJECTED. */
int lk_status(const http_req *q);
/* A short, single-line excerpt of the answer, for reasons and logs. */
void lk_excerpt(char *out, size_t cap, const http_req *q);
/* A rejected request for r->recs[from, to) (one tenant, sorted): marks
 * OUT_ERROR in res the records of the streams a 400 names (with that line
 * of Loki's message as the reason) or, when it names none, every record
 * (reason `why`). Returns the number of records marked. */
size_t lk_reject(const lk_req *r, const http_req *q, size_t from, size_t to, const char *why, out_result *res);

#endif
