"""in_forward security: the shared-key handshake and user auth (<security>), and TLS
(<transport tls>), with real clients (npm @fluent-org/logger's `security` and `tls`
options, Python's ssl module) and a raw client for every way a handshake can fail.

Every case asserts the exact records stored (or none) and weir's log line.
"""
import os
import socket
import ssl
import subprocess
import time

import msgpack
import pytest

import fwd
from pki import make_pki
from conftest import T0, WEIR_BIN, assert_events, run_node
from fwd import et, ping_bytes, read_helo, read_obj, sha512_hex
from helpers import config, match

KEY = "secret"
SELF = "server.example"
CLIENT = "client.example"


# ------------------------------------------------------------------ helpers --

def security_block(extra="", key=KEY, user_auth=False, users=(), clients=(), anonymous=None):
    lines = ["  <security>", f"    self_hostname {SELF}", f"    shared_key {key}"]
    if user_auth:
        lines.append("    user_auth true")
    if anonymous is not None:
        lines.append(f"    allow_anonymous_source {'true' if anonymous else 'false'}")
    if extra:
        lines.append(extra)
    for u, p in users:
        lines += ["    <user>", f"      username {u}", f"      password {p}", "    </user>"]
    for c in clients:
        lines += ["    <client>"] + [f"      {k} {v}" for k, v in c.items()] + ["    </client>"]
    lines.append("  </security>")
    return "\n".join(lines)


def tls_block(pki, extra=""):
    return (f"  <transport tls>\n    cert_path {pki['server.pem']}\n"
            f"    private_key_path {pki['server.key']}\n{extra}\n  </transport>")


def handshake(c, expect_ok=True, **kw):
    """Read the HELO, send a PING (fwd.ping_bytes **kw; key KEY and host CLIENT
    unless given), read the PONG. Returns (pong, nonce)."""
    opts = read_helo(c)
    auth = opts["auth"]
    data, salt = ping_bytes(opts["nonce"], auth if isinstance(auth, bytes) else b"",
                            **{"key": KEY, "host": CLIENT, **kw})
    c.send(data)
    pong = read_obj(c)
    assert isinstance(pong, list) and len(pong) == 5 and pong[0] == "PONG", pong
    if expect_ok:
        assert pong[1] is True and pong[2] == "" and pong[3] == SELF, pong
        # the client checks that the server knows the key too
        key = kw.get("key", KEY)
        assert pong[4] == sha512_hex(salt, SELF, opts["nonce"], key), "PONG digest"
    else:
        assert pong[1] is False and pong[3] == "" and pong[4] == "", pong
    return pong, opts


def chunk(n):
    return f"chunk-{n}-{os.urandom(4).hex()}"


def send_one(c, tag, n):
    ch = chunk(n)
    c.send(fwd.message(tag, et(T0, n), {"n": n}, {"chunk": ch}))
    c.expect_ack(ch)


def log_has(weir, text, timeout=5.0):
    return weir.wait_log(lambda l: text in l.get("msg", ""), timeout=timeout, what=repr(text))


def assert_refused(weir, c, reason, log_text):
    """The server answered PONG false `reason`, closed, and logged `log_text`."""
    assert c.wait_closed(timeout=5) == b"", "the server must close after PONG false"
    lines = log_has(weir, log_text)
    assert any("handshake refused for 127.0.0.1:" in l["msg"] and f"PONG false '{reason}'" in l["msg"]
               for l in lines), lines
    assert all(l["level"] == "warn" for l in lines)


def no_records(weir, wait=0.2):
    time.sleep(wait)
    assert weir.read_records() == []


