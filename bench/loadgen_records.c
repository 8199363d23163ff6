/* bench/loadgen_records.c: weir-loadgen's records and prebuilt requests; see loadgen.h. */
#include "bench/loadgen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <zlib.h>
#include <zstd.h>

static void rng_hex(lg_rng *r, char *out, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++)
        out[i] = hx[rng_below(r, 16)];
    out[n] = '\0';
}

/* Growable string used to build log lines; capped by the caller's sizes. */
typedef struct lg_str {
    char *p;
    size_t len, cap;
} lg_str;

static void str_reserve(lg_str *s, size_t extra)
{
    if (s->len + extra + 1 <= s->cap)
        return;
    size_t ncap = s->cap ? s->cap : 256;
    while (ncap < s->len + extra + 1)
        ncap *= 2;
    char *np = realloc(s->p, ncap);
    if (!np) {
        fprintf(stderr, "weir-loadgen: out of memory\n");
        exit(1);
    }
    s->p = np;
    s->cap = ncap;
}

static void str_add(lg_str *s, const char *txt, size_t n)
{
    str_reserve(s, n);
    memcpy(s->p + s->len, txt, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void str_printf(lg_str *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void str_printf(lg_str *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    str_reserve(s, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(s->p + s->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    s->len += (size_t)n;
}

/* ------------------------------------------------------------------------ */
/* record generation                                                        */

typedef struct lg_service {
    const char *name;
    const char *ns;
} lg_service;

static const lg_service services[] = {
    {"auth-api", "auth"},         {"orders-api", "orders"},   {"payments-api", "payments"},
    {"catalog-api", "catalog"},   {"users-api", "users"},     {"notifications-api", "notify"},
    {"search-api", "search"},
};
#define N_SERVICES (sizeof(services) / sizeof(services[0]))

static const char *const words[] = {
    "request",  "handled",   "upstream", "cache",     "miss",      "hit",       "session",  "token",
    "refresh",  "expired",   "retry",    "attempt",   "timeout",   "connection", "pool",     "acquired",
    "released", "order",     "payment",  "captured",  "declined",  "customer",  "invoice",  "shipment",
    "queued",   "published", "consumed", "partition", "offset",    "committed", "rollback", "saga",
    "step",     "completed", "failed",   "validation", "schema",   "field",     "missing",  "header",
    "grpc",     "status",    "deadline", "exceeded",  "istio",     "sidecar",   "envoy",    "route",
    "tenant",   "region",    "eu-west-1", "replica",  "primary",   "lag",       "ms",       "bytes",
    "user",     "profile",   "updated",  "created",   "deleted",   "search",    "index",    "shard",
};
#define N_WORDS (sizeof(words) / sizeof(words[0]))

static const char *const paths[] = {
    "/api/v1/users",  "/api/v1/orders", "/api/v1/payments", "/api/v1/catalog/items",
    "/api/v1/search", "/api/v1/login",  "/api/v1/notifications", "/healthz",
};
#define N_PATHS (sizeof(paths) / sizeof(paths[0]))

static const char *const methods[] = {"GET", "GET", "GET", "POST", "PUT", "DELETE"};
static const int statuses[] = {200, 200, 200, 200, 201, 204, 304, 400, 401, 404, 500, 503};
static const char *const reasons[] = {"invalid_credentials", "account_locked", "mfa_required", "token_expired"};
static const char *const tables[] = {"users", "orders", "payments", "items", "sessions", "invoices"};
static const char *const tasks[] = {"orders.process_payment", "orders.reserve_stock", "notify.send_email",
                                    "payments.refund", "search.reindex_item"};
static const char *const users[] = {"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"};

/* One Kubernetes pod: all records of one batch come from one container. */
typedef struct lg_pod {
    const lg_service *svc;
    char pod_name[96];
    char hash[16];
    char host[32];
    char tag[256];
} lg_pod;

static void make_pod(lg_rng *r, lg_pod *p)
{
    static const char alnum[] = "bcdfghjklmnpqrstvwxz2456789";
    char suffix[6];
    char cid[65];
    p->svc = &services[rng_below(r, N_SERVICES)];
    rng_hex(r, p->hash, 10);
    for (int i = 0; i < 5; i++)
        suffix[i] = alnum[rng_below(r, sizeof(alnum) - 1)];
    suffix[5] = '\0';
    snprintf(p->pod_name, sizeof(p->pod_name), "%s-%s-%s", p->svc->name, p->hash, suffix);
    snprintf(p->host, sizeof(p->host), "k8s-worker-%02u", 1 + rng_below(r, 15));
    rng_hex(r, cid, 64);
    if (opt.tag)
        snprintf(p->tag, sizeof(p->tag), "%s", opt.tag);
    else
        snprintf(p->tag, sizeof(p->tag), "kube.var.log.containers.%s_%s_%s-%s.log", p->pod_name, p->svc->ns,
                 p->svc->name, cid);
}

static void fmt_rfc3339(char *out, size_t n, uint64_t t_ns, int digits)
{
    time_t sec = (time_t)(t_ns / 1000000000ull);
    uint32_t nsec = (uint32_t)(t_ns % 1000000000ull);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char base[40];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    if (digits == 3)
        snprintf(out, n, "%s.%03uZ", base, nsec / 1000000u);
    else
        snprintf(out, n, "%s.%09uZ", base, nsec);
}

/* The application's own JSON line (ECS style), `pad` extra bytes of words. */
static void make_log_line(lg_rng *r, const lg_pod *p, uint64_t t_ns, int tmpl, size_t pad, lg_str *s,
                          int *is_err)
{
    char ts[64], trace[33];
    fmt_rfc3339(ts, sizeof(ts), t_ns, 3);
    rng_hex(r, trace, 32);
    s->len = 0;
    *is_err = 0;
    switch (tmpl) {
    case 0: { /* HTTP access line */
        const char *m = methods[rng_below(r, sizeof(methods) / sizeof(methods[0]))];
        const char *path = paths[rng_below(r, N_PATHS)];
        int st = statuses[rng_below(r, sizeof(statuses) / sizeof(statuses[0]))];
        unsigned id = rng_below(r, 100000);
        unsigned dur = 200 + rng_below(r, 250000);
        *is_err = st >= 500;
        str_printf(s,
                   "{\"@timestamp\":\"%s\",\"log.level\":\"%s\",\"message\":\"%s %s/%u %d\","
                   "\"event.duration\":%u000",
                   ts, st >= 500 ? "ERROR" : "INFO", m, path, id, st, dur);
        break;
    }
    case 1: /* authentication failure */
        *is_err = 1;
        str_printf(s,
                   "{\"@timestamp\":\"%s\",\"log.level\":\"ERROR\",\"message\":\"User login failed\","
                   "\"user_id\":\"%s%u\",\"source_ip\":\"10.%u.%u.%u\",\"reason\":\"%s\"",
                   ts, users[rng_below(r, 8)], rng_below(r, 1000), rng_below(r, 256), rng_below(r, 256),
                   rng_below(r, 256), reasons[rng_below(r, 4)]);
        break;
    case 2: /* database query */
        str_printf(s,
                   "{\"@timestamp\":\"%s\",\"log.level\":\"DEBUG\",\"message\":\"query executed\","
                   "\"db.statement\":\"SELECT * FROM %s WHERE id = $1\",\"db.rows\":%u",
                   ts, tables[rng_below(r, 6)], rng_below(r, 100));
        break;
    case 3: { /* Celery task inside a saga */
        char tid[37];
        rng_hex(r, tid, 36);
        tid[8] = tid[13] = tid[18] = tid[23] = '-';
        str_printf(s,
                   "{\"@timestamp\":\"%s\",\"log.level\":\"INFO\",\"message\":\"Task %s succeeded\","
                   "\"celery.task_id\":\"%s\",\"saga_id\":\"saga-%08x\"",
                   ts, tasks[rng_below(r, 5)], tid, (unsigned)rng_below(r, 0x7fffffff));
        break;
    }
    case 4: /* slow upstream */
        str_printf(s,
                   "{\"@timestamp\":\"%s\",\"log.level\":\"WARN\",\"message\":\"upstream latency high\","
                   "\"upstream\":\"%s:8080\",\"latency_ms\":%u",
                   ts, services[rng_below(r, N_SERVICES)].name, 300 + rng_below(r, 5000));
        break;
    default: /* Kafka consumer */
        str_printf(s,
                   "{\"@timestamp\":\"%s\",\"log.level\":\"INFO\",\"message\":\"consumed message\","
                   "\"kafka.topic\":\"%s.events\",\"kafka.partition\":%u,\"kafka.offset\":%u",
                   ts, p->svc->ns, rng_below(r, 12), rng_below(r, 40000000));
        break;
    }
    str_printf(s, ",\"trace.id\":\"%s\",\"service.name\":\"%s\"", trace, p->svc->name);
    if (pad > 16) {
        /* ,"details":"..." costs 13 bytes around the text */
        size_t want = pad - 13;
        str_add(s, ",\"details\":\"", 12);
        size_t start = s->len;
        while (s->len - start < want) {
            if (s->len > start)
                str_add(s, " ", 1);
            if (rng_below(r, 5) == 0)
                str_printf(s, "%u", rng_below(r, 100000));
            else
                str_printf(s, "%s", words[rng_below(r, N_WORDS)]);
        }
        s->len = start + want; /* cut the last word to land on the size */
        if (s->p[s->len - 1] == ' ')
            s->p[s->len - 1] = 'x';
        str_add(s, "\"", 1);
    }
    str_add(s, "}", 1);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_kv(msgpack_packer *pk, const char *k, const char *v)
{
    pack_cstr(pk, k);
    pack_cstr(pk, v);
}

static void pack_event_time(msgpack_packer *pk, uint64_t t_ns)
{
    uint8_t b[8];
    uint32_t sec = (uint32_t)(t_ns / 1000000000ull), nsec = (uint32_t)(t_ns % 1000000000ull);
    b[0] = (uint8_t)(sec >> 24);
    b[1] = (uint8_t)(sec >> 16);
    b[2] = (uint8_t)(sec >> 8);
    b[3] = (uint8_t)sec;
    b[4] = (uint8_t)(nsec >> 24);
    b[5] = (uint8_t)(nsec >> 16);
    b[6] = (uint8_t)(nsec >> 8);
    b[7] = (uint8_t)nsec;
    msgpack_pack_ext(pk, 8, 0);
    msgpack_pack_ext_body(pk, b, 8);
}

/* Append one record map. */
static void pack_record(msgpack_packer *pk, const lg_pod *p, uint64_t t_ns, const lg_str *log, int is_err)
{
    char ts[64];
    fmt_rfc3339(ts, sizeof(ts), t_ns, 9);
    msgpack_pack_map(pk, 4);
    pack_kv(pk, "time", ts);
    pack_kv(pk, "stream", is_err ? "stderr" : "stdout");
    pack_cstr(pk, "log");
    msgpack_pack_str(pk, log->len);
    msgpack_pack_str_body(pk, log->p, log->len);
    pack_cstr(pk, "kubernetes");
    msgpack_pack_map(pk, 5);
    pack_kv(pk, "pod_name", p->pod_name);
    pack_kv(pk, "namespace_name", p->svc->ns);
    pack_cstr(pk, "labels");
    msgpack_pack_map(pk, 2);
    pack_kv(pk, "app", p->svc->name);
    pack_kv(pk, "pod-template-hash", p->hash);
    pack_kv(pk, "host", p->host);
    pack_kv(pk, "container_name", p->svc->name);
}

/*
 * Append `n` entries [time, record] to `out` (an sbuffer). Record sizes
 * vary by about +-10 % around opt.record_size; each record aims at putting
 * the running total back on opt.record_size * count, so the average is
 * opt.record_size whenever the templates are small enough to be padded.
 * `rec_off[i]` receives the offset of record i's map inside `out` (an entry
 * is 0x92, a 10-byte EventTime, then the map), `rec_off[n]` the end.
 */
static void gen_entries(lg_rng *r, const lg_pod *p, uint64_t *t_ns, int n, msgpack_sbuffer *out, size_t *rec_off)
{
    msgpack_sbuffer tmp;
    msgpack_packer tpk, opk;
    lg_str log = {0};
    long cum = 0;
    msgpack_sbuffer_init(&tmp);
    msgpack_packer_init(&tpk, &tmp, msgpack_sbuffer_write);
    msgpack_packer_init(&opk, out, msgpack_sbuffer_write);
    static const int tmpl_weights[] = {0, 0, 0, 0, 0, 0, 1, 2, 2, 3, 3, 4, 5, 5};
    for (int i = 0; i < n; i++) {
        int tmpl = tmpl_weights[rng_below(r, sizeof(tmpl_weights) / sizeof(tmpl_weights[0]))];
        uint64_t rs = rng_next(r);
        long jitter = (long)opt.record_size / 10;
        long target = (long)opt.record_size * (i + 1) - cum;
        if (jitter > 0)
            target += (long)rng_below(r, (uint32_t)(2 * jitter + 1)) - jitter;
        size_t pad = 0;
        int is_err = 0;
        *t_ns += 1000 + rng_below(r, 2000000);
        /* Converge on the target size: padding changes the str header width. */
        for (int iter = 0; iter < 4; iter++) {
            lg_rng rr = {rs ? rs : 1};
            make_log_line(&rr, p, *t_ns, tmpl, pad, &log, &is_err);
            tmp.size = 0;
            pack_record(&tpk, p, *t_ns, &log, is_err);
            long diff = target - (long)tmp.size;
            if (diff == 0 || (diff < 0 && pad == 0))
                break;
            long np = (long)pad + diff;
            if (np <= 16)
                np = 0;
            if ((size_t)np == pad)
                break;
            pad = (size_t)np;
        }
        cum += (long)tmp.size;
        msgpack_pack_array(&opk, 2);
        pack_event_time(&opk, *t_ns);
        rec_off[i] = out->size;
        msgpack_sbuffer_write(out, tmp.data, tmp.size);
    }
    rec_off[n] = out->size;
    free(log.p);
    msgpack_sbuffer_destroy(&tmp);
}

/* ------------------------------------------------------------------------ */
/* requests                                                                 */

static const char chunk_placeholder[LG_CHUNK_LEN + 1] = "AAAAAAAAAAAAAAAAAAAAAAAA";

static void pack_chunk_placeholder(msgpack_packer *pk, msgpack_sbuffer *sb, lg_req *q, uint32_t i)
{
    pack_cstr(pk, "chunk");
    msgpack_pack_str(pk, LG_CHUNK_LEN);
    q->chunk_off[i] = (uint32_t)sb->size;
    msgpack_pack_str_body(pk, chunk_placeholder, LG_CHUNK_LEN);
}

static int compress_gzip(const uint8_t *in, size_t n, uint8_t **out, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    size_t cap = deflateBound(&zs, (uLong)n);
    *out = xmalloc(cap);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = *out;
    zs.avail_out = (uInt)cap;
    int rc = deflate(&zs, Z_FINISH);
    *outlen = zs.total_out;
    deflateEnd(&zs);
    return rc == Z_STREAM_END ? 0 : -1;
}

static int compress_zstd(const uint8_t *in, size_t n, uint8_t **out, size_t *outlen)
{
    size_t cap = ZSTD_compressBound(n);
    *out = xmalloc(cap);
    size_t rc = ZSTD_compress(*out, cap, in, n, 3);
    if (ZSTD_isError(rc))
        return -1;
    *outlen = rc;
    return 0;
}

/* Build one request of opt.mode from `n` entries; 0 or -1. */
static int build_request(lg_req *q, const lg_pod *p, const msgpack_sbuffer *ent, const size_t *rec_off, int n)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t tag_len = strlen(p->tag);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    memset(q, 0, sizeof(*q));
    q->nrecords = (uint32_t)n;
    q->payload_bytes = ent->size;
    if (opt.ack) {
        q->nchunks = opt.mode == LG_MESSAGE ? (uint32_t)n : 1;
        q->chunk_off = xcalloc(q->nchunks, sizeof(uint32_t));
        q->chunk_end = xcalloc(q->nchunks, sizeof(uint32_t));
    }

    if (opt.mode == LG_MESSAGE) {
        for (int i = 0; i < n; i++) {
            const uint8_t *e = (const uint8_t *)ent->data + rec_off[i];
            msgpack_pack_array(&pk, opt.ack ? 4 : 3);
            msgpack_pack_str(&pk, tag_len);
            msgpack_pack_str_body(&pk, p->tag, tag_len);
            /* the 10 bytes before the record are the entry's EventTime */
            msgpack_sbuffer_write(&sb, (const char *)e - 10, 10);
            msgpack_sbuffer_write(&sb, (const char *)e, rec_off[i + 1] - rec_off[i] - (i + 1 < n ? 11 : 0));
            if (opt.ack) {
                msgpack_pack_map(&pk, 1);
                pack_chunk_placeholder(&pk, &sb, q, (uint32_t)i);
                q->chunk_end[i] = (uint32_t)sb.size;
            }
        }
    } else {
        uint8_t *z = NULL;
        size_t zlen = 0;
        msgpack_pack_array(&pk, 3);
        msgpack_pack_str(&pk, tag_len);
        msgpack_pack_str_body(&pk, p->tag, tag_len);
        switch (opt.mode) {
        case LG_FORWARD:
            msgpack_pack_array(&pk, (size_t)n);
            msgpack_sbuffer_write(&sb, ent->data, ent->size);
            break;
        case LG_PACKED:
            msgpack_pack_bin(&pk, ent->size);
            msgpack_pack_bin_body(&pk, ent->data, ent->size);
            break;
        case LG_GZIP:
        case LG_ZSTD:
            if ((opt.mode == LG_GZIP ? compress_gzip : compress_zstd)((const uint8_t *)ent->data, ent->size, &z,
                                                                      &zlen) < 0) {
                fprintf(stderr, "weir-loadgen: %s compression failed\n", lg_mode_names[opt.mode]);
                free(z);
                msgpack_sbuffer_destroy(&sb);
                return -1;
            }
            msgpack_pack_bin(&pk, zlen);
            msgpack_pack_bin_body(&pk, z, zlen);
            free(z);
            break;
        default:
            break;
        }
        int nopts = 1 + (opt.ack ? 1 : 0) + (opt.mode == LG_GZIP || opt.mode == LG_ZSTD ? 1 : 0);
        msgpack_pack_map(&pk, (size_t)nopts);
        pack_cstr(&pk, "size");
        msgpack_pack_uint32(&pk, (uint32_t)n);
        if (opt.mode == LG_GZIP || opt.mode == LG_ZSTD)
            pack_kv(&pk, "compressed", opt.mode == LG_GZIP ? "gzip" : "zstd");
        if (opt.ack)
            pack_chunk_placeholder(&pk, &sb, q, 0);
    }
    if (opt.ack && opt.mode != LG_MESSAGE)
        q->chunk_end[0] = (uint32_t)sb.size;
    if (sb.size > UINT32_MAX) {
        fprintf(stderr, "weir-loadgen: request of %zu bytes is too large\n", sb.size);
        msgpack_sbuffer_destroy(&sb);
        return -1;
    }
    q->len = sb.size;
    q->buf = (uint8_t *)msgpack_sbuffer_release(&sb);
    return 0;
}

void free_request(lg_req *q)
{
    free(q->buf);
    free(q->chunk_off);
    free(q->chunk_end);
    memset(q, 0, sizeof(*q));
}

int build_pool(lg_rng *r, lg_req *reqs, int nreq, int per_req, double *avg_rec)
{
    size_t *rec_off = xcalloc((size_t)per_req + 1, sizeof(size_t));
    uint64_t t_ns;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    t_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    size_t rec_bytes = 0, recs = 0;
    for (int i = 0; i < nreq; i++) {
        lg_pod pod;
        msgpack_sbuffer ent;
        make_pod(r, &pod);
        msgpack_sbuffer_init(&ent);
        gen_entries(r, &pod, &t_ns, per_req, &ent, rec_off);
        for (int k = 0; k < per_req; k++)
            rec_bytes += rec_off[k + 1] - rec_off[k] - (k + 1 < per_req ? 11 : 0);
        recs += (size_t)per_req;
        int rc = build_request(&reqs[i], &pod, &ent, rec_off, per_req);
        msgpack_sbuffer_destroy(&ent);
        if (rc < 0) {
            free(rec_off);
            return -1;
        }
    }
    free(rec_off);
    if (avg_rec)
        *avg_rec = recs ? (double)rec_bytes / (double)recs : 0.0;
    return 0;
}
