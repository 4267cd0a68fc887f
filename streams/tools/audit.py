"""``streams audit``: is every input on ``articles.raw`` accounted for?

Every event the pipeline emits names its input by ``raw_ref`` (``partition:offset`` on
``articles.raw``), so a running pipeline can be reconciled from its topics and its consumer group's
committed offsets alone:

* **done**: the input has an outcome in a final topic (tagged, a duplicate or a dead letter);
* **in two places**: outcomes in two final topics (never expected);
* **waiting**: its furthest record (on raw, clean or unique) is at or above the offset the stage
  reading that topic has committed: work still queued or in flight;
* **lost**: the stage reading its furthest record has committed past it, and nothing came out.

The benchmark, the demo and the tests use :func:`audit` to name what they gave up waiting for.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.contract.topics import CLEAN, FINAL, RAW, UNIQUE
from streams.errors import BrokerError
from streams.kafka import connection
from streams.settings import Settings

#: how long the demo, the benchmark and the tests wait with inputs outstanding and no new outcome
#: before they give up and name the inputs that have none
QUIET_S = 60.0

#: the article topics a stage reads, furthest first, with the stage that reads each
CHAIN = ((UNIQUE, "tag"), (CLEAN, "dedup"), (RAW, "clean"))


@dataclass
class Audit:
    inputs: int = 0
    done: int = 0
    waiting: list[str] = field(default_factory=list)
    lost: dict[str, str] = field(default_factory=dict)  # raw_ref -> the stage that committed past it
    doubled: dict[str, list[str]] = field(default_factory=dict)  # raw_ref -> its final topics

    @property
    def ok(self) -> bool:
        return not self.lost and not self.doubled

    def summary(self, limit: int = 20) -> str:
        lines = [f"inputs on {RAW}: {self.inputs}", f"  done (one final outcome)  {self.done}",
                 f"  waiting or in flight     {len(self.waiting)}", f"  lost (committed past)    {len(self.lost)}",
                 f"  in two places            {len(self.doubled)}"]
        for ref, stage in list(self.lost.items())[:limit]:
            lines.append(f"    lost {ref}: the {stage} stage committed past it and produced nothing")
        for ref, topics in list(self.doubled.items())[:limit]:
            lines.append(f"    in two places {ref}: {', '.join(topics)}")
        if self.waiting and not self.lost:
            lines.append(f"    waiting, first few: {', '.join(self.waiting[:limit])}")
        return "\n".join(lines)


def _read(settings: Settings, bootstrap: str | None, topics: Iterable[str]) -> dict[str, list[tuple[int, int, bytes]]]:
    """Every record now on ``topics`` (logical names) as (partition, offset, value), read to the end."""
    from kafka import TopicPartition

    names = {settings.topic(t): t for t in topics}
    consumer = connection.consumer(settings, bootstrap=bootstrap, enable_auto_commit=False, group_id=None,
                                   isolation_level="read_committed", fetch_max_bytes=64 * 1024 * 1024)
    out: dict[str, list[tuple[int, int, bytes]]] = {t: [] for t in topics}
    try:
        parts = [TopicPartition(n, p) for n in names for p in sorted(consumer.partitions_for_topic(n) or ())]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < end[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise TimeoutError("reading the topics to their end took over 120 s")
            for tp, records in consumer.poll(timeout_ms=500, max_records=10000).items():
                out[names[tp.topic]].extend((r.partition, r.offset, r.value) for r in records if r.offset < end[tp])
    finally:
        consumer.close()
    return out


def _raw_ref(value: bytes) -> str | None:
    try:
        ref = json.loads(value).get("raw_ref")
    except (ValueError, AttributeError):
        return None
    return ref if isinstance(ref, str) else None


def committed_offsets(settings: Settings, bootstrap: str | None, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """The worker group's committed offset per (logical topic, partition); 0 where none is."""
    from kafka.errors import CoordinatorNotAvailableError, NotCoordinatorError

    admin = connection.admin(settings, bootstrap, client_id="streams-audit")
    names = {settings.topic(t): t for t in topics}
    deadline = time.monotonic() + 30
    try:
        while True:  # on a new cluster the group coordinator is elected with the first group's use
            try:
                offsets = admin.list_group_offsets({settings.app_id: None}).get(settings.app_id, {})
                break
            except (CoordinatorNotAvailableError, NotCoordinatorError) as exc:
                if time.monotonic() > deadline:
                    raise BrokerError(f"no group coordinator for {settings.app_id} after 30 s ({exc}): "
                                      "is the broker healthy?") from exc
                time.sleep(0.5)
    finally:
        admin.close()
    return {(names[tp.topic], tp.partition): max(0, meta.offset) for tp, meta in offsets.items() if tp.topic in names}


def audit(settings: Settings, bootstrap: str | None = None) -> Audit:
    stages = [topic for topic, _ in CHAIN]
    records = _read(settings, bootstrap, [*stages, *FINAL])
    committed = committed_offsets(settings, bootstrap, stages)
    finals: dict[str, list[str]] = defaultdict(list)
    for topic in FINAL:
        for _, _, value in records[topic]:
            if (ref := _raw_ref(value)) is not None and topic not in finals[ref]:
                finals[ref].append(topic)
    furthest: dict[str, tuple[str, str, int, int]] = {}  # raw_ref -> (topic, stage, partition, offset)
    for topic, stage in reversed(CHAIN):  # raw first, so later topics overwrite: the furthest wins
        for partition, offset, value in records[topic]:
            ref = f"{partition}:{offset}" if topic == RAW else _raw_ref(value)
            if ref is not None:
                furthest[ref] = (topic, stage, partition, offset)
    result = Audit()
    for partition, offset, _ in records[RAW]:
        ref = f"{partition}:{offset}"
        result.inputs += 1
        if ref in finals:
            result.done += 1
            if len(finals[ref]) > 1:
                result.doubled[ref] = finals[ref]
            continue
        topic, stage, p, o = furthest[ref]
        if o >= committed.get((topic, p), 0):
            result.waiting.append(ref)
        else:
            result.lost[ref] = stage
    return result


def wait_until_accounted(settings: Settings, bootstrap: str | None, quiet: float = 30.0,
                         limit: float = 600.0) -> Audit:
    """Audit until nothing is waiting, or nothing moved for ``quiet`` seconds, or ``limit`` passed."""
    started = last_change = time.monotonic()
    result = audit(settings, bootstrap)
    while result.waiting and time.monotonic() - last_change < quiet and time.monotonic() - started < limit:
        time.sleep(min(2.0, quiet / 5))
        again = audit(settings, bootstrap)
        if (again.done, len(again.waiting)) != (result.done, len(result.waiting)):
            last_change = time.monotonic()
        result = again
    return result
