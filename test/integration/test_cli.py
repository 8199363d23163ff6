"""Command line: --version, --help, --dry-run, config errors."""
import os
import re
import subprocess

import pytest

from conftest import WEIR_BIN, port_accepts
from helpers import TIME_TAG_INJECT, config


def run(args, cwd, timeout=15):
    if not os.access(WEIR_BIN, os.X_OK):
        pytest.fail(f"weir binary not found at {WEIR_BIN}")
    p = subprocess.run([WEIR_BIN, *args], capture_output=True, timeout=timeout, cwd=cwd,
                       stdin=subprocess.DEVNULL, env=dict(os.environ, TZ="UTC"))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def write(tmp_path, name, text):
    path = os.path.join(str(tmp_path), name)
    with open(path, "w") as f:
        f.write(text)
    return path


def test_version(tmp_path):
    rc, out, err = run(["--version"], tmp_path)
    assert rc == 0, (out, err)
    assert re.search(r"\b\d+\.\d+\.\d+\b", out), f"no version in stdout: {out!r}"


def test_help(tmp_path):
    rc, out, err = run(["--help"], tmp_path)
    assert rc == 0, (out, err)
    assert re.search(r"usage", out, re.I), f"no usage in stdout: {out!r}"
    for opt in ("-c", "--dry-run", "--version"):
        assert opt in out, f"--help does not mention {opt}: {out!r}"


def test_dry_run_good_config(tmp_path, port):
    path = write(tmp_path, "good.conf", config(port, os.path.join(str(tmp_path), "out", "r"),
                                               inject=TIME_TAG_INJECT))
    rc, out, err = run(["--dry-run", "-c", path], tmp_path)
    assert rc == 0, (out, err)
    assert not port_accepts(port), "--dry-run must not leave anything listening"
    assert not os.path.exists(os.path.join(str(tmp_path), "out", "r")), "--dry-run wrote output"


BAD_VALUE = """<source>
  @type forward
  port notaport
  bind 127.0.0.1
</source>
<match **>
  @type null
</match>
"""

UNKNOWN_TYPE = """<source>
  @type forward
  port 24299
  bind 127.0.0.1
</source>
<match **>
  @type nosuchplugin
</match>
"""

UNKNOWN_SOURCE_TYPE = """<source>
  @type nosuchinput
</source>
<match **>
  @type null
</match>
"""

UNCLOSED = """<source>
  @type forward
  port 24299
<match **>
  @type null
</match>
"""


@pytest.mark.parametrize("text,line,word", [
    (BAD_VALUE, 3, "notaport"),
    (UNKNOWN_TYPE, 7, "nosuchplugin"),
    (UNKNOWN_SOURCE_TYPE, 2, "nosuchinput"),
], ids=["bad-value", "unknown-output-type", "unknown-input-type"])
def test_dry_run_bad_config(tmp_path, text, line, word):
    path = write(tmp_path, "bad.conf", text)
    rc, out, err = run(["--dry-run", "-c", path], tmp_path)
    assert rc != 0, (out, err)
    assert f"{path}:{line}:" in err, f"stderr lacks {path}:{line}: -> {err!r}"
    assert word in err, err


def test_dry_run_syntax_error(tmp_path):
    path = write(tmp_path, "unclosed.conf", UNCLOSED)
    rc, out, err = run(["--dry-run", "-c", path], tmp_path)
    assert rc != 0, (out, err)
    assert re.search(re.escape(path) + r":\d+:", err), err


def test_dry_run_missing_file(tmp_path):
    rc, out, err = run(["--dry-run", "-c", os.path.join(str(tmp_path), "missing.conf")], tmp_path)
    assert rc != 0
    assert "missing.conf" in err, err


@pytest.mark.parametrize("text,line", [(UNKNOWN_TYPE, 7), (BAD_VALUE, 3)],
                         ids=["unknown-type", "bad-value"])
def test_run_with_bad_config_fails(tmp_path, text, line):
    path = write(tmp_path, "bad.conf", text)
    rc, out, err = run(["-c", path], tmp_path)
    assert rc != 0, (out, err)
    # the message may be inside a JSON log line, where "/" may be escaped
    assert f"{path}:{line}:" in err.replace("\\/", "/"), err


