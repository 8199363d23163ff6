"""A real Fluent Bit (5.1.1, ../shared/peers) for the tests that use it as a
sender: found at $REPO/../shared/peers/fluent-bit/fluent-bit, else
$FLUENT_BIT, else `fluent-bit` on PATH (fluent_bit_or_skip skips the test,
saying how to provide it, when it is nowhere). FluentBit writes YAML
configs under tmp_path/fb, runs each in its own process group and stops
them all in kill_all()."""
import json
import os
import shutil
import signal
import subprocess
from datetime import datetime, timedelta, timezone

import pytest

from conftest import REPO, poll
from peer_proc import file_tail, stop_group

START_TIMEOUT = 20.0

# weir injects the event time under `event_time`, not the standard `time`:
# Fluent Bit's cri parser keeps its own `time` key (the CRI timestamp as
# written) and weir's injected keys replace same-named record keys. "%s.%N"
# is exact to the nanosecond, compared as a string.
INJECT = """    time_key event_time
    time_type string
    time_format %s.%N
    tag_key tag"""

# 2025-12-18T02:42:48Z, the brief's example line
BASE = 1766025768



def find_fluent_bit():
    shared = os.path.normpath(os.path.join(REPO, "..", "shared", "peers", "fluent-bit", "fluent-bit"))
    for cand in (shared, os.environ.get("FLUENT_BIT"), shutil.which("fluent-bit")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def yaml_value(v):
    if isinstance(v, bool):
        v = "on" if v else "off"
    return json.dumps(str(v))  # a JSON string is a YAML double-quoted scalar


def yaml_section(props, indent="    "):
    items = list(props.items())
    lines = [f"{indent}- {items[0][0]}: {yaml_value(items[0][1])}"]
    lines += [f"{indent}  {k}: {yaml_value(v)}" for k, v in items[1:]]
    return "\n".join(lines)


class FluentBit:
    """Runs Fluent Bit on YAML configs written under tmp_path/fb; every
    process is stopped (SIGTERM, then SIGKILL) by the fixture."""

    def __init__(self, binary, tmp_path):
        self.bin = binary
        self.dir = tmp_path / "fb"
        self.dir.mkdir()
        self.logs = tmp_path / "logs"
        self.logs.mkdir()
        self.proc = None
        self.procs = []
        self.runs = 0
        self.log_path = None  # its log (stderr)

    def config(self, port, output=None, service=None, tail=None):
        svc = {"flush": "0.2", "grace": "2", "log_level": "info", "http_server": False,
               "storage.path": str(self.dir / "storage"), "storage.sync": "normal",
               **(service or {})}
        inp = {"name": "tail", "tag": "kube.*", "path": str(self.logs / "*.log"),
               "read_from_head": True, "multiline.parser": "cri",
               "db": str(self.dir / "tail.db"), "refresh_interval": "1",
               "storage.type": "filesystem", **(tail or {})}
        out = {"name": "forward", "match": "*", "host": "127.0.0.1", "port": port, **(output or {})}
        text = "service:\n" + "".join(f"  {k}: {yaml_value(v)}\n" for k, v in svc.items())
        text += "pipeline:\n  inputs:\n" + yaml_section(inp) + "\n  outputs:\n" + yaml_section(out) + "\n"
        return text

    def start(self, port, text=None, **kw):
        """Runs Fluent Bit on `text` (a YAML config), or on config(port, **kw)."""
        assert self.proc is None or self.proc.poll() is not None, "Fluent Bit already running"
        cfg = self.dir / f"fluent-bit{self.runs}.yaml"
        cfg.write_text(text if text is not None else self.config(port, **kw))
        self.log_path = str(self.dir / f"fluent-bit{self.runs}.stderr")
        out_path = str(self.dir / f"fluent-bit{self.runs}.stdout")
        self.runs += 1
        with open(self.log_path, "wb") as err, open(out_path, "wb") as out:
            # its own session, so that stop_group reaches every thread/child
            self.proc = subprocess.Popen([self.bin, "-c", str(cfg)], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, cwd=str(self.dir),
                                         start_new_session=True, env={**os.environ, "TZ": "UTC"})
        self.procs.append(self.proc)
        poll(self._started, START_TIMEOUT, interval=0.05, what="Fluent Bit to start")
        return self

    def _started(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"Fluent Bit exited with {self.proc.returncode}:\n{self.log()}")
        # its output's first worker starts once the pipeline runs (older
        # versions without output workers said "[engine] started")
        log = self.log()
        return "[output:forward:forward.0] worker #0 started" in log or "[engine] started" in log

    def log(self):
        return file_tail(self.log_path, 200_000) if self.log_path else ""

    def errors(self):
        return [l for l in self.log().splitlines() if "[error]" in l]

    def stop(self):
        """SIGTERM (SIGKILL after 15 s); returns the exit code."""
        p, self.proc = self.proc, None
        if p is None:
            return None
        stop_group(p, signal.SIGTERM, 15)
        return p.returncode

    def stop_ok(self):
        rc = self.stop()
        assert rc == 0, f"Fluent Bit exited with {rc} after SIGTERM:\n{self.log()[-5000:]}"

    def kill_all(self):
        for p in self.procs:
            stop_group(p, signal.SIGTERM, 15)


def fluent_bit_or_skip(tmp_path):
    binary = find_fluent_bit()
    if binary is None:
        pytest.skip("Fluent Bit not found: put it at ../shared/peers/fluent-bit/fluent-bit "
                    "(next to the repository), set FLUENT_BIT=/path/to/fluent-bit, or put "
                    "fluent-bit on PATH")
    return FluentBit(binary, tmp_path)


# ---------------------------------------------------------------- CRI lines --

def rfc3339(sec, nsec, style, offset_min=0):
    """The CRI timestamp of sec.nsec: `nano` is Go's RFC3339Nano (containerd,
    CRI-O: trailing zeros and an all-zero fraction left out), `fixed9` always
    has 9 digits; offset_min writes the same instant in another zone."""
    tz = timezone(timedelta(minutes=offset_min))
    dt = datetime.fromtimestamp(sec, tz)
    frac = f"{nsec:09d}"
    if style == "nano":
        frac = frac.rstrip("0")
    text = dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "")
    if offset_min == 0:
        return text + "Z"
    sign = "+" if offset_min > 0 else "-"
    h, m = divmod(abs(offset_min), 60)
    return f"{text}{sign}{h:02d}:{m:02d}"


