"""Packaging: `make install` (PREFIX, DESTDIR, SYSCONFDIR), the systemd unit
(packaging/weir.service, checked by `systemd-analyze verify`) and the
Dockerfile (no Docker engine here: its package lists are checked against what
weir really links and what the Makefile and scripts/install-deps.sh build
with, on this Debian machine)."""
import os
import re
import shutil
import subprocess

import pytest

import k8s_tools
from conftest import REPO, WEIR_BIN

BUILD_DIR = os.path.dirname(WEIR_BIN)


def make_install(*args):
    """`make install` from the repo against the weir under test, never rebuilding it
    (-o: take WEIR_BIN as up to date)."""
    p = subprocess.run(["make", "--no-print-directory", "-s", "install", f"BUILD={BUILD_DIR}",
                        "-o", WEIR_BIN, *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"make install {args}: {p.stdout}\n{p.stderr}"
    return p


def unit_values(path):
    vals = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            vals.setdefault(k, []).append(v)
    return vals


# ------------------------------------------------------------ make install --

def test_install_prefix_usr_layout(tmp_path):
    dest = str(tmp_path / "root")
    make_install(f"DESTDIR={dest}", "PREFIX=/usr")
    binp = os.path.join(dest, "usr/bin/weir")
    unit = os.path.join(dest, "usr/lib/systemd/system/weir.service")
    conf = os.path.join(dest, "etc/weir/weir.conf")
    for p in (binp, unit, conf, os.path.join(dest, "usr/share/weir/weir.conf"),
              os.path.join(dest, "usr/share/doc/weir/README.md"),
              os.path.join(dest, "usr/share/doc/weir/operations.md"),
              os.path.join(dest, "usr/share/doc/weir/configuration.md")):
        assert os.path.isfile(p), f"{p} not installed"
    assert os.access(binp, os.X_OK)
    assert oct(os.stat(unit).st_mode & 0o777) == "0o644"
    # the installed binary is the one under test and runs
    out = subprocess.run([binp, "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0 and out.stdout.startswith("weir "), out
    with open(binp, "rb") as a, open(WEIR_BIN, "rb") as b:
        assert a.read() == b.read()

    # every path the unit names is where make install put it (with DESTDIR stripped)
    v = unit_values(unit)
    assert not re.search(r"@[A-Z]+@", open(unit).read()), "unsubstituted @VAR@ in the unit"
    assert v["ExecStart"] == ["/usr/bin/weir -c /etc/weir/weir.conf"]
    assert v["ExecStartPre"] == ["/usr/bin/weir --dry-run -c /etc/weir/weir.conf"]
    assert v["EnvironmentFile"] == ["-/etc/weir/weir.env"]
    assert v["Documentation"] == ["file:/usr/share/doc/weir/operations.md"]
    for cmd in v["ExecStart"] + v["ExecStartPre"]:
        exe, *rest = cmd.split()
        assert os.path.isfile(dest + exe)
        assert os.path.isfile(dest + rest[-1])
    assert os.path.isfile(dest + v["Documentation"][0][len("file:"):])

    # the installed sample config is valid for the installed binary
    p = subprocess.run([binp, "--dry-run", "-c", conf], capture_output=True, text=True, timeout=10)
    assert p.returncode == 0, p.stderr + p.stdout
    # and so are the example configs (config/examples/), installed under share/weir/examples
    examples = sorted(os.listdir(os.path.join(REPO, "config", "examples")))
    assert "phase2-kafka-to-es.conf" in examples
    for name in examples:
        ex = os.path.join(dest, "usr/share/weir/examples", name)
        assert os.path.isfile(ex), f"{ex} not installed"
        p = subprocess.run([binp, "--dry-run", "-c", ex], capture_output=True, text=True, timeout=10)
        assert p.returncode == 0, p.stderr + p.stdout


def test_install_keeps_an_edited_config_and_prefix_usr_local(tmp_path):
    dest = str(tmp_path / "root")
    make_install(f"DESTDIR={dest}")  # PREFIX defaults to /usr/local
    conf = os.path.join(dest, "usr/local/etc/weir/weir.conf")
    unit = os.path.join(dest, "usr/local/lib/systemd/system/weir.service")
    assert os.path.isfile(os.path.join(dest, "usr/local/bin/weir"))
    assert unit_values(unit)["ExecStart"] == ["/usr/local/bin/weir -c /usr/local/etc/weir/weir.conf"]
    with open(conf, "a") as f:
        f.write("# edited by the operator\n")
    make_install(f"DESTDIR={dest}")
    assert open(conf).read().endswith("# edited by the operator\n"), "make install overwrote weir.conf"
    # SYSTEMDUNITDIR and SYSCONFDIR can be overridden
    make_install(f"DESTDIR={dest}", "PREFIX=/opt/weir", "SYSCONFDIR=/etc/opt/weir",
                 "SYSTEMDUNITDIR=/etc/systemd/system")
    v = unit_values(os.path.join(dest, "etc/systemd/system/weir.service"))
    assert v["ExecStart"] == ["/opt/weir/bin/weir -c /etc/opt/weir/weir/weir.conf"]
    assert os.path.isfile(os.path.join(dest, "etc/opt/weir/weir/weir.conf"))


# ------------------------------------------------------------ systemd unit --

@pytest.fixture
def systemd_analyze():
    exe = shutil.which("systemd-analyze")
    if not exe:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    return exe


def verify(exe, unit):
    p = subprocess.run([exe, "verify", unit], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice"))
    return p.returncode, (p.stdout + p.stderr).strip()


def test_systemd_unit_verifies(tmp_path, systemd_analyze):
    """Installed without DESTDIR under a temporary PREFIX, so that the unit's
    ExecStart really exists for `systemd-analyze verify`; any warning about the
    unit (unknown key, bad value) fails the test."""
    root = str(tmp_path / "root")
    make_install(f"PREFIX={root}/usr", f"SYSCONFDIR={root}/etc")
    unit = os.path.join(root, "usr/lib/systemd/system/weir.service")
    rc, out = verify(systemd_analyze, unit)
    assert rc == 0 and "weir.service" not in out, out
    v = unit_values(unit)
    assert v["DynamicUser"] == ["yes"] and v["StateDirectory"] == ["weir"]
    assert v["WorkingDirectory"] == ["/var/lib/weir"]
    assert v["KillSignal"] == ["SIGTERM"]
    assert v["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # SIGHUP: reload
    # the sample's shutdown_timeout fits in the stop timeout
    conf = open(os.path.join(root, "etc/weir/weir.conf")).read()
    st = int(re.search(r"^\s*shutdown_timeout (\d+)s", conf, re.M).group(1))
    assert int(v["TimeoutStopSec"][0]) > st
    # every writable path of the sample config is under the state directory
    for m in re.finditer(r"^\s*(?:path|dead_letter_path) (\S+)", conf, re.M):
        assert m.group(1).startswith("/var/lib/weir/"), m.group(0)

    # the checker is live: a unit with an unknown key and one with a missing
    # binary are reported
    bad = tmp_path / "bad.service"
    bad.write_text(open(unit).read().replace("LimitNOFILE=", "LimitNOFLIE="))
    rc, out = verify(systemd_analyze, str(bad))
    assert "Unknown key" in out and "LimitNOFLIE" in out, out
    bad.write_text(open(unit).read().replace(f"ExecStart={root}/usr/bin/weir", "ExecStart=/nonexistent/weir"))
    rc, out = verify(systemd_analyze, str(bad))
    assert rc != 0 and "/nonexistent/weir" in out, out


# ------------------------------------------------------------------ Docker --

def dockerfile_stages():
    """[(FROM line, [apt packages installed], text)] per stage of ./Dockerfile."""
    text = open(os.path.join(REPO, "Dockerfile")).read()
    text = re.sub(r"\\\n", " ", text)  # join continuation lines
    stages = []
    for chunk in re.split(r"(?m)^(?=FROM )", text):
        if not chunk.startswith("FROM "):
            continue
        pkgs = []
        for m in re.finditer(r"apt-get install ([^&\n]*)", chunk):
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
        stages.append((chunk.splitlines()[0], pkgs, chunk))
    return stages


def dpkg_owner(path):
    """The Debian package that owns path (tries the /lib and /usr/lib spellings: usrmerge)."""
    real = os.path.realpath(path)
    cands = [real]
    if real.startswith("/usr/lib/"):
        cands.append(real[len("/usr"):])
    elif real.startswith("/lib/"):
        cands.append("/usr" + real)
    for c in cands:
        p = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
        if p.returncode == 0:
            return p.stdout.split(":")[0].strip()
    raise AssertionError(f"no Debian package owns {path}")


def makefile_pkgs():
    m = re.search(r"^PKGS\s*:=\s*(.*)$", open(os.path.join(REPO, "Makefile")).read(), re.M)
    return m.group(1).split()


def needed_libs(binary):
    """{soname: path} of the DT_NEEDED libraries of binary, resolved by ldd."""
    dyn = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dyn)
    ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    where = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd, re.M))
    return {n: where[n] for n in needed}


@pytest.fixture(scope="module")
def debian():
    if not shutil.which("dpkg") or not shutil.which("pkg-config"):
        pytest.skip("needs dpkg and pkg-config (a Debian machine)")
    osr = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', open("/etc/os-release").read(), re.M))
    if osr.get("ID") != "debian":
        pytest.skip("the package lists are checked on Debian only")
    return osr


def test_dockerfile_is_multistage_nonroot_and_matches_this_debian(debian):
    stages = dockerfile_stages()
    assert len(stages) == 2, [s[0] for s in stages]
    (b_from, b_pkgs, b_text), (r_from, r_pkgs, r_text) = stages
    release = re.search(r"^ARG DEBIAN_RELEASE=(\S+)$", open(os.path.join(REPO, "Dockerfile")).read(), re.M).group(1)
    assert release == debian["VERSION_CODENAME"], "the image's Debian is not the one tested here"
    assert b_from == "FROM debian:${DEBIAN_RELEASE}-slim AS build"
    assert r_from == "FROM debian:${DEBIAN_RELEASE}-slim"
    # runtime: no compilers or headers, only the built binary from the build stage
    assert not [p for p in r_pkgs if p.endswith("-dev") or p in ("build-essential", "pkg-config")], r_pkgs
    assert "COPY --from=build /stage/usr/bin/weir /usr/bin/weir" in r_text
    # non-root, with the same uid as the Kubernetes manifests
    user = re.search(r"^USER (\d+):(\d+)$", r_text, re.M)
    assert user and int(user.group(1)) != 0
    k8s_tools.ensure()
    import yaml
    deploy = yaml.safe_load(open(os.path.join(REPO, "k8s/base/deployment.yaml")))
    sc = deploy["spec"]["template"]["spec"]["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"]) == (int(user.group(1)), int(user.group(2)))
    assert "--uid 10001" in r_text and "--gid 10001" in r_text
    # read-only-root friendly: everything writable is the volume, which is the
    # working directory and the one the sample config writes to
    assert 'VOLUME ["/var/lib/weir"]' in r_text and "WORKDIR /var/lib/weir" in r_text
    conf = open(os.path.join(REPO, "packaging/weir.conf")).read()
    assert "COPY packaging/weir.conf /etc/weir/weir.conf" in r_text
    for m in re.finditer(r"^\s*(?:path|dead_letter_path) (\S+)", conf, re.M):
        assert m.group(1).startswith("/var/lib/weir/"), m.group(0)
    assert re.search(r"^EXPOSE 24224/tcp 24224/udp 24231/tcp$", r_text, re.M)
    assert 'ENTRYPOINT ["/usr/bin/weir"]' in r_text
    # the build stage builds with the Makefile and installs with make install
    assert "make install BUILD=/tmp/build DESTDIR=/stage PREFIX=/usr" in b_text


def test_dockerfile_build_packages_cover_the_makefile(debian):
    """Every -dev package the build needs: the owners of the .pc files of the
    Makefile's PKGS on this machine, and scripts/install-deps.sh's build_pkgs."""
    (_, b_pkgs, _), _ = dockerfile_stages()
    need = {}
    for mod in makefile_pkgs():
        pcdir = subprocess.run(["pkg-config", "--variable=pcfiledir", mod], capture_output=True,
                               text=True).stdout.strip()
        assert pcdir, f"pkg-config does not know {mod}"
        need[mod] = dpkg_owner(os.path.join(pcdir, mod + ".pc"))
    missing = {m: p for m, p in need.items() if p not in b_pkgs}
    assert not missing, f"Dockerfile build stage lacks {missing}"
    deps = open(os.path.join(REPO, "scripts/install-deps.sh")).read()
    build_pkgs = re.search(r'build_pkgs="([^"]*)"', deps).group(1).split()
    assert not set(build_pkgs) - set(b_pkgs), f"install-deps build_pkgs not in the Dockerfile: {set(build_pkgs) - set(b_pkgs)}"


def test_dockerfile_runtime_packages_cover_what_weir_links(debian):
    """The runtime stage installs the package of every library weir itself links
    (DT_NEEDED of the binary under test) and of every -l of the Makefile's PKGS."""
    _, (_, r_pkgs, _) = dockerfile_stages()
    base_image = {"libc6", "libgcc-s1", "libstdc++6"}  # in debian:*-slim
    sanitizer = re.compile(r"^lib(asan|ubsan|lsan|tsan)\.so")
    need = {}
    for soname, path in needed_libs(WEIR_BIN).items():
        if sanitizer.match(soname):
            continue  # the ASan build under test links these; the image ships a release build
        need[soname] = dpkg_owner(path)
    libdir = subprocess.run(["pkg-config", "--variable=libdir", "zlib"], capture_output=True,
                            text=True).stdout.strip()
    for flag in subprocess.run(["pkg-config", "--libs-only-l", *makefile_pkgs()], capture_output=True,
                               text=True, check=True).stdout.split():
        lib = flag[2:]
        so = os.path.join(libdir, f"lib{lib}.so")
        if not os.path.exists(so):
            continue  # e.g. -lpthread, part of libc
        need[f"-l{lib}"] = dpkg_owner(so)
    missing = {k: p for k, p in need.items() if p not in r_pkgs and p not in base_image}
    assert not missing, f"Dockerfile runtime stage lacks {missing}"
    assert "ca-certificates" in r_pkgs  # TLS to backends
