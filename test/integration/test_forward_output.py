"""The forward output (Fluentd's out_forward): tiers of aggregators.

- weir -> weir: two primaries by weight and a standby, acks, shared key; a
  primary killed (SIGKILL) mid-stream: every record the first tier acked
  reaches a receiver (the unacked sends go to the others);
- weir -> a real Fluentd 1.16 in_forward: acks with gzip compression, and
  TLS with the shared key (and user auth) on top."""
import glob
import json
import os
import signal
import time

import pytest

import fwd
from conftest import Weir, free_port, poll
from peer_fluentd import fluentd_or_skip
from pki import make_pki

KEY = "tier-s3cret"
NO_FLUENT_LOG = "<label @FLUENT_LOG>\n  <match **>\n    @type null\n  </match>\n</label>\n"
FAST_BUFFER = """  <buffer>
    flush_mode immediate
    retry_type periodic
    retry_wait 0.2s
  </buffer>
"""


def receiver_config(port, path, security=True):
    sec = (f"  <security>\n    self_hostname receiver-{port}\n    shared_key {KEY}\n  </security>\n"
           if security else "")
    return (f"<source>\n  @type forward\n  port {port}\n  bind 127.0.0.1\n{sec}</source>\n"
            f"<match **>\n  @type file\n  path {path}\n  append true\n  <format>\n    @type json\n  </format>\n"
            f"</match>\n")


def sender_config(port, servers, extra="", buffer=FAST_BUFFER):
    return (f"<source>\n  @type forward\n  port {port}\n  bind 127.0.0.1\n</source>\n"
            f"<match **>\n  @type forward\n  require_ack_response true\n  ack_response_timeout 5s\n"
            f"  connect_timeout 2s\n  recover_wait 30s\n{extra}{servers}{buffer}</match>\n")


def server(port, extra=""):
    return f"  <server>\n    host 127.0.0.1\n    port {port}\n{extra}  </server>\n"


def read_ids(pattern):
    ids = []
    for p in glob.glob(pattern):
        if os.path.isfile(p) and p.endswith(".log"):
            with open(p) as f:
                ids += [json.loads(l)["id"] for l in f if l.strip()]
    return ids


def send_batches(conn, tag, start, n, per=50):
    for b in range(start, start + n, per):
        chunk = f"c{b}"
        entries = [fwd.entry(fwd.et(1700000000 + i), {"id": i, "msg": "x" * 20}) for i in range(b, b + per)]
        conn.send(fwd.packed_forward(tag, entries, {"chunk": chunk}))
        conn.expect_ack(chunk, timeout=30)


def discovered_servers(ports, tmp_path):
    """The three servers of the test below through Fluentd's <service_discovery>: the first @type static,
    the second in a YAML file (block mapping, comments), the standby in a JSON file."""
    (tmp_path / "sd.yaml").write_text(f"# the second primary\n---\n- host: '127.0.0.1'\n  port: {ports[1]}\n"
                                      f"  weight: 20   # a third of the first\n  unknown_key: ignored\n")
    (tmp_path / "standby.json").write_text(json.dumps([{"host": "127.0.0.1", "port": ports[2], "standby": True,
                                                        "name": None}]))
    return (f"  <service_discovery>\n    @type static\n    <service>\n      host 127.0.0.1\n      port {ports[0]}\n"
            f"      weight 60\n      name one\n    </service>\n  </service_discovery>\n"
            f"  <service_discovery>\n    @type file\n    path {tmp_path / 'sd.yaml'}\n  </service_discovery>\n"
            f"  <service_discovery>\n    @type file\n    path {tmp_path / 'standby.json'}\n"
            f"  </service_discovery>\n")


@pytest.mark.parametrize("listed", ["server", "service_discovery"])
def test_weir_to_weir_weights_standby_and_failover(weir, tmp_path, listed):
    ports = [free_port() for _ in range(3)]
    recv = []
    for i, p in enumerate(ports):
        w = Weir(tmp_path / f"r{i}", p)
        os.makedirs(w.tmp, exist_ok=True)
        w.start(receiver_config(p, tmp_path / f"r{i}" / "out"), port=p)
        recv.append(w)
    try:
        servers = (server(ports[0], "    weight 60\n    name one\n") + server(ports[1], "    weight 20\n") +
                   server(ports[2], "    standby true\n")) if listed == "server" else \
            discovered_servers(ports, tmp_path)
        sec = f"  <security>\n    self_hostname sender\n    shared_key {KEY}\n  </security>\n"
        weir.start(sender_config(weir.port, servers, sec))
        with weir.conn() as c:
            send_batches(c, "app.a", 0, 2000)
            ids0 = lambda: read_ids(str(tmp_path / "r0" / "out*"))
            ids1 = lambda: read_ids(str(tmp_path / "r1" / "out*"))
            poll(lambda: len(ids0()) + len(ids1()) >= 2000, timeout=20, what="the first 2000 records")
            # weights 60:20 between the primaries; the standby idle
            assert len(read_ids(str(tmp_path / "r2" / "out*"))) == 0
            assert len(ids0()) > len(ids1()) > 0, (len(ids0()), len(ids1()))
            # kill the heavier primary mid-stream
            recv[0].proc.send_signal(signal.SIGKILL)
            recv[0].proc.wait()
            recv[0].proc = None
            send_batches(c, "app.a", 2000, 2000)
            # then the other primary: the standby takes over
            recv[1].proc.send_signal(signal.SIGKILL)
            recv[1].proc.wait()
            recv[1].proc = None
            send_batches(c, "app.a", 4000, 1000)
        want = set(range(5000))
        got = lambda: set(read_ids(str(tmp_path / "r*" / "out*")))
        poll(lambda: want <= got(), timeout=30, what="every record at a receiver")
        assert len(read_ids(str(tmp_path / "r2" / "out*"))) >= 1000
        weir.stop_ok()
        weir.allow_errors = True
    finally:
        for w in recv:
            if w.proc is not None:
                w.stop_ok()


