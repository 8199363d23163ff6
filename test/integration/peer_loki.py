"""A real Grafana Loki (single binary, filesystem storage) for the loki tests.

The binary comes from scripts/peers/loki.sh (built from the Go module proxy
into ${WEIR_TEST_CACHE:-~/.cache/weir-test}/loki). Every port is a random
free one on 127.0.0.1; the data lives in a tmp dir; `stop()` kills the
process group. Used by test/integration/test_loki.py and bench/loki.sh
(run as a script: `python3 peer_loki.py DIR` prints the HTTP port and runs
until killed).
"""
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from peer_proc import file_tail, free_port, stop_group

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("WEIR_TEST_CACHE") or os.path.expanduser("~/.cache/weir-test")


def loki_binary():
    """Path of the Loki binary, building it (scripts/peers/loki.sh) if needed."""
    p = subprocess.run([os.path.join(REPO, "scripts", "peers", "loki.sh")], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"scripts/peers/loki.sh failed ({p.returncode}): {p.stderr[-3000:]}")
    return p.stdout.strip().splitlines()[-1]


CONFIG = """
auth_enabled: {auth}
server:
  http_listen_address: 127.0.0.1
  http_listen_port: {http}
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: {grpc}
  log_level: warn
  grpc_server_max_recv_msg_size: 104857600
{tls}common:
  instance_addr: 127.0.0.1
  path_prefix: {dir}
  replication_factor: 1
  storage:
    filesystem:
      chunks_directory: {dir}/chunks
      rules_directory: {dir}/rules
  ring:
    instance_addr: 127.0.0.1
    kvstore:
      store: inmemory
memberlist:
  bind_addr: [127.0.0.1]
  bind_port: {memberlist}
  advertise_addr: 127.0.0.1
ingester:
  lifecycler:
    min_ready_duration: 0s
    final_sleep: 0s
  wal:
    enabled: true
    dir: {dir}/wal
    flush_on_shutdown: false
schema_config:
  configs:
    - from: 2020-10-24
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h
limits_config:
  allow_structured_metadata: true
  # labels as sent (Loki 3 adds service_name / detected_level by default;
  # a tenant can turn them back on in the overrides)
  discover_service_name: []
  discover_log_levels: false
  reject_old_samples: true
  reject_old_samples_max_age: 168h
  max_label_names_per_series: 15
  max_line_size: {max_line_size}
  max_line_size_truncate: false
  ingestion_rate_mb: 256
  ingestion_burst_size_mb: 512
  per_stream_rate_limit: 256MB
  per_stream_rate_limit_burst: 512MB
  max_global_streams_per_user: 100000
  max_entries_limit_per_query: 100000
  volume_enabled: false
query_range:
  results_cache:
    cache:
      embedded_cache:
        enabled: false
  cache_results: false
pattern_ingester:
  enabled: false
analytics:
  reporting_enabled: false
compactor:
  working_directory: {dir}/compactor
{runtime}"""


class Loki:
    def __init__(self, workdir, auth=True, max_line_size="256KB", overrides=None, tls=None):
        """overrides: per-tenant limits, the YAML of Loki's runtime config
        file (e.g. "overrides:\n  slow:\n    ingestion_rate_mb: 0.02\n").
        tls: {"cert", "key", "ca", "client_cert", "client_key"} PEM paths:
        HTTPS only, client certificates signed by "ca" required (the API
        calls here present client_cert/client_key)."""
        self.dir = os.path.abspath(workdir)
        os.makedirs(self.dir, exist_ok=True)
        self.http = free_port()
        self.grpc = free_port()
        self.memberlist = free_port()
        self.auth = auth
        self.max_line_size = max_line_size
        self.overrides = overrides
        self.tls = tls
        self.ssl_ctx = None
        if tls:
            self.ssl_ctx = ssl.create_default_context(cafile=tls["ca"])
            self.ssl_ctx.load_cert_chain(tls["client_cert"], tls["client_key"])
        self.proc = None
        self.bin = None
        self.log_path = os.path.join(self.dir, "loki.log")
        self.config_path = os.path.join(self.dir, "loki.yaml")
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.http}"

    def start(self, timeout=90):
        self.bin = self.bin or loki_binary()
        runtime = ""
        if self.overrides:
            path = os.path.join(self.dir, "overrides.yaml")
            with open(path, "w") as f:
                f.write(self.overrides)
            runtime = f"runtime_config:\n  file: {path}\n  period: 1s\n"
        tls = ""
        if self.tls:
            tls = (f"  http_tls_config:\n    cert_file: {self.tls['cert']}\n    key_file: {self.tls['key']}\n"
                   f"    client_auth_type: RequireAndVerifyClientCert\n    client_ca_file: {self.tls['ca']}\n")
        with open(self.config_path, "w") as f:
            f.write(CONFIG.format(auth="true" if self.auth else "false", http=self.http, grpc=self.grpc,
                                  memberlist=self.memberlist, dir=self.dir, max_line_size=self.max_line_size,
                                  runtime=runtime, tls=tls))
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.bin, "-config.file", self.config_path, "-target=all"],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"loki exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/ready", timeout=2, context=self.ssl_ctx) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"loki not ready after {timeout}s: {self.log_tail()}")
            time.sleep(0.2)

    def stop(self, sig=signal.SIGTERM, timeout=30):
        stop_group(self.proc, sig, timeout)
        self.proc = None

    def log_tail(self, n=3000):
        return file_tail(self.log_path, n)

    # ---------------------------------------------------------------- API --

    def _get(self, path, params, tenant):
        url = self.url + path + "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(url)
        if tenant is not None:
            req.add_header("X-Scope-OrgID", tenant)
        with urllib.request.urlopen(req, timeout=30, context=self.ssl_ctx) as r:
            return json.loads(r.read())

    def query_range(self, logql, tenant="fake", start=None, end=None, limit=100000, direction="forward"):
        """Returns the `result` list of /loki/api/v1/query_range."""
        now = time.time()
        params = {"query": logql, "limit": limit, "direction": direction,
                  "start": int((start if start is not None else now - 3600) * 1e9),
                  "end": int((end if end is not None else now + 600) * 1e9)}
        return self._get("/loki/api/v1/query_range", params, tenant)["data"]["result"]

    def entries(self, logql, tenant="fake", **kw):
        """[(labels dict, ts_ns, line, structured metadata dict)] over all streams."""
        out = []
        for s in self.query_range(logql, tenant, **kw):
            for v in s["values"]:
                out.append((s["stream"], int(v[0]), v[1], v[2] if len(v) > 2 else {}))
        return out

    def count(self, logql, tenant="fake", **kw):
        return sum(len(s["values"]) for s in self.query_range(logql, tenant, **kw))

    def label_values(self, name, tenant="fake"):
        now = time.time()
        params = {"start": int((now - 3600) * 1e9), "end": int((now + 600) * 1e9)}
        return self._get(f"/loki/api/v1/label/{name}/values", params, tenant).get("data") or []

    def push_json(self, streams, tenant="fake"):
        """POST a JSON push request directly (for tests of Loki itself)."""
        body = json.dumps({"streams": streams}).encode()
        req = urllib.request.Request(self.url + "/loki/api/v1/push", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        if tenant is not None:
            req.add_header("X-Scope-OrgID", tenant)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.ssl_ctx) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()


if __name__ == "__main__":
    l = Loki(sys.argv[1], auth=len(sys.argv) > 2 and sys.argv[2] == "auth")
    l.start()
    print(l.http, flush=True)
    try:
        signal.sigwait([signal.SIGTERM, signal.SIGINT])
    finally:
        l.stop()
