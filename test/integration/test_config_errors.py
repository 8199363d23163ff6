"""Configuration errors of routing and filters, as `weir --dry-run` prints them.

Every error is one stderr line `FILE:LINE: message`, all of them, then
`N error(s)`; exit code 1. Each case pins the exact messages and the lines
they point at (a marker string locates the line in the config). The order
of the messages is not pinned.
"""
import os
import socket
import subprocess

import pytest

import fwd
from conftest import T0, T0_DAY, WEIR_BIN, read_json_lines
from helpers import forward_source, match

SRC = forward_source(24224)

NULL_MATCH = match("**", "null")


def run_dry(path, cwd, env=None):
    if not os.access(WEIR_BIN, os.X_OK):
        pytest.fail(f"weir binary not found at {WEIR_BIN}")
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", path], capture_output=True, timeout=15, cwd=cwd,
                       stdin=subprocess.DEVNULL, env=dict(os.environ, TZ="UTC", **(env or {})))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def line_of(text, marker):
    """1-based line of the n-th line containing marker ("text" or "text#n")."""
    nth = 1
    if "#" in marker and marker.rsplit("#", 1)[1].isdigit():
        marker, n = marker.rsplit("#", 1)
        nth = int(n)
    seen = 0
    for i, line in enumerate(text.split("\n"), 1):
        if marker in line:
            seen += 1
            if seen == nth:
                return i
    raise AssertionError(f"marker {marker!r} (#{nth}) not in config")


def expect_errors(tmp_path, text, expected, name="weir.conf", env=None):
    """Dry-run `text`; expected: [(marker, message)] for that file, or
    [(path, line, message)] for messages pointing into other files."""
    path = write(os.path.join(str(tmp_path), name), text)
    rc, out, err = run_dry(path, str(tmp_path), env)
    want = []
    for e in expected:
        if len(e) == 2:
            want.append(f"{path}:{line_of(text, e[0])}: {e[1]}")
        else:
            want.append(f"{e[0]}:{e[1]}: {e[2]}")
    n = len(want)
    lines = err.splitlines()
    assert rc == 1, f"--dry-run exited {rc}, expected 1; stderr:\n{err}"
    assert out == "", f"--dry-run wrote to stdout: {out!r}"
    assert lines and lines[-1] == f"{n} error{'s' if n != 1 else ''}", (
        f"expected {n} error(s), got:\n{err}\nexpected:\n" + "\n".join(want))
    assert sorted(lines[:-1]) == sorted(want), "got:\n" + "\n".join(lines[:-1]) + "\nexpected:\n" + "\n".join(want)
    return path


def expect_ok(tmp_path, text, name="weir.conf", env=None):
    path = write(os.path.join(str(tmp_path), name), text)
    rc, out, err = run_dry(path, str(tmp_path), env)
    assert rc == 0, f"--dry-run exited {rc}; stderr:\n{err}"
    assert "configuration OK" in err, err
    return path


# ------------------------------------------------------------------ filters --

def test_unknown_filter_type_did_you_mean(tmp_path):
    text = SRC + """<filter app.**>
  @type grpe
  <exclude>
    key level
    pattern /debug/
  </exclude>
</filter>
<filter **>
  @type record_transformr
</filter>
<filter **>
  @type nosuchfilterplugin
</filter>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("@type grpe", "unknown filter plugin 'grpe'; did you mean 'grep'?"),
        ("@type record_transformr", "unknown filter plugin 'record_transformr'; did you mean 'record_transformer'?"),
        ("@type nosuchfilterplugin", "unknown filter plugin 'nosuchfilterplugin'"),
    ])


def test_known_but_unsupported_filters(tmp_path):
    text = SRC + """<filter a>
  @type concat
  key log
</filter>
<filter b>
  @type geoip
</filter>
<filter c>
</filter>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("@type concat", "filter plugin 'concat' is not supported by weir"),
        ("@type geoip", "filter plugin 'geoip' is not supported by weir"),
        ("<filter c>", "missing @type in <filter c>"),
    ])


