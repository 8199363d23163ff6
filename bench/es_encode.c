/*
 * bench/es_encode.c: ns/record of the Elasticsearch output's _bulk encoder
 * (outputs/elasticsearch/bulk.c, es_bulk_encode) on one core: the CPU weir
 * spends per document before curl sends it. A batch of 1000 Fluent Bit
 * kubernetes records of ~450 bytes of msgpack, a new second every 100
 * records (what a busy sender's batch looks like), through an output built
 * as weir builds it (output_create on a <match> block) with:
 *   - logstash_format true (index logs-YYYY.MM.DD and @timestamp, the default
 *     deployment),
 *   - the same with time_precision 3 (the default is 9),
 *   - index_name ${tag}-%Y.%m.%d (placeholders and strftime per record),
 *   - logstash_format with a per-record placeholder in the prefix
 *     (${$.kubernetes.namespace_name}: nothing can be cached).
 * Thread CPU time, best of 5 rounds. Built and run by `make bench` as
 * build/bench-es-encode; by hand: build/bench-es-encode [batches] (default 2000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/batch.h"
#include "lib/log.h"
#include "config/conf.h"
#include "aggregator/output.h"
#include "outputs/elasticsearch/bulk.h"
#include "outputs/elasticsearch/es.h"
#include "test/unit/filter_test_util.h"

#define NREC 1000u

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: other processes on the box do not count */
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static output *mk(const char *params)
{
    char text[2048];
    snprintf(text, sizeof text, "<match kube.**>\n  @type elasticsearch\n  host 127.0.0.1\n%s\n</match>\n", params);
    conf_errors errs = {0};
    conf_node *root = conf_parse_string(text, "bench.conf", &errs);
    output *o = root ? output_create(root->children[0], "kube.**", 0, &errs) : NULL;
    if (!o || errs.n) {
        fprintf(stderr, "bench-es-encode: %s\n", errs.n ? errs.msgs[0] : "cannot build the output");
        exit(1);
    }
    conf_errors_free(&errs);
    conf_free(root);
    return o;
}

int main(int argc, char **argv)
{
    long batches = argc > 1 ? atol(argv[1]) : 2000;
    wlog_level = WLOG_WARN; /* not the outputs' start lines */
    static const char *const levels[4] = {"INFO", "WARN", "INFO", "ERROR"};
    wbuf d = {0};
    size_t rec_bytes = 0;
    for (uint32_t i = 0; i < NREC; i++) {
        char json[2048];
        snprintf(json, sizeof json,
                 "{\"log\":\"{\\\"level\\\":\\\"%s\\\",\\\"ts\\\":\\\"2024-05-01T12:00:00.123Z\\\",\\\"msg\\\":\\\"GET "
                 "/api/v1/users/%u completed\\\",\\\"status\\\":200,\\\"duration_ms\\\":12.5,\\\"request_id\\\":"
                 "\\\"5f2b8c1e-9a7d-4e3b-8c6f-1d2e3f4a5b6c\\\",\\\"user\\\":\\\"alice\\\"}\",\"stream\":\"stdout\","
                 "\"kubernetes\":{\"pod_name\":\"web-7d9f8c6b5-x2x9k\",\"namespace_name\":\"prod\","
                 "\"container_name\":\"web\",\"host\":\"node-1\",\"labels\":{\"app\":\"web\","
                 "\"pod-template-hash\":\"7d9f8c6b5\"}},\"cluster\":\"prod-eu-1\"}",
                 levels[i & 3], 10000 + i);
        wbuf m = J(json);
        if (batch_put_entry_head(&d, 1714564800u + i / 100, 123456789u + i, NULL, 0) || wbuf_add(&d, m.data, m.len))
            return 1;
        rec_bytes += m.len;
        wbuf_free(&m);
    }
    const char *tag = "kube.var.log.containers.web";
    batch *b = batch_new(tag, strlen(tag), d.data, d.len, NREC);
    printf("es_bulk_encode input: batches of %u records of %zu bytes of msgpack on average\n", NREC, rec_bytes / NREC);
    static const char *const names[4] = {"logstash_format", "logstash_format, ms @timestamp", "index ${tag}-%Y.%m.%d",
                                         "per-record index placeholder"};
    static const char *const params[4] = {
        "  logstash_format true\n  logstash_prefix logs\n",
        "  logstash_format true\n  logstash_prefix logs\n  time_precision 3\n",
        "  index_name ${tag}-%Y.%m.%d\n",
        "  logstash_format true\n  logstash_prefix logs-${$.kubernetes.namespace_name}\n",
    };
    for (int k = 0; k < 4; k++) {
        output *o = mk(params[k]);
        double best = 1e9;
        size_t body = 0;
        for (int round = 0; round < 5; round++) {
            double t0 = now();
            for (long i = 0; i < batches / 5; i++) {
                es_buf w = {0};
                out_result res = {.n = NREC};
                char err[256];
                if (es_buf_init(&w, NREC) || es_bulk_encode(o->ctx, b, NREC, &w, &res, err, sizeof err) != 0) {
                    fprintf(stderr, "bench-es-encode: %s: %s\n", names[k], err);
                    return 1;
                }
                body = w.body.len;
                out_result_free(&res);
                es_buf_free(&w);
            }
            double t = (now() - t0) / ((double)(batches / 5) * NREC);
            if (t < best)
                best = t;
        }
        printf("%-32s %7.1f ns/record (best of 5; %.2f M records/s on one core; %zu bytes of NDJSON per record)\n",
               names[k], best * 1e9, 1e-6 / best, body / NREC);
        output_destroy(o);
    }
    batch_unref(b); /* it owns d's bytes */
    return 0;
}
