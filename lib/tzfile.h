/*
 * lib/tzfile.h: a zone of the TZ database (Asia/Tokyo, Europe/Paris) read
 * from its TZif file under $TZDIR or /usr/share/zoneinfo, for writing times
 * as Fluentd's `timezone Asia/Tokyo` does (TZInfo's utc_total_offset at
 * each time). The transitions of the file, then its POSIX TZ rule
 * ("CET-1CEST,M3.5.0,M10.5.0/3") for times after the last one.
 *
 * Immutable once loaded; tz_zone_offset is reentrant.
 */
#ifndef WEIR_LIB_TZFILE_H
#define WEIR_LIB_TZFILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct tz_rule_time {
    int kind; /* 'M' (month.week.day), 'J' (Julian day, no Feb 29), 'D' (zero-based day) */
    int m, w, d;
    int32_t secs; /* time of day */
} tz_rule_time;

typedef struct tz_zone {
    int64_t *trans; /* transition times (UTC) */
    uint8_t *idx;   /* the type from each transition on */
    int32_t *utoff; /* each type's offset, seconds east */
    size_t ntrans, ntypes;
    int32_t first; /* before the first transition */
    /* the POSIX rule */
    int has_rule, has_dst;
    int32_t std_off, dst_off; /* seconds east */
    tz_rule_time start, end;
} tz_zone;

/* Days since 1970-01-01 of a proleptic Gregorian date (month/day may overflow like Ruby's Time.local). */
int64_t days_from_civil(int64_t y, int m, int d);

/* Fluentd's zone names: "Area/Location" or "Area/Sub/Location" (TZInfo's
 * NAME_PATTERN). 1 or 0. */
int tz_zone_name(const char *name);
/* Load a zone. 0, or -1 with err ("unknown time zone 'X'"...). */
int tz_zone_load(tz_zone *z, const char *name, char *err, size_t errlen);
void tz_zone_free(tz_zone *z);
/* The offset, seconds east of UTC, at the UTC time t. */
int32_t tz_zone_offset(const tz_zone *z, int64_t t);

#endif
