/*
 * bench/loadgen.c: weir-loadgen, the Fluent forward load generator behind
 * `make bench`.
 *
 * Design. Everything that costs per-record CPU happens before the clock
 * starts: each connection builds a pool of distinct batches (Kubernetes
 * container log records shaped like what Fluent Bit forwards after its
 * kubernetes filter), encodes every batch once into a complete request of
 * the chosen mode (Message, Forward, PackedForward, CompressedPackedForward
 * gzip or zstd) and keeps the byte offsets of the 24-byte chunk-id
 * placeholders inside it. The timed loop only patches fresh chunk ids into a
 * prebuilt request and hands the whole buffer to send(), so the generator
 * leaves as much of the two shared cores as possible to the receiver.
 *
 * Threads: one thread per connection, each owning its socket, its pool, its
 * outstanding-ack ring and its statistics; the main thread only starts them,
 * waits, and merges the results after pthread_join. The only shared mutable
 * state is the request counter of --records mode (an atomic) and the stop
 * flag set by SIGINT/SIGTERM (a sig_atomic_t, only ever set to 1).
 *
 * Sockets are non-blocking and driven with poll(): while a large request is
 * being written the thread keeps reading acks, so a receiver that holds
 * back reading until its acks are consumed can never deadlock us.
 *
 * Acks: with --ack (the default) every request (every message in Message
 * mode) carries a unique "chunk" option; the receiver must answer
 * {"ack": <same bytes>} in order. Each ack is compared with the oldest
 * outstanding id of its connection: a mismatch is counted and printed.
 * Latency = time from the moment the last byte of the request (of the
 * message, in Message mode) was accepted by send() to the moment its ack was
 * read. Latencies go into a log-linear histogram: 1 us exact up to 2048 us,
 * then 1024 sub-buckets per power of two (< 0.1 % error), up to ~33 s.
 *
 * Exit status: 0 when every connection worked and every ack matched,
 * 1 when an error happened (connect, reset, stall, ack mismatch, unacked
 * requests at the end), 2 on a usage error, 3 when SIGINT/SIGTERM cut the
 * run short (the report is still printed, with "interrupted": true).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <zlib.h>
#include <zstd.h>

#define LG_CHUNK_LEN 24 /* base64 of 16 bytes, like Fluentd's ids (minus its "\n") */
#define LG_RBUF_SIZE (64 * 1024)
#define LG_MAX_ERR_PRINTS 5

/* ------------------------------------------------------------------------ */
/* options                                                                  */

typedef enum lg_mode {
    LG_MESSAGE,
    LG_FORWARD,
    LG_PACKED,
    LG_GZIP,
    LG_ZSTD,
} lg_mode;

static const char *const lg_mode_names[] = {"message", "forward", "packed", "compressed", "compressed-zstd"};

typedef struct lg_opts {
    const char *host;
    const char *port;
    lg_mode mode;
    int connections;
    int batch;
    int record_size;
    double duration;
    int ack;
    int pipeline;
    uint64_t records; /* 0: run for `duration` */
    int json;
    int pool;
    uint64_t seed;
    const char *tag; /* NULL: a generated Kubernetes tag per batch */
    double stall_timeout;
} lg_opts;

static lg_opts opt = {
    .host = "127.0.0.1",
    .port = "24224",
    .mode = LG_PACKED,
    .connections = 2,
    .batch = 1000,
    .record_size = 450,
    .duration = 10.0,
    .ack = 1,
    .pipeline = 1,
    .records = 0,
    .json = 0,
    .pool = 16,
    .seed = 1,
    .tag = NULL,
    .stall_timeout = 30.0,
};

/* ------------------------------------------------------------------------ */
/* small helpers                                                            */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "weir-loadgen: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) {
        fprintf(stderr, "weir-loadgen: out of memory (%zu x %zu bytes)\n", n, sz);
        exit(1);
    }
    return p;
}

/* xorshift64*: fast, good enough for making log lines differ. */
typedef struct lg_rng {
    uint64_t s;
} lg_rng;

