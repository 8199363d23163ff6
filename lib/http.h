/*
 * lib/http.h: the HTTP client every HTTP output (Elasticsearch/OpenSearch,
 * Loki) uses; libcurl's multi interface underneath (ADR 0004).
 *
 * One http_client per output instance. It is safe to call http_perform()
 * from several flush threads at once: each call borrows a "session" (a
 * CURLM with its own connection cache and easy handles) from a pool and
 * returns it afterwards, so connections stay open between calls (keep-alive)
 * and a thread never waits for another thread's requests. One call runs all
 * of its requests concurrently (up to opts.max_in_flight at a time) and
 * returns when every one has finished, failed or timed out.
 *
 * Nothing here retries: the caller sees the status (or the transport error)
 * of every request and decides, because only the caller knows whether a
 * request may be repeated and against which host.
 */
#ifndef WEIR_HTTP_H
#define WEIR_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "lib/wbuf.h"

typedef struct http_opts {
    double timeout;         /* whole request, seconds (0: 60) */
    double connect_timeout; /* seconds (0: 10) */
    int verify;             /* verify the server's certificate and host name */
    const char *ca_file;    /* PEM bundle; NULL: the system's */
    const char *client_cert, *client_key, *client_key_pass; /* mTLS, PEM */
    const char *user, *password; /* HTTP basic auth, or NULL */
    int max_in_flight;      /* concurrent requests per http_perform call (0: 4) */
    size_t max_response;    /* bytes of response body kept (0: 16 MiB); at most an eighth of the memory
                             * budget (1 MiB at least): the rest is dropped, resp_truncated set */
    const char *user_agent; /* NULL: "weir/<version>" */
    int tls_min, tls_max;   /* TLS versions: 0 default (min 1.2), 10, 11, 12, 13 (1.0 .. 1.3) */
    const char *ciphers;    /* OpenSSL cipher list (TLS <= 1.2), or NULL */
} http_opts;

typedef struct http_req {
    /* in */
    const char *method;          /* "GET", "POST", "PUT", "HEAD", "DELETE" */
    const char *url;             /* absolute */
    const char *const *headers;  /* NULL-terminated "Name: value" list, or NULL */
    const uint8_t *body;         /* may be NULL */
    size_t body_len;
    int gzip_level;              /* 1..9: gzip the body, Content-Encoding: gzip */
    /* out */
    long status;                 /* HTTP status; 0 when the request never got one */
    int transport_error;         /* 1: connect/TLS/timeout/reset (status 0) */
    int timed_out;               /* 1: the request hit opts.timeout */
    wbuf resp;                   /* response body (NUL-terminated when len > 0) */
    int resp_truncated;          /* 1: the body was longer than the bound; resp holds its head */
    size_t resp_mb;              /* bytes of resp reserved against the memory budget (http_req_clear releases) */
    char error[256];             /* curl's message for a transport error */
    double seconds;              /* wall time of the request */
} http_req;

typedef struct http_client http_client;

/* Returns NULL and fills err when libcurl cannot be set up. */
http_client *http_client_new(const http_opts *o, char *err, size_t errlen);
void http_client_free(http_client *c);

/* Run n requests concurrently; fills each request's out fields. Returns 0
 * when every request got an HTTP status (whatever it was), -1 when at least
 * one had a transport error. Safe from several threads at once. */
int http_perform(http_client *c, http_req *reqs, size_t n);

/* Free a request's response body and release its memory-budget bytes (the request itself is the caller's). */
void http_req_clear(http_req *r);

/* Responses whose body was cut at the bound since the start (weir_http_responses_truncated_total). */
uint64_t http_responses_truncated(void);

/* Append s to b with URL percent-encoding of everything but unreserved characters. */
int http_urlencode(wbuf *b, const char *s, size_t n);

#endif
