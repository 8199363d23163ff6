/*
 * outputs/forward/forward.c: `<match> @type forward`, Fluentd's out_forward,
 * for tiers of aggregators (weir -> weir, weir -> Fluentd).
 *
 * A write sends each tag's entries of the batch as one PackedForward
 * message, [tag, entries (str32, gzip with `compress gzip`), {"size": n,
 * "chunk": id, "compressed": "gzip"}], as out_forward does, and with
 * require_ack_response waits up to ack_response_timeout for {"ack": id}.
 * Connections are blocking sockets (send_timeout) on the output's thread,
 * one per write, or kept open with `keepalive`; `<security>` runs the
 * shared-key (and user) handshake after the server's HELO; `transport tls`
 * wraps the socket in TLS (OpenSSL).
 *
 * Servers: the primaries (not `standby`) take the writes in smooth weighted
 * round robin by `weight`; a server that fails (connect, handshake, send, no
 * ack) is marked down for `recover_wait` and the same write goes on to the
 * next primary, then to the standbys, so a server killed mid-stream costs no
 * record (what was not acked is sent again elsewhere: at least once). With
 * heartbeat_type none a failed server is never marked down. Without
 * `<buffer>` a write that every server refused fails the batch (the sender
 * gets no ack); with one, the buffer retries it.
 *
 * Threads: write runs on the output thread or a flush thread; one write at a
 * time (a mutex), so flush_thread_count > 1 gains nothing here.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "lib/clock.h"
#include "lib/compress.h"
#include "lib/fwd_digest.h"
#include "lib/log.h"
#include "lib/mp.h"
#include "lib/prom.h"
#include "aggregator/output.h"
#include "outputs/forward/sd.h"

#include "outputs/forward/forward_int.h"

static const conf_spec forward_spec[] = {
    {"transport", CONF_ENUM, "tcp", 0, offsetof(out_forward, transport), "tcp|tls", "`tcp` or `tls`"},
    {"compress", CONF_ENUM, "text", 0, offsetof(out_forward, compress), "text|gzip",
     "`gzip`: send CompressedPackedForward (the entries as one gzip member)"},
    {"require_ack_response", CONF_BOOL, "false", 0, offsetof(out_forward, require_ack_response), NULL,
     "wait for the server's ack of each message (the records count as sent only then)"},
    {"ack_response_timeout", CONF_TIME, "190s", 0, offsetof(out_forward, ack_response_timeout), NULL,
     "how long to wait for an ack; then the server is marked down and the records go to another"},
    {"send_timeout", CONF_TIME, "60s", 0, offsetof(out_forward, send_timeout), NULL,
     "the longest a socket read or write may block"},
    {"connect_timeout", CONF_TIME, NULL, 0, offsetof(out_forward, connect_timeout), NULL,
     "the longest a connect (with the TLS and shared-key handshakes) may take; default `send_timeout`"},
    {"hard_timeout", CONF_TIME, "60s", 0, offsetof(out_forward, hard_timeout), NULL,
     "accepted for compatibility (Fluentd's failure detector); no effect"},
    {"heartbeat_type", CONF_ENUM, "transport", 0, offsetof(out_forward, heartbeat_type), "transport|tcp|udp|none",
     "`transport`, `tcp`, `udp`: a server that fails a send is marked down for `recover_wait` (weir detects "
     "failures on the sends themselves, sends no heartbeats); `none`: never marked down"},
    {"heartbeat_interval", CONF_TIME, "1s", 0, offsetof(out_forward, heartbeat_interval), NULL,
     "accepted for compatibility; no effect"},
    {"recover_wait", CONF_TIME, "10s", 0, offsetof(out_forward, recover_wait), NULL,
     "how long a failed server stays down before it is tried again"},
    {"phi_failure_detector", CONF_BOOL, "true", 0, offsetof(out_forward, phi_failure_detector), NULL,
     "accepted for compatibility; no effect"},
    {"phi_threshold", CONF_TIME, "16", 0, offsetof(out_forward, phi_threshold), NULL,
     "accepted for compatibility; no effect"},
    {"expire_dns_cache", CONF_TIME, NULL, 0, offsetof(out_forward, expire_dns_cache), NULL,
     "accepted; weir resolves the host at every connect"},
    {"dns_round_robin", CONF_BOOL, "false", 0, offsetof(out_forward, dns_round_robin), NULL,
     "accepted; weir connects to the first address that answers"},
    {"ignore_network_errors_at_startup", CONF_BOOL, "false", 0,
     offsetof(out_forward, ignore_network_errors_at_startup), NULL, "accepted; weir does not connect at start"},
    {"verify_connection_at_startup", CONF_BOOL, "false", 0, offsetof(out_forward, verify_connection_at_startup),
     NULL, "accepted; no effect (weir connects at the first write)"},
    {"keepalive", CONF_BOOL, "false", 0, offsetof(out_forward, keepalive), NULL,
     "keep a server's connection open between writes (default: one connection per write, as Fluentd)"},
    {"keepalive_timeout", CONF_TIME, NULL, 0, offsetof(out_forward, keepalive_timeout), NULL,
     "with `keepalive`: reconnect when the connection was idle this long (default: never)"},
    {"send_keepalive_packet", CONF_BOOL, "false", 0, offsetof(out_forward, send_keepalive_packet), NULL,
     "TCP keepalive on the connections"},
    {"tls_cert_path", CONF_ARRAY, NULL, 0, offsetof(out_forward, tls_cert_path), NULL,
     "CA certificate files that verify the servers (default: the system's)"},
    {"tls_verify_hostname", CONF_BOOL, "true", 0, offsetof(out_forward, tls_verify_hostname), NULL,
     "check that the server certificate names the `<server>` host"},
    {"tls_insecure_mode", CONF_BOOL, "false", 0, offsetof(out_forward, tls_insecure_mode), NULL,
     "do not verify the server certificate at all"},
    {"tls_allow_self_signed_cert", CONF_BOOL, "false", 0, offsetof(out_forward, tls_allow_self_signed_cert), NULL,
     "accept a self-signed server certificate"},
    {"tls_version", CONF_STR, "TLSv1_2", 0, offsetof(out_forward, tls_version), NULL,
     "the lowest TLS version (`TLSv1_2`, `TLSv1_3`)"},
    {"tls_min_version", CONF_STR, NULL, 0, offsetof(out_forward, tls_min_version), NULL,
     "the lowest TLS version (overrides `tls_version`)"},
    {"tls_max_version", CONF_STR, NULL, 0, offsetof(out_forward, tls_max_version), NULL, "the highest TLS version"},
    {"tls_ciphers", CONF_STR, NULL, 0, offsetof(out_forward, tls_ciphers), NULL,
     "OpenSSL cipher list (TLS 1.2); default OpenSSL's"},
    {"tls_client_cert_path", CONF_STR, NULL, 0, offsetof(out_forward, tls_client_cert_path), NULL,
     "client certificate (for servers with `client_cert_auth`)"},
    {"tls_client_private_key_path", CONF_STR, NULL, 0, offsetof(out_forward, tls_client_private_key_path), NULL,
     "its private key"},
    {"tls_client_private_key_passphrase", CONF_STR, NULL, 0,
     offsetof(out_forward, tls_client_private_key_passphrase), NULL, "the key's passphrase"},
    {"tls_cert_thumbprint", CONF_STR, NULL, 0, offsetof(out_forward, tls_cert_thumbprint), NULL,
     "Windows only: refused, as Fluentd refuses it on Linux (\"This parameter is for only Windows\")"},
    {"tls_cert_logical_store_name", CONF_STR, NULL, 0, offsetof(out_forward, tls_cert_logical_store_name), NULL,
     "Windows only: refused, as Fluentd refuses it on Linux"},
    {"tls_cert_use_enterprise_store", CONF_BOOL, "true", 0, offsetof(out_forward, tls_cert_use_enterprise_store),
     NULL, "Windows only: accepted, no effect"},
    {"server", CONF_SECTION, NULL, 0, 0, NULL, "one or more `<server>`: the receivers (below)"},
    {"service_discovery", CONF_SECTION, NULL, 0, 0, NULL,
     "`<service_discovery>`: more receivers, listed in it (`@type static`), in a file (`@type file`) or in DNS SRV "
     "records (`@type srv`); below"},
    {"security", CONF_SECTION, NULL, 0, 0, NULL, "`<security>`: the shared-key handshake (below)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const conf_spec out_forward_server_spec[] = {
    {"host", CONF_STR, NULL, 1, offsetof(fwd_server, host), NULL, "required: the server's host name or address"},
    {"port", CONF_INT, "24224", 0, offsetof(fwd_server, port), NULL, "its forward port"},
    {"name", CONF_STR, NULL, 0, offsetof(fwd_server, name), NULL, "a name for logs and metrics (default host:port)"},
    {"weight", CONF_INT, "60", 0, offsetof(fwd_server, weight), NULL,
     "its share of the writes among the available primaries"},
    {"standby", CONF_BOOL, "false", 0, offsetof(fwd_server, standby), NULL,
     "used only while no primary is available"},
    {"shared_key", CONF_STR, NULL, 0, offsetof(fwd_server, shared_key), NULL,
     "this server's key (default: `<security>`'s)"},
    {"username", CONF_STR, NULL, 0, offsetof(fwd_server, username), NULL,
     "this server's user (default: `<security>`'s)"},
    {"password", CONF_STR, NULL, 0, offsetof(fwd_server, password), NULL, "its password"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const conf_spec out_forward_security_spec[] = {
    {"self_hostname", CONF_STR, NULL, 1, offsetof(out_forward, self_hostname), NULL,
     "required: the name this sender gives in the handshake (must differ from the server's)"},
    {"shared_key", CONF_STR, NULL, 1, offsetof(out_forward, shared_key), NULL, "required: the shared key"},
    {"username", CONF_STR, "", 0, offsetof(out_forward, username), NULL,
     "the user, for servers with `user_auth`"},
    {"password", CONF_STR, "", 0, offsetof(out_forward, password), NULL, "its password"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const char *srv_name(const fwd_server *s) { return s->name; }

/* ---- configuration ---------------------------------------------------------------------------- */

