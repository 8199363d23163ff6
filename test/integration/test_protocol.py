"""Hand-built forward-protocol requests over a raw socket: every mode and encoding."""
import base64
import os
import socket
import time

import msgpack
import pytest

import fwd
from conftest import T0, assert_events
from fwd import et, entry, packb
from helpers import TIME_TAG_INJECT


def chunk_id():
    """A chunk id like Fluentd's: base64 of 16 random bytes, ending in "\\n"."""
    return base64.encodebytes(os.urandom(16)).decode()


REC_A = {"msg": "alpha", "n": 1, "nested": {"k": [1, 2, {"x": None}]}, "ok": True}
REC_B = {"msg": "béta ✓ 日本", "n": -2, "f": 2.5, "ok": False, "list": []}
REC_C = {"msg": "gamma", "big": 18446744073709551615, "small": -9223372036854775808}


def send_acked(weir, req, chunk, timeout=10):
    with weir.conn() as c:
        c.send(req)
        c.expect_ack(chunk, timeout)


# ------------------------------------------------------------------ Message --

def test_message_event_time(weir):
    weir.start()
    ch = chunk_id()
    send_acked(weir, fwd.message("app.msg", et(T0, 123456789), REC_A, {"chunk": ch}), ch)
    assert_events(weir.read_records(), [("app.msg", T0, 123456789, REC_A)])


def test_message_event_time_ext8_encoding(weir):
    """EventTime as ext8 (c7 08 00 ...) rather than fixext8 (d7 00 ...)."""
    weir.start()
    ch = chunk_id()
    req = fwd.raw_array(packb("app.ext8"), fwd.et_ext8(T0, 5), packb(REC_A), packb({"chunk": ch}))
    send_acked(weir, req, ch)
    assert_events(weir.read_records(), [("app.ext8", T0, 5, REC_A)])


def test_message_integer_time(weir):
    weir.start()
    ch = chunk_id()
    send_acked(weir, fwd.message("app.int", T0 + 7, REC_B, {"chunk": ch}), ch)
    assert_events(weir.read_records(), [("app.int", T0 + 7, 0, REC_B)])


def test_message_float_time(weir):
    weir.start()
    ch = chunk_id()
    send_acked(weir, fwd.message("app.float", 1700000000.5, REC_C, {"chunk": ch}), ch)
    recs = weir.read_records()
    assert_events(recs, [("app.float", T0, 500000000, REC_C)])
    assert recs[0]["time"] == 1700000000.5


def test_message_without_options(weir):
    weir.start()
    with weir.conn() as c:
        c.send(fwd.message("app.noopt", et(T0, 1), REC_A))
        c.send(fwd.message("app.noopt", et(T0, 2), REC_B))
        recs = weir.wait_records(2)
        assert c.nothing_received(0.2) == b"", "no ack was requested, none may be sent"
    assert_events(recs, [("app.noopt", T0, 1, REC_A), ("app.noopt", T0, 2, REC_B)])


def test_message_nil_options(weir):
    """A nil options value (old Docker fluentd driver) means an empty map."""
    weir.start()
    with weir.conn() as c:
        c.send(fwd.message("app.nilopt", et(T0, 0), REC_A, None))
        recs = weir.wait_records(1)
    assert_events(recs, [("app.nilopt", T0, 0, REC_A)])


def test_message_empty_options_and_unknown_keys(weir):
    weir.start()
    ch = chunk_id()
    with weir.conn() as c:
        c.send(fwd.message("app.opt", et(T0, 0), REC_A, {}))
        c.send(fwd.message("app.opt", et(T0, 1), REC_B,
                           {"chunk": ch, "unknown": [1, 2], "other": {"x": "y"}}))
        c.expect_ack(ch)
    assert_events(weir.read_records(), [("app.opt", T0, 0, REC_A), ("app.opt", T0, 1, REC_B)])


# ------------------------------------------------------------------ Forward --

def test_forward_mode(weir):
    weir.start()
    ch = chunk_id()
    entries = [entry(et(T0, 1), REC_A), entry(T0 + 1, REC_B), entry(et(T0 + 2, 999999999), REC_C)]
    send_acked(weir, fwd.forward("app.fwd", entries, {"chunk": ch, "size": 3}), ch)
    assert_events(weir.read_records(), [("app.fwd", T0, 1, REC_A), ("app.fwd", T0 + 1, 0, REC_B),
                                        ("app.fwd", T0 + 2, 999999999, REC_C)])


