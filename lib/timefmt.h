/* lib/timefmt.h: formatting an event time as text. */
#ifndef WEIR_LIB_TIMEFMT_H
#define WEIR_LIB_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* strftime plus Fluentd's %N (nanoseconds), %L (milliseconds), %3N/%6N/%9N.
 * utc: 1 for UTC, 0 for local time (TZ). Returns the length, 0 if it does
 * not fit. */
size_t time_fmt(char *buf, size_t cap, const char *format, uint32_t sec, uint32_t nsec, int utc);
/* ISO 8601 like Ruby's Time#iso8601: "Z" for UTC, "+09:00" otherwise. */
size_t time_iso8601(char *buf, size_t cap, uint32_t sec, int utc);

#endif
