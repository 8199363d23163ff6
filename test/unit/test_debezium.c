/*
 * Unit tests: the debezium filter (aggregator/filters/debezium.c) on
 * Debezium-shaped change events: create, update, delete + tombstone,
 * snapshot read, truncate, message; with and without the JsonConverter
 * {schema, payload} wrapper; the envelope as the record, as a map under a
 * key and as JSON text in a string; every option; malformed input.
 *
 * Events are written as JSON with single quotes (turned into double quotes);
 * results are compared as the exact JSON text of the record written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config/conf.h"
#include "aggregator/filter.h"
#include "aggregator/record.h"
#include "filter_test_util.h"

/* A postgres update, a mysql create and delete, a snapshot read, a truncate (Debezium 2.x shapes). */
#define PG_SOURCE                                                                                                    \
    "'source':{'version':'2.5.0.Final','connector':'postgresql','name':'dbserver1','ts_ms':1700000000000,"         \
    "'snapshot':'false','db':'inventory','sequence':'[null,\\'24023128\\']','schema':'public','table':'customers',"  \
    "'txId':555,'lsn':24023128,'xmin':null}"
#define UPDATE                                                                                                       \
    "{'before':{'id':1001,'first_name':'Sally','email':'sally.thomas@acme.com'},"                                    \
    "'after':{'id':1001,'first_name':'Sally','email':'sally@example.com'}," PG_SOURCE ",'op':'u',"                   \
    "'ts_ms':1700000000250,'transaction':{'id':'555:24023128','total_order':3,'data_collection_order':1}}"
#define MY_SOURCE                                                                                                    \
    "'source':{'version':'2.5.0.Final','connector':'mysql','name':'shop','ts_ms':1700000100000,'snapshot':'false',"  \
    "'db':'shop','table':'orders','server_id':223344,'gtid':null,'file':'mysql-bin.000003','pos':154,'row':0,"     \
    "'thread':7,'query':null}"
#define CREATE "{'before':null,'after':{'id':7,'total':12.5,'status':'new'}," MY_SOURCE ",'op':'c','ts_ms':1700000100042}"
#define DELETE "{'before':{'id':7,'total':12.5,'status':'paid'},'after':null," MY_SOURCE ",'op':'d','ts_ms':1700000100100}"
#define READ                                                                                                         \
    "{'before':null,'after':{'id':1,'name':'a'},'source':{'connector':'postgresql','ts_ms':1700000000000,"          \
    "'snapshot':'true','db':'inventory','schema':'public','table':'t','lsn':10},'op':'r','ts_ms':1700000000900}"
#define TRUNCATE                                                                                                     \
    "{'source':{'connector':'postgresql','ts_ms':1700000000000,'db':'inventory','schema':'public','table':"        \
    "'customers','txId':9,'lsn':33},'op':'t','ts_ms':1700000000007}"

#define PG_META                                                                                                      \
    "\"__source\":{\"connector\":\"postgresql\",\"name\":\"dbserver1\",\"ts_ms\":1700000000000,\"snapshot\":"       \
    "\"false\",\"db\":\"inventory\",\"schema\":\"public\",\"table\":\"customers\",\"txId\":555,\"lsn\":24023128}"
#define MY_META                                                                                                      \
    "\"__source\":{\"connector\":\"mysql\",\"name\":\"shop\",\"ts_ms\":1700000100000,\"snapshot\":\"false\","       \
    "\"db\":\"shop\",\"table\":\"orders\",\"gtid\":null,\"file\":\"mysql-bin.000003\",\"pos\":154}"

static char *sq(const char *s)
{
    char *b = strdup(s);
    for (char *p = b; *p; p++)
        if (*p == '\'')
            *p = '"';
    return b;
}

/* "@type debezium" and params, as a <filter cdc.**> of dbz.conf (params from line 3) */
static const char *body(const char *params)
{
    static char b[2048];
    snprintf(b, sizeof b, "@type debezium\n%s", params);
    return b;
}

