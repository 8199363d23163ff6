/*
 * Unit tests: the Elasticsearch output's logic that needs no server
 * (outputs/elasticsearch/): index naming (index.c), the _bulk body
 * (bulk.c) and what a bulk response means per record (response.c).
 *
 * The context is built as weir builds it: a <match> through the config
 * parser and the plugin's init (output_create); nothing is sent. Records are
 * written as JSON with single quotes (converted to double quotes), expected
 * NDJSON the same way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/batch.h"
#include "lib/http.h"
#include "lib/log.h"
#include "config/conf.h"
#include "aggregator/output.h"
#include "outputs/elasticsearch/bulk.h"
#include "outputs/elasticsearch/es.h"
#include "outputs/elasticsearch/index.h"
#include "outputs/elasticsearch/response.h"
#include "filter_test_util.h"

/* ---- helpers ------------------------------------------------------------------------------ */

#define T0 1700000000u /* 2023-11-14T22:13:20Z */
#define N0 123456789u

/* ' -> " (test JSON reads better); a few rotating buffers */
static const char *Q(const char *s)
{
    static char bufs[8][8192];
    static int k;
    char *b = bufs[k++ & 7];
    size_t i = 0;
    for (; s[i] && i < sizeof bufs[0] - 1; i++)
        b[i] = s[i] == '\'' ? '"' : s[i];
    b[i] = 0;
    return b;
}

/* An elasticsearch output from its parameters (lines); NULL, with the first
 * configuration error in err, when the plugin refuses them. */
static output *mko_err(const char *params, char *err, size_t errlen)
{
    char text[4096];
    snprintf(text, sizeof text, "<match t.**>\n  @type elasticsearch\n%s\n</match>\n", params);
    conf_errors errs = {0};
    conf_node *root = conf_parse_string(text, "es.conf", &errs);
    assert_non_null(root);
    output *o = output_create(root->children[0], "t.**", 0, &errs);
    err[0] = 0;
    if (errs.n)
        snprintf(err, errlen, "%s", errs.msgs[0]);
    conf_errors_free(&errs);
    conf_free(root);
    return o;
}

static output *mko(const char *params)
{
    char err[512];
    output *o = mko_err(params, err, sizeof err);
    if (err[0])
        print_error("unexpected config error: %s\n", err);
    assert_string_equal(err, "");
    assert_non_null(o);
    return o;
}

typedef struct rec {
    uint32_t sec, nsec;
    const char *json; /* single quotes */
} rec;

static batch *mkbatch(const char *tag, const rec *r, uint32_t n)
{
    wbuf d = {0};
    for (uint32_t i = 0; i < n; i++) {
        assert_int_equal(batch_put_entry_head(&d, r[i].sec, r[i].nsec, NULL, 0), 0);
        wbuf m = J(Q(r[i].json));
        assert_int_equal(wbuf_add(&d, m.data, m.len), 0);
        wbuf_free(&m);
    }
    batch *b = batch_new(tag, strlen(tag), d.data, d.len, n);
    assert_non_null(b);
    return b;
}

/* TZ for utc_index false; NULL restores the environment's */
static char *saved_tz;
static int tz_saved;
static void set_tz(const char *tz)
{
    if (!tz_saved) {
        const char *t = getenv("TZ");
        saved_tz = t ? strdup(t) : NULL;
        tz_saved = 1;
    }
    if (tz)
        setenv("TZ", tz, 1);
    else if (saved_tz)
        setenv("TZ", saved_tz, 1);
    else
        unsetenv("TZ");
    tzset();
}

/* ---- index naming (index.c) --------------------------------------------------------------- */

typedef struct index_case {
    const char *params;
    const char *tz; /* NULL: as the environment has it */
    const char *tag;
    uint32_t sec;
    const char *record;
    const char *want; /* NULL: no name, err contains `error` */
    const char *error;
} index_case;

static const index_case index_cases[] = {
    /* index_name (default "fluentd"), literal or with placeholders and strftime */
    {"", NULL, "t.web", T0, "{'m':1}", "fluentd", NULL},
    {"index_name App-Logs", NULL, "t.web", T0, "{}", "app-logs", NULL},
    {"index_name ${tag}-%Y.%m", NULL, "T.Web", T0, "{}", "t.web-2023.11", NULL},
    {"index_name k8s-${tag[1]}-${tag[-1]}", NULL, "t.pay.api", T0, "{}", "k8s-pay-api", NULL},
    {"index_name k8s-${tag[5]}", NULL, "t.web", T0, "{}", NULL, "tag 't.web' has no part ${tag[5]}"},
    /* a record key as the index (target_index_key's job): present, nested, absent, null */
    {"index_name ${ns}", NULL, "t.web", T0, "{'ns':'Payments'}", "payments", NULL},
    {"index_name logs-${$.kubernetes.namespace_name}", NULL, "t.web", T0,
     "{'kubernetes':{'namespace_name':'ops'}}", "logs-ops", NULL},
    {"index_name logs-${$.kubernetes.namespace_name}", NULL, "t.web", T0, "{'kubernetes':{}}", NULL,
     "record has no value for ${$.kubernetes.namespace_name} in the index name"},
    {"index_name ${ns}", NULL, "t.web", T0, "{'ns':null}", NULL, "record has no value for ${ns}"},
    {"index_name ${n}", NULL, "t.web", T0, "{'n':42}", "42", NULL},
    /* logstash_format: prefix, separator, dateformat; the daily index of the event time, UTC */
    {"logstash_format true", NULL, "t.web", T0, "{}", "logstash-2023.11.14", NULL},
    {"logstash_format true\nlogstash_prefix logs", NULL, "t.web", T0, "{}", "logs-2023.11.14", NULL},
    {"logstash_format true\nlogstash_prefix logs\nlogstash_dateformat %Y%m\nlogstash_prefix_separator _", NULL,
     "t.web", T0, "{}", "logs_202311", NULL},
    {"logstash_format true\nlogstash_prefix App-${tag[0]}", NULL, "Kube.x", T0, "{}", "app-kube-2023.11.14", NULL},
    {"logstash_format true\nlogstash_prefix logs", NULL, "t.web", 1709251199u, "{}", "logs-2024.02.29", NULL},
    {"logstash_format true\nlogstash_prefix logs", NULL, "t.web", 1709251200u, "{}", "logs-2024.03.01", NULL},
    /* utc_index false: the local date under TZ; true (default): UTC whatever TZ says */
    {"logstash_format true\nutc_index false", "JST-9", "t.web", T0, "{}", "logstash-2023.11.15", NULL},
    {"logstash_format true\nutc_index false", "EST5", "t.web", 1700010000u, "{}", "logstash-2023.11.14", NULL},
    {"logstash_format true", "EST5", "t.web", 1700010000u, "{}", "logstash-2023.11.15", NULL},
    {"logstash_format true", "JST-9", "t.web", T0, "{}", "logstash-2023.11.14", NULL},
    /* the record's time: time_key (string or number), an existing @timestamp under logstash_format */
    {"logstash_format true\ntime_key ts", NULL, "t.web", T0, "{'ts':'2024-02-29T23:30:00Z'}", "logstash-2024.02.29",
     NULL},
    {"logstash_format true\ntime_key ts", NULL, "t.web", T0, "{'ts':1709249400}", "logstash-2024.02.29", NULL},
    {"logstash_format true\ntime_key ts", NULL, "t.web", T0, "{'ts':'garbage'}", "logstash-2023.11.14", NULL},
    {"logstash_format true\ntime_key $.a.t", NULL, "t.web", T0, "{'a':{'t':'2024-01-02T03:04:05Z'}}",
     "logstash-2024.01.02", NULL},
    {"logstash_format true", NULL, "t.web", T0, "{'@timestamp':'2024-01-01T00:00:00Z'}", "logstash-2024.01.01",
     NULL},
    {"index_name x-%Y", NULL, "t.web", T0, "{'@timestamp':'2024-01-01T00:00:00Z'}", "x-2023", NULL},
    /* data streams: the stream's name */
    {"data_stream_name logs-app-default", NULL, "t.web", T0, "{}", "logs-app-default", NULL},
    {"data_stream_name logs-${tag[1]}-default", NULL, "t.web", T0, "{}", "logs-web-default", NULL},
};

