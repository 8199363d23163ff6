#!/usr/bin/env python3
"""bench/peers.py BUILD_DIR: weir side by side with Fluent Bit and Fluentd.

`make bench` runs it after scripts/bench.sh (BENCH_PEERS=0 leaves it out).
Each scenario below that has an equivalent in the peers runs against weir
(BUILD_DIR/weir), Fluent Bit and Fluentd with the same generator
(BUILD_DIR/weir-loadgen, acks on: both peers' in_forward answer
`{"ack": id}`), in interleaved rounds: weir, Fluent Bit, Fluentd, weir, ...
Every run starts the program fresh on its config from bench/ (weir) or
bench/peers/ (the peers), rendered into a temp directory: the port 24299
(forward) and 24298 (the metrics endpoint) become free ports on 127.0.0.1,
the path /tmp/weir-bench becomes the run's directory. weir's configs get a
`<source> @type prometheus` appended (the peers' configs have their own
endpoint: Fluent Bit's http_server, Fluentd's monitor_agent).

One run:
  1. start the program in its own session; wait until the forward port
     accepts and the metrics endpoint answers; 1 s later read its idle RSS;
  2. run weir-loadgen for BENCH_PEER_DURATION seconds while a sampler sums
     VmRSS over every process of the program's process group every 100 ms
     (Fluentd is a supervisor and a worker process);
  3. then poll the program's own counters every 50 ms until it has
     processed everything the generator sent: every record received, and
     every record that no filter dropped written by its outputs (buffers
     flushed), or BENCH_PEER_DRAIN_CAP seconds have passed;
  4. SIGTERM the group (SIGKILL after 30 s).

Reported per run (medians over the rounds in the tables):
  - records/s = the generator's rate (records acked / its elapsed time),
    the same definition as weir's own table (scripts/bench.sh); both
    peers ack like weir, once a request is in their pipeline or buffer;
  - end to end = records / (start of the generator -> everything
    processed), which includes the final flush of buffers and shows a
    program that acks faster than it writes; drain = the seconds after the
    generator's last ack;
  - peak RSS = max(highest sampled group VmRSS, sum of the processes'
    VmHWM), idle RSS, CPU = the group's utime+stime over step 2-3 per
    record sent (us/record).
Writes BUILD_DIR/bench-peers.md (the tables) and BUILD_DIR/bench-peers-runs.jsonl.

Peers: Fluent Bit at $REPO/../shared/peers/fluent-bit/fluent-bit, else
$FLUENT_BIT, else `fluent-bit` on PATH; Fluentd at
$REPO/../shared/peers/fluentd/fluentd, else $FLUENTD, else `fluentd` on
PATH. A peer found nowhere (or that does not run) is skipped with a message.

Environment:
  BENCH_PEERS=0             do nothing (exit 0)
  BENCH_PEER_ROUNDS=2       rounds (each program runs once per round per scenario)
  BENCH_PEER_DURATION=4     seconds the generator sends per run
  BENCH_PEER_ONLY=a,b       only these scenarios
  BENCH_PEER_PROGRAMS=weir,fluent-bit,fluentd   only these programs
  BENCH_PEER_DRAIN_CAP=60   seconds to wait after the generator for the rest
  BENCH_FLUENT_BIT_FLUSH=S  Fluent Bit's service `flush` (default: as in its config)
  BENCH_FLUENTD_WORKERS=1   Fluentd's <system> workers (null scenarios only
                            when > 1: the file buffer and file output paths
                            of the others are per worker in Fluentd)
  BENCH_KEEP=1              keep the temp directory (logs, rendered configs)

Exit status: 0 when every weir run succeeded (peer failures are reported in
the notes), 1 otherwise, 2 on a usage error.
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from benchlib import cpu_s, free_port, group_pids, write_report  # noqa: E402,F401  (peers-backends uses them as P.*)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

LOADGEN_COMMON = "--connections 2 --batch 1000 --record-size 450 --ack"
# name | loadgen arguments | weir config | Fluent Bit config | Fluentd config
SCENARIOS = [
    ("packed", "--mode packed", "bench/null.conf",
     "bench/peers/fluent-bit-null.yaml", "bench/peers/fluentd-null.conf"),
    ("forward", "--mode forward", "bench/null.conf",
     "bench/peers/fluent-bit-null.yaml", "bench/peers/fluentd-null.conf"),
    ("compressed", "--mode compressed", "bench/null.conf",
     "bench/peers/fluent-bit-null.yaml", "bench/peers/fluentd-null.conf"),
    ("message", "--mode message", "bench/null.conf",
     "bench/peers/fluent-bit-null.yaml", "bench/peers/fluentd-null.conf"),
    ("buffer-null", "--mode packed", "bench/buffer-null.conf",
     "bench/peers/fluent-bit-buffer-null.yaml", "bench/peers/fluentd-buffer-null.conf"),
    ("enrich", "--mode packed", "bench/enrich.conf",
     "bench/peers/fluent-bit-enrich.yaml", "bench/peers/fluentd-enrich.conf"),
]
PROGRAMS = ["weir", "fluent-bit", "fluentd"]
LABEL = {"weir": "weir", "fluent-bit": "Fluent Bit", "fluentd": "Fluentd"}


def log(msg):
    print(f"bench-peers: {msg}", file=sys.stderr, flush=True)


def env_num(name, default, kind=float):
    v = os.environ.get(name, "")
    if not v:
        return default
    try:
        x = kind(v)
        if x <= 0:
            raise ValueError
        return x
    except ValueError:
        print(f"bench-peers: {name} must be a positive number, not {v!r}", file=sys.stderr)
        sys.exit(2)


def find_peer(shared_rel, env, name):
    shared = os.path.normpath(os.path.join(ROOT, "..", "shared", "peers", *shared_rel))
    for cand in (shared, os.environ.get(env), shutil.which(name)):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return True
    except OSError:
        return False


def http_get(port, path, timeout=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.read().decode("utf-8", "replace")


# ------------------------------------------------------------ processes --

def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pid):
    # statm's resident field: cheaper than parsing status every 100 ms
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_KB
    except (OSError, IndexError, ValueError):
        return 0


class Sampler(threading.Thread):
    """The highest sum of VmRSS over the process group, every 100 ms."""

    def __init__(self, pgid):
        super().__init__(daemon=True)
        self.pgid = pgid
        self.pids = group_pids(pgid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self):
        n = 0
        while not self.stop.is_set():
            if n % 10 == 9:
                self.pids = group_pids(self.pgid) or self.pids
            self.peak = max(self.peak, sum(rss_kb(p) for p in self.pids))
            n += 1
            self.stop.wait(0.1)


# ------------------------------------------------------------- programs --

def render(src, dst, port, mport, rundir, extra=""):
    text = open(os.path.join(ROOT, src)).read()
    text = re.sub(r"\b24299\b", str(port), text)
    text = re.sub(r"\b24298\b", str(mport), text)
    text = text.replace("/tmp/weir-bench", rundir)
    with open(dst, "w") as f:
        f.write(text + extra)


def prom(text):
    """{metric name: [(labels, value)]} of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if m:
            out.setdefault(m.group(1), []).append((m.group(2) or "", float(m.group(3))))
    return out


