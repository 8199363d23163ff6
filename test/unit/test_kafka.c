/* Unit tests: the Kafka output's routing of a record (outputs/kafka/route.c):
 * topic, message key, partition key and partition, as fluent-plugin-kafka's
 * kafka2 chooses them; the ZooKeeper broker lookup; the AWS MSK IAM token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/batch.h"
#include "lib/sigv4.h"
#include "lib/wbuf.h"
#include "aggregator/kafka_conf.h"
#include "outputs/kafka/route.h"
#include "outputs/kafka/zk.h"

static kafka_keys defaults(void)
{
    /* the parameters' defaults (producer.c's table) */
    kafka_keys k = {.default_partition = -1, .topic_key = "topic", .message_key_key = "message_key", .partition_key_key = "partition_key",
                    .partition_key = "partition"};
    return k;
}

/* Route a record given as msgpack bytes, with tag "app.logs". */
static int route(const kafka_keys *k, const uint8_t *rec, size_t len, kafka_route *r, wbuf *scratch, char *why)
{
    entry e = {.tag = "app.logs", .tag_len = 8, .sec = 1700000000, .record = rec, .record_len = len};
    return kafka_route_of(k, &e, r, scratch, why, 256);
}

#define REC(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

static void test_topic_choice(void **st)
{
    kafka_keys k = defaults();
    kafka_route r;
    wbuf s = {0};
    char why[256];
    /* {"msg":"x"}: no topic key: the tag */
    assert_int_equal(route(&k, REC(0x81, 0xa3, 'm', 's', 'g', 0xa1, 'x'), &r, &s, why), 0);
    assert_string_equal(r.topic, "app.logs");
    assert_int_equal(r.has_topic, 0);
    /* default_topic beats the tag */
    k.default_topic = "fallback";
    assert_int_equal(route(&k, REC(0x81, 0xa3, 'm', 's', 'g', 0xa1, 'x'), &r, &s, why), 0);
    assert_string_equal(r.topic, "fallback");
    /* {"topic":"orders"} beats both */
    assert_int_equal(route(&k, REC(0x81, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa6, 'o', 'r', 'd', 'e', 'r', 's'), &r, &s, why),
                     0);
    assert_string_equal(r.topic, "orders");
    assert_int_equal(r.has_topic, 1);
    /* a non-string, nil or empty topic value: the fallback (but the key is there, for exclude_topic_key) */
    assert_int_equal(route(&k, REC(0x81, 0xa5, 't', 'o', 'p', 'i', 'c', 0x07), &r, &s, why), 0);
    assert_string_equal(r.topic, "fallback");
    assert_int_equal(r.has_topic, 1);
    assert_int_equal(route(&k, REC(0x81, 0xa5, 't', 'o', 'p', 'i', 'c', 0xc0), &r, &s, why), 0);
    assert_string_equal(r.topic, "fallback");
    assert_int_equal(route(&k, REC(0x81, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa0), &r, &s, why), 0);
    assert_string_equal(r.topic, "fallback");
    /* the first of a duplicated key counts */
    assert_int_equal(route(&k, REC(0x82, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'a', 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'b'),
                           &r, &s, why),
                     0);
    assert_string_equal(r.topic, "a");
    /* topic_key renamed */
    k.topic_key = "t";
    assert_int_equal(route(&k, REC(0x81, 0xa1, 't', 0xa2, 'z', 'z'), &r, &s, why), 0);
    assert_string_equal(r.topic, "zz");
    wbuf_free(&s);
}

static void test_topic_too_long(void **st)
{
    kafka_keys k = defaults();
    kafka_route r;
    wbuf s = {0}, rec = {0};
    char why[256];
    char name[300];
    memset(name, 'x', sizeof name);
    for (size_t n = 254; n <= 257; n++) {
        rec.len = 0;
        mpw_map(&rec, 1);
        mpw_str(&rec, "topic", 5);
        mpw_str(&rec, name, n);
        int rc = route(&k, rec.data, rec.len, &r, &s, why);
        if (n <= KAFKA_TOPIC_MAX) {
            assert_int_equal(rc, 0);
            assert_int_equal(strlen(r.topic), n);
        } else {
            assert_int_equal(rc, -1);
            assert_non_null(strstr(why, "is too long"));
        }
    }
    wbuf_free(&rec);
    wbuf_free(&s);
}

