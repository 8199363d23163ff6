/*
 * buffer/buffer.c: chunks, queue, flush threads, retries, recovery.
 * Read docs/buffer.md first: it has the lifecycle and the file format.
 */
#include "buffer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/crc32c.h"
#include "lib/fdio.h"
#include "lib/json.h"
#include "lib/log.h"
#include "lib/mp.h"

#define CHUNK_MAGIC "WEIRCHNK"
#define CHUNK_VERSION 1
#define HDR_SIZE 64
#define BLK_HDR 16

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
};

static uint64_t get64(const uint8_t *p);
static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}
static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- configuration ------------------------------------------------------------ */

static const conf_spec buffer_spec[] = {
    {"@type", CONF_ENUM, "memory", 0, offsetof(buf_conf, type), "memory|file"},
    {"path", CONF_STR, NULL, 0, offsetof(buf_conf, path), NULL},
    {"timekey", CONF_TIME, "86400", 0, offsetof(buf_conf, timekey), NULL},
    {"timekey_wait", CONF_TIME, "600", 0, offsetof(buf_conf, timekey_wait), NULL},
    {"timekey_use_utc", CONF_BOOL, "false", 0, offsetof(buf_conf, timekey_use_utc), NULL},
    {"timekey_zone", CONF_STR, NULL, 0, offsetof(buf_conf, timekey_zone), NULL},
    {"chunk_limit_size", CONF_SIZE, "8m", 0, offsetof(buf_conf, chunk_limit_size), NULL},
    {"chunk_limit_records", CONF_INT, "0", 0, offsetof(buf_conf, chunk_limit_records), NULL},
    {"total_limit_size", CONF_SIZE, NULL, 0, offsetof(buf_conf, total_limit_size), NULL},
    {"queued_chunks_limit_size", CONF_INT, "0", 0, offsetof(buf_conf, queued_chunks_limit_size), NULL},
    {"flush_mode", CONF_ENUM, "default", 0, offsetof(buf_conf, flush_mode), "default|lazy|interval|immediate"},
    {"flush_interval", CONF_TIME, "60", 0, offsetof(buf_conf, flush_interval), NULL},
    {"flush_thread_count", CONF_INT, "1", 0, offsetof(buf_conf, flush_thread_count), NULL},
    {"flush_thread_interval", CONF_TIME, "1", 0, offsetof(buf_conf, flush_thread_interval), NULL},
    {"flush_thread_burst_interval", CONF_TIME, "1", 0, offsetof(buf_conf, flush_thread_burst_interval), NULL},
    {"flush_at_shutdown", CONF_STR, NULL, 0, offsetof(buf_conf, flush_at_shutdown), NULL},
    {"overflow_action", CONF_ENUM, "throw_exception", 0, offsetof(buf_conf, overflow_action),
     "throw_exception|block|drop_oldest_chunk"},
    {"retry_type", CONF_ENUM, "exponential_backoff", 0, offsetof(buf_conf, retry_type), "exponential_backoff|periodic"},
    {"retry_wait", CONF_TIME, "1", 0, offsetof(buf_conf, retry_wait), NULL},
    {"retry_exponential_backoff_base", CONF_TIME, "2", 0, offsetof(buf_conf, retry_exponential_backoff_base), NULL},
    {"retry_max_interval", CONF_TIME, "0", 0, offsetof(buf_conf, retry_max_interval), NULL},
    {"retry_randomize", CONF_BOOL, "true", 0, offsetof(buf_conf, retry_randomize), NULL},
    {"retry_timeout", CONF_TIME, "72h", 0, offsetof(buf_conf, retry_timeout), NULL},
    {"retry_max_times", CONF_INT, "-1", 0, offsetof(buf_conf, retry_max_times), NULL},
    {"retry_forever", CONF_BOOL, "false", 0, offsetof(buf_conf, retry_forever), NULL},
    {"retry_secondary_threshold", CONF_TIME, "0.8", 0, offsetof(buf_conf, retry_secondary_threshold), NULL},
    {"delayed_commit_timeout", CONF_TIME, "60", 0, offsetof(buf_conf, delayed_commit_timeout), NULL},
    {"fsync", CONF_BOOL, "false", 0, offsetof(buf_conf, fsync), NULL},
    {"dead_letter_path", CONF_STR, NULL, 0, offsetof(buf_conf, dead_letter_path), NULL},
    {"compress", CONF_ENUM, "text", 0, offsetof(buf_conf, compress), "text"},
    {NULL, 0, NULL, 0, 0, NULL},
};

