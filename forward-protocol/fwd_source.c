/*
 * forward-protocol/fwd_source.c: configuration (Fluentd in_forward parameters), reload adoption, and the
 * source plugin table (aggregator/source.h).
 * See fwd_conn.h for how the forward input is cut.
 */
#include "forward-protocol/fwd_conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/mp.h"
#include "buffer/buffer.h"
#include "aggregator/router.h"
#include "forward-protocol/fwd_auth.h"
#include "aggregator/tls_server.h"

/* ---- configuration ---------------------------------------------------------- */

static const conf_spec forward_spec[] = {
    {"port", CONF_INT, "24224", 0, offsetof(fwd_source, port), NULL, "TCP port, and UDP for heartbeats"},
    {"bind", CONF_STR, "0.0.0.0", 0, offsetof(fwd_source, bind), NULL, "address to listen on (IPv4 or IPv6)"},
    {"chunk_size_warn_limit", CONF_SIZE, "0", 0, offsetof(fwd_source, chunk_size_warn_limit), NULL,
     "log a warning for each request larger than this; `0`: none"},
    {"chunk_size_limit", CONF_SIZE, "256m", 0, offsetof(fwd_source, chunk_size_limit), NULL,
     "a request whose events are larger than this closes the connection (one log line, no ack: the sender retries "
     "elsewhere); the envelope around them (tag, headers, options: up to 1/64 of the limit, at most 64 KiB) is not "
     "counted, so a Fluentd "
     "chunk of exactly its default `chunk_limit_size` 256m passes. Bounds one connection's input buffer"},
    {"skip_invalid_event", CONF_BOOL, "false", 0, offsetof(fwd_source, skip_invalid_event), NULL,
     "as Fluentd: `false` keeps an event whose time is invalid (with the time of receipt) and refuses a request "
     "holding an entry that is not `[time, map]` (no ack); `true` skips and counts such events and acks the rest. "
     "See \"Event times and invalid events\""},
    {"source_address_key", CONF_STR, NULL, 0, offsetof(fwd_source, source_address_key), NULL,
     "add the peer's IP address to every record under this key"},
    {"source_hostname_key", CONF_STR, NULL, 0, offsetof(fwd_source, source_hostname_key), NULL,
     "add the peer's host name (reverse DNS, /etc/hosts first) under this key; turns `resolve_hostname` on"},
    {"tag", CONF_STR, NULL, 0, offsetof(fwd_source, tag), NULL, "replace the tag of every record"},
    {"add_tag_prefix", CONF_STR, NULL, 0, offsetof(fwd_source, add_tag_prefix), NULL, "prepend `PREFIX.` to every tag"},
    {"deny_keepalive", CONF_BOOL, "false", 0, offsetof(fwd_source, deny_keepalive), NULL,
     "close the connection after answering its first request (with `<security>`, the HELO says `keepalive false`)"},
    {"linger_timeout", CONF_TIME, "0", 0, offsetof(fwd_source, linger_timeout), NULL,
     "accepted for compatibility; no effect"},
    {"resolve_hostname", CONF_BOOL, "false", 0, offsetof(fwd_source, resolve_hostname), NULL,
     "look up the peer's host name when it connects (set by `source_hostname_key`)"},
    {"send_keepalive_packet", CONF_BOOL, "false", 0, offsetof(fwd_source, send_keepalive_packet), NULL,
     "TCP keepalive (`SO_KEEPALIVE`) on accepted sockets"},
    {"decompressed_size_limit", CONF_SIZE, "512m", 0, offsetof(fwd_source, decompressed_size_limit), NULL,
     "weir: bomb guard for gzip/zstd entries; a request inflating past it is dropped with its connection"},
    {"max_nesting_depth", CONF_INT, "64", 0, offsetof(fwd_source, max_nesting_depth), NULL,
     "weir: records nested deeper are skipped and counted (2..64), whatever `skip_invalid_event` says"},
    {"max_string_length", CONF_SIZE, "0", 0, offsetof(fwd_source, max_string_length), NULL,
     "weir: a record holding a longer str/bin (value or key, at any depth) is skipped and counted, whatever "
     "`skip_invalid_event` says; the rest of the request is kept and acked. `0`: no limit (beyond "
     "`chunk_size_limit`)"},
    {"handshake_timeout", CONF_TIME, "10s", 0, offsetof(fwd_source, handshake_timeout), NULL,
     "weir: with `<security>` or `<transport tls>`, a connection that has not completed the TLS handshake and the "
     "PING within this time is closed (logged, counted)"},
    {"idle_timeout", CONF_TIME, "300s", 0, offsetof(fwd_source, idle_timeout), NULL,
     "weir: a connection that sends nothing for this long, with no ack pending, is closed (a request left half sent "
     "is dropped with a warning; slowloris); `0`: never. Counted as `weir_input_idle_closed_total`"},
    {"max_connections", CONF_INT, "0", 0, offsetof(fwd_source, max_connections), NULL,
     "weir: connections beyond this are closed as soon as they are accepted (one warning per 10 s; "
     "`weir_input_connections_refused_total`); `0`: no limit"},
    {"max_connection_age", CONF_TIME, "0", 0, offsetof(fwd_source, max_connection_age), NULL,
     "weir: retire a connection gracefully after this long (±10 % jitter): after a whole request, its ack written, "
     "nothing of the next request read, weir reads no more and closes; keepalive senders reconnect and spread over "
     "the replicas behind a Service. `0`: never"},
    {"max_requests_per_connection", CONF_INT, "0", 0, offsetof(fwd_source, max_requests_per_connection), NULL,
     "weir: the same after this many requests; `0`: never"},
    {"stream_threshold", CONF_SIZE, "8m", 0, offsetof(fwd_source, stream_threshold), NULL,
     "weir: a Forward or PackedForward/CompressedPackedForward request larger than this (as far as its bytes and "
     "length fields tell) is decoded entry by entry as it arrives, gzip/zstd inflated in 64 KiB steps, and handed on "
     "in batches of 256 KiB, instead of being held whole; so is a compressed one that inflates past it. Acked once all of it is stored. A request cut off midway "
     "is not acked, and the records already handed on are delivered again by the sender's retry (counted, "
     "`weir_forward_partial_request_records_total`). Smaller requests are framed whole. `0`: only when the memory "
     "budget refuses a frame. See docs/architecture.md, \"Streamed requests\""},
    {"security", CONF_SECTION, NULL, 0, 0, NULL, "shared-key handshake and user auth: `<security>` below"},
    {"transport", CONF_SECTION, NULL, 0, 0, NULL,
     "`<transport tls>` (below) or `<transport tcp>` (no TLS, the default); `<transport udp>` is refused"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};
/* <transport tcp>: plain TCP, as without <transport>; no parameters */
const conf_spec fwd_transport_tcp_spec[] = {{NULL, 0, NULL, 0, 0, NULL, NULL}};

fwd_source *fwd_source_create(conf_node *n, int index, conf_errors *errs)
{
    fwd_source *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->udp_fd = -1;
    extern const source_plugin in_forward_plugin;
    source_init(&s->base, &in_forward_plugin, n, index);
    int rc = conf_bind(n, forward_spec, s, errs);
    if (rc == 0) {
        if (s->port < 0 || s->port > 65535) {
            conf_param *p = conf_get(n, "port");
            conf_errors_add(errs, p ? p->file : n->file, p ? p->line : n->line, "port %lld out of range 0..65535",
                            (long long)s->port);
            rc = -1;
        }
        if (s->max_connection_age < 0 || s->max_requests_per_connection < 0) {
            conf_param *p = conf_get(n, s->max_connection_age < 0 ? "max_connection_age" : "max_requests_per_connection");
            conf_errors_add(errs, p ? p->file : n->file, p ? p->line : n->line, "%s must not be negative", p ? p->key : "limit");
            rc = -1;
        }
        if (s->max_nesting_depth < 2 || s->max_nesting_depth > 64) {
            conf_param *p = conf_get(n, "max_nesting_depth");
            conf_errors_add(errs, p ? p->file : n->file, p ? p->line : n->line,
                            "max_nesting_depth must be between 2 and 64");
            rc = -1;
        }
        if (s->chunk_size_limit < 64) {
            conf_param *p = conf_get(n, "chunk_size_limit");
            conf_errors_add(errs, p ? p->file : n->file, p ? p->line : n->line, "chunk_size_limit is too small");
            rc = -1;
        }
        if (s->idle_timeout < 0 || s->max_connections < 0) {
            conf_error_at(errs, n, s->idle_timeout < 0 ? "idle_timeout" : "max_connections", "%s must not be negative",
                          s->idle_timeout < 0 ? "idle_timeout" : "max_connections");
            rc = -1;
        }
        s->idle_tv.tv_sec = (time_t)s->idle_timeout;
        s->idle_tv.tv_usec = (suseconds_t)((s->idle_timeout - (double)(time_t)s->idle_timeout) * 1e6);
        if (!(s->handshake_timeout > 0)) {
            conf_param *p = conf_get(n, "handshake_timeout");
            conf_errors_add(errs, p ? p->file : n->file, p ? p->line : n->line,
                            "handshake_timeout must be greater than 0");
            rc = -1;
        }
    }
    /* <security> and <transport>: checked even after other errors, so that
     * --dry-run reports everything at once */
    conf_node *sec = NULL, *tr = NULL;
    for (size_t i = 0; i < n->nchildren; i++) {
        conf_node *ch = n->children[i];
        conf_node **slot = !strcmp(ch->name, "security") ? &sec : !strcmp(ch->name, "transport") ? &tr : NULL;
        if (!slot)
            continue;
        if (*slot) {
            conf_errors_add(errs, ch->file, ch->line, "more than one <%s> in <source @type forward>", ch->name);
            rc = -1;
            continue;
        }
        *slot = ch;
    }
    if (sec && !(s->auth = fwd_auth_create(sec, errs)))
        rc = -1;
    if (tr) {
        const char *proto = tr->arg && *tr->arg ? tr->arg : "tcp";
        if (!strcmp(proto, "tls")) {
            if (!(s->tls = tls_srv_create(tr, errs)))
                rc = -1;
        } else if (!strcmp(proto, "tcp")) {
            char dummy;
            if (conf_bind(tr, fwd_transport_tcp_spec, &dummy, errs))
                rc = -1;
        } else {
            conf_errors_add(errs, tr->file, tr->line,
                            "<transport %s> is not supported by @type forward; use <transport tls> or <transport tcp>",
                            proto);
            rc = -1;
        }
    }
    if (rc) {
        fwd_source_free(s);
        return NULL;
    }
    if (s->source_hostname_key)
        s->resolve_hostname = 1;
    if (s->resolve_hostname) {
        FILE *f = fopen("/etc/hosts", "re");
        if (f) {
            char *buf = calloc(1, 65536 + 1);
            size_t got = buf ? fread(buf, 1, 65536, f) : 0;
            if (buf)
                buf[got] = 0;
            s->hosts = buf;
            fclose(f);
        }
    }
    s->dopts.skip_invalid_event = s->skip_invalid_event;
    s->dopts.tag = s->tag;
    s->dopts.add_tag_prefix = s->add_tag_prefix;
    s->dopts.source_address_key = s->source_address_key;
    s->dopts.source_hostname_key = s->source_hostname_key;
    s->dopts.max_decompressed = s->decompressed_size_limit;
    s->dopts.max_depth = (int)s->max_nesting_depth;
    s->dopts.max_string_length = s->max_string_length;
    return s;
}

void fwd_source_free(fwd_source *s)
{
    if (!s)
        return;
    free(s->hosts);
    fwd_source_close(s);
    if (s->workers && (s->auth || s->tls))
        wlog_info("in_forward", "%s: handshakes: %llu completed, %llu refused, %llu TLS failures, %llu timeouts",
                  s->base.id,
                  (unsigned long long)atomic_load(&s->hs_ok), (unsigned long long)atomic_load(&s->hs_refused),
                  (unsigned long long)atomic_load(&s->hs_tls_failed),
                  (unsigned long long)atomic_load(&s->hs_timeouts));
    fwd_auth_free(s->auth);
    tls_srv_free(s->tls);
    conf_unbind(forward_spec, s);
    source_fini(&s->base);
    free(s);
}

void fwd_source_adopt(fwd_source *old, fwd_source *nw)
{
    /* what a reload may change without changing the configuration text:
     * certificate and key files (re-read by fwd_source_create), the label
     * object (a new router) */
    tls_srv_ctx *t = old->tls;
    old->tls = nw->tls;
    nw->tls = t;
    struct fwd_auth *a = old->auth;
    old->auth = nw->auth;
    nw->auth = a;
    old->base.label = nw->base.label;
}

/* ---- the plugin (aggregator/source.h) -------------------------------------------- */

static source *fwd_create(conf_node *n, int index, conf_errors *errs)
{
    fwd_source *s = fwd_source_create(n, index, errs);
    return s ? &s->base : NULL;
}

static int fwd_start(source *s, const source_env *env)
{
    return fwd_source_listen((fwd_source *)s, env->base, env->workers, env->nworkers);
}

static void fwd_close(source *s)
{
    ((fwd_source *)s)->retiring = 1; /* its connections close when parked workers resume */
    fwd_source_close((fwd_source *)s);
}

static void fwd_free(source *s) { fwd_source_free((fwd_source *)s); }
static void fwd_adopt(source *running, source *nw) { fwd_source_adopt((fwd_source *)running, (fwd_source *)nw); }
static void *fwd_gate_new(worker *workers, int n) { return fwd_quiesce(workers, n); }
static int fwd_gate_wait(void *g, int n, double timeout) { return fwd_gate_wait_parked(g, n, timeout); }
static void fwd_gate_go(void *g, router *newrt, worker *workers, int n) { fwd_gate_release(g, newrt, workers, n); }

const source_plugin in_forward_plugin = {
    .name = "forward",
    .spec = forward_spec,
    .create = fwd_create,
    .start = fwd_start,
    .close = fwd_close,
    .free = fwd_free,
    .adopt = fwd_adopt,
    .metrics = fwd_metrics,
    .worker_init = fwd_worker_init,
    .worker_stop = fwd_worker_stop,
    .worker_free = fwd_worker_free,
    .quiesce = fwd_gate_new,
    .wait_parked = fwd_gate_wait,
    .release = fwd_gate_go,
};
