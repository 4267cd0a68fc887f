"""Prometheus metrics, named by the conventions: one ``streams_`` prefix, base units (seconds,
bytes), ``_total`` counters, ``_seconds`` histograms, and no ids in labels.

Every input message is counted once in ``streams_articles_in_total{stage}`` and once in
``streams_articles_out_total{stage,outcome}``, so ``in == sum(out)`` per stage is an invariant an
operator (and a test) can check.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

T = TypeVar("T")

disable_created_metrics()  # `_created` series double every counter and no dashboard reads them

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class AgentClock:
    """Counts the CPU time of an agent step's own code. The step's awaits (sends) run outside the
    clock: while one agent waits, the event loop runs the others, whose time is theirs."""

    def __init__(self, counter) -> None:
        self.counter = counter

    def __enter__(self) -> AgentClock:
        self.spent, self.started = 0.0, time.thread_time()
        return self

    async def wait(self, awaitable: Awaitable[T]) -> T:
        self.spent += time.thread_time() - self.started
        try:
            return await awaitable
        finally:
            self.started = time.thread_time()

    def __exit__(self, *exc: object) -> None:
        self.counter.inc(self.spent + time.thread_time() - self.started)


@dataclass
class Metrics:
    """The project's metrics, in their own registry (one per worker process)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.articles_in = Counter("streams_articles_in_total", "Messages a stage consumed.", ["stage"],
                                   registry=r)
        self.articles_out = Counter("streams_articles_out_total",
                                    "Messages a stage finished, by where they went.", ["stage", "outcome"],
                                    registry=r)
        self.deadletters = Counter("streams_deadletters_total", "Messages dead-lettered, by reason.",
                                   ["stage", "reason"], registry=r)
        self.duplicates = Counter("streams_duplicates_total", "Duplicates found, by kind.", ["kind"], registry=r)
        self.alerts = Counter("streams_alerts_total", "Alerts fired.", ["rule", "severity"], registry=r)
        self.agent_cpu = Counter("streams_agent_cpu_seconds_total",
                                 "CPU time of the worker's event-loop thread inside each agent's per-event step: "
                                 "the stage's logic plus parsing, sends and metrics (not Faust's consumer).",
                                 ["stage"], registry=r)
        self.stage_seconds = Histogram("streams_stage_seconds", "Processing time per message in a stage.",
                                       ["stage"], buckets=STAGE_BUCKETS, registry=r)
        self.latency = Histogram("streams_end_to_end_seconds",
                                 "Time from ingestion (or publication) to a stage's output.",
                                 ["stage", "since"], buckets=LATENCY_BUCKETS, registry=r)
        self.ingested = Counter("streams_ingest_total", "Articles offered at an ingestion path, by outcome.",
                                ["path", "outcome"], registry=r)
        self.ingest_rejected = Counter("streams_ingest_rejected_total", "Articles rejected at the door, by reason.",
                                       ["path", "reason"], registry=r)
        self.consumer_lag = Gauge("streams_consumer_lag_messages", "Messages not yet consumed.",
                                  ["topic", "partition"], registry=r)
        self.dedup_state = Gauge("streams_dedup_state_articles", "Articles remembered by dedup.", registry=r)
        self.stories_live = Gauge("streams_stories_live", "Stories not yet retired.", registry=r)
        self.stories_state_bytes = Gauge("streams_stories_state_bytes_per_story",
                                         "Mean bytes of a live story's state, as its changelog carries it.", registry=r)
        self.story_articles = Counter("streams_story_articles_total",
                                      "Unique articles the stories stage placed: joined a live story or opened one.",
                                      ["outcome"], registry=r)
        self.info = Info("streams_worker", "The worker's build and runtime.", registry=r)
        from streams import __version__

        self.info.info({"version": __version__, "python": platform.python_version()})
        for stage in ("clean", "dedup", "tag", "alert"):
            self.articles_in.labels(stage)  # export zeros from the start: rates need a first sample

    def agent_time(self, stage: str) -> AgentClock:
        """The thread CPU time of one agent step, awaits excluded (``streams bench`` splits the
        per-hop overhead by it)."""
        return AgentClock(self.agent_cpu.labels(stage))

    def observe_latency(self, stage: str, now: datetime, ingested_at: datetime, published_at: datetime) -> None:
        self.latency.labels(stage, "ingested").observe(max(0.0, (now - ingested_at).total_seconds()))
        self.latency.labels(stage, "published").observe(max(0.0, (now - published_at).total_seconds()))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
