/* test/unit/test_aggregate.c: the aggregate filter (saga correlation). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "aggregate_test_util.h"

#define CONDS AGG_CONDS("")

static void tick(run *r, int mode) { r->f->plugin->tick(r->f, fake_now, mode, &r->em); }

static void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle)) {
        fprintf(stderr, "missing %s in %s\n", needle, hay ? hay : "(null)");
        fail();
    }
}

static void test_completed(void **state)
{
    (void)state;
    run r;
    run_init(&r, CONDS);
    assert_int_equal(feed(&r, 100, "{\"saga_id\":\"s1\",\"event\":\"SagaStarted\",\"service\":\"orders\","
                                   "\"trace_id\":\"t1\"}", NULL),
                     FILTER_KEEP);
    feed(&r, 101, "{\"saga_id\":\"s1\",\"event\":\"StepDone\",\"step\":\"reserve\",\"service\":{\"name\":\"stock\"},"
                  "\"status\":\"OK\",\"trace\":{\"id\":\"t2\"}}", NULL);
    feed(&r, 102, "{\"saga_id\":\"s2\",\"event\":\"SagaStarted\"}", NULL);
    feed(&r, 103, "{\"saga_id\":\"s1\",\"event\":\"noise\"}", NULL);
    assert_int_equal(r.em.n, 0);
    feed(&r, 105, "{\"saga_id\":\"s1\",\"event\":\"SagaEnded\",\"step\":\"done\",\"service\":\"orders\"}", NULL);
    assert_int_equal(r.em.n, 1);
    assert_string_equal(r.em.tag, "saga.summary");
    char *s = summary(&r, 0);
    assert_string_equal(
        s, "{\"key\":\"s1\",\"outcome\":\"completed\",\"first_time\":\"1970-01-01T00:01:40.000000000Z\","
           "\"last_time\":\"1970-01-01T00:01:45.000000000Z\",\"duration\":5.0,\"event_count\":4,\"started\":true,"
           "\"failures\":0,\"compensations\":0,\"steps\":["
           "{\"name\":\"\",\"kind\":\"start\",\"service\":\"orders\",\"status\":\"\",\"time\":\"1970-01-01T00:01:40.000000000Z\"},"
           "{\"name\":\"reserve\",\"kind\":\"step\",\"service\":\"stock\",\"status\":\"OK\",\"time\":\"1970-01-01T00:01:41.000000000Z\"},"
           "{\"name\":\"done\",\"kind\":\"end\",\"service\":\"orders\",\"status\":\"\",\"time\":\"1970-01-01T00:01:45.000000000Z\"}],"
           "\"steps_dropped\":0,\"services\":[\"orders\",\"stock\"],\"trace_ids\":[\"t1\",\"t2\"]}");
    free(s);
    /* s2 is still open: flushed at shutdown as "open" */
    tick(&r, FILTER_TICK_SHUTDOWN);
    assert_int_equal(r.em.n, 2);
    s = summary(&r, 1);
    assert_contains(s, "\"key\":\"s2\",\"outcome\":\"open\"");
    free(s);
    uint64_t o, ev, su;
    agg_counts(r.f, &o, &ev, &su);
    assert_int_equal(o, 0);
    assert_int_equal(su, 2);
    run_free(&r);
}

static void test_failed_and_compensated(void **state)
{
    (void)state;
    run r;
    run_init(&r, CONDS);
    feed(&r, 1, "{\"saga_id\":\"f\",\"event\":\"SagaStarted\"}", NULL);
    feed(&r, 2, "{\"saga_id\":\"f\",\"event\":\"StepDone\",\"status\":\"FAILED\"}", NULL);
    feed(&r, 3, "{\"saga_id\":\"f\",\"event\":\"SagaEnded\"}", NULL);
    feed(&r, 1, "{\"saga_id\":\"c\",\"event\":\"SagaStarted\"}", NULL);
    feed(&r, 2, "{\"saga_id\":\"c\",\"event\":\"StepDone\",\"status\":\"ERROR\"}", NULL);
    feed(&r, 3, "{\"saga_id\":\"c\",\"event\":\"Compensate\",\"step\":\"refund\"}", NULL);
    feed(&r, 4, "{\"saga_id\":\"c\",\"event\":\"SagaEnded\"}", NULL);
    assert_int_equal(r.em.n, 2);
    char *s = summary(&r, 0);
    assert_contains(s, "\"key\":\"f\",\"outcome\":\"failed\"");
    assert_contains(s, "\"failures\":1,\"compensations\":0");
    assert_contains(s, "\"kind\":\"failure\"");
    free(s);
    s = summary(&r, 1);
    assert_contains(s, "\"key\":\"c\",\"outcome\":\"compensated\"");
    assert_contains(s, "{\"name\":\"refund\",\"kind\":\"compensation\"");
    free(s);
    run_free(&r);
}