def test_unknown_parameter_in_filter_with_suggestion(tmp_path):
    text = SRC + """<filter **>
  @type record_transformer
  remove_key password
  <record>
    env prod
  </record>
</filter>
<filter **>
  @type grep
  <regexp>
    key level
    patern /^(info|warn)$/
  </regexp>
</filter>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("remove_key password", "unknown parameter 'remove_key' in <filter **>; did you mean 'remove_keys'?"),
        ("<regexp>", "missing required parameter 'pattern' in <regexp>"),
        ("patern", "unknown parameter 'patern' in <regexp>; did you mean 'pattern'?"),
    ])


def test_parser_missing_key_name(tmp_path):
    text = SRC + """<filter kube.**>
  @type parser
  reserve_data true
  <parse>
    @type json
  </parse>
</filter>
<filter app.**>
  @type parser
  key_nme log
  <parse>
    @type json
  </parse>
</filter>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("<filter kube.**>", "missing required parameter 'key_name' in <filter kube.**>"),
        ("<filter app.**>", "missing required parameter 'key_name' in <filter app.**>"),
        ("key_nme", "unknown parameter 'key_nme' in <filter app.**>; did you mean 'key_name'?"),
    ])


def test_bad_regexp_grep_and_parser(tmp_path):
    text = SRC + """<filter **>
  @type grep
  <regexp>
    key message
    pattern /(/
  </regexp>
</filter>
<filter **>
  @type parser
  key_name log
  <parse>
    @type regexp
    expression /^(?<host>[^ ]*/
  </parse>
</filter>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("pattern /(/", "invalid regexp '/(/': missing closing parenthesis"),
        ("expression", "invalid regexp '/^(?<host>[^ ]*/': missing closing parenthesis"),
    ])


def test_bad_regexp_in_rewrite_rule_is_one_error(tmp_path):
    """The rule's regexp is the error; 'needs at least one <rule>' would be
    wrong (there is one) and is not expected."""
    text = SRC + """<match app.**>
  @type rewrite_tag_filter
  <rule>
    key level
    pattern /(/
    tag error.${tag}
  </rule>
</match>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("pattern /(/", "invalid regexp '/(/': missing closing parenthesis"),
    ])


def test_grep_fluentd_checks(tmp_path):
    text = SRC + """<filter **>
  @type grep
  regexp1 onlykey
  <regexp>
    key level
    pattern /info/
  </regexp>
  <regexp>
    key level
    pattern /warn/
  </regexp>
  <and>
    <regexp>
      key host
      pattern /web/
    </regexp>
    <exclude>
      key path
      pattern /health/
    </exclude>
  </and>
</filter>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("regexp1 onlykey", "regexp1 does not contain 2 parameters"),
        ("<regexp>#2", "Duplicate key: level"),
        ("<and>", "Do not specify both <regexp> and <exclude> in <and>"),
    ])


def test_parser_types_refused(tmp_path):
    text = SRC + """<filter a.**>
  @type parser
  key_name message
  <parse>
    @type multi_format
  </parse>
</filter>
<filter b.**>
  @type parser
  key_name message
  <parse>
    @type regex
    expression /(?<a>.*)/
  </parse>
</filter>
<filter c.**>
  @type parser
  key_name message
  <parse>
    @type json
    time_type mixed
  </parse>
</filter>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("@type multi_format", "parser type 'multi_format' is not supported by weir (supported: json, regexp, cri, logfmt, none, grok, ltsv, csv, nginx, apache_error, tsv, apache, apache2, syslog, multiline, msgpack)"),
        ("@type regex", "parser type 'regex' is not supported by weir (supported: json, regexp, cri, logfmt, none, grok, ltsv, csv, nginx, apache_error, tsv, apache, apache2, syslog, multiline, msgpack); "
                        "did you mean 'regexp'?"),
        ("time_type mixed", "time_type is :mixed but time_format and time_format_fallbacks is empty."),
    ])


