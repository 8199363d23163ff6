/* Unit tests: <parse> @type grok (aggregator/parsers/grok.c, grok_expand.c) and its built-in pattern library
 * (grok_patterns.c): a table of lines each pattern must and must not match, expansion and its errors,
 * fields, types, time, grok_failure_key, grok_name_key, first match wins, custom pattern files, the match
 * limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/rx.h"
#include "config/conf.h"
#include "aggregator/parse.h"
#include "aggregator/parsers/grok.h"
#include "aggregator/record.h"
#include "filter_test_util.h"

/* ---- the pattern library: lines each pattern must match whole, and must not ------------------ */

typedef struct lib_case {
    const char *name;
    const char *yes[6];
    const char *no[6];
} lib_case;

static const lib_case LIB[] = {
    {"WORD", {"hello", "a_b9", "X"}, {"hello world", "", "a-b", "é"}},
    {"NOTSPACE", {"a-b/c?d", "x", "[x]"}, {"a b", "", "\t"}},
    {"SPACE", {"", " ", " \t "}, {"x", " x"}},
    {"DATA", {"", "anything at all"}, {"two\nlines"}},
    {"GREEDYDATA", {"", "anything: at all"}, {"a\nb"}},
    {"INT", {"0", "-12", "+7", "007"}, {"1.5", "", "12a", "- 1"}},
    {"POSINT", {"1", "42", "1000"}, {"0", "01", "-1", "4.2"}},
    {"NONNEGINT", {"0", "42", "007"}, {"-1", "4.2", ""}},
    {"BASE10NUM", {"0", "-1.5", "+.5", "3.14159", "42"}, {"1.", ".", "1.2.3", "1e5", "--1"}},
    {"NUMBER", {"12", "-0.25", ".5"}, {"1,5", "abc", "1.2.3"}},
    {"BASE16NUM", {"0xff", "DEADbeef", "-0X1A", "42"}, {"0xg", "xyz", ""}},
    {"QUOTEDSTRING",
     {"\"a b\"", "'it'", "\"esc \\\" quote\"", "`tick`", "\"\"", "'x \\' y'"},
     {"\"open", "noquotes", "\"a\"b\"", "'mixed\""}},
    {"QS", {"\"Opera/12.0\"", "\"-\""}, {"-", "\"a"}},
    {"UUID", {"5f2b8c1e-9a7d-4e3b-8c6f-1d2e3f4a5b6c", "00000000-0000-0000-0000-000000000000"},
     {"5f2b8c1e-9a7d-4e3b-8c6f-1d2e3f4a5b6", "5f2b8c1e9a7d4e3b8c6f1d2e3f4a5b6c", "zf2b8c1e-9a7d-4e3b-8c6f-1d2e3f4a5b6c"}},
    {"LOGLEVEL", {"INFO", "warn", "Warning", "ERROR", "err", "fatal"}, {"INFOS", "notalevel", "", "WARN!"}},
    {"USERNAME", {"alice", "bob.smith", "svc-01_x"}, {"a b", "al@ce", ""}},
    {"USER", {"root", "-"}, {"a:b", ""}},
    {"EMAILLOCALPART", {"alice", "first.last", "x+tag"}, {"a..b", ".a", "a b"}},
    {"EMAILADDRESS", {"alice@example.com", "first.last+x@mail.example.org"}, {"alice@", "@example.com", "a b@c.d"}},
    {"HTTPDUSER", {"frank", "-", "frank@example.com"}, {"fr ank", ""}},
    {"MAC", {"00:1a:2B:3c:4D:5e", "00-1A-2B-3C-4D-5E", "001a.2b3c.4d5e"}, {"00:1a:2b:3c:4d", "00:1a:2b:3c:4d:5g"}},
    {"CISCOMAC", {"001a.2b3c.4d5e"}, {"001a:2b3c:4d5e", "001a.2b3c"}},
    {"WINDOWSMAC", {"00-1A-2B-3C-4D-5E"}, {"00:1A:2B:3C:4D:5E", "00-1A-2B-3C-4D"}},
    {"COMMONMAC", {"00:1a:2b:3c:4d:5e"}, {"00-1a-2b-3c-4d-5e", "001a2b3c4d5e"}},
    {"IPV4", {"127.0.0.1", "192.168.0.1", "255.255.255.255", "0.0.0.0"}, {"256.1.1.1", "1.2.3", "1.2.3.4.5", "a.b.c.d"}},
    {"IPV6",
     {"::1", "2001:db8::1", "fe80::1ff:fe23:4567:890a", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "::ffff:192.0.2.1",
      "fe80::1%eth0"},
     {"1.2.3.4", ":::1", "2001:db8::1::2", "12345::1", "1:2:3:4:5:6:7:8:9", "g::1"}},
    {"IP", {"10.0.0.1", "::1", "2001:db8::42"}, {"10.0.0", "example.com", "::g"}},
    {"HOSTNAME", {"example.com", "web-01", "a.b.c.d.example.org.", "localhost"}, {"-web", "a..b", "a b", "_x"}},
    {"HOST", {"db1.internal"}, {"db 1"}},
    {"IPORHOST", {"10.1.2.3", "www.example.com", "fe80::1"}, {"a b", "-x"}},
    {"HOSTPORT", {"example.com:8080", "10.0.0.1:443"}, {"example.com", "example.com:0", "example.com:x"}},
    {"URIPROTO", {"http", "https", "svn+ssh", "git"}, {"1http", "", "ht tp"}},
    {"URIHOST", {"example.com", "example.com:8080", "[::1]:80", "10.0.0.1"}, {"example.com:", "a b"}},
    {"URIPATH", {"/", "/a/b/c.html", "/~user/x;y=1", "/a%20b"}, {"a/b", "", "/a b"}},
    {"URIPARAM", {"?a=1&b=2", "?", "?q=[x]&r=<y>"}, {"a=1", "?a b"}},
    {"URIPATHPARAM", {"/search?q=grok", "/index.html"}, {"search?q=1", "/a b"}},
    {"URI",
     {"http://example.com", "https://user:pw@example.com:8443/a/b?c=d", "ftp://10.0.0.1/pub", "http://[::1]:8080/x"},
     {"example.com/path", "http//example.com", "://x"}},
    {"UNIXPATH", {"/var/log/syslog", "/", "/a/b.c/d-e_f"}, {"var/log", "", "/a b"}},
    {"WINPATH", {"C:\\Windows\\System32", "\\\\server\\share"}, {"C:/Windows", "Windows"}},
    {"PATH", {"/usr/bin/env", "D:\\logs\\app.log"}, {"relative/path", "no"}},
    {"TTY", {"/dev/pts/0", "/dev/tty1", "/dev/ttyS0"}, {"/dev/sda", "pts/0"}},
    {"MONTH", {"Jan", "january", "SEP", "Sept", "December"}, {"Janu", "Foo", "13", "Decemb"}},
    {"MONTHNUM", {"1", "01", "9", "12"}, {"0", "13", "00"}},
    {"MONTHNUM2", {"01", "10", "12"}, {"1", "13", "00"}},
    {"MONTHDAY", {"1", "01", "15", "31"}, {"0", "32", "00"}},
    {"DAY", {"Mon", "monday", "Tue", "Thurs", "SUNDAY"}, {"Mo", "Monda", "Funday"}},
    {"YEAR", {"2024", "99", "1970"}, {"202", "20245", "y2k"}},
    {"HOUR", {"0", "09", "23"}, {"24", "123"}},
    {"MINUTE", {"00", "59"}, {"60", "5"}},
    {"SECOND", {"00", "59", "60", "07.123", "07,5"}, {"61", "1.", "x"}},
    {"TIME", {"12:34:56", "1:02:03", "23:59:60.5"}, {"24:00:00", "12:34", "12:60:00"}},
    {"DATE_US", {"2/16/2018", "12-31-99"}, {"13/16/2018", "2/32/2018"}},
    {"DATE_EU", {"16.2.2018", "31/12/1999", "1-1-20"}, {"32.1.2018", "16.13.2018"}},
    {"DATE", {"2/16/2018", "16.02.2018"}, {"2018-02-16", "16.02"}},
    {"DATESTAMP", {"2/16/2018 10:19:34", "16.02.2018-10:19:34"}, {"2/16/2018T10:19:34", "2/16/2018"}},
    {"TZ", {"UTC", "GMT", "PST", "CEST", "EDT"}, {"utc", "XYZ", "+0900"}},
    {"ISO8601_TIMEZONE", {"Z", "+09:00", "-0530", "+09"}, {"+25:00", "09:00", "z"}},
    {"ISO8601_SECOND", {"05", "59.999"}, {"61"}},
    {"TIMESTAMP_ISO8601",
     {"2014-01-01T00:00:00+0900", "2019-02-01 12:34:56", "2024-05-01T12:00:00.123Z", "2014-01-01 1000",
      "2024-05-01T12:00"},
     {"2024-13-01T00:00:00", "2024-05-01", "2024/05/01T12:00:00", "24-05-01X12:00"}},
    {"DATESTAMP_RFC822", {"Mon Aug 15 2005 15:52:01 UTC", "Tue Jan 2 2024 01:02:03 PST"}, {"Mon Aug 15 2005 15:52:01"}},
    {"DATESTAMP_RFC2822", {"Mon, 15 Aug 2005 15:52:01 +0000", "Tue, 2 Jan 2024 01:02:03 Z"},
     {"Mon 15 Aug 2005 15:52:01 +0000", "Mon, 15 Aug 2005 15:52:01 UTC"}},
    {"DATESTAMP_OTHER", {"Mon Aug 15 15:52:01 UTC 2005"}, {"Mon Aug 15 2005 15:52:01 UTC"}},
    {"DATESTAMP_EVENTLOG", {"20240501123456"}, {"2024-05-01 12:34:56", "20241301123456"}},
    {"HTTPDATE", {"28/Feb/2013:12:00:00 +0900", "01/Jan/2024:00:00:00 -0000"}, {"28/Feb/2013 12:00:00 +0900",
                                                                                  "28-Feb-2013:12:00:00 +0900"}},
    {"HTTPDERROR_DATE", {"Wed Oct 11 14:32:52 2000", "Mon Jan 01 00:00:00.123456 2024"}, {"Wed Oct 11 2000"}},
    {"SYSLOGTIMESTAMP", {"Aug 01 00:00:00", "Aug  1 00:00:00", "Dec 31 23:59:59"}, {"Aug 01", "2024-08-01 00:00:00"}},
    {"PROG", {"sshd", "postfix/smtpd", "CRON", "kernel"}, {"a b", "sshd[12]", "x:y", ""}},
    {"SYSLOGPROG", {"sshd[1234]", "kernel", "postfix/smtpd[99]"}, {"sshd[x]", "sshd [1]"}},
    {"SYSLOGHOST", {"myhost", "10.0.0.5"}, {"my host"}},
    {"SYSLOGFACILITY", {"<13.6>", "<0.0>"}, {"<13>", "<a.b>"}},
    {"SYSLOGBASE", {"Aug  1 12:00:00 myhost sshd[1234]:", "Dec 31 23:59:59 <4.3> 10.0.0.1 kernel:"},
     {"Aug  1 12:00:00 myhost sshd[1234]", "myhost sshd: x"}},
    {"SYSLOGLINE", {"Aug  1 12:00:00 myhost sshd[1234]: Accepted publickey for alice", "Oct 10 13:55:36 h cron:"},
     {"Accepted publickey for alice"}},
    {"HTTPD_COMMONLOG",
     {"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326",
      "::1 - - [10/Oct/2000:13:55:36 -0700] \"-\" 400 -"},
     {"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] GET /apache_pb.gif 200 2326"}},
    {"HTTPD_COMBINEDLOG",
     {"127.0.0.1 192.168.0.1 - [28/Feb/2013:12:00:00 +0900] \"GET / HTTP/1.1\" 200 777 \"-\" \"Opera/12.0\""},
     {"127.0.0.1 192.168.0.1 - [28/Feb/2013:12:00:00 +0900] \"GET / HTTP/1.1\" 200 777"}},
    {"COMMONAPACHELOG", {"10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] \"POST /api HTTP/2.0\" 201 12"},
     {"10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] \"POST /api HTTP/2.0\" 201"}},
    {"COMBINEDAPACHELOG",
     {"10.0.0.1 - alice [01/Jan/2024:00:00:00 +0000] \"GET /x?y=1 HTTP/1.1\" 304 0 \"https://ref/\" \"curl/8.0\""},
     {"10.0.0.1 - alice [01/Jan/2024:00:00:00 +0000] \"GET /x HTTP/1.1\" 304 0 https://ref/ curl"}},
    {"HTTPD20_ERRORLOG", {"[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration"},
     {"[Wed Oct 11 14:32:52 2000] error client denied"}},
    {"HTTPD24_ERRORLOG",
     {"[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 1234:tid 5678] [client 10.0.0.1:5555] AH00126: bad"},
     {"[Wed Oct 11 14:32:52 2000] [core:error] [pid x] bad"}},
    {"HTTPD_ERRORLOG",
     {"[Wed Oct 11 14:32:52 2000] [error] oops", "[Wed Oct 11 14:32:52 2000] [:warn] [pid 1] oops"},
     {"Wed Oct 11 14:32:52 2000 error oops"}},
    {"NGINX_ACCESS",
     {"192.0.2.10 - - [01/May/2024:12:00:00 +0000] \"GET /healthz HTTP/1.1\" 200 2 \"-\" \"kube-probe/1.29\"",
      "192.0.2.10 - bob [01/May/2024:12:00:00 +0000] \"GET / HTTP/2.0\" 404 - \"https://x/\" \"curl\" \"10.0.0.1\""},
     {"192.0.2.10 - - [01/May/2024:12:00:00 +0000] \"GET /healthz HTTP/1.1\" OK 2 \"-\" \"kube-probe/1.29\""}},
    {"JAVACLASS", {"java.lang.String", "Main", "com.example.$Proxy12"}, {"java..lang", "1java.lang", ".Main"}},
    {"JAVAMETHOD", {"run", "<init>", "<clinit>", "lambda$main$0"}, {"<foo>", "1run"}},
    {"JAVAFILE", {"Main.java", "Native Method", "Unknown Source"}, {"Main.java:12", "(x)"}},
    {"JAVASTACKTRACEPART",
     {"\tat com.example.Foo.bar(Foo.java:42)", "    at java.lang.Thread.run(Thread.java)",
      "at sun.reflect.NativeMethodAccessorImpl.invoke0(Native Method)"},
     {"at com.example.Foo.bar", "\tat com.example.Foo.bar(Foo.java:x)"}},
};
#define NLIB (sizeof LIB / sizeof LIB[0])

