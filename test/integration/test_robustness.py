"""Bad input: invalid events, corrupt streams, size limits, odd encodings."""
import base64
import json
import os
import time

import msgpack

import fwd
from conftest import T0, assert_events, free_port, split_event
from fwd import et, entry, packb
from helpers import get, metric


def chunk_id():
    return base64.encodebytes(os.urandom(16)).decode()


def warn_lines(weir):
    return weir.log_lines("warn")


# ----------------------------------------------------------- invalid events --
# skip_invalid_event true: invalid events are skipped, counted, logged, and
# the rest of the request is kept and acked. The default (false, as Fluentd)
# is tested after these.

def test_invalid_events_skipped_rest_stored_and_acked(weir):
    weir.start(source_extra="  skip_invalid_event true")
    ch = chunk_id()
    entries = [
        entry(et(T0, 1), {"ok": 1}),
        [et(T0, 2), "a string, not a map"],        # non-map record
        "not an array",                            # non-array entry
        ["12:00:00", {"bad": "time"}],             # a string where the time should be
        [et(T0, 3), [1, 2, 3]],                    # array record
        [et(T0, 4)],                               # too short
        entry(et(T0, 5), {"ok": 2}),
    ]
    with weir.conn() as c:
        c.send(fwd.forward("inv.fwd", entries, {"chunk": ch}))
        c.expect_ack(ch)
        # the connection is still usable
        ch2 = chunk_id()
        c.send(fwd.message("inv.after", et(T0, 6), {"ok": 3}, {"chunk": ch2}))
        c.expect_ack(ch2)
    assert_events(weir.read_records(), [("inv.fwd", T0, 1, {"ok": 1}), ("inv.fwd", T0, 5, {"ok": 2}),
                                        ("inv.after", T0, 6, {"ok": 3})])
    assert warn_lines(weir), f"skipped invalid events must be logged at warn: {weir.stderr_lines()}"


def test_invalid_events_in_packed_blob(weir):
    weir.start(source_extra="  skip_invalid_event true")
    ch = chunk_id()
    blob = (packb(entry(et(T0, 1), {"ok": 1})) + packb([et(T0, 2), "str record"]) + packb(42) +
            packb({"a": "map entry"}) + packb(entry(et(T0, 3), {"ok": 2})))
    with weir.conn() as c:
        c.send(fwd.packed_forward("inv.packed", None, {"chunk": ch}, blob=blob))
        c.expect_ack(ch)
    assert_events(weir.read_records(), [("inv.packed", T0, 1, {"ok": 1}),
                                        ("inv.packed", T0, 3, {"ok": 2})])
    assert warn_lines(weir)


def test_message_mode_non_map_record_skipped(weir):
    weir.start(source_extra="  skip_invalid_event true")
    c1, c2 = chunk_id(), chunk_id()
    with weir.conn() as c:
        c.send(fwd.message("inv.msg", et(T0, 1), "not a map", {"chunk": c1}))
        c.expect_ack(c1)
        c.send(fwd.message("inv.msg", et(T0, 2), {"ok": True}, {"chunk": c2}))
        c.expect_ack(c2)
    assert_events(weir.read_records(), [("inv.msg", T0, 2, {"ok": True})])
    assert warn_lines(weir)


def test_trailing_partial_event_in_packed_blob(weir):
    weir.start(source_extra="  skip_invalid_event true")
    ch = chunk_id()
    good = [entry(et(T0, 1), {"ok": 1}), entry(et(T0, 2), {"ok": 2})]
    partial = packb(entry(et(T0, 3), {"lost": "x" * 20}))[:9]
    blob = fwd.pack_entries(good) + partial
    for as_str, compressed in [(False, False), (True, False), (False, True)]:
        ch = chunk_id()
        with weir.conn() as c:
            if compressed:
                c.send(fwd.compressed_packed_forward("partial", None, {"chunk": ch},
                                                     data=fwd.gzip_members(blob)))
            else:
                c.send(fwd.packed_forward("partial", None, {"chunk": ch}, as_str=as_str, blob=blob))
            c.expect_ack(ch)
    assert_events(weir.read_records(), [("partial", T0, 1, {"ok": 1}), ("partial", T0, 2, {"ok": 2})] * 3)
    assert warn_lines(weir)


