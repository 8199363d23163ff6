/*
 * lib/wbuf.h: a growable byte buffer with a hard cap (curl's dynbuf
 * idea): appends fail with -1 instead of growing past `max`, so no input can
 * make weir allocate without bound. Owned by one thread at a time.
 */
#ifndef WEIR_WBUF_H
#define WEIR_WBUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct wbuf {
    uint8_t *data;
    size_t len, cap, max; /* max 0 = SIZE_MAX */
} wbuf;

int wbuf_grow(wbuf *b, size_t need); /* ensure cap >= len + need; -1 over max or OOM */

/* v in decimal at out (room for 20 digits, a sign for fmt_i64; no NUL):
 * its length. What "%llu" / "%lld" print, without printf's machinery (an
 * snprintf per number was 1.5 % of weir's CPU into Elasticsearch). */
size_t fmt_u64(char *out, uint64_t v);
size_t fmt_i64(char *out, int64_t v);

static inline int wbuf_add(wbuf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0; /* memcpy from/to NULL with n == 0 is still undefined */
    if (b->cap - b->len < n && wbuf_grow(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}
static inline int wbuf_addc(wbuf *b, uint8_t c)
{
    if (b->cap == b->len && wbuf_grow(b, 1) != 0)
        return -1;
    b->data[b->len++] = c;
    return 0;
}
static inline void wbuf_free(wbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
/* Take ownership of the bytes; the buffer is left empty. */
static inline uint8_t *wbuf_steal(wbuf *b, size_t *len)
{
    uint8_t *d = b->data;
    *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

/* msgpack writers (big-endian, smallest encoding). */
int mpw_array(wbuf *b, uint32_t n);
int mpw_map(wbuf *b, uint32_t n);
int mpw_str(wbuf *b, const void *s, size_t n);
int mpw_uint(wbuf *b, uint64_t v);
int mpw_int(wbuf *b, int64_t v);
int mpw_double(wbuf *b, double v);
int mpw_nil(wbuf *b);
int mpw_bool(wbuf *b, int v);
int mpw_eventtime(wbuf *b, uint32_t sec, uint32_t nsec); /* fixext8 type 0 */

/* A str whose length is known only once its bytes are written: the writer
 * leaves a gap for a header of a guessed size, writes the bytes after it,
 * then mpw_str_finish puts the right header in. */

/* The size of the smallest str header for n payload bytes. */
static inline size_t mpw_str_hdr_size(size_t n) { return n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5; }

/* That header (hs bytes, from mpw_str_hdr_size) at d. */
static inline void mpw_str_hdr_put(uint8_t *d, size_t n, size_t hs)
{
    if (hs == 1)
        d[0] = (uint8_t)(0xa0 | n);
    else if (hs == 2)
        d[0] = 0xd9, d[1] = (uint8_t)n;
    else if (hs == 3)
        d[0] = 0xda, d[1] = (uint8_t)(n >> 8), d[2] = (uint8_t)n;
    else
        d[0] = 0xdb, d[1] = (uint8_t)(n >> 24), d[2] = (uint8_t)(n >> 16), d[3] = (uint8_t)(n >> 8), d[4] = (uint8_t)n;
}

/* The str at b->data + off: a gap of hs bytes, then its n bytes. Writes the
 * smallest header there, moving the bytes when its size differs from hs, and
 * ends b at the str's end. The capacity must hold a larger header. */
static inline void mpw_str_finish(wbuf *b, size_t off, size_t hs, size_t n)
{
    size_t hn = mpw_str_hdr_size(n);
    if (hn != hs)
        memmove(b->data + off + hn, b->data + off + hs, n);
    mpw_str_hdr_put(b->data + off, n, hn);
    b->len = off + hn + n;
}

#endif
