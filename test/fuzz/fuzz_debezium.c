/*
 * test/fuzz/fuzz_debezium.c: libFuzzer target for the debezium filter
 * (aggregator/filters/debezium.c). The input is used three ways: as the
 * msgpack record itself (any bytes), as JSON converted to msgpack (so that
 * the seeds, Debezium events in JSON, reach the envelope logic), and as the
 * JSON text of a string under `message` (envelope_key). Each goes through
 * filters with different options. A record that is changed must be exactly
 * one msgpack map appended to call->out; otherwise call->out is untouched;
 * an error names its reason.
 *
 * Built and run (clang, ASan + UBSan, every library source linked in) by
 *   FUZZ_ONLY=debezium scripts/fuzz.sh 60
 * on a copy of test/fuzz/corpus/debezium.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/json_mp.h"
#include "config/conf.h"
#include "aggregator/filter.h"
#include "aggregator/record.h"

static const char *const CONFS[] = {
    "",
    "add_fields op,table,lsn,source.ts_ms,ts_ms,id,before.id,db:database\nsource_fields *\ndrop_tombstones false\nuse_source_time true",
    "unwrap false\nsource_key source\nsource_fields db,table\ndelete_handling_mode drop",
    "delete_handling_mode none\naction_key \"\"\nlag_key \"\"\ncopy_keys k,message",
    "envelope_key message\ncopy_keys k\nadd_fields op,source.table\ndrop_tombstones false",
    "envelope_key $.message\nunwrap false",
};
#define NCONF (sizeof CONFS / sizeof CONFS[0])

static filter *mk(const char *params)
{
    char text[1024];
    conf_errors errs = {0};
    snprintf(text, sizeof text, "<filter **>\n@type debezium\n%s\n</filter>\n", params);
    conf_node *root = conf_parse_string(text, "fuzz.conf", &errs);
    filter *f = root ? filter_create(root->children[0], 0, &errs) : NULL;
    if (!f) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msgs[i]);
        abort();
    }
    conf_free(root);
    conf_errors_free(&errs);
    return f; /* kept for the whole run */
}

static void run(filter *f, const uint8_t *rec, size_t len, wbuf *out, wbuf *sc)
{
    out->len = 0;
    wbuf_addc(out, 'Z');
    filter_call call = {.tag = "cdc.x", .tag_len = 5, .out = out, .scratch = sc};
    int rc = f->plugin->filter(f, &call, rec, len);
    if (rc == FILTER_MODIFY) {
        const uint8_t *q = out->data + 1, *end = out->data + out->len;
        mp_obj o;
        const uint8_t *h = q;
        if (mp_read(&h, end, &o) != MP_OK || o.type != MP_MAP || rec_skip(&q, end) != 0 || q != end)
            abort();
    } else if (out->len != 1) {
        abort();
    }
    if (rc == FILTER_ERROR && strncmp(call.err, "debezium: ", 10) != 0)
        abort();
    if (rc != FILTER_MODIFY && rc != FILTER_KEEP && rc != FILTER_DROP && rc != FILTER_ERROR)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static filter *fs[NCONF];
    static wbuf out, sc, rec;
    if (!fs[0])
        for (size_t i = 0; i < NCONF; i++)
            fs[i] = mk(CONFS[i]);
    /* 1. the bytes as the record */
    for (size_t i = 0; i < NCONF; i++)
        run(fs[i], data, size, &out, &sc);
    /* 2. the bytes as JSON, converted */
    rec.len = 0;
    if (json_mp(&rec, data, size) == 0)
        for (size_t i = 0; i < NCONF; i++)
            run(fs[i], rec.data, rec.len, &out, &sc);
    /* 3. the bytes as the text of `message` (and a key beside it) */
    rec.len = 0;
    if (mpw_map(&rec, 2) == 0 && mpw_str(&rec, "k", 1) == 0 && mpw_uint(&rec, 7) == 0 &&
        mpw_str(&rec, "message", 7) == 0 && mpw_str(&rec, data, size) == 0)
        for (size_t i = 0; i < NCONF; i++)
            run(fs[i], rec.data, rec.len, &out, &sc);
    return 0;
}
