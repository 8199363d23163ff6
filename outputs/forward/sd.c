/*
 * outputs/forward/sd.c: the forward output's <service_discovery> file
 * (Fluentd's sd_file): a YAML or JSON list of servers, each
 *   {host, port, name, weight, standby, username, password, shared_key}
 * (host and port required, as Fluentd's). The file is read when the output
 * starts (and so at every reload); Fluentd also re-reads it when it
 * changes, weir does not (docs/migrating-from-fluentd.md).
 *
 * The file's entries become <server> sections in Fluentd syntax, parsed by the
 * config parser and bound by forward.c like written ones, so they get the
 * same checks and messages. YAML: what such files hold (a block sequence of
 * block or flow mappings of plain, 'single' or "double" quoted scalars,
 * comments, ---); anything else is refused with its line.
 *
 * @type srv (Fluentd's sd_srv): its parameters are checked at init; the
 * query (fwd_srv_query, glibc's resolver on a private state) is made by
 * forward.c at start and on its refresh thread (docs/outputs/forward.md).
 *
 * Threads: the main thread, at init; fwd_srv_query any thread.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/fdio.h"
#include "config/conf.h"
#include "lib/wbuf.h"
#include "outputs/forward/sd.h"

static const char *const KEYS[] = {"host", "port", "name", "weight", "standby", "username", "password", "shared_key"};
#define NKEYS (sizeof KEYS / sizeof KEYS[0])

typedef struct sd_out {
    wbuf text;    /* the <server> sections */
    int open;     /* a <server> is open in text */
    int has[NKEYS];
    int entry;    /* 1-based */
    int line;     /* where the entry starts (YAML), 0 for JSON */
    const char *path;
    char *err;
    size_t errlen;
} sd_out;

static int add_str(wbuf *b, const char *s) { return wbuf_add(b, s, strlen(s)); }

static int end_entry(sd_out *o)
{
    if (!o->open)
        return 0;
    o->open = 0;
    for (int k = 0; k < 2; k++)
        if (!o->has[k]) {
            if (o->line)
                snprintf(o->err, o->errlen, "%s:%d: the server has no `%s` (a service needs host and port)", o->path,
                         o->line, KEYS[k]);
            else
                snprintf(o->err, o->errlen, "%s: server %d has no `%s` (a service needs host and port)", o->path,
                         o->entry, KEYS[k]);
            return -1;
        }
    return add_str(&o->text, "</server>\n");
}

static int begin_entry(sd_out *o, int line)
{
    if (end_entry(o))
        return -1;
    o->open = 1;
    o->entry++;
    o->line = line;
    memset(o->has, 0, sizeof o->has);
    return add_str(&o->text, "<server>\n");
}

/* One key: value of the open entry; unknown keys are ignored (Fluentd's sd_file reads only these). */
static int put_kv(sd_out *o, const char *key, size_t klen, const char *val, size_t vlen)
{
    size_t k = 0;
    while (k < NKEYS && !(strlen(KEYS[k]) == klen && !memcmp(KEYS[k], key, klen)))
        k++;
    if (k == NKEYS)
        return 0;
    o->has[k] = 1;
    /* single-quoted in Fluentd syntax: no interpolation; \\ and \' escaped */
    if (add_str(&o->text, "  ") || add_str(&o->text, KEYS[k]) || add_str(&o->text, " '"))
        return -1;
    for (size_t i = 0; i < vlen; i++) {
        if (val[i] == '\n' || val[i] == '\r') {
            snprintf(o->err, o->errlen, "%s: server %d: `%s` holds a line break", o->path, o->entry, KEYS[k]);
            return -1;
        }
        if ((val[i] == '\\' || val[i] == '\'') && wbuf_addc(&o->text, '\\'))
            return -1;
        if (wbuf_addc(&o->text, (uint8_t)val[i]))
            return -1;
    }
    return add_str(&o->text, "'\n");
}

/* ---- JSON --------------------------------------------------------------------------------- */