static int whole_match(const grok_set *set, const char *name, const char *line, char *why, size_t whylen)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\\A(?:%%{%s})\\z", name);
    grok_expansion x;
    if (grok_expand(set, pat, &x, why, whylen))
        return -1;
    rx r;
    if (rx_compile(&r, x.regexp, RX_SHORT_ERR, why, whylen)) {
        grok_expansion_free(&x);
        return -1;
    }
    int m = rx_match(&r, (const uint8_t *)line, strlen(line));
    rx_free(&r);
    grok_expansion_free(&x);
    return m;
}

static void test_library_table(void **st)
{
    for (int series = GROK_LEGACY; series <= GROK_ECS_V1; series++) {
        grok_set *set = grok_set_new(series);
        assert_non_null(set);
        int bad = 0;
        for (size_t i = 0; i < NLIB; i++) {
            char why[512] = "";
            for (size_t k = 0; k < 6 && LIB[i].yes[k]; k++)
                if (whole_match(set, LIB[i].name, LIB[i].yes[k], why, sizeof why) != 1) {
                    print_error("%s (series %d) should match '%s' %s\n", LIB[i].name, series, LIB[i].yes[k], why);
                    bad++;
                }
            for (size_t k = 0; k < 6 && LIB[i].no[k]; k++)
                if (whole_match(set, LIB[i].name, LIB[i].no[k], why, sizeof why) != 0) {
                    print_error("%s (series %d) should not match '%s'\n", LIB[i].name, series, LIB[i].no[k]);
                    bad++;
                }
        }
        grok_set_free(set);
        assert_int_equal(bad, 0);
    }
    /* every built-in pattern has rows */
    for (const grok_def *d = grok_builtin; d->name; d++) {
        int found = 0;
        for (size_t i = 0; i < NLIB && !found; i++)
            found = !strcmp(LIB[i].name, d->name) && LIB[i].yes[0] && LIB[i].no[0];
        if (!found)
            fail_msg("built-in grok pattern %s has no rows in the table", d->name);
    }
}

