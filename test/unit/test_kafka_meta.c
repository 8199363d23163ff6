/* Unit tests: the kafka source's metadata and DLQ labelling
 * (aggregator/inputs/kafka_meta.c): topic-name patterns, header values as
 * retry counts, which wins, and the keys written into records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "aggregator/inputs/kafka_meta.h"
#include "filter_test_util.h"

static int match(const char *pat, const char *topic, int64_t *n, char *base)
{
    const char *b = NULL;
    size_t bl = 0;
    int rc = kmeta_pattern_match(pat, topic, strlen(topic), n, &b, &bl);
    if (rc && base)
        snprintf(base, 256, "%.*s", (int)bl, b ? b : "");
    return rc;
}

static void test_topic_patterns(void **st)
{
    int64_t n;
    char base[256];
    assert_int_equal(match("<topic>.retry.<N>", "orders.retry.3", &n, base), 1);
    assert_int_equal(n, 3);
    assert_string_equal(base, "orders");
    assert_int_equal(match("<topic>.retry.<N>", "orders.retry.12", &n, base), 1);
    assert_int_equal(n, 12);
    /* the longest <topic>: a retry topic of a retry topic */
    assert_int_equal(match("<topic>.retry.<N>", "a.retry.1.retry.2", &n, base), 1);
    assert_int_equal(n, 2);
    assert_string_equal(base, "a.retry.1");
    /* dots in the topic */
    assert_int_equal(match("<topic>.retry.<N>", "app.orders.v2.retry.0", &n, base), 1);
    assert_int_equal(n, 0);
    assert_string_equal(base, "app.orders.v2");
    /* not matching: no digits, text after them, an empty <topic>, another separator */
    assert_int_equal(match("<topic>.retry.<N>", "orders.retry.", &n, base), 0);
    assert_int_equal(match("<topic>.retry.<N>", "orders.retry.x", &n, base), 0);
    assert_int_equal(match("<topic>.retry.<N>", "orders.retry.3a", &n, base), 0);
    assert_int_equal(match("<topic>.retry.<N>", ".retry.3", &n, base), 0);
    assert_int_equal(match("<topic>.retry.<N>", "orders-retry-3", &n, base), 0);
    assert_int_equal(match("<topic>.retry.<N>", "orders", &n, base), 0);
    /* more digits than an int64 holds: no match */
    assert_int_equal(match("<topic>.retry.<N>", "o.retry.1234567890123456789", &n, base), 0);
    /* dlq: no <N> */
    assert_int_equal(match("<topic>.dlq", "orders.dlq", &n, base), 1);
    assert_int_equal(n, -1);
    assert_string_equal(base, "orders");
    assert_int_equal(match("<topic>.dlq", "orders.dlq.x", &n, base), 0);
    assert_int_equal(match("<topic>.dlq", "orders.DLQ", &n, base), 0);
    /* Spring Kafka's forms; <N> first; no <topic> */
    assert_int_equal(match("<topic>-retry-<N>", "pay-retry-2", &n, base), 1);
    assert_int_equal(n, 2);
    assert_int_equal(match("<topic>-dlt", "pay-dlt", &n, base), 1);
    assert_int_equal(match("retry<N>.<topic>", "retry5.pay", &n, base), 1);
    assert_int_equal(n, 5);
    assert_string_equal(base, "pay");
    assert_int_equal(match("dead-letters", "dead-letters", &n, base), 1);
    assert_int_equal(n, -1);
    assert_int_equal(match("dead-letters", "dead-letters2", &n, base), 0);
}

static void test_pattern_check(void **st)
{
    char why[256];
    assert_int_equal(kmeta_pattern_check("<topic>.retry.<N>", why, sizeof why), 0);
    assert_int_equal(kmeta_pattern_check("<topic>.dlq", why, sizeof why), 0);
    assert_int_equal(kmeta_pattern_check("dlq", why, sizeof why), 0);
    assert_int_equal(kmeta_pattern_check("<topic><N>", why, sizeof why), -1);
    assert_non_null(strstr(why, "separated"));
    assert_int_equal(kmeta_pattern_check("<topic>.<topic>", why, sizeof why), -1);
    assert_non_null(strstr(why, "twice"));
    assert_int_equal(kmeta_pattern_check("<N>.x.<N>", why, sizeof why), -1);
    assert_int_equal(kmeta_pattern_check("<topic>", why, sizeof why), -1);
    assert_non_null(strstr(why, "literal"));
}

