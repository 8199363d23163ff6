/* Unit tests: the record code (aggregator/record.c, record_path.c, record_text.c, record_edit.c): record
 * accessors, values as text, msgpack record rewriting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "aggregator/record.h"
#include "filter_test_util.h"

/* ---- accessors ------------------------------------------------------------------------ */

static char *lookup_json(const char *rec_json, const char *path)
{
    wbuf r = J(rec_json);
    rec_path p;
    char err[256] = "";
    if (rec_path_compile(&p, path, err, sizeof err) != 0) {
        wbuf_free(&r);
        print_error("compile %s: %s\n", path, err);
        return strdup("<compile error>");
    }
    size_t vl;
    const uint8_t *v = rec_lookup(r.data, r.len, &p, &vl);
    char *s = v ? M2J(v, vl) : strdup("<missing>");
    rec_path_free(&p);
    wbuf_free(&r);
    return s;
}

#define LOOKUP(rec, path, want)                                                                                      \
    do {                                                                                                             \
        char *s_ = lookup_json(rec, path);                                                                           \
        assert_string_equal(s_, want);                                                                               \
        free(s_);                                                                                                    \
    } while (0)

static void test_path_forms(void **st)
{
    const char *rec = "{\"log\":\"hi\",\"a.b\":1,\"kubernetes\":{\"namespace_name\":\"ns\",\"labels\":"
                      "{\"app.kubernetes.io/name\":\"web\",\"app\":\"x\"}},\"items\":[{\"name\":\"n0\"},{\"name\":\"n1\"}],"
                      "\"m\":[[1,2],[3,4]]}";
    LOOKUP(rec, "log", "\"hi\"");
    LOOKUP(rec, "a.b", "1"); /* a plain key may contain dots */
    LOOKUP(rec, "$.log", "\"hi\"");
    LOOKUP(rec, "$.kubernetes.namespace_name", "\"ns\"");
    LOOKUP(rec, "$['kubernetes']['labels']['app.kubernetes.io/name']", "\"web\"");
    LOOKUP(rec, "$[\"kubernetes\"][\"labels\"][\"app\"]", "\"x\"");
    LOOKUP(rec, "$['a.b']", "1");
    LOOKUP(rec, "$.items[0].name", "\"n0\"");
    LOOKUP(rec, "$.items[1].name", "\"n1\"");
    LOOKUP(rec, "$.items[-1].name", "\"n1\"");
    LOOKUP(rec, "$.m[1][0]", "3");
    LOOKUP(rec, "$['m'][0][1]", "2");
    LOOKUP(rec, "$.kubernetes", "{\"namespace_name\":\"ns\",\"labels\":{\"app.kubernetes.io/name\":\"web\",\"app\":\"x\"}}");
    /* misses: absent keys, index out of range, type mismatch */
    LOOKUP(rec, "$.nope", "<missing>");
    LOOKUP(rec, "$.items[2].name", "<missing>");
    LOOKUP(rec, "$.items[-3]", "<missing>");
    LOOKUP(rec, "$.log.x", "<missing>");
    LOOKUP(rec, "$.kubernetes[0]", "<missing>");
    LOOKUP(rec, "$.items.name", "<missing>");
    /* duplicate keys (jansson cannot write them): the first one is seen */
    wbuf d = {0};
    mpw_map(&d, 2);
    mpw_str(&d, "k", 1);
    mpw_int(&d, 1);
    mpw_str(&d, "k", 1);
    mpw_int(&d, 2);
    size_t vl;
    const uint8_t *v = rec_get(d.data, d.len, "k", 1, &vl);
    assert_non_null(v);
    assert_int_equal(*v, 1);
    wbuf_free(&d);
}

static void expect_compile_error(const char *path, const char *want)
{
    rec_path p;
    char err[256] = "";
    assert_int_equal(rec_path_compile(&p, path, err, sizeof err), -1);
    assert_string_equal(err, want);
}

