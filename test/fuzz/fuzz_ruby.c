/*
 * test/fuzz/fuzz_ruby.c: libFuzzer target for the Ruby expressions of
 * enable_ruby (aggregator/ruby_parse.c, ruby_eval.c, ruby_methods.c): the
 * input is "CODE\0MSGPACK". The code is compiled; when it compiles it is
 * evaluated on the msgpack (any bytes) as the record, as a value and as
 * text, and the value must be exactly one well-formed msgpack value.
 *
 * Built and run (clang, ASan + UBSan, every library source linked in) by
 *   FUZZ_ONLY=ruby scripts/fuzz.sh 60
 * on a copy of test/fuzz/corpus/ruby.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/record.h"
#include "aggregator/ruby_expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul || nul - data > 4096)
        return 0;
    char err[256];
    rb_node *e = rb_compile((const char *)data, (size_t)(nul - data), err, sizeof err);
    if (!e)
        return 0;
    /* the record: any bytes that are one msgpack value (rb_env's contract: a filter passes one map; the
     * evaluator must not trust its contents) */
    const uint8_t *rec = nul + 1, *q = rec;
    size_t len = size - (size_t)(rec - data);
    if (rec_skip(&q, rec + len) || q != rec + len) {
        rb_free(e);
        return 0;
    }
    rb_env env = {"app.web.x", 9, 1700000000, 123456789, rec, len, "host", 4};
    wbuf out = {0};
    if (rb_eval_value(e, &env, &out, err, sizeof err) == 0) {
        const uint8_t *q = out.data, *end = out.data + out.len;
        if (!out.len || rec_skip(&q, end) != 0 || q != end)
            abort();
    }
    out.len = 0;
    rb_eval_text(e, &env, &out, err, sizeof err);
    wbuf_free(&out);
    rb_free(e);
    return 0;
}
