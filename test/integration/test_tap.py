"""`weir tap PATTERN`: records routed to outputs, as JSON lines, from the
running server, rate limited, without disturbing the pipeline."""
import json
import os
import subprocess
import threading
import time

import fwd
import helpers
from conftest import T0, WEIR_BIN, free_port, poll
from fwd import et
from helpers import file_match, match


def config(port, mport, prefix):
    """app.** -> file output out_a (JSON lines at prefix), the rest -> null out_b."""
    return helpers.config(port, monitor=mport, monitor_extra="  tap true",
                          matches=file_match(prefix, "app.**", id="out_a") + match("**", "null", id="out_b"))


class Tap:
    def __init__(self, *args):
        self.p = subprocess.Popen([WEIR_BIN, "tap", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(json.loads(line))

    def records(self):
        return [l for l in self.lines if "record" in l]

    def skipped(self):
        return sum(l["records"] for l in self.lines if l.get("tap") == "skipped")

    def close(self):
        if self.p.poll() is None:
            self.p.terminate()
        self.p.wait(5)


def wait_tap_open(weir):
    poll(lambda: any("tap opened" in l["msg"] for l in weir.stderr_lines()), what="tap opened")


def test_tap_prints_matching_records_with_their_output(weir):
    mport = free_port()
    weir.start(config(weir.port, mport, weir.prefix))
    tap = Tap("--endpoint", f"127.0.0.1:{mport}", "--rate", "1000", "app.** other")
    wait_tap_open(weir)
    with weir.conn() as c:
        c.send(fwd.forward("app.web", [[et(T0, i), {"i": i, "msg": "hé"}] for i in range(5)], {"chunk": "a"}))
        c.expect_ack("a")
        c.send(fwd.forward("other", [[et(T0, 9), {"o": 1}]], {"chunk": "b"}))
        c.expect_ack("b")
        c.send(fwd.forward("unrelated", [[et(T0, 9), {"u": 1}]], {"chunk": "c"}))
        c.expect_ack("c")
    poll(lambda: len(tap.records()) == 6, what="6 tapped records")
    recs = tap.records()
    assert [r["record"]["i"] for r in recs if r["tag"] == "app.web"] == list(range(5))
    assert all(r["output"] == "out_a" for r in recs if r["tag"] == "app.web")
    other = [r for r in recs if r["tag"] == "other"]
    assert other == [{"tag": "other", "time": "2023-11-14T22:13:20.000000009Z", "output": "out_b",
                      "record": {"o": 1}}]
    assert recs[0]["record"]["msg"] == "hé"
    # the server stopping ends the tap cleanly
    weir.stop_ok()
    assert tap.p.wait(5) == 0
    assert len(weir.read_records()) == 5


def test_tap_rate_limit_and_output_filter(weir):
    mport = free_port()
    weir.start(config(weir.port, mport, weir.prefix))
    tap = Tap("--endpoint", f"127.0.0.1:{mport}", "--rate", "5", "--output", "out_a", "**")
    wait_tap_open(weir)
    with weir.conn() as c:
        for k in range(10):
            c.send(fwd.forward("app.x", [[et(T0, k * 10 + i), {"i": k * 10 + i}] for i in range(10)],
                               {"chunk": f"{k}"}))
            c.expect_ack(f"{k}")
        c.send(fwd.forward("other", [[et(T0, 1), {"o": 1}]], {"chunk": "o"}))  # out_b: filtered out
        c.expect_ack("o")
    # every record is either printed or counted as skipped, once
    poll(lambda: len(tap.records()) + tap.skipped() == 100, timeout=5, what="tap accounting")
    assert 5 <= len(tap.records()) <= 10, len(tap.records())
    assert all(r["output"] == "out_a" for r in tap.records())
    # the pipeline itself got everything
    assert sorted(r["i"] for r in weir.read_records()) == list(range(100))
    tap.close()


def test_tap_without_monitor_says_why(weir):
    weir.start()
    p = subprocess.run([WEIR_BIN, "tap", "--endpoint", f"127.0.0.1:{free_port()}", "app.**"],
                       capture_output=True, timeout=10)
    assert p.returncode == 1
    assert b"is a monitor_agent source configured?" in p.stderr
    p = subprocess.run([WEIR_BIN, "tap"], capture_output=True, timeout=10)
    assert p.returncode == 2 and b"usage: weir tap" in p.stderr