static int from_json(sd_out *o, const char *data, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(data, len, 0, &je);
    if (!j) {
        snprintf(o->err, o->errlen, "%s:%d: not JSON: %s", o->path, je.line, je.text);
        return -1;
    }
    int rc = 0;
    if (!json_is_array(j)) {
        snprintf(o->err, o->errlen, "%s: expected a JSON array of servers", o->path);
        rc = -1;
    }
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e)
    {
        if (rc)
            break;
        if (!json_is_object(e)) {
            snprintf(o->err, o->errlen, "%s: server %zu is not an object", o->path, i + 1);
            rc = -1;
            break;
        }
        rc = begin_entry(o, 0);
        const char *key;
        json_t *v;
        json_object_foreach(e, key, v)
        {
            char num[32];
            const char *s = NULL;
            if (json_is_string(v))
                s = json_string_value(v);
            else if (json_is_integer(v)) {
                snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
                s = num;
            } else if (json_is_boolean(v))
                s = json_is_true(v) ? "true" : "false";
            else if (json_is_null(v))
                continue;
            if (!s) {
                snprintf(o->err, o->errlen, "%s: server %zu: `%s` must be a string, a number or a boolean", o->path,
                         i + 1, key);
                rc = -1;
                break;
            }
            if ((rc = put_kv(o, key, strlen(key), s, strlen(s))) != 0)
                break;
        }
        if (!rc)
            rc = end_entry(o);
    }
    json_decref(j);
    return rc;
}

/* ---- YAML (the subset server lists use) ----------------------------------------------------- */

/* A scalar at *p (plain, 'single' or "double" quoted), up to one of `stops` (plain) or the end;
 * unquoted into out. -1 on a bad quote. */
static int yaml_scalar(const char **p, const char *end, const char *stops, wbuf *out)
{
    const char *s = *p;
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    out->len = 0;
    if (s < end && (*s == '\'' || *s == '"')) {
        char q = *s++;
        for (;;) {
            if (s >= end)
                return -1;
            if (*s == q) {
                if (q == '\'' && s + 1 < end && s[1] == '\'') { /* '' is ' */
                    if (wbuf_addc(out, '\''))
                        return -1;
                    s += 2;
                    continue;
                }
                s++;
                break;
            }
            if (q == '"' && *s == '\\' && s + 1 < end) {
                char c = s[1];
                char r = c == 'n' ? '\n' : c == 't' ? '\t' : c;
                if (wbuf_addc(out, (uint8_t)r))
                    return -1;
                s += 2;
                continue;
            }
            if (wbuf_addc(out, (uint8_t)*s++))
                return -1;
        }
        while (s < end && (*s == ' ' || *s == '\t'))
            s++;
        *p = s;
        return 0;
    }
    const char *v = s;
    while (s < end && !strchr(stops, *s) && !(*s == '#' && s > v && (s[-1] == ' ' || s[-1] == '\t')))
        s++;
    const char *ve = s;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    if (ve - v == 1 && *v == '~') /* null */
        ve = v;
    if (wbuf_add(out, v, (size_t)(ve - v)))
        return -1;
    *p = s;
    return 0;
}

/* YAML 1.1 booleans (Ruby's Psych) as Fluentd's true/false */
static void yaml_bool(wbuf *v)
{
    static const char *const t[] = {"yes", "Yes", "YES", "on", "On", "ON", "True", "TRUE"};
    static const char *const f[] = {"no", "No", "NO", "off", "Off", "OFF", "False", "FALSE"};
    for (size_t i = 0; i < 8; i++) {
        const char *r = strlen(t[i]) == v->len && !memcmp(v->data, t[i], v->len)   ? "true"
                        : strlen(f[i]) == v->len && !memcmp(v->data, f[i], v->len) ? "false"
                                                                                    : NULL;
        if (r) {
            v->len = 0;
            (void)wbuf_add(v, r, strlen(r));
            return;
        }
    }
}

/* "key: value" at *p (block) or inside a flow mapping (stops ",}"). */
static int yaml_pair(sd_out *o, const char **p, const char *end, const char *stops, int line, wbuf *k, wbuf *v)
{
    if (yaml_scalar(p, end, ":", k) || *p >= end || **p != ':') {
        snprintf(o->err, o->errlen, "%s:%d: expected `key: value`", o->path, line);
        return -1;
    }
    (*p)++;
    if (yaml_scalar(p, end, stops, v)) {
        snprintf(o->err, o->errlen, "%s:%d: unterminated quoted value", o->path, line);
        return -1;
    }
    if (v->len && (v->data[0] == '[' || v->data[0] == '{' || v->data[0] == '&' || v->data[0] == '*' ||
                   v->data[0] == '|' || v->data[0] == '>')) {
        snprintf(o->err, o->errlen, "%s:%d: `%.*s` needs a single value (a string, a number, true/false)", o->path,
                 line, (int)k->len, (const char *)k->data);
        return -1;
    }
    yaml_bool(v);
    return put_kv(o, (const char *)k->data, k->len, (const char *)v->data, v->len);
}

