"""Fluent Bit and several weirs, as in the cluster: Fluent Bit's `upstream`
list over three weir instances with one killed with -9 mid-stream; weir's
connection retirement (`max_connection_age`) behind a connection balancer,
as kube-proxy is for the Service; weir's buffer full with `overflow_action
block` and weir restarted mid-stream. Each time every record Fluent Bit
tailed arrives (at-least-once: duplicates are counted and reported, never a
loss), checked exactly as in test_fluentbit.py.

Fluent Bit is found at $REPO/../shared/peers/fluent-bit/fluent-bit, else
$FLUENT_BIT, else `fluent-bit` on PATH; without it the tests are skipped.
"""
import json
import os
import re
import selectors
import signal
import socket
import threading
import time

import pytest

from conftest import Weir, free_port, poll
from helpers import get, metric
from peer_fluentbit import INJECT, CriFile, expected_events, fluent_bit_or_skip, split

# Fluent Bit retries 1-2 s after a failure (its default base is 5 s), waits
# for weir's ack of every chunk and never gives a chunk up: k8s/fluent-bit's
# settings, but the retry pace.
FB_SERVICE = {"scheduler.base": "1", "scheduler.cap": "2"}
FB_OUTPUT = {"require_ack_response": True, "retry_limit": "no_limits"}


@pytest.fixture
def fluent_bit(tmp_path):
    fb = fluent_bit_or_skip(tmp_path)
    yield fb
    fb.kill_all()


@pytest.fixture
def weirs(tmp_path):
    """Three weir instances, each with its own port and output files;
    stopped (or already killed) at the end, their logs checked."""
    ws = [Weir(tmp_path / f"weir{i}", free_port()) for i in range(3)]
    yield ws
    for w in ws:
        if w.proc is not None:
            w.stop_ok()
        if w.runs:
            w.check_logs()


def kill9(w):
    w.proc.send_signal(signal.SIGKILL)
    w.proc.wait(10)
    w.proc = None


def records_of(w):
    """The JSON lines in w's output files; a last line cut by kill -9 (no
    newline: its record was never acked) is left out."""
    out = []
    for path in w.output_files():
        data = open(path, "rb").read()
        for line in data.split(b"\n")[:-1]:
            if line.strip():
                out.append(json.loads(line))
    return out


def upstream_file(path, ports):
    text = "[UPSTREAM]\n    name weirs\n"
    for i, p in enumerate(ports):
        text += (f"\n[NODE]\n    name weir-{i}\n    host 127.0.0.1\n    port {p}\n"
                 "    require_ack_response true\n")
    path.write_text(text)
    return str(path)


class Writer:
    """Appends `total` CRI records to `f` in batches of `batch`, paced by
    `pause` seconds, on a thread; `hold` (an Event) makes it wait halfway."""

    def __init__(self, f, total, batch=50, pause=0.03, pad=300, hold=None):
        self.f, self.total, self.batch, self.pause, self.pad, self.hold = f, total, batch, pause, pad, hold
        self.written = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while self.written < self.total and not self.stop.is_set():
            if self.hold is not None and self.written >= self.total // 2:
                self.hold.wait(30)
            n = min(self.batch, self.total - self.written)
            self.f.write(n, partial_every=9, pad=self.pad)
            self.written += n
            self.stop.wait(self.pause)

    def join(self):
        self.t.join(60)
        assert not self.t.is_alive(), "the writer is stuck"
        assert self.written == self.total


def check_delivery(records, files, what):
    """Every record of `files` at least once and exactly as expected; returns
    (duplicates, report)."""
    exp = {(tag, rec["log"]): (t_, rec) for tag, t_, rec in expected_events(files)}
    seen = {}
    for r in records:
        tag, t_, rec = split(r)
        key = (tag, rec.get("log"))
        assert key in exp, f"unexpected record {r}"
        et_, erec = exp[key]
        assert rec == erec and t_ == et_, f"record {rec!r} at {t_} != expected {erec!r} at {et_}"
        seen[key] = seen.get(key, 0) + 1
    missing = [k[1][:60] for k in exp if k not in seen]
    dups = sum(c - 1 for c in seen.values())
    report = f"{what}: {len(records)} records written for {len(exp)} sent: {len(missing)} lost, {dups} duplicates"
    print(report)
    assert not missing, f"{report}; lost (first 10): {missing[:10]}"
    return dups, report