class Weir:
    key = "weir"

    def __init__(self, binary):
        self.bin = binary

    def start_args(self, scen, rundir, port, mport):
        conf = os.path.join(rundir, "weir.conf")
        render(scen["weir"], conf, port, mport, rundir,
               f"\n<source>\n  @type prometheus\n  bind 127.0.0.1\n  port {mport}\n</source>\n")
        return [self.bin, "-c", conf]

    def ready(self, logtext):
        return True

    def counters(self, mport):
        m = prom(http_get(mport, "/metrics"))
        ing = sum(v for _, v in m.get("weir_input_records_total", []))
        dropped = sum(v for _, v in m.get("weir_router_filtered_records_total", []))
        flushed = {re.search(r'output="([^"]*)"', l).group(1): v
                   for l, v in m.get("weir_buffer_flushed_records_total", [])}
        delivered = 0
        for l, v in m.get("weir_output_records_total", []):
            out = re.search(r'output="([^"]*)"', l).group(1)
            delivered += flushed.get(out, v)  # buffered: flushed; unbuffered: written
        return {"ingested": ing, "dropped": dropped, "delivered": delivered, "pending": 0}


class FluentBit:
    key = "fluent-bit"

    def __init__(self, binary):
        self.bin = binary

    def start_args(self, scen, rundir, port, mport):
        conf = os.path.join(rundir, "fluent-bit.yaml")
        render(scen["fluent-bit"], conf, port, mport, rundir)
        flush = os.environ.get("BENCH_FLUENT_BIT_FLUSH")
        if flush:
            text = re.sub(r"(?m)^(\s*flush:).*$", rf"\g<1> {flush}", open(conf).read())
            open(conf, "w").write(text)
        os.makedirs(os.path.join(rundir, "out"), exist_ok=True)
        return [self.bin, "-c", conf]

    def ready(self, logtext):
        return "[engine] Shutdown Grace Period" in logtext or "[engine] started" in logtext

    def counters(self, mport):
        m = json.loads(http_get(mport, "/api/v1/metrics"))
        ing = sum(v.get("records", 0) for k, v in m.get("input", {}).items() if k.startswith("forward"))
        # records the filters dropped on purpose (grep); rewrite_tag's drops are
        # the originals of the records it re-emits
        dropped = sum(v.get("drop_records", 0) for k, v in m.get("filter", {}).items()
                      if not k.startswith("rewrite_tag"))
        delivered = sum(v.get("proc_records", 0) for v in m.get("output", {}).values())
        return {"ingested": ing, "dropped": dropped, "delivered": delivered, "pending": 0}


