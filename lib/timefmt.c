/* lib/timefmt.c: time formatting with Fluentd's sub-second directives; see timefmt.h. */
#include "lib/timefmt.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

size_t time_fmt_zone(char *buf, size_t cap, const char *format, uint32_t sec, uint32_t nsec, int zone, int32_t off)
{
    time_t t = (time_t)sec;
    struct tm tm;
    if (zone == TIMEFMT_FIXED) {
        t += off;
        gmtime_r(&t, &tm);
        tm.tm_gmtoff = off; /* strftime's %z */
        tm.tm_zone = "";
    } else if (zone == TIMEFMT_UTC) {
        gmtime_r(&t, &tm);
    } else {
        localtime_r(&t, &tm);
    }
    /* Expand Fluentd's sub-second directives and Ruby's %s, %:z, %Z first,
     * then strftime the rest. */
    char f2[256];
    size_t j = 0;
    for (const char *s = format; *s && j + 24 < sizeof f2; s++) {
        if (s[0] == '%' && (s[1] == 'L' || s[1] == 'N' || (s[1] >= '1' && s[1] <= '9' && s[2] == 'N'))) {
            int digits = s[1] == 'L' ? 3 : s[1] == 'N' ? 9 : s[1] - '0';
            uint32_t v = nsec;
            for (int d = 9; d > digits; d--)
                v /= 10;
            j += (size_t)snprintf(f2 + j, sizeof f2 - j, "%0*u", digits, v);
            s += (s[1] == 'L' || s[1] == 'N') ? 1 : 2;
        } else if (s[0] == '%' && s[1] == 's') {
            j += (size_t)snprintf(f2 + j, sizeof f2 - j, "%u", sec);
            s++;
        } else if (s[0] == '%' && s[1] == ':' && s[2] == 'z') {
            long g = tm.tm_gmtoff, a = g < 0 ? -g : g;
            j += (size_t)snprintf(f2 + j, sizeof f2 - j, "%c%02ld:%02ld", g < 0 ? '-' : '+', a / 3600, a / 60 % 60);
            s += 2;
        } else if (s[0] == '%' && s[1] == 'Z' && zone != TIMEFMT_LOCAL) {
            if (zone == TIMEFMT_UTC)
                j += (size_t)snprintf(f2 + j, sizeof f2 - j, "UTC");
            s++;
        } else if (s[0] == '%' && s[1] == '%') {
            f2[j++] = '%';
            f2[j++] = '%';
            s++;
        } else {
            f2[j++] = *s;
        }
    }
    f2[j] = 0;
    if (!f2[0]) { /* strftime cannot tell an empty result from an error */
        if (cap)
            buf[0] = 0;
        return 0;
    }
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t n = strftime(buf, cap, f2, &tm); /* user-supplied time_format, by design */
#pragma GCC diagnostic pop
    return n;
}

size_t time_fmt(char *buf, size_t cap, const char *format, uint32_t sec, uint32_t nsec, int utc)
{
    return time_fmt_zone(buf, cap, format, sec, nsec, utc ? TIMEFMT_UTC : TIMEFMT_LOCAL, 0);
}

/* ISO 8601 like Ruby's Time#iso8601: "Z" for UTC, "+09:00" otherwise. */
size_t time_iso8601_zone(char *buf, size_t cap, uint32_t sec, int zone, int32_t off)
{
    return time_fmt_zone(buf, cap, zone == TIMEFMT_UTC ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%dT%H:%M:%S%:z", sec, 0, zone,
                         off);
}

size_t time_iso8601(char *buf, size_t cap, uint32_t sec, int utc)
{
    return time_iso8601_zone(buf, cap, sec, utc ? TIMEFMT_UTC : TIMEFMT_LOCAL, 0);
}
