/*
 * bench/filters.c: ns/record of the "enrich" filter chain
 * (parser json on `log` with reserve_data -> record_transformer adds
 * `cluster` -> grep drops DEBUG) on a ~450-byte Fluent Bit kubernetes record,
 * run the way the router runs filters (ping/pong out buffers, one scratch).
 * Then the parser filter with <parse> @type grok on ~200-byte Apache
 * combined log lines: %{COMBINEDAPACHELOG} alone, and 20 <grok>
 * alternatives of which the last matches; each with weir's match guard
 * (the defaults) and without it (grok_match_limit 0, grok_timeout 0), which
 * gives the guard's cost.
 * Then record_transformer with enable_ruby (five Ruby expressions) beside the same fields as placeholders.
 * Then the debezium filter unwrapping a postgres update event (~600 bytes of msgpack), as the record and as
 * JSON text under `message`.
 * Then the aggregate filter (saga correlation) with about 100 k open sagas: every saga is a start, three steps
 * and an end, the sagas staggered so that the number open stays about constant; records/s, and the heap per
 * open saga (mallinfo2 before and after opening 100 k sagas of four steps).
 * `build/bench-filters aggregate` runs only that part.
 * Built and run by `make bench` (after the scenarios) as build/bench-filters;
 * by hand: build/bench-filters [iterations] (default 2000000).
 */
#include <malloc.h>
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
    filter *f = filter_from_body_ok("**", body, "bench.conf", 0);
    if (!f)
        exit(1);
    return f;
}

/* 19 alternatives an Apache line does not match (anchored, literal-led and three unanchored host/MAC-led
 * ones, the costly kind: PCRE2 tries them at nearly every position, unless the literal they need is absent,
 * which grok checks first), then the one it does */
