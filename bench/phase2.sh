#!/usr/bin/env bash
# bench/phase2.sh [BUILD_DIR]: the Phase 2 pipeline end to end, Kafka -> weir
# -> null, on the shipped example config/examples/phase2-kafka-to-es.conf.
#
# Starts a real Apache Kafka broker (test/integration/peer_kafka.py, the
# tests' broker: KRaft, 127.0.0.1) and preloads PHASE2_BENCH_RECORDS
# (default 1000000) realistic messages before weir starts:
#   70% ECS JSON application logs on app-logs (4 partitions, keyed by
#       service; 10% ERROR/FATAL), ~300 bytes;
#   25% access-log lines (nginx combined, 5% 5xx) on access-logs
#       (2 partitions), ~330 bytes;
#    5% Debezium change events (create/update/delete, JsonConverter
#       without schema) on dbserver1.inventory.{customers,orders}, ~560 bytes.
# Of the application logs, PHASE2_BENCH_SAGA_PCT (default 20) percent are
# saga events (ECS JSON with saga_id/step/status, keyed by saga id; sagas of
# 5 events: STARTED, 3 steps, COMPLETED, or FAILED+COMPENSATED+ABORTED one in
# ten), PHASE2_BENCH_SAGA_WINDOW (default 10000) sagas interleaved at a time,
# so the aggregate filter holds that many open sagas; their summaries go to
# sagas-* (a null output without Elasticsearch) and are not counted as
# records.
# Then weir runs the example's sources, filters and routing unchanged (kafka
# source with decorate_events and DLQ labels, the kafka_id record_transformer
# with enable_ruby, grok COMBINEDAPACHELOG, debezium, the saga grok and the
# aggregate filter, rewrite_tag_filter),
# only its Elasticsearch outputs replaced by `null` outputs (one per index
# class, so the routing is counted too), plus a monitor_agent for /metrics.
#
# Reported: records/s and MB/s (Kafka payload bytes) from the first record
# out to the last; weir's CPU seconds per record over that window and over
# the whole process (group join and start-up included); peak RSS (VmHWM);
# the broker's CPU; the machine's load average before and after. Prints a
# JSON summary line last. Needs the test venv (scripts/install-deps.sh --test).
#
# PHASE2_BENCH_ES=1: the example as it is, into a real Elasticsearch node
# (test/integration/peer_es.py, heap ES_BENCH_HEAP, default 1g; one shard,
# no replica), done when _count over logs-*,cdc-* reaches every record;
# the node's CPU is reported beside weir's (PHASE2_BENCH_RECORDS defaults to
# 200000 there: the node indexes ~10 k documents/s on this machine).
#
# Environment: PHASE2_BENCH_RECORDS (1000000), PHASE2_BENCH_CONFIG (another
# config of the same shape instead of the example, for experiments),
# BENCH_KEEP=1 keeps the temp dir.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$(cd "${1:-$ROOT/build}" && pwd)
cache=${WEIR_TEST_CACHE:-$HOME/.cache/weir-test}
PY=$cache/venv/bin/python
[ -x "$PY" ] || { echo "bench/phase2.sh: no test venv at $cache/venv (run scripts/install-deps.sh --test)" >&2; exit 2; }
[ -x "$BUILD_DIR/weir" ] || { echo "bench/phase2.sh: build $BUILD_DIR first" >&2; exit 2; }
command -v kcat >/dev/null || { echo "bench/phase2.sh: kcat missing (apt-get install kcat)" >&2; exit 2; }
export BUILD_DIR ROOT
exec "$PY" - <<'EOF'
import json, os, random, shutil, signal, subprocess, sys, tempfile, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # run the finally: stop the broker and weir
ROOT = os.environ["ROOT"]; BUILD = os.environ["BUILD_DIR"]
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from peer_kafka import Broker
from benchlib import cpu_of_pgrp, cpu_of_pid, free_port, wait_listening
import benchlib

ES = os.environ.get("PHASE2_BENCH_ES") == "1"
N = int(os.environ.get("PHASE2_BENCH_RECORDS", "200000" if ES else "1000000"))
SAGA_PCT = int(os.environ.get("PHASE2_BENCH_SAGA_PCT", "20"))
SAGA_WINDOW = int(os.environ.get("PHASE2_BENCH_SAGA_WINDOW", "10000"))
os.environ.setdefault("WEIR_ES_HEAP", os.environ.get("ES_BENCH_HEAP", "1g"))
EXAMPLE = os.environ.get("PHASE2_BENCH_CONFIG") or os.path.join(ROOT, "config", "examples", "phase2-kafka-to-es.conf")
MARK = "# logs-YYYY.MM.DD, logs-errors-YYYY.MM.DD, logs-dlq-YYYY.MM.DD"
SERVICES = ["auth-api", "orders-api", "payments-api", "catalog-api", "gateway", "users-api", "search-api"]
PATHS = ["/api/orders/{}", "/api/users/{}/profile", "/api/catalog/items?page={}", "/healthz", "/api/pay/{}"]
AGENTS = ['Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0', 'okhttp/4.12.0', 'curl/8.5.0',
          'python-requests/2.32.3']