static void test_path_errors(void **st)
{
    expect_compile_error("$.", "empty keys in dot notation");
    expect_compile_error("$...", "empty keys in dot notation");
    expect_compile_error("$.a b", "whitespace character is not allowed in dot notation. Use bracket notation: a b");
    expect_compile_error("$.a[0", "'[' found but ']' not found. Invalid syntax: $.a[0");
    expect_compile_error("$.a[]", "missing array index in '[]'. Invalid syntax: $.a[]");
    expect_compile_error("$.a[0]x", "found more characters after ']'. Invalid syntax: $.a[0]x");
    expect_compile_error("$.a[x]", "invalid array index 'x'");
    expect_compile_error("$['a\"]", "Mismatched quotes. Invalid syntax: $['a\"]");
    expect_compile_error("$['a", "Incomplete bracket. Invalid syntax: $['a");
    expect_compile_error("$[0", "'[' found but ']' not found. Invalid syntax: $[0");
    expect_compile_error("$['a']x", "found more characters after ']'. Invalid syntax: $['a']x");
    /* Fluentd accepts these */
    rec_path p;
    char err[64];
    assert_int_equal(rec_path_compile(&p, "$.a.", err, sizeof err), 0); /* trailing dot dropped */
    assert_int_equal(p.n, 1);
    assert_string_equal(p.steps[0].key, "a");
    assert_string_equal(p.text, "$.a.");
    rec_path_free(&p);
    assert_int_equal(rec_path_compile(&p, "$[0x1]", err, sizeof err), 0); /* Ruby's Integer() */
    assert_null(p.steps[0].key);
    assert_int_equal(p.steps[0].index, 1);
    rec_path_free(&p);
    assert_int_equal(rec_path_compile(&p, "", err, sizeof err), 0); /* the empty key */
    assert_int_equal(p.n, 1);
    assert_int_equal(p.steps[0].key_len, 0);
    rec_path_free(&p);
}

static void test_rec_get(void **st)
{
    wbuf r = J("{\"a\":1,\"bb\":\"x\",\"c\":null}");
    size_t vl;
    const uint8_t *v = rec_get(r.data, r.len, "bb", 2, &vl);
    assert_non_null(v);
    ASSERT_MP_JSON(v, vl, "\"x\"");
    v = rec_get(r.data, r.len, "c", 1, &vl);
    assert_non_null(v);
    assert_int_equal(vl, 1);
    assert_null(rec_get(r.data, r.len, "b", 1, &vl));
    assert_null(rec_get(r.data, r.len - 1, "c", 1, &vl)); /* truncated */
    wbuf_free(&r);
    /* not a map */
    wbuf a = J("[1,2]");
    assert_null(rec_get(a.data, a.len, "a", 1, &vl));
    wbuf_free(&a);
}

static char *text_of(const char *json, int to_s)
{
    wbuf v = J(json), out = {0};
    assert_int_equal(to_s ? rec_value_to_s(&out, v.data, v.len) : rec_value_text(&out, v.data, v.len), 0);
    wbuf_addc(&out, 0);
    wbuf_free(&v);
    return (char *)out.data;
}

#define TEXT(json, want)                                                                                             \
    do {                                                                                                             \
        char *t_ = text_of(json, 0);                                                                                 \
        assert_string_equal(t_, want);                                                                               \
        free(t_);                                                                                                    \
    } while (0)

static void test_value_text(void **st)
{
    TEXT("\"plain \\\"text\\\"\"", "plain \"text\"");
    TEXT("42", "42");
    TEXT("-7", "-7");
    TEXT("1.5", "1.5");
    TEXT("true", "true");
    TEXT("false", "false");
    TEXT("null", "null");
    TEXT("{\"a\":[1,\"x\"]}", "{\"a\":[1,\"x\"]}");
    char *t = text_of("null", 1);
    assert_string_equal(t, ""); /* Ruby's nil.to_s */
    free(t);
    t = text_of("\"s\"", 1);
    assert_string_equal(t, "s");
    free(t);
    /* EventTime prints its seconds; uint64 max */
    wbuf v = {0}, out = {0};
    mpw_eventtime(&v, 1700000000, 5);
    assert_int_equal(rec_value_text(&out, v.data, v.len), 0);
    assert_int_equal(out.len, 10);
    assert_memory_equal(out.data, "1700000000", 10);
    v.len = out.len = 0;
    mpw_uint(&v, UINT64_MAX);
    assert_int_equal(rec_value_text(&out, v.data, v.len), 0);
    assert_memory_equal(out.data, "18446744073709551615", 20);
    v.len = out.len = 0;
    wbuf_add(&v, "\xc4\x02hi", 4); /* bin is text too */
    assert_int_equal(rec_value_text(&out, v.data, v.len), 0);
    assert_memory_equal(out.data, "hi", 2);
    v.len = 0;
    wbuf_addc(&v, 0xc1); /* never valid */
    assert_int_equal(rec_value_text(&out, v.data, v.len), -1);
    wbuf_free(&v);
    wbuf_free(&out);
}

