"""A real Elasticsearch node (single-node cluster) for weir's Elasticsearch tests.

The node is Maven Central's integ-test-zip distribution (server, modules,
x-pack-core and x-pack-security; scripts/peers/elasticsearch.sh caches it
under ${WEIR_TEST_CACHE:-~/.cache/weir-test}/elasticsearch). Each Node gets a
temporary directory holding a hard-linked copy of the distribution (the cache
may sit under a directory the node's user cannot enter), its own config,
data and logs; it listens on 127.0.0.1 on free ports and runs in its own
process group so stop()/kill() take the JVM down whole. Elasticsearch refuses
to run as root: when the tests run as root the node runs as `nobody`.

The HTTP helpers use urllib only (no client library between the test and
the node).
"""
import base64
import contextlib
import json
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from peer_proc import free_port, kill_group, stop_group

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
HEAP = os.environ.get("WEIR_ES_HEAP", "512m")


def ensure_dist():
    p = subprocess.run([os.path.join(REPO, "scripts", "peers", "elasticsearch.sh")], check=True,
                       capture_output=True, text=True)
    return p.stdout.strip().splitlines()[-1]


def java_home():
    java = shutil.which("java")
    if not java:
        raise RuntimeError("java is not installed (scripts/install-deps.sh --test installs it)")
    return os.path.dirname(os.path.dirname(os.path.realpath(java)))