static void test_keys_and_partition(void **st)
{
    kafka_keys k = defaults();
    kafka_route r;
    wbuf s = {0}, rec = {0};
    char why[256];
    /* {"message_key":"user-1","partition_key":"p-7","partition":3} */
    mpw_map(&rec, 3);
    mpw_str(&rec, "message_key", 11);
    mpw_str(&rec, "user-1", 6);
    mpw_str(&rec, "partition_key", 13);
    mpw_str(&rec, "p-7", 3);
    mpw_str(&rec, "partition", 9);
    mpw_uint(&rec, 3);
    assert_int_equal(route(&k, rec.data, rec.len, &r, &s, why), 0);
    assert_int_equal(r.key_len, 6);
    assert_memory_equal(r.key, "user-1", 6);
    assert_int_equal(r.pkey_len, 3);
    assert_memory_equal(r.pkey, "p-7", 3);
    assert_int_equal(r.partition, 3);
    assert_true(r.has_key && r.has_pkey && r.has_partition && !r.has_topic);

    /* a numeric message key is its text; a numeric partition key is not a key */
    rec.len = 0;
    mpw_map(&rec, 2);
    mpw_str(&rec, "message_key", 11);
    mpw_int(&rec, 42);
    mpw_str(&rec, "partition_key", 13);
    mpw_int(&rec, 7);
    assert_int_equal(route(&k, rec.data, rec.len, &r, &s, why), 0);
    assert_int_equal(r.key_len, 2);
    assert_memory_equal(r.key, "42", 2);
    assert_null(r.pkey);
    assert_int_equal(r.partition, KAFKA_NO_PARTITION);

    /* partition: int32-encoded positive (Go's msgp), negative, too big, a string */
    struct {
        const uint8_t *b;
        size_t n;
        int32_t want;
    } parts[] = {
        {REC(0x81, 0xa9, 'p', 'a', 'r', 't', 'i', 't', 'i', 'o', 'n', 0xd2, 0, 0, 0, 5), 5},
        {REC(0x81, 0xa9, 'p', 'a', 'r', 't', 'i', 't', 'i', 'o', 'n', 0xff), KAFKA_NO_PARTITION},
        {REC(0x81, 0xa9, 'p', 'a', 'r', 't', 'i', 't', 'i', 'o', 'n', 0xce, 0x80, 0, 0, 0), KAFKA_NO_PARTITION},
        {REC(0x81, 0xa9, 'p', 'a', 'r', 't', 'i', 't', 'i', 'o', 'n', 0xa1, '2'), KAFKA_NO_PARTITION},
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        assert_int_equal(route(&k, parts[i].b, parts[i].n, &r, &s, why), 0);
        if (r.partition != parts[i].want)
            fail_msg("partition row %zu: %d, want %d", i, r.partition, parts[i].want);
        assert_int_equal(r.has_partition, 1);
    }

    /* default_message_key when the record has none; nothing when neither */
    assert_int_equal(route(&k, REC(0x80), &r, &s, why), 0);
    assert_null(r.key);
    k.default_message_key = "dflt";
    assert_int_equal(route(&k, REC(0x80), &r, &s, why), 0);
    assert_int_equal(r.key_len, 4);
    assert_memory_equal(r.key, "dflt", 4);
    /* keys inside nested values do not count; a non-map record routes by the defaults */
    assert_int_equal(route(&k, REC(0x81, 0xa1, 'x', 0x81, 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1, 'n'), &r, &s, why), 0);
    assert_string_equal(r.topic, "app.logs");
    assert_int_equal(route(&k, REC(0x93, 1, 2, 3), &r, &s, why), 0);
    assert_string_equal(r.topic, "app.logs");
    wbuf_free(&rec);
    wbuf_free(&s);
}

/* kafka2's `topic` (placeholders, wins over topic_key), default_partition_key, default_partition. */
static void test_topic_template_and_defaults(void **st)
{
    kafka_keys k = defaults();
    kafka_route r;
    wbuf s = {0};
    char why[256];
    k.topic = "logs.${tag[-1]}.${svc}";
    assert_int_equal(kafka_topic_compile(&k, why, sizeof why), 0);
    /* {"svc":"api","topic":"x"} */
    assert_int_equal(route(&k, REC(0x82, 0xa3, 's', 'v', 'c', 0xa3, 'a', 'p', 'i', 0xa5, 't', 'o', 'p', 'i', 'c', 0xa1,
                                   'x'),
                           &r, &s, why),
                     0);
    assert_string_equal(r.topic, "logs.logs.api");
    assert_int_equal(r.has_topic, 1);
    /* a record without the placeholder's key: an error naming it */
    assert_int_equal(route(&k, REC(0x80), &r, &s, why), -1);
    assert_string_equal(why, "record has no value for ${svc} in the topic");
    kafka_topic_free(&k);
    k.topic = "${tag}";
    assert_int_equal(kafka_topic_compile(&k, why, sizeof why), 0);
    assert_int_equal(route(&k, REC(0x80), &r, &s, why), 0);
    assert_string_equal(r.topic, "app.logs");
    kafka_topic_free(&k);
    k.topic = "a-${tag[x]}";
    assert_int_equal(kafka_topic_compile(&k, why, sizeof why), -1);
    kafka_topic_free(&k);
    k.topic = NULL;
    /* defaults when the record has neither */
    k.default_partition_key = "pk";
    k.default_partition = 3;
    assert_int_equal(route(&k, REC(0x80), &r, &s, why), 0);
    assert_int_equal(r.partition, 3);
    assert_int_equal(r.pkey_len, 2);
    assert_memory_equal(r.pkey, "pk", 2);
    /* {"partition":1,"partition_key":"z"}: the record's */
    assert_int_equal(route(&k, REC(0x82, 0xa9, 'p', 'a', 'r', 't', 'i', 't', 'i', 'o', 'n', 0x01, 0xad, 'p', 'a', 'r',
                                   't', 'i', 't', 'i', 'o', 'n', '_', 'k', 'e', 'y', 0xa1, 'z'),
                           &r, &s, why),
                     0);
    assert_int_equal(r.partition, 1);
    assert_memory_equal(r.pkey, "z", 1);
    wbuf_free(&s);
}

