"""Fluentd as the sender: a real Fluentd (1.16.11, ../shared/peers) receives
records from the test on its `in_forward` and sends them to weir with
`out_forward`, in each of the ways a central Fluentd's clients (or a Fluentd
tier in front of weir) are configured: out_forward's defaults (flushed at
shutdown), `compress gzip` with `require_ack_response`, `keepalive` with
acks, the `<security>` shared key (with `self_hostname`, and with a user and
password), TLS with the CA in `tls_cert_path` and the host name verified
(and mTLS), the refusals of a wrong key, an untrusted certificate and one for
another name; and a file-buffer chunk of Fluentd's default size
(`chunk_limit_size 256m`) filled while weir is down, then delivered whole
in one request when weir starts.

Every record weir writes is checked exactly against what the test sent to
Fluentd: the count, the tag, the record (UTF-8, escapes, nesting, 64-bit
integers, floats, empty keys and values) and the event time to the
nanosecond (Fluentd keeps EventTime end to end; an integer time stays a
whole second).

Fluentd is found at $REPO/../shared/peers/fluentd/fluentd, else $FLUENTD,
else `fluentd` on PATH; without it the tests are skipped.
"""
import glob
import json
import os
import shutil
import struct

import pytest

import fwd
from conftest import free_port, poll
from helpers import get, metric
from peer_fluentd import fluentd_or_skip
from pki import make_pki

# weir injects the event time (exact to the nanosecond, a string) and the tag
INJECT = """    time_key event_time
    time_type string
    time_format %s.%N
    tag_key tag"""

SELF = "weir.example"          # weir's self_hostname
FD_HOST = "fluentd-node-1"     # Fluentd's self_hostname (must differ)
KEY = "fd-shared-key-0123456789"
BASE = 1766025768              # 2025-12-18T02:42:48Z

# Fluentd's own log events (tag fluent.*) go nowhere: only the test's
# records reach weir
NO_FLUENT_LOG = """<label @FLUENT_LOG>
  <match **>
    @type null
  </match>
</label>
"""

# flush each tag's chunk 0.2 s after its first record (out_forward's
# default is every 60 s, or at shutdown), the enqueue and flush threads
# looking every 0.1 s (default 1 s: one chunk a second)
FAST = """  <buffer tag>
    flush_mode interval
    flush_interval 0.2s
    flush_thread_interval 0.1s
    flush_thread_burst_interval 0.01s
  </buffer>
"""


@pytest.fixture
def fluentd(tmp_path):
    fd = fluentd_or_skip(tmp_path)
    yield fd
    fd.kill_all()


# ------------------------------------------------------------------ config --

def fluentd_config(in_port, weir_port, out="", server="", buffer=FAST, host="127.0.0.1"):
    """in_forward on in_port (fed by the test) -> out_forward to weir: `out`
    (lines of the <match>), `server` (lines of its <server>), `buffer` (its
    <buffer> section, "" for out_forward's default)."""
    return (f"<source>\n  @type forward\n  port {in_port}\n  bind 127.0.0.1\n</source>\n\n"
            f"{NO_FLUENT_LOG}\n"
            f"<match **>\n  @type forward\n{out}"
            f"  <server>\n    host {host}\n    port {weir_port}\n{server}  </server>\n"
            f"{buffer}</match>\n")


def weir_security(user=None, key=KEY):
    s = f"  <security>\n    self_hostname {SELF}\n    shared_key {key}\n"
    if user:
        s += f"    user_auth true\n    <user>\n      username {user[0]}\n      password {user[1]}\n    </user>\n"
    return s + "  </security>\n"


def weir_tls(pki, mtls=False):
    t = f"  <transport tls>\n    cert_path {pki['server.pem']}\n    private_key_path {pki['server.key']}\n"
    if mtls:
        t += f"    ca_path {pki['ca.pem']}\n    client_cert_auth true\n"
    return t + "  </transport>\n"


def fd_security(key=KEY):
    return f"  <security>\n    self_hostname {FD_HOST}\n    shared_key {key}\n  </security>\n"


