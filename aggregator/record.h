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
 */
#ifndef WEIR_RECORD_H
#define WEIR_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "aggregator/wbuf.h"
#include "forward-protocol/mp.h"

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

/* Compile an accessor; -1 on syntax error (err filled). */
int rec_path_compile(rec_path *p, const char *text, char *err, size_t errlen);
void rec_path_free(rec_path *p);

/* Find the value at `path` in the record map [rec, rec+len). Returns a
 * pointer to the value's msgpack bytes and sets *vlen, or NULL. */
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

/* Keep only the keys in `keep` (NULL-terminated). */
int rec_keep(wbuf *out, const uint8_t *rec, size_t len, const char *const *keep);

#endif
