"""Fluentd v1's compatibility layer and Fluentd's <buffer> parameters, as a
migrating user meets them: v0.12-era configurations pass `weir --dry-run`
with one warning per converted parameter (FILE:LINE: warning: ...), a word
alone on its line is a warning, did-you-mean names the v1 form of a v0.12
name, <system> root_dir places file buffers as Fluentd does.

What the converted configurations deliver is checked against Fluentd 1.16
itself by the conformance cases conformance/v012-* (test_conformance.py for
weir, test_conformance_fluentd.py for Fluentd); config/conf_compat.c's table
has its unit tests in test/unit/test_compat.c.
"""
import glob
import os
import time

import fwd
from conftest import T0
from test_config_errors import run_dry, write

# A v0.12-era central aggregator (the shape of the fluentd-elasticsearch
# images and tutorials of 2016-2018): every name written the v0.12 way.
V012_AGGREGATOR = """\
<source>
  type forward
  id input_forward
  port 24224
  bind 0.0.0.0
</source>

<filter kubernetes.**>
  type parser
  key_name log
  format json
  time_key time
  time_format %Y-%m-%dT%H:%M:%S.%NZ
  reserve_data true
</filter>

<match kubernetes.**>
  type elasticsearch
  id out_es
  log_level info
  host elasticsearch.logging
  port 9200
  logstash_format true
  include_tag_key true
  buffer_type file
  buffer_path /var/log/fluentd-buffers/kubernetes.system.buffer
  flush_interval 5s
  buffer_chunk_limit 2M
  buffer_queue_limit 32
  retry_limit 17
  retry_wait 1.0
  max_retry_wait 30
  disable_retry_limit false
  num_threads 2
  buffer_queue_full_action block
  flush_at_shutdown true
</match>

<match archive.**>
  type file
  path /var/log/archive/app
  format json
  include_time_key true
  time_format %Y-%m-%dT%H:%M:%S%z
  include_tag_key true
  time_slice_format %Y%m%d%H
  time_slice_wait 10m
  buffer_type file
</match>

<match debug.**>
  type stdout
  format json
  include_tag_key true
</match>
"""


def warnings_of(err):
    return [l for l in err.splitlines() if ": warning: " in l]


