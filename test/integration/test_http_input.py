"""The http input (Fluentd's in_http): the same requests sent to weir and to a
real Fluentd 1.16 give the same status codes and the same records (tag,
time, record; times that are "now" only checked to be now), and weir-only
checks: the 200 comes after the records are in the output, body_size_limit,
CORS, gzip, keep-alive."""
import glob
import gzip
import http.client
import json
import os
import time

import msgpack
import pytest

from conftest import free_port, poll
from peer_fluentd import fluentd_or_skip

NO_FLUENT_LOG = "<label @FLUENT_LOG>\n  <match **>\n    @type null\n  </match>\n</label>\n"


def source(port, extra=""):
    return (f"<source>\n  @type http\n  port {port}\n  bind 127.0.0.1\n  add_http_headers true\n"
            f"  add_remote_addr true\n{extra}</source>\n")


def file_out(path, buffered):
    buf = "  <buffer>\n    flush_mode immediate\n  </buffer>\n" if buffered else ""
    return (f"<match **>\n  @type file\n  path {path}\n  append true\n  <format>\n    @type json\n  </format>\n"
            f"  <inject>\n    time_key _t\n    time_type string\n    time_format %s.%N\n    tag_key _tag\n"
            f"  </inject>\n{buf}</match>\n")


HDRS = {"Host": "logs.example", "User-Agent": "weir-test"}
MP = "application/msgpack"
JS = "application/json"
FORM = "application/x-www-form-urlencoded"

# (method, path, content type, body): the same for both
CASES = [
    ("POST", "/app.form", FORM, b'json=%7B%22a%22%3A1%2C%22s%22%3A%22x+y%22%7D'),
    ("POST", "/app/json", JS, b'[{"a":2,"time":1700000000.5},{"b":3,"time":1700000001}]'),
    ("POST", "/app/qtime?time=1700000002.25", JS, b'{"a":4,"time":"kept"}'),
    ("POST", "/app.mp", MP, msgpack.packb({"m": 1, "time": 1700000003})),
    ("POST", "/app.mparr", MP, msgpack.packb([{"m": 2}, {"m": 3}])),
    ("POST", "/app.nd", "application/x-ndjson", b'{"n":1}\n{"n":2,"time":1700000004}\n'),
    ("POST", "/app.badjson", JS, b'{"a":'),            # 200, no record
    ("POST", "/app.noparam", "text/plain", b'hello'),   # 400
    ("POST", "/app.string", JS, b'"abc"'),              # 400
    ("POST", "/app.strtime", JS, b'{"time":"x"}'),      # 400
    ("POST", "/app.empty", JS, b'[]'),                  # 200, nothing
    ("GET", "/api/health", None, b''),                  # 200 (any GET)
    ("POST", "/a/b/", JS, b'{"trailing":1}'),
    ("POST", "/app.q?json=%7B%22q%22%3Atrue%7D", "text/plain", b''),
    ("POST", "/app.formmp", FORM, b'msgpack=' + bytes("".join(f"%{b:02X}" for b in msgpack.packb({"fm": 1})), "ascii")),
]