def test_csv_and_timezone_refused(tmp_path):
    """<parse> @type csv needs keys, <format> @type csv needs fields (an
    empty list is Fluentd's error); a timezone that is neither a zone of the
    TZ database nor Fluentd's [+-]HH[:MM] is refused in <format> and
    <inject>."""
    zoneinfo = os.environ.get("TZDIR") or "/usr/share/zoneinfo"
    text = SRC + """<filter a.**>
  @type parser
  key_name message
  <parse>
    @type csv
  </parse>
</filter>
<match b.**>
  @type file
  path /tmp/weir-never
  <format>
    @type csv
    fields ,
    timezone Mars/Olympus
  </format>
  <inject>
    time_key t
    timezone +9
  </inject>
</match>
"""
    expect_errors(tmp_path, text, [
        ("<parse>", "missing required parameter 'keys' in <parse> (@type csv)"),
        ("fields ,", "empty value is specified in fields parameter"),
        ("timezone Mars/Olympus", f"unknown time zone 'Mars/Olympus' (no {zoneinfo}/Mars/Olympus)"),
        ("timezone +9", "timezone '+9' is not supported: a fixed offset like +09:00 or a zone name like Asia/Tokyo"),
    ])


# ------------------------------------------------------- record_transformer --

def test_enable_ruby_outside_the_subset(tmp_path):
    """enable_ruby true is evaluated without Ruby; code outside the subset
    weir evaluates (blocks, other constants, backticks) is refused with the
    code and its line."""
    text = SRC + """<filter **>
  @type record_transformer
  enable_ruby true
  <record>
    tag_upper ${tag.upcase}
    names ${record["items"].map { |i| i["name"] }}
    shell ${`hostname`}
    file ${File.read("/etc/hostname")}
  </record>
</filter>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("${record", "unsupported Ruby in <record>: '${record[\"items\"].map { |i| i[\"name\"] }}': undefined method "
                     "`map' (not in the methods weir evaluates; see docs/configuration.md)"),
        ("${`", "unsupported Ruby in <record>: '${`hostname`}': unexpected '`hostname`'"),
        ("${File", "unsupported Ruby in <record>: '${File.read(\"/etc/hostname\")}': undefined local variable or "
                   "method `File' (weir evaluates record, tag, time, tag_parts, tag_prefix, tag_suffix, hostname, "
                   "ENV, Socket.gethostname, Time.now, Time.at)"),
    ])


def test_ruby_in_placeholder_refused(tmp_path):
    hint = ("weir does not run Ruby; use ${tag}, ${tag_parts[N]}, ${tag_prefix[N]}, ${tag_suffix[N]}, "
            "${hostname}, ${time} or ${record[\"key\"]} (or enable_ruby true for Ruby expressions)")
    text = SRC + """<filter **>
  @type record_transformer
  <record>
    level ${record["level"].downcase}
    ok ${tag_parts[0]}
    now ${Time.now.to_i}
  </record>
</filter>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("downcase", f"unsupported placeholder '${{record[\"level\"].downcase}}' in <record>: {hint}"),
        ("Time.now", f"unsupported placeholder '${{Time.now.to_i}}' in <record>: {hint}"),
    ])


def test_keep_keys_needs_renew_record(tmp_path):
    text = SRC + """<filter **>
  @type record_transformer
  keep_keys message,level
</filter>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("keep_keys", "`renew_record` must be true to use `keep_keys`"),
    ])


# ----------------------------------------------------------- labels/relabel --

def test_relabel_to_undefined_label(tmp_path):
    text = SRC + """<match app.**>
  @type relabel
  @label @NOPE
</match>
<label @STORE>
""" + NULL_MATCH + "</label>\n"
    expect_errors(tmp_path, text, [("@label @NOPE", "relabel to undefined label @NOPE")])


def test_relabel_without_label_no_labels_defined(tmp_path):
    text = SRC + """<match app.**>
  @type relabel
</match>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [("<match app.**>", "@type relabel needs @label")])


def test_relabel_without_label_with_labels_defined(tmp_path):
    """Must be one error, not a crash (weir segfaulted here)."""
    text = SRC + """<label @STORE>
""" + NULL_MATCH + """</label>
<match app.**>
  @type relabel
</match>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [("<match app.**>", "@type relabel needs @label")])


def test_relabel_unknown_parameter(tmp_path):
    text = SRC + """<match app.**>
  @type relabel
  @label @STORE
  tag rewritten
</match>
<label @STORE>
""" + NULL_MATCH + "</label>\n"
    expect_errors(tmp_path, text, [("tag rewritten", "unknown parameter 'tag' in @type relabel (only @label)")])


def test_source_label_undefined(tmp_path):
    text = """<source>
  @type forward
  port 24224
  @label @INGEST
