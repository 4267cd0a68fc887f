"""Shared fixtures: one real Kafka broker per test session, labelled feeds, and running pipelines.

With ``CI=true`` a missing prerequisite (Java, Maven, ../shared) fails the run instead of skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from streams.contract.topics import MAX_MESSAGE_BYTES, ensure_topics
from streams.kafka.connection import client_options
from streams.settings import Settings
from streams.tools.audit import QUIET_S
from streams.tools.broker import LocalKafka, free_port, kafka_version
from streams.tools.runner import TopicReader, Worker, worker_env

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus" / "bbc.jsonl"
PAIRS = SHARED / "corpus" / "bbc-similar-pairs.jsonl"
MAKE_FEED = SHARED / "tools" / "make_feed.py"
IN_CI = os.environ.get("CI", "").lower() == "true"


def wait_http(url: str, timeout: float = 30) -> None:
    """Wait until ``url`` answers (a server we started is ready)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def require(condition: bool, why: str) -> None:
    """Skip when a prerequisite is missing, except in CI, where that is a failure."""
    if not condition:
        if IN_CI:
            pytest.fail(f"CI=true and a prerequisite is missing: {why}")
        pytest.skip(why)


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real broker: the one STREAMS_BROKER names, or a local KRaft broker for this session."""
    if os.environ.get("STREAMS_BROKER"):
        yield os.environ["STREAMS_BROKER"].removeprefix("kafka://")
        return
    require(shutil.which("java") is not None, "Java 17+ is needed for the local Kafka broker")
    home = Path(os.environ.get("STREAMS_HOME", Path.home() / ".cache" / "streams"))
    jars = home / f"kafka-{kafka_version()}" / "lib"
    require(jars.is_dir() or shutil.which("mvn") is not None, "Maven is needed to fetch Kafka")
    kafka = LocalKafka(home=home, data_dir=tmp_path_factory.mktemp("kafka"))
    kafka.start()
    print(f"\n[kafka] real broker up at {kafka.bootstrap}")
    yield kafka.bootstrap
    kafka.stop()


def assert_conserved_by_ref(raw_refs: list[str], reader: TopicReader) -> int:
    """Every input message (by its partition:offset on articles.raw) ends in exactly one final
    place; repeats of one event after a replay (same topic, same raw_ref) are dropped, as the
    at-least-once consumer contract says. Returns how many repeats were dropped."""
    places: dict[str, set[str]] = {}
    events = 0
    for topic in ("articles.tagged", "articles.duplicates", "articles.deadletter"):
        for event in reader.events[topic]:
            places.setdefault(event.get("raw_ref") or "?", set()).add(topic)
            events += 1
    lost = [r for r in raw_refs if r not in places]
    doubled = {r: p for r, p in places.items() if len(p) > 1}
    unexpected = set(places) - set(raw_refs)
    assert not lost and not doubled and not unexpected, (
        f"lost {lost[:10]} ({len(lost)}); in two places {dict(list(doubled.items())[:5])}; unexpected {unexpected}")
    return events - len(places)


def assert_conserved(input_ids: list[str | None], reader: TopicReader) -> None:
    """Every input message ends up in exactly one final place: tagged, duplicates or dead letters.

    Ids are compared as multisets: a verbatim resend carries its original's id, and a message too
    broken to have an id is dead-lettered without one.
    """
    from collections import Counter

    final = reader.final_ids()
    got = Counter(i for ids in final.values() for i in ids)
    want = Counter(input_ids)
    missing, doubled = want - got, got - want
    assert not missing and not doubled, f"lost {dict(missing)}; doubled or unexpected {dict(doubled)}"


def message_id(line: bytes) -> str | None:
    """The id a message carries, as the pipeline can read it (None when it has none)."""
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return obj.get("id") if isinstance(obj, dict) and isinstance(obj.get("id"), str) else None


@dataclass
class Feed:
    lines: list[bytes]
    gold: list[dict]
    path: Path
    gold_path: Path

    @property
    def ids(self) -> list[str | None]:
        return [message_id(line) for line in self.lines]


def make_feed(directory: Path, limit: int | None = None, seed: int = 7, excerpt_rate: float = 0.0) -> Feed:
    require(CORPUS.exists() and MAKE_FEED.exists(), f"the shared corpus and make_feed.py ({SHARED})")
    feed, gold = directory / "feed.jsonl", directory / "gold.jsonl"
    cmd = [sys.executable, str(MAKE_FEED), "--corpus", str(CORPUS), "--near-pairs", str(PAIRS), "--out", str(feed),
           "--gold", str(gold), "--seed", str(seed)]
    if limit:
        cmd += ["--limit", str(limit)]
    if excerpt_rate:
        cmd += ["--excerpt-rate", str(excerpt_rate)]
    subprocess.run(cmd, check=True, capture_output=True)
    lines = [line for line in feed.read_bytes().split(b"\n") if line]
    return Feed(lines, [json.loads(x) for x in gold.read_text().splitlines()], feed, gold)


@pytest.fixture(scope="session")
def full_feed(tmp_path_factory: pytest.TempPathFactory) -> Feed:
    """The full public feed (seed 7), the one the quality targets are stated on."""
    return make_feed(tmp_path_factory.mktemp("full-feed"))


@dataclass
class Pipeline:
    """An isolated pipeline run: its own topic prefix and consumer group on the shared broker."""

    settings: Settings
    bootstrap: str
    directory: Path
    workers: list[Worker] = field(default_factory=list)

    def start_worker(self, **env: str) -> Worker:
        n = len(self.workers)
        worker = Worker({**worker_env(self.settings, self.bootstrap, self.directory / f"state-{n}"), **env},
                        free_port(), self.directory / f"worker-{n}.log", loglevel="info")
        worker.start()
        self.workers.append(worker)
        return worker

    def publish(self, lines: list[bytes], keys: list[bytes | None] | None = None) -> list[str]:
        """Send ``lines`` to articles.raw; returns each one's ``partition:offset`` (its raw_ref)."""
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", max_request_size=MAX_MESSAGE_BYTES,
                                 **client_options(self.settings))
        futures = [producer.send(self.settings.topic("articles.raw"), value=line, key=keys[i] if keys else None)
                   for i, line in enumerate(lines)]
        producer.flush()
        refs = [f"{m.partition}:{m.offset}" for m in (f.get(timeout=30) for f in futures)]
        producer.close()
        return refs

    def collect(self, expected: int, timeout: float = 120.0, quiet: float = QUIET_S) -> TopicReader:
        """Read the outputs until ``expected`` inputs are accounted for, or time runs out, or no new
        outcome came for ``quiet`` seconds (an input that was skipped never comes)."""
        reader = TopicReader(self.settings, self.bootstrap)
        deadline = time.monotonic() + timeout
        last_news = time.monotonic()
        while reader.accounted() < expected and time.monotonic() < min(deadline, last_news + quiet):
            if reader.poll():
                last_news = time.monotonic()
        for _ in reader.settle(deadline):
            pass
        reader.poll(timeout_ms=1500)  # anything late, such as a doubled message, shows up too
        reader.close()
        return reader

    def stop(self) -> None:
        for w in self.workers:
            w.stop()


WORKER_LOG_LINES = 120


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that ran workers reports the end of each worker's log (rebalances, recovery,
    errors, with times), so a failure in CI says what the workers were doing."""
    report = yield
    if report.failed and call.when == "call":
        for run in (v for v in getattr(item, "funcargs", {}).values() if isinstance(v, Pipeline)):
            for worker in run.workers:
                report.sections.append((f"worker log {worker.log}", log_tail(worker.log)))
    return report


def log_tail(path: Path, lines: int = WORKER_LOG_LINES) -> str:
    """The last ``lines`` lines of a worker log, without the assignment tables Faust draws."""
    if not path.exists():
        return "(no log)"
    kept = [line for line in path.read_text(errors="replace").splitlines() if not line.startswith(("|", "+"))]
    return "\n".join(kept[-lines:])


@pytest.fixture
def pipeline(bootstrap: str, tmp_path: Path) -> Iterator[Pipeline]:
    run = uuid.uuid4().hex[:8]
    settings = Settings(broker=bootstrap, topic_prefix=f"t{run}.", app_id=f"streams-test-{run}", partitions=4)
    ensure_topics(settings, bootstrap)
    p = Pipeline(settings, bootstrap, tmp_path)
    yield p
    p.stop()