def test_forward_mode_no_options_and_nil_options(weir):
    weir.start()
    with weir.conn() as c:
        c.send(fwd.forward("app.f1", [entry(et(T0, 0), REC_A)]))
        c.send(fwd.forward("app.f2", [entry(et(T0, 0), REC_B)], None))
        recs = weir.wait_records(2)
    assert_events(recs, [("app.f1", T0, 0, REC_A), ("app.f2", T0, 0, REC_B)])


def test_forward_mode_empty_entries(weir):
    weir.start()
    ch = chunk_id()
    send_acked(weir, fwd.forward("app.empty", [], {"chunk": ch}), ch)
    assert weir.read_records() == []


# ------------------------------------------------------------ PackedForward --

@pytest.mark.parametrize("as_str", [False, True], ids=["bin", "str"])
def test_packed_forward(weir, as_str):
    weir.start()
    ch = chunk_id()
    entries = [entry(et(T0, 10), REC_A), entry(et(T0, 20), REC_B), entry(T0 + 5, REC_C)]
    send_acked(weir, fwd.packed_forward("app.packed", entries, {"chunk": ch, "size": 3},
                                        as_str=as_str), ch)
    assert_events(weir.read_records(), [("app.packed", T0, 10, REC_A), ("app.packed", T0, 20, REC_B),
                                        ("app.packed", T0 + 5, 0, REC_C)])


def test_packed_forward_compressed_text_means_uncompressed(weir):
    """Fluentd always sends `compressed`; "text" means the entries are plain."""
    weir.start()
    ch = chunk_id()
    entries = [entry(et(T0, 1), REC_A), entry(et(T0, 2), REC_B)]
    req = fwd.packed_forward("app.text", entries, {"chunk": ch, "size": 2, "compressed": "text"},
                             as_str=True)
    send_acked(weir, req, ch)
    assert_events(weir.read_records(), [("app.text", T0, 1, REC_A), ("app.text", T0, 2, REC_B)])


def test_packed_forward_empty_blob(weir):
    weir.start()
    ch = chunk_id()
    send_acked(weir, fwd.packed_forward("app.empty", [], {"chunk": ch}), ch)
    assert weir.read_records() == []


# -------------------------------------------------- CompressedPackedForward --

@pytest.mark.parametrize("as_str", [False, True], ids=["bin", "str"])
def test_compressed_gzip(weir, as_str):
    weir.start()
    ch = chunk_id()
    entries = [entry(et(T0, i), {"i": i, **REC_A}) for i in range(5)]
    send_acked(weir, fwd.compressed_packed_forward("app.gz", entries, {"chunk": ch, "size": 5},
                                                   as_str=as_str), ch)
    assert_events(weir.read_records(), [("app.gz", T0, i, {"i": i, **REC_A}) for i in range(5)])


@pytest.mark.parametrize("as_str", [False, True], ids=["bin", "str"])
def test_compressed_gzip_several_members(weir, as_str):
    """Fluentd gzips each buffer append separately: several gzip streams back to back."""
    weir.start()
    ch = chunk_id()
    entries = [entry(et(T0, i), {"i": i, "s": "x" * i}) for i in range(10)]
    data = fwd.gzip_members_of_entries(entries, [3, 1, 4, 2])
    req = fwd.compressed_packed_forward("app.gzm", entries, {"chunk": ch, "size": 10},
                                        as_str=as_str, data=data)
    send_acked(weir, req, ch)
    assert_events(weir.read_records(), [("app.gzm", T0, i, {"i": i, "s": "x" * i}) for i in range(10)])


def test_compressed_gzip_member_boundary_inside_an_entry(weir):
    """Members split at arbitrary byte offsets (not entry boundaries) still concatenate."""
    weir.start()
    ch = chunk_id()
    entries = [entry(et(T0, i), {"i": i, "pad": "p" * 50}) for i in range(6)]
    data = fwd.gzip_members(fwd.pack_entries(entries), members=4)
    req = fwd.compressed_packed_forward("app.gzb", entries, {"chunk": ch}, data=data)
    send_acked(weir, req, ch)
    assert_events(weir.read_records(),
                  [("app.gzb", T0, i, {"i": i, "pad": "p" * 50}) for i in range(6)])