def fd_tls(pki, client_cert=False):
    """out_forward lines: TLS, weir's CA in tls_cert_path, the host name
    verified (the server certificate is for DNS:localhost, IP:127.0.0.1)."""
    o = f"  transport tls\n  tls_cert_path {pki['ca.pem']}\n  tls_verify_hostname true\n"
    if client_cert:
        o += (f"  tls_client_cert_path {pki['client.pem']}\n"
              f"  tls_client_private_key_path {pki['client.key']}\n")
    return o


def start_weir(weir, source_extra="", monitor=None):
    weir.start(weir.config(inject=INJECT, source_extra=source_extra, monitor=monitor,
                           system="  log_level debug"))


# ----------------------------------------------------------------- records --

RECORDS = [
    lambda i: {"msg": f"plain text line {i}", "level": "info"},
    lambda i: {"msg": f"h\u00e9llo w\u00f6rld \u2713 \U0001f600 \u65e5\u672c {i}",
               "nested": {"a": [1, 2.5, None, True, False, "s"], "b": {"c": {"d": "deep"}}}},
    lambda i: {"msg": "quotes \" backslash \\ tab \t newline \n cr \r nul-free control \x01\x1f del \x7f",
               "neg": -i - 1, "i64max": 2 ** 63 - 1, "i64min": -2 ** 63, "u64max": 2 ** 64 - 1,
               "f": 0.1, "fneg": -1.5e-300, "fbig": 1.7976931348623157e308},
    lambda i: {"empty": "", "emap": {}, "earr": [], "null": None, "key.with.dots": i, "": "empty key",
               "k\u00e9y": "\u00fc"},
    lambda i: {"log": f"{i} " + "0123456789abcdef" * 200},
]
NSECS = [0, 1, 123456789, 999999999, 500000000, 7000, 982123456]
MODES = ["forward", "message", "packed", "compressed"]


class Events:
    """What the test sends to Fluentd and what weir must write of it: each
    record has a unique `seq`; its tag, event time and record are remembered."""

    def __init__(self, tags):
        self.tags = tags
        self.expected = {}  # seq -> (tag, "sec.nsec", record)
        self.n = 0
        self.requests = 0

    def batch(self, count):
        """`count` more events as (tag, [(wire time, record)]) groups of up to 7."""
        groups = []
        for _ in range(count):
            i = self.n
            self.n += 1
            tag = self.tags[i % len(self.tags)]
            sec = BASE + i
            # every 5th event has a plain integer time (whole seconds)
            if i % 5 == 2:
                t, nsec = sec, 0
            else:
                nsec = NSECS[i % len(NSECS)]
                t = fwd.et(sec, nsec)
            rec = {"seq": i, **RECORDS[i % len(RECORDS)](i)}
            self.expected[i] = (tag, f"{sec}.{nsec:09d}", rec)
            if groups and groups[-1][0] == tag and len(groups[-1][1]) < 7:
                groups[-1][1].append((t, rec))
            else:
                groups.append((tag, [(t, rec)]))
        return groups

    def send(self, port, count):
        """Send `count` events to Fluentd's in_forward, in every event mode,
        each request acked (Fluentd acks once the records are in its buffer)."""
        with fwd.FwdConn(port, timeout=20) as c:
            for tag, entries in self.batch(count):
                mode = MODES[self.requests % len(MODES)]
                chunk = f"req-{self.requests}"
                self.requests += 1
                opts = {"chunk": chunk}
                if mode == "message":
                    for k, (t, rec) in enumerate(entries):
                        ck = f"{chunk}-{k}"
                        c.send(fwd.message(tag, t, rec, {"chunk": ck}))
                        c.expect_ack(ck)
                    continue
                es = [fwd.entry(t, rec) for t, rec in entries]
                if mode == "forward":
                    c.send(fwd.forward(tag, es, opts))
                elif mode == "packed":
                    c.send(fwd.packed_forward(tag, es, opts))
                else:
                    c.send(fwd.compressed_packed_forward(tag, es, opts))
                c.expect_ack(chunk)

    def json_bytes(self):
        return sum(len(json.dumps(rec, ensure_ascii=False).encode()) for _, _, rec in self.expected.values())


