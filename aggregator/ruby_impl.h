/*
 * aggregator/ruby_impl.h: the tree of a compiled Ruby expression, shared by
 * ruby_parse.c (which builds it) and ruby_eval.c (which walks it). See
 * ruby_expr.h.
 */
#ifndef WEIR_RUBY_IMPL_H
#define WEIR_RUBY_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/rx.h"
#include "aggregator/ruby_expr.h"

enum rb_kind {
    N_NIL, N_TRUE, N_FALSE, N_INT, N_FLOAT,
    N_STR,   /* s/n: a literal (ENV values are literals too) */
    N_DSTR,  /* kids: literal parts and expressions, concatenated as to_s */
    N_REGEX, /* re */
    N_VAR,   /* i: an rb_var */
    N_ARRAY, /* kids: the items */
    N_INDEX, /* kids[0][kids[1], ...] */
    N_CALL,  /* kids[0].method(kids[1], ...): i the rb_method, op 1 for &. */
    N_BIN,   /* kids[0] op kids[1]: op one of the characters below */
    N_NOT, N_NEG, N_AND, N_OR, N_TERN,
    N_TIME_NOW, N_TIME_AT,
    N_CONST, /* s/n: a value as msgpack (an instance variable of record_modifier's prepare_value) */
};

/* N_BIN's op: + - * / % < > == != =~ !~ <= >= as one byte each */
enum { OP_LE = 'l', OP_GE = 'g', OP_EQ = '=', OP_NE = '!', OP_MATCH = '~', OP_NMATCH = 'n' };

enum rb_var { VAR_RECORD, VAR_TAG, VAR_TIME, VAR_TAG_PARTS, VAR_TAG_PREFIX, VAR_TAG_SUFFIX, VAR_HOSTNAME };

/* the methods, one id per behaviour (aliases share one) */
enum rb_method {
    M_TO_S, M_TO_I, M_TO_F, M_INSPECT, M_TO_JSON, M_NILP, M_EMPTYP, M_LENGTH, M_BYTESIZE,
    M_UPCASE, M_DOWNCASE, M_CAPITALIZE, M_SWAPCASE, M_STRIP, M_LSTRIP, M_RSTRIP, M_CHOMP, M_REVERSE,
    M_INCLUDEP, M_KEYP, M_START_WITHP, M_END_WITHP, M_GSUB, M_SUB, M_SPLIT, M_MATCHP, M_SLICE,
    M_DIG, M_FETCH, M_KEYS, M_VALUES, M_FIRST, M_LAST, M_JOIN, M_ABS, M_ROUND, M_FLOOR, M_CEIL,
    M_ZEROP, M_STRFTIME, M_YEAR, M_MONTH, M_DAY, M_HOUR, M_MIN, M_SEC, M_USEC, M_NSEC, M_UTC,
    M_LOCALTIME, M_ISO8601, M_TO_A,
    M__COUNT
};

typedef struct rb_method_info {
    const char *name;
    uint8_t id, min_args, max_args;
} rb_method_info;
/* every name the parser accepts after '.', NULL-terminated (ruby_parse.c) */
extern const rb_method_info rb_methods[];
const char *rb_method_name(int id);

struct rb_node {
    uint8_t kind, op;
    int64_t i;
    double f;
    char *s;
    size_t n;
    rx *re;
    struct rb_node **kids;
    size_t nkids;
};

/* ---- evaluation (ruby_eval.c: values and operators; ruby_methods.c) ---- */

enum { V_NIL, V_FALSE, V_TRUE, V_INT, V_FLOAT, V_STR, V_MAP, V_ARY, V_RAW, V_TIME, V_LIST, V_RE };

/* A value: strings point into the record, the tree or the thread's arena;
 * V_MAP, V_ARY and V_RAW (an ext) are the record's msgpack bytes. */
typedef struct rv {
    uint8_t t, utc; /* utc: a V_TIME in UTC (else local time) */
    uint32_t sec, nsec;
    int64_t i;
    double f;
    const char *s; /* V_STR */
    size_t n;      /* V_STR bytes, V_MAP/V_ARY/V_RAW msgpack bytes, V_LIST items */
    const uint8_t *mp;
    struct rv *items; /* V_LIST */
    const rx *re;
} rv;

typedef struct rb_ev {
    const rb_env *env;
    char *err;
    size_t errlen;
} rb_ev;

/* the thread's scratch for one evaluation (NULL: out of memory) */
void *rb_alloc(size_t n);
/* a copy of s[0..n) plus a NUL, in the arena */
char *rb_strdup(const char *s, size_t n);
/* w's bytes copied to the arena, as a V_STR */
int rb_wstr(rb_ev *ev, const wbuf *w, rv *out);
/* -1 with the message in ev->err */
int rb_fail(rb_ev *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *rb_class(const rv *v);
/* NoMethodError for v.m */
int rb_no_method(rb_ev *ev, const char *m, const rv *v);

rv rb_from_mp(const uint8_t *v, size_t n);
/* arrays as V_LIST (a V_ARY's items converted); -1 on malformed msgpack */
int rb_list(rb_ev *ev, const rv *a, rv *out);
int rb_to_s(rb_ev *ev, const rv *v, wbuf *out);
int rb_inspect(rb_ev *ev, const rv *v, wbuf *out);
int rb_to_mp(rb_ev *ev, const rv *v, wbuf *out);
/* the text of v as a V_STR (to_s) in the arena */
int rb_str_of(rb_ev *ev, const rv *v, rv *out);
int rb_equal(const rv *a, const rv *b);
int rb_index(rb_ev *ev, const rv *recv, const rv *args, size_t nargs, rv *out);
int rb_call(rb_ev *ev, int method, const rv *recv, const rv *args, size_t nargs, rv *out);
int rb_regex_match(rb_ev *ev, const rv *s, const rv *re, rv *out);

static inline rv rv_int(int64_t i) { return (rv){.t = V_INT, .i = i}; }
static inline rv rv_float(double f) { return (rv){.t = V_FLOAT, .f = f}; }
static inline rv rv_bool(int b) { return (rv){.t = (uint8_t)(b ? V_TRUE : V_FALSE)}; }
static inline rv rv_str(const char *s, size_t n) { return (rv){.t = V_STR, .s = s, .n = n}; }

#endif