def test_default_invalid_time_kept_with_time_of_receipt(weir):
    """skip_invalid_event false (the default, as Fluentd): an event whose time
    is invalid is acked AND kept, with the time of receipt; nil and 0 times
    are the time of receipt too (Fluentd's `time.to_i == 0`); a positive
    time in a signed encoding is kept as sent. Nothing acked is lost."""
    mport = free_port()
    weir.start(monitor=mport)  # the standard config and a monitor_agent source
    # a positive time written as int32 / int64 (Go's msgp, Docker's log driver)
    int32_entry = b"\x92\xd2" + (T0 + 1).to_bytes(4, "big") + packb({"n": 1})
    int64_entry = b"\x92\xd3" + (T0 + 2).to_bytes(8, "big") + packb({"n": 2})
    blob = (packb(entry(et(T0, 0), {"n": 0})) + int32_entry + int64_entry +
            packb([-5, {"n": 3}]) + packb(["12:00:00", {"n": 4}]) + packb([None, {"n": 5}]) +
            packb([0, {"n": 6}]) + packb([True, {"n": 7}]))
    before = time.time()
    ch = chunk_id()
    with weir.conn() as c:
        c.send(fwd.packed_forward("dflt", None, {"chunk": ch}, blob=blob))
        c.expect_ack(ch)
        # Message mode: a negative time, and an int32 time
        c2 = chunk_id()
        c.send(fwd.message("dflt.msg", -1, {"n": 8}, {"chunk": c2}))
        c.expect_ack(c2)
        c3 = chunk_id()
        c.send(b"\x94" + packb("dflt.msg") + b"\xd2" + (T0 + 9).to_bytes(4, "big") + packb({"n": 9}) +
               packb({"chunk": c3}))
        c.expect_ack(c3)
    after = time.time()
    recs = sorted(weir.read_records(), key=lambda r: r["n"])
    assert [r["n"] for r in recs] == list(range(10)), recs
    exact = {0: T0, 1: T0 + 1, 2: T0 + 2, 9: T0 + 9}
    for r in recs:
        tag, t, rec = split_event(r)
        if rec["n"] in exact:
            assert t == exact[rec["n"]] or abs(t - exact[rec["n"]]) < 1e-9, (rec, t)
        else:  # invalid (3, 4, 7, 8) or nil/0 (5, 6): the time of receipt
            assert before - 1 <= t <= after + 1, (rec, t, before, after)
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_input_invalid_time_total", input="forward") == 4
    assert metric(text, "weir_input_invalid_events_total", input="forward") == 0
    warns = [l["msg"] for l in weir.log_lines("warn")]
    assert any("with the time of receipt" in m and "negative integer time" in m for m in warns), warns


def test_default_refuses_request_with_a_record_it_cannot_keep(weir):
    """skip_invalid_event false: a request holding a record that is not a map
    is refused whole (no ack: the sender keeps it), with one error line, and
    nothing of it is stored; the connection's earlier requests stay acked."""
    weir.allow_errors = True
    weir.start()
    with weir.conn() as c:
        ok = chunk_id()
        c.send(fwd.message("strict", et(T0, 1), {"n": 1}, {"chunk": ok}))
        c.expect_ack(ok)
        bad = chunk_id()
        c.send(fwd.forward("strict", [entry(et(T0, 2), {"n": 2}), [et(T0, 3), "not a map"]], {"chunk": bad}))
        assert c.wait_closed() == b"", "no ack for a refused request"
    assert_events(weir.read_records(), [("strict", T0, 1, {"n": 1})])
    msgs = [l["msg"] for l in weir.log_lines("warn", "error")]
    assert any("skip_invalid_event is false" in m and "not a map" in m for m in msgs), msgs


# ---------------------------------------------------------- corrupt streams --

