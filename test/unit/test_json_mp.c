/*
 * Unit tests: lib/json_mp (JSON text to msgpack). Values are checked against
 * jansson's reading of the same text (filter_test_util.h's J); the cursor
 * walk is the one the <parse> json type does. The <parse> behaviour on top
 * (time key, types, key positions) is in test_parse.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/json.h"
#include "lib/json_mp.h"
#include "lib/mp.h"
#include "test/unit/filter_test_util.h"

/* json_mp(text) must give the bytes jansson's tree gives */
static void same_as_jansson(const char *text)
{
    wbuf want = J(text), got = {0};
    wbuf_add(&got, "P", 1); /* json_mp appends */
    if (json_mp(&got, (const uint8_t *)text, strlen(text)) != 0)
        fail_msg("json_mp refused %s", text);
    if (got.len - 1 != want.len || memcmp(got.data + 1, want.data, want.len) != 0)
        fail_msg("json_mp(%s) differs from jansson's", text);
    wbuf_free(&want);
    wbuf_free(&got);
}

static void test_values(void **st)
{
    static const char *const ok[] = {
        "0", "-0", "1", "-1", "127", "128", "-32", "-33", "255", "65536", "4294967296", "-2147483649",
        "9223372036854775807", "-9223372036854775808", "1.5", "-0.25", "1e3", "1E-3", "6.02e23",
        "true", "false", "null", "\"\"", "\"plain\"", "\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t\"",
        "\"\\u00e9\\u20ac\"", "\"\\ud83d\\ude00\"", "[]", "{}", "[1,[2,[3]],{\"a\":null}]",
        "  {\"a\" : 1 , \"b\" : [true, false] }  ", "{\"k\":\"0123456789012345678901234567890123\"}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        same_as_jansson(ok[i]);
    /* 16+ elements: the header grows from fix* to 16-bit when the count is known */
    char big[512];
    size_t n = 0;
    big[n++] = '[';
    for (int k = 0; k < 17; k++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s%d", k ? "," : "", k);
    big[n++] = ']';
    big[n] = 0;
    same_as_jansson(big);
}

static void test_strings_not_checked(void **st)
{
    /* bytes are kept as they are; a lone surrogate becomes U+FFFD */
    wbuf out = {0};
    const char *t = "\"\xff\\udc00\"";
    assert_int_equal(json_mp(&out, (const uint8_t *)t, strlen(t)), 0);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "\xa4\xff\xef\xbf\xbd", 5);
    wbuf_free(&out);
}

static void test_refused(void **st)
{
    static const char *const bad[] = {
        "", " ", "{", "[1,]", "{\"a\"}", "{\"a\":}", "{a:1}", "01", "1.", "-", "1e", "tru", "nul", "\"open",
        "\"tab\there\"", "\"\\x\"", "\"\\u12\"", "1 2", "{} x", "[1] ]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        wbuf out = {0};
        wbuf_add(&out, "P", 1);
        if (json_mp(&out, (const uint8_t *)bad[i], strlen(bad[i])) != -1)
            fail_msg("json_mp accepted '%s'", bad[i]);
        assert_int_equal(out.len, 1); /* left as it was */
        wbuf_free(&out);
    }
    /* nesting: JSON_MP_MAX_DEPTH levels below the top one, not more */
    char deep[2 * (JSON_MP_MAX_DEPTH + 2) + 1];
    for (int d = JSON_MP_MAX_DEPTH + 1; d <= JSON_MP_MAX_DEPTH + 2; d++) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        wbuf out = {0};
        assert_int_equal(json_mp(&out, (const uint8_t *)deep, 2 * (size_t)d), d <= JSON_MP_MAX_DEPTH + 1 ? 0 : -1);
        wbuf_free(&out);
    }
    /* out->max */
    wbuf small = {.max = 8};
    const char *t = "\"0123456789\"";
    assert_int_equal(json_mp(&small, (const uint8_t *)t, strlen(t)), -1);
    assert_int_equal(small.len, 0);
    wbuf_free(&small);
}

/* A top-level walk with the cursor, as the <parse> json type does it: the
 * pair "drop" is taken back, the value of "n" becomes nil through the
 * checked wbuf API (then the reservation is renewed). */