</source>
<label @INGST>
""" + NULL_MATCH + "</label>\n"
    expect_errors(tmp_path, text, [("@label @INGEST", "@label @INGEST is not defined")])


def test_label_without_at_name(tmp_path):
    # Fluentd: "The values for the @label parameter MUST start with @"
    text = SRC + """<label>
""" + NULL_MATCH + """</label>
<label STORE>
""" + NULL_MATCH + "</label>\n" + NULL_MATCH
    msg = "<label> needs a name starting with @, e.g. <label @ERROR>"
    expect_errors(tmp_path, text, [("<label>", msg), ("<label STORE>", msg)])


def test_duplicate_label(tmp_path):
    text = SRC + """<label @STORE>
""" + NULL_MATCH + """</label>
<label @STORE>
""" + NULL_MATCH + "</label>\n" + NULL_MATCH
    expect_errors(tmp_path, text, [("<label @STORE>#2", "label @STORE is defined twice")])


def test_unknown_section_in_label(tmp_path):
    text = SRC + """<label @STORE>
  <source>
    @type forward
  </source>
  <matc **>
    @type null
  </matc>
""" + NULL_MATCH + """</label>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("  <source>", "unknown section <source> in <label @STORE>"),
        ("<matc **>", "unknown section <matc> in <label @STORE>; did you mean <match>?"),
    ])


# ------------------------------------------------------ rewrite_tag_filter --

def test_rewrite_tag_filter_without_rule(tmp_path):
    text = SRC + """<match app.**>
  @type rewrite_tag_filter
  remove_tag_prefix app
</match>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [("<match app.**>", "rewrite_tag_filter needs at least one <rule>")])


def test_rewrite_rule_missing_tag_and_unknown_parameter(tmp_path):
    text = SRC + """<match app.**>
  @type rewrite_tag_filter
  <rule>
    key level
    pattern /^ERROR$/
  </rule>
  <rule>
    key level
    pattern /^WARN$/
    tag warn.${tag}
    invrt true
  </rule>
  remove_tag_prefx app
</match>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("<rule>#1", "<rule> is missing 'tag' (a rule needs key, pattern and tag)"),
        ("invrt true", "unknown parameter 'invrt' in <rule> (key, pattern, tag, invert)"),
        ("remove_tag_prefx", "unknown parameter 'remove_tag_prefx' in <match app.**>; did you mean 'remove_tag_prefix'?"),
    ])


def test_rewrite_legacy_rewriterule_syntax(tmp_path):
    """Fluentd: '"rewriterule<num>" support has been dropped. Use <rule> section instead.' - one error."""
    text = SRC + """<match app.**>
  @type rewrite_tag_filter
  rewriterule1 level ^ERROR$ error.${tag}
</match>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("rewriterule1", "'rewriterule1' is the old rewrite_tag_filter syntax; "
                         "use <rule> key KEY pattern /RE/ tag TAG </rule>"),
    ])


# --------------------------------------------------------------------- copy --

def test_copy_without_store(tmp_path):
    text = SRC + """<match app.**>
  @type copy
</match>
<match web.**>
  @type copy
  <stor>
    @type null
  </stor>
</match>
<match db.**>
  @type copy
  <store>
    @type nosuchoutput
  </store>
