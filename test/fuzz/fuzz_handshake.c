/*
 * libFuzzer target: the forward protocol handshake verifier
 * (fwd_auth_check_ping), i.e. everything an unauthenticated peer can make
 * weir parse before it has proven anything.
 *
 * Input: byte 0 picks one of three <security> configurations (shared key
 * only; user auth + a <client> host rule + previous_shared_key; anonymous
 * sources denied with IPv4/IPv6 network rules), byte 1 the peer address,
 * the rest is the client's first message. The session nonce and auth salt
 * are fixed (00..0f, 10..1f) so that seeds can hold valid PINGs and the
 * fuzzer reaches the success path.
 *
 * Checked on every input: exactly one well-formed PONG is produced, its
 * boolean matches the result, a refusal carries no hostname or digest, a
 * success carries self_hostname and a 128-character digest, and the
 * strings kept for the log are printable ASCII.
 *
 * Built and run (clang, ASan + UBSan, every library source linked in) by
 *   FUZZ_ONLY=handshake scripts/fuzz.sh 60
 * on a copy of test/fuzz/corpus/handshake.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "lib/mp.h"
#include "lib/wbuf.h"
#include "config/conf.h"
#include "forward-protocol/fwd_auth.h"

static const char *const configs[3] = {
    "<security>\n"
    "  self_hostname server.example\n"
    "  shared_key secret\n"
    "</security>\n",

    "<security>\n"
    "  self_hostname server.example\n"
    "  shared_key secret\n"
    "  previous_shared_key old\n"
    "  user_auth true\n"
    "  <user>\n    username alice\n    password pw\n  </user>\n"
    "  <user>\n    username bob\n    password hunter2\n  </user>\n"
    "  <client>\n    host 127.0.0.1\n    shared_key k2\n    users alice\n  </client>\n"
    "</security>\n",

    "<security>\n"
    "  self_hostname server.example\n"
    "  shared_key secret\n"
    "  allow_anonymous_source false\n"
    "  user_auth true\n"
    "  <user>\n    username alice\n    password pw\n  </user>\n"
    "  <client>\n    network 10.0.0.0/8\n  </client>\n"
    "  <client>\n    network fd00::/8\n    shared_key v6key\n  </client>\n"
    "  <client>\n    network 192.168.7.0/24\n    users alice\n  </client>\n"
    "</security>\n",
};

static fwd_auth *auth[3];
static conf_node *roots[3];
static struct sockaddr_storage peers[8];

static void set4(struct sockaddr_storage *ss, const char *ip)
{
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    inet_pton(AF_INET, ip, &a->sin_addr);
}

static void set6(struct sockaddr_storage *ss, const char *ip)
{
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    inet_pton(AF_INET6, ip, &a->sin6_addr);
}

static void init(void)
{
    for (int i = 0; i < 3; i++) {
        conf_errors errs = {0};
        roots[i] = conf_parse_string(configs[i], "fuzz.conf", &errs);
        auth[i] = roots[i] ? fwd_auth_create(roots[i]->children[0], &errs) : NULL;
        if (!auth[i] || errs.n)
            abort();
        conf_errors_free(&errs);
    }
    memset(peers, 0, sizeof peers);
    set4(&peers[0], "127.0.0.1");
    set4(&peers[1], "10.1.2.3");
    set4(&peers[2], "192.168.7.5");
    set4(&peers[3], "11.0.0.1");
    set6(&peers[4], "::1");
    set6(&peers[5], "fd00::5");
    set6(&peers[6], "::ffff:10.0.0.9");
    peers[7].ss_family = AF_UNIX;
}

static void check_printable(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        abort(); /* not terminated */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '\'')
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!auth[0])
        init();
    if (size < 2)
        return 0;
    const fwd_auth *a = auth[data[0] % 3];
    const struct sockaddr *peer = (const struct sockaddr *)&peers[data[1] % 8];
    fwd_auth_session s;
    for (int i = 0; i < 16; i++) {
        s.nonce[i] = (uint8_t)i;
        s.salt[i] = (uint8_t)(0x10 + i);
    }
    /* a copy of exactly the message, so ASan sees any read past its end */
    size_t len = size - 2;
    uint8_t *msg = malloc(len ? len : 1);
    if (!msg)
        return 0;
    memcpy(msg, data + 2, len);

    wbuf out = {.max = 1 << 16};
    fwd_auth_result r;
    int code = fwd_auth_check_ping(a, &s, peer, msg, len, &out, &r);
    if (code != r.code || code < FWD_AUTH_OK || code > FWD_AUTH_INTERNAL)
        abort();
    check_printable(r.hostname, sizeof r.hostname);
    check_printable(r.username, sizeof r.username);
    if (strnlen(r.reason, sizeof r.reason) == sizeof r.reason || strnlen(r.detail, sizeof r.detail) == sizeof r.detail)
        abort();
    if ((code == FWD_AUTH_OK) != (r.reason[0] == 0))
        abort();

    /* exactly one PONG: ["PONG", ok, reason, host, digest] */
    const uint8_t *p = out.data, *end = out.data + out.len;
    const uint8_t *q = p;
    if (!out.len || mp_skip(&q, end, 4) != MP_OK || q != end)
        abort();
    mp_obj o, e[5];
    if (mp_read(&p, end, &o) != MP_OK || o.type != MP_ARRAY || o.len != 5)
        abort();
    for (int i = 0; i < 5; i++)
        if (mp_read(&p, end, &e[i]) != MP_OK)
            abort();
    if (e[0].type != MP_STR || e[0].len != 4 || memcmp(e[0].ptr, "PONG", 4) != 0)
        abort();
    if (e[1].type != MP_BOOL || e[1].v.b != (code == FWD_AUTH_OK))
        abort();
    if (e[2].type != MP_STR || e[3].type != MP_STR || e[4].type != MP_STR)
        abort();
    if (e[2].len != strlen(r.reason) || (e[2].len && memcmp(e[2].ptr, r.reason, e[2].len) != 0))
        abort();
    if (code == FWD_AUTH_OK) {
        if (e[3].len != strlen(a->self_hostname) || memcmp(e[3].ptr, a->self_hostname, e[3].len) != 0 ||
            e[4].len != FWD_AUTH_HEX_LEN)
            abort();
    } else if (e[3].len || e[4].len) {
        abort();
    }
    wbuf_free(&out);
    free(msg);
    return 0;
}
