/*
 * buffer/buffer.c: a buffer's life: the <buffer> parameters, create, start,
 * destroy; the append path (ingest thread): staging chunks per (tag, time
 * slice), queueing full ones, total_limit_size and overflow_action, a full
 * disk; the metrics snapshot. Read docs/buffer.md first: it has the lifecycle
 * and the file format. The other units are listed in buffer_int.h.
 */
#include "buffer/buffer_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/list.h"
#include "lib/log.h"
#include "lib/membudget.h"
#include "buffer/chunk.h"

/* ---- configuration ------------------------------------------------------------ */

const conf_spec buffer_conf_spec[] = {
    {"@type", CONF_ENUM, "memory", 0, offsetof(buf_conf, type), "memory|file",
     "`memory`, or `file` (chunks in files under `path`, recovered at the next start)"},
    {"path", CONF_STR, NULL, 0, offsetof(buf_conf, path), NULL,
     "required for `@type file`: directory of this output's chunk files (one directory per output)"},
    {"timekey", CONF_TIME, "1d", 0, offsetof(buf_conf, timekey), NULL,
     "time slice of the `time` chunk key; at least 1s"},
    {"timekey_wait", CONF_TIME, "10m", 0, offsetof(buf_conf, timekey_wait), NULL,
     "lazy flush waits this long after a slice ends"},
    {"timekey_use_utc", CONF_BOOL, "false", 0, offsetof(buf_conf, timekey_use_utc), NULL,
     "slices follow UTC midnight; `false`: local midnight"},
    {"timekey_zone", CONF_STR, NULL, 0, offsetof(buf_conf, timekey_zone), NULL,
     "accepted for compatibility; no effect"},
    {"chunk_limit_size", CONF_SIZE, "8m", 0, offsetof(buf_conf, chunk_limit_size), NULL,
     "a chunk is enqueued when it reaches this size; at least 1k (Fluentd's file buffer default is 256m: weir uses "
     "8m for both types so memory stays small; set it explicitly to change it)"},
    {"chunk_limit_records", CONF_INT, "0", 0, offsetof(buf_conf, chunk_limit_records), NULL,
     "... or this many records; `0`: no limit"},
    {"total_limit_size", CONF_SIZE, NULL, 0, offsetof(buf_conf, total_limit_size), NULL,
     "staged + queued bytes, then `overflow_action` applies; default `512m` for memory, `64g` for file buffers; not "
     "below `chunk_limit_size`. A batch larger than this whole limit is not refused: it is written chunk by chunk "
     "as the output frees space"},
    {"queued_chunks_limit_size", CONF_INT, "0", 0, offsetof(buf_conf, queued_chunks_limit_size), NULL,
     "accepted for compatibility; no effect"},
    {"flush_mode", CONF_ENUM, "default", 0, offsetof(buf_conf, flush_mode), "default|lazy|interval|immediate",
     "`lazy`: a chunk is enqueued when its time slice ended plus `timekey_wait`; `interval`: `flush_interval` after "
     "it was created; `immediate`: at every append; `default`: `lazy` with a `time` chunk key, else `interval`"},
    {"flush_interval", CONF_TIME, "60s", 0, offsetof(buf_conf, flush_interval), NULL,
     "interval mode: a chunk is enqueued this long after it was created"},
    {"flush_thread_count", CONF_INT, "1", 0, offsetof(buf_conf, flush_thread_count), NULL,
     "parallel flushes, 1..64 (order then holds per chunk only)"},
    {"flush_thread_interval", CONF_TIME, "1s", 0, offsetof(buf_conf, flush_thread_interval), NULL,
     "accepted for compatibility; no effect"},
    {"flush_thread_burst_interval", CONF_TIME, "1s", 0, offsetof(buf_conf, flush_thread_burst_interval), NULL,
     "accepted for compatibility; no effect"},
    {"flush_at_shutdown", CONF_STR, NULL, 0, offsetof(buf_conf, flush_at_shutdown), NULL,
     "boolean: flush staged and queued chunks on SIGTERM; default `true` for memory, `false` for file buffers (they "
     "keep their chunks for the next start)"},
    {"overflow_action", CONF_ENUM, "throw_exception", 0, offsetof(buf_conf, overflow_action),
     "throw_exception|block|drop_oldest_chunk",
     "when `total_limit_size` is reached: `throw_exception` (no ack: the sender retries), `block` (stop reading "
     "sockets, hold acks), `drop_oldest_chunk` (the oldest queued chunk is deleted, its records counted as "
     "dropped); a full disk is always handled as `block`"},
    {"retry_type", CONF_ENUM, "exponential_backoff", 0, offsetof(buf_conf, retry_type), "exponential_backoff|periodic",
     "`exponential_backoff`: `retry_wait * retry_exponential_backoff_base ^ (retries - 1)`; `periodic`: `retry_wait`"},
    {"retry_wait", CONF_TIME, "1s", 0, offsetof(buf_conf, retry_wait), NULL, "first back-off after a failed flush"},
    {"retry_exponential_backoff_base", CONF_TIME, "2", 0, offsetof(buf_conf, retry_exponential_backoff_base), NULL,
     "a number (at least 1) multiplying the back-off at each retry"},
    {"retry_max_interval", CONF_TIME, "0", 0, offsetof(buf_conf, retry_max_interval), NULL,
     "cap on the back-off; `0`: none"},
    {"retry_randomize", CONF_BOOL, "true", 0, offsetof(buf_conf, retry_randomize), NULL,
     "randomise each back-off by ±12.5 %"},
    {"retry_timeout", CONF_TIME, "72h", 0, offsetof(buf_conf, retry_timeout), NULL,
     "give up this long after the first failure: the chunk goes to `<secondary>`, else the dead-letter file"},
    {"retry_max_times", CONF_INT, "-1", 0, offsetof(buf_conf, retry_max_times), NULL,
     "... or after this many retries; `-1`: no limit"},
    {"retry_forever", CONF_BOOL, "false", 0, offsetof(buf_conf, retry_forever), NULL,
     "never give up (`retry_timeout` and `retry_max_times` do not apply)"},
    {"retry_secondary_threshold", CONF_TIME, "0.8", 0, offsetof(buf_conf, retry_secondary_threshold), NULL,
     "accepted for compatibility; no effect"},
    {"delayed_commit_timeout", CONF_TIME, "60s", 0, offsetof(buf_conf, delayed_commit_timeout), NULL,
     "accepted for compatibility; no effect"},
    {"fsync", CONF_BOOL, "false", 0, offsetof(buf_conf, fsync), NULL,
     "weir: `fdatasync` chunk and dead-letter writes before acking (power-loss durability; see docs/benchmarks.md "
     "for its cost)"},
    {"dead_letter_path", CONF_STR, NULL, 0, offsetof(buf_conf, dead_letter_path), NULL,
     "memory buffers: directory of the dead-letter files (records whose retries are exhausted, without "
     "`<secondary>`); default `./data/dead-letter`. File buffers always use `<path>/dead-letter`"},
    {"dead_letter_label", CONF_STR, NULL, 0, offsetof(buf_conf, dead_letter_label), NULL,
     "weir: send dead letters (records whose retries are exhausted or that the output gave up on, after a "
     "`<secondary>` if any, and records the backend rejected one by one) to this label, e.g. `@ERROR` or `@DLQ`, "
     "each with a map at `dead_letter_key`: `error_type` (`rejected`, `retries_exhausted`, `unrecoverable`), "
     "`error_message`, `attempts`, `tag` (the original tag; the records keep it), `output_id`. The dead-letter file "
     "takes what the label refuses. See docs/buffer.md \"Dead letters to a label\""},
    {"dead_letter_key", CONF_STR, "dead_letter", 0, offsetof(buf_conf, dead_letter_key), NULL,
     "with `dead_letter_label`: the key or record accessor of that map (`$.error`: nested)"},
    {"compress", CONF_ENUM, "text", 0, offsetof(buf_conf, compress), "text|gzip",
     "`text`; `gzip` is accepted with a warning and chunks stay uncompressed (what is delivered is the same)"},
    {"queue_limit_length", CONF_INT, "-1", 0, offsetof(buf_conf, queue_limit_length), NULL,
     "Fluentd's v0.12 queue length (`buffer_queue_limit`): when set, `total_limit_size` becomes `chunk_limit_size` × "
     "this, as in Fluentd; `-1`: not set"},
    {"chunk_full_threshold", CONF_TIME, "0.95", 0, offsetof(buf_conf, chunk_full_threshold), NULL,
     "a number in (0, 1]: a chunk is enqueued once it holds this fraction of `chunk_limit_size` (or of "
     "`chunk_limit_records`), as in Fluentd"},
    {"disable_chunk_backup", CONF_BOOL, "false", 0, offsetof(buf_conf, disable_chunk_backup), NULL,
     "accepted; `true` has no effect and a warning: weir never throws records away, a chunk it gives up on goes "
     "to `<secondary>` or the dead-letter file"},
    {"path_suffix", CONF_STR, NULL, 0, offsetof(buf_conf, path_suffix), NULL,
     "accepted with a warning, no effect: weir names its chunk files (`<id>.chunk`) itself"},
    {"file_permission", CONF_STR, NULL, 0, offsetof(buf_conf, file_permission), NULL,
     "octal mode of chunk and dead-letter files (before the umask); default `0644`"},
    {"dir_permission", CONF_STR, NULL, 0, offsetof(buf_conf, dir_permission), NULL,
     "octal mode of the directories a file buffer creates (before the umask); default `0755`"},
    {"decompression_size_limit", CONF_SIZE, NULL, 0, offsetof(buf_conf, decompression_size_limit), NULL,
     "accepted with a warning, no effect: weir does not compress chunks, so nothing is decompressed"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* also used for the dead-letter and corrupt/ directories */
int buf_mkdir_p(const char *path, unsigned mode)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(tmp, (mode_t)mode) && errno != EEXIST)
            return -1;
        *s = '/';
    }
    if (mkdir(tmp, (mode_t)mode) && errno != EEXIST)
        return -1;
    return 0;
}

