/*
 * Unit tests: the Ruby expressions of enable_ruby (aggregator/ruby_*.c).
 * Each row is an expression, evaluated for one event (tag
 * "app.web.frontend", time 1700000000.123456789, TZ=UTC, the record below)
 * and compared with what Ruby 3.1 gives (the value as JSON, or the text of
 * to_s), or with Ruby's error. Rows were checked against `ruby -e` where
 * the machine has Ruby; the differential cases against Fluentd itself are
 * test/integration/conformance/ruby-*.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <time.h>

#include "aggregator/ruby_expr.h"
#include "filter_test_util.h"

static const char *RECORD =
    "{\"log\": \"  GET /api/v1/users?id=42 HTTP/1.1  \", \"level\": \"warn\", \"n\": 7, \"f\": 2.5, \"neg\": -3,"
    " \"ok\": true, \"nil\": null, \"s\": \"h\\u00e9llo, w\\u00f6rld\", \"csv\": \"a,b,,c,,\","
    " \"kubernetes\": {\"namespace_name\": \"prod\", \"labels\": {\"app\": \"web\", \"app.kubernetes.io/name\": \"w\"},"
    " \"pod_name\": \"web-7d4b9c-x2k\"}, \"list\": [1, \"two\", [3]], \"num_s\": \" 12abc\", \"e\": \"\"}";

static rb_env env_of(const wbuf *rec)
{
    return (rb_env){"app.web.frontend", 16, 1700000000, 123456789, rec->data, rec->len, "node-1", 6};
}

typedef struct row {
    const char *code;
    const char *want; /* JSON of the value; or the text (text rows) */
} row;

static void check_values(const row *rows, int text)
{
    wbuf rec = J(RECORD);
    rb_env env = env_of(&rec);
    for (const row *r = rows; r->code; r++) {
        char err[256] = "";
        rb_node *e = rb_compile(r->code, strlen(r->code), err, sizeof err);
        if (!e)
            fail_msg("%s: compile error: %s", r->code, err);
        wbuf out = {0};
        int rc = text ? rb_eval_text(e, &env, &out, err, sizeof err) : rb_eval_value(e, &env, &out, err, sizeof err);
        if (rc)
            fail_msg("%s: runtime error: %s", r->code, err);
        char *got = text ? strndup(out.len ? (const char *)out.data : "", out.len) : M2J(out.data, out.len);
        if (strcmp(got, r->want))
            fail_msg("%s: got %s, want %s", r->code, got, r->want);
        free(got);
        wbuf_free(&out);
        rb_free(e);
    }
    wbuf_free(&rec);
}

