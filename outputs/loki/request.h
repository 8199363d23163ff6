/*
 * outputs/loki/request.h: the working set of one write (one buffer chunk):
 * its records, the streams (tenant + label set) they belong to, the
 * tenants; built record by record, then sorted by tenant, stream and time
 * for the body encoders (encode.h) and for reading Loki's answer
 * (status.h).
 *
 * Ownership: an lk_req is zeroed at the start of a write, owned by that
 * write (one thread) and released with lk_req_free before it returns.
 * Offsets point into its own buffers.
 */
#ifndef WEIR_LOKI_REQUEST_H
#define WEIR_LOKI_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "lib/wbuf.h"
#include "outputs/loki/guard.h"
#include "outputs/loki/labels.h"

typedef struct lk_rec {
    uint32_t idx; /* in the batch */
    uint32_t stream;
    uint32_t sec, nsec;
    size_t line_off, sm_off; /* into lk_req.lines / lk_req.sm */
    uint32_t line_len, sm_len;
    uint32_t esize; /* protobuf EntryAdapter size */
} lk_rec;

typedef struct lk_stream {
    uint32_t tenant;
    size_t key_off, lab_off, json_off; /* the set's key (lk_req_stream), canonical {a="b", c="d"} and JSON
                                          object, in lk_req.text */
    uint32_t key_len, lab_len, json_len;
    uint64_t h;
    uint64_t size; /* protobuf StreamAdapter size */
} lk_stream;

typedef struct lk_req {
    lk_labels ls;           /* the label set of the record at hand */
    wbuf sc2;               /* scratch of the record at hand */
    wbuf lines, sm, text;   /* lines, structured metadata, stream labels and tenant names */
    lk_rec *recs;
    size_t nrecs, cap_recs;
    lk_stream *streams;
    size_t nstreams, cap_streams;
    uint32_t *stab; /* stream hash table: index + 1 */
    size_t stab_cap;
    size_t *tenants; /* offsets of NUL-terminated tenant names in text */
    size_t ntenants, cap_tenants;
    lk_guard_memo memo;
} lk_req;

void lk_req_free(lk_req *r);
/* The index of tenant t[0, tl) ("" for none): found or added. -1 on OOM. */
int lk_req_tenant(lk_req *r, const char *t, size_t tl, uint32_t *out);
/* The stream of (tenant, r->ls), r->ls normalised and lh its
 * lk_labels_hash: found or added (only a new stream's label text and JSON
 * are made). -1 on OOM. */
int lk_req_stream(lk_req *r, uint32_t tenant, uint64_t lh, uint32_t *out);
/* Sort the records by tenant, stream, time (stable: batch order last). */
void lk_req_sort(lk_req *r);

#endif