/* ---- <parse> @type grok ------------------------------------------------------------------------- */

typedef struct tp {
    parser p;
    conf_node *root;
    conf_errors errs;
} tp;

static tp *mk(const char *body)
{
    tp *t = calloc(1, sizeof *t);
    char text[8192];
    snprintf(text, sizeof text, "<parse>\n@type grok\n%s\n</parse>\n", body);
    t->root = conf_parse_string(text, "g.conf", &t->errs);
    assert_non_null(t->root);
    assert_int_equal(t->root->nchildren, 1);
    if (parse_configure(&t->p, t->root->children[0], &t->errs) != 0 && t->errs.n == 0)
        fail_msg("parse_configure failed without an error message");
    return t;
}

static void rm(tp *t)
{
    parse_free(&t->p);
    conf_free(t->root);
    conf_errors_free(&t->errs);
    free(t);
}

static tp *mk_ok(const char *body)
{
    tp *t = mk(body);
    for (size_t i = 0; i < t->errs.n; i++)
        print_error("unexpected config error: %s\n", t->errs.msgs[i]);
    assert_int_equal(t->errs.n, 0);
    return t;
}

static void expect_conf_error(const char *body, const char *want)
{
    tp *t = mk(body);
    if (t->errs.n != 1 || strcmp(t->errs.msgs[0], want))
        for (size_t i = 0; i < t->errs.n; i++)
            print_error("error %zu: %s\n", i, t->errs.msgs[i]);
    assert_int_equal(t->errs.n, 1);
    assert_string_equal(t->errs.msgs[0], want);
    rm(t);
}

typedef struct result {
    int rc;
    char *json;
    char err[256];
    int has_time;
    uint32_t sec, nsec;
} result;

static result run(tp *t, const char *text)
{
    result r = {0};
    wbuf out = {0};
    wbuf_add(&out, "P", 1);
    r.rc = parse_text(&t->p, text, strlen(text), &out, &r.has_time, &r.sec, &r.nsec, r.err, sizeof r.err);
    assert_memory_equal(out.data, "P", 1);
    if (r.rc == PARSE_OK)
        r.json = M2J(out.data + 1, out.len - 1);
    else
        assert_int_equal(out.len, 1);
    wbuf_free(&out);
    return r;
}

#define OK(t, text, want)                                                                                            \
    do {                                                                                                             \
        result r_ = run(t, text);                                                                                    \
        if (r_.rc != PARSE_OK)                                                                                       \
            fail_msg("parse of %s failed: %d %s", text, r_.rc, r_.err);                                              \
        assert_string_equal(r_.json, want);                                                                          \
        free(r_.json);                                                                                               \
    } while (0)