@pytest.fixture
def fluentd(tmp_path):
    fd = fluentd_or_skip(tmp_path)
    yield fd
    fd.kill_all()


def fluentd_receiver(port, path, extra=""):
    return (f"<source>\n  @type forward\n  port {port}\n  bind 127.0.0.1\n{extra}</source>\n{NO_FLUENT_LOG}"
            f"<match **>\n  @type file\n  path {path}\n  append true\n  <format>\n    @type json\n  </format>\n"
            f"  <inject>\n    tag_key _tag\n  </inject>\n  <buffer>\n    flush_mode immediate\n  </buffer>\n</match>\n")


@pytest.mark.parametrize("case", ["ack_gzip", "tls_shared_key_user"])
def test_weir_to_fluentd(weir, fluentd, tmp_path, case):
    fport = free_port()
    fextra, wextra, host = "", "  compress gzip\n", "127.0.0.1"
    if case.startswith("tls"):
        d = tmp_path / "pki"
        d.mkdir()
        pki = make_pki(d)
        fextra = (f"  <transport tls>\n    cert_path {pki['server.pem']}\n    private_key_path {pki['server.key']}\n"
                  f"  </transport>\n  <security>\n    self_hostname fluentd-agg\n    shared_key {KEY}\n"
                  f"    user_auth true\n    <user>\n      username tier1\n      password p4ss\n    </user>\n"
                  f"  </security>\n")
        wextra = (f"  transport tls\n  tls_cert_path {pki['ca.pem']}\n  tls_verify_hostname true\n"
                  f"  <security>\n    self_hostname weir-tier1\n    shared_key {KEY}\n    username tier1\n"
                  f"    password p4ss\n  </security>\n")
        host = "localhost"
    fluentd.start(fluentd_receiver(fport, tmp_path / "fd" / "out", fextra))
    servers = f"  <server>\n    host {host}\n    port {fport}\n  </server>\n"
    weir.start(sender_config(weir.port, servers, wextra))
    with weir.conn() as c:
        send_batches(c, "app.t", 0, 500)
        send_batches(c, "other.t", 500, 500)
    want = set(range(1000))
    poll(lambda: want <= set(read_ids(str(tmp_path / "fd" / "out*"))), timeout=30,
         what="every record in Fluentd's file")
    recs = []
    for p in glob.glob(str(tmp_path / "fd" / "out*")):
        if p.endswith(".log"):
            recs += [json.loads(l) for l in open(p) if l.strip()]
    assert {r["_tag"] for r in recs} == {"app.t", "other.t"}
    assert all(r["msg"] == "x" * 20 for r in recs)
    weir.stop_ok()
    fluentd.stop_ok()
    assert not fluentd.errors(), fluentd.errors()


def test_service_discovery_files_read_as_fluentd_reads_them(fluentd, tmp_path):
    """The same <service_discovery> files (YAML with comments, a flow mapping, '' quoting, YAML 1.1 `yes`,
    unknown keys; JSON with null) give weir the same servers as Fluentd: both --dry-run, Fluentd's
    "adding forwarding server" lines against weir's server list (name, host, port, weight). Fluentd resolves
    the hosts at --dry-run: names that resolve here."""
    import re
    import subprocess
    from conftest import WEIR_BIN
    (tmp_path / "sd.yaml").write_text(
        "# servers\n---\n- host: 127.0.0.1\n  port: 24225\n  weight: 10   # a comment\n"
        "- {host: \"10.0.0.2\", port: 24226, standby: yes, name: 'b''s'}\n-\n  host: localhost\n  port: 24227\n"
        "  extra: ignored\n")
    (tmp_path / "sd.json").write_text('[{"host": "127.0.0.1", "port": 24228, "weight": 5},'
                                      ' {"host": "localhost", "port": 1, "standby": true, "name": null}]')
    conf = ("<match **>\n  @type forward\n" +
            "".join(f"  <service_discovery>\n    @type file\n    path {tmp_path / f}\n  </service_discovery>\n"
                    for f in ("sd.yaml", "sd.json")) +
            "  <service_discovery>\n    @type static\n    <service>\n      host localhost\n      port 24229\n"
            "      weight 7\n    </service>\n  </service_discovery>\n</match>\n")
    rc, out = fluentd.dry_run(conf)
    assert rc == 0, out
    theirs = [(m[0], m[1], int(m[2]), int(m[3])) for m in
              re.findall(r"adding forwarding server '(.*?)' host=\"(.*?)\" port=(\d+) weight=(\d+)", out)]
    (tmp_path / "weir.conf").write_text(conf)
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", str(tmp_path / "weir.conf")], capture_output=True,
                       timeout=15, text=True)
    assert p.returncode == 0, p.stderr
    listed = next(json.loads(l)["msg"] for l in p.stderr.splitlines() if "server(s):" in l)
    ours = [(m[0], m[1], int(m[2]), int(m[3])) for m in
            re.findall(r"'(.*?)' (\S+):(\d+) weight (\d+)", listed.split(": ", 1)[1].split("server(s): ", 1)[1])]
    assert len(theirs) == 6 and sorted(ours) == sorted(theirs), (ours, theirs)
    assert ("b's", "10.0.0.2", 24226, 60) in ours and "'b's' 10.0.0.2:24226 weight 60 standby" in listed
