/*
 * outputs/forward/conn.c: the forward output's connections to its servers:
 * TCP connect with connect_timeout, TLS (the output's SSL_CTX, hostname
 * verification), Fluentd's shared-key handshake (HELO, PING, PONG) and
 * blocking reads and writes with send_timeout. Runs on the write path,
 * under the output's mutex (forward.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/clock.h"
#include "lib/fwd_digest.h"
#include "lib/log.h"
#include "lib/mp.h"
#include "lib/net.h"
#include "outputs/forward/forward_int.h"

/* ---- connections ------------------------------------------------------------------------------- */

void fwd_disconnect(fwd_server *s)
{
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->sock >= 0) {
        close(s->sock);
        s->sock = -1;
    }
}

static void set_timeouts(int fd, double t)
{
    struct timeval tv = {(time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

static int tcp_connect(out_forward *c, fwd_server *s, char *why, size_t wl)
{
    char port[16], reason[256];
    snprintf(port, sizeof port, "%lld", (long long)s->port);
    int fd = net_connect(s->host, port, c->connect_timeout, reason, sizeof reason);
    if (fd < 0) {
        if (fd == -1)
            snprintf(why, wl, "cannot resolve %s: %s", s->host, reason);
        else
            snprintf(why, wl, "cannot connect to %s: %s", s->name, reason);
        return -1;
    }
    int one = 1;
    if (c->send_keepalive_packet)
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    set_timeouts(fd, c->connect_timeout);
    s->sock = fd;
    return 0;
}

int fwd_io_write(fwd_server *s, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w;
        if (s->ssl) {
            size_t done = 0;
            w = SSL_write_ex(s->ssl, b, n, &done) == 1 ? (ssize_t)done : -1;
        } else {
            w = send(s->sock, b, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
        }
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* read one complete msgpack object into c->resp (from its start) */
int fwd_io_read_obj(out_forward *c, fwd_server *s, double timeout)
{
    c->resp.len = 0;
    mp_framer f;
    mp_framer_reset(&f);
    double deadline = clock_mono() + timeout;
    set_timeouts(s->sock, timeout);
    for (;;) {
        if (c->resp.len) {
            int r = mp_frame(&f, c->resp.data, c->resp.len);
            if (r == MP_OK)
                return 0;
            if (r == MP_BAD)
                return -1;
        }
        if (c->resp.len > (1u << 20) || clock_mono() > deadline)
            return -1;
        if (wbuf_grow(&c->resp, 4096))
            return -1;
        ssize_t r;
        if (s->ssl) {
            size_t got = 0;
            r = SSL_read_ex(s->ssl, c->resp.data + c->resp.len, c->resp.cap - c->resp.len, &got) == 1 ? (ssize_t)got
                                                                                                      : -1;
        } else {
            r = recv(s->sock, c->resp.data + c->resp.len, c->resp.cap - c->resp.len, 0);
            if (r < 0 && errno == EINTR)
                continue;
        }
        if (r <= 0)
            return -1;
        c->resp.len += (size_t)r;
    }
}

int fwd_map_str(const uint8_t *p, const uint8_t *end, uint32_t pairs, const char *k, const uint8_t **v, uint32_t *vl,
                int *vtype)
{
    for (uint32_t i = 0; i < pairs; i++) {
        mp_obj key, val;
        if (mp_read(&p, end, &key) != MP_OK)
            return -1;
        const uint8_t *vs = p;
        if (mp_read(&p, end, &val) != MP_OK)
            return -1;
        if (val.type == MP_ARRAY || val.type == MP_MAP) {
            p = vs;
            if (mp_skip(&p, end, 8) != MP_OK)
                return -1;
        }
        if ((key.type == MP_STR || key.type == MP_BIN) && key.len == strlen(k) && !memcmp(key.ptr, k, key.len)) {
            *v = val.ptr;
            *vl = val.len;
            *vtype = val.type;
            if (val.type == MP_BOOL)
                *vl = (uint32_t)val.v.b;
            return 1;
        }
    }
    return 0;
}

int fwd_rand_bytes(uint8_t *b, size_t n) { return RAND_bytes(b, (int)n) == 1 ? 0 : -1; }

/* HELO -> PING -> PONG (out_forward's generate_ping / check_pong) */
static int handshake(out_forward *c, fwd_server *s, char *why, size_t wl)
{
    if (fwd_io_read_obj(c, s, c->connect_timeout)) {
        snprintf(why, wl, "%s: no HELO from the server (it has no <security>?)", s->name);
        return -1;
    }
    const uint8_t *p = c->resp.data, *end = c->resp.data + c->resp.len;
    mp_obj a, t, m;
    if (mp_read(&p, end, &a) != MP_OK || a.type != MP_ARRAY || a.len < 2 || mp_read(&p, end, &t) != MP_OK ||
        t.type != MP_STR || t.len != 4 || memcmp(t.ptr, "HELO", 4) || mp_read(&p, end, &m) != MP_OK ||
        m.type != MP_MAP) {
        snprintf(why, wl, "%s: not a HELO", s->name);
        return -1;
    }
    const uint8_t *nonce = NULL, *auth = NULL;
    uint32_t nl = 0, al = 0;
    int vt;
    if (fwd_map_str(p, end, m.len, "nonce", &nonce, &nl, &vt) != 1 || (vt != MP_STR && vt != MP_BIN)) {
        snprintf(why, wl, "%s: HELO without a nonce", s->name);
        return -1;
    }
    if (fwd_map_str(p, end, m.len, "auth", &auth, &al, &vt) != 1 || (vt != MP_STR && vt != MP_BIN))
        auth = NULL, al = 0;
    uint8_t nonce_c[256], auth_c[256];
    if (nl > sizeof nonce_c || al > sizeof auth_c) {
        snprintf(why, wl, "%s: HELO too long", s->name);
        return -1;
    }
    memcpy(nonce_c, nonce, nl);
    if (al)
        memcpy(auth_c, auth, al);
    const char *key = s->shared_key ? s->shared_key : c->shared_key;
    const char *user = s->username ? s->username : c->username ? c->username : "";
    const char *pass = s->password ? s->password : c->password ? c->password : "";
    uint8_t salt[16];
    char salt_hex[33], digest[FWD_DIGEST_HEX_LEN + 1], pdigest[FWD_DIGEST_HEX_LEN + 1];
    if (fwd_rand_bytes(salt, sizeof salt))
        return -1;
    for (int i = 0; i < 16; i++)
        snprintf(salt_hex + 2 * i, 3, "%02x", salt[i]);
    const void *parts[4] = {salt_hex, c->self_hostname, nonce_c, key};
    size_t lens[4] = {32, strlen(c->self_hostname), nl, strlen(key)};
    if (fwd_digest_hex(digest, parts, lens, 4))
        return -1;
    wbuf ping = {0};
    mpw_array(&ping, 6);
    mpw_str(&ping, "PING", 4);
    mpw_str(&ping, c->self_hostname, strlen(c->self_hostname));
    mpw_str(&ping, salt_hex, 32);
    mpw_str(&ping, digest, FWD_DIGEST_HEX_LEN);
    if (al) {
        const void *pp[3] = {auth_c, user, pass};
        size_t pl[3] = {al, strlen(user), strlen(pass)};
        if (fwd_digest_hex(pdigest, pp, pl, 3)) {
            wbuf_free(&ping);
            return -1;
        }
        mpw_str(&ping, user, strlen(user));
        mpw_str(&ping, pdigest, FWD_DIGEST_HEX_LEN);
    } else {
        mpw_str(&ping, "", 0);
        mpw_str(&ping, "", 0);
    }
    int wr = fwd_io_write(s, ping.data, ping.len);
    wbuf_free(&ping);
    if (wr || fwd_io_read_obj(c, s, c->connect_timeout)) {
        snprintf(why, wl, "%s: no PONG from the server", s->name);
        return -1;
    }
    p = c->resp.data;
    end = c->resp.data + c->resp.len;
    mp_obj ok, reason, host, dg;
    if (mp_read(&p, end, &a) != MP_OK || a.type != MP_ARRAY || a.len != 5 || mp_read(&p, end, &t) != MP_OK ||
        t.type != MP_STR || t.len != 4 || memcmp(t.ptr, "PONG", 4) || mp_read(&p, end, &ok) != MP_OK ||
        mp_read(&p, end, &reason) != MP_OK || mp_read(&p, end, &host) != MP_OK || mp_read(&p, end, &dg) != MP_OK) {
        snprintf(why, wl, "%s: not a PONG", s->name);
        return -1;
    }
    if (ok.type != MP_BOOL || !ok.v.b) {
        snprintf(why, wl, "%s: authentication failed: %.*s", s->name,
                 (int)(reason.type == MP_STR && reason.len < 200 ? reason.len : 0), (const char *)reason.ptr);
        return -1;
    }
    if (host.type != MP_STR || (host.len == strlen(c->self_hostname) && !memcmp(host.ptr, c->self_hostname, host.len))) {
        snprintf(why, wl, "%s: same hostname between input and output: invalid configuration", s->name);
        return -1;
    }
    char hostc[256];
    snprintf(hostc, sizeof hostc, "%.*s", (int)(host.len < 255 ? host.len : 255), (const char *)host.ptr);
    const void *sp[4] = {salt_hex, hostc, nonce_c, key};
    size_t sl[4] = {32, strlen(hostc), nl, strlen(key)};
    if (fwd_digest_hex(digest, sp, sl, 4) || dg.type != MP_STR || dg.len != FWD_DIGEST_HEX_LEN ||
        memcmp(dg.ptr, digest, FWD_DIGEST_HEX_LEN)) {
        snprintf(why, wl, "%s: shared key mismatch", s->name);
        return -1;
    }
    return 0;
}

static int is_ip(const char *h)
{
    struct in6_addr a;
    return inet_pton(AF_INET, h, &a) == 1 || inet_pton(AF_INET6, h, &a) == 1;
}

int fwd_connect_server(out_forward *c, fwd_server *s, char *why, size_t wl)
{
    if (s->sock >= 0 && c->keepalive && (!c->keepalive_timeout || clock_mono() - s->last_used < c->keepalive_timeout)) {
        /* a kept connection the server closed meanwhile: poll says readable (EOF) */
        struct pollfd p = {s->sock, POLLIN, 0};
        if (poll(&p, 1, 0) == 0)
            return 0;
    }
    fwd_disconnect(s);
    if (tcp_connect(c, s, why, wl))
        return -1;
    if (c->ssl_ctx) {
        s->ssl = SSL_new(c->ssl_ctx);
        if (!s->ssl)
            goto fail;
        SSL_set_fd(s->ssl, s->sock);
        if (!is_ip(s->host))
            SSL_set_tlsext_host_name(s->ssl, s->host);
        if (c->tls_verify_hostname && !c->tls_insecure_mode) {
            X509_VERIFY_PARAM *vp = SSL_get0_param(s->ssl);
            if (is_ip(s->host))
                X509_VERIFY_PARAM_set1_ip_asc(vp, s->host);
            else
                X509_VERIFY_PARAM_set1_host(vp, s->host, 0);
        }
        if (SSL_connect(s->ssl) != 1) {
            long vr = SSL_get_verify_result(s->ssl);
            unsigned long e = ERR_get_error();
            snprintf(why, wl, "%s: TLS handshake failed: %s", s->name,
                     vr != X509_V_OK ? X509_verify_cert_error_string(vr)
                     : e         ? ERR_reason_error_string(e)
                                 : "connection closed");
            ERR_clear_error();
            goto fail;
        }
    }
    if (c->has_security && handshake(c, s, why, wl))
        goto fail;
    set_timeouts(s->sock, c->send_timeout);
    return 0;
fail:
    fwd_disconnect(s);
    return -1;
}

