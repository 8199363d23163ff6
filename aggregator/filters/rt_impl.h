/*
 * aggregator/filters/rt_impl.h: what record_transformer.c (templates,
 * compile, the per-record rewrite) and record_modifier.c (the plugin's own
 * rules: <replace>, allowlist_keys, char_encoding) share. Not for use
 * outside these two files.
 */
#ifndef WEIR_RT_IMPL_H
#define WEIR_RT_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "aggregator/filter.h"
#include "aggregator/record.h"
#include "aggregator/ruby_expr.h"

enum { PH_LIT, PH_TAG, PH_TAG_PART, PH_TAG_PREFIX, PH_TAG_SUFFIX, PH_HOST, PH_TIME, PH_RECORD, PH_NIL, PH_RUBY };

typedef struct tpart {
    int kind;
    char *lit; /* PH_LIT */
    size_t len;
    int32_t index; /* tag_* */
    rec_path path; /* PH_RECORD */
    rb_node *rb;   /* PH_RUBY: a Ruby expression (enable_ruby, record_modifier) */
    char *code;    /* PH_RUBY: its text, for messages */
} tpart;

typedef struct tstr {
    tpart *parts;
    size_t n;
    int dynamic; /* has placeholders */
    char *text;  /* static: the text */
    size_t text_len;
} tstr;

enum { TV_STR, TV_MAP, TV_ARRAY, TV_RAW };

typedef struct tval {
    int kind;
    int dynamic;
    tstr s;             /* TV_STR */
    struct tval *items; /* TV_MAP values, TV_ARRAY items */
    tstr *keys;         /* TV_MAP keys */
    size_t n;
    uint8_t *mp; /* static values: prebuilt msgpack */
    size_t mp_len;
} tval;

typedef struct rt_field {
    tstr key;
    tval val;
} rt_field;

/* record_modifier's <replace>: key, and the value as Ruby computes it:
 * record[key].match?(expression) ? record[key].gsub(expression, replace) : record[key] */
typedef struct rm_replace {
    char *key;
    rb_node *rb;
    char *code;
} rm_replace;

typedef struct rt_ctx {
    char **remove_keys;
    char **keep_keys;
    int renew_record;
    char *renew_time_key;
    int enable_ruby;
    int auto_typecast;
    /* compiled */
    rt_field *fields;
    size_t nfields;
    int dynamic;        /* some field needs per-record expansion */
    rec_kv *static_kv;  /* every field static: the pairs, prebuilt */
    rec_kv *drop;       /* top-level remove_keys */
    size_t ndrop;
    rec_path *allp; /* every remove_keys accessor (owned) */
    size_t nallp;
    rec_path *nested; /* the nested ones (shallow copies) */
    size_t nnested;
    char hostname[256];
    size_t hostname_len;
    /* record_modifier */
    int modifier;
    char **allowlist_keys, **whitelist_keys;
    char *char_encoding, *prepare_value;
    char **allow; /* allowlist_keys or whitelist_keys, when remove_keys is not set (not owned) */
    int enc_binary; /* char_encoding from a byte encoding to UTF-8: bytes >= 0x80 become U+FFFD */
    struct rm_replace *replaces; /* <replace> sections */
    size_t nreplaces;
} rt_ctx;

/* record_transformer.c */
int rt_compile(rt_ctx *c, conf_node *n, conf_errors *errs);
int rt_filter(filter *f, filter_call *call, const uint8_t *rec, size_t len);
void rt_exit(filter *f);

/* record_modifier.c: after the edits, on the map at out[start ..) */
int rm_replaces(const rt_ctx *c, filter_call *call, wbuf *out, size_t start, wbuf *sc);
int rm_post(const rt_ctx *c, wbuf *out, size_t start, wbuf *sc);

#endif
