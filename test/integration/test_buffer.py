"""<buffer>: file and memory chunk buffers, retries, overflow, secondary and
dead letters, crash recovery (docs/buffer.md is the contract).

"Backend down" is a file output whose path goes through a regular file
(ENOTDIR); "backend recovers" deletes that file. Records are unique
({"seq": N, ...}) and every test compares the exact records delivered.
"""
import base64
import datetime
import glob
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import threading
import time

import msgpack
import pytest

import fwd
from conftest import T0, T0_DAY, WEIR_BIN, poll
from fwd import et, entry
from helpers import config, match

# --------------------------------------------------------------- chunk files --

_CRC32C = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C.append(_c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    tab = _CRC32C
    for b in data:
        crc = tab[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard CRC-32C check value


def _ext_hook(code, data):
    if code == 0 and len(data) == 8:
        return ("ET",) + struct.unpack(">II", data)
    return msgpack.ExtType(code, data)


def parse_chunk(path):
    """Parse a chunk file (docs/buffer.md, format version 1).

    Returns a dict: size, header fields, meta (dict), header_crc_ok, blocks
    [{off, end, tag, records, entries}], good_end (end of the last whole,
    checksum-valid block), problem (None or why the header is unusable).
    """
    with open(path, "rb") as f:
        data = f.read()
    info = {"path": path, "size": len(data), "blocks": [], "problem": None, "good_end": 0}
    if len(data) < 64:
        info["problem"] = "short"
        return info
    if data[:8] != b"WEIRCHNK":
        info["problem"] = "magic"
        return info
    version, flags, meta_len = struct.unpack_from("<HHI", data, 8)
    created_ns, timekey, records, blocks = struct.unpack_from("<QQII", data, 16)
    (hcrc,) = struct.unpack_from("<I", data, 60)
    info.update(version=version, flags=flags, meta_len=meta_len, created_ns=created_ns, timekey=timekey,
                hdr_records=records, hdr_blocks=blocks, reserved=data[40:60])
    if 64 + meta_len > len(data):
        info["problem"] = "meta"
        return info
    meta = data[64:64 + meta_len]
    info["header_crc_ok"] = crc32c(data[0:32] + data[40:60] + meta) == hcrc
    info["meta"] = msgpack.unpackb(meta, raw=False)
    p = 64 + meta_len
    while len(data) - p >= 16:
        ln, nrec, crc, tl, res = struct.unpack_from("<IIIHH", data, p)
        if p + 16 + tl + ln > len(data):
            break
        tag = data[p + 16:p + 16 + tl]
        payload = data[p + 16 + tl:p + 16 + tl + ln]
        if crc32c(payload, crc32c(tag)) != crc or nrec == 0:
            break
        u = msgpack.Unpacker(raw=False, ext_hook=_ext_hook, strict_map_key=False)
        u.feed(payload)
        entries = list(u)
        info["blocks"].append({"off": p, "end": p + 16 + tl + ln, "tag": tag.decode(), "records": nrec,
                               "entries": entries})
        p += 16 + tl + ln
    info["good_end"] = p
    return info


def chunk_files(bufdir):
    return sorted(glob.glob(os.path.join(glob.escape(bufdir), "*.chunk")))


def chunk_seqs(info):
    """(tag, seq) of every record in a parsed chunk, in order."""
    out = []
    for b in info["blocks"]:
        for e in b["entries"]:
            out.append((b["tag"], e[1]["seq"]))
    return out


def assert_chunk_whole(info):
    assert info["problem"] is None, f"{info['path']}: unusable header ({info['problem']})"
    assert info["version"] == 1 and info["header_crc_ok"], f"{info['path']}: bad header {info}"
    assert info["good_end"] == info["size"], (
        f"{info['path']}: {info['size'] - info['good_end']} bytes after the last whole block "
        f"({len(info['blocks'])} blocks)")
    for b in info["blocks"]:
        assert len(b["entries"]) == b["records"], f"{info['path']}: block record count {b}"


# ------------------------------------------------------------------- records --

PAD = "p" * 24


def rec(seq, **extra):
    r = {"seq": seq, "pad": PAD}
    r.update(extra)
    return r


def seq_time(seq):
    """A distinct EventTime per seq, all on T0's day."""
    return T0 + seq // 1000, (seq % 1000) * 1000


def entries_for(seqs, t=None):
    out = []
    for s in seqs:
        sec, nsec = t if t is not None else seq_time(s)
        out.append(entry(et(sec, nsec), rec(s)))
    return out


def chunk_id():
    return base64.b64encode(os.urandom(12)).decode()


def request(tag, seqs, t=None):
    """(bytes, chunk id) of a PackedForward request asking for an ack."""
    ch = chunk_id()
    return fwd.packed_forward(tag, entries_for(seqs, t), {"chunk": ch}), ch


def send_acked(conn, tag, seqs, timeout=10.0, t=None):
    data, ch = request(tag, seqs, t)
    conn.send(data)
    conn.expect_ack(ch, timeout=timeout)


def block_size(tag, seqs):
    """Bytes one request's records take in a chunk (block header + tag + entries)."""
    return 16 + len(tag) + len(fwd.pack_entries(entries_for(seqs)))


def out_seqs(records, tag=None):
    """Seqs of output lines (checking each line is the record sent for its seq)."""
    out = []
    for r in records:
        seq = r.get("seq")
        assert isinstance(seq, int), f"output line without seq: {r}"
        sec, nsec = seq_time(seq)
        exp = {"seq": seq, "pad": PAD, "tag": tag if tag is not None else r.get("tag"),
               "time": float(f"{sec}.{nsec:09d}")}
        got = dict(r)
        assert abs(got.pop("time", 0) - exp.pop("time")) < 5e-7, f"bad time in {r}"
        assert got == exp, f"output line {r} is not the record sent for seq {seq}"
        out.append(seq)
    return out


def read_lines_tolerant(paths):
    """(records, torn): JSON lines of the files; a file's last line without a
    newline that does not parse (a write cut by kill -9) is counted, not parsed."""
    recs, torn = [], []
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        lines = data.split(b"\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                recs.append(json.loads(line))
            except ValueError:
                if i == len(lines) - 1:
                    torn.append((p, line[:120]))
                else:
                    raise AssertionError(f"{p}: line {i + 1} is not JSON: {line[:300]!r}")
    return recs, torn


# -------------------------------------------------------------------- config --

FLOAT_TIME_TAG_INJECT = "    time_key time\n    time_type float\n    tag_key tag"


def buffered_config(port, out_path, buffer, keys="", out_type="file", out_extra="", secondary=None,
                    system="", append=True, inject=True, source_extra=""):
    """forward source -> one <match **> output with a <buffer> (and a <secondary>)."""
    sec = ""
    if secondary is not None:
        sec = f"""  <secondary>
    @type file
    path {secondary}
    append true
    <format>
      @type json
    </format>
    <inject>
      time_key time
      time_type float
      tag_key tag
    </inject>
  </secondary>
"""
    if out_type == "file":
        out = match("**", "file", path=out_path, append=append, fmt="json",
                    inject=FLOAT_TIME_TAG_INJECT if inject else None, extra=out_extra, buffer=buffer,
                    buffer_keys=keys, sections=sec)
    else:
        out = match("**", out_type, extra=out_extra, buffer=buffer, buffer_keys=keys, sections=sec)
    return config(port, system=system, source_extra=source_extra, matches=out)


class Backend:
    """A file output target that can be made to fail: its path goes through
    `blocker`, a regular file while down (ENOTDIR), removed to recover."""

    def __init__(self, tmp, name="down"):
        self.blocker = os.path.join(tmp, name)
        self.prefix = os.path.join(self.blocker, "r")

    def down(self):
        if os.path.isdir(self.blocker):
            shutil.rmtree(self.blocker)
        with open(self.blocker, "w") as f:
            f.write("not a directory\n")
        return self

    def up(self):
        if os.path.isfile(self.blocker):
            os.unlink(self.blocker)
        return self


# -------------------------------------------------------------------- fixture --

OUT_FILE_DOWN = r"cannot write records of tag .*: Not a directory"


@pytest.fixture
def bw(weir, tmp_path):
    """The weir fixture plus expected error lines: bw.expect_errors(regex, ...)
    allows error-level log lines matching one of the regexes (all others fail
    the test). At teardown weir is stopped (SIGTERM, exit 0) before the check."""
    weir.expected_errors = []
    weir.expect_errors = lambda *rx: weir.expected_errors.extend(rx)
    weir.buf = os.path.join(str(tmp_path), "buf")
    weir.backend = Backend(str(tmp_path))
    yield weir
    problems = []
    if weir.proc is not None and weir.proc.poll() is None:
        try:
            weir.stop_ok()
        except AssertionError as e:
            problems.append(str(e)[-3000:])
    if weir.runs:
        bad = [l for l in weir.stderr_lines() if l.get("level") in ("error", "fatal")
               and not any(re.search(rx, l.get("msg", "")) for rx in weir.expected_errors)]
        if bad:
            problems.append(f"unexpected error log lines: {bad[:5]}")
    weir.allow_errors = True  # checked here, with the expected ones
    if problems:
        pytest.fail("teardown: " + "\n".join(problems))


def kill9(weir):
    weir.proc.send_signal(signal.SIGKILL)
    weir.proc.wait(10)
    weir.proc = None


def msgs(weir, level=None, rx=None):
    return [l["msg"] for l in weir.stderr_lines()
            if (level is None or l.get("level") == level) and (rx is None or re.search(rx, l.get("msg", "")))]


def wait_msg(weir, rx, level=None, timeout=10.0):
    return poll(lambda: msgs(weir, level, rx), timeout, what=f"log line /{rx}/\n{weir.stderr_text(True)}")


def wait_delivered(weir, prefix, n, timeout=15.0):
    """Poll until the output has at least n lines; return them."""
    def enough():
        recs = weir.read_records(prefix)
        return recs if len(recs) >= n else None
    try:
        return poll(enough, timeout, what=f"{n} output records")
    except AssertionError:
        got = weir.read_records(prefix)
        raise AssertionError(f"{len(got)} of {n} records delivered after {timeout}s; weir log:\n"
                             f"{weir.stderr_text(True)}")


def wait_stable(weir, bufdir, prefix, quiet=1.0, timeout=30.0):
    """Wait until the buffer dir holds no chunk and the output stops growing."""
    poll(lambda: not chunk_files(bufdir), timeout, what=f"no chunk files in {bufdir}: {chunk_files(bufdir)}")
    last, since = None, time.monotonic()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sizes = [os.path.getsize(p) for p in weir.output_files(prefix)]
        if sizes != last:
            last, since = sizes, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)
    raise AssertionError("output kept growing")


def still_open_no_reply(conn, wait):
    """Assert nothing arrives on conn for `wait` s and it is not closed."""
    got = conn.nothing_received(wait)
    assert got is not None, "weir closed the connection"
    assert got == b"", f"unexpected reply {got!r}"


# ------------------------------------------------------------- 1. kill -9 --

N_REQ, PER_REQ = 200, 500


@pytest.mark.parametrize("fsync", [False, True], ids=["nofsync", "fsync"])
def test_kill9_acked_records_survive(bw, tmp_path, fsync):
    """kill -9 in the middle of an acked stream of 200 x 500 records (three
    times, at random points; each restart recovers while the stream goes on):
    in the end every acked record is delivered (at least once), each request
    whole or not at all; duplicates and stored-but-unacked records are
    measured and printed."""
    out = os.path.join(str(tmp_path), "out", "r")
    conf = buffered_config(bw.port, out, f"""    @type file
    path {bw.buf}
    flush_interval 1s
    chunk_limit_size 64k
    retry_wait 0.2s
    fsync {"true" if fsync else "false"}""", append=False)
    # a kill between a chunk file's creation and its header write leaves a
    # short file: weir moves it to corrupt/ (it holds no record)
    bw.expect_errors(r"chunk .* is unreadable \(shorter than a chunk header\); moved to corrupt/")
    seed = int(time.time() * 1000) % 100000
    rnd = random.Random(seed)
    acked, sent, rounds = [], [], []
    for rnd_no in range(3):
        bw.start(conf)
        errors = []
        stop = threading.Event()
        first = len(sent)

        def sender():
            try:
                with bw.conn(timeout=10) as c:
                    for i in range(first, N_REQ):
                        if stop.is_set():
                            return
                        data, ch = request("kill.nine", range(i * PER_REQ, (i + 1) * PER_REQ))
                        sent.append(i)
                        c.send(data)
                        c.expect_ack(ch, timeout=10)
                        acked.append(i)
            except (OSError, ConnectionError, TimeoutError) as e:
                errors.append(repr(e))

        th = threading.Thread(target=sender, daemon=True)
        th.start()
        want = len(acked) + rnd.randint(15, 45)
        poll(lambda: len(acked) >= want or not th.is_alive(), 30, what=f"{want} acks")
        kill9(bw)
        stop.set()
        th.join(15)
        assert not th.is_alive()
        assert len(acked) >= want, f"sender stopped early: {errors}"
        left = [parse_chunk(p) for p in chunk_files(bw.buf)]
        rounds.append(f"round {rnd_no}: killed after {len(acked)} acks, {len(sent)} sent, "
                      f"{len(left)} chunk files ({sum(len(chunk_seqs(i)) for i in left)} records) left")

    # last start: recovery runs while the rest of the stream arrives
    bw.start(conf)
    with bw.conn(timeout=10) as c:
        for i in range(len(sent), N_REQ):
            sent.append(i)
            send_acked(c, "kill.nine", range(i * PER_REQ, (i + 1) * PER_REQ))
            acked.append(i)
    wait_stable(bw, bw.buf, out)
    recs, torn = read_lines_tolerant(bw.output_files(out))
    seqs = out_seqs(recs, tag="kill.nine")
    counts = {}
    for s in seqs:
        counts[s] = counts.get(s, 0) + 1
    acked_set, sent_set = set(acked), set(sent)
    missing = [s for i in acked for s in range(i * PER_REQ, (i + 1) * PER_REQ) if s not in counts]
    unsent = [s for s in counts if s // PER_REQ not in sent_set]
    dups = sum(c - 1 for c in counts.values())
    stored_not_acked = sorted({s // PER_REQ for s in counts if s // PER_REQ not in acked_set})
    per_req = {}
    for s in counts:
        per_req[s // PER_REQ] = per_req.get(s // PER_REQ, 0) + 1
    partial = {i: n for i, n in per_req.items() if n != PER_REQ}
    recovered = msgs(bw, rx=r"recovered \d+ chunks|torn")
    corrupt_dir = os.path.join(bw.buf, "corrupt")
    corrupt = sorted(os.listdir(corrupt_dir)) if os.path.isdir(corrupt_dir) else []
    for name in corrupt:
        assert os.path.getsize(os.path.join(corrupt_dir, name)) < 64, f"corrupt/{name} may hold records"
    print(f"\n[kill9 fsync={fsync} seed={seed}] " + "; ".join(rounds) +
          f"\n  total: sent {len(sent)} requests, acked {len(acked)} ({len(acked) * PER_REQ} records); "
          f"output {len(seqs)} lines, {len(counts)} distinct; DUPLICATES {dups}; requests stored but not "
          f"acked: {stored_not_acked}; torn output lines {len(torn)}; short chunk files moved to "
          f"corrupt/: {len(corrupt)}\n  recovery logs: {recovered}")
    assert not missing, f"{len(missing)} acked records lost, e.g. {missing[:10]}"
    assert not unsent, f"records that were never sent: {unsent[:10]}"
    assert not partial, f"requests delivered in part (distinct records per request): {partial}"
    assert not chunk_files(bw.buf)


# --------------------------------------------------- 2. backend down, recovers --

def test_backend_down_then_recovers_in_order(bw, tmp_path):
    """Acks arrive while the backend is down (the buffer holds the records),
    flushes are retried with back-off, and after the backend recovers every
    record is delivered once, in order."""
    be = bw.backend.down()
    bw.expect_errors(OUT_FILE_DOWN)
    conf = buffered_config(bw.port, be.prefix, f"""    @type file
    path {bw.buf}
    flush_interval 1s
    chunk_limit_size 8k
    retry_wait 0.2s
    retry_max_interval 0.5s
    retry_randomize false""")
    bw.start(conf)
    n_req, per = 20, 25
    with bw.conn() as c:
        for i in range(n_req):
            send_acked(c, "down.up", range(i * per, (i + 1) * per), timeout=5)
    assert chunk_files(bw.buf), "acked records must be in chunk files"
    # retried with back-off: 0.2s, 0.4s, then capped at 0.5s
    retries = poll(lambda: (lambda m: m if len(m) >= 3 else None)(
        msgs(bw, "warn", r"flush of chunk [0-9a-f]{16} failed .*; retry \d+ in")), 10, what="3 retry lines")
    waits = [float(re.search(r"retry \d+ in ([0-9.]+)s", m).group(1)) for m in retries[:3]]
    assert waits == [0.2, 0.4, 0.5], retries
    assert not bw.read_records(be.prefix)
    stored = [s for p in chunk_files(bw.buf) for _, s in chunk_seqs(parse_chunk(p))]
    assert sorted(stored) == list(range(n_req * per)), "the chunks must hold exactly the acked records"
    be.up()
    recs = wait_delivered(bw, be.prefix, n_req * per)
    wait_stable(bw, bw.buf, be.prefix, quiet=0.5)
    recs = bw.read_records(be.prefix)
    assert out_seqs(recs, tag="down.up") == list(range(n_req * per))
    wait_msg(bw, r"flush succeeded after \d+ retries", "info")


# ------------------------------------------------------------ 3-5. overflow --

OVF_TAG, OVF_PER = "ovf", 20


def ovf_seqs(i):
    return range(i * OVF_PER, (i + 1) * OVF_PER)


def overflow_config(bw, action, chunks=4, extra=""):
    """One chunk per request (chunk_limit_records); room for `chunks` of them."""
    bs = block_size(OVF_TAG, ovf_seqs(0))
    return buffered_config(bw.port, bw.backend.prefix, f"""    @type file
    path {bw.buf}
    flush_interval 1s
    chunk_limit_size 1k
    chunk_limit_records {OVF_PER}
    total_limit_size {chunks * bs + bs // 2}
    {f"overflow_action {action}" if action else ""}
    retry_wait 0.2s
    retry_max_interval 0.5s
    retry_forever true
{extra}""")


def test_overflow_block_holds_acks_then_resumes(bw):
    be = bw.backend.down()
    bw.expect_errors(OUT_FILE_DOWN)
    bw.start(overflow_config(bw, "block"))
    with bw.conn() as c:
        for i in range(4):
            send_acked(c, OVF_TAG, ovf_seqs(i), timeout=5)
        held = []
        data, ch = request(OVF_TAG, ovf_seqs(4))
        c.send(data)
        held.append(ch)
        still_open_no_reply(c, 1.5)
        for i in range(5, 8):  # more requests on the blocked connection: held as well
            data, ch = request(OVF_TAG, ovf_seqs(i))
            c.send(data)
            held.append(ch)
            time.sleep(0.05)
        still_open_no_reply(c, 0.5)
        # a new connection is still accepted
        with bw.conn() as c2:
            data, ch2 = request(OVF_TAG + ".other", [10_000])
            c2.send(data)
            still_open_no_reply(c2, 0.3)
            assert len(chunk_files(bw.buf)) == 4, chunk_files(bw.buf)
            be.up()
            for ch in held:
                c.expect_ack(ch, timeout=10)
            c2.expect_ack(ch2, timeout=10)
    recs = wait_delivered(bw, be.prefix, 8 * OVF_PER + 1)
    wait_stable(bw, bw.buf, be.prefix, quiet=0.3)
    recs = bw.read_records(be.prefix)
    assert out_seqs([r for r in recs if r["tag"] == OVF_TAG], OVF_TAG) == list(range(8 * OVF_PER))
    assert out_seqs([r for r in recs if r["tag"] != OVF_TAG], OVF_TAG + ".other") == [10_000]
    assert not msgs(bw, rx="too many data|dropping"), msgs(bw, "warn")


def test_overflow_drop_oldest_chunk(bw):
    be = bw.backend.down()
    bw.expect_errors(OUT_FILE_DOWN)
    bw.start(overflow_config(bw, "drop_oldest_chunk"))
    n = 8
    with bw.conn() as c:
        for i in range(n):
            send_acked(c, OVF_TAG, ovf_seqs(i), timeout=5)
    drops = msgs(bw, "warn", r"dropping the oldest chunk")
    assert len(drops) == n - 4, drops
    assert all(f"with {OVF_PER} records" in d for d in drops), drops
    infos = [parse_chunk(p) for p in chunk_files(bw.buf)]
    assert len(infos) == 4
    for info in infos:
        assert_chunk_whole(info)
        # queued chunks: the header counters were written at enqueue
        assert (info["hdr_records"], info["hdr_blocks"]) == (OVF_PER, 1), info
    assert sorted(s for i in infos for _, s in chunk_seqs(i)) == [s for i in range(n - 4, n) for s in ovf_seqs(i)]
    be.up()
    wait_delivered(bw, be.prefix, 4 * OVF_PER)
    wait_stable(bw, bw.buf, be.prefix, quiet=0.3)
    assert out_seqs(bw.read_records(be.prefix), OVF_TAG) == [s for i in range(n - 4, n) for s in ovf_seqs(i)]


@pytest.mark.parametrize("action", [None, "throw_exception"], ids=["default", "explicit"])
def test_overflow_throw_exception_no_ack(bw, action):
    be = bw.backend.down()
    bw.expect_errors(OUT_FILE_DOWN)
    bw.start(overflow_config(bw, action))
    with bw.conn() as c:
        for i in range(4):
            send_acked(c, OVF_TAG, ovf_seqs(i), timeout=5)
        data, ch = request(OVF_TAG, ovf_seqs(4))
        c.send(data)
        still_open_no_reply(c, 2.5)
        wait_msg(bw, r"buffer space has too many data", "warn")
        wait_msg(bw, rf"not acknowledging a request of {OVF_PER} records", "warn")
        assert len(chunk_files(bw.buf)) == 4
        be.up()
        wait_delivered(bw, be.prefix, 4 * OVF_PER)
        # the sender retries the refused request: stored and acked now
        send_acked(c, OVF_TAG, ovf_seqs(4), timeout=5)
    wait_delivered(bw, be.prefix, 5 * OVF_PER)
    wait_stable(bw, bw.buf, be.prefix, quiet=0.3)
    assert out_seqs(bw.read_records(be.prefix), OVF_TAG) == list(range(5 * OVF_PER))


def test_overflow_block_stops_reading_sockets(bw):
    """block: once the buffer and the ingest queue are full weir stops reading
    (the sender's send() blocks, the connection stays open); when the backend
    recovers every held request is acked and delivered."""
    be = bw.backend.down()
    bw.expect_errors(OUT_FILE_DOWN)
    big = "x" * (256 * 1024)
    bw.start(buffered_config(bw.port, be.prefix, f"""    @type file
    path {bw.buf}
    flush_interval 1s
    chunk_limit_size 1m
    total_limit_size 4m
    overflow_action block
    retry_wait 0.2s
    retry_max_interval 0.5s
    retry_forever true"""))
    n = 400  # 100 MiB: more than the ingest queue (64 MiB) + buffer + socket buffers
    reqs = []
    for i in range(n):
        ch = chunk_id()
        reqs.append((fwd.packed_forward("big", [entry(et(*seq_time(i)), {"seq": i, "pad": big})],
                                        {"chunk": ch}), ch))
    progress = {"sent": 0, "error": None}

    def sender(sock):
        try:
            for data, _ in reqs:
                sock.sendall(data)
                progress["sent"] += 1
        except OSError as e:
            progress["error"] = repr(e)

    with bw.conn(timeout=60) as c:
        th = threading.Thread(target=sender, args=(c.sock,), daemon=True)
        th.start()
        # wait until the sender makes no progress for 2 s
        last, since = -1, time.monotonic()
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and th.is_alive():
            if progress["sent"] != last:
                last, since = progress["sent"], time.monotonic()
            elif time.monotonic() - since > 2.0:
                break
            time.sleep(0.05)
        assert th.is_alive() and progress["sent"] < n, (
            f"weir kept reading: all {progress['sent']} requests sent ({progress['error']})")
        stalled_at = progress["sent"]
        acked_before = 0
        while True:
            try:
                c.expect_ack(reqs[acked_before][1], timeout=0.3)
                acked_before += 1
            except TimeoutError:
                break
        assert acked_before <= 16, f"{acked_before} acks with a 4 MiB buffer of 256 KiB records"
        assert progress["error"] is None, progress["error"]
        print(f"\n[block] the sender's send() stalled after {stalled_at} requests "
              f"({stalled_at * len(reqs[0][0]) / 2**20:.0f} MiB), {acked_before} acked before the backend recovered")
        be.up()
        for _, ch in reqs[acked_before:]:
            c.expect_ack(ch, timeout=60)
        th.join(10)
    recs = wait_delivered(bw, be.prefix, n, timeout=60)
    assert [r["seq"] for r in recs] == list(range(n))
    assert all(r["pad"] == big for r in recs)


def sigterm_within(weir, timeout):
    """SIGTERM weir; its exit code, or None (then it is killed) if it hangs."""
    weir.proc.send_signal(signal.SIGTERM)
    try:
        rc = weir.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        rc = None
        weir.proc.kill()
        weir.proc.wait()
    weir.proc = None
    return rc


def test_overflow_block_sigterm_exits_within_shutdown_timeout(bw):
    """SIGTERM while the ingest thread waits for buffer space (overflow_action
    block, backend down): weir exits within <system> shutdown_timeout, keeps the
    acked records in its chunks and delivers them on the next start."""
    be = bw.backend.down()
    bw.expect_errors(OUT_FILE_DOWN, r"did not finish within shutdown_timeout")
    conf = overflow_config(bw, "block").replace("<source>", "<system>\n  shutdown_timeout 2s\n</system>\n<source>")
    bw.start(conf)
    with bw.conn() as c:
        for i in range(4):
            send_acked(c, OVF_TAG, ovf_seqs(i), timeout=5)
        data, ch = request(OVF_TAG, ovf_seqs(4))
        c.send(data)
        still_open_no_reply(c, 1.0)
        t0 = time.monotonic()
        rc = sigterm_within(bw, 10)
        took = time.monotonic() - t0
    assert rc is not None, (f"weir did not exit within 10 s of SIGTERM (shutdown_timeout 2s) while blocked "
                            f"on a full buffer; last log lines:\n{chr(10).join(bw.stderr_text().splitlines()[-6:])}")
    assert rc == 0, f"exit code {rc}"
    print(f"\n[block+SIGTERM] exited {rc} after {took:.1f}s")
    assert len(chunk_files(bw.buf)) == 4
    be.up()
    bw.start(conf)
    wait_delivered(bw, be.prefix, 4 * OVF_PER)
    wait_stable(bw, bw.buf, be.prefix, quiet=0.3)
    got = out_seqs(bw.read_records(be.prefix), OVF_TAG)
    # request 4 was never acked: it may or may not have been stored
    assert got in (list(range(4 * OVF_PER)), list(range(5 * OVF_PER))), got


# ------------------------------------------- 6. retries exhausted: secondary / dead letter --

GIVE_UP = r"giving up on chunk [0-9a-f]{16} \(\d+ records\) after \d+ retries"


def dead_letter_path(dirpath, output_id):
    """<dir>/<output id>.<YYYYMMDD>.jsonl (today, UTC)."""
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")
    return os.path.join(dirpath, f"{output_id}.{day}.jsonl")


def check_dead_letters(path, tag, seqs, output_id):
    with open(path, "rb") as f:
        lines = [json.loads(l) for l in f.read().splitlines() if l.strip()]
    got = []
    for l in lines:
        assert set(l) == {"time", "tag", "record", "output", "error"}, l
        assert l["tag"] == tag and l["output"] == output_id, l
        assert isinstance(l["error"], str) and l["error"], l
        seq = l["record"]["seq"]
        assert l["record"] == rec(seq), l
        sec, nsec = seq_time(seq)
        assert abs(l["time"] - float(f"{sec}.{nsec:09d}")) < 5e-7, l
        got.append(seq)
    assert got == list(seqs), got
    return lines


@pytest.mark.parametrize("limit", ["retry_max_times 2", "retry_timeout 1s"])
def test_retries_exhausted_dead_letter_null(bw, limit):
    """@type null never_flush: every flush fails; after the retry budget the
    records go to <buffer path>/dead-letter/null.0.<YYYYMMDD>.jsonl."""
    bw.expect_errors(GIVE_UP)
    bw.start(buffered_config(bw.port, None, f"""    @type file
    path {bw.buf}
    flush_interval 0.2s
    retry_wait 0.1s
    retry_randomize false
    {limit}""", out_type="null", out_extra="  never_flush true"))
    with bw.conn() as c:
        send_acked(c, "dl.null", range(0, 30))
        send_acked(c, "dl.null", range(30, 50))
    dl = os.path.join(bw.buf, "dead-letter")
    path = dead_letter_path(dl, "null.0")
    poll(lambda: not chunk_files(bw.buf) and os.path.exists(path), 10,
         what=f"dead letters in {path} ({glob.glob(dl + '/*')})")
    assert glob.glob(os.path.join(dl, "*")) == [path]
    check_dead_letters(path, "dl.null", range(50), "null.0")
    give_up = msgs(bw, "error", GIVE_UP)
    assert give_up, bw.stderr_text()
    if limit == "retry_max_times 2":
        assert all(m.endswith("after 2 retries: retryable error") for m in give_up), give_up
        retry_waits = [float(x) for x in re.findall(r"retry \d+ in ([0-9.]+)s", " ".join(msgs(bw, "warn")))]
        assert retry_waits[:2] == [0.1, 0.2], retry_waits
    wait_msg(bw, r"50 records|records written to the dead-letter file", "warn")


def test_retries_exhausted_dead_letter_file_output_with_id(bw):
    """A file output (with @id) that stays down: dead letters carry the
    backend's error and the output id."""
    be = bw.backend.down()
    bw.expect_errors(OUT_FILE_DOWN, GIVE_UP)
    bw.start(buffered_config(bw.port, be.prefix, f"""    @type file
    path {bw.buf}
    flush_interval 0.2s
    retry_wait 0.1s
    retry_max_times 1""", out_extra="  @id backend_a"))
    with bw.conn() as c:
        send_acked(c, "dl.file", range(10))
    path = dead_letter_path(os.path.join(bw.buf, "dead-letter"), "backend_a")
    poll(lambda: not chunk_files(bw.buf) and os.path.exists(path), 10, what=f"dead letters in {path}")
    lines = check_dead_letters(path, "dl.file", range(10), "backend_a")
    print(f"\n[dead letter] error field: {lines[0]['error']!r}")
    be.up()
    time.sleep(0.5)
    assert not bw.read_records(be.prefix), "given-up records must not reach the output later"


def test_retries_exhausted_secondary(bw, tmp_path):
    be = bw.backend.down()
    bw.expect_errors(OUT_FILE_DOWN, GIVE_UP)
    sec = os.path.join(str(tmp_path), "secondary", "s")
    bw.start(buffered_config(bw.port, be.prefix, f"""    @type file
    path {bw.buf}
    flush_interval 0.2s
    retry_wait 0.1s
    retry_max_times 2""", secondary=sec))
    with bw.conn() as c:
        send_acked(c, "dl.sec", range(0, 20))
        send_acked(c, "dl.sec", range(20, 40))
    recs = wait_delivered(bw, sec, 40)
    poll(lambda: not chunk_files(bw.buf), 5, what="no chunks")
    assert out_seqs(bw.read_records(sec), "dl.sec") == list(range(40))
    assert [os.path.basename(p) for p in bw.output_files(sec)] == [f"s.{T0_DAY}.log"]
    assert not os.path.exists(os.path.join(bw.buf, "dead-letter")) or not os.listdir(
        os.path.join(bw.buf, "dead-letter")), "records handed to <secondary> must not be dead letters"
    wait_msg(bw, r"records handed to <secondary> file\.0\.secondary", "warn")


def test_retries_exhausted_secondary_down_dead_letter(bw, tmp_path):
    """The <secondary> fails too: the records still end in the dead-letter file."""
    be = bw.backend.down()
    sec_be = Backend(str(tmp_path), "secdown").down()
    bw.expect_errors(OUT_FILE_DOWN, GIVE_UP, r"<secondary> .* failed too")
    bw.start(buffered_config(bw.port, be.prefix, f"""    @type file
    path {bw.buf}
    flush_interval 0.2s
    retry_wait 0.1s
    retry_max_times 0""", secondary=sec_be.prefix))
    with bw.conn() as c:
        send_acked(c, "dl.both", range(15))
    path = dead_letter_path(os.path.join(bw.buf, "dead-letter"), "file.0")
    poll(lambda: not chunk_files(bw.buf) and os.path.exists(path), 10, what=f"dead letters in {path}")
    check_dead_letters(path, "dl.both", range(15), "file.0")


def test_memory_buffer_dead_letter_path(bw, tmp_path):
    dl = os.path.join(str(tmp_path), "dlq")
    bw.expect_errors(GIVE_UP)
    bw.start(buffered_config(bw.port, None, f"""    @type memory
    flush_interval 0.2s
    retry_wait 0.1s
    retry_max_times 1
    dead_letter_path {dl}""", out_type="null", out_extra="  never_flush true"))
    with bw.conn() as c:
        send_acked(c, "dl.mem", range(12))
    path = dead_letter_path(dl, "null.0")
    poll(lambda: os.path.exists(path) and os.path.getsize(path) > 0, 10, what=f"dead letters in {path}")
    time.sleep(0.2)
    check_dead_letters(path, "dl.mem", range(12), "null.0")


# ------------------------------------------------- 7. corrupt chunks at start --

def keep_chunks_conf(bw, keys="", extra=""):
    """File buffer whose chunks stay staged (long flush_interval) until SIGTERM
    (flush_at_shutdown false: they stay on disk); backend = bw.backend."""
    return buffered_config(bw.port, bw.backend.prefix, f"""    @type file
    path {bw.buf}
    flush_interval 1h
    retry_wait 0.1s
    retry_max_interval 0.3s
{extra}""", keys=keys)


def recover_conf(bw, keys=""):
    return buffered_config(bw.port, bw.backend.prefix, f"""    @type file
    path {bw.buf}
    flush_interval 0.2s
    retry_wait 0.1s""", keys=keys)


def leave_chunks(bw, reqs, keys=""):
    """Run weir, send the acked requests [(tag, seqs)], SIGTERM: returns the
    parsed chunk files left on disk."""
    bw.start(keep_chunks_conf(bw, keys))
    with bw.conn() as c:
        for tag, seqs in reqs:
            send_acked(c, tag, seqs)
    bw.stop_ok()
    wait_msg(bw, r"records in \d+ chunks kept in .* for the next start", "info")
    infos = [parse_chunk(p) for p in chunk_files(bw.buf)]
    for i in infos:
        assert_chunk_whole(i)
    return infos


def test_sigterm_keeps_file_chunks_and_delivers_on_next_start(bw):
    """File buffer, flush_at_shutdown false (default): SIGTERM leaves the
    staged chunk on disk, whole and in the documented format; the next start
    recovers and delivers it."""
    bw.backend.up()
    reqs = [("keep.a", range(0, 10)), ("keep.a", range(10, 25)), ("keep.b", range(25, 30))]
    infos = leave_chunks(bw, reqs)
    assert not bw.read_records(bw.backend.prefix), "nothing may be flushed before the interval"
    assert len(infos) == 1, infos
    info = infos[0]
    assert re.fullmatch(r"[0-9a-f]{16}\.chunk", os.path.basename(info["path"])), info["path"]
    assert info["meta"] == {"tag": None, "timekey": -1, "output": "file.0"}, info["meta"]
    assert info["flags"] == 0 and info["reserved"] == bytes(20)
    assert abs(info["created_ns"] / 1e9 - time.time()) < 60
    assert [(b["tag"], b["records"]) for b in info["blocks"]] == [("keep.a", 10), ("keep.a", 15), ("keep.b", 5)]
    assert chunk_seqs(info) == [(t, s) for t, seqs in reqs for s in seqs]
    for b in info["blocks"]:
        for e in b["entries"]:
            assert e == [("ET",) + seq_time(e[1]["seq"]), rec(e[1]["seq"])], e
    bw.start(recover_conf(bw))
    wait_msg(bw, r"recovered 1 chunks, 30 records, \d+ bytes .*\(0 torn tails cut, 0 corrupt moved aside\)", "info")
    wait_delivered(bw, bw.backend.prefix, 30)
    wait_stable(bw, bw.buf, bw.backend.prefix, quiet=0.3)
    recs = bw.read_records(bw.backend.prefix)
    assert [(r["tag"], s) for r, s in zip(recs, out_seqs(recs))] == [(t, s) for t, seqs in reqs for s in seqs]


@pytest.mark.parametrize("damage", ["garbage", "truncate_last_block", "bad_crc_middle_block"])
def test_torn_tail_cut_on_recovery(bw, damage):
    bw.backend.up()
    reqs = [("torn", range(0, 10)), ("torn", range(10, 20)), ("torn", range(20, 30))]
    (info,) = leave_chunks(bw, reqs)
    blocks = info["blocks"]
    assert len(blocks) == 3
    with open(info["path"], "r+b") as f:
        if damage == "garbage":
            f.seek(0, 2)
            f.write(b"\x07garbage after the last block" + os.urandom(50))
            expect, cut = list(range(30)), 29 + 50
        elif damage == "truncate_last_block":
            f.truncate(blocks[2]["off"] + 16 + 11)
            expect, cut = list(range(20)), 16 + 11
        else:
            f.seek(blocks[1]["off"] + 40)
            b = f.read(1)
            f.seek(blocks[1]["off"] + 40)
            f.write(bytes([b[0] ^ 0xFF]))
            expect, cut = list(range(10)), info["size"] - blocks[1]["off"]
    bw.start(recover_conf(bw))
    torn = wait_msg(bw, r"torn or corrupt tail", "warn")
    assert re.search(rf"cut {cut} bytes after {len(expect) // 10} whole blocks \({len(expect)} records\)",
                     torn[0]), torn
    wait_msg(bw, rf"recovered 1 chunks, {len(expect)} records, .*\(1 torn tails cut, 0 corrupt", "info")
    wait_delivered(bw, bw.backend.prefix, len(expect))
    wait_stable(bw, bw.buf, bw.backend.prefix, quiet=0.3)
    assert out_seqs(bw.read_records(bw.backend.prefix), "torn") == expect


@pytest.mark.parametrize("damage", ["magic", "header_crc", "version", "meta_len"])
def test_bad_header_moved_to_corrupt(bw, damage):
    """Two chunks (<buffer tag>); one gets a bad header: it is moved to
    corrupt/ with an error line, weir starts and delivers the other."""
    bw.expect_errors(r"chunk .* is unreadable \(.*\); moved to corrupt/")
    bw.backend.up()
    infos = leave_chunks(bw, [("hdr.bad", range(0, 10)), ("hdr.good", range(10, 20))], keys="tag")
    assert len(infos) == 2
    bad = next(i for i in infos if i["meta"]["tag"] == "hdr.bad")
    with open(bad["path"], "r+b") as f:
        if damage == "magic":
            f.write(b"\x00" * 8)
        elif damage == "header_crc":
            f.seek(24)  # timekey: covered by the header CRC
            f.write(b"\x01")
        elif damage == "version":
            f.seek(8)
            f.write(b"\x09")
        else:
            f.seek(12)
            f.write(struct.pack("<I", 1 << 30))
    bw.start(recover_conf(bw, keys="tag"))
    wait_msg(bw, r"unreadable", "error")
    wait_delivered(bw, bw.backend.prefix, 10)
    wait_stable(bw, bw.buf, bw.backend.prefix, quiet=0.3)
    assert out_seqs(bw.read_records(bw.backend.prefix), "hdr.good") == list(range(10, 20))
    moved = os.path.join(bw.buf, "corrupt", os.path.basename(bad["path"]))
    assert os.path.isfile(moved), os.listdir(bw.buf)
    wait_msg(bw, r"recovered 1 chunks, 10 records, .*1 corrupt moved aside", "info")
    assert bw.alive()


def test_empty_and_odd_chunk_files(bw):
    """Zero-length chunk files (one with a non-hex name) and a header-only
    chunk (what a crash while a chunk is created leaves): removed with a
    warning, since nothing in them was ever acked; weir starts and delivers
    the valid chunk."""
    bw.backend.up()
    (info,) = leave_chunks(bw, [("odd", range(5))])
    os.makedirs(bw.buf, exist_ok=True)
    for name in ("xxx.chunk", "0000000000000001.chunk"):
        open(os.path.join(bw.buf, name), "wb").close()
    with open(info["path"], "rb") as f:
        head = f.read(64 + info["meta_len"])
    header_only = os.path.join(bw.buf, "0000000000000002.chunk")
    with open(header_only, "wb") as f:
        f.write(head)
    bw.start(recover_conf(bw))
    wait_delivered(bw, bw.backend.prefix, 5)
    wait_stable(bw, bw.buf, bw.backend.prefix, quiet=0.3)
    assert out_seqs(bw.read_records(bw.backend.prefix), "odd") == list(range(5))
    assert not chunk_files(bw.buf)
    assert bw.alive()
    assert not os.path.exists(os.path.join(bw.buf, "corrupt"))
    removed = msgs(bw, rx="a chunk with no records")
    assert len(removed) == 3, removed
    for name in ("xxx.chunk", "0000000000000001.chunk", "0000000000000002.chunk"):
        assert any(name in m for m in removed), (name, removed)


# ---------------------------------------------------------------- 8. full disk --

@pytest.fixture
def small_tmpfs(tmp_path):
    """A 256 KiB tmpfs at tmp/buf (skip when mount is not possible). Listed
    before `bw` in a test's arguments so that weir is stopped before umount."""
    d = os.path.join(str(tmp_path), "buf")
    os.makedirs(d)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", d], capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {p.stderr.decode(errors='replace').strip()}")
    yield d
    if subprocess.run(["umount", d], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", d], capture_output=True)


DISK_FULL = r"disk full writing .*: No space left on device; holding acks|cannot create chunk .*No space left"


@pytest.mark.parametrize("action", [None, "block"], ids=["default_overflow", "block"])
def test_disk_full_back_pressure_no_corrupt_chunk(small_tmpfs, bw, action):
    """The buffer path fills up (256 KiB tmpfs, backend down): acks are held
    (not refused), the connection stays open, every chunk on disk is whole;
    when the backend recovers the held requests are stored and acked, and every
    record is delivered exactly once; a restart finds no torn tail."""
    be = bw.backend.down()
    bw.expect_errors(OUT_FILE_DOWN, DISK_FULL)
    conf = buffered_config(bw.port, be.prefix, f"""    @type file
    path {bw.buf}
    flush_interval 0.3s
    chunk_limit_size 16k
    {f"overflow_action {action}" if action else ""}
    retry_wait 0.2s
    retry_max_interval 0.5s
    retry_forever true""")
    bw.start(conf)
    per = 40
    acked, held = [], []
    with bw.conn() as c:
        for i in range(200):
            data, ch = request("full", range(i * per, (i + 1) * per))
            c.send(data)
            try:
                c.expect_ack(ch, timeout=1.5)
            except TimeoutError:
                held.append((i, ch))
                break
            acked.append(i)
        assert held, f"256 KiB never filled up after {len(acked)} requests"
        still_open_no_reply(c, 1.0)
        for i in range(len(acked) + 1, len(acked) + 3):  # more requests: held too
            data, ch = request("full", range(i * per, (i + 1) * per))
            c.send(data)
            held.append((i, ch))
            time.sleep(0.05)
        still_open_no_reply(c, 1.0)
        infos = [parse_chunk(p) for p in chunk_files(bw.buf)]
        for info in infos:
            assert_chunk_whole(info)
        in_chunks = sorted(s for info in infos for _, s in chunk_seqs(info))
        assert in_chunks == list(range(len(acked) * per)), "the chunks must hold exactly the acked records"
        print(f"\n[disk full, overflow_action {action or 'default'}] {len(acked)} requests acked "
              f"({len(infos)} chunks), then acks held; df: "
              f"{os.statvfs(bw.buf).f_bfree * os.statvfs(bw.buf).f_frsize} bytes free")
        assert msgs(bw, "error", r"disk full|No space left on device"), msgs(bw, "error")
        be.up()
        for i, ch in held:
            try:
                c.expect_ack(ch, timeout=10)
            except TimeoutError:
                raise AssertionError(
                    f"request {i}, held while the disk was full, was never acked after space came back; "
                    f"log: {msgs(bw, rx='not acknowledging a request|cannot append|disk full|No space left')[:4]}")
    n = (len(acked) + len(held)) * per
    wait_delivered(bw, be.prefix, n, timeout=20)
    wait_stable(bw, bw.buf, be.prefix, quiet=0.5)
    assert out_seqs(bw.read_records(be.prefix), "full") == list(range(n))
    bw.stop_ok()
    bw.start(conf)
    with bw.conn() as c:
        send_acked(c, "full", range(n, n + 5))
    wait_delivered(bw, be.prefix, n + 5)
    assert not msgs(bw, rx="torn|unreadable"), msgs(bw, rx="torn|unreadable")


# ------------------------------------------------------------ 9. memory buffer --

def test_memory_buffer_flushes_after_interval(bw, tmp_path):
    out = os.path.join(str(tmp_path), "out", "r")
    bw.start(buffered_config(bw.port, out, """    @type memory
    flush_interval 1s"""))
    t0 = time.monotonic()
    with bw.conn() as c:
        send_acked(c, "mem.a", range(0, 10))
        send_acked(c, "mem.a", range(10, 30))
    if time.monotonic() - t0 < 0.5:
        assert not bw.read_records(out), "flushed before flush_interval"
    wait_delivered(bw, out, 30, timeout=5)
    took = time.monotonic() - t0
    assert 0.8 <= took, f"delivered after {took:.2f}s, flush_interval is 1s"
    assert out_seqs(bw.read_records(out), "mem.a") == list(range(30))
    assert not glob.glob(os.path.join(str(tmp_path), "**", "*.chunk"), recursive=True)


def test_memory_buffer_flushes_at_shutdown(bw, tmp_path):
    out = os.path.join(str(tmp_path), "out", "r")
    bw.start(buffered_config(bw.port, out, """    @type memory
    flush_interval 1h"""))
    with bw.conn() as c:
        send_acked(c, "mem.b", range(0, 40))
        send_acked(c, "mem.c", range(40, 50))
    time.sleep(0.3)
    assert not bw.read_records(out)
    bw.stop_ok()
    recs = bw.read_records(out)
    assert [(r["tag"], s) for r, s in zip(recs, out_seqs(recs))] == (
        [("mem.b", s) for s in range(40)] + [("mem.c", s) for s in range(40, 50)])


def test_file_buffer_flush_at_shutdown_true(bw, tmp_path):
    out = os.path.join(str(tmp_path), "out", "r")
    bw.start(buffered_config(bw.port, out, f"""    @type file
    path {bw.buf}
    flush_interval 1h
    flush_at_shutdown true"""))
    with bw.conn() as c:
        send_acked(c, "fas", range(25))
    assert chunk_files(bw.buf)
    bw.stop_ok()
    assert out_seqs(bw.read_records(out), "fas") == list(range(25))
    assert not chunk_files(bw.buf)


# -------------------------------------------------------------- 10. chunk keys --

@pytest.mark.parametrize("keys", ["tag", ""], ids=["tag_key", "no_key"])
def test_chunk_key_tag(bw, tmp_path, keys):
    """<buffer tag>: one chunk per tag, its tag in the metadata; <buffer>: one
    chunk holding both tags (metadata tag nil, each block with its tag)."""
    out = os.path.join(str(tmp_path), "out", "r")
    bw.start(buffered_config(bw.port, out, f"""    @type file
    path {bw.buf}
    flush_interval 1h
    flush_at_shutdown true""", keys=keys))
    sent = []
    with bw.conn() as c:
        for i in range(6):
            tag = "key.a" if i % 2 == 0 else "key.b"
            seqs = range(i * 10, (i + 1) * 10)
            send_acked(c, tag, seqs)
            sent += [(tag, s) for s in seqs]
    infos = [parse_chunk(p) for p in chunk_files(bw.buf)]
    for info in infos:
        assert_chunk_whole(info)
    if keys == "tag":
        assert sorted(i["meta"]["tag"] for i in infos) == ["key.a", "key.b"], [i["meta"] for i in infos]
        for info in infos:
            assert info["meta"]["timekey"] == -1 and info["meta"]["output"] == "file.0"
            assert chunk_seqs(info) == [x for x in sent if x[0] == info["meta"]["tag"]]
    else:
        assert len(infos) == 1 and infos[0]["meta"]["tag"] is None, [i["meta"] for i in infos]
        assert chunk_seqs(infos[0]) == sent
    bw.stop_ok()
    recs = bw.read_records(out)
    got = [(r["tag"], s) for r, s in zip(recs, out_seqs(recs))]
    for tag in ("key.a", "key.b"):
        assert [x for x in got if x[0] == tag] == [x for x in sent if x[0] == tag]
    assert sorted(got) == sorted(sent)


def test_chunk_keys_tag_time_lazy(bw, tmp_path):
    """<buffer tag,time> timekey 1h, lazy, timekey_wait 0: records of past
    hours are flushed at once (their slices are over), those of the current
    hour wait for the end of the hour, or shutdown (flush_at_shutdown true)."""
    now = time.time()
    if 3600 - now % 3600 < 20:
        time.sleep(3600 - now % 3600 + 1)
    now = int(time.time())
    cur_hour = now - now % 3600
    out = os.path.join(str(tmp_path), "out", "r")
    bw.start(buffered_config(bw.port, out, f"""    @type file
    path {bw.buf}
    timekey 1h
    timekey_wait 0
    flush_mode lazy
    flush_at_shutdown true""", keys="tag,time"))
    old1, old2 = T0 - T0 % 3600, T0 - T0 % 3600 + 3600  # two past hours

    def ents(seqs, sec):
        return [entry(et(sec + s % 60, 0), rec(s)) for s in seqs]

    with bw.conn() as c:
        for tag, seqs, sec in [("tk.a", range(0, 10), old1), ("tk.a", range(10, 20), cur_hour),
                               ("tk.b", range(20, 30), old2), ("tk.b", range(30, 40), cur_hour)]:
            ch = chunk_id()
            c.send(fwd.packed_forward(tag, ents(seqs, sec), {"chunk": ch}))
            c.expect_ack(ch)
        # one request spanning two past hours and the current one: split per slice
        ch = chunk_id()
        c.send(fwd.packed_forward("tk.c", ents(range(40, 45), old1) + ents(range(45, 50), old2) +
                                  ents(range(50, 55), cur_hour), {"chunk": ch}))
        c.expect_ack(ch)
    past = {s for s in list(range(0, 10)) + list(range(20, 30)) + list(range(40, 50))}
    recs = wait_delivered(bw, out, len(past), timeout=5)
    time.sleep(1.5)  # the flush thread looks at least once a second
    recs = bw.read_records(out)
    assert sorted(r["seq"] for r in recs) == sorted(past), "only past hours may be flushed"
    infos = [parse_chunk(p) for p in chunk_files(bw.buf)]
    assert sorted((i["meta"]["tag"], i["meta"]["timekey"], i["timekey"]) for i in infos) == [
        ("tk.a", cur_hour, cur_hour), ("tk.b", cur_hour, cur_hour), ("tk.c", cur_hour, cur_hour)]
    for i in infos:
        assert_chunk_whole(i)
    bw.stop_ok()
    recs = bw.read_records(out)
    assert sorted(r["seq"] for r in recs) == list(range(55))
    for r in recs:
        assert r["tag"] == ("tk.a" if r["seq"] < 20 else "tk.b" if r["seq"] < 40 else "tk.c"), r


def test_fsync_time_key_request_spanning_slices(bw, tmp_path):
    """fsync true with a time chunk key: a request whose records alternate
    between two hours fills the first hour's chunk while the request is being
    stored. It must be stored once and acked."""
    out = os.path.join(str(tmp_path), "out", "r")
    bw.start(buffered_config(bw.port, out, f"""    @type file
    path {bw.buf}
    timekey 1h
    timekey_wait 0
    chunk_limit_size 1k
    fsync true
    retry_wait 0.1s""", keys="time"))
    h1, h2 = T0 - T0 % 3600, T0 - T0 % 3600 + 3600
    # runs: 20 records of h1 (>1k: the chunk is full), 5 of h2, 5 of h1 again
    seq_secs = [(s, h1) for s in range(20)] + [(s, h2) for s in range(20, 25)] + [(s, h1) for s in range(25, 30)]
    ch = chunk_id()
    with bw.conn() as c:
        c.send(fwd.packed_forward("fs", [entry(et(sec, 0), rec(s)) for s, sec in seq_secs], {"chunk": ch}))
        try:
            c.expect_ack(ch, timeout=5)
            acked = True
        except TimeoutError:
            acked = False
        except ConnectionError:
            time.sleep(0.5)
            pytest.fail(f"weir closed the connection (alive: {bw.alive()}); stderr:\n{bw.stderr_text()[-3000:]}")
    wait_delivered(bw, out, 30, timeout=5)
    wait_stable(bw, bw.buf, out, quiet=0.3)
    recs = bw.read_records(out)
    assert acked, (f"the request was stored ({len(recs)} records delivered) but not acked; log: "
                   f"{msgs(bw, rx='not acknowledging|cannot')}")
    assert sorted(r["seq"] for r in recs) == list(range(30))


# ------------------------------------------------------------- 11. --dry-run --

def dry_run(tmp_path, text):
    path = os.path.join(str(tmp_path), "dry.conf")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", path], capture_output=True, timeout=20, cwd=str(tmp_path))
    return p.returncode, p.stderr.decode("utf-8", "replace"), path


def dry_conf(buffer, keys="", port=24224, extra_match=""):
    """The line numbers of this text are part of the expected messages below."""
    return config(port, bind=None, matches=match("**", "file", path="/nonexistent/out/r", extra=extra_match,
                                                 buffer=buffer, buffer_keys=keys))


@pytest.mark.parametrize("buffer,keys,line,msg", [
    ("    @type memory\n    flush_intervl 1s", "", 10,
     "unknown parameter 'flush_intervl' in <buffer>; did you mean 'flush_interval'?"),
    ("    @type memory\n    overflow_action explode", "", 10,
     "invalid value 'explode' for parameter 'overflow_action'; expected one of: throw_exception, block, "
     "drop_oldest_chunk"),
    # record keys are accepted (test_compat.py); output.rb's syntax checks of chunk keys stay errors
    ("    @type memory", "tag,h%st", 8, "in chunk_keys: invalid char in chunk key 'h%st'"),
    ("    @type memory", "$['kubernetes']", 8, "in chunk_keys: bracket notation is not allowed '$['kubernetes']'"),
    ("    @type disk", "", 9, "invalid value 'disk' for parameter '@type'; expected one of: memory, file"),
    ("    @type memory\n    chunk_limit_size 100", "", 10, "chunk_limit_size must be at least 1k"),
    ("    @type memory\n    chunk_limit_size 8m\n    total_limit_size 1m", "", 11,
     "total_limit_size is smaller than chunk_limit_size"),
    ("    @type memory\n    flush_at_shutdown maybe", "", 10,
     "invalid boolean value 'maybe' for parameter 'flush_at_shutdown'"),
], ids=["typo", "overflow_action", "key_char", "key_bracket", "type", "chunk_small",
        "total_small", "bool"])
def test_dry_run_buffer_errors(tmp_path, buffer, keys, line, msg):
    rc, err, path = dry_run(tmp_path, dry_conf(buffer, keys))
    assert rc == 1, err
    lines = err.splitlines()
    assert any(l.startswith(f"{path}:{line}: ") and msg in l for l in lines), (
        f"expected {path}:{line}: ...{msg}... in:\n{err}")
    assert lines[-1] == "1 error", err


def test_dry_run_buffer_all_errors_reported(tmp_path):
    rc, err, path = dry_run(tmp_path, dry_conf(
        "    @type memory\n    flush_intervl 1s\n    overflow_action explode\n    chunk_limit_size 1", keys="tag,h%st"))
    assert rc == 1
    assert err.splitlines()[-1] == "4 errors", err
    for m in ("did you mean 'flush_interval'?", "'explode'", "chunk key 'h%st'", "chunk_limit_size must be at least"):
        assert m in err, err


def test_dry_run_buffer_good_config(tmp_path):
    rc, err, path = dry_run(tmp_path, dry_conf(f"""    @type file
    path {tmp_path}/buf
    timekey 1h
    timekey_wait 10s
    chunk_limit_size 64k
    chunk_limit_records 1000
    total_limit_size 1m
    flush_mode lazy
    flush_thread_count 2
    overflow_action drop_oldest_chunk
    retry_type periodic
    retry_wait 0.2s
    retry_max_times 3
    retry_randomize false
    flush_at_shutdown true
    fsync true""", keys="tag,time", extra_match="""  <secondary>
    @type file
    path /nonexistent/secondary/s
  </secondary>
"""))
    assert rc == 0, err
    assert "configuration OK" in err
    assert not os.path.exists(os.path.join(str(tmp_path), "buf")), "--dry-run must not create the buffer path"


def test_dry_run_secondary_without_buffer(tmp_path):
    rc, err, path = dry_run(tmp_path, """<source>
  @type forward
</source>
<match **>
  @type file
  path /nonexistent/out/r
  <secondary>
    @type file
    path /nonexistent/s
  </secondary>
</match>
""")
    assert rc == 1 and "<secondary> needs a <buffer>" in err, err


# ------------------------------------------------------- enqueue / retry modes --

def test_full_chunk_enqueued_before_flush_interval(bw, tmp_path):
    """chunk_limit_size: a full chunk is enqueued (and flushed) at once; the
    rest waits for flush_interval (1h here), then SIGTERM keeps it on disk."""
    out = os.path.join(str(tmp_path), "out", "r")
    bw.start(buffered_config(bw.port, out, f"""    @type file
    path {bw.buf}
    flush_interval 1h
    chunk_limit_size 2k"""))
    bs = block_size("full.chunk", range(0, 15))
    assert 2048 // 3 < bs < 2048 // 2, bs  # two blocks fit in a chunk, three do not
    with bw.conn() as c:
        for i in range(5):
            send_acked(c, "full.chunk", range(i * 15, (i + 1) * 15))
    # blocks 0,1 fill chunk 1; 2,3 chunk 2 (enqueued when block 4 does not fit); 4 stays staged
    wait_delivered(bw, out, 60, timeout=5)
    time.sleep(0.5)
    assert out_seqs(bw.read_records(out), "full.chunk") == list(range(60))
    (info,) = [parse_chunk(p) for p in chunk_files(bw.buf)]
    assert chunk_seqs(info) == [("full.chunk", s) for s in range(60, 75)]


def test_recycled_chunk_file_killed_before_sealing(bw, tmp_path):
    """A delivered chunk's file is kept (`<id>.free`) and the next chunk is
    written over it (docs/buffer.md "Recycled files"): the old chunk's blocks
    stay after the new one's until it is sealed, behind an end mark. Here the
    new chunk holds one block the size of the old ones (same tag, same record
    sizes), so without the mark recovery would read the old chunk's second
    block as the new chunk's and deliver it twice. kill -9 while that chunk
    is staged: recovery finds exactly its records, no torn tail, removes the
    kept files, and every record is delivered once."""
    out = os.path.join(str(tmp_path), "out", "r")
    conf = buffered_config(bw.port, out, f"""    @type file
    path {bw.buf}
    flush_interval 1h
    chunk_limit_size 2k""")
    bw.start(conf)
    bs = block_size("recycle", range(0, 15))
    assert 2048 // 3 < bs < 2048 // 2, bs  # two blocks fit in a chunk, three do not
    with bw.conn() as c:
        for i in range(3):  # blocks 0,1: chunk 1 (enqueued when block 2 does not fit); block 2: chunk 2
            send_acked(c, "recycle", range(i * 15, (i + 1) * 15))
        wait_delivered(bw, out, 30, timeout=5)
        poll(lambda: glob.glob(os.path.join(glob.escape(bw.buf), "*.free")), 5, what="chunk 1's file kept")
        for i in range(3, 5):  # block 3 fills chunk 2; block 4 opens chunk 3, written over chunk 1's file
            send_acked(c, "recycle", range(i * 15, (i + 1) * 15))
        wait_delivered(bw, out, 60, timeout=5)
    (info,) = [parse_chunk(p) for p in chunk_files(bw.buf)]
    assert chunk_seqs(info) == [("recycle", s) for s in range(60, 75)], chunk_seqs(info)
    # written over chunk 1's file (header + 2 blocks): the end mark sits where
    # chunk 1's second block starts, the rest of that block after it
    end = info["good_end"]
    with open(info["path"], "rb") as f:
        data = f.read()
    assert data[end:end + 16] == bytes(16) and len(data) == end + bs, (end, len(data), bs)
    kill9(bw)
    bw.start(buffered_config(bw.port, out, f"""    @type file
    path {bw.buf}
    flush_interval 0.2s"""))
    wait_msg(bw, r"recovered 1 chunks, 15 records, \d+ bytes .*\(0 torn tails cut, 0 corrupt", "info")
    assert not msgs(bw, "warn", r"torn"), msgs(bw, "warn")
    wait_delivered(bw, out, 75)
    wait_stable(bw, bw.buf, out, quiet=0.3)
    assert out_seqs(bw.read_records(out), "recycle") == list(range(75))


def test_flush_mode_immediate(bw, tmp_path):
    out = os.path.join(str(tmp_path), "out", "r")
    bw.start(buffered_config(bw.port, out, f"""    @type file
    path {bw.buf}
    flush_mode immediate
    flush_interval 1h"""))
    t0 = time.monotonic()
    with bw.conn() as c:
        send_acked(c, "imm", range(7))
    wait_delivered(bw, out, 7, timeout=3)
    assert time.monotonic() - t0 < 2.0
    assert out_seqs(bw.read_records(out), "imm") == list(range(7))


def test_retry_type_periodic(bw):
    be = bw.backend.down()
    bw.expect_errors(OUT_FILE_DOWN)
    bw.start(buffered_config(bw.port, be.prefix, f"""    @type file
    path {bw.buf}
    flush_interval 0.2s
    retry_type periodic
    retry_wait 0.3s
    retry_randomize false"""))
    with bw.conn() as c:
        send_acked(c, "periodic", range(5))
    lines = poll(lambda: (lambda m: m if len(m) >= 4 else None)(msgs(bw, "warn", r"retry \d+ in")), 10,
                 what="4 retries")
    assert [re.search(r"retry (\d+) in ([0-9.]+)s", m).groups() for m in lines[:4]] == [
        ("1", "0.3"), ("2", "0.3"), ("3", "0.3"), ("4", "0.3")], lines
    be.up()
    wait_delivered(bw, be.prefix, 5)
    assert out_seqs(bw.read_records(be.prefix), "periodic") == list(range(5))


@pytest.mark.parametrize("btype", ["file", "memory"])
def test_flush_at_shutdown_backend_down_bounded_by_shutdown_timeout(bw, btype):
    """flush_at_shutdown true with the backend down: SIGTERM gives up after
    <system> shutdown_timeout; a file buffer keeps its chunk for the next
    start, a memory buffer logs the loss."""
    be = bw.backend.down()
    bw.expect_errors(OUT_FILE_DOWN, r"memory chunks could not be flushed before shutdown and are lost")
    path = f"\n    path {bw.buf}" if btype == "file" else ""
    conf = buffered_config(bw.port, be.prefix, f"""    @type {btype}{path}
    flush_interval 1h
    flush_at_shutdown true
    retry_wait 0.1s
    retry_max_interval 0.2s
    retry_forever true""", system="  shutdown_timeout 1s")
    bw.start(conf)
    with bw.conn() as c:
        send_acked(c, "fas.down", range(12))
    t0 = time.monotonic()
    rc = sigterm_within(bw, 8)
    took = time.monotonic() - t0
    assert rc == 0, f"exit code {rc} after {took:.1f}s"
    assert took < 4, f"SIGTERM took {took:.1f}s with shutdown_timeout 1s"
    if btype == "memory":
        wait_msg(bw, r"12 records in 1 memory chunks could not be flushed before shutdown and are lost", "error")
        return
    wait_msg(bw, r"12 records in 1 chunks kept in", "info")
    be.up()
    bw.start(conf)
    wait_delivered(bw, be.prefix, 12)
    assert out_seqs(bw.read_records(be.prefix), "fas.down") == list(range(12))


def test_fsync_stream_with_short_flush_interval(bw, tmp_path):
    """fsync true: the flush thread enqueues (and flushes, and frees) staged
    chunks every 10 ms while the ingest thread appends and fdatasyncs them.
    Every request must be acked once and delivered once, weir must survive
    (run against the ASan build: a chunk used after the flush freed it)."""
    out = os.path.join(str(tmp_path), "out", "r")
    bw.start(buffered_config(bw.port, out, f"""    @type file
    path {bw.buf}
    flush_interval 10ms
    fsync true"""))
    n, unacked, t0 = 0, [], time.monotonic()
    with bw.conn(timeout=5) as c:
        while time.monotonic() - t0 < 3.0 and n < 20000:
            data, ch = request("fsync.race", range(n * 5, n * 5 + 5))
            try:
                c.send(data)
                c.expect_ack(ch, timeout=3)
            except TimeoutError:
                unacked.append(n)
            except (ConnectionError, OSError) as e:
                time.sleep(0.3)
                pytest.fail(f"connection lost after {n} requests ({e!r}); weir alive: {bw.alive()}; stderr:\n"
                            + "\n".join(bw.stderr_text().splitlines()[:30]))
            n += 1
    assert not unacked, f"requests not acked: {unacked[:20]}; {msgs(bw, rx='not acknowledging')[:3]}"
    wait_delivered(bw, out, n * 5)
    wait_stable(bw, bw.buf, out, quiet=0.3)
    assert out_seqs(bw.read_records(out), "fsync.race") == list(range(n * 5))
    print(f"\n[fsync race] {n} requests acked and delivered")


# ------------------------------------------- a batch larger than the buffer --

@pytest.mark.parametrize("action", ["throw_exception", "block"])
def test_request_larger_than_total_limit_streams_through(weir, action):
    """A forward request of ~600 KB into a memory buffer of 64 KB in all
    (chunks of 8 KB): weir writes it chunk by chunk as the output frees
    space, acks it once all of it is in the buffer, and every record comes
    out once, in order; it is never refused whole (which would have the
    sender retry it forever). A request that fits the limit but not the free
    space is still refused whole under throw_exception (checked by the
    overflow tests above)."""
    weir.start(weir.config(buffer=f"""@type memory
    chunk_limit_size 8k
    total_limit_size 64k
    flush_interval 0.1s
    overflow_action {action}"""))
    n = 6000
    entries = [entry(et(T0, i), {"seq": i, "pad": "x" * 64}) for i in range(n)]
    ch = base64.b64encode(os.urandom(12)).decode()
    with weir.conn() as c:
        c.send(fwd.forward("big", entries, {"chunk": ch}))
        c.expect_ack(ch, timeout=30)
    recs = weir.wait_records(n, timeout=20)
    assert [r["seq"] for r in recs] == list(range(n))
    err = open(weir.stderr_path).read()
    assert "larger than total_limit_size" in err and "written chunk by chunk" in err, err
    assert "refused" not in err and "too many data" not in err, err