static const char *const GROK_ALTS[20] = {
    "^%{TIMESTAMP_ISO8601:ts} %{LOGLEVEL:level} \\[%{DATA:thread}\\] %{JAVACLASS:class} - %{GREEDYDATA:msg}",
    "^%{SYSLOGLINE}",
    "^%{TIMESTAMP_ISO8601:ts} %{WORD:svc}\\[%{POSINT:pid}\\]: %{GREEDYDATA:msg}",
    "%{IPORHOST:client} - - \\[%{HTTPDATE:ts}\\] \"%{WORD:verb} %{URIPATHPARAM:req}\" %{INT:code} %{INT:size} "
    "%{NUMBER:rt}",
    "level=%{LOGLEVEL:level} ts=%{TIMESTAMP_ISO8601:ts} msg=%{QS:msg}",
    "^\\[%{HTTPDERROR_DATE:ts}\\] \\[%{LOGLEVEL:level}\\] %{GREEDYDATA:msg}",
    "%{UUID:req} %{WORD:op} took %{NUMBER:ms}ms",
    "^%{MONTHDAY}-%{MONTH}-%{YEAR} %{TIME} %{LOGLEVEL:level} %{GREEDYDATA:msg}",
    "user=%{USERNAME:user} action=%{WORD:action} result=%{WORD:result}",
    "%{MAC:mac} associated with %{IP:ip}",
    "^%{INT:pid}:%{WORD:role} %{MONTHDAY} %{MONTH} %{YEAR} %{TIME} %{DATA:lvl} %{GREEDYDATA:msg}",
    "Started %{WORD:verb} \"%{URIPATH:path}\" for %{IP:ip} at %{TIMESTAMP_ISO8601:ts}",
    "^%{DATESTAMP:ts} \\[%{WORD:level}\\] %{GREEDYDATA:msg}",
    "Completed %{INT:code} %{WORD:status} in %{NUMBER:ms}ms",
    "^\\{\"level\":\"%{LOGLEVEL:level}\"%{GREEDYDATA:rest}",
    "%{HOSTNAME:host} kernel: \\[%{NUMBER:uptime}\\] %{GREEDYDATA:msg}",
    "^%{TIMESTAMP_ISO8601:ts} %{HOSTNAME:host} %{PROG:prog}\\[%{POSINT:pid}\\]: %{GREEDYDATA:msg}",
    "connection from %{IP:ip} port %{POSINT:port}",
    "^%{LOGLEVEL:level}: %{GREEDYDATA:msg}",
    "%{COMBINEDAPACHELOG}",
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: other processes on the box do not count */
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Seconds per record of f on one input, best of 5 rounds of iters/5 (into call->out, reset each time);
 * aborts when want_rc >= 0 and the filter says otherwise. */
static double best_of_5(filter *f, filter_call *call, const uint8_t *in, size_t inl, long iters, int want_rc)
{
    double best = 1e9;
    for (int round = 0; round < 5; round++) {
        double t0 = now();
        for (long i = 0; i < iters / 5; i++) {
            call->out->len = 0;
            int rc = f->plugin->filter(f, call, in, inl);
            if (want_rc >= 0 && rc != want_rc)
                abort();
        }
        double dt = (now() - t0) / (iters / 5);
        if (dt < best)
            best = dt;
    }
    return best;
}

/* ---- aggregate ---------------------------------------------------------------------------------- */

#define AGG_CONF                                                                                                     \
    "@type aggregate\nkey saga_id\ntimeout 1h\nmax_open 1000000\n"                                                  \
    "<start>\nkey event\npattern /^SagaStarted$/\n</start>\n"                                                        \
    "<step>\nkey event\npattern /^Step/\n</step>\n"                                                                  \
    "<end>\nkey event\npattern /^SagaCompleted$/\n</end>\n"                                                          \
    "<failure>\nkey status\npattern /^FAILED$/\n</failure>\n"                                                        \
    "<compensation>\nkey event\npattern /^Compensation/\n</compensation>\n"

size_t aggregate_state_bytes(const filter *f);

static const char *const AGG_EVENT[5] = {"SagaStarted", "StepReserved", "StepCharged", "StepShipped",
                                         "SagaCompleted"};
static const char *const AGG_SVC[4] = {"orders", "payments", "stock", "shipping"};

/* the record of event `phase` of saga `key` */
static void agg_record(wbuf *w, const char *key, int phase, unsigned slot)
{
    char trace[40];
    snprintf(trace, sizeof trace, "%08x%08x%016x", slot, phase / 2, slot * 2654435761u);
    mpw_map(w, 6);
    mpw_str(w, "saga_id", 7);
    mpw_str(w, key, strlen(key));
    mpw_str(w, "event", 5);
    mpw_str(w, AGG_EVENT[phase], strlen(AGG_EVENT[phase]));
    mpw_str(w, "step", 4);
    mpw_str(w, AGG_EVENT[phase] + 4, strlen(AGG_EVENT[phase] + 4));
    mpw_str(w, "service", 7);
    mpw_str(w, AGG_SVC[(slot + phase) & 3], strlen(AGG_SVC[(slot + phase) & 3]));
    mpw_str(w, "status", 6);
    mpw_str(w, "OK", 2);
    mpw_str(w, "trace_id", 8);
    mpw_str(w, trace, 32);
}

static int bench_aggregate(void)
{
    enum { SLOTS = 125000, PHASES = 5 };
    const size_t nrec = (size_t)SLOTS * PHASES;
    wbuf all = {0};
    size_t *off = malloc((nrec + 1) * sizeof *off);
    /* event i: slot i % SLOTS, its phase (i / SLOTS + slot) % 5, the key the slot's: at any time a fifth
     * of the slots are between an end and the next start, so about 100 k sagas are open */
    for (size_t i = 0; i < nrec; i++) {
        unsigned slot = (unsigned)(i % SLOTS);
        size_t sweep = i / SLOTS + slot;
        char key[48];
        snprintf(key, sizeof key, "saga-%u", slot);
        off[i] = all.len;
        agg_record(&all, key, (int)(sweep % PHASES), slot);
    }
    off[nrec] = all.len;
    printf("aggregate input: %zu records of %zu bytes of msgpack on average\n", nrec, all.len / nrec);

    /* heap per open saga: 100 k sagas with a start and three steps */
    {
        struct mallinfo2 m0 = mallinfo2();
        filter *f = mk(AGG_CONF);
        wbuf out = {0}, sc = {0};
        filter_emit em = {0};
        filter_call call = {.tag = "app", .tag_len = 3, .sec = 1700000000, .out = &out, .scratch = &sc, .emit = &em};
        wbuf r = {0};
        for (unsigned k = 0; k < 100000; k++)
            for (int ph = 0; ph < 4; ph++) {
                char key[48];
                snprintf(key, sizeof key, "saga-%u-0", k);
                r.len = 0;
                agg_record(&r, key, ph, k);
                f->plugin->filter(f, &call, r.data, r.len);
            }
        struct mallinfo2 m1 = mallinfo2();
        uint64_t open, ev, su;
        f->plugin->stats(f, &open, &ev, &su);
        printf("%-30s %7.0f bytes of heap per open saga (4 steps, 4 services, 2 trace ids; %llu open; %.0f "
               "bytes counted by the filter)\n",
               "aggregate memory", (double)(m1.uordblks - m0.uordblks - out.cap - sc.cap - r.cap) / (double)open,
               (unsigned long long)open, (double)aggregate_state_bytes(f) / (double)open);
        filter_destroy(f);
        wbuf_free(&out);
        wbuf_free(&sc);
        wbuf_free(&r);
        wbuf_free(&em.w);
    }

    filter *f = mk(AGG_CONF);
    wbuf out = {0}, sc = {0}, aux = {0};
    filter_emit em = {0};
    filter_call call = {.tag = "app", .tag_len = 3, .sec = 1700000000, .out = &out, .scratch = &sc, .aux = &aux,
                        .emit = &em};
    /* warm up: one full round (every slot through its five events) */
    for (size_t i = 0; i < nrec; i++)
        f->plugin->filter(f, &call, all.data + off[i], off[i + 1] - off[i]);
    em.w.len = 0;
    em.n = 0;
    double best = 1e9;
    uint64_t open_min = ~0ull, open_max = 0, summaries = 0;
    for (int round = 0; round < 3; round++) {
        double t0 = now();
        for (size_t i = 0; i < nrec; i++) {
            call.sec = 1700000000 + (uint32_t)(i >> 10);
            f->plugin->filter(f, &call, all.data + off[i], off[i + 1] - off[i]);
            if (em.w.len > (1u << 20)) { /* summaries as the router takes them: a batch now and then */
                summaries += em.n;
                em.w.len = 0;
                em.n = 0;
            }
            if ((i & 65535) == 0) {
                uint64_t o, e, s;
                f->plugin->stats(f, &o, &e, &s);
                open_min = o < open_min ? o : open_min;
                open_max = o > open_max ? o : open_max;
            }
        }
        double dt = (now() - t0) / (double)nrec;
        best = dt < best ? dt : best;
    }
    summaries += em.n;
    printf("%-30s %7.1f ns/record (best of 3 rounds of %zu; %.0f k records/s on one core; %llu-%llu sagas open, "
           "%llu summaries)\n",
           "aggregate", best * 1e9, nrec, 1 / best / 1e3, (unsigned long long)open_min, (unsigned long long)open_max,
           (unsigned long long)summaries);
    filter_destroy(f);
    wbuf_free(&out);
    wbuf_free(&sc);
    wbuf_free(&aux);
    wbuf_free(&em.w);
    wbuf_free(&all);
    free(off);
    rx_thread_cleanup();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "aggregate"))
        return bench_aggregate();
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
        call.out = &ping;
        double best = best_of_5(fs[k], &call, in, inl, iters, -1);
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

    /* Debezium unwrap: a postgres update event (before + after rows, the full source block, a transaction),
     * as the record itself (the Kafka source's format json) and as JSON text under `message` */
    {
        static const char *const ROW = "\"id\":%d,\"first_name\":\"Sally\",\"last_name\":\"Thomas\",\"email\":"
                                       "\"%s\",\"phone\":\"+1-555-0100\",\"city\":\"Springfield\",\"status\":\"active\",\"balance\":"
                                       "1234.5,\"updated_at\":1700000000123";
        char before[512], after[512], ev[2048];
        snprintf(before, sizeof before, ROW, 1001, "sally.thomas@acme.com");
        snprintf(after, sizeof after, ROW, 1001, "sally@example.com");
        snprintf(ev, sizeof ev,
                 "{\"before\":{%s},\"after\":{%s},\"source\":{\"version\":\"2.5.0.Final\",\"connector\":"
                 "\"postgresql\",\"name\":\"dbserver1\",\"ts_ms\":1700000000000,\"snapshot\":\"false\",\"db\":"
                 "\"inventory\",\"sequence\":\"[\\\"24023120\\\",\\\"24023128\\\"]\",\"schema\":\"public\","
                 "\"table\":\"customers\",\"txId\":555,\"lsn\":24023128,\"xmin\":null},\"op\":\"u\",\"ts_ms\":"
                 "1700000000250,\"transaction\":{\"id\":\"555:24023128\",\"total_order\":1,"
                 "\"data_collection_order\":1}}",
                 before, after);
        wbuf dev = J(ev);
        json_t *js = json_pack("{s:s}", "message", ev);
        char *txt = json_dumps(js, 0);
        wbuf dtext = J(txt);
        free(txt);
        json_decref(js);
        printf("debezium input: an update event of %zu bytes of msgpack (%zu of JSON)\n", dev.len, strlen(ev));
        filter *df[2] = {mk("@type debezium"), mk("@type debezium\nenvelope_key message")};
        const wbuf *din[2] = {&dev, &dtext};
        const char *dname[2] = {"debezium unwrap", "  same, JSON text in message"};
        for (int k = 0; k < 2; k++) {
            call.out = &ping;
            double dbest = best_of_5(df[k], &call, din[k]->data, din[k]->len, iters, FILTER_MODIFY);
            printf("%-30s %7.1f ns/record (best of 5; %.0f k events/s on one core)\n", dname[k], dbest * 1e9,
                   1 / dbest / 1e3);
            filter_destroy(df[k]);
        }
        wbuf_free(&dev);
        wbuf_free(&dtext);
    }

    /* record_transformer with enable_ruby true on the parsed kubernetes record: five expressions of the
     * shapes real configs use (nested access, dig with a default, downcase, strftime, a comparison and ?:),
     * and the same fields as plain placeholders where there is one (what enable_ruby costs over them) */
    {
        filter *rf[2] = {
            mk("@type record_transformer\nenable_ruby true\n<record>\n"
               "namespace ${record[\"kubernetes\"][\"namespace_name\"]}\n"
               "app ${record.dig(\"kubernetes\", \"labels\", \"app\") || \"unknown\"}\n"
               "level_l ${record[\"level\"].downcase}\n"
               "day ${time.strftime(\"%Y.%m.%d\")}\n"
               "sev ${record[\"status\"].to_i >= 500 ? \"error\" : \"ok\"}\n</record>"),
            mk("@type record_transformer\n<record>\n"
               "namespace ${record[\"kubernetes\"][\"namespace_name\"]}\n"
               "app ${record[\"kubernetes\"][\"labels\"][\"app\"]}\n"
               "level_l ${record[\"level\"]}\n"
               "day ${time}\n"
               "sev ${record[\"status\"]}\n</record>"),
        };
        const char *rname[2] = {"record_transformer enable_ruby", "  same fields, placeholders"};
        for (int k = 0; k < 2; k++) {
            call.out = &ping;
            double rbest = best_of_5(rf[k], &call, parsed.data, parsed.len, iters, FILTER_MODIFY);
            printf("%-30s %7.1f ns/record (best of 5; %.0f k records/s on one core)\n", rname[k], rbest * 1e9,
                   1 / rbest / 1e3);
            filter_destroy(rf[k]);
        }
    }

    /* grok on Apache combined lines, through the parser filter (the record becomes the parsed fields) */
    static const char *const paths[4] = {"/api/v1/users/12345?expand=true", "/static/css/site.min.css",
                                         "/checkout/cart?session=8f3a9c", "/images/logo-large.png"};
    wbuf lines[4];
    size_t total = 0;
    for (int i = 0; i < 4; i++) {
        char line[512];
        snprintf(line, sizeof line,
                 "10.0.%d.%d - alice [01/May/2024:12:00:%02d +0000] \"GET %s HTTP/1.1\" 200 %d "
                 "\"https://www.example.com/start\" \"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/124.0\"",
                 i, 17 + i, 10 + i, paths[i], 5123 + i * 77);
        total += strlen(line);
        json_t *j = json_pack("{s:s}", "message", line); /* {"message": line}, quotes escaped */
        char *txt = json_dumps(j, 0);
        lines[i] = J(txt);
        free(txt);
        json_decref(j);
    }
    printf("grok input: Apache combined lines of %zu bytes on average\n", total / 4);
    char *alts = malloc(16384);
    size_t al = 0;
    for (int i = 0; i < 20; i++)
        al += (size_t)snprintf(alts + al, 16384 - al, "<grok>\npattern %s\n</grok>\n", GROK_ALTS[i]);
    static const char *const guard_off = "grok_match_limit 0\ngrok_timeout 0\n";
    const char *gname[4] = {"grok COMBINEDAPACHELOG", "  same, guard off", "grok 20 <grok>, last matches",
                            "  same, guard off"};
    /* each pair (guard on, guard off) in alternating rounds, best of 7 each: drift on a shared machine
     * hits both alike */
    double gbest[4];
    for (int pair = 0; pair < 2; pair++) {
        filter *gf[2];
        for (int k = 0; k < 2; k++) {
            char *conf = malloc(20000);
            snprintf(conf, 20000, "@type parser\nkey_name message\n<parse>\n@type grok\n%s%s</parse>",
                     k ? guard_off : "", pair == 0 ? "grok_pattern %{COMBINEDAPACHELOG}\n" : alts);
            gf[k] = mk(conf);
            free(conf);
            gbest[2 * pair + k] = 1e9;
        }
        long giters = pair == 0 ? iters / 5 : iters / 50;
        for (int round = 0; round < 14; round++) {
            int k = round & 1;
            double t0 = now();
            for (long i = 0; i < giters; i++) {
                ping.len = 0;
                call.out = &ping;
                if (gf[k]->plugin->filter(gf[k], &call, lines[i & 3].data, lines[i & 3].len) != FILTER_MODIFY)
                    abort();
            }
            double dt = (now() - t0) / giters;
            if (dt < gbest[2 * pair + k])
                gbest[2 * pair + k] = dt;
        }
        for (int k = 0; k < 2; k++) {
            printf("%-30s %7.1f ns/record (best of 7; %.0f k lines/s on one core)\n", gname[2 * pair + k],
                   gbest[2 * pair + k] * 1e9, 1 / gbest[2 * pair + k] / 1e3);
            filter_destroy(gf[k]);
        }
    }
    printf("grok guard cost: %+.1f%% (COMBINEDAPACHELOG), %+.1f%% (20 alternatives)\n",
           (gbest[0] / gbest[1] - 1) * 100, (gbest[2] / gbest[3] - 1) * 100);
    free(alts);
    for (int i = 0; i < 4; i++)
        wbuf_free(&lines[i]);
    for (int i = 0; i < 4; i++)
        wbuf_free(&recs[i]);
    wbuf_free(&parsed);
    wbuf_free(&ping);
    wbuf_free(&pong);
    wbuf_free(&sc);
    for (int i = 0; i < 3; i++)
        filter_destroy(fs[i]);
    return bench_aggregate();
}
