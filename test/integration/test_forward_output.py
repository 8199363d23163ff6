"""The forward output (Fluentd's out_forward): tiers of aggregators.

- weir -> weir: two primaries by weight and a standby, acks, shared key; a
  primary killed (SIGKILL) mid-stream: every record the first tier acked
  reaches a receiver (the unacked sends go to the others);
- weir -> a real Fluentd 1.16 in_forward: acks with gzip compression, and
  TLS with the shared key (and user auth) on top;
- <service_discovery> @type srv (Fluentd's sd_srv) against a DNS server of
  the test: the receivers its SRV records list, records changed while weir
  runs, empty and failed answers; --dry-run sends no query."""
import glob
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import pytest

import fwd
import helpers
from conftest import WEIR_BIN, Weir, free_port, poll
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


def weir_dry_run(tmp_path, conf):
    (tmp_path / "weir.conf").write_text(conf)
    return subprocess.run([WEIR_BIN, "--dry-run", "-c", str(tmp_path / "weir.conf")], capture_output=True,
                          timeout=15, text=True, stdin=subprocess.DEVNULL)


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


@pytest.fixture
def receivers(tmp_path):
    """start(n, security=True): n weir receivers (forward in -> JSON lines in tmp_path/r<i>/out*), stopped
    after the test (those whose proc the test has not set to None); returns their ports and Weirs."""
    recv = []

    def start(n, security=True):
        ports = [free_port() for _ in range(n)]
        for i, p in enumerate(ports):
            w = Weir(tmp_path / f"r{i}", p)
            w.start(receiver_config(p, tmp_path / f"r{i}" / "out", security), port=p)
            recv.append(w)
        return ports, recv
    yield start
    for w in recv:
        if w.proc is not None:
            w.stop_ok()


@pytest.mark.parametrize("listed", ["server", "service_discovery"])
def test_weir_to_weir_weights_standby_and_failover(weir, receivers, tmp_path, listed):
    ports, recv = receivers(3)
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
    p = weir_dry_run(tmp_path, conf)
    assert p.returncode == 0, p.stderr
    listed = next(json.loads(l)["msg"] for l in p.stderr.splitlines() if "server(s):" in l)
    ours = [(m[0], m[1], int(m[2]), int(m[3])) for m in
            re.findall(r"'(.*?)' (\S+):(\d+) weight (\d+)", listed.split(": ", 1)[1].split("server(s): ", 1)[1])]
    assert len(theirs) == 6 and sorted(ours) == sorted(theirs), (ours, theirs)
    assert ("b's", "10.0.0.2", 24226, 60) in ours and "'b's' 10.0.0.2:24226 weight 60 standby" in listed


# ------------------------------------------------------------- @type srv --

class DnsServer:
    """A DNS server on 127.0.0.1 (UDP, a thread): SRV and A records from `srv` and `a` (the test changes
    them while it runs); mode "ok", "empty" (NOERROR, no record) or "servfail"; counts the queries."""

    def __init__(self):
        self.srv = {}  # name -> [(priority, weight, port, target)]
        self.a = {}    # name -> "127.0.0.1"
        self.mode = "ok"
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @staticmethod
    def name_bytes(name):
        return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".") if l) + b"\0"

    def answer(self, q):
        qid, _flags, qd = struct.unpack(">HHH", q[:6])
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode())
            i += 1 + q[i]
        qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
        question = q[12:i + 5]
        name = ".".join(labels).lower()
        rrs = []
        if self.mode == "ok" and qtype == 33:
            for prio, weight, port, target in self.srv.get(name, []):
                rrs.append((33, struct.pack(">HHH", prio, weight, port) + self.name_bytes(target)))
        elif self.mode == "ok" and qtype == 1 and name in self.a:
            rrs.append((1, socket.inet_aton(self.a[name])))
        rcode = 2 if self.mode == "servfail" else 0
        out = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, len(rrs), 0, 0) + question
        for t, rdata in rrs:
            out += struct.pack(">HHHIH", 0xC00C, t, 1, 5, len(rdata)) + rdata
        return out

    def run(self):
        while not self.stopping:
            try:
                q, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            self.queries += 1
            self.sock.sendto(self.answer(q), peer)

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def dns():
    d = DnsServer()
    yield d
    d.stop()


SRV_NAME = "_fluentd._tcp.weir.test"


def srv_discovery(dns_port, extra=""):
    return (f"  <service_discovery>\n    @type srv\n    service fluentd\n    hostname weir.test\n"
            f"    dns_server_host 127.0.0.1:{dns_port}\n    interval 1\n{extra}  </service_discovery>\n")