</match>
""" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("<match app.**>", "@type copy needs at least one <store>"),
        ("<stor>", "unknown section <stor> in @type copy; did you mean <store>?"),
        ("@type nosuchoutput", "unknown output plugin 'nosuchoutput'"),
    ])


# ------------------------------------------------------------ not supported --

def test_worker_sections(tmp_path):
    """<worker N> / <worker N-M>: weir is one process, so their directives run
    once, as if at the top level, with a warning; a bad id, a parameter or a
    directive Fluentd does not allow in <worker> is an error."""
    text = "<worker 0>\n" + SRC + "</worker>\n<worker 0-3>\n" + NULL_MATCH + "</worker>\n"
    path = write(os.path.join(str(tmp_path), "ok.conf"), text)
    rc, out, err = run_dry(path, str(tmp_path))
    assert rc == 0, err
    assert "configuration OK (1 sources, 1 outputs) with 2 warnings" in err, err
    assert (f"{path}:1: warning: <worker 0>: weir runs one process, whose threads share every plugin: these "
            "directives run once, as if written at the top level") in err, err
    bad = "<worker a>\n</worker>\n<worker 2-1>\n</worker>\n<worker 0>\n  <system>\n  </system>\n  x 1\n</worker>\n"
    expect_errors(tmp_path, bad + SRC + NULL_MATCH, [
        ("<worker a>", "<worker a>: the worker id must be N or N-M (0 <= N <= M)"),
        ("<worker 2-1>", "<worker 2-1>: the worker id must be N or N-M (0 <= N <= M)"),
        ("  <system>", "<system> is not allowed in <worker>: only <source>, <match>, <filter> and <label>"),
        ("  x 1", "parameter 'x' is not allowed in <worker>"),
    ], name="bad.conf")


def test_embedded_ruby_hostname_accepted_time_refused(tmp_path):
    ok = SRC + """<filter **>
  @type record_transformer
  <record>
    aggregator "#{Socket.gethostname}"
    region "#{ENV.fetch('WEIR_TEST_REGION', 'eu-1')}"
  </record>
</filter>
""" + NULL_MATCH
    expect_ok(tmp_path, ok, "ok.conf")
    bad = SRC + """<filter **>
  @type record_transformer
  <record>
    aggregator "#{Socket.gethostname}"
    started "#{Time.now}"
  </record>
</filter>
""" + NULL_MATCH
    expect_errors(tmp_path, bad, [
        ("Time.now", "embedded Ruby code is not supported: #{Time.now}; weir evaluates ENV['NAME'], "
                     "ENV.fetch('NAME'[, default]), Socket.gethostname, 'strings', \"#{interpolation}\", integers, "
                     "nil, a || b, and .to_i .to_s .upcase .downcase .strip"),
    ], "bad.conf")


def test_embedded_ruby_values_in_records(weir):
    """#{Socket.gethostname} and #{ENV...} are evaluated at load time."""
    cfg = f"""<source>
  @type forward
  port {weir.port}
  bind 127.0.0.1
</source>
<filter **>
  @type record_transformer
  <record>
    aggregator "#{{Socket.gethostname}}"
    region "#{{ENV['WEIR_TEST_REGION']}}"
    zone "#{{ENV.fetch('WEIR_TEST_NO_SUCH_VAR', 'zone-a')}}"
  </record>
</filter>
<match **>
  @type file
  path {weir.prefix}
  append true
  <format>
    @type json
  </format>
</match>
"""
    os.environ["WEIR_TEST_REGION"] = "eu-central-1"
    try:
        weir.start(cfg)
    finally:
        del os.environ["WEIR_TEST_REGION"]
    with weir.conn() as c:
        c.send(fwd.message("app", fwd.et(T0), {"n": 1}, {"chunk": "ruby-1"}))
        c.expect_ack("ruby-1")
    assert weir.read_records() == [{"n": 1, "aggregator": socket.gethostname(), "region": "eu-central-1",
                                    "zone": "zone-a"}]


# ------------------------------------------------------------------ @include --

def include_tree(tmp_path, out_dir="__OUT__"):
    """conf/main.conf includes sub/filters.conf (which includes more.conf
    next to it) and conf.d/*.conf (10-first, 20-second: glob order, writing
    files into out_dir)."""
    base = os.path.join(str(tmp_path), "conf")
    write(os.path.join(base, "sub", "filters.conf"), """<filter app.**>
  @type record_transformer
  <record>
    from_sub true
  </record>
</filter>
@include more.conf
""")
    write(os.path.join(base, "sub", "more.conf"), """<filter app.**>
  @type record_transformer
  <record>
    from_more true
  </record>
</filter>
""")
    for name in ("20-second", "10-first"):
        write(os.path.join(base, "conf.d", f"{name}.conf"), f"""<match app.**>
  @type file
  path {out_dir}/{name}
  append true
  <format>
    @type json
  </format>
</match>
""")
    return base


