"""The syslog input (Fluentd's in_syslog) and the udp input (in_udp): the
same messages, over UDP and TCP (newline and octet-counting framing), sent
to weir and to a real Fluentd 1.16 give the same records with the same tags
and times."""
import glob
import json
import os
import socket
import ssl
import time

import pytest

from conftest import free_port, poll
from peer_fluentd import fluentd_or_skip

NO_FLUENT_LOG = "<label @FLUENT_LOG>\n  <match **>\n    @type null\n  </match>\n</label>\n"

MESSAGES = [
    b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
    b"<13>Feb  5 17:32:18 10.0.0.99 myapp[123]: Use the BFG!",
    b"<30>Dec 24 01:02:03 host1 systemd[1]: Started Session 5 of user root.\r",
    b"<191>Jan  1 00:00:00 host2 nocolon message here",
    b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
    b"[exampleSDID@32473 iut=\"3\" eventSource=\"Application\"] An application event",
    b"<14>1 2024-01-02T03:04:05+01:00 h app 42 - - hello 5424",
    b"<14>1 2024-01-02T03:04:05.123456Z h app 42 m1 [a@1 x=\"y\"][b@2]",
    b"<14>1 2024-01-02T03:04:05Z h app 42 m1 -",
    b"no priority at all",
    b"<999>Oct 11 22:14:15 h x: big pri",
]


def source(name, port, extra, fmt="auto"):
    return (f"<source>\n  @type syslog\n  port {port}\n  bind 127.0.0.1\n  tag {name}\n"
            f"  severity_key sev\n  facility_key fac\n  source_address_key addr\n{extra}"
            f"  <parse>\n    message_format {fmt}\n  </parse>\n</source>\n")


def file_out(path, buffered):
    buf = "  <buffer>\n    flush_mode immediate\n  </buffer>\n" if buffered else ""
    return (f"<match **>\n  @type file\n  path {path}\n  append true\n  <format>\n    @type json\n  </format>\n"
            f"  <inject>\n    time_key _t\n    time_type string\n    time_format %s.%N\n    tag_key _tag\n"
            f"  </inject>\n{buf}</match>\n")


def config(ports, out, buffered):
    u, t, o, ud = ports
    return (source("u", u, "") +
            source("t", t, "  <transport tcp>\n  </transport>\n") +
            source("o", o, "  <transport tcp>\n  </transport>\n  frame_type octet_count\n") +
            f"<source>\n  @type udp\n  port {ud}\n  bind 127.0.0.1\n  tag plain\n  source_address_key addr\n"
            f"  <parse>\n    @type regexp\n    expression /^(?<k>[a-z]+)=(?<v>.*)$/\n  </parse>\n</source>\n" +
            file_out(out, buffered))


def send_all(ports):
    u, t, o, ud = ports
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for m in MESSAGES:
        s.sendto(m + b"\n", ("127.0.0.1", u))
        time.sleep(0.01)
    for m in (b"a=1", b"b=two words\n", b"no match"):
        s.sendto(m, ("127.0.0.1", ud))
    s.close()
    c = socket.create_connection(("127.0.0.1", t))
    c.sendall(b"".join(m + b"\n" for m in MESSAGES))
    c.close()
    c = socket.create_connection(("127.0.0.1", o))
    for m in MESSAGES:  # in pieces: a frame cut in two
        frame = str(len(m)).encode() + b" " + m
        c.sendall(frame[:7])
        time.sleep(0.01)
        c.sendall(frame[7:])
    c.close()


def read_lines(pattern):
    out = []
    for p in sorted(glob.glob(pattern)):
        if os.path.isfile(p) and p.endswith(".log"):
            with open(p) as f:
                out += [json.loads(l) for l in f if l.strip()]
    return out


def normalise(recs):
    now = time.time()
    out = []
    for r in recs:
        r = dict(r)
        tag, t = r.pop("_tag"), float(r.pop("_t"))
        out.append((tag, "now" if abs(t - now) < 120 else round(t, 6), r))
    return sorted(out, key=lambda x: json.dumps(x, sort_keys=True))


@pytest.fixture
def fluentd(tmp_path):
    fd = fluentd_or_skip(tmp_path)
    yield fd
    fd.kill_all()


def weir_and_fluentd(weir, fluentd, tmp_path, want, make_config, send, nports, weir_port_index):
    """The same messages (send) through weir and through Fluentd with the
    same configuration (make_config(ports, out, buffered)); their records,
    normalised."""
    wports = [free_port() for _ in range(nports)]
    weir.start(make_config(wports, tmp_path / "w" / "out", False), port=wports[weir_port_index])
    send(wports)
    poll(lambda: (lambda r: r if len(r) >= want else None)(read_lines(str(tmp_path / "w" / "out*"))),
         what="weir's records")
    fports = [free_port() for _ in range(nports)]
    fluentd.start(make_config(fports, tmp_path / "f" / "out", True) + NO_FLUENT_LOG)
    send(fports)
    poll(lambda: (lambda r: r if len(r) >= want else None)(read_lines(str(tmp_path / "f" / "out*"))),
         timeout=60, what="Fluentd's records")
    time.sleep(0.5)
    fluentd.stop_ok()
    return normalise(read_lines(str(tmp_path / "w" / "out*"))), normalise(read_lines(str(tmp_path / "f" / "out*")))