@pytest.mark.parametrize("as_str", [False, True], ids=["bin", "str"])
def test_compressed_zstd(weir, as_str):
    weir.start()
    ch = chunk_id()
    entries = [entry(et(T0, i), {"i": i, **REC_B}) for i in range(4)]
    send_acked(weir, fwd.compressed_packed_forward("app.zstd", entries, {"chunk": ch, "size": 4},
                                                   codec="zstd", as_str=as_str), ch)
    assert_events(weir.read_records(), [("app.zstd", T0, i, {"i": i, **REC_B}) for i in range(4)])


# ------------------------------------------------------ Fluent Bit habits --

META1 = {"k": "v"}
META2 = {"otlp": {"severity": 9, "attrs": ["a", 1]}}


def metadata_config(weir):
    return weir.config(inject=TIME_TAG_INJECT + "\n    metadata_key meta")


def test_fluent_bit_metadata_entries_forward(weir):
    """[[time, meta], record] entries: metadata kept (metadata_key), plain entries have none."""
    weir.start(metadata_config(weir))
    ch = chunk_id()
    entries = [entry(et(T0, 1), REC_A, META1), entry(et(T0, 2), REC_B),
               entry(T0 + 3, REC_C, META2)]
    send_acked(weir, fwd.forward("fb.fwd", entries, {"chunk": ch}), ch)
    assert_events(weir.read_records(), [("fb.fwd", T0, 1, {**REC_A, "meta": META1}),
                                        ("fb.fwd", T0, 2, REC_B),
                                        ("fb.fwd", T0 + 3, 0, {**REC_C, "meta": META2})])


@pytest.mark.parametrize("compressed", [False, True], ids=["packed", "gzip"])
def test_fluent_bit_metadata_entries_packed(weir, compressed):
    weir.start(metadata_config(weir))
    ch = chunk_id()
    entries = [entry(et(T0, 1), REC_A, META1), entry(et(T0, 2), REC_B, META2)]
    opts = {"chunk": ch, "size": 2, "fluent_signal": 0}
    if compressed:
        req = fwd.compressed_packed_forward("fb.p", entries, opts)
    else:
        req = fwd.packed_forward("fb.p", entries, opts)
    send_acked(weir, req, ch)
    assert_events(weir.read_records(), [("fb.p", T0, 1, {**REC_A, "meta": META1}),
                                        ("fb.p", T0, 2, {**REC_B, "meta": META2})])


def test_message_mode_metadata_option(weir):
    weir.start(metadata_config(weir))
    ch = chunk_id()
    send_acked(weir, fwd.message("fb.msg", et(T0, 4), REC_A, {"chunk": ch, "metadata": META1}), ch)
    assert_events(weir.read_records(), [("fb.msg", T0, 4, {**REC_A, "meta": META1})])


@pytest.mark.parametrize("mode", ["forward", "packed", "gzip"])
def test_fluent_bit_group_markers_skipped(weir, mode):
    weir.start(metadata_config(weir))
    ch = chunk_id()
    entries = [
        [[et(0xFFFFFFFF, 0), {"schema": "otlp", "resource_id": 0}], {"resource": {"host": "h"}}],
        entry(et(T0, 1), REC_A, {"k": "v"}),
        entry(et(T0, 2), REC_B, META2),
        [[et(0xFFFFFFFE, 0), {}], {}],
        [[et(0xFFFFFFFF, 0), {}], {}],
        entry(et(T0, 3), REC_C, META1),
        [[et(0xFFFFFFFE, 0), {}], {}],
    ]
    opts = {"chunk": ch, "size": len(entries)}
    req = {"forward": lambda: fwd.forward("fb.g", entries, opts),
           "packed": lambda: fwd.packed_forward("fb.g", entries, opts),
           "gzip": lambda: fwd.compressed_packed_forward("fb.g", entries, opts)}[mode]()
    send_acked(weir, req, ch)
    assert_events(weir.read_records(), [("fb.g", T0, 1, {**REC_A, "meta": {"k": "v"}}),
                                        ("fb.g", T0, 2, {**REC_B, "meta": META2}),
                                        ("fb.g", T0, 3, {**REC_C, "meta": META1})])


