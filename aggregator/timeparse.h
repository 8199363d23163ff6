/*
 * aggregator/timeparse.h: Fluentd's time parsing for <parse> (TimeParser and
 * NumericTimeParser), without Ruby:
 *   time_type string    strptime-like `time_format` (below), "%iso8601", or,
 *                       without a format, a subset of Ruby's Time.parse:
 *                       ISO 8601 / RFC 3339 (date, "T" or space, time,
 *                       fraction, zone), Apache "10/Oct/2000:13:55:36 -0700",
 *                       RFC 2822 "Tue, 10 Oct 2000 13:55:36 +0000", asctime
 *                       "Tue Oct 10 13:55:36 2000", syslog "Oct 10 13:55:36",
 *                       Apache error log "Nov 14 22:13:22.123456 2023".
 *   time_type unixtime  value.to_i (strings: Ruby's String#to_i)
 *   time_type float     "sec.frac" of value.to_s (Fluentd's own split)
 * Directives: %Y %C %y %m %d %e %j %H %k %I %l %M %S %p %P %b %B %h %a %A %z %Z
 * %s %Q %N %L %3N (any width) %T %D %F %R %r %n %t %%; a blank in the format
 * matches any run of blanks. Text after the format is ignored.
 * Zones: a zone in the text wins; else `utc`/`timezone` (UTC, a fixed
 * offset "+09:00", or a zone name "Europe/Paris": the offset at the
 * wall-clock time read as UTC, as Fluentd computes it), else local time (Fluentd's default localtime true).
 *
 * Immutable after init; reentrant.
 */
#ifndef WEIR_TIMEPARSE_H
#define WEIR_TIMEPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/tzfile.h"

enum { TP_STRING, TP_UNIXTIME, TP_FLOAT, TP_MIXED };
enum { TZ_LOCAL, TZ_UTC, TZ_FIXED };

typedef struct tparse {
    int type;
    char *format; /* NULL: flexible */
    int iso8601;  /* format "%iso8601" */
    int zone;
    int32_t offset; /* TZ_FIXED: seconds east of UTC */
    tz_zone *db;    /* TZ_FIXED with a zone name: the offset at each time */
    struct tparse *alts; /* TP_MIXED: time_format, then time_format_fallbacks, tried in order */
    size_t nalts;
} tparse;

/* timezone: NULL, "UTC", "Z", or a fixed offset "+09:00" / "+0900" / "-03".
 * Returns 0, or -1 with err. */
int tparse_init(tparse *t, int type, const char *format, int localtime, int utc, const char *timezone, char *err,
                size_t errlen);
void tparse_free(tparse *t);
/* time_type mixed (Fluentd's MixedTimeParser): `format` (may be NULL), then
 * each of `fallbacks` (NULL-terminated; "unixtime", "float" or a format),
 * the first that reads the value wins; the numeric ones only try values
 * that are numbers (Ruby's Float(value)), and both read them as `float`, as
 * Fluentd 1.16's does (its "unixtime" never matches :unixtime). 0, or -1 with err (none given). */
int tparse_init_mixed(tparse *t, const char *format, char *const *fallbacks, int localtime, int utc,
                      const char *timezone, char *err, size_t errlen);

/* Parse the time in a msgpack value. 0, or -1 with err (Fluentd's wording). */
int tparse_value(const tparse *t, const uint8_t *v, size_t vlen, uint32_t *sec, uint32_t *nsec, char *err,
                 size_t errlen);
/* Parse text (time_type string). 0 or -1. */
int tparse_text(const tparse *t, const char *s, size_t n, uint32_t *sec, uint32_t *nsec);

/* "+09:00", "+0900", "+09", "Z", "UTC", "GMT" -> seconds east. 0 or -1. */
int tz_offset(const char *s, size_t n, int32_t *off);
/* A `timezone` parameter (<parse>, <format>, <inject>): a fixed offset
 * (tz_offset) in *off, or a zone name of the TZ database ("Asia/Tokyo",
 * lib/tzfile.h) loaded into *db (free with tz_config_free). 0, or -1 with
 * the error. */
int tz_config(const char *tz, int32_t *off, tz_zone **db, char *err, size_t errlen);
void tz_config_free(tz_zone **db);
/* days_from_civil: lib/tzfile.h */

/* Ruby's String#to_i / #to_f on text (leading blanks, sign, underscores
 * between digits; no number -> 0). */
int64_t ruby_str_to_i(const char *s, size_t n);
double ruby_str_to_f(const char *s, size_t n);

#endif