class Node:
    def __init__(self, settings=None, tls=False, user="weir", password="weir-secret-pw"):
        self.dist = ensure_dist()
        self.dir = tempfile.mkdtemp(prefix="weir-es-")
        os.chmod(self.dir, 0o755)
        self.home = os.path.join(self.dir, "home")
        # hard links: instant, no extra disk; the node never writes into its home
        p = subprocess.run(["cp", "-al", self.dist, self.home], capture_output=True)
        if p.returncode != 0:
            shutil.copytree(self.dist, self.home, symlinks=True)
        self.conf = os.path.join(self.dir, "config")
        shutil.rmtree(self.conf, ignore_errors=True)
        shutil.copytree(os.path.join(self.dist, "config"), self.conf)
        for d in ("data", "logs", "tmp"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        self.port = free_port()
        self.tport = free_port()
        self.tls = tls
        self.user, self.password = (user, password) if tls else (None, None)
        self.scheme = "https" if tls else "http"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = os.path.join(self.dir, "node.out")
        cfg = {
            "cluster.name": "weir-test",
            "node.name": "weir-es",
            "discovery.type": "single-node",
            "network.host": "127.0.0.1",
            "http.port": str(self.port),
            "transport.port": str(self.tport),
            "path.data": os.path.join(self.dir, "data"),
            "path.logs": os.path.join(self.dir, "logs"),
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "action.destructive_requires_name": "false",
            "xpack.security.enabled": "false",
        }
        self.ca = None
        if tls:
            self._make_certs()
            cfg.update({
                "xpack.security.enabled": "true",
                "xpack.security.http.ssl.enabled": "true",
                "xpack.security.http.ssl.key": "certs/node.key",
                "xpack.security.http.ssl.certificate": "certs/node.crt",
                "xpack.security.http.ssl.certificate_authorities": "certs/ca.crt",
                "xpack.security.transport.ssl.enabled": "false",
                "xpack.security.authc.realms.file.file1.order": "0",
            })
        cfg.update(settings or {})
        with open(os.path.join(self.conf, "elasticsearch.yml"), "w") as f:
            f.write("".join(f"{k}: {json.dumps(v) if not isinstance(v, str) else v}\n" for k, v in cfg.items()))
        self._as_user = os.geteuid() == 0
        self._chown()
        if tls:
            self._run_tool("elasticsearch-users", "useradd", self.user, "-p", self.password, "-r", "superuser")
            self._chown()

    # -- setup helpers
    def _env(self):
        return dict(os.environ, ES_JAVA_HOME=java_home(), ES_PATH_CONF=self.conf,
                    ES_TMPDIR=os.path.join(self.dir, "tmp"),
                    ES_JAVA_OPTS=f"-Xms{HEAP} -Xmx{HEAP} -XX:TieredStopAtLevel=1")

    def _cmd(self, *args):
        if self._as_user:
            return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *args]
        return list(args)

    def _chown(self):
        if not self._as_user:
            return
        nobody = pwd.getpwnam("nobody")
        for d in ("config", "data", "logs", "tmp"):
            top = os.path.join(self.dir, d)
            for root, dirs, files in os.walk(top):
                os.chown(root, nobody.pw_uid, nobody.pw_gid)
                for f in files:
                    os.chown(os.path.join(root, f), nobody.pw_uid, nobody.pw_gid)

    def _run_tool(self, tool, *args):
        p = subprocess.run(self._cmd(os.path.join(self.home, "bin", tool), *args), env=self._env(),
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            raise AssertionError(f"{tool} {args} failed ({p.returncode}): {p.stdout[-2000:]} {p.stderr[-2000:]}")
        return p.stdout

    def _make_certs(self):
        """A CA and a node certificate for 127.0.0.1/localhost (openssl)."""
        certs = os.path.join(self.conf, "certs")
        os.makedirs(certs, exist_ok=True)
        ext = os.path.join(certs, "san.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")

        def ossl(*a):
            subprocess.run(["openssl", *a], check=True, capture_output=True, cwd=certs)
        ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=weir-test-ca",
             "-keyout", "ca.key", "-out", "ca.crt")
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "node.key",
             "-out", "node.csr")
        ossl("x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-extfile", "san.ext", "-out", "node.crt")
        self.ca = os.path.join(certs, "ca.crt")

    # -- process
    def start(self, timeout=150):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._cmd(os.path.join(self.home, "bin", "elasticsearch")),
                                     env=self._env(), stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     start_new_session=True, cwd=self.dir)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"elasticsearch exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                st, body = self.req("GET", "/_cluster/health?wait_for_status=yellow&timeout=2s", timeout=5)
                if st == 200 and body.get("status") in ("green", "yellow"):
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"elasticsearch not up after {timeout}s:\n{self.log_tail()}")

    def stop(self, timeout=60):
        stop_group(self.proc, timeout=timeout)
        self.proc = None

    def kill(self):
        kill_group(self.proc)
        self.proc = None

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(l[:400] for l in lines[-n:])
        except OSError:
            return ""

    def pid(self):
        """The JVM's pid (the launcher's child), for CPU accounting."""
        p = subprocess.run(["pgrep", "-g", str(self.proc.pid), "-f", "org.elasticsearch.bootstrap"],
                           capture_output=True, text=True)
        pids = [int(x) for x in p.stdout.split()]
        return pids[0] if pids else None

    # -- HTTP
    def req(self, method, path, body=None, timeout=30, ndjson=False):
        """(status, parsed JSON body or text)."""
        data = None
        headers = {}
        if body is not None:
            if isinstance(body, (dict, list)):
                data = json.dumps(body).encode()
            elif isinstance(body, str):
                data = body.encode()
            else:
                data = body
            headers["Content-Type"] = "application/x-ndjson" if ndjson else "application/json"
        if self.user:
            tok = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {tok}"
        r = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        ctx = ssl.create_default_context(cafile=self.ca) if self.tls else None
        try:
            with urllib.request.urlopen(r, timeout=timeout, context=ctx) as resp:
                st, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            st, raw = e.code, e.read()
        try:
            return st, json.loads(raw) if raw else None
        except ValueError:
            return st, raw.decode("utf-8", "replace")

    def ok(self, method, path, body=None, **kw):
        st, b = self.req(method, path, body, **kw)
        assert 200 <= st < 300, f"{method} {path}: HTTP {st}: {b}"
        return b

    def one_shard_default(self):
        """Test indices (t-*, logs-*) get one shard and no replica, so that the
        single node stays green."""
        self.ok("PUT", "/_index_template/weir-test-default", {
            "index_patterns": ["t-*", "logs-*"], "priority": 1,
            "template": {"settings": {"number_of_shards": 1, "number_of_replicas": 0}}})

    def refresh(self, index="_all"):
        st, b = self.req("POST", f"/{index}/_refresh")
        assert st in (200, 404), f"_refresh {index}: HTTP {st}: {b}"

    def count(self, index, query=None):
        st, b = self.req("POST", f"/{index}/_count", {"query": query} if query else None)
        if st in (404, 503):  # no such index yet / its primary is still starting
            return 0
        assert st == 200, f"_count {index}: HTTP {st}: {b}"
        return b["count"]

    def search(self, index, query=None, size=10000, q=None, sort=None):
        body = {"size": size, "track_total_hits": True}
        if query is not None:
            body["query"] = query
        if sort:
            body["sort"] = sort
        path = f"/{index}/_search"
        if q is not None:
            path += "?q=" + urllib.request.quote(q)
        st, b = self.req("POST", path, body)
        if st in (404, 503):  # as count(): no such index yet / its primary is still starting
            return []
        assert st == 200, f"_search {index}: HTTP {st}: {b}"
        return b["hits"]["hits"]

    def delete_index(self, pattern):
        self.req("DELETE", f"/{pattern}")


@contextlib.contextmanager
def running(**kw):
    """A started node (Node(**kw)) whose test indices get one shard and no
    replica, closed afterwards: the body of the modules' fixtures."""
    node = Node(**kw)
    try:
        node.start()
        node.one_shard_default()
        yield node
    finally:
        node.close()