static int mkdir_p(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST)
            return -1;
        *s = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST)
        return -1;
    return 0;
}

buffer *buffer_create(const buf_sink *sink, conf_node *n, conf_errors *errs)
{
    buffer *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->sink = *sink;
    int rc = conf_bind(n, buffer_spec, &b->c, errs);
    /* chunk keys: <buffer tag,time> */
    if (n->arg) {
        char *keys = strdup(n->arg), *save = NULL;
        for (char *k = strtok_r(keys, ", \t", &save); k; k = strtok_r(NULL, ", \t", &save)) {
            if (!strcmp(k, "tag"))
                b->key_tag = 1;
            else if (!strcmp(k, "time"))
                b->key_time = 1;
            else {
                conf_errors_add(errs, n->file, n->line,
                                "chunk key '%s' is not supported yet (supported: tag, time)", k);
                rc = -1;
            }
        }
        free(keys);
    }
    conf_param *p;
    if (b->c.type == BUF_FILE && !b->c.path) {
        conf_errors_add(errs, n->file, n->line, "missing required parameter 'path' in <buffer> of @type file");
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

/* ---- chunks --------------------------------------------------------------------- */

static uint64_t new_id(buffer *b)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    if (us <= b->next_id)
        us = b->next_id + 1;
    b->next_id = us;
    return us;
}

static void chunk_free(chunk *ch)
{
    if (ch->fd >= 0)
        close(ch->fd);
    if (ch->loaded)
        batch_unref(ch->loaded);
    wbuf_free(&ch->mem);
    free(ch->path);
    free(ch->tag);
    free(ch);
}

/* The header CRC skips bytes 32..39 (record and block counts), which are
 * rewritten when the chunk is enqueued and are informative only. */
static uint32_t header_crc(const uint8_t *h, const uint8_t *meta, size_t meta_len)
{
    uint32_t crc = crc32c(0, h, 32);
    crc = crc32c(crc, h + 40, 20);
    return crc32c(crc, meta, meta_len);
}

/* Build the 64-byte header + metadata of a chunk. */
static size_t chunk_header(buffer *b, chunk *ch, uint8_t *out, size_t cap)
{
    wbuf meta = {0};
    mpw_map(&meta, 3);
    mpw_str(&meta, "tag", 3);
    if (ch->tag)
        mpw_str(&meta, ch->tag, ch->tag_len);
    else
        mpw_nil(&meta);
    mpw_str(&meta, "timekey", 7);
    mpw_int(&meta, ch->timekey);
    mpw_str(&meta, "output", 6);
    mpw_str(&meta, b->sink.id, strlen(b->sink.id));
    size_t n = HDR_SIZE + meta.len;
    if (n > cap) {
        wbuf_free(&meta);
        return 0;
    }
    memset(out, 0, HDR_SIZE);
    memcpy(out, CHUNK_MAGIC, 8);
    out[8] = CHUNK_VERSION;
    put32(out + 12, (uint32_t)meta.len);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    put64(out + 16, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
    put64(out + 24, (uint64_t)(ch->timekey < 0 ? 0 : ch->timekey));
    memcpy(out + HDR_SIZE, meta.data, meta.len);
    put32(out + 60, header_crc(out, meta.data, meta.len));
    wbuf_free(&meta);
    return n;
}

static chunk *chunk_new(buffer *b, const char *tag, size_t tag_len, int64_t timekey)
{
    chunk *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    ch->fd = -1;
    ch->id = new_id(b);
    ch->timekey = timekey;
    if (tag) {
        ch->tag = malloc(tag_len + 1);
        memcpy(ch->tag, tag, tag_len);
        ch->tag[tag_len] = 0;
        ch->tag_len = tag_len;
    }
    ch->staged_at = clock_mono();
    ch->created = clock_wall();
    if (b->c.type == BUF_FILE) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%016llx.chunk", b->c.path, (unsigned long long)ch->id);
        ch->path = strdup(path);
        ch->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        uint8_t hdr[2048];
        size_t hl = chunk_header(b, ch, hdr, sizeof hdr);
        if (ch->fd < 0 || !hl || fd_write_all(ch->fd, hdr, hl) != 0) {
            int e = errno;
            static __thread double last_log;
            double now = clock_mono();
            if (now - last_log > 10) {
                last_log = now;
                wlog_error("buffer", "%s: cannot create chunk %s: %s", b->sink.id, path, strerror(e));
            }
            if (ch->fd >= 0)
                unlink(path);
            chunk_free(ch);
            errno = e;
            return NULL;
        }
        ch->file_size = hl;
    }
    return ch;
}

/* Under mu: staged -> queued. */
static void enqueue(buffer *b, chunk *ch)
{
    chunk **pp = &b->staged;
    while (*pp && *pp != ch)
        pp = &(*pp)->next;
    if (*pp)
        *pp = ch->next;
    b->nstaged--;
    ch->next = NULL;
    ch->state = C_QUEUED;
    if (ch->fd >= 0) {
        /* the header counters are informative (recovery recounts); close the
         * fd so a large backlog does not hold a descriptor per chunk */
        uint8_t cnt[8];
        put32(cnt, ch->records);
        put32(cnt + 4, ch->blocks);
        ssize_t w = pwrite(ch->fd, cnt, 8, 32);
        (void)w;
        close(ch->fd);
        ch->fd = -1;
    }
    if (b->qtail)
        b->qtail->next = ch;
    else
        b->qhead = ch;
    b->qtail = ch;
    b->nqueued++;
    pthread_cond_signal(&b->cv_flush);
}

/* Under mu: remove a queued/flushing chunk from the queue and delete it. */
static void chunk_delete(buffer *b, chunk *ch)
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
    if (ch->path && unlink(ch->path) != 0 && errno != ENOENT)
        wlog_warn("buffer", "%s: cannot delete flushed chunk %s: %s", b->sink.id, ch->path, strerror(errno));
    b->total_bytes -= ch->bytes;
    pthread_cond_broadcast(&b->cv_space);
    chunk_free(ch);
}