def log(*a):
    print("phase2 bench:", *a, file=sys.stderr, flush=True)


def app_line(i, rnd):
    svc = SERVICES[i % len(SERVICES)]
    lvl = "ERROR" if i % 10 == 3 else ("WARN" if i % 10 == 5 else ("FATAL" if i % 1000 == 7 else "INFO"))
    r = {"@timestamp": f"2025-10-14T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
         "log.level": lvl, "message": "User login failed" if lvl == "ERROR" else f"handled request {i} in {rnd.randint(1, 900)} ms",
         "service.name": svc, "trace.id": f"{rnd.getrandbits(128):032x}", "span.id": f"{rnd.getrandbits(64):016x}",
         "user_id": f"user{i % 5000}", "source_ip": f"10.{i % 200}.{i % 250}.{i % 7 + 1}",
         "http.request.method": "POST" if i % 4 == 0 else "GET", "duration_ms": rnd.randint(1, 900)}
    if lvl == "ERROR":
        r["reason"] = "invalid_credentials"
    return f"{svc}|{json.dumps(r, separators=(',', ':'))}"


def saga_lines(n, rnd):
    """n saga events (sagas of 5), SAGA_WINDOW sagas interleaved at a time."""
    svcs = ["orders", "payments", "inventory", "shipping"]
    nsag = n // 5
    out = []
    for w0 in range(0, nsag, SAGA_WINDOW):
        w = range(w0, min(nsag, w0 + SAGA_WINDOW))
        for e in range(5):
            for j in w:
                sid = f"saga-{j:08d}"
                bad = j % 10 == 7
                step, st = [("begin", "STARTED"), ("reserve_stock", "OK"),
                            ("authorize_payment", "FAILED" if bad else "OK"),
                            ("refund_payment" if bad else "schedule_shipment", "COMPENSATED" if bad else "OK"),
                            ("end", "ABORTED" if bad else "COMPLETED")][e]
                r = {"@timestamp": f"2025-10-14T{(j // 3600) % 24:02d}:{(j // 60) % 60:02d}:{j % 60:02d}.{e * 100:03d}Z",
                     "log.level": "ERROR" if st == "FAILED" else "INFO",
                     "message": f"saga {sid}: {step} {st.lower()}", "service.name": svcs[(j + e) % 4],
                     "trace.id": f"{j:032x}", "saga_id": sid, "step": step, "status": st}
                out.append(f"{sid}|{json.dumps(r, separators=(',', ':'))}")
    return out


def access_line(i, rnd):
    st = 503 if i % 20 == 0 else (404 if i % 9 == 0 else 200)
    line = (f'10.{i % 200}.{i % 250}.{i % 7 + 1} - - [14/Oct/2025:{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d} +0000] '
            f'"GET {PATHS[i % len(PATHS)].format(i % 997)} HTTP/1.1" {st} {rnd.randint(0, 40000)} '
            f'"https://shop.example.com/" "{AGENTS[i % len(AGENTS)]}"')
    return json.dumps({"log": line, "stream": "stdout", "kubernetes": {"namespace_name": "edge",
                       "pod_name": f"ingress-nginx-{i % 3}", "container_name": "controller"}}, separators=(",", ":"))


def cdc_line(i, rnd):
    table = "customers" if i % 2 else "orders"
    op = "cud"[i % 3]
    row = {"id": 1000 + i, "email": f"user{i}@example.com", "status": "active", "updated_at": 1760440800000 + i}
    ts = 1760440800000 + i
    ev = {"before": None if op == "c" else row, "after": None if op == "d" else {**row, "status": "paid"},
          "source": {"version": "2.5.0.Final", "connector": "postgresql", "name": "dbserver1", "ts_ms": ts,
                     "snapshot": "false", "db": "inventory", "sequence": "[null,\"24023128\"]", "schema": "public",
                     "table": table, "txId": 555 + i, "lsn": 24023128 + i, "xmin": None},
          "op": op, "ts_ms": ts + rnd.randint(5, 400), "transaction": None}
    return table, f'{{"id":{1000 + i}}}|{json.dumps(ev, separators=(",", ":"))}'


