/*
 * test/unit/test_compat.c: Fluentd v1's compatibility layer
 * (config/conf_compat.c): each v0.12 form is parsed next to the v1 form
 * Fluentd 1.16's compat_parameters.rb builds from it, and the two trees must
 * be equal; the warnings (one per parameter) and the layer's errors; the
 * did-you-mean of v0.12 names; bare words.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/conf.h"
#include "aggregator/pipeline.h"

/* ---- helpers ------------------------------------------------------------ */

static void check_list(const conf_errors *e, const char *const *want, const char *what)
{
    size_t n = 0;
    while (want[n])
        n++;
    if (!e || e->n != n) {
        for (size_t i = 0; e && i < e->n; i++)
            print_error("got %s %zu: %s\n", what, i, e->msgs[i]);
        fail_msg("expected %zu %ss, got %zu", n, what, e ? e->n : 0);
    }
    for (size_t i = 0; i < n; i++)
        assert_string_equal(e->msgs[i], want[i]);
}

#define EXPECT_ERRORS(errs, ...) check_list((errs), (const char *const[]){__VA_ARGS__, NULL}, "error")
#define EXPECT_NO_ERRORS(errs) check_list((errs), (const char *const[]){NULL}, "error")
#define EXPECT_WARNINGS(root, ...) check_list(conf_warnings(root), (const char *const[]){__VA_ARGS__, NULL}, "warning")
#define EXPECT_NO_WARNINGS(root) check_list(conf_warnings(root), (const char *const[]){NULL}, "warning")

static int cmp_param(const void *a, const void *b)
{
    return strcmp(((const conf_param *)a)->key, ((const conf_param *)b)->key);
}

/* The tree as text, parameters sorted by key (their order carries no meaning). */
static void dump(FILE *f, const conf_node *n)
{
    conf_param *ps = malloc((n->nparams + 1) * sizeof *ps);
    if (n->nparams)
        memcpy(ps, n->params, n->nparams * sizeof *ps);
    qsort(ps, n->nparams, sizeof *ps, cmp_param);
    fprintf(f, "<%s%s%s>", n->name, n->arg ? " " : "", n->arg ? n->arg : "");
    for (size_t i = 0; i < n->nparams; i++)
        fprintf(f, " %s=[%s]", ps[i].key, ps[i].value);
    free(ps);
    for (size_t i = 0; i < n->nchildren; i++) {
        fputs(" ", f);
        dump(f, n->children[i]);
    }
    fprintf(f, " </%s>", n->name);
}

static char *text_of(const conf_node *n)
{
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    dump(f, n);
    fclose(f);
    return s;
}

/* v012 converts to exactly v1 (which converts to itself), with the warnings given */
static void expect_conversion(const char *v012, const char *v1, const char *const *warnings)
{
    conf_errors errs = {0};
    conf_node *a = conf_parse_string(v012, "old.conf", &errs);
    EXPECT_NO_ERRORS(&errs);
    conf_node *b = conf_parse_string(v1, "new.conf", &errs);
    EXPECT_NO_ERRORS(&errs);
    EXPECT_NO_WARNINGS(b);
    char *ta = text_of(a), *tb = text_of(b);
    assert_string_equal(ta, tb);
    check_list(conf_warnings(a), warnings, "warning");
    free(ta);
    free(tb);
    conf_free(a);
    conf_free(b);
}

#define EXPECT_CONVERSION(old, new, ...) expect_conversion((old), (new), (const char *const[]){__VA_ARGS__, NULL})

/* ---- type, id, log_level ------------------------------------------------- */