static void warn_at(conf_node *n, const char *key, const char *msg)
{
    const conf_param *p = conf_get(n, key);
    conf_warn(n, p ? p->file : n->file, p ? p->line : n->line, "%s", msg);
}

buffer *buffer_create(const buf_sink *sink, conf_node *n, conf_errors *errs)
{
    buffer *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->sink = *sink;
    int rc = conf_bind(n, buffer_conf_spec, &b->c, errs);
    /* chunk keys: <buffer tag,time> */
    if (n->arg) {
        char *keys = strdup(n->arg), *save = NULL;
        for (char *k = strtok_r(keys, ", \t", &save); k; k = strtok_r(NULL, ", \t", &save)) {
            if (!strcmp(k, "tag"))
                b->key_tag = 1;
            else if (!strcmp(k, "time"))
                b->key_time = 1;
            else if (k[0] == '$' ? strchr(k, '[') != NULL : strspn(k, "-_.@abcdefghijklmnopqrstuvwxyz"
                                                                           "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") !=
                                                                    strlen(k)) {
                /* output.rb's checks of chunk_keys */
                conf_errors_add(errs, n->file, n->line, "in chunk_keys: %s '%s'",
                                k[0] == '$' ? "bracket notation is not allowed" : "invalid char in chunk key", k);
                rc = -1;
            } else {
                /* a record key: Fluentd splits chunks by its value; weir does not (docs/buffer.md) */
                conf_warn(n, n->file, n->line,
                          "chunk key '%s': weir does not split chunks by record values; outputs take ${%s} from each "
                          "record (elasticsearch, loki), so records go where Fluentd sends them, but one "
                          "flush may carry several values",
                          k, k[0] == '$' ? k : k);
            }
        }
        free(keys);
    }
    conf_param *p;
    if (b->c.dead_letter_label && (p = conf_get(n, "dead_letter_label"))) {
        b->dl_label_file = strdup(p->file);
        b->dl_label_line = p->line;
    }
    if (b->c.type == BUF_FILE && !b->c.path) {
        conf_errors_add(errs, n->file, n->line, "missing required parameter 'path' in <buffer> of @type file (without it, as in Fluentd: "
                        "<system> root_dir with the output's @id, or out_file's path)");
        rc = -1;
    }
    if (b->key_time && b->c.timekey < 1) {
        p = conf_get(n, "timekey");
        conf_errors_add(errs, p ? p->file : n->file, p ? p->line : n->line, "timekey must be at least 1s");
        rc = -1;
    }
    if (b->c.flush_thread_count < 1 || b->c.flush_thread_count > 64) {
        p = conf_get(n, "flush_thread_count");
        conf_errors_add(errs, p->file, p->line, "flush_thread_count must be between 1 and 64");
        rc = -1;
    }
    if (b->c.chunk_limit_size < 1024) {
        p = conf_get(n, "chunk_limit_size");
        conf_errors_add(errs, p->file, p->line, "chunk_limit_size must be at least 1k");
        rc = -1;
    }
    if (!b->c.total_limit_size)
        b->c.total_limit_size = b->c.type == BUF_FILE ? (64ull << 30) : (512ull << 20);
    /* buffer.rb: "if user specify this value and (chunk_size * queue_length) is smaller than total_size, then
     * total_size is automatically configured to that value" (it is set whatever it was) */
    if (b->c.queue_limit_length >= 0) {
        p = conf_get(n, "queue_limit_length");
        if (b->c.queue_limit_length < 1 || (uint64_t)b->c.queue_limit_length > UINT64_MAX / b->c.chunk_limit_size) {
            conf_errors_add(errs, p->file, p->line, "queue_limit_length must be at least 1");
            rc = -1;
        } else {
            b->c.total_limit_size = b->c.chunk_limit_size * (uint64_t)b->c.queue_limit_length;
        }
    }
    if (!(b->c.chunk_full_threshold > 0 && b->c.chunk_full_threshold <= 1)) {
        p = conf_get(n, "chunk_full_threshold");
        conf_errors_add(errs, p->file, p->line, "chunk_full_threshold must be greater than 0 and at most 1");
        rc = -1;
    }
    b->file_mode = 0644;
    b->dir_mode = 0755;
    const struct {
        const char *name, *text;
        unsigned *mode;
    } modes[] = {{"file_permission", b->c.file_permission, &b->file_mode},
                 {"dir_permission", b->c.dir_permission, &b->dir_mode}};
    for (size_t i = 0; i < 2; i++) {
        char *end;
        if (!modes[i].text)
            continue;
        unsigned long m = strtoul(modes[i].text, &end, 8);
        if (!*modes[i].text || *end || m > 07777) {
            p = conf_get(n, modes[i].name);
            conf_errors_add(errs, p->file, p->line, "invalid %s '%s' (an octal mode such as 0640)", modes[i].name,
                            modes[i].text);
            rc = -1;
        } else {
            *modes[i].mode = (unsigned)m;
        }
    }
    /* accepted, but meaningless in weir: one warning each (docs/buffer.md) */
    if (b->c.compress == 1)
        warn_at(n, "compress",
                  "compress gzip: weir keeps chunks uncompressed (no effect on what is delivered)");
    if (b->c.disable_chunk_backup)
        warn_at(n, "disable_chunk_backup",
                  "disable_chunk_backup has no effect: weir never throws records away (a chunk it gives up on goes to "
                  "<secondary> or the dead-letter file)");
    if (b->c.path_suffix)
        warn_at(n, "path_suffix",
                  "path_suffix has no effect: weir names its chunk files itself");
    if (conf_get(n, "decompression_size_limit"))
        warn_at(n, "decompression_size_limit",
                  "decompression_size_limit has no effect: weir does not compress chunks");
    if (b->c.total_limit_size < b->c.chunk_limit_size) {
        p = conf_get(n, "total_limit_size");
        conf_errors_add(errs, p ? p->file : n->file, p ? p->line : n->line,
                        "total_limit_size is smaller than chunk_limit_size");
        rc = -1;
    }
    if (b->c.flush_at_shutdown) {
        int v;
        if (conf_parse_bool(b->c.flush_at_shutdown, &v)) {
            p = conf_get(n, "flush_at_shutdown");
            conf_errors_add(errs, p->file, p->line, "invalid boolean value '%s' for parameter 'flush_at_shutdown'",
                            b->c.flush_at_shutdown);
            rc = -1;
        }
        b->flush_at_shutdown = v;
    } else {
        /* Fluentd: memory buffers flush at shutdown (else data is lost), file buffers keep their chunks */
        b->flush_at_shutdown = b->c.type == BUF_MEMORY;
    }
    if (b->c.flush_mode == FLUSH_DEFAULT)
        b->c.flush_mode = b->key_time ? FLUSH_LAZY : FLUSH_INTERVAL;
    if (b->c.retry_exponential_backoff_base < 1)
        b->c.retry_exponential_backoff_base = 1;
    if (b->c.type == BUF_FILE && b->c.path) {
        char d[4200];
        snprintf(d, sizeof d, "%s/dead-letter", b->c.path);
        b->dlq_dir = strdup(d);
    } else {
        b->dlq_dir = strdup(b->c.dead_letter_path ? b->c.dead_letter_path : "./data/dead-letter");
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->dlq_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv_flush, &ca);
    pthread_cond_init(&b->cv_space, &ca);
    pthread_condattr_destroy(&ca);
    if (rc) {
        buffer_destroy(b, 0);
        return NULL;
    }
    return b;
}