def produce(b, topic, lines, key=True):
    args = ["kcat", "-b", b.bootstrap, "-P", "-t", topic, "-X", "acks=1", "-X", "linger.ms=20",
            "-X", "batch.num.messages=10000", "-X", "queue.buffering.max.messages=1000000"]
    if key:
        args += ["-K", "|"]
    p = subprocess.Popen(args, stdin=subprocess.PIPE)
    nbytes = 0
    chunk = []
    for l in lines:
        chunk.append(l)
        nbytes += len(l.split("|", 1)[1] if key else l)
        if len(chunk) >= 20000:
            p.stdin.write(("\n".join(chunk) + "\n").encode()); chunk = []
    if chunk:
        p.stdin.write(("\n".join(chunk) + "\n").encode())
    p.stdin.close()
    assert p.wait() == 0, f"kcat produce to {topic} failed"
    return nbytes


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def vm(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) // 1024
    return 0


tmp = tempfile.mkdtemp(prefix="weir-phase2-bench.")
broker = Broker()
weir = None
try:
    broker.start()
    n_app, n_acc = N * 70 // 100, N * 25 // 100
    n_cdc = N - n_app - n_acc
    broker.create_topic("app-logs", partitions=4)
    broker.create_topic("access-logs", partitions=2)
    for t in ("customers", "orders"):
        broker.create_topic(f"dbserver1.inventory.{t}")
    rnd = random.Random(42)
    t_p = time.monotonic()
    n_saga = (n_app * SAGA_PCT // 100) // 5 * 5
    nbytes = produce(broker, "app-logs", (app_line(i, rnd) for i in range(n_app - n_saga)))
    nbytes += produce(broker, "app-logs", saga_lines(n_saga, rnd))
    nbytes += produce(broker, "access-logs", (access_line(i, rnd) for i in range(n_acc)), key=False)
    cdc = {"customers": [], "orders": []}
    for i in range(n_cdc):
        t, l = cdc_line(i, rnd)
        cdc[t].append(l)
    for t, ls in cdc.items():
        nbytes += produce(broker, f"dbserver1.inventory.{t}", ls)
    log(f"preloaded {N} messages, {nbytes / 1e6:.1f} MB of payload, in {time.monotonic() - t_p:.1f}s")

    # the example's pipeline, its Elasticsearch outputs replaced by null outputs
    text = open(EXAMPLE).read()
    assert MARK in text, f"{EXAMPLE} changed: no line {MARK!r}"
    mport = free_port()
    node = None
    if ES:
        import peer_es
        node = peer_es.Node()
        node.start()
        node.one_shard_default()
        node.ok("PUT", "/_index_template/bench-cdc", {"index_patterns": ["cdc-*"], "priority": 1,
                "template": {"settings": {"number_of_shards": 1, "number_of_replicas": 0}}})
        conf = text + f"""
<source>
  @type monitor_agent
  bind 127.0.0.1
  port {mport}
</source>
"""
    else:
        conf = text[:text.index(MARK)] + f"""
<source>
  @type monitor_agent
  bind 127.0.0.1
  port {mport}
</source>
<match logs.**>
  @type null
  @id null_logs
</match>
<match logs-errors.**>
  @type null
  @id null_errors
</match>
<match logs-dlq.**>
  @type null
  @id null_dlq
</match>
<match cdc>
  @type null
  @id null_cdc
</match>
<match saga.summary>
  @type null
  @id null_sagas
</match>
<label @ERROR>
  <match **>
    @type null
    @id null_error_label
  </match>
</label>
"""
    cpath = os.path.join(tmp, "phase2-null.conf")
    with open(cpath, "w") as f:
        f.write(conf)
    env = {**os.environ, "KAFKA_BROKERS": broker.bootstrap, "KAFKA_GROUP": "bench", "WEIR_BUFFER_DIR": tmp, "TZ": "UTC",
           "SAGA_TIMEOUT": "60s"}
    if node:
        env["ES_HOSTS"] = node.url
    load0 = loadavg()
    b0 = cpu_of_pgrp(broker.proc.pid)
    errf = open(os.path.join(tmp, "weir.log"), "wb")
    weir = subprocess.Popen([os.path.join(BUILD, "weir"), "-c", cpath], stdout=errf, stderr=errf, env=env)
    assert wait_listening(mport), "weir's monitor_agent did not come up"

    def outs():
        m = benchlib.metrics(mport, lambda l: l.startswith("weir_output_records_total"))
        by = {}
        for k, v in m.items():
            oid = k.split('output="', 1)[1].split('"', 1)[0]
            by[oid] = by.get(oid, 0) + v
        return by

    t_start = time.monotonic()
    while sum(outs().values()) == 0:
        assert weir.poll() is None, "weir exited"
        assert time.monotonic() - t_start < 120, "no record out after 120 s"
        time.sleep(0.05)
    t0 = time.monotonic(); c0 = cpu_of_pid(weir.pid); bb0 = cpu_of_pgrp(broker.proc.pid)
    n0 = cpu_of_pgrp(node.proc.pid) if node else 0
    open_max = 0
    while True:
        by = outs()
        open_max = max(open_max, int(sum(benchlib.metrics(mport, lambda l: l.startswith("weir_aggregate_open")).values())))
        got = sum(v for k, v in by.items() if k != "null_sagas")  # summaries are not input records
        if node:  # one _count a second: polling must not load the node
            got = node.count("logs-*,cdc-*")
            if got < N:
                time.sleep(0.9)
        if got >= N:
            if node:
                by = {idx: node.count(idx) for idx in ("logs-2*", "logs-errors-*", "logs-dlq-*", "cdc-*", "sagas-*")}
            break
        assert weir.poll() is None, "weir exited"
        assert time.monotonic() - t0 < 1800, f"only {got} of {N} records out after 30 min"
        time.sleep(0.1)
    t1 = time.monotonic(); c1 = cpu_of_pid(weir.pid); bb1 = cpu_of_pgrp(broker.proc.pid)
    n1 = cpu_of_pgrp(node.proc.pid) if node else 0
    hwm = vm(weir.pid, "VmHWM"); rss = vm(weir.pid, "VmRSS")
    load1 = loadavg()
    el = t1 - t0
    res = {"records": N, "payload_mb": round(nbytes / 1e6, 1), "seconds": round(el, 2),
           "records_per_s": round(got / el), "mb_per_s": round(nbytes / 1e6 / el, 1),
           "weir_cpu_s": round(c1 - c0, 2), "weir_cpu_us_per_record": round((c1 - c0) / N * 1e6, 2),
           "weir_cpu_cores": round((c1 - c0) / el, 2),
           "weir_cpu_us_per_record_whole_process": round(c1 / N * 1e6, 2),
           "weir_peak_rss_mb": hwm, "weir_rss_end_mb": rss, "broker_cpu_cores": round((bb1 - bb0) / el, 2),
           "routed": {k: int(v) for k, v in sorted(by.items())}, "saga_events": n_saga, "sagas": n_saga // 5,
           "open_sagas_max": open_max, "loadavg_before": load0, "loadavg_after": load1,
           "nproc": os.cpu_count()}
    if node:
        res["es_node_cpu_cores"] = round((n1 - n0) / el, 2)
        res["weir_cpu_vs_node"] = round((c1 - c0) / max(n1 - n0, 1e-9), 3)
    print(f"phase2   kafka -> weir (example pipeline: decorate_events, DLQ labels, kafka_id, grok, debezium, "
          f"saga grok + aggregate ({n_saga // 5} sagas, up to {open_max} open), rewrite_tag_filter) -> {'Elasticsearch (searchable)' if node else 'null'}: {got:.0f}/{N} records ({nbytes / 1e6:.0f} MB) in {el:.2f}s = "
          f"{got / el:.0f} records/s, {nbytes / 1e6 / el:.1f} MB/s; weir CPU {(c1 - c0) / N * 1e6:.2f} us/record "
          f"({(c1 - c0) / el:.2f} cores; {c1 / N * 1e6:.2f} us/record whole process), peak RSS {hwm} MB; broker "
          f"{(bb1 - bb0) / el:.2f} cores" + (f"; ES node {(n1 - n0) / el:.2f} cores (weir = {res['weir_cpu_vs_node']} x the node)"
                                                if node else "") + f"; load {load0} -> {load1}")
    want = {"cdc-*" if node else "null_cdc": n_cdc}
    for k in want:
        if by.get(k, 0) != want[k]:
            log(f"routing: {k} got {by.get(k, 0)}, want {want[k]}")
    print(json.dumps(res))
    weir.send_signal(signal.SIGTERM)
    weir.wait(30)
    weir = None
finally:
    if weir is not None:
        weir.kill()
        weir.wait()
    broker.cleanup()
    if "node" in dir() and node is not None:
        node.close()
    if os.environ.get("BENCH_KEEP") == "1":
        log(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
EOF
