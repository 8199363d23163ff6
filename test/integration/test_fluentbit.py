"""Fluent Bit as the sender: a real Fluent Bit (5.1.1, ../shared/peers) tails
CRI container log files the test writes (`multiline.parser cri` joins the
partial `P` lines with their `F` line) and forwards them to weir, in each of
Fluent Bit's forward modes: its defaults (Forward mode with
`[[time, metadata], record]` entries), gzip (CompressedPackedForward),
`require_ack_response`, `time_as_integer`, the shared-key handshake (with and
without user auth), TLS with server verification and mTLS; plus the refusals
of a wrong key, a missing client certificate, an untrusted server certificate
and one for another name; and a weir restart in the middle of a stream
(at-least-once: nothing lost).

Every record weir writes is checked exactly against values the test computes
from what it wrote: the count, the fields Fluent Bit's cri parser produces
(`time` as written, `stream`, `_p`, `log`), the tag (`kube.*` expanded with
the file's path) and the event time in nanoseconds. The lines mix Go's
RFC3339Nano (trailing zeros dropped) and 9-digit fractions, UTC and zone
offsets, stdout and stderr, JSON and plain text, escapes and UTF-8, and
partial lines: short ones, and 40 kB ones cut every 16 KiB inside a
character as the kubelet cuts them.

Fluent Bit is found at $REPO/../shared/peers/fluent-bit/fluent-bit, else
$FLUENT_BIT, else `fluent-bit` on PATH; without it the tests are skipped.
"""
import json
import threading
from datetime import datetime, timedelta, timezone

import pytest

from conftest import free_port, poll
from helpers import get, metric
from peer_fluentbit import fluent_bit_or_skip
from pki import make_pki

# weir injects the event time under `event_time`, not the standard `time`:
# Fluent Bit's cri parser keeps its own `time` key (the CRI timestamp as
# written) and weir's injected keys replace same-named record keys. "%s.%N"
# is exact to the nanosecond, compared as a string.
INJECT = """    time_key event_time
    time_type string
    time_format %s.%N
    tag_key tag"""

SELF = "weir.example"          # weir's self_hostname
FB_HOST = "fb-node-1"          # Fluent Bit's self_hostname (must differ)
KEY = "fb-shared-key-0123456789"

# 2025-12-18T02:42:48Z, the brief's example line
BASE = 1766025768

@pytest.fixture
def fluent_bit(tmp_path):
    fb = fluent_bit_or_skip(tmp_path)
    yield fb
    fb.kill_all()


# ---------------------------------------------------------------- CRI lines --

def rfc3339(sec, nsec, style, offset_min=0):
    """The CRI timestamp of sec.nsec: `nano` is Go's RFC3339Nano (containerd,
    CRI-O: trailing zeros and an all-zero fraction left out), `fixed9` always
    has 9 digits; offset_min writes the same instant in another zone."""
    tz = timezone(timedelta(minutes=offset_min))
    dt = datetime.fromtimestamp(sec, tz)
    frac = f"{nsec:09d}"
    if style == "nano":
        frac = frac.rstrip("0")
    text = dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "")
    if offset_min == 0:
        return text + "Z"
    sign = "+" if offset_min > 0 else "-"
    h, m = divmod(abs(offset_min), 60)
    return f"{text}{sign}{h:02d}:{m:02d}"


LOG_TEXTS = [
    lambda i: json.dumps({"level": "ERROR", "msg": "x", "i": i}, separators=(",", ":")),
    lambda i: f"plain text line {i} with \"quotes\", a \\backslash\\ and\ta tab",
    lambda i: json.dumps({"level": "info", "msg": f"h\u00e9llo w\u00f6rld \u2713 {i}", "i": i},
                         ensure_ascii=False, separators=(",", ":")),
    lambda i: f"GET /api/v1/items/{i}?q=a%20b HTTP/1.1 200 {i * 7} \u65e5\u672c",
]


def tag_of(path):
    """Fluent Bit's `kube.*`: the file's path with '/' as '.' (leading '/' dropped)."""
    return "kube." + str(path).lstrip("/").replace("/", ".")


