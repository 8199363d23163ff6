"""k8s/: every kustomization builds with kustomize (from the Go module proxy)
and every object passes strict schema validation (kubernetes-validate, from
PyPI, offline) for two Kubernetes versions; references inside each build
resolve (selectors, ports, ConfigMaps, Secrets, volumes, probes); the weir
config each overlay ships really runs (TLS + shared key, as Fluent Bit would
send, drained on SIGTERM or kept on the durable volume); the Fluent Bit config
and upstream files point at weir's Services with TLS, the shared key and
acks; the Grafana dashboard only queries metrics a running weir exports."""
import base64
import copy
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time

import pytest

import fwd
import k8s_tools
from conftest import REPO, T0, WEIR_BIN, free_port, poll
from fwd import entry, et, ping_bytes, read_helo, read_obj, sha512_hex
from helpers import config, get
import peer_es
from peer_fluentbit import fluent_bit_or_skip
from peer_loki import Loki

K8S = os.path.join(REPO, "k8s")
BUILDS = ["base", "overlays/dev", "overlays/durable", "overlays/loki", "overlays/phase2", "fluent-bit", "grafana"]
WEIR_BUILDS = ["base", "overlays/dev", "overlays/durable", "overlays/loki"]
K8S_VERSIONS = ["1.30.0", "1.37.0"]
NAMESPACE = "logging"
CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "Namespace"}
# Secrets the operator creates (k8s/README.md); any other Secret a build
# references must be in the build.
# ECK creates the last two for its Elasticsearch cluster "logs".
EXTERNAL_SECRETS = {"weir-tls", "weir-shared-key", "logs-es-elastic-user", "logs-es-http-certs-public"}
WEIR_SVC_DNS = f"weir.{NAMESPACE}.svc.cluster.local"


# ------------------------------------------------------------------ helpers --

@pytest.fixture(scope="module")
def kustomize():
    return k8s_tools.ensure()


