/*
 * aggregator/parsers/grok_patterns.c: weir's built-in grok pattern library
 * (see grok.h), written for weir. The names and the fields of the composite
 * patterns are the ones grok users know (logstash's classic names in the
 * `legacy` series, Elastic Common Schema names in `ecs-v1`), so that
 * configurations written for fluent-plugin-grok-parser carry over; the
 * regexps are weir's own, written for PCRE2's JIT: no nested quantifier that
 * can backtrack on the same text twice (quoted strings are unrolled loops
 * with possessive repeats, numbers atomic), and a leading guard on patterns
 * that must not start inside a token (IPv4/IPv6, numbers).
 *
 * Every name here has rows in the table test of test/unit/test_grok.c:
 * lines it must match whole, lines it must not.
 */
#include "aggregator/parsers/grok.h"

#include <stddef.h>

/* pieces repeated inside one regexp (C string concatenation, not patterns) */
#define HEX4 "[0-9A-Fa-f]{1,4}"
#define OCTET "(?:25[0-5]|2[0-4][0-9]|[01]?[0-9]{1,2})"
#define IPV4_BARE "(?:" OCTET "\\.){3}" OCTET
#define JAVA_ID "[a-zA-Z$_][a-zA-Z$_0-9]*"

/* IPv6: the full form, then "::" after k = 0..7 groups with at most 7 - k
 * after it, then the forms ending in a dotted IPv4 (6 groups' worth), an
 * optional zone ("%eth0"). The lookahead at the start (a ':' within the
 * first five characters) turns most non-addresses away at once. */
#define V6_TAIL(n) "(?:" HEX4 "(?::" HEX4 "){0," #n "})?"
#define IPV6_RE                                                                                                        \
    "(?<![0-9A-Fa-f:.])(?=[0-9A-Fa-f]{0,4}:)(?:"                                                                       \
    "(?:" HEX4 ":){6}" IPV4_BARE "|"                                                                                   \
    "::(?:" HEX4 ":){0,5}" IPV4_BARE "|"                                                                               \
    "(?:" HEX4 ":){1,5}:(?:" HEX4 ":){0,4}" IPV4_BARE "|"                                                              \
    "(?:" HEX4 ":){7}" HEX4 "|"                                                                                        \
    "::" V6_TAIL(6) "|"                                                                                                \
    HEX4 "::" V6_TAIL(5) "|"                                                                                           \
    "(?:" HEX4 ":){1}" HEX4 "::" V6_TAIL(4) "|"                                                                        \
    "(?:" HEX4 ":){2}" HEX4 "::" V6_TAIL(3) "|"                                                                        \
    "(?:" HEX4 ":){3}" HEX4 "::" V6_TAIL(2) "|"                                                                        \
    "(?:" HEX4 ":){4}" HEX4 "::" V6_TAIL(1) "|"                                                                        \
    "(?:" HEX4 ":){5}" HEX4 "::" V6_TAIL(0) "|"                                                                        \
    "(?:" HEX4 ":){6}" HEX4 "::"                                                                                       \
    ")(?:%[0-9A-Za-z._~-]+)?(?![0-9A-Fa-f:])"

/* printable ASCII but blanks, ':', '[' and ']' */
#define PROG_RE "[\\x21-\\x39\\x3b-\\x5a\\x5c\\x5e-\\x7e]+"

