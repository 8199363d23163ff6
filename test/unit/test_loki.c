/*
 * Unit tests: the Loki output's pure logic (outputs/loki/), otherwise only
 * reached through a real Loki: the u64 map (lib/u64map), label names and a
 * record's label set, the cardinality guard and its counters, the push
 * bodies (JSON byte for byte; protobuf decoded back from snappy and compared
 * with a hand-built PushRequest), and what a 400 names.
 *
 * Outputs are built from configuration text (output_create), so the label,
 * metadata and line settings are the plugin's own; nothing is sent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <event2/buffer.h>
#include <snappy-c.h>

#include "lib/batch.h"
#include "lib/log.h"
#include "lib/u64map.h"
#include "lib/wbuf.h"
#include "config/conf.h"
#include "aggregator/output.h"
#include "outputs/loki/encode.h"
#include "outputs/loki/guard.h"
#include "outputs/loki/labels.h"
#include "outputs/loki/loki.h"
#include "outputs/loki/request.h"
#include "outputs/loki/status.h"
#include "filter_test_util.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static output *mk_loki_errs(const char *body, conf_errors *errs)
{
    char text[4096];
    snprintf(text, sizeof text, "<match t.**>\n@type loki\n@id lk\n%s\n</match>\n", body);
    conf_node *root = conf_parse_string(text, "t.conf", errs);
    assert_non_null(root);
    output *o = output_create(root->children[0], "t.**", 0, errs);
    conf_free(root);
    return o;
}

static output *mk_loki(const char *body)
{
    conf_errors errs = {0};
    output *o = mk_loki_errs(body, &errs);
    for (size_t i = 0; i < errs.n; i++)
        print_error("unexpected config error: %s\n", errs.msgs[i]);
    assert_int_equal(errs.n, 0);
    assert_non_null(o);
    conf_errors_free(&errs);
    return o;
}

typedef struct trec {
    uint32_t sec, nsec;
    const char *json;
} trec;

/* A batch of tag "t.x" holding recs (records as JSON). */
static batch *mk_batch(const trec *recs, size_t n)
{
    wbuf w = {0};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(batch_put_entry_head(&w, recs[i].sec, recs[i].nsec, NULL, 0), 0);
        wbuf m = J(recs[i].json);
        wbuf_add(&w, m.data, m.len);
        wbuf_free(&m);
    }
    size_t len;
    uint8_t *data = wbuf_steal(&w, &len);
    return batch_new("t.x", 3, data, len, (uint32_t)n);
}

/* The first record of recs as an entry (the batch stays alive in *b). */
static entry first_entry(batch **b, const char *json)
{
    trec r = {1, 0, json};
    *b = mk_batch(&r, 1);
    batch_iter it;
    entry e;
    batch_iter_init(&it, *b);
    assert_int_equal(batch_iter_next(&it, &e), 1);
    return e;
}

static char *wbuf_cstr(const wbuf *w)
{
    char *s = malloc(w->len + 1);
    if (w->len)
        memcpy(s, w->data, w->len);
    s[w->len] = 0;
    return s;
}

static void assert_labels_text(const lk_labels *ls, const char *want)
{
    wbuf t = {0};
    assert_int_equal(lk_labels_text(ls, &t), 0);
    char *got = wbuf_cstr(&t);
    assert_string_equal(got, want);
    free(got);
    wbuf_free(&t);
}

/* ---- lib/u64map --------------------------------------------------------------------------- */

static void test_u64map_table(void **st)
{
    static const struct {
        uint64_t key, val;
        int added;        /* expected from the insert */
        uint64_t same_as; /* a key that must find the same slot (0: none) */
    } steps[] = {
        {5, 50, 1, 0},
        {1029, 60, 1, 0},            /* same home slot as 5 at capacity 1024: probes on */
        {5, 51, 0, 0},               /* present: not added, value overwritten below */
        {0, 70, 1, 1},               /* key 0 is stored as 1 ... */
        {1, 71, 0, 0},               /* ... so 1 is the same key */
        {UINT64_MAX, 80, 1, 0},
        {0x8000000000000000ull, 90, 1, 0},
    };
    u64map m = {0};
    assert_null(u64map_at(&m, 5, 0, NULL)); /* empty: lookups allocate nothing */
    assert_int_equal(m.cap, 0);
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int added = -1;
        uint64_t *v = u64map_at(&m, steps[i].key, 1, &added);
        assert_non_null(v);
        assert_int_equal(added, steps[i].added);
        *v = steps[i].val;
        assert_ptr_equal(u64map_at(&m, steps[i].key, 0, NULL), v);
        if (steps[i].same_as)
            assert_ptr_equal(u64map_at(&m, steps[i].same_as, 0, NULL), v);
    }
    assert_int_equal(m.n, 5);
    assert_int_equal(m.cap, 1024);
    assert_int_equal(*u64map_at(&m, 5, 0, NULL), 51);
    assert_int_equal(*u64map_at(&m, 1029, 0, NULL), 60);
    assert_int_equal(*u64map_at(&m, 0, 0, NULL), 71);
    assert_int_equal(*u64map_at(&m, UINT64_MAX, 0, NULL), 80);
    assert_null(u64map_at(&m, 6, 0, NULL));
    assert_null(u64map_at(&m, 1024 + 6, 0, NULL));
    assert_int_equal(m.n, 5); /* lookups without add insert nothing */
    u64map_free(&m);
    assert_null(m.keys);
    assert_int_equal(m.n, 0);
    assert_int_equal(m.cap, 0);
    assert_null(u64map_at(&m, 5, 0, NULL));
}

