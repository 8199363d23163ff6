/* Unit tests: the map a dead letter gets before it enters dead_letter_label
 * (aggregator/dead_letter.c dl_decorate). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "aggregator/dead_letter.h"
#include "filter_test_util.h"

static char *decorate(const char *rec_json, const char *key, const buf_dead *d, const char *reason)
{
    wbuf r = J(rec_json), out = {0}, scratch = {0};
    rec_path p;
    char err[128];
    assert_int_equal(rec_path_compile(&p, key, err, sizeof err), 0);
    int rc = dl_decorate(&out, r.data, r.len, &p, d, reason, "app.pay", 7, &scratch);
    char *s = rc ? strdup("<error>") : M2J(out.data, out.len);
    rec_path_free(&p);
    wbuf_free(&r);
    wbuf_free(&out);
    wbuf_free(&scratch);
    return s;
}

static void test_decorate(void **st)
{
    buf_dead d = {.kind = "rejected", .reason = "chunk reason", .attempts = 1, .output = "es_out"};
    char *s = decorate("{\"msg\":\"x\"}", "dead_letter", &d, "mapper_parsing_exception: failed to parse [n]");
    assert_string_equal(s, "{\"msg\":\"x\",\"dead_letter\":{\"error_type\":\"rejected\",\"error_message\":"
                           "\"mapper_parsing_exception: failed to parse [n]\",\"attempts\":1,\"tag\":\"app.pay\","
                           "\"output_id\":\"es_out\"}}");
    free(s);
    /* no per-record reason: the batch's; a nested key replacing a string */
    d = (buf_dead){.kind = "retries_exhausted", .reason = "connection refused", .attempts = 6, .output = "o"};
    s = decorate("{\"error\":\"boom\",\"n\":1}", "$.error.dead_letter", &d, NULL);
    assert_string_equal(s, "{\"error\":{\"dead_letter\":{\"error_type\":\"retries_exhausted\",\"error_message\":"
                           "\"connection refused\",\"attempts\":6,\"tag\":\"app.pay\",\"output_id\":\"o\"}},"
                           "\"n\":1}");
    free(s);
    /* an existing dead_letter (a record that was a dead letter before) is replaced, not doubled */
    s = decorate("{\"dead_letter\":{\"old\":true}}", "dead_letter", &d, NULL);
    assert_string_equal(s, "{\"dead_letter\":{\"error_type\":\"retries_exhausted\",\"error_message\":"
                           "\"connection refused\",\"attempts\":6,\"tag\":\"app.pay\",\"output_id\":\"o\"}}");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_decorate)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