def test_fluent_bit_three_writes(weir):
    """Fluent Bit writes a Forward request as header, entries, options in three write()s."""
    weir.start()
    ch = chunk_id()
    entries = [entry(et(T0, 1), REC_A), entry(et(T0, 2), REC_B)]
    header = fwd.array_header(3) + packb("fb.split")
    body = packb(entries)
    options = packb({"chunk": ch})
    with weir.conn() as c:
        c.send_pieces([header, body, options], delay=0.05)
        c.expect_ack(ch)
    assert_events(weir.read_records(), [("fb.split", T0, 1, REC_A), ("fb.split", T0, 2, REC_B)])


def test_request_sent_one_byte_at_a_time(weir):
    weir.start()
    ch = chunk_id()
    req = fwd.message("app.bytewise", et(T0, 77), {"a": "b", "n": [1, 2]}, {"chunk": ch})
    assert len(req) < 100
    with weir.conn() as c:
        c.send_bytewise(req, delay=0.003)
        c.expect_ack(ch)
    assert_events(weir.read_records(), [("app.bytewise", T0, 77, {"a": "b", "n": [1, 2]})])


def test_packed_request_split_at_every_offset_class(weir):
    """A packed request cut into irregular pieces (inside headers, EventTime, strings)."""
    weir.start()
    ch = chunk_id()
    entries = [entry(et(T0, i), {"i": i, "s": "é" * i}) for i in range(20)]
    req = fwd.packed_forward("app.pieces", entries, {"chunk": ch})
    pieces, i, step = [], 0, 1
    while i < len(req):
        pieces.append(req[i:i + step])
        i += step
        step = step % 13 + 1
    with weir.conn() as c:
        c.send_pieces(pieces, delay=0.001)
        c.expect_ack(ch)
    assert_events(weir.read_records(),
                  [("app.pieces", T0, i, {"i": i, "s": "é" * i}) for i in range(20)])


def test_pipelined_requests_split_at_odd_offsets(weir):
    """Several requests back to back, cut into 7-byte pieces that straddle request boundaries."""
    weir.start()
    chunks = [chunk_id() for _ in range(4)]
    stream = (fwd.message("odd.a", et(T0, 0), {"n": 0}, {"chunk": chunks[0]}) +
              fwd.forward("odd.b", [entry(et(T0, 1), {"n": 1})], {"chunk": chunks[1]}) + b"\xc0" +
              fwd.compressed_packed_forward("odd.c", [entry(et(T0, 2), {"n": 2})], {"chunk": chunks[2]}) +
              fwd.packed_forward("odd.d", [entry(et(T0, 3), {"n": 3})], {"chunk": chunks[3]}, as_str=True))
    with weir.conn() as c:
        c.send_pieces([stream[i:i + 7] for i in range(0, len(stream), 7)], delay=0.002)
        for ch in chunks:
            c.expect_ack(ch)
    assert_events(weir.read_records(), [("odd.a", T0, 0, {"n": 0}), ("odd.b", T0, 1, {"n": 1}),
                                        ("odd.c", T0, 2, {"n": 2}), ("odd.d", T0, 3, {"n": 3})])


# --------------------------------------------------------------- heartbeats --

def test_nil_heartbeat_between_requests(weir):
    weir.start()
    c1, c2, c3 = chunk_id(), chunk_id(), chunk_id()
    with weir.conn() as c:
        c.send(fwd.message("app.hb", et(T0, 1), REC_A, {"chunk": c1}) + b"\xc0" +
               fwd.message("app.hb", et(T0, 2), REC_B, {"chunk": c2}))
        c.expect_ack(c1)
        c.expect_ack(c2)
        c.send(b"\xc0")
        c.send(b"\xc0\xc0")
        assert c.nothing_received(0.2) == b"", "a heartbeat gets no reply and keeps the connection"
        c.send(fwd.forward("app.hb", [entry(et(T0, 3), REC_C)], {"chunk": c3}))
        c.expect_ack(c3)
    assert_events(weir.read_records(), [("app.hb", T0, 1, REC_A), ("app.hb", T0, 2, REC_B),
                                        ("app.hb", T0, 3, REC_C)])


def test_tcp_connection_without_data_is_harmless(weir):
    """Fluentd's transport heartbeat: connect, send nothing, close (every second)."""
    weir.start()
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", weir.port), timeout=5)
        s.close()
    ch = chunk_id()
    send_acked(weir, fwd.message("app.after", et(T0, 0), REC_A, {"chunk": ch}), ch)
    assert_events(weir.read_records(), [("app.after", T0, 0, REC_A)])


