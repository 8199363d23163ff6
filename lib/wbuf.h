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

#endif