static int is_disk_full(int e) { return e == ENOSPC || e == EDQUOT; }

/* Ingest thread, without mu: write one block. 0 or -errno (the chunk is
 * left exactly as before on failure). */
static int chunk_write_block(buffer *b, chunk *ch, const char *tag, size_t tag_len, const uint8_t *data, size_t len,
                             uint32_t records)
{
    uint8_t h[BLK_HDR];
    uint32_t crc = crc32c(0, tag, tag_len);
    crc = crc32c(crc, data, len);
    put32(h, (uint32_t)len);
    put32(h + 4, records);
    put32(h + 8, crc);
    h[12] = (uint8_t)tag_len;
    h[13] = (uint8_t)(tag_len >> 8);
    h[14] = h[15] = 0;
    if (b->c.type == BUF_MEMORY) {
        if (wbuf_add(&ch->mem, h, BLK_HDR) || wbuf_add(&ch->mem, tag, tag_len) || wbuf_add(&ch->mem, data, len))
            return -ENOMEM;
        return 0;
    }
    struct iovec iov[3] = {{h, BLK_HDR}, {(void *)(uintptr_t)tag, tag_len}, {(void *)(uintptr_t)data, len}};
    size_t total = BLK_HDR + tag_len + len, done = 0;
    int idx = 0;
    while (done < total) {
        ssize_t w = writev(ch->fd, iov + idx, 3 - idx);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            /* cut the partial block away: the chunk must stay whole */
            if (ftruncate(ch->fd, (off_t)ch->file_size) == 0)
                lseek(ch->fd, (off_t)ch->file_size, SEEK_SET);
            return -e;
        }
        done += (size_t)w;
        while (idx < 3 && (size_t)w >= iov[idx].iov_len) {
            w -= (ssize_t)iov[idx].iov_len;
            idx++;
        }
        if (idx < 3) {
            iov[idx].iov_base = (char *)iov[idx].iov_base + w;
            iov[idx].iov_len -= (size_t)w;
        }
    }
    ch->file_size += total;
    return 0;
}

