/* aggregator/dead_letter.c: dead letters routed to a label, decorated; see dead_letter.h. */
#include "aggregator/dead_letter.h"

#include <stdlib.h>
#include <string.h>

#include "lib/log.h"

int dl_route_init(dl_route *d, router *rt, const buffer *b, conf_errors *errs)
{
    memset(d, 0, sizeof *d);
    if (!b || !b->c.dead_letter_label)
        return 0;
    const char *file = b->dl_label_file ? b->dl_label_file : "<config>";
    int line = b->dl_label_line;
    if (b->c.dead_letter_label[0] != '@') {
        conf_errors_add(errs, file, line, "dead_letter_label must name a label (@ERROR, @DLQ, ...), not '%s'",
                        b->c.dead_letter_label);
        return -1;
    }
    if (!(d->label = router_label(rt, b->c.dead_letter_label, file, line, errs)))
        return -1;
    char err[256];
    if (rec_path_compile(&d->key, b->c.dead_letter_key, err, sizeof err)) {
        conf_errors_add(errs, file, line, "dead_letter_key: %s", err);
        return -1;
    }
    for (size_t i = 0; i < d->key.n; i++)
        if (!d->key.steps[i].key) {
            conf_errors_add(errs, file, line, "dead_letter_key `%s` has an array index; only keys can be set",
                            b->c.dead_letter_key);
            rec_path_free(&d->key);
            return -1;
        }
    if (!d->key.n) {
        conf_errors_add(errs, file, line, "dead_letter_key `%s` names no key", b->c.dead_letter_key);
        return -1;
    }
    d->rt = rt;
    return 1;
}

void dl_route_free(dl_route *d)
{
    rec_path_free(&d->key);
    memset(d, 0, sizeof *d);
}

static int put_str(wbuf *w, const char *k, const char *v, size_t vl)
{
    return mpw_str(w, k, strlen(k)) || mpw_str(w, v, vl);
}

int dl_decorate(wbuf *out, const uint8_t *rec, size_t len, const rec_path *key, const buf_dead *why,
                const char *reason, const char *tag, size_t tag_len, wbuf *scratch)
{
    scratch->len = 0;
    if (!reason)
        reason = why->reason ? why->reason : "";
    if (mpw_map(scratch, 5) || put_str(scratch, "error_type", why->kind, strlen(why->kind)) ||
        put_str(scratch, "error_message", reason, strlen(reason)) || mpw_str(scratch, "attempts", 8) ||
        mpw_int(scratch, why->attempts) || put_str(scratch, "tag", tag, tag_len) ||
        put_str(scratch, "output_id", why->output, strlen(why->output)))
        return -1;
    return rec_set_path(out, rec, len, key, scratch->data, scratch->len);
}

int dl_route_sink(void *arg, const batch *b, const buf_dead *why)
{
    dl_route *d = arg;
    wbuf data = {0}, scratch = {0};
    int rc = 0;
    uint32_t i = 0; /* record index in b, for why->reasons */
    for (uint32_t s = 0; s < b->nsegs && rc == 0; s++) {
        const batch_seg *sg = &b->segs[s];
        const uint8_t *p = b->data + sg->off, *end = p + sg->len;
        entry e;
        data.len = 0;
        uint32_t n = 0;
        while (rc == 0 && batch_next(&p, end, &e) == 1) {
            const char *r = why->reasons && why->reasons[i] ? why->reasons[i] : NULL;
            i++;
            if (batch_put_entry_head(&data, e.sec, e.nsec, e.meta, e.meta_len) ||
                dl_decorate(&data, e.record, e.record_len, &d->key, why, r, sg->tag, sg->tag_len, &scratch)) {
                rc = -1;
                break;
            }
            n++;
        }
        if (rc || !n)
            continue;
        size_t len;
        uint8_t *bytes = wbuf_steal(&data, &len);
        batch *one = batch_new(sg->tag, sg->tag_len, bytes, len, n);
        if (!one) {
            free(bytes);
            rc = -1;
            break;
        }
        rc = router_emit_to(d->rt, d->label, one, why->kind);
        batch_unref(one);
    }
    wbuf_free(&data);
    wbuf_free(&scratch);
    return rc;
}
