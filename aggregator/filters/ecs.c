/*
 * aggregator/filters/ecs.c: weir's own ecs filter: maps common fields to the
 * Elastic Common Schema, keeping every other field. Written as flat dotted
 * keys ("log.level"), which Elasticsearch reads as the ECS objects.
 *
 *   timestamp true     "@timestamp" (timestamp_key) from the event time,
 *                      RFC 3339 UTC with milliseconds, when absent
 *   level true         "log.level" from the first of level_keys (default
 *                      level, severity, log.level, loglevel), lowercased and
 *                      normalised to trace/debug/info/warn/error/fatal
 *                      (WARNING -> warn, ERR -> error, CRITICAL/EMERG/ALERT/
 *                      PANIC -> fatal, NOTICE -> info, syslog severities
 *                      0-7 and pino/bunyan numbers 10-60); the source key is
 *                      renamed (removed), unknown words are kept lowercased
 *   message_keys       (default msg, log) the first string found becomes
 *                      "message" (renamed) when the record has no "message"
 *   service_keys       (default service, service_name, app,
 *                      $.kubernetes.labels.app,
 *                      $['kubernetes']['labels']['app.kubernetes.io/name']) the
 *                      first string becomes "service.name" when absent (as a
 *                      flat key or $.service.name); top-level keys are
 *                      renamed, nested ones copied
 * Set message_keys or service_keys to [] to switch that part off.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/timefmt.h"
#include "aggregator/filter.h"
#include "aggregator/record.h"

typedef struct ecs_ctx {
    int timestamp, level;
    char *timestamp_key;
    char **level_keys, **message_keys, **service_keys;
    rec_path *lp, *mp, *sp;
    size_t nl, nm, ns;
    rec_path service_name_nested;
    size_t tsk_len;
} ecs_ctx;

static const conf_spec ecs_spec[] = {
    {"timestamp", CONF_BOOL, "true", 0, offsetof(ecs_ctx, timestamp), NULL,
     "add `timestamp_key` from the event time, RFC 3339 UTC with milliseconds, when absent"},
    {"timestamp_key", CONF_STR, "@timestamp", 0, offsetof(ecs_ctx, timestamp_key), NULL, "its key"},
    {"level", CONF_BOOL, "true", 0, offsetof(ecs_ctx, level), NULL,
     "`log.level` from the first of `level_keys`, renamed and normalised to `trace`, `debug`, `info`, `warn`, "
     "`error`, `fatal` (WARNING→warn, ERR→error, CRITICAL/ALERT/EMERG/PANIC→fatal, NOTICE→info, syslog numbers 0-7, "
     "pino/bunyan 10-60); other words are lowercased"},
    {"level_keys", CONF_ARRAY, "level,severity,log.level,loglevel", 0, offsetof(ecs_ctx, level_keys), NULL,
     "where to look for the level, in order"},
    {"message_keys", CONF_ARRAY, "msg,log", 0, offsetof(ecs_ctx, message_keys), NULL,
     "when there is no `message`, the first string found is renamed `message`; `[]`: off"},
    {"service_keys", CONF_ARRAY,
     "[\"service\",\"service_name\",\"app\",\"$.kubernetes.labels.app\","
     "\"$['kubernetes']['labels']['app.kubernetes.io/name']\"]",
     0, offsetof(ecs_ctx, service_keys), NULL,
     "when there is no `service.name` (flat or nested), the first string becomes `service.name` (top-level keys "
     "renamed, nested ones copied); `[]`: off"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};


static int ecs_init(filter *f, conf_node *n, conf_errors *errs)
{
    ecs_ctx *c = f->ctx;
    int bad = 0;
    c->tsk_len = strlen(c->timestamp_key);
    bad |= filter_compile_keys(c->level_keys, &c->lp, &c->nl, "level_keys", n, errs);
    bad |= filter_compile_keys(c->message_keys, &c->mp, &c->nm, "message_keys", n, errs);
    bad |= filter_compile_keys(c->service_keys, &c->sp, &c->ns, "service_keys", n, errs);
    char err[64];
    if (rec_path_compile(&c->service_name_nested, "$.service.name", err, sizeof err))
        bad = -1;
    return bad ? -1 : 0;
}

static void ecs_exit(filter *f)
{
    ecs_ctx *c = f->ctx;
    rec_paths_free(c->lp, c->nl);
    rec_paths_free(c->mp, c->nm);
    rec_paths_free(c->sp, c->ns);
    rec_path_free(&c->service_name_nested);
}

/* Normalised level name for a value, into buf (lowercased unknown words). */
static size_t level_name(const uint8_t *v, size_t vl, char *buf, size_t cap)
{
    const uint8_t *q = v;
    mp_obj o;
    if (mp_read(&q, v + vl, &o) != MP_OK)
        return 0;
    const char *name = NULL;
    if (o.type == MP_UINT || o.type == MP_INT) {
        int64_t x = o.type == MP_UINT ? (o.v.u > 1000 ? 1000 : (int64_t)o.v.u) : o.v.i;
        static const char *const syslog[] = {"fatal", "fatal", "fatal", "error", "warn", "info", "info", "debug"};
        static const char *const tens[] = {NULL, "trace", "debug", "info", "warn", "error", "fatal"}; /* 10 .. 60 */
        if (x >= 0 && x <= 7)
            name = syslog[x];
        else if (x >= 10 && x <= 60 && x % 10 == 0)
            name = tens[x / 10];
        else
            return (size_t)snprintf(buf, cap, "%lld", (long long)x);
        size_t l = strlen(name);
        memcpy(buf, name, l);
        return l;
    }
    if (o.type != MP_STR && o.type != MP_BIN)
        return 0;
    size_t n = o.len;
    /* trim blanks */
    const uint8_t *s = o.ptr;
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (!n)
        return 0;
    static const struct {
        const char *w, *name;
    } map[] = {
        {"trace", "trace"},     {"trc", "trace"},       {"finest", "trace"}, {"finer", "debug"},
        {"fine", "debug"},      {"debug", "debug"},     {"dbg", "debug"},    {"d", "debug"},
        {"info", "info"},       {"inf", "info"},        {"information", "info"}, {"informational", "info"},
        {"notice", "info"},     {"i", "info"},          {"warn", "warn"},    {"warning", "warn"},
        {"wrn", "warn"},        {"w", "warn"},          {"error", "error"},  {"err", "error"},
        {"e", "error"},         {"severe", "error"},    {"fatal", "fatal"},  {"critical", "fatal"},
        {"crit", "fatal"},      {"alert", "fatal"},     {"emerg", "fatal"},  {"emergency", "fatal"},
        {"panic", "fatal"},     {"f", "fatal"},         {"c", "fatal"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (strlen(map[i].w) == n && strncasecmp((const char *)s, map[i].w, n) == 0) {
            size_t l = strlen(map[i].name);
            memcpy(buf, map[i].name, l);
            return l;
        }
    }
    if (n > cap)
        n = cap;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)((s[i] >= 'A' && s[i] <= 'Z') ? s[i] + 32 : s[i]);
    return n;
}