/* Under mu: wait (or refuse) until `need` bytes fit. 0 or -1 (refused). */
static int reserve(buffer *b, uint64_t need)
{
    if (need > b->c.total_limit_size) {
        wlog_error("buffer", "%s: a batch of %llu bytes is larger than total_limit_size; refused", b->sink.id,
                   (unsigned long long)need);
        return -1;
    }
    while (b->total_bytes + need > b->c.total_limit_size) {
        if (b->c.overflow_action == OVERFLOW_BLOCK) {
            if (b->abort_waits)
                return -1;
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&b->cv_space, &b->mu, &ts);
            continue;
        }
        if (b->c.overflow_action == OVERFLOW_DROP_OLDEST) {
            chunk *victim = b->qhead;
            while (victim && victim->state == C_FLUSHING)
                victim = victim->next;
            if (victim) {
                wlog_warn("buffer", "%s: buffer full (total_limit_size %llu): dropping the oldest chunk with %u records",
                          b->sink.id, (unsigned long long)b->c.total_limit_size, victim->records);
                atomic_fetch_add(&b->dropped_chunks, 1);
                atomic_fetch_add(&b->dropped_records, victim->records);
                chunk_delete(b, victim);
                continue;
            }
        }
        atomic_fetch_add(&b->rejected_batches, 1);
        static __thread double last_log;
        double now = clock_mono();
        if (now - last_log > 5) {
            last_log = now;
            wlog_warn("buffer", "%s: buffer space has too many data (%llu of %llu bytes); refusing records, the "
                      "sender will retry",
                      b->sink.id, (unsigned long long)b->total_bytes, (unsigned long long)b->c.total_limit_size);
        }
        return -1;
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
        enqueue(b, ch);
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
                      uint32_t records)
{
    uint64_t need = BLK_HDR + tag_len + len;
    pthread_mutex_lock(&b->mu);
    if (reserve(b, need) != 0) {
        pthread_mutex_unlock(&b->mu);
        return -1;
    }
    for (;;) {
        chunk *ch = staged_for(b, tag, tag_len, timekey, need, records);
        if (!ch) {
            int e = errno;
            if (is_disk_full(e) && !b->abort_waits) {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&b->cv_space, &b->mu, &ts);
                continue;
            }
            b->total_bytes -= need;
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
            if (ftruncate(ch->fd, (off_t)ch->file_size - (off_t)(BLK_HDR + tag_len + len)) == 0) {
                ch->file_size -= BLK_HDR + tag_len + len;
                lseek(ch->fd, (off_t)ch->file_size, SEEK_SET);
            }
        }
        pthread_mutex_lock(&b->mu);
        ch->appending = 0;
        if (rc == 0) {
            ch->records += records;
            ch->blocks++;
            ch->bytes += need;
            int limit = ch->bytes >= b->c.chunk_limit_size ||
                        (b->c.chunk_limit_records > 0 && ch->records >= (uint64_t)b->c.chunk_limit_records);
            if (limit || ch->enqueue_after || b->c.flush_mode == FLUSH_IMMEDIATE) {
                ch->enqueue_after = 0;
                enqueue(b, ch);
            }
            pthread_mutex_unlock(&b->mu);
            atomic_fetch_add(&b->appended_records, records);
            return 0;
        }
        if (ch->enqueue_after) {
            ch->enqueue_after = 0;
            enqueue(b, ch);
        }
        if (is_disk_full(-rc) && !b->abort_waits) {
            /* full disk: back-pressure, retry every second */
            static __thread double last_log;
            double now = clock_mono();
            if (now - last_log > 10) {
                last_log = now;
                wlog_error("buffer", "%s: disk full writing %s: %s; holding acks and retrying every second",
                           b->sink.id, ch->path ? ch->path : "memory", strerror(-rc));
            }
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&b->cv_space, &b->mu, &ts);
            continue;
        }
        b->total_bytes -= need;
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

int buffer_append(buffer *b, const batch *bt)
{
    int rc = 0;
    for (uint32_t s = 0; s < bt->nsegs && rc == 0; s++) {
        const batch_seg *sg = &bt->segs[s];
        const uint8_t *data = bt->data + sg->off;
        if (!b->key_time) {
            rc = append_run(b, sg->tag, sg->tag_len, -1, data, sg->len, sg->nrecords);
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
                rc = append_run(b, sg->tag, sg->tag_len, cur, run, (size_t)(at - run), n);
                run = at;
                n = 0;
            }
            cur = sl;
            n++;
        }
        if (rc == 0 && n)
            rc = append_run(b, sg->tag, sg->tag_len, cur, run, (size_t)(end - run), n);
    }
    return rc;
}

/* ---- reading chunks back --------------------------------------------------------- */

typedef struct blkinfo {
    const uint8_t *tag;
    uint32_t tag_len, records;
    size_t off, len;
} blkinfo;

/*
 * Walk the blocks in buf[start..len). Fills *good with the end of the last
 * whole, checksum-valid block; returns the block count; *records their
 * records. If `infos` is given, records each block (realloc'd array).
 */
