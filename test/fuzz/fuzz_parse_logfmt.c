/* test/fuzz/fuzz_parse_logfmt.c: libFuzzer target for @type logfmt. */
#include "fuzz_parse_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static parser *p, *q;
    if (!p) {
        p = setup("@type logfmt");
        q = setup("@type logfmt\ntime_key ts\ntypes n:integer,f:float,b:bool,a:array\nnull_empty_string true");
    }
    check(p, data, size);
    check(q, data, size);
    return 0;
}
