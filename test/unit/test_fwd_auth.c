/* Unit tests: forward-protocol shared-key handshake (fwd_auth): the test
 * vectors of shared/reference/forward-protocol.md, HELO encoding, the PING
 * verifier's outcomes, <client> rules and <security> configuration errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "lib/mp.h"
#include "lib/wbuf.h"
#include "config/conf.h"
#include "forward-protocol/fwd_auth.h"

/* ---- fixtures ------------------------------------------------------------------ */

static const char VEC_SALT[] = "0123456789abcdef0123456789abcdef";
static const char VEC_PING[] = "3a680037d3979b4f789647cd22e7e55f2197791eb498799823c424e2213124ed63938d1c422f50e08ec02957ef44df338e46c77e8ea164b0dde6d64e171b30df";
static const char VEC_PONG[] = "3389a63bef56054281d75fb7b05965b0d1b1ea9eba25b4594ed8e06a02e725af1fbf401cdbe697423c388ac1948566570a6f592284a536370ca36a5ccf88cbbd";
static const char VEC_PASS[] = "175443d1726b2836999b8b7b54c1fcf0a2ec1071f20fbec9f6e0a7594cf70f208e7ed315db82d7e4f45981d04990e9b9b46ea8f69444a5cf5e25601d72aa83e5";

/* nonce 00..0f, auth salt 10..1f: the vectors' values */
static fwd_auth_session vec_session(void)
{
    fwd_auth_session s;
    for (int i = 0; i < 16; i++) {
        s.nonce[i] = (uint8_t)i;
        s.salt[i] = (uint8_t)(0x10 + i);
    }
    return s;
}

static conf_node *g_root;

/* A fwd_auth from the text of a <security> section (the only top-level node). */
static fwd_auth *auth_from(const char *text, conf_errors *errs)
{
    conf_free(g_root);
    g_root = conf_parse_string(text, "t.conf", errs);
    assert_non_null(g_root);
    assert_true(g_root->nchildren >= 1);
    return fwd_auth_create(g_root->children[0], errs);
}

static fwd_auth *auth_ok(const char *text)
{
    conf_errors errs = {0};
    fwd_auth *a = auth_from(text, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "unexpected config error: %s\n", errs.msgs[i]);
    assert_int_equal(errs.n, 0);
    assert_non_null(a);
    conf_errors_free(&errs);
    return a;
}

static const char *BASIC = "<security>\n"
                           "  self_hostname server.example\n"
                           "  shared_key secret\n"
                           "</security>\n";

static const char *USERS = "<security>\n"
                           "  self_hostname server.example\n"
                           "  shared_key secret\n"
                           "  user_auth true\n"
                           "  <user>\n    username alice\n    password pw\n  </user>\n"
                           "  <user>\n    username bob\n    password hunter2\n  </user>\n"
                           "</security>\n";