def family_sum(text, name):
    """The sum of every sample of the metric family `name`."""
    vals = re.findall(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    assert vals, f"{name} not in metrics"
    return sum(float(v) for v in vals)


def distinct(records):
    return len({(r.get("tag"), r.get("log")) for r in records})


# ---------------------------------------------------------------- upstream --

def test_upstream_three_weirs_one_killed(weirs, fluent_bit, tmp_path):
    """Fluent Bit's upstream (round robin over three weirs, acks, retries
    forever); one weir is killed with -9 mid-stream and not restarted: the
    chunks it had not acked are retried on the other two, and what it acked
    is in its output (it writes before it acks). Every weir got records."""
    total = 3000
    for w in weirs:
        w.start(w.config(inject=INJECT))
    up = upstream_file(tmp_path / "upstream.conf", [w.port for w in weirs])
    f = CriFile(fluent_bit.logs / "api-6c7d_default_api-1a2b3c4d.log", 3)
    f.write(200, partial_every=9, pad=300)
    fluent_bit.start(weirs[0].port, service=FB_SERVICE, output={**FB_OUTPUT, "upstream": up})
    writer = Writer(f, total - 200)
    victim = weirs[1]
    poll(lambda: len(records_of(victim)) > 0, 20, interval=0.01, what="records at the weir to kill")
    kill9(victim)
    killed_at = len(records_of(victim))
    writer.join()

    def everyone():
        return sum(distinct(records_of(w)) for w in weirs) >= total
    try:
        poll(everyone, 60, interval=0.2, what=f"all {total} records")
    except AssertionError:
        pass  # reported by check_delivery, with what is missing
    fluent_bit.stop_ok()
    for w in (weirs[0], weirs[2]):
        w.stop_ok()
    per = [len(records_of(w)) for w in weirs]
    dups, report = check_delivery([r for w in weirs for r in records_of(w)], [f], "upstream")
    print(f"per weir: {per}; {killed_at} at the killed one")
    assert all(n > 0 for n in per), f"round robin left a weir out: {per}"
    # the others took over after the kill: more than they had, and the retries
    log = fluent_bit.log()
    assert "failed to flush chunk" in log or "retry" in log, "the kill did not hit Fluent Bit"


# ----------------------------------------------------- max_connection_age --

class Balancer:
    """A TCP balancer on 127.0.0.1, as kube-proxy is for a Service: each new
    connection goes to the next backend port (round robin) and bytes are
    copied both ways until either side closes."""

    def __init__(self, ports):
        self.ports = ports
        self.next = 0
        self.conns = [0] * len(ports)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.stopped = threading.Event()
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ, None)
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stopped.is_set():
            for key, _ in self.sel.select(0.1):
                if key.data is None:
                    c, _ = self.lsock.accept()
                    i = self.next % len(self.ports)
                    self.next += 1
                    try:
                        b = socket.create_connection(("127.0.0.1", self.ports[i]), timeout=5)
                    except OSError:
                        c.close()
                        continue
                    self.conns[i] += 1
                    self.sel.register(c, selectors.EVENT_READ, b)
                    self.sel.register(b, selectors.EVENT_READ, c)
                    continue
                src, dst = key.fileobj, key.data
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if data:
                    try:
                        dst.sendall(data)
                        continue
                    except OSError:
                        pass
                for s in (src, dst):
                    try:
                        self.sel.unregister(s)
                    except (KeyError, ValueError):
                        pass
                    s.close()

    def close(self):
        self.stopped.set()
        self.t.join(5)
        self.lsock.close()


