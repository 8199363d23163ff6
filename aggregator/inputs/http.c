/*
 * aggregator/inputs/http.c: `<source @type http>`, Fluentd's in_http, on
 * libevent's evhttp.
 *
 * One thread per source runs its evhttp loop. A POST (any method but GET
 * and OPTIONS) to /<tag path> becomes records (http_body.c), routed like
 * in_forward's and waited for: the answer is 200 only once every matching
 * output has them (with a <buffer>: in its chunk), as Fluentd answers after
 * router.emit returned; an output that refuses them makes it a 500, as
 * Fluentd's emit error does. GET answers 200 with an empty body (in_http's
 * health check, whatever the path); OPTIONS is the CORS preflight.
 *
 * Ownership: the source owns its evhttp, event base, thread, router_ctx and
 * parser; created and freed on the main thread, requests on its thread.
 */
#include "aggregator/inputs/http.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <zlib.h>

#include "lib/compress.h"
#include "lib/log.h"
#include "lib/prom.h"
#include "aggregator/source.h"

typedef struct http_conf {
    int64_t port;
    char *bind;
    uint64_t body_size_limit;
    double keepalive_timeout;
    int64_t backlog;
    int add_http_headers, add_remote_addr, add_query_params;
    double blocking_timeout;
    char **cors_allow_origins;
    int cors_allow_credentials;
    int respond_with_empty_img, use_204_response, dump_error_log;
    char *format; /* v0.12: `format json` and the like, as <parse> */
} http_conf;

