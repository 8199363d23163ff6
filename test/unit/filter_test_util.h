/*
 * test/unit/filter_test_util.h: helpers shared by test_record.c,
 * test_parse.c, test_filters.c, test_json_mp.c, test_elasticsearch.c and
 * bench/filters.c (header only: not a test binary itself).
 * Records are written as JSON (via jansson, which keeps key order) and
 * converted to msgpack; results are printed back as JSON with
 * jw_value, so expectations read like the records they describe.
 * filter_from_body(_ok) makes a filter from the lines of its section.
 */
#ifndef WEIR_FILTER_TEST_UTIL_H
#define WEIR_FILTER_TEST_UTIL_H

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json.h"
#include "lib/wbuf.h"
#include "config/conf.h"
#include "aggregator/filter.h"

static void j2m_value(wbuf *b, json_t *j)
{
    if (json_is_object(j)) {
        mpw_map(b, (uint32_t)json_object_size(j));
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            mpw_str(b, k, strlen(k));
            j2m_value(b, v);
        }
    } else if (json_is_array(j)) {
        mpw_array(b, (uint32_t)json_array_size(j));
        for (size_t i = 0; i < json_array_size(j); i++)
            j2m_value(b, json_array_get(j, i));
    } else if (json_is_string(j)) {
        mpw_str(b, json_string_value(j), json_string_length(j));
    } else if (json_is_integer(j)) {
        mpw_int(b, json_integer_value(j));
    } else if (json_is_real(j)) {
        mpw_double(b, json_real_value(j));
    } else if (json_is_true(j)) {
        mpw_bool(b, 1);
    } else if (json_is_false(j)) {
        mpw_bool(b, 0);
    } else {
        mpw_nil(b);
    }
}

/* msgpack of a JSON text (aborts on bad JSON: a bug in the test) */
static wbuf J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!j) {
        fprintf(stderr, "bad test JSON %s: %s\n", text, e.text);
        abort();
    }
    wbuf b = {0};
    j2m_value(&b, j);
    json_decref(j);
    return b;
}

/* JSON text of msgpack bytes (malloc'd); "<invalid>" when not exactly one value */
__attribute__((unused)) static char *M2J(const uint8_t *p, size_t n)
{
    wbuf out = {0};
    const uint8_t *q = p;
    if (jw_value(&out, &q, p + n) != 0 || q != p + n) {
        wbuf_free(&out);
        return strdup("<invalid>");
    }
    wbuf_addc(&out, 0);
    return (char *)out.data;
}

/* A filter from `body`, the lines of a <filter PATTERN> section read as the file `file`; `index` is its place
 * (for the default @id). NULL, with errs filled, on a configuration error. */
__attribute__((unused)) static filter *filter_from_body(const char *pattern, const char *body, const char *file,
                                                        int index, conf_errors *errs)
{
    size_t n = strlen(pattern) + strlen(body) + 32;
    char *text = malloc(n);
    if (!text)
        return NULL;
    snprintf(text, n, "<filter %s>\n%s\n</filter>\n", pattern, body);
    conf_node *root = conf_parse_string(text, file, errs);
    free(text);
    filter *f = root && root->nchildren ? filter_create(root->children[0], index, errs) : NULL;
    conf_free(root);
    return f;
}

/* filter_from_body for a configuration that must be valid: its errors printed to stderr, NULL if any. */
__attribute__((unused)) static filter *filter_from_body_ok(const char *pattern, const char *body, const char *file,
                                                           int index)
{
    conf_errors errs = {0};
    filter *f = filter_from_body(pattern, body, file, index, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "unexpected config error: %s\n", errs.msgs[i]);
    if (errs.n) {
        filter_destroy(f);
        f = NULL;
    }
    conf_errors_free(&errs);
    return f;
}

#define ASSERT_MP_JSON(p, n, want)                                                                                   \
    do {                                                                                                             \
        char *got_ = M2J((p), (n));                                                                                  \
        assert_string_equal(got_, (want));                                                                           \
        free(got_);                                                                                                  \
    } while (0)

#endif
