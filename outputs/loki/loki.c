/*
 * outputs/loki/loki.c: Grafana Loki output (`@type loki`), with the parameter
 * names of the Grafana Loki Fluentd plugin (fluent-plugin-grafana-loki).
 *
 * One write (one buffer chunk) becomes one push request per tenant to
 * <url>/loki/api/v1/push, all sent concurrently through the shared HTTP
 * client (lib/http.h). Within a request, entries are grouped per stream
 * (tenant + label set) and sorted by time (stable). The body is
 * snappy-compressed protobuf (`encoding protobuf`, the default: what
 * Promtail and Vector send) or gzip'd JSON (`encoding json`); `compress
 * none` sends either uncompressed (protobuf in snappy's literal framing).
 *
 * This file is the plugin: parameters, init, tenants, the write (records ->
 * requests -> outcomes), metrics, exit. The units it drives:
 *   labels.c   label names, <label> and extra_labels, a record's label set
 *   guard.c    the cardinality guard (max_label_sets)
 *   request.c  one write's records, streams and tenants
 *   encode.c   lines, structured metadata, the protobuf+snappy / JSON bodies
 *   status.c   what Loki's answer means for the records (the status table)
 *
 * Ownership and threads: the configuration (everything bound or built in
 * init) is immutable after init. `write` may run on several flush threads
 * at once: everything it builds lives in a per-call lk_req, freed before it
 * returns. The cardinality guard and its counters are the only shared
 * mutable state (guard.mu); the HTTP client is thread-safe.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/buffer.h>

#include "lib/clock.h"
#include "lib/http.h"
#include "lib/log.h"
#include "lib/prom.h"
#include "aggregator/compat_params.h"
#include "aggregator/output.h"
#include "aggregator/record.h"
#include "outputs/loki/encode.h"
#include "outputs/loki/grow.h"
#include "outputs/loki/guard.h"
#include "outputs/loki/labels.h"
#include "outputs/loki/loki.h"
#include "outputs/loki/request.h"
#include "outputs/loki/status.h"

/* ---------------------------------------------------------------- config -- */

