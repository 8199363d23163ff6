/*
 * test/unit/aggregate_test_util.h: what test_aggregate.c and
 * test_aggregate_chlog.c share to drive the aggregate filter: a fake clock,
 * the saga conditions, one filter with its buffers, a record fed in, the
 * i-th summary emitted (header only: not a test binary itself).
 */
#ifndef WEIR_AGGREGATE_TEST_UTIL_H
#define WEIR_AGGREGATE_TEST_UTIL_H

#include "lib/batch.h"
#include "filter_test_util.h"

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

/* the conditions of the sagas the tests send; `extra` lines go after @type */
#define AGG_CONDS(extra)                                                                                             \
    "@type aggregate\n" extra "key saga_id\n"                                                                        \
    "<start>\n key event\n pattern /^SagaStarted$/\n</start>\n"                                                       \
    "<step>\n key event\n pattern /^Step/\n</step>\n"                                                                 \
    "<end>\n key event\n pattern /^SagaEnded$/\n</end>\n"                                                             \
    "<failure>\n key status\n pattern /^(FAILED|ERROR)$/\n</failure>\n"                                               \
    "<compensation>\n key event\n pattern /^Compensat/\n</compensation>\n"

typedef struct run {
    filter *f;
    filter_emit em;
    wbuf out, scratch, aux;
} run;

static void run_init(run *r, const char *body)
{
    memset(r, 0, sizeof *r);
    aggregate_clock = fake_clock;
    r->f = filter_from_body_ok("app.**", body, "t.conf", 0);
    assert_non_null(r->f);
}

/* one record at time sec; returns the filter's result; *modified (when not
 * NULL) the JSON of a MODIFY */
static int feed(run *r, uint32_t sec, const char *json, char **modified)
{
    wbuf rec = J(json);
    filter_call c = {.tag = "app.x", .tag_len = 5, .sec = sec, .nsec = 0, .out = &r->out, .scratch = &r->scratch,
                     .aux = &r->aux, .emit = &r->em};
    r->out.len = 0;
    int rc = r->f->plugin->filter(r->f, &c, rec.data, rec.len);
    if (modified)
        *modified = rc == FILTER_MODIFY ? M2J(r->out.data, r->out.len) : NULL;
    wbuf_free(&rec);
    return rc;
}

/* the i-th emitted summary as JSON (malloc'd), NULL if there is none */
static char *summary(run *r, uint32_t i)
{
    uint8_t *copy = malloc(r->em.w.len ? r->em.w.len : 1);
    memcpy(copy, r->em.w.data, r->em.w.len);
    batch *b = batch_new(r->em.tag, r->em.tag_len, copy, r->em.w.len, r->em.n);
    batch_iter it;
    entry e;
    batch_iter_init(&it, b);
    char *s = NULL;
    for (uint32_t k = 0; batch_iter_next(&it, &e) == 1; k++)
        if (k == i)
            s = M2J(e.record, e.record_len);
    batch_unref(b);
    return s;
}

static void run_free(run *r)
{
    filter_destroy(r->f);
    wbuf_free(&r->em.w);
    wbuf_free(&r->out);
    wbuf_free(&r->scratch);
    wbuf_free(&r->aux);
    aggregate_clock = fake_clock;
}

#endif