/* ---- the queue ----------------------------------------------------------------- */

/* Under mu: staged -> queued. */
void buf_enqueue(buffer *b, chunk *ch)
{
    chunk **pp = &b->staged;
    while (*pp && *pp != ch)
        pp = &(*pp)->next;
    if (*pp)
        *pp = ch->next;
    b->nstaged--;
    ch->next = NULL;
    ch->state = C_QUEUED;
    chunk_seal(ch);
    buf_queue_tail(b, ch);
    pthread_cond_signal(&b->cv_flush);
}

void buf_queue_tail(buffer *b, chunk *ch)
{
    QUEUE_PUSH(b->qhead, b->qtail, ch);
    b->nqueued++;
}

/* Under mu: remove a queued/flushing chunk from the queue and delete it. */
void buf_chunk_delete(buffer *b, chunk *ch)
{
    chunk **pp = &b->qhead, *prev = NULL;
    while (*pp && *pp != ch) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = ch->next;
        if (b->qtail == ch)
            b->qtail = prev;
        b->nqueued--;
    }
    if (ch->path)
        chunk_discard_file(b, ch->path, ch->id);
    b->total_bytes -= ch->bytes;
    pthread_cond_broadcast(&b->cv_space);
    chunk_free(ch);
}

/* ---- appending ------------------------------------------------------------------- */

