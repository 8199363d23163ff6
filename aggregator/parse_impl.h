/*
 * aggregator/parse_impl.h: the inside of the <parse> section (parse.h),
 * shared by the dispatcher and configuration (parse.c), the `types`
 * conversions (parse_conv.c) and the parse types, one file each under
 * aggregator/parsers/ (json, regexp with its presets and multiline, apache2, syslog, msgpack, cri, logfmt,
 * none, grok, ltsv, csv). Other code includes parse.h only.
 *
 * A parse type appends ONE map to c->o: it opens the map header, writes each
 * pair with parse_put_pair (or writes the pair itself and calls
 * parse_pair_done), sets c->body0 to where the pairs start, and closes the
 * header with c->count. parse_pair_done applies time_key, keep_time_key,
 * null_value_pattern, null_empty_string and types, and counts and notes the
 * pair. A type returns PARSE_OK or a PARSE_* failure; the dispatcher then
 * takes the time (or its error) and, on failure, takes the output back.
 */
#ifndef WEIR_PARSE_IMPL_H
#define WEIR_PARSE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "lib/rx.h"
#include "lib/wbuf.h"
#include "config/conf.h"
#include "aggregator/parse.h"

/* One parse_text call. */
typedef struct pctx {
    const parser *p;
    wbuf *o;
    uint32_t count;
    int has_time, time_err;
    uint32_t sec, nsec;
    parse_keys *keys;
    size_t body0; /* where the pairs started when the header was reserved */
    char terr[256];
} pctx;

static inline void parse_note_key(pctx *c, size_t kpay, size_t klen)
{
    parse_keys *k = c->keys;
    if (!k)
        return;
    if (k->n < k->cap) {
        k->off[k->n] = kpay - c->body0;
        k->len[k->n] = (uint32_t)klen;
        k->n++;
    } else {
        k->overflow = 1;
    }
}

/* A pair was written at o->data[pair_off..]: its key payload is
 * o->data[kpay..kpay+klen), its value starts at voff. Applies the time key
 * and the conversions. 0, or -1 (out of memory / record too large). */
int parse_pair_done(pctx *c, size_t pair_off, size_t kpay, size_t klen, size_t voff);
/* Append a pair with a string value (or nil when v is NULL). */
int parse_put_pair(pctx *c, const void *k, size_t kl, const void *v, size_t vl);

/* Pairs gathered before they are written, for the types whose keys may
 * repeat (ltsv, csv): parse_put_hash writes them as Ruby's Hash#[]= would
 * build them, a key seen again keeping its first place and taking the later
 * value. A value with p NULL is nil. */
typedef struct pspan {
    const uint8_t *p;
    size_t n;
} pspan;
typedef struct pspans {
    pspan *k, *v;
    size_t n, cap;
    pspan sk[32], sv[32];
} pspans;
void pspans_init(pspans *s);
int pspans_add(pspans *s, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl);
void pspans_free(pspans *s);
/* Open the map, write the pairs (Hash rules above), close it. PARSE_OK or PARSE_FAIL. */
int parse_put_hash(pctx *c, const pspans *s);

/* parse_conv.c: the `types` parameter. Configure p->conv from p->types
 * (errors at `at`); apply one conversion to the value at o->data[voff..]. */
int parse_conv_configure(parser *p, const conf_param *at, conf_errors *errs);
/* Append one conversion to p->conv: key (klen bytes) with def "type[:option]"
 * as in `types`; time conversions take p's localtime/utc/timezone. 0 or -1
 * (errors at `at`). */
int parse_conv_add(parser *p, const char *key, size_t klen, const char *def, const conf_param *at, conf_errors *errs);
int parse_conv_apply(const parse_conv *c, wbuf *o, size_t voff);

/* A <parse> type: aggregator/parsers/<type>.c, listed in aggregator/registry.c.
 * `type` (PARSE_*) selects the type-specific configuration in parse.c
 * (regexp's expression, json's numeric time). `spec` holds the parameters of
 * this type only (offsets into `parser`; NULL: none): parse_configure binds
 * them after parse_common_spec's. parse() turns one text into the record's
 * pairs in c; err is set only where the type has more to say than
 * PARSE_FAIL (regexp). Optional: configure (after the common parameters
 * are bound and compiled: time, types, null patterns; errors "FILE:LINE: ..."
 * in errs; 0 or -1) and free (of what configure made, e.g. p->impl; also
 * after a failed configure). */
struct parser_plugin {
    const char *name;
    int type;
    const conf_spec *spec;
    int (*parse)(pctx *c, const uint8_t *s, size_t n, char *err, size_t errlen);
    int (*configure)(parser *p, conf_node *n, conf_errors *errs);
    void (*free)(parser *p);
    int (*stats)(const parser *p, parse_stats *s); /* optional: parse_stats_get */
    /* presets of a regexp type (Fluentd's nginx, apache_error): used when not configured */
    const char *default_expression, *default_time_format;
    /* optional, a regexp type that builds its expression from other parameters (multiline): the
     * expression (malloc'd), or NULL with the errors added; called before it is compiled */
    char *(*expression)(parser *p, conf_node *n, conf_errors *errs);
};
const parser_plugin *const *parser_plugins(void);          /* NULL-terminated */
const parser_plugin *parser_plugin_find(const char *name); /* NULL: none */
const char *const *parser_plugin_names(void);

/* regexp.c: p's expression on s[0..n): PARSE_OK with *ov (valid until the thread's next match), or
 * PARSE_BADUTF8, PARSE_NOMATCH, PARSE_FAIL (err: the match limit). */
int parse_rx_exec(const parser *p, const uint8_t *s, size_t n, const PCRE2_SIZE **ov, char *err, size_t errlen);

/* parser_engine / parser_type as one of two values (csv.c): 0 for a (or not set), 1 for b, -1 with the error. */
int parse_engine_choice(parser *p, conf_node *n, const char *a, const char *b, conf_errors *errs);

/* The parameters every <parse> type takes (parse.c). */
extern const conf_spec parse_common_spec[];

#endif
