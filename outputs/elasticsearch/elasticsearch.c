/*
 * outputs/elasticsearch/elasticsearch.c: fluent-plugin-elasticsearch's
 * out_elasticsearch (also registered as `opensearch`): records become _bulk
 * requests.
 *
 * One write turns a batch into NDJSON (action line + document line per
 * record: bulk.c, with the index name of index.c), cut into requests of at
 * most bulk_message_request_threshold bytes that run concurrently through
 * the shared HTTP client (keep-alive pool, http_max_in_flight at once),
 * each with failover to the next of `hosts` (hosts.c). Every request is
 * answered per item (the status table: response.c); records answered 429
 * or 503 are sent again alone within the write, up to bulk_retry_limit
 * times with a back-off from bulk_retry_wait, then left to the buffer's
 * retry (OUT_RETRY). When no request got through, the whole batch is
 * OUT_RETRY. The index template is installed before the first bulk
 * (template.c).
 *
 * Here: the parameters, init (checks, the index name, the HTTP client),
 * exit, and the write (encode, rounds of bulk requests, results and logs).
 *
 * Ownership and threads: the context (bound config, compiled templates,
 * hosts, the http_client) is built by init on the main thread and read-only
 * afterwards, except `rr` (atomic round-robin counter), `failing` (atomic,
 * for log de-duplication) and the template state under tmpl_mu. A write
 * owns all of its buffers, so several flush threads may write at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/array.h"
#include "lib/http.h"
#include "lib/log.h"
#include "aggregator/output.h"
#include "aggregator/record.h"
#include "aggregator/timeparse.h"
#include "outputs/elasticsearch/bulk.h"
#include "outputs/elasticsearch/es.h"
#include "outputs/elasticsearch/hosts.h"
#include "outputs/elasticsearch/index.h"
#include "outputs/elasticsearch/response.h"
#include "outputs/elasticsearch/template.h"

static const conf_spec es_spec[] = {
    {"host", CONF_STR, "localhost", 0, offsetof(out_es, host), NULL, "one node (without `hosts`)"},
    {"port", CONF_INT, "9200", 0, offsetof(out_es, port), NULL, "its port"},
    {"hosts", CONF_ARRAY, NULL, 0, offsetof(out_es, hosts), NULL,
     "several nodes, `h1:9200,h2:9201` or URLs `https://h:9200/prefix` (credentials in a URL are passed to "
     "libcurl). Each write starts at the next host (round robin); a request that fails on one host (connection "
     "refused, timeout, TLS error, 401/403/408/429/5xx for the whole request) is sent to the next one within the "
     "same write, up to one try per host"},
    {"scheme", CONF_ENUM, "http", 0, offsetof(out_es, scheme), "http|https",
     "for `host`/`port` and host:port entries of `hosts`"},
    {"path", CONF_STR, NULL, 0, offsetof(out_es, path), NULL, "URL prefix in front of `/_bulk` (a proxy path)"},
    {"user", CONF_STR, NULL, 0, offsetof(out_es, user), NULL, "HTTP basic auth user"},
    {"password", CONF_STR, NULL, 0, offsetof(out_es, password), NULL, "HTTP basic auth password"},
    {"api_key", CONF_STR, NULL, 0, offsetof(out_es, api_key), NULL,
     "sent as `Authorization: ApiKey <value>` (the base64 `id:api_key` ES gives you)"},
    {"ssl_verify", CONF_BOOL, "true", 0, offsetof(out_es, ssl_verify), NULL,
     "verify the server certificate and host name"},
    {"ca_file", CONF_STR, NULL, 0, offsetof(out_es, ca_file), NULL,
     "PEM bundle to verify the server with; default: the system CAs"},
    {"client_cert", CONF_STR, NULL, 0, offsetof(out_es, client_cert), NULL, "client certificate (mTLS), PEM"},
    {"client_key", CONF_STR, NULL, 0, offsetof(out_es, client_key), NULL, "its private key, PEM"},
    {"client_key_pass", CONF_STR, NULL, 0, offsetof(out_es, client_key_pass), NULL, "passphrase of `client_key`"},
    {"logstash_format", CONF_BOOL, "false", 0, offsetof(out_es, logstash_format), NULL,
     "index `<logstash_prefix><logstash_prefix_separator><logstash_dateformat>`; also adds `@timestamp`"},
    {"logstash_prefix", CONF_STR, "logstash", 0, offsetof(out_es, logstash_prefix), NULL,
     "may hold placeholders (see \"Placeholders\")"},
    {"logstash_prefix_separator", CONF_STR, "-", 0, offsetof(out_es, logstash_prefix_separator), NULL,
     "between the prefix and the date"},
    {"logstash_dateformat", CONF_STR, "%Y.%m.%d", 0, offsetof(out_es, logstash_dateformat), NULL,
     "strftime of the record's time"},
    {"index_name", CONF_STR, "fluentd", 0, offsetof(out_es, index_name), NULL,
     "index when `logstash_format` is false; placeholders and strftime directives allowed"},
    {"include_tag_key", CONF_BOOL, "false", 0, offsetof(out_es, include_tag_key), NULL,
     "add the tag to the document, under `tag_key`"},
    {"tag_key", CONF_STR, "tag", 0, offsetof(out_es, tag_key), NULL, "the key of `include_tag_key`"},
    {"time_key", CONF_STR, NULL, 0, offsetof(out_es, time_key), NULL,
     "take the record's time from this field (record accessor; ISO 8601 / RFC 3339 string or epoch seconds); it "
     "then names the index and `@timestamp`"},
    {"time_key_exclude_timestamp", CONF_BOOL, "false", 0, offsetof(out_es, time_key_exclude_timestamp), NULL,
     "with `time_key`: do not add `@timestamp`"},
    {"include_timestamp", CONF_BOOL, "false", 0, offsetof(out_es, include_timestamp), NULL,
     "add `@timestamp` without `logstash_format`"},
    {"time_precision", CONF_INT, "9", 0, offsetof(out_es, time_precision), NULL,
     "fraction digits of `@timestamp` (0..9); it is written in UTC, `2026-11-22T01:02:03.123456789Z`"},
    {"utc_index", CONF_BOOL, "true", 0, offsetof(out_es, utc_index), NULL,
     "the date in index names is UTC; `false`: weir's local time zone (`TZ`)"},
    {"id_key", CONF_STR, NULL, 0, offsetof(out_es, id_key), NULL,
     "`_id` from this field (record accessor); a record without it gets an ES-generated id. Excludes `generate_id`"},
    {"generate_id", CONF_BOOL, "false", 0, offsetof(out_es, generate_id), NULL,
     "weir extension: a deterministic `_id`, base64url(SHA-1(tag, event time with nanoseconds, record)), 27 "
     "characters (see \"Duplicates and `generate_id`\"). Excludes `id_key`"},
    {"write_operation", CONF_ENUM, "index", 0, offsetof(out_es, write_operation), "index|create", "the bulk action"},
    {"data_stream_name", CONF_STR, NULL, 0, offsetof(out_es, data_stream_name), NULL,
     "write to a data stream (implies `create` and `@timestamp`; excludes `logstash_format`). Without "
     "`template_name`, an index template `{\"index_patterns\":[NAME],\"data_stream\":{},\"priority\":500}` named "
     "after the stream is installed unless one of that name exists"},
    {"template_name", CONF_STR, NULL, 0, offsetof(out_es, template_name), NULL,
     "install the index template `template_file` under this name before the first bulk"},
    {"template_file", CONF_STR, NULL, 0, offsetof(out_es, template_file), NULL,
     "the template: a composable template (has a `template` object, `composed_of` or `data_stream`) goes to "
     "`_index_template/NAME`, anything else to the legacy `_template/NAME`"},
    {"template_overwrite", CONF_BOOL, "false", 0, offsetof(out_es, template_overwrite), NULL,
     "`false`: leave an existing template of that name alone"},
    {"compression_level", CONF_ENUM, "no_compression", 0, offsetof(out_es, compression_level),
     "no_compression|best_speed|best_compression|default_compression",
     "gzip request bodies (`Content-Encoding: gzip`) at level 1 (`best_speed`), 6 (`default_compression`) or 9 "
     "(`best_compression`)"},
    {"request_timeout", CONF_TIME, "5s", 0, offsetof(out_es, request_timeout), NULL,
     "whole-request timeout (the connect timeout is the smaller of this and 10 s)"},
    {"bulk_message_request_threshold", CONF_STR, "20m", 0, offsetof(out_es, bulk_threshold), NULL,
     "a size: a write is cut into `_bulk` requests of at most this many bytes (uncompressed); `-1`: one request per "
     "write"},
    {"http_max_in_flight", CONF_INT, "4", 0, offsetof(out_es, max_in_flight), NULL,
     "weir extension: how many of those requests run at once per flush thread, 1..64 (keep-alive connections are "
     "pooled per output)"},
    {"bulk_retry_limit", CONF_INT, "3", 0, offsetof(out_es, bulk_retry_limit), NULL,
     "weir extension: 429/503 items (and whole-request 429/503) are sent again within the same write this many "
     "times, after `bulk_retry_wait`, doubling; what is still rejected goes back to the buffer"},
    {"bulk_retry_wait", CONF_TIME, "0.1s", 0, offsetof(out_es, bulk_retry_wait), NULL,
     "first back-off of those in-write retries"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* ---- init ------------------------------------------------------------------------------ */