static uint32_t scan_blocks(const uint8_t *buf, size_t start, size_t len, size_t *good, uint32_t *records,
                            blkinfo **infos)
{
    size_t p = start;
    uint32_t n = 0, recs = 0;
    size_t cap = 0;
    while (len - p >= BLK_HDR) {
        uint32_t bl = get32(buf + p), br = get32(buf + p + 4), crc = get32(buf + p + 8);
        uint32_t tl = (uint32_t)buf[p + 12] | (uint32_t)buf[p + 13] << 8;
        if ((uint64_t)bl + tl > len - p - BLK_HDR)
            break;
        const uint8_t *tag = buf + p + BLK_HDR;
        uint32_t c = crc32c(0, tag, tl);
        c = crc32c(c, tag + tl, bl);
        if (c != crc || br == 0)
            break;
        if (infos) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                *infos = realloc(*infos, cap * sizeof **infos);
            }
            (*infos)[n] = (blkinfo){tag, tl, br, p + BLK_HDR + tl, bl};
        }
        n++;
        recs += br;
        p += BLK_HDR + tl + bl;
    }
    *good = p;
    *records = recs;
    return n;
}

/* Turn blocks into a (multi-segment) batch, compacting payloads in place.
 * Takes ownership of buf (freed on failure). */
static batch *blocks_to_batch(uint8_t *buf, size_t start, size_t len)
{
    blkinfo *bi = NULL;
    size_t good;
    uint32_t records;
    uint32_t n = scan_blocks(buf, start, len, &good, &records, &bi);
    batch *bt = NULL;
    char *tags = NULL;
    batch_seg *segs = NULL;
    if (!n)
        goto out;
    /* pass 1: segments (consecutive blocks of one tag merge), tags copied out
     * because compaction overwrites them */
    size_t tagbytes = 0;
    for (uint32_t i = 0; i < n; i++)
        tagbytes += bi[i].tag_len + 1;
    tags = malloc(tagbytes);
    segs = calloc(n, sizeof *segs);
    if (!tags || !segs)
        goto out;
    char *t = tags;
    uint32_t ns = 0;
    size_t w = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (ns && segs[ns - 1].tag_len == bi[i].tag_len && memcmp(segs[ns - 1].tag, bi[i].tag, bi[i].tag_len) == 0) {
            segs[ns - 1].len += bi[i].len;
            segs[ns - 1].nrecords += bi[i].records;
        } else {
            memcpy(t, bi[i].tag, bi[i].tag_len);
            t[bi[i].tag_len] = 0;
            segs[ns++] = (batch_seg){.tag = t, .tag_len = bi[i].tag_len, .nrecords = bi[i].records, .off = w,
                                     .len = bi[i].len};
            t += bi[i].tag_len + 1;
        }
        w += bi[i].len;
    }
    /* pass 2: payloads to the front, in order (each moves left or stays) */
    w = 0;
    for (uint32_t i = 0; i < n; i++) {
        memmove(buf + w, buf + bi[i].off, bi[i].len);
        w += bi[i].len;
    }
    bt = batch_new_segs(buf, w, segs, ns);
out:
    if (!bt)
        free(buf);
    free(tags);
    free(segs);
    free(bi);
    return bt;
}

/* Validate a chunk's header (magic, version, metadata length, CRC).
 * Returns NULL and sets *start to the offset of the first block, or says
 * what is wrong. */
static const char *chunk_header_check(const uint8_t *buf, size_t got, size_t *start)
{
    if (got < HDR_SIZE || memcmp(buf, CHUNK_MAGIC, 8) != 0)
        return "bad magic";
    if (buf[8] != CHUNK_VERSION)
        return "unknown version";
    size_t s = HDR_SIZE + (size_t)get32(buf + 12);
    if (s > got)
        return "metadata runs past the end";
    if (header_crc(buf, buf + HDR_SIZE, s - HDR_SIZE) != get32(buf + 60))
        return "header checksum mismatch";
    *start = s;
    return NULL;
}

batch *buffer_chunk_decode(const uint8_t *data, size_t len, char *err, size_t errlen)
{
    size_t start = 0;
    const char *bad = chunk_header_check(data, len, &start);
    if (bad) {
        snprintf(err, errlen, "%s", bad);
        return NULL;
    }
    uint8_t *copy = malloc(len + 1);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(copy, data, len);
    batch *bt = blocks_to_batch(copy, start, len);
    if (!bt)
        snprintf(err, errlen, "no readable block");
    return bt;
}

