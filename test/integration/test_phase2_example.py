"""config/examples/phase2-kafka-to-es.conf, the shipped Phase 2 example, run
as it is (only environment variables set: brokers, consumer group, the
Elasticsearch URL, credentials and CA, the buffer directory) against a real
Apache Kafka broker (peer_kafka.py) and a real Elasticsearch node with TLS
and basic auth (peer_es.py), one of each for the module.

A realistic Phase 2 mix is produced to Kafka first: ECS JSON application
logs (DEBUG/INFO/WARN/ERROR/FATAL, two days, keyed by service over three
partitions), messages on app-logs.retry.2 and app-logs.dlq with and without
retry headers, access-log lines (200/404/503 and one that is not an access
line), Debezium change events for two tables (snapshot read, create,
update, delete followed by its tombstone, truncate, one with the
JsonConverter schema wrapper, one malformed), and one application record
that Elasticsearch rejects (a mapping conflict). Then, in Elasticsearch:

- every message (tombstones excepted) is there exactly once, with the _id
  `<topic>-<partition>-<offset>` taken from what the broker says (kcat), in
  the index its routing says (computed here independently from the
  payload: logs-errors-<day> for ERROR/FATAL and 5xx, logs-dlq-<day> for
  the .dlq topic, weir's dead letter and the malformed CDC event,
  cdc-<table>-<day>, else logs-<day>; the day from the record's own time);
- retry counts and dlq flags, grok fields, Debezium fields, the dead
  letter's reason;
- replay: weir restarted with a new consumer group reads every topic again
  from the beginning; every document is overwritten (its _version becomes
  2) and the document count does not change.
"""
import datetime
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from conftest import poll
from peer_es import Node
from peer_kafka import Broker

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "config", "examples", "phase2-kafka-to-es.conf")

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None or shutil.which("java") is None,
                                reason="kcat and java are needed (scripts/install-deps.sh --test)")

SERVICES = ["auth-api", "orders-api", "payments-api", "catalog-api", "gateway"]
LEVELS = ["INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG", "INFO", "error", "FATAL", "INFO"]
DAYS = ["2025-10-14", "2025-10-15"]
N_APP = 240


@pytest.fixture(scope="module")
def broker():
    b = Broker()
    try:
        b.start()
        yield b
    finally:
        b.cleanup()


@pytest.fixture(scope="module")
def es():
    node = Node(tls=True)
    try:
        node.start()
        node.one_shard_default()
        # the operator's templates: one shard, and a typed field a record will violate
        node.ok("PUT", "/_index_template/p2-logs", {
            "index_patterns": ["logs-2*", "logs-errors-*"], "priority": 100,
            "template": {"settings": {"number_of_shards": 1, "number_of_replicas": 0},
                         "mappings": {"properties": {"duration_ms": {"type": "long"},
                                                     "trace": {"properties": {"id": {"type": "keyword"}}}}}}})
        node.ok("PUT", "/_index_template/p2-cdc", {
            "index_patterns": ["cdc-*"], "priority": 100,
            "template": {"settings": {"number_of_shards": 1, "number_of_replicas": 0}}})
        yield node
    finally:
        node.close()


