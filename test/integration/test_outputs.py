"""Outputs: file naming (append true/false), formats, <inject> variants, stdout, null."""
import base64
import json
import os
import re
import subprocess
import time

import fwd
from conftest import T0, T0_DAY, WEIR_BIN, assert_events, read_json_lines
from fwd import et, entry
from helpers import config, file_match, match


def chunk_id():
    return base64.encodebytes(os.urandom(16)).decode()


def send_acked(weir, req):
    ch = chunk_id()
    with weir.conn() as c:
        c.send(req(ch))
        c.expect_ack(ch)


def test_append_true_file_name_by_record_date(weir):
    weir.start()
    day2 = T0 + 86400  # 2023-11-15
    send_acked(weir, lambda ch: fwd.forward("d", [entry(et(T0, 0), {"n": 0}), entry(et(day2, 0), {"n": 1}),
                                                  entry(et(T0, 1), {"n": 2})], {"chunk": ch}))
    files = [os.path.basename(p) for p in weir.output_files()]
    assert files == [f"records.{T0_DAY}.log", "records.20231115.log"], files
    assert_events(read_json_lines([weir.prefix + f".{T0_DAY}.log"]),
                  [("d", T0, 0, {"n": 0}), ("d", T0, 1, {"n": 2})])
    assert_events(read_json_lines([weir.prefix + ".20231115.log"]), [("d", day2, 0, {"n": 1})])


def test_append_true_appends_across_runs(weir):
    weir.start()
    send_acked(weir, lambda ch: fwd.message("r", et(T0, 0), {"run": 1}, {"chunk": ch}))
    weir.stop_ok()
    weir.start()
    send_acked(weir, lambda ch: fwd.message("r", et(T0, 1), {"run": 2}, {"chunk": ch}))
    files = [os.path.basename(p) for p in weir.output_files()]
    assert files == [f"records.{T0_DAY}.log"], files
    assert_events(weir.read_records(), [("r", T0, 0, {"run": 1}), ("r", T0, 1, {"run": 2})])


def test_append_false_new_file_per_run(weir):
    weir.start(append=False)
    send_acked(weir, lambda ch: fwd.message("r", et(T0, 0), {"run": 1}, {"chunk": ch}))
    send_acked(weir, lambda ch: fwd.message("r", et(T0, 1), {"run": 1, "n": 2}, {"chunk": ch}))
    files = [os.path.basename(p) for p in weir.output_files()]
    assert files == [f"records.{T0_DAY}_0.log"], files
    weir.stop_ok()
    weir.start(append=False)
    send_acked(weir, lambda ch: fwd.message("r", et(T0, 2), {"run": 2}, {"chunk": ch}))
    files = [os.path.basename(p) for p in weir.output_files()]
    assert files == [f"records.{T0_DAY}_0.log", f"records.{T0_DAY}_1.log"], files
    assert_events(read_json_lines([weir.prefix + f".{T0_DAY}_0.log"]),
                  [("r", T0, 0, {"run": 1}), ("r", T0, 1, {"run": 1, "n": 2})])
    assert_events(read_json_lines([weir.prefix + f".{T0_DAY}_1.log"]), [("r", T0, 2, {"run": 2})])