static void test_header_count(void **st)
{
    int64_t n = -5;
    assert_int_equal(kmeta_header_count("3", 1, &n), 1);
    assert_int_equal(n, 3);
    assert_int_equal(kmeta_header_count(" 17\r\n", 5, &n), 1);
    assert_int_equal(n, 17);
    assert_int_equal(kmeta_header_count("0", 1, &n), 1);
    assert_int_equal(n, 0);
    /* 4 and 8 bytes: big-endian integers (Spring Kafka's attempts header) */
    assert_int_equal(kmeta_header_count((const uint8_t[]){0, 0, 0, 2}, 4, &n), 1);
    assert_int_equal(n, 2);
    assert_int_equal(kmeta_header_count((const uint8_t[]){0, 0, 1, 0}, 4, &n), 1);
    assert_int_equal(n, 256);
    assert_int_equal(kmeta_header_count((const uint8_t[]){0, 0, 0, 0, 0, 0, 0, 9}, 8, &n), 1);
    assert_int_equal(n, 9);
    /* four ASCII digits are decimal text first */
    assert_int_equal(kmeta_header_count("1234", 4, &n), 1);
    assert_int_equal(n, 1234);
    /* neither */
    n = -5;
    assert_int_equal(kmeta_header_count("abc", 3, &n), 0);
    assert_int_equal(kmeta_header_count("many", 4, &n), 0); /* printable: text, not a 4-byte integer */
    assert_int_equal(kmeta_header_count("-1", 2, &n), 0);
    assert_int_equal(kmeta_header_count("", 0, &n), 0);
    assert_int_equal(kmeta_header_count(NULL, 0, &n), 0);
    assert_int_equal(kmeta_header_count((const uint8_t[]){0x80, 0, 0, 0, 0, 0, 0, 0}, 8, &n), 0);
    assert_int_equal(n, -5);
}

/* A kmeta from parameter text, as the source's create does. */
typedef struct tconf {
    kmeta_conf meta;
} tconf;

typedef struct fixture {
    conf_node *root;
    tconf c;
    kmeta m;
} fixture;

static const conf_spec spec[] = {KAFKA_META_ROWS(tconf, meta), {NULL, 0, NULL, 0, 0, NULL, NULL}};

static int setup_meta(fixture *f, const char *params)
{
    char text[1024];
    snprintf(text, sizeof text, "<source>\n%s\n</source>\n", params);
    conf_errors errs = {0};
    f->root = conf_parse_string(text, "t.conf", &errs);
    assert_non_null(f->root);
    memset(&f->c, 0, sizeof f->c);
    int rc = conf_bind(f->root->children[0], spec, &f->c, &errs);
    if (!rc)
        rc = kmeta_configure(&f->m, &f->c.meta, "grp", f->root->children[0], &errs);
    for (size_t i = 0; rc && i < errs.n; i++)
        print_message("%s\n", errs.msgs[i]);
    conf_errors_free(&errs);
    return rc;
}

static void teardown_meta(fixture *f)
{
    kmeta_free(&f->m);
    conf_unbind(spec, &f->c);
    conf_free(f->root);
}

static void test_retry_of_precedence(void **st)
{
    fixture f;
    assert_int_equal(setup_meta(&f, "retry_count_key rc\nretry_count_header x-retry-count,retry_count"), 0);
    rd_kafka_headers_t *hs = rd_kafka_headers_new(4);
    int64_t c;
    int dlq;
    /* the topic alone */
    kmeta_retry_of(&f.m, "orders.retry.2", NULL, &c, &dlq);
    assert_int_equal(c, 2);
    assert_int_equal(dlq, 0);
    kmeta_retry_of(&f.m, "orders", NULL, &c, &dlq);
    assert_int_equal(c, 0);
    assert_int_equal(dlq, 0);
    kmeta_retry_of(&f.m, "orders.dlq", NULL, &c, &dlq);
    assert_int_equal(c, 0);
    assert_int_equal(dlq, 1);
    /* a header beats the topic; the last occurrence of a header; the first header name listed */
    rd_kafka_header_add(hs, "retry_count", -1, "7", 1);
    kmeta_retry_of(&f.m, "orders.retry.2", hs, &c, &dlq);
    assert_int_equal(c, 7);
    rd_kafka_header_add(hs, "retry_count", -1, "8", 1);
    kmeta_retry_of(&f.m, "orders.retry.2", hs, &c, &dlq);
    assert_int_equal(c, 8);
    rd_kafka_header_add(hs, "x-retry-count", -1, "4", 1);
    kmeta_retry_of(&f.m, "orders.dlq", hs, &c, &dlq);
    assert_int_equal(c, 4);
    assert_int_equal(dlq, 1);
    rd_kafka_headers_destroy(hs);
    /* a header that is no number: the topic's */
    hs = rd_kafka_headers_new(1);
    rd_kafka_header_add(hs, "retry_count", -1, "many", 4);
    kmeta_retry_of(&f.m, "orders.retry.5", hs, &c, &dlq);
    assert_int_equal(c, 5);
    rd_kafka_headers_destroy(hs);
    teardown_meta(&f);
}