static struct sockaddr_storage addr4(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, ip, &a->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage addr6(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
    return ss;
}

/* A PING as a client computes it. salt_bin: encode the salt as bin. */
typedef struct ping_spec {
    const char *host;
    const void *salt;
    size_t salt_len;
    const char *key;      /* NULL: use `digest` as given */
    const char *digest;
    const char *user, *password; /* password NULL: "" digest */
    int salt_bin;
    int elements;         /* 0: 6 */
} ping_spec;

static void build_ping(wbuf *b, const fwd_auth_session *s, const ping_spec *p)
{
    char dig[FWD_AUTH_HEX_LEN + 1] = "", pwd[FWD_AUTH_HEX_LEN + 1] = "";
    const void *salt = p->salt ? p->salt : VEC_SALT;
    size_t salt_len = p->salt ? p->salt_len : strlen(VEC_SALT);
    const char *host = p->host ? p->host : "client.example";
    if (p->key)
        assert_int_equal(fwd_auth_shared_key_digest(dig, salt, salt_len, host, strlen(host), s->nonce, 16, p->key,
                                                    strlen(p->key)),
                         0);
    else
        snprintf(dig, sizeof dig, "%s", p->digest ? p->digest : "");
    const char *user = p->user ? p->user : "";
    if (p->password)
        assert_int_equal(
            fwd_auth_password_digest(pwd, s->salt, 16, user, strlen(user), p->password, strlen(p->password)), 0);
    int n = p->elements ? p->elements : 6;
    mpw_array(b, (uint32_t)n);
    mpw_str(b, "PING", 4);
    mpw_str(b, host, strlen(host));
    if (p->salt_bin) {
        uint8_t h[2] = {0xc4, (uint8_t)salt_len};
        wbuf_add(b, h, 2);
        wbuf_add(b, salt, salt_len);
    } else {
        mpw_str(b, salt, salt_len);
    }
    mpw_str(b, dig, strlen(dig));
    if (n >= 5)
        mpw_str(b, user, strlen(user));
    if (n >= 6)
        mpw_str(b, pwd, strlen(pwd));
    for (int i = 6; i < n; i++)
        mpw_str(b, "extra", 5);
}

typedef struct pong {
    int ok;
    char reason[128], host[128], digest[160];
} pong;

static void parse_pong(const wbuf *b, pong *out)
{
    const uint8_t *p = b->data, *end = b->data + b->len;
    mp_obj o;
    memset(out, 0, sizeof *out);
    assert_int_equal(mp_read(&p, end, &o), MP_OK);
    assert_int_equal(o.type, MP_ARRAY);
    assert_int_equal(o.len, 5);
    assert_int_equal(mp_read(&p, end, &o), MP_OK);
    assert_int_equal(o.type, MP_STR);
    assert_memory_equal(o.ptr, "PONG", 4);
    assert_int_equal(mp_read(&p, end, &o), MP_OK);
    assert_int_equal(o.type, MP_BOOL);
    out->ok = o.v.b;
    char *dst[3] = {out->reason, out->host, out->digest};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(mp_read(&p, end, &o), MP_OK);
        assert_int_equal(o.type, MP_STR);
        assert_true(o.len < 128 + 20);
        memcpy(dst[i], o.ptr, o.len);
        dst[i][o.len] = 0;
    }
    assert_ptr_equal(p, end); /* exactly one object */
}

/* Run the verifier; returns the code and fills the PONG. */
static int check(const fwd_auth *a, const fwd_auth_session *s, const struct sockaddr_storage *peer,
                 const ping_spec *ps, pong *pg, fwd_auth_result *r)
{
    wbuf msg = {0}, out = {0};
    build_ping(&msg, s, ps);
    int code = fwd_auth_check_ping(a, s, (const struct sockaddr *)peer, msg.data, msg.len, &out, r);
    assert_int_equal(code, r->code);
    parse_pong(&out, pg);
    assert_int_equal(pg->ok, code == FWD_AUTH_OK);
    if (code != FWD_AUTH_OK) {
        assert_string_equal(pg->host, "");
        assert_string_equal(pg->digest, "");
        assert_string_equal(pg->reason, r->reason);
    }
    wbuf_free(&msg);
    wbuf_free(&out);
    return code;
}

/* ---- test vectors -------------------------------------------------------------- */

static void test_vector_ping_digest(void **st)
{
    fwd_auth_session s = vec_session();
    char out[FWD_AUTH_HEX_LEN + 1];
    assert_int_equal(fwd_auth_shared_key_digest(out, VEC_SALT, 32, "client.example", 14, s.nonce, 16, "secret", 6), 0);
    assert_string_equal(out, VEC_PING);
}

static void test_vector_pong_digest(void **st)
{
    fwd_auth_session s = vec_session();
    char out[FWD_AUTH_HEX_LEN + 1];
    assert_int_equal(fwd_auth_shared_key_digest(out, VEC_SALT, 32, "server.example", 14, s.nonce, 16, "secret", 6), 0);
    assert_string_equal(out, VEC_PONG);
}

static void test_vector_password_digest(void **st)
{
    fwd_auth_session s = vec_session();
    char out[FWD_AUTH_HEX_LEN + 1];
    assert_int_equal(fwd_auth_password_digest(out, s.salt, 16, "alice", 5, "pw", 2), 0);
    assert_string_equal(out, VEC_PASS);
}

/* ---- HELO ---------------------------------------------------------------------- */

