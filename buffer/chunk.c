/*
 * buffer/chunk.c: the chunk file format (chunk.h: encode, check, scan,
 * decode into a batch) and the I/O of one chunk: create its file, append a
 * block, seal it at enqueue, load it back for a flush. Format and crash
 * semantics: docs/buffer.md.
 */
#include "buffer/chunk.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
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
#include "lib/log.h"
#include "lib/membudget.h"
#include "lib/mp.h"
#include "buffer/buffer_int.h"

/* little-endian, as everything in the format */
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

/* ---- the format (pure) ---------------------------------------------------------- */

/* The header CRC skips bytes 32..39 (record and block counts), which are
 * rewritten when the chunk is enqueued and are informative only. */
uint32_t chunk_header_crc(const uint8_t *h, const uint8_t *meta, size_t meta_len)
{
    uint32_t crc = crc32c(0, h, 32);
    crc = crc32c(crc, h + 40, 20);
    return crc32c(crc, meta, meta_len);
}

/* Build the 64-byte header + metadata of a chunk. */
size_t chunk_encode_header(uint8_t *out, size_t cap, const char *tag, size_t tag_len, int64_t timekey,
                           const char *output, uint64_t created_ns)
{
    wbuf meta = {0};
    mpw_map(&meta, 3);
    mpw_str(&meta, "tag", 3);
    if (tag)
        mpw_str(&meta, tag, tag_len);
    else
        mpw_nil(&meta);
    mpw_str(&meta, "timekey", 7);
    mpw_int(&meta, timekey);
    mpw_str(&meta, "output", 6);
    mpw_str(&meta, output, strlen(output));
    size_t n = CHUNK_HDR + meta.len;
    if (n > cap) {
        wbuf_free(&meta);
        return 0;
    }
    memset(out, 0, CHUNK_HDR);
    memcpy(out, CHUNK_MAGIC, 8);
    out[8] = CHUNK_VERSION;
    put32(out + 12, (uint32_t)meta.len);
    put64(out + 16, created_ns);
    put64(out + 24, (uint64_t)(timekey < 0 ? 0 : timekey));
    memcpy(out + CHUNK_HDR, meta.data, meta.len);
    put32(out + 60, chunk_header_crc(out, meta.data, meta.len));
    wbuf_free(&meta);
    return n;
}

static void block_header(uint8_t *h, size_t tag_len, size_t len, uint32_t records, uint32_t crc)
{
    put32(h, (uint32_t)len);
    put32(h + 4, records);
    put32(h + 8, crc);
    h[12] = (uint8_t)tag_len;
    h[13] = (uint8_t)(tag_len >> 8);
    h[14] = h[15] = 0;
}

void chunk_encode_block_header(uint8_t *h, const char *tag, size_t tag_len, const uint8_t *data, size_t len,
                               uint32_t records)
{
    block_header(h, tag_len, len, records, crc32c(crc32c(0, tag, tag_len), data, len));
}


/* Validate a chunk's header (magic, version, metadata length, CRC).
 * Returns NULL and sets *start to the offset of the first block, or says
 * what is wrong. */
const char *chunk_header_check(const uint8_t *buf, size_t got, size_t *start)
{
    if (got < CHUNK_HDR || memcmp(buf, CHUNK_MAGIC, 8) != 0)
        return "bad magic";
    if (buf[8] != CHUNK_VERSION)
        return "unknown version";
    size_t s = CHUNK_HDR + (size_t)get32(buf + 12);
    if (s > got)
        return "metadata runs past the end";
    if (chunk_header_crc(buf, buf + CHUNK_HDR, s - CHUNK_HDR) != get32(buf + 60))
        return "header checksum mismatch";
    *start = s;
    return NULL;
}

/* empty: no bytes, a prefix of a header, or a whole valid header and no
 * block. A header that fails its CRC is corrupt, not empty: its meta_len
 * cannot be trusted to say where blocks start. */
int chunk_is_empty(const uint8_t *buf, size_t got)
{
    return memcmp(buf, CHUNK_MAGIC, got < 8 ? got : 8) == 0 &&
           (got < CHUNK_HDR || (CHUNK_HDR + (size_t)get32(buf + 12) == got &&
                               chunk_header_crc(buf, buf + CHUNK_HDR, got - CHUNK_HDR) == get32(buf + 60)));
}