static int tls_ver(const char *s)
{
    if (!s)
        return 0;
    if (!strcmp(s, "TLSv1_3") || !strcmp(s, "TLS1_3"))
        return TLS1_3_VERSION;
    if (!strcmp(s, "TLSv1_2") || !strcmp(s, "TLS1_2"))
        return TLS1_2_VERSION;
    if (!strcmp(s, "TLSv1_1") || !strcmp(s, "TLS1_1"))
        return TLS1_1_VERSION;
    if (!strcmp(s, "TLSv1") || !strcmp(s, "TLSv1_0") || !strcmp(s, "TLS1"))
        return TLS1_VERSION;
    return -1;
}

static int pass_cb(char *buf, int size, int rw, void *u)
{
    const char *p = u;
    int n = p ? (int)strlen(p) : 0;
    if (n >= size)
        n = size - 1;
    if (n > 0)
        memcpy(buf, p, (size_t)n);
    return n;
}

static int self_signed_ok(int ok, X509_STORE_CTX *x)
{
    int e = X509_STORE_CTX_get_error(x);
    if (!ok && (e == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT || e == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN))
        return 1;
    return ok;
}

static int make_tls(out_forward *c, conf_node *n, conf_errors *errs)
{
    int minv = tls_ver(c->tls_min_version ? c->tls_min_version : c->tls_version), maxv = tls_ver(c->tls_max_version);
    if (minv < 0 || maxv < 0) {
        conf_error_at(errs, n, c->tls_max_version && maxv < 0 ? "tls_max_version" : "tls_version",
                      "unknown TLS version (TLSv1_2, TLSv1_3)");
        return -1;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return -1;
    c->ssl_ctx = ctx;
    if (minv)
        SSL_CTX_set_min_proto_version(ctx, minv);
    if (maxv)
        SSL_CTX_set_max_proto_version(ctx, maxv);
    if (c->tls_ciphers && SSL_CTX_set_cipher_list(ctx, c->tls_ciphers) != 1) {
        conf_error_at(errs, n, "tls_ciphers", "no usable cipher in '%s'", c->tls_ciphers);
        return -1;
    }
    if (c->tls_cert_path && c->tls_cert_path[0]) {
        for (size_t i = 0; c->tls_cert_path[i]; i++)
            if (SSL_CTX_load_verify_locations(ctx, c->tls_cert_path[i], NULL) != 1) {
                conf_error_at(errs, n, "tls_cert_path", "cannot read CA certificates from %s", c->tls_cert_path[i]);
                return -1;
            }
    } else {
        SSL_CTX_set_default_verify_paths(ctx);
    }
    if (c->tls_client_cert_path) {
        SSL_CTX_set_default_passwd_cb(ctx, pass_cb);
        SSL_CTX_set_default_passwd_cb_userdata(ctx, c->tls_client_private_key_passphrase);
        const char *key = c->tls_client_private_key_path ? c->tls_client_private_key_path : c->tls_client_cert_path;
        if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_client_cert_path) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
            conf_error_at(errs, n, "tls_client_cert_path", "cannot use the client certificate %s with key %s",
                          c->tls_client_cert_path, key);
            return -1;
        }
    }
    SSL_CTX_set_verify(ctx, c->tls_insecure_mode ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
                       c->tls_allow_self_signed_cert ? self_signed_ok : NULL);
    return 0;
}

