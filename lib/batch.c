/* lib/batch.c: batch allocation and iteration; see batch.h. */
#include "batch.h"

#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"

batch *batch_new(const char *tag, size_t tag_len, uint8_t *data, size_t len, uint32_t nrecords)
{
    batch *b = malloc(sizeof *b + tag_len + 1);
    if (!b)
        return NULL;
    b->magic = BATCH_MAGIC;
    atomic_init(&b->refs, 1);
    b->nrecords = nrecords;
    b->tag_len = (uint32_t)tag_len;
    b->tag = (char *)(b + 1);
    memcpy(b->tag, tag, tag_len);
    b->tag[tag_len] = '\0';
    b->data = data;
    b->len = len;
    b->seg1 = (batch_seg){.tag = b->tag, .tag_len = (uint32_t)tag_len, .nrecords = nrecords, .off = 0, .len = len};
    b->segs = &b->seg1;
    b->nsegs = 1;
    b->release = NULL;
    b->release_arg = NULL;
    b->data_cap = 0;
    return b;
}

batch *batch_new_segs(uint8_t *data, size_t len, const batch_seg *segs, uint32_t nsegs)
{
    if (nsegs == 0)
        return NULL;
    size_t tags = 0;
    for (uint32_t i = 0; i < nsegs; i++)
        tags += segs[i].tag_len + 1;
    batch *b = malloc(sizeof *b + nsegs * sizeof(batch_seg) + tags);
    if (!b)
        return NULL;
    b->magic = BATCH_MAGIC;
    atomic_init(&b->refs, 1);
    b->segs = (batch_seg *)(b + 1);
    char *t = (char *)(b->segs + nsegs);
    b->nrecords = 0;
    for (uint32_t i = 0; i < nsegs; i++) {
        b->segs[i] = segs[i];
        memcpy(t, segs[i].tag, segs[i].tag_len);
        t[segs[i].tag_len] = 0;
        b->segs[i].tag = t;
        t += segs[i].tag_len + 1;
        b->nrecords += segs[i].nrecords;
    }
    b->nsegs = nsegs;
    b->tag = (char *)b->segs[0].tag;
    b->tag_len = b->segs[0].tag_len;
    b->data = data;
    b->len = len;
    b->release = NULL;
    b->release_arg = NULL;
    b->data_cap = 0;
    return b;
}

void batch_iter_init(batch_iter *it, const batch *b)
{
    it->b = b;
    it->seg = 0;
    it->p = b->data + b->segs[0].off;
    it->end = it->p + b->segs[0].len;
}

int batch_iter_next(batch_iter *it, entry *e)
{
    for (;;) {
        int rc = batch_next(&it->p, it->end, e);
        if (rc != 0) {
            const batch_seg *s = &it->b->segs[it->seg];
            e->tag = s->tag;
            e->tag_len = s->tag_len;
            return rc;
        }
        if (++it->seg >= it->b->nsegs)
            return 0;
        const batch_seg *s = &it->b->segs[it->seg];
        it->p = it->b->data + s->off;
        it->end = it->p + s->len;
    }
}

void batch_unref(batch *b)
{
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    b->magic = 0;
    if (b->release)
        b->release(b->release_arg, b->data, b->data_cap);
    else
        free(b->data);
    free(b);
}

static int read_time(const uint8_t **p, const uint8_t *end, entry *e)
{
    mp_obj o;
    if (mp_read(p, end, &o) != MP_OK || o.type != MP_EXT || o.ext_type != 0 || o.len != 8)
        return -1;
    e->sec = mp_be32(o.ptr);
    e->nsec = mp_be32(o.ptr + 4);
    return 0;
}

int batch_next(const uint8_t **p, const uint8_t *end, entry *e)
{
    if (*p >= end)
        return 0;
    mp_obj o;
    if (mp_read(p, end, &o) != MP_OK || o.type != MP_ARRAY || o.len != 2)
        return -1;
    const uint8_t *q = *p;
    if (q < end && (*q & 0xf0) == 0x90) { /* [[time, meta], record] */
        mp_read(p, end, &o);
        if (read_time(p, end, e) != 0)
            return -1;
        e->meta = *p;
        if (mp_skip(p, end, 512) != MP_OK)
            return -1;
        e->meta_len = (size_t)(*p - e->meta);
    } else {
        if (read_time(p, end, e) != 0)
            return -1;
        e->meta = NULL;
        e->meta_len = 0;
    }
    e->tag = NULL;
    e->tag_len = 0;
    e->record = *p;
    if (mp_skip(p, end, 512) != MP_OK)
        return -1;
    e->record_len = (size_t)(*p - e->record);
    return 1;
}

int batch_put_entry_head(wbuf *w, uint32_t sec, uint32_t nsec, const uint8_t *meta, size_t meta_len)
{
    if (mpw_array(w, 2))
        return -1;
    if (meta)
        return mpw_array(w, 2) || mpw_eventtime(w, sec, nsec) || wbuf_add(w, meta, meta_len) ? -1 : 0;
    return mpw_eventtime(w, sec, nsec);
}

static void ticket_sync_done(ticket *t)
{
    ticket_sync *s = (ticket_sync *)t;
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void ticket_sync_init(ticket_sync *s, int outstanding)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    atomic_init(&s->t.outstanding, outstanding);
    atomic_init(&s->t.failed, 0);
    s->t.done = ticket_sync_done;
}

int ticket_sync_wait(ticket_sync *s)
{
    pthread_mutex_lock(&s->mu);
    while (!s->done)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    return atomic_load(&s->t.failed);
}
