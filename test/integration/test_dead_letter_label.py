"""weir's own dead letters routed to a label (`<buffer> dead_letter_label`):
records whose retries are exhausted and records the backend rejected enter
@DLQ (or @ERROR) with a `dead_letter` map (error_type, error_message,
attempts, tag, output_id) instead of the dead-letter file, and are indexed
into a real Elasticsearch node (peer_es.py, started once for the module) as
`logs-dlq-*` documents that can be searched."""
import datetime
import os
import signal
import subprocess
import time

import pytest

import fwd
import helpers
from conftest import T0, WEIR_BIN, free_port, poll
import peer_es


@pytest.fixture(scope="module")
def es():
    with peer_es.running() as node:
        yield node


def send(conn, tag, recs):
    chunk = f"c{time.monotonic_ns()}"
    conn.send(fwd.forward(tag, [fwd.entry(fwd.et(T0, i), r) for i, r in enumerate(recs)], {"chunk": chunk}))
    ack = conn.read_ack(timeout=20)
    assert ack.get("ack") == chunk, ack


def dead_letter_file(w, out_id):
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d")
    return os.path.join(w.tmp, "dl", f"{out_id}.{day}.jsonl")


def failing_es(out_id, pattern, port, label="@DLQ", key=None, retries=1):
    """An elasticsearch output to a port nobody listens on: its chunks fail
    until retry_max_times, then are dead letters."""
    key_line = f"\n    dead_letter_key {key}" if key else ""
    return helpers.match(pattern, "elasticsearch", id=out_id, extra=f"  host 127.0.0.1\n  port {port}\n"
                         "  index_name never", buffer=f"""    @type memory
    flush_interval 0.1s
    retry_wait 0.1s
    retry_max_times {retries}
    dead_letter_path DLDIR
    dead_letter_label {label}{key_line}""")


def test_retries_exhausted_to_label_file(weir, tmp_path):
    """retry_max_times 2 exhausted: the records go to @DLQ (a file here),
    each with the map at a nested dead_letter_key, the original tag kept;
    nothing is written to the dead-letter file."""
    weir.allow_errors = True  # "giving up on chunk ..." is logged at error level
    dlq = tmp_path / "dlq"
    cfg = helpers.forward_source(weir.port)
    cfg += failing_es("es_down", "app.**", free_port(), key="$.error.dead_letter", retries=2)
    cfg += f"<label @DLQ>\n{helpers.file_match(str(dlq), inject='    tag_key out_tag')}</label>\n"
    weir.start(cfg.replace("DLDIR", os.path.join(weir.tmp, "dl")))
    with weir.conn() as c:
        send(c, "app.pay", [{"seq": i, "error": {"code": 7}} for i in range(4)])
    recs = weir.wait_records(4, prefix=str(dlq), timeout=20)
    weir.stop_ok()
    assert sorted(r["seq"] for r in recs) == [0, 1, 2, 3]
    for r in recs:
        assert r["out_tag"] == "app.pay"
        assert r["error"]["code"] == 7  # the existing map keeps its keys
        d = r["error"]["dead_letter"]
        assert set(d) == {"error_type", "error_message", "attempts", "tag", "output_id"}, d
        assert d["error_type"] == "retries_exhausted"
        assert d["attempts"] == 3  # the first try and 2 retries
        assert d["tag"] == "app.pay" and d["output_id"] == "es_down"
        assert d["error_message"], d
    assert not os.path.exists(dead_letter_file(weir, "es_down"))


def test_reload_switches_the_dead_letter_label(weir, tmp_path):
    """SIGHUP: the kept output's dead letters go to the new configuration's
    label (here @DLQ's file changes), none to the old one nor to the file."""
    weir.allow_errors = True
    down = free_port()
    first, second = tmp_path / "first", tmp_path / "second"

    def cfg(path):
        text = helpers.forward_source(weir.port) + failing_es("es_down", "app.**", down)
        text += f"<label @DLQ>\n{helpers.file_match(str(path))}</label>\n"
        return text.replace("DLDIR", os.path.join(weir.tmp, "dl"))
    weir.start(cfg(first))
    with weir.conn() as c:
        send(c, "app.a", [{"seq": 1}])
    weir.wait_records(1, prefix=str(first), timeout=20)
    with open(weir.config_path, "w") as f:
        f.write(cfg(second))
    n0 = len(weir.stderr_lines())
    weir.proc.send_signal(signal.SIGHUP)
    poll(lambda: any("configuration reloaded" in l["msg"] for l in weir.stderr_lines()[n0:]), timeout=20,
         what="reload")
    with weir.conn() as c:
        send(c, "app.a", [{"seq": 2}])
    recs = weir.wait_records(1, prefix=str(second), timeout=20)
    assert recs[0]["seq"] == 2 and recs[0]["dead_letter"]["error_type"] == "retries_exhausted"
    assert [r["seq"] for r in weir.read_records(str(first))] == [1]
    weir.stop_ok()
    assert not os.path.exists(dead_letter_file(weir, "es_down"))