/* One receiver from a <server> (or <service>, or a server of a discovery file) section. */
static int add_server(out_forward *c, conf_node *ch, conf_errors *errs)
{
    size_t n = atomic_load(&c->nservers); /* init: the main thread alone */
    fwd_server *s = realloc(c->servers, (n + 1) * sizeof *s);
    if (!s) {
        conf_errors_add(errs, ch->file, ch->line, "out of memory");
        return -1;
    }
    c->servers = s;
    s = &c->servers[n];
    atomic_store(&c->nservers, n + 1);
    memset(s, 0, sizeof *s);
    s->sock = -1;
    atomic_store(&s->available, 1);
    atomic_store(&s->active, 1);
    int bad = conf_bind(ch, out_forward_server_spec, s, errs);
    if (s->port < 1 || s->port > 65535) {
        conf_error_at(errs, ch, "port", "port must be between 1 and 65535");
        bad = -1;
    }
    if (s->weight < 0) {
        conf_error_at(errs, ch, "weight", "weight must not be negative");
        bad = -1;
    }
    if (!s->name && s->host) {
        char nm[300];
        snprintf(nm, sizeof nm, "%s:%lld", s->host, (long long)s->port);
        s->name = strdup(nm);
    }
    return bad ? -1 : 0;
}

static int add_server_cb(void *c, conf_node *ch, conf_errors *errs) { return add_server(c, ch, errs); }

