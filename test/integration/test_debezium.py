"""The debezium filter end to end: Debezium-shaped change events (create,
update, delete + tombstone, snapshot read, truncate; with and without the
JsonConverter schema wrapper; as the record and as JSON text under
`message`, the way a Kafka value arrives) sent over the forward protocol,
unwrapped, then routed by table with rewrite_tag_filter on
$.__source.table into one file per table; malformed envelopes go to
@ERROR with the reason logged. Then the same events through a real Kafka
broker (peer_kafka.py) and weir's Kafka source, read as JSON and as text,
with a real tombstone (a null value)."""
import collections
import json
import shutil
import subprocess

import pytest

import helpers
from conftest import T0, WEIR_BIN
from fwd import entry, et, packed_forward
from helpers import TIME_TAG_INJECT, file_match

PG_SOURCE = {"version": "2.5.0.Final", "connector": "postgresql", "name": "dbserver1", "ts_ms": 1700000000000,
             "snapshot": "false", "db": "inventory", "sequence": '[null,"24023128"]', "schema": "public",
             "table": "customers", "txId": 555, "lsn": 24023128, "xmin": None}
MY_SOURCE = {"version": "2.5.0.Final", "connector": "mysql", "name": "shop", "ts_ms": 1700000100000,
             "snapshot": "false", "db": "shop", "table": "orders", "server_id": 223344, "gtid": None,
             "file": "mysql-bin.000003", "pos": 154, "row": 0, "thread": 7, "query": None}

UPDATE = {"before": {"id": 1001, "email": "sally.thomas@acme.com"}, "after": {"id": 1001, "email": "sally@example.com"},
          "source": PG_SOURCE, "op": "u", "ts_ms": 1700000000250, "transaction": None}
READ = {"before": None, "after": {"id": 1002, "email": "george@example.com"},
        "source": {**PG_SOURCE, "snapshot": "true"}, "op": "r", "ts_ms": 1700000000900}
TRUNCATE = {"source": PG_SOURCE, "op": "t", "ts_ms": 1700000000007}
CREATE = {"before": None, "after": {"id": 7, "total": 12.5, "status": "new"}, "source": MY_SOURCE, "op": "c",
          "ts_ms": 1700000100042}
DELETE = {"before": {"id": 7, "total": 12.5, "status": "paid"}, "after": None, "source": MY_SOURCE, "op": "d",
          "ts_ms": 1700000100100}
SCHEMA = {"type": "struct", "optional": False, "name": "shop.shop.orders.Envelope",
          "fields": [{"type": "struct", "optional": True, "field": "before"}]}

PG_META = {"connector": "postgresql", "name": "dbserver1", "ts_ms": 1700000000000, "snapshot": "false",
           "db": "inventory", "schema": "public", "table": "customers", "txId": 555, "lsn": 24023128}
MY_META = {"connector": "mysql", "name": "shop", "ts_ms": 1700000100000, "snapshot": "false", "db": "shop",
           "table": "orders", "gtid": None, "file": "mysql-bin.000003", "pos": 154}


def dbz_config(weir, tmp):
    before = """<filter cdc.**>
  @type debezium
  @id cdc_unwrap
  add_fields op,source.ts_ms
</filter>
<filter kafka.**>
  @type debezium
  envelope_key message
  copy_keys kafka_key
  use_source_time true
</filter>
<match cdc.** kafka.**>
  @type rewrite_tag_filter
  <rule>
    key $.__source.table
    pattern /^([a-z_]+)$/
    tag table.$1
  </rule>
</match>
"""
    errors = f"""<label @ERROR>
{file_match(tmp + "/out/err", fmt="json", inject=TIME_TAG_INJECT)}</label>
"""
    matches = (file_match(tmp + "/out/customers", "table.customers", fmt="json", inject=TIME_TAG_INJECT)
               + file_match(tmp + "/out/orders", "table.orders", fmt="json", inject=TIME_TAG_INJECT))
    return weir.config(before=before, matches=matches, after=errors)


def send(weir, tag, records):
    with weir.conn() as c:
        c.send(packed_forward(tag, [entry(et(T0 + i), r) for i, r in enumerate(records)], {"chunk": tag}))
        c.expect_ack(tag)


def strip(recs):
    for r in recs:
        assert r.pop("time") >= T0
    return recs


