/*
 * lib/json.h: the JSON writer. Turns msgpack values (lib/mp.h) into JSON the
 * way Fluentd's JSON formatter (Oj / Yajl) does: str as UTF-8 with invalid
 * sequences replaced, bin as a string, ext as base64, floats in Ruby's
 * shortest form. The string escaper copies clean runs 16 bytes at a time
 * (SSE2) since it is on every output's hot path.
 */
#ifndef WEIR_LIB_JSON_H
#define WEIR_LIB_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "lib/wbuf.h"

/* Append one msgpack value as JSON; advances *p. 0, or -1 (malformed input,
 * or out->max reached). */
int jw_value(wbuf *out, const uint8_t **p, const uint8_t *end);
/* Append one map key as a JSON string (a non-string key as its JSON text,
 * quoted, at most 256 bytes, as Ruby's to_json does); advances *p. */
int jw_key(wbuf *out, const uint8_t **p, const uint8_t *end);
/* jw_value for a value nested `depth` levels deep (a map's values: 1), for a caller that walks the map
 * itself; the same nesting limit as inside jw_value. */
int jw_value_at(wbuf *out, const uint8_t **p, const uint8_t *end, int depth);
/* Append s as a JSON string (with quotes), invalid UTF-8 replaced. */
int jw_string(wbuf *out, const uint8_t *s, size_t n);
/* Append a nil, bool or integer read by mp_read as its JSON text (null,
 * true, false, 42, -7: also Ruby's to_s but for nil); -1 for other types. */
struct mp_obj;
int jw_scalar(wbuf *out, const struct mp_obj *o);

#endif
