"""Differential conformance: every golden case in test/integration/conformance/
(see test_conformance.py for the format) whose plugins Fluentd 1.16 has
(core plugins and rewrite_tag_filter, not weir's own kubernetes, trace and
ecs filters or the cri parser) also runs through a real Fluentd (1.16.11,
../shared/peers) with the same config and the same requests, and Fluentd's
output files must equal the golden ones byte for byte, which are weir's
output (test_conformance.py checks weir against them).

The config Fluentd runs (and, for one difference, the requests it is sent
and the lines it must write) is the case's, changed only by
fluentd_variant() below: the one place that lists what must differ for
Fluentd to run a weir config to the same files, (1) to (4), each with its
reason (docs/migrating-from-fluentd.md lists them for users). A case where weir is wrong (not a
difference on purpose) is in WEIR_BUGS: expected to fail (strictly: when
weir is fixed, its golden and this list must change). Host names cannot be
in a golden file: test_hostname_placeholders_fluentd runs weir and Fluentd
side by side instead.

Fluentd is found at $REPO/../shared/peers/fluentd/fluentd, else $FLUENTD,
else `fluentd` on PATH; without it the tests are skipped.
"""
import base64
import difflib
import json
import re
import socket

import pytest

import fwd
from conftest import free_port
from peer_fluentd import fluentd_or_skip
# the case format is test_conformance's: one reader of it for both
from conformance_cases import CASES, build_request, load_case, normalise, output_files, read

# plugin types (of <filter>, <match>, <store>, <parse>) that are weir's own
WEIR_ONLY = {"kubernetes", "trace", "ecs", "cri"}

# cases where weir differs from Fluentd and weir is wrong (not on purpose):
# name -> the difference. Their golden is weir's output as it is; when weir
# is fixed, the golden becomes Fluentd's output and the entry goes.
WEIR_BUGS = {
}


def plugin_types(conf):
    return set(re.findall(r"^\s*@type\s+(\S+)", conf, re.M))


FLUENTD_CASES = [c for c in CASES if not plugin_types(load_case(c)[0]) & WEIR_ONLY]


# --------------------------------- what must differ, in this one place --

# (1) Fluentd routes its own log events (tags fluent.info, fluent.warn, ...)
# into the top level, where a `<match **>` would write them among the
# records, unless a <label @FLUENT_LOG> takes them; weir never routes its
# own logs (they go to stderr as JSON), so its @FLUENT_LOG receives nothing.
FLUENT_LOG_LABEL = """
<label @FLUENT_LOG>
  <match **>
    @type null
  </match>
</label>
"""

# (2) out_file without a <buffer> uses a file buffer under its `path` (the
# output directory) keyed by day, flushed 10 minutes after the day ends
# (timekey_wait) and not at shutdown; weir's out_file without <buffer>
# writes each request before it acks it. Fluentd gets the same output as
# weir with a memory buffer (still one file per day, the name
# path.%Y%m%d.log) flushed at once, in order.
FILE_BUFFER = """  <buffer time>
    @type memory
    flush_mode immediate
    flush_thread_count 1
  </buffer>
"""


# (3) A field that parses as a JSON array (not an object): weir's json
# parser refuses it (the record goes to @ERROR); Fluentd 1.16's passes the
# Array on as the record, its out_file raises "record must be a Hash", and
# the error event loops through @ERROR's record_transformer until Ruby's
# stack overflows and the worker dies. Such records are left out of what
# Fluentd is sent, and their lines out of what it must write.
def json_array_field(rec):
    return any(isinstance(v, str) and v.startswith("[") and v.endswith("]") for v in rec.values())


# (4) A filter that raises (filter_parser with emit_invalid_record_to_error
# on a time it cannot parse): Fluentd 1.16's optimised filter chain
# (EventRouter's optimized_filter_stream, used when no filter of the chain
# has its own filter_stream) sends the record to @ERROR and also lets it go
# on, unfiltered, to the <match>; its plain chain (Filter#filter_stream)
# sends it to @ERROR only, and so does weir. A pass-through record_transformer
# (it has a filter_stream) ahead of every chain turns the optimisation off.
PLAIN_CHAIN = """<filter **>
  @type record_transformer
</filter>
"""