# --------------------------------------------------------------------- PKI --

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A CA, a server certificate (localhost, 127.0.0.1), a client certificate, an
    untrusted self-signed client certificate, the server key encrypted, an unrelated key."""
    return make_pki(tmp_path_factory.mktemp("pki"))


def client_ctx(pki, cert=None, minv=None, maxv=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki["ca.pem"])
    if cert:
        ctx.load_cert_chain(pki[f"{cert}.pem"], pki[f"{cert}.key"])
    if minv:
        ctx.minimum_version = minv
    if maxv:
        ctx.maximum_version = maxv
    return ctx


class TlsConn(fwd.FwdConn):
    """fwd.FwdConn over TLS (Python's ssl module)."""

    def __init__(self, port, ctx, timeout=10.0):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""
        self.timeout = timeout

    def wait_closed(self, timeout=None):
        try:
            return super().wait_closed(timeout)
        except ssl.SSLError:
            return b""


# ======================================================= shared-key handshake ==

def test_raw_client_handshake_and_acks(weir):
    """HELO format, PING with Fluentd's 32-hex salt, PONG digest, then requests with acks."""
    weir.start(source_extra=security_block())
    with weir.conn() as c:
        pong, helo = handshake(c)
        assert helo["auth"] == "" and helo["keepalive"] is True
        send_one(c, "sec.a", 1)
        send_one(c, "sec.a", 2)
    assert_events(weir.read_records(), [("sec.a", T0, 1, {"n": 1}), ("sec.a", T0, 2, {"n": 2})])
    weir.stop_ok()
    log_has(weir, "forward.0: handshakes: 1 completed, 0 refused, 0 TLS failures, 0 timeouts")


def test_fluent_bit_raw_salt_and_ignored_user(weir):
    """Fluent Bit: the salt is 16 raw bytes in a str (not UTF-8), and it sends a username
    and password digest even though the HELO's auth was empty: accepted."""
    weir.start(source_extra=security_block())
    salt = b"\xff\xfe\x00\x80\xc3\x28" + os.urandom(10)
    with weir.conn() as c:
        handshake(c, salt=salt, raw_salt_str=True, user="fluent-bit", password="anything")
        send_one(c, "fb", 7)
    assert_events(weir.read_records(), [("fb", T0, 7, {"n": 7})])


def test_ping_and_request_in_one_send(weir):
    """A client that pipelines its first request right behind the PING."""
    weir.start(source_extra=security_block())
    with weir.conn() as c:
        opts = read_helo(c)
        ping, salt = ping_bytes(opts["nonce"], b"", KEY, CLIENT)
        ch = chunk(3)
        c.send(ping + fwd.message("pipe", et(T0, 3), {"n": 3}, {"chunk": ch}))
        pong = read_obj(c)
        assert pong[:4] == ["PONG", True, "", SELF]
        c.expect_ack(ch)
    assert_events(weir.read_records(), [("pipe", T0, 3, {"n": 3})])


def test_bad_shared_key(weir):
    weir.start(source_extra=security_block())
    with weir.conn() as c:
        pong, _ = handshake(c, expect_ok=False, key="not-the-key")
        assert pong[2] == "shared_key mismatch"
        assert_refused(weir, c, "shared_key mismatch",
                       f"(hostname '{CLIENT}', user ''): shared key digest mismatch")
    no_records(weir)


def test_bad_digest_length(weir):
    weir.start(source_extra=security_block())
    with weir.conn() as c:
        pong, _ = handshake(c, expect_ok=False, digest="00" * 10)
        assert pong[2] == "shared_key mismatch"
        assert_refused(weir, c, "shared_key mismatch", "shared key digest mismatch (20 characters, expected 128)")
    no_records(weir)


def test_wrong_element_count(weir):
    weir.start(source_extra=security_block())
    with weir.conn() as c:
        opts = read_helo(c)
        salt = os.urandom(16).hex()
        c.send(fwd.packb(["PING", CLIENT, salt, sha512_hex(salt, CLIENT, opts["nonce"], KEY), ""]))
        pong = read_obj(c)
        assert pong == ["PONG", False, "invalid ping message", "", ""]
        assert_refused(weir, c, "invalid ping message", "PING has 5 elements, expected 6")
    no_records(weir)


USERS = [("alice", "pw"), ("bob", "hunter2")]


def test_user_auth(weir):
    weir.start(source_extra=security_block(user_auth=True, users=USERS))
    with weir.conn() as c:
        pong, helo = handshake(c, user="alice", password="pw")
        assert isinstance(helo["auth"], bytes) and len(helo["auth"]) == 16
        send_one(c, "user.alice", 1)
    with weir.conn() as c:
        handshake(c, user="bob", password="hunter2")
        send_one(c, "user.bob", 2)
    assert_events(weir.read_records(), [("user.alice", T0, 1, {"n": 1}), ("user.bob", T0, 2, {"n": 2})])


def test_wrong_password(weir):
    weir.start(source_extra=security_block(user_auth=True, users=USERS))
    with weir.conn() as c:
        pong, _ = handshake(c, expect_ok=False, user="alice", password="hunter2")
        assert pong[2] == "username/password mismatch"
        assert_refused(weir, c, "username/password mismatch", "user 'alice'): wrong password for user 'alice'")
    no_records(weir)


def test_unknown_user(weir):
    weir.start(source_extra=security_block(user_auth=True, users=USERS))
    with weir.conn() as c:
        pong, _ = handshake(c, expect_ok=False, user="mallory", password="pw")
        # the same answer as a wrong password: no user enumeration
        assert pong[2] == "username/password mismatch"
        assert_refused(weir, c, "username/password mismatch", "unknown user 'mallory'")
    no_records(weir)


def test_anonymous_source_refused(weir):
    weir.start(source_extra=security_block(anonymous=False, clients=[{"network": "10.0.0.0/8"}]))
    with weir.conn() as c:
        pong, _ = handshake(c, expect_ok=False)
        assert pong[2] == "anonymous source host '127.0.0.1' denied"
        assert_refused(weir, c, "anonymous source host '127.0.0.1' denied",
                       "no <client> matches 127.0.0.1 and allow_anonymous_source is false")
    no_records(weir)


@pytest.mark.parametrize("rule", [{"host": "127.0.0.1"}, {"network": "127.0.0.0/8"}], ids=["host", "network"])
def test_client_rules(weir, rule):
    """A <client> matching 127.0.0.1 by host or CIDR network: its own shared key and users."""
    client = dict(rule, shared_key="k2", users="alice")
    weir.start(source_extra=security_block(user_auth=True, users=USERS, anonymous=False, clients=[client]))
    with weir.conn() as c:
        handshake(c, key="k2", user="alice", password="pw")
        send_one(c, "rule.ok", 1)
    with weir.conn() as c:  # the global key is not this client's key
        pong, _ = handshake(c, expect_ok=False, key=KEY, user="alice", password="pw")
        assert_refused(weir, c, "shared_key mismatch", "shared key digest mismatch (key of the matching <client>)")
    with weir.conn() as c:  # bob exists but is not allowed from this client
        pong, _ = handshake(c, expect_ok=False, key="k2", user="bob", password="hunter2")
        assert_refused(weir, c, "username/password mismatch",
                       "user 'bob' is not in the users of the matching <client>")
    assert_events(weir.read_records(), [("rule.ok", T0, 1, {"n": 1})])


def test_previous_shared_key_rotation(weir):
    """During a key rotation both keys are accepted; the PONG proves the key the client used."""
    weir.start(source_extra=security_block(key="new-key", extra="    previous_shared_key old-key"))
    with weir.conn() as c:
        handshake(c, key="new-key")
        send_one(c, "rot", 1)
    with weir.conn() as c:
        handshake(c, key="old-key")
        send_one(c, "rot", 2)
    with weir.conn() as c:
        handshake(c, expect_ok=False, key="older-key")
        assert_refused(weir, c, "shared_key mismatch", "shared key digest mismatch")
    log_has(weir, f"(hostname '{CLIENT}') authenticated with previous_shared_key: update its shared key")
    assert_events(weir.read_records(), [("rot", T0, 1, {"n": 1}), ("rot", T0, 2, {"n": 2})])


def test_request_without_handshake(weir):
    """A plain forward client talking to a secured port: nothing stored, nothing acked."""
    weir.start(source_extra=security_block())
    with weir.conn() as c:
        ch = chunk(1)
        c.send(fwd.message("sneaky", et(T0, 1), {"n": 1}, {"chunk": ch}))
        read_helo(c)
        assert read_obj(c) == ["PONG", False, "invalid ping message", "", ""]
        assert_refused(weir, c, "invalid ping message",
                       "expected a PING, got an array of 4 elements starting with 'sneaky' "
                       "(a forward request before the handshake?)")
    no_records(weir)


def test_garbage_before_handshake(weir):
    weir.start(source_extra=security_block())
    with weir.conn() as c:
        read_helo(c)
        c.send(b"\xc1GET / HTTP/1.1\r\n\r\n")
        assert read_obj(c) == ["PONG", False, "invalid ping message", "", ""]
        assert_refused(weir, c, "invalid ping message", "the first message is not msgpack")
    with weir.conn() as c:  # an oversized first message is refused before it is buffered
        read_helo(c)
        c.send(fwd.str_header(1 << 30) + b"x" * 20000)
        assert read_obj(c)[:3] == ["PONG", False, "invalid ping message"]
        assert_refused(weir, c, "invalid ping message", "the first message is larger than 16384 bytes")
    no_records(weir)


def test_handshake_timeout(weir):
    weir.start(source_extra=security_block() + "\n  handshake_timeout 1s")
    with weir.conn() as c:
        t0 = time.monotonic()
        read_helo(c)
        assert c.wait_closed(timeout=5) == b""
        took = time.monotonic() - t0
        assert 0.8 < took < 3, took
    log_has(weir, "handshake timeout: closing the connection from 127.0.0.1:")
    assert any("after 1s: no PING received" in l["msg"] for l in weir.stderr_lines())
    # a client that completes its handshake in time is not affected later
    with weir.conn() as c:
        handshake(c)
        time.sleep(1.3)
        send_one(c, "late", 1)
    assert_events(weir.read_records(), [("late", T0, 1, {"n": 1})])
    weir.stop_ok()
    log_has(weir, "handshakes: 1 completed, 0 refused, 0 TLS failures, 1 timeouts")


def test_connect_and_close_is_quiet(weir):
    """Fluentd's transport heartbeat: connect, close without a PING. Not a failure."""
    weir.start(source_extra=security_block())
    for _ in range(3):
        with weir.conn() as c:
            read_helo(c)
    with weir.conn() as c:
        handshake(c)
        send_one(c, "hb", 1)
    assert_events(weir.read_records(), [("hb", T0, 1, {"n": 1})])
    assert not [l for l in weir.stderr_lines() if l["level"] in ("warn", "error")]


def test_node_client_shared_key_and_user(weir, node_env, tmp_path):
    """npm @fluent-org/logger with its `security` option (shared key, username, password), acks."""
    weir.start(source_extra=security_block(user_auth=True, users=USERS))
    events = [{"label": "a", "time": {"sec": T0 + i, "nsec": i}, "record": {"i": i}} for i in range(5)]
    res = run_node("fluent_org_logger.js",
                   {"port": weir.port, "tagPrefix": "nodesec", "eventMode": "Forward", "ack": True,
                    "events": events,
                    "security": {"clientHostname": CLIENT, "sharedKey": KEY, "username": "alice",
                                 "password": "pw"}}, tmp_path, node_env)
    assert res == {"ok": True, "sent": 5}
    assert_events(weir.read_records(), [("nodesec.a", T0 + i, i, {"i": i}) for i in range(5)])


# ==================================================================== TLS ==

def test_tls_python_client(weir, pki):
    weir.start(source_extra=tls_block(pki))
    with TlsConn(weir.port, client_ctx(pki)) as c:
        send_one(c, "tls.py", 1)
        c.send(fwd.compressed_packed_forward("tls.py", [[et(T0, 2), {"n": 2}], [et(T0, 3), {"n": 3}]],
                                             {"chunk": "big"}))
        c.expect_ack("big")
    assert_events(weir.read_records(), [("tls.py", T0, 1, {"n": 1}), ("tls.py", T0, 2, {"n": 2}),
                                        ("tls.py", T0, 3, {"n": 3})])
    weir.stop_ok()
    log_has(weir, "handshakes: 1 completed, 0 refused, 0 TLS failures, 0 timeouts")


def test_tls_large_requests(weir, pki):
    """Requests far bigger than a TLS record (16 KiB) and the 64 KiB ciphertext reads, in
    one burst: acks in order."""
    weir.start(source_extra=tls_block(pki))
    n_req, per = 6, 2000
    with TlsConn(weir.port, client_ctx(pki)) as c:
        data = b""
        for r in range(n_req):
            entries = [[et(T0, r * per + i), {"r": r, "i": i, "pad": "p" * 100}] for i in range(per)]
            data += fwd.packed_forward("tls.big", entries, {"chunk": f"c{r}"})
        assert len(data) > 1_000_000
        c.send(data)
        for r in range(n_req):
            c.expect_ack(f"c{r}")
    recs = weir.read_records()
    assert len(recs) == n_req * per
    assert [(x["r"], x["i"]) for x in recs] == [(r, i) for r in range(n_req) for i in range(per)]


def test_tls_and_shared_key_python(weir, pki):
    """HELO, PING, PONG and acks all inside TLS."""
    weir.start(source_extra=tls_block(pki) + "\n" + security_block(user_auth=True, users=USERS))
    with TlsConn(weir.port, client_ctx(pki)) as c:
        handshake(c, user="alice", password="pw")
        send_one(c, "tls.sec", 1)
    with TlsConn(weir.port, client_ctx(pki)) as c:
        handshake(c, expect_ok=False, key="bad")
        assert_refused(weir, c, "shared_key mismatch", "shared key digest mismatch")
    assert_events(weir.read_records(), [("tls.sec", T0, 1, {"n": 1})])


def test_tls_node_client(weir, pki, node_env, tmp_path):
    """npm @fluent-org/logger with its `tls` option, acks; then with `tls` and `security`."""
    weir.start(source_extra=tls_block(pki) + "\n" + security_block())
    events = [{"label": "t", "time": {"sec": T0 + i, "nsec": 0}, "record": {"i": i}} for i in range(4)]
    for mode in ("Message", "CompressedPackedForward"):
        res = run_node("fluent_org_logger.js",
                       {"port": weir.port, "tagPrefix": f"nodetls{mode.lower()}", "eventMode": mode, "ack": True,
                        "events": events, "tls": {"ca": pki["ca.pem"]},
                        "security": {"clientHostname": CLIENT, "sharedKey": KEY}}, tmp_path, node_env)
        assert res == {"ok": True, "sent": 4}
    assert_events(weir.read_records(),
                  [(f"nodetls{m}.t", T0 + i, 0, {"i": i}) for m in ("message", "compressedpackedforward")
                   for i in range(4)], ordered=False)


def test_tls_node_client_no_security(weir, pki, node_env, tmp_path):
    weir.start(source_extra=tls_block(pki))
    events = [{"label": "t", "time": {"sec": T0, "nsec": 5}, "record": {"x": "y"}}]
    res = run_node("fluent_org_logger.js",
                   {"port": weir.port, "tagPrefix": "nodetls", "eventMode": "PackedForward", "ack": True,
                    "events": events, "tls": {"ca": pki["ca.pem"], "servername": "localhost"}}, tmp_path, node_env)
    assert res == {"ok": True, "sent": 1}
    assert_events(weir.read_records(), [("nodetls.t", T0, 5, {"x": "y"})])


def tls_refused(weir, ctx, what):
    """A TLS client weir must refuse: no ack, no record, the log names the failure."""
    ch = chunk(9)
    with pytest.raises((ssl.SSLError, ConnectionError, TimeoutError, OSError)):
        with TlsConn(weir.port, ctx, timeout=5) as c:
            c.send(fwd.message("refused", et(T0, 9), {"n": 9}, {"chunk": ch}))
            c.expect_ack(ch, timeout=5)
    lines = log_has(weir, "TLS handshake with 127.0.0.1:")
    assert any(what in l["msg"] for l in lines), lines
    no_records(weir)


def test_mtls_requires_client_cert(weir, pki):
    weir.start(source_extra=tls_block(pki, f"    ca_path {pki['ca.pem']}\n    client_cert_auth true"))
    # TLS 1.3: the client finishes first and only learns of the refusal when it reads
    tls_refused(weir, client_ctx(pki), "peer did not return a certificate")
    # TLS 1.2: refused during the handshake
    tls_refused(weir, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2), "peer did not return a certificate")
    # a certificate from another CA
    tls_refused(weir, client_ctx(pki, cert="rogue"), "certificate verify failed")
    # with a certificate signed by the CA
    with TlsConn(weir.port, client_ctx(pki, cert="client")) as c:
        send_one(c, "mtls", 1)
    assert_events(weir.read_records(), [("mtls", T0, 1, {"n": 1})])
    weir.stop_ok()
    log_has(weir, "handshakes: 1 completed, 0 refused, 3 TLS failures, 0 timeouts")