def check_records(records, events):
    """Exactly the events sent, each once (identified by `seq`)."""
    seen = set()
    for k, r in enumerate(records):
        r = dict(r)
        tag, t_ = r.pop("tag", None), r.pop("event_time", None)
        seq = r.get("seq")
        assert seq in events.expected, f"record {k}: unexpected record {r!r}"
        assert seq not in seen, f"record {k}: duplicate of seq {seq}"
        seen.add(seq)
        etag, et_, erec = events.expected[seq]
        assert tag == etag, f"seq {seq}: tag {tag!r} != {etag!r}"
        assert r == erec, f"seq {seq}: record {r!r} != expected {erec!r}"
        assert t_ == et_, f"seq {seq}: event time {t_!r} != {et_!r}"
    missing = sorted(set(events.expected) - seen)
    assert not missing and len(records) == len(events.expected), (
        f"{len(records)} records out, {len(events.expected)} sent; missing seq: {missing[:20]}")


def handshake_lines(weir):
    return [l["msg"] for l in weir.stderr_lines() if "handshake" in l.get("msg", "")]


TAGS = ["app.web", "app.db", "kube.var.log.containers.web-0_default_web-1a2b.log"]


def run_stream(weir, fluentd, out="", server="", buffer=FAST, host="127.0.0.1", tags=TAGS, batches=(60, 45)):
    """Fluentd started on in_forward -> out_forward(weir); each batch of
    events sent and (unless out_forward flushes only at shutdown) seen in
    weir before the next; Fluentd stopped (it flushes what is left) without
    an error in its log. Returns the Events."""
    in_port = free_port()
    fluentd.start(fluentd_config(in_port, weir.port, out, server, buffer, host))
    ev = Events(tags)
    for n in batches:
        ev.send(in_port, n)
        if buffer:
            weir.wait_records(ev.n, timeout=20)
    fluentd.stop_ok()
    assert not fluentd.errors(), f"Fluentd logged errors: {fluentd.errors()}"
    return ev


def finish(weir, ev):
    weir.stop_ok()
    check_records(weir.read_records(), ev)


# -------------------------------------------------------------------- tests --

@pytest.mark.parametrize("mode", ["defaults", "gzip+ack", "keepalive+ack"])
def test_fluentd_forward_modes(weir, fluentd, mode):
    """out_forward's defaults (no <buffer>: a memory buffer flushed every 60 s
    or at shutdown; PackedForward, no ack, a new connection per chunk);
    `compress gzip` + `require_ack_response` (CompressedPackedForward, every
    chunk acked); `keepalive true` + acks (one tag's three chunks, each
    flushed after the previous one was acked, on one connection;
    `heartbeat_type none` there, as out_forward's heartbeat is a TCP connect
    every second)."""
    out, buffer = {
        "defaults": ("", ""),
        "gzip+ack": ("  compress gzip\n  require_ack_response true\n", FAST),
        # no heartbeat connections (one a second by default), so that the
        # connections weir counts are the ones that carry chunks
        "keepalive+ack": ("  keepalive true\n  require_ack_response true\n  heartbeat_type none\n", FAST),
    }[mode]
    mon = free_port()
    start_weir(weir, monitor=mon)
    if mode == "keepalive+ack":
        # one tag: one chunk at a time, each acked before the next is flushed
        ev = run_stream(weir, fluentd, out=out, buffer=buffer, tags=TAGS[:1], batches=(40, 30, 20))
    else:
        ev = run_stream(weir, fluentd, out=out, buffer=buffer)
    _, text = get(mon, "/metrics")
    m = lambda name: metric(text, name, input="forward")  # noqa: E731
    assert m("weir_input_records_total") == ev.n
    requests, acks = m("weir_input_requests_total"), m("weir_input_acks_total")
    # (less the one of the test's check that weir listens)
    conns = m("weir_input_connections_total") - 1
    tags = len(ev.tags)
    if mode == "defaults":
        # one chunk per tag, all flushed at shutdown
        assert requests == tags, f"{requests} requests for {tags} tags"
        assert acks == 0, f"{acks} acks without require_ack_response"
    else:
        # each batch was in weir before the next was sent: a chunk per tag each
        assert requests == tags * 2 or (mode == "keepalive+ack" and requests == 3), f"{requests} requests"
        assert acks == requests, f"{acks} acks for {requests} requests"
    if mode == "keepalive+ack":
        assert conns == 1, f"{conns} connections for {requests} requests with keepalive"
    else:
        # a connection per chunk (and one a second for out_forward's heartbeat)
        assert conns >= requests, f"{conns} connections for {requests} requests without keepalive"
    # gzip is proven by the bytes on the wire against the records' JSON
    raw, wire = ev.json_bytes(), m("weir_input_bytes_total")
    if "gzip" in mode:
        assert wire < raw / 2, f"{wire} bytes read for {raw} bytes of JSON: not compressed?"
    else:
        assert wire > raw * 0.75, f"{wire} bytes read for {raw} bytes of JSON: compressed?"
    finish(weir, ev)


