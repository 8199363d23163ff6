"""in_forward parameters: tag, add_tag_prefix, source_address_key,
source_hostname_key, deny_keepalive."""
import base64
import os
import socket

import fwd
from conftest import T0, assert_events
from fwd import et, entry


def chunk_id():
    return base64.encodebytes(os.urandom(16)).decode()


def send_three_modes(weir, tag="orig.tag"):
    """Message, Forward and PackedForward requests on one connection, all acked."""
    chunks = [chunk_id() for _ in range(3)]
    with weir.conn() as c:
        c.send(fwd.message(tag, et(T0, 1), {"m": "message"}, {"chunk": chunks[0]}))
        c.expect_ack(chunks[0])
        c.send(fwd.forward(tag, [entry(et(T0, 2), {"m": "forward"})], {"chunk": chunks[1]}))
        c.expect_ack(chunks[1])
        c.send(fwd.compressed_packed_forward(tag, [entry(et(T0, 3), {"m": "packed"})],
                                             {"chunk": chunks[2]}))
        c.expect_ack(chunks[2])


def test_tag_overrides_tag(weir):
    weir.start(source_extra="  tag fixed.tag")
    send_three_modes(weir)
    assert_events(weir.read_records(), [("fixed.tag", T0, 1, {"m": "message"}),
                                        ("fixed.tag", T0, 2, {"m": "forward"}),
                                        ("fixed.tag", T0, 3, {"m": "packed"})])


def test_add_tag_prefix(weir):
    weir.start(source_extra="  add_tag_prefix pre")
    send_three_modes(weir)
    assert_events(weir.read_records(), [("pre.orig.tag", T0, 1, {"m": "message"}),
                                        ("pre.orig.tag", T0, 2, {"m": "forward"}),
                                        ("pre.orig.tag", T0, 3, {"m": "packed"})])


def test_source_address_key(weir):
    weir.start(source_extra="  source_address_key src_ip")
    send_three_modes(weir)
    assert_events(weir.read_records(), [("orig.tag", T0, 1, {"m": "message", "src_ip": "127.0.0.1"}),
                                        ("orig.tag", T0, 2, {"m": "forward", "src_ip": "127.0.0.1"}),
                                        ("orig.tag", T0, 3, {"m": "packed", "src_ip": "127.0.0.1"})])


def test_source_hostname_key(weir):
    host = socket.gethostbyaddr("127.0.0.1")[0]
    weir.start(source_extra="  source_hostname_key src_host")
    send_three_modes(weir)
    assert_events(weir.read_records(), [("orig.tag", T0, 1, {"m": "message", "src_host": host}),
                                        ("orig.tag", T0, 2, {"m": "forward", "src_host": host}),
                                        ("orig.tag", T0, 3, {"m": "packed", "src_host": host})])


def test_source_keys_with_tag_prefix_together(weir):
    host = socket.gethostbyaddr("127.0.0.1")[0]
    weir.start(source_extra="  add_tag_prefix p\n  source_address_key ip\n  source_hostname_key host")
    ch = chunk_id()
    with weir.conn() as c:
        c.send(fwd.message("t", et(T0, 0), {"ip": "overwritten?", "k": 1}, {"chunk": ch}))
        c.expect_ack(ch)
    # Fluentd sets record[key] = value: the peer's values win
    assert_events(weir.read_records(), [("p.t", T0, 0, {"ip": "127.0.0.1", "host": host, "k": 1})])


def test_deny_keepalive_closes_after_ack(weir):
    weir.start(source_extra="  deny_keepalive true")
    ch = chunk_id()
    with weir.conn() as c:
        c.send(fwd.message("dk", et(T0, 1), {"n": 1}, {"chunk": ch}))
        c.expect_ack(ch)
        assert c.wait_closed() == b"", "deny_keepalive: server closes after the ack"
    with weir.conn() as c:
        c.send(fwd.forward("dk", [entry(et(T0, 2), {"n": 2})]))
        assert c.wait_closed() == b"", "deny_keepalive: server closes after the request"
    weir.wait_records(2)
    assert_events(weir.read_records(), [("dk", T0, 1, {"n": 1}), ("dk", T0, 2, {"n": 2})])


def test_keepalive_is_default(weir):
    weir.start()
    with weir.conn() as c:
        for i in range(5):
            ch = chunk_id()
            c.send(fwd.message("ka", et(T0, i), {"n": i}, {"chunk": ch}))
            c.expect_ack(ch)
        assert c.nothing_received(0.3) == b"", "connection must stay open"
    assert_events(weir.read_records(), [("ka", T0, i, {"n": i}) for i in range(5)])


def test_sigterm_with_open_connections_exits_0(weir):
    """Idle and half-sent connections do not keep weir from stopping cleanly."""
    weir.start()
    ch = chunk_id()
    idle = weir.conn()
    half = weir.conn()
    done = weir.conn()
    try:
        done.send(fwd.message("term", et(T0, 0), {"n": 0}, {"chunk": ch}))
        done.expect_ack(ch)
        half.send(fwd.message("term", et(T0, 1), {"n": 1}, {"chunk": chunk_id()})[:10])
        weir.stop_ok()
        assert idle.wait_closed(5) == b""
    finally:
        for c in (idle, half, done):
            c.close()
    assert_events(weir.read_records(), [("term", T0, 0, {"n": 0})])