def test_debezium_unwrap_and_route_by_table(weir, tmp_path):
    tmp = str(tmp_path)
    weir.allow_errors = False
    weir.start(dbz_config(weir, tmp))

    # postgres: an update with the schema wrapper, a snapshot read, a truncate (the record is the envelope)
    send(weir, "cdc.pg", [{"schema": SCHEMA, "payload": UPDATE}, READ, TRUNCATE])
    # mysql through "Kafka": the value as JSON text under message; a delete then its tombstone (empty value)
    send(weir, "kafka.shop", [
        {"kafka_key": '{"id":7}', "message": json.dumps(CREATE)},
        {"kafka_key": '{"id":7}', "message": json.dumps({"schema": SCHEMA, "payload": DELETE})},
        {"kafka_key": '{"id":7}', "message": ""},
    ])
    # malformed: to @ERROR, nothing else lost
    send(weir, "cdc.bad", [{"op": "c"}, {"after": {"id": 1}}])
    send(weir, "kafka.bad", [{"message": "{not json"}])

    customers = strip(weir.wait_records(3, prefix=tmp + "/out/customers"))
    assert customers == [
        {"id": 1001, "email": "sally@example.com", "__op": "u", "__source_ts_ms": 1700000000000,
         "__action": "update", "__source": PG_META, "__lag_ms": 250, "__deleted": False, "tag": "table.customers"},
        {"id": 1002, "email": "george@example.com", "__op": "r", "__source_ts_ms": 1700000000000,
         "__action": "read", "__source": {**PG_META, "snapshot": "true"}, "__lag_ms": 900, "__deleted": False,
         "tag": "table.customers"},
        {"__op": "t", "__source_ts_ms": 1700000000000, "__action": "truncate", "__source": PG_META, "__lag_ms": 7,
         "tag": "table.customers"},
    ]
    orders = weir.wait_records(2, prefix=tmp + "/out/orders")
    assert [r.pop("time") for r in orders] == [1700000100.0, 1700000100.0]  # use_source_time: source.ts_ms
    assert orders == [
        {"id": 7, "total": 12.5, "status": "new", "__action": "create", "__source": MY_META, "__lag_ms": 42,
         "__deleted": False, "kafka_key": '{"id":7}', "tag": "table.orders"},
        {"id": 7, "total": 12.5, "status": "paid", "__action": "delete", "__source": MY_META, "__lag_ms": 100,
         "__deleted": True, "kafka_key": '{"id":7}', "tag": "table.orders"},
    ]
    err = strip(weir.wait_records(3, prefix=tmp + "/out/err"))
    assert sorted((r["tag"], json.dumps(r, sort_keys=True)) for r in err) == sorted([
        ("cdc.bad", json.dumps({"op": "c", "tag": "cdc.bad"}, sort_keys=True)),
        ("cdc.bad", json.dumps({"after": {"id": 1}, "tag": "cdc.bad"}, sort_keys=True)),
        ("kafka.bad", json.dumps({"message": "{not json", "tag": "kafka.bad"}, sort_keys=True)),
    ])
    assert weir.wait_log(lambda l: "debezium: op 'c' without an `after` map" in l.get("msg", ""),
                         what="the rejection's reason")
    assert weir.wait_log(lambda l: "debezium: `message` is not valid JSON" in l.get("msg", ""),
                         what="the JSON rejection's reason")
    # the tombstone was dropped: nothing else arrived
    assert len(weir.read_records(tmp + "/out/orders")) == 2
    assert weir.output_files(tmp + "/out/records") == []
    weir.stop_ok()
    weir.check_logs()


def test_debezium_config_errors(weir, tmp_path):
    """--dry-run reports a bad debezium section at its FILE:LINE."""
    text = f"""<source>
  @type forward
  port {weir.port}
</source>
<filter cdc.**>
  @type debezium
  delete_handling_mode rewrite-with-tombstone
  add_fields op:
</filter>
<match **>
  @type null
</match>
"""
    path = weir.write_config(text, "bad.conf")
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", path], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert f"{path}:7:" in p.stderr + p.stdout and "delete_handling_mode" in p.stderr + p.stdout


@pytest.mark.skipif(shutil.which("kcat") is None or shutil.which("java") is None,
                    reason="kcat and java are needed (scripts/install-deps.sh --test)")
def test_debezium_from_kafka(weir, tmp_path):
    """A Debezium topic (key|value, the delete followed by its tombstone) consumed twice: with format json
    (the record is the envelope; the tombstone is not JSON and is skipped by the source) and with format
    text + envelope_key message (the tombstone is an empty message, dropped by the filter)."""
    import peer_kafka
    with peer_kafka.running() as broker:
        topic = "dbserver1.inventory.customers"
        broker.create_topic(topic)
        lines = ['{"id":1001}|' + json.dumps({"schema": SCHEMA, "payload": UPDATE}),
                 '{"id":7}|' + json.dumps(DELETE), '{"id":7}|']
        # -Z: an empty value is sent as null, Debezium's tombstone
        p = subprocess.run(["kcat", "-b", broker.bootstrap, "-P", "-t", topic, "-K", "|", "-Z", "-X", "acks=all"],
                           input="".join(l + "\n" for l in lines).encode(), capture_output=True, timeout=60)
        assert p.returncode == 0, p.stderr.decode()
        cfg = ""
        for fmt, extra in (("json", ""), ("text", "  format text\n  kafka_message_key kafka_key\n")):
            cfg += f"""<source>
  @type kafka
  @id kafka_{fmt}
  brokers {broker.bootstrap}
  topics {topic}
  consumer_group g-dbz-{fmt}
  add_prefix {fmt}
{extra}</source>
"""
        cfg += """<filter json.**>
  @type debezium
  lag_key ""
</filter>
<filter text.**>
  @type debezium
  envelope_key message
  copy_keys kafka_key
  lag_key ""
</filter>
"""
        cfg += helpers.file_match(weir.prefix, inject="    tag_key tag", buffer="    flush_interval 0.1s")
        weir.start(cfg, wait_port=False)
        recs = weir.wait_records(4, timeout=40)
        by_tag = collections.defaultdict(list)
        for r in recs:
            by_tag[r.pop("tag")].append(r)
        upd = {"id": 1001, "email": "sally@example.com", "__action": "update", "__source": PG_META,
               "__deleted": False}
        dele = {"id": 7, "total": 12.5, "status": "paid", "__action": "delete", "__source": MY_META,
                "__deleted": True}
        assert by_tag["json." + topic] == [upd, dele]
        assert by_tag["text." + topic] == [{**upd, "kafka_key": '{"id":1001}'}, {**dele, "kafka_key": '{"id":7}'}]
        weir.wait_log(lambda l: l["level"] == "warn" and "skipping message at " + topic in l["msg"],
                      what="the json source skipping the tombstone")
        weir.stop_ok()
        assert broker.committed("g-dbz-text", topic) == {0: 3}
