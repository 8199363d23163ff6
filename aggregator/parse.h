/*
 * aggregator/parse.h: Fluentd's <parse> section (parser plugins), producing
 * msgpack straight from text.
 *
 *   @type json     one JSON object -> one map (streaming converter, no
 *                  intermediate tree, no allocation per field)
 *   @type regexp   `expression` with named captures (?<name>...); unmatched
 *                  optional groups are left out (Ruby's MatchData)
 *   @type cri      "TIME STREAM LOGTAG LOG" (CRI container logs) ->
 *                  {"stream","logtag",message_key}; TIME is the event time
 *   @type logfmt   key=value key="quoted \"value\"" flag (Fluent Bit's logfmt)
 *   @type none     {message_key: text}
 *   @type ltsv     label:value pairs split by `delimiter` (or
 *                  `delimiter_pattern`) and `label_delimiter`; pairs without
 *                  the label delimiter are left out (parsers/ltsv.c)
 *   @type csv      the values of one CSV line under `keys`, as Ruby's
 *                  CSV.parse_line (`parser_engine normal`) or Fluentd's own
 *                  split (`fast`) (parsers/csv.c)
 *   @type grok     fluent-plugin-grok-parser: %{PATTERN:field:type} macros
 *                  over a built-in pattern library (parsers/grok_patterns.c)
 *                  and custom pattern files, one or several alternatives
 *                  (first match wins), each compiled once to one PCRE2 regexp
 *                  matched under a backtracking limit (parsers/grok.c)
 *
 * Common parameters (Fluentd's Parser and TimeMixin::Parser; parse.c's
 * parse_common_spec): time_key, time_type, time_format, localtime, utc,
 * timezone, keep_time_key, estimate_current_event, null_value_pattern,
 * null_empty_string, types. Each type's own (its plugin's spec): regexp:
 * expression, ignorecase, multiline; json: json_parser, stream_buffer_size
 * (accepted, ignored); cri, none: message_key; ltsv: delimiter,
 * delimiter_pattern, label_delimiter; csv: keys, delimiter, parser_engine
 * (parser_type); grok: grok_pattern, <grok>,
 * custom_pattern_path, grok_failure_key, grok_name_key, grok_pattern_series,
 * grok_match_limit, grok_depth_limit.
 *
 * A configured parser is immutable: parse_text may run on several threads.
 *
 * Files: parse.c (configuration, shared pair handling, dispatch),
 * parse_conv.c (`types`), parsers/<type>.c (one per type, behind
 * parse_impl.h); the JSON converter is lib/json_mp.c.
 */
#ifndef WEIR_PARSE_H
#define WEIR_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/rx.h"
#include "lib/wbuf.h"
#include "config/conf.h"
#include "aggregator/timeparse.h"

enum {
    PARSE_JSON, PARSE_REGEXP, PARSE_CRI, PARSE_LOGFMT, PARSE_NONE, PARSE_GROK, PARSE_LTSV, PARSE_CSV, PARSE_TSV,
    PARSE_SYSLOG, PARSE_MSGPACK
};

/* parse_text results */
enum {
    PARSE_OK = 0,
    PARSE_NOMATCH = -1, /* Fluentd yields (nil, nil): "pattern not matched" */
    PARSE_FAIL = -2,    /* Fluentd raises ParserError (e.g. a bad time): err says why */
    PARSE_BADUTF8 = -3, /* regexp on invalid UTF-8: Ruby's "invalid byte sequence in UTF-8" */
};

enum { CONV_STRING, CONV_INTEGER, CONV_FLOAT, CONV_BOOL, CONV_TIME, CONV_ARRAY };

typedef struct parse_conv {
    char *key;
    size_t key_len;
    int type;
    char *delim; /* CONV_ARRAY */
    tparse tp;   /* CONV_TIME */
} parse_conv;

typedef struct parser_plugin parser_plugin;

typedef struct parser {
    /* bound from <parse> */
    char *expression;
    int ignorecase, multiline;
    char *time_key;
    int keep_time_key;
    char *time_format;
    char *time_type;
    char **time_format_fallbacks; /* time_type mixed */
    int localtime, utc;
    char *timezone;
    char *null_value_pattern;
    int null_empty_string;
    char *types;
    char *message_key;
    int estimate_current_event;
    char *json_parser;
    int64_t stream_buffer_size; /* accepted, unused */
    char *grok_pattern, *custom_pattern_path, *grok_failure_key, *grok_name_key;
    int grok_pattern_series; /* 0 legacy, 1 ecs-v1 */
    int64_t grok_match_limit, grok_depth_limit;
    double grok_timeout; /* seconds */
    char *delimiter, *label_delimiter, *delimiter_pattern; /* ltsv, csv (no default: each type's own) */
    char **keys;                                           /* csv */
    int parser_engine, parser_type;                        /* csv: 1 fast (parser_type: its alias) */
    char *engine, *engine_alias;                           /* parser_engine, parser_type as written (csv, syslog) */
    int message_format, with_priority, support_colonless_ident; /* syslog */
    char *rfc5424_time_format;                             /* syslog */
    char *formatn[20], *format_firstline, *unmatched_lines; /* multiline: format1..format20 */
    /* compiled */
    const struct parser_plugin *plugin; /* the @type (aggregator/registry.c) */
    int type;                          /* plugin->type: PARSE_* */
    rx expr;
    rx_name *names;
    size_t nnames;
    int dupnames;
    const char *tkey; /* time key, or NULL */
    size_t tkey_len;
    tparse tp;
    rx nullrx;
    int has_nullrx;
    parse_conv *conv;
    size_t nconv;
    const char *mkey;
    size_t mkey_len;
    int convert; /* types, null_value_pattern or null_empty_string */
    int configured;
    void *impl; /* a type's own compiled state (grok: struct grok), freed by its plugin */
} parser;

/* Configure from a <parse> section; errors are "FILE:LINE: ..." in errs.
 * Returns 0 or -1. parse_free() is safe after a failure. */
int parse_configure(parser *p, conf_node *parse_section, conf_errors *errs);
void parse_free(parser *p);

/* Parse s[0..n) into ONE msgpack map appended to out_map. On success
 * *has_time says whether the text gave a time (or estimate_current_event
 * supplied the current time) in *sec, *nsec. On failure out_map is left as it
 * was and err (when not NULL) says why. */
int parse_text(const parser *p, const char *s, size_t n, wbuf *out_map, int *has_time, uint32_t *sec,
               uint32_t *nsec, char *err, size_t errlen);

/* parse_text that also reports where the top-level keys of the map it
 * wrote are (offsets into out_map->data), for callers that merge the map
 * into a record without reading it again. More than `cap` keys sets
 * `overflow`. */
typedef struct parse_keys {
    size_t *off;
    uint32_t *len;
    size_t cap, n;
    int overflow;
} parse_keys;
int parse_text_keys(const parser *p, const char *s, size_t n, wbuf *out_map, int *has_time, uint32_t *sec,
                    uint32_t *nsec, char *err, size_t errlen, parse_keys *keys);

/* What a parser counted since it was configured, for /metrics (a grok
 * parser's records over the match limit, and records no pattern matched).
 * 1 when the parser counts these (grok), else 0 (s zeroed). */
typedef struct parse_stats {
    uint64_t match_limit, unmatched;
} parse_stats;
int parse_stats_get(const parser *p, parse_stats *s);

/* Ruby's String#scrub('?'): each invalid UTF-8 sequence becomes '?'. */
int parse_scrub(wbuf *out, const uint8_t *s, size_t n);

#endif
