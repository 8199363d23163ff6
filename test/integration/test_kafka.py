"""Kafka output (@type kafka2 / rdkafka2) and input (<source @type kafka>)
against a real Apache Kafka broker (KRaft, from Maven Central jars; see
peer_kafka.py), read back and produced with kcat.

Covers: topics/keys/headers chosen from records, formats, compression (as
stored by the broker), a broker killed and restarted mid-run (every acked
record delivered), a record too large for the topic dead-lettered while the
rest go through, the consumer group (tags, headers, offsets committed only
after delivery, restart resumes), and the Phase 2 chain forward -> weir ->
Kafka -> two weir consumers (one killed mid-run) -> files with nothing lost.
"""
import base64
import collections
import datetime
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import msgpack
import pytest

import fwd
import helpers
from conftest import T0, Weir, free_port, poll, read_json_lines
from helpers import forward_source
import peer_kafka

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None or shutil.which("java") is None,
                                reason="kcat and java are needed (scripts/install-deps.sh --test)")


@pytest.fixture(scope="module")
def broker():
    with peer_kafka.running() as b:
        yield b


# ------------------------------------------------------------------ helpers --

def send_acked(conn, tag, records, t=T0):
    """One PackedForward request of `records` (dicts) asking for an ack; waits for it."""
    ch = base64.b64encode(os.urandom(12)).decode()
    entries = [fwd.entry(fwd.et(t, i), r) for i, r in enumerate(records)]
    conn.send(fwd.packed_forward(tag, entries, {"chunk": ch}))
    conn.expect_ack(ch, timeout=30)


def kafka_match(brokers, extra="", buffer="@type memory\n    flush_interval 0.1s", pattern="**",
                fmt=""):
    return f"""<match {pattern}>
  @type kafka2
  brokers {brokers}
{extra}
{fmt}
  <buffer>
    {buffer}
  </buffer>
</match>
"""


def payloads(msgs):
    return [json.loads(m["payload"]) for m in msgs]


def header_dict(m):
    h = m.get("headers") or []
    return dict(zip(h[0::2], h[1::2]))