static int is_disk_full(int e) { return e == ENOSPC || e == EDQUOT; }

/* Under mu: wait until space is freed (cv_space), `ms` milliseconds at most. */
static void wait_space_ms(buffer *b, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&b->cv_space, &b->mu, &ts);
}

static void wait_space(buffer *b) { wait_space_ms(b, 1000); }

/* Under mu: every staged chunk with records to the queue (one being appended
 * to when its append ends) */
static void enqueue_staged(buffer *b)
{
    for (chunk *ch = b->staged, *nx; ch; ch = nx) {
        nx = ch->next;
        if (ch->appending)
            ch->enqueue_after = 1;
        else if (ch->records)
            buf_enqueue(b, ch);
    }
}

/* Under mu: a batch refused for want of space (throw_exception): counted, logged every 5 s at most. -1. */
static int refuse_full(buffer *b)
{
    atomic_fetch_add(&b->rejected_batches, 1);
    static __thread double last_log;
    if (clock_every(&last_log, 5)) {
        wlog_warn("buffer", "%s: buffer space has too many data (%llu of %llu bytes); refusing records, the "
                  "sender will retry",
                  b->sink.id, (unsigned long long)b->total_bytes, (unsigned long long)b->c.total_limit_size);
    }
    return -1;
}

/* Under mu: the oldest queued chunk that is not being flushed is deleted (drop_oldest_chunk). 1 when one was. */
static int drop_oldest(buffer *b, const char *why)
{
    chunk *victim = b->qhead;
    while (victim && victim->state == C_FLUSHING)
        victim = victim->next;
    if (!victim)
        return 0;
    wlog_warn("buffer", "%s: %s: dropping the oldest chunk with %u records", b->sink.id, why, victim->records);
    atomic_fetch_add(&b->dropped_chunks, 1);
    atomic_fetch_add(&b->dropped_records, victim->records);
    buf_chunk_delete(b, victim);
    return 1;
}

