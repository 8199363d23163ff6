#!/usr/bin/env bash
# bench/elasticsearch.sh [BUILD_DIR]: forward -> file buffer -> Elasticsearch.
#
# Starts a real Elasticsearch node (scripts/peers/elasticsearch.sh, the same
# node the tests use: 127.0.0.1, heap ES_BENCH_HEAP, default 1g) and weir
# (BUILD_DIR/weir, default build/) with a file buffer and @type elasticsearch
# (logstash_format, daily index logs-YYYY.MM.DD, 1 shard, no replica), then:
#
#  1. throughput: BUILD_DIR/weir-loadgen sends ES_BENCH_RECORDS records
#     (PackedForward, 1000 per request, ~450 bytes each) as fast as weir acks
#     them; reported: the ingest rate (acks), the end-to-end rate (until
#     _count shows every record), and the CPU seconds weir and the node used.
#  2. latency at a fixed rate: a paced sender sends ES_BENCH_RATE records/s
#     (100 per request) for ES_BENCH_SECONDS s; every 50 ms one of them is a
#     probe whose send time is kept, and a poller searches for the probes
#     every 50 ms: latency = first search that finds it - send time
#     (p50/p99/max). CPU of weir and of the node (every process of its
#     process group, from /proc) over the same window, as % of one core.
#
# Prints a JSON summary line last. Needs the test venv (scripts/install-deps.sh --test).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$(cd "${1:-$ROOT/build}" && pwd)
cache=${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}
PY=$cache/venv/bin/python
[ -x "$PY" ] || { echo "bench/elasticsearch.sh: no test venv at $cache/venv (run scripts/install-deps.sh --test)" >&2; exit 2; }
[ -x "$BUILD_DIR/weir" ] && [ -x "$BUILD_DIR/weir-loadgen" ] || { echo "bench/elasticsearch.sh: build $BUILD_DIR first" >&2; exit 2; }
export WEIR_ES_HEAP=${ES_BENCH_HEAP:-1g}
export BUILD_DIR ROOT
exec "$PY" - <<'EOF'
import json, os, signal, socket, subprocess, sys, tempfile, threading, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # run the finally: stop the node and weir
ROOT = os.environ["ROOT"]; BUILD = os.environ["BUILD_DIR"]
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import msgpack
import peer_es
from benchlib import cpu_of_pgrp, cpu_of_pid, free_port, wait_listening
import benchlib

RECORDS = int(os.environ.get("ES_BENCH_RECORDS", "200000"))
RATE = int(os.environ.get("ES_BENCH_RATE", "10000"))
SECONDS = int(os.environ.get("ES_BENCH_SECONDS", "30"))
LAT_FLUSH = os.environ.get("ES_BENCH_FLUSH_INTERVAL", "0.2s")
LAT_THREADS = int(os.environ.get("ES_BENCH_FLUSH_THREADS", "2"))
REFRESH = os.environ.get("ES_BENCH_REFRESH", "1s")  # the index refresh_interval (ES default 1s)


def metrics(mport):
    """{series: value} of weir's /metrics for the es_lat output."""
    return benchlib.metrics(mport, lambda line: 'es_lat"' in line)


def et(sec, nsec):
    return msgpack.ExtType(0, sec.to_bytes(4, "big") + nsec.to_bytes(4, "big"))


def read_ack(sock, unp):
    while True:
        for o in unp:
            return o
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("weir closed the connection")
        unp.feed(data)