static void test_reserved_names(void **state)
{
    EXPECT_CONVERSION("<source>\n  type forward\n  id in\n  log_level warn\n  port 1\n</source>\n"
                      "<system>\n  log_level debug\n</system>\n"
                      "<match **>\n  type copy\n  <store>\n    type null\n    id n\n  </store>\n</match>\n",
                      "<source>\n  @type forward\n  @id in\n  @log_level warn\n  port 1\n</source>\n"
                      "<system>\n  log_level debug\n</system>\n"
                      "<match **>\n  @type copy\n  <store>\n    @type null\n    @id n\n  </store>\n</match>\n",
                      "old.conf:2: warning: 'type' is deprecated parameter name. use '@type' instead.",
                      "old.conf:3: warning: 'id' is deprecated parameter name. use '@id' instead.",
                      "old.conf:4: warning: 'log_level' is deprecated parameter name. use '@log_level' instead.",
                      "old.conf:11: warning: 'type' is deprecated parameter name. use '@type' instead.",
                      "old.conf:13: warning: 'type' is deprecated parameter name. use '@type' instead.",
                      "old.conf:14: warning: 'id' is deprecated parameter name. use '@id' instead.");
    /* <buffer>, <parse>, <format> read @type too; <metric> (not a plugin section) keeps its own `type` */
    EXPECT_CONVERSION("<filter **>\n  @type parser\n  <parse>\n    type json\n  </parse>\n</filter>\n"
                      "<match **>\n  @type x\n  <buffer>\n    type file\n  </buffer>\n"
                      "  <metric>\n    type counter\n  </metric>\n</match>\n",
                      "<filter **>\n  @type parser\n  <parse>\n    @type json\n  </parse>\n</filter>\n"
                      "<match **>\n  @type x\n  <buffer>\n    @type file\n  </buffer>\n"
                      "  <metric>\n    type counter\n  </metric>\n</match>\n",
                      "old.conf:4: warning: 'type' is deprecated parameter name. use '@type' instead.",
                      "old.conf:10: warning: 'type' is deprecated parameter name. use '@type' instead.");
    /* both: @type wins, `type` is not used */
    EXPECT_CONVERSION("<match **>\n  @type null\n  type file\n</match>\n", "<match **>\n  @type null\n</match>\n",
                      "old.conf:3: warning: parameter 'type' in <match **> is not used: '@type' is set");
}

/* ---- buffer ---------------------------------------------------------------- */

static void test_buffer_params(void **state)
{
    /* every BUFFER_PARAMS row; out_file's default chunk key is time (timekey 1d); flush_interval written on
     * the output makes flush_mode interval (Output#configure) */
    EXPECT_CONVERSION("<match **>\n  type file\n  path /o\n  buffer_type memory\n  buffer_path /b\n  num_threads 2\n"
                      "  flush_interval 5s\n  try_flush_interval 1\n  queued_chunk_flush_interval 2\n"
                      "  disable_retry_limit false\n  retry_limit 7\n  max_retry_wait 30s\n  buffer_chunk_limit 1m\n"
                      "  buffer_queue_limit 64\n  buffer_queue_full_action exception\n  flush_at_shutdown true\n"
                      "</match>\n",
                      "<match **>\n  @type file\n  path /o\n  <buffer time>\n    @type memory\n    path /b\n"
                      "    flush_thread_count 2\n    flush_interval 5s\n    flush_thread_interval 1\n"
                      "    flush_thread_burst_interval 2\n    retry_forever false\n    retry_max_times 7\n"
                      "    retry_max_interval 30s\n    chunk_limit_size 1m\n    queue_limit_length 64\n"
                      "    overflow_action throw_exception\n    flush_at_shutdown true\n    timekey 86400\n"
                      "    flush_mode interval\n  </buffer>\n</match>\n",
                      "old.conf:2: warning: 'type' is deprecated parameter name. use '@type' instead.",
                      "old.conf:4: warning: 'buffer_type' is deprecated parameter. use '@type' in <buffer> instead.",
                      "old.conf:5: warning: 'buffer_path' is deprecated parameter. use 'path' in <buffer> instead.",
                      "old.conf:6: warning: 'num_threads' is deprecated parameter. use 'flush_thread_count' in <buffer> "
                      "instead.",
                      "old.conf:7: warning: 'flush_interval' is deprecated parameter. use 'flush_interval' in <buffer> "
                      "instead.",
                      "old.conf:8: warning: 'try_flush_interval' is deprecated parameter. use 'flush_thread_interval' "
                      "in <buffer> instead.",
                      "old.conf:9: warning: 'queued_chunk_flush_interval' is deprecated parameter. use "
                      "'flush_thread_burst_interval' in <buffer> instead.",
                      "old.conf:10: warning: 'disable_retry_limit' is deprecated parameter. use 'retry_forever' in "
                      "<buffer> instead.",
                      "old.conf:11: warning: 'retry_limit' is deprecated parameter. use 'retry_max_times' in <buffer> "
                      "instead.",
                      "old.conf:12: warning: 'max_retry_wait' is deprecated parameter. use 'retry_max_interval' in "
                      "<buffer> instead.",
                      "old.conf:13: warning: 'buffer_chunk_limit' is deprecated parameter. use 'chunk_limit_size' in "
                      "<buffer> instead.",
                      "old.conf:14: warning: 'buffer_queue_limit' is deprecated parameter. use 'queue_limit_length' in "
                      "<buffer> instead.",
                      "old.conf:15: warning: 'buffer_queue_full_action' is deprecated parameter. use 'overflow_action' "
                      "in <buffer> instead.",
                      "old.conf:16: warning: 'flush_at_shutdown' is deprecated parameter. use 'flush_at_shutdown' in "
                      "<buffer> instead.");
}