LOG_TEXTS = [
    lambda i: json.dumps({"level": "ERROR", "msg": "x", "i": i}, separators=(",", ":")),
    lambda i: f"plain text line {i} with \"quotes\", a \\backslash\\ and\ta tab",
    lambda i: json.dumps({"level": "info", "msg": f"h\u00e9llo w\u00f6rld \u2713 {i}", "i": i},
                         ensure_ascii=False, separators=(",", ":")),
    lambda i: f"GET /api/v1/items/{i}?q=a%20b HTTP/1.1 200 {i * 7} \u65e5\u672c",
]


def tag_of(path):
    """Fluent Bit's `kube.*`: the file's path with '/' as '.' (leading '/' dropped)."""
    return "kube." + str(path).lstrip("/").replace("/", ".")


class CriFile:
    """A CRI log file and the records Fluent Bit must make of it."""

    def __init__(self, path, seed):
        self.path = path
        self.seed = seed
        self.tag = tag_of(path)
        self.n = 0          # records so far
        self.expected = []  # (tag, "sec.nsec", record)

    def lines(self, count, partial_every=5, pad=0, long_every=0):
        """`count` more records as CRI lines (bytes), recording what each must become.
        Every `partial_every`-th record (none if 0) is written as 2-3 `P` lines and an `F`;
        every `long_every`-th one (none if 0) is about 40 kB of UTF-8 cut every 16 KiB,
        as the kubelet does, whatever character the cut falls in; `pad` makes each
        log about that many characters longer."""
        out = []
        for _ in range(count):
            i = self.n
            self.n += 1
            k = i + self.seed
            sec = BASE + self.seed * 1000 + i
            nsec = [0, 982123456, 500000000, 1, 120000, 999999999, 7000][k % 7]
            offset = [0, 0, 60, 0, -330, 0, 0, 345][k % 8]
            style = "fixed9" if k % 3 == 0 else "nano"
            if style == "nano" and nsec == 0:
                # Fluent Bit 5.1.1 applies the zone offset of a timestamp
                # without a fraction with the wrong sign (it sends
                # 2025-12-17T21:13:16-05:30 as 1766005996, not 1766025796;
                # with ".5" or ".000000000" the same offset is right). Such a
                # line is Fluent Bit's mistake, not weir's: write it in UTC.
                offset = 0
            stream = "stderr" if k % 4 == 3 else "stdout"
            log = LOG_TEXTS[k % len(LOG_TEXTS)](i)
            if pad:
                log += " " + "".join(chr(0x61 + (i + j) % 26) for j in range(pad))
            ts = rfc3339(sec, nsec, style, offset)
            if long_every and i % long_every == long_every - 1:
                body = "".join(f"{j} \u00fcn\u00efc\u00f8d\u00e9 \u2713 \U0001f600 " for j in range(1700))
                # a prefix that makes the first cut fall inside a character
                log = next(lg for lg in (f"long {i}:" + "." * n + " " + body for n in range(8))
                           if lg.encode()[16384] >> 6 == 2)
                data = log.encode()
                pieces = [data[a:a + 16384] for a in range(0, len(data), 16384)]
                for j, piece in enumerate(pieces):
                    pts = rfc3339(sec, min(nsec + j * 1000, 999999999), style, offset)
                    out.append(f"{pts} {stream} {'F' if j == len(pieces) - 1 else 'P'} ".encode() + piece)
                rec = {"time": ts, "stream": stream, "_p": "P", "log": log}
            elif partial_every and i % partial_every == partial_every - 1:
                # split on characters; each part has its own, later time; the
                # joined record keeps the first part's `time` and `_p` ("P":
                # Fluent Bit 5.1.1's cri parser does not rewrite it)
                nparts = 2 + k % 2
                step = -(-len(log) // (nparts + 1))
                cuts = [j * step for j in range(1, nparts + 1)]
                pieces = [log[a:b] for a, b in zip([0] + cuts, cuts + [len(log)])]
                for j, piece in enumerate(pieces):
                    pts = rfc3339(sec, min(nsec + j * 1000, 999999999), style, offset)
                    out.append(f"{pts} {stream} {'F' if j == len(pieces) - 1 else 'P'} {piece}".encode())
                rec = {"time": ts, "stream": stream, "_p": "P", "log": log}
            else:
                out.append(f"{ts} {stream} F {log}".encode())
                rec = {"time": ts, "stream": stream, "_p": "F", "log": log}
            self.expected.append((self.tag, sec, nsec, rec))
        return b"".join(l + b"\n" for l in out)

    def write(self, count, **kw):
        data = self.lines(count, **kw)
        with open(self.path, "ab") as f:
            f.write(data)


def expected_events(files, integer_time=False):
    out = []
    for f in files:
        for tag, sec, nsec, rec in f.expected:
            out.append((tag, f"{sec}.{0 if integer_time else nsec:09d}", rec))
    return out


def split(rec):
    rec = dict(rec)
    return rec.pop("tag", None), rec.pop("event_time", None), rec


def assert_records(records, expected):
    """Exactly `expected` ((tag, "sec.nsec", record)), each once. Not in order:
    Fluent Bit's forward output has 2 workers, so two chunks may travel on two
    connections at once; every record is identified by (tag, log), unique here."""
    got = [split(r) for r in records]
    exp = {(tag, rec["log"]): (t_, rec) for tag, t_, rec in expected}
    assert len(exp) == len(expected), "the test wrote two identical records"
    seen = set()
    for i, (tag, t_, rec) in enumerate(got):
        key = (tag, rec.get("log"))
        assert key in exp, f"record {i}: unexpected tag/log {key!r}: {rec!r}"
        assert key not in seen, f"record {i}: duplicate {key!r}"
        seen.add(key)
        et_, erec = exp[key]
        assert rec == erec, f"record {i} ({tag}): {rec!r} != expected {erec!r}"
        assert t_ == et_, f"record {i} ({tag}, {erec}): event time {t_!r} != {et_!r}"
    missing = [k for k in exp if k not in seen]
    assert not missing and len(got) == len(expected), (
        f"{len(got)} records out, {len(expected)} expected; missing: {missing[:10]}")