static void test_fields_and_order(void **st)
{
    tp *t = mk_ok("grok_pattern %{MAC:mac_address} %{IP:ip_address}");
    OK(t, "this.wont.match DEAD.BEEF.1234 127.0.0.1", "{\"mac_address\":\"DEAD.BEEF.1234\",\"ip_address\":\"127.0.0.1\"}");
    rm(t);
    /* a regexp named group beside grok fields; %{DATE} inside it is not a field */
    t = mk_ok("grok_pattern \\[(?<date>%{DATE} %{TIME} (?:AM|PM))\\] %{WORD:w}");
    OK(t, "[2/16/2018 10:19:34 AM] x", "{\"date\":\"2/16/2018 10:19:34 AM\",\"w\":\"x\"}");
    rm(t);
    /* the plugin's legacy COMBINEDAPACHELOG test: quotes kept on QS fields, unmatched rawrequest left out */
    t = mk_ok("grok_pattern %{COMBINEDAPACHELOG}\ntime_key timestamp\ntime_format %d/%b/%Y:%H:%M:%S %z");
    result r = run(t, "127.0.0.1 192.168.0.1 - [28/Feb/2013:12:00:00 +0900] \"GET / HTTP/1.1\" 200 777 \"-\" "
                      "\"Opera/12.0\"");
    assert_int_equal(r.rc, PARSE_OK);
    assert_string_equal(r.json, "{\"clientip\":\"127.0.0.1\",\"ident\":\"192.168.0.1\",\"auth\":\"-\",\"verb\":\"GET\","
                                "\"request\":\"/\",\"httpversion\":\"1.1\",\"response\":\"200\",\"bytes\":\"777\","
                                "\"referrer\":\"\\\"-\\\"\",\"agent\":\"\\\"Opera/12.0\\\"\"}");
    assert_int_equal(r.has_time, 1);
    assert_int_equal(r.sec, 1362020400);
    free(r.json);
    rm(t);
    /* ecs-v1: [a][b] fields are dotted keys, typed integers */
    t = mk_ok("grok_pattern_series ecs-v1\n<grok>\npattern %{HTTPD_COMBINEDLOG}\ntime_key timestamp\n"
              "time_format %d/%b/%Y:%H:%M:%S %z\n</grok>");
    r = run(t, "127.0.0.1 192.168.0.1 - [28/Feb/2013:12:00:00 +0900] \"GET / HTTP/1.1\" 200 777 \"-\" \"Opera/12.0\"");
    assert_int_equal(r.rc, PARSE_OK);
    assert_string_equal(r.json, "{\"source.address\":\"127.0.0.1\",\"apache.access.user.identity\":\"192.168.0.1\","
                                "\"http.request.method\":\"GET\",\"url.original\":\"/\",\"http.version\":\"1.1\","
                                "\"http.response.status_code\":200,\"http.response.body.bytes\":777,"
                                "\"user_agent.original\":\"Opera/12.0\"}");
    assert_int_equal(r.sec, 1362020400);
    free(r.json);
    rm(t);
    /* a field written twice: the last group that matched */
    t = mk_ok("grok_pattern %{INT:n}-%{WORD:w}|%{WORD:w}");
    OK(t, "1-a", "{\"n\":\"1\",\"w\":\"a\"}");
    OK(t, "zz", "{\"w\":\"zz\"}");
    rm(t);
    /* a field name PCRE2 would refuse as a group name */
    t = mk_ok("grok_pattern %{WORD:a.b-c@d}");
    OK(t, "x", "{\"a.b-c@d\":\"x\"}");
    rm(t);
}

static void test_types(void **st)
{
    tp *t = mk_ok("grok_pattern %{INT:user_id:integer} paid %{NUMBER:paid_amount:float}");
    OK(t, "12345 paid 6789.10", "{\"user_id\":12345,\"paid_amount\":6789.1}");
    rm(t);
    t = mk_ok("grok_pattern %{GREEDYDATA:message:array}");
    OK(t, "a,b,c,d", "{\"message\":[\"a\",\"b\",\"c\",\"d\"]}");
    rm(t);
    t = mk_ok("grok_pattern %{GREEDYDATA:message:array:|}");
    OK(t, "a|b|c|d", "{\"message\":[\"a\",\"b\",\"c\",\"d\"]}");
    rm(t);
    t = mk_ok("grok_pattern %{WORD:ok:bool} %{WORD:s:string} %{INT:n}");
    OK(t, "true x 5", "{\"ok\":true,\"s\":\"x\",\"n\":\"5\"}");
    OK(t, "no x 5", "{\"ok\":false,\"s\":\"x\",\"n\":\"5\"}");
    rm(t);
    /* time types: the event-time-ext value, with and without a format (the format may hold blanks and ':') */
    t = mk_ok("grok_pattern %{TIMESTAMP_ISO8601:stamp:time:%Y-%m-%d %H%M}");
    wbuf out = {0};
    int ht;
    uint32_t s, ns;
    char err[128];
    assert_int_equal(parse_text(&t->p, "at 2014-01-01 1000", 18, &out, &ht, &s, &ns, err, sizeof err), PARSE_OK);
    wbuf want = {0};
    mpw_map(&want, 1);
    mpw_str(&want, "stamp", 5);
    mpw_eventtime(&want, 1388570400 - 0, 0); /* localtime: the test runs with TZ=UTC */
    if (getenv("TZ") && !strcmp(getenv("TZ"), "UTC")) {
        assert_int_equal(out.len, want.len);
        assert_memory_equal(out.data, want.data, want.len);
    }
    wbuf_free(&out);
    wbuf_free(&want);
    rm(t);
    t = mk_ok("<grok>\npattern \\[%{HTTPDATE:log_timestamp:time:%d/%b/%Y:%H:%M:%S %z}\\] %{GREEDYDATA:message}\n</grok>");
    out = (wbuf){0};
    const char *line = "[03/Feb/2019:06:47:21 +0530] Python-urllib/2.7";
    assert_int_equal(parse_text(&t->p, line, strlen(line), &out, &ht, &s, &ns, err, sizeof err), PARSE_OK);
    want = (wbuf){0};
    mpw_map(&want, 2);
    mpw_str(&want, "log_timestamp", 13);
    mpw_eventtime(&want, 1549156641, 0);
    mpw_str(&want, "message", 7);
    mpw_str(&want, "Python-urllib/2.7", 17);
    assert_int_equal(out.len, want.len);
    assert_memory_equal(out.data, want.data, want.len);
    wbuf_free(&out);
    wbuf_free(&want);
    rm(t);
    /* the last occurrence's type wins (an occurrence without a type is a string) */
    t = mk_ok("grok_pattern %{INT:a:integer}x|%{INT:a}y");
    OK(t, "1x", "{\"a\":\"1\"}");
    rm(t);
    /* `types` of the <parse> section applies too; a type in the pattern wins over it */
    t = mk_ok("grok_pattern %{INT:a} %{INT:b:float}\ntypes a:integer,b:integer");
    OK(t, "1 2", "{\"a\":1,\"b\":2.0}");
    rm(t);
    /* null_empty_string and null_value_pattern apply to every alternative */
    t = mk_ok("null_value_pattern ^-$\nnull_empty_string true\n<grok>\npattern ^%{DATA:a},%{DATA:b}$\n</grok>");
    OK(t, ",-", "{\"a\":null,\"b\":null}");
    rm(t);
}

