"""<parse> @type grok in the parser filter, end to end: Apache combined log
lines (typed fields, the event time from the log), syslog lines through a
custom pattern file with several <grok> alternatives, grok_failure_key and
grok_name_key, and the match limit: a ReDoS line passes quickly with the
failure key (or goes to @ERROR without it) and is counted in /metrics."""
import calendar
import os
import time

from conftest import T0, free_port, poll
from fwd import entry, et, packed_forward
from helpers import TIME_TAG_INJECT, file_match, get, metric

APACHE = [
    '192.0.2.1 - - [10/Oct/2023:13:55:36 -0700] "GET /index.html HTTP/1.1" 200 2326 '
    '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"',
    '2001:db8::7 - alice [10/Oct/2023:13:55:37 -0700] "POST /api/v1/items?id=3 HTTP/2.0" 201 - "-" "curl/8.4.0"',
    '198.51.100.2 - - [10/Oct/2023:13:55:38 -0700] "-" 400 0 "-" "-"',
    "not an access log line",
]

SYSLOG = [
    "Aug  1 12:00:00 web-1 sshd[1234]: Accepted publickey for alice from 10.0.0.7 port 50022 ssh2",
    "Aug  1 12:00:01 web-1 CRON[99]: (root) CMD (run-parts /etc/cron.hourly)",
    "Aug  1 12:00:02 <4.3> 10.1.2.3 kernel: [ 12.345] eth0: link up",
    "garbage",
]

PATTERNS = """# sshd's accepted logins
SSHD_ACCEPT Accepted %{WORD:auth_method} for %{USERNAME:user} from %{IP:src_ip} port %{POSINT:src_port:integer} %{WORD:proto}
"""

REDOS = "a" * 4000 + "!"


def grok_config(weir, mport, tmp):
    filters = f"""<filter apache.**>
  @type parser
  @id grok_apache
  key_name message
  <parse>
    @type grok
    grok_pattern %{{COMBINEDAPACHELOG}}
    time_key timestamp
    time_format %d/%b/%Y:%H:%M:%S %z
    types response:integer,bytes:integer
  </parse>
</filter>
<filter syslog.**>
  @type parser
  @id grok_syslog
  key_name message
  reserve_data true
  reserve_time true
  <parse>
    @type grok
    custom_pattern_path {tmp}/patterns
    grok_failure_key grokfailure
    grok_name_key grok_name
    <grok>
      name sshd
      pattern ^%{{SYSLOGBASE}} %{{SSHD_ACCEPT}}$
    </grok>
    <grok>
      pattern ^%{{SYSLOGLINE}}$
    </grok>
  </parse>
</filter>
<filter redos.**>
  @type parser
  @id grok_redos
  key_name message
  reserve_time true
  <parse>
    @type grok
    grok_failure_key grokfailure
    grok_pattern ^(?<w>(?:a|aa)+)+$
  </parse>
</filter>
<filter strict.**>
  @type parser
  @id grok_strict
  key_name message
  <parse>
    @type grok
    grok_pattern ^(?<w>(?:a|aa)+)+$
  </parse>
</filter>
"""
    errors = f"""<label @ERROR>
{file_match(tmp + "/out/err", fmt="json", inject=TIME_TAG_INJECT)}</label>
"""
    return weir.config(monitor=mport, monitor_type="prometheus", before=filters, after=errors)


def send(weir, tag, lines, t0=T0):
    with weir.conn() as c:
        c.send(packed_forward(tag, [entry(et(t0 + i), {"message": l}) for i, l in enumerate(lines)],
                              {"chunk": tag}))
        c.expect_ack(tag)


