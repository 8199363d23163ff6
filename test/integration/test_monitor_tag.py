"""monitor_agent's `tag`: every emit_interval, one record per source and
output (Fluentd's plugins_info_all), routed like any record."""
import helpers
from conftest import free_port


def test_monitor_agent_tag_emits_records(weir, tmp_path):
    mport = free_port()
    cfg = (helpers.forward_source(weir.port) +
           helpers.monitor_source(mport, "monitor_agent", "  tag weir.monitor\n  emit_interval 0.2s\n") +
           helpers.file_match(str(tmp_path / "mon"), "weir.monitor", id="monfile") +
           helpers.match("**", "null", id="rest", buffer="    flush_interval 1s"))
    weir.start(cfg)
    recs = []
    import time
    deadline = time.time() + 10
    while time.time() < deadline and len(recs) < 8:
        recs = weir.read_records(str(tmp_path / "mon"))
        time.sleep(0.1)
    ids = {r["plugin_id"] for r in recs}
    assert {"forward.0", "monitor_agent.1", "monfile", "rest"} <= ids, ids
    rest = [r for r in recs if r["plugin_id"] == "rest"][0]
    assert rest["plugin_category"] == "output" and rest["type"] == "null" and rest["output_plugin"] is True
    assert "buffer_queue_length" in rest and rest["buffer_timekeys"] == []
    src = [r for r in recs if r["plugin_id"] == "forward.0"][0]
    assert src == {"plugin_id": "forward.0", "plugin_category": "input", "type": "forward",
                   "output_plugin": False, "retry_count": None}
