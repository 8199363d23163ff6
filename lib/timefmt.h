/* lib/timefmt.h: formatting an event time as text. */
#ifndef WEIR_LIB_TIMEFMT_H
#define WEIR_LIB_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* The zone a time is written in: local time (TZ), UTC, or a fixed offset
 * (Fluentd's `timezone +09:00`: Ruby's Time#localtime("+09:00")). */
enum { TIMEFMT_LOCAL, TIMEFMT_UTC, TIMEFMT_FIXED };

/* strftime plus Fluentd's %N (nanoseconds), %L (milliseconds), %3N/%6N/%9N,
 * and Ruby's %s (epoch seconds), %:z ("+09:00"), %Z ("UTC" in UTC, empty at
 * a fixed offset). utc: 1 for UTC, 0 for local time (TZ). Returns the
 * length, 0 if it does not fit. */
size_t time_fmt(char *buf, size_t cap, const char *format, uint32_t sec, uint32_t nsec, int utc);
/* time_fmt in a zone: TIMEFMT_*; off is the fixed offset in seconds east
 * of UTC (TIMEFMT_FIXED only). */
size_t time_fmt_zone(char *buf, size_t cap, const char *format, uint32_t sec, uint32_t nsec, int zone, int32_t off);
/* ISO 8601 like Ruby's Time#iso8601: "Z" for UTC, "+09:00" otherwise. */
size_t time_iso8601(char *buf, size_t cap, uint32_t sec, int utc);
size_t time_iso8601_zone(char *buf, size_t cap, uint32_t sec, int zone, int32_t off);

#endif
