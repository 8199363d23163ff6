/* Unit tests: the <parse> section (aggregator/parse.c, parse_conv.c, parsers/: json, regexp, cri, logfmt,
 * none, ltsv, csv) and aggregator/timeparse.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <time.h>

#include "config/conf.h"
#include "aggregator/parse.h"
#include "aggregator/record.h"
#include "aggregator/timeparse.h"
#include "filter_test_util.h"

/* ---- helpers ---------------------------------------------------------------------------- */

typedef struct tp {
    parser p;
    conf_node *root;
    conf_errors errs;
} tp;

/* body: the lines inside <parse> */
static tp *mk(const char *body)
{
    tp *t = calloc(1, sizeof *t);
    char text[4096];
    snprintf(text, sizeof text, "<parse>\n%s\n</parse>\n", body);
    t->root = conf_parse_string(text, "p.conf", &t->errs);
    assert_non_null(t->root);
    assert_int_equal(t->root->nchildren, 1);
    if (parse_configure(&t->p, t->root->children[0], &t->errs) != 0 && t->errs.n == 0)
        fail_msg("parse_configure failed without an error message");
    return t;
}

static void rm(tp *t)
{
    parse_free(&t->p);
    conf_free(t->root);
    conf_errors_free(&t->errs);
    free(t);
}

static tp *mk_ok(const char *body)
{
    tp *t = mk(body);
    for (size_t i = 0; i < t->errs.n; i++)
        print_error("unexpected config error: %s\n", t->errs.msgs[i]);
    assert_int_equal(t->errs.n, 0);
    return t;
}

static void expect_conf_error(const char *body, const char *want)
{
    tp *t = mk(body);
    if (t->errs.n != 1)
        for (size_t i = 0; i < t->errs.n; i++)
            print_error("error %zu: %s\n", i, t->errs.msgs[i]);
    assert_int_equal(t->errs.n, 1);
    assert_string_equal(t->errs.msgs[0], want);
    rm(t);
}

typedef struct result {
    int rc;
    char *json; /* on PARSE_OK */
    char err[256];
    int has_time;
    uint32_t sec, nsec;
} result;

static result run(tp *t, const char *text, size_t n)
{
    result r = {0};
    wbuf out = {0};
    wbuf_add(&out, "P", 1); /* parse_text appends */
    r.rc = parse_text(&t->p, text, n, &out, &r.has_time, &r.sec, &r.nsec, r.err, sizeof r.err);
    assert_memory_equal(out.data, "P", 1);
    if (r.rc == PARSE_OK)
        r.json = M2J(out.data + 1, out.len - 1);
    else
        assert_int_equal(out.len, 1); /* left as it was */
    wbuf_free(&out);
    return r;
}

#define RUN(t, text) run(t, text, strlen(text))

#define OK(t, text, want)                                                                                            \
    do {                                                                                                             \
        result r_ = run(t, text, strlen(text));                                                                      \
        if (r_.rc != PARSE_OK)                                                                                       \
            fail_msg("parse of %s failed: %d %s", text, r_.rc, r_.err);                                              \
        assert_string_equal(r_.json, want);                                                                          \
        free(r_.json);                                                                                               \
    } while (0)

#define RC(t, text, want_rc)                                                                                         \
    do {                                                                                                             \
        result r_ = run(t, text, strlen(text));                                                                      \
        if (r_.rc != (want_rc))                                                                                      \
            fail_msg("parse of '%s': rc %d, want %d (%s)", text, r_.rc, want_rc, r_.json ? r_.json : r_.err);        \
        free(r_.json);                                                                                               \
    } while (0)

/* ---- json --------------------------------------------------------------------------------- */

static void test_json_values(void **st)
{
    tp *t = mk_ok("@type json");
    OK(t, "{\"s\":\"x\",\"i\":-42,\"u\":7,\"f\":1.5,\"t\":true,\"n\":null,\"a\":[1,[],{}],\"o\":{\"k\":false}}",
       "{\"s\":\"x\",\"i\":-42,\"u\":7,\"f\":1.5,\"t\":true,\"n\":null,\"a\":[1,[],{}],\"o\":{\"k\":false}}");
    OK(t, "  \n\t{ }\r\n ", "{}");
    OK(t, "{\"a\" : 1 , \"b\" :[ 1 , 2 ] }", "{\"a\":1,\"b\":[1,2]}");
    /* escapes, \u, surrogate pairs, a lone surrogate */
    OK(t, "{\"e\":\"q\\\" b\\\\ s\\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00 \\udc00 \\ud800x\"}",
       "{\"e\":\"q\\\" b\\\\ s/ \\b\\f\\n\\r\\t \xc3\xa9 \xf0\x9f\x98\x80 \xef\xbf\xbd \xef\xbf\xbdx\"}");
    /* raw UTF-8 passes */
    OK(t, "{\"k\xc3\xa9\":\"\xe2\x82\xac\"}", "{\"k\xc3\xa9\":\"\xe2\x82\xac\"}");
    rm(t);
}

