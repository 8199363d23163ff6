#!/usr/bin/env python3
"""bench/peers-backends.py BUILD_DIR: forward -> file buffer -> Elasticsearch
and -> Loki, weir side by side with Fluent Bit's `es` and `loki` outputs.

`make bench-backends` runs it after bench/elasticsearch.sh and bench/loki.sh
(BENCH_PEERS=0 leaves it out; BENCH_BACKENDS chooses the backends). Fluentd
is not in these rows: the Fluentd kept in ../shared/peers has no
elasticsearch or loki plugin.

Starts one real backend per kind, the same ones the tests use, on 127.0.0.1
(an Elasticsearch node from test/integration/peer_es.py, heap ES_BENCH_HEAP,
default 1g, indices logs-* with 1 shard, no replica, refresh_interval 1s; a
Loki from test/integration/peer_loki.py), then runs, in interleaved rounds
(weir, Fluent Bit, weir, ...), each program fresh on its config from
bench/peers/ (weir-*.conf, fluent-bit-*.yaml; the ports, the index prefix
or run label and the path /tmp/weir-bench are replaced per run) and:

  1. BUILD_DIR/weir-loadgen sends N records (PackedForward, 1000 per
     request, ~450 bytes; Elasticsearch: 2 connections, N=ES_PEER_RECORDS,
     default 100000; Loki: 1 connection and a pool as large as the run, as
     bench/loki.sh: Loki drops exact duplicates, N=LOKI_PEER_RECORDS,
     default 300000) with acks;
  2. polls the backend until all N are searchable: Elasticsearch `_count`
     of the run's indices every 250 ms, without forcing a refresh (what a
     user searching sees: the 1 s refresh is in the time); Loki
     sum(count_over_time({run=...}[3h])) every second;
  3. reports time to searchable (start of the generator -> all N counted;
     a count above N, also 2 s later, marks the run as having duplicates),
     the program's CPU seconds (utime + stime of its process group) over
     that window per document, the backend's CPU per document over the
     same window, and the program's peak RSS (sampled every 100 ms, and
     VmHWM).

Environment: BENCH_PEERS=0 (skip), BENCH_BACKENDS ("elasticsearch loki"),
BENCH_BACKEND_ROUNDS (2), ES_PEER_RECORDS (100000), LOKI_PEER_RECORDS
(300000), BENCH_LOKI_COMPRESS (weir's Loki `compress`; the config has `none`,
as Fluent Bit sends uncompressed JSON; `snappy` is weir's default), ES_BENCH_HEAP (1g), BENCH_PEER_DRAIN_CAP (300: seconds to wait for
searchable), BENCH_KEEP=1 (keep the temp directory). Needs the test venv
(scripts/install-deps.sh --test) and the backends' caches (the tests'
peers). Writes BUILD_DIR/bench-peers-backends.md and
BUILD_DIR/bench-peers-backends-runs.jsonl.
"""
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))
os.environ.setdefault("WEIR_ES_HEAP", os.environ.get("ES_BENCH_HEAP", "1g"))

import benchlib  # noqa: E402
import peers as P  # noqa: E402  bench/peers.py: process, RSS and CPU helpers

LABEL = {"weir": "weir", "fluent-bit": "Fluent Bit"}
CONFIGS = {
    ("elasticsearch", "weir"): "bench/peers/weir-elasticsearch.conf",
    ("elasticsearch", "fluent-bit"): "bench/peers/fluent-bit-elasticsearch.yaml",
    ("loki", "weir"): "bench/peers/weir-loki.conf",
    ("loki", "fluent-bit"): "bench/peers/fluent-bit-loki.yaml",
}


def log(msg):
    print(f"bench-peers-backends: {msg}", file=sys.stderr, flush=True)