static uint64_t rng_next(lg_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint32_t rng_below(lg_rng *r, uint32_t n)
{
    return (uint32_t)((rng_next(r) >> 32) % n);
}

static void rng_seed(lg_rng *r, uint64_t seed)
{
    /* splitmix64 so that nearby seeds give unrelated streams */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    r->s = z ? z : 0x1234567ull;
}

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
/* latency histogram (microseconds)                                         */

#define H_SUB_BITS 10
#define H_SUB (1u << H_SUB_BITS)      /* 1024 sub-buckets per power of two */
#define H_LINEAR (2u * H_SUB)         /* values below 2048 us are exact */
#define H_MAX_SHIFT 14                /* up to 2^(10+14+1) us ~ 33 s */
#define H_BUCKETS (H_LINEAR + H_MAX_SHIFT * H_SUB)

typedef struct lg_hist {
    uint64_t count[H_BUCKETS];
    uint64_t n;
    uint64_t max_us;
} lg_hist;

static size_t hist_index(uint64_t us)
{
    if (us < H_LINEAR)
        return (size_t)us;
    int msb = 63 - __builtin_clzll(us);
    int shift = msb - H_SUB_BITS; /* >= 1 */
    if (shift > H_MAX_SHIFT)
        return H_BUCKETS - 1;
    uint64_t sub = us >> shift; /* in [1024, 2047] */
    return H_LINEAR + (size_t)(shift - 1) * H_SUB + (size_t)(sub - H_SUB);
}

/* Lowest value that maps to bucket `i`, plus half the bucket width. */
static double hist_value(size_t i)
{
    if (i < H_LINEAR)
        return (double)i;
    size_t shift = (i - H_LINEAR) / H_SUB + 1;
    uint64_t sub = (i - H_LINEAR) % H_SUB + H_SUB;
    uint64_t lo = sub << shift;
    return (double)lo + (double)((1ull << shift) - 1) / 2.0;
}

static void hist_add(lg_hist *h, uint64_t us)
{
    h->count[hist_index(us)]++;
    h->n++;
    if (us > h->max_us)
        h->max_us = us;
}

static void hist_merge(lg_hist *dst, const lg_hist *src)
{
    for (size_t i = 0; i < H_BUCKETS; i++)
        dst->count[i] += src->count[i];
    dst->n += src->n;
    if (src->max_us > dst->max_us)
        dst->max_us = src->max_us;
}

/* Percentile in microseconds (q in [0,1]); 0 when empty. */
static double hist_pct(const lg_hist *h, double q)
{
    if (!h->n)
        return 0.0;
    uint64_t rank = (uint64_t)(q * (double)h->n);
    if (rank >= h->n)
        rank = h->n - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < H_BUCKETS; i++) {
        seen += h->count[i];
        if (seen > rank) {
            double v = hist_value(i);
            return v > (double)h->max_us ? (double)h->max_us : v;
        }
    }
    return (double)h->max_us;
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

typedef struct lg_req {
    uint8_t *buf;
    size_t len;
    uint32_t nrecords;
    uint32_t nchunks;     /* 0 without acks; 1, or nrecords in Message mode */
    uint32_t *chunk_off;  /* offset of each 24-byte id placeholder */
    uint32_t *chunk_end;  /* offset just past the message that carries it */
    size_t payload_bytes; /* uncompressed [time, record] entries bytes */
} lg_req;

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

static void free_request(lg_req *q)
{
    free(q->buf);
    free(q->chunk_off);
    free(q->chunk_end);
    memset(q, 0, sizeof(*q));
}

/* Build `nreq` requests of `per_req` records each (the last may be short). */
static int build_pool(lg_rng *r, lg_req *reqs, int nreq, int per_req, double *avg_rec)
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

/* ------------------------------------------------------------------------ */
/* connections                                                              */

typedef struct lg_pending {
    uint8_t id[LG_CHUNK_LEN];
    uint32_t end_off;  /* request offset after which this message counts as written */
    uint32_t nrecords; /* records this ack covers */
    uint64_t t_sent;   /* 0 until written */
    int last_of_req;
} lg_pending;

typedef struct lg_conn {
    int idx;
    int fd;
    pthread_t th;
    lg_rng rng;
    lg_req *pool;
    int npool;
    double avg_rec;
    uint8_t id_prefix[8];
    uint64_t id_counter;

    lg_pending *ring;
    uint64_t ring_cap, head, tail, written; /* absolute sequence numbers */
    int inflight;

    uint8_t *rbuf;
    size_t rlen;

    /* results */
    uint64_t records_sent, records_acked, requests_sent, acks, wire_bytes, payload_sent, payload_acked;
    uint64_t mismatches, conn_errors, unacked;
    uint64_t t_done;
    int failed;
    lg_hist *hist;
} lg_conn;

static lg_conn *conns;
static pthread_barrier_t start_barrier;
static uint64_t t_start, t_deadline;
static atomic_uint_fast64_t next_req_no;
static uint64_t full_reqs;   /* --records: number of full-batch requests */
static lg_req tail_req;      /* --records: the short last request, if any */
static int have_tail;
static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void conn_error(lg_conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_error(lg_conn *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "weir-loadgen: connection %d: %s\n", c->idx, msg);
    c->conn_errors++;
    c->failed = 1;
}

static void make_chunk_id(lg_conn *c, uint8_t out[LG_CHUNK_LEN])
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint8_t raw[16];
    uint64_t n = c->id_counter++;
    memcpy(raw, c->id_prefix, 8);
    for (int i = 0; i < 8; i++)
        raw[8 + i] = (uint8_t)(n >> (56 - 8 * i));
    int o = 0;
    for (int i = 0; i < 15; i += 3) {
        uint32_t v = ((uint32_t)raw[i] << 16) | ((uint32_t)raw[i + 1] << 8) | raw[i + 2];
        out[o++] = (uint8_t)b64[(v >> 18) & 63];
        out[o++] = (uint8_t)b64[(v >> 12) & 63];
        out[o++] = (uint8_t)b64[(v >> 6) & 63];
        out[o++] = (uint8_t)b64[v & 63];
    }
    out[o++] = (uint8_t)b64[raw[15] >> 2];
    out[o++] = (uint8_t)b64[(raw[15] & 3) << 4];
    out[o++] = '=';
    out[o++] = '=';
}

