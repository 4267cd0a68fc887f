"""Publishing articles to ``articles.raw`` from Python (kafka-python).

Messages are validated at the door with the same rules the clean stage applies, keyed by article
id (every copy of one article lands in one partition, in order), batched and compressed, and
confirmed by the broker before :meth:`ArticleProducer.flush` returns.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from streams.contract.events import RawArticle
from streams.contract.topics import MAX_MESSAGE_BYTES, RAW
from streams.contract.validate import Rejection, parse_raw
from streams.kafka import connection
from streams.settings import Settings


@dataclass
class PublishReport:
    sent: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    ids: list[str] = field(default_factory=list)


def raw_key(data: bytes) -> bytes | None:
    """The ``id`` of a message that is a JSON object with one, as the Kafka key; None otherwise."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    article_id = obj.get("id") if isinstance(obj, dict) else None
    return article_id.encode() if isinstance(article_id, str) and article_id else None


class ArticleProducer:
    """``publish(article)`` / ``publish_many(articles)`` onto ``articles.raw``."""

    def __init__(self, settings: Settings, bootstrap: str, **kafka_options: object) -> None:
        self.settings = settings
        self.topic = settings.topic(RAW)
        options = {"acks": "all", "linger_ms": 5, "batch_size": 256 * 1024, "compression_type": "gzip",
                   "max_request_size": MAX_MESSAGE_BYTES, "retries": 5, **kafka_options}
        self.kafka = connection.producer(settings, bootstrap, client_id="streams-producer", **options)

    def publish(self, article: RawArticle | dict | str | bytes, report: PublishReport | None = None) -> str | None:
        """Validate and send one article; returns its id, or None when it was rejected."""
        report = report if report is not None else PublishReport()
        if isinstance(article, RawArticle):
            data = article.dumps()
        elif isinstance(article, dict):
            try:
                data = json.dumps(article, ensure_ascii=False).encode()
            except UnicodeEncodeError:  # a lone surrogate in a string: refused, never raised
                report.rejected["bad_unicode"] += 1
                return None
        else:
            data = article.encode() if isinstance(article, str) else article
        parsed = parse_raw(data, self.settings.max_body_bytes)
        if isinstance(parsed, Rejection):
            report.rejected[parsed.reason] += 1
            return None
        self.kafka.send(self.topic, key=parsed.id.encode(), value=data)
        report.sent += 1
        report.ids.append(parsed.id)
        return parsed.id

    def publish_raw(self, data: bytes, key: bytes | None = None) -> None:
        """Send bytes as they are, unvalidated (load tests and fault injection). Without ``key``, a
        JSON object with a string ``id`` is keyed by it, as every other way in keys articles, so an
        exact resend lands on its original's partition."""
        self.kafka.send(self.topic, key=key if key is not None else raw_key(data), value=data)

    def publish_many(self, articles: Iterable[RawArticle | dict | str | bytes]) -> PublishReport:
        report = PublishReport()
        for article in articles:
            self.publish(article, report)
        self.flush()
        return report

    def flush(self, timeout: float = 60.0) -> None:
        """Block until the broker has confirmed every message sent so far."""
        self.kafka.flush(timeout)

    def close(self) -> None:
        self.kafka.close()

    def __enter__(self) -> ArticleProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
        self.close()
