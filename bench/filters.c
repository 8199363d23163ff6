/*
 * bench/filters.c: ns/record of the "enrich" filter chain
 * (parser json on `log` with reserve_data -> record_transformer adds
 * `cluster` -> grep drops DEBUG) on a ~450-byte Fluent Bit kubernetes record,
 * run the way the router runs filters (ping/pong out buffers, one scratch).
 * Built and run by `make bench` (after the scenarios) as build/bench-filters;
 * by hand: build/bench-filters [iterations] (default 2000000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/rx.h"
#include "config/conf.h"
#include "aggregator/filter.h"
#include "aggregator/record.h"
#include "test/unit/filter_test_util.h"

static const char *const CONF[3] = {
    "@type parser\nkey_name log\nreserve_data true\n<parse>\n@type json\n</parse>",
    "@type record_transformer\n<record>\ncluster prod-eu-1\n</record>",
    "@type grep\n<exclude>\nkey level\npattern /DEBUG/\n</exclude>",
};

static filter *mk(const char *body)
{
    char text[4096];
    conf_errors errs = {0};
    snprintf(text, sizeof text, "<filter **>\n%s\n</filter>\n", body);
    conf_node *root = conf_parse_string(text, "bench.conf", &errs);
    filter *f = root ? filter_create(root->children[0], 0, &errs) : NULL;
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    conf_free(root);
    conf_errors_free(&errs);
    if (!f)
        exit(1);
    return f;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: other processes on the box do not count */
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 2000000;
    filter *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = mk(CONF[i]);
    static const char *const levels[4] = {"INFO", "WARN", "INFO", "DEBUG"};
    wbuf recs[4];
    for (int i = 0; i < 4; i++) {
        char json[2048];
        snprintf(json, sizeof json,
                 "{\"log\":\"{\\\"level\\\":\\\"%s\\\",\\\"ts\\\":\\\"2024-05-01T12:00:00.123Z\\\",\\\"msg\\\":\\\"GET "
                 "/api/v1/users/12345 completed\\\",\\\"status\\\":200,\\\"duration_ms\\\":12.5,\\\"request_id\\\":"
                 "\\\"5f2b8c1e-9a7d-4e3b-8c6f-1d2e3f4a5b6c\\\",\\\"user\\\":\\\"alice\\\"}\",\"stream\":\"stdout\","
                 "\"time\":\"2024-05-01T12:00:00.123456789Z\",\"kubernetes\":{\"pod_name\":\"web-7d9f8c6b5-x2x9k\","
                 "\"namespace_name\":\"prod\",\"container_name\":\"web\",\"host\":\"node-1\",\"labels\":{\"app\":"
                 "\"web\",\"pod-template-hash\":\"7d9f8c6b5\"}}}",
                 levels[i]);
        recs[i] = J(json);
    }
    printf("record: %zu bytes of msgpack\n", recs[0].len);
    wbuf ping = {0}, pong = {0}, sc = {0};
    filter_call call = {.tag = "kube.var.log.containers.web", .tag_len = 27, .scratch = &sc};
    const char *names[3] = {"parser(json,reserve_data)", "record_transformer(+cluster)", "grep(exclude DEBUG)"};

    /* each filter alone, on its real input */
    wbuf parsed = {0};
    {
        call.out = &parsed;
        fs[0]->plugin->filter(fs[0], &call, recs[0].data, recs[0].len);
    }
    for (int k = 0; k < 3; k++) {
        const uint8_t *in = k == 0 ? recs[0].data : parsed.data;
        size_t inl = k == 0 ? recs[0].len : parsed.len;
        double best = 1e9;
        for (int round = 0; round < 5; round++) {
            double t0 = now();
            for (long i = 0; i < iters / 5; i++) {
                ping.len = 0;
                call.out = &ping;
                fs[k]->plugin->filter(fs[k], &call, in, inl);
            }
            double dt = (now() - t0) / (iters / 5);
            if (dt < best)
                best = dt;
        }
        printf("%-30s %7.1f ns/record (best of 5)\n", names[k], best * 1e9);
    }

    /* the chain, 1 in 4 records dropped */
    long kept = 0;
    double best = 1e9;
    for (int round = 0; round < 5; round++) {
    double t0 = now();
    for (long i = 0; i < iters / 5; i++) {
        const uint8_t *rec = recs[i & 3].data;
        size_t len = recs[i & 3].len;
        int fate = FILTER_KEEP;
        for (int k = 0; k < 3; k++) {
            wbuf *o = rec == ping.data ? &pong : &ping; /* never the buffer holding the input */
            o->len = 0;
            call.out = o;
            int rc = fs[k]->plugin->filter(fs[k], &call, rec, len);
            if (rc == FILTER_MODIFY) {
                rec = o->data;
                len = o->len;
            } else if (rc != FILTER_KEEP) {
                fate = rc;
                break;
            }
        }
        kept += fate == FILTER_KEEP;
    }
    double dt = (now() - t0) / (iters / 5);
    if (dt < best)
        best = dt;
    }
    printf("%-30s %7.1f ns/record (best of 5; %.2f M records/s on one core; kept %ld of %ld)\n", "enrich chain",
           best * 1e9, 1 / best / 1e6, kept, iters / 5 * 5);
    for (int i = 0; i < 4; i++)
        wbuf_free(&recs[i]);
    wbuf_free(&parsed);
    wbuf_free(&ping);
    wbuf_free(&pong);
    wbuf_free(&sc);
    for (int i = 0; i < 3; i++)
        filter_destroy(fs[i]);
    rx_thread_cleanup();
    return 0;
}