def test_default_out_file_format(weir):
    """No <format>: Fluentd's out_file format, TIME<TAB>TAG<TAB>JSON (iso8601, local time = UTC here)."""
    weir.start(config(weir.port, weir.prefix, fmt=None))
    rec = {"k": "v", "n": [1, {"x": None}], "u": "ü"}
    send_acked(weir, lambda ch: fwd.forward("app.plain", [entry(et(T0, 5), rec), entry(T0 + 61, {"b": True})],
                                            {"chunk": ch}))
    files = weir.output_files()
    assert [os.path.basename(p) for p in files] == [f"records.{T0_DAY}.log"]
    with open(files[0], encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[-1] == "" and len(lines) == 3, lines
    parts = [l.split("\t") for l in lines[:2]]
    assert [p[:2] for p in parts] == [["2023-11-14T22:13:20+00:00", "app.plain"],
                                      ["2023-11-14T22:14:21+00:00", "app.plain"]], lines
    assert [json.loads(p[2]) for p in parts] == [rec, {"b": True}]


def test_inject_time_types(weir):
    weir.start(config(weir.port, matches=(
        file_match(f"{weir.out_dir}/unix", "unix.**", inject="    time_key ts\n    time_type unixtime\n    tag_key t") +
        file_match(f"{weir.out_dir}/str", "str.**", inject="    time_key ts\n    time_type string\n"
                                                           "    time_format %Y-%m-%dT%H:%M:%S.%N\n    utc true") +
        file_match(f"{weir.out_dir}/nothing", "nothing.**"))))
    for tag in ("unix.a", "str.b", "nothing.c"):
        send_acked(weir, lambda ch: fwd.forward(tag, [entry(et(T0, 123456789), {"k": 1}),
                                                      entry(et(T0 + 3600, 5), {"k": 2})], {"chunk": ch}))
    assert weir.read_records(f"{weir.out_dir}/unix") == [
        {"k": 1, "ts": T0, "t": "unix.a"}, {"k": 2, "ts": T0 + 3600, "t": "unix.a"}]
    assert weir.read_records(f"{weir.out_dir}/str") == [
        {"k": 1, "ts": "2023-11-14T22:13:20.123456789"}, {"k": 2, "ts": "2023-11-14T23:13:20.000000005"}]
    assert weir.read_records(f"{weir.out_dir}/nothing") == [{"k": 1}, {"k": 2}]
    unix = weir.read_records(f"{weir.out_dir}/unix")
    assert all(isinstance(r["ts"], int) for r in unix), unix


def test_routing_first_match_wins(weir):
    weir.start(config(weir.port, matches=(
        match("drop.**", "null") +
        file_match(f"{weir.out_dir}/app", "app.**", inject="    tag_key tag") +
        file_match(f"{weir.out_dir}/rest", "**", inject="    tag_key tag"))))
    for tag in ("drop.me", "app.x", "app.y.z", "other", "drop"):
        send_acked(weir, lambda ch: fwd.message(tag, et(T0, 0), {"from": tag}, {"chunk": ch}))
    assert weir.read_records(f"{weir.out_dir}/app") == [{"from": "app.x", "tag": "app.x"},
                                                        {"from": "app.y.z", "tag": "app.y.z"}]
    assert weir.read_records(f"{weir.out_dir}/rest") == [{"from": "other", "tag": "other"}]


def test_null_output_discards_and_acks(weir):
    weir.start(config(weir.port, matches=match("**", "null")))
    send_acked(weir, lambda ch: fwd.forward("gone", [entry(et(T0, 0), {"n": 1})], {"chunk": ch}))
    assert os.listdir(weir.out_dir) == []


def test_stdout_output(weir):
    weir.start(config(weir.port, matches=match("**", "stdout")))
    recs = [{"k": "v", "n": 1}, {"u": "ü ✓", "a": [None, True]}]
    send_acked(weir, lambda ch: fwd.forward("out.std", [entry(et(T0, 500000000), recs[0]),
                                                        entry(et(T0 + 1, 0), recs[1])], {"chunk": ch}))
    weir.stop_ok()
    lines = [l for l in weir.stdout_text().split("\n") if l]
    assert len(lines) == 2, lines
    # Fluentd's out_stdout: "%Y-%m-%d %H:%M:%S.%N %z TAG: JSON" (local time; TZ=UTC here)
    for line, rec, stamp in zip(lines, recs, ("2023-11-14 22:13:20.500000000 +0000",
                                              "2023-11-14 22:13:21.000000000 +0000")):
        m = re.match(r"^(.+) out\.std: (\{.*\})$", line)
        assert m, f"not 'TIME TAG: JSON': {line!r}"
        assert json.loads(m.group(2)) == rec
        assert m.group(1) == stamp, line


def test_append_cuts_a_partial_last_line_left_by_a_crash(weir):
    """A crash in the middle of out_file's write leaves a cut-off last line;
    the buffer delivers that chunk again, so weir cuts the fragment when it
    opens the file instead of appending a whole copy after it."""
    weir.start()
    send_acked(weir, lambda ch: fwd.message("r", et(T0, 0), {"n": 1}, {"chunk": ch}))
    weir.stop_ok()
    path = weir.prefix + f".{T0_DAY}.log"
    with open(path, "ab") as f:
        f.write(b'{"n":2,"pad":"cut sh')  # what a kill -9 mid-write leaves
    weir.start()
    send_acked(weir, lambda ch: fwd.message("r", et(T0, 1), {"n": 2}, {"chunk": ch}))
    with open(path, "rb") as f:
        data = f.read()
    assert data.endswith(b"\n") and b"cut sh" not in data, data
    assert_events(weir.read_records(), [("r", T0, 0, {"n": 1}), ("r", T0, 1, {"n": 2})])
    assert any("ended in a partial line (20 bytes" in l["msg"] for l in weir.stderr_lines())


def test_path_record_key_placeholders(weir):
    """A record-key chunk key in the file path (<buffer tag, $.kubernetes.namespace_name>
    and path .../${$.kubernetes.namespace_name}/${tag}): one file per value, as Fluentd's
    extract_placeholders; a missing key is empty; a value never leaves the path's
    directory ('/' becomes '_', '..' becomes '_')."""
    out = weir.out_dir
    weir.start(weir.config(matches=match(
        "**", "file", path=f"{out}/${{$.kubernetes.namespace_name}}/${{tag}}.${{level}}", append=True, fmt="json",
        buffer="flush_mode immediate", buffer_keys="tag, $.kubernetes.namespace_name, level")))
    recs = [{"kubernetes": {"namespace_name": "prod"}, "level": "info", "n": 0},
            {"kubernetes": {"namespace_name": "dev"}, "level": "info", "n": 1},
            {"kubernetes": {"namespace_name": "prod"}, "level": "error", "n": 2},
            {"kubernetes": {"namespace_name": "../../etc"}, "level": "x", "n": 3},
            {"kubernetes": {"namespace_name": ".."}, "level": "y", "n": 4},
            {"level": "info", "n": 5}]
    send_acked(weir, lambda ch: fwd.forward("app", [entry(et(T0, i), r) for i, r in enumerate(recs)], {"chunk": ch}))
    want = {"prod/app.info.log": [0], "dev/app.info.log": [1], "prod/app.error.log": [2],
            ".._.._etc/app.x.log": [3], "_/app.y.log": [4], "app.info.log": [5]}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = {}
        for root, _, files in os.walk(out):
            for f in files:
                rel = os.path.relpath(os.path.join(root, f), out)
                with open(os.path.join(root, f)) as fh:
                    got[rel] = [json.loads(l)["n"] for l in fh if l.strip()]
        if got == want:
            break
        time.sleep(0.2)
    assert got == want
    assert not os.path.exists(os.path.join(os.path.dirname(out), "etc"))


def test_path_placeholder_must_be_a_chunk_key(weir, tmp_path):
    text = weir.config(matches=match("**", "file", path=f"{weir.out_dir}/${{level}}", buffer="", buffer_keys="tag"))
    path = weir.write_config(text, "bad.conf")
    r = subprocess.run([WEIR_BIN, "--dry-run", "-c", path], capture_output=True, text=True)
    assert r.returncode == 1
    assert (f"{path}:{text[:text.index('path ' + weir.out_dir)].count(chr(10)) + 1}: placeholder '${{level}}' in path "
            "is not a chunk key: the path expands ${tag}, ${tag[N]}, the time slice and the record keys of <buffer> "
            "(<buffer tag, KEY>, at most 8)") in r.stderr, r.stderr


def test_symlink_path_follows_the_file_written_last(weir):
    """symlink_path: a link to the output file opened last, replaced when the
    next file (here: the next day's) is opened."""
    link = os.path.join(weir.tmp, "current.log")
    weir.start(weir.config(match_extra=f"  symlink_path {link}\n"))
    send_acked(weir, lambda ch: fwd.message("s", et(T0, 0), {"n": 0}, {"chunk": ch}))
    assert os.path.islink(link) and os.readlink(link) == weir.prefix + f".{T0_DAY}.log", os.readlink(link)
    assert [json.loads(l)["n"] for l in open(link)] == [0]
    send_acked(weir, lambda ch: fwd.message("s", et(T0 + 86400, 0), {"n": 1}, {"chunk": ch}))
    assert os.readlink(link) == weir.prefix + ".20231115.log"
    assert [json.loads(l)["n"] for l in open(link)] == [1]