def dead_letter_lines(bufdir, output_id):
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")
    path = os.path.join(bufdir, "dead-letter", f"{output_id}.{day}.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        return [json.loads(l) for l in f.read().splitlines() if l.strip()]


# ------------------------------------------------------------------ producer --

def test_topics_keys_headers_from_records(weir, broker):
    """topic_key picks the topic (default_topic otherwise), message_key_key the
    key (default_message_key otherwise), static and record headers are set,
    exclude_topic_key removes the topic field from the payload."""
    broker.create_topic("kt.default")
    broker.create_topic("kt.other")
    extra = """  default_topic kt.default
  default_message_key dkey
  exclude_topic_key true
  headers {"origin":"weir","env":"test"}
  headers_from_record {"app":"$.kubernetes.app","seq":"$.seq"}"""
    weir.start(forward_source(weir.port) + kafka_match(broker.bootstrap, extra))
    recs = []
    for i in range(60):
        r = {"seq": i, "msg": f"m{i}", "kubernetes": {"app": f"app{i % 3}"}}
        if i % 4 == 0:
            r["topic"] = "kt.other"
        if i % 2 == 0:
            r["message_key"] = f"k{i}"
        recs.append(r)
    with weir.conn() as c:
        send_acked(c, "app.logs", recs[:30])
        send_acked(c, "app.logs", recs[30:])
    other = broker.read("kt.other", expect=15)
    default = broker.read("kt.default", expect=45)
    assert len(other) == 15 and len(default) == 45, (len(other), len(default))
    by_seq = {}
    for topic, msgs in (("kt.other", other), ("kt.default", default)):
        for m in msgs:
            p = json.loads(m["payload"])
            assert "topic" not in p, p  # exclude_topic_key
            assert m["topic"] == topic
            by_seq[p["seq"]] = (topic, m)
    assert sorted(by_seq) == list(range(60))
    for i, r in enumerate(recs):
        topic, m = by_seq[i]
        assert topic == ("kt.other" if i % 4 == 0 else "kt.default")
        assert m["key"] == (f"k{i}" if i % 2 == 0 else "dkey"), m
        assert header_dict(m) == {"origin": "weir", "env": "test", "app": f"app{i % 3}", "seq": str(i)}, m
        exp = {k: v for k, v in r.items() if k != "topic"}
        assert json.loads(m["payload"]) == exp
    # per-partition order is kept: the default topic holds the records in order
    assert [json.loads(m["payload"])["seq"] for m in default] == [i for i in range(60) if i % 4]


def test_topic_falls_back_to_tag_and_rdkafka2_alias(weir, broker):
    """Without default_topic and topic field the tag is the topic (kafka2's rule); rdkafka2 is an alias."""
    broker.create_topic("tagtopic")
    cfg = forward_source(weir.port) + kafka_match(broker.bootstrap).replace("@type kafka2", "@type rdkafka2")
    weir.start(cfg)
    with weir.conn() as c:
        send_acked(c, "tagtopic", [{"n": i} for i in range(10)])
    msgs = broker.read("tagtopic", expect=10)
    assert payloads(msgs) == [{"n": i} for i in range(10)]
    assert all(m["key"] is None for m in msgs)


def test_kafka_buffered_alias_v012_params_topic_and_exclude_fields(weir, broker):
    """fluent-plugin-kafka's old kafka_buffered name with its v0.12 parameters
    (output_include_tag, output_include_time with time_format), kafka2's
    `topic` with placeholders, exclude_fields and record_key."""
    broker.create_topic("kb-app-web")
    broker.create_topic("rk-out")
    cfg = forward_source(weir.port) + kafka_match(
        broker.bootstrap, pattern="app.**",
        extra="""  topic kb-${tag[0]}-${svc}
  output_data_type json
  output_include_tag true
  output_include_time true
  time_format %Y-%m-%dT%H:%M:%SZ
  exclude_fields $.drop,$.nested.x""").replace("@type kafka2", "@type kafka_buffered") + kafka_match(
        broker.bootstrap, pattern="rk.**", extra="""  default_topic rk-out
  record_key $.data""").replace("@type kafka2", "@type rdkafka")
    weir.start(cfg, env_extra={"TZ": "UTC"})
    with weir.conn() as c:
        send_acked(c, "app.x", [{"svc": "web", "n": i, "drop": 1, "nested": {"x": 1, "y": 2}} for i in range(3)])
        send_acked(c, "rk.x", [{"data": {"n": i}, "other": 1} for i in range(2)])
    msgs = broker.read("kb-app-web", expect=3)
    got = payloads(msgs)
    assert [p["n"] for p in got] == [0, 1, 2]
    for p in got:
        assert p["tag"] == "app.x" and p["time"] == "2023-11-14T22:13:20Z", p
        assert "drop" not in p and p["nested"] == {"y": 2}, p
    assert payloads(broker.read("rk-out", expect=2)) == [{"n": 0}, {"n": 1}]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_compression_codec(weir, broker, codec):
    """compression_codec: the broker stores the batches compressed with it."""
    topic = f"comp.{codec}"
    broker.create_topic(topic)
    weir.start(forward_source(weir.port) + kafka_match(
        broker.bootstrap, f"  default_topic {topic}\n  compression_codec {codec}"))
    with weir.conn() as c:
        send_acked(c, "c", [{"n": i, "text": "compress me " * 10} for i in range(200)])
    msgs = broker.read(topic, expect=200)
    assert [p["n"] for p in payloads(msgs)] == list(range(200))
    assert broker.codecs(topic) == {codec}


def test_formats_msgpack_and_single_value(weir, broker):
    broker.create_topic("fmt.mp")
    broker.create_topic("fmt.sv")
    cfg = forward_source(weir.port)
    cfg += kafka_match(broker.bootstrap, "  default_topic fmt.mp", pattern="mp",
                       fmt="  <format>\n    @type msgpack\n  </format>")
    cfg += kafka_match(broker.bootstrap, "  default_topic fmt.sv", pattern="sv",
                       fmt="  <format>\n    @type single_value\n    add_newline false\n  </format>")
    weir.start(cfg)
    recs = [{"message": f"line {i}", "n": i} for i in range(5)]
    with weir.conn() as c:
        send_acked(c, "mp", recs)
        send_acked(c, "sv", recs)
    mp = broker.read("fmt.mp", expect=5)
    sv = broker.read("fmt.sv", expect=5)
    # kcat -J shows binary payloads as strings; read the raw bytes with -D instead
    raw = subprocess.run(["kcat", "-b", broker.bootstrap, "-C", "-t", "fmt.mp", "-e", "-q", "-f", "%S:%s"],
                         capture_output=True, timeout=30).stdout
    got, pos = [], 0
    while pos < len(raw):
        colon = raw.index(b":", pos)
        n = int(raw[pos:colon])
        got.append(msgpack.unpackb(raw[colon + 1:colon + 1 + n], raw=False))
        pos = colon + 1 + n
    assert len(mp) == 5 and got == recs
    assert [m["payload"] for m in sv] == [f"line {i}" for i in range(5)]


def test_broker_killed_and_restarted_every_acked_record_delivered(weir, broker, tmp_path):
    """A sender keeps sending acked requests while the broker is SIGKILLed and
    restarted: every record weir acked is in Kafka afterwards; duplicates are
    counted (the idempotent producer should leave none)."""
    topic = "killtest"
    broker.create_topic(topic)
    buf = os.path.join(str(tmp_path), "buf")
    weir.allow_errors = True  # librdkafka reports the dead broker
    weir.start(forward_source(weir.port) + kafka_match(
        # delivery_timeout shorter than the outage: librdkafka gives messages
        # up, weir's buffer retries exactly those
        broker.bootstrap, f"  default_topic {topic}\n  delivery_timeout 2s",
        buffer=f"@type file\n    path {buf}\n    flush_interval 0.1s\n    retry_wait 0.5s\n"
               f"    retry_max_interval 2s\n    retry_forever true"))
    acked = []
    stop = threading.Event()
    errors = []

    def sender():
        seq = 0
        try:
            with weir.conn(timeout=60) as c:
                while not stop.is_set():
                    batch = [{"seq": s, "pad": "x" * 50} for s in range(seq, seq + 50)]
                    send_acked(c, "k", batch)
                    acked.extend(range(seq, seq + 50))
                    seq += 50
                    time.sleep(0.01)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    th = threading.Thread(target=sender)
    th.start()
    try:
        poll(lambda: len(acked) >= 2000, 20, what="2000 acked records before the kill")
        broker.kill()
        time.sleep(3)
        n_down = len(acked)
        broker.start()
        poll(lambda: len(acked) >= n_down + 2000, 30, what="2000 more acked records after the restart")
    finally:
        stop.set()
        th.join(60)
    assert not errors, errors
    total = len(acked)
    msgs = broker.read(topic, expect=total, timeout=40)
    seqs = [json.loads(m["payload"])["seq"] for m in msgs]
    missing = set(acked) - set(seqs)
    dups = len(seqs) - len(set(seqs))
    print(f"kafka kill test: {total} acked, {len(seqs)} in Kafka, {len(missing)} missing, {dups} duplicates")
    assert not missing, f"{len(missing)} acked records missing, e.g. {sorted(missing)[:10]}"
    # the outage was seen by weir: messages timed out and were retried by the buffer
    assert weir.log_lines("warn") and any("to retry" in l["msg"] for l in weir.log_lines("warn")), \
        "no delivery failure was reported during the outage"
    weir.stop_ok()
    assert dead_letter_lines(buf, "kafka2.0") == []


@pytest.mark.parametrize("limit", ["topic", "max_send_limit_bytes"])
def test_too_large_record_dead_lettered_rest_delivered(weir, broker, tmp_path, limit):
    """A record larger than the topic's max.message.bytes (or max_send_limit_bytes)
    goes to the dead-letter file with the reason; the others in the same chunk
    are delivered once."""
    topic = f"big.{limit}"
    if limit == "topic":
        broker.create_topic(topic, config={"max.message.bytes": "4000"})
        extra = f"  default_topic {topic}"
    else:
        broker.create_topic(topic)
        extra = f"  default_topic {topic}\n  max_send_limit_bytes 4000"
    buf = os.path.join(str(tmp_path), "buf")
    weir.start(forward_source(weir.port) + kafka_match(
        broker.bootstrap, extra, buffer=f"@type file\n    path {buf}\n    flush_interval 0.3s"))
    recs = [{"seq": i, "pad": "s" * 100} for i in range(120)]
    recs.insert(60, {"seq": 1000, "pad": "B" * 20000})
    with weir.conn() as c:
        send_acked(c, "big", recs)
    dl = poll(lambda: dead_letter_lines(buf, "kafka2.0"), 20, what="a dead letter")
    msgs = broker.read(topic, expect=120)
    seqs = [json.loads(m["payload"])["seq"] for m in msgs]
    assert sorted(seqs) == list(range(120)), f"{len(seqs)} delivered"
    assert len(dl) == 1 and dl[0]["record"]["seq"] == 1000, dl
    assert "TOO_LARGE" in dl[0]["error"] or "max_send_limit_bytes" in dl[0]["error"], dl[0]["error"]
    assert dl[0]["tag"] == "big" and dl[0]["output"] == "kafka2.0"
    weir.allow_errors = True  # the buffer logs the refused record at error level


# ------------------------------------------------------------------ consumer --

def consumer_source(brokers, topics, group, extra=""):
    return f"""<source>
  @type kafka
  brokers {brokers}
  topics {topics}
  consumer_group {group}
{extra}
</source>
"""


def file_match(prefix, pattern="**", buffer="@type memory\n    flush_interval 0.1s"):
    """JSON lines with the tag at prefix; buffer as in kafka_match (its first line unindented)."""
    return helpers.file_match(prefix, pattern, inject="    tag_key tag", buffer="    " + buffer)


def test_consumer_tags_headers_and_committed_offsets(weir, broker):
    """Records read from two topics (a list and a /regexp/), tagged by topic with
    add_prefix, or by a record key; headers and the message key added; offsets
    committed after delivery, so a restart reads nothing twice."""
    broker.create_topic("cin.a")
    broker.create_topic("cin.rx1")
    broker.produce("cin.a", [json.dumps({"n": i, "tag": f"custom.{i % 2}"}) for i in range(20)])
    broker.produce("cin.rx1", ["k%d|%s" % (i, json.dumps({"m": i})) for i in range(10)],
                   key_sep="|", headers=["h=v1", "trace=abc"])
    cfg = consumer_source(broker.bootstrap, "cin.a,/cin\\.rx.*/", "g-tags",
                          "  add_prefix kafka\n  add_headers true\n  kafka_message_key kkey")
    cfg += consumer_source(broker.bootstrap, "cin.a", "g-tags-record",
                           "  tag_source record\n  record_tag_key tag\n  @id second")
    cfg += file_match(weir.prefix)
    weir.start(cfg, wait_port=False)
    recs = weir.wait_records(50, timeout=30)
    by_tag = collections.defaultdict(list)
    for r in recs:
        by_tag[r["tag"]].append(r)
    assert sorted(by_tag) == ["custom.0", "custom.1", "kafka.cin.a", "kafka.cin.rx1"], sorted(by_tag)
    assert [r["n"] for r in by_tag["kafka.cin.a"]] == list(range(20))
    assert len(by_tag["custom.0"]) == 10 and len(by_tag["custom.1"]) == 10
    assert [r["m"] for r in by_tag["kafka.cin.rx1"]] == list(range(10))
    assert all(r["h"] == "v1" and r["trace"] == "abc" for r in by_tag["kafka.cin.rx1"])
    assert [r["kkey"] for r in by_tag["kafka.cin.rx1"]] == [f"k{i}" for i in range(10)]
    weir.stop_ok()
    assert broker.committed("g-tags", "cin.a") == {0: 20}
    assert broker.committed("g-tags", "cin.rx1") == {0: 10}
    # restart: resumes after the committed offsets
    broker.produce("cin.a", [json.dumps({"n": 100})])
    weir.start(cfg, wait_port=False)
    recs = weir.wait_records(52, timeout=30)
    time.sleep(1.0)
    recs = weir.read_records()
    assert len(recs) == 52, [r for r in recs if r.get("n") == 100]


def test_consumer_more_tags_than_slots(weir, broker):
    """tag_source record with 150 tags in one burst (the source keeps 64 tag
    slots: it sends what it holds and goes on, in the same burst), then 100
    new tags in a later burst (slots of tags not seen give way): every record
    arrives once, under its own tag, in order; nothing is skipped."""
    broker.create_topic("cin.manytags")
    first = [json.dumps({"n": i, "tag": f"many.t{i % 150}"}) for i in range(300)]
    broker.produce("cin.manytags", first)
    cfg = consumer_source(broker.bootstrap, "cin.manytags", "g-manytags",
                          "  tag_source record\n  record_tag_key tag\n  max_poll_records 10000")
    cfg += file_match(weir.prefix)
    weir.start(cfg, wait_port=False)
    weir.wait_records(300, timeout=30)
    second = [json.dumps({"n": 300 + i, "tag": f"many.t{150 + i}"}) for i in range(100)]
    broker.produce("cin.manytags", second)
    recs = weir.wait_records(400, timeout=30)
    time.sleep(0.5)
    recs = weir.read_records()
    assert len(recs) == 400, len(recs)
    assert all(r["tag"] == json.loads(first[r["n"]] if r["n"] < 300 else second[r["n"] - 300])["tag"] for r in recs)
    by_tag = collections.defaultdict(list)
    for r in recs:
        by_tag[r["tag"]].append(r["n"])
    assert len(by_tag) == 250
    assert all(ns == sorted(ns) for ns in by_tag.values())
    assert sorted(r["n"] for r in recs) == list(range(400))
    assert not [l for l in weir.stderr_lines() if "skipp" in l]
    weir.stop_ok()
    assert broker.committed("g-manytags", "cin.manytags") == {0: 400}


def test_consumer_text_and_bad_json(weir, broker):
    """format text wraps each message under message_key; an undecodable JSON
    message is skipped with a warning (and committed, so it is not read again)."""
    broker.create_topic("cin.text")
    broker.create_topic("cin.json")
    broker.produce("cin.text", ["plain line 1", "plain line 2"])
    broker.produce("cin.json", ['{"ok":1}', "not json", '{"ok":2}'])
    cfg = consumer_source(broker.bootstrap, "cin.text", "g-text", "  format text\n  message_key log")
    cfg += consumer_source(broker.bootstrap, "cin.json", "g-json", "  @id js")
    cfg += file_match(weir.prefix)
    weir.start(cfg, wait_port=False)
    recs = weir.wait_records(4, timeout=30)
    assert sorted(json.dumps(r, sort_keys=True) for r in recs) == sorted(json.dumps(x, sort_keys=True) for x in [
        {"log": "plain line 1", "tag": "cin.text"}, {"log": "plain line 2", "tag": "cin.text"},
        {"ok": 1, "tag": "cin.json"}, {"ok": 2, "tag": "cin.json"}])
    weir.wait_log(lambda l: l["level"] == "warn" and "skipping message at cin.json" in l["msg"])
    weir.stop_ok()
    assert broker.committed("g-json", "cin.json") == {0: 3}


def test_consumer_rewinds_when_output_refuses(weir, broker, tmp_path):
    """An output whose buffer refuses records (throw_exception, full) fails the
    burst's ticket: offsets are not stored, the partition is rewound and the
    records are read again once there is room; none is lost."""
    broker.create_topic("cin.refuse")
    broker.produce("cin.refuse", [json.dumps({"n": i, "pad": "z" * 200}) for i in range(300)])
    out = os.path.join(str(tmp_path), "out", "r")
    buf = os.path.join(str(tmp_path), "buf")
    flag = os.path.join(str(tmp_path), "blocked")
    os.makedirs(flag)  # a directory where the output wants its file: writes fail until removed
    cfg = consumer_source(broker.bootstrap, "cin.refuse", "g-refuse",
                          "  max_poll_records 50\n  retry_wait 0.3s")
    cfg += helpers.file_match(f"{flag}/r", buffer=f"""    @type file
    path {buf}
    flush_interval 0.1s
    retry_wait 0.2s
    retry_max_interval 0.5s
    retry_forever true
    chunk_limit_size 8k
    total_limit_size 16k
    overflow_action throw_exception""")
    weir.allow_errors = True
    os.rmdir(flag)
    with open(flag, "w") as f:
        f.write("not a directory\n")
    weir.start(cfg, wait_port=False)
    weir.wait_log(lambda l: "an output refused" in l.get("msg", ""), timeout=30, what="a refused burst")
    os.remove(flag)
    os.makedirs(flag)
    recs = poll(lambda: (lambda r: r if len(r) >= 300 else None)(
        read_json_lines(sorted(glob.glob(flag + "/r*.log")))), 40, what="300 records")
    ns = [r["n"] for r in recs]
    assert set(ns) == set(range(300)), f"missing {set(range(300)) - set(ns)}"
    print(f"rewind test: {len(ns) - len(set(ns))} duplicates")
    weir.stop_ok()
    assert broker.committed("g-refuse", "cin.refuse") == {0: 300}


def test_consumer_waits_at_the_memory_budget(weir, broker, tmp_path):
    """The memory budget (64 MiB) held by a stalled memory buffer (forward
    senders into an output that is down): the consumer stops polling before
    routing its burst (wait reason source), nothing is committed meanwhile;
    when the output comes back every message arrives and is committed."""
    import test_memory_outputs as mo
    broker.create_topic("cin.budget")
    weir.allow_errors = True  # the forward output logs its failed connections
    down, down_cfg = mo.downstream(tmp_path)
    mport = free_port()
    kafka_src = consumer_source(broker.bootstrap, "cin.budget", "g-budget", "  max_poll_records 100")
    weir.start(mo.upstream_cfg(weir.port, mport, down.port, extra_sources=kafka_src, chunk="1m"))
    nreq = mo.SMALL_REQS
    snd = mo.Sender(weir.port, nreq, mo.SMALL_PER_REQ)
    try:
        poll(lambda: mo.waits(mport, "buffer_full") > 0, timeout=60, what="a buffer_full wait")
        poll(lambda: helpers.metric(helpers.get(mport, "/metrics")[1], "weir_memory_in_use_bytes")
             >= mo.BUDGET - 4 * mo.MiB, timeout=30, what="the budget reached")
        broker.produce("cin.budget", [json.dumps({"kn": i, "pad": "k" * 500}) for i in range(300)])
        poll(lambda: mo.waits(mport, "source") > 0, timeout=30, what="a source wait")
        assert not any(broker.committed("g-budget", "cin.budget").values())
        down.start(down_cfg)
        poll(lambda: len(snd.acks) == nreq or snd.error, timeout=300, what="every ack")
        assert snd.error is None, snd.error
        got = poll(lambda: (lambda r: r if len(r) >= 300 else None)(
            [r for r in down.read_records() if "kn" in r]), timeout=120, what="300 Kafka records downstream")
        assert sorted(r["kn"] for r in got) == list(range(300))
        text = helpers.get(mport, "/metrics")[1]
        print(f"Kafka consumer at the budget: source waits {mo.waits(mport, 'source'):.0f} "
              f"({helpers.metric(text, 'weir_memory_wait_seconds_total', reason='source'):.1f} s)")
        weir.stop_ok()
        assert broker.committed("g-budget", "cin.budget") == {0: 300}
    finally:
        snd.close()
        if down.proc is not None:
            down.stop()


# ------------------------------------------------------------- Phase 2 chain --

# the broker's minimum session timeout: a killed member is evicted within 6 s
P2_OPTS = """  max_poll_records 500
  rdkafka_options {"session.timeout.ms":"6000","heartbeat.interval.ms":"500"}"""


def p2_buffer(d):
    return f"@type file\n    path {d}/buf\n    flush_interval 0.1s"


def test_phase2_chain_consumer_killed_nothing_lost(weir, broker, tmp_path, request):
    """forward -> weir (kafka2, file buffer) -> Kafka (4 partitions) -> two weir
    consumers in one group -> files. One consumer is SIGKILLed mid-run and
    started again; every record sent is in the files (duplicates counted)."""
    topic = "phase2"
    broker.create_topic(topic, partitions=4)
    pbuf = os.path.join(str(tmp_path), "pbuf")
    weir.start(forward_source(weir.port) + kafka_match(
        broker.bootstrap, f"  default_topic {topic}\n  message_key_key k",
        buffer=f"@type file\n    path {pbuf}\n    flush_interval 0.1s"))

    consumers = []

    def kill_consumers():  # a failing test leaves no weir behind
        for w in consumers:
            if w.alive():
                w.proc.kill()
                w.proc.wait()
    request.addfinalizer(kill_consumers)
    for i in range(2):
        d = os.path.join(str(tmp_path), f"c{i}")
        os.makedirs(d)
        w = Weir(d, free_port())
        cfg = consumer_source(broker.bootstrap, topic, "g-phase2", P2_OPTS)
        # a file buffer: records whose offsets were committed survive the SIGKILL
        cfg += file_match(os.path.join(d, "out", "r"), buffer=p2_buffer(d))
        w.start(cfg, wait_port=False)
        consumers.append(w)

    N = 20000
    sent = []
    stop_err = []

    def sender():
        try:
            with weir.conn(timeout=60) as c:
                for s in range(0, N, 100):  # ~10 s of traffic
                    send_acked(c, "p2", [{"seq": q, "k": f"key{q % 16}"} for q in range(s, s + 100)])
                    sent.extend(range(s, s + 100))
                    time.sleep(0.05)
        except Exception as e:  # noqa: BLE001
            stop_err.append(e)

    def out_seqs():
        seqs = []
        for w in consumers:
            files = sorted(glob.glob(os.path.join(w.tmp, "out", "r*.log")))
            seqs += [r["seq"] for r in read_json_lines(files)]
        return seqs

    th = threading.Thread(target=sender)
    th.start()
    try:
        poll(lambda: len(out_seqs()) > N // 4, 30, what="a quarter of the records consumed")
        victim = consumers[0]
        # both instances own partitions and write: the one killed is mid-stream
        for w in consumers:
            poll(lambda: read_json_lines(sorted(glob.glob(os.path.join(w.tmp, "out", "r*.log")))), 20,
                 what=f"records written by consumer {w.tmp}")
        killed_at = len(out_seqs())
        print(f"phase2 chain: killing a consumer with {killed_at} records consumed")
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        victim.proc = None
        time.sleep(1.0)
        cfg = consumer_source(broker.bootstrap, topic, "g-phase2", P2_OPTS)
        cfg += file_match(os.path.join(victim.tmp, "out", "r"), buffer=p2_buffer(victim.tmp))
        victim.start(cfg, wait_port=False)
    finally:
        th.join(120)
    assert not stop_err, stop_err
    assert len(sent) == N
    assert killed_at < N, "the consumer was killed after everything was consumed"
    poll(lambda: len(set(out_seqs())) >= N, 60, what=f"all {N} records consumed")
    seqs = out_seqs()
    missing = set(range(N)) - set(seqs)
    dups = len(seqs) - len(set(seqs))
    print(f"phase2 chain: {N} sent, {len(seqs)} written by consumers, {len(missing)} missing, {dups} duplicates")
    assert not missing
    for w in consumers:
        w.stop_ok()
        w.check_logs()
    # every record was produced once (idempotent producer, chunks committed once)
    assert len(broker.read(topic, expect=N)) == N


# ----------------------------------------------------------- configuration --

def dry_run(weir, text):
    path = weir.write_config(text, "dry.conf")
    from conftest import WEIR_BIN
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", path], capture_output=True, timeout=30)
    return p.returncode, p.stderr.decode()


def test_config_errors_are_reported(weir):
    """Bad librdkafka properties, bad hashes, missing consumer parameters and
    unknown parameters are configuration errors with their line."""
    rc, err = dry_run(weir, """<source>
  @type kafka
  brokers 127.0.0.1:1
  topics t
</source>
<source>
  @type kafka
  consumer_group g
  topics t
  rdkafka_options {"enable.auto.offset.store":"true"}
</source>
<match a>
  @type kafka2
  brokers 127.0.0.1:1
  rdkafka_options {"no.such.property":"1"}
</match>
<match b>
  @type kafka2
  compression_codec brotli
  defualt_topic x
</match>
<match c>
  @type kafka2
  headers_from_record {"h":"$.["}
</match>
""")
    assert rc != 0, err
    assert "missing required parameter 'consumer_group'" in err, err
    assert "enable.auto.offset.store is set by weir" in err, err
    assert "librdkafka refused no.such.property=1" in err, err
    assert "headers_from_record h: bad accessor" in err, err
    assert "brotli" in err and "did you mean 'default_topic'" in err, err


def test_dry_run_accepts_a_valid_kafka_config(weir):
    rc, err = dry_run(weir, """<source>
  @type kafka
  brokers 127.0.0.1:1
  topics a,/b.*/
  consumer_group g
  format text
</source>
<match **>
  @type rdkafka2
  brokers 127.0.0.1:1
  default_topic x
  compression_codec lz4
  rdkafka_options {"linger.ms":"20"}
  <format>
    @type msgpack
  </format>
</match>
""")
    assert rc == 0, err


def test_consumer_time_source(weir, broker):
    """format json keeps the record as sent ("time" included, whatever it holds);
    time_source record takes the event time from "time"; time_source kafka from
    the message timestamp."""
    broker.create_topic("cin.time")
    broker.produce("cin.time", ['{"n":1,"time":1700000000.5}', '{"n":2,"time":"not a time"}'])
    cfg = consumer_source(broker.bootstrap, "cin.time", "g-time-now", "  tag now")
    cfg += consumer_source(broker.bootstrap, "cin.time", "g-time-rec", "  tag rec\n  time_source record\n  @id r")
    cfg += consumer_source(broker.bootstrap, "cin.time", "g-time-kafka", "  tag kafka\n  time_source kafka\n  @id k")
    cfg += helpers.file_match(weir.prefix, inject="    tag_key tag\n    time_key t\n    time_type float",
                              buffer="    @type memory\n    flush_interval 0.1s")
    t_before = time.time()
    weir.start(cfg, wait_port=False)
    recs = weir.wait_records(6, timeout=30)
    by = collections.defaultdict(list)
    for r in recs:
        by[r["tag"]].append(r)
    now_recs = sorted(by["now"], key=lambda r: r["n"])
    assert [(r["n"], r["time"]) for r in now_recs] == [(1, 1700000000.5), (2, "not a time")]
    assert all(r["t"] >= t_before - 1 for r in now_recs)
    rec = {r["n"]: r for r in by["rec"]}
    assert sorted(rec) == [1, 2] and rec[1]["t"] == 1700000000.5 and rec[1]["time"] == 1700000000.5, by["rec"]
    assert sorted(r["n"] for r in by["kafka"]) == [1, 2]
    assert all(t_before - 120 < r["t"] <= time.time() for r in by["kafka"])


def test_fetch_queue_follows_the_memory_budget(weir):
    """librdkafka's pre-fetch queue (64 MiB per consumer by default) is
    capped at a quarter of <system> memory_budget, unless rdkafka_options
    sets queued.max.messages.kbytes itself."""
    src = ("<system>\n  memory_budget 64m\n</system>\n<source>\n  @type kafka\n  @id k1\n  brokers 127.0.0.1:1\n"
           "  topics t\n  consumer_group g\n{extra}</source>\n<match **>\n  @type null\n</match>\n")
    weir.start(src.format(extra=""), wait_port=False)
    # "started" comes after the sources started and the signal handlers were set: only then may SIGTERM come
    poll(lambda: "started: config" in weir.stderr_text(), 10, what="weir started")
    assert "k1: queued.max.messages.kbytes 16384 (a quarter of the memory budget)" in weir.stderr_text()
    weir.stop_ok()
    weir.allow_errors = True  # the broker at :1 does not exist
    weir.start(src.format(extra="  rdkafka_options {\"queued.max.messages.kbytes\": \"32768\"}\n"), wait_port=False)
    poll(lambda: "started: config" in weir.stderr_text(all_runs=False), 10, what="weir started")
    weir.stop_ok()
    assert weir.stderr_text(all_runs=False).count("queued.max.messages.kbytes") == 0


def test_1gb_backlog_into_a_stalled_output_stays_within_the_budget(weir, broker, tmp_path):
    """~1 GB waits in a topic (1 M JSON messages of 1 KiB, repetitive like
    logs, produced in lz4 batches by Kafka's own ProducerPerformance); weir
    consumes it with memory_budget 64m into an elasticsearch output whose
    node accepts the connection and answers nothing (a memory buffer of 8 MiB,
    overflow_action block: the outputs stay congested, the consumer stops
    reading). After 25 s: weir's peak RSS (VmHWM) is within the budget +
    FIXED_OVERHEAD (24 MiB: the process ~11 MiB, librdkafka's threads and
    buffers, allocator caches), /api/v1/health answers with the budget, the
    memory metrics are sane, the buffer is at its limit and nearly all of the
    backlog still waits in the broker. Fails without the caps of
    kafka_conf_fetch_queue: librdkafka's 64 MiB queue, or (measured) its
    1 MiB fetches of these batches, inflated ~100x past the queue's cap,
    VmHWM 140 MiB. Measured with the caps: VmHWM 72-79 MiB, ~8 000 records
    taken, 35-60 s a run (producing: 3 s); under ASan VmHWM (not checked)
    225 MiB, 34 s. Then SIGTERM with the node still stalled: the consumer's
    last burst waits for buffer room, and from half of shutdown_timeout (4 s
    here) on that append gives up (logged), so weir exits within
    shutdown_timeout plus the output's own stop, not never."""
    import urllib.request
    from memtools import MiB, SANITIZED, vm_hwm
    budget, fixed_overhead = 64 * MiB, 24 * MiB
    signal.alarm(180)  # conftest's default is 60 s: producing 1 GB takes a part of it
    t0 = time.monotonic()
    topic, n, size = "mem.backlog", 1_000_000, 1024
    broker.create_topic(topic)
    payload = os.path.join(str(tmp_path), "payload.txt")
    with open(payload, "w") as f:  # ProducerPerformance picks lines at random
        for i in range(16):
            head = json.dumps({"i": i, "msg": ""})
            f.write(json.dumps({"i": i, "msg": chr(ord("a") + i) * (size - len(head))}) + "\n")
    broker.produce_perf(topic, n, payload, "acks=1", "compression.type=lz4", "batch.size=1048576", "linger.ms=20",
                        "buffer.memory=134217728")
    t_produced = time.monotonic() - t0

    # the stalled node: accepts, answers nothing until released, then every bulk succeeds
    stall = socket.socket()
    stall.bind(("127.0.0.1", 0))
    stall.listen(64)
    release = threading.Event()
    held = []

    def answer(c):
        try:
            answer_all(c)
        except OSError:  # closed by the test's end
            pass

    def answer_all(c):
        release.wait()
        buf = b""
        with c:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = c.recv(1 << 20)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                hdrs = {l.split(b":", 1)[0].strip().lower(): l.split(b":", 1)[1].strip()
                        for l in head.split(b"\r\n")[1:] if b":" in l}
                if hdrs.get(b"expect", b"").lower() == b"100-continue":
                    c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                need = int(hdrs.get(b"content-length", b"0"))
                while len(buf) < need:
                    data = c.recv(1 << 20)
                    if not data:
                        return
                    buf += data
                buf = buf[need:]
                body = b'{"errors":false}'
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                          + str(len(body)).encode() + b"\r\n\r\n" + body)

    def accept():
        while True:
            try:
                c = stall.accept()[0]
            except OSError:
                return
            held.append(c)
            threading.Thread(target=answer, args=(c,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    mport = free_port()
    cfg = (f"<system>\n  memory_budget 64m\n  shutdown_timeout 4s\n</system>\n"
           + consumer_source(broker.bootstrap, topic, "g-backlog", "  @id kin")
           + helpers.monitor_source(mport)
           + helpers.match("**", "elasticsearch", id="stalled",
                           extra=f"  host 127.0.0.1\n  port {stall.getsockname()[1]}\n",
                           buffer="""    @type memory
    flush_interval 0.1s
    chunk_limit_size 1m
    total_limit_size 8m
    overflow_action block
    retry_forever true"""))
    weir.allow_errors = True  # the bulk requests time out while the node is stalled
    try:
        weir.start(cfg, port=mport)
        metrics = lambda: helpers.get(mport, "/metrics")[1]  # noqa: E731
        poll(lambda: helpers.metric(metrics(), "weir_buffer_bytes", output="stalled") > 4 * MiB, 30,
             what="the stalled output's buffer filling")
        time.sleep(25)
        hwm = vm_hwm(weir.proc.pid)
        text = metrics()
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/api/v1/health", timeout=5) as r:
            status, hdr_budget = r.status, int(r.headers["X-Weir-Memory-Budget"])
            hdr_in_use = int(r.headers["X-Weir-Memory-In-Use"])
        read = helpers.metric(text, "weir_buffer_appended_records_total", output="stalled")
        buffered = helpers.metric(text, "weir_buffer_bytes", output="stalled")
        print(f"\n1 GB backlog ({n} x {size} B, produced in {t_produced:.1f} s) into a stalled output, budget 64 "
              f"MiB: VmHWM {hwm / MiB:.1f} MiB, {read:.0f} records taken, buffer {buffered / MiB:.1f} MiB, "
              f"in use {helpers.metric(text, 'weir_memory_in_use_bytes') / MiB:.1f} MiB, "
              f"total {time.monotonic() - t0:.1f} s")
        assert weir.alive()
        assert status == 200 and hdr_budget == budget and 0 <= hdr_in_use <= budget
        assert helpers.metric(text, "weir_memory_budget_bytes") == budget
        assert 0 <= helpers.metric(text, "weir_memory_in_use_bytes") <= budget
        assert helpers.metric(text, "weir_memory_in_use_peak_bytes") <= budget
        assert buffered <= 8 * MiB + MiB  # total_limit_size (+ a chunk being staged)
        assert 0 < read < n / 20, "the backlog is in the broker, not in weir"
        log = weir.stderr_text()
        assert "kin: queued.max.messages.kbytes 16384 (a quarter of the memory budget)" in log
        assert "kin: max.partition.fetch.bytes 65536 (1/1024 of the memory budget)" in log
        if not SANITIZED:
            assert hwm <= budget + fixed_overhead, f"VmHWM {hwm / MiB:.1f} MiB"
        # SIGTERM with the output still stalled: weir must not wait for it forever
        t_stop = time.monotonic()
        weir.stop_ok()
        t_stop = time.monotonic() - t_stop
        print(f"stopped in {t_stop:.1f} s with the output stalled")
        assert t_stop < 4 + 8, f"SIGTERM took {t_stop:.1f} s"
        assert "a source has not stopped within half of shutdown_timeout" in weir.stderr_text()
    finally:
        release.set()
    stall.shutdown(socket.SHUT_RDWR)  # wakes the accept
    stall.close()
    for c in held:
        c.close()
