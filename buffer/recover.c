/*
 * buffer/recover.c: crash recovery at start-up (docs/buffer.md "Recovery"):
 * every chunk file under the buffer path, oldest first, is checked block by
 * block; a torn tail is cut, an unreadable chunk moved to corrupt/, an empty
 * one removed, the rest queued for flushing whatever state it was in.
 */
#include "buffer/buffer_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/array.h"
#include "lib/clock.h"
#include "lib/log.h"
#include "buffer/chunk.h"

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void move_aside(buffer *b, const char *path, const char *name, const char *why)
{
    char dir[4200], to[4400];
    snprintf(dir, sizeof dir, "%s/corrupt", b->c.path);
    buf_mkdir_p(dir, b->dir_mode);
    snprintf(to, sizeof to, "%s/%s", dir, name);
    int rc = rename(path, to);
    wlog_error("buffer", "%s: chunk %s is unreadable (%s); %s", b->sink.id, path, why,
               rc == 0 ? "moved to corrupt/" : "could not move it aside; left in place and ignored");
    atomic_fetch_add(&b->corrupt_chunks, 1);
}

int buf_recover(buffer *b)
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
        if (l > 5 && strcmp(de->d_name + l - 5, ".free") == 0) {
            /* a delivered chunk's file kept for recycling (chunk.c) */
            char fp[4400];
            snprintf(fp, sizeof fp, "%s/%s", b->c.path, de->d_name);
            unlink(fp);
        } else if (l > 6 && strcmp(de->d_name + l - 6, ".chunk") == 0) {
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
         * no block (chunk_is_empty) */
        if (buf && chunk_is_empty(buf, got)) {
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
        char *tag;
        size_t tag_len;
        int64_t timekey;
        uint64_t created_ns;
        chunk_read_meta(buf, start, &tag, &tag_len, &timekey, &created_ns);
        size_t good;
        uint32_t recs;
        uint32_t blocks = chunk_scan_blocks(buf, start, got, &good, &recs, NULL, 1);
        if (good < got && chunk_is_end_mark(buf, good, got)) {
            /* the end mark of a chunk written over a recycled file, not sealed
             * before the stop: what follows is an old chunk's, not a torn tail */
            if (ftruncate(fd, (off_t)good) != 0)
                wlog_error("buffer", "%s: cannot truncate %s: %s", b->sink.id, path, strerror(errno));
        } else if (good < got) {
            torn++;
            atomic_fetch_add(&b->torn_tails, 1);
            wlog_warn("buffer", "%s: chunk %s has a torn or corrupt tail: cut %zu bytes after %u whole blocks (%u records)",
                      b->sink.id, path, got - good, blocks, recs);
            if (ftruncate(fd, (off_t)good) != 0)
                wlog_error("buffer", "%s: cannot truncate %s: %s", b->sink.id, path, strerror(errno));
        }
        free(buf);
        close(fd);
        if (!blocks) {
            unlink(path); /* an empty chunk: nothing to deliver */
            free(tag);
            continue;
        }
        chunk *ch = calloc(1, sizeof *ch);
        if (ch)
            ch->recovered = 1;
        ch->fd = -1;
        ch->id = strtoull(names[i], NULL, 16);
        if (ch->id > b->next_id)
            b->next_id = ch->id;
        ch->tag = tag;
        ch->tag_len = tag_len;
        ch->timekey = timekey;
        ch->path = strdup(path);
        ch->created = (double)created_ns / 1e9;
        ch->records = recs;
        ch->blocks = blocks;
        ch->bytes = good - start;
        ch->file_size = good;
        ch->state = C_QUEUED;
        buf_queue_tail(b, ch);
        b->total_bytes += ch->bytes;
        chunks++;
        records += recs;
        bytes += good;
    }
    ARRAY_FREE_ALL(names, n);
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
