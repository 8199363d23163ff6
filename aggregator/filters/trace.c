/*
 * aggregator/filters/trace.c: weir's own trace filter: finds a distributed
 * trace id in the record and writes it, normalised, to one field.
 *
 *   search_keys       record accessors tried in order (default
 *                     trace.id, trace_id, traceId, traceparent, x-b3-traceid,
 *                     b3, $.trace.id)
 *   span_search_keys  where a span id may be (default span.id, span_id,
 *                     spanId, x-b3-spanid, $.span.id)
 *   trace_key         where the trace id goes (default "trace.id", a flat key)
 *   span_key          where the span id goes (default "span.id")
 *
 * A value is a trace id when it is 32 or 16 hex digits (not all zero), a W3C
 * traceparent "VV-<32 hex>-<16 hex>-<2 hex>" (trace id and span id), or a B3
 * single header "<trace>-<span>[-<sampled>[-<parent>]]". Hex is lowercased.
 * The span id comes from the traceparent/b3 value, else from
 * span_search_keys (16 hex). Records without a valid trace id, or that
 * already hold exactly the normalised values, are left alone.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/filter.h"
#include "aggregator/record.h"

typedef struct trace_ctx {
    char *trace_key, *span_key;
    char **search_keys, **span_search_keys;
    rec_path *tp, *sp;
    size_t ntp, nsp;
    size_t tk_len, sk_len;
} trace_ctx;

static const conf_spec trace_spec[] = {
    {"trace_key", CONF_STR, "trace.id", 0, offsetof(trace_ctx, trace_key), NULL,
     "where the trace id is written (a flat key)"},
    {"span_key", CONF_STR, "span.id", 0, offsetof(trace_ctx, span_key), NULL, "where the span id is written"},
    {"search_keys", CONF_ARRAY, "trace.id,trace_id,traceId,traceparent,x-b3-traceid,b3,$.trace.id", 0,
     offsetof(trace_ctx, search_keys), NULL,
     "where to look for the trace id, in order (record accessors)"},
    {"span_search_keys", CONF_ARRAY, "span.id,span_id,spanId,x-b3-spanid,$.span.id", 0,
     offsetof(trace_ctx, span_search_keys), NULL,
     "where to look for the span id, when the trace value has none"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};


static int trace_init(filter *f, conf_node *n, conf_errors *errs)
{
    trace_ctx *c = f->ctx;
    c->tk_len = strlen(c->trace_key);
    c->sk_len = strlen(c->span_key);
    int a = filter_compile_keys(c->search_keys, &c->tp, &c->ntp, "search_keys", n, errs);
    int b = filter_compile_keys(c->span_search_keys, &c->sp, &c->nsp, "span_search_keys", n, errs);
    return a || b ? -1 : 0;
}

static void trace_exit(filter *f)
{
    trace_ctx *c = f->ctx;
    rec_paths_free(c->tp, c->ntp);
    rec_paths_free(c->sp, c->nsp);
}

/* n hex digits at s, lowercased into d; not all zero. */
static int hex_id(const uint8_t *s, size_t n, char *d)
{
    int nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = s[i];
        if (ch >= 'A' && ch <= 'F')
            ch = (uint8_t)(ch - 'A' + 'a');
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return -1;
        nonzero |= ch != '0';
        d[i] = (char)ch;
    }
    return nonzero ? 0 : -1;
}

static int is_hex(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = s[i] | 0x20;
        if (!((s[i] >= '0' && s[i] <= '9') || (ch >= 'a' && ch <= 'f')))
            return 0;
    }
    return 1;
}

