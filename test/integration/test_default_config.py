"""The embedded default config (no -c): forward on 24224, JSON lines under ./data/."""
import base64
import glob
import json
import os
import socket

import pytest

import fwd
from conftest import T0, poll


def port_busy(port):
    for family, kind in ((socket.AF_INET, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_DGRAM)):
        with socket.socket(family, kind) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                return True
    return False


def test_embedded_default_config(weir, tmp_path):
    if port_busy(24224):
        pytest.skip("port 24224 is busy")
    run_dir = os.path.join(str(tmp_path), "cwd")
    os.makedirs(run_dir)
    weir.start(args=[], cwd=run_dir, port=24224)
    marker = base64.b32encode(os.urandom(10)).decode()
    rec = {"marker": marker, "msg": "default config ✓", "n": 42, "nested": {"a": [1, None]}}
    ch = base64.encodebytes(os.urandom(16)).decode()
    with fwd.FwdConn(24224) as c:
        c.send(fwd.message("default.test", fwd.et(T0, 0), rec, {"chunk": ch}))
        c.expect_ack(ch)

    def find():
        for path in glob.glob(os.path.join(run_dir, "data", "**"), recursive=True):
            if not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                for line in f:
                    if marker.encode() in line:
                        return path, json.loads(line.decode("utf-8"))
        return None
    path, got = poll(find, timeout=15, what="the record under ./data/")
    for k, v in rec.items():
        assert got.get(k) == v, f"{path}: {got}"
    extra = set(got) - set(rec)
    assert extra <= {"tag", "time", "@timestamp", "timestamp", "hostname", "host"}, got
    if "tag" in got:
        assert got["tag"] == "default.test"