def test_include_relative_file_and_glob(weir, tmp_path):
    base = include_tree(tmp_path, weir.out_dir)
    main = write(os.path.join(base, "main.conf"), f"""<source>
  @type forward
  port {weir.port}
  bind 127.0.0.1
</source>
@include sub/filters.conf
@include conf.d/*.conf
@include optional.d/*.conf
""")
    # relative includes resolve against the including file, not the cwd
    elsewhere = os.path.join(str(tmp_path), "elsewhere")
    os.makedirs(elsewhere)
    rc, out, err = run_dry(main, elsewhere)
    assert rc == 0 and "configuration OK (1 sources, 2 outputs)" in err, (rc, err)
    weir.start(args=["-c", main], cwd=elsewhere)
    with weir.conn() as c:
        c.send(fwd.message("app.web", fwd.et(T0), {"n": 1}, {"chunk": "inc-1"}))
        c.expect_ack("inc-1")
    # conf.d/10-first.conf comes first (sorted glob): its <match> wins
    assert read_json_lines([os.path.join(weir.out_dir, f"10-first.{T0_DAY}.log")]) == [
        {"n": 1, "from_sub": "true", "from_more": "true"}]
    assert not os.path.exists(os.path.join(weir.out_dir, f"20-second.{T0_DAY}.log"))


def test_include_errors_point_into_included_files(tmp_path):
    base = include_tree(tmp_path)
    write(os.path.join(base, "conf.d", "30-broken.conf"), """<filter db.**>
  @type grpe
</filter>
""")
    text = SRC + """@include sub/filters.conf
@include conf.d/*.conf
@include missing.conf
""" + NULL_MATCH
    path = os.path.join(base, "main.conf")
    expect_errors(os.path.dirname(path), text, [
        (os.path.join(base, "conf.d", "30-broken.conf"), 2, "unknown filter plugin 'grpe'; did you mean 'grep'?"),
        ("@include missing.conf", f"cannot read included file '{os.path.join(base, 'missing.conf')}': "
                                  "No such file or directory"),
    ], name="main.conf")


class _Served:
    """A static HTTP(S) server of directory d on 127.0.0.1 (a thread); the
    paths it was asked for in .got."""

    def __init__(self, d, ssl_ctx=None):
        import functools
        import http.server
        import threading
        got = self.got = []

        class H(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a):
                got.append(self.path)

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(H, directory=d))
        if ssl_ctx:
            self.srv.socket = ssl_ctx.wrap_socket(self.srv.socket, server_side=True)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_include_http_url(weir, tmp_path):
    """@include http://...: fetched like Fluentd's open-uri; a relative
    @include inside it is fetched relative to its URL; a file:// URL is a
    local file. Errors: a status other than 2xx, an untrusted certificate,
    another scheme."""
    base = include_tree(tmp_path, weir.out_dir)
    srv = _Served(base)
    try:
        main = write(os.path.join(str(tmp_path), "main.conf"), f"""<source>
  @type forward
  port {weir.port}
  bind 127.0.0.1
</source>
@include http://127.0.0.1:{srv.port}/sub/filters.conf
@include file://{base}/conf.d/10-first.conf
""")
        rc, out, err = run_dry(main, str(tmp_path))
        assert rc == 0 and "configuration OK (1 sources, 1 outputs)" in err, (rc, err)
        # sub/filters.conf's "@include more.conf" came from the same server
        assert "/sub/filters.conf" in " ".join(srv.got) and "/sub/more.conf" in " ".join(srv.got), srv.got
        weir.start(args=["-c", main])
        with weir.conn() as c:
            c.send(fwd.message("app.web", fwd.et(T0), {"n": 1}, {"chunk": "inc-url"}))
            c.expect_ack("inc-url")
        assert read_json_lines([os.path.join(weir.out_dir, f"10-first.{T0_DAY}.log")]) == [
            {"n": 1, "from_sub": "true", "from_more": "true"}]

        # an error inside a fetched file points into it (its URL and line)
        write(os.path.join(base, "broken.conf"), "<filter x>\n  @type grpe\n</filter>\n")
        url = f"http://127.0.0.1:{srv.port}"
        expect_errors(str(tmp_path), SRC + f"@include {url}/broken.conf\n@include {url}/missing.conf\n"
                      "@include ftp://config.example/fluent.conf\n" + NULL_MATCH, [
            (f"{url}/broken.conf", 2, "unknown filter plugin 'grpe'; did you mean 'grep'?"),
            (f"@include {url}/missing.conf", f"cannot include '{url}/missing.conf': HTTP 404"),
            ("@include ftp://", "cannot include 'ftp://config.example/fluent.conf': only files, file://, "
                                "http:// and https:// URLs can be included"),
        ])
    finally:
        srv.close()

    # https: the server's certificate is verified against the system's CAs
    import ssl
    from pki import make_pki
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    pki = make_pki(pki_dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["server.pem"], pki["server.key"])
    srv = _Served(base, ctx)
    try:
        bad = write(os.path.join(str(tmp_path), "tls.conf"), SRC + f"@include https://127.0.0.1:{srv.port}/sub/more.conf\n"
                    + NULL_MATCH)
        rc, out, err = run_dry(bad, str(tmp_path))
        assert rc != 0 and f"cannot include 'https://127.0.0.1:{srv.port}/sub/more.conf'" in err \
            and "certificate" in err, err
    finally:
        srv.close()