static int connect_to(lg_conn *c)
{
    struct addrinfo hints, *res = NULL, *ai;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(opt.host, opt.port, &hints, &res);
    if (rc != 0) {
        conn_error(c, "cannot resolve %s:%s: %s", opt.host, opt.port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        conn_error(c, "cannot connect to %s:%s: %s", opt.host, opt.port, strerror(err));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        conn_error(c, "cannot make socket non-blocking: %s", strerror(errno));
        close(fd);
        return -1;
    }
    c->fd = fd;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* acks                                                                     */

/*
 * Parse one message from the receiver at p[0..n).
 * Returns 1 for an ack (*id, *idlen point into p or into `scratch`, *used is
 * its length in bytes), 0 when more bytes are needed, -1 when the bytes are
 * not an ack map. The common encoding {"ack": str} is matched directly; any
 * other valid encoding (str8/16, bin, extra keys) goes through msgpack-c.
 */
static int parse_ack(const uint8_t *p, size_t n, const uint8_t **id, size_t *idlen, size_t *used, uint8_t *scratch,
                     size_t scratch_cap)
{
    static const uint8_t pre[5] = {0x81, 0xa3, 'a', 'c', 'k'};
    size_t k = n < 5 ? n : 5;
    if (memcmp(p, pre, k) == 0) {
        if (n < 7)
            return 0;
        size_t hdr, len;
        uint8_t t = p[5];
        if ((t & 0xe0) == 0xa0) {
            hdr = 6;
            len = t & 0x1f;
        } else if (t == 0xd9 || t == 0xc4) {
            hdr = 7;
            len = p[6];
        } else {
            goto slow;
        }
        if (n < hdr + len)
            return 0;
        *id = p + hdr;
        *idlen = len;
        *used = hdr + len;
        return 1;
    }
slow:;
    msgpack_unpacked res;
    size_t off = 0;
    int ret = -1;
    msgpack_unpacked_init(&res);
    msgpack_unpack_return rc = msgpack_unpack_next(&res, (const char *)p, n, &off);
    if (rc == MSGPACK_UNPACK_CONTINUE) {
        ret = 0;
    } else if (rc == MSGPACK_UNPACK_SUCCESS && res.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object_map *m = &res.data.via.map;
        for (uint32_t i = 0; i < m->size; i++) {
            const msgpack_object *key = &m->ptr[i].key, *val = &m->ptr[i].val;
            if (key->type != MSGPACK_OBJECT_STR || key->via.str.size != 3 || memcmp(key->via.str.ptr, "ack", 3))
                continue;
            const char *vp;
            size_t vl;
            if (val->type == MSGPACK_OBJECT_STR) {
                vp = val->via.str.ptr;
                vl = val->via.str.size;
            } else if (val->type == MSGPACK_OBJECT_BIN) {
                vp = val->via.bin.ptr;
                vl = val->via.bin.size;
            } else {
                break;
            }
            if (vl > scratch_cap)
                vl = scratch_cap;
            memcpy(scratch, vp, vl);
            *id = scratch;
            *idlen = vl;
            *used = off;
            ret = 1;
            break;
        }
    }
    msgpack_unpacked_destroy(&res);
    return ret;
}

static void print_id(char *out, size_t cap, const uint8_t *id, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        if (id[i] >= 0x20 && id[i] < 0x7f && id[i] != '"' && id[i] != '\\')
            out[o++] = (char)id[i];
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", id[i]);
    }
    out[o] = '\0';
}

static void process_ack(lg_conn *c, const uint8_t *id, size_t idlen, uint64_t now)
{
    char got[128], want[64];
    c->acks++;
    if (c->head == c->tail) {
        print_id(got, sizeof(got), id, idlen);
        if (c->mismatches++ < LG_MAX_ERR_PRINTS)
            fprintf(stderr, "weir-loadgen: connection %d: ack \"%s\" but no request is awaiting one\n", c->idx,
                    got);
        return;
    }
    lg_pending *e = &c->ring[c->head % c->ring_cap];
    if (idlen != LG_CHUNK_LEN || memcmp(id, e->id, LG_CHUNK_LEN) != 0) {
        if (c->mismatches++ < LG_MAX_ERR_PRINTS) {
            print_id(got, sizeof(got), id, idlen);
            print_id(want, sizeof(want), e->id, LG_CHUNK_LEN);
            fprintf(stderr, "weir-loadgen: connection %d: ack mismatch: got \"%s\", oldest outstanding is \"%s\"\n",
                    c->idx, got, want);
        }
    } else {
        c->records_acked += e->nrecords;
        uint64_t lat = (e->t_sent && now > e->t_sent) ? now - e->t_sent : 0;
        hist_add(c->hist, lat / 1000);
    }
    if (e->last_of_req)
        c->inflight--;
    c->head++;
    if (c->written < c->head)
        c->written = c->head;
}

/* Read what is available and handle every complete ack; 0 or -1. */
static int read_acks(lg_conn *c)
{
    if (c->rlen == LG_RBUF_SIZE) {
        conn_error(c, "%d bytes from the receiver do not form an ack", LG_RBUF_SIZE);
        return -1;
    }
    ssize_t r = recv(c->fd, c->rbuf + c->rlen, LG_RBUF_SIZE - c->rlen, 0);
    if (r == 0) {
        conn_error(c, "receiver closed the connection with %" PRIu64 " acks outstanding", c->tail - c->head);
        return -1;
    }
    if (r < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        conn_error(c, "read failed: %s", strerror(errno));
        return -1;
    }
    uint64_t now = now_ns();
    c->rlen += (size_t)r;
    size_t off = 0;
    uint8_t scratch[256];
    while (off < c->rlen) {
        const uint8_t *id = NULL;
        size_t idlen = 0, used = 0;
        int rc = parse_ack(c->rbuf + off, c->rlen - off, &id, &idlen, &used, scratch, sizeof(scratch));
        if (rc == 0)
            break;
        if (rc < 0) {
            char hex[3 * 16 + 1];
            size_t show = c->rlen - off < 16 ? c->rlen - off : 16;
            for (size_t i = 0; i < show; i++)
                snprintf(hex + 3 * i, 4, "%02x ", c->rbuf[off + i]);
            hex[show ? 3 * show - 1 : 0] = '\0';
            conn_error(c, "unexpected bytes from the receiver (not an ack): %s", hex);
            return -1;
        }
        process_ack(c, id, idlen, now);
        off += used;
    }
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    return 0;
}

/* Entries of the request being written whose last byte is now in the kernel. */
static void mark_written(lg_conn *c, size_t off, uint64_t now)
{
    uint64_t s = c->written > c->head ? c->written : c->head;
    while (s < c->tail && c->ring[s % c->ring_cap].end_off <= off) {
        c->ring[s % c->ring_cap].t_sent = now;
        s++;
    }
    c->written = s;
}

static int stalled(lg_conn *c, uint64_t last_progress, const char *what)
{
    uint64_t now = now_ns();
    if ((double)(now - last_progress) / 1e9 < opt.stall_timeout)
        return 0;
    conn_error(c, "no progress for %g s while %s (%" PRIu64 " acks outstanding)", opt.stall_timeout, what,
               c->tail - c->head);
    return 1;
}

static int send_request(lg_conn *c, lg_req *q)
{
    for (uint32_t i = 0; i < q->nchunks; i++) {
        lg_pending *e = &c->ring[c->tail % c->ring_cap];
        make_chunk_id(c, q->buf + q->chunk_off[i]);
        memcpy(e->id, q->buf + q->chunk_off[i], LG_CHUNK_LEN);
        e->end_off = q->chunk_end[i];
        e->nrecords = q->nchunks == 1 ? q->nrecords : 1;
        e->t_sent = 0;
        e->last_of_req = i + 1 == q->nchunks;
        c->tail++;
    }
    size_t off = 0;
    uint64_t last_progress = now_ns();
    while (off < q->len) {
        ssize_t w = send(c->fd, q->buf + off, q->len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
            c->wire_bytes += (uint64_t)w;
            last_progress = now_ns();
            if (q->nchunks)
                mark_written(c, off, last_progress);
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = c->fd, .events = POLLOUT | (opt.ack ? POLLIN : 0)};
            int pr = poll(&pfd, 1, 1000);
            if (pr > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
                uint64_t before = c->head;
                if (read_acks(c) < 0)
                    return -1;
                if (c->head != before)
                    last_progress = now_ns();
            }
            if (pr == 0 && stalled(c, last_progress, "writing a request"))
                return -1;
            continue;
        }
        conn_error(c, "write failed: %s", w < 0 ? strerror(errno) : "wrote nothing");
        return -1;
    }
    c->records_sent += q->nrecords;
    c->payload_sent += q->payload_bytes;
    c->requests_sent++;
    if (q->nchunks)
        c->inflight++;
    return 0;
}

