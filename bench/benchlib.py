"""bench/benchlib.py: what the Python of the benchmarks (bench/peers.py,
bench/peers-backends.py, bench/elasticsearch.sh, bench/loki.sh,
bench/phase2.sh) shares: free ports, the processes of a group and their CPU
seconds (/proc), weir's /metrics, waiting until weir listens, writing a
report."""
import shutil
import os
import socket
import time
import urllib.request

HZ = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_ticks(stat):
    """utime+stime of a /proc/PID/stat line (the fields after the command's ')')."""
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def cpu_of_pid(pid):
    """utime+stime seconds of one process."""
    with open(f"/proc/{pid}/stat") as f:
        return _cpu_ticks(f.read()) / HZ


def group_pids(pgid):
    """The pids of the process group's processes."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rindex(")") + 2:].split()[2]) == pgid:
            out.append(int(d))
    return out


def cpu_s(pids):
    """utime+stime seconds of the processes pids (those gone count 0)."""
    tot = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                tot += _cpu_ticks(f.read())
        except OSError:
            continue
    return tot / HZ


def cpu_of_pgrp(pgid):
    """utime+stime seconds of every process in the process group."""
    return cpu_s(group_pids(pgid))


def write_report(lines, md_path, runs_path, tmp, keep, failed, log):
    """Write the report's lines to md_path and print them; keep the run's
    temp dir tmp (logs, rendered configs) when asked or when a run failed.
    The exit code: 1 if a run failed."""
    text = "\n".join(lines) + "\n"
    with open(md_path, "w") as f:
        f.write(text)
    print()
    print(text)
    log(f"results written to {md_path} (per-run JSON: {runs_path})")
    if keep or failed:
        log(f"logs and rendered configs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


def metrics(mport, keep):
    """{series: value} of weir's /metrics on 127.0.0.1:mport, for the sample
    lines (not the # comments) that keep(line) accepts."""
    out = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("#") or not keep(line):
                continue
            name, val = line.rsplit(" ", 1)
            out[name] = float(val)
    return out


def wait_listening(port, tries=200):
    """True once 127.0.0.1:port takes a connection (tries at 50 ms intervals)."""
    for _ in range(tries):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False