def test_mtls_node_client(weir, pki, node_env, tmp_path):
    weir.start(source_extra=tls_block(pki, f"    ca_path {pki['ca.pem']}\n    client_cert_auth true"))
    events = [{"label": "m", "time": {"sec": T0, "nsec": 1}, "record": {"m": 1}}]
    res = run_node("fluent_org_logger.js",
                   {"port": weir.port, "tagPrefix": "nodemtls", "eventMode": "Forward", "ack": True,
                    "events": events,
                    "tls": {"ca": pki["ca.pem"], "cert": pki["client.pem"], "key": pki["client.key"]}},
                   tmp_path, node_env)
    assert res == {"ok": True, "sent": 1}
    assert_events(weir.read_records(), [("nodemtls.m", T0, 1, {"m": 1})])


def test_min_version_tls13(weir, pki):
    weir.start(source_extra=tls_block(pki, "    min_version TLSv1_3"))
    tls_refused(weir, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2), "unsupported protocol")
    with TlsConn(weir.port, client_ctx(pki)) as c:
        assert c.sock.version() == "TLSv1.3"
        send_one(c, "v13", 1)
    assert_events(weir.read_records(), [("v13", T0, 1, {"n": 1})])


def test_default_accepts_tls12(weir, pki):
    weir.start(source_extra=tls_block(pki))
    with TlsConn(weir.port, client_ctx(pki, maxv=ssl.TLSVersion.TLSv1_2)) as c:
        assert c.sock.version() == "TLSv1.2"
        send_one(c, "v12", 1)
    assert_events(weir.read_records(), [("v12", T0, 1, {"n": 1})])


