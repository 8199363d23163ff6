/*
 * aggregator/inputs/http_body.c: an in_http request's parameters and records
 * (see http.h). Fluentd 1.16's in_http, rule by rule:
 *
 *   - the record comes from the `msgpack` parameter (its first object), else
 *     `json`, else `ndjson` (one JSON text per line); none of them: 400;
 *   - a json or msgpack text that does not parse gives no record: 200 (in_http
 *     logs it at debug level); an ndjson line that does not parse: 400;
 *   - an array is a batch of records; a record that is not a map: 400;
 *   - HTTP_* (add_http_headers), QUERY_* (add_query_params) and REMOTE_ADDR
 *     (add_remote_addr) are merged into each record;
 *   - the time: `?time=` (Float: 0 is now), else the record's "time" key,
 *     removed from the record (a number; another type: 400), else now.
 */
#include "aggregator/inputs/http.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/batch.h"
#include "lib/json_mp.h"
#include "lib/mp.h"
#include "aggregator/record.h"
#include "aggregator/timeparse.h"

int http_params_set(http_params *p, const char *k, size_t klen, const char *v, size_t vlen)
{
    char *nv = malloc(vlen + 1);
    if (!nv)
        return -1;
    if (vlen)
        memcpy(nv, v, vlen);
    nv[vlen] = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (strlen(p->v[i].k) == klen && !memcmp(p->v[i].k, k, klen)) {
            free(p->v[i].v);
            p->v[i].v = nv;
            p->v[i].vlen = vlen;
            return 0;
        }
    }
    http_param *g = realloc(p->v, (p->n + 1) * sizeof *g);
    char *nk = strndup(k, klen);
    if (!g || !nk) {
        if (g)
            p->v = g;
        free(nv);
        free(nk);
        return -1;
    }
    p->v = g;
    p->v[p->n++] = (http_param){nk, nv, vlen};
    return 0;
}

const http_param *http_params_get(const http_params *p, const char *k)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->v[i].k, k))
            return &p->v[i];
    return NULL;
}

void http_params_free(http_params *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i].k);
        free(p->v[i].v);
    }
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

static int hexv(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* WEBrick::HTTPUtils.unescape_form: '+' is a space, %XX a byte */
static size_t unescape_form(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '+')
            out[o++] = ' ';
        else if (s[i] == '%' && i + 2 < n && hexv(s[i + 1]) >= 0 && hexv(s[i + 2]) >= 0) {
            out[o++] = (char)(hexv(s[i + 1]) * 16 + hexv(s[i + 2]));
            i += 2;
        } else
            out[o++] = s[i];
    }
    return o;
}

int http_params_query(http_params *p, const char *s, size_t n)
{
    if (!s)
        return 0;
    char *buf = malloc(n + 1);
    if (!buf)
        return -1;
    int rc = 0;
    size_t i = 0;
    while (i <= n && !rc) {
        size_t e = i;
        while (e < n && s[e] != '&' && s[e] != ';')
            e++;
        if (e > i) {
            const char *eq = memchr(s + i, '=', e - i);
            size_t kl = eq ? (size_t)(eq - (s + i)) : e - i;
            char *k = malloc(kl + 1);
            if (!k) {
                rc = -1;
                break;
            }
            size_t kn = unescape_form(s + i, kl, k);
            size_t vn = eq ? unescape_form(eq + 1, (size_t)(s + e - eq - 1), buf) : 0;
            rc = http_params_set(p, k, kn, buf, vn);
            free(k);
        }
        i = e + 1;
    }
    free(buf);
    return rc;
}

static int prefix_ci(const char *s, const char *pre)
{
    return s && !strncasecmp(s, pre, strlen(pre));
}

