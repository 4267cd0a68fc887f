"""One agent step, the same for every stage: count the input, time the stage's call, and turn an
exception into a ``stage_error`` dead letter with the original bytes and a traceback summary.

Every input is counted once in ``articles_in`` here and once in ``articles_out`` by the agent when
it sends the result, which is the ``in == sum(out)`` invariant of :mod:`streams.metrics`. The sends
stay with the agent: a Kafka failure must fail the agent (Faust then retries from the committed
offset), not become a dead letter.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from streams.contract.events import DeadLetter
from streams.contract.validate import dead_letter, traceback_summary
from streams.metrics import Metrics

T = TypeVar("T")
A = TypeVar("A")


def run(metrics: Metrics, stage: str, value: bytes | None, key: bytes | None,
        work: Callable[[bytes], T]) -> T | DeadLetter:
    """``work(value)``, counted and timed; a bug or a poison message comes back as its dead letter."""
    metrics.articles_in.labels(stage).inc()
    started = time.perf_counter()
    data = value or b""
    try:
        out = work(data)
    except Exception as exc:
        return stage_error(stage, data, key, exc)
    metrics.stage_seconds.labels(stage).observe(time.perf_counter() - started)
    return out


def run_many(metrics: Metrics, stage: str, items: Sequence[tuple[bytes | None, bytes | None]],
             parse: Callable[[bytes], A], work: Callable[[list[A]], list[T]]) -> list[T | DeadLetter]:
    """:func:`run` over a batch of ``(value, key)``: each input parsed on its own, the batch's work
    done in one call (the NER over ``nlp.pipe``). If that call fails, each input is worked alone, so
    only the one that breaks it is dead-lettered. The batch's time is shared equally among its inputs."""
    metrics.articles_in.labels(stage).inc(len(items))
    started = time.perf_counter()
    out: list[T | DeadLetter | None] = [None] * len(items)
    parsed: list[tuple[int, A]] = []
    for i, (value, key) in enumerate(items):
        try:
            parsed.append((i, parse(value or b"")))
        except Exception as exc:
            out[i] = stage_error(stage, value or b"", key, exc)
    try:
        for (i, _), result in zip(parsed, work([a for _, a in parsed]), strict=True):
            out[i] = result
    except Exception:
        for i, a in parsed:
            value, key = items[i]
            try:
                out[i] = work([a])[0]
            except Exception as exc:
                out[i] = stage_error(stage, value or b"", key, exc)
    share = (time.perf_counter() - started) / max(1, len(items))
    for result in out:
        if not isinstance(result, DeadLetter):
            metrics.stage_seconds.labels(stage).observe(share)
    return out  # type: ignore[return-value]


def stage_error(stage: str, data: bytes, key: bytes | None, exc: BaseException) -> DeadLetter:
    """The dead letter of an input a stage failed on, with its coordinates on ``articles.raw``
    when the event still carries them."""
    try:
        raw_ref = json.loads(data).get("raw_ref")
    except (ValueError, AttributeError):
        raw_ref = None
    msg_id = key.decode("utf-8", "replace") if key else None
    return dead_letter(data, stage, "stage_error", traceback_summary(exc), msg_id, raw_ref=raw_ref)
