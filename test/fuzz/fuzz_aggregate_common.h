/*
 * test/fuzz/fuzz_aggregate_common.h: what fuzz_aggregate.c and
 * fuzz_aggregate_chlog.c share: a fake clock for the filter, a filter made
 * from parameters, and the check of what it emitted (header only).
 */
#ifndef WEIR_FUZZ_AGGREGATE_COMMON_H
#define WEIR_FUZZ_AGGREGATE_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/mp.h"
#include "config/conf.h"
#include "aggregator/filter.h"

/* the filter's open / evicted / summaries counters */
static inline void agg_counts(const filter *f, uint64_t *o, uint64_t *e, uint64_t *s)
{
    filter_stats st;
    f->plugin->stats(f, &st);
    *o = st.open;
    *e = st.evicted;
    *s = st.summaries;
}

extern double (*aggregate_clock)(void);
static double fake_now = 1000;
static double fake_clock(void) { return fake_now; }

/* an aggregate filter with these parameters (@id `id_prefix`N); aborts on a config error (a bug in the target) */
static filter *mk(const char *id_prefix, const char *params, int i)
{
    char text[2048];
    conf_errors errs = {0};
    snprintf(text, sizeof text, "<filter **>\n@type aggregate\n@id %s%d\n%s\n</filter>\n", id_prefix, i, params);
    conf_node *root = conf_parse_string(text, "fuzz.conf", &errs);
    filter *f = root ? filter_create(root->children[0], i, &errs) : NULL;
    if (!f) {
        for (size_t k = 0; k < errs.n; k++)
            fprintf(stderr, "%s\n", errs.msgs[k]);
        abort();
    }
    conf_free(root);
    conf_errors_free(&errs);
    return f;
}

/* every emitted entry is one [time, map], em->n of them; then emptied */
static void check_emitted(filter_emit *em)
{
    if (em->n) {
        uint8_t *copy = malloc(em->w.len);
        memcpy(copy, em->w.data, em->w.len);
        batch *b = batch_new(em->tag, em->tag_len, copy, em->w.len, em->n);
        batch_iter it;
        entry e;
        batch_iter_init(&it, b);
        uint32_t n = 0;
        int r;
        while ((r = batch_iter_next(&it, &e)) == 1) {
            const uint8_t *q = e.record;
            mp_obj o;
            if (mp_read(&q, e.record + e.record_len, &o) != MP_OK || o.type != MP_MAP)
                abort();
            n++;
        }
        if (r < 0 || n != em->n)
            abort();
        batch_unref(b);
    } else if (em->w.len) {
        abort();
    }
    em->w.len = 0;
    em->n = 0;
}

#endif