/* A trace id value: sets trace (32 or 16 chars) and maybe span (16). */
static int trace_value(const uint8_t *s, size_t n, char *trace, size_t *tl, char *span, size_t *sl)
{
    /* W3C traceparent: version-trace-parent-flags; version ff is invalid;
     * version 00 has exactly these four fields, later ones may add more */
    if (n >= 55 && s[2] == '-' && s[35] == '-' && s[52] == '-') {
        int v00 = s[0] == '0' && s[1] == '0';
        int vff = (s[0] | 0x20) == 'f' && (s[1] | 0x20) == 'f';
        if (!is_hex(s, 2) || vff || !is_hex(s + 53, 2) || (v00 && n != 55) || (!v00 && n > 55 && s[55] != '-'))
            return -1;
        if (hex_id(s + 3, 32, trace) || hex_id(s + 36, 16, span))
            return -1;
        *tl = 32;
        *sl = 16;
        return 0;
    }
    if (n == 32 || n == 16) {
        if (hex_id(s, n, trace))
            return -1;
        *tl = n;
        return 0;
    }
    /* B3 single header: trace-span[-sampled[-parent]] */
    const uint8_t *dash = memchr(s, '-', n);
    if (dash && (dash - s == 32 || dash - s == 16)) {
        size_t l = (size_t)(dash - s);
        size_t rest = n - l - 1;
        if ((rest == 16 || (rest > 16 && dash[17] == '-')) && hex_id(s, l, trace) == 0 &&
            hex_id(dash + 1, 16, span) == 0) {
            *tl = l;
            *sl = 16;
            return 0;
        }
    }
    return -1;
}

static int same_str(const uint8_t *rec, size_t len, const char *k, size_t kl, const char *v, size_t vl)
{
    size_t xl;
    const uint8_t *x = rec_get(rec, len, k, kl, &xl);
    if (!x)
        return 0;
    const uint8_t *s;
    uint32_t sn;
    const uint8_t *q = x;
    return rec_read_str(&q, x + xl, &s, &sn) == 1 && sn == vl && !memcmp(s, v, vl);
}

static int trace_filter(filter *f, filter_call *call, const uint8_t *rec, size_t len)
{
    const trace_ctx *c = f->ctx;
    char trace[32], span[16];
    size_t tl = 0, sl = 0;
    for (size_t i = 0; i < c->ntp && !tl; i++) {
        size_t vl;
        const uint8_t *v = rec_lookup(rec, len, &c->tp[i], &vl), *s, *q = v;
        uint32_t sn;
        if (v && rec_read_str(&q, v + vl, &s, &sn) == 1)
            if (trace_value(s, sn, trace, &tl, span, &sl) != 0)
                tl = sl = 0;
    }
    if (!tl)
        return FILTER_KEEP;
    for (size_t i = 0; i < c->nsp && !sl; i++) {
        size_t vl;
        const uint8_t *v = rec_lookup(rec, len, &c->sp[i], &vl), *s, *q = v;
        uint32_t sn;
        if (v && rec_read_str(&q, v + vl, &s, &sn) == 1 && sn == 16 && hex_id(s, 16, span) == 0)
            sl = 16;
    }
    if (same_str(rec, len, c->trace_key, c->tk_len, trace, tl) &&
        (!sl || same_str(rec, len, c->span_key, c->sk_len, span, sl)))
        return FILTER_KEEP;
    uint8_t vals[2][40];
    wbuf w = {vals[0], 0, sizeof vals[0], sizeof vals[0]};
    wbuf w2 = {vals[1], 0, sizeof vals[1], sizeof vals[1]};
    mpw_str(&w, trace, tl);
    mpw_str(&w2, span, sl);
    rec_kv kv[2] = {{c->trace_key, c->tk_len, vals[0], w.len}, {c->span_key, c->sk_len, vals[1], w2.len}};
    if (rec_rewrite_n(call->out, rec, len, NULL, 0, kv, sl ? 2 : 1)) {
        snprintf(call->err, sizeof call->err, "trace: out of memory or malformed record");
        return FILTER_ERROR;
    }
    return FILTER_MODIFY;
}

FILTER_PLUGIN(trace, trace);