static void test_values(void **st)
{
    static const row rows[] = {
        /* the event */
        {"tag", "\"app.web.frontend\""},
        {"tag_parts[0]", "\"app\""},
        {"tag_parts[-1]", "\"frontend\""},
        {"tag_parts[7]", "null"},
        {"tag_parts.last", "\"frontend\""},
        {"tag_prefix[1]", "\"app.web\""},
        {"tag_suffix[1]", "\"web.frontend\""},
        {"hostname", "\"node-1\""},
        {"Socket.gethostname", "\"node-1\""},
        {"time.to_i", "1700000000"},
        {"time.strftime('%Y-%m-%dT%H:%M:%S.%LZ')", "\"2023-11-14T22:13:20.123Z\""},
        {"time.utc.iso8601(3)", "\"2023-11-14T22:13:20.123Z\""},
        {"time.iso8601", "\"2023-11-14T22:13:20+00:00\""},
        {"time.year * 100 + time.month", "202311"},
        /* record access */
        {"record['level']", "\"warn\""},
        {"record[\"kubernetes\"][\"labels\"][\"app.kubernetes.io/name\"]", "\"w\""},
        {"record.dig('kubernetes', 'labels', 'app')", "\"web\""},
        {"record.dig('nope', 'labels', 'app')", "null"},
        {"record['list'][1]", "\"two\""},
        {"record['list'][-1][0]", "3"},
        {"record.dig('list', 2, 0)", "3"},
        {"record.fetch('missing', 'dflt')", "\"dflt\""},
        {"record.key?('n')", "true"},
        {"record.has_key?('zz')", "false"},
        {"record['kubernetes'].keys", "[\"namespace_name\",\"labels\",\"pod_name\"]"},
        {"record['missing']&.upcase", "null"},
        /* defaults and logic */
        {"record['missing'] || 'none'", "\"none\""},
        {"record['nil'] || record['level']", "\"warn\""},
        {"record['ok'] && record['n']", "7"},
        {"record['level'] == 'warn' ? 'W' : 'other'", "\"W\""},
        {"record['n'] > 5 ? 'big' : 'small'", "\"big\""},
        {"record['n'] >= 7 && record['f'] < 3", "true"},
        {"!record['ok']", "false"},
        {"not record['nil']", "true"},
        {"record['n'] == 7.0", "true"},
        {"record['n'] != '7'", "true"},
        {"record['level'] =~ /ar/", "1"},
        {"record['s'] =~ /llo/", "2"},
        {"record['level'] !~ /err/i", "true"},
        {"record['level'].match?(/^W/i)", "true"},
        /* strings */
        {"record['level'].upcase", "\"WARN\""},
        {"record['level'].capitalize", "\"Warn\""},
        {"'MiXed'.downcase + 'x'.swapcase", "\"mixedX\""},
        {"record['log'].strip", "\"GET /api/v1/users?id=42 HTTP/1.1\""},
        {"record['log'].lstrip.length", "34"},
        {"record['s'].length", "12"},
        {"record['s'].bytesize", "14"},
        {"record['s'].reverse", "\"dlr\u00f6w ,oll\u00e9h\""},
        {"record['s'][1]", "\"\u00e9\""},
        {"record['s'][0, 5]", "\"h\u00e9llo\""},
        {"record['log'].strip.split(' ')[1]", "\"/api/v1/users?id=42\""},
        {"record['log'].split", "[\"GET\",\"/api/v1/users?id=42\",\"HTTP/1.1\"]"},
        {"record['csv'].split(',')", "[\"a\",\"b\",\"\",\"c\"]"},
        {"record['csv'].split(',', -1)", "[\"a\",\"b\",\"\",\"c\",\"\",\"\"]"},
        {"record['csv'].split(',', 2)", "[\"a\",\"b,,c,,\"]"},
        {"record['csv'].split(/,+/)", "[\"a\",\"b\",\"c\"]"},
        {"'abc'.split('')", "[\"a\",\"b\",\"c\"]"},
        {"record['kubernetes']['pod_name'].split('-').first", "\"web\""},
        {"record['log'].gsub(/\\d+/, 'N')", "\"  GET /api/vN/users?id=N HTTP/N.N  \""},
        {"record['log'].sub(/\\d+/, 'N').strip", "\"GET /api/vN/users?id=42 HTTP/1.1\""},
        {"record['log'].gsub(/(\\w+)=(\\d+)/, '\\\\2=\\\\1')", "\"  GET /api/v1/users?42=id HTTP/1.1  \""},
        {"record['level'].gsub('a', 'A')", "\"wArn\""},
        {"'aaa'.gsub(/x*/, '-')", "\"-a-a-a-\""},
        {"'hoge'.gsub(/^(?<start>.+).{2}(?<end>.+)$/, '\\k<start>ors\\k<end>')", "\"horse\""},
        {"record['kubernetes']['pod_name'].sub(/-[a-z0-9]+-[a-z0-9]+$/, '')", "\"web\""},
        {"record['level'].start_with?('wa', 'x')", "true"},
        {"record['level'].end_with?('x')", "false"},
        {"record['log'].include?('HTTP')", "true"},
        {"record['e'].empty?", "true"},
        {"\"#{tag_parts[1]}-#{record['n']}\"", "\"web-7\""},
        {"'a' * 3", "\"aaa\""},
        {"record['num_s'].to_i", "12"},
        {"record['f'].to_s", "\"2.5\""},
        {"record['n'].to_s + 'x'", "\"7x\""},
        {"record['nil'].to_s", "\"\""},
        {"record['nil'].nil?", "true"},
        {"'3.7'.to_f.round", "4"},
        /* numbers */
        {"record['n'] / 2", "3"},
        {"record['neg'] / 2", "-2"},
        {"record['neg'] % 5", "2"},
        {"record['n'] * record['f']", "17.5"},
        {"record['f'].floor + record['f'].ceil", "5"},
        {"2.675.round(2)", "2.68"},
        {"-2.5.round", "-3"},
        {"record['neg'].abs", "3"},
        {"(1 + 2) * 3 - 4", "5"},
        {"10.0 / 4", "2.5"},
        {"record['n'].to_f", "7.0"},
        /* arrays and hashes */
        {"['a', tag_parts[0], 1]", "[\"a\",\"app\",1]"},
        {"tag_parts.join('/')", "\"app/web/frontend\""},
        {"record['list'].length", "3"},
        {"record['list'].include?('two')", "true"},
        {"record['kubernetes']['labels']", "{\"app\":\"web\",\"app.kubernetes.io/name\":\"w\"}"},
        {"record['kubernetes']['labels'].to_json", "\"{\\\"app\\\":\\\"web\\\",\\\"app.kubernetes.io/name\\\":\\\"w\\\"}\""},
        {"ENV['WEIR_TEST_RUBY_VAR'] || 'unset'", "\"from-env\""},
        {"ENV.fetch('WEIR_TEST_UNSET_VAR', 'd')", "\"d\""},
        {"Time.at(0).utc.year", "1970"},
        {NULL, NULL},
    };
    setenv("WEIR_TEST_RUBY_VAR", "from-env", 1);
    check_values(rows, 0);
}

static void test_text(void **st)
{
    static const row rows[] = {
        {"record['nil']", ""},
        {"record['f']", "2.5"},
        {"1e16", "1.0e+16"},
        {"record['ok']", "true"},
        {"time", "2023-11-14 22:13:20 +0000"},
        {"time.utc", "2023-11-14 22:13:20 UTC"},
        {"record['kubernetes']['labels']", "{\"app\"=>\"web\", \"app.kubernetes.io/name\"=>\"w\"}"},
        {"record['list']", "[1, \"two\", [3]]"},
        {"tag_parts", "[\"app\", \"web\", \"frontend\"]"},
        {"record['s'].inspect", "\"h\u00e9llo, w\u00f6rld\""},
        {"\"q\\\"\\n\".inspect", "\"q\\\"\\n\""},
        {"record['missing'].inspect", "nil"},
        {NULL, NULL},
    };
    check_values(rows, 1);
}

