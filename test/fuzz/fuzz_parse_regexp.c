/* test/fuzz/fuzz_parse_regexp.c: libFuzzer target for @type regexp with a fixed (apache-like) expression. */
#include "fuzz_parse_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static parser *p, *q;
    if (!p) {
        p = setup("@type regexp\nexpression /^(?<host>[^ ]*) [^ ]* (?<user>[^ ]*) \\[(?<time>[^\\]]*)\\] "
                  "\"(?<method>\\S+)(?: +(?<path>[^ ]*) +\\S*)?\" (?<code>[^ ]*) (?<size>[^ ]*)$/\n"
                  "time_format %d/%b/%Y:%H:%M:%S %z\ntypes code:integer,size:integer");
        q = setup("@type regexp\nexpression /(?<k>\\w+)=(?<v>\\h*)(?<k>x)?/m\nnull_empty_string true\n"
                  "estimate_current_event false");
    }
    check(p, data, size);
    check(q, data, size);
    return 0;
}