static void test_double_text(void **st)
{
    static const struct {
        double d;
        const char *s;
    } cases[] = {
        {1.0, "1.0"},          {0.1, "0.1"},        {100.0, "100.0"},         {-2.5, "-2.5"},
        {1e15, "1000000000000000.0"}, {1e16, "1.0e+16"}, {1.5e300, "1.5e+300"}, {1e-4, "0.0001"},
        {1e-5, "1.0e-05"},     {123.456, "123.456"}, {0.0, "0.0"},          {1700000000.123, "1700000000.123"},
        {2.5e-10, "2.5e-10"},  {12345678.9, "12345678.9"},
    };
    char buf[32];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = rec_double_text(buf, cases[i].d);
        assert_string_equal(buf, cases[i].s);
        assert_int_equal(n, strlen(cases[i].s));
    }
    rec_double_text(buf, NAN);
    assert_string_equal(buf, "NaN");
    rec_double_text(buf, -INFINITY);
    assert_string_equal(buf, "-Infinity");
}

/* ---- rewriting ----------------------------------------------------------------------------- */

static char *rewrite_json(const char *rec, const char *const *drop, const char *set_json)
{
    wbuf r = J(rec), s = J(set_json), out = {0};
    rec_kv kv[32];
    size_t n = 0;
    const uint8_t *p = s.data, *end = s.data + s.len;
    mp_obj m;
    assert_int_equal(mp_read(&p, end, &m), MP_OK);
    for (uint32_t i = 0; i < m.len; i++) {
        mp_obj k;
        assert_int_equal(mp_read(&p, end, &k), MP_OK);
        const uint8_t *v = p;
        assert_int_equal(mp_skip(&p, end, 64), MP_OK);
        kv[n++] = (rec_kv){(const char *)k.ptr, k.len, v, (size_t)(p - v)};
    }
    wbuf_add(&out, "xx", 2); /* appends after what is there */
    assert_int_equal(rec_rewrite(&out, r.data, r.len, drop, kv, n), 0);
    assert_memory_equal(out.data, "xx", 2);
    char *js = M2J(out.data + 2, out.len - 2);
    wbuf_free(&r);
    wbuf_free(&s);
    wbuf_free(&out);
    return js;
}

#define REWRITE(rec, drop, set, want)                                                                                \
    do {                                                                                                             \
        char *s_ = rewrite_json(rec, drop, set);                                                                     \
        assert_string_equal(s_, want);                                                                               \
        free(s_);                                                                                                    \
    } while (0)

static void test_rewrite_merge(void **st)
{
    static const char *const drop_b[] = {"b", NULL};
    /* Hash#merge: existing keys keep their place, new ones are appended */
    REWRITE("{\"a\":1,\"b\":2,\"c\":3}", NULL, "{\"b\":\"B\",\"d\":4}", "{\"a\":1,\"b\":\"B\",\"c\":3,\"d\":4}");
    REWRITE("{\"a\":1,\"b\":2,\"c\":3}", drop_b, "{}", "{\"a\":1,\"c\":3}");
    /* a dropped key set again comes back at the end */
    REWRITE("{\"a\":1,\"b\":2,\"c\":3}", drop_b, "{\"b\":5}", "{\"a\":1,\"c\":3,\"b\":5}");
    REWRITE("{}", NULL, "{\"x\":{\"y\":[1]}}", "{\"x\":{\"y\":[1]}}");
    REWRITE("{\"a\":1}", NULL, "{}", "{\"a\":1}");
    /* the same key twice in set: first position, last value */
    REWRITE("{\"a\":1}", NULL, "{\"n\":1,\"a\":2,\"n\":3,\"a\":4}", "{\"a\":4,\"n\":3}");
}