static void test_json_numbers(void **st)
{
    tp *t = mk_ok("@type json");
    OK(t, "{\"a\":0,\"b\":-0,\"c\":18446744073709551615,\"d\":-9223372036854775808}",
       "{\"a\":0,\"b\":0,\"c\":18446744073709551615,\"d\":-9223372036854775808}");
    OK(t, "{\"a\":18446744073709551616,\"b\":-9223372036854775809}",
       "{\"a\":1.8446744073709552e+19,\"b\":-9223372036854775808.0}");
    OK(t, "{\"a\":1e3,\"b\":1E-2,\"c\":-0.5,\"d\":2.5e+2,\"e\":0.1,\"f\":1.7976931348623157e308}",
       "{\"a\":1000.0,\"b\":0.01,\"c\":-0.5,\"d\":250.0,\"e\":0.1,\"f\":1.7976931348623157e+308}");
    OK(t, "{\"a\":123456789012345678901234567890,\"b\":0.30000000000000004,\"c\":1e-400}",
       "{\"a\":1.2345678901234568e+29,\"b\":0.30000000000000004,\"c\":0.0}");
    static const char *const bad[] = {"{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}",   "{\"a\":-}",  "{\"a\":1e}",
                                      "{\"a\":+1}", "{\"a\":1e+}", "{\"a\":0x1}", "{\"a\":NaN}", "{\"a\":--1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        RC(t, bad[i], PARSE_NOMATCH);
    rm(t);
}

static void test_json_invalid(void **st)
{
    tp *t = mk_ok("@type json");
    static const char *const bad[] = {
        "",           " ",           "[1,2]",          "\"str\"",        "42",          "{",
        "{\"a\"}",    "{\"a\":}",    "{\"a\":1,}",     "{,}",            "{\"a\":1} x", "{\"a\":1}{}",
        "{a:1}",      "{'a':1}",     "{\"a\":tru}",    "{\"a\":nul}",    "{\"a\":[1,]}", "{\"a\":\"x\ty\"}",
        "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"unterminated}", "{\"a\":[}", "{\"a\":1 \"b\":2}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        RC(t, bad[i], PARSE_NOMATCH);
    /* nesting limit */
    char deep[1024];
    size_t n = 0;
    deep[n++] = '{';
    memcpy(deep + n, "\"a\":", 4);
    n += 4;
    for (int i = 0; i < 128; i++)
        deep[n++] = '[';
    for (int i = 0; i < 128; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = 0;
    RC(t, deep, PARSE_OK);
    memmove(deep + 6, deep + 5, n - 4);
    deep[5] = '[';
    memmove(deep + n - 127, deep + n - 128, 129);
    deep[n - 128] = ']';
    RC(t, deep, PARSE_NOMATCH);
    rm(t);
}

static void test_json_string_sizes(void **st)
{
    tp *t = mk_ok("@type json");
    static const size_t lens[] = {31, 32, 255, 256, 65535, 65536};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int esc = 0; esc < 2; esc++) {
            /* esc: the raw text is 2 bytes longer than the value ("\n" escapes) */
            size_t n = lens[i];
            char *json = malloc(n + 32);
            size_t j = 0;
            memcpy(json, "{\"k\":\"", 6);
            j = 6;
            for (size_t k = 0; k < n - (size_t)esc; k++)
                json[j++] = 'x';
            if (esc) {
                json[j++] = '\\';
                json[j++] = 'n';
            }
            memcpy(json + j, "\"}", 3);
            j += 2;
            wbuf out = {0}, want = {0};
            int ht;
            uint32_t s, ns;
            assert_int_equal(parse_text(&t->p, json, j, &out, &ht, &s, &ns, NULL, 0), PARSE_OK);
            char *val = malloc(n);
            memset(val, 'x', n);
            if (esc)
                val[n - 1] = '\n';
            mpw_map(&want, 1);
            mpw_str(&want, "k", 1);
            mpw_str(&want, val, n);
            assert_int_equal(out.len, want.len);
            assert_memory_equal(out.data, want.data, want.len);
            free(val);
            free(json);
            wbuf_free(&out);
            wbuf_free(&want);
        }
    }
    /* 15 and 16 keys: fixmap / map16 */
    for (int nk = 15; nk <= 17; nk++) {
        char json[512];
        size_t j = 0;
        json[j++] = '{';
        for (int k = 0; k < nk; k++)
            j += (size_t)snprintf(json + j, sizeof json - j, "%s\"k%d\":%d", k ? "," : "", k, k);
        json[j++] = '}';
        wbuf out = {0};
        int ht;
        uint32_t s, ns;
        assert_int_equal(parse_text(&t->p, json, j, &out, &ht, &s, &ns, NULL, 0), PARSE_OK);
        if (nk < 16)
            assert_int_equal(out.data[0], 0x80 | nk);
        else
            assert_true(out.data[0] == 0xde && mp_be16(out.data + 1) == nk);
        wbuf_free(&out);
    }
    rm(t);
}

static void test_json_time(void **st)
{
    tp *t = mk_ok("@type json");
    result r = RUN(t, "{\"time\":1700000000.5,\"a\":1}");
    assert_int_equal(r.rc, PARSE_OK);
    assert_string_equal(r.json, "{\"a\":1}");
    assert_int_equal(r.has_time, 1);
    assert_int_equal(r.sec, 1700000000);
    assert_int_equal(r.nsec, 500000000);
    free(r.json);
    r = RUN(t, "{\"a\":1,\"time\":\"1700000001.25\"}");
    assert_int_equal(r.sec, 1700000001);
    assert_int_equal(r.nsec, 250000000);
    free(r.json);
    /* Fluentd's float time_type on a date string: "2024-...".to_i */
    r = RUN(t, "{\"time\":\"2024-01-01T00:00:00Z\"}");
    assert_int_equal(r.rc, PARSE_OK);
    assert_int_equal(r.sec, 2024);
    free(r.json);
    /* not a string or a number: ParserError */
    r = RUN(t, "{\"time\":{\"x\":1}}");
    assert_int_equal(r.rc, PARSE_FAIL);
    assert_string_equal(r.err, "value must be a string or a number: {\"x\":1}");
    r = RUN(t, "{\"time\":null}");
    assert_int_equal(r.rc, PARSE_FAIL);
    /* invalid JSON wins over a bad time */
    RC(t, "{\"time\":null,", PARSE_NOMATCH);
    /* estimate_current_event: no time key -> now */
    time_t before = time(NULL);
    r = RUN(t, "{\"a\":1}");
    assert_int_equal(r.has_time, 1);
    assert_true(r.sec >= before && r.sec <= before + 2);
    free(r.json);
    rm(t);

    t = mk_ok("@type json\nestimate_current_event false\nkeep_time_key true\ntime_key ts");
    r = RUN(t, "{\"ts\":10,\"time\":5}");
    assert_string_equal(r.json, "{\"ts\":10,\"time\":5}");
    assert_int_equal(r.has_time, 1);
    assert_int_equal(r.sec, 10);
    free(r.json);
    r = RUN(t, "{\"a\":1}");
    assert_int_equal(r.has_time, 0);
    free(r.json);
    rm(t);

    /* time_format makes time_type string */
    t = mk_ok("@type json\ntime_format %Y-%m-%dT%H:%M:%S.%N%z");
    r = RUN(t, "{\"time\":\"2024-01-02T03:04:05.123456789+01:00\",\"m\":\"x\"}");
    assert_int_equal(r.rc, PARSE_OK);
    assert_string_equal(r.json, "{\"m\":\"x\"}");
    assert_int_equal(r.sec, 1704161045);
    assert_int_equal(r.nsec, 123456789);
    free(r.json);
    r = RUN(t, "{\"time\":1}");
    assert_int_equal(r.rc, PARSE_FAIL);
    assert_string_equal(r.err, "value must be string: 1");
    r = RUN(t, "{\"time\":\"yesterday\"}");
    assert_int_equal(r.rc, PARSE_FAIL);
    assert_string_equal(r.err, "invalid time format: value = yesterday");
    rm(t);

    t = mk_ok("@type json\ntime_type unixtime");
    r = RUN(t, "{\"time\":1700000000.9}");
    assert_int_equal(r.sec, 1700000000);
    assert_int_equal(r.nsec, 0);
    free(r.json);
    r = RUN(t, "{\"time\":\"  17abc\"}");
    assert_int_equal(r.sec, 17);
    free(r.json);
    rm(t);
}

static void test_types_and_nulls(void **st)
{
    tp *t = mk_ok("@type json\ntypes i:integer,f:float,b:bool,s:string,a:array,p:array:|,t:time:%Y-%m-%d,"
                  "u:time:unixtime,n:integer\nnull_empty_string true");
    OK(t,
       "{\"i\":\"12abc\",\"f\":\"1.5e1x\",\"b\":\"YES\",\"s\":3.0,\"a\":\"x,y,,\",\"p\":\"a|b\","
       "\"t\":\"2024-01-02\",\"u\":\"5\",\"n\":null,\"e\":\"\",\"o\":\"keep\"}",
       "{\"i\":12,\"f\":15.0,\"b\":true,\"s\":\"3.0\",\"a\":[\"x\",\"y\"],\"p\":[\"a\",\"b\"],"
       "\"t\":1704153600,\"u\":5,\"n\":null,\"e\":null,\"o\":\"keep\"}");
    /* integer of a float truncates, of true is 0; bool of 1 is true, of "no" false; false is left alone */
    OK(t, "{\"i\":-3.9,\"b\":1,\"n\":true}", "{\"i\":-3,\"b\":true,\"n\":0}");
    OK(t, "{\"b\":\"no\",\"i\":false,\"t\":\"bad\"}", "{\"b\":false,\"i\":false,\"t\":null}");
    rm(t);
    /* Ruby's split(" ") is awk-like; split("") gives characters */
    t = mk_ok("@type json\ntypes {\"w\":\"array: \",\"c\":\"array:\"}");
    OK(t, "{\"w\":\"  a  b \",\"c\":\"x\xc3\xa9\"}", "{\"w\":[\"a\",\"b\"],\"c\":[\"x\",\"\xc3\xa9\"]}");
    rm(t);
    t = mk_ok("@type json\nnull_value_pattern ^(-|N/A)$\ntypes {\"c\":\"integer\"}");
    OK(t, "{\"a\":\"-\",\"b\":\"N/A\",\"c\":\"-\",\"d\":\"x-y\",\"e\":1}",
       "{\"a\":null,\"b\":null,\"c\":null,\"d\":\"x-y\",\"e\":1}");
    rm(t);
    expect_conf_error("@type json\ntypes a:integer,b:money", "p.conf:3: unknown value conversion for key:'b', type:'money'");
    expect_conf_error("@type json\ntypes abc", "p.conf:3: invalid hash value 'abc' for parameter 'types'");
    expect_conf_error("@type json\nnull_value_pattern (", "p.conf:3: invalid regexp '(': missing closing parenthesis");
}

/* ---- regexp ----------------------------------------------------------------------------------- */

static void test_regexp(void **st)
{
    tp *t = mk_ok("@type regexp\nexpression /^(?<z>\\w+) (?<a>\\d+)(?: (?<opt>\\S+))?$/");
    OK(t, "hello 42", "{\"z\":\"hello\",\"a\":\"42\"}"); /* pattern order, unset group left out */
    OK(t, "hello 42 x", "{\"z\":\"hello\",\"a\":\"42\",\"opt\":\"x\"}");
    RC(t, "hello world", PARSE_NOMATCH);
    RC(t, "\xff 42", PARSE_BADUTF8);
    rm(t);

    /* apache-like line with a time */
    t = mk_ok("@type regexp\nexpression /^(?<host>[^ ]*) \\[(?<time>[^\\]]*)\\] \"(?<method>\\S+)\" (?<code>\\d+)$/\n"
              "time_format %d/%b/%Y:%H:%M:%S %z\ntypes code:integer");
    result r = RUN(t, "192.0.2.1 [10/Oct/2000:13:55:36 -0700] \"GET\" 200");
    assert_int_equal(r.rc, PARSE_OK);
    assert_string_equal(r.json, "{\"host\":\"192.0.2.1\",\"method\":\"GET\",\"code\":200}");
    assert_int_equal(r.sec, 971211336);
    free(r.json);
    r = RUN(t, "192.0.2.1 [10/Oct/2000:13:55] \"GET\" 200");
    assert_int_equal(r.rc, PARSE_FAIL);
    assert_string_equal(r.err, "invalid time format: value = 10/Oct/2000:13:55");
    rm(t);

    /* Ruby semantics: ^ is a line anchor, /m is dot-all, \h is hex, i flag */
    t = mk_ok("@type regexp\nexpression /^(?<second>b.*)$/");
    OK(t, "a\nbc", "{\"second\":\"bc\"}");
    rm(t);
    t = mk_ok("@type regexp\nexpression /(?<all>a.c)/m");
    OK(t, "a\nc", "{\"all\":\"a\\nc\"}");
    rm(t);
    t = mk_ok("@type regexp\nexpression /(?<hex>\\h+)-(?<cls>[\\h]+)/");
    OK(t, "zzDEADbeef-12fG", "{\"hex\":\"DEADbeef\",\"cls\":\"12f\"}");
    rm(t);
    t = mk_ok("@type regexp\nexpression /(?<w>hello)/i");
    OK(t, "HeLLo", "{\"w\":\"HeLLo\"}");
    rm(t);
    t = mk_ok("@type regexp\nexpression (?<w>x+)\nignorecase true");
    OK(t, "aXXb", "{\"w\":\"XX\"}");
    rm(t);
    t = mk_ok("@type regexp\nexpression /(?<a>.+)/\nmultiline true");
    OK(t, "1\n2", "{\"a\":\"1\\n2\"}");
    rm(t);
    t = mk_ok("@type regexp\nexpression /(?<k>\\w)(?<k>\\d)?/");
    OK(t, "a", "{\"k\":\"a\"}");
    OK(t, "a1", "{\"k\":\"1\"}"); /* Ruby: the last matched group of a name */
    rm(t);

    expect_conf_error("@type regexp", "p.conf:1: missing required parameter 'expression' in <parse>");
    expect_conf_error("@type regexp\nexpression /(\\d+)/",
                      "p.conf:3: No named captures in 'expression' parameter. The regexp must have at least one named "
                      "capture");
    expect_conf_error("@type regexp\nexpression /(?<a>x/",
                      "p.conf:3: invalid regexp '/(?<a>x/': missing closing parenthesis");
    expect_conf_error("@type regexp\nexpression /(?<a>x)/imx", "p.conf:3: invalid regexp: missing right slash: /(?<a>x)/imx");
    expect_conf_error("@type json\nexpression /(?<a>x)/", "p.conf:3: parameter 'expression' is only used by @type regexp, not json");
}

/* ---- cri / logfmt / none ------------------------------------------------------------------------ */

static void test_cri(void **st)
{
    tp *t = mk_ok("@type cri");
    result r = RUN(t, "2023-10-06T00:17:09.669794202Z stdout F hello world");
    assert_int_equal(r.rc, PARSE_OK);
    assert_string_equal(r.json, "{\"stream\":\"stdout\",\"logtag\":\"F\",\"log\":\"hello world\"}");
    assert_int_equal(r.sec, 1696551429);
    assert_int_equal(r.nsec, 669794202);
    free(r.json);
    r = RUN(t, "2023-10-06T02:17:09.5+02:00 stderr P part\n");
    assert_int_equal(r.rc, PARSE_OK);
    assert_string_equal(r.json, "{\"stream\":\"stderr\",\"logtag\":\"P\",\"log\":\"part\"}");
    assert_int_equal(r.sec, 1696551429);
    assert_int_equal(r.nsec, 500000000);
    free(r.json);
    OK(t, "2023-10-06T00:17:09Z stdout F ", "{\"stream\":\"stdout\",\"logtag\":\"F\",\"log\":\"\"}");
    OK(t, "2023-10-06T00:17:09Z stdout  x y", "{\"stream\":\"stdout\",\"logtag\":\"\",\"log\":\"x y\"}");
    RC(t, "2023-10-06T00:17:09Z stdin F x", PARSE_NOMATCH);
    RC(t, "2023-10-06T00:17:09Z stdout F", PARSE_NOMATCH);
    RC(t, "just text", PARSE_NOMATCH);
    RC(t, " stdout F x", PARSE_NOMATCH);
    RC(t, "2023-10-06T00:17:09Z stdout F a\nb", PARSE_NOMATCH);
    r = RUN(t, "yesterday stdout F x");
    assert_int_equal(r.rc, PARSE_FAIL);
    assert_string_equal(r.err, "invalid time format: value = yesterday");
    rm(t);
    t = mk_ok("@type cri\nmessage_key message\nkeep_time_key true");
    OK(t, "2023-10-06T00:17:09Z stdout F hi",
       "{\"time\":\"2023-10-06T00:17:09Z\",\"stream\":\"stdout\",\"logtag\":\"F\",\"message\":\"hi\"}");
    rm(t);
}

static void test_logfmt(void **st)
{
    tp *t = mk_ok("@type logfmt");
    OK(t, "level=info msg=\"hello \\\"world\\\" \\u00e9\\n\" count=3 flag empty= quoted=\"\" path=/a=b",
       "{\"level\":\"info\",\"msg\":\"hello \\\"world\\\" \xc3\xa9\\n\",\"count\":\"3\",\"flag\":null,\"empty\":null,"
       "\"quoted\":\"\",\"path\":\"/a\",\"b\":null}");
    OK(t, "  a=1 \"junk\" b=2\nc=3", "{\"a\":\"1\",\"junk\":null,\"b\":\"2\"}"); /* one line; '"' is not a key byte */
    OK(t, "\nx=1", "{\"x\":\"1\"}");
    OK(t, "k=\"unterminated", "{\"k\":\"unterminated\"}");
    RC(t, "", PARSE_NOMATCH);
    RC(t, " = \" ", PARSE_NOMATCH);
    rm(t);
    t = mk_ok("@type logfmt\ntime_key ts\ntime_format %s\ntypes n:integer");
    result r = RUN(t, "ts=1700000000 n=5 m=x");
    assert_int_equal(r.rc, PARSE_OK);
    assert_string_equal(r.json, "{\"n\":5,\"m\":\"x\"}");
    assert_int_equal(r.sec, 1700000000);
    free(r.json);
    rm(t);
}

static void test_none(void **st)
{
    tp *t = mk_ok("@type none");
    OK(t, "any \"text\"", "{\"message\":\"any \\\"text\\\"\"}");
    OK(t, "", "{\"message\":\"\"}");
    rm(t);
    t = mk_ok("@type none\nmessage_key log\nnull_empty_string true");
    OK(t, "", "{\"log\":null}");
    rm(t);
}

/* ltsv and csv: (config, text, JSON of the record or NULL for a failure, its error). The expected records
 * are what Fluentd 1.16's parser_ltsv / parser_csv (Ruby 3.1's CSV) give for the same text. */
static const struct {
    const char *conf, *text, *want, *err;
} kv_cases[] = {
    {"@type ltsv", "a:1\tb:x:y\tnolabel\tc:\t:v", "{\"a\":\"1\",\"b\":\"x:y\",\"c\":\"\",\"\":\"v\"}", NULL},
    {"@type ltsv", "a:1\tb:2\ta:3", "{\"a\":\"3\",\"b\":\"2\"}", NULL}, /* a Hash: first place, later value */
    {"@type ltsv", "", "{}", NULL},
    {"@type ltsv\ndelimiter ;\nlabel_delimiter =", "a=1;b=two;c=", "{\"a\":\"1\",\"b\":\"two\",\"c\":\"\"}", NULL},
    {"@type ltsv\ndelimiter \" \"", "  a:1 \t b:2  ", "{\"a\":\"1\",\"b\":\"2\"}", NULL}, /* awk-style split */
    {"@type ltsv\ndelimiter_pattern /[;,]+/", "a:1;;b:2,c:3", "{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}", NULL},
    {"@type ltsv\ntypes n:integer\nnull_empty_string true", "n:42\te:", "{\"n\":42,\"e\":null}", NULL},
    {"@type ltsv", "time:2023-11-14T22:13:20Z\tm:x", "{\"m\":\"x\"}", NULL}, /* time key `time` */
    {"@type csv\nkeys a,b,c", "1,\"x,y\",\"q \"\"z\"\"\"", "{\"a\":\"1\",\"b\":\"x,y\",\"c\":\"q \\\"z\\\"\"}", NULL},
    {"@type csv\nkeys a,b,c", "1,,\"\"", "{\"a\":\"1\",\"b\":null,\"c\":\"\"}", NULL},
    {"@type csv\nkeys a,b,c", "1", "{\"a\":\"1\",\"b\":null,\"c\":null}", NULL},
    {"@type csv\nkeys a,b", "1,2,3\r\n", "{\"a\":\"1\",\"b\":\"2\"}", NULL},
    {"@type csv\nkeys a,b", "\"multi\nline\",2\nnext,row", "{\"a\":\"multi\\nline\",\"b\":\"2\"}", NULL},
    {"@type csv\nkeys a,a,b", "1,2,3", "{\"a\":\"2\",\"b\":\"3\"}", NULL},
    {"@type csv\nkeys [\"a\",\"b\"]\ndelimiter \"\\t\"\ntypes b:integer", "x y\t7", "{\"a\":\"x y\",\"b\":7}", NULL},
    {"@type csv\nkeys a,b\ndelimiter ||", "1||\"2||3\"", "{\"a\":\"1\",\"b\":\"2||3\"}", NULL},
    {"@type csv\nkeys a,b", "a\"b,c", NULL, "parse failed Illegal quoting in line 1."},
    {"@type csv\nkeys a,b", "\"ab\"c,d", NULL, "parse failed Any value after quoted field isn't allowed in line 1."},
    {"@type csv\nkeys a,b", "\"open,d", NULL, "parse failed Unclosed quoted field in line 1."},
    {"@type csv\nkeys a,b", "\"x\ny\",a\rb", NULL, "parse failed Unquoted fields do not allow new line <\"\\r\"> in line 1."},
    {"@type csv\nkeys a,b", "\"\r\",\n", NULL, "parse failed New line must be <\"\\r\"> not <\"\\n\"> in line 1."},
    {"@type csv\nkeys a", "", NULL, "parse failed wrong argument type NilClass (must respond to :each)"},
    /* parser_engine fast: Fluentd's own split */
    {"@type csv\nkeys a,b,c\nparser_engine fast", "1,\"x,y\",\"q \"\"z\"\"\"\n", "{\"a\":\"1\",\"b\":\"x,y\",\"c\":\"q \\\"z\\\"\"}", NULL},
    {"@type csv\nkeys a,b\nparser_type fast", "\"a,\"\"b\"\",c", "{\"a\":\"a,\\\"\\\"b\\\"\",\"b\":\"c\"}", NULL},
    {"@type csv\nkeys a,b,c\nparser_engine fast", ",\"\",x", "{\"a\":null,\"b\":\"\",\"c\":\"x\"}", NULL},
    {"@type csv\nkeys a,b,c\nparser_engine fast", "1,2", "{\"a\":\"1\",\"b\":\"2\"}", NULL},
    {"@type csv\nkeys a\nparser_engine fast", "\r\n", "{}", NULL},
    {"@type csv\nkeys a,b\nparser_engine fast", "\"open,x", "{\"a\":\"open,\"}", NULL},
};

/* msgpack: the bytes' first object, a map, is the record; time_key applies; anything else does not match */
static void test_msgpack(void **st)
{
    tp *t = mk_ok("@type msgpack\ntime_key t\ntime_type unixtime\ntypes n:string");
    /* {"a": [1, nil], "n": 5, "t": 1700000000} then a second object (ignored) */
    static const uint8_t rec[] = {0x83, 0xa1, 'a', 0x92, 0x01, 0xc0, 0xa1, 'n', 0x05, 0xa1, 't',
                                  0xce, 0x65, 0x53, 0xf1, 0x00, 0x81, 0xa1, 'z', 0x01};
    result r = run(t, (const char *)rec, sizeof rec);
    assert_int_equal(r.rc, PARSE_OK);
    assert_string_equal(r.json, "{\"a\":[1,null],\"n\":\"5\"}");
    assert_true(r.has_time);
    assert_int_equal(r.sec, 1700000000);
    free(r.json);
    static const uint8_t arr[] = {0x91, 0x80}, bad[] = {0x83, 0xa1}, intkey[] = {0x81, 0x01, 0x02};
    assert_int_equal(run(t, (const char *)arr, sizeof arr).rc, PARSE_NOMATCH);
    assert_int_equal(run(t, (const char *)bad, sizeof bad).rc, PARSE_NOMATCH);
    assert_int_equal(run(t, (const char *)intkey, sizeof intkey).rc, PARSE_NOMATCH);
    RC(t, "plain text", PARSE_NOMATCH);
    rm(t);
}

static void test_ltsv_csv(void **st)
{
    for (size_t i = 0; i < sizeof kv_cases / sizeof kv_cases[0]; i++) {
        tp *t = mk_ok(kv_cases[i].conf);
        result r = RUN(t, kv_cases[i].text);
        if (kv_cases[i].want) {
            if (r.rc != PARSE_OK)
                fail_msg("case %zu: rc %d (%s)", i, r.rc, r.err);
            if (strcmp(r.json, kv_cases[i].want))
                fail_msg("case %zu: %s, want %s", i, r.json, kv_cases[i].want);
        } else {
            if (r.rc != PARSE_FAIL || strcmp(r.err, kv_cases[i].err))
                fail_msg("case %zu: rc %d err '%s', want '%s'", i, r.rc, r.err, kv_cases[i].err);
        }
        free(r.json);
        rm(t);
    }
    tp *t = mk_ok("@type ltsv\ntime_format %s\nkeep_time_key true");
    result r = RUN(t, "time:1700000000\tk:v");
    assert_int_equal(r.rc, PARSE_OK);
    assert_int_equal(r.sec, 1700000000);
    assert_string_equal(r.json, "{\"time\":\"1700000000\",\"k\":\"v\"}");
    free(r.json);
    rm(t);
    expect_conf_error("@type csv", "p.conf:1: missing required parameter 'keys' in <parse> (@type csv)");
    expect_conf_error("@type csv\nkeys a\nparser_engine turbo",
                      "p.conf:4: invalid value 'turbo' for parameter 'parser_engine'; expected one of: normal, fast");
}

static void test_parse_config_errors(void **st)
{
    expect_conf_error("", "p.conf:1: missing @type in <parse>");
    expect_conf_error("@type jsn", "p.conf:2: unknown parser type 'jsn'; did you mean 'json'?");
    expect_conf_error("@type multi_format",
                      "p.conf:2: parser type 'multi_format' is not supported by weir (supported: json, regexp, cri, "
                      "logfmt, none, grok, ltsv, csv, nginx, apache_error, tsv, apache, apache2, syslog, multiline, "
                      "msgpack)");
    expect_conf_error("@type multiline\nformat1 /^a/\nformat3 /b/",
                      "p.conf:1: Jump of format index found. format2 is missing.");
    expect_conf_error("@type multiline\nformat1 ^(?<a>a)",
                      "p.conf:3: format should be Regexp, need //, in format1: '^(?<a>a)'");
    expect_conf_error("@type multiline\nformat1 /(?<a>a)/\nformat21 /a/",
                      "p.conf:4: unknown parameter 'format21' in <parse>; did you mean 'format1'?");
    expect_conf_error("@type multiline", "p.conf:1: missing required parameter 'format1' in <parse> (@type multiline)");
    expect_conf_error("@type multiline\nformat1 /a/",
                      "p.conf:1: No named captures in 'expression' parameter. The regexp must have at least one named "
                      "capture");
    expect_conf_error("@type syslog\nparser_type fast",
                      "p.conf:3: invalid value 'fast' for parameter 'parser_type'; expected one of: regexp, string");
    expect_conf_error("@type csv\nkeys a\nparser_engine string",
                      "p.conf:4: invalid value 'string' for parameter 'parser_engine'; expected one of: normal, fast");
    expect_conf_error("@type json\ntime_typ float", "p.conf:3: unknown parameter 'time_typ' in <parse>; did you mean 'time_type'?");
    expect_conf_error("@type json\ntime_type epoch",
                      "p.conf:3: invalid value 'epoch' for parameter 'time_type'; expected one of: string, unixtime, "
                      "float, mixed");
    expect_conf_error("@type json\ntime_type mixed",
                      "p.conf:3: time_type is :mixed but time_format and time_format_fallbacks is empty.");
    /* time_type mixed (Fluentd's MixedTimeParser): time_format, then the fallbacks in order; the numeric ones
     * only read numbers */
    tp *m = mk_ok("@type json\ntime_type mixed\ntime_format %d/%m/%Y %H:%M:%S\ntime_format_fallbacks %iso8601, "
                  "unixtime");
    static const struct {
        const char *rec;
        int rc;
        uint32_t sec;
    } mx[] = {
        {"{\"time\":\"14/11/2023 22:13:20\"}", PARSE_OK, 1700000000},
        {"{\"time\":\"2023-11-14T22:13:21Z\"}", PARSE_OK, 1700000001},
        {"{\"time\":1700000002}", PARSE_OK, 1700000002},
        {"{\"time\":\"1700000003\"}", PARSE_OK, 1700000003},
    };
    for (size_t i = 0; i < sizeof mx / sizeof mx[0]; i++) {
        result mr = RUN(m, mx[i].rec);
        assert_int_equal(mr.rc, mx[i].rc);
        assert_int_equal(mr.sec, mx[i].sec);
        free(mr.json);
    }
    result mbad = RUN(m, "{\"time\":\"yesterday\"}");
    assert_int_not_equal(mbad.rc, PARSE_OK);
    free(mbad.json);
    rm(m);
    expect_conf_error("@type json\ntimezone Mars/Olympus",
                      "p.conf:3: unknown time zone 'Mars/Olympus' (no /usr/share/zoneinfo/Mars/Olympus)");
    expect_conf_error("@type json\ntimezone Tokyo",
                      "p.conf:3: timezone 'Tokyo' is not supported: a fixed offset like +09:00 or a zone name like "
                      "Asia/Tokyo");
    /* a zone name: the offset in force at that wall-clock time (summer, winter) */
    tp *z = mk_ok("@type json\ntime_format %Y-%m-%d %H:%M:%S\ntimezone Europe/Paris");
    result zr = RUN(z, "{\"time\":\"2023-07-01 12:00:00\"}");
    assert_int_equal(zr.rc, PARSE_OK);
    assert_int_equal(zr.sec, 1688205600);
    free(zr.json);
    zr = RUN(z, "{\"time\":\"2023-12-01 12:00:00\"}");
    assert_int_equal(zr.sec, 1701428400);
    free(zr.json);
    rm(z);
    expect_conf_error("@type json\njson_parser fast",
                      "p.conf:3: invalid value 'fast' for parameter 'json_parser'; expected one of: oj, yajl, json");
    expect_conf_error("@type json\nkeep_time_key maybe", "p.conf:3: invalid boolean value 'maybe' for parameter 'keep_time_key'");
    tp *t = mk_ok("@type json\njson_parser oj\nstream_buffer_size 8192");
    rm(t);
}

static void test_scrub(void **st)
{
    wbuf o = {0};
    assert_int_equal(parse_scrub(&o, (const uint8_t *)"a\xff\xc3\xa9\xe2\x82z\xed\xa0\x80", 10), 0);
    assert_int_equal(o.len, 7);
    assert_memory_equal(o.data, "a?\xc3\xa9?z?", 7);
    wbuf_free(&o);
    assert_int_equal(rx_utf8_valid((const uint8_t *)"plain ascii text over eight", 27), 1);
    assert_int_equal(rx_utf8_valid((const uint8_t *)"\xf0\x9f\x98\x80", 4), 1);
    assert_int_equal(rx_utf8_valid((const uint8_t *)"\xf0\x9f\x98", 3), 0);
    assert_int_equal(rx_utf8_valid((const uint8_t *)"\xc0\x80", 2), 0);        /* overlong */
    assert_int_equal(rx_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3), 0);    /* surrogate */
    assert_int_equal(rx_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4), 0); /* > U+10FFFF */
}

