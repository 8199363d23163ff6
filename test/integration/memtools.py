"""Shared by the memory-bound tests (test_memory.py, test_memory_attack.py,
test_kafka.py): peak RSS, the sanitizer check, the 1 KiB entries large
requests repeat, and raw PackedForward framing for requests sent piecewise.
docs/architecture.md, "Streamed requests" and "Memory budget"."""
import os

import msgpack

import fwd
from conftest import T0
from fwd import et

MiB = 1 << 20


def _sanitized():
    with open(os.environ.get("WEIR_BIN", "build/weir"), "rb") as f:
        return b"__asan_init" in f.read()


# Under AddressSanitizer RSS also holds the quarantine of freed memory and
# shadow memory: VmHWM says nothing about weir's own bound there; the
# accounted peak (weir_memory_in_use_peak_bytes) is checked in both builds.
SANITIZED = _sanitized()

# one 64 KiB block of 64 entries of ~1 KiB; requests repeat it
ENTRY = msgpack.packb([et(T0, 1), {"msg": "x" * 990, "k": "v"}], use_bin_type=True)
PER_BLOCK = (64 * 1024) // len(ENTRY)
BLOCK = ENTRY * PER_BLOCK


def vm_hwm(pid):
    """weir's peak RSS (VmHWM from /proc/PID/status), in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def head_packed(tag, blob_len):
    """The head of a PackedForward request whose entries (blob_len bytes) follow."""
    return fwd.array_header(3) + fwd.packb(tag) + fwd.bin_header(blob_len)


def opts(chunk, **extra):
    return fwd.packb({"chunk": chunk, **extra})


def send_blocks(sock, nblocks, block=BLOCK):
    for _ in range(nblocks):
        sock.sendall(block)


def read_ack(sock, timeout):
    """The next msgpack object on a raw socket (an ack)."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        try:
            got = fwd.unpack_one(buf) if buf else None
        except Exception:
            got = None
        if got is not None:
            return got[0]
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the ack")
        buf += data
