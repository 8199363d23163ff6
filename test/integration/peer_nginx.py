"""Debian's nginx (unpacked by scripts/peers/nginx.sh) as the gateway in
front of a real backend, the way Loki's own docs put basic auth or a bearer
token in front of Loki: `location` blocks that check the Authorization
header and proxy_pass to the upstream. reload() swaps the upstream with
`nginx -s reload` (an upstream that is down makes nginx answer 502)."""
import os
import socket
import subprocess
import time

from peer_proc import file_tail, free_port, stop_group

CACHE = os.environ.get("WEIR_TEST_CACHE") or os.path.expanduser("~/.cache/weir-test")
NGINX = os.path.join(CACHE, "nginx", "root", "usr", "sbin", "nginx")


class Nginx:
    def __init__(self, workdir):
        self.dir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.conf = os.path.join(workdir, "nginx.conf")
        for d in ("logs", "tmp"):
            os.makedirs(os.path.join(workdir, d), exist_ok=True)

    def _write(self, upstream, locations, tls=None):
        user = "user root;\n" if os.geteuid() == 0 else ""  # files in pytest's 0700 tmp
        t = os.path.join(self.dir, "tmp")
        with open(self.conf, "w") as f:
            f.write(f"""{user}worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/logs/error.log info;
events {{ worker_connections 256; }}
http {{
  access_log {self.dir}/logs/access.log;
  client_body_temp_path {t}/body; proxy_temp_path {t}/proxy; fastcgi_temp_path {t}/fcgi;
  uwsgi_temp_path {t}/uwsgi; scgi_temp_path {t}/scgi;
  client_max_body_size 64m;
  server {{
    listen 127.0.0.1:{self.port}{" ssl" if tls else ""};
{self._tls(tls)}{locations.replace("UPSTREAM", upstream)}
  }}
}}
""")

    @staticmethod
    def _tls(tls):
        """tls: {cert, key, client_ca (optional: client certificates required)}"""
        if not tls:
            return ""
        out = f"    ssl_certificate {tls['cert']};\n    ssl_certificate_key {tls['key']};\n"
        if tls.get("client_ca"):
            out += f"    ssl_client_certificate {tls['client_ca']};\n    ssl_verify_client on;\n"
        return out

    def start(self, upstream, locations, tls=None):
        """locations: nginx `location` blocks; UPSTREAM stands for `upstream`.
        tls: HTTPS on the listener (see _tls)."""
        if not os.access(NGINX, os.X_OK):
            raise RuntimeError(f"{NGINX} missing: run scripts/peers/nginx.sh (make test-deps)")
        self._write(upstream, locations, tls)
        self.locations, self.tls = locations, tls
        if tls:
            self.url = f"https://127.0.0.1:{self.port}"
        self.log = open(os.path.join(self.dir, "logs", "stderr"), "ab")
        self.proc = subprocess.Popen([NGINX, "-p", self.dir, "-e", f"{self.dir}/logs/error.log", "-c", self.conf],
                                     stdout=self.log, stderr=self.log, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n"
                                   f"{file_tail(os.path.join(self.dir, 'logs', 'error.log'), 2000)}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                time.sleep(0.05)
                continue
            return self
        raise RuntimeError("nginx did not start listening")

    def reload(self, upstream):
        self._write(upstream, self.locations, self.tls)
        subprocess.run([NGINX, "-p", self.dir, "-e", f"{self.dir}/logs/error.log", "-c", self.conf, "-s", "reload"],
                       check=True, capture_output=True)

    def access_statuses(self):
        """HTTP status of each request so far (from the access log), in order."""
        try:
            with open(os.path.join(self.dir, "logs", "access.log")) as f:
                return [int(line.split('"')[2].split()[0]) for line in f if line.count('"') >= 2]
        except OSError:
            return []

    def stop(self):
        stop_group(self.proc)
        self.proc = None