@pytest.fixture(scope="module")
def built(kustomize):
    """{build dir: [objects]} from `kustomize build`, built once per module."""
    import yaml
    out = {}
    for b in BUILDS:
        p = subprocess.run([kustomize, "build", os.path.join(K8S, b)], capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, f"kustomize build k8s/{b}: {p.stderr}"
        out[b] = [d for d in yaml.safe_load_all(p.stdout) if d]
    return out


def find(objs, kind, name=None):
    got = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    return got


def one(objs, kind, name=None):
    got = find(objs, kind, name)
    assert len(got) == 1, f"expected one {kind} {name or ''}, got {[o['metadata']['name'] for o in got]}"
    return got[0]


def workload(objs):
    w = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]
    assert len(w) == 1, [o["kind"] for o in w]
    return w[0]


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def weir_conf(objs):
    w = workload(objs)
    args = w["spec"]["template"]["spec"]["containers"][0]["args"]
    path = args[args.index("-c") + 1]
    cms = find(objs, "ConfigMap")
    cm_vol = [v for v in w["spec"]["template"]["spec"]["volumes"] if "configMap" in v][0]
    mount = [m for m in w["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
             if m["name"] == cm_vol["name"]][0]
    assert path.startswith(mount["mountPath"] + "/"), (path, mount)
    key = path[len(mount["mountPath"]) + 1:]
    cm = one(cms, "ConfigMap", cm_vol["configMap"]["name"])
    assert key in cm["data"], (key, list(cm["data"]))
    return cm["data"][key]


def conf_values(conf, name):
    return re.findall(rf"^\s*{name}\s+(\S+)", conf, re.M)


# ------------------------------------------------------- build and validate --

@pytest.mark.parametrize("build", BUILDS)
def test_kustomize_build_validates(built, build):
    """Strict schema validation (unknown fields are errors) of every object for the
    oldest and newest Kubernetes versions weir supports; ServiceMonitor is a CRD,
    checked in test_weir_references_resolve instead."""
    import kubernetes_validate as kv
    objs = built[build]
    assert objs
    seen = set()
    for o in objs:
        key = (o["kind"], o["metadata"]["name"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        if o["kind"] not in CLUSTER_SCOPED:
            assert o["metadata"].get("namespace") == NAMESPACE, f"{key} not in namespace {NAMESPACE}"
        if o["kind"] == "ServiceMonitor":
            continue
        for v in K8S_VERSIONS:
            try:
                kv.validate(o, v, strict=True)
            except kv.ValidationError as e:
                pytest.fail(f"k8s/{build}: {key} invalid for Kubernetes {v}: {e}")


def test_validator_rejects_broken_manifests(built):
    """The validator is live: a typo'd field, a wrong type and a missing required
    field in the base Deployment are all refused."""
    import kubernetes_validate as kv
    good = one(built["base"], "Deployment")
    kv.validate(good, K8S_VERSIONS[-1], strict=True)
    typo = copy.deepcopy(good)
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz", "port": 1}}
    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["replicas"] = "two"
    missing = copy.deepcopy(good)
    del missing["spec"]["template"]["spec"]["containers"][0]["name"]
    for bad in (typo, wrong_type, missing):
        with pytest.raises(kv.ValidationError):
            kv.validate(bad, K8S_VERSIONS[-1], strict=True)


# ------------------------------------------------------- references resolve --

@pytest.mark.parametrize("build", WEIR_BUILDS)
def test_weir_references_resolve(built, build):
    objs = built[build]
    w = workload(objs)
    pod = w["spec"]["template"]
    labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    (c,) = spec["containers"]
    assert matches(w["spec"]["selector"]["matchLabels"], labels)
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}

    # volumes: ConfigMaps in the build, Secrets in the build or documented
    vol_names = {v["name"] for v in spec["volumes"]}
    vol_names |= {t["metadata"]["name"] for t in w["spec"].get("volumeClaimTemplates", [])}
    for m in c["volumeMounts"]:
        assert m["name"] in vol_names, f"mount {m['name']} has no volume"
    for v in spec["volumes"]:
        if "configMap" in v:
            assert ("ConfigMap", v["configMap"]["name"]) in names, v
        if "secret" in v:
            n = v["secret"]["secretName"]
            assert ("Secret", n) in names or n in EXTERNAL_SECRETS, v
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ("Secret", ref["name"]) in names or ref["name"] in EXTERNAL_SECRETS, e
    if build == "overlays/dev":
        sec = one(objs, "Secret", "weir-shared-key")
        assert base64.b64decode(sec["data"]["shared-key"])

    ports = {p["name"]: p for p in c["ports"]}
    # Services select the pods and target named container ports
    for svc in find(objs, "Service"):
        assert matches(svc["spec"]["selector"], labels), svc["metadata"]["name"]
        for p in svc["spec"]["ports"]:
            cp = ports[p["targetPort"]]
            assert cp["protocol"] == p["protocol"], p
    # PDB, NetworkPolicy
    assert matches(one(objs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], labels)
    np = one(objs, "NetworkPolicy")
    assert matches(np["spec"]["podSelector"]["matchLabels"], labels)
    np_ports = {(p["port"], p["protocol"]) for r in np["spec"]["ingress"] for p in r["ports"]}
    assert np_ports == {(p["containerPort"], p["protocol"]) for p in c["ports"]}
    # ServiceMonitor (a CRD: the fields used, checked against the objects they name)
    sm = one(objs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    svc = one(objs, "Service", "weir")
    assert matches(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert sm["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] in {p["name"] for p in svc["spec"]["ports"]}
    assert re.fullmatch(r"\d+s", ep["interval"]) and re.fullmatch(r"\d+s", ep["scrapeTimeout"])
    conf = weir_conf(objs)
    assert ep["path"] == "/metrics"
    assert ports[ep["port"]]["containerPort"] == int(conf_values(conf, "port")[1])  # the monitor source
    # HPA: scales the workload of the build, or is absent (durable)
    hpas = find(objs, "HorizontalPodAutoscaler")
    if w["kind"] == "Deployment":
        (hpa,) = hpas
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["name"]) == ("Deployment", w["metadata"]["name"])
        assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    else:
        assert not hpas, "a StatefulSet with per-replica buffers must not be autoscaled"


@pytest.mark.parametrize("build", WEIR_BUILDS)
def test_weir_pod_is_operable(built, build):
    """Probes on the monitor port, non-root read-only pod with every path weir
    writes on a writable volume, the logging node's taint tolerated, drain time
    longer than weir's shutdown_timeout."""
    objs = built[build]
    w = workload(objs)
    spec = w["spec"]["template"]["spec"]
    labels = w["spec"]["template"]["metadata"]["labels"]
    (c,) = spec["containers"]
    conf = weir_conf(objs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["forward"] == int(conf_values(conf, "port")[0]) == 24224
    assert ports["metrics"] == int(conf_values(conf, "port")[1]) == 24231

    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}

    psc, csc = spec["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] is True and psc["runAsUser"] != 0
    assert psc["seccompProfile"]["type"] == "RuntimeDefault"
    assert csc["readOnlyRootFilesystem"] is True and csc["allowPrivilegeEscalation"] is False
    assert csc["capabilities"]["drop"] == ["ALL"]
    assert spec["automountServiceAccountToken"] is False
    assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["memory"]

    # the dedicated logging node: tolerate its taint, select it, spread replicas
    sel = spec["nodeSelector"]
    assert any(t["key"] in sel and t.get("value") == sel[t["key"]] and t["effect"] == "NoSchedule"
               for t in spec["tolerations"])
    (term,) = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert matches(term["podAffinityTerm"]["labelSelector"]["matchLabels"], labels)

    # read-only root: every path weir writes is on a writable mount
    writable = [m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")]
    written = conf_values(conf, "path") + conf_values(conf, "dead_letter_path")
    assert len(written) >= 3
    for p in written:
        assert any(p.startswith(mp + "/") for mp in writable), f"{p} is on the read-only root"
    # TLS files come from the mounted Secret
    tls_mount = [m["mountPath"] for m in c["volumeMounts"] if m["name"] == "tls"][0]
    for p in conf_values(conf, "cert_path") + conf_values(conf, "private_key_path"):
        assert p.startswith(tls_mount + "/")
    # every other file weir reads (the backend's CA) is on a mounted volume
    mounts = [m["mountPath"] for m in c["volumeMounts"]]
    for p in conf_values(conf, "ca_file") + conf_values(conf, "ca_cert"):
        assert any(p.startswith(mp + "/") for mp in mounts), f"{p} is not on a mounted volume"

    # SIGTERM: preStop sleep + shutdown_timeout fit in the grace period
    st = int(re.search(r"^\s*shutdown_timeout (\d+)s", conf, re.M).group(1))
    sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    assert spec["terminationGracePeriodSeconds"] > st + sleep

    env = {e["name"]: e.get("value") for e in c["env"]}
    if w["kind"] == "Deployment":
        assert w["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        assert env["WEIR_FLUSH_AT_SHUTDOWN"] == "true"  # emptyDir: flush before the pod goes
        data = [v for v in spec["volumes"] if v["name"] == "data"][0]
        assert "emptyDir" in data
    else:
        assert w["kind"] == "StatefulSet"
        assert env["WEIR_FLUSH_AT_SHUTDOWN"] == "false"  # the claim keeps the chunks
        assert [t["metadata"]["name"] for t in w["spec"]["volumeClaimTemplates"]] == ["data"]
        assert not [v for v in spec["volumes"] if v["name"] == "data"]
        assert [m["mountPath"] for m in c["volumeMounts"] if m["name"] == "data"] == ["/var/lib/weir"]
        hl = one(objs, "Service", w["spec"]["serviceName"])
        assert hl["spec"]["clusterIP"] == "None"
        assert not find(objs, "Deployment")


def test_statefulset_template_follows_the_deployment(built):
    """overlays/durable's pod template is base's, but for the buffer volume and
    WEIR_FLUSH_AT_SHUTDOWN (the file says: keep them in step)."""
    d = copy.deepcopy(one(built["base"], "Deployment")["spec"]["template"])
    s = copy.deepcopy(one(built["overlays/durable"], "StatefulSet")["spec"]["template"])
    for t in (d, s):
        t["spec"]["volumes"] = [v for v in t["spec"]["volumes"] if v["name"] != "data"]
        for e in t["spec"]["containers"][0]["env"]:
            if e["name"] == "WEIR_FLUSH_AT_SHUTDOWN":
                e["value"] = "x"
    assert d == s


# ------------------------------------------------- the shipped config runs --

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A self-signed certificate for weir's Service names (what weir-tls holds)."""
    d = tmp_path_factory.mktemp("k8s-pki")
    san = f"DNS:{WEIR_SVC_DNS},DNS:*.weir-headless.{NAMESPACE}.svc.cluster.local"
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", "tls.key", "-out", "tls.crt", "-days", "2", "-subj", "/CN=weir",
                        "-addext", f"subjectAltName={san}"], cwd=d, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return str(d)


def pod_env(objs, key):
    """The container's environment as Kubernetes would set it."""
    w = workload(objs)
    env = {}
    for e in w["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "fieldRef" in e["valueFrom"]:
            assert e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
            env[e["name"]] = w["metadata"]["name"] + "-0"
        else:
            ref = e["valueFrom"]["secretKeyRef"]
            sec = find(objs, "Secret", ref["name"])
            env[e["name"]] = base64.b64decode(sec[0]["data"][ref["key"]]).decode() if sec else key
    return env


def local_conf(conf, tmp, pki, fport, mport, es_ca=None):
    """The ConfigMap's weir.conf with only the environment's paths and ports
    changed: /var/lib/weir and the TLS Secrets into tmp dirs, listeners on
    127.0.0.1 and free ports. The backend's host and credentials come from
    the pod's environment (pod_env, then overridden by the test)."""
    assert conf.count("port 24224") == 1 and conf.count("port 24231") == 1
    conf = conf.replace("/var/lib/weir/", tmp + "/").replace("/etc/weir/tls/", pki + "/")
    if es_ca:
        conf = conf.replace("/etc/weir/es-ca/", es_ca + "/")
    conf = conf.replace("port 24224", f"port {fport}").replace("port 24231", f"port {mport}")
    return conf.replace("bind 0.0.0.0", "bind 127.0.0.1")


class TlsConn(fwd.FwdConn):
    def __init__(self, port, ca, server_name, timeout=10.0):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(ca)
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock = ctx.wrap_socket(raw, server_hostname=server_name)
        self.buf = b""
        self.timeout = timeout


POD_TAG = "kube.var.log.containers.auth-api-7d9c_auth_auth-api-0123456789abcdef.log"


def fluent_bit_send(port, pki, key, self_hostname, records, t0):
    """What Fluent Bit's out_forward does with upstream.conf's settings: TLS
    verified against weir's CA for the Service name, the shared-key handshake
    as `fluent-bit`, one PackedForward chunk (event times t0, t0+1ms, ...),
    wait for its ack."""
    with TlsConn(port, os.path.join(pki, "tls.crt"), WEIR_SVC_DNS) as c:
        opts = read_helo(c)
        ping, salt = ping_bytes(opts["nonce"], b"", key=key, host="fluent-bit")
        c.send(ping)
        pong = read_obj(c)
        assert pong[:4] == ["PONG", True, "", self_hostname], pong
        assert pong[4] == sha512_hex(salt, self_hostname, opts["nonce"], key)
        ch = base64.b64encode(os.urandom(12)).decode()
        c.send(fwd.packed_forward(POD_TAG, [entry(et(t0, i * 1_000_000), r) for i, r in enumerate(records)],
                                  {"chunk": ch}))
        c.expect_ack(ch)
    return POD_TAG


@pytest.fixture(scope="module")
def es_node():
    """A real Elasticsearch node as ECK runs it: HTTPS with its own CA, basic
    auth (started only for the builds that write to Elasticsearch)."""
    with peer_es.running(tls=True) as node:
        yield node


@pytest.fixture(scope="module")
def loki_node(tmp_path_factory):
    lk = Loki(str(tmp_path_factory.mktemp("k8s-loki")), auth=False)
    try:
        lk.start()
        yield lk
    finally:
        lk.stop()


# What the application logged (after Fluent Bit's kubernetes filter merged it):
# one error, one info line, each with a trace id the trace filter normalises.
K8S_RECORDS = [
    {"level": "ERROR", "message": "User login failed", "user_id": "alice",
     "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736",
     "kubernetes": {"namespace_name": "auth", "pod_name": "auth-api-7d9c", "container_name": "auth-api",
                    "labels": {"app": "auth-api"}}},
    {"level": "info", "message": "GET /healthz 200", "user_id": "bob",
     "trace_id": "0AF7651916CD43DD8448EB211C80319C",
     "kubernetes": {"namespace_name": "auth", "pod_name": "auth-api-7d9c", "container_name": "auth-api",
                    "labels": {"app": "auth-api"}}},
]


def es_docs(node, t0):
    """(index, _id, _source) of every document in the day's two indices
    (an index not created yet is empty; a new one is waited for)."""
    day = time.strftime("%Y.%m.%d", time.gmtime(t0))
    out, last = [], [None]
    for index in (f"logs-error-{day}", f"logs-{day}"):
        def search():
            st, b = node.req("POST", f"/{index}/_search?ignore_unavailable=true", {"size": 1000})
            last[0] = (st, b)
            if st == 200 and not b["_shards"].get("failed"):
                return b["hits"]["hits"] or [None]
            return None
        node.refresh(index)
        try:
            hits = poll(search, 20, interval=0.2, what=f"{index} searchable")
        except AssertionError:
            raise AssertionError(f"{index} not searchable: {last[0]}")
        out += [(h["_index"], h["_id"], h["_source"]) for h in hits if h]
    return sorted(out, key=lambda x: x[2]["user_id"])


def check_es(node, t0, tag):
    """The error in logs-error-<day>, the info line in logs-<day>, each once,
    with a generated 27-character _id, ECS fields and the normalised trace id."""
    day = time.strftime("%Y.%m.%d", time.gmtime(t0))
    docs = poll(lambda: (lambda d: d if len(d) >= 2 else None)(es_docs(node, t0)), 20,
                what="both documents searchable")
    assert [(i, s["user_id"]) for i, _, s in docs] == [(f"logs-error-{day}", "alice"), (f"logs-{day}", "bob")]
    for (_, _id, src), rec in zip(docs, K8S_RECORDS):
        assert len(_id) == 27, _id  # generate_id: base64url(SHA-1)
        assert src["message"] == rec["message"]
        assert src["log.level"] == rec["level"].lower()             # the ecs filter ran
        assert src["trace.id"] == rec["trace_id"].lower()           # the trace filter ran
        assert src["@timestamp"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(t0)))
        assert src["kubernetes"]["namespace_name"] == "auth"
    return docs


def check_loki(lk, t0):
    """Both lines in Loki with the shipped labels, at their event times; the
    pod and the trace id as structured metadata, not labels."""
    q = '{namespace="auth", app="auth-api", container="auth-api"}'
    ents = poll(lambda: (lambda e: e if len(e) >= 2 else None)(lk.entries(q)), 20, what="both lines in Loki")
    got = {json.loads(line)["user_id"]: (labels, ts, json.loads(line), meta) for labels, ts, line, meta in ents}
    assert sorted(got) == ["alice", "bob"] and len(ents) == 2, ents
    for i, (rec, (labels, ts, line, meta)) in enumerate(zip(K8S_RECORDS, (got["alice"], got["bob"]))):
        assert labels.get("level") == rec["level"].lower(), labels
        assert ts == t0 * 10**9 + i * 1_000_000
        # the query result shows structured metadata among the labels
        assert labels.get("pod") == "auth-api-7d9c" and labels.get("trace_id") == rec["trace_id"].lower(), labels
        assert line["message"] == rec["message"] and "kubernetes" not in line, line
    # ... but they are not indexed labels
    assert lk.label_values("pod") == [] and lk.label_values("trace_id") == []
    assert sorted(lk.label_values("level")) == ["error", "info"]
    return got


@pytest.mark.parametrize("build", WEIR_BUILDS)
def test_shipped_config_runs(built, build, weir, pki, tmp_path, monkeypatch, request):
    """Run weir on the overlay's ConfigMap with the pod's environment, the
    backend's host, credentials and CA being the only things substituted: the
    reference pipeline (trace + ecs filters, errors to their own daily index)
    into a real Elasticsearch over TLS with basic auth, or the loki overlay
    into a real Loki. Probes answer, SIGHUP reloads it, a Fluent Bit-style TLS
    + shared-key sender gets its ack, and on SIGTERM the records are flushed
    (Deployment, emptyDir) or stay in the volume's buffer and are delivered by
    the next start (StatefulSet)."""
    objs = built[build]
    conf = weir_conf(objs)
    env = pod_env(objs, key="k8s-test-shared-key")
    # every ENV['X'] without a default is in the pod's environment
    for name in re.findall(r"ENV\['(\w+)'\]", conf):
        assert name in env, f"weir.conf reads ${name}, the pod does not set it"
    loki = "loki" in conf_values(conf, "@type")
    es_ca = None
    if loki:
        lk = request.getfixturevalue("loki_node")
        env["LOKI_URL"] = lk.url
    else:
        node = request.getfixturevalue("es_node")
        node.ok("DELETE", "/logs-*")
        es_ca = str(tmp_path / "es-ca")
        os.makedirs(es_ca)
        shutil.copy(node.ca, os.path.join(es_ca, "ca.crt"))
        env.update({"ES_HOST": "127.0.0.1", "ES_PORT": str(node.port), "ES_USER": node.user,
                    "ES_PASSWORD": node.password})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    data = str(tmp_path / "data")
    mport = free_port()
    text = local_conf(conf, data, pki, weir.port, mport, es_ca)
    weir.start(text)
    assert poll(lambda: get(mport, "/readyz")[0] == 200, 10, what="/readyz 200")
    assert get(mport, "/healthz")[0] == 200
    assert get(mport, "/api/v1/health") == (200, "ok\n")
    # SIGHUP (certificate rotation, docs/operations.md) re-reads this config
    # in place; the sender below then goes through the reloaded pipeline
    weir.proc.send_signal(signal.SIGHUP)
    assert poll(lambda: 'weir_reloads_total{result="ok"} 1\n' in get(mport, "/metrics")[1], 10,
                what="the SIGHUP reload counted ok")
    assert get(mport, "/readyz")[0] == 200

    t0 = int(time.time()) - 5  # Loki refuses lines much older than now
    tag = fluent_bit_send(weir.port, pki, env["WEIR_SHARED_KEY"], env["POD_NAME"], K8S_RECORDS, t0)
    assert tag == POD_TAG
    weir.stop_ok()  # right after the ack
    if env["WEIR_FLUSH_AT_SHUTDOWN"] == "false":
        # the volume keeps what was not flushed; the next start (same claim)
        # recovers and delivers it
        bufdir = os.path.join(data, "buffer")
        left = [f for _, _, fs in os.walk(bufdir) for f in fs if f.endswith(".chunk")]
        delivered = es_docs(node, t0) if not loki else []
        assert left or len(delivered) == 2, "neither delivered nor kept in the buffer"
        weir.start(text)
        check = check_loki(lk, t0) if loki else check_es(node, t0, tag)
        weir.stop_ok()
    else:
        # the Deployment's emptyDir: everything was flushed before exit
        check = check_loki(lk, t0) if loki else check_es(node, t0, tag)
    assert check
    # nothing refused, nothing dead-lettered
    assert not os.path.exists(os.path.join(data, "out", "error")) or not os.listdir(os.path.join(data, "out"))
    assert not os.path.exists(os.path.join(data, "dead-letter")) or not os.listdir(os.path.join(data, "dead-letter"))


def test_phase2_overlay(built, tmp_path):
    """overlays/phase2: the forward tier (base's Deployment) produces to Kafka,
    keyed by saga id, and no longer writes to Elasticsearch; the consumer
    tier (Deployment weir-consumer, several replicas) runs the shipped Phase 2
    example unchanged (the ConfigMap's copy is the file in config/examples)
    plus the metrics endpoint its probes use; its references resolve, the
    forward tier's Service, PDB and NetworkPolicy do not select it, its own
    PDB does; and its configuration passes weir --dry-run."""
    objs = built["overlays/phase2"]
    deps = {d["metadata"]["name"]: d for d in find(objs, "Deployment")}
    assert set(deps) == {"weir", "weir-consumer"}
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}

    # the forward tier: base's pod, its output now Kafka
    fwd_pod = deps["weir"]["spec"]["template"]
    fwd_conf = weir_conf([o for o in objs if o["kind"] != "Deployment" or o["metadata"]["name"] == "weir"])
    assert "@type kafka2" in fwd_conf and "@type elasticsearch" not in fwd_conf
    assert conf_values(fwd_conf, "message_key_key") == ["saga_id"]
    assert conf_values(fwd_conf, "default_topic") == ["app-logs"]
    fenv = {e["name"] for e in fwd_pod["spec"]["containers"][0]["env"]}
    assert "KAFKA_BROKERS" in fenv and not fenv & {"ES_HOST", "ES_PASSWORD"}

    # the consumer tier
    d = deps["weir-consumer"]
    assert d["spec"]["replicas"] >= 2
    pod = d["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert matches(d["spec"]["selector"]["matchLabels"], labels)
    for svc in find(objs, "Service"):
        assert not matches(svc["spec"]["selector"], labels), "a forward Service would send to the consumers"
    assert not matches(one(objs, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"], labels)
    pdbs = {p["metadata"]["name"]: p for p in find(objs, "PodDisruptionBudget")}
    assert not matches(pdbs["weir"]["spec"]["selector"]["matchLabels"], labels)
    assert matches(pdbs["weir-consumer"]["spec"]["selector"]["matchLabels"], labels)
    assert not any(h["spec"]["scaleTargetRef"]["name"] == "weir-consumer" for h in find(objs, "HorizontalPodAutoscaler"))
    spec = pod["spec"]
    (c,) = spec["containers"]
    vols = {v["name"]: v for v in spec["volumes"]}
    for m in c["volumeMounts"]:
        assert m["name"] in vols, m
    for v in vols.values():
        if "configMap" in v:
            assert ("ConfigMap", v["configMap"]["name"]) in names, v
        if "secret" in v:
            assert v["secret"]["secretName"] in EXTERNAL_SECRETS, v
    env = {e["name"]: e for e in c["env"]}
    for e in env.values():
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] in EXTERNAL_SECRETS, e
    assert {"KAFKA_BROKERS", "KAFKA_GROUP", "ES_HOSTS", "ES_CA_FILE", "WEIR_BUFFER_DIR", "SAGA_TIMEOUT"} <= set(env)
    assert env["WEIR_FLUSH_AT_SHUTDOWN"]["value"] == "true" and "emptyDir" in vols["data"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert spec["securityContext"]["runAsNonRoot"] is True and c["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert env["WEIR_BUFFER_DIR"]["value"].startswith(mounts["data"] + "/")
    assert env["ES_CA_FILE"]["value"].startswith(mounts["es-ca"] + "/")

    # the ConfigMap: the example as shipped, included by consumer.conf
    args = c["args"]
    path = args[args.index("-c") + 1]
    assert path.startswith(mounts["config"] + "/")
    cm = one(objs, "ConfigMap", vols["config"]["configMap"]["name"])
    with open(os.path.join(REPO, "config", "examples", "phase2-kafka-to-es.conf")) as f:
        assert cm["data"]["phase2-kafka-to-es.conf"] == f.read(), \
            "k8s/overlays/phase2/phase2-kafka-to-es.conf differs from config/examples/ (copy it)"
    main = cm["data"][path[len(mounts["config"]) + 1:]]
    assert re.search(r"^@include phase2-kafka-to-es.conf$", main, re.M)
    assert "WEIR_METRICS_PORT', '24231'" in main and {p["name"]: p["containerPort"] for p in c["ports"]}["metrics"] == 24231
    # it runs: weir --dry-run on the ConfigMap's files with the Deployment's environment
    for k, v in cm["data"].items():
        (tmp_path / k).write_text(v)
    run_env = {**os.environ, **{k: e["value"] for k, e in env.items() if "value" in e},
               "ES_PASSWORD": "x", "ES_CA_FILE": "/etc/ssl/certs/ca-certificates.crt",
               "WEIR_BUFFER_DIR": str(tmp_path / "buffer")}
    p = subprocess.run([WEIR_BIN, "--dry-run", "-c",
                        str(tmp_path / "consumer.conf")], capture_output=True, text=True, env=run_env, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "(4 sources, 5 outputs)" in p.stdout + p.stderr, p.stdout + p.stderr


def test_loki_overlay_follows_base():
    """overlays/loki's weir.conf is base's up to the outputs: the same
    system, sources and filters (the file says: keep them in step)."""
    def head(path):
        text = open(os.path.join(K8S, path)).read()
        body = [l for l in text.splitlines() if not l.startswith("#")]
        body = "\n".join(body)
        return body[:body.index("<filter kube.**>\n  @type ecs\n</filter>")]
    assert head("base/weir.conf") == head("overlays/loki/weir.conf")


# ----------------------------------------------------------------- fluent-bit --

def parse_upstream(path):
    """Fluent Bit's classic upstream file: [UPSTREAM] name, then [NODE] sections."""
    sections = []
    for n, raw in enumerate(open(path), 1):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        m = re.fullmatch(r"\[(\w+)\]", line.strip())
        if m:
            sections.append((m.group(1), {}))
            continue
        assert raw.startswith((" ", "\t")) and sections, f"{path}:{n}: property outside a section"
        k, v = line.split(None, 1)
        assert k.lower() not in sections[-1][1], f"{path}:{n}: {k} twice"
        sections[-1][1][k.lower()] = v.strip()
    assert sections[0][0] == "UPSTREAM" and set(sections[0][1]) == {"name"}, sections[0]
    assert all(s == "NODE" for s, _ in sections[1:])
    return sections[0][1]["name"], [p for _, p in sections[1:]]


def test_fluent_bit_forwards_to_weir(built):
    import yaml
    fb = built["fluent-bit"]
    ds = one(fb, "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in spec["volumes"]}

    # the config the DaemonSet runs is fluent-bit.yaml, from the ConfigMap
    args = c["args"]
    cfg_path = args[args.index("-c") + 1]
    vol = vols[mounts[os.path.dirname(cfg_path)]]
    cm = one(fb, "ConfigMap", vol["configMap"]["name"])
    raw = cm["data"][os.path.basename(cfg_path)]
    assert raw == open(os.path.join(K8S, "fluent-bit", "fluent-bit.yaml")).read()
    cfg = yaml.safe_load(raw)
    (out,) = cfg["pipeline"]["outputs"]
    assert out["name"] == "forward" and out["match"] == "*"
    assert str(out["retry_limit"]) == "no_limits"  # Fluent Bit's default of 1 would drop chunks
    (inp,) = cfg["pipeline"]["inputs"]
    assert inp["name"] == "tail" and inp["tag"] == "kube.*" and inp["multiline.parser"] == "cri"
    assert "weir-*_logging_*.log" in inp["exclude_path"]  # weir's own logs never loop back
    assert cfg["pipeline"]["filters"][0]["name"] == "kubernetes"
    # in upstream mode these come from the nodes; here they would be ignored
    for k in ("host", "port", "tls", "shared_key", "require_ack_response"):
        assert k not in out, f"{k} belongs in the upstream file's nodes"

    # the upstream file it names is mounted from the Secret built from upstream.conf
    up_path = out["upstream"]
    vol = vols[mounts[os.path.dirname(up_path)]]
    sec = one(fb, "Secret", vol["secret"]["secretName"])
    up_name = os.path.basename(up_path)
    assert up_name == "upstream.conf"
    for fname in ("upstream.conf", "upstream-durable.conf"):
        assert base64.b64decode(sec["data"][fname]).decode() == open(os.path.join(K8S, "fluent-bit", fname)).read()

    base = built["base"]
    svc = one(base, "Service", "weir")
    fwd_port = [p["port"] for p in svc["spec"]["ports"] if p["name"] == "forward"][0]
    dev_key = base64.b64decode(one(built["overlays/dev"], "Secret", "weir-shared-key")["data"]["shared-key"]).decode()
    weir_self = "weir"  # weir's self_hostname is its pod name: weir-*
    ca_dir = [p for p, n in mounts.items() if n == "weir-ca"][0]
    assert vols["weir-ca"]["secret"]["secretName"] == "weir-tls"
    assert [i["key"] for i in vols["weir-ca"]["secret"]["items"]] == ["ca.crt"]

    def check_nodes(nodes):
        assert len(nodes) >= 2, "an upstream list balances over at least two nodes"
        assert len({n["name"] for n in nodes}) == len(nodes)
        for n in nodes:
            assert n["port"] == str(fwd_port)
            assert n["tls"] == "on" and n["tls.verify"] == "on"
            assert n["tls.ca_file"] == f"{ca_dir}/ca.crt"
            assert n["tls.vhost"] == n["host"]  # the name weir's certificate must carry
            assert n["require_ack_response"] == "true"
            assert n["shared_key"] == dev_key  # works with overlays/dev as shipped
            assert n["self_hostname"] and not n["self_hostname"].startswith(weir_self)

    name, nodes = parse_upstream(os.path.join(K8S, "fluent-bit", "upstream.conf"))
    check_nodes(nodes)
    assert {n["host"] for n in nodes} == {f"{svc['metadata']['name']}.{NAMESPACE}.svc.cluster.local"}

    # durable: one node per StatefulSet replica, through its headless Service
    sts = one(built["overlays/durable"], "StatefulSet")
    name, nodes = parse_upstream(os.path.join(K8S, "fluent-bit", "upstream-durable.conf"))
    check_nodes(nodes)
    want = [f"{sts['metadata']['name']}-{i}.{sts['spec']['serviceName']}.{NAMESPACE}.svc.cluster.local"
            for i in range(sts["spec"]["replicas"])]
    assert [n["host"] for n in nodes] == want

    # weir's NetworkPolicy lets these pods in
    np = one(base, "NetworkPolicy")
    pod_labels = ds["spec"]["template"]["metadata"]["labels"]
    assert any(matches(f.get("podSelector", {}).get("matchLabels"), pod_labels)
               for r in np["spec"]["ingress"] for f in r["from"])


def test_upstream_parser_rejects_malformed(tmp_path):
    p = tmp_path / "bad.conf"
    p.write_text("[UPSTREAM]\n    name weir\n[NODE]\nname outside\n")
    with pytest.raises(AssertionError):
        parse_upstream(str(p))
    p.write_text("[UPSTREAM]\n    name weir\n[NODE]\n    host a\n    host b\n")
    with pytest.raises(AssertionError):
        parse_upstream(str(p))


# -------------------------------------------------------------------- grafana --

DASHBOARD_FAMILIES = """
weir_input_records_total weir_input_bytes_total weir_input_requests_total weir_input_connections_total
weir_input_invalid_events_total weir_input_decode_errors_total weir_input_oversize_requests_total
weir_input_acks_total weir_input_group_markers_total weir_input_signals_skipped_total
weir_input_connections_open weir_input_connections_refused_total weir_input_idle_closed_total
weir_input_connections_retired_total
weir_input_limit_exceeded_total weir_input_handshakes_total
weir_output_records_total weir_output_write_errors_total weir_output_failed_records_total
weir_output_queue_bytes weir_output_write_seconds
weir_buffer_appended_records_total weir_buffer_flushed_records_total weir_buffer_retried_flushes_total
weir_buffer_failed_flushes_total weir_buffer_dead_letter_records_total weir_buffer_secondary_records_total
weir_buffer_dropped_chunks_total weir_buffer_dropped_records_total weir_buffer_rejected_batches_total
weir_buffer_recovered_chunks_total weir_buffer_torn_tails_total weir_buffer_corrupt_chunks_total
weir_buffer_bytes weir_buffer_limit_bytes weir_buffer_staged_chunks weir_buffer_queue_length
weir_buffer_flushing_chunks weir_buffer_oldest_chunk_age_seconds weir_buffer_retrying
weir_buffer_retry_count weir_buffer_next_retry_seconds
weir_router_filtered_records_total weir_router_unmatched_records_total weir_router_error_records_total
weir_router_rewritten_records_total
weir_process_resident_memory_bytes weir_process_cpu_seconds_total weir_process_start_time_seconds
weir_build_info weir_reloads_total
weir_memory_budget_bytes weir_memory_in_use_bytes weir_memory_in_use_peak_bytes weir_memory_waits_total
weir_memory_wait_seconds_total
""".split()


def dashboard_metric_names(dash):
    names = set()
    for p in dash["panels"]:
        for t in p.get("targets", []):
            names |= set(re.findall(r"\bweir_[a-z0-9_]+\b", t["expr"]))
    for v in dash["templating"]["list"]:
        q = v.get("query")
        if isinstance(q, dict):
            names |= set(re.findall(r"\bweir_[a-z0-9_]+\b", q["query"]))
    return names


def test_dashboard_queries_metrics_weir_exports(built, weir, tmp_path):
    dash = json.load(open(os.path.join(K8S, "grafana", "weir-dashboard.json")))
    cm = one(built["grafana"], "ConfigMap", "weir-grafana-dashboard")
    assert json.loads(cm["data"]["weir-dashboard.json"]) == dash
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    cells = {}
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]

    # a weir with a monitor source, a buffered output and a little traffic
    mport = free_port()
    weir.start(config(weir.port, f"{tmp_path}/out/r", monitor=mport, monitor_type="prometheus", out_id="out_main",
                      append=None, fmt=None, buffer=f"    @type file\n    path {tmp_path}/buf\n    flush_mode immediate"))
    ch = "dash-1"
    with weir.conn() as c:
        c.send(fwd.packed_forward("kube.a", [entry(et(T0, 0), {"m": 1})], {"chunk": ch}))
        c.expect_ack(ch)
    status, text = get(mport, "/metrics")
    assert status == 200
    exported = set(re.findall(r"^(weir_[a-z0-9_]+)(?:\{| )", text, re.M))  # sample lines only
    used = dashboard_metric_names(dash)
    assert len(used) >= 40, sorted(used)
    missing = used - exported
    assert not missing, f"the dashboard queries metrics weir does not export: {sorted(missing)}"
    # every metric family weir had when the dashboard was made is on it (a family
    # added later does not fail this test; add it to the dashboard and to
    # docs/operations.md)
    for fam in DASHBOARD_FAMILIES:
        assert any(re.fullmatch(rf"{fam}(_bucket|_sum|_count)?", n) for n in exported), f"weir no longer exports {fam}"
        assert any(re.fullmatch(rf"{fam}(_bucket|_sum|_count)?", n) for n in used), f"{fam} is not on the dashboard"


# ------------------------------- the shipped Fluent Bit -> weir -> Elasticsearch --

class FakeKubeApi:
    """The one API call Fluent Bit's kubernetes filter makes,
    GET /api/v1/namespaces/NS/pods/POD, answered from `pods`
    ({(ns, pod): (labels, annotations)}) on 127.0.0.1; 404 for the rest.
    Kubernetes itself is not a peer the suite can run: this stands in for the
    API server's host, as the test substitutes weir's and Elasticsearch's."""

    def __init__(self, pods):
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                parts = self.path.split("?")[0].strip("/").split("/")
                key = (parts[3], parts[5]) if len(parts) == 6 and parts[4] == "pods" else None
                api.requests.append(self.path)
                if key not in pods:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                labels, annotations = pods[key]
                ns, pod = key
                container = pod.rsplit("-", 1)[0]
                body = json.dumps({
                    "kind": "Pod", "apiVersion": "v1",
                    "metadata": {"name": pod, "namespace": ns, "uid": f"uid-{pod}", "labels": labels,
                                 "annotations": annotations},
                    "spec": {"nodeName": "node-1", "containers": [{"name": container, "image": f"{container}:1"}]},
                    "status": {"containerStatuses": [{"name": container, "image": f"{container}:1",
                                                      "imageID": f"sha256:{container}",
                                                      "containerID": "containerd://x"}]}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.requests = []
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def shipped_fluent_bit(tmp, weir_port, http_port, kube_port, pki, key):
    """k8s/fluent-bit's fluent-bit.yaml and upstream.conf with only paths,
    hosts and ports substituted (and the shared key, which the operator puts
    in): the node's directories under tmp, weir on 127.0.0.1 (verified as
    weir.logging.svc.cluster.local, as in the cluster), the API server of
    FakeKubeApi."""
    cfg = open(os.path.join(K8S, "fluent-bit", "fluent-bit.yaml")).read()
    up = open(os.path.join(K8S, "fluent-bit", "upstream.conf")).read()
    subst = [("/var/fluent-bit/state/", f"{tmp}/state/"), ("/var/log/containers/", f"{tmp}/containers/"),
             ("/fluent-bit/etc/weir/", f"{tmp}/etc/"), ("http_listen: 0.0.0.0", "http_listen: 127.0.0.1"),
             ("http_port: 2020", f"http_port: {http_port}"),
             ("kube_tag_prefix: kube.var.log.containers.",
              "kube_tag_prefix: kube." + f"{tmp}/containers/".lstrip("/").replace("/", ".")
              # the API server and the service account's files, which the
              # shipped config leaves at their in-cluster defaults
              + f"\n      kube_url: http://127.0.0.1:{kube_port}"
              + f"\n      kube_token_file: {tmp}/sa/token\n      kube_ca_file: {tmp}/sa/ca.crt")]
    for a, b in subst:
        assert a in cfg, a
        cfg = cfg.replace(a, b)
    for a, b in [("host                 weir.logging.svc.cluster.local", "host                 127.0.0.1"),
                 ("port                 24224", f"port                 {weir_port}"),
                 ("/fluent-bit/etc/weir-tls/ca.crt", os.path.join(pki, "tls.crt")),
                 ("dev-only-shared-key-change-me", key)]:
        assert a in up, a
        up = up.replace(a, b)
    for d in ("state", "containers", "etc", "sa"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    open(os.path.join(tmp, "etc", "upstream.conf"), "w").write(up)
    open(os.path.join(tmp, "sa", "token"), "w").write("test-token\n")
    shutil.copy(os.path.join(pki, "tls.crt"), os.path.join(tmp, "sa", "ca.crt"))
    return cfg


def test_shipped_fluent_bit_through_weir_into_elasticsearch(built, weir, pki, es_node, tmp_path, monkeypatch):
    """The reference pipeline end to end with the programs themselves: the
    real Fluent Bit on k8s/fluent-bit's config tails CRI files (JSON and
    plain lines, a partial line, three pods), adds Kubernetes metadata from
    the API, merges the JSON and forwards over TLS with the shared key and
    acks through the upstream file; weir on k8s/base's config routes into a
    real Elasticsearch. Every record arrives once, in the index its level
    chooses, with its metadata; the shipped exclusions hold (weir's own pod's
    logs, a pod annotated fluentbit.io/exclude)."""
    fb = fluent_bit_or_skip(tmp_path)
    key = "shipped-fb-key-0123456789"
    node = es_node
    node.ok("DELETE", "/logs-*")
    objs = built["base"]
    env = pod_env(objs, key=key)
    es_ca = str(tmp_path / "es-ca")
    os.makedirs(es_ca)
    shutil.copy(node.ca, os.path.join(es_ca, "ca.crt"))
    env.update({"ES_HOST": "127.0.0.1", "ES_PORT": str(node.port), "ES_USER": node.user,
                "ES_PASSWORD": node.password})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    data = str(tmp_path / "data")
    mport = free_port()
    weir.start(local_conf(weir_conf(objs), data, pki, weir.port, mport, es_ca))

    pods = {("auth", "auth-api-7d9c"): ({"app": "auth-api"}, {}),
            ("shop", "cart-5f6b"): ({"app": "cart", "tier": "web"}, {}),
            ("shop", "noisy-1a2b"): ({"app": "noisy"}, {"fluentbit.io/exclude": "true"}),
            ("logging", "weir-0"): ({"app.kubernetes.io/name": "weir"}, {})}
    api = FakeKubeApi(pods)
    try:
        tmp = str(tmp_path / "node")
        cfg = shipped_fluent_bit(tmp, weir.port, free_port(), api.port, pki, key)
        now = int(time.time())

        def ts(i):
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now + i)) + f".{i:03d}123456Z"
        cid = "0123456789abcdef" * 4
        files = {("auth", "auth-api-7d9c"): [], ("shop", "cart-5f6b"): [], ("shop", "noisy-1a2b"): [],
                 ("logging", "weir-0"): []}
        expected = []  # (namespace, pod, level after ecs, message, user)
        levels = ["ERROR", "info", "WARNING", "fatal", "debug"]
        for i in range(40):
            ns, pod = list(files)[i % 2]
            lvl = levels[i % len(levels)]
            msg = f"request {i} h\u00e9llo"
            line = json.dumps({"log.level": lvl, "message": msg, "user_id": f"u{i}",
                               "trace.id": f"{i:032X}"}, ensure_ascii=False, separators=(",", ":"))
            if i % 7 == 3:   # a line the kubelet split in two
                cut = len(line) // 2
                files[(ns, pod)] += [f"{ts(i)} stdout P {line[:cut]}", f"{ts(i)} stdout F {line[cut:]}"]
            else:
                files[(ns, pod)].append(f"{ts(i)} {'stderr' if i % 3 == 0 else 'stdout'} F {line}")
            want = {"ERROR": "error", "WARNING": "warn"}.get(lvl, lvl)
            expected.append((ns, pod, want, msg, f"u{i}"))
        # a plain-text line (no level: the daily index)
        files[("shop", "cart-5f6b")].append(f"{ts(41)} stdout F plain text without a level")
        expected.append(("shop", "cart-5f6b", None, "plain text without a level", None))
        for pod_key in (("shop", "noisy-1a2b"), ("logging", "weir-0")):
            files[pod_key] += [f"{ts(50 + j)} stdout F " + json.dumps({"log.level": "ERROR", "message": "must not arrive"})
                               for j in range(3)]
        # the kubelet's files exist when the DaemonSet starts; the shipped
        # tail reads new lines only (no read_from_head): they are appended
        # once Fluent Bit runs
        paths = {}
        for (ns, pod) in files:
            c = pod.rsplit("-", 1)[0]
            paths[(ns, pod)] = os.path.join(tmp, "containers", f"{pod}_{ns}_{c}-{cid}.log")
            open(paths[(ns, pod)], "w").close()

        cfg_path = os.path.join(tmp, "fluent-bit.yaml")
        open(cfg_path, "w").write(cfg)
        p = subprocess.run([fb.bin, "--dry-run", "-c", cfg_path], capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and "configuration test is successful" in p.stdout + p.stderr, p.stdout + p.stderr

        fb.start(weir.port, text=cfg)
        time.sleep(1)  # its inotify watches are set once the engine runs
        for key, lines in files.items():
            with open(paths[key], "a") as f:
                f.write("".join(l + "\n" for l in lines))
        day = time.strftime("%Y.%m.%d", time.gmtime(now))
        n_err = sum(1 for e in expected if e[2] in ("error", "fatal"))

        def docs():
            got = []
            for index in (f"logs-error-{day}", f"logs-{day}"):
                node.refresh(index)
                st, b = node.req("POST", f"/{index}/_search?ignore_unavailable=true", {"size": 1000})
                if st != 200 or b["_shards"].get("failed"):
                    return None
                got += [(h["_index"], h["_source"]) for h in b["hits"]["hits"]]
            return got if len(got) >= len(expected) else None
        try:
            got = poll(docs, 30, interval=0.5, what=f"{len(expected)} documents in logs-*-{day}")
        except AssertionError:
            raise AssertionError(f"{docs.__name__}: Fluent Bit's log:\n{fb.log()[-4000:]}\nweir's:\n"
                                 + "\n".join(str(l) for l in weir.stderr_lines()[-30:]))
        time.sleep(2)  # anything extra (a duplicate, an excluded pod) would arrive by now
        got = docs()
        fb.stop_ok()
        assert not fb.errors(), fb.errors()
    finally:
        api.close()
        fb.kill_all()
    assert len(got) == len(expected), f"{len(got)} documents for {len(expected)} records"
    by_msg = {}
    for index, src in got:
        msg = src.get("message", src.get("log"))
        assert msg not in by_msg, f"{msg!r} twice"
        by_msg[msg] = (index, src)
    for ns, pod, level, msg, user in expected:
        assert msg in by_msg, f"{msg!r} missing"
        index, src = by_msg[msg]
        want_index = f"logs-error-{day}" if level in ("error", "fatal") else f"logs-{day}"
        assert index == want_index, (msg, index)
        k = src["kubernetes"]
        assert (k["namespace_name"], k["pod_name"]) == (ns, pod)
        assert k["labels"] == pods[(ns, pod)][0] and k["host"] == "node-1"
        assert src.get("log.level") == level, src
        assert src.get("user_id") == user
        if user:
            i = int(user[1:])
            assert src["trace.id"] == f"{i:032x}"  # the trace filter lowercased it
            assert src["@timestamp"].startswith(ts(i)[:19])
    assert sum(1 for i, _ in got if i.startswith("logs-error-")) == n_err
    weir.stop_ok()