def test_v012_aggregator_dry_run(tmp_path):
    path = write(os.path.join(str(tmp_path), "fluent.conf"), V012_AGGREGATOR)
    rc, out, err = run_dry(path, str(tmp_path))
    assert rc == 0, err
    lines = V012_AGGREGATOR.split("\n")

    def at(text, nth=1):
        seen = 0
        for i, l in enumerate(lines, 1):
            if l.strip().startswith(text):
                seen += 1
                if seen == nth:
                    return f"{path}:{i}: warning: "
        raise AssertionError(text)

    dep = "is deprecated parameter. use"
    want = [
        at("type forward") + "'type' is deprecated parameter name. use '@type' instead.",
        at("id input_forward") + "'id' is deprecated parameter name. use '@id' instead.",
        at("type parser") + "'type' is deprecated parameter name. use '@type' instead.",
        at("format json") + f"'format' {dep} '@type json' in <parse> instead.",
        at("time_key time") + f"'time_key' {dep} 'time_key' in <parse> instead.",
        at("time_format %Y-%m-%dT%H:%M:%S.%NZ") + f"'time_format' {dep} 'time_format' in <parse> instead.",
        at("type elasticsearch") + "'type' is deprecated parameter name. use '@type' instead.",
        at("id out_es") + "'id' is deprecated parameter name. use '@id' instead.",
        at("log_level info") + "'log_level' is deprecated parameter name. use '@log_level' instead.",
        at("buffer_type file") + f"'buffer_type' {dep} '@type' in <buffer> instead.",
        at("buffer_path") + f"'buffer_path' {dep} 'path' in <buffer> instead.",
        at("flush_interval 5s") + f"'flush_interval' {dep} 'flush_interval' in <buffer> instead.",
        at("buffer_chunk_limit") + f"'buffer_chunk_limit' {dep} 'chunk_limit_size' in <buffer> instead.",
        at("buffer_queue_limit") + f"'buffer_queue_limit' {dep} 'queue_limit_length' in <buffer> instead.",
        at("retry_limit") + f"'retry_limit' {dep} 'retry_max_times' in <buffer> instead.",
        # retry_wait is no compat_parameters name: Fluentd leaves it unused too
        at("retry_wait 1.0") + "parameter 'retry_wait' in <match kubernetes.**> is not used (Fluentd v1 does not "
                               "convert it here either); use 'retry_wait' in <buffer>",
        at("max_retry_wait") + f"'max_retry_wait' {dep} 'retry_max_interval' in <buffer> instead.",
        at("disable_retry_limit") + f"'disable_retry_limit' {dep} 'retry_forever' in <buffer> instead.",
        at("num_threads") + f"'num_threads' {dep} 'flush_thread_count' in <buffer> instead.",
        at("buffer_queue_full_action") + f"'buffer_queue_full_action' {dep} 'overflow_action' in <buffer> instead.",
        at("flush_at_shutdown") + f"'flush_at_shutdown' {dep} 'flush_at_shutdown' in <buffer> instead.",
        at("type file") + "'type' is deprecated parameter name. use '@type' instead.",
        at("format json", 2) + f"'format' {dep} '@type' in <format> instead.",
        at("include_time_key") + f"'include_time_key' {dep} 'time_key' in <inject> instead.",
        at("time_format %Y-%m-%dT%H:%M:%S%z") + f"'time_format' {dep} 'time_format' in <inject> instead.",
        at("include_tag_key", 2) + f"'include_tag_key' {dep} 'tag_key' in <inject> instead.",
        at("time_slice_format") + f"'time_slice_format' {dep} 'timekey 3600' in <buffer time> instead.",
        at("time_slice_wait") + f"'time_slice_wait' {dep} 'timekey_wait' in <buffer> instead.",
        at("buffer_type file", 2) + f"'buffer_type' {dep} '@type' in <buffer> instead.",
        at("type stdout") + "'type' is deprecated parameter name. use '@type' instead.",
        at("format json", 3) + f"'format' {dep} '@type' in <format> instead.",
        at("include_tag_key", 3) + f"'include_tag_key' {dep} 'tag_key' in <inject> instead.",
    ]
    got = warnings_of(err)
    assert sorted(got) == sorted(want), "got:\n" + "\n".join(got) + "\nwant:\n" + "\n".join(want)
    assert f"configuration OK (1 sources, 3 outputs) with {len(want)} warnings" in err, err


def test_stray_word_is_a_warning(tmp_path):
    text = ("<source>\n  @type forward\n  port 24224\n  listen here\n  oops\n</source>\n"
            "stray\n<match **>\n  @type null\n</match>\n")
    path = write(os.path.join(str(tmp_path), "weir.conf"), text)
    rc, out, err = run_dry(path, str(tmp_path))
    # a parameter with a value stays an error (a typo weir must not drop); a word alone is a warning
    assert rc == 1, err
    assert f"{path}:4: unknown parameter 'listen' in <source>" in err, err
    assert (f"{path}:5: warning: parameter 'oops' in <source> is not used (a word alone on its line: a comment "
            "without '#'?)") in err, err
    assert (f"{path}:7: warning: parameter 'stray' outside of any directive is not used (a word alone on its "
            "line: a comment without '#'?)") in err, err
    assert err.splitlines()[-1] == "1 error", err


def test_v012_names_did_you_mean(tmp_path):
    text = ("<match **>\n  @type file\n  path /tmp/x\n  <buffer>\n    max_retry_wait 30s\n    buffer_chunk_limit 8m\n"
            "  </buffer>\n</match>\n<match k.**>\n  @type kafka2\n  brokers localhost:9092\n  flush_interval 3s\n"
            "  <format>\n    @type json\n  </format>\n</match>\n")
    path = write(os.path.join(str(tmp_path), "weir.conf"), text)
    rc, out, err = run_dry(path, str(tmp_path))
    assert rc == 1, err
    assert (f"{path}:5: unknown parameter 'max_retry_wait' in <buffer>; did you mean 'retry_max_interval' in "
            "<buffer> (its v1 form)?") in err, err
    assert (f"{path}:6: unknown parameter 'buffer_chunk_limit' in <buffer>; did you mean 'chunk_limit_size' in "
            "<buffer> (its v1 form)?") in err, err
    assert "bulk_retry_wait" not in err
    # kafka2 converts nothing in Fluentd either: unused, a warning
    assert (f"{path}:12: warning: parameter 'flush_interval' in <match k.**> is not used (Fluentd v1 does not "
            "convert it here either); use 'flush_interval' in <buffer>") in err, err