static void test_time(void **st)
{
    /* time_key `time` by default, removed unless keep_time_key */
    tp *t = mk_ok("grok_pattern %{TIMESTAMP_ISO8601:time}");
    result r = run(t, "Some stuff at 2014-01-01T00:00:00+0900");
    assert_int_equal(r.rc, PARSE_OK);
    assert_string_equal(r.json, "{}");
    assert_int_equal(r.sec, 1388502000);
    free(r.json);
    rm(t);
    t = mk_ok("keep_time_key true\n<grok>\npattern \"%{TIMESTAMP_ISO8601:time}\"\n</grok>");
    r = run(t, "Some stuff at 2014-01-01T00:00:00+0900");
    assert_string_equal(r.json, "{\"time\":\"2014-01-01T00:00:00+0900\"}");
    assert_int_equal(r.sec, 1388502000);
    free(r.json);
    rm(t);
    /* per-section time_key, time_format and timezone */
    t = mk_ok("<grok>\npattern %{TIMESTAMP_ISO8601:ts} 1 %{GREEDYDATA:message}\ntime_key ts\n"
              "time_format %Y-%m-%d %H:%M:%S\ntimezone +01:00\n</grok>\n"
              "<grok>\npattern %{TIMESTAMP_ISO8601:time} 2 %{GREEDYDATA:message}\ntime_format %Y-%m-%d %H:%M:%S\n"
              "timezone +03:00\n</grok>");
    r = run(t, "2019-02-01 12:34:56 1 This is test");
    assert_string_equal(r.json, "{\"message\":\"This is test\"}");
    assert_int_equal(r.sec, 1549020896);
    free(r.json);
    r = run(t, "2019-02-01 12:34:56 2 This is test");
    assert_string_equal(r.json, "{\"message\":\"This is test\"}");
    assert_int_equal(r.sec, 1549020896 - 2 * 3600);
    free(r.json);
    rm(t);
    /* the <parse> section's time_key and time_format are the sections' defaults */
    t = mk_ok("time_key when\ntime_format %d/%m/%Y\n<grok>\npattern ^%{NOTSPACE:when} %{WORD:w}\n</grok>");
    r = run(t, "02/01/2019 x");
    assert_string_equal(r.json, "{\"w\":\"x\"}");
    assert_int_equal(r.has_time, 1);
    free(r.json);
    /* a time that does not parse fails the record, as with @type regexp */
    r = run(t, "nope x");
    assert_int_equal(r.rc, PARSE_FAIL);
    assert_string_equal(r.err, "invalid time format: value = nope");
    rm(t);
}

