/* lib/tzfile.c: TZif files and their POSIX TZ rule; see tzfile.h. */
#include "lib/tzfile.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int tz_zone_name(const char *name)
{
    /* \A[^/]+/[^/]+(/[^/]+)?\z, and no "." / ".." part (a path under the zone directory) */
    int parts = 0;
    for (const char *p = name;; parts++) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (!n || (n <= 2 && !strncmp(p, "..", n)))
            return 0;
        if (!e)
            break;
        p = e + 1;
    }
    return parts == 1 || parts == 2;
}

static int64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return n == 4 ? (int64_t)(int32_t)(uint32_t)v : (int64_t)v;
}

/* POSIX offset [+-]hh[:mm[:ss]] -> seconds (the sign as written). */
static const char *rule_secs(const char *s, int32_t *out)
{
    int sign = 1;
    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*s))
        return NULL;
    int32_t v[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        if (i && *s != ':')
            break;
        if (i)
            s++;
        if (!isdigit((unsigned char)*s))
            return NULL;
        while (isdigit((unsigned char)*s))
            v[i] = v[i] * 10 + (*s++ - '0');
    }
    *out = sign * (v[0] * 3600 + v[1] * 60 + v[2]);
    return s;
}

static const char *rule_name(const char *s)
{
    if (*s == '<') {
        const char *e = strchr(s, '>');
        return e ? e + 1 : NULL;
    }
    const char *b = s;
    while (isalpha((unsigned char)*s))
        s++;
    return s - b >= 3 ? s : NULL;
}

static const char *rule_time(const char *s, tz_rule_time *t)
{
    memset(t, 0, sizeof *t);
    t->secs = 7200;
    if (*s == 'M') {
        t->kind = 'M';
        if (sscanf(s + 1, "%d.%d.%d", &t->m, &t->w, &t->d) != 3)
            return NULL;
        s++;
        while (isdigit((unsigned char)*s) || *s == '.')
            s++;
    } else {
        t->kind = 'D';
        if (*s == 'J')
            t->kind = 'J', s++;
        if (!isdigit((unsigned char)*s))
            return NULL;
        while (isdigit((unsigned char)*s))
            t->d = t->d * 10 + (*s++ - '0');
    }
    if (*s == '/' && !(s = rule_secs(s + 1, &t->secs)))
        return NULL;
    return s;
}

static int rule_parse(tz_zone *z, const char *s)
{
    int32_t off;
    if (!(s = rule_name(s)) || !(s = rule_secs(s, &off)))
        return -1;
    z->std_off = -off; /* POSIX: west of UTC */
    z->has_rule = 1;
    if (!*s)
        return 0;
    if (!(s = rule_name(s)))
        return -1;
    z->dst_off = z->std_off + 3600;
    if (*s != ',' && *s) {
        if (!(s = rule_secs(s, &off)))
            return -1;
        z->dst_off = -off;
    }
    if (*s != ',' || !(s = rule_time(s + 1, &z->start)) || *s != ',' || !(s = rule_time(s + 1, &z->end)) || *s)
        return -1;
    z->has_dst = 1;
    return 0;
}

