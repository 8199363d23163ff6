"""SIGHUP reload: the new configuration replaces the running one without
closing client connections or losing records; an invalid one changes
nothing; unchanged outputs keep their buffered records; a TLS source picks up
rotated certificate files."""
import os
import signal
import socket
import ssl
import subprocess
import threading
import time

import fwd
from conftest import T0, free_port, poll
from fwd import et
from helpers import config, file_match, get, metric


def reload(weir, cfg_text, expect="ok", mport=None, before=None):
    with open(weir.config_path, "w") as f:
        f.write(cfg_text)
    n0 = len(weir.stderr_lines())
    weir.proc.send_signal(signal.SIGHUP)
    want = "configuration reloaded" if expect == "ok" else "keeping the running one"
    poll(lambda: any(want in l["msg"] for l in weir.stderr_lines()[n0:]), timeout=20,
         what=f"reload log '{want}'")


def sender(weir, stop, sent, errors, tag="app.a"):
    """One keepalive connection sending acked requests until told to stop."""
    try:
        with weir.conn() as c:
            i = 0
            while not stop.is_set():
                ch = f"c{i}"
                c.send(fwd.forward(tag, [[et(T0, i * 10 + k), {"i": i * 10 + k}] for k in range(10)],
                                   {"chunk": ch}))
                c.expect_ack(ch)
                sent.extend(range(i * 10, i * 10 + 10))
                i += 1
    except Exception as e:  # noqa: BLE001
        errors.append(repr(e))


def test_reload_under_load_changes_route_keeps_connection(weir):
    mport = free_port()
    a = os.path.join(weir.out_dir, "a")
    b = os.path.join(weir.out_dir, "b")
    keep = os.path.join(weir.out_dir, "keep")
    cfg_a = config(weir.port, monitor=mport, matches=file_match(a, "app.**") + file_match(keep))
    cfg_b = config(weir.port, monitor=mport, matches=file_match(b, "app.**") + file_match(keep))
    weir.start(cfg_a)
    stop, sent, errors = threading.Event(), [], []
    t = threading.Thread(target=sender, args=(weir, stop, sent, errors))
    t.start()
    poll(lambda: len(sent) >= 200, what="traffic before the reload")
    reload(weir, cfg_b)
    n_at_reload = len(sent)
    poll(lambda: len(sent) >= n_at_reload + 200, what="traffic after the reload")
    # a second SIGHUP with the same file: everything carried over
    reload(weir, cfg_b)
    stop.set()
    t.join(10)
    assert not errors, errors  # the one connection was never closed, every request acked
    # the other source, untouched: a record through it after the reloads
    with weir.conn() as c:
        c.send(fwd.message("other", et(T0, 1), {"o": 1}, {"chunk": "o1"}))
        c.expect_ack("o1")
    weir.stop_ok()
    got_a = [r["i"] for r in weir.read_records(a)]
    got_b = [r["i"] for r in weir.read_records(b)]
    assert got_a and got_b, (len(got_a), len(got_b))
    # every acked record exactly once, the first ones to a, the rest to b
    assert sorted(got_a + got_b) == sorted(sent)
    assert max(got_a) < min(got_b)
    assert [r.get("o") for r in weir.read_records(keep)] == [1]
    lines = [l["msg"] for l in weir.stderr_lines()]
    assert any("outputs 1 kept, 1 started, 1 stopped" in m for m in lines), lines
    assert any("outputs 2 kept, 0 started, 0 stopped; forward sources 1 kept" in m for m in lines), lines


def test_invalid_config_keeps_running_one(weir):
    mport = free_port()
    cfg = config(weir.port, weir.prefix, monitor=mport)
    weir.start(cfg)
    weir.allow_errors = True
    with weir.conn() as c:
        c.send(fwd.message("t", et(T0, 1), {"n": 1}, {"chunk": "1"}))
        c.expect_ack("1")
        reload(weir, cfg.replace("@type file", "@type fiel"), expect="failed")
        # the same connection keeps working on the old configuration
        c.send(fwd.message("t", et(T0, 2), {"n": 2}, {"chunk": "2"}))
        c.expect_ack("2")
    lines = [l for l in weir.stderr_lines()]
    assert any("unknown output plugin 'fiel'; did you mean 'file'?" in l["msg"] for l in lines)
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_reloads_total", result="failed") == 1
    assert metric(text, "weir_reloads_total", result="ok") == 0
    assert sorted(r["n"] for r in weir.read_records()) == [1, 2]


