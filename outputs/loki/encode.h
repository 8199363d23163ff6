/*
 * outputs/loki/encode.h: a record's Loki entry (its line and structured
 * metadata) and the push bodies: protobuf PushRequest, snappy-compressed,
 * or JSON, gzip'd.
 *
 * lk_entry_conf is bound in init and immutable after it. The functions
 * append into the lk_req of the write (request.h) or into the caller's
 * buffers; 0, or -1 (OOM; for a line or metadata also a record that is not
 * a map).
 */
#ifndef WEIR_LOKI_ENCODE_H
#define WEIR_LOKI_ENCODE_H

#include <stddef.h>

#include "lib/batch.h"
#include "lib/wbuf.h"
#include "aggregator/record.h"
#include "outputs/loki/labels.h"
#include "outputs/loki/request.h"

enum { LK_KEY_VALUE, LK_JSON };     /* line_format */
enum { LK_PROTOBUF, LK_JSON_BODY }; /* encoding */

typedef struct lk_entry_conf {
    int line_format;
    int drop_single_key;
    int encoding;
    int compress; /* 1: snappy / gzip; 0 (`compress none`): protobuf in snappy's literal framing, plain JSON */
    rec_path *strip; /* label, metadata and remove_keys paths: taken out of the line */
    size_t nstrip;
    lk_field *meta; /* <structured_metadata> */
    size_t nmeta;
} lk_entry_conf;

/* The line of record e (line_format, drop_single_key, strip) into r->lines,
 * its place in lr. */
int lk_entry_line(const lk_entry_conf *ec, lk_req *r, const entry *e, lk_rec *lr);
/* The structured metadata of record e into r->sm (protobuf LabelPairAdapter
 * fields or a JSON object, as ec->encoding), its place in lr. */
int lk_entry_meta(const lk_entry_conf *ec, lk_req *r, const entry *e, lk_rec *lr);
/* The PushRequest of r->recs[from, to) (one tenant, sorted) into raw, and
 * snappy-compressed into out; with compress 0, written once straight into
 * out behind a snappy header that holds it as one literal (Loki always
 * snappy-decodes a protobuf push). *raw_len: the PushRequest's size. */
int lk_body_protobuf(lk_req *r, size_t from, size_t to, int compress, wbuf *raw, wbuf *out, size_t *raw_len);
/* The JSON push body of r->recs[from, to) (one tenant, sorted) into out. */
int lk_body_json(lk_req *r, size_t from, size_t to, wbuf *out);
/* gzip (one member) of raw into out. */
int lk_gzip_into(const wbuf *raw, wbuf *out, int level);

#endif