static void check_helo(const wbuf *b, const fwd_auth_session *s, int user_auth, int keepalive)
{
    const uint8_t *p = b->data, *end = b->data + b->len;
    mp_obj o;
    assert_int_equal(mp_read(&p, end, &o), MP_OK);
    assert_int_equal(o.type, MP_ARRAY);
    assert_int_equal(o.len, 2);
    assert_int_equal(mp_read(&p, end, &o), MP_OK);
    assert_int_equal(o.type, MP_STR);
    assert_int_equal(o.len, 4);
    assert_memory_equal(o.ptr, "HELO", 4);
    assert_int_equal(mp_read(&p, end, &o), MP_OK);
    assert_int_equal(o.type, MP_MAP);
    assert_int_equal(o.len, 3);
    int seen = 0;
    for (int i = 0; i < 3; i++) {
        mp_obj k, v;
        assert_int_equal(mp_read(&p, end, &k), MP_OK);
        assert_int_equal(k.type, MP_STR);
        assert_int_equal(mp_read(&p, end, &v), MP_OK);
        if (k.len == 5 && !memcmp(k.ptr, "nonce", 5)) {
            assert_int_equal(v.type, MP_BIN);
            assert_int_equal(v.len, 16);
            assert_memory_equal(v.ptr, s->nonce, 16);
            seen |= 1;
        } else if (k.len == 4 && !memcmp(k.ptr, "auth", 4)) {
            if (user_auth) {
                assert_int_equal(v.type, MP_BIN);
                assert_int_equal(v.len, 16);
                assert_memory_equal(v.ptr, s->salt, 16);
            } else {
                assert_int_equal(v.type, MP_STR);
                assert_int_equal(v.len, 0);
            }
            seen |= 2;
        } else if (k.len == 9 && !memcmp(k.ptr, "keepalive", 9)) {
            assert_int_equal(v.type, MP_BOOL);
            assert_int_equal(v.v.b, keepalive);
            seen |= 4;
        } else {
            fail_msg("unexpected HELO key");
        }
    }
    assert_int_equal(seen, 7);
    assert_ptr_equal(p, end);
}

static void test_helo(void **st)
{
    fwd_auth_session s = vec_session();
    fwd_auth *a = auth_ok(BASIC);
    wbuf b = {0};
    assert_int_equal(fwd_auth_helo(a, &s, 1, &b), 0);
    check_helo(&b, &s, 0, 1);
    fwd_auth_free(a);
    b.len = 0;
    a = auth_ok(USERS);
    assert_int_equal(fwd_auth_helo(a, &s, 0, &b), 0);
    check_helo(&b, &s, 1, 0);
    fwd_auth_free(a);
    wbuf_free(&b);
}

static void test_session_random(void **st)
{
    fwd_auth_session a, b;
    assert_int_equal(fwd_auth_session_init(&a), 0);
    assert_int_equal(fwd_auth_session_init(&b), 0);
    assert_memory_not_equal(a.nonce, b.nonce, 16);
    assert_memory_not_equal(a.salt, b.salt, 16);
    assert_memory_not_equal(a.nonce, a.salt, 16);
}

/* ---- PING outcomes ------------------------------------------------------------- */

static void test_good_ping(void **st)
{
    fwd_auth *a = auth_ok(BASIC);
    fwd_auth_session s = vec_session();
    struct sockaddr_storage peer = addr4("10.0.0.5");
    pong pg;
    fwd_auth_result r;
    /* the vector's own PING digest, given literally */
    ping_spec ps = {.digest = VEC_PING};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_OK);
    assert_string_equal(pg.reason, "");
    assert_string_equal(pg.host, "server.example");
    assert_string_equal(pg.digest, VEC_PONG);
    assert_string_equal(r.hostname, "client.example");
    assert_int_equal(r.client, -1);
    assert_int_equal(r.previous_key, 0);
    /* salt as bin (some clients), same digest */
    ps.salt_bin = 1;
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_OK);
    assert_string_equal(pg.digest, VEC_PONG);
    fwd_auth_free(a);
}

