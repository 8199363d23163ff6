/* lib/compress.c: gzip and zstd in one place; see compress.h. */
#include "lib/compress.h"

#include <stdio.h>
#include <stdlib.h>
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

/* ---- streaming ------------------------------------------------------------------ */

struct zinflate {
    int kind;
    z_stream z;
    ZSTD_DStream *ds;
    int in_member;   /* gzip: a member started and has not ended */
    size_t zr;       /* zstd: the last hint (0: a frame just ended) */
    uint64_t seen;   /* compressed bytes consumed, for messages */
};

zinflate *zinf_new(int kind)
{
    zinflate *z = calloc(1, sizeof *z);
    if (!z)
        return NULL;
    z->kind = kind;
    if (kind == ZINF_GZIP) {
        if (inflateInit2(&z->z, 16 + MAX_WBITS) != Z_OK) {
            free(z);
            return NULL;
        }
    } else if (!(z->ds = ZSTD_createDStream())) {
        free(z);
        return NULL;
    }
    return z;
}

void zinf_free(zinflate *z)
{
    if (!z)
        return;
    if (z->kind == ZINF_GZIP)
        inflateEnd(&z->z);
    else
        ZSTD_freeDStream(z->ds);
    free(z);
}

size_t zinf_footprint(int kind) { return kind == ZINF_GZIP ? (size_t)(48u << 10) : (size_t)(2176u << 10); }

int zinf_step(zinflate *z, const uint8_t *in, size_t len, size_t *in_used, uint8_t *out, size_t cap,
              size_t *out_made, char *err, size_t errlen)
{
    *in_used = *out_made = 0;
    if (z->kind == ZINF_ZSTD) {
        ZSTD_inBuffer ib = {in, len, 0};
        ZSTD_outBuffer ob = {out, cap, 0};
        if (len == 0 && z->zr == 0)
            return 0;
        size_t zr = ZSTD_decompressStream(z->ds, &ob, &ib);
        *in_used = ib.pos;
        *out_made = ob.pos;
        z->seen += ib.pos;
        if (ZSTD_isError(zr)) {
            snprintf(err, errlen, "zstd: %s at compressed byte %llu", ZSTD_getErrorName(zr), (unsigned long long)z->seen);
            return -1;
        }
        z->zr = zr;
        return 0;
    }
    /* gzip: member after member, as gz_decompress */
    if (len == 0)
        return 0;
    if (!z->in_member && z->seen > 0)
        inflateReset(&z->z);
    z->in_member = 1;
    z->z.next_in = (Bytef *)(uintptr_t)in;
    z->z.avail_in = (uInt)(len > (1u << 30) ? (1u << 30) : len);
    z->z.next_out = out;
    z->z.avail_out = (uInt)(cap > (1u << 30) ? (1u << 30) : cap);
    uInt before_in = z->z.avail_in, before_out = z->z.avail_out;
    int zr = inflate(&z->z, Z_NO_FLUSH);
    *in_used = before_in - z->z.avail_in;
    *out_made = before_out - z->z.avail_out;
    z->seen += *in_used;
    if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR) {
        snprintf(err, errlen, "gzip: %s at compressed byte %llu", z->z.msg ? z->z.msg : "invalid data",
                 (unsigned long long)z->seen);
        return -1;
    }
    if (zr == Z_STREAM_END)
        z->in_member = 0;
    return 0;
}

int zinf_finish(zinflate *z, char *err, size_t errlen)
{
    if (z->kind == ZINF_ZSTD ? z->zr != 0 : z->in_member) {
        snprintf(err, errlen, z->kind == ZINF_ZSTD ? "zstd: truncated frame" : "gzip: truncated member");
        return -1;
    }
    return 0;
}
