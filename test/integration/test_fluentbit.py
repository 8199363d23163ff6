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

import pytest

from conftest import free_port, poll
from helpers import get, metric
from peer_fluentbit import INJECT, CriFile, assert_records, expected_events, fluent_bit_or_skip, split
from pki import make_pki

SELF = "weir.example"          # weir's self_hostname
FB_HOST = "fb-node-1"          # Fluent Bit's self_hostname (must differ)
KEY = "fb-shared-key-0123456789"


@pytest.fixture
def fluent_bit(tmp_path):
    fb = fluent_bit_or_skip(tmp_path)
    yield fb
    fb.kill_all()


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
