"""The aggregate filter's changelog in Kafka (issue 16, "Correct with any
number of replicas"), against a real Apache Kafka broker (peer_kafka.py).

A generator (ours) writes interleaved saga events to a 4-partition topic,
keyed by saga id. Two weir replicas in one consumer group correlate them
with `aggregate` + `changelog_topic` into files of summaries. Mid-run one
replica is killed with -9 and started again (its partitions move to the
other replica, then back; offsets are committed every 5 s, so up to 5 s of
events are read again and must not be counted twice); at the end the other is stopped gracefully.
Every saga must have a summary, and every summary of a saga must be the
correct one (outcome, event count, step count) - a summary may be written
twice around the kill (the end event replayed), always identical, which an
Elasticsearch output with `id_key key` overwrites in place.

The `none` parameter runs the same scenario without the changelog and
asserts that it *fails* the same check (sagas continued by another replica
are summarized from part of their events): the assertions can fail.
"""
import glob
import json
import os
import random
import shutil
import signal
import threading
import time

import pytest

import helpers
from conftest import Weir, free_port, poll, read_json_lines
from helpers import get, metric
import peer_kafka

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None or shutil.which("java") is None,
                                reason="kcat and java are needed (scripts/install-deps.sh --test)")


@pytest.fixture(scope="module")
def broker():
    with peer_kafka.running() as b:
        yield b


NSAGAS = 400
BATCHES = 16


def generate(seed):
    """Events of NSAGAS sagas (3-8 events each), interleaved over BATCHES
    batches so that most sagas span several batches; and the truth."""
    rnd = random.Random(seed)
    truth, timeline = {}, []
    for i in range(NSAGAS):
        sid = f"saga-{i:05d}"
        n = rnd.randint(3, 8)
        evs = [{"saga_id": sid, "event": "SagaStarted", "service": "orders", "step": "start"}]
        failed = compensated = False
        for s in range(n - 2):
            if failed and not compensated and rnd.random() < 0.7:
                evs.append({"saga_id": sid, "event": "Compensate", "service": "payments", "step": f"undo{s}"})
                compensated = True
                continue
            st = "FAILED" if rnd.random() < 0.15 else "OK"
            failed = failed or st == "FAILED"
            evs.append({"saga_id": sid, "event": "StepDone", "step": f"s{s}", "status": st,
                        "service": rnd.choice(["orders", "stock", "payments", "shipping"]),
                        "trace_id": f"t{i}-{s}"})
        evs.append({"saga_id": sid, "event": "SagaEnded", "service": "orders", "step": "end"})
        truth[sid] = {"outcome": "compensated" if compensated else "failed" if failed else "completed",
                      "event_count": len(evs)}
        start = rnd.randint(0, BATCHES - 4)
        span = rnd.randint(2, BATCHES - 1 - start)
        slots = sorted(rnd.randint(start, start + span) for _ in evs)
        for k, (slot, ev) in enumerate(zip(slots, evs)):
            timeline.append((slot, i, k, ev))
    timeline.sort(key=lambda x: (x[0], x[1], x[2]))
    batches = [[] for _ in range(BATCHES)]
    for slot, _, _, ev in timeline:
        batches[slot].append(f"{ev['saga_id']}|{json.dumps(ev)}")
    return truth, batches


def config(broker, group, topic, outdir, changelog, mport):
    chlog = f"""  changelog_topic {topic}-changelog
  changelog_brokers {broker.bootstrap}
  changelog_partitions 2
""" if changelog else ""
    return f"""<source>
  @type monitor_agent
  bind 127.0.0.1
  port {mport}
</source>
<source>
  @type kafka
  brokers {broker.bootstrap}
  topics {topic}
  consumer_group {group}
  decorate_events true
  time_source kafka
  max_poll_records 50
  offset_commit_interval 5
  rdkafka_options {{"session.timeout.ms":"6000","heartbeat.interval.ms":"500"}}
</source>
<filter {topic}>
  @type aggregate
  @id sagas
  key saga_id
  drop_events true
  timeout 600s
{chlog}  <start>
    key event
    pattern /^SagaStarted$/
  </start>
  <step>
    key event
    pattern /^Step/
  </step>
  <end>
    key event
    pattern /^SagaEnded$/
  </end>
  <failure>
    key status
    pattern /^FAILED$/
  </failure>
  <compensation>
    key event
    pattern /^Compensat/
  </compensation>
</filter>
""" + helpers.file_match(os.path.join(outdir, "s"), "saga.summary", inject="    tag_key tag",
                         buffer=f"    @type file\n    path {outdir}/buf\n    flush_interval 0.1s") + """<match **>
  @type null
</match>
"""  # a tag without a <match> is discarded before its filters run


