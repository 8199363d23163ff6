"""The compatibility suite (issue 19, item 5): fluent.conf files we wrote in
the shapes real aggregator deployments use, in test/integration/compat/
(each names, in its first comment block, the kind of deployment it mirrors).

1. Every config passes `weir --dry-run -c` with the environment variables it
   reads set to dummies (TLS files made in tmp); warnings are allowed, counted
   and printed. The configs that need a plugin weir does not have
   (MISSING_PLUGIN) fail with exactly one error, naming that plugin.
2. The configs whose backends the suite has are run against them: the hosts,
   ports and directories come from the environment variables the configs
   read, set to a real Elasticsearch node, Kafka broker, Loki, or tmp dirs;
   records are sent with the forward protocol (UDP syslog, a Kafka topic
   for the inputs of that kind) and must arrive. One test module, each Java /
   Go peer started once (module-scoped fixtures).
3. STILL_REFUSED: what weir refuses and Fluentd (with the plugin named)
   accepts, each with its reason and a snippet that dry-run must refuse; the
   same list is the section "Still refused" of docs/migrating-from-fluentd.md
   (test_still_refused_matches_migration_guide compares them).

The summary line (test_zz_summary, last in the module) prints the counts.
"""
import base64
import glob
import gzip
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

import fwd
from conftest import REPO, WEIR_BIN, Weir, free_port, poll, read_json_lines

HERE = os.path.dirname(os.path.abspath(__file__))
COMPAT = os.path.join(HERE, "compat")
CONFIGS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(COMPAT, "*.conf")))
GUIDE = os.path.join(REPO, "docs", "migrating-from-fluentd.md")

# configs that need a plugin weir does not have -> that plugin
MISSING_PLUGIN = {
    "90-s3-archive.conf": "s3",
    "91-cloudwatch-logs.conf": "cloudwatch_logs",
    "92-concat-multiline.conf": "concat",
    "93-detect-exceptions-gke.conf": "detect_exceptions",
    "94-fluent-operator-label-router.conf": "label_router",
}

# filled by the tests, printed by test_zz_summary
RESULTS = {"dry_ok": set(), "warnings": {}, "refused_ok": set(), "ran": {}, "still_refused_ok": set()}


# ------------------------------------------------------------ environment --

def compat_env(ctx):
    """Every environment variable the configs read, from ctx: ports, hosts,
    directories, files. Variables with a default in the config and not
    listed here keep the config's default."""
    fwd_port = str(ctx["fwd_port"])
    es = f"{ctx['es_host']}:{ctx['es_port']}"
    return {
        # forward sources (the names the images and charts use)
        "FLUENTD_PORT": fwd_port, "FLUENT_FORWARD_PORT": fwd_port, "FLUENTD_FORWARD_PORT": fwd_port,
        "FLUENT_FORWARD_BIND": "127.0.0.1",
        # other listeners
        "FLUENTD_HTTP_PORT": str(ctx["http_port"]), "HEALTH_PORT": str(ctx["http_port"]),
        "FLUENTD_METRICS_PORT": str(ctx["metrics_port"]), "METRICS_PORT": str(ctx["metrics_port"]),
        "MONITOR_AGENT_PORT": str(ctx["monitor_port"]),
        "SYSLOG_PORT": str(ctx["syslog_port"]), "SYSLOG_TCP_PORT": str(ctx["syslog_tcp_port"]),
        # Elasticsearch / OpenSearch
        "FLUENT_ELASTICSEARCH_HOST": ctx["es_host"], "FLUENT_ELASTICSEARCH_PORT": str(ctx["es_port"]),
        "FLUENT_ELASTICSEARCH_PATH": "",
        "ELASTICSEARCH_HOST": ctx["es_host"], "ELASTICSEARCH_PORT": str(ctx["es_port"]),
        "ES_HOST": ctx["es_host"], "ES_PORT": str(ctx["es_port"]), "ES_HOSTS": es,
        "OPENSEARCH_HOST": ctx["es_host"], "OPENSEARCH_PORT": str(ctx["es_port"]),
        "ELASTIC_PASSWORD": "dummy-elastic-pw", "ES_CA_FILE": ctx["pki"]["ca.pem"],
        "ES_TEMPLATE_FILE": ctx["es_template"],
        # Kafka
        "KAFKA_BROKERS": ctx["kafka"], "KAFKA_BOOTSTRAP": ctx["kafka"],
        "KAFKA_USERNAME": "dummy-user", "KAFKA_PASSWORD": "dummy-pw", "KAFKA_CA_FILE": ctx["pki"]["ca.pem"],
        # Loki
        "LOKI_URL": ctx["loki_url"], "LOKI_USERNAME": "dummy-user", "LOKI_PASSWORD": "dummy-pw",
        "LOKI_CA_CERT": ctx["pki"]["ca.pem"], "LOKI_CLIENT_CERT": ctx["pki"]["client.pem"],
        "LOKI_CLIENT_KEY": ctx["pki"]["client.key"],
        # forward tiers and TLS
        "FLUENTD_SHARED_KEY": "dummy-shared-key",
        "TLS_CERT_PATH": ctx["pki"]["server.pem"], "TLS_KEY_PATH": ctx["pki"]["server.key"],
        "TLS_CA_PATH": ctx["pki"]["ca.pem"],
        # directories
        "BUFFER_DIR": os.path.join(ctx["tmp"], "buffers"), "FLUENTD_BUFFER_DIR": os.path.join(ctx["tmp"], "buffers"),
        "OUT_DIR": os.path.join(ctx["tmp"], "out"), "ARCHIVE_DIR": os.path.join(ctx["tmp"], "archive"),
        "ERROR_DIR": os.path.join(ctx["tmp"], "error"), "FLUENTD_ROOT_DIR": os.path.join(ctx["tmp"], "root"),
        # cloud plugins weir does not have (their configs still need their values)
        "AWS_ACCESS_KEY_ID": "dummy", "AWS_SECRET_ACCESS_KEY": "dummy",
    }


