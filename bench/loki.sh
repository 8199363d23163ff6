#!/usr/bin/env bash
# bench/loki.sh [BUILD_DIR]: forward -> file buffer -> Grafana Loki.
#
# Starts a real Loki (test/integration/peer_loki.py; binary from
# scripts/peers/loki.sh) and weir (BUILD_DIR/weir, default build/) with a
# file buffer and a loki output (labels namespace + stream from the
# loadgen's Kubernetes-style records: 14 streams), then measures:
#
#  1. throughput, once per body encoding (protobuf+snappy, json+gzip):
#     BUILD_DIR/weir-loadgen sends LOKI_BENCH_RECORDS distinct records
#     (one connection and a --pool as large as the run, so that no batch
#     repeats: Loki drops exact duplicates; with several connections sharing
#     --records one may wrap its pool) as fast as weir acks them; records/s = records / time until
#     weir's weir_loki_pushed_records_total (Loki answered 2xx) reaches them
#     all; then the time until Loki's count_over_time sees them all. Also
#     weir's and Loki's CPU seconds over the push window (/proc/PID/stat),
#     weir CPU per record and push-body bytes per record (on the wire and
#     before compression, from weir_loki_body_bytes_total).
#  2. latency at a fixed rate (LOKI_BENCH_RATE records/s, default 10000, for
#     LOKI_BENCH_SECONDS s): a Python sender paces PackedForward batches of
#     100 records; every 100 ms one of them is a probe with a unique id; a
#     poller asks Loki for the probe stream every 50 ms and records when each
#     probe is first queryable. Prints p50/p99/max send-to-queryable and the
#     CPU of weir vs Loki over the window.
#
# Environment: LOKI_BENCH_RECORDS (300000), LOKI_BENCH_RATE (10000),
# LOKI_BENCH_SECONDS (20), BENCH_KEEP=1 keeps the temp directory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$(cd "${1:-$ROOT/build}" && pwd)
CACHE=${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}
PY=$CACHE/venv/bin/python
[ -x "$PY" ] || PY=python3
for b in "$BUILD_DIR/weir" "$BUILD_DIR/weir-loadgen"; do
  [ -x "$b" ] || { echo "bench/loki.sh: $b missing; make BUILD=$BUILD_DIR" >&2; exit 2; }
done
"$ROOT/scripts/peers/loki.sh" >/dev/null
TMP=$(mktemp -d /tmp/weir-loki-bench.XXXXXX)
export TMP BUILD_DIR ROOT
trap '[ "${BENCH_KEEP:-0}" = 1 ] && echo "kept $TMP" >&2 || rm -rf "$TMP"' EXIT
"$PY" - <<'PYEOF'
import json, os, signal, subprocess, sys, threading, time, urllib.parse, urllib.request, uuid
ROOT, BUILD, TMP = os.environ["ROOT"], os.environ["BUILD_DIR"], os.environ["TMP"]
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import fwd
from peer_loki import Loki
from benchlib import cpu_of_pid, free_port, wait_listening
import benchlib

RECORDS = int(os.environ.get("LOKI_BENCH_RECORDS", "300000"))
RATE = int(os.environ.get("LOKI_BENCH_RATE", "10000"))
SECONDS = float(os.environ.get("LOKI_BENCH_SECONDS", "20"))


def start_weir(name, port, lurl, encoding, run, mport):
    d = os.path.join(TMP, name)
    os.makedirs(d)
    conf = f"""<source>
  @type forward
  bind 127.0.0.1
  port {port}
</source>
<source>
  @type prometheus
  bind 127.0.0.1
  port {mport}
</source>
<match **>
  @type loki
  url {lurl}
  tenant bench
  encoding {encoding}
  extra_labels {{"run":"{run}"}}
  include_thread_label false
  line_format json
  remove_keys kubernetes
  <label>
    namespace $.kubernetes.namespace_name
    stream
  </label>
  <buffer>
    @type file
    path {d}/buffer
    flush_interval 0.2s
    flush_thread_count 2
    chunk_limit_size 1m
    total_limit_size 4g
    overflow_action block
    retry_wait 0.2s
    retry_max_interval 1s
  </buffer>
</match>
"""
    open(os.path.join(d, "weir.conf"), "w").write(conf)
    p = subprocess.Popen([os.path.join(BUILD, "weir"), "-c", os.path.join(d, "weir.conf")],
                         stdout=open(os.path.join(d, "weir.log"), "wb"), stderr=subprocess.STDOUT)
    if not wait_listening(port):
        raise SystemExit("weir did not start")
    return p