/* Under mu, memory buffers: reserve `need` bytes against the process's
 * memory budget (lib/membudget.h). At the budget the buffer is as good as
 * full: overflow_action applies (block and streamed batches wait, reason
 * buffer_full; drop_oldest_chunk drops a queued chunk of this buffer;
 * throw_exception refuses). An empty buffer always takes the run (forced):
 * whatever else holds the budget, this output makes progress. 0 or -1. */
static int reserve_budget(buffer *b, uint64_t need, int stream)
{
    double wait_from = 0;
    int rc = 0;
    while (mb_try(need) != 0) {
        if (!b->total_bytes) {
            mb_force(need);
            break;
        }
        if (b->c.overflow_action == OVERFLOW_BLOCK || stream) {
            if (b->abort_waits) {
                rc = -1;
                break;
            }
            if (!wait_from) {
                wait_from = clock_mono();
                mb_wait_start(MB_WAIT_BUFFER_FULL);
            }
            if (!b->nqueued && !b->nflushing)
                enqueue_staged(b); /* what is staged goes now: only flushing frees this buffer's share */
            /* memory frees elsewhere too (other outputs, senders): look again soon */
            wait_space_ms(b, 10);
            continue;
        }
        if (b->c.overflow_action == OVERFLOW_DROP_OLDEST && drop_oldest(b, "memory budget reached"))
            continue;
        atomic_fetch_add(&b->rejected_batches, 1);
        static __thread double last_log;
        if (clock_every(&last_log, 5)) {
            wlog_warn("buffer", "%s: the memory budget is reached (%llu of %llu bytes in use); refusing records, the "
                      "sender will retry",
                      b->sink.id, (unsigned long long)mb_in_use(), (unsigned long long)mb_limit());
        }
        rc = -1;
        break;
    }
    if (wait_from)
        mb_wait_add(MB_WAIT_BUFFER_FULL, clock_mono() - wait_from);
    return rc;
}

/* Under mu: wait (or refuse) until `need` bytes fit. 0 or -1 (refused).
 * stream: the batch this run is part of is larger than total_limit_size, so
 * refusing it would only have the sender retry it forever: its runs wait for
 * space whatever overflow_action says. A single entry larger than the whole
 * limit waits for an empty buffer and goes in alone. A memory buffer also
 * reserves the bytes against the memory budget (reserve_budget), released
 * when the chunk is freed (chunk_free). */
static int reserve(buffer *b, uint64_t need, int stream)
{
    for (;;) {
        while (b->total_bytes + need > b->c.total_limit_size) {
            if (need > b->c.total_limit_size && !b->total_bytes)
                break;
            if (b->c.overflow_action == OVERFLOW_BLOCK || stream) {
                if (b->abort_waits)
                    return -1;
                if (!b->nqueued && !b->nflushing)
                    enqueue_staged(b); /* nothing on its way out: what is staged goes now, or nothing frees */
                wait_space(b);
                continue;
            }
            if (b->c.overflow_action == OVERFLOW_DROP_OLDEST) {
                char why[96];
                snprintf(why, sizeof why, "buffer full (total_limit_size %llu)",
                         (unsigned long long)b->c.total_limit_size);
                if (drop_oldest(b, why))
                    continue;
            }
            return refuse_full(b);
        }
        if (b->c.type != BUF_MEMORY)
            break;
        if (reserve_budget(b, need, stream) != 0)
            return -1;
        if (b->total_bytes + need <= b->c.total_limit_size || (need > b->c.total_limit_size && !b->total_bytes))
            break;
        /* the buffer grew while this writer waited for the budget: it must fit again */
        mb_release(need);
    }
    b->total_bytes += need;
    return 0;
}

