/*
 * forward-protocol/fwd_decode_int.h: the decoder's entry-level pieces,
 * shared by fwd_decode.c (a whole request) and fwd_stream.c (a request
 * decoded entry by entry as its bytes arrive). Not for use outside those two.
 */
#ifndef WEIR_FWD_DECODE_INT_H
#define WEIR_FWD_DECODE_INT_H

#include "forward-protocol/fwd_decode.h"
#include "lib/mp.h"

#define E_NOMEM (-10) /* distinct from MP_SHORT/MP_BAD */

typedef struct dctx {
    const fwd_decode_opts *o;
    const fwd_peer *peer;
    fwd_result *r;
    wbuf *out;
    const uint8_t *run_start, *run_end; /* pending canonical run, not yet copied */
    int inject;                         /* records need extra keys: no canonical runs */
    int have_now;                       /* now_sec/now_nsec read for this request */
    uint32_t now_sec, now_nsec;
} dctx;

typedef struct fwd_options {
    const uint8_t *chunk;
    size_t chunk_len;
    const uint8_t *compressed;
    size_t compressed_len;
    const uint8_t *metadata;
    size_t metadata_len;
    int64_t signal;
} fwd_options;

/* One [time, record] / [[time, meta], record] entry at *p: MP_OK (stored,
 * or skipped and counted), MP_SHORT, MP_BAD, E_NOMEM. Canonical entries are
 * left in a pending run (c->run_start..run_end, pointing into the input):
 * fwd_flush_run copies it to c->out; call it before the input moves. */
int fwd_entry(dctx *c, const uint8_t **p, const uint8_t *end);
int fwd_flush_run(dctx *c);
__attribute__((format(printf, 2, 3))) void fwd_note_invalid(dctx *c, const char *fmt, ...);
/* The option map (or nil) at *p. 0, or -1 with err set. */
int fwd_parse_options(const uint8_t **p, const uint8_t *end, fwd_options *op, char *err, size_t errlen);
const char *fwd_type_name(mp_type t);

#endif
