/* aggregator/timeparse.c: Fluentd's time parsing; see timeparse.h. */
#include "timeparse.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/mp.h"
#include "aggregator/record.h"

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

int64_t ruby_str_to_i(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_blank(s[i]))
        i++;
    int neg = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    uint64_t v = 0;
    int any = 0;
    for (; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            if (v < UINT64_MAX / 10)
                v = v * 10 + (uint64_t)(s[i] - '0');
            any = 1;
        } else if (s[i] == '_' && any && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') {
            continue;
        } else {
            break;
        }
    }
    if (v > (uint64_t)INT64_MAX)
        v = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    return neg ? (int64_t)(0 - v) : (int64_t)v;
}

double ruby_str_to_f(const char *s, size_t n)
{
    char buf[128];
    size_t o = 0, i = 0;
    while (i < n && is_blank(s[i]))
        i++;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        buf[o++] = s[i++];
    int digits = 0;
#define DIGITS()                                                                                                     \
    do {                                                                                                             \
        int prev = 0;                                                                                                \
        for (; i < n && o < sizeof buf - 8; i++) {                                                                   \
            if (s[i] >= '0' && s[i] <= '9') {                                                                        \
                buf[o++] = s[i];                                                                                     \
                prev = 1;                                                                                            \
                digits = 1;                                                                                          \
            } else if (s[i] == '_' && prev && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '9') {                    \
                prev = 0;                                                                                            \
            } else {                                                                                                 \
                break;                                                                                               \
            }                                                                                                        \
        }                                                                                                            \
    } while (0)
    DIGITS();
    if (i + 1 < n && s[i] == '.' && s[i + 1] >= '0' && s[i + 1] <= '9') {
        buf[o++] = '.';
        i++;
        DIGITS();
    }
    if (digits && i + 1 < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t save_i = i, save_o = o;
        buf[o++] = 'e';
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            buf[o++] = s[i++];
        int before = digits;
        digits = 0;
        DIGITS();
        if (!digits) {
            i = save_i;
            o = save_o;
        }
        digits = before;
    }
#undef DIGITS
    if (!digits)
        return 0.0;
    buf[o] = 0;
    return strtod(buf, NULL);
}

int tz_offset(const char *s, size_t n, int32_t *off)
{
    if ((n == 1 && (s[0] == 'Z' || s[0] == 'z')) || (n == 3 && (!strncasecmp(s, "UTC", 3) || !strncasecmp(s, "GMT", 3)))) {
        *off = 0;
        return 0;
    }
    if (n < 3 || (s[0] != '+' && s[0] != '-'))
        return -1;
    int sign = s[0] == '-' ? -1 : 1;
    const char *p = s + 1, *e = s + n;
    if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
        return -1;
    int h = (p[0] - '0') * 10 + (p[1] - '0'), m = 0;
    p += 2;
    if (p < e && *p == ':')
        p++;
    if (p < e) {
        if (e - p != 2 || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]))
            return -1;
        m = (p[0] - '0') * 10 + (p[1] - '0');
    } else if (p[-1] == ':') {
        return -1;
    }
    if (h > 23 || m > 59)
        return -1;
    *off = sign * (h * 3600 + m * 60);
    return 0;
}