def test_unchanged_buffered_output_keeps_its_records(weir):
    """Records sitting in a memory buffer of an unchanged output survive a
    reload (carried over, not flushed or dropped); a changed output with a
    file buffer hands its chunks to its successor through the disk."""
    mport = free_port()
    mem_out = os.path.join(weir.out_dir, "mem")
    disk_out = os.path.join(weir.out_dir, "disk")
    bufdir = os.path.join(weir.tmp, "buf")
    mem = file_match(mem_out, "mem.**", buffer="    @type memory\n    flush_interval 2s\n    flush_at_shutdown true")
    disk = lambda extra: file_match(disk_out, "disk.**", extra=extra,  # noqa: E731
                                    buffer=f"    @type file\n    path {bufdir}\n    flush_interval 60s\n"
                                           "    flush_at_shutdown false")
    weir.start(config(weir.port, monitor=mport, matches=mem + disk("")))
    with weir.conn() as c:
        for i in range(5):
            c.send(fwd.message("mem.x", et(T0, i), {"m": i}, {"chunk": f"m{i}"}))
            c.expect_ack(f"m{i}")
            c.send(fwd.message("disk.x", et(T0, i), {"d": i}, {"chunk": f"d{i}"}))
            c.expect_ack(f"d{i}")
    assert weir.read_records(mem_out) == [] and weir.read_records(disk_out) == []
    # the disk output changes (a new parameter), the memory one does not
    reload(weir, config(weir.port, monitor=mport, matches=mem + disk("  add_path_suffix true").replace(
        "flush_interval 60s", "flush_interval 1s")))
    poll(lambda: len(weir.read_records(mem_out)) == 5, timeout=10, what="memory buffer flushed after reload")
    poll(lambda: len(weir.read_records(disk_out)) == 5, timeout=10, what="file chunks recovered by the new output")
    assert sorted(r["m"] for r in weir.read_records(mem_out)) == list(range(5))
    assert sorted(r["d"] for r in weir.read_records(disk_out)) == list(range(5))


def _cert(d, name, cn):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
                    "-subj", f"/CN={cn}", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   cwd=d, check=True, capture_output=True)


def _peer_cn(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw) as s:
            der = s.getpeercert(binary_form=True)
    txt = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"], input=der,
                         capture_output=True, check=True).stdout.decode()
    return txt.strip().split("CN", 1)[1].strip(" =")


def test_sighup_reloads_rotated_certificates(weir):
    d = weir.tmp
    _cert(d, "old", "weir-old")
    _cert(d, "new", "weir-new")
    cert, key = os.path.join(d, "server.pem"), os.path.join(d, "server.key")
    os.replace(os.path.join(d, "old.pem"), cert)
    os.replace(os.path.join(d, "old.key"), key)
    mport = free_port()
    cfg = config(weir.port, weir.prefix, monitor=mport,
                 source_extra=f"  <transport tls>\n    cert_path {cert}\n    private_key_path {key}\n  </transport>")
    weir.start(cfg)
    assert _peer_cn(weir.port) == "weir-old"
    # a TLS connection open across the rotation keeps working
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", weir.port), timeout=10)
    s = ctx.wrap_socket(raw)
    conn = fwd.FwdConn.__new__(fwd.FwdConn)
    conn.sock, conn.buf, conn.timeout = s, b"", 10.0
    conn.send(fwd.message("tls", et(T0, 1), {"n": 1}, {"chunk": "1"}))
    conn.expect_ack("1")
    os.replace(os.path.join(d, "new.pem"), cert)
    os.replace(os.path.join(d, "new.key"), key)
    reload(weir, cfg)  # same text: the source is kept, its certificate files re-read
    assert _peer_cn(weir.port) == "weir-new"
    conn.send(fwd.message("tls", et(T0, 2), {"n": 2}, {"chunk": "2"}))
    conn.expect_ack("2")
    s.close()
    # a broken certificate file: the reload fails, the running certificate stays
    weir.allow_errors = True
    with open(cert, "w") as f:
        f.write("not a certificate\n")
    reload(weir, cfg, expect="failed")
    assert _peer_cn(weir.port) == "weir-new"
    assert sorted(r["n"] for r in weir.read_records()) == [1, 2]
