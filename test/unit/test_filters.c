/*
 * Unit tests: the filter registry (aggregator/filter.c) and every filter
 * plugin: grep, record_transformer, parser, kubernetes, trace, ecs.
 *
 * Records are written as JSON with single quotes (converted to double quotes)
 * and compared as JSON text of the resulting msgpack.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "lib/rx.h"
#include "config/conf.h"
#include "aggregator/filter.h"
#include "aggregator/record.h"
#include "filter_test_util.h"

/* ---- helpers ------------------------------------------------------------------------------ */

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

static filter *mkf_errs(const char *body, conf_errors *errs)
{
    return filter_from_body("app.**", body, "f.conf", 3, errs);
}

static filter *mkf(const char *body)
{
    filter *f = filter_from_body_ok("app.**", body, "f.conf", 3);
    assert_non_null(f);
    return f;
}

static void check_errors(const char *body, const char *const *want)
{
    conf_errors errs = {0};
    filter *f = mkf_errs(body, &errs);
    size_t n = 0;
    while (want[n])
        n++;
    if (errs.n != n)
        for (size_t i = 0; i < errs.n; i++)
            print_error("got error %zu: %s\n", i, errs.msgs[i]);
    assert_int_equal(errs.n, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(errs.msgs[i], want[i]);
    assert_null(f);
    conf_errors_free(&errs);
}
#define EXPECT_CONF_ERRORS(body, ...) check_errors(body, (const char *const[]){__VA_ARGS__, NULL})

typedef struct fres {
    int rc;
    char *json; /* the resulting record (the input for KEEP) */
    uint32_t sec, nsec;
    char err[256];
} fres;

static fres apply_t(filter *f, const char *tag, uint32_t sec, uint32_t nsec, const char *json_sq)
{
    fres r = {0};
    wbuf in = J(Q(json_sq)), out = {0}, sc = {0};
    wbuf_add(&out, "Z", 1);       /* a filter appends */
    wbuf_add(&sc, "garbage", 7); /* scratch is the filter's to reset */
    filter_call call = {.tag = tag, .tag_len = strlen(tag), .sec = sec, .nsec = nsec, .out = &out, .scratch = &sc};
    r.rc = f->plugin->filter(f, &call, in.data, in.len);
    r.sec = call.sec;
    r.nsec = call.nsec;
    memcpy(r.err, call.err, sizeof r.err);
    assert_memory_equal(out.data, "Z", 1);
    if (r.rc == FILTER_MODIFY || (r.rc == FILTER_ERROR_KEEP && out.len > 1))
        r.json = M2J(out.data + 1, out.len - 1);
    else
        r.json = M2J(in.data, in.len);
    wbuf_free(&in);
    wbuf_free(&out);
    wbuf_free(&sc);
    return r;
}

static fres apply(filter *f, const char *tag, const char *json_sq) { return apply_t(f, tag, 1700000000, 5, json_sq); }

static const char *rcname(int rc)
{
    static const char *const n[] = {"KEEP", "MODIFY", "DROP", "ERROR", "ERROR_KEEP"};
    return rc >= 0 && rc <= 4 ? n[rc] : "?";
}

static void expect(filter *f, const char *tag, const char *in, int want_rc, const char *want_json)
{
    fres r = apply(f, tag, in);
    if (r.rc != want_rc)
        fail_msg("%s on %s: got %s (%s) want %s", tag, in, rcname(r.rc), r.json, rcname(want_rc));
    if (want_json)
        assert_string_equal(r.json, Q(want_json));
    free(r.json);
}

#define MODIFY(f, tag, in, want) expect(f, tag, in, FILTER_MODIFY, want)
#define KEEP(f, tag, in) expect(f, tag, in, FILTER_KEEP, in)
#define DROP(f, tag, in) expect(f, tag, in, FILTER_DROP, NULL)

static void expect_error_rc(filter *f, const char *tag, const char *in, int want_rc, const char *reason)
{
    fres r = apply(f, tag, in);
    if (r.rc != want_rc)
        fail_msg("%s on %s: got %s (%s) want %s", tag, in, rcname(r.rc), r.json, rcname(want_rc));
    assert_string_equal(r.err, reason);
    free(r.json);
}
#define expect_error(f, tag, in, reason) expect_error_rc(f, tag, in, FILTER_ERROR, reason)
/* Fluentd's parser with reserve_data: a copy to @ERROR and the record kept */
#define expect_error_keep(f, tag, in, reason) expect_error_rc(f, tag, in, FILTER_ERROR_KEEP, reason)

/* ---- registry / filter_create ----------------------------------------------------------------- */

static void test_registry(void **st)
{
    static const char *const names[] = {"record_transformer", "grep", "parser", "kubernetes",
                                        "trace", "ecs", "record_modifier", "stdout", "prometheus", "debezium",
                                        "aggregate"};
    const char *const *v = filter_plugin_names();
    for (size_t i = 0; i < 11; i++) {
        assert_non_null(filter_plugin_find(names[i]));
        assert_string_equal(filter_plugin_find(names[i])->name, names[i]);
        assert_string_equal(v[i], names[i]);
    }
    assert_null(v[11]);
    assert_null(filter_plugin_find("nope"));

    filter *f = mkf("@type grep\n@id my_grep\n@log_level debug");
    assert_string_equal(f->id, "my_grep");
    assert_string_equal(f->pattern, "app.**");
    assert_ptr_equal(f->plugin, filter_plugin_find("grep"));
    filter_destroy(f);
    f = mkf("@type grep");
    assert_string_equal(f->id, "grep.3");
    filter_destroy(f);
    filter_destroy(NULL);

    conf_errors errs = {0};
    conf_node *root = conf_parse_string("<filter>\n@type ecs\n</filter>\n", "f.conf", &errs);
    f = filter_create(root->children[0], 0, &errs);
    assert_non_null(f);
    assert_string_equal(f->pattern, "**");
    filter_destroy(f);
    conf_free(root);
    conf_errors_free(&errs);
}

static void test_create_errors(void **st)
{
    EXPECT_CONF_ERRORS("@type grpe", "f.conf:2: unknown filter plugin 'grpe'; did you mean 'grep'?");
    EXPECT_CONF_ERRORS("@type record_transformr",
                       "f.conf:2: unknown filter plugin 'record_transformr'; did you mean 'record_transformer'?");
    EXPECT_CONF_ERRORS("@type zzzzzzzz", "f.conf:2: unknown filter plugin 'zzzzzzzz'");
    EXPECT_CONF_ERRORS("", "f.conf:1: missing @type in <filter app.**>");
    EXPECT_CONF_ERRORS("@type geoip", "f.conf:2: filter plugin 'geoip' is not supported by weir");
    EXPECT_CONF_ERRORS("@type ecs\ntimestmp false",
                       "f.conf:3: unknown parameter 'timestmp' in <filter app.**>; did you mean 'timestamp'?");
    EXPECT_CONF_ERRORS("@type ecs\n<record>\n</record>", "f.conf:3: unknown section <record> in <filter app.**>");
}

/* ---- grep ---------------------------------------------------------------------------------------- */

static void test_grep_basic(void **st)
{
    filter *f = mkf("@type grep\n<regexp>\nkey message\npattern /cool/\n</regexp>\n"
                    "<regexp>\nkey $.kubernetes.namespace_name\npattern ^prod$\n</regexp>\n"
                    "<exclude>\nkey level\npattern /^DEBUG$/i\n</exclude>\n<exclude>\nkey status\npattern ^5\n</exclude>");
    KEEP(f, "app.a", "{'message':'so cool','kubernetes':{'namespace_name':'prod'},'level':'info'}");
    DROP(f, "app.a", "{'message':'not','kubernetes':{'namespace_name':'prod'}}");           /* regexp 1 fails */
    DROP(f, "app.a", "{'message':'cool','kubernetes':{'namespace_name':'production'}}");    /* anchored */
    DROP(f, "app.a", "{'message':'cool'}");                                                   /* missing key */
    DROP(f, "app.a", "{'message':'cool','kubernetes':{'namespace_name':'prod'},'level':'debug'}"); /* exclude, /i */
    DROP(f, "app.a", "{'message':'cool','kubernetes':{'namespace_name':'prod'},'status':503}");   /* number as text */
    KEEP(f, "app.a", "{'message':'cool','kubernetes':{'namespace_name':'prod'},'status':200}");
    filter_destroy(f);
}

static void test_grep_value_text(void **st)
{
    /* Ruby's to_s: a missing key and nil are "" */
    filter *f = mkf("@type grep\n<regexp>\nkey v\npattern /^$/\n</regexp>");
    KEEP(f, "t", "{'x':1}");
    KEEP(f, "t", "{'v':null}");
    DROP(f, "t", "{'v':'x'}");
    filter_destroy(f);
    f = mkf("@type grep\n<regexp>\nkey v\npattern /^(true|1\\.5|\\{\"a\":\\[1\\]\\})$/\n</regexp>");
    KEEP(f, "t", "{'v':true}");
    KEEP(f, "t", "{'v':1.5}");
    KEEP(f, "t", "{'v':{'a':[1]}}");
    DROP(f, "t", "{'v':false}");
    filter_destroy(f);
    /* invalid UTF-8 never crashes and the valid parts still match */
    f = mkf("@type grep\n<regexp>\nkey v\npattern /ok/\n</regexp>");
    wbuf in = {0}, out = {0}, sc = {0};
    mpw_map(&in, 1);
    mpw_str(&in, "v", 1);
    mpw_str(&in, "\xff\xfe ok \xc3", 7);
    filter_call call = {.tag = "t", .tag_len = 1, .out = &out, .scratch = &sc};
    assert_int_equal(f->plugin->filter(f, &call, in.data, in.len), FILTER_KEEP);
    wbuf_free(&in);
    wbuf_free(&out);
    wbuf_free(&sc);
    filter_destroy(f);
}

static void test_grep_and_or(void **st)
{
    /* <or><regexp>: at least one; <and><exclude>: drop when all match */
    filter *f = mkf("@type grep\n<or>\n<regexp>\nkey a\npattern ^x$\n</regexp>\n<regexp>\nkey b\npattern ^y$\n</regexp>\n"
                    "</or>\n<and>\n<exclude>\nkey c\npattern ^1$\n</exclude>\n<exclude>\nkey d\npattern ^2$\n</exclude>\n"
                    "</and>");
    KEEP(f, "t", "{'a':'x'}");
    KEEP(f, "t", "{'b':'y'}");
    DROP(f, "t", "{'a':'n','b':'n'}");
    KEEP(f, "t", "{'a':'x','c':'1'}");
    DROP(f, "t", "{'a':'x','c':'1','d':'2'}");
    filter_destroy(f);
    /* <and><regexp> joins the top-level regexps; <or><exclude> joins the excludes */
    f = mkf("@type grep\n<regexp>\nkey a\npattern x\n</regexp>\n<and>\n<regexp>\nkey b\npattern y\n</regexp>\n</and>\n"
            "<or>\n<exclude>\nkey c\npattern z\n</exclude>\n</or>");
    KEEP(f, "t", "{'a':'x','b':'y'}");
    DROP(f, "t", "{'a':'x'}");
    DROP(f, "t", "{'a':'x','b':'y','c':'z'}");
    filter_destroy(f);
}

static void test_grep_legacy(void **st)
{
    filter *f = mkf("@type grep\nregexp1 message /cool/\nexclude1 level DEBUG\nregexp2 $.k.v ^a b$");
    /* the deprecated form compiles the text as is: the slashes are literal */
    KEEP(f, "t", "{'message':'a /cool/ one','k':{'v':'a b'}}");
    DROP(f, "t", "{'message':'cool','k':{'v':'a b'}}");
    DROP(f, "t", "{'message':'/cool/','k':{'v':'a b'},'level':'DEBUG'}");
    filter_destroy(f);
}

static void test_grep_errors(void **st)
{
    EXPECT_CONF_ERRORS("@type grep\nregexp1 message", "f.conf:3: regexp1 does not contain 2 parameters");
    EXPECT_CONF_ERRORS("@type grep\nexclude3 a x\nexclude4 a y", "f.conf:4: exclude4 contains a duplicated key, a");
    EXPECT_CONF_ERRORS("@type grep\n<regexp>\nkey a\npattern x\n</regexp>\n<regexp>\nkey a\npattern y\n</regexp>",
                       "f.conf:7: Duplicate key: a");
    EXPECT_CONF_ERRORS("@type grep\nregexp1 a x\n<and>\n<regexp>\nkey a\npattern y\n</regexp>\n</and>",
                       "f.conf:5: Duplicate key in <and>: a");
    EXPECT_CONF_ERRORS("@type grep\n<or>\n<regexp>\nkey a\npattern y\n</regexp>\n<regexp>\nkey a\npattern z\n</regexp>\n</or>",
                       "f.conf:8: Duplicate key in <or>: a");
    EXPECT_CONF_ERRORS("@type grep\n<and>\n<regexp>\nkey a\npattern x\n</regexp>\n<exclude>\nkey b\npattern y\n</exclude>\n</and>",
                       "f.conf:3: Do not specify both <regexp> and <exclude> in <and>");
    EXPECT_CONF_ERRORS("@type grep\n<regexp>\npattern x\n</regexp>", "f.conf:3: missing required parameter 'key' in <regexp>");
    EXPECT_CONF_ERRORS("@type grep\n<exclude>\nkey x\npatern y\n</exclude>",
                       "f.conf:3: missing required parameter 'pattern' in <exclude>",
                       "f.conf:5: unknown parameter 'patern' in <exclude>; did you mean 'pattern'?");
    EXPECT_CONF_ERRORS("@type grep\n<regexp>\nkey x\npattern /(/\n</regexp>",
                       "f.conf:5: invalid regexp '/(/': missing closing parenthesis");
    EXPECT_CONF_ERRORS("@type grep\n<regexp>\nkey $.a[0\npattern x\n</regexp>",
                       "f.conf:5: invalid key '$.a[0': '[' found but ']' not found. Invalid syntax: $.a[0");
    EXPECT_CONF_ERRORS("@type grep\n<and>\nkey a\n</and>", "f.conf:4: unknown parameter 'key' in <and>");
    EXPECT_CONF_ERRORS("@type grep\nregexp21 a b", "f.conf:3: unknown parameter 'regexp21' in <filter app.**>; did you mean 'regexp1'?");
}

/* ---- record_transformer --------------------------------------------------------------------------- */

static void test_rt_static(void **st)
{
    filter *f = mkf("@type record_transformer\n<record>\ncluster prod-eu\nlevel replaced\n</record>");
    MODIFY(f, "app.web", "{'log':'x','level':'info'}", "{'log':'x','level':'replaced','cluster':'prod-eu'}");
    MODIFY(f, "app.web", "{}", "{'cluster':'prod-eu','level':'replaced'}");
    filter_destroy(f);
    /* 15 keys + 1: the map header grows */
    f = mkf("@type record_transformer\n<record>\nnew 1\n</record>");
    MODIFY(f, "t", "{'a':1,'b':2,'c':3,'d':4,'e':5,'f':6,'g':7,'h':8,'i':9,'j':10,'k':11,'l':12,'m':13,'n':14,'o':15}",
           "{'a':1,'b':2,'c':3,'d':4,'e':5,'f':6,'g':7,'h':8,'i':9,'j':10,'k':11,'l':12,'m':13,'n':14,'o':15,'new':'1'}");
    filter_destroy(f);
}

static void test_rt_placeholders(void **st)
{
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    filter *f = mkf("@type record_transformer\n<record>\n"
                    "t ${tag}\np0 ${tag_parts[0]}\npl ${tag_parts[-1]}\npx ${tag_parts[9]}\n"
                    "pre ${tag_prefix[1]}\nsuf ${tag_suffix[1]}\nsufl ${tag_suffix[-1]}\n"
                    "mixed <${tag_parts[1]}|${tag_parts[7]}>\nh ${hostname}\ntm ${time}\n"
                    "n ${record[\"num\"]}\nns n=${record[\"num\"]}\nm ${record[\"map\"]}\nms m=${record[\"map\"]}\n"
                    "deep ${record[\"map\"][\"k\"]}\narr ${record[\"list\"][1]}\nmiss ${record[\"nope\"]}\n"
                    "missx \"[${record[\\\"nope\\\"]}]\"\nnil ${record[\"nil\"]}\nf ${record[\"f\"]}\n"
                    "under __FOO__BAR__!\n</record>");
    fres r = apply(f, "app.web.prod", "{'num':7,'map':{'k':'v'},'list':[1,'two'],'nil':null,'f':2.0}");
    assert_int_equal(r.rc, FILTER_MODIFY);
    char want[2048];
    snprintf(want, sizeof want,
             "{'num':7,'map':{'k':'v'},'list':[1,'two'],'nil':null,'f':2.0,'t':'app.web.prod','p0':'app','pl':'prod',"
             "'px':null,'pre':'app.web','suf':'web.prod','sufl':'prod','mixed':'<web|>','h':'%s',"
             "'tm':'2023-11-14 22:13:20 +0000','n':7,'ns':'n=7','m':{'k':'v'},'ms':'m={\\'k\\':\\'v\\'}',"
             "'deep':'v','arr':'two','miss':null,'missx':'[]','under':'!'}",
             host);
    assert_string_equal(r.json, Q(want));
    free(r.json);
    filter_destroy(f);
}

static void test_rt_typecast_and_keys(void **st)
{
    filter *f = mkf("@type record_transformer\nauto_typecast false\n<record>\nn ${record[\"num\"]}\nx ${tag_parts[5]}\n</record>");
    MODIFY(f, "a.b", "{'num':7}", "{'num':7,'n':'7','x':''}");
    filter_destroy(f);
    /* placeholders in keys are always strings; JSON values expand inside */
    f = mkf("@type record_transformer\n<record>\n${tag_parts[1]}_${record[\"num\"]} yes\n"
            "list [\"${tag}\", 1, true, null, {\"${tag_parts[0]}\": \"${record[\\\"num\\\"]}\"}]\n"
            "static {\"a\": [1, 2.5, \"s\"]}\nnotjson \"{oops\"\n</record>");
    MODIFY(f, "a.b", "{'num':7}",
           "{'num':7,'b_7':'yes','list':['a.b',1,true,null,{'a':7}],'static':{'a':[1,2.5,'s']},'notjson':'{oops'}");
    filter_destroy(f);
}

static void test_rt_remove_keep_renew(void **st)
{
    filter *f = mkf("@type record_transformer\nremove_keys a,$.m.x,added,$.list[0]\n<record>\nadded 1\nb B\n</record>");
    MODIFY(f, "t", "{'a':1,'b':2,'m':{'x':1,'y':2},'list':[1,2]}", "{'b':'B','m':{'y':2},'list':[2]}");
    filter_destroy(f);
    f = mkf("@type record_transformer\nrenew_record true\nkeep_keys c,a,zz\n<record>\na new\nd ${record[\"b\"]}\n</record>");
    MODIFY(f, "t", "{'a':1,'b':2,'c':3}", "{'c':3,'a':'new','d':2}");
    filter_destroy(f);
    f = mkf("@type record_transformer\nrenew_record true\n<record>\nonly ${tag}\n</record>");
    MODIFY(f, "t.x", "{'a':1}", "{'only':'t.x'}");
    filter_destroy(f);
    f = mkf("@type record_transformer\nrenew_record true");
    MODIFY(f, "t", "{'a':1}", "{}");
    filter_destroy(f);
}

static void test_rt_renew_time(void **st)
{
    filter *f = mkf("@type record_transformer\nrenew_time_key t\nremove_keys t");
    fres r = apply(f, "x", "{'t':'1600000000.25','a':1}");
    assert_int_equal(r.rc, FILTER_MODIFY);
    assert_string_equal(r.json, Q("{'a':1}"));
    assert_int_equal(r.sec, 1600000000);
    assert_int_equal(r.nsec, 250000000);
    free(r.json);
    r = apply(f, "x", "{'t':1500000000}");
    assert_int_equal(r.sec, 1500000000);
    assert_int_equal(r.nsec, 0);
    free(r.json);
    r = apply(f, "x", "{'a':1}"); /* absent: the time stays */
    assert_int_equal(r.sec, 1700000000);
    assert_int_equal(r.nsec, 5);
    free(r.json);
    expect_error(f, "x", "{'t':true}",
                 "renew_time_key: undefined method `to_f' for the value (not a number or a string)");
    filter_destroy(f);
    /* a <record> value can set the time */
    f = mkf("@type record_transformer\nrenew_time_key t\n<record>\nt ${record[\"ts\"]}\n</record>");
    r = apply(f, "x", "{'ts':1234.5}");
    assert_int_equal(r.sec, 1234);
    assert_int_equal(r.nsec, 500000000);
    free(r.json);
    filter_destroy(f);
}

static void test_rt_errors(void **st)
{
    EXPECT_CONF_ERRORS("@type record_transformer\nkeep_keys a",
                       "f.conf:3: `renew_record` must be true to use `keep_keys`");
    EXPECT_CONF_ERRORS("@type record_transformer\n<record>\nx ${record[\"a\"].upcase}\n</record>",
                       "f.conf:4: unsupported placeholder '${record[\"a\"].upcase}' in <record>: weir does not run "
                       "Ruby; use ${tag}, ${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]}, ${hostname}, ${time} or "
                       "${record[\"key\"]} (or enable_ruby true for Ruby expressions)");
    EXPECT_CONF_ERRORS("@type record_transformer\n<record>\nx a${foo}b\n</record>",
                       "f.conf:4: unsupported placeholder '${foo}' in <record>: weir does not run Ruby; use ${tag}, "
                       "${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]}, ${hostname}, ${time} or ${record[\"key\"]} (or enable_ruby true for Ruby expressions)");
    EXPECT_CONF_ERRORS("@type record_transformer\n<record>\nx ${tag_parts[01]}\n</record>",
                       "f.conf:4: unsupported placeholder '${tag_parts[01]}' in <record>: weir does not run Ruby; use "
                       "${tag}, ${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]}, ${hostname}, ${time} or "
                       "${record[\"key\"]} (or enable_ruby true for Ruby expressions)");
    EXPECT_CONF_ERRORS("@type record_transformer\n<record>\nx ${record['a'}\n</record>",
                       "f.conf:4: unsupported placeholder '${record['a'}' in <record>: weir does not run Ruby; use "
                       "${tag}, ${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]}, ${hostname}, ${time} or "
                       "${record[\"key\"]} (or enable_ruby true for Ruby expressions)");
    EXPECT_CONF_ERRORS("@type record_transformer\nremove_keys $.a[0",
                       "f.conf:3: invalid key '$.a[0' in remove_keys: '[' found but ']' not found. Invalid syntax: $.a[0");
    EXPECT_CONF_ERRORS("@type record_transformer\n<record>\n<x>\n</x>\n</record>", "f.conf:4: unknown section <x> in <record>");
    /* "${}" and "${" are plain text */
    filter *f = mkf("@type record_transformer\n<record>\nx ${}${\n</record>");
    MODIFY(f, "t", "{}", "{'x':'${}${'}");
    filter_destroy(f);
}

/* enable_ruby true: the expression shapes of real configs, typed when a
 * value is one ${...}; a Ruby error fails the record (to @ERROR) with
 * Fluentd's words; code outside the subset is a FILE:LINE error */
static void test_rt_enable_ruby(void **st)
{
    filter *f = mkf("@type record_transformer\nenable_ruby true\n<record>\n"
                    "ns ${record.dig(\"kubernetes\", \"namespace_name\") || \"default\"}\n"
                    "app ${record[\"kubernetes\"][\"labels\"][\"app\"]}\n"
                    "lvl ${record[\"level\"].upcase}\n"
                    "sev ${record[\"level\"] == \"error\" ? 3 : 6}\n"
                    "svc ${tag_parts[1]}-${record[\"n\"].to_s}\n"
                    "day ${time.strftime('%Y.%m.%d')}\n"
                    "msg ${record[\"msg\"].gsub(/\\d+/, \"N\")}\n"
                    "n2 ${record[\"n\"] * 2}\n"
                    "</record>");
    MODIFY(f, "app.web", "{'kubernetes':{'namespace_name':'prod','labels':{'app':'w'}},'level':'error','n':4,'msg':'id 42 ok'}",
           "{'kubernetes':{'namespace_name':'prod','labels':{'app':'w'}},'level':'error','n':4,'msg':'id N ok',"
           "'ns':'prod','app':'w','lvl':'ERROR','sev':3,'svc':'web-4','day':'2023.11.14','n2':8}");
    expect_error(f, "app.web", "{'level':'info','n':1,'msg':'x'}",
                 "record_transformer: failed to expand `${record[\"kubernetes\"][\"labels\"][\"app\"]}` : error = "
                 "undefined method `[]' for nil:NilClass");
    filter_destroy(f);
    /* keys are templates too; a plain placeholder keeps its meaning */
    f = mkf("@type record_transformer\nenable_ruby\n<record>\n${tag_parts[0].upcase}_k ${record['a']}\n</record>");
    MODIFY(f, "app.x", "{'a':[1]}", "{'a':[1],'APP_k':[1]}");
    filter_destroy(f);
    EXPECT_CONF_ERRORS("@type record_transformer\nenable_ruby true\n<record>\nx ${record['a'].map { |v| v }}\n</record>",
                       "f.conf:5: unsupported Ruby in <record>: '${record['a'].map { |v| v }}': undefined method `map' "
                       "(not in the methods weir evaluates; see docs/configuration.md)");
    EXPECT_CONF_ERRORS("@type record_transformer\nenable_ruby true\n<record>\nx ${`id`}\n</record>",
                       "f.conf:5: unsupported Ruby in <record>: '${`id`}': unexpected '`id`'");
}

/* ---- parser ----------------------------------------------------------------------------------------- */

static void test_parser_json_reserve(void **st)
{
    filter *f = mkf("@type parser\nkey_name log\nreserve_data true\n<parse>\n@type json\n</parse>");
    fres r = apply(f, "t", "{'log':'{\\'level\\':\\'INFO\\',\\'time\\':1600000000.5,\\'stream\\':\\'x\\'}','stream':'stdout'}");
    assert_int_equal(r.rc, FILTER_MODIFY);
    /* Hash#merge: parsed keys win, keeping the record's order; time removed */
    assert_string_equal(r.json, Q("{'log':'{\\'level\\':\\'INFO\\',\\'time\\':1600000000.5,\\'stream\\':\\'x\\'}','stream':'x','level':'INFO'}"));
    assert_int_equal(r.sec, 1600000000);
    assert_int_equal(r.nsec, 500000000);
    free(r.json);
    /* no time in the text: estimate_current_event gives now */
    time_t before = time(NULL);
    r = apply(f, "t", "{'log':'{}'}");
    assert_int_equal(r.rc, FILTER_MODIFY);
    assert_true(r.sec >= before && r.sec <= before + 2);
    free(r.json);
    filter_destroy(f);

    f = mkf("@type parser\nkey_name log\nreserve_data true\nreserve_time true\nremove_key_name_field true\n"
            "<parse>\n@type json\n</parse>");
    r = apply(f, "t", "{'a':1,'log':'{\\'time\\':5,\\'b\\':2}'}");
    assert_string_equal(r.json, Q("{'a':1,'b':2}"));
    assert_int_equal(r.sec, 1700000000); /* reserve_time */
    free(r.json);
    filter_destroy(f);

    f = mkf("@type parser\nkey_name log\n<parse>\n@type json\nestimate_current_event false\n</parse>");
    r = apply(f, "t", "{'a':1,'log':'{\\'b\\':[1]}'}");
    assert_string_equal(r.json, Q("{'b':[1]}")); /* only the parsed values */
    assert_int_equal(r.sec, 1700000000);
    free(r.json);
    filter_destroy(f);
}

static void test_parser_merge_sizes(void **st)
{
    /* the direct merge (no key in common) across the fixmap/map16 boundary,
     * the general merge (a key in common), and records too big for the
     * direct path (more than 32 keys) */
    filter *f = mkf("@type parser\nkey_name log\nreserve_data true\n<parse>\n@type json\n"
                    "estimate_current_event false\n</parse>");
    MODIFY(f, "t", "{'log':'{\\'a\\':1}','b':2}", "{'log':'{\\'a\\':1}','b':2,'a':1}");
    char rec[4096], want[4096], inner[1024];
    size_t n = 0, w = 0, k = 0;
    k += (size_t)snprintf(inner + k, sizeof inner - k, "{");
    for (int i = 0; i < 9; i++)
        k += (size_t)snprintf(inner + k, sizeof inner - k, "%s\\'p%d\\':%d", i ? "," : "", i, i);
    snprintf(inner + k, sizeof inner - k, "}");
    n += (size_t)snprintf(rec + n, sizeof rec - n, "{'log':'%s'", inner);
    w += (size_t)snprintf(want + w, sizeof want - w, "{'log':'%s'", inner);
    for (int i = 0; i < 7; i++) {
        n += (size_t)snprintf(rec + n, sizeof rec - n, ",'r%d':%d", i, i);
        w += (size_t)snprintf(want + w, sizeof want - w, ",'r%d':%d", i, i);
    }
    snprintf(rec + n, sizeof rec - n, "}");
    for (int i = 0; i < 9; i++)
        w += (size_t)snprintf(want + w, sizeof want - w, ",'p%d':%d", i, i);
    snprintf(want + w, sizeof want - w, "}");
    MODIFY(f, "t", rec, want); /* 8 + 9 = 17 pairs: map16 */
    MODIFY(f, "t", "{'a':0,'log':'{\\'z\\':1,\\'a\\':2}'}", "{'a':2,'log':'{\\'z\\':1,\\'a\\':2}','z':1}");
    n = (size_t)snprintf(rec, sizeof rec, "{'log':'{\\'k0\\':true}'");
    w = (size_t)snprintf(want, sizeof want, "{'log':'{\\'k0\\':true}'");
    for (int i = 0; i < 40; i++) {
        n += (size_t)snprintf(rec + n, sizeof rec - n, ",'k%d':%d", i, i);
        w += (size_t)snprintf(want + w, sizeof want - w, ",'k%d':%s", i, i ? "" : "true");
        if (i)
            w += (size_t)snprintf(want + w - 0, sizeof want - w, "%d", i);
    }
    snprintf(rec + n, sizeof rec - n, "}");
    snprintf(want + w, sizeof want - w, "}");
    MODIFY(f, "t", rec, want); /* 41 keys: the general merge, k0 replaced in place */
    /* 17 parsed keys (their map header grows after the keys were seen), one also in the record */
    k = (size_t)snprintf(inner, sizeof inner, "{");
    for (int i = 0; i < 17; i++)
        k += (size_t)snprintf(inner + k, sizeof inner - k, "%s\\'q%d\\':%d", i ? "," : "", i, i);
    snprintf(inner + k, sizeof inner - k, "}");
    snprintf(rec, sizeof rec, "{'q15':'old','log':'%s'}", inner);
    w = (size_t)snprintf(want, sizeof want, "{'q15':15,'log':'%s'", inner);
    for (int i = 0; i < 17; i++)
        if (i != 15)
            w += (size_t)snprintf(want + w, sizeof want - w, ",'q%d':%d", i, i);
    snprintf(want + w, sizeof want - w, "}");
    MODIFY(f, "t", rec, want);
    filter_destroy(f);
}

static void test_parser_prefix_hash(void **st)
{
    filter *f = mkf("@type parser\nkey_name $.k.msg\nreserve_data true\ninject_key_prefix p_\nhash_value_field parsed\n"
                    "remove_key_name_field true\n<parse>\n@type regexp\nexpression /^(?<a>\\w+) (?<b>\\w+)$/\n</parse>");
    MODIFY(f, "t", "{'k':{'msg':'x y','o':1},'z':0}", "{'k':{'o':1},'z':0,'parsed':{'p_a':'x','p_b':'y'}}");
    filter_destroy(f);
    f = mkf("@type parser\nkey_name msg\ninject_key_prefix p.\n<parse>\n@type logfmt\n</parse>");
    MODIFY(f, "t", "{'msg':'a=1 b=2'}", "{'p.a':'1','p.b':'2'}");
    filter_destroy(f);
    f = mkf("@type parser\nkey_name msg\nhash_value_field h\n<parse>\n@type none\n</parse>");
    MODIFY(f, "t", "{'msg':'text'}", "{'h':{'message':'text'}}");
    MODIFY(f, "t", "{'msg':42}", "{'h':{'message':42}}"); /* none takes any value */
    filter_destroy(f);
}

static void test_parser_invalid(void **st)
{
    filter *f = mkf("@type parser\nkey_name log\nreserve_data true\n<parse>\n@type regexp\nexpression /^(?<a>\\d+)$/\n"
                    "time_key a\ntime_format %s\n</parse>");
    expect_error_keep(f, "t", "{'x':1}", "log does not exist");
    expect_error_keep(f, "t", "{'log':null}", "log does not exist");
    expect_error_keep(f, "t", "{'log':'abc'}", "pattern not matched with data 'abc'");
    expect_error(f, "t", "{'log':5}", "parse failed: the value of log is not a string");
    expect_error(f, "t", "{'log':'99999999999'}", "invalid time format: value = 99999999999");
    MODIFY(f, "t", "{'log':'1600000000'}", "{'log':'1600000000'}");
    filter_destroy(f);
    /* without reserve_data an unparsable record only goes to @ERROR */
    f = mkf("@type parser\nkey_name log\n<parse>\n@type json\n</parse>");
    expect_error(f, "t", "{'log':'plain text'}", "pattern not matched with data 'plain text'");
    filter_destroy(f);
    /* reserve_data + hash_value_field: the kept record gets the empty map */
    f = mkf("@type parser\nkey_name log\nreserve_data true\nhash_value_field p\n<parse>\n@type json\n</parse>");
    fres kr = apply(f, "t", "{'log':'plain text'}");
    assert_int_equal(kr.rc, FILTER_ERROR_KEEP);
    assert_string_equal(kr.json, Q("{'log':'plain text','p':{}}"));
    free(kr.json);
    filter_destroy(f);

    /* emit_invalid_record_to_error false: keep (reserve_data) or drop */
    f = mkf("@type parser\nkey_name log\nreserve_data true\nemit_invalid_record_to_error false\n"
            "<parse>\n@type json\ntime_format %Y\n</parse>");
    KEEP(f, "t", "{'x':1}");
    KEEP(f, "t", "{'log':'not json'}");
    DROP(f, "t", "{'log':'{\\'time\\':\\'bad\\'}'}"); /* a ParserError is dropped even with reserve_data */
    DROP(f, "t", "{'log':[1]}");
    filter_destroy(f);
    f = mkf("@type parser\nkey_name log\nreserve_data true\nhash_value_field p\nemit_invalid_record_to_error false\n"
            "<parse>\n@type json\n</parse>");
    MODIFY(f, "t", "{'x':1}", "{'x':1,'p':{}}");
    filter_destroy(f);
    f = mkf("@type parser\nkey_name log\nemit_invalid_record_to_error false\n<parse>\n@type json\n</parse>");
    DROP(f, "t", "{'x':1}");
    DROP(f, "t", "{'log':'nope'}");
    filter_destroy(f);
}

/* CRI P lines are held per (tag, stream) and joined with their F line. */
static void test_parser_cri_partial_join(void **st)
{
    filter *f = mkf("@type parser\nkey_name log\n<parse>\n@type cri\n</parse>");
    DROP(f, "kube.a", "{'log':'2025-12-18T02:42:48.982Z stdout P {\\'level\\':'}");
    DROP(f, "kube.b", "{'log':'2025-12-18T02:42:49.000Z stdout P other-'}");      /* another container */
    DROP(f, "kube.a", "{'log':'2025-12-18T02:42:48.990Z stderr P err-'}");        /* another stream */
    DROP(f, "kube.a", "{'log':'2025-12-18T02:42:48.983Z stdout P \\'ERROR\\','}");
    fres r = apply(f, "kube.a", "{'log':'2025-12-18T02:42:48.984Z stdout F \\'msg\\':\\'x\\'}'}");
    assert_int_equal(r.rc, FILTER_MODIFY);
    assert_string_equal(r.json, Q("{'stream':'stdout','logtag':'F','log':'{\\'level\\':\\'ERROR\\',\\'msg\\':\\'x\\'}'}"));
    /* the time of the first part */
    assert_int_equal(r.sec, 1766025768);
    assert_int_equal(r.nsec, 982000000);
    free(r.json);
    MODIFY(f, "kube.b", "{'log':'2025-12-18T02:42:49.100Z stdout F end'}",
           "{'stream':'stdout','logtag':'F','log':'other-end'}");
    MODIFY(f, "kube.a", "{'log':'2025-12-18T02:42:49.100Z stderr F out'}",
           "{'stream':'stderr','logtag':'F','log':'err-out'}");
    /* an F line with nothing held passes as it is */
    MODIFY(f, "kube.a", "{'log':'2025-12-18T02:42:49.200Z stdout F alone'}",
           "{'stream':'stdout','logtag':'F','log':'alone'}");
    filter_destroy(f);
}

static void test_parser_invalid_utf8(void **st)
{
    wbuf in = {0}, out = {0}, sc = {0};
    mpw_map(&in, 1);
    mpw_str(&in, "log", 3);
    mpw_str(&in, "a\xff b", 4);
    filter_call call = {.tag = "t", .tag_len = 1, .out = &out, .scratch = &sc};
    filter *f = mkf("@type parser\nkey_name log\nemit_invalid_record_to_error false\n<parse>\n@type regexp\n"
                    "expression /^(?<x>\\S+) (?<y>\\S+)$/\n</parse>");
    assert_int_equal(f->plugin->filter(f, &call, in.data, in.len), FILTER_ERROR);
    assert_string_equal(call.err, "invalid byte sequence in UTF-8");
    filter_destroy(f);
    f = mkf("@type parser\nkey_name log\nreplace_invalid_sequence true\n<parse>\n@type regexp\n"
            "expression /^(?<x>\\S+) (?<y>\\S+)$/\n</parse>");
    out.len = 0;
    assert_int_equal(f->plugin->filter(f, &call, in.data, in.len), FILTER_MODIFY);
    ASSERT_MP_JSON(out.data, out.len, "{\"x\":\"a?\",\"y\":\"b\"}");
    filter_destroy(f);
    wbuf_free(&in);
    wbuf_free(&out);
    wbuf_free(&sc);
}

static void test_parser_errors(void **st)
{
    EXPECT_CONF_ERRORS("@type parser\n<parse>\n@type json\n</parse>",
                       "f.conf:1: missing required parameter 'key_name' in <filter app.**>");
    EXPECT_CONF_ERRORS("@type parser\nkey_name log", "f.conf:1: missing required section <parse> in <filter app.**>");
    EXPECT_CONF_ERRORS("@type parser\nkey_name log\n<parse>\n@type json\n</parse>\n<parse>\n@type none\n</parse>",
                       "f.conf:7: more than one <parse> in <filter app.**>");
    EXPECT_CONF_ERRORS("@type parser\nkey_name log\n<parse>\n@type jsno\n</parse>",
                       "f.conf:5: unknown parser type 'jsno'; did you mean 'json'?");
    EXPECT_CONF_ERRORS("@type parser\nkey_name log\n<parse>\n@type regexp\nexpression /(?<a>/\n</parse>",
                       "f.conf:6: invalid regexp '/(?<a>/': missing closing parenthesis");
    EXPECT_CONF_ERRORS("@type parser\nkey_name $.\n<parse>\n@type json\n</parse>",
                       "f.conf:3: invalid key_name '$.': empty keys in dot notation");
    EXPECT_CONF_ERRORS("@type parser\nkey_name log\nreserve_data yes please\n<parse>\n@type json\n</parse>",
                       "f.conf:4: invalid boolean value 'yes please' for parameter 'reserve_data'");
}

/* ---- kubernetes ------------------------------------------------------------------------------------- */

#define KTAG "kube.var.log.containers.web-7d9f_prod_nginx-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.log"

static void test_k8s(void **st)
{
    filter *f = mkf("@type kubernetes");
    KEEP(f, KTAG, "{'log':'x','kubernetes':{'pod_name':'p'}}");
    MODIFY(f, KTAG, "{'log':'x'}",
           "{'log':'x','kubernetes':{'pod_name':'web-7d9f','namespace_name':'prod','container_name':'nginx',"
           "'docker_id':'0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef'}}");
    MODIFY(f, "other.prefix.containers.my.pod.v1_ns_my-app-2-abc123.log", "{}",
           "{'kubernetes':{'pod_name':'my.pod.v1','namespace_name':'ns','container_name':'my-app-2','docker_id':'abc123'}}");
    MODIFY(f, "k8s.pod_ns_c-1.log", "{}",
           "{'kubernetes':{'pod_name':'pod','namespace_name':'ns','container_name':'c','docker_id':'1'}}");
    KEEP(f, "app.web", "{'a':1}");
    KEEP(f, "kube.var.log.containers.pod_ns_c-ID.log", "{'a':1}"); /* id must be lowercase alnum */
    KEEP(f, "kube.var.log.containers.pod_ns_c.log", "{'a':1}");
    KEEP(f, "kube.var.log.containers.pod_ns.log", "{'a':1}");
    KEEP(f, "kube.var.log.containers.pod_ns_c-1.txt", "{'a':1}");
    filter_destroy(f);

    f = mkf("@type kubernetes\nflatten true\ncluster_name eu-1");
    MODIFY(f, "x", "{'a':1,'kubernetes':{'pod_name':'p','labels':{'app':'web','tier':{'x':'y'}},'ids':[1]},'z':2}",
           "{'a':1,'z':2,'kubernetes.pod_name':'p','kubernetes.labels.app':'web','kubernetes.labels.tier.x':'y',"
           "'kubernetes.ids':[1],'kubernetes.cluster':'eu-1'}");
    MODIFY(f, "k.containers.p_n_c-9.log", "{'a':1}",
           "{'a':1,'kubernetes.pod_name':'p','kubernetes.namespace_name':'n','kubernetes.container_name':'c',"
           "'kubernetes.docker_id':'9','kubernetes.cluster':'eu-1'}");
    MODIFY(f, "x", "{'kubernetes':{}}", "{'kubernetes.cluster':'eu-1'}");
    filter_destroy(f);

    f = mkf("@type kubernetes\ncluster_name eu-1\ncluster_key k8s_cluster\nflatten_separator _");
    MODIFY(f, "x", "{'kubernetes':{'pod_name':'p'},'a':1}", "{'kubernetes':{'pod_name':'p','k8s_cluster':'eu-1'},'a':1}");
    KEEP(f, "x", "{'kubernetes':{'k8s_cluster':'other'}}");
    KEEP(f, "x", "{'a':1}"); /* nothing known: no lone cluster */
    filter_destroy(f);
    f = mkf("@type kubernetes\nflatten true\nflatten_separator _");
    MODIFY(f, "x", "{'kubernetes':{'labels':{'app':'w'}}}", "{'kubernetes_labels_app':'w'}");
    filter_destroy(f);

    f = mkf("@type kubernetes\ntag_regex /^k\\.(?<namespace_name>[^.]+)\\.(?<pod_name>[^.]+)(?:\\.(?<extra>x))?$/");
    MODIFY(f, "k.ns1.pod1", "{}", "{'kubernetes':{'namespace_name':'ns1','pod_name':'pod1'}}");
    KEEP(f, KTAG, "{}");
    filter_destroy(f);
    EXPECT_CONF_ERRORS("@type kubernetes\ntag_regex ^a(b)$",
                       "f.conf:3: tag_regex needs named captures such as (?<namespace_name>...) and (?<pod_name>...)");
    EXPECT_CONF_ERRORS("@type kubernetes\ntag_regex ^a(?<x>$", "f.conf:3: invalid regexp '^a(?<x>$': missing closing parenthesis");
    EXPECT_CONF_ERRORS("@type kubernetes\nflatten maybe", "f.conf:3: invalid boolean value 'maybe' for parameter 'flatten'");
}

/* ---- trace ---------------------------------------------------------------------------------------------- */

static void test_trace(void **st)
{
    filter *f = mkf("@type trace");
    KEEP(f, "t", "{'trace.id':'4bf92f3577b34da6a3ce929d0e0e4736'}");
    MODIFY(f, "t", "{'trace_id':'4BF92F3577B34DA6A3CE929D0E0E4736'}",
           "{'trace_id':'4BF92F3577B34DA6A3CE929D0E0E4736','trace.id':'4bf92f3577b34da6a3ce929d0e0e4736'}");
    MODIFY(f, "t", "{'traceparent':'00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'}",
           "{'traceparent':'00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',"
           "'trace.id':'4bf92f3577b34da6a3ce929d0e0e4736','span.id':'00f067aa0ba902b7'}");
    MODIFY(f, "t", "{'x-b3-traceid':'a3ce929d0e0e4736','x-b3-spanid':'00F067AA0BA902B7'}",
           "{'x-b3-traceid':'a3ce929d0e0e4736','x-b3-spanid':'00F067AA0BA902B7','trace.id':'a3ce929d0e0e4736',"
           "'span.id':'00f067aa0ba902b7'}");
    MODIFY(f, "t", "{'trace':{'id':'4bf92f3577b34da6a3ce929d0e0e4736'},'span':{'id':'00f067aa0ba902b7'}}",
           "{'trace':{'id':'4bf92f3577b34da6a3ce929d0e0e4736'},'span':{'id':'00f067aa0ba902b7'},"
           "'trace.id':'4bf92f3577b34da6a3ce929d0e0e4736','span.id':'00f067aa0ba902b7'}");
    MODIFY(f, "t", "{'b3':'80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1'}",
           "{'b3':'80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1','trace.id':'80f198ee56343ba864fe8b2a57d3eff7',"
           "'span.id':'e457b5a2e4d86bd1'}");
    /* invalid ids are skipped: the next key is tried */
    MODIFY(f, "t", "{'trace.id':'xyz','trace_id':'00000000000000000000000000000000','traceId':'ABCDEF0123456789'}",
           "{'trace.id':'abcdef0123456789','trace_id':'00000000000000000000000000000000','traceId':'ABCDEF0123456789'}");
    KEEP(f, "t", "{'trace_id':'4bf92f3577b34da6a3ce929d0e0e473'}");  /* 31 hex */
    KEEP(f, "t", "{'trace_id':1234}");
    KEEP(f, "t", "{'traceparent':'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'}");
    KEEP(f, "t", "{'traceparent':'00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra'}");
    MODIFY(f, "t", "{'traceparent':'01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra'}",
           "{'traceparent':'01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra',"
           "'trace.id':'4bf92f3577b34da6a3ce929d0e0e4736','span.id':'00f067aa0ba902b7'}");
    KEEP(f, "t", "{'traceparent':'00-00000000000000000000000000000000-00f067aa0ba902b7-01'}");
    KEEP(f, "t", "{'msg':'no trace'}");
    filter_destroy(f);
    f = mkf("@type trace\ntrace_key tid\nspan_key sid\nsearch_keys $.ctx.t\nspan_search_keys $.ctx.s");
    MODIFY(f, "t", "{'ctx':{'t':'ABCDEF0123456789','s':'0123456789abcdef'},'trace_id':'x'}",
           "{'ctx':{'t':'ABCDEF0123456789','s':'0123456789abcdef'},'trace_id':'x','tid':'abcdef0123456789',"
           "'sid':'0123456789abcdef'}");
    KEEP(f, "t", "{'tid':'abcdef0123456789','sid':'0123456789abcdef','ctx':{'t':'abcdef0123456789','s':'0123456789abcdef'}}");
    filter_destroy(f);
    EXPECT_CONF_ERRORS("@type trace\nsearch_keys $.", "f.conf:3: invalid key '$.' in search_keys: empty keys in dot notation");
}

/* ---- ecs ------------------------------------------------------------------------------------------------ */

static void test_ecs(void **st)
{
    filter *f = mkf("@type ecs");
    fres r = apply_t(f, "t", 1700000000, 123456789, "{'level':'WARNING','msg':'hi','app':'web','x':1}");
    assert_int_equal(r.rc, FILTER_MODIFY);
    assert_string_equal(r.json, Q("{'x':1,'@timestamp':'2023-11-14T22:13:20.123Z','log.level':'warn','message':'hi',"
                                  "'service.name':'web'}"));
    free(r.json);
    MODIFY(f, "t", "{'@timestamp':'x','severity':'ERR','message':'m','msg':'other','kubernetes':{'labels':{'app':'k'}}}",
           "{'@timestamp':'x','message':'m','msg':'other','kubernetes':{'labels':{'app':'k'}},'log.level':'error',"
           "'service.name':'k'}");
    MODIFY(f, "t", "{'@timestamp':'x','log.level':'CRITICAL','kubernetes':{'labels':{'app.kubernetes.io/name':'n'}}}",
           "{'@timestamp':'x','log.level':'fatal','kubernetes':{'labels':{'app.kubernetes.io/name':'n'}},'service.name':'n'}");
    KEEP(f, "t", "{'@timestamp':'x','log.level':'info','message':'m','service.name':'s'}");
    KEEP(f, "t", "{'@timestamp':'x','service':{'name':'s'},'app':'other'}");
    MODIFY(f, "t", "{'@timestamp':'x','level':50}", "{'@timestamp':'x','log.level':'error'}");
    MODIFY(f, "t", "{'@timestamp':'x','level':3}", "{'@timestamp':'x','log.level':'error'}");
    MODIFY(f, "t", "{'@timestamp':'x','level':' Verbose '}", "{'@timestamp':'x','log.level':'verbose'}");
    MODIFY(f, "t", "{'@timestamp':'x','loglevel':'notice','log':'line'}", "{'@timestamp':'x','log.level':'info','message':'line'}");
    MODIFY(f, "t", "{'@timestamp':'x','level':{'a':1},'severity':'d'}", "{'@timestamp':'x','level':{'a':1},'log.level':'debug'}");
    KEEP(f, "t", "{'@timestamp':'x','log':{'not':'a string'}}");
    filter_destroy(f);
    f = mkf("@type ecs\ntimestamp false\nlevel false\nmessage_keys []\nservice_keys []");
    KEEP(f, "t", "{'level':'WARNING','msg':'hi','app':'web'}");
    filter_destroy(f);
    f = mkf("@type ecs\ntimestamp_key ts\nlevel_keys lvl\nmessage_keys text\nservice_keys $.svc.id");
    r = apply_t(f, "t", 0, 0, "{'lvl':'Info','text':'t','svc':{'id':'s'},'level':'x'}");
    assert_string_equal(r.json, Q("{'svc':{'id':'s'},'level':'x','ts':'1970-01-01T00:00:00.000Z','log.level':'info',"
                                  "'message':'t','service.name':'s'}"));
    free(r.json);
    filter_destroy(f);
    EXPECT_CONF_ERRORS("@type ecs\nservice_keys $[", "f.conf:3: invalid key '$[' in service_keys: empty keys in bracket notation");
}

/* ---- the enrich chain, as the router runs it, and threads ------------------------------------------------- */

static const char *ENRICH_CONF[3] = {
    "@type parser\nkey_name log\nreserve_data true\n<parse>\n@type json\n</parse>",
    "@type record_transformer\n<record>\ncluster prod-eu-1\n</record>",
    "@type grep\n<exclude>\nkey level\npattern /DEBUG/\n</exclude>",
};

static int run_chain(filter **fs, size_t n, const uint8_t *rec, size_t len, wbuf *ping, wbuf *pong, wbuf *sc,
                     filter_call *call, const uint8_t **res, size_t *reslen)
{
    for (size_t k = 0; k < n; k++) {
        /* the output buffer must not be the one holding the input: after a
         * KEEP the input is still where an earlier filter wrote it */
        wbuf *o = rec == ping->data ? pong : ping;
        o->len = 0;
        call->out = o;
        int rc = fs[k]->plugin->filter(fs[k], call, rec, len);
        if (rc == FILTER_MODIFY) {
            rec = o->data;
            len = o->len;
        } else if (rc != FILTER_KEEP) {
            return rc;
        }
    }
    *res = rec;
    *reslen = len;
    return FILTER_KEEP;
}

static void test_enrich_chain(void **st)
{
    filter *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = mkf(ENRICH_CONF[i]);
    wbuf ping = {0}, pong = {0}, sc = {0};
    filter_call call = {.tag = "kube.app", .tag_len = 8, .sec = 1, .scratch = &sc};
    const uint8_t *res = NULL;
    size_t rl = 0;
    wbuf in = J(Q("{'log':'{\\'level\\':\\'INFO\\',\\'msg\\':\\'ok\\',\\'time\\':1700000000}','stream':'stdout'}"));
    assert_int_equal(run_chain(fs, 3, in.data, in.len, &ping, &pong, &sc, &call, &res, &rl), FILTER_KEEP);
    ASSERT_MP_JSON(res, rl, Q("{'log':'{\\'level\\':\\'INFO\\',\\'msg\\':\\'ok\\',\\'time\\':1700000000}','stream':'stdout',"
                              "'level':'INFO','msg':'ok','cluster':'prod-eu-1'}"));
    assert_int_equal(call.sec, 1700000000);
    wbuf_free(&in);
    in = J(Q("{'log':'{\\'level\\':\\'DEBUG\\',\\'msg\\':\\'noise\\'}'}"));
    assert_int_equal(run_chain(fs, 3, in.data, in.len, &ping, &pong, &sc, &call, &res, &rl), FILTER_DROP);
    wbuf_free(&in);
    for (int i = 0; i < 3; i++)
        filter_destroy(fs[i]);
    wbuf_free(&ping);
    wbuf_free(&pong);
    wbuf_free(&sc);
}

static void test_chain_keep_in_the_middle(void **st)
{
    /* MODIFY, MODIFY, KEEP, MODIFY: the last filter reads what the second wrote */
    filter *fs[4] = {mkf(ENRICH_CONF[0]), mkf("@type record_transformer\n<record>\ncluster c1\ntag ${tag}\n</record>"),
                     mkf(ENRICH_CONF[2]), mkf("@type ecs")};
    wbuf ping = {0}, pong = {0}, sc = {0};
    filter_call call = {.tag = "kube.a", .tag_len = 6, .sec = 1, .scratch = &sc};
    const uint8_t *res = NULL;
    size_t rl = 0;
    wbuf in = J(Q("{'log':'{\\'level\\':\\'INFO\\',\\'msg\\':\\'hello\\',\\'time\\':1700000001}','stream':'stdout'}"));
    assert_int_equal(run_chain(fs, 4, in.data, in.len, &ping, &pong, &sc, &call, &res, &rl), FILTER_KEEP);
    ASSERT_MP_JSON(res, rl, Q("{'log':'{\\'level\\':\\'INFO\\',\\'msg\\':\\'hello\\',\\'time\\':1700000001}',"
                              "'stream':'stdout','cluster':'c1','tag':'kube.a','@timestamp':'2023-11-14T22:13:21.000Z',"
                              "'log.level':'info','message':'hello'}"));
    wbuf_free(&in);
    for (int i = 0; i < 4; i++)
        filter_destroy(fs[i]);
    wbuf_free(&ping);
    wbuf_free(&pong);
    wbuf_free(&sc);
}

typedef struct thr_arg {
    filter **fs;
    int id;
    int bad;
} thr_arg;

static void *chain_thread(void *p)
{
    thr_arg *a = p;
    wbuf ping = {0}, pong = {0}, sc = {0};
    filter_call call = {.tag = "kube.app", .tag_len = 8, .scratch = &sc};
    char json[256];
    for (int i = 0; i < 5000; i++) {
        int dbg = (i + a->id) % 3 == 0;
        snprintf(json, sizeof json, "{\"log\":\"{\\\"level\\\":\\\"%s\\\",\\\"n\\\":%d}\"}", dbg ? "DEBUG" : "INFO", i);
        wbuf in = J(json);
        const uint8_t *res;
        size_t rl;
        int rc = run_chain(a->fs, 3, in.data, in.len, &ping, &pong, &sc, &call, &res, &rl);
        if (rc != (dbg ? FILTER_DROP : FILTER_KEEP))
            a->bad++;
        else if (!dbg) {
            size_t vl;
            const uint8_t *v = rec_get(res, rl, "n", 1, &vl);
            if (!v || vl < 1)
                a->bad++;
        }
        wbuf_free(&in);
    }
    wbuf_free(&ping);
    wbuf_free(&pong);
    wbuf_free(&sc);
    rx_thread_cleanup();
    return NULL;
}

static void test_threads(void **st)
{
    filter *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = mkf(ENRICH_CONF[i]);
    pthread_t th[4];
    thr_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thr_arg){fs, i, 0};
        pthread_create(&th[i], NULL, chain_thread, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].bad, 0);
    }
    for (int i = 0; i < 3; i++)
        filter_destroy(fs[i]);
}