/* The metadata: tag and timekey ("output" is for people reading the file). */
void chunk_read_meta(const uint8_t *buf, size_t start, char **tag_out, size_t *tag_len_out, int64_t *timekey_out,
                     uint64_t *created_ns)
{
    const uint8_t *mp = buf + CHUNK_HDR, *mend = buf + start;
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
    *tag_out = tag;
    *tag_len_out = tag_len;
    *timekey_out = timekey;
    *created_ns = get64(buf + 16);
}

/* the end mark: a block header of zeros (no block has one: a block holds at least one record) */
static const uint8_t end_mark[CHUNK_BLK_HDR];

int chunk_is_end_mark(const uint8_t *buf, size_t at, size_t len)
{
    return at <= len && len - at >= CHUNK_BLK_HDR && memcmp(buf + at, end_mark, CHUNK_BLK_HDR) == 0;
}

/*
 * Walk the blocks in buf[start..len). Fills *good with the end of the last
 * whole, checksum-valid block; returns the block count; *records their
 * records. If `infos` is given, records each block (realloc'd array).
 */
uint32_t chunk_scan_blocks(const uint8_t *buf, size_t start, size_t len, size_t *good, uint32_t *records,
                           chunk_block **infos, int verify)
{
    size_t p = start;
    uint32_t n = 0, recs = 0;
    size_t cap = 0;
    while (len - p >= CHUNK_BLK_HDR) {
        uint32_t bl = get32(buf + p), br = get32(buf + p + 4), crc = get32(buf + p + 8);
        uint32_t tl = (uint32_t)buf[p + 12] | (uint32_t)buf[p + 13] << 8;
        if ((uint64_t)bl + tl > len - p - CHUNK_BLK_HDR)
            break;
        const uint8_t *tag = buf + p + CHUNK_BLK_HDR;
        if (br == 0 || (verify && crc32c(crc32c(0, tag, tl), tag + tl, bl) != crc))
            break;
        if (infos) {
            if (n == cap) {
                cap = cap ? cap * 2 : 16;
                *infos = realloc(*infos, cap * sizeof **infos);
            }
            (*infos)[n] = (chunk_block){tag, tl, br, p + CHUNK_BLK_HDR + tl, bl};
        }
        n++;
        recs += br;
        p += CHUNK_BLK_HDR + tl + bl;
    }
    *good = p;
    *records = recs;
    return n;
}

/* Turn blocks into a (multi-segment) batch, compacting payloads in place.
 * Takes ownership of buf (freed on failure). */
batch *chunk_blocks_to_batch(uint8_t *buf, size_t start, size_t len, int verify)
{
    chunk_block *bi = NULL;
    size_t good;
    uint32_t records;
    uint32_t n = chunk_scan_blocks(buf, start, len, &good, &records, &bi, verify);
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
    batch *bt = chunk_blocks_to_batch(copy, start, len, 1);
    if (!bt)
        snprintf(err, errlen, "no readable block");
    return bt;
}

/* ---- one chunk's I/O ---------------------------------------------------------- */

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

void chunk_free(chunk *ch)
{
    if (ch->fd >= 0)
        close(ch->fd);
    if (ch->loaded)
        batch_unref(ch->loaded);
    wbuf_free(&ch->mem);
    if (ch->mb)
        mb_release(ch->mb);
    free(ch->path);
    free(ch->tag);
    free(ch);
}

/*
 * Recycling. A delivered chunk's file is not unlinked but renamed
 * `<id>.free` and kept (up to BUF_POOL_MAX per buffer) for a next chunk to be
 * written over: writing into page-cache pages a file already has costs a
 * copy, while a new file's pages must each be allocated (and, on ext4, its
 * blocks too), several times the copy itself (docs/buffer.md "Recycled
 * files"). A recycled file is longer than what the new chunk has written, so
 * the bytes after the chunk's last block are an old chunk's: an end mark (a
 * block header of zeros, which no block has: a block holds at least one
 * record) always follows the last block, written before the block itself,
 * so that a crash at any point leaves the chunk ending where recovery stops.
 * Sealing cuts the file at its last block, leaving the format as for a new
 * file. Recovery removes `*.free` files.
 */

/* Under mu: the new chunk `ch` takes a kept file: the end mark after where
 * its header ends, then the header, then the chunk's name. 0, or -1 with the
 * file unlinked (the caller creates a new one). */