def test_max_connection_age_spreads_over_replicas(weirs, fluent_bit):
    """Three weirs behind a round-robin connection balancer (the Service);
    Fluent Bit keeps its connections alive, so without retirement its
    connections would stay on the replicas they first reached. weir retires
    each connection after about 1 s (`max_connection_age`, between requests,
    after their acks): Fluent Bit reconnects, its connections spread over
    all three, and nothing is lost."""
    total = 3000
    mons = [free_port() for _ in weirs]
    for w, m in zip(weirs, mons):
        w.start(w.config(inject=INJECT, monitor=m, source_extra="  max_connection_age 1s"))
    lb = Balancer([w.port for w in weirs])
    try:
        f = CriFile(fluent_bit.logs / "web-7d9f8_default_web-0a1b2c3d.log", 4)
        f.write(100, partial_every=9, pad=300)
        fluent_bit.start(lb.port, service=FB_SERVICE,
                         output={**FB_OUTPUT, "workers": 1, "net.keepalive": True})
        writer = Writer(f, total - 100, batch=40, pause=0.1)  # about 7 s
        writer.join()
        poll(lambda: sum(distinct(records_of(w)) for w in weirs) >= total, 60, interval=0.2,
             what=f"all {total} records")
        fluent_bit.stop_ok()
    finally:
        lb.close()
    retired = [family_sum(get(m, "/metrics")[1], "weir_input_connections_retired_total") for m in mons]
    for w in weirs:
        w.stop_ok()
    per = [len(records_of(w)) for w in weirs]
    dups, report = check_delivery([r for w in weirs for r in records_of(w)], [f], "max_connection_age")
    print(f"records per weir {per}, connections per weir {lb.conns}, retired {retired}")
    assert sum(retired) >= 3, f"weir retired {retired} connections in about 7 s with max_connection_age 1s"
    assert all(n > 0 for n in per) and all(c > 0 for c in lb.conns), (
        f"connections did not spread: records {per}, connections {lb.conns}")


# ------------------------------------------------- overflow block + restart --

def test_buffer_full_block_then_restart(weirs, fluent_bit, tmp_path):
    """weir's file buffer full (`total_limit_size`, `overflow_action
    block`) because its backend is down: weir stops reading and holds the
    acks; Fluent Bit holds its chunks and retries. weir is then restarted
    mid-stream (SIGTERM; the buffer stays on disk) with the backend back: the
    recovered chunks and Fluent Bit's retries deliver every record."""
    signal.alarm(180)  # conftest's per-test alarm, re-armed: two weir runs and a drain
    w = weirs[0]
    buf = tmp_path / "buf"
    dead = free_port()  # nothing listens: every flush fails and is retried
    buffer = (f"    @type file\n    path {buf}\n    total_limit_size 3m\n    chunk_limit_size 256k\n"
              "    overflow_action block\n    flush_interval 0.2s\n    retry_wait 0.2s\n"
              "    retry_max_interval 0.5s\n    retry_forever true\n    flush_at_shutdown false")
    mon = free_port()
    down = w.config(inject=INJECT, monitor=mon, matches=f"""<match **>
  @type elasticsearch
  @id out
  host 127.0.0.1
  port {dead}
  <buffer>
{buffer}
  </buffer>
</match>""")
    up = w.config(inject=INJECT, matches=f"""<match **>
  @type file
  @id out
  path {w.prefix}
  append true
  <format>
    @type json
  </format>
  <inject>
{INJECT}
  </inject>
  <buffer>
{buffer}
  </buffer>
</match>""")
    w.allow_errors = True  # the dead backend's connection errors
    w.start(down)
    total = 3000
    f = CriFile(fluent_bit.logs / "batch-9e8f_jobs_worker-5a6b7c8d.log", 5)
    # about 4.5 MB of records for a 3 MB buffer
    f.write(500, partial_every=9, pad=1200)
    fluent_bit.start(w.port, service=FB_SERVICE, output=FB_OUTPUT)
    writer = Writer(f, total - 500, batch=100, pause=0.02, pad=1200)
    # the buffer fills and weir blocks: it stops reading, acks are held
    def full():
        text = get(mon, "/metrics")[1]
        return (metric(text, "weir_buffer_bytes", output="out") >=
                0.75 * metric(text, "weir_buffer_limit_bytes", output="out"))
    poll(full, 30, interval=0.1, what="weir's buffer to fill")
    writer.join()
    time.sleep(2)  # Fluent Bit waits for acks that do not come, and retries
    w.stop_ok()
    chunks = [p for p in os.listdir(buf) if p.endswith(".chunk")]
    assert chunks, "the full buffer's chunks must stay on disk"
    w.start(up)
    try:
        poll(lambda: distinct(w.read_records()) >= total, 60, interval=0.2, what=f"all {total} records")
    except AssertionError:
        pass  # reported by check_delivery
    fluent_bit.stop_ok()
    w.stop_ok()
    # the dead backend's errors were the first run's; the second logs none
    errs = [l for l in w.stderr_lines(all_runs=False) if l.get("level") in ("error", "fatal")]
    assert not errs, errs
    dups, report = check_delivery(w.read_records(), [f], "block + restart")
    log = fluent_bit.log()
    print(f"{report}; {len(chunks)} chunks recovered; Fluent Bit retries: {log.count('retry in')}")
