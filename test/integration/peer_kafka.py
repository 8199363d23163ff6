"""A real Apache Kafka broker (KRaft mode, one node) for weir's Kafka tests.

The jars come from Maven Central (scripts/peers/kafka.sh caches them under
${WEIR_TEST_CACHE:-~/.cache/weir-test}/kafka/libs). The broker listens on
127.0.0.1 on free ports, keeps its data in a temporary directory, and runs
in its own process group so kill()/stop() take the JVM down whole.
kcat (Debian) reads topics back; Kafka's own tools (TopicCommand,
DumpLogSegments) create topics and show how batches were compressed.
"""
import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from peer_proc import file_tail, free_port, kill_group, stop_group

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CACHE = os.environ.get("WEIR_TEST_CACHE") or os.path.expanduser("~/.cache/weir-test")
KAFKA_DIR = os.path.join(CACHE, "kafka")
LIBS = os.path.join(KAFKA_DIR, "libs")
JAVA_OPTS = ["-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "-Djava.awt.headless=true"]

LOG4J = """log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


def ensure_jars():
    subprocess.run([os.path.join(REPO, "scripts", "peers", "kafka.sh")], check=True)


def start_java(cls, args, log_path, log4j, ready, what, timeout=60, classpath=None):
    """Start a JVM running `cls` in its own process group, its output in
    log_path; poll ready() until it is true. The process, or AssertionError
    with the log's tail when it exits or is not ready in time. `classpath`:
    a directory of the test's own classes, searched after Kafka's jars."""
    log = open(log_path, "ab")
    cp = os.path.join(LIBS, "*") + (os.pathsep + classpath if classpath else "")
    proc = subprocess.Popen(["java", *JAVA_OPTS, "-cp", cp,
                             f"-Dlog4j.configuration=file:{log4j}", cls, *args],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited {proc.returncode}:\n{file_tail(log_path, 4000)}")
        if ready():
            return proc
        time.sleep(0.2)
    kill_group(proc)
    raise AssertionError(f"{what} not up after {timeout}s:\n{file_tail(log_path, 4000)}")


class ZooKeeper:
    """A real ZooKeeper server (the zookeeper jars Kafka 3.9 depends on, in the
    same cache), standalone, on a free 127.0.0.1 port: for brokers in
    ZooKeeper mode, whose registrations weir reads (kafka2 `zookeeper`)."""

    def __init__(self):
        ensure_jars()
        self.dir = tempfile.mkdtemp(prefix="weir-zk-")
        self.port = free_port()
        self.connect = f"127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = os.path.join(self.dir, "zk.log")
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        with open(self.cfg, "w") as f:
            f.write(f"tickTime=500\ndataDir={self.dir}/data\nclientPort={self.port}\n"
                    f"clientPortAddress=127.0.0.1\nadmin.enableServer=false\n4lw.commands.whitelist=ruok\n")
        self.log4j = os.path.join(self.dir, "log4j.properties")
        with open(self.log4j, "w") as f:
            f.write(LOG4J)

    def start(self, timeout=60):
        def ready():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as c:
                    c.sendall(b"ruok")
                    return c.recv(4) == b"imok"
            except OSError:
                return False
        self.proc = start_java("org.apache.zookeeper.server.quorum.QuorumPeerMain", [self.cfg], self.log_path,
                               self.log4j, ready, "zookeeper", timeout)
        return self

    def cleanup(self):
        stop_group(self.proc, timeout=20)
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


class Broker:
    def __init__(self, extra_props=None, zookeeper=None, extra_listener=None, classpath=None):
        """KRaft (one node, broker and controller), or with `zookeeper` (a
        connect string) a broker in ZooKeeper mode registered there.
        extra_listener: a security protocol (e.g. "SASL_PLAINTEXT") for a
        second listener of that name on self.extra_port, configured through
        extra_props ("listener.name.<name lowercased>...."); the PLAINTEXT
        one stays for kcat and the admin tools. classpath: see start_java."""
        ensure_jars()
        self.dir = tempfile.mkdtemp(prefix="weir-kafka-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.cport = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.proc = None
        self.log_path = os.path.join(self.dir, "broker.log")
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.cport}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.cport}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": self.data,
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
        }
        if zookeeper:
            for k in ("process.roles", "node.id", "controller.quorum.voters", "controller.listener.names"):
                del props[k]
            props.update({"broker.id": "0", "zookeeper.connect": zookeeper,
                          "listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
                          "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT"})
        self.extra_port = None
        if extra_listener:
            self.extra_port = free_port()
            props["listeners"] += f",{extra_listener}://127.0.0.1:{self.extra_port}"
            props["advertised.listeners"] = (props.get("advertised.listeners", f"PLAINTEXT://127.0.0.1:{self.port}")
                                             + f",{extra_listener}://127.0.0.1:{self.extra_port}")
            props["listener.security.protocol.map"] += f",{extra_listener}:{extra_listener}"
        self.classpath = classpath
        props.update(extra_props or {})
        self.props_path = os.path.join(self.dir, "server.properties")
        with open(self.props_path, "w") as f:
            f.write("".join(f"{k}={v}\n" for k, v in props.items()))
        self.log4j = os.path.join(self.dir, "log4j.properties")
        with open(self.log4j, "w") as f:
            f.write(LOG4J)
        if not zookeeper:
            self._java("kafka.tools.StorageTool", "format", "-t", "weirtestclusterid0001A",
                       "-c", self.props_path, check=True)

    def _java(self, cls, *args, check=False, timeout=120, input=None):
        cmd = ["java", *JAVA_OPTS, "-Xms64m", "-cp", os.path.join(LIBS, "*"),
               f"-Dlog4j.configuration=file:{self.log4j}", cls, *args]
        p = subprocess.run(cmd, capture_output=True, timeout=timeout, input=input)
        if check and p.returncode != 0:
            raise AssertionError(f"{cls} {' '.join(args)} failed ({p.returncode}): "
                                 f"{p.stdout.decode()[-2000:]} {p.stderr.decode()[-2000:]}")
        return p

    # -- process
    def start(self, timeout=60):
        def ready():
            return subprocess.run(["kcat", "-b", self.bootstrap, "-L", "-J", "-m", "2"],
                                  capture_output=True, timeout=10).returncode == 0
        self.proc = start_java("kafka.Kafka", [self.props_path], self.log_path, self.log4j, ready, "kafka broker",
                               timeout, classpath=self.classpath)
        return self

    def kill(self):
        """SIGKILL the broker's process group (a crash, not a shutdown)."""
        kill_group(self.proc)
        self.proc = None

    def stop(self):
        stop_group(self.proc, timeout=20)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=4000):
        return file_tail(self.log_path, n)

    # -- admin
    def create_topic(self, name, partitions=1, config=None):
        args = ["--bootstrap-server", self.bootstrap, "--create", "--if-not-exists", "--topic", name,
                "--partitions", str(partitions), "--replication-factor", "1"]
        for k, v in (config or {}).items():
            args += ["--config", f"{k}={v}"]
        self._java("org.apache.kafka.tools.TopicCommand", *args, check=True)
        # wait until the broker serves its metadata
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            md = self.metadata(name)
            if md and all(p.get("leader", -1) >= 0 for p in md.get("partitions", [])) and \
                    len(md.get("partitions", [])) == partitions:
                return
            time.sleep(0.2)
        raise AssertionError(f"topic {name} has no leader after 20s")

    def metadata(self, topic):
        p = subprocess.run(["kcat", "-b", self.bootstrap, "-L", "-J", "-t", topic],
                           capture_output=True, timeout=20)
        if p.returncode != 0:
            return None
        for t in json.loads(p.stdout).get("topics", []):
            if t.get("topic") == topic and not t.get("error"):
                return t
        return None

    def read(self, topic, timeout=20, expect=None):
        """Every message of `topic` as kcat -J objects (payload decoded later by the test).
        With expect=N, polls until N messages are there (or timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            p = subprocess.run(["kcat", "-b", self.bootstrap, "-C", "-t", topic, "-e", "-q", "-J",
                                "-X", "fetch.wait.max.ms=100"],
                               capture_output=True, timeout=60)
            msgs = [json.loads(l) for l in p.stdout.decode("utf-8", "replace").splitlines() if l.strip()]
            if expect is None or len(msgs) >= expect or time.monotonic() > deadline:
                return msgs
            time.sleep(0.3)

    def produce(self, topic, lines, key_sep=None, headers=None):
        """Produce text lines with kcat (one message per line)."""
        args = ["kcat", "-b", self.bootstrap, "-P", "-t", topic, "-X", "acks=all"]
        if key_sep:
            args += ["-K", key_sep]
        for h in headers or []:
            args += ["-H", h]
        p = subprocess.run(args, input="".join(l + "\n" for l in lines).encode(), capture_output=True,
                           timeout=60)
        assert p.returncode == 0, p.stderr.decode()

    def produce_perf(self, topic, n, payload_file, *props, timeout=120):
        """Produce n messages fast with Kafka's own ProducerPerformance
        (kafka-producer-perf-test): each a line of payload_file picked at
        random; props are producer properties (batch.size=..., ...).
        Returns its output."""
        p = self._java("org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records", str(n),
                       "--throughput", "-1", "--payload-file", payload_file, "--producer-props",
                       f"bootstrap.servers={self.bootstrap}", *props, check=True, timeout=timeout)
        out = p.stdout.decode()
        assert f"{n} records sent" in out, out[-2000:]
        return out

    def committed(self, group, topic):
        """The group's committed offsets for topic's partitions."""
        args = ["--bootstrap-server", self.bootstrap, "--describe", "--group", group]
        p = self._java("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", *args)
        out = {}
        for line in p.stdout.decode().splitlines():
            f = line.split()
            if len(f) >= 4 and f[1] == topic and f[2].isdigit():
                out[int(f[2])] = int(f[3]) if f[3].isdigit() else None
        return out

    def codecs(self, topic, partition=0):
        """Compression codecs of the record batches on disk (DumpLogSegments)."""
        d = os.path.join(self.data, f"{topic}-{partition}")
        codecs = set()
        for fn in sorted(os.listdir(d)):
            if not fn.endswith(".log"):
                continue
            p = self._java("kafka.tools.DumpLogSegments", "--files", os.path.join(d, fn))
            for line in p.stdout.decode().splitlines():
                if "compresscodec:" in line:
                    codecs.add(line.split("compresscodec:")[1].split()[0].strip())
        return codecs


@contextlib.contextmanager
def running():
    """A started broker, cleaned up afterwards: the body of the modules' fixtures."""
    b = Broker()
    try:
        b.start()
        yield b
    finally:
        b.cleanup()
