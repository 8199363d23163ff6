"""bench/benchlib.py: what the Python of the backend benchmarks
(bench/elasticsearch.sh, bench/loki.sh) shares: free ports, the CPU seconds
of processes (/proc), weir's /metrics, waiting until weir listens."""
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


def cpu_of_pgrp(pgid):
    """utime+stime seconds of every process in the process group."""
    tot = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rindex(")") + 2:].split()[2]) == pgid:
            tot += _cpu_ticks(st)
    return tot / HZ


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