static const conf_spec loki_spec[] = {
    {"url", CONF_STR, "http://127.0.0.1:3100", 0, offsetof(out_loki, url), NULL,
     "Loki base URL, `http://` or `https://` (`/loki/api/v1/push` is appended unless already there)"},
    {"username", CONF_STR, NULL, 0, offsetof(out_loki, username), NULL,
     "HTTP basic auth, with `password` (Grafana Cloud: instance id + API key)"},
    {"password", CONF_STR, NULL, 0, offsetof(out_loki, password), NULL, "HTTP basic auth, with `username`"},
    {"bearer_token_file", CONF_STR, NULL, 0, offsetof(out_loki, bearer_token_file), NULL,
     "file holding a bearer token; re-read when it changes (Kubernetes projected tokens). Not with "
     "`username`/`password`"},
    {"tenant", CONF_STR, NULL, 0, offsetof(out_loki, tenant), NULL,
     "`X-Scope-OrgID`. Static text, or from the record: `${key}`, `$.a.b` (record accessor). Records are grouped "
     "per tenant: one push request per tenant per flush"},
    {"default_tenant", CONF_STR, NULL, 0, offsetof(out_loki, default_tenant), NULL,
     "weir: tenant for records that lack the tenant key (without it they are sent with no `X-Scope-OrgID`); only "
     "with a tenant from the record"},
    {"extra_labels", CONF_HASH, NULL, 0, offsetof(out_loki, extra_labels), NULL,
     "static labels, Fluentd's hash type: a JSON hash `{\"env\":\"dev\"}` (numbers and booleans as text) or "
     "`env:dev,team:a`"},
    {"extract_kubernetes_labels", CONF_BOOL, "false", 0, offsetof(out_loki, lab.extract_kubernetes_labels), NULL,
     "add every `kubernetes.labels` key as a label (`.`, `/`, `-` and other invalid characters become `_`)"},
    {"remove_keys", CONF_ARRAY, NULL, 0, offsetof(out_loki, remove_keys), NULL,
     "keys (record accessors allowed) removed from the line"},
    {"line_format", CONF_ENUM, "key_value", 0, offsetof(out_loki, ent.line_format), "key_value|json",
     "`key_value`: `k=v k2=\"v with spaces\"` (Ruby `to_s` of values, `\"` and `\\` escaped); `json`: the record as "
     "JSON"},
    {"drop_single_key", CONF_BOOL, "false", 0, offsetof(out_loki, ent.drop_single_key), NULL,
     "when the record (after removals) has one key, the line is that value alone"},
    {"include_thread_label", CONF_BOOL, "true", 0, offsetof(out_loki, lab.include_thread_label), NULL,
     "label `fluentd_thread=\"flush_thread_N\"` (N: the flush thread); `false` avoids the extra label"},
    {"ca_cert", CONF_STR, NULL, 0, offsetof(out_loki, ca_cert), NULL, "TLS: CA bundle (PEM) to verify Loki with"},
    {"cert", CONF_STR, NULL, 0, offsetof(out_loki, cert), NULL, "TLS client certificate (PEM), with `key`"},
    {"key", CONF_STR, NULL, 0, offsetof(out_loki, key), NULL, "TLS client key (PEM), with `cert`"},
    {"insecure_tls", CONF_BOOL, "false", 0, offsetof(out_loki, insecure_tls), NULL, "do not verify Loki's certificate"},
    {"encoding", CONF_ENUM, "protobuf", 0, offsetof(out_loki, ent.encoding), "protobuf|json",
     "weir: `protobuf` (snappy-compressed protobuf, what Promtail, Alloy and Vector send) or `json` (gzip'd JSON)"},
    {"max_label_sets", CONF_INT, "10000", 0, offsetof(out_loki, max_label_sets), NULL,
     "weir: cardinality guard, distinct label sets per output (see \"Cardinality guard\"); at least 1"},
    {"label_overflow_value", CONF_STR, "__overflow__", 0, offsetof(out_loki, label_overflow_value), NULL,
     "weir: the value that replaces a label over the cap"},
    {"request_timeout", CONF_TIME, "30s", 0, offsetof(out_loki, timeout), NULL, "weir: timeout of one push request"},
    {"gzip_level", CONF_INT, "1", 0, offsetof(out_loki, gzip_level), NULL,
     "weir: gzip level (1..9) for `encoding json`"},
    {"custom_headers", CONF_HASH, NULL, 0, offsetof(out_loki, custom_headers), NULL,
     "extra HTTP headers on every push: `{\"X-Team\":\"a\"}` or `X-Team:a`"},
    {"min_version", CONF_STR, NULL, 0, offsetof(out_loki, min_version), NULL,
     "TLS: the oldest version, `TLS1_1`, `TLS1_2`, `TLS1_3` (Ruby's names; `TLSv1_2` also accepted)"},
    {"ciphers", CONF_STR, NULL, 0, offsetof(out_loki, ciphers), NULL,
     "TLS: OpenSSL cipher list for TLS 1.2 and older (e.g. `ECDHE-RSA-AES128-GCM-SHA256`)"},
    {"slow_flush_log_threshold", CONF_TIME, "20s", 0, offsetof(out_loki, slow_flush), NULL,
     "Fluentd's output parameter: a write that takes longer is logged as a warning (`buffer flush took longer time "
     "than slow_flush_log_threshold`)"},
    {"compress", CONF_STR, NULL, 0, offsetof(out_loki, compress), NULL,
     "`gzip` (also `snappy`; what weir does without the parameter): pushes compressed, snappy protobuf (`encoding "
     "protobuf`) or gzip JSON (`encoding json`). `none`: no compression, as Fluent Bit's and the Fluentd plugin's "
     "default: plain JSON, or protobuf in snappy's uncompressed framing (Loki snappy-decodes every protobuf push): "
     "less CPU for weir, more bytes on the wire"},
    {"label", CONF_SECTION, NULL, 0, 0, NULL,
     "one line per label: `name accessor` (e.g. `namespace $.kubernetes.namespace_name`) or a bare `name` "
     "(top-level key of the same name). Missing, nil and empty values add no label"},
    {"structured_metadata", CONF_SECTION, NULL, 0, 0, NULL,
     "weir (Loki 3): same syntax as `<label>`; the values are attached to each entry as structured metadata "
     "(`allow_structured_metadata` and a v13 schema on the Loki side): good for `trace_id`, `pod`, anything "
     "high-cardinality that must not be a label"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int add_strip(out_loki *c, const char *text, conf_node *n, conf_errors *errs)
{
    rec_path *s = realloc(c->ent.strip, (c->ent.nstrip + 1) * sizeof *s);
    if (!s)
        return -1;
    c->ent.strip = s;
    char err[256];
    if (rec_path_compile(&s[c->ent.nstrip], text, err, sizeof err)) {
        conf_error_at(errs, n, "remove_keys", "invalid key '%s' in remove_keys: %s", text, err);
        return -1;
    }
    c->ent.nstrip++;
    return 0;
}

static int loki_init(output *o, conf_node *n, conf_errors *errs)
{
    out_loki *c = o->ctx;
    o->slow_flush = c->slow_flush; /* the engine warns */
    lk_guard_init(&c->guard, (size_t)c->max_label_sets, c->label_overflow_value);
    pthread_mutex_init(&c->tok_mu, NULL);
    int bad = 0;
    size_t ul = strlen(c->url);
    while (ul && c->url[ul - 1] == '/')
        c->url[--ul] = 0;
    if (strncmp(c->url, "http://", 7) && strncmp(c->url, "https://", 8)) {
        conf_error_at(errs, n, "url", "url must start with http:// or https:// (got '%s')", c->url);
        bad = 1;
    }
    if (strstr(c->url, "/loki/api/v1/push"))
        c->push_url = strdup(c->url);
    else if (asprintf(&c->push_url, "%s/loki/api/v1/push", c->url) < 0)
        c->push_url = NULL;
    if (c->max_label_sets < 1) {
        conf_error_at(errs, n, "max_label_sets", "max_label_sets must be at least 1");
        bad = 1;
    }
    c->ent.compress = 1;
    if (c->compress && !strcmp(c->compress, "none"))
        c->ent.compress = 0;
    else if (c->compress && strcmp(c->compress, "gzip") && strcmp(c->compress, "snappy")) {
        conf_error_at(errs, n, "compress", "compress must be gzip, snappy or none (got '%s')", c->compress);
        bad = 1;
    }
    if (c->gzip_level < 1 || c->gzip_level > 9) {
        conf_error_at(errs, n, "gzip_level", "gzip_level must be 1..9");
        bad = 1;
    }
    if ((c->username != NULL) != (c->password != NULL)) {
        conf_error_at(errs, n, c->username ? "password" : "username", "username and password go together");
        bad = 1;
    }
    if ((c->cert != NULL) != (c->key != NULL)) {
        conf_error_at(errs, n, c->cert ? "key" : "cert", "cert and key go together (client certificate)");
        bad = 1;
    }
    if (c->bearer_token_file && c->username) {
        conf_error_at(errs, n, "bearer_token_file", "use either bearer_token_file or username/password");
        bad = 1;
    }
    /* tenant: static, or a record accessor ("$.key", "${key}" Fluentd placeholder style) */
    if (c->tenant && c->tenant[0]) {
        char acc[512] = "";
        size_t tl = strlen(c->tenant);
        if (c->tenant[0] == '$' && c->tenant[1] == '{' && tl > 3 && c->tenant[tl - 1] == '}')
            snprintf(acc, sizeof acc, "%.*s", (int)(tl - 3), c->tenant + 2);
        else if (!strncmp(c->tenant, "$.", 2) || !strncmp(c->tenant, "$[", 2))
            snprintf(acc, sizeof acc, "%s", c->tenant);
        if (acc[0]) {
            char err[256];
            if (rec_path_compile(&c->tenant_path, acc, err, sizeof err)) {
                conf_error_at(errs, n, "tenant", "invalid record accessor '%s' in tenant: %s", acc, err);
                bad = 1;
            } else {
                c->tenant_dynamic = 1;
            }
        }
    }
    if (c->default_tenant && !c->tenant_dynamic) {
        conf_error_at(errs, n, "default_tenant", "default_tenant only applies when tenant comes from the record");
        bad = 1;
    }
    if (c->extra_labels.n && lk_extra_labels_set(&c->lab, &c->extra_labels, n, errs))
        bad = 1;
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *ch = n->children[i];
        if (!strcmp(ch->name, "label") && lk_fields_bind(ch, &c->lab.labels, &c->lab.nlabels, 1, errs))
            bad = 1;
        else if (!strcmp(ch->name, "structured_metadata") &&
                 lk_fields_bind(ch, &c->ent.meta, &c->ent.nmeta, 0, errs))
            bad = 1;
    }
    if (bad)
        return -1;
    /* keys used as labels or structured metadata leave the line (as in the Fluentd plugin) */
    for (size_t i = 0; i < c->lab.nlabels; i++)
        if (add_strip(c, c->lab.labels[i].path.text, n, errs))
            return -1;
    for (size_t i = 0; i < c->ent.nmeta; i++)
        if (add_strip(c, c->ent.meta[i].path.text, n, errs))
            return -1;
    for (size_t i = 0; c->remove_keys && c->remove_keys[i]; i++)
        if (add_strip(c, c->remove_keys[i], n, errs))
            return -1;
    char err[256];
    if (c->lab.extract_kubernetes_labels &&
        rec_path_compile(&c->lab.kube_labels, "$.kubernetes.labels", err, sizeof err))
        return -1;
    if (c->bearer_token_file) {
        FILE *f = fopen(c->bearer_token_file, "r");
        if (!f) {
            conf_error_at(errs, n, "bearer_token_file", "cannot read bearer_token_file %s: %s", c->bearer_token_file,
                          strerror(errno));
            return -1;
        }
        fclose(f);
    }
    http_opts ho = {
        .timeout = c->timeout,
        .verify = !c->insecure_tls,
        .ca_file = c->ca_cert,
        .client_cert = c->cert,
        .client_key = c->key,
        .user = c->username,
        .password = c->password,
        .max_in_flight = 8,
        .max_response = 64 << 10,
        .ciphers = c->ciphers,
    };
    if (c->min_version) {
        static const char *const names[][2] = {{"TLS1", "TLSv1"}, {"TLS1_1", "TLSv1_1"}, {"TLS1_2", "TLSv1_2"},
                                               {"TLS1_3", "TLSv1_3"}};
        for (int i = 0; i < 4; i++)
            if (!strcmp(c->min_version, names[i][0]) || !strcmp(c->min_version, names[i][1]))
                ho.tls_min = 10 + i;
        if (!ho.tls_min) {
            conf_error_at(errs, n, "min_version", "min_version must be TLS1, TLS1_1, TLS1_2 or TLS1_3");
            return -1;
        }
    }
    for (size_t i = 0; i < c->custom_headers.n; i++)
        if (!c->custom_headers.kv[i].k[0] || strpbrk(c->custom_headers.kv[i].k, ": \r\n") ||
            strpbrk(c->custom_headers.kv[i].v, "\r\n")) {
            conf_error_at(errs, n, "custom_headers", "bad header '%s'", c->custom_headers.kv[i].k);
            return -1;
        }
    c->http = http_client_new(&ho, err, sizeof err);
    if (!c->http) {
        conf_error_at(errs, n, "url", "cannot set up the HTTP client: %s", err);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------- record -> parts -- */

static int thread_index(out_loki *c)
{
    static __thread const void *owner;
    static __thread int idx;
    if (owner != c) {
        owner = c;
        idx = atomic_fetch_add(&c->next_thread, 1);
    }
    return idx;
}

static int tenant_of(out_loki *c, lk_req *r, const entry *e, uint32_t *out)
{
    const char *t = c->tenant_dynamic ? NULL : c->tenant;
    size_t tl = t ? strlen(t) : 0;
    if (c->tenant_dynamic) {
        size_t vl;
        const uint8_t *v = rec_lookup(e->record, e->record_len, &c->tenant_path, &vl);
        r->sc2.len = 0;
        if (v && rec_value_to_s(&r->sc2, v, vl))
            return -1;
        if (v && r->sc2.len) {
            t = (const char *)r->sc2.data;
            tl = r->sc2.len;
        } else {
            t = c->default_tenant;
            tl = t ? strlen(t) : 0;
        }
    }
    return lk_req_tenant(r, t, tl, out);
}

int lk_collect(output *o, lk_req *r, const batch *b, out_result *res, uint32_t *nbad)
{
    out_loki *c = o->ctx;
    batch_iter it;
    entry e;
    uint32_t idx = 0;
    batch_iter_init(&it, b);
    int more;
    while ((more = batch_iter_next(&it, &e)) == 1) {
        if (LK_GROW(r->recs, r->nrecs, r->cap_recs))
            return -1;
        lk_rec *lr = &r->recs[r->nrecs];
        memset(lr, 0, sizeof *lr);
        lr->idx = idx++;
        lr->sec = e.sec;
        lr->nsec = e.nsec;
        uint32_t tenant;
        if (tenant_of(c, r, &e, &tenant) ||
            lk_labels_build(&c->lab, &r->ls, &e, c->lab.include_thread_label ? thread_index(c) : 0))
            return -1;
        uint64_t lh = lk_guard_apply(&c->guard, &r->ls, &r->memo, o->id);
        if (lk_req_stream(r, tenant, lh, &lr->stream))
            return -1;
        size_t sm_mark = r->sm.len, line_mark = r->lines.len;
        if (lk_entry_line(&c->ent, r, &e, lr) || lk_entry_meta(&c->ent, r, &e, lr)) {
            /* a record weir cannot turn into a line: only that record fails */
            out_result_mark(res, lr->idx, OUT_ERROR, "loki: record is not a map that can be formatted");
            wlog_error("out_loki", "%s: cannot format a record of tag %s; sent to @ERROR/dead letter", o->id, e.tag);
            r->lines.len = line_mark;
            r->sm.len = sm_mark;
            (*nbad)++;
            continue;
        }
        r->nrecs++;
    }
    if (more < 0)
        return -2;
    if (r->nrecs)
        lk_req_sort(r);
    return 0;
}

/* ---------------------------------------------------------------- write -- */

static char *read_token(out_loki *c)
{
    struct stat st;
    pthread_mutex_lock(&c->tok_mu);
    if (stat(c->bearer_token_file, &st) == 0 &&
        (!c->token || st.st_mtim.tv_sec != c->tok_mtime.tv_sec || st.st_mtim.tv_nsec != c->tok_mtime.tv_nsec)) {
        FILE *f = fopen(c->bearer_token_file, "r");
        char buf[8192];
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        if (n) {
            while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
                n--;
            buf[n] = 0;
            free(c->token);
            c->token = strdup(buf);
            c->tok_mtime = st.st_mtim;
        } else if (!c->token) {
            wlog_error("out_loki", "cannot read bearer_token_file %s", c->bearer_token_file);
        }
    }
    char *t = c->token ? strdup(c->token) : NULL;
    pthread_mutex_unlock(&c->tok_mu);
    return t;
}

static int loki_write(output *o, const batch *b, out_result *res)
{
    out_loki *c = o->ctx;
    lk_req r = {0};
    wbuf *bodies = NULL, raw = {0};
    http_req *reqs = NULL;
    char **hdrs = NULL; /* per request: content type, encoding, tenant, authorization, custom_headers, NULL */
    const size_t hn = 5 + c->custom_headers.n;
    size_t *tfrom = NULL;
    int rc = OUT_OK;
    char *token = c->bearer_token_file ? read_token(c) : NULL;

    /* 1. every record -> tenant, stream, line, metadata */
    uint32_t nbad = 0;
    int crc = lk_collect(o, &r, b, res, &nbad);
    if (crc == -1)
        goto oom;
    if (crc == -2) {
        wlog_error("out_loki", "%s: malformed batch of tag %s", o->id, b->tag);
        snprintf(res->reason, sizeof res->reason, "malformed batch");
        rc = OUT_ERROR;
        goto out;
    }
    if (!r.nrecs)
        goto out;

    /* 2. group: tenant, stream, time (sorted by lk_collect) */
    size_t nt = r.ntenants;
    bodies = calloc(nt, sizeof *bodies);
    reqs = calloc(nt, sizeof *reqs);
    hdrs = calloc(nt * hn, sizeof *hdrs);
    tfrom = calloc(nt + 1, sizeof *tfrom);
    if (!bodies || !reqs || !hdrs || !tfrom)
        goto oom;
    for (size_t i = 0, t = 0; t <= nt; t++) {
        while (i < r.nrecs && r.streams[r.recs[i].stream].tenant < t)
            i++;
        tfrom[t] = i;
    }
    /* 3. one request per tenant */
    static const char *ct_pb = "Content-Type: application/x-protobuf";
    static const char *ct_json = "Content-Type: application/json";
    size_t nreq = 0;
    size_t *req_tenant = calloc(nt, sizeof *req_tenant);
    if (!req_tenant)
        goto oom;
    for (size_t t = 0; t < nt; t++) {
        if (tfrom[t] == tfrom[t + 1])
            continue;
        size_t raw_len = 0;
        int brc;
        if (c->ent.encoding == LK_PROTOBUF) {
            brc = lk_body_protobuf(&r, tfrom[t], tfrom[t + 1], c->ent.compress, &raw, &bodies[nreq], &raw_len);
        } else if (c->ent.compress) {
            brc = lk_body_json(&r, tfrom[t], tfrom[t + 1], &raw) ||
                  lk_gzip_into(&raw, &bodies[nreq], (int)c->gzip_level);
            raw_len = raw.len;
        } else {
            brc = lk_body_json(&r, tfrom[t], tfrom[t + 1], &bodies[nreq]);
            raw_len = bodies[nreq].len;
        }
        atomic_fetch_add(&c->raw_bytes, raw_len);
        atomic_fetch_add(&c->body_bytes, bodies[nreq].len);
        atomic_fetch_add(&c->pushed_records, tfrom[t + 1] - tfrom[t]);
        if (brc) {
            free(req_tenant);
            goto oom;
        }
        char **h = &hdrs[nreq * hn];
        int k = 0;
        h[k++] = strdup(c->ent.encoding == LK_PROTOBUF ? ct_pb : ct_json);
        if (c->ent.encoding == LK_JSON_BODY && c->ent.compress)
            h[k++] = strdup("Content-Encoding: gzip");
        const char *tn = (const char *)r.text.data + r.tenants[t];
        if (*tn && asprintf(&h[k++], "X-Scope-OrgID: %s", tn) < 0)
            h[--k] = NULL;
        if (token && asprintf(&h[k++], "Authorization: Bearer %s", token) < 0)
            h[--k] = NULL;
        for (size_t j = 0; j < c->custom_headers.n; j++)
            if (asprintf(&h[k++], "%s: %s", c->custom_headers.kv[j].k, c->custom_headers.kv[j].v) < 0)
                h[--k] = NULL;
        http_req *q = &reqs[nreq];
        q->method = "POST";
        q->url = c->push_url;
        q->headers = (const char *const *)h;
        q->body = bodies[nreq].data;
        q->body_len = bodies[nreq].len;
        req_tenant[nreq++] = t;
    }
    http_perform(c->http, reqs, nreq);
    atomic_fetch_add(&c->requests, nreq);

    /* 4. outcome per request */
    size_t nretry_req = 0;
    char why[512] = "";
    for (size_t k = 0; k < nreq; k++) {
        http_req *q = &reqs[k];
        size_t t = req_tenant[k];
        const char *tn = (const char *)r.text.data + r.tenants[t];
        int st = lk_status(q);
        if (st == LK_DELIVERED)
            continue;
        atomic_fetch_add(&c->req_failed, 1);
        lk_excerpt(why, sizeof why, q);
        if (st == LK_RETRY) {
            nretry_req++;
            snprintf(res->reason, sizeof res->reason, "%.*s", (int)sizeof res->reason - 1, why);
            for (size_t i = tfrom[t]; i < tfrom[t + 1]; i++)
                out_result_mark(res, r.recs[i].idx, OUT_RETRY, NULL);
            wlog_warn("out_loki", "%s: push of %zu records (tenant '%s') failed, will retry: %s", o->id,
                      tfrom[t + 1] - tfrom[t], tn, why);
            continue;
        }
        size_t nrej = lk_reject(&r, q, tfrom[t], tfrom[t + 1], why, res);
        atomic_fetch_add(&c->rejected_records, nrej);
        wlog_warn("out_loki", "%s: Loki rejected %zu of %zu records (tenant '%s'); not retried, sent to @ERROR/dead "
                  "letter: %s", o->id, nrej, tfrom[t + 1] - tfrom[t], tn, why);
    }
    if (nretry_req == nreq && nreq && !nbad) {
        /* every request failed in a retryable way: the buffer's retry rules, whole batch */
        out_result_free(res);
        rc = OUT_RETRY;
    }
    free(req_tenant);
    goto out;
oom:
    wlog_error("out_loki", "%s: out of memory building a push request for tag %s", o->id, b->tag);
    snprintf(res->reason, sizeof res->reason, "out of memory building the push request");
    out_result_free(res);
    rc = OUT_RETRY;
out:
    for (size_t k = 0; reqs && k < r.ntenants; k++) {
        http_req_clear(&reqs[k]);
        wbuf_free(&bodies[k]);
        for (size_t j = 0; j < hn; j++)
            free(hdrs[k * hn + j]);
    }
    free(reqs);
    free(bodies);
    free(hdrs);
    free(tfrom);
    free(token);
    wbuf_free(&raw);
    lk_req_free(&r);
    return rc;
}

/* ------------------------------------------------------- metrics, exit -- */

/* Every family once, with the samples of all loki outputs. */
static void loki_metrics(output *const *outs, size_t n, struct evbuffer *ev)
{
    prom_head(ev, "weir_loki_label_sets", "gauge", "distinct label sets an output has sent");
    for (size_t i = 0; i < n; i++) {
        out_loki *c = outs[i]->ctx;
        pthread_mutex_lock(&c->guard.mu);
        size_t sets = c->guard.sets.n;
        pthread_mutex_unlock(&c->guard.mu);
        evbuffer_add_printf(ev, "weir_loki_label_sets{output=\"%s\"} %zu\n", outs[i]->id, sets);
    }
    prom_head(ev, "weir_loki_label_overflow_total", "counter",
              "label values replaced by the cardinality guard (label=\"\": all labels)");
    for (size_t i = 0; i < n; i++) {
        out_loki *c = outs[i]->ctx;
        pthread_mutex_lock(&c->guard.mu);
        evbuffer_add_printf(ev, "weir_loki_label_overflow_total{output=\"%s\",label=\"\"} %llu\n", outs[i]->id,
                            (unsigned long long)c->guard.overflow_total);
        for (size_t k = 0; k < c->guard.nnm; k++)
            if (c->guard.nm[k].overflow)
                evbuffer_add_printf(ev, "weir_loki_label_overflow_total{output=\"%s\",label=\"%s\"} %llu\n",
                                    outs[i]->id, c->guard.nm[k].name, (unsigned long long)c->guard.nm[k].overflow);
        pthread_mutex_unlock(&c->guard.mu);
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } ctr[] = {
        {"weir_loki_requests_total", "push requests sent", offsetof(out_loki, requests)},
        {"weir_loki_failed_requests_total", "push requests that got no 2xx", offsetof(out_loki, req_failed)},
        {"weir_loki_pushed_records_total", "records in push requests sent", offsetof(out_loki, pushed_records)},
        {"weir_loki_rejected_records_total", "records Loki refused with a 4xx (to @ERROR / dead letter)",
         offsetof(out_loki, rejected_records)},
    };
    for (size_t k = 0; k < sizeof ctr / sizeof ctr[0]; k++) {
        prom_head(ev, ctr[k].name, "counter", ctr[k].help);
        for (size_t i = 0; i < n; i++)
            evbuffer_add_printf(
                ev, "%s{output=\"%s\"} %llu\n", ctr[k].name, outs[i]->id,
                (unsigned long long)prom_ld((atomic_uint_fast64_t *)((char *)outs[i]->ctx + ctr[k].off)));
    }
    prom_head(ev, "weir_loki_body_bytes_total", "counter",
              "push request bytes: on the wire (stage=wire) and before compression (stage=raw)");
    for (size_t i = 0; i < n; i++) {
        out_loki *c = outs[i]->ctx;
        evbuffer_add_printf(ev, "weir_loki_body_bytes_total{output=\"%s\",stage=\"wire\"} %llu\n", outs[i]->id,
                            (unsigned long long)prom_ld(&c->body_bytes));
        evbuffer_add_printf(ev, "weir_loki_body_bytes_total{output=\"%s\",stage=\"raw\"} %llu\n", outs[i]->id,
                            (unsigned long long)prom_ld(&c->raw_bytes));
    }
}

static void loki_exit(output *o)
{
    out_loki *c = o->ctx;
    if (c->http)
        http_client_free(c->http);
    lk_label_conf_free(&c->lab);
    lk_fields_free(c->ent.meta, c->ent.nmeta);
    rec_paths_free(c->ent.strip, c->ent.nstrip);
    if (c->tenant_dynamic)
        rec_path_free(&c->tenant_path);
    free(c->push_url);
    free(c->token);
    lk_guard_free(&c->guard);
    pthread_mutex_destroy(&c->tok_mu);
}

OUT_PLUGIN(loki, loki, out_loki, .metrics = loki_metrics);