static void test_fluent_bit_raw_salt(void **st)
{
    /* Fluent Bit: 16 raw random bytes as a str, not valid UTF-8 */
    static const uint8_t salt[16] = {0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0x01, 0x02,
                                     0xa0, 0xa1, 0xe2, 0x28, 0xa1, 0x90, 0x00, 0x7f};
    fwd_auth *a = auth_ok(BASIC);
    fwd_auth_session s = vec_session();
    struct sockaddr_storage peer = addr4("10.0.0.5");
    pong pg;
    fwd_auth_result r;
    ping_spec ps = {.salt = salt, .salt_len = sizeof salt, .key = "secret", .host = "fluent-bit"};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_OK);
    char want[FWD_AUTH_HEX_LEN + 1];
    fwd_auth_shared_key_digest(want, salt, 16, "server.example", 14, s.nonce, 16, "secret", 6);
    assert_string_equal(pg.digest, want);
    /* Fluent Bit also sends a username and password digest although the HELO
     * had an empty auth: ignored without user_auth */
    ps.user = "someone";
    ps.password = "whatever";
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_OK);
    fwd_auth_free(a);
}

static void test_bad_digest(void **st)
{
    fwd_auth *a = auth_ok(BASIC);
    fwd_auth_session s = vec_session();
    struct sockaddr_storage peer = addr4("10.0.0.5");
    pong pg;
    fwd_auth_result r;
    ping_spec ps = {.key = "not-the-secret"};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    assert_string_equal(pg.reason, "shared_key mismatch");
    /* one flipped hex digit */
    char d[FWD_AUTH_HEX_LEN + 1];
    strcpy(d, VEC_PING);
    d[77] = d[77] == 'a' ? 'b' : 'a';
    ps = (ping_spec){.digest = d};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    /* uppercase hex is not what Fluentd compares against */
    strcpy(d, VEC_PING);
    for (char *x = d; *x; x++)
        if (*x >= 'a' && *x <= 'f')
            *x = (char)(*x - 32);
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    /* wrong length: a prefix, empty */
    char pre[65];
    memcpy(pre, VEC_PING, 64);
    pre[64] = 0;
    ps = (ping_spec){.digest = pre};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    assert_non_null(strstr(r.detail, "64 characters"));
    ps = (ping_spec){.digest = ""};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    /* another session's nonce */
    fwd_auth_session other = s;
    other.nonce[0] ^= 1;
    ps = (ping_spec){.digest = VEC_PING};
    assert_int_equal(check(a, &other, &peer, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    fwd_auth_free(a);
}

static void test_users(void **st)
{
    fwd_auth *a = auth_ok(USERS);
    fwd_auth_session s = vec_session();
    struct sockaddr_storage peer = addr4("10.0.0.5");
    pong pg;
    fwd_auth_result r;
    ping_spec ps = {.key = "secret", .user = "alice", .password = "pw"};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_OK);
    assert_string_equal(r.username, "alice");
    ps = (ping_spec){.key = "secret", .user = "bob", .password = "hunter2"};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_OK);

    /* bad password */
    ps = (ping_spec){.key = "secret", .user = "alice", .password = "hunter2"};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_BAD_PASSWORD);
    assert_string_equal(pg.reason, "username/password mismatch");
    assert_non_null(strstr(r.detail, "wrong password for user 'alice'"));
    /* unknown user: the same reason on the wire, precise in the log */
    ps = (ping_spec){.key = "secret", .user = "mallory", .password = "pw"};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_UNKNOWN_USER);
    assert_string_equal(pg.reason, "username/password mismatch");
    assert_non_null(strstr(r.detail, "unknown user 'mallory'"));
    /* no password digest at all */
    ps = (ping_spec){.key = "secret", .user = "alice"};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_BAD_PASSWORD);
    /* usernames are exact: no prefix match */
    ps = (ping_spec){.key = "secret", .user = "alic", .password = "pw"};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_UNKNOWN_USER);
    /* the shared key is checked first */
    ps = (ping_spec){.key = "wrong", .user = "alice", .password = "pw"};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    /* the password digest uses the session's auth salt */
    fwd_auth_session other = s;
    other.salt[3] ^= 0x40;
    wbuf msg = {0}, out = {0};
    ps = (ping_spec){.key = "secret", .user = "alice", .password = "pw"};
    build_ping(&msg, &other, &ps);
    assert_int_equal(fwd_auth_check_ping(a, &s, (struct sockaddr *)&peer, msg.data, msg.len, &out, &r),
                     FWD_AUTH_BAD_PASSWORD);
    wbuf_free(&msg);
    wbuf_free(&out);
    fwd_auth_free(a);
}

