/*
 * aggregator/tls_server.c: <transport tls> of the forward and syslog inputs
 * over OpenSSL memory BIOs (see aggregator/tls_server.h).
 */
#include "aggregator/tls_server.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

typedef struct tls_conf {
    char *cert_path, *private_key_path, *private_key_passphrase, *ca_path, *ciphers;
    char *version, *min_version, *max_version;
    int client_cert_auth;
} tls_conf;

struct tls_srv_ctx {
    SSL_CTX *ctx;
    tls_conf c;
    char summary[160];
};

struct tls_srv_conn {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
};

const conf_spec tls_server_spec[] = {
    {"cert_path", CONF_STR, NULL, 1, offsetof(tls_conf, cert_path), NULL,
     "PEM certificate, optionally followed by its chain"},
    {"private_key_path", CONF_STR, NULL, 1, offsetof(tls_conf, private_key_path), NULL,
     "PEM private key (RSA, EC, Ed25519)"},
    {"private_key_passphrase", CONF_STR, NULL, 0, offsetof(tls_conf, private_key_passphrase), NULL,
     "for an encrypted key (never prompted for)"},
    {"ca_path", CONF_STR, NULL, 0, offsetof(tls_conf, ca_path), NULL,
     "PEM file (or OpenSSL hashed directory) of the CAs that sign client certificates"},
    {"client_cert_auth", CONF_BOOL, "false", 0, offsetof(tls_conf, client_cert_auth), NULL,
     "mTLS: require a client certificate signed by `ca_path`"},
    {"version", CONF_STR, NULL, 0, offsetof(tls_conf, version), NULL,
     "Fluentd's: alone (without `min_version`/`max_version`), allows exactly this version"},
    {"min_version", CONF_STR, NULL, 0, offsetof(tls_conf, min_version), NULL,
     "`TLSv1_2` (the default) or `TLSv1_3` (`TLS1_2`, `TLSv1.2`, ... accepted, any case); older versions are refused"},
    {"max_version", CONF_STR, NULL, 0, offsetof(tls_conf, max_version), NULL, "same values; default: the newest"},
    {"ciphers", CONF_STR, NULL, 0, offsetof(tls_conf, ciphers), NULL,
     "OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are OpenSSL's defaults); default: OpenSSL's"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};


/* The most relevant OpenSSL error as text (its reason), and clear the queue. */
static void ossl_err(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    if (r)
        snprintf(buf, cap, "%s", r);
    else if (e)
        ERR_error_string_n(e, buf, cap);
    else
        snprintf(buf, cap, "unknown OpenSSL error");
    ERR_clear_error();
}

/* TLSv1_2 TLS1_2 TLSv1.2 TLS1.2 (any case) -> TLS1_2_VERSION; older -> 0;
 * unknown -> -1. */
static int parse_version(const char *s)
{
    if (strncasecmp(s, "TLSv", 4) == 0)
        s += 4;
    else if (strncasecmp(s, "TLS", 3) == 0)
        s += 3;
    else if (strncasecmp(s, "SSLv", 4) == 0)
        return 0;
    else
        return -1;
    if (!strcmp(s, "1_2") || !strcmp(s, "1.2"))
        return TLS1_2_VERSION;
    if (!strcmp(s, "1_3") || !strcmp(s, "1.3"))
        return TLS1_3_VERSION;
    if (!strcmp(s, "1") || !strcmp(s, "1_0") || !strcmp(s, "1.0") || !strcmp(s, "1_1") || !strcmp(s, "1.1"))
        return 0;
    return -1;
}

static int check_version(conf_node *n, const char *key, const char *v, conf_errors *errs)
{
    if (!v)
        return -1;
    int ver = parse_version(v);
    if (ver < 0)
        conf_error_at(errs, n, key, "invalid value '%s' for parameter '%s'; expected TLSv1_2 or TLSv1_3", v, key);
    else if (ver == 0)
        conf_error_at(errs, n, key, "%s '%s' is not supported: weir accepts TLS 1.2 and 1.3 only", key, v);
    return ver;
}

static int readable_file(conf_node *n, const char *key, const char *path, conf_errors *errs, int dir_ok)
{
    struct stat st;
    if (stat(path, &st) != 0 || access(path, R_OK) != 0) {
        conf_error_at(errs, n, key, "%s '%s': %s", key, path, strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode) && !dir_ok) {
        conf_error_at(errs, n, key, "%s '%s' is a directory, not a file", key, path);
        return -1;
    }
    return 0;
}

typedef struct pass_ud {
    const char *pass;
    int asked;
} pass_ud;

static int pass_cb(char *buf, int size, int rwflag, void *u)
{
    pass_ud *ud = u;
    ud->asked = 1;
    if (!ud->pass)
        return -1; /* never prompt on a terminal */
    size_t n = strlen(ud->pass);
    if (n > (size_t)size)
        return -1;
    memcpy(buf, ud->pass, n);
    return (int)n;
}

static int load_key(SSL_CTX *ctx, conf_node *n, const tls_conf *c, conf_errors *errs)
{
    BIO *b = BIO_new_file(c->private_key_path, "r");
    char e[200];
    if (!b) {
        ossl_err(e, sizeof e);
        conf_error_at(errs, n, "private_key_path", "cannot open private_key_path '%s': %s", c->private_key_path, e);
        return -1;
    }
    pass_ud ud = {c->private_key_passphrase, 0};
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, pass_cb, &ud);
    BIO_free(b);
    if (!k) {
        ossl_err(e, sizeof e);
        if (ud.asked && !c->private_key_passphrase)
            conf_error_at(errs, n, "private_key_path",
                   "private key '%s' is encrypted: set private_key_passphrase", c->private_key_path);
        else if (ud.asked)
            conf_error_at(errs, n, "private_key_passphrase",
                   "cannot decrypt private key '%s': wrong private_key_passphrase (%s)", c->private_key_path, e);
        else
            conf_error_at(errs, n, "private_key_path", "cannot read a PEM private key from '%s': %s", c->private_key_path,
                   e);
        return -1;
    }
    int ok = SSL_CTX_use_PrivateKey(ctx, k) == 1;
    EVP_PKEY_free(k);
    if (!ok) {
        unsigned long le = ERR_peek_last_error();
        int mismatch = ERR_GET_LIB(le) == ERR_LIB_X509 &&
                       (ERR_GET_REASON(le) == X509_R_KEY_VALUES_MISMATCH || ERR_GET_REASON(le) == X509_R_KEY_TYPE_MISMATCH);
        ossl_err(e, sizeof e);
        if (mismatch)
            conf_error_at(errs, n, "private_key_path", "private key '%s' does not match the certificate '%s' (%s)",
                   c->private_key_path, c->cert_path, e);
        else
            conf_error_at(errs, n, "private_key_path", "cannot use private key '%s': %s", c->private_key_path, e);
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ossl_err(e, sizeof e);
        conf_error_at(errs, n, "private_key_path", "private key '%s' does not match the certificate '%s' (%s)",
               c->private_key_path, c->cert_path, e);
        return -1;
    }
    return 0;
}