/* Under mu: find or create the staged chunk for a key that can take `need` more bytes. */
static chunk *staged_for(buffer *b, const char *tag, size_t tag_len, int64_t timekey, uint64_t need, uint32_t records)
{
    const char *ktag = b->key_tag ? tag : NULL;
    size_t klen = b->key_tag ? tag_len : 0;
    for (chunk *ch = b->staged; ch; ch = ch->next) {
        if (ch->timekey != timekey)
            continue;
        if (ktag && (ch->tag_len != klen || memcmp(ch->tag, ktag, klen) != 0))
            continue;
        int full = (ch->records && ch->bytes + need > b->c.chunk_limit_size) ||
                   (b->c.chunk_limit_records > 0 && ch->records &&
                    ch->records + records > (uint64_t)b->c.chunk_limit_records);
        if (!full)
            return ch;
        buf_enqueue(b, ch);
        break;
    }
    chunk *ch = chunk_new(b, ktag, klen, timekey);
    if (!ch)
        return NULL;
    ch->next = b->staged;
    b->staged = ch;
    b->nstaged++;
    return ch;
}

/* Store one run of entries (one tag, one time slice). 0 or -1. */
static int append_run(buffer *b, const char *tag, size_t tag_len, int64_t timekey, const uint8_t *data, size_t len,
                      uint32_t records, int stream)
{
    uint64_t need = CHUNK_BLK_HDR + tag_len + len;
    pthread_mutex_lock(&b->mu);
    if (reserve(b, need, stream) != 0) {
        pthread_mutex_unlock(&b->mu);
        return -1;
    }
    for (;;) {
        chunk *ch = staged_for(b, tag, tag_len, timekey, need, records);
        if (!ch) {
            int e = errno;
            if (is_disk_full(e) && !b->abort_waits) {
                chunk_pool_drop(b); /* the kept files' space first */
                wait_space(b);
                continue;
            }
            b->total_bytes -= need;
            if (b->c.type == BUF_MEMORY)
                mb_release(need);
            pthread_mutex_unlock(&b->mu);
            return -1;
        }
        ch->appending = 1;
        pthread_mutex_unlock(&b->mu);
        int rc = chunk_write_block(b, ch, tag, tag_len, data, len, records);
        /* fsync while the chunk is still pinned (appending): once released,
         * a flush thread may enqueue it and close its descriptor */
        if (rc == 0 && b->c.fsync && ch->fd >= 0 && fdatasync(ch->fd) != 0) {
            rc = -errno;
            if (ftruncate(ch->fd, (off_t)ch->file_size - (off_t)(CHUNK_BLK_HDR + tag_len + len)) == 0) {
                ch->file_size -= CHUNK_BLK_HDR + tag_len + len;
                ch->reused = 0; /* nothing follows the last block now */
            }
        }
        pthread_mutex_lock(&b->mu);
        ch->appending = 0;
        if (rc == 0) {
            ch->records += records;
            ch->blocks++;
            ch->bytes += need;
            if (b->c.type == BUF_MEMORY) {
                /* chunk_free releases it; what the blocks' buffer grew beyond them counts too (forced: it is
                 * allocated) */
                uint64_t held = ch->mb + need, want = ch->mem.cap > ch->bytes ? ch->mem.cap : ch->bytes;
                if (want > held)
                    mb_force(want - held);
                else if (held > want)
                    mb_release(held - want); /* the run fit in what the buffer had grown already */
                ch->mb = want;
            }
            /* Fluentd's chunk_full_threshold: full at that fraction of either limit */
            double th = b->c.chunk_full_threshold;
            int limit = (double)ch->bytes >= (double)b->c.chunk_limit_size * th ||
                        (b->c.chunk_limit_records > 0 && (double)ch->records >= (double)b->c.chunk_limit_records * th);
            if (limit || ch->enqueue_after || b->c.flush_mode == FLUSH_IMMEDIATE) {
                ch->enqueue_after = 0;
                buf_enqueue(b, ch);
            }
            pthread_mutex_unlock(&b->mu);
            atomic_fetch_add(&b->appended_records, records);
            return 0;
        }
        if (ch->enqueue_after) {
            ch->enqueue_after = 0;
            buf_enqueue(b, ch);
        }
        if (is_disk_full(-rc) && !b->abort_waits) {
            /* full disk: back-pressure, retry every second */
            static __thread double last_log;
            if (clock_every(&last_log, 10)) {
                wlog_error("buffer", "%s: disk full writing %s: %s; holding acks and retrying every second",
                           b->sink.id, ch->path ? ch->path : "memory", strerror(-rc));
            }
            chunk_pool_drop(b);
            wait_space(b);
            continue;
        }
        b->total_bytes -= need;
        if (b->c.type == BUF_MEMORY)
            mb_release(need);
        pthread_mutex_unlock(&b->mu);
        wlog_error("buffer", "%s: cannot append %u records to %s: %s; not acknowledging them", b->sink.id, records,
                   ch->path ? ch->path : "a memory chunk", strerror(-rc));
        return -1;
    }
}

