/* Unit tests: msgpack -> JSON and the <format>/<inject> text forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/json.h"
#include "lib/timefmt.h"
#include "lib/tzfile.h"
#include "lib/wbuf.h"
#include "outputs/format.h"
#include "filter_test_util.h"

static char *to_json(const wbuf *m)
{
    wbuf out = {0};
    const uint8_t *p = m->data;
    assert_int_equal(jw_value(&out, &p, m->data + m->len), 0);
    assert_ptr_equal(p, m->data + m->len);
    wbuf_addc(&out, 0);
    return (char *)out.data;
}

static void test_scalars_and_nesting(void **st)
{
    wbuf m = {0};
    mpw_map(&m, 7);
    mpw_str(&m, "s", 1);
    mpw_str(&m, "a\"b\\c\n\x01", 7);
    mpw_str(&m, "i", 1);
    mpw_int(&m, -42);
    mpw_str(&m, "u", 1);
    mpw_uint(&m, 18446744073709551615ull);
    mpw_str(&m, "f", 1);
    mpw_double(&m, 0.1);
    mpw_str(&m, "b", 1);
    mpw_bool(&m, 1);
    mpw_str(&m, "n", 1);
    mpw_nil(&m);
    mpw_str(&m, "a", 1);
    mpw_array(&m, 2);
    mpw_double(&m, 2.0);
    mpw_map(&m, 0);
    char *j = to_json(&m);
    assert_string_equal(j, "{\"s\":\"a\\\"b\\\\c\\n\\u0001\",\"i\":-42,\"u\":18446744073709551615,\"f\":0.1,"
                           "\"b\":true,\"n\":null,\"a\":[2.0,{}]}");
    free(j);
    wbuf_free(&m);
}

static void test_invalid_utf8_bin_ext(void **st)
{
    wbuf m = {0};
    mpw_array(&m, 5);
    mpw_str(&m, "ok \xc3\xa9 \xe2\x82\xac", 9);      /* valid 2 and 3 byte sequences kept */
    mpw_str(&m, "bad \xff\xc3(", 7);                  /* invalid bytes -> U+FFFD each */
    wbuf_add(&m, "\xc4\x03" "abc", 5);                /* bin -> string */
    wbuf_add(&m, "\xd6\x05" "\x01\x02\x03\x04", 6);   /* ext 5 -> base64 of payload */
    mpw_eventtime(&m, 1700000000, 500000000);        /* EventTime -> whole seconds (Fluentd) */
    char *j = to_json(&m);
    assert_string_equal(j, "[\"ok \xc3\xa9 \xe2\x82\xac\",\"bad \xef\xbf\xbd\xef\xbf\xbd(\",\"abc\",\"AQIDBA==\","
                           "1700000000]");
    free(j);
    wbuf_free(&m);
}

/* Reference escaper: byte at a time, the rules of format.h. */
static void ref_escape(wbuf *o, const uint8_t *s, size_t n)
{
    wbuf_addc(o, '"');
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        if (c >= 0x80) {
            size_t k = 0;
            if (c >= 0xc2 && c <= 0xdf && i + 1 < n && (s[i + 1] & 0xc0) == 0x80)
                k = 2;
            else if (c >= 0xe0 && c <= 0xef && i + 2 < n && (s[i + 1] & 0xc0) == 0x80 && (s[i + 2] & 0xc0) == 0x80 &&
                     !(c == 0xe0 && s[i + 1] < 0xa0) && !(c == 0xed && s[i + 1] > 0x9f))
                k = 3;
            else if (c >= 0xf0 && c <= 0xf4 && i + 3 < n && (s[i + 1] & 0xc0) == 0x80 &&
                     (s[i + 2] & 0xc0) == 0x80 && (s[i + 3] & 0xc0) == 0x80 && !(c == 0xf0 && s[i + 1] < 0x90) &&
                     !(c == 0xf4 && s[i + 1] > 0x8f))
                k = 4;
            if (k) {
                wbuf_add(o, s + i, k);
                i += k;
            } else {
                wbuf_add(o, "\xef\xbf\xbd", 3);
                i++;
            }
            continue;
        }
        char tmp[8];
        if (c == '"' || c == '\\') {
            tmp[0] = '\\';
            tmp[1] = (char)c;
            wbuf_add(o, tmp, 2);
        } else if (c == '\n') {
            wbuf_add(o, "\\n", 2);
        } else if (c == '\r') {
            wbuf_add(o, "\\r", 2);
        } else if (c == '\t') {
            wbuf_add(o, "\\t", 2);
        } else if (c == '\b') {
            wbuf_add(o, "\\b", 2);
        } else if (c == '\f') {
            wbuf_add(o, "\\f", 2);
        } else if (c < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", c);
            wbuf_add(o, tmp, 6);
        } else {
            wbuf_addc(o, c);
        }
        i++;
    }
    wbuf_addc(o, '"');
}

