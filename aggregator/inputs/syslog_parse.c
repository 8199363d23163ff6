/*
 * aggregator/inputs/syslog_parse.c: parser_syslog's regexp engine (Fluentd
 * 1.16's default), step by step: the priority, the time found by counting
 * the blanks its format has, then the rest matched by the same regular
 * expressions from there (see syslog.h).
 */
#include "aggregator/inputs/syslog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"

static const char RE3164[] =
    "(?<host>[^ ]*) (?<ident>[^ :\\[]*)(?:\\[(?<pid>[0-9]+)\\])?(?:[^\\:]*\\:)? *(?<message>.*)$";
static const char RE5424[] = "(?<host>[!-~]{1,255}) (?<ident>[!-~]{1,48}) (?<pid>[!-~]{1,128}) "
                             "(?<msgid>[!-~]{1,32}) (?<extradata>(?:\\-|(?:\\[.*?(?<!\\\\)\\])+))(?: "
                             "(?<message>.+))?\\z";

static int spaces_of(const char *fmt)
{
    /* time_fmt.squeeze(' ').count(' ') + 1 */
    int c = 0;
    for (size_t i = 0; fmt[i]; i++)
        if (fmt[i] == ' ' && (i == 0 || fmt[i - 1] != ' '))
            c++;
    return c + 1;
}

int syslog_parser_init(syslog_parser *p, int format, int with_priority, const char *time_format,
                       const char *rfc5424_time_format, int keep_time_key, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->format = format;
    p->with_priority = with_priority;
    p->keep_time_key = keep_time_key;
    const char *f5424 = rfc5424_time_format ? rfc5424_time_format : "%Y-%m-%dT%H:%M:%S.%L%z";
    const char *f3164 = time_format ? time_format : "%b %d %H:%M:%S";
    if (format == SL_RFC5424 && time_format) /* rfc5424: time_format, when given, replaces rfc5424_time_format */
        f5424 = time_format;
    if (tparse_init(&p->t3164, 0, f3164, 1, 0, NULL, err, errlen) ||
        tparse_init(&p->t5424, 0, f5424, 1, 0, NULL, err, errlen) ||
        tparse_init(&p->t5424_nosub, 0, "%Y-%m-%dT%H:%M:%S%z", 1, 0, NULL, err, errlen))
        return -1;
    p->spaces3164 = spaces_of(f3164);
    p->spaces5424 = spaces_of(f5424);
    if (rx_compile(&p->re3164, RE3164, 0, err, errlen) || rx_compile(&p->re5424, RE5424, RX_DOTALL, err, errlen))
        return -1;
    p->ready = 1;
    return 0;
}

void syslog_parser_free(syslog_parser *p)
{
    tparse_free(&p->t3164);
    tparse_free(&p->t5424);
    tparse_free(&p->t5424_nosub);
    rx_free(&p->re3164);
    rx_free(&p->re5424);
    memset(p, 0, sizeof *p);
}

static int digits(const char *s, size_t n, size_t i, size_t min, size_t max, size_t *end)
{
    size_t k = 0;
    while (i + k < n && k < max && s[i + k] >= '0' && s[i + k] <= '9')
        k++;
    if (k < min)
        return -1;
    *end = i + k;
    return 0;
}

/* the blank-counting loop of parse_rfc*_regex: the time is s[idx .. *te) */
static int find_time(const char *s, size_t n, size_t idx, int spaces, size_t *te, int *squeeze)
{
    long i = (long)idx - 1;
    *squeeze = 0;
    for (int k = 0; k < spaces; k++) {
        while ((size_t)(i + 1) < n && s[i + 1] == ' ') {
            *squeeze = 1;
            i++;
        }
        const char *sp = (size_t)(i + 1) <= n ? memchr(s + i + 1, ' ', n - (size_t)(i + 1)) : NULL;
        if (!sp)
            return -1; /* Ruby: nil + 1, an error */
        i = sp - s;
    }
    *te = (size_t)i;
    return 0;
}

static int parse_time(const tparse *t, const char *s, size_t n, int squeeze, uint32_t *sec, uint32_t *nsec)
{
    if (!squeeze)
        return tparse_text(t, s, n, sec, nsec);
    char buf[256];
    size_t o = 0;
    for (size_t i = 0; i < n && o < sizeof buf; i++)
        if (!(s[i] == ' ' && o && buf[o - 1] == ' '))
            buf[o++] = s[i];
    return tparse_text(t, buf, o, sec, nsec);
}