static int64_t slice_of(buffer *b, uint32_t sec)
{
    int64_t tk = (int64_t)b->c.timekey;
    int64_t t = (int64_t)sec;
    if (!b->c.timekey_use_utc) {
        /* slices follow local midnight, like Fluentd without timekey_use_utc */
        time_t tt = (time_t)sec;
        struct tm tm;
        localtime_r(&tt, &tm);
        t += tm.tm_gmtoff;
        return (t - t % tk) - tm.tm_gmtoff;
    }
    return t - t % tk;
}

/* Entries of one tag and one time slice, cut into runs that each fit a
 * chunk (chunk_limit_size, chunk_limit_records; an entry larger than a chunk
 * is a run alone): a request or a Kafka burst of any size goes through the
 * buffer chunk by chunk, as Fluentd splits a large write. The entries are
 * walked only when the whole does not fit one chunk. */
static int append_fit(buffer *b, const char *tag, size_t tag_len, int64_t timekey, const uint8_t *data, size_t len,
                      uint32_t records, int stream)
{
    uint64_t hdr = CHUNK_BLK_HDR + tag_len;
    uint64_t room = b->c.chunk_limit_size > hdr ? b->c.chunk_limit_size - hdr : 1;
    uint64_t maxrec = b->c.chunk_limit_records > 0 ? (uint64_t)b->c.chunk_limit_records : UINT64_MAX;
    if (len <= room && records <= maxrec)
        return append_run(b, tag, tag_len, timekey, data, len, records, stream);
    const uint8_t *p = data, *end = data + len, *run = data;
    uint32_t n = 0;
    entry e;
    while (p < end) {
        const uint8_t *at = p;
        if (batch_next(&p, end, &e) != 1)
            break; /* the rest goes with the last run, as it came */
        if (n && ((uint64_t)(p - run) > room || n + 1 > maxrec)) {
            if (append_run(b, tag, tag_len, timekey, run, (size_t)(at - run), n, stream))
                return -1;
            run = at;
            n = 0;
        }
        n++;
    }
    return run < end ? append_run(b, tag, tag_len, timekey, run, (size_t)(end - run), n, stream) : 0;
}

int buffer_append(buffer *b, const batch *bt)
{
    int rc = 0;
    /* a batch larger than the whole buffer can never be taken at once: it streams through (see reserve); one
     * that fits the limit but not the free space is refused whole under throw_exception, before any of it is
     * stored, so the sender's retry does not duplicate a part */
    uint64_t total = 0;
    for (uint32_t s = 0; s < bt->nsegs; s++)
        total += CHUNK_BLK_HDR + bt->segs[s].tag_len + bt->segs[s].len;
    int stream = total > b->c.total_limit_size;
    if (stream) {
        static __thread double last_log;
        if (clock_every(&last_log, 10)) {
            wlog_info("buffer", "%s: a batch of %llu bytes is larger than total_limit_size (%llu): written chunk by "
                      "chunk as space frees",
                      b->sink.id, (unsigned long long)total, (unsigned long long)b->c.total_limit_size);
        }
        atomic_fetch_add(&b->streamed_batches, 1);
    } else if (b->c.overflow_action == OVERFLOW_THROW) {
        pthread_mutex_lock(&b->mu);
        if (b->total_bytes + total > b->c.total_limit_size)
            rc = refuse_full(b);
        else if (b->c.type == BUF_MEMORY && b->total_bytes && mb_limit() && mb_in_use() + total > mb_limit())
            rc = reserve_budget(b, total, 0) == 0 ? (mb_release(total), 0) : -1; /* the same, at the budget */
        pthread_mutex_unlock(&b->mu);
        if (rc)
            return -1;
    }
    for (uint32_t s = 0; s < bt->nsegs && rc == 0; s++) {
        const batch_seg *sg = &bt->segs[s];
        const uint8_t *data = bt->data + sg->off;
        if (!b->key_time) {
            rc = append_fit(b, sg->tag, sg->tag_len, -1, data, sg->len, sg->nrecords, stream);
            continue;
        }
        /* split the segment into runs of one time slice */
        const uint8_t *p = data, *end = data + sg->len, *run = data;
        int64_t cur = INT64_MIN;
        uint32_t n = 0;
        entry e;
        while (rc == 0 && p < end) {
            const uint8_t *at = p;
            if (batch_next(&p, end, &e) != 1)
                break;
            int64_t sl = slice_of(b, e.sec);
            if (sl != cur && n) {
                rc = append_fit(b, sg->tag, sg->tag_len, cur, run, (size_t)(at - run), n, stream);
                run = at;
                n = 0;
            }
            cur = sl;
            n++;
        }
        if (rc == 0 && n)
            rc = append_fit(b, sg->tag, sg->tag_len, cur, run, (size_t)(end - run), n, stream);
    }
    return rc;
}