class CriFile:
    """A CRI log file and the records Fluent Bit must make of it."""

    def __init__(self, path, seed):
        self.path = path
        self.seed = seed
        self.tag = tag_of(path)
        self.n = 0          # records so far
        self.expected = []  # (tag, "sec.nsec", record)

    def lines(self, count, partial_every=5, pad=0, long_every=0):
        """`count` more records as CRI lines (bytes), recording what each must become.
        Every `partial_every`-th record (none if 0) is written as 2-3 `P` lines and an `F`;
        every `long_every`-th one (none if 0) is about 40 kB of UTF-8 cut every 16 KiB,
        as the kubelet does, whatever character the cut falls in; `pad` makes each
        log about that many characters longer."""
        out = []
        for _ in range(count):
            i = self.n
            self.n += 1
            k = i + self.seed
            sec = BASE + self.seed * 1000 + i
            nsec = [0, 982123456, 500000000, 1, 120000, 999999999, 7000][k % 7]
            offset = [0, 0, 60, 0, -330, 0, 0, 345][k % 8]
            style = "fixed9" if k % 3 == 0 else "nano"
            if style == "nano" and nsec == 0:
                # Fluent Bit 5.1.1 applies the zone offset of a timestamp
                # without a fraction with the wrong sign (it sends
                # 2025-12-17T21:13:16-05:30 as 1766005996, not 1766025796;
                # with ".5" or ".000000000" the same offset is right). Such a
                # line is Fluent Bit's mistake, not weir's: write it in UTC.
                offset = 0
            stream = "stderr" if k % 4 == 3 else "stdout"
            log = LOG_TEXTS[k % len(LOG_TEXTS)](i)
            if pad:
                log += " " + "".join(chr(0x61 + (i + j) % 26) for j in range(pad))
            ts = rfc3339(sec, nsec, style, offset)
            if long_every and i % long_every == long_every - 1:
                body = "".join(f"{j} \u00fcn\u00efc\u00f8d\u00e9 \u2713 \U0001f600 " for j in range(1700))
                # a prefix that makes the first cut fall inside a character
                log = next(lg for lg in (f"long {i}:" + "." * n + " " + body for n in range(8))
                           if lg.encode()[16384] >> 6 == 2)
                data = log.encode()
                pieces = [data[a:a + 16384] for a in range(0, len(data), 16384)]
                for j, piece in enumerate(pieces):
                    pts = rfc3339(sec, min(nsec + j * 1000, 999999999), style, offset)
                    out.append(f"{pts} {stream} {'F' if j == len(pieces) - 1 else 'P'} ".encode() + piece)
                rec = {"time": ts, "stream": stream, "_p": "P", "log": log}
            elif partial_every and i % partial_every == partial_every - 1:
                # split on characters; each part has its own, later time; the
                # joined record keeps the first part's `time` and `_p` ("P":
                # Fluent Bit 5.1.1's cri parser does not rewrite it)
                nparts = 2 + k % 2
                step = -(-len(log) // (nparts + 1))
                cuts = [j * step for j in range(1, nparts + 1)]
                pieces = [log[a:b] for a, b in zip([0] + cuts, cuts + [len(log)])]
                for j, piece in enumerate(pieces):
                    pts = rfc3339(sec, min(nsec + j * 1000, 999999999), style, offset)
                    out.append(f"{pts} {stream} {'F' if j == len(pieces) - 1 else 'P'} {piece}".encode())
                rec = {"time": ts, "stream": stream, "_p": "P", "log": log}
            else:
                out.append(f"{ts} {stream} F {log}".encode())
                rec = {"time": ts, "stream": stream, "_p": "F", "log": log}
            self.expected.append((self.tag, sec, nsec, rec))
        return b"".join(l + b"\n" for l in out)

    def write(self, count, **kw):
        data = self.lines(count, **kw)
        with open(self.path, "ab") as f:
            f.write(data)


def expected_events(files, integer_time=False):
    out = []
    for f in files:
        for tag, sec, nsec, rec in f.expected:
            out.append((tag, f"{sec}.{0 if integer_time else nsec:09d}", rec))
    return out


def split(rec):
    rec = dict(rec)
    return rec.pop("tag", None), rec.pop("event_time", None), rec


def assert_records(records, expected):
    """Exactly `expected` ((tag, "sec.nsec", record)), each once. Not in order:
    Fluent Bit's forward output has 2 workers, so two chunks may travel on two
    connections at once; every record is identified by (tag, log), unique here."""
    got = [split(r) for r in records]
    exp = {(tag, rec["log"]): (t_, rec) for tag, t_, rec in expected}
    assert len(exp) == len(expected), "the test wrote two identical records"
    seen = set()
    for i, (tag, t_, rec) in enumerate(got):
        key = (tag, rec.get("log"))
        assert key in exp, f"record {i}: unexpected tag/log {key!r}: {rec!r}"
        assert key not in seen, f"record {i}: duplicate {key!r}"
        seen.add(key)
        et_, erec = exp[key]
        assert rec == erec, f"record {i} ({tag}): {rec!r} != expected {erec!r}"
        assert t_ == et_, f"record {i} ({tag}, {erec}): event time {t_!r} != {et_!r}"
    missing = [k for k in exp if k not in seen]
    assert not missing and len(got) == len(expected), (
        f"{len(got)} records out, {len(expected)} expected; missing: {missing[:10]}")


# --------------------------------------------------------------- weir setup --

def security(user=None):
    s = f"  <security>\n    self_hostname {SELF}\n    shared_key {KEY}\n"
    if user:
        s += f"    user_auth true\n    <user>\n      username {user[0]}\n      password {user[1]}\n    </user>\n"
    return s + "  </security>\n"


def transport(pki, mtls=False):
    t = (f"  <transport tls>\n    cert_path {pki['server.pem']}\n"
         f"    private_key_path {pki['server.key']}\n")
    if mtls:
        t += f"    ca_path {pki['ca.pem']}\n    client_cert_auth true\n"
    return t + "  </transport>\n"


def start_weir(weir, source_extra="", monitor=None):
    weir.start(weir.config(inject=INJECT, source_extra=source_extra, monitor=monitor,
                           system="  log_level debug"))


def fb_tls(pki, client_cert=False):
    o = {"tls": True, "tls.verify": True, "tls.ca_file": pki["ca.pem"],
         # the server certificate is for DNS:localhost, IP:127.0.0.1
         "tls.vhost": "localhost", "tls.verify_hostname": True}
    if client_cert:
        o.update({"tls.crt_file": pki["client.pem"], "tls.key_file": pki["client.key"]})
    return o


def run_stream(weir, fluent_bit, output, first=24, second=17):
    """Two CRI files; `first` records each written before Fluent Bit starts
    (read from the head), `second` more appended once those arrived (tailed).
    Stops Fluent Bit (which must have logged no error); returns the files."""
    files = [CriFile(fluent_bit.logs / "web-7d9f8_default_web-0a1b2c3d.log", 0),
             CriFile(fluent_bit.logs / "db-0_data_postgres-4e5f6a7b.log", 1)]
    for f in files:
        f.write(first, long_every=10)
    fluent_bit.start(weir.port, output=output)
    weir.wait_records(sum(f.n for f in files), timeout=20)
    for f in files:
        f.write(second, long_every=10)
    weir.wait_records(sum(f.n for f in files), timeout=20)
    fluent_bit.stop_ok()
    assert not fluent_bit.errors(), f"Fluent Bit logged errors: {fluent_bit.errors()}"
    return files


def finish(weir, files, integer_time=False):
    """Stops weir (it has written everything once it exited) and checks every record."""
    weir.stop_ok()
    assert_records(weir.read_records(), expected_events(files, integer_time))


def handshake_lines(weir):
    return [l["msg"] for l in weir.stderr_lines() if "handshake" in l.get("msg", "")]


# -------------------------------------------------------------------- tests --

@pytest.mark.parametrize("mode", ["defaults", "gzip", "ack", "time_as_integer", "ack+gzip"])
def test_fluent_bit_modes(weir, fluent_bit, mode):
    """Fluent Bit's defaults send Forward mode with `[[time, {}], record]`
    entries and no options; `compress gzip` CompressedPackedForward (still
    with metadata entries); `require_ack_response` a `chunk` option weir
    must ack; `time_as_integer` plain `[sec, record]` entries (whole
    seconds)."""
    output = {
        "defaults": {},
        "gzip": {"compress": "gzip"},
        "ack": {"require_ack_response": True},
        "time_as_integer": {"time_as_integer": True},
        "ack+gzip": {"require_ack_response": True, "compress": "gzip"},
    }[mode]
    mon = free_port()
    start_weir(weir, monitor=mon)
    files = run_stream(weir, fluent_bit, output)
    _, text = get(mon, "/metrics")
    m = lambda name: metric(text, name, input="forward")  # noqa: E731
    total = sum(f.n for f in files)
    assert m("weir_input_records_total") == total
    requests, acks = m("weir_input_requests_total"), m("weir_input_acks_total")
    assert requests >= 2, "the tailed lines came in a later request than the first ones"
    if "ack" in mode:
        assert acks == requests, f"{acks} acks for {requests} requests"
    else:
        assert acks == 0, f"{acks} acks without require_ack_response"
    # gzip is proven by the bytes on the wire, compared with the records'
    # JSON: about 0.9x uncompressed (msgpack), about 0.3x gzipped
    raw = sum(len(json.dumps(rec, ensure_ascii=False).encode()) for f in files for *_, rec in f.expected)
    wire = m("weir_input_bytes_total")
    if "gzip" in mode:
        assert wire < raw / 2, f"{wire} bytes read for {raw} bytes of JSON: not compressed?"
    else:
        assert wire > raw * 0.75, f"{wire} bytes read for {raw} bytes of JSON: compressed?"
    finish(weir, files, integer_time=(mode == "time_as_integer"))


@pytest.mark.parametrize("user", [None, ("fluentbit", "p4ss w0rd")], ids=["shared_key", "user_auth"])
def test_fluent_bit_shared_key(weir, fluent_bit, user):
    """Fluent Bit's shared-key handshake (its PING salt is 16 raw bytes in a
    str) against weir's <security>, with and without a user and password."""
    start_weir(weir, security(user))
    output = {"shared_key": KEY, "self_hostname": FB_HOST, "require_ack_response": True}
    if user:
        output.update({"username": user[0], "password": user[1]})
    files = run_stream(weir, fluent_bit, output)
    ok = [l for l in handshake_lines(weir) if l.startswith("handshake ok")]
    want = f"(hostname '{FB_HOST}', user '{user[0] if user else ''}'"
    assert ok and all(want in l for l in ok), f"no {want} in {ok}"
    finish(weir, files)


@pytest.mark.parametrize("case", ["tls", "mtls", "mtls+shared_key"])
def test_fluent_bit_tls(weir, fluent_bit, tmp_path, case):
    """TLS with Fluent Bit verifying weir's certificate (CA and host name), and
    mTLS: weir requires Fluent Bit's client certificate."""
    d = tmp_path / "pki"
    d.mkdir()
    pki = make_pki(d)
    mtls = case.startswith("mtls")
    start_weir(weir, transport(pki, mtls) + (security() if "shared_key" in case else ""))
    output = {**fb_tls(pki, client_cert=mtls), "require_ack_response": True}
    if "shared_key" in case:
        output.update({"shared_key": KEY, "self_hostname": FB_HOST})
    files = run_stream(weir, fluent_bit, output)
    done = [l["msg"] for l in weir.stderr_lines() if l.get("msg", "").startswith("TLS handshake with")]
    assert done and all(" done: TLSv1." in l for l in done), done
    if mtls:
        assert all(l.endswith(", client CN=weir-client") for l in done), done
    else:
        assert not any("client CN=" in l for l in done), done
    if "shared_key" in case:
        assert any(l.startswith("handshake ok") and f"hostname '{FB_HOST}'" in l
                   for l in handshake_lines(weir)), handshake_lines(weir)
    finish(weir, files)


@pytest.mark.parametrize("case", ["wrong_key", "no_client_cert", "untrusted_server", "wrong_server_name"])
def test_fluent_bit_refused(weir, fluent_bit, tmp_path, case):
    """What must not get through does not: a wrong shared key, a client
    without a certificate on an mTLS port, and (Fluent Bit's side) a server
    certificate from a CA Fluent Bit does not trust or for another name (so
    the TLS cases above did verify weir's certificate). Nothing is stored,
    and each side says why."""
    d = tmp_path / "pki"
    d.mkdir()
    pki = make_pki(d)
    if case == "wrong_key":
        start_weir(weir, security())
        output = {"shared_key": "not-" + KEY, "self_hostname": FB_HOST}
        weir_says = "shared key digest mismatch"
    elif case == "no_client_cert":
        start_weir(weir, transport(pki, mtls=True))
        output = fb_tls(pki)
        weir_says = "peer did not return a certificate"
    elif case == "untrusted_server":
        other = tmp_path / "other-pki"
        other.mkdir()
        start_weir(weir, transport(make_pki(other, ca_cn="another CA"), mtls=False))
        output = fb_tls(pki)
        weir_says = "failed: tlsv1 alert unknown ca"  # Fluent Bit's alert, as OpenSSL names it
    else:
        start_weir(weir, transport(pki, mtls=False))
        # the certificate is for localhost and 127.0.0.1; only the name differs
        # from test_fluent_bit_tls[tls]
        output = {**fb_tls(pki), "tls.vhost": "aggregator.example"}
        weir_says = "failed: sslv3 alert bad certificate"
    output["require_ack_response"] = True
    f = CriFile(fluent_bit.logs / "app-1_default_app-99.log", 0)
    f.write(5)
    fluent_bit.start(weir.port, output=output)
    weir.wait_log(lambda l: l.get("level") == "warn" and weir_says in l.get("msg", ""), timeout=20,
                  what=f"weir's warning '{weir_says}'")
    if case in ("untrusted_server", "wrong_server_name"):
        poll(lambda: "certificate verify failed" in fluent_bit.log(), 20,
             what="Fluent Bit's 'certificate verify failed'")
    fluent_bit.stop()
    weir.stop_ok()
    assert weir.read_records() == []


def test_fluent_bit_weir_restart(weir, fluent_bit):
    """weir stopped (SIGTERM) and started again on the same port and output
    path while Fluent Bit sends a few thousand records with
    require_ack_response and retry_limit no_limits (k8s/fluent-bit's
    settings): Fluent Bit retries what was not acked; nothing is lost.
    Duplicates (a chunk weir wrote but whose ack Fluent Bit did not read)
    are allowed (at-least-once) and reported."""
    backlog, stream, batch, pad = 2000, 2000, 50, 500
    total = backlog + stream
    start_weir(weir)
    f = CriFile(fluent_bit.logs / "stream-1_default_gen-5c6d.log", 2)
    # A backlog of about 1 MB, which Fluent Bit reads at once into several
    # chunks, then a stream of appends while weir is stopped and restarted.
    f.write(backlog, partial_every=9, pad=pad)
    # retries 1-2 s after a failure (Fluent Bit's default base is 5 s)
    fluent_bit.start(weir.port, service={"scheduler.base": "1", "scheduler.cap": "2"},
                     output={"require_ack_response": True, "retry_limit": "no_limits"})
    written = [0]
    stop = threading.Event()
    weir_down = threading.Event()

    def writer():
        # paced appends (about 1.5 s in all); the second half waits until
        # weir is down, so that some lines are sure to come while it is
        while written[0] < stream and not stop.is_set():
            if written[0] >= stream // 2:
                weir_down.wait(30)
            f.write(batch, partial_every=9, pad=pad)
            written[0] += batch
            stop.wait(0.03)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        # weir stops as soon as the first chunk is written: the backlog's
        # other chunks are in flight or still to come
        poll(lambda: len(weir.read_records()) > 0, 20, interval=0.002, what="the first records")
        weir.stop_ok()
        weir_down.set()
        before = len(weir.read_records())
        # Fluent Bit keeps sending into a closed port: wait until it has
        # failed and scheduled a retry, and more lines were appended
        poll(lambda: "retry in" in fluent_bit.log(), 20, what="Fluent Bit to schedule a retry")
        poll(lambda: written[0] >= stream * 3 // 4, 20, what="the writer to go on")
        start_weir(weir)  # same port, same output path (append)
        t.join(30)
        assert not t.is_alive(), "the writer is stuck"
        assert written[0] == stream

        def all_in():
            have = {(r.get("tag"), r.get("log")) for r in weir.read_records()}
            return len(have) >= total
        try:
            poll(all_in, 40, interval=0.1, what=f"all {total} distinct records")
        except AssertionError:
            pass  # reported below, with what is missing
    finally:
        stop.set()
        weir_down.set()
    fb_rc = fluent_bit.stop()
    weir.stop_ok()
    fb_log = fluent_bit.log()
    failed = fb_log.count("failed to flush chunk")
    retried = fb_log.count("succeeded at retry")
    errors = sorted({l.split("] ", 2)[-1] for l in fluent_bit.errors()})

    records = weir.read_records()
    exp = {(tag, rec["log"]): (t_, rec) for tag, t_, rec in expected_events([f])}
    assert len(exp) == total
    seen = {}
    for r in records:
        tag, t_, rec = split(r)
        key = (tag, rec.get("log"))
        assert key in exp, f"unexpected record {r}"
        et_, erec = exp[key]
        assert rec == erec, f"record {rec!r} != expected {erec!r}"
        assert t_ == et_, f"record {rec!r}: event time {t_!r} != {et_!r}"
        seen[key] = seen.get(key, 0) + 1
    missing = [k[1][:60] for k in exp if k not in seen]
    dups = sum(c - 1 for c in seen.values())
    report = (f"{len(records)} records written for {total} sent: {len(missing)} lost, {dups} duplicates; "
              f"{before} stored before the stop; Fluent Bit: {failed} failed flushes, "
              f"{retried} chunks delivered on a retry; its errors: {errors}")
    print(report)
    assert not missing, f"{report}; lost (first 10): {missing[:10]}"
    # the restart did hit Fluent Bit, and its retries went to the new weir
    assert failed >= 1 and retried >= 1, report
    assert fb_rc == 0, f"Fluent Bit exited with {fb_rc}; {report}"
