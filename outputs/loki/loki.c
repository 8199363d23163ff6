/*
 * outputs/loki/loki.c: Grafana Loki output (`@type loki`), with the parameter
 * names of the Grafana Loki Fluentd plugin (fluent-plugin-grafana-loki).
 *
 * One write (one buffer chunk) becomes one push request per tenant to
 * <url>/loki/api/v1/push, all sent concurrently through the shared HTTP
 * client (outputs/http.h). Within a request, entries are grouped per stream
 * (tenant + label set) and sorted by time (stable). The body is
 * snappy-compressed protobuf (`encoding protobuf`, the default: what
 * Promtail and Vector send) or gzip'd JSON (`encoding json`).
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
 * Cardinality guard (`max_label_sets`): an output remembers the distinct
 * label sets it has sent and the label values they used. Once it holds that
 * many sets, a record with a new set has each dynamic label whose value was
 * never seen replaced by `label_overflow_value` (most diverse label first,
 * stopping as soon as the set is a known one); a new combination of known
 * values loses its most diverse label. Streams beyond the cap are thus made
 * of known values only: bounded. Each replacement is counted in
 * weir_loki_label_overflow_total{output,label}, logged once per label.
 *
 * Ownership and threads: the configuration (everything bound or built in
 * init) is immutable after init. `write` may run on several flush threads
 * at once: everything it builds lives in a per-call lk_req, freed before it
 * returns. The cardinality guard and its counters are the only shared
 * mutable state (guard.mu); the HTTP client is thread-safe.
 */
#include <errno.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "lib/http.h"
#include "lib/json.h"
#include "lib/log.h"
#include "aggregator/output.h"
#include "aggregator/record.h"

enum { LK_KEY_VALUE, LK_JSON };
enum { LK_PROTOBUF, LK_JSON_BODY };

typedef struct lk_field {
    char *name;    /* label / metadata name (sanitised for labels) */
    rec_path path; /* where the value is in the record */
} lk_field;

/* u64 -> u64 open-addressing map; key 0 is stored as 1 (hashes, not ids). */
typedef struct u64map {
    uint64_t *keys, *vals;
    size_t cap, n;
} u64map;

typedef struct lk_name {
    char *name;
    uint64_t distinct; /* values seen while under the cap */
    uint64_t overflow; /* times this label was replaced */
} lk_name;

typedef struct lk_guard {
    pthread_mutex_t mu;
    u64map sets;  /* label-set hash -> 1 */
    u64map pairs; /* name/value hash -> 1 */
    u64map names; /* name hash -> index into `nm` + 1 */
    lk_name *nm;
    size_t nnm, cap_nm;
    uint64_t overflow_total;
} lk_guard;

typedef struct out_loki {
    /* bound from config */
    char *url, *username, *password, *bearer_token_file, *tenant, *default_tenant;
    char *extra_labels;
    int extract_kubernetes_labels;
    char **remove_keys;
    int line_format;
    int drop_single_key;
    int include_thread_label;
    char *ca_cert, *cert, *key;
    int insecure_tls;
    int encoding;
    int64_t max_label_sets;
    char *label_overflow_value;
    double timeout;
    int64_t gzip_level;
    /* built in init */
    char *push_url;
    lk_field *labels, *meta;
    size_t nlabels, nmeta;
    char **extra_k, **extra_v;
    size_t nextra;
    rec_path tenant_path;
    int tenant_dynamic;
    rec_path kube_labels;
    rec_path *strip; /* label, metadata and remove_keys paths: taken out of the line */
    size_t nstrip;
    http_client *http;
    lk_guard guard;
    atomic_int next_thread;
    /* bearer token, re-read when the file changes (under tok_mu) */
    pthread_mutex_t tok_mu;
    char *token;
    struct timespec tok_mtime;
    /* counters */
    atomic_uint_fast64_t requests, req_failed, rejected_records;
    /* sent requests: records, bytes on the wire, bytes before compression */
    atomic_uint_fast64_t pushed_records, body_bytes, raw_bytes;
} out_loki;

/* ---------------------------------------------------------------- config -- */

static const conf_spec loki_spec[] = {
    {"url", CONF_STR, "http://127.0.0.1:3100", 0, offsetof(out_loki, url), NULL},
    {"username", CONF_STR, NULL, 0, offsetof(out_loki, username), NULL},
    {"password", CONF_STR, NULL, 0, offsetof(out_loki, password), NULL},
    {"bearer_token_file", CONF_STR, NULL, 0, offsetof(out_loki, bearer_token_file), NULL},
    {"tenant", CONF_STR, NULL, 0, offsetof(out_loki, tenant), NULL},
    {"default_tenant", CONF_STR, NULL, 0, offsetof(out_loki, default_tenant), NULL},
    {"extra_labels", CONF_STR, NULL, 0, offsetof(out_loki, extra_labels), NULL},
    {"extract_kubernetes_labels", CONF_BOOL, "false", 0, offsetof(out_loki, extract_kubernetes_labels), NULL},
    {"remove_keys", CONF_ARRAY, NULL, 0, offsetof(out_loki, remove_keys), NULL},
    {"line_format", CONF_ENUM, "key_value", 0, offsetof(out_loki, line_format), "key_value|json"},
    {"drop_single_key", CONF_BOOL, "false", 0, offsetof(out_loki, drop_single_key), NULL},
    {"include_thread_label", CONF_BOOL, "true", 0, offsetof(out_loki, include_thread_label), NULL},
    {"ca_cert", CONF_STR, NULL, 0, offsetof(out_loki, ca_cert), NULL},
    {"cert", CONF_STR, NULL, 0, offsetof(out_loki, cert), NULL},
    {"key", CONF_STR, NULL, 0, offsetof(out_loki, key), NULL},
    {"insecure_tls", CONF_BOOL, "false", 0, offsetof(out_loki, insecure_tls), NULL},
    {"encoding", CONF_ENUM, "protobuf", 0, offsetof(out_loki, encoding), "protobuf|json"},
    {"max_label_sets", CONF_INT, "10000", 0, offsetof(out_loki, max_label_sets), NULL},
    {"label_overflow_value", CONF_STR, "__overflow__", 0, offsetof(out_loki, label_overflow_value), NULL},
    {"request_timeout", CONF_TIME, "30s", 0, offsetof(out_loki, timeout), NULL},
    {"gzip_level", CONF_INT, "1", 0, offsetof(out_loki, gzip_level), NULL},
    {"label", CONF_SECTION, NULL, 0, 0, NULL},
    {"structured_metadata", CONF_SECTION, NULL, 0, 0, NULL},
    {"buffer", CONF_SECTION, NULL, 0, 0, NULL},
    {"secondary", CONF_SECTION, NULL, 0, 0, NULL},
    {NULL, 0, NULL, 0, 0, NULL},
};