static void test_end_on_failure(void **state)
{
    (void)state;
    run r;
    run_init(&r, CONDS "end_on_failure true\n");
    feed(&r, 1, "{\"saga_id\":\"f\",\"event\":\"SagaStarted\"}", NULL);
    feed(&r, 2, "{\"saga_id\":\"f\",\"event\":\"StepDone\",\"status\":\"FAILED\"}", NULL);
    assert_int_equal(r.em.n, 1);
    char *s = summary(&r, 0);
    assert_contains(s, "\"outcome\":\"failed\"");
    free(s);
    run_free(&r);
}

static void test_timeout(void **state)
{
    (void)state;
    run r;
    run_init(&r, CONDS "timeout 10s\n");
    fake_now = 1000;
    feed(&r, 1, "{\"saga_id\":\"a\",\"event\":\"SagaStarted\"}", NULL);
    fake_now = 1005;
    feed(&r, 2, "{\"saga_id\":\"b\",\"event\":\"SagaStarted\"}", NULL);
    fake_now = 1009;
    feed(&r, 3, "{\"saga_id\":\"a\",\"event\":\"StepX\"}", NULL); /* a is active again */
    fake_now = 1015;
    tick(&r, FILTER_TICK);
    assert_int_equal(r.em.n, 1);
    char *s = summary(&r, 0);
    assert_contains(s, "\"key\":\"b\",\"outcome\":\"timed_out\"");
    free(s);
    fake_now = 1019.5;
    tick(&r, FILTER_TICK);
    assert_int_equal(r.em.n, 2);
    s = summary(&r, 1);
    assert_contains(s, "\"key\":\"a\",\"outcome\":\"timed_out\"");
    assert_contains(s, "\"duration\":2.0,\"event_count\":2");
    free(s);
    /* a new event of a timed-out key opens a new saga */
    feed(&r, 30, "{\"saga_id\":\"a\",\"event\":\"SagaEnded\"}", NULL);
    assert_int_equal(r.em.n, 3);
    s = summary(&r, 2);
    assert_contains(s, "\"key\":\"a\",\"outcome\":\"completed\"");
    assert_contains(s, "\"event_count\":1,\"started\":false");
    free(s);
    run_free(&r);
}

static void test_max_open_evicts(void **state)
{
    (void)state;
    run r;
    run_init(&r, CONDS "max_open 50\n");
    char buf[128];
    for (int i = 0; i < 500; i++) {
        snprintf(buf, sizeof buf, "{\"saga_id\":\"k%d\",\"event\":\"SagaStarted\"}", i);
        feed(&r, (uint32_t)i, buf, NULL);
    }
    uint64_t o, ev, su;
    agg_counts(r.f, &o, &ev, &su);
    /* per shard the least recently active goes: the cap holds within one per shard */
    assert_true(o >= 50 && o <= 50 + 64);
    assert_int_equal(ev, 500 - o);
    assert_int_equal(r.em.n, ev);
    char *s = summary(&r, 0);
    assert_contains(s, "\"outcome\":\"evicted\"");
    free(s);
    run_free(&r);
}

