/*
 * test/unit/test_conf.c: the Fluentd syntax parser (config/conf_parse.c and
 * the units conf_int.h lists) and config/conf_bind.c (conversions, binding,
 * suggestions).
 *
 * Fixture files for @include live in test/unit/conf/, found relative to this
 * source file (__FILE__), so run the binary from the repository root, or set
 * WEIR_CONF_FIXTURES to that directory.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/conf.h"

/* ---- helpers ------------------------------------------------------------ */

static void check_errors(const conf_errors *e, const char *const *want)
{
    size_t n = 0;
    while (want[n])
        n++;
    if (e->n != n) {
        for (size_t i = 0; i < e->n; i++)
            print_error("got error %zu: %s\n", i, e->msgs[i]);
        fail_msg("expected %zu errors, got %zu", n, e->n);
    }
    for (size_t i = 0; i < n; i++)
        assert_string_equal(e->msgs[i], want[i]);
}

#define EXPECT_ERRORS(errs, ...) check_errors((errs), (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT_NO_ERRORS(errs) check_errors((errs), (const char *const[]){NULL})

static conf_node *parse(const char *text, conf_errors *errs)
{
    return conf_parse_string(text, "t.conf", errs);
}

static const char *val(const conf_node *n, const char *key)
{
    for (size_t i = 0; i < n->nparams; i++)
        if (strcmp(n->params[i].key, key) == 0)
            return n->params[i].value;
    return NULL;
}

static const conf_param *param(const conf_node *n, const char *key)
{
    for (size_t i = 0; i < n->nparams; i++)
        if (strcmp(n->params[i].key, key) == 0)
            return &n->params[i];
    return NULL;
}

static const char *fixtures(void)
{
    static char dir[PATH_MAX];
    const char *env = getenv("WEIR_CONF_FIXTURES");
    if (env)
        return env;
    if (!dir[0]) {
        const char *slash = strrchr(__FILE__, '/');
        int len = slash ? (int)(slash - __FILE__) : 1;
        snprintf(dir, sizeof dir, "%.*s/conf", len, slash ? __FILE__ : ".");
    }
    return dir;
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, f);
    assert_true(vasprintf(&s, f, ap) >= 0);
    va_end(ap);
    return s;
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* ---- structure ---------------------------------------------------------- */

