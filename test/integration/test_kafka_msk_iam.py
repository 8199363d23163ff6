"""AWS MSK IAM (`sasl_aws_msk_iam_*` of kafka2 and the kafka source):
SASL OAUTHBEARER with a SigV4-signed token, against a real Kafka broker.

The broker is the tests' Apache Kafka (KRaft) with a second listener,
SASL_PLAINTEXT with OAUTHBEARER, whose server callback is
java/MskIamValidator.java, compiled here against Kafka's jars: it checks
each token the way MSK does (decodes the presigned URL, rebuilds the SigV4
canonical request, compares the signature with the secret it was given) and
prints MSK-IAM-ACCEPT or MSK-IAM-REJECT to the broker's log. Nothing of
weir's code is in the validator; the unit tests (test_kafka.c) compare the
token with botocore's. The PLAINTEXT listener stays for kcat.
"""
import base64
import json
import os
import shutil
import subprocess
import time
import urllib.parse

import pytest

import fwd
import helpers
from conftest import T0, poll
from helpers import forward_source
import peer_kafka

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None or shutil.which("javac") is None,
                                reason="kcat and a JDK (javac) are needed (scripts/install-deps.sh --test)")

HERE = os.path.dirname(os.path.abspath(__file__))
KEY_ID, SECRET, REGION = "AKIDWEIRMSKTEST", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY=EXAMPLEKEY", "eu-west-1"


@pytest.fixture(scope="module")
def msk_broker(tmp_path_factory):
    peer_kafka.ensure_jars()
    classes = str(tmp_path_factory.mktemp("msk-validator"))
    p = subprocess.run(["javac", "-d", classes, "-cp", os.path.join(peer_kafka.LIBS, "*"),
                        os.path.join(HERE, "java", "MskIamValidator.java")], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    jaas = ("org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required "
            f'unsecuredLoginStringClaim_sub="broker" keyId="{KEY_ID}" secret="{SECRET}" region="{REGION}";')
    b = peer_kafka.Broker(extra_listener="SASL_PLAINTEXT", classpath=classes, extra_props={
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "OAUTHBEARER",
        "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config": jaas,
        "listener.name.sasl_plaintext.oauthbearer.sasl.server.callback.handler.class": "MskIamValidator",
    })
    try:
        b.start()
        yield b
    finally:
        b.cleanup()


def msk_params(secret=SECRET):
    # sasl_over_ssl false: the test listener is SASL_PLAINTEXT (MSK's is SASL_SSL, the default)
    return (f"  sasl_aws_msk_iam_access_key_id {KEY_ID}\n  sasl_aws_msk_iam_secret_key_id {secret}\n"
            f"  sasl_aws_msk_iam_aws_region {REGION}\n  sasl_over_ssl false\n")


def broker_lines(broker, word):
    return [l for l in broker.log_tail(400000).splitlines() if word in l]


def test_output_and_source_authenticate_with_msk_iam(weir, msk_broker):
    """forward -> kafka2 (MSK IAM) -> topic; the kafka source (MSK IAM, a
    consumer group) reads another topic -> file. The broker accepted the
    tokens of both clients, for the access key, signed by weir; every record
    is where it should be."""
    b = msk_broker
    b.create_topic("msk-out")
    b.create_topic("msk-in")
    b.produce("msk-in", [json.dumps({"n": i, "from": "kcat"}) for i in range(7)])
    sasl = f"127.0.0.1:{b.extra_port}"
    accepted_before = len(broker_lines(b, "MSK-IAM-ACCEPT"))
    conf = (forward_source(weir.port) +
            f"<source>\n  @type kafka\n  brokers {sasl}\n  topics msk-in\n  consumer_group msk-g\n"
            f"  start_from earliest\n  tag kafka.in\n{msk_params()}</source>\n" +
            helpers.file_match(weir.prefix, "kafka.**", buffer="    @type memory\n    flush_interval 0.1s") +
            f"<match app.**>\n  @type kafka2\n  brokers {sasl}\n  default_topic msk-out\n{msk_params()}"
            "  <buffer>\n    @type memory\n    flush_interval 0.1s\n  </buffer>\n</match>\n")
    weir.start(conf)
    ch = base64.b64encode(os.urandom(12)).decode()
    with weir.conn() as c:
        c.send(fwd.packed_forward("app.msk", [fwd.entry(fwd.et(T0, i), {"n": i}) for i in range(5)], {"chunk": ch}))
        c.expect_ack(ch, timeout=30)
    msgs = b.read("msk-out", expect=5, timeout=30)
    assert sorted(json.loads(m["payload"])["n"] for m in msgs) == list(range(5)), msgs
    recs = weir.wait_records(7, timeout=30)
    assert sorted(r["n"] for r in recs) == list(range(7))

    accepted = broker_lines(b, "MSK-IAM-ACCEPT")[accepted_before:]
    # a producer and a consumer: at least a bootstrap connection each
    assert len(accepted) >= 2, b.log_tail()
    for line in accepted:
        assert f"principal={KEY_ID} user-agent=weir/" in line and line.endswith("expires=900"), line
    assert not broker_lines(b, "MSK-IAM-REJECT"), b.log_tail()


def test_wrong_secret_is_refused_and_nothing_is_lost(weir, msk_broker):
    """A wrong secret: the broker rejects the signature, weir logs the
    authentication failure, and the acked records wait in the buffer; with
    the right secret (restart on the same file buffer) they all arrive."""
    b = msk_broker
    b.create_topic("msk-retry")
    sasl = f"127.0.0.1:{b.extra_port}"
    weir.allow_errors = True
    buf = os.path.join(weir.tmp, "buf")

    def conf(secret):
        return (forward_source(weir.port) +
                f"<match app.**>\n  @type kafka2\n  brokers {sasl}\n  default_topic msk-retry\n{msk_params(secret)}"
                f"  <buffer>\n    @type file\n    path {buf}\n    flush_interval 0.1s\n    retry_wait 0.5s\n"
                "  </buffer>\n</match>\n")

    rejected_before = len(broker_lines(b, "MSK-IAM-REJECT"))
    weir.start(conf("not-the-secret"))
    ch = base64.b64encode(os.urandom(12)).decode()
    with weir.conn() as c:
        c.send(fwd.packed_forward("app.msk", [fwd.entry(fwd.et(T0, i), {"n": i}) for i in range(4)], {"chunk": ch}))
        c.expect_ack(ch, timeout=30)
    poll(lambda: len(broker_lines(b, "MSK-IAM-REJECT")) > rejected_before, timeout=30, what="a rejected token")
    assert "signature mismatch" in broker_lines(b, "MSK-IAM-REJECT")[-1]
    weir.wait_log(lambda l: "auth" in l.get("msg", "").lower(), timeout=30, what="weir's authentication error")
    time.sleep(1)
    assert b.read("msk-retry", timeout=0) == []
    weir.stop_ok()

    weir.start(conf(SECRET))
    msgs = b.read("msk-retry", expect=4, timeout=30)
    assert sorted(json.loads(m["payload"])["n"] for m in msgs) == list(range(4)), msgs