static void test_u64map_grow(void **st)
{
    u64map m = {0};
    /* keys that share low bits, so probing and rehashing both work */
    for (uint64_t i = 0; i < 3000; i++) {
        int added;
        uint64_t *v = u64map_at(&m, (i << 20) | 7, 1, &added);
        assert_non_null(v);
        assert_int_equal(added, 1);
        *v = i * 3;
        /* 70 % load: 716 keys fit in 1024 slots, the 717th doubles the table */
        if (i == 715)
            assert_int_equal(m.cap, 1024);
        if (i == 716)
            assert_int_equal(m.cap, 2048);
        assert_true(m.n * 10 <= m.cap * 7);
    }
    assert_int_equal(m.n, 3000);
    assert_int_equal(m.cap, 8192);
    for (uint64_t i = 0; i < 3000; i++) {
        uint64_t *v = u64map_at(&m, (i << 20) | 7, 0, NULL);
        assert_non_null(v);
        assert_int_equal(*v, i * 3);
    }
    assert_null(u64map_at(&m, (3000ull << 20) | 7, 0, NULL));
    u64map_free(&m);
}

/* ---- label names ---------------------------------------------------------------------------- */

static void test_label_name_valid(void **st)
{
    static const struct {
        const char *name;
        int ok;
    } cases[] = {
        {"app", 1},   {"_x", 1},     {"A9_b", 1},   {"__name__", 1}, {"a1", 1},  {"", 0},
        {"9a", 0},    {"0", 0},      {"a-b", 0},    {"a.b", 0},      {"a b", 0}, {"a/b", 0},
        {"caf\xc3\xa9", 0}, {"a:b", 0}, {"_", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (lk_label_name_valid(cases[i].name) != cases[i].ok)
            print_error("label name '%s': want %d\n", cases[i].name, cases[i].ok);
        assert_int_equal(lk_label_name_valid(cases[i].name), cases[i].ok);
    }
}

static void test_label_name_sanitize(void **st)
{
    static const struct {
        const char *in;
        size_t cap;
        const char *want;
    } cases[] = {
        {"app", 64, "app"},
        {"app.kubernetes.io/name", 64, "app_kubernetes_io_name"},
        {"pod-template-hash", 64, "pod_template_hash"},
        {"9lives", 64, "_9lives"},
        {"caf\xc3\xa9", 64, "caf__"},
        {"", 64, ""},
        {"abcdef", 4, "abc"},  /* truncated to cap - 1 */
        {"9abc", 3, "_9"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        size_t n = lk_label_name_sanitize(out, cases[i].cap, (const uint8_t *)cases[i].in, strlen(cases[i].in));
        assert_string_equal(out, cases[i].want);
        assert_int_equal(n, strlen(cases[i].want));
        /* what sanitising makes is a valid name (or nothing) */
        if (n)
            assert_true(lk_label_name_valid(out));
    }
}

static void test_label_config_errors(void **st)
{
    static const struct {
        const char *body, *want; /* want: a fragment of the single error */
    } cases[] = {
        {"<label>\n  a-b $.x\n</label>",
         "t.conf:5: invalid label name 'a-b' in <label>: Loki label names are [a-zA-Z_][a-zA-Z0-9_]*"},
        {"<label>\n  9x\n</label>", "invalid label name '9x' in <label>"},
        {"<label>\n  ok $.[\n</label>", "invalid record accessor '$.[' for 'ok' in <label>"},
        {"<label>\n  <sub>\n  </sub>\n</label>", "<label> takes no sub-section <sub>"},
        {"extra_labels {\"env\":\"dev\",\"bad.name\":\"x\"}", "invalid label name 'bad.name' in extra_labels"},
        {"extra_labels [1,2]", "extra_labels"},
        {"extra_labels env:dev,bad-name:x", "invalid label name 'bad-name' in extra_labels"},
        {"max_label_sets 0", "max_label_sets must be at least 1"},
        /* fluent-plugin-grafana-loki's TLS and header parameters */
        {"min_version SSLv3", "min_version must be TLS1, TLS1_1, TLS1_2 or TLS1_3"},
        {"custom_headers {\"Bad Name\":\"v\"}", "bad header 'Bad Name'"},
        {"compress zstd", "compress must be gzip, snappy or none (got 'zstd')"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        conf_errors errs = {0};
        output *o = mk_loki_errs(cases[i].body, &errs);
        if (errs.n != 1 || !strstr(errs.msgs[0], cases[i].want))
            for (size_t k = 0; k < errs.n; k++)
                print_error("case %zu: got error: %s\n", i, errs.msgs[k]);
        assert_null(o);
        assert_int_equal(errs.n, 1);
        assert_non_null(strstr(errs.msgs[0], cases[i].want));
        conf_errors_free(&errs);
    }
    /* structured metadata names are not label names: any key is fine */
    output *o = mk_loki("<structured_metadata>\n  trace-id $.t\n</structured_metadata>");
    output_destroy(o);
    /* accepted: Ruby's and OpenSSL's TLS names, custom headers, compress gzip (compressed, as without it) */
    o = mk_loki("min_version TLS1_2\nciphers ECDHE-RSA-AES128-GCM-SHA256\ncustom_headers X-Team:a\ncompress gzip");
    out_loki *c = o->ctx;
    assert_int_equal(c->custom_headers.n, 1);
    assert_string_equal(c->ciphers, "ECDHE-RSA-AES128-GCM-SHA256");
    assert_int_equal(c->ent.compress, 1);
    output_destroy(o);
    o = mk_loki("compress none");
    assert_int_equal(((out_loki *)o->ctx)->ent.compress, 0);
    output_destroy(o);
    o = mk_loki("");
    assert_int_equal(((out_loki *)o->ctx)->ent.compress, 1);
    output_destroy(o);
}

/* ---- a record's label set --------------------------------------------------------------- */

static void test_label_sets(void **st)
{
    static const struct {
        const char *conf, *record, *text, *json;
        int thread;
    } cases[] = {
        /* nothing applies: job="weir" (Loki refuses a stream without labels) */
        {"include_thread_label false", "{\"msg\":\"x\"}", "{job=\"weir\"}", "{\"job\":\"weir\"}", 0},
        /* the thread label, on by default */
        {"", "{\"msg\":\"x\"}", "{fluentd_thread=\"flush_thread_3\"}", NULL, 3},
        /* bare name and accessor; sorted by name */
        {"include_thread_label false\n<label>\n  ns $.k.ns\n  app\n</label>",
         "{\"app\":\"web\",\"k\":{\"ns\":\"prod\"},\"msg\":\"x\"}", "{app=\"web\", ns=\"prod\"}",
         "{\"app\":\"web\",\"ns\":\"prod\"}", 0},
        /* missing, nil and empty values add no label */
        {"include_thread_label false\n<label>\n  app\n  ns $.k.ns\n  lvl\n</label>",
         "{\"app\":null,\"k\":{\"ns\":\"\"}}", "{job=\"weir\"}", NULL, 0},
        /* non-string values: their Ruby to_s */
        {"include_thread_label false\n<label>\n  n\n  b\n  f\n</label>", "{\"n\":42,\"b\":true,\"f\":1.5}",
         "{b=\"true\", f=\"1.5\", n=\"42\"}", NULL, 0},
        /* extra_labels (JSON scalars as text), with labels and the thread label */
        {"extra_labels {\"env\":\"dev\",\"shard\":3}\n<label>\n  app\n</label>", "{\"app\":\"web\"}",
         "{app=\"web\", env=\"dev\", fluentd_thread=\"flush_thread_0\", shard=\"3\"}", NULL, 0},
        /* ... or Fluentd's k:v form */
        {"include_thread_label false\nextra_labels env: dev , team:payments", "{\"x\":1}",
         "{env=\"dev\", team=\"payments\"}", NULL, 0},
        /* equal names: the last added wins (extra, kubernetes, <label>, thread) */
        {"include_thread_label false\nextra_labels {\"app\":\"static\"}\n<label>\n  app\n</label>",
         "{\"app\":\"web\"}", "{app=\"web\"}", NULL, 0},
        {"include_thread_label false\nextra_labels {\"app\":\"static\"}\n<label>\n  app\n</label>", "{\"x\":1}",
         "{app=\"static\"}", NULL, 0},
        /* Kubernetes labels, names sanitised */
        {"include_thread_label false\nextract_kubernetes_labels true",
         "{\"kubernetes\":{\"labels\":{\"app.kubernetes.io/name\":\"api\",\"9tier\":\"db\",\"e\":\"\"}}}",
         "{_9tier=\"db\", app_kubernetes_io_name=\"api\"}", NULL, 0},
        {"include_thread_label false\nextract_kubernetes_labels true", "{\"kubernetes\":{\"labels\":\"no map\"}}",
         "{job=\"weir\"}", NULL, 0},
        /* values quoted as Go does (what Loki prints), JSON-escaped in the JSON form */
        {"include_thread_label false\n<label>\n  app\n</label>", "{\"app\":\"a\\\"b\\\\c\\nd\\u0001\"}",
         "{app=\"a\\\"b\\\\c\\nd\\x01\"}", "{\"app\":\"a\\\"b\\\\c\\nd\\u0001\"}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        output *o = mk_loki(cases[i].conf);
        out_loki *c = o->ctx;
        batch *b;
        entry e = first_entry(&b, cases[i].record);
        lk_labels ls = {0};
        assert_int_equal(lk_labels_build(&c->lab, &ls, &e, cases[i].thread), 0);
        assert_labels_text(&ls, cases[i].text);
        if (cases[i].json) {
            wbuf j = {0};
            assert_int_equal(lk_labels_json(&ls, &j), 0);
            char *got = wbuf_cstr(&j);
            assert_string_equal(got, cases[i].json);
            free(got);
            wbuf_free(&j);
        }
        /* the same set built again (scratch reused) prints and hashes the same */
        uint64_t h = lk_labels_hash(&ls);
        assert_int_equal(lk_labels_build(&c->lab, &ls, &e, cases[i].thread), 0);
        assert_labels_text(&ls, cases[i].text);
        assert_int_equal(lk_labels_hash(&ls), h);
        lk_labels_free(&ls);
        batch_unref(b);
        output_destroy(o);
    }
}

/* Labels from the record may be replaced by the guard, static ones never. */
static void test_label_dynamic_flags(void **st)
{
    output *o = mk_loki("extra_labels {\"env\":\"dev\"}\n<label>\n  app\n</label>");
    out_loki *c = o->ctx;
    batch *b;
    entry e = first_entry(&b, "{\"app\":\"web\"}");
    lk_labels ls = {0};
    assert_int_equal(lk_labels_build(&c->lab, &ls, &e, 1), 0);
    assert_int_equal(ls.nkv, 3); /* app, env, fluentd_thread */
    static const struct {
        const char *name;
        int dyn;
    } want[] = {{"app", 1}, {"env", 0}, {"fluentd_thread", 0}};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(ls.kv[i].nlen, strlen(want[i].name));
        assert_memory_equal(ls.sc.data + ls.kv[i].noff, want[i].name, ls.kv[i].nlen);
        assert_int_equal(ls.kv[i].dyn, want[i].dyn);
    }
    lk_labels_free(&ls);
    batch_unref(b);
    output_destroy(o);
}

/* ---- the cardinality guard ------------------------------------------------------------------ */

static uint64_t name_overflow(lk_guard *g, const char *name)
{
    for (size_t i = 0; i < g->nnm; i++)
        if (!strcmp(g->nm[i].name, name))
            return g->nm[i].overflow;
    return 0;
}

static char *metrics_text(output *o)
{
    struct evbuffer *ev = evbuffer_new();
    output *outs[1] = {o};
    o->plugin->metrics(outs, 1, ev);
    size_t n = evbuffer_get_length(ev);
    char *s = malloc(n + 1);
    evbuffer_remove(ev, s, n);
    s[n] = 0;
    evbuffer_free(ev);
    return s;
}

/*
 * max_label_sets 2, <label> a_level and z_pod (record values), extra_labels
 * env (static). Each step: a record, the label set sent, and the guard's
 * state after it: sets held, replacements in all, of z_pod, of a_level.
 */
static void test_guard(void **st)
{
    static const struct {
        const char *record, *sent;
        size_t sets;
        uint64_t total, pod, level;
    } steps[] = {
        /* under the cap: every new set passes as it is */
        {"{\"a_level\":\"info\",\"z_pod\":\"p1\"}", "{a_level=\"info\", env=\"prod\", z_pod=\"p1\"}", 1, 0, 0, 0},
        {"{\"a_level\":\"warn\",\"z_pod\":\"p2\"}", "{a_level=\"warn\", env=\"prod\", z_pod=\"p2\"}", 2, 0, 0, 0},
        /* at the cap: known sets still pass */
        {"{\"a_level\":\"info\",\"z_pod\":\"p1\"}", "{a_level=\"info\", env=\"prod\", z_pod=\"p1\"}", 2, 0, 0, 0},
        /* a value never seen is replaced; the set made of known values is new: remembered */
        {"{\"a_level\":\"info\",\"z_pod\":\"p3\"}", "{a_level=\"info\", env=\"prod\", z_pod=\"__overflow__\"}", 3,
         1, 1, 0},
        /* ... and reused */
        {"{\"a_level\":\"info\",\"z_pod\":\"p4\"}", "{a_level=\"info\", env=\"prod\", z_pod=\"__overflow__\"}", 3,
         2, 2, 0},
        {"{\"a_level\":\"error\",\"z_pod\":\"p1\"}", "{a_level=\"__overflow__\", env=\"prod\", z_pod=\"p1\"}", 4, 3,
         2, 1},
        /* a new combination of known values loses its most diverse label (tie: the first by name) */
        {"{\"a_level\":\"warn\",\"z_pod\":\"p1\"}", "{a_level=\"__overflow__\", env=\"prod\", z_pod=\"p1\"}", 4, 4,
         2, 2},
        /* both values unseen: both replaced, one after the other */
        {"{\"a_level\":\"debug\",\"z_pod\":\"p9\"}",
         "{a_level=\"__overflow__\", env=\"prod\", z_pod=\"__overflow__\"}", 5, 6, 3, 3},
        /* no label from the record: nothing to replace, the static set passes */
        {"{\"msg\":\"x\"}", "{env=\"prod\"}", 6, 6, 3, 3},
        {"{\"z_pod\":\"p7\"}", "{env=\"prod\", z_pod=\"__overflow__\"}", 7, 7, 4, 3},
    };
    output *o = mk_loki("max_label_sets 2\ninclude_thread_label false\nextra_labels {\"env\":\"prod\"}\n"
                        "<label>\n  a_level\n  z_pod\n</label>");
    out_loki *c = o->ctx;
    lk_labels ls = {0};
    lk_guard_memo memo = {0};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        batch *b;
        entry e = first_entry(&b, steps[i].record);
        assert_int_equal(lk_labels_build(&c->lab, &ls, &e, 0), 0);
        lk_guard_apply(&c->guard, &ls, &memo, o->id);
        assert_labels_text(&ls, steps[i].sent);
        assert_int_equal(c->guard.sets.n, steps[i].sets);
        assert_int_equal(c->guard.overflow_total, steps[i].total);
        assert_int_equal(name_overflow(&c->guard, "z_pod"), steps[i].pod);
        assert_int_equal(name_overflow(&c->guard, "a_level"), steps[i].level);
        assert_int_equal(name_overflow(&c->guard, "env"), 0);
        batch_unref(b);
    }
    lk_labels_free(&ls);
    /* the counts, as /metrics shows them */
    char *m = metrics_text(o);
    static const char *const want[] = {
        "weir_loki_label_sets{output=\"lk\"} 7\n",
        "weir_loki_label_overflow_total{output=\"lk\",label=\"\"} 7\n",
        "weir_loki_label_overflow_total{output=\"lk\",label=\"a_level\"} 3\n",
        "weir_loki_label_overflow_total{output=\"lk\",label=\"z_pod\"} 4\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(m, want[i]))
            print_error("metrics lack %s in:\n%s", want[i], m);
        assert_non_null(strstr(m, want[i]));
    }
    assert_null(strstr(m, "label=\"env\""));
    free(m);
    output_destroy(o);
}

/* Beyond the cap, the most diverse label goes first, whatever its name. */
static void test_guard_most_diverse(void **st)
{
    static const struct {
        const char *record, *sent;
    } steps[] = {
        {"{\"a\":\"1\",\"b\":\"x\"}", "{a=\"1\", b=\"x\"}"},
        {"{\"a\":\"1\",\"b\":\"y\"}", "{a=\"1\", b=\"y\"}"},
        {"{\"a\":\"2\",\"b\":\"z\"}", "{a=\"2\", b=\"z\"}"}, /* cap: a has 2 values, b 3 */
        {"{\"a\":\"2\",\"b\":\"x\"}", "{a=\"2\", b=\"__overflow__\"}"},
        {"{\"a\":\"3\",\"b\":\"new\"}", "{a=\"__overflow__\", b=\"__overflow__\"}"},
        {"{\"a\":\"1\",\"b\":\"new\"}", "{a=\"1\", b=\"__overflow__\"}"},
    };
    output *o = mk_loki("max_label_sets 3\ninclude_thread_label false\n<label>\n  a\n  b\n</label>");
    out_loki *c = o->ctx;
    lk_labels ls = {0};
    lk_guard_memo memo = {0};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        batch *b;
        entry e = first_entry(&b, steps[i].record);
        assert_int_equal(lk_labels_build(&c->lab, &ls, &e, 0), 0);
        lk_guard_apply(&c->guard, &ls, &memo, o->id);
        assert_labels_text(&ls, steps[i].sent);
        batch_unref(b);
    }
    lk_labels_free(&ls);
    output_destroy(o);
}

/* The guard as the write applies it: records of one batch, through lk_collect. */
static void test_guard_in_collect(void **st)
{
    output *o = mk_loki("max_label_sets 1\ninclude_thread_label false\nencoding json\n<label>\n  app\n</label>");
    out_loki *c = o->ctx;
    static const trec recs[] = {
        {10, 0, "{\"app\":\"a\",\"m\":1}"},
        {11, 0, "{\"app\":\"b\",\"m\":2}"},
        {12, 0, "{\"app\":\"c\",\"m\":3}"},
        {13, 0, "{\"app\":\"a\",\"m\":4}"},
    };
    batch *b = mk_batch(recs, 4);
    lk_req r = {0};
    out_result res = {.n = 4};
    uint32_t nbad = 0;
    assert_int_equal(lk_collect(o, &r, b, &res, &nbad), 0);
    assert_int_equal(nbad, 0);
    assert_null(res.status);
    assert_int_equal(r.nstreams, 2); /* {app="a"} and {app="__overflow__"} */
    wbuf body = {0};
    assert_int_equal(lk_body_json(&r, 0, r.nrecs, &body), 0);
    char *got = wbuf_cstr(&body);
    assert_string_equal(got, "{\"streams\":["
                             "{\"stream\":{\"app\":\"a\"},\"values\":[[\"10000000000\",\"m=1\"],"
                             "[\"13000000000\",\"m=4\"]]},"
                             "{\"stream\":{\"app\":\"__overflow__\"},\"values\":[[\"11000000000\",\"m=2\"],"
                             "[\"12000000000\",\"m=3\"]]}]}");
    assert_int_equal(c->guard.overflow_total, 2);
    free(got);
    wbuf_free(&body);
    lk_req_free(&r);
    out_result_free(&res);
    batch_unref(b);
    output_destroy(o);
}

/* ---- lines -------------------------------------------------------------------------------- */

static void test_lines(void **st)
{
    static const struct {
        const char *conf, *record, *line;
    } cases[] = {
        {"", "{\"msg\":\"hello\",\"n\":1}", "msg=hello n=1"},
        /* key_value: values with a space or '=' quoted, '"' and '\' escaped */
        {"", "{\"msg\":\"a b\",\"eq\":\"x=y\",\"q\":\"say \\\"hi\\\"\",\"nil\":null}",
         "msg=\"a b\" eq=\"x=y\" q=\"say \\\"hi\\\"\" nil="},
        {"", "{\"q\":\"a\\\"b\",\"bs\":\"c:\\\\d\"}", "q=a\\\"b bs=c:\\\\d"},
        /* nested values: their JSON (rec_value_to_s), '"' escaped */
        {"", "{\"h\":{\"k\":\"v\"},\"a\":[1,\"x y\"]}", "h={\\\"k\\\":\\\"v\\\"} a=\"[1,\\\"x y\\\"]\""},
        {"line_format json", "{\"msg\":\"hello\",\"n\":1}", "{\"msg\":\"hello\",\"n\":1}"},
        /* label and metadata keys and remove_keys leave the line */
        {"line_format json\nremove_keys k8s,$.a.b\n<label>\n  app\n</label>\n"
         "<structured_metadata>\n  trace_id\n</structured_metadata>",
         "{\"app\":\"web\",\"trace_id\":\"t\",\"k8s\":{},\"a\":{\"b\":1,\"c\":2},\"msg\":\"m\"}",
         "{\"a\":{\"c\":2},\"msg\":\"m\"}"},
        {"drop_single_key true", "{\"log\":\"just the line\"}", "just the line"},
        {"drop_single_key true", "{\"log\":\"x\",\"n\":1}", "log=x n=1"},
        {"drop_single_key true\n<label>\n  app\n</label>", "{\"app\":\"web\",\"log\":\"only\"}", "only"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        output *o = mk_loki(cases[i].conf);
        trec rec = {1, 0, cases[i].record};
        batch *b = mk_batch(&rec, 1);
        lk_req r = {0};
        out_result res = {.n = 1};
        uint32_t nbad = 0;
        assert_int_equal(lk_collect(o, &r, b, &res, &nbad), 0);
        assert_int_equal(r.nrecs, 1);
        char *got = malloc(r.recs[0].line_len + 1);
        memcpy(got, r.lines.data + r.recs[0].line_off, r.recs[0].line_len);
        got[r.recs[0].line_len] = 0;
        if (strcmp(got, cases[i].line))
            print_error("case %zu\n", i);
        assert_string_equal(got, cases[i].line);
        free(got);
        lk_req_free(&r);
        out_result_free(&res);
        batch_unref(b);
        output_destroy(o);
    }
}

/* ---- bodies ------------------------------------------------------------------------------- */

/*
 * 2 streams x 2 entries, out of order in the batch, one entry with
 * structured metadata in each stream, one line longer than 127 bytes (a
 * two-byte length), a time with and one without nanoseconds.
 */
static const char LONG_MSG[] = "0123456789012345678901234567890123456789012345678901234567890123456789"
                               "0123456789012345678901234567890123456789012345678901234567890123456789";
#define BODY_CONF "include_thread_label false\nline_format json\n<label>\n  app\n</label>\n" \
                  "<structured_metadata>\n  trace_id\n  pod $.k.pod\n</structured_metadata>"

static batch *body_batch(void)
{
    static char long_rec[256];
    snprintf(long_rec, sizeof long_rec, "{\"app\":\"db\",\"msg\":\"%s\"}", LONG_MSG);
    const trec recs[] = {
        {1700000001, 5, "{\"app\":\"web\",\"msg\":\"b\",\"trace_id\":\"t1\",\"k\":{\"pod\":\"p-1\"}}"},
        {1700000000, 0, long_rec},
        {1700000000, 7, "{\"app\":\"web\",\"msg\":\"a\"}"},
        {1700000002, 0, "{\"app\":\"db\",\"msg\":\"y\",\"trace_id\":\"t2\"}"},
    };
    return mk_batch(recs, 4);
}

static void collect_body_batch(output *o, lk_req *r, batch **b, out_result *res)
{
    *b = body_batch();
    res->n = 4;
    uint32_t nbad = 0;
    assert_int_equal(lk_collect(o, r, *b, res, &nbad), 0);
    assert_int_equal(nbad, 0);
    assert_int_equal(r->nrecs, 4);
    assert_int_equal(r->nstreams, 2);
    assert_int_equal(r->ntenants, 1);
}

static void test_body_json(void **st)
{
    output *o = mk_loki(BODY_CONF "\nencoding json");
    lk_req r = {0};
    batch *b;
    out_result res = {0};
    collect_body_batch(o, &r, &b, &res);
    wbuf body = {0};
    assert_int_equal(lk_body_json(&r, 0, r.nrecs, &body), 0);
    char want[2048];
    snprintf(want, sizeof want,
             "{\"streams\":["
             "{\"stream\":{\"app\":\"web\"},\"values\":["
             "[\"1700000000000000007\",\"{\\\"msg\\\":\\\"a\\\"}\"],"
             "[\"1700000001000000005\",\"{\\\"msg\\\":\\\"b\\\",\\\"k\\\":{}}\",{\"trace_id\":\"t1\",\"pod\":\"p-1\"}]"
             "]},"
             "{\"stream\":{\"app\":\"db\"},\"values\":["
             "[\"1700000000000000000\",\"{\\\"msg\\\":\\\"%s\\\"}\"],"
             "[\"1700000002000000000\",\"{\\\"msg\\\":\\\"y\\\"}\",{\"trace_id\":\"t2\"}]"
             "]}]}",
             LONG_MSG);
    char *got = wbuf_cstr(&body);
    assert_string_equal(got, want);
    free(got);
    wbuf_free(&body);
    lk_req_free(&r);
    out_result_free(&res);
    batch_unref(b);
    output_destroy(o);
}

/* A hand-built protobuf, message by message (sizes from the built parts,
 * not precomputed as the encoder does). */
static void pb_varint_t(wbuf *b, uint64_t v)
{
    while (v >= 0x80) {
        wbuf_addc(b, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    wbuf_addc(b, (uint8_t)v);
}
static void pb_len_t(wbuf *b, int field, const void *p, size_t n)
{
    pb_varint_t(b, (uint64_t)field << 3 | 2);
    pb_varint_t(b, n);
    wbuf_add(b, p, n);
}
static void pb_msg_t(wbuf *b, int field, wbuf *m) /* appends and frees m */
{
    pb_len_t(b, field, m->data, m->len);
    wbuf_free(m);
}
static void pb_uint_t(wbuf *b, int field, uint64_t v)
{
    pb_varint_t(b, (uint64_t)field << 3);
    pb_varint_t(b, v);
}

typedef struct pb_entry_t {
    uint32_t sec, nsec;
    const char *line;
    const char *meta[2][2]; /* structured metadata pairs, NULL-ended */
} pb_entry_t;

static void pb_stream_t(wbuf *push, const char *labels, const pb_entry_t *es, size_t n)
{
    wbuf stream = {0};
    pb_len_t(&stream, 1, labels, strlen(labels)); /* StreamAdapter.labels */
    for (size_t i = 0; i < n; i++) {
        wbuf ent = {0}, ts = {0};
        pb_uint_t(&ts, 1, es[i].sec); /* Timestamp.seconds */
        if (es[i].nsec)
            pb_uint_t(&ts, 2, es[i].nsec); /* Timestamp.nanos (0: absent, proto3) */
        pb_msg_t(&ent, 1, &ts);            /* EntryAdapter.timestamp */
        pb_len_t(&ent, 2, es[i].line, strlen(es[i].line));
        for (size_t k = 0; k < 2 && es[i].meta[k][0]; k++) {
            wbuf pair = {0};
            pb_len_t(&pair, 1, es[i].meta[k][0], strlen(es[i].meta[k][0]));
            pb_len_t(&pair, 2, es[i].meta[k][1], strlen(es[i].meta[k][1]));
            pb_msg_t(&ent, 3, &pair); /* EntryAdapter.structuredMetadata */
        }
        pb_msg_t(&stream, 2, &ent); /* StreamAdapter.entries */
    }
    pb_msg_t(push, 1, &stream); /* PushRequest.streams */
}

static void unsnappy(const wbuf *in, wbuf *out)
{
    size_t n;
    assert_int_equal(snappy_uncompressed_length((const char *)in->data, in->len, &n), SNAPPY_OK);
    assert_int_equal(wbuf_grow(out, n + 1), 0);
    assert_int_equal(snappy_uncompress((const char *)in->data, in->len, (char *)out->data, &n), SNAPPY_OK);
    out->len = n;
}

static void test_body_protobuf(void **st)
{
    output *o = mk_loki(BODY_CONF); /* encoding protobuf: the default */
    lk_req r = {0};
    batch *b;
    out_result res = {0};
    collect_body_batch(o, &r, &b, &res);
    wbuf raw = {0}, body = {0}, plain = {0}, want = {0};
    size_t raw_len = 0;
    assert_int_equal(lk_body_protobuf(&r, 0, r.nrecs, 1, &raw, &body, &raw_len), 0);
    assert_true(body.len > 0);
    unsnappy(&body, &plain);

    char long_line[256];
    snprintf(long_line, sizeof long_line, "{\"msg\":\"%s\"}", LONG_MSG);
    const pb_entry_t web[] = {
        {1700000000, 7, "{\"msg\":\"a\"}", {{NULL, NULL}}},
        {1700000001, 5, "{\"msg\":\"b\",\"k\":{}}", {{"trace_id", "t1"}, {"pod", "p-1"}}},
    };
    const pb_entry_t db[] = {
        {1700000000, 0, long_line, {{NULL, NULL}}},
        {1700000002, 0, "{\"msg\":\"y\"}", {{"trace_id", "t2"}, {NULL, NULL}}},
    };
    pb_stream_t(&want, "{app=\"web\"}", web, 2);
    pb_stream_t(&want, "{app=\"db\"}", db, 2);

    assert_int_equal(plain.len, want.len);
    assert_memory_equal(plain.data, want.data, want.len);
    assert_int_equal(raw.len, want.len); /* raw: the body before snappy */
    assert_int_equal(raw_len, want.len);
    assert_memory_equal(raw.data, want.data, want.len);
    assert_true(body.len < want.len); /* compressed: the lines repeat */

    /* compress none: the same PushRequest as one snappy literal that libsnappy
     * decodes: the varint length, then (a body over 256 bytes and under 64 KiB)
     * tag 61 and two bytes of length - 1 */
    assert_true(want.len > 255 && want.len < 65536);
    wbuf lit = {0};
    raw_len = 0;
    assert_int_equal(lk_body_protobuf(&r, 0, r.nrecs, 0, &raw, &lit, &raw_len), 0);
    assert_int_equal(raw_len, want.len);
    assert_int_equal(raw.len, 0); /* written straight into the body */
    size_t vl = want.len < 16384 ? 2 : 3;
    assert_int_equal(lit.len, vl + 3 + want.len);
    assert_int_equal(lit.data[vl], 61 << 2);
    assert_int_equal(lit.data[vl + 1] | lit.data[vl + 2] << 8, want.len - 1);
    plain.len = 0;
    unsnappy(&lit, &plain);
    assert_int_equal(plain.len, want.len);
    assert_memory_equal(plain.data, want.data, want.len);
    wbuf_free(&lit);

    /* the builder above, checked once against bytes written out by hand */
    wbuf tiny = {0};
    const pb_entry_t one[] = {{1, 0, "m=x", {{NULL, NULL}}}};
    pb_stream_t(&tiny, "{job=\"weir\"}", one, 1);
    static const uint8_t tiny_want[] = {
        0x0a, 0x19,                                                             /* streams, 25 bytes */
        0x0a, 0x0c, '{', 'j', 'o', 'b', '=', '"', 'w', 'e', 'i', 'r', '"', '}', /* labels */
        0x12, 0x09,                                                             /* entries, 9 bytes */
        0x0a, 0x02, 0x08, 0x01,                                                 /* timestamp {seconds 1} */
        0x12, 0x03, 'm', '=', 'x',                                              /* line */
    };
    assert_int_equal(tiny.len, sizeof tiny_want);
    assert_memory_equal(tiny.data, tiny_want, sizeof tiny_want);
    wbuf_free(&tiny);

    wbuf_free(&raw);
    wbuf_free(&body);
    wbuf_free(&plain);
    wbuf_free(&want);
    lk_req_free(&r);
    out_result_free(&res);
    batch_unref(b);
    output_destroy(o);
}

/* The same tiny request through the plugin's encoder: exactly the bytes above. */
static void test_body_protobuf_tiny(void **st)
{
    output *o = mk_loki("include_thread_label false");
    trec rec = {1, 0, "{\"m\":\"x\"}"};
    batch *b = mk_batch(&rec, 1);
    lk_req r = {0};
    out_result res = {.n = 1};
    uint32_t nbad = 0;
    assert_int_equal(lk_collect(o, &r, b, &res, &nbad), 0);
    wbuf raw = {0}, body = {0}, plain = {0};
    size_t raw_len;
    assert_int_equal(lk_body_protobuf(&r, 0, r.nrecs, 1, &raw, &body, &raw_len), 0);
    unsnappy(&body, &plain);
    static const uint8_t want[] = {0x0a, 0x19, 0x0a, 0x0c, '{', 'j', 'o', 'b', '=', '"', 'w', 'e', 'i', 'r',
                                   '"',  '}',  0x12, 0x09, 0x0a, 0x02, 0x08, 0x01, 0x12, 0x03, 'm', '=', 'x'};
    assert_int_equal(plain.len, sizeof want);
    assert_memory_equal(plain.data, want, sizeof want);
    /* compress none, a literal under 61 bytes: the length sits in the tag */
    assert_int_equal(lk_body_protobuf(&r, 0, r.nrecs, 0, &raw, &body, &raw_len), 0);
    assert_int_equal(body.len, 2 + sizeof want);
    assert_int_equal(body.data[0], sizeof want);
    assert_int_equal(body.data[1], (sizeof want - 1) << 2);
    assert_memory_equal(body.data + 2, want, sizeof want);
    plain.len = 0;
    unsnappy(&body, &plain);
    assert_memory_equal(plain.data, want, sizeof want);
    wbuf_free(&raw);
    wbuf_free(&body);
    wbuf_free(&plain);
    lk_req_free(&r);
    out_result_free(&res);
    batch_unref(b);
    output_destroy(o);
}

/* Tenants: one request's records are a contiguous run, tenants in order of appearance. */
static void test_tenants(void **st)
{
    output *o = mk_loki("include_thread_label false\ntenant ${$.team}\ndefault_tenant ops\nencoding json");
    static const trec recs[] = {
        {3, 0, "{\"team\":\"b\",\"m\":1}"},
        {2, 0, "{\"team\":\"a\",\"m\":2}"},
        {1, 0, "{\"m\":3}"},
        {0, 0, "{\"team\":\"b\",\"m\":4}"},
    };
    batch *b = mk_batch(recs, 4);
    lk_req r = {0};
    out_result res = {.n = 4};
    uint32_t nbad = 0;
    assert_int_equal(lk_collect(o, &r, b, &res, &nbad), 0);
    assert_int_equal(r.ntenants, 3);
    static const char *const names[] = {"b", "a", "ops"};
    static const uint32_t idx[] = {3, 0, 1, 2}; /* tenant b (time order), a, ops */
    for (size_t t = 0; t < 3; t++)
        assert_string_equal((const char *)r.text.data + r.tenants[t], names[t]);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(r.recs[i].idx, idx[i]);
    lk_req_free(&r);
    out_result_free(&res);
    batch_unref(b);
    output_destroy(o);
}

/* The write's order, checked against its definition on 600 records of 3
 * tenants x 7 streams with times that repeat and go back: by tenant (in
 * order of appearance), stream, time, then batch order; every record once. */
static void test_sort_order(void **st)
{
    output *o = mk_loki("include_thread_label false\ntenant ${$.team}\nencoding json\n<label>\n  app\n</label>");
    enum { N = 600 };
    static trec recs[N];
    static char json[N][64];
    uint32_t seed = 12345;
    for (size_t i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        uint32_t x = seed >> 8;
        snprintf(json[i], sizeof json[i], "{\"team\":\"t%u\",\"app\":\"a%u\",\"m\":%zu}", x % 3, (x / 3) % 7, i);
        /* mostly rising, every fifth record back in time, some equal */
        recs[i] = (trec){(uint32_t)(1000 + i / 4 - (i % 5 == 0 ? 7 : 0)), (x / 21) % 3, json[i]};
    }
    batch *b = mk_batch(recs, N);
    lk_req r = {0};
    out_result res = {.n = N};
    uint32_t nbad = 0;
    assert_int_equal(lk_collect(o, &r, b, &res, &nbad), 0);
    assert_int_equal(r.nrecs, N);
    assert_int_equal(r.ntenants, 3);
    assert_int_equal(r.nstreams, 21);
    static int seen[N];
    memset(seen, 0, sizeof seen);
    for (size_t i = 0; i < N; i++) {
        const lk_rec *a = &r.recs[i];
        assert_true(a->idx < N && !seen[a->idx]);
        seen[a->idx] = 1;
        assert_int_equal(a->sec, recs[a->idx].sec);
        if (!i)
            continue;
        const lk_rec *p = &r.recs[i - 1];
        uint32_t ta = r.streams[a->stream].tenant, tp = r.streams[p->stream].tenant;
        assert_true(tp <= ta);
        if (tp < ta)
            continue;
        assert_true(p->stream <= a->stream);
        if (p->stream < a->stream)
            continue;
        assert_true(p->sec < a->sec || (p->sec == a->sec && (p->nsec < a->nsec || (p->nsec == a->nsec && p->idx < a->idx))));
    }
    lk_req_free(&r);
    out_result_free(&res);
    batch_unref(b);
    output_destroy(o);
}

/* ---- Loki's answer ----------------------------------------------------------------------- */

static void test_status_classes(void **st)
{
    static const struct {
        long status;
        int transport_error, want;
    } cases[] = {
        {200, 0, LK_DELIVERED}, {204, 0, LK_DELIVERED}, {0, 1, LK_RETRY},     {0, 0, LK_RETRY},
        {429, 0, LK_RETRY},     {500, 0, LK_RETRY},     {503, 0, LK_RETRY},   {401, 0, LK_RETRY},
        {403, 0, LK_RETRY},     {404, 0, LK_RETRY},     {407, 0, LK_RETRY},   {408, 0, LK_RETRY},
        {400, 0, LK_REJECTED},  {413, 0, LK_REJECTED},  {422, 0, LK_REJECTED}, {409, 0, LK_REJECTED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_req q = {.status = cases[i].status, .transport_error = cases[i].transport_error};
        assert_int_equal(lk_status(&q), cases[i].want);
    }
}

static void test_reject(void **st)
{
    static const struct {
        long status;
        const char *resp;
        size_t nrej;
        int web, db; /* OUT_ERROR expected for that stream's records */
        const char *reason_web; /* fragment of the reason of a web record */
    } cases[] = {
        /* names the web stream (Loki added service_name): only its records */
        {400,
         "entry with timestamp 2023-11-14 22:13:20.000000007 +0000 UTC ignored, reason: 'entry too far behind' "
         "for stream: {app=\"web\", service_name=\"web\"},\ntotal ignored: 2 out of 4\n",
         2, 1, 0, "for stream: {app=\"web\", service_name=\"web\"}"},
        {400, "stream '{app=\"db\"}' has invalid labels\n", 2, 0, 1, NULL},
        /* a set that does not hold all of the stream's labels names nothing: all records */
        {400, "for stream: {app=\"webx\"}\n", 4, 1, 1, "loki: HTTP 400: for stream: {app=\"webx\"}"},
        {400, "for stream: {myapp=\"web\"}\n", 4, 1, 1, "loki: HTTP 400: for stream: {myapp=\"web\"}"},
        {400, "bad request\n", 4, 1, 1, "loki: HTTP 400: bad request"},
        /* other 4xx: the whole request, whatever the message */
        {413, "stream '{app=\"web\"}' too large\n", 4, 1, 1, "loki: HTTP 413"},
    };
    output *o = mk_loki(BODY_CONF);
    lk_req r = {0};
    batch *b;
    out_result res0 = {0};
    collect_body_batch(o, &r, &b, &res0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        http_req q = {.status = cases[i].status};
        wbuf_add(&q.resp, cases[i].resp, strlen(cases[i].resp) + 1);
        q.resp.len--; /* NUL-terminated, as the client leaves it */
        char why[512];
        lk_excerpt(why, sizeof why, &q);
        out_result res = {.n = 4};
        assert_int_equal(lk_reject(&r, &q, 0, r.nrecs, why, &res), cases[i].nrej);
        assert_non_null(res.status);
        for (size_t k = 0; k < r.nrecs; k++) {
            int web = r.streams[r.recs[k].stream].lab_len == strlen("{app=\"web\"}");
            uint32_t x = r.recs[k].idx;
            assert_int_equal(res.status[x], (web ? cases[i].web : cases[i].db) ? OUT_ERROR : OUT_OK);
            if (web && cases[i].reason_web) {
                assert_non_null(res.reasons[x]);
                if (!strstr(res.reasons[x], cases[i].reason_web))
                    print_error("reason: %s\n", res.reasons[x]);
                assert_non_null(strstr(res.reasons[x], cases[i].reason_web));
            }
        }
        out_result_free(&res);
        http_req_clear(&q);
    }
    lk_req_free(&r);
    out_result_free(&res0);
    batch_unref(b);
    output_destroy(o);
}

int main(void)
{
    wlog_level = WLOG_ERROR; /* the guard's warnings are expected here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_u64map_table),
        cmocka_unit_test(test_u64map_grow),
        cmocka_unit_test(test_label_name_valid),
        cmocka_unit_test(test_label_name_sanitize),
        cmocka_unit_test(test_label_config_errors),
        cmocka_unit_test(test_label_sets),
        cmocka_unit_test(test_label_dynamic_flags),
        cmocka_unit_test(test_guard),
        cmocka_unit_test(test_guard_most_diverse),
        cmocka_unit_test(test_guard_in_collect),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_body_json),
        cmocka_unit_test(test_body_protobuf),
        cmocka_unit_test(test_body_protobuf_tiny),
        cmocka_unit_test(test_tenants),
        cmocka_unit_test(test_sort_order),
        cmocka_unit_test(test_status_classes),
        cmocka_unit_test(test_reject),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