/* A broker's ZooKeeper registration -> the address for a security protocol (zk.c). */
static void test_zk_broker_address(void **st)
{
    static const struct {
        const char *json, *proto, *want; /* want NULL: none */
    } cases[] = {
        /* what Kafka 3.x writes with one PLAINTEXT listener */
        {"{\"listener_security_protocol_map\":{\"PLAINTEXT\":\"PLAINTEXT\"},\"endpoints\":[\"PLAINTEXT://b1:9092\"],"
         "\"jmx_port\":-1,\"host\":\"b1\",\"timestamp\":\"1\",\"port\":9092,\"version\":5}",
         "plaintext", "b1:9092"},
        /* named listeners: the one that maps to the protocol */
        {"{\"listener_security_protocol_map\":{\"INTERNAL\":\"PLAINTEXT\",\"EXTERNAL\":\"SSL\"},"
         "\"endpoints\":[\"INTERNAL://10.0.0.1:9092\",\"EXTERNAL://kafka.example:9093\"],\"host\":null,\"port\":-1}",
         "ssl", "kafka.example:9093"},
        {"{\"listener_security_protocol_map\":{\"INTERNAL\":\"PLAINTEXT\",\"EXTERNAL\":\"SSL\"},"
         "\"endpoints\":[\"INTERNAL://10.0.0.1:9092\",\"EXTERNAL://kafka.example:9093\"],\"host\":null,\"port\":-1}",
         "PLAINTEXT", "10.0.0.1:9092"},
        /* no SASL_SSL endpoint: none, not the PLAINTEXT host:port */
        {"{\"endpoints\":[\"PLAINTEXT://b1:9092\"],\"host\":\"b1\",\"port\":9092}", "sasl_ssl", NULL},
        /* an old registration without endpoints: host:port for PLAINTEXT */
        {"{\"host\":\"old\",\"port\":9092,\"version\":1}", "plaintext", "old:9092"},
        {"not json", "plaintext", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        wbuf out = {0};
        int rc = zk_broker_address((const uint8_t *)cases[i].json, strlen(cases[i].json), cases[i].proto, &out);
        if (!cases[i].want) {
            if (rc != -1)
                fail_msg("case %zu: got %.*s, want none", i, (int)out.len, (const char *)out.data);
        } else if (rc != 0 || out.len != strlen(cases[i].want) || memcmp(out.data, cases[i].want, out.len)) {
            fail_msg("case %zu: rc %d, got '%.*s', want '%s'", i, rc, (int)out.len, out.data ? (const char *)out.data : "",
                     cases[i].want);
        }
        wbuf_free(&out);
    }
}

/* The AWS MSK IAM token (aggregator/kafka_conf.c, lib/sigv4.c) against
 * tokens made by AWS's own signer code: botocore 1.44.8's SigV4QueryAuth,
 * used the way aws-msk-iam-sasl-signer-python does (GET
 * https://kafka.REGION.amazonaws.com/?Action=kafka-cluster:Connect, 900 s,
 * User-Agent appended after signing, base64url without padding), its clock
 * fixed at 2026-12-03T14:05:09Z. The second secret has characters that
 * base64 and URLs treat specially. */
static void test_msk_iam_token(void **st)
{
    static const struct {
        const char *key, *secret, *region, *url_sig, *token;
    } cases[] = {
        {"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1",
         "458abf3f2561246250be308de3e1cb422d54e616da419572a7a5de7a42946c10",
         "aHR0cHM6Ly9rYWZrYS51cy1lYXN0LTEuYW1hem9uYXdzLmNvbS8_QWN0aW9uPWthZmthLWNsdXN0ZXIlM0FDb25uZWN0JlgtQW16LUFsZ29y"
         "aXRobT1BV1M0LUhNQUMtU0hBMjU2JlgtQW16LUNyZWRlbnRpYWw9QUtJQUlPU0ZPRE5ON0VYQU1QTEUlMkYyMDI2MTIwMyUyRnVzLWVhc3Qt"
         "MSUyRmthZmthLWNsdXN0ZXIlMkZhd3M0X3JlcXVlc3QmWC1BbXotRGF0ZT0yMDI2MTIwM1QxNDA1MDlaJlgtQW16LUV4cGlyZXM9OTAwJlgt"
         "QW16LVNpZ25lZEhlYWRlcnM9aG9zdCZYLUFtei1TaWduYXR1cmU9NDU4YWJmM2YyNTYxMjQ2MjUwYmUzMDhkZTNlMWNiNDIyZDU0ZTYxNmRh"
         "NDE5NTcyYTdhNWRlN2E0Mjk0NmMxMCZVc2VyLUFnZW50PXdlaXIlMkZ0ZXN0"},
        {"AKIDWEIRTEST", "s3cr3t+/=~key", "eu-central-1",
         "8f59272dad6bea3a4d3ec28b3028dacf0e5d8937549cc6b6cc4a671c0bbfc9a8",
         "aHR0cHM6Ly9rYWZrYS5ldS1jZW50cmFsLTEuYW1hem9uYXdzLmNvbS8_QWN0aW9uPWthZmthLWNsdXN0ZXIlM0FDb25uZWN0JlgtQW16LUFs"
         "Z29yaXRobT1BV1M0LUhNQUMtU0hBMjU2JlgtQW16LUNyZWRlbnRpYWw9QUtJRFdFSVJURVNUJTJGMjAyNjEyMDMlMkZldS1jZW50cmFsLTEl"
         "MkZrYWZrYS1jbHVzdGVyJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyNjEyMDNUMTQwNTA5WiZYLUFtei1FeHBpcmVzPTkwMCZYLUFt"
         "ei1TaWduZWRIZWFkZXJzPWhvc3QmWC1BbXotU2lnbmF0dXJlPThmNTkyNzJkYWQ2YmVhM2E0ZDNlYzI4YjMwMjhkYWNmMGU1ZDg5Mzc1NDlj"
         "YzZiNmNjNGE2NzFjMGJiZmM5YTgmVXNlci1BZ2VudD13ZWlyJTJGdGVzdA"},
    };
    const time_t when = 1796306709; /* 2026-12-03T14:05:09Z */
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        wbuf tok = {0};
        int64_t expiry = 0;
        assert_int_equal(kafka_msk_iam_token(&tok, &expiry, cases[i].key, cases[i].secret, cases[i].region, when,
                                             "weir/test"),
                         0);
        assert_string_equal((const char *)tok.data, cases[i].token);
        assert_int_equal(expiry, (int64_t)(when + 900) * 1000);
        wbuf_free(&tok);

        /* the signature alone, from the URL: a wrong secret changes it */
        char host[64];
        snprintf(host, sizeof host, "kafka.%s.amazonaws.com", cases[i].region);
        static const char *const params[] = {"Action", "kafka-cluster:Connect", NULL};
        sigv4_presign p = {.host = host, .service = "kafka-cluster", .region = cases[i].region,
                           .key_id = cases[i].key, .secret = cases[i].secret, .params = params, .now = when,
                           .expires = 900};
        wbuf url = {0};
        assert_int_equal(sigv4_presign_url(&url, &p), 0);
        wbuf_addc(&url, 0);
        const char *sig = strstr((const char *)url.data, "&X-Amz-Signature=");
        assert_non_null(sig);
        assert_string_equal(sig + 17, cases[i].url_sig); /* no User-Agent: the URL ends with the signature */
        url.len = 0;
        p.secret = "not-the-secret";
        assert_int_equal(sigv4_presign_url(&url, &p), 0);
        wbuf_addc(&url, 0);
        assert_null(strstr((const char *)url.data, cases[i].url_sig));
        wbuf_free(&url);
    }
    /* base64url without padding, all three tail lengths */
    static const char *const b64[][2] = {{"", ""}, {"f", "Zg"}, {"fo", "Zm8"}, {"foo", "Zm9v"}, {"\xfb\xff", "-_8"}};
    for (size_t i = 0; i < sizeof b64 / sizeof *b64; i++) {
        wbuf b = {0};
        assert_int_equal(base64url_nopad(&b, b64[i][0], strlen(b64[i][0])), 0);
        assert_int_equal(b.len, strlen(b64[i][1]));
        assert_memory_equal(b.data ? (const char *)b.data : "", b64[i][1], b.len);
        wbuf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topic_choice),
        cmocka_unit_test(test_topic_too_long),
        cmocka_unit_test(test_keys_and_partition),
        cmocka_unit_test(test_topic_template_and_defaults),
        cmocka_unit_test(test_zk_broker_address),
        cmocka_unit_test(test_msk_iam_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