int tz_zone_load(tz_zone *z, const char *name, char *err, size_t errlen)
{
    memset(z, 0, sizeof *z);
    const char *dir = getenv("TZDIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    FILE *f = tz_zone_name(name) ? fopen(path, "rb") : NULL;
    if (!f) {
        snprintf(err, errlen, "unknown time zone '%s' (no %s)", name, path);
        return -1;
    }
    uint8_t *d = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            uint8_t *d2 = cap < (1u << 20) ? realloc(d, cap = cap ? cap * 2 : 4096) : NULL;
            if (!d2)
                break;
            d = d2;
        }
        size_t k = fread(d + n, 1, cap - n, f);
        if (!k)
            break;
        n += k;
    }
    fclose(f);
    /* v1 header and data, then (version 2+) the 64-bit header and data, then the rule */
    int rc = -1;
    const uint8_t *p = d, *e = d + n;
    for (int pass = 0; pass < 2 && d; pass++) {
        if (e - p < 44 || memcmp(p, "TZif", 4))
            break;
        int64_t isut = be(p + 20, 4), isstd = be(p + 24, 4), leap = be(p + 28, 4), tc = be(p + 32, 4),
                tyc = be(p + 36, 4), ch = be(p + 40, 4);
        int ts = pass ? 8 : 4;
        int64_t len = tc * ts + tc + tyc * 6 + ch + leap * (ts + 4) + isstd + isut;
        if (tc < 0 || tyc <= 0 || len < 0 || e - p - 44 < len)
            break;
        if (!pass && p[4] >= '2') { /* skip to the 64-bit part */
            p += 44 + len;
            continue;
        }
        const uint8_t *q = p + 44;
        z->trans = malloc((size_t)(tc ? tc : 1) * sizeof *z->trans);
        z->idx = malloc((size_t)(tc ? tc : 1));
        z->utoff = malloc((size_t)tyc * sizeof *z->utoff);
        if (!z->trans || !z->idx || !z->utoff)
            break;
        for (int64_t i = 0; i < tc; i++)
            z->trans[i] = be(q + i * ts, ts);
        q += tc * ts;
        memcpy(z->idx, q, (size_t)tc);
        q += tc;
        for (int64_t i = 0; i < tyc; i++)
            z->utoff[i] = (int32_t)be(q + i * 6, 4);
        int first = -1;
        for (int64_t i = 0; i < tyc && first < 0; i++)
            if (!q[i * 6 + 4]) /* the first standard-time type */
                first = (int)i;
        z->first = z->utoff[first < 0 ? 0 : first];
        z->ntrans = (size_t)tc;
        z->ntypes = (size_t)tyc;
        rc = 0;
        for (int64_t i = 0; i < tc; i++)
            if (z->idx[i] >= tyc)
                rc = -1;
        const uint8_t *r = p + 44 + len;
        if (!rc && pass && r < e && *r == '\n') {
            const uint8_t *re = memchr(r + 1, '\n', (size_t)(e - r - 1));
            char rule[128];
            size_t rl = re ? (size_t)(re - r - 1) : 0;
            if (rl && rl < sizeof rule) {
                memcpy(rule, r + 1, rl);
                rule[rl] = 0;
                if (rule_parse(z, rule))
                    z->has_rule = z->has_dst = 0; /* not understood: the last transition's offset goes on */
            }
        }
        break;
    }
    free(d);
    if (rc) {
        tz_zone_free(z);
        snprintf(err, errlen, "time zone '%s': %s is not a TZif file weir can read", name, path);
    }
    return rc;
}

void tz_zone_free(tz_zone *z)
{
    free(z->trans);
    free(z->idx);
    free(z->utoff);
    memset(z, 0, sizeof *z);
}

int64_t days_from_civil(int64_t y, int m, int d)
{
    /* normalise the month first (Ruby's Time.local accepts day 31 of any month) */
    y += (m - 1) / 12;
    m = (m - 1) % 12 + 1;
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int leap_year(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* The local (wall clock, in the offset before it) seconds since the epoch at which the rule time falls in year y. */
static int64_t rule_at(const tz_rule_time *t, int64_t y)
{
    int64_t day;
    if (t->kind == 'M') {
        static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        int64_t d1 = days_from_civil(y, t->m, 1);
        int wd1 = (int)(((d1 % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday */
        int dd = (t->d - wd1 + 7) % 7 + 1 + (t->w - 1) * 7;
        int md = mdays[t->m - 1] + (t->m == 2 && leap_year(y));
        while (dd > md)
            dd -= 7;
        day = d1 + dd - 1;
    } else if (t->kind == 'J') {
        day = days_from_civil(y, 1, 1) + t->d - 1 + (leap_year(y) && t->d >= 60);
    } else {
        day = days_from_civil(y, 1, 1) + t->d;
    }
    return day * 86400 + t->secs;
}

int32_t tz_zone_offset(const tz_zone *z, int64_t t)
{
    if (!z->ntrans || t < z->trans[0])
        return z->ntrans ? z->first : z->has_rule ? z->std_off : z->first;
    if (t < z->trans[z->ntrans - 1] || !z->has_rule) {
        size_t lo = 0, hi = z->ntrans; /* the last transition <= t */
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (z->trans[mid] <= t)
                lo = mid;
            else
                hi = mid;
        }
        return z->utoff[z->idx[lo]];
    }
    if (!z->has_dst)
        return z->std_off;
    /* the year of t in standard time; DST from start (in standard time) to end (in DST) */
    time_t lt = (time_t)(t + z->std_off);
    struct tm tm;
    if (!gmtime_r(&lt, &tm))
        return z->std_off;
    int64_t y = (int64_t)tm.tm_year + 1900;
    int64_t s = rule_at(&z->start, y) - z->std_off, e = rule_at(&z->end, y) - z->dst_off;
    int in_dst = s < e ? (t >= s && t < e) : !(t >= e && t < s); /* southern hemisphere: DST spans the new year */
    return in_dst ? z->dst_off : z->std_off;
}
