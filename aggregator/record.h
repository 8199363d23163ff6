/*
 * aggregator/record.h: reading and rewriting msgpack records (maps) in
 * place, without decoding them into objects: filters work on msgpack, never
 * through JSON.
 *
 * Record accessors follow Fluentd's record_accessor syntax:
 *   "log"                    top-level key
 *   "$.kubernetes.namespace_name"   nested keys
 *   "$['kubernetes']['labels']['app.kubernetes.io/name']"   keys with dots
 *   "$.items[0].name"        array index
 * Compiled once at configuration time (rec_path), evaluated per record.
 *
 * Thread safety: compiled paths are immutable; all functions are reentrant.
 *
 * Files: record_path.c (accessors: compile, lookup), record_text.c (a value
 * as text), record_edit.c (rewrite, keep, delete), record.c (the msgpack
 * building blocks: skip, read a string, headers); record_impl.h holds the
 * inline readers they share.
 */
#ifndef WEIR_RECORD_H
#define WEIR_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "lib/mp.h"
#include "lib/wbuf.h"

typedef struct rec_path_step {
    const char *key; /* NULL for an array index */
    size_t key_len;
    uint32_t index;
} rec_path_step;

typedef struct rec_path {
    rec_path_step *steps;
    size_t n;
    char *text; /* as configured, for messages */
} rec_path;

/* The integer of a placeholder index ("-12", "3"; at most 9 digits):
 * 0 with *v, or -1. canonical: Fluentd's placeholder keys are the canonical
 * integers, so "01" and "-0" are not indexes. */
int rec_parse_index(const char *s, size_t n, int canonical, int32_t *v);

/* Compile an accessor; -1 on syntax error (err filled). */
int rec_path_compile(rec_path *p, const char *text, char *err, size_t errlen);
void rec_path_free(rec_path *p);
/* Free the n paths of the array v, then v (malloc'd). */
void rec_paths_free(rec_path *v, size_t n);

/* Find the value at `path` in the record map [rec, rec+len). Returns a
 * pointer to the value's msgpack bytes and sets *vlen, or NULL. A map with
 * the same key twice: the first one is found. A negative index counts from
 * the end of the array (Ruby's a[-1]). */
const uint8_t *rec_lookup(const uint8_t *rec, size_t len, const rec_path *path, size_t *vlen);
/* Top-level key lookup. */
const uint8_t *rec_get(const uint8_t *rec, size_t len, const char *key, size_t key_len, size_t *vlen);

/* A value as text for matching/printing: strings as they are (no quotes),
 * numbers/bools/nil as their JSON text, maps/arrays as JSON. Appends to out. */
int rec_value_text(wbuf *out, const uint8_t *v, size_t vlen);

/*
 * Rewrite a record into `out` (appends one map): the pairs of `rec` minus the
 * keys in `drop` (NULL-terminated, may be NULL), with `set` applied like
 * Ruby's Hash#merge: a key that exists keeps its position and takes the new
 * value, new keys are appended in `set` order.
 */
typedef struct rec_kv {
    const char *key;
    size_t key_len;
    const uint8_t *val; /* msgpack value bytes */
    size_t val_len;
} rec_kv;
int rec_rewrite(wbuf *out, const uint8_t *rec, size_t len, const char *const *drop, const rec_kv *set, size_t nset);

/* Keep only the keys in `keep` (NULL-terminated), in `keep` order (like
 * record_transformer's keep_keys: new_record[k] = record[k] for each k). */
int rec_keep(wbuf *out, const uint8_t *rec, size_t len, const char *const *keep);

/* ---- additions used by the filters ------------------------------------------ */

/* The n pairs of a map's body at *p (after its header) into kv[0 .. n), for
 * rec_rewrite_n's `set`. 0, or -1 (a key that is not a string, or malformed
 * input). */
int rec_read_pairs(const uint8_t **p, const uint8_t *end, rec_kv *kv, uint32_t n);

/* rec_rewrite with counted keys to drop (only key/key_len of `drop` used). */
int rec_rewrite_n(wbuf *out, const uint8_t *rec, size_t len, const rec_kv *drop, size_t ndrop, const rec_kv *set,
                  size_t nset);

/* Delete the values at `paths` (Fluentd's record_accessor delete: a nested
 * key from its map, an index from its array; a path that does not resolve
 * deletes nothing). Appends one map to out. Returns 1 if something was
 * removed, 0 if not (out then holds a copy), -1 on malformed input. */
int rec_delete(wbuf *out, const uint8_t *rec, size_t len, const rec_path *paths, size_t npaths);

/* Set the value at `path` (keys only: -1 for a path with an array index)
 * to the msgpack value [val, val+vlen), Fluentd's record_accessor set: a key
 * that exists keeps its place, a missing one is appended, missing or
 * non-map parents become maps ({"a": 1} with $.a.b = 2: {"a": {"b": 2}}).
 * Appends one map to out. 0, or -1 (malformed record, out unchanged). */
int rec_set_path(wbuf *out, const uint8_t *rec, size_t len, const rec_path *path, const uint8_t *val, size_t vlen);

/* Ruby's Float#to_s: shortest round-trip digits, "1.0", "1.0e+16",
 * "1.0e-05", "NaN", "Infinity". Returns the length written (< 32). */
size_t rec_double_text(char buf[32], double d);

/* Ruby's to_s of a value (what "#{value}" prints): like rec_value_text but
 * nil is "" (maps/arrays are JSON, not Ruby's inspect). */
int rec_value_to_s(wbuf *out, const uint8_t *v, size_t vlen);

/* wbuf_add that accepts n == 0 on a buffer that has no storage yet
 * (memcpy to NULL + 0 is undefined). */
static inline int rec_add(wbuf *b, const void *p, size_t n) { return n ? wbuf_add(b, p, n) : 0; }

/* Make room for n more bytes; unlike wbuf_grow, no realloc when there is. */
static inline int rec_reserve(wbuf *b, size_t n) { return b->cap - b->len >= n ? 0 : wbuf_grow(b, n); }

/* Skip one complete value (any nesting, no recursion). 0, or -1 if malformed. */
int rec_skip(const uint8_t **p, const uint8_t *end);

/* Read a string (str or bin) value at *p; returns 1 (advancing *p) with
 * s/n set, 0 if the value is another type (*p not advanced), -1 if malformed. */
int rec_read_str(const uint8_t **p, const uint8_t *end, const uint8_t **s, uint32_t *n);

/* A map/array header whose count is known only at the end: open reserves
 * the encoding for `guess`, close writes the real count (moving the body
 * when the encoding size differs) so the result is always the smallest
 * encoding. */
typedef struct rec_hdr {
    size_t off;
    uint8_t size, map;
} rec_hdr;
int rec_hdr_open(wbuf *out, rec_hdr *h, int map, uint32_t guess);
int rec_hdr_close(wbuf *out, const rec_hdr *h, uint32_t count);
/* The same for a str whose bytes are appended after open: close writes the
 * smallest str header for what was appended since. */
int rec_str_open(wbuf *out, size_t *off);
int rec_str_close(wbuf *out, size_t off);

#endif