def unset_without_default(text):
    """Variables a config reads without a default: ENV['X'] alone in its #{},
    or ENV.fetch('X') without a second argument."""
    names = set(re.findall(r"#\{\s*ENV\[['\"](\w+)['\"]\]\s*\}", text))
    names |= set(re.findall(r"ENV\.fetch\(\s*['\"](\w+)['\"]\s*\)", text))
    return names


@pytest.fixture(scope="module")
def pki_files(tmp_path_factory):
    from pki import make_pki
    d = tmp_path_factory.mktemp("compat-pki")
    files = make_pki(d)
    tpl = d / "logs-template.json"
    tpl.write_text(json.dumps({"index_patterns": ["logs-aggregator-*"], "data_stream": {},
                               "template": {"settings": {"number_of_replicas": 0}}, "priority": 200}))
    files["template"] = str(tpl)
    return files


def dummy_ctx(tmp, pki):
    return {"tmp": tmp, "fwd_port": 24224, "http_port": 9880, "metrics_port": 24231, "monitor_port": 24220,
            "syslog_port": 5140, "syslog_tcp_port": 5141, "es_host": "elasticsearch.logging.svc",
            "es_port": 9200, "kafka": "kafka-0.kafka-headless:9092", "loki_url": "http://loki-gateway.monitoring.svc",
            "pki": pki, "es_template": pki["template"]}


def run_dry(path, env, cwd):
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c", path], capture_output=True, timeout=30, cwd=cwd,
                       stdin=subprocess.DEVNULL, env=dict(os.environ, TZ="UTC", **env))
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def warnings_in(out):
    """weir's warnings: config lines `FILE:LINE: warning: ...` and JSON log lines at level warn."""
    found = []
    for line in out.splitlines():
        if ": warning: " in line:
            found.append(line)
        elif line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if obj.get("level") == "warn":
                found.append(obj.get("msg", line))
    return found


def errors_in(out):
    """Error lines of a dry-run: `FILE:LINE: message` that are not warnings, and error JSON log lines."""
    errs = []
    for line in out.splitlines():
        if line.startswith("{"):
            try:
                if json.loads(line).get("level") in ("error", "fatal"):
                    errs.append(line)
            except ValueError:
                pass
        elif re.match(r"^[^:\s]+:\d+: ", line) and ": warning: " not in line:
            errs.append(line)
    return errs


# --------------------------------------------------------------- 1: dry-run --

def test_suite_size_and_headers():
    assert len(CONFIGS) >= 30, CONFIGS
    for name in CONFIGS:
        assert re.match(r"^\d\d-[a-z0-9-]+\.conf$", name), name
        with open(os.path.join(COMPAT, name)) as f:
            head = f.read().split("\n<", 1)[0]
        assert head.startswith("# Mirrors: "), f"{name}: first comment block must say what it mirrors"
        if name in MISSING_PLUGIN:
            assert f"Needs a plugin weir does not have: {MISSING_PLUGIN[name]}" in head, name
        assert "enable_ruby" not in open(os.path.join(COMPAT, name)).read(), name
    for name in MISSING_PLUGIN:
        assert name in CONFIGS, name


@pytest.mark.parametrize("name", CONFIGS)
def test_dry_run(name, tmp_path, pki_files):
    path = os.path.join(COMPAT, name)
    with open(path) as f:
        text = f.read()
    env = compat_env(dummy_ctx(str(tmp_path), pki_files))
    missing_vars = unset_without_default(text) - set(env)
    assert not missing_vars, f"{name} reads {missing_vars} without a default: add them to compat_env"
    rc, out, err = run_dry(path, env, COMPAT)
    both = out + err
    warns = warnings_in(both)
    RESULTS["warnings"][name] = len(warns)
    print(f"\n{name}: rc={rc}, {len(warns)} warning(s)")
    for w in warns:
        print(f"  warning: {w}")
    if name in MISSING_PLUGIN:
        plugin = MISSING_PLUGIN[name]
        errs = errors_in(both)
        assert rc != 0, f"{name} passed dry-run, but needs {plugin}:\n{both}"
        assert len(errs) == 1, f"{name}: expected exactly one error naming {plugin!r}, got:\n{both}"
        assert f"'{plugin}'" in errs[0], f"{name}: the error does not name {plugin!r}: {errs[0]}"
        assert "1 error" in both, both
        RESULTS["refused_ok"].add(name)
    else:
        assert rc == 0, f"{name} refused by --dry-run:\n{both}"
        assert "configuration OK" in both, both
        assert not errors_in(both), both
        RESULTS["dry_ok"].add(name)