static void test_buffer_time_sliced(void **state)
{
    /* time_slice_format: chunk key time, timekey from its finest field; localtime: timekey_use_utc false;
     * timezone goes to the buffer (timekey_zone) and to <inject> (out_file converts both) */
    EXPECT_CONVERSION("<match **>\n  @type file\n  path /o\n  time_slice_format %Y%m%d%H\n  time_slice_wait 1m\n"
                      "  localtime true\n  timezone +0900\n</match>\n",
                      "<match **>\n  @type file\n  path /o\n  <format>\n    localtime true\n    timezone +0900\n"
                      "  </format>\n  <buffer time>\n    timekey 3600\n    timekey_wait 1m\n"
                      "    timekey_use_utc false\n    timekey_zone +0900\n  </buffer>\n"
                      "  <inject>\n    timezone +0900\n    localtime true\n  </inject>\n</match>\n",
                      "old.conf:4: warning: 'time_slice_format' is deprecated parameter. use 'timekey 3600' in <buffer "
                      "time> instead.",
                      "old.conf:5: warning: 'time_slice_wait' is deprecated parameter. use 'timekey_wait' in <buffer> "
                      "instead.",
                      "old.conf:6: warning: 'localtime' is deprecated parameter. use 'localtime' in <format>, "
                      "'timekey_use_utc' in <buffer>, 'localtime' in <inject> instead.",
                      "old.conf:7: warning: 'timezone' is deprecated parameter. use 'timezone' in <format>, "
                      "'timekey_zone' in <buffer>, 'timezone' in <inject> instead.");
    /* Elasticsearch (and loki, opensearch): <buffer> without chunk key (the plugin's default applies); the
     * plugin's own include_tag_key stays */
    EXPECT_CONVERSION("<match **>\n  @type elasticsearch\n  include_tag_key true\n  buffer_type file\n"
                      "  buffer_path /b\n</match>\n",
                      "<match **>\n  @type elasticsearch\n  include_tag_key true\n  <buffer>\n    @type file\n"
                      "    path /b\n  </buffer>\n</match>\n",
                      "old.conf:4: warning: 'buffer_type' is deprecated parameter. use '@type' in <buffer> instead.",
                      "old.conf:5: warning: 'buffer_path' is deprecated parameter. use 'path' in <buffer> instead.");
    /* forward: chunk key tag */
    EXPECT_CONVERSION("<match **>\n  @type forward\n  retry_limit 3\n</match>\n",
                      "<match **>\n  @type forward\n  <buffer tag>\n    retry_max_times 3\n  </buffer>\n</match>\n",
                      "old.conf:3: warning: 'retry_limit' is deprecated parameter. use 'retry_max_times' in <buffer> "
                      "instead.");

    conf_errors errs = {0};
    conf_node *r = conf_parse_string("<match **>\n  @type file\n  path /o\n  time_slice_format %Y%m\n</match>\n"
                                     "<match x>\n  @type file\n  path /o\n  time_slice_format %Y%m%d\n  localtime\n"
                                     "  utc\n</match>\n",
                                     "t.conf", &errs);
    EXPECT_ERRORS(&errs, "t.conf:4: time_slice_format only with %Y or %m is too long",
                  "t.conf:11: both of utc and localtime are specified, use only one of them",
                  "t.conf:11: both of utc and localtime are specified, use only one of them");
    conf_errors_free(&errs);
    conf_free(r);
}

