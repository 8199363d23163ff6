/* test/fuzz/fuzz_parse_json.c: libFuzzer target for @type json and its JSON -> msgpack converter, lib/json_mp.c
 * (see fuzz_parse_common.h). */
#include "fuzz_parse_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static parser *plain, *conv;
    if (!plain) {
        plain = setup("@type json");
        conv = setup("@type json\nkeep_time_key true\ntime_format %Y-%m-%dT%H:%M:%S.%N%z\nnull_empty_string true\n"
                     "null_value_pattern ^-$\ntypes a:integer,b:float,c:bool,d:string,e:array,f:time,g:array: ,h:time:unixtime");
    }
    check(plain, data, size);
    check(conv, data, size);
    return 0;
}
