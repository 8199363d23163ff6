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
 */#include "bench/loadgen.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* options                                                                  */

const char *const lg_mode_names[] = {"message", "forward", "packed", "compressed", "compressed-zstd"};

lg_opts opt = {
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

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "weir-loadgen: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) {
        fprintf(stderr, "weir-loadgen: out of memory (%zu x %zu bytes)\n", n, sz);
        exit(1);
    }
    return p;
}

/* ------------------------------------------------------------------------ */
/* latency histogram (microseconds)                                         */

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

void hist_add(lg_hist *h, uint64_t us)
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
/* the run                                                                  */

static lg_conn *conns;
pthread_barrier_t start_barrier;
uint64_t t_start, t_deadline;
uint64_t full_reqs;
lg_req tail_req;
int have_tail;
volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
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