static const conf_spec http_spec[] = {
    {"port", CONF_INT, "9880", 0, offsetof(http_conf, port), NULL, "TCP port to listen on"},
    {"bind", CONF_STR, "0.0.0.0", 0, offsetof(http_conf, bind), NULL, "address to listen on"},
    {"body_size_limit", CONF_SIZE, "32m", 0, offsetof(http_conf, body_size_limit), NULL,
     "the largest request body; larger: `413 Request Entity Too Large`"},
    {"keepalive_timeout", CONF_TIME, "10s", 0, offsetof(http_conf, keepalive_timeout), NULL,
     "an idle keep-alive connection is closed after this long"},
    {"backlog", CONF_INT, "-1", 0, offsetof(http_conf, backlog), NULL, "accepted for compatibility; weir listens with libevent's backlog"},
    {"add_http_headers", CONF_BOOL, "false", 0, offsetof(http_conf, add_http_headers), NULL,
     "add every request header to each record as `HTTP_NAME` (upper case, `-` as `_`)"},
    {"add_remote_addr", CONF_BOOL, "false", 0, offsetof(http_conf, add_remote_addr), NULL,
     "add `REMOTE_ADDR`: the client's address, or the first address of `X-Forwarded-For`"},
    {"add_query_params", CONF_BOOL, "false", 0, offsetof(http_conf, add_query_params), NULL,
     "add every query parameter to each record as `QUERY_NAME`"},
    {"blocking_timeout", CONF_TIME, "0.5s", 0, offsetof(http_conf, blocking_timeout), NULL,
     "accepted for compatibility (Fluentd's event loop tick); no effect"},
    {"cors_allow_origins", CONF_ARRAY, NULL, 0, offsetof(http_conf, cors_allow_origins), NULL,
     "origins allowed to POST from a browser (`*`: any; `https://*.example.com` patterns); others get `403`; "
     "`OPTIONS` preflights are answered"},
    {"cors_allow_credentials", CONF_BOOL, "false", 0, offsetof(http_conf, cors_allow_credentials), NULL,
     "answer `Access-Control-Allow-Credentials: true` (needs `cors_allow_origins` without `*`)"},
    {"respond_with_empty_img", CONF_BOOL, "false", 0, offsetof(http_conf, respond_with_empty_img), NULL,
     "answer a successful POST with a 1x1 GIF"},
    {"use_204_response", CONF_BOOL, "false", 0, offsetof(http_conf, use_204_response), NULL,
     "answer a successful POST with `204 No Content`"},
    {"dump_error_log", CONF_BOOL, "true", 0, offsetof(http_conf, dump_error_log), NULL,
     "log refused requests (400, 500) at error level"},
    {"format", CONF_STR, NULL, 0, offsetof(http_conf, format), NULL,
     "v0.12 form of `<parse> @type FORMAT`"},
    {"parse", CONF_SECTION, NULL, 0, 0, NULL,
     "a `<parse>` of weir's types: the whole body is one record of that format (`@type in_http`, the default: "
     "`json`/`msgpack`/`ndjson` parameters and bodies)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

typedef struct http_in {
    source base;
    http_conf c;
    parser ps;
    int has_parser, parse_tried;
    conf_node *parse_root;
    const char *format; /* the custom parser's type */
    http_opts opts;
    struct event_base *evbase;
    struct evhttp *http;
    pthread_t thread;
    int started;
    int stopping;
    router_ctx *route;
    wbuf entries;
    atomic_uint_fast64_t requests, records, status_400, status_500, status_403;
} http_in;

static void http_free(source *s);

static conf_node *find_child(conf_node *n, const char *name)
{
    for (size_t i = 0; i < n->nchildren; i++)
        if (!strcmp(n->children[i]->name, name))
            return n->children[i];
    return NULL;
}

static source *http_create(conf_node *n, int index, conf_errors *errs)
{
    http_in *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    extern const source_plugin in_http_plugin;
    source_init(&h->base, &in_http_plugin, n, index);
    if (conf_bind(n, http_spec, &h->c, errs)) {
        http_free(&h->base);
        return NULL;
    }
    int bad = 0;
    if (h->c.port < 0 || h->c.port > 65535) {
        conf_error_at(errs, n, "port", "port must be between 0 and 65535");
        bad = -1;
    }
    if (h->c.cors_allow_credentials) {
        int star = !h->c.cors_allow_origins;
        for (size_t i = 0; h->c.cors_allow_origins && h->c.cors_allow_origins[i]; i++)
            star |= !strcmp(h->c.cors_allow_origins[i], "*");
        if (star) {
            conf_error_at(errs, n, "cors_allow_credentials",
                          "Cannot enable cors_allow_credentials without specific origins");
            bad = -1;
        }
    }
    conf_node *pn = find_child(n, "parse");
    const char *ptype = pn ? conf_get_value(pn, "@type") : h->c.format;
    if (pn && ptype && !strcmp(ptype, "in_http")) {
        /* the default parser, named: only its time parameters mean anything in weir's default */
        conf_get(pn, "@type");
    } else if (ptype && strcmp(ptype, "in_http")) {
        if (!pn) {
            char text[256];
            snprintf(text, sizeof text, "<parse>\n  @type %s\n</parse>\n", ptype);
            h->parse_root = conf_parse_string(text, "<http format>", errs);
            if (h->parse_root && h->parse_root->nchildren)
                pn = h->parse_root->children[0];
        }
        h->parse_tried = 1;
        if (!pn || parse_configure(&h->ps, pn, errs))
            bad = -1;
        else
            h->has_parser = 1;
        h->format = ptype;
    }
    if (bad) {
        http_free(&h->base);
        return NULL;
    }
    h->opts = (http_opts){h->c.add_http_headers, h->c.add_remote_addr, h->c.add_query_params,
                          h->has_parser ? &h->ps : NULL, h->format};
    return &h->base;
}

/* ---- requests (the source's thread) ------------------------------------------------------------- */

static const unsigned char empty_gif[] = {0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0xff,
                                          0x00, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
                                          0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};

static int origin_allowed(const http_in *h, const char *origin)
{
    if (!origin)
        return 0;
    for (size_t i = 0; h->c.cors_allow_origins[i]; i++)
        if (!strcmp(h->c.cors_allow_origins[i], origin))
            return 1;
    for (size_t i = 0; h->c.cors_allow_origins[i]; i++) {
        const char *o = h->c.cors_allow_origins[i], *star = strchr(o, '*');
        if (!o[0])
            continue;
        size_t pl = star ? (size_t)(star - o) : strlen(o), ol = strlen(origin);
        const char *suf = star ? star + 1 : "";
        size_t sl = strlen(suf);
        if (!strncmp(origin, o, pl) && ol >= sl && !strcmp(origin + ol - sl, suf))
            return 1;
    }
    return 0;
}

static int cors_star(const http_in *h)
{
    for (size_t i = 0; h->c.cors_allow_origins && h->c.cors_allow_origins[i]; i++)
        if (!strcmp(h->c.cors_allow_origins[i], "*"))
            return 1;
    return 0;
}

static void send_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    if (!evhttp_find_header(oh, "Content-Type"))
        evhttp_add_header(oh, "Content-Type", "text/plain");
    struct evbuffer *b = evbuffer_new();
    if (b && text)
        evbuffer_add(b, text, strlen(text));
    evhttp_send_reply(req, code, reason, b);
    if (b)
        evbuffer_free(b);
}

static void cors_headers(const http_in *h, struct evhttp_request *req, const char *origin)
{
    if (!h->c.cors_allow_origins)
        return;
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    if (cors_star(h)) {
        evhttp_add_header(oh, "Access-Control-Allow-Origin", "*");
    } else if (origin_allowed(h, origin)) {
        evhttp_add_header(oh, "Access-Control-Allow-Origin", origin);
        if (h->c.cors_allow_credentials)
            evhttp_add_header(oh, "Access-Control-Allow-Credentials", "true");
    }
}

static void preflight(http_in *h, struct evhttp_request *req)
{
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req), *oh = evhttp_request_get_output_headers(req);
    const char *method = evhttp_find_header(ih, "Access-Control-Request-Method");
    const char *origin = evhttp_find_header(ih, "Origin");
    const char *rh = evhttp_find_header(ih, "Access-Control-Request-Headers");
    evhttp_add_header(oh, "Connection", "close");
    if (!h->c.cors_allow_origins || !method || strcmp(method, "POST") ||
        (!cors_star(h) && !origin_allowed(h, origin))) {
        atomic_fetch_add(&h->status_403, 1);
        send_text(req, 403, "Forbidden", "");
        return;
    }
    evhttp_add_header(oh, "Access-Control-Allow-Methods", "POST");
    evhttp_add_header(oh, "Access-Control-Allow-Headers", rh ? rh : "");
    cors_headers(h, req, origin);
    send_text(req, 200, "OK", "");
}

