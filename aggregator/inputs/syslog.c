/*
 * aggregator/inputs/syslog.c: `<source @type syslog>` (Fluentd's in_syslog)
 * and `<source @type udp>` (Fluentd's in_udp): datagrams or a TCP stream
 * of messages, one thread per source with its own event loop.
 *
 * syslog: each message is parsed as parser_syslog does (syslog_parse.c, or
 * a `<parse>` of weir's types after the "<PRI>" is taken off) and tagged
 * TAG.FACILITY.SEVERITY; udp: each datagram (or line) is parsed by its
 * `<parse>` and tagged `tag`. Messages of one read are routed together, a
 * batch per run of one tag, and the thread waits until the outputs have
 * them (source_emit_wait) before it reads again: a full output slows the
 * reads, as in Fluentd, where emit blocks the input's loop.
 *
 * Ownership: the source owns its sockets, event base, thread, connections,
 * router_ctx and parsers. Created and freed on the main thread; everything
 * else on its thread.
 */
#include "aggregator/inputs/syslog.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
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
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "lib/batch.h"
#include "lib/log.h"
#include "lib/prom.h"
#include "aggregator/parse.h"
#include "aggregator/source.h"
#include "aggregator/tls_server.h"

typedef struct sl_conf {
    int64_t port;
    char *bind;
    char *tag;
    int protocol_type; /* 0 none, 1 tcp, 2 udp */
    int frame_type;    /* 0 traditional, 1 octet_count */
    int include_source_host;
    char *source_host_key;
    int emit_unmatched_lines;
    char *source_hostname_key;
    char *resolve_hostname; /* "", "true", "false": nil unless given */
    int send_keepalive_packet;
    char *source_address_key;
    char *severity_key, *priority_key, *facility_key;
    uint64_t message_length_limit;
    double blocking_timeout;
    char *delimiter;
    char *format; /* v0.12 */
    /* udp */
    int64_t receive_buffer_size;
    int remove_newline;
} sl_conf;

/* <parse> of the syslog type */
typedef struct sl_parse_conf {
    int message_format;
    int with_priority;
    char *time_format, *rfc5424_time_format;
    int keep_time_key;
    int parser_engine;
    int support_colonless_ident;
    int estimate_current_event;
    char *time_type, *timezone;
    int localtime, utc;
} sl_parse_conf;