/* ---- record_modifier (fluent-plugin-record-modifier) and the stdout filter ---------------------------- */

static void test_record_modifier(void **st)
{
    filter *f = mkf("@type record_modifier\n<record>\nt ${tag_parts[1]}\nn ${record['n']}\ns x${record['n']}y\n"
                    "j [1]\nlit __X__\ntm ${time}\nk${tag} v\n</record>");
    /* a whole placeholder keeps the type; JSON-looking values and __X__ stay text; keys are literal;
     * ${time} in text is the EventTime's seconds */
    MODIFY(f, "app.web", "{'n':5}",
           "{'n':5,'t':'web','s':'x5y','j':'[1]','lit':'__X__','tm':1700000000,'k${tag}':'v'}");
    filter_destroy(f);

    f = mkf("@type record_modifier\nremove_keys a, b\nallowlist_keys c\n<record>\nb 1\nc 2\n</record>");
    /* remove_keys wins over allowlist_keys; it removes keys <record> set too */
    MODIFY(f, "app", "{'a':1,'z':0}", "{'z':0,'c':'2'}");
    filter_destroy(f);

    f = mkf("@type record_modifier\nwhitelist_keys z, a, $.x\n<record>\nnew ${tag}\n</record>");
    /* kept in the record's order; names are plain keys */
    MODIFY(f, "app", "{'a':1,'b':2,'z':3,'$.x':4}", "{'a':1,'z':3,'$.x':4}");
    filter_destroy(f);

    f = mkf("@type record_modifier\nchar_encoding utf-8:utf-8\n<record>\nx y\n</record>");
    MODIFY(f, "app", "{'m':'caf\u00e9'}", "{'m':'caf\u00e9','x':'y'}");
    filter_destroy(f);

    f = mkf("@type record_modifier\nchar_encoding ascii-8bit:utf-8\n<record>\nx y\n</record>");
    MODIFY(f, "app", "{'m':'caf\u00e9','n':{'in':'\u00e9'}}", "{'m':'caf\ufffd\ufffd','n':{'in':'\u00e9'},'x':'y'}");
    filter_destroy(f);

    /* prepare_value: @variables evaluated once, later statements see earlier ones, usable in <record> and
     * <replace>; require skipped */
    f = mkf("@type record_modifier\nprepare_value require 'socket'; @a = 'x'.upcase; @n = 40 + 2; "
            "@l = [@a, @n.to_s].join('-')\n<record>\nv ${@l + '/' + tag}\nn ${@n}\n</record>\n"
            "<replace>\nkey m\nexpression /o/\nreplace 0\n</replace>");
    MODIFY(f, "app", "{'m':'foo'}", "{'m':'f00','v':'X-42/app','n':42}");
    filter_destroy(f);
    EXPECT_CONF_ERRORS("@type record_modifier\nprepare_value @x = 1; puts 'hi'",
                       "f.conf:3: prepare_value: only `@name = expression` statements (and require) are supported, "
                       "not 'puts 'hi''");
    EXPECT_CONF_ERRORS("@type record_modifier\nprepare_value @x = 1 / 0",
                       "f.conf:3: prepare_value: @x: divided by 0");
    EXPECT_CONF_ERRORS("@type record_modifier\nprepare_value @x == 1",
                       "f.conf:3: prepare_value: only `@name = expression` statements (and require) are supported, "
                       "not '@x == 1'");
    EXPECT_CONF_ERRORS("@type record_modifier\nprepare_value @x = 1\n<record>\ny ${@y}\n</record>",
                       "f.conf:5: unsupported Ruby in <record>: '${@y}': instance variable @y is not set "
                       "(record_modifier's prepare_value sets them)");
    EXPECT_CONF_ERRORS("@type record_transformer\nenable_ruby true\n<record>\ny ${@y}\n</record>",
                       "f.conf:5: unsupported Ruby in <record>: '${@y}': instance variable @y is not set "
                       "(record_modifier's prepare_value sets them)");
    EXPECT_CONF_ERRORS("@type record_modifier\nchar_encoding euc-jp:utf-8",
                       "f.conf:3: char_encoding 'euc-jp:utf-8' is not supported: weir keeps strings as UTF-8; "
                       "accepted: utf-8, utf-8:utf-8, ascii-8bit:utf-8 (binary, us-ascii)");
    EXPECT_CONF_ERRORS("@type record_modifier\n<replace>\nkey a\n</replace>",
                       "f.conf:3: <replace> needs 'expression' (key, expression and replace)");
    EXPECT_CONF_ERRORS("@type record_modifier\n<replace>\nkey a\nexpression /(a/\nreplace b\n</replace>",
                       "f.conf:5: <replace>: bad regexp /(a/: missing closing parenthesis at offset 2");

    /* <replace>: the README's example (named and numbered groups); a key that is absent, a value that does
     * not match: unchanged; a bare pattern; after <record>; not a string: the record fails (Ruby's error) */
    f = mkf("@type record_modifier\n<record>\nkey3 ${record['key3']}-it\n</record>\n"
            "<replace>\nkey key1\nexpression /^(?<start>.+).{2}(?<end>.+)$/\nreplace \\k<start>ors\\k<end>\n</replace>\n"
            "<replace>\nkey key2\nexpression /^(.{1}).{2}(.{1})$/\nreplace \\1ors\\2\n</replace>\n"
            "<replace>\nkey nokey\nexpression x\nreplace y\n</replace>\n"
            "<replace>\nkey key3\nexpression a/r\nreplace A/R\n</replace>");
    MODIFY(f, "app", "{'key1':'hoge','key2':'hoge','key3':'bar'}",
           "{'key1':'horse','key2':'horse','key3':'bar-it'}");
    MODIFY(f, "app", "{'key1':'no','key2':'hog','key3':'ba'}", "{'key1':'no','key2':'hog','key3':'ba-it'}");
    MODIFY(f, "app", "{'key3':'a/r'}", "{'key3':'A/R-it'}");
    expect_error(f, "app", "{'key1':7,'key3':''}",
                 "record_modifier: <replace> of 'key1' failed: undefined method `match?' for 7:Integer");
    filter_destroy(f);
}