static int walk(wbuf *out, const char *text)
{
    json_mp_cursor j = {(const uint8_t *)text, (const uint8_t *)text + strlen(text), out};
    if (json_mp_reserve(&j))
        return -1;
    json_mp_ws(&j);
    if (j.p >= j.e || *j.p != '{')
        return -1;
    j.p++;
    size_t hoff = out->len++;
    uint32_t count = 0;
    json_mp_ws(&j);
    if (j.p < j.e && *j.p == '}') {
        j.p++;
    } else {
        for (;;) {
            size_t pair = out->len, key, klen;
            if (j.p >= j.e || *j.p != '"' || json_mp_string(&j, &key, &klen))
                return -1;
            json_mp_ws(&j);
            if (j.p >= j.e || *j.p != ':')
                return -1;
            j.p++;
            json_mp_ws(&j);
            size_t value = out->len;
            if (json_mp_value(&j, 1))
                return -1;
            if (klen == 4 && !memcmp(out->data + key, "drop", 4)) {
                out->len = pair;
            } else if (klen == 1 && out->data[key] == 'n') {
                out->len = value;
                if (mpw_nil(out) || json_mp_reserve(&j))
                    return -1;
                count++;
            } else {
                count++;
            }
            json_mp_ws(&j);
            if (j.p < j.e && *j.p == ',') {
                j.p++;
                json_mp_ws(&j);
                continue;
            }
            if (j.p < j.e && *j.p == '}') {
                j.p++;
                break;
            }
            return -1;
        }
    }
    json_mp_ws(&j);
    if (j.p != j.e)
        return -1;
    return json_mp_close(&j, hoff, count, 1);
}

/* Floats as Fluentd's JSON formatter writes them (Oj in compat mode): the
 * expected texts were printed by Ruby 3.1 with oj 3.13 (Oj.dump, mode
 * :compat) for these doubles, given by their bits. */