static const conf_spec syslog_spec[] = {
    {"port", CONF_INT, "5140", 0, offsetof(sl_conf, port), NULL, "port to listen on (UDP, or TCP with `<transport tcp>`)"},
    {"bind", CONF_STR, "0.0.0.0", 0, offsetof(sl_conf, bind), NULL, "address to listen on"},
    {"tag", CONF_STR, NULL, 1, offsetof(sl_conf, tag), NULL,
     "required: the tag prefix; records are tagged `TAG.FACILITY.SEVERITY` (`TAG.unmatched` for unparsed lines)"},
    {"protocol_type", CONF_ENUM, NULL, 0, offsetof(sl_conf, protocol_type), "|tcp|udp",
     "deprecated form of `<transport tcp>` / `<transport udp>`"},
    {"frame_type", CONF_ENUM, "traditional", 0, offsetof(sl_conf, frame_type), "traditional|octet_count",
     "TCP framing: `traditional` (messages end at `delimiter`) or `octet_count` (RFC 6587 `LEN MSG`)"},
    {"include_source_host", CONF_BOOL, "false", 0, offsetof(sl_conf, include_source_host), NULL,
     "deprecated: add the sender's address at `source_host_key`"},
    {"source_host_key", CONF_STR, "source_host", 0, offsetof(sl_conf, source_host_key), NULL,
     "the key of `include_source_host`"},
    {"emit_unmatched_lines", CONF_BOOL, "false", 0, offsetof(sl_conf, emit_unmatched_lines), NULL,
     "a message that does not parse becomes `{\"unmatched_line\": MESSAGE}` tagged `TAG.unmatched`"},
    {"source_hostname_key", CONF_STR, NULL, 0, offsetof(sl_conf, source_hostname_key), NULL,
     "add the sender's host name (reverse DNS; the address when it has none) at this key"},
    {"resolve_hostname", CONF_STR, NULL, 0, offsetof(sl_conf, resolve_hostname), NULL,
     "`true` with `source_hostname_key` (its default then); `false` with it is refused"},
    {"send_keepalive_packet", CONF_BOOL, "false", 0, offsetof(sl_conf, send_keepalive_packet), NULL,
     "TCP keepalive on accepted connections (refused with UDP)"},
    {"source_address_key", CONF_STR, NULL, 0, offsetof(sl_conf, source_address_key), NULL,
     "add the sender's IP address at this key"},
    {"severity_key", CONF_STR, NULL, 0, offsetof(sl_conf, severity_key), NULL,
     "add the severity name (`emerg` .. `debug`) at this key"},
    {"priority_key", CONF_STR, NULL, 0, offsetof(sl_conf, priority_key), NULL,
     "deprecated name of `severity_key` (a warning)"},
    {"facility_key", CONF_STR, NULL, 0, offsetof(sl_conf, facility_key), NULL,
     "add the facility name (`kern` .. `local7`) at this key"},
    {"message_length_limit", CONF_SIZE, "2048", 0, offsetof(sl_conf, message_length_limit), NULL,
     "UDP: the longest datagram read (longer ones are cut here, as Fluentd's)"},
    {"blocking_timeout", CONF_TIME, "0.5s", 0, offsetof(sl_conf, blocking_timeout), NULL,
     "accepted for compatibility; no effect"},
    {"delimiter", CONF_STR, "\n", 0, offsetof(sl_conf, delimiter), NULL,
     "TCP `traditional` framing: the end of a message"},
    {"format", CONF_STR, NULL, 0, offsetof(sl_conf, format), NULL, "v0.12 form of `<parse> @type FORMAT`"},
    {"parse", CONF_SECTION, NULL, 0, 0, NULL,
     "`@type syslog` (the default; parameters below) or another of weir's types, given the message after its "
     "`<PRI>`"},
    {"transport", CONF_SECTION, NULL, 0, 0, NULL,
     "`<transport udp>` (the default), `<transport tcp>`, or `<transport tls>` (TCP with TLS; the parameters of the "
     "forward input's `<transport tls>`: `cert_path`, `private_key_path`, `ca_path`, `client_cert_auth`, versions, "
     "ciphers)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const conf_spec in_syslog_parse_spec[] = {
    {"message_format", CONF_ENUM, "rfc3164", 0, offsetof(sl_parse_conf, message_format), "rfc3164|rfc5424|auto",
     "`rfc3164`, `rfc5424`, or `auto` (RFC 5424 when `<PRI>` is followed by a version)"},
    {"with_priority", CONF_BOOL, "true", 0, offsetof(sl_parse_conf, with_priority), NULL,
     "messages start with `<PRI>` (in_syslog's default `true`)"},
    {"time_format", CONF_STR, NULL, 0, offsetof(sl_parse_conf, time_format), NULL,
     "the RFC 3164 time (`%b %d %H:%M:%S`; no year: this year; local time)"},
    {"rfc5424_time_format", CONF_STR, "%Y-%m-%dT%H:%M:%S.%L%z", 0, offsetof(sl_parse_conf, rfc5424_time_format),
     NULL, "the RFC 5424 time (without fractional seconds also accepted)"},
    {"keep_time_key", CONF_BOOL, "false", 0, offsetof(sl_parse_conf, keep_time_key), NULL,
     "keep the time text at `time`"},
    {"parser_engine", CONF_ENUM, "regexp", 0, offsetof(sl_parse_conf, parser_engine), "regexp|string",
     "accepted; weir parses as Fluentd's `regexp` engine does"},
    {"parser_type", CONF_ENUM, "regexp", 0, offsetof(sl_parse_conf, parser_engine), "regexp|string",
     "old name of `parser_engine`"},
    {"support_colonless_ident", CONF_BOOL, "true", 0, offsetof(sl_parse_conf, support_colonless_ident), NULL,
     "accepted (the `string` engine's option)"},
    {"estimate_current_event", CONF_BOOL, "true", 0, offsetof(sl_parse_conf, estimate_current_event), NULL,
     "accepted; a message always has a time"},
    {"time_type", CONF_STR, NULL, 0, offsetof(sl_parse_conf, time_type), NULL, "accepted; `string` only"},
    {"timezone", CONF_STR, NULL, 0, offsetof(sl_parse_conf, timezone), NULL, "accepted; times are local"},
    {"localtime", CONF_BOOL, "true", 0, offsetof(sl_parse_conf, localtime), NULL, "accepted; times are local"},
    {"utc", CONF_BOOL, "false", 0, offsetof(sl_parse_conf, utc), NULL, "accepted; times are local"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const conf_spec udp_spec[] = {
    {"port", CONF_INT, "5160", 0, offsetof(sl_conf, port), NULL, "UDP port to listen on"},
    {"bind", CONF_STR, "0.0.0.0", 0, offsetof(sl_conf, bind), NULL, "address to listen on"},
    {"tag", CONF_STR, NULL, 1, offsetof(sl_conf, tag), NULL, "required: the tag of the records"},
    {"source_hostname_key", CONF_STR, NULL, 0, offsetof(sl_conf, source_hostname_key), NULL,
     "add the sender's host name (reverse DNS; the address when it has none) at this key"},
    {"source_address_key", CONF_STR, NULL, 0, offsetof(sl_conf, source_address_key), NULL,
     "add the sender's IP address at this key"},
    {"message_length_limit", CONF_SIZE, "4096", 0, offsetof(sl_conf, message_length_limit), NULL,
     "the longest datagram read (longer ones are cut here, as Fluentd's)"},
    {"body_size_limit", CONF_SIZE, "4096", 0, offsetof(sl_conf, message_length_limit), NULL,
     "old name of `message_length_limit`"},
    {"remove_newline", CONF_BOOL, "true", 0, offsetof(sl_conf, remove_newline), NULL,
     "take one trailing newline off each datagram"},
    {"receive_buffer_size", CONF_INT, "0", 0, offsetof(sl_conf, receive_buffer_size), NULL,
     "the socket's receive buffer (`SO_RCVBUF`); `0`: the system's"},
    {"blocking_timeout", CONF_TIME, "0.5s", 0, offsetof(sl_conf, blocking_timeout), NULL,
     "accepted for compatibility; no effect"},
    {"delimiter", CONF_STR, "\n", 0, offsetof(sl_conf, delimiter), NULL, "accepted (Fluentd's in_tcp's); no effect"},
    {"format", CONF_STR, NULL, 0, offsetof(sl_conf, format), NULL, "v0.12 form of `<parse> @type FORMAT`"},
    {"parse", CONF_SECTION, NULL, 0, 0, NULL, "required: the `<parse>` of each datagram"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

typedef struct sl_conn {
    struct sl_conn *next, *prev;
    struct bufferevent *bev;
    tls_srv_conn *tls;     /* <transport tls>: the session; NULL for tcp */
    struct evbuffer *plain; /* with tls: decrypted bytes not framed yet */
    struct sl_in *s;
    char addr[64];
    char host[256];
    int resolved;
} sl_conn;

typedef struct sl_in {
    source base;
    int is_udp_plugin; /* @type udp */
    sl_conf c;
    sl_parse_conf pc;
    int tcp;
    tls_srv_ctx *tls; /* <transport tls> */
    syslog_parser sp;
    int has_sp;
    parser ps; /* another <parse> type */
    int has_ps, ps_tried;
    conf_node *parse_root;
    struct event_base *evbase;
    int ufd;
    struct event *uev;
    struct evconnlistener *lis;
    sl_conn *conns;
    pthread_t thread;
    int started, stopping;
    router_ctx *route;
    /* the run of one tag being collected */
    char tag[512];
    size_t tag_len;
    wbuf entries, rec;
    uint32_t nrec;
    uint8_t *dgram;
    /* reverse DNS of the last UDP sender */
    char last_addr[64], last_host[256];
    atomic_uint_fast64_t messages, records, unmatched, invalid, emit_failures, connections, tls_failures;
} sl_in;

static void sl_free(source *s);

static conf_node *child(conf_node *n, const char *name)
{
    for (size_t i = 0; i < n->nchildren; i++)
        if (!strcmp(n->children[i]->name, name))
            return n->children[i];
    return NULL;
}

static source *sl_create_common(conf_node *n, int index, conf_errors *errs, int udp_plugin)
{
    sl_in *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    extern const source_plugin in_syslog_plugin, in_udp_plugin;
    source_init(&s->base, udp_plugin ? &in_udp_plugin : &in_syslog_plugin, n, index);
    s->ufd = -1;
    s->is_udp_plugin = udp_plugin;
    if (conf_bind(n, udp_plugin ? udp_spec : syslog_spec, &s->c, errs)) {
        sl_free(&s->base);
        return NULL;
    }
    int bad = 0;
    if (s->c.port < 0 || s->c.port > 65535) {
        conf_error_at(errs, n, "port", "port must be between 0 and 65535");
        bad = -1;
    }
    if (s->c.priority_key) {
        wlog_warn("in_syslog", "%s: priority_key is deprecated. Use severity_key instead", s->base.id);
        if (!s->c.severity_key)
            s->c.severity_key = strdup(s->c.priority_key);
    }
    if (s->c.include_source_host) {
        if (s->c.source_address_key) {
            conf_error_at(errs, n, "include_source_host", "specify either source_address_key or include_source_host");
            bad = -1;
        } else {
            s->c.source_address_key = strdup(s->c.source_host_key);
        }
    }
    if (s->c.source_hostname_key && s->c.resolve_hostname && !strcmp(s->c.resolve_hostname, "false")) {
        conf_error_at(errs, n, "resolve_hostname", "resolve_hostname must be true with source_hostname_key");
        bad = -1;
    }
    /* transport */
    conf_node *tn = child(n, "transport");
    s->tcp = s->c.protocol_type == 1;
    if (tn) {
        const char *proto = tn->arg && tn->arg[0] ? tn->arg : "udp";
        if (!strcmp(proto, "tcp"))
            s->tcp = 1;
        else if (!strcmp(proto, "tls")) {
            /* the forward input's <transport tls> (Fluentd's server helper for both) */
            s->tcp = 1;
            if (udp_plugin) {
                conf_errors_add(errs, tn->file, tn->line, "<transport tls> is not available for the udp input");
                bad = -1;
            } else if (!(s->tls = tls_srv_create(tn, errs))) {
                bad = -1;
            }
        } else if (strcmp(proto, "udp")) {
            conf_errors_add(errs, tn->file, tn->line, "invalid transport '%s' (tcp, udp, tls)", proto);
            bad = -1;
        }
        if (!s->tls)
            for (size_t i = 0; i < tn->nparams; i++)
                tn->params[i].used = 1;
    }
    if (s->c.send_keepalive_packet && !s->tcp) {
        conf_error_at(errs, n, "send_keepalive_packet", "send_keepalive_packet is available for tcp/tls");
        bad = -1;
    }
    /* the parser */
    conf_node *pn = child(n, "parse");
    const char *ptype = pn ? conf_get_value(pn, "@type") : s->c.format;
    if (!udp_plugin && (!ptype || !strcmp(ptype, "syslog"))) {
        if (pn) {
            conf_get(pn, "@type");
            if (conf_bind(pn, in_syslog_parse_spec, &s->pc, errs))
                bad = -1;
        } else {
            conf_node empty = {0};
            empty.name = "parse";
            conf_bind(&empty, in_syslog_parse_spec, &s->pc, errs);
        }
        char err[256];
        if (!bad && syslog_parser_init(&s->sp, s->pc.message_format, s->pc.with_priority, s->pc.time_format,
                                       s->pc.rfc5424_time_format, s->pc.keep_time_key, err, sizeof err)) {
            conf_errors_add(errs, pn ? pn->file : n->file, pn ? pn->line : n->line, "<parse>: %s", err);
            bad = -1;
        }
        s->has_sp = !bad;
    } else if (!ptype) {
        conf_errors_add(errs, n->file, n->line, "the udp input needs a <parse> section");
        bad = -1;
    } else {
        if (!pn) {
            char text[256];
            snprintf(text, sizeof text, "<parse>\n  @type %s\n</parse>\n", ptype);
            s->parse_root = conf_parse_string(text, "<format>", errs);
            if (s->parse_root && s->parse_root->nchildren)
                pn = s->parse_root->children[0];
        }
        s->ps_tried = 1;
        if (!pn || parse_configure(&s->ps, pn, errs))
            bad = -1;
        else
            s->has_ps = 1;
    }
    if (bad) {
        sl_free(&s->base);
        return NULL;
    }
    return &s->base;
}

static source *syslog_create(conf_node *n, int index, conf_errors *errs)
{
    return sl_create_common(n, index, errs, 0);
}

static source *udp_create(conf_node *n, int index, conf_errors *errs) { return sl_create_common(n, index, errs, 1); }

/* ---- emitting (the source's thread) --------------------------------------------------------------- */

static void flush_run(sl_in *s)
{
    if (!s->nrec)
        return;
    char why[256];
    uint32_t n = s->nrec;
    s->nrec = 0;
    if (source_emit_wait(s->route, s->base.rt, s->base.label, s->tag, s->tag_len, &s->entries, n, 30.0,
                         &s->stopping, why, sizeof why) == 0) {
        atomic_fetch_add(&s->records, n);
    } else {
        atomic_fetch_add(&s->emit_failures, n);
        wlog_error(s->is_udp_plugin ? "in_udp" : "in_syslog", "%s: failed to emit %u records tagged %s: %s",
                   s->base.id, n, s->tag, why);
    }
    s->entries.len = 0;
}

/* append one record (in s->rec) to the run of `tag` */
static void add_entry(sl_in *s, const char *tag, size_t tl, uint32_t sec, uint32_t nsec)
{
    if (tl >= sizeof s->tag)
        tl = sizeof s->tag - 1;
    if (s->nrec && (tl != s->tag_len || memcmp(tag, s->tag, tl) || s->entries.len > (256u << 10)))
        flush_run(s);
    if (!s->nrec) {
        memcpy(s->tag, tag, tl);
        s->tag[tl] = 0;
        s->tag_len = tl;
    }
    size_t start = s->entries.len;
    if (batch_put_entry_head(&s->entries, sec, nsec, NULL, 0) || wbuf_add(&s->entries, s->rec.data, s->rec.len)) {
        s->entries.len = start;
        return;
    }
    s->nrec++;
}

static void now_time(uint32_t *sec, uint32_t *nsec)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    *sec = (uint32_t)ts.tv_sec;
    *nsec = (uint32_t)ts.tv_nsec;
}

/* the sender's pairs: source_address_key, source_hostname_key */
static size_t peer_pairs(sl_in *s, const char *addr, const char *host, rec_kv *kv, wbuf *vals, size_t *off)
{
    size_t n = 0;
    if (s->c.source_address_key) {
        off[n] = vals->len;
        mpw_str(vals, addr, strlen(addr));
        kv[n] = (rec_kv){s->c.source_address_key, strlen(s->c.source_address_key), NULL, vals->len - off[n]};
        n++;
    }
    if (s->c.source_hostname_key) {
        off[n] = vals->len;
        mpw_str(vals, host, strlen(host));
        kv[n] = (rec_kv){s->c.source_hostname_key, strlen(s->c.source_hostname_key), NULL, vals->len - off[n]};
        n++;
    }
    return n;
}

static void unmatched(sl_in *s, const char *msg, size_t n, const char *addr, const char *host)
{
    atomic_fetch_add(&s->unmatched, 1);
    if (!s->c.emit_unmatched_lines)
        return;
    rec_kv kv[2];
    size_t off[2];
    wbuf vals = {0};
    size_t np = peer_pairs(s, addr, host, kv, &vals, off);
    for (size_t i = 0; i < np; i++)
        kv[i].val = vals.data + off[i];
    s->rec.len = 0;
    mpw_map(&s->rec, 1 + (uint32_t)np);
    mpw_str(&s->rec, "unmatched_line", 14);
    mpw_str(&s->rec, msg, n);
    for (size_t i = 0; i < np; i++) {
        mpw_str(&s->rec, kv[i].key, kv[i].key_len);
        wbuf_add(&s->rec, kv[i].val, kv[i].val_len);
    }
    wbuf_free(&vals);
    char tag[600];
    int tl = snprintf(tag, sizeof tag, "%s.unmatched", s->c.tag);
    uint32_t sec, nsec;
    now_time(&sec, &nsec);
    add_entry(s, tag, (size_t)tl, sec, nsec);
}

static void syslog_message(sl_in *s, const char *msg, size_t n, const char *addr, const char *host)
{
    atomic_fetch_add(&s->messages, 1);
    int pri = -1;
    uint32_t sec = 0, nsec = 0;
    syslog_fields f;
    wbuf vals = {0};
    rec_kv kv[4];
    size_t off[4], nkv = 0;
    const char *text = msg;
    size_t tn = n;
    if (s->has_sp) {
        int rc = syslog_parse(&s->sp, msg, n, &f);
        if (rc != 0) {
            if (rc == -2)
                atomic_fetch_add(&s->invalid, 1);
            wlog_warn("in_syslog", "%s: %s: %.*s", s->base.id, rc == -2 ? "invalid input" : "failed to parse message",
                      (int)(n > 512 ? 512 : n), msg);
            unmatched(s, msg, n, addr, host);
            return;
        }
        pri = f.pri;
        sec = f.sec;
        nsec = f.nsec;
    } else if (!s->is_udp_plugin) {
        /* SYSLOG_REGEXP: /^\<([0-9]+)\>(.*)/ before another parser */
        size_t e = 1;
        while (e < n && msg[e] >= '0' && msg[e] <= '9')
            e++;
        if (!(n > 2 && msg[0] == '<' && e > 1 && e < n && msg[e] == '>')) {
            wlog_warn("in_syslog", "%s: invalid syslog message: %.*s", s->base.id, (int)(n > 512 ? 512 : n), msg);
            unmatched(s, msg, n, addr, host);
            return;
        }
        pri = atoi(msg + 1);
        text = msg + e + 1;
        tn = n - e - 1;
        const char *nl = memchr(text, '\n', tn); /* (.*) stops at a line end */
        if (nl)
            tn = (size_t)(nl - text);
    }
    const char *fac = syslog_facility(pri), *sev = syslog_severity(pri);
    if (!s->is_udp_plugin) {
        if (s->c.severity_key) {
            off[nkv] = vals.len;
            mpw_str(&vals, sev, strlen(sev));
            kv[nkv] = (rec_kv){s->c.severity_key, strlen(s->c.severity_key), NULL, vals.len - off[nkv]};
            nkv++;
        }
        if (s->c.facility_key) {
            off[nkv] = vals.len;
            if (fac)
                mpw_str(&vals, fac, strlen(fac));
            else
                mpw_nil(&vals);
            kv[nkv] = (rec_kv){s->c.facility_key, strlen(s->c.facility_key), NULL, vals.len - off[nkv]};
            nkv++;
        }
    }
    nkv += peer_pairs(s, addr, host, kv + nkv, &vals, off + nkv);
    for (size_t i = 0; i < nkv; i++)
        kv[i].val = vals.data + off[i];
    s->rec.len = 0;
    if (s->has_sp) {
        if (syslog_record(&f, kv, nkv, &s->rec))
            goto out;
    } else {
        int has_time = 0;
        char err[256] = "";
        wbuf m = {0};
        if (parse_text(&s->ps, text, tn, &m, &has_time, &sec, &nsec, err, sizeof err) != PARSE_OK) {
            wbuf_free(&m);
            wlog_warn(s->is_udp_plugin ? "in_udp" : "in_syslog", "%s: pattern not matched: %.*s%s%s", s->base.id,
                      (int)(n > 512 ? 512 : n), msg, err[0] ? ": " : "", err);
            unmatched(s, msg, n, addr, host);
            goto out;
        }
        if (!has_time)
            now_time(&sec, &nsec);
        if (rec_rewrite_n(&s->rec, m.data, m.len, NULL, 0, kv, nkv)) {
            wbuf_free(&m);
            goto out;
        }
        wbuf_free(&m);
    }
    char tag[600];
    int tl = s->is_udp_plugin ? snprintf(tag, sizeof tag, "%s", s->c.tag)
                              : snprintf(tag, sizeof tag, "%s.%s.%s", s->c.tag, fac ? fac : "", sev);
    add_entry(s, tag, (size_t)tl < sizeof tag ? (size_t)tl : sizeof tag - 1, sec, nsec);
out:
    wbuf_free(&vals);
}

static void addr_text(const struct sockaddr *sa, socklen_t sl, char *addr, size_t cap)
{
    addr[0] = 0;
    getnameinfo(sa, sl, addr, (socklen_t)cap, NULL, 0, NI_NUMERICHOST);
}

static void host_of(const struct sockaddr *sa, socklen_t sl, const char *addr, char *host, size_t cap)
{
    if (getnameinfo(sa, sl, host, (socklen_t)cap, NULL, 0, NI_NAMEREQD) != 0)
        snprintf(host, cap, "%s", addr);
}

/* ---- UDP ------------------------------------------------------------------------------------------ */

static void udp_read(evutil_socket_t fd, short what, void *arg)
{
    sl_in *s = arg;
    size_t cap = s->c.message_length_limit ? s->c.message_length_limit : 1;
    for (int k = 0; k < 256; k++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        ssize_t r = recvfrom(fd, s->dgram, cap, MSG_TRUNC, (struct sockaddr *)&ss, &sl);
        if (r < 0)
            break;
        size_t n = (size_t)r > cap ? cap : (size_t)r;
        char addr[64];
        addr_text((struct sockaddr *)&ss, sl, addr, sizeof addr);
        if (s->c.source_hostname_key && strcmp(addr, s->last_addr)) {
            host_of((struct sockaddr *)&ss, sl, addr, s->last_host, sizeof s->last_host);
            snprintf(s->last_addr, sizeof s->last_addr, "%s", addr);
        }
        const char *m = (const char *)s->dgram;
        if (!s->is_udp_plugin || s->c.remove_newline) { /* data.chomp */
            if (n && m[n - 1] == '\n')
                n--;
            if (n && m[n - 1] == '\r')
                n--;
        }
        syslog_message(s, m, n, addr, s->last_host);
    }
    flush_run(s);
}

/* ---- TCP ------------------------------------------------------------------------------------------ */

static void conn_close(sl_conn *c)
{
    sl_in *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    if (c->tls)
        tls_srv_conn_free(c->tls);
    if (c->plain)
        evbuffer_free(c->plain);
    free(c);
}

/* <transport tls>: the ciphertext read so far through TLS into c->plain;
 * what TLS has to send (handshake, alerts) written back. 0; 1 when the peer
 * closed the session (close_notify); -1 on a TLS error (logged, counted). */
static int tls_pump(sl_conn *c, struct bufferevent *bev)
{
    sl_in *s = c->s;
    struct evbuffer *raw = bufferevent_get_input(bev);
    char err[256] = "";
    int rc = 0;
    size_t n = evbuffer_get_length(raw);
    if (n && tls_srv_feed(c->tls, evbuffer_pullup(raw, (ev_ssize_t)n), n) != 0) {
        snprintf(err, sizeof err, "out of memory");
        rc = -1;
    }
    evbuffer_drain(raw, n);
    while (!rc) {
        char buf[16384];
        int r = tls_srv_read(c->tls, buf, sizeof buf, err, sizeof err);
        if (r > 0)
            evbuffer_add(c->plain, buf, (size_t)r);
        else if (r == TLS_SRV_EOF)
            rc = 1;
        else if (r == TLS_SRV_ERROR)
            rc = -1;
        else
            break;
    }
    if (rc == 1)
        tls_srv_shutdown(c->tls); /* answer close_notify with ours */
    wbuf wire = {0};
    if (tls_srv_drain(c->tls, &wire) == 0 && wire.len) {
        if (rc) /* the connection closes now: out before it (best effort, a few bytes) */
            (void)!send(bufferevent_getfd(bev), wire.data, wire.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        else
            bufferevent_write(bev, wire.data, wire.len);
    }
    wbuf_free(&wire);
    if (rc < 0) {
        atomic_fetch_add(&s->tls_failures, 1);
        wlog_warn("in_syslog", "%s: %s: TLS %s: %s; connection closed", s->base.id, c->addr,
                  tls_srv_established(c->tls) ? "error" : "handshake failed", err);
    }
    return rc;
}

static void tcp_read(struct bufferevent *bev, void *arg)
{
    sl_conn *c = arg;
    sl_in *s = c->s;
    int tls_end = 0;
    if (c->tls && (tls_end = tls_pump(c, bev)) < 0) {
        conn_close(c);
        return;
    }
    struct evbuffer *in = c->tls ? c->plain : bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
    size_t pos = 0;
    const char *d = s->c.delimiter ? s->c.delimiter : "\n";
    for (;;) {
        const char *m;
        size_t ml;
        long used = syslog_frame(buf + pos, n - pos, s->c.frame_type == 1, d, strlen(d), &m, &ml);
        if (used < 0) {
            wlog_warn("in_syslog", "%s: %s: bad octet count, connection closed", s->base.id, c->addr);
            evbuffer_drain(in, pos);
            flush_run(s);
            conn_close(c);
            return;
        }
        if (!used)
            break;
        syslog_message(s, m, ml, c->addr, c->host);
        pos += (size_t)used;
    }
    evbuffer_drain(in, pos);
    flush_run(s);
    if (evbuffer_get_length(in) > (4u << 20)) { /* no end of message in 4 MiB */
        wlog_warn("in_syslog", "%s: %s: a message longer than 4 MiB, connection closed", s->base.id, c->addr);
        conn_close(c);
    } else if (tls_end) { /* close_notify: what it carried is read */
        conn_close(c);
    }
}

static void tcp_event(struct bufferevent *bev, short what, void *arg)
{
    sl_conn *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_close(c);
}

static void tcp_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int socklen, void *arg)
{
    sl_in *s = arg;
    sl_conn *c = calloc(1, sizeof *c);
    struct bufferevent *bev = c ? bufferevent_socket_new(s->evbase, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
    if (!bev) {
        free(c);
        close(fd);
        return;
    }
    if (s->tls && (!(c->tls = tls_srv_conn_new(s->tls)) || !(c->plain = evbuffer_new()))) {
        if (c->tls)
            tls_srv_conn_free(c->tls);
        bufferevent_free(bev);
        free(c);
        return;
    }
    atomic_fetch_add(&s->connections, 1);
    c->bev = bev;
    c->s = s;
    addr_text(sa, (socklen_t)socklen, c->addr, sizeof c->addr);
    if (s->c.source_hostname_key)
        host_of(sa, (socklen_t)socklen, c->addr, c->host, sizeof c->host);
    if (s->c.send_keepalive_packet) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    bufferevent_setcb(bev, tcp_read, NULL, tcp_event, c);
    bufferevent_enable(bev, EV_READ);
}

/* ---- lifecycle ------------------------------------------------------------------------------------ */

static void *sl_main(void *arg)
{
    sl_in *s = arg;
    pthread_setname_np(pthread_self(), s->is_udp_plugin ? "in_udp" : "in_syslog");
    event_base_loop(s->evbase, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int sl_start(source *src, const source_env *env)
{
    sl_in *s = (sl_in *)src;
    const char *mod = s->is_udp_plugin ? "in_udp" : "in_syslog";
    if (!(s->route = router_ctx_new(src->rt)) || !(s->evbase = event_base_new()))
        return -1;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = s->tcp ? SOCK_STREAM : SOCK_DGRAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%lld", (long long)s->c.port);
    if (getaddrinfo(s->c.bind, port, &hints, &ai) != 0 || !ai) {
        wlog_error(mod, "%s: cannot resolve bind address %s", src->id, s->c.bind);
        return -1;
    }
    int rc = -1;
    if (s->tcp) {
        s->lis = evconnlistener_new_bind(s->evbase, tcp_accept, s,
                                         LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, -1,
                                         ai->ai_addr, (int)ai->ai_addrlen);
        rc = s->lis ? 0 : -1;
    } else {
        s->ufd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (s->ufd >= 0) {
            setsockopt(s->ufd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (s->c.receive_buffer_size > 0) {
                int rb = (int)s->c.receive_buffer_size;
                setsockopt(s->ufd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb);
            }
        }
        if (s->ufd >= 0 && bind(s->ufd, ai->ai_addr, ai->ai_addrlen) == 0) {
            s->dgram = malloc(s->c.message_length_limit ? s->c.message_length_limit : 1);
            s->uev = event_new(s->evbase, s->ufd, EV_READ | EV_PERSIST, udp_read, s);
            rc = s->dgram && s->uev && event_add(s->uev, NULL) == 0 ? 0 : -1;
        }
    }
    freeaddrinfo(ai);
    if (rc) {
        wlog_error(mod, "%s: cannot listen on %s:%lld (%s): %s", src->id, s->c.bind, (long long)s->c.port,
                   s->tcp ? "tcp" : "udp", strerror(errno));
        return -1;
    }
    if (pthread_create(&s->thread, NULL, sl_main, s) != 0)
        return -1;
    s->started = 1;
    wlog_info(mod, "%s: listening %s on %s:%lld", src->id, s->tls ? tls_srv_summary(s->tls) : s->tcp ? "tcp" : "udp",
              s->c.bind, (long long)s->c.port);
    return 0;
}

static void sl_stop(source *src)
{
    sl_in *s = (sl_in *)src;
    if (!s->started)
        return;
    __atomic_store_n(&s->stopping, 1, __ATOMIC_RELAXED);
    event_base_loopbreak(s->evbase);
    pthread_join(s->thread, NULL);
    s->started = 0;
    /* the sockets go now: a reload's successor binds the same port next */
    while (s->conns)
        conn_close(s->conns);
    if (s->lis)
        evconnlistener_free(s->lis);
    s->lis = NULL;
    if (s->uev)
        event_free(s->uev);
    s->uev = NULL;
    if (s->ufd >= 0)
        close(s->ufd);
    s->ufd = -1;
    wlog_info(s->is_udp_plugin ? "in_udp" : "in_syslog",
              "%s: stopped: %" PRIuFAST64 " records from %" PRIuFAST64 " messages, %" PRIuFAST64 " unparsed",
              src->id, prom_ld(&s->records), prom_ld(&s->messages), prom_ld(&s->unmatched));
}

static void sl_free(source *src)
{
    sl_in *s = (sl_in *)src;
    if (!s)
        return;
    sl_stop(src);
    while (s->conns)
        conn_close(s->conns);
    if (s->lis)
        evconnlistener_free(s->lis);
    if (s->uev)
        event_free(s->uev);
    if (s->ufd >= 0)
        close(s->ufd);
    if (s->evbase)
        event_base_free(s->evbase);
    if (s->route)
        router_ctx_free(s->route);
    if (s->has_sp)
        syslog_parser_free(&s->sp);
    if (s->ps_tried)
        parse_free(&s->ps);
    conf_free(s->parse_root);
    if (s->tls)
        tls_srv_free(s->tls);
    conf_unbind(s->is_udp_plugin ? udp_spec : syslog_spec, &s->c);
    conf_unbind(in_syslog_parse_spec, &s->pc);
    wbuf_free(&s->entries);
    wbuf_free(&s->rec);
    free(s->dgram);
    source_fini(&s->base);
    free(s);
}

static void sl_metrics(source *const *srcs, size_t n, const source_env *env, struct evbuffer *o)
{
    if (!n)
        return;
    const char *plug = ((sl_in *)srcs[0])->is_udp_plugin ? "udp" : "syslog";
    char lb[256];
    static const struct {
        const char *suffix, *help;
        size_t off;
    } fam[] = {
        {"messages_total", "Messages (datagrams or framed TCP messages) read", offsetof(sl_in, messages)},
        {"records_total", "Records the outputs accepted", offsetof(sl_in, records)},
        {"unmatched_total", "Messages that did not parse", offsetof(sl_in, unmatched)},
        {"emit_failures_total", "Records an output refused (dropped, logged)", offsetof(sl_in, emit_failures)},
        {"tls_failures_total", "TLS connections closed on a failed handshake or a TLS error (<transport tls>)",
         offsetof(sl_in, tls_failures)},
    };
    for (size_t f = 0; f < sizeof fam / sizeof fam[0]; f++) {
        char name[128];
        snprintf(name, sizeof name, "weir_%s_%s", plug, fam[f].suffix);
        prom_head(o, name, "counter", fam[f].help);
        for (size_t i = 0; i < n; i++)
            evbuffer_add_printf(o, "%s{source=\"%s\"} %" PRIu64 "\n", name, prom_label(srcs[i]->id, lb, sizeof lb),
                                prom_ld((atomic_uint_fast64_t *)((char *)srcs[i] + fam[f].off)));
    }
}

const source_plugin in_syslog_plugin = {
    .name = "syslog",
    .spec = syslog_spec,
    .create = syslog_create,
    .start = sl_start,
    .stop = sl_stop,
    .free = sl_free,
    .metrics = sl_metrics,
};

const source_plugin in_udp_plugin = {
    .name = "udp",
    .spec = udp_spec,
    .create = udp_create,
    .start = sl_start,
    .stop = sl_stop,
    .free = sl_free,
    .metrics = sl_metrics,
};
