"""Bounded memory for large forward requests (issue 14): streamed decode of
requests over stream_threshold and the process-wide memory budget
(<system> memory_budget). docs/architecture.md, "Streamed requests" and
"Memory budget".

Peak RSS is weir's VmHWM from /proc/PID/status. The bound asserted is the
budget plus FIXED_OVERHEAD: the process itself (binary, libraries, libevent,
OpenSSL, thread stacks, allocator arenas: ~20 MB measured at start) plus what
is not reserved against the budget (per-thread malloc caches, the kernel's
socket buffers are not RSS)."""
import base64
import os
import socket
import threading
import time
import zlib

import msgpack

import fwd
from conftest import T0, free_port, poll
from fwd import et
from helpers import config, get, match, metric
from memtools import BLOCK, ENTRY, MiB, PER_BLOCK, SANITIZED, head_packed, opts, read_ack, send_blocks, vm_hwm

BUDGET = 128 * MiB
FIXED_OVERHEAD = 48 * MiB
# what the account may pass the budget by: reservations that cannot wait
# (records already decoded: at most a read burst and a part per connection)
OVERSHOOT = 24 * MiB


def check_bounds(mport, hwm, budget=BUDGET):
    peak = metric(get(mport, "/metrics")[1], "weir_memory_in_use_peak_bytes")
    assert peak <= budget + OVERSHOOT, f"reserved peak {peak / MiB:.1f} MiB"
    if not SANITIZED:
        assert hwm < budget + FIXED_OVERHEAD, f"VmHWM {hwm / MiB:.1f} MiB"


def account_drains(mport):
    """Every connection closed and every batch stored: nothing stays reserved."""
    poll(lambda: metric(get(mport, "/metrics")[1], "weir_memory_in_use_bytes") == 0, timeout=10,
         what="the memory account back to 0")


def cfg(weir, mport, budget="128m", source_extra=""):
    return config(weir.port, system=f"  memory_budget {budget}", source_extra=source_extra, monitor=mport,
                  matches=match("**", "null", id="sink"))


def out_records(mport):
    return metric(get(mport, "/metrics")[1], "weir_output_records_total", output="sink", type="null")


def test_256mib_packed_forward_streams_within_the_budget(weir):
    mport = free_port()
    weir.start(cfg(weir, mport))
    base = vm_hwm(weir.proc.pid)
    nblocks = 256 * MiB // len(BLOCK)
    s = socket.create_connection(("127.0.0.1", weir.port))
    s.sendall(head_packed("big.packed", nblocks * len(BLOCK)))
    send_blocks(s, nblocks)
    s.sendall(opts("p256"))
    ack = read_ack(s, 120)
    assert ack == {"ack": "p256"}
    n = nblocks * PER_BLOCK
    poll(lambda: out_records(mport) == n, timeout=30, what=f"{n} records delivered")
    hwm = vm_hwm(weir.proc.pid)
    text = get(mport, "/metrics")[1]
    print(f"256 MiB PackedForward: VmHWM {hwm / MiB:.1f} MiB (at start {base / MiB:.1f} MiB), budget 128 MiB, "
          f"peak reserved {metric(text, 'weir_memory_in_use_peak_bytes') / MiB:.1f} MiB")
    assert metric(text, "weir_forward_streamed_requests_total", input="forward.0") == 1
    assert metric(text, "weir_memory_budget_bytes") == BUDGET
    check_bounds(mport, hwm)
    s.close()
    account_drains(mport)