static int from_yaml(sd_out *o, const char *data, size_t len)
{
    const char *p = data, *end = data + len;
    wbuf k = {0}, v = {0};
    int rc = 0, line = 0, item_indent = -1;
    while (!rc && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        line++;
        const char *s = p;
        p = eol ? eol + 1 : end;
        while (le > s && (le[-1] == '\r' || le[-1] == ' ' || le[-1] == '\t'))
            le--;
        int indent = 0;
        while (s < le && *s == ' ')
            s++, indent++;
        if (s == le || *s == '#' || (le - s == 3 && !memcmp(s, "---", 3)))
            continue;
        if (*s == '\t') {
            snprintf(o->err, o->errlen, "%s:%d: a tab in the indentation (YAML indents with spaces)", o->path, line);
            rc = -1;
            break;
        }
        if (*s == '-' && (s + 1 == le || s[1] == ' ')) {
            if (item_indent >= 0 && indent != item_indent) {
                snprintf(o->err, o->errlen, "%s:%d: a list item at another indentation", o->path, line);
                rc = -1;
                break;
            }
            item_indent = indent;
            if ((rc = begin_entry(o, line)) != 0)
                break;
            s++;
            while (s < le && *s == ' ')
                s++;
            if (s == le)
                continue;
            if (*s == '{') { /* - {host: a, port: 1} */
                s++;
                for (;;) {
                    while (s < le && *s == ' ')
                        s++;
                    if (s < le && *s == '}')
                        break;
                    if ((rc = yaml_pair(o, &s, le, ",}", line, &k, &v)) != 0)
                        break;
                    if (s < le && *s == ',') {
                        s++;
                        continue;
                    }
                    if (s >= le || *s != '}') {
                        snprintf(o->err, o->errlen, "%s:%d: unterminated {...}", o->path, line);
                        rc = -1;
                    }
                    break;
                }
                continue;
            }
            rc = yaml_pair(o, &s, le, "", line, &k, &v);
            continue;
        }
        if (!o->open || indent <= item_indent) {
            snprintf(o->err, o->errlen, "%s:%d: expected a list of servers (`- host: ...`)", o->path, line);
            rc = -1;
            break;
        }
        rc = yaml_pair(o, &s, le, "", line, &k, &v);
    }
    if (!rc)
        rc = end_entry(o);
    wbuf_free(&k);
    wbuf_free(&v);
    return rc;
}

/* ---- <service_discovery> (Fluentd's sd_static, sd_file and sd_srv) ---------------------------- */

typedef struct fwd_sd {
    int type; /* static|file|srv */
    char *path, *conf_encoding;
} fwd_sd;