int http_params_collect(http_params *p, const char *query, const char *ctype, const uint8_t *body, size_t blen,
                        int custom, int add_query_params, const http_params *env)
{
    if (query && http_params_query(p, query, strlen(query)))
        return -1;
    if (custom) {
        /* the body goes to the custom parser */
    } else if (prefix_ci(ctype, "application/x-www-form-urlencoded")) {
        if (http_params_query(p, (const char *)body, blen))
            return -1;
    } else if (prefix_ci(ctype, "application/json")) {
        if (http_params_set(p, "json", 4, (const char *)body, blen))
            return -1;
    } else if (prefix_ci(ctype, "application/msgpack")) {
        if (http_params_set(p, "msgpack", 7, (const char *)body, blen))
            return -1;
    } else if (prefix_ci(ctype, "application/x-ndjson")) {
        if (http_params_set(p, "ndjson", 6, (const char *)body, blen))
            return -1;
    }
    if (add_query_params && query) {
        http_params q = {0};
        if (http_params_query(&q, query, strlen(query))) {
            http_params_free(&q);
            return -1;
        }
        for (size_t i = 0; i < q.n; i++) {
            char k[512];
            int kl = snprintf(k, sizeof k, "QUERY_%s", q.v[i].k);
            for (int j = 6; j < kl && j < (int)sizeof k; j++)
                k[j] = k[j] == '-' ? '_' : (char)((k[j] >= 'a' && k[j] <= 'z') ? k[j] - 32 : k[j]);
            if (kl >= (int)sizeof k || http_params_set(p, k, (size_t)kl, q.v[i].v, q.v[i].vlen)) {
                http_params_free(&q);
                return -1;
            }
        }
        http_params_free(&q);
    }
    for (size_t i = 0; env && i < env->n; i++)
        if (http_params_set(p, env->v[i].k, strlen(env->v[i].k), env->v[i].v, env->v[i].vlen))
            return -1;
    return 0;
}

size_t http_path_tag(const char *path, size_t n, char *tag, size_t cap)
{
    if (n && path[0] == '/')
        path++, n--;
    while (n && path[n - 1] == '/') /* split drops trailing empty parts */
        n--;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++)
        tag[o++] = path[i] == '/' ? '.' : path[i];
    if (cap)
        tag[o] = 0;
    return o;
}

/* Ruby's Float#to_s split at the dot, as NumericTimeParser(:float) reads ?time= */
static void float_time(double d, uint32_t *sec, uint32_t *nsec)
{
    char t[32];
    size_t n = rec_double_text(t, d);
    t[n] = 0;
    char *dot = strchr(t, '.');
    long long s = strtoll(t, NULL, 10);
    uint32_t ns = 0;
    if (dot) {
        int digits = 0;
        for (const char *q = dot + 1; *q >= '0' && *q <= '9' && digits < 9; q++, digits++)
            ns = ns * 10 + (uint32_t)(*q - '0');
        for (; digits < 9; digits++)
            ns *= 10;
    }
    *sec = s < 0 ? 0 : s > 0xffffffffLL ? 0xffffffffu : (uint32_t)s;
    *nsec = ns;
}