def test_compressed_request_inflating_to_512mib_streams_within_the_budget(weir):
    mport = free_port()
    weir.start(cfg(weir, mport, source_extra="  decompressed_size_limit 1g"))
    nblocks = 512 * MiB // len(BLOCK)
    z = zlib.compressobj(6, zlib.DEFLATED, 16 + 15)
    parts = [z.compress(BLOCK) for _ in range(nblocks)] + [z.flush()]
    gz = b"".join(parts)
    s = socket.create_connection(("127.0.0.1", weir.port))
    s.sendall(head_packed("big.gzip", len(gz)) + gz + opts("g512", compressed="gzip"))
    assert read_ack(s, 180) == {"ack": "g512"}
    n = nblocks * PER_BLOCK
    poll(lambda: out_records(mport) == n, timeout=30, what=f"{n} records delivered")
    hwm = vm_hwm(weir.proc.pid)
    print(f"CompressedPackedForward {len(gz) / MiB:.1f} MiB gzip -> 512 MiB: VmHWM {hwm / MiB:.1f} MiB, budget 128 MiB")
    check_bounds(mport, hwm)
    s.close()


def test_unfinished_large_requests_do_not_starve_a_normal_client(weir):
    """12 connections each send 110 MB of a 120 MB request and wait; a normal
    client streams small acked requests meanwhile and gets every ack."""
    mport = free_port()
    weir.start(cfg(weir, mport))
    holders = []
    nblocks = 110 * MiB // len(BLOCK)
    stop = threading.Event()
    errors = []

    def hold(i):
        try:
            s = socket.create_connection(("127.0.0.1", weir.port))
            holders.append(s)
            s.sendall(head_packed(f"hold.{i}", 120 * MiB))
            for _ in range(nblocks):
                if stop.is_set():
                    return
                s.sendall(BLOCK)
        except OSError as e:
            if not stop.is_set():
                errors.append(e)

    threads = [threading.Thread(target=hold, args=(i,), daemon=True) for i in range(12)]
    for t in threads:
        t.start()
    acked = 0
    t_end = time.monotonic() + 20
    with weir.conn() as c:
        i = 0
        while time.monotonic() < t_end:
            ch = base64.b64encode(os.urandom(9)).decode()
            c.send(fwd.message("normal", et(T0, i), {"i": i}, {"chunk": ch}))
            c.expect_ack(ch, timeout=10)
            acked += 1
            i += 1
            time.sleep(0.01)
    hwm = vm_hwm(weir.proc.pid)
    text = get(mport, "/metrics")[1]
    print(f"12 unfinished 120 MB requests + a normal client: {acked} acks, VmHWM {hwm / MiB:.1f} MiB, "
          f"waits {metric(text, 'weir_memory_waits_total', reason='forward_read')}")
    stop.set()
    for s in holders:
        s.close()
    for t in threads:
        t.join(10)
    account_drains(mport)
    assert acked > 100
    assert not errors, errors
    check_bounds(mport, hwm)


def test_request_cut_off_midway_is_not_acked_and_counted(weir):
    mport = free_port()
    weir.start(cfg(weir, mport))
    nblocks = 40 * MiB // len(BLOCK)
    s = socket.create_connection(("127.0.0.1", weir.port))
    s.sendall(head_packed("cut", 64 * MiB))
    send_blocks(s, nblocks)
    # what weir handed on before the cut is delivered
    poll(lambda: out_records(mport) > 0, timeout=20, what="parts handed on")
    time.sleep(0.5)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(10)
    assert s.recv(100) == b"", "an ack (or anything) for a request cut off"
    s.close()
    text = lambda: get(mport, "/metrics")[1]  # noqa: E731
    poll(lambda: metric(text(), "weir_forward_partial_requests_total", input="forward.0") == 1, timeout=10,
         what="the partial request counted")
    partial = metric(text(), "weir_forward_partial_request_records_total", input="forward.0")
    delivered = out_records(mport)
    print(f"cut off after 40 MiB of a 64 MiB request: {partial:.0f} records handed on (duplicates on retry), "
          f"{delivered:.0f} delivered")
    assert partial == delivered
    assert 0 < partial <= nblocks * PER_BLOCK
    assert any("cut off after" in l["msg"] for l in weir.stderr_lines())
    account_drains(mport)


