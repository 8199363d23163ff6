/* lib/mp.c: allocation-free msgpack reader; see mp.h. */
#include "mp.h"

#include <string.h>

/* Bytes of header following the type byte, and payload-length field size,
 * for the variable-size types; resolved in mp_read. */
int mp_read(const uint8_t **pp, const uint8_t *end, mp_obj *o)
{
    const uint8_t *p = *pp;
    if (p >= end)
        return MP_SHORT;
    uint8_t c = *p++;
    size_t avail = (size_t)(end - p);
    uint32_t n;

    if (c <= 0x7f) {
        o->type = MP_UINT;
        o->v.u = c;
        goto done;
    }
    if (c >= 0xe0) {
        o->type = MP_INT;
        o->v.i = (int8_t)c;
        goto done;
    }
    if ((c & 0xf0) == 0x80) {
        o->type = MP_MAP;
        o->len = c & 0x0f;
        goto done;
    }
    if ((c & 0xf0) == 0x90) {
        o->type = MP_ARRAY;
        o->len = c & 0x0f;
        goto done;
    }
    if ((c & 0xe0) == 0xa0) {
        n = c & 0x1f;
        o->type = MP_STR;
        goto payload;
    }
    switch (c) {
    case 0xc0: o->type = MP_NIL; goto done;
    case 0xc2: o->type = MP_BOOL; o->v.b = 0; goto done;
    case 0xc3: o->type = MP_BOOL; o->v.b = 1; goto done;
    case 0xc4: case 0xc5: case 0xc6:
    case 0xd9: case 0xda: case 0xdb: {
        size_t lw = (c == 0xc4 || c == 0xd9) ? 1 : (c == 0xc5 || c == 0xda) ? 2 : 4;
        if (avail < lw)
            return MP_SHORT;
        n = lw == 1 ? p[0] : lw == 2 ? mp_be16(p) : mp_be32(p);
        p += lw;
        avail -= lw;
        o->type = c <= 0xc6 ? MP_BIN : MP_STR;
        goto payload;
    }
    case 0xc7: case 0xc8: case 0xc9: {
        size_t lw = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
        if (avail < lw + 1)
            return MP_SHORT;
        n = lw == 1 ? p[0] : lw == 2 ? mp_be16(p) : mp_be32(p);
        o->ext_type = (int8_t)p[lw];
        p += lw + 1;
        avail -= lw + 1;
        o->type = MP_EXT;
        goto payload;
    }
    case 0xca:
        if (avail < 4)
            return MP_SHORT;
        {
            uint32_t b = mp_be32(p);
            float f;
            memcpy(&f, &b, 4);
            o->type = MP_FLOAT;
            o->v.f = f;
        }
        p += 4;
        goto done;
    case 0xcb:
        if (avail < 8)
            return MP_SHORT;
        {
            uint64_t b = mp_be64(p);
            memcpy(&o->v.f, &b, 8);
            o->type = MP_FLOAT;
        }
        p += 8;
        goto done;
    case 0xcc: if (avail < 1) return MP_SHORT; o->type = MP_UINT; o->v.u = p[0]; p += 1; goto done;
    case 0xcd: if (avail < 2) return MP_SHORT; o->type = MP_UINT; o->v.u = mp_be16(p); p += 2; goto done;
    case 0xce: if (avail < 4) return MP_SHORT; o->type = MP_UINT; o->v.u = mp_be32(p); p += 4; goto done;
    case 0xcf: if (avail < 8) return MP_SHORT; o->type = MP_UINT; o->v.u = mp_be64(p); p += 8; goto done;
    /* Signed encodings: a non-negative value is reported as MP_UINT, as
     * msgpack-c does, so that no reader mistakes a positive int32/int64
     * (what Go's tinylib/msgp writes for an int64 field) for a negative
     * number. MP_INT always means v.i < 0. */
    case 0xd0: if (avail < 1) return MP_SHORT; o->v.i = (int8_t)p[0]; p += 1; goto sint;
    case 0xd1: if (avail < 2) return MP_SHORT; o->v.i = (int16_t)mp_be16(p); p += 2; goto sint;
    case 0xd2: if (avail < 4) return MP_SHORT; o->v.i = (int32_t)mp_be32(p); p += 4; goto sint;
    case 0xd3: if (avail < 8) return MP_SHORT; o->v.i = (int64_t)mp_be64(p); p += 8; goto sint;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        if (avail < 1)
            return MP_SHORT;
        n = 1u << (c - 0xd4);
        o->ext_type = (int8_t)p[0];
        p += 1;
        avail -= 1;
        o->type = MP_EXT;
        goto payload;
    case 0xdc: if (avail < 2) return MP_SHORT; o->type = MP_ARRAY; o->len = mp_be16(p); p += 2; goto done;
    case 0xdd: if (avail < 4) return MP_SHORT; o->type = MP_ARRAY; o->len = mp_be32(p); p += 4; goto done;
    case 0xde: if (avail < 2) return MP_SHORT; o->type = MP_MAP; o->len = mp_be16(p); p += 2; goto done;
    case 0xdf: if (avail < 4) return MP_SHORT; o->type = MP_MAP; o->len = mp_be32(p); p += 4; goto done;
    default:
        return MP_BAD; /* 0xc1, never used */
    }
sint:
    o->type = o->v.i < 0 ? MP_INT : MP_UINT; /* v.u and v.i share their bits */
    goto done;
payload:
    if (avail < n)
        return MP_SHORT;
    o->len = n;
    o->ptr = p;
    p += n;
done:
    *pp = p;
    return MP_OK;
}