@pytest.mark.parametrize("user", [None, ("fluentd", "p4ss w0rd")], ids=["shared_key", "user_auth"])
def test_fluentd_shared_key(weir, fluentd, user):
    """out_forward's <security> (self_hostname, shared_key) against weir's,
    with acks; and with a username and password in the <server>."""
    start_weir(weir, weir_security(user))
    server = f"    username {user[0]}\n    password {user[1]}\n" if user else ""
    ev = run_stream(weir, fluentd, out=fd_security() + "  require_ack_response true\n", server=server)
    ok = [l for l in handshake_lines(weir) if l.startswith("handshake ok")]
    want = f"(hostname '{FD_HOST}', user '{user[0] if user else ''}'"
    assert ok and all(want in l for l in ok), f"no {want} in {ok}"
    finish(weir, ev)


@pytest.fixture
def pki(tmp_path):
    d = tmp_path / "pki"
    d.mkdir()
    return make_pki(d)


@pytest.mark.parametrize("case", ["tls", "mtls+shared_key"])
def test_fluentd_tls(weir, fluentd, pki, case):
    """`transport tls` with weir's CA in tls_cert_path and tls_verify_hostname
    (out_forward connects to `localhost`, a name in weir's certificate); and
    mTLS (tls_client_cert_path) with the shared key on top."""
    mtls = case.startswith("mtls")
    start_weir(weir, weir_tls(pki, mtls) + (weir_security() if mtls else ""))
    out = fd_tls(pki, client_cert=mtls) + "  require_ack_response true\n" + (fd_security() if mtls else "")
    ev = run_stream(weir, fluentd, out=out, host="localhost")
    done = [l["msg"] for l in weir.stderr_lines() if l.get("msg", "").startswith("TLS handshake with")]
    assert done and all(" done: TLSv1." in l for l in done), done
    if mtls:
        assert all(l.endswith(", client CN=weir-client") for l in done), done
        assert any(l.startswith("handshake ok") and f"hostname '{FD_HOST}'" in l
                   for l in handshake_lines(weir)), handshake_lines(weir)
    else:
        assert not any("client CN=" in l for l in done), done
    finish(weir, ev)


def other_name_cert(pki, d):
    """A server certificate from the same (trusted) CA for another name only."""
    import subprocess
    (d / "other.ext").write_text("subjectAltName=DNS:aggregator.example\nextendedKeyUsage=serverAuth\n")
    for args in (["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", "other-name.key", "-out", "other-name.csr", "-subj", "/CN=aggregator.example"],
                 ["x509", "-req", "-in", "other-name.csr", "-CA", pki["ca.pem"], "-CAkey", pki["ca.key"],
                  "-CAcreateserial", "-out", "other-name.pem", "-days", "2", "-extfile", "other.ext"]):
        p = subprocess.run(["openssl", *args], cwd=d, capture_output=True)
        assert p.returncode == 0, p.stderr.decode()
    return {"server.pem": str(d / "other-name.pem"), "server.key": str(d / "other-name.key")}


