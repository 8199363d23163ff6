/*
 * forward-protocol/fwd_stream.h: a Forward or PackedForward /
 * CompressedPackedForward request decoded entry by entry as its bytes
 * arrive (docs/architecture.md, "Streamed requests"), for requests over
 * `stream_threshold`. The same entries, records and counts as fwd_decode on
 * the whole request (test/fuzz/fuzz_fwd_stream.c checks it), in batches of
 * about `batch_bytes`, holding at most one unfinished entry, one inflate
 * window and one batch, whatever the request's size.
 *
 * Pure like fwd_decode: no I/O, no globals. The caller keeps the bytes it has
 * not been told were used and passes them again, with more, on the next call.
 */
#ifndef WEIR_FWD_STREAM_H
#define WEIR_FWD_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "forward-protocol/fwd_decode.h"
#include "lib/wbuf.h"

enum {
    FWD_STREAM_MORE = 2, /* every byte it can use now is used: pass the rest again with more */
    FWD_STREAM_FULL = 3, /* `out` holds a batch's worth: hand it on, then call again */
    FWD_STREAM_NO = 4,   /* not a request that streams (Message mode, a heartbeat) */
};
/* FWD_OK: the request ended (its options read) at *used; FWD_CORRUPT: err in
 * fwd_stream_result()->err, nothing more to do with it. */

typedef struct fwd_stream fwd_stream;

/* Does the request starting at buf stream? FWD_OK (Forward or PackedForward,
 * its head complete), FWD_STREAM_MORE (head incomplete) or FWD_STREAM_NO. */
int fwd_stream_probe(const uint8_t *buf, size_t len);

fwd_stream *fwd_stream_new(const fwd_decode_opts *o, const fwd_peer *peer, size_t batch_bytes);
void fwd_stream_free(fwd_stream *s);
int fwd_stream_feed(fwd_stream *s, const uint8_t *p, size_t n, size_t *used, wbuf *out);
/* The request's result so far (records, invalid, ... ; at FWD_OK also tag,
 * chunk, signal). tag and chunk point into the stream. */
const fwd_result *fwd_stream_result(const fwd_stream *s);
/* Records appended to `out` since the last call (what the caller hands on). */
uint32_t fwd_stream_take(fwd_stream *s);
/* Request bytes used so far (for chunk_size_limit). */
uint64_t fwd_stream_consumed(const fwd_stream *s);
/* Bytes the stream holds besides `out` (inflate state and window), for the budget. */
size_t fwd_stream_footprint(const fwd_stream *s);
/* The bin began with the gzip or zstd magic bytes and is being inflated (the
 * options, which say `compressed`, come after the entries). Such a request
 * whose options do not say `compressed` is refused (FWD_CORRUPT), where
 * fwd_decode would read the compressed bytes as entries. */
int fwd_stream_inflating(const fwd_stream *s);

#endif