/* The 16- and 8-bytes-at-a-time paths must agree with the reference on any input. */
static void test_string_escape_differential(void **st)
{
    static const uint8_t alphabet[] = {'a', 'Z', ' ', '~', 0x7f, '"', '\\', '\n', 0x01, 0x1f, 0x20, 0xc3, 0xa9,
                                       0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xff, 0xc0, 0x80, 0xed, 0xa0};
    uint32_t seed = 12345;
    uint8_t s[64];
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = (size_t)(iter % 64);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            /* mostly plain ASCII so the fast paths (16 and 8 bytes) run, some
             * specials: one in 4, or one in 40 for long clean runs */
            unsigned every = iter % 2 ? 4 : 40;
            s[i] = (seed >> 24) % every ? (uint8_t)('a' + (seed >> 16) % 26) : alphabet[(seed >> 16) % sizeof alphabet];
        }
        /* input and output in allocations of the exact size, so that ASan
         * catches a read past the string or a store past the reserve */
        uint8_t *in = malloc(n ? n : 1);
        memcpy(in, s, n);
        wbuf a = {.data = malloc(n * 6 + 18), .cap = n * 6 + 18}, b = {0};
        assert_int_equal(jw_string(&a, in, n), 0);
        free(in);
        ref_escape(&b, s, n);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        wbuf_free(&a);
        wbuf_free(&b);
    }
}

static void test_non_string_keys(void **st)
{
    wbuf m = {0};
    mpw_map(&m, 1);
    mpw_int(&m, 7);
    mpw_str(&m, "v", 1);
    char *j = to_json(&m);
    assert_string_equal(j, "{\"7\":\"v\"}");
    free(j);
    wbuf_free(&m);
}