def test_srv_records_pick_the_receivers_and_follow_their_changes(weir, receivers, dns, tmp_path):
    """Two receivers found through SRV records (targets whose A records are 127.0.0.1, the ports in the
    records): every record arrives once, both get some. Then the records change (r0 out, r2 in): after
    the refresh the new records go to r1 and r2 only, none lost; an empty answer and a failed one (SERVFAIL)
    keep that list, with an error line."""
    ports, _ = receivers(3, security=False)
    for i in range(3):
        dns.a[f"r{i}.weir.test"] = "127.0.0.1"
    dns.srv[SRV_NAME] = [(10, 50, ports[0], "r0.weir.test"), (10, 50, ports[1], "r1.weir.test")]
    ids = lambda i: read_ids(str(tmp_path / f"r{i}" / "out*"))
    mport = free_port()
    weir.start(sender_config(weir.port, srv_discovery(dns.port), "  @id fwd\n") +
               helpers.monitor_source(mport, "prometheus"))
    weir.wait_log(lambda l: "from the SRV records of " + SRV_NAME in l.get("msg", ""),
                  what="the servers found at start")
    found = next(l["msg"] for l in weir.stderr_lines() if "from the SRV records" in l.get("msg", ""))
    assert f"'r0.weir.test' 127.0.0.1:{ports[0]} weight 50" in found, found
    assert f"'r1.weir.test' 127.0.0.1:{ports[1]} weight 50" in found, found
    with weir.conn() as c:
        send_batches(c, "app.s", 0, 1000)
        poll(lambda: len(ids(0)) + len(ids(1)) >= 1000, timeout=20, what="the first 1000 records")
        assert sorted(ids(0) + ids(1)) == list(range(1000))
        assert ids(0) and ids(1) and not ids(2), (len(ids(0)), len(ids(1)))

        dns.srv[SRV_NAME] = [(10, 50, ports[1], "r1.weir.test"), (20, 50, ports[2], "r2.weir.test")]
        weir.wait_log(lambda l: "Service in: name=r2.weir.test" in l.get("msg", ""), what="r2 in")
        weir.wait_log(lambda l: "Service out: name=r0.weir.test" in l.get("msg", ""), what="r0 out")
        n0 = len(ids(0))
        send_batches(c, "app.s", 1000, 1000)
        poll(lambda: len(ids(0)) + len(ids(1)) + len(ids(2)) >= 2000, timeout=20, what="2000 records")
        assert len(ids(0)) == n0 and ids(2)
        assert any(i >= 1000 for i in ids(1))
        assert sorted(ids(0) + ids(1) + ids(2)) == list(range(2000))

        for mode in ("empty", "servfail"):
            dns.mode = mode
            q = dns.queries
            poll(lambda: dns.queries >= q + 2, timeout=10, what=f"queries answered {mode}")
            send_batches(c, "app.s", 2000 if mode == "empty" else 2500, 500)
        poll(lambda: len(ids(0)) + len(ids(1)) + len(ids(2)) >= 3000, timeout=20, what="3000 records")
        assert len(ids(0)) == n0
        assert sorted(ids(0) + ids(1) + ids(2)) == list(range(3000))
    errors = [l["msg"] for l in weir.log_lines("error")]
    # one line for both (at most one a minute): "no SRV record for ..." (or an A query answered empty, when
    # the change caught a refresh between its queries)
    assert len([m for m in errors if "keeping the current servers" in m]) == 1, errors
    changes = [l["msg"] for l in weir.stderr_lines() if "Service " in l.get("msg", "")]
    assert len(changes) == 2, changes  # an empty or failed answer changes nothing
    # /metrics: the current servers only; the failed refreshes counted
    _, text = helpers.get(mport, "/metrics")
    assert helpers.metric(text, "weir_forward_output_discovery_failures_total", output="fwd") >= 2
    for i, present in ((0, False), (1, True), (2, True)):
        assert (f'server="r{i}.weir.test"' in text) == present, text
    weir.stop_ok()
    weir.allow_errors = True


def test_srv_dry_run_sends_no_query(dns, tmp_path):
    conf = f"<match **>\n  @type forward\n{srv_discovery(dns.port)}</match>\n"
    p = weir_dry_run(tmp_path, conf)
    assert p.returncode == 0, p.stderr
    time.sleep(0.3)
    assert dns.queries == 0


@pytest.mark.parametrize("missing", ["service", "hostname"])
def test_srv_required_parameters(tmp_path, missing):
    body = "    @type srv\n    service fluentd\n    hostname weir.test\n".replace(f"    {missing} ", "    # ")
    conf = f"<match **>\n  @type forward\n  <service_discovery>\n{body}  </service_discovery>\n</match>\n"
    p = weir_dry_run(tmp_path, conf)
    assert p.returncode == 1, p.stderr
    assert f"weir.conf:3: missing required parameter '{missing}'" in p.stderr, p.stderr
