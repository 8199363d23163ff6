/* lib/sigv4.c: AWS SigV4 presigned URLs; see sigv4.h. */
#include "lib/sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#define SIGV4_MAX_PARAMS 16

static int uri_encode(wbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        int keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                   c == '_' || c == '.' || c == '~';
        if (keep ? wbuf_addc(b, c) : (wbuf_addc(b, '%') | wbuf_addc(b, (uint8_t)hex[c >> 4]) |
                                      wbuf_addc(b, (uint8_t)hex[c & 15])))
            return -1;
    }
    return 0;
}

static void hex_of(char *out, const unsigned char *md, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[2 * n] = 0;
}

static int hmac(unsigned char out[32], const void *key, size_t klen, const char *msg, size_t mlen)
{
    unsigned int olen = 0;
    return HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, out, &olen) && olen == 32 ? 0 : -1;
}

typedef struct {
    const char *k, *v;
} qparam;

static int qparam_cmp(const void *a, const void *b)
{
    return strcmp(((const qparam *)a)->k, ((const qparam *)b)->k);
}

int sigv4_presign_url(wbuf *out, const sigv4_presign *p)
{
    char date[9], stamp[17], scope[256], cred[512], expires[16];
    struct tm tm;
    gmtime_r(&p->now, &tm);
    strftime(date, sizeof date, "%Y%m%d", &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    int sn = snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", date, p->region, p->service);
    int cn = snprintf(cred, sizeof cred, "%s/%s", p->key_id, scope);
    snprintf(expires, sizeof expires, "%d", p->expires);
    if (sn < 0 || (size_t)sn >= sizeof scope || cn < 0 || (size_t)cn >= sizeof cred)
        return -1;

    qparam q[SIGV4_MAX_PARAMS];
    size_t nq = 0;
    for (size_t i = 0; p->params && p->params[i]; i += 2) {
        if (nq >= SIGV4_MAX_PARAMS - 5)
            return -1;
        q[nq++] = (qparam){p->params[i], p->params[i + 1]};
    }
    q[nq++] = (qparam){"X-Amz-Algorithm", "AWS4-HMAC-SHA256"};
    q[nq++] = (qparam){"X-Amz-Credential", cred};
    q[nq++] = (qparam){"X-Amz-Date", stamp};
    q[nq++] = (qparam){"X-Amz-Expires", expires};
    q[nq++] = (qparam){"X-Amz-SignedHeaders", "host"};
    /* sorted by encoded name: the names here need no encoding */
    qsort(q, nq, sizeof *q, qparam_cmp);

    wbuf cq = {0}, creq = {0};
    int bad = 0;
    for (size_t i = 0; i < nq; i++) {
        if (i)
            bad |= wbuf_addc(&cq, '&');
        bad |= uri_encode(&cq, q[i].k) | wbuf_addc(&cq, '=') | uri_encode(&cq, q[i].v);
    }
    /* the canonical request: method, path, query, headers, signed headers, payload hash */
    static const char empty_sha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    bad |= wbuf_add(&creq, "GET\n/\n", 6) | wbuf_add(&creq, cq.data, cq.len) | wbuf_add(&creq, "\nhost:", 6) |
           wbuf_add(&creq, p->host, strlen(p->host)) | wbuf_add(&creq, "\n\nhost\n", 7) |
           wbuf_add(&creq, empty_sha256, sizeof empty_sha256 - 1);
    unsigned char md[32] = {0}, k1[32] = {0}, k2[32] = {0}, k3[32] = {0}, k4[32] = {0}, sig[32] = {0};
    char creq_hex[65], sig_hex[65];
    if (!bad)
        bad = SHA256(creq.data, creq.len, md) ? 0 : -1;
    hex_of(creq_hex, md, 32);

    wbuf sts = {0}, key = {0};
    bad |= wbuf_add(&sts, "AWS4-HMAC-SHA256\n", 17) | wbuf_add(&sts, stamp, strlen(stamp)) | wbuf_addc(&sts, '\n') |
           wbuf_add(&sts, scope, strlen(scope)) | wbuf_addc(&sts, '\n') | wbuf_add(&sts, creq_hex, 64);
    bad |= wbuf_add(&key, "AWS4", 4) | wbuf_add(&key, p->secret, strlen(p->secret));
    /* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), service), "aws4_request") */
    if (!bad)
        bad = hmac(k1, key.data, key.len, date, strlen(date)) | hmac(k2, k1, 32, p->region, strlen(p->region)) |
              hmac(k3, k2, 32, p->service, strlen(p->service)) | hmac(k4, k3, 32, "aws4_request", 12) |
              hmac(sig, k4, 32, (const char *)sts.data, sts.len);
    hex_of(sig_hex, sig, 32);

    if (!bad) {
        bad |= wbuf_add(out, "https://", 8) | wbuf_add(out, p->host, strlen(p->host)) | wbuf_add(out, "/?", 2) |
               wbuf_add(out, cq.data, cq.len) | wbuf_add(out, "&X-Amz-Signature=", 17) | wbuf_add(out, sig_hex, 64);
        if (p->user_agent)
            bad |= wbuf_add(out, "&User-Agent=", 12) | uri_encode(out, p->user_agent);
    }
    if (key.data)
        OPENSSL_cleanse(key.data, key.len);
    OPENSSL_cleanse(k1, 32), OPENSSL_cleanse(k2, 32), OPENSSL_cleanse(k3, 32), OPENSSL_cleanse(k4, 32);
    wbuf_free(&cq), wbuf_free(&creq), wbuf_free(&sts), wbuf_free(&key);
    return bad ? -1 : 0;
}

int base64url_nopad(wbuf *out, const void *p, size_t n)
{
    size_t cap = 4 * ((n + 2) / 3) + 1;
    if (wbuf_grow(out, cap))
        return -1;
    char *dst = (char *)out->data + out->len;
    int len = EVP_EncodeBlock((unsigned char *)dst, p, (int)n);
    if (len < 0)
        return -1;
    while (len > 0 && dst[len - 1] == '=')
        len--;
    for (int i = 0; i < len; i++)
        dst[i] = dst[i] == '+' ? '-' : dst[i] == '/' ? '_' : dst[i];
    out->len += (size_t)len;
    return 0;
}
