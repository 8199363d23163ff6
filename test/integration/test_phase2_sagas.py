"""Phase 2 end to end with sagas (issue 16 items 3 and 5): the shipped
config/examples/phase2-kafka-to-es.conf (only its environment set) run as
two weir consumers in one consumer group, against a real Apache Kafka broker
(peer_kafka.py) and a real Elasticsearch node (peer_es.py).

phase2_gen.Mix writes the mix to Kafka: 2,000 sagas of 3-8 events across 4
services, interleaved, keyed by saga id (completed, failed, compensated,
timed out; JSON fields or grok'd message lines), ordinary application logs,
Celery-style retry and dead-letter topics with retry headers, Debezium
events for three tables (snapshot, creates, updates, deletes, tombstones).

Phases ("graceful"): both consumers start and share the partitions before
the first message, the mix is produced, everything is read; then the second
consumer is stopped with SIGTERM. Checks in Elasticsearch:

- every message (tombstones excepted) exactly once, _id its Kafka
  coordinates, in the index its routing says (computed here from the
  payload), with its fields: retry counts and DLQ flags, Debezium fields,
  the grok'd saga fields;
- exactly one summary per saga in sagas-<day>, _id the saga id, with the
  right outcome, event count, steps, services, trace id, first/last time and
  duration (from the broker's message timestamps);
- a record that logs-* and logs-dlq-* both refuse (a mapping conflict)
  ends, once, in the example's refused file, not in a loop between @ERROR
  and @DLQ;
- replay (item 3): the first group stopped, a new consumer group reads every
  topic from the start: no new document, every event document and every
  summary overwritten (its _version higher than before) with the same
  content (not "== 2": a bulk request that timed out and was retried also
  counts a document up; it stays one document).

"kill": the second consumer is killed with -9 after the first half of the
saga events and restarted on the same buffer directory; the same checks
must hold, except the replay (the graceful phase covers it). Both phases set
the example's session timeout to 10 s (KAFKA_SESSION_TIMEOUT; 45 s in the
example), so the killed member's partitions move after 10 s, not 45. The example keeps the open sagas in a Kafka changelog
(`changelog_topic`): without it the killed consumer's open sagas are lost
and their later events open new sagas with partial summaries
(test_aggregate_changelog.py shows that failure with its `none` variant).
"""
import glob
import json
import os
import shutil
import signal
import time

import pytest

import phase2_gen
from conftest import Weir, free_port, poll
from peer_es import Node
from peer_kafka import Broker

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(HERE)), "config", "examples", "phase2-kafka-to-es.conf")
N_SAGAS = int(os.environ.get("PHASE2_SAGAS", "2000"))
SAGA_TIMEOUT = 20  # s: every saga's events arrive within it (the mix is produced in a few seconds)
SESSION_TIMEOUT = 10  # s: the consumer group's session (the broker's minimum is 6)
REFUSED_TOPIC = "app-logs.retry.9"
APP_PARTITIONS = 4 + len(phase2_gen.RETRY_TOPICS) + 1
REFUSED = {"@timestamp": "2025-10-15T01:00:00Z", "log.level": "INFO", "message": "slow path",
           "service.name": "orders-api", "duration_ms": "fast", "test_id": "refused-twice"}

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None or shutil.which("java") is None,
                                reason="kcat and java are needed (scripts/install-deps.sh --test)")


@pytest.fixture
def broker():
    b = Broker()
    try:
        b.start()
        yield b
    finally:
        b.cleanup()


@pytest.fixture
def es():
    node = Node()
    try:
        node.start()
        node.ok("PUT", "/_index_template/p2-all", {
            "index_patterns": ["logs-*", "cdc-*", "sagas-*"], "priority": 100,
            "template": {"settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"},
                         "mappings": {"properties": {"trace": {"properties": {"id": {"type": "keyword"}}},
                                                     "key": {"type": "keyword"},
                                                     "duration_ms": {"type": "long"}}}}})
        yield node
    finally:
        node.close()


def start(w, broker, es, group, buf, timeout=SAGA_TIMEOUT):
    env = {"KAFKA_BROKERS": broker.bootstrap, "KAFKA_GROUP": group, "ES_HOSTS": es.url,
           "WEIR_BUFFER_DIR": buf, "SAGA_TIMEOUT": f"{timeout}s", "KAFKA_SESSION_TIMEOUT": str(SESSION_TIMEOUT)}
    w.start(args=["-c", EXAMPLE], wait_port=False, env_extra=env)


def app_partitions(w):
    """Partitions the kafka_app source of this weir holds now (from its log)."""
    cur = 0
    for l in w.stderr_lines(all_runs=False):
        msg = l.get("msg", "")
        if msg.startswith("kafka_app: assigned "):
            cur += int(msg.split()[2])
        elif msg.startswith("kafka_app: releasing "):
            cur -= int(msg.split()[2])
    return cur