def fluentd_variant(conf, reqs, golden):
    """The case as Fluentd must run it to write what weir writes: (config,
    requests, golden files)."""
    out = []
    stack = []  # [section name, its @type, has a <buffer>] of the open sections
    for line in conf.splitlines(keepends=True):
        s = line.strip()
        m = re.match(r"<(/?)([\w@]+)", s)
        if m and not m.group(1):
            stack.append([m.group(2), None, False])
            if m.group(2) == "buffer" and len(stack) > 1:
                stack[-2][2] = True
        elif m:
            name, type_, has_buffer = stack.pop()
            assert name == m.group(2), f"unbalanced config at {line!r}"
            if name in ("match", "store") and type_ == "file" and not has_buffer:
                # (2) (a case's own <buffer> must be a memory one: flushed at shutdown)
                indent = line[:len(line) - len(line.lstrip())]
                out.append("".join(indent + l if l.strip() else l
                                   for l in FILE_BUFFER.splitlines(keepends=True)))
        else:
            # `type` is the v0.12 name of @type (both convert alike)
            t = re.match(r"@?type\s+(\S+)", s)
            if t and stack:
                stack[-1][1] = t.group(1)
            # v0.12 buffer parameters on out_file make Fluentd's compat layer write a <buffer> (weir's too)
            if stack and re.match(r"(buffer_type|flush_interval|time_slice_format)\s", s):
                stack[-1][2] = True
        out.append(line)
    text = "".join(out)
    # (4) at the top level and first in every label
    text = PLAIN_CHAIN + re.sub(r"^(\s*)(<label\s+@\w+\s*>\n)",
                                lambda m: m.group(1) + m.group(2) + "".join(
                                    m.group(1) + "  " + l for l in PLAIN_CHAIN.splitlines(keepends=True)),
                                text, flags=re.M)
    if not re.search(r"^\s*<label\s+@FLUENT_LOG\s*>", text, re.M):
        text += FLUENT_LOG_LABEL  # (1)
    # (3)
    if "@type json" in conf and "@type parser" in conf:
        dropped = [r["record"] for q in reqs for r in q["records"] if json_array_field(r["record"])]
        reqs = [dict(q, records=[r for r in q["records"] if not json_array_field(r["record"])]) for q in reqs]
        reqs = [q for q in reqs if q["records"]]
        for rec in dropped:
            for fname, (data, ordered) in list(golden.items()):
                lines = data.split(b"\n")
                keep = [l for l in lines if not (l.startswith(b"{") and
                                                 all(json.loads(l).get(k) == v for k, v in rec.items()))]
                golden[fname] = (b"\n".join(keep), ordered)
    return text, reqs, golden


# ------------------------------------------------------------------ tests --

@pytest.fixture
def fluentd(tmp_path):
    fd = fluentd_or_skip(tmp_path)
    yield fd
    fd.kill_all()


def params():
    return [pytest.param(name, id=name,
                         marks=[pytest.mark.xfail(strict=True, reason=WEIR_BUGS[name])] if name in WEIR_BUGS else [])
            for name in FLUENTD_CASES]


