/*
 * test/fuzz/fuzz_aggregate_chlog.c: libFuzzer target for the decoder of the
 * aggregate filter's changelog (aggregator/filters/aggregate_chlog.c): any
 * bytes restored from the changelog topic must never crash. The input is a
 * saga state as the changelog holds it. It is imported into two filters
 * (one with tiny caps); when accepted: exported again, the export imports
 * and exports to the same bytes; then an event, the saga's end, a timeout
 * tick and a shutdown run on it, and every emitted summary must be one
 * [time, map] entry. Seeds: test/fuzz/corpus/aggregate_chlog (states that
 * test_aggregate_chlog's filters export).
 *
 *   FUZZ_ONLY=aggregate_chlog scripts/fuzz.sh 60
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/json_mp.h"
#include "lib/mp.h"
#include "config/conf.h"
#include "aggregator/filter.h"
#include "aggregator/record.h"
#include "fuzz_aggregate_common.h"

int aggregate_export_saga(const filter *f, const void *k, size_t kl, wbuf *w);
int aggregate_import_saga(filter *f, const void *k, size_t kl, const uint8_t *p, size_t n);


static const char *const CONFS[] = {
    "key saga_id\ntimeout 10s\n<start>\nkey event\npattern /start/\n</start>\n<end>\nkey event\npattern /end/\n"
    "</end>\n<failure>\nkey status\npattern /FAIL/i\n</failure>",
    "key saga_id\ntimeout 10s\nmax_open 2\nmax_steps 1\nmax_services 1\nmax_trace_ids 1\ncopy_key_by_trace true\n"
    "<end>\nkey event\npattern /end/\n</end>",
};
#define NCONF (sizeof CONFS / sizeof CONFS[0])

static void feed(filter *f, const char *json, wbuf *out, wbuf *sc, filter_emit *em)
{
    wbuf rec = {0};
    if (json_mp(&rec, (const uint8_t *)json, strlen(json)))
        abort();
    out->len = 0;
    filter_call call = {.tag = "app.x", .tag_len = 5, .sec = 1700000000, .out = out, .scratch = sc, .emit = em};
    f->plugin->filter(f, &call, rec.data, rec.len);
    wbuf_free(&rec);
    check_emitted(em);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static filter *fs[NCONF];
    static wbuf out, sc, w1, w2;
    static filter_emit em;
    aggregate_clock = fake_clock;
    if (!fs[0])
        for (size_t i = 0; i < NCONF; i++)
            fs[i] = mk("fc", CONFS[i], (int)i);
    for (size_t i = 0; i < NCONF; i++) {
        filter *f = fs[i];
        if (aggregate_import_saga(f, "k", 1, data, size) != 0)
            continue;
        w1.len = w2.len = 0;
        if (aggregate_export_saga(f, "k", 1, &w1) != 1)
            abort();
        if (aggregate_import_saga(f, "k", 1, w1.data, w1.len) != 0 || aggregate_export_saga(f, "k", 1, &w2) != 1 ||
            w1.len != w2.len || memcmp(w1.data, w2.data, w1.len))
            abort();
        feed(f, "{\"saga_id\":\"k\",\"event\":\"x\",\"status\":\"FAIL\",\"trace_id\":\"t\",\"service\":\"s\"}", &out, &sc,
             &em);
        feed(f, "{\"saga_id\":\"k\",\"event\":\"end\"}", &out, &sc, &em);
        if (aggregate_import_saga(f, "k", 1, data, size) != 0)
            abort();
        fake_now += 11;
        f->plugin->tick(f, fake_now, FILTER_TICK, &em);
        check_emitted(&em);
        if (aggregate_import_saga(f, "k", 1, data, size) != 0)
            abort();
        f->plugin->tick(f, fake_now, FILTER_TICK_SHUTDOWN, &em);
        check_emitted(&em);
        uint64_t o, e, s;
        agg_counts(f, &o, &e, &s);
        if (o != 0)
            abort();
    }
    return 0;
}