@pytest.mark.parametrize("mode", ["changelog", "none"])
def test_replica_killed_sagas_continue(broker, tmp_path, request, mode):
    changelog = mode == "changelog"
    topic = f"sagas-{mode}"
    group = f"g-sagas-{mode}"
    broker.create_topic(topic, partitions=4)
    truth, batches = generate(16)
    replicas = []

    def kill_all():  # a failing test leaves no weir behind
        for w in replicas:
            if w.alive():
                w.proc.kill()
                w.proc.wait()
    request.addfinalizer(kill_all)
    for i in range(2):
        d = os.path.join(str(tmp_path), f"r{i}")
        os.makedirs(d)
        w = Weir(d, free_port())
        w.start(config(broker, group, topic, os.path.join(d, "out"), changelog, w.port), wait_port=False)
        replicas.append(w)

    def summaries():
        out = []
        for w in replicas:
            out += read_json_lines(sorted(glob.glob(os.path.join(w.tmp, "out", "s*.log"))))
        return out

    # both replicas own partitions before the traffic starts
    for w in replicas:
        w.wait_log(lambda l: "assigned" in l.get("msg", ""), 30, what="partitions assigned")
    killed = threading.Event()
    victim, other = replicas
    for b, lines in enumerate(batches):
        broker.produce(topic, lines, key_sep="|")
        time.sleep(0.8)
        if b == BATCHES // 3:
            # kill only once every partition has committed offsets: the victim has then applied part of the
            # sagas of its own partitions (without this, on a loaded machine, it may have read nothing yet and
            # the scenario would move no open saga)
            def all_committed():
                c = broker.committed(group, topic) or {}
                return len(c) == 4 and all(c.values())
            poll(all_committed, 60, interval=0.5, what="offsets committed on every partition before the kill")
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait()
            victim.proc = None
            killed.set()
            time.sleep(1.0)
            victim.start(config(broker, group, topic, os.path.join(victim.tmp, "out"), changelog, victim.port),
                         wait_port=False)
    poll(lambda: len({s["key"] for s in summaries()}) >= NSAGAS, 90, what=f"{NSAGAS} sagas summarized")
    time.sleep(2)

    def counters(w):
        text = get(w.port, "/metrics")[1]
        return [metric(text, f"weir_aggregate_{n}", filter="sagas")
                for n in ("changelog_writes_total", "changelog_failed_total", "restored_total")]
    # the current runs' counters, and what their restores logged
    cnt = [counters(w) for w in replicas]
    logged = [sum(int(l["msg"].split(" sagas installed")[0].rsplit(" ", 1)[1])
                  for l in w.stderr_lines(all_runs=False) if "sagas installed" in l.get("msg", "")) for w in replicas]
    other.stop_ok()
    got = summaries()
    by_key = {}
    for s in got:
        by_key.setdefault(s["key"], []).append(s)
    wrong, differing = [], 0
    for sid, t in truth.items():
        ss = by_key.get(sid, [])
        if not ss:
            wrong.append((sid, "missing"))
            continue
        for s in ss:
            if (s["outcome"], s["event_count"], len(s["steps"])) != (t["outcome"], t["event_count"], t["event_count"]):
                wrong.append((sid, t, {k: s[k] for k in ("outcome", "event_count")}, len(s["steps"])))
        if any(json.dumps(x, sort_keys=True) != json.dumps(ss[0], sort_keys=True) for x in ss):
            differing += 1
    extra = set(by_key) - set(truth)
    dups = len(got) - len(by_key)
    print(f"aggregate changelog ({mode}): {len(truth)} sagas, {len(got)} summaries, {len(by_key)} keys, "
          f"{dups} written twice, {len(wrong)} wrong, {differing} differing, {len(extra)} unknown keys")
    victim.stop_ok()
    installed = sum(int(l["msg"].split(" sagas installed")[0].rsplit(" ", 1)[1])
                    for w in replicas for l in w.stderr_lines() if "sagas installed" in l.get("msg", ""))
    print(f"aggregate changelog ({mode}): {installed} sagas restored from the changelog at assignments")
    if changelog:
        assert installed > 0, "no saga moved through the changelog"
        assert [c[2] for c in cnt] == logged, (cnt, logged)
        assert all(c[0] > 0 and c[1] == 0 for c in cnt), cnt
        # weir created the changelog topic (compacted, changelog_partitions)
        assert any("created the changelog topic" in l.get("msg", "") for w in replicas for l in w.stderr_lines())
        assert len(broker.metadata(f"{topic}-changelog")["partitions"]) == 2
        assert not extra
        assert not wrong, wrong[:10]
        assert not differing
        for w in replicas:
            w.check_logs()
    else:
        # without the changelog the sagas that moved with a partition are summarized from part of their events
        assert wrong or extra or differing, "the scenario did not exercise a moved saga"
        assert cnt == [[0, 0, 0], [0, 0, 0]], cnt
