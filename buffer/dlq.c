/*
 * buffer/dlq.c: where records go when they cannot be delivered: the
 * <secondary> output (records the buffer gives up on), the @ERROR label
 * (records the output rejected one by one), and, when those are absent or
 * fail too, the dead-letter file, one JSON line per record
 * (docs/buffer.md "Retries").
 */
#include "buffer/buffer_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/fdio.h"
#include "lib/json.h"
#include "lib/log.h"

/* Append the records (all, or those with status[i] == want) as JSON lines to the
 * dead-letter file. Returns how many were written, -1 on I/O error. */
static long dead_letter(buffer *b, const batch *bt, const out_result *res, int want, const char *why)
{
    pthread_mutex_lock(&b->dlq_mu);
    long n = -1;
    int fd = -1;
    wbuf out = {0};
    char path[4400], day[16];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(day, sizeof day, "%Y%m%d", &tm);
    if (buf_mkdir_p(b->dlq_dir, b->dir_mode) != 0)
        goto out;
    snprintf(path, sizeof path, "%s/%s.%s.jsonl", b->dlq_dir, b->sink.id, day);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, b->file_mode);
    if (fd < 0)
        goto out;
    batch_iter it;
    entry e;
    uint32_t i = 0;
    n = 0;
    batch_iter_init(&it, bt);
    for (; batch_iter_next(&it, &e) == 1; i++) {
        if (res && res->status && res->status[i] != want)
            continue;
        const char *r = res && res->reasons && res->reasons[i] ? res->reasons[i] : why;
        char tbuf[48];
        int tl = snprintf(tbuf, sizeof tbuf, "{\"time\":%u.%09u,\"tag\":", e.sec, e.nsec);
        const uint8_t *q = e.record;
        if (wbuf_add(&out, tbuf, (size_t)tl) || jw_string(&out, (const uint8_t *)e.tag, e.tag_len) ||
            wbuf_add(&out, ",\"record\":", 10) || jw_value(&out, &q, e.record + e.record_len) ||
            wbuf_add(&out, ",\"output\":", 10) ||
            jw_string(&out, (const uint8_t *)b->sink.id, strlen(b->sink.id)) || wbuf_add(&out, ",\"error\":", 9) ||
            jw_string(&out, (const uint8_t *)r, strlen(r)) || wbuf_add(&out, "}\n", 2)) {
            n = -1;
            goto out;
        }
        n++;
    }
    if (fd_write_all(fd, out.data, out.len) != 0 || (b->c.fsync && fdatasync(fd) != 0))
        n = -1;
out:
    if (n < 0)
        wlog_error("buffer", "%s: cannot write the dead-letter file under %s: %s", b->sink.id, b->dlq_dir,
                   strerror(errno));
    else if (n > 0)
        wlog_warn("buffer", "%s: %ld records written to the dead-letter file %s: %s", b->sink.id, n, path, why);
    if (fd >= 0)
        close(fd);
    wbuf_free(&out);
    pthread_mutex_unlock(&b->dlq_mu);
    if (n > 0)
        atomic_fetch_add(&b->dead_letter_records, (uint64_t)n);
    return n;
}

/* Readers: flush threads handing records to error_sink/dead_sink. Writer: a
 * reload switching them (buffer_sink_lock). */
static pthread_rwlock_t sink_lock = PTHREAD_RWLOCK_INITIALIZER;
void buffer_sink_lock(int lock)
{
    if (lock)
        pthread_rwlock_wrlock(&sink_lock);
    else
        pthread_rwlock_unlock(&sink_lock);
}