def test_plain_client_on_tls_port(weir, pki):
    weir.start(source_extra=tls_block(pki))
    with weir.conn() as c:
        c.send(fwd.message("plain", et(T0, 1), {"n": 1}, {"chunk": "x"}))
        got = c.wait_closed(timeout=5)
        assert b"ack" not in got
    log_has(weir, "TLS handshake with 127.0.0.1:")
    no_records(weir)


def test_tls_handshake_timeout(weir, pki):
    weir.start(source_extra=tls_block(pki) + "\n  handshake_timeout 1s")
    with weir.conn() as c:  # TCP connect, never start TLS
        assert c.wait_closed(timeout=5) == b""
    log_has(weir, "after 1s: the TLS handshake did not complete")


# ============================================================ config errors ==

def dry_run(tmp_path, port, source_extra):
    path = os.path.join(str(tmp_path), "sec.conf")
    text = config(port, source_extra=source_extra, matches=match("**", "null"))
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", path], capture_output=True, timeout=20)
    return p.returncode, p.stderr.decode(), path, text.split("\n")


def line_of(lines, needle):
    return next(i for i, l in enumerate(lines, 1) if needle in l)


CONFIG_ERRORS = [
    # (source_extra with {pki} paths, line containing, expected message)
    ("  <transport tls>\n    cert_path {missing}\n    private_key_path {server.key}\n  </transport>",
     "cert_path", "cert_path '{missing}': No such file or directory"),
    ("  <transport tls>\n    cert_path {server.pem}\n    private_key_path {missing}\n  </transport>",
     "private_key_path", "private_key_path '{missing}': No such file or directory"),
    ("  <transport tls>\n    cert_path {server.pem}\n    private_key_path {other.key}\n  </transport>",
     "private_key_path", "private key '{other.key}' does not match the certificate '{server.pem}'"),
    ("  <transport tls>\n    cert_path {server.pem}\n    private_key_path {server.enc.key}\n"
     "    private_key_passphrase wrong\n  </transport>",
     "private_key_passphrase", "cannot decrypt private key '{server.enc.key}': wrong private_key_passphrase"),
    ("  <transport tls>\n    cert_path {server.pem}\n    private_key_path {server.enc.key}\n  </transport>",
     "private_key_path", "private key '{server.enc.key}' is encrypted: set private_key_passphrase"),
    ("  <transport tls>\n    cert_path {server.key}\n    private_key_path {server.key}\n  </transport>",
     "cert_path", "cannot load a PEM certificate from '{server.key}'"),
    ("  <transport tls>\n    cert_path {server.pem}\n    private_key_path {server.key}\n"
     "    client_cert_auth true\n  </transport>",
     "client_cert_auth", "client_cert_auth needs ca_path"),
    ("  <transport tls>\n    cert_path {server.pem}\n    private_key_path {server.key}\n"
     "    min_version TLSv1_1\n  </transport>",
     "min_version", "min_version 'TLSv1_1' is not supported: weir accepts TLS 1.2 and 1.3 only"),
    ("  <transport tls>\n    cert_path {server.pem}\n    private_key_path {server.key}\n"
     "    ciphers NOT-A-CIPHER\n  </transport>",
     "ciphers", "invalid ciphers 'NOT-A-CIPHER'"),
    ("  <transport tls>\n    private_key_path {server.key}\n  </transport>",
     "<transport tls>", "missing required parameter 'cert_path' in <transport tls>"),
    ("  <transport tls>\n    cert_path {server.pem}\n    private_key_path {server.key}\n    insecure true\n"
     "  </transport>",
     "insecure", "unknown parameter 'insecure' in <transport tls>"),
    ("  <transport udp>\n  </transport>", "<transport udp>", "<transport udp> is not supported by @type forward"),
    ("  <security>\n    shared_key k\n  </security>", "<security>",
     "missing required parameter 'self_hostname' in <security>"),
    ("  <security>\n    self_hostname s\n    shared_key k\n    <client>\n      host 127.0.0.1\n"
     "      network 10.0.0.0/8\n    </client>\n  </security>",
     "<client>", "both 'host' and 'network' are specified for <client>"),
    ("  <secrity>\n  </secrity>", "<secrity>", "unknown section <secrity> in <source>; did you mean <security>?"),
    ("  handshake_timeout 0s", "handshake_timeout", "handshake_timeout must be greater than 0"),
]