static int check_raw(const fwd_auth *a, const uint8_t *msg, size_t len, fwd_auth_result *r)
{
    fwd_auth_session s = vec_session();
    struct sockaddr_storage peer = addr4("10.0.0.5");
    wbuf out = {0};
    int code = fwd_auth_check_ping(a, &s, (struct sockaddr *)&peer, msg, len, &out, r);
    pong pg;
    parse_pong(&out, &pg);
    assert_int_equal(pg.ok, code == FWD_AUTH_OK);
    wbuf_free(&out);
    return code;
}

static void test_malformed(void **st)
{
    fwd_auth *a = auth_ok(BASIC);
    fwd_auth_session s = vec_session();
    struct sockaddr_storage peer = addr4("10.0.0.5");
    pong pg;
    fwd_auth_result r;
    /* 5 and 7 elements */
    ping_spec ps = {.key = "secret", .elements = 5};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_BAD_MESSAGE);
    assert_string_equal(pg.reason, "invalid ping message");
    assert_non_null(strstr(r.detail, "PING has 5 elements, expected 6"));
    ps.elements = 7;
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_BAD_MESSAGE);
    assert_non_null(strstr(r.detail, "7 elements"));

    wbuf b = {0};
    /* a forward request instead of a PING */
    mpw_array(&b, 3);
    mpw_str(&b, "app.log", 7);
    mpw_uint(&b, 1700000000);
    mpw_map(&b, 0);
    assert_int_equal(check_raw(a, b.data, b.len, &r), FWD_AUTH_BAD_MESSAGE);
    assert_string_equal(r.reason, "invalid ping message");
    assert_non_null(strstr(r.detail, "starting with 'app.log' (a forward request before the handshake?)"));
    /* a heartbeat */
    b.len = 0;
    mpw_nil(&b);
    assert_int_equal(check_raw(a, b.data, b.len, &r), FWD_AUTH_BAD_MESSAGE);
    assert_non_null(strstr(r.detail, "nil"));
    /* a map, an empty array, garbage, truncated */
    b.len = 0;
    mpw_map(&b, 0);
    assert_int_equal(check_raw(a, b.data, b.len, &r), FWD_AUTH_BAD_MESSAGE);
    b.len = 0;
    mpw_array(&b, 0);
    assert_int_equal(check_raw(a, b.data, b.len, &r), FWD_AUTH_BAD_MESSAGE);
    static const uint8_t junk[] = {0xc1, 0x00};
    assert_int_equal(check_raw(a, junk, sizeof junk, &r), FWD_AUTH_BAD_MESSAGE);
    b.len = 0;
    build_ping(&b, &s, &(ping_spec){.key = "secret"});
    assert_int_equal(check_raw(a, b.data, b.len - 10, &r), FWD_AUTH_BAD_MESSAGE);
    assert_non_null(strstr(r.detail, "truncated"));
    assert_int_equal(check_raw(a, b.data, b.len, &r), FWD_AUTH_OK);
    /* an element of the wrong type */
    b.len = 0;
    mpw_array(&b, 6);
    mpw_str(&b, "PING", 4);
    mpw_str(&b, "h", 1);
    mpw_str(&b, "s", 1);
    mpw_uint(&b, 7);
    mpw_str(&b, "", 0);
    mpw_str(&b, "", 0);
    assert_int_equal(check_raw(a, b.data, b.len, &r), FWD_AUTH_BAD_MESSAGE);
    assert_non_null(strstr(r.detail, "element 3 (shared key digest) is an integer"));
    /* "PING" in a different case, or as bin */
    b.len = 0;
    mpw_array(&b, 6);
    mpw_str(&b, "ping", 4);
    for (int i = 0; i < 5; i++)
        mpw_str(&b, "", 0);
    assert_int_equal(check_raw(a, b.data, b.len, &r), FWD_AUTH_BAD_MESSAGE);
    wbuf_free(&b);
    fwd_auth_free(a);
}