static void test_rewrite_header_sizes(void **st)
{
    /* 15 pairs + 1 new: fixmap -> map16 */
    wbuf r = {0}, out = {0};
    mpw_map(&r, 15);
    for (int i = 0; i < 15; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        mpw_str(&r, k, strlen(k));
        mpw_int(&r, i);
    }
    uint8_t one = 1;
    rec_kv kv = {"new", 3, &one, 1};
    assert_int_equal(rec_rewrite(&out, r.data, r.len, NULL, &kv, 1), 0);
    assert_int_equal(out.data[0], 0xde);
    assert_int_equal(mp_be16(out.data + 1), 16);
    assert_int_equal(out.len, r.len + 2 + 4 + 1);
    /* and back: drop 1 of 16 -> fixmap 15 */
    static const char *const drop[] = {"new", NULL};
    wbuf out2 = {0};
    assert_int_equal(rec_rewrite(&out2, out.data, out.len, drop, NULL, 0), 0);
    assert_int_equal(out2.len, r.len);
    assert_memory_equal(out2.data, r.data, r.len);
    /* malformed input: -1 and nothing appended */
    out2.len = 0;
    assert_int_equal(rec_rewrite(&out2, r.data, r.len - 1, NULL, &kv, 1), -1);
    assert_int_equal(out2.len, 0);
    wbuf_free(&r);
    wbuf_free(&out);
    wbuf_free(&out2);
    /* non-string keys are copied untouched */
    wbuf m = {0}, o = {0};
    mpw_map(&m, 2);
    mpw_int(&m, 7);
    mpw_str(&m, "v", 1);
    mpw_str(&m, "a", 1);
    mpw_nil(&m);
    rec_kv kv2 = {"a", 1, &one, 1};
    assert_int_equal(rec_rewrite(&o, m.data, m.len, NULL, &kv2, 1), 0);
    ASSERT_MP_JSON(o.data, o.len, "{\"7\":\"v\",\"a\":1}");
    wbuf_free(&m);
    wbuf_free(&o);
}

static void test_rewrite_n_counted_drop(void **st)
{
    wbuf r = J("{\"log\":\"x\",\"level\":\"INFO\",\"l\":1}"), out = {0};
    rec_kv drop[] = {{"level", 5, NULL, 0}, {"l", 1, NULL, 0}};
    assert_int_equal(rec_rewrite_n(&out, r.data, r.len, drop, 2, NULL, 0), 0);
    ASSERT_MP_JSON(out.data, out.len, "{\"log\":\"x\"}");
    out.len = 0;
    /* a key that is a prefix of another is not dropped */
    rec_kv drop2[] = {{"lo", 2, NULL, 0}};
    assert_int_equal(rec_rewrite_n(&out, r.data, r.len, drop2, 1, NULL, 0), 0);
    ASSERT_MP_JSON(out.data, out.len, "{\"log\":\"x\",\"level\":\"INFO\",\"l\":1}");
    wbuf_free(&r);
    wbuf_free(&out);
}

static void test_keep(void **st)
{
    wbuf r = J("{\"a\":1,\"b\":2,\"c\":3}"), out = {0};
    static const char *const keep[] = {"c", "x", "a", "c", NULL};
    assert_int_equal(rec_keep(&out, r.data, r.len, keep), 0);
    ASSERT_MP_JSON(out.data, out.len, "{\"c\":3,\"a\":1}"); /* keep order, missing skipped, no duplicates */
    out.len = 0;
    static const char *const none[] = {NULL};
    assert_int_equal(rec_keep(&out, r.data, r.len, none), 0);
    ASSERT_MP_JSON(out.data, out.len, "{}");
    out.len = 0;
    assert_int_equal(rec_keep(&out, (const uint8_t *)"\x91\x01", 2, keep), -1);
    wbuf_free(&r);
    wbuf_free(&out);
}

static char *delete_json(const char *rec, const char *const *paths, int *removed)
{
    wbuf r = J(rec), out = {0};
    rec_path p[80];
    size_t n = 0;
    char err[128];
    for (; paths[n]; n++)
        assert_int_equal(rec_path_compile(&p[n], paths[n], err, sizeof err), 0);
    *removed = rec_delete(&out, r.data, r.len, p, n);
    char *s = M2J(out.data, out.len);
    for (size_t i = 0; i < n; i++)
        rec_path_free(&p[i]);
    wbuf_free(&r);
    wbuf_free(&out);
    return s;
}

#define DELETE(rec, want, want_removed, ...)                                                                         \
    do {                                                                                                             \
        int rm_;                                                                                                     \
        char *s_ = delete_json(rec, (const char *const[]){__VA_ARGS__, NULL}, &rm_);                                 \
        assert_string_equal(s_, want);                                                                               \
        assert_int_equal(rm_, want_removed);                                                                         \
        free(s_);                                                                                                    \
    } while (0)