static void test_buffer_written(void **state)
{
    /* a <buffer> is written: Fluentd converts nothing, the v0.12 parameters are unused; flush_interval
     * outside still makes flush_mode interval */
    EXPECT_CONVERSION("<match **>\n  @type file\n  path /o\n  flush_interval 5s\n  max_retry_wait 10s\n"
                      "  <buffer time>\n    timekey 1h\n  </buffer>\n</match>\n",
                      "<match **>\n  @type file\n  path /o\n  <buffer time>\n    timekey 1h\n    flush_mode interval\n"
                      "  </buffer>\n</match>\n",
                      "old.conf:4: warning: parameter 'flush_interval' outside <buffer> is not used, but as in Fluentd "
                      "it sets <buffer>'s flush_mode to 'interval' (\"to keep existing behaviour\"); use "
                      "'flush_interval' in <buffer>",
                      "old.conf:5: warning: parameter 'max_retry_wait' in <match **> is not used: a <buffer> section is "
                      "written, and Fluentd converts v0.12 parameters only without one; use 'retry_max_interval' in "
                      "<buffer>");
}

/* ---- inject, format, parse ------------------------------------------------------ */

static void test_inject_and_format(void **state)
{
    EXPECT_CONVERSION("<match **>\n  @type stdout\n  format json\n  include_time_key true\n  include_tag_key\n"
                      "  time_format %s\n  utc\n</match>\n",
                      "<match **>\n  @type stdout\n  <inject>\n    time_format %s\n    time_key time\n"
                      "    time_type string\n    localtime false\n    tag_key tag\n  </inject>\n  <format>\n"
                      "    @type json\n    utc\n  </format>\n</match>\n",
                      "old.conf:3: warning: 'format' is deprecated parameter. use '@type' in <format> instead.",
                      "old.conf:4: warning: 'include_time_key' is deprecated parameter. use 'time_key' in <inject> "
                      "instead.",
                      "old.conf:5: warning: 'include_tag_key' is deprecated parameter. use 'tag_key' in <inject> "
                      "instead.",
                      "old.conf:6: warning: 'time_format' is deprecated parameter. use 'time_format' in <inject> "
                      "instead.",
                      "old.conf:7: warning: 'utc' is deprecated parameter. use 'localtime' in <inject>, 'utc' in "
                      "<format> instead.");
    /* time_key without include_time_key injects (Fluentd copies it as it is); include_time_key false alone
     * builds an empty <inject>; tag_key wins over include_tag_key's default */
    EXPECT_CONVERSION("<match **>\n  @type file\n  path /o\n  time_key t\n  include_tag_key true\n  tag_key tg\n"
                      "</match>\n<match x>\n  @type file\n  path /p\n  include_time_key false\n</match>\n",
                      "<match **>\n  @type file\n  path /o\n  <inject>\n    time_key t\n    tag_key tg\n  </inject>\n"
                      "</match>\n<match x>\n  @type file\n  path /p\n  <inject>\n  </inject>\n</match>\n",
                      "old.conf:4: warning: 'time_key' is deprecated parameter. use 'time_key' in <inject> instead.",
                      "old.conf:5: warning: 'include_tag_key' is deprecated parameter. use 'tag_key' in <inject> "
                      "instead.",
                      "old.conf:6: warning: 'tag_key' is deprecated parameter. use 'tag_key' in <inject> instead.",
                      "old.conf:11: warning: 'include_time_key' is deprecated parameter. use 'time_key' in <inject> "
                      "instead.");
}