@pytest.mark.parametrize("case", ["wrong_key", "untrusted_server", "wrong_server_name"])
def test_fluentd_refused(weir, fluentd, pki, tmp_path, case):
    """What must not get through does not: a wrong shared key (weir refuses),
    a server certificate from a CA Fluentd does not trust, and one from the
    trusted CA for another name (Fluentd refuses: the TLS cases above did
    verify weir's certificate and name). Nothing is stored; each side says why."""
    out = "  require_ack_response true\n"
    if case == "wrong_key":
        start_weir(weir, weir_security())
        out += fd_security("not-" + KEY)
        weir_says, fd_says = "shared key digest mismatch", "shared_key mismatch"
    elif case == "untrusted_server":
        other = tmp_path / "other-pki"
        other.mkdir()
        start_weir(weir, weir_tls(make_pki(other, ca_cn="another CA")))
        out += fd_tls(pki)
        weir_says, fd_says = "TLS handshake with", "certificate verify failed"
    else:
        start_weir(weir, weir_tls(other_name_cert(pki, tmp_path / "pki")))
        out += fd_tls(pki)
        weir_says, fd_says = "TLS handshake with", "certificate verify failed (hostname mismatch)"
    in_port = free_port()
    fluentd.start(fluentd_config(in_port, weir.port, out, host="localhost"))
    Events(["app.web"]).send(in_port, 5)
    weir.wait_log(lambda l: l.get("level") == "warn" and weir_says in l.get("msg", ""), timeout=20,
                  what=f"weir's warning '{weir_says}'")
    fluentd.wait_log(fd_says, 20, what=f"Fluentd's '{fd_says}'")
    fluentd.kill()  # it would retry at shutdown too
    weir.stop_ok()
    assert weir.read_records() == []


# ------------------------------------------------- a 256m file-buffer chunk --

ENTRY = 256                  # bytes of one event in Fluentd's chunk
MIB = 1 << 20
PER_MIB = MIB // ENTRY       # events per MiB
CHUNK_LIMIT = 256 * MIB      # chunk_limit_size 256m, Fluentd's default for file buffers
BIG_TAG = "bulk.replay"


def big_time(i):
    return BASE + i // 1000, (i * 7919) % 1_000_000_000


def big_msg(i, n):
    return f"m{i:010d}" + "x" * (n - 11)


def big_entry(i):
    """Event i exactly as Fluentd's chunk stores it, ENTRY bytes:
    [EventTime, {"seq": uint32, "msg": str16}] (msgpack, fixext8 time)."""
    sec, nsec = big_time(i)
    return (b"\x92\xd7\x00" + struct.pack(">II", sec, nsec) + b"\x82\xa3seq\xce" + struct.pack(">I", i) +
            b"\xa3msg\xda" + struct.pack(">H", BIG_MSG_LEN) + big_msg(i, BIG_MSG_LEN).encode())


BIG_MSG_LEN = ENTRY - 11 - 15 - 2  # less the time, "seq" and its uint32, "msg" and its str16 header
assert len(big_entry(0)) == ENTRY


def big_fluentd_config(in_port, weir_port, buf_dir):
    # nothing flushes on time: the chunk is queued when full (95% of
    # chunk_limit_size), its flush fails while weir is down and is retried
    # every 1-2 s; what is left in the next chunk is flushed at shutdown
    buffer = f"""  <buffer tag>
    @type file
    path {buf_dir}
    chunk_limit_size 256m
    flush_mode interval
    flush_interval 1h
    flush_at_shutdown true
    retry_wait 1s
    retry_max_interval 2s
  </buffer>
"""
    return fluentd_config(in_port, weir_port, "  require_ack_response true\n", buffer=buffer)


def feed_big(port, plan):
    """Send events to Fluentd as PackedForward requests of plan's
    [(requests, events each), ...] (Fluentd appends them to its chunk as
    they are); returns the number sent."""
    n = 0
    with fwd.FwdConn(port, timeout=60) as c:
        for count, per in plan:
            for _ in range(count):
                blob = b"".join(big_entry(n + k) for k in range(per))
                chunk = f"big-{n}"
                c.send(fwd.packed_forward(BIG_TAG, None, {"chunk": chunk, "size": per}, blob=blob))
                c.expect_ack(chunk, timeout=60)
                n += per
    return n


