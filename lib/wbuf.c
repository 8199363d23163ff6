/* lib/wbuf.c: capped growable buffer and msgpack writers; see wbuf.h. */
#include "wbuf.h"

int wbuf_grow(wbuf *b, size_t need)
{
    size_t max = b->max ? b->max : SIZE_MAX;
    if (need > max - b->len)
        return -1;
    size_t want = b->len + need;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want)
        cap = cap > max / 2 ? max : cap * 2;
    if (cap < want)
        cap = want;
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

static int put_be(wbuf *b, uint8_t tag, uint64_t v, int bytes)
{
    uint8_t tmp[9];
    tmp[0] = tag;
    for (int i = 0; i < bytes; i++)
        tmp[1 + i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    return wbuf_add(b, tmp, (size_t)bytes + 1);
}

/* An array's or a map's header: fix|n, or the 16-bit format byte (the 32-bit
 * one follows it) and n. */
static int put_count(wbuf *b, uint8_t fix, uint8_t fmt16, uint32_t n)
{
    if (n < 16)
        return wbuf_addc(b, (uint8_t)(fix | n));
    if (n < 65536)
        return put_be(b, fmt16, n, 2);
    return put_be(b, (uint8_t)(fmt16 + 1), n, 4);
}

int mpw_array(wbuf *b, uint32_t n) { return put_count(b, 0x90, 0xdc, n); }
int mpw_map(wbuf *b, uint32_t n) { return put_count(b, 0x80, 0xde, n); }

int mpw_str(wbuf *b, const void *s, size_t n)
{
    int rc;
    if (n < 32)
        rc = wbuf_addc(b, (uint8_t)(0xa0 | n));
    else if (n < 256)
        rc = put_be(b, 0xd9, n, 1);
    else if (n < 65536)
        rc = put_be(b, 0xda, n, 2);
    else
        rc = put_be(b, 0xdb, n, 4);
    return rc ? rc : wbuf_add(b, s, n);
}

int mpw_uint(wbuf *b, uint64_t v)
{
    if (v < 128)
        return wbuf_addc(b, (uint8_t)v);
    if (v < 256)
        return put_be(b, 0xcc, v, 1);
    if (v < 65536)
        return put_be(b, 0xcd, v, 2);
    if (v <= 0xffffffffu)
        return put_be(b, 0xce, v, 4);
    return put_be(b, 0xcf, v, 8);
}

int mpw_int(wbuf *b, int64_t v)
{
    if (v >= 0)
        return mpw_uint(b, (uint64_t)v);
    if (v >= -32)
        return wbuf_addc(b, (uint8_t)(int8_t)v);
    if (v >= -128)
        return put_be(b, 0xd0, (uint8_t)(int8_t)v, 1);
    if (v >= -32768)
        return put_be(b, 0xd1, (uint16_t)(int16_t)v, 2);
    if (v >= INT32_MIN)
        return put_be(b, 0xd2, (uint32_t)(int32_t)v, 4);
    return put_be(b, 0xd3, (uint64_t)v, 8);
}

int mpw_double(wbuf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    return put_be(b, 0xcb, u, 8);
}

int mpw_nil(wbuf *b) { return wbuf_addc(b, 0xc0); }
int mpw_bool(wbuf *b, int v) { return wbuf_addc(b, v ? 0xc3 : 0xc2); }

int mpw_eventtime(wbuf *b, uint32_t sec, uint32_t nsec)
{
    uint8_t t[10] = {0xd7, 0x00,
                     (uint8_t)(sec >> 24), (uint8_t)(sec >> 16), (uint8_t)(sec >> 8), (uint8_t)sec,
                     (uint8_t)(nsec >> 24), (uint8_t)(nsec >> 16), (uint8_t)(nsec >> 8), (uint8_t)nsec};
    return wbuf_add(b, t, sizeof t);
}

size_t fmt_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[sizeof tmp - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(out, tmp + sizeof tmp - n, n);
    return n;
}

size_t fmt_i64(char *out, int64_t v)
{
    if (v >= 0)
        return fmt_u64(out, (uint64_t)v);
    out[0] = '-';
    return 1 + fmt_u64(out + 1, (uint64_t)0 - (uint64_t)v); /* INT64_MIN too */
}
