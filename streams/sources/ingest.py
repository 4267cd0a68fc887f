"""The ways in besides the Python producer: the HTTP endpoint's request handling, files and
directories for ``streams produce``, and rate limiting for load tests.

Everything is validated by :func:`streams.contract.validate.parse_raw`, the same rules the clean
stage applies, so a producer learns at the door what the pipeline would dead-letter. A request
is all or nothing: one bad article in an array rejects the request and nothing is sent.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import SecretStr

from streams.contract.events import RawArticle
from streams.contract.validate import Rejection, parse_raw
from streams.errors import ConfigError
from streams.settings import Settings

log = logging.getLogger(__name__)

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
    except (ValueError, RecursionError) as exc:  # also: not UTF-8, 4,300+ digit integers, nesting too deep
        return HttpResult(400, {"error": "not_json", "detail": str(exc)[:300]})
    items = payload if isinstance(payload, list) else [payload]
    if not items or len(items) > MAX_ARTICLES_PER_REQUEST:
        return HttpResult(400 if not items else 413, {
            "error": "empty" if not items else "too_many",
            "detail": f"send 1 to {MAX_ARTICLES_PER_REQUEST} articles per request"})
    articles, errors = [], []
    seen: set[str] = set()
    for index, item in enumerate(items):
        try:
            parsed = parse_raw(json.dumps(item), max_body_bytes) if isinstance(item, dict) else \
                Rejection("not_object", f"item is a JSON {type(item).__name__}, not an object")
        except (ValueError, RecursionError) as exc:
            parsed = Rejection("not_json", str(exc)[:300])
        if not isinstance(parsed, Rejection) and parsed.id in seen:
            parsed = Rejection("duplicate_id", "this id is already in the request", parsed.id)
        if isinstance(parsed, Rejection):
            errors.append({"index": index, "id": parsed.id, "reason": parsed.reason, "detail": parsed.detail})
        else:
            seen.add(parsed.id)
            articles.append(parsed)
    if errors:
        status = 413 if all(e["reason"] == "too_large" for e in errors) else 400
        return HttpResult(status, {"error": "invalid_articles", "rejected": errors,
                                   "detail": "nothing was published; fix these articles and send again"})
    return HttpResult(202, {"accepted": len(articles), "ids": [a.id for a in articles]}, articles)


class IngestTokens:
    """The bearer tokens ``POST /articles`` accepts: ``STREAMS_INGEST_TOKEN`` and the lines of
    ``STREAMS_INGEST_TOKENS_FILE`` (blank lines and ``#`` comments skipped).

    The file is re-read when it changes, so tokens rotate without a restart: add the new token,
    move the producers over, remove the old one. Only SHA-256 digests are kept, and every request is
    compared with every token in constant time, so neither the tokens nor how close a guess came
    show in memory dumps, reprs or response times.

    It fails closed: once a tokens file is configured, a token is always required. A file that is
    empty, holds only comments, or cannot be read (an editor or a config tool mid-rotation) leaves
    no valid token, so every POST gets 401 (reason ``no_valid_token``) and an error is logged, until
    the file holds a token again."""

    def __init__(self, token: SecretStr | None = None, path: Path | None = None) -> None:
        self._fixed = [_digest(token.get_secret_value())] if token and token.get_secret_value() else []
        self._path = path
        self._mtime: float | None = None
        self._from_file: list[bytes] = []
        if path is not None and not path.is_file():
            raise ConfigError(f"STREAMS_INGEST_TOKENS_FILE={path}: no such file")
        self._current()

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestTokens:
        return cls(settings.ingest_token, settings.ingest_tokens_file)

    def __repr__(self) -> str:
        return f"IngestTokens({len(self._current())} tokens)"

    @property
    def required(self) -> bool:
        return self._path is not None or bool(self._fixed)

    def _current(self) -> list[bytes]:
        if self._path is not None:
            try:
                mtime = self._path.stat().st_mtime
                if mtime != self._mtime:
                    lines = self._path.read_text(encoding="utf-8").splitlines()
                    self._from_file = [_digest(t) for t in (line.strip() for line in lines) if t and t[0] != "#"]
                    self._mtime = mtime
                    if not self._from_file:
                        log.error("STREAMS_INGEST_TOKENS_FILE=%s holds no token: every POST /articles is refused "
                                  "(401) until it holds one", self._path)
            except (OSError, UnicodeDecodeError) as exc:
                if self._mtime is not None or self._from_file:
                    log.error("STREAMS_INGEST_TOKENS_FILE=%s cannot be read (%s): every POST /articles is refused "
                              "(401) until it can", self._path, type(exc).__name__)
                self._from_file, self._mtime = [], None
        return self._fixed + self._from_file

    def refusal(self, authorization: str | None) -> str | None:
        """None when the request may publish, else why not: ``missing_token``, ``wrong_token``, or
        ``no_valid_token`` (a tokens file that holds none)."""
        tokens = self._current()
        if not tokens:
            return "no_valid_token" if self.required else None
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return "missing_token"
        digest = _digest(given.strip())
        matched = False
        for token in tokens:  # no early exit: the time taken does not depend on which token matched
            matched |= hmac.compare_digest(digest, token)
        return None if matched else "wrong_token"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


HEADER_DEADLINE_S = 10.0  # every request: its headers, from the connection's start or the last response
BODY_DEADLINE_S = 10.0  # POST /articles: the whole body, once the headers are in


def host_allowed(host_header: str | None, settings: Settings) -> bool:
    """Whether a request's ``Host`` is one this worker answers for. A worker on loopback answers only
    loopback names (a DNS-rebinding page cannot post through the user's browser); one bound beyond
    answers any, unless ``STREAMS_WEB_ALLOWED_HOSTS`` lists the names. Listed names always pass."""
    name = urlsplit(f"//{(host_header or '').strip()}").hostname or ""
    allowed = {h.lower() for h in settings.web_allowed_hosts}
    if name in allowed or "*" in allowed:
        return True
    if is_loopback(name):
        return True
    return not allowed and not is_loopback(settings.web_host)


def check_open_door(settings: Settings, tokens: IngestTokens) -> str | None:
    """Refuse to serve ``POST /articles`` to the network with no token; a warning when allowed anyway.

    Raises :class:`ConfigError` when the web server binds beyond loopback with no token and
    ``STREAMS_INGEST_OPEN`` is not set; returns the warning to log when it is."""
    if is_loopback(settings.web_host) or tokens.required:
        return None
    door = f"STREAMS_WEB_HOST={settings.web_host} lets anyone who reaches port {settings.web_port} publish articles"
    if not settings.ingest_open:
        raise ConfigError(f"{door}: set STREAMS_INGEST_TOKEN (or STREAMS_INGEST_TOKENS_FILE) so that POST /articles "
                          "requires a bearer token, or STREAMS_INGEST_OPEN=true to serve it without one")
    return f"{door} without a token (STREAMS_INGEST_OPEN=true)"


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