static int es_init(output *o, conf_node *n, conf_errors *errs)
{
    out_es *c = o->ctx;
    char err[300] = "";
    atomic_init(&c->rr, 0);
    atomic_init(&c->failing, 0);
    if (pthread_mutex_init(&c->tmpl_mu, NULL) != 0)
        return -1;
    c->tmpl_mu_init = 1;
    if (es_hosts_parse(c, n, errs) != 0)
        return -1;

    if (c->time_precision < 0 || c->time_precision > 9) {
        conf_error_at(errs, n, "time_precision", "time_precision must be 0..9");
        return -1;
    }
    if (c->max_in_flight < 1 || c->max_in_flight > 64) {
        conf_error_at(errs, n, "http_max_in_flight", "http_max_in_flight must be 1..64");
        return -1;
    }
    if (strcmp(c->bulk_threshold, "-1") == 0) {
        c->threshold = 0;
    } else {
        uint64_t v;
        if (conf_parse_size(c->bulk_threshold, &v) != 0 || v == 0) {
            conf_error_at(errs, n, "bulk_message_request_threshold",
                          "invalid size '%s' for parameter 'bulk_message_request_threshold' (or -1: no limit)",
                          c->bulk_threshold);
            return -1;
        }
        c->threshold = (size_t)v;
    }
    static const int levels[] = {0, 1, 9, 6};
    c->gzip_level = levels[c->compression_level];

    /* index: data stream, logstash_format, or index_name (index.c) */
    if (c->data_stream_name) {
        c->write_operation = OP_CREATE; /* data streams only take create */
        if (c->logstash_format) {
            conf_error_at(errs, n, "data_stream_name", "data_stream_name and logstash_format exclude each other");
            return -1;
        }
    }
    if (es_index_init(c, err, sizeof err) != 0) {
        conf_error_at(errs, n, c->data_stream_name ? "data_stream_name" : c->logstash_format ? "logstash_prefix"
                                                                                              : "index_name",
                      "%s", err);
        return -1;
    }
    c->add_ts = c->logstash_format || c->include_timestamp || c->data_stream_name;

    if (c->id_key && c->generate_id) {
        conf_error_at(errs, n, "generate_id", "id_key and generate_id exclude each other");
        return -1;
    }
    if (c->id_key) {
        if (rec_path_compile(&c->id_path, c->id_key, err, sizeof err) != 0) {
            conf_error_at(errs, n, "id_key", "bad record accessor '%s': %s", c->id_key, err);
            return -1;
        }
        c->has_id_path = 1;
    }
    if (c->time_key) {
        if (rec_path_compile(&c->time_path, c->time_key, err, sizeof err) != 0) {
            conf_error_at(errs, n, "time_key", "bad record accessor '%s': %s", c->time_key, err);
            return -1;
        }
        c->has_time_path = 1;
    }
    if (tparse_init(&c->tp, TP_STRING, NULL, 0, 1, NULL, err, sizeof err) != 0) {
        conf_error_at(errs, n, "time_key", "%s", err);
        return -1;
    }
    if (c->api_key) {
        size_t l = strlen(c->api_key) + 32;
        c->auth_header = malloc(l);
        if (!c->auth_header)
            return -1;
        snprintf(c->auth_header, l, "Authorization: ApiKey %s", c->api_key);
    }
    c->headers[0] = "Content-Type: application/x-ndjson";
    c->headers[1] = c->auth_header;
    c->headers[2] = NULL;

    if (es_template_load(c, n, errs) != 0 || es_template_data_stream(c) != 0)
        return -1;

    http_opts ho = {
        .timeout = c->request_timeout,
        .connect_timeout = c->request_timeout < 10 ? c->request_timeout : 10,
        .verify = c->ssl_verify,
        .ca_file = c->ca_file,
        .client_cert = c->client_cert,
        .client_key = c->client_key,
        .client_key_pass = c->client_key_pass,
        .user = c->user,
        .password = c->password,
        .max_in_flight = (int)c->max_in_flight,
    };
    c->http = http_client_new(&ho, err, sizeof err);
    if (!c->http) {
        conf_error_at(errs, n, "@type", "cannot set up the HTTP client: %s", err);
        return -1;
    }
    wlog_info(ES_MOD, "%s: %zu host(s), first %s; %s %s", o->id, c->nbases, c->bases[0],
              c->data_stream_name ? "data stream" : "index", c->data_stream_name ? c->data_stream_name
                                                             : c->logstash_format  ? "logstash_format"
                                                                                   : c->index_name);
    return 0;
}