/* one record map: merge the request's keys, take the time, append the entry */
static int add_record(const http_opts *o, const http_params *p, const uint8_t *rec, size_t len, uint32_t now_sec,
                      uint32_t now_nsec, int has_time, uint32_t psec, uint32_t pnsec, wbuf *entries, char *err,
                      size_t errlen)
{
    const uint8_t *q = rec;
    mp_obj m;
    if (mp_read(&q, rec + len, &m) != MP_OK || m.type != MP_MAP) {
        snprintf(err, errlen, "the record is not a map (an object)");
        return 400;
    }
    uint32_t sec = now_sec, nsec = now_nsec;
    rec_kv drop[1] = {{"time", 4, NULL, 0}};
    size_t ndrop = 0;
    const http_param *pt = http_params_get(p, "time");
    if (pt) {
        double d = ruby_str_to_f(pt->v, pt->vlen);
        if (d != 0)
            float_time(d, &sec, &nsec);
    } else if (has_time) {
        sec = psec, nsec = pnsec;
    } else if (!o->custom) {
        size_t vl;
        const uint8_t *v = rec_get(rec, len, "time", 4, &vl);
        if (v) {
            ndrop = 1; /* record.delete("time") */
            const uint8_t *vp = v;
            mp_obj t;
            double d;
            if (mp_read(&vp, v + vl, &t) != MP_OK) {
                snprintf(err, errlen, "invalid record");
                return 400;
            }
            if (t.type == MP_NIL || (t.type == MP_BOOL && !t.v.b)) {
                /* nil / false: the current time */
            } else if ((t.type == MP_UINT || t.type == MP_INT || t.type == MP_FLOAT) && mp_number(&t, &d)) {
                if (!(d >= 0 && d < 4294967296.0)) {
                    snprintf(err, errlen, "time %g out of range", d);
                    return 400;
                }
                double fl = floor(d);
                sec = (uint32_t)fl;
                nsec = (uint32_t)((d - fl) * 1e9);
                if (nsec > 999999999u)
                    nsec = 999999999u;
            } else {
                snprintf(err, errlen, "can't convert the \"time\" value into an exact number");
                return 400;
            }
        }
    }
    /* the keys to merge: their msgpack values first, then the pairs (no realloc after) */
    wbuf vals = {0};
    size_t nset = 0;
    /* at most every parameter and REMOTE_ADDR */
    rec_kv *set = malloc((p->n + 1) * sizeof *set);
    size_t *voff = malloc((p->n + 1) * sizeof *voff);
    int rc = 500;
    if (!set || !voff)
        goto out;
    for (size_t i = 0; i < p->n; i++) {
        const char *k = p->v[i].k;
        int take = (o->add_http_headers && !strncmp(k, "HTTP_", 5)) || (o->add_query_params && !strncmp(k, "QUERY_", 6));
        if (!take)
            continue;
        voff[nset] = vals.len;
        if (mpw_str(&vals, p->v[i].v, p->v[i].vlen))
            goto out;
        set[nset] = (rec_kv){k, strlen(k), NULL, vals.len - voff[nset]};
        nset++;
    }
    if (o->add_remote_addr) {
        const http_param *ra = http_params_get(p, "REMOTE_ADDR");
        voff[nset] = vals.len;
        if (ra ? mpw_str(&vals, ra->v, ra->vlen) : mpw_nil(&vals))
            goto out;
        set[nset] = (rec_kv){"REMOTE_ADDR", 11, NULL, vals.len - voff[nset]};
        nset++;
    }
    for (size_t i = 0; i < nset; i++)
        set[i].val = vals.data + voff[i];
    size_t start = entries->len;
    if (batch_put_entry_head(entries, sec, nsec, NULL, 0) ||
        rec_rewrite_n(entries, rec, len, drop, ndrop, set, nset)) {
        entries->len = start;
        snprintf(err, errlen, "invalid record");
        rc = 400;
        goto out;
    }
    rc = 200;
out:
    if (rc == 500)
        snprintf(err, errlen, "out of memory");
    free(set);
    free(voff);
    wbuf_free(&vals);
    return rc;
}

/* the records of one msgpack value: a map, or an array of maps */
static int add_value(const http_opts *o, const http_params *p, const uint8_t *v, size_t vl, uint32_t now_sec,
                     uint32_t now_nsec, wbuf *entries, uint32_t *nrec, char *err, size_t errlen)
{
    const uint8_t *q = v, *end = v + vl;
    mp_obj a;
    if (mp_read(&q, end, &a) != MP_OK) {
        snprintf(err, errlen, "invalid record");
        return 400;
    }
    if (a.type != MP_ARRAY) {
        int rc = add_record(o, p, v, vl, now_sec, now_nsec, 0, 0, 0, entries, err, errlen);
        if (rc == 200)
            (*nrec)++;
        return rc;
    }
    for (uint32_t i = 0; i < a.len; i++) {
        const uint8_t *s = q;
        if (rec_skip(&q, end)) {
            snprintf(err, errlen, "invalid record");
            return 400;
        }
        int rc = add_record(o, p, s, (size_t)(q - s), now_sec, now_nsec, 0, 0, 0, entries, err, errlen);
        if (rc != 200)
            return rc;
        (*nrec)++;
    }
    return 200;
}