class Fluentd:
    key = "fluentd"

    def __init__(self, binary, workers=1):
        self.bin = binary
        self.workers = workers

    def start_args(self, scen, rundir, port, mport):
        conf = os.path.join(rundir, "fluent.conf")
        render(scen["fluentd"], conf, port, mport, rundir)
        if self.workers > 1:
            text = open(conf).read()
            text = re.sub(r"workers 1\b", f"workers {self.workers}", text)
            open(conf, "w").write(text)
        return [self.bin, "-c", conf]

    def ready(self, logtext):
        return logtext.count("fluentd worker is now running") >= self.workers

    def counters(self, mport):
        ing = dropped = delivered = pending = 0
        for w in range(self.workers):  # monitor_agent listens on port + worker index
            plugins = json.loads(http_get(mport + w, "/api/plugins.json"))["plugins"]
            filters = [p for p in plugins if p.get("plugin_category") == "filter"]
            outs = [p for p in plugins if p.get("plugin_category") == "output"]
            terminal = [p for p in outs if p.get("type") not in ("rewrite_tag_filter", "relabel", "copy")]
            d = sum(p.get("emit_records") or 0 for p in terminal)
            if filters:
                first = filters[0].get("emit_records") or 0  # every filter of bench/ sees every record
                ing += first
                dropped += first - (filters[-1].get("emit_records") or 0)
            else:
                ing += d
            delivered += d
            pending += sum(p.get("buffer_total_queued_size") or 0 for p in terminal)
        return {"ingested": ing, "dropped": dropped, "delivered": delivered, "pending": pending}


# ----------------------------------------------------------------- runs --

class RunError(Exception):
    pass


def logtail(path, n=3000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def stop_group(proc, timeout=30):
    if proc.poll() is not None:
        return proc.returncode, False
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout)
        return proc.returncode, False
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        return proc.returncode, True


RUNNING = []  # processes to stop on SIGINT/SIGTERM


