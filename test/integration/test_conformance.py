"""Routing/enrichment conformance: golden cases in test/integration/conformance/.

Each case directory NAME holds:

  fluent.conf   a Fluentd-style aggregator config; `__PORT__` becomes the
                forward port, `__OUT__` the output directory, `__DIR__` the
                case's tmp dir.
  input.json    a list of requests, sent in order on one connection, each
                acked before the next:
                  {"tag": T, "mode": "message"|"forward"|"packed"|"compressed",
                   "records": [{"time": TIME, "record": {...}}, ...]}
                TIME: an integer (sent as an integer), [sec, nsec] (EventTime)
                or a float. "message" mode takes exactly one record.
  expected/     one golden file per output file weir must write, named as
                weir names it under __OUT__ (e.g. `app.20231114.log`), with
                the exact bytes expected. No other output file may appear.
                A golden whose name ends with `.unordered` is compared as a
                sorted list of lines (the file written is the name without
                that suffix).

The test runs weir on the config, sends the input, waits until every
expected file exists with the expected number of lines, compares byte for
byte (a unified diff on mismatch), and checks `weir --dry-run` accepts the
config. The conftest teardown checks weir exits 0 and logs no error.
"""
import base64
import difflib
import json
import os
import subprocess
import time

import pytest

from conftest import WEIR_BIN
from conformance_cases import CASES, build_request, load_case, normalise, output_files, read

def complete(out_dir, golden):
    """Every expected file has (at least) its expected number of lines."""
    for name, (data, _) in golden.items():
        got = read(out_dir, name)
        if got is None or got.count(b"\n") < data.count(b"\n"):
            return False
    return True


def run_dry(path, cwd):
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", path], capture_output=True, timeout=15, cwd=cwd,
                       stdin=subprocess.DEVNULL, env=dict(os.environ, TZ="UTC"))
    return p.returncode, p.stderr.decode("utf-8", "replace")


@pytest.mark.parametrize("name", CASES)
def test_conformance(weir, name):
    conf, reqs, golden = load_case(name)
    out_dir = weir.out_dir
    conf = conf.replace("__PORT__", str(weir.port)).replace("__OUT__", out_dir).replace("__DIR__", weir.tmp)

    path = weir.write_config(conf, "fluent.conf")
    rc, err = run_dry(path, weir.tmp)
    assert rc == 0, f"weir --dry-run -c fluent.conf exited {rc}:\n{err}"

    weir.start(conf)
    with weir.conn() as c:
        for i, req in enumerate(reqs):
            chunk = base64.b64encode(f"{name}-{i}".encode()).decode()
            try:
                c.send(build_request(req, chunk))
                c.expect_ack(chunk)
            except (OSError, TimeoutError, AssertionError) as e:
                weir.allow_errors = True
                pytest.fail(f"case {name}: request {i} ({req['tag']}) not acked: {e}\n"
                            f"weir stderr:\n{weir.stderr_text()[-6000:]}")

    # Outputs without <buffer> are written before the ack (@ERROR and copy
    # stores too); poll briefly anyway, then compare.
    deadline = time.monotonic() + 2
    while not complete(out_dir, golden) and time.monotonic() < deadline:
        time.sleep(0.02)
    # everything was acked: stop weir so that buffered outputs flush too
    weir.stop_ok()

    problems = []
    files = output_files(out_dir)
    extra = [f for f in files if f not in golden]
    missing = [f for f in golden if f not in files]
    if extra:
        problems.append(f"unexpected output files: {extra}\n" +
                        "".join(f"--- {f}:\n{read(out_dir, f).decode('utf-8', 'replace')}" for f in extra))
    if missing:
        problems.append(f"missing output files: {missing}")
    for fname, (data, ordered) in golden.items():
        got = read(out_dir, fname)
        if got is None:
            continue
        exp_l, got_l = normalise(data, ordered), normalise(got, ordered)
        if exp_l != got_l or (ordered and got != data):
            diff = "".join(difflib.unified_diff(exp_l, got_l, f"expected/{fname}", f"weir/{fname}"))
            problems.append(f"{fname} differs{'' if ordered else ' (lines sorted)'}:\n{diff}")
    if problems:
        warn = [l for l in weir.stderr_lines() if l.get("level") in ("warn", "error", "fatal")]
        pytest.fail(f"case {name}:\n" + "\n".join(problems) + "\nweir warnings/errors:\n" +
                    "\n".join(json.dumps(l) for l in warn))
