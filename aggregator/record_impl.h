/*
 * aggregator/record_impl.h: the small msgpack readers every part of the
 * record code shares (record.c, record_path.c, record_edit.c), inline
 * because they run per key of every record. Other code includes record.h.
 */
#ifndef WEIR_RECORD_IMPL_H
#define WEIR_RECORD_IMPL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lib/mp.h"
#include "aggregator/record.h"

#define REC_DEPTH 512

/* A str or bin at *p: 1 (advancing *p) with s/n set, 0 if another type (*p
 * not advanced), -1 if malformed. */
static inline int rd_str(const uint8_t **p, const uint8_t *end, const uint8_t **s, uint32_t *n)
{
    const uint8_t *q = *p;
    if (q >= end)
        return -1;
    uint8_t c = *q;
    uint32_t len;
    size_t h;
    if ((c & 0xe0) == 0xa0) {
        len = c & 0x1f;
        h = 1;
    } else if (c == 0xd9 || c == 0xc4) {
        if (end - q < 2)
            return -1;
        len = q[1];
        h = 2;
    } else if (c == 0xda || c == 0xc5) {
        if (end - q < 3)
            return -1;
        len = mp_be16(q + 1);
        h = 3;
    } else if (c == 0xdb || c == 0xc6) {
        if (end - q < 5)
            return -1;
        len = mp_be32(q + 1);
        h = 5;
    } else {
        return 0;
    }
    if ((size_t)(end - q) - h < len)
        return -1;
    *s = q + h;
    *n = len;
    *p = q + h + len;
    return 1;
}

static inline int skip_val(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *q = *p;
    if (q < end) { /* the common scalars inline */
        uint8_t c = *q;
        if (c < 0x80 || c >= 0xe0 || (c >= 0xc0 && c <= 0xc3 && c != 0xc1)) {
            *p = q + 1;
            return 0;
        }
        if ((c & 0xe0) == 0xa0) {
            size_t l = (size_t)(c & 0x1f) + 1;
            if ((size_t)(end - q) < l)
                return -1;
            *p = q + l;
            return 0;
        }
        if (c == 0xd9 && end - q >= 2) {
            size_t l = (size_t)q[1] + 2;
            if ((size_t)(end - q) < l)
                return -1;
            *p = q + l;
            return 0;
        }
        if (c == 0xcb && end - q >= 9) {
            *p = q + 9;
            return 0;
        }
    }
    return rec_skip(p, end);
}

/* A map header at *p: the pair count, advancing *p; -1 if not a map. */
static inline int64_t map_hdr(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *q = *p;
    if (q >= end)
        return -1;
    if ((*q & 0xf0) == 0x80) {
        *p = q + 1;
        return *q & 0x0f;
    }
    if (*q == 0xde && end - q >= 3) {
        *p = q + 3;
        return mp_be16(q + 1);
    }
    if (*q == 0xdf && end - q >= 5) {
        *p = q + 5;
        return mp_be32(q + 1);
    }
    return -1;
}

static inline int key_is(const uint8_t *k, uint32_t kn, const char *s, size_t sn)
{
    return kn == sn && memcmp(k, s, sn) == 0;
}

#endif
