"""Connection limits of the forward input: idle_timeout and max_connections,
with their metrics."""
import base64
import os
import socket
import time

import fwd
from conftest import T0, free_port, poll
from fwd import et, entry
from helpers import config, get, metric


def acked(c, i):
    ch = base64.encodebytes(os.urandom(9)).decode()
    c.send(fwd.message("lim", et(T0, i), {"i": i}, {"chunk": ch}))
    c.expect_ack(ch)


def closed_by_server(sock, timeout):
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_idle_timeout_closes_silent_connections_only(weir):
    mport = free_port()
    weir.start(config(weir.port, weir.prefix, monitor=mport,
                      source_extra="  idle_timeout 0.5s"))
    silent = socket.create_connection(("127.0.0.1", weir.port))
    t0 = time.monotonic()
    with weir.conn() as busy:
        # a connection that keeps sending stays open well past the timeout
        for i in range(8):
            acked(busy, i)
            time.sleep(0.2)
        assert closed_by_server(silent, 3.0), "the silent connection was not closed"
        assert 0.4 < time.monotonic() - t0
        acked(busy, 99)
    # a request left half sent is dropped too, with its own log line
    half = socket.create_connection(("127.0.0.1", weir.port))
    req = fwd.message("lim", et(T0, 5), {"i": 5}, {"chunk": "x"})
    half.sendall(req[:7])
    assert closed_by_server(half, 3.0)
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_input_idle_closed_total", input="forward.0") == 2
    assert any("idle for 0.5s" in l["msg"] for l in weir.stderr_lines())
    assert any("in the middle of a request" in l["msg"] for l in weir.stderr_lines())
    assert sorted(r["i"] for r in weir.read_records()) == list(range(8)) + [99]


def test_max_connections_refuses_extra_connections(weir):
    mport = free_port()
    weir.start(config(weir.port, weir.prefix, monitor=mport,
                      source_extra="  max_connections 2"))
    # start() probes the port with a connection: let weir see it closed first
    open_now = lambda: metric(get(mport, "/metrics")[1], "weir_input_connections_open", input="forward")  # noqa: E731
    poll(lambda: open_now() == 0, what="the readiness probe's connection closed")
    with weir.conn() as a, weir.conn() as b:
        acked(a, 1)
        acked(b, 2)
        extra = socket.create_connection(("127.0.0.1", weir.port))
        assert closed_by_server(extra, 3.0), "a third connection was accepted"
        acked(a, 3)  # the first two are untouched
    # once they are gone, new connections are accepted again
    poll(lambda: open_now() == 0, what="connections closed")
    with weir.conn() as c:
        acked(c, 4)
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_input_connections_refused_total", input="forward.0") == 1
    assert any("max_connections (2) reached" in l["msg"] for l in weir.stderr_lines())
    assert sorted(r["i"] for r in weir.read_records()) == [1, 2, 3, 4]


def test_string_depth_and_decompression_limits_are_counted(weir):
    """max_string_length and max_nesting_depth skip the offending events (the
    rest of the request is kept and acked); decompressed_size_limit closes the
    connection; each hit is counted in weir_input_limit_exceeded_total."""
    import gzip
    mport = free_port()
    weir.start(config(weir.port, weir.prefix, monitor=mport,
                      source_extra="  max_string_length 1k\n  max_nesting_depth 8\n  decompressed_size_limit 64k"))
    deep = {"d": 0}
    for _ in range(10):
        deep = {"d": deep}
    entries = [entry(et(T0, 0), {"i": 0, "msg": "x" * 1024}),       # exactly at the limit: kept
               entry(et(T0, 1), {"i": 1, "msg": "x" * 1025}),       # over: skipped
               entry(et(T0, 2), {"i": 2, "x" * 2000: "long key"}),   # long key: skipped
               entry(et(T0, 3), {"i": 3, "deep": deep}),            # too deep: skipped
               entry(et(T0, 4), {"i": 4})]
    with weir.conn() as c:
        c.send(fwd.packed_forward("lim", entries, {"chunk": "p1"}))
        c.expect_ack("p1")
    # a gzip bomb: 1 MiB of records in a few KiB, over the 64k limit
    bomb = gzip.compress(fwd.pack_entries([entry(et(T0, 9), {"pad": "y" * 1000})] * 1024))
    with weir.conn() as c:
        c.send(fwd.packed_forward("lim", None, {"compressed": "gzip", "chunk": "b1"}, blob=bomb))
        assert closed_by_server(c.sock, 5.0)
    with weir.conn() as c:  # the server is fine
        acked(c, 5)
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_input_limit_exceeded_total", input="forward", limit="string_length") == 2
    assert metric(text, "weir_input_limit_exceeded_total", input="forward", limit="nesting_depth") == 1
    assert metric(text, "weir_input_limit_exceeded_total", input="forward", limit="decompressed_size") == 1
    assert metric(text, "weir_input_limit_exceeded_total", input="forward", limit="request_size") == 0
    assert metric(text, "weir_input_invalid_events_total", input="forward") == 3
    assert any("max_string_length" in l["msg"] for l in weir.stderr_lines())
    assert sorted(r["i"] for r in weir.read_records()) == [0, 4, 5]


def test_connection_retirement_between_requests(weir):
    """max_requests_per_connection / max_connection_age close a keepalive
    connection gracefully: only after a whole request, after its ack, so a
    sender reconnects (to any replica behind the Service) and loses nothing."""
    mport = free_port()
    weir.start(config(weir.port, weir.prefix, monitor=mport,
                      source_extra="  max_requests_per_connection 3\n  max_connection_age 1s"))
    conns = 0
    i = 0
    # by request count: three acked requests, then EOF after the third ack
    while i < 9:
        with weir.conn() as c:
            conns += 1
            for _ in range(3):
                acked(c, i)
                i += 1
            assert closed_by_server(c.sock, 3.0), "not retired after 3 requests"
    assert conns == 3
    # pipelined: two requests in one write are both acked before the close
    with weir.conn() as c:
        c.send(fwd.message("lim", et(T0, 100), {"i": 100}, {"chunk": "a"}) +
               fwd.message("lim", et(T0, 101), {"i": 101}, {"chunk": "b"}))
        c.expect_ack("a")
        c.expect_ack("b")
        acked(c, 102)
        assert closed_by_server(c.sock, 3.0)
    # by age (1 s +-10%): requests before the deadline are served, the first
    # request completed after it is acked and the connection then closes
    with weir.conn() as c:
        acked(c, 200)
        time.sleep(1.3)
        acked(c, 201)
        assert closed_by_server(c.sock, 3.0), "not retired after max_connection_age"
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_input_connections_retired_total", input="forward.0") == 5
    got = sorted(r["i"] for r in weir.read_records())
    assert got == list(range(9)) + [100, 101, 102, 200, 201]
