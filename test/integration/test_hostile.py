"""Hostile input against the running binary (issue: security): each bad
connection gets its documented outcome (closed, with one log line and a
counter, or its bad events skipped) while a valid client on another
connection keeps getting every record acked, and weir stays up."""
import base64
import gzip
import os
import random
import socket

import fwd
from conftest import T0, free_port, poll
from fwd import et, entry
from helpers import config, get, metric


LIMITS = "  chunk_size_limit 1m\n  decompressed_size_limit 4m"


class Valid:
    """A well-behaved client on its own connection; every request must be acked."""

    def __init__(self, weir):
        self.c = weir.conn()
        self.n = 0

    def send(self):
        ch = base64.encodebytes(os.urandom(9)).decode()
        self.c.send(fwd.message("ok", et(T0, self.n), {"n": self.n}, {"chunk": ch}))
        self.c.expect_ack(ch)
        self.n += 1


def raw(port, data, wait_close=2.0):
    """Send data on a fresh connection; True when the server closed it."""
    s = socket.create_connection(("127.0.0.1", port))
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError:
        return True
    s.settimeout(wait_close)
    try:
        while s.recv(65536):
            pass
        return True
    except (socket.timeout, ConnectionResetError):
        return False
    finally:
        s.close()


def start(weir, extra=""):
    mport = free_port()
    weir.allow_errors = False
    weir.start(config(weir.port, weir.prefix, monitor=mport, source_extra=LIMITS + "\n" + extra))
    return mport


def test_random_bytes_and_every_truncation(weir):
    mport = start(weir)
    ok = Valid(weir)
    rnd = random.Random(7)
    for i in range(40):
        raw(weir.port, bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(1, 4096))), wait_close=1.0)
        if i % 8 == 0:
            ok.send()
    # a valid request cut at every byte offset, each on its own connection
    ch = "cut-chunk-id"
    req = fwd.packed_forward("cut", [entry(et(T0, i), {"i": i, "s": "x" * 20}) for i in range(5)], {"chunk": ch})
    for k in range(1, len(req)):
        raw(weir.port, req[:k], wait_close=0.5)
        if k % 50 == 0:
            ok.send()
    ok.send()
    assert weir.alive()
    # no truncated request was stored: only the valid client's records
    recs = weir.read_records()
    assert sorted(r["n"] for r in recs) == list(range(ok.n)), recs[:3]
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_input_decode_errors_total", input="forward") >= 1


def test_length_claims_far_beyond_the_data_are_refused_at_once(weir):
    mport = start(weir)
    ok = Valid(weir)
    claims = [
        b"\x93\xa3tag\xdb\xff\xff\xff\xff",             # str32 claiming 4 GiB of entries
        b"\x93\xa3tag\xc6\x7f\xff\xff\xff",             # bin32 claiming 2 GiB
        b"\xdd\xff\xff\xff\xff",                         # array32 of 4 billion elements
        b"\x93\xa3tag\xdc\xff\xff" + b"\x92\x01\x80" * 3,  # array16 claiming 65535 entries
    ]
    for data in claims[:2]:
        s = socket.create_connection(("127.0.0.1", weir.port))
        s.sendall(data)  # and keep the connection open: weir must not wait for 4 GiB
        s.settimeout(3)
        assert s.recv(10) == b"", "a length claim over chunk_size_limit must close the connection at once"
        s.close()
        ok.send()
    for data in claims[2:]:
        raw(weir.port, data, wait_close=1.0)
        ok.send()
    assert weir.alive()
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_input_oversize_requests_total", input="forward") >= 2
    assert any("as its length fields claim" in l["msg"] for l in weir.stderr_lines())


def test_deep_nesting_and_odd_values(weir):
    start(weir)
    ok = Valid(weir)
    deep = b"\x91" * 100000 + b"\xc0"
    # deep nesting inside a record: the event is skipped, the request still acked
    rec = b"\x81\xa1d" + deep
    ent = b"\x92" + b"\xd7\x00" + T0.to_bytes(4, "big") + b"\x00\x00\x00\x00" + rec
    ch = "deep"
    req = b"\x93\xa3dep" + fwd.raw_bin(ent) + fwd.packb({"chunk": ch})
    with weir.conn() as c:
        c.send(req)
        c.expect_ack(ch)
    # deep nesting as the whole request: corrupt, the connection is closed
    assert raw(weir.port, deep, wait_close=3.0)
    ok.send()
    assert weir.alive()
    assert any("nested deeper than the limit" in l["msg"] or "invalid event" in l["msg"]
               for l in weir.stderr_lines())


def test_gzip_bomb_is_refused_and_counted(weir):
    mport = start(weir)
    ok = Valid(weir)
    # 64 MiB of one repeated entry compress to ~64 KiB: over decompressed_size_limit (4m)
    one = fwd.pack_entries([entry(et(T0, 0), {"z": "0" * 1000})])
    blob = gzip.compress(one * (64 * 1024 * 1024 // len(one)), compresslevel=9)
    assert len(blob) < 1024 * 1024  # under chunk_size_limit on the wire
    ch = "bomb"
    req = b"\x93\xa4bomb" + fwd.raw_bin(blob) + fwd.packb({"chunk": ch, "compressed": "gzip"})
    s = socket.create_connection(("127.0.0.1", weir.port))
    s.sendall(req)
    s.settimeout(5)
    got = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except socket.timeout:
        pass
    s.close()
    assert got == b"", "a decompression bomb must not be acked"
    ok.send()
    assert weir.alive()
    assert any("exceeds the limit" in l["msg"] for l in weir.stderr_lines())
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_input_decode_errors_total", input="forward") >= 1
    assert metric(text, "weir_process_resident_memory_bytes") < 64 * 1024 * 1024
    assert not [r for r in weir.read_records() if "z" in r]