/* dead_letter_label: the pipeline routes them; 0 when it took them. */
static int to_dead_sink(buffer *b, const batch *bt, const buf_dead *d)
{
    pthread_rwlock_rdlock(&sink_lock);
    int rc = b->dead_sink ? b->dead_sink(b->dead_sink_arg, bt, d) : -1;
    pthread_rwlock_unlock(&sink_lock);
    if (rc == 0)
        atomic_fetch_add(&b->dead_letter_records, bt->nrecords);
    else if (b->dead_sink)
        wlog_error("buffer", "%s: dead_letter_label %s did not take %u records; writing a dead letter", b->sink.id,
                   b->c.dead_letter_label, bt->nrecords);
    return rc;
}

/* Records that cannot be delivered: secondary first, then dead_letter_label,
 * the dead-letter file otherwise. 0 when they are safe somewhere, -1 when not
 * even the dead letter worked. kind and attempts: see buf_dead. */
int buf_give_up(buffer *b, const batch *bt, const char *why, const char *kind, int attempts)
{
    if (b->sink.secondary) {
        char sw[256] = "";
        const char *to = "";
        pthread_mutex_lock(&b->dlq_mu);
        int rc = b->sink.secondary(b->sink.arg, bt, sw, sizeof sw, &to);
        pthread_mutex_unlock(&b->dlq_mu);
        if (rc == OUT_OK) {
            wlog_warn("buffer", "%s: %u records handed to <secondary> %s: %s", b->sink.id, bt->nrecords, to, why);
            atomic_fetch_add(&b->secondary_records, bt->nrecords);
            return 0;
        }
        if (rc != -1)
            wlog_error("buffer", "%s: <secondary> %s failed too (%s); writing a dead letter", b->sink.id, to, sw);
    }
    if (b->c.dead_letter_label) {
        buf_dead d = {.kind = kind, .reason = why, .attempts = attempts, .output = b->sink.id};
        if (to_dead_sink(b, bt, &d) == 0) {
            wlog_warn("buffer", "%s: %u records sent to %s: %s", b->sink.id, bt->nrecords, b->c.dead_letter_label,
                      why);
            return 0;
        }
    }
    return dead_letter(b, bt, NULL, 0, why) < 0 ? -1 : 0;
}

/* Records an output rejected one by one: dead_letter_label when set, else
 * @ERROR when the configuration has it, the dead-letter file otherwise. */
int buf_reject_records(buffer *b, const batch *bt, const out_result *res, const char *why, int attempts)
{
    if (b->c.dead_letter_label) {
        batch *sel = buf_select_records(bt, res, OUT_ERROR);
        const char **rs = sel ? calloc(sel->nrecords ? sel->nrecords : 1, sizeof *rs) : NULL;
        int rc = -1;
        if (rs) {
            uint32_t k = 0;
            for (uint32_t i = 0; i < res->n && k < sel->nrecords; i++)
                if (res->status[i] == OUT_ERROR)
                    rs[k++] = res->reasons ? res->reasons[i] : NULL;
            buf_dead d = {.kind = "rejected", .reason = why, .reasons = rs, .attempts = attempts,
                          .output = b->sink.id};
            rc = to_dead_sink(b, sel, &d);
            if (rc == 0)
                wlog_warn("buffer", "%s: %u rejected records sent to %s: %s", b->sink.id, sel->nrecords,
                          b->c.dead_letter_label, why);
        }
        free(rs);
        if (sel)
            batch_unref(sel);
        if (rc == 0)
            return 0;
        return dead_letter(b, bt, res, OUT_ERROR, why) < 0 ? -1 : 0;
    }
    pthread_rwlock_rdlock(&sink_lock);
    if (b->error_sink) {
        batch *sel = buf_select_records(bt, res, OUT_ERROR);
        int rc = sel ? b->error_sink(b->error_sink_arg, sel, why) : 0;
        if (sel)
            batch_unref(sel);
        if (rc == 0) {
            pthread_rwlock_unlock(&sink_lock);
            return 0;
        }
    }
    pthread_rwlock_unlock(&sink_lock);
    return dead_letter(b, bt, res, OUT_ERROR, why) < 0 ? -1 : 0;
}