/* ---- time parsing ------------------------------------------------------------------------------- */

static void tp_expect(const char *tfmt, int utc, const char *tz, const char *text, int64_t want_sec,
                      uint32_t want_nsec)
{
    tparse t;
    char err[256];
    assert_int_equal(tparse_init(&t, TP_STRING, tfmt, 1, utc, tz, err, sizeof err), 0);
    uint32_t s = 0, ns = 0;
    if (tparse_text(&t, text, strlen(text), &s, &ns) != 0)
        fail_msg("'%s' with format %s did not parse", text, tfmt ? tfmt : "(none)");
    if (want_sec >= 0)
        assert_int_equal(s, want_sec);
    assert_int_equal(ns, want_nsec);
    tparse_free(&t);
}

static void tp_fail(const char *tfmt, const char *text)
{
    tparse t;
    char err[256];
    assert_int_equal(tparse_init(&t, TP_STRING, tfmt, 1, 1, NULL, err, sizeof err), 0);
    uint32_t s, ns;
    if (tparse_text(&t, text, strlen(text), &s, &ns) == 0)
        fail_msg("'%s' with format %s parsed", text, tfmt ? tfmt : "(none)");
    tparse_free(&t);
}

static void test_strptime(void **st)
{
    /* a huge width reads what is there; a number too long for a time is refused, not overflowed */
    tp_expect("%99999999999999999999Y-%m-%d", 1, NULL, "2024-01-02", 1704153600, 0);
    tp_fail("%s", "9999999999999999999");
    tp_fail("%Q", "99999999999999999999");
    tp_expect("%Y-%m-%dT%H:%M:%S.%N%z", 1, NULL, "2024-01-02T03:04:05.5Z", 1704164645, 500000000);
    tp_expect("%Y-%m-%dT%H:%M:%S.%L%z", 1, NULL, "2024-01-02T03:04:05.123+0900", 1704132245, 123000000);
    tp_expect("%Y-%m-%d %H:%M:%S.%3N", 1, NULL, "2024-01-02 03:04:05.1234", 1704164645, 123000000);
    tp_expect("%d/%b/%Y:%H:%M:%S %z", 1, NULL, "10/Oct/2000:13:55:36 -0700", 971211336, 0);
    tp_expect("%s", 1, NULL, "1700000000", 1700000000, 0);
    tp_expect("%Q", 1, NULL, "1700000000123", 1700000000, 123000000);
    tp_expect("%F %T", 1, NULL, "2024-02-29 23:59:60", 1709251200, 0);
    tp_expect("%y%m%d %I:%M %p", 1, NULL, "240102 03:04 PM", 1704207840, 0);
    tp_expect("%y%m%d %I:%M %p", 1, NULL, "700102 12:04 am", 86640, 0);
    tp_expect("%Y %j", 1, NULL, "2024 060", 1709164800, 0);
    tp_expect("%a %B %e %H:%M:%S %Y", 1, NULL, "Tue January  2 03:04:05 2024", 1704164645, 0);
    tp_expect("%Y-%m-%d %H:%M:%S", 0, "+09:00", "2024-01-02 12:00:00", 1704164400, 0);
    tp_expect("%Y-%m-%d %H:%M:%S %Z", 1, NULL, "2024-01-02 12:00:00 UTC", 1704196800, 0);
    tp_expect("%Y-%m-%d %H:%M:%S", 1, NULL, "2024-01-02 12:00:00 trailing text", 1704196800, 0);
    tp_fail("%Y-%m-%d", "2024-13-01");
    tp_fail("%Y-%m-%d", "24-01-01");
    tp_fail("%H:%M", "12-30");
    tp_fail("%Y%q", "2024x");
    /* syslog: no year -> this year */
    tparse t;
    char err[128];
    assert_int_equal(tparse_init(&t, TP_STRING, "%b %d %H:%M:%S", 1, 1, NULL, err, sizeof err), 0);
    uint32_t s, ns;
    assert_int_equal(tparse_text(&t, "Jan 02 03:04:05", 15, &s, &ns), 0);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    assert_int_equal(s, days_from_civil(tm.tm_year + 1900, 1, 2) * 86400 + 3 * 3600 + 4 * 60 + 5);
    tparse_free(&t);
}