node = peer_es.Node(settings={"indices.memory.index_buffer_size": "20%"})
tmp = tempfile.mkdtemp(prefix="weir-es-bench-")
weir = None
try:
    t0 = time.monotonic()
    node.start()
    print(f"node up in {time.monotonic() - t0:.1f}s at {node.url} (heap {os.environ['WEIR_ES_HEAP']})", flush=True)
    node.ok("PUT", "/_index_template/bench", {"index_patterns": ["logs-*"], "template": {
        "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": REFRESH},
        "mappings": {"properties": {"trace": {"properties": {"id": {"type": "keyword"}}},
                                    "probe": {"type": "keyword"}}}}})
    port = free_port()
    mport = free_port()
    conf = os.path.join(tmp, "weir.conf")
    with open(conf, "w") as f:
        f.write(f"""<source>
  @type forward
  port {port}
  bind 127.0.0.1
</source>
<source>
  @type monitor_agent
  bind 127.0.0.1
  port {mport}
</source>
<match bench.lat>
  @type elasticsearch
  @id es_lat
  host 127.0.0.1
  port {node.port}
  logstash_format true
  logstash_prefix logs-lat
  request_timeout 30s
  <buffer>
    @type file
    path {tmp}/buffer-lat
    flush_interval {LAT_FLUSH}
    flush_thread_count {LAT_THREADS}
    retry_wait 0.2s
    retry_max_interval 2s
    retry_forever true
  </buffer>
</match>
<match **>
  @type elasticsearch
  host 127.0.0.1
  port {node.port}
  logstash_format true
  logstash_prefix logs-k8s
  request_timeout 30s
  bulk_message_request_threshold 2m
  http_max_in_flight 4
  <buffer>
    @type file
    path {tmp}/buffer
    flush_interval 0.2s
    flush_thread_count 2
    chunk_limit_size 4m
    total_limit_size 4g
    overflow_action block
    retry_wait 0.2s
    retry_max_interval 2s
    retry_forever true
  </buffer>
</match>
""")
    log = open(os.path.join(tmp, "weir.log"), "wb")
    weir = subprocess.Popen([os.path.join(BUILD, "weir"), "-c", conf], stdout=log, stderr=log)
    wait_listening(port)
    pg = node.proc.pid

    # ---- 1. throughput
    def count():
        st, b = node.req("GET", "/logs-k8s-*/_count")
        return b["count"] if st == 200 else 0
    c_es, c_w = cpu_of_pgrp(pg), cpu_of_pid(weir.pid)
    t0 = time.monotonic()
    lg = subprocess.run([os.path.join(BUILD, "weir-loadgen"), "--port", str(port), "--records", str(RECORDS),
                         "--connections", "2", "--batch", "1000", "--record-size", "450", "--json"],
                        capture_output=True, text=True, timeout=900)
    t_ack = time.monotonic() - t0
    if lg.returncode != 0:
        raise SystemExit(f"loadgen failed: {lg.stdout} {lg.stderr}")
    while True:
        node.req("POST", "/logs-k8s-*/_refresh")
        n = count()
        if n >= RECORDS:
            break
        if time.monotonic() - t0 > 900:
            raise SystemExit(f"only {n} of {RECORDS} indexed after 900 s")
        time.sleep(0.5)
    t_all = time.monotonic() - t0
    cpu_es1, cpu_w1 = cpu_of_pgrp(pg) - c_es, cpu_of_pid(weir.pid) - c_w
    thr = {"records": RECORDS, "ingest_rps": round(RECORDS / t_ack), "end_to_end_rps": round(RECORDS / t_all),
           "seconds": round(t_all, 1), "cpu_s_weir": round(cpu_w1, 1), "cpu_s_es": round(cpu_es1, 1),
           "weir_cpu_per_es_cpu": round(cpu_w1 / cpu_es1, 3) if cpu_es1 else None}
    print("throughput:", json.dumps(thr), flush=True)

    # ---- 2. latency at RATE records/s
    sock = socket.create_connection(("127.0.0.1", port))
    unp = msgpack.Unpacker(raw=False)
    probes = {}   # id -> send time
    seen = {}     # id -> latency
    stop = threading.Event()

    def poller():
        while not stop.is_set() or len(seen) < len(probes):
            pend = [p for p in list(probes) if p not in seen]
            if pend:
                st, b = node.req("POST", "/logs-lat-*/_search", {"size": len(pend), "_source": ["probe"],
                                 "query": {"terms": {"probe": pend}}})
                now = time.monotonic()
                if st == 200:
                    for h in b["hits"]["hits"]:
                        p = h["_source"]["probe"]
                        if p not in seen:
                            seen[p] = now - probes[p]
            if stop.is_set() and time.monotonic() - stop_t > 30:
                break
            time.sleep(0.05)
    stop_t = 0
    th = threading.Thread(target=poller, daemon=True)
    th.start()
    base = {"log": {"level": "INFO", "logger": "com.example.auth.LoginController"}, "service": {"name": "auth"},
            "http": {"request": {"method": "POST"}}, "reason": "ok",
            "message": "user login attempt from 10.1.2.3 for account 12345: " + "x" * 200}
    per_req = 100
    interval = per_req / RATE
    c_es, c_w = cpu_of_pgrp(pg), cpu_of_pid(weir.pid)
    m0 = metrics(mport)
    qmax = [0.0, 0.0]

    def sampler():
        while not stop.is_set():
            m = metrics(mport)
            for k, v in m.items():
                if k.startswith("weir_buffer_queue_length"):
                    qmax[0] = max(qmax[0], v)
                if k.startswith("weir_buffer_oldest_chunk_age_seconds"):
                    qmax[1] = max(qmax[1], v)
            time.sleep(0.2)
    threading.Thread(target=sampler, daemon=True).start()
    t0 = time.monotonic()
    seq = 0
    k = 0
    next_t = t0
    last_probe = 0
    while time.monotonic() - t0 < SECONDS:
        now_wall = time.time()
        sec, nsec = int(now_wall), int((now_wall % 1) * 1e9)
        entries = []
        probe = None
        if time.monotonic() - last_probe >= 0.05:
            probe = f"p{k}"
            last_probe = time.monotonic()
        for j in range(per_req):
            r = dict(base, seq=seq, trace={"id": f"{seq:032x}"})
            if j == per_req - 1 and probe:
                r["probe"] = probe
            entries.append(msgpack.packb([et(sec, nsec), r], use_bin_type=True))
            seq += 1
        req = msgpack.packb(["bench.lat", b"".join(entries), {"chunk": f"c{k}"}], use_bin_type=True)
        sock.sendall(req)
        if probe:
            probes[probe] = time.monotonic()
        read_ack(sock, unp)
        k += 1
        next_t += interval
        d = next_t - time.monotonic()
        if d > 0:
            time.sleep(d)
    t_send = time.monotonic() - t0
    cpu_es2, cpu_w2 = cpu_of_pgrp(pg) - c_es, cpu_of_pid(weir.pid) - c_w
    m1 = metrics(mport)
    wsum = [m1[k] - m0.get(k, 0) for k in m1 if k.startswith("weir_output_write_seconds_sum")]
    wcnt = [m1[k] - m0.get(k, 0) for k in m1 if k.startswith("weir_output_write_seconds_count")]
    stop_t = time.monotonic()
    stop.set()
    th.join(40)
    lats = sorted(seen.values())
    def pct(p):
        return round(lats[min(len(lats) - 1, int(p * len(lats)))], 3) if lats else None
    lat = {"rate_target": RATE, "rate_sent": round(seq / t_send), "seconds": round(t_send, 1),
           "probes": len(probes), "probes_found": len(seen),
           "latency_p50_s": pct(0.50), "latency_p99_s": pct(0.99), "latency_max_s": round(lats[-1], 3) if lats else None,
           "cpu_weir_pct_core": round(100 * cpu_w2 / t_send, 1), "cpu_es_pct_core": round(100 * cpu_es2 / t_send, 1),
           "weir_cpu_per_es_cpu": round(cpu_w2 / cpu_es2, 3) if cpu_es2 else None,
           "flushes": int(wcnt[0]) if wcnt else None,
           "flush_mean_s": round(wsum[0] / wcnt[0], 3) if wcnt and wcnt[0] else None,
           "buffer_queue_max": qmax[0], "oldest_chunk_age_max_s": round(qmax[1], 2)}
    print("latency:", json.dumps(lat), flush=True)
    sock.close()
    print(json.dumps({"bench": "elasticsearch", "throughput": thr, "latency": lat}))
finally:
    if weir:
        weir.terminate()
        try:
            weir.wait(30)
        except subprocess.TimeoutExpired:
            weir.kill()
    node.close()
    if not os.environ.get("BENCH_KEEP"):
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("kept", tmp)
EOF
