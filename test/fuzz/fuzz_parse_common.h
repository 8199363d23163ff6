/*
 * test/fuzz/fuzz_parse_common.h: shared body of the fuzz_parse_<type>
 * libFuzzer targets: parse_text on arbitrary bytes with one or two fixed
 * <parse> configurations; every success must append exactly one well-formed
 * msgpack map (checked with rec_skip and jw_value), every failure must
 * leave the buffer as it was.
 *
 * Code under test: aggregator/parse.c and parse_conv.c, aggregator/parsers/<type>.c
 * and, for json, lib/json_mp.c. Built and run (clang, ASan + UBSan, every
 * library source linked in) by
 *   FUZZ_ONLY=parse_json scripts/fuzz.sh 60
 * on a copy of test/fuzz/corpus/parse_json (likewise parse_regexp, parse_cri,
 * parse_logfmt, parse_ltsv, parse_csv).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json.h"
#include "aggregator/parse.h"
#include "aggregator/record.h"

static parser *setup(const char *body)
{
    char text[4096];
    conf_errors errs = {0};
    snprintf(text, sizeof text, "<parse>\n%s\n</parse>\n", body);
    conf_node *root = conf_parse_string(text, "fuzz.conf", &errs);
    parser *p = calloc(1, sizeof *p);
    if (!root || !p || parse_configure(p, root->children[0], &errs) != 0) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        abort();
    }
    conf_free(root);
    conf_errors_free(&errs);
    return p; /* kept for the whole run */
}

static void check(const parser *p, const uint8_t *data, size_t size)
{
    wbuf out = {0};
    wbuf_add(&out, "X", 1);
    int ht = 0;
    uint32_t s = 0, ns = 0;
    char err[256];
    size_t koff[8];
    uint32_t klen[8];
    parse_keys pk = {koff, klen, 8, 0, 0};
    int rc = parse_text_keys(p, (const char *)data, size, &out, &ht, &s, &ns, err, sizeof err, &pk);
    if (rc == PARSE_OK) {
        /* the reported keys are the map's keys, in order */
        const uint8_t *k = out.data + 1, *kend = out.data + out.len;
        mp_obj m;
        if (mp_read(&k, kend, &m) != MP_OK || m.type != MP_MAP)
            abort();
        if (pk.n + (pk.overflow ? 1u : 0u) > m.len || (!pk.overflow && pk.n != m.len))
            abort();
        for (size_t i = 0; i < pk.n; i++) {
            const uint8_t *ks;
            uint32_t kn;
            if (rec_read_str(&k, kend, &ks, &kn) != 1 || (size_t)(ks - out.data) != koff[i] || kn != klen[i] ||
                rec_skip(&k, kend) != 0)
                abort();
        }
        const uint8_t *q = out.data + 1, *end = out.data + out.len;
        if (out.len < 2 || (out.data[1] & 0xf0) != 0x80 && out.data[1] != 0xde && out.data[1] != 0xdf)
            abort(); /* not a map */
        if (rec_skip(&q, end) != 0 || q != end)
            abort(); /* not exactly one value */
        wbuf js = {0};
        q = out.data + 1;
        if (jw_value(&js, &q, end) != 0 || q != end)
            abort();
        wbuf_free(&js);
    } else if (out.len != 1 || out.data[0] != 'X') {
        abort(); /* a failure must not leave bytes behind */
    } else if (rc != PARSE_NOMATCH && rc != PARSE_FAIL && rc != PARSE_BADUTF8) {
        abort();
    }
    wbuf_free(&out);
}