/* the body as sent, inflated for Content-Encoding gzip / deflate; NULL on a bad encoding */
static uint8_t *request_body(http_in *h, struct evhttp_request *req, size_t *len, wbuf *inflated, int *bad)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    uint8_t *p = n ? evbuffer_pullup(in, (ev_ssize_t)n) : (uint8_t *)"";
    const char *enc = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Encoding");
    *bad = 0;
    *len = n;
    if (!enc || (strcmp(enc, "gzip") && strcmp(enc, "deflate")))
        return p;
    inflated->max = h->c.body_size_limit * 16 + (1u << 20); /* a bomb guard */
    char err[128];
    if (!strcmp(enc, "gzip")) {
        if (gz_decompress(p, n, inflated, err, sizeof err) != 0) {
            *bad = 1;
            return NULL;
        }
    } else {
        z_stream z = {0};
        if (inflateInit(&z) != Z_OK) {
            *bad = 1;
            return NULL;
        }
        z.next_in = p;
        z.avail_in = (uInt)n;
        int zr = Z_OK;
        while (zr == Z_OK) {
            if (wbuf_grow(inflated, 64 * 1024)) {
                zr = Z_MEM_ERROR;
                break;
            }
            z.next_out = inflated->data + inflated->len;
            z.avail_out = (uInt)(inflated->cap - inflated->len);
            zr = inflate(&z, Z_NO_FLUSH);
            inflated->len = inflated->cap - z.avail_out;
            if (zr == Z_BUF_ERROR && z.avail_in)
                zr = Z_OK;
        }
        inflateEnd(&z);
        if (zr != Z_STREAM_END) {
            *bad = 1;
            return NULL;
        }
    }
    *len = inflated->len;
    return inflated->data ? inflated->data : (uint8_t *)"";
}

