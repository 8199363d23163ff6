"""A realistic Phase 2 mix for Kafka, and what Elasticsearch must hold after
config/examples/phase2-kafka-to-es.conf has read it (a helper module, used by
test_phase2_sagas.py; no test in here).

The mix (Mix(seed, n_sagas)):

- sagas: n_sagas sagas of 3-8 events across four services (orders,
  payments, inventory, shipping), their events interleaved at random (each
  saga's own events in order), keyed by the saga id on app-logs (4
  partitions). About 55% complete, 10% fail (a FAILED step, then ABORTED),
  20% are compensated (FAILED, one or more COMPENSATED, ABORTED) and 15%
  never end (timed_out). Three in four sagas write ECS JSON with saga_id,
  step, status, service.name and trace.id (ECS: no plain `service`, which
  would conflict with the `service` object in Elasticsearch); the others only a line
  "saga=<id> step=<name> status=<STATUS>" in `message` (the example's grok
  turns it into the same fields). FAILED steps are log.level ERROR.
- ordinary application logs (INFO, WARN, ERROR, FATAL, DEBUG) of seven API
  services keyed by service, some with a message that looks like a saga
  line but is not one;
- Celery-style retry and dead-letter topics: app-logs.retry.1,
  app-logs.retry.3 and app-logs.dlq, with and without the x-retry-count /
  retries headers;
- Debezium change events for three tables (customers, orders, payments):
  a snapshot (op r, snapshot true/last), creates, updates, deletes each
  followed by a tombstone.

produce(broker) writes it with kcat; expected(broker) reads the broker back
(partitions, offsets, timestamps) and returns what Elasticsearch must hold.
"""
import datetime
import json
import random
import subprocess

SAGA_SERVICES = ["orders", "payments", "inventory", "shipping"]
SAGA_STEPS = {"orders": ["create_order", "confirm_order", "notify_customer"],
              "payments": ["authorize_payment", "capture_payment"],
              "inventory": ["reserve_stock", "pick_items"],
              "shipping": ["schedule_shipment", "book_carrier"]}
COMPENSATIONS = {"orders": "cancel_order", "payments": "refund_payment", "inventory": "release_stock",
                 "shipping": "cancel_shipment"}
API_SERVICES = ["auth-api", "orders-api", "payments-api", "catalog-api", "gateway", "users-api", "search-api"]
LEVELS = ["INFO"] * 6 + ["WARN", "ERROR", "DEBUG", "FATAL", "error"]
TABLES = ["customers", "orders", "payments"]
RETRY_TOPICS = ["app-logs.retry.1", "app-logs.retry.3", "app-logs.dlq"]
APP_TOPICS = ["app-logs", *RETRY_TOPICS]
CDC_TOPICS = [f"dbserver1.inventory.{t}" for t in TABLES]
T_BASE = datetime.datetime(2025, 10, 14, 23, 40, tzinfo=datetime.timezone.utc)  # sagas cross midnight
T_CDC = 1760440800000  # 2025-10-14T11:20:00Z


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def day_of_iso(ts):
    return ts[:10].replace("-", ".")