def send(port, method, path, ctype, body, headers=HDRS):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = dict(headers)
    if ctype:
        h["Content-Type"] = ctype
    c.request(method, path, body=body if method != "GET" else None, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def read_lines(pattern):
    out = []
    for p in sorted(glob.glob(pattern)):
        if not os.path.isfile(p) or not p.endswith(".log"):
            continue
        with open(p) as f:
            out += [json.loads(l) for l in f if l.strip()]
    return out


def normalise(recs, port):
    """(tag, time or 'now', record) with the port-dependent header left out"""
    out = []
    now = time.time()
    for r in recs:
        r = dict(r)
        tag, t = r.pop("_tag"), float(r.pop("_t"))
        r.pop("HTTP_CONTENT_LENGTH", None)
        assert r.pop("REMOTE_ADDR") == "127.0.0.1"
        out.append((tag, "now" if abs(t - now) < 60 else r_time(t), r))
    return sorted(out, key=lambda x: json.dumps(x, sort_keys=True))


def r_time(t):
    return round(t, 6)


@pytest.fixture
def fluentd(tmp_path):
    fd = fluentd_or_skip(tmp_path)
    yield fd
    fd.kill_all()


def run_cases(port):
    return [send(port, *c)[0] for c in CASES]


def test_http_like_fluentd(weir, fluentd, tmp_path):
    wport = free_port()
    weir.allow_errors = True  # the 400s are logged at error level, as Fluentd's dump_error_log does
    weir.start(source(wport) + file_out(tmp_path / "w" / "out", buffered=False), port=wport)
    wcodes = run_cases(wport)
    fport = free_port()
    fluentd.start(source(fport) + NO_FLUENT_LOG + file_out(tmp_path / "f" / "out", buffered=True))
    fcodes = run_cases(fport)
    assert wcodes == fcodes, list(zip([c[1] for c in CASES], wcodes, fcodes))
    assert wcodes == [200, 200, 200, 200, 200, 200, 200, 400, 400, 400, 200, 200, 200, 200, 200]
    want_n = 1 + 2 + 1 + 1 + 2 + 2 + 1 + 1 + 1
    wrecs = poll(lambda: (lambda r: r if len(r) >= want_n else None)(read_lines(str(tmp_path / "w" / "out*"))),
                 what="weir's records")
    frecs = poll(lambda: (lambda r: r if len(r) >= want_n else None)(read_lines(str(tmp_path / "f" / "out*"))),
                 timeout=20, what="Fluentd's records")
    fluentd.stop_ok()
    assert normalise(wrecs, wport) == normalise(frecs, fport)
    assert len(wrecs) == want_n


def test_http_ack_after_output_and_limits(weir, tmp_path):
    """the 200 means the record is in the file already; body_size_limit -> 413;
    gzip bodies; keep-alive connections; CORS"""
    wport = free_port()
    extra = "  body_size_limit 1k\n  cors_allow_origins [\"https://*.example.com\"]\n"
    weir.start(source(wport, extra) + file_out(tmp_path / "w" / "out", buffered=False), port=wport)
    origin = {**HDRS, "Origin": "https://app.example.com"}
    st, _ = send(wport, "POST", "/t.one", JS, b'{"x":1}', origin)
    assert st == 200
    assert len(read_lines(str(tmp_path / "w" / "out*"))) == 1  # no wait: written before the answer
    st, _ = send(wport, "POST", "/t.big", JS, b'{"x":"' + b"y" * 2000 + b'"}', origin)
    assert st == 413
    st, _ = send(wport, "POST", "/t.gz", JS, gzip.compress(b'{"gz":1}'), {**origin, "Content-Encoding": "gzip"})
    assert st == 200
    st, _ = send(wport, "POST", "/t.bad", JS, b'{"x":1}', {**HDRS, "Origin": "https://evil.test"})
    assert st == 403
    st, _ = send(wport, "OPTIONS", "/t", None, b'', {**origin, "Access-Control-Request-Method": "POST"})
    assert st == 200
    # keep-alive: three requests on one connection
    c = http.client.HTTPConnection("127.0.0.1", wport, timeout=10)
    for i in range(3):
        c.request("POST", "/t.ka", body=json.dumps({"i": i}), headers={**origin, "Content-Type": JS})
        r = c.getresponse()
        r.read()
        assert r.status == 200
    c.close()
    recs = read_lines(str(tmp_path / "w" / "out*"))
    assert [r.get("i") for r in recs if r["_tag"] == "t.ka"] == [0, 1, 2]
    assert [r["gz"] for r in recs if r["_tag"] == "t.gz"] == [1]
    assert not [r for r in recs if r["_tag"] in ("t.big", "t.bad")]


def test_http_and_syslog_across_reload(weir, tmp_path):
    """SIGHUP: the http and syslog sources are stopped and started again on
    the same ports (listeners closed first), and take records after it."""
    import signal
    import socket
    wport, sport = free_port(), free_port()
    cfg = (source(wport) + f"<source>\n  @type syslog\n  port {sport}\n  bind 127.0.0.1\n  tag sys\n"
           f"  <transport tcp>\n  </transport>\n</source>\n" + file_out(tmp_path / "w" / "out", buffered=False))
    weir.start(cfg, port=wport)
    assert send(wport, "POST", "/before", JS, b'{"n":1}')[0] == 200
    weir.proc.send_signal(signal.SIGHUP)
    poll(lambda: [l for l in weir.stderr_lines() if "configuration reloaded" in l.get("msg", "")],
         what="the reload")
    poll(lambda: send(wport, "POST", "/after", JS, b'{"n":2}')[0] == 200, what="the http source after the reload")
    with socket.create_connection(("127.0.0.1", sport)) as c:
        c.sendall(b"<13>Jan  1 00:00:00 h app: after reload\n")
    recs = poll(lambda: (lambda r: r if len(r) >= 3 else None)(read_lines(str(tmp_path / "w" / "out*"))),
                what="3 records")
    assert sorted(r["_tag"] for r in recs) == ["after", "before", "sys.user.notice"]
