"""Trend bursts: an entity suddenly mentioned far more than usual.

Like GDELT's comparison of the last hour with the previous days, but continuous and at minute
granularity: mentions are counted in tumbling one-minute buckets (for the recent window) and
one-hour buckets (for the baseline). At every mention the recent window (default: the last 60
minutes) is compared with the trailing baseline (default: the 72 hours before it), scaled to the
same length. A burst fires when the recent count reaches ``min_count`` and exceeds ``factor`` times
the baseline's expectation (never less than ``floor`` mentions), once per entity per
``suppress`` window, and only for entities with ``min_history_hours`` of history: without a
baseline every entity would look like a burst in the first hour after a deploy.

The counts live in a mapping - a Faust table in the worker - and survive restarts. The table is fed
by the ``entity.mentions`` topic, where each entity has one partition (:func:`mention_batches`), so
one entity's mentions always meet. The tag agent sends one message per partition per batch of
articles, holding that partition's mentions summed per entity and minute: a message per mention
was most of the pipeline's Kafka traffic. Buckets older than the baseline are dropped by
:meth:`BurstDetector.expire`.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime

from streams.contract.events import Alert, Evidence, Mention, MentionBatch, TaggedArticle


@dataclass(frozen=True)
class BurstConfig:
    recent_minutes: int = 60
    baseline_hours: int = 72
    factor: float = 4.0
    min_count: int = 10
    floor: float = 1.0
    suppress_seconds: float = 6 * 3600
    min_history_hours: float = 24.0  # no bursts for an entity seen for less than this (cold start)


@dataclass(frozen=True)
class Burst:
    entity: str
    recent: int
    expected: float
    at: datetime


def burst_alert(burst: Burst, severity: str = "medium", name: str | None = None,
                article_id: str | None = None) -> Alert:
    """The alert event for a burst; its id is deterministic (entity + hour it began)."""
    hour = burst.at.strftime("%Y-%m-%dT%H")
    aid = hashlib.sha256(f"burst\x00{burst.entity}\x00{hour}".encode()).hexdigest()[:24]
    return Alert(id=aid, kind="burst", rule_id="trend-burst", severity=severity,
                 title=f"Burst: {name or burst.entity} mentioned {burst.recent} times in the last hour "
                       f"(expected {burst.expected:.1f})",
                 article_ids=[article_id] if article_id else [],
                 evidence=Evidence(entities=[burst.entity]), created_at=burst.at)


def mention_partition(entity: str, partitions: int) -> int:
    """The partition of ``entity.mentions`` that owns an entity: stable across workers and restarts."""
    return zlib.crc32(entity.encode()) % partitions


def mention_batches(articles: Iterable[TaggedArticle], partitions: int) -> dict[int, MentionBatch]:
    """The canonical entity mentions of a batch of tagged articles, summed per entity and minute
    and grouped by owning partition: one message per partition carries the batch's mentions."""
    summed: dict[tuple[str, int], Mention] = {}
    for article in articles:
        minute = int(article.ingested_at.timestamp() // 60)
        for entity in article.entities:
            if not entity.id:
                continue
            m = summed.get((entity.id, minute))
            if m is None:
                summed[(entity.id, minute)] = Mention(entity=entity.id, name=entity.name, count=entity.count,
                                                      article=article.id, at=article.ingested_at)
            else:  # the latest article and time stand for the minute's mentions
                m.count += entity.count
                m.article, m.at = article.id, article.ingested_at
    batches: dict[int, MentionBatch] = {}
    for m in summed.values():
        batches.setdefault(mention_partition(m.entity, partitions), MentionBatch(mentions=[])).mentions.append(m)
    return batches


class BurstDetector:
    """Counts mentions per entity and says when one bursts. ``counts`` maps keys to ints."""

    def __init__(self, counts: MutableMapping[str, int], config: BurstConfig = BurstConfig()) -> None:
        self.counts = counts
        self.config = config

    @staticmethod
    def _minute(t: float) -> int:
        return int(t // 60)

    def mention(self, entity: str, at: datetime, n: int = 1) -> Burst | None:
        """Record ``n`` mentions of ``entity`` at ``at``; return a burst when one starts."""
        c = self.config
        t = at.timestamp()
        minute = self._minute(t)
        hour = minute // 60
        first_seen = self.counts.setdefault(f"{entity}|first", int(t))
        self.counts[f"{entity}|m|{minute}"] = self.counts.get(f"{entity}|m|{minute}", 0) + n
        self.counts[f"{entity}|h|{hour}"] = self.counts.get(f"{entity}|h|{hour}", 0) + n

        # cheapest test first: most mentions end here, before 132 bucket lookups
        if t - first_seen < c.min_history_hours * 3600:
            return None
        recent = sum(self.counts.get(f"{entity}|m|{m}", 0) for m in range(minute - c.recent_minutes + 1, minute + 1))
        if recent < c.min_count:
            return None
        # baseline: whole hours before the recent window
        first_recent_hour = (minute - c.recent_minutes + 1) // 60
        baseline = sum(self.counts.get(f"{entity}|h|{h}", 0)
                       for h in range(first_recent_hour - c.baseline_hours, first_recent_hour))
        expected = max(c.floor, baseline * c.recent_minutes / (c.baseline_hours * 60))
        if recent <= c.factor * expected:
            return None
        last = self.counts.get(f"{entity}|fired", 0)
        if t - last < c.suppress_seconds:
            return None
        self.counts[f"{entity}|fired"] = int(t)
        return Burst(entity, recent, round(expected, 3), at.astimezone(UTC))

    def expire(self, now: datetime) -> int:
        """Drop buckets older than the recent window and the baseline; returns how many."""
        c = self.config
        minute = self._minute(now.timestamp())
        oldest_minute = minute - c.recent_minutes - 1
        oldest_hour = minute // 60 - c.baseline_hours - 2
        dropped = 0
        for key in list(self.counts):
            _, kind, value = key.rsplit("|", 2) if key.count("|") >= 2 else (key, "", "")
            if (kind == "m" and int(value) < oldest_minute) or (kind == "h" and int(value) < oldest_hour):
                del self.counts[key]
                dropped += 1
        return dropped