static void test_index_names(void **st)
{
    for (size_t i = 0; i < sizeof index_cases / sizeof *index_cases; i++) {
        const index_case *tc = &index_cases[i];
        set_tz(tc->tz);
        output *o = mko(tc->params);
        const out_es *c = o->ctx;
        wbuf m = J(Q(tc->record));
        entry e = {.tag = tc->tag, .tag_len = (uint32_t)strlen(tc->tag), .sec = tc->sec, .nsec = 5,
                   .record = m.data, .record_len = m.len};
        uint32_t sec, nsec;
        int has_ts;
        es_record_time(c, &e, &sec, &nsec, &has_ts);
        wbuf out = {0};
        char err[300] = "";
        int rc = es_index_expand(&c->index, &out, &e, sec, c->utc_index, err, sizeof err);
        wbuf_addc(&out, 0);
        if (tc->want ? rc != 0 || strcmp((char *)out.data, tc->want) != 0 : rc == 0 || !strstr(err, tc->error))
            fail_msg("case %zu (%s): rc %d, index '%s', err '%s'; want %s", i, tc->params, rc, (char *)out.data, err,
                     tc->want ? tc->want : tc->error);
        wbuf_free(&out);
        wbuf_free(&m);
        output_destroy(o);
    }
    set_tz(NULL);
}