static void test_delete(void **st)
{
    const char *rec = "{\"a\":{\"b\":1,\"c\":2},\"arr\":[10,{\"x\":1,\"y\":2},30],\"top\":true}";
    DELETE(rec, "{\"a\":{\"c\":2},\"arr\":[10,{\"x\":1,\"y\":2},30],\"top\":true}", 1, "$.a.b");
    DELETE(rec, "{\"a\":{\"b\":1,\"c\":2},\"arr\":[10,{\"x\":1,\"y\":2},30]}", 1, "top");
    DELETE(rec, "{\"a\":{\"b\":1,\"c\":2},\"arr\":[10,30],\"top\":true}", 1, "$.arr[1]");
    DELETE(rec, "{\"a\":{\"b\":1,\"c\":2},\"arr\":[10,{\"x\":1,\"y\":2}],\"top\":true}", 1, "$.arr[-1]");
    DELETE(rec, "{\"a\":{\"b\":1,\"c\":2},\"arr\":[10,{\"y\":2},30],\"top\":true}", 1, "$.arr[1].x");
    DELETE(rec, "{\"a\":{},\"arr\":[10,{\"x\":1,\"y\":2},30]}", 1, "$.a.b", "$['a']['c']", "top");
    /* nothing resolves: a copy, 0 */
    DELETE(rec, "{\"a\":{\"b\":1,\"c\":2},\"arr\":[10,{\"x\":1,\"y\":2},30],\"top\":true}", 0, "$.a.z", "$.top.x",
           "$.arr[5]", "$.a[0]", "$[0]");
    /* more than 64 paths: several passes */
    const char *many[80];
    char names[80][16];
    wbuf r = {0};
    mpw_map(&r, 70);
    for (int i = 0; i < 70; i++) {
        snprintf(names[i], sizeof names[i], "k%d", i);
        mpw_str(&r, names[i], strlen(names[i]));
        mpw_int(&r, i);
    }
    for (int i = 0; i < 69; i++)
        many[i] = names[i];
    rec_path p[69];
    char err[64];
    for (int i = 0; i < 69; i++)
        assert_int_equal(rec_path_compile(&p[i], many[i], err, sizeof err), 0);
    wbuf out = {0};
    assert_int_equal(rec_delete(&out, r.data, r.len, p, 69), 1);
    ASSERT_MP_JSON(out.data, out.len, "{\"k69\":69}");
    for (int i = 0; i < 69; i++)
        rec_path_free(&p[i]);
    out.len = 0;
    assert_int_equal(rec_delete(&out, r.data, r.len - 1, NULL, 0), -1);
    assert_int_equal(out.len, 0);
    wbuf_free(&r);
    wbuf_free(&out);
}

static char *set_json(const char *rec_json, const char *path, const char *val_json)
{
    wbuf r = J(rec_json), v = J(val_json), out = {0};
    rec_path p;
    char err[256] = "";
    assert_int_equal(rec_path_compile(&p, path, err, sizeof err), 0);
    int rc = rec_set_path(&out, r.data, r.len, &p, v.data, v.len);
    char *s = rc ? strdup("<error>") : M2J(out.data, out.len);
    rec_path_free(&p);
    wbuf_free(&r);
    wbuf_free(&v);
    wbuf_free(&out);
    return s;
}

#define SET(rec, path, val, want)                                                                                    \
    do {                                                                                                             \
        char *s_ = set_json(rec, path, val);                                                                         \
        assert_string_equal(s_, want);                                                                               \
        free(s_);                                                                                                    \
    } while (0)

