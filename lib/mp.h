/*
 * lib/mp.h: a small, allocation-free msgpack reader.
 *
 * Why not msgpack-c's unpacker on the hot path: it builds an object tree in a
 * zone for every request, which costs more than the rest of the pipeline put
 * together at millions of records/s. weir mostly needs to *validate and skip*
 * (find where a record starts and ends, check it is a map) and to read a few
 * scalars (tag, time, option values). mp_* does exactly that on a byte range,
 * never reading past `end`, never allocating. Messages are built with the
 * writers in lib/wbuf.h (mpw_*).
 *
 * Every function takes a cursor `const uint8_t **p` and an `end`; on success
 * it advances *p. Return values: MP_OK, MP_SHORT (need more bytes: *p not
 * advanced), MP_BAD (not valid msgpack, e.g. 0xc1; *p not advanced).
 */
#ifndef WEIR_MP_H
#define WEIR_MP_H

#include <stddef.h>
#include <stdint.h>

enum { MP_OK = 0, MP_SHORT = -1, MP_BAD = -2 };

typedef enum {
    MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_FLOAT, MP_STR, MP_BIN, MP_ARRAY, MP_MAP, MP_EXT
} mp_type;

/* Integers: MP_UINT for every non-negative value, whatever its encoding
 * (positive fixint, uint8-64, and int8-64 holding a value >= 0); MP_INT only
 * for a negative value (v.i < 0). Readers test the type, never the byte. */

/* One decoded header. For STR/BIN/EXT, `ptr`/`len` is the payload (already
 * bounds-checked); for ARRAY/MAP `len` is the element/pair count. */
typedef struct mp_obj {
    mp_type type;
    int8_t ext_type;
    uint32_t len;
    const uint8_t *ptr;
    union {
        uint64_t u;
        int64_t i;
        double f;
        int b;
    } v;
} mp_obj;

/* Read one header (and, for scalars/str/bin/ext, the whole value). */
int mp_read(const uint8_t **p, const uint8_t *end, mp_obj *o);
/* Skip one complete object including nested ones; `max_depth` bounds nesting
 * (MP_BAD when exceeded). */
int mp_skip(const uint8_t **p, const uint8_t *end, int max_depth);
/* mp_skip that also refuses a str/bin longer than max_str bytes (0: no
 * limit). On MP_BAD caused by a limit, *exceeded (if not NULL) is set to
 * MP_LIMIT_DEPTH or MP_LIMIT_STRING; it is left alone for invalid bytes. */
enum { MP_LIMIT_DEPTH = 1, MP_LIMIT_STRING = 2 };
int mp_skip_limits(const uint8_t **p, const uint8_t *end, int max_depth, uint64_t max_str, int *exceeded);

/*
 * Resumable framer: finds where one top-level object ends in a stream that
 * arrives in pieces, without re-scanning from the start on every read (a
 * 256 MiB request arriving in 64 KiB reads must stay O(n)). It needs no
 * stack: `need` counts objects still to be consumed; an array adds n, a map
 * 2n. `skip` is payload bytes of a str/bin/ext still to come.
 */
typedef struct mp_framer {
    uint64_t need; /* 0 = not inside an object */
    uint64_t skip;
    size_t pos; /* bytes of the current object consumed so far */
} mp_framer;

/* Feed the bytes buf[f->pos .. len) (buf starts at the object's first byte).
 * Returns MP_OK when an object is complete (its size is f->pos; reset the
 * framer before the next), MP_SHORT when more bytes are needed, MP_BAD on a
 * byte that can never start an object. */
int mp_frame(mp_framer *f, const uint8_t *buf, size_t len);
static inline void mp_framer_reset(mp_framer *f) { f->need = f->skip = 0; f->pos = 0; }

/* An integer or a float read by mp_read as a double: 1 with *d set, or 0
 * (*d untouched) for any other type. */
static inline int mp_number(const mp_obj *o, double *d)
{
    switch (o->type) {
    case MP_UINT: *d = (double)o->v.u; return 1;
    case MP_INT: *d = (double)o->v.i; return 1;
    case MP_FLOAT: *d = o->v.f; return 1;
    default: return 0;
    }
}

/* Big-endian helpers. */
static inline uint16_t mp_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t mp_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t mp_be64(const uint8_t *p) { return (uint64_t)mp_be32(p) << 32 | mp_be32(p + 4); }

/* The writers are in lib/wbuf.h (mpw_*). */

#endif
