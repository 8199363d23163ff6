/* Unit tests: the request and message parsing of the http input
 * (aggregator/inputs/http_body.c) and, below, the syslog input's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/batch.h"
#include "lib/json.h"
#include "aggregator/inputs/http.h"
#include "aggregator/inputs/syslog.h"

#include "filter_test_util.h"

__attribute__((unused)) static wbuf (*const unused_j)(const char *) = J;

/* the entries as "SEC.NSEC JSON" lines */
static char *entries_text(const wbuf *w)
{
    static char out[8192];
    size_t o = 0;
    out[0] = 0;
    const uint8_t *p = w->data, *end = w->data + w->len;
    entry e;
    while (p && p < end && batch_next(&p, end, &e) == 1) {
        char *j = M2J(e.record, e.record_len);
        o += (size_t)snprintf(out + o, sizeof out - o, "%u.%09u %s\n", e.sec, e.nsec, j);
        free(j);
    }
    return out;
}

static int events(const http_opts *o, const char *query, const char *ctype, const char *body, const char *env_remote,
                  char **text)
{
    http_params env = {0}, p = {0};
    http_params_set(&env, "HTTP_X_A", 8, "1", 1);
    if (env_remote)
        http_params_set(&env, "REMOTE_ADDR", 11, env_remote, strlen(env_remote));
    assert_int_equal(http_params_collect(&p, query, ctype, (const uint8_t *)body, strlen(body), o->custom != NULL,
                                         o->add_query_params, &env),
                     0);
    wbuf w = {0};
    uint32_t n = 0;
    char err[256];
    int rc = http_request_events(o, &p, (const uint8_t *)body, strlen(body), 100, 7, &w, &n, err, sizeof err);
    *text = rc == 200 ? entries_text(&w) : err;
    if (rc == 200) {
        uint32_t c = 0;
        for (char *q = *text; *q; q++)
            c += *q == '\n';
        assert_int_equal(c, n);
    }
    wbuf_free(&w);
    http_params_free(&env);
    http_params_free(&p);
    return rc;
}

static void test_http_query_and_tag(void **st)
{
    http_params p = {0};
    assert_int_equal(http_params_query(&p, "a=1&b=x+y%21;c&a=2", 18), 0);
    assert_int_equal(p.n, 3);
    assert_string_equal(http_params_get(&p, "a")->v, "2"); /* replaced in its place */
    assert_string_equal(p.v[0].k, "a");
    assert_string_equal(http_params_get(&p, "b")->v, "x y!");
    assert_string_equal(http_params_get(&p, "c")->v, "");
    http_params_free(&p);
    char tag[64];
    http_path_tag("/a/b/c", 6, tag, sizeof tag);
    assert_string_equal(tag, "a.b.c");
    http_path_tag("/a.b//", 6, tag, sizeof tag);
    assert_string_equal(tag, "a.b");
    http_path_tag("/x//y", 5, tag, sizeof tag);
    assert_string_equal(tag, "x..y");
}

static void test_http_bodies(void **st)
{
    http_opts o = {0};
    char *t;
    assert_int_equal(events(&o, NULL, "application/json", "{\"a\":1,\"time\":5.25}", NULL, &t), 200);
    assert_string_equal(t, "5.250000000 {\"a\":1}\n");
    assert_int_equal(events(&o, "time=7.5", "application/json", "[{\"a\":1,\"time\":5},{\"b\":2}]", NULL, &t), 200);
    assert_string_equal(t, "7.500000000 {\"a\":1,\"time\":5}\n7.500000000 {\"b\":2}\n");
    assert_int_equal(events(&o, "time=0", "application/json", "{\"a\":1}", NULL, &t), 200);
    assert_string_equal(t, "100.000000007 {\"a\":1}\n"); /* 0: now */
    assert_int_equal(events(&o, NULL, "application/x-www-form-urlencoded", "json=%7B%22f%22%3Anull%7D", NULL, &t),
                     200);
    assert_string_equal(t, "100.000000007 {\"f\":null}\n");
    assert_int_equal(events(&o, NULL, "application/x-ndjson", "{\"n\":1}\r\n{\"n\":2}\n\n", NULL, &t), 200);
    assert_string_equal(t, "100.000000007 {\"n\":1}\n100.000000007 {\"n\":2}\n");
    /* in_http's answers for what it cannot use */
    assert_int_equal(events(&o, NULL, "application/json", "{bad", NULL, &t), 200);
    assert_string_equal(t, "");
    assert_int_equal(events(&o, NULL, "text/plain", "x", NULL, &t), 400);
    assert_string_equal(t, "'json', 'ndjson' or 'msgpack' parameter is required");
    assert_int_equal(events(&o, NULL, "application/json", "[{\"a\":1},2]", NULL, &t), 400);
    assert_int_equal(events(&o, NULL, "application/json", "{\"time\":\"x\"}", NULL, &t), 400);
    assert_int_equal(events(&o, NULL, "application/x-ndjson", "{\"n\":1}\n\n{\"n\":2}", NULL, &t), 400);
    /* msgpack: the first object */
    wbuf m = {0};
    mpw_map(&m, 1);
    mpw_str(&m, "m", 1);
    mpw_int(&m, 3);
    mpw_int(&m, 9);
    wbuf_addc(&m, 0);
    assert_int_equal(events(&o, NULL, "application/msgpack", (const char *)m.data, NULL, &t), 200);
    assert_string_equal(t, "100.000000007 {\"m\":3}\n");
    wbuf_free(&m);
}

