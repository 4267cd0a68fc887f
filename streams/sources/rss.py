"""``streams poll FEEDS.yaml``: RSS/Atom feeds in, new items published to ``articles.raw`` once.

Each feed is fetched with a conditional GET (``If-None-Match`` / ``If-Modified-Since`` from the
last answer), parsed with feedparser, and every item not sent before becomes an article: the
entry's content or summary as HTML, or, with ``fetch_page: true``, the linked page itself. What
was sent and each feed's validators are kept in a JSON state file, written after each poll, so a
restarted poller neither re-sends items nor re-downloads unchanged feeds. The file keeps the
most recent ``SEEN_PER_FEED`` item keys per feed (or as many as the feed's last answer had, if more),
bounding its size.

Hostile feeds are expected: every response is read within a deadline and a size cap; a feed that
declares XML entities is refused before it is parsed (entity expansion can turn kilobytes into
gigabytes); one feed's failure of any kind is logged, counted and skipped, never the end of the run;
and ``fetch_page`` never fetches a loopback, private, link-local or otherwise internal address
(before and after redirects) unless ``STREAMS_FETCH_PRIVATE=true``, so a feed item cannot make the
poller read the worker's ``/metrics`` or anything else inside the network.

FEEDS.yaml::

    interval: 300          # seconds between polls (default 300)
    feeds:
      - url: https://example.com/rss.xml
        source: example.com      # default: the feed's host
        fetch_page: false        # publish the linked page instead of the entry text
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
import socket
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
MAX_FEED_BYTES = 10 * 1024 * 1024
MAX_PAGE_BYTES = 2 * 1024 * 1024
DEADLINE_S = 30.0  # a whole response, from the request to its last byte
MAX_REDIRECTS = 5
ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
CHAR_REF = re.compile(rb"&#(x[0-9a-f]+|[0-9]+);", re.IGNORECASE)


def _no_surrogate_refs(content: bytes) -> bytes:
    """``&#xD800;``-style references to lone surrogates (feedparser raises on them) as U+FFFD."""
    def replace(match: re.Match) -> bytes:
        ref = match.group(1).decode()
        value = int(ref[1:], 16) if ref[0] in "xX" else int(ref)
        return "\ufffd".encode() if 0xD800 <= value <= 0xDFFF else match.group(0)

    return CHAR_REF.sub(replace, content)

log = logging.getLogger(__name__)


class FetchRefused(Exception):
    """A response the poller will not take: too large, too slow, an internal address, entities."""


def is_internal(host: str) -> bool:
    """True when any address ``host`` resolves to is loopback, private, link-local, multicast,
    reserved or unspecified."""
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise FetchRefused(f"{host}: cannot resolve ({exc})") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if (address.is_loopback or address.is_private or address.is_link_local or address.is_multicast
                or address.is_reserved or address.is_unspecified):
            return True
    return False


def fetch(client: httpx.Client, url: str, cap: int, allow_internal: bool = True,
          headers: dict[str, str] | None = None) -> httpx.Response:
    """GET ``url`` following redirects by hand, within :data:`DEADLINE_S` and ``cap`` bytes; with
    ``allow_internal`` False every hop's host must resolve outside the network."""
    deadline = time.monotonic() + DEADLINE_S
    for _ in range(MAX_REDIRECTS + 1):
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise FetchRefused(f"{url}: only http(s) URLs are fetched")
        if not allow_internal and is_internal(parsed.hostname):
            raise FetchRefused(f"{url}: an internal address (set STREAMS_FETCH_PRIVATE=true to allow)")
        with client.stream("GET", url, headers=headers, follow_redirects=False) as response:
            if response.is_redirect and "location" in response.headers:
                url = str(response.url.join(response.headers["location"]))
                continue
            body = bytearray()
            for chunk in response.iter_bytes():  # decoded: the cap holds for a compressed bomb too
                body += chunk
                if len(body) > cap:
                    raise FetchRefused(f"{url}: larger than {cap} bytes")
                if time.monotonic() > deadline:
                    raise FetchRefused(f"{url}: not complete within {DEADLINE_S:g} s")
            headers = [(k, v) for k, v in response.headers.multi_items()  # the body is decoded already
                       if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
            return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=response.request)
    raise FetchRefused(f"{url}: more than {MAX_REDIRECTS} redirects")


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
        for feed in self.feeds.values():  # never fewer than the feed's last answer: those would come again
            feed["seen"] = feed["seen"][-max(SEEN_PER_FEED, feed.get("size", 0)):]
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
    rejected: int = 0  # refused at the door (the producer counts and logs each with its reason)
    errors: list[str] = field(default_factory=list)


class Poller:
    """Polls feeds and hands each new item to ``publish`` (which validates and sends it)."""

    def __init__(self, config: PollConfig, state: PollState, publish: Callable[[dict], str | None],
                 flush: Callable[[], None] = lambda: None, client: httpx.Client | None = None,
                 fetch_private: bool = False) -> None:
        self.config, self.state, self.publish, self.flush = config, state, publish, flush
        self.fetch_private = fetch_private
        self.client = client or httpx.Client(timeout=20.0, headers={"User-Agent": USER_AGENT})

    def poll_once(self) -> PollReport:
        report = PollReport()
        for feed in self.config.feeds:
            try:
                self._poll_feed(feed, report)
            except Exception as exc:  # one feed never stops the others, whatever it did
                log.warning("feed %s skipped: %s", feed.url, exc)
                report.errors.append(f"{feed.url}: {type(exc).__name__}: {str(exc)[:300]}")
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
        response = fetch(self.client, feed.url, MAX_FEED_BYTES, headers=headers)  # the operator's own URL
        if response.status_code == 304:
            report.not_modified += 1
            return
        response.raise_for_status()
        report.fetched += 1
        if ENTITY_DECLARATION.search(response.content[:65536]):
            raise FetchRefused("the feed declares XML entities (refused before parsing: entity expansion)")
        parsed = feedparser.parse(_no_surrogate_refs(response.content))
        st["size"] = len(parsed.entries)
        seen = set(st["seen"])
        for entry in parsed.entries:
            key = item_key(entry)
            if key in seen:
                report.skipped += 1
                continue
            page = None
            if feed.fetch_page and entry.get("link"):
                try:
                    page_response = fetch(self.client, entry["link"], MAX_PAGE_BYTES, self.fetch_private)
                    page = page_response.raise_for_status().text
                except (FetchRefused, httpx.HTTPError) as exc:
                    log.warning("item %s of %s: page not fetched: %s", key, feed.url, exc)
                    report.errors.append(f"{entry['link']}: {exc}")
                    continue  # not remembered: tried again on the next poll
            if self.publish(to_article(feed, entry, page)) is not None:
                report.published += 1
            else:
                report.rejected += 1
                log.warning("item %s of %s was refused at the door (see the producer's count by reason)",
                            key, feed.url)
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
