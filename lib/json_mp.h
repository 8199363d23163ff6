/*
 * lib/json_mp.h: JSON text to msgpack, in one pass straight into a wbuf (no
 * intermediate tree, no allocation per field).
 *
 * RFC 8259 JSON; nesting deeper than JSON_MP_MAX_DEPTH fails. Strings keep
 * their bytes as they are (no UTF-8 check); \uXXXX escapes become UTF-8, a
 * surrogate pair one code point, a lone surrogate U+FFFD. A key seen twice
 * is written twice. Numbers: an integer that fits int64/uint64 is a msgpack
 * int, anything else (fraction, exponent, too many digits) a float64.
 *
 * Users: the <parse> section's json type and its `types` hash
 * (aggregator/parsers/json.c, aggregator/parse_conv.c); the logfmt parser
 * (aggregator/parsers/logfmt.c) shares the escape helpers at the end.
 */
#ifndef WEIR_LIB_JSON_MP_H
#define WEIR_LIB_JSON_MP_H

#include <stddef.h>
#include <stdint.h>

#include "lib/wbuf.h"

#define JSON_MP_MAX_DEPTH 128

/* One JSON value of any type, with only blanks around it, appended to out
 * as one msgpack value. 0, or -1 (not JSON, or out->max reached): out is
 * then left as it was. */
int json_mp(wbuf *out, const uint8_t *s, size_t n);

/*
 * ---- a cursor, for a converter that walks the top level itself -----------------------
 *
 * The <parse> json type (aggregator/parsers/json.c) walks the top-level
 * object with these, to look at each pair (time key, types) as it is
 * written, at no cost for the pairs it leaves alone. The writers do not
 * check capacity: json_mp_reserve makes room for the rest of the text (the
 * output of r bytes of JSON is at most 3r + 16 bytes), and must be called
 * again after the caller wrote through the checked wbuf API. On failure
 * (-1) the cursor and out->len are left wherever they were.
 */
typedef struct json_mp_cursor {
    const uint8_t *p, *e; /* the text still to read */
    wbuf *o;              /* written at o->len */
} json_mp_cursor;

static inline int json_mp_reserve(json_mp_cursor *j)
{
    size_t n = 3 * (size_t)(j->e - j->p) + 16;
    return j->o->cap - j->o->len >= n ? 0 : wbuf_grow(j->o, n);
}

/* Skip JSON blanks. */
static inline void json_mp_ws(json_mp_cursor *j)
{
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}

/* At the opening quote: a msgpack str; its bytes are o->data[*pay ..
 * *pay + *plen). */
int json_mp_string(json_mp_cursor *j, size_t *pay, size_t *plen);
/* An object member's key and its ':' (white space around skipped): the
 * key's string is written as json_mp_string writes it. 0, or -1. */
static inline int json_mp_key(json_mp_cursor *j, size_t *pay, size_t *plen)
{
    if (j->p >= j->e || *j->p != '"' || json_mp_string(j, pay, plen))
        return -1;
    json_mp_ws(j);
    if (j->p >= j->e || *j->p != ':')
        return -1;
    j->p++;
    json_mp_ws(j);
    return 0;
}
/* After a member or element: white space, then ',' (and the white space
 * after it: returns 1, another one follows) or the closing `close` ('}' or
 * ']': returns 0, the container ends); -1 on anything else. */
static inline int json_mp_next(json_mp_cursor *j, uint8_t close)
{
    json_mp_ws(j);
    if (j->p >= j->e)
        return -1;
    if (*j->p == ',') {
        j->p++;
        json_mp_ws(j);
        return 1;
    }
    if (*j->p == close) {
        j->p++;
        return 0;
    }
    return -1;
}
/* One value of any type; `depth` is its nesting level (the top level is
 * 0; containers deeper than JSON_MP_MAX_DEPTH fail). */
int json_mp_value(json_mp_cursor *j, int depth);
/* Write the header of a map (is_map) or array of n elements whose body
 * started at hoff + 1 (one byte was left for the header at hoff), moving
 * the body when the count needs a 3- or 5-byte header. */
int json_mp_close(json_mp_cursor *j, size_t hoff, uint32_t n, int is_map);

/* ---- building blocks for other text-to-msgpack converters ---------------------------- */

/* The byte a one-letter escape stands for: json_mp_unescape['n'] is '\n'
 * (likewise \" \\ \/ \b \f \r \t); 0 for every other letter. */
extern const uint8_t json_mp_unescape[256];

/* The code point of a \uXXXX escape (*p just after the 'u'), joining a
 * surrogate pair; a lone surrogate becomes U+FFFD. -1 (and *p unmoved) when
 * the four hex digits are not there. */
int json_mp_u_escape(const uint8_t **p, const uint8_t *e, uint32_t *cp);

/* cp as UTF-8 at d (room for 4 bytes); returns the bytes written. */
size_t json_mp_utf8_put(uint8_t *d, uint32_t cp);

#endif
