/*
 * buffer/buffer.h: Fluentd's <buffer> for one output: staged and queued
 * chunks (file or memory), flush threads, retries with back-off, secondary
 * and dead letters, crash recovery. Design and file format: docs/buffer.md.
 *
 * Threads: buffer_append() is called only by the output's ingest thread;
 * flush threads are created by buffer_start(); everything shared is under
 * `mu`. A staged chunk is written only by the ingest thread; a queued chunk
 * only read by the one flush thread that took it.
 */
#ifndef WEIR_BUFFER_H
#define WEIR_BUFFER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "lib/batch.h"
#include "lib/wbuf.h"
#include "config/conf.h"
#include "buffer/sink.h"

enum { BUF_MEMORY, BUF_FILE };
enum { FLUSH_DEFAULT, FLUSH_LAZY, FLUSH_INTERVAL, FLUSH_IMMEDIATE };
enum { OVERFLOW_THROW, OVERFLOW_BLOCK, OVERFLOW_DROP_OLDEST };
enum { RETRY_EXPONENTIAL, RETRY_PERIODIC };

typedef struct buf_conf {
    int type;
    char *path;
    double timekey;
    double timekey_wait;
    int timekey_use_utc;
    uint64_t chunk_limit_size;
    int64_t chunk_limit_records;
    uint64_t total_limit_size;
    int64_t queued_chunks_limit_size;
    int flush_mode;
    double flush_interval;
    int64_t flush_thread_count;
    double flush_thread_interval;
    char *flush_at_shutdown; /* "true"/"false" or NULL = type default */
    int overflow_action;
    int retry_type;
    double retry_wait;
    double retry_exponential_backoff_base;
    double retry_max_interval;
    int retry_randomize;
    double retry_timeout;
    int64_t retry_max_times;
    int retry_forever;
    int fsync;
    char *dead_letter_path;
    char *dead_letter_label; /* records given up on and rejected ones go to this label (the pipeline's dead_sink) */
    char *dead_letter_key;   /* where the dead-letter map is put into each record */
    int compress;
    double delayed_commit_timeout;
    double retry_secondary_threshold;
    /* accepted for Fluentd compatibility, no effect yet */
    char *timekey_zone;
    double flush_thread_burst_interval;
    /* Fluentd's buffer parameters (buffer.rb, buf_file.rb) */
    int64_t queue_limit_length;  /* -1: not set */
    double chunk_full_threshold; /* enqueue at this fraction of chunk_limit_size / _records */
    int disable_chunk_backup;    /* no effect: records given up on are always kept (docs/buffer.md) */
    char *path_suffix;           /* no effect: weir names its chunk files */
    char *file_permission, *dir_permission;
    uint64_t decompression_size_limit; /* no effect: chunks are not compressed */
} buf_conf;

typedef struct chunk chunk;

/* Why records are dead letters, for the pipeline's dead_sink
 * (dead_letter_label). kind: "rejected" (the backend refused these records
 * one by one), "retries_exhausted" (retry_max_times or retry_timeout),
 * "unrecoverable" (the output gave the chunk up at once). */
typedef struct buf_dead {
    const char *kind;
    const char *reason;         /* the batch's */
    const char *const *reasons; /* per record of the batch, NULL entries: reason; may be NULL */
    int attempts;               /* flush attempts made for these records */
    const char *output;         /* the output's id */
} buf_dead;

/* delivered chunk files a file buffer keeps to write its next chunks over */
#define BUF_POOL_MAX 4
#define RBUF_KEEP_MAX 4 /* read buffers kept per file buffer (chunk.c "Read buffers") */

