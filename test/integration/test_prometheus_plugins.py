"""The fluent-plugin-prometheus family in weir: prometheus_monitor and
prometheus_output_monitor families from weir's own counters, and the
prometheus filter and output with <metric> counter, gauge, summary and
histogram from record fields, all served on the monitor endpoint's
/metrics."""
import fwd
import helpers
from conftest import free_port, poll

CONF = """
<source>
  @type prometheus_monitor
  <labels>
    host ${hostname}
  </labels>
</source>
<source>
  @type prometheus_output_monitor
  interval 10
  <labels>
    tier aggregator
  </labels>
</source>
<filter app.**>
  @type prometheus
  <labels>
    tag ${tag}
    part ${tag_parts[1]}
  </labels>
  <metric>
    name weir_test_records_total
    type counter
    desc records seen
  </metric>
  <metric>
    name weir_test_bytes_total
    type counter
    desc bytes
    key size
    <labels>
      status ${status}
      svc $.k8s.app
    </labels>
  </metric>
  <metric>
    name weir_test_latency
    type histogram
    desc latency
    key $.lat
    buckets 0.1,1,10
  </metric>
  <metric>
    name weir_test_size_summary
    type summary
    desc sizes
    key size
  </metric>
</filter>
<match app.**>
  @type copy
  <store>
    @type null
    @id nullout
  </store>
  <store>
    @type prometheus
    <metric>
      name weir_test_last_size
      type gauge
      desc last size
      key size
    </metric>
  </store>
</match>
"""


def test_prometheus_family(weir):
    mport = free_port()
    cfg = helpers.forward_source(weir.port) + helpers.monitor_source(mport, "prometheus") + CONF
    weir.start(cfg)
    recs = [{"size": 10, "status": 200, "lat": 0.05, "k8s": {"app": "web"}},
            {"size": 30, "status": 500, "lat": 2, "k8s": {"app": "web"}},
            {"size": 5, "status": 200, "lat": 20},
            {"status": 200}]
    with weir.conn() as c:
        c.send(fwd.forward("app.web", [fwd.entry(fwd.et(1700000000), r) for r in recs], {"chunk": "k1"}))
        c.expect_ack("k1")
    st, text = helpers.get(mport, "/metrics")
    assert st == 200
    lab = 'tag="app.web",part="web"'
    assert helpers.metric(text, "weir_test_records_total", tag="app.web", part="web") == 4
    assert f'weir_test_bytes_total{{{lab},status="200",svc="web"}} 10.0' in text
    assert f'weir_test_bytes_total{{{lab},status="500",svc="web"}} 30.0' in text
    assert f'weir_test_bytes_total{{{lab},status="200",svc=""}} 5.0' in text
    assert f'weir_test_latency_bucket{{{lab},le="0.1"}} 1' in text
    assert f'weir_test_latency_bucket{{{lab},le="10"}} 2' in text
    assert f'weir_test_latency_bucket{{{lab},le="+Inf"}} 3' in text
    assert f'weir_test_latency_count{{{lab}}} 3' in text
    assert f'weir_test_size_summary_sum{{{lab}}} 45.0' in text
    assert "# TYPE weir_test_last_size gauge" in text
    assert "weir_test_last_size 5.0" in text
    # the monitors, from weir's counters
    assert helpers.metric(text, "fluentd_output_status_emit_records", plugin_id="nullout", type="null",
                          tier="aggregator") == 4
    assert 'fluentd_output_status_num_errors{plugin_id="nullout",type="null",tier="aggregator"} 0' in text
    assert "# TYPE fluentd_status_retry_count gauge" in text
    assert 'fluentd_status_retry_count{plugin_id="nullout",plugin_category="output",type="null",host="' in text


def test_initialized_metrics_exist_before_any_record(weir):
    """initialized true: the series of each <initlabels> (and, without any,
    the static labels' one) are served at zero before the first record; a
    label an <initlabels> leaves out takes its static value."""
    mport = free_port()
    cfg = helpers.forward_source(weir.port) + helpers.monitor_source(mport, "prometheus") + """
<filter app.**>
  @type prometheus
  <labels>
    tier aggregator
  </labels>
  <metric>
    name weir_init_requests_total
    type counter
    desc requests by status
    initialized true
    <labels>
      status ${status}
    </labels>
    <initlabels>
      status 200
    </initlabels>
    <initlabels>
      status 500
    </initlabels>
  </metric>
  <metric>
    name weir_init_static_total
    type counter
    desc static labels only
    initialized true
  </metric>
</filter>
<match app.**>
  @type null
</match>
"""
    weir.start(cfg)
    st, text = helpers.get(mport, "/metrics")
    assert st == 200
    assert 'weir_init_requests_total{tier="aggregator",status="200"} 0' in text, text
    assert 'weir_init_requests_total{tier="aggregator",status="500"} 0' in text, text
    assert 'weir_init_static_total{tier="aggregator"} 0' in text, text
    with weir.conn() as c:
        c.send(fwd.forward("app.web", [fwd.entry(fwd.et(1700000000), {"status": 500})], {"chunk": "k1"}))
        c.expect_ack("k1")
    st, text = helpers.get(mport, "/metrics")
    assert 'weir_init_requests_total{tier="aggregator",status="500"} 1' in text, text
    assert 'weir_init_requests_total{tier="aggregator",status="200"} 0' in text, text
