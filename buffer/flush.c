/*
 * buffer/flush.c: the flush threads. Each one moves due staged chunks to the
 * queue (flush_mode), takes the queue head, hands its batch to the sink and
 * acts on the outcome: delete, back off and retry (the retry scheduler, per
 * output as in Fluentd), re-buffer the records marked for retry, or give up
 * to dlq.c. See docs/buffer.md "Threads", "Lifecycle" and "Retries".
 */
#include "buffer/buffer_int.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/log.h"
#include "lib/membudget.h"
#include "buffer/chunk.h"

/* ---- the retry scheduler ---------------------------------------------------------- */

/* retry_wait * base ^ (retries - 1), or retry_wait (periodic); capped by
 * retry_max_interval; randomised by +-12.5 %. */
double buf_retry_interval(const buf_conf *c, int retries)
{
    double w = c->retry_wait;
    if (c->retry_type == RETRY_EXPONENTIAL)
        w *= pow(c->retry_exponential_backoff_base, retries > 1 ? retries - 1 : 0);
    if (c->retry_max_interval > 0 && w > c->retry_max_interval)
        w = c->retry_max_interval;
    if (c->retry_randomize)
        w *= 0.875 + 0.25 * ((double)rand() / RAND_MAX);
    return w;
}

/* Under mu (the retry state is the buffer's): is the retry budget used up? */
int buf_retries_exhausted(const buf_conf *c, int retries, double retry_start, double now)
{
    if (c->retry_forever)
        return 0;
    if (c->retry_max_times >= 0 && retries > c->retry_max_times)
        return 1;
    return now - retry_start >= c->retry_timeout;
}

/* ---- per-record outcomes --------------------------------------------------------- */

/* The records of bt whose status is `want`, as a new batch (segments kept
 * per tag run). NULL when there are none. */
batch *buf_select_records(const batch *bt, const out_result *res, int want)
{
    wbuf data = {0};
    batch_seg *segs = NULL;
    uint32_t nsegs = 0, i = 0;
    for (uint32_t s = 0; s < bt->nsegs; s++) {
        const batch_seg *sg = &bt->segs[s];
        const uint8_t *p = bt->data + sg->off, *end = p + sg->len;
        entry e;
        int open = 0;
        for (;;) {
            const uint8_t *start = p;
            if (batch_next(&p, end, &e) != 1)
                break;
            if (res->status[i++] != want) {
                open = 0;
                continue;
            }
            if (!open) {
                segs = realloc(segs, (nsegs + 1) * sizeof *segs);
                segs[nsegs++] = (batch_seg){.tag = sg->tag, .tag_len = sg->tag_len, .off = data.len};
                open = 1;
            }
            wbuf_add(&data, start, (size_t)(p - start));
            segs[nsegs - 1].len += (size_t)(p - start);
            segs[nsegs - 1].nrecords++;
        }
    }
    batch *out = NULL;
    if (nsegs) {
        size_t len;
        uint8_t *d = wbuf_steal(&data, &len);
        out = batch_new_segs(d, len, segs, nsegs);
        if (!out)
            free(d);
    }
    wbuf_free(&data);
    free(segs);
    return out;
}

/* Re-buffer the records a plugin marked RETRY as a new chunk at the queue
 * head (so they go first); then the original chunk can be deleted. */