static void handle(struct evhttp_request *req, void *arg)
{
    http_in *h = arg;
    atomic_fetch_add(&h->requests, 1);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    struct evkeyvalq *ih = evhttp_request_get_input_headers(req);
    if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) { /* in_http: any GET is 200 (health checks) */
        send_text(req, 200, "OK", "");
        return;
    }
    if (cmd == EVHTTP_REQ_OPTIONS) {
        preflight(h, req);
        return;
    }
    const char *origin = evhttp_find_header(ih, "Origin");
    if (h->c.cors_allow_origins && !cors_star(h) && !origin_allowed(h, origin)) {
        atomic_fetch_add(&h->status_403, 1);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        send_text(req, 403, "Forbidden", "");
        return;
    }
    wbuf inflated = {0};
    size_t blen;
    int bad;
    const uint8_t *body = request_body(h, req, &blen, &inflated, &bad);
    if (bad) {
        wlog_warn("in_http", "%s: fails to decode payload", h->base.id);
        atomic_fetch_add(&h->status_400, 1);
        send_text(req, 400, "Bad Request", "");
        wbuf_free(&inflated);
        return;
    }
    /* the environment: headers as HTTP_*, then REMOTE_ADDR */
    http_params env = {0}, params = {0};
    const char *remote = NULL;
    for (struct evkeyval *kv = ih->tqh_first; kv; kv = kv->next.tqe_next) {
        char k[256];
        int kl = snprintf(k, sizeof k, "HTTP_%s", kv->key);
        if (kl >= (int)sizeof k)
            continue;
        for (int i = 5; i < kl; i++)
            k[i] = k[i] == '-' ? '_' : (char)((k[i] >= 'a' && k[i] <= 'z') ? k[i] - 32 : k[i]);
        http_params_set(&env, k, (size_t)kl, kv->value, strlen(kv->value));
        if (!strcasecmp(kv->key, "X-Forwarded-For"))
            remote = kv->value;
    }
    char host[128] = "";
    if (remote) {
        size_t l = strcspn(remote, ",");
        snprintf(host, sizeof host, "%.*s", (int)l, remote);
    } else {
        char *peer = NULL;
        ev_uint16_t pport = 0;
        struct evhttp_connection *ec = evhttp_request_get_connection(req);
        if (ec)
            evhttp_connection_get_peer(ec, &peer, &pport);
        if (peer)
            snprintf(host, sizeof host, "%s", peer);
    }
    if (host[0])
        http_params_set(&env, "REMOTE_ADDR", 11, host, strlen(host));

    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    const char *query = u ? evhttp_uri_get_query(u) : NULL;
    char tag[1024];
    size_t tl = http_path_tag(path ? path : "", path ? strlen(path) : 0, tag, sizeof tag);
    int rc = http_params_collect(&params, query, evhttp_find_header(ih, "Content-Type"), body, blen,
                                 h->has_parser, h->c.add_query_params, &env);
    char err[512] = "";
    uint32_t nrec = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int status = rc ? 500 : http_request_events(&h->opts, &params, body, blen, (uint32_t)now.tv_sec,
                                                (uint32_t)now.tv_nsec, &h->entries, &nrec, err, sizeof err);
    if (rc)
        snprintf(err, sizeof err, "out of memory");
    if (status == 200 && nrec) {
        if (source_emit_wait(h->route, h->base.rt, h->base.label, tag, tl, &h->entries, nrec, 30.0, &h->stopping,
                             err, sizeof err) == 0) {
            atomic_fetch_add(&h->records, nrec);
        } else {
            status = 500;
            if (h->c.dump_error_log)
                wlog_error("in_http", "%s: failed to emit data: %s", h->base.id, err);
        }
    }
    h->entries.len = 0;
    cors_headers(h, req, origin);
    char text[600];
    if (status == 400) {
        atomic_fetch_add(&h->status_400, 1);
        if (h->c.dump_error_log)
            wlog_error("in_http", "%s: failed to process request: %s", h->base.id, err);
        snprintf(text, sizeof text, "400 Bad Request\n%s\n", err);
        send_text(req, 400, "Bad Request", text);
    } else if (status == 500) {
        atomic_fetch_add(&h->status_500, 1);
        snprintf(text, sizeof text, "500 Internal Server Error\n%s\n", err);
        send_text(req, 500, "Internal Server Error", text);
    } else if (h->c.respond_with_empty_img) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "image/gif; charset=utf-8");
        struct evbuffer *b = evbuffer_new();
        evbuffer_add(b, empty_gif, sizeof empty_gif);
        evhttp_send_reply(req, 200, "OK", b);
        evbuffer_free(b);
    } else if (h->c.use_204_response) {
        evhttp_send_reply(req, 204, "No Content", NULL);
    } else {
        send_text(req, 200, "OK", "");
    }
    http_params_free(&env);
    http_params_free(&params);
    wbuf_free(&inflated);
}