def run_one(prog, scen, rnd, tmp, cfg):
    t_run = time.monotonic()
    rundir = os.path.join(tmp, f"{scen['name']}-{prog.key}-{rnd}")
    os.makedirs(rundir)
    port, mport = free_port(), free_port()
    if isinstance(prog, Fluentd) and prog.workers > 1:
        mport = find_port_block(prog.workers)
    args = prog.start_args(scen, rundir, port, mport)
    logpath = os.path.join(rundir, f"{prog.key}.log")
    with open(logpath, "wb") as lf:
        proc = subprocess.Popen(args, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=rundir, start_new_session=True, env={**os.environ, "TZ": "UTC"})
    RUNNING.append(proc)
    res = {"scenario": scen["name"], "program": prog.key, "round": rnd, "ok": False}
    sampler = None
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RunError(f"exited with status {proc.returncode} at start; log: {logtail(logpath, 1500)}")
            if accepts(port) and prog.ready(logtail(logpath, 200000)):
                try:
                    prog.counters(mport)
                    break
                except (OSError, ValueError, KeyError):
                    pass
            if time.monotonic() > deadline:
                raise RunError(f"not ready after 60 s; log: {logtail(logpath, 1500)}")
            time.sleep(0.05)
        time.sleep(1)
        pids = group_pids(proc.pid)
        res["processes"] = len(pids)
        res["idle_rss_kb"] = sum(rss_kb(p) for p in pids)
        sampler = Sampler(proc.pid)
        sampler.start()
        c0 = cpu_s(pids)
        t0 = time.monotonic()
        lg_args = [cfg["loadgen"], "--host", "127.0.0.1", "--port", str(port),
                   "--duration", str(cfg["duration"]), *scen["args"].split(), "--json"]
        try:
            lg = subprocess.run(lg_args, capture_output=True, text=True, timeout=cfg["duration"] + 120)
        except subprocess.TimeoutExpired:
            raise RunError("weir-loadgen did not finish")
        t_lg = time.monotonic()
        try:
            lj = json.loads(lg.stdout.strip().splitlines()[0])
        except (IndexError, ValueError):
            lj = {}
        res["loadgen"] = lj
        if lg.returncode != 0 or not lj:
            raise RunError(f"weir-loadgen exit {lg.returncode}: {lg.stderr.strip()[-600:]}")
        sent = int(lj.get("records_acked") or lj.get("records_sent"))
        # then the program's own counters every 50 ms until everything sent is
        # processed: all received, all that no filter dropped written out,
        # buffers empty (or the cap)
        c = {"ingested": 0, "dropped": 0, "delivered": 0, "pending": 0}
        done = False
        while True:
            try:
                c = prog.counters(mport)
            except (OSError, ValueError, KeyError):
                pass
            if (c["ingested"] >= sent and c["delivered"] + c["dropped"] >= c["ingested"]
                    and c["pending"] == 0):
                done = True
                break
            if time.monotonic() > t_lg + cfg["drain_cap"] or proc.poll() is not None:
                break
            time.sleep(0.05)
        t_done = time.monotonic()
        pids = group_pids(proc.pid) or pids
        cpu = cpu_s(pids) - c0
        hwm = sum(status_kb(p, "VmHWM") for p in pids)
        sampler.stop.set()
        sampler.join()
        el = t_done - t0
        processed = c["delivered"] + c["dropped"]
        res.update({
            "sent": sent, "counters": c, "complete": done,
            "elapsed_s": round(el, 3), "drain_s": round(t_done - t_lg, 3),
            "records_per_s": lj.get("records_per_s"),
            "end_to_end_per_s": round(processed / el) if el > 0 else 0,
            "ack_p50_ms": lj.get("ack_p50_ms"), "ack_p99_ms": lj.get("ack_p99_ms"),
            "peak_rss_kb": max(sampler.peak, hwm), "cpu_s": round(cpu, 3),
            "cpu_us_per_record": round(cpu / sent * 1e6, 3) if sent else None,
            "cpu_pct": round(100 * cpu / el, 1) if el > 0 else None,
            "loadgen_cpu_s": lj.get("loadgen_cpu_s"),
        })
        if not done:
            lost = c["ingested"] - c["dropped"] - c["delivered"]
            if c["ingested"] < sent:
                res["note"] = (f"received {c['ingested']:.0f} of {sent} acked records within "
                               f"{cfg['drain_cap']:.0f} s of the generator's end")
            else:
                res["note"] = (f"{lost:.0f} of {c['ingested']:.0f} records neither written nor dropped by a "
                               f"filter {cfg['drain_cap']:.0f} s after the generator's end "
                               f"(pending buffer bytes {c['pending']:.0f})")
        else:
            res["ok"] = True
    except RunError as e:
        res["note"] = str(e)
    finally:
        if sampler is not None:
            sampler.stop.set()
        rc, killed = stop_group(proc)
        RUNNING.remove(proc)
        res["exit_status"] = rc
        res["wall_s"] = round(time.monotonic() - t_run, 2)
        if killed:
            res["ok"] = False
            res["note"] = (res.get("note", "") + "; not stopped 30 s after SIGTERM (killed)").lstrip("; ")
        elif rc not in (0, None) and res["ok"]:
            res["note"] = f"exit status {rc} after SIGTERM"
            if prog.key == "weir":
                res["ok"] = False
        # the runs write GBs of JSON and buffer chunks: keep only the logs
        if not cfg["keep"]:
            for name in os.listdir(rundir):
                p = os.path.join(rundir, name)
                if os.path.isdir(p):
                    shutil.rmtree(p, ignore_errors=True)
    return res