/* Block until at least one request is fully acked; 0 or -1. */
static int wait_acks(lg_conn *c)
{
    int target = c->inflight - 1;
    uint64_t last_progress = now_ns();
    while (c->inflight > target) {
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pfd, 1, 1000);
        if (pr < 0 && errno != EINTR) {
            conn_error(c, "poll failed: %s", strerror(errno));
            return -1;
        }
        if (pr > 0) {
            uint64_t before = c->head;
            if (read_acks(c) < 0)
                return -1;
            if (c->head != before)
                last_progress = now_ns();
        } else if (stalled(c, last_progress, "waiting for acks")) {
            return -1;
        }
    }
    return 0;
}

static lg_req *next_request(lg_conn *c)
{
    if (stop_flag)
        return NULL;
    if (opt.records) {
        uint64_t k = atomic_fetch_add(&next_req_no, 1);
        if (k < full_reqs)
            return &c->pool[c->requests_sent % (uint64_t)c->npool];
        if (k == full_reqs && have_tail)
            return &tail_req;
        return NULL;
    }
    if (now_ns() >= t_deadline)
        return NULL;
    return &c->pool[c->requests_sent % (uint64_t)c->npool];
}

static void *conn_main(void *arg)
{
    lg_conn *c = arg;
    c->fd = -1;
    c->hist = xcalloc(1, sizeof(lg_hist));
    c->rbuf = xmalloc(LG_RBUF_SIZE);
    c->pool = xcalloc((size_t)c->npool, sizeof(lg_req));
    for (int i = 0; i < 8; i++)
        c->id_prefix[i] = (uint8_t)rng_next(&c->rng);
    c->id_counter = rng_next(&c->rng);
    if (build_pool(&c->rng, c->pool, c->npool, opt.batch, &c->avg_rec) < 0)
        c->failed = 1;
    c->ring_cap = (uint64_t)opt.pipeline * (opt.mode == LG_MESSAGE ? (uint64_t)opt.batch : 1u);
    c->ring = xcalloc(c->ring_cap, sizeof(lg_pending));
    if (!c->failed)
        connect_to(c);
    pthread_barrier_wait(&start_barrier); /* ready */
    pthread_barrier_wait(&start_barrier); /* go: t_start is set */
    if (c->failed)
        goto out;
    for (;;) {
        while (!opt.ack || c->inflight < opt.pipeline) {
            lg_req *q = next_request(c);
            if (!q)
                break;
            if (send_request(c, q) < 0)
                goto out;
        }
        if (!opt.ack || c->inflight == 0)
            break;
        if (wait_acks(c) < 0)
            goto out;
    }
out:
    c->t_done = now_ns();
    for (uint64_t s = c->head; s < c->tail; s++)
        c->unacked += c->ring[s % c->ring_cap].nrecords;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    for (int i = 0; i < c->npool; i++)
        free_request(&c->pool[i]);
    free(c->pool);
    c->pool = NULL;
    free(c->ring);
    c->ring = NULL;
    free(c->rbuf);
    c->rbuf = NULL;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* command line and report                                                  */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: weir-loadgen [options]\n"
            "  --host H             receiver address (127.0.0.1)\n"
            "  --port P             receiver port (24224)\n"
            "  --mode M             packed | forward | message | compressed | compressed-zstd (packed)\n"
            "  --connections N      parallel connections, one thread each (2)\n"
            "  --batch N            records per request (1000)\n"
            "  --record-size B      msgpack size of one record map, bytes (450)\n"
            "  --duration S         seconds to send for (10)\n"
            "  --records N          send exactly N records instead of running for --duration\n"
            "  --ack / --no-ack     request an ack per request (per message in message mode) (on)\n"
            "  --pipeline N         requests in flight per connection awaiting acks (1)\n"
            "  --pool N             distinct prebuilt batches per connection (16)\n"
            "  --tag T              use tag T instead of generated kube.var.log.containers.* tags\n"
            "  --seed N             seed for the generated content (1)\n"
            "  --stall-timeout S    give up on a connection with no progress for S seconds (30)\n"
            "  --json               print one JSON object instead of text\n");
}