tls_srv_ctx *tls_srv_create(conf_node *n, conf_errors *errs)
{
    size_t before = errs->n;
    char e[200];
    tls_srv_ctx *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    conf_bind(n, tls_server_spec, &t->c, errs);
    tls_conf *c = &t->c;
    ERR_clear_error();
    t->ctx = SSL_CTX_new(TLS_server_method());
    if (!t->ctx) {
        ossl_err(e, sizeof e);
        conf_errors_add(errs, n->file, n->line, "cannot create a TLS context: %s", e);
        goto out;
    }
    SSL_CTX *ctx = t->ctx;

    /* versions: Fluentd's rule: `version` alone pins one version; min/max win */
    int min = TLS1_2_VERSION, max = 0;
    if (c->min_version || c->max_version) {
        if (c->min_version)
            min = check_version(n, "min_version", c->min_version, errs);
        if (c->max_version)
            max = check_version(n, "max_version", c->max_version, errs);
    } else if (c->version) {
        min = max = check_version(n, "version", c->version, errs);
    }
    if (min > 0 && max > 0 && max < min)
        conf_error_at(errs, n, "max_version", "max_version %s is lower than min_version %s", c->max_version,
               c->min_version ? c->min_version : "TLSv1_2");
    if (min > 0)
        SSL_CTX_set_min_proto_version(ctx, min);
    if (max > 0)
        SSL_CTX_set_max_proto_version(ctx, max);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* needed for session resumption together with client certificates */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"weir-forward", 12);

    if (c->ciphers && SSL_CTX_set_cipher_list(ctx, c->ciphers) != 1) {
        ossl_err(e, sizeof e);
        conf_error_at(errs, n, "ciphers", "invalid ciphers '%s': %s", c->ciphers, e);
    }

    int cert_ok = 0;
    if (c->cert_path && readable_file(n, "cert_path", c->cert_path, errs, 0) == 0) {
        if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_path) != 1) {
            ossl_err(e, sizeof e);
            conf_error_at(errs, n, "cert_path", "cannot load a PEM certificate from '%s': %s", c->cert_path, e);
        } else {
            cert_ok = 1;
        }
    }
    if (c->private_key_path && readable_file(n, "private_key_path", c->private_key_path, errs, 0) == 0 && cert_ok)
        load_key(ctx, n, c, errs);

    if (c->ca_path && readable_file(n, "ca_path", c->ca_path, errs, 1) == 0) {
        struct stat st;
        int dir = stat(c->ca_path, &st) == 0 && S_ISDIR(st.st_mode);
        if (SSL_CTX_load_verify_locations(ctx, dir ? NULL : c->ca_path, dir ? c->ca_path : NULL) != 1) {
            ossl_err(e, sizeof e);
            conf_error_at(errs, n, "ca_path", "cannot load CA certificates from '%s': %s", c->ca_path, e);
        } else if (!dir) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(c->ca_path);
            if (names)
                SSL_CTX_set_client_CA_list(ctx, names);
            ERR_clear_error();
        }
    }
    if (c->client_cert_auth) {
        if (!c->ca_path)
            conf_error_at(errs, n, "client_cert_auth",
                   "client_cert_auth needs ca_path (the CA that signs the client certificates)");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    snprintf(t->summary, sizeof t->summary, "TLS %s%s%s", min == TLS1_3_VERSION ? "1.3" : "1.2",
             max == 0 || max > min ? "+" : " only", c->client_cert_auth ? ", client certificates required" : "");
out:
    if (errs->n > before) {
        tls_srv_free(t);
        return NULL;
    }
    return t;
}