/* Read a chunk's records as a batch (flush thread, no lock held). */
static batch *chunk_load(buffer *b, chunk *ch, char *err, size_t errlen)
{
    if (b->c.type == BUF_MEMORY) {
        if (!ch->loaded) {
            size_t len;
            uint8_t *data = wbuf_steal(&ch->mem, &len);
            ch->loaded = blocks_to_batch(data, 0, len);
            if (!ch->loaded) {
                snprintf(err, errlen, "memory chunk holds no readable block");
                return NULL;
            }
        }
        batch_ref(ch->loaded);
        return ch->loaded;
    }
    int fd = open(ch->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", ch->path, strerror(errno));
        return NULL;
    }
    struct stat st;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) != 0 || (buf = malloc((size_t)st.st_size + 1)) == NULL) {
        snprintf(err, errlen, "cannot read %s: %s", ch->path, strerror(errno));
        close(fd);
        return NULL;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    size_t start = 0;
    const char *bad = chunk_header_check(buf, got, &start);
    if (bad) {
        snprintf(err, errlen, "%s: %s", ch->path, bad);
        free(buf);
        return NULL;
    }
    batch *bt = blocks_to_batch(buf, start, got);
    if (!bt)
        snprintf(err, errlen, "%s holds no readable block", ch->path);
    return bt;
}

/* ---- dead letters and secondary ----------------------------------------------------- */

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
    if (mkdir_p(b->dlq_dir) != 0)
        goto out;
    snprintf(path, sizeof path, "%s/%s.%s.jsonl", b->dlq_dir, b->sink.id, day);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
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

/* Records that cannot be delivered: secondary first, dead letter otherwise.
 * 0 when they are safe somewhere, -1 when not even the dead letter worked. */
static int give_up(buffer *b, const batch *bt, const char *why)
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
    return dead_letter(b, bt, NULL, 0, why) < 0 ? -1 : 0;
}

/* ---- flushing ---------------------------------------------------------------------- */

static double retry_interval(buffer *b)
{
    double w = b->c.retry_wait;
    if (b->c.retry_type == RETRY_EXPONENTIAL)
        w *= pow(b->c.retry_exponential_backoff_base, b->retries > 1 ? b->retries - 1 : 0);
    if (b->c.retry_max_interval > 0 && w > b->c.retry_max_interval)
        w = b->c.retry_max_interval;
    if (b->c.retry_randomize)
        w *= 0.875 + 0.25 * ((double)rand() / RAND_MAX);
    return w;
}

/* Under mu: is the retry budget used up? */
static int retries_exhausted(buffer *b, double now)
{
    if (b->c.retry_forever)
        return 0;
    if (b->c.retry_max_times >= 0 && b->retries > b->c.retry_max_times)
        return 1;
    return now - b->retry_start >= b->c.retry_timeout;
}

/* The records of bt whose status is `want`, as a new batch (segments kept
 * per tag run). NULL when there are none. */
