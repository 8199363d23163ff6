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

import pytest

from conftest import REPO, poll
from peer_proc import file_tail, stop_group

START_TIMEOUT = 20.0


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
