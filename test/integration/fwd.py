"""Fluent forward protocol helpers for weir's integration tests.

Builders produce the exact bytes of requests (see
shared/reference/forward-protocol.md), so tests control every encoding detail
(str vs bin entries, gzip members, EventTime vs integer vs float time, nil
options). FwdConn is a raw TCP client that reads back exactly one msgpack object
(an ack) at a time, keeping the raw bytes for byte-for-byte checks. For the
shared-key handshake (<security>): the client's PING, reading the server's HELO.
"""
import gzip
import hashlib
import os
import socket
import struct
import time

import msgpack

try:
    import zstandard
except ImportError:  # pragma: no cover - the venv has it
    zstandard = None

NOOPT = object()  # "no options element at all"


# ---------------------------------------------------------------- encoding --

def et(sec, nsec=0):
    """EventTime: ext type 0, uint32 seconds + uint32 nanoseconds (big-endian)."""
    return msgpack.ExtType(0, struct.pack(">II", sec, nsec))


def et_ext8(sec, nsec=0):
    """EventTime encoded as ext8 (c7 08 00 ...) instead of fixext8, as raw bytes."""
    return b"\xc7\x08\x00" + struct.pack(">II", sec, nsec)


def packb(obj):
    return msgpack.packb(obj, use_bin_type=True)


def str_header(n):
    if n < 32:
        return bytes([0xA0 | n])
    if n < 0x100:
        return b"\xd9" + bytes([n])
    if n < 0x10000:
        return b"\xda" + struct.pack(">H", n)
    return b"\xdb" + struct.pack(">I", n)


def bin_header(n):
    if n < 0x100:
        return b"\xc4" + bytes([n])
    if n < 0x10000:
        return b"\xc5" + struct.pack(">H", n)
    return b"\xc6" + struct.pack(">I", n)


def raw_str(data: bytes) -> bytes:
    """msgpack str holding arbitrary bytes (may be invalid UTF-8)."""
    return str_header(len(data)) + data


def raw_bin(data: bytes) -> bytes:
    return bin_header(len(data)) + data


def array_header(n):
    if n < 16:
        return bytes([0x90 | n])
    if n < 0x10000:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def map_header(n):
    if n < 16:
        return bytes([0x80 | n])
    if n < 0x10000:
        return b"\xde" + struct.pack(">H", n)
    return b"\xdf" + struct.pack(">I", n)


def raw_array(*packed_elements) -> bytes:
    """An array whose elements are given already packed."""
    return array_header(len(packed_elements)) + b"".join(packed_elements)


def _opt_tail(opts):
    return [] if opts is NOOPT else [packb(opts)]


# ---------------------------------------------------------------- requests --

def entry(t, record, meta=None):
    """[time, record], or Fluent Bit's [[time, meta], record] when meta is given."""
    return [[t, meta], record] if meta is not None else [t, record]


def message(tag, t, record, opts=NOOPT):
    """Message mode: [tag, time, record, option?]."""
    return raw_array(packb(tag), packb(t), packb(record), *_opt_tail(opts))


def forward(tag, entries, opts=NOOPT):
    """Forward mode: [tag, [[time, record], ...], option?]."""
    return raw_array(packb(tag), packb(entries), *_opt_tail(opts))


def pack_entries(entries):
    return b"".join(packb(e) for e in entries)


def packed_forward(tag, entries, opts=NOOPT, as_str=False, blob=None):
    """PackedForward: entries concatenated into one bin (default) or str."""
    if blob is None:
        blob = pack_entries(entries)
    enc = raw_str(blob) if as_str else raw_bin(blob)
    return raw_array(packb(tag), enc, *_opt_tail(opts))