def _peer_logged(weir, port):
    def mentions_peer(l):
        return l.get("level") in ("warn", "error") and "127.0.0.1" in json.dumps(l)
    return weir.wait_log(mentions_peer, what=f"a warn/error line naming the peer 127.0.0.1:{port}")


def _corrupt_closes_connection(weir, garbage):
    weir.allow_errors = True
    weir.start()
    with weir.conn() as good:
        ch = chunk_id()
        good.send(fwd.message("good", et(T0, 1), {"n": 1}, {"chunk": ch}))
        good.expect_ack(ch)
        with weir.conn() as bad:
            bad_port = bad.sock.getsockname()[1]
            bad.send(garbage)
            got = bad.wait_closed()
            assert got == b"", f"a corrupt stream gets no reply before the close, got {got!r}"
        _peer_logged(weir, bad_port)
        ch = chunk_id()
        good.send(fwd.message("good", et(T0, 2), {"n": 2}, {"chunk": ch}))
        good.expect_ack(ch)
    with weir.conn() as again:
        ch = chunk_id()
        again.send(fwd.message("good", et(T0, 3), {"n": 3}, {"chunk": ch}))
        again.expect_ack(ch)
    assert_events(weir.read_records(), [("good", T0, 1, {"n": 1}), ("good", T0, 2, {"n": 2}),
                                        ("good", T0, 3, {"n": 3})])


def test_corrupt_byte_c1_closes_connection(weir):
    _corrupt_closes_connection(weir, b"\xc1\xc1\xc1\xc1")


def test_request_with_non_string_tag_closes_connection(weir):
    ch = chunk_id()
    _corrupt_closes_connection(weir, packb([123, [entry(et(T0, 0), {"x": 1})], {"chunk": ch}]))


def test_request_not_an_array_closes_connection(weir):
    _corrupt_closes_connection(weir, packb({"tag": "x", "record": {}}))


def test_corrupt_after_valid_request_keeps_valid_one(weir):
    weir.allow_errors = True
    weir.start()
    ch = chunk_id()
    with weir.conn() as c:
        c.send(fwd.message("first", et(T0, 1), {"n": 1}, {"chunk": ch}) + b"\xc1")
        c.expect_ack(ch)
        assert c.wait_closed() == b""
    assert_events(weir.read_records(), [("first", T0, 1, {"n": 1})])


def test_corrupt_gzip_payload_no_crash(weir):
    """Entries claiming gzip that are not gzip: nothing stored from them, weir keeps serving."""
    weir.allow_errors = True
    weir.start()
    ch = chunk_id()
    with weir.conn() as c:
        c.send(fwd.compressed_packed_forward("badgz", None, {"chunk": ch}, data=b"\x1f\x8bnot gzip at all"))
        c.send(fwd.compressed_packed_forward("badgz", None, {"chunk": ch}, codec="zstd",
                                             data=b"\x28\xb5\x2f\xfd garbage"))
        c.nothing_received(0.5)
    assert weir.alive()
    with weir.conn() as c:
        ch = chunk_id()
        c.send(fwd.message("after", et(T0, 0), {"n": 0}, {"chunk": ch}))
        c.expect_ack(ch)
    assert_events(weir.read_records(), [("after", T0, 0, {"n": 0})])


# ------------------------------------------------------------- size limits --

def test_chunk_size_limit_closes_without_ack(weir):
    weir.allow_errors = True
    weir.start(source_extra="  chunk_size_limit 1k")
    before = len(weir.log_lines("warn", "error"))
    ch = chunk_id()
    entries = [entry(et(T0, i), {"pad": "x" * 100}) for i in range(40)]
    big = fwd.forward("big", entries, {"chunk": ch})
    assert len(big) > 4096
    with weir.conn() as c:
        try:
            c.send(big)
        except (BrokenPipeError, ConnectionResetError):
            pass
        got = c.wait_closed()
        assert got == b"", f"no ack for a request over chunk_size_limit, got {got!r}"
    lines = weir.wait_log(lambda l: l.get("level") in ("warn", "error"),
                          what="a warn/error line for the oversized request")
    with weir.conn() as c:
        ch2 = chunk_id()
        c.send(fwd.message("small", et(T0, 0), {"n": 1}, {"chunk": ch2}))
        c.expect_ack(ch2)
    assert_events(weir.read_records(), [("small", T0, 0, {"n": 1})])
    lines = weir.log_lines("warn", "error")[before:]
    assert len(lines) == 1, f"expected one warn/error line for the oversized request: {lines}"


