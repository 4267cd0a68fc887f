"""``streams demo`` (``make demo``): the whole product on one screen, start to finish, unattended.

A local Kafka broker (unless ``STREAMS_BROKER`` points elsewhere), one pipeline worker, a feed of
articles (a labelled feed built from ``../shared/corpus`` when it is there, else the small sample
shipped in the package), alerts printed as they arrive, then a summary and the metrics endpoint.
Everything started is stopped on the way out, Ctrl-C included.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tqdm import tqdm

from streams.contract.events import Alert
from streams.contract.topics import ALERTS, CLEAN, DEADLETTER, DUPLICATES, MAX_MESSAGE_BYTES, RAW, TAGGED, ensure_topics
from streams.kafka import connection
from streams.settings import DATA_DIR, PACKAGE_DIR, get_settings
from streams.sinks.consumers import format_alert
from streams.tools.audit import QUIET_S, audit
from streams.tools.broker import LocalKafka, free_port
from streams.tools.runner import TopicReader, Worker, worker_env

SHARED = PACKAGE_DIR.parent.parent / "shared"


def demo_feed(limit: int, corpus: Path | None, workdir: Path) -> tuple[list[bytes], str]:
    """The messages to publish, and where they came from."""
    corpus = corpus or SHARED / "corpus" / "bbc.jsonl"
    tool = SHARED / "tools" / "make_feed.py"
    if corpus.exists() and tool.exists():
        feed, gold = workdir / "feed.jsonl", workdir / "gold.jsonl"
        pairs = corpus.with_name("bbc-similar-pairs.jsonl")
        cmd = [sys.executable, str(tool), "--corpus", str(corpus), "--out", str(feed), "--gold", str(gold),
               "--limit", str(limit)]
        if pairs.exists():
            cmd += ["--near-pairs", str(pairs)]
        subprocess.run(cmd, check=True, capture_output=True)
        return [line for line in feed.read_bytes().split(b"\n") if line], f"{corpus} (first {limit} articles)"
    sample = DATA_DIR / "sample_feed.jsonl"
    return [line for line in sample.read_bytes().split(b"\n") if line], f"bundled sample {sample.name}"


def run_demo(limit: int = 300, corpus: Path | None = None, timeout: float = 240.0) -> int:
    base = get_settings()
    run_id = uuid.uuid4().hex[:8]
    settings = base.model_copy(update={"topic_prefix": base.topic_prefix or f"demo-{run_id}.",
                                       "app_id": f"streams-demo-{run_id}"})
    kafka: LocalKafka | None = None
    worker: Worker | None = None
    reader: TopicReader | None = None
    with tempfile.TemporaryDirectory(prefix="streams-demo-") as tmp:
        workdir = Path(tmp)
        try:
            print("streams demo: raw articles → clean → dedup → tag → alerts\n")
            if settings.broker:
                bootstrap = settings.broker.removeprefix("kafka://")
                print(f"• Kafka: external cluster at {bootstrap}")
            else:
                print("• Kafka: starting a local single-node KRaft broker…", flush=True)
                kafka = LocalKafka(home=settings.home).start()
                bootstrap = kafka.bootstrap
                print(f"  up at {bootstrap}")
            ensure_topics(settings, bootstrap)
            worker = Worker(worker_env(settings, bootstrap, workdir / "state"), free_port(), workdir / "worker.log")
            print("• Pipeline: starting a worker…", flush=True)
            worker.start().wait_ready()
            print(f"  ready; metrics at {worker.metrics_url}")

            lines, origin = demo_feed(limit, corpus, workdir)
            print(f"• Feed: {len(lines)} messages from {origin}")

            producer = connection.producer(settings, bootstrap, acks="all", linger_ms=5,
                                           max_request_size=MAX_MESSAGE_BYTES)
            for line in tqdm(lines, desc="  publishing", unit="msg", leave=False):
                producer.send(settings.topic(RAW), value=line)
            producer.flush()
            producer.close()

            print("\nAlerts as they arrive:")
            reader = TopicReader(settings, bootstrap)
            deadline = time.monotonic() + timeout
            last_news = time.monotonic()
            with tqdm(total=len(lines), desc="  accounted for", unit="msg", leave=False) as bar:
                while reader.accounted() < len(lines) and time.monotonic() < min(deadline, last_news + QUIET_S):
                    for topic, event in reader.poll():
                        last_news = time.monotonic()
                        if topic == ALERTS:
                            bar.write(format_alert(Alert.model_validate(event)))
                    bar.update(reader.accounted() - bar.n)
            for topic, event in reader.settle(deadline):
                if topic == ALERTS:
                    print(format_alert(Alert.model_validate(event)))
            status = summarize(reader, len(lines), worker)
            if status:  # name what has no outcome, as `streams audit` does
                print("\n" + audit(settings, bootstrap).summary())
            return status
        except KeyboardInterrupt:
            print("\ninterrupted: shutting down")
            return 130
        finally:
            if reader is not None:
                reader.close()
            if worker is not None:
                worker.stop()
            if kafka is not None:
                kafka.stop()


def summarize(reader: TopicReader, sent: int, worker: Worker) -> int:
    ev = reader.events
    reasons: dict[str, int] = {}
    for d in ev[DEADLETTER]:
        reasons[d["reason"]] = reasons.get(d["reason"], 0) + 1
    kinds: dict[str, int] = {}
    for d in ev[DUPLICATES]:
        kinds[d["duplicate_kind"]] = kinds.get(d["duplicate_kind"], 0) + 1
    accounted = reader.accounted()
    print("\nSummary")
    rows = [
        ("articles in", sent),
        ("clean", len(ev[CLEAN])),
        ("duplicates", f"{len(ev['articles.duplicates'])}  {kinds}"),
        ("unique → tagged", len(ev[TAGGED])),
        ("dead-lettered", f"{len(ev['articles.deadletter'])}  {reasons}"),
        ("alerts", len(ev[ALERTS])),
        ("accounted for", f"{accounted} of {sent}"),
    ]
    for name, value in rows:
        print(f"  {name:16} {value}")
    print(f"\nMetrics: {worker.metrics_url} (Prometheus format). A few of them now:")
    for line in worker.scrape().splitlines():
        if line.startswith(("streams_articles_out_total", "streams_duplicates_total")):
            print(f"  {line}")
    return 0 if accounted == sent else 1