static int reuse_file(buffer *b, chunk *ch, const char *path, const uint8_t *hdr, size_t hl)
{
    char *fp = b->pool[--b->npool];
    int fd = open(fp, O_WRONLY | O_CLOEXEC);
    int rc = fd >= 0 && fd_pwrite_all(fd, end_mark, sizeof end_mark, (off_t)hl) == 0 &&
                     fd_pwrite_all(fd, hdr, hl, 0) == 0 && rename(fp, path) == 0
                 ? 0
                 : -1;
    if (rc) {
        if (fd >= 0)
            close(fd);
        unlink(fp);
    } else {
        ch->fd = fd;
        ch->reused = 1;
    }
    free(fp);
    return rc;
}

void chunk_discard_file(buffer *b, const char *path, uint64_t id)
{
    if (b->c.type == BUF_FILE && b->npool < BUF_POOL_MAX && !b->stopping) {
        char fp[4200];
        snprintf(fp, sizeof fp, "%s/%016llx.free", b->c.path, (unsigned long long)id);
        char *keep = strdup(fp);
        if (keep && rename(path, keep) == 0) {
            b->pool[b->npool++] = keep;
            return;
        }
        free(keep);
    }
    if (unlink(path) != 0 && errno != ENOENT)
        wlog_warn("buffer", "%s: cannot delete flushed chunk %s: %s", b->sink.id, path, strerror(errno));
}

void chunk_pool_drop(buffer *b)
{
    while (b->npool) {
        char *fp = b->pool[--b->npool];
        unlink(fp);
        free(fp);
    }
}

