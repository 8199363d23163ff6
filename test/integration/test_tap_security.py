"""The live tap is not the metrics: in a network namespace of the test's own
(10.211.0.1 added to its lo: a client connecting to it has that source
address, not a loopback one, and no packet leaves the namespace), one weir with three monitor endpoints bound to
0.0.0.0:

  - tap off (the default): /metrics answers everyone, /api/tap no one;
  - `tap true`: /api/tap answers a loopback client, refuses 10.211.0.1;
  - `tap true` + `tap_token`: a non-loopback client with the token is served.

And the shipped manifests keep the tap off."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import WEIR_BIN

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

INNER = r'''
import json, os, socket, subprocess, sys, time, urllib.request, urllib.error
weir, tmp = sys.argv[1], sys.argv[2]
for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", "10.211.0.1/32", "dev", "lo"]):
    subprocess.run(cmd, check=True)
conf = """
<source>
  @type forward
  port 24400
  bind 127.0.0.1
</source>
<source>
  @type monitor_agent
  port 24401
</source>
<source>
  @type prometheus
  port 24402
  tap true
</source>
<source>
  @type prometheus
  @id tokened
  port 24403
  tap true
  tap_token s3cret-t0ken
</source>
<match **>
  @type null
</match>
"""
path = os.path.join(tmp, "weir.conf")
open(path, "w").write(conf)
p = subprocess.Popen([weir, "-c", path], stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "weir.err"), "wb"))
def up(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False
deadline = time.time() + 10
while not all(up(x) for x in (24400, 24401, 24402, 24403)) and time.time() < deadline:
    time.sleep(0.05)
def status(host, port, path, token=None):
    req = urllib.request.Request(f"http://{host}:{port}{path}")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except Exception as e:
        return repr(e)
R = "10.211.0.1"
out = {
  "metrics_remote_off": status(R, 24401, "/metrics"),
  "tap_local_off": status("127.0.0.1", 24401, "/api/tap?pattern=**"),
  "tap_remote_off": status(R, 24401, "/api/tap?pattern=**"),
  "metrics_remote_on": status(R, 24402, "/metrics"),
  "tap_local_on": status("127.0.0.1", 24402, "/api/tap?pattern=**"),
  "tap_remote_on": status(R, 24402, "/api/tap?pattern=**"),
  "tap_remote_token": status(R, 24403, "/api/tap?pattern=**", "s3cret-t0ken"),
  "tap_remote_badtoken": status(R, 24403, "/api/tap?pattern=**", "wrong"),
  "tap_remote_notoken": status(R, 24403, "/api/tap?pattern=**"),
}
p.terminate()
out["exit"] = p.wait(15)
print(json.dumps(out))
'''


def test_tap_refused_off_loopback_metrics_public(tmp_path):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare and ip (a network namespace of the test's own)")
    p = subprocess.run(["unshare", "-n", sys.executable, "-c", INNER, WEIR_BIN, str(tmp_path)],
                       capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr + (tmp_path / "weir.err").read_text() if (tmp_path / "weir.err").exists() \
        else p.stderr
    got = json.loads(p.stdout.strip().splitlines()[-1])
    # a streaming tap that was let in answers 200 and then streams (urllib returns at the headers)
    assert got == {
        "metrics_remote_off": 200, "tap_local_off": 403, "tap_remote_off": 403,
        "metrics_remote_on": 200, "tap_local_on": 200, "tap_remote_on": 403,
        "tap_remote_token": 200, "tap_remote_badtoken": 403, "tap_remote_notoken": 403,
        "exit": 0,
    }, got


def test_shipped_manifests_keep_the_tap_off():
    for root, _, files in os.walk(os.path.join(REPO, "k8s")):
        for f in files:
            text = open(os.path.join(root, f)).read()
            assert "tap true" not in text and "tap_token" not in text, os.path.join(root, f)
