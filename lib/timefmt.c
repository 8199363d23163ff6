/* lib/timefmt.c: time formatting with Fluentd's sub-second directives; see timefmt.h. */
#include "lib/timefmt.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

size_t time_fmt(char *buf, size_t cap, const char *format, uint32_t sec, uint32_t nsec, int utc)
{
    time_t t = (time_t)sec;
    struct tm tm;
    if (utc)
        gmtime_r(&t, &tm);
    else
        localtime_r(&t, &tm);
    /* Expand Fluentd's sub-second directives first, then strftime the rest. */
    char f2[256];
    size_t j = 0;
    for (const char *s = format; *s && j + 12 < sizeof f2; s++) {
        if (s[0] == '%' && (s[1] == 'L' || s[1] == 'N' || (s[1] >= '1' && s[1] <= '9' && s[2] == 'N'))) {
            int digits = s[1] == 'L' ? 3 : s[1] == 'N' ? 9 : s[1] - '0';
            uint32_t v = nsec;
            for (int d = 9; d > digits; d--)
                v /= 10;
            j += (size_t)snprintf(f2 + j, sizeof f2 - j, "%0*u", digits, v);
            s += (s[1] == 'L' || s[1] == 'N') ? 1 : 2;
        } else if (s[0] == '%' && s[1] == '%') {
            f2[j++] = '%';
            f2[j++] = '%';
            s++;
        } else {
            f2[j++] = *s;
        }
    }
    f2[j] = 0;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    size_t n = strftime(buf, cap, f2, &tm); /* user-supplied time_format, by design */
#pragma GCC diagnostic pop
    return n;
}

/* ISO 8601 like Ruby's Time#iso8601: "Z" for UTC, "+09:00" otherwise. */
size_t time_iso8601(char *buf, size_t cap, uint32_t sec, int utc)
{
    size_t n = time_fmt(buf, cap, utc ? "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%dT%H:%M:%S%z", sec, 0, utc);
    if (!utc && n >= 5 && n + 1 < cap) { /* +0900 -> +09:00 */
        memmove(buf + n - 1, buf + n - 2, 3);
        buf[n - 2] = ':';
        n++;
    }
    return n;
}
