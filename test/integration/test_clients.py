"""Real client libraries: npm @fluent-org/logger (all event modes, with and without
acks), Python fluent-logger (with and without nanosecond precision) and Go's
fluent-logger-golang (what Docker's fluentd log driver uses: times as msgpack
int32/int64, records with signed integer encodings)."""
import json
import os
import subprocess
import time

import pytest
from fluent import sender

from conftest import REPO, T0, assert_events, run_node, split_event

NODE_EVENTS = [
    {"label": "app", "time": {"sec": T0, "nsec": 123456789},
     "record": {"msg": "hello", "n": 1, "neg": -42, "big": 2 ** 40, "pi": 3.25, "t": True,
                "f": False, "none": None, "arr": [1, "two", None, [3], {"k": "v"}, 1.5, False],
                "nested": {"a": {"b": {"c": "deep", "d": [{"e": None}]}}}}},
    {"label": "app", "time": {"sec": T0 + 1, "nsec": 0},
     "record": {"msg": "héllo wörld ✓ 日本語 🎉", "empty": "", "emptymap": {}, "emptyarr": [],
                "quote": "a\"b\\c\nd\te"}},
    {"label": "other", "millis": (T0 + 2) * 1000 + 999,   # a number: the client sends integer seconds
     "record": {"clé_ünï": "v", "float": -0.5, "zero": 0, "max32": 4294967295, "minus": -2 ** 40}},
    {"label": "app", "time": {"sec": T0 + 3, "nsec": 999999999},
     "record": {"last": True, "list": ["ä", "ö", {"ü": ["ß"]}]}},
]


def node_expected(prefix):
    out = []
    for ev in NODE_EVENTS:
        if "time" in ev:
            sec, nsec = ev["time"]["sec"], ev["time"]["nsec"]
        else:
            sec, nsec = ev["millis"] // 1000, 0
        out.append((f"{prefix}.{ev['label']}", sec, nsec, ev["record"]))
    return out


@pytest.mark.parametrize("ack", [False, True], ids=["noack", "ack"])
@pytest.mark.parametrize("mode", ["Message", "Forward", "PackedForward", "CompressedPackedForward"])
def test_fluent_org_logger(weir, node_env, tmp_path, mode, ack):
    weir.start()
    prefix = f"node{mode.lower()}"
    res = run_node("fluent_org_logger.js", {"port": weir.port, "tagPrefix": prefix, "eventMode": mode,
                                            "ack": ack, "events": NODE_EVENTS}, tmp_path, node_env)
    assert res == {"ok": True, "sent": len(NODE_EVENTS)}
    # with acks every event is in the file once the client returns; without, poll for it
    recs = weir.read_records() if ack else weir.wait_records(len(NODE_EVENTS))
    # Forward/PackedForward queue per tag, so order across tags may differ
    assert_events(recs, node_expected(prefix), ordered=(mode == "Message"))


def test_fluent_org_logger_many_events_with_acks(weir, node_env, tmp_path):
    weir.start()
    events = [{"label": f"l{i % 3}", "time": {"sec": T0 + i, "nsec": i}, "record": {"i": i, "s": "x" * i}}
              for i in range(300)]
    res = run_node("fluent_org_logger.js", {"port": weir.port, "tagPrefix": "many",
                                            "eventMode": "CompressedPackedForward", "ack": True,
                                            "events": events}, tmp_path, node_env)
    assert res["ok"]
    assert_events(weir.read_records(),
                  [(f"many.l{i % 3}", T0 + i, i, {"i": i, "s": "x" * i}) for i in range(300)],
                  ordered=False)


PY_RECORDS = [
    {"msg": "py", "n": 1, "f": 0.25, "b": True, "none": None, "arr": [1, [2, {"three": 3}]],
     "u": "ünï ✓ 🎉", "nested": {"x": {"y": "z"}}},
    {"msg": "second", "neg": -1, "big": 2 ** 63 - 1},
    {"msg": "third", "empty": {}},
]


def test_python_fluent_logger(weir):
    weir.start()
    s = sender.FluentSender("py", host="127.0.0.1", port=weir.port, timeout=10)
    try:
        before = int(time.time())
        assert s.emit_with_time("int", T0, PY_RECORDS[0]), s.last_error
        assert s.emit_with_time("float", T0 + 0.75, PY_RECORDS[1]), s.last_error   # float64 time
        assert s.emit("now", PY_RECORDS[2]), s.last_error                          # int(time.time())
        after = int(time.time())
    finally:
        s.close()
    recs = weir.wait_records(3)
    assert_events(recs[:2], [("py.int", T0, 0, PY_RECORDS[0]), ("py.float", T0, 750000000, PY_RECORDS[1])])
    tag, t, rec = split_event(recs[2])
    assert (tag, rec) == ("py.now", PY_RECORDS[2])
    assert before <= t <= after and t == int(t), f"time {t} not an integer second in [{before}, {after}]"