def wait_balanced(ws):
    def ok():
        held = [app_partitions(w) for w in ws]
        return held if all(h > 0 for h in held) and sum(held) == APP_PARTITIONS else None
    poll(ok, timeout=90, interval=0.5, what="both consumers holding app partitions")
    time.sleep(2)
    held = [app_partitions(w) for w in ws]
    assert all(h > 0 for h in held) and sum(held) == APP_PARTITIONS, held


def scan(es, index):
    """Every document of index (scroll), with _version."""
    es.refresh(index)
    st, b = es.req("POST", f"/{index}/_search?scroll=2m",
                   {"size": 5000, "version": True, "query": {"match_all": {}}})
    if st == 404:
        return []
    assert st == 200, b
    out = list(b["hits"]["hits"])
    sid = b.get("_scroll_id")
    while b["hits"]["hits"]:
        st, b = es.req("POST", "/_search/scroll", {"scroll": "2m", "scroll_id": sid})
        assert st == 200, b
        out += b["hits"]["hits"]
        sid = b.get("_scroll_id")
    es.req("DELETE", "/_search/scroll", {"scroll_id": sid})
    return out


def count(es, index):
    es.refresh(index)
    st, b = es.req("POST", f"/{index}/_count", {"query": {"match_all": {}}})
    return b["count"] if st == 200 else 0


def wait_counts(es, n_docs, n_sagas, timeout, what, ws):
    def done():
        return count(es, "logs-*,cdc-*") >= n_docs and count(es, "sagas-*") >= n_sagas
    try:
        poll(done, timeout=timeout, interval=2, what=what)
    except AssertionError:
        tails = "\n".join(w.stderr_text()[-3000:] for w in ws)
        raise AssertionError(f"{what}: {count(es, 'logs-*,cdc-*')} of {n_docs} event documents, "
                             f"{count(es, 'sagas-*')} of {n_sagas} summaries; weir stderr:\n{tails}")
    time.sleep(4)  # anything extra (a duplicate, a second summary) would arrive now


def check_all(es, docs_want, sagas_want, before=None):
    """The whole content of Elasticsearch against the expectation; returns the hits."""
    docs = scan(es, "logs-*,cdc-*")
    ids = [h["_id"] for h in docs]
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicated _ids"
    missing = set(docs_want) - set(ids)
    extra = set(ids) - set(docs_want)
    assert not missing and not extra, f"{len(missing)} missing (e.g. {sorted(missing)[:5]}), " \
                                      f"{len(extra)} unexpected (e.g. {sorted(extra)[:5]})"
    wrong = [(h["_id"], h["_index"], docs_want[h["_id"]][0]) for h in docs if h["_index"] != docs_want[h["_id"]][0]]
    assert not wrong, f"{len(wrong)} in the wrong index: {wrong[:10]}"
    for h in docs:
        phase2_gen.check_event_doc(h["_id"], h["_source"], docs_want[h["_id"]][1])

    sums = scan(es, "sagas-*")
    keys = [h["_id"] for h in sums]
    dup = len(keys) - len(set(keys))
    assert dup == 0, f"{dup} sagas with more than one summary"
    assert set(keys) == set(sagas_want), (f"{len(set(sagas_want) - set(keys))} sagas without a summary, "
                                          f"{len(set(keys) - set(sagas_want))} unknown keys")
    bad = []
    for h in sums:
        idx, want = sagas_want[h["_id"]]
        why = phase2_gen.summary_mismatch(h["_id"], h["_source"], want)
        if not why and h["_index"] != idx:
            why = f"{h['_id']}: in {h['_index']}, want {idx}"
        if why:
            bad.append(why)
    assert not bad, f"{len(bad)} wrong summaries of {len(sums)}: {bad[:10]}"
    if before:  # the replay wrote every document again (a bulk retried after a timeout also counts up)
        stale = [h["_id"] for h in docs + sums if h["_version"] <= before[h["_index"], h["_id"]]]
        assert not stale, f"{len(stale)} documents not rewritten by the replay: {stale[:10]}"
    return docs, sums


