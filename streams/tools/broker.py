"""A real single-node Apache Kafka (KRaft, combined broker + controller) on 127.0.0.1.

The jars come from Maven Central through ``deploy/kafka/pom.xml`` (Maven copies the broker and a
Log4j2 backend into a cached lib dir once); a start launches ``kafka.Kafka`` with Java 17 and waits
until the broker answers metadata requests. ``streams kafka start|stop|status|reset`` drives a
background broker that keeps its data: it formats ``STREAMS_HOME/kafka-data`` once and every later
start resumes it - cluster id, topics, committed offsets, the tables' changelogs - on the port it
had; only ``streams kafka reset`` wipes it. Tests, the demo and the benchmark start throwaway brokers
on fresh data dirs. When ``STREAMS_BROKER`` is set nothing local is started: everything talks to
that cluster instead.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from streams.contract.topics import MAX_MESSAGE_BYTES
from streams.errors import BrokerError
from streams.kafka.connection import read_state, state_path
from streams.settings import PACKAGE_DIR, Settings

KAFKA_DIR = PACKAGE_DIR.parent / "deploy" / "kafka"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kafka_version() -> str:
    """The Kafka version the project's POM resolves."""
    text = (KAFKA_DIR / "pom.xml").read_text()
    return text.split("<kafka.version>", 1)[1].split("<", 1)[0]


