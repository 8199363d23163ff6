"""The kafka source's metadata on consumed records (decorate_events,
metadata_key) and DLQ labelling (retry_count_key from retry_count_header or
retry_topic_pattern / dlq_topic_pattern), against a real Apache Kafka broker
(peer_kafka.py; one JVM for the module). What weir wrote is compared with
what kcat reads back from the broker for the same messages (partition,
offset, key, timestamp, headers)."""
import collections
import json
import shutil
import subprocess

import pytest

import helpers
from conftest import WEIR_BIN, poll
import peer_kafka

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None or shutil.which("java") is None,
                                reason="kcat and java are needed (scripts/install-deps.sh --test)")


@pytest.fixture(scope="module")
def broker():
    with peer_kafka.running() as b:
        yield b


def consumer_source(brokers, topics, group, extra=""):
    return f"""<source>
  @type kafka
  brokers {brokers}
  topics {topics}
  consumer_group {group}
{extra}
</source>
"""


def file_match(prefix, pattern="**"):
    return helpers.file_match(prefix, pattern, inject="    tag_key tag",
                              buffer="    @type memory\n    flush_interval 0.1s")


def header_dict(m):
    h = m.get("headers") or []
    return dict(zip(h[0::2], h[1::2]))


def test_decorate_events_basic_and_extended(weir, broker):
    """Every record carries its message's topic, partition, offset, key,
    timestamp and consumer group (basic), and headers (extended), exactly as
    the broker has them; nested metadata_key merges into an existing map."""
    broker.create_topic("km.orders", partitions=3)
    lines = []
    for i in range(30):
        rec = {"n": i}
        if i % 5 == 0:
            rec["@metadata"] = {"keep": i}
        lines.append(f"key{i % 7}|{json.dumps(rec)}")
    broker.produce("km.orders", lines[:15], key_sep="|", headers=["trace=t1", "origin=svc-a"])
    broker.produce("km.orders", lines[15:], key_sep="|")
    cfg = consumer_source(broker.bootstrap, "km.orders", "g-ext",
                          "  add_prefix ext\n  decorate_events extended\n  metadata_key $.@metadata.kafka")
    cfg += consumer_source(broker.bootstrap, "km.orders", "g-basic",
                           "  add_prefix basic\n  decorate_events true\n  @id basic")
    cfg += file_match(weir.prefix)
    weir.start(cfg, wait_port=False)
    recs = weir.wait_records(60, timeout=40)
    weir.stop_ok()
    truth = {(m["partition"], m["offset"]): m for m in broker.read("km.orders", expect=30)}
    assert len(truth) == 30
    assert {p for p, _ in truth} == {0, 1, 2}  # keys spread over the partitions
    by_tag = collections.defaultdict(list)
    for r in recs:
        by_tag[r["tag"]].append(r)
    assert sorted(by_tag) == ["basic.km.orders", "ext.km.orders"]
    for tag, meta_of in (("ext.km.orders", lambda r: r["@metadata"]["kafka"]), ("basic.km.orders", lambda r: r["kafka"])):
        seen = set()
        for r in by_tag[tag]:
            md = meta_of(r)
            m = truth[(md["partition"], md["offset"])]
            assert json.loads(m["payload"])["n"] == r["n"], (md, m)
            assert md["topic"] == "km.orders"
            assert md["key"] == m["key"] == f"key{r['n'] % 7}"
            assert md["timestamp"] == m["ts"] and md["timestamp"] > 1_600_000_000_000, (md, m)
            assert md["consumer_group"] == ("g-ext" if tag.startswith("ext") else "g-basic")
            if tag.startswith("ext"):
                want_h = {"trace": "t1", "origin": "svc-a"} if r["n"] < 15 else {}
                assert md["headers"] == want_h == header_dict(m), (md, m)
                assert set(md) == {"topic", "partition", "offset", "key", "timestamp", "consumer_group", "headers"}
                if r["n"] % 5 == 0:
                    assert r["@metadata"]["keep"] == r["n"]  # the existing map kept its key
            else:
                assert set(md) == {"topic", "partition", "offset", "key", "timestamp", "consumer_group"}
                assert "@metadata" not in r or "kafka" not in r["@metadata"]
            seen.add((md["partition"], md["offset"]))
        assert seen == set(truth), tag