# ------------------------------------------------------- 2: real backends --

def now_et(i=0):
    t = time.time()
    return fwd.et(int(t), (int((t % 1) * 1e9) + i) % 1_000_000_000)


def send_acked(port, tag, records):
    """One PackedForward request of `records` with an ack; waits for it."""
    conn = fwd.FwdConn(port, timeout=30)
    try:
        ch = base64.b64encode(os.urandom(12)).decode()
        entries = [fwd.entry(now_et(i), r) for i, r in enumerate(records)]
        conn.send(fwd.packed_forward(tag, entries, {"chunk": ch}))
        conn.expect_ack(ch, timeout=30)
    finally:
        conn.close()


_RUNS = []


@pytest.fixture(autouse=True)
def _stop_runs():
    """A test that failed half way leaves no weir running."""
    yield
    while _RUNS:
        r = _RUNS.pop()
        if r.weir.alive():
            r.weir.proc.kill()
            r.weir.proc.wait()


class Run:
    """weir on one compat config, its environment pointed at the suite's peers."""

    def __init__(self, name, tmp_path, pki, **peers):
        _RUNS.append(self)
        self.name = name
        self.tmp = str(tmp_path)
        self.ctx = dummy_ctx(self.tmp, pki)
        self.ctx.update(fwd_port=free_port(), http_port=free_port(), metrics_port=free_port(),
                        monitor_port=free_port(), syslog_port=free_port(), syslog_tcp_port=free_port())
        self.ctx.update(peers)
        self.env = compat_env(self.ctx)
        for k in ("BUFFER_DIR", "OUT_DIR", "ARCHIVE_DIR", "ERROR_DIR", "FLUENTD_ROOT_DIR"):
            os.makedirs(self.env[k], exist_ok=True)
        self.weir = Weir(tmp_path, self.ctx["fwd_port"])

    def start(self, wait_port=True, **env):
        self.env.update(env)
        self.weir.start(args=["-c", os.path.join(COMPAT, self.name)], cwd=self.tmp, wait_port=wait_port,
                        env_extra=self.env)
        return self

    @property
    def port(self):
        return self.ctx["fwd_port"]

    def out(self, *parts):
        return os.path.join(self.env["OUT_DIR"], *parts)

    def finish(self):
        self.weir.stop_ok()
        self.weir.check_logs()
        RESULTS["ran"][self.name] = self.backend


def file_records(pattern, n, timeout=20):
    def enough():
        recs = read_json_lines(sorted(glob.glob(pattern)))
        return recs if len(recs) >= n else None
    try:
        recs = poll(enough, timeout, what=f"{n} records in {pattern}")
    except AssertionError:
        raise AssertionError(f"expected {n} records in {pattern}, have "
                             f"{read_json_lines(sorted(glob.glob(pattern)))}")
    assert len(recs) == n, recs
    return recs


