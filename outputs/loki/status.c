/*
 * outputs/loki/status.c: what Loki's answer to one push request (one
 * tenant's records of a write) means for those records.
 *
 * Outcome per tenant request:
 *   2xx                    delivered
 *   transport error, 429, 5xx, 401/403/407 (credentials: a gateway's
 *   auth), 404 (url), 408   OUT_RETRY (whole batch when every request
 *                          failed that way: the buffer's retry rules apply;
 *                          otherwise only that tenant's records are marked)
 *   other 4xx (400: out of order, too old, line too long, invalid labels)
 *                          never retried: OUT_ERROR with Loki's message,
 *                          for the records of the streams the message names
 *                          (Loki has ingested the others) or, when it names
 *                          none, for every record of that request. A stream
 *                          is named when a label set in the message ("stream
 *                          '{...}'", "for stream: {...}") holds all of its
 *                          labels (Loki may add service_name).
 *
 * lk_status classifies; loki.c's write marks the retries and decides on the
 * whole batch; lk_reject finds the streams a 400 names.
 */
#include <stdio.h>
#include <string.h>

#include "outputs/loki/status.h"

int lk_status(const http_req *q)
{
    if (q->status >= 200 && q->status < 300)
        return LK_DELIVERED;
    /* 401/403/407 (credentials), 404 (url or gateway route), 408 and 429:
     * the request was refused as a whole, not its records */
    int retry = q->transport_error || q->status == 0 || q->status == 429 || q->status >= 500 ||
                q->status == 401 || q->status == 403 || q->status == 404 || q->status == 407 ||
                q->status == 408;
    return retry ? LK_RETRY : LK_REJECTED;
}

void lk_excerpt(char *out, size_t cap, const http_req *q)
{
    if (q->transport_error) {
        snprintf(out, cap, "loki: %s", q->error[0] ? q->error : "transport error");
        return;
    }
    const char *b = q->resp.len ? (const char *)q->resp.data : "";
    size_t n = strcspn(b, "\n");
    snprintf(out, cap, "loki: HTTP %ld: %.*s", q->status, (int)(n > 400 ? 400 : n), b);
}

/* Does the label text `seg` ({a="b", c="d"}, as Loki prints it) hold every
 * pair of stream s? Loki may add labels of its own (service_name), so the
 * stream's pairs are looked up one by one, bounded by "{"/", " and ","/"}". */
static int seg_has_stream(const lk_req *r, const lk_stream *s, const char *seg, size_t seglen)
{
    const char *lab = (const char *)r->text.data + s->lab_off + 1; /* after '{' */
    const char *lend = (const char *)r->text.data + s->lab_off + s->lab_len - 1; /* the '}' */
    while (lab < lend) {
        /* one pair: name="value" with escapes; ends at the closing quote */
        const char *q = memchr(lab, '"', (size_t)(lend - lab));
        if (!q)
            return 0;
        const char *v = q + 1;
        while (v < lend && *v != '"')
            v += *v == '\\' ? 2 : 1;
        size_t plen = (size_t)(v + 1 - lab);
        int found = 0;
        for (const char *x = seg; x + plen <= seg + seglen; x++) {
            x = memmem(x, (size_t)(seg + seglen - x), lab, plen);
            if (!x)
                break;
            int before = x > seg && (x[-1] == '{' || x[-1] == ' ');
            int after = x + plen < seg + seglen && (x[plen] == ',' || x[plen] == '}');
            if (before && after) {
                found = 1;
                break;
            }
        }
        if (!found)
            return 0;
        lab = v + 1;
        if (lab < lend && *lab == ',')
            lab += 2; /* ", " */
    }
    return 1;
}

/* If p starts a label set as Loki prints it ({a="b", c="d"}), return the
 * pointer after its '}', else NULL. */
static const char *label_set_end(const char *p, const char *end)
{
    if (p >= end || *p != '{')
        return NULL;
    p++;
    for (;;) {
        const char *n = p;
        while (p < end && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                           *p == '_'))
            p++;
        if (p == n || end - p < 2 || p[0] != '=' || p[1] != '"')
            return NULL;
        p += 2;
        while (p < end && *p != '"')
            p += *p == '\\' ? 2 : 1;
        if (p >= end)
            return NULL;
        p++;
        if (p < end && *p == '}')
            return p + 1;
        if (end - p < 2 || p[0] != ',' || p[1] != ' ')
            return NULL;
        p += 2;
    }
}

/* The line of a 4xx body that names stream s (Loki writes "stream
 * '{...}'" or "for stream: {...}"), for its records' reason. 0 when no
 * label set in the body holds all of the stream's labels. */
static int stream_reason(const lk_req *r, const lk_stream *s, const http_req *q, char *out, size_t cap)
{
    if (!q->resp.len)
        return 0;
    const char *body = (const char *)q->resp.data, *end = body + q->resp.len;
    for (const char *a = body; (a = memchr(a, '{', (size_t)(end - a))) != NULL;) {
        const char *z = label_set_end(a, end);
        if (!z) {
            a++;
            continue;
        }
        if (seg_has_stream(r, s, a, (size_t)(z - a))) {
            const char *ls = a;
            while (ls > body && ls[-1] != '\n')
                ls--;
            /* Loki's message may span two lines ("...',\nuser 'x', ... for stream: {...}") */
            if (ls > body + 1 && ls[-2] == ',') {
                ls -= 2;
                while (ls > body && ls[-1] != '\n')
                    ls--;
            }
            const char *le = memchr(z, '\n', (size_t)(end - z));
            size_t n = (size_t)((le ? le : end) - ls);
            snprintf(out, cap, "loki: HTTP %ld: %.*s", q->status, (int)(n > 600 ? 600 : n), ls);
            for (char *x = out; *x; x++)
                if (*x == '\n')
                    *x = ' ';
            return 1;
        }
        a = z;
    }
    return 0;
}

/* Not retried (4xx other than those above). Mark OUT_ERROR the records of
 * the streams the message names (Loki ingested the others) or, when it names
 * none, every record of the request. */
size_t lk_reject(const lk_req *r, const http_req *q, size_t from, size_t to, const char *why, out_result *res)
{
    size_t named = 0, nrej = 0;
    char sr[700];
    for (size_t i = from; i < to;) {
        const lk_stream *s = &r->streams[r->recs[i].stream];
        size_t j = i;
        while (j < to && r->recs[j].stream == r->recs[i].stream)
            j++;
        if (q->status == 400 && stream_reason(r, s, q, sr, sizeof sr)) {
            named++;
            for (size_t x = i; x < j; x++)
                out_result_mark(res, r->recs[x].idx, OUT_ERROR, sr);
            nrej += j - i;
        }
        i = j;
    }
    if (!named) {
        for (size_t i = from; i < to; i++)
            out_result_mark(res, r->recs[i].idx, OUT_ERROR, why);
        nrej = to - from;
    }
    return nrej;
}