static void test_time_format(void **st)
{
    char buf[64];
    time_fmt(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S.%LZ", 1700000000, 123456789, 1);
    assert_string_equal(buf, "2023-11-14T22:13:20.123Z");
    time_fmt(buf, sizeof buf, "%s.%N|%6N|%%N", 1700000000, 1234, 1);
    assert_string_equal(buf, "1700000000.000001234|000001|%N");
    /* fixed offsets, as Ruby's Time#localtime("+09:00").strftime: %z +0900, %:z +09:00, %Z empty, %s the epoch */
    static const struct {
        const char *format;
        int zone;
        int32_t off;
        const char *want;
    } zc[] = {
        {"%Y-%m-%d %H:%M:%S %z", TIMEFMT_FIXED, 9 * 3600, "2023-11-15 07:13:20 +0900"},
        {"%H:%M %z|%:z|%Z|", TIMEFMT_FIXED, -(5 * 3600 + 30 * 60), "16:43 -0530|-05:30||"},
        {"%d %H:%M:%S.%L %z", TIMEFMT_FIXED, 0, "14 22:13:20.123 +0000"},
        {"%s %Z %z", TIMEFMT_UTC, 0, "1700000000 UTC +0000"},
        {"%s", TIMEFMT_FIXED, 3600, "1700000000"},
        {"%Y%m%d", TIMEFMT_FIXED, -23 * 3600, "20231113"},
    };
    for (size_t i = 0; i < sizeof zc / sizeof zc[0]; i++) {
        size_t n = time_fmt_zone(buf, sizeof buf, zc[i].format, 1700000000, 123456789, zc[i].zone, zc[i].off);
        assert_int_equal(n, strlen(zc[i].want));
        assert_string_equal(buf, zc[i].want);
    }
    time_iso8601_zone(buf, sizeof buf, 1700000000, TIMEFMT_FIXED, 9 * 3600);
    assert_string_equal(buf, "2023-11-15T07:13:20+09:00");
    time_iso8601_zone(buf, sizeof buf, 1700000000, TIMEFMT_FIXED, 0);
    assert_string_equal(buf, "2023-11-14T22:13:20+00:00"); /* a fixed +00:00 is not "Z" */
    time_iso8601(buf, sizeof buf, 1700000000, 1);
    assert_string_equal(buf, "2023-11-14T22:13:20Z");
    /* zones of the TZ database: transitions, then the file's POSIX rule (2100 is past the last transition) */
    static const struct {
        const char *zone;
        int64_t t;
        int32_t off;
    } dbc[] = {
        {"Asia/Tokyo", 1700000000, 9 * 3600},       {"Asia/Tokyo", -1000000000, 9 * 3600},
        {"Europe/Paris", 1700000000, 3600},         {"Europe/Paris", 1690000000, 7200},
        {"Europe/Paris", 1679792399, 3600},         {"Europe/Paris", 1679792400, 7200}, /* 2023-03-26 01:00Z */
        {"Europe/Paris", 4118000000, 7200},         {"Europe/Paris", 4102444800, 3600},
        {"Australia/Sydney", 4102444800, 39600},    {"Australia/Sydney", 4118000000, 36000},
        {"America/New_York", 1700000000, -18000},   {"America/Argentina/Buenos_Aires", 1700000000, -10800},
        {"Asia/Kolkata", 1700000000, 19800},
    };
    for (size_t i = 0; i < sizeof dbc / sizeof dbc[0]; i++) {
        tz_zone z;
        char err[256];
        if (tz_zone_load(&z, dbc[i].zone, err, sizeof err))
            fail_msg("%s", err);
        if (tz_zone_offset(&z, dbc[i].t) != dbc[i].off)
            fail_msg("%s at %lld: %d, want %d", dbc[i].zone, (long long)dbc[i].t, tz_zone_offset(&z, dbc[i].t),
                     dbc[i].off);
        tz_zone_free(&z);
    }
    static const struct {
        const char *name;
        int ok;
    } names[] = {{"Asia/Tokyo", 1}, {"America/Argentina/Buenos_Aires", 1}, {"UTC", 0},     {"a/b/c/d", 0},
                 {"/etc/passwd", 0}, {"Asia/../../etc", 0},           {"Asia/", 0},    {"./x", 0}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (tz_zone_name(names[i].name) != names[i].ok)
            fail_msg("tz_zone_name(%s) != %d", names[i].name, names[i].ok);
}

/* <format>/<inject> lines (inside <match>) -> the formatted record; want NULL: a configuration error
 * containing err. The csv lines are what Ruby 3.1's CSV.generate_line writes (Fluentd's formatter_csv). */
static const struct {
    const char *format, *inject, *record, *want, *err;
} fcases[] = {
    {"@type csv\nfields msg,n", NULL, "{\"msg\":\"a,b \\\"q\\\"\",\"n\":5}", "\"a,b \"\"q\"\"\",\"5\"\n", NULL},
    {"@type csv\nfields a,missing,n,f,t,z\nforce_quotes false", NULL,
     "{\"a\":\"plain\",\"n\":null,\"f\":1.5,\"t\":true,\"z\":\"\"}", "plain,,,1.5,true,\"\"\n", NULL},
    {"@type csv\nfields a,b,c,d\nforce_quotes false", NULL, "{\"a\":\"x,y\",\"b\":\"q\\\"\",\"c\":\"n\\nl\",\"d\":\" sp\"}",
     "\"x,y\",\"q\"\"\",\"n\nl\", sp\n", NULL},
    {"@type csv\nfields a,n\nforce_quotes false\ndelimiter TAB\nadd_newline false", NULL, "{\"a\":\"x,y\",\"n\":-3}",
     "x,y\t-3", NULL},
    {"@type csv\nfields a,n\ndelimiter \\t", NULL, "{\"a\":\"x\",\"n\":2}", "\"x\"\t\"2\"\n", NULL},
    {"@type csv\nfields $.a.b,tag,,", "tag_key tag", "{\"a\":{\"b\":7}}", "\"7\",\"app.x\"\n", NULL},
    {"@type csv\nfields n", "tag_key tag\ntime_key time", "{\"n\":1}", "\"1\"\n", NULL}, /* only the fields */
    {"@type csv\nfields h,a,f\nforce_quotes false", NULL, "{\"h\":{\"a\":[1,null,\"s\"]},\"a\":[],\"f\":1e20}",
     "\"{\"\"a\"\"=>[1, nil, \"\"s\"\"]}\",[],1.0e+20\n", NULL}, /* Ruby's Hash#to_s, Array#to_s, Float#to_s */
    /* ltsv, single_value: Fluentd's value.to_s */
    {"@type ltsv", NULL, "{\"s\":\"x\",\"n\":null,\"h\":{\"a\":[1,null]},\"f\":1.5,\"b\":true}",
     "s:x\tn:\th:{\"a\"=>[1, nil]}\tf:1.5\tb:true\n", NULL},
    {"@type single_value\nmessage_key h", NULL, "{\"h\":{\"k\":\"v\\tw\"}}", "{\"k\"=>\"v\\tw\"}\n", NULL},
    {"@type single_value\nmessage_key n\nadd_newline false", NULL, "{\"n\":null}", "", NULL},
    {"@type csv", NULL, "{}", NULL, "missing required parameter 'fields'"},
    /* tsv, hash: formatter_tsv's keys.map { record[k].to_s }.join(delimiter), formatter_hash's record.to_s */
    {"@type tsv\nkeys a,none,n,h,tag", "tag_key tag", "{\"a\":\"x y\",\"n\":null,\"h\":{\"k\":[1.5,false]}}",
     "x y\t\t\t{\"k\"=>[1.5, false]}\tapp.x\n", NULL},
    {"@type tsv\nkeys b,a\ndelimiter ,\nadd_newline false", NULL, "{\"a\":1,\"b\":\"q\\\"\"}", "q\",1", NULL},
    {"@type tsv", NULL, "{}", NULL, "missing required parameter 'keys' in <format> (@type tsv)"},
    {"@type hash", "tag_key tag", "{\"s\":\"a\\\"b\\n\",\"n\":-2,\"z\":null}",
     "{\"s\"=>\"a\\\"b\\n\", \"n\"=>-2, \"z\"=>nil, \"tag\"=>\"app.x\"}\n", NULL},
    {"@type hash\nadd_newline false", NULL, "{}", "{}", NULL},
    {"@type csv\nfields ,", NULL, "{}", NULL, "empty value is specified in fields parameter"},
    /* timezone: <inject>'s string time, <format>'s time (out_file), a fixed offset wins over utc/localtime */
    {"@type ltsv", "time_key time\ntime_type string\ntime_format %Y-%m-%d %H:%M:%S %z\ntimezone +09:00\nutc true",
     "{\"msg\":\"tab\\there\"}", "msg:tab here\ttime:2023-11-15 07:13:22 +0900\n", NULL},
    {"@type json", "time_key t\ntime_type string\ntimezone -0500", "{}", "{\"t\":\"2023-11-14T17:13:22-05:00\"}\n", NULL},
    {"@type json", "time_key t\ntime_type string\ntimezone UTC", "{}", "{\"t\":\"2023-11-14T22:13:22+00:00\"}\n", NULL},
    {"@type out_file\ntimezone +01\noutput_tag false", NULL, "{}", "2023-11-14T23:13:22+01:00\t{}\n", NULL},
    /* <format> time_type (v0.12's time_as_epoch): Fluentd's NumericTimeFormatter */
    {"@type out_file\ntime_type unixtime\noutput_tag false", NULL, "{}", "1700000002\t{}\n", NULL},
    {"@type out_file\ntime_type float", NULL, "{}", "1700000002.000000005\tapp.x\t{}\n", NULL},
    {"@type out_file\ntime_format %H:%M %z\ntimezone -03:30\nlocaltime true", NULL, "{}", "18:43 -0330\tapp.x\t{}\n", NULL},
    {"@type json", "time_key t\ntime_type string\ntimezone Asia/Tokyo", "{}", "{\"t\":\"2023-11-15T07:13:22+09:00\"}\n",
     NULL},
    {"@type out_file\ntime_format %Y-%m-%d %H:%M %z %Z|\ntimezone Europe/Paris\noutput_tag false", NULL, "{}",
     "2023-11-14 23:13 +0100 |\t{}\n", NULL},
    {"@type json", "time_key t\ntime_type string\ntimezone Mars/Olympus", "{}", NULL,
     "t.conf:8: unknown time zone 'Mars/Olympus' (no "},
    {"@type out_file\ntimezone +9", NULL, "{}", NULL,
     "t.conf:4: timezone '+9' is not supported: a fixed offset like +09:00 or a zone name like Asia/Tokyo"},
    {"@type out_file\ntimezone Japan", NULL, "{}", NULL, "t.conf:4: timezone 'Japan' is not supported"},
    {"@type out_file\ntimezone ../etc/passwd", NULL, "{}", NULL, "timezone '../etc/passwd' is not supported"},
};

static void test_csv_and_timezone(void **st)
{
    for (size_t i = 0; i < sizeof fcases / sizeof fcases[0]; i++) {
        char text[1024];
        snprintf(text, sizeof text, "<match x>\n  <format>\n%s\n  </format>\n%s%s%s</match>\n", fcases[i].format,
                 fcases[i].inject ? "  <inject>\n" : "", fcases[i].inject ? fcases[i].inject : "",
                 fcases[i].inject ? "\n  </inject>\n" : "");
        conf_errors errs = {0};
        conf_node *root = conf_parse_string(text, "t.conf", &errs);
        assert_non_null(root);
        fmt f;
        int rc = fmt_configure(&f, root->children[0], FMT_JSON, &errs);
        if (!fcases[i].want) {
            if (rc != -1 || errs.n != 1 || !strstr(errs.msgs[0], fcases[i].err))
                fail_msg("case %zu: rc %d, %zu errors (%s), want '%s'", i, rc, errs.n, errs.n ? errs.msgs[0] : "",
                         fcases[i].err);
        } else {
            if (rc || errs.n)
                fail_msg("case %zu: %s", i, errs.n ? errs.msgs[0] : "configure failed");
            wbuf rec = J(fcases[i].record), out = {0};
            entry e = {.sec = 1700000002, .nsec = 5, .record = rec.data, .record_len = rec.len};
            assert_int_equal(fmt_record(&f, &out, "app.x", 5, &e), 0);
            wbuf_addc(&out, 0);
            if (strcmp((char *)out.data, fcases[i].want))
                fail_msg("case %zu: '%s', want '%s'", i, (char *)out.data, fcases[i].want);
            wbuf_free(&out);
            wbuf_free(&rec);
        }
        fmt_free(&f);
        conf_errors_free(&errs);
        conf_free(root);
    }
}

static void test_record_formats(void **st)
{
    /* build a <match> with <format> and <inject> through the config parser */
    const char *text = "<match x>\n"
                       "  <format>\n    @type json\n  </format>\n"
                       "  <inject>\n    time_key t\n    tag_key tg\n    metadata_key meta\n  </inject>\n"
                       "</match>\n";
    conf_errors errs = {0};
    conf_node *root = conf_parse_string(text, "t.conf", &errs);
    assert_non_null(root);
    assert_int_equal(errs.n, 0);
    fmt f;
    assert_int_equal(fmt_configure(&f, root->children[0], FMT_OUT_FILE, &errs), 0);
    wbuf rec = {0}, meta = {0};
    mpw_map(&rec, 2);
    mpw_str(&rec, "t", 1); /* replaced by the injected time */
    mpw_str(&rec, "old", 3);
    mpw_str(&rec, "k", 1);
    mpw_int(&rec, 1);
    mpw_map(&meta, 1);
    mpw_str(&meta, "m", 1);
    mpw_int(&meta, 2);
    entry e = {.sec = 1700000000, .nsec = 250000000, .record = rec.data, .record_len = rec.len,
               .meta = meta.data, .meta_len = meta.len};
    wbuf out = {0};
    assert_int_equal(fmt_record(&f, &out, "app.x", 5, &e), 0);
    wbuf_addc(&out, 0);
    assert_string_equal((char *)out.data, "{\"t\":1700000000.25,\"k\":1,\"tg\":\"app.x\",\"meta\":{\"m\":2}}\n");
    fmt_free(&f);
    /* out_file default: TIME\tTAG\tJSON */
    conf_free(root);
    root = conf_parse_string("<match x>\n  <format>\n    @type out_file\n    utc true\n  </format>\n</match>\n",
                             "t.conf", &errs);
    assert_int_equal(fmt_configure(&f, root->children[0], FMT_OUT_FILE, &errs), 0);
    out.len = 0;
    e.meta = NULL;
    assert_int_equal(fmt_record(&f, &out, "app.x", 5, &e), 0);
    wbuf_addc(&out, 0);
    assert_string_equal((char *)out.data, "2023-11-14T22:13:20Z\tapp.x\t{\"t\":\"old\",\"k\":1}\n");
    fmt_free(&f);
    /* single_value */
    conf_free(root);
    root = conf_parse_string("<match x>\n  <format>\n    @type single_value\n    message_key t\n  </format>\n</match>\n",
                             "t.conf", &errs);
    assert_int_equal(fmt_configure(&f, root->children[0], FMT_OUT_FILE, &errs), 0);
    out.len = 0;
    assert_int_equal(fmt_record(&f, &out, "app.x", 5, &e), 0);
    wbuf_addc(&out, 0);
    assert_string_equal((char *)out.data, "old\n");
    fmt_free(&f);
    assert_int_equal(errs.n, 0);
    conf_free(root);
    wbuf_free(&out);
    wbuf_free(&rec);
    wbuf_free(&meta);
}

static void test_bad_format_type(void **st)
{
    conf_errors errs = {0};
    conf_node *root = conf_parse_string("<match x>\n  <format>\n    @type xml\n  </format>\n</match>\n", "t.conf", &errs);
    fmt f;
    assert_int_equal(fmt_configure(&f, root->children[0], FMT_JSON, &errs), -1);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], "t.conf:3:"));
    assert_non_null(strstr(errs.msgs[0], "xml"));
    fmt_free(&f);
    conf_errors_free(&errs);
    conf_free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars_and_nesting), cmocka_unit_test(test_invalid_utf8_bin_ext),
        cmocka_unit_test(test_non_string_keys),     cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_string_escape_differential),
        cmocka_unit_test(test_record_formats),      cmocka_unit_test(test_bad_format_type),
        cmocka_unit_test(test_csv_and_timezone),
    };
    return cmocka_run_group_tests_name("format", tests, NULL, NULL);
}