static filter *dbz_errs(const char *params, conf_errors *errs)
{
    return filter_from_body("cdc.**", body(params), "dbz.conf", 0, errs);
}

static filter *dbz(const char *params)
{
    filter *f = filter_from_body_ok("cdc.**", body(params), "dbz.conf", 0);
    assert_non_null(f);
    return f;
}

/* Run f on the msgpack rec; the JSON of the result (the input for KEEP/DROP/ERROR), err copied out. */
static int run_mp(filter *f, const uint8_t *rec, size_t len, char **json, char *err)
{
    wbuf out = {0}, sc = {0};
    wbuf_add(&out, "Z", 1);       /* the filter appends */
    wbuf_add(&sc, "garbage", 7); /* scratch is the filter's to reset */
    filter_call call = {.tag = "cdc.x", .tag_len = 5, .sec = 1700000000, .out = &out, .scratch = &sc};
    int rc = f->plugin->filter(f, &call, rec, len);
    assert_memory_equal(out.data, "Z", 1);
    if (rc == FILTER_MODIFY)
        *json = M2J(out.data + 1, out.len - 1);
    else {
        assert_int_equal(out.len, 1);
        *json = M2J(rec, len);
    }
    if (err)
        memcpy(err, call.err, sizeof call.err);
    if (rc == FILTER_ERROR)
        assert_true(strncmp(call.err, "debezium: ", 10) == 0);
    wbuf_free(&out);
    wbuf_free(&sc);
    return rc;
}

/* in: single-quoted JSON; want: the exact JSON written (MODIFY), or NULL for DROP */
static void check(filter *f, const char *in, const char *want)
{
    char *j = sq(in), *got;
    wbuf rec = J(j);
    int rc = run_mp(f, rec.data, rec.len, &got, NULL);
    if (want) {
        assert_int_equal(rc, FILTER_MODIFY);
        assert_string_equal(got, want);
    } else {
        assert_int_equal(rc, FILTER_DROP);
    }
    free(got);
    free(j);
    wbuf_free(&rec);
}

static void check_error(filter *f, const char *in, const char *want_err)
{
    char *j = sq(in), *got, err[256];
    wbuf rec = J(j);
    int rc = run_mp(f, rec.data, rec.len, &got, err);
    assert_int_equal(rc, FILTER_ERROR);
    assert_string_equal(err, want_err);
    free(got);
    free(j);
    wbuf_free(&rec);
}

/* {key: text} with text a JSON string value (quotes escaped by jansson) */
static wbuf in_string(const char *key, const char *text_sq)
{
    char *t = sq(text_sq);
    json_t *o = json_pack("{s:s}", key, t);
    char *s = json_dumps(o, 0);
    wbuf b = J(s);
    free(s);
    json_decref(o);
    free(t);
    return b;
}

/* ---- the ops, unwrapped with the defaults ---------------------------------------------------- */

static void test_update(void **state)
{
    filter *f = dbz("");
    check(f, UPDATE,
          "{\"id\":1001,\"first_name\":\"Sally\",\"email\":\"sally@example.com\",\"__action\":\"update\"," PG_META
          ",\"__lag_ms\":250,\"__deleted\":false}");
    filter_destroy(f);
}

static void test_create_delete_tombstone(void **state)
{
    filter *f = dbz("");
    check(f, CREATE, "{\"id\":7,\"total\":12.5,\"status\":\"new\",\"__action\":\"create\"," MY_META
                     ",\"__lag_ms\":42,\"__deleted\":false}");
    /* a delete becomes its before row, flagged */
    check(f, DELETE, "{\"id\":7,\"total\":12.5,\"status\":\"paid\",\"__action\":\"delete\"," MY_META
                     ",\"__lag_ms\":100,\"__deleted\":true}");
    /* the tombstone that follows (Kafka null value): an empty record, a null payload, dropped */
    check(f, "{}", NULL);
    check(f, "{'schema':null,'payload':null}", NULL);
    /* a delete whose before is null (no replica identity): the metadata alone */
    check(f, "{'before':null,'after':null,'source':{'table':'t','ts_ms':5},'op':'d','ts_ms':9}",
          "{\"__action\":\"delete\",\"__source\":{\"table\":\"t\",\"ts_ms\":5},\"__lag_ms\":4,\"__deleted\":true}");
    filter_destroy(f);
}

