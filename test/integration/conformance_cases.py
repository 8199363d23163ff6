"""The conformance cases in test/integration/conformance/ (format: the
docstring of test_conformance.py): listing and loading a case, building its
requests, reading and normalising what an aggregator wrote. Shared by
test_conformance.py (weir against the goldens) and test_conformance_fluentd.py
(Fluentd against the same goldens)."""
import glob
import json
import os

import fwd
from fwd import et

HERE = os.path.dirname(os.path.abspath(__file__))
CASES_DIR = os.path.join(HERE, "conformance")
CASES = sorted(d for d in os.listdir(CASES_DIR) if os.path.isfile(os.path.join(CASES_DIR, d, "fluent.conf")))
UNORDERED = ".unordered"


def wire_time(t):
    if isinstance(t, list):
        return et(t[0], t[1])
    return t


def build_request(req, chunk):
    tag, mode = req["tag"], req.get("mode", "forward")
    entries = [fwd.entry(wire_time(r["time"]), r["record"]) for r in req["records"]]
    opts = {"chunk": chunk}
    if mode == "message":
        assert len(entries) == 1, f"message mode takes one record: {req}"
        return fwd.message(tag, entries[0][0], entries[0][1], opts)
    if mode == "forward":
        return fwd.forward(tag, entries, opts)
    if mode == "packed":
        return fwd.packed_forward(tag, entries, opts)
    if mode == "compressed":
        return fwd.compressed_packed_forward(tag, entries, opts)
    raise ValueError(f"unknown mode {mode!r}")


def load_case(name):
    d = os.path.join(CASES_DIR, name)
    with open(os.path.join(d, "fluent.conf")) as f:
        conf = f.read()
    with open(os.path.join(d, "input.json")) as f:
        reqs = json.load(f)
    golden = {}
    exp_dir = os.path.join(d, "expected")
    for fn in sorted(os.listdir(exp_dir)):
        with open(os.path.join(exp_dir, fn), "rb") as f:
            data = f.read()
        if fn.endswith(UNORDERED):
            golden[fn[:-len(UNORDERED)]] = (data, False)
        else:
            golden[fn] = (data, True)
    return conf, reqs, golden


def output_files(out_dir):
    return sorted(os.path.relpath(p, out_dir) for p in glob.glob(os.path.join(out_dir, "**"), recursive=True)
                  if os.path.isfile(p))


def read(out_dir, name):
    try:
        with open(os.path.join(out_dir, name), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def normalise(data, ordered):
    lines = data.decode("utf-8", "replace").splitlines(keepends=True)
    return lines if ordered else sorted(lines)


