"""`@type loki` against a real Grafana Loki (peer_loki.py; built by
scripts/peers/loki.sh from the Go module proxy).

Everything is checked through Loki's HTTP query API with LogQL: counts per
stream, labels, `| json` filters, structured metadata, tenant separation,
the cardinality guard, 400 -> dead letter / @ERROR, 429 -> retried, and a
Loki restart in the middle of a run. Each test uses its own tenant(s) and a
unique `run` label so the tests share one Loki without seeing each other's
data. Records carry the current time (Loki rejects samples older than
reject_old_samples_max_age).
"""
import glob
import json
import os
import re
import threading
import time
import urllib.request
import uuid

import pytest

import fwd
from conftest import free_port, poll
from helpers import config
from peer_loki import Loki
from peer_nginx import Nginx
from pki import make_pki


@pytest.fixture(scope="session")
def loki(tmp_path_factory):
    d = tmp_path_factory.mktemp("loki")
    # per-tenant limits for the 429 test (runtime overrides file)
    # slow: tiny ingestion rate (429); t400: Loki's default service_name
    # discovery, so its 400 messages name streams with a label weir did not send
    l = Loki(str(d), overrides="overrides:\n  slow:\n    ingestion_rate_mb: 0.02\n"
                                "    ingestion_burst_size_mb: 0.03\n"
                                "  t400:\n    discover_service_name: [app]\n")
    try:
        l.start()
    except Exception:
        l.stop()
        raise
    yield l
    l.stop()


def run_id():
    return uuid.uuid4().hex[:10]


def now_ns():
    return time.time_ns()


def send(port, tag, events):
    """events: [(sec, nsec, record)]; one PackedForward request, waits for the ack."""
    chunk = uuid.uuid4().hex
    entries = [fwd.entry(fwd.et(s, n), r) for s, n, r in events]
    with fwd.FwdConn(port) as c:
        c.send(fwd.packed_forward(tag, entries, {"chunk": chunk}))
        ack = c.read_ack(timeout=30)
    assert ack == {"ack": chunk}, ack


def loki_match(url, body, buffer="", extra=""):
    return f"""<match **>
  @type loki
  url {url}
  {body}
  <buffer>
    flush_interval 0.2s
    retry_wait 0.2s
    retry_max_interval 1s
    retry_randomize false
{buffer}
  </buffer>
{extra}
</match>
"""