/* "'name' host:port weight w[ standby]; ..." of the servers [from, to), as Fluentd's "adding forwarding
 * server" lines */
static void log_servers(out_forward *c, size_t from, size_t to, const char *what)
{
    wbuf l = {0};
    for (size_t i = from; i < to; i++) {
        const fwd_server *s = &c->servers[i];
        char one[600];
        int k = snprintf(one, sizeof one, "%s'%s' %s:%lld weight %lld%s", i > from ? "; " : "", s->name, s->host,
                         (long long)s->port, (long long)s->weight, s->standby ? " standby" : "");
        (void)wbuf_add(&l, one, k > 0 ? ((size_t)k < sizeof one ? (size_t)k : sizeof one - 1) : 0);
    }
    wlog_info("out_forward", "%s: %zu server(s)%s: %.*s", c->id, to - from, what, (int)l.len, (const char *)l.data);
    wbuf_free(&l);
}

/* ---- <service_discovery> @type srv ---------------------------------------------------------------- */

#define SRV_SLOTS 64

/* One answer applied (the refresh thread, or the main thread at start before that thread exists): a
 * listed server that has a slot (same target, address, port, weight) is active, a new one gets the next
 * free slot, an active slot not listed stops receiving. One info line per change (Fluentd's "Service in"
 * and "Service out"). */
static void srv_apply(out_forward *c, const fwd_srv_rec *r, size_t nr, int at_start)
{
    size_t n = atomic_load_explicit(&c->nservers, memory_order_relaxed); /* this thread is the only writer */
    size_t cap = c->nstatic + SRV_SLOTS;
    unsigned char listed[SRV_SLOTS] = {0};
    for (size_t k = 0; k < nr; k++) {
        size_t i = c->nstatic;
        int in = 0;
        for (; i < n; i++) {
            const fwd_server *s = &c->servers[i];
            if (!strcmp(s->name, r[k].name) && !strcmp(s->host, r[k].host) && s->port == r[k].port &&
                s->weight == r[k].weight)
                break;
        }
        if (i == n) {
            if (n == cap) {
                wlog_error("out_forward", "%s: sd_srv: %s:%d not added: the output has no free slot left (%d "
                           "servers found by SRV records since start)", c->id, r[k].name, r[k].port, SRV_SLOTS);
                continue;
            }
            fwd_server *s = &c->servers[n];
            memset(s, 0, sizeof *s);
            s->sock = -1;
            s->from_srv = 1;
            s->host = strdup(r[k].host);
            s->name = strdup(r[k].name);
            s->port = r[k].port;
            s->weight = r[k].weight;
            s->shared_key = c->srv->shared_key ? strdup(c->srv->shared_key) : NULL;
            s->username = c->srv->username && *c->srv->username ? strdup(c->srv->username) : NULL;
            s->password = c->srv->password && *c->srv->password ? strdup(c->srv->password) : NULL;
            if (!s->host || !s->name) {
                conf_unbind(out_forward_server_spec, s);
                wlog_error("out_forward", "%s: sd_srv: out of memory", c->id);
                continue;
            }
            atomic_store(&s->available, 1);
            atomic_store(&s->active, 1);
            atomic_store_explicit(&c->nservers, ++n, memory_order_release); /* publish the filled slot */
            in = 1;
        } else if (!atomic_load(&c->servers[i].active)) {
            atomic_store(&c->servers[i].active, 1);
            in = 1;
        }
        listed[i - c->nstatic] = 1;
        if (in && !at_start)
            wlog_info("out_forward", "%s: Service in: name=%s %s:%lld weight %lld", c->id, c->servers[i].name,
                      c->servers[i].host, (long long)c->servers[i].port, (long long)c->servers[i].weight);
    }
    for (size_t i = c->nstatic; i < n; i++)
        if (!listed[i - c->nstatic] && atomic_load(&c->servers[i].active)) {
            atomic_store(&c->servers[i].active, 0);
            wlog_info("out_forward", "%s: Service out: name=%s %s:%lld", c->id, c->servers[i].name,
                      c->servers[i].host, (long long)c->servers[i].port);
        }
}

