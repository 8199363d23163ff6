"""The aggregate filter (saga correlation) in a running weir: forward in ->
aggregate -> file out. Events of many sagas interleaved over several
connections give exactly the same summaries with <system> workers 1 and 4;
a saga with no event for `timeout` ends as timed_out; SIGTERM emits the open
ones (outcome "open"); records of sagas pass through unless drop_events."""
import base64
import json
import os
import random
import threading
import time

import fwd

T0 = 1700000000
CONNS = 4

AGG = """<filter app.**>
  @type aggregate
  @id sagas
  key saga_id
  timeout 4s
  tag saga.summary
  drop_events {drop}
  <start>
    key event
    pattern /^SagaStarted$/
  </start>
  <step>
    key event
    pattern /^Step/
  </step>
  <end>
    key event
    pattern /^Saga(Completed|Finished)$/
  </end>
  <failure>
    key status
    pattern /^FAILED$/
  </failure>
  <compensation>
    key event
    pattern /^Compensation/
  </compensation>
</filter>
"""

SERVICES = ["orders", "payments", "stock", "shipping"]


def saga_events(i, rng):
    """(kind, events) of saga i: kind is the expected outcome."""
    sid = f"saga-{i:04d}"
    kind = ["completed", "failed", "compensated", "timed_out", "open"][i % 5]
    t = T0 + i * 10
    ev = [("a", {"saga_id": sid, "event": "SagaStarted", "service": "orders", "trace_id": f"tr-{i}"}, t)]
    nsteps = 2 + i % 4
    for s in range(nsteps):
        status = "FAILED" if kind in ("failed", "compensated") and s == nsteps - 1 else "OK"
        ev.append(("a", {"saga_id": sid, "event": "StepDone", "step": f"step{s}", "status": status,
                         "service": {"name": SERVICES[(i + s) % 4]}, "trace": {"id": f"tr-{i}-{s}"}}, t + s + 1))
    if kind == "compensated":
        ev.append(("a", {"saga_id": sid, "event": "CompensationRun", "step": "refund", "service": "payments"},
                   t + nsteps + 1))
    if kind in ("completed", "failed", "compensated"):
        ev.append(("b", {"saga_id": sid, "event": "SagaFinished", "service": "orders"}, t + nsteps + 2))
    return sid, kind, ev


def send_parallel(weir, events, rng):
    """Each event over a random one of CONNS connections, in requests of up to
    20 entries, acked; the connections send at the same time."""
    per = [[] for _ in range(CONNS)]
    for e in events:
        per[rng.randrange(CONNS)].append(e)
    errors = []

    def sender(lst):
        try:
            with weir.conn() as c:
                for k in range(0, len(lst), 20):
                    ch = base64.encodebytes(os.urandom(16)).decode()
                    c.send(fwd.packed_forward("app.saga", [fwd.entry(fwd.et(t), r) for r, t in lst[k:k + 20]],
                                              {"chunk": ch}))
                    c.expect_ack(ch)
        except Exception as ex:  # noqa: BLE001
            errors.append(repr(ex))

    th = [threading.Thread(target=sender, args=(p,)) for p in per]
    for t in th:
        t.start()
    for t in th:
        t.join(60)
    assert not errors, errors


def run_once(weir, workers, nsagas=150):
    rng = random.Random(16)
    sagas = [saga_events(i, rng) for i in range(nsagas)]
    weir.start(system=f"  workers {workers}", before=AGG.format(drop="true"))
    # 1. the sagas that will time out: nothing more comes for them
    send_parallel(weir, [(r, t) for _, k, ev in sagas if k == "timed_out" for _, r, t in ev], rng)
    time.sleep(5.5)
    # 2. every other saga's events but the ends, shuffled, then the ends
    rest = [(r, t) for _, k, ev in sagas if k != "timed_out" for ph, r, t in ev if ph == "a"]
    rng.shuffle(rest)
    send_parallel(weir, rest, rng)
    ends = [(r, t) for _, k, ev in sagas if k != "timed_out" for ph, r, t in ev if ph == "b"]
    send_parallel(weir, ends, rng)
    # 3. SIGTERM: the open ones are emitted
    weir.stop_ok()
    recs = weir.read_records()
    out = sorted(json.dumps(r, sort_keys=True) for r in recs)
    return sagas, [json.loads(x) for x in out]


