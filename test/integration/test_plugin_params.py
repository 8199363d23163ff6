"""The parameters of fluent-plugin-elasticsearch, fluent-plugin-kafka and
fluent-plugin-grafana-loki that weir accepts as no-ops: a config that sets
every one of them passes `--dry-run` with exactly one warning per parameter
(naming it, its file and line), and touches no network. The list comes from
`weir --list-params` (the rows marked **no-op**), so a new no-op row is
covered without editing this file; a few are checked by name so that the
listing itself cannot go empty unnoticed.
"""
import json
import re
import subprocess

import pytest

from conftest import WEIR_BIN

PLUGINS = {
    # table in --list-params -> (directive, @type, lines every instance needs)
    "output.elasticsearch": ("match", "elasticsearch", []),
    "output.kafka2": ("match", "kafka_buffered", ["brokers 127.0.0.1:1"]),
    "output.loki": ("match", "loki", []),
    "source.kafka": ("source", "kafka_group", ["brokers 127.0.0.1:1", "topics t", "consumer_group g"]),
}


def tables():
    out = subprocess.run([WEIR_BIN, "--list-params"], capture_output=True, text=True, timeout=20, check=True).stdout
    parts = re.split(r"<!-- params:(\S+) -->", out)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def rows(table):
    """(name, type, default, description) of each parameter row."""
    return [tuple(c.strip() for c in m) for m in
            re.findall(r"^\| `([^`<]+)` \| ([^|]*) \| ([^|]*) \| (.*) \|$", table, re.M)]


def value_for(typ, default):
    if typ.startswith("enum"):
        return re.findall(r"`([^`]*)`", typ)[0]
    d = default.strip("`")
    return {"bool": "true", "integer": "1", "time": "1s", "size": "1k", "array": "a",
            "hash": '{"a":"b"}'}.get(typ, d or "x")


def noop_rows(table):
    return [r for r in rows(table) if r[3].startswith("**no-op**")]


def test_every_noop_parameter_warns_once(tmp_path):
    t = tables()
    blocks, expect = [], []
    line = 1
    for table, (directive, typ, needed) in PLUGINS.items():
        noops = noop_rows(t[table])
        if not noops:  # the loki plugin has none left (`compress` takes effect); `must` below keeps the list honest
            continue
        lines = [f"<{directive} **>" if directive == "match" else f"<{directive}>", f"  @type {typ}"]
        lines += ["  " + l for l in needed]
        for name, ptype, default, _ in noops:
            lines.append(f"  {name} {value_for(ptype, default)}")
            expect.append((name, line + len(lines) - 1))
        lines.append(f"</{directive}>")
        blocks.append("\n".join(lines))
        line += len(lines)
    names = {n for n, _ in expect}
    for must in ("type_name", "reload_connections", "reload_on_failure", "sniffer_class_name", "reconnect_on_error",
                 "ssl_version", "ilm_policy_id", "share_producer", "retry_limit"):
        assert must in names, must
    conf = tmp_path / "fluent.conf"
    conf.write_text("\n".join(blocks) + "\n")
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", str(conf)], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    assert "configuration OK" in p.stderr
    warns = [json.loads(l)["msg"] for l in p.stderr.splitlines() if l.startswith("{")
             and json.loads(l)["level"] == "warn"]
    got = {}
    for w in warns:
        m = re.match(r"(.+):(\d+): \S+: parameter '([^']+)' has no effect in weir: .+", w)
        assert m, w
        got.setdefault(m.group(3), []).append(int(m.group(2)))
    for name, ln in expect:
        # one warning for each time it is set (a name shared by two plugins is set twice)
        assert ln in got.get(name, []), (name, ln, got.get(name))
    assert sum(len(v) for v in got.values()) == len(expect), (len(warns), len(expect))


@pytest.mark.parametrize("directive,typ,needed,param,msg", [
    ("match", "elasticsearch", "", "enable_ilm true", "Use `data_stream_name`"),
    ("source", "kafka", "brokers 127.0.0.1:1\n  topics t\n  consumer_group g", "partition 3",
     "weir's kafka source is a consumer group"),
])
def test_refused_parameters_name_the_alternative(tmp_path, directive, typ, needed, param, msg):
    head = "<match **>" if directive == "match" else "<source>"
    conf = tmp_path / "fluent.conf"
    conf.write_text(f"{head}\n  @type {typ}\n  {needed}\n  {param}\n</{directive}>\n")
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", str(conf)], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1, p.stderr
    ln = 4 + needed.count("\n")
    assert f"fluent.conf:{ln}: parameter '{param.split()[0]}' is not supported by weir" in p.stderr, p.stderr
    assert msg in p.stderr, p.stderr


@pytest.mark.parametrize("param", ["tls_cert_thumbprint ab", "tls_cert_logical_store_name Trust"])
def test_windows_certificate_stores_refused_as_fluentd_does_on_linux(tmp_path, param):
    """Fluentd's out_forward raises "This parameter is for only Windows" for
    these on Linux; weir says the same, at the parameter's line."""
    conf = tmp_path / "fluent.conf"
    conf.write_text(f"<match **>\n  @type forward\n  {param}\n  <server>\n    host a\n  </server>\n</match>\n")
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", str(conf)], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1, p.stderr
    assert "fluent.conf:3:" in p.stderr and "This parameter is for only Windows" in p.stderr, p.stderr


def test_default_values_of_refused_parameters_are_accepted(tmp_path):
    conf = tmp_path / "fluent.conf"
    conf.write_text("<match **>\n  @type elasticsearch\n  enable_ilm false\n  rollover_index false\n</match>\n")
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", str(conf)], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    assert '"level":"warn"' not in p.stderr, p.stderr