typedef struct erow {
    const char *code, *want;
} erow;

static void test_compile_errors(void **st)
{
    static const erow rows[] = {
        {"record['a'].map { |x| x }", "undefined method `map' (not in the methods weir evaluates; see docs/configuration.md)"},
        {"record['a'].upcase { 1 }", "blocks are not supported (upcase { ... })"},
        {"foo", "undefined local variable or method `foo' (weir evaluates record, tag, time, tag_parts, tag_prefix, "
                "tag_suffix, hostname, ENV, Socket.gethostname, Time.now, Time.at)"},
        {"record['a'] = 1", "assignments are not supported"},
        {"record['a'].gsub('x')", "wrong number of arguments for gsub (given 1, expected 2)"},
        {"record['s'][-5..-1]", "ranges (a..b) are not supported"},
        {"'abc", "unterminated string"},
        {"/(ab/", "bad regexp /(ab/: missing closing parenthesis at offset 3"},
        {"File.read('/etc/passwd')", "undefined local variable or method `File' (weir evaluates record, tag, time, "
                                     "tag_parts, tag_prefix, tag_suffix, hostname, ENV, Socket.gethostname, Time.now, "
                                     "Time.at)"},
        {"`ls`", "unexpected '`ls`'"},
        {"1 +", "unexpected end of expression"},
        {"(1", "expected ')' near '(end)'"},
        {"true ? 1", "expected ':' of ?: near '(end)'"},
        {"ENV.fetch('WEIR_TEST_UNSET_VAR')", "key not found: \"WEIR_TEST_UNSET_VAR\" (ENV.fetch of an unset variable)"},
        {"system('id')", "undefined local variable or method `system' (weir evaluates record, tag, time, tag_parts, "
                         "tag_prefix, tag_suffix, hostname, ENV, Socket.gethostname, Time.now, Time.at)"},
        {NULL, NULL},
    };
    unsetenv("WEIR_TEST_UNSET_VAR");
    for (const erow *r = rows; r->code; r++) {
        char err[256] = "";
        rb_node *e = rb_compile(r->code, strlen(r->code), err, sizeof err);
        if (e)
            fail_msg("%s: compiled, want error %s", r->code, r->want);
        if (strcmp(err, r->want))
            fail_msg("%s: got error '%s', want '%s'", r->code, err, r->want);
    }
}

static void test_runtime_errors(void **st)
{
    static const erow rows[] = {
        {"record['missing'].upcase", "undefined method `upcase' for nil:NilClass"},
        {"record['missing']['x']", "undefined method `[]' for nil:NilClass"},
        {"record['n'] / 0", "divided by 0"},
        {"record['level'] < 3", "comparison of String with 3 failed"},
        {"record['level'] + 1", "no implicit conversion of Integer into String"},
        {"record['n'] + 'x'", "String can't be coerced into Integer"},
        {"record['n'].upcase", "undefined method `upcase' for 7:Integer"},
        {"record.fetch('zz')", "key not found: \"zz\""},
        {"record['level'].dig('x')", "undefined method `dig' for \"warn\":String"},
        {"record.dig('level', 'x')", "String does not have #dig method"},
        {"9223372036854775807 + 1", "integer overflow (weir has no Bignum)"},
        {NULL, NULL},
    };
    wbuf rec = J(RECORD);
    rb_env env = env_of(&rec);
    for (const erow *r = rows; r->code; r++) {
        char err[256] = "";
        rb_node *e = rb_compile(r->code, strlen(r->code), err, sizeof err);
        if (!e)
            fail_msg("%s: compile error: %s", r->code, err);
        wbuf out = {0};
        if (!rb_eval_value(e, &env, &out, err, sizeof err))
            fail_msg("%s: evaluated, want error %s", r->code, r->want);
        if (strcmp(err, r->want))
            fail_msg("%s: got error '%s', want '%s'", r->code, err, r->want);
        wbuf_free(&out);
        rb_free(e);
    }
    wbuf_free(&rec);
}

static void test_code_end(void **st)
{
    static const struct {
        const char *s;
        int end; /* offset of the closing brace, -1: none */
    } rows[] = {
        {"record['a']}", 11},
        {"record['}']}x", 11},
        {"\"#{tag}\" + '{'}", 14},
        {"{a}}", 3},
        {"'unterminated}", -1},
        {"no brace", -1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *s = rows[i].s, *e = rb_code_end(s, s + strlen(s));
        assert_int_equal(e ? (int)(e - s) : -1, rows[i].end);
    }
}

int main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),         cmocka_unit_test(test_text),
        cmocka_unit_test(test_compile_errors), cmocka_unit_test(test_runtime_errors),
        cmocka_unit_test(test_code_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
