"""The ways in besides the Python producer: the HTTP endpoint's request handling, files and
directories for ``streams produce``, and rate limiting for load tests.

Everything is validated by :func:`streams.stages.validate.parse_raw`, the same rules the clean
stage applies, so a producer learns at the door what the pipeline would dead-letter. A request
is all or nothing: one bad article in an array rejects the request and nothing is sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from streams.events import RawArticle
from streams.stages.validate import Rejection, parse_raw

MAX_REQUEST_BYTES = 1024 * 1024  # aiohttp's own default limit for request bodies
MAX_ARTICLES_PER_REQUEST = 1000


@dataclass
class HttpResult:
    status: int
    body: dict
    articles: list[RawArticle] = field(default_factory=list)


def handle_post(body: bytes | None, content_type: str | None, max_body_bytes: int,
                max_request_bytes: int = MAX_REQUEST_BYTES) -> HttpResult:
    """Validate a ``POST /articles`` request: 202 with the articles to send, or 400/413/415.

    ``body`` is None when the web server already refused to read it for its size."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        return HttpResult(415, {"error": "unsupported_media_type",
                                "detail": "send the articles as application/json"})
    if body is None or len(body) > max_request_bytes:
        return HttpResult(413, {"error": "too_large", "detail": f"requests are limited to {max_request_bytes} bytes"})
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return HttpResult(400, {"error": "not_json", "detail": str(exc)[:300]})
    items = payload if isinstance(payload, list) else [payload]
    if not items or len(items) > MAX_ARTICLES_PER_REQUEST:
        return HttpResult(400 if not items else 413, {
            "error": "empty" if not items else "too_many",
            "detail": f"send 1 to {MAX_ARTICLES_PER_REQUEST} articles per request"})
    articles, errors = [], []
    for index, item in enumerate(items):
        parsed = parse_raw(json.dumps(item), max_body_bytes) if isinstance(item, dict) else \
            Rejection("not_object", f"item is a JSON {type(item).__name__}, not an object")
        if isinstance(parsed, Rejection):
            errors.append({"index": index, "id": parsed.id, "reason": parsed.reason, "detail": parsed.detail})
        else:
            articles.append(parsed)
    if errors:
        status = 413 if all(e["reason"] == "too_large" for e in errors) else 400
        return HttpResult(status, {"error": "invalid_articles", "rejected": errors,
                                   "detail": "nothing was published; fix these articles and send again"})
    return HttpResult(202, {"accepted": len(articles), "ids": [a.id for a in articles]}, articles)


def file_messages(path: Path) -> Iterator[bytes]:
    """Messages from a JSON Lines file, or from a directory of .json/.jsonl/.html/.txt files.

    A directory's HTML and text files become articles with metadata derived from the file: id
    from the file name, source from the directory name, published_at from the modification time,
    content type from the extension; the clean stage finds the title."""
    if path.is_file():
        yield from (line for line in path.read_bytes().split(b"\n") if line.strip())
        return
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        suffix = item.suffix.lower()
        if suffix == ".jsonl":
            yield from (line for line in item.read_bytes().split(b"\n") if line.strip())
        elif suffix == ".json":
            yield item.read_bytes()
        elif suffix in (".html", ".htm", ".txt", ".text", ".md"):
            rel = item.relative_to(path)
            yield json.dumps({
                "id": f"{path.name}/{rel.as_posix()}",
                "url": f"https://{path.name}.local/{rel.as_posix()}",
                "source": path.name,
                "body": item.read_text(encoding="utf-8", errors="replace"),
                "content_type": "text/html" if suffix in (".html", ".htm") else "text/plain",
                "published_at": datetime.fromtimestamp(item.stat().st_mtime, UTC).isoformat(),
            }).encode()


class RateLimiter:
    """Spaces calls to at most ``rate`` per second (``None``: no limit)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        if self.next > now:
            time.sleep(self.next - now)
        self.next = max(self.next, now) + self.interval