# ----------------------------------------------------------- several at once --

def test_multiple_errors_reported_together(tmp_path):
    text = """<source>
  @type forward
  port 24224
  @label @INGEST
</source>
<label @INGEST>
  <filter **>
    @type grpe
  </filter>
  <filter **>
    @type record_transformer
    enable_ruby true
    <record>
      names ${record["items"].each { |i| i }}
    </record>
  </filter>
  <filter **>
    @type parser
    <parse>
      @type json
    </parse>
  </filter>
  <match **>
    @type relabel
    @label @STORE
  </match>
</label>
<label @INGEST>
</label>
<match **>
  @type copy
</match>
<match x.**>
  @type rewrite_tag_filter
  <rule>
    key level
    pattern /ERROR/
    tag error.${tag}
  </rule>
</match>
"""
    expect_errors(tmp_path, text, [
        ("@type grpe", "unknown filter plugin 'grpe'; did you mean 'grep'?"),
        ("names ${", "unsupported Ruby in <record>: '${record[\"items\"].each { |i| i }}': undefined method `each' "
                     "(not in the methods weir evaluates; see docs/configuration.md)"),
        ("<filter **>#3", "missing required parameter 'key_name' in <filter **>"),
        ("@label @STORE", "relabel to undefined label @STORE"),
        ("<label @INGEST>#2", "label @INGEST is defined twice"),
        ("<match **>#2", "@type copy needs at least one <store>"),
    ])


def test_kafka_ssl_client_cert_chain(tmp_path):
    """ssl_client_cert_chain (fluent-plugin-kafka): the certificate and its
    chain are read at start into one PEM for librdkafka; a file that cannot
    be read, or a chain without a certificate, is an error."""
    cert = tmp_path / "client.pem"
    chain = tmp_path / "chain.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    chain.write_text("-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n")
    base = SRC + "<match **>\n  @type kafka2\n  brokers 127.0.0.1:9092\n  default_topic t\n"
    expect_ok(tmp_path, base + f"  ssl_client_cert {cert}\n  ssl_client_cert_chain {chain}\n</match>\n", name="ok.conf")
    expect_errors(tmp_path, base + f"  ssl_client_cert {cert}\n  ssl_client_cert_chain {tmp_path}/nope.pem\n</match>\n", [
        ("ssl_client_cert_chain", f"cannot read {tmp_path}/nope.pem: No such file or directory"),
    ], name="missing.conf")
    expect_errors(tmp_path, base + f"  ssl_client_cert_chain {chain}\n</match>\n", [
        ("ssl_client_cert_chain", "ssl_client_cert_chain needs ssl_client_cert"),
    ], name="nocert.conf")