def test_syslog_like_fluentd(weir, fluentd, tmp_path):
    want = 3 * 9 + 2
    w, f = weir_and_fluentd(weir, fluentd, tmp_path, want, config, send_all, 4, 1)
    assert len(w) == want
    assert w == f
    tags = sorted({x[0] for x in w})
    assert tags == sorted([f"{p}.{t}" for p in "uto" for t in ("auth.crit", "daemon.info", "local4.notice", "local7.debug",
                                                              "user.info", "user.notice", ".debug")] + ["plain"])


# ------------------------------------------------------------------- TLS --

def tls_config(ports, out, buffered, pki, extra=""):
    t, o = ports
    tls = (f"  <transport tls>\n    cert_path {pki['server.pem']}\n    private_key_path {pki['server.key']}\n"
           f"{extra}  </transport>\n")
    return source("t", t, tls) + source("o", o, tls + "  frame_type octet_count\n") + file_out(out, buffered)


def tls_client(port, pki, cert=True):
    ctx = ssl.create_default_context(cafile=pki["ca.pem"])
    if cert:
        ctx.load_cert_chain(pki["client.pem"], pki["client.key"])
    raw = socket.create_connection(("127.0.0.1", port))
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def send_tls(ports, pki):
    t, o = ports
    c = tls_client(t, pki, cert=False)
    c.sendall(b"".join(m + b"\n" for m in MESSAGES))
    c.unwrap()  # close_notify: weir reads what came before it
    c.close()
    c = tls_client(o, pki, cert=False)
    for m in MESSAGES:  # in pieces: a frame cut in two TLS records
        frame = str(len(m)).encode() + b" " + m
        c.sendall(frame[:7])
        time.sleep(0.01)
        c.sendall(frame[7:])
    c.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from pki import make_pki
    return make_pki(tmp_path_factory.mktemp("syslog-pki"))


def test_syslog_tls_like_fluentd(weir, fluentd, tmp_path, pki):
    """<transport tls> (newline and octet-counting framing) gives the same
    records as Fluentd's in_syslog over TLS."""
    want = 2 * 9
    w, f = weir_and_fluentd(weir, fluentd, tmp_path, want, lambda ports, out, buffered: tls_config(
        ports, out, buffered, pki), lambda ports: send_tls(ports, pki), 2, 0)
    assert any("TLS" in l["msg"] and "listening" in l["msg"] for l in weir.stderr_lines())
    assert len(w) == want
    assert w == f


def test_syslog_tls_refuses_what_it_must(weir, tmp_path, pki):
    """client_cert_auth: a client without a certificate, and a client
    speaking plain TCP, are closed with one log line each and counted; a
    client with a certificate signed by ca_path gets through."""
    from helpers import get, metric
    port, mport = free_port(), free_port()
    cfg = (source("t", port, f"  <transport tls>\n    cert_path {pki['server.pem']}\n"
                             f"    private_key_path {pki['server.key']}\n    ca_path {pki['ca.pem']}\n"
                             f"    client_cert_auth true\n  </transport>\n") +
           f"<source>\n  @type monitor_agent\n  bind 127.0.0.1\n  port {mport}\n</source>\n" +
           file_out(tmp_path / "out", False))
    weir.start(cfg, port=port)
    # no client certificate: the handshake fails (TLS 1.3: the client learns it at its first read)
    try:
        c = tls_client(port, pki, cert=False)
        c.sendall(MESSAGES[0] + b"\n")
        c.settimeout(5)
        c.recv(10)
        c.close()
    except (ssl.SSLError, ConnectionError):
        pass
    # plain TCP on the TLS port
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(MESSAGES[1] + b"\n")
    c.settimeout(5)
    try:
        c.recv(100)  # whatever TLS answers (an alert), then the close
    except OSError:
        pass
    c.close()
    c = tls_client(port, pki)
    c.sendall(MESSAGES[5] + b"\n")
    c.unwrap()
    c.close()
    recs = poll(lambda: read_lines(str(tmp_path / "out*")) or None, what="the record of the client with a certificate")
    time.sleep(0.5)
    recs = read_lines(str(tmp_path / "out*"))
    assert [r["message"] for r in recs] == ["hello 5424"], recs
    poll(lambda: metric(get(mport, "/metrics")[1], "weir_syslog_tls_failures_total", source="syslog.0") == 2,
         what="two TLS failures counted")
    lines = [l["msg"] for l in weir.stderr_lines() if "TLS handshake failed" in l.get("msg", "")]
    assert len(lines) == 2, lines
    assert any("certificate" in l for l in lines), lines