static void test_apply(void **st)
{
    fixture f;
    assert_int_equal(setup_meta(&f, "decorate_events extended\nmetadata_key $.@metadata.kafka\n"
                                    "retry_count_key $.event.retry_count\ndlq_topic_pattern <topic>.dlq,<topic>-dlt"),
                     0);
    rd_kafka_headers_t *hs = rd_kafka_headers_new(2);
    rd_kafka_header_add(hs, "x-retry-count", -1, "3", 1);
    rd_kafka_header_add(hs, "trace", -1, "abc", 3);
    kmeta_msg msg = {.topic = "pay-dlt", .partition = 2, .offset = 41, .key = "k1", .key_len = 2,
                     .timestamp = 1700000000123, .headers = hs};
    wbuf rec = J("{\"msg\":\"x\",\"event\":{\"id\":9}}"), tmp = {0};
    assert_int_equal(kmeta_apply(&f.m, &msg, &rec, &tmp), 0);
    ASSERT_MP_JSON(rec.data, rec.len,
                   "{\"msg\":\"x\",\"event\":{\"id\":9,\"retry_count\":3,\"dlq\":true},\"@metadata\":{\"kafka\":"
                   "{\"topic\":\"pay-dlt\",\"partition\":2,\"offset\":41,\"key\":\"k1\",\"timestamp\":1700000000123,"
                   "\"consumer_group\":\"grp\",\"headers\":{\"x-retry-count\":\"3\",\"trace\":\"abc\"}}}}");
    /* no key, no timestamp, no headers; not a retry topic */
    msg = (kmeta_msg){.topic = "pay", .partition = 0, .offset = 0, .timestamp = -1};
    rec.len = 0;
    wbuf_free(&rec);
    rec = J("{}");
    assert_int_equal(kmeta_apply(&f.m, &msg, &rec, &tmp), 0);
    ASSERT_MP_JSON(rec.data, rec.len,
                   "{\"@metadata\":{\"kafka\":{\"topic\":\"pay\",\"partition\":0,\"offset\":0,\"key\":null,"
                   "\"timestamp\":null,\"consumer_group\":\"grp\",\"headers\":{}}},\"event\":{\"retry_count\":0,"
                   "\"dlq\":false}}");
    rd_kafka_headers_destroy(hs);
    wbuf_free(&rec);
    wbuf_free(&tmp);
    teardown_meta(&f);
    /* basic: no headers; a top-level key; dlq_key elsewhere */
    assert_int_equal(setup_meta(&f, "decorate_events true\nretry_count_key retries\ndlq_key $.x.dead"), 0);
    msg = (kmeta_msg){.topic = "t.retry.1", .partition = 1, .offset = 5, .timestamp = 7};
    rec = J("{\"a\":1}");
    assert_int_equal(kmeta_apply(&f.m, &msg, &rec, &tmp), 0);
    ASSERT_MP_JSON(rec.data, rec.len,
                   "{\"a\":1,\"kafka\":{\"topic\":\"t.retry.1\",\"partition\":1,\"offset\":5,\"key\":null,"
                   "\"timestamp\":7,\"consumer_group\":\"grp\"},\"retries\":1,\"x\":{\"dead\":false}}");
    wbuf_free(&rec);
    wbuf_free(&tmp);
    teardown_meta(&f);
}

static void test_configure_errors(void **st)
{
    fixture f;
    assert_int_equal(setup_meta(&f, "decorate_events sometimes"), -1);
    conf_free(f.root);
    conf_unbind(spec, &f.c);
    assert_int_equal(setup_meta(&f, "retry_count_key $.a[0]"), -1);
    conf_free(f.root);
    conf_unbind(spec, &f.c);
    assert_int_equal(setup_meta(&f, "dlq_key d"), -1);
    conf_free(f.root);
    conf_unbind(spec, &f.c);
    assert_int_equal(setup_meta(&f, "retry_count_key r\nretry_topic_pattern <topic>"), -1);
    conf_free(f.root);
    conf_unbind(spec, &f.c);
    /* off by default */
    assert_int_equal(setup_meta(&f, ""), 0);
    assert_int_equal(kmeta_active(&f.m), 0);
    teardown_meta(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_patterns),      cmocka_unit_test(test_pattern_check),
        cmocka_unit_test(test_header_count),        cmocka_unit_test(test_retry_of_precedence),
        cmocka_unit_test(test_apply),               cmocka_unit_test(test_configure_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