class Backend:
    """The running backend: its port, how to count a run's documents."""

    def __init__(self, kind, tmp):
        self.kind = kind
        self.tmp = tmp
        self.obj = None

    def start(self):
        if self.kind == "elasticsearch":
            import peer_es
            self.obj = peer_es.Node(settings={"indices.memory.index_buffer_size": "20%"})
            self.obj.start()
            self.obj.ok("PUT", "/_index_template/bench-peers", {
                "index_patterns": ["logs-*"], "priority": 2, "template": {
                    "settings": {"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "1s"}}})
            self.port = self.obj.port
            self.placeholder = r"\b9200\b"
        else:
            from peer_loki import Loki
            self.obj = Loki(os.path.join(self.tmp, "loki"), auth=True)
            self.obj.start()
            self.port = self.obj.http
            self.placeholder = r"\b3100\b"
        return self

    def pgid(self):
        return self.obj.proc.pid

    def count(self, run):
        if self.kind == "elasticsearch":
            st, b = self.obj.req("GET", f"/logs-{run}-*/_count", timeout=30)
            return b["count"] if st == 200 else 0
        q = f'sum(count_over_time({{run="{run}"}}[3h]))'
        url = self.obj.url + "/loki/api/v1/query?" + urllib.parse.urlencode(
            {"query": q, "time": int((time.time() + 3600) * 1e9)})
        req = urllib.request.Request(url, headers={"X-Scope-OrgID": "bench"})
        with urllib.request.urlopen(req, timeout=60) as r:
            res = json.loads(r.read())["data"]["result"]
        return int(float(res[0]["value"][1])) if res else 0

    def streams(self, run):
        """Loki: how many streams (label sets) the run's lines went to."""
        q = f'count(sum by (namespace, stream) (count_over_time({{run="{run}"}}[3h])))'
        url = self.obj.url + "/loki/api/v1/query?" + urllib.parse.urlencode(
            {"query": q, "time": int((time.time() + 3600) * 1e9)})
        req = urllib.request.Request(url, headers={"X-Scope-OrgID": "bench"})
        with urllib.request.urlopen(req, timeout=60) as r:
            res = json.loads(r.read())["data"]["result"]
        return int(float(res[0]["value"][1])) if res else 0

    def stop(self):
        if self.obj is None:
            return
        if self.kind == "elasticsearch":
            self.obj.close()
        else:
            self.obj.stop()
        self.obj = None


def render(kind, key, rundir, port, mport, bport, run):
    text = open(os.path.join(ROOT, CONFIGS[(kind, key)])).read()
    text = re.sub(r"\b24299\b", str(port), text)
    text = re.sub(r"\b24298\b", str(mport), text)
    text = re.sub(r"\b9200\b" if kind == "elasticsearch" else r"\b3100\b", str(bport), text)
    text = text.replace("logs-bench", f"logs-{run}").replace("bench-run", run)
    text = text.replace("/tmp/weir-bench", rundir)
    if kind == "loki" and key == "weir" and os.environ.get("BENCH_LOKI_COMPRESS"):
        text = re.sub(r"(?m)^  compress none$", f"  compress {os.environ['BENCH_LOKI_COMPRESS']}", text)
    path = os.path.join(rundir, os.path.basename(CONFIGS[(kind, key)]))
    with open(path, "w") as f:
        f.write(text)
    return path


def run_one(backend, key, binary, rnd, tmp, cfg):
    kind = backend.kind
    run = f"{key.replace('-', '')}{rnd}-{uuid.uuid4().hex[:6]}"
    rundir = os.path.join(tmp, f"{kind}-{key}-{rnd}")
    os.makedirs(os.path.join(rundir, "buffer"))
    port, mport = P.free_port(), P.free_port()
    conf = render(kind, key, rundir, port, mport, backend.port, run)
    logpath = os.path.join(rundir, f"{key}.log")
    with open(logpath, "wb") as lf:
        proc = subprocess.Popen([binary, "-c", conf], stdout=lf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=rundir, start_new_session=True,
                                env={**os.environ, "TZ": "UTC"})
    P.RUNNING.append(proc)
    n = cfg["records"][kind]
    res = {"backend": kind, "program": key, "round": rnd, "run": run, "records": n, "ok": False}
    sampler = None
    try:
        deadline = time.monotonic() + 60
        while not (P.accepts(port) and (key == "weir" or "[engine] Shutdown Grace" in P.logtail(logpath, 100000))):
            if proc.poll() is not None:
                raise P.RunError(f"exited with status {proc.returncode} at start: {P.logtail(logpath, 1500)}")
            if time.monotonic() > deadline:
                raise P.RunError(f"not ready after 60 s: {P.logtail(logpath, 1500)}")
            time.sleep(0.05)
        time.sleep(1)
        pids = P.group_pids(proc.pid)
        res["idle_rss_kb"] = sum(P.rss_kb(p) for p in pids)
        bpids = P.group_pids(backend.pgid())
        sampler = P.Sampler(proc.pid)
        sampler.start()
        c0, b0, t0 = P.cpu_s(pids), P.cpu_s(bpids), time.monotonic()
        if kind == "elasticsearch":
            args = ["--connections", "2"]
        else:
            args = ["--connections", "1", "--pool", str(min(4096, n // 1000 + 1))]
        lg = subprocess.run([cfg["loadgen"], "--host", "127.0.0.1", "--port", str(port), "--mode", "packed",
                             "--batch", "1000", "--record-size", "450", "--records", str(n), *args, "--json"],
                            capture_output=True, text=True, timeout=cfg["cap"] + 60)
        t_ack = time.monotonic()
        if lg.returncode != 0:
            raise P.RunError(f"weir-loadgen exit {lg.returncode}: {lg.stderr.strip()[-600:]}")
        got = 0
        period = 0.25 if kind == "elasticsearch" else 1.0
        while True:
            try:
                got = backend.count(run)
            except OSError:
                pass
            if got >= n or time.monotonic() - t0 > cfg["cap"] or proc.poll() is not None:
                break
            time.sleep(period)
        t_all = time.monotonic()
        pids = P.group_pids(proc.pid) or pids
        cpu = P.cpu_s(pids) - c0
        bcpu = P.cpu_s(P.group_pids(backend.pgid()) or bpids) - b0
        hwm = sum(P.status_kb(p, "VmHWM") for p in pids)
        sampler.stop.set()
        sampler.join()
        res.update({
            "searchable": got, "acked_s": round(t_ack - t0, 2), "searchable_s": round(t_all - t0, 2),
            "records_per_s": round(got / (t_all - t0)), "cpu_s": round(cpu, 2), "backend_cpu_s": round(bcpu, 2),
            "cpu_us_per_doc": round(cpu / n * 1e6, 2), "backend_cpu_us_per_doc": round(bcpu / n * 1e6, 2),
            "peak_rss_kb": max(sampler.peak, hwm),
        })
        if got >= n:
            # duplicates show up later than the count that ended the wait
            time.sleep(2)
            try:
                got = max(got, backend.count(run))
            except OSError:
                pass
            res["searchable"] = got
        if kind == "loki":
            try:
                res["streams"] = backend.streams(run)
            except OSError:
                pass
        if got == n:
            res["ok"] = True
        else:
            res["note"] = (f"{got} of {n} documents searchable after {t_all - t0:.0f} s"
                           if got < n else f"{got} documents for {n} records sent (duplicates)")
    except P.RunError as e:
        res["note"] = str(e)
    except subprocess.TimeoutExpired:
        res["note"] = "weir-loadgen did not finish"
    finally:
        if sampler is not None:
            sampler.stop.set()
        rc, killed = P.stop_group(proc)
        P.RUNNING.remove(proc)
        res["exit_status"] = rc
        if killed:
            res["note"] = (res.get("note", "") + "; not stopped 30 s after SIGTERM (killed)").lstrip("; ")
            res["ok"] = False
        if not cfg["keep"]:
            shutil.rmtree(os.path.join(rundir, "buffer"), ignore_errors=True)
    return res


def main():
    if os.environ.get("BENCH_PEERS", "1") == "0":
        log("BENCH_PEERS=0: skipped")
        return 0
    if len(sys.argv) != 2:
        print("usage: bench/peers-backends.py BUILD_DIR", file=sys.stderr)
        return 2
    build = os.path.abspath(sys.argv[1])
    cfg = {
        "loadgen": os.path.join(build, "weir-loadgen"),
        "rounds": P.env_num("BENCH_BACKEND_ROUNDS", 2, int),
        "records": {"elasticsearch": P.env_num("ES_PEER_RECORDS", 100000, int),
                    "loki": P.env_num("LOKI_PEER_RECORDS", 300000, int)},
        "cap": P.env_num("BENCH_PEER_DRAIN_CAP", 300.0),
        "keep": os.environ.get("BENCH_KEEP", "0") == "1",
    }
    weir_bin = os.path.join(build, "weir")
    for b in (weir_bin, cfg["loadgen"]):
        if not os.access(b, os.X_OK):
            print(f"bench-peers-backends: {b} is missing; run make first", file=sys.stderr)
            return 2
    kinds = [k for k in os.environ.get("BENCH_BACKENDS", "elasticsearch loki").split()
             if k in ("elasticsearch", "loki")]
    if not kinds:
        log("no Elasticsearch or Loki in BENCH_BACKENDS: nothing to compare")
        return 0
    progs = {"weir": weir_bin}
    skipped = ["Fluentd rows: not run (the Fluentd in ../shared/peers has no elasticsearch or loki plugin)"]
    fb = P.find_peer(("fluent-bit", "fluent-bit"), "FLUENT_BIT", "fluent-bit")
    fb_version = None
    if fb:
        p = subprocess.run([fb, "--version"], capture_output=True, text=True)
        fb_version = (p.stdout.strip().splitlines() or ["?"])[0]
        progs["fluent-bit"] = fb
    else:
        skipped.append("Fluent Bit rows skipped: not found. Put it at ../shared/peers/fluent-bit/fluent-bit "
                       "(next to the repository), set FLUENT_BIT=/path/to/fluent-bit, or put fluent-bit on PATH")
    for s in skipped[1:]:
        log(s)

    tmp = tempfile.mkdtemp(prefix="weir-bench-peers-backends-")
    backends = []

    def on_signal(signum, frame):
        for p in list(P.RUNNING):
            P.stop_group(p, 10)
        for b in backends:
            b.stop()
        sys.exit(130)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    load0 = os.getloadavg()
    t_start = time.monotonic()
    results = {}
    failed = False
    runs_path = os.path.join(build, "bench-peers-backends-runs.jsonl")
    try:
        with open(runs_path, "w") as jl:
            for kind in kinds:
                b = Backend(kind, tmp)
                backends.append(b)
                t0 = time.monotonic()
                b.start()
                log(f"{kind} up in {time.monotonic() - t0:.1f} s on port {b.port}")
                for rnd in range(1, cfg["rounds"] + 1):
                    for key in [k for k in ("weir", "fluent-bit") if k in progs]:
                        r = run_one(b, key, progs[key], rnd, tmp, cfg)
                        r["loadavg_1m"] = round(os.getloadavg()[0], 2)
                        jl.write(json.dumps(r) + "\n")
                        jl.flush()
                        results.setdefault((kind, key), []).append(r)
                        if r["ok"]:
                            log(f"{kind} round {rnd} {LABEL[key]}: searchable after {r['searchable_s']} s, "
                                f"{r['cpu_us_per_doc']} us CPU/doc (backend {r['backend_cpu_us_per_doc']}), "
                                f"peak RSS {P.fmt_mb(r['peak_rss_kb'])} MB")
                        else:
                            log(f"{kind} round {rnd} {LABEL[key]}: FAILED: {r.get('note')}")
                            failed = failed or key == "weir"
                b.stop()
    finally:
        for b in backends:
            b.stop()
    load1 = os.getloadavg()

    def med(runs, k):
        v = [r[k] for r in runs if r.get(k) is not None]
        return statistics.median(v) if v else None

    lines = []
    w = lines.append
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    w("### forward -> file buffer -> Elasticsearch / Loki: weir and Fluent Bit")
    w("")
    w(f"- machine: {os.cpu_count()} CPUs, Linux {os.uname().release}; program, backend and generator share "
      f"them; load average (1 min) {load0[0]:.2f} at the start, {load1[0]:.2f} at the end")
    w(f"- weir commit {commit}; {fb_version or 'Fluent Bit not run'}; "
      f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; {cfg['rounds']} interleaved round(s), medians; "
      f"{(time.monotonic() - t_start) / 60:.1f} min in all")
    sizes = {"elasticsearch": f"Elasticsearch: {cfg['records']['elasticsearch']} records, 2 connections",
             "loki": f"Loki: {cfg['records']['loki']} records, 1 connection"}
    w(f"- {'; '.join(sizes[k] for k in kinds)}; CPU per document = the program's CPU seconds from "
      "the generator's start until every document was searchable / documents")
    w("")
    w("| backend | program | CPU us/doc | weir / Fluent Bit | time to searchable s | docs/s | backend CPU us/doc | peak RSS MB | weir / Fluent Bit | runs ok |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    checks = []
    for kind in kinds:
        ww = [r for r in results.get((kind, "weir"), []) if r.get("cpu_us_per_doc") is not None]
        ww = [r for r in ww if r["ok"]] or ww
        for key in [k for k in ("weir", "fluent-bit") if k in progs]:
            rs = [r for r in results.get((kind, key), []) if r.get("cpu_us_per_doc") is not None]
            n_ok = sum(1 for r in results.get((kind, key), []) if r["ok"])
            rs = [r for r in rs if r["ok"]] or rs  # the complete runs, if any
            if not rs:
                w(f"| {kind} | {LABEL[key]} | failed | | | | | | | 0/{len(results.get((kind, key), []))} |")
                continue
            cpu, rss = med(rs, "cpu_us_per_doc"), med(rs, "peak_rss_kb")
            rc = rr = "-"
            if key != "weir" and ww:
                c = med(ww, "cpu_us_per_doc") / cpu
                m = med(ww, "peak_rss_kb") / rss
                rc, rr = f"{c:.2f}x", f"{m:.2f}x"
                checks.append((kind, c, m, med(ww, "searchable_s"), med(rs, "searchable_s")))
            w(f"| {kind} | {LABEL[key]} | {cpu:.2f} | {rc} | {med(rs, 'searchable_s'):.1f} | "
              f"{P.fmt_rate(med(rs, 'records_per_s'))} | {med(rs, 'backend_cpu_us_per_doc'):.2f} | "
              f"{P.fmt_mb(rss)} | {rr} | {n_ok}/{len(results.get((kind, key), []))} |")
    if checks:
        w("")
        w("Issue target: weir's CPU per document at most 1/3 of Fluent Bit's:")
        w("")
        for kind, c, m, ts_w, ts_f in checks:
            w(f"- {kind}: {c:.2f}x ({'met' if c <= 1 / 3 else 'NOT met'}); time to searchable {ts_w:.1f} s "
              f"vs {ts_f:.1f} s; peak RSS {m:.2f}x")
    notes = [f"{kind}, {LABEL[key]}, round {r['round']}: {r['note']}"
             for (kind, key), runs in results.items() for r in runs if r.get("note")]
    w("")
    for x in skipped + notes:
        w(f"- {x}")
    md = os.path.join(build, "bench-peers-backends.md")
    return benchlib.write_report(lines, md, runs_path, tmp, cfg["keep"], failed, log)


if __name__ == "__main__":
    sys.exit(main())
