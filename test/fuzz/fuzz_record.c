/*
 * test/fuzz/fuzz_record.c: libFuzzer target for the record code
 * (aggregator/record.c, record_path.c, record_text.c, record_edit.c): the
 * input is "ACCESSOR\0MSGPACK". The accessor is compiled; on the msgpack
 * (any bytes) rec_lookup, rec_get, rec_value_text, rec_rewrite(_n),
 * rec_keep and rec_delete run, and every map they produce must be exactly
 * one well-formed msgpack value.
 *
 * Built and run (clang, ASan + UBSan, every library source linked in) by
 *   FUZZ_ONLY=record scripts/fuzz.sh 60
 * on a copy of test/fuzz/corpus/record.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aggregator/record.h"

static void one_value(const wbuf *w, size_t from)
{
    const uint8_t *q = w->data + from, *end = w->data + w->len;
    if (rec_skip(&q, end) != 0 || q != end)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    if (!nul)
        return 0;
    char *path = strndup((const char *)data, (size_t)(nul - data));
    const uint8_t *rec = nul + 1;
    size_t len = size - (size_t)(rec - data);
    rec_path p;
    char err[256];
    wbuf out = {0};
    if (rec_path_compile(&p, path, err, sizeof err) == 0) {
        size_t vl;
        const uint8_t *v = rec_lookup(rec, len, &p, &vl);
        if (v) {
            if (v < rec || v + vl > rec + len)
                abort();
            rec_value_text(&out, v, vl);
            out.len = 0;
            rec_value_to_s(&out, v, vl);
            out.len = 0;
        }
        int r = rec_delete(&out, rec, len, &p, 1);
        if (r >= 0)
            one_value(&out, 0);
        else if (out.len)
            abort();
        out.len = 0;
        if (p.n && p.steps[0].key) {
            rec_kv kv = {p.steps[0].key, p.steps[0].key_len, (const uint8_t *)"\xc3", 1};
            rec_kv dr = {p.steps[p.n - 1].key ? p.steps[p.n - 1].key : "x", p.steps[p.n - 1].key ? p.steps[p.n - 1].key_len : 1,
                         NULL, 0};
            if (rec_rewrite_n(&out, rec, len, &dr, 1, &kv, 1) == 0)
                one_value(&out, 0);
            else if (out.len)
                abort();
            out.len = 0;
            const char *keep[] = {p.steps[0].key, path, NULL};
            if (rec_keep(&out, rec, len, keep) == 0)
                one_value(&out, 0);
            out.len = 0;
            (void)rec_get(rec, len, p.steps[0].key, p.steps[0].key_len, &vl);
        }
        rec_path_free(&p);
    }
    const uint8_t *q = rec;
    (void)rec_skip(&q, rec + len);
    wbuf_free(&out);
    free(path);
    return 0;
}