def find_port_block(n):
    for _ in range(200):
        base = free_port()
        if base + n < 65536 and all(not accepts(base + i) for i in range(n)):
            return base
    raise RunError("no block of free ports")


# --------------------------------------------------------------- report --

def fmt_rate(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    if v >= 1e3:
        return f"{v / 1e3:.0f} k" if v >= 1e4 else f"{v / 1e3:.1f} k"
    return f"{v:.0f}"


def fmt_mb(kb):
    return "-" if kb is None else f"{kb / 1024:.1f}"


def med(runs, key):
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def main():
    if os.environ.get("BENCH_PEERS", "1") == "0":
        log("BENCH_PEERS=0: skipped")
        return 0
    if len(sys.argv) != 2:
        print("usage: bench/peers.py BUILD_DIR", file=sys.stderr)
        return 2
    build = os.path.abspath(sys.argv[1])
    cfg = {
        "loadgen": os.path.join(build, "weir-loadgen"),
        "duration": env_num("BENCH_PEER_DURATION", 4.0),
        "rounds": env_num("BENCH_PEER_ROUNDS", 2, int),
        "drain_cap": env_num("BENCH_PEER_DRAIN_CAP", 60.0),
        "keep": os.environ.get("BENCH_KEEP", "0") == "1",
    }
    weir_bin = os.path.join(build, "weir")
    for b in (weir_bin, cfg["loadgen"]):
        if not os.access(b, os.X_OK):
            print(f"bench-peers: {b} is missing; run make first", file=sys.stderr)
            return 2
    only = [s for s in os.environ.get("BENCH_PEER_ONLY", "").split(",") if s]
    want = [p for p in os.environ.get("BENCH_PEER_PROGRAMS", ",".join(PROGRAMS)).split(",") if p]
    fd_workers = env_num("BENCH_FLUENTD_WORKERS", 1, int)

    progs = {"weir": Weir(weir_bin)}
    skipped = []
    fb = find_peer(("fluent-bit", "fluent-bit"), "FLUENT_BIT", "fluent-bit")
    fb_version = fd_version = None
    if fb:
        p = subprocess.run([fb, "--version"], capture_output=True, text=True)
        fb_version = (p.stdout.strip().splitlines() or ["?"])[0]
        if p.returncode == 0:
            progs["fluent-bit"] = FluentBit(fb)
        else:
            skipped.append(f"Fluent Bit rows skipped: {fb} --version failed: {p.stderr.strip()[-300:]}")
    else:
        skipped.append("Fluent Bit rows skipped: not found. Put it at ../shared/peers/fluent-bit/fluent-bit "
                       "(next to the repository), set FLUENT_BIT=/path/to/fluent-bit, or put fluent-bit on PATH")
    fd = find_peer(("fluentd", "fluentd"), "FLUENTD", "fluentd")
    if fd:
        p = subprocess.run([fd, "--version"], capture_output=True, text=True)
        fd_version = (p.stdout.strip().splitlines() or ["?"])[0]
        if p.returncode == 0:
            progs["fluentd"] = Fluentd(fd, fd_workers)
        else:
            skipped.append(f"Fluentd rows skipped: {fd} --version failed (Ruby or its gems missing? see "
                           f"../shared/peers/README.md): {p.stderr.strip()[-300:]}")
    else:
        skipped.append("Fluentd rows skipped: not found. Put it at ../shared/peers/fluentd/fluentd (next to "
                       "the repository), set FLUENTD=/path/to/fluentd, or put fluentd on PATH (it needs Ruby: "
                       "scripts/install-deps.sh --test installs Debian's packages)")
    for s in skipped:
        log(s)
    order = [k for k in PROGRAMS if k in progs and k in want]

    scens = []
    for name, args, w, b, d in SCENARIOS:
        if only and name not in only:
            continue
        scens.append({"name": name, "args": f"{args} {LOADGEN_COMMON}", "weir": w, "fluent-bit": b, "fluentd": d})
    if fd_workers > 1:
        log(f"BENCH_FLUENTD_WORKERS={fd_workers}: Fluentd runs the null-output scenarios only")

    tmp = tempfile.mkdtemp(prefix="weir-bench-peers-")
    runs_path = os.path.join(build, "bench-peers-runs.jsonl")
    md_path = os.path.join(build, "bench-peers.md")

    def on_signal(signum, frame):
        for p in list(RUNNING):
            stop_group(p, 10)
        sys.exit(130)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    t_start = time.monotonic()
    load0 = os.getloadavg()
    log(f"{os.cpu_count()} CPUs, load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
        f"{cfg['rounds']} round(s) x {cfg['duration']:g} s per program per scenario; "
        f"programs: {', '.join(order)}; temp dir {tmp}")
    results = {}
    failed = False
    with open(runs_path, "w") as jl:
        for scen in scens:
            for rnd in range(1, cfg["rounds"] + 1):
                for key in order:
                    if key == "fluentd" and fd_workers > 1 and scen["fluentd"].endswith(("-buffer-null.conf", "-enrich.conf")):
                        continue
                    r = run_one(progs[key], scen, rnd, tmp, cfg)
                    r["loadavg_1m"] = round(os.getloadavg()[0], 2)
                    jl.write(json.dumps(r) + "\n")
                    jl.flush()
                    results.setdefault((scen["name"], key), []).append(r)
                    if r["ok"]:
                        log(f"{scen['name']} round {rnd} {LABEL[key]}: {fmt_rate(r['records_per_s'])} records/s "
                            f"(end to end {fmt_rate(r['end_to_end_per_s'])}/s, drain {r['drain_s']:.2f} s), peak RSS "
                            f"{fmt_mb(r['peak_rss_kb'])} MB, {r['cpu_us_per_record']:.2f} us CPU/record")
                    else:
                        log(f"{scen['name']} round {rnd} {LABEL[key]}: FAILED: {r.get('note')}")
                        if key == "weir":
                            failed = True
    load1 = os.getloadavg()
    wall = time.monotonic() - t_start

    def summary(name, key):
        allruns = results.get((name, key), [])
        runs = [r for r in allruns if r.get("records_per_s") is not None]
        ok = [r for r in runs if r["ok"]]
        use = ok or runs
        if not use:
            return None
        return {"rps": med(use, "records_per_s"), "e2e": med(use, "end_to_end_per_s"),
                "rss": med(use, "peak_rss_kb"), "idle": med(use, "idle_rss_kb"),
                "cpu": med(use, "cpu_us_per_record"), "cpu_pct": med(use, "cpu_pct"),
                "drain": med(use, "drain_s"), "p99": med(use, "ack_p99_ms"),
                "ok": len(ok), "n": len(allruns), "complete": bool(ok)}

    def ratio(a, b):
        return a / b if a is not None and b else None

    def fx(v):
        return "-" if v is None else f"{v:.2f}x"

    cpu_model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    peers = [k for k in order if k != "weir"]
    lines = []
    w = lines.append
    w("### weir, Fluent Bit and Fluentd side by side")
    w("")
    w(f"- machine: {os.cpu_count()} CPUs ({cpu_model}), Linux {os.uname().release}; the programs and the "
      f"generator share these CPUs; load average (1 min) {load0[0]:.2f} at the start, {load1[0]:.2f} at the end")
    w(f"- weir commit {commit}; {fb_version or 'Fluent Bit not run'}; {fd_version or 'Fluentd not run'} "
      f"(workers {fd_workers}); {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
    w(f"- {cfg['rounds']} interleaved round(s) (weir, Fluent Bit, Fluentd, weir, ...) of {cfg['duration']:g} s "
      f"of weir-loadgen ({LOADGEN_COMMON}) per program and scenario, each on a fresh process; medians; "
      f"{wall / 60:.1f} min in all")
    w("- records/s: records acked / the generator's elapsed time (as in weir's own table); every run then "
      "waits until the program's own counters show every record received, through its filters and written "
      "by its outputs (buffers flushed); end to end: records / time from the start until then")
    w("- peak RSS: MiB, the whole process group (Fluentd: supervisor + worker); ratios are weir / peer")
    w("")
    head = "| scenario | weir records/s |"
    sep = "|---|---:|"
    for k in peers:
        head += f" {LABEL[k]} records/s | weir / {LABEL[k]} |"
        sep += "---:|---:|"
    head += " weir peak RSS MB |"
    sep += "---:|"
    for k in peers:
        head += f" {LABEL[k]} peak RSS MB | weir / {LABEL[k]} |"
        sep += "---:|---:|"
    w(head)
    w(sep)
    checks = []
    for scen in scens:
        n = scen["name"]
        sw = summary(n, "weir")
        row = f"| {n} | {fmt_rate(sw['rps']) if sw else 'failed'} |"
        rss_cells = f" {fmt_mb(sw['rss']) if sw else '-'} |"
        for k in peers:
            sp = summary(n, k)
            if sp is None:
                row += f" {'failed' if results.get((n, k)) else 'not run'} | - |"
                rss_cells += " - | - |"
                continue
            mark = "" if sp["complete"] else " (incomplete)"
            r = ratio(sw and sw["rps"], sp["rps"])
            m = ratio(sw and sw["rss"], sp["rss"])
            row += f" {fmt_rate(sp['rps'])}{mark} | {fx(r)} |"
            rss_cells += f" {fmt_mb(sp['rss'])} | {fx(m)} |"
            if k == "fluent-bit" and r is not None and m is not None:
                checks.append((n, r, ratio(sw["e2e"], sp["e2e"]), m))
        w(row + rss_cells)
    w("")
    w("Every run (medians): records/s as acked and end to end, seconds from the generator's last ack until "
      "everything was written, peak and idle RSS, the program's CPU (every thread and process) per record "
      "and as % of one core over the run, ack p99.")
    w("")
    w("| scenario | program | records/s | end to end/s | drain s | peak RSS MB | idle RSS MB | CPU us/record | CPU % | ack p99 ms | runs complete |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for scen in scens:
        for k in order:
            if not results.get((scen["name"], k)):
                continue  # not run (BENCH_FLUENTD_WORKERS > 1)
            s = summary(scen["name"], k)
            if s is None:
                w(f"| {scen['name']} | {LABEL[k]} | failed | | | | | | | | 0/{len(results.get((scen['name'], k), []))} |")
                continue
            w(f"| {scen['name']} | {LABEL[k]} | {fmt_rate(s['rps'])} | {fmt_rate(s['e2e'])} | {s['drain']:.2f} | "
              f"{fmt_mb(s['rss'])} | {fmt_mb(s['idle'])} | {s['cpu']:.2f} | {s['cpu_pct']:.0f}% | "
              f"{'-' if s['p99'] is None else round(s['p99'], 1)} | {s['ok']}/{s['n']} |")
    if checks:
        w("")
        w("Issue targets against Fluent Bit (records/s at least 3x, peak RSS at most 1/4):")
        w("")
        for n, r, e, m in checks:
            w(f"- {n}: records/s {r:.2f}x ({'met' if r >= 3 else 'NOT met'}; end to end {fx(e)}), "
              f"peak RSS {m:.2f}x ({'met' if m <= 0.25 else 'NOT met'})")
    notes = [f"{name}, {LABEL[key]}, round {r['round']}: {r['note']}"
             for (name, key), runs in results.items() for r in runs if r.get("note")]
    if notes or skipped:
        w("")
        for x in skipped + notes:
            w(f"- {x}")
    return write_report(lines, md_path, runs_path, tmp, cfg["keep"], failed, log)


if __name__ == "__main__":
    sys.exit(main())
