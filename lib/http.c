/*
 * lib/http.c: weir's HTTP client on libcurl's multi interface; see
 * http.h and ADR 0004.
 *
 * Ownership: an http_client owns a pool of sessions. A session is one CURLM
 * (which owns the connection cache, so connections are reused between calls)
 * plus the easy handles it runs. http_perform() pops a session under the
 * client's mutex, uses it without any lock, and pushes it back; the pool
 * grows to the number of threads that ever called at once. Request bodies are
 * the caller's and are sent without copying (CURLOPT_POSTFIELDS), except a
 * gzip'd body, which lives in a buffer owned by this call.
 */
#include "lib/http.h"

#include "lib/clock.h"
#include "lib/compress.h"
#include "lib/membudget.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct session {
    struct session *next;
    CURLM *m;
    CURL **easy;
    int neasy;
} session;

struct http_client {
    http_opts o;
    char *ca_file, *client_cert, *client_key, *client_key_pass, *user, *password, *user_agent;
    pthread_mutex_t mu;
    session *pool;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init_once(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

http_client *http_client_new(const http_opts *o, char *err, size_t errlen)
{
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        snprintf(err, errlen, "libcurl init failed: %s", curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    http_client *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->o = *o;
    if (c->o.timeout <= 0)
        c->o.timeout = 60;
    if (c->o.connect_timeout <= 0)
        c->o.connect_timeout = 10;
    if (c->o.max_in_flight <= 0)
        c->o.max_in_flight = 4;
    if (c->o.max_response == 0)
        c->o.max_response = 16u << 20;
    c->o.ca_file = c->ca_file = dup_or_null(o->ca_file);
    c->o.client_cert = c->client_cert = dup_or_null(o->client_cert);
    c->o.client_key = c->client_key = dup_or_null(o->client_key);
    c->o.client_key_pass = c->client_key_pass = dup_or_null(o->client_key_pass);
    c->o.user = c->user = dup_or_null(o->user);
    c->o.password = c->password = dup_or_null(o->password);
    c->o.user_agent = c->user_agent = strdup(o->user_agent ? o->user_agent : "weir/" WEIR_VERSION);
    pthread_mutex_init(&c->mu, NULL);
    return c;
}

static void session_free(session *s)
{
    for (int i = 0; i < s->neasy; i++)
        if (s->easy[i])
            curl_easy_cleanup(s->easy[i]);
    free(s->easy);
    if (s->m)
        curl_multi_cleanup(s->m);
    free(s);
}

void http_client_free(http_client *c)
{
    if (!c)
        return;
    while (c->pool) {
        session *s = c->pool;
        c->pool = s->next;
        session_free(s);
    }
    pthread_mutex_destroy(&c->mu);
    free(c->ca_file);
    free(c->client_cert);
    free(c->client_key);
    free(c->client_key_pass);
    free(c->user);
    free(c->password);
    free(c->user_agent);
    free(c);
}

static session *session_get(http_client *c)
{
    pthread_mutex_lock(&c->mu);
    session *s = c->pool;
    if (s)
        c->pool = s->next;
    pthread_mutex_unlock(&c->mu);
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->neasy = c->o.max_in_flight;
    s->easy = calloc((size_t)s->neasy, sizeof *s->easy);
    s->m = curl_multi_init();
    if (!s->easy || !s->m) {
        session_free(s);
        return NULL;
    }
    /* keep up to one connection per in-flight slot (and a few spare) alive */
    curl_multi_setopt(s->m, CURLMOPT_MAXCONNECTS, (long)s->neasy + 2);
    return s;
}

static void session_put(http_client *c, session *s)
{
    pthread_mutex_lock(&c->mu);
    s->next = c->pool;
    c->pool = s;
    pthread_mutex_unlock(&c->mu);
}

/* --------------------------------------------------------------- requests -- */

typedef struct slot {
    http_req *r;
    struct curl_slist *hdrs;
    wbuf gz; /* the gzip'd body, when asked for */
    size_t max_response;
    double t0;
    int overflow;
} slot;

static _Atomic uint64_t truncated_;

uint64_t http_responses_truncated(void) { return atomic_load_explicit(&truncated_, memory_order_relaxed); }

/* The response body's buffer grew: its new bytes count against the memory
 * budget (forced: the bytes have arrived; the bound caps them), until
 * http_req_clear. */
static void account(http_req *r)
{
    if (r->resp.cap > r->resp_mb) {
        mb_force(r->resp.cap - r->resp_mb);
        r->resp_mb = r->resp.cap;
    }
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
    slot *sl = arg;
    size_t n = size * nmemb;
    wbuf *b = &sl->r->resp;
    if (b->len + n + 1 > sl->max_response) { /* keep the head: it says what went wrong */
        sl->overflow = 1;
        size_t room = sl->max_response > b->len + 1 ? sl->max_response - b->len - 1 : 0;
        if (room && wbuf_add(b, p, room) != 0)
            return 0;
        account(sl->r);
        return n;
    }
    if (wbuf_add(b, p, n) != 0)
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    account(sl->r);
    return n;
}

static void slot_clear(slot *sl)
{
    curl_slist_free_all(sl->hdrs);
    sl->hdrs = NULL;
    wbuf_free(&sl->gz);
}

/* Configure easy handle e for request r. Returns 0, or -1 with r->error set. */
static int setup(http_client *c, CURL *e, slot *sl)
{
    http_req *r = sl->r;
    const http_opts *o = &c->o;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(o->timeout * 1000));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(o->connect_timeout * 1000));
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, o->user_agent);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, sl);
    curl_easy_setopt(e, CURLOPT_PRIVATE, sl);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, o->verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, o->verify ? 2L : 0L);
    if (o->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    if (o->client_cert)
        curl_easy_setopt(e, CURLOPT_SSLCERT, o->client_cert);
    if (o->client_key)
        curl_easy_setopt(e, CURLOPT_SSLKEY, o->client_key);
    if (o->client_key_pass)
        curl_easy_setopt(e, CURLOPT_KEYPASSWD, o->client_key_pass);
    if (o->tls_min || o->tls_max) {
        long v = o->tls_min == 10 ? CURL_SSLVERSION_TLSv1_0 : o->tls_min == 11 ? CURL_SSLVERSION_TLSv1_1
               : o->tls_min == 13 ? CURL_SSLVERSION_TLSv1_3 : CURL_SSLVERSION_TLSv1_2;
        v |= o->tls_max == 10 ? CURL_SSLVERSION_MAX_TLSv1_0 : o->tls_max == 11 ? CURL_SSLVERSION_MAX_TLSv1_1
           : o->tls_max == 12 ? CURL_SSLVERSION_MAX_TLSv1_2 : o->tls_max == 13 ? CURL_SSLVERSION_MAX_TLSv1_3
           : CURL_SSLVERSION_MAX_DEFAULT;
        curl_easy_setopt(e, CURLOPT_SSLVERSION, v);
    }
    if (o->ciphers)
        curl_easy_setopt(e, CURLOPT_SSL_CIPHER_LIST, o->ciphers);
    if (o->user) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, o->user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, o->password ? o->password : "");
    }

    struct curl_slist *h = NULL, *t;
    for (const char *const *p = r->headers; p && *p; p++) {
        if (!(t = curl_slist_append(h, *p)))
            goto oom;
        h = t;
    }
    if (!(t = curl_slist_append(h, "Expect:"))) /* no 100-continue round trip */
        goto oom;
    h = t;

    const char *m = r->method ? r->method : "GET";
    if (!strcmp(m, "HEAD")) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (r->body || strcmp(m, "GET") != 0) {
        const uint8_t *body = r->body;
        size_t len = r->body_len;
        if (r->gzip_level > 0 && len > 0) {
            sl->gz.len = 0;
            if (gz_compress(&sl->gz, body, len, r->gzip_level) != 0)
                goto oom;
            body = sl->gz.data;
            len = sl->gz.len;
            if (!(t = curl_slist_append(h, "Content-Encoding: gzip")))
                goto oom;
            h = t;
        }
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        if (strcmp(m, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    sl->hdrs = h;
    return 0;
oom:
    curl_slist_free_all(h);
    snprintf(r->error, sizeof r->error, "out of memory preparing the request");
    return -1;
}

static void finish(slot *sl, CURL *e, CURLcode rc)
{
    http_req *r = sl->r;
    r->seconds = clock_mono() - sl->t0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    } else {
        r->status = 0;
        r->transport_error = 1;
        r->timed_out = rc == CURLE_OPERATION_TIMEDOUT;
        if (!r->error[0])
            snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(rc));
    }
    if (r->resp.len && wbuf_addc(&r->resp, 0) == 0)
        r->resp.len--;
    account(r);
    if (sl->overflow) {
        r->resp_truncated = 1;
        atomic_fetch_add_explicit(&truncated_, 1, memory_order_relaxed);
    }
    slot_clear(sl);
}