def test_dry_run_checks_the_label_and_key(weir):
    cfg = helpers.forward_source(weir.port)
    cfg += failing_es("a", "a.**", 9, label="@NOPE").replace("DLDIR", "/tmp")
    cfg += failing_es("b", "b.**", 9, label="@DLQ", key="$.x[0]").replace("DLDIR", "/tmp")
    cfg += failing_es("c", "c.**", 9, label="DLQ").replace("DLDIR", "/tmp")
    cfg += "<label @DLQ>\n<match **>\n  @type null\n</match>\n</label>\n"
    path = weir.write_config(cfg, "dl.conf")
    lines = cfg.splitlines()
    at = [n for n, l in enumerate(lines, 1) if "dead_letter_label" in l]
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", path], capture_output=True, text=True, timeout=30)
    err = p.stdout + p.stderr
    assert p.returncode != 0
    assert f"dl.conf:{at[0]}: @label @NOPE is not defined" in err, err
    assert f"dl.conf:{at[1]}: dead_letter_key `$.x[0]` has an array index" in err, err
    assert f"dl.conf:{at[2]}: dead_letter_label must name a label" in err, err


def test_dead_letters_indexed_and_searchable_in_elasticsearch(weir, es):
    """Two kinds of dead letters into logs-dlq-weir on the real node: records
    the node rejected (a mapping conflict, with ES's reason) from one output,
    and records whose retries ran out from another; searchable by
    dead_letter.error_type, output_id and tag."""
    weir.allow_errors = True  # "giving up on chunk ..." is logged at error level
    es.ok("PUT", "/logs-app", {"mappings": {"properties": {"n": {"type": "long"}}}})
    cfg = helpers.forward_source(weir.port)
    cfg += helpers.match("app.**", "elasticsearch", id="es_app",
                         extra=f"  host 127.0.0.1\n  port {es.port}\n  index_name logs-app",
                         buffer="""    @type memory
    flush_interval 0.1s
    retry_wait 0.1s
    retry_max_times 1
    dead_letter_path DLDIR
    dead_letter_label @DLQ""")
    cfg += failing_es("es_down", "other.**", free_port())
    cfg += f"""<label @DLQ>
  <match **>
    @type elasticsearch
    @id es_dlq
    host 127.0.0.1
    port {es.port}
    index_name logs-dlq-weir
    <buffer>
      @type memory
      flush_interval 0.1s
    </buffer>
  </match>
</label>
"""
    weir.start(cfg.replace("DLDIR", os.path.join(weir.tmp, "dl")))
    with weir.conn() as c:
        send(c, "app.orders", [{"seq": i, "n": "not a number" if i in (2, 5) else i} for i in range(8)])
        send(c, "other.audit", [{"seq": 100 + i} for i in range(3)])

    def count(index, q=None):
        es.refresh(index)
        return es.count(index, q)
    poll(lambda: count("logs-app") == 6 and count("logs-dlq-*") == 5, 30, interval=0.3,
         what="6 documents in logs-app and 5 in logs-dlq-*")
    time.sleep(0.5)
    assert count("logs-app") == 6 and count("logs-dlq-*") == 5
    rejected = es.search("logs-dlq-*", query={"term": {"dead_letter.error_type.keyword": "rejected"}})
    assert sorted(h["_source"]["seq"] for h in rejected) == [2, 5]
    for h in rejected:
        d = h["_source"]["dead_letter"]
        assert d["output_id"] == "es_app" and d["tag"] == "app.orders" and d["attempts"] == 1, d
        assert "mapper_parsing_exception" in d["error_message"] or "document_parsing_exception" in \
            d["error_message"], d
        assert h["_source"]["n"] == "not a number"
    exhausted = es.search("logs-dlq-*", query={"bool": {"filter": [
        {"term": {"dead_letter.error_type.keyword": "retries_exhausted"}},
        {"term": {"dead_letter.output_id.keyword": "es_down"}}]}})
    assert sorted(h["_source"]["seq"] for h in exhausted) == [100, 101, 102]
    assert all(h["_source"]["dead_letter"]["attempts"] == 2 and h["_source"]["dead_letter"]["tag"] == "other.audit"
               for h in exhausted)
    # a full-text search over the messages finds the rejections by ES's reason
    hits = es.search("logs-dlq-*", q="dead_letter.error_message:mapper_parsing_exception "
                                     "dead_letter.error_message:document_parsing_exception")
    assert sorted(h["_source"]["seq"] for h in hits) == [2, 5]
    weir.stop_ok()
    for out in ("es_app", "es_down"):
        assert not os.path.exists(dead_letter_file(weir, out)), out