void tls_srv_free(tls_srv_ctx *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    conf_unbind(tls_server_spec, &t->c);
    free(t);
}

const char *tls_srv_summary(const tls_srv_ctx *t) { return t->summary; }

/* ---- connections -------------------------------------------------------------- */

tls_srv_conn *tls_srv_conn_new(tls_srv_ctx *t)
{
    tls_srv_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->ssl = SSL_new(t->ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rbio || !c->wbio) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        SSL_free(c->ssl);
        free(c);
        ERR_clear_error();
        return NULL;
    }
    /* an empty read BIO means "wait for more", not end of file */
    BIO_set_mem_eof_return(c->rbio, -1);
    BIO_set_mem_eof_return(c->wbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    return c;
}

void tls_srv_conn_free(tls_srv_conn *c)
{
    if (!c)
        return;
    SSL_free(c->ssl); /* frees the BIOs */
    free(c);
}

int tls_srv_feed(tls_srv_conn *c, const void *p, size_t n)
{
    while (n) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        int w = BIO_write(c->rbio, p, chunk);
        if (w <= 0)
            return -1;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

static void conn_err(tls_srv_conn *c, char *err, size_t errlen)
{
    char e[160];
    ossl_err(e, sizeof e);
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK)
        snprintf(err, errlen, "%s (client certificate: %s)", e, X509_verify_cert_error_string(v));
    else
        snprintf(err, errlen, "%s", e);
}

int tls_srv_read(tls_srv_conn *c, void *buf, size_t cap, char *err, size_t errlen)
{
    ERR_clear_error();
    int n = SSL_read(c->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
    if (n > 0)
        return n;
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return TLS_SRV_WANT;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_SRV_EOF;
    default:
        conn_err(c, err, errlen);
        return TLS_SRV_ERROR;
    }
}

int tls_srv_write(tls_srv_conn *c, const void *p, size_t n, char *err, size_t errlen)
{
    ERR_clear_error();
    while (n) {
        int chunk = n > (1u << 30) ? (1 << 30) : (int)n;
        int w = SSL_write(c->ssl, p, chunk);
        if (w <= 0) {
            conn_err(c, err, errlen);
            return -1;
        }
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

int tls_srv_drain(tls_srv_conn *c, wbuf *wire)
{
    size_t pend;
    while ((pend = BIO_ctrl_pending(c->wbio)) > 0) {
        if (pend > INT_MAX)
            pend = INT_MAX;
        if (wbuf_grow(wire, pend))
            return -1;
        int n = BIO_read(c->wbio, wire->data + wire->len, (int)pend);
        if (n <= 0)
            break;
        wire->len += (size_t)n;
    }
    return 0;
}

int tls_srv_established(const tls_srv_conn *c) { return SSL_is_init_finished(c->ssl); }

void tls_srv_shutdown(tls_srv_conn *c)
{
    ERR_clear_error();
    if (SSL_is_init_finished(c->ssl))
        SSL_shutdown(c->ssl);
    ERR_clear_error();
}

void tls_srv_describe(const tls_srv_conn *c, char *buf, size_t cap)
{
    X509 *peer = SSL_get0_peer_certificate(c->ssl);
    char cn[128] = "";
    if (peer)
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn, sizeof cn);
    snprintf(buf, cap, "%s %s%s%s", SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl), peer ? ", client CN=" : "",
             peer ? cn : "");
}