chunk *chunk_new(buffer *b, const char *tag, size_t tag_len, int64_t timekey)
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
        uint8_t hdr[2048];
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        size_t hl = chunk_encode_header(hdr, sizeof hdr, ch->tag, ch->tag_len, ch->timekey, b->sink.id,
                                        (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec);
        if (hl && b->npool && reuse_file(b, ch, path, hdr, hl) == 0) {
            ch->file_size = hl;
            return ch;
        }
        ch->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, b->file_mode);
        if (ch->fd < 0 || !hl || fd_write_all(ch->fd, hdr, hl) != 0) {
            int e = errno;
            static __thread double last_log;
            if (clock_every(&last_log, 10)) {
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

/* Ingest thread, without mu: write one block. 0 or -errno (the chunk is
 * left exactly as before on failure). */
int chunk_write_block(buffer *b, chunk *ch, const char *tag, size_t tag_len, const uint8_t *data, size_t len,
                      uint32_t records)
{
    uint8_t h[CHUNK_BLK_HDR];
    if (b->c.type == BUF_MEMORY) {
        block_header(h, tag_len, len, records, 0); /* never on disk, never verified: no checksum */
        if (wbuf_add(&ch->mem, h, CHUNK_BLK_HDR) || wbuf_add(&ch->mem, tag, tag_len) || wbuf_add(&ch->mem, data, len))
            return -ENOMEM;
        return 0;
    }
    chunk_encode_block_header(h, tag, tag_len, data, len, records);
    size_t total = CHUNK_BLK_HDR + tag_len + len, done = 0;
    /* a recycled file: the end mark after the block first (the previous one,
     * at the block's place, stays until the block is written over it) */
    if (ch->reused && fd_pwrite_all(ch->fd, end_mark, sizeof end_mark, (off_t)(ch->file_size + total)) != 0)
        return -errno;
    struct iovec iov[3] = {{h, CHUNK_BLK_HDR}, {(void *)(uintptr_t)tag, tag_len}, {(void *)(uintptr_t)data, len}};
    int idx = 0;
    while (done < total) {
        ssize_t w = pwritev(ch->fd, iov + idx, 3 - idx, (off_t)(ch->file_size + done));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            /* cut the partial block away: the chunk must stay whole (a
             * recycled file loses its old tail too: nothing follows) */
            if (ftruncate(ch->fd, (off_t)ch->file_size) == 0)
                ch->reused = 0;
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

/* Under mu, at enqueue: the ingest thread is done with the chunk. */
void chunk_seal(chunk *ch)
{
    if (ch->fd >= 0) {
        /* the header counters are informative (recovery recounts); close the
         * fd so a large backlog does not hold a descriptor per chunk */
        uint8_t cnt[8];
        put32(cnt, ch->records);
        put32(cnt + 4, ch->blocks);
        ssize_t w = pwrite(ch->fd, cnt, 8, 32);
        (void)w;
        /* a recycled file: cut the end mark and the old chunk's bytes after it */
        if (ch->reused && ftruncate(ch->fd, (off_t)ch->file_size) == 0)
            ch->reused = 0;
        close(ch->fd);
        ch->fd = -1;
    }
}

/* ---- Read buffers --------------------------------------------------------------------------
 *
 * A file chunk is read whole into one buffer (up to chunk_limit_size, 8 MiB
 * by default) that becomes its batch's data. Allocated afresh per flush,
 * those buffers cost twice: glibc serves the first from mmap and, once it is
 * freed, raises its mmap threshold and keeps the next ones in a heap arena,
 * which then holds about two chunks' worth (measured: 16 MiB of arena for
 * the enrich benchmark's one flush thread), and every fresh page is faulted
 * and zeroed. So a buffer keeps up to one read buffer per flush thread: the
 * batch takes one (batch.release), its last unref gives it back, from
 * whatever thread, and a batch that outlives the buffer (an output that
 * passed it on) still finds the pool: it is reference-counted, the buffer
 * holding one reference and each lent buffer another. A buffer larger than
 * max_cap (a chunk written under a larger chunk_limit_size) is freed, not
 * kept. */
typedef struct rbuf_pool {
    atomic_int refs;
    pthread_mutex_t mu;
    int keep, n;
    size_t max_cap;
    uint8_t *buf[RBUF_KEEP_MAX];
    size_t cap[RBUF_KEEP_MAX];
} rbuf_pool;

rbuf_pool *rbuf_pool_new(int keep, size_t max_cap)
{
    rbuf_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->mu, NULL);
    p->keep = keep < 1 ? 1 : keep > RBUF_KEEP_MAX ? RBUF_KEEP_MAX : keep;
    p->max_cap = max_cap;
    return p;
}

void rbuf_pool_unref(rbuf_pool *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int i = 0; i < p->n; i++)
        free(p->buf[i]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* A buffer of at least `need` bytes, *cap its size: a kept one when one is
 * large enough, else a new one (a kept smaller one is freed for it). */
static uint8_t *rbuf_get(rbuf_pool *p, size_t need, size_t *cap)
{
    uint8_t *small = NULL, *got = NULL;
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n; i++)
        if (p->cap[i] >= need) {
            got = p->buf[i];
            *cap = p->cap[i];
            p->buf[i] = p->buf[p->n - 1], p->cap[i] = p->cap[p->n - 1];
            p->n--;
            break;
        }
    if (!got && p->n)
        small = p->buf[--p->n];
    pthread_mutex_unlock(&p->mu);
    free(small);
    if (!got) {
        /* rounded up, so that the next chunk, a little larger, fits too */
        size_t sz = need > (1u << 20) ? (need + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1) : 65536;
        while (sz < need)
            sz *= 2;
        if ((got = malloc(sz)) != NULL)
            *cap = sz;
    }
    return got;
}

static void rbuf_put(void *arg, uint8_t *data, size_t cap)
{
    rbuf_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    if (p->n < p->keep && cap <= p->max_cap) {
        p->buf[p->n] = data;
        p->cap[p->n++] = cap;
        data = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    free(data);
    rbuf_pool_unref(p);
}

/* Read a chunk's records as a batch (flush thread, no lock held). */
batch *chunk_load(buffer *b, chunk *ch, char *err, size_t errlen)
{
    if (b->c.type == BUF_MEMORY) {
        if (!ch->loaded) {
            size_t len;
            uint8_t *data = wbuf_steal(&ch->mem, &len);
            ch->loaded = chunk_blocks_to_batch(data, 0, len, 0); /* never left memory */
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
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "cannot read %s: %s", ch->path, strerror(errno));
        close(fd);
        return NULL;
    }
    /* the chunk's own length: a recycled file whose sealing could not cut it
     * holds an old chunk's bytes after its end mark */
    size_t size = (size_t)st.st_size;
    if (ch->file_size && size > ch->file_size)
        size = (size_t)ch->file_size;
    size_t cap = size + 1;
    if ((buf = b->rpool ? rbuf_get(b->rpool, size + 1, &cap) : malloc(size + 1)) == NULL) {
        snprintf(err, errlen, "cannot read %s: out of memory", ch->path);
        close(fd);
        return NULL;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
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
    /* a chunk this process wrote is read back from the page cache as it was
     * written: its checksums guard against what happens on disk, so they are
     * verified for recovered chunks (and by recovery itself) */
    batch *bt = chunk_blocks_to_batch(buf, start, got, ch->recovered); /* frees buf when it fails */
    if (!bt) {
        snprintf(err, errlen, "%s holds no readable block", ch->path);
    } else if (b->rpool) {
        atomic_fetch_add_explicit(&b->rpool->refs, 1, memory_order_relaxed);
        bt->release = rbuf_put;
        bt->release_arg = b->rpool;
        bt->data_cap = cap;
    }
    return bt;
}