def test_retry_count_from_headers_and_topic_names(weir, broker):
    """Records from retry and dead-letter topics get event.retry_count and
    event.dlq: a header wins (x-retry-count, retry_count, its last value),
    else the <N> of <topic>.retry.<N>, else 0; <topic>.dlq and <topic>-dlt
    (configured) set dlq. Each message says what it expects."""
    topics = ["kr.pay", "kr.pay.retry.1", "kr.pay.retry.3", "kr.pay.dlq", "kr.pay-dlt", "kr.pay.retry.x"]
    for t in topics:
        broker.create_topic(t)
    sent = 0

    def produce(topic, want, headers=None, n=3, extra=None):
        nonlocal sent
        recs = []
        for _ in range(n):
            r = {"id": sent, "want": want, **(extra or {})}
            recs.append(json.dumps(r))
            sent += 1
        broker.produce(topic, recs, headers=headers)

    produce("kr.pay", [0, False])
    produce("kr.pay", [2, False], headers=["x-retry-count=2"])
    produce("kr.pay.retry.1", [1, False], extra={"event": {"kind": "payment"}})
    produce("kr.pay.retry.3", [3, False])
    produce("kr.pay.retry.1", [5, False], headers=["retry_count=5"])            # the header beats the topic
    produce("kr.pay.retry.1", [9, False], headers=["retry_count=4", "retry_count=9"])  # its last value
    produce("kr.pay.retry.1", [1, False], headers=["retry_count=lots"])         # not a number: the topic's
    produce("kr.pay.dlq", [0, True])
    produce("kr.pay.dlq", [7, True], headers=["x-retry-count=7"])
    produce("kr.pay-dlt", [6, True], headers=["x-retry-count= 6 "])
    produce("kr.pay.retry.x", [0, False])                                       # no <N>: not a retry topic
    extra = """  retry_count_key $.event.retry_count
  retry_count_header x-retry-count,retry_count
  dlq_topic_pattern <topic>.dlq,<topic>-dlt
  refresh_topic_interval 1"""
    cfg = consumer_source(broker.bootstrap, "/kr\\.pay.*/", "g-retry", extra)
    cfg += file_match(weir.prefix)
    weir.start(cfg, wait_port=False)
    recs = weir.wait_records(sent, timeout=40)
    weir.stop_ok()
    assert sorted(r["id"] for r in recs) == list(range(sent))
    for r in recs:
        assert [r["event"]["retry_count"], r["event"]["dlq"]] == r["want"], r
        if r.get("event", {}).get("kind"):
            assert r["event"] == {"kind": "payment", "retry_count": 1, "dlq": False}


def test_dry_run_refuses_bad_meta_parameters(weir):
    """Bad values are FILE:LINE: errors naming the parameter."""
    cfg = consumer_source("127.0.0.1:9", "t", "g", "  decorate_events always")
    cfg += consumer_source("127.0.0.1:9", "t", "g", "  @id two\n  retry_count_key $.a[1]\n"
                           "  dlq_topic_pattern <topic><N>")
    cfg += consumer_source("127.0.0.1:9", "t", "g", "  @id three\n  dlq_key dead")
    cfg += "<match **>\n  @type null\n</match>\n"
    path = weir.write_config(cfg, "bad.conf")
    line = {l.strip().split()[0]: n for n, l in enumerate(cfg.splitlines(), 1) if l.strip()}
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", path], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    err = p.stderr + p.stdout
    assert f"bad.conf:{line['decorate_events']}: invalid value 'always' for parameter 'decorate_events'" in err, err
    assert f"bad.conf:{line['retry_count_key']}: retry_count_key: `$.a[1]` has an array index" in err, err
    assert f"bad.conf:{line['dlq_topic_pattern']}: dlq_topic_pattern `<topic><N>`" in err, err
    assert f"bad.conf:{line['dlq_key']}: dlq_key needs retry_count_key" in err, err


@pytest.fixture(scope="module")
def es():
    import peer_es
    with peer_es.running() as node:
        yield node