static void test_stdout_filter(void **st)
{
    filter *f = mkf("@type stdout");
    KEEP(f, "app", "{'a':1}");
    filter_destroy(f);
    f = mkf("@type stdout\n<format>\n@type json\n</format>");
    KEEP(f, "app", "{'a':1}");
    filter_destroy(f);
}


static void test_prometheus_filter(void **st)
{
    filter *f = mkf("@type prometheus\n<labels>\nt ${tag_parts[0]}\nu ${nope}\n</labels>\n"
                    "<metric>\nname weir_unit_total\ntype counter\ndesc d\nkey n\n</metric>");
    KEEP(f, "app.x", "{'n':2}");
    KEEP(f, "app.x", "{'m':2}"); /* no value: nothing counted, the record goes on */
    expect_error_keep(f, "app.x", "{'n':'two'}", "prometheus: failed to instrument weir_unit_total: value must be a number");
    filter_destroy(f);
    EXPECT_CONF_ERRORS("@type prometheus\n<metric>\nname weir_unit_g\ntype gauge\ndesc d\n</metric>",
                       "f.conf:3: gauge metric requires 'key' option");
    EXPECT_CONF_ERRORS("@type prometheus\n<metric>\nname weir_unit_total\ntype gauge\ndesc d\nkey n\n</metric>",
                       "f.conf:4: weir_unit_total has already been registered as counter type");
    EXPECT_CONF_ERRORS("@type prometheus\n<metric>\nname weir_unit_init_total\ntype counter\ndesc d\ninitialized true\n"
                       "<labels>\ns ${status}\n</labels>\n<initlabels>\nx 1\n</initlabels>\n</metric>",
                       "f.conf:11: initialized metric weir_unit_init_total: <initlabels> must give label 's' (its value "
                       "comes from each record)");
}