def gzip_members(blob, members=1):
    """blob split into `members` parts, each its own gzip stream, concatenated."""
    if members <= 1:
        return gzip.compress(blob)
    step = max(1, -(-len(blob) // members))
    parts = [blob[i:i + step] for i in range(0, len(blob), step)]
    return b"".join(gzip.compress(p) for p in parts)


def gzip_members_of_entries(entries, groups):
    """One gzip member per group of entries (how Fluentd gzips each buffer append)."""
    out = b""
    i = 0
    for g in groups:
        out += gzip.compress(pack_entries(entries[i:i + g]))
        i += g
    assert i == len(entries)
    return out


def compressed_packed_forward(tag, entries, opts=None, as_str=False, codec="gzip",
                              members=1, data=None):
    """CompressedPackedForward; opts gets "compressed" set to codec unless it has one."""
    opts = dict(opts or {})
    opts.setdefault("compressed", codec)
    if data is None:
        blob = pack_entries(entries)
        if codec == "gzip":
            data = gzip_members(blob, members)
        elif codec == "zstd":
            data = zstandard.ZstdCompressor().compress(blob)
        else:
            raise ValueError(codec)
    enc = raw_str(data) if as_str else raw_bin(data)
    return raw_array(packb(tag), enc, packb(opts))


def ack_bytes_for(chunk_packed: bytes) -> bytes:
    """The exact reply to a request whose `chunk` value was packed as chunk_packed."""
    return b"\x81\xa3ack" + chunk_packed


# ------------------------------------------------------------------ client --

def unpack_one(buf: bytes):
    """(obj, nbytes) for the first complete msgpack object in buf, or None."""
    u = msgpack.Unpacker(raw=False, strict_map_key=False, unicode_errors="surrogateescape")
    u.feed(buf)
    try:
        obj = u.unpack()
    except msgpack.OutOfData:
        return None
    return obj, u.tell()


class FwdConn:
    """A raw forward-protocol TCP connection."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout

    def send(self, data: bytes):
        self.sock.sendall(data)

    def send_pieces(self, pieces, delay=0.0):
        """Send each piece with its own send(); sleep `delay` between pieces."""
        for i, p in enumerate(pieces):
            self.sock.sendall(p)
            if delay and i + 1 < len(pieces):
                time.sleep(delay)

    def send_bytewise(self, data: bytes, delay=0.003):
        self.send_pieces([data[i:i + 1] for i in range(len(data))], delay)

    def read_raw_object(self, timeout=None) -> bytes:
        """The raw bytes of the next msgpack object the server sends."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            got = unpack_one(self.buf) if self.buf else None
            if got is not None:
                _, n = got
                raw, self.buf = self.buf[:n], self.buf[n:]
                return raw
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete msgpack reply within {timeout or self.timeout}s; "
                                   f"have {self.buf!r}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not data:
                raise ConnectionError(f"server closed the connection; partial reply {self.buf!r}")
            self.buf += data

    def read_ack(self, timeout=None):
        raw = self.read_raw_object(timeout)
        return unpack_one(raw)[0]

    def expect_ack_raw(self, chunk_packed: bytes, timeout=None):
        raw = self.read_raw_object(timeout)
        assert raw == ack_bytes_for(chunk_packed), (
            f"ack bytes {raw!r} != expected {ack_bytes_for(chunk_packed)!r}")

    def expect_ack(self, chunk, timeout=None):
        """Ack for a `chunk` str (packed the standard way)."""
        self.expect_ack_raw(packb(chunk), timeout)

    def wait_closed(self, timeout=None):
        """Wait for EOF/reset; return the bytes received before it (should be b"")."""
        deadline = time.monotonic() + (timeout or self.timeout)
        got = self.buf
        self.buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"connection still open after {timeout or self.timeout}s; "
                                   f"received {got!r}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionResetError, BrokenPipeError):
                return got
            if not data:
                return got
            got += data

    def nothing_received(self, wait=0.3) -> bytes:
        """Bytes that arrive within `wait` seconds (b"" if none; None if closed)."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return b""
        except ConnectionResetError:
            return None
        return data if data else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------- handshake --

def sha512_hex(*parts):
    h = hashlib.sha512()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
    return h.hexdigest()


def read_obj(c, timeout=5.0):
    """The next msgpack object from the server, decoded (bin stays bytes)."""
    return unpack_one(c.read_raw_object(timeout))[0]


def ping_bytes(nonce, auth_salt, key, host, user="", password=None, salt=None,
               raw_salt_str=False, digest=None):
    """(PING as a client `host` with shared key `key` builds it, salt). salt: bytes
    (sent as bin unless raw_salt_str: Fluent Bit's 16 raw bytes in a str) or a str
    (Fluentd's 32 hex chars, the default)."""
    if salt is None:
        salt = os.urandom(16).hex()
    if digest is None:
        digest = sha512_hex(salt, host, nonce, key)
    pwd = sha512_hex(auth_salt, user, password) if password is not None else ""
    if raw_salt_str:
        enc_salt = raw_str(salt)
    else:
        enc_salt = packb(salt)
    return raw_array(packb("PING"), packb(host), enc_salt, packb(digest),
                     packb(user), packb(pwd)), salt


def read_helo(c):
    """The server's HELO (asserting its shape); returns its options."""
    helo = read_obj(c)
    assert isinstance(helo, list) and len(helo) == 2 and helo[0] == "HELO", helo
    opts = helo[1]
    assert set(opts) == {"nonce", "auth", "keepalive"}, opts
    assert isinstance(opts["nonce"], bytes) and len(opts["nonce"]) == 16, opts
    return opts