static batch *select_records(const batch *bt, const out_result *res, int want)
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
    batch *sel = select_records(bt, res, OUT_RETRY);
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
            ch->bytes += BLK_HDR + sg->tag_len + sg->len;
            ch->blocks++;
            ch->records += sg->nrecords;
        }
    }
    batch_unref(sel);
    pthread_mutex_lock(&b->mu);
    if (rc == 0) {
        b->total_bytes += ch->bytes;
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
            unlink(ch->path);
        chunk_free(ch);
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

/* Readers: flush threads handing rejected records to error_sink. Writer: a
 * reload switching error_sink/error_sink_arg (buffer_sink_lock). */
static pthread_rwlock_t sink_lock = PTHREAD_RWLOCK_INITIALIZER;
void buffer_sink_lock(int lock)
{
    if (lock)
        pthread_rwlock_wrlock(&sink_lock);
    else
        pthread_rwlock_unlock(&sink_lock);
}

/* Records an output rejected one by one: @ERROR when the configuration has
 * it, the dead-letter file otherwise. */
static int reject_records(buffer *b, const batch *bt, const out_result *res, const char *why)
{
    pthread_rwlock_rdlock(&sink_lock);
    if (b->error_sink) {
        batch *sel = select_records(bt, res, OUT_ERROR);
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
            mkdir_p(dir);
            snprintf(to, sizeof to, "%s/%016llx.chunk", dir, (unsigned long long)ch->id);
            if (rename(ch->path, to) == 0) {
                free(ch->path);
                ch->path = NULL;
            }
        }
        pthread_mutex_lock(&b->mu);
        b->nflushing--;
        chunk_delete(b, ch);
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
        if (nerr && reject_records(b, bt, &res, why) != 0)
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
        if (!done && retries_exhausted(b, now)) {
            pthread_mutex_unlock(&b->mu);
            wlog_error("buffer", "%s: giving up on chunk %016llx (%u records) after %d retries: %s", b->sink.id,
                       (unsigned long long)ch->id, ch->records, b->retries - 1, why);
            atomic_fetch_add(&b->failed_flushes, 1);
            done = give_up(b, bt, why) == 0;
            pthread_mutex_lock(&b->mu);
            b->retrying = 0;
            b->retries = 0;
        } else {
            double wait = retry_interval(b);
            b->next_retry = now + wait;
            wlog_warn("buffer", "%s: flush of chunk %016llx failed (%s); retry %d in %.1fs", b->sink.id,
                      (unsigned long long)ch->id, why, b->retries, wait);
        }
    } else {
        atomic_fetch_add(&b->failed_flushes, 1);
        pthread_mutex_unlock(&b->mu);
        wlog_error("buffer", "%s: unrecoverable error for chunk %016llx (%u records): %s", b->sink.id,
                   (unsigned long long)ch->id, ch->records, why);
        done = give_up(b, bt, why) == 0;
        pthread_mutex_lock(&b->mu);
    }
    b->nflushing--;
    if (done) {
        chunk_delete(b, ch);
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
                enqueue(b, ch);
        } else if (due < next) {
            next = due;
        }
        ch = nx;
    }
    return next;
}

static void *flush_main(void *arg)
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

/* ---- recovery ------------------------------------------------------------------------ */

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void move_aside(buffer *b, const char *path, const char *name, const char *why)
{
    char dir[4200], to[4400];
    snprintf(dir, sizeof dir, "%s/corrupt", b->c.path);
    mkdir_p(dir);
    snprintf(to, sizeof to, "%s/%s", dir, name);
    int rc = rename(path, to);
    wlog_error("buffer", "%s: chunk %s is unreadable (%s); %s", b->sink.id, path, why,
               rc == 0 ? "moved to corrupt/" : "could not move it aside; left in place and ignored");
    atomic_fetch_add(&b->corrupt_chunks, 1);
}