/* One query. -1 when it failed or listed nothing (the servers are kept, as Fluentd keeps them): counted,
 * and logged at most once a minute (why in err). */
static int srv_refresh(out_forward *c, int at_start, char *err, size_t errlen)
{
    fwd_srv_rec *r = NULL;
    size_t nr = 0;
    int rc = fwd_srv_query(c->srv, &r, &nr, err, errlen);
    if (!rc && !nr) {
        snprintf(err, errlen, "sd_srv: no SRV record for %s", c->srv->target);
        rc = -1;
    }
    if (!rc)
        srv_apply(c, r, nr, at_start);
    free(r);
    if (rc) {
        atomic_fetch_add(&c->sd_failures, 1);
        double now = clock_mono();
        if (!at_start && (!c->srv_err_logged || now - c->srv_err_logged >= 60)) {
            c->srv_err_logged = now;
            wlog_error("out_forward", "%s: %s; keeping the current servers (logged at most once a minute)", c->id,
                       err);
        }
    }
    return rc;
}

static void *srv_main(void *arg)
{
    out_forward *c = arg;
    pthread_mutex_lock(&c->srv_mu);
    while (!c->srv_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)c->srv->interval;
        while (!c->srv_stop && pthread_cond_timedwait(&c->srv_cv, &c->srv_mu, &ts) != ETIMEDOUT)
            ;
        if (c->srv_stop)
            break;
        pthread_mutex_unlock(&c->srv_mu); /* the query runs unlocked: exit waits at most for one query */
        char err[2400];
        (void)srv_refresh(c, 0, err, sizeof err);
        pthread_mutex_lock(&c->srv_mu);
    }
    pthread_mutex_unlock(&c->srv_mu);
    return NULL;
}

/* The first query (Fluentd's at configure: no record or a failure stops Fluentd from starting; weir's
 * output does not start), then the refresh thread. Main thread. */
static int forward_start(output *o)
{
    out_forward *c = o->ctx;
    if (!c->srv)
        return 0;
    char err[2400];
    if (srv_refresh(c, 1, err, sizeof err)) {
        wlog_error("out_forward", "%s: %s (Fluentd refuses to start without a server too)", c->id, err);
        return -1;
    }
    char what[1100];
    snprintf(what, sizeof what, " from the SRV records of %s", c->srv->target);
    log_servers(c, c->nstatic, atomic_load(&c->nservers), what);
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) ||
        pthread_mutex_init(&c->srv_mu, NULL) || pthread_cond_init(&c->srv_cv, &ca)) {
        wlog_error("out_forward", "%s: sd_srv: cannot start the refresh thread", c->id);
        return -1;
    }
    pthread_condattr_destroy(&ca);
    c->srv_sync_init = 1;
    if (pthread_create(&c->srv_thread, NULL, srv_main, c) != 0) {
        wlog_error("out_forward", "%s: sd_srv: cannot start the refresh thread", c->id);
        return -1;
    }
    c->srv_started = 1;
    return 0;
}

