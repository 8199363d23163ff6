/* outputs/format.c: msgpack -> JSON/text for <format>/<inject>; see format.h. */
#include "format.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/json.h"
#include "lib/mp.h"
#include "lib/timefmt.h"
#include "aggregator/record.h"
#include "aggregator/ruby_expr.h"
#include "aggregator/timeparse.h"

/* ---- configuration --------------------------------------------------------- */

const conf_spec fmt_format_spec[] = {
    {"@type", CONF_ENUM, "json", 0, offsetof(fmt, type),
     "json|out_file|stdout|single_value|ltsv|msgpack|csv|tsv|hash",
     "`json`: the record as one JSON object per line; `out_file`: `TIME<delimiter>TAG<delimiter>JSON`; `stdout`: "
     "`TIME TAG: JSON`; `single_value`: the value of `message_key`; `ltsv`: `key:value` pairs; `msgpack`: the "
     "record's msgpack; `csv`: the values of `fields` on one line, quoted as Ruby's CSV; `tsv`: the values of "
     "`keys` joined by `delimiter`, each as Ruby's `to_s`; `hash`: the record as Ruby's `Hash#to_s` "
     "(`{\"a\"=>1}`). Without `<format>` or `@type`, the output's own default"},
    {"delimiter", CONF_STR, "\t", 0, offsetof(fmt, delimiter), NULL,
     "between fields. `out_file`, as Fluentd's: a value holding `SPACE` (any case) is a space, `COMMA` a comma, "
     "anything else a tab; `ltsv`: the text as written; `csv`: default `,`, `\\t` or `TAB` is a tab"},
    {"output_tag", CONF_BOOL, "true", 0, offsetof(fmt, output_tag), NULL, "`out_file`: write the tag"},
    {"output_time", CONF_BOOL, "true", 0, offsetof(fmt, output_time), NULL, "`out_file`: write the time"},
    {"time_type", CONF_ENUM, "string", 0, offsetof(fmt, time_type), "string|unixtime|float",
     "`out_file`, `stdout`: the time as `time_format` text (`string`), integer seconds (`unixtime`; v0.12's "
     "`time_as_epoch`) or `SEC.NSEC` (`float`)"},
    {"time_format", CONF_STR, NULL, 0, offsetof(fmt, time_format), NULL,
     "`out_file`, `stdout`: strftime plus `%L` ms, `%N` ns, `%3N/%6N/%9N`; default ISO 8601 (`out_file`), `%Y-%m-%d "
     "%H:%M:%S.%N %z` (`stdout`)"},
    {"localtime", CONF_BOOL, "true", 0, offsetof(fmt, localtime), NULL, "times in local time (`false`: UTC)"},
    {"utc", CONF_BOOL, "false", 0, offsetof(fmt, utc), NULL, "times in UTC (wins over `localtime`)"},
    {"timezone", CONF_STR, NULL, 0, offsetof(fmt, timezone), NULL,
     "times in this zone: a fixed offset (`+09:00`, `-0500`, `+09`, `UTC`) or a zone name (`Asia/Tokyo`, read from "
     "the TZ database under `$TZDIR` or `/usr/share/zoneinfo`); wins over `localtime` and `utc`"},
    {"message_key", CONF_STR, "message", 0, offsetof(fmt, message_key), NULL,
     "`single_value`: the record key written, as Ruby's `to_s` (a string as it is, nil empty, a map as "
     "`{\"a\"=>1}`)"},
    {"add_newline", CONF_BOOL, "true", 0, offsetof(fmt, add_newline), NULL,
     "`single_value`, `ltsv`, `csv`, `tsv`, `hash`: end each record with a newline"},
    {"label_delimiter", CONF_STR, ":", 0, offsetof(fmt, label_delimiter), NULL, "`ltsv`: between a key and its value"},
    {"replacement", CONF_STR, " ", 0, offsetof(fmt, replacement), NULL,
     "`ltsv`: replaces the delimiter where a value holds it"},
    {"fields", CONF_ARRAY, NULL, 0, offsetof(fmt, fields), NULL,
     "`csv`, required: the record keys written, in this order (a missing key is an empty value; other keys, "
     "injected ones included, are left out)"},
    {"keys", CONF_ARRAY, NULL, 0, offsetof(fmt, keys), NULL,
     "`tsv`, required: the record's top-level keys written, in this order (a missing key is an empty value)"},
    {"force_quotes", CONF_BOOL, "true", 0, offsetof(fmt, force_quotes), NULL,
     "`csv`: quote every value (`false`: only empty values and those holding the delimiter, a quote or a line "
     "break; nil is then empty)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

const conf_spec fmt_inject_spec[] = {
    {"time_key", CONF_STR, NULL, 0, offsetof(fmt_inject, time_key), NULL, "add the event time under this key"},
    {"time_type", CONF_ENUM, "float", 0, offsetof(fmt_inject, time_type), "float|unixtime|string",
     "`float` (seconds with microseconds), `unixtime` (integer seconds), `string` (`time_format`, default ISO 8601)"},
    {"time_format", CONF_STR, NULL, 0, offsetof(fmt_inject, time_format), NULL,
     "`time_type string`: strftime plus `%L` ms, `%N` ns, `%3N/%6N/%9N`"},
    {"localtime", CONF_BOOL, "true", 0, offsetof(fmt_inject, localtime), NULL,
     "the string time in local time (`false`: UTC)"},
    {"utc", CONF_BOOL, "false", 0, offsetof(fmt_inject, utc), NULL, "the string time in UTC (wins over `localtime`)"},
    {"timezone", CONF_STR, NULL, 0, offsetof(fmt_inject, timezone), NULL,
     "the string time in this zone: a fixed offset (`+09:00`, `-0500`, `+09`, `UTC`) or a zone name (`Asia/Tokyo`, "
     "read from the TZ database under `$TZDIR` or `/usr/share/zoneinfo`); wins over `localtime` and `utc`"},
    {"tag_key", CONF_STR, NULL, 0, offsetof(fmt_inject, tag_key), NULL, "add the tag under this key"},
    {"hostname_key", CONF_STR, NULL, 0, offsetof(fmt_inject, hostname_key), NULL, "add `hostname` under this key"},
    {"hostname", CONF_STR, NULL, 0, offsetof(fmt_inject, hostname), NULL,
     "the value for `hostname_key`; default: the machine's host name"},
    {"metadata_key", CONF_STR, NULL, 0, offsetof(fmt_inject, metadata_key), NULL,
     "weir: add Fluent Bit's per-event metadata map under this key, when there is one"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static conf_node *child(conf_node *n, const char *name)
{
    for (size_t i = 0; i < n->nchildren; i++)
        if (strcmp(n->children[i]->name, name) == 0)
            return n->children[i];
    return NULL;
}

/* ltsv: the delimiter where the value written from `at` holds it becomes
 * `replacement` (Fluentd's value.to_s.gsub(delimiter, replacement)). */
static int ltsv_replace(wbuf *out, size_t at, const char *d, size_t dl, const char *rep)
{
    if (!memmem(out->data + at, out->len - at, d, dl))
        return 0;
    size_t vlen = out->len - at, rl = strlen(rep);
    char *v = malloc(vlen ? vlen : 1);
    if (!v)
        return -1;
    memcpy(v, out->data + at, vlen);
    out->len = at;
    const char *s = v, *e = v + vlen, *hit;
    int rc = 0;
    while (!rc && (hit = memmem(s, (size_t)(e - s), d, dl))) {
        rc = wbuf_add(out, s, (size_t)(hit - s)) || wbuf_add(out, rep, rl);
        s = hit + dl;
    }
    if (!rc)
        rc = wbuf_add(out, s, (size_t)(e - s));
    free(v);
    return rc ? -1 : 0;
}

/* The zone times are written in: `timezone` (a fixed offset, or a zone
 * name as Fluentd's TZInfo reads it: "Area/Location"), else UTC or local
 * time. 0, or -1 (error added). */
static int zone_configure(fmt_zone *z, const char *tz, int localtime, conf_node *sec, conf_errors *errs)
{
    z->zone = localtime ? TIMEFMT_LOCAL : TIMEFMT_UTC;
    z->off = 0;
    z->db = NULL;
    if (!tz)
        return 0;
    char err[512];
    if (tz_config(tz, &z->off, &z->db, err, sizeof err) != 0) {
        const conf_param *at = conf_get(sec, "timezone");
        conf_errors_add(errs, at ? at->file : sec->file, at ? at->line : sec->line, "%s", err);
        return -1;
    }
    z->zone = TIMEFMT_FIXED;
    return 0;
}


/* csv: fields without the empty ones (Fluentd drops them), at least one;
 * the delimiter `\t` or TAB is a tab, default a comma. */
static int csv_configure(fmt *f, conf_node *fs, conf_errors *errs)
{
    if (!fs) /* csv is never an output's default: @type csv is in <format> */
        return -1;
    const char *d = fs ? conf_get_value(fs, "delimiter") : NULL;
    free(f->delimiter);
    f->delimiter = strdup(!d ? "," : !strcmp(d, "\\t") || !strcmp(d, "TAB") ? "\t" : d);
    if (!f->delimiter)
        return -1;
    size_t k = 0;
    for (size_t i = 0; f->fields && f->fields[i]; i++) {
        if (f->fields[i][0])
            f->fields[k++] = f->fields[i];
        else
            free(f->fields[i]);
    }
    if (f->fields)
        f->fields[k] = NULL;
    const conf_param *fp = conf_get(fs, "fields");
    if (!k) {
        conf_errors_add(errs, fp ? fp->file : fs->file, fp ? fp->line : fs->line,
                        fp ? "empty value is specified in fields parameter"
                           : "missing required parameter 'fields' in <format> (@type csv)");
        return -1;
    }
    if (!(f->csv_paths = calloc(k, sizeof *f->csv_paths)))
        return -1;
    for (; f->ncsv < k; f->ncsv++) {
        char why[256] = "";
        if (rec_path_compile(&f->csv_paths[f->ncsv], f->fields[f->ncsv], why, sizeof why)) {
            conf_errors_add(errs, fp->file, fp->line, "bad record accessor '%s' in fields: %s", f->fields[f->ncsv],
                            why);
            return -1;
        }
    }
    return 0;
}

int fmt_configure(fmt *f, conf_node *n, int default_type, conf_errors *errs)
{
    memset(f, 0, sizeof *f);
    conf_node *fs = child(n, "format");
    conf_node empty = {.name = "format", .file = n->file, .line = n->line};
    int rc = conf_bind(fs ? fs : &empty, fmt_format_spec, f, errs);
    if (!fs || !conf_get_value(fs, "@type"))
        f->type = default_type;
    if (f->utc)
        f->localtime = 0;
    if (zone_configure(&f->tz, f->timezone, f->localtime, fs ? fs : n, errs))
        rc = -1;
    if (f->type == FMT_CSV && csv_configure(f, fs, errs))
        rc = -1;
    if (f->type == FMT_TSV && (!f->keys || !f->keys[0])) {
        conf_errors_add(errs, fs->file, fs->line, "missing required parameter 'keys' in <format> (@type tsv)");
        rc = -1;
    }
    /* out_file's formatter maps its delimiter as Fluentd's does (/SPACE/i,
     * /COMMA/i, else a tab); ltsv's takes it as written */
    if (f->type == FMT_OUT_FILE) {
        const char *d = strcasestr(f->delimiter, "SPACE") ? " " : strcasestr(f->delimiter, "COMMA") ? "," : "\t";
        free(f->delimiter);
        f->delimiter = strdup(d);
    }
    if (fmt_inject_configure(&f->inj, n, errs))
        rc = -1;
    return rc;
}

int fmt_inject_configure(fmt_inject *in, conf_node *n, conf_errors *errs)
{
    int rc = 0;
    memset(in, 0, sizeof *in);
    conf_node *is = child(n, "inject");
    if (!is)
        return 0;
    if (conf_bind(is, fmt_inject_spec, in, errs))
        rc = -1;
    if (in->utc)
        in->localtime = 0;
    if (zone_configure(&in->tz, in->timezone, in->localtime, is, errs))
        rc = -1;
    if (in->hostname_key && !in->hostname) {
        char h[256] = "";
        gethostname(h, sizeof h - 1);
        in->hostname = strdup(h);
    }
    in->active = in->time_key || in->tag_key || in->hostname_key || in->metadata_key;
    return rc;
}

void fmt_inject_free(fmt_inject *in)
{
    tz_config_free(&in->tz.db);
    conf_unbind(fmt_inject_spec, in);
}

void fmt_free(fmt *f)
{
    tz_config_free(&f->tz.db);
    for (size_t i = 0; i < f->ncsv; i++)
        rec_path_free(&f->csv_paths[i]);
    free(f->csv_paths);
    conf_unbind(fmt_format_spec, f);
    fmt_inject_free(&f->inj);
}

/* ---- records --------------------------------------------------------------- */

static int key_is(const uint8_t *p, const uint8_t *end, const char *k)
{
    mp_obj o;
    if (!k || mp_read(&p, end, &o) != MP_OK || (o.type != MP_STR && o.type != MP_BIN))
        return 0;
    size_t n = strlen(k);
    return o.len == n && memcmp(o.ptr, k, n) == 0;
}

/* A time as text: `format` (NULL: ISO 8601) in the zone z. */
static size_t zone_time(char *buf, size_t cap, const char *format, const fmt_zone *z, const entry *e)
{
    int32_t off = z->db ? tz_zone_offset(z->db, e->sec) : z->off;
    return format ? time_fmt_zone(buf, cap, format, e->sec, e->nsec, z->zone, off)
                  : time_iso8601_zone(buf, cap, e->sec, z->zone, off);
}

static int json_time_value(wbuf *out, const fmt_inject *in, const entry *e)
{
    char tmp[128];
    int n;
    switch (in->time_type) {
    case TT_UNIXTIME:
        n = snprintf(tmp, sizeof tmp, "%u", e->sec);
        return wbuf_add(out, tmp, (size_t)n);
    case TT_STRING: {
        /* without time_format Fluentd's formatter gives ISO 8601 ("Z" in UTC) */
        size_t k = zone_time(tmp, sizeof tmp, in->time_format, &in->tz, e);
        return jw_string(out, (const uint8_t *)tmp, k);
    }
    default:
        /* Fluentd: time.to_r.truncate(6): microseconds */
        n = snprintf(tmp, sizeof tmp, "%u.%06u", e->sec, e->nsec / 1000);
        /* trim trailing zeros but keep one decimal, like Ruby's Float#to_s */
        while (n > 2 && tmp[n - 1] == '0' && tmp[n - 2] != '.')
            n--;
        return wbuf_add(out, tmp, (size_t)n);
    }
}

/* One injected key's value. */
static int inject_value(wbuf *out, const fmt_inject *in, int which, const char *tag, size_t tag_len, const entry *e)
{
    switch (which) {
    case 0: return jw_string(out, (const uint8_t *)in->hostname, strlen(in->hostname));
    case 1: return jw_string(out, (const uint8_t *)tag, tag_len);
    case 2: return json_time_value(out, in, e);
    default: {
        const uint8_t *mp = e->meta;
        return jw_value(out, &mp, e->meta + e->meta_len);
    }
    }
}

/*
 * Record as a JSON object with <inject> keys, like Fluentd's
 * inject_values_to_record: hostname, then tag, then time are set with
 * Hash#[]=, so a key the record already has keeps its position and takes
 * the new value, and new keys are appended in that order (weir's
 * metadata_key last).
 */
static int json_record(const fmt *f, wbuf *out, const char *tag, size_t tag_len, const entry *e)
{
    const fmt_inject *in = &f->inj;
    const uint8_t *p = e->record, *end = e->record + e->record_len;
    if (!in->active)
        return jw_value(out, &p, end);
    const char *keys[4] = {in->hostname_key, in->tag_key, in->time_key, e->meta ? in->metadata_key : NULL};
    int done[4] = {0, 0, 0, 0};
    mp_obj m;
    if (mp_read(&p, end, &m) != MP_OK || m.type != MP_MAP)
        return -1;
    if (wbuf_addc(out, '{'))
        return -1;
    int first = 1;
    for (uint32_t i = 0; i < m.len; i++) {
        if (!first && wbuf_addc(out, ','))
            return -1;
        first = 0;
        int which = -1;
        for (int k = 0; k < 4 && which < 0; k++)
            if (keys[k] && key_is(p, end, keys[k]))
                which = k;
        if (jw_key(out, &p, end) || wbuf_addc(out, ':'))
            return -1;
        if (which < 0 || done[which]) {
            if (jw_value(out, &p, end))
                return -1;
        } else {
            if (mp_skip(&p, end, 512) || inject_value(out, in, which, tag, tag_len, e))
                return -1;
            done[which] = 1;
        }
    }
    for (int k = 0; k < 4; k++) {
        if (!keys[k] || done[k])
            continue;
        if ((!first && wbuf_addc(out, ',')) ||
            jw_string(out, (const uint8_t *)keys[k], strlen(keys[k])) || wbuf_addc(out, ':') ||
            inject_value(out, in, k, tag, tag_len, e))
            return -1;
        first = 0;
    }
    return wbuf_addc(out, '}');
}

/* Find a top-level key's value in a record map. */
static const uint8_t *record_get(const entry *e, const char *key, const uint8_t **vend)
{
    const uint8_t *p = e->record, *end = e->record + e->record_len;
    mp_obj m;
    if (mp_read(&p, end, &m) != MP_OK || m.type != MP_MAP)
        return NULL;
    for (uint32_t i = 0; i < m.len; i++) {
        int hit = key_is(p, end, key);
        if (mp_skip(&p, end, 512))
            return NULL;
        const uint8_t *v = p;
        if (mp_skip(&p, end, 512))
            return NULL;
        if (hit) {
            *vend = p;
            return v;
        }
    }
    return NULL;
}

static int text_time(const fmt *f, wbuf *out, const entry *e, const char *def)
{
    char tmp[128];
    size_t k;
    if (f->time_type != FMT_TIME_STRING) /* Fluentd's NumericTimeFormatter */
        k = (size_t)(f->time_type == FMT_TIME_UNIXTIME ? snprintf(tmp, sizeof tmp, "%u", e->sec)
                                                         : snprintf(tmp, sizeof tmp, "%u.%09u", e->sec, e->nsec));
    else
        k = zone_time(tmp, sizeof tmp, f->time_format ? f->time_format : def, &f->tz, e);
    return wbuf_add(out, tmp, k);
}

/* A value as plain text (single_value, ltsv): Ruby's to_s, as Fluentd's
 * formatters write value.to_s (a string's own bytes, nil empty, a
 * Hash/Array its inspect). Advances *p. */
static int value_text(wbuf *out, const uint8_t **p, const uint8_t *end)
{
    const uint8_t *v = *p;
    if (mp_skip(p, end, 512))
        return -1;
    return rb_value_to_s(v, (size_t)(*p - v), out);
}

/* One injected key's value as msgpack (for the text formats). */
static int inject_value_mp(wbuf *out, const fmt_inject *in, int which, const char *tag, size_t tag_len,
                           const entry *e)
{
    switch (which) {
    case 0: return mpw_str(out, in->hostname, strlen(in->hostname));
    case 1: return mpw_str(out, tag, tag_len);
    case 2:
        if (in->time_type == TT_UNIXTIME)
            return mpw_uint(out, e->sec);
        if (in->time_type == TT_STRING) {
            char tmp[128];
            size_t k = zone_time(tmp, sizeof tmp, in->time_format, &in->tz, e);
            return mpw_str(out, tmp, k);
        }
        /* Fluentd: time.to_r.truncate(6).to_f */
        return mpw_double(out, (double)e->sec + (double)(e->nsec / 1000) / 1e6);
    default: return wbuf_add(out, e->meta, e->meta_len);
    }
}

/* The record with its <inject> keys, as msgpack into out (the same rules as
 * json_record: existing keys keep their place, new ones are appended). */
int fmt_inject_mp(const fmt_inject *in, wbuf *out, const char *tag, size_t tag_len, const entry *e)
{
    const uint8_t *p = e->record, *end = e->record + e->record_len;
    const char *keys[4] = {in->hostname_key, in->tag_key, in->time_key, e->meta ? in->metadata_key : NULL};
    int done[4] = {0, 0, 0, 0};
    mp_obj m;
    if (mp_read(&p, end, &m) != MP_OK || m.type != MP_MAP)
        return -1;
    /* count the keys to append first: the map header comes first */
    uint32_t extra = 0;
    const uint8_t *q = p;
    int seen[4] = {0, 0, 0, 0};
    for (uint32_t i = 0; i < m.len; i++) {
        for (int k = 0; k < 4; k++)
            if (keys[k] && key_is(q, end, keys[k]))
                seen[k] = 1;
        if (mp_skip(&q, end, 512) || mp_skip(&q, end, 512))
            return -1;
    }
    for (int k = 0; k < 4; k++)
        extra += keys[k] && !seen[k];
    if (mpw_map(out, m.len + extra))
        return -1;
    for (uint32_t i = 0; i < m.len; i++) {
        int which = -1;
        for (int k = 0; k < 4 && which < 0; k++)
            if (keys[k] && key_is(p, end, keys[k]))
                which = k;
        const uint8_t *k0 = p;
        if (mp_skip(&p, end, 512) || wbuf_add(out, k0, (size_t)(p - k0)))
            return -1;
        const uint8_t *v0 = p;
        if (mp_skip(&p, end, 512))
            return -1;
        if (which < 0 || done[which]) {
            if (wbuf_add(out, v0, (size_t)(p - v0)))
                return -1;
        } else {
            if (inject_value_mp(out, in, which, tag, tag_len, e))
                return -1;
            done[which] = 1;
        }
    }
    for (int k = 0; k < 4; k++)
        if (keys[k] && !seen[k] &&
            (mpw_str(out, keys[k], strlen(keys[k])) || inject_value_mp(out, in, k, tag, tag_len, e)))
            return -1;
    return 0;
}

static int fmt_text_record(const fmt *f, wbuf *out, const char *tag, size_t tag_len, const entry *e);

/* csv: the bytes out->data[at..] as one quoted field, '"' doubled. */
static int csv_quote(wbuf *out, size_t at)
{
    size_t n = out->len - at, q = 0;
    for (size_t i = at; i < out->len; i++)
        q += out->data[i] == '"';
    if (rec_reserve(out, q + 2))
        return -1;
    uint8_t *d = out->data;
    size_t w = out->len + q + 2;
    d[--w] = '"';
    for (size_t i = at + n; i-- > at;) {
        d[--w] = d[i];
        if (d[i] == '"')
            d[--w] = '"';
    }
    d[--w] = '"';
    out->len += q + 2;
    return 0;
}

/* csv: one line of Ruby's CSV writer (Fluentd's formatter_csv: headers
 * `fields`, col_sep the delimiter): each value its to_s (nil: empty, a
 * Hash/Array its inspect);
 * with force_quotes every value quoted, else only an empty string and a
 * value holding the delimiter, '"', CR or LF. */
static int csv_record(const fmt *f, wbuf *out, const entry *e)
{
    size_t dl = strlen(f->delimiter);
    for (size_t i = 0; i < f->ncsv; i++) {
        if (i && wbuf_add(out, f->delimiter, dl))
            return -1;
        size_t vl = 0, at = out->len;
        const uint8_t *v = rec_lookup(e->record, e->record_len, &f->csv_paths[i], &vl);
        if (v && rb_value_to_s(v, vl, out))
            return -1;
        int nil = !v || *v == 0xc0;
        if (f->force_quotes ||
            (!nil && (out->len == at || memchr(out->data + at, '"', out->len - at) ||
                      memchr(out->data + at, '\r', out->len - at) || memchr(out->data + at, '\n', out->len - at) ||
                      (dl && memmem(out->data + at, out->len - at, f->delimiter, dl))))) {
            if (csv_quote(out, at))
                return -1;
        }
    }
    return f->add_newline ? wbuf_addc(out, '\n') : 0;
}

int fmt_record(const fmt *f, wbuf *out, const char *tag, size_t tag_len, const entry *e)
{
    /* the text formats take the injected keys as part of the record, as
     * Fluentd's inject_values_to_record does before any formatter */
    if (f->inj.active &&
        (f->type == FMT_SINGLE_VALUE || f->type == FMT_LTSV || f->type == FMT_MSGPACK || f->type == FMT_CSV ||
         f->type == FMT_TSV || f->type == FMT_HASH)) {
        wbuf rec = {0};
        int rc = fmt_inject_mp(&f->inj, &rec, tag, tag_len, e);
        if (rc == 0) {
            entry e2 = *e;
            e2.record = rec.data;
            e2.record_len = rec.len;
            rc = fmt_text_record(f, out, tag, tag_len, &e2);
        }
        wbuf_free(&rec);
        return rc;
    }
    return fmt_text_record(f, out, tag, tag_len, e);
}

static int fmt_text_record(const fmt *f, wbuf *out, const char *tag, size_t tag_len, const entry *e)
{
    switch (f->type) {
    case FMT_JSON:
        return json_record(f, out, tag, tag_len, e) || wbuf_addc(out, '\n');
    case FMT_OUT_FILE: {
        size_t dl = strlen(f->delimiter);
        if (f->output_time && (text_time(f, out, e, NULL) || wbuf_add(out, f->delimiter, dl)))
            return -1;
        if (f->output_tag && (wbuf_add(out, tag, tag_len) || wbuf_add(out, f->delimiter, dl)))
            return -1;
        return json_record(f, out, tag, tag_len, e) || wbuf_addc(out, '\n');
    }
    case FMT_STDOUT:
        return text_time(f, out, e, "%Y-%m-%d %H:%M:%S.%N %z") || wbuf_addc(out, ' ') ||
               wbuf_add(out, tag, tag_len) || wbuf_add(out, ": ", 2) || json_record(f, out, tag, tag_len, e) ||
               wbuf_addc(out, '\n');
    case FMT_SINGLE_VALUE: {
        const uint8_t *vend, *v = record_get(e, f->message_key, &vend);
        if (v && value_text(out, &v, vend))
            return -1;
        return f->add_newline ? wbuf_addc(out, '\n') : 0;
    }
    case FMT_LTSV: {
        const uint8_t *p = e->record, *end = e->record + e->record_len;
        mp_obj m;
        if (mp_read(&p, end, &m) != MP_OK)
            return -1;
        size_t dl = strlen(f->delimiter);
        for (uint32_t i = 0; i < m.len; i++) {
            if (value_text(out, &p, end) || wbuf_add(out, f->label_delimiter, strlen(f->label_delimiter)))
                return -1;
            size_t at = out->len;
            if (value_text(out, &p, end) || (dl && ltsv_replace(out, at, f->delimiter, dl, f->replacement)))
                return -1;
            if (i + 1 < m.len && wbuf_add(out, f->delimiter, dl))
                return -1;
        }
        return f->add_newline ? wbuf_addc(out, '\n') : 0;
    }
    case FMT_MSGPACK:
        return wbuf_add(out, e->record, e->record_len);
    case FMT_CSV:
        return csv_record(f, out, e);
    case FMT_TSV: { /* Fluentd's formatter_tsv: keys.map { |k| record[k].to_s }.join(delimiter) */
        size_t dl = strlen(f->delimiter);
        for (size_t i = 0; f->keys[i]; i++) {
            size_t vl;
            const uint8_t *v = rec_get(e->record, e->record_len, f->keys[i], strlen(f->keys[i]), &vl);
            if ((i && wbuf_add(out, f->delimiter, dl)) || (v && rb_value_to_s(v, vl, out)))
                return -1;
        }
        return f->add_newline ? wbuf_addc(out, '\n') : 0;
    }
    case FMT_HASH: /* formatter_hash: record.to_s */
        return rb_value_to_s(e->record, e->record_len, out) || (f->add_newline && wbuf_addc(out, '\n'));
    }
    return -1;
}