static void test_steps_cap_and_defaults(void **state)
{
    (void)state;
    run r;
    /* no <step>: every event of a saga is a step */
    run_init(&r, "@type aggregate\nkey $.saga.id\nmax_steps 3\ntag sagas\nkey_name saga_id\n<end>\n key event\n pattern /end/\n</end>\n");
    for (int i = 0; i < 6; i++)
        feed(&r, (uint32_t)(10 - i), "{\"saga\":{\"id\":7},\"event\":\"x\"}", NULL); /* a numeric key */
    feed(&r, 20, "{\"saga\":{\"id\":7},\"event\":\"end\"}", NULL);
    assert_int_equal(r.em.n, 1);
    assert_string_equal(r.em.tag, "sagas");
    char *s = summary(&r, 0);
    assert_contains(s, "{\"saga_id\":\"7\",\"outcome\":\"completed\"");
    assert_contains(s, "\"first_time\":\"1970-01-01T00:00:05.000000000Z\"");
    assert_contains(s, "\"event_count\":7");
    assert_contains(s, "\"steps_dropped\":4");
    /* the first three kept, sorted by time */
    assert_contains(s, "\"time\":\"1970-01-01T00:00:08.000000000Z\"},{\"name\":\"\",\"kind\":\"step\",\"service\":\"\","
                       "\"status\":\"\",\"time\":\"1970-01-01T00:00:09.000000000Z\"}");
    free(s);
    /* our own summaries pass untouched */
    wbuf rec = J("{\"saga\":{\"id\":7}}");
    filter_call c = {.tag = "sagas", .tag_len = 5, .out = &r.out, .scratch = &r.scratch, .emit = &r.em};
    assert_int_equal(r.f->plugin->filter(r.f, &c, rec.data, rec.len), FILTER_KEEP);
    wbuf_free(&rec);
    uint64_t o, ev, su;
    agg_counts(r.f, &o, &ev, &su);
    assert_int_equal(o, 0);
    run_free(&r);
}

static void test_copy_key_by_trace(void **state)
{
    (void)state;
    run r;
    run_init(&r, CONDS "copy_key_by_trace true\n");
    char *m = NULL;
    feed(&r, 1, "{\"saga_id\":\"s9\",\"event\":\"SagaStarted\",\"trace_id\":\"abc\"}", &m);
    assert_null(m);
    assert_int_equal(feed(&r, 2, "{\"msg\":\"db slow\",\"trace\":{\"id\":\"abc\"},\"service\":\"db\"}", &m),
                     FILTER_MODIFY);
    assert_string_equal(m, "{\"msg\":\"db slow\",\"trace\":{\"id\":\"abc\"},\"service\":\"db\",\"saga_id\":\"s9\"}");
    free(m);
    /* unknown trace id: unchanged */
    assert_int_equal(feed(&r, 2, "{\"msg\":\"x\",\"trace_id\":\"zzz\"}", &m), FILTER_KEEP);
    feed(&r, 3, "{\"saga_id\":\"s9\",\"event\":\"SagaEnded\"}", NULL);
    char *s = summary(&r, 0);
    assert_contains(s, "\"event_count\":3");
    assert_contains(s, "\"services\":[\"db\"]");
    free(s);
    /* the saga is closed: its trace id no longer joins */
    assert_int_equal(feed(&r, 4, "{\"msg\":\"late\",\"trace_id\":\"abc\"}", &m), FILTER_KEEP);
    run_free(&r);
}

static void test_drop_events_and_malformed(void **state)
{
    (void)state;
    run r;
    run_init(&r, CONDS "drop_events true\n");
    assert_int_equal(feed(&r, 1, "{\"saga_id\":\"d\",\"event\":\"SagaStarted\"}", NULL), FILTER_DROP);
    assert_int_equal(feed(&r, 1, "{\"other\":1}", NULL), FILTER_KEEP);
    assert_int_equal(feed(&r, 1, "{\"saga_id\":null}", NULL), FILTER_KEEP);
    assert_int_equal(feed(&r, 1, "{\"saga_id\":\"\"}", NULL), FILTER_KEEP);
    /* odd values: maps as keys (their JSON), numbers as statuses, huge strings cut */
    feed(&r, 2, "{\"saga_id\":{\"a\":1},\"event\":\"StepA\",\"status\":500,\"step\":[1,2]}", NULL);
    char big[2000];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = 0;
    char rec[4200];
    snprintf(rec, sizeof rec, "{\"saga_id\":\"d\",\"event\":\"StepB\",\"step\":\"%s\",\"trace_id\":\"%s\"}", big, big);
    feed(&r, 3, rec, NULL);
    /* not a map at all */
    uint8_t junk[] = {0x92, 0x01, 0x02};
    filter_call c = {.tag = "app.x", .tag_len = 5, .out = &r.out, .scratch = &r.scratch, .emit = &r.em};
    assert_int_equal(r.f->plugin->filter(r.f, &c, junk, sizeof junk), FILTER_KEEP);
    uint8_t trunc[] = {0x81, 0xa7, 's', 'a', 'g', 'a', '_', 'i', 'd', 0xa5, 'a'};
    assert_int_equal(r.f->plugin->filter(r.f, &c, trunc, sizeof trunc), FILTER_KEEP);
    tick(&r, FILTER_TICK_SHUTDOWN);
    assert_int_equal(r.em.n, 2);
    char *s0 = summary(&r, 0), *s1 = summary(&r, 1);
    char *sm = strstr(s0, "{\\\"a\\\":1}") ? s0 : s1;
    char *sd = sm == s0 ? s1 : s0;
    assert_contains(sm, "\"status\":\"500\"");
    assert_contains(sm, "\"name\":\"[1,2]\"");
    assert_contains(sd, "\"trace_ids\":[]"); /* over 128 bytes: not kept */
    assert_true(strlen(sd) < 1000);         /* the step name cut at 256 */
    free(s0);
    free(s1);
    run_free(&r);
}

