"""Running the pipeline from the outside: worker processes, and reading what came out.

The demo, the integration tests and the benchmark all start workers and read topics the same way,
through these helpers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from streams.contract.topics import FINAL, TOPICS, UNIQUE
from streams.kafka import connection
from streams.settings import Settings

OUTPUT_TOPICS = tuple(t.name for t in TOPICS if t.role in ("stage", "final", "output"))


@dataclass
class Worker:
    """One ``streams worker`` process with its own web port and state dir."""

    env: dict[str, str]
    web_port: int
    log: Path
    loglevel: str = "warning"
    proc: subprocess.Popen | None = None

    def start(self) -> Worker:
        env = {**os.environ, **self.env, "STREAMS_WEB_PORT": str(self.web_port)}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "streams", "worker", "--loglevel", self.loglevel],
                                         env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/metrics"

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the worker's web server answers (agents are up by then)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}; see {self.log}:\n"
                                   + self.log.read_text()[-3000:])
            try:
                urllib.request.urlopen(self.metrics_url, timeout=1).read()
                return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"worker did not come up within {timeout:.0f}s; see {self.log}")

    def scrape(self) -> str:
        return urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (Faust commits and leaves the group), SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def worker_env(settings: Settings, bootstrap: str, state_dir: Path) -> dict[str, str]:
    """The environment a worker needs to join this run's pipeline."""
    env = {"STREAMS_BROKER": bootstrap, "STREAMS_TOPIC_PREFIX": settings.topic_prefix,
           "STREAMS_APP_ID": settings.app_id, "STREAMS_PARTITIONS": str(settings.partitions),
           "STREAMS_DATA_DIR": str(state_dir), "STREAMS_PROCESSING_GUARANTEE": settings.processing_guarantee,
           "STREAMS_KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol,
           "STREAMS_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
           "STREAMS_SPACY_MODEL": settings.spacy_model or "none"}
    for name in ("kafka_sasl_username", "kafka_sasl_password", "kafka_ssl_cafile", "kafka_ssl_certfile",
                 "kafka_ssl_keyfile"):
        value = getattr(settings, name)
        if value is not None:  # the child's environment, never its command line
            env[f"STREAMS_{name.upper()}"] = value.get_secret_value() if name.endswith("password") else str(value)
    return env


def wait_for_group(settings: Settings, bootstrap: str, members: int, timeout: float = 60.0) -> None:
    """Wait until the workers' consumer group is stable with ``members`` members: partitions are
    assigned, so what is published next is not caught in a rebalance."""
    from kafka.errors import KafkaError

    admin = connection.admin(settings, bootstrap, client_id="streams-wait")
    deadline = time.monotonic() + timeout
    group: dict = {}
    try:
        while time.monotonic() < deadline:
            try:
                group = admin.describe_groups([settings.app_id]).get(settings.app_id) or {}
            except KafkaError:  # the group coordinator is still being elected
                group = {}
            if group.get("group_state") == "Stable" and len(group.get("members") or ()) == members:
                return
            time.sleep(0.5)
    finally:
        admin.close()
    raise TimeoutError(f"consumer group {settings.app_id} did not settle with {members} members: "
                       f"{group.get('group_state')}, {len(group.get('members') or ())} members")


@dataclass
class TopicReader:
    """Reads every output topic from the beginning; ``events[logical topic]`` holds what arrived."""

    settings: Settings
    bootstrap: str
    events: dict[str, list[dict]] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)  # each event's Kafka timestamp, in seconds

    def __post_init__(self) -> None:

        self.names = {self.settings.topic(t): t for t in OUTPUT_TOPICS}
        self.consumer = connection.consumer(self.settings, *self.names, bootstrap=self.bootstrap,
                                            auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                                            isolation_level="read_committed", consumer_timeout_ms=200,
                                            fetch_max_bytes=64 * 1024 * 1024)
        self.events = {t: [] for t in OUTPUT_TOPICS}
        self.times = {t: [] for t in OUTPUT_TOPICS}

    def poll(self, timeout_ms: int = 500) -> list[tuple[str, dict]]:
        """New events since the last poll, as (logical topic, event)."""
        batch = self.consumer.poll(timeout_ms=timeout_ms, max_records=5000)
        out = []
        for tp, records in batch.items():
            topic = self.names[tp.topic]
            for r in records:
                event = json.loads(r.value)
                self.events[topic].append(event)
                self.times[topic].append(r.timestamp / 1000)
                out.append((topic, event))
        return out

    def final_ids(self) -> dict[str, list[str]]:
        """Input ids by where they ended: tagged output, duplicates, or dead letters."""
        return {topic: [e.get("id") for e in self.events[topic]] for topic in FINAL}

    def settle(self, deadline: float) -> Iterator[tuple[str, dict]]:
        """After every input is accounted for: wait until the tag agent has committed all of
        ``articles.unique``, then drain what is still in flight. It alerts on each article in the hop
        that tags it, and commits an input only once that hop's outputs were acknowledged, so the
        alerts are out then too. Offsets, not a worker's counters, so it holds across restarts and
        several workers."""
        from kafka import TopicPartition

        topic = self.settings.topic(UNIQUE)
        admin = connection.admin(self.settings, self.bootstrap, client_id="streams-settle")
        try:
            parts = [TopicPartition(topic, p) for p in self.consumer.partitions_for_topic(topic) or ()]
            while time.monotonic() < deadline:
                end = self.consumer.end_offsets(parts)
                done = admin.list_group_offsets({self.settings.app_id: parts}).get(self.settings.app_id, {})
                committed = {tp: max(0, done[tp].offset) if tp in done else 0 for tp in parts}  # -1: never
                if all(committed[tp] >= end[tp] for tp in parts):
                    break
                yield from self.poll(timeout_ms=200)
        finally:
            admin.close()
        yield from self.poll(timeout_ms=1000)

    def accounted(self) -> int:
        """How many input messages have reached a final place (a replayed repeat counts once)."""
        return len({e.get("raw_ref") or f"{t}#{i}" for t in FINAL
                    for i, e in enumerate(self.events[t])})

    def close(self) -> None:
        self.consumer.close()