def instant(loki, q):
    url = loki.url + "/loki/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": int((time.time() + 3600) * 1e9)})
    req = urllib.request.Request(url, headers={"X-Scope-OrgID": "bench"})
    with urllib.request.urlopen(req, timeout=30) as r:
        res = json.loads(r.read())["data"]["result"]
    return int(float(res[0]["value"][1])) if res else 0


def metrics(mport):
    return benchlib.metrics(mport, lambda line: line.startswith("weir_loki_"))


def throughput(loki, encoding, k):
    run = uuid.uuid4().hex[:8]
    port, mport = free_port(), free_port()
    w = start_weir(f"tp-{k}-{encoding}", port, loki.url, encoding, run, mport)
    c0w, c0l, t0 = cpu_of_pid(w.pid), cpu_of_pid(loki.proc.pid), time.monotonic()
    lg = subprocess.run([os.path.join(BUILD, "weir-loadgen"), "--port", str(port), "--mode", "packed",
                         "--connections", "1", "--batch", "1000", "--record-size", "450", "--records",
                         str(RECORDS), "--pool", str(min(4096, RECORDS // 1000 + 1)), "--json"], capture_output=True, text=True)
    t_acked = time.monotonic() - t0
    # pushed: Loki answered 2xx for every record (weir's counter, polled every 50 ms)
    while True:
        m = metrics(mport)
        pushed = sum(v for k, v in m.items() if k.startswith("weir_loki_pushed_records_total"))
        if pushed >= RECORDS or time.monotonic() - t0 > 300:
            break
        time.sleep(0.05)
    t_pushed = time.monotonic() - t0
    cw, cl = cpu_of_pid(w.pid) - c0w, cpu_of_pid(loki.proc.pid) - c0l
    # then every record must be queryable (count_over_time; polled every second: heavy for Loki)
    # (the loadgen spaces its records' timestamps out, some are minutes ahead: count at now+1h over 3h)
    q = f'sum(count_over_time({{run="{run}"}}[3h]))'
    while True:
        n = instant(loki, q)
        if n >= RECORDS or time.monotonic() - t0 > float(os.environ.get("LOKI_BENCH_WAIT", "300")):
            break
        time.sleep(1)
    t_all = time.monotonic() - t0
    m = metrics(mport)
    pushed = max(1, sum(v for k, v in m.items() if k.startswith("weir_loki_pushed_records_total")))
    wire = sum(v for k, v in m.items() if k.startswith("weir_loki_body_bytes_total") and 'stage="wire"' in k)
    raw = sum(v for k, v in m.items() if k.startswith("weir_loki_body_bytes_total") and 'stage="raw"' in k)
    w.send_signal(signal.SIGTERM)
    w.wait(30)
    return {"encoding": encoding, "wire_bytes_per_record": round(wire / pushed, 1),
            "raw_bytes_per_record": round(raw / pushed, 1), "requests": m.get(f'weir_loki_requests_total{{output="loki.0"}}'), "records": RECORDS, "queryable": n, "acked_s": round(t_acked, 2),
            "pushed_s": round(t_pushed, 2), "records_per_s": round(RECORDS / t_pushed),
            "all_queryable_s": round(t_all, 2),
            "weir_cpu_s": round(cw, 2), "loki_cpu_s": round(cl, 2),
            "weir_cpu_us_per_record": round(cw / max(n, 1) * 1e6, 2)}


def latency(loki):
    run = uuid.uuid4().hex[:8]
    port = free_port()
    w = start_weir("lat", port, loki.url, "protobuf", run, free_port())
    sent = {}
    seen = {}
    stop = threading.Event()
    pad = "x" * 300

    def sender():
        conn = fwd.FwdConn(port, timeout=30)
        batch, period = 100, 100 / RATE
        t_next = time.monotonic()
        i = 0
        k = 0
        last_probe = 0.0
        while not stop.is_set():
            now = time.time()
            recs = []
            for j in range(batch):
                recs.append({"kubernetes": {"namespace_name": "bench"}, "stream": "stdout", "i": i, "log": pad})
                i += 1
            if time.monotonic() - last_probe >= 0.1:
                pid = f"p{k}"
                k += 1
                recs[-1] = {"kubernetes": {"namespace_name": "probe"}, "stream": "stdout", "probe": pid}
                sent[pid] = now
                last_probe = time.monotonic()
            ts = time.time_ns()
            ents = [fwd.entry(fwd.et(ts // 10**9, ts % 10**9), r) for r in recs]
            cid = uuid.uuid4().hex
            conn.send(fwd.packed_forward("bench", ents, {"chunk": cid}))
            conn.read_ack()
            t_next += period
            d = t_next - time.monotonic()
            if d > 0:
                time.sleep(d)
        conn.close()

    def poller():
        while not stop.is_set() or len(seen) < len(sent):
            q = f'{{run="{run}", namespace="probe"}}'
            url = loki.url + "/loki/api/v1/query_range?" + urllib.parse.urlencode(
                {"query": q, "start": int((time.time() - 120) * 1e9), "end": int((time.time() + 10) * 1e9),
                 "limit": 5000})
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers={"X-Scope-OrgID": "bench"}),
                                            timeout=10) as r:
                    res = json.loads(r.read())["data"]["result"]
            except OSError:
                res = []
            t = time.time()
            for s in res:
                for v in s["values"]:
                    pid = json.loads(v[1])["probe"]
                    seen.setdefault(pid, t)
            if stop.is_set() and time.time() - stop_t[0] > 20:
                break
            time.sleep(0.05)
    stop_t = [0.0]
    c0w, c0l, t0 = cpu_of_pid(w.pid), cpu_of_pid(loki.proc.pid), time.monotonic()
    ts_, tp_ = threading.Thread(target=sender), threading.Thread(target=poller)
    ts_.start(); tp_.start()
    time.sleep(SECONDS)
    stop.set(); stop_t[0] = time.time()
    ts_.join()
    el = time.monotonic() - t0
    cw, cl = cpu_of_pid(w.pid) - c0w, cpu_of_pid(loki.proc.pid) - c0l
    tp_.join()
    lat = sorted(seen[p] - sent[p] for p in sent if p in seen)
    n = instant(loki, f'sum(count_over_time({{run="{run}"}}[3h]))')
    w.send_signal(signal.SIGTERM)
    w.wait(30)
    pct = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000) if lat else None
    return {"target_rate": RATE, "seconds": round(el, 1), "records_queryable": n,
            "achieved_rate": round(n / el), "probes": len(sent), "probes_seen": len(lat),
            "latency_ms_p50": pct(0.5), "latency_ms_p99": pct(0.99), "latency_ms_max": pct(1.0) if lat else None,
            "weir_cpu_s": round(cw, 2), "loki_cpu_s": round(cl, 2),
            "weir_cpu_share_of_loki": round(cw / cl, 3) if cl else None}


# SIGTERM/SIGINT (e.g. timeout(1)) still stop Loki in the finally below
signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
loki = Loki(os.path.join(TMP, "loki"), auth=True)
loki.start()
try:
    for k, enc in enumerate(os.environ.get("LOKI_BENCH_ENCODINGS", "protobuf json").split()):
        print(json.dumps({"throughput": throughput(loki, enc, k)}), flush=True)
    print(json.dumps({"latency": latency(loki)}), flush=True)
finally:
    loki.stop()
PYEOF