static int parse_int(const char *name, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(stderr, "weir-loadgen: --%s: expected an integer in [%ld, %ld], got \"%s\"\n", name, lo, hi, v);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_args(int argc, char **argv)
{
    enum { O_HOST = 256, O_PORT, O_MODE, O_CONN, O_BATCH, O_RSIZE, O_DUR, O_ACK, O_NOACK, O_PIPE, O_RECS, O_JSON,
           O_POOL, O_TAG, O_SEED, O_STALL, O_HELP };
    static const struct option lo[] = {
        {"host", required_argument, 0, O_HOST},        {"port", required_argument, 0, O_PORT},
        {"mode", required_argument, 0, O_MODE},        {"connections", required_argument, 0, O_CONN},
        {"batch", required_argument, 0, O_BATCH},      {"record-size", required_argument, 0, O_RSIZE},
        {"duration", required_argument, 0, O_DUR},     {"ack", no_argument, 0, O_ACK},
        {"no-ack", no_argument, 0, O_NOACK},           {"pipeline", required_argument, 0, O_PIPE},
        {"records", required_argument, 0, O_RECS},     {"json", no_argument, 0, O_JSON},
        {"pool", required_argument, 0, O_POOL},        {"tag", required_argument, 0, O_TAG},
        {"seed", required_argument, 0, O_SEED},        {"stall-timeout", required_argument, 0, O_STALL},
        {"help", no_argument, 0, O_HELP},              {0, 0, 0, 0},
    };
    int ch;
    long v;
    char *end;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case O_HOST: opt.host = optarg; break;
        case O_PORT: opt.port = optarg; break;
        case O_MODE: {
            int found = -1;
            for (int i = 0; i < (int)(sizeof(lg_mode_names) / sizeof(lg_mode_names[0])); i++)
                if (!strcmp(optarg, lg_mode_names[i]))
                    found = i;
            if (!strcmp(optarg, "compressed-gzip") || !strcmp(optarg, "gzip"))
                found = LG_GZIP;
            if (!strcmp(optarg, "zstd"))
                found = LG_ZSTD;
            if (found < 0) {
                fprintf(stderr, "weir-loadgen: --mode: unknown mode \"%s\"\n", optarg);
                return -1;
            }
            opt.mode = (lg_mode)found;
            break;
        }
        case O_CONN: if (parse_int("connections", optarg, 1, 1024, &v)) return -1; opt.connections = (int)v; break;
        case O_BATCH: if (parse_int("batch", optarg, 1, 1000000, &v)) return -1; opt.batch = (int)v; break;
        case O_RSIZE: if (parse_int("record-size", optarg, 64, 1 << 20, &v)) return -1; opt.record_size = (int)v; break;
        case O_PIPE: if (parse_int("pipeline", optarg, 1, 4096, &v)) return -1; opt.pipeline = (int)v; break;
        case O_POOL: if (parse_int("pool", optarg, 1, 4096, &v)) return -1; opt.pool = (int)v; break;
        case O_SEED: if (parse_int("seed", optarg, 0, LONG_MAX, &v)) return -1; opt.seed = (uint64_t)v; break;
        case O_RECS: if (parse_int("records", optarg, 1, LONG_MAX, &v)) return -1; opt.records = (uint64_t)v; break;
        case O_DUR:
        case O_STALL: {
            double d = strtod(optarg, &end);
            if (*end || end == optarg || !(d > 0) || d > 86400) {
                fprintf(stderr, "weir-loadgen: --%s: expected seconds > 0, got \"%s\"\n",
                        ch == O_DUR ? "duration" : "stall-timeout", optarg);
                return -1;
            }
            if (ch == O_DUR)
                opt.duration = d;
            else
                opt.stall_timeout = d;
            break;
        }
        case O_ACK: opt.ack = 1; break;
        case O_NOACK: opt.ack = 0; break;
        case O_JSON: opt.json = 1; break;
        case O_TAG: opt.tag = optarg; break;
        case O_HELP: usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "weir-loadgen: unexpected argument \"%s\"\n", argv[optind]);
        return -1;
    }
    return 0;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) < 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int npool = opt.pool;
    if (opt.records) {
        full_reqs = opt.records / (uint64_t)opt.batch;
        have_tail = opt.records % (uint64_t)opt.batch != 0;
        uint64_t per_conn = full_reqs / (uint64_t)opt.connections + 1;
        if ((uint64_t)npool > per_conn)
            npool = (int)per_conn;
        if (have_tail) {
            lg_rng r;
            rng_seed(&r, opt.seed * 1000003u + 999983u);
            if (build_pool(&r, &tail_req, 1, (int)(opt.records % (uint64_t)opt.batch), NULL) < 0)
                return 1;
        }
    }

    conns = xcalloc((size_t)opt.connections, sizeof(lg_conn));
    pthread_barrier_init(&start_barrier, NULL, (unsigned)opt.connections + 1);
    for (int i = 0; i < opt.connections; i++) {
        lg_conn *c = &conns[i];
        c->idx = i;
        c->npool = npool;
        rng_seed(&c->rng, opt.seed * 1000003u + (uint64_t)i);
        int rc = pthread_create(&c->th, NULL, conn_main, c);
        if (rc != 0) {
            fprintf(stderr, "weir-loadgen: pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }
    pthread_barrier_wait(&start_barrier); /* every connection built its pool and connected */
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    t_start = now_ns();
    t_deadline = t_start + (uint64_t)(opt.duration * 1e9);
    pthread_barrier_wait(&start_barrier);
    for (int i = 0; i < opt.connections; i++)
        pthread_join(conns[i].th, NULL);
    getrusage(RUSAGE_SELF, &ru1);

    lg_hist *h = xcalloc(1, sizeof(lg_hist));
    uint64_t sent = 0, acked = 0, reqs = 0, acks = 0, wire = 0, payload_sent = 0, mism = 0, cerr = 0, unacked = 0,
             t_end = t_start;
    double avg_rec = 0;
    for (int i = 0; i < opt.connections; i++) {
        lg_conn *c = &conns[i];
        sent += c->records_sent;
        acked += c->records_acked;
        reqs += c->requests_sent;
        acks += c->acks;
        wire += c->wire_bytes;
        payload_sent += c->payload_sent;
        mism += c->mismatches;
        cerr += c->conn_errors;
        unacked += c->unacked;
        if (c->t_done > t_end)
            t_end = c->t_done;
        avg_rec += c->avg_rec / opt.connections;
        hist_merge(h, c->hist);
    }
    if (avg_rec > 1.1 * opt.record_size)
        fprintf(stderr, "weir-loadgen: note: records average %.0f bytes; the record shape cannot go below ~420\n",
                avg_rec);
    if (opt.ack && unacked)
        fprintf(stderr, "weir-loadgen: %" PRIu64 " records were sent but never acked\n", unacked);
    uint64_t errors = mism + cerr + (opt.ack && unacked ? 1 : 0);
    double elapsed = (double)(t_end - t_start) / 1e9;
    if (elapsed <= 0)
        elapsed = 1e-9;
    uint64_t done = opt.ack ? acked : sent;
    double payload_per_rec = sent ? (double)payload_sent / (double)sent : 0;
    double rps = (double)done / elapsed;
    double mbps = (double)done * payload_per_rec / elapsed / 1e6;
    double wire_mbps = (double)wire / elapsed / 1e6;
    double p50 = hist_pct(h, 0.50) / 1000.0, p99 = hist_pct(h, 0.99) / 1000.0, pmax = (double)h->max_us / 1000.0;
    double cpu = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime) + tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);

    if (opt.json) {
        printf("{\"mode\":\"%s\",\"connections\":%d,\"batch\":%d,\"pipeline\":%d,\"ack\":%s,"
               "\"record_bytes\":%.1f,\"records_sent\":%" PRIu64 ",\"records_acked\":%" PRIu64
               ",\"requests_sent\":%" PRIu64 ",\"acks\":%" PRIu64 ",\"elapsed_s\":%.3f,\"records_per_s\":%.0f,"
               "\"payload_mb_per_s\":%.2f,\"wire_mb_per_s\":%.2f,\"wire_bytes\":%" PRIu64
               ",\"ack_p50_ms\":%.3f,\"ack_p99_ms\":%.3f,\"ack_max_ms\":%.3f,\"loadgen_cpu_s\":%.2f,"
               "\"ack_mismatches\":%" PRIu64 ",\"connection_errors\":%" PRIu64 ",\"unacked_records\":%" PRIu64
               ",\"errors\":%" PRIu64 ",\"interrupted\":%s}\n",
               lg_mode_names[opt.mode], opt.connections, opt.batch, opt.pipeline, opt.ack ? "true" : "false",
               avg_rec, sent, acked, reqs, acks, elapsed, rps, mbps, wire_mbps, wire, p50, p99, pmax, cpu, mism, cerr,
               unacked, errors, stop_flag ? "true" : "false");
    } else {
        printf("mode             %s%s\n", lg_mode_names[opt.mode], opt.ack ? "" : " (no ack)");
        printf("connections      %d (pipeline %d)\n", opt.connections, opt.pipeline);
        printf("batch            %d records of %.0f bytes avg\n", opt.batch, avg_rec);
        printf("records sent     %" PRIu64 " in %" PRIu64 " requests\n", sent, reqs);
        printf("records acked    %" PRIu64 "%s\n", acked, opt.ack ? "" : " (acks off)");
        printf("elapsed          %.3f s\n", elapsed);
        printf("records/s        %.0f\n", rps);
        printf("payload MB/s     %.2f (uncompressed entries)\n", mbps);
        printf("wire MB/s        %.2f\n", wire_mbps);
        if (opt.ack)
            printf("ack latency ms   p50 %.3f  p99 %.3f  max %.3f  (%" PRIu64 " acks)\n", p50, p99, pmax, acks);
        printf("loadgen CPU      %.2f s (%.0f%% of one core)\n", cpu, 100.0 * cpu / elapsed);
        printf("errors           %" PRIu64 " (ack mismatches %" PRIu64 ", connection errors %" PRIu64
               ", unacked records %" PRIu64 ")\n",
               errors, mism, cerr, unacked);
    }
    fflush(stdout);
    if (stop_flag)
        fprintf(stderr, "weir-loadgen: interrupted by a signal after %.3f s\n", elapsed);
    for (int i = 0; i < opt.connections; i++)
        free(conns[i].hist);
    free(conns);
    free(h);
    if (have_tail)
        free_request(&tail_req);
    pthread_barrier_destroy(&start_barrier);
    return errors ? 1 : stop_flag ? 3 : 0;
}
