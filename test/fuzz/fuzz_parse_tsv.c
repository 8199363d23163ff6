/* test/fuzz/fuzz_parse_tsv.c: libFuzzer target for @type tsv and the regexp presets nginx and apache_error. */
#include "fuzz_parse_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static parser *p, *q, *r, *s;
    if (!p) {
        p = setup("@type tsv\nkeys a,b,c,a");
        q = setup("@type tsv\nkeys a,b\ndelimiter ||\ntypes b:integer\nnull_empty_string true");
        r = setup("@type nginx");
        s = setup("@type apache_error");
    }
    check(p, data, size);
    check(q, data, size);
    check(r, data, size);
    check(s, data, size);
    return 0;
}
