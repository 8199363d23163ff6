"""Throwaway PKI for TLS tests (openssl): a CA, a server certificate for
localhost/127.0.0.1, a client certificate, an untrusted self-signed client
certificate, the server key encrypted (passphrase s3cret) and an unrelated
key. Returns {file name: path}."""
import subprocess


def make_pki(d, ca_cn="weir test CA"):
    def ossl(*args):
        p = subprocess.run(["openssl", *args], cwd=d, capture_output=True)
        assert p.returncode == 0, f"openssl {args}: {p.stderr.decode()}"

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", f"/CN={ca_cn}")
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        ossl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=weir-{name}")
        ossl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")
    ossl("req", "-x509", *ec, "-keyout", "rogue.key", "-out", "rogue.pem", "-days", "2", "-subj", "/CN=rogue")
    ossl("pkey", "-in", "server.key", "-aes256", "-passout", "pass:s3cret", "-out", "server.enc.key")
    ossl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", "other.key")
    return {p.name: str(p) for p in d.iterdir()}
