/*
 * outputs/format.h: Fluentd's <format> and <inject> sections, shared by the
 * outputs that turn records into text (file, stdout; later es/loki/kafka).
 *
 * Formats: json (record as one JSON object), out_file (TIME<delim>TAG<delim>JSON,
 * out_file's default), stdout (out_stdout's "TIME TAG: JSON"), single_value
 * (the value of message_key), ltsv, msgpack (the record's msgpack bytes),
 * csv (the values of `fields` as one line of Ruby's CSV.generate_line).
 * Conversion works on msgpack directly (no intermediate objects): invalid
 * UTF-8 becomes U+FFFD, bin is written as a string under the same rule,
 * EventTime inside a record becomes float seconds, any other ext becomes the
 * base64 string of its payload, NaN/Infinity become null.
 *
 * A configured fmt is immutable and may be used by one thread at a time.
 */
#ifndef WEIR_FORMAT_H
#define WEIR_FORMAT_H

#include <stdint.h>

#include "lib/batch.h"
#include "lib/timefmt.h"
#include "lib/tzfile.h"
#include "lib/wbuf.h"
#include "config/conf.h"
#include "aggregator/record.h"

enum { FMT_JSON, FMT_OUT_FILE, FMT_STDOUT, FMT_SINGLE_VALUE, FMT_LTSV, FMT_MSGPACK, FMT_CSV, FMT_TSV, FMT_HASH };
enum { TT_FLOAT, TT_UNIXTIME, TT_STRING };

/* `timezone`: a fixed offset or a zone of the TZ database (db), which
 * wins over localtime/utc (Fluentd's TimeFormatter); zone: TIMEFMT_* of
 * lib/timefmt.h. */
typedef struct fmt_zone {
    int zone;
    int32_t off;
    tz_zone *db; /* a named zone: the offset at each time */
} fmt_zone;

typedef struct fmt_inject {
    char *time_key;
    int time_type;
    char *time_format;
    int localtime;
    int utc;
    char *timezone;
    fmt_zone tz;
    char *tag_key;
    char *hostname_key;
    char *hostname;
    char *metadata_key; /* weir extension: Fluent Bit per-event metadata */
    int active;
} fmt_inject;

enum { FMT_TIME_STRING, FMT_TIME_UNIXTIME, FMT_TIME_FLOAT };

typedef struct fmt {
    int type;
    /* out_file / stdout */
    char *delimiter;
    int output_tag, output_time;
    int time_type; /* FMT_TIME_* */
    char *time_format;
    int localtime, utc;
    char *timezone;
    fmt_zone tz;
    /* single_value */
    char *message_key;
    int add_newline;
    /* ltsv */
    char *label_delimiter;
    char *replacement; /* ltsv: replaces the delimiter inside values */
    /* csv */
    char **fields;
    int force_quotes;
    rec_path *csv_paths; /* the fields as record accessors ("$.a.b" nested) */
    size_t ncsv;
    /* tsv */
    char **keys;
    fmt_inject inj;
} fmt;

/* Read <format> and <inject> from the plugin section `n`. default_type is the
 * format used when there is no <format>. Returns 0 or -1 (errors added). */
int fmt_configure(fmt *f, conf_node *n, int default_type, conf_errors *errs);
void fmt_free(fmt *f);

/* <inject> alone (outputs without <format>, e.g. elasticsearch): read it
 * from the plugin section `n` (absent: inactive); 0 or -1 (errors added). */
int fmt_inject_configure(fmt_inject *in, conf_node *n, conf_errors *errs);
void fmt_inject_free(fmt_inject *in);
/* The record of e with the <inject> keys, as msgpack into out (existing
 * keys keep their place and take the injected value, new ones appended). */
int fmt_inject_mp(const fmt_inject *in, wbuf *out, const char *tag, size_t tag_len, const entry *e);

/* Append one formatted record (with its trailing newline where the format has one). */
int fmt_record(const fmt *f, wbuf *out, const char *tag, size_t tag_len, const entry *e);

/* The JSON writer is lib/json.h; time formatting lib/timefmt.h. */

#endif