static void test_config_errors(void **state)
{
    (void)state;
    conf_errors errs = {0};
    assert_null(filter_from_body("**", "@type aggregate\ntag x\n", "t.conf", 0, &errs)); /* no key */
    assert_true(errs.n > 0);
    conf_errors_free(&errs);
    memset(&errs, 0, sizeof errs);
    assert_null(filter_from_body("**", "@type aggregate\nkey a\ntimeout 0\n", "t.conf", 0, &errs));
    conf_errors_free(&errs);
    memset(&errs, 0, sizeof errs);
    assert_null(filter_from_body("**", "@type aggregate\nkey a\n<end>\n key e\n pattern /(/\n</end>\n", "t.conf", 0, &errs));
    conf_errors_free(&errs);
    memset(&errs, 0, sizeof errs);
    assert_null(filter_from_body("**", "@type aggregate\nkey a\n<ends>\n</ends>\n", "t.conf", 0, &errs));
    conf_errors_free(&errs);
}

/* the same events in another order give the same summary (workers, connections) */
static void test_order_independent(void **state)
{
    (void)state;
    const char *ev[] = {
        "{\"saga_id\":\"o\",\"event\":\"SagaStarted\",\"service\":\"a\",\"trace_id\":\"t1\"}",
        "{\"saga_id\":\"o\",\"event\":\"StepOne\",\"step\":\"one\",\"service\":\"b\",\"trace_id\":\"t2\"}",
        "{\"saga_id\":\"o\",\"event\":\"StepTwo\",\"step\":\"two\",\"service\":\"c\",\"trace_id\":\"t3\"}",
        "{\"saga_id\":\"o\",\"event\":\"StepTwo\",\"step\":\"two-b\",\"service\":\"c\",\"trace_id\":\"t3\"}",
    };
    char *first = NULL;
    int orders[3][4] = {{0, 1, 2, 3}, {3, 2, 1, 0}, {2, 0, 3, 1}};
    for (int o = 0; o < 3; o++) {
        run r;
        run_init(&r, CONDS);
        for (int i = 0; i < 4; i++)
            feed(&r, (uint32_t)(10 + (orders[o][i] > 1 ? 2 : orders[o][i])), ev[orders[o][i]], NULL);
        feed(&r, 20, "{\"saga_id\":\"o\",\"event\":\"SagaEnded\"}", NULL);
        char *s = summary(&r, 0);
        if (!first)
            first = s;
        else {
            assert_string_equal(s, first);
            free(s);
        }
        run_free(&r);
    }
    free(first);
}

/* 4 threads feed interleaved events of 400 sagas (each saga's events split
 * over the threads, the ends after a barrier): the same summaries as one
 * thread (the state is shared by the workers, sharded by key) */
#define MT_SAGAS 400
#define MT_THREADS 4
typedef struct mt_arg {
    filter *f;
    int id;
    pthread_barrier_t *bar;
    filter_emit em;
} mt_arg;

