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
