/* test/fuzz/fuzz_parse_cri.c: libFuzzer target for @type cri. */
#include "fuzz_parse_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static parser *p, *q;
    if (!p) {
        p = setup("@type cri");
        q = setup("@type cri\nkeep_time_key true\nmessage_key message\ntypes logtag:array::");
    }
    check(p, data, size);
    check(q, data, size);
    return 0;
}