static int recover(buffer *b)
{
    double t0 = clock_mono();
    DIR *d = opendir(b->c.path);
    if (!d) {
        wlog_error("buffer", "%s: cannot open buffer path %s: %s", b->sink.id, b->c.path, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 6 && strcmp(de->d_name + l - 6, ".chunk") == 0) {
            names = realloc(names, (n + 1) * sizeof *names);
            names[n++] = strdup(de->d_name);
        }
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, cmp_names);
    uint64_t chunks = 0, records = 0, bytes = 0, torn = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", b->c.path, names[i]);
        int fd = open(path, O_RDWR | O_CLOEXEC);
        struct stat st;
        uint8_t *buf = NULL;
        if (fd < 0 || fstat(fd, &st) != 0) {
            wlog_error("buffer", "%s: cannot open chunk %s: %s; skipped", b->sink.id, path, strerror(errno));
            if (fd >= 0)
                close(fd);
            continue;
        }
        size_t size = (size_t)st.st_size;
        buf = malloc(size + 1);
        size_t got = 0;
        while (buf && got < size) {
            ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        const char *bad = NULL;
        size_t start = 0;
        /* empty: no bytes, a prefix of a header, or a whole valid header and
         * no block. A header that fails its CRC is corrupt, not empty: its
         * meta_len cannot be trusted to say where blocks start. */
        int empty = buf && memcmp(buf, CHUNK_MAGIC, got < 8 ? got : 8) == 0 &&
                    (got < HDR_SIZE ||
                     (HDR_SIZE + (size_t)get32(buf + 12) == got &&
                      header_crc(buf, buf + HDR_SIZE, got - HDR_SIZE) == get32(buf + 60)));
        if (empty) {
            /* a crash between creating a chunk and writing its first block:
             * nothing in it was ever acked */
            wlog_warn("buffer", "%s: removing %s: a chunk with no records (%zu bytes), left by a crash while it was "
                      "being created",
                      b->sink.id, path, got);
            close(fd);
            free(buf);
            unlink(path);
            continue;
        }
        bad = buf ? chunk_header_check(buf, got, &start) : "cannot read it";
        if (bad) {
            close(fd);
            free(buf);
            move_aside(b, path, names[i], bad);
            continue;
        }
        /* metadata: tag and timekey */
        const uint8_t *mp = buf + HDR_SIZE, *mend = buf + start;
        mp_obj m, k, v;
        char *tag = NULL;
        size_t tag_len = 0;
        int64_t timekey = -1;
        if (mp_read(&mp, mend, &m) == MP_OK && m.type == MP_MAP) {
            for (uint32_t j = 0; j < m.len; j++) {
                if (mp_read(&mp, mend, &k) != MP_OK || mp_read(&mp, mend, &v) != MP_OK)
                    break;
                if (k.type == MP_STR && k.len == 3 && !memcmp(k.ptr, "tag", 3) && v.type == MP_STR) {
                    tag = strndup((const char *)v.ptr, v.len);
                    tag_len = v.len;
                } else if (k.type == MP_STR && k.len == 7 && !memcmp(k.ptr, "timekey", 7)) {
                    timekey = v.type == MP_INT ? v.v.i : v.type == MP_UINT ? (int64_t)v.v.u : -1;
                }
            }
        }
        size_t good;
        uint32_t recs;
        uint8_t created_hdr[8];
        memcpy(created_hdr, buf + 16, 8);
        uint32_t blocks = scan_blocks(buf, start, got, &good, &recs, NULL);
        free(buf);
        if (good < got) {
            torn++;
            atomic_fetch_add(&b->torn_tails, 1);
            wlog_warn("buffer", "%s: chunk %s has a torn or corrupt tail: cut %zu bytes after %u whole blocks (%u records)",
                      b->sink.id, path, got - good, blocks, recs);
            if (ftruncate(fd, (off_t)good) != 0)
                wlog_error("buffer", "%s: cannot truncate %s: %s", b->sink.id, path, strerror(errno));
        }
        close(fd);
        if (!blocks) {
            unlink(path); /* an empty chunk: nothing to deliver */
            free(tag);
            continue;
        }
        chunk *ch = calloc(1, sizeof *ch);
        ch->fd = -1;
        ch->id = strtoull(names[i], NULL, 16);
        if (ch->id > b->next_id)
            b->next_id = ch->id;
        ch->tag = tag;
        ch->tag_len = tag_len;
        ch->timekey = timekey;
        ch->path = strdup(path);
        ch->created = (double)get64(created_hdr) / 1e9;
        ch->records = recs;
        ch->blocks = blocks;
        ch->bytes = good - start;
        ch->file_size = good;
        ch->state = C_QUEUED;
        if (b->qtail)
            b->qtail->next = ch;
        else
            b->qhead = ch;
        b->qtail = ch;
        b->nqueued++;
        b->total_bytes += ch->bytes;
        chunks++;
        records += recs;
        bytes += good;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    atomic_fetch_add(&b->recovered_chunks, chunks);
    atomic_fetch_add(&b->recovered_records, records);
    if (n)
        wlog_info("buffer", "%s: recovered %llu chunks, %llu records, %llu bytes from %s in %.0f ms (%llu torn tails "
                  "cut, %llu corrupt moved aside)",
                  b->sink.id, (unsigned long long)chunks, (unsigned long long)records, (unsigned long long)bytes,
                  b->c.path, (clock_mono() - t0) * 1000, (unsigned long long)torn,
                  (unsigned long long)atomic_load(&b->corrupt_chunks));
    return 0;
}

/* ---- start / stop --------------------------------------------------------------------- */

int buffer_start(buffer *b)
{
    if (b->c.type == BUF_FILE) {
        if (mkdir_p(b->c.path) != 0) {
            wlog_error("buffer", "%s: cannot create buffer path %s: %s", b->sink.id, b->c.path, strerror(errno));
            return -1;
        }
        if (recover(b) != 0)
            return -1;
    }
    b->nflushers = (int)b->c.flush_thread_count;
    b->flushers = calloc((size_t)b->nflushers, sizeof *b->flushers);
    for (int i = 0; i < b->nflushers; i++)
        if (pthread_create(&b->flushers[i], NULL, flush_main, b) != 0) {
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
    conf_unbind(buffer_spec, &b->c);
    free(b->dlq_dir);
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->dlq_mu);
    pthread_cond_destroy(&b->cv_flush);
    pthread_cond_destroy(&b->cv_space);
    free(b);
}
