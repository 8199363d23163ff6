"""Process helpers shared by the real peers the tests start (peer_es.py,
peer_kafka.py, peer_loki.py): each peer runs in its own session
(start_new_session=True), so its whole process group can be stopped."""
import os
import signal
import subprocess


def free_port():
    # conftest's helper (free for TCP and UDP), imported late: benchmarks
    # import the peer modules outside pytest too
    from conftest import free_port as fp
    return fp()


def stop_group(proc, sig=signal.SIGTERM, timeout=30):
    """Send `sig` to proc's process group and wait; SIGKILL the group after
    `timeout` s. Nothing to do when proc is None or has exited."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    except ProcessLookupError:
        pass


def kill_group(proc):
    """SIGKILL proc's process group (a crash, not a shutdown) and reap it."""
    stop_group(proc, signal.SIGKILL, None)


def file_tail(path, n):
    """The last n bytes of a log file as text ("" if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