def test_udp_heartbeat(weir):
    weir.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.sendto(b"\x00", ("127.0.0.1", weir.port))
        data, addr = u.recvfrom(64)
        assert data == b"\x00"
        assert addr == ("127.0.0.1", weir.port), f"reply must come from the listening address, got {addr}"
    # TCP still works after the heartbeat
    ch = chunk_id()
    send_acked(weir, fwd.message("app.udp", et(T0, 0), REC_A, {"chunk": ch}), ch)
    assert_events(weir.read_records(), [("app.udp", T0, 0, REC_A)])


# ------------------------------------------------------------------ options --

@pytest.mark.parametrize("signal", [1, 2])
def test_fluent_signal_metrics_traces_skipped(weir, signal):
    weir.start()
    s1, s2, s3, ok = chunk_id(), chunk_id(), chunk_id(), chunk_id()
    payload_entries = [entry(et(T0, 1), {"metric": "cpu", "value": 0.5})]
    with weir.conn() as c:
        c.send(fwd.forward("sig.x", payload_entries, {"chunk": s1, "fluent_signal": signal}))
        c.expect_ack(s1)
        c.send(fwd.compressed_packed_forward("sig.x", payload_entries,
                                             {"chunk": s2, "fluent_signal": signal}))
        c.expect_ack(s2)
        # the payload need not be events at all
        c.send(fwd.raw_array(packb("sig.x"), fwd.raw_bin(b"\x01\x02 not msgpack entries \xc1"),
                             packb({"chunk": s3, "fluent_signal": signal})))
        c.expect_ack(s3)
        c.send(fwd.forward("sig.logs", [entry(et(T0, 2), REC_A)], {"chunk": ok, "fluent_signal": 0}))
        c.expect_ack(ok)
    assert_events(weir.read_records(), [("sig.logs", T0, 2, REC_A)])


def test_size_option_is_only_a_hint(weir):
    weir.start()
    c1, c2, c3 = chunk_id(), chunk_id(), chunk_id()
    e3 = [entry(et(T0, i), {"i": i}) for i in range(3)]
    with weir.conn() as c:
        c.send(fwd.forward("size.fwd", e3, {"chunk": c1, "size": 1}))
        c.expect_ack(c1)
        c.send(fwd.packed_forward("size.packed", e3[:2], {"chunk": c2, "size": 4000000000}))
        c.expect_ack(c2)
        c.send(fwd.compressed_packed_forward("size.gz", e3, {"chunk": c3, "size": 0}))
        c.expect_ack(c3)
    exp = ([("size.fwd", T0, i, {"i": i}) for i in range(3)] +
           [("size.packed", T0, i, {"i": i}) for i in range(2)] +
           [("size.gz", T0, i, {"i": i}) for i in range(3)])
    assert_events(weir.read_records(), exp)


# --------------------------------------------------------------------- acks --

