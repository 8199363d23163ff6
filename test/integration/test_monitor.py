"""The monitor_agent / prometheus HTTP endpoint: metric values against known
traffic, plugins view, readiness, and the Fluent Bit style health check."""
import base64
import json
import os

import fwd
from conftest import T0, free_port, poll
from fwd import et, entry
from helpers import config, get, match, metric


# the thresholds of the Fluent Bit style health check (/api/v1/health)
HEALTH_CHECK = "  hc_errors_count 1\n  hc_retry_failure_count 1\n  hc_period 30s"

GREP_OUT_DEBUG = """<filter app.**>
  @type grep
  <exclude>
    key level
    pattern /^DEBUG$/
  </exclude>
</filter>
"""


def monitor_config(port, mport, tmp, out_type="file"):
    """forward -> grep out DEBUG -> output `out` (file, or null never flushing)
    with a file buffer that gives a chunk up after one retry; prometheus on mport."""
    params = {"path": f"{tmp}/out/r"} if out_type == "file" else {"extra": "  never_flush true"}
    out = match("app.**", out_type, id="out", **params,
                buffer=f"    @type file\n    path {tmp}/buf\n    flush_mode immediate\n    retry_wait 0.1s\n"
                       "    retry_max_times 1")
    return config(port, monitor=mport, monitor_type="prometheus", monitor_extra=HEALTH_CHECK,
                  before=GREP_OUT_DEBUG, matches=out)


def send(weir, recs):
    ch = base64.encodebytes(os.urandom(9)).decode()
    with weir.conn() as c:
        c.send(fwd.packed_forward("app.m", [entry(et(T0, i), r) for i, r in enumerate(recs)], {"chunk": ch}))
        c.expect_ack(ch)


def test_metrics_match_traffic(weir, tmp_path):
    mport = free_port()
    weir.start(monitor_config(weir.port, mport, str(tmp_path)))
    assert get(mport, "/readyz")[0] == 200
    assert get(mport, "/healthz") == (200, "ok\n")
    recs = [{"level": "DEBUG" if i % 4 == 0 else "INFO", "i": i} for i in range(100)]
    send(weir, recs)
    send(weir, recs[:10])
    code, text = get(mport, "/metrics")
    assert code == 200
    assert metric(text, "weir_input_records_total", input="forward") == 110
    assert metric(text, "weir_input_requests_total", input="forward") == 2
    assert metric(text, "weir_input_acks_total", input="forward") == 2
    assert metric(text, "weir_router_filtered_records_total") == 25 + 3  # DEBUG: i%4==0
    assert metric(text, "weir_output_records_total", output="out", type="file") == 110 - 28
    poll(lambda: metric(get(mport, "/metrics")[1], "weir_buffer_flushed_records_total", output="out") == 82,
         what="82 records flushed")
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_buffer_appended_records_total", output="out") == 82
    assert metric(text, "weir_output_write_seconds_count", output="out") >= 1
    assert metric(text, "weir_output_write_seconds_bucket", output="out", le="+Inf") == \
        metric(text, "weir_output_write_seconds_count", output="out")
    assert metric(text, "weir_process_resident_memory_bytes") > 1e6
    plugins = json.loads(get(mport, "/api/plugins.json")[1])["plugins"]
    out = [p for p in plugins if p["plugin_id"] == "out"][0]
    assert out["type"] == "file" and out["emit_records"] == 82 and out["retry_count"] == 0
    assert get(mport, "/api/v1/health") == (200, "ok\n")


def test_health_turns_error_when_flushes_fail(weir, tmp_path):
    mport = free_port()
    weir.allow_errors = True
    weir.start(monitor_config(weir.port, mport, str(tmp_path), out_type="null"))
    send(weir, [{"level": "INFO", "i": 1}])
    # never_flush: the flush fails, one retry, then the chunk is given up (dead letter)
    poll(lambda: metric(get(mport, "/metrics")[1], "weir_buffer_failed_flushes_total", output="out") >= 1,
         what="a failed flush")
    text = get(mport, "/metrics")[1]
    assert metric(text, "weir_buffer_dead_letter_records_total", output="out") == 1
    assert metric(text, "weir_buffer_retried_flushes_total", output="out") >= 1
    assert get(mport, "/api/v1/health") == (500, "error\n")
    assert get(mport, "/healthz")[0] == 200  # alive, just unhealthy
