"""The memory budget on the output side (issue 14): memory buffer chunks,
and the batches of sources other than forward, count against
<system> memory_budget (docs/architecture.md, "Memory budget").

The stalled output is weir's own forward output to a second weir that is
not running yet (its port refuses); when that weir starts (forward input ->
file output) the upstream buffer drains and every record accepted must
arrive there, exactly once."""
import json
import os
import socket
import threading
import time
import urllib.request

import msgpack

import fwd
from conftest import T0, LineCounter, Weir, free_port, poll
from fwd import et
from helpers import config, file_match, get, match, metric
from test_memory import FIXED_OVERHEAD, OVERSHOOT, SANITIZED, vm_hwm

MiB = 1 << 20
BUDGET = 64 * MiB

# one request: 4096 entries of ~1 KiB (4 MiB), an ack each
ENTRY_PAD = "x" * 990
PER_REQ = 4096
# ... or 400 requests of 256 entries (100 MiB)
SMALL_REQS, SMALL_PER_REQ = 400, 256


def request(seq, per_req=PER_REQ):
    entries = b"".join(msgpack.packb([et(T0, 1), {"msg": ENTRY_PAD, "req": seq, "i": i}], use_bin_type=True)
                       for i in range(per_req))
    return fwd.array_header(3) + fwd.packb("mem.out") + fwd.bin_header(len(entries)) + entries + \
        fwd.packb({"chunk": f"r{seq}"})


def upstream_cfg(port, mport, down_port, extra_sources="", chunk="4m"):
    out = match("**", "forward", id="up", extra=f"""  <server>
    host 127.0.0.1
    port {down_port}
  </server>""", buffer=f"""    @type memory
    total_limit_size 1g
    chunk_limit_size {chunk}
    overflow_action block
    flush_interval 1s
    retry_forever true
    retry_wait 0.5s
    retry_max_interval 1s""")
    return config(port, system=f"  memory_budget {BUDGET // MiB}m", monitor=mport, before=extra_sources, matches=out)


def downstream(tmp_path):
    """A second weir: forward input -> JSON lines (not started)."""
    d = os.path.join(str(tmp_path), "down")
    os.makedirs(d, exist_ok=True)
    w = Weir(d, free_port())
    return w, config(w.port, matches=file_match(w.prefix, buffer="    flush_mode immediate"))


class Sender:
    """One forward connection: sends n requests back to back (TCP pushes back
    when weir stops reading) while another thread reads their acks."""

    def __init__(self, port, n, per_req=PER_REQ):
        self.n, self.sent, self.acks, self.error = n, 0, [], None
        self.reqs = [request(i, per_req) for i in range(n)]
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.tx = threading.Thread(target=self._send, daemon=True)
        self.rx = threading.Thread(target=self._recv, daemon=True)
        self.tx.start()
        self.rx.start()

    def _send(self):
        try:
            for r in self.reqs:
                self.sock.sendall(r)
                self.sent += 1
        except OSError as e:
            self.error = e

    def _recv(self):
        u = msgpack.Unpacker(raw=False)
        try:
            while len(self.acks) < self.n:
                data = self.sock.recv(65536)
                if not data:
                    self.error = self.error or ConnectionError("weir closed the connection")
                    return
                u.feed(data)
                for m in u:
                    self.acks.append(m)
        except OSError as e:
            self.error = self.error or e

    def close(self):
        self.sock.close()


def waits(mport, reason):
    return metric(get(mport, "/metrics")[1], "weir_memory_waits_total", reason=reason)


def count_records(w):
    """(lines, distinct (req, i) pairs) of the downstream's complete lines.
    Parses every line: call it once, at the end; poll with LineCounter."""
    n, reqs = 0, set()
    for path in w.output_files():
        with open(path) as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # being written
                r = json.loads(line)
                if "req" in r:
                    reqs.add((r["req"], r["i"]))
                n += 1
    return n, len(reqs)