def check_big(paths, total):
    """Every event 0..total-1 exactly once, exact (streamed: a million records)."""
    seen = bytearray(total)
    lines = 0
    for p in paths:
        with open(p, "rb") as f:
            for line in f:
                lines += 1
                r = json.loads(line)
                i = r.get("seq")
                assert isinstance(i, int) and 0 <= i < total, f"{p}:{lines}: unexpected record {line[:200]!r}"
                assert not seen[i], f"{p}:{lines}: duplicate seq {i}"
                seen[i] = 1
                sec, nsec = big_time(i)
                exp = {"seq": i, "msg": big_msg(i, BIG_MSG_LEN), "tag": BIG_TAG, "event_time": f"{sec}.{nsec:09d}"}
                assert r == exp, f"{p}:{lines}: {line[:300]!r} != {exp!r}"
    missing = total - sum(seen)
    assert missing == 0 and lines == total, f"{lines} records out of {total}; {missing} missing"


def queued_chunks(buf_dir):
    """Sizes of Fluentd's queued (buffer.q*) chunk files."""
    return sorted(os.path.getsize(p) for p in glob.glob(os.path.join(buf_dir, "buffer.q*.log")))


def run_big(weir, fluentd, tmp_path, plan, chunk_bytes):
    """Fluentd with a file buffer (chunk_limit_size 256m) is fed `plan`
    while weir is down: the first chunk fills to `chunk_bytes`, is queued and
    its flush fails; 3000 more events wait in the next chunk. weir starts;
    the retry delivers the whole chunk in one request (acked); Fluentd's
    shutdown flushes the rest. Returns the number of events sent."""
    buf_dir = str(tmp_path / "fluentd-buffer")
    in_port = free_port()
    fluentd.start(big_fluentd_config(in_port, weir.port, buf_dir))
    total = feed_big(in_port, plan + [(3, 1000)])
    poll(lambda: queued_chunks(buf_dir) == [chunk_bytes], 20, interval=0.1,
         what=f"Fluentd's queued chunk of {chunk_bytes} bytes (have {queued_chunks(buf_dir)})")
    fluentd.wait_log("failed to flush the buffer", 20, what="Fluentd's failed flush (weir is down)")
    mark = len(fluentd.log())
    start_weir(weir)
    try:
        poll(lambda: "retry succeeded" in fluentd.log()[mark:]
             or any("chunk_size_limit" in l.get("msg", "") for l in weir.log_lines("warn")),
             60, interval=0.2, what="Fluentd's retry")
        oversize = [l["msg"] for l in weir.log_lines("warn") if "chunk_size_limit" in l.get("msg", "")]
        assert not oversize, (f"weir refused Fluentd's {chunk_bytes}-byte chunk (Fluentd retries it "
                              f"forever): {oversize[0]}")
    except AssertionError:
        fluentd.kill()  # it would retry at shutdown too
        raise
    fluentd.stop_ok()
    assert not queued_chunks(buf_dir) and not glob.glob(os.path.join(buf_dir, "buffer.*")), \
        "Fluentd kept chunks"
    assert not fluentd.errors(), fluentd.errors()
    weir.stop_ok()
    return total


@pytest.fixture
def big_cleanup(weir, tmp_path):
    """Removes the half GB (Fluentd's chunk, weir's output) a big test leaves."""
    yield
    shutil.rmtree(tmp_path / "fluentd-buffer", ignore_errors=True)
    for p in weir.output_files():
        os.unlink(p)


def test_fluentd_file_buffer_chunk(weir, fluentd, tmp_path, big_cleanup):
    """A Fluentd file-buffer chunk as Fluentd fills it by default: appended
    1 MiB at a time until it passes chunk_full_threshold (95% of 256m), so
    244 MiB (999,424 events) queued while weir is down; delivered whole when
    weir starts, with the next chunk's 3000 at shutdown: nothing lost."""
    total = run_big(weir, fluentd, tmp_path, [(244, PER_MIB)], 244 * MIB)
    check_big(weir.output_files(), total)


def test_fluentd_file_buffer_full_chunk(weir, fluentd, tmp_path, big_cleanup):
    """A chunk of exactly chunk_limit_size (268,435,456 bytes: 243 MiB, then
    one 13 MiB request that fits without a split), the largest Fluentd's
    default file buffer sends."""
    total = run_big(weir, fluentd, tmp_path, [(243, PER_MIB), (1, 13 * PER_MIB)], CHUNK_LIMIT)
    check_big(weir.output_files(), total)
