/*
 * outputs/elasticsearch/response.c: what Elasticsearch's answer to a bulk
 * request means for each of its records.
 *
 * Every request is answered per item:
 *   2xx, and 409 on `create`      delivered
 *   429 and 503                   sent again alone within the write (up to
 *                                 bulk_retry_limit times, back-off from
 *                                 bulk_retry_wait), then OUT_RETRY
 *   other 5xx                     OUT_RETRY for that record alone
 *   any other 4xx (mapping ...)   OUT_ERROR with ES's "type: reason"
 * A whole request that fails (transport error, timeout, 401/403/408/429,
 * 5xx) is tried on the next host of `hosts` within the same write; when
 * every host failed, its records are OUT_RETRY (the whole batch when no
 * request got through). Any other refusal of the whole request (400, 404,
 * 413 ...) is OUT_RETRY too: the request was refused, not its records.
 * `generate_id` gives each record a deterministic _id (SHA-1 of tag, time and record) so that a resent request neither
 * duplicates documents (write_operation create: the copy is a 409) nor
 * loses any.
 *
 * Here: the items and the whole request after the last host
 * (es_apply_response: RS_*), which whole-request failures go to the next
 * host (es_status_next_host, used by hosts.c), and RS_* -> OUT_*
 * (es_mark_results). The resending of 429/503 records and "the whole
 * batch" are the write's (elasticsearch.c).
 *
 * Threads: works on one write's buffers only.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "outputs/elasticsearch/response.h"

int es_status_next_host(long s) { return s == 401 || s == 403 || s == 408 || s == 429 || s >= 500; }

static void set_st(es_buf *w, uint32_t k, int st, const char *why)
{
    w->st[k] = (uint8_t)st;
    free(w->why[k]);
    w->why[k] = why ? strdup(why) : NULL;
}

/* A bulk response cut at the HTTP client's bound (lib/http.h): its head, up
 * to the last whole item, closed into a document of its own. *nitems: the
 * items it holds. NULL when the head has no "items" array. With
 * filter_path=errors,items.*.status,items.*.error the body is
 * {"errors":B,"items":[{op:{...}},...]} and "errors" comes first. */
static json_t *load_truncated(const char *body, size_t len)
{
    const char *it = memmem(body, len, "\"items\"", 7);
    if (!it)
        return NULL;
    const char *p = memchr(it, '[', len - (size_t)(it - body));
    if (!p)
        return NULL;
    const char *end = body + len, *last = p + 1; /* after the last whole item */
    int depth = 0, str = 0;
    for (const char *q = p + 1; q < end; q++) {
        char ch = *q;
        if (str) {
            if (ch == '\\')
                q++;
            else if (ch == '"')
                str = 0;
        } else if (ch == '"') {
            str = 1;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth == 0)
                break; /* the items array closed: not truncated inside it */
            if (--depth == 0)
                last = q + 1;
        }
    }
    size_t head = (size_t)(p + 1 - body), items = (size_t)(last - (p + 1));
    char *doc = malloc(head + items + 3);
    if (!doc)
        return NULL;
    memcpy(doc, body, head);
    memcpy(doc + head, p + 1, items);
    size_t dl = head + items;
    while (dl > head && (doc[dl - 1] == ',' || doc[dl - 1] == ' ' || doc[dl - 1] == '\n'))
        dl--;
    memcpy(doc + dl, "]}", 2);
    dl += 2;
    json_error_t je;
    json_t *j = json_loadb(doc, dl, 0, &je);
    free(doc);
    return j;
}

/* The answer of a bulk request without any item error starts
 * {"errors":false (with filter_path=errors,...; ES and OpenSearch put
 * "errors" first, after "took" when a proxy drops the filter): then every
 * record was taken and the items need not be read. Parsing them with jansson
 * cost about a third of the output's CPU. */
static int no_item_errors(const http_req *r)
{
    const char *p = (const char *)r->resp.data, *end = p + r->resp.len;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    if (end - p > 8 && !memcmp(p, "{\"took\":", 8)) {
        p += 8;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == end || *p != ',')
            return 0;
        p++;
    } else if (p < end && *p == '{') {
        p++;
    } else {
        return 0;
    }
    static const char f[] = "\"errors\":false";
    return (size_t)(end - p) > sizeof f - 1 && !memcmp(p, f, sizeof f - 1) &&
           (p[sizeof f - 1] == ',' || p[sizeof f - 1] == '}');
}

/* Apply one bulk response to the records pend[0..n). -1 when the response
 * cannot be read (the caller then treats the request as failed whole). A
 * response cut at the bound (r->resp_truncated) is read as far as it goes:
 * "errors":false says every record is in; else the whole items kept apply
 * to their records and the rest are retried (an index request resent with
 * its _id overwrites, a create answers 409, which counts as done). */
