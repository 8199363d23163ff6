/*
 * aggregator/record.c: the msgpack building blocks of the record code (see
 * record.h): reading a string, skipping a value, map/array/str headers
 * written before their count or length is known. Accessors are
 * record_path.c, rewriting and deleting record_edit.c, values as text
 * record_text.c.
 */
#include "record.h"

#include "aggregator/record_impl.h"

/* ---- reading ---------------------------------------------------------------------------- */

int rec_read_str(const uint8_t **p, const uint8_t *end, const uint8_t **s, uint32_t *n)
{
    return rd_str(p, end, s, n);
}

int rec_read_pairs(const uint8_t **p, const uint8_t *end, rec_kv *kv, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *k, *v;
        uint32_t kn;
        if (rec_read_str(p, end, &k, &kn) != 1)
            return -1;
        v = *p;
        if (rec_skip(p, end) != 0)
            return -1;
        kv[i] = (rec_kv){(const char *)k, kn, v, (size_t)(*p - v)};
    }
    return 0;
}

/* Per first byte: the total length of values whose length the byte alone
 * tells (scalars, fixstr, and the headers of fixmap/fixarray), 0 for the
 * rest; and the children a fixmap/fixarray adds. */
static uint8_t skip_len[256], skip_add[256];

__attribute__((constructor)) static void skip_tables(void)
{
    for (int c = 0; c < 256; c++) {
        uint8_t l = 0, a = 0;
        if (c <= 0x7f || c >= 0xe0)
            l = 1;
        else if (c <= 0x8f)
            l = 1, a = (uint8_t)((c & 0x0f) * 2);
        else if (c <= 0x9f)
            l = 1, a = (uint8_t)(c & 0x0f);
        else if (c <= 0xbf)
            l = (uint8_t)((c & 0x1f) + 1);
        else
            switch (c) {
            case 0xc0: case 0xc2: case 0xc3: l = 1; break;
            case 0xcc: case 0xd0: l = 2; break;
            case 0xcd: case 0xd1: case 0xd4: l = 3; break;
            case 0xd5: l = 4; break;
            case 0xca: case 0xce: case 0xd2: l = 5; break;
            case 0xd6: l = 6; break;
            case 0xcb: case 0xcf: case 0xd3: l = 9; break;
            case 0xd7: l = 10; break;
            case 0xd8: l = 18; break;
            default: break;
            }
        skip_len[c] = l;
        skip_add[c] = a;
    }
}

/* Skip one complete value without recursion: `need` counts the objects
 * still to pass (an array adds n, a map 2n), so nesting costs no stack and
 * hostile counts just run out of bytes. */
int rec_skip(const uint8_t **pp, const uint8_t *end)
{
    const uint8_t *p = *pp;
    uint64_t need = 1;
    while (need) {
        if (p >= end)
            return -1;
        uint8_t c = *p;
        size_t avail = (size_t)(end - p), l;
        need--;
        if (c < 0xc0) { /* fixint, fixmap, fixarray, fixstr: no table load on the critical path */
            l = c >= 0xa0 ? (size_t)(c & 0x1f) + 1 : 1;
            if (avail < l)
                return -1;
            need += skip_add[c];
            p += l;
            continue;
        }
        l = skip_len[c];
        if (l) {
            if (avail < l)
                return -1;
            need += skip_add[c];
            p += l;
            continue;
        }
        switch (c) {
        case 0xc4:
        case 0xd9:
            if (avail < 2)
                return -1;
            l = 2 + (size_t)p[1];
            break;
        case 0xc5:
        case 0xda:
            if (avail < 3)
                return -1;
            l = 3 + (size_t)mp_be16(p + 1);
            break;
        case 0xc6:
        case 0xdb:
            if (avail < 5)
                return -1;
            l = 5 + (size_t)mp_be32(p + 1);
            break;
        case 0xc7:
            if (avail < 2)
                return -1;
            l = 3 + (size_t)p[1];
            break;
        case 0xc8:
            if (avail < 3)
                return -1;
            l = 4 + (size_t)mp_be16(p + 1);
            break;
        case 0xc9:
            if (avail < 5)
                return -1;
            l = 6 + (size_t)mp_be32(p + 1);
            break;
        case 0xdc:
            if (avail < 3)
                return -1;
            need += mp_be16(p + 1);
            l = 3;
            break;
        case 0xdd:
            if (avail < 5)
                return -1;
            need += mp_be32(p + 1);
            l = 5;
            break;
        case 0xde:
            if (avail < 3)
                return -1;
            need += (uint64_t)mp_be16(p + 1) * 2;
            l = 3;
            break;
        case 0xdf:
            if (avail < 5)
                return -1;
            need += (uint64_t)mp_be32(p + 1) * 2;
            l = 5;
            break;
        default: return -1; /* 0xc1 */
        }
        if (avail < l)
            return -1;
        p += l;
    }
    *pp = p;
    return 0;
}

/* ---- headers ----------------------------------------------------------------------- */

static uint8_t hdr_size(uint32_t n) { return n < 16 ? 1 : n < 65536 ? 3 : 5; }

static void hdr_put(uint8_t *d, int map, uint32_t n, uint8_t size)
{
    if (size == 1) {
        d[0] = (uint8_t)((map ? 0x80 : 0x90) | n);
    } else if (size == 3) {
        d[0] = map ? 0xde : 0xdc;
        d[1] = (uint8_t)(n >> 8);
        d[2] = (uint8_t)n;
    } else {
        d[0] = map ? 0xdf : 0xdd;
        d[1] = (uint8_t)(n >> 24);
        d[2] = (uint8_t)(n >> 16);
        d[3] = (uint8_t)(n >> 8);
        d[4] = (uint8_t)n;
    }
}

int rec_hdr_open(wbuf *out, rec_hdr *h, int map, uint32_t guess)
{
    h->off = out->len;
    h->size = hdr_size(guess);
    h->map = (uint8_t)(map != 0);
    if (out->cap - out->len < h->size && wbuf_grow(out, h->size))
        return -1;
    out->len += h->size;
    return 0;
}

int rec_hdr_close(wbuf *out, const rec_hdr *h, uint32_t count)
{
    uint8_t need = hdr_size(count);
    size_t body = h->off + h->size;
    size_t blen = out->len - body;
    if (need > h->size) {
        if (rec_reserve(out, need - h->size))
            return -1;
        memmove(out->data + h->off + need, out->data + body, blen);
    } else if (need < h->size) {
        memmove(out->data + h->off + need, out->data + body, blen);
    }
    out->len = h->off + need + blen;
    hdr_put(out->data + h->off, h->map, count, need);
    return 0;
}

int rec_str_open(wbuf *out, size_t *off)
{
    *off = out->len;
    if (out->cap - out->len < 2 && wbuf_grow(out, 2))
        return -1;
    out->len += 2; /* str8 guessed */
    return 0;
}

int rec_str_close(wbuf *out, size_t off)
{
    size_t n = out->len - off - 2, hs = mpw_str_hdr_size(n);
    if (hs > 2 && rec_reserve(out, hs - 2))
        return -1;
    mpw_str_finish(out, off, 2, n);
    return 0;
}
