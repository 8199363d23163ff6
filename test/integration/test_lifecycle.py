"""Lifecycle as Kubernetes sees it: readiness only once the buffer is
recovered and the listeners are up; liveness throughout; not ready while
draining; SIGTERM under load loses no acked record."""
import os
import signal
import threading
import time
import urllib.error
import urllib.request

import fwd
import helpers
from conftest import T0, free_port, poll, port_accepts
from fwd import et


def config(port, mport, prefix, bufdir, flush="1s", out_path=None):
    """forward -> JSON lines at out_path (default prefix) through a file buffer
    at bufdir that retries forever and flushes at shutdown; monitor_agent on mport."""
    return helpers.config(port, out_path or prefix, monitor=mport, system="  shutdown_timeout 3s",
                          buffer=f"""    @type file
    path {bufdir}
    flush_interval {flush}
    flush_at_shutdown true
    chunk_limit_size 1m
    retry_wait 0.1s
    retry_max_interval 0.2s
    retry_forever true""")


def probe(mport, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}{path}", timeout=2) as r:
            return r.status, r.read().decode().strip()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode().strip()
    except OSError:
        return None, "refused"


def send_batch(c, k, n=100):
    ch = f"b{k}"
    c.send(fwd.packed_forward("life", [[et(T0, k * n + i), {"i": k * n + i, "pad": "x" * 200}] for i in range(n)],
                              {"chunk": ch}))
    c.expect_ack(ch)


def test_probes_during_start_run_and_drain(weir):
    mport = free_port()
    bufdir = os.path.join(weir.tmp, "buf")
    # 1. a backlog on disk: 30k records that a 1h flush_interval keeps buffered
    weir.start(config(weir.port, mport, weir.prefix, bufdir, flush="1h").replace(
        "flush_at_shutdown true", "flush_at_shutdown false").replace("chunk_limit_size 1m", "chunk_limit_size 64m"))
    with weir.conn() as c:
        for k in range(300):
            send_batch(c, k)
    weir.stop_ok()
    assert weir.read_records() == []
    # 2. start on it: probe from the first instant
    weir.start(config(weir.port, mport, weir.prefix, bufdir), wait_port=False)
    seen = []
    while True:
        st = probe(mport, "/readyz")
        seen.append(st)
        if st[0] == 200:
            break
        assert weir.proc.poll() is None
        time.sleep(0.005)
    # ready means: buffer recovered, forward listener up
    assert any("recovered" in l["msg"] for l in weir.stderr_lines()), "ready before the buffer was recovered"
    assert port_accepts(weir.port)
    assert all(s[0] in (None, 503) for s in seen[:-1]), seen
    assert probe(mport, "/healthz") == (200, "ok")
    poll(lambda: len(weir.read_records()) == 30000, timeout=30, what="the backlog delivered")
    # 3. drain: the output goes down (path through a regular file), a record
    # is buffered, SIGTERM: flush_at_shutdown retries for shutdown_timeout,
    # and meanwhile the pod is alive but not ready
    blocker = os.path.join(weir.tmp, "blocker")
    open(blocker, "w").close()
    weir.stop_ok()
    weir.allow_errors = True
    weir.start(config(weir.port, mport, weir.prefix, bufdir, flush="1h",
                      out_path=os.path.join(blocker, "sub", "r")))
    with weir.conn() as c:
        send_batch(c, 1000, 1)
    assert probe(mport, "/readyz") == (200, "ready")
    weir.proc.send_signal(signal.SIGTERM)
    poll(lambda: probe(mport, "/readyz") == (503, "draining"), timeout=3, what="not ready while draining")
    assert probe(mport, "/healthz") == (200, "ok")
    assert weir.proc.wait(10) == 0
    weir.proc = None


def test_sigterm_under_load_loses_nothing_acked(weir):
    mport = free_port()
    bufdir = os.path.join(weir.tmp, "buf")
    weir.start(config(weir.port, mport, weir.prefix, bufdir, flush="0.2s"))
    acked = {}
    stop = threading.Event()

    def sender(n):
        got = acked.setdefault(n, [])
        k = 0
        try:
            with weir.conn() as c:
                while not stop.is_set():
                    send_batch(c, n * 100000 + k)
                    got.extend(range((n * 100000 + k) * 100, (n * 100000 + k) * 100 + 100))
                    k += 1
        except Exception:  # noqa: BLE001  the server closed the connection: expected
            pass

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    poll(lambda: sum(len(v) for v in acked.values()) > 20000, timeout=20, what="load")
    weir.proc.send_signal(signal.SIGTERM)
    assert weir.proc.wait(15) == 0
    weir.proc_rc = 0
    stop.set()
    for t in threads:
        t.join(10)
    all_acked = sorted(i for v in acked.values() for i in v)
    # restart on the same buffer: what was kept on disk is delivered too
    weir.proc = None
    weir.start(config(weir.port, mport, weir.prefix, bufdir, flush="0.2s"))
    got = [r["i"] for r in weir.read_records()]
    poll(lambda: len(set(r["i"] for r in weir.read_records())) >= len(all_acked), timeout=20,
         what="every acked record delivered")
    got = [r["i"] for r in weir.read_records()]
    missing = set(all_acked) - set(got)
    assert not missing, f"{len(missing)} acked records lost"
    assert len(got) == len(set(got)), f"{len(got) - len(set(got))} duplicates"
    assert any("SIGTERM received" in l["msg"] for l in weir.stderr_lines())