static void test_set_path(void **st)
{
    /* top-level: replaced in place, or appended */
    SET("{\"a\":1,\"b\":2}", "a", "9", "{\"a\":9,\"b\":2}");
    SET("{\"a\":1}", "z", "\"x\"", "{\"a\":1,\"z\":\"x\"}");
    SET("{}", "k", "{\"t\":1}", "{\"k\":{\"t\":1}}");
    /* nested: into an existing map, creating missing maps, replacing a non-map */
    SET("{\"event\":{\"id\":1},\"m\":2}", "$.event.retry_count", "3",
        "{\"event\":{\"id\":1,\"retry_count\":3},\"m\":2}");
    SET("{\"m\":2}", "$.event.retry_count", "3", "{\"m\":2,\"event\":{\"retry_count\":3}}");
    SET("{\"event\":\"str\",\"m\":2}", "$.event.dlq", "true", "{\"event\":{\"dlq\":true},\"m\":2}");
    SET("{\"a\":{\"b\":{\"c\":1,\"d\":2}}}", "$['a']['b']['c']", "null", "{\"a\":{\"b\":{\"c\":null,\"d\":2}}}");
    SET("{\"@metadata\":{\"x\":1}}", "$.@metadata.kafka", "{\"topic\":\"t\"}",
        "{\"@metadata\":{\"x\":1,\"kafka\":{\"topic\":\"t\"}}}");
    /* 15 -> 16 keys: the map header grows from fixmap to map16 */
    wbuf r = {0}, out = {0}, v = {0};
    mpw_map(&r, 15);
    for (int i = 0; i < 15; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        mpw_str(&r, k, strlen(k));
        mpw_int(&r, i);
    }
    mpw_int(&v, 7);
    rec_path p;
    char err[64];
    assert_int_equal(rec_path_compile(&p, "new", err, sizeof err), 0);
    assert_int_equal(rec_set_path(&out, r.data, r.len, &p, v.data, v.len), 0);
    assert_int_equal(out.data[0], 0xde);
    size_t vl;
    const uint8_t *got = rec_get(out.data, out.len, "new", 3, &vl);
    assert_non_null(got);
    assert_int_equal(*got, 7);
    /* malformed input and index paths: -1, nothing appended */
    out.len = 0;
    assert_int_equal(rec_set_path(&out, r.data, r.len - 1, &p, v.data, v.len), -1);
    assert_int_equal(out.len, 0);
    rec_path_free(&p);
    assert_int_equal(rec_path_compile(&p, "$.a[0]", err, sizeof err), 0);
    assert_int_equal(rec_set_path(&out, r.data, r.len, &p, v.data, v.len), -1);
    assert_int_equal(out.len, 0);
    rec_path_free(&p);
    wbuf_free(&r);
    wbuf_free(&v);
    wbuf_free(&out);
}

static void test_str_and_hdr_boundaries(void **st)
{
    static const size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536};
    char *big = malloc(70000);
    memset(big, 'x', 70000);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        wbuf a = {0}, b = {0};
        size_t off;
        wbuf_addc(&a, 0xc0);
        assert_int_equal(rec_str_open(&a, &off), 0);
        wbuf_add(&a, big, lens[i]);
        assert_int_equal(rec_str_close(&a, off), 0);
        wbuf_addc(&b, 0xc0);
        mpw_str(&b, big, lens[i]);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        wbuf_free(&a);
        wbuf_free(&b);
    }
    free(big);
    static const uint32_t counts[] = {0, 15, 16, 65535, 65536};
    static const uint32_t guesses[] = {0, 20, 70000};
    for (size_t g = 0; g < 3; g++) {
        for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
            wbuf a = {0}, b = {0};
            rec_hdr h;
            assert_int_equal(rec_hdr_open(&a, &h, 0, guesses[g]), 0);
            wbuf_add(&a, "body", 4);
            assert_int_equal(rec_hdr_close(&a, &h, counts[i]), 0);
            mpw_array(&b, counts[i]);
            wbuf_add(&b, "body", 4);
            assert_int_equal(a.len, b.len);
            assert_memory_equal(a.data, b.data, a.len);
            wbuf_free(&a);
            wbuf_free(&b);
        }
    }
}

static void test_read_str(void **st)
{
    const uint8_t *s;
    uint32_t n;
    const uint8_t ok[] = {0xd9, 0x02, 'h', 'i'}, *p = ok;
    assert_int_equal(rec_read_str(&p, ok + 4, &s, &n), 1);
    assert_int_equal(n, 2);
    assert_ptr_equal(p, ok + 4);
    const uint8_t trunc[] = {0xa5, 'a'};
    p = trunc;
    assert_int_equal(rec_read_str(&p, trunc + 2, &s, &n), -1);
    assert_ptr_equal(p, trunc);
    const uint8_t num[] = {0x05};
    p = num;
    assert_int_equal(rec_read_str(&p, num + 1, &s, &n), 0);
    assert_ptr_equal(p, num);
    p = num;
    assert_int_equal(rec_read_str(&p, num, &s, &n), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path_forms),          cmocka_unit_test(test_path_errors),
        cmocka_unit_test(test_rec_get),             cmocka_unit_test(test_value_text),
        cmocka_unit_test(test_double_text),         cmocka_unit_test(test_rewrite_merge),
        cmocka_unit_test(test_rewrite_header_sizes), cmocka_unit_test(test_rewrite_n_counted_drop),
        cmocka_unit_test(test_keep),                cmocka_unit_test(test_delete),
        cmocka_unit_test(test_str_and_hdr_boundaries), cmocka_unit_test(test_read_str), cmocka_unit_test(test_set_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