static void test_parser_params(void **state)
{
    /* format /RE/: regexp with the expression; types as a JSON hash; utc: localtime false */
    EXPECT_CONVERSION("<filter **>\n  type parser\n  key_name log\n  format /^(?<a>\\S+) (?<b>.*)$/\n"
                      "  time_format %d/%b/%Y\n  time_key ts\n  types a:integer,b:string\n  utc true\n"
                      "  reserve_data true\n</filter>\n",
                      "<filter **>\n  @type parser\n  key_name log\n  reserve_data true\n  <parse>\n"
                      "    @type regexp\n    expression ^(?<a>\\S+) (?<b>.*)$\n    time_format %d/%b/%Y\n"
                      "    time_key ts\n    types {\"a\":\"integer\",\"b\":\"string\"}\n    localtime false\n"
                      "  </parse>\n</filter>\n",
                      "old.conf:2: warning: 'type' is deprecated parameter name. use '@type' instead.",
                      "old.conf:4: warning: 'format' is deprecated parameter. use '@type regexp' and 'expression' in "
                      "<parse> instead.",
                      "old.conf:5: warning: 'time_format' is deprecated parameter. use 'time_format' in <parse> "
                      "instead.",
                      "old.conf:6: warning: 'time_key' is deprecated parameter. use 'time_key' in <parse> instead.",
                      "old.conf:7: warning: 'types' is deprecated parameter. use 'types' in <parse> (a hash) instead.",
                      "old.conf:8: warning: 'utc' is deprecated parameter. use 'localtime false' in <parse> instead.");
    /* a named format, other delimiters for types, keep_time_key */
    EXPECT_CONVERSION("<filter **>\n  @type parser\n  key_name log\n  format json\n  keep_time_key true\n"
                      "  types n=integer|f=float\n  types_delimiter |\n  types_label_delimiter =\n</filter>\n",
                      "<filter **>\n  @type parser\n  key_name log\n  <parse>\n    @type json\n"
                      "    keep_time_key true\n    types {\"n\":\"integer\",\"f\":\"float\"}\n  </parse>\n</filter>\n",
                      "old.conf:4: warning: 'format' is deprecated parameter. use '@type json' in <parse> instead.",
                      "old.conf:5: warning: 'keep_time_key' is deprecated parameter. use 'keep_time_key' in <parse> "
                      "instead.",
                      "old.conf:6: warning: 'types' is deprecated parameter. use 'types' in <parse> (a hash) instead.",
                      "old.conf:7: warning: 'types_delimiter' is deprecated parameter. use 'types' in <parse> (a hash) "
                      "instead.",
                      "old.conf:8: warning: 'types_label_delimiter' is deprecated parameter. use 'types' in <parse> (a "
                      "hash) instead.");
    /* a written <parse>: unused */
    EXPECT_CONVERSION("<filter **>\n  @type parser\n  key_name log\n  time_format %s\n  <parse>\n    @type json\n"
                      "  </parse>\n</filter>\n",
                      "<filter **>\n  @type parser\n  key_name log\n  <parse>\n    @type json\n  </parse>\n</filter>\n",
                      "old.conf:4: warning: parameter 'time_format' in <filter **> is not used: a <parse> section is "
                      "written, and Fluentd converts v0.12 parameters only without one; use 'time_format' in <parse>");
    /* plugins that do not convert keep their parameters (record_transformer has no `format`: binding decides) */
    EXPECT_CONVERSION("<filter **>\n  @type record_transformer\n  format json\n</filter>\n",
                      "<filter **>\n  @type record_transformer\n  format json\n</filter>\n", NULL);
}

/* ---- binding: did-you-mean, unused v0.12 names, bare words ----------------------------- */