def test_unknown_option(tmp_path):
    rc, out, err = run(["--no-such-option"], tmp_path)
    assert rc != 0, (out, err)


# Sections `weir --list-params` must print (marker names, as in docs/configuration.md
# and docs/outputs/*.md): every registered plugin of each kind, the core sections and the
# sub-sections bound with their own tables.
LIST_PARAMS_SECTIONS = [
    "system", "buffer", "format", "inject", "parse",
    "source.forward", "source.forward.security", "source.forward.security.user",
    "source.forward.security.client", "source.forward.transport.tls", "source.forward.transport.tcp",
    "source.kafka", "source.monitor_agent", "source.prometheus",
    "filter.record_transformer", "filter.grep", "filter.grep.regexp", "filter.grep.and", "filter.parser",
    "filter.kubernetes", "filter.trace", "filter.ecs",
    "parser.json", "parser.regexp", "parser.cri", "parser.logfmt", "parser.none",
    "output.file", "output.stdout", "output.null", "output.kafka2", "output.rdkafka2", "output.loki",
    "output.elasticsearch", "output.opensearch",
]


def list_params_sections(text):
    """marker name -> (heading, [table rows as cell lists], other lines)"""
    sections, name = {}, None
    for line in text.splitlines():
        m = re.fullmatch(r"<!-- params:([A-Za-z0-9_.-]+) -->", line)
        if m:
            name = m.group(1)
            assert name not in sections, f"{name} printed twice"
            sections[name] = (None, [], [])
        elif name is None:
            assert not line.strip(), f"text before the first section: {line!r}"
        elif line.startswith("### "):
            assert sections[name][0] is None, f"{name}: two headings"
            sections[name] = (line[4:], sections[name][1], sections[name][2])
        elif line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            sections[name][1].append(cells)
        elif line.strip():
            sections[name][2].append(line)
    return sections


def test_list_params(tmp_path):
    rc, out, err = run(["--list-params"], tmp_path)
    assert rc == 0, (out, err)
    assert err == "", err
    rc2, out2, _ = run(["--list-params"], tmp_path)
    assert rc2 == 0 and out2 == out, "--list-params is not deterministic"
    sections = list_params_sections(out)
    missing = [s for s in LIST_PARAMS_SECTIONS if s not in sections]
    assert not missing, f"--list-params lacks {missing}"
    for name, (heading, rows, other) in sections.items():
        assert heading, f"{name}: no heading"
        if not rows:
            # a section without parameters says so; an alias names the plugin it shares its table with
            assert other and re.match(r"(No parameters|Same parameters as `)", other[0]), (name, other)
            continue
        assert rows[0] == ["parameter", "type", "default", "description"], (name, rows[0])
        assert set(rows[1][0]) <= set("-"), (name, rows[1])
        for cells in rows[2:]:
            assert len(cells) == 4, (name, cells)
            param, typ, default, desc = cells
            assert re.fullmatch(r"`<?[@a-z_0-9]+>?`(\.\.`[a-z_0-9]+`)?", param), (name, param)
            assert re.match(r"(string|integer|bool|size|time|enum: `.+`|array|hash|section)$", typ), (name, typ)
            assert desc, f"{name}: parameter {param} has no description"
    # a few rows every user looks for
    rows = {name: {c[0]: c for c in r[2:]} for name, (_, r, _) in sections.items()}
    assert rows["source.forward"]["`port`"][2] == "`24224`"
    assert rows["source.forward.security"]["`shared_key`"][2] == "required"
    assert rows["buffer"]["`@type`"][1] == "enum: `memory`, `file`"
    assert rows["output.loki"]["`<label>`"][1] == "section"
    assert "`regexp1`..`regexp20`" in rows["filter.grep"]


def test_help_lists_list_params(tmp_path):
    rc, out, err = run(["--help"], tmp_path)
    assert rc == 0 and "--list-params" in out, (out, err)
