/*
 * outputs/elasticsearch.c: fluent-plugin-elasticsearch's out_elasticsearch
 * (also registered as `opensearch`): records become _bulk requests.
 *
 * One write turns a batch into NDJSON (action line + document line per
 * record), cut into requests of at most bulk_message_request_threshold
 * bytes that run concurrently through the shared HTTP client (keep-alive
 * pool, http_max_in_flight at once). Every request is answered per item:
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
 * The document is the record as JSON with @timestamp (logstash_format,
 * include_timestamp, data streams) and the tag (include_tag_key) put first.
 * The index name comes from the record's time (utc_index) and the
 * ${tag}/${tag[N]}/${key}/${$.a.b} placeholders of index_name or
 * logstash_prefix; it is lowercased as ES requires.
 *
 * Ownership and threads: the context (bound config, compiled templates,
 * hosts, the http_client) is built by init on the main thread and read-only
 * afterwards, except `rr` (atomic round-robin counter), `failing` (atomic,
 * for log de-duplication) and the template state under tmpl_mu. A write
 * owns all of its buffers, so several flush threads may write at once.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/timefmt.h"
#include "aggregator/output.h"
#include "aggregator/record.h"
#include "aggregator/timeparse.h"

#define ES_MOD "out_es"

enum { OP_INDEX, OP_CREATE };
enum { PT_LIT, PT_TAG, PT_TAG_PART, PT_REC };

typedef struct tpart {
    int kind;
    char *lit;    /* PT_LIT */
    int has_pct;  /* PT_LIT holds strftime directives */
    int tag_idx;  /* PT_TAG_PART (negative: from the end) */
    rec_path path; /* PT_REC */
} tpart;

typedef struct tmpl {
    tpart *p;
    size_t n;
    int per_record; /* has record placeholders: no caching */
} tmpl;

typedef struct out_es {
    /* bound from config */
    char *host;
    int64_t port;
    char **hosts;
    int scheme;
    char *path;
    char *user, *password, *api_key;
    int ssl_verify;
    char *ca_file, *client_cert, *client_key, *client_key_pass;
    int logstash_format;
    char *logstash_prefix, *logstash_prefix_separator, *logstash_dateformat;
    char *index_name;
    int include_tag_key;
    char *tag_key;
    char *time_key;
    int time_key_exclude_timestamp;
    int include_timestamp;
    int64_t time_precision;
    int utc_index;
    char *id_key;
    int generate_id;
    int write_operation;
    char *data_stream_name;
    char *template_name, *template_file;
    int template_overwrite;
    int compression_level;
    double request_timeout;
    char *bulk_threshold;
    int64_t max_in_flight;
    int64_t bulk_retry_limit;
    double bulk_retry_wait;
    /* state */
    char **bases; /* "scheme://host:port/path" per host, no trailing '/' */
    size_t nbases;
    atomic_uint rr;
    atomic_int failing; /* a whole-request failure was logged; cleared on success */
    http_client *http;
    char *auth_header;
    const char *headers[3];
    tmpl index;
    int add_ts;
    rec_path id_path, time_path;
    int has_id_path, has_time_path;
    tparse tp;
    size_t threshold; /* 0: unlimited */
    int gzip_level;
    /* template installation, done once before the first bulk */
    pthread_mutex_t tmpl_mu;
    int tmpl_mu_init;
    char *tmpl_body;   /* template_file's content */
    char *tmpl_url;    /* path after the base: "/_index_template/NAME" */
    int tmpl_done;
} out_es;