static int apply_items(const char *id, const http_req *r, es_buf *w, const uint32_t *pend, uint32_t n, round_stats *rs)
{
    if (no_item_errors(r)) {
        for (uint32_t k = 0; k < n; k++)
            set_st(w, pend[k], RS_OK, NULL);
        return 0;
    }
    json_error_t je;
    json_t *j = json_loadb((const char *)r->resp.data, r->resp.len, 0, &je);
    int cut = 0;
    if (!j && r->resp_truncated && r->resp.len) {
        j = load_truncated((const char *)r->resp.data, r->resp.len);
        cut = 1;
    }
    if (!j)
        return -1;
    if (json_is_false(json_object_get(j, "errors"))) {
        for (uint32_t k = 0; k < n; k++)
            set_st(w, pend[k], RS_OK, NULL);
        json_decref(j);
        return 0;
    }
    json_t *items = json_object_get(j, "items");
    if (!json_is_array(items) || (cut ? json_array_size(items) > n : json_array_size(items) != n)) {
        wlog_error(ES_MOD, "%s: bulk response has %zu items for %u records", id,
                   json_is_array(items) ? json_array_size(items) : 0, n);
        json_decref(j);
        return -1;
    }
    uint32_t m = (uint32_t)json_array_size(items);
    if (cut) {
        static __thread double last_log;
        if (clock_every(&last_log, 10))
            wlog_warn(ES_MOD, "%s: bulk response of %u records cut at %zu bytes (the HTTP response bound): %u items "
                      "read, the other records are retried",
                      id, n, r->resp.len, m);
        for (uint32_t k = m; k < n; k++)
            set_st(w, pend[k], RS_RETRY, "bulk response truncated at the HTTP response bound");
    }
    for (uint32_t k = 0; k < m; k++) {
        json_t *it = json_array_get(items, k);
        const char *op = NULL;
        json_t *v = NULL;
        void *iter = json_object_iter(it);
        if (iter) {
            op = json_object_iter_key(iter);
            v = json_object_iter_value(iter);
        }
        long st = (long)json_integer_value(json_object_get(v, "status"));
        /* 409 on create: already indexed (a resent record with its deterministic _id) */
        if ((st >= 200 && st < 300) || (st == 409 && op && strcmp(op, "create") == 0)) {
            set_st(w, pend[k], RS_OK, NULL);
            continue;
        }
        json_t *err = json_object_get(v, "error");
        const char *type = json_string_value(json_object_get(err, "type"));
        const char *reason = json_string_value(json_object_get(err, "reason"));
        char why[600];
        snprintf(why, sizeof why, "HTTP %ld %s: %s", st, type ? type : "error", reason ? reason : "(no reason)");
        int s = (st == 429 || st == 503) ? RS_SOON : (st >= 500 || st == 0) ? RS_RETRY : RS_ERROR;
        set_st(w, pend[k], s, why);
        if (s == RS_ERROR && st == 400 && rs->log_400)
            wlog_warn(ES_MOD, "%s: 400 - Rejected by Elasticsearch: %s", id, why);
        if (s == RS_ERROR) {
            rs->nerr++;
            if (!rs->item_reason[0])
                es_scopy(rs->item_reason, sizeof rs->item_reason, why);
        } else {
            rs->n429 += st == 429;
            if (!rs->soon_reason[0])
                es_scopy(rs->soon_reason, sizeof rs->soon_reason, why);
        }
    }
    json_decref(j);
    return 0;
}

static void describe_failure(const http_req *r, char *out, size_t cap)
{
    if (r->transport_error)
        snprintf(out, cap, "%s%s", r->timed_out ? "timeout: " : "", r->error);
    else
        snprintf(out, cap, "HTTP %ld: %.180s", r->status, r->resp.len ? (const char *)r->resp.data : "");
    for (char *s = out; *s; s++)
        if (*s == '\n' || *s == '\r')
            *s = ' ';
}

void es_apply_response(const char *id, http_req *r, es_buf *w, const uint32_t *pp, uint32_t n, round_stats *rs)
{
    int whole = -1;
    if (!r->transport_error && r->status >= 200 && r->status < 300) {
        if (apply_items(id, r, w, pp, n, rs) == 0)
            return;
        snprintf(r->error, sizeof r->error, "unreadable bulk response");
        r->transport_error = 1;
        whole = RS_RETRY;
    } else if (r->status == 429 || r->status == 503) {
        whole = RS_SOON;
        rs->n429 += r->status == 429 ? n : 0;
    } else {
        /* a transport error, or the request refused whole on every host
         * (401/403/5xx, a gateway's 400 for a missing client certificate,
         * 404 for a wrong path, 413 ...): not its records, which the
         * buffer retries by its rules (then <secondary> or the
         * dead-letter file), as Fluentd does */
        whole = RS_RETRY;
    }
    char why[300];
    describe_failure(r, why, sizeof why);
    if (whole != RS_SOON) {
        rs->nfailed_req++;
        if (!rs->req_reason[0])
            es_scopy(rs->req_reason, sizeof rs->req_reason, why);
    } else if (!rs->soon_reason[0]) {
        es_scopy(rs->soon_reason, sizeof rs->soon_reason, why);
    }
    for (uint32_t k = 0; k < n; k++)
        set_st(w, pp[k], whole, why);
}

void es_mark_results(const es_buf *w, out_result *res, uint32_t *nok, uint32_t *nretry, uint32_t *nerr)
{
    for (uint32_t k = 0; k < w->nsent; k++) {
        int s = w->st[k];
        if (s == RS_OK) {
            (*nok)++;
            continue;
        }
        out_result_mark(res, w->recno[k], s == RS_ERROR ? OUT_ERROR : OUT_RETRY, w->why[k]);
        if (s == RS_ERROR)
            (*nerr)++;
        else
            (*nretry)++;
    }
}