static const uint8_t *first_string(const uint8_t *rec, size_t len, const rec_path *paths, size_t n, size_t *vl,
                                   size_t *which)
{
    for (size_t i = 0; i < n; i++) {
        const uint8_t *v = rec_lookup(rec, len, &paths[i], vl);
        if (v && ((*v & 0xe0) == 0xa0 || *v == 0xd9 || *v == 0xda || *v == 0xdb)) {
            *which = i;
            return v;
        }
    }
    return NULL;
}

/* What a record gets: the keys set and the keys dropped (rec_rewrite_n). */
typedef struct ecs_edit {
    rec_kv set[4], drop[4];
    size_t nset, ndrop;
} ecs_edit;

/* Set `name` to v, found at path `from`; the key v was found under goes
 * when it is a top-level key other than `name` (the field moves). */
static void move_field(ecs_edit *ed, const char *name, size_t name_len, const uint8_t *v, size_t vl,
                       const rec_path *from)
{
    const rec_path_step *k = &from->steps[0];
    ed->set[ed->nset++] = (rec_kv){name, name_len, v, vl};
    if (from->n == 1 && k->key && !(k->key_len == name_len && !memcmp(k->key, name, name_len)))
        ed->drop[ed->ndrop++] = (rec_kv){k->key, k->key_len, NULL, 0};
}

static int ecs_filter(filter *f, filter_call *call, const uint8_t *rec, size_t len)
{
    const ecs_ctx *c = f->ctx;
    ecs_edit ed;
    size_t vl, which;
    ed.nset = ed.ndrop = 0;
    uint8_t tsbuf[48], lvbuf[80];
    if (c->timestamp && !rec_get(rec, len, c->timestamp_key, c->tsk_len, &vl)) {
        char ts[40];
        size_t n = time_fmt(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S.%LZ", call->sec, call->nsec, 1);
        wbuf w = {tsbuf, 0, sizeof tsbuf, sizeof tsbuf};
        if (mpw_str(&w, ts, n) == 0)
            ed.set[ed.nset++] = (rec_kv){c->timestamp_key, c->tsk_len, tsbuf, w.len};
    }
    if (c->level) {
        for (size_t i = 0; i < c->nl; i++) {
            const uint8_t *v = rec_lookup(rec, len, &c->lp[i], &vl);
            if (!v)
                continue;
            char name[64];
            size_t nn = level_name(v, vl, name, sizeof name);
            if (!nn)
                continue;
            wbuf w = {lvbuf, 0, sizeof lvbuf, sizeof lvbuf};
            if (mpw_str(&w, name, nn))
                break;
            const rec_path *p = &c->lp[i];
            int same = w.len == vl && memcmp(lvbuf, v, vl) == 0 && p->n == 1 && p->steps[0].key &&
                       p->steps[0].key_len == 9 && !memcmp(p->steps[0].key, "log.level", 9);
            if (!same)
                move_field(&ed, "log.level", 9, lvbuf, w.len, p);
            break;
        }
    }
    if (c->nm && !rec_get(rec, len, "message", 7, &vl)) {
        const uint8_t *v = first_string(rec, len, c->mp, c->nm, &vl, &which);
        if (v)
            move_field(&ed, "message", 7, v, vl, &c->mp[which]);
    }
    if (c->ns && !rec_get(rec, len, "service.name", 12, &vl) && !rec_lookup(rec, len, &c->service_name_nested, &vl)) {
        const uint8_t *v = first_string(rec, len, c->sp, c->ns, &vl, &which);
        if (v)
            move_field(&ed, "service.name", 12, v, vl, &c->sp[which]);
    }
    if (!ed.nset && !ed.ndrop)
        return FILTER_KEEP;
    if (rec_rewrite_n(call->out, rec, len, ed.drop, ed.ndrop, ed.set, ed.nset)) {
        snprintf(call->err, sizeof call->err, "ecs: out of memory or malformed record");
        return FILTER_ERROR;
    }
    return FILTER_MODIFY;
}

FILTER_PLUGIN(ecs, ecs);