def day_of_ms(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y.%m.%d")


def kcat_produce(bootstrap, topic, lines, headers=(), key_sep="|", null_empty=False):
    args = ["kcat", "-b", bootstrap, "-P", "-t", topic, "-X", "acks=all", "-X", "linger.ms=5"]
    if key_sep:
        args += ["-K", key_sep]
    if null_empty:
        args.append("-Z")
    for h in headers:
        args += ["-H", h]
    p = subprocess.run(args, input="".join(l + "\n" for l in lines).encode(), capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()


class Saga:
    def __init__(self, i, rng):
        self.id = f"saga-{i:05d}-{rng.getrandbits(24):06x}"
        self.trace = f"{rng.getrandbits(128):032x}"
        r = i % 20
        self.outcome = ("completed" if r < 11 else "failed" if r < 13 else "compensated" if r < 17 else "timed_out")
        self.text = i % 4 == 3  # written as a message line only
        n = rng.randint(4 if self.outcome == "compensated" else 3, 8)
        svcs = [rng.choice(SAGA_SERVICES) for _ in range(n)]
        ev = [("begin", "STARTED", "orders")]
        if self.outcome == "completed":
            ev += [(rng.choice(SAGA_STEPS[s]), "OK", s) for s in svcs[:n - 2]]
            ev.append(("end", "COMPLETED", "orders"))
        elif self.outcome == "failed":
            ev += [(rng.choice(SAGA_STEPS[s]), "OK", s) for s in svcs[:n - 3]]
            ev.append((rng.choice(SAGA_STEPS[svcs[-1]]), "FAILED", svcs[-1]))
            ev.append(("end", "ABORTED", "orders"))
        elif self.outcome == "compensated":
            c = 1 + (n - 4) // 2
            ok = svcs[:n - 3 - c]
            ev += [(rng.choice(SAGA_STEPS[s]), "OK", s) for s in ok]
            ev.append((rng.choice(SAGA_STEPS[svcs[-1]]), "FAILED", svcs[-1]))
            comp = (list(reversed(ok)) + ["orders"] * c)[:c]
            ev += [(COMPENSATIONS[s], "COMPENSATED", s) for s in comp]
            ev.append(("end", "ABORTED", "orders"))
        else:
            ev += [(rng.choice(SAGA_STEPS[s]), rng.choice(["OK", "OK", "OK", "FAILED"]), s) for s in svcs[:n - 1]]
        assert len(ev) == n
        self.events = ev
        self.services = sorted({s for _, _, s in ev})

    def record(self, j, t):
        step, status, svc = self.events[j]
        r = {"@timestamp": iso(t), "log.level": "ERROR" if status == "FAILED" else "INFO",
             "service.name": svc, "trace.id": self.trace, "test_id": f"{self.id}#{j}"}
        if self.text:
            r["message"] = f"saga={self.id} step={step} status={status}"
        else:
            # the service only as ECS's service.name: a plain "service" beside
            # it is a mapping conflict in Elasticsearch (service is an object)
            r.update({"message": f"saga {self.id}: {step} {status.lower()}", "saga_id": self.id, "step": step,
                      "status": status})
        return r


class Mix:
    def __init__(self, seed=16, n_sagas=2000, n_plain=1500, n_cdc=200):
        rng = random.Random(seed)
        self.sagas = [Saga(i, rng) for i in range(n_sagas)]
        self.by_id = {s.id: s for s in self.sagas}
        # interleave: a random order of saga slots, each saga's events in order
        slots = [k for k, s in enumerate(self.sagas) for _ in s.events]
        rng.shuffle(slots)
        nxt = [0] * n_sagas
        self.saga_msgs = []  # (key, value json)
        for pos, k in enumerate(slots):
            s = self.sagas[k]
            j = nxt[k]
            nxt[k] += 1
            t = T_BASE + datetime.timedelta(seconds=k * 0.9 + j * 1.7 + rng.random())
            self.saga_msgs.append((s.id, json.dumps(s.record(j, t), separators=(",", ":"))))
        self.plain = []
        for i in range(n_plain):
            svc = API_SERVICES[i % len(API_SERVICES)]
            lvl = LEVELS[i % len(LEVELS)]
            t = T_BASE + datetime.timedelta(seconds=i * 1.3)
            msg = "User login failed" if lvl.upper() == "ERROR" else f"handled request {i}"
            if i % 97 == 5:
                msg = f"saga={i} lookup took {i % 50} ms"  # looks like a saga line, is not one
            r = {"@timestamp": iso(t), "log.level": lvl, "message": msg, "service.name": svc,
                 "trace.id": f"{rng.getrandbits(128):032x}", "test_id": f"plain-{i}", "duration_ms": rng.randint(1, 900)}
            if svc == "auth-api":
                r.update({"user_id": f"user{i}", "source_ip": f"10.0.{i % 256}.{i % 7}"})
            self.plain.append((svc, json.dumps(r, separators=(",", ":"))))
        # retry / DLQ: (topic, headers, record, (retry_count, dlq))
        self.retry = []
        for i in range(60):
            topic = RETRY_TOPICS[i % 3]
            hdr = [[], ["x-retry-count=2"], ["retries=7"], ["retry_count=4"]][i % 4]
            n_topic = {"app-logs.retry.1": 1, "app-logs.retry.3": 3, "app-logs.dlq": 0}[topic]
            want = int(hdr[0].split("=")[1]) if hdr else n_topic
            r = {"@timestamp": iso(T_BASE + datetime.timedelta(seconds=i)), "log.level": "WARN" if i % 2 else "ERROR",
                 "message": f"Task tasks.send_email[{rng.getrandbits(64):016x}] retry: ConnectionError",
                 "service.name": "notifications-worker", "celery": {"task": "tasks.send_email"},
                 "trace.id": f"{rng.getrandbits(128):032x}", "test_id": f"retry-{i}"}
            self.retry.append((topic, hdr, r, (want, topic.endswith(".dlq"))))
        # Debezium: per table a snapshot, then creates / updates / deletes (+ tombstones)
        self.cdc = {t: [] for t in TABLES}  # table -> [(key, value dict or None, action)]
        for ti, table in enumerate(TABLES):
            rows = {}
            k = 0
            for i in range(n_cdc // 3):
                ts = T_CDC + ti * 3600000 * 13 + k * 1000
                k += 1
                if i < 10:
                    rid = 100 + i
                    rows[rid] = {"id": rid, "name": f"{table}-{rid}", "status": "new"}
                    snap = "last" if i == 9 else "true"
                    self.cdc[table].append(self._cdc(table, rid, None, rows[rid], "r", ts, snap))
                    continue
                op = ["c", "u", "u", "d"][i % 4]
                if op == "c" or not rows:
                    rid = 1000 + i
                    rows[rid] = {"id": rid, "name": f"{table}-{rid}", "status": "new", "amount": i * 1.5}
                    self.cdc[table].append(self._cdc(table, rid, None, rows[rid], "c", ts))
                elif op == "u":
                    rid = sorted(rows)[i % len(rows)]
                    new = {**rows[rid], "status": f"s{i}"}
                    self.cdc[table].append(self._cdc(table, rid, rows[rid], new, "u", ts))
                    rows[rid] = new
                else:
                    rid = sorted(rows)[i % len(rows)]
                    self.cdc[table].append(self._cdc(table, rid, rows.pop(rid), None, "d", ts))
                    self.cdc[table].append((json.dumps({"id": rid}), None, None))

    @staticmethod
    def _cdc(table, rid, before, after, op, ts, snapshot="false"):
        src = {"version": "2.5.0.Final", "connector": "postgresql", "name": "dbserver1", "ts_ms": ts,
               "snapshot": snapshot, "db": "inventory", "schema": "public", "table": table, "txId": 700 + rid,
               "lsn": 24023128 + ts % 100000}
        v = {"before": before, "after": after, "source": src, "op": op, "ts_ms": ts + 40 + rid % 300, "transaction": None}
        return (json.dumps({"id": rid}), v, {"r": "read", "c": "create", "u": "update", "d": "delete"}[op])

    # -- Kafka
    def create_topics(self, broker):
        broker.create_topic("app-logs", partitions=4)
        for t in RETRY_TOPICS:
            broker.create_topic(t)
        broker.create_topic("access-logs")
        for t in CDC_TOPICS:
            broker.create_topic(t, partitions=2)

    def saga_halves(self):
        h = len(self.saga_msgs) // 2
        return self.saga_msgs[:h], self.saga_msgs[h:]

    def produce(self, broker, sagas=None, rest=True):
        """The saga events (all, or the given slice) and, with rest, everything else."""
        msgs = self.saga_msgs if sagas is None else sagas
        if msgs:
            kcat_produce(broker.bootstrap, "app-logs", [f"{k}|{v}" for k, v in msgs])
        if not rest:
            return
        kcat_produce(broker.bootstrap, "app-logs", [f"{k}|{v}" for k, v in self.plain])
        groups = {}
        for topic, hdr, r, _ in self.retry:
            groups.setdefault((topic, tuple(hdr)), []).append(json.dumps(r))
        for (topic, hdr), lines in groups.items():
            kcat_produce(broker.bootstrap, topic, lines, headers=hdr, key_sep=None)
        for table, msgs in self.cdc.items():
            kcat_produce(broker.bootstrap, f"dbserver1.inventory.{table}",
                         [f"{k}|{json.dumps(v) if v is not None else ''}" for k, v, _ in msgs], null_empty=True)

    def n_messages(self):
        return (len(self.saga_msgs) + len(self.plain) + len(self.retry) + sum(len(v) for v in self.cdc.values()))

    # -- what Elasticsearch must hold
    def expected(self, broker):
        """(docs, sagas): docs is _id -> (index, want) for every event document
        (from the broker's partitions, offsets and timestamps); sagas is
        saga id -> (index, want summary)."""
        docs = {}
        retry_want = {r["test_id"]: want for _, _, r, want in self.retry}
        cdc_want = {}
        for table, msgs in self.cdc.items():
            for _, v, action in msgs:
                if v is not None:
                    cdc_want[json.dumps(v)] = action
        saga_ts = {}
        n_app = len(self.saga_msgs) + len(self.plain)
        counts = {"app-logs": n_app, **{t: sum(1 for x in self.retry if x[0] == t) for t in RETRY_TOPICS},
                  **{f"dbserver1.inventory.{t}": len(self.cdc[t]) for t in TABLES}}
        for topic, n_want in counts.items():
            msgs = broker.read(topic, expect=n_want, timeout=60)
            assert len(msgs) == n_want, (topic, len(msgs), n_want)
            for m in msgs:
                _id = f"{topic}-{m['partition']}-{m['offset']}"
                payload = m["payload"]
                if topic in CDC_TOPICS:
                    if not payload:
                        continue  # tombstone: dropped
                    env = json.loads(payload)
                    docs[_id] = (f"cdc-{env['source']['table']}-{day_of_ms(env['source']['ts_ms'])}",
                                 ("cdc", cdc_want[payload], env))
                    continue
                rec = json.loads(payload)
                rc, dlq = retry_want.get(rec["test_id"], (0, False))
                day = day_of_iso(rec["@timestamp"])
                if dlq:
                    idx = f"logs-dlq-{day}"
                elif rec["log.level"].upper() in ("ERROR", "FATAL", "CRITICAL"):
                    idx = f"logs-errors-{day}"
                else:
                    idx = f"logs-{day}"
                saga = None
                if "#" in rec["test_id"]:
                    saga = rec["test_id"].split("#")[0]
                    assert m["key"] == saga, m
                    saga_ts.setdefault(saga, []).append(m["ts"])
                docs[_id] = (idx, ("app", rec, rc, dlq, m, saga))
        sagas = {}
        for s in self.sagas:
            ts = saga_ts[s.id]
            assert len(ts) == len(s.events)
            sagas[s.id] = (f"sagas-{day_of_ms(max(ts))}", {
                "outcome": s.outcome, "event_count": len(s.events), "first_ms": min(ts), "last_ms": max(ts),
                "duration": (max(ts) - min(ts)) / 1000, "services": s.services, "trace_ids": [s.trace],
                "steps": sorted((name, status, svc) for name, status, svc in s.events),
                "failures": sum(1 for e in s.events if e[1] == "FAILED"),
                "compensations": sum(1 for e in s.events if e[1] == "COMPENSATED")})
        return docs, sagas


def ms_of_iso(ts):
    """Milliseconds of an RFC 3339 time with nanoseconds ("...T10:00:00.123000000Z")."""
    base, frac = ts.rstrip("Z").split(".")
    dt = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return int(dt.timestamp()) * 1000 + int(frac[:3].ljust(3, "0"))


def check_event_doc(_id, src, want):
    """Asserts an event document holds what its message says."""
    kind = want[0]
    if kind == "app":
        rec, rc, dlq, m, saga = want[1:]
        for k, v in rec.items():
            if k == "message" and saga and "saga_id" not in rec:
                continue
            assert src.get(k) == v, (_id, k, src.get(k), v)
        assert src["event"] == {"retry_count": rc, "dlq": dlq}, (_id, src)
        km = src["kafka"]
        assert (km["topic"], km["partition"], km["offset"]) == (m["topic"], m["partition"], m["offset"]), (_id, km)
        assert km["timestamp"] == m["ts"], (_id, km, m)
        assert "kafka_id" not in src and "grokfailure" not in src, (_id, src)
        if saga:
            assert src["saga_id"] == saga, (_id, src)
            if "saga_id" not in rec:  # the grok of the message line
                _, step, status = rec["message"].split(" ")
                assert src["step"] == step.split("=", 1)[1] and src["status"] == status.split("=", 1)[1], src
                assert src["message"] == rec["message"], src
        else:
            assert "saga_id" not in src and "step" not in src, (_id, src)
    elif kind == "cdc":
        action, env = want[1:]
        assert src["__action"] == action, (_id, src)
        assert src["__op"] == env["op"] and src["__source"]["table"] == env["source"]["table"], (_id, src)
        assert src["__source"]["snapshot"] == env["source"]["snapshot"] and src["__source"]["db"] == "inventory"
        assert src["__lag_ms"] == env["ts_ms"] - env["source"]["ts_ms"], (_id, src)
        row = env["before"] if action == "delete" else env["after"]
        for k, v in row.items():
            assert src[k] == v, (_id, k, src)
        assert src["__deleted"] is (action == "delete"), (_id, src)
        assert src["kafka"]["topic"] == _id.rsplit("-", 2)[0]


def summary_mismatch(key, src, want):
    """None if the summary document is right, else why not."""
    got = {"outcome": src.get("outcome"), "event_count": src.get("event_count"),
           "steps": sorted((s["name"], s["status"], s["service"]) for s in src.get("steps", [])),
           "services": src.get("services"), "trace_ids": src.get("trace_ids"),
           "failures": src.get("failures"), "compensations": src.get("compensations")}
    for k, v in got.items():
        if v != want[k]:
            return f"{key}: {k} is {v!r}, want {want[k]!r}"
    if src.get("key") != key:
        return f"{key}: key {src.get('key')!r}"
    if ms_of_iso(src["first_time"]) != want["first_ms"] or ms_of_iso(src["last_time"]) != want["last_ms"]:
        return f"{key}: first/last {src['first_time']} {src['last_time']}, want ms {want['first_ms']} {want['last_ms']}"
    if abs(src["duration"] - want["duration"]) > 0.0015:
        return f"{key}: duration {src['duration']}, want {want['duration']}"
    if src.get("steps_dropped") != 0 or src.get("started") is not True:
        return f"{key}: steps_dropped/started {src.get('steps_dropped')} {src.get('started')}"
    return None
