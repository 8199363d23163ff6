/* test/fuzz/fuzz_parse_csv.c: libFuzzer target for @type csv (parser_engine normal and fast). */
#include "fuzz_parse_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static parser *p, *q, *r;
    if (!p) {
        p = setup("@type csv\nkeys a,b,c,a");
        q = setup("@type csv\nkeys a,b,c\nparser_engine fast\ntypes b:integer\nnull_empty_string true");
        r = setup("@type csv\nkeys a,b\ndelimiter \"\\r\\n\"\ntime_key b\ntime_format %s");
    }
    check(p, data, size);
    check(q, data, size);
    check(r, data, size);
    return 0;
}