static const conf_spec spec[] = {
    {"retry_max_interval", CONF_TIME, "0", 0, 0, NULL, "a time"},
    {"bulk_retry_wait", CONF_TIME, "0", 0, 0, NULL, "a time"},
    {"include_tag_key", CONF_BOOL, "false", 0, 0, NULL, "a flag"},
    {"buffer", CONF_SECTION, NULL, 0, 0, NULL, "a section"},
    {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static void test_bind_v012_names(void **state)
{
    conf_errors errs = {0};
    conf_node *r = conf_parse_string("<match **>\n  @type kafka2\n  flush_interval 3s\n  max_retry_wait 1s\n"
                                     "  some words\n  include_tag_kye\n</match>\n<buffer>\n    max_retry_wait 30s\n"
                                     "    max_retry_wiat 30s\n    retry_limit 3\n  </buffer>\n",
                                     "t.conf", &errs);
    EXPECT_NO_ERRORS(&errs);
    EXPECT_NO_WARNINGS(r);
    double d[4];
    conf_node *m = r->children[0];
    assert_int_equal(conf_bind(m, spec, d, &errs), -1);
    /* a plugin that does not convert: unused (Fluentd warns too); a word alone: a warning */
    EXPECT_WARNINGS(r,
                    "t.conf:3: warning: parameter 'flush_interval' in <match **> is not used (Fluentd v1 does not "
                    "convert it here either); use 'flush_interval' in <buffer>",
                    "t.conf:4: warning: parameter 'max_retry_wait' in <match **> is not used (Fluentd v1 does not "
                    "convert it here either); use 'retry_max_interval' in <buffer>",
                    "t.conf:6: warning: parameter 'include_tag_kye' in <match **> is not used (a word alone on its "
                    "line: a comment without '#'?); did you mean 'include_tag_key'?");
    EXPECT_ERRORS(&errs, "t.conf:5: unknown parameter 'some' in <match **>");
    conf_errors_free(&errs);
    /* inside <buffer>: errors naming the v1 form, not 'bulk_retry_wait' */
    assert_int_equal(conf_bind(r->children[1], spec, d, &errs), -1);
    EXPECT_ERRORS(&errs,
                  "t.conf:9: unknown parameter 'max_retry_wait' in <buffer>; did you mean 'retry_max_interval' in "
                  "<buffer> (its v1 form)?",
                  "t.conf:10: unknown parameter 'max_retry_wiat' in <buffer>; did you mean 'retry_max_interval' in "
                  "<buffer> ('max_retry_wait' is its v0.12 name)?",
                  "t.conf:11: unknown parameter 'retry_limit' in <buffer>; did you mean 'retry_max_times' in <buffer> "
                  "(its v1 form)?");
    conf_errors_free(&errs);
    conf_free(r);
    /* a name whose v1 form is itself, where it already is: no did-you-mean
     * pointing at the same place (`fields` in a <format> of a type without it) */
    r = conf_parse_string("<format>\n  fields a,b\n</format>\n", "t.conf", &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_int_equal(conf_bind(r->children[0], spec, d, &errs), -1);
    EXPECT_ERRORS(&errs, "t.conf:2: unknown parameter 'fields' in <format>");
    conf_errors_free(&errs);
    conf_free(r);
}

/* ---- <system>: Fluentd's other parameters, <log>, <metrics> ------------------------------- */

static void test_system_fluentd_params(void **state)
{
    conf_errors errs = {0};
    conf_node *r = conf_parse_string("<system>\n  log_level info\n  rpc_endpoint 127.0.0.1:24444\n"
                                     "  enable_get_dump true\n  ignore_repeated_log_interval 60s\n"
                                     "  file_permission 0644\n  without_source false\n  <log>\n    format json\n"
                                     "    time_format %Y-%m-%dT%H:%M:%S\n    rotate_size 10m\n  </log>\n"
                                     "  <metrics>\n    @type local\n  </metrics>\n</system>\n"
                                     "<match **>\n  @type null\n</match>\n",
                                     "t.conf", &errs);
    EXPECT_NO_ERRORS(&errs);
    pipeline p;
    assert_int_equal(pipeline_load(&p, r, &errs), 0);
    EXPECT_NO_ERRORS(&errs);
    pipeline_free(&p);
    conf_free(r);

    /* without_source true would start no source: refused; <log> values are checked */
    r = conf_parse_string("<system>\n  without_source true\n  <log>\n    format yaml\n    colour red\n  </log>\n"
                          "</system>\n<match **>\n  @type null\n</match>\n",
                          "t.conf", &errs);
    EXPECT_NO_ERRORS(&errs);
    assert_int_equal(pipeline_load(&p, r, &errs), -1);
    EXPECT_ERRORS(&errs, "t.conf:2: parameter 'without_source' is not supported by weir: weir always starts its sources",
                  "t.conf:4: invalid value 'yaml' for parameter 'format'; expected one of: text, json",
                  "t.conf:5: unknown parameter 'colour' in <log>");
    conf_errors_free(&errs);
    pipeline_free(&p);
    conf_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserved_names),    cmocka_unit_test(test_buffer_params),
        cmocka_unit_test(test_buffer_time_sliced), cmocka_unit_test(test_buffer_written),
        cmocka_unit_test(test_inject_and_format), cmocka_unit_test(test_parser_params),
        cmocka_unit_test(test_bind_v012_names),   cmocka_unit_test(test_system_fluentd_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