typedef struct buffer {
    buf_conf c;
    buf_sink sink;
    int key_tag, key_time;
    int flush_at_shutdown;
    char *dlq_dir;
    unsigned file_mode, dir_mode; /* file_permission, dir_permission: chunk and dead-letter files, directories */

    pthread_mutex_t mu;
    pthread_cond_t cv_flush; /* flush threads wait for work */
    pthread_cond_t cv_space; /* ingest waits for space (overflow block, full disk) */
    chunk *staged;           /* list */
    chunk *qhead, *qtail;    /* queue, oldest first */
    uint64_t total_bytes;
    uint32_t nstaged, nqueued, nflushing;
    int stopping, drain;
    int abort_waits; /* shutdown: appends waiting for space (block, full disk) give up */
    pthread_t *flushers;
    int nflushers;
    uint64_t next_id;
    /* spent chunk files kept to be written over (chunk.c "Recycling"), under mu */
    char *pool[BUF_POOL_MAX];
    int npool;
    /* file buffers: the flush threads' read buffers, lent to the batches
     * chunk_load makes and given back on their last unref (chunk.c) */
    struct rbuf_pool *rpool;

    /* retry state (per output, as in Fluentd) */
    int retrying;
    double retry_start, next_retry;
    int retries;

    pthread_mutex_t dlq_mu; /* dead-letter file and secondary writes */

    /* where records an output rejected one by one go (the @ERROR label),
     * set by the pipeline; NULL: the dead-letter file */
    int (*error_sink)(void *arg, const batch *b, const char *reason);
    void *error_sink_arg;
    /* with dead_letter_label: where dead letters go first (the pipeline
     * routes them, decorated, to that label); 0 taken, -1 not (the file
     * then). Set and switched like error_sink. */
    int (*dead_sink)(void *arg, const batch *b, const buf_dead *d);
    void *dead_sink_arg;
    char *dl_label_file; /* where dead_letter_label was set, for the pipeline's check */
    int dl_label_line;

    /* counters (metrics) */
    atomic_uint_fast64_t appended_records, flushed_records, retried_flushes, failed_flushes;
    atomic_uint_fast64_t dead_letter_records, secondary_records, dropped_chunks, dropped_records;
    atomic_uint_fast64_t streamed_batches; /* batches larger than total_limit_size, written as space freed */
    atomic_uint_fast64_t rejected_batches, recovered_chunks, recovered_records, torn_tails, corrupt_chunks;
} buffer;

/* <buffer>'s parameters (bound into buf_conf) */
extern const conf_spec buffer_conf_spec[];

/* Parse <buffer ARGS>; the buffer delivers to `sink` (copied). NULL and
 * errors added on failure. */
buffer *buffer_create(const buf_sink *sink, conf_node *n, conf_errors *errs);
/* Recover chunks left on disk and start the flush threads. */
int buffer_start(buffer *b);
/* Append a batch (ingest thread). 0: stored (durable per the buffer type);
 * -1: refused (overflow throw_exception, I/O error): no ack must be sent. */
int buffer_append(buffer *b, const batch *bt);
/* A consistent view for the metrics endpoint (takes the buffer's lock). */
typedef struct buffer_snap {
    uint64_t bytes, limit;
    uint32_t staged, queued, flushing;
    int retrying, retries;
    double next_retry_in, oldest_age;
} buffer_snap;
void buffer_snapshot(buffer *b, buffer_snap *s);

/* Shutdown: appends that wait for space (overflow block, full disk) fail
 * instead (no ack: the sender keeps the records). Any thread. */
void buffer_abort_waits(buffer *b);
/* Stop: flush what flush_at_shutdown asks for until `deadline` (monotonic s), join, free. */
void buffer_destroy(buffer *b, double deadline);

/* Reload: 1 takes, 0 releases the lock that error_sink calls hold (shared);
 * while it is held, error_sink and error_sink_arg may be changed. */
void buffer_sink_lock(int lock);

/* Parse a chunk file's bytes (header checks, then every whole, checksum-valid
 * block) into a batch; the code recovery and flushes use. NULL with err set
 * when the header is bad or no block is readable. For tests and fuzzing. */
batch *buffer_chunk_decode(const uint8_t *data, size_t len, char *err, size_t errlen);

#endif
