/*
 * outputs/forward/sd.c: the forward output's <service_discovery> file
 * (Fluentd's sd_file): a YAML or JSON list of servers, each
 *   {host, port, name, weight, standby, username, password, shared_key}
 * (host and port required, as Fluentd's). The file is read when the output
 * starts (and so at every reload); Fluentd also re-reads it when it
 * changes, weir does not (docs/migrating-from-fluentd.md).
 *
 * The entries become <server> sections in Fluentd syntax, parsed by the
 * config parser and bound by forward.c like written ones, so they get the
 * same checks and messages. YAML: what such files hold (a block sequence of
 * block or flow mappings of plain, 'single' or "double" quoted scalars,
 * comments, ---); anything else is refused with its line.
 *
 * Threads: the main thread, at init.
 */
#include <ctype.h>
#include <jansson.h>
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

/* ---- <service_discovery> (Fluentd's sd_static and sd_file) ------------------------------------- */

typedef struct fwd_sd {
    int type; /* static|file */
    char *path, *conf_encoding;
} fwd_sd;

const conf_spec out_forward_sd_spec[] = {
    {"@type", CONF_ENUM, NULL, 1, offsetof(fwd_sd, type), "static|file",
     "`static`: the `<service>` sections inside (each takes `<server>`'s parameters); `file`: the servers listed in "
     "`path`. `srv` (DNS SRV records) is refused"},
    {"path", CONF_STR, "/etc/fluent/sd.yaml", 0, offsetof(fwd_sd, path), NULL,
     "`@type file`: a YAML list (JSON when the name ends `.json`) of servers, each with `host` and `port` and "
     "optionally `name`, `weight`, `standby`, `username`, `password`, `shared_key`. Read at start and at every "
     "reload (Fluentd also re-reads it when it changes)"},
    {"conf_encoding", CONF_STR, "utf-8", 0, offsetof(fwd_sd, conf_encoding), NULL,
     "`@type file`: the file's encoding; only `utf-8`"},
    {"service", CONF_SECTION, NULL, 0, 0, NULL, "`@type static`: one per server, with `<server>`'s parameters"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

int fwd_sd_add(conf_node *ch, int (*add)(void *, conf_node *, conf_errors *), void *c, conf_errors *errs)
{
    conf_param *t = conf_get(ch, "@type");
    if (t && !strcmp(t->value, "srv")) {
        conf_error_at(errs, ch, "@type",
                      "service discovery @type srv (DNS SRV records) is not supported: list the servers in <server>, "
                      "<service_discovery> @type static or @type file");
        return -1;
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