@pytest.mark.peer_only  # Fluentd against the golden only: the same result on any weir build
@pytest.mark.parametrize("name", params())
def test_conformance_fluentd(fluentd, tmp_path, name):
    conf, reqs, golden = load_case(name)
    case_dir = tmp_path / "case"
    out_dir = tmp_path / "out"
    case_dir.mkdir()
    out_dir.mkdir()
    port = free_port()
    conf = conf.replace("__PORT__", str(port)).replace("__OUT__", str(out_dir)).replace("__DIR__", str(case_dir))
    fconf, reqs, golden = fluentd_variant(conf, reqs, golden)

    fluentd.start(fconf)
    with fwd.FwdConn(port) as c:
        for i, req in enumerate(reqs):
            chunk = base64.b64encode(f"{name}-{i}".encode()).decode()
            try:
                c.send(build_request(req, chunk))
                c.expect_ack(chunk)
            except (OSError, TimeoutError, AssertionError) as e:
                pytest.fail(f"case {name}: request {i} ({req['tag']}) not acked by Fluentd: {e}\n"
                            f"Fluentd's log:\n{fluentd.log()[-6000:]}")
    # Fluentd flushes its buffers at shutdown (memory buffers' default)
    fluentd.stop_ok()

    problems = []
    files = output_files(str(out_dir))
    extra = [f for f in files if f not in golden]
    missing = [f for f in golden if f not in files]
    if extra:
        problems.append(f"unexpected output files: {extra}\n" +
                        "".join(f"--- {f}:\n{read(str(out_dir), f).decode('utf-8', 'replace')}" for f in extra))
    if missing:
        problems.append(f"missing output files: {missing}")
    for fname, (data, ordered) in golden.items():
        got = read(str(out_dir), fname)
        if got is None:
            continue
        exp_l, got_l = normalise(data, ordered), normalise(got, ordered)
        if exp_l != got_l or (ordered and got != data):
            diff = "".join(difflib.unified_diff(exp_l, got_l, f"weir/{fname}", f"fluentd/{fname}"))
            problems.append(f"{fname} differs{'' if ordered else ' (lines sorted)'}:\n{diff}")
    issues = fluentd.errors() + [w for w in fluentd.warnings() if "deprecated" not in w]
    if problems:
        pytest.fail(f"case {name}: Fluentd's output is not weir's:\n" + "\n".join(problems) +
                    "\nFluentd's errors and warnings:\n" + "\n".join(issues))
    assert not fluentd.errors(), f"Fluentd logged errors: {fluentd.errors()}"


# ----------------------------------------- host names (no golden: live) --

HOSTNAME_CONF = """<source>
  @type forward
  port __PORT__
  bind 127.0.0.1
</source>

<match host.**>
  @type rewrite_tag_filter
  <rule>
    key n
    pattern /^1$/
    tag by.${hostname}.__HOSTNAME__
  </rule>
  <rule>
    key n
    pattern /./
    tag other.${tag}
  </rule>
</match>

<filter **>
  @type record_transformer
  <record>
    host ${hostname}
    tagged ${tag}
    embedded "#{Socket.gethostname}"
  </record>
</filter>

<match **>
  @type file
  path __OUT__/hosts
  append true
  <format>
    @type json
  </format>
  <inject>
    hostname_key inject_host
    tag_key tag
  </inject>
</match>
"""


def test_hostname_placeholders_fluentd(weir, fluentd, tmp_path):
    """The machine's host name, which a golden file cannot hold: ${hostname}
    in record_transformer and in rewrite_tag_filter (and __HOSTNAME__),
    <inject> hostname_key without `hostname`, and "#{Socket.gethostname}".
    weir and Fluentd run the same config on the same requests here, and
    write the same file, which holds this machine's name."""
    reqs = [{"tag": "host.a", "mode": "forward", "records": [
        {"time": 1700000000, "record": {"n": 1}}, {"time": 1700000001, "record": {"n": 2}}]}]
    fd_out = tmp_path / "fluentd-out"
    fd_out.mkdir()
    fd_port = free_port()
    fconf, reqs_fd, _ = fluentd_variant(
        HOSTNAME_CONF.replace("__PORT__", str(fd_port)).replace("__OUT__", str(fd_out)), reqs, {})
    fluentd.start(fconf)
    weir.start(HOSTNAME_CONF.replace("__PORT__", str(weir.port)).replace("__OUT__", weir.out_dir))
    for port, rs in ((fd_port, reqs_fd), (weir.port, reqs)):
        with fwd.FwdConn(port) as c:
            for i, req in enumerate(rs):
                c.send(build_request(req, f"h-{i}"))
                c.expect_ack(f"h-{i}")
    fluentd.stop_ok()
    weir.stop_ok()
    files = output_files(str(fd_out))
    assert files == output_files(weir.out_dir) == ["hosts.20231114.log"], (files, output_files(weir.out_dir))
    got_fd, got_weir = read(str(fd_out), files[0]), read(weir.out_dir, files[0])
    assert got_weir == got_fd, f"weir:\n{got_weir.decode()}\nFluentd:\n{got_fd.decode()}"
    host = socket.gethostname()
    recs = [json.loads(l) for l in got_weir.splitlines()]
    assert [r["tag"] for r in recs] == [f"by.{host}.{host}", "other.host.a"], recs
    assert all(r["host"] == r["embedded"] == r["inject_host"] == host for r in recs), recs