const conf_spec out_forward_sd_spec[] = {
    {"@type", CONF_ENUM, NULL, 1, offsetof(fwd_sd, type), "static|file|srv",
     "`static`: the `<service>` sections inside (each takes `<server>`'s parameters); `file`: the servers listed in "
     "`path`; `srv`: DNS SRV records (its parameters below)"},
    {"path", CONF_STR, "/etc/fluent/sd.yaml", 0, offsetof(fwd_sd, path), NULL,
     "`@type file`: a YAML list (JSON when the name ends `.json`) of servers, each with `host` and `port` and "
     "optionally `name`, `weight`, `standby`, `username`, `password`, `shared_key`. Read at start and at every "
     "reload (Fluentd also re-reads it when it changes)"},
    {"conf_encoding", CONF_STR, "utf-8", 0, offsetof(fwd_sd, conf_encoding), NULL,
     "`@type file`: the file's encoding; only `utf-8`"},
    {"service", CONF_SECTION, NULL, 0, 0, NULL, "`@type static`: one per server, with `<server>`'s parameters"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const conf_spec out_forward_sd_srv_spec[] = {
    {"service", CONF_STR, NULL, 1, offsetof(fwd_sd_srv, service), NULL,
     "required: the service, without RFC 2782's underscore (`fluentd` queries `_fluentd._tcp.HOSTNAME`)"},
    {"proto", CONF_STR, "tcp", 0, offsetof(fwd_sd_srv, proto), NULL, "the protocol, without the underscore"},
    {"hostname", CONF_STR, NULL, 1, offsetof(fwd_sd_srv, hostname), NULL, "required: the domain of the records"},
    {"dns_server_host", CONF_STR, NULL, 0, offsetof(fwd_sd_srv, dns_server_host), NULL,
     "the DNS server to ask, an IPv4 address: `host` or `host:port` (default: the system's, /etc/resolv.conf)"},
    {"interval", CONF_INT, "60", 0, offsetof(fwd_sd_srv, interval), NULL,
     "seconds between queries: servers that appear are added, servers that disappear stop receiving; an empty or "
     "failed answer keeps the servers (an error line and `weir_forward_output_discovery_failures_total`)"},
    {"dns_lookup", CONF_BOOL, "true", 0, offsetof(fwd_sd_srv, dns_lookup), NULL,
     "connect to the target's address (its A record, else AAAA, from the same DNS server); `false`: to the "
     "target name"},
    {"shared_key", CONF_STR, NULL, 0, offsetof(fwd_sd_srv, shared_key), NULL,
     "the servers' key (default: `<security>`'s)"},
    {"username", CONF_STR, "", 0, offsetof(fwd_sd_srv, username), NULL,
     "the servers' user (default: `<security>`'s)"},
    {"password", CONF_STR, "", 0, offsetof(fwd_sd_srv, password), NULL, "its password"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

void fwd_sd_srv_free(fwd_sd_srv *srv)
{
    if (!srv)
        return;
    conf_unbind(out_forward_sd_srv_spec, srv);
    free(srv);
}

/* @type srv: bind and check (no query) */
static int sd_srv_bind(conf_node *ch, fwd_sd_srv **out, conf_errors *errs)
{
    if (*out) {
        conf_errors_add(errs, ch->file, ch->line, "one <service_discovery> @type srv per forward output");
        return -1;
    }
    fwd_sd_srv *s = calloc(1, sizeof *s);
    if (!s) {
        conf_errors_add(errs, ch->file, ch->line, "out of memory");
        return -1;
    }
    int bad = conf_bind(ch, out_forward_sd_srv_spec, s, errs);
    if (!bad && snprintf(s->target, sizeof s->target, "_%s._%s.%s", s->service, s->proto, s->hostname) >=
                    (int)sizeof s->target) {
        conf_error_at(errs, ch, "hostname", "the SRV name _%s._%s.%s is too long", s->service, s->proto,
                      s->hostname);
        bad = -1;
    }
    if (!bad && s->interval < 1) {
        conf_error_at(errs, ch, "interval", "interval must be at least 1 (seconds)");
        bad = -1;
    }
    if (!bad && s->dns_server_host) {
        /* Fluentd: "host:port" (split at the first ':') or "host" (port 53) */
        char host[256];
        const char *colon = strchr(s->dns_server_host, ':');
        size_t hl = colon ? (size_t)(colon - s->dns_server_host) : strlen(s->dns_server_host);
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : 53;
        struct in_addr a;
        if (hl < sizeof host)
            snprintf(host, sizeof host, "%.*s", (int)hl, s->dns_server_host);
        if (hl >= sizeof host || inet_pton(AF_INET, host, &a) != 1 || (colon && (!end || *end || end == colon + 1)) ||
            port < 1 || port > 65535) {
            conf_error_at(errs, ch, "dns_server_host",
                          "dns_server_host '%s': expected an IPv4 address, `host` or `host:port`", s->dns_server_host);
            bad = -1;
        } else {
            s->ns_addr = a.s_addr;
            s->ns_port = htons((uint16_t)port);
        }
    }
    if (bad) {
        fwd_sd_srv_free(s);
        return -1;
    }
    *out = s;
    return 0;
}

int fwd_sd_add(conf_node *ch, int (*add)(void *, conf_node *, conf_errors *), void *c, fwd_sd_srv **srv,
               conf_errors *errs)
{
    conf_param *t = conf_get(ch, "@type");
    if (t && !strcmp(t->value, "srv")) {
        if (ch->nchildren) {
            conf_errors_add(errs, ch->children[0]->file, ch->children[0]->line,
                            "<%s> does not belong in <service_discovery> @type srv", ch->children[0]->name);
            return -1;
        }
        return sd_srv_bind(ch, srv, errs);
    }
    fwd_sd sd = {0};
    int bad = conf_bind(ch, out_forward_sd_spec, &sd, errs);
    if (!bad && sd.type == 0) {
        for (size_t i = 0; i < ch->nchildren; i++)
            if (add(c, ch->children[i], errs))
                bad = -1;
    } else if (!bad) {
        if (ch->nchildren) {
            conf_errors_add(errs, ch->children[0]->file, ch->children[0]->line,
                            "<service> belongs in <service_discovery> @type static, not @type file");
            bad = -1;
        } else if (strcasecmp(sd.conf_encoding, "utf-8") && strcasecmp(sd.conf_encoding, "utf8")) {
            conf_error_at(errs, ch, "conf_encoding", "conf_encoding %s: only utf-8 is supported", sd.conf_encoding);
            bad = -1;
        } else {
            wbuf text = {0};
            char err[512];
            if (fwd_sd_file_servers(sd.path, &text, err, sizeof err)) {
                conf_error_at(errs, ch, "path", "%s", err);
                bad = -1;
            } else {
                char name[600];
                snprintf(name, sizeof name, "%s (its servers as <server> sections)", sd.path);
                (void)wbuf_addc(&text, 0);
                conf_node *root = conf_parse_string((const char *)text.data, name, errs);
                for (size_t i = 0; root && i < root->nchildren; i++)
                    if (add(c, root->children[i], errs))
                        bad = -1;
                if (!root)
                    bad = -1;
                conf_free(root);
            }
            wbuf_free(&text);
        }
    }
    conf_unbind(out_forward_sd_spec, &sd);
    return bad;
}

/* ---- the file ------------------------------------------------------------------------------- */

int fwd_sd_file_servers(const char *path, wbuf *out, char *err, size_t errlen)
{
    wbuf data = {0};
    char why[400];
    if (file_read_all(path, 4u << 20, &data, why, sizeof why)) {
        snprintf(err, errlen, "service discovery file %s", why);
        return -1;
    }
    /* Fluentd: JSON when what follows the name's first dot is "json", else YAML */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strchr(base, '.');
    sd_out o = {.path = path, .err = err, .errlen = errlen};
    err[0] = 0;
    int rc = dot && !strcmp(dot + 1, "json") ? from_json(&o, data.len ? (const char *)data.data : "", data.len)
                                          : from_yaml(&o, data.len ? (const char *)data.data : "", data.len);
    wbuf_free(&data);
    if (!rc && !o.entry) {
        snprintf(err, errlen, "service discovery file %s lists no server", path);
        rc = -1;
    }
    if (rc) {
        if (!err[0])
            snprintf(err, errlen, "service discovery file %s: out of memory", path);
        wbuf_free(&o.text);
        return -1;
    }
    *out = o.text;
    return 0;
}

/* ---- @type srv: the query ------------------------------------------------------------------- */

/* a resolver of its own (res_nquery is thread-safe on a private state): dns_server_host or the system's
 * servers, a short timeout and few tries, so that a dead DNS server costs a refresh seconds, not minutes */
static int srv_res_init(const fwd_sd_srv *srv, struct __res_state *st, char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    if (res_ninit(st) != 0) {
        snprintf(err, errlen, "sd_srv: cannot initialize the resolver");
        return -1;
    }
    st->retrans = 2;
    st->retry = 2;
    if (srv->ns_addr) {
        /* glibc keeps IPv6 servers of resolv.conf apart (malloc'd, used instead of nsaddr_list[i]) */
        for (int i = 0; i < MAXNS; i++) {
            free(st->_u._ext.nsaddrs[i]);
            st->_u._ext.nsaddrs[i] = NULL;
        }
        st->nscount = 1;
        memset(&st->nsaddr_list[0], 0, sizeof st->nsaddr_list[0]);
        st->nsaddr_list[0].sin_family = AF_INET;
        st->nsaddr_list[0].sin_addr.s_addr = srv->ns_addr;
        st->nsaddr_list[0].sin_port = srv->ns_port;
    }
    return 0;
}

/* a query; the answer's length, 0 when the name has no such record (NXDOMAIN, no data: what Ruby's
 * Resolv::DNS#getresources returns as []), -1 with err */
static int srv_res_query(struct __res_state *st, const char *name, int type, uint8_t *ans, int anslen, char *err,
                         size_t errlen)
{
    int n = res_nquery(st, name, ns_c_in, type, ans, anslen);
    if (n >= 0)
        return n;
    if (st->res_h_errno == HOST_NOT_FOUND || st->res_h_errno == NO_DATA)
        return 0;
    snprintf(err, errlen, "sd_srv: %s query for %s failed: %s", type == ns_t_srv ? "SRV" : "address", name,
             st->res_h_errno == TRY_AGAIN ? "no answer (timeout or server failure)" : hstrerror(st->res_h_errno));
    return -1;
}

/* the first address of `name` (Resolv::DNS#getaddress: A, then AAAA), as text */
static int srv_address(struct __res_state *st, const char *name, char *out, size_t outlen, char *err, size_t errlen)
{
    static const int types[2] = {ns_t_a, ns_t_aaaa};
    uint8_t ans[4096];
    for (int t = 0; t < 2; t++) {
        int n = srv_res_query(st, name, types[t], ans, sizeof ans, err, errlen);
        if (n < 0)
            return -1;
        ns_msg m;
        if (!n || ns_initparse(ans, n, &m) != 0)
            continue;
        for (int i = 0; i < ns_msg_count(m, ns_s_an); i++) {
            ns_rr rr;
            if (ns_parserr(&m, ns_s_an, i, &rr) != 0 || (int)ns_rr_type(rr) != types[t])
                continue;
            if ((t == 0 && ns_rr_rdlen(rr) == 4 && inet_ntop(AF_INET, ns_rr_rdata(rr), out, (socklen_t)outlen)) ||
                (t == 1 && ns_rr_rdlen(rr) == 16 && inet_ntop(AF_INET6, ns_rr_rdata(rr), out, (socklen_t)outlen)))
                return 0;
        }
    }
    snprintf(err, errlen, "sd_srv: no address for %s", name);
    return -1;
}

static int rec_cmp(const void *a, const void *b)
{
    const fwd_srv_rec *x = a, *y = b;
    return x->priority != y->priority ? (x->priority < y->priority ? -1 : 1) : 0;
}

int fwd_srv_query(const fwd_sd_srv *srv, fwd_srv_rec **recs, size_t *nrecs, char *err, size_t errlen)
{
    struct __res_state st;
    *recs = NULL;
    *nrecs = 0;
    if (srv_res_init(srv, &st, err, errlen))
        return -1;
    uint8_t ans[NS_MAXMSG > 65536 ? 65536 : NS_MAXMSG];
    fwd_srv_rec *r = NULL;
    size_t n = 0;
    int rc = -1;
    int len = srv_res_query(&st, srv->target, ns_t_srv, ans, sizeof ans, err, errlen);
    ns_msg m;
    if (len < 0)
        goto out;
    if (len && ns_initparse(ans, len, &m) != 0) {
        snprintf(err, errlen, "sd_srv: a malformed answer for %s", srv->target);
        goto out;
    }
    int count = len ? ns_msg_count(m, ns_s_an) : 0;
    if (count && !(r = calloc((size_t)count, sizeof *r))) {
        snprintf(err, errlen, "sd_srv: out of memory");
        goto out;
    }
    for (int i = 0; i < count; i++) {
        ns_rr rr;
        if (ns_parserr(&m, ns_s_an, i, &rr) != 0) {
            snprintf(err, errlen, "sd_srv: a malformed answer for %s", srv->target);
            goto out;
        }
        if (ns_rr_type(rr) != ns_t_srv || ns_rr_rdlen(rr) < 7)
            continue;
        const uint8_t *d = ns_rr_rdata(rr);
        fwd_srv_rec *e = &r[n];
        e->priority = ns_get16(d);
        e->weight = ns_get16(d + 2);
        e->port = ns_get16(d + 4);
        if (dn_expand(ns_msg_base(m), ns_msg_end(m), d + 6, e->name, sizeof e->name) < 0) {
            snprintf(err, errlen, "sd_srv: a malformed SRV record for %s", srv->target);
            goto out;
        }
        if (!e->name[0] || !strcmp(e->name, ".") || !e->port) /* "." : no service there (RFC 2782) */
            continue;
        if (srv->dns_lookup) {
            if (srv_address(&st, e->name, e->host, sizeof e->host, err, errlen))
                goto out;
        } else {
            snprintf(e->host, sizeof e->host, "%s", e->name);
        }
        n++;
    }
    /* Fluentd: sort_by priority */
    if (n > 1)
        qsort(r, n, sizeof *r, rec_cmp);
    *recs = r;
    *nrecs = n;
    r = NULL;
    rc = 0;
out:
    free(r);
    res_nclose(&st);
    return rc;
}