static void test_printable_names(void **st)
{
    fwd_auth *a = auth_ok(BASIC);
    fwd_auth_session s = vec_session();
    struct sockaddr_storage peer = addr4("10.0.0.5");
    pong pg;
    fwd_auth_result r;
    /* control characters and quotes never reach the log as such */
    ping_spec ps = {.key = "x", .host = "evil\n'host\x1b[31m"};
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    assert_string_equal(r.hostname, "evil??host?[31m");
    char longname[300];
    memset(longname, 'h', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    ps.host = longname;
    assert_int_equal(check(a, &s, &peer, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    assert_true(strlen(r.hostname) < sizeof r.hostname);
    assert_non_null(strstr(r.hostname, "..."));
    fwd_auth_free(a);
}

/* ---- <client> rules ------------------------------------------------------------ */

static void test_client_host_rule(void **st)
{
    fwd_auth *a = auth_ok("<security>\n"
                          "  self_hostname server.example\n"
                          "  shared_key secret\n"
                          "  <client>\n    host 127.0.0.1\n    shared_key k2\n  </client>\n"
                          "</security>\n");
    fwd_auth_session s = vec_session();
    pong pg;
    fwd_auth_result r;
    struct sockaddr_storage lo = addr4("127.0.0.1"), other = addr4("10.1.1.1");
    /* the listed host must use its own key */
    ping_spec ps = {.key = "k2"};
    assert_int_equal(check(a, &s, &lo, &ps, &pg, &r), FWD_AUTH_OK);
    assert_int_equal(r.client, 0);
    char want[FWD_AUTH_HEX_LEN + 1];
    fwd_auth_shared_key_digest(want, VEC_SALT, 32, "server.example", 14, s.nonce, 16, "k2", 2);
    assert_string_equal(pg.digest, want); /* the PONG proves the client's key */
    ps.key = "secret";
    assert_int_equal(check(a, &s, &lo, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    /* anonymous hosts (allowed by default) use the global key */
    assert_int_equal(check(a, &s, &other, &ps, &pg, &r), FWD_AUTH_OK);
    assert_int_equal(r.client, -1);
    ps.key = "k2";
    assert_int_equal(check(a, &s, &other, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    /* an IPv4-mapped IPv6 peer (listener on ::) matches the IPv4 rule */
    struct sockaddr_storage mapped = addr6("::ffff:127.0.0.1");
    assert_int_equal(check(a, &s, &mapped, &ps, &pg, &r), FWD_AUTH_OK);
    assert_int_equal(r.client, 0);
    fwd_auth_free(a);
}

static void test_client_network_rule(void **st)
{
    fwd_auth *a = auth_ok("<security>\n"
                          "  self_hostname server.example\n"
                          "  shared_key secret\n"
                          "  allow_anonymous_source false\n"
                          "  <client>\n    network 10.1.2.3/8\n  </client>\n"
                          "  <client>\n    network 192.168.7.0/25\n    shared_key lan\n  </client>\n"
                          "  <client>\n    network fd00::/8\n  </client>\n"
                          "</security>\n");
    fwd_auth_session s = vec_session();
    pong pg;
    fwd_auth_result r;
    ping_spec ps = {.key = "secret"};
    struct sockaddr_storage p;
    p = addr4("10.200.3.4"); /* inside 10.0.0.0/8 (address masked) */
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_OK);
    assert_int_equal(r.client, 0);
    p = addr4("11.0.0.1");
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_ANONYMOUS);
    assert_string_equal(pg.reason, "anonymous source host '11.0.0.1' denied");
    p = addr4("192.168.7.127"); /* last of the /25 */
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    ps.key = "lan";
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_OK);
    assert_int_equal(r.client, 1);
    p = addr4("192.168.7.128"); /* first outside */
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_ANONYMOUS);
    ps.key = "secret";
    p = addr6("fd12:3456::1");
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_OK);
    assert_int_equal(r.client, 2);
    p = addr6("fe80::1");
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_ANONYMOUS);
    assert_string_equal(pg.reason, "anonymous source host 'fe80::1' denied");
    p = addr6("::ffff:10.9.9.9");
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_OK);
    /* the anonymous check comes before the digest */
    ps.key = "wrong";
    p = addr4("11.0.0.1");
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_ANONYMOUS);
    fwd_auth_free(a);
}