static const conf_spec es_spec[] = {
    {"host", CONF_STR, "localhost", 0, offsetof(out_es, host), NULL},
    {"port", CONF_INT, "9200", 0, offsetof(out_es, port), NULL},
    {"hosts", CONF_ARRAY, NULL, 0, offsetof(out_es, hosts), NULL},
    {"scheme", CONF_ENUM, "http", 0, offsetof(out_es, scheme), "http|https"},
    {"path", CONF_STR, NULL, 0, offsetof(out_es, path), NULL},
    {"user", CONF_STR, NULL, 0, offsetof(out_es, user), NULL},
    {"password", CONF_STR, NULL, 0, offsetof(out_es, password), NULL},
    {"api_key", CONF_STR, NULL, 0, offsetof(out_es, api_key), NULL},
    {"ssl_verify", CONF_BOOL, "true", 0, offsetof(out_es, ssl_verify), NULL},
    {"ca_file", CONF_STR, NULL, 0, offsetof(out_es, ca_file), NULL},
    {"client_cert", CONF_STR, NULL, 0, offsetof(out_es, client_cert), NULL},
    {"client_key", CONF_STR, NULL, 0, offsetof(out_es, client_key), NULL},
    {"client_key_pass", CONF_STR, NULL, 0, offsetof(out_es, client_key_pass), NULL},
    {"logstash_format", CONF_BOOL, "false", 0, offsetof(out_es, logstash_format), NULL},
    {"logstash_prefix", CONF_STR, "logstash", 0, offsetof(out_es, logstash_prefix), NULL},
    {"logstash_prefix_separator", CONF_STR, "-", 0, offsetof(out_es, logstash_prefix_separator), NULL},
    {"logstash_dateformat", CONF_STR, "%Y.%m.%d", 0, offsetof(out_es, logstash_dateformat), NULL},
    {"index_name", CONF_STR, "fluentd", 0, offsetof(out_es, index_name), NULL},
    {"include_tag_key", CONF_BOOL, "false", 0, offsetof(out_es, include_tag_key), NULL},
    {"tag_key", CONF_STR, "tag", 0, offsetof(out_es, tag_key), NULL},
    {"time_key", CONF_STR, NULL, 0, offsetof(out_es, time_key), NULL},
    {"time_key_exclude_timestamp", CONF_BOOL, "false", 0, offsetof(out_es, time_key_exclude_timestamp), NULL},
    {"include_timestamp", CONF_BOOL, "false", 0, offsetof(out_es, include_timestamp), NULL},
    {"time_precision", CONF_INT, "9", 0, offsetof(out_es, time_precision), NULL},
    {"utc_index", CONF_BOOL, "true", 0, offsetof(out_es, utc_index), NULL},
    {"id_key", CONF_STR, NULL, 0, offsetof(out_es, id_key), NULL},
    {"generate_id", CONF_BOOL, "false", 0, offsetof(out_es, generate_id), NULL},
    {"write_operation", CONF_ENUM, "index", 0, offsetof(out_es, write_operation), "index|create"},
    {"data_stream_name", CONF_STR, NULL, 0, offsetof(out_es, data_stream_name), NULL},
    {"template_name", CONF_STR, NULL, 0, offsetof(out_es, template_name), NULL},
    {"template_file", CONF_STR, NULL, 0, offsetof(out_es, template_file), NULL},
    {"template_overwrite", CONF_BOOL, "false", 0, offsetof(out_es, template_overwrite), NULL},
    {"compression_level", CONF_ENUM, "no_compression", 0, offsetof(out_es, compression_level),
     "no_compression|best_speed|best_compression|default_compression"},
    {"request_timeout", CONF_TIME, "5s", 0, offsetof(out_es, request_timeout), NULL},
    {"bulk_message_request_threshold", CONF_STR, "20m", 0, offsetof(out_es, bulk_threshold), NULL},
    {"http_max_in_flight", CONF_INT, "4", 0, offsetof(out_es, max_in_flight), NULL},
    {"bulk_retry_limit", CONF_INT, "3", 0, offsetof(out_es, bulk_retry_limit), NULL},
    {"bulk_retry_wait", CONF_TIME, "0.1s", 0, offsetof(out_es, bulk_retry_wait), NULL},
    {"buffer", CONF_SECTION, NULL, 0, 0, NULL},
    {"secondary", CONF_SECTION, NULL, 0, 0, NULL},
    {NULL, 0, NULL, 0, 0, NULL},
};

/* ---- index name templates ------------------------------------------------------------ */

static void tmpl_free(tmpl *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->p[i].lit);
        if (t->p[i].kind == PT_REC)
            rec_path_free(&t->p[i].path);
    }
    free(t->p);
    memset(t, 0, sizeof *t);
}

static tpart *tmpl_add(tmpl *t, int kind)
{
    tpart *np = realloc(t->p, (t->n + 1) * sizeof *np);
    if (!np)
        return NULL;
    t->p = np;
    memset(&t->p[t->n], 0, sizeof *t->p);
    t->p[t->n].kind = kind;
    return &t->p[t->n++];
}

