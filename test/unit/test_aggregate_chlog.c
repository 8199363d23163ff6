/* test/unit/test_aggregate_chlog.c: the aggregate filter's changelog encoding
 * (aggregator/filters/aggregate_chlog.c): a saga exported and imported into
 * another filter ends with the same summary; damaged bytes are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "aggregate_test_util.h"

int aggregate_export_saga(const filter *f, const void *k, size_t kl, wbuf *w);
int aggregate_import_saga(filter *f, const void *k, size_t kl, const uint8_t *p, size_t n);

#define CONDS(id) AGG_CONDS("@id " id "\n")

static const char *const EVENTS[] = {
    "{\"saga_id\":\"s1\",\"event\":\"SagaStarted\",\"service\":\"orders\",\"trace_id\":\"t1\"}",
    "{\"saga_id\":\"s1\",\"event\":\"StepDone\",\"step\":\"reserve\",\"service\":{\"name\":\"stock\"},"
    "\"status\":\"OK\",\"trace\":{\"id\":\"t2\"}}",
    "{\"saga_id\":\"s1\",\"event\":\"StepDone\",\"step\":\"charge\",\"service\":\"payments\",\"status\":\"FAILED\"}",
    "{\"saga_id\":\"s1\",\"event\":\"Compensate\",\"step\":\"release\",\"service\":\"stock\"}",
};
static const char END[] = "{\"saga_id\":\"s1\",\"event\":\"SagaEnded\",\"step\":\"done\",\"service\":\"orders\"}";

/* A saga moved mid-way (export, import into another state) ends as if it had not moved. */
static void test_roundtrip(void **state)
{
    (void)state;
    run a, b;
    run_init(&a, CONDS("ca"));
    run_init(&b, CONDS("cb"));
    for (size_t i = 0; i < sizeof EVENTS / sizeof *EVENTS; i++)
        feed(&a, (uint32_t)(100 + i), EVENTS[i], NULL);
    wbuf w = {0};
    assert_int_equal(aggregate_export_saga(a.f, "s1", 2, &w), 1);
    assert_int_equal(aggregate_export_saga(a.f, "nope", 4, &w), 0);
    assert_int_equal(aggregate_import_saga(b.f, "s1", 2, w.data, w.len), 0);
    /* exported again from b: the same bytes */
    wbuf w2 = {0};
    assert_int_equal(aggregate_export_saga(b.f, "s1", 2, &w2), 1);
    assert_int_equal(w.len, w2.len);
    assert_memory_equal(w.data, w2.data, w.len);
    feed(&a, 110, END, NULL);
    feed(&b, 110, END, NULL);
    assert_int_equal(a.em.n, 1);
    assert_int_equal(b.em.n, 1);
    char *sa = summary(&a, 0), *sb = summary(&b, 0);
    assert_string_equal(sa, sb);
    assert_non_null(strstr(sa, "\"outcome\":\"compensated\""));
    assert_non_null(strstr(sa, "\"event_count\":5"));
    free(sa);
    free(sb);
    uint64_t o, ev, su;
    agg_counts(b.f, &o, &ev, &su);
    assert_int_equal(o, 0);
    wbuf_free(&w);
    wbuf_free(&w2);
    run_free(&a);
    run_free(&b);
}

/* Every truncation, a trailing byte, a bad version or a bad kind is refused; nothing is installed. */
static void test_damaged(void **state)
{
    (void)state;
    run a, b;
    run_init(&a, CONDS("da"));
    run_init(&b, CONDS("db"));
    for (size_t i = 0; i < sizeof EVENTS / sizeof *EVENTS; i++)
        feed(&a, (uint32_t)(100 + i), EVENTS[i], NULL);
    wbuf w = {0};
    assert_int_equal(aggregate_export_saga(a.f, "s1", 2, &w), 1);
    for (size_t n = 0; n < w.len; n++)
        assert_int_equal(aggregate_import_saga(b.f, "s1", 2, w.data, n), -1);
    uint8_t *c = malloc(w.len + 1);
    memcpy(c, w.data, w.len);
    c[w.len] = 0;
    assert_int_equal(aggregate_import_saga(b.f, "s1", 2, c, w.len + 1), -1);
    c[0] = 2; /* version */
    assert_int_equal(aggregate_import_saga(b.f, "s1", 2, c, w.len), -1);
    c[0] = 1;
    c[1] = 0x80; /* unknown flag */
    assert_int_equal(aggregate_import_saga(b.f, "s1", 2, c, w.len), -1);
    c[1] = w.data[1];
    assert_int_equal(aggregate_import_saga(b.f, "", 0, c, w.len), -1);
    assert_int_equal(aggregate_import_saga(b.f, "s1", 2, NULL, 0), -1);
    uint64_t o, ev, su;
    agg_counts(b.f, &o, &ev, &su);
    assert_int_equal(o, 0);
    assert_int_equal(aggregate_import_saga(b.f, "s1", 2, c, w.len), 0);
    agg_counts(b.f, &o, &ev, &su);
    assert_int_equal(o, 1);
    /* imported twice: replaced, not doubled */
    assert_int_equal(aggregate_import_saga(b.f, "s1", 2, c, w.len), 0);
    agg_counts(b.f, &o, &ev, &su);
    assert_int_equal(o, 1);
    free(c);
    wbuf_free(&w);
    run_free(&a);
    run_free(&b);
}

/* Caps of the importing filter apply: steps beyond max_steps are counted as dropped. */
static void test_caps(void **state)
{
    (void)state;
    run a, b;
    run_init(&a, CONDS("pa"));
    run_init(&b, CONDS("pb") "max_steps 2\nmax_services 1\nmax_trace_ids 1\n");
    for (size_t i = 0; i < sizeof EVENTS / sizeof *EVENTS; i++)
        feed(&a, (uint32_t)(100 + i), EVENTS[i], NULL);
    wbuf w = {0};
    assert_int_equal(aggregate_export_saga(a.f, "s1", 2, &w), 1);
    assert_int_equal(aggregate_import_saga(b.f, "s1", 2, w.data, w.len), 0);
    feed(&b, 110, END, NULL);
    char *s = summary(&b, 0);
    assert_non_null(s);
    assert_non_null(strstr(s, "\"steps_dropped\":3"));
    assert_non_null(strstr(s, "\"services\":[\"orders\"]"));
    assert_non_null(strstr(s, "\"trace_ids\":[\"t1\"]"));
    free(s);
    wbuf_free(&w);
    run_free(&a);
    run_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_damaged),
        cmocka_unit_test(test_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