def test_grok_parser_filter(weir, tmp_path):
    tmp = str(tmp_path)
    os.makedirs(tmp + "/patterns")
    with open(tmp + "/patterns/sshd", "w") as f:
        f.write(PATTERNS)
    mport = free_port()
    weir.allow_errors = False
    weir.start(grok_config(weir, mport, tmp))

    send(weir, "apache.access", APACHE)
    before = time.time()
    send(weir, "syslog.auth", SYSLOG)
    t = time.monotonic()
    send(weir, "redos.x", [REDOS])
    redos_s = time.monotonic() - t
    recs = weir.wait_records(len(APACHE) + len(SYSLOG) + 1)
    by_tag = {}
    for r in recs:
        by_tag.setdefault(r.pop("tag"), []).append(r)

    # Apache combined: fields, types, the time from the log line, an IPv6 client, a raw request
    ap = by_tag["apache.access"]
    ts = calendar.timegm((2023, 10, 10, 20, 55, 36))
    assert [r.pop("time") for r in ap[:3]] == [ts, ts + 1, ts + 2]
    assert ap[0] == {"clientip": "192.0.2.1", "ident": "-", "auth": "-", "verb": "GET", "request": "/index.html",
                     "httpversion": "1.1", "response": 200, "bytes": 2326,
                     "referrer": '"http://www.example.com/start.html"', "agent": '"Mozilla/4.08 [en] (Win98; I ;Nav)"'}
    assert ap[1] == {"clientip": "2001:db8::7", "ident": "-", "auth": "alice", "verb": "POST",
                     "request": "/api/v1/items?id=3", "httpversion": "2.0", "response": 201, "referrer": '"-"',
                     "agent": '"curl/8.4.0"'}
    assert ap[2] == {"clientip": "198.51.100.2", "ident": "-", "auth": "-", "rawrequest": "-", "response": 400,
                     "bytes": 0, "referrer": '"-"', "agent": '"-"'}
    # no pattern matched, no grok_failure_key: the plugin's record, at the current time
    assert abs(ap[3].pop("time") - before) < 30
    assert ap[3] == {"message": "not an access log line"}

    # syslog: a custom pattern, the second (unnamed) alternative, the failure key; reserve_data keeps message
    # (replaced by SYSLOGLINE's own message), reserve_time the sent times
    sl = by_tag["syslog.auth"]
    assert [r.pop("time") for r in sl] == [T0, T0 + 1, T0 + 2, T0 + 3]
    assert sl[0] == {"message": SYSLOG[0], "timestamp": "Aug  1 12:00:00", "logsource": "web-1", "program": "sshd",
                     "pid": "1234", "auth_method": "publickey", "user": "alice", "src_ip": "10.0.0.7",
                     "src_port": 50022, "proto": "ssh2", "grok_name": "sshd"}
    assert sl[1] == {"message": "(root) CMD (run-parts /etc/cron.hourly)", "timestamp": "Aug  1 12:00:01",
                     "logsource": "web-1", "program": "CRON", "pid": "99", "grok_name": 1}
    assert sl[2] == {"message": "[ 12.345] eth0: link up", "timestamp": "Aug  1 12:00:02", "facility": "4",
                     "priority": "3", "logsource": "10.1.2.3", "program": "kernel", "grok_name": 1}
    assert sl[3] == {"message": "garbage", "grokfailure": "No grok pattern matched"}

    # the ReDoS line: stopped at the match limit, passed on with the failure key, quickly
    rd = by_tag["redos.x"]
    assert rd == [{"time": T0, "message": REDOS, "grokfailure": "Grok match limit exceeded"}]
    assert redos_s < 2.0, f"the ReDoS record took {redos_s:.2f}s"

    # without grok_failure_key it is a parse failure: to @ERROR, as it was
    send(weir, "strict.x", [REDOS, "aaaa"])
    err = weir.wait_records(1, prefix=tmp + "/out/err")
    assert err[0]["message"] == REDOS and err[0]["tag"] == "strict.x"
    poll(lambda: any(r.get("tag") == "strict.x" for r in weir.read_records()), what="the strict.x record that parsed")
    assert [r for r in weir.read_records() if r.get("tag") == "strict.x"][0]["w"] == "aaaa"
    assert weir.wait_log(lambda l: "grok pattern grok_pattern gave up on the text at its match limit"
                         in l.get("msg", ""), what="the rejection's log line")

    # /metrics: per filter
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_grok_match_limit_total", filter="grok_redos") == 1
    assert metric(text, "weir_grok_match_limit_total", filter="grok_strict") == 1
    assert metric(text, "weir_grok_match_limit_total", filter="grok_apache") == 0
    assert metric(text, "weir_grok_unmatched_total", filter="grok_apache") == 1
    assert metric(text, "weir_grok_unmatched_total", filter="grok_syslog") == 1
    assert metric(text, "weir_grok_unmatched_total", filter="grok_redos") == 0
    weir.stop_ok()
    weir.check_logs()


def test_grok_config_errors(weir, tmp_path):
    """--dry-run reports every grok error at its FILE:LINE."""
    tmp = str(tmp_path)
    with open(tmp + "/loop", "w") as f:
        f.write("A x%{B}\nB %{A}\n")
    text = f"""<source>
  @type forward
  port {weir.port}
</source>
<filter a.**>
  @type parser
  key_name m
  <parse>
    @type grok
    grok_pattern %{{NOPE:x}}
  </parse>
</filter>
<filter b.**>
  @type parser
  key_name m
  <parse>
    @type grok
    custom_pattern_path {tmp}/loop
    <grok>
      pattern %{{A:a}}
    </grok>
    <grok>
      pattern (%{{WORD:w}}
    </grok>
  </parse>
</filter>
<match **>
  @type null
</match>
"""
    path = weir.write_config(text, "bad.conf")
    import subprocess
    from conftest import WEIR_BIN
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", path], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    out = p.stderr + p.stdout
    assert f"{path}:10: unknown grok pattern %{{NOPE}} in grok pattern '%{{NOPE:x}}'" in out, out
    assert f"{path}:20: grok pattern loop: %{{A}} -> %{{B}} -> %{{A}} in grok pattern '%{{A:a}}'" in out, out
    assert f"{path}:23: invalid regexp from grok pattern '(%{{WORD:w}}': missing closing parenthesis" in out, out