static int forward_init(output *o, conf_node *n, conf_errors *errs)
{
    out_forward *c = o->ctx;
    c->id = o->id;
    int bad = 0;
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *ch = n->children[i];
        if (!strcmp(ch->name, "security")) {
            if (c->has_security) {
                conf_errors_add(errs, ch->file, ch->line, "more than one <security>");
                bad = -1;
                continue;
            }
            c->has_security = 1;
            if (conf_bind(ch, out_forward_security_spec, c, errs))
                bad = -1;
        }
    }
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *ch = n->children[i];
        if (!strcmp(ch->name, "server")) {
            if (add_server(c, ch, errs))
                bad = -1;
        } else if (!strcmp(ch->name, "service_discovery") && fwd_sd_add(ch, add_server_cb, c, &c->srv, errs)) {
            bad = -1;
        }
    }
    c->nstatic = atomic_load(&c->nservers);
    if (c->srv && !bad) { /* the slots of @type srv, filled from start on (never moved) */
        fwd_server *s = realloc(c->servers, (c->nstatic + SRV_SLOTS) * sizeof *s);
        if (!s) {
            conf_errors_add(errs, n->file, n->line, "out of memory");
            bad = -1;
        } else {
            c->servers = s;
        }
    }
    if (!c->nservers && !c->srv && !bad) {
        conf_errors_add(errs, n->file, n->line, "forward output needs at least one <server> (or <service_discovery>)");
        bad = -1;
    }
    if (c->tls_cert_thumbprint || c->tls_cert_logical_store_name) {
        conf_error_at(errs, n, c->tls_cert_thumbprint ? "tls_cert_thumbprint" : "tls_cert_logical_store_name",
                      "This parameter is for only Windows (Fluentd refuses it on Linux too): use tls_cert_path");
        bad = -1;
    }
    if (!c->connect_timeout)
        c->connect_timeout = c->send_timeout;
    if (!bad && c->transport == 1 && make_tls(c, n, errs))
        bad = -1;
    if (pthread_mutex_init(&c->mu, NULL) == 0)
        c->mu_init = 1;
    if (!bad && c->nstatic) /* the receivers, as Fluentd's "adding forwarding server" lines */
        log_servers(c, 0, c->nstatic, "");
    if (!bad && c->srv)
        wlog_info("out_forward", "%s: the servers of the SRV records of %s are queried at start, then every %llds",
                  c->id, c->srv->target, (long long)c->srv->interval);
    return bad;
}

static void forward_exit(output *o)
{
    out_forward *c = o->ctx;
    if (c->srv_started) {
        pthread_mutex_lock(&c->srv_mu);
        c->srv_stop = 1;
        pthread_cond_signal(&c->srv_cv);
        pthread_mutex_unlock(&c->srv_mu);
        pthread_join(c->srv_thread, NULL);
    }
    if (c->srv_sync_init) {
        pthread_mutex_destroy(&c->srv_mu);
        pthread_cond_destroy(&c->srv_cv);
    }
    fwd_sd_srv_free(c->srv);
    size_t n = atomic_load(&c->nservers);
    for (size_t i = 0; i < n; i++) {
        fwd_server *s = &c->servers[i];
        if (s->ssl)
            SSL_free(s->ssl);
        if (s->sock >= 0)
            close(s->sock);
        conf_unbind(out_forward_server_spec, s);
    }
    free(c->servers);
    if (c->ssl_ctx)
        SSL_CTX_free(c->ssl_ctx);
    if (c->mu_init)
        pthread_mutex_destroy(&c->mu);
    if (c->has_security)
        conf_unbind(out_forward_security_spec, c);
    wbuf_free(&c->msg);
    wbuf_free(&c->resp);
    wbuf_free(&c->gz);
}

/* ---- sending ------------------------------------------------------------------------------------ */

/* [tag, entries, options] for one segment */
static int build_message(out_forward *c, const batch_seg *sg, const uint8_t *data, char chunk[32])
{
    wbuf *m = &c->msg;
    m->len = 0;
    const uint8_t *ent = data + sg->off;
    size_t elen = sg->len;
    if (c->compress) {
        c->gz.len = 0;
        if (gz_compress(&c->gz, ent, elen, -1))
            return -1;
        ent = c->gz.data;
        elen = c->gz.len;
    }
    uint8_t id[16];
    if (fwd_rand_bytes(id, sizeof id))
        return -1;
    EVP_EncodeBlock((unsigned char *)chunk, id, sizeof id); /* base64, NUL-terminated */
    if (mpw_array(m, 3) || mpw_str(m, sg->tag, sg->tag_len) || wbuf_grow(m, 5 + elen))
        return -1;
    /* the entries as str32, as out_forward writes them */
    uint8_t h[5] = {0xdb, (uint8_t)(elen >> 24), (uint8_t)(elen >> 16), (uint8_t)(elen >> 8), (uint8_t)elen};
    if (wbuf_add(m, h, 5) || (elen && wbuf_add(m, ent, elen)))
        return -1;
    int nopt = 1 + (c->require_ack_response ? 1 : 0) + (c->compress ? 1 : 0);
    if (mpw_map(m, (uint32_t)nopt) || mpw_str(m, "size", 4) || mpw_uint(m, sg->nrecords))
        return -1;
    if (c->require_ack_response && (mpw_str(m, "chunk", 5) || mpw_str(m, chunk, strlen(chunk))))
        return -1;
    if (c->compress && (mpw_str(m, "compressed", 10) || mpw_str(m, "gzip", 4)))
        return -1;
    return 0;
}

