/*
 * aggregator/filters/debezium.c: weir's debezium filter: Debezium change
 * events (CDC) into rows, like Debezium's ExtractNewRecordState SMT, plus
 * the change's metadata.
 *
 * The envelope is the record itself, or the value at `envelope_key` (a map,
 * or JSON text in a string: a Kafka value delivered as `message`). Debezium's
 * JsonConverter wrapper {"schema": ..., "payload": ...} is recognised by its
 * `payload` key and unwrapped (the schema is dropped).
 *
 *   op                 c create, u update, d delete, r read (snapshot),
 *                      t truncate, m message: the name goes to `action_key`
 *   source             the `source_fields` of it (or all: "*") go to
 *                      `source_key`, a map: route on $.__source.table
 *   lag                ts_ms - source.ts_ms (ms) to `lag_key`
 *   unwrap true        the record becomes `after` (`before` for a delete,
 *                      with `deleted_key` true, else false, when
 *                      delete_handling_mode is rewrite; drop: deletes are
 *                      dropped; none: no flag); truncate and message events
 *                      have no row: the record is the metadata alone
 *   unwrap false       the record is the envelope (payload) plus the keys
 *   tombstones         an empty record, a null/empty envelope or a null
 *                      payload: dropped (drop_tombstones) or kept as they
 *                      are with `action_key` "tombstone"
 *   add_fields         envelope fields beside the row, Debezium's add.fields:
 *                      op and ts_ms from the payload, id/total_order/
 *                      data_collection_order from `transaction`, any other
 *                      name from `source`; "struct.field" names the struct;
 *                      "field:name" renames; written as prefix + field
 *                      ("source.ts_ms" -> "__source_ts_ms")
 *   copy_keys          top-level keys of the incoming record carried over
 *   use_source_time    the event time from source.ts_ms
 *
 * Anything else (not a map, no `op`, an unknown op, bad JSON, a create
 * without an `after` map) is a FILTER_ERROR with the reason.
 *
 * One pass over the envelope's top level and one over `source`; the values
 * written (action, source map, lag, flag) go to call->scratch, reserved up
 * front so that nothing moves; the output is one rec_rewrite_n of the row.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json_mp.h"
#include "aggregator/filter.h"
#include "aggregator/record.h"

enum { DEL_REWRITE = 0, DEL_DROP = 1, DEL_NONE = 2 };
enum { AF_TOP, AF_SOURCE, AF_STRUCT };
#define DBZ_MAX_FIELDS 32

typedef struct dbz_field { /* one add_fields entry */
    int where;              /* AF_TOP: a payload field; AF_SOURCE; AF_STRUCT: the payload map `st` */
    const char *st, *name;  /* into `buf` */
    size_t st_len, name_len;
    char *buf, *out;        /* malloc'd: the parsed text; the output key */
    size_t out_len;
} dbz_field;

typedef struct dbz_ctx {
    char *envelope_key, *action_key, *source_key, *lag_key, *deleted_key, *add_fields_prefix;
    char **source_fields, **add_fields, **copy_keys;
    int unwrap, drop_tombstones, delete_handling_mode, use_source_time;
    /* compiled */
    rec_path env;
    int has_env, src_all;
    size_t ak_len, sk_len, lk_len, dk_len;
    rec_kv *sf, *ck;
    size_t nsf, nck, naf;
    dbz_field *af;
} dbz_ctx;

