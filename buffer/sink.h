/*
 * buffer/sink.h: what a buffer delivers to, and what a delivery reports.
 *
 * The buffer layer knows nothing of outputs: whoever creates a buffer (the
 * engine, for an output with a <buffer>) hands it a buf_sink, a small table
 * of callbacks. A flush thread calls sink.write() with one chunk's batch; the
 * return code and the out_result say what happened to each record.
 */
#ifndef WEIR_BUFFER_SINK_H
#define WEIR_BUFFER_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "lib/batch.h"

/* What a write reports for a batch or a record. */
enum { OUT_OK = 0, OUT_RETRY = 1, OUT_ERROR = 2 };

/*
 * What a write reports beyond its return code. A writer that knows which
 * records failed (Elasticsearch bulk items, Kafka delivery reports) marks
 * them with out_result_mark(): the buffer then retries only the RETRY ones
 * and dead-letters the ERROR ones with `reason`; unmarked records count as
 * delivered. The return code still says what happens to an unmarked batch.
 */
typedef struct out_result {
    uint32_t n;       /* records in the batch */
    uint8_t *status;  /* NULL, or n entries of OUT_OK/OUT_RETRY/OUT_ERROR */
    char **reasons;   /* NULL, or n entries (malloc'd strings or NULL) */
    char reason[256]; /* for a whole-batch RETRY/ERROR: what the backend said */
} out_result;

int out_result_mark(out_result *r, uint32_t idx, int status, const char *reason);
void out_result_free(out_result *r);

typedef struct buf_sink {
    void *arg;        /* passed to the callbacks */
    const char *id;   /* for logs and dead-letter records; outlives the buffer */
    const char *kind; /* short name for the flush threads ("flush-<kind>") */
    /* Deliver one batch (a flush thread; concurrently with itself only when
     * flush_thread_count > 1). OUT_OK / OUT_RETRY / OUT_ERROR, res filled. */
    int (*write)(void *arg, const batch *b, out_result *res);
    /* Records the buffer gives up on: hand them to the <secondary>, once,
     * synchronously. Returns OUT_OK or another OUT_ code with why set, or -1
     * when there is no secondary; *to is set to the secondary's id. */
    int (*secondary)(void *arg, const batch *b, char *why, size_t whylen, const char **to);
    /* Shutdown, after the drain (flush_at_shutdown) ended or ran out of
     * time, before the flush threads are joined: a write still waiting on
     * its backend should return soon (OUT_RETRY; a file buffer keeps the
     * chunk for the next start). From the stopping thread, concurrently with
     * write. Optional (NULL). */
    void (*abort)(void *arg);
} buf_sink;

#endif