@pytest.mark.parametrize("directive", ["match", "source"])
def test_kafka_msk_iam_errors(tmp_path, directive):
    """AWS MSK IAM (kafka2 and the kafka source): the three parameters go
    together, the region must look like one, and it is a SASL mechanism of
    its own. A complete set passes --dry-run without connecting."""
    if directive == "match":
        base = SRC + "<match **>\n  @type kafka2\n  brokers 127.0.0.1:9098\n  default_topic t\n"
        end = "</match>\n"
    else:
        base = SRC + "<source>\n  @type kafka\n  brokers 127.0.0.1:9098\n  topics t\n  consumer_group g\n"
        end = "</source>\n" + "<match **>\n  @type null\n</match>\n"
    full = ("  sasl_aws_msk_iam_access_key_id AKIDEXAMPLE\n  sasl_aws_msk_iam_secret_key_id s3cr3t\n"
            "  sasl_aws_msk_iam_aws_region eu-west-1\n")
    expect_ok(tmp_path, base + full + end, name="ok.conf")
    expect_errors(tmp_path, base + "  sasl_aws_msk_iam_access_key_id AKIDEXAMPLE\n" + end, [
        ("sasl_aws_msk_iam_access_key_id", "AWS MSK IAM needs sasl_aws_msk_iam_secret_key_id too"),
        ("sasl_aws_msk_iam_access_key_id", "AWS MSK IAM needs sasl_aws_msk_iam_aws_region too"),
    ], name="partial.conf")
    expect_errors(tmp_path, base + full.replace("eu-west-1", "EU West") + end, [
        ("sasl_aws_msk_iam_aws_region", "'EU West' is not an AWS region (e.g. us-east-1)"),
    ], name="region.conf")
    expect_errors(tmp_path, base + full + "  username u\n  password p\n" + end, [
        ("sasl_aws_msk_iam_access_key_id", "AWS MSK IAM is a SASL mechanism of its own: remove `username`"),
    ], name="two.conf")


def test_forward_service_discovery_errors(tmp_path):
    """<service_discovery> of the forward output: what a file may hold (Fluentd's sd_file: host and port
    required), @type srv's required parameters, <service>'s parameters checked like <server>'s."""
    d = str(tmp_path)
    write(os.path.join(d, "nested.yaml"), "- host: a\n  port: [1, 2]\n")
    write(os.path.join(d, "noport.yaml"), "# one server\n- host: a\n  weight: 1\n")
    write(os.path.join(d, "map.yml"), "host: a\nport: 1\n")
    write(os.path.join(d, "bad.json"), '[{"host": "a", "port": 1},\n {"host": "b", "port": 2')
    write(os.path.join(d, "empty.json"), "[]")

    def sd(body):
        return f"  <service_discovery>\n{body}  </service_discovery>\n"

    def fpath(name):
        return sd(f"    @type file\n    path {os.path.join(d, name)}\n")

    text = SRC + "<match a>\n  @type forward\n" + fpath("nested.yaml") + fpath("noport.yaml") + fpath("map.yml") + \
        fpath("bad.json") + fpath("empty.json") + fpath("missing.yaml") + "</match>\n" + \
        "<match b>\n  @type forward\n" + sd("    @type srv\n    service fluentd\n") + \
        sd("    @type static\n    <service>\n      host h\n      port 70000\n    </service>\n") + \
        sd("    @type file\n    path x.yaml\n    <service>\n      host h\n    </service>\n") + "</match>\n" + NULL_MATCH
    expect_errors(tmp_path, text, [
        ("nested.yaml", f"{d}/nested.yaml:2: `port` needs a single value (a string, a number, true/false)"),
        ("noport.yaml", f"{d}/noport.yaml:2: the server has no `port` (a service needs host and port)"),
        ("map.yml", f"{d}/map.yml:1: expected a list of servers (`- host: ...`)"),
        ("bad.json", f"{d}/bad.json:2: not JSON: '}}' expected near end of file"),
        ("empty.json", f"service discovery file {d}/empty.json lists no server"),
        ("missing.yaml", f"service discovery file {d}/missing.yaml: No such file or directory"),
        # @type srv needs `hostname` too (Fluentd's sd_srv): the error is at its <service_discovery>
        (os.path.join(d, "weir.conf"), line_of(text, "@type srv") - 1,
         "missing required parameter 'hostname' in <service_discovery>"),
        ("port 70000", "port must be between 1 and 65535"),
        ("<service>#2", "<service> belongs in <service_discovery> @type static, not @type file"),
    ])
