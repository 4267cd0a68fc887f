"""The stages' logic, free of Kafka: clean → dedup → tag → alert.

Each stage module holds plain functions and classes that tests, ``streams eval`` and the benchmark
floor call directly; the Faust agents in :mod:`streams.app` are thin adapters over them.
"""

from __future__ import annotations

import traceback
from datetime import datetime

from streams.events import CleanArticle, DeadLetter
from streams.stages.clean import clean_article
from streams.stages.validate import Rejection, dead_letter, parse_raw


def clean_message(data: bytes, ingested_at: datetime, max_body_bytes: int,
                  raw_ref: str = "") -> CleanArticle | DeadLetter:
    """One raw message in, exactly one event out: the clean article or its dead letter."""
    ref = raw_ref or None
    parsed = parse_raw(data, max_body_bytes)
    if isinstance(parsed, Rejection):
        return dead_letter(data, "clean", parsed.reason, parsed.detail, parsed.id, raw_ref=ref)
    try:
        article = clean_article(parsed, ingested_at)
    except Exception as exc:  # a bug or a pathological page must not stop the partition
        return dead_letter(data, "clean", "stage_error", traceback_summary(exc), parsed.id, raw_ref=ref)
    if isinstance(article, Rejection):  # no article on the page, or nothing left of it
        return dead_letter(data, "clean", article.reason, article.detail, parsed.id, raw_ref=ref)
    article.raw_ref = raw_ref
    return article


def traceback_summary(exc: BaseException, limit: int = 3) -> str:
    """The exception and its innermost frames, short enough for a dead-letter event."""
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-limit)
    return "".join(frames)[-2000:]
