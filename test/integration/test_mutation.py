"""Network-level mutation fuzzing of the forward input (issue: nothing is
left behind by bad input). Several concurrent clients send valid requests of
every mode (Message, Forward, PackedForward, CompressedPackedForward with
gzip and zstd, with and without `chunk`), mutated: bytes flipped, cut,
inserted, doubled or replaced by a length that lies; written whole, or a few
bytes at a time, or abandoned midway. A valid client keeps streaming on its
own connection and must get every ack. Afterwards a graceful SIGTERM must
finish promptly (no worker left waiting for `shutdown_timeout`), and under
the sanitizer build LeakSanitizer must report nothing (conftest's teardown
fails on any error line; this test also reads weir's stderr for sanitizer
reports)."""
import base64
import os
import random
import socket
import threading
import time

import pytest

import fwd
from conftest import T0, poll
from fwd import entry, et

SECONDS = float(os.environ.get("WEIR_MUTATION_SECONDS", "12"))
CLIENTS = int(os.environ.get("WEIR_MUTATION_CLIENTS", "3"))


def valid_request(rng, n):
    """One valid request of a random mode; returns (bytes, chunk or None)."""
    chunk = base64.b64encode(rng.randbytes(9)).decode() if rng.random() < 0.7 else None
    opts = {"chunk": chunk} if chunk else {}
    recs = [entry(et(T0, i) if rng.random() < 0.5 else T0 + i,
                  {"n": n, "i": i, "msg": "x" * rng.randint(0, 300), "nested": {"a": [1, 2, {"b": None}]}})
            for i in range(rng.randint(1, 40))]
    mode = rng.choice(["message", "forward", "packed", "packed_str", "gzip", "gzip2", "zstd"])
    tag = rng.choice(["app.a", "kube.var.log.containers.x_y_z-1.log", "t"])
    if mode == "message":
        return fwd.message(tag, recs[0][0], recs[0][1], opts), chunk
    if mode == "forward":
        return fwd.forward(tag, recs, opts), chunk
    if mode == "packed":
        return fwd.packed_forward(tag, recs, opts), chunk
    if mode == "packed_str":
        return fwd.packed_forward(tag, recs, opts, as_str=True), chunk
    if mode == "zstd":
        return fwd.compressed_packed_forward(tag, recs, {**opts, "compressed": "zstd"}, codec="zstd"), chunk
    members = 2 if mode == "gzip2" else 1
    return fwd.compressed_packed_forward(tag, recs, {**opts, "compressed": "gzip"}, members=members), chunk


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if not data:
            break
        pos = rng.randrange(len(data))
        if op == 0:      # flip bits
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1:    # cut the tail
            del data[pos:]
        elif op == 2:    # insert random bytes
            data[pos:pos] = rng.randbytes(rng.randint(1, 16))
        elif op == 3:    # double a slice
            end = min(len(data), pos + rng.randint(1, 64))
            data[pos:pos] = data[pos:end]
        elif op == 4:    # a length prefix that lies
            data[pos:pos] = rng.choice([b"\xdb\xff\xff\xff\xf0", b"\xdd\x7f\xff\xff\xff", b"\xc6\x10\x00\x00\x00",
                                        b"\xdf\x00\x10\x00\x00", b"\xd9\xff"])
        elif op == 5:    # an interesting byte
            data[pos] = rng.choice([0xc1, 0xc0, 0xff, 0x00, 0x92, 0x93, 0xd7, 0xc7, 0x7f])
        else:            # drop a slice from the middle
            del data[pos:pos + rng.randint(1, 32)]
    return bytes(data)


def hostile_client(port, seed, stop, stats):
    rng = random.Random(seed)
    n = 0
    while not stop.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
        except OSError:
            time.sleep(0.05)
            continue
        s.settimeout(0.02)
        try:
            for _ in range(rng.randint(1, 6)):
                if stop.is_set():
                    break
                data, _ = valid_request(rng, n)
                n += 1
                if rng.random() < 0.85:
                    data = mutate(rng, data)
                style = rng.random()
                if style < 0.5:
                    s.sendall(data)
                elif style < 0.8:  # a few bytes at a time
                    step = rng.choice([1, 3, 7, 13])
                    for i in range(0, len(data), step):
                        s.sendall(data[i:i + step])
                        if rng.random() < 0.05:
                            time.sleep(0.001)
                else:              # abandoned midway
                    s.sendall(data[:rng.randint(0, len(data))])
                    break
                stats["requests"] += 1
                try:
                    s.recv(4096)   # an ack, or nothing, or a close
                except (socket.timeout, OSError):
                    pass
        except OSError:
            pass
        finally:
            if rng.random() < 0.5:
                try:
                    s.shutdown(socket.SHUT_WR)  # half-close, then close
                except OSError:
                    pass
            s.close()
            stats["connections"] += 1


@pytest.mark.parametrize("settings", ["defaults", "limits"])
def test_mutated_requests_leave_nothing_behind(weir, settings):
    """`defaults`: the embedded defaults (idle_timeout 300s: nothing is
    cleaned up by a timer during the run); `limits`: small request limits,
    skip_invalid_event true and a short idle_timeout."""
    weir.allow_errors = True  # refused requests log errors by design
    extra = {"defaults": "",
             "limits": "  chunk_size_limit 1m\n  decompressed_size_limit 4m\n  idle_timeout 2s\n"
                       "  skip_invalid_event true"}[settings]
    weir.start(weir.config(source_extra=extra, system="  shutdown_timeout 10s"))
    stop = threading.Event()
    stats = {"requests": 0, "connections": 0}
    threads = [threading.Thread(target=hostile_client, args=(weir.port, 1000 + i, stop, stats), daemon=True)
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    acked = 0
    rng = random.Random(7)
    deadline = time.monotonic() + SECONDS
    try:
        with weir.conn() as c:
            while time.monotonic() < deadline:
                ch = base64.b64encode(rng.randbytes(9)).decode()
                c.send(fwd.packed_forward("valid", [entry(et(T0, acked), {"valid": acked})], {"chunk": ch}))
                c.expect_ack(ch)
                acked += 1
                time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert acked > 50, f"the valid client got only {acked} acks"
    assert stats["requests"] > 100, stats
    # every valid record was written
    poll(lambda: sum(1 for r in weir.read_records() if "valid" in r) >= acked, 10,
         what=f"{acked} valid records written")
    # graceful stop: prompt, whatever the hostile clients left half done
    t0 = time.monotonic()
    rc = weir.stop()
    took = time.monotonic() - t0
    log = weir.stderr_text()
    print(f"{stats['requests']} hostile requests on {stats['connections']} connections, {acked} valid acks; "
          f"SIGTERM took {took:.2f}s")
    assert "did not finish within shutdown_timeout" not in log, log[-3000:]
    assert took < 5, f"SIGTERM took {took:.1f}s"
    assert rc == 0, f"weir exited with {rc}: {log[-3000:]}"
    for bad in ("LeakSanitizer", "AddressSanitizer", "runtime error:"):
        assert bad not in log, log[log.index(bad) - 200:][:4000]