static void *http_main(void *arg)
{
    http_in *h = arg;
    pthread_setname_np(pthread_self(), "in_http");
    event_base_loop(h->evbase, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int http_start(source *s, const source_env *env)
{
    http_in *h = (http_in *)s;
    if (!(h->route = router_ctx_new(s->rt)))
        return -1;
    h->evbase = event_base_new(); /* after evthread_use_pthreads(): loopbreak works from main */
    h->http = h->evbase ? evhttp_new(h->evbase) : NULL;
    if (!h->http) {
        wlog_error("in_http", "%s: out of memory", s->id);
        return -1;
    }
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(h->http, h->c.bind, (uint16_t)h->c.port);
    if (!bs) {
        wlog_error("in_http", "%s: cannot listen on %s:%lld: %s", s->id, h->c.bind, (long long)h->c.port,
                   strerror(errno));
        return -1;
    }
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS);
    evhttp_set_max_body_size(h->http, (ev_ssize_t)h->c.body_size_limit);
    evhttp_set_timeout(h->http, h->c.keepalive_timeout < 1 ? 1 : (int)h->c.keepalive_timeout);
    evhttp_set_gencb(h->http, handle, h);
    if (pthread_create(&h->thread, NULL, http_main, h) != 0) {
        wlog_error("in_http", "%s: cannot start its thread", s->id);
        return -1;
    }
    h->started = 1;
    wlog_info("in_http", "%s: listening for HTTP on %s:%lld", s->id, h->c.bind, (long long)h->c.port);
    return 0;
}

static void http_stop(source *s)
{
    http_in *h = (http_in *)s;
    if (!h->started)
        return;
    __atomic_store_n(&h->stopping, 1, __ATOMIC_RELAXED);
    event_base_loopbreak(h->evbase);
    pthread_join(h->thread, NULL);
    h->started = 0;
    /* the listener goes now: a reload's successor binds the same port next */
    evhttp_free(h->http);
    h->http = NULL;
    wlog_info("in_http", "%s: stopped: %" PRIuFAST64 " records from %" PRIuFAST64 " requests", s->id,
              prom_ld(&h->records), prom_ld(&h->requests));
}

static void http_free(source *s)
{
    http_in *h = (http_in *)s;
    if (!h)
        return;
    http_stop(s);
    if (h->http)
        evhttp_free(h->http);
    if (h->evbase)
        event_base_free(h->evbase);
    if (h->route)
        router_ctx_free(h->route);
    if (h->parse_tried)
        parse_free(&h->ps);
    conf_free(h->parse_root);
    conf_unbind(http_spec, &h->c);
    wbuf_free(&h->entries);
    source_fini(&h->base);
    free(h);
}

static void http_metrics(source *const *srcs, size_t n, const source_env *env, struct evbuffer *o)
{
    if (!n)
        return;
    char lb[256];
    prom_head(o, "weir_http_records_total", "counter", "Records the http input accepted");
    for (size_t i = 0; i < n; i++)
        evbuffer_add_printf(o, "weir_http_records_total{source=\"%s\"} %" PRIu64 "\n",
                            prom_label(srcs[i]->id, lb, sizeof lb), prom_ld(&((http_in *)srcs[i])->records));
    prom_head(o, "weir_http_requests_total", "counter", "Requests the http input answered, by status (other: 200)");
    for (size_t i = 0; i < n; i++) {
        http_in *h = (http_in *)srcs[i];
        prom_label(srcs[i]->id, lb, sizeof lb);
        evbuffer_add_printf(o, "weir_http_requests_total{source=\"%s\",code=\"all\"} %" PRIu64 "\n", lb,
                            prom_ld(&h->requests));
        evbuffer_add_printf(o, "weir_http_requests_total{source=\"%s\",code=\"400\"} %" PRIu64 "\n", lb,
                            prom_ld(&h->status_400));
        evbuffer_add_printf(o, "weir_http_requests_total{source=\"%s\",code=\"403\"} %" PRIu64 "\n", lb,
                            prom_ld(&h->status_403));
        evbuffer_add_printf(o, "weir_http_requests_total{source=\"%s\",code=\"500\"} %" PRIu64 "\n", lb,
                            prom_ld(&h->status_500));
    }
}

const source_plugin in_http_plugin = {
    .name = "http",
    .spec = http_spec,
    .create = http_create,
    .start = http_start,
    .stop = http_stop,
    .free = http_free,
    .metrics = http_metrics,
};