const grok_def grok_builtin[] = {
    /* ---- words, numbers, text */
    {"WORD", "\\b\\w+\\b", NULL},
    {"NOTSPACE", "\\S+", NULL},
    {"SPACE", "\\s*", NULL},
    {"DATA", ".*?", NULL},
    {"GREEDYDATA", ".*", NULL},
    {"INT", "[+-]?[0-9]+", NULL},
    {"POSINT", "\\b[1-9][0-9]*\\b", NULL},
    {"NONNEGINT", "\\b[0-9]+\\b", NULL},
    {"BASE10NUM", "(?<![0-9.+-])(?>[+-]?(?:[0-9]+(?:\\.[0-9]+)?|\\.[0-9]+))", NULL},
    {"NUMBER", "%{BASE10NUM}", NULL},
    {"BASE16NUM", "(?<![0-9A-Fa-f])(?>[+-]?(?:0[xX])?[0-9A-Fa-f]+)", NULL},
    /* a quoted string with its quotes: "..." '...' `...`, backslash escapes */
    {"QUOTEDSTRING",
     "(?<!\\\\)(?:\"[^\"\\\\]*+(?:\\\\.[^\"\\\\]*+)*+\"|'[^'\\\\]*+(?:\\\\.[^'\\\\]*+)*+'|"
     "`[^`\\\\]*+(?:\\\\.[^`\\\\]*+)*+`)",
     NULL},
    {"QS", "%{QUOTEDSTRING}", NULL},
    {"UUID", "[A-Fa-f0-9]{8}-(?:[A-Fa-f0-9]{4}-){3}[A-Fa-f0-9]{12}", NULL},
    {"LOGLEVEL",
     "\\b(?i:trace|debug|dbg|info(?:rmation(?:al)?)?|notice|warn(?:ing)?|err(?:or)?|crit(?:ical)?|alert|fatal|"
     "severe|emerg(?:ency)?|panic)\\b",
     NULL},

    /* ---- users, hosts, addresses */
    {"USERNAME", "[a-zA-Z0-9._-]+", NULL},
    {"USER", "%{USERNAME}", NULL},
    {"EMAILLOCALPART", "[\\w!#$%&'*+/=?^`{|}~-]+(?:\\.[\\w!#$%&'*+/=?^`{|}~-]+)*", NULL},
    {"EMAILADDRESS", "%{EMAILLOCALPART}@%{HOSTNAME}", NULL},
    {"HTTPDUSER", "%{EMAILADDRESS}|%{USER}", NULL},
    {"MAC", "%{CISCOMAC}|%{WINDOWSMAC}|%{COMMONMAC}", NULL},
    {"CISCOMAC", "(?:[A-Fa-f0-9]{4}\\.){2}[A-Fa-f0-9]{4}", NULL},
    {"WINDOWSMAC", "(?:[A-Fa-f0-9]{2}-){5}[A-Fa-f0-9]{2}", NULL},
    {"COMMONMAC", "(?:[A-Fa-f0-9]{2}:){5}[A-Fa-f0-9]{2}", NULL},
    {"IPV4", "(?<![0-9])" IPV4_BARE "(?![0-9])", NULL},
    {"IPV6", IPV6_RE, NULL},
    {"IP", "%{IPV4}|%{IPV6}", NULL},
    /* labels of letters, digits and '-', dot separated, an optional final dot */
    {"HOSTNAME", "\\b[0-9A-Za-z][0-9A-Za-z-]{0,62}(?:\\.[0-9A-Za-z][0-9A-Za-z-]{0,62})*\\.?", NULL},
    {"HOST", "%{HOSTNAME}", NULL},
    {"IPORHOST", "%{IP}|%{HOSTNAME}", NULL},
    {"HOSTPORT", "%{IPORHOST}:%{POSINT}", NULL},

    /* ---- URIs and paths */
    {"URIPROTO", "[A-Za-z][A-Za-z0-9+.-]*", NULL},
    {"URIHOST", "(?:%{IPORHOST}|\\[%{IPV6}\\])(?::%{POSINT})?", NULL},
    {"URIPATH", "(?:/[\\w$.+!*'(){},~:;=@#%&-]*)+", NULL},
    {"URIPARAM", "\\?[\\w$.+!*'|(){},~@#%&/=:;?\\[\\]<>-]*", NULL},
    {"URIPATHPARAM", "%{URIPATH}(?:%{URIPARAM})?", NULL},
    {"URI", "%{URIPROTO}://(?:%{USER}(?::[^@\\s]*)?@)?(?:%{URIHOST})?(?:%{URIPATHPARAM})?", NULL},
    {"UNIXPATH", "(?:/[\\w%!$@:.,+~-]*)+", NULL},
    {"WINPATH", "(?:[A-Za-z]+:|\\\\)(?:\\\\[^\\\\?*\\s]*)+", NULL},
    {"PATH", "%{UNIXPATH}|%{WINPATH}", NULL},
    {"TTY", "/dev/(?:pts/[0-9]+|tty[pq]?[0-9A-Za-z]*)", NULL},

    /* ---- dates and times */
    {"MONTH",
     "\\b(?i:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
     "oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\\b",
     NULL},
    {"MONTHNUM", "1[0-2]|0?[1-9]", NULL},
    {"MONTHNUM2", "0[1-9]|1[0-2]", NULL},
    {"MONTHDAY", "3[01]|[12][0-9]|0?[1-9]", NULL},
    {"DAY",
     "\\b(?i:mon(?:day)?|tue(?:s(?:day)?)?|wed(?:nesday)?|thu(?:r(?:s(?:day)?)?)?|fri(?:day)?|sat(?:urday)?|"
     "sun(?:day)?)\\b",
     NULL},
    {"YEAR", "(?>[0-9]{2}(?:[0-9]{2})?)", NULL},
    {"HOUR", "2[0-3]|[01]?[0-9]", NULL},
    {"MINUTE", "[0-5][0-9]", NULL},
    {"SECOND", "(?:60|[0-5]?[0-9])(?:[.,:][0-9]+)?", NULL},
    {"TIME", "(?<![0-9])%{HOUR}:%{MINUTE}:%{SECOND}(?![0-9])", NULL},
    {"DATE_US", "%{MONTHNUM}[/-]%{MONTHDAY}[/-]%{YEAR}", NULL},
    {"DATE_EU", "%{MONTHDAY}[./-]%{MONTHNUM}[./-]%{YEAR}", NULL},
    {"DATE", "%{DATE_US}|%{DATE_EU}", NULL},
    {"DATESTAMP", "%{DATE}[- ]%{TIME}", NULL},
    {"TZ", "\\b(?:UTC|GMT|[A-Z]{1,4}[SD]T)\\b", NULL},
    {"ISO8601_TIMEZONE", "Z|[+-](?:2[0-3]|[01][0-9])(?::?[0-5][0-9])?", NULL},
    {"ISO8601_SECOND", "%{SECOND}", NULL},
    {"TIMESTAMP_ISO8601",
     "%{YEAR}-%{MONTHNUM}-%{MONTHDAY}[T ]%{HOUR}:?%{MINUTE}(?::?%{SECOND})?%{ISO8601_TIMEZONE}?", NULL},
    {"DATESTAMP_RFC822", "%{DAY} %{MONTH} %{MONTHDAY} %{YEAR} %{TIME} %{TZ}", NULL},
    {"DATESTAMP_RFC2822", "%{DAY}, %{MONTHDAY} %{MONTH} %{YEAR} %{TIME} %{ISO8601_TIMEZONE}", NULL},
    {"DATESTAMP_OTHER", "%{DAY} %{MONTH} %{MONTHDAY} %{TIME} %{TZ} %{YEAR}", NULL},
    {"DATESTAMP_EVENTLOG", "%{YEAR}%{MONTHNUM2}%{MONTHDAY}%{HOUR}%{MINUTE}%{SECOND}", NULL},
    {"HTTPDATE", "%{MONTHDAY}/%{MONTH}/%{YEAR}:%{TIME} %{INT}", NULL},
    {"HTTPDERROR_DATE", "%{DAY} %{MONTH} %{MONTHDAY} %{TIME} %{YEAR}", NULL},
    {"SYSLOGTIMESTAMP", "%{MONTH} +%{MONTHDAY} %{TIME}", NULL},

    /* ---- syslog */
    {"PROG", PROG_RE, NULL},
    {"SYSLOGPROG", "%{PROG:program}(?:\\[%{POSINT:pid}\\])?",
     "%{PROG:[process][name]}(?:\\[%{POSINT:[process][pid]:integer}\\])?"},
    {"SYSLOGHOST", "%{IPORHOST}", NULL},
    {"SYSLOGFACILITY", "<%{NONNEGINT:facility}\\.%{NONNEGINT:priority}>",
     "<%{NONNEGINT:[log][syslog][facility][code]:integer}\\.%{NONNEGINT:[log][syslog][priority]:integer}>"},
    {"SYSLOGBASE", "%{SYSLOGTIMESTAMP:timestamp} (?:%{SYSLOGFACILITY} )?%{SYSLOGHOST:logsource} %{SYSLOGPROG}:",
     "%{SYSLOGTIMESTAMP:timestamp} (?:%{SYSLOGFACILITY} )?%{SYSLOGHOST:[host][hostname]} %{SYSLOGPROG}:"},
    {"SYSLOGLINE", "%{SYSLOGBASE} ?%{GREEDYDATA:message}", NULL},

    /* ---- web servers */
    {"HTTPD_COMMONLOG",
     "%{IPORHOST:clientip} %{HTTPDUSER:ident} %{HTTPDUSER:auth} \\[%{HTTPDATE:timestamp}\\] "
     "\"(?:%{WORD:verb} %{NOTSPACE:request}(?: HTTP/%{NUMBER:httpversion})?|%{DATA:rawrequest})\" "
     "(?:-|%{NUMBER:response}) (?:-|%{NUMBER:bytes})",
     "%{IPORHOST:[source][address]} (?:-|%{HTTPDUSER:[apache][access][user][identity]}) "
     "(?:-|%{HTTPDUSER:[user][name]}) \\[%{HTTPDATE:timestamp}\\] "
     "\"(?:%{WORD:[http][request][method]} %{NOTSPACE:[url][original]}(?: HTTP/%{NUMBER:[http][version]})?|%{DATA})\" "
     "(?:-|%{INT:[http][response][status_code]:integer}) (?:-|%{INT:[http][response][body][bytes]:integer})"},
    {"HTTPD_COMBINEDLOG", "%{HTTPD_COMMONLOG} %{QS:referrer} %{QS:agent}",
     "%{HTTPD_COMMONLOG} \"(?:-|%{DATA:[http][request][referrer]})\" \"(?:-|%{DATA:[user_agent][original]})\""},
    {"COMMONAPACHELOG", "%{HTTPD_COMMONLOG}", NULL},
    {"COMBINEDAPACHELOG", "%{HTTPD_COMBINEDLOG}", NULL},
    {"HTTPD20_ERRORLOG",
     "\\[%{HTTPDERROR_DATE:timestamp}\\] \\[%{LOGLEVEL:loglevel}\\] (?:\\[client %{IPORHOST:clientip}\\] )?"
     "%{GREEDYDATA:message}",
     "\\[%{HTTPDERROR_DATE:timestamp}\\] \\[%{LOGLEVEL:[log][level]}\\] "
     "(?:\\[client %{IPORHOST:[source][address]}\\] )?%{GREEDYDATA:message}"},
    {"HTTPD24_ERRORLOG",
     "\\[%{HTTPDERROR_DATE:timestamp}\\] \\[(?:%{WORD:module})?:%{LOGLEVEL:loglevel}\\] "
     "\\[pid %{POSINT:pid}(?::tid %{INT:tid})?\\](?: \\[client %{IPORHOST:clientip}(?::%{POSINT:clientport})?\\])? "
     "%{GREEDYDATA:message}",
     "\\[%{HTTPDERROR_DATE:timestamp}\\] \\[(?:%{WORD:[apache][error][module]})?:%{LOGLEVEL:[log][level]}\\] "
     "\\[pid %{POSINT:[process][pid]:integer}(?::tid %{INT:[process][thread][id]:integer})?\\]"
     "(?: \\[client %{IPORHOST:[source][address]}(?::%{POSINT:[source][port]:integer})?\\])? %{GREEDYDATA:message}"},
    {"HTTPD_ERRORLOG", "%{HTTPD20_ERRORLOG}|%{HTTPD24_ERRORLOG}", NULL},
    /* nginx's default `combined` log_format, plus an optional "$http_x_forwarded_for";
     * legacy: the field names of Fluentd's `@type nginx` parser (`time` is the event time) */
    {"NGINX_ACCESS",
     "%{IPORHOST:remote} %{NOTSPACE:host} %{NOTSPACE:user} \\[%{HTTPDATE:time}\\] "
     "\"(?:%{WORD:method} %{NOTSPACE:path}(?: HTTP/%{NUMBER:http_version})?|%{DATA:request})\" "
     "%{INT:code:integer} (?:-|%{INT:size:integer}) \"(?:-|%{DATA:referer})\" \"(?:-|%{DATA:agent})\""
     "(?: \"(?:-|%{DATA:http_x_forwarded_for})\")?",
     "%{IPORHOST:[source][address]} - (?:-|%{NOTSPACE:[user][name]}) \\[%{HTTPDATE:timestamp}\\] "
     "\"(?:%{WORD:[http][request][method]} %{NOTSPACE:[url][original]}(?: HTTP/%{NUMBER:[http][version]})?|%{DATA})\" "
     "%{INT:[http][response][status_code]:integer} (?:-|%{INT:[http][response][body][bytes]:integer}) "
     "\"(?:-|%{DATA:[http][request][referrer]})\" \"(?:-|%{DATA:[user_agent][original]})\""
     "(?: \"(?:-|%{DATA:[nginx][access][remote_ip_list]})\")?"},

    /* ---- Java */
    {"JAVACLASS", "(?:" JAVA_ID "\\.)*" JAVA_ID, NULL},
    {"JAVAMETHOD", "<(?:cl)?init>|" JAVA_ID, NULL},
    {"JAVAFILE", "[a-zA-Z$_0-9. -]+", NULL},
    {"JAVASTACKTRACEPART", "%{SPACE}at %{JAVACLASS:class}\\.%{JAVAMETHOD:method}\\(%{JAVAFILE:file}(?::%{INT:line})?\\)",
     "%{SPACE}at %{JAVACLASS:[java][log][origin][class][name]}\\.%{JAVAMETHOD:[log][origin][function]}"
     "\\(%{JAVAFILE:[log][origin][file][name]}(?::%{INT:[log][origin][file][line]:integer})?\\)"},
    {NULL, NULL, NULL},
};