int main(void)
{
    setenv("TZ", "UTC", 1); /* ${time} prints local time */
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),         cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_grep_basic),       cmocka_unit_test(test_grep_value_text),
        cmocka_unit_test(test_grep_and_or),      cmocka_unit_test(test_grep_legacy),
        cmocka_unit_test(test_grep_errors),      cmocka_unit_test(test_rt_static),
        cmocka_unit_test(test_rt_placeholders),  cmocka_unit_test(test_rt_typecast_and_keys),
        cmocka_unit_test(test_rt_remove_keep_renew), cmocka_unit_test(test_rt_renew_time),
        cmocka_unit_test(test_rt_errors),
        cmocka_unit_test(test_rt_enable_ruby),        cmocka_unit_test(test_parser_json_reserve),
        cmocka_unit_test(test_parser_merge_sizes), cmocka_unit_test(test_parser_prefix_hash),
        cmocka_unit_test(test_parser_invalid),
        cmocka_unit_test(test_parser_cri_partial_join),
        cmocka_unit_test(test_parser_invalid_utf8), cmocka_unit_test(test_parser_errors),
        cmocka_unit_test(test_k8s),              cmocka_unit_test(test_trace),
        cmocka_unit_test(test_ecs),              cmocka_unit_test(test_enrich_chain),
        cmocka_unit_test(test_chain_keep_in_the_middle),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_record_modifier), cmocka_unit_test(test_stdout_filter),
        cmocka_unit_test(test_prometheus_filter),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rx_thread_cleanup();
    return rc;
}