/* ---- start / stop --------------------------------------------------------------------- */

int buffer_start(buffer *b)
{
    if (b->c.type == BUF_FILE) {
        if (buf_mkdir_p(b->c.path, b->dir_mode) != 0) {
            wlog_error("buffer", "%s: cannot create buffer path %s: %s", b->sink.id, b->c.path, strerror(errno));
            return -1;
        }
        if (buf_recover(b) != 0)
            return -1;
        /* a kept read buffer may be up to twice chunk_limit_size (recovered chunks of a larger limit are not kept) */
        b->rpool = rbuf_pool_new((int)b->c.flush_thread_count, (size_t)b->c.chunk_limit_size * 2 + 65536);
    }
    b->nflushers = (int)b->c.flush_thread_count;
    b->flushers = calloc((size_t)b->nflushers, sizeof *b->flushers);
    for (int i = 0; i < b->nflushers; i++)
        if (pthread_create(&b->flushers[i], NULL, buf_flush_main, b) != 0) {
            b->nflushers = i;
            return -1;
        }
    return 0;
}

void buffer_snapshot(buffer *b, buffer_snap *s)
{
    memset(s, 0, sizeof *s);
    double now = clock_wall(), oldest = now;
    pthread_mutex_lock(&b->mu);
    s->bytes = b->total_bytes;
    s->staged = b->nstaged;
    s->queued = b->nqueued;
    s->flushing = b->nflushing;
    s->retrying = b->retrying;
    s->retries = b->retries;
    s->next_retry_in = b->retrying ? b->next_retry - clock_mono() : 0;
    for (chunk *ch = b->staged; ch; ch = ch->next)
        if (ch->created < oldest)
            oldest = ch->created;
    for (chunk *ch = b->qhead; ch; ch = ch->next)
        if (ch->created < oldest)
            oldest = ch->created;
    pthread_mutex_unlock(&b->mu);
    s->oldest_age = now - oldest;
    s->limit = b->c.total_limit_size;
}

void buffer_abort_waits(buffer *b)
{
    pthread_mutex_lock(&b->mu);
    b->abort_waits = 1;
    pthread_cond_broadcast(&b->cv_space);
    pthread_mutex_unlock(&b->mu);
}

void buffer_destroy(buffer *b, double deadline)
{
    if (!b)
        return;
    if (b->flushers) {
        pthread_mutex_lock(&b->mu);
        b->stopping = 1;
        b->abort_waits = 1;
        b->drain = b->flush_at_shutdown;
        pthread_cond_broadcast(&b->cv_flush);
        pthread_cond_broadcast(&b->cv_space);
        /* wait for the drain, bounded by the deadline */
        while (b->drain && (b->nqueued || b->nstaged) && clock_mono() < deadline) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_nsec += 50 * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&b->cv_space, &b->mu, &ts);
        }
        b->drain = 0;
        pthread_cond_broadcast(&b->cv_flush);
        pthread_mutex_unlock(&b->mu);
        if (b->sink.abort)
            b->sink.abort(b->sink.arg);
        for (int i = 0; i < b->nflushers; i++)
            pthread_join(b->flushers[i], NULL);
        free(b->flushers);
        b->flushers = NULL;
    }
    uint64_t left = 0, leftc = 0;
    for (chunk *ch = b->staged, *nx; ch; ch = nx) {
        nx = ch->next;
        left += ch->records;
        leftc++;
        chunk_free(ch);
    }
    for (chunk *ch = b->qhead, *nx; ch; ch = nx) {
        nx = ch->next;
        left += ch->records;
        leftc++;
        chunk_free(ch);
    }
    if (left) {
        if (b->c.type == BUF_FILE)
            wlog_info("buffer", "%s: %llu records in %llu chunks kept in %s for the next start", b->sink.id,
                      (unsigned long long)left, (unsigned long long)leftc, b->c.path);
        else
            wlog_error("buffer", "%s: %llu records in %llu memory chunks could not be flushed before shutdown and are "
                       "lost (use a file buffer to keep them)",
                       b->sink.id, (unsigned long long)left, (unsigned long long)leftc);
    }
    pthread_mutex_lock(&b->mu);
    chunk_pool_drop(b);
    pthread_mutex_unlock(&b->mu);
    rbuf_pool_unref(b->rpool); /* freed now, or by the last batch that holds one of its buffers */
    b->rpool = NULL;
    conf_unbind(buffer_conf_spec, &b->c);
    free(b->dlq_dir);
    free(b->dl_label_file);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->dlq_mu);
    pthread_cond_destroy(&b->cv_flush);
    pthread_cond_destroy(&b->cv_space);
    free(b);
}
