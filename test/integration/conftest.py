"""Fixtures for weir's integration tests.

WEIR_BIN (env) is the weir binary (default: build/weir in the repo). Each test
gets a fresh tmp dir and free port; the `weir` fixture starts weir on a config,
and at teardown stops it with SIGTERM and checks that it exited 0, that every
stderr line is a JSON log object, and that none is at level error/fatal
(unless the test set `weir.allow_errors = True`).
"""
import glob
import json
import re
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import fwd  # noqa: E402
import helpers  # noqa: E402

WEIR_BIN = os.path.abspath(os.environ.get("WEIR_BIN") or os.path.join(REPO, "build", "weir"))
CLIENTS = os.path.join(HERE, "clients")
TEST_TIMEOUT = int(os.environ.get("WEIR_TEST_TIMEOUT", "60"))

# Records used across tests: 1700000000 = 2023-11-14T22:13:20Z.
T0 = 1700000000
T0_DAY = "20231114"


# ------------------------------------------------------------ per-test limit --

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# ------------------------------------------------------------------ helpers --

def free_port():
    """A port free for both TCP and UDP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.bind(("127.0.0.1", port))
        except OSError:
            continue
        return port
    raise RuntimeError("no free port")


def port_accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def poll(fn, timeout=10.0, interval=0.02, what="condition"):
    """Call fn until it returns a truthy value; return it, or fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def read_json_lines(paths):
    out = []
    for p in paths:
        with open(p, "rb") as f:
            lines = f.read().split(b"\n")
            # the piece after the last newline is a line weir may still be
            # writing (tests poll files that grow): only whole lines count
            for lineno, line in enumerate(lines[:-1], 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as e:
                    raise AssertionError(f"{p}:{lineno}: not a UTF-8 JSON line ({e}): {line[:300]!r}")
                t = rec.get("time") if isinstance(rec, dict) else None
                if isinstance(t, str) and re.fullmatch(r"\d+\.\d{9}", t):
                    rec["time"] = float(t)  # helpers.TIME_TAG_INJECT's "%s.%N" time
                out.append(rec)
    return out


class LineCounter:
    """Complete lines in the files paths() names, reading only what was
    appended since the last call: polls of a large output count lines this
    way and parse them once, at the end (parsing every line on each poll
    took longer than a test's limit on a slow machine). A gate, not a
    result: blank lines count here and not in read_json_lines."""

    def __init__(self, paths):
        self.paths, self.seen, self.lines = paths, {}, 0

    def __call__(self):
        for path in self.paths():
            off = self.seen.get(path, 0)
            if os.path.getsize(path) < off:
                off = 0  # rewritten: counted again (an overcount only makes the caller parse sooner)
            with open(path, "rb") as f:
                f.seek(off)
                data = f.read()
            end = data.rfind(b"\n") + 1  # a partial last line is counted once it is complete
            self.lines += data.count(b"\n", 0, end)
            self.seen[path] = off + end
        return self.lines


def time_of(sec, nsec=0):
    """The float time for sec.nsec, rounded once (as a decimal printout parses)."""
    return float(f"{sec}.{nsec:09d}")


def split_event(rec):
    """(tag, time, record-without-injected-keys) of an output line."""
    rec = dict(rec)
    return rec.pop("tag", None), rec.pop("time", None), rec


def assert_events(records, expected, ordered=True):
    """records: output lines; expected: [(tag, sec, nsec, record), ...].

    Times are compared to within 5e-7 s: a float near 1.7e9 has ~2.4e-7 s resolution.
    """
    got = [split_event(r) for r in records]
    if not ordered:
        key = lambda e: json.dumps([e[0], e[2]], sort_keys=True)  # noqa: E731
        got = sorted(got, key=key)
        exp_t = sorted([(t, time_of(s, n), r) for t, s, n, r in expected], key=key)
    else:
        exp_t = [(t, time_of(s, n), r) for t, s, n, r in expected]
    assert len(got) == len(exp_t), (
        f"{len(got)} records out, {len(exp_t)} expected:\n got={got}\n exp={exp_t}")
    for i, ((gt, gtime, grec), (et_, etime, erec)) in enumerate(zip(got, exp_t)):
        assert gt == et_, f"record {i}: tag {gt!r} != {et_!r} (record {grec})"
        assert grec == erec, f"record {i}: record {grec!r} != {erec!r}"
        assert isinstance(gtime, (int, float)) and not isinstance(gtime, bool), (
            f"record {i}: time {gtime!r} is not a number")
        assert abs(gtime - etime) <= 5e-7, f"record {i}: time {gtime!r} != {etime!r} ({grec})"


# --------------------------------------------------------------------- weir --

class Weir:
    """Runs weir on configs written into the test's tmp dir."""

    def __init__(self, tmp_path, port):
        self.tmp = str(tmp_path)
        self.port = port
        self.out_dir = os.path.join(self.tmp, "out")
        os.makedirs(self.out_dir, exist_ok=True)
        self.prefix = os.path.join(self.out_dir, "records")
        self.proc = None
        self.runs = 0
        self.allow_errors = False
        self.stderr_path = None
        self.stdout_path = None
        self.config_path = None
        self.all_stderr_paths = []

    # -- config
    def config(self, **kw):
        """The standard test config: helpers.config (a forward source on this
        weir's port -> JSON lines at self.prefix) with helpers.TIME_TAG_INJECT
        injected, unless **kw say otherwise."""
        return helpers.config(self.port, self.prefix, **{"inject": helpers.TIME_TAG_INJECT, **kw})

    def write_config(self, text, name=None):
        name = name or f"weir{self.runs}.conf"
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    # -- process
    def start(self, config_text=None, wait_port=True, args=None, cwd=None, port=None, env_extra=None, **cfg):
        """Start weir on config_text (default: the standard config with **cfg)."""
        assert self.proc is None or self.proc.poll() is not None, "weir already running"
        if not (os.path.isfile(WEIR_BIN) and os.access(WEIR_BIN, os.X_OK)):
            pytest.fail(f"weir binary not found at {WEIR_BIN} (build it with make, or set WEIR_BIN)")
        if config_text is None:
            config_text = self.config(**cfg)
        if args is None:
            self.config_path = self.write_config(config_text)
            args = ["-c", self.config_path]
        self.stderr_path = os.path.join(self.tmp, f"weir{self.runs}.stderr")
        self.stdout_path = os.path.join(self.tmp, f"weir{self.runs}.stdout")
        self.all_stderr_paths.append(self.stderr_path)
        self.runs += 1
        env = {**os.environ, "TZ": "UTC", **(env_extra or {})}
        with open(self.stderr_path, "wb") as err, open(self.stdout_path, "wb") as out:
            self.proc = subprocess.Popen([WEIR_BIN, *args], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, cwd=cwd or self.tmp, env=env)
        if wait_port:
            self.wait_listening(port or self.port)
        return self

    def wait_listening(self, port, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not port_accepts(port):
            rc = self.proc.poll()
            if rc is not None:
                pytest.fail(f"weir exited with {rc} before listening on {port}; stderr:\n"
                            f"{self.stderr_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"weir not listening on {port} after {timeout}s; stderr:\n"
                            f"{self.stderr_text()}")
            time.sleep(0.02)

    def stop(self, timeout=15.0):
        """SIGTERM weir, wait, and return its exit code (asserts it had not died before)."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is not None:
            self.proc = None
            raise AssertionError(f"weir died before SIGTERM with exit code {rc}; stderr:\n"
                                 f"{self.stderr_text()}")
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            raise AssertionError(f"weir did not exit within {timeout}s of SIGTERM; stderr:\n"
                                 f"{self.stderr_text()}")
        self.proc = None
        return rc

    def stop_ok(self):
        rc = self.stop()
        assert rc == 0, f"weir exited with {rc} after SIGTERM; stderr:\n{self.stderr_text()}"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # -- logs
    def stderr_text(self, all_runs=False):
        paths = self.all_stderr_paths if all_runs else [self.stderr_path]
        text = ""
        for p in paths:
            if p and os.path.exists(p):
                with open(p, "rb") as f:
                    text += f.read().decode("utf-8", "replace")
        return text

    def stdout_text(self):
        with open(self.stdout_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stderr_lines(self, all_runs=True):
        """weir's log lines, parsed (asserts each one is a JSON object)."""
        out = []
        for line in self.stderr_text(all_runs).splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                raise AssertionError(f"weir log line is not JSON: {line!r}")
            assert isinstance(obj, dict), f"weir log line is not a JSON object: {line!r}"
            out.append(obj)
        return out

    def log_lines(self, *levels):
        return [l for l in self.stderr_lines() if l.get("level") in levels]

    def wait_log(self, pred, timeout=10.0, what="log line"):
        return poll(lambda: [l for l in self.stderr_lines() if pred(l)], timeout, what=what)

    # -- output
    def output_files(self, prefix=None):
        prefix = prefix or self.prefix
        return sorted(glob.glob(glob.escape(prefix) + "*.log"))

    def read_records(self, prefix=None):
        return read_json_lines(self.output_files(prefix))

    def wait_records(self, n, prefix=None, timeout=10.0):
        """Poll until at least n output lines exist; return them (asserts exactly n)."""
        lines = LineCounter(lambda: self.output_files(prefix))

        def enough():
            if lines() < n:
                return None
            recs = self.read_records(prefix)
            return recs if len(recs) >= n else None
        try:
            recs = poll(enough, timeout, what=f"{n} records")
        except AssertionError:
            recs = self.read_records(prefix)
            raise AssertionError(f"expected {n} records within {timeout}s, have {len(recs)}: "
                                 f"{recs[:20]}; weir stderr:\n{self.stderr_text()}")
        assert len(recs) == n, f"expected {n} records, got {len(recs)}: {recs}"
        return recs

    # -- clients
    def conn(self, port=None, timeout=10.0):
        return fwd.FwdConn(port or self.port, timeout=timeout)

    def check_logs(self):
        lines = self.stderr_lines()
        for l in lines:
            for k in ("time", "level", "msg"):
                assert k in l, f"weir log line lacks {k!r}: {l}"
        if not self.allow_errors:
            bad = [l for l in lines if l.get("level") in ("error", "fatal")]
            assert not bad, f"weir logged errors: {bad}"


@pytest.fixture
def port():
    return free_port()


@pytest.fixture
def weir(tmp_path, port):
    w = Weir(tmp_path, port)
    yield w
    problems = []
    if w.proc is not None:
        try:
            w.stop_ok()
        except AssertionError as e:
            problems.append(str(e))
    if w.runs:
        try:
            w.check_logs()
        except AssertionError as e:
            problems.append(str(e))
    if problems:
        pytest.fail("weir teardown: " + "\n".join(problems))


@pytest.fixture
def node_env():
    env = dict(os.environ)
    cache = os.environ.get("WEIR_TEST_CACHE") or os.path.expanduser("~/.cache/weir-test")
    env.setdefault("NODE_PATH", os.path.join(cache, "node", "node_modules"))
    return env


def run_node(script, spec, tmp_path, env, timeout=30):
    spec_path = os.path.join(str(tmp_path), f"spec-{time.monotonic_ns()}.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    p = subprocess.run(["node", os.path.join(CLIENTS, script), spec_path], env=env,
                       capture_output=True, timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, (f"node {script} exited {p.returncode}: stdout={out!r} "
                               f"stderr={p.stderr.decode('utf-8', 'replace')!r}")
    return json.loads(out.strip().splitlines()[-1])