int http_request_events(const http_opts *o, const http_params *p, const uint8_t *body, size_t blen, uint32_t now_sec,
                        uint32_t now_nsec, wbuf *entries, uint32_t *nrec, char *err, size_t errlen)
{
    size_t start = entries->len;
    uint32_t n0 = *nrec;
    wbuf tmp = {0};
    int rc = 400;
    err[0] = 0;
    if (o->custom) {
        int has_time = 0;
        uint32_t s = 0, ns = 0;
        char perr[256] = "";
        if (parse_text(o->custom, (const char *)body, blen, &tmp, &has_time, &s, &ns, perr, sizeof perr) != PARSE_OK) {
            snprintf(err, errlen, "Received event is not %s: %.*s", o->format ? o->format : "parsable",
                     (int)(blen > 200 ? 200 : blen), (const char *)body);
            goto done;
        }
        rc = add_record(o, p, tmp.data, tmp.len, now_sec, now_nsec, has_time, s, ns, entries, err, errlen);
        if (rc == 200)
            (*nrec)++;
        goto done;
    }
    const http_param *mp = http_params_get(p, "msgpack"), *js = http_params_get(p, "json"),
                     *nd = http_params_get(p, "ndjson");
    if (mp) {
        const uint8_t *q = (const uint8_t *)mp->v, *end = q + mp->vlen;
        if (rec_skip(&q, end) != 0) { /* nothing complete: no record */
            rc = 200;
            goto done;
        }
        rc = add_value(o, p, (const uint8_t *)mp->v, (size_t)(q - (const uint8_t *)mp->v), now_sec, now_nsec, entries,
                       nrec, err, errlen);
    } else if (js) {
        if (json_mp(&tmp, (const uint8_t *)js->v, js->vlen) != 0) {
            rc = 200; /* in_http: "incoming event is invalid" at debug level, 200 */
            goto done;
        }
        rc = add_value(o, p, tmp.data, tmp.len, now_sec, now_nsec, entries, nrec, err, errlen);
    } else if (nd) {
        /* each line one record (a line that is not a JSON map: 400) */
        const char *s = nd->v, *e = s + nd->vlen;
        size_t n = nd->vlen;
        while (n && (s[n - 1] == '\n' || s[n - 1] == '\r')) /* split drops trailing empty lines */
            n--;
        e = s + n;
        rc = 200;
        while (s < e && rc == 200) {
            const char *nl = memchr(s, '\n', (size_t)(e - s));
            const char *le = nl ? nl : e;
            size_t ll = (size_t)(le - s);
            if (ll && s[ll - 1] == '\r')
                ll--;
            tmp.len = 0;
            if (json_mp(&tmp, (const uint8_t *)s, ll) != 0) {
                snprintf(err, errlen, "an ndjson line is not JSON");
                rc = 400;
                break;
            }
            mp_obj m;
            const uint8_t *q = tmp.data;
            if (mp_read(&q, tmp.data + tmp.len, &m) != MP_OK || m.type != MP_MAP) {
                snprintf(err, errlen, "an ndjson line is not a JSON object");
                rc = 400;
                break;
            }
            rc = add_record(o, p, tmp.data, tmp.len, now_sec, now_nsec, 0, 0, 0, entries, err, errlen);
            if (rc == 200)
                (*nrec)++;
            s = nl ? nl + 1 : e;
        }
    } else {
        snprintf(err, errlen, "'json', 'ndjson' or 'msgpack' parameter is required");
    }
done:
    if (rc != 200) {
        entries->len = start;
        *nrec = n0;
    }
    wbuf_free(&tmp);
    return rc;
}