static int requeue_retry(buffer *b, const batch *bt, const out_result *res)
{
    batch *sel = buf_select_records(bt, res, OUT_RETRY);
    if (!sel)
        return 0;
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    chunk *ch = chunk_new(b, NULL, 0, -1);
    pthread_mutex_unlock(&b->mu);
    if (!ch) {
        batch_unref(sel);
        return -1;
    }
    for (uint32_t s = 0; s < sel->nsegs && rc == 0; s++) {
        const batch_seg *sg = &sel->segs[s];
        if (chunk_write_block(b, ch, sg->tag, sg->tag_len, sel->data + sg->off, sg->len, sg->nrecords) != 0)
            rc = -1;
        else {
            ch->bytes += CHUNK_BLK_HDR + sg->tag_len + sg->len;
            ch->blocks++;
            ch->records += sg->nrecords;
        }
    }
    batch_unref(sel);
    pthread_mutex_lock(&b->mu);
    if (rc == 0) {
        b->total_bytes += ch->bytes;
        if (b->c.type == BUF_MEMORY) {
            /* records the buffer already held (the original chunk goes once this one is queued): not refused */
            mb_force(ch->bytes);
            ch->mb = ch->bytes;
        }
        if (ch->fd >= 0) {
            close(ch->fd);
            ch->fd = -1;
        }
        ch->state = C_QUEUED;
        ch->next = b->qhead;
        b->qhead = ch;
        if (!b->qtail)
            b->qtail = ch;
        b->nqueued++;
    } else {
        if (ch->path)
            chunk_discard_file(b, ch->path, ch->id);
        chunk_free(ch);
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* ---- flushing ---------------------------------------------------------------------- */

/* Flush one chunk (no lock held); returns with the chunk deleted or back in QUEUED. */
static void flush_one(buffer *b, chunk *ch)
{
    char err[256] = "";
    batch *bt = chunk_load(b, ch, err, sizeof err);
    if (!bt) {
        wlog_error("buffer", "%s: cannot read chunk %016llx: %s; moving it aside", b->sink.id, (unsigned long long)ch->id,
                   err);
        atomic_fetch_add(&b->corrupt_chunks, 1);
        if (ch->path) {
            char dir[4200], to[4400];
            snprintf(dir, sizeof dir, "%s/corrupt", b->c.path);
            buf_mkdir_p(dir, b->dir_mode);
            snprintf(to, sizeof to, "%s/%016llx.chunk", dir, (unsigned long long)ch->id);
            if (rename(ch->path, to) == 0) {
                free(ch->path);
                ch->path = NULL;
            }
        }
        pthread_mutex_lock(&b->mu);
        b->nflushing--;
        buf_chunk_delete(b, ch);
        pthread_mutex_unlock(&b->mu);
        return;
    }
    out_result res = {.n = bt->nrecords};
    int rc = b->sink.write(b->sink.arg, bt, &res);
    int done = 0; /* chunk can be deleted */
    const char *why = res.reason[0] ? res.reason : rc == OUT_ERROR ? "unrecoverable error" : "retryable error";
    if (rc == OUT_OK && !res.status) {
        done = 1;
        atomic_fetch_add(&b->flushed_records, bt->nrecords);
    } else if (res.status) {
        /* per-record outcome: ERROR -> dead letter / secondary, RETRY -> new chunk first in line */
        uint32_t nerr = 0, nretry = 0;
        for (uint32_t i = 0; i < res.n; i++) {
            nerr += res.status[i] == OUT_ERROR;
            nretry += res.status[i] == OUT_RETRY;
        }
        int ok = 1;
        if (nerr && buf_reject_records(b, bt, &res, why, b->retries + 1) != 0)
            ok = 0;
        if (ok && nretry && requeue_retry(b, bt, &res) != 0)
            ok = 0;
        if (ok) {
            done = 1;
            atomic_fetch_add(&b->flushed_records, bt->nrecords - nerr - nretry);
            rc = nretry ? OUT_RETRY : OUT_OK;
        } else {
            rc = OUT_RETRY;
        }
    }
    pthread_mutex_lock(&b->mu);
    double now = clock_mono();
    if (rc == OUT_OK) {
        if (b->retrying)
            wlog_info("buffer", "%s: flush succeeded after %d retries", b->sink.id, b->retries);
        b->retrying = 0;
        b->retries = 0;
    } else if (rc == OUT_RETRY) {
        atomic_fetch_add(&b->retried_flushes, 1);
        if (!b->retrying) {
            b->retrying = 1;
            b->retry_start = now;
        }
        b->retries++;
        if (!done && buf_retries_exhausted(&b->c, b->retries, b->retry_start, now)) {
            pthread_mutex_unlock(&b->mu);
            wlog_error("buffer", "%s: giving up on chunk %016llx (%u records) after %d retries: %s", b->sink.id,
                       (unsigned long long)ch->id, ch->records, b->retries - 1, why);
            atomic_fetch_add(&b->failed_flushes, 1);
            done = buf_give_up(b, bt, why, "retries_exhausted", b->retries) == 0;
            pthread_mutex_lock(&b->mu);
            b->retrying = 0;
            b->retries = 0;
        } else {
            double wait = buf_retry_interval(&b->c, b->retries);
            b->next_retry = now + wait;
            wlog_warn("buffer", "%s: flush of chunk %016llx failed (%s); retry %d in %.1fs", b->sink.id,
                      (unsigned long long)ch->id, why, b->retries, wait);
        }
    } else {
        atomic_fetch_add(&b->failed_flushes, 1);
        pthread_mutex_unlock(&b->mu);
        wlog_error("buffer", "%s: unrecoverable error for chunk %016llx (%u records): %s", b->sink.id,
                   (unsigned long long)ch->id, ch->records, why);
        done = buf_give_up(b, bt, why, "unrecoverable", b->retries + 1) == 0;
        pthread_mutex_lock(&b->mu);
    }
    b->nflushing--;
    if (done) {
        buf_chunk_delete(b, ch);
    } else {
        ch->state = C_QUEUED;
        if (b->c.type == BUF_FILE) {
            /* keep RSS flat: re-read on the next attempt */
        }
    }
    pthread_cond_broadcast(&b->cv_flush);
    pthread_mutex_unlock(&b->mu);
    batch_unref(bt);
    out_result_free(&res);
}

/* Under mu: move due staged chunks to the queue; returns the next deadline. */
static double enqueue_due(buffer *b, double now)
{
    double next = now + 1.0, wall = 0;
    chunk *ch = b->staged;
    while (ch) {
        chunk *nx = ch->next;
        double due;
        if (b->drain || b->c.flush_mode == FLUSH_IMMEDIATE)
            due = now;
        else if (b->c.flush_mode == FLUSH_INTERVAL)
            due = ch->staged_at + b->c.flush_interval;
        else if (ch->timekey >= 0) {
            if (!wall)
                wall = clock_wall();
            due = now + ((double)ch->timekey + b->c.timekey + b->c.timekey_wait - wall);
        } else
            due = INFINITY; /* lazy without a time key: only when full */
        if (due <= now && ch->records) {
            if (ch->appending)
                ch->enqueue_after = 1;
            else
                buf_enqueue(b, ch);
        } else if (due < next) {
            next = due;
        }
        ch = nx;
    }
    return next;
}

void *buf_flush_main(void *arg)
{
    buffer *b = arg;
    char name[16];
    snprintf(name, sizeof name, "flush-%.9s", b->sink.kind);
    pthread_setname_np(pthread_self(), name);
    pthread_mutex_lock(&b->mu);
    for (;;) {
        double now = clock_mono();
        double next = enqueue_due(b, now);
        if (b->stopping && !b->drain)
            break;
        chunk *ch = NULL;
        if (!b->retrying || now >= b->next_retry)
            for (ch = b->qhead; ch && ch->state != C_QUEUED; ch = ch->next)
                ;
        if (ch) {
            ch->state = C_FLUSHING;
            b->nflushing++;
            pthread_mutex_unlock(&b->mu);
            flush_one(b, ch);
            pthread_mutex_lock(&b->mu);
            continue;
        }
        if (b->stopping && b->drain && b->nqueued == 0 && b->nstaged == 0)
            break;
        if (b->retrying && b->next_retry < next)
            next = b->next_retry;
        if (next < now + 0.001)
            next = now + 0.001;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double until = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + (next - now);
        ts.tv_sec = (time_t)until;
        ts.tv_nsec = (long)((until - (double)ts.tv_sec) * 1e9);
        pthread_cond_timedwait(&b->cv_flush, &b->mu, &ts);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}