static void test_failure_and_name_keys(void **st)
{
    /* no match: the plugin's record {"message": text}, with the failure key when set */
    tp *t = mk_ok("grok_failure_key grok_failure\n<grok>\npattern %{PATH:path}\n</grok>");
    OK(t, "no such pattern", "{\"message\":\"no such pattern\",\"grok_failure\":\"No grok pattern matched\"}");
    OK(t, "/", "{\"path\":\"/\"}");
    parse_stats st0;
    assert_int_equal(parse_stats_get(&t->p, &st0), 1);
    assert_int_equal(st0.unmatched, 1);
    assert_int_equal(st0.match_limit, 0);
    rm(t);
    t = mk_ok("<grok>\npattern %{PATH:path}\n</grok>");
    OK(t, "no such pattern", "{\"message\":\"no such pattern\"}");
    rm(t);
    /* the failure key is the message key: the reason replaces the text */
    t = mk_ok("grok_failure_key message\ngrok_pattern %{IP:ip}");
    OK(t, "none here", "{\"message\":\"No grok pattern matched\"}");
    rm(t);
    /* names: the section's name, else its index; grok_pattern for grok_pattern */
    t = mk_ok("grok_name_key grok_name\n<grok>\nname path\npattern %{PATH:path}\n</grok>\n"
              "<grok>\npattern %{IP:ip_address}\n</grok>");
    OK(t, "/", "{\"path\":\"/\",\"grok_name\":\"path\"}");
    OK(t, "127.0.0.1", "{\"ip_address\":\"127.0.0.1\",\"grok_name\":1}");
    rm(t);
    t = mk_ok("grok_name_key which\ngrok_pattern %{WORD:w}");
    OK(t, "x", "{\"w\":\"x\",\"which\":\"grok_pattern\"}");
    rm(t);
    /* the name key is a field: the name replaces its value in place (Ruby's record[k] = name) */
    t = mk_ok("grok_name_key w\n<grok>\nname n1\npattern %{WORD:w} %{INT:i}\n</grok>");
    OK(t, "x 1", "{\"w\":\"n1\",\"i\":\"1\"}");
    rm(t);
    /* first match wins, in order, even when a later one would match earlier in the text */
    t = mk_ok("grok_name_key g\n<grok>\nname num\npattern %{INT:n}\n</grok>\n<grok>\nname word\npattern %{WORD:w}\n"
              "</grok>\n<grok>\nname all\npattern %{GREEDYDATA:rest}\n</grok>");
    OK(t, "abc 42", "{\"n\":\"42\",\"g\":\"num\"}");
    OK(t, "abc", "{\"w\":\"abc\",\"g\":\"word\"}");
    OK(t, "!!", "{\"rest\":\"!!\",\"g\":\"all\"}");
    rm(t);
    /* invalid UTF-8 fails as with @type regexp (the parser filter's replace_invalid_sequence applies) */
    t = mk_ok("grok_pattern %{GREEDYDATA:m}");
    result r = run(t, "a\xff");
    assert_int_equal(r.rc, PARSE_BADUTF8);
    rm(t);
}

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_custom_patterns(void **st)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/weir-grok-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    char dir[128], one[160], body[512];
    snprintf(dir, sizeof dir, "%s/pat", tmpdir);
    mkdir(dir, 0700);
    write_file("pat/10-base", "# comment\n\nMY_AWESOME_PATTERN this is awesome\n  APP_ID app-%{INT}\r\n"
                              "WORD [a-z]+\n");
    write_file("pat/20-more", "APP_LINE %{APP_ID:app} %{WORD:word}\nNODEF\n");
    write_file("pat/.hidden", "APP_LINE broken(\n");
    mkdir(strcat(strcpy(one, dir), "/sub"), 0700); /* a directory inside is skipped */
    snprintf(one, sizeof one, "%s/pat/10-base", tmpdir);

    snprintf(body, sizeof body, "grok_pattern %%{MY_AWESOME_PATTERN:message}\ncustom_pattern_path %s", one);
    tp *t = mk_ok(body);
    OK(t, "this is awesome", "{\"message\":\"this is awesome\"}");
    rm(t);
    /* a directory: files in name order, a later definition replaces a built-in one (WORD) */
    snprintf(body, sizeof body, "grok_pattern %%{APP_LINE}\ncustom_pattern_path %s", dir);
    t = mk_ok(body);
    OK(t, "app-42 hello9", "{\"app\":\"app-42\",\"word\":\"hello\"}");
    rm(t);
    snprintf(body, sizeof body, "grok_pattern %%{NODEF:x}\ncustom_pattern_path %s", dir);
    char want[512];
    snprintf(want, sizeof want, "g.conf:3: grok pattern %%{NODEF} has no regexp (%s/20-more:2) in grok pattern '%%{NODEF:x}'",
             dir);
    expect_conf_error(body, want);
    snprintf(body, sizeof body, "grok_pattern %%{X:x}\ncustom_pattern_path %s/nope", tmpdir);
    snprintf(want, sizeof want, "g.conf:4: custom_pattern_path: %s/nope: No such file or directory", tmpdir);
    expect_conf_error(body, want);
    /* loops through files */
    write_file("loop", "A x%{B}\nB y%{C:c}\nC %{A}\n");
    snprintf(body, sizeof body, "grok_pattern %%{A:a}\ncustom_pattern_path %s/loop", tmpdir);
    expect_conf_error(body, "g.conf:3: grok pattern loop: %{A} -> %{B} -> %{C} -> %{A} in grok pattern '%{A:a}'");
    /* an unknown name inside a definition says where that definition is */
    write_file("unk", "OUTER %{INNER_MISSING}\n");
    snprintf(body, sizeof body, "grok_pattern x%%{OUTER:o}\ncustom_pattern_path %s/unk", tmpdir);
    snprintf(want, sizeof want,
             "g.conf:3: unknown grok pattern %%{INNER_MISSING} (in the definition of OUTER, %s/unk:1) in grok pattern "
             "'x%%{OUTER:o}'",
             tmpdir);
    expect_conf_error(body, want);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    assert_int_equal(system(cmd), 0);
}

static void test_expansion_errors(void **st)
{
    expect_conf_error("grok_pattern %{NOPE:x}", "g.conf:3: unknown grok pattern %{NOPE} in grok pattern '%{NOPE:x}'");
    expect_conf_error("<grok>\npattern %{IP:ip}\n</grok>\n<grok>\nname b\npattern x %{IPV5:ip}\n</grok>",
                      "g.conf:8: unknown grok pattern %{IPV5} in grok pattern 'x %{IPV5:ip}'");
    expect_conf_error("grok_pattern (%{WORD:w}",
                      "g.conf:3: invalid regexp from grok pattern '(%{WORD:w}': missing closing parenthesis at offset "
                      "18 of its expansion '((?<__wg0>\\b\\w+\\b)'");
    expect_conf_error("grok_pattern %{IP}", "g.conf:3: grok pattern '%{IP}' names no field: write %{PATTERN:field} "
                                            "(fluent-plugin-grok-parser drops such a pattern)");
    expect_conf_error("", "g.conf:1: no grok patterns in <parse>: set grok_pattern or add <grok> sections");
    expect_conf_error("grok_pattern %{IP:ip}\n<grok>\npattern %{IP:ip}\n</grok>",
                      "g.conf:3: grok_pattern and <grok> sections together: fluent-plugin-grok-parser would use "
                      "grok_pattern only; keep one");
    expect_conf_error("<grok>\nname x\n</grok>", "g.conf:3: missing required parameter 'pattern' in <grok>");
    expect_conf_error("grok_pattern %{IP:ip}\ngrok_pattern_series ecs", "g.conf:4: invalid value 'ecs' for parameter 'grok_pattern_series'; "
                                                 "expected one of: legacy, ecs-v1");
    expect_conf_error("grok_pattern %{IP:ip}\ngrok_match_limit -1",
                      "g.conf:4: grok_match_limit must be between 0 and 4294967295");
    expect_conf_error("<grok>\npattern %{IP:ip}\ntimezone Berlin\n</grok>",
                      "g.conf:5: timezone 'Berlin' is not supported: a fixed offset like +09:00 or a zone name like "
                      "Asia/Tokyo");
    expect_conf_error("grok_pattern %{INT:a:time:%Q%Q%Q}x\ntypes a:bogus",
                      "g.conf:4: unknown value conversion for key:'a', type:'bogus'");

    /* what is not a reference stays as written (the plugin's PATTERN_RE) */
    grok_set *set = grok_set_new(GROK_LEGACY);
    char err[256];
    grok_expansion x;
    assert_int_equal(grok_expand(set, "a%{2,3}b %{} %{WORD:x y} %{INT:n:integer}", &x, err, sizeof err), 0);
    assert_string_equal(x.regexp, "a%{2,3}b %{} %{WORD:x y} (?<__wg0>[+-]?[0-9]+)");
    assert_int_equal(x.nfields, 1);
    assert_string_equal(x.fields[0].key, "n");
    assert_string_equal(x.fields[0].type, "integer");
    grok_expansion_free(&x);
    /* the field is the shortest that leaves a type or the end: %{A:b:c} is the field "b:c" */
    assert_int_equal(grok_expand(set, "%{WORD:b:c}%{WORD:[x][y]:time}%{WORD:d:array:|}%{WORD:e:time:%H}}", &x, err,
                                 sizeof err),
                     0);
    assert_int_equal(x.nfields, 4);
    assert_string_equal(x.fields[0].key, "b:c");
    assert_null(x.fields[0].type);
    assert_string_equal(x.fields[1].key, "x.y");
    assert_string_equal(x.fields[1].type, "time");
    assert_string_equal(x.fields[2].type, "array:|");
    assert_string_equal(x.fields[3].type, "time:%H");
    assert_string_equal(x.regexp + x.len - 2, ")}");
    grok_expansion_free(&x);
    /* a self reference, nesting and size limits */
    assert_int_equal(grok_set_put(set, "SELF", 4, "a%{SELF}", 8, "f", 1), 0);
    assert_int_equal(grok_expand(set, "%{SELF}", &x, err, sizeof err), -1);
    assert_string_equal(err, "grok pattern loop: %{SELF} -> %{SELF}");
    char def[32];
    for (int i = 0; i < 70; i++) {
        char name[16];
        snprintf(name, sizeof name, "N%d", i);
        snprintf(def, sizeof def, "%%{N%d}", i + 1);
        assert_int_equal(grok_set_put(set, name, strlen(name), def, strlen(def), "f", i), 0);
    }
    assert_int_equal(grok_expand(set, "%{N0}", &x, err, sizeof err), -1);
    assert_string_equal(err, "grok patterns nested more than 64 deep at %{N64}");
    for (int i = 0; i < 30; i++) { /* each doubles: 2^30 copies */
        char name[16];
        snprintf(name, sizeof name, "D%d", i);
        snprintf(def, sizeof def, "%%{D%d}%%{D%d}", i + 1, i + 1);
        assert_int_equal(grok_set_put(set, name, strlen(name), def, strlen(def), "f", i), 0);
    }
    assert_int_equal(grok_set_put(set, "D30", 3, "xxxxxxxx", 8, "f", 30), 0);
    assert_int_equal(grok_expand(set, "%{D0}", &x, err, sizeof err), -1);
    assert_string_equal(err, "grok pattern expands to more than 1048576 bytes");
    grok_set_free(set);
}