static void test_read_truncate_message(void **state)
{
    filter *f = dbz("");
    check(f, READ, "{\"id\":1,\"name\":\"a\",\"__action\":\"read\",\"__source\":{\"connector\":\"postgresql\",\"ts_ms\":"
                   "1700000000000,\"snapshot\":\"true\",\"db\":\"inventory\",\"schema\":\"public\",\"table\":\"t\","
                   "\"lsn\":10},\"__lag_ms\":900,\"__deleted\":false}");
    /* truncate has no row: the record is the metadata (no deleted flag) */
    check(f, TRUNCATE, "{\"__action\":\"truncate\",\"__source\":{\"connector\":\"postgresql\",\"ts_ms\":1700000000000,"
                       "\"db\":\"inventory\",\"schema\":\"public\",\"table\":\"customers\",\"txId\":9,\"lsn\":33},"
                       "\"__lag_ms\":7}");
    check(f, "{'op':'m','ts_ms':3,'source':{'ts_ms':1,'lsn':2},'message':{'prefix':'p','content':'eA=='}}",
          "{\"__action\":\"message\",\"__source\":{\"ts_ms\":1,\"lsn\":2},\"__lag_ms\":2}");
    filter_destroy(f);
}

/* ---- where the envelope is --------------------------------------------------------------------- */

static void test_schema_wrapper(void **state)
{
    filter *f = dbz("");
    check(f,
          "{'schema':{'type':'struct','fields':[{'type':'struct','field':'before'}],'optional':false,'name':"
          "'dbserver1.public.customers.Envelope'},'payload':" UPDATE "}",
          "{\"id\":1001,\"first_name\":\"Sally\",\"email\":\"sally@example.com\",\"__action\":\"update\"," PG_META
          ",\"__lag_ms\":250,\"__deleted\":false}");
    filter_destroy(f);
}

static void test_envelope_key(void **state)
{
    filter *f = dbz("envelope_key message\ncopy_keys kafka_key,missing");
    const char *want = "{\"id\":7,\"total\":12.5,\"status\":\"new\",\"__action\":\"create\"," MY_META
                       ",\"__lag_ms\":42,\"__deleted\":false,\"kafka_key\":\"{\\\"id\\\":7}\"}";
    /* a map under the key, other keys carried by copy_keys */
    check(f, "{'kafka_key':'{\\'id\\':7}','message':" CREATE "}", want);
    /* JSON text in a string, with and without the wrapper */
    char *got;
    wbuf b = in_string("message", CREATE);
    assert_int_equal(run_mp(f, b.data, b.len, &got, NULL), FILTER_MODIFY);
    assert_string_equal(got, "{\"id\":7,\"total\":12.5,\"status\":\"new\",\"__action\":\"create\"," MY_META
                             ",\"__lag_ms\":42,\"__deleted\":false}");
    free(got);
    wbuf_free(&b);
    b = in_string("message", "  {'schema':null,'payload':" DELETE "}\n");
    assert_int_equal(run_mp(f, b.data, b.len, &got, NULL), FILTER_MODIFY);
    assert_string_equal(got, "{\"id\":7,\"total\":12.5,\"status\":\"paid\",\"__action\":\"delete\"," MY_META
                             ",\"__lag_ms\":100,\"__deleted\":true}");
    free(got);
    wbuf_free(&b);
    /* tombstones: an empty string (Kafka's null value as text), null, {} under the key */
    check(f, "{'message':'','kafka_key':'k'}", NULL);
    check(f, "{'message':' '}", NULL);
    check(f, "{'message':null}", NULL);
    check(f, "{'message':{}}", NULL);
    b = in_string("message", "null");
    assert_int_equal(run_mp(f, b.data, b.len, &got, NULL), FILTER_DROP);
    free(got);
    wbuf_free(&b);
    filter_destroy(f);

    /* a nested accessor */
    f = dbz("envelope_key $.kafka.value\nsource_key \"\"\nlag_key \"\"");
    check(f, "{'kafka':{'topic':'t','value':" READ "}}",
          "{\"id\":1,\"name\":\"a\",\"__action\":\"read\",\"__deleted\":false}");
    filter_destroy(f);
}

