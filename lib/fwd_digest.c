/* lib/fwd_digest.c: see fwd_digest.h. */
#include "lib/fwd_digest.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

int fwd_digest_hex(char out[FWD_DIGEST_HEX_LEN + 1], const void *const *parts, const size_t *lens, int n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha512(), NULL);
    for (int i = 0; ok && i < n; i++)
        ok = EVP_DigestUpdate(ctx, parts[i], lens[i]);
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen == 64;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        out[0] = 0;
        return -1;
    }
    for (unsigned i = 0; i < 64; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[FWD_DIGEST_HEX_LEN] = 0;
    OPENSSL_cleanse(md, sizeof md);
    return 0;
}
