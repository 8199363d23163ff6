/*
 * aggregator/record_text.c: a msgpack value as text, the way Fluentd's
 * filters and placeholders see it (Ruby's to_s, Float#to_s); see record.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json.h"
#include "lib/mp.h"
#include "aggregator/record.h"

/* ---- text ---------------------------------------------------------------------------------- */

size_t rec_double_text(char buf[32], double d)
{
    if (isnan(d))
        return (size_t)snprintf(buf, 32, "NaN");
    if (isinf(d))
        return (size_t)snprintf(buf, 32, d < 0 ? "-Infinity" : "Infinity");
    if (d == 0)
        return (size_t)snprintf(buf, 32, signbit(d) ? "-0.0" : "0.0");
    char e[40];
    int prec;
    for (prec = 0; prec < 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec, d);
        if (strtod(e, NULL) == d)
            break;
    }
    if (prec == 17)
        snprintf(e, sizeof e, "%.16e", d);
    /* e: [-]D[.DDDD]e[+-]XX */
    char digits[24];
    size_t nd = 0;
    const char *s = e;
    int neg = 0;
    if (*s == '-')
        neg = 1, s++;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nd < sizeof digits - 1)
            digits[nd++] = *s;
    int exp10 = atoi(s + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    size_t o = 0;
    if (neg)
        buf[o++] = '-';
    if (exp10 >= 16 || exp10 < -4) {
        buf[o++] = digits[0];
        buf[o++] = '.';
        if (nd > 1) {
            memcpy(buf + o, digits + 1, nd - 1);
            o += nd - 1;
        } else {
            buf[o++] = '0';
        }
        o += (size_t)snprintf(buf + o, 32 - o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
        return o;
    }
    if (exp10 < 0) {
        buf[o++] = '0';
        buf[o++] = '.';
        for (int i = -1; i > exp10; i--)
            buf[o++] = '0';
        memcpy(buf + o, digits, nd);
        o += nd;
    } else {
        size_t ip = (size_t)exp10 + 1; /* digits before the point */
        for (size_t i = 0; i < ip; i++)
            buf[o++] = i < nd ? digits[i] : '0';
        buf[o++] = '.';
        if (nd > ip) {
            memcpy(buf + o, digits + ip, nd - ip);
            o += nd - ip;
        } else {
            buf[o++] = '0';
        }
    }
    buf[o] = 0;
    return o;
}

static int value_text(wbuf *out, const uint8_t *v, size_t vlen, int ruby_nil)
{
    const uint8_t *p = v, *end = v + vlen;
    mp_obj o;
    if (mp_read(&p, end, &o) != MP_OK)
        return -1;
    char tmp[40];
    int n;
    switch (o.type) {
    case MP_NIL:
        if (ruby_nil)
            return 0;
        /* fall through */
    case MP_BOOL:
    case MP_UINT:
    case MP_INT: return jw_scalar(out, &o);
    case MP_FLOAT: return rec_add(out, tmp, rec_double_text(tmp, o.v.f));
    case MP_STR:
    case MP_BIN: return rec_add(out, o.ptr, o.len);
    case MP_EXT:
        if (o.ext_type == 0 && o.len == 8) {
            n = snprintf(tmp, sizeof tmp, "%u", mp_be32(o.ptr)); /* EventTime#to_s is its seconds */
            return rec_add(out, tmp, (size_t)n);
        }
        /* fall through */
    default: {
        const uint8_t *q = v;
        return jw_value(out, &q, end);
    }
    }
}

int rec_value_text(wbuf *out, const uint8_t *v, size_t vlen) { return value_text(out, v, vlen, 0); }
int rec_value_to_s(wbuf *out, const uint8_t *v, size_t vlen) { return value_text(out, v, vlen, 1); }