static void mt_feed(filter *f, filter_emit *em, int saga, int ev, wbuf *out, wbuf *sc)
{
    char buf[256];
    if (ev == 99)
        snprintf(buf, sizeof buf, "{\"saga_id\":\"m%d\",\"event\":\"SagaEnded\",\"service\":\"s%d\"}", saga,
                 saga % 3);
    else
        snprintf(buf, sizeof buf,
                 "{\"saga_id\":\"m%d\",\"event\":\"%s\",\"step\":\"st%d\",\"service\":\"s%d\","
                 "\"trace_id\":\"t%d-%d\",\"status\":\"%s\"}",
                 saga, ev == 0 ? "SagaStarted" : "StepX", ev, (saga + ev) % 5, saga, ev / 2,
                 ev == 3 && saga % 4 == 0 ? "FAILED" : "OK");
    wbuf rec = J(buf);
    filter_call c = {.tag = "app.x", .tag_len = 5, .sec = (uint32_t)(100 + saga + ev), .out = out, .scratch = sc,
                     .emit = em};
    out->len = 0;
    f->plugin->filter(f, &c, rec.data, rec.len);
    wbuf_free(&rec);
}

static void *mt_thread(void *p)
{
    mt_arg *a = p;
    wbuf out = {0}, sc = {0};
    /* event e of saga s goes to thread (s + e) % MT_THREADS */
    for (int ev = 0; ev < 6; ev++)
        for (int s = 0; s < MT_SAGAS; s++)
            if ((s + ev) % MT_THREADS == a->id)
                mt_feed(a->f, &a->em, s, ev, &out, &sc);
    pthread_barrier_wait(a->bar);
    for (int s = 0; s < MT_SAGAS; s++)
        if (s % MT_THREADS == a->id)
            mt_feed(a->f, &a->em, s, 99, &out, &sc);
    wbuf_free(&out);
    wbuf_free(&sc);
    return NULL;
}

static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

static char **mt_summaries(run *r, filter_emit *ems, int n)
{
    char **v = calloc(MT_SAGAS, sizeof *v);
    int k = 0;
    for (int i = 0; i < n; i++) {
        r->em = ems[i];
        for (uint32_t j = 0; j < ems[i].n; j++)
            v[k++] = summary(r, j);
    }
    r->em = (filter_emit){0};
    assert_int_equal(k, MT_SAGAS);
    qsort(v, MT_SAGAS, sizeof *v, cmp_str);
    return v;
}

static void test_threads_same_result(void **state)
{
    (void)state;
    char **res[2];
    for (int mode = 0; mode < 2; mode++) {
        run r;
        run_init(&r, CONDS);
        pthread_barrier_t bar;
        int nt = mode ? MT_THREADS : 1;
        mt_arg args[MT_THREADS];
        pthread_t th[MT_THREADS];
        if (mode) {
            pthread_barrier_init(&bar, NULL, MT_THREADS);
            for (int i = 0; i < MT_THREADS; i++) {
                args[i] = (mt_arg){.f = r.f, .id = i, .bar = &bar};
                pthread_create(&th[i], NULL, mt_thread, &args[i]);
            }
            for (int i = 0; i < MT_THREADS; i++)
                pthread_join(th[i], NULL);
            pthread_barrier_destroy(&bar);
        } else {
            wbuf out = {0}, sc = {0};
            args[0] = (mt_arg){.f = r.f};
            for (int s = 0; s < MT_SAGAS; s++)
                for (int ev = 5; ev >= 0; ev--) /* another order */
                    mt_feed(r.f, &args[0].em, s, ev, &out, &sc);
            for (int s = 0; s < MT_SAGAS; s++)
                mt_feed(r.f, &args[0].em, s, 99, &out, &sc);
            wbuf_free(&out);
            wbuf_free(&sc);
        }
        filter_emit ems[MT_THREADS];
        for (int i = 0; i < nt; i++)
            ems[i] = args[i].em;
        res[mode] = mt_summaries(&r, ems, nt);
        for (int i = 0; i < nt; i++)
            wbuf_free(&ems[i].w);
        run_free(&r);
    }
    for (int i = 0; i < MT_SAGAS; i++) {
        assert_string_equal(res[0][i], res[1][i]);
        free(res[0][i]);
        free(res[1][i]);
    }
    free(res[0]);
    free(res[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_completed),        cmocka_unit_test(test_failed_and_compensated),
        cmocka_unit_test(test_end_on_failure),   cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_max_open_evicts),  cmocka_unit_test(test_steps_cap_and_defaults),
        cmocka_unit_test(test_copy_key_by_trace), cmocka_unit_test(test_drop_events_and_malformed),
        cmocka_unit_test(test_config_errors),    cmocka_unit_test(test_order_independent),
        cmocka_unit_test(test_threads_same_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