static int valid_label_name(const char *s)
{
    if (!*s || (*s >= '0' && *s <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Loki's label names are [a-zA-Z_][a-zA-Z0-9_]*: anything else becomes '_'
 * (what the Fluentd plugin does to Kubernetes label names). */
static size_t sanitize_name(char *out, size_t cap, const uint8_t *s, size_t n)
{
    size_t j = 0;
    if (n && s[0] >= '0' && s[0] <= '9' && j + 1 < cap)
        out[j++] = '_';
    for (size_t i = 0; i < n && j + 1 < cap; i++) {
        uint8_t ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
        out[j++] = ok ? (char)ch : '_';
    }
    out[j] = 0;
    return j;
}

/* <label> / <structured_metadata>: "name accessor" or a bare "name" (the
 * top-level key of that name). Accessors: "$.a.b", "$['a']", or a bare key. */
static int bind_fields(conf_node *sec, lk_field **out, size_t *nout, int labels, conf_errors *errs)
{
    for (size_t i = 0; i < sec->nchildren; i++)
        conf_errors_add(errs, sec->children[i]->file, sec->children[i]->line, "<%s> takes no sub-section <%s>",
                        sec->name, sec->children[i]->name);
    if (sec->nchildren)
        return -1;
    lk_field *f = realloc(*out, (*nout + sec->nparams) * sizeof *f);
    if (!f)
        return -1;
    *out = f;
    for (size_t i = 0; i < sec->nparams; i++) {
        conf_param *p = &sec->params[i];
        p->used = 1;
        const char *acc = p->value && p->value[0] ? p->value : p->key;
        if (labels && !valid_label_name(p->key)) {
            conf_errors_add(errs, p->file, p->line,
                            "invalid label name '%s' in <label>: Loki label names are [a-zA-Z_][a-zA-Z0-9_]*", p->key);
            return -1;
        }
        char err[256];
        lk_field *x = &f[*nout];
        memset(x, 0, sizeof *x);
        if (rec_path_compile(&x->path, acc, err, sizeof err)) {
            conf_errors_add(errs, p->file, p->line, "invalid record accessor '%s' for '%s' in <%s>: %s", acc, p->key,
                            sec->name, err);
            return -1;
        }
        x->name = strdup(p->key);
        (*nout)++;
    }
    return 0;
}

static int parse_extra_labels(out_loki *c, conf_node *n, conf_errors *errs)
{
    json_error_t je;
    json_t *j = json_loads(c->extra_labels, 0, &je);
    if (!j || !json_is_object(j)) {
        conf_error_at(errs, n, "extra_labels", "extra_labels must be a JSON hash like {\"env\":\"dev\"}%s%s",
                      j ? "" : ": ", j ? "" : je.text);
        json_decref(j);
        return -1;
    }
    size_t cnt = json_object_size(j);
    c->extra_k = calloc(cnt + 1, sizeof(char *));
    c->extra_v = calloc(cnt + 1, sizeof(char *));
    const char *k;
    json_t *v;
    int bad = 0;
    json_object_foreach(j, k, v)
    {
        if (!valid_label_name(k)) {
            conf_error_at(errs, n, "extra_labels", "invalid label name '%s' in extra_labels", k);
            bad = 1;
            break;
        }
        char num[64];
        const char *val = json_is_string(v) ? json_string_value(v) : NULL;
        if (!val) {
            if (json_is_integer(v))
                snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
            else if (json_is_real(v))
                snprintf(num, sizeof num, "%g", json_real_value(v));
            else if (json_is_boolean(v))
                snprintf(num, sizeof num, "%s", json_is_true(v) ? "true" : "false");
            else {
                conf_error_at(errs, n, "extra_labels", "extra_labels value of '%s' must be a string", k);
                bad = 1;
                break;
            }
            val = num;
        }
        c->extra_k[c->nextra] = strdup(k);
        c->extra_v[c->nextra] = strdup(val);
        c->nextra++;
    }
    json_decref(j);
    return bad ? -1 : 0;
}

static int add_strip(out_loki *c, const char *text, conf_node *n, conf_errors *errs)
{
    rec_path *s = realloc(c->strip, (c->nstrip + 1) * sizeof *s);
    if (!s)
        return -1;
    c->strip = s;
    char err[256];
    if (rec_path_compile(&s[c->nstrip], text, err, sizeof err)) {
        conf_error_at(errs, n, "remove_keys", "invalid key '%s' in remove_keys: %s", text, err);
        return -1;
    }
    c->nstrip++;
    return 0;
}

static int loki_init(output *o, conf_node *n, conf_errors *errs)
{
    out_loki *c = o->ctx;
    pthread_mutex_init(&c->guard.mu, NULL);
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
    if (c->extra_labels && parse_extra_labels(c, n, errs))
        bad = 1;
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *ch = n->children[i];
        if (!strcmp(ch->name, "label") && bind_fields(ch, &c->labels, &c->nlabels, 1, errs))
            bad = 1;
        else if (!strcmp(ch->name, "structured_metadata") && bind_fields(ch, &c->meta, &c->nmeta, 0, errs))
            bad = 1;
    }
    if (bad)
        return -1;
    /* keys used as labels or structured metadata leave the line (as in the Fluentd plugin) */
    for (size_t i = 0; i < c->nlabels; i++)
        if (add_strip(c, c->labels[i].path.text, n, errs))
            return -1;
    for (size_t i = 0; i < c->nmeta; i++)
        if (add_strip(c, c->meta[i].path.text, n, errs))
            return -1;
    for (size_t i = 0; c->remove_keys && c->remove_keys[i]; i++)
        if (add_strip(c, c->remove_keys[i], n, errs))
            return -1;
    char err[256];
    if (c->extract_kubernetes_labels && rec_path_compile(&c->kube_labels, "$.kubernetes.labels", err, sizeof err))
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
    };
    c->http = http_client_new(&ho, err, sizeof err);
    if (!c->http) {
        conf_error_at(errs, n, "url", "cannot set up the HTTP client: %s", err);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- u64 map -- */

static int u64map_grow(u64map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 1024;
    uint64_t *k = calloc(ncap, sizeof *k), *v = calloc(ncap, sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        size_t j = m->keys[i] & (ncap - 1);
        while (k[j])
            j = (j + 1) & (ncap - 1);
        k[j] = m->keys[i];
        v[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = k;
    m->vals = v;
    m->cap = ncap;
    return 0;
}

/* Pointer to the value of key (inserting 0 when `add`), or NULL. */
static uint64_t *u64map_at(u64map *m, uint64_t key, int add, int *added)
{
    key = key ? key : 1;
    if (added)
        *added = 0;
    if (m->cap) {
        size_t j = key & (m->cap - 1);
        while (m->keys[j]) {
            if (m->keys[j] == key)
                return &m->vals[j];
            j = (j + 1) & (m->cap - 1);
        }
    }
    if (!add)
        return NULL;
    if ((m->n + 1) * 10 > m->cap * 7 && u64map_grow(m))
        return NULL;
    size_t j = key & (m->cap - 1);
    while (m->keys[j])
        j = (j + 1) & (m->cap - 1);
    m->keys[j] = key;
    m->vals[j] = 0;
    m->n++;
    if (added)
        *added = 1;
    return &m->vals[j];
}

static void u64map_free(u64map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV0 0xcbf29ce484222325ull

/* ------------------------------------------------------------ per write -- */

typedef struct lk_kv {
    uint32_t noff, nlen, voff, vlen; /* into lk_req.sc */
    uint32_t seq;                    /* insertion order: equal names keep the last */
    uint8_t dyn;                     /* from the record: the guard may replace it */
} lk_kv;

typedef struct lk_rec {
    uint32_t idx; /* in the batch */
    uint32_t stream;
    uint32_t sec, nsec;
    size_t line_off, sm_off; /* into lk_req.lines / lk_req.sm */
    uint32_t line_len, sm_len;
    uint32_t esize; /* protobuf EntryAdapter size */
} lk_rec;

typedef struct lk_stream {
    uint32_t tenant;
    size_t lab_off, json_off; /* canonical {a="b", c="d"} and JSON object, in lk_req.text */
    uint32_t lab_len, json_len;
    uint64_t h;
    uint64_t size; /* protobuf StreamAdapter size */
} lk_stream;

typedef struct lk_req {
    wbuf sc, sc2, lines, sm, text;
    lk_kv *kv;
    size_t nkv, cap_kv;
    lk_rec *recs;
    size_t nrecs, cap_recs;
    lk_stream *streams;
    size_t nstreams, cap_streams;
    uint32_t *stab; /* stream hash table: index + 1 */
    size_t stab_cap;
    size_t *tenants; /* offsets of NUL-terminated tenant names in text */
    size_t ntenants, cap_tenants;
    uint64_t guard_known; /* hash of the last label set the guard let through as it is */
    int guard_known_set;  /* (consecutive records mostly share a stream: no lock for them) */
} lk_req;

static void lk_req_free(lk_req *r)
{
    wbuf_free(&r->sc);
    wbuf_free(&r->sc2);
    wbuf_free(&r->lines);
    wbuf_free(&r->sm);
    wbuf_free(&r->text);
    free(r->kv);
    free(r->recs);
    free(r->streams);
    free(r->stab);
    free(r->tenants);
}

/* Make room for one more element of arr (n used, cap allocated); -1 on OOM. */
#define GROW(arr, n, cap)                                                                                    \
    ((n) < (cap) ? 0                                                                                         \
                 : ((cap) = (cap) ? (cap) * 2 : 64, (arr) = realloc_or_free((arr), (cap) * sizeof *(arr)), \
                    (arr) ? 0 : -1))

static void *realloc_or_free(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q)
        free(p);
    return q;
}

static int kv_add(lk_req *r, const char *name, size_t nlen, const void *val, size_t vlen, int dyn)
{
    if (GROW(r->kv, r->nkv, r->cap_kv))
        return -1;
    lk_kv *k = &r->kv[r->nkv];
    k->noff = (uint32_t)r->sc.len;
    k->nlen = (uint32_t)nlen;
    if (rec_add(&r->sc, name, nlen))
        return -1;
    k->voff = (uint32_t)r->sc.len;
    k->vlen = (uint32_t)vlen;
    if (rec_add(&r->sc, val, vlen))
        return -1;
    k->dyn = (uint8_t)dyn;
    k->seq = (uint32_t)r->nkv;
    r->nkv++;
    return 0;
}

/* A record value as a label value (Ruby to_s); empty/absent: not added. */
static int kv_add_value(lk_req *r, const char *name, size_t nlen, const uint8_t *v, size_t vlen)
{
    size_t mark = r->sc.len;
    if (rec_add(&r->sc, name, nlen))
        return -1;
    size_t voff = r->sc.len;
    if (rec_value_to_s(&r->sc, v, vlen))
        return -1;
    size_t n = r->sc.len - voff;
    if (n == 0) {
        r->sc.len = mark;
        return 0;
    }
    if (GROW(r->kv, r->nkv, r->cap_kv))
        return -1;
    r->kv[r->nkv] = (lk_kv){.noff = (uint32_t)mark, .nlen = (uint32_t)nlen, .voff = (uint32_t)voff,
                            .vlen = (uint32_t)n, .seq = (uint32_t)r->nkv, .dyn = 1};
    r->nkv++;
    return 0;
}

static int kv_cmp(const void *a, const void *b, void *arg)
{
    const uint8_t *base = arg;
    const lk_kv *x = a, *y = b;
    size_t n = x->nlen < y->nlen ? x->nlen : y->nlen;
    int c = memcmp(base + x->noff, base + y->noff, n);
    if (c)
        return c;
    if (x->nlen != y->nlen)
        return x->nlen < y->nlen ? -1 : 1;
    /* same name: keep insertion order (the last one wins below) */
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sort by name (stable), keep the last of equal names. */
static void kv_normalize(lk_req *r)
{
    qsort_r(r->kv, r->nkv, sizeof *r->kv, kv_cmp, r->sc.data);
    size_t j = 0;
    for (size_t i = 0; i < r->nkv; i++) {
        if (i + 1 < r->nkv && r->kv[i].nlen == r->kv[i + 1].nlen &&
            !memcmp(r->sc.data + r->kv[i].noff, r->sc.data + r->kv[i + 1].noff, r->kv[i].nlen))
            continue;
        r->kv[j++] = r->kv[i];
    }
    r->nkv = j;
}

/* Go's strconv.Quote for the bytes we produce (what Loki prints in errors). */
static int quote_go(wbuf *o, const uint8_t *s, size_t n)
{
    if (wbuf_addc(o, '"'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = s[i];
        const char *esc = NULL;
        char hex[5];
        switch (ch) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\a': esc = "\\a"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\v': esc = "\\v"; break;
        default:
            if (ch < 0x20 || ch == 0x7f) {
                snprintf(hex, sizeof hex, "\\x%02x", ch);
                esc = hex;
            }
        }
        if (esc ? wbuf_add(o, esc, strlen(esc)) : wbuf_addc(o, ch))
            return -1;
    }
    return wbuf_addc(o, '"');
}

/* Canonical label text of r->kv (sorted) appended to o. */
static int labels_text(lk_req *r, wbuf *o)
{
    if (wbuf_addc(o, '{'))
        return -1;
    for (size_t i = 0; i < r->nkv; i++) {
        if (i && wbuf_add(o, ", ", 2))
            return -1;
        if (wbuf_add(o, r->sc.data + r->kv[i].noff, r->kv[i].nlen) || wbuf_addc(o, '=') ||
            quote_go(o, r->sc.data + r->kv[i].voff, r->kv[i].vlen))
            return -1;
    }
    return wbuf_addc(o, '}');
}

static int labels_json(lk_req *r, wbuf *o)
{
    if (wbuf_addc(o, '{'))
        return -1;
    for (size_t i = 0; i < r->nkv; i++) {
        if ((i && wbuf_addc(o, ',')) || jw_string(o, r->sc.data + r->kv[i].noff, r->kv[i].nlen) ||
            wbuf_addc(o, ':') || jw_string(o, r->sc.data + r->kv[i].voff, r->kv[i].vlen))
            return -1;
    }
    return wbuf_addc(o, '}');
}

static uint64_t kv_hash(lk_req *r)
{
    uint64_t h = FNV0;
    for (size_t i = 0; i < r->nkv; i++) {
        h = fnv(h, r->sc.data + r->kv[i].noff, r->kv[i].nlen);
        h = fnv(h, "\x01", 1);
        h = fnv(h, r->sc.data + r->kv[i].voff, r->kv[i].vlen);
        h = fnv(h, "\x02", 1);
    }
    return h;
}

/* -------------------------------------------------- cardinality guard -- */

static lk_name *guard_name(lk_guard *g, const uint8_t *name, size_t n)
{
    int added;
    uint64_t *slot = u64map_at(&g->names, fnv(FNV0, name, n), 1, &added);
    if (!slot)
        return NULL;
    if (added) {
        if (g->nnm == g->cap_nm) {
            size_t nc = g->cap_nm ? g->cap_nm * 2 : 16;
            lk_name *x = realloc(g->nm, nc * sizeof *x);
            if (!x)
                return NULL;
            g->nm = x;
            g->cap_nm = nc;
        }
        lk_name *e = &g->nm[g->nnm];
        memset(e, 0, sizeof *e);
        e->name = strndup((const char *)name, n);
        *slot = ++g->nnm;
    }
    return &g->nm[*slot - 1];
}

/* Apply the guard to r->kv (sorted). May rewrite dynamic values. */
static void guard_apply(output *o, out_loki *c, lk_req *r)
{
    lk_guard *g = &c->guard;
    uint64_t h = kv_hash(r);
    if (r->guard_known_set && r->guard_known == h)
        return; /* known set (sets are never forgotten): as the lookup below would find */
    pthread_mutex_lock(&g->mu);
    if (u64map_at(&g->sets, h, 0, NULL)) {
        pthread_mutex_unlock(&g->mu);
        r->guard_known = h;
        r->guard_known_set = 1;
        return;
    }
    if (g->sets.n < (size_t)c->max_label_sets) {
        u64map_at(&g->sets, h, 1, NULL);
        r->guard_known = h;
        r->guard_known_set = 1;
        for (size_t i = 0; i < r->nkv; i++) {
            const uint8_t *nm = r->sc.data + r->kv[i].noff;
            uint64_t ph = fnv(fnv(fnv(FNV0, nm, r->kv[i].nlen), "\x01", 1), r->sc.data + r->kv[i].voff, r->kv[i].vlen);
            int added;
            if (u64map_at(&g->pairs, ph, 1, &added) && added) {
                lk_name *e = guard_name(g, nm, r->kv[i].nlen);
                if (e)
                    e->distinct++;
            }
        }
        pthread_mutex_unlock(&g->mu);
        return;
    }
    /* Over the cap. Replace label values until the set is a known one or
     * is made only of values seen under the cap (plus the overflow value):
     * first the values never seen (most diverse label first), then, if the
     * combination alone is new, the most diverse label. This bounds the sets
     * sent beyond the cap by the product of the values known at the cap. */
    size_t ov_len = strlen(c->label_overflow_value);
    int replaced = 0;
    for (;;) {
        ssize_t best = -1, best_any = -1;
        uint64_t best_n = 0, best_any_n = 0;
        for (size_t i = 0; i < r->nkv; i++) {
            if (!r->kv[i].dyn)
                continue;
            const uint8_t *nm = r->sc.data + r->kv[i].noff;
            lk_name *e = guard_name(g, nm, r->kv[i].nlen);
            uint64_t d = e ? e->distinct : 0;
            uint64_t ph = fnv(fnv(fnv(FNV0, nm, r->kv[i].nlen), "\x01", 1), r->sc.data + r->kv[i].voff, r->kv[i].vlen);
            if (!u64map_at(&g->pairs, ph, 0, NULL) && (best < 0 || d > best_n)) {
                best = (ssize_t)i;
                best_n = d;
            }
            if (best_any < 0 || d > best_any_n) {
                best_any = (ssize_t)i;
                best_any_n = d;
            }
        }
        if (best < 0 && replaced) {
            u64map_at(&g->sets, h, 1, NULL); /* known values only: bounded */
            break;
        }
        if (best < 0)
            best = best_any;
        if (best < 0) {
            u64map_at(&g->sets, h, 1, NULL); /* no dynamic label to replace */
            break;
        }
        lk_kv *k = &r->kv[best];
        lk_name *e = guard_name(g, r->sc.data + k->noff, k->nlen);
        if (e && e->overflow++ == 0)
            wlog_warn("out_loki", "%s: more than %lld label sets: label '%s' replaced by \"%s\" for new streams "
                      "(weir_loki_label_overflow_total)", o->id, (long long)c->max_label_sets, e->name,
                      c->label_overflow_value);
        g->overflow_total++;
        replaced = 1;
        k->voff = (uint32_t)r->sc.len;
        k->vlen = (uint32_t)ov_len;
        k->dyn = 0;
        if (rec_add(&r->sc, c->label_overflow_value, ov_len))
            break;
        h = kv_hash(r);
        if (u64map_at(&g->sets, h, 0, NULL))
            break;
    }
    pthread_mutex_unlock(&g->mu);
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

static int build_labels(output *o, out_loki *c, lk_req *r, const entry *e)
{
    r->nkv = 0;
    r->sc.len = 0;
    for (size_t i = 0; i < c->nextra; i++)
        if (kv_add(r, c->extra_k[i], strlen(c->extra_k[i]), c->extra_v[i], strlen(c->extra_v[i]), 0))
            return -1;
    if (c->extract_kubernetes_labels) {
        size_t vl;
        const uint8_t *v = rec_lookup(e->record, e->record_len, &c->kube_labels, &vl);
        mp_obj m;
        const uint8_t *p = v, *end = v ? v + vl : NULL;
        if (v && mp_read(&p, end, &m) == MP_OK && m.type == MP_MAP) {
            for (uint32_t i = 0; i < m.len; i++) {
                const uint8_t *ks;
                uint32_t kn;
                if (rec_read_str(&p, end, &ks, &kn) != 1)
                    return -1;
                const uint8_t *vs = p;
                if (rec_skip(&p, end))
                    return -1;
                char nm[256];
                size_t nl = sanitize_name(nm, sizeof nm, ks, kn);
                if (nl && kv_add_value(r, nm, nl, vs, (size_t)(p - vs)))
                    return -1;
            }
        }
    }
    for (size_t i = 0; i < c->nlabels; i++) {
        size_t vl;
        const uint8_t *v = rec_lookup(e->record, e->record_len, &c->labels[i].path, &vl);
        if (v && kv_add_value(r, c->labels[i].name, strlen(c->labels[i].name), v, vl))
            return -1;
    }
    if (c->include_thread_label) {
        char t[32];
        int n = snprintf(t, sizeof t, "flush_thread_%d", thread_index(c));
        if (kv_add(r, "fluentd_thread", 14, t, (size_t)n, 0))
            return -1;
    }
    if (r->nkv == 0 && kv_add(r, "job", 3, "weir", 4, 0)) /* Loki needs at least one label */
        return -1;
    kv_normalize(r);
    guard_apply(o, c, r);
    return 0;
}

/* Ruby-like key=value line of a map (the Fluentd plugin's key_value format). */
static int line_key_value(wbuf *out, wbuf *tmp, const uint8_t *rec, size_t len)
{
    const uint8_t *p = rec, *end = rec + len;
    mp_obj m;
    if (mp_read(&p, end, &m) != MP_OK || m.type != MP_MAP)
        return -1;
    for (uint32_t i = 0; i < m.len; i++) {
        const uint8_t *ks = p;
        if (rec_skip(&p, end))
            return -1;
        const uint8_t *vs = p;
        if (rec_skip(&p, end))
            return -1;
        if (i && wbuf_addc(out, ' '))
            return -1;
        tmp->len = 0;
        if (rec_value_to_s(tmp, ks, (size_t)(vs - ks)) || rec_add(out, tmp->data, tmp->len) || wbuf_addc(out, '='))
            return -1;
        tmp->len = 0;
        if (rec_value_to_s(tmp, vs, (size_t)(p - vs)))
            return -1;
        int quote = tmp->len && (memchr(tmp->data, ' ', tmp->len) || memchr(tmp->data, '=', tmp->len));
        if (quote && wbuf_addc(out, '"'))
            return -1;
        for (size_t j = 0; j < tmp->len; j++) {
            uint8_t ch = tmp->data[j];
            if ((ch == '"' || ch == '\\') && wbuf_addc(out, '\\'))
                return -1;
            if (wbuf_addc(out, ch))
                return -1;
        }
        if (quote && wbuf_addc(out, '"'))
            return -1;
    }
    return 0;
}

static int build_line(out_loki *c, lk_req *r, const entry *e, lk_rec *lr)
{
    const uint8_t *rec = e->record;
    size_t len = e->record_len;
    if (c->nstrip) {
        r->sc2.len = 0;
        if (rec_delete(&r->sc2, rec, len, c->strip, c->nstrip) < 0)
            return -1;
        rec = r->sc2.data;
        len = r->sc2.len;
    }
    lr->line_off = r->lines.len;
    const uint8_t *p = rec, *end = rec + len;
    mp_obj m;
    const uint8_t *after = p;
    if (mp_read(&after, end, &m) != MP_OK || m.type != MP_MAP)
        return -1;
    int rc;
    if (c->drop_single_key && m.len == 1) {
        const uint8_t *v = after;
        if (rec_skip(&v, end))
            return -1;
        rc = rec_value_to_s(&r->lines, v, (size_t)(end - v));
    } else if (c->line_format == LK_JSON) {
        rc = jw_value(&r->lines, &p, end);
    } else {
        wbuf tmp = {0};
        rc = line_key_value(&r->lines, &tmp, rec, len);
        wbuf_free(&tmp);
    }
    if (rc)
        return -1;
    lr->line_len = (uint32_t)(r->lines.len - lr->line_off);
    return 0;
}

/* protobuf helpers */
static size_t pb_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}
static int pb_varint(wbuf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    return wbuf_add(b, t, n);
}
static int pb_bytes(wbuf *b, int field, const void *p, size_t n)
{
    return wbuf_addc(b, (uint8_t)(field << 3 | 2)) || pb_varint(b, n) || rec_add(b, p, n);
}
static size_t pb_bytes_len(size_t n) { return 1 + pb_varint_len(n) + n; }

/* Structured metadata of one record: protobuf LabelPairAdapter fields (3) or
 * a JSON object. */
static int build_meta(out_loki *c, lk_req *r, const entry *e, lk_rec *lr)
{
    lr->sm_off = r->sm.len;
    lr->sm_len = 0;
    int n = 0;
    for (size_t i = 0; i < c->nmeta; i++) {
        size_t vl;
        const uint8_t *v = rec_lookup(e->record, e->record_len, &c->meta[i].path, &vl);
        if (!v)
            continue;
        r->sc2.len = 0;
        if (rec_value_to_s(&r->sc2, v, vl))
            return -1;
        if (!r->sc2.len)
            continue;
        const char *nm = c->meta[i].name;
        size_t nl = strlen(nm);
        if (c->encoding == LK_PROTOBUF) {
            size_t inner = pb_bytes_len(nl) + pb_bytes_len(r->sc2.len);
            if (wbuf_addc(&r->sm, 3 << 3 | 2) || pb_varint(&r->sm, inner) || pb_bytes(&r->sm, 1, nm, nl) ||
                pb_bytes(&r->sm, 2, r->sc2.data, r->sc2.len))
                return -1;
        } else {
            if (wbuf_addc(&r->sm, n ? ',' : '{') || jw_string(&r->sm, (const uint8_t *)nm, nl) ||
                wbuf_addc(&r->sm, ':') || jw_string(&r->sm, r->sc2.data, r->sc2.len))
                return -1;
        }
        n++;
    }
    if (n && c->encoding == LK_JSON_BODY && wbuf_addc(&r->sm, '}'))
        return -1;
    lr->sm_len = (uint32_t)(r->sm.len - lr->sm_off);
    return 0;
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
    for (size_t i = 0; i < r->ntenants; i++) {
        const char *x = (const char *)r->text.data + r->tenants[i];
        if (strlen(x) == tl && !memcmp(x, t ? t : "", tl)) {
            *out = (uint32_t)i;
            return 0;
        }
    }
    if (GROW(r->tenants, r->ntenants, r->cap_tenants))
        return -1;
    r->tenants[r->ntenants] = r->text.len;
    if (rec_add(&r->text, t ? t : "", tl) || wbuf_addc(&r->text, 0))
        return -1;
    *out = (uint32_t)r->ntenants++;
    return 0;
}

static int stab_grow(lk_req *r)
{
    size_t ncap = r->stab_cap ? r->stab_cap * 2 : 256;
    uint32_t *t = calloc(ncap, sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < r->nstreams; i++) {
        size_t j = r->streams[i].h & (ncap - 1);
        while (t[j])
            j = (j + 1) & (ncap - 1);
        t[j] = (uint32_t)i + 1;
    }
    free(r->stab);
    r->stab = t;
    r->stab_cap = ncap;
    return 0;
}

/* The stream of (tenant, r->kv): found or added. */
static int stream_of(lk_req *r, uint32_t tenant, uint32_t *out)
{
    uint64_t h = fnv(kv_hash(r), &tenant, sizeof tenant);
    if ((r->nstreams + 1) * 2 > r->stab_cap && stab_grow(r))
        return -1;
    size_t j = h & (r->stab_cap - 1);
    size_t mark = r->text.len;
    if (labels_text(r, &r->text))
        return -1;
    size_t ll = r->text.len - mark;
    while (r->stab[j]) {
        lk_stream *s = &r->streams[r->stab[j] - 1];
        if (s->h == h && s->tenant == tenant && s->lab_len == ll &&
            !memcmp(r->text.data + s->lab_off, r->text.data + mark, ll)) {
            r->text.len = mark;
            *out = r->stab[j] - 1;
            return 0;
        }
        j = (j + 1) & (r->stab_cap - 1);
    }
    if (GROW(r->streams, r->nstreams, r->cap_streams))
        return -1;
    lk_stream *s = &r->streams[r->nstreams];
    memset(s, 0, sizeof *s);
    s->tenant = tenant;
    s->h = h;
    s->lab_off = mark;
    s->lab_len = (uint32_t)ll;
    s->json_off = r->text.len;
    if (labels_json(r, &r->text))
        return -1;
    s->json_len = (uint32_t)(r->text.len - s->json_off);
    r->stab[j] = (uint32_t)r->nstreams + 1;
    *out = (uint32_t)r->nstreams++;
    return 0;
}

static int rec_cmp(const void *a, const void *b, void *arg)
{
    const lk_stream *st = arg;
    const lk_rec *x = a, *y = b;
    if (st[x->stream].tenant != st[y->stream].tenant)
        return st[x->stream].tenant < st[y->stream].tenant ? -1 : 1;
    if (x->stream != y->stream)
        return x->stream < y->stream ? -1 : 1;
    if (x->sec != y->sec)
        return x->sec < y->sec ? -1 : 1;
    if (x->nsec != y->nsec)
        return x->nsec < y->nsec ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* --------------------------------------------------------------- bodies -- */

static size_t ts_len(const lk_rec *x)
{
    return 1 + pb_varint_len(x->sec) + (x->nsec ? 1 + pb_varint_len(x->nsec) : 0);
}

/* Protobuf PushRequest of recs[from, to) (one tenant, sorted), snappy'd into out. */
static int body_protobuf(lk_req *r, size_t from, size_t to, wbuf *raw, wbuf *out)
{
    uint64_t total = 0;
    for (size_t i = from; i < to;) {
        lk_stream *s = &r->streams[r->recs[i].stream];
        uint64_t ssz = pb_bytes_len(s->lab_len);
        size_t j = i;
        for (; j < to && r->recs[j].stream == r->recs[i].stream; j++) {
            lk_rec *x = &r->recs[j];
            size_t tl = ts_len(x);
            x->esize = (uint32_t)(pb_bytes_len(tl) + pb_bytes_len(x->line_len) + x->sm_len);
            ssz += pb_bytes_len(x->esize);
        }
        s->size = ssz;
        total += pb_bytes_len(ssz);
        i = j;
    }
    raw->len = 0;
    if (wbuf_grow(raw, total))
        return -1;
    for (size_t i = from; i < to;) {
        lk_stream *s = &r->streams[r->recs[i].stream];
        if (wbuf_addc(raw, 1 << 3 | 2) || pb_varint(raw, s->size) ||
            pb_bytes(raw, 1, r->text.data + s->lab_off, s->lab_len))
            return -1;
        size_t j = i;
        for (; j < to && r->recs[j].stream == r->recs[i].stream; j++) {
            lk_rec *x = &r->recs[j];
            if (wbuf_addc(raw, 2 << 3 | 2) || pb_varint(raw, x->esize))
                return -1;
            if (wbuf_addc(raw, 1 << 3 | 2) || pb_varint(raw, ts_len(x)) || wbuf_addc(raw, 1 << 3) ||
                pb_varint(raw, x->sec))
                return -1;
            if (x->nsec && (wbuf_addc(raw, 2 << 3) || pb_varint(raw, x->nsec)))
                return -1;
            if (pb_bytes(raw, 2, r->lines.data + x->line_off, x->line_len) ||
                rec_add(raw, r->sm.data + x->sm_off, x->sm_len))
                return -1;
        }
        i = j;
    }
    size_t cap = snappy_max_compressed_length(raw->len);
    out->len = 0;
    if (wbuf_grow(out, cap))
        return -1;
    size_t olen = cap;
    if (snappy_compress((const char *)raw->data, raw->len, (char *)out->data, &olen) != SNAPPY_OK)
        return -1;
    out->len = olen;
    return 0;
}

/* gzip (one member) of raw into out. */
static int gzip_into(const wbuf *raw, wbuf *out, int level)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    out->len = 0;
    if (wbuf_grow(out, deflateBound(&z, raw->len))) {
        deflateEnd(&z);
        return -1;
    }
    z.next_in = raw->data;
    z.avail_in = (uInt)raw->len;
    z.next_out = out->data;
    z.avail_out = (uInt)out->cap;
    int rc = deflate(&z, Z_FINISH);
    out->len = out->cap - z.avail_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

static int body_json(lk_req *r, size_t from, size_t to, wbuf *out)
{
    out->len = 0;
    if (wbuf_add(out, "{\"streams\":[", 12))
        return -1;
    for (size_t i = from; i < to;) {
        lk_stream *s = &r->streams[r->recs[i].stream];
        if ((i > from && wbuf_addc(out, ',')) || wbuf_add(out, "{\"stream\":", 10) ||
            wbuf_add(out, r->text.data + s->json_off, s->json_len) || wbuf_add(out, ",\"values\":[", 11))
            return -1;
        size_t j = i;
        for (; j < to && r->recs[j].stream == r->recs[i].stream; j++) {
            lk_rec *x = &r->recs[j];
            char ts[40];
            int n = snprintf(ts, sizeof ts, "%s[\"%u%09u\",", j > i ? "," : "", x->sec, x->nsec);
            if (wbuf_add(out, ts, (size_t)n) ||
                jw_string(out, r->lines.data + x->line_off, x->line_len))
                return -1;
            if (x->sm_len && (wbuf_addc(out, ',') || wbuf_add(out, r->sm.data + x->sm_off, x->sm_len)))
                return -1;
            if (wbuf_addc(out, ']'))
                return -1;
        }
        if (wbuf_add(out, "]}", 2))
            return -1;
        i = j;
    }
    return wbuf_add(out, "]}", 2);
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

/* A short, single-line excerpt of Loki's response for reasons and logs. */
static void excerpt(char *out, size_t cap, const http_req *q)
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
static int seg_has_stream(lk_req *r, lk_stream *s, const char *seg, size_t seglen)
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
static int stream_reason(lk_req *r, lk_stream *s, const http_req *q, char *out, size_t cap)
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

/* A 4xx other than 429 for recs[from, to) (one tenant): never retried. Mark
 * OUT_ERROR the records of the streams the message names (Loki ingested the
 * others) or, when it names none, every record of the request. */
static void reject_request(output *o, lk_req *r, const http_req *q, size_t from, size_t to, const char *why,
                           const char *tenant, out_result *res)
{
    out_loki *c = o->ctx;
    size_t named = 0, nrej = 0;
    char sr[700];
    for (size_t i = from; i < to;) {
        lk_stream *s = &r->streams[r->recs[i].stream];
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
    atomic_fetch_add(&c->rejected_records, nrej);
    wlog_warn("out_loki", "%s: Loki rejected %zu of %zu records (tenant '%s'); not retried, sent to @ERROR/dead "
              "letter: %s", o->id, nrej, to - from, tenant, why);
}

static int loki_write(output *o, const batch *b, out_result *res)
{
    out_loki *c = o->ctx;
    lk_req r = {0};
    wbuf *bodies = NULL, raw = {0};
    http_req *reqs = NULL;
    char **hdrs = NULL; /* per request: content type, encoding, tenant, authorization, NULL */
    size_t *tfrom = NULL;
    int rc = OUT_OK;
    char *token = c->bearer_token_file ? read_token(c) : NULL;

    /* 1. every record -> tenant, stream, line, metadata */
    batch_iter it;
    entry e;
    uint32_t idx = 0, nbad = 0;
    batch_iter_init(&it, b);
    int more;
    while ((more = batch_iter_next(&it, &e)) == 1) {
        if (GROW(r.recs, r.nrecs, r.cap_recs))
            goto oom;
        lk_rec *lr = &r.recs[r.nrecs];
        memset(lr, 0, sizeof *lr);
        lr->idx = idx++;
        lr->sec = e.sec;
        lr->nsec = e.nsec;
        uint32_t tenant;
        if (tenant_of(c, &r, &e, &tenant) || build_labels(o, c, &r, &e) || stream_of(&r, tenant, &lr->stream))
            goto oom;
        size_t sm_mark = r.sm.len, line_mark = r.lines.len;
        if (build_line(c, &r, &e, lr) || build_meta(c, &r, &e, lr)) {
            /* a record weir cannot turn into a line: only that record fails */
            out_result_mark(res, lr->idx, OUT_ERROR, "loki: record is not a map that can be formatted");
            wlog_error("out_loki", "%s: cannot format a record of tag %s; sent to @ERROR/dead letter", o->id, e.tag);
            r.lines.len = line_mark;
            r.sm.len = sm_mark;
            nbad++;
            continue;
        }
        r.nrecs++;
    }
    if (more < 0) {
        wlog_error("out_loki", "%s: malformed batch of tag %s", o->id, b->tag);
        snprintf(res->reason, sizeof res->reason, "malformed batch");
        rc = OUT_ERROR;
        goto out;
    }
    if (!r.nrecs)
        goto out;

    /* 2. group: tenant, stream, time */
    qsort_r(r.recs, r.nrecs, sizeof *r.recs, rec_cmp, r.streams);
    size_t nt = r.ntenants;
    bodies = calloc(nt, sizeof *bodies);
    reqs = calloc(nt, sizeof *reqs);
    hdrs = calloc(nt * 5, sizeof *hdrs);
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
        int brc = c->encoding == LK_PROTOBUF ? body_protobuf(&r, tfrom[t], tfrom[t + 1], &raw, &bodies[nreq])
                  : body_json(&r, tfrom[t], tfrom[t + 1], &raw) ||
                      gzip_into(&raw, &bodies[nreq], (int)c->gzip_level);
        atomic_fetch_add(&c->raw_bytes, raw.len);
        atomic_fetch_add(&c->body_bytes, bodies[nreq].len);
        atomic_fetch_add(&c->pushed_records, tfrom[t + 1] - tfrom[t]);
        if (brc) {
            free(req_tenant);
            goto oom;
        }
        char **h = &hdrs[nreq * 5];
        int k = 0;
        h[k++] = strdup(c->encoding == LK_PROTOBUF ? ct_pb : ct_json);
        if (c->encoding == LK_JSON_BODY)
            h[k++] = strdup("Content-Encoding: gzip");
        const char *tn = (const char *)r.text.data + r.tenants[t];
        if (*tn && asprintf(&h[k++], "X-Scope-OrgID: %s", tn) < 0)
            h[--k] = NULL;
        if (token && asprintf(&h[k++], "Authorization: Bearer %s", token) < 0)
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
        if (q->status >= 200 && q->status < 300)
            continue;
        atomic_fetch_add(&c->req_failed, 1);
        excerpt(why, sizeof why, q);
        /* 401/403/407 (credentials), 404 (url or gateway route), 408 and 429:
         * the request was refused as a whole, not its records */
        int retry = q->transport_error || q->status == 0 || q->status == 429 || q->status >= 500 ||
                    q->status == 401 || q->status == 403 || q->status == 404 || q->status == 407 ||
                    q->status == 408;
        if (retry) {
            nretry_req++;
            snprintf(res->reason, sizeof res->reason, "%.*s", (int)sizeof res->reason - 1, why);
            for (size_t i = tfrom[t]; i < tfrom[t + 1]; i++)
                out_result_mark(res, r.recs[i].idx, OUT_RETRY, NULL);
            wlog_warn("out_loki", "%s: push of %zu records (tenant '%s') failed, will retry: %s", o->id,
                      tfrom[t + 1] - tfrom[t], tn, why);
            continue;
        }
        reject_request(o, &r, q, tfrom[t], tfrom[t + 1], why, tn, res);
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
        for (int j = 0; j < 5; j++)
            free(hdrs[k * 5 + j]);
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

static void metric_family(struct evbuffer *ev, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(ev, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t ld64(atomic_uint_fast64_t *a) { return atomic_load_explicit(a, memory_order_relaxed); }

/* Every family once, with the samples of all loki outputs. */
static void loki_metrics(output *const *outs, size_t n, struct evbuffer *ev)
{
    metric_family(ev, "weir_loki_label_sets", "gauge", "distinct label sets an output has sent");
    for (size_t i = 0; i < n; i++) {
        out_loki *c = outs[i]->ctx;
        pthread_mutex_lock(&c->guard.mu);
        size_t sets = c->guard.sets.n;
        pthread_mutex_unlock(&c->guard.mu);
        evbuffer_add_printf(ev, "weir_loki_label_sets{output=\"%s\"} %zu\n", outs[i]->id, sets);
    }
    metric_family(ev, "weir_loki_label_overflow_total", "counter",
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
        metric_family(ev, ctr[k].name, "counter", ctr[k].help);
        for (size_t i = 0; i < n; i++)
            evbuffer_add_printf(ev, "%s{output=\"%s\"} %llu\n", ctr[k].name, outs[i]->id,
                                (unsigned long long)ld64((atomic_uint_fast64_t *)((char *)outs[i]->ctx + ctr[k].off)));
    }
    metric_family(ev, "weir_loki_body_bytes_total", "counter",
                  "push request bytes: on the wire (stage=wire) and before compression (stage=raw)");
    for (size_t i = 0; i < n; i++) {
        out_loki *c = outs[i]->ctx;
        evbuffer_add_printf(ev, "weir_loki_body_bytes_total{output=\"%s\",stage=\"wire\"} %llu\n", outs[i]->id,
                            (unsigned long long)ld64(&c->body_bytes));
        evbuffer_add_printf(ev, "weir_loki_body_bytes_total{output=\"%s\",stage=\"raw\"} %llu\n", outs[i]->id,
                            (unsigned long long)ld64(&c->raw_bytes));
    }
}

static void loki_exit(output *o)
{
    out_loki *c = o->ctx;
    if (c->http)
        http_client_free(c->http);
    for (size_t i = 0; i < c->nlabels; i++) {
        free(c->labels[i].name);
        rec_path_free(&c->labels[i].path);
    }
    for (size_t i = 0; i < c->nmeta; i++) {
        free(c->meta[i].name);
        rec_path_free(&c->meta[i].path);
    }
    free(c->labels);
    free(c->meta);
    for (size_t i = 0; i < c->nextra; i++) {
        free(c->extra_k[i]);
        free(c->extra_v[i]);
    }
    free(c->extra_k);
    free(c->extra_v);
    for (size_t i = 0; i < c->nstrip; i++)
        rec_path_free(&c->strip[i]);
    free(c->strip);
    if (c->tenant_dynamic)
        rec_path_free(&c->tenant_path);
    if (c->extract_kubernetes_labels)
        rec_path_free(&c->kube_labels);
    free(c->push_url);
    free(c->token);
    u64map_free(&c->guard.sets);
    u64map_free(&c->guard.pairs);
    u64map_free(&c->guard.names);
    for (size_t i = 0; i < c->guard.nnm; i++)
        free(c->guard.nm[i].name);
    free(c->guard.nm);
    pthread_mutex_destroy(&c->guard.mu);
    pthread_mutex_destroy(&c->tok_mu);
}

const out_plugin out_loki_plugin = {
    .name = "loki",
    .spec = loki_spec,
    .ctx_size = sizeof(out_loki),
    .init = loki_init,
    .write = loki_write,
    .metrics = loki_metrics,
    .exit = loki_exit,
};