def day_of_ms(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y.%m.%d")


def day_of_iso(ts):
    return ts[:10].replace("-", ".")


# ------------------------------------------------------------ the mix --

def app_records():
    out = []
    for i in range(N_APP):
        svc = SERVICES[i % len(SERVICES)]
        day = DAYS[i % 2]
        r = {"@timestamp": f"{day}T11:{i % 60:02d}:{i % 59:02d}.{i:03d}Z", "log.level": LEVELS[i % len(LEVELS)],
             "message": f"request {i} handled" if LEVELS[i % len(LEVELS)] != "ERROR" else "User login failed",
             "service.name": svc, "trace.id": f"{i:032x}", "test_id": f"app-{i}", "duration_ms": i * 3}
        if svc == "auth-api":
            r.update({"user_id": f"user{i}", "source_ip": f"10.0.{i % 256}.{i % 7}"})
        out.append(r)
    return out


# rejected by Elasticsearch (duration_ms is a long in the operator's template): weir's dead letter
REJECTED = {"@timestamp": "2025-10-14T12:00:00Z", "log.level": "INFO", "message": "slow path", "service.name": "orders-api",
            "trace.id": "f" * 32, "test_id": "app-rejected", "duration_ms": "fast"}

RETRY_MSGS = [  # topic, headers, record, expected (retry_count, dlq)
    ("app-logs.retry.2", [], {"log.level": "WARN", "message": "celery task retried", "test_id": "retry-topic"}, (2, False)),
    ("app-logs.retry.2", ["x-retry-count=3"], {"log.level": "ERROR", "message": "task failed again",
                                               "test_id": "retry-header"}, (3, False)),
    ("app-logs.dlq", ["x-retry-count=5"], {"log.level": "ERROR", "message": "task gave up", "test_id": "dlq-header"}, (5, True)),
    ("app-logs.dlq", [], {"log.level": "INFO", "message": "parked", "test_id": "dlq-plain"}, (0, True)),
]
for _t, _h, _r, _e in RETRY_MSGS:
    _r.update({"@timestamp": "2025-10-15T08:00:00Z", "service.name": "worker", "trace.id": "a" * 32})

ACCESS = [  # line, expected status (None: not an access line)
    ('10.1.2.3 - - [14/Oct/2025:11:20:05 +0000] "GET /api/orders/42 HTTP/1.1" 200 512 "-" "curl/8.5.0"', 200),
    ('10.1.2.4 - alice [14/Oct/2025:11:20:06 +0000] "POST /api/login HTTP/1.1" 404 19 "https://shop/" "Mozilla/5.0"', 404),
    ('10.1.2.5 - - [15/Oct/2025:00:00:01 +0000] "GET /api/pay HTTP/2.0" 503 0 "-" "okhttp/4.12"', 503),
    ('upstream connect error or disconnect/reset before headers', None),
]

PG = {"version": "2.5.0.Final", "connector": "postgresql", "name": "dbserver1", "db": "inventory", "schema": "public",
      "snapshot": "false", "txId": 555, "lsn": 24023128}
T_CDC = 1760440800000  # 2025-10-14T11:20:00Z


def src(table, k, **kw):
    return {**PG, "table": table, "ts_ms": T_CDC + k * 1000, **kw}


CDC = {  # topic -> [(key, value or None for a tombstone, expected action or "error")]
    "dbserver1.inventory.customers": [
        ('{"id":1001}', {"before": None, "after": {"id": 1001, "email": "sally@example.com"},
                         "source": src("customers", 0, snapshot="true"), "op": "r", "ts_ms": T_CDC + 10}, "read"),
        ('{"id":1004}', {"before": None, "after": {"id": 1004, "email": "anne@example.com"},
                         "source": src("customers", 1), "op": "c", "ts_ms": T_CDC + 1250}, "create"),
        ('{"id":1004}', {"schema": {"type": "struct", "optional": False, "name": "dbserver1.inventory.customers.Envelope"},
                         "payload": {"before": {"id": 1004, "email": "anne@example.com"},
                                     "after": {"id": 1004, "email": "anne@kitchen.example"},
                                     "source": src("customers", 2), "op": "u", "ts_ms": T_CDC + 2300}}, "update"),
        ('{"id":1004}', {"before": {"id": 1004, "email": "anne@kitchen.example"}, "after": None,
                         "source": src("customers", 3), "op": "d", "ts_ms": T_CDC + 3100}, "delete"),
        ('{"id":1004}', None, None),
        ('{"id":1005}', {"before": None, "source": src("customers", 4), "ts_ms": T_CDC + 4000}, "error"),  # no op
    ],
    "dbserver1.inventory.orders": [
        ('{"id":7}', {"before": None, "after": {"id": 7, "total": 12.5, "status": "new"},
                      "source": src("orders", 86400), "op": "c", "ts_ms": T_CDC + 86400000 + 40}, "create"),
        (None, {"source": src("orders", 86401), "op": "t", "ts_ms": T_CDC + 86401000 + 7}, "truncate"),
    ],
}


def kcat_produce(broker, topic, lines, key_sep=None, headers=(), null_empty=False):
    args = ["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-X", "acks=all"]
    if key_sep:
        args += ["-K", key_sep]
    if null_empty:
        args.append("-Z")
    for h in headers:
        args += ["-H", h]
    p = subprocess.run(args, input="".join(l + "\n" for l in lines).encode(), capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr.decode()


def produce_mix(broker):
    broker.create_topic("app-logs", partitions=3)
    broker.create_topic("app-logs.retry.2")
    broker.create_topic("app-logs.dlq")
    broker.create_topic("access-logs", partitions=2)
    for t in CDC:
        broker.create_topic(t)
    apps = app_records()
    kcat_produce(broker, "app-logs", [f"{r['service.name']}|{json.dumps(r)}" for r in apps + [REJECTED]], key_sep="|")
    for topic, headers, rec, _ in RETRY_MSGS:
        kcat_produce(broker, topic, [json.dumps(rec)], headers=headers)
    kcat_produce(broker, "access-logs", [json.dumps({"log": line, "stream": "stdout", "service.name": "ingress",
                                                     "kubernetes": {"namespace_name": "edge", "pod_name": f"ingress-{i}"},
                                                     "test_id": f"access-{i}"})
                                         for i, (line, _) in enumerate(ACCESS)])
    for topic, msgs in CDC.items():
        for key, val, _ in msgs:
            kcat_produce(broker, topic, [f"{key or ''}|{json.dumps(val) if val is not None else ''}"], key_sep="|",
                         null_empty=True)


# ------------------------------------------------- what ES must hold --

def expected_docs(broker):
    """_id -> (index, check(source)) from what the broker holds (partition, offset, timestamp)."""
    exp = {}
    retry_want = {r["test_id"]: want for _, _, r, want in RETRY_MSGS}
    access_want = {f"access-{i}": st for i, (_, st) in enumerate(ACCESS)}
    cdc_want = {}
    for topic, msgs in CDC.items():
        for key, val, action in msgs:
            if val is not None:
                cdc_want[(topic, json.dumps(val))] = action

    for topic in ["app-logs", "app-logs.retry.2", "app-logs.dlq", "access-logs", *CDC]:
        n_want = {"app-logs": N_APP + 1, "app-logs.retry.2": 2, "app-logs.dlq": 2, "access-logs": len(ACCESS)}.get(topic)
        if n_want is None:
            n_want = len(CDC[topic])
        msgs = broker.read(topic, expect=n_want)
        assert len(msgs) == n_want, (topic, len(msgs))
        for m in msgs:
            _id = f"{topic}-{m['partition']}-{m['offset']}"
            payload = m["payload"]
            if topic in CDC:
                if payload is None or payload == "":
                    continue  # the tombstone: dropped
                action = cdc_want[(topic, payload)]
                val = json.loads(payload)
                env = val.get("payload", val)
                if action == "error":
                    exp[_id] = (f"logs-dlq-{day_of_ms(m['ts'])}", ("cdc-error", env))
                else:
                    exp[_id] = (f"cdc-{env['source']['table']}-{day_of_ms(env['source']['ts_ms'])}", ("cdc", action, env))
                continue
            rec = json.loads(payload)
            tid = rec["test_id"]
            if topic.startswith("app-logs"):
                rc, dlq = retry_want.get(tid, (0, False))
                if tid == "app-rejected":
                    idx = f"logs-dlq-{day_of_iso(rec['@timestamp'])}"
                elif dlq:
                    idx = f"logs-dlq-{day_of_iso(rec['@timestamp'])}"
                elif rec["log.level"].upper() in ("ERROR", "FATAL", "CRITICAL"):
                    idx = f"logs-errors-{day_of_iso(rec['@timestamp'])}"
                else:
                    idx = f"logs-{day_of_iso(rec['@timestamp'])}"
                exp[_id] = (idx, ("app", rec, rc, dlq, m))
            else:
                st = access_want[tid]
                if st is None:
                    idx = f"logs-{day_of_ms(m['ts'])}"  # no time of its own: the Kafka timestamp
                else:
                    line = ACCESS[int(tid.split("-")[1])][0]
                    d = datetime.datetime.strptime(line.split("[")[1].split("]")[0], "%d/%b/%Y:%H:%M:%S %z")
                    idx = f"logs-{'errors-' if st >= 500 else ''}{d.strftime('%Y.%m.%d')}"
                exp[_id] = (idx, ("access", rec, st))
    return exp


def check_doc(_id, src, want):
    kind = want[0]
    if kind == "app":
        rec, rc, dlq, m = want[1:]
        for k, v in rec.items():
            assert src.get(k) == v, (_id, k, src.get(k), v)
        assert src["event"] == {"retry_count": rc, "dlq": dlq}, (_id, src)
        kmeta = src["kafka"]
        assert (kmeta["topic"], kmeta["partition"], kmeta["offset"]) == (m["topic"], m["partition"], m["offset"])
        assert kmeta["timestamp"] == m["ts"] and kmeta["key"] == m["key"], (_id, kmeta, m)
        assert "kafka_id" not in src
        if rec["test_id"] == "app-rejected":
            dl = src["dead_letter"]
            assert dl["error_type"] == "rejected" and dl["output_id"] == "es_logs", dl
            assert "duration_ms" in dl["error_message"], dl
        else:
            assert "dead_letter" not in src
    elif kind == "access":
        rec, st = want[1:]
        assert src["test_id"] == rec["test_id"] and src["kubernetes"] == rec["kubernetes"]
        if st is None:
            assert "log" not in src and "response" not in src, src
            assert src["message"] == rec["log"] and src["grokfailure"] == "No grok pattern matched", src
        else:
            assert "log" not in src, src
            assert src["response"] == st and isinstance(src["bytes"], int), src
            assert src["verb"] in ("GET", "POST") and src["clientip"].startswith("10.1.2."), src
            assert src["@timestamp"].startswith("2025-10-1"), src
    elif kind == "cdc":
        action, env = want[1:]
        assert src["__action"] == action, (_id, src)
        assert src["__source"]["table"] == env["source"]["table"] and src["__source"]["db"] == "inventory"
        assert src["__op"] == env["op"]
        assert src["__lag_ms"] == env["ts_ms"] - env["source"]["ts_ms"]
        row = env["before"] if action == "delete" else env.get("after")
        if row:
            for k, v in row.items():
                assert src[k] == v, (_id, k, src)
            assert src["__deleted"] is (action == "delete"), src
        else:
            assert action == "truncate" and "id" not in src, src
        assert src["kafka"]["topic"] == _id.rsplit("-", 2)[0]
    elif kind == "cdc-error":
        env = want[1]
        assert json.loads(src["message"]) == env, src
        assert "__action" not in src


def all_docs(es):
    es.refresh("logs-*,cdc-*")
    st, b = es.req("POST", "/logs-*,cdc-*/_search",
                   {"size": 10000, "version": True, "track_total_hits": True, "query": {"match_all": {}}})
    assert st == 200, b
    return b["hits"]["hits"]


def run_weir(weir, broker, es, group, buf):
    env = {"KAFKA_BROKERS": broker.bootstrap, "KAFKA_GROUP": group,
           "ES_HOSTS": f"https://127.0.0.1:{es.port}", "ES_USER": es.user, "ES_PASSWORD": es.password,
           "ES_CA_FILE": es.ca, "WEIR_BUFFER_DIR": buf}
    weir.start(args=["-c", EXAMPLE], wait_port=False, env_extra=env)


def test_phase2_example_end_to_end(weir, broker, es, tmp_path):
    signal.alarm(420)  # two brokers' worth of waiting; conftest's default is 60 s
    weir.allow_errors = True  # a bulk timeout on a loaded machine is logged as an error, then retried (checked below)
    produce_mix(broker)
    exp = expected_docs(broker)
    n = len(exp)
    assert n == N_APP + 1 + len(RETRY_MSGS) + len(ACCESS) + sum(len(v) for v in CDC.values()) - 1

    buf = str(tmp_path / "buffer")
    run_weir(weir, broker, es, "p2-first", buf)

    def docs_in():
        d = all_docs(es)
        return d if len(d) >= n else None
    try:
        poll(docs_in, timeout=120, interval=1, what=f"{n} documents")
    except AssertionError:
        have = all_docs(es)
        missing = sorted(set(exp) - {h["_id"] for h in have})[:20]
        raise AssertionError(f"{len(have)} of {n} documents; missing e.g. {missing}\n"
                             f"weir stderr:\n{weir.stderr_text()[-6000:]}")
    time.sleep(3)  # anything extra (a duplicate) would arrive now
    docs = all_docs(es)

    # every message once, under its coordinates, in the index its routing says
    ids = [h["_id"] for h in docs]
    assert len(ids) == len(set(ids)) == n, f"{len(ids)} documents, {len(set(ids))} distinct _ids, {n} expected"
    assert set(ids) == set(exp)
    wrong = [(h["_id"], h["_index"], exp[h["_id"]][0]) for h in docs if h["_index"] != exp[h["_id"]][0]]
    assert not wrong, wrong[:20]
    for h in docs:
        check_doc(h["_id"], h["_source"], exp[h["_id"]][1])
    # a bulk request retried after a timeout (a loaded machine) writes its documents again: the _id makes that an
    # overwrite (a higher _version), never a second document
    v1 = {h["_id"]: h["_version"] for h in docs}

    # the routing as counts (readable when something moved)
    by_index = {}
    for h in docs:
        by_index[h["_index"]] = by_index.get(h["_index"], 0) + 1
    want_index = {}
    for idx, _ in exp.values():
        want_index[idx] = want_index.get(idx, 0) + 1
    assert by_index == want_index
    assert {i for i in by_index if i.startswith("logs-errors-")} == {"logs-errors-2025.10.14", "logs-errors-2025.10.15"}
    assert {i for i in by_index if i.startswith("cdc-")} == {"cdc-customers-2025.10.14", "cdc-orders-2025.10.15"}
    weir.stop_ok()

    # replay: a new consumer group from the beginning overwrites every document, adds none
    run_weir(weir, broker, es, "p2-replay", str(tmp_path / "buffer2"))

    def replayed():
        d = all_docs(es)
        return d if sum(1 for h in d if h["_version"] > v1.get(h["_id"], 0)) >= n else None
    try:
        poll(replayed, timeout=120, interval=1, what="every document written again")
    except AssertionError:
        d = all_docs(es)
        raise AssertionError(f"{sum(1 for h in d if h['_version'] > v1.get(h['_id'], 0))} of {n} documents rewritten, "
                             f"{len(d)} in all; weir stderr:\n{weir.stderr_text()[-6000:]}")
    time.sleep(3)
    docs2 = all_docs(es)
    assert len(docs2) == n, f"{len(docs2)} documents after the replay, {n} before"
    assert {h["_id"]: h["_index"] for h in docs2} == {h["_id"]: h["_index"] for h in docs}
    assert all(h["_version"] > v1[h["_id"]] for h in docs2), [h for h in docs2 if h["_version"] <= v1[h["_id"]]][:5]
    for h in docs2:
        assert h["_source"]["kafka"]["consumer_group"] == "p2-replay-" + h["_source"]["kafka"]["topic"].split(".")[0] \
            .replace("app-logs", "app").replace("access-logs", "access").replace("dbserver1", "cdc")
    weir.stop_ok()
    # the only errors allowed: bulk requests that timed out and were retried
    bad = [l for l in weir.stderr_lines() if l.get("level") in ("error", "fatal") and "timed out" not in l.get("msg", "")]
    assert not bad, bad
    # the rejected record is the only error weir logged
    weir.allow_errors = True
    errs = [l for l in weir.log_lines("error", "fatal")]
    assert all("duration_ms" in json.dumps(l) for l in errs), errs
