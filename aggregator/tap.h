/*
 * aggregator/tap.h: live tap. `weir tap PATTERN` asks the running server's
 * HTTP endpoint (GET /api/tap?pattern=...&rate=...) for the records routed
 * to outputs whose tag matches PATTERN, as JSON lines, rate limited so a tap
 * cannot hurt the pipeline (docs/operations.md, "Debugging routes").
 *
 * Threads: tap_offer() is called where the router hands a batch to an output
 * (workers, the kafka consumer, flush threads re-emitting to @ERROR). With no
 * tap open it costs one relaxed atomic load. Taps are opened and read by the
 * monitor thread; each has a mutex for its pending lines and a token bucket
 * (records per second); what does not fit is counted, not queued.
 */
#ifndef WEIR_TAP_H
#define WEIR_TAP_H

#include <stdatomic.h>
#include <stdint.h>

#include "lib/batch.h"
#include "lib/wbuf.h"

extern atomic_int tap_open_count;

typedef struct tap tap;

/* `wake(arg)` is called (any thread) when lines are waiting. */
tap *tap_open(const char *patterns, const char *output_id, double rate, void (*wake)(void *), void *arg);
void tap_close(tap *t);
/* Monitor thread: append the pending lines to out; *dropped gets the count
 * of records skipped since the last call (rate limit or full buffer). */
void tap_take(tap *t, wbuf *out, uint64_t *dropped);

void tap_offer_slow(const char *output_id, const batch *b);
static inline void tap_offer(const char *output_id, const batch *b)
{
    if (atomic_load_explicit(&tap_open_count, memory_order_relaxed) > 0)
        tap_offer_slow(output_id, b);
}

/* `weir tap ...` (the client). Returns the process exit code. */
int tap_client_main(int argc, char **argv);

#endif