def check(sagas, recs):
    by_key = {r["key"]: r for r in recs}
    assert len(recs) == len(sagas), f"{len(recs)} summaries for {len(sagas)} sagas"
    for sid, kind, ev in sagas:
        s = by_key[sid]
        assert s["tag"] == "saga.summary"
        assert s["outcome"] == kind, (sid, s)
        assert s["event_count"] == len(ev)
        assert len(s["steps"]) == len(ev)
        assert s["duration"] == ev[-1][2] - ev[0][2]
        assert s["started"] is True
        assert "orders" in s["services"]
        assert s["trace_ids"] == sorted(s["trace_ids"]) and f"tr-{int(sid[5:])}" in s["trace_ids"]
        times = [x["time"] for x in s["steps"]]
        assert times == sorted(times)


def test_aggregate_workers_1_and_4_identical(tmp_path):
    import conftest
    results = []
    for workers in (1, 4):
        d = tmp_path / f"w{workers}"
        d.mkdir()
        w = conftest.Weir(d, conftest.free_port())
        try:
            sagas, recs = run_once(w, workers)
        finally:
            if w.alive():
                w.stop()
        check(sagas, recs)
        results.append(recs)
    assert results[0] == results[1]


def test_aggregate_passes_records_and_flushes_at_sigterm(weir):
    import conftest
    import helpers
    mport = conftest.free_port()
    weir.start(before=AGG.format(drop="false"), monitor=mport, monitor_type="prometheus")
    with weir.conn() as c:
        c.send(fwd.forward("app.saga", [
            fwd.entry(fwd.et(T0), {"saga_id": "x1", "event": "SagaStarted"}),
            fwd.entry(fwd.et(T0 + 1), {"saga_id": "x1", "event": "StepDone", "step": "pay"}),
            fwd.entry(fwd.et(T0 + 2), {"saga_id": "x2", "event": "SagaStarted"}),
            fwd.entry(fwd.et(T0 + 3), {"saga_id": "x1", "event": "SagaCompleted"}),
            fwd.entry(fwd.et(T0 + 4), {"other": 1}),
        ]))
    recs = weir.wait_records(6)
    summ = [r for r in recs if r["tag"] == "saga.summary"]
    assert [s["key"] for s in summ] == ["x1"] and summ[0]["outcome"] == "completed"
    assert summ[0]["steps"][1]["name"] == "pay"
    assert len([r for r in recs if r["tag"] == "app.saga"]) == 5
    _, text = helpers.get(mport, "/metrics")
    assert helpers.metric(text, "weir_aggregate_open", filter="sagas") == 1
    assert helpers.metric(text, "weir_aggregate_summaries_total", filter="sagas") == 1
    assert helpers.metric(text, "weir_aggregate_evictions_total", filter="sagas") == 0
    weir.stop_ok()
    recs = weir.read_records()
    summ = [r for r in recs if r["tag"] == "saga.summary"]
    assert [(s["key"], s["outcome"]) for s in summ] == [("x1", "completed"), ("x2", "open")]


def test_aggregate_reload_keeps_open_sagas_unless_changed(weir):
    from test_reload import reload
    cfg = weir.config(before=AGG.format(drop="true"))
    weir.start(cfg)
    with weir.conn() as c:
        c.send(fwd.forward("app.saga", [
            fwd.entry(fwd.et(T0), {"saga_id": "r1", "event": "SagaStarted"}),
            fwd.entry(fwd.et(T0 + 1), {"saga_id": "r1", "event": "StepDone", "step": "a"}),
        ]))
    time.sleep(0.5)
    # the same filter (another output added): the saga goes on
    reload(weir, cfg + "# reloaded\n")
    with weir.conn() as c:
        c.send(fwd.forward("app.saga", [
            fwd.entry(fwd.et(T0 + 2), {"saga_id": "r1", "event": "StepDone", "step": "b"}),
            fwd.entry(fwd.et(T0 + 3), {"saga_id": "r1", "event": "SagaCompleted"}),
            fwd.entry(fwd.et(T0 + 4), {"saga_id": "r2", "event": "SagaStarted"}),
        ]))
    recs = weir.wait_records(1)
    assert recs[0]["key"] == "r1" and recs[0]["outcome"] == "completed" and recs[0]["event_count"] == 4
    assert [s["name"] for s in recs[0]["steps"]] == ["", "a", "b", ""]
    # a changed filter: its open saga is emitted as "open" at the reload
    reload(weir, weir.config(before=AGG.format(drop="true").replace("timeout 4s", "timeout 5s")))
    recs = weir.wait_records(2)
    assert (recs[1]["key"], recs[1]["outcome"]) == ("r2", "open")
    weir.stop_ok()
    assert len(weir.read_records()) == 2