def test_metadata_drives_elasticsearch_id_and_index(weir, broker, es):
    """Kafka -> weir -> the real Elasticsearch: the index name from
    ${$.kafka.topic}, _id from topic-partition-offset (record_transformer).
    A second consumer group reading the same messages again overwrites the
    same documents: no duplicates."""
    broker.create_topic("kes.orders", partitions=3)
    broker.produce("kes.orders", [f"k{i}|{json.dumps({'n': i})}" for i in range(20)], key_sep="|")

    def cfg(group):
        return consumer_source(broker.bootstrap, "kes.orders", group, "  decorate_events basic") + """<filter **>
  @type record_transformer
  <record>
    kafka_id ${record["kafka"]["topic"]}-${record["kafka"]["partition"]}-${record["kafka"]["offset"]}
  </record>
</filter>
""" + helpers.match("**", "elasticsearch", id="es_out",
                    extra=f"  host 127.0.0.1\n  port {es.port}\n  index_name logs-${{$.kafka.topic}}\n"
                          "  id_key kafka_id\n  remove_keys kafka_id",
                    buffer="    @type memory\n    flush_interval 0.2s")
    truth = broker.read("kes.orders", expect=20)
    want = {f"kes.orders-{m['partition']}-{m['offset']}": json.loads(m["payload"])["n"] for m in truth}
    assert len(want) == 20

    def docs():
        es.refresh("logs-kes.orders")
        return es.search("logs-kes.orders")
    for run, group in enumerate(("g-es-1", "g-es-2")):
        weir.start(cfg(group), wait_port=False)
        poll(lambda: len(docs()) >= 20 and broker.committed(group, "kes.orders") and
             sum(v or 0 for v in broker.committed(group, "kes.orders").values()) == 20, 40, interval=0.5,
             what=f"20 documents and group {group} committed")
        weir.stop_ok()
        hits = docs()
        assert len(hits) == 20, (run, len(hits))
        assert {h["_id"]: h["_source"]["n"] for h in hits} == want
        for h in hits:
            src = h["_source"]
            assert "kafka_id" not in src
            assert h["_id"] == f"{src['kafka']['topic']}-{src['kafka']['partition']}-{src['kafka']['offset']}"
            assert src["kafka"]["key"] == f"k{src['n']}"
            # the second group's read overwrote the first group's documents: same _ids, none added
            assert src["kafka"]["consumer_group"] == group


def test_kafka_bursts_larger_than_the_buffer_reach_elasticsearch(weir, broker, es):
    """The Kafka source's bursts (max_poll_records 10000 of ~450-byte
    records: ~4.4 MB) into an Elasticsearch output whose whole buffer is 1 MB
    (overflow_action block): each burst goes through the buffer chunk by
    chunk as the output frees space, and all 30,000 records are indexed
    once. (Before, such a batch was refused whole, every second, forever.)"""
    n = 30000
    broker.create_topic("kes.burst", partitions=1)
    pad = "p" * 380
    broker.produce("kes.burst", [json.dumps({"n": i, "level": "INFO", "message": pad}) for i in range(n)])
    conf = consumer_source(broker.bootstrap, "kes.burst", "g-burst") + helpers.match(
        "**", "elasticsearch", id="es_burst",
        extra=f"  host 127.0.0.1\n  port {es.port}\n  index_name burst\n  bulk_message_request_threshold 512k",
        buffer="    @type memory\n    chunk_limit_size 256k\n    total_limit_size 1m\n    flush_interval 0.2s\n"
               "    overflow_action block\n    flush_thread_count 2")
    weir.start(conf, wait_port=False)

    def indexed():
        es.refresh("burst")
        return es.count("burst")
    poll(lambda: indexed() >= n, 180, interval=1, what=f"{n} documents in burst")
    weir.stop_ok()
    assert indexed() == n
    err = open(weir.stderr_path).read()
    assert "written chunk by chunk as space frees" in err, err[-3000:]
    assert "refused" not in err, err[-3000:]
    # n documents, n distinct values 0..n-1: each record once
    agg = es.ok("POST", "/burst/_search", {"size": 0, "aggs": {"d": {"cardinality": {"field": "n",
                                                                                  "precision_threshold": 40000}},
                                                             "lo": {"min": {"field": "n"}}, "hi": {"max": {"field": "n"}}}})
    a = agg["aggregations"]
    assert (a["d"]["value"], a["lo"]["value"], a["hi"]["value"]) == (n, 0, n - 1), a