static void test_client_users(void **st)
{
    fwd_auth *a = auth_ok("<security>\n"
                          "  self_hostname server.example\n"
                          "  shared_key secret\n"
                          "  user_auth true\n"
                          "  <user>\n    username alice\n    password pw\n  </user>\n"
                          "  <user>\n    username bob\n    password hunter2\n  </user>\n"
                          "  <client>\n    network 127.0.0.0/8\n    users alice\n  </client>\n"
                          "</security>\n");
    fwd_auth_session s = vec_session();
    pong pg;
    fwd_auth_result r;
    struct sockaddr_storage lo = addr4("127.0.0.2"), other = addr4("10.0.0.1");
    ping_spec ps = {.key = "secret", .user = "alice", .password = "pw"};
    assert_int_equal(check(a, &s, &lo, &ps, &pg, &r), FWD_AUTH_OK);
    ps = (ping_spec){.key = "secret", .user = "bob", .password = "hunter2"};
    assert_int_equal(check(a, &s, &lo, &ps, &pg, &r), FWD_AUTH_USER_DENIED);
    assert_string_equal(pg.reason, "username/password mismatch");
    assert_non_null(strstr(r.detail, "user 'bob' is not in the users of the matching <client>"));
    /* elsewhere (anonymous) every <user> may log in */
    assert_int_equal(check(a, &s, &other, &ps, &pg, &r), FWD_AUTH_OK);
    fwd_auth_free(a);
}

static void test_previous_shared_key(void **st)
{
    fwd_auth *a = auth_ok("<security>\n"
                          "  self_hostname server.example\n"
                          "  shared_key new-key\n"
                          "  previous_shared_key old-key\n"
                          "  <client>\n    host 127.0.0.1\n    shared_key own\n  </client>\n"
                          "</security>\n");
    fwd_auth_session s = vec_session();
    pong pg;
    fwd_auth_result r;
    struct sockaddr_storage p = addr4("10.0.0.1");
    char want[FWD_AUTH_HEX_LEN + 1];
    ping_spec ps = {.key = "new-key"};
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_OK);
    assert_int_equal(r.previous_key, 0);
    ps.key = "old-key";
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_OK);
    assert_int_equal(r.previous_key, 1);
    /* the PONG is computed with the key the client used, or it would refuse it */
    fwd_auth_shared_key_digest(want, VEC_SALT, 32, "server.example", 14, s.nonce, 16, "old-key", 7);
    assert_string_equal(pg.digest, want);
    ps.key = "other";
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    /* a <client> with its own key does not inherit the global previous key */
    p = addr4("127.0.0.1");
    ps.key = "old-key";
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_BAD_KEY);
    ps.key = "own";
    assert_int_equal(check(a, &s, &p, &ps, &pg, &r), FWD_AUTH_OK);
    fwd_auth_free(a);
}

static void test_match_client(void **st)
{
    fwd_auth *a = auth_ok("<security>\n"
                          "  self_hostname s\n"
                          "  shared_key k\n"
                          "  <client>\n    network 0.0.0.0/0\n  </client>\n"
                          "</security>\n");
    struct sockaddr_storage p = addr4("203.0.113.9");
    assert_non_null(fwd_auth_match_client(a, (struct sockaddr *)&p));
    p = addr6("2001:db8::1"); /* an IPv4 rule never matches IPv6 */
    assert_null(fwd_auth_match_client(a, (struct sockaddr *)&p));
    struct sockaddr_storage unix_peer = {.ss_family = AF_UNIX};
    assert_null(fwd_auth_match_client(a, (struct sockaddr *)&unix_peer));
    fwd_auth_free(a);
}

/* ---- configuration errors ------------------------------------------------------ */

static void expect_error(const char *text, const char *where, const char *msg)
{
    conf_errors errs = {0};
    fwd_auth *a = auth_from(text, &errs);
    assert_null(a);
    int found = 0;
    for (size_t i = 0; i < errs.n; i++)
        if (strstr(errs.msgs[i], msg) && !strncmp(errs.msgs[i], where, strlen(where)))
            found = 1;
    if (!found)
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "  got: %s\n", errs.msgs[i]);
    assert_true(found);
    conf_errors_free(&errs);
}