/* send c->msg to s (and wait for the ack). 0, or -1 with why */
static int send_to(out_forward *c, fwd_server *s, const char *chunk, char *why, size_t wl)
{
    if (fwd_connect_server(c, s, why, wl))
        return -1;
    if (fwd_io_write(s, c->msg.data, c->msg.len)) {
        snprintf(why, wl, "%s: send failed: %s", s->name, strerror(errno));
        fwd_disconnect(s);
        return -1;
    }
    atomic_fetch_add(&s->sent, 1);
    if (c->require_ack_response) {
        if (fwd_io_read_obj(c, s, c->ack_response_timeout)) {
            atomic_fetch_add(&c->ack_timeouts, 1);
            snprintf(why, wl, "%s: no ack within %.0fs (or the connection closed)", s->name, c->ack_response_timeout);
            fwd_disconnect(s);
            return -1;
        }
        const uint8_t *p = c->resp.data, *end = c->resp.data + c->resp.len, *v = NULL;
        mp_obj mm;
        uint32_t vl = 0;
        int vt;
        if (mp_read(&p, end, &mm) != MP_OK || mm.type != MP_MAP || fwd_map_str(p, end, mm.len, "ack", &v, &vl, &vt) != 1 ||
            vl != strlen(chunk) || memcmp(v, chunk, vl)) {
            snprintf(why, wl, "%s: a response that is not the ack of the message", s->name);
            fwd_disconnect(s);
            return -1;
        }
        atomic_fetch_add(&s->acked, 1);
    }
    s->last_used = clock_mono();
    if (!c->keepalive)
        fwd_disconnect(s);
    return 0;
}

/* the servers in the order a write tries them: the next primary by smooth
 * weighted round robin, the other available primaries, the available
 * standbys; when none is available, every server */
static size_t order(out_forward *c, size_t *ord, size_t nservers)
{
    double now = clock_mono();
    size_t n = 0;
    int64_t total = 0;
    fwd_server *best = NULL;
    for (size_t i = 0; i < nservers; i++) {
        fwd_server *s = &c->servers[i];
        if (!atomic_load(&s->active)) {
            fwd_disconnect(s); /* a kept connection to a server the SRV records no longer list */
            continue;
        }
        int up = c->heartbeat_type == 3 || s->down_until <= now;
        atomic_store(&s->available, up);
        if (!up || s->standby || s->weight == 0)
            continue;
        s->cw += s->weight;
        total += s->weight;
        if (!best || s->cw > best->cw)
            best = s;
    }
    if (best) {
        best->cw -= total;
        ord[n++] = (size_t)(best - c->servers);
    }
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < nservers; i++) {
            fwd_server *s = &c->servers[i];
            if (s == best || (s->down_until > now && c->heartbeat_type != 3) || s->standby != pass ||
                !atomic_load(&s->active))
                continue;
            if (!pass && s->weight == 0)
                continue;
            ord[n++] = i;
        }
    if (!n)
        for (size_t i = 0; i < nservers; i++)
            if (atomic_load(&c->servers[i].active))
                ord[n++] = i;
    return n;
}