static void es_exit(output *o)
{
    out_es *c = o->ctx;
    if (c->http)
        http_client_free(c->http);
    ARRAY_FREE_ALL(c->bases, c->nbases);
    free(c->auth_header);
    es_index_free(&c->index);
    if (c->has_id_path)
        rec_path_free(&c->id_path);
    if (c->has_time_path)
        rec_path_free(&c->time_path);
    tparse_free(&c->tp);
    free(c->tmpl_body);
    free(c->tmpl_url);
    if (c->tmpl_mu_init)
        pthread_mutex_destroy(&c->tmpl_mu);
}

/* ---- the write --------------------------------------------------------------------------- */

typedef struct part {
    uint32_t first, n; /* pend[first .. first+n) */
    const uint8_t *body;
    size_t len;
} part;

/*
 * Send the records pend[0..np) as bulk requests of at most `threshold`
 * bytes, concurrently, and set their st/why. `contiguous`: pend is 0..np-1
 * and the bodies are slices of w->body; otherwise the records are copied
 * into *rb first. Returns -1 on allocation failure.
 */
static int bulk_round(output *o, out_es *c, es_buf *w, const uint32_t *pend, uint32_t np, int contiguous, wbuf *rb,
                      round_stats *rs)
{
    part *parts = NULL;
    size_t nparts = 0, cap = 0;
    rb->len = 0;
    size_t cur = 0; /* bytes in the current part */
    for (uint32_t k = 0; k < np; k++) {
        uint32_t s = pend[k];
        size_t len = w->off[s + 1] - w->off[s];
        if (!nparts || (c->threshold && cur && cur + len > c->threshold)) {
            if (nparts == cap) {
                cap = cap ? cap * 2 : 8;
                part *nps = realloc(parts, cap * sizeof *nps);
                if (!nps) {
                    free(parts);
                    return -1;
                }
                parts = nps;
            }
            parts[nparts++] = (part){.first = k};
            cur = 0;
        }
        parts[nparts - 1].n++;
        cur += len;
        if (!contiguous && wbuf_add(rb, w->body.data + w->off[s], len)) {
            free(parts);
            return -1;
        }
    }
    /* bodies: slices of w->body, or of rb in the same order */
    size_t pos = 0;
    for (size_t i = 0; i < nparts; i++) {
        uint32_t a = pend[parts[i].first], z = pend[parts[i].first + parts[i].n - 1];
        if (contiguous) {
            parts[i].body = w->body.data + w->off[a];
            parts[i].len = w->off[z + 1] - w->off[a];
        } else {
            size_t len = 0;
            for (uint32_t k = parts[i].first; k < parts[i].first + parts[i].n; k++)
                len += w->off[pend[k] + 1] - w->off[pend[k]];
            parts[i].body = rb->data + pos;
            parts[i].len = len;
            pos += len;
        }
    }
    http_req *reqs = calloc(nparts, sizeof *reqs);
    char **urls = calloc(nparts, sizeof *urls);
    if (!reqs || !urls) {
        free(reqs);
        free(urls);
        free(parts);
        return -1;
    }
    for (size_t i = 0; i < nparts; i++)
        reqs[i] = (http_req){.method = "POST", .headers = c->headers, .body = parts[i].body,
                             .body_len = parts[i].len, .gzip_level = c->gzip_level};
    es_perform_failover(o, c, reqs, urls, nparts, "/_bulk?filter_path=errors,items.*.status,items.*.error");
    rs->nreq += (uint32_t)nparts;
    for (size_t i = 0; i < nparts; i++)
        es_apply_response(o->id, &reqs[i], w, pend + parts[i].first, parts[i].n, rs);
    for (size_t i = 0; i < nparts; i++) {
        http_req_clear(&reqs[i]);
        free(urls[i]);
    }
    free(reqs);
    free(urls);
    free(parts);
    return 0;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int es_write(output *o, const batch *b, out_result *res)
{
    out_es *c = o->ctx;
    if (es_template_ensure(o, c, res->reason, sizeof res->reason) != 0) {
        if (!atomic_exchange(&c->failing, 1))
            wlog_error(ES_MOD, "%s: %s; %s", o->id, res->reason,
                       o->buf ? "the buffer will retry" : "not acknowledging the records");
        atomic_fetch_add(&o->write_errors, 1);
        return OUT_RETRY;
    }
    uint32_t nrec = b->nrecords ? b->nrecords : 1;
    es_buf w = {0};
    wbuf rb = {0};
    uint32_t *pend = NULL;
    int rc = OUT_RETRY;
    if (es_buf_init(&w, nrec) != 0 || !(pend = malloc(nrec * sizeof *pend))) {
        snprintf(res->reason, sizeof res->reason, "out of memory");
        goto done;
    }

    /* encode: action + document per record; unencodable records are ERROR now */
    char err[300];
    uint32_t nbad = es_bulk_encode(c, b, nrec, &w, res, err, sizeof err);
    if (nbad)
        wlog_warn(ES_MOD, "%s: %u records cannot be sent (first: %s)", o->id, nbad,
                  res->reasons && res->reasons[0] ? res->reasons[0] : err);

    /* rounds: the first sends everything; the next ones only 429/503 items, after a back-off */
    round_stats rs = {0};
    uint32_t np = w.nsent, retried_soon = 0;
    for (uint32_t k = 0; k < np; k++)
        pend[k] = k;
    double wait = c->bulk_retry_wait;
    for (int round = 0; np; round++) {
        if (bulk_round(o, c, &w, pend, np, round == 0, &rb, &rs) != 0) {
            snprintf(res->reason, sizeof res->reason, "out of memory");
            goto done;
        }
        uint32_t nsoon = 0;
        for (uint32_t k = 0; k < np; k++)
            if (w.st[pend[k]] == RS_SOON)
                pend[nsoon++] = pend[k];
        np = nsoon;
        if (!np || round >= c->bulk_retry_limit)
            break;
        retried_soon += np;
        sleep_s(wait);
        wait *= 2;
    }

    /* results */
    uint32_t nok = 0, nretry = 0, nerr = nbad;
    es_mark_results(&w, res, &nok, &nretry, &nerr);
    if (rs.nfailed_req) {
        atomic_fetch_add(&o->write_errors, 1);
        if (!atomic_exchange(&c->failing, 1))
            wlog_error(ES_MOD, "%s: %u of %u bulk requests failed on every host (%zu): %s; %s", o->id,
                       rs.nfailed_req, rs.nreq, c->nbases, rs.req_reason,
                       o->buf ? "the buffer will retry their records" : "not acknowledging them");
    } else if (nok && atomic_exchange(&c->failing, 0)) {
        wlog_info(ES_MOD, "%s: bulk requests succeed again", o->id);
    }
    if (rs.n429)
        wlog_warn(ES_MOD, "%s: %u records rejected with 429 (node overloaded), %u retried within the write; "
                  "%u left to the buffer's retry; %s", o->id, rs.n429, retried_soon, nretry, rs.soon_reason);
    if (nerr - nbad)
        wlog_warn(ES_MOD, "%s: %u of %u records refused by Elasticsearch; first: %s", o->id, nerr - nbad,
                  b->nrecords, rs.item_reason[0] ? rs.item_reason : rs.req_reason);
    if (nretry || nerr)
        atomic_fetch_add(&o->records_failed, nretry + nerr);

    if (nok == 0 && nerr == 0 && nretry == b->nrecords) {
        /* nothing got through and nothing was refused: retry the batch whole */
        out_result_free(res);
        es_scopy(res->reason, sizeof res->reason, rs.req_reason[0] ? rs.req_reason : rs.soon_reason);
        rc = OUT_RETRY;
        goto done;
    }
    if (rs.req_reason[0])
        es_scopy(res->reason, sizeof res->reason, rs.req_reason);
    else if (rs.item_reason[0] || rs.soon_reason[0])
        es_scopy(res->reason, sizeof res->reason, rs.item_reason[0] ? rs.item_reason : rs.soon_reason);
    rc = OUT_OK; /* unmarked records are delivered; marked ones follow their status */
done:
    es_buf_free(&w);
    wbuf_free(&rb);
    free(pend);
    return rc;
}

OUT_PLUGIN(elasticsearch, es, out_es);
OUT_PLUGIN(opensearch, es, out_es);
