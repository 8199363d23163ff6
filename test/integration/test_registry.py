"""One plugin registry: every source kind (forward, kafka, monitor_agent,
prometheus) is counted by --dry-run, listed by /api/plugins.json, and a
configuration check never touches the network (no librdkafka client is
made before start)."""
import json
import os
import socket
import subprocess
import time
import urllib.request

from conftest import WEIR_BIN, free_port, poll


def fake_broker():
    """A listening socket standing in for a Kafka broker: any client that
    connects shows up in its accept queue."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    s.setblocking(False)
    return s


def connections(s):
    n = 0
    while True:
        try:
            c, _ = s.accept()
        except BlockingIOError:
            return n
        c.close()
        n += 1


def every_kind_config(port, mport, pport, broker, tmp):
    return f"""
<source>
  @type forward
  port {port}
  bind 127.0.0.1
</source>
<source>
  @type kafka
  @id from_kafka
  brokers 127.0.0.1:{broker}
  topics logs
  consumer_group weir-test
  <parse>
    @type json
  </parse>
</source>
<source>
  @type monitor_agent
  bind 127.0.0.1
  port {mport}
</source>
<source>
  @type prometheus
  bind 127.0.0.1
  port {pport}
</source>
<match to.kafka>
  @type kafka2
  brokers 127.0.0.1:{broker}
  default_topic out
  <format>
    @type json
  </format>
</match>
<match **>
  @type file
  path {tmp}/out/r
</match>
"""


def test_dry_run_counts_every_source_and_touches_no_network(tmp_path):
    broker = fake_broker()
    try:
        bport = broker.getsockname()[1]
        path = os.path.join(str(tmp_path), "every.conf")
        with open(path, "w") as f:
            f.write(every_kind_config(free_port(), free_port(), free_port(), bport, str(tmp_path)))
        p = subprocess.run([WEIR_BIN, "--dry-run", "-c", path], capture_output=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        err = p.stderr.decode("utf-8", "replace")
        assert p.returncode == 0, err
        assert "configuration OK (4 sources, 2 outputs)" in err, err
        time.sleep(0.5)  # a client made by the check would have connected by now
        assert connections(broker) == 0, "--dry-run connected to the Kafka brokers"
        assert not os.path.exists(os.path.join(str(tmp_path), "out")), "--dry-run wrote output"
    finally:
        broker.close()


def test_plugins_json_lists_every_input(weir, tmp_path):
    """The running process lists its inputs of every kind with their types;
    the kafka client is made at start (it connects to the broker then)."""
    broker = fake_broker()
    try:
        bport = broker.getsockname()[1]
        mport, pport = free_port(), free_port()
        weir.allow_errors = True  # the stand-in broker speaks no Kafka: librdkafka logs errors
        weir.start(every_kind_config(weir.port, mport, pport, bport, str(tmp_path)))
        weir.wait_listening(mport)
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/api/plugins.json", timeout=5) as r:
            plugins = json.loads(r.read().decode())["plugins"]
        inputs = sorted((p["type"], p["plugin_id"]) for p in plugins if p["plugin_category"] == "input")
        assert inputs == [("forward", "forward.0"), ("kafka", "from_kafka"), ("monitor_agent", "monitor_agent.2"),
                          ("prometheus", "prometheus.3")], inputs
        outputs = sorted(p["type"] for p in plugins if p["plugin_category"] == "output")
        assert outputs == ["file", "kafka2"], outputs
        # both endpoints serve the same process
        with urllib.request.urlopen(f"http://127.0.0.1:{pport}/readyz", timeout=5) as r:
            assert r.status == 200
        # started for real: the clients connect to the broker
        poll(lambda: connections(broker) > 0, timeout=15, what="a librdkafka connection to the broker")
    finally:
        broker.close()