static void test_flexible_time(void **st)
{
    tp_expect(NULL, 1, NULL, "2024-01-02T03:04:05Z", 1704164645, 0);
    tp_expect(NULL, 1, NULL, "2024-01-02 03:04:05 +0900", 1704132245, 0);
    tp_expect(NULL, 1, NULL, "2024-01-02T03:04:05.123456789+01:00", 1704161045, 123456789);
    tp_expect(NULL, 1, NULL, "2024-01-02T03:04:05,5", 1704164645, 500000000);
    tp_expect(NULL, 1, NULL, "2024/01/02 03:04", 1704164640, 0);
    tp_expect(NULL, 1, NULL, "2024-01-02", 1704153600, 0);
    tp_expect(NULL, 1, NULL, "  2024-01-02T03:04:05 UTC ", 1704164645, 0);
    tp_expect(NULL, 1, NULL, "10/Oct/2000:13:55:36 -0700", 971211336, 0);
    tp_expect(NULL, 1, NULL, "Tue, 10 Oct 2000 13:55:36 +0000", 971186136, 0);
    tp_expect(NULL, 1, NULL, "10 Oct 2000 13:55:36 GMT", 971186136, 0);
    tp_expect(NULL, 1, NULL, "Tue Oct 10 13:55:36 2000", 971186136, 0);
    tp_expect("%iso8601", 1, NULL, "2000-10-10T13:55:36.25-07:00", 971211336, 250000000);
    tp_fail(NULL, "yesterday");
    tp_fail(NULL, "2024-01-02T03:04:05 +99:00");
    tp_fail(NULL, "1700000000");
    tp_fail(NULL, "1969-12-31T23:59:59Z");
}