def test_ack_is_byte_exact_fluentd_chunk_id(weir):
    weir.start()
    ch = base64.encodebytes(b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb\xcc\xdd\xee\xff").decode()
    assert ch.endswith("\n") and len(ch) == 25
    with weir.conn() as c:
        c.send(fwd.forward("ack.f", [entry(et(T0, 0), REC_A)], {"chunk": ch, "size": 1,
                                                                 "compressed": "text"}))
        raw = c.read_raw_object()
    assert raw == b"\x81\xa3ack\xb9" + ch.encode(), raw


def test_ack_chunk_as_bin(weir):
    weir.start()
    chunk = b"\x00\x01binary\xff\xfe chunk"
    with weir.conn() as c:
        c.send(fwd.message("ack.bin", et(T0, 0), REC_A, {"chunk": chunk}))
        raw = c.read_raw_object()
    assert raw == b"\x81\xa3ack" + b"\xc4" + bytes([len(chunk)]) + chunk, raw


def test_ack_long_chunk_str8(weir):
    weir.start()
    ch = "x" * 40 + "\n"
    with weir.conn() as c:
        c.send(fwd.message("ack.long", et(T0, 0), REC_A, {"chunk": ch}))
        raw = c.read_raw_object()
    assert raw == b"\x81\xa3ack\xd9\x29" + ch.encode(), raw


def test_pipelined_requests_acked_in_order(weir):
    weir.start()
    chunks = [chunk_id() for _ in range(6)]
    reqs = [
        fwd.message("pipe.a", et(T0, 0), {"n": 0}, {"chunk": chunks[0]}),
        fwd.forward("pipe.b", [entry(et(T0, 1), {"n": 1}), entry(et(T0, 2), {"n": 2})],
                    {"chunk": chunks[1]}),
        fwd.packed_forward("pipe.c", [entry(et(T0, 3), {"n": 3})], {"chunk": chunks[2]}),
        b"\xc0",
        fwd.compressed_packed_forward("pipe.d", [entry(et(T0, 4), {"n": 4})], {"chunk": chunks[3]}),
        fwd.message("pipe.e", T0 + 5, {"n": 5}, {"chunk": chunks[4]}),
        fwd.compressed_packed_forward("pipe.f", [entry(et(T0, 6), {"n": 6})], {"chunk": chunks[5]},
                                      codec="zstd"),
    ]
    with weir.conn() as c:
        c.send(b"".join(reqs))
        for ch in chunks:
            c.expect_ack(ch)
    assert_events(weir.read_records(), [
        ("pipe.a", T0, 0, {"n": 0}), ("pipe.b", T0, 1, {"n": 1}), ("pipe.b", T0, 2, {"n": 2}),
        ("pipe.c", T0, 3, {"n": 3}), ("pipe.d", T0, 4, {"n": 4}), ("pipe.e", T0 + 5, 0, {"n": 5}),
        ("pipe.f", T0, 6, {"n": 6})])


def test_mixed_acked_and_unacked_on_one_connection(weir):
    weir.start()
    ch = chunk_id()
    with weir.conn() as c:
        c.send(fwd.message("mix", et(T0, 1), {"n": 1}))
        c.send(fwd.message("mix", et(T0, 2), {"n": 2}, {"chunk": ch}))
        c.expect_ack(ch)
        assert c.nothing_received(0.2) == b""
    assert_events(weir.read_records(), [("mix", T0, 1, {"n": 1}), ("mix", T0, 2, {"n": 2})])


def test_large_packed_request(weir):
    """A ~2 MiB request (10,000 events) is accepted with the default limits."""
    weir.start()
    ch = chunk_id()
    n = 10000
    entries = [entry(et(T0, i), {"i": i, "pad": "z" * 200}) for i in range(n)]
    req = fwd.packed_forward("big", entries, {"chunk": ch, "size": n})
    assert len(req) > 2 * 1024 * 1024
    t = time.monotonic()
    send_acked(weir, req, ch, timeout=30)
    recs = weir.read_records()
    assert len(recs) == n, f"{len(recs)} records for {n} events ({time.monotonic() - t:.1f}s)"
    assert_events(recs, [("big", T0, i, {"i": i, "pad": "z" * 200}) for i in range(n)])


def test_many_connections_each_acked(weir):
    weir.start()
    conns = [weir.conn() for _ in range(20)]
    try:
        chunks = [chunk_id() for _ in conns]
        for i, (c, ch) in enumerate(zip(conns, chunks)):
            c.send(fwd.message("conns", et(T0, i), {"c": i}, {"chunk": ch}))
        for c, ch in zip(conns, chunks):
            c.expect_ack(ch)
    finally:
        for c in conns:
            c.close()
    assert_events(weir.read_records(), [("conns", T0, i, {"c": i}) for i in range(20)],
                  ordered=False)


def test_msgpack_self_check():
    """The helpers' encodings are what the spec says (no weir needed)."""
    assert packb(et(T0, 1)) == b"\xd7\x00" + T0.to_bytes(4, "big") + b"\x00\x00\x00\x01"
    assert fwd.et_ext8(T0, 1)[3:] == packb(et(T0, 1))[2:]
    req = fwd.packed_forward("t", [entry(et(T0, 0), {"a": 1})], {"chunk": "c"}, as_str=True)
    tag, blob, opts = msgpack.unpackb(req, raw=True)
    assert tag == b"t" and opts == {b"chunk": b"c"} and req[3] == 0xA0 | len(blob)
    data = fwd.gzip_members_of_entries([entry(0, {}), entry(1, {})], [1, 1])
    assert data.count(b"\x1f\x8b\x08") == 2