def test_buffer_parameters_fluentd_declares(tmp_path):
    text = """<source>
  @type forward
  port 24224
</source>
<match es.**>
  @type elasticsearch
  index_name ${index_name}
  <buffer tag, index_name>
    @type memory
    queue_limit_length 8
    chunk_full_threshold 0.9
    disable_chunk_backup true
    compress gzip
  </buffer>
</match>
<match files.**>
  @type file
  path /tmp/weir-compat/${tag}
  <buffer tag, $.log_path>
    @type file
    path /tmp/weir-compat-buffer
    path_suffix .buf
    file_permission 0640
    dir_permission 0750
    decompression_size_limit 1m
  </buffer>
</match>
"""
    path = write(os.path.join(str(tmp_path), "weir.conf"), text)
    rc, out, err = run_dry(path, str(tmp_path))
    assert rc == 0, err
    w = warnings_of(err)
    for needle in ("chunk key 'index_name'", "chunk key '$.log_path'", "disable_chunk_backup has no effect",
                   "compress gzip", "path_suffix has no effect", "decompression_size_limit has no effect"):
        assert sum(needle in l for l in w) == 1, (needle, err)
    # out_file expands a record-key chunk key in its path (${$.log_path}); a placeholder that is not
    # one of the chunk keys is refused, as Fluentd refuses it, never written literally
    good = text.replace("path /tmp/weir-compat/${tag}", "path /tmp/weir-compat/${tag}/${$.log_path}")
    path = write(os.path.join(str(tmp_path), "good.conf"), good)
    rc, out, err = run_dry(path, str(tmp_path))
    assert rc == 0, err
    bad = text.replace("path /tmp/weir-compat/${tag}", "path /tmp/weir-compat/${tag}/${log_path}")
    path = write(os.path.join(str(tmp_path), "bad.conf"), bad)
    rc, out, err = run_dry(path, str(tmp_path))
    assert rc == 1 and "placeholder '${log_path}' in path is not a chunk key" in err, err
    # a file buffer without path, where Fluentd cannot derive one (no root_dir, not out_file): refused
    text = "<match **>\n  @type stdout\n  <buffer>\n    @type file\n  </buffer>\n</match>\n"
    path = write(os.path.join(str(tmp_path), "nopath.conf"), text)
    rc, out, err = run_dry(path, str(tmp_path))
    assert rc == 1 and f"{path}:3: missing required parameter 'path' in <buffer> of @type file" in err, err


def test_root_dir_and_derived_buffer_paths(weir):
    root = os.path.join(weir.tmp, "root")
    out = weir.out_dir
    weir.start(f"""
<system>
  root_dir {root}
</system>
<source>
  @type forward
  port {weir.port}
  bind 127.0.0.1
</source>
<match a.**>
  @type file
  @id out_a
  path {out}/a
  <buffer>
    @type file
    flush_mode interval
    flush_interval 1h
  </buffer>
</match>
<match b.**>
  type file
  path {out}/b
  buffer_type file
  flush_interval 1h
</match>
""")
    with weir.conn() as c:
        for tag, ch in (("a.x", "c1"), ("b.x", "c2")):
            c.send(fwd.message(tag, T0, {"m": tag}, {"chunk": ch}))
            c.expect_ack(ch)
    # acked means in a chunk file: Fluentd's places (plugin_root_dir/buffer; out_file's own path)
    deadline = time.monotonic() + 5
    a_dir, b_dir = os.path.join(root, "worker0", "out_a", "buffer"), os.path.join(out, "b")
    while time.monotonic() < deadline and not (glob.glob(a_dir + "/*.chunk") and glob.glob(b_dir + "/*.chunk")):
        time.sleep(0.05)
    assert glob.glob(a_dir + "/*.chunk"), os.listdir(weir.tmp)
    assert glob.glob(b_dir + "/*.chunk"), os.listdir(out)
