/*
 * lib/batch.h: the unit that crosses from an input's thread to the
 * outputs, and the ticket that tells the input when every output is done.
 *
 * A batch holds records of ONE tag in weir's internal entry format, which is
 * the forward protocol's PackedForward entry stream, normalised:
 *     [EventTime, {record}]                  or
 *     [[EventTime, {metadata}], {record}]    (Fluent Bit metadata kept)
 * concatenated. EventTime is always the fixext8 type-0 encoding
 * (d7 00 <u32 sec> <u32 nsec>). Because this is what Fluent Bit and Fluentd
 * already send, a valid PackedForward request becomes a batch with a single
 * memcpy and no per-record re-encoding.
 *
 * Ownership: a batch is immutable once published and reference counted; the
 * last batch_unref() frees it (any thread). A ticket is owned by the input
 * that created it; outputs only call ticket_done() on it, exactly once per
 * output they were handed it for, from their own thread. The `done` callback
 * therefore runs on an output thread and must only hand the ticket back to
 * its owner's thread (queue + wake-up), never touch the owner's state.
 */
#ifndef WEIR_BATCH_H
#define WEIR_BATCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wbuf.h"

#define BATCH_MAGIC 0x57424154u /* "WBAT" */

/* A run of entries of one tag inside a batch. */
typedef struct batch_seg {
    const char *tag; /* NUL-terminated */
    uint32_t tag_len;
    uint32_t nrecords;
    size_t off, len; /* entries at data[off .. off+len) */
} batch_seg;

/* Most batches (everything an input produces) have one tag: `tag` is then
 * that tag and segs points at seg1. A batch read back from a buffer chunk
 * whose chunk keys do not include the tag holds several segments. */
typedef struct batch {
    uint32_t magic;
    atomic_int refs;
    uint32_t nrecords;
    uint32_t tag_len;
    char *tag;     /* first segment's tag, NUL-terminated */
    uint8_t *data; /* entries */
    size_t len;
    batch_seg *segs;
    uint32_t nsegs;
    batch_seg seg1; /* storage for the single-segment case */
    /* Who frees `data` on the last unref: NULL, free(); else
     * release(release_arg, data, data_cap) (any thread): a buffer's pool of
     * chunk read buffers (buffer/chunk.c) takes it back. Set by the owner
     * right after batch_new*. */
    void (*release)(void *arg, uint8_t *data, size_t cap);
    void *release_arg;
    size_t data_cap;
} batch;

/* Allocate a batch taking ownership of `data` (malloc'd), copying the tag. */
batch *batch_new(const char *tag, size_t tag_len, uint8_t *data, size_t len, uint32_t nrecords);
/* Allocate a multi-segment batch: takes ownership of `data`; copies the
 * segments and their tags. */
batch *batch_new_segs(uint8_t *data, size_t len, const batch_seg *segs, uint32_t nsegs);
static inline void batch_ref(batch *b) { atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed); }
void batch_unref(batch *b);

typedef struct ticket ticket;
struct ticket {
    atomic_int outstanding; /* outputs that still have to report */
    atomic_int failed;      /* outputs that reported failure */
    void (*done)(ticket *t); /* called once, on the thread of the last output to report */
};

/* Called by an output when it has finished with the batch it got with `t`.
 * ok = 0 means the records could not be accepted (no ack must be sent). */
static inline void ticket_done(ticket *t, int ok)
{
    if (!ok)
        atomic_fetch_add_explicit(&t->failed, 1, memory_order_relaxed);
    if (atomic_fetch_sub_explicit(&t->outstanding, 1, memory_order_acq_rel) == 1)
        t->done(t);
}

/* A ticket its owner waits for, blocking its own thread (the kafka source's
 * burst, the router's @ERROR records): ticket_sync_init with the reports
 * expected, hand &s->t to the outputs, then ticket_sync_wait returns once
 * the last one reported: the number of failed reports (0: all accepted). */
typedef struct ticket_sync {
    ticket t;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} ticket_sync;
void ticket_sync_init(ticket_sync *s, int outstanding);
int ticket_sync_wait(ticket_sync *s);

/* One decoded entry, for outputs and filters walking a batch. */
typedef struct entry {
    const char *tag; /* set by batch_iter_next; NULL from batch_next */
    uint32_t tag_len;
    uint32_t sec, nsec;
    const uint8_t *meta;   /* msgpack map or NULL */
    size_t meta_len;
    const uint8_t *record; /* msgpack map */
    size_t record_len;
} entry;

/* Append the head of one entry in weir's format: the array header and the
 * time (with the metadata map when meta is not NULL). The record follows. */
int batch_put_entry_head(wbuf *w, uint32_t sec, uint32_t nsec, const uint8_t *meta, size_t meta_len);

/* Iterate the entries of a batch (trusted data: built by weir).
 * Returns 1 with *e filled, 0 at the end, -1 on a malformed batch. */
int batch_next(const uint8_t **p, const uint8_t *end, entry *e);

/* Iterate every entry of a batch across its segments, with its tag. */
typedef struct batch_iter {
    const batch *b;
    uint32_t seg;
    const uint8_t *p, *end;
} batch_iter;
void batch_iter_init(batch_iter *it, const batch *b);
int batch_iter_next(batch_iter *it, entry *e); /* 1, 0 at the end, -1 malformed */

#endif