static void test_local_time(void **st)
{
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    setenv("TZ", "JST-9", 1);
    tzset();
    tp_expect("%Y-%m-%d %H:%M:%S", 0, NULL, "2024-01-01 09:00:00", 1704067200, 0);       /* localtime */
    tp_expect("%Y-%m-%d %H:%M:%S %z", 0, NULL, "2024-01-01 09:00:00 +0000", 1704099600, 0); /* zone in text wins */
    tp_expect("%Y-%m-%d %H:%M:%S", 1, NULL, "2024-01-01 09:00:00", 1704099600, 0);       /* utc true */
    if (saved) {
        setenv("TZ", saved, 1);
        free(saved);
    } else {
        unsetenv("TZ");
    }
    tzset();
}

static void test_numeric_time(void **st)
{
    tparse f, u;
    char err[256];
    assert_int_equal(tparse_init(&f, TP_FLOAT, NULL, 1, 0, NULL, err, sizeof err), 0);
    assert_int_equal(tparse_init(&u, TP_UNIXTIME, NULL, 1, 0, NULL, err, sizeof err), 0);
    static const struct {
        const char *json;
        int64_t fs;
        uint32_t fns;
        int64_t us;
    } cases[] = {
        {"1700000000", 1700000000, 0, 1700000000},
        {"1700000000.123", 1700000000, 123000000, 1700000000},
        {"\"1700000000.000000001\"", 1700000000, 1, 1700000000},
        {"\"1700000000.1234567891\"", 1700000000, 123456789, 1700000000},
        {"\"1_700_000_000\"", 1700000000, 0, 1700000000},
        {"\"abc\"", 0, 0, 0},
        {"1e20", -1, 0, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wbuf v = J(cases[i].json);
        uint32_t s = 0, ns = 0;
        int rc = tparse_value(&f, v.data, v.len, &s, &ns, err, sizeof err);
        if (cases[i].fs < 0) {
            assert_int_equal(rc, 0); /* "1.0e+20": sec "1" */
            assert_int_equal(s, 1);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(s, cases[i].fs);
            assert_int_equal(ns, cases[i].fns);
        }
        rc = tparse_value(&u, v.data, v.len, &s, &ns, err, sizeof err);
        if (cases[i].us < 0) {
            assert_int_equal(rc, -1);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(s, cases[i].us);
        }
        wbuf_free(&v);
    }
    wbuf v = J("true");
    uint32_t s, ns;
    assert_int_equal(tparse_value(&f, v.data, v.len, &s, &ns, err, sizeof err), -1);
    assert_string_equal(err, "value must be a string or a number: true");
    wbuf_free(&v);
    v = J("-5");
    assert_int_equal(tparse_value(&u, v.data, v.len, &s, &ns, err, sizeof err), -1);
    assert_string_equal(err, "invalid time format: value = -5");
    wbuf_free(&v);
    tparse_free(&f);
    tparse_free(&u);
}

static void test_ruby_numbers(void **st)
{
    assert_int_equal(ruby_str_to_i("  -12abc", 8), -12);
    assert_int_equal(ruby_str_to_i("1_000", 5), 1000);
    assert_int_equal(ruby_str_to_i("1__0", 4), 1);
    assert_int_equal(ruby_str_to_i("x1", 2), 0);
    assert_int_equal(ruby_str_to_i("99999999999999999999", 20), INT64_MAX);
    assert_true(ruby_str_to_f("1.5e3x", 6) == 1500.0);
    assert_true(ruby_str_to_f(".5", 2) == 0.5);
    assert_true(ruby_str_to_f("1.", 2) == 1.0);
    assert_true(ruby_str_to_f("1e", 2) == 1.0);
    assert_true(ruby_str_to_f("-2_0.5", 6) == -20.5);
    assert_true(ruby_str_to_f("0x10", 4) == 0.0);
    assert_true(ruby_str_to_f("inf", 3) == 0.0);
    int32_t off;
    assert_int_equal(tz_offset("+09:00", 6, &off), 0);
    assert_int_equal(off, 32400);
    assert_int_equal(tz_offset("-0330", 5, &off), 0);
    assert_int_equal(off, -12600);
    assert_int_equal(tz_offset("+05", 3, &off), 0);
    assert_int_equal(off, 18000);
    assert_int_equal(tz_offset("Z", 1, &off), 0);
    assert_int_equal(off, 0);
    assert_int_equal(tz_offset("+9", 2, &off), -1);
    assert_int_equal(tz_offset("+09:", 4, &off), -1);
    assert_int_equal(tz_offset("+24:00", 6, &off), -1);
    assert_int_equal(tz_offset("EST", 3, &off), -1);
    assert_int_equal(days_from_civil(1970, 1, 1), 0);
    assert_int_equal(days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(days_from_civil(2024, 2, 30), days_from_civil(2024, 3, 1)); /* Ruby's Time.local */
    assert_int_equal(days_from_civil(1969, 12, 31), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_values),   cmocka_unit_test(test_json_numbers),
        cmocka_unit_test(test_json_invalid),  cmocka_unit_test(test_json_string_sizes),
        cmocka_unit_test(test_json_time),     cmocka_unit_test(test_types_and_nulls),
        cmocka_unit_test(test_regexp),        cmocka_unit_test(test_cri),
        cmocka_unit_test(test_logfmt),        cmocka_unit_test(test_none),
        cmocka_unit_test(test_ltsv_csv),
        cmocka_unit_test(test_msgpack),
        cmocka_unit_test(test_parse_config_errors), cmocka_unit_test(test_scrub),
        cmocka_unit_test(test_strptime),      cmocka_unit_test(test_flexible_time),
        cmocka_unit_test(test_local_time),    cmocka_unit_test(test_numeric_time),
        cmocka_unit_test(test_ruby_numbers),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rx_thread_cleanup();
    return rc;
}