static void test_floats_as_fluentd(void **st)
{
    static const struct {
        uint64_t bits;
        const char *want;
    } cases[] = {
        {0x4341c37937e08000ULL, "10000000000000000.0"},
        {0x4376345785d8a000ULL, "100000000000000000.0"},
        {0x430c6bf526340000ULL, "1000000000000000.0"},
        {0x40fe240000000000ULL, "123456.0"},
        {0x3ee4f8b588e368f1ULL, "1.0e-05"},
        {0x3f1a36e2eb1c432dULL, "0.0001"},
        {0x3f50624dd2f1a9fcULL, "0.001"},
        {0x8000000000000000ULL, "0.0"},
        {0x0000000000000000ULL, "0.0"},
        {0x42dc12218377de66ULL, "123456789012345.6"},
        {0x0000000000000001ULL, "5.0e-324"},
        {0x3ff8000000000000ULL, "1.5"},
        {0x3fb999999999999aULL, "0.1"},
        {0x4059000000000000ULL, "100.0"},
        {0x4480f0cf064dd592ULL, "1.0e+22"},
        {0x7e37e43c8800759cULL, "1.0e+300"},
        {0x3df12e0be826d695ULL, "2.5e-10"},
        {0x4345ee2a2eb5a5c4ULL, "12345678901234568.0"},
        {0x4415af1d78b58c40ULL, "1.0e+20"},
        {0xc341c37937e08000ULL, "-10000000000000000.0"},
        {0x400921f9f01b866eULL, "3.14159"},
        {0x3fd5555555555555ULL, "0.3333333333333333"},
        {0xc004000000000000ULL, "-2.5"},
        {0x43dfeb3dd0676600ULL, "9200000000000000000.0"},
        {0x43e02207973f6440ULL, "9.3e+18"},
        {0x7fefffffffffffffULL, "1.7976931348623157e+308"},
        {0x0010000000000000ULL, "2.2250738585072014e-308"},
        {0x00000000000007e8ULL, "1.0e-320"},
        {0x3f201f31f46ed246ULL, "0.000123"},
        {0x4028800000000000ULL, "12.25"},
        {0xbf50624dd2f1a9fcULL, "-0.001"},
        {0xbf548e2b375de69aULL, "-0.0012545988115263752"},
        {0xbe67b9a70fe9e479ULL, "-4.419163878318005e-08"},
        {0x41495d0534397b71ULL, "3324426.4080042173"},
        {0xc36e38f4a3a10a6aULL, "-68054981357884240.0"},
        {0x42713a38f7192df8ULL, "1183860093330.873"},
        {0xba413ae69fa9bafcULL, "-4.349484070147205e-28"},
        {0x431a2e5bc40bcc84ULL, "1842330265121569.0"},
        {0xc1acc17364ccca95ULL, "-241220018.39998308"},
        {0x407132200b63821cULL, "275.13282336111456"},
        {0xc53925d0348753e2ULL, "-3.040171375808548e+25"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t b[9] = {0xcb};
        for (int k = 0; k < 8; k++)
            b[1 + k] = (uint8_t)(cases[i].bits >> (56 - 8 * k));
        wbuf w = {0};
        const uint8_t *p = b;
        assert_int_equal(jw_value(&w, &p, b + 9), 0);
        if (w.len != strlen(cases[i].want) || memcmp(w.data, cases[i].want, w.len))
            print_error("case %zu: got %.*s, want %s\n", i, (int)w.len, (const char *)w.data, cases[i].want);
        assert_int_equal(w.len, strlen(cases[i].want));
        assert_memory_equal(w.data, cases[i].want, w.len);
        wbuf_free(&w);
    }
}

static void test_cursor(void **st)
{
    const char *t = "{\"a\":[1,{\"drop\":2}],\"drop\":{\"x\":1},\"n\":\"text\",\"z\":true}";
    wbuf out = {0};
    wbuf_add(&out, "P", 1);
    assert_int_equal(walk(&out, t), 0);
    ASSERT_MP_JSON(out.data + 1, out.len - 1, "{\"a\":[1,{\"drop\":2}],\"n\":null,\"z\":true}");
    /* 16 pairs kept: the header grows to map16 when the count is known */
    char big[1024];
    size_t n = 0;
    big[n++] = '{';
    for (int k = 0; k < 18; k++)
        n += (size_t)snprintf(big + n, sizeof big - n, "%s\"%s%d\":%d", k ? "," : "", k < 2 ? "drop" : "k", k, k);
    big[n++] = '}';
    big[n] = 0;
    /* "drop0" and "drop1" are 5 bytes: kept, so 18 pairs */
    out.len = 0;
    assert_int_equal(walk(&out, big), 0);
    assert_int_equal(out.data[0], 0xde);
    assert_int_equal(mp_be16(out.data + 1), 18);
    wbuf want = J(big);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);
    wbuf_free(&want);
    wbuf_free(&out);
}

/* fmt_u64 / fmt_i64 against printf, at the edges and on a spread of values. */
static void test_fmt_int(void **st)
{
    static const uint64_t us[] = {0, 1, 9, 10, 99, 100, 4294967295u, 4294967296u, 9999999999999999999u,
                                  10000000000000000000u, UINT64_MAX};
    static const int64_t is[] = {0, -1, -9, -10, 1, INT64_MAX, INT64_MIN, INT64_MIN + 1, -4294967296};
    char got[24], want[32];
    for (size_t i = 0; i < sizeof us / sizeof us[0]; i++) {
        size_t n = fmt_u64(got, us[i]);
        snprintf(want, sizeof want, "%llu", (unsigned long long)us[i]);
        assert_int_equal(n, strlen(want));
        assert_memory_equal(got, want, n);
    }
    for (size_t i = 0; i < sizeof is / sizeof is[0]; i++) {
        size_t n = fmt_i64(got, is[i]);
        snprintf(want, sizeof want, "%lld", (long long)is[i]);
        assert_int_equal(n, strlen(want));
        assert_memory_equal(got, want, n);
    }
    uint64_t x = 88172645463325252ull; /* xorshift: 10,000 values of every length */
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t v = x >> (i % 64);
        size_t n = fmt_i64(got, (int64_t)v);
        snprintf(want, sizeof want, "%lld", (long long)(int64_t)v);
        assert_int_equal(n, strlen(want));
        assert_memory_equal(got, want, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_fmt_int),
        cmocka_unit_test(test_strings_not_checked),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_floats_as_fluentd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