def test_python_fluent_logger_nanosecond_precision(weir):
    weir.start()
    s = sender.FluentSender("pyns", host="127.0.0.1", port=weir.port, timeout=10,
                            nanosecond_precision=True)
    try:
        before = time.time()
        assert s.emit_with_time("float", T0 + 0.25, PY_RECORDS[0]), s.last_error  # EventTime(T0, 250000000)
        assert s.emit_with_time("evt", sender.EventTime(T0, 123456789), PY_RECORDS[1]), s.last_error
        assert s.emit("now", PY_RECORDS[2]), s.last_error                         # EventTime(time_ns())
        after = time.time()
    finally:
        s.close()
    recs = weir.wait_records(3)
    assert_events(recs[:2], [("pyns.float", T0, 250000000, PY_RECORDS[0]),
                             ("pyns.evt", T0, 123456789, PY_RECORDS[1])])
    tag, t, rec = split_event(recs[2])
    assert (tag, rec) == ("pyns.now", PY_RECORDS[2])
    assert before - 1e-6 <= t <= after + 1e-6, f"time {t} not in [{before}, {after}]"


# ------------------------------------------------------ fluent-logger-golang --

@pytest.fixture(scope="session")
def go_client():
    """The Go client, built by scripts/peers/go-client.sh (install-deps --test
    runs it; running it here again is a no-op when the binary is current)."""
    script = os.path.join(REPO, "scripts", "peers", "go-client.sh")
    p = subprocess.run([script], capture_output=True, timeout=600)
    assert p.returncode == 0, ("cannot build the Go test client (needs go and the Go module proxy; "
                               f"run scripts/install-deps.sh --test): {p.stderr.decode(errors='replace')}")
    return p.stdout.decode().strip().splitlines()[-1]


def run_go(binary, spec, tmp_path, timeout=60):
    path = os.path.join(str(tmp_path), f"go-spec-{time.monotonic_ns()}.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    p = subprocess.run([binary, path], capture_output=True, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, f"go client exited {p.returncode}: {out!r} {p.stderr.decode('utf-8', 'replace')!r}"
    return json.loads(out.strip().splitlines()[-1])


# msgp writes Go int64 values in the smallest signed encoding: 5 as a fixint,
# 200 as int16, T0 as int32, 2**40 as int64; the time (int64 field) as int32.
GO_RECORDS = [
    {"msg": "go", "status": 200, "epoch": T0, "neg": -7, "big": 2 ** 40, "f": 0.5, "ok": True,
     "nested": {"code": 30000, "list": [1, 128, 70000, -1]}},
    {"msg": "second", "zero": 0, "max32": 2 ** 31 - 1, "u32": 2 ** 32 - 1},
]


@pytest.mark.parametrize("ack", [False, True], ids=["noack", "ack"])
@pytest.mark.parametrize("mode", ["seconds", "subsecond", "async"])
def test_fluent_logger_golang(weir, go_client, tmp_path, mode, ack):
    """Every record arrives once, with its time: whole seconds sent as a
    msgpack int32 (the default, as Docker's log driver sends them), or
    EventTime with SubSecondPrecision; sync or async, with or without
    RequestAck."""
    weir.start()
    n = 60
    events = [{"label": f"l{i % 2}", "sec": T0 + i, "nsec": 1000 * i + 7, "record": dict(GO_RECORDS[i % 2], i=i)}
              for i in range(n)]
    res = run_go(go_client, {"port": weir.port, "tag_prefix": f"go{mode}", "sub_second": mode == "subsecond",
                             "request_ack": ack, "async": mode == "async", "events": events}, tmp_path)
    assert res == {"ok": True, "sent": n}
    recs = weir.read_records() if ack and mode != "async" else weir.wait_records(n)
    expected = [(f"go{mode}.{e['label']}", e["sec"], e["nsec"] if mode == "subsecond" else 0, e["record"])
                for e in events]
    assert_events(recs, expected)
    assert not weir.log_lines("warn", "error"), weir.log_lines("warn", "error")
