"""kafka2 / kafka_buffered `zookeeper`: the brokers as they registered in a
real ZooKeeper, read by weir when the output starts (outputs/kafka/zk.c).

The cluster is real: a ZooKeeper server and an Apache Kafka 3.9 broker in
ZooKeeper mode (the jars of scripts/peers/kafka.sh), the broker under the
chroot `/kafka`, registering itself in `/kafka/brokers/ids/0` as any
ZooKeeper-mode cluster does. No registration is written by the test.
"""
import base64
import json
import os
import shutil
import subprocess

import pytest

import fwd
from conftest import T0, WEIR_BIN, free_port
from helpers import forward_source
import peer_kafka

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None or shutil.which("java") is None,
                                reason="kcat and java are needed (scripts/install-deps.sh --test)")


@pytest.fixture(scope="module")
def zk_cluster():
    zk = peer_kafka.ZooKeeper().start()
    b = None
    try:
        b = peer_kafka.Broker(zookeeper=zk.connect + "/kafka")
        b.start()
        yield zk, b
    finally:
        if b:
            b.cleanup()
        zk.cleanup()


def zk_match(zookeeper, topic, extra=""):
    return f"""<match **>
  @type kafka_buffered
  zookeeper {zookeeper}
  default_topic {topic}
{extra}
  <buffer>
    @type memory
    flush_interval 0.1s
  </buffer>
</match>
"""


def test_brokers_read_from_zookeeper(weir, zk_cluster):
    """`zookeeper host:port/chroot` with the default `zookeeper_path
    /brokers/ids`: weir finds the broker's PLAINTEXT endpoint, logs it, and
    every acked record is in the topic."""
    zk, broker = zk_cluster
    broker.create_topic("zk-out")
    weir.start(forward_source(weir.port) + zk_match(zk.connect + "/kafka", "zk-out"))
    lines = weir.wait_log(lambda l: "brokers from ZooKeeper" in l.get("msg", ""), what="the brokers found")
    assert lines[0]["msg"].endswith(f"brokers from ZooKeeper {zk.connect}/kafka/brokers/ids: {broker.bootstrap}"), \
        lines[0]
    ch = base64.b64encode(os.urandom(12)).decode()
    with weir.conn() as c:
        c.send(fwd.packed_forward("app.zk", [fwd.entry(fwd.et(T0, i), {"n": i}) for i in range(5)], {"chunk": ch}))
        c.expect_ack(ch, timeout=30)
    msgs = broker.read("zk-out", expect=5)
    assert sorted(json.loads(m["payload"])["n"] for m in msgs) == list(range(5))


@pytest.mark.parametrize("where", ["no_server", "no_node"])
def test_no_brokers_in_zookeeper_weir_does_not_start(tmp_path, zk_cluster, where):
    """Fluentd's plugin fails at start when ZooKeeper cannot be read; so does
    weir, with one error naming ZooKeeper and why. `--dry-run` of the same
    configuration is OK and does not connect."""
    zk, _ = zk_cluster
    target = f"127.0.0.1:{free_port()}" if where == "no_server" else zk.connect + "/elsewhere"
    conf = tmp_path / "fluent.conf"
    conf.write_text(forward_source(free_port()) + zk_match(target, "t"))
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", str(conf)], capture_output=True, text=True, timeout=20)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([WEIR_BIN, "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert p.returncode != 0, p.stderr
    errs = [json.loads(l)["msg"] for l in p.stderr.splitlines() if l.startswith("{")
            and json.loads(l)["level"] == "error"]
    want = "cannot connect" if where == "no_server" else "/elsewhere/brokers/ids: no such node"
    assert any(f"no brokers from ZooKeeper {target}" in m and want in m for m in errs), errs