def test_chunk_size_warn_limit_warns_but_stores(weir):
    weir.start(source_extra="  chunk_size_warn_limit 1k\n  chunk_size_limit 1m")
    before = len(warn_lines(weir))
    ch = chunk_id()
    entries = [entry(et(T0, i), {"pad": "x" * 100}) for i in range(40)]
    with weir.conn() as c:
        c.send(fwd.forward("warned", entries, {"chunk": ch}))
        c.expect_ack(ch)
        ch2 = chunk_id()
        c.send(fwd.message("small", et(T0, 0), {"n": 1}, {"chunk": ch2}))
        c.expect_ack(ch2)
    assert_events(weir.read_records(),
                  [("warned", T0, i, {"pad": "x" * 100}) for i in range(40)] + [("small", T0, 0, {"n": 1})])
    assert len(warn_lines(weir)) - before == 1, weir.stderr_lines()


# ------------------------------------------------------ strings and ext types --

def test_invalid_utf8_ext_and_bin_values(weir):
    weir.start()
    ch = chunk_id()
    record = fwd.map_header(8) + b"".join([
        packb("bad"), fwd.raw_str(b"ab\xffcd"),
        packb("bad2"), fwd.raw_str(b"\xc3("),
        packb("ext"), packb(msgpack.ExtType(5, b"\x01\x02\x03")),
        packb("bin"), fwd.raw_bin(b"hello"),
        packb("badbin"), fwd.raw_bin(b"\xfe\xffok"),
        packb("nested"), fwd.raw_array(fwd.raw_str(b"\x80"), b"\xd4\xfb\xff"),
        packb("good"), packb("ünïcode ✓"),
        packb("ctrl"), packb("tab\tnl\nquote\"bs\\nul\x00"),
    ])
    req = fwd.raw_array(packb("enc"), packb(et(T0, 0)), record, packb({"chunk": ch}))
    with weir.conn() as c:
        c.send(req)
        c.expect_ack(ch)
        ch2 = chunk_id()
        c.send(fwd.message("enc", et(T0, 1), {"next": "ok"}, {"chunk": ch2}))
        c.expect_ack(ch2)
    assert_events(weir.read_records(), [
        ("enc", T0, 0, {"bad": "ab\ufffdcd", "bad2": "\ufffd(", "ext": "AQID", "bin": "hello",
                        "badbin": "\ufffd\ufffdok", "nested": ["\ufffd", "/w=="],
                        "good": "ünïcode ✓", "ctrl": "tab\tnl\nquote\"bs\\nul\x00"}),
        ("enc", T0, 1, {"next": "ok"}),
    ])


def test_non_string_map_keys_do_not_crash(weir):
    """Keys that are not strings (int, bin) are written as strings; the event is kept."""
    weir.start()
    ch = chunk_id()
    record = fwd.map_header(3) + packb(1) + packb("int key") + fwd.raw_bin(b"bk") + packb("bin key") + \
        packb("s") + packb("str key")
    req = fwd.raw_array(packb("keys"), packb(et(T0, 0)), record, packb({"chunk": ch}))
    with weir.conn() as c:
        c.send(req)
        c.expect_ack(ch)
        ch2 = chunk_id()
        c.send(fwd.message("keys", et(T0 + 1, 0), {"next": "ok"}, {"chunk": ch2}))
        c.expect_ack(ch2)
    recs = weir.read_records()
    assert recs[-1] == {"next": "ok", "tag": "keys", "time": float(T0 + 1)}
    # the odd-key record is either stored (keys stringified) or skipped as invalid; never a crash
    if len(recs) == 2:
        assert recs[0] == {"1": "int key", "bk": "bin key", "s": "str key", "tag": "keys",
                           "time": float(T0)}, recs[0]
    else:
        assert len(recs) == 1