/* ---- the literal prefilter -------------------------------------------------------------------------- */

static void test_required_literal(void **st)
{
    static const char *const cases[][2] = {
        {"%{MAC:mac} associated with %{IP:ip}", " associated with "},
        {"%{IPORHOST:c} - - \\[%{HTTPDATE:ts}\\] \"%{WORD:v}", " - - ["},
        {"%{HOSTNAME:h} kernel: \\[%{NUMBER:u}\\]", " kernel: ["},
        {"abcd?ef", "abc"},          /* d is optional */
        {"xx{2}yyy", "yyy"},         /* {2} is no text, and its x is repeated */
        {"abc(?:def|ghi)jk", "abc"}, /* in a group: not required as such */
        {"ab|cdefgh", NULL},         /* an alternation at the top */
        {"(?i)hello world", NULL},   /* inline flags */
        {"(?x) hello world", NULL},
        {"\\Qabc.def\\E", NULL},
        {"a.bc\\d+efgh", "efgh"},
        {"[abc]defg[h]", "defg"},
        {"x[\\]]abcd", "abcd"},
        {"%{WORD:w}", NULL},
        {"ab", NULL},           /* too short */
        {"abcé?", "abc"},       /* the quantified character is dropped whole */
        {"%{2,3}abcd", "abcd"}, /* no reference: '%', then a quantifier */
        {"foo+bar", "bar"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n;
        char *lit = grok_required_literal(cases[i][0], &n);
        if (!cases[i][1] ? lit != NULL : !lit || strcmp(lit, cases[i][1]) || n != strlen(cases[i][1]))
            fail_msg("pattern %s: literal '%s', want '%s'", cases[i][0], lit ? lit : "(none)",
                     cases[i][1] ? cases[i][1] : "(none)");
        free(lit);
    }
    /* the prefilter changes what runs, never what matches */
    tp *t = mk_ok("grok_name_key g\n<grok>\nname mac\npattern %{MAC:mac} associated with %{IP:ip}\n</grok>\n"
                  "<grok>\nname any\npattern %{GREEDYDATA:all}\n</grok>");
    OK(t, "wlan0: 00:1a:2b:3c:4d:5e associated with 10.0.0.9", "{\"mac\":\"00:1a:2b:3c:4d:5e\",\"ip\":\"10.0.0.9\",\"g\":\"mac\"}");
    OK(t, "00:1a:2b:3c:4d:5e associated to 10.0.0.9", "{\"all\":\"00:1a:2b:3c:4d:5e associated to 10.0.0.9\",\"g\":\"any\"}");
    rm(t);
}

/* ---- the match limit ---------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_match_limit(void **st)
{
    /* a nested quantifier over a long line that almost matches: catastrophic backtracking, stopped */
    char line[4096];
    memset(line, 'a', 4000);
    strcpy(line + 4000, "!");
    const char *redos = "<grok>\nname redos\npattern ^(?<w>(?:a|aa)+)+$\n</grok>\n<grok>\nname rest\n"
                        "pattern %{GREEDYDATA:rest}\n</grok>";
    char body[512];
    snprintf(body, sizeof body, "grok_failure_key grokfailure\n%s", redos);
    tp *t = mk_ok(body);
    double t0 = now_s();
    result r = run(t, line);
    double dt = now_s() - t0;
    assert_int_equal(r.rc, PARSE_OK);
    char want[4200];
    snprintf(want, sizeof want, "{\"message\":\"%s\",\"grokfailure\":\"Grok match limit exceeded\"}", line);
    assert_string_equal(r.json, want);
    free(r.json);
    print_message("[          ] a ReDoS line stopped at the default match limit in %.1f ms\n", dt * 1e3);
    assert_true(dt < 0.5); /* default limit: a few ms in practice; generous for a sanitizer build */
    parse_stats s;
    parse_stats_get(&t->p, &s);
    assert_int_equal(s.match_limit, 1);
    assert_int_equal(s.unmatched, 0);
    OK(t, "aaaa", "{\"w\":\"aaaa\"}"); /* the same pattern on a line it matches */
    /* a short line (one search in the fast pass) that explodes at one position */
    r = run(t, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!");
    assert_int_equal(r.rc, PARSE_OK);
    assert_non_null(strstr(r.json, "Grok match limit exceeded"));
    free(r.json);
    parse_stats_get(&t->p, &s);
    assert_int_equal(s.match_limit, 2);
    rm(t);
    /* without grok_failure_key: a parse failure */
    t = mk_ok(redos);
    r = run(t, line);
    assert_int_equal(r.rc, PARSE_FAIL);
    assert_string_equal(r.err, "grok pattern redos gave up on the text at its match limit (grok_match_limit 1000000, "
                               "grok_depth_limit 10000)");
    rm(t);
    /* a smaller limit stops sooner; a normal line is far below the default */
    snprintf(body, sizeof body, "grok_match_limit 1000\n%s", redos);
    t = mk_ok(body);
    r = run(t, line);
    assert_int_equal(r.rc, PARSE_FAIL);
    rm(t);
    /* PCRE2 counts its limit per start position: a line where every position stays under it (runs of 12 'a's,
     * each about 2^12 steps) would take seconds in one search; grok_timeout bounds the record */
    size_t segn = 16384;
    char *seg = malloc(segn + 1);
    for (size_t i = 0; i < segn; i++)
        seg[i] = i % 13 == 12 || i == segn - 1 ? '!' : 'a';
    seg[segn] = 0;
    t = mk_ok("grok_failure_key f\ngrok_timeout 50ms\ngrok_pattern (?<w>(?:a|aa)+)+$");
    t0 = now_s();
    r = run(t, seg);
    dt = now_s() - t0;
    assert_int_equal(r.rc, PARSE_OK);
    assert_non_null(strstr(r.json, "\"f\":\"Grok match limit exceeded\""));
    free(r.json);
    print_message("[          ] a 16 KiB line under the per-position limit everywhere stopped after %.1f ms "
                  "(grok_timeout 50ms)\n", dt * 1e3);
    assert_true(dt < 0.5);
    rm(t);
    t = mk_ok("grok_timeout 50ms\ngrok_pattern (?<w>(?:a|aa)+)+$");
    r = run(t, seg);
    assert_int_equal(r.rc, PARSE_FAIL);
    assert_string_equal(r.err, "grok gave up on the text in pattern grok_pattern: grok_timeout (0.05 s) reached");
    rm(t);
    free(seg);
    /* a long line that is hard only for being long (a lazy field scanning to a late literal) still parses */
    size_t hn = 40000;
    char *hard = malloc(hn + 1);
    for (size_t i = 0; i < hn; i++)
        hard[i] = i % 7 == 3 ? ' ' : 'x';
    memcpy(hard + hn - 4, " END", 4);
    hard[hn] = 0;
    t = mk_ok("grok_pattern ^%{DATA:a} %{DATA:b} END$");
    r = run(t, hard);
    assert_int_equal(r.rc, PARSE_OK);
    assert_true(!strncmp(r.json, "{\"a\":\"xxx\",\"b\":\"xxx", 19));
    free(r.json);
    parse_stats_get(&t->p, &s);
    assert_int_equal(s.match_limit, 0);
    rm(t);
    free(hard);
    t = mk_ok("grok_match_limit 20000\ngrok_pattern %{COMBINEDAPACHELOG}");
    OK(t, "10.0.0.1 - alice [01/Jan/2024:00:00:00 +0000] \"GET /x HTTP/1.1\" 200 5 \"-\" \"curl\"",
       "{\"clientip\":\"10.0.0.1\",\"ident\":\"-\",\"auth\":\"alice\",\"timestamp\":\"01/Jan/2024:00:00:00 +0000\","
       "\"verb\":\"GET\",\"request\":\"/x\",\"httpversion\":\"1.1\",\"response\":\"200\",\"bytes\":\"5\","
       "\"referrer\":\"\\\"-\\\"\",\"agent\":\"\\\"curl\\\"\"}");
    rm(t);
}

/* rx_exec_budget searches in chunks of start positions: the same result as one search, whatever the line */
static void test_budget_same_result(void **st)
{
    static const char *const pats[] = {
        "(?<w>\\bfo+\\b)", "(?<=\\d)x(?<y>y+)", "^(?<l>[^\\n]*é)$", "(?<e>)", "(?<m>ü.)", "(?<q>\\S+)\\s*$",
        "(?<z>\\d{3})(?!\\d)",
    };
    static const char *const atoms[] = {"a", " ", "foo", "1", "xy", "é", "ü", "\n", "234", "-"};
    uint32_t seed = 12345;
    for (size_t pi = 0; pi < sizeof pats / sizeof pats[0]; pi++) {
        rx r;
        char err[256];
        assert_int_equal(rx_compile(&r, pats[pi], RX_GUARD, err, sizeof err), 0);
        for (int round = 0; round < 60; round++) {
            char line[5000];
            size_t n = 0, want = 900 + (size_t)(round * 61) % 4000;
            while (n < want) {
                seed = seed * 1103515245u + 12345u;
                const char *a = atoms[(seed >> 16) % 10];
                if ((seed >> 8) % 97 == 0 || !strcmp(a, "foo") || !strcmp(a, "xy") || !strcmp(a, "é"))
                    if ((seed >> 4) % 5)
                        a = "a"; /* keep the interesting atoms rare, so matches fall late in the line */
                size_t l = strlen(a);
                memcpy(line + n, a, l);
                n += l;
            }
            const PCRE2_SIZE *ov;
            PCRE2_SIZE o1[2] = {0, 0}, o2[2] = {0, 0};
            int r1 = rx_exec(&r, (const uint8_t *)line, n, &ov);
            if (r1 == 1)
                o1[0] = ov[0], o1[1] = ov[1];
            rx_budget b = {RX_FAST_LIMIT + 1, 0, 0, 0};
            int r2 = rx_exec_budget(&r, (const uint8_t *)line, n, &ov, &b);
            if (r2 == 1)
                o2[0] = ov[0], o2[1] = ov[1];
            if (r1 != r2 || o1[0] != o2[0] || o1[1] != o2[1])
                fail_msg("pattern %s, line of %zu bytes: rx_exec %d [%zu,%zu], rx_exec_budget %d [%zu,%zu]", pats[pi], n,
                         r1, (size_t)o1[0], (size_t)o1[1], r2, (size_t)o2[0], (size_t)o2[1]);
        }
        rx_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_table),  cmocka_unit_test(test_fields_and_order),
        cmocka_unit_test(test_types),          cmocka_unit_test(test_time),
        cmocka_unit_test(test_failure_and_name_keys), cmocka_unit_test(test_custom_patterns),
        cmocka_unit_test(test_expansion_errors), cmocka_unit_test(test_match_limit),
        cmocka_unit_test(test_budget_same_result), cmocka_unit_test(test_required_literal),
    };
    (void)J; /* filter_test_util.h's, unused here */
    setenv("TZ", "UTC", 1);
    tzset();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
