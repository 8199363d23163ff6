"""A real Fluentd (1.16.11 run from source, ../shared/peers/fluentd) for the
tests that use Fluentd as a sender (test_fluentd_sender.py) or as the
reference implementation (test_conformance_fluentd.py).

Fluentd is found at $REPO/../shared/peers/fluentd/fluentd, else $FLUENTD,
else `fluentd` on PATH; a test's `fluentd` fixture skips, saying how to
provide it, when it is nowhere (fluentd_or_skip). Each run writes its config under the test's
tmp dir (the peers dir is read-only: configs must give buffer and output
paths under tmp dirs too), runs Fluentd (supervisor and worker) in its own
session so that stop_group reaches both, waits for "fluentd worker is now
running" and captures its log (stdout and stderr) in a file.
"""
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from peer_proc import file_tail, kill_group, stop_group

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

START_TIMEOUT = 30.0
RUNNING = "fluentd worker is now running"
SKIP_MESSAGE = ("Fluentd not found: put it at ../shared/peers/fluentd/fluentd (next to the "
                "repository), set FLUENTD=/path/to/fluentd, or put fluentd on PATH "
                "(it needs Ruby: scripts/install-deps.sh --test installs Debian's packages)")

# "2026-01-02 03:04:05 +0000 [error]: #0 message" (the supervisor's lines have no "#0")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [+-]\d{4} \[(\w+)\]: (.*)$")


def find_fluentd():
    shared = os.path.normpath(os.path.join(REPO, "..", "shared", "peers", "fluentd", "fluentd"))
    for cand in (shared, os.environ.get("FLUENTD"), shutil.which("fluentd")):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


class Fluentd:
    """Runs Fluentd on configs written under tmp_path/<name>; every process
    started is stopped (SIGTERM to its group, SIGKILL after a timeout) by the
    fixture."""

    def __init__(self, binary, tmp_path, name="fluentd"):
        self.bin = binary
        self.dir = tmp_path / name
        self.dir.mkdir(exist_ok=True)
        self.proc = None
        self.procs = []
        self.runs = 0
        self.log_path = None

    def write_config(self, text):
        path = self.dir / f"fluent{self.runs}.conf"
        path.write_text(text)
        return path

    def dry_run(self, text):
        """(exit code, output) of `fluentd --dry-run` on the config text."""
        path = self.write_config(text)
        p = subprocess.run([self.bin, "--dry-run", "-c", str(path)], capture_output=True, timeout=60,
                           cwd=str(self.dir), stdin=subprocess.DEVNULL, env={**os.environ, "TZ": "UTC"})
        return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")

    def start(self, text, wait=True, args=()):
        """Start Fluentd on the config text; wait until its worker runs."""
        assert self.proc is None or self.proc.poll() is not None, "Fluentd already running"
        cfg = self.write_config(text)
        self.log_path = str(self.dir / f"fluentd{self.runs}.log")
        self.runs += 1
        with open(self.log_path, "wb") as log:
            # its own session: SIGTERM reaches the supervisor and its worker
            self.proc = subprocess.Popen([self.bin, "-c", str(cfg), *args], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT, cwd=str(self.dir),
                                         start_new_session=True, env={**os.environ, "TZ": "UTC"})
        self.procs.append(self.proc)
        if wait:
            self.wait_log(RUNNING, START_TIMEOUT, what="Fluentd to start")
        return self

    def wait_log(self, text, timeout=20.0, what=None, start=0):
        """Wait until `text` is in the log (from byte `start` of it); fail at
        once if Fluentd exits first."""
        deadline = time.monotonic() + timeout
        while True:
            if text in self.log()[start:]:
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"Fluentd exited with {self.proc.returncode} while waiting for "
                                     f"{what or repr(text)}:\n{self.log()[-8000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what or repr(text)}; "
                                     f"Fluentd's log:\n{self.log()[-8000:]}")
            time.sleep(0.05)

    def log(self):
        return file_tail(self.log_path, 4_000_000) if self.log_path else ""

    def lines(self, *levels):
        """The (level, message) of each of its log lines at one of `levels`."""
        out = []
        for line in self.log().splitlines():
            m = LOG_LINE.match(line)
            if m and m.group(1) in levels:
                out.append((m.group(1), m.group(2)))
        return out

    def errors(self):
        return [msg for _, msg in self.lines("error", "fatal")]

    def warnings(self):
        return [msg for _, msg in self.lines("warn")]

    def stop(self, timeout=60):
        """SIGTERM to the group (SIGKILL after `timeout` s); returns the
        supervisor's exit code. Fluentd flushes buffers with
        flush_at_shutdown (the default for memory buffers) before exiting."""
        p, self.proc = self.proc, None
        if p is None:
            return None
        stop_group(p, signal.SIGTERM, timeout)
        return p.returncode

    def stop_ok(self, timeout=60):
        rc = self.stop(timeout)
        assert rc == 0, f"Fluentd exited with {rc} after SIGTERM:\n{self.log()[-8000:]}"

    def kill(self):
        """SIGKILL the group (no shutdown flush: one that would retry forever)."""
        p, self.proc = self.proc, None
        if p is not None:
            kill_group(p)

    def kill_all(self):
        for p in self.procs:
            stop_group(p, signal.SIGTERM, 15)


def fluentd_or_skip(tmp_path, name="fluentd"):
    """A Fluentd runner for a test's fixture (which must call kill_all() at
    teardown), or pytest.skip with how to provide Fluentd."""
    binary = find_fluentd()
    if binary is None:
        pytest.skip(SKIP_MESSAGE)
    return Fluentd(binary, tmp_path, name)
