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

#endif