def test_stalled_memory_buffer_holds_senders_within_the_budget(weir, tmp_path):
    """72 requests of 4 MiB (288 MiB) into a memory buffer (total_limit_size
    1g, overflow_action block) whose output is down: the buffer stops at the
    budget, the writer waits (buffer_full), the forward input stops reading,
    acks wait and the connection stays open; VmHWM stays within the budget
    plus the process. When the output comes back every record arrives.

    VmHWM is asserted for the stall (what the budget is for: 288 MiB offered,
    nothing leaving). While the backlog drains at full speed the account
    stays within the budget too (asserted), but RSS then also carries what
    the allocator keeps of the buffers freed meanwhile (it rises steadily
    during the drain and drops when glibc trims): VmHWM measured 85-135 MiB
    at the end, printed, not asserted."""
    weir.allow_errors = True  # the forward output logs its failed connections
    down, down_cfg = downstream(tmp_path)
    mport = free_port()
    weir.start(upstream_cfg(weir.port, mport, down.port))
    nreq = 72
    snd = Sender(weir.port, nreq)
    try:
        poll(lambda: waits(mport, "buffer_full") > 0, timeout=60, what="a buffer_full wait")
        time.sleep(3)  # let it settle at the budget
        text = get(mport, "/metrics")[1]
        in_use = metric(text, "weir_memory_in_use_bytes")
        hwm_stalled = vm_hwm(weir.proc.pid)
        acked_stalled, sent_stalled = len(snd.acks), snd.sent
        assert snd.error is None, snd.error
        assert acked_stalled < nreq and sent_stalled < nreq, (acked_stalled, sent_stalled)
        assert all(a.get("ack") for a in snd.acks), snd.acks[:3]
        assert in_use <= BUDGET + OVERSHOOT, f"in use {in_use / MiB:.1f} MiB"
        if not SANITIZED:
            assert hwm_stalled < BUDGET + FIXED_OVERHEAD, f"VmHWM {hwm_stalled / MiB:.1f} MiB while stalled"
        print(f"stalled: {sent_stalled} requests sent, {acked_stalled} acked, in use {in_use / MiB:.1f} MiB, "
              f"VmHWM {hwm_stalled / MiB:.1f} MiB")
        t0 = time.monotonic()
        down.start(down_cfg)
        poll(lambda: len(snd.acks) == nreq or snd.error, timeout=300, what="every ack")
        assert snd.error is None, snd.error
        assert sorted(a["ack"] for a in snd.acks) == sorted(f"r{i}" for i in range(nreq))
        want = nreq * PER_REQ
        lines = LineCounter(down.output_files)
        poll(lambda: lines() >= want, timeout=300, interval=0.2, what=f"{want} records downstream")
        took = time.monotonic() - t0
        n, distinct = count_records(down)
        assert n == want and distinct == want, (n, distinct)
        hwm = vm_hwm(weir.proc.pid)
        text = get(mport, "/metrics")[1]
        peak = metric(text, "weir_memory_in_use_peak_bytes")
        wsec = metric(text, "weir_memory_wait_seconds_total", reason="buffer_full")
        print(f"288 MiB through a stalled memory buffer, budget 64 MiB: VmHWM {hwm / MiB:.1f} MiB, accounted peak "
              f"{peak / MiB:.1f} MiB, buffer_full waits {waits(mport, 'buffer_full'):.0f} ({wsec:.1f} s), "
              f"drained in {took:.1f} s")
        assert waits(mport, "buffer_full") >= 1 and wsec > 0
        assert peak <= BUDGET + OVERSHOOT, f"accounted peak {peak / MiB:.1f} MiB"
        snd.close()  # the connection's own read buffer counts while it is open
        # every chunk flushed and freed, the connection gone: nothing stays reserved
        left = []
        try:
            poll(lambda: left.append(metric(get(mport, "/metrics")[1], "weir_memory_in_use_bytes")) or left[-1] == 0,
                 timeout=20, what="the memory account back to 0")
        except AssertionError:
            raise AssertionError(f"{left[-1]:.0f} bytes stay reserved after the drain")
    finally:
        snd.close()
        if down.proc is not None:
            down.stop()


def test_http_input_waits_at_the_budget_then_completes(weir, tmp_path):
    """The budget held by a stalled memory buffer: a POST to the HTTP input
    waits (reason source), no 500; when the output comes back it gets 200 and
    its record arrives."""
    weir.allow_errors = True
    down, down_cfg = downstream(tmp_path)
    mport, hport = free_port(), free_port()
    http_src = f"<source>\n  @type http\n  bind 127.0.0.1\n  port {hport}\n</source>\n"
    # small requests (256 KiB), small chunks: the account then sits at the budget, not below it by the
    # growth of a large request's buffer that the forward input refuses
    weir.start(upstream_cfg(weir.port, mport, down.port, extra_sources=http_src, chunk="1m"))
    nreq, per_req = SMALL_REQS, SMALL_PER_REQ
    snd = Sender(weir.port, nreq, per_req)
    result = {}

    def post():
        body = json.dumps({"msg": "over the budget", "big": "y" * 2000000}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{hport}/http.late", data=body,
                                     headers={"Content-Type": "application/json"})
        t = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                result["status"] = r.status
        except urllib.error.HTTPError as e:
            result["status"] = e.code
        except OSError as e:
            result["error"] = e
        result["seconds"] = time.monotonic() - t

    try:
        poll(lambda: waits(mport, "buffer_full") > 0, timeout=60, what="a buffer_full wait")
        poll(lambda: metric(get(mport, "/metrics")[1], "weir_memory_in_use_bytes") >= BUDGET - 4 * MiB,
             timeout=30, what="the budget reached")
        th = threading.Thread(target=post, daemon=True)
        th.start()
        poll(lambda: waits(mport, "source") > 0, timeout=20, what="a source wait")
        time.sleep(1)
        assert th.is_alive() and not result, result  # waiting, not refused
        down.start(down_cfg)
        th.join(120)
        assert result.get("status") == 200, result
        poll(lambda: len(snd.acks) == nreq or snd.error, timeout=300, what="every ack")
        assert snd.error is None, snd.error
        text = get(mport, "/metrics")[1]
        wsec = metric(text, "weir_memory_wait_seconds_total", reason="source")
        print(f"HTTP POST at the budget: answered 200 after {result['seconds']:.1f} s, source waits "
              f"{waits(mport, 'source'):.0f} ({wsec:.1f} s)")
        assert wsec > 0.5
        late = poll(lambda: [r for r in down.read_records() if r.get("msg") == "over the budget"] or None,
                    timeout=60, interval=0.5, what="the POSTed record downstream")
        assert len(late) == 1
        lines = LineCounter(down.output_files)
        poll(lambda: lines() >= nreq * per_req + 1, timeout=300, interval=0.2, what="every forward record")
        assert count_records(down) == (nreq * per_req + 1, nreq * per_req)
    finally:
        snd.close()
        if down.proc is not None:
            down.stop()