def test_whole_frames_over_the_budget_switch_to_streaming(weir):
    """24 connections each send 7 MiB of a 7.5 MiB request (under
    stream_threshold: framed whole) and wait: 168 MiB of frames against a
    64 MiB budget. The frames the budget refuses are streamed instead; a
    normal client keeps getting its acks; then every request is finished and
    acked, every record delivered."""
    mport = free_port()
    budget = 64 * MiB
    weir.start(cfg(weir, mport, budget="64m"))
    total = 7 * MiB + 512 * 1024
    nblocks = total // len(BLOCK)
    first = 7 * MiB // len(BLOCK)
    socks = [socket.create_connection(("127.0.0.1", weir.port)) for _ in range(24)]
    for i, s in enumerate(socks):
        s.sendall(head_packed(f"frame.{i}", nblocks * len(BLOCK)))
        send_blocks(s, first)
    with weir.conn() as c:
        for i in range(50):
            ch = f"n{i}"
            c.send(fwd.message("normal", et(T0, i), {"i": i}, {"chunk": ch}))
            c.expect_ack(ch, timeout=10)
    for i, s in enumerate(socks):
        send_blocks(s, nblocks - first)
        s.sendall(opts(f"f{i}"))
    for i, s in enumerate(socks):
        assert read_ack(s, 60) == {"ack": f"f{i}"}
        s.close()
    n = 24 * nblocks * PER_BLOCK + 50
    poll(lambda: out_records(mport) == n, timeout=30, what=f"{n} records delivered")
    hwm = vm_hwm(weir.proc.pid)
    text = get(mport, "/metrics")[1]
    streamed = metric(text, "weir_forward_streamed_requests_total", input="forward.0")
    print(f"24 x 7.5 MiB whole frames, budget 64 MiB: VmHWM {hwm / MiB:.1f} MiB, {streamed:.0f} switched to "
          f"streaming, peak reserved {metric(text, 'weir_memory_in_use_peak_bytes') / MiB:.1f} MiB, "
          f"waits {metric(text, 'weir_memory_waits_total', reason='forward_read'):.0f}")
    assert streamed > 0
    check_bounds(mport, hwm, budget)
    account_drains(mport)


def test_large_forward_mode_request_streams(weir):
    """Forward mode (an array of entries: its header gives only the count)."""
    mport = free_port()
    weir.start(cfg(weir, mport))
    n = 100_000
    s = socket.create_connection(("127.0.0.1", weir.port))
    s.sendall(fwd.array_header(3) + fwd.packb("big.forward") + fwd.array_header(n))
    per = len(BLOCK) // len(ENTRY)
    sent = 0
    while sent < n:
        k = min(per, n - sent)
        s.sendall(ENTRY * k)
        sent += k
    s.sendall(opts("fw"))
    assert read_ack(s, 60) == {"ack": "fw"}
    poll(lambda: out_records(mport) == n, timeout=30, what=f"{n} records delivered")
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_forward_streamed_requests_total", input="forward.0") == 1
    s.close()


def _cgroup_limit():
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                v = f.read().strip()
        except OSError:
            continue
        if v != "max" and int(v) < (1 << 60):
            return int(v)
    return None


def test_budget_default_metrics_and_health_headers(weir):
    import urllib.request
    mport = free_port()
    weir.start(config(weir.port, monitor=mport, matches=match("**", "null", id="sink")))
    lim = _cgroup_limit()
    want = lim // 2 if lim else 256 * MiB
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_memory_budget_bytes") == want
    assert metric(text, "weir_memory_in_use_bytes") >= 0
    assert metric(text, "weir_memory_waits_total", reason="forward_read") == 0
    assert metric(text, "weir_memory_wait_seconds_total", reason="forward_read") == 0
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/api/v1/health", timeout=5) as r:
        assert r.read() == b"ok\n"
        assert int(r.headers["X-Weir-Memory-Budget"]) == want
        assert int(r.headers["X-Weir-Memory-In-Use"]) >= 0
    assert any(f"memory budget {want} bytes" in l["msg"] for l in weir.stderr_lines())