/* The bytes of a response body kept: max_response, at most an eighth of the
 * memory budget (but 1 MiB at least, enough for an error's head). */
static size_t bound(size_t max_response)
{
    uint64_t lim = mb_limit() / 8;
    if (lim && lim < (1u << 20))
        lim = 1u << 20;
    return lim && lim < max_response ? (size_t)lim : max_response;
}

int http_perform(http_client *c, http_req *reqs, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        http_req *r = &reqs[i];
        r->status = 0;
        r->transport_error = r->timed_out = 0;
        r->error[0] = 0;
        r->resp.len = 0;
        r->resp_truncated = 0;
        r->seconds = 0;
    }
    session *s = session_get(c);
    slot *slots = calloc(n, sizeof *slots);
    if (!s || !slots) {
        for (size_t i = 0; i < n; i++) {
            reqs[i].transport_error = 1;
            snprintf(reqs[i].error, sizeof reqs[i].error, "out of memory");
        }
        free(slots);
        if (s)
            session_put(c, s);
        return -1;
    }
    int *slot_of = calloc((size_t)s->neasy, sizeof *slot_of); /* easy index -> request index */
    if (!slot_of) {
        free(slots);
        session_put(c, s);
        return -1;
    }
    size_t next = 0, done = 0;
    int running = 0, failed = 0;
    while (done < n) {
        /* fill free easy handles */
        for (int k = 0; k < s->neasy && next < n; k++) {
            if (slot_of[k])
                continue;
            if (!s->easy[k] && !(s->easy[k] = curl_easy_init()))
                continue;
            slot *sl = &slots[next];
            sl->r = &reqs[next];
            sl->max_response = bound(c->o.max_response);
            sl->t0 = clock_mono();
            if (setup(c, s->easy[k], sl) != 0 || curl_multi_add_handle(s->m, s->easy[k]) != CURLM_OK) {
                sl->r->transport_error = 1;
                if (!sl->r->error[0])
                    snprintf(sl->r->error, sizeof sl->r->error, "cannot start the request");
                slot_clear(sl);
                failed = 1;
                done++;
                next++;
                continue;
            }
            slot_of[k] = (int)next + 1;
            next++;
        }
        if (done >= n)
            break;
        CURLMcode mc = curl_multi_perform(s->m, &running);
        if (mc != CURLM_OK)
            break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(s->m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            CURL *e = msg->easy_handle;
            CURLcode rc = msg->data.result;
            slot *sl = NULL;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&sl);
            curl_multi_remove_handle(s->m, e);
            for (int k = 0; k < s->neasy; k++)
                if (s->easy[k] == e)
                    slot_of[k] = 0;
            if (sl) {
                finish(sl, e, rc);
                if (rc != CURLE_OK)
                    failed = 1;
            }
            done++;
        }
        if (done < n && (next >= n || running > 0))
            curl_multi_poll(s->m, NULL, 0, 100, NULL);
    }
    if (done < n) { /* the multi handle failed: give every unfinished request an error */
        for (int k = 0; k < s->neasy; k++) {
            if (!slot_of[k])
                continue;
            slot *sl = &slots[slot_of[k] - 1];
            curl_multi_remove_handle(s->m, s->easy[k]);
            snprintf(sl->r->error, sizeof sl->r->error, "curl multi interface failed");
            finish(sl, s->easy[k], CURLE_FAILED_INIT);
            slot_of[k] = 0;
        }
        for (; next < n; next++) {
            reqs[next].transport_error = 1;
            snprintf(reqs[next].error, sizeof reqs[next].error, "curl multi interface failed");
        }
        failed = 1;
        /* a broken multi handle is not put back */
        session_free(s);
        s = NULL;
    }
    free(slot_of);
    free(slots);
    if (s)
        session_put(c, s);
    return failed ? -1 : 0;
}

void http_req_clear(http_req *r)
{
    wbuf_free(&r->resp);
    if (r->resp_mb)
        mb_release(r->resp_mb);
    r->resp_mb = 0;
}

int http_urlencode(wbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
            ch == '_' || ch == '.' || ch == '~') {
            if (wbuf_addc(b, ch))
                return -1;
        } else {
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            if (wbuf_add(b, e, 3))
                return -1;
        }
    }
    return 0;
}