/* refused at init: the parameter and the message */
static void test_index_config_errors(void **st)
{
    static const struct {
        const char *params, *error;
    } cases[] = {
        /* "es.conf:LINE:" names the parameter's line: <match> is line 1, @type line 2 */
        {"index_name logs-${tag", "es.conf:3: unterminated placeholder in '${tag'"},
        {"index_name logs-${}", "es.conf:3: bad placeholder '${}'"},
        {"index_name logs-${tag[x]}", "es.conf:3: bad tag placeholder '${tag[x]}' (expected ${tag[N]})"},
        {"index_name logs-${$.a b}", "es.conf:3: bad record placeholder '${$.a b}': whitespace character"},
        {"logstash_format true\nlogstash_prefix a-${tag[1x]}", "es.conf:4: bad tag placeholder '${tag[1x]}'"},
        {"data_stream_name logs-${tag", "es.conf:3: unterminated placeholder"},
        {"data_stream_name logs\nlogstash_format true",
         "es.conf:3: data_stream_name and logstash_format exclude each other"},
        {"id_key a\ngenerate_id true", "es.conf:4: id_key and generate_id exclude each other"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[512];
        output *o = mko_err(cases[i].params, err, sizeof err);
        if (o || !strstr(err, cases[i].error))
            fail_msg("case %zu (%s): %s; want an error with \"%s\"", i, cases[i].params, o ? "accepted" : err,
                     cases[i].error);
    }
    /* the template alone, without a configuration */
    es_index t;
    char err[300] = "";
    assert_int_equal(es_index_compile(&t, "A-${tag[-2]}-%d", err, sizeof err), 0);
    assert_int_equal(t.n, 3); /* "A-", ${tag[-2]}, "-%d" */
    assert_int_equal(t.p[0].kind, PT_LIT);
    assert_int_equal(t.p[0].has_pct, 0);
    assert_int_equal(t.p[1].kind, PT_TAG_PART);
    assert_int_equal(t.p[1].tag_idx, -2);
    assert_int_equal(t.p[2].kind, PT_LIT);
    assert_int_equal(t.p[2].has_pct, 1);
    wbuf out = {0};
    entry e = {.tag = "x.Y.z", .tag_len = 5};
    assert_int_equal(es_index_expand(&t, &out, &e, T0, 1, err, sizeof err), 0);
    wbuf_addc(&out, 0);
    assert_string_equal((char *)out.data, "a-y-14");
    wbuf_free(&out);
    es_index_free(&t);
    assert_int_equal(t.n, 0);
}

/* ---- the bulk body (bulk.c) --------------------------------------------------------------- */

typedef struct bulk_case {
    const char *params;
    const char *tag;
    rec r[4];
    uint32_t n;
    const char *want;       /* the body, single quotes */
    uint32_t nbad;          /* records left out, OUT_ERROR with `error` */
    const char *error;
} bulk_case;

#define R0 {T0, N0, "{'msg':'a','n':1}"}
#define R1 {T0, N0, "{'msg':'b','n':1}"}
#define R3 {T0, N0 + 1, "{'msg':'a','n':1}"}
/* base64url(SHA-1("t.web" NUL sec nsec record)): computed outside weir */
#define ID0 "w6lq2IrEAsoz9CfGsV4eo8eLepw"
#define ID1 "XqI-SYMOYVF85sJ7uIedTzES5XU"
#define ID3 "8EntYcF0pGkHmt3O8KAQtxHR-GI"
#define TS0 "'@timestamp':'2023-11-14T22:13:20.123456789Z'"

static const bulk_case bulk_cases[] = {
    /* defaults: index fluentd, the record as it is */
    {"", "t.web", {R0, R1}, 2,
     "{'index':{'_index':'fluentd'}}\n{'msg':'a','n':1}\n"
     "{'index':{'_index':'fluentd'}}\n{'msg':'b','n':1}\n", 0, NULL},
    /* logstash_format: daily index, @timestamp first; generate_id: the same _id for the same tag,
     * time and record, another for another record or another nanosecond */
    {"logstash_format true\nlogstash_prefix logs\ngenerate_id true\nwrite_operation create", "t.web",
     {R0, R1, R0, R3}, 4,
     "{'create':{'_index':'logs-2023.11.14','_id':'" ID0 "'}}\n{" TS0 ",'msg':'a','n':1}\n"
     "{'create':{'_index':'logs-2023.11.14','_id':'" ID1 "'}}\n{" TS0 ",'msg':'b','n':1}\n"
     "{'create':{'_index':'logs-2023.11.14','_id':'" ID0 "'}}\n{" TS0 ",'msg':'a','n':1}\n"
     "{'create':{'_index':'logs-2023.11.14','_id':'" ID3 "'}}\n{'@timestamp':'2023-11-14T22:13:20.123456790Z',"
     "'msg':'a','n':1}\n",
     0, NULL},
    /* the index name and @timestamp follow each record's second across midnight and back (bulk.c caches
     * both per second) */
    {"logstash_format true\nlogstash_prefix logs\ntime_precision 1", "t.web",
     {{T0, 0, "{'m':1}"}, {T0 + 6400, 900000000, "{'m':2}"}, {T0 + 6400, 0, "{'m':3}"}, {T0 + 6399, 0, "{'m':4}"}},
     4,
     "{'index':{'_index':'logs-2023.11.14'}}\n{'@timestamp':'2023-11-14T22:13:20.0Z','m':1}\n"
     "{'index':{'_index':'logs-2023.11.15'}}\n{'@timestamp':'2023-11-15T00:00:00.9Z','m':2}\n"
     "{'index':{'_index':'logs-2023.11.15'}}\n{'@timestamp':'2023-11-15T00:00:00.0Z','m':3}\n"
     "{'index':{'_index':'logs-2023.11.14'}}\n{'@timestamp':'2023-11-14T23:59:59.0Z','m':4}\n",
     0, NULL},
    /* id_key: a string, a number, absent, null */
    {"id_key $.req.id", "t.web",
     {{T0, 0, "{'req':{'id':'abc'},'m':1}"}, {T0, 0, "{'req':{'id':42}}"}, {T0, 0, "{'m':2}"},
      {T0, 0, "{'req':{'id':null}}"}},
     4,
     "{'index':{'_index':'fluentd','_id':'abc'}}\n{'req':{'id':'abc'},'m':1}\n"
     "{'index':{'_index':'fluentd','_id':'42'}}\n{'req':{'id':42}}\n"
     "{'index':{'_index':'fluentd'}}\n{'m':2}\n"
     "{'index':{'_index':'fluentd'}}\n{'req':{'id':null}}\n",
     0, NULL},
    /* include_tag_key (the record's own key dropped), include_timestamp, time_precision; empty records */
    {"include_tag_key true\ninclude_timestamp true\ntime_precision 3", "t.web",
     {{T0, N0, "{'tag':'old','m':1}"}, {T0, N0, "{}"}, {T0, N0, "{'tag':'old'}"}}, 3,
     "{'index':{'_index':'fluentd'}}\n{'@timestamp':'2023-11-14T22:13:20.123Z','tag':'t.web','m':1}\n"
     "{'index':{'_index':'fluentd'}}\n{'@timestamp':'2023-11-14T22:13:20.123Z','tag':'t.web'}\n"
     "{'index':{'_index':'fluentd'}}\n{'@timestamp':'2023-11-14T22:13:20.123Z','tag':'t.web'}\n",
     0, NULL},
    {"include_tag_key true\ntag_key fluentd_tag", "t.web", {{T0, N0, "{'m':1}"}, {T0, N0, "{}"}}, 2,
     "{'index':{'_index':'fluentd'}}\n{'fluentd_tag':'t.web','m':1}\n"
     "{'index':{'_index':'fluentd'}}\n{'fluentd_tag':'t.web'}\n",
     0, NULL},
    /* time_key: @timestamp and the index from the record's time (string, float), else the event time */
    {"logstash_format true\ntime_key ts\ntime_precision 3", "t.web",
     {{T0, N0, "{'ts':'2024-02-29T23:30:00Z','m':1}"}, {T0, N0, "{'ts':1709249400.5}"}, {T0, N0, "{'ts':'garbage'}"}},
     3,
     "{'index':{'_index':'logstash-2024.02.29'}}\n{'@timestamp':'2024-02-29T23:30:00.000Z','ts':'2024-02-29T23:30:00Z',"
     "'m':1}\n"
     "{'index':{'_index':'logstash-2024.02.29'}}\n{'@timestamp':'2024-02-29T23:30:00.500Z','ts':1709249400.5}\n"
     "{'index':{'_index':'logstash-2023.11.14'}}\n{'@timestamp':'2023-11-14T22:13:20.123Z','ts':'garbage'}\n",
     0, NULL},
    /* time_key_exclude_timestamp: no @timestamp, the index still from time_key; time_precision 0 */
    {"logstash_format true\ntime_key ts\ntime_key_exclude_timestamp true", "t.web",
     {{T0, N0, "{'ts':'2024-02-29T23:30:00Z'}"}}, 1,
     "{'index':{'_index':'logstash-2024.02.29'}}\n{'ts':'2024-02-29T23:30:00Z'}\n", 0, NULL},
    {"include_timestamp true\ntime_precision 0", "t.web", {R0}, 1,
     "{'index':{'_index':'fluentd'}}\n{'@timestamp':'2023-11-14T22:13:20Z','msg':'a','n':1}\n", 0, NULL},
    /* a record with its own @timestamp keeps it (and it names the index) */
    {"logstash_format true", "t.web", {{T0, N0, "{'m':1,'@timestamp':'2024-01-01T00:00:00Z'}"}}, 1,
     "{'index':{'_index':'logstash-2024.01.01'}}\n{'m':1,'@timestamp':'2024-01-01T00:00:00Z'}\n", 0, NULL},
    /* records out of time order across midnight (UTC): the index name and the @timestamp's date follow each
     * record's day, not the cached one; a name with an hour in it is made per second */
    {"logstash_format true\ntime_precision 0", "t.web",
     {{T0, N0, "{'m':1}"}, {T0 + 7200, N0, "{'m':2}"}, {T0 + 1, N0, "{'m':3}"}, {T0 + 7201 + 86400 * 366, N0, "{'m':4}"}},
     4,
     "{'index':{'_index':'logstash-2023.11.14'}}\n{'@timestamp':'2023-11-14T22:13:20Z','m':1}\n"
     "{'index':{'_index':'logstash-2023.11.15'}}\n{'@timestamp':'2023-11-15T00:13:20Z','m':2}\n"
     "{'index':{'_index':'logstash-2023.11.14'}}\n{'@timestamp':'2023-11-14T22:13:21Z','m':3}\n"
     "{'index':{'_index':'logstash-2024.11.15'}}\n{'@timestamp':'2024-11-15T00:13:21Z','m':4}\n",
     0, NULL},
    {"index_name h-%Y%m%d%H\ninclude_timestamp true\ntime_precision 0", "t.web",
     {{T0, N0, "{'m':1}"}, {T0 + 3600, N0, "{'m':2}"}, {T0 + 1, N0, "{'m':3}"}}, 3,
     "{'index':{'_index':'h-2023111422'}}\n{'@timestamp':'2023-11-14T22:13:20Z','m':1}\n"
     "{'index':{'_index':'h-2023111423'}}\n{'@timestamp':'2023-11-14T23:13:20Z','m':2}\n"
     "{'index':{'_index':'h-2023111422'}}\n{'@timestamp':'2023-11-14T22:13:21Z','m':3}\n",
     0, NULL},
    /* a data stream: create (whatever write_operation says), @timestamp */
    {"data_stream_name logs-app-default\nwrite_operation index", "t.web", {R0}, 1,
     "{'create':{'_index':'logs-app-default'}}\n{" TS0 ",'msg':'a','n':1}\n", 0, NULL},
    /* remove_keys: removed last (id_key and time_key still read them); absent keys are fine */
    {"remove_keys a, b\nid_key a\nlogstash_format true\ntime_key b", "t.web",
     {{T0, N0, "{'a':'x','b':'2024-02-29T23:30:00Z','c':1}"}, {T0, N0, "{'c':2}"}}, 2,
     "{'index':{'_index':'logstash-2024.02.29','_id':'x'}}\n{'@timestamp':'2024-02-29T23:30:00.000000000Z','c':1}\n"
     "{'index':{'_index':'logstash-2023.11.14'}}\n{" TS0 ",'c':2}\n",
     0, NULL},
    /* target_index_key: nested (dots), lowercased, removed from the document; nil, false or absent: index_name */
    {"target_index_key meta.index\nindex_name fallback", "t.web",
     {{T0, N0, "{'meta':{'index':'Team-A','x':1},'m':1}"}, {T0, N0, "{'meta':{'index':null},'m':2}"},
      {T0, N0, "{'meta':{'index':false}}"}, {T0, N0, "{'m':4}"}},
     4,
     "{'index':{'_index':'team-a'}}\n{'meta':{'x':1},'m':1}\n"
     "{'index':{'_index':'fallback'}}\n{'meta':{'index':null},'m':2}\n"
     "{'index':{'_index':'fallback'}}\n{'meta':{'index':false}}\n"
     "{'index':{'_index':'fallback'}}\n{'m':4}\n",
     0, NULL},
    /* a top-level target_index_key wins over logstash_format */
    {"target_index_key idx\nlogstash_format true\ntime_precision 0", "t.web", {{T0, N0, "{'idx':'x','m':1}"}}, 1,
     "{'index':{'_index':'x'}}\n{'@timestamp':'2023-11-14T22:13:20Z','m':1}\n", 0, NULL},
    /* time_key_format: strptime of the time_key value; a value that does not match: the event time */
    {"logstash_format true\ntime_key t\ntime_key_format %d/%m/%Y %H.%M.%S %z\ntime_precision 0", "t.web",
     {{T0, N0, "{'t':'01/03/2024 01.30.00 +0200'}"}, {T0, N0, "{'t':'2024-02-29'}"}}, 2,
     "{'index':{'_index':'logstash-2024.02.29'}}\n{'@timestamp':'2024-02-29T23:30:00Z','t':'01/03/2024 01.30.00 +0200'}\n"
     "{'index':{'_index':'logstash-2023.11.14'}}\n{'@timestamp':'2023-11-14T22:13:20Z','t':'2024-02-29'}\n",
     0, NULL},
    /* routing_key and pipeline in the action line */
    {"routing_key user.id\npipeline geoip", "t.web", {{T0, N0, "{'user':{'id':7}}"}, {T0, N0, "{'m':1}"}}, 2,
     "{'index':{'_index':'fluentd','routing':'7','pipeline':'geoip'}}\n{'user':{'id':7}}\n"
     "{'index':{'_index':'fluentd','pipeline':'geoip'}}\n{'m':1}\n",
     0, NULL},
    /* parent_key: the parent's id as routing; a record's routing_key value wins; neither: no routing */
    {"parent_key join.parent\nrouting_key r", "t.web",
     {{T0, N0, "{'join':{'parent':'q1'}}"}, {T0, N0, "{'join':{'parent':'q1'},'r':'x'}"}, {T0, N0, "{'m':1}"}}, 3,
     "{'index':{'_index':'fluentd','routing':'q1'}}\n{'join':{'parent':'q1'}}\n"
     "{'index':{'_index':'fluentd','routing':'x'}}\n{'join':{'parent':'q1'},'r':'x'}\n"
     "{'index':{'_index':'fluentd'}}\n{'m':1}\n",
     0, NULL},
    /* flatten_hashes: nested maps to top-level keys, arrays stay */
    {"flatten_hashes true\nflatten_hashes_separator .", "t.web",
     {{T0, N0, "{'a':{'b':{'c':1},'d':[1,{'e':2}]},'f':'x'}"}}, 1,
     "{'index':{'_index':'fluentd'}}\n{'a.b.c':1,'a.d':[1,{'e':2}],'f':'x'}\n", 0, NULL},
    /* update / upsert (an id is needed: a record without one is left out) */
    {"write_operation update\nid_key id", "t.web", {{T0, N0, "{'id':'1','m':1}"}, {T0, N0, "{'m':2}"}}, 2,
     "{'update':{'_index':'fluentd','_id':'1'}}\n{'doc':{'id':'1','m':1}}\n", 1,
     "write_operation update needs an _id and the record has no value for id_key 'id'"},
    {"write_operation upsert\nid_key id", "t.web", {{T0, N0, "{'id':'1','m':1}"}}, 1,
     "{'update':{'_index':'fluentd','_id':'1'}}\n{'doc':{'id':'1','m':1},'doc_as_upsert':true}\n", 0, NULL},
    {"write_operation upsert\nid_key id\nremove_keys_on_update created", "t.web",
     {{T0, N0, "{'id':'1','created':5,'m':1}"}}, 1,
     "{'update':{'_index':'fluentd','_id':'1'}}\n{'doc':{'id':'1','m':1},'upsert':{'id':'1','created':5,'m':1}}\n", 0,
     NULL},
    {"write_operation upsert\nid_key id\nremove_keys_on_update_key skip", "t.web",
     {{T0, N0, "{'id':'1','skip':['a'],'a':5,'m':1}"}}, 1,
     "{'update':{'_index':'fluentd','_id':'1'}}\n{'doc':{'id':'1','m':1},'upsert':{'id':'1','a':5,'m':1}}\n", 0, NULL},
    {"write_operation update\nid_key id\nsuppress_doc_wrap true", "t.web", {{T0, N0, "{'id':'1','script':{}}"}}, 1,
     "{'update':{'_index':'fluentd','_id':'1'}}\n{'id':'1','script':{}}\n", 0, NULL},
    /* <inject>: the keys are added first: the index name, the id and the document see them */
    {"<inject>\ntag_key src\ntime_key at\ntime_type unixtime\n</inject>\nindex_name logs-${src}\nid_key src",
     "t.web", {{T0, N0, "{'m':1,'src':'old'}"}}, 1,
     "{'index':{'_index':'logs-t.web','_id':'t.web'}}\n{'m':1,'src':'t.web','at':1700000000}\n", 0, NULL},
    /* records that cannot be addressed are left out, OUT_ERROR */
    {"index_name ${$.k8s.ns}", "t.web",
     {{T0, N0, "{'k8s':{'ns':'Pay'}}"}, {T0, N0, "{'m':1}"}, {T0, N0, "{'k8s':{'ns':null}}"},
      {T0, N0, "{'k8s':{'ns':'ops'}}"}},
     4,
     "{'index':{'_index':'pay'}}\n{'k8s':{'ns':'Pay'}}\n"
     "{'index':{'_index':'ops'}}\n{'k8s':{'ns':'ops'}}\n",
     2, "record has no value for ${$.k8s.ns} in the index name"},
    {"index_name ${ns}", "t.web", {{T0, N0, "{'ns':''}"}, {T0, N0, "{'ns':'x'}"}}, 2,
     "{'index':{'_index':'x'}}\n{'ns':'x'}\n", 1, "the index name is empty"},
    /* a record's own @timestamp names its index and stays as it is, also after records without one
     * (bulk.c writes those without looking the key up first) and before (the rest of the batch looks it
     * up); one in a nested map is not the record's */
    {"logstash_format true\ntime_precision 0", "t.web",
     {{T0, 0, "{'m':1,'a':{'@timestamp':1}}"}, {T0, 0, "{'m':2,'@timestamp':'2024-01-01T00:00:00Z'}"},
      {T0, 0, "{'m':3}"}, {T0, 0, "{'@timestamp':1709249400}"}},
     4,
     "{'index':{'_index':'logstash-2023.11.14'}}\n{'@timestamp':'2023-11-14T22:13:20Z','m':1,'a':{'@timestamp':1}}\n"
     "{'index':{'_index':'logstash-2024.01.01'}}\n{'m':2,'@timestamp':'2024-01-01T00:00:00Z'}\n"
     "{'index':{'_index':'logstash-2023.11.14'}}\n{'@timestamp':'2023-11-14T22:13:20Z','m':3}\n"
     "{'index':{'_index':'logstash-2024.02.29'}}\n{'@timestamp':1709249400}\n",
     0, NULL},
    {"logstash_format true", "t.web", {{T0, N0, "[1,2]"}, R1}, 2,
     "{'index':{'_index':'logstash-2023.11.14'}}\n{" TS0 ",'msg':'b','n':1}\n", 1,
     "cannot encode the record as JSON"},
};

static void test_bulk_bodies(void **st)
{
    for (size_t i = 0; i < sizeof bulk_cases / sizeof *bulk_cases; i++) {
        const bulk_case *tc = &bulk_cases[i];
        output *o = mko(tc->params);
        batch *b = mkbatch(tc->tag, tc->r, tc->n);
        es_buf w = {0};
        out_result res = {.n = tc->n};
        char err[300];
        assert_int_equal(es_buf_init(&w, tc->n), 0);
        uint32_t nbad = es_bulk_encode(o->ctx, b, tc->n, &w, &res, err, sizeof err);
        char *got = strndup((const char *)w.body.data, w.body.len);
        if (strcmp(got, Q(tc->want)) != 0)
            fail_msg("case %zu (%s):\n got  %s\n want %s", i, tc->params, got, Q(tc->want));
        assert_int_equal(nbad, tc->nbad);
        assert_int_equal(w.nsent, tc->n - tc->nbad);
        /* each sent record: exactly its two lines; recno: its place in the batch */
        assert_int_equal(w.off[0], 0);
        assert_int_equal(w.off[w.nsent], w.body.len);
        uint32_t next = 0;
        for (uint32_t k = 0; k < w.nsent; k++) {
            size_t lines = 0;
            for (size_t p = w.off[k]; p < w.off[k + 1]; p++)
                lines += w.body.data[p] == '\n';
            assert_int_equal(lines, 2);
            assert_int_equal(w.body.data[w.off[k + 1] - 1], '\n');
            assert_true(w.recno[k] >= next);
            next = w.recno[k] + 1;
        }
        /* the records left out are marked OUT_ERROR with the reason, the others not at all */
        uint32_t nmarked = 0;
        for (uint32_t r = 0; r < tc->n; r++) {
            int sent = 0;
            for (uint32_t k = 0; k < w.nsent; k++)
                sent |= w.recno[k] == r;
            if (sent) {
                assert_true(!res.status || res.status[r] == OUT_OK);
                continue;
            }
            nmarked++;
            assert_non_null(res.status);
            assert_int_equal(res.status[r], OUT_ERROR);
            assert_string_equal(res.reasons[r], tc->error);
        }
        assert_int_equal(nmarked, tc->nbad);
        free(got);
        out_result_free(&res);
        es_buf_free(&w);
        batch_unref(b);
        output_destroy(o);
    }
}

/* The _id of generate_id: a stable function of tag, time and record alone. */
static void test_generate_id(void **st)
{
    output *o = mko("generate_id true");
    const rec r[] = {R0};
    const char *tags[] = {"t.web", "t.api"};
    const char *want[] = {"{'index':{'_index':'fluentd','_id':'" ID0 "'}}\n{'msg':'a','n':1}\n",
                          "{'index':{'_index':'fluentd','_id':'bylvP_coGqcHR9otOzB5CQio_4g'}}\n{'msg':'a','n':1}\n"};
    for (int round = 0; round < 2; round++) /* again: nothing carried over between writes */
        for (int i = 0; i < 2; i++) {
            batch *b = mkbatch(tags[i], r, 1);
            es_buf w = {0};
            out_result res = {.n = 1};
            char err[300];
            assert_int_equal(es_buf_init(&w, 1), 0);
            assert_int_equal(es_bulk_encode(o->ctx, b, 1, &w, &res, err, sizeof err), 0);
            char *got = strndup((const char *)w.body.data, w.body.len);
            assert_string_equal(got, Q(want[i]));
            free(got);
            es_buf_free(&w);
            batch_unref(b);
        }
    output_destroy(o);
}

/* ---- the bulk response (response.c) ------------------------------------------------------- */

/* A write that sent n records, record k being batch record recno0 + k. */
static void mkbuf(es_buf *w, uint32_t n, uint32_t recno0)
{
    memset(w, 0, sizeof *w);
    assert_int_equal(es_buf_init(w, n), 0);
    w->nsent = n;
    for (uint32_t k = 0; k < n; k++) {
        w->recno[k] = recno0 + k;
        w->off[k] = 0;
    }
}

/* An answer as lib/http leaves it: the body NUL-terminated */
static http_req mkresp(long status, const char *body)
{
    http_req r = {.status = status};
    if (body && *body) {
        wbuf_add(&r.resp, body, strlen(body));
        wbuf_addc(&r.resp, 0);
        r.resp.len--;
    }
    return r;
}

/* A bulk response cut at the HTTP client's bound (lib/http.c: resp_truncated):
 * "errors":false still says every record is in; with errors, the whole items
 * kept apply to their records and the rest are retried; a cut inside an item
 * leaves that item to the retry. */
static void test_response_truncated(void **st)
{
    es_buf w;
    uint32_t pend[4] = {0, 1, 2, 3};
    round_stats rs = {0};
    mkbuf(&w, 4, 0);
    http_req r = mkresp(200, Q("{'errors':false,'items':[{'index':{'status':201}},{'index':{'sta"));
    r.resp_truncated = 1;
    es_apply_response("es.0", &r, &w, pend, 4, &rs);
    for (uint32_t k = 0; k < 4; k++)
        assert_int_equal(w.st[k], RS_OK);
    assert_int_equal(r.transport_error, 0);
    http_req_clear(&r);
    es_buf_free(&w);

    mkbuf(&w, 4, 0);
    http_req r2 = mkresp(200, Q("{'errors':true,'items':[{'index':{'status':201}},"
                                "{'index':{'status':400,'error':{'type':'mapper_parsing_exception','reason':'bad ]'}}},"
                                "{'index':{'status':400,'error':{'type':'mapper"));
    r2.resp_truncated = 1;
    es_apply_response("es.0", &r2, &w, pend, 4, &rs);
    assert_int_equal(w.st[0], RS_OK);
    assert_int_equal(w.st[1], RS_ERROR);
    assert_string_equal(w.why[1], "HTTP 400 mapper_parsing_exception: bad ]");
    assert_int_equal(w.st[2], RS_RETRY);
    assert_int_equal(w.st[3], RS_RETRY);
    assert_string_equal(w.why[3], "bulk response truncated at the HTTP response bound");
    assert_int_equal(r2.transport_error, 0);
    http_req_clear(&r2);

    /* the same body, not marked truncated: unreadable, the request is retried whole */
    http_req r3 = mkresp(200, Q("{'errors':true,'items':[{'index':{'status':201}},{'index'"));
    es_apply_response("es.0", &r3, &w, pend, 4, &rs);
    for (uint32_t k = 0; k < 4; k++)
        assert_int_equal(w.st[k], RS_RETRY);
    assert_int_equal(r3.transport_error, 1);
    http_req_clear(&r3);
    es_buf_free(&w);
    (void)st;
}

static void test_response_items(void **st)
{
    const char *resp = Q(
        "{'errors':true,'items':["
        "{'create':{'status':201}},"
        "{'create':{'status':200}},"
        "{'create':{'status':409,'error':{'type':'version_conflict_engine_exception','reason':'document already "
        "exists'}}},"
        "{'create':{'status':400,'error':{'type':'mapper_parsing_exception','reason':'failed to parse field [n]'}}},"
        "{'create':{'status':429,'error':{'type':'es_rejected_execution_exception','reason':'rejected execution'}}},"
        "{'create':{'status':500,'error':{'type':'internal_server_error','reason':'boom'}}},"
        "{'index':{'status':409,'error':{'type':'version_conflict_engine_exception','reason':'conflict'}}},"
        "{'index':{'status':503,'error':{'type':'unavailable_shards_exception','reason':'primary shard is not "
        "active'}}},"
        "{'index':{'status':404}},"
        "{'index':{}}"
        "]}");
    static const struct {
        int rs, out;
        const char *why;
    } want[] = {
        {RS_OK, OUT_OK, NULL},
        {RS_OK, OUT_OK, NULL},
        {RS_OK, OUT_OK, NULL}, /* 409 on create: already indexed */
        {RS_ERROR, OUT_ERROR, "HTTP 400 mapper_parsing_exception: failed to parse field [n]"},
        {RS_SOON, OUT_RETRY, "HTTP 429 es_rejected_execution_exception: rejected execution"},
        {RS_RETRY, OUT_RETRY, "HTTP 500 internal_server_error: boom"},
        {RS_ERROR, OUT_ERROR, "HTTP 409 version_conflict_engine_exception: conflict"}, /* 409 on index */
        {RS_SOON, OUT_RETRY, "HTTP 503 unavailable_shards_exception: primary shard is not active"},
        {RS_ERROR, OUT_ERROR, "HTTP 404 error: (no reason)"},
        {RS_RETRY, OUT_RETRY, "HTTP 0 error: (no reason)"}, /* no status */
    };
    const uint32_t n = sizeof want / sizeof *want;
    es_buf w;
    mkbuf(&w, n, 1); /* batch record 0 was left out when encoding */
    uint32_t pend[sizeof want / sizeof *want];
    for (uint32_t k = 0; k < n; k++)
        pend[k] = k;
    http_req r = mkresp(200, resp);
    round_stats rs = {0};
    es_apply_response("es.0", &r, &w, pend, n, &rs);
    for (uint32_t k = 0; k < n; k++) {
        if (w.st[k] != want[k].rs)
            fail_msg("item %u: RS %d, want %d", k, w.st[k], want[k].rs);
        if (want[k].why)
            assert_string_equal(w.why[k], want[k].why);
        else
            assert_null(w.why[k]);
    }
    assert_int_equal(rs.n429, 1);
    assert_int_equal(rs.nerr, 3);
    assert_int_equal(rs.nfailed_req, 0);
    assert_string_equal(rs.item_reason, want[3].why);
    assert_string_equal(rs.soon_reason, want[4].why);
    assert_string_equal(rs.req_reason, "");
    assert_int_equal(r.transport_error, 0);

    /* the next round resends the 429/503 records alone: their answers replace the first ones */
    uint32_t again[] = {4, 7};
    http_req r2 = mkresp(200, Q("{'errors':true,'items':[{'create':{'status':201}},"
                                "{'index':{'status':429,'error':{'type':'es_rejected_execution_exception',"
                                "'reason':'still busy'}}}]}"));
    es_apply_response("es.0", &r2, &w, again, 2, &rs);
    assert_int_equal(w.st[4], RS_OK);
    assert_null(w.why[4]);
    assert_int_equal(w.st[7], RS_SOON);
    assert_int_equal(rs.n429, 2);

    /* the marks of the write: by batch record (recno), an RS_SOON left over is OUT_RETRY */
    out_result res = {.n = n + 1};
    uint32_t nok = 0, nretry = 0, nerr = 0;
    es_mark_results(&w, &res, &nok, &nretry, &nerr);
    assert_int_equal(nok, 4);
    assert_int_equal(nretry, 3);
    assert_int_equal(nerr, 3);
    assert_non_null(res.status);
    assert_int_equal(res.status[0], OUT_OK); /* not this write's to mark */
    for (uint32_t k = 0; k < n; k++) {
        int out = k == 4 ? OUT_OK : want[k].out;
        const char *why = k == 4 ? NULL : k == 7 ? "HTTP 429 es_rejected_execution_exception: still busy" : want[k].why;
        if (res.status[k + 1] != out)
            fail_msg("record %u: OUT %d, want %d", k + 1, res.status[k + 1], out);
        if (why)
            assert_string_equal(res.reasons[k + 1], why);
        else
            assert_null(res.reasons[k + 1]);
    }
    out_result_free(&res);
    wbuf_free(&r.resp);
    wbuf_free(&r2.resp);
    es_buf_free(&w);
}

/* Answers that decide for every record of the request at once. */
static void test_response_whole(void **st)
{
    static const struct {
        long status;
        int transport, timed_out;
        const char *body; /* single quotes */
        int rs;
        uint32_t nfailed, n429;
        const char *why;
    } cases[] = {
        /* errors false: every record delivered, the items not even read */
        {200, 0, 0, "{'took':3,'errors':false}", RS_OK, 0, 0, NULL},
        {200, 0, 0, "{'errors':false,'items':[]}", RS_OK, 0, 0, NULL},
        {200, 0, 0, " \n{'errors':false,'items':[{'index':{'status':201}}]}", RS_OK, 0, 0, NULL},
        {200, 0, 0, "{'errors': false, 'items':[]}", RS_OK, 0, 0, NULL}, /* not the fast path: read whole */
        /* what only looks like it at the start is read whole, and refused */
        {200, 0, 0, "{'errors':falsely", RS_RETRY, 1, 0, "unreadable bulk response"},
        {200, 0, 0, "{'took':3x,'errors':false}", RS_RETRY, 1, 0, "unreadable bulk response"},
        /* a 2xx that cannot be read: the request failed whole */
        {200, 0, 0, "{'errors':true,'items':[{'index':{'status':201}}]}", RS_RETRY, 1, 0, "unreadable bulk response"},
        {200, 0, 0, "{'errors':true}", RS_RETRY, 1, 0, "unreadable bulk response"},
        {200, 0, 0, "<html>not json", RS_RETRY, 1, 0, "unreadable bulk response"},
        {200, 0, 0, "", RS_RETRY, 1, 0, "unreadable bulk response"},
        /* overloaded: sent again within the write */
        {429, 0, 0, "{'error':'too many requests'}", RS_SOON, 0, 3, "HTTP 429: {\"error\":\"too many requests\"}"},
        {503, 0, 0, "", RS_SOON, 0, 0, "HTTP 503: "},
        /* refused whole: not the records' fault, the buffer retries them */
        {413, 0, 0, "", RS_RETRY, 1, 0, "HTTP 413: "},
        {400, 0, 0, "No required SSL certificate\r\nwas sent", RS_RETRY, 1, 0,
         "HTTP 400: No required SSL certificate  was sent"},
        {401, 0, 0, "unauthorized", RS_RETRY, 1, 0, "HTTP 401: unauthorized"},
        {500, 0, 0, "oops", RS_RETRY, 1, 0, "HTTP 500: oops"},
        {0, 1, 0, NULL, RS_RETRY, 1, 0, "Failed to connect to 127.0.0.1 port 9 after 0 ms: Connection refused"},
        {0, 1, 1, NULL, RS_RETRY, 1, 0, "timeout: Operation timed out after 5000 milliseconds"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        es_buf w;
        mkbuf(&w, 3, 0);
        uint32_t pend[] = {0, 1, 2};
        http_req r = mkresp(cases[i].status, cases[i].body ? Q(cases[i].body) : NULL);
        r.transport_error = cases[i].transport;
        r.timed_out = cases[i].timed_out;
        if (cases[i].transport)
            snprintf(r.error, sizeof r.error, "%s",
                     strstr(cases[i].why, "timeout: ") == cases[i].why ? cases[i].why + 9 : cases[i].why);
        round_stats rs = {0};
        es_apply_response("es.0", &r, &w, pend, 3, &rs);
        for (uint32_t k = 0; k < 3; k++) {
            if (w.st[k] != cases[i].rs)
                fail_msg("case %zu (HTTP %ld): record %u RS %d, want %d", i, cases[i].status, k, w.st[k],
                         cases[i].rs);
            if (cases[i].why)
                assert_string_equal(w.why[k], cases[i].why);
            else
                assert_null(w.why[k]);
        }
        assert_int_equal(rs.nfailed_req, cases[i].nfailed);
        assert_int_equal(rs.n429, cases[i].n429);
        assert_int_equal(rs.nerr, 0);
        assert_string_equal(rs.req_reason, cases[i].nfailed ? cases[i].why : "");
        assert_string_equal(rs.soon_reason, cases[i].rs == RS_SOON ? cases[i].why : "");
        /* what the write marks: nothing when delivered, OUT_RETRY with the reason otherwise */
        out_result res = {.n = 3};
        uint32_t nok = 0, nretry = 0, nerr = 0;
        es_mark_results(&w, &res, &nok, &nretry, &nerr);
        assert_int_equal(nok, cases[i].rs == RS_OK ? 3 : 0);
        assert_int_equal(nretry, cases[i].rs == RS_OK ? 0 : 3);
        assert_int_equal(nerr, 0);
        for (uint32_t k = 0; k < 3; k++) {
            if (cases[i].rs == RS_OK) {
                assert_null(res.status);
                continue;
            }
            assert_int_equal(res.status[k], OUT_RETRY);
            assert_string_equal(res.reasons[k], cases[i].why);
        }
        out_result_free(&res);
        wbuf_free(&r.resp);
        es_buf_free(&w);
    }
}


/* Parameters of fluent-plugin-elasticsearch: accepted, refused, checked (elasticsearch.c). */
static void test_plugin_params(void **st)
{
    char err[512];
    static const struct {
        const char *params, *error; /* error: a substring of the first error, or NULL */
    } cases[] = {
        {"type_name fluentd\nreload_on_failure true\nreconnect_on_error true\nreload_connections false\n"
         "sniffer_class_name X\nssl_version TLSv1_2\nslow_flush_log_threshold 20s", NULL},
        {"enable_ilm false\nrollover_index false", NULL},
        {"enable_ilm true", "parameter 'enable_ilm' is not supported by weir: weir does not bootstrap ILM"},
        {"rollover_index true", "parameter 'rollover_index' is not supported by weir"},
        {"parent_key p", NULL}, /* routing = the parent's id (the bulk case above) */
        {"parent_key $[", "bad record accessor '$['"},
        {"ssl_min_version TLSv1_2", "When you set 'ssl_min_version', must set 'ssl_max_version' together."},
        {"ssl_min_version TLSv1_3\nssl_max_version TLSv1_2", "ssl_min_version is newer than ssl_max_version"},
        {"ssl_min_version TLS12\nssl_max_version TLSv1_3", "valid options are TLSv1, TLSv1_1, TLSv1_2, TLSv1_3"},
        {"write_operation upsert", "write_operation upsert needs id_key"},
        {"pipeline p-${tag}", "placeholders are not supported"},
        {"cloud_id x:eHg=", "`cloud_auth` must be present if `cloud_id` is present"},
        {"cloud_id x:bm9wZQ==\ncloud_auth u:p", "is not NAME:base64"},
        {"custom_headers {\"Bad Name\":\"v\"}", "bad header 'Bad Name'"},
        {"type_name x\ntype_name y", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        output *o = mko_err(cases[i].params, err, sizeof err);
        if (!cases[i].error) {
            if (err[0])
                fail_msg("case %zu: unexpected error %s", i, err);
            assert_non_null(o);
        } else if (!strstr(err, cases[i].error)) {
            fail_msg("case %zu: got '%s', want '%s'", i, err, cases[i].error);
        }
        if (o)
            output_destroy(o);
    }
    /* cloud_id: the node and the credentials */
    output *o = mko("cloud_id my:ZXUtd2VzdC0xLmF3cy5mb3VuZC5pbyRhYmMxMjMkZGVmNDU2\ncloud_auth elastic:secret");
    out_es *c = o->ctx;
    assert_int_equal(c->nbases, 1);
    assert_string_equal(c->bases[0], "https://abc123.eu-west-1.aws.found.io:443");
    assert_string_equal(c->user, "elastic");
    assert_string_equal(c->password, "secret");
    output_destroy(o);
    /* TLS versions and headers reach the context */
    o = mko("ssl_min_version TLSv1_1\nssl_max_version TLSv1_2\ncustom_headers {\"X-A\":\"1\",\"X-B\":\"two\"}\n"
            "api_key k");
    c = o->ctx;
    assert_int_equal(c->tls_min, 11);
    assert_int_equal(c->tls_max, 12);
    assert_string_equal(c->headers[0], "Content-Type: application/x-ndjson");
    assert_string_equal(c->headers[1], "Authorization: ApiKey k");
    assert_string_equal(c->headers[2], "X-A: 1");
    assert_string_equal(c->headers[3], "X-B: two");
    assert_null(c->headers[4]);
    assert_string_equal(c->json_headers[0], "Content-Type: application/json");
    output_destroy(o);
}

/* customize_template, use_legacy_template and templates pick the text and the API (template.c). */
static void test_templates(void **st)
{
    char path[] = "/tmp/weir-es-tmpl-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *t = "{\"index_patterns\":[\"<<P>>-*\"],\"template\":{\"settings\":{\"number_of_shards\":1}}}";
    assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
    close(fd);
    char params[512];
    snprintf(params, sizeof params, "template_name a\ntemplate_file %s\ncustomize_template {\"<<P>>\":\"LOGS\"}\n"
             "templates {\"b\":\"%s\"}", path, path);
    output *o = mko(params);
    out_es *c = o->ctx;
    assert_int_equal(c->ntmpl, 2);
    assert_string_equal(c->tmpl_url[0], "/_index_template/a");
    assert_string_equal(c->tmpl_url[1], "/_index_template/b");
    assert_non_null(strstr(c->tmpl_body[0], "[\"logs-*\"]"));
    output_destroy(o);
    snprintf(params, sizeof params, "template_name a\ntemplate_file %s\nuse_legacy_template true", path);
    o = mko(params);
    c = o->ctx;
    assert_string_equal(c->tmpl_url[0], "/_template/a");
    output_destroy(o);
    unlink(path);
}

/* Which whole-request answers go to the next host (hosts.c). */
static void test_next_host_statuses(void **st)
{
    static const long yes[] = {401, 403, 408, 429, 500, 502, 503, 504};
    static const long no[] = {0, 200, 201, 400, 404, 409, 413};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        if (!es_status_next_host(yes[i]))
            fail_msg("%ld should go to the next host", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        if (es_status_next_host(no[i]))
            fail_msg("%ld should not go to the next host", no[i]);
}

int main(void)
{
    wlog_level = WLOG_ERROR + 1; /* init's info line and the malformed-response errors are expected */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_names),
        cmocka_unit_test(test_index_config_errors),
        cmocka_unit_test(test_bulk_bodies),
        cmocka_unit_test(test_generate_id),
        cmocka_unit_test(test_response_items),
        cmocka_unit_test(test_response_truncated),
        cmocka_unit_test(test_response_whole),
        cmocka_unit_test(test_next_host_statuses),
        cmocka_unit_test(test_plugin_params),
        cmocka_unit_test(test_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