def events_now(records, step_ns=1000):
    t = now_ns() - 5 * 10**9
    out = []
    for i, r in enumerate(records):
        ts = t + i * step_ns
        out.append((ts // 10**9, ts % 10**9, r))
    return out


def wait_count(loki, q, n, tenant, timeout=20):
    got = [0]

    def enough():
        got[0] = loki.count(q, tenant)
        return got[0] >= n
    try:
        poll(enough, timeout, interval=0.3, what=f"{n} entries for {q}")
    except AssertionError:
        raise AssertionError(f"{q} (tenant {tenant}): {got[0]} entries, expected {n}")
    assert got[0] == n, f"{q}: {got[0]} entries, expected {n}"


# ------------------------------------------------------------------ tests --

def test_streams_labels_and_logql(weir, loki):
    """<label> accessors + extra_labels -> streams; per-stream counts; label
    keys and remove_keys leave the line; `| json | level="ERROR"` finds the
    error lines; timestamps keep their nanoseconds; entries come back in order."""
    run = run_id()
    tenant = f"t-{run}"
    weir.start(config(weir.port, matches=loki_match(loki.url, f"""
  tenant {tenant}
  extra_labels {{"env":"test","run":"{run}"}}
  line_format json
  remove_keys secret
  include_thread_label false
  <label>
    namespace $.kubernetes.namespace_name
    container $['kubernetes']['container_name']
    stream
  </label>""")))
    recs = []
    for ns in ("auth", "billing", "web"):
        for i in range(40):
            recs.append({"kubernetes": {"namespace_name": ns, "container_name": f"{ns}-c"}, "stream": "stdout",
                         "level": "ERROR" if i % 10 == 0 else "INFO", "msg": f"{ns} message {i}", "seq": i,
                         "secret": "hunter2"})
    evs = events_now(recs)
    send(weir.port, "app.logs", evs[:60])
    send(weir.port, "app.logs", evs[60:])
    sel = f'{{run="{run}"}}'
    wait_count(loki, sel, 120, tenant)
    streams = loki.query_range(sel, tenant)
    by_ns = {s["stream"]["namespace"]: s for s in streams}
    assert sorted(by_ns) == ["auth", "billing", "web"], [s["stream"] for s in streams]
    for ns, s in by_ns.items():
        assert s["stream"] == {"env": "test", "run": run, "namespace": ns, "container": f"{ns}-c",
                               "stream": "stdout"}, s["stream"]
        assert len(s["values"]) == 40
        # forward direction: in time order, nanoseconds kept
        exp = [(s_ * 10**9 + n_, r) for s_, n_, r in evs if r["kubernetes"]["namespace_name"] == ns]
        got = [(int(v[0]), json.loads(v[1])) for v in s["values"]]
        assert [g[0] for g in got] == [e[0] for e in exp]
        for (_, line), (_, r) in zip(got, exp):
            # label keys (nested and top-level) and remove_keys are not in the line
            want = {k: v for k, v in r.items() if k not in ("secret", "stream")}
            want["kubernetes"] = {}
            assert line == want, (line, want)
    errs = loki.entries(f'{{run="{run}", namespace="auth"}} | json | level="ERROR"', tenant)
    assert sorted(json.loads(e[2])["msg"] for e in errs) == sorted(f"auth message {i}" for i in (0, 10, 20, 30))
    # the tenant is separate: the default tenant has nothing of this run
    assert loki.count(sel, "fake") == 0


def test_key_value_kubernetes_labels_drop_single_key(weir, loki):
    """line_format key_value (the plugin's default), extract_kubernetes_labels
    (names sanitised), drop_single_key, fluentd_thread label."""
    run = run_id()
    tenant = f"t-{run}"
    weir.start(config(weir.port, matches=loki_match(loki.url, f"""
  tenant {tenant}
  extra_labels {{"run":"{run}"}}
  extract_kubernetes_labels true
  remove_keys kubernetes
  drop_single_key true""")))
    evs = events_now([
        {"kubernetes": {"labels": {"app.kubernetes.io/name": "api", "tier": "be"}}, "msg": "only key"},
        {"kubernetes": {"labels": {"app.kubernetes.io/name": "api", "tier": "be"}}, "msg": "two words",
         "code": 200, "q": 'say "hi"', "eq": "a=b"},
    ])
    send(weir.port, "k8s", evs)
    sel = f'{{run="{run}"}}'
    wait_count(loki, sel, 2, tenant)
    ents = loki.entries(sel, tenant)
    for labels, _, _, _ in ents:
        assert labels == {"run": run, "app_kubernetes_io_name": "api", "tier": "be",
                          "fluentd_thread": "flush_thread_0"}, labels
    lines = [e[2] for e in sorted(ents, key=lambda e: e[1])]
    assert lines[0] == "only key"
    # values with a space or '=' are quoted; '"' and '\\' escaped (the Fluentd plugin's rule)
    assert lines[1] == 'msg="two words" code=200 q="say \\"hi\\"" eq="a=b"', lines[1]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_structured_metadata(weir, loki, encoding):
    """<structured_metadata>: trace_id is attached to the entry, is not a
    label and not in the line; LogQL filters on it."""
    run = run_id()
    tenant = f"t-{run}"
    weir.start(config(weir.port, matches=loki_match(loki.url, f"""
  tenant {tenant}
  encoding {encoding}
  extra_labels {{"run":"{run}"}}
  line_format json
  include_thread_label false
  <structured_metadata>
    trace_id $.trace.id
    pod
  </structured_metadata>""")))
    recs = [{"msg": f"m{i}", "trace": {"id": f"trace-{i % 3}"}, "pod": "pod-a"} for i in range(30)]
    send(weir.port, "sm", events_now(recs))
    sel = f'{{run="{run}"}}'
    wait_count(loki, sel, 30, tenant)
    assert loki.label_values("trace_id", tenant) == []
    ents = loki.entries(f'{sel} | trace_id="trace-1"', tenant)
    assert sorted(json.loads(e[2])["msg"] for e in ents) == sorted(f"m{i}" for i in range(30) if i % 3 == 1)
    for labels, _, line, _ in ents:
        assert labels.get("trace_id") == "trace-1"  # query result shows metadata among the labels
        assert json.loads(line) == {"msg": json.loads(line)["msg"], "trace": {}}
    # the metadata as such (categorize-labels encoding flag)
    req = urllib.request.Request(
        loki.url + "/loki/api/v1/query_range?" + urllib.parse.urlencode(
            {"query": sel, "start": int((time.time() - 3600) * 1e9), "end": int((time.time() + 60) * 1e9),
             "limit": 100}),
        headers={"X-Scope-OrgID": tenant, "X-Loki-Response-Encoding-Flags": "categorize-labels"})
    with urllib.request.urlopen(req, timeout=30) as r:
        data = json.loads(r.read())["data"]["result"]
    sm = [v[2]["structuredMetadata"] for s in data for v in s["values"]]
    assert len(sm) == 30 and all(set(m) == {"trace_id", "pod"} and m["pod"] == "pod-a" for m in sm), sm[:3]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_compress_none(weir, loki, encoding):
    """compress none: pushes go uncompressed (plain JSON; protobuf in snappy's
    literal framing, which Loki decodes) and every line arrives exactly. 1,500
    records of ~230 bytes in one chunk make a body over 64 KiB, so the
    literal's length takes 3 bytes; the wire bytes are the raw bytes (protobuf:
    plus the snappy header, at most 9 bytes per request)."""
    run = run_id()
    tenant = f"t-{run}"
    mport = free_port()
    weir.start(config(weir.port, matches=loki_match(loki.url, f"""
  @id lk
  tenant {tenant}
  encoding {encoding}
  compress none
  extra_labels {{"run":"{run}"}}
  line_format json
  include_thread_label false""", buffer="    flush_interval 1s\n    chunk_limit_size 8m"),
        monitor=mport, monitor_type="prometheus"))
    recs = [{"msg": f"line {i} " + "x" * 180 + " \"quoted\" \u00e9", "seq": i} for i in range(1500)]
    evs = events_now(recs)
    send(weir.port, "nz", evs)
    sel = f'{{run="{run}"}}'
    wait_count(loki, sel, 1500, tenant)
    got = sorted((json.loads(e[2]) for e in loki.entries(sel, tenant)), key=lambda r: r["seq"])
    assert got == recs
    reqs = metric(mport, "weir_loki_requests_total", {"output": "lk"})
    wire = metric(mport, "weir_loki_body_bytes_total", {"output": "lk", "stage": "wire"})
    raw = metric(mport, "weir_loki_body_bytes_total", {"output": "lk", "stage": "raw"})
    assert 1 <= reqs <= 2 and raw / reqs > 64 * 1024, (reqs, raw)
    head = 0 if encoding == "json" else 9
    assert raw <= wire <= raw + head * reqs, (wire, raw, reqs)


def test_tenant_from_record(weir, loki):
    """tenant from a record key: one request per tenant, X-Scope-OrgID;
    records without the key go to default_tenant."""
    run = run_id()
    weir.start(config(weir.port, matches=loki_match(loki.url, f"""
  tenant ${{$.team}}
  default_tenant other-{run}
  extra_labels {{"run":"{run}"}}
  include_thread_label false""")))
    recs = [{"team": f"a-{run}", "i": i} for i in range(10)] + [{"team": f"b-{run}", "i": i} for i in range(7)] + \
        [{"i": i} for i in range(3)]
    send(weir.port, "mt", events_now(recs))
    sel = f'{{run="{run}"}}'
    wait_count(loki, sel, 10, f"a-{run}")
    wait_count(loki, sel, 7, f"b-{run}")
    wait_count(loki, sel, 3, f"other-{run}")
    assert loki.count(sel, "fake") == 0
    # the team key stays in the line (only labels / metadata / remove_keys leave it)
    assert all(f"team=a-{run}" in e[2] for e in loki.entries(sel, f"a-{run}"))


def metric(mport, name, labels):
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_cardinality_guard(weir, loki):
    """max_label_sets 4: the 5th+ distinct label sets get their most diverse
    label (request_id) replaced by __overflow__; every record still arrives;
    the metric counts the replacements; the other labels are kept."""
    run = run_id()
    tenant = f"t-{run}"
    mport = free_port()
    # a second loki output (no traffic) so /metrics has two outputs per family
    other = f"<match unused.**>\n  @type loki\n  @id lk2\n  url {loki.url}\n</match>\n"
    weir.start(config(weir.port, matches=other + loki_match(loki.url, f"""
  @id lk
  tenant {tenant}
  max_label_sets 4
  extra_labels {{"run":"{run}"}}
  include_thread_label false
  <label>
    level
    request_id
  </label>"""), monitor=mport, monitor_type="prometheus"))
    recs = [{"level": "info" if i % 2 else "warn", "request_id": f"r{i}", "msg": f"m{i}"} for i in range(50)]
    evs = events_now(recs)
    send(weir.port, "card", evs[:4])  # the first 4 label sets are accepted as they are
    sel = f'{{run="{run}"}}'
    wait_count(loki, sel, 4, tenant)
    send(weir.port, "card", evs[4:])
    wait_count(loki, sel, 50, tenant)
    streams = loki.query_range(sel, tenant)
    sets = sorted((s["stream"]["level"], s["stream"]["request_id"]) for s in streams)
    assert sets == sorted([("warn", "r0"), ("info", "r1"), ("warn", "r2"), ("info", "r3"),
                           ("info", "__overflow__"), ("warn", "__overflow__")]), sets
    over = {s["stream"]["level"]: len(s["values"]) for s in streams if s["stream"]["request_id"] == "__overflow__"}
    assert over == {"info": 23, "warn": 23}
    assert metric(mport, "weir_loki_label_overflow_total", {"output": "lk", "label": "request_id"}) == 46
    assert metric(mport, "weir_loki_label_sets", {"output": "lk"}) == 6
    assert metric(mport, "weir_loki_label_sets", {"output": "lk2"}) == 0
    assert weir.wait_log(lambda l: "label 'request_id' replaced" in l.get("msg", ""))
    # exposition format: one # TYPE per family, a family's samples contiguous
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
        lines = [l for l in r.read().decode().splitlines() if "weir_loki_" in l]
    fams = []
    for l in lines:
        name = l.split()[2] if l.startswith("#") else re.match(r"[a-z_]+", l).group(0)
        if not fams or fams[-1] != name:
            fams.append(name)
    assert len(fams) == len(set(fams)), fams
    assert sum(l.startswith("# TYPE ") for l in lines) == len(fams)


def dead_letters(bufdir, output_id):
    return [json.loads(l) for p in glob.glob(os.path.join(bufdir, "dead-letter", f"{output_id}.*.jsonl"))
            for l in open(p) if l.strip()]


def test_400_too_old_goes_to_dead_letter_others_delivered(weir, loki, tmp_path):
    """Loki answers 400 for an entry older than reject_old_samples_max_age:
    only the stream it names goes to the dead letter, with Loki's message; the
    other streams of the same request are delivered and nothing is retried."""
    run = run_id()
    tenant = "t400"
    buf = os.path.join(str(tmp_path), "buf")
    weir.start(config(weir.port, matches=loki_match(loki.url, f"""
  @id lk400
  tenant {tenant}
  extra_labels {{"run":"{run}"}}
  include_thread_label false
  <label>
    app
  </label>""", buffer=f"    @type file\n    path {buf}")))
    old = int(time.time()) - 30 * 86400
    good = events_now([{"app": "good", "i": i} for i in range(5)])
    bad = [(old, i, {"app": "old", "i": i}) for i in range(3)]
    send(weir.port, "mixed", good + bad)
    dl = poll(lambda: dead_letters(buf, "lk400"), 20, what="dead letters")
    time.sleep(0.5)
    dl = dead_letters(buf, "lk400")
    assert sorted(d["record"]["i"] for d in dl) == [0, 1, 2] and all(d["record"]["app"] == "old" for d in dl), dl
    assert all("too old" in d["error"] and "HTTP 400" in d["error"] and 'app="old"' in d["error"] and
               'service_name="old"' in d["error"] for d in dl), dl
    wait_count(loki, f'{{run="{run}", app="good"}}', 5, tenant)
    assert loki.count(f'{{run="{run}", app="old"}}', tenant, start=old - 60) == 0
    warns = [l["msg"] for l in weir.log_lines("warn")]
    assert not any("will retry" in m for m in warns), warns


def test_entries_sorted_per_stream(weir, loki):
    """One flush holds each stream's records newest first, the oldest 2 h
    older. Loki refuses, within one push, an entry more than max_chunk_age/2
    (1 h) behind the newest one of its stream that came before it ('entry
    too far behind'): they all arrive only because weir groups the records
    per stream and sorts each stream by time."""
    run = run_id()
    tenant = f"t-{run}"
    weir.start(config(weir.port, matches=loki_match(loki.url, f"""
  tenant {tenant}
  extra_labels {{"run":"{run}"}}
  include_thread_label false
  line_format json
  <label>
    app
  </label>""", buffer="    flush_interval 1s")))
    t = int(time.time()) - 10
    evs = []
    for i in range(20):  # newest first, streams interleaved
        evs.append((t - i * 400, 7, {"app": "a" if i % 2 else "b", "i": i}))
    send(weir.port, "ord", evs)
    sel = f'{{run="{run}"}}'
    start = t - 3 * 3600
    poll(lambda: loki.count(sel, tenant, start=start) >= 20, 20, interval=0.3, what="20 entries")
    got = loki.entries(sel, tenant, start=start)
    assert len(got) == 20
    for app in ("a", "b"):
        ts = [e[1] for e in got if e[0]["app"] == app]
        assert len(ts) == 10 and ts == sorted(ts)
        exp = sorted((t - i * 400) * 10**9 + 7 for i in range(20) if (i % 2 == 1) == (app == "a"))
        assert ts == exp
    warns = [l["msg"] for l in weir.log_lines("warn")]
    assert not any("rejected" in m for m in warns), warns


def test_400_line_too_long_to_error_label(weir, loki, tmp_path):
    """A line over Loki's max_line_size: 400 'line too long' -> the record goes
    to <label @ERROR> (not the dead letter file), the others are delivered."""
    run = run_id()
    tenant = f"t-{run}"
    errfile = os.path.join(str(tmp_path), "errors")
    label = f"""<label @ERROR>
  <match **>
    @type file
    path {errfile}
    append true
    <format>
      @type json
    </format>
  </match>
</label>
"""
    weir.start(config(weir.port, matches=loki_match(loki.url, f"""
  tenant {tenant}
  extra_labels {{"run":"{run}"}}
  include_thread_label false
  drop_single_key true
  <label>
    app
  </label>"""), after=label))
    send(weir.port, "long", events_now([{"app": "ok", "log": "short"}, {"app": "big", "log": "x" * 300000},
                                        {"app": "ok", "log": "short2"}]))
    files = poll(lambda: glob.glob(errfile + "*.log") and [l for p in glob.glob(errfile + "*.log")
                                                             for l in open(p) if l.strip()], 20,
                 what="@ERROR records")
    recs = [json.loads(l) for l in files]
    assert len(recs) == 1 and recs[0]["app"] == "big" and len(recs[0]["log"]) == 300000
    wait_count(loki, f'{{run="{run}", app="ok"}}', 2, tenant)


def test_429_is_retried_until_delivered(weir, loki):
    """Tenant 'slow' has a tiny ingestion rate (runtime overrides): Loki
    answers 429; weir retries with back-off and delivers every record once."""
    run = run_id()
    weir.start(config(weir.port, matches=loki_match(loki.url, f"""
  tenant slow
  extra_labels {{"run":"{run}"}}
  line_format json
  include_thread_label false""", buffer="    chunk_limit_size 8k\n    retry_forever true")))
    recs = [{"seq": i, "pad": "p" * 1000} for i in range(100)]
    evs = events_now(recs)
    for k in range(0, 100, 10):
        send(weir.port, "slow", evs[k:k + 10])
    sel = f'{{run="{run}"}}'
    wait_count(loki, sel, 100, "slow", timeout=40)
    assert sorted(json.loads(e[2])["seq"] for e in loki.entries(sel, "slow")) == list(range(100))
    warns = [l["msg"] for l in weir.log_lines("warn")]
    assert any("HTTP 429" in m and "will retry" in m for m in warns), warns


def test_loki_restart_mid_run_nothing_lost(weir, loki, tmp_path):
    """A sender keeps sending while Loki is stopped and started again: weir's
    file buffer holds the records, retries, and every record is queryable
    exactly once afterwards."""
    run = run_id()
    tenant = f"t-{run}"
    buf = os.path.join(str(tmp_path), "buf")
    weir.start(config(weir.port, matches=loki_match(loki.url, f"""
  tenant {tenant}
  extra_labels {{"run":"{run}"}}
  line_format json
  include_thread_label false""", buffer=f"    @type file\n    path {buf}\n    retry_forever true")))
    sent = []
    stop = threading.Event()

    def sender():
        i = 0
        while not stop.is_set():
            batch = events_now([{"seq": i + k} for k in range(20)])
            send(weir.port, "restart", batch)
            sent.extend(r["seq"] for _, _, r in batch)
            i += 20
            time.sleep(0.05)
    th = threading.Thread(target=sender)
    th.start()
    try:
        time.sleep(1.5)
        loki.stop()
        time.sleep(2.0)
        loki.start()
        time.sleep(1.5)
    finally:
        stop.set()
        th.join(30)
    sel = f'{{run="{run}"}}'
    wait_count(loki, sel, len(sent), tenant, timeout=40)
    got = sorted(json.loads(e[2])["seq"] for e in loki.entries(sel, tenant))
    assert got == sorted(sent)
    warns = [l["msg"] for l in weir.log_lines("warn")]
    down = [m for m in warns if "will retry" in m and "HTTP" not in m]
    assert down, f"Loki was down: weir should have logged transport errors and retried: {warns}"


# ---- behind an authenticating gateway (nginx), as Loki's docs deploy it --

# basic auth: user "weir", password "s3cret" (htpasswd's {PLAIN} scheme);
# bearer: exactly "Bearer tok-123". X-Scope-OrgID passes through to Loki.
GATEWAY = """
    location /basic/ {
      auth_basic "loki";
      auth_basic_user_file HTPASSWD;
      proxy_pass UPSTREAM/;
    }
    location /bearer/ {
      if ($http_authorization != "Bearer tok-123") { return 401; }
      proxy_pass UPSTREAM/;
    }
"""


@pytest.fixture
def gateway(loki, tmp_path):
    d = tmp_path / "nginx"
    d.mkdir()
    (d / "htpasswd").write_text("weir:{PLAIN}s3cret\n")
    g = Nginx(str(d))
    g.start(loki.url, GATEWAY.replace("HTPASSWD", str(d / "htpasswd")))
    yield g
    g.stop()


def gw_match(url, tenant, run, creds, buf):
    return loki_match(url, f"""
  tenant {tenant}
  extra_labels {{"run":"{run}"}}
  line_format json
  include_thread_label false
  {creds}""", buffer=f"    @type file\n    path {buf}\n    retry_forever true")


def test_gateway_basic_auth_wrong_password_kept_until_fixed(weir, loki, gateway, tmp_path):
    """username/password through a gateway that checks them: the wrong
    password gets 401, which is retried (not dead-lettered: the records are
    fine, the secret is not); after a restart with the right password the
    file buffer delivers every record exactly once."""
    run = run_id()
    tenant = f"t-{run}"
    buf = os.path.join(str(tmp_path), "buf")
    weir.start(config(weir.port,
                      matches=gw_match(gateway.url + "/basic", tenant, run, "username weir\n  password nope", buf)))
    send(weir.port, "gw", events_now([{"seq": i} for i in range(7)]))
    weir.wait_log(lambda l: l.get("level") == "warn" and "HTTP 401" in l.get("msg", "") and
                  "will retry" in l.get("msg", ""), timeout=15, what="401 retried")
    sel = f'{{run="{run}"}}'
    assert loki.count(sel, tenant) == 0
    weir.stop_ok()
    weir.start(config(weir.port,
                      matches=gw_match(gateway.url + "/basic", tenant, run, "username weir\n  password s3cret", buf)))
    send(weir.port, "gw", events_now([{"seq": i} for i in range(7, 10)]))
    wait_count(loki, sel, 10, tenant)
    assert sorted(json.loads(e[2])["seq"] for e in loki.entries(sel, tenant)) == list(range(10))
    st = gateway.access_statuses()
    assert 401 in st and 204 in st, st


def test_gateway_bearer_token_file_rotated(weir, loki, gateway, tmp_path):
    """bearer_token_file through a gateway that checks the token: a stale
    token gets 401 (retried); the file is replaced the way the kubelet
    rotates a projected token (a new file renamed over it) and the next
    retry, with no restart, delivers every record exactly once."""
    run = run_id()
    tenant = f"t-{run}"
    tok = tmp_path / "token"
    tok.write_text("tok-old\n")
    buf = os.path.join(str(tmp_path), "buf")
    weir.start(config(weir.port,
                      matches=gw_match(gateway.url + "/bearer", tenant, run, f"bearer_token_file {tok}", buf)))
    send(weir.port, "gw", events_now([{"seq": i} for i in range(7)]))
    weir.wait_log(lambda l: l.get("level") == "warn" and "HTTP 401" in l.get("msg", "") and
                  "will retry" in l.get("msg", ""), timeout=15, what="401 retried")
    sel = f'{{run="{run}"}}'
    assert loki.count(sel, tenant) == 0
    new = tmp_path / "token.new"
    new.write_text("tok-123\n")  # a trailing newline, as secrets often have
    os.replace(new, tok)
    wait_count(loki, sel, 7, tenant, timeout=30)
    assert sorted(json.loads(e[2])["seq"] for e in loki.entries(sel, tenant)) == list(range(7))
    st = gateway.access_statuses()
    assert 401 in st and 204 in st, st


def test_gateway_502_retried_until_delivered(weir, loki, gateway, tmp_path):
    """The gateway answers 502 while its upstream is down (a Loki rollout):
    weir retries the 5xx with back-off and, once the gateway points at Loki
    again, every record is there exactly once."""
    run = run_id()
    tenant = f"t-{run}"
    gateway.reload(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    buf = os.path.join(str(tmp_path), "buf")
    weir.start(config(weir.port, matches=loki_match(gateway.url + "/basic", f"""
  username weir
  password s3cret
  tenant {tenant}
  extra_labels {{"run":"{run}"}}
  line_format json
  include_thread_label false""", buffer=f"    @type file\n    path {buf}\n    retry_forever true")))
    for k in range(5):
        send(weir.port, "gw502", events_now([{"seq": k * 10 + i} for i in range(10)]))
    weir.wait_log(lambda l: l.get("level") == "warn" and "HTTP 502" in l.get("msg", "") and
                  "will retry" in l.get("msg", ""), timeout=15, what="502 retried")
    sel = f'{{run="{run}"}}'
    assert loki.count(sel, tenant) == 0
    gateway.reload(loki.url)
    wait_count(loki, sel, 50, tenant, timeout=30)
    assert sorted(json.loads(e[2])["seq"] for e in loki.entries(sel, tenant)) == list(range(50))
    assert 502 in gateway.access_statuses()


def test_config_errors_dry_run(tmp_path):
    """Wrong values are reported by --dry-run, all at once, with file:line."""
    import subprocess
    from conftest import WEIR_BIN
    path = os.path.join(str(tmp_path), "bad.conf")
    with open(path, "w") as f:
        f.write("""<source>
  @type forward
  port 24299
</source>
<match **>
  @type loki
  url ftp://loki
  extra_labels {"bad-name":"x"}
  tenant ${$.team}
  username u
  <label>
    1abc $.x
  </label>
</match>
""")
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", path], capture_output=True, text=True, timeout=15)
    assert p.returncode != 0
    err = p.stderr
    assert "bad.conf:7: url must start with http:// or https://" in err, err
    assert "bad.conf:8: invalid label name 'bad-name' in extra_labels" in err, err
    assert "username and password go together" in err, err
    assert "bad.conf:12: invalid label name '1abc' in <label>" in err, err


# ---------------------------------------------------------------- TLS --

@pytest.fixture(scope="module")
def loki_tls(tmp_path_factory):
    """A second Loki serving HTTPS only and requiring a client certificate."""
    d = tmp_path_factory.mktemp("loki-tls")
    pki = make_pki(d, ca_cn="weir loki test CA")
    l = Loki(str(d / "loki"), auth=False, tls={"cert": pki["server.pem"], "key": pki["server.key"],
                                                "ca": pki["ca.pem"], "client_cert": pki["client.pem"],
                                                "client_key": pki["client.key"]})
    l.pki = pki
    try:
        l.start()
    except Exception:
        l.stop()
        raise
    yield l
    l.stop()


@pytest.mark.parametrize("mode", ["ca_cert", "insecure_tls", "unverified"])
def test_tls_client_certificate(weir, loki_tls, mode):
    """HTTPS with a client certificate: ca_cert verifies Loki; insecure_tls
    skips verification; neither -> the handshake fails, nothing is delivered
    and weir retries."""
    run = run_id()
    pki = loki_tls.pki
    tls = f"cert {pki['client.pem']}\n  key {pki['client.key']}\n"
    tls += {"ca_cert": f"  ca_cert {pki['ca.pem']}", "insecure_tls": "  insecure_tls true", "unverified": ""}[mode]
    weir.start(config(weir.port, matches=loki_match(loki_tls.url, f"""
  extra_labels {{"run":"{run}"}}
  include_thread_label false
  {tls}""")))
    send(weir.port, "tls", events_now([{"i": i} for i in range(5)]))
    sel = f'{{run="{run}"}}'
    if mode != "unverified":
        wait_count(loki_tls, sel, 5, "fake")
        return
    weir.wait_log(lambda l: l.get("level") == "warn" and "will retry" in l.get("msg", "") and
                  re.search(r"certificate|SSL|TLS", l.get("msg", ""), re.I), timeout=15,
                  what="a certificate verification failure")
    assert loki_tls.count(sel, "fake") == 0
    # at shutdown the memory buffer reports the 5 undeliverable records as lost: the only error
    weir.stop_ok()
    errs = [l["msg"] for l in weir.log_lines("error", "fatal")]
    assert errs and all("could not be flushed before shutdown" in m for m in errs), errs
    weir.allow_errors = True