/* ---- options ------------------------------------------------------------------------------------ */

static void test_keys_renamed_or_off(void **state)
{
    filter *f = dbz("action_key op_name\nsource_key cdc\nlag_key lag\ndeleted_key is_deleted\nsource_fields db,table");
    check(f, DELETE, "{\"id\":7,\"total\":12.5,\"status\":\"paid\",\"op_name\":\"delete\",\"cdc\":{\"db\":\"shop\","
                     "\"table\":\"orders\"},\"lag\":100,\"is_deleted\":true}");
    filter_destroy(f);
    f = dbz("action_key \"\"\nsource_key \"\"\nlag_key \"\"\ndeleted_key \"\"");
    check(f, UPDATE, "{\"id\":1001,\"first_name\":\"Sally\",\"email\":\"sally@example.com\"}");
    filter_destroy(f);
    /* source_fields *: the whole source map */
    f = dbz("source_fields *\naction_key \"\"\nlag_key \"\"\ndeleted_key \"\"");
    check(f, READ, "{\"id\":1,\"name\":\"a\",\"__source\":{\"connector\":\"postgresql\",\"ts_ms\":1700000000000,"
                   "\"snapshot\":\"true\",\"db\":\"inventory\",\"schema\":\"public\",\"table\":\"t\",\"lsn\":10}}");
    filter_destroy(f);
    /* a row column named like an added key: the added value wins, in the column's place (Hash#merge) */
    f = dbz("source_key \"\"\nlag_key \"\"");
    check(f, "{'after':{'__action':'x','__deleted':'y','id':1},'op':'c'}",
          "{\"__action\":\"create\",\"__deleted\":false,\"id\":1}");
    filter_destroy(f);
}

static void test_delete_handling_mode(void **state)
{
    filter *f = dbz("delete_handling_mode drop\nsource_key \"\"");
    check(f, DELETE, NULL);
    check(f, CREATE, "{\"id\":7,\"total\":12.5,\"status\":\"new\",\"__action\":\"create\",\"__lag_ms\":42}");
    filter_destroy(f);
    f = dbz("delete_handling_mode none\nsource_key \"\"");
    check(f, DELETE, "{\"id\":7,\"total\":12.5,\"status\":\"paid\",\"__action\":\"delete\",\"__lag_ms\":100}");
    check(f, CREATE, "{\"id\":7,\"total\":12.5,\"status\":\"new\",\"__action\":\"create\",\"__lag_ms\":42}");
    filter_destroy(f);
}

static void test_keep_tombstones(void **state)
{
    filter *f = dbz("drop_tombstones false");
    check(f, "{}", "{\"__action\":\"tombstone\"}");
    check(f, "{'schema':null,'payload':null}", "{\"schema\":null,\"payload\":null,\"__action\":\"tombstone\"}");
    filter_destroy(f);
    f = dbz("drop_tombstones false\nenvelope_key log\naction_key \"\"");
    char *got;
    wbuf b = J("{\"log\":\"\",\"k\":1}");
    assert_int_equal(run_mp(f, b.data, b.len, &got, NULL), FILTER_KEEP);
    assert_string_equal(got, "{\"log\":\"\",\"k\":1}");
    free(got);
    wbuf_free(&b);
    filter_destroy(f);
}

