"""Fan-out with @type copy: each store has its own buffer, so a dead store
does not stop the others until its own buffer is full (then, with
overflow_action block, back-pressure holds everything, as documented)."""
import base64
import os

import fwd
import helpers
from conftest import T0, poll, read_json_lines
from fwd import et, entry


def chunk_id():
    return base64.encodebytes(os.urandom(12)).decode()


def config(port, tmp, live_prefix):
    """app.** copied to two stores: `dead` (never flushes; a small file buffer
    that blocks when full) and `live` (JSON lines at live_prefix)."""
    return helpers.config(port, matches=f"""<match app.**>
  @type copy
  <store>
    @type null
    @id dead
    never_flush true
    <buffer>
      @type file
      path {tmp}/dead-buf
      flush_interval 0.2s
      chunk_limit_size 16k
      total_limit_size 128k
      overflow_action block
      retry_forever true
      retry_wait 0.2s
      retry_max_interval 0.5s
    </buffer>
  </store>
  <store>
    @type file
    @id live
    path {live_prefix}
    append true
    <format>
      @type json
    </format>
    <buffer>
      @type memory
      flush_mode immediate
    </buffer>
  </store>
</match>
""")


def send(conn, seq0, n):
    ch = chunk_id()
    conn.send(fwd.packed_forward("app.x", [entry(et(T0, i), {"seq": i, "pad": "x" * 200})
                                           for i in range(seq0, seq0 + n)], {"chunk": ch}))
    return ch


def test_dead_store_does_not_stop_live_store_until_its_buffer_is_full(weir, tmp_path):
    live = os.path.join(str(tmp_path), "live", "r")
    weir.allow_errors = True
    weir.start(config(weir.port, str(tmp_path), live))
    files = lambda: [os.path.join(os.path.dirname(live), f) for f in sorted(os.listdir(os.path.dirname(live)))] \
        if os.path.isdir(os.path.dirname(live)) else []
    with weir.conn() as c:
        # well under the dead store's 128k limit: every request is acked and the
        # live store gets every record although the other store never flushes
        for k in range(10):
            ch = send(c, k * 20, 20)
            c.expect_ack(ch, timeout=5)
        poll(lambda: len(read_json_lines(files())) == 200, timeout=10, what="200 records in the live store")
        assert [r["seq"] for r in read_json_lines(files())] == list(range(200))
        # now fill the dead store's buffer: acks stop (block), the connection stays open
        acked = 200
        held = None
        for k in range(10, 60):
            ch = send(c, k * 20, 20)
            try:
                c.expect_ack(ch, timeout=1.5)
                acked += 20
            except Exception:
                held = ch
                break
        assert held is not None, "the dead store's full buffer never held an ack"
        assert 200 < acked < 1200
        assert weir.alive()
    # the dead store retried and never lost what it accepted: its chunks are on disk
    chunks = [f for f in os.listdir(os.path.join(str(tmp_path), "dead-buf")) if f.endswith(".chunk")]
    assert chunks
    assert any("retry" in l.get("msg", "") for l in weir.stderr_lines())


def test_store_ignore_error_keeps_acking_when_that_store_refuses(weir, tmp_path):
    """<store ignore_error>: the store's full buffer (throw_exception) refuses
    records, yet the request is acked because the other store took them;
    without ignore_error the same request is not acked."""
    live = os.path.join(str(tmp_path), "live", "r")
    for ignore in (True, False):
        conf = config(weir.port, str(tmp_path), live).replace(
            "overflow_action block", "overflow_action throw_exception")
        if ignore:
            conf = conf.replace("  <store>\n    @type null", "  <store ignore_error>\n    @type null", 1)
        else:
            conf = conf.replace("dead-buf", "dead-buf2")
        weir.allow_errors = True
        weir.start(conf)
        refused = None
        with weir.conn() as c:
            for k in range(40):
                ch = send(c, k * 20, 20)
                try:
                    c.expect_ack(ch, timeout=1.5)
                except Exception:
                    refused = k
                    break
        weir.stop()
        if ignore:
            assert refused is None, f"request {refused} not acked although its store has ignore_error"
        else:
            assert refused is not None, "a store refusing records without ignore_error must withhold the ack"
    assert any("too many data" in l.get("msg", "") for l in weir.stderr_lines())