int tz_config(const char *tz, int32_t *off, tz_zone **db, char *err, size_t errlen)
{
    *db = NULL;
    *off = 0;
    if (tz_offset(tz, strlen(tz), off) == 0)
        return 0;
    if (!tz_zone_name(tz)) {
        snprintf(err, errlen, "timezone '%s' is not supported: a fixed offset like +09:00 or a zone name like Asia/Tokyo",
                 tz);
        return -1;
    }
    if (!(*db = malloc(sizeof **db))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (tz_zone_load(*db, tz, err, errlen) != 0) {
        free(*db);
        *db = NULL;
        return -1;
    }
    return 0;
}

void tz_config_free(tz_zone **db)
{
    if (*db)
        tz_zone_free(*db);
    free(*db);
    *db = NULL;
}

int tparse_init(tparse *t, int type, const char *format, int localtime, int utc, const char *timezone, char *err,
                size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->type = type;
    if (format) {
        if (strcmp(format, "%iso8601") == 0)
            t->iso8601 = 1;
        else if (!(t->format = strdup(format))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    t->zone = TZ_LOCAL;
    if (utc || !localtime)
        t->zone = TZ_UTC;
    if (timezone) {
        int32_t off;
        if (tz_config(timezone, &off, &t->db, err, errlen) != 0) {
            tparse_free(t);
            return -1;
        }
        t->zone = off || t->db ? TZ_FIXED : TZ_UTC;
        t->offset = off;
    }
    if (t->zone == TZ_LOCAL) {
        /* a UTC host (the usual container) needs no mktime per record */
        time_t probes[2] = {1704067200, 1719792000}; /* 2024-01-01, 2024-07-01 */
        int utc_host = 1;
        for (int i = 0; i < 2; i++) {
            struct tm tm;
            localtime_r(&probes[i], &tm);
            if (tm.tm_gmtoff != 0)
                utc_host = 0;
        }
        if (utc_host)
            t->zone = TZ_UTC;
    }
    return 0;
}

void tparse_free(tparse *t)
{
    free(t->format);
    t->format = NULL;
    tz_config_free(&t->db);
    for (size_t i = 0; i < t->nalts; i++)
        tparse_free(&t->alts[i]);
    free(t->alts);
    t->alts = NULL;
    t->nalts = 0;
}

int tparse_init_mixed(tparse *t, const char *format, char *const *fallbacks, int localtime, int utc,
                      const char *timezone, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    t->type = TP_MIXED;
    size_t n = format ? 1 : 0;
    for (size_t i = 0; fallbacks && fallbacks[i]; i++)
        n++;
    if (!n) {
        snprintf(err, errlen, "time_type is :mixed but time_format and time_format_fallbacks is empty.");
        return -1;
    }
    if (!(t->alts = calloc(n, sizeof *t->alts))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *f = format ? (i ? fallbacks[i - 1] : format) : fallbacks[i];
        /* Fluentd 1.16's MixedTimeParser hands NumericTimeParser the string "unixtime", which it compares
         * with :unixtime: both numeric fallbacks read the value as `float` (the fraction kept) */
        int type = !strcmp(f, "unixtime") || !strcmp(f, "float") ? TP_FLOAT : TP_STRING;
        if (tparse_init(&t->alts[i], type, type == TP_STRING ? f : NULL, localtime, utc, timezone, err, errlen)) {
            tparse_free(t);
            return -1;
        }
        t->nalts = i + 1;
    }
    return 0;
}

/* Ruby's Float(value) succeeds: a number, or a string that is one whole (blanks around allowed) */
static int float_like(const mp_obj *o)
{
    if (o->type == MP_UINT || o->type == MP_INT || o->type == MP_FLOAT)
        return 1;
    if ((o->type != MP_STR && o->type != MP_BIN) || !o->len || o->len > 64)
        return 0;
    char tmp[65], *e;
    memcpy(tmp, o->ptr, o->len);
    tmp[o->len] = 0;
    const char *s = tmp;
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    if (!*s)
        return 0;
    strtod(s, &e);
    if (e == s)
        return 0;
    while (*e == ' ' || *e == '\t' || *e == '\n')
        e++;
    return !*e;
}

/* ---- strptime ----------------------------------------------------------------------- */

typedef struct tfields {
    int64_t year;
    int mon, mday, hour, min, sec, yday;
    uint32_t nsec;
    int has_year, has_mon, has_mday, has_yday, has_pm, pm, has_tz, has_epoch, has_century, century;
    int32_t tz;
    int64_t epoch;
} tfields;

static const char *const months[] = {"january", "february", "march",     "april",   "may",      "june",
                                     "july",    "august",   "september", "october", "november", "december"};
static const char *const wdays[] = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};

static int read_num(const char **p, const char *e, int maxw, int64_t *v)
{
    const char *s = *p;
    int64_t x = 0;
    int w = 0;
    while (s < e && w < maxw && *s >= '0' && *s <= '9') {
        if (x > (INT64_MAX - 9) / 10)
            return -1; /* no time has that many digits (and x would overflow) */
        x = x * 10 + (*s - '0');
        s++;
        w++;
    }
    if (!w)
        return -1;
    *v = x;
    *p = s;
    return 0;
}

/* A field of at most `width` digits with a value in [lo, hi] into *out; a
 * blank before it is skipped when `pad` (%e, %k, %l and strptime's %d, %H,
 * %I accept " 5" for 5). */
static int read_field(const char **p, const char *e, int width, int lo, int hi, int pad, int *out)
{
    int64_t v;
    if (pad && *p < e && **p == ' ')
        (*p)++;
    if (read_num(p, e, width, &v) || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int read_name(const char **p, const char *e, const char *const *names, int count)
{
    for (int i = 0; i < count; i++) {
        size_t l = strlen(names[i]);
        if ((size_t)(e - *p) >= l && strncasecmp(*p, names[i], l) == 0) {
            *p += l;
            return i;
        }
    }
    for (int i = 0; i < count; i++) {
        if (e - *p >= 3 && strncasecmp(*p, names[i], 3) == 0) {
            *p += 3;
            return i;
        }
    }
    return -1;
}

static int read_frac(const char **p, const char *e, int maxw, uint32_t *nsec)
{
    const char *s = *p;
    uint32_t v = 0;
    int w = 0;
    while (s < e && w < maxw && *s >= '0' && *s <= '9') {
        if (w < 9)
            v = v * 10 + (uint32_t)(*s - '0');
        s++;
        w++;
    }
    if (!w)
        return -1;
    for (int i = w; i < 9; i++)
        v *= 10;
    *nsec = v;
    *p = s;
    return 0;
}

static int read_zone(const char **p, const char *e, tfields *f, int names_ok)
{
    const char *s = *p;
    if (s < e && (*s == '+' || *s == '-')) {
        const char *q = s + 1;
        while (q < e && (isdigit((unsigned char)*q) || *q == ':') && q - s < 7)
            q++;
        if (tz_offset(s, (size_t)(q - s), &f->tz) == 0) {
            f->has_tz = 1;
            *p = q;
            return 0;
        }
        return -1;
    }
    const char *q = s;
    while (q < e && isalpha((unsigned char)*q))
        q++;
    if (q == s)
        return -1;
    if (tz_offset(s, (size_t)(q - s), &f->tz) == 0) {
        f->has_tz = 1;
        /* "UTC+09:00" style */
        if (q < e && (*q == '+' || *q == '-')) {
            const char *save = q;
            tfields g = {0};
            if (read_zone(&q, e, &g, 0) == 0)
                f->tz = g.tz;
            else
                q = save;
        }
        *p = q;
        return 0;
    }
    if (!names_ok)
        return -1;
    *p = q; /* an unknown zone name (%Z): ignored */
    return 0;
}

static int do_strptime(const char **ps, const char *e, const char *fmt, tfields *f, int depth)
{
    const char *s = *ps;
    int64_t v;
    if (depth > 4)
        return -1;
    for (const char *c = fmt; *c; c++) {
        if (is_blank(*c)) {
            while (s < e && is_blank(*s))
                s++;
            continue;
        }
        if (*c != '%') {
            if (s >= e || *s != *c)
                return -1;
            s++;
            continue;
        }
        c++;
        int width = 0;
        while (*c >= '0' && *c <= '9') { /* a width of 1000 or more reads as many digits as there are */
            if (width < 1000)
                width = width * 10 + (*c - '0');
            c++;
        }
        if (*c == '-' || *c == '_' || *c == '0' || *c == '^' || *c == '#') /* flags: ignored */
            c++;
        const char *sub = NULL;
        switch (*c) {
        case 0: return -1;
        case '%':
            if (s >= e || *s != '%')
                return -1;
            s++;
            break;
        case 'n':
        case 't':
            while (s < e && is_blank(*s))
                s++;
            break;
        case 'Y': {
            int neg = 0;
            if (s < e && (*s == '+' || *s == '-'))
                neg = *s++ == '-';
            if (read_num(&s, e, width ? width : 4, &v))
                return -1;
            f->year = neg ? -v : v;
            f->has_year = 1;
            break;
        }
        case 'C':
            if (read_num(&s, e, width ? width : 2, &v))
                return -1;
            f->has_century = 1;
            f->century = (int)v;
            break;
        case 'y':
            if (read_num(&s, e, 2, &v))
                return -1;
            f->year = v < 69 ? 2000 + v : 1900 + v;
            f->has_year = 2;
            break;
        case 'm':
            if (read_field(&s, e, 2, 1, 12, 0, &f->mon))
                return -1;
            f->has_mon = 1;
            break;
        case 'd':
        case 'e':
            if (read_field(&s, e, 2, 1, 31, 1, &f->mday))
                return -1;
            f->has_mday = 1;
            break;
        case 'j':
            if (read_field(&s, e, 3, 1, 366, 0, &f->yday))
                return -1;
            f->has_yday = 1;
            break;
        case 'H':
        case 'k':
            if (read_field(&s, e, 2, 0, 24, 1, &f->hour))
                return -1;
            break;
        case 'I':
        case 'l':
            if (read_field(&s, e, 2, 1, 12, 1, &f->hour))
                return -1;
            break;
        case 'M':
            if (read_field(&s, e, 2, 0, 59, 0, &f->min))
                return -1;
            break;
        case 'S':
            if (read_field(&s, e, 2, 0, 60, 0, &f->sec))
                return -1;
            break;
        case 'N':
        case 'L':
            if (read_frac(&s, e, width ? width : 64, &f->nsec))
                return -1;
            break;
        case 'p':
        case 'P':
            if (e - s >= 2 && (s[1] == 'M' || s[1] == 'm') && (s[0] == 'A' || s[0] == 'a' || s[0] == 'P' || s[0] == 'p')) {
                f->has_pm = 1;
                f->pm = s[0] == 'P' || s[0] == 'p';
                s += 2;
            } else if (e - s >= 4 && (s[0] == 'A' || s[0] == 'a' || s[0] == 'P' || s[0] == 'p') && s[1] == '.' &&
                       (s[2] == 'M' || s[2] == 'm') && s[3] == '.') {
                f->has_pm = 1;
                f->pm = s[0] == 'P' || s[0] == 'p';
                s += 4;
            } else {
                return -1;
            }
            break;
        case 'b':
        case 'B':
        case 'h': {
            int m = read_name(&s, e, months, 12);
            if (m < 0)
                return -1;
            f->mon = m + 1;
            f->has_mon = 1;
            break;
        }
        case 'a':
        case 'A':
            if (read_name(&s, e, wdays, 7) < 0)
                return -1;
            break;
        case 'z':
        case 'Z':
            if (read_zone(&s, e, f, *c == 'Z'))
                return -1;
            break;
        case 's':
        case 'Q': {
            int neg = 0;
            if (s < e && (*s == '-' || *s == '+'))
                neg = *s++ == '-';
            if (read_num(&s, e, 19, &v))
                return -1;
            if (neg)
                v = -v;
            if (*c == 's') {
                f->epoch = v;
            } else {
                f->epoch = v / 1000;
                f->nsec = (uint32_t)((v % 1000 + 1000) % 1000) * 1000000u;
                if (v < 0 && v % 1000)
                    f->epoch--;
            }
            f->has_epoch = 1;
            break;
        }
        case 'T': sub = "%H:%M:%S"; break;
        case 'D': sub = "%m/%d/%y"; break;
        case 'F': sub = "%Y-%m-%d"; break;
        case 'R': sub = "%H:%M"; break;
        case 'r': sub = "%I:%M:%S %p"; break;
        case 'c': sub = "%a %b %e %H:%M:%S %Y"; break;
        case 'x': sub = "%m/%d/%y"; break;
        case 'X': sub = "%H:%M:%S"; break;
        case 'v': sub = "%e-%b-%Y"; break;
        case '+': sub = "%a %b %e %H:%M:%S %Z %Y"; break;
        default: return -1;
        }
        if (sub && do_strptime(&s, e, sub, f, depth + 1))
            return -1;
    }
    *ps = s;
    return 0;
}

static int now_ymd(int64_t *y, int *m, int *d, int zone, int32_t off)
{
    time_t now = time(NULL);
    struct tm tm;
    if (zone == TZ_LOCAL)
        localtime_r(&now, &tm);
    else {
        now += zone == TZ_FIXED ? off : 0;
        gmtime_r(&now, &tm);
    }
    *y = tm.tm_year + 1900;
    *m = tm.tm_mon + 1;
    *d = tm.tm_mday;
    return 0;
}

static int fields_to_epoch(const tparse *t, tfields *f, uint32_t *sec, uint32_t *nsec)
{
    int64_t epoch;
    if (f->has_epoch) {
        epoch = f->epoch;
    } else {
        int64_t ny;
        int nm, nd;
        if (!f->has_year || !f->has_mon || !f->has_mday)
            now_ymd(&ny, &nm, &nd, f->has_tz ? TZ_FIXED : t->zone,
                    f->has_tz ? f->tz : t->db ? tz_zone_offset(t->db, time(NULL)) : t->offset);
        else
            ny = 0, nm = 1, nd = 1;
        int64_t y = f->has_year ? f->year : ny;
        if (f->has_century)
            y = f->century * 100 + (f->has_year ? y % 100 : 0);
        int m, d;
        if (f->has_yday && !f->has_mon) {
            m = 1;
            d = f->yday;
        } else {
            /* Ruby: a missing month/day is January/1st when a larger unit is given, today otherwise */
            m = f->has_mon ? f->mon : (f->has_year ? 1 : nm);
            d = f->has_mday ? f->mday : ((f->has_year || f->has_mon) ? 1 : nd);
        }
        int hour = f->hour;
        if (f->has_pm)
            hour = hour % 12 + (f->pm ? 12 : 0);
        int64_t days = days_from_civil(y, m, d);
        epoch = days * 86400 + hour * 3600 + f->min * 60 + f->sec;
        if (f->has_tz) {
            epoch -= f->tz;
        } else if (t->zone == TZ_FIXED) {
            /* a zone name: Fluentd's offset at the wall-clock time read as UTC */
            epoch -= t->db ? tz_zone_offset(t->db, epoch) : t->offset;
        } else if (t->zone == TZ_LOCAL) {
            struct tm tm = {0};
            tm.tm_year = (int)(y - 1900);
            tm.tm_mon = m - 1;
            tm.tm_mday = d;
            tm.tm_hour = hour;
            tm.tm_min = f->min;
            tm.tm_sec = f->sec;
            tm.tm_isdst = -1;
            time_t lt = mktime(&tm);
            if (lt == (time_t)-1 && !(tm.tm_year == 69 && tm.tm_mon == 11 && tm.tm_mday == 31))
                return -1;
            epoch = (int64_t)lt;
        }
    }
    if (epoch < 0 || epoch > (int64_t)UINT32_MAX)
        return -1;
    *sec = (uint32_t)epoch;
    *nsec = f->nsec;
    return 0;
}

static int rest_blank(const char *s, const char *e)
{
    while (s < e && is_blank(*s))
        s++;
    return s == e;
}

/* ISO 8601 / RFC 3339, lenient: date, optional time, optional zone. */
static int parse_iso(const char *s, const char *e, tfields *f, int strict)
{
    int64_t v;
    const char *y0 = s;
    if (read_num(&s, e, 4, &v) || s - y0 != 4)
        return -1;
    f->year = v;
    f->has_year = 1;
    if (s >= e || (*s != '-' && (strict || *s != '/')))
        return -1;
    char sep = *s++;
    if (read_num(&s, e, 2, &v) || v < 1 || v > 12)
        return -1;
    f->mon = (int)v;
    f->has_mon = 1;
    if (s >= e || *s++ != sep)
        return -1;
    if (read_num(&s, e, 2, &v) || v < 1 || v > 31)
        return -1;
    f->mday = (int)v;
    f->has_mday = 1;
    if (s < e && (*s == 'T' || *s == 't' || (!strict && *s == ' '))) {
        const char *save = s;
        s++;
        while (!strict && s < e && *s == ' ')
            s++;
        if (read_num(&s, e, 2, &v) || v > 24) {
            if (strict)
                return -1;
            s = save;
            goto zone;
        }
        f->hour = (int)v;
        if (s >= e || *s++ != ':' || read_num(&s, e, 2, &v) || v > 59)
            return -1;
        f->min = (int)v;
        if (s < e && *s == ':') {
            s++;
            if (read_num(&s, e, 2, &v) || v > 60)
                return -1;
            f->sec = (int)v;
            if (s < e && (*s == '.' || *s == ',')) {
                s++;
                if (read_frac(&s, e, 64, &f->nsec))
                    return -1;
            }
        } else if (strict) {
            return -1;
        }
    } else if (strict) {
        return -1;
    }
zone:
    if (!strict)
        while (s < e && *s == ' ')
            s++;
    if (s < e && read_zone(&s, e, f, 0))
        return -1;
    if (strict && !f->has_tz)
        return -1;
    return rest_blank(s, e) ? 0 : -1;
}

static int flexible(const tparse *t, const char *s, size_t n, uint32_t *sec, uint32_t *nsec)
{
    static const char *const fmts[] = {
        "%d/%b/%Y:%H:%M:%S %z",  /* apache */
        "%a, %d %b %Y %H:%M:%S %z", "%d %b %Y %H:%M:%S %z", "%a, %d %b %Y %H:%M:%S", "%d %b %Y %H:%M:%S",
        "%a %b %d %H:%M:%S %Y",  /* asctime */
        "%a %b %d %H:%M:%S %Z %Y", "%b %d %H:%M:%S",          /* syslog */
        "%b %d %Y %H:%M:%S",
        /* Apache's error log (after its weekday): "Nov 14 22:13:22.123456 2023" */
        "%b %d %H:%M:%S %Y", "%b %d %H:%M:%S.%N %Y", "%a %b %d %H:%M:%S.%N %Y", NULL,
    };
    const char *e = s + n;
    while (s < e && is_blank(*s))
        s++;
    tfields f = {0};
    if (parse_iso(s, e, &f, 0) == 0)
        return fields_to_epoch(t, &f, sec, nsec);
    for (int i = 0; fmts[i]; i++) {
        const char *p = s;
        memset(&f, 0, sizeof f);
        if (do_strptime(&p, e, fmts[i], &f, 0) == 0 && rest_blank(p, e))
            return fields_to_epoch(t, &f, sec, nsec);
    }
    return -1;
}

int tparse_text(const tparse *t, const char *s, size_t n, uint32_t *sec, uint32_t *nsec)
{
    tfields f = {0};
    if (t->iso8601) {
        const char *e = s + n;
        while (s < e && is_blank(*s))
            s++;
        if (parse_iso(s, e, &f, 0) != 0)
            return -1;
        return fields_to_epoch(t, &f, sec, nsec);
    }
    if (!t->format)
        return flexible(t, s, n, sec, nsec);
    const char *p = s;
    if (do_strptime(&p, s + n, t->format, &f, 0) != 0)
        return -1;
    return fields_to_epoch(t, &f, sec, nsec);
}

static void value_err(char *err, size_t errlen, const char *what, const uint8_t *v, size_t vlen)
{
    wbuf tmp = {0};
    rec_value_text(&tmp, v, vlen);
    int l = tmp.len > 200 ? 200 : (int)tmp.len;
    snprintf(err, errlen, "%s%.*s", what, l, tmp.data ? (const char *)tmp.data : "");
    wbuf_free(&tmp);
}

/* Fluentd's NumericTimeParser#parse_float: "sec.frac" of value.to_s. */
static int float_text(const char *s, size_t n, uint32_t *sec, uint32_t *nsec)
{
    const char *dot = memchr(s, '.', n);
    size_t il = dot ? (size_t)(dot - s) : n;
    int64_t sv = ruby_str_to_i(s, il);
    uint32_t ns = 0;
    if (dot) {
        const char *f = dot + 1, *fe = s + n;
        const char *d2 = memchr(f, '.', (size_t)(fe - f));
        if (d2)
            fe = d2;
        char digits[10];
        size_t k = 0;
        for (; f < fe && k < 9; f++)
            digits[k++] = *f;
        while (k < 9)
            digits[k++] = '0';
        int64_t nv = ruby_str_to_i(digits, 9);
        ns = nv < 0 ? 0 : (uint32_t)nv;
    }
    if (sv < 0 || sv > (int64_t)UINT32_MAX)
        return -1;
    *sec = (uint32_t)sv;
    *nsec = ns;
    return 0;
}

int tparse_value(const tparse *t, const uint8_t *v, size_t vlen, uint32_t *sec, uint32_t *nsec, char *err,
                 size_t errlen)
{
    const uint8_t *p = v;
    mp_obj o;
    if (mp_read(&p, v + vlen, &o) != MP_OK) {
        snprintf(err, errlen, "invalid time value");
        return -1;
    }
    int is_str = o.type == MP_STR || o.type == MP_BIN;
    int is_num = o.type == MP_UINT || o.type == MP_INT || o.type == MP_FLOAT;
    if (t->type == TP_MIXED) {
        char e[64];
        for (size_t i = 0; i < t->nalts; i++)
            if ((t->alts[i].type == TP_STRING || float_like(&o)) &&
                tparse_value(&t->alts[i], v, vlen, sec, nsec, e, sizeof e) == 0)
                return 0;
        char classes[128];
        size_t cl = 0;
        for (size_t i = 0; i < t->nalts && cl < sizeof classes - 40; i++)
            cl += (size_t)snprintf(classes + cl, sizeof classes - cl, "%s%s", i ? "," : "",
                                   t->alts[i].type == TP_STRING ? "Fluent::TimeParser" : "Fluent::NumericTimeParser");
        char pre[192];
        snprintf(pre, sizeof pre, "invalid time format: value = ");
        value_err(err, errlen, pre, v, vlen);
        size_t el = strlen(err);
        snprintf(err + el, errlen > el ? errlen - el : 0, ", even though fallbacks: %s", classes);
        return -1;
    }
    if (t->type == TP_STRING) {
        if (!is_str) {
            value_err(err, errlen, "value must be string: ", v, vlen);
            return -1;
        }
        if (tparse_text(t, (const char *)o.ptr, o.len, sec, nsec) != 0) {
            value_err(err, errlen, "invalid time format: value = ", v, vlen);
            return -1;
        }
        return 0;
    }
    if (!is_str && !is_num) {
        value_err(err, errlen, "value must be a string or a number: ", v, vlen);
        return -1;
    }
    int rc;
    if (t->type == TP_UNIXTIME) {
        int64_t s;
        if (o.type == MP_UINT)
            s = o.v.u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)o.v.u;
        else if (o.type == MP_INT)
            s = o.v.i;
        else if (o.type == MP_FLOAT)
            s = isfinite(o.v.f) && fabs(o.v.f) < 9e18 ? (int64_t)o.v.f : -1;
        else
            s = ruby_str_to_i((const char *)o.ptr, o.len);
        rc = s < 0 || s > (int64_t)UINT32_MAX ? -1 : 0;
        if (!rc) {
            *sec = (uint32_t)s;
            *nsec = 0;
        }
    } else {
        char tmp[40];
        size_t n;
        const char *txt = tmp;
        if (o.type == MP_UINT)
            n = fmt_u64(tmp, o.v.u);
        else if (o.type == MP_INT)
            n = fmt_i64(tmp, o.v.i);
        else if (o.type == MP_FLOAT)
            n = rec_double_text(tmp, o.v.f);
        else
            txt = (const char *)o.ptr, n = o.len;
        rc = float_text(txt, n, sec, nsec);
    }
    if (rc)
        value_err(err, errlen, "invalid time format: value = ", v, vlen);
    return rc;
}
