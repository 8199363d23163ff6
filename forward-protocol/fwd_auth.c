/*
 * forward-protocol/fwd_auth.c: shared-key handshake and user authentication
 * of the forward protocol (see fwd_auth.h and shared/reference/forward-protocol.md).
 */
#include "fwd_auth.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "lib/array.h"
#include "lib/fwd_digest.h"
#include "lib/mp.h"

/* ---- configuration ------------------------------------------------------------ */

const conf_spec fwd_security_spec[] = {
    {"self_hostname", CONF_STR, NULL, 1, offsetof(fwd_auth, self_hostname), NULL,
     "weir's name in the PONG. Must differ from the clients' own hostnames (Fluentd and the npm client refuse a "
     "PONG carrying their own name)"},
    {"shared_key", CONF_STR, NULL, 1, offsetof(fwd_auth, shared_key), NULL,
     "the key the clients' digests must prove; not empty"},
    {"previous_shared_key", CONF_STR, NULL, 0, offsetof(fwd_auth, previous_shared_key), NULL,
     "weir: a second accepted key, for rotation without a flag day"},
    {"user_auth", CONF_BOOL, "false", 0, offsetof(fwd_auth, user_auth), NULL,
     "also require a `<user>`'s username and password (needs at least one `<user>`)"},
    {"allow_anonymous_source", CONF_BOOL, "true", 0, offsetof(fwd_auth, allow_anonymous_source), NULL,
     "`false`: refuse clients whose address matches no `<client>` (needs at least one `<client>`)"},
    {"user", CONF_SECTION, NULL, 0, 0, NULL, "any number: a username and password, checked with `user_auth true`"},
    {"client", CONF_SECTION, NULL, 0, 0, NULL,
     "any number, first match wins: which addresses may connect, with their own keys and users"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const conf_spec fwd_user_spec[] = {
    {"username", CONF_STR, NULL, 1, offsetof(fwd_auth_user, username), NULL,
     "the user's name; unique among the `<user>` sections"},
    {"password", CONF_STR, NULL, 1, offsetof(fwd_auth_user, password), NULL, "the user's password"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const conf_spec fwd_client_spec[] = {
    {"host", CONF_STR, NULL, 0, offsetof(fwd_auth_client, host), NULL,
     "a host name or address, resolved once at start-up (all its addresses); exactly one of `host` and `network`"},
    {"network", CONF_STR, NULL, 0, offsetof(fwd_auth_client, network), NULL,
     "an address or CIDR: `10.0.0.0/8`, `192.168.1.7`, `fd00::/8` (IPv4-mapped IPv6 peers match IPv4 rules)"},
    {"shared_key", CONF_STR, NULL, 0, offsetof(fwd_auth_client, shared_key), NULL,
     "this client's key (default: `<security>`'s `shared_key` and `previous_shared_key`)"},
    {"previous_shared_key", CONF_STR, NULL, 0, offsetof(fwd_auth_client, previous_shared_key), NULL,
     "weir: a second key for this client during a rotation"},
    {"users", CONF_ARRAY, NULL, 0, offsetof(fwd_auth_client, users), NULL,
     "usernames allowed from this client (`alice,bob` or a JSON array), each with a `<user>`; default: every "
     "`<user>`"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};


/* "10.0.0.0/8", "192.168.1.5", "fd00::/8", "::1": the address is masked to
 * its prefix, as Ruby's IPAddr does. 0 or -1. */
static int parse_net(const char *s, fwd_auth_net *n)
{
    char buf[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    if (alen == 0 || alen >= sizeof buf)
        return -1;
    memcpy(buf, s, alen);
    buf[alen] = 0;
    memset(n, 0, sizeof *n);
    int max;
    if (inet_pton(AF_INET, buf, n->addr) == 1) {
        n->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, n->addr) == 1) {
        n->family = AF_INET6;
        max = 128;
    } else {
        return -1;
    }
    n->prefix = max;
    if (slash) {
        const char *d = slash + 1;
        int v = 0;
        if (!*d || strlen(d) > 3)
            return -1;
        for (; *d; d++) {
            if (*d < '0' || *d > '9')
                return -1;
            v = v * 10 + (*d - '0');
        }
        if (v > max)
            return -1;
        n->prefix = v;
    }
    for (int bit = n->prefix; bit < max; bit++)
        n->addr[bit / 8] &= (uint8_t)~(0x80u >> (bit % 8));
    return 0;
}

static int resolve_host(fwd_auth_client *c, const char *host, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc != 0 || !ai) {
        snprintf(err, errlen, "%s", gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *x = ai; x; x = x->ai_next) {
        fwd_auth_net n = {.family = x->ai_family};
        if (x->ai_family == AF_INET) {
            memcpy(n.addr, &((struct sockaddr_in *)x->ai_addr)->sin_addr, 4);
            n.prefix = 32;
        } else if (x->ai_family == AF_INET6) {
            memcpy(n.addr, &((struct sockaddr_in6 *)x->ai_addr)->sin6_addr, 16);
            n.prefix = 128;
        } else {
            continue;
        }
        int dup = 0;
        for (size_t i = 0; i < c->nnets; i++)
            dup |= c->nets[i].family == n.family && !memcmp(c->nets[i].addr, n.addr, 16);
        if (dup)
            continue;
        if (ARRAY_APPEND(c->nets, c->nnets, n))
            break;
    }
    freeaddrinfo(ai);
    if (!c->nnets) {
        snprintf(err, errlen, "no IPv4 or IPv6 address");
        return -1;
    }
    return 0;
}

static const fwd_auth_user *find_user(const fwd_auth *a, const void *name, size_t len)
{
    for (size_t i = 0; i < a->nusers; i++)
        if (strlen(a->users[i].username) == len && memcmp(a->users[i].username, name, len) == 0)
            return &a->users[i];
    return NULL;
}

fwd_auth *fwd_auth_create(conf_node *sec, conf_errors *errs)
{
    size_t before = errs->n;
    fwd_auth *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    conf_bind(sec, fwd_security_spec, a, errs);
    if (sec->arg && *sec->arg)
        conf_errors_add(errs, sec->file, sec->line, "<security> takes no argument (got '%s')", sec->arg);
    if (a->self_hostname && !*a->self_hostname)
        conf_error_at(errs, sec, "self_hostname", "self_hostname must not be empty");
    if (a->shared_key && !*a->shared_key)
        conf_error_at(errs, sec, "shared_key", "shared_key must not be empty");
    if (a->previous_shared_key && !*a->previous_shared_key)
        conf_error_at(errs, sec, "previous_shared_key", "previous_shared_key must not be empty");

    for (size_t i = 0; i < sec->nchildren; i++) {
        conf_node *ch = sec->children[i];
        if (!strcmp(ch->name, "user")) {
            fwd_auth_user *u = ARRAY_PUSH(a->users, a->nusers);
            if (!u)
                continue;
            conf_bind(ch, fwd_user_spec, u, errs);
            if (u->username && !*u->username)
                conf_error_at(errs, ch, "username", "username must not be empty");
            if (u->username && find_user(a, u->username, strlen(u->username)) != u)
                conf_error_at(errs, ch, "username", "user '%s' is defined twice in <security>", u->username);
        } else if (!strcmp(ch->name, "client")) {
            fwd_auth_client *c = ARRAY_PUSH(a->clients, a->nclients);
            if (!c)
                continue;
            conf_bind(ch, fwd_client_spec, c, errs);
            if (c->host && c->network) {
                conf_errors_add(errs, ch->file, ch->line, "both 'host' and 'network' are specified for <client>");
            } else if (!c->host && !c->network) {
                conf_errors_add(errs, ch->file, ch->line, "either 'host' or 'network' must be specified for <client>");
            } else if (c->host) {
                char err[128];
                if (resolve_host(c, c->host, err, sizeof err)) {
                    conf_param *p = conf_get(ch, "host");
                    conf_errors_add(errs, p->file, p->line, "host '%s' cannot be resolved: %s", c->host, err);
                }
            } else {
                fwd_auth_net n;
                if (parse_net(c->network, &n) == 0 && (c->nets = malloc(sizeof n)) != NULL) {
                    c->nets[0] = n;
                    c->nnets = 1;
                } else {
                    conf_error_at(errs, ch, "network",
                           "network '%s' address format is invalid (expected ADDRESS or ADDRESS/PREFIX)", c->network);
                }
            }
            if (c->shared_key && !*c->shared_key)
                conf_error_at(errs, ch, "shared_key", "shared_key must not be empty");
        }
    }
    /* checks that need every <user> */
    for (size_t i = 0; i < a->nclients; i++) {
        fwd_auth_client *c = &a->clients[i];
        c->key = c->shared_key ? c->shared_key : a->shared_key;
        c->prev_key = c->shared_key ? c->previous_shared_key : a->previous_shared_key;
        for (char **u = c->users; u && *u; u++)
            if (!find_user(a, *u, strlen(*u))) {
                conf_node *ch = NULL;
                for (size_t k = 0, seen = 0; k < sec->nchildren; k++)
                    if (!strcmp(sec->children[k]->name, "client") && seen++ == i)
                        ch = sec->children[k];
                conf_error_at(errs, ch ? ch : sec, "users", "user '%s' in <client> is not defined by any <user>", *u);
            }
    }
    if (a->user_auth && a->nusers == 0)
        conf_error_at(errs, sec, "user_auth", "user_auth is true but no <user> is defined: every client would be refused");
    if (!a->allow_anonymous_source && a->nclients == 0)
        conf_error_at(errs, sec, "allow_anonymous_source",
               "allow_anonymous_source is false but no <client> is defined: every client would be refused");
    if (errs->n > before) {
        fwd_auth_free(a);
        return NULL;
    }
    return a;
}

void fwd_auth_free(fwd_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->nusers; i++) {
        if (a->users[i].password)
            OPENSSL_cleanse(a->users[i].password, strlen(a->users[i].password));
        conf_unbind(fwd_user_spec, &a->users[i]);
    }
    free(a->users);
    for (size_t i = 0; i < a->nclients; i++) {
        free(a->clients[i].nets);
        conf_unbind(fwd_client_spec, &a->clients[i]);
    }
    free(a->clients);
    if (a->shared_key)
        OPENSSL_cleanse(a->shared_key, strlen(a->shared_key));
    conf_unbind(fwd_security_spec, a);
    free(a);
}

/* ---- digests -------------------------------------------------------------------- */

/* the hex SHA-512 of the parts: lib/fwd_digest.c (the forward output computes the same) */
static int sha512_hex(char out[FWD_AUTH_HEX_LEN + 1], const void *const *parts, const size_t *lens, int n)
{
    return fwd_digest_hex(out, parts, lens, n);
}

int fwd_auth_shared_key_digest(char out[FWD_AUTH_HEX_LEN + 1], const void *salt, size_t salt_len, const void *host,
                               size_t host_len, const void *nonce, size_t nonce_len, const void *key, size_t key_len)
{
    const void *p[4] = {salt, host, nonce, key};
    size_t l[4] = {salt_len, host_len, nonce_len, key_len};
    return sha512_hex(out, p, l, 4);
}

int fwd_auth_password_digest(char out[FWD_AUTH_HEX_LEN + 1], const void *auth_salt, size_t salt_len,
                             const void *user, size_t user_len, const void *password, size_t password_len)
{
    const void *p[3] = {auth_salt, user, password};
    size_t l[3] = {salt_len, user_len, password_len};
    return sha512_hex(out, p, l, 3);
}

/* Constant-time check of a received hex digest against the expected one. The
 * length is not secret (always 128 for an honest client). */
static int digest_eq(const char *expected, const uint8_t *got, size_t got_len)
{
    return got_len == FWD_AUTH_HEX_LEN && CRYPTO_memcmp(expected, got, FWD_AUTH_HEX_LEN) == 0;
}

/* ---- session ------------------------------------------------------------------- */

int fwd_auth_session_init(fwd_auth_session *s)
{
    if (RAND_bytes(s->nonce, sizeof s->nonce) != 1 || RAND_bytes(s->salt, sizeof s->salt) != 1)
        return -1;
    return 0;
}

static int mpw_bin(wbuf *b, const void *p, size_t n)
{
    uint8_t h[2] = {0xc4, (uint8_t)n}; /* bin8: n < 256 here */
    return n > 255 || wbuf_add(b, h, 2) || wbuf_add(b, p, n) ? -1 : 0;
}

int fwd_auth_helo(const fwd_auth *a, const fwd_auth_session *s, int keepalive, wbuf *out)
{
    size_t len0 = out->len;
    int rc = mpw_array(out, 2) || mpw_str(out, "HELO", 4) || mpw_map(out, 3) || mpw_str(out, "nonce", 5) ||
             mpw_bin(out, s->nonce, sizeof s->nonce) || mpw_str(out, "auth", 4) ||
             (a->user_auth ? mpw_bin(out, s->salt, sizeof s->salt) : mpw_str(out, "", 0)) ||
             mpw_str(out, "keepalive", 9) || mpw_bool(out, keepalive);
    if (rc) {
        out->len = len0;
        return -1;
    }
    return 0;
}

/* ---- client rules ---------------------------------------------------------------- */

static int peer_addr(const struct sockaddr *sa, int *family, uint8_t addr[16])
{
    memset(addr, 0, 16);
    if (!sa)
        return -1;
    if (sa->sa_family == AF_INET) {
        *family = AF_INET;
        memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            *family = AF_INET;
            memcpy(addr, a6->s6_addr + 12, 4);
        } else {
            *family = AF_INET6;
            memcpy(addr, a6->s6_addr, 16);
        }
        return 0;
    }
    return -1;
}

static int net_contains(const fwd_auth_net *n, int family, const uint8_t *addr)
{
    if (n->family != family)
        return 0;
    int full = n->prefix / 8, rest = n->prefix % 8;
    if (memcmp(n->addr, addr, (size_t)full) != 0)
        return 0;
    if (rest) {
        uint8_t mask = (uint8_t)(0xffu << (8 - rest));
        if ((n->addr[full] & mask) != (addr[full] & mask))
            return 0;
    }
    return 1;
}

const fwd_auth_client *fwd_auth_match_client(const fwd_auth *a, const struct sockaddr *peer)
{
    int family;
    uint8_t addr[16];
    if (peer_addr(peer, &family, addr) != 0)
        return NULL;
    for (size_t i = 0; i < a->nclients; i++)
        for (size_t k = 0; k < a->clients[i].nnets; k++)
            if (net_contains(&a->clients[i].nets[k], family, addr))
                return &a->clients[i];
    return NULL;
}

/* ---- PING ------------------------------------------------------------------------ */

void fwd_auth_printable(char *out, size_t cap, const uint8_t *s, size_t len)
{
    size_t n = 0;
    if (!cap)
        return;
    for (size_t i = 0; i < len && n + 1 < cap; i++)
        out[n++] = (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\'') ? (char)s[i] : '?';
    if (len >= cap && cap > 4)
        memcpy(out + cap - 4, "...", 3), n = cap - 1;
    out[n] = 0;
}

static const char *type_name(mp_type t)
{
    static const char *const names[] = {"nil", "a boolean", "an integer", "an integer", "a float",
                                        "a string", "a binary", "an array", "a map", "an extension"};
    return (unsigned)t < sizeof names / sizeof *names ? names[t] : "?";
}

static int pong(wbuf *out, int ok, const char *reason, const char *host, const char *digest)
{
    size_t len0 = out->len;
    if (mpw_array(out, 5) || mpw_str(out, "PONG", 4) || mpw_bool(out, ok) || mpw_str(out, reason, strlen(reason)) ||
        mpw_str(out, host, strlen(host)) || mpw_str(out, digest, strlen(digest))) {
        out->len = len0;
        return -1;
    }
    return 0;
}

int fwd_auth_refuse(wbuf *out, const char *reason) { return pong(out, 0, reason, "", ""); }

static int fail(fwd_auth_result *r, wbuf *out, int code, const char *reason)
{
    r->code = code;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    pong(out, 0, r->reason, "", "");
    return code;
}

int fwd_auth_check_ping(const fwd_auth *a, const fwd_auth_session *s, const struct sockaddr *peer,
                        const uint8_t *msg, size_t len, wbuf *out, fwd_auth_result *r)
{
    static const char invalid[] = "invalid ping message";
    memset(r, 0, sizeof *r);
    r->client = -1;
    const uint8_t *p = msg, *end = msg + len;
    mp_obj o;
    if (mp_read(&p, end, &o) != MP_OK) {
        snprintf(r->detail, sizeof r->detail, "the first message is not msgpack");
        return fail(r, out, FWD_AUTH_BAD_MESSAGE, invalid);
    }
    if (o.type != MP_ARRAY) {
        snprintf(r->detail, sizeof r->detail, "the first message is %s, not a PING array%s", type_name(o.type),
                 o.type == MP_NIL ? " (a heartbeat before the handshake?)" : "");
        return fail(r, out, FWD_AUTH_BAD_MESSAGE, invalid);
    }
    uint32_t n = o.len;
    mp_obj e;
    if (n == 0 || mp_read(&p, end, &e) != MP_OK) {
        snprintf(r->detail, sizeof r->detail, "the first message is an empty array, not a PING");
        return fail(r, out, FWD_AUTH_BAD_MESSAGE, invalid);
    }
    if (e.type != MP_STR || e.len != 4 || memcmp(e.ptr, "PING", 4) != 0) {
        if (e.type == MP_STR) {
            char first[48];
            fwd_auth_printable(first, sizeof first, e.ptr, e.len);
            snprintf(r->detail, sizeof r->detail,
                     "expected a PING, got an array of %u elements starting with '%s' (a forward request before the "
                     "handshake?)",
                     n, first);
        } else {
            snprintf(r->detail, sizeof r->detail, "expected a PING, got an array of %u elements starting with %s", n,
                     type_name(e.type));
        }
        return fail(r, out, FWD_AUTH_BAD_MESSAGE, invalid);
    }
    if (n != 6) {
        snprintf(r->detail, sizeof r->detail, "PING has %u elements, expected 6", n);
        return fail(r, out, FWD_AUTH_BAD_MESSAGE, invalid);
    }
    const uint8_t *f[6] = {0};
    size_t fl[6] = {0};
    static const char *const what[6] = {"", "client hostname", "shared key salt", "shared key digest", "username",
                                        "password digest"};
    for (int i = 1; i < 6; i++) {
        int rc = mp_read(&p, end, &e);
        if (rc != MP_OK || (e.type != MP_STR && e.type != MP_BIN)) {
            snprintf(r->detail, sizeof r->detail, "PING element %d (%s) is %s, not a string", i, what[i],
                     rc != MP_OK ? "truncated" : type_name(e.type));
            return fail(r, out, FWD_AUTH_BAD_MESSAGE, invalid);
        }
        f[i] = e.ptr ? e.ptr : (const uint8_t *)"";
        fl[i] = e.len;
    }
    fwd_auth_printable(r->hostname, sizeof r->hostname, f[1], fl[1]);
    fwd_auth_printable(r->username, sizeof r->username, f[4], fl[4]);

    /* client rules, then the shared key (Fluentd's order) */
    const fwd_auth_client *cl = fwd_auth_match_client(a, peer);
    if (cl)
        r->client = (int)(cl - a->clients);
    if (!cl && !a->allow_anonymous_source) {
        char ip[INET6_ADDRSTRLEN] = "?";
        int family;
        uint8_t addr[16];
        if (peer_addr(peer, &family, addr) == 0)
            inet_ntop(family, addr, ip, sizeof ip);
        snprintf(r->detail, sizeof r->detail, "no <client> matches %s and allow_anonymous_source is false", ip);
        char reason[96];
        snprintf(reason, sizeof reason, "anonymous source host '%s' denied", ip);
        return fail(r, out, FWD_AUTH_ANONYMOUS, reason);
    }
    const char *key = cl ? cl->key : a->shared_key;
    const char *prev = cl ? cl->prev_key : a->previous_shared_key;
    char want[FWD_AUTH_HEX_LEN + 1];
    if (fwd_auth_shared_key_digest(want, f[2], fl[2], f[1], fl[1], s->nonce, sizeof s->nonce, key, strlen(key))) {
        snprintf(r->detail, sizeof r->detail, "cannot compute SHA-512");
        return fail(r, out, FWD_AUTH_INTERNAL, "internal error");
    }
    int ok = digest_eq(want, f[3], fl[3]);
    if (!ok && prev) {
        if (fwd_auth_shared_key_digest(want, f[2], fl[2], f[1], fl[1], s->nonce, sizeof s->nonce, prev,
                                       strlen(prev))) {
            snprintf(r->detail, sizeof r->detail, "cannot compute SHA-512");
            return fail(r, out, FWD_AUTH_INTERNAL, "internal error");
        }
        ok = digest_eq(want, f[3], fl[3]);
        if (ok) {
            r->previous_key = 1;
            key = prev;
        }
    }
    OPENSSL_cleanse(want, sizeof want);
    if (!ok) {
        if (fl[3] != FWD_AUTH_HEX_LEN)
            snprintf(r->detail, sizeof r->detail, "shared key digest mismatch (%zu characters, expected 128)", fl[3]);
        else
            snprintf(r->detail, sizeof r->detail, "shared key digest mismatch%s",
                     cl ? " (key of the matching <client>)" : "");
        return fail(r, out, FWD_AUTH_BAD_KEY, "shared_key mismatch");
    }

    if (a->user_auth) {
        const fwd_auth_user *u = find_user(a, f[4], fl[4]);
        int allowed = 1;
        if (u && cl && cl->users && cl->users[0]) {
            allowed = 0;
            for (char **x = cl->users; *x; x++)
                allowed |= !strcmp(*x, u->username);
        }
        /* the same work whether or not the user exists */
        const char *pw = u ? u->password : "";
        char pwd[FWD_AUTH_HEX_LEN + 1];
        if (fwd_auth_password_digest(pwd, s->salt, sizeof s->salt, f[4], fl[4], pw, strlen(pw))) {
            snprintf(r->detail, sizeof r->detail, "cannot compute SHA-512");
            return fail(r, out, FWD_AUTH_INTERNAL, "internal error");
        }
        int match = digest_eq(pwd, f[5], fl[5]);
        OPENSSL_cleanse(pwd, sizeof pwd);
        int code = !u ? FWD_AUTH_UNKNOWN_USER : !allowed ? FWD_AUTH_USER_DENIED : !match ? FWD_AUTH_BAD_PASSWORD
                                                                                           : FWD_AUTH_OK;
        if (code != FWD_AUTH_OK) {
            if (code == FWD_AUTH_UNKNOWN_USER)
                snprintf(r->detail, sizeof r->detail, "unknown user '%s'", r->username);
            else if (code == FWD_AUTH_USER_DENIED)
                snprintf(r->detail, sizeof r->detail, "user '%s' is not in the users of the matching <client>",
                         r->username);
            else
                snprintf(r->detail, sizeof r->detail, "wrong password for user '%s'", r->username);
            return fail(r, out, code, "username/password mismatch");
        }
    }

    char dig[FWD_AUTH_HEX_LEN + 1];
    if (fwd_auth_shared_key_digest(dig, f[2], fl[2], a->self_hostname, strlen(a->self_hostname), s->nonce,
                                   sizeof s->nonce, key, strlen(key)) ||
        pong(out, 1, "", a->self_hostname, dig)) {
        snprintf(r->detail, sizeof r->detail, "cannot build the PONG");
        return fail(r, out, FWD_AUTH_INTERNAL, "internal error");
    }
    r->code = FWD_AUTH_OK;
    return FWD_AUTH_OK;
}
