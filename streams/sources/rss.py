"""``streams poll FEEDS.yaml``: RSS/Atom feeds in, new items published to ``articles.raw`` once.

Each feed is fetched with a conditional GET (``If-None-Match`` / ``If-Modified-Since`` from the
last answer), parsed with feedparser, and every item not sent before becomes an article: the
entry's content or summary as HTML, or, with ``fetch_page: true``, the linked page itself. What
was sent and each feed's validators are kept in a JSON state file, written after each poll, so a
restarted poller neither re-sends items nor re-downloads unchanged feeds. The file keeps the
most recent ``SEEN_PER_FEED`` item keys per feed, bounding its size.

FEEDS.yaml::

    interval: 300          # seconds between polls (default 300)
    feeds:
      - url: https://example.com/rss.xml
        source: example.com      # default: the feed's host
        fetch_page: false        # publish the linked page instead of the entry text
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import feedparser
import httpx
import yaml

SEEN_PER_FEED = 5000
USER_AGENT = "streams-rss-poller/1 (+https://github.com/)"


@dataclass(frozen=True)
class FeedConfig:
    url: str
    source: str
    fetch_page: bool = False


@dataclass
class PollConfig:
    feeds: list[FeedConfig]
    interval: float = 300.0

    @classmethod
    def load(cls, path: Path) -> PollConfig:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        feeds = []
        for item in doc.get("feeds") or []:
            if isinstance(item, str):
                item = {"url": item}
            unknown = set(item) - {"url", "source", "fetch_page"}
            if unknown or "url" not in item:
                raise ValueError(f"{path}: each feed needs a url (and optionally source, fetch_page); "
                                 f"got {sorted(item)}")
            feeds.append(FeedConfig(item["url"], item.get("source") or urlparse(item["url"]).hostname or "feed",
                                    bool(item.get("fetch_page", False))))
        return cls(feeds, float(doc.get("interval", 300)))


@dataclass
class PollState:
    """Per feed: the HTTP validators of the last answer, and the keys of items already sent."""

    path: Path
    feeds: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> PollState:
        data = json.loads(path.read_text()) if path.exists() else {}
        return cls(path, data.get("feeds", {}))

    def of(self, url: str) -> dict:
        return self.feeds.setdefault(url, {"etag": None, "modified": None, "seen": []})

    def save(self) -> None:
        for feed in self.feeds.values():
            feed["seen"] = feed["seen"][-SEEN_PER_FEED:]
        tmp = self.path.with_suffix(".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"feeds": self.feeds}, indent=1))
        tmp.replace(self.path)  # atomic: a crash never leaves half a state file


def item_key(entry: dict) -> str:
    return entry.get("id") or entry.get("link") or hashlib.sha256(json.dumps(entry, default=str).encode()).hexdigest()


def entry_time(entry: dict) -> datetime:
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    return datetime(*parsed[:6], tzinfo=UTC) if parsed else datetime.now(UTC)


def to_article(feed: FeedConfig, entry: dict, page: str | None) -> dict:
    """The raw wire message for one feed item."""
    key = item_key(entry)
    content = entry.get("content") or []
    text = page if page is not None else (content[0].get("value") if content else entry.get("summary", ""))
    return {"id": f"{feed.source}:{hashlib.sha256(key.encode()).hexdigest()[:16]}",
            "url": entry.get("link") or feed.url, "source": feed.source, "title": entry.get("title"),
            "body": text or "", "content_type": "text/html",
            "published_at": entry_time(entry).isoformat()}


@dataclass
class PollReport:
    fetched: int = 0
    not_modified: int = 0
    published: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


class Poller:
    """Polls feeds and hands each new item to ``publish`` (which validates and sends it)."""

    def __init__(self, config: PollConfig, state: PollState, publish: Callable[[dict], str | None],
                 flush: Callable[[], None] = lambda: None, client: httpx.Client | None = None) -> None:
        self.config, self.state, self.publish, self.flush = config, state, publish, flush
        self.client = client or httpx.Client(timeout=20.0, follow_redirects=True,
                                             headers={"User-Agent": USER_AGENT})

    def poll_once(self) -> PollReport:
        report = PollReport()
        for feed in self.config.feeds:
            try:
                self._poll_feed(feed, report)
            except httpx.HTTPError as exc:
                report.errors.append(f"{feed.url}: {exc}")
        self.flush()  # Kafka has every item before the state says it was sent
        self.state.save()
        return report

    def _poll_feed(self, feed: FeedConfig, report: PollReport) -> None:
        st = self.state.of(feed.url)
        headers = {}
        if st["etag"]:
            headers["If-None-Match"] = st["etag"]
        if st["modified"]:
            headers["If-Modified-Since"] = st["modified"]
        response = self.client.get(feed.url, headers=headers)
        if response.status_code == 304:
            report.not_modified += 1
            return
        response.raise_for_status()
        report.fetched += 1
        parsed = feedparser.parse(response.content)
        seen = set(st["seen"])
        for entry in parsed.entries:
            key = item_key(entry)
            if key in seen:
                report.skipped += 1
                continue
            page = None
            if feed.fetch_page and entry.get("link"):
                page = self.client.get(entry["link"]).raise_for_status().text
            if self.publish(to_article(feed, entry, page)) is not None:
                report.published += 1
            else:
                report.skipped += 1  # rejected at the door; counted by the producer
            st["seen"].append(key)
            seen.add(key)
        # remember validators only once every item of this answer has been handed over
        st["etag"] = response.headers.get("ETag")
        st["modified"] = response.headers.get("Last-Modified")

    def run(self, stop: Callable[[], bool] = lambda: False) -> None:
        while not stop():
            started = time.monotonic()
            report = self.poll_once()
            print(f"{datetime.now(UTC):%H:%M:%S} polled {len(self.config.feeds)} feeds: {report.published} new, "
                  f"{report.not_modified} unchanged, {len(report.errors)} errors", flush=True)
            for err in report.errors:
                print(f"  {err}", flush=True)
            time.sleep(max(0.0, self.config.interval - (time.monotonic() - started)))