static const conf_spec dbz_spec[] = {
    {"envelope_key", CONF_STR, NULL, 0, offsetof(dbz_ctx, envelope_key), NULL,
     "where the Debezium envelope is (record accessor): a map, or JSON text in a string (a Kafka value under "
     "`message`); unset: the record itself is the envelope. Either may be wrapped as `{\"schema\":..., "
     "\"payload\":...}`"},
    {"unwrap", CONF_BOOL, "true", 0, offsetof(dbz_ctx, unwrap), NULL,
     "the record becomes the row: `after`, or `before` for a delete (Debezium's ExtractNewRecordState); `false`: "
     "the record is the envelope (the payload, without the schema) with the keys below added"},
    {"action_key", CONF_STR, "__action", 0, offsetof(dbz_ctx, action_key), NULL,
     "where `op` goes as a name: `create`, `update`, `delete`, `read` (snapshot), `truncate`, `message`; `\"\"`: "
     "not written"},
    {"source_key", CONF_STR, "__source", 0, offsetof(dbz_ctx, source_key), NULL,
     "where the `source_fields` of the envelope's `source` go, as a map (route by table on `$.__source.table`); "
     "`\"\"`: not written"},
    {"source_fields", CONF_ARRAY, "connector,name,db,schema,table,collection,ts_ms,snapshot,lsn,txId,gtid,file,pos,scn,"
     "change_lsn", 0, offsetof(dbz_ctx, source_fields), NULL,
     "which fields of `source` are kept, those present, in `source`'s order; `*`: all of them"},
    {"lag_key", CONF_STR, "__lag_ms", 0, offsetof(dbz_ctx, lag_key), NULL,
     "where the lag `ts_ms - source.ts_ms` goes (milliseconds from the change in the database to Debezium); "
     "`\"\"`: not written"},
    {"delete_handling_mode", CONF_ENUM, "rewrite", 0, offsetof(dbz_ctx, delete_handling_mode), "rewrite|drop|none",
     "with `unwrap`, as Debezium's `delete.handling.mode`: `rewrite` a delete becomes its `before` row with "
     "`deleted_key` true (false on other rows); `drop` deletes are dropped; `none` the `before` row, no flag"},
    {"deleted_key", CONF_STR, "__deleted", 0, offsetof(dbz_ctx, deleted_key), NULL,
     "the boolean of `delete_handling_mode rewrite`"},
    {"drop_tombstones", CONF_BOOL, "true", 0, offsetof(dbz_ctx, drop_tombstones), NULL,
     "drop tombstones (an empty record, a null or empty envelope, a null `payload`: what follows a delete for log "
     "compaction); `false`: kept as they came, with `action_key` `tombstone`"},
    {"add_fields", CONF_ARRAY, NULL, 0, offsetof(dbz_ctx, add_fields), NULL,
     "envelope fields copied beside the row as `add_fields_prefix` + name (Debezium's `add.fields`): `op`, "
     "`ts_ms` from the envelope, `id`, `total_order`, `data_collection_order` from `transaction`, other names "
     "from `source`; `struct.field` names the map (`source.ts_ms` gives `__source_ts_ms`); `field:name` "
     "renames; absent fields are left out"},
    {"add_fields_prefix", CONF_STR, "__", 0, offsetof(dbz_ctx, add_fields_prefix), NULL,
     "prefix of the `add_fields` keys"},
    {"use_source_time", CONF_BOOL, "false", 0, offsetof(dbz_ctx, use_source_time), NULL,
     "the event time becomes `source.ts_ms`, when the change was committed in the database (else the time the "
     "record came with: the Kafka timestamp, the forwarder's)"},
    {"copy_keys", CONF_ARRAY, NULL, 0, offsetof(dbz_ctx, copy_keys), NULL,
     "top-level keys of the incoming record carried over to the result as they are (e.g. Kafka metadata beside "
     "`envelope_key`)"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static const char *const ACTIONS[] = {"create", "update", "delete", "read", "truncate", "message"};
static const char OPS[] = "cudrtm";

/* a list parameter as counted strings (rec_kv keys); count limited */
static int kv_list(char **v, rec_kv **out, size_t *n, const char *param, conf_node *node, conf_errors *errs)
{
    size_t c = 0;
    for (size_t i = 0; v && v[i]; i++)
        c += v[i][0] != 0;
    if (c > DBZ_MAX_FIELDS) {
        conf_error_at(errs, node, param, "%s: at most %d names", param, DBZ_MAX_FIELDS);
        return -1;
    }
    *out = calloc(c ? c : 1, sizeof **out);
    if (!*out)
        return -1;
    *n = 0;
    for (size_t i = 0; v && v[i]; i++)
        if (v[i][0])
            (*out)[(*n)++] = (rec_kv){v[i], strlen(v[i]), NULL, 0};
    return 0;
}

static int field_compile(dbz_field *f, const char *text, const char *prefix)
{
    if (!(f->buf = strdup(text)))
        return -1;
    char *rename = strchr(f->buf, ':');
    if (rename)
        *rename++ = 0;
    char *dot = strchr(f->buf, '.');
    if (!f->buf[0] || (rename && !rename[0]) || (dot && (dot == f->buf || !dot[1])))
        return 1;
    size_t pl = strlen(prefix), bl = strlen(f->buf);
    if (!(f->out = malloc(pl + (rename ? strlen(rename) : bl) + 1)))
        return -1;
    memcpy(f->out, prefix, pl);
    strcpy(f->out + pl, rename ? rename : f->buf);
    for (char *q = f->out + pl; !rename && *q; q++)
        if (*q == '.')
            *q = '_';
    f->out_len = strlen(f->out);
    if (dot) {
        *dot = 0;
        f->st = f->buf;
        f->st_len = (size_t)(dot - f->buf);
        f->name = dot + 1;
        f->where = f->st_len == 6 && !memcmp(f->st, "source", 6) ? AF_SOURCE : AF_STRUCT;
    } else {
        f->name = f->buf;
        if (!strcmp(f->buf, "op") || !strcmp(f->buf, "ts_ms") || !strcmp(f->buf, "ts_us") || !strcmp(f->buf, "ts_ns"))
            f->where = AF_TOP;
        else if (!strcmp(f->buf, "id") || !strcmp(f->buf, "total_order") || !strcmp(f->buf, "data_collection_order")) {
            f->where = AF_STRUCT;
            f->st = "transaction";
            f->st_len = 11;
        } else
            f->where = AF_SOURCE;
    }
    f->name_len = strlen(f->name);
    return 0;
}

static int dbz_init(filter *f, conf_node *n, conf_errors *errs)
{
    dbz_ctx *c = f->ctx;
    char err[256];
    int bad = 0;
    if (c->envelope_key && c->envelope_key[0]) {
        if (rec_path_compile(&c->env, c->envelope_key, err, sizeof err)) {
            conf_error_at(errs, n, "envelope_key", "invalid envelope_key '%s': %s", c->envelope_key, err);
            bad = -1;
        } else
            c->has_env = 1;
    }
    c->ak_len = strlen(c->action_key);
    c->sk_len = strlen(c->source_key);
    c->lk_len = strlen(c->lag_key);
    c->dk_len = strlen(c->deleted_key);
    if (kv_list(c->source_fields, &c->sf, &c->nsf, "source_fields", n, errs) ||
        kv_list(c->copy_keys, &c->ck, &c->nck, "copy_keys", n, errs))
        return -1;
    for (size_t i = 0; i < c->nsf; i++)
        c->src_all |= c->sf[i].key_len == 1 && c->sf[i].key[0] == '*';
    size_t na = 0;
    while (c->add_fields && c->add_fields[na])
        na++;
    if (na > DBZ_MAX_FIELDS) {
        conf_error_at(errs, n, "add_fields", "add_fields: at most %d names", DBZ_MAX_FIELDS);
        return -1;
    }
    if (!(c->af = calloc(na ? na : 1, sizeof *c->af)))
        return -1;
    for (size_t i = 0; i < na; i++) {
        if (!c->add_fields[i][0])
            continue;
        int r = field_compile(&c->af[c->naf++], c->add_fields[i], c->add_fields_prefix);
        if (r < 0)
            return -1;
        if (r > 0) {
            conf_error_at(errs, n, "add_fields", "invalid add_fields entry '%s' (field, struct.field, field:name)",
                          c->add_fields[i]);
            bad = -1;
        }
    }
    return bad;
}

static void dbz_exit(filter *f)
{
    dbz_ctx *c = f->ctx;
    if (c->has_env)
        rec_path_free(&c->env);
    free(c->sf);
    free(c->ck);
    for (size_t i = 0; c->af && i < c->naf; i++) {
        free(c->af[i].buf);
        free(c->af[i].out);
    }
    free(c->af);
}

/* ---- per record ---------------------------------------------------------------------------- */

typedef struct span {
    const uint8_t *p;
    size_t n;
} span;

/* The payload's top-level fields the filter reads. */
typedef struct dbz_env {
    const uint8_t *map; /* the payload map */
    size_t len;
    span before, after, source, op, ts, txn;
} dbz_env;

/* call->err = "debezium: " + the message; returns -1 */
__attribute__((format(printf, 2, 3))) static int fail(filter_call *call, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = snprintf(call->err, sizeof call->err, "debezium: ");
    vsnprintf(call->err + n, sizeof call->err - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* a map header: the pair count, advancing *p; -1 if not a map */
static int64_t map_len(const uint8_t **p, const uint8_t *end)
{
    mp_obj o;
    const uint8_t *q = *p;
    if (mp_read(&q, end, &o) != MP_OK || o.type != MP_MAP)
        return -1;
    *p = q;
    return o.len;
}

static int is_nil(span s) { return s.n == 1 && s.p[0] == 0xc0; }
static int is_map(span s) { return s.n && ((s.p[0] & 0xf0) == 0x80 || s.p[0] == 0xde || s.p[0] == 0xdf); }
static int is_empty_map(span s) { return s.n == 1 && s.p[0] == 0x80; }

static const char *type_name(const uint8_t *v, size_t n)
{
    const uint8_t *q = v;
    mp_obj o;
    if (mp_read(&q, v + n, &o) != MP_OK)
        return "malformed msgpack";
    static const char *const names[] = {"nil", "a boolean", "an integer", "an integer", "a number",
                                        "a string", "binary", "an array", "a map", "an extension"};
    return names[o.type];
}

/* One pass over the top level of the payload map. 0 or -1 (malformed). */
static int read_env(dbz_env *e, const uint8_t *m, size_t len)
{
    static const struct {
        const char *k;
        size_t n, off;
    } keys[] = {
        {"before", 6, offsetof(dbz_env, before)}, {"after", 5, offsetof(dbz_env, after)},
        {"source", 6, offsetof(dbz_env, source)}, {"op", 2, offsetof(dbz_env, op)},
        {"ts_ms", 5, offsetof(dbz_env, ts)},      {"transaction", 11, offsetof(dbz_env, txn)},
    };
    memset(e, 0, sizeof *e);
    e->map = m;
    e->len = len;
    const uint8_t *p = m, *end = m + len;
    int64_t np = map_len(&p, end);
    if (np < 0)
        return -1;
    for (int64_t i = 0; i < np; i++) {
        const uint8_t *k;
        uint32_t kn;
        int r = rec_read_str(&p, end, &k, &kn);
        if (r < 0 || (r == 0 && rec_skip(&p, end)))
            return -1;
        const uint8_t *v = p;
        if (rec_skip(&p, end))
            return -1;
        if (r == 0)
            continue;
        for (size_t j = 0; j < sizeof keys / sizeof keys[0]; j++) {
            span *s = (span *)((char *)e + keys[j].off);
            if (kn == keys[j].n && !memcmp(k, keys[j].k, kn) && !s->p) {
                s->p = v;
                s->n = (size_t)(p - v);
                break;
            }
        }
    }
    return p == end ? 0 : -1;
}

/* an integer value as int64 (1), or 0 */
static int int_val(span s, int64_t *x)
{
    const uint8_t *q = s.p;
    mp_obj o;
    if (!s.p || mp_read(&q, s.p + s.n, &o) != MP_OK)
        return 0;
    if (o.type == MP_UINT && o.v.u <= INT64_MAX)
        *x = (int64_t)o.v.u;
    else if (o.type == MP_INT)
        *x = o.v.i;
    else
        return 0;
    return 1;
}

static span map_get(span m, const char *k, size_t kn)
{
    span r = {NULL, 0};
    if (is_map(m))
        r.p = rec_get(m.p, m.n, k, kn, &r.n);
    return r;
}

/* The selected fields of `source` as a map, appended to sc (room reserved). */
static int source_map(const dbz_ctx *c, wbuf *sc, span src)
{
    const uint8_t *p = src.p, *end = src.p + src.n;
    int64_t np = map_len(&p, end);
    rec_hdr h;
    uint32_t cnt = 0;
    if (np < 0 || rec_hdr_open(sc, &h, 1, (uint32_t)(c->nsf < 15 ? c->nsf : 16)))
        return -1;
    for (int64_t i = 0; i < np; i++) {
        const uint8_t *pair = p, *k;
        uint32_t kn;
        int r = rec_read_str(&p, end, &k, &kn);
        if (r < 0 || (r == 0 && rec_skip(&p, end)) || rec_skip(&p, end))
            return -1;
        for (size_t j = 0; r == 1 && j < c->nsf; j++) {
            if (c->sf[j].key_len == kn && !memcmp(c->sf[j].key, k, kn)) {
                if (rec_add(sc, pair, (size_t)(p - pair)))
                    return -1;
                cnt++;
                break;
            }
        }
    }
    return rec_hdr_close(sc, &h, cnt);
}

static span add_field_value(const dbz_field *f, const dbz_env *e)
{
    span top = {e->map, e->len};
    if (f->where == AF_TOP)
        return map_get(top, f->name, f->name_len);
    span st = f->where == AF_SOURCE ? e->source : map_get(top, f->st, f->st_len);
    return map_get(st, f->name, f->name_len);
}

/* Resolve the envelope: the payload map into *e. 1: a tombstone; 0; -1 with call->err. */
static int find_envelope(const dbz_ctx *c, filter_call *call, const uint8_t *rec, size_t len, dbz_env *e)
{
    if (len == 1 && rec[0] == 0x80)
        return 1;
    span env = {rec, len};
    if (c->has_env) {
        env.p = rec_lookup(rec, len, &c->env, &env.n);
        if (!env.p)
            return fail(call, "no `%s` in the record", c->env.text);
        const uint8_t *q = env.p, *s;
        uint32_t sn;
        int r = rec_read_str(&q, env.p + env.n, &s, &sn);
        if (r == 1) {
            size_t i = 0;
            while (i < sn && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
                i++;
            if (i == sn)
                return 1;
            /* JSON into scratch, with room for everything written after it (json_mp: at most 3n + 16) */
            wbuf *sc = call->scratch;
            sc->len = 0;
            if (rec_reserve(sc, 6 * (size_t)sn + 128) || json_mp(sc, s, sn))
                return fail(call, "`%s` is not valid JSON", c->env.text);
            env.p = sc->data;
            env.n = sc->len;
        }
        if (is_nil(env) || is_empty_map(env))
            return 1;
        if (!is_map(env))
            return fail(call, "`%s` is %s, not a Debezium envelope (a map or JSON text)", c->env.text,
                        type_name(env.p, env.n));
    }
    /* the JsonConverter wrapper: {"schema": ..., "payload": ...} */
    span pl = map_get(env, "payload", 7);
    if (pl.p) {
        if (is_nil(pl))
            return 1;
        if (!is_map(pl))
            return fail(call, "`payload` is %s, not a map", type_name(pl.p, pl.n));
        env = pl;
    }
    if (read_env(e, env.p, env.n))
        return fail(call, "malformed envelope");
    return 0;
}

static int dbz_filter(filter *f, filter_call *call, const uint8_t *rec, size_t len)
{
    const dbz_ctx *c = f->ctx;
    wbuf *sc = call->scratch;
    dbz_env e;
    sc->len = 0; /* room for the values written below (find_envelope reserves more for JSON) */
    if (rec_reserve(sc, len + 128))
        return fail(call, "out of memory"), FILTER_ERROR;
    int r = find_envelope(c, call, rec, len, &e);
    if (r < 0)
        return FILTER_ERROR;
    if (r == 1) {
        if (c->drop_tombstones)
            return FILTER_DROP;
        if (!c->ak_len)
            return FILTER_KEEP;
        uint8_t v[16];
        wbuf w = {v, 0, sizeof v, sizeof v};
        mpw_str(&w, "tombstone", 9);
        rec_kv kv = {c->action_key, c->ak_len, v, w.len};
        if (rec_rewrite_n(call->out, rec, len, NULL, 0, &kv, 1))
            return fail(call, "malformed record"), FILTER_ERROR;
        return FILTER_MODIFY;
    }
    /* op */
    const uint8_t *q = e.op.p, *os;
    uint32_t on;
    if (!e.op.p)
        return fail(call, "no `op` in the envelope"), FILTER_ERROR;
    if (rec_read_str(&q, e.op.p + e.op.n, &os, &on) != 1)
        return fail(call, "`op` is %s, not a string", type_name(e.op.p, e.op.n)), FILTER_ERROR;
    const char *opc = on == 1 ? memchr(OPS, os[0], sizeof OPS - 1) : NULL;
    if (!opc)
        return fail(call, "unknown op '%.*s'", (int)(on < 16 ? on : 16), (const char *)os), FILTER_ERROR;
    int op = (int)(opc - OPS), del = os[0] == 'd';
    /* the row */
    span row = {e.map, e.len};
    static const uint8_t empty_map[1] = {0x80};
    if (c->unwrap) {
        if (del && c->delete_handling_mode == DEL_DROP)
            return FILTER_DROP;
        if (os[0] == 't' || os[0] == 'm' || (del && (!e.before.p || is_nil(e.before)))) {
            row = (span){empty_map, 1};
        } else {
            row = del ? e.before : e.after;
            if (!is_map(row))
                return fail(call, "op '%c' without %s map", os[0], del ? "a `before`" : "an `after`"), FILTER_ERROR;
        }
    }
    /* what is added; values written into scratch (room reserved: no realloc, pointers stay) */
    rec_kv set[2 * DBZ_MAX_FIELDS + 4];
    size_t ns = 0;
    for (size_t i = 0; i < c->naf; i++) {
        span v = add_field_value(&c->af[i], &e);
        if (v.p)
            set[ns++] = (rec_kv){c->af[i].out, c->af[i].out_len, v.p, v.n};
    }
    if (c->ak_len) {
        size_t at = sc->len;
        mpw_str(sc, ACTIONS[op], strlen(ACTIONS[op]));
        set[ns++] = (rec_kv){c->action_key, c->ak_len, sc->data + at, sc->len - at};
    }
    if (c->sk_len && is_map(e.source)) {
        if (c->src_all) {
            set[ns++] = (rec_kv){c->source_key, c->sk_len, e.source.p, e.source.n};
        } else if (c->nsf) {
            size_t at = sc->len;
            if (source_map(c, sc, e.source))
                return fail(call, "malformed `source`"), FILTER_ERROR;
            set[ns++] = (rec_kv){c->source_key, c->sk_len, sc->data + at, sc->len - at};
        }
    }
    int64_t ts, sts;
    int has_sts = int_val(map_get(e.source, "ts_ms", 5), &sts);
    if (c->lk_len && has_sts && int_val(e.ts, &ts)) {
        size_t at = sc->len;
        mpw_int(sc, ts - sts);
        set[ns++] = (rec_kv){c->lag_key, c->lk_len, sc->data + at, sc->len - at};
    }
    if (c->use_source_time && has_sts && sts >= 0 && sts / 1000 <= UINT32_MAX) {
        call->sec = (uint32_t)(sts / 1000);
        call->nsec = (uint32_t)(sts % 1000) * 1000000u;
    }
    if (c->unwrap && c->delete_handling_mode == DEL_REWRITE && c->dk_len && os[0] != 't' && os[0] != 'm')
        set[ns++] = (rec_kv){c->deleted_key, c->dk_len, del ? (const uint8_t *)"\xc3" : (const uint8_t *)"\xc2", 1};
    for (size_t i = 0; i < c->nck; i++) {
        size_t vl;
        const uint8_t *v = rec_get(rec, len, c->ck[i].key, c->ck[i].key_len, &vl);
        if (v)
            set[ns++] = (rec_kv){c->ck[i].key, c->ck[i].key_len, v, vl};
    }
    if (rec_rewrite_n(call->out, row.p, row.n, NULL, 0, set, ns))
        return fail(call, "malformed row or out of memory"), FILTER_ERROR;
    return FILTER_MODIFY;
}

FILTER_PLUGIN(debezium, dbz);