static int forward_write(output *o, const batch *b, out_result *res)
{
    out_forward *c = o->ctx;
    pthread_mutex_lock(&c->mu);
    /* the servers published so far (acquire: their slots are filled); a slot published later waits for
     * the next write */
    size_t nservers = atomic_load_explicit(&c->nservers, memory_order_acquire);
    size_t *ord = malloc((nservers ? nservers : 1) * sizeof *ord);
    int rc = OUT_OK;
    uint32_t first_rec = 0;
    char why[512] = "";
    for (uint32_t g = 0; g < b->nsegs && ord; g++) {
        const batch_seg *sg = &b->segs[g];
        char chunk[32];
        if (build_message(c, sg, b->data, chunk)) {
            snprintf(why, sizeof why, "out of memory");
            rc = OUT_RETRY;
        } else {
            size_t n = order(c, ord, nservers);
            int sent = 0;
            if (!n)
                snprintf(why, sizeof why, "no server: the SRV records list none");
            for (size_t k = 0; k < n && !sent; k++) {
                fwd_server *s = &c->servers[ord[k]];
                if (send_to(c, s, chunk, why, sizeof why) == 0) {
                    sent = 1;
                    if (k)
                        atomic_fetch_add(&c->failovers, 1);
                    break;
                }
                atomic_fetch_add(&s->failures, 1);
                if (c->heartbeat_type != 3) {
                    s->down_until = clock_mono() + c->recover_wait;
                    atomic_store(&s->available, 0);
                }
                wlog_warn("out_forward", "%s: %s%s", o->id, why,
                          k + 1 < n ? "; trying the next server" : "; no server left for this write");
            }
            if (sent) {
                atomic_fetch_add(&c->messages, 1);
                atomic_fetch_add(&c->records, sg->nrecords);
            } else {
                rc = OUT_RETRY;
            }
        }
        if (rc != OUT_OK) {
            /* this segment and the ones after it are retried; those before it were delivered */
            if (g > 0)
                for (uint32_t r = first_rec; r < b->nrecords; r++)
                    out_result_mark(res, r, OUT_RETRY, why);
            snprintf(res->reason, sizeof res->reason, "%.*s", (int)sizeof res->reason - 1, why);
            break;
        }
        first_rec += sg->nrecords;
    }
    if (!ord)
        rc = OUT_RETRY;
    free(ord);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static void forward_metrics(output *const *outs, size_t n, struct evbuffer *ev)
{
    char lb[256], sb[256];
    prom_head(ev, "weir_forward_output_server_available", "gauge",
              "1 while a forward output's server is not marked down");
    for (size_t i = 0; i < n; i++) {
        out_forward *c = outs[i]->ctx;
        prom_label(outs[i]->id, lb, sizeof lb);
        size_t ns = atomic_load_explicit(&c->nservers, memory_order_acquire);
        for (size_t k = 0; k < ns; k++)
            if (atomic_load(&c->servers[k].active))
                evbuffer_add_printf(ev, "weir_forward_output_server_available{output=\"%s\",server=\"%s\"} %d\n", lb,
                                prom_label(srv_name(&c->servers[k]), sb, sizeof sb),
                                atomic_load(&c->servers[k].available));
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } fam[] = {
        {"weir_forward_output_server_messages_total", "Messages a forward output's server took (acked if required)",
         offsetof(fwd_server, sent)},
        {"weir_forward_output_server_failures_total", "Sends to a server that failed (connect, handshake, send, ack)",
         offsetof(fwd_server, failures)},
    };
    for (size_t f = 0; f < 2; f++) {
        prom_head(ev, fam[f].name, "counter", fam[f].help);
        for (size_t i = 0; i < n; i++) {
            out_forward *c = outs[i]->ctx;
            prom_label(outs[i]->id, lb, sizeof lb);
            size_t ns = atomic_load_explicit(&c->nservers, memory_order_acquire);
            for (size_t k = 0; k < ns; k++)
                if (atomic_load(&c->servers[k].active))
                    evbuffer_add_printf(ev, "%s{output=\"%s\",server=\"%s\"} %" PRIu64 "\n", fam[f].name, lb,
                                    prom_label(srv_name(&c->servers[k]), sb, sizeof sb),
                                    prom_ld((atomic_uint_fast64_t *)((char *)&c->servers[k] + fam[f].off)));
        }
    }
    prom_head(ev, "weir_forward_output_failovers_total", "counter",
              "Messages a forward output delivered to another server than the first it tried");
    for (size_t i = 0; i < n; i++)
        evbuffer_add_printf(ev, "weir_forward_output_failovers_total{output=\"%s\"} %" PRIu64 "\n",
                            prom_label(outs[i]->id, lb, sizeof lb), prom_ld(&((out_forward *)outs[i]->ctx)->failovers));
    prom_head(ev, "weir_forward_output_discovery_failures_total", "counter",
              "SRV queries of a forward output's <service_discovery> @type srv that failed or listed no server "
              "(the servers were kept)");
    for (size_t i = 0; i < n; i++)
        evbuffer_add_printf(ev, "weir_forward_output_discovery_failures_total{output=\"%s\"} %" PRIu64 "\n",
                            prom_label(outs[i]->id, lb, sizeof lb),
                            prom_ld(&((out_forward *)outs[i]->ctx)->sd_failures));
}

OUT_PLUGIN(forward, forward, out_forward, .start = forward_start, .metrics = forward_metrics);
