/* lib/compress.c: gzip and zstd in one place; see compress.h. */
#include "lib/compress.h"

#include <stdio.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

int gz_compress(wbuf *out, const uint8_t *p, size_t n, int level)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level < 0 ? Z_DEFAULT_COMPRESSION : level > 9 ? 9 : level, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t bound = deflateBound(&z, (uLong)n) + 32;
    if (out->cap - out->len < bound && wbuf_grow(out, bound)) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    z.next_out = out->data + out->len;
    z.avail_out = (uInt)(out->cap - out->len);
    int rc = deflate(&z, Z_FINISH);
    if (rc == Z_STREAM_END)
        out->len += z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

int gz_decompress(const uint8_t *in, size_t len, wbuf *out, char *err, size_t errlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        snprintf(err, errlen, "gzip: inflateInit failed");
        return -1;
    }
    int ret = -1;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = 0;
    size_t consumed = 0;
    /* Fluentd gzips each buffer append separately: several members back to
     * back. Inflate member after member until the input is used up. */
    while (consumed < len) {
        size_t chunk = len - consumed > (1u << 30) ? (1u << 30) : len - consumed;
        z.next_in = (Bytef *)(uintptr_t)(in + consumed);
        z.avail_in = (uInt)chunk;
        int zr;
        do {
            if (out->cap - out->len < 65536 && wbuf_grow(out, out->len < 65536 ? 65536 : out->len) != 0 &&
                wbuf_grow(out, 4096) != 0) {
                snprintf(err, errlen, "decompressed size exceeds the limit of %zu bytes", out->max);
                goto out;
            }
            z.next_out = out->data + out->len;
            z.avail_out = (uInt)((out->cap - out->len) > (1u << 30) ? (1u << 30) : out->cap - out->len);
            size_t before = z.avail_out;
            zr = inflate(&z, Z_NO_FLUSH);
            out->len += before - z.avail_out;
            if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
                snprintf(err, errlen, "gzip: %s at compressed byte %zu", z.msg ? z.msg : "invalid data",
                         consumed + (chunk - z.avail_in));
                goto out;
            }
            if (zr == Z_BUF_ERROR && z.avail_in == 0)
                break;
        } while (zr != Z_STREAM_END);
        consumed += chunk - z.avail_in;
        if (zr != Z_STREAM_END) {
            if (consumed >= len) {
                snprintf(err, errlen, "gzip: truncated member");
                goto out;
            }
            continue;
        }
        if (consumed < len)
            inflateReset(&z);
    }
    ret = 0;
out:
    inflateEnd(&z);
    return ret;
}

int zstd_decompress(const uint8_t *in, size_t len, wbuf *out, char *err, size_t errlen)
{
    ZSTD_DStream *ds = ZSTD_createDStream();
    if (!ds) {
        snprintf(err, errlen, "zstd: out of memory");
        return -1;
    }
    int ret = -1;
    ZSTD_inBuffer ib = {in, len, 0};
    size_t zr = 0;
    while (ib.pos < ib.size) {
        if (out->cap - out->len < 65536 && wbuf_grow(out, out->len < 65536 ? 65536 : out->len) != 0 &&
            wbuf_grow(out, 4096) != 0) {
            snprintf(err, errlen, "decompressed size exceeds the limit of %zu bytes", out->max);
            goto out;
        }
        ZSTD_outBuffer ob = {out->data + out->len, out->cap - out->len, 0};
        zr = ZSTD_decompressStream(ds, &ob, &ib);
        out->len += ob.pos;
        if (ZSTD_isError(zr)) {
            snprintf(err, errlen, "zstd: %s at compressed byte %zu", ZSTD_getErrorName(zr), ib.pos);
            goto out;
        }
    }
    /* zr != 0: the last frame is incomplete; flush what is buffered, then fail */
    while (zr != 0) {
        if (out->cap - out->len < 65536 && wbuf_grow(out, 65536) != 0) {
            snprintf(err, errlen, "decompressed size exceeds the limit of %zu bytes", out->max);
            goto out;
        }
        ZSTD_outBuffer ob = {out->data + out->len, out->cap - out->len, 0};
        zr = ZSTD_decompressStream(ds, &ob, &ib);
        out->len += ob.pos;
        if (ZSTD_isError(zr) || ob.pos == 0) {
            snprintf(err, errlen, "zstd: truncated frame");
            goto out;
        }
    }
    ret = 0;
out:
    ZSTD_freeDStream(ds);
    return ret;
}