static void test_http_added_keys(void **st)
{
    http_opts o = {1, 1, 1, NULL, NULL};
    char *t;
    assert_int_equal(events(&o, "x-y=2", "application/json", "{\"a\":1,\"HTTP_X_A\":0}", "10.0.0.1", &t), 200);
    assert_string_equal(t, "100.000000007 {\"a\":1,\"HTTP_X_A\":\"1\",\"QUERY_X_Y\":\"2\",\"REMOTE_ADDR\":\"10.0.0.1\"}\n");
    assert_int_equal(events(&o, NULL, "application/json", "{\"a\":1}", NULL, &t), 200);
    assert_string_equal(t, "100.000000007 {\"a\":1,\"HTTP_X_A\":\"1\",\"REMOTE_ADDR\":null}\n");
}


/* ---- syslog ----------------------------------------------------------------------------------------- */

static char *sl_json(const syslog_parser *p, const char *msg, int *rc)
{
    static char out[2048];
    syslog_fields f;
    *rc = syslog_parse(p, msg, strlen(msg), &f);
    if (*rc)
        return NULL;
    wbuf w = {0};
    assert_int_equal(syslog_record(&f, NULL, 0, &w), 0);
    char *j = M2J(w.data, w.len);
    snprintf(out, sizeof out, "%d %s", f.pri, j);
    free(j);
    wbuf_free(&w);
    return out;
}

static void test_syslog_parse(void **st)
{
    syslog_parser p;
    char err[256];
    int rc;
    assert_int_equal(syslog_parser_init(&p, SL_AUTO, 1, NULL, NULL, 0, err, sizeof err), 0);
    assert_string_equal(sl_json(&p, "<34>Oct 11 22:14:15 mymachine su: 'su root' failed", &rc),
                        "34 {\"host\":\"mymachine\",\"ident\":\"su\",\"message\":\"'su root' failed\"}");
    assert_string_equal(sl_json(&p, "<13>Feb  5 17:32:18 h app[123]: hi\r", &rc),
                        "13 {\"host\":\"h\",\"ident\":\"app\",\"pid\":\"123\",\"message\":\"hi\"}");
    assert_string_equal(sl_json(&p, "<165>1 2003-10-11T22:14:15.003Z host app - ID47 [x@1 a=\"b\"] event", &rc),
                        "165 {\"host\":\"host\",\"ident\":\"app\",\"pid\":\"-\",\"msgid\":\"ID47\","
                        "\"extradata\":\"[x@1 a=\\\"b\\\"]\",\"message\":\"event\"}");
    syslog_fields f;
    const char *m5 = "<14>1 2024-01-02T03:04:05+01:00 h app 42 - -";
    assert_int_equal(syslog_parse(&p, m5, strlen(m5), &f), 0);
    assert_int_equal(f.sec, 1704161045); /* 02:04:05 UTC */
    assert_null(f.f[SL_MESSAGE]);
    assert_null(sl_json(&p, "no pri", &rc));
    assert_int_equal(rc, -1);
    assert_null(sl_json(&p, "<14>1 notatime h a p m -", &rc));
    assert_int_equal(rc, -2);
    assert_null(sl_json(&p, "<14>Oct", &rc));
    assert_int_equal(rc, -2);
    syslog_parser_free(&p);
    assert_string_equal(syslog_facility(34), "auth");
    assert_string_equal(syslog_severity(34), "crit");
    assert_null(syslog_facility(999));
}

static void test_syslog_frame(void **st)
{
    const char *m;
    size_t ml;
    assert_int_equal(syslog_frame("abc\ndef", 7, 0, "\n", 1, &m, &ml), 4);
    assert_int_equal(ml, 3);
    assert_int_equal(syslog_frame("abc", 3, 0, "\n", 1, &m, &ml), 0);
    assert_int_equal(syslog_frame("5 hello6 world!", 15, 1, NULL, 0, &m, &ml), 7);
    assert_memory_equal(m, "hello", 5);
    assert_int_equal(syslog_frame("5 hel", 5, 1, NULL, 0, &m, &ml), 0);
    assert_int_equal(syslog_frame("x5 hello", 8, 1, NULL, 0, &m, &ml), -1);
    assert_int_equal(syslog_frame(NULL, 0, 0, "\n", 1, &m, &ml), 0); /* nothing read yet */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_query_and_tag),
        cmocka_unit_test(test_http_bodies),
        cmocka_unit_test(test_http_added_keys),
        cmocka_unit_test(test_syslog_parse),
        cmocka_unit_test(test_syslog_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