static void test_add_fields(void **state)
{
    filter *f = dbz("add_fields op,table,lsn,source.ts_ms,ts_ms,id,total_order,db:database,transaction.data_collection_"
                    "order,nope,source.nope,before.email\naction_key \"\"\nsource_key \"\"\nlag_key \"\"");
    check(f, UPDATE,
          "{\"id\":1001,\"first_name\":\"Sally\",\"email\":\"sally@example.com\",\"__op\":\"u\",\"__table\":"
          "\"customers\",\"__lsn\":24023128,\"__source_ts_ms\":1700000000000,\"__ts_ms\":1700000000250,\"__id\":"
          "\"555:24023128\",\"__total_order\":3,\"__database\":\"inventory\",\"__transaction_data_collection_order\""
          ":1,\"__before_email\":\"sally.thomas@acme.com\",\"__deleted\":false}");
    filter_destroy(f);
    f = dbz("add_fields [\"op\", \"table\"]\nadd_fields_prefix cdc_\naction_key \"\"\nsource_key \"\"\nlag_key \"\"\n"
            "deleted_key \"\"");
    check(f, CREATE, "{\"id\":7,\"total\":12.5,\"status\":\"new\",\"cdc_op\":\"c\",\"cdc_table\":\"orders\"}");
    filter_destroy(f);
}

