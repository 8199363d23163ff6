/*
 * lib/compress.h: gzip and zstd, the one place weir compresses and
 * decompresses (outputs' gzip bodies and files, the forward input's
 * CompressedPackedForward). Snappy (Loki's push body) is called where it is
 * used: one call, no framing.
 */
#ifndef WEIR_LIB_COMPRESS_H
#define WEIR_LIB_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "lib/wbuf.h"

/* Append p[0..n) to out as one gzip member (RFC 1952). level: 1..9, or -1
 * for zlib's default. 0, or -1 (out of memory / out->max: out unchanged). */
int gz_compress(wbuf *out, const uint8_t *p, size_t n, int level);
/* Decompress a concatenation of gzip members / zstd frames; appends to out;
 * fails when the output would exceed out->max (a bomb guard). Returns 0 or
 * -1 (err set: "decompressed size exceeds the limit of N bytes" for the cap). */
int gz_decompress(const uint8_t *in, size_t len, wbuf *out, char *err, size_t errlen);
int zstd_decompress(const uint8_t *in, size_t len, wbuf *out, char *err, size_t errlen);

/* Streaming decompression in bounded steps (the forward input's streamed
 * CompressedPackedForward): the same acceptance as gz_decompress /
 * zstd_decompress (gzip members and zstd frames back to back), but the
 * caller owns both windows. */
typedef struct zinflate zinflate;
enum { ZINF_GZIP = 1, ZINF_ZSTD = 2 };
zinflate *zinf_new(int kind);
void zinf_free(zinflate *z);
/* Inflate from in[0..len) into out[0..cap): *in_used and *out_made say how
 * much. 0, or -1 (err set). Call with len 0 to flush what is buffered. */
int zinf_step(zinflate *z, const uint8_t *in, size_t len, size_t *in_used, uint8_t *out, size_t cap,
              size_t *out_made, char *err, size_t errlen);
/* After the last input (and flush steps that made nothing): 0 when the last
 * member/frame is complete, else -1 ("truncated"). */
int zinf_finish(zinflate *z, char *err, size_t errlen);
/* Bytes the decompressor holds (its state and window), for the memory budget. */
size_t zinf_footprint(int kind);

#endif
