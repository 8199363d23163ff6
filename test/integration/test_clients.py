"""Real client libraries: npm @fluent-org/logger (all event modes, with and without
acks) and Python fluent-logger (with and without nanosecond precision)."""
import time

import pytest
from fluent import sender

from conftest import T0, assert_events, run_node, split_event

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