int mp_skip(const uint8_t **pp, const uint8_t *end, int max_depth)
{
    return mp_skip_limits(pp, end, max_depth, 0, NULL);
}

int mp_skip_limits(const uint8_t **pp, const uint8_t *end, int max_depth, uint64_t max_str, int *exceeded)
{
    /* Iterative: a small explicit stack of remaining counts bounded by
     * max_depth, so hostile nesting cannot overflow the C stack. */
    uint64_t stack[64];
    int depth = 0;
    if (max_depth > 64)
        max_depth = 64;
    const uint8_t *p = *pp;
    uint64_t remaining = 1;
    for (;;) {
        while (remaining == 0) {
            if (depth == 0) {
                *pp = p;
                return MP_OK;
            }
            remaining = stack[--depth];
        }
        /* the one-byte headers inline (fixint, nil, bools, fixstr, fixmap, fixarray): most of a
         * record's objects; the rest, and every error, through mp_read below */
        if (p < end) {
            uint8_t c = *p;
            if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
                p++;
                remaining--;
                continue;
            }
            if ((c & 0xe0) == 0xa0) {
                size_t n = c & 0x1f;
                if ((size_t)(end - p) - 1 >= n && (!max_str || n <= max_str)) {
                    p += 1 + n;
                    remaining--;
                    continue;
                }
            } else if ((c & 0xe0) == 0x80 && (!(c & 0x0f) || depth < max_depth)) {
                p++;
                remaining--;
                if (c & 0x0f) {
                    stack[depth++] = remaining;
                    remaining = c < 0x90 ? (uint64_t)(c & 0x0f) * 2 : (uint64_t)(c & 0x0f);
                }
                continue;
            }
        }
        mp_obj o;
        int rc = mp_read(&p, end, &o);
        if (rc != MP_OK)
            return rc;
        remaining--;
        if (max_str && (o.type == MP_STR || o.type == MP_BIN) && o.len > max_str) {
            if (exceeded)
                *exceeded = MP_LIMIT_STRING;
            return MP_BAD;
        }
        if ((o.type == MP_ARRAY || o.type == MP_MAP) && o.len) {
            if (depth >= max_depth) {
                if (exceeded)
                    *exceeded = MP_LIMIT_DEPTH;
                return MP_BAD;
            }
            stack[depth++] = remaining;
            remaining = o.type == MP_MAP ? (uint64_t)o.len * 2 : o.len;
        }
    }
}

int mp_frame(mp_framer *f, const uint8_t *buf, size_t len)
{
    if (f->need == 0 && f->pos == 0)
        f->need = 1;
    while (f->need > 0 || f->skip > 0) {
        if (f->skip) {
            size_t avail = len - f->pos;
            if (avail < f->skip) {
                f->skip -= avail;
                f->pos = len;
                return MP_SHORT;
            }
            f->pos += f->skip;
            f->skip = 0;
            continue;
        }
        if (f->pos >= len)
            return MP_SHORT;
        /* Read only the header here; the payload of str/bin/ext is consumed
         * through `skip` so a huge blob is not re-examined on each read. */
        const uint8_t *p = buf + f->pos, *end = buf + len;
        uint8_t c = *p;
        size_t hdr;
        uint64_t payload = 0, children = 0;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            hdr = 1;
        } else if ((c & 0xf0) == 0x80) {
            hdr = 1;
            children = (uint64_t)(c & 0x0f) * 2;
        } else if ((c & 0xf0) == 0x90) {
            hdr = 1;
            children = c & 0x0f;
        } else if ((c & 0xe0) == 0xa0) {
            hdr = 1;
            payload = c & 0x1f;
        } else {
            switch (c) {
            case 0xc4: case 0xd9: hdr = 2; break;
            case 0xc5: case 0xda: hdr = 3; break;
            case 0xc6: case 0xdb: hdr = 5; break;
            case 0xc7: hdr = 3; break;
            case 0xc8: hdr = 4; break;
            case 0xc9: hdr = 6; break;
            case 0xca: hdr = 5; break;
            case 0xcb: hdr = 9; break;
            case 0xcc: case 0xd0: hdr = 2; break;
            case 0xcd: case 0xd1: hdr = 3; break;
            case 0xce: case 0xd2: hdr = 5; break;
            case 0xcf: case 0xd3: hdr = 9; break;
            case 0xd4: hdr = 3; break;
            case 0xd5: hdr = 4; break;
            case 0xd6: hdr = 6; break;
            case 0xd7: hdr = 10; break;
            case 0xd8: hdr = 18; break;
            case 0xdc: case 0xde: hdr = 3; break;
            case 0xdd: case 0xdf: hdr = 5; break;
            default: return MP_BAD;
            }
            if ((size_t)(end - p) < hdr)
                return MP_SHORT;
            switch (c) {
            case 0xc4: case 0xd9: payload = p[1]; break;
            case 0xc5: case 0xda: payload = mp_be16(p + 1); break;
            case 0xc6: case 0xdb: payload = mp_be32(p + 1); break;
            case 0xc7: payload = p[1]; break;
            case 0xc8: payload = mp_be16(p + 1); break;
            case 0xc9: payload = mp_be32(p + 1); break;
            case 0xdc: children = mp_be16(p + 1); break;
            case 0xdd: children = mp_be32(p + 1); break;
            case 0xde: children = (uint64_t)mp_be16(p + 1) * 2; break;
            case 0xdf: children = (uint64_t)mp_be32(p + 1) * 2; break;
            default: break;
            }
        }
        if ((size_t)(end - p) < hdr)
            return MP_SHORT;
        f->pos += hdr;
        f->need = f->need - 1 + children;
        f->skip = payload;
    }
    return MP_OK;
}