/* Compile "logs-${tag}-%Y.%m.%d" into parts. -1 with err on a bad placeholder. */
static int tmpl_compile(tmpl *t, const char *s, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    while (*s) {
        const char *ph = strstr(s, "${");
        size_t litlen = ph ? (size_t)(ph - s) : strlen(s);
        if (litlen) {
            tpart *p = tmpl_add(t, PT_LIT);
            if (!p || !(p->lit = strndup(s, litlen)))
                goto oom;
            p->has_pct = memchr(s, '%', litlen) != NULL;
        }
        if (!ph)
            break;
        const char *close = strchr(ph + 2, '}');
        /* an accessor like ${$['a.b']} holds no '}' before its end */
        if (!close) {
            snprintf(err, errlen, "unterminated placeholder in '%s'", ph);
            return -1;
        }
        char in[512];
        size_t n = (size_t)(close - ph - 2);
        if (n == 0 || n >= sizeof in) {
            snprintf(err, errlen, "bad placeholder '%.*s'", (int)(close - ph + 1), ph);
            return -1;
        }
        memcpy(in, ph + 2, n);
        in[n] = 0;
        if (strcmp(in, "tag") == 0) {
            if (!tmpl_add(t, PT_TAG))
                goto oom;
        } else if (strncmp(in, "tag[", 4) == 0) {
            char *end;
            long idx = strtol(in + 4, &end, 10);
            if (end == in + 4 || strcmp(end, "]") != 0) {
                snprintf(err, errlen, "bad tag placeholder '${%.100s}' (expected ${tag[N]})", in);
                return -1;
            }
            tpart *p = tmpl_add(t, PT_TAG_PART);
            if (!p)
                goto oom;
            p->tag_idx = (int)idx;
        } else {
            tpart *p = tmpl_add(t, PT_REC);
            if (!p)
                goto oom;
            char perr[200] = "";
            if (rec_path_compile(&p->path, in, perr, sizeof perr) != 0) {
                p->kind = PT_LIT; /* nothing to free */
                snprintf(err, errlen, "bad record placeholder '${%.100s}': %.150s", in, perr);
                return -1;
            }
            t->per_record = 1;
        }
        s = close + 1;
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* The n-th dot-separated part of the tag (negative: from the end). */
static int tag_part(const char *tag, size_t len, int idx, const char **out, size_t *olen)
{
    int parts = 1;
    for (size_t i = 0; i < len; i++)
        parts += tag[i] == '.';
    if (idx < 0)
        idx += parts;
    if (idx < 0 || idx >= parts)
        return -1;
    const char *s = tag, *end = tag + len;
    for (int k = 0; k < idx; k++)
        s = (const char *)memchr(s, '.', (size_t)(end - s)) + 1;
    const char *dot = memchr(s, '.', (size_t)(end - s));
    *out = s;
    *olen = (size_t)((dot ? dot : end) - s);
    return 0;
}

/* Expand the template for one record into out (lowercased). -1 with err when a
 * placeholder has no value in this record. */
static int tmpl_expand(const tmpl *t, wbuf *out, const entry *e, uint32_t sec, int utc, char *err, size_t errlen)
{
    size_t start = out->len;
    for (size_t i = 0; i < t->n; i++) {
        const tpart *p = &t->p[i];
        int rc = 0;
        if (p->kind == PT_LIT) {
            if (p->has_pct) {
                char tb[512];
                size_t n = time_fmt(tb, sizeof tb, p->lit, sec, 0, utc);
                rc = wbuf_add(out, tb, n);
            } else {
                rc = wbuf_add(out, p->lit, strlen(p->lit));
            }
        } else if (p->kind == PT_TAG) {
            rc = wbuf_add(out, e->tag, e->tag_len);
        } else if (p->kind == PT_TAG_PART) {
            const char *s;
            size_t n;
            if (tag_part(e->tag, e->tag_len, p->tag_idx, &s, &n) != 0) {
                snprintf(err, errlen, "tag '%.*s' has no part ${tag[%d]}", (int)e->tag_len, e->tag, p->tag_idx);
                return -1;
            }
            rc = wbuf_add(out, s, n);
        } else {
            size_t vlen;
            const uint8_t *v = rec_lookup(e->record, e->record_len, &p->path, &vlen);
            if (!v || *v == 0xc0) {
                snprintf(err, errlen, "record has no value for ${%s} in the index name", p->path.text);
                return -1;
            }
            rc = rec_value_text(out, v, vlen);
        }
        if (rc)
            return -1;
    }
    for (size_t i = start; i < out->len; i++)
        out->data[i] = (uint8_t)tolower(out->data[i]);
    return 0;
}

/* ---- hosts ---------------------------------------------------------------------------- */

static char *make_base(const char *scheme, const char *host, long port, const char *path)
{
    char buf[2048];
    const char *p = path ? path : "";
    int v6 = strchr(host, ':') && host[0] != '[';
    snprintf(buf, sizeof buf, "%s://%s%s%s:%ld%s%s", scheme, v6 ? "[" : "", host, v6 ? "]" : "", port,
             (*p && *p != '/') ? "/" : "", p);
    size_t n = strlen(buf);
    while (n && buf[n - 1] == '/')
        buf[--n] = 0;
    return strdup(buf);
}

/* `hosts`: "h1:9200,h2:9201" or full URLs "https://h:9200/prefix". */
static int parse_hosts(out_es *c, conf_node *n, conf_errors *errs)
{
    const char *scheme = c->scheme ? "https" : "http";
    size_t cnt = 0;
    if (c->hosts)
        while (c->hosts[cnt])
            cnt++;
    c->bases = calloc(cnt ? cnt : 1, sizeof *c->bases);
    if (!c->bases)
        return -1;
    if (!cnt) {
        c->bases[0] = make_base(scheme, c->host, (long)c->port, c->path);
        c->nbases = 1;
        return c->bases[0] ? 0 : -1;
    }
    for (size_t i = 0; i < cnt; i++) {
        const char *h = c->hosts[i];
        char *b;
        if (strstr(h, "://")) {
            if (strncmp(h, "http://", 7) != 0 && strncmp(h, "https://", 8) != 0) {
                conf_error_at(errs, n, "hosts", "host '%s': the scheme must be http or https", h);
                return -1;
            }
            b = strdup(h);
            if (b) {
                size_t l = strlen(b);
                while (l && b[l - 1] == '/')
                    b[--l] = 0;
            }
        } else {
            char hostbuf[512];
            long port = (long)c->port;
            const char *colon = strrchr(h, ':');
            /* "h:port", "[::1]:port"; a bare IPv6 address has several colons */
            if (colon && (h[0] == '[' ? colon > strchr(h, ']') : strchr(h, ':') == colon)) {
                char *end;
                port = strtol(colon + 1, &end, 10);
                if (*end || port <= 0 || port > 65535) {
                    conf_error_at(errs, n, "hosts", "host '%s': bad port", h);
                    return -1;
                }
                snprintf(hostbuf, sizeof hostbuf, "%.*s", (int)(colon - h), h);
            } else {
                snprintf(hostbuf, sizeof hostbuf, "%s", h);
            }
            b = make_base(scheme, hostbuf, port, c->path);
        }
        if (!b)
            return -1;
        c->bases[c->nbases++] = b;
    }
    return 0;
}

/* ---- init ------------------------------------------------------------------------------ */

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    wbuf b = {0};
    char tmp[8192];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (wbuf_add(&b, tmp, r)) {
            fclose(f);
            wbuf_free(&b);
            snprintf(err, errlen, "out of memory reading %s", path);
            return NULL;
        }
    fclose(f);
    wbuf_addc(&b, 0);
    return (char *)b.data;
}

/* Read and check the template; pick the API from its content: a composable
 * template has a "template" object, "composed_of" or "data_stream". */
static int load_template(out_es *c, conf_node *n, conf_errors *errs)
{
    char err[300] = "";
    if (!c->template_name && !c->template_file)
        return 0;
    if (!c->template_name || !c->template_file) {
        conf_error_at(errs, n, c->template_name ? "template_file" : "template_name",
                      "template_name and template_file go together");
        return -1;
    }
    c->tmpl_body = read_file(c->template_file, err, sizeof err);
    if (!c->tmpl_body) {
        conf_error_at(errs, n, "template_file", "%s", err);
        return -1;
    }
    json_error_t je;
    json_t *j = json_loads(c->tmpl_body, 0, &je);
    if (!j || !json_is_object(j)) {
        conf_error_at(errs, n, "template_file", "%s is not a JSON object: %s (line %d)", c->template_file,
                      j ? "not an object" : je.text, je.line);
        json_decref(j);
        return -1;
    }
    int composable = json_is_object(json_object_get(j, "template")) || json_object_get(j, "composed_of") ||
                     json_object_get(j, "data_stream");
    json_decref(j);
    wbuf u = {0};
    const char *api = composable ? "/_index_template/" : "/_template/";
    if (wbuf_add(&u, api, strlen(api)) || http_urlencode(&u, c->template_name, strlen(c->template_name)) ||
        wbuf_addc(&u, 0)) {
        wbuf_free(&u);
        return -1;
    }
    c->tmpl_url = (char *)u.data;
    return 0;
}

/* A data stream needs a matching index template with "data_stream": {}.
 * Without template_name/template_file, install a minimal one named after the
 * stream unless one of that name exists (fluent-plugin-elasticsearch does the
 * same). Not for names with placeholders. */
static int data_stream_template(out_es *c)
{
    if (!c->data_stream_name || c->tmpl_body || strstr(c->data_stream_name, "${") || strchr(c->data_stream_name, '%'))
        return 0;
    json_t *j = json_pack("{s:[s],s:{},s:i}", "index_patterns", c->data_stream_name, "data_stream", "priority", 500);
    if (!j)
        return -1;
    c->tmpl_body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    wbuf u = {0};
    if (!c->tmpl_body || wbuf_add(&u, "/_index_template/", 17) ||
        http_urlencode(&u, c->data_stream_name, strlen(c->data_stream_name)) || wbuf_addc(&u, 0)) {
        wbuf_free(&u);
        return -1;
    }
    c->tmpl_url = (char *)u.data;
    return 0;
}

static int es_init(output *o, conf_node *n, conf_errors *errs)
{
    out_es *c = o->ctx;
    char err[300] = "";
    atomic_init(&c->rr, 0);
    atomic_init(&c->failing, 0);
    if (pthread_mutex_init(&c->tmpl_mu, NULL) != 0)
        return -1;
    c->tmpl_mu_init = 1;
    if (parse_hosts(c, n, errs) != 0)
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

    /* index: data stream, logstash_format, or index_name */
    const char *src = c->index_name;
    char *ls = NULL;
    if (c->data_stream_name) {
        src = c->data_stream_name;
        c->write_operation = OP_CREATE; /* data streams only take create */
        if (c->logstash_format) {
            conf_error_at(errs, n, "data_stream_name", "data_stream_name and logstash_format exclude each other");
            return -1;
        }
    } else if (c->logstash_format) {
        size_t l = strlen(c->logstash_prefix) + strlen(c->logstash_prefix_separator) + strlen(c->logstash_dateformat);
        ls = malloc(l + 1);
        if (!ls)
            return -1;
        snprintf(ls, l + 1, "%s%s%s", c->logstash_prefix, c->logstash_prefix_separator, c->logstash_dateformat);
        src = ls;
    }
    int rc = tmpl_compile(&c->index, src, err, sizeof err);
    free(ls);
    if (rc != 0) {
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

    if (load_template(c, n, errs) != 0 || data_stream_template(c) != 0)
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
              c->data_stream_name ? "data stream" : "index", src == c->index_name ? c->index_name
                                                             : c->data_stream_name ? c->data_stream_name
                                                                                   : "logstash_format");
    return 0;
}

static void es_exit(output *o)
{
    out_es *c = o->ctx;
    if (c->http)
        http_client_free(c->http);
    for (size_t i = 0; i < c->nbases; i++)
        free(c->bases[i]);
    free(c->bases);
    free(c->auth_header);
    tmpl_free(&c->index);
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

/* ---- requests with failover ---------------------------------------------------------- */

static int retryable_status(long s) { return s == 401 || s == 403 || s == 408 || s == 429 || s >= 500; }

/* Build the URL for request i against host (start + attempt). */
static char *url_for(out_es *c, unsigned host, const char *suffix)
{
    const char *b = c->bases[host % c->nbases];
    size_t l = strlen(b) + strlen(suffix) + 1;
    char *u = malloc(l);
    if (u)
        snprintf(u, l, "%s%s", b, suffix);
    return u;
}

/*
 * Run reqs (their url fields are set here) with failover: a request that had a
 * transport error or a retryable whole-request status is sent again to the
 * next host, up to one try per host. urls[] holds the malloc'd URLs.
 */
static void perform_failover(output *o, out_es *c, http_req *reqs, char **urls, size_t n, const char *suffix)
{
    unsigned start = atomic_fetch_add_explicit(&c->rr, 1, memory_order_relaxed);
    size_t *todo = malloc(n * sizeof *todo);
    http_req *group = malloc(n * sizeof *group);
    if (!todo || !group) {
        free(todo);
        free(group);
        for (size_t i = 0; i < n; i++) {
            reqs[i].transport_error = 1;
            snprintf(reqs[i].error, sizeof reqs[i].error, "out of memory");
        }
        return;
    }
    size_t ntodo = n;
    for (size_t i = 0; i < n; i++)
        todo[i] = i;
    for (size_t attempt = 0; attempt < c->nbases && ntodo; attempt++) {
        for (size_t k = 0; k < ntodo; k++) {
            size_t i = todo[k];
            free(urls[i]);
            urls[i] = url_for(c, (unsigned)(start + attempt), suffix);
            http_req_clear(&reqs[i]);
            reqs[i].url = urls[i] ? urls[i] : "";
            group[k] = reqs[i];
        }
        http_perform(c->http, group, ntodo);
        size_t next = 0;
        for (size_t k = 0; k < ntodo; k++) {
            size_t i = todo[k];
            reqs[i] = group[k];
            if (reqs[i].transport_error || retryable_status(reqs[i].status)) {
                if (attempt + 1 < c->nbases)
                    wlog_warn(ES_MOD, "%s: %s: %s; trying the next host", o->id, reqs[i].url,
                              reqs[i].transport_error ? reqs[i].error : "retryable status");
                todo[next++] = i;
            }
        }
        ntodo = next;
    }
    free(todo);
    free(group);
}

/* Install the index template once (first write); 0 when done or not needed. */
static int ensure_template(output *o, out_es *c, char *why, size_t whylen)
{
    if (!c->tmpl_url)
        return 0;
    pthread_mutex_lock(&c->tmpl_mu);
    int rc = 0;
    if (c->tmpl_done)
        goto out;
    char *url = NULL;
    if (!c->template_overwrite) {
        http_req get = {.method = "GET"};
        perform_failover(o, c, &get, &url, 1, c->tmpl_url);
        long st = get.status;
        http_req_clear(&get);
        free(url);
        url = NULL;
        if (st == 200) {
            wlog_info(ES_MOD, "%s: template %s exists; not overwritten (template_overwrite false)", o->id,
                      c->tmpl_url);
            c->tmpl_done = 1;
            goto out;
        }
    }
    http_req put = {.method = "PUT", .headers = (const char *const[]){"Content-Type: application/json",
                                                                      c->auth_header, NULL},
                    .body = (const uint8_t *)c->tmpl_body, .body_len = strlen(c->tmpl_body)};
    perform_failover(o, c, &put, &url, 1, c->tmpl_url);
    if (put.status >= 200 && put.status < 300) {
        wlog_info(ES_MOD, "%s: installed template %s", o->id, c->tmpl_url);
        c->tmpl_done = 1;
    } else {
        if (put.transport_error)
            snprintf(why, whylen, "cannot install template %.60s: %.120s", c->tmpl_url, put.error);
        else
            snprintf(why, whylen, "cannot install template %.60s: HTTP %ld %.120s", c->tmpl_url, put.status,
                     put.resp.len ? (const char *)put.resp.data : "");
        rc = -1;
    }
    http_req_clear(&put);
    free(url);
out:
    pthread_mutex_unlock(&c->tmpl_mu);
    return rc;
}

/* ---- building the bulk body ---------------------------------------------------------- */

/* Time of the record for the index name and @timestamp: time_key or an
 * existing @timestamp when present and parsable, else the event time. */
static void record_time(out_es *c, const entry *e, uint32_t *sec, uint32_t *nsec, int *has_ts)
{
    *sec = e->sec;
    *nsec = e->nsec;
    size_t vlen;
    const uint8_t *v = NULL;
    *has_ts = rec_get(e->record, e->record_len, "@timestamp", 10, &vlen) != NULL;
    if (c->has_time_path)
        v = rec_lookup(e->record, e->record_len, &c->time_path, &vlen);
    else if (*has_ts && c->add_ts)
        v = rec_get(e->record, e->record_len, "@timestamp", 10, &vlen);
    if (!v)
        return;
    const uint8_t *p = v;
    mp_obj ob;
    if (mp_read(&p, v + vlen, &ob) != MP_OK)
        return;
    double d = -1;
    if (ob.type == MP_UINT)
        d = (double)ob.v.u;
    else if (ob.type == MP_INT)
        d = (double)ob.v.i;
    else if (ob.type == MP_FLOAT)
        d = ob.v.f;
    if (d >= 0 && d < 4294967296.0) {
        *sec = (uint32_t)d;
        *nsec = (uint32_t)((d - (double)*sec) * 1e9);
        return;
    }
    uint32_t s, ns;
    if (ob.type == MP_STR && tparse_text(&c->tp, (const char *)ob.ptr, ob.len, &s, &ns) == 0) {
        *sec = s;
        *nsec = ns;
    }
}

static int put_timestamp(wbuf *out, uint32_t sec, uint32_t nsec, int prec)
{
    char tb[64];
    size_t n = time_fmt(tb, sizeof tb, "%Y-%m-%dT%H:%M:%S", sec, 0, 1);
    if (prec > 0) {
        char frac[16];
        snprintf(frac, sizeof frac, "%09u", nsec);
        n += (size_t)snprintf(tb + n, sizeof tb - n, ".%.*s", prec, frac);
    }
    n += (size_t)snprintf(tb + n, sizeof tb - n, "Z");
    return wbuf_add(out, "\"@timestamp\":\"", 14) || wbuf_add(out, tb, n) || wbuf_addc(out, '"');
}

/* The deterministic _id: base64url(SHA-1(tag NUL sec nsec record-msgpack)). */
static int put_gen_id(wbuf *out, const entry *e)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    uint8_t t[9];
    t[0] = 0;
    for (int i = 0; i < 4; i++) {
        t[1 + i] = (uint8_t)(e->sec >> (24 - 8 * i));
        t[5 + i] = (uint8_t)(e->nsec >> (24 - 8 * i));
    }
    int ok = m && EVP_DigestInit_ex(m, EVP_sha1(), NULL) && EVP_DigestUpdate(m, e->tag, e->tag_len) &&
             EVP_DigestUpdate(m, t, sizeof t) && EVP_DigestUpdate(m, e->record, e->record_len) &&
             EVP_DigestFinal_ex(m, md, &mdlen);
    EVP_MD_CTX_free(m);
    if (!ok)
        return -1;
    char b64[64];
    int n = EVP_EncodeBlock((unsigned char *)b64, md, (int)mdlen);
    while (n > 0 && b64[n - 1] == '=')
        n--;
    for (int i = 0; i < n; i++)
        b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    return wbuf_add(out, ",\"_id\":\"", 8) || wbuf_add(out, b64, (size_t)n) || wbuf_addc(out, '"');
}

/* The document: injected keys first, then the record's own pairs (minus
 * the injected keys it also has: ES refuses duplicate keys). */
static int put_doc(out_es *c, wbuf *out, wbuf *scratch, const entry *e, uint32_t sec, uint32_t nsec, int has_ts)
{
    const uint8_t *rec = e->record;
    size_t rlen = e->record_len;
    int inject_ts = c->add_ts && !has_ts && !(c->has_time_path && c->time_key_exclude_timestamp);
    size_t vlen;
    int drop_tag = c->include_tag_key && rec_get(rec, rlen, c->tag_key, strlen(c->tag_key), &vlen);
    if (drop_tag) {
        rec_kv d = {.key = c->tag_key, .key_len = strlen(c->tag_key)};
        scratch->len = 0;
        if (rec_rewrite_n(scratch, rec, rlen, &d, 1, NULL, 0) != 0)
            return -1;
        rec = scratch->data;
        rlen = scratch->len;
    }
    if (!inject_ts && !c->include_tag_key) {
        const uint8_t *q = rec;
        return jw_value(out, &q, rec + rlen) || wbuf_addc(out, '\n');
    }
    if (wbuf_addc(out, '{'))
        return -1;
    int first = 1;
    if (inject_ts) {
        if (put_timestamp(out, sec, nsec, (int)c->time_precision))
            return -1;
        first = 0;
    }
    if (c->include_tag_key) {
        if ((!first && wbuf_addc(out, ',')) || jw_string(out, (const uint8_t *)c->tag_key, strlen(c->tag_key)) ||
            wbuf_addc(out, ':') || jw_string(out, (const uint8_t *)e->tag, e->tag_len))
            return -1;
    }
    size_t at = out->len;
    const uint8_t *q = rec;
    if (jw_value(out, &q, rec + rlen))
        return -1;
    if (out->len - at == 2 && out->data[at] == '{' && out->data[at + 1] == '}') {
        out->len = at; /* empty record */
        return wbuf_add(out, "}\n", 2);
    }
    if (out->data[at] != '{')
        return -1; /* not a map */
    out->data[at] = ',';
    return wbuf_addc(out, '\n');
}

/* The action line. -1 with err when the record cannot be addressed. */
static int put_action(out_es *c, wbuf *out, wbuf *idx, const entry *e, uint32_t sec, char *err, size_t errlen)
{
    static const char *const ops[] = {"{\"index\":{\"_index\":", "{\"create\":{\"_index\":"};
    idx->len = 0;
    if (tmpl_expand(&c->index, idx, e, sec, c->utc_index, err, errlen) != 0)
        return -1;
    if (idx->len == 0) {
        snprintf(err, errlen, "the index name is empty");
        return -1;
    }
    const char *op = ops[c->write_operation];
    if (wbuf_add(out, op, strlen(op)) || jw_string(out, idx->data, idx->len))
        return -1;
    if (c->generate_id) {
        if (put_gen_id(out, e))
            return -1;
    } else if (c->has_id_path) {
        size_t vlen;
        const uint8_t *v = rec_lookup(e->record, e->record_len, &c->id_path, &vlen);
        if (v && *v != 0xc0) {
            size_t at = idx->len;
            if (rec_value_text(idx, v, vlen) || wbuf_add(out, ",\"_id\":", 7) ||
                jw_string(out, idx->data + at, idx->len - at))
                return -1;
        }
    }
    return wbuf_add(out, "}}\n", 3);
}

/* ---- the write --------------------------------------------------------------------------- */

/* Per sent record: where it goes next. RS_SOON: 429/503, worth another try
 * within this write after a short back-off. */
enum { RS_OK = 0, RS_RETRY = 1, RS_ERROR = 2, RS_SOON = 3 };

typedef struct es_buf {
    wbuf body, idx, scratch;
    uint32_t nsent;
    uint32_t *recno; /* sent record k -> its index in the batch */
    size_t *off;     /* sent record k -> start of its two lines in body; off[nsent] = body.len */
    uint8_t *st;     /* sent record k -> RS_* */
    char **why;      /* sent record k -> reason (malloc'd) or NULL */
} es_buf;

typedef struct round_stats {
    uint32_t n429, nerr, nfailed_req, nreq;
    char item_reason[400], req_reason[300], soon_reason[300];
} round_stats;

/* Copy a string, cut to fit. */
static void scopy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

static void set_st(es_buf *w, uint32_t k, int st, const char *why)
{
    w->st[k] = (uint8_t)st;
    free(w->why[k]);
    w->why[k] = why ? strdup(why) : NULL;
}

/* Apply one bulk response to the records pend[0..n). -1 when the response
 * cannot be read (the caller then treats the request as failed whole). */
static int apply_items(output *o, const http_req *r, es_buf *w, const uint32_t *pend, uint32_t n, round_stats *rs)
{
    json_error_t je;
    json_t *j = json_loadb((const char *)r->resp.data, r->resp.len, 0, &je);
    if (!j)
        return -1;
    if (json_is_false(json_object_get(j, "errors"))) {
        for (uint32_t k = 0; k < n; k++)
            set_st(w, pend[k], RS_OK, NULL);
        json_decref(j);
        return 0;
    }
    json_t *items = json_object_get(j, "items");
    if (!json_is_array(items) || json_array_size(items) != n) {
        wlog_error(ES_MOD, "%s: bulk response has %zu items for %u records", o->id,
                   json_is_array(items) ? json_array_size(items) : 0, n);
        json_decref(j);
        return -1;
    }
    for (uint32_t k = 0; k < n; k++) {
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
        if (s == RS_ERROR) {
            rs->nerr++;
            if (!rs->item_reason[0])
                scopy(rs->item_reason, sizeof rs->item_reason, why);
        } else {
            rs->n429 += st == 429;
            if (!rs->soon_reason[0])
                scopy(rs->soon_reason, sizeof rs->soon_reason, why);
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
    perform_failover(o, c, reqs, urls, nparts, "/_bulk?filter_path=errors,items.*.status,items.*.error");
    rs->nreq += (uint32_t)nparts;
    for (size_t i = 0; i < nparts; i++) {
        http_req *r = &reqs[i];
        const uint32_t *pp = pend + parts[i].first;
        int whole = -1;
        if (!r->transport_error && r->status >= 200 && r->status < 300) {
            if (apply_items(o, r, w, pp, parts[i].n, rs) == 0)
                continue;
            snprintf(r->error, sizeof r->error, "unreadable bulk response");
            r->transport_error = 1;
            whole = RS_RETRY;
        } else if (r->status == 429 || r->status == 503) {
            whole = RS_SOON;
            rs->n429 += r->status == 429 ? parts[i].n : 0;
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
                scopy(rs->req_reason, sizeof rs->req_reason, why);
        } else if (!rs->soon_reason[0]) {
            scopy(rs->soon_reason, sizeof rs->soon_reason, why);
        }
        for (uint32_t k = 0; k < parts[i].n; k++)
            set_st(w, pp[k], whole, why);
    }
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

static void es_buf_free(es_buf *w)
{
    if (w->why)
        for (uint32_t k = 0; k < w->nsent; k++)
            free(w->why[k]);
    free(w->why);
    free(w->st);
    free(w->off);
    free(w->recno);
    wbuf_free(&w->body);
    wbuf_free(&w->idx);
    wbuf_free(&w->scratch);
}

static int es_write(output *o, const batch *b, out_result *res)
{
    out_es *c = o->ctx;
    if (ensure_template(o, c, res->reason, sizeof res->reason) != 0) {
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
    w.recno = malloc(nrec * sizeof *w.recno);
    w.off = malloc((nrec + 1) * sizeof *w.off);
    w.st = calloc(nrec, 1);
    w.why = calloc(nrec, sizeof *w.why);
    pend = malloc(nrec * sizeof *pend);
    if (!w.recno || !w.off || !w.st || !w.why || !pend) {
        snprintf(res->reason, sizeof res->reason, "out of memory");
        goto done;
    }

    /* encode: action + document per record; unencodable records are ERROR now */
    batch_iter it;
    entry e;
    uint32_t i = 0, nbad = 0;
    char err[300];
    batch_iter_init(&it, b);
    for (; batch_iter_next(&it, &e) == 1 && i < nrec; i++) {
        uint32_t sec, nsec;
        int has_ts;
        record_time(c, &e, &sec, &nsec, &has_ts);
        size_t at = w.body.len;
        err[0] = 0;
        if (put_action(c, &w.body, &w.idx, &e, sec, err, sizeof err) != 0 ||
            put_doc(c, &w.body, &w.scratch, &e, sec, nsec, has_ts) != 0) {
            w.body.len = at;
            if (!err[0])
                snprintf(err, sizeof err, "cannot encode the record as JSON");
            out_result_mark(res, i, OUT_ERROR, err);
            nbad++;
            continue;
        }
        w.off[w.nsent] = at;
        w.recno[w.nsent++] = i;
    }
    w.off[w.nsent] = w.body.len;
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
    for (uint32_t k = 0; k < w.nsent; k++) {
        int s = w.st[k];
        if (s == RS_OK) {
            nok++;
            continue;
        }
        out_result_mark(res, w.recno[k], s == RS_ERROR ? OUT_ERROR : OUT_RETRY, w.why[k]);
        if (s == RS_ERROR)
            nerr++;
        else
            nretry++;
    }
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
        scopy(res->reason, sizeof res->reason, rs.req_reason[0] ? rs.req_reason : rs.soon_reason);
        rc = OUT_RETRY;
        goto done;
    }
    if (rs.req_reason[0])
        scopy(res->reason, sizeof res->reason, rs.req_reason);
    else if (rs.item_reason[0] || rs.soon_reason[0])
        scopy(res->reason, sizeof res->reason, rs.item_reason[0] ? rs.item_reason : rs.soon_reason);
    rc = OUT_OK; /* unmarked records are delivered; marked ones follow their status */
done:
    es_buf_free(&w);
    wbuf_free(&rb);
    free(pend);
    return rc;
}


const out_plugin out_elasticsearch_plugin = {
    .name = "elasticsearch",
    .spec = es_spec,
    .ctx_size = sizeof(out_es),
    .init = es_init,
    .write = es_write,
    .exit = es_exit,
};

const out_plugin out_opensearch_plugin = {
    .name = "opensearch",
    .spec = es_spec,
    .ctx_size = sizeof(out_es),
    .init = es_init,
    .write = es_write,
    .exit = es_exit,
};