def resolve_jars(home: Path) -> Path:
    """Copy the broker's jars from Maven Central into ``home/kafka-<version>/lib`` (once)."""
    lib = home / f"kafka-{kafka_version()}" / "lib"
    if lib.is_dir() and any(lib.glob("kafka_2.13-*.jar")):
        return lib
    if shutil.which("mvn") is None:
        raise BrokerError("Maven (`mvn`) is needed to fetch Kafka: install it (apt-get install maven).")
    tmp = lib.with_name("lib.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = ["mvn", "-q", "-B", "-f", str(KAFKA_DIR / "pom.xml"), "dependency:copy-dependencies",
           f"-DoutputDirectory={tmp}"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BrokerError(f"Maven could not resolve Kafka:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    tmp.rename(lib)
    return lib


def server_properties(port: int, controller_port: int, log_dir: Path, extra: dict[str, str],
                      sasl_port: int = 0, sasl_users: dict[str, str] | None = None) -> str:
    """The broker config: one node, replication 1 everywhere, no initial rebalance delay; with
    ``sasl_users``, a second listener on ``sasl_port`` that takes SASL/PLAIN logins."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "8",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "message.max.bytes": str(MAX_MESSAGE_BYTES),
        "log.retention.hours": "168",
    }
    if sasl_users:
        users = " ".join(f'user_{u}="{p}"' for u, p in sasl_users.items())
        props["listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        props["advertised.listeners"] += f",SASL_PLAINTEXT://127.0.0.1:{sasl_port}"
        props["listener.security.protocol.map"] += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
        props["sasl.enabled.mechanisms"] = "PLAIN"
        props["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = (
            f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};")
    props |= extra
    return "".join(f"{k}={v}\n" for k, v in props.items())


def wait_until_ready(bootstrap: str, timeout: float = 90.0, proc: subprocess.Popen | None = None) -> None:
    """Block until the broker at ``bootstrap`` answers a metadata request."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise BrokerError(f"the broker exited with code {proc.returncode} while starting")
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000,
                                     client_id="streams-probe")
            try:
                admin.describe_cluster()
                return
            finally:
                admin.close()
        except (KafkaError, OSError, ValueError) as exc:
            last = exc
            time.sleep(0.5)
    raise BrokerError(f"the broker at {bootstrap} did not answer within {timeout:.0f}s: {last}")


@dataclass
class LocalKafka:
    """One local broker process: ``start()`` it, use ``bootstrap``, ``stop()`` it."""

    home: Path
    port: int = 0
    data_dir: Path | None = None
    extra_properties: dict[str, str] = field(default_factory=dict)
    sasl_users: dict[str, str] = field(default_factory=dict)  # user -> password: adds a SASL/PLAIN listener
    sasl_port: int = 0
    proc: subprocess.Popen | None = None
    _java: list[str] = field(default_factory=list)  # the launch command, kept for restarts

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0, detach: bool = False, keep: bool = False) -> LocalKafka:
        """Launch the broker and wait until it answers. The data dir is formatted afresh, unless
        ``keep`` and it was formatted before: then it resumes as it was, on the ports it had
        (``port``, when given, moves its client listener)."""
        if shutil.which("java") is None:
            raise BrokerError("Java 17+ is needed to run Kafka 4: install it (apt-get install openjdk-17-jre).")
        lib = resolve_jars(self.home)
        java = ["java", "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={KAFKA_DIR / 'log4j2.yaml'}", "-cp", f"{lib}/*"]
        if keep and self.data_dir is not None and self.formatted(self.data_dir):
            return self._resume(java, timeout, detach)
        self.port = self.port or free_port()
        controller_port = free_port()
        self.data_dir = self.data_dir or self.home / "run" / f"kafka-{self.port}"
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        config = self.data_dir / "server.properties"
        if self.sasl_users:
            self.sasl_port = self.sasl_port or free_port()
        config.write_text(server_properties(self.port, controller_port, self.data_dir / "logs",
                                            self.extra_properties, self.sasl_port, self.sasl_users))
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the storage tool would read "-..." as an option (1 in 64)
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        fmt = subprocess.run([*java, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)],
                             capture_output=True, text=True)
        if fmt.returncode != 0:
            raise BrokerError(f"formatting the data dir failed:\n{fmt.stdout}{fmt.stderr}")
        self._java = [*java, "kafka.Kafka", str(config)]
        return self._launch(timeout, detach)

    @staticmethod
    def formatted(data_dir: Path) -> bool:
        """Whether ``data_dir`` holds a broker formatted before (its config and its storage's identity)."""
        return (data_dir / "server.properties").exists() and (data_dir / "logs" / "meta.properties").exists()

    def _resume(self, java: list[str], timeout: float, detach: bool) -> LocalKafka:
        assert self.data_dir is not None
        config = self.data_dir / "server.properties"
        props = dict(line.split("=", 1) for line in config.read_text().splitlines() if "=" in line)
        had = int(props["advertised.listeners"].split(",")[0].rsplit(":", 1)[1])
        if self.port and self.port != had:  # STREAMS_KAFKA_PORT changed: move the client listener
            for key in ("listeners", "advertised.listeners"):
                props[key] = props[key].replace(f"PLAINTEXT://127.0.0.1:{had}", f"PLAINTEXT://127.0.0.1:{self.port}")
            config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        self.port = self.port or had
        for port in (self.port, int(props["controller.quorum.voters"].rsplit(":", 1)[1])):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    raise BrokerError(f"port {port} of the local broker in {self.data_dir} is taken by another "
                                      "process: stop it, or set STREAMS_KAFKA_PORT to move the broker")
        self._java = [*java, "kafka.Kafka", str(config)]
        return self._launch(timeout, detach)

    def _launch(self, timeout: float, detach: bool = False) -> LocalKafka:
        assert self.data_dir is not None
        log = open(self.data_dir / "broker.log", "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(self._java, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                     start_new_session=detach)
        log.close()
        try:
            wait_until_ready(self.bootstrap, timeout, self.proc)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, down_seconds: float = 0.0, timeout: float = 90.0) -> LocalKafka:
        """Stop the broker, stay down ``down_seconds``, start it again on the same port and data:
        an outage, as clients see one (the fault tests use it)."""
        self.stop()
        time.sleep(down_seconds)
        return self._launch(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait for a clean shutdown, SIGKILL only if it does not come."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- the background broker behind `streams kafka start|stop|status` ---------------------------------

def data_dir(settings: Settings) -> Path:
    """Where the background broker keeps its data, across restarts."""
    return settings.home / "kafka-data"


def start_background(settings: Settings) -> dict:
    """Start a broker that outlives this process, on the data (and port) it had; remember where it is."""
    if (state := read_state(settings)) is not None:
        return state
    kafka = LocalKafka(home=settings.home, port=settings.kafka_port, data_dir=data_dir(settings))
    kafka.start(detach=True, keep=True)
    assert kafka.proc is not None
    state = {"pid": kafka.proc.pid, "bootstrap": kafka.bootstrap, "data_dir": str(kafka.data_dir)}
    state_path(settings).write_text(json.dumps(state))
    return state


def reset_background(settings: Settings) -> bool:
    """Stop the background broker and delete its data; the next start formats a new one."""
    stop_background(settings)
    existed = data_dir(settings).exists()
    shutil.rmtree(data_dir(settings), ignore_errors=True)
    return existed


def stop_background(settings: Settings, timeout: float = 30.0) -> bool:
    """Stop the background broker (SIGTERM, then wait). False when none was running."""
    state = read_state(settings)
    if state is None:
        return False
    pid = state["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)
    state_path(settings).unlink(missing_ok=True)
    return True