def http(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


# ---- Elasticsearch

@pytest.fixture(scope="module")
def es():
    import peer_es
    with peer_es.running() as node:
        yield node


def es_docs(es, index, n, timeout=30, q=None):
    def enough():
        try:  # a new index answers 503 until its shard has started
            es.refresh(index)
            hits = es.search(index, q=q)
        except AssertionError:
            return None
        return hits if len(hits) >= n else None
    try:
        hits = poll(enough, timeout, interval=0.5, what=f"{n} documents in {index}")
    except AssertionError:
        raise AssertionError(f"{index}: expected {n} documents within {timeout}s")
    assert len(hits) == n, hits
    return [h["_source"] for h in hits]


def today_utc(fmt):
    return time.strftime(fmt, time.gmtime())


def es_run(name, tmp_path, pki, es):
    r = Run(name, tmp_path, pki, es_host="127.0.0.1", es_port=es.port)
    r.backend = "elasticsearch"
    return r


def test_run_01_daemonset_image_es(tmp_path, pki_files, es):
    r = es_run("01-k8s-daemonset-es-image.conf", tmp_path, pki_files, es).start()
    send_acked(r.port, "kube.var.log.containers.web", [{"log": f"line {i}", "compat": "c01"} for i in range(3)])
    docs = es_docs(es, f"logstash-{today_utc('%Y.%m.%d')}", 3, q="compat:c01")
    assert all(d["tag"] == "kube.var.log.containers.web" and "@timestamp" in d for d in docs), docs
    r.finish()


def test_run_02_bitnami_es_and_health_probe(tmp_path, pki_files, es):
    r = es_run("02-bitnami-helm-aggregator.conf", tmp_path, pki_files, es).start()
    r.weir.wait_listening(r.ctx["http_port"])
    # the chart's probes: httpGet /fluentd.healthcheck?json={"ping": "pong"}
    q = urllib.parse.quote('{"ping": "pong"}')
    st, body = http("GET", f"http://127.0.0.1:{r.ctx['http_port']}/fluentd.healthcheck?json={q}")
    assert st == 200, (st, body)
    send_acked(r.port, "app.web", [{"message": f"m{i}", "compat": "c02"} for i in range(3)])
    docs = es_docs(es, "bitnami-*", 3, q="compat:c02")
    assert {d["tag"] for d in docs} == {"app.web"}
    st, metrics = http("GET", f"http://127.0.0.1:{r.ctx['metrics_port']}/metrics")
    assert st == 200 and "fluentd_output_status_" in metrics, metrics[:2000]
    assert es.count("bitnami-*", {"match": {"ping": "pong"}}) == 0  # the probe went to null
    r.finish()


def test_run_03_docker_compose_efk(tmp_path, pki_files, es):
    r = es_run("03-docker-compose-efk.conf", tmp_path, pki_files, es).start()
    send_acked(r.port, "docker.httpd", [{"log": f"GET /{i}", "container_name": "/web", "compat": "c03"}
                                         for i in range(3)])
    docs = es_docs(es, f"fluentd-{today_utc('%Y%m%d')}", 3, q="compat:c03")
    assert {d["@log_name"] for d in docs} == {"docker.httpd"}, docs
    assert r.weir.stdout_text().count("docker.httpd") == 3  # the stdout store
    r.finish()


def test_run_04_v012_es(tmp_path, pki_files, es):
    r = es_run("04-v012-es-aggregator.conf", tmp_path, pki_files, es).start()
    t = time.strftime("%Y-%m-%dT%H:%M:%S.123456789Z", time.gmtime())
    send_acked(r.port, "kubernetes.var.log.containers.api",
               [{"log": json.dumps({"msg": f"m{i}", "compat": "c04", "time": t}), "stream": "stdout"}
                for i in range(3)])
    docs = es_docs(es, "k8s-*", 3, q="compat:c04")
    assert all(d["msg"].startswith("m") and d["stream"] == "stdout" for d in docs), docs
    r.finish()


def test_run_05_rewrite_tag_by_level(tmp_path, pki_files, es):
    r = es_run("05-rewrite-tag-by-level-es.conf", tmp_path, pki_files, es).start()
    levels = ["ERROR", "info", "warn", "fatal", "debug"]
    send_acked(r.port, "app.api", [{"level": lv, "compat": "c05"} for lv in levels])
    errs = es_docs(es, "app-errors", 2, q="compat:c05")
    assert {d["tag"] for d in errs} == {"errors.app.api"}
    es_docs(es, f"app-{today_utc('%Y.%m.%d')}", 3, q="compat:c05")
    r.finish()


def test_run_06_k8s_parse_json_log(tmp_path, pki_files, es):
    r = es_run("06-k8s-parse-json-log-es.conf", tmp_path, pki_files, es).start()
    recs = [{"log": json.dumps({"msg": f"m{i}", "compat": "c06"}), "kubernetes": {"namespace_name": "shop"}}
            for i in range(3)]
    recs.append({"log": json.dumps({"msg": "noise", "compat": "c06"}),
                 "kubernetes": {"namespace_name": "kube-system"}})
    send_acked(r.port, "kube.var.log.containers.shop", recs)
    docs = es_docs(es, "k8s-shop-*", 3, q="compat:c06")
    assert all(d["cluster"] == "dev" and d["namespace"] == "shop" and "log" not in d for d in docs), docs
    assert es.count("k8s-kube-system-*") == 0
    r.finish()


def test_run_07_grok(tmp_path, pki_files, es):
    r = es_run("07-grok-nginx-access-es.conf", tmp_path, pki_files, es).start()
    line = '10.0.0.{i} - - [02/Dec/2026:15:00:00 +0000] "GET /item/{i} HTTP/1.1" 200 612 "-" "curl/8.0"'
    recs = [{"message": line.format(i=i), "compat": "c07"} for i in range(2)]
    recs.append({"message": "not an access line", "compat": "c07"})
    send_acked(r.port, "nginx.access", recs)
    docs = es_docs(es, "nginx-access-*", 3, q="compat:c07")
    parsed = [d for d in docs if "grokfailure" not in d]
    assert len(parsed) == 2 and {d["response"] for d in parsed} == {"200"}, docs
    assert {d["clientip"] for d in parsed} == {"10.0.0.0", "10.0.0.1"}, docs
    r.finish()


def test_run_08_record_modifier(tmp_path, pki_files, es):
    r = es_run("08-record-modifier-es.conf", tmp_path, pki_files, es).start()
    send_acked(r.port, "svc.billing", [{"request_id": f"r{i}", "password": "x", "compat": "c08"} for i in range(3)])
    docs = es_docs(es, "services", 3, q="compat:c08")
    assert all(d["service"] == "billing" and d["env"] == "production" and "password" not in d for d in docs), docs
    r.finish()


def test_run_09_opensearch_output(tmp_path, pki_files, es):
    r = es_run("09-opensearch-output.conf", tmp_path, pki_files, es).start()
    send_acked(r.port, "any.thing", [{"message": f"m{i}", "compat": "c09"} for i in range(3)])
    es_docs(es, f"os-logs-{today_utc('%Y.%m.%d')}", 3, q="compat:c09")
    r.finish()


def test_run_10_copy_es_and_archive(tmp_path, pki_files, es):
    r = es_run("10-copy-es-and-archive-file.conf", tmp_path, pki_files, es).start()
    send_acked(r.port, "arch.app", [{"message": f"m{i}", "compat": "c10"} for i in range(3)])
    es_docs(es, "archive-copy-*", 3, q="compat:c10")

    def archived():
        recs = []
        for p in glob.glob(os.path.join(r.env["ARCHIVE_DIR"], "arch.app", "*.gz")):
            try:
                with gzip.open(p, "rb") as f:
                    recs += [json.loads(l) for l in f.read().splitlines() if l.strip()]
            except (EOFError, OSError):
                return None
        return recs if len(recs) >= 3 else None
    recs = poll(archived, 20, interval=0.2, what="3 archived records")
    assert len(recs) == 3 and {x["tag"] for x in recs} == {"arch.app"}, recs
    r.backend = "elasticsearch+files"
    r.finish()


def test_run_11_labels_and_error(tmp_path, pki_files, es):
    r = es_run("11-labels-error-fluent-log.conf", tmp_path, pki_files, es).start()
    send_acked(r.port, "app.checkout", [{"payload": json.dumps({"n": i}), "compat": "c11"} for i in range(2)] +
               [{"payload": "not json", "compat": "c11"}])
    # as Fluentd's filter_parser: with reserve_data the unparsed record goes on
    # (to ES) and a copy goes to @ERROR (emit_invalid_record_to_error)
    docs = es_docs(es, "labelled-app", 3, q="compat:c11")
    assert sorted(d.get("n", -1) for d in docs) == [-1, 0, 1], docs
    errs = file_records(os.path.join(r.env["ERROR_DIR"], "error*.log"), 1)
    assert errs[0]["payload"] == "not json" and errs[0]["tag"] == "app.checkout", errs
    r.weir.allow_errors = True  # the parse failure is logged
    r.backend = "elasticsearch+files"
    r.finish()


# ---- Kafka

@pytest.fixture(scope="module")
def kafka():
    import peer_kafka
    with peer_kafka.running() as b:
        yield b


def kafka_payloads(kafka, topic, n):
    msgs = kafka.read(topic, timeout=30, expect=n)
    assert len(msgs) == n, msgs
    return [json.loads(m["payload"]) for m in msgs]


def test_run_13_kafka2(tmp_path, pki_files, kafka):
    r = Run("13-kafka2-pipeline.conf", tmp_path, pki_files, kafka=kafka.bootstrap)
    r.backend = "kafka"
    r.start(KAFKA_TOPIC="compat-c13")
    send_acked(r.port, "app.orders", [{"msg": f"m{i}", "compat": "c13"} for i in range(2)] +
               [{"msg": "routed", "topic": "compat-c13b", "compat": "c13"}])
    main = kafka_payloads(kafka, "compat-c13", 2)
    assert all(p["tag"] == "app.orders" and "time" in p for p in main), main
    other = kafka_payloads(kafka, "compat-c13b", 1)
    assert other[0]["msg"] == "routed" and "topic" not in other[0], other
    r.finish()


def test_run_14_v012_kafka_buffered(tmp_path, pki_files, kafka):
    r = Run("14-v012-kafka-buffered.conf", tmp_path, pki_files, kafka=kafka.bootstrap)
    r.backend = "kafka"
    r.start()
    send_acked(r.port, "legacy.billing", [{"msg": f"m{i}", "compat": "c14"} for i in range(3)])
    got = kafka_payloads(kafka, "legacy-logs", 3)
    assert all(p["tag"] == "legacy.billing" and isinstance(p["time"], int) for p in got), got
    r.finish()


def test_run_16_kafka_consumer(tmp_path, pki_files, kafka):
    kafka.create_topic("compat-c16")
    kafka.produce("compat-c16", [json.dumps({"msg": f"m{i}", "compat": "c16"}) for i in range(3)])
    r = Run("16-kafka-consumer-to-file.conf", tmp_path, pki_files, kafka=kafka.bootstrap)
    r.backend = "kafka+files"
    r.start(wait_port=False, KAFKA_TOPICS="compat-c16", KAFKA_GROUP="compat-c16-group")
    recs = file_records(r.out("kafka.compat-c16*.log"), 3, timeout=40)
    assert {x["compat"] for x in recs} == {"c16"}, recs
    r.finish()


# ---- Loki

@pytest.fixture(scope="module")
def loki(tmp_path_factory):
    from peer_loki import Loki
    lk = Loki(str(tmp_path_factory.mktemp("compat-loki")), auth=False)
    try:
        lk.start()
    except Exception:
        lk.stop()
        raise
    yield lk
    lk.stop()


def loki_entries(loki, logql, n, timeout=30):
    def enough():
        got = loki.entries(logql)
        return got if len(got) >= n else None
    try:
        got = poll(enough, timeout, interval=0.5, what=f"{n} entries for {logql}")
    except AssertionError:
        raise AssertionError(f"{logql}: expected {n} entries, have {loki.entries(logql)}")
    assert len(got) == n, got
    return got


def test_run_17_loki_grafana_docs(tmp_path, pki_files, loki):
    r = Run("17-loki-grafana-docs.conf", tmp_path, pki_files, loki_url=loki.url)
    r.backend = "loki"
    r.start()
    send_acked(r.port, "app.web", [{"app": "c17app", "container": "web", "message": f"hello {i}",
                                    "pod_ip": "10.1.2.3"} for i in range(3)])
    got = loki_entries(loki, '{app="c17app"}', 3)
    for labels, _, line, _ in got:
        assert labels.get("env") == "dev" and labels.get("agent") == "fluentd" and labels.get("container") == "web"
        rec = json.loads(line)
        assert "pod_ip" not in rec and rec["message"].startswith("hello"), line
    r.finish()


def test_run_18_loki_k8s_multitenant(tmp_path, pki_files, loki):
    r = Run("18-loki-k8s-multitenant.conf", tmp_path, pki_files, loki_url=loki.url)
    r.backend = "loki"
    r.start()
    send_acked(r.port, "kube.var.log.containers.web",
               [{"kubernetes": {"namespace_name": "c18ns", "pod_name": "web-0",
                                "labels": {"app.kubernetes.io/name": "c18"}},
                 "stream": "stdout", "log": f"line {i} c18"} for i in range(3)])
    got = loki_entries(loki, '{namespace="c18ns"}', 3)
    for labels, _, line, _ in got:
        assert labels.get("pod") == "web-0" and labels.get("app_kubernetes_io_name") == "c18", labels
        assert "c18" in line and "namespace_name" not in line, line
    r.finish()


# ---- files (and weir -> weir)

def file_run(name, tmp_path, pki):
    r = Run(name, tmp_path, pki)
    r.backend = "files"
    return r


def test_run_21_include_confd(tmp_path, pki_files):
    r = file_run("21-include-confd.conf", tmp_path, pki_files).start()
    send_acked(r.port, "inc.app", [{"n": i} for i in range(3)])
    recs = file_records(r.out("inc.app*.log"), 3)
    assert all(x["aggregator"] for x in recs), recs
    r.finish()


def test_run_22_http_health_prometheus(tmp_path, pki_files):
    r = file_run("22-http-health-prometheus.conf", tmp_path, pki_files).start()
    for p in ("http_port", "metrics_port", "monitor_port"):
        r.weir.wait_listening(r.ctx[p])
    st, _ = http("POST", f"http://127.0.0.1:{r.ctx['http_port']}/fluentd.healthcheck",
                 b'json={"ping":"pong"}', {"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 200
    send_acked(r.port, "app.web", [{"n": i} for i in range(3)])
    file_records(r.out("app*.log"), 3)
    st, metrics = http("GET", f"http://127.0.0.1:{r.ctx['metrics_port']}/metrics")
    assert st == 200
    m = re.search(r'^fluentd_input_status_num_records_total\{[^}]*tag="app.web"[^}]*\} (\S+)$', metrics, re.M)
    assert m and float(m.group(1)) == 3, metrics[:3000]
    st, plugins = http("GET", f"http://127.0.0.1:{r.ctx['monitor_port']}/api/plugins.json")
    assert st == 200 and "plugins" in json.loads(plugins)
    r.finish()


def test_run_23_multi_worker_root_dir(tmp_path, pki_files):
    r = file_run("23-multi-worker-root-dir.conf", tmp_path, pki_files).start()
    send_acked(r.port, "multi.x", [{"n": i} for i in range(3)])
    file_records(r.out("multi*.log"), 3)
    assert os.path.isdir(os.path.join(r.env["FLUENTD_ROOT_DIR"], "worker0", "out_multi", "buffer"))
    r.finish()


def test_run_24_syslog_in(tmp_path, pki_files):
    r = file_run("24-syslog-in.conf", tmp_path, pki_files)
    r.start(wait_port=False)
    r.weir.wait_listening(r.ctx["syslog_tcp_port"])
    time.sleep(0.3)  # the UDP socket opens with the TCP one
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.sendto(b"<34>1 2026-12-02T15:00:00.000Z router1 sshd 42 ID47 - Failed password for root",
                 ("127.0.0.1", r.ctx["syslog_port"]))
        u.sendto(b"<13>Dec  2 15:00:01 vm7 app[99]: hello from 3164", ("127.0.0.1", r.ctx["syslog_port"]))
    msg = b"<165>1 2026-12-02T15:00:02Z host3 app - - - over tcp"
    with socket.create_connection(("127.0.0.1", r.ctx["syslog_tcp_port"])) as c:
        c.sendall(str(len(msg)).encode() + b" " + msg)
    recs = file_records(r.out("syslog*.log"), 3)
    by_host = {x["host"]: x for x in recs}
    assert by_host["router1"]["severity"] == "crit" and by_host["router1"]["facility"] == "auth", recs
    assert by_host["vm7"]["tag"] == "system.user.notice" and by_host["vm7"]["source_ip"] == "127.0.0.1", recs
    assert by_host["host3"]["tag"].startswith("system.tcp.local4"), recs
    r.finish()


def test_run_25_26_forward_tiers(tmp_path, pki_files):
    central = file_run("26-forward-in-central-tier.conf", tmp_path / "central", pki_files).start()
    edge = file_run("25-forward-out-edge-tier.conf", tmp_path / "edge", pki_files)
    edge.start(CENTRAL_HOST="127.0.0.1", CENTRAL_PORT=str(central.port),
               CENTRAL_STANDBY_HOST="127.0.0.1", CENTRAL_STANDBY_PORT=str(free_port()))
    send_acked(edge.port, "edge.app", [{"n": i} for i in range(3)])
    recs = file_records(central.out("central*.log"), 3)
    assert all(x["tag"] == "edge.app" and x["forwarded_by"] == "127.0.0.1" for x in recs), recs
    edge.finish()
    central.finish()


def test_run_29_relabel_stdout_filter(tmp_path, pki_files):
    r = file_run("29-relabel-stdout-filter.conf", tmp_path, pki_files).start()
    send_acked(r.port, "audit.k8s", [{"verb": v} for v in ("create", "get", "delete")])
    recs = file_records(r.out("audit*.log"), 2)
    assert {x["verb"] for x in recs} == {"create", "delete"}
    assert r.weir.stdout_text().count("audit.k8s") == 3
    r.finish()


def test_run_30_record_transformer(tmp_path, pki_files):
    r = file_run("30-record-transformer-tag-parts.conf", tmp_path, pki_files).start()
    send_acked(r.port, "app.payments.api", [{"user": {"id": 7}, "secret": "s", "internal": 1, "n": i}
                                            for i in range(3)])
    recs = file_records(r.out("apps*.log"), 3)
    for x in recs:
        assert (x["team"], x["service"], x["route"], x["user_id"]) == ("payments", "api", "payments.api", 7), x
        assert "secret" not in x and "internal" not in x and x["fluentd_tag"] == "app.payments.api", x
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}$", x["@timestamp"]), x
    r.finish()


def test_run_33_regexp_parser(tmp_path, pki_files):
    r = file_run("33-regexp-parser-filter.conf", tmp_path, pki_files).start()
    send_acked(r.port, "legacy.app", [{"message": "2026-12-02 10:00:00 [INFO] done took=42ms"},
                                      {"message": "garbage"}])
    recs = file_records(r.out("legacy*.log"), 2)
    parsed = [x for x in recs if "level" in x]
    assert len(parsed) == 1 and parsed[0]["took_ms"] == 42 and parsed[0]["level"] == "INFO", recs
    assert parsed[0]["logtime"] == "2026-12-02 10:00:00", recs
    r.weir.allow_errors = True  # an unparsed line may be logged
    r.finish()


# ------------------------------------------------------- 3: still refused --

# What weir refuses and Fluentd accepts (with the plugin named installed).
# (name, reason, [snippets]): each snippet is a config body (a forward source
# is added in front) that `weir --dry-run` must refuse with an error
# containing `expect`. docs/migrating-from-fluentd.md, "Still refused",
# lists the same names in the same order.
_NULL = "<match **>\n  @type null\n</match>\n"


def _parse(type_, extra=""):
    return ("<filter **>\n  @type parser\n  key_name log\n  <parse>\n"
            f"    @type {type_}\n{extra}  </parse>\n</filter>\n" + _NULL)


STILL_REFUSED = [
    ("other embedded Ruby", "only `ENV[...]`, `ENV.fetch`, `Socket.gethostname`, literals, `||`, `use_default`/`use_nil` "
     "and `.to_i`/`.to_s`/`.upcase`/`.downcase`/`.strip` are evaluated",
     ["<match **>\n  @type file\n  path \"#{File.read('/etc/hostname').strip}\"\n</match>\n"],
     "embedded Ruby code is not supported"),
    ("`enable_ruby` code outside weir's Ruby subset",
     "blocks, and classes or methods not in the subset (docs/configuration.md, \"Ruby expressions\")",
     ["<filter **>\n  @type record_transformer\n  enable_ruby true\n  <record>\n"
      "    keys ${record.keys.map { |k| k.upcase }.join(\",\")}\n  </record>\n</filter>\n" + _NULL],
     "unsupported Ruby"),
    ("in_tcp, in_tail, in_exec, in_sample/in_dummy, in_unix",
     "weir's inputs are forward, http, syslog, udp, kafka and the monitors (Fluent Bit tails on the nodes)",
     [f"<source>\n  @type {t}\n  tag x\n</source>\n" for t in ("tcp", "tail", "exec", "sample", "dummy", "unix")],
     "unknown input plugin"),
    ("out_http, out_exec, out_exec_filter, out_secondary_file, out_roundrobin",
     "not implemented (`<secondary> @type file` works; weir's outputs: file, stdout, null, elasticsearch, "
     "opensearch, loki, kafka2, forward, prometheus, copy, relabel, rewrite_tag_filter)",
     [f"<match **>\n  @type {t}\n</match>\n" for t in ("http", "exec", "exec_filter", "secondary_file",
                                                       "roundrobin")], "unknown output plugin"),
    ("`elasticsearch_data_stream`, `elasticsearch_dynamic`",
     "fluent-plugin-elasticsearch's other output types: use `@type elasticsearch` with `data_stream_name` "
     "(weir creates the index template, not the ILM policy the plugin creates) or placeholders in "
     "`index_name`/`logstash_prefix` with the keys in `<buffer>`",
     ["<match **>\n  @type elasticsearch_data_stream\n  data_stream_name logs-app-default\n</match>\n",
      "<match **>\n  @type elasticsearch_dynamic\n</match>\n"], "unknown output plugin"),
    ("`enable_ilm` / `rollover_index` in elasticsearch",
     "weir does not bootstrap ILM rollover aliases or policies; use `data_stream_name` (or `logstash_format`)",
     ["<match **>\n  @type elasticsearch\n  enable_ilm true\n</match>\n",
      "<match **>\n  @type elasticsearch\n  rollover_index true\n</match>\n"], "is not supported by weir"),
    ("`multiline_grok`", "fluent-plugin-grok-parser's multiline parser",
     [_parse("multiline_grok")], "is not supported by weir"),
    ("record_modifier `prepare_value` beyond `@name = expression`",
     "Ruby code other than assignments of the Ruby subset; compute the value in the expression itself",
     ["<filter **>\n  @type record_modifier\n  prepare_value @x = 1; puts @x\n</filter>\n" + _NULL],
     "are supported"),
    ("third-party plugins weir does not have",
     "e.g. s3, cloudwatch_logs, concat, detect_exceptions, label_router (Fluent Operator), geoip, splunk_hec, "
     "the multi_format parser: "
     "one error naming the plugin",
     ["<match **>\n  @type s3\n</match>\n", "<match **>\n  @type cloudwatch_logs\n</match>\n",
      "<filter **>\n  @type concat\n</filter>\n" + _NULL, "<match **>\n  @type detect_exceptions\n</match>\n",
      "<match **>\n  @type label_router\n</match>\n", "<filter **>\n  @type geoip\n</filter>\n" + _NULL,
      "<match **>\n  @type splunk_hec\n</match>\n", _parse("multi_format")], "plugin|parser type"),
]


@pytest.mark.parametrize("entry", STILL_REFUSED, ids=[e[0] for e in STILL_REFUSED])
def test_still_refused(entry, tmp_path):
    name, reason, snippets, expect = entry
    for i, body in enumerate(snippets):
        path = os.path.join(str(tmp_path), f"s{i}.conf")
        with open(path, "w") as f:
            f.write("<source>\n  @type forward\n  port 24224\n</source>\n" + body)
        rc, out, err = run_dry(path, {}, str(tmp_path))
        assert rc != 0, f"{name}: weir accepts it now, take it off STILL_REFUSED:\n{body}\n{out}{err}"
        assert re.search(expect, err + out), f"{name}: refused for another reason:\n{body}\n{err}{out}"
    RESULTS["still_refused_ok"].add(name)


def guide_still_refused():
    with open(GUIDE) as f:
        text = f.read()
    m = re.search(r"^## Still refused\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, "docs/migrating-from-fluentd.md has no '## Still refused' section"
    return re.findall(r"^- \*\*(.+?)\*\*: ", m.group(1), re.M)


def test_still_refused_matches_migration_guide():
    assert guide_still_refused() == [e[0] for e in STILL_REFUSED], (
        "docs/migrating-from-fluentd.md '## Still refused' and STILL_REFUSED differ")


def test_zz_summary():
    ran = RESULTS["ran"]
    backends = sorted({b for v in ran.values() for b in v.split("+")})
    line = (f"compat suite: {len(CONFIGS)} configs, {len(RESULTS['dry_ok'])} dry-run OK "
            f"({sum(RESULTS['warnings'].values())} warnings), {len(ran)} run against backends "
            f"({', '.join(backends) or 'none'}), {len(RESULTS['refused_ok'])} refused as expected "
            f"(missing plugin), {len(RESULTS['still_refused_ok'])}/{len(STILL_REFUSED)} STILL_REFUSED "
            f"entries confirmed")
    print("\n" + line)
    for name in CONFIGS:
        print(f"  {name}: dry-run {'OK' if name in RESULTS['dry_ok'] else 'refused' if name in RESULTS['refused_ok'] else '-'}"
              f", {RESULTS['warnings'].get(name, '?')} warning(s)" + (f", ran: {ran[name]}" if name in ran else ""))
