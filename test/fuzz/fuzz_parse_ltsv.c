/* test/fuzz/fuzz_parse_ltsv.c: libFuzzer target for @type ltsv (tab, awk-style space, a delimiter pattern). */
#include "fuzz_parse_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static parser *p, *q, *r;
    if (!p) {
        p = setup("@type ltsv");
        q = setup("@type ltsv\ndelimiter \" \"\nlabel_delimiter =\ntypes n:integer\nnull_empty_string true");
        r = setup("@type ltsv\ndelimiter_pattern /[;,]+|x*/\ntime_key t\ntime_format %s\nkeep_time_key true");
    }
    check(p, data, size);
    check(q, data, size);
    check(r, data, size);
    return 0;
}