static void test_nested_sections(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("<match app.** system.{a,b}>\n"
                            "  @type forward\n"
                            "  <buffer tag, time>\n"
                            "    flush_interval 10s\n"
                            "    <secondary>\n"
                            "      path /var/log/x\n"
                            "    </secondary>\n"
                            "  </buffer>\n"
                            "</match>\n"
                            "\t<source>\t\n"
                            "</source>\n"
                            "<label   @ERROR   >\n"
                            "</label>\n",
                            &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_non_null(root);
    assert_string_equal(root->name, "ROOT");
    assert_null(root->arg);
    assert_null(root->parent);
    assert_string_equal(root->file, "t.conf");
    assert_int_equal(root->nchildren, 3);
    assert_int_equal(root->nparams, 0);

    conf_node *match = root->children[0];
    assert_string_equal(match->name, "match");
    assert_string_equal(match->arg, "app.** system.{a,b}");
    assert_int_equal(match->line, 1);
    assert_ptr_equal(match->parent, root);
    assert_string_equal(match->file, "t.conf");
    assert_int_equal(match->nparams, 1);
    assert_string_equal(match->params[0].key, "@type");
    assert_string_equal(match->params[0].value, "forward");
    assert_int_equal(match->params[0].line, 2);
    assert_int_equal(match->nchildren, 1);

    conf_node *buffer = match->children[0];
    assert_string_equal(buffer->name, "buffer");
    assert_string_equal(buffer->arg, "tag, time");
    assert_int_equal(buffer->line, 3);
    assert_ptr_equal(buffer->parent, match);
    assert_string_equal(val(buffer, "flush_interval"), "10s");
    assert_int_equal(buffer->nchildren, 1);

    conf_node *secondary = buffer->children[0];
    assert_string_equal(secondary->name, "secondary");
    assert_null(secondary->arg);
    assert_int_equal(secondary->line, 5);
    assert_ptr_equal(secondary->parent, buffer);
    assert_string_equal(val(secondary, "path"), "/var/log/x");
    assert_int_equal(param(secondary, "path")->line, 6);
    assert_int_equal(secondary->nchildren, 0);

    assert_string_equal(root->children[1]->name, "source");
    assert_null(root->children[1]->arg);
    assert_int_equal(root->children[1]->line, 10);
    assert_string_equal(root->children[2]->name, "label");
    assert_string_equal(root->children[2]->arg, "@ERROR");
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_section_quoted_arg(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("<match \"a b\\tc\">\n</match>\n<filter 'x>y'>\n</filter>\n", &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_non_null(root);
    assert_string_equal(root->children[0]->arg, "a b\tc");
    assert_string_equal(root->children[1]->arg, "x>y");
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_parameters(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("key1 value one\n"
                            "  key2    spaced value \t  \n"
                            "flag\n"
                            "flag2   # only a comment\n"
                            "color a#b\n"
                            "note x # trailing comment\n"
                            "@type  stdout\n"
                            "url http://h/p#frag\n"
                            "# a comment line\n"
                            "   # an indented comment line\n"
                            "\tk\tv\t\n"
                            "@log_level debug\n",
                            &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_non_null(root);
    assert_int_equal(root->nparams, 10);
    assert_string_equal(val(root, "key1"), "value one");
    assert_string_equal(val(root, "key2"), "spaced value");
    assert_string_equal(val(root, "flag"), "");
    assert_string_equal(val(root, "flag2"), "");
    assert_string_equal(val(root, "color"), "a#b");
    assert_string_equal(val(root, "note"), "x");
    assert_string_equal(val(root, "@type"), "stdout");
    assert_string_equal(val(root, "url"), "http://h/p#frag");
    assert_string_equal(val(root, "k"), "v");
    assert_int_equal(param(root, "k")->line, 11);
    assert_string_equal(val(root, "@log_level"), "debug");
    assert_int_equal(param(root, "key1")->used, 0);
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_crlf(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("<source>\r\n  a 1\r\n  b \"q\"\r\n</source>\r\nc 3\r\n", &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_non_null(root);
    assert_string_equal(val(root->children[0], "a"), "1");
    assert_string_equal(val(root->children[0], "b"), "q");
    assert_string_equal(val(root, "c"), "3");
    assert_int_equal(param(root, "c")->line, 5);
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_last_value_wins(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("k 1\nother x\nk 2\n", &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_int_equal(root->nparams, 2);
    assert_string_equal(root->params[0].key, "k");
    assert_string_equal(root->params[0].value, "2");
    assert_int_equal(root->params[0].line, 3);
    conf_free(root);
    conf_errors_free(&errs);
}

/* ---- quoting ------------------------------------------------------------ */

static void test_double_quoted(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("s1 \"a\\tb\\nc\\\\d\\\"e\\'f\\rg\"\n"
                            "s2 \"# not a comment\"\n"
                            "s3 \"x\"   # a comment\n"
                            "s4 \"sym\\.dot\\$\"\n"
                            "s5 \"first\n"
                            "second\"\n"
                            "s6 \"join \\\n"
                            "ed\"\n"
                            "s7 \"\"\n"
                            "s8 \"\\f\\b\"\n"
                            "after 1\n",
                            &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_non_null(root);
    assert_string_equal(val(root, "s1"), "a\tb\nc\\d\"e'f\rg");
    assert_string_equal(val(root, "s2"), "# not a comment");
    assert_string_equal(val(root, "s3"), "x");
    assert_string_equal(val(root, "s4"), "sym.dot$");
    assert_string_equal(val(root, "s5"), "first\nsecond");
    assert_string_equal(val(root, "s6"), "join ed");
    assert_string_equal(val(root, "s7"), "");
    assert_string_equal(val(root, "s8"), "\f\b");
    assert_int_equal(param(root, "after")->line, 11);
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_single_quoted(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("s1 'a\\'b\\\\c\\nd'\n"
                            "s2 '#{ENV[\"HOME\"]}'\n"
                            "s3 'multi\n"
                            "line'\n"
                            "s4 'say \"hi\"' # comment\n",
                            &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_string_equal(val(root, "s1"), "a'b\\c\\nd");
    assert_string_equal(val(root, "s2"), "#{ENV[\"HOME\"]}");
    assert_string_equal(val(root, "s3"), "multi\nline");
    assert_string_equal(val(root, "s4"), "say \"hi\"");
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_unquoted_is_not_interpolated(void **state)
{
    conf_errors errs = {0};
    setenv("WEIR_T_A", "alpha", 1);
    conf_node *root = parse("u a#{ENV['WEIR_T_A']}\n", &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_string_equal(val(root, "u"), "a#{ENV['WEIR_T_A']}");
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_quote_errors(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("re \"\\d+\"\n"
                            "junk \"a\" b\n"
                            "ok 1\n"
                            "path \"/var/log/a\n"
                            "tag app\n",
                            &errs);
    EXPECT_ERRORS(&errs, "t.conf:1: unknown escape '\\d' in double-quoted string (write '\\\\' for a backslash)",
                  "t.conf:2: unexpected text after quoted string: 'b'", "t.conf:4: unterminated quoted string");
    assert_non_null(root);
    assert_null(val(root, "re"));
    assert_string_equal(val(root, "junk"), "a");
    assert_string_equal(val(root, "ok"), "1");
    assert_null(val(root, "path"));
    /* Parsing resumed on the line after the unterminated quote. */
    assert_string_equal(val(root, "tag"), "app");
    assert_int_equal(param(root, "tag")->line, 5);
    conf_free(root);
    conf_errors_free(&errs);
}

/* A quote closed lines later, followed by more text, is a missing quote. */
static void test_unterminated_quote_recovery(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("<source>\n"
                            "  path \"/var/log/a\n"
                            "  tag \"app\"\n"
                            "</source>\n",
                            &errs);
    EXPECT_ERRORS(&errs, "t.conf:2: unterminated quoted string");
    assert_non_null(root);
    assert_string_equal(val(root->children[0], "tag"), "app");
    assert_null(val(root->children[0], "path"));
    conf_free(root);
    conf_errors_free(&errs);
}

/* ---- "#{...}" ------------------------------------------------------------ */

static void test_env_expansion(void **state)
{
    conf_errors errs = {0};
    setenv("WEIR_T_A", "alpha", 1);
    unsetenv("WEIR_T_UNSET");
    conf_node *root = parse("e1 \"#{ENV['WEIR_T_A']}\"\n"
                            "e2 \"pre-#{ENV[\"WEIR_T_A\"]}-post\"\n"
                            "e3 \"#{ENV['WEIR_T_UNSET']}\"\n"
                            "e4 \"#{ENV.fetch('WEIR_T_UNSET', 'dflt')}\"\n"
                            "e5 \"#{ENV.fetch(\"WEIR_T_A\", \"dflt\")}\"\n"
                            "e6 \"#{ ENV.fetch( 'WEIR_T_UNSET' , \"d q\" ) }\"\n"
                            "e7 \"#{ENV.fetch('WEIR_T_A')}\"\n"
                            "<match \"#{ENV['WEIR_T_A']}.**\">\n"
                            "</match>\n",
                            &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_string_equal(val(root, "e1"), "alpha");
    assert_string_equal(val(root, "e2"), "pre-alpha-post");
    assert_string_equal(val(root, "e3"), "");
    assert_string_equal(val(root, "e4"), "dflt");
    assert_string_equal(val(root, "e5"), "alpha");
    assert_string_equal(val(root, "e6"), "d q");
    assert_string_equal(val(root, "e7"), "alpha");
    assert_string_equal(root->children[0]->arg, "alpha.**");
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_env_fetch_unset_is_an_error(void **state)
{
    conf_errors errs = {0};
    unsetenv("WEIR_T_UNSET");
    conf_node *root = parse("ok 1\nx \"#{ENV.fetch('WEIR_T_UNSET')}\"\n", &errs);
    EXPECT_ERRORS(&errs, "t.conf:2: environment variable 'WEIR_T_UNSET' is not set and ENV.fetch has no default");
    assert_non_null(root);
    assert_null(val(root, "x"));
    assert_string_equal(val(root, "ok"), "1");
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_ruby_code_refused(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("host \"#{Socket.gethostname}\"\n"
                            "x \"#{ENV['A'] + 'b'}\"\n"
                            "y \"#{ENV['A']\"\n"
                            "z \"#{ENV.fetch('A') { 'b' }}\"\n"
                            "w \"#{nil.upcase}\"\n"
                            "v \"#{`id`}\"\n",
                            &errs);
    const char *only = "; weir evaluates ENV['NAME'], ENV.fetch('NAME'[, default]), Socket.gethostname, 'strings', "
                       "\"#{interpolation}\", integers, nil, a || b, and .to_i .to_s .upcase .downcase .strip";
    char e2[512], e4[512], e5[512], e6[512];
    snprintf(e2, sizeof e2, "t.conf:2: embedded Ruby code is not supported: #{ENV['A'] + 'b'}%s", only);
    snprintf(e4, sizeof e4, "t.conf:4: embedded Ruby code is not supported: #{ENV.fetch('A') { 'b' }}%s", only);
    snprintf(e5, sizeof e5, "t.conf:5: embedded Ruby code is not supported: #{nil.upcase}%s", only);
    snprintf(e6, sizeof e6, "t.conf:6: embedded Ruby code is not supported: #{`id`}%s", only);
    EXPECT_ERRORS(&errs, e2, "t.conf:3: unterminated '#{' in double-quoted string", e4, e5, e6);
    assert_non_null(root);
    /* the supported idiom expands to this machine's host name */
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    assert_int_equal(root->nparams, 1);
    assert_string_equal(val(root, "host"), host);
    conf_free(root);
    conf_errors_free(&errs);
}

/* The Ruby that real fluent.conf files carry, evaluated without Ruby. */
static void test_ruby_expressions(void **state)
{
    conf_errors errs = {0};
    setenv("WEIR_T_R", "v1", 1);
    setenv("WEIR_T_N", "  42abc", 1);
    setenv("WEIR_T_EMPTY", "", 1);
    unsetenv("WEIR_T_UNSET");
    conf_node *root = parse("a \"#{ENV['WEIR_T_UNSET'] || 'fallback'}\"\n"
                            "b \"#{ENV['WEIR_T_R'] || 'fallback'}\"\n"
                            "c \"#{ENV['WEIR_T_EMPTY'] || 'fallback'}\"\n" /* Ruby: "" is not nil */
                            "d \"#{ENV['WEIR_T_N'].to_i}\"\n"
                            "e \"#{ENV.fetch('WEIR_T_UNSET', '8').to_i}\"\n"
                            "f \"#{ENV['WEIR_T_UNSET'].to_i}\"\n"
                            "g \"#{(ENV['WEIR_T_UNSET'] || 'ab').upcase}\"\n"
                            "h \"#{ENV.fetch('WEIR_T_UNSET', ENV['WEIR_T_R'])}\"\n"
                            "i \"#{\"pre-#{ENV['WEIR_T_R']}-post\"}\"\n"
                            "j \"#{ENV['WEIR_T_UNSET'] || ENV['WEIR_T_UNSET'] || 24224}\"\n"
                            "k \"#{nil.to_s}x#{ENV['WEIR_T_R'].to_s.strip}\"\n"
                            "l \"#{Socket.gethostname.downcase}\"\n"
                            "m \"#{ENV['WEIR_T_UNSET']}\"\n",
                            &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_string_equal(val(root, "a"), "fallback");
    assert_string_equal(val(root, "b"), "v1");
    assert_string_equal(val(root, "c"), "");
    assert_string_equal(val(root, "d"), "42");
    assert_string_equal(val(root, "e"), "8");
    assert_string_equal(val(root, "f"), "0");
    assert_string_equal(val(root, "g"), "AB");
    assert_string_equal(val(root, "h"), "v1");
    assert_string_equal(val(root, "i"), "pre-v1-post");
    assert_string_equal(val(root, "j"), "24224");
    assert_string_equal(val(root, "k"), "xv1");
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    for (char *q = host; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    assert_string_equal(val(root, "l"), host);
    assert_string_equal(val(root, "m"), "");
    conf_free(root);
    conf_errors_free(&errs);
}

/* Fluentd's use_nil / use_default (the fluentd-kubernetes-daemonset images
 * write `"#{ENV['X'] || use_default}"`): when evaluated, the parameter is
 * left out as if not written; when `||` never reaches them, the value stands. */
static void test_ruby_use_default(void **state)
{
    conf_errors errs = {0};
    setenv("WEIR_T_R", "v1", 1);
    unsetenv("WEIR_T_UNSET");
    conf_node *root = parse("a \"#{ENV['WEIR_T_UNSET'] || use_default}\"\n"
                            "b \"#{ENV['WEIR_T_R'] || use_default}\"\n"
                            "c \"#{ENV['WEIR_T_UNSET'] || use_nil}\"\n"
                            "d \"pre-#{ENV['WEIR_T_UNSET'] || use_nil}-post\"\n"
                            "e \"#{use_default || 'x'}\"\n"
                            "f \"#{ENV.fetch('WEIR_T_UNSET', use_default)}\"\n"
                            "g \"#{ENV['WEIR_T_R'] || use_nil}\"\n"
                            "h \"#{use_nil.to_s}\"\n"
                            "i \"#{(ENV['WEIR_T_UNSET'] || use_default).upcase}\"\n"
                            "j [\"#{ENV['WEIR_T_UNSET'] || use_nil}\"]\n"
                            "z 1\n",
                            &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_null(val(root, "a"));
    assert_string_equal(val(root, "b"), "v1");
    assert_null(val(root, "c"));
    assert_null(val(root, "d"));
    assert_null(val(root, "e"));
    assert_null(val(root, "f"));
    assert_string_equal(val(root, "g"), "v1");
    assert_null(val(root, "h"));
    assert_null(val(root, "i"));
    assert_null(val(root, "j"));
    assert_string_equal(val(root, "z"), "1");
    conf_free(root);
    conf_errors_free(&errs);
}

/* ---- JSON values -------------------------------------------------------- */

static void test_json_multiline(void **state)
{
    conf_errors errs = {0};
    setenv("WEIR_T_Q", "say \"hi\"\\", 1);
    conf_node *root = parse("tags [\n"
                            "  \"a\",  # first\n"
                            "  \"b]#\"\n"
                            "]\n"
                            "hash {\"k\": \"v\",\n"
                            "  \"n\": [1, 2.5e3, -0],\n"
                            "  \"t\": true, \"z\": null}\n"
                            "after 1\n"
                            "inline [\"x\", \"y\\\"z\"]   # c\n"
                            "env [\"#{ENV['WEIR_T_Q']}\"]\n"
                            "empty []\n",
                            &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_non_null(root);
    assert_string_equal(val(root, "tags"), "[\"a\",\"b]#\"]");
    assert_string_equal(val(root, "hash"), "{\"k\":\"v\",\"n\":[1,2.5e3,-0],\"t\":true,\"z\":null}");
    assert_int_equal(param(root, "hash")->line, 5);
    assert_int_equal(param(root, "after")->line, 8);
    assert_string_equal(val(root, "inline"), "[\"x\",\"y\\\"z\"]");
    assert_string_equal(val(root, "env"), "[\"say \\\"hi\\\"\\\\\"]");
    assert_string_equal(val(root, "empty"), "[]");

    char **v = conf_parse_array(val(root, "env"));
    assert_non_null(v);
    assert_string_equal(v[0], "say \"hi\"\\");
    assert_null(v[1]);
    conf_strv_free(v);
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_json_errors(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("fmt [%{time}] %{msg}\n"
                            "arr [1, 2\n"
                            "next ok\n"
                            "sp [1 2]\n"
                            "str [\"abc\n"
                            "more 1\n"
                            "tail {\"a\": 1} x\n",
                            &errs);
    EXPECT_ERRORS(&errs,
                  "t.conf:1: invalid JSON array in value of 'fmt' (quote the value if it is not meant as JSON)",
                  "t.conf:2: unterminated JSON array in value of 'arr' (quote the value if it is not meant as JSON)",
                  "t.conf:4: invalid JSON array in value of 'sp' (quote the value if it is not meant as JSON)",
                  "t.conf:5: unterminated string in JSON array in value of 'str'",
                  "t.conf:7: unexpected text after JSON hash: 'x'");
    assert_non_null(root);
    assert_null(val(root, "fmt"));
    assert_null(val(root, "arr"));
    assert_null(val(root, "sp"));
    assert_null(val(root, "str"));
    assert_string_equal(val(root, "next"), "ok");
    assert_string_equal(val(root, "more"), "1");
    assert_string_equal(val(root, "tail"), "{\"a\":1}");
    conf_free(root);
    conf_errors_free(&errs);
}

/* A missing ']' must not swallow the next section. */
static void test_json_unclosed_before_section(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("<match x>\n"
                            "  arr [\"a\",\n"
                            "     \"b\"\n"
                            "</match>\n"
                            "after 1\n",
                            &errs);
    EXPECT_ERRORS(&errs,
                  "t.conf:2: unterminated JSON array in value of 'arr' (quote the value if it is not meant as JSON)");
    assert_non_null(root);
    assert_int_equal(root->nchildren, 1);
    assert_int_equal(root->children[0]->nparams, 0);
    assert_string_equal(val(root, "after"), "1");
    conf_free(root);
    conf_errors_free(&errs);
}

/* ---- structural errors -------------------------------------------------- */

static void test_mismatched_close(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("<source>\n  a 1\n</match>\nafter 1\n", &errs);
    EXPECT_ERRORS(&errs, "t.conf:3: expected '</source>' but found '</match>'");
    assert_non_null(root);
    assert_string_equal(val(root, "after"), "1"); /* the typo closed <source> */
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_close_of_outer_section_closes_inner(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("<match a>\n  <buffer>\n</match>\nafter 1\n", &errs);
    EXPECT_ERRORS(&errs, "t.conf:3: expected '</buffer>' but found '</match>'");
    assert_non_null(root);
    assert_int_equal(root->nchildren, 1);
    assert_string_equal(root->children[0]->children[0]->name, "buffer");
    assert_string_equal(val(root, "after"), "1");
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_unclosed_section_returns_null(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("<match a.**>\n  <buffer>\n  </buffer>\n<source>\n  x 1\n", &errs);
    assert_null(root);
    EXPECT_ERRORS(&errs, "t.conf:1: unclosed section <match a.**>: expected '</match>' before end of file",
                  "t.conf:4: unclosed section <source>: expected '</source>' before end of file");
    conf_errors_free(&errs);
}

static void test_close_without_open(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("a 1\n</match>\nb 2\n", &errs);
    EXPECT_ERRORS(&errs, "t.conf:2: '</match>' without an open section");
    assert_non_null(root);
    assert_string_equal(val(root, "b"), "2");
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_invalid_headers(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("<match\n"
                            "  @type null\n"
                            "</match>\n"
                            "<ma-tch x>\n"
                            "<source> junk\n"
                            "</source> more\n"
                            "</ >\n",
                            &errs);
    EXPECT_ERRORS(&errs, "t.conf:1: invalid section header '<match'", "t.conf:4: invalid section header '<ma-tch x>'",
                  "t.conf:5: unexpected text after section header: 'junk'",
                  "t.conf:6: unexpected text after closing tag: 'more'", "t.conf:7: invalid closing tag '</ >'");
    assert_non_null(root);
    /* '<match' still opened its section, so '</match>' matched it. */
    assert_int_equal(root->nchildren, 2);
    assert_string_equal(root->children[0]->name, "match");
    assert_string_equal(val(root->children[0], "@type"), "null");
    assert_string_equal(root->children[1]->name, "source");
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_multiple_errors_in_one_parse(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("k \"#{`id`}\"\n"
                            "<source>\n"
                            "  path \"/var/log/a\n"
                            "  tag app\n"
                            "</sorce>\n"
                            "</match>\n"
                            "<match\n"
                            "  @type null\n"
                            "</match>\n"
                            "<>\n",
                            &errs);
    EXPECT_ERRORS(&errs,
                  "t.conf:1: embedded Ruby code is not supported: #{`id`}; weir evaluates ENV['NAME'], "
                  "ENV.fetch('NAME'[, default]), Socket.gethostname, 'strings', \"#{interpolation}\", integers, nil, "
                  "a || b, and .to_i .to_s .upcase .downcase .strip",
                  "t.conf:3: unterminated quoted string", "t.conf:5: expected '</source>' but found '</sorce>'",
                  "t.conf:6: '</match>' without an open section", "t.conf:7: invalid section header '<match'",
                  "t.conf:10: invalid section header '<>'");
    assert_non_null(root);
    assert_int_equal(root->nchildren, 2);
    assert_string_equal(val(root->children[0], "tag"), "app");
    assert_string_equal(val(root->children[1], "@type"), "null");
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_nul_byte_and_unreadable_file(void **state)
{
    char dir[] = "/tmp/weir-conf-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = fmt("%s/bin.conf", dir);
    write_file(path, "a 1\n\0b", 6);
    conf_errors errs = {0};
    conf_node *root = conf_parse_file(path, &errs);
    char *want = fmt("%s:2: NUL byte in configuration file (not a text file?)", path);
    EXPECT_ERRORS(&errs, want);
    assert_non_null(root);
    assert_int_equal(root->nparams, 0);
    conf_free(root);
    conf_errors_free(&errs);
    free(want);

    unlink(path);
    root = conf_parse_file(path, &errs);
    assert_null(root);
    want = fmt("%s: cannot read configuration file: No such file or directory", path);
    EXPECT_ERRORS(&errs, want);
    conf_errors_free(&errs);
    free(want);
    free(path);
    rmdir(dir);
}

/* ---- @include ----------------------------------------------------------- */

static void test_include_relative_and_glob(void **state)
{
    conf_errors errs = {0};
    char *main_path = fmt("%s/main.conf", fixtures());
    char *params_path = fmt("%s/sub/source_params.conf", fixtures());
    char *a_path = fmt("%s/sub/a.frag.conf", fixtures());
    conf_node *root = conf_parse_file(main_path, &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_non_null(root);
    assert_string_equal(root->file, main_path);

    assert_int_equal(root->nchildren, 3);
    conf_node *src = root->children[0];
    assert_string_equal(src->name, "source");
    assert_int_equal(src->nparams, 3);
    assert_string_equal(val(src, "@type"), "forward");
    assert_string_equal(val(src, "port"), "24224");
    assert_string_equal(val(src, "bind"), "0.0.0.0");
    assert_string_equal(param(src, "port")->file, params_path);
    assert_int_equal(param(src, "bind")->line, 2);
    assert_string_equal(param(src, "@type")->file, main_path);

    /* Glob results are sorted: a before b. */
    assert_string_equal(root->children[1]->arg, "a.**");
    assert_string_equal(root->children[1]->file, a_path);
    assert_int_equal(root->children[1]->line, 1);
    assert_string_equal(val(root->children[1], "@type"), "stdout");
    assert_string_equal(root->children[2]->arg, "b.**");
    assert_string_equal(val(root, "tail_key"), "last");
    conf_free(root);
    conf_errors_free(&errs);

    /* conf_parse_string resolves against the directory of its name. */
    char *virt = fmt("%s/virtual.conf", fixtures());
    root = conf_parse_string("@include sub/source_params.conf\n", virt, &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_string_equal(val(root, "port"), "24224");
    assert_string_equal(param(root, "port")->file, params_path);
    conf_free(root);
    conf_errors_free(&errs);

    /* Brace alternatives are sorted as one list, like Ruby's Dir.glob().sort. */
    root = conf_parse_string("@include sub/{b,a}.frag.conf\n", virt, &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_int_equal(root->nchildren, 2);
    assert_string_equal(root->children[0]->arg, "a.**");
    assert_string_equal(root->children[1]->arg, "b.**");
    conf_free(root);
    conf_errors_free(&errs);
    free(virt);
    free(main_path);
    free(params_path);
    free(a_path);
}

static void test_include_error_names_included_file(void **state)
{
    conf_errors errs = {0};
    char *path = fmt("%s/bad_include.conf", fixtures());
    char *want = fmt("%s/sub/bad.conf:3: unterminated quoted string", fixtures());
    conf_node *root = conf_parse_file(path, &errs);
    EXPECT_ERRORS(&errs, want);
    assert_non_null(root);
    assert_string_equal(val(root, "good"), "1");
    assert_string_equal(val(root, "also_good"), "2");
    assert_string_equal(val(root, "after_include"), "yes");
    conf_free(root);
    conf_errors_free(&errs);
    free(path);
    free(want);
}

static void test_include_missing_and_no_match(void **state)
{
    conf_errors errs = {0};
    char *path = fmt("%s/missing.conf", fixtures());
    char *want = fmt("%s:1: cannot read included file '%s/sub/does_not_exist.conf': No such file or directory", path,
                     fixtures());
    conf_node *root = conf_parse_file(path, &errs);
    EXPECT_ERRORS(&errs, want);
    assert_non_null(root);
    conf_free(root);
    conf_errors_free(&errs);

    root = parse("@include /nonexistent-weir-dir/*.conf\n@include\nx 1\n", &errs);
    EXPECT_ERRORS(&errs, "t.conf:2: @include without a path");
    assert_string_equal(val(root, "x"), "1");
    conf_free(root);
    conf_errors_free(&errs);

    root = parse("@include /dev/null\n", &errs);
    EXPECT_ERRORS(&errs, "t.conf:1: cannot include '/dev/null': not a regular file");
    conf_free(root);
    conf_errors_free(&errs);
    free(path);
    free(want);
}

static void test_include_cycle(void **state)
{
    conf_errors errs = {0};
    char *path = fmt("%s/loop.conf", fixtures());
    char *want = fmt("%s:2: @include cycle: '%s' is already being read", path, path);
    conf_node *root = conf_parse_file(path, &errs);
    EXPECT_ERRORS(&errs, want);
    assert_non_null(root);
    assert_string_equal(val(root, "loop_param"), "1");
    conf_free(root);
    conf_errors_free(&errs);
    free(path);
    free(want);
}

/* Builds c0.conf -> c1.conf -> ... -> cN.conf (leaf) and parses c0. */
static conf_node *parse_chain(const char *dir, int n, conf_errors *errs)
{
    for (int i = 0; i <= n; i++) {
        char *path = fmt("%s/c%d.conf", dir, i);
        char *text = i < n ? fmt("@include c%d.conf\n", i + 1) : fmt("leaf yes\n");
        write_file(path, text, strlen(text));
        free(path);
        free(text);
    }
    char *top = fmt("%s/c0.conf", dir);
    conf_node *root = conf_parse_file(top, errs);
    free(top);
    return root;
}

static void remove_chain(const char *dir, int n)
{
    for (int i = 0; i <= n; i++) {
        char *path = fmt("%s/c%d.conf", dir, i);
        unlink(path);
        free(path);
    }
    rmdir(dir);
}

static void test_include_depth_limit(void **state)
{
    char dir[] = "/tmp/weir-conf-XXXXXX";
    assert_non_null(mkdtemp(dir));
    conf_errors errs = {0};

    /* 16 nested includes are allowed. */
    conf_node *root = parse_chain(dir, 16, &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_string_equal(val(root, "leaf"), "yes");
    conf_free(root);

    /* The 17th is refused, at the @include that asked for it. */
    root = parse_chain(dir, 17, &errs);
    char *want = fmt("%s/c16.conf:1: @include nested more than 16 levels deep: '%s/c17.conf'", dir, dir);
    EXPECT_ERRORS(&errs, want);
    assert_non_null(root);
    assert_null(val(root, "leaf"));
    conf_free(root);
    conf_errors_free(&errs);
    free(want);
    remove_chain(dir, 17);
}

/* ---- lookups ------------------------------------------------------------ */

static void test_conf_get(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("a 1\nb 2\n", &errs);
    conf_param *p = conf_get(root, "b");
    assert_non_null(p);
    assert_string_equal(p->value, "2");
    assert_int_equal(p->used, 1);
    assert_int_equal(param(root, "a")->used, 0);
    assert_string_equal(conf_get_value(root, "a"), "1");
    assert_int_equal(param(root, "a")->used, 1);
    assert_null(conf_get(root, "c"));
    assert_null(conf_get_value(root, "c"));
    conf_free(root);
    conf_errors_free(&errs);
}

/* ---- conversions -------------------------------------------------------- */

static void test_parse_size(void **state)
{
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"0", 0},
        {"10", 10},
        {"8k", 8192},
        {"8K", 8192},
        {"8kb", 8192},
        {"8KB", 8192},
        {"1m", 1048576},
        {"2M", 2097152},
        {"1g", 1073741824},
        {"1t", 1099511627776ULL},
        {"100b", 100},
        {"18446744073709551615", UINT64_MAX},
        {"16777215t", 16777215ULL << 40},
    };
    static const char *const bad[] = {
        "", "-1", "+1", "1.5k", "k", "10x", " 10", "10 ", "8kk", "8bk", "18446744073709551616", "16777216t",
        "0x10",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        uint64_t v = 12345;
        assert_int_equal(conf_parse_size(ok[i].s, &v), 0);
        assert_true(v == ok[i].v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t v = 12345;
        if (conf_parse_size(bad[i], &v) != -1)
            fail_msg("size '%s' accepted", bad[i]);
        assert_true(v == 12345);
    }
}

static void test_parse_time(void **state)
{
    static const struct {
        const char *s;
        double v;
    } ok[] = {
        {"0", 0}, {"1.5", 1.5}, {"10s", 10}, {"5m", 300}, {"2h", 7200}, {"1d", 86400},
        {"100ms", 0.1}, {".5", 0.5}, {"0.25m", 15}, {"60", 60},
    };
    static const char *const bad[] = {
        "", "-1", "+1", "5x", "5S", "1e3", "inf", "nan", "5.", ".", "1.2.3", "0x10", " 1", "1 ", "5sec", "s",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        double v = -1;
        assert_int_equal(conf_parse_time(ok[i].s, &v), 0);
        assert_true(v == ok[i].v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = -1;
        if (conf_parse_time(bad[i], &v) != -1)
            fail_msg("time '%s' accepted", bad[i]);
        assert_true(v == -1);
    }
    /* 400 digits overflow a double: refused, not infinity. */
    char huge[402];
    memset(huge, '9', 400);
    huge[400] = 'd';
    huge[401] = '\0';
    double v = -1;
    assert_int_equal(conf_parse_time(huge, &v), -1);
}

static void test_parse_bool(void **state)
{
    int v = -1;
    assert_int_equal(conf_parse_bool("true", &v), 0);
    assert_int_equal(v, 1);
    v = -1;
    assert_int_equal(conf_parse_bool("yes", &v), 0);
    assert_int_equal(v, 1);
    v = -1;
    assert_int_equal(conf_parse_bool("", &v), 0); /* bare flag */
    assert_int_equal(v, 1);
    assert_int_equal(conf_parse_bool("false", &v), 0);
    assert_int_equal(v, 0);
    v = -1;
    assert_int_equal(conf_parse_bool("no", &v), 0);
    assert_int_equal(v, 0);
    static const char *const bad[] = {"TRUE", "True", "on", "off", "1", "0", "maybe", " true", "true "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = -1;
        if (conf_parse_bool(bad[i], &v) != -1)
            fail_msg("bool '%s' accepted", bad[i]);
        assert_int_equal(v, -1);
    }
}

static void test_parse_int(void **state)
{
    static const struct {
        const char *s;
        int64_t v;
    } ok[] = {
        {"0", 0}, {"-5", -5}, {"+7", 7}, {"007", 7}, {"-0", 0},
        {"9223372036854775807", INT64_MAX}, {"-9223372036854775808", INT64_MIN},
    };
    static const char *const bad[] = {
        "", "+", "-", "12a", " 1", "1 ", "0x10", "1.0", "+-1", "9223372036854775808", "-9223372036854775809", "1e3",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = 12345;
        assert_int_equal(conf_parse_int(ok[i].s, &v), 0);
        assert_true(v == ok[i].v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v = 12345;
        if (conf_parse_int(bad[i], &v) != -1)
            fail_msg("int '%s' accepted", bad[i]);
        assert_true(v == 12345);
    }
}

static void check_array(const char *s, const char *const *want)
{
    char **v = conf_parse_array(s);
    size_t i = 0;
    if (!v)
        fail_msg("array '%s' refused", s);
    for (; want[i]; i++) {
        if (!v[i])
            fail_msg("array '%s': only %zu elements", s, i);
        assert_string_equal(v[i], want[i]);
    }
    if (v[i])
        fail_msg("array '%s': extra element '%s'", s, v[i]);
    conf_strv_free(v);
}

/* The expected elements end with NULL. */
#define EXPECT_ARRAY(s, ...) check_array((s), (const char *const[]){__VA_ARGS__})

static void test_parse_array(void **state)
{
    EXPECT_ARRAY("[\"a\", \"b\"]", "a", "b", NULL);
    EXPECT_ARRAY(" [ 1 , 2.5 , -3e2, true ] ", "1", "2.5", "-3e2", "true", NULL);
    EXPECT_ARRAY("[\"\\u00e9\\ud83d\\ude00\\n\\\"\"]", "\xc3\xa9\xf0\x9f\x98\x80\n\"", NULL);
    EXPECT_ARRAY("[]", NULL);
    EXPECT_ARRAY("a, b ,c", "a", "b", "c", NULL);
    EXPECT_ARRAY("  one  ", "one", NULL);
    EXPECT_ARRAY("a b", "a b", NULL);
    EXPECT_ARRAY("", NULL);
    EXPECT_ARRAY("   ", NULL);
    EXPECT_ARRAY("a,b,", "a", "b", NULL); /* Ruby split drops trailing empties */
    EXPECT_ARRAY(",a", "", "a", NULL);
    EXPECT_ARRAY("a,,b", "a", "", "b", NULL);

    static const char *const bad[] = {
        "[", "[1,", "[1 2]", "[\"a\"] x", "[null]", "[[1]]", "[{\"a\":1}]", "[\"\\u0000\"]", "[\"\\ud800\"]",
        "[\"\\q\"]", "[01]", "[1.]", "[,]", "[\"a\",]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char **v = conf_parse_array(bad[i]);
        if (v) {
            conf_strv_free(v);
            fail_msg("array '%s' accepted", bad[i]);
        }
    }
}

/* ---- conf_suggest ------------------------------------------------------- */

static void test_suggest(void **state)
{
    static const char *const cands[] = {"flush_interval", "chunk_limit_size", "workers", "tag", NULL};
    assert_string_equal(conf_suggest("flush_intervl", cands), "flush_interval");
    assert_string_equal(conf_suggest("chunk_limit_sise", cands), "chunk_limit_size");
    /* Two transpositions: distance 2 with Damerau, 4 with plain Levenshtein. */
    assert_string_equal(conf_suggest("wrokres", cands), "workers");
    assert_string_equal(conf_suggest("tg", cands), "tag");
    assert_null(conf_suggest("xyz", cands));
    assert_null(conf_suggest("path", cands));

    /* Limit is max(2, len/3): 12 letters allow 4 edits, not 5. */
    static const char *const far4[] = {"abcdefghWXYZ", NULL};
    static const char *const far5[] = {"abcdefgVWXYZ", NULL};
    assert_string_equal(conf_suggest("abcdefghijkl", far4), "abcdefghWXYZ");
    assert_null(conf_suggest("abcdefghijkl", far5));

    /* The closest wins over the first close enough. */
    static const char *const two[] = {"formats", "format", NULL};
    assert_string_equal(conf_suggest("formt", two), "format");
    static const char *const none[] = {NULL};
    assert_null(conf_suggest("anything", none));
}

/* ---- conf_errors -------------------------------------------------------- */

static void test_errors_format(void **state)
{
    conf_errors e = {0};
    conf_errors_add(&e, "f.conf", 3, "x %d", 5);
    conf_errors_add(&e, "f.conf", 0, "whole file");
    conf_errors_add(&e, NULL, 7, "no file");
    for (int i = 0; i < 20; i++)
        conf_errors_add(&e, "g", i + 1, "n%d", i);
    assert_int_equal(e.n, 23);
    assert_string_equal(e.msgs[0], "f.conf:3: x 5");
    assert_string_equal(e.msgs[1], "f.conf: whole file");
    assert_string_equal(e.msgs[2], "no file");
    assert_string_equal(e.msgs[22], "g:20: n19");
    conf_errors_free(&e);
    assert_int_equal(e.n, 0);
    assert_null(e.msgs);
}

/* ---- conf_bind ---------------------------------------------------------- */

typedef struct tctx {
    char *path;
    int64_t workers;
    int compress;
    uint64_t chunk;
    double flush;
    int format;
    char **tags;
    char *label_name;
    int64_t retry;
} tctx;

static const conf_spec tspec[] = {
    {"path", CONF_STR, NULL, 1, offsetof(tctx, path), NULL, "a required string"},
    {"workers", CONF_INT, "1", 0, offsetof(tctx, workers), NULL, "an integer"},
    {"compress", CONF_BOOL, "false", 0, offsetof(tctx, compress), NULL, "a boolean"},
    {"chunk_limit_size", CONF_SIZE, "8m", 0, offsetof(tctx, chunk), NULL, "a size"},
    {"flush_interval", CONF_TIME, "60s", 0, offsetof(tctx, flush), NULL, "a time"},
    {"format", CONF_ENUM, "json", 0, offsetof(tctx, format), "json|msgpack|ltsv", "an enum"},
    {"tags", CONF_ARRAY, "a,b", 0, offsetof(tctx, tags), NULL, "an array"},
    {"label_name", CONF_STR, "dflt", 0, offsetof(tctx, label_name), NULL, "a string with a default"},
    {"retry", CONF_INT, NULL, 0, offsetof(tctx, retry), NULL, "an integer without a default"},
    {"buffer", CONF_SECTION, NULL, 0, 0, NULL, "an allowed sub-section"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static void test_bind_all_types(void **state)
{
    conf_errors errs = {0};
    /* a section of no plugin kind: the compatibility layer (test_compat.c) leaves it as written */
    conf_node *root = parse("<section **>\n"
                            "  @type testplugin\n"
                            "  path /tmp/out\n"
                            "  workers -4\n"
                            "  compress\n"
                            "  chunk_limit_size 16k\n"
                            "  flush_interval 1.5m\n"
                            "  format ltsv\n"
                            "  tags [\"x\", \"y\"]\n"
                            "  retry 3\n"
                            "  retry 5\n"
                            "  <buffer>\n"
                            "  </buffer>\n"
                            "</section>\n",
                            &errs);
    EXPECT_NO_ERRORS(&errs);
    conf_node *m = root->children[0];
    tctx c;
    memset(&c, 0xA5, sizeof c);
    assert_int_equal(conf_bind(m, tspec, &c, &errs), 0);
    EXPECT_NO_ERRORS(&errs);
    assert_string_equal(c.path, "/tmp/out");
    assert_true(c.workers == -4);
    assert_int_equal(c.compress, 1);
    assert_true(c.chunk == 16384);
    assert_true(c.flush == 90.0);
    assert_int_equal(c.format, 2);
    assert_non_null(c.tags);
    assert_string_equal(c.tags[0], "x");
    assert_string_equal(c.tags[1], "y");
    assert_null(c.tags[2]);
    assert_string_equal(c.label_name, "dflt");
    assert_true(c.retry == 5); /* last one wins */
    assert_int_equal(param(m, "path")->used, 1);
    assert_int_equal(param(m, "tags")->used, 1);
    assert_int_equal(param(m, "@type")->used, 0);

    conf_unbind(tspec, &c);
    assert_null(c.path);
    assert_null(c.tags);
    assert_null(c.label_name);
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_bind_defaults_and_required(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("\n<match **>\n</match>\n", &errs);
    tctx c;
    memset(&c, 0xA5, sizeof c);
    assert_int_equal(conf_bind(root->children[0], tspec, &c, &errs), -1);
    EXPECT_ERRORS(&errs, "t.conf:2: missing required parameter 'path' in <match **>");
    assert_null(c.path);
    assert_true(c.workers == 1);
    assert_int_equal(c.compress, 0);
    assert_true(c.chunk == 8 * 1024 * 1024);
    assert_true(c.flush == 60.0);
    assert_int_equal(c.format, 0);
    assert_string_equal(c.tags[0], "a");
    assert_string_equal(c.tags[1], "b");
    assert_null(c.tags[2]);
    assert_string_equal(c.label_name, "dflt");
    assert_true(c.retry == 0);
    conf_unbind(tspec, &c);
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_bind_invalid_values(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("<buffer>\n"
                            "  workers 12x\n"
                            "  compress maybe\n"
                            "  chunk_limit_size 1.5k\n"
                            "  flush_interval soon\n"
                            "  format xml\n"
                            "  tags [{\"a\": 1}]\n"
                            "  path \"\"\n"
                            "</buffer>\n",
                            &errs);
    EXPECT_NO_ERRORS(&errs);
    tctx c;
    memset(&c, 0xA5, sizeof c);
    assert_int_equal(conf_bind(root->children[0], tspec, &c, &errs), -1);
    EXPECT_ERRORS(&errs, "t.conf:2: invalid integer value '12x' for parameter 'workers'",
                  "t.conf:3: invalid boolean value 'maybe' for parameter 'compress'",
                  "t.conf:4: invalid size value '1.5k' for parameter 'chunk_limit_size'",
                  "t.conf:5: invalid time value 'soon' for parameter 'flush_interval'",
                  "t.conf:6: invalid value 'xml' for parameter 'format'; expected one of: json, msgpack, ltsv",
                  "t.conf:7: invalid array value '[{\"a\":1}]' for parameter 'tags'");
    /* Bad values fall back to the defaults; an empty string is a value. */
    assert_string_equal(c.path, "");
    assert_true(c.workers == 1);
    assert_int_equal(c.compress, 0);
    assert_true(c.chunk == 8 * 1024 * 1024);
    assert_true(c.flush == 60.0);
    assert_int_equal(c.format, 0);
    assert_string_equal(c.tags[0], "a");
    conf_unbind(tspec, &c);
    conf_free(root);
    conf_errors_free(&errs);
}

static const conf_spec buffer_spec[] = {
    {"flush_interval", CONF_TIME, "60s", 0, 0, NULL, "a time"},
    {"chunk_limit_size", CONF_SIZE, "8m", 0, sizeof(double), NULL, "a size"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static void test_bind_unknown_parameter(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("log_levle debug\n"
                            "<buffer>\n"
                            "  flush_intervl 5s\n"
                            "  @id foo\n"
                            "  @type file\n"
                            "  zzzz 1\n"
                            "  read_by_caller 1\n"
                            "</buffer>\n"
                            "<match app.**>\n"
                            "  chunk_limit_sise 1k\n"
                            "</match>\n",
                            &errs);
    EXPECT_NO_ERRORS(&errs);
    struct {
        double flush;
        uint64_t chunk;
    } b;
    conf_node *buf = root->children[0];
    assert_non_null(conf_get(buf, "read_by_caller"));
    assert_int_equal(conf_bind(buf, buffer_spec, &b, &errs), -1);
    EXPECT_ERRORS(&errs, "t.conf:3: unknown parameter 'flush_intervl' in <buffer>; did you mean 'flush_interval'?",
                  "t.conf:6: unknown parameter 'zzzz' in <buffer>");
    assert_true(b.flush == 60.0);
    conf_errors_free(&errs);

    assert_int_equal(conf_bind(root->children[1], buffer_spec, &b, &errs), -1);
    EXPECT_ERRORS(&errs,
                  "t.conf:10: unknown parameter 'chunk_limit_sise' in <match app.**>; did you mean 'chunk_limit_size'?");
    conf_errors_free(&errs);

    static const conf_spec top[] = {
        {"log_level", CONF_STR, NULL, 0, 0, NULL, "a string"},
        {"buffer", CONF_SECTION, NULL, 0, 0, NULL, "an allowed sub-section"},
        {"match", CONF_SECTION, NULL, 0, 0, NULL, "an allowed sub-section"},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    char *ll = (char *)"untouched";
    assert_int_equal(conf_bind(root, top, &ll, &errs), -1);
    EXPECT_ERRORS(&errs, "t.conf:1: unknown parameter 'log_levle' at top level; did you mean 'log_level'?");
    assert_null(ll);
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_bind_unknown_and_required_sections(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("<match **>\n"
                            "  <bufer>\n"
                            "  </bufer>\n"
                            "  <xyz>\n"
                            "  </xyz>\n"
                            "  <buffer>\n"
                            "  </buffer>\n"
                            "</match>\n",
                            &errs);
    static const conf_spec spec[] = {
        {"buffer", CONF_SECTION, NULL, 0, 0, NULL, "an allowed sub-section"},
        {"format", CONF_SECTION, NULL, 0, 0, NULL, "an allowed sub-section"},
        {"server", CONF_SECTION, NULL, 1, 0, NULL, "a required sub-section"},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
    };
    assert_int_equal(conf_bind(root->children[0], spec, NULL, &errs), -1);
    EXPECT_ERRORS(&errs, "t.conf:1: missing required section <server> in <match **>",
                  "t.conf:2: unknown section <bufer> in <match **>; did you mean <buffer>?",
                  "t.conf:4: unknown section <xyz> in <match **>");
    conf_free(root);
    conf_errors_free(&errs);
}

/* Fluentd's hash type: a JSON object (non-string values as JSON text) or
 * "k1:v1,k2:v2" (split at the first ':', spaces trimmed). */
static void test_parse_hash(void **state)
{
    conf_hash h;
    assert_int_equal(conf_parse_hash("{\"a\":\"1\",\"b\":2,\"c\":{\"d\":[1,true]}}", &h), 0);
    assert_int_equal(h.n, 3);
    assert_string_equal(h.kv[0].k, "a");
    assert_string_equal(h.kv[0].v, "1");
    assert_string_equal(conf_hash_get(&h, "b"), "2");
    assert_string_equal(conf_hash_get(&h, "c"), "{\"d\":[1,true]}");
    assert_null(conf_hash_get(&h, "x"));
    conf_hash_free(&h);
    assert_int_equal(conf_parse_hash(" k1 : v1 ,k2:http://h:1/p, :skipped", &h), 0);
    assert_int_equal(h.n, 2);
    assert_string_equal(h.kv[0].k, "k1");
    assert_string_equal(h.kv[0].v, "v1");
    assert_string_equal(h.kv[1].k, "k2");
    assert_string_equal(h.kv[1].v, "http://h:1/p");
    conf_hash_free(&h);
    assert_int_equal(conf_parse_hash("", &h), 0);
    assert_int_equal(h.n, 0);
    assert_int_equal(conf_parse_hash("novalue", &h), -1);
    assert_int_equal(h.n, 0);
    assert_null(h.kv);
    assert_int_equal(conf_parse_hash("{\"a\":", &h), -1);
    assert_int_equal(conf_parse_hash("[1,2]", &h), -1);
}

typedef struct hctx {
    conf_hash opts;
    conf_hash none;
} hctx;

static const conf_spec hspec[] = {
    {"opts", CONF_HASH, NULL, 0, offsetof(hctx, opts), NULL, "a hash"},
    {"none", CONF_HASH, NULL, 0, offsetof(hctx, none), NULL, "a hash left unset"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static void test_bind_hash(void **state)
{
    conf_errors errs = {0};
    conf_node *root = parse("<match **>\n  opts {\"linger.ms\":\"5\"}\n</match>\n<match **>\n  opts oops\n</match>\n",
                            &errs);
    EXPECT_NO_ERRORS(&errs);
    hctx c;
    memset(&c, 0xA5, sizeof c);
    assert_int_equal(conf_bind(root->children[0], hspec, &c, &errs), 0);
    assert_int_equal(c.opts.n, 1);
    assert_string_equal(conf_hash_get(&c.opts, "linger.ms"), "5");
    assert_int_equal(c.none.n, 0);
    conf_unbind(hspec, &c);
    assert_null(c.opts.kv);
    assert_int_equal(conf_bind(root->children[1], hspec, &c, &errs), -1);
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], ":5: invalid hash value 'oops' for parameter 'opts'"));
    assert_int_equal(c.opts.n, 0);
    conf_unbind(hspec, &c);
    conf_errors_free(&errs);
    conf_free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nested_sections),
        cmocka_unit_test(test_section_quoted_arg),
        cmocka_unit_test(test_parameters),
        cmocka_unit_test(test_crlf),
        cmocka_unit_test(test_last_value_wins),
        cmocka_unit_test(test_double_quoted),
        cmocka_unit_test(test_single_quoted),
        cmocka_unit_test(test_unquoted_is_not_interpolated),
        cmocka_unit_test(test_quote_errors),
        cmocka_unit_test(test_unterminated_quote_recovery),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_env_fetch_unset_is_an_error),
        cmocka_unit_test(test_ruby_code_refused),
        cmocka_unit_test(test_ruby_expressions),
        cmocka_unit_test(test_ruby_use_default),
        cmocka_unit_test(test_json_multiline),
        cmocka_unit_test(test_json_errors),
        cmocka_unit_test(test_json_unclosed_before_section),
        cmocka_unit_test(test_mismatched_close),
        cmocka_unit_test(test_close_of_outer_section_closes_inner),
        cmocka_unit_test(test_unclosed_section_returns_null),
        cmocka_unit_test(test_close_without_open),
        cmocka_unit_test(test_invalid_headers),
        cmocka_unit_test(test_multiple_errors_in_one_parse),
        cmocka_unit_test(test_nul_byte_and_unreadable_file),
        cmocka_unit_test(test_include_relative_and_glob),
        cmocka_unit_test(test_include_error_names_included_file),
        cmocka_unit_test(test_include_missing_and_no_match),
        cmocka_unit_test(test_include_cycle),
        cmocka_unit_test(test_include_depth_limit),
        cmocka_unit_test(test_conf_get),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_parse_array),
        cmocka_unit_test(test_suggest),
        cmocka_unit_test(test_errors_format),
        cmocka_unit_test(test_bind_all_types),
        cmocka_unit_test(test_bind_defaults_and_required),
        cmocka_unit_test(test_bind_invalid_values),
        cmocka_unit_test(test_bind_unknown_parameter),
        cmocka_unit_test(test_parse_hash),
        cmocka_unit_test(test_bind_hash),
        cmocka_unit_test(test_bind_unknown_and_required_sections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