static void test_config_errors(void **st)
{
    expect_error("<security>\n  shared_key k\n</security>\n", "t.conf:1:",
                 "missing required parameter 'self_hostname' in <security>");
    expect_error("<security>\n  self_hostname s\n</security>\n", "t.conf:1:",
                 "missing required parameter 'shared_key'");
    expect_error("<security>\n  self_hostname s\n  shared_key \"\"\n</security>\n", "t.conf:3:",
                 "shared_key must not be empty");
    expect_error("<security>\n  self_hostname s\n  shared_key k\n  user_auth true\n</security>\n", "t.conf:4:",
                 "user_auth is true but no <user> is defined");
    expect_error("<security>\n  self_hostname s\n  shared_key k\n  allow_anonymous_source false\n</security>\n",
                 "t.conf:4:", "no <client> is defined");
    expect_error("<security>\n  self_hostname s\n  shared_key k\n  <client>\n    host 127.0.0.1\n"
                 "    network 10.0.0.0/8\n  </client>\n</security>\n",
                 "t.conf:4:", "both 'host' and 'network' are specified for <client>");
    expect_error("<security>\n  self_hostname s\n  shared_key k\n  <client>\n    shared_key x\n  </client>\n"
                 "</security>\n",
                 "t.conf:4:", "either 'host' or 'network' must be specified");
    expect_error("<security>\n  self_hostname s\n  shared_key k\n  <client>\n    network 10.0.0.0/33\n"
                 "  </client>\n</security>\n",
                 "t.conf:5:", "network '10.0.0.0/33' address format is invalid");
    expect_error("<security>\n  self_hostname s\n  shared_key k\n  <client>\n    network not-an-ip\n"
                 "  </client>\n</security>\n",
                 "t.conf:5:", "network 'not-an-ip' address format is invalid");
    expect_error("<security>\n  self_hostname s\n  shared_key k\n  <client>\n    host no-such-host.invalid\n"
                 "  </client>\n</security>\n",
                 "t.conf:5:", "host 'no-such-host.invalid' cannot be resolved");
    expect_error("<security>\n  self_hostname s\n  shared_key k\n  user_auth true\n"
                 "  <user>\n    username a\n    password p\n  </user>\n"
                 "  <client>\n    network 10.0.0.0/8\n    users a,zed\n  </client>\n</security>\n",
                 "t.conf:11:", "user 'zed' in <client> is not defined by any <user>");
    expect_error("<security>\n  self_hostname s\n  shared_key k\n  user_auth true\n"
                 "  <user>\n    username a\n    password p\n  </user>\n"
                 "  <user>\n    username a\n    password q\n  </user>\n</security>\n",
                 "t.conf:10:", "user 'a' is defined twice");
    expect_error("<security>\n  self_hostname s\n  shared_key k\n  <user>\n    username a\n  </user>\n"
                 "</security>\n",
                 "t.conf:4:", "missing required parameter 'password' in <user>");
    expect_error("<security>\n  self_hostname s\n  shared_key k\n  sharedkey x\n</security>\n", "t.conf:4:",
                 "unknown parameter 'sharedkey' in <security>; did you mean 'shared_key'?");
    expect_error("<security>\n  self_hostname s\n  shared_key k\n  <users>\n  </users>\n</security>\n", "t.conf:4:",
                 "unknown section <users> in <security>; did you mean <user>?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector_ping_digest),
        cmocka_unit_test(test_vector_pong_digest),
        cmocka_unit_test(test_vector_password_digest),
        cmocka_unit_test(test_helo),
        cmocka_unit_test(test_session_random),
        cmocka_unit_test(test_good_ping),
        cmocka_unit_test(test_fluent_bit_raw_salt),
        cmocka_unit_test(test_bad_digest),
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_printable_names),
        cmocka_unit_test(test_client_host_rule),
        cmocka_unit_test(test_client_network_rule),
        cmocka_unit_test(test_client_users),
        cmocka_unit_test(test_previous_shared_key),
        cmocka_unit_test(test_match_client),
        cmocka_unit_test(test_config_errors),
    };
    int rc = cmocka_run_group_tests_name("fwd_auth", tests, NULL, NULL);
    conf_free(g_root);
    return rc;
}
