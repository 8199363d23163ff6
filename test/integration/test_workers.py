"""<system> workers 2: parallel senders, every record stored exactly once."""
import base64
import os
import threading

import fwd
from conftest import T0, assert_events
from fwd import et, entry

CONNS, REQUESTS, PER_REQUEST = 4, 10, 25


def test_two_workers_four_parallel_connections(weir):
    weir.start(system="  workers 2")
    errors = []

    def sender(cid):
        try:
            with weir.conn() as c:
                for r in range(REQUESTS):
                    ch = base64.encodebytes(os.urandom(16)).decode()
                    entries = [entry(et(T0, cid * 1000 + r * PER_REQUEST + i),
                                     {"conn": cid, "req": r, "i": i})
                               for i in range(PER_REQUEST)]
                    mode = r % 3
                    if mode == 0:
                        req = fwd.forward(f"w.c{cid}", entries, {"chunk": ch})
                    elif mode == 1:
                        req = fwd.packed_forward(f"w.c{cid}", entries, {"chunk": ch})
                    else:
                        req = fwd.compressed_packed_forward(f"w.c{cid}", entries, {"chunk": ch})
                    c.send(req)
                    c.expect_ack(ch)
        except Exception as e:  # noqa: BLE001
            errors.append(f"conn {cid}: {e!r}")

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    expected = [(f"w.c{cid}", T0, cid * 1000 + r * PER_REQUEST + i, {"conn": cid, "req": r, "i": i})
                for cid in range(CONNS) for r in range(REQUESTS) for i in range(PER_REQUEST)]
    assert_events(weir.read_records(), expected, ordered=False)


def test_two_workers_unacked_requests(weir):
    weir.start(system="  workers 2")
    conns = [weir.conn() for _ in range(4)]
    try:
        for cid, c in enumerate(conns):
            c.send(fwd.message("w.noack", et(T0, cid), {"conn": cid}))
    finally:
        for c in conns:
            c.close()
    recs = weir.wait_records(4)
    assert_events(recs, [("w.noack", T0, cid, {"conn": cid}) for cid in range(4)], ordered=False)
