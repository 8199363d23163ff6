/*
 * buffer/buffer_int.h: what the units of buffer/ share; not API (the engine
 * uses buffer.h, whoever a buffer delivers to sink.h). The units:
 *   buffer.c   the <buffer> table, create/start/destroy, append: staging,
 *              queueing, overflow actions, full disk; the metrics snapshot
 *   chunk.c    the chunk file format (chunk.h) and one chunk's I/O
 *   recover.c  start-up recovery: scan the path, cut torn tails, move
 *              corrupt chunks aside, queue the rest
 *   flush.c    flush threads: flush modes (when staged chunks are queued),
 *              delivery, per-record outcomes, the retry scheduler
 *   dlq.c      records given up on: <secondary>, @ERROR, dead-letter files
 * Threads and locking: buffer.h. "Under mu": the caller holds b->mu.
 */
#ifndef WEIR_BUFFER_INT_H
#define WEIR_BUFFER_INT_H

#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"
#include "lib/wbuf.h"
#include "buffer/buffer.h"
#include "buffer/sink.h"

enum { C_STAGED, C_QUEUED, C_FLUSHING };

struct chunk {
    chunk *next;
    uint64_t id;
    char *tag; /* chunk key, NULL when tag is not a key */
    size_t tag_len;
    int64_t timekey; /* slice start, -1 when time is not a key */
    int state;
    int appending;     /* the ingest thread is writing it (staged) */
    int enqueue_after; /* due while appending: enqueue when the append ends */
    uint32_t records, blocks;
    uint64_t bytes; /* blocks (headers included), what counts against total_limit_size */
    double staged_at;
    double created; /* wall clock, s: for the oldest-chunk-age metric */
    int fd;
    char *path;
    uint64_t file_size;
    wbuf mem;      /* memory chunk: blocks */
    batch *loaded; /* memory chunk: its batch once compacted (kept for retries) */
    int recovered; /* read from disk at start: its blocks' checksums are verified when it is loaded */
    int reused;    /* written over a recycled file: an end mark follows the last block until it is sealed */
    uint64_t mb;   /* memory chunk: bytes reserved against the memory budget (lib/membudget.h), released by
                    * chunk_free */
};

/* ---- buffer.c ---- */
/* mkdir -p with mode (before the umask): 0, or -1 with errno set. */
int buf_mkdir_p(const char *path, unsigned mode);
/* Under mu: staged -> queued, at the tail; seals a file chunk, wakes a flush thread. */
void buf_enqueue(buffer *b, chunk *ch);
/* Under mu (or before the flush threads run, recovery): ch, unlinked, at the tail of the queue. */
void buf_queue_tail(buffer *b, chunk *ch);
/* Under mu: take a queued/flushing chunk out of the queue, delete its file, release its bytes, free it. */
void buf_chunk_delete(buffer *b, chunk *ch);

/* ---- chunk.c ---- */
/* Under mu (b->next_id): a new chunk with a unique id; for a file buffer its file is created with the header.
 * NULL with errno set on failure (file chunk: nothing left on disk). Not linked into any list. */
chunk *chunk_new(buffer *b, const char *tag, size_t tag_len, int64_t timekey);
/* Close the descriptor, free the descriptor and its memory (the file stays); release its memory-budget bytes. */
void chunk_free(chunk *ch);
/* Without mu, by the chunk's only writer: append one block. 0 or -errno; on failure the chunk is as before. */
int chunk_write_block(buffer *b, chunk *ch, const char *tag, size_t tag_len, const uint8_t *data, size_t len,
                      uint32_t records);
/* Under mu, at enqueue: write the header's record/block counters, close the descriptor. */
void chunk_seal(chunk *ch);
/* Under mu: a delivered or empty chunk's file goes: kept for a next chunk to be written over (up to
 * BUF_POOL_MAX) or unlinked. */
void chunk_discard_file(buffer *b, const char *path, uint64_t id);
/* Under mu: unlink the kept files (disk full, shutdown). */
void chunk_pool_drop(buffer *b);
/* Flush thread, no lock: the chunk's records as a batch (a reference). NULL with err set when unreadable. */
batch *chunk_load(buffer *b, chunk *ch, char *err, size_t errlen);
/* The read buffers of a file buffer (chunk.c "Read buffers"): made by buffer_start, let go by buffer_destroy
 * (freed once the last batch that holds one is gone). */
struct rbuf_pool *rbuf_pool_new(int keep, size_t max_cap);
void rbuf_pool_unref(struct rbuf_pool *p);

/* ---- recover.c ---- */
/* Before the flush threads start: queue every chunk left under the path (see docs/buffer.md "Recovery").
 * -1 only when the path cannot be read. */
int buf_recover(buffer *b);

/* ---- flush.c ---- */
/* A flush thread (pthread start routine; arg is the buffer). */
void *buf_flush_main(void *arg);
/* Seconds until the next attempt after the `retries`-th failed one (retry_type, base, max, randomize). */
double buf_retry_interval(const buf_conf *c, int retries);
/* 1 when the retry budget is used up: retries past retry_max_times, or retry_timeout since retry_start. */
int buf_retries_exhausted(const buf_conf *c, int retries, double retry_start, double now);
/* The records of bt whose res->status is `want`, as a new batch (one segment per tag run); NULL when none. */
batch *buf_select_records(const batch *bt, const out_result *res, int want);

/* ---- dlq.c ---- */
/* Records the buffer gives up on: <secondary>, else dead_letter_label, else the dead-letter file. 0 when they
 * are safe somewhere. */
int buf_give_up(buffer *b, const batch *bt, const char *why, const char *kind, int attempts);
/* Records the output marked OUT_ERROR: dead_letter_label, else the @ERROR sink, else the dead-letter file. 0
 * when safe somewhere. */
int buf_reject_records(buffer *b, const batch *bt, const out_result *res, const char *why, int attempts);

#endif