def test_streamed_request_over_tls_between_small_ones_acks_in_order(weir, tmp_path_factory):
    """TLS (the decrypted bytes a stream still has to decode do not make the
    socket readable), a budget small enough to stop the stream between parts,
    and a streamed request between two small ones on one connection: the
    acks leave in request order and the records stay in order."""
    import ssl
    from pki import make_pki
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    tls = (f"  <transport tls>\n    cert_path {pki['server.pem']}\n"
           f"    private_key_path {pki['server.key']}\n  </transport>")
    mport = free_port()
    weir.start(weir.config(system="  memory_budget 8m", monitor=mport,
                           source_extra="  stream_threshold 1m\n" + tls))
    n_big = 30000
    big_entries = b"".join(msgpack.packb([et(T0, i), {"i": i, "pad": "p" * 300}], use_bin_type=True)
                           for i in range(1, n_big + 1))
    data = fwd.message("order", et(T0, 0), {"i": 0}, {"chunk": "a"})
    data += fwd.array_header(3) + fwd.packb("order") + fwd.bin_header(len(big_entries)) + big_entries
    data += fwd.packb({"chunk": "b"})
    data += fwd.message("order", et(T0, n_big + 1), {"i": n_big + 1}, {"chunk": "c"})
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki["ca.pem"])
    raw = socket.create_connection(("127.0.0.1", weir.port), timeout=30)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    s.sendall(data)
    for want in ("a", "b", "c"):
        assert read_ack(s, 60) == {"ack": want}
    s.close()
    recs = weir.wait_records(n_big + 2, timeout=30)
    assert [r["i"] for r in recs] == list(range(n_big + 2))
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_forward_streamed_requests_total", input="forward.0") == 1
    print(f"TLS, budget 8 MiB: {len(big_entries) / MiB:.1f} MiB streamed, waits "
          f"{metric(text, 'weir_memory_waits_total', reason='forward_read'):.0f}, peak reserved "
          f"{metric(text, 'weir_memory_in_use_peak_bytes') / MiB:.1f} MiB")
    account_drains(mport)


def test_eight_concurrent_compressed_requests_while_a_normal_client_streams(weir):
    """8 connections at once, each a 0.4 MB gzip request inflating to 128 MiB
    (framed whole: under stream_threshold on the wire; restreamed once it
    inflates past it), while a normal client gets its acks."""
    mport = free_port()
    weir.start(cfg(weir, mport))
    nblocks = 128 * MiB // len(BLOCK)
    z = zlib.compressobj(6, zlib.DEFLATED, 16 + 15)
    gz = b"".join([z.compress(BLOCK) for _ in range(nblocks)] + [z.flush()])
    results = {}

    def send(i):
        s = socket.create_connection(("127.0.0.1", weir.port))
        s.sendall(head_packed(f"gz.{i}", len(gz)) + gz + opts(f"g{i}", compressed="gzip"))
        results[i] = read_ack(s, 120)
        s.close()

    threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(8)]
    for t in threads:
        t.start()
    acked = 0
    with weir.conn() as c:
        while any(t.is_alive() for t in threads):
            ch = f"n{acked}"
            c.send(fwd.message("normal", et(T0, acked), {"i": acked}, {"chunk": ch}))
            c.expect_ack(ch, timeout=10)
            acked += 1
            time.sleep(0.01)
    for t in threads:
        t.join(5)
    assert results == {i: {"ack": f"g{i}"} for i in range(8)}
    n = 8 * nblocks * PER_BLOCK + acked
    poll(lambda: out_records(mport) == n, timeout=30, what=f"{n} records delivered")
    hwm = vm_hwm(weir.proc.pid)
    text = get(mport, "/metrics")[1]
    print(f"8 x gzip -> 128 MiB concurrently + {acked} small acked requests: VmHWM {hwm / MiB:.1f} MiB, "
          f"peak reserved {metric(text, 'weir_memory_in_use_peak_bytes') / MiB:.1f} MiB")
    assert metric(text, "weir_forward_streamed_requests_total", input="forward.0") == 8
    check_bounds(mport, hwm)
    account_drains(mport)
