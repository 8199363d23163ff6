/*
 * bench/loadgen.h: what the units of weir-loadgen share (the design is told
 * at the top of bench/loadgen.c). The units:
 *   loadgen.c          options, the run (threads, start barrier, signals),
 *                      the latency histogram and the report
 *   loadgen_records.c  the records (Kubernetes container logs) and the
 *                      prebuilt requests of each mode
 *   loadgen_conn.c     a connection's thread: sending, acks, latencies
 */
#ifndef WEIR_BENCH_LOADGEN_H
#define WEIR_BENCH_LOADGEN_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define LG_CHUNK_LEN 24 /* base64 of 16 bytes, like Fluentd's ids (minus its "\n") */
#define LG_RBUF_SIZE (64 * 1024)
#define LG_MAX_ERR_PRINTS 5

/* ---- options (loadgen.c) ---------------------------------------------------- */

typedef enum lg_mode {
    LG_MESSAGE,
    LG_FORWARD,
    LG_PACKED,
    LG_GZIP,
    LG_ZSTD,
} lg_mode;

extern const char *const lg_mode_names[];

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

extern lg_opts opt;

/* ---- small helpers ---------------------------------------------------------- */

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* malloc and calloc that exit on failure (loadgen.c) */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);

/* xorshift64*: fast, good enough for making log lines differ. */
typedef struct lg_rng {
    uint64_t s;
} lg_rng;

static inline uint64_t rng_next(lg_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline uint32_t rng_below(lg_rng *r, uint32_t n)
{
    return (uint32_t)((rng_next(r) >> 32) % n);
}

static inline void rng_seed(lg_rng *r, uint64_t seed)
{
    /* splitmix64 so that nearby seeds give unrelated streams */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    r->s = z ? z : 0x1234567ull;
}

/* ---- latency histogram, microseconds (loadgen.c) ---------------------------- */

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

void hist_add(lg_hist *h, uint64_t us);

/* ---- requests (loadgen_records.c) ------------------------------------------- */

typedef struct lg_req {
    uint8_t *buf;
    size_t len;
    uint32_t nrecords;
    uint32_t nchunks;     /* 0 without acks; 1, or nrecords in Message mode */
    uint32_t *chunk_off;  /* offset of each 24-byte id placeholder */
    uint32_t *chunk_end;  /* offset just past the message that carries it */
    size_t payload_bytes; /* uncompressed [time, record] entries bytes */
} lg_req;

/* Build `nreq` requests of `per_req` records each (the last may be short). */
int build_pool(lg_rng *r, lg_req *reqs, int nreq, int per_req, double *avg_rec);
void free_request(lg_req *q);

/* ---- connections (loadgen_conn.c) ------------------------------------------- */

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

/* A connection's thread: builds its pool, connects, waits at start_barrier
 * twice (ready, go), sends until the run ends, keeps its results in c. */
void *conn_main(void *arg);

/* ---- the run (loadgen.c) ----------------------------------------------------- */

extern pthread_barrier_t start_barrier;
extern uint64_t t_start, t_deadline;
extern uint64_t full_reqs;          /* --records: number of full-batch requests */
extern lg_req tail_req;             /* --records: the short last request, if any */
extern int have_tail;
extern volatile sig_atomic_t stop_flag;

#endif