@pytest.mark.parametrize("phase", [
    "graceful",
    "kill",
])
def test_phase2_sagas_two_consumers(broker, es, tmp_path, phase):
    signal.alarm(900)
    mix = phase2_gen.Mix(n_sagas=N_SAGAS)
    mix.create_topics(broker)
    broker.create_topic(REFUSED_TOPIC)
    a = Weir(tmp_path / "a", free_port())
    b = Weir(tmp_path / "b", free_port())
    ws = [a, b]
    try:
        # kill: a longer timeout, so that no saga times out while its partition
        # waits for the killed member's session to expire (SESSION_TIMEOUT),
        # plus the rebalance and the changelog's restore
        to = SAGA_TIMEOUT if phase == "graceful" else SESSION_TIMEOUT + 30
        start(a, broker, es, "p2s", str(tmp_path / "buf-a"), to)
        start(b, broker, es, "p2s", str(tmp_path / "buf-b"), to)
        wait_balanced(ws)

        if phase == "graceful":
            mix.produce(broker)
        else:
            first, second = mix.saga_halves()
            mix.produce(broker, first, rest=False)
            time.sleep(3)  # mid-run: part read, part in flight
            b.proc.kill()
            b.proc.wait()
            b.proc = None
            start(b, broker, es, "p2s", str(tmp_path / "buf-b"), to)
            mix.produce(broker, second, rest=True)
            wait_balanced(ws)

        # a record every logs-* index refuses (duration_ms is a long): logs-*,
        # then logs-dlq-* (weir's dead letter), then the refused file, once
        phase2_gen.kcat_produce(broker.bootstrap, REFUSED_TOPIC, [json.dumps(REFUSED)], key_sep=None)
        docs_want, sagas_want = mix.expected(broker)
        assert len(sagas_want) == N_SAGAS
        wait_counts(es, len(docs_want), N_SAGAS, 240 + to, "every event and every summary", ws)
        b.stop_ok()  # graceful: nothing open any more (every saga ended or timed out)
        time.sleep(3)
        docs, sums = check_all(es, docs_want, sagas_want)
        before = {(h["_index"], h["_id"]): h["_version"] for h in docs + sums}

        def refused():
            got = []
            for d in ("buf-a", "buf-b"):
                for f in glob.glob(str(tmp_path / d / "refused" / "refused*")):
                    got += [json.loads(l) for l in open(f) if l.strip()]
            return got or None
        (r,) = poll(refused, timeout=30, interval=1, what="the twice-refused record in the refused file")
        assert r["test_id"] == "refused-twice" and r["tag"].startswith("to-dlq.logs."), r
        assert r["dead_letter"]["output_id"] == "es_logs", r
        for w in ws:  # no loop between @ERROR and @DLQ: a handful of lines, not thousands
            assert len([l for l in w.stderr_lines(all_runs=False) if "sent to @ERROR" in l.get("msg", "")]) <= 2

        outcomes = {}
        for h in sums:
            outcomes[h["_source"]["outcome"]] = outcomes.get(h["_source"]["outcome"], 0) + 1
        print(f"\n{len(docs)} event documents, {len(sums)} summaries {outcomes}, 0 mismatches")
        assert set(outcomes) == {"completed", "failed", "compensated", "timed_out"}, outcomes
        idx = {h["_index"].rsplit("-", 1)[0] for h in docs}
        assert idx == {"logs", "logs-errors", "logs-dlq", "cdc-customers", "cdc-orders", "cdc-payments"}, idx
        a.stop_ok()
        if phase == "graceful":
            # item 3: a replay with a new consumer group adds nothing and overwrites everything
            c = Weir(tmp_path / "c", free_port())
            ws.append(c)
            start(c, broker, es, "p2s-replay", str(tmp_path / "buf-c"))

            def n_rewritten(index):
                return len([h for h in scan(es, index) if h["_version"] > before[h["_index"], h["_id"]]])

            def rewritten():
                return count(es, "logs-*,cdc-*") == len(docs_want) and n_rewritten("sagas-*") >= N_SAGAS and \
                    n_rewritten("logs-*,cdc-*") >= len(docs_want)
            try:
                poll(rewritten, timeout=240, interval=3, what="every summary written again")
            except AssertionError:
                raise AssertionError(f"replay: {count(es, 'logs-*,cdc-*')} event documents; "
                                     f"{n_rewritten('sagas-*')} summaries rewritten; "
                                     f"weir stderr:\n{c.stderr_text()[-3000:]}")
            time.sleep(4)
            docs2, sums2 = check_all(es, docs_want, sagas_want, before)
            assert {h["_id"]: h["_index"] for h in docs2} == {h["_id"]: h["_index"] for h in docs}
            c.stop_ok()
        for w in ws:
            # the only errors allowed: a bulk request that timed out on the
            # shared machine's node (the buffer retried it; ids keep it one document)
            w.allow_errors = True
            w.check_logs()
            bad = [l for l in w.log_lines("error", "fatal")
                   if not ("bulk requests failed on every host" in l["msg"] and "timed out" in l["msg"])]
            assert not bad, bad[:5]
    finally:
        for w in ws:
            if w.proc is not None and w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait()
