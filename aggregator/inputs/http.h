/*
 * aggregator/inputs/http.h: the request-to-records half of the http input
 * (Fluentd's in_http), without sockets, so that unit tests reach it; the
 * server is aggregator/inputs/http.c.
 *
 * As in_http: a request's parameters are its query string, then (by
 * Content-Type) the form fields of an application/x-www-form-urlencoded body
 * or the body itself as `json` (application/json), `msgpack`
 * (application/msgpack) or `ndjson` (application/x-ndjson), then `QUERY_*`
 * copies of the query (add_query_params), then the environment: every
 * header as HTTP_NAME and REMOTE_ADDR. A later value of a name replaces an
 * earlier one in its place (Ruby's Hash#update).
 */
#ifndef WEIR_INPUTS_HTTP_H
#define WEIR_INPUTS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "lib/wbuf.h"
#include "aggregator/parse.h"

typedef struct http_param {
    char *k, *v;
    size_t vlen;
} http_param;

typedef struct http_params {
    http_param *v;
    size_t n;
} http_params;

/* Set k to v[0..vlen): replaces the value of an existing k in its place. 0 or -1. */
int http_params_set(http_params *p, const char *k, size_t klen, const char *v, size_t vlen);
const http_param *http_params_get(const http_params *p, const char *k);
void http_params_free(http_params *p);
/* WEBrick's parse_query: pairs split at '&' and ';', "+" and %XX decoded;
 * a name without '=' has the value "". 0 or -1 (out of memory). */
int http_params_query(http_params *p, const char *s, size_t n);

/* The parameters of one request: query, body by content type (custom: the
 * body is the <parse> parser's, not a parameter), QUERY_* copies, then env. */
int http_params_collect(http_params *p, const char *query, const char *ctype, const uint8_t *body, size_t blen,
                        int custom, int add_query_params, const http_params *env);

typedef struct http_opts {
    int add_http_headers, add_remote_addr, add_query_params;
    const parser *custom; /* <parse> with a type of weir's, or NULL: the default (json/msgpack/ndjson) */
    const char *format;   /* the custom parser's type name, for messages */
} http_opts;

/*
 * The records of one request, as entries of weir's batch format appended to
 * `entries` (*nrec of them). Returns the HTTP status in_http answers:
 *   200  records made (maybe none: in_http answers 200 for a json or
 *        msgpack parameter it cannot parse, and for an empty array)
 *   400  the request is refused (err says why: no json/ndjson/msgpack
 *        parameter, a record that is not a map, a bad time, an unparsable
 *        body for a custom <parse>); entries are left as they were
 * now_*: the time of records that give none.
 */
int http_request_events(const http_opts *o, const http_params *p, const uint8_t *body, size_t blen, uint32_t now_sec,
                        uint32_t now_nsec, wbuf *entries, uint32_t *nrec, char *err, size_t errlen);

/* The tag of a request path: "/a/b" -> "a.b" (Ruby's path[1..].split('/').join('.'):
 * trailing empty parts dropped). Writes at most cap-1 bytes and a NUL. */
size_t http_path_tag(const char *path, size_t n, char *tag, size_t cap);

#endif