@pytest.mark.parametrize("extra,where,msg", CONFIG_ERRORS,
                         ids=[f"{i}-{c[1].strip('<>').split()[0]}" for i, c in enumerate(CONFIG_ERRORS)])
def test_config_errors(tmp_path, port, pki, extra, where, msg):
    paths = dict(pki, missing=os.path.join(str(tmp_path), "missing.pem"))

    def fill(s):
        for k, v in paths.items():
            s = s.replace("{" + k + "}", v)
        return s

    rc, err, path, lines = dry_run(tmp_path, port, fill(extra))
    assert rc == 1, err
    want = f"{path}:{line_of(lines, fill(where))}: {fill(msg)}"
    assert want in err, f"expected {want!r} in:\n{err}"


def test_encrypted_key_with_passphrase(weir, pki):
    """The right passphrase: weir starts and serves TLS."""
    weir.start(source_extra=(f"  <transport tls>\n    cert_path {pki['server.pem']}\n"
                             f"    private_key_path {pki['server.enc.key']}\n"
                             f"    private_key_passphrase s3cret\n  </transport>"))
    with TlsConn(weir.port, client_ctx(pki)) as c:
        send_one(c, "enc", 1)
    assert_events(weir.read_records(), [("enc", T0, 1, {"n": 1})])


def test_security_config_ok_dry_run(tmp_path, port, pki):
    rc, err, _, _ = dry_run(tmp_path, port, tls_block(pki, f"    ca_path {pki['ca.pem']}\n    client_cert_auth true\n"
                                                           "    min_version TLSv1_2\n    max_version TLSv1_3")
                            + "\n" + security_block(user_auth=True, users=USERS,
                                                    clients=[{"network": "10.0.0.0/8", "users": "alice"}]))
    assert rc == 0, err
    assert "configuration OK" in err