static void test_use_source_time(void **state)
{
    filter *f = dbz("use_source_time true\nsource_key \"\"\nlag_key \"\"\naction_key \"\"\ndeleted_key \"\"");
    static const struct {
        const char *in;
        uint32_t sec, nsec;
    } cases[] = {
        {CREATE, 1700000100, 0},
        {"{'op':'c','after':{},'source':{'ts_ms':1700000000123}}", 1700000000, 123000000},
        {"{'op':'c','after':{},'source':{'ts_ms':-5}}", 1700000000, 5}, /* kept */
        {"{'op':'c','after':{},'source':{'ts_ms':'x'}}", 1700000000, 5},
        {"{'op':'c','after':{}}", 1700000000, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *j = sq(cases[i].in);
        wbuf rec = J(j), out = {0}, sc = {0};
        filter_call call = {.sec = 1700000000, .nsec = 5, .out = &out, .scratch = &sc};
        assert_int_equal(f->plugin->filter(f, &call, rec.data, rec.len), FILTER_MODIFY);
        assert_int_equal(call.sec, cases[i].sec);
        assert_int_equal(call.nsec, cases[i].nsec);
        wbuf_free(&rec);
        wbuf_free(&out);
        wbuf_free(&sc);
        free(j);
    }
    filter_destroy(f);
}

static void test_no_unwrap(void **state)
{
    /* the envelope (payload, schema dropped) with the keys added; deletes are not rewritten */
    filter *f = dbz("unwrap false\nsource_key \"\"");
    check(f, "{'schema':{},'payload':" DELETE "}",
          "{\"before\":{\"id\":7,\"total\":12.5,\"status\":\"paid\"},\"after\":null,\"source\":{\"version\":"
          "\"2.5.0.Final\",\"connector\":\"mysql\",\"name\":\"shop\",\"ts_ms\":1700000100000,\"snapshot\":\"false\","
          "\"db\":\"shop\",\"table\":\"orders\",\"server_id\":223344,\"gtid\":null,\"file\":\"mysql-bin.000003\","
          "\"pos\":154,\"row\":0,\"thread\":7,\"query\":null},\"op\":\"d\",\"ts_ms\":1700000100100,\"__action\":"
          "\"delete\",\"__lag_ms\":100}");
    filter_destroy(f);
    f = dbz("unwrap false\nsource_key source\nsource_fields db,table\nlag_key \"\"\ndelete_handling_mode drop");
    check(f, TRUNCATE, "{\"source\":{\"db\":\"inventory\",\"table\":\"customers\"},\"op\":\"t\",\"ts_ms\":1700000000007,"
                       "\"__action\":\"truncate\"}");
    check(f, "{'op':'d','source':{'table':'x'},'before':{'id':1}}",
          "{\"op\":\"d\",\"source\":{\"table\":\"x\"},\"before\":{\"id\":1},\"__action\":\"delete\"}");
    filter_destroy(f);
}

/* ---- malformed ----------------------------------------------------------------------------------- */

static void test_malformed(void **state)
{
    filter *f = dbz("");
    check_error(f, "{'after':{'id':1}}", "debezium: no `op` in the envelope");
    check_error(f, "{'op':5,'after':{}}", "debezium: `op` is an integer, not a string");
    check_error(f, "{'op':'x','after':{}}", "debezium: unknown op 'x'");
    check_error(f, "{'op':'create','after':{}}", "debezium: unknown op 'create'");
    check_error(f, "{'op':'c','after':null}", "debezium: op 'c' without an `after` map");
    check_error(f, "{'op':'u','after':[1]}", "debezium: op 'u' without an `after` map");
    check_error(f, "{'op':'d','before':'x'}", "debezium: op 'd' without a `before` map");
    check_error(f, "{'schema':{},'payload':'text'}", "debezium: `payload` is a string, not a map");
    check_error(f, "{'schema':{},'payload':[]}", "debezium: `payload` is an array, not a map");
    /* an envelope whose source is not a map: no source or lag, still a row */
    check(f, "{'op':'c','after':{'a':1},'source':'x','ts_ms':1}",
          "{\"a\":1,\"__action\":\"create\",\"__deleted\":false}");
    filter_destroy(f);

    f = dbz("envelope_key message");
    check_error(f, "{'log':'x'}", "debezium: no `message` in the record");
    check_error(f, "{'message':'{\\'op\\':'}", "debezium: `message` is not valid JSON");
    check_error(f, "{'message':'not json'}", "debezium: `message` is not valid JSON");
    check_error(f, "{'message':'[1,2]'}", "debezium: `message` is an array, not a Debezium envelope (a map or JSON text)");
    check_error(f, "{'message':12}", "debezium: `message` is an integer, not a Debezium envelope (a map or JSON text)");
    check_error(f, "{'message':'{\\'op\\':\\'c\\'}'}", "debezium: op 'c' without an `after` map");
    filter_destroy(f);

    /* bytes that are not one msgpack map never crash: error */
    f = dbz("");
    static const uint8_t bad[][6] = {{0x81, 0xa2, 'o', 'p'}, {0x91, 0x01}, {0xc1}, {0x82, 0xa2, 'o', 'p', 0xa1, 'c'}};
    static const size_t badlen[] = {4, 2, 1, 6};
    for (size_t i = 0; i < 4; i++) {
        char *got, err[256];
        assert_int_equal(run_mp(f, bad[i], badlen[i], &got, err), FILTER_ERROR);
        free(got);
    }
    filter_destroy(f);
}

static void test_config_errors(void **state)
{
    static const struct {
        const char *params, *err;
    } cases[] = {
        {"add_fields a:", "dbz.conf:3: invalid add_fields entry 'a:' (field, struct.field, field:name)"},
        {"add_fields .x", "dbz.conf:3: invalid add_fields entry '.x' (field, struct.field, field:name)"},
        {"envelope_key $.[", NULL},
        {"delete_handling_mode rewrite-with-tombstone", NULL},
        {"drop_tombstone true", "dbz.conf:3: unknown parameter 'drop_tombstone' in <filter cdc.**>; did you mean "
                                "'drop_tombstones'?"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        conf_errors errs = {0};
        filter *f = dbz_errs(cases[i].params, &errs);
        assert_null(f);
        assert_int_equal(errs.n, 1);
        if (cases[i].err)
            assert_string_equal(errs.msgs[0], cases[i].err);
        conf_errors_free(&errs);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_create_delete_tombstone),
        cmocka_unit_test(test_read_truncate_message),
        cmocka_unit_test(test_schema_wrapper),
        cmocka_unit_test(test_envelope_key),
        cmocka_unit_test(test_keys_renamed_or_off),
        cmocka_unit_test(test_delete_handling_mode),
        cmocka_unit_test(test_keep_tombstones),
        cmocka_unit_test(test_add_fields),
        cmocka_unit_test(test_use_source_time),
        cmocka_unit_test(test_no_unwrap),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