int syslog_parse(const syslog_parser *p, const char *s, size_t n, syslog_fields *out)
{
    memset(out, 0, sizeof *out);
    out->pri = -1;
    size_t ver_end = 0;
    int is5424 = p->format == SL_RFC5424;
    if (p->format == SL_AUTO) { /* /^\<[0-9]{1,3}\>[1-9]\d{0,2}/ */
        size_t e;
        is5424 = n > 1 && s[0] == '<' && digits(s, n, 1, 1, 3, &e) == 0 && e < n && s[e] == '>' && e + 1 < n &&
                 s[e + 1] >= '1' && s[e + 1] <= '9';
    }
    size_t idx = 0;
    if (p->with_priority) {
        size_t e;
        if (!(n > 1 && s[0] == '<' && digits(s, n, 1, 1, 3, &e) == 0 && e < n && s[e] == '>'))
            return -1;
        out->pri = atoi(s + 1);
        idx = e + 1;
        if (is5424) { /* /^<(?<pri>\d{1,3})>\d\d{0,2}\s/ */
            if (digits(s, n, idx, 1, 3, &ver_end) || ver_end >= n ||
                !(s[ver_end] == ' ' || s[ver_end] == '\t' || s[ver_end] == '\n' || s[ver_end] == '\r' ||
                  s[ver_end] == '\f' || s[ver_end] == '\v'))
                return -1;
            idx = ver_end + 1;
        }
    }
    size_t te;
    int sq;
    if (find_time(s, n, idx, is5424 ? p->spaces5424 : p->spaces3164, &te, &sq))
        return -2;
    const char *ts = s + idx;
    size_t tl = te - idx;
    if (is5424) {
        if (parse_time(&p->t5424, ts, tl, sq, &out->sec, &out->nsec) &&
            parse_time(&p->t5424_nosub, ts, tl, sq, &out->sec, &out->nsec))
            return -2;
    } else if (parse_time(&p->t3164, ts, tl, sq, &out->sec, &out->nsec)) {
        return -2;
    }
    if (p->keep_time_key) {
        out->f[SL_TIME] = ts; /* squeezed in Ruby when it had runs of blanks; kept as sent here */
        out->n[SL_TIME] = tl;
    }
    const rx *re = is5424 ? &p->re5424 : &p->re3164;
    const char *rest = s + te + 1;
    size_t rn = n - te - 1;
    const PCRE2_SIZE *ov;
    if (rx_exec(re, (const uint8_t *)rest, rn, &ov) != 1)
        return -1;
    static const int f3164[] = {SL_HOST, SL_IDENT, SL_PID, SL_MESSAGE};
    static const int f5424[] = {SL_HOST, SL_IDENT, SL_PID, SL_MSGID, SL_EXTRADATA, SL_MESSAGE};
    const int *fields = is5424 ? f5424 : f3164;
    size_t nf = is5424 ? 6 : 4;
    for (size_t g = 1; g <= nf; g++) {
        if (ov[2 * g] == PCRE2_UNSET)
            continue;
        int f = fields[g - 1];
        out->f[f] = rest + ov[2 * g];
        out->n[f] = ov[2 * g + 1] - ov[2 * g];
        if (f == SL_MESSAGE) { /* chomp! */
            size_t m = out->n[f];
            if (m && out->f[f][m - 1] == '\n')
                m--;
            if (m && out->f[f][m - 1] == '\r')
                m--;
            out->n[f] = m;
        }
    }
    return 0;
}

int syslog_record(const syslog_fields *f, const rec_kv *extra, size_t nextra, wbuf *out)
{
    static const char *const names[SL_NFIELDS] = {"time", "host", "ident", "pid", "msgid", "extradata", "message"};
    uint32_t count = 0;
    for (int i = 0; i < SL_NFIELDS; i++)
        count += f->f[i] != NULL;
    if (mpw_map(out, count + (uint32_t)nextra))
        return -1;
    for (int i = 0; i < SL_NFIELDS; i++) {
        if (!f->f[i])
            continue;
        if (mpw_str(out, names[i], strlen(names[i])) || mpw_str(out, f->f[i], f->n[i]))
            return -1;
    }
    for (size_t i = 0; i < nextra; i++)
        if (mpw_str(out, extra[i].key, extra[i].key_len) || wbuf_add(out, extra[i].val, extra[i].val_len))
            return -1;
    return 0;
}

const char *syslog_facility(int pri)
{
    static const char *const fac[] = {"kern",     "user",   "mail",   "daemon", "auth",   "syslog", "lpr",    "news",
                                      "uucp",     "cron",   "authpriv", "ftp",  "ntp",    "audit",  "alert",  "at",
                                      "local0",   "local1", "local2", "local3", "local4", "local5", "local6", "local7"};
    return pri >= 0 && (pri >> 3) < 24 ? fac[pri >> 3] : NULL;
}

const char *syslog_severity(int pri)
{
    static const char *const sev[] = {"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"};
    return pri >= 0 ? sev[pri & 7] : NULL;
}

long syslog_frame(const char *buf, size_t n, int octet_count, const char *delim, size_t dlen, const char **msg,
                  size_t *mlen)
{
    if (!n)
        return 0; /* nothing buffered yet (buf may be NULL) */
    if (!octet_count) {
        const char *d = dlen ? memmem(buf, n, delim, dlen) : NULL;
        if (!d)
            return 0;
        *msg = buf;
        *mlen = (size_t)(d - buf);
        return (long)(*mlen + dlen);
    }
    const char *sp = memchr(buf, ' ', n);
    if (!sp)
        return n > 20 ? -1 : 0;
    /* Integer("123 "): digits, blanks around */
    size_t i = 0, len = 0, nd = 0;
    while (buf + i < sp && (buf[i] == ' ' || buf[i] == '\t'))
        i++;
    for (; buf + i < sp && buf[i] >= '0' && buf[i] <= '9' && nd < 12; i++, nd++)
        len = len * 10 + (size_t)(buf[i] - '0');
    if (!nd || buf + i != sp)
        return -1;
    size_t start = (size_t)(sp - buf) + 1;
    if (n - start < len)
        return 0;
    *msg = buf + start;
    *mlen = len;
    return (long)(start + len);
}
